/* Tests for src/policy_match.c: route selection and its precedence rule
 * (most specific authority, then the longest path prefix, then file
 * order), header rules (exact, prefix, case), the value scanner (cookies,
 * :path queries, URL headers, keep, fallbacks), form bodies, the splitting
 * helpers with their edge cases, and the span output's fail-closed end. */
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

#define NONE POLICY_ACTION_NONE
#define KEEP POLICY_ACTION_KEEP
#define SEAL POLICY_ACTION_SEAL
#define TOK POLICY_ACTION_TOKENIZE
#define HASH POLICY_ACTION_HASH
#define RED POLICY_ACTION_REDACT
#define DENY POLICY_ACTION_DENY

/* ---- routes ------------------------------------------------------------- */

static const char routes_text[] =
	"tenants:\n"
	"  a: {kms: pkcs11, kek: ka}\n"
	"  b: {kms: pkcs11, kek: kb}\n"
	"rule_sets: {r1: {}, r2: {}}\n"
	"default: {tenant: a, rules: r1}\n"
	"routes:\n"
	"  - name: any-api\n"
	"    match: {path_prefix: /api/}\n"
	"  - name: suffix\n"
	"    match: {authority: \"*.example.com\"}\n"
	"  - name: suffix-long\n"
	"    match: {authority: \"*.eu.example.com\"}\n"
	"    tenant: b\n"
	"  - name: exact\n"
	"    match: {authority: api.example.com}\n"
	"  - name: post-only\n"
	"    match: {authority: api.example.com, path_prefix: /v1/, "
	"methods: [POST, PUT]}\n"
	"    rules: r2\n"
	"  - name: exact-v1\n"
	"    match: {authority: api.example.com, path_prefix: /v1/}\n"
	"  - name: exact-v1-users\n"
	"    match: {authority: api.example.com, path_prefix: /v1/users}\n"
	"  - name: exact-port\n"
	"    match: {authority: \"api.example.com:8443\"}\n"
	"  - name: regex\n"
	"    match: {authority: api.example.com, path_regex: "
	"\"^/v1/orders/[0-9]+$\"}\n"
	"  - name: grpc-svc\n"
	"    match: {grpc_service: pkg.v1.Svc}\n"
	"  - name: grpc-m\n"
	"    match: {grpc_service: pkg.v1.Svc, grpc_method: Get}\n"
	"  - name: v6\n"
	"    match: {authority: \"[2001:db8::1]:8080\"}\n"
	"  - name: health\n"
	"    match: {path_regex: health}\n"
	"  - name: get-any\n"
	"    match: {methods: GET, authority: \"*.example.org\"}\n";

