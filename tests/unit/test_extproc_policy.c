/* Tests for src/extproc_policy.c: the policy decider, called the way the
 * engine calls it. Routing and mode overrides, header values (tokens of
 * each kind bound to their field and record, in-place spans, removal,
 * deny in requests only), a tenant that fails closed, JSON bodies kept
 * valid, chunk boundaries guarded, the record notes, and the key cache's
 * quiescent points. A test DEK stands in for the KMS (testkeys.h); tokens
 * are opened with the sealing engine to prove where they are bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sealtap/extproc.h"
#include "sealtap/keys.h"
#include "sealtap/policy.h"
#include "sealtap/seal.h"
#include "h2_json.h"
#include "testkeys.h"

static const char test_policy[] =
	"tenants:\n"
	"  acme: {kms: pkcs11, kek: k1}\n"
	"  beta: {kms: pkcs11, kek: k2}\n"
	"deny: {status: 451, body: \"no\\n\", details: test_denied}\n"
	"rule_sets:\n"
	"  shop:\n"
	"    extends: builtin\n"
	"    headers: {x-secret: tokenize, x-drop: redact, x-hash: hash}\n"
	"    cookies: {sid: tokenize, theme: keep}\n"
	"    query: {token: seal}\n"
	"    form: {\"nn*\": seal}\n"
	"    json: {\"$.ssn\": seal, \"$.card\": seal}\n"
	"    detectors: {card: deny, email: tokenize}\n"
	"  quiet:\n"
	"    headers: {authorization: seal}\n"
	"routes:\n"
	"  - {name: beta, match: {authority: beta.test}, tenant: beta, rules: shop}\n"
	"  - {name: quiet, match: {path_prefix: /static/}, rules: quiet}\n"
	"default: {tenant: acme, rules: shop}\n";

#define FILL 0x33
#define RID "00000000000000a1"

struct fx {
	struct policy *pol;
	struct keys_cache *keys;
	struct extproc_policy *pp;
	struct extproc_decider d;
	struct st_counters ctr;
	struct extproc_xdec xd;
	struct extproc_buf out;
	char key_id[32];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	f->pol = policy_load_text("t.yaml", test_policy, sizeof(test_policy) - 1,
				  err, sizeof(err));
	if (!f->pol)
		print_error("%s\n", err);
	assert_non_null(f->pol);
	static const char *const ok[] = { "acme" }, *const failed[] = { "beta" };
	f->keys = testkeys_new(1, ok, 1, FILL, failed, 1);
	assert_non_null(f->keys);
	snprintf(f->key_id, sizeof(f->key_id), "%s", testkeys_id);
	f->pp = extproc_policy_new(f->pol, f->keys, 0, &f->ctr);
	assert_non_null(f->pp);
	extproc_policy_online(f->pp, true);
	f->d = extproc_policy_decider(f->pp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	extproc_policy_online(f->pp, false);
	extproc_policy_free(f->pp);
	keys_cache_free(f->keys);
	policy_free(f->pol);
	extproc_buf_free(&f->out);
	extproc_buf_free(&f->xd.applied);
	extproc_buf_free(&f->xd.findings[0]);
	extproc_buf_free(&f->xd.findings[1]);
	extproc_buf_free(&f->xd.body_state[0]);
	extproc_buf_free(&f->xd.body_state[1]);
	extproc_buf_free(&f->xd.body_tail[0]);
	extproc_buf_free(&f->xd.body_tail[1]);
	free(f);
	return 0;
}

/* A new exchange of |authority| and |path|: the decider's begin(). */
static bool start(struct fx *f, const char *authority, const char *path,
		  struct extproc_mode *m)
{
	extproc_buf_free(&f->xd.applied);
	extproc_buf_free(&f->xd.findings[0]);
	extproc_buf_free(&f->xd.findings[1]);
	extproc_buf_free(&f->xd.body_state[0]);
	extproc_buf_free(&f->xd.body_state[1]);
	extproc_buf_free(&f->xd.body_tail[0]);
	extproc_buf_free(&f->xd.body_tail[1]);
	memset(&f->xd, 0, sizeof(f->xd));
	memcpy(f->xd.record_id, RID, 16);
	f->xd.notes = true; /* as when records are written */
	struct policy_request rq = {
		.authority = authority, .authority_len = strlen(authority),
		.path = path, .path_len = strlen(path),
	};
	struct extproc_mode none = { 0 };
	return f->d.ops->begin(f->d.self, &f->xd, &rq, m ? m : &none);
}

static enum extproc_verdict header(struct fx *f, enum extproc_part part,
				   const char *name, const char *value,
				   struct extproc_decision *d)
{
	f->out.len = 0;
	memset(d, 0, sizeof(*d));
	d->out = &f->out;
	return f->d.ops->decide_header(f->d.self, &f->xd, part,
				       (const uint8_t *)name, strlen(name),
				       (const uint8_t *)value, strlen(value), d);
}

/* decide_body() of |c|, its content type taken from |ctype|. */
static enum extproc_verdict decide(struct fx *f, struct extproc_chunk *c,
				   const char *ctype,
				   struct extproc_decision *d)
{
	f->out.len = 0;
	memset(d, 0, sizeof(*d));
	d->out = &f->out;
	c->ctype = (const uint8_t *)ctype;
	c->ctype_len = ctype ? strlen(ctype) : 0;
	return f->d.ops->decide_body(f->d.self, &f->xd, c, d);
}

static enum extproc_verdict body(struct fx *f, enum extproc_part part,
				 const char *ctype, const char *data,
				 uint64_t off, bool last,
				 struct extproc_decision *d)
{
	struct extproc_chunk c = {
		.part = part, .data = (const uint8_t *)data, .len = strlen(data),
		.off = off, .last = last,
	};
	return decide(f, &c, ctype, d);
}

/* Opens token |tok| (|n| bytes) of tenant acme made for |field| in record
 * RID; returns the plaintext (static) or NULL. Hash tokens are checked
 * against |plain|. */
static const char *open_tok(struct fx *f, const char *field, const char *tok,
			    size_t n, const char *plain)
{
	static char pt[512];
	uint8_t dek[SEAL_DEK_LEN];
	memset(dek, FILL, sizeof(dek));
	int rc = -1;
	if (n > 6 && tok[5] == 'g') {
		struct seal_gcm *g;
		assert_int_equal(seal_gcm_new(dek, "acme", f->key_id, NULL, &g), 0);
		rc = seal_token_open_gcm(g, field, strlen(field), RID, 16, tok,
					 n, (uint8_t *)pt, sizeof(pt) - 1);
		seal_gcm_free(g);
	} else if (n > 6 && tok[5] == 's') {
		struct seal_siv *s;
		assert_int_equal(seal_siv_new(dek, "acme", f->key_id, &s), 0);
		rc = seal_token_open_siv(s, field, strlen(field), tok, n,
					 (uint8_t *)pt, sizeof(pt) - 1);
		seal_siv_free(s);
	} else if (n > 6 && tok[5] == 'h') {
		struct seal_hash *h;
		assert_int_equal(seal_hash_new(dek, "acme", f->key_id, &h), 0);
		rc = seal_token_check_hash(h, field, strlen(field),
					   (const uint8_t *)plain, strlen(plain),
					   tok, n);
		seal_hash_free(h);
		if (rc == 0)
			return plain;
	}
	if (rc < 0)
		return NULL;
	pt[rc] = '\0';
	return pt;
}

