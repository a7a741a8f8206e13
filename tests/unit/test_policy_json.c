/* Tests for src/policy_json.c: JSON path expressions, the streaming
 * parser's spans for path rules and detectors (recursive descent, arrays,
 * wildcards, escaped keys and strings, numbers, literals, NDJSON), which
 * rule wins, malformed and truncated bodies, and the fail-closed limits
 * (depth, body size, span slots). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/policy_priv.h"
#include "policy_text.h"

#define SEAL POLICY_ACTION_SEAL
#define TOK POLICY_ACTION_TOKENIZE
#define HASH POLICY_ACTION_HASH
#define RED POLICY_ACTION_REDACT
#define STR POLICY_SPAN_JSON_STRING
#define VAL POLICY_SPAN_JSON_VALUE

static const char policy_text[] =
	"tenants: {t: {kms: pkcs11, kek: k}}\n"
	"rule_sets:\n"
	"  r:\n"
	"    json:\n"
	"      \"$.a.b\": seal\n"
	"      \"$.list[*].secret\": tokenize\n"
	"      \"$.arr[1]\": hash\n"
	"      \"$..ssn\": seal\n"
	"      \"$.obj\": redact\n"
	"      \"$.keep\": keep\n"
	"      \"$[\\\"odd key\\\"]\": seal\n"
	"      \"$.x.*.y\": seal\n"
	"      \"$..card.number\": seal\n"
	"      \"$.w\": tokenize\n"
	"      \"$..w\": seal\n"
	"      \"$.t\": { action: seal, name: first-t }\n"
	"      \"$..t\": { action: seal, name: second-t }\n"
	"      \"$['q'][0]\": hash\n"
	"    detectors:\n"
	"      email: tokenize\n"
	"      card: seal\n";

struct want {
	const char *text;
	uint8_t action;
	const char *rule; /* NULL: not checked */
	uint8_t flags;
	uint8_t kind; /* 0: not checked */
};

struct jcase {
	const char *body;
	struct want w[6];
	unsigned flags;
};

#define J POLICY_KIND_JSON
#define D POLICY_KIND_DETECTOR
#define L POLICY_KIND_LIMIT

