/* Tests for src/extproc_mutate.c: the built-in decider -- which headers
 * are replaced (and with what), which are protected, the :path deny rule,
 * and credential values found in bodies -- as tables of input -> verdict
 * and output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sealtap/extproc.h"

static const char *const deny[] = { "/admin", "/v1/cards/" };

struct hcase {
	int part;
	const char *name, *value;
	enum extproc_verdict want;
	const char *out; /* REPLACE: the new value */
};

static const struct hcase hcases[] = {
	{ EXTPROC_REQ_HEADERS, "authorization", "Bearer abc", EXTPROC_REPLACE, "redacted:10" },
	{ EXTPROC_REQ_HEADERS, "Authorization", "x", EXTPROC_REPLACE, "redacted:1" },
	{ EXTPROC_REQ_HEADERS, "proxy-authorization", "Basic Zm9v", EXTPROC_REPLACE, "redacted:10" },
	{ EXTPROC_REQ_HEADERS, "cookie", "a=b; c=d", EXTPROC_REPLACE, "redacted:8" },
	{ EXTPROC_RESP_HEADERS, "set-cookie", "sid=1", EXTPROC_REPLACE, "redacted:5" },
	{ EXTPROC_REQ_HEADERS, "x-api-key", "", EXTPROC_REPLACE, "redacted:0" },
	{ EXTPROC_REQ_TRAILERS, "x-auth-token", "t", EXTPROC_REPLACE, "redacted:1" },
	{ EXTPROC_REQ_HEADERS, "accept", "*/*", EXTPROC_KEEP, NULL },
	{ EXTPROC_REQ_HEADERS, "authorizationx", "v", EXTPROC_KEEP, NULL },
	{ EXTPROC_REQ_HEADERS, ":path", "/admin", EXTPROC_DENY, NULL },
	{ EXTPROC_REQ_HEADERS, ":path", "/admin/users?x=1", EXTPROC_DENY, NULL },
	{ EXTPROC_REQ_HEADERS, ":path", "/v1/cards/4111", EXTPROC_DENY, NULL },
	{ EXTPROC_REQ_HEADERS, ":path", "/v1/cards", EXTPROC_KEEP, NULL },
	{ EXTPROC_REQ_HEADERS, ":path", "/adm", EXTPROC_KEEP, NULL },
	{ EXTPROC_RESP_HEADERS, ":path", "/admin", EXTPROC_KEEP, NULL },
};

static void test_headers(void **state)
{
	(void)state;
	struct extproc_default_decider dd;
	extproc_default_decider_init(&dd, deny, 2);
	struct extproc_decider d = extproc_default_decider(&dd);
	struct extproc_buf out = { 0 };
	for (size_t i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++) {
		const struct hcase *c = &hcases[i];
		out.len = 0;
		struct extproc_decision dec = { .out = &out };
		enum extproc_verdict v = d.ops->decide_header(
			d.self, c->part, (const uint8_t *)c->name, strlen(c->name),
			(const uint8_t *)c->value, strlen(c->value), &dec);
		if (v != c->want)
			print_error("case %zu (%s: %s): verdict %d, want %d\n", i,
				    c->name, c->value, v, c->want);
		assert_int_equal(v, c->want);
		assert_int_equal(dec.verdict, v);
		if (c->out) {
			assert_int_equal(out.len, strlen(c->out));
			assert_memory_equal(out.p, c->out, out.len);
		}
		if (v == EXTPROC_DENY) {
			assert_int_equal(dec.status, 403);
			assert_non_null(dec.details);
			/* the denied path never goes into the reply */
			assert_null(strstr(dec.body, c->value));
		}
	}
	extproc_buf_free(&out);
}

static void test_protected(void **state)
{
	(void)state;
	static const char *const yes[] = { ":path", ":authority", ":status", "host",
					   "HOST", "x-envoy-original-path", "X-Envoy-A", "" };
	static const char *const no[] = { "hostx", "x-envoy", "x-envoyz",
					  "authorization", "x-forwarded-host" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(extproc_header_protected((const uint8_t *)yes[i], strlen(yes[i])));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(extproc_header_protected((const uint8_t *)no[i], strlen(no[i])));
}

struct bcase {
	const char *in;
	enum extproc_verdict want;
	const char *out;
};

static const struct bcase bcases[] = {
	{ "", EXTPROC_KEEP, NULL },
	{ "hello world", EXTPROC_KEEP, NULL },
	{ "{\"user\":\"ann\"}", EXTPROC_KEEP, NULL },
	{ "{\"password\":\"hunter2\"}", EXTPROC_REPLACE, "{\"password\":\"redacted:7\"}" },
	{ "{\"Password\" : \"a\\\"b\"}", EXTPROC_REPLACE, "{\"Password\" : \"redacted:4\"}" },
	{ "{\"token\":\"t\",\"n\":1,\"api_key\":\"kk\"}", EXTPROC_REPLACE,
	  "{\"token\":\"redacted:1\",\"n\":1,\"api_key\":\"redacted:2\"}" },
	{ "Authorization: Bearer abc.def-ghi_", EXTPROC_REPLACE,
	  "Authorization: Bearer redacted:12" },
	{ "bearer  xyz", EXTPROC_REPLACE, "bearer  redacted:3" },
	{ "Bearer ", EXTPROC_KEEP, NULL },
	{ "{\"password\":1}", EXTPROC_KEEP, NULL },
	{ "{\"password\":\"unterminated", EXTPROC_REPLACE, "{\"password\":\"redacted:12" },
	{ "\"password\"", EXTPROC_KEEP, NULL },
	{ "[\"password\",\"x\"]", EXTPROC_KEEP, NULL },
};

static void test_bodies(void **state)
{
	(void)state;
	struct extproc_default_decider dd;
	extproc_default_decider_init(&dd, NULL, 0);
	struct extproc_decider d = extproc_default_decider(&dd);
	struct extproc_buf out = { 0 };
	for (size_t i = 0; i < sizeof(bcases) / sizeof(bcases[0]); i++) {
		const struct bcase *c = &bcases[i];
		out.len = 0;
		struct extproc_decision dec = { .out = &out };
		enum extproc_verdict v = d.ops->decide_body(
			d.self, EXTPROC_REQ_BODY, (const uint8_t *)c->in,
			strlen(c->in), &dec);
		if (v != c->want || (c->out && (out.len != strlen(c->out) ||
						memcmp(out.p, c->out, out.len))))
			print_error("case %zu: %s -> %d %.*s\n", i, c->in, v,
				    (int)out.len, out.p ? (char *)out.p : "");
		assert_int_equal(v, c->want);
		if (c->out) {
			assert_int_equal(out.len, strlen(c->out));
			assert_memory_equal(out.p, c->out, out.len);
		}
	}
	extproc_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_protected),
		cmocka_unit_test(test_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