/* Length of the token at the start of |s| ([A-Za-z0-9._-]). */
static size_t tok_len(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (strchr("._-", s[i]) || (s[i] >= '0' && s[i] <= '9') ||
			 (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
		i++;
	return i;
}

/* ---- routing and modes ---------------------------------------------------- */

static void test_begin(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *authority, *path;
		int req, resp;           /* announced */
		const char *route, *tenant;
		bool override;
		int want_req, want_resp;
	} t[] = {
		{ "shop.test", "/", 0, 0, "default", "acme", true, 2, 2 },
		{ "shop.test", "/", 1, 0, "default", "acme", true, 1, 2 },
		{ "shop.test", "/", 3, 4, "default", "acme", false, 3, 4 },
		{ "beta.test", "/x", 0, 1, "beta", "beta", true, 2, 1 },
		{ "shop.test", "/static/a.js", 0, 0, "quiet", "acme", false, 0, 0 },
		{ "", "", 0, 0, "default", "acme", true, 2, 2 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct extproc_mode m = { t[i].req, t[i].resp };
		bool o = start(f, t[i].authority, t[i].path, &m);
		assert_int_equal(o, t[i].override);
		assert_string_equal(f->xd.route_name, t[i].route);
		assert_string_equal(f->xd.tenant, t[i].tenant);
		assert_int_equal(m.request_body, t[i].want_req);
		assert_int_equal(m.response_body, t[i].want_resp);
	}
}

/* ---- header values ---------------------------------------------------------- */

struct hcase {
	enum extproc_part part;
	const char *name, *value;
	enum extproc_verdict want;
	const char *prefix; /* REPLACE: the new value starts like this */
	const char *field;  /* REPLACE: the token after |prefix| opens here */
	const char *plain;  /* ... to this */
	const char *suffix; /* ... and this follows it */
};

static const struct hcase hcases[] = {
	{ EXTPROC_REQ_HEADERS, "authorization", "Bearer abc.def", EXTPROC_REPLACE,
	  "stk1.g.", "request.headers:authorization", "Bearer abc.def", "" },
	{ EXTPROC_REQ_HEADERS, "x-secret", "s3cr3t", EXTPROC_REPLACE,
	  "stk1.s.", "request.headers:x-secret", "s3cr3t", "" },
	{ EXTPROC_REQ_HEADERS, "x-hash", "h4sh", EXTPROC_REPLACE,
	  "stk1.h.", "request.headers:x-hash", "h4sh", "" },
	{ EXTPROC_REQ_HEADERS, "cookie", "sid=abc123; theme=dark", EXTPROC_REPLACE,
	  "sid=stk1.s.", "request.headers:cookie", "abc123", "; theme=dark" },
	{ EXTPROC_REQ_HEADERS, "referer", "https://x.test/?token=t0k&p=1",
	  EXTPROC_REPLACE, "https://x.test/?token=stk1.g.",
	  "request.headers:referer", "t0k", "&p=1" },
	{ EXTPROC_REQ_HEADERS, "x-note", "mail bob@example.com now",
	  EXTPROC_REPLACE, "mail stk1.s.", "request.headers:x-note",
	  "bob@example.com", " now" },
	{ EXTPROC_REQ_TRAILERS, "x-secret", "tr41l", EXTPROC_REPLACE,
	  "stk1.s.", "request.trailers:x-secret", "tr41l", "" },
	{ EXTPROC_RESP_HEADERS, "set-cookie", "sid=r1; Path=/", EXTPROC_REPLACE,
	  "sid=stk1.s.", "response.headers:set-cookie", "r1", "; Path=/" },
	/* deny is for requests; in a response the value is sealed */
	{ EXTPROC_RESP_HEADERS, "location", "/pay?c=4111111111111111",
	  EXTPROC_REPLACE, "/pay?c=stk1.g.", "response.headers:location",
	  "4111111111111111", "" },
	{ EXTPROC_REQ_HEADERS, "x-drop", "gone", EXTPROC_REMOVE, NULL, NULL, NULL, NULL },
	{ EXTPROC_REQ_HEADERS, "accept", "*/*", EXTPROC_KEEP, NULL, NULL, NULL, NULL },
	{ EXTPROC_REQ_HEADERS, ":path", "/a?card=4111111111111111", EXTPROC_DENY,
	  NULL, NULL, NULL, NULL },
	{ EXTPROC_REQ_TRAILERS, "x-n", "4111 1111 1111 1111", EXTPROC_DENY,
	  NULL, NULL, NULL, NULL },
};

static void test_headers(void **state)
{
	struct fx *f = *state;
	start(f, "shop.test", "/", NULL);
	for (size_t i = 0; i < sizeof(hcases) / sizeof(*hcases); i++) {
		const struct hcase *c = &hcases[i];
		struct extproc_decision d;
		enum extproc_verdict v = header(f, c->part, c->name, c->value, &d);
		if (v != c->want)
			print_error("case %zu (%s): verdict %d, want %d\n", i,
				    c->name, v, c->want);
		assert_int_equal(v, c->want);
		assert_int_equal(d.verdict, v);
		if (v == EXTPROC_DENY) {
			assert_int_equal(d.status, 451);
			assert_string_equal(d.body, "no\n");
			assert_string_equal(d.details, "test_denied");
			assert_string_equal(d.rule, "shop/detector/card");
			continue;
		}
		if (v != EXTPROC_REPLACE)
			continue;
		const char *o = (const char *)f->out.p;
		size_t n = f->out.len, pl = strlen(c->prefix);
		assert_null(memmem(o, n, c->plain, strlen(c->plain)));
		assert_true(n > pl);
		assert_memory_equal(o, c->prefix, pl);
		/* the token starts where the span started */
		size_t ts = pl - (c->prefix[pl - 1] == '.' ? 7 : 0);
		size_t tl = tok_len(o + ts, n - ts);
		const char *pt = open_tok(f, c->field, o + ts, tl, c->plain);
		if (!pt || strcmp(pt, c->plain))
			print_error("case %zu: token %.*s does not open to %s\n",
				    i, (int)tl, o + ts, c->plain);
		assert_non_null(pt);
		assert_string_equal(pt, c->plain);
		assert_int_equal(n - ts - tl, strlen(c->suffix));
		assert_memory_equal(o + ts + tl, c->suffix, strlen(c->suffix));
	}
	/* tokenize is deterministic, seal is not */
	struct extproc_decision d;
	header(f, EXTPROC_REQ_HEADERS, "x-secret", "same", &d);
	char *a = strndup((const char *)f->out.p, f->out.len);
	header(f, EXTPROC_REQ_HEADERS, "x-secret", "same", &d);
	assert_int_equal(f->out.len, strlen(a));
	assert_memory_equal(f->out.p, a, strlen(a));
	free(a);
	/* the record's "sealed" list: valid JSON, one entry per span */
	char *list = malloc(f->xd.applied.len + 3);
	sprintf(list, "[%.*s]", (int)f->xd.applied.len, (const char *)f->xd.applied.p);
	struct jv *j = j_parse(list, strlen(list));
	assert_non_null(j);
	assert_true(j_is_str(j_get(j_at(j, 0), "where"), "request.headers:authorization"));
	assert_true(j_is_str(j_get(j_at(j, 0), "rule"), "builtin/header/authorization"));
	assert_true(j_is_str(j_get(j_at(j, 0), "action"), "seal"));
	bool drop = false;
	for (size_t i = 0; i < j->n; i++)
		if (j_is_str(j_get(j_at(j, i), "where"), "request.headers:x-drop"))
			drop = j_is_str(j_get(j_at(j, i), "action"), "redact");
	assert_true(drop);
	j_free(j);
	free(list);
	assert_null(memmem(f->xd.applied.p, f->xd.applied.len, "s3cr3t", 6));
}

/* A tenant without a usable key: whole values removed, parts starred,
 * counted; never the value. */
static void test_fail_closed(void **state)
{
	struct fx *f = *state;
	start(f, "beta.test", "/", NULL);
	uint64_t before = f->ctr.v[ST_CTR_seal_failed_closed];
	struct extproc_decision d;
	assert_int_equal(header(f, EXTPROC_REQ_HEADERS, "authorization",
				"Bearer zzz", &d), EXTPROC_REMOVE);
	assert_int_equal(header(f, EXTPROC_REQ_HEADERS, "cookie",
				"sid=abc; theme=dark", &d), EXTPROC_REPLACE);
	assert_int_equal(f->out.len, strlen("sid=***; theme=dark"));
	assert_memory_equal(f->out.p, "sid=***; theme=dark", f->out.len);
	assert_int_equal(f->ctr.v[ST_CTR_seal_failed_closed], before + 2);
	assert_null(memmem(f->xd.applied.p, f->xd.applied.len, "\"seal\"", 6));
	/* deny does not need a key */
	assert_int_equal(header(f, EXTPROC_REQ_HEADERS, ":path",
				"/p/4111111111111111", &d), EXTPROC_DENY);
}

/* ---- bodies ------------------------------------------------------------------ */

static void test_json_body(void **state)
{
	struct fx *f = *state;
	start(f, "shop.test", "/", NULL);
	static const char in[] =
		"{\"ssn\":\"123-45-6789\",\"card\":4111111111111111,"
		"\"n\":[1,2],\"mail\":\"bob@example.com\"}";
	struct extproc_decision d;
	/* in a response the card detector's deny seals */
	assert_int_equal(body(f, EXTPROC_RESP_BODY, "application/json", in,
			      100, true, &d), EXTPROC_REPLACE);
	struct jv *j = j_parse((const char *)f->out.p, f->out.len);
	assert_non_null(j); /* still valid JSON */
	struct jv *v = j_get(j, "ssn");
	assert_int_equal(v->t, J_STR);
	assert_string_equal(open_tok(f, "response.body:shop/json/$.ssn", v->s,
				     v->slen, NULL), "123-45-6789");
	v = j_get(j, "card"); /* a number became a quoted token */
	assert_int_equal(v->t, J_STR);
	assert_string_equal(open_tok(f, "response.body:shop/json/$.card", v->s,
				     v->slen, NULL), "4111111111111111");
	v = j_get(j, "mail");
	assert_string_equal(open_tok(f, "response.body:shop/detector/email",
				     v->s, v->slen, NULL), "bob@example.com");
	assert_int_equal(j_get(j, "n")->n, 2);
	j_free(j);
	/* findings: offsets in the whole body (the chunk started at 100) */
	char *list = malloc(f->xd.findings[1].len + 3);
	sprintf(list, "[%.*s]", (int)f->xd.findings[1].len,
		(const char *)f->xd.findings[1].p);
	j = j_parse(list, strlen(list));
	assert_non_null(j);
	assert_int_equal(j->n, 3);
	assert_true(j_is_str(j_get(j_at(j, 0), "where"), "response.body:shop/json/$.ssn"));
	assert_int_equal(j_get(j_at(j, 0), "offset")->i, 108);
	assert_int_equal(j_get(j_at(j, 0), "length")->i, 11);
	assert_true(j_is_str(j_get(j_at(j, 1), "action"), "seal"));
	j_free(j);
	free(list);
	assert_int_equal(f->xd.findings[0].len, 0);
	/* in a request the detector's deny denies (the $.card path rule
	 * above took that value before the detectors saw it) */
	assert_int_equal(body(f, EXTPROC_REQ_BODY, "application/json",
			      "{\"pay\":\"4111111111111111\"}", 0, true, &d),
			 EXTPROC_DENY);
	assert_string_equal(d.rule, "shop/detector/card");
	/* a route without body rules, or a type never scanned: kept */
	assert_int_equal(body(f, EXTPROC_REQ_BODY, "image/png", "bob@example.com",
			      5, false, &d), EXTPROC_KEEP);
	start(f, "shop.test", "/static/x", NULL);
	assert_int_equal(body(f, EXTPROC_REQ_BODY, "text/plain", "bob@example.com",
			      5, false, &d), EXTPROC_KEEP);
}

/* Chunks scanned alone: what touches a boundary inside the body is
 * redacted, so a value cut in two is never passed on in halves. */
static void test_chunk_boundaries(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *in;
		uint64_t off;
		bool last;
		enum extproc_verdict want;
		const char *out;
	} t[] = {
		{ "pay 5500 0000 ", 0, false, EXTPROC_REPLACE, "pay **********" },
		{ "0000 0004 now", 14, true, EXTPROC_REPLACE, "********* now" },
		{ "key=AKIAIOSF", 0, false, EXTPROC_REPLACE, "************" },
		{ "hello, world", 0, false, EXTPROC_REPLACE, "hello, *****" },
		{ "hello, world", 7, false, EXTPROC_REPLACE, "*****, *****" },
		{ "tail words.", 7, false, EXTPROC_REPLACE, "**** ******" },
		{ "(x) {y}", 7, false, EXTPROC_KEEP, NULL },
		{ "whole 5500 0000", 0, true, EXTPROC_KEEP, NULL },
		/* a chunk after one that ended between tokens: its first
		 * word is no cut token's rest, nothing to guard */
		{ "line one\n", 0, false, EXTPROC_KEEP, NULL },
		{ "next line\n", 9, false, EXTPROC_KEEP, NULL },
		{ "Bearer ", 19, false, EXTPROC_KEEP, NULL },
		{ "abcdefghijkl x", 26, false, EXTPROC_REPLACE, "************ *" },
	};
	start(f, "shop.test", "/", NULL);
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct extproc_decision d;
		enum extproc_verdict v = body(f, EXTPROC_RESP_BODY, "text/plain",
					      t[i].in, t[i].off, t[i].last, &d);
		if (v != t[i].want || (t[i].out && (f->out.len != strlen(t[i].out) ||
						    memcmp(f->out.p, t[i].out, f->out.len))))
			print_error("case %zu: %d %.*s\n", i, v, (int)f->out.len,
				    f->out.p ? (const char *)f->out.p : "");
		assert_int_equal(v, t[i].want);
		if (t[i].out) {
			assert_int_equal(f->out.len, strlen(t[i].out));
			assert_memory_equal(f->out.p, t[i].out, f->out.len);
		}
	}
}