static const struct jcase cases[] = {
	/* child paths: strings (inside the quotes), other values whole */
	{ "{\"a\":{\"b\":\"v1\",\"c\":\"v2\"}}",
	  { { "v1", SEAL, "r/json/$.a.b", STR, J } } },
	{ "{\"a\":{\"b\":123}}", { { "123", SEAL, NULL, VAL, J } } },
	{ "{\"a\":{\"b\":-1.5e+3}}", { { "-1.5e+3", SEAL, NULL, VAL, J } } },
	{ "{\"a\":{\"b\":{\"x\":1,\"y\":[2,\"]\"]}}}",
	  { { "{\"x\":1,\"y\":[2,\"]\"]}", SEAL, NULL, VAL, J } } },
	{ "{\"a\":{\"b\":true}}", { { "true", SEAL, NULL, VAL, J } } },
	{ "{\"a\":{\"b\":null}}", { { "null", SEAL, NULL, VAL, J } } },
	{ "{\"a\":{\"b\":\"\"}}", { { 0 } } }, /* empty: nothing to seal */
	{ "{\"b\":\"x\",\"a\":{\"c\":{\"b\":\"y\"}}}", { { 0 } } },
	/* arrays */
	{ "{\"list\":[{\"secret\":\"s1\"},{\"o\":1,\"secret\":\"s2\"},"
	  "{\"x\":\"s3\"}]}",
	  { { "s1", TOK, "r/json/$.list[*].secret", STR, J },
	    { "s2", TOK, NULL, STR, J } } },
	{ "{\"arr\":[\"zero\",\"one\",\"two\"]}",
	  { { "one", HASH, "r/json/$.arr[1]", STR, J } } },
	{ "{\"arr\":[[\"zero\"],{\"one\":1},\"two\"]}",
	  { { "{\"one\":1}", HASH, NULL, VAL, J } } },
	{ "{\"q\":[\"first\",\"second\"]}",
	  { { "first", HASH, "r/json/$['q'][0]", STR, J } } },
	/* recursive descent, any depth, in arrays too */
	{ "{\"ssn\":\"1\",\"p\":{\"q\":[{\"ssn\":\"2\"}],\"ssn\":{\"n\":3}}}",
	  { { "1", SEAL, "r/json/$..ssn", STR, J },
	    { "2", SEAL, NULL, STR, J },
	    { "{\"n\":3}", SEAL, NULL, VAL, J } } },
	{ "[[[{\"deep\":[{\"ssn\":\"x\"}]}]]]", { { "x", SEAL, NULL, STR, J } } },
	{ "{\"order\":{\"card\":{\"number\":\"4111111111111111\"}}}",
	  { { "4111111111111111", SEAL, "r/json/$..card.number", STR, J } } },
	{ "{\"card\":{\"number\":\"x\"},\"z\":{\"card\":{\"n\":{\"number\":1}}}}",
	  { { "x", SEAL, NULL, STR, J } } },
	/* wildcard member */
	{ "{\"x\":{\"p\":{\"y\":1},\"q\":{\"y\":2,\"z\":3},\"r\":[{\"y\":4}]}}",
	  { { "1", SEAL, "r/json/$.x.*.y", VAL, J },
	    { "2", SEAL, NULL, VAL, J } } },
	/* an empty key under a wildcard (fuzz regression: the wildcard
	 * state has no name to compare) */
	{ "{\"x\":{\"\":{\"y\":1}}}", { { "1", SEAL, NULL, VAL, J } } },
	/* escaped keys are matched decoded */
	{ "{\"\\u0073sn\":\"x\"}", { { "x", SEAL, "r/json/$..ssn", STR, J } } },
	{ "{\"a\":{\"\\u0062\":\"y\"}}", { { "y", SEAL, NULL, STR, J } } },
	{ "{\"odd key\":\"v\"}", { { "v", SEAL, "r/json/$[_odd key_]", STR, J } } },
	/* a whole object / array value */
	{ "{\"obj\":[1,2,{\"z\":\"a@b.co\"}],\"n\":\"c@d.co\"}",
	  { { "[1,2,{\"z\":\"a@b.co\"}]", RED, "r/json/$.obj", VAL, J },
	    { "c@d.co", TOK, "r/detector/email", STR, D } } },
	/* keep: no span, no detectors below it */
	{ "{\"keep\":{\"e\":\"a@b.co\",\"ssn\":\"1\"},\"e\":\"c@d.co\"}",
	  { { "c@d.co", TOK, NULL, STR, D } } },
	/* strongest action wins; on a tie the first listed rule */
	{ "{\"w\":\"v\"}", { { "v", SEAL, "r/json/$..w", STR, J } } },
	{ "{\"t\":\"v\"}", { { "v", SEAL, "first-t", STR, J } } },
	{ "{\"z\":{\"t\":\"v\"}}", { { "v", SEAL, "second-t", STR, J } } },
	/* detectors in strings (escaped: decoded, span on the raw bytes) */
	{ "{\"m\":\"mail: bob\\u0040example.com now\"}",
	  { { "bob\\u0040example.com", TOK, NULL, STR, D } } },
	{ "{\"m\":\"tab\\tbob@example.com\\n\"}",
	  { { "bob@example.com", TOK, NULL, STR, D } } },
	{ "{\"m\":\"\\\"bob@example.com\\\"\"}",
	  { { "bob@example.com", TOK, NULL, STR, D } } },
	/* ... in keys ... */
	{ "{\"bob@example.com\":{\"x\":1}}",
	  { { "bob@example.com", TOK, NULL, STR, D } } },
	/* ... and in numbers: the whole number goes */
	{ "{\"n\":4111111111111111}",
	  { { "4111111111111111", SEAL, "r/detector/card", VAL, D } } },
	{ "[4111111111111111.5, 4111111111111112]",
	  { { "4111111111111111.5", SEAL, NULL, VAL, D } } },
	/* NDJSON, top-level arrays and scalars, blanks, BOM */
	{ "{\"a\":{\"b\":\"1\"}}\n{\"a\":{\"b\":\"2\"}}\n",
	  { { "1", SEAL, NULL, STR, J }, { "2", SEAL, NULL, STR, J } } },
	{ "[{\"ssn\":\"1\"}]", { { "1", SEAL, NULL, STR, J } } },
	{ "\"bob@example.com\"", { { "bob@example.com", TOK, NULL, STR, D } } },
	{ "\xef\xbb\xbf {\n \"a\" : { \"b\" : \"v\" } }\n",
	  { { "v", SEAL, NULL, STR, J } } },
	{ "{\"\\ud83d\\ude00\":\"x\",\"\\udc00\":\"y\",\"\\ud800\":\"z\"}",
	  { { 0 } } },
	{ "", { { 0 } } },
	{ "   \n", { { 0 } } },

	/* malformed: the rest from the bad token is one limit span */
	{ "{\"a\":{\"b\":\"v\"}, oops \"ssn\": \"x\"}",
	  { { "v", SEAL, NULL, STR, J },
	    { "oops \"ssn\": \"x\"}", RED, "limit/malformed_json", 0, L } },
	  POLICY_SCAN_MALFORMED },
	{ "{\"a\" \"b\"}", { { "\"b\"}", RED, NULL, 0, L } },
	  POLICY_SCAN_MALFORMED },
	{ "{\"a\":tru}", { { "tru}", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "{\"a\":\"\x01\"}", { { "\"\x01\"}", RED, NULL, 0, L } },
	  POLICY_SCAN_MALFORMED },
	{ "{\"a\":\"\\q\"}", { { "\"\\q\"}", RED, NULL, 0, L } },
	  POLICY_SCAN_MALFORMED },
	{ "]", { { "]", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "{\"a\":1,}", { { "}", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "[1 2]", { { "2]", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "{\"a\":01}", { { "1}", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "{\"a\":[1,2}", { { "}", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "{'a':1}", { { "'a':1}", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "{\"a\":1.}", { { "1.}", RED, NULL, 0, L } }, POLICY_SCAN_MALFORMED },
	{ "not json at all bob@example.com",
	  { { "not json at all bob@example.com", RED, NULL, 0, L } },
	  POLICY_SCAN_MALFORMED },

	/* truncated (a cut capture): handled as far as it goes, no error */
	{ "{\"a\":{\"b\":\"abc", { { "abc", SEAL, NULL, STR, J } } },
	{ "{\"obj\":[1,2,", { { "[1,2,", RED, NULL, VAL, J } } },
	{ "{\"obj\":[1,\"2", { { "[1,\"2", RED, NULL, VAL, J } } },
	{ "{\"e\":\"bob@example.com", { { "bob@example.com", TOK, NULL, STR, D } } },
	{ "{\"a\":{\"b\"", { { 0 } } },
	{ "{\"a\":{\"b\":12", { { "12", SEAL, NULL, VAL, J } } },
	{ "{\"a\":{\"b\":-", { { 0 } } },
	{ "{\"a\":{\"b\":tr", { { 0 } } },
	{ "{\"a\":\"\\u00", { { 0 } } },
};

static void check_spans(const char *in, size_t len,
			const struct policy_span *sp, int n,
			const struct want *w, int nw)
{
	bool ok = n == nw;
	for (int k = 0; ok && k < n; k++) {
		ok = sp[k].len == strlen(w[k].text) &&
		     memcmp(in + sp[k].off, w[k].text, sp[k].len) == 0 &&
		     sp[k].action == w[k].action && sp[k].flags == w[k].flags &&
		     (!w[k].kind || sp[k].kind == w[k].kind) &&
		     (!w[k].rule || strcmp(sp[k].rule, w[k].rule) == 0);
	}
	if (!ok) {
		print_error("input \"%s\": want %d spans, got %d:\n", in, nw, n);
		for (int k = 0; k < n; k++)
			print_error("  \"%.*s\" %s %s kind %s flags %u\n",
				    (int)sp[k].len, in + sp[k].off,
				    policy_action_name(sp[k].action),
				    sp[k].rule, policy_kind_name(sp[k].kind),
				    sp[k].flags);
	}
	assert_true(ok);
	for (int k = 0; k < n; k++) {
		assert_true(sp[k].len > 0 && sp[k].off + sp[k].len <= len);
		assert_non_null(sp[k].rule);
		if (k)
			assert_true(sp[k - 1].off + sp[k - 1].len <= sp[k].off);
	}
}

static void test_json_table(void **state)
{
	(void)state;
	struct policy *p = load(policy_text);
	const struct policy_route *r = policy_default_route(p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct jcase *c = &cases[i];
		size_t len = strlen(c->body);
		/* exact-size heap copy: ASan sees any read past the end */
		char *b = malloc(len ? len : 1);
		memcpy(b, c->body, len);
		struct policy_span sp[16];
		unsigned flags = 0;
		int n = policy_scan_body(r, "application/json", 16, b, len, sp,
					 16, &flags);
		int nw = 0;
		while (nw < 6 && c->w[nw].text)
			nw++;
		check_spans(b, len, sp, n, c->w, nw);
		if (flags != c->flags)
			print_error("case %zu: flags %#x, want %#x\n", i, flags,
				    c->flags);
		assert_int_equal(flags, c->flags);
		free(b);
	}
	policy_free(p);
}

/* ---- content types -------------------------------------------------------------- */

static void test_json_content_types(void **state)
{
	(void)state;
	struct policy *p = load(policy_text);
	const struct policy_route *r = policy_default_route(p);
	const char *body = "{\"a\":{\"b\":\"v\"}}";
	static const struct {
		const char *ct;
		int n;
	} t[] = {
		{ "application/json", 1 },
		{ "Application/JSON; charset=utf-8", 1 },
		{ "  application/json;charset=UTF-8", 1 },
		{ "application/problem+json", 1 },
		{ "application/x-ndjson", 1 },
		{ "text/json", 1 },
		{ "text/plain", 0 }, /* text: detectors only, none hit */
		{ "image/png", 0 },
		{ NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct policy_span sp[4];
		int n = policy_scan_body(r, t[i].ct, t[i].ct ? strlen(t[i].ct) : 0,
					 body, strlen(body), sp, 4, NULL);
		if (n != t[i].n)
			print_error("%s: %d\n", t[i].ct ? t[i].ct : "(none)", n);
		assert_int_equal(n, t[i].n);
	}
	/* e-mail in a text body is found by the detectors; in an image not */
	const char *txt = "hello bob@example.com";
	struct policy_span sp[4];
	assert_int_equal(policy_scan_body(r, "text/plain", 10, txt, strlen(txt),
					  sp, 4, NULL), 1);
	assert_int_equal(policy_scan_body(r, "image/png", 9, txt, strlen(txt),
					  sp, 4, NULL), 0);
	assert_int_equal(policy_scan_body(r, "application/json", 16, txt, 0,
					  sp, 4, NULL), 0);
	assert_int_equal(policy_scan_body(NULL, NULL, 0, txt, 1, sp, 4, NULL),
			 -EINVAL);
	assert_int_equal(policy_scan_body(r, NULL, 0, txt, 1, sp, 0, NULL),
			 -EINVAL);
	policy_free(p);
}

/* ---- limits ------------------------------------------------------------------------ */

static void test_json_depth_limit(void **state)
{
	(void)state;
	static const char *const pols[] = {
		"limits: {json_depth: 2}\n"
		"tenants: {t: {kms: pkcs11, kek: k}}\n"
		"rule_sets: {r: {detectors: {email: tokenize}}}\n",
		"limits: {json_depth: 2, unscanned: keep}\n"
		"tenants: {t: {kms: pkcs11, kek: k}}\n"
		"rule_sets: {r: {detectors: {email: tokenize}}}\n",
	};
	const char *body = "{\"x\":{\"y\":{\"z\":\"a@b.co\"}},\"e\":\"c@d.co\"}";
	for (int k = 0; k < 2; k++) {
		struct policy *p = load(pols[k]);
		const struct policy_route *r = policy_default_route(p);
		struct policy_span sp[8];
		unsigned flags = 0;
		int n = policy_scan_body(r, "application/json", 16, body,
					 strlen(body), sp, 8, &flags);
		assert_int_equal(flags, POLICY_SCAN_DEPTH);
		if (k == 0) {
			struct want w[] = {
				{ "{\"z\":\"a@b.co\"}", RED, "limit/json_depth", 0, L },
				{ "c@d.co", TOK, NULL, STR, D },
			};
			check_spans(body, strlen(body), sp, n, w, 2);
		} else {
			/* unscanned: keep still runs the detectors there */
			struct want w[] = {
				{ "a@b.co", TOK, NULL, 0, D },
				{ "c@d.co", TOK, NULL, STR, D },
			};
			check_spans(body, strlen(body), sp, n, w, 2);
		}
		policy_free(p);
	}

	/* 60000 nested arrays (under the default 64KiB body limit): no
	 * recursion, one span from the first one too deep to the end. */
	struct policy *p = load(policy_text);
	const struct policy_route *r = policy_default_route(p);
	size_t len = 60000;
	char *b = malloc(len);
	memset(b, '[', len);
	struct policy_span sp[4];
	unsigned flags = 0;
	int n = policy_scan_body(r, "application/json", 16, b, len, sp, 4,
				 &flags);
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].off, 64);
	assert_int_equal(sp[0].off + sp[0].len, len);
	assert_int_equal(sp[0].rule_id, POLICY_RULE_LIMIT_DEPTH);
	assert_int_equal(flags, POLICY_SCAN_DEPTH);
	/* closed again: the rest after it is parsed normally */
	memset(b, '[', len / 2);
	memset(b + len / 2, ']', len / 2);
	flags = 0;
	n = policy_scan_body(r, "application/json", 16, b, len, sp, 4, &flags);
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].off, 64);
	assert_int_equal(sp[0].off + sp[0].len, len - 64);
	assert_int_equal(flags, POLICY_SCAN_DEPTH);
	free(b);
	policy_free(p);
}

static void test_json_body_cut(void **state)
{
	(void)state;
	struct policy *p = load("limits: {body_bytes: 24}\n"
				"tenants: {t: {kms: pkcs11, kek: k}}\n"
				"rule_sets: {r: {json: {\"$.a\": seal}}}\n");
	const struct policy_route *r = policy_default_route(p);
	const char *body = "{\"a\":\"secret\",\"b\":\"more and more text\"}";
	struct policy_span sp[4];
	unsigned flags = 0;
	int n = policy_scan_body(r, "application/json", 16, body, strlen(body),
				 sp, 4, &flags);
	struct want w[] = {
		{ "secret", SEAL, "r/json/$.a", STR, J },
		{ body + 24, RED, "limit/body_bytes", 0, L },
	};
	check_spans(body, strlen(body), sp, n, w, 2);
	assert_int_equal(flags, POLICY_SCAN_BODY_CUT);
	/* a value the cut splits goes wholly to the limit span: the cut
	 * moves back over the characters a detector hit is made of (here to
	 * the string's quote; the value open there is empty, no span) */
	const char *b2 = "{\"b\":1,\"a\":\"0123456789abcdefgh\"}";
	flags = 0;
	n = policy_scan_body(r, "application/json", 16, b2, strlen(b2), sp, 4,
			     &flags);
	struct want w2[] = {
		{ "0123456789abcdefgh\"}", RED, "limit/body_bytes", 0, L },
	};
	check_spans(b2, strlen(b2), sp, n, w2, 1);
	/* a value open at the moved cut ends there, the rule takes its part */
	const char *b4 = "{\"b\":1,\"a\":\"abc,def0123456789\"}";
	flags = 0;
	n = policy_scan_body(r, "application/json", 16, b4, strlen(b4), sp, 4,
			     &flags);
	struct want w4[] = {
		{ "abc,", SEAL, "r/json/$.a", STR, J },
		{ "def0123456789\"}", RED, "limit/body_bytes", 0, L },
	};
	check_spans(b4, strlen(b4), sp, n, w4, 2);
	policy_free(p);

	/* a card only a detector finds, split by the cut: no digit of it
	 * passes (its first twelve used to, the detector saw only them) */
	p = load("limits: {body_bytes: 24}\n"
		 "tenants: {t: {kms: pkcs11, kek: k}}\n"
		 "rule_sets: {r: {detectors: {card: seal}}}\n");
	r = policy_default_route(p);
	const char *b5 = "{\"n\":\"pay 4111 1111 1111 1111\"}";
	flags = 0;
	n = policy_scan_body(r, "application/json", 16, b5, strlen(b5), sp, 4,
			     &flags);
	struct want w5[] = {
		{ "4111 1111 1111 1111\"}", RED, "limit/body_bytes", 0, L },
	};
	check_spans(b5, strlen(b5), sp, n, w5, 1);
	assert_int_equal(flags, POLICY_SCAN_BODY_CUT);
	policy_free(p);

	/* unscanned: keep leaves the tail alone (not even detectors) */
	p = load("limits: {body_bytes: 8, unscanned: keep}\n"
		 "tenants: {t: {kms: pkcs11, kek: k}}\n"
		 "rule_sets: {r: {detectors: {email: seal}}}\n");
	r = policy_default_route(p);
	const char *b3 = "[\"x\", \"bob@example.com\"]";
	flags = 0;
	n = policy_scan_body(r, "application/json", 16, b3, strlen(b3), sp, 4,
			     &flags);
	assert_int_equal(n, 0);
	assert_int_equal(flags, POLICY_SCAN_BODY_CUT);
	policy_free(p);
}

static void test_json_span_slots(void **state)
{
	(void)state;
	struct policy *p = load(policy_text);
	const struct policy_route *r = policy_default_route(p);
	const char *body =
		"[\"a@b.co\",\"c@d.co\",\"e@f.co\",\"g@h.co\",\"tail\"]";
	struct policy_span sp[2];
	unsigned flags = 0;
	int n = policy_scan_body(r, "application/json", 16, body, strlen(body),
				 sp, 2, &flags);
	assert_int_equal(n, 2);
	assert_int_equal(flags, POLICY_SCAN_SPANS_FULL);
	assert_memory_equal(body + sp[0].off, "a@b.co", 6);
	/* the last slot covers everything from its start on, sealed */
	assert_memory_equal(body + sp[1].off, "c@d.co", 6);
	assert_int_equal(sp[1].off + sp[1].len, strlen(body));
	assert_int_equal(sp[1].action, SEAL);
	assert_int_equal(sp[1].kind, L);
	assert_string_equal(sp[1].rule, "limit/spans");
	/* one slot: the first hit to the end */
	flags = 0;
	n = policy_scan_body(r, "application/json", 16, body, strlen(body), sp,
			     1, &flags);
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].off + sp[0].len, strlen(body));
	policy_free(p);
}

/* ---- path expressions ---------------------------------------------------------------- */

static void test_path_parse(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		int steps; /* -1: invalid */
		const char *kinds; /* C child, A any, I index, D desc, E desc-any */
	} t[] = {
		{ "$", 0, "" },
		{ "$.a", 1, "C" },
		{ "$.a.b", 2, "CC" },
		{ "$.a[*].b", 3, "CAC" },
		{ "$.a[0]", 2, "CI" },
		{ "$.a.*", 2, "CA" },
		{ "$..ssn", 1, "D" },
		{ "$..*", 1, "E" },
		{ "$..[*]", 1, "E" },
		{ "$..['x y']", 1, "D" },
		{ "$['a b'][\"c\\\"d\"]", 2, "CC" },
		{ "$..card.number", 2, "DC" },
		{ "$.a-b.$c.@d", 3, "CCC" },
		{ "", -1, NULL },
		{ "a", -1, NULL },
		{ "$.", -1, NULL },
		{ "$..", -1, NULL },
		{ "$.a.", -1, NULL },
		{ "$[", -1, NULL },
		{ "$[x]", -1, NULL },
		{ "$[1", -1, NULL },
		{ "$[99999999999]", -1, NULL },
		{ "$..[1]", -1, NULL },
		{ "$.[a]", -1, NULL },
		{ "$.a b", -1, NULL },
		{ "$['a", -1, NULL },
		{ "$['a'", -1, NULL },
		{ "$a", -1, NULL },
		{ "$.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c."
		  "d.e.f.g",
		  -1, NULL }, /* 33 steps */
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct pol_jstep_src st[POL_JSON_STEPS_MAX];
		char buf[POL_JSON_PATH_MAX];
		const char *why = NULL;
		size_t where = 0;
		int n = pol_json_path_parse(t[i].path, strlen(t[i].path), st,
					    POL_JSON_STEPS_MAX, buf, sizeof(buf),
					    &why, &where);
		if (n != t[i].steps)
			print_error("%s: %d (%s)\n", t[i].path, n,
				    why ? why : "");
		assert_int_equal(n, t[i].steps);
		if (n < 0) {
			assert_non_null(why);
			assert_true(where <= strlen(t[i].path));
			continue;
		}
		for (int k = 0; k < n; k++)
			assert_int_equal("CAIDE"[st[k].kind], t[i].kinds[k]);
	}
	/* names and indexes come out decoded */
	struct pol_jstep_src st[4];
	char buf[64];
	const char *why;
	size_t where;
	const char *p = "$['a b'][\"c\\\"d\"][7]";
	assert_int_equal(pol_json_path_parse(p, strlen(p), st, 4, buf,
					     sizeof(buf), &why, &where), 3);
	assert_int_equal(st[0].len, 3);
	assert_memory_equal(st[0].name, "a b", 3);
	assert_int_equal(st[1].len, 3);
	assert_memory_equal(st[1].name, "c\"d", 3);
	assert_int_equal(st[2].index, 7);
}

static void test_object_has_key(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool ok;
	} t[] = {
		{ "{\"alg\":\"HS256\"}", true },
		{ " { \"typ\" : \"JWT\" , \"alg\" : \"none\" } ", true },
		{ "{\"x\":{\"alg\":1}}", false }, /* not at the top level */
		{ "{\"alg\":[1,{\"a\":2}],\"b\":null}", true },
		{ "{\"typ\":\"JWT\"}", false },
		{ "{}", false },
		{ "[\"alg\"]", false },
		{ "{\"alg\":\"x\"", false },
		{ "{\"alg\":\"x\"}x", false },
		{ "{\"alg\" \"x\"}", false },
		{ "{\"alg\":x}", false },
		{ "", false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++)
		assert_int_equal(pol_json_object_has_key((const uint8_t *)t[i].s,
							 strlen(t[i].s), "alg"),
				 t[i].ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_table),
		cmocka_unit_test(test_json_content_types),
		cmocka_unit_test(test_json_depth_limit),
		cmocka_unit_test(test_json_body_cut),
		cmocka_unit_test(test_json_span_slots),
		cmocka_unit_test(test_path_parse),
		cmocka_unit_test(test_object_has_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