static void test_route_precedence(void **state)
{
	(void)state;
	struct policy *p = load(routes_text);
	static const struct {
		const char *auth, *path, *method, *ct, *want;
	} t[] = {
		{ "api.example.com", "/v1/users/7", "GET", NULL, "exact-v1-users" },
		{ "api.example.com", "/v1/orders/12", "GET", NULL, "regex" },
		{ "api.example.com", "/v1/orders/12?x=1#f", "GET", NULL, "regex" },
		{ "api.example.com", "/v1/orders/12x", "GET", NULL, "exact-v1" },
		{ "api.example.com", "/v1/x", "POST", NULL, "post-only" },
		{ "api.example.com", "/v1/x", "PUT", NULL, "post-only" },
		{ "api.example.com", "/v1/x", "GET", NULL, "exact-v1" },
		{ "api.example.com", "/v1/x", "post", NULL, "exact-v1" },
		{ "api.example.com", "/v1", "GET", NULL, "exact" },
		{ "API.Example.COM.", "/other", "GET", NULL, "exact" },
		{ "api.example.com:8443", "/", "GET", NULL, "exact-port" },
		{ "api.example.com:9999", "/", "GET", NULL, "exact" },
		{ "api.example.com", "/api/x", "GET", NULL, "exact" },
		{ "x.eu.example.com", "/api/1", "GET", NULL, "suffix-long" },
		{ "a.b.eu.example.com:443", "/", "GET", NULL, "suffix-long" },
		{ "eu.example.com", "/", "GET", NULL, "suffix" },
		{ "x.example.com", "/", "GET", NULL, "suffix" },
		{ "example.com", "/", "GET", NULL, "default" },
		{ "example.com", "/api/x", "GET", NULL, "any-api" },
		{ "xexample.com", "/", "GET", NULL, "default" },
		{ "other.org", "/api/x", "GET", NULL, "any-api" },
		{ "other.org", "/apix", "GET", NULL, "default" },
		{ "other.org", "/x", "GET", NULL, "default" },
		{ "other.org", "/pkg.v1.Svc/Get", "POST", "application/grpc",
		  "grpc-m" },
		{ "other.org", "/pkg.v1.Svc/List", "POST",
		  "application/grpc+proto", "grpc-svc" },
		{ "other.org", "/pkg.v1.Svc/GetMore", "POST", "Application/GRPC",
		  "grpc-svc" },
		{ "other.org", "/pkg.v1.Svc/Get", "POST", "application/json",
		  "default" },
		{ "other.org", "/pkg.v1.Svcx/Get", "POST", "application/grpc",
		  "default" },
		{ "[2001:db8::1]:8080", "/", "GET", NULL, "v6" },
		{ "[2001:db8::1]", "/", "GET", NULL, "default" },
		{ "other.org", "/healthz", "GET", NULL, "health" },
		{ "other.org", "/x?health", "GET", NULL, "default" },
		{ "www.example.org", "/", "GET", NULL, "get-any" },
		{ "www.example.org", "/", "POST", NULL, "default" },
		{ NULL, "/api/v", NULL, NULL, "any-api" },
		{ NULL, NULL, NULL, NULL, "default" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct policy_request rq = {
			.authority = t[i].auth,
			.authority_len = t[i].auth ? strlen(t[i].auth) : 0,
			.path = t[i].path,
			.path_len = t[i].path ? strlen(t[i].path) : 0,
			.method = t[i].method,
			.method_len = t[i].method ? strlen(t[i].method) : 0,
			.content_type = t[i].ct,
			.content_type_len = t[i].ct ? strlen(t[i].ct) : 0,
		};
		const struct policy_route *r = policy_route_for(p, &rq);
		assert_non_null(r);
		if (strcmp(policy_route_name(r), t[i].want) != 0)
			print_error("%s %s %s: got %s, want %s\n",
				    t[i].auth ? t[i].auth : "-",
				    t[i].path ? t[i].path : "-",
				    t[i].method ? t[i].method : "-",
				    policy_route_name(r), t[i].want);
		assert_string_equal(policy_route_name(r), t[i].want);
	}
	assert_string_equal(policy_route_name(policy_route_for(p, NULL)),
			    "default");
	/* regexes see exactly the path: a NUL is a byte (no match for
	 * [0-9]+$), the path is not read past its length (it is copied into
	 * a NUL-terminated buffer: regexec() wants a C string; fuzz
	 * regression), and paths of 8 KiB or more never match a regex */
	static const char nul_path[] = "/v1/orders/12\0x";
	struct policy_request rx = {
		.authority = "api.example.com", .authority_len = 15,
		.path = nul_path, .path_len = sizeof(nul_path) - 1,
	};
	assert_string_equal(policy_route_name(policy_route_for(p, &rx)),
			    "exact-v1");
	char *unterminated = malloc(13);
	memcpy(unterminated, "/v1/orders/12", 13);
	rx.path = unterminated;
	rx.path_len = 13;
	assert_string_equal(policy_route_name(policy_route_for(p, &rx)),
			    "regex");
	free(unterminated);
	size_t big = 8192;
	char *lp = malloc(big);
	memcpy(lp, "/v1/orders/", 11);
	memset(lp + 11, '7', big - 11);
	rx.path = lp;
	rx.path_len = big - 1;
	assert_string_equal(policy_route_name(policy_route_for(p, &rx)),
			    "regex");
	rx.path_len = big;
	assert_string_equal(policy_route_name(policy_route_for(p, &rx)),
			    "exact-v1");
	free(lp);
	/* tenant and rules: given, or the default route's */
	struct policy_request rq = { .authority = "x.eu.example.com",
				     .authority_len = 16 };
	const struct policy_route *r = policy_route_for(p, &rq);
	assert_string_equal(policy_route_tenant(r)->name, "b");
	assert_string_equal(policy_route_rules_name(r), "r1");
	rq = (struct policy_request){ .authority = "api.example.com",
				      .authority_len = 15, .path = "/v1/",
				      .path_len = 4, .method = "POST",
				      .method_len = 4 };
	r = policy_route_for(p, &rq);
	assert_string_equal(policy_route_tenant(r)->name, "a");
	assert_string_equal(policy_route_rules_name(r), "r2");
	/* the match order itself */
	static const char *const order[] = {
		/* exact authorities, host+port longest first, then by
		 * path prefix (a regex: its literal prefix), then file order */
		"exact-port", "v6", "regex", "exact-v1-users", "post-only",
		"exact-v1", "exact",
		/* suffixes, longest first */
		"suffix-long", "suffix", "get-any",
		/* any authority */
		"grpc-m", "grpc-svc", "any-api", "health",
	};
	assert_int_equal(policy_route_count(p), sizeof(order) / sizeof(*order));
	for (unsigned i = 0; i < policy_route_count(p); i++) {
		const char *n = policy_route_name(policy_route_at(p, i));
		if (strcmp(n, order[i]) != 0)
			print_error("order %u: %s, want %s\n", i, n, order[i]);
		assert_string_equal(n, order[i]);
	}
	assert_null(policy_route_at(p, policy_route_count(p)));
	policy_free(p);
}

static void test_route_no_routes(void **state)
{
	(void)state;
	struct policy *p = load("tenants: {t: {kms: pkcs11, kek: k}}\n");
	struct policy_request rq = { .authority = "x", .authority_len = 1 };
	const struct policy_route *r = policy_route_for(p, &rq);
	assert_ptr_equal(r, policy_default_route(p));
	assert_string_equal(policy_route_rules_name(r), "builtin");
	assert_string_equal(policy_route_tenant(r)->name, "t");
	assert_true(policy_route_scans_bodies(r));
	policy_free(p);
}

/* ---- header rules ------------------------------------------------------------- */

static const char headers_text[] =
	"tenants: {t: {kms: pkcs11, kek: k}}\n"
	"rule_sets:\n"
	"  h:\n"
	"    headers:\n"
	"      Authorization: seal\n"
	"      x-secret-*: redact\n"
	"      x-secret-public: keep\n"
	"      x-*: hash\n"
	"      x-deny: deny\n"
	"      \":authority\": tokenize\n";

static void test_header_action(void **state)
{
	(void)state;
	struct policy *p = load(headers_text);
	const struct policy_route *r = policy_default_route(p);
	static const struct {
		const char *name;
		uint8_t action;
		const char *rule;
	} t[] = {
		{ "authorization", SEAL, "h/header/Authorization" },
		{ "AUTHORIZATION", SEAL, NULL },
		{ "authorizatio", NONE, NULL },
		{ "authorizations", NONE, NULL },
		{ "x-secret-abc", RED, "h/header/x-secret-*" },
		{ "X-Secret-ABC", RED, NULL },
		{ "x-secret-", RED, NULL },
		{ "x-secret-public", KEEP, "h/header/x-secret-public" },
		{ "x-secret-publicx", RED, NULL },
		{ "x-other", HASH, "h/header/x-*" },
		{ "x-", HASH, NULL },
		{ "x", NONE, NULL },
		{ "x-deny", DENY, NULL },
		{ ":authority", TOK, NULL },
		{ "content-type", NONE, NULL },
		{ "", NONE, NULL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct policy_verdict v = policy_header_action(
			r, t[i].name, strlen(t[i].name));
		if (v.action != t[i].action)
			print_error("%s: %s\n", t[i].name,
				    policy_action_name(v.action));
		assert_int_equal(v.action, t[i].action);
		if (t[i].action == NONE) {
			assert_null(v.rule);
			assert_int_equal(v.kind, POLICY_KIND_NONE);
		} else {
			assert_int_equal(v.kind, POLICY_KIND_HEADER);
			assert_string_equal(policy_rule_name(p, v.rule_id),
					    v.rule);
		}
		if (t[i].rule)
			assert_string_equal(v.rule, t[i].rule);
	}
	/* deny on the tap is sealed */
	assert_int_equal(policy_action_tap(DENY), SEAL);
	assert_int_equal(policy_action_tap(HASH), HASH);
	policy_free(p);
}

/* ---- value scanning -------------------------------------------------------------- */

struct want {
	const char *text;
	uint8_t action;
	uint8_t kind;
	const char *rule; /* NULL: not checked */
};

struct vcase {
	const char *name, *value;
	struct want w[6];
};

#define HDR POLICY_KIND_HEADER
#define CK POLICY_KIND_COOKIE
#define QRY POLICY_KIND_QUERY
#define DET POLICY_KIND_DETECTOR

static const char values_text[] =
	"tenants: {t: {kms: pkcs11, kek: k}}\n"
	"rule_sets:\n"
	"  v:\n"
	"    headers:\n"
	"      authorization: seal\n"
	"      cookie: seal\n"
	"      set-cookie: seal\n"
	"      x-keep: keep\n"
	"    cookies:\n"
	"      session: tokenize\n"
	"      theme: keep\n"
	"      tr_*: hash\n"
	"    query:\n"
	"      token: seal\n"
	"      api key: redact\n"
	"      cb: keep\n"
	"    detectors:\n"
	"      email: tokenize\n"
	"      card: { action: seal, in: [path, body] }\n";

static const struct vcase vcases[] = {
	/* whole-value header rules */
	{ "authorization", "Bearer abcdefghijkl",
	  { { "Bearer abcdefghijkl", SEAL, HDR, "v/header/authorization" } } },
	{ "Authorization", "x", { { "x", SEAL, HDR, NULL } } },
	{ "authorization", "", { { 0 } } },
	/* keep: nothing, not even detectors */
	{ "x-keep", "bob@example.com", { { 0 } } },
	/* detectors in other headers, per their places */
	{ "x-other", "mail bob@example.com",
	  { { "bob@example.com", TOK, DET, "v/detector/email" } } },
	{ "x-other", "4111111111111111", { { 0 } } }, /* card: not headers */
	/* cookies: per cookie; without a cookie rule the header's rule */
	{ "cookie", "session=abc; theme=dark; other=zzz; tr_id=1",
	  { { "abc", TOK, CK, "v/cookie/session" },
	    { "zzz", SEAL, HDR, "v/header/cookie" },
	    { "1", HASH, CK, "v/cookie/tr_*" } } },
	{ "cookie", "  session = abc ;;  ; =x; noeq; other=a=b=c",
	  { { "abc", TOK, CK, NULL }, { "x", SEAL, HDR, NULL },
	    { "a=b=c", SEAL, HDR, NULL } } },
	{ "cookie", "session=", { { 0 } } },
	{ "cookie", "theme=bob@example.com", { { 0 } } },
	{ "cookie", "", { { 0 } } },
	{ "cookie", ";", { { 0 } } },
	/* set-cookie: the cookie-pair only; attributes are text */
	{ "set-cookie", "session=abc; Path=/; HttpOnly; Domain=bob@example.com",
	  { { "abc", TOK, CK, NULL }, { "bob@example.com", TOK, DET, NULL } } },
	{ "set-cookie", "theme=dark; Secure", { { 0 } } },
	{ "set-cookie", "other=v; Secure", { { "v", SEAL, HDR, NULL } } },
	{ "set-cookie", "noequals; Path=/", { { 0 } } },
	/* :path: query rules on decoded names, detectors on decoded text */
	{ ":path",
	  "/u/bob@example.com/x?token=abc&q=4111111111111111&api%20key=zz"
	  "&tok=1&cb=bob@example.com#frag",
	  { { "bob@example.com", TOK, DET, NULL },
	    { "abc", SEAL, QRY, "v/query/token" },
	    { "4111111111111111", SEAL, DET, "v/detector/card" },
	    { "zz", RED, QRY, "v/query/api key" } } },
	{ ":path", "/search?q=bob%40example.com",
	  { { "bob%40example.com", TOK, DET, NULL } } },
	{ ":path", "/search?q=a+b@example.com",
	  { { "a+b@example.com", TOK, DET, NULL } } },
	{ ":path", "/a?token=&token=x&=y&token&api+key=1",
	  { { "x", SEAL, QRY, NULL }, { "1", RED, QRY, NULL } } },
	{ ":path", "/a?token=a%26b%3D", { { "a%26b%3D", SEAL, QRY, NULL } } },
	/* the fragment's parameters too: an implicit grant's redirect */
	{ ":path", "/a?token=x#token=y",
	  { { "x", SEAL, QRY, NULL }, { "y", SEAL, QRY, NULL } } },
	{ ":path", "/a?to%6Ben=x", { { "x", SEAL, QRY, NULL } } },
	{ ":path", "/cards/4111111111111111",
	  { { "4111111111111111", SEAL, DET, NULL } } },
	{ ":path", "/cards/4111%201111%201111%201111",
	  { { "4111%201111%201111%201111", SEAL, DET, NULL } } },
	/* an HTML form's GET: '+' between digits reads as a blank */
	{ ":path", "/search?card=4539+1488+0343+6467&x=1",
	  { { "4539+1488+0343+6467", SEAL, DET, NULL } } },
	{ ":path", "/search?q=1+2+3&m=a+b@example.com",
	  { { "a+b@example.com", TOK, DET, NULL } } },
	{ ":path", "/a?", { { 0 } } },
	{ ":path", "?token=t", { { "t", SEAL, QRY, NULL } } },
	/* URL-valued headers get query rules too */
	{ "referer", "https://x.example/?token=abc",
	  { { "abc", SEAL, QRY, NULL } } },
	{ "location", "/next?token=abc&x=4111111111111111",
	  { { "abc", SEAL, QRY, NULL } } },
	{ "location", "https://c.example/cb#token=tok_SECRET1234&state=xyz",
	  { { "tok_SECRET1234", SEAL, QRY, NULL } } },
	{ "location", "https://c.example/cb?code=1&state=2#x=1&token=t2",
	  { { "t2", SEAL, QRY, NULL } } },
	/* a client-side route's own query inside the fragment */
	{ "location", "https://app.example/#/reset?token=S3cret",
	  { { "S3cret", SEAL, QRY, NULL } } },
	{ "referer", "https://app.example/p?a=1#/reset?token=S4&x=1",
	  { { "S4", SEAL, QRY, NULL } } },
	{ ":path", "/#/reset?token=S5", { { "S5", SEAL, QRY, NULL } } },
};

static void check(const char *in, size_t len, const struct policy_span *sp,
		  int n, const struct want *w, int nw)
{
	bool ok = n == nw;
	for (int k = 0; ok && k < n; k++)
		ok = sp[k].len == strlen(w[k].text) &&
		     memcmp(in + sp[k].off, w[k].text, sp[k].len) == 0 &&
		     sp[k].action == w[k].action && sp[k].kind == w[k].kind &&
		     (!w[k].rule || strcmp(sp[k].rule, w[k].rule) == 0);
	if (!ok) {
		print_error("\"%s\": want %d spans, got %d\n", in, nw, n);
		for (int k = 0; k < n; k++)
			print_error("  \"%.*s\" %s %s %s\n", (int)sp[k].len,
				    in + sp[k].off,
				    policy_action_name(sp[k].action),
				    policy_kind_name(sp[k].kind), sp[k].rule);
	}
	assert_true(ok);
	for (int k = 0; k < n; k++) {
		assert_true(sp[k].len && sp[k].off + sp[k].len <= len);
		if (k)
			assert_true(sp[k - 1].off + sp[k - 1].len <= sp[k].off);
	}
}

static void test_scan_value_table(void **state)
{
	(void)state;
	struct policy *p = load(values_text);
	const struct policy_route *r = policy_default_route(p);
	for (size_t i = 0; i < sizeof(vcases) / sizeof(*vcases); i++) {
		const struct vcase *c = &vcases[i];
		size_t len = strlen(c->value);
		char *b = malloc(len ? len : 1); /* exact size for ASan */
		memcpy(b, c->value, len);
		struct policy_span sp[8];
		unsigned flags = 0;
		int n = policy_scan_value(r, c->name, strlen(c->name), b, len,
					  sp, 8, &flags);
		int nw = 0;
		while (nw < 6 && c->w[nw].text)
			nw++;
		check(b, len, sp, n, c->w, nw);
		assert_int_equal(flags, 0);
		free(b);
	}
	policy_free(p);
}

static void test_scan_value_builtin(void **state)
{
	(void)state;
	char err[256];
	struct policy *p = policy_builtin(err, sizeof(err));
	assert_non_null(p);
	const struct policy_route *r = policy_default_route(p);
	struct policy_span sp[8];
	/* no cookie rules: the cookie header is sealed whole */
	const char *ck = "a=b; session=c";
	int n = policy_scan_value(r, "cookie", 6, ck, strlen(ck), sp, 8, NULL);
	struct want w[] = { { ck, SEAL, HDR, "builtin/header/cookie" } };
	check(ck, strlen(ck), sp, n, w, 1);
	const char *path = "/cb?access_token=tok123&state=x";
	n = policy_scan_value(r, ":path", 5, path, strlen(path), sp, 8, NULL);
	struct want w2[] = {
		{ "tok123", SEAL, QRY, "builtin/query/access_token" },
	};
	check(path, strlen(path), sp, n, w2, 1);
	/* camelCase names; the original path a proxy keeps when it rewrites
	 * :path (recorded as the policy leaves it); an implicit grant's
	 * redirect; Google's forwarded credential */
	static const struct {
		const char *name, *value, *secret, *rule;
		unsigned kind;
	} t[] = {
		{ ":path", "/v1?accessToken=tok456", "tok456",
		  "builtin/query/accessToken", QRY },
		{ "x-envoy-original-path", "/old?access_token=tok789", "tok789",
		  "builtin/query/access_token", QRY },
		{ "x-forwarded-uri", "/x?apiKey=k1k1k1", "k1k1k1",
		  "builtin/query/apiKey", QRY },
		{ "location", "https://c.example/cb#access_token=t0k&state=1", "t0k",
		  "builtin/query/access_token", QRY },
		{ "x-forwarded-authorization", "Basic dXNlcjpwYXNz",
		  "Basic dXNlcjpwYXNz", "builtin/header/x-forwarded-authorization",
		  HDR },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		n = policy_scan_value(r, t[i].name, strlen(t[i].name), t[i].value,
				      strlen(t[i].value), sp, 8, NULL);
		struct want w3[] = { { t[i].secret, SEAL, t[i].kind, t[i].rule } };
		check(t[i].value, strlen(t[i].value), sp, n, w3, 1);
	}
	/* a query or form name without a rule of its own is read loosely:
	 * a bracketed name's last segment, PascalCase, upper case */
	const char *fm = "user%5Bpassword%5D=v1&password[]=v2&Password=v3&"
			 "ACCESS_TOKEN=v4&AccessToken=v5&user[name]=bob&Note=hi";
	n = policy_scan_body(r, "application/x-www-form-urlencoded", 33, fm,
			     strlen(fm), sp, 8, NULL);
	struct want w4[] = {
		{ "v1", SEAL, POLICY_KIND_FORM, "builtin/form/password" },
		{ "v2", SEAL, POLICY_KIND_FORM, "builtin/form/password" },
		{ "v3", SEAL, POLICY_KIND_FORM, "builtin/form/password" },
		{ "v4", SEAL, POLICY_KIND_FORM, "builtin/form/access_token" },
		{ "v5", SEAL, POLICY_KIND_FORM, "builtin/form/accessToken" },
	};
	check(fm, strlen(fm), sp, n, w4, 5);
	const char *qp = "/cb?CLIENT_SECRET=v6&x[api_key]=v7";
	n = policy_scan_value(r, ":path", 5, qp, strlen(qp), sp, 8, NULL);
	struct want w5[] = {
		{ "v6", SEAL, QRY, "builtin/query/client_secret" },
		{ "v7", SEAL, QRY, "builtin/query/api_key" },
	};
	check(qp, strlen(qp), sp, n, w5, 2);
	const char *js = "{\"accessToken\":\"tokA\",\"u\":{\"clientSecret\":\"s3\"}}";
	n = policy_scan_body(r, "application/json", 16, js, strlen(js), sp, 8, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(sp[0].rule, "builtin/json/$..accessToken");
	assert_string_equal(sp[1].rule, "builtin/json/$..clientSecret");
	policy_free(p);
}

static void test_scan_value_limits(void **state)
{
	(void)state;
	struct policy *p = load(values_text);
	const struct policy_route *r = policy_default_route(p);
	const char *v = "a@b.co, c@d.co, e@f.co and more";
	struct policy_span sp[2];
	unsigned flags = 0;
	int n = policy_scan_value(r, "x-list", 6, v, strlen(v), sp, 2, &flags);
	assert_int_equal(n, 2);
	assert_int_equal(flags, POLICY_SCAN_SPANS_FULL);
	assert_int_equal(sp[1].off, 8);
	assert_int_equal(sp[1].off + sp[1].len, strlen(v));
	assert_int_equal(sp[1].action, SEAL);
	assert_int_equal(sp[1].kind, POLICY_KIND_LIMIT);
	assert_int_equal(sp[1].rule_id, POLICY_RULE_LIMIT_SPANS);
	/* bad arguments */
	assert_int_equal(policy_scan_value(NULL, "a", 1, "b", 1, sp, 2, NULL),
			 -EINVAL);
	assert_int_equal(policy_scan_value(r, "a", 1, "b", 1, NULL, 2, NULL),
			 -EINVAL);
	assert_int_equal(policy_scan_value(r, "a", 1, "b", 1, sp, 0, NULL),
			 -EINVAL);
	assert_int_equal(policy_scan_value(r, NULL, 1, "b", 1, sp, 2, NULL),
			 -EINVAL);
	assert_int_equal(policy_scan_value(r, "a", 1, NULL, 1, sp, 2, NULL),
			 -EINVAL);
	assert_int_equal(policy_scan_value(r, NULL, 0, NULL, 0, sp, 2, NULL), 0);
	/* a value too long to decode is scanned as it is */
	size_t len = POL_VIEW_MAX * 3 + 100;
	char *b = malloc(len);
	memset(b, 'a', len);
	memcpy(b, "/x?q=", 5);
	memcpy(b + 10, "%41", 3);
	memcpy(b + 100, "bob@example.com", 15);
	flags = 0;
	n = policy_scan_value(r, ":path", 5, b, len, sp, 2, &flags);
	assert_int_equal(n, 0); /* "aaa...bob@example.comaaa": no TLD end */
	assert_int_equal(flags, POLICY_SCAN_RAW);
	free(b);
	policy_free(p);
}

/* ---- forms --------------------------------------------------------------------------- */

static void test_form_body(void **state)
{
	(void)state;
	struct policy *p = load("tenants: {t: {kms: pkcs11, kek: k}}\n"
				"rule_sets:\n"
				"  f:\n"
				"    form: {password: seal, user: keep}\n"
				"    detectors: {card: seal, email: tokenize}\n"
				"  w:\n"
				"    form: {\"*\": hash, user: keep}\n"
				"routes:\n"
				"  - match: {path_prefix: /w}\n"
				"    rules: w\n"
				"default: {rules: f}\n");
	const struct policy_route *r = policy_default_route(p);
	const char *ct = "application/x-www-form-urlencoded; charset=utf-8";
	const char *body = "user=bob%40example.com&password=p%40ss&"
			   "note=card+4111+1111+1111+1111&empty=&=novalue&"
			   "pass%77ord=x&mail=a%2Bb%40example.com";
	struct policy_span sp[8];
	unsigned flags = 0;
	int n = policy_scan_body(r, ct, strlen(ct), body, strlen(body), sp, 8,
				 &flags);
	struct want w[] = {
		{ "p%40ss", SEAL, POLICY_KIND_FORM, "f/form/password" },
		{ "4111+1111+1111+1111", SEAL, DET, "f/detector/card" },
		{ "x", SEAL, POLICY_KIND_FORM, NULL },
		{ "a%2Bb%40example.com", TOK, DET, NULL },
	};
	check(body, strlen(body), sp, n, w, 4);
	assert_int_equal(flags, 0);

	struct policy_request rq = { .path = "/w", .path_len = 2 };
	r = policy_route_for(p, &rq);
	assert_string_equal(policy_route_rules_name(r), "w");
	const char *b2 = "user=u&a=1&b=&c=3";
	n = policy_scan_body(r, ct, strlen(ct), b2, strlen(b2), sp, 8, NULL);
	struct want w2[] = {
		{ "1", HASH, POLICY_KIND_FORM, "w/form/*" },
		{ "3", HASH, POLICY_KIND_FORM, NULL },
	};
	check(b2, strlen(b2), sp, n, w2, 2);
	policy_free(p);
}

/* Text in UTF-16 or UTF-32 (a charset parameter, or a byte order mark)
 * hides every hit from detectors that read bytes: "4\0" "1\0" ... is no
 * card. It is one limits.unscanned span (limit/charset), so it does not
 * pass as it is; UTF-8 and the other charsets are scanned as before. */
static void test_wide_charset(void **state)
{
	(void)state;
	struct policy *p = load("tenants: {t: {kms: pkcs11, kek: k}}\n"
				"rule_sets:\n"
				"  f:\n"
				"    form: {password: seal}\n"
				"    detectors: {card: seal}\n"
				"default: {rules: f}\n");
	const struct policy_route *r = policy_default_route(p);
	static const char card16[] = "c\0a\0r\0d\0 \0" "4\0" "5\0" "3\0" "9\0"
				     "1\0" "4\0" "8\0" "8\0" "0\0" "3\0" "4\0"
				     "3\0" "6\0" "4\0" "6\0" "7\0";
	static const struct {
		const char *ct;
		const char *body;
		size_t len;
		bool wide;
	} t[] = {
		{ "text/plain; charset=utf-16le", card16, sizeof(card16) - 1, true },
		{ "text/plain;charset=\"UTF-16\"", card16, sizeof(card16) - 1, true },
		{ "application/x-www-form-urlencoded; charset=UCS-2",
		  "p\0=\0" "1\0", 6, true },
		{ "text/plain", "\xff\xfe" "4\0" "1\0", 6, true },
		{ "text/plain; charset=utf-8", "card 4539148803436467", 21, false },
		{ "text/plain; charset=iso-8859-1", "card 4539148803436467", 21, false },
		/* WHATWG labels of UTF-16; a "charset=" inside another
		 * parameter's quoted value is not the charset; a UTF-8 label
		 * that begins like one */
		{ "text/plain; charset=unicode", card16, sizeof(card16) - 1, true },
		{ "text/plain; charset=csUnicode", card16, sizeof(card16) - 1, true },
		{ "text/plain; name=\"a;charset=utf-16\"; charset=utf-8",
		  "card 4539148803436467", 21, false },
		{ "text/plain; charset=unicode-1-1-utf-8", "card 4539148803436467",
		  21, false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct policy_span sp[8];
		int n = policy_scan_body(r, t[i].ct, strlen(t[i].ct), t[i].body,
					 t[i].len, sp, 8, NULL);
		assert_int_equal(n, 1);
		if (t[i].wide) {
			assert_int_equal(sp[0].off, 0);
			assert_int_equal(sp[0].len, t[i].len);
			assert_string_equal(sp[0].rule, "limit/charset");
			assert_int_equal(sp[0].kind, POLICY_KIND_LIMIT);
		} else {
			assert_string_equal(sp[0].rule, "f/detector/card");
		}
	}
	policy_free(p);
}

/* ---- helpers --------------------------------------------------------------------------- */

struct pw {
	const char *name, *value;
	bool eq;
};

static void check_pairs(const char *in, bool cookie, const struct pw *w,
			int nw)
{
	size_t pos = 0, len = strlen(in);
	struct policy_pair pr;
	int k = 0;
	while ((cookie ? policy_cookie_next(in, len, &pos, &pr)
		       : policy_param_next(in, len, &pos, &pr)) == 1) {
		assert_true(k < nw);
		assert_true(pr.name_off + pr.name_len <= len);
		assert_true(pr.value_off + pr.value_len <= len);
		if (pr.name_len != strlen(w[k].name) ||
		    memcmp(in + pr.name_off, w[k].name, pr.name_len) ||
		    pr.value_len != strlen(w[k].value) ||
		    memcmp(in + pr.value_off, w[k].value, pr.value_len) ||
		    pr.has_eq != w[k].eq)
			print_error("\"%s\" pair %d: \"%.*s\"=\"%.*s\" eq %d\n",
				    in, k, (int)pr.name_len, in + pr.name_off,
				    (int)pr.value_len, in + pr.value_off,
				    pr.has_eq);
		assert_int_equal(pr.name_len, strlen(w[k].name));
		assert_memory_equal(in + pr.name_off, w[k].name, pr.name_len);
		assert_int_equal(pr.value_len, strlen(w[k].value));
		assert_memory_equal(in + pr.value_off, w[k].value,
				    pr.value_len);
		assert_int_equal(pr.has_eq, w[k].eq);
		k++;
	}
	assert_int_equal(k, nw);
	assert_int_equal(pos, len);
}

static void test_split_helpers(void **state)
{
	(void)state;
	struct pw c1[] = { { "a", "1", true }, { "b", "2", true } };
	check_pairs("a=1; b=2", true, c1, 2);
	struct pw c2[] = { { "a", "", true }, { "", "x", true },
			   { "noeq", "", false }, { "b", "c=d=", true },
			   { "q", "\"quoted value\"", true } };
	check_pairs(" a= ;=x;;  noeq ;b = c=d= ; q=\"quoted value\";", true,
		    c2, 5);
	check_pairs("", true, NULL, 0);
	check_pairs(" ; ;", true, NULL, 0);
	struct pw q1[] = { { "a", "1", true }, { "b", "", true },
			   { "c", "", false }, { "", "d", true },
			   { "e", "f=g", true }, { " sp", " x ", true } };
	check_pairs("a=1&b=&c&&=d&e=f=g& sp= x ", false, q1, 6);
	check_pairs("&&", false, NULL, 0);

	struct policy_pair pr;
	const char *sc = "id=abc; Path=/; Secure";
	assert_int_equal(policy_set_cookie_pair(sc, strlen(sc), &pr), 1);
	assert_int_equal(pr.value_off, 3);
	assert_int_equal(pr.value_len, 3);
	assert_int_equal(policy_set_cookie_pair("Secure", 6, &pr), 0);
	assert_int_equal(policy_set_cookie_pair("", 0, &pr), 0);
	assert_int_equal(policy_set_cookie_pair(" =v", 3, &pr), 1);
	assert_int_equal(pr.name_len, 0);

	assert_int_equal(policy_query_offset("/a?b", 4), 3);
	assert_int_equal(policy_query_offset("/a", 2), 2);
	assert_int_equal(policy_query_offset("?", 1), 1);
	assert_int_equal(policy_query_offset("", 0), 0);

	char out[16];
	assert_int_equal(policy_pct_decode("a%41%2b+%zz%4", 13, false, out,
					   sizeof(out)), 9);
	assert_memory_equal(out, "aA++%zz%4", 9);
	assert_int_equal(policy_pct_decode("a%41%2b+%zz%4", 13, true, out,
					   sizeof(out)), 9);
	assert_memory_equal(out, "aA+ %zz%4", 9);
	assert_int_equal(policy_pct_decode("%", 1, true, out, sizeof(out)), 1);
	assert_int_equal(policy_pct_decode("abcd", 4, true, out, 3), -ENOBUFS);
	assert_int_equal(policy_pct_decode("%41%42%43", 9, true, out, 3), 3);
}

/* Decoded views: offsets map back to the encoded bytes, escapes that
 * decode to several bytes share their start. */
static void test_view_decode(void **state)
{
	(void)state;
	struct pol_view *v = malloc(sizeof(*v));
	const char *s = "a%40b+c";
	assert_true(pol_view_decode(v, (const uint8_t *)s, 7, POL_ENC_FORM));
	assert_int_equal(v->n, 5);
	assert_memory_equal(v->buf, "a@b c", 5);
	static const uint16_t m1[] = { 0, 1, 4, 5, 6, 7 };
	assert_memory_equal(v->map, m1, sizeof(m1));
	const char *j = "x\\u00e9\\ud83d\\ude00\\n";
	assert_true(pol_view_decode(v, (const uint8_t *)j, strlen(j),
				    POL_ENC_JSON));
	assert_int_equal(v->n, 1 + 2 + 4 + 1);
	assert_memory_equal(v->buf, "x\xc3\xa9\xf0\x9f\x98\x80\n", 8);
	static const uint16_t m2[] = { 0, 1, 1, 7, 7, 7, 7, 19, 21 };
	assert_memory_equal(v->map, m2, sizeof(m2));
	/* too long for the view */
	size_t big = POL_VIEW_MAX + 1;
	char *b = malloc(big);
	memset(b, 'x', big);
	assert_false(pol_view_decode(v, (const uint8_t *)b, big, POL_ENC_PCT));
	free(b);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_precedence),
		cmocka_unit_test(test_route_no_routes),
		cmocka_unit_test(test_header_action),
		cmocka_unit_test(test_scan_value_table),
		cmocka_unit_test(test_scan_value_builtin),
		cmocka_unit_test(test_scan_value_limits),
		cmocka_unit_test(test_form_body),
		cmocka_unit_test(test_wide_charset),
		cmocka_unit_test(test_split_helpers),
		cmocka_unit_test(test_view_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