/* A JSON body in two STREAMED chunks, cut at every offset: the parts put
 * together are valid JSON, no canary is left in plain, and each value the
 * cut does not touch comes out as it does from the whole body (a path
 * rule's token opens to the value though its key was before the cut). */
static void test_json_stream_cuts(void **state)
{
	struct fx *f = *state;
	static const char in[] =
		"{\"n\": [1, 2], \"ssn\": \"123-45-6789\", \"card\": "
		"4111111111111111, \"deep\": {\"mail\": \"bob@example.com\"},"
		" \"t\": true}";
	static const char *const canary[] = { "123-45-6789", "4111111111111111",
					      "bob@example.com" };
	size_t len = sizeof(in) - 1;
	const char *ssn_at = strstr(in, "123-45-6789");
	/* a cut in the key "ssn" stars the key's first part (the end
	 * guard: a key can hold a detector's hit); one in its value seals
	 * the parts apart */
	size_t ssn0 = (size_t)(strstr(in, "\"ssn\"") - in) + 1;
	size_t ssn1 = (size_t)(ssn_at - in) + 11;
	char *joined = malloc(4096);
	unsigned opened = 0;
	for (size_t k = 1; k < len; k++) {
		struct extproc_decision d;
		char a[sizeof(in)], b[sizeof(in)];
		memcpy(a, in, k);
		a[k] = 0;
		memcpy(b, in + k, len - k + 1);
		start(f, "shop.test", "/", NULL);
		size_t jl = 0;
		enum extproc_verdict v = body(f, EXTPROC_RESP_BODY,
					      "application/json", a, 0, false,
					      &d);
		const char *o = v == EXTPROC_KEEP ? a : (const char *)f->out.p;
		size_t ol = v == EXTPROC_KEEP ? k : f->out.len;
		assert_int_not_equal(v, EXTPROC_REMOVE);
		memcpy(joined, o, ol);
		jl = ol;
		v = body(f, EXTPROC_RESP_BODY, "application/json", b, k, true,
			 &d);
		o = v == EXTPROC_KEEP ? b : (const char *)f->out.p;
		ol = v == EXTPROC_KEEP ? len - k : f->out.len;
		assert_int_not_equal(v, EXTPROC_REMOVE);
		memcpy(joined + jl, o, ol);
		jl += ol;
		for (size_t c = 0; c < 3; c++)
			if (memmem(joined, jl, canary[c], strlen(canary[c])))
				fail_msg("cut %zu: %s in %.*s", k, canary[c],
					 (int)jl, joined);
		struct jv *j = j_parse(joined, jl);
		if (!j)
			fail_msg("cut %zu: not JSON: %.*s", k, (int)jl, joined);
		if (k < ssn0 || k > ssn1) {
			struct jv *s = j_get(j, "ssn");
			if (!s)
				fail_msg("cut %zu: %.*s", k, (int)jl, joined);
			assert_int_equal(s->t, J_STR);
			assert_string_equal(
				open_tok(f, "response.body:shop/json/$.ssn",
					 s->s, s->slen, NULL),
				"123-45-6789");
			opened++;
		}
		/* a literal cut by the boundary is no detector's: kept */
		struct jv *t = j_get(j, "t");
		size_t t0 = (size_t)(strstr(in, "\"t\"") - in) + 1;
		if (k != t0 + 1 && (!t || t->t != J_BOOL))
			fail_msg("cut %zu: %.*s", k, (int)jl, joined);
		j_free(j);
	}
	assert_true(opened > len / 2);
	free(joined);
}

/* The guard at the end of a chunk cut inside a JSON escape takes the
 * backslash too: the parts put together stay JSON. */
static void test_json_stream_escape_cut(void **state)
{
	struct fx *f = *state;
	static const char *const a[] = { "{\"m\": \"caf\\u00e9s",
					 "{\"m\": \"one\\nTh", "{\"m\": \"x\\\\y" };
	static const char *const b[] = { " ok\"}", "e end\"}", "z\"}" };
	for (size_t i = 0; i < 3; i++) {
		struct extproc_decision d;
		char joined[128];
		size_t jl;
		start(f, "shop.test", "/", NULL);
		enum extproc_verdict v = body(f, EXTPROC_RESP_BODY,
					      "application/json", a[i], 0,
					      false, &d);
		assert_int_equal(v, EXTPROC_REPLACE);
		memcpy(joined, f->out.p, f->out.len);
		jl = f->out.len;
		v = body(f, EXTPROC_RESP_BODY, "application/json", b[i],
			 strlen(a[i]), true, &d);
		const char *o = v == EXTPROC_KEEP ? b[i] : (const char *)f->out.p;
		size_t ol = v == EXTPROC_KEEP ? strlen(b[i]) : f->out.len;
		memcpy(joined + jl, o, ol);
		jl += ol;
		struct jv *j = j_parse(joined, jl);
		if (!j)
			fail_msg("not JSON: %.*s", (int)jl, joined);
		j_free(j);
	}
}

/* Real tokens are longer than a few hundred bytes (ID tokens of 1-2 KB are
 * common). Such a token in a STREAMED body, in text, after "Bearer" or in
 * a JSON string, cut anywhere by a chunk boundary: no 24-byte piece of it
 * may pass in plain, in either chunk. */
static void long_token(char *jwt, size_t *n, char *opaque, size_t *on)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t x = 2463534242u;
	size_t k = 0;
	k += (size_t)sprintf(jwt, "eyJhbGciOiJSUzI1NiIsImtpZCI6IjFlOWdkazcifQ.eyJ");
	for (int part = 0; part < 2; part++) {
		for (int i = 0; i < (part ? 342 : 1000); i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			jwt[k++] = b64[x & 63];
		}
		if (!part)
			jwt[k++] = '.';
	}
	jwt[k] = 0;
	*n = k;
	for (k = 0; k < 600; k++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		opaque[k] = b64[x & 63];
	}
	opaque[k] = 0;
	*on = k;
}

/* Whether any |w|-byte piece of |secret| is in |out|. */
static bool piece_in(const char *out, size_t ol, const char *secret, size_t n,
		     size_t w, size_t *at)
{
	for (size_t i = 0; i + w <= n; i++)
		if (memmem(out, ol, secret + i, w)) {
			*at = i;
			return true;
		}
	return false;
}

static void test_long_token_cuts(void **state)
{
	struct fx *f = *state;
	static char jwt[2048], opaque[1024], in[4096];
	size_t jn, on;
	long_token(jwt, &jn, opaque, &on);
	static const struct {
		const char *ctype, *fmt;
		int which; /* 0: the JWT, 1: the opaque bearer token */
	} cases[] = {
		{ "text/plain", "token: %s end\n", 0 },
		{ "text/plain", "Authorization: Bearer %s\n", 1 },
		{ "application/json", "{\"note\": \"x\", \"id_token\": \"%s\"}", 0 },
	};
	char *joined = malloc(16384);
	for (size_t ci = 0; ci < sizeof(cases) / sizeof(*cases); ci++) {
		const char *secret = cases[ci].which ? opaque : jwt;
		size_t sn = cases[ci].which ? on : jn;
		size_t len = (size_t)snprintf(in, sizeof(in), cases[ci].fmt, secret);
		size_t s0 = (size_t)(strstr(in, secret) - in);
		for (size_t k = s0 - 3; k < s0 + sn + 3; k += 29) {
			struct extproc_decision d;
			char a[4096], b[4096];
			memcpy(a, in, k);
			a[k] = 0;
			memcpy(b, in + k, len - k + 1);
			start(f, "shop.test", "/", NULL);
			enum extproc_verdict v = body(f, EXTPROC_RESP_BODY,
						      cases[ci].ctype, a, 0,
						      false, &d);
			const char *o = v == EXTPROC_KEEP ? a : (const char *)f->out.p;
			size_t ol = v == EXTPROC_KEEP ? k : f->out.len;
			assert_true(v == EXTPROC_KEEP || v == EXTPROC_REPLACE);
			memcpy(joined, o, ol);
			size_t jl = ol;
			v = body(f, EXTPROC_RESP_BODY, cases[ci].ctype, b, k,
				 true, &d);
			o = v == EXTPROC_KEEP ? b : (const char *)f->out.p;
			ol = v == EXTPROC_KEEP ? len - k : f->out.len;
			assert_true(v == EXTPROC_KEEP || v == EXTPROC_REPLACE);
			memcpy(joined + jl, o, ol);
			jl += ol;
			size_t at;
			if (piece_in(joined, jl, secret, sn, 24, &at))
				fail_msg("case %zu cut %zu (token at %zu): its "
					 "bytes %zu.. in plain: %.*s", ci, k,
					 s0, at, (int)jl, joined);
		}
	}
	free(joined);
}

/* Runs |in| through the decider as two chunks of one body cut at |k|;
 * the parts as the data plane sends them on, side by side, into |out|.
 * Returns their length. */
static size_t two_chunks(struct fx *f, const char *ctype, const char *in,
			 size_t len, size_t k, char *out)
{
	struct extproc_decision d;
	struct extproc_chunk c = { .part = EXTPROC_REQ_BODY,
				   .data = (const uint8_t *)in, .len = k };
	size_t ol = 0;
	start(f, "shop.test", "/", NULL);
	for (int i = 0; i < 2; i++) {
		enum extproc_verdict v = decide(f, &c, ctype, &d);
		assert_true(v == EXTPROC_KEEP || v == EXTPROC_REPLACE);
		const void *o = v == EXTPROC_KEEP ? (const void *)c.data : f->out.p;
		size_t n = v == EXTPROC_KEEP ? c.len : f->out.len;
		memcpy(out + ol, o, n);
		ol += n;
		c = (struct extproc_chunk){ .part = EXTPROC_REQ_BODY,
					    .data = (const uint8_t *)in + k,
					    .len = len - k, .off = k,
					    .last = true };
	}
	return ol;
}

/* A form in two STREAMED chunks, cut at every offset: a value the policy
 * seals (password, access_token) passes in neither part, whatever
 * characters it holds -- the continuation used to be guarded only up to
 * the first character no detector hit has ('*', '!', '('), the rest went
 * out in plain; a pair longer than the carry keeps its name (its value is
 * still sealed), one whose name is too long to keep (a prefix rule's,
 * "nn*") has its continuation redacted up to the next '&', and the pairs
 * after it are untouched. */
static void test_form_stream_cuts(void **state)
{
	struct fx *f = *state;
	static char big[12288], lname[8192];
	static const struct {
		const char *in, *secret, *after;
	} t[] = {
		{ "user=ann&password=Sup3r*Secr3t*Passw0rd&x=1",
		  "Sup3r*Secr3t*Passw0rd", "&x=1" },
		{ "a=1&access_token=abc.def~ghi*SECRETVALUE&b=2",
		  "abc.def~ghi*SECRETVALUE", "&b=2" },
		{ "a=1&password=p(SECR!ETVALUE)&b=2", "p(SECR!ETVALUE)", "&b=2" },
		{ big, NULL, "&keep=1" },
		{ lname, NULL, "&keep=2" },
	};
	/* a 6,000-byte password (past the 4 KiB carry: its name is kept)
	 * and a pair whose 5,000-byte name cannot be kept */
	size_t k = (size_t)sprintf(big, "a=1&password=");
	for (int i = 0; i < 6000; i++)
		big[k++] = "Qx*!(7"[i % 6];
	strcpy(big + k, "&keep=1");
	memset(lname, 'n', 5000);
	k = 5000 + (size_t)sprintf(lname + 5000, "=S3cr*t!V4lue&keep=2");
	char *out = malloc(65536);
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		size_t len = strlen(t[i].in);
		size_t step = len > 1000 ? 97 : 1;
		for (size_t cut = 1; cut < len; cut += step) {
			size_t ol = two_chunks(f, "application/x-www-form-urlencoded",
					       t[i].in, len, cut, out);
			size_t at;
			const char *sec = t[i].secret;
			if (!sec)
				sec = i == 3 ? big + 13 : "S3cr*t!V4lue";
			size_t sl = i == 3 ? 6000 : strlen(sec);
			if (piece_in(out, ol, sec, sl, i == 3 ? 12 : 5, &at))
				fail_msg("case %zu cut %zu: secret bytes %zu.. in "
					 "plain: %.*s", i, cut, at,
					 (int)(ol < 300 ? ol : 300), out);
			/* (a cut inside it may star the part before) */
			size_t al = strlen(t[i].after);
			if (cut <= len - al &&
			    (ol < al || memcmp(out + ol - al, t[i].after, al)))
				fail_msg("case %zu cut %zu: the pair after it "
					 "changed: %.*s", i, cut, (int)ol, out);
		}
	}
	free(out);
}

/* An address escaped in JSON and cut right after the escape's backslash
 * in STREAMED chunks: the guard run at the end of the first goes on over
 * the backslash, so the local part is starred with the rest (it passed in
 * plain). */
static void test_escape_cut(void **state)
{
	struct fx *f = *state;
	static const char esc[] = "{\"note\":\"mail alice.secret\\u0040example.com now\"}";
	char joined[256];
	size_t cut = (size_t)(strstr(esc, "\\u0040") - esc) + 1;
	size_t jl = two_chunks(f, "application/json", esc, sizeof(esc) - 1, cut,
			       joined);
	assert_null(memmem(joined, jl, "alice", 5));
}

/* limits.body_bytes is a chunk's: the pair carried from the chunk before
 * (a long comment) does not count against it, so a chunk within the limit
 * keeps its tail (it was starred as past body_bytes). */
static void test_form_carry_limit(void **state)
{
	struct fx *f = *state;
	size_t al = 12 + 3000, bl = 64512;
	char *a = malloc(al + 1), *b = malloc(bl + 1);
	memcpy(a, "a=1&comment=", 12);
	memset(a + 12, 'x', 3000);
	memset(b, 'y', 100);
	for (size_t i = 100; i < bl; i += 6)
		memcpy(b + i, "&n=hi+", bl - i < 6 ? bl - i : 6);
	struct extproc_decision d;
	struct extproc_chunk c = { .part = EXTPROC_REQ_BODY,
				   .data = (const uint8_t *)a, .len = al };
	start(f, "shop.test", "/", NULL);
	enum extproc_verdict v = decide(f, &c, "application/x-www-form-urlencoded", &d);
	assert_true(v == EXTPROC_KEEP || v == EXTPROC_REPLACE);
	c = (struct extproc_chunk){ .part = EXTPROC_REQ_BODY,
				    .data = (const uint8_t *)b, .len = bl,
				    .off = al, .last = true };
	v = decide(f, &c, "application/x-www-form-urlencoded", &d);
	assert_int_equal(v, EXTPROC_KEEP);
	free(a);
	free(b);
}

/* A body with a content-encoding is compressed: the detectors would find
 * nothing in it (gzip of a card number is not a card number) and the
 * client decompresses it to plaintext, so it is not scanned but taken
 * whole by limits.unscanned (rule limit/compressed; redact here), with no
 * chunk guards that would star into it. */
static void test_encoded_body(void **state)
{
	struct fx *f = *state;
	/* bytes that would read as a card and an address if scanned */
	static const char in[] = "x\x1f\x8b card 4539148803436467 bob@example.com";
	size_t len = sizeof(in) - 1;
	for (int last = 0; last < 2; last++) {
		struct extproc_decision d;
		struct extproc_chunk c = {
			.part = EXTPROC_RESP_BODY, .data = (const uint8_t *)in,
			.len = len, .off = last ? 100 : 0, .last = last,
			.encoded = true,
		};
		start(f, "shop.test", "/", NULL);
		enum extproc_verdict v = decide(f, &c, "text/plain", &d);
		assert_int_equal(v, EXTPROC_REPLACE);
		assert_int_equal(f->out.len, len);
		for (size_t i = 0; i < len; i++)
			assert_int_equal(f->out.p[i], '*');
		/* the finding names the limit, not a detector */
		assert_non_null(memmem(f->xd.findings[1].p, f->xd.findings[1].len,
				       "limit/compressed", 16));
	}
}

/* ---- keys ---------------------------------------------------------------------- */

/* A retired key snapshot is reclaimed only after the thread passes a
 * quiescent point -- also when it made no decision since (idle). */
/* ---- protobuf bodies ---------------------------------------------------------- */

/* A protobuf writer for the tests (wire format by hand). */
struct pbw {
	uint8_t b[24576];
	size_t n;
};

static void w_varint(struct pbw *o, uint64_t v)
{
	do {
		o->b[o->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

static void w_len(struct pbw *o, unsigned field, const void *p, size_t n)
{
	w_varint(o, (uint64_t)field << 3 | 2);
	w_varint(o, n);
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void w_str(struct pbw *o, unsigned field, const char *s)
{
	w_len(o, field, s, strlen(s));
}

static void w_num(struct pbw *o, unsigned field, uint64_t v)
{
	w_varint(o, (uint64_t)field << 3);
	w_varint(o, v);
}

/* A gRPC frame that declares |declared| bytes and holds |n|. */
static void w_frame(struct pbw *o, uint8_t flag, const struct pbw *m,
		    uint32_t declared)
{
	o->b[o->n++] = flag;
	for (int i = 0; i < 4; i++)
		o->b[o->n++] = (uint8_t)(declared >> (24 - 8 * i));
	memcpy(o->b + o->n, m->b, m->n);
	o->n += m->n;
}

static enum extproc_verdict pb_decide(struct fx *f, enum extproc_part part,
				      const char *ctype, const struct pbw *in,
				      bool grpc_message, bool compressed,
				      struct extproc_decision *d)
{
	struct extproc_chunk c = {
		.part = part, .data = in->b, .len = in->n, .last = true,
		.grpc_message = grpc_message, .compressed = compressed,
	};
	return decide(f, &c, ctype, d);
}

/* The message of the protobuf tests, with |mail| where the address was:
 * { 1: { 2: { 2: 80 x "x", " <mail>" }, 3: 7 }, 4: "keep me" } -- the innermost
 * string is 96 bytes with the address, past 127 with a token, so its
 * varint grows to two bytes. */
static void app_msg(struct pbw *m, const char *mail, size_t mlen)
{
	struct pbw inner = { .n = 0 }, mid = { .n = 0 };
	char text[512];
	memset(text, 'x', 80);
	text[80] = ' ';
	memcpy(text + 81, mail, mlen);
	w_len(&inner, 2, text, 81 + mlen); /* tag 0x12: no text */
	w_len(&mid, 2, inner.b, inner.n);
	w_num(&mid, 3, 7);
	m->n = 0;
	w_len(m, 1, mid.b, mid.n);
	w_str(m, 4, "keep me");
}

/* The token at the first "stk1." of the output, opened. */
static const char *first_token(struct fx *f, const char **tok, size_t *tl)
{
	const char *o = (const char *)f->out.p;
	const char *t = memmem(o, f->out.len, "stk1.", 5);
	assert_non_null(t);
	*tok = t;
	*tl = tok_len(t, f->out.len - (size_t)(t - o));
	return open_tok(f, "request.body:shop/detector/email", t, *tl, NULL);
}

/* Tokens go into gRPC messages and every enclosing length follows: the
 * string's varint (one byte to two), the nested messages', the frame's
 * 4-byte prefix -- also of a frame cut short, which keeps declaring the
 * bytes it lacks. The result equals the message written with the token. */
static void test_protobuf_body(void **state)
{
	struct fx *f = *state;
	static const char mail[] = "bob@example.com";
	struct pbw m, in = { .n = 0 }, want = { .n = 0 };
	struct extproc_decision d;
	bool pb;
	assert_int_equal(policy_body_protobuf("application/grpc", 16, &pb),
			 POLICY_PB_FRAMED);
	assert_true(pb);
	assert_int_equal(policy_body_protobuf("Application/GRPC+proto; x=1", 27,
					      &pb), POLICY_PB_FRAMED);
	assert_int_equal(policy_body_protobuf("application/x-protobuf", 22, &pb),
			 0);
	assert_true(pb);
	assert_int_equal(policy_body_protobuf("application/grpc-web", 20, &pb),
			 POLICY_PB_FRAMED);
	assert_int_equal(policy_body_protobuf("application/grpc+json", 21, &pb),
			 POLICY_PB_FRAMED | POLICY_PB_JSON);
	assert_int_equal(policy_body_protobuf("application/grpc+thrift", 23,
					      &pb),
			 POLICY_PB_FRAMED | POLICY_PB_RAW);
	assert_true(pb);
	policy_body_protobuf("application/grpc-web-text", 25, &pb);
	assert_false(pb);
	start(f, "shop.test", "/shop.v1.Orders/Create", NULL);
	app_msg(&m, mail, strlen(mail));
	w_frame(&in, 0, &m, (uint32_t)m.n);
	w_frame(&in, 0, &m, (uint32_t)m.n + 500); /* cut short */
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc", &in,
				   false, false, &d), EXTPROC_REPLACE);
	const char *tok;
	size_t tl;
	assert_string_equal(first_token(f, &tok, &tl), mail);
	app_msg(&m, tok, tl);
	w_frame(&want, 0, &m, (uint32_t)m.n);
	w_frame(&want, 0, &m, (uint32_t)m.n + 500);
	assert_int_equal(f->out.len, want.n);
	assert_memory_equal(f->out.p, want.b, want.n);
	assert_non_null(memmem(f->xd.findings[0].p, f->xd.findings[0].len,
			       "shop/detector/email", 19));

	/* GRPC body mode: one message, no frame, whatever the content-type */
	app_msg(&m, mail, strlen(mail));
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc", &m,
				   true, false, &d), EXTPROC_REPLACE);
	assert_string_equal(first_token(f, &tok, &tl), mail);
	struct pbw m2;
	app_msg(&m2, tok, tl);
	assert_int_equal(f->out.len, m2.n);
	assert_memory_equal(f->out.p, m2.b, m2.n);
	/* fields that are text and also parse as a message cannot be told
	 * apart without the schema; their hits under both readings become
	 * stars in place, so no length moves and the body is valid either
	 * way (the record holds the tokens):
	 *  - "hxhy@hxhx.hxhx": 'h' is field 13 (varint), 'x' field 15, '@'
	 *    field 8; the address runs over what would be tags;
	 *  - "Bearer <token68>" of 103 bytes: 'B' is field 8 (bytes) of
	 *    length 'e' (101): as a message the token sits in a string
	 *    without the "Bearer" the detector needs;
	 *  - "Re: ...": 'R' field 10 of length 'e', a real string that a
	 *    token would break as a message (its "length" rewritten);
	 *  - a real nested message {1: 80 x "x", " <mail>"} (tag 0x0a and a
	 *    printable length) */
	static const char *const amb_text[] = {
		"hxhy@hxhx.hxhx",
		"Bearer abcdcEfGh1JkLmN0pQrStUvWxYz234567890aBcDeFgHiJkLmNoPq"
		"RsTuVwXyZ0123456789abcdefghijklmnopqrstuvwx",
		"Re: lunch on friday? write to ann@example.com and tell the "
		"others......................................", /* 103 */
		NULL,
	};
	for (int i = 0; i < 4; i++) {
		struct pbw amb = { .n = 0 }, in2 = { .n = 0 };
		if (amb_text[i] && i)
			assert_int_equal(strlen(amb_text[i]), 103);
		if (amb_text[i]) {
			w_str(&amb, 3, amb_text[i]);
		} else {
			char t[96];
			memset(t, 'x', 80);
			memcpy(t + 80, " bob@example.com", 16);
			w_len(&in2, 1, t, 96);
			w_len(&amb, 3, in2.b, in2.n);
		}
		size_t before = f->xd.findings[0].len;
		assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY,
					   "application/x-protobuf", &amb,
					   false, false, &d), EXTPROC_REPLACE);
		assert_int_equal(f->out.len, amb.n);
		assert_memory_equal(f->out.p, amb.b, 2); /* tag, length */
		assert_null(memmem(f->out.p, f->out.len, "@", 1));
		assert_null(memmem(f->out.p, f->out.len, "abcdcEfGh1", 10));
		assert_non_null(memchr(f->out.p, '*', f->out.len));
		assert_true(f->xd.findings[0].len > before); /* recorded */
	}
	/* bytes that are not text (here a nested message holding a proto2
	 * group, which the walker does not read): stars in place, the inner
	 * length left true */
	struct pbw grp = { .n = 0 }, gi = { .n = 0 };
	gi.b[gi.n++] = 0x13; /* field 2, start group */
	gi.b[gi.n++] = 0x14; /* field 2, end group */
	w_str(&gi, 3, "bob@example.com");
	w_len(&grp, 1, gi.b, gi.n);
	assert_int_equal(pb_decide(f, EXTPROC_RESP_BODY, "application/x-protobuf",
				   &grp, false, false, &d), EXTPROC_REPLACE);
	assert_int_equal(f->out.len, grp.n);
	assert_memory_equal(f->out.p, grp.b, 6);
	assert_memory_equal(f->out.p + 6, "***************", 15);
	/* a GRPC-mode message is protobuf whatever its content-type says */
	app_msg(&m, mail, strlen(mail));
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY,
				   "application/octet-stream", &m, true, false,
				   &d), EXTPROC_REPLACE);
	assert_null(memmem(f->out.p, f->out.len, mail, strlen(mail)));
	/* a message without hits is kept as it is */
	struct pbw plain = { .n = 0 };
	w_str(&plain, 1, "nothing here");
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/x-protobuf",
				   &plain, false, false, &d), EXTPROC_KEEP);
	/* a card number in a request's message denies it; in a response it
	 * is sealed */
	struct pbw card = { .n = 0 }, fr = { .n = 0 };
	w_str(&card, 2, "pay 4111111111111111 now");
	w_frame(&fr, 0, &card, (uint32_t)card.n);
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc", &fr,
				   false, false, &d), EXTPROC_DENY);
	assert_string_equal(d.rule, "shop/detector/card");
	assert_int_equal(pb_decide(f, EXTPROC_RESP_BODY, "application/grpc", &fr,
				   false, false, &d), EXTPROC_REPLACE);
	assert_null(memmem(f->out.p, f->out.len, "4111", 4));
	assert_int_equal(f->out.p[5], 0x12); /* field 2, still a string */
}

/* The output expected when |in|'s only change is each |needle| starred
 * in place. */
static void starred(const struct pbw *in, const char *needle,
		    struct pbw *out)
{
	*out = *in;
	size_t n = strlen(needle);
	for (uint8_t *p = out->b; (p = memmem(p, out->n - (size_t)(p - out->b),
					      needle, n)); p += n)
		memset(p, '*', n);
}

static void assert_starred(struct fx *f, const struct pbw *in,
			   const char *needle)
{
	static struct pbw want;
	starred(in, needle, &want);
	assert_int_equal(f->out.len, want.n);
	assert_memory_equal(f->out.p, want.b, want.n);
}

/* Compressed bytes are unscanned (redact: stars of the same length). The
 * rest that cannot be read as protobuf -- a malformed rest, a flag byte
 * that is not gRPC, nesting past limits.json_depth or past the work cap
 * -- is scanned raw and its hits starred in place, so its structure, if
 * any, keeps its lengths. No address is left in plain. */
static void test_protobuf_unreadable(void **state)
{
	struct fx *f = *state;
	struct extproc_decision d;
	struct pbw m = { .n = 0 }, in = { .n = 0 };
	start(f, "shop.test", "/", NULL);
	/* compressed frame */
	w_str(&m, 1, "bob@example.com");
	w_frame(&in, 1, &m, (uint32_t)m.n);
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc", &in,
				   false, false, &d), EXTPROC_REPLACE);
	assert_int_equal(f->out.len, in.n);
	assert_memory_equal(f->out.p, in.b, 5);
	for (size_t i = 5; i < in.n; i++)
		assert_int_equal(f->out.p[i], '*');
	/* a compressed GRPC-mode message */
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, NULL, &m, true, true,
				   &d), EXTPROC_REPLACE);
	assert_int_equal(f->out.len, m.n);
	assert_null(memmem(f->out.p, f->out.len, "bob@", 4));
	/* malformed: text where a message should be ('h' is field 13,
	 * varint 'e'; 'l' has wire type 4, a group end) */
	struct pbw t = { .n = 0 };
	memcpy(t.b, "hello bob@example.com", 21);
	t.n = 21;
	in.n = 0;
	w_frame(&in, 0, &t, (uint32_t)t.n);
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc", &in,
				   false, false, &d), EXTPROC_REPLACE);
	assert_starred(f, &in, "bob@example.com");
	/* a flag byte that is not gRPC: not gRPC from there on */
	in.b[0] = 7;
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc", &in,
				   false, false, &d), EXTPROC_REPLACE);
	assert_starred(f, &in, "bob@example.com");
	/* a proto2 group at the top: G { group Grp = 1 { a = 2 }; b = 3 } */
	struct pbw g = { .n = 0 };
	g.b[g.n++] = 0x0b; /* field 1, start group */
	w_str(&g, 2, "to bob@example.com");
	g.b[g.n++] = 0x0c; /* field 1, end group */
	w_str(&g, 3, "after the group");
	assert_int_equal(pb_decide(f, EXTPROC_RESP_BODY, "application/x-protobuf",
				   &g, false, false, &d), EXTPROC_REPLACE);
	assert_starred(f, &g, "bob@example.com");
	/* 70 levels of nesting (limits.json_depth is 64) */
	struct pbw a = { .n = 0 }, b;
	w_str(&a, 1, "bob@example.com");
	for (int i = 0; i < 69; i++) {
		b.n = 0;
		w_len(&b, 1, a.b, a.n);
		a = b;
	}
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/x-protobuf",
				   &a, false, false, &d), EXTPROC_REPLACE);
	assert_starred(f, &a, "bob@example.com");

	/* a chain of 40 nested messages around 20 KB: telling each level's
	 * kind reads all below it, past the work cap (16 bytes per body byte
	 * + 1 MiB) before the bottom: the rest is unscanned, no length
	 * changes, nothing passes in plain */
	static struct pbw big, tmp;
	char text[20000];
	memset(text, 'a', sizeof(text));
	memcpy(text + 100, " bob@example.com ", 17);
	big.n = 0;
	w_len(&big, 1, text, sizeof(text));
	for (int i = 0; i < 39; i++) {
		tmp.n = 0;
		w_len(&tmp, 1, big.b, big.n);
		big = tmp;
	}
	assert_true(big.n < sizeof(big.b));
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/x-protobuf",
				   &big, false, false, &d), EXTPROC_REPLACE);
	assert_starred(f, &big, "bob@example.com");
}

/* Found by a second review: a bearer token in a nested string whose
 * message (Auth{header = 1}, bytes "\n" 'g' + header) reads both as text
 * and as fields, and so does the header itself ('B' field 8 of length
 * 101): both readings at every level, the token never passes. A cut at
 * limits.body_bytes (64 KiB) moves back past a value it splits and to a
 * UTF-8 character's start. gRPC-Web frames get tokens and their lengths;
 * gRPC frames of another codec are read raw, in place. */
static void test_protobuf_review(void **state)
{
	struct fx *f = *state;
	struct extproc_decision d;
	static const char bearer[] =
		"Bearer abcdcEfGh1JkLmN0pQrStUvWxYz234567890aBcDeFgHiJkLmNoPq"
		"RsTuVwXyZ0123456789abcdefghijklmnopqrstuvwx";
	struct pbw auth = { .n = 0 }, req = { .n = 0 };
	w_str(&auth, 1, bearer);
	w_len(&req, 3, auth.b, auth.n);
	start(f, "shop.test", "/", NULL);
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/x-protobuf",
				   &req, false, false, &d), EXTPROC_REPLACE);
	assert_int_equal(f->out.len, req.n);
	assert_null(memmem(f->out.p, f->out.len, "abcdcEfGh1", 10));

	/* a string of 70,000 bytes: a card number across the limit, a
	 * 3-byte character on it */
	static char text[70000];
	memset(text, '.', sizeof(text));
	size_t at = 65536 - 4 - 15; /* the last group past the limit */
	memcpy(text + at, " 4111 1111 1111 1111 ", 21);
	/* (larger than the test writer's buffer: built by hand) */
	size_t n = 4 + sizeof(text);
	uint8_t *b = malloc(n);
	b[0] = 0x0a;
	b[1] = (uint8_t)(0x80 | (sizeof(text) & 0x7f));
	b[2] = (uint8_t)(0x80 | ((sizeof(text) >> 7) & 0x7f));
	b[3] = (uint8_t)(sizeof(text) >> 14);
	memcpy(b + 4, text, sizeof(text));
	struct extproc_chunk c = { .part = EXTPROC_RESP_BODY, .data = b,
				   .len = n, .last = true };
	assert_int_equal(decide(f, &c, "application/x-protobuf", &d),
			 EXTPROC_REPLACE);
	assert_null(memmem(f->out.p, f->out.len, "4111", 4));
	assert_null(memmem(f->out.p, f->out.len, "1111", 4));
	/* the same text as text/plain: the cut is guarded there too */
	struct extproc_chunk ct = { .part = EXTPROC_RESP_BODY, .data = b + 4,
				    .len = sizeof(text), .last = true };
	assert_int_equal(decide(f, &ct, "text/plain", &d), EXTPROC_REPLACE);
	assert_null(memmem(f->out.p, f->out.len, "1111", 4));
	memset(b + 4, 'a', sizeof(text));
	memcpy(b + 65535, "\xe2\x82\xac", 3); /* on the limit */
	assert_int_equal(decide(f, &c, "application/x-protobuf", &d),
			 EXTPROC_REPLACE);
	assert_int_equal(f->out.len, n);
	assert_true(f->out.p[65535] == '*' ||
		    memcmp(f->out.p + 65535, "\xe2\x82\xac", 3) == 0);
	free(b);

	/* gRPC-Web: frames as gRPC, a trailers frame (flag 0x80) read raw */
	static const char mail[] = "bob@example.com";
	struct pbw m, web = { .n = 0 }, tr = { .n = 0 };
	app_msg(&m, mail, strlen(mail));
	w_frame(&web, 0, &m, (uint32_t)m.n);
	static const char trailers[] = "grpc-status:0\r\nx-mail:bob@example.com\r\n";
	memcpy(tr.b, trailers, sizeof(trailers) - 1);
	tr.n = sizeof(trailers) - 1;
	w_frame(&web, 0x80, &tr, (uint32_t)tr.n);
	assert_int_equal(pb_decide(f, EXTPROC_RESP_BODY, "application/grpc-web",
				   &web, false, false, &d), EXTPROC_REPLACE);
	const char *tok;
	size_t tl;
	const char *o = (const char *)f->out.p;
	tok = memmem(o, f->out.len, "stk1.", 5);
	assert_non_null(tok);
	tl = tok_len(tok, f->out.len - (size_t)(tok - o));
	struct pbw want = { .n = 0 }, m2;
	app_msg(&m2, tok, tl);
	w_frame(&want, 0, &m2, (uint32_t)m2.n);
	assert_memory_equal(f->out.p, want.b, want.n);
	assert_int_equal(f->out.len, want.n + tr.n + 5);
	assert_null(memmem(f->out.p, f->out.len, mail, strlen(mail)));
	/* gRPC framing around JSON (found by a third review: read raw, the
	 * policy's JSON rules were skipped): each frame a JSON body, its
	 * tokens quoted, its length following them */
	struct pbw js = { .n = 0 }, jf = { .n = 0 };
	static const char doc[] = "{\"user\":\"ann\",\"password\":\"hunter2\"}";
	memcpy(js.b, doc, sizeof(doc) - 1);
	js.n = sizeof(doc) - 1;
	w_frame(&jf, 0, &js, (uint32_t)js.n);
	assert_int_equal(pb_decide(f, EXTPROC_RESP_BODY, "application/grpc+json",
				   &jf, false, false, &d), EXTPROC_REPLACE);
	assert_null(memmem(f->out.p, f->out.len, "hunter2", 7));
	uint32_t fl = (uint32_t)f->out.p[1] << 24 | (uint32_t)f->out.p[2] << 16 |
		      (uint32_t)f->out.p[3] << 8 | f->out.p[4];
	assert_int_equal(fl, f->out.len - 5);
	struct jv *j = j_parse((const char *)f->out.p + 5, fl);
	assert_non_null(j); /* still JSON */
	assert_true(j_is_str(j_get(j, "user"), "ann"));
	assert_memory_equal(j_get(j, "password")->s, "stk1.g.", 7);
	j_free(j);
	/* ... and a GRPC-mode message of that codec is JSON too: a card in
	 * a request's string is denied (it was read as protobuf fields) */
	struct pbw cj = { .n = 0 };
	static const char cdoc[] =
		"\" please charge my card number: 5105105105105100\"";
	memcpy(cj.b, cdoc, sizeof(cdoc) - 1);
	cj.n = sizeof(cdoc) - 1;
	assert_int_equal(pb_decide(f, EXTPROC_REQ_BODY, "application/grpc+json",
				   &cj, true, false, &d), EXTPROC_DENY);
}

static void test_quiescent(void **state)
{
	struct fx *f = *state;
	struct keys_cache_stats st;
	extproc_policy_quiescent(f->pp);
	keys_cache_reclaim(f->keys);
	for (int busy = 0; busy < 2; busy++) {
		if (busy) {
			struct extproc_decision d;
			start(f, "shop.test", "/", NULL);
			assert_int_equal(header(f, EXTPROC_REQ_HEADERS, "x-secret",
						"v", &d), EXTPROC_REPLACE);
		}
		char name[16];
		snprintf(name, sizeof(name), "gone%d", busy);
		assert_int_equal(keys_cache_fail(f->keys, name, true), 0);
		assert_int_equal(keys_cache_publish(f->keys), 0);
		keys_cache_reclaim(f->keys);
		keys_cache_stats(f->keys, &st);
		assert_int_equal(st.snapshots_pending, 1);
		extproc_policy_quiescent(f->pp);
		keys_cache_reclaim(f->keys);
		keys_cache_stats(f->keys, &st);
		assert_int_equal(st.snapshots_pending, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_begin),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_fail_closed),
		cmocka_unit_test(test_json_body),
		cmocka_unit_test(test_chunk_boundaries),
		cmocka_unit_test(test_json_stream_cuts),
		cmocka_unit_test(test_json_stream_escape_cut),
		cmocka_unit_test(test_long_token_cuts),
		cmocka_unit_test(test_form_stream_cuts),
		cmocka_unit_test(test_encoded_body),
		cmocka_unit_test(test_form_carry_limit),
		cmocka_unit_test(test_escape_cut),
		cmocka_unit_test(test_protobuf_body),
		cmocka_unit_test(test_protobuf_unreadable),
		cmocka_unit_test(test_protobuf_review),
		cmocka_unit_test(test_quiescent),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
