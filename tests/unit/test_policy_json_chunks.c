/* Tests for policy_scan_body_chunk(): a JSON body cut into chunks at every
 * offset (and into three at many pairs of offsets) must come out, after
 * each chunk's spans are applied to it alone and the parts joined, as
 * valid JSON in which no value a path rule takes is left (not even a
 * piece); with the boundaries between tokens the output equals the whole
 * body's. Also: a dead stream stays dead, a carried key longer than the
 * carry matches no rule, a container taken whole across three chunks. */
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

static const char policy_text[] =
	"tenants: {t: {kms: pkcs11, kek: k}}\n"
	"rule_sets:\n"
	"  r:\n"
	"    json:\n"
	"      \"$.ssn\": redact\n"
	"      \"$..secret\": redact\n"
	"      \"$.obj\": redact\n"
	"      \"$.num\": redact\n"
	"      \"$.flag\": redact\n"
	"      \"$.keep\": keep\n"
	"    detectors:\n"
	"      email: redact\n"
	"      card: redact\n";

/* Values path rules take: no piece of them (4 bytes) may be left. */
static const char *const taken[] = {
	"123-45-6789", "s3cr3tvalue", "TOPSECRETB", "x}y", "d\\\"]",
	"987654321", NULL,
};

static const char *const bodies[] = {
	"{\"id\": 42, \"ssn\": \"123-45-6789\", \"user\": {\"email\": "
	"\"alice@example.com\", \"secret\": \"s3cr3tvalue\"}, \"obj\": "
	"{\"a\": [1, 2, {\"b\": \"x}y\"}], \"c\": \"d\\\"]\"}, \"num\": "
	"987654321, \"list\": [true, false, null, 1.5e10, \"card 4111 "
	"1111 1111 1111\"], \"flag\": true, \"esc\": \"\\u0041\\u00e9\", "
	"\"keep\": 4111111111111111}",
	"{\"s\\u0073n\": \"123-45-6789\", \"deep\": [[{\"secret\": "
	"\"TOPSECRETB\"}]]}\n{\"num\": -987654321}\n[1, \"two\", {\"secret\":"
	" [\"s3cr3tvalue\"]}]",
};

static struct policy *pol;
static const struct policy_route *route;

static int setup(void **st)
{
	(void)st;
	pol = load(policy_text);
	route = policy_default_route(pol);
	assert_non_null(route);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	policy_free(pol);
	return 0;
}

/* Appends |len| bytes of |in| with |n| spans applied to |out| (at
 * |*olen|), as record_seal.c puts them back: '9's for a cut number,
 * quotes around a whole value once, '*' per byte otherwise. */
static void apply(const uint8_t *in, size_t len, const struct policy_span *sp,
		  int n, char *out, size_t *olen)
{
	size_t pos = 0;
	for (int i = 0; i < n; i++) {
		assert_true(sp[i].off >= pos && sp[i].off + sp[i].len <= len);
		memcpy(out + *olen, in + pos, sp[i].off - pos);
		*olen += sp[i].off - pos;
		bool num = sp[i].flags & POLICY_SPAN_JSON_NUMBER;
		bool val = !num && (sp[i].flags & POLICY_SPAN_JSON_VALUE);
		if (val && !(sp[i].flags & POLICY_SPAN_OPEN_BEFORE))
			out[(*olen)++] = '"';
		memset(out + *olen, num ? '9' : '*', sp[i].len);
		*olen += sp[i].len;
		if (val && !(sp[i].flags & POLICY_SPAN_OPEN_AFTER))
			out[(*olen)++] = '"';
		pos = sp[i].off + sp[i].len;
	}
	memcpy(out + *olen, in + pos, len - pos);
	*olen += len - pos;
}

static const char ctype[] = "application/json";

/* |body| cut at the |ncut| offsets in |cuts| (ascending), scanned chunk by
 * chunk; the joined output into |out| (NUL-terminated). */
static void scan_chunks(const char *body, const size_t *cuts, int ncut,
			char *out)
{
	struct policy_json_stream *js = malloc(policy_json_stream_size());
	assert_non_null(js);
	policy_json_stream_init(js);
	size_t blen = strlen(body), olen = 0, from = 0;
	uint8_t *scratch = malloc(blen + POLICY_JSON_CARRY);
	for (int c = 0; c <= ncut; c++) {
		size_t to = c < ncut ? cuts[c] : blen;
		struct policy_span sp[32];
		unsigned flags = 0;
		int n = policy_scan_body_chunk(route, ctype, sizeof(ctype) - 1,
					       js, body + from, to - from,
					       c == ncut, scratch, sp, 32,
					       &flags);
		assert_true(n >= 0);
		assert_false(flags & POLICY_SCAN_MALFORMED);
		apply((const uint8_t *)body + from, to - from, sp, n, out,
		      &olen);
		from = to;
	}
	out[olen] = 0;
	free(scratch);
	free(js);
}

static void whole(const char *body, char *out)
{
	struct policy_span sp[32];
	size_t olen = 0, len = strlen(body);
	int n = policy_scan_body(route, ctype, sizeof(ctype) - 1, body, len,
				 sp, 32, NULL);
	assert_true(n >= 0);
	apply((const uint8_t *)body, len, sp, n, out, &olen);
	out[olen] = 0;
}

static void check_valid(const char *out)
{
	struct policy_span sp[32];
	unsigned flags = 0;
	int n = policy_scan_body(route, ctype, sizeof(ctype) - 1, out,
				 strlen(out), sp, 32, &flags);
	assert_true(n >= 0);
	if (flags & POLICY_SCAN_MALFORMED)
		fail_msg("not JSON: %s", out);
}

static void check_taken(const char *out)
{
	for (int i = 0; taken[i]; i++)
		for (size_t k = 0; k + 4 <= strlen(taken[i]); k++) {
			char piece[5];
			memcpy(piece, taken[i] + k, 4);
			piece[4] = 0;
			if (strstr(out, piece))
				fail_msg("\"%s\" of \"%s\" left in %s", piece,
					 taken[i], out);
		}
}

static bool between_tokens(const char *b, size_t k)
{
	return strchr(",:{}[] \n", b[k - 1]) && strchr(",:{}[] \n", b[k]);
}

static void test_every_two_way_cut(void **st)
{
	(void)st;
	for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
		const char *body = bodies[b];
		size_t len = strlen(body);
		char *ref = malloc(2 * len + 64), *out = malloc(2 * len + 64);
		/* control: the values are there to be taken */
		unsigned present = 0;
		for (int i = 0; taken[i]; i++)
			present += strstr(body, taken[i]) != NULL;
		assert_true(present >= 3);
		whole(body, ref);
		check_valid(ref);
		check_taken(ref);
		unsigned same = 0;
		for (size_t k = 1; k < len; k++) {
			scan_chunks(body, &k, 1, out);
			check_valid(out);
			check_taken(out);
			if (between_tokens(body, k)) {
				if (strcmp(out, ref))
					fail_msg("cut at %zu:\n%s\nwhole:\n%s",
						 k, out, ref);
				same++;
			}
		}
		assert_true(same >= 10);
		free(ref);
		free(out);
	}
}

static void test_three_way_cuts(void **st)
{
	(void)st;
	for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
		const char *body = bodies[b];
		size_t len = strlen(body);
		char *out = malloc(2 * len + 64);
		for (size_t i = 1; i < len; i += 3)
			for (size_t j = i + 1; j < len; j += 2) {
				size_t cuts[2] = { i, j };
				scan_chunks(body, cuts, 2, out);
				check_valid(out);
				check_taken(out);
			}
		free(out);
	}
}

/* Every byte its own chunk: the carry grows byte by byte. */
static void test_byte_chunks(void **st)
{
	(void)st;
	const char *body = bodies[0];
	size_t len = strlen(body);
	size_t *cuts = malloc(len * sizeof(*cuts));
	char *out = malloc(2 * len + 64);
	for (size_t k = 1; k < len; k++)
		cuts[k - 1] = k;
	scan_chunks(body, cuts, (int)len - 1, out);
	check_valid(out);
	check_taken(out);
	free(cuts);
	free(out);
}

/* A syntax error kills the rest of the body: later chunks are one
 * unscanned span each. */
static void test_dead_after_error(void **st)
{
	(void)st;
	struct policy_json_stream *js = malloc(policy_json_stream_size());
	policy_json_stream_init(js);
	uint8_t scratch[64 + POLICY_JSON_CARRY];
	struct policy_span sp[8];
	unsigned flags = 0;
	const char a[] = "{\"a\": 1 x", b[] = "\"ok\": 2}";
	int n = policy_scan_body_chunk(route, ctype, sizeof(ctype) - 1, js, a,
				       sizeof(a) - 1, false, scratch, sp, 8,
				       &flags);
	assert_true(flags & POLICY_SCAN_MALFORMED);
	assert_int_equal(n, 1);
	flags = 0;
	n = policy_scan_body_chunk(route, ctype, sizeof(ctype) - 1, js, b,
				   sizeof(b) - 1, true, scratch, sp, 8, &flags);
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].off, 0);
	assert_int_equal(sp[0].len, sizeof(b) - 1);
	assert_int_equal(sp[0].rule_id, POLICY_RULE_LIMIT_MALFORMED);
	free(js);
}

/* A key longer than the carry, cut by a boundary, that ends in "ssn":
 * only its tail is carried, and it must not pass for the key "ssn". */
static void test_long_key_not_matched(void **st)
{
	(void)st;
	size_t klen = POLICY_JSON_CARRY + 100;
	char *a = malloc(klen + 8);
	a[0] = '{';
	a[1] = '"';
	memset(a + 2, 'k', klen);
	a[klen + 2] = 0;
	const char b[] = "ssn\": \"v1\"}";
	struct policy_json_stream *js = malloc(policy_json_stream_size());
	policy_json_stream_init(js);
	uint8_t *scratch = malloc(klen + 8 + POLICY_JSON_CARRY);
	struct policy_span sp[8];
	unsigned flags = 0;
	int n = policy_scan_body_chunk(route, ctype, sizeof(ctype) - 1, js, a,
				       strlen(a), false, scratch, sp, 8, &flags);
	assert_int_equal(n, 0);
	assert_true(flags & POLICY_SCAN_CUT_STRING);
	flags = 0;
	n = policy_scan_body_chunk(route, ctype, sizeof(ctype) - 1, js, b,
				   sizeof(b) - 1, true, scratch, sp, 8, &flags);
	assert_int_equal(n, 0); /* "kkk...ssn" is not "ssn" */
	assert_false(flags & POLICY_SCAN_MALFORMED);
	assert_false(flags & POLICY_SCAN_RESUMED);
	free(a);
	free(scratch);
	free(js);
}

/* An object a rule takes whole, over three chunks: one opening quote,
 * one closing quote. */
static void test_container_over_three_chunks(void **st)
{
	(void)st;
	const char *body = "{\"obj\": {\"a\": [1, 2], \"b\": \"c\"}, \"z\": 1}";
	size_t cuts[2] = { 12, 20 };
	char out[128];
	scan_chunks(body, cuts, 2, out);
	assert_string_equal(out, "{\"obj\": \"***********************\", "
				 "\"z\": 1}");
}

/* Scans |n| chunks of |c| on one stream; the flags of each into |fl|,
 * the span count of the last returned. */
static int scan_seq(const struct policy_route *r, const char *const *c,
		    const size_t *cl, int n, unsigned *fl,
		    struct policy_span *sp)
{
	struct policy_json_stream *js = malloc(policy_json_stream_size());
	policy_json_stream_init(js);
	size_t most = 0;
	for (int i = 0; i < n; i++)
		most = cl[i] > most ? cl[i] : most;
	uint8_t *scratch = malloc(most + POLICY_JSON_CARRY);
	int k = 0;
	for (int i = 0; i < n; i++) {
		fl[i] = 0;
		k = policy_scan_body_chunk(r, ctype, sizeof(ctype) - 1, js,
					   c[i], cl[i], i == n - 1, scratch, sp,
					   8, &fl[i]);
		assert_true(k >= 0);
	}
	free(scratch);
	free(js);
	return k;
}

/* After a string longer than the carry, the chunks that follow are
 * parsed on in full view again (the carry's cut mark does not stay). */
static void test_long_string_then_resumed(void **st)
{
	(void)st;
	size_t al = 6 + 5000;
	char *a = malloc(al + 1);
	memcpy(a, "{\"t\":\"", 6);
	memset(a + 6, 'a', 5000);
	a[al] = 0;
	const char *c[3] = { a, "aaa\",\"n\":", "12345}" };
	size_t cl[3] = { al, strlen(c[1]), strlen(c[2]) };
	unsigned fl[3];
	struct policy_span sp[8];
	assert_int_equal(scan_seq(route, c, cl, 3, fl, sp), 0);
	assert_true(fl[0] & POLICY_SCAN_CUT_STRING);
	assert_false(fl[1] & POLICY_SCAN_RESUMED); /* the carry lost "t":" */
	assert_true(fl[2] & POLICY_SCAN_RESUMED);
	free(a);
}

/* A byte order mark cut by the first boundary. */
static void test_split_bom(void **st)
{
	(void)st;
	const char *c[2] = { "\xef\xbb", "\xbf{\"ssn\": \"123-45-6789\"}" };
	size_t cl[2] = { 2, strlen(c[1]) };
	unsigned fl[2];
	struct policy_span sp[8];
	assert_int_equal(scan_seq(route, c, cl, 2, fl, sp), 1);
	assert_false((fl[0] | fl[1]) & POLICY_SCAN_MALFORMED);
	assert_int_equal(sp[0].off, 10);
	assert_int_equal(sp[0].len, 11);
}

/* In a container too deep to parse (limits.unscanned: keep: only the
 * detectors run there, on each piece alone), both sides of a boundary
 * are left for the caller to guard. */
static void test_deep_keep_guarded(void **st)
{
	(void)st;
	static const char text[] =
		"tenants: {t: {kms: pkcs11, kek: k}}\n"
		"limits: {json_depth: 2, unscanned: keep}\n"
		"rule_sets:\n"
		"  r:\n"
		"    json: {\"$.x\": redact}\n"
		"    detectors: {card: redact}\n";
	struct policy *p = load(text);
	const char *c[2] = { "{\"a\":{\"b\":{\"c\":\"4111 1111 ",
			     "1111 1111\"}}}" };
	size_t cl[2] = { strlen(c[0]), strlen(c[1]) };
	unsigned fl[2];
	struct policy_span sp[8];
	scan_seq(policy_default_route(p), c, cl, 2, fl, sp);
	assert_true(fl[0] & POLICY_SCAN_CUT_STRING);
	assert_false(fl[1] & POLICY_SCAN_RESUMED);
	policy_free(p);
}

/* limits.body_bytes cutting a chunk inside a card only a detector finds:
 * the cut moves back over the card's digits, so none of them is left for
 * the reply, but never into the carry (the string's start, carried from
 * the chunk before, went out with that chunk). The limit is the chunk's:
 * the carry does not count against it (it did, and a chunk within the
 * limit lost its tail behind a long carried token). */
static void test_body_cut_guarded(void **st)
{
	(void)st;
	static const char text[] =
		"tenants: {t: {kms: pkcs11, kek: k}}\n"
		"limits: {body_bytes: 20}\n"
		"rule_sets: {r: {detectors: {card: redact}}}\n";
	struct policy *p = load(text);
	const char *c[2] = { "{\"n\": \"pay",
			     " to 4111 1111 1111 1111 and more\"}" };
	size_t cl[2] = { strlen(c[0]), strlen(c[1]) };
	unsigned fl[2];
	struct policy_span sp[8];
	int n = scan_seq(policy_default_route(p), c, cl, 2, fl, sp);
	assert_true(fl[0] & POLICY_SCAN_CUT_STRING);
	assert_true(fl[1] & POLICY_SCAN_BODY_CUT);
	/* the cut at 20 of the chunk falls after "4111 1111 1111 1" and
	 * moves back to the blank before it */
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].rule_id, POLICY_RULE_LIMIT_BODY);
	assert_int_equal(sp[0].off, 4);
	assert_int_equal(sp[0].off + sp[0].len, cl[1]);
	/* a card begun in the carry is found whole (its part in this chunk
	 * redacted), and the cut at 20 of the chunk, after "and more ",
	 * stays there */
	const char *d[2] = { "{\"n\": \"4111 1111",
			     " 1111 1111 and more text to cut\"}" };
	size_t dl[2] = { strlen(d[0]), strlen(d[1]) };
	n = scan_seq(policy_default_route(p), d, dl, 2, fl, sp);
	assert_true(fl[1] & POLICY_SCAN_BODY_CUT);
	assert_int_equal(n, 2);
	assert_int_not_equal(sp[0].rule_id, POLICY_RULE_LIMIT_BODY);
	assert_int_equal(sp[0].off, 0);
	assert_int_equal(sp[0].len, 10); /* " 1111 1111" */
	assert_int_equal(sp[1].rule_id, POLICY_RULE_LIMIT_BODY);
	assert_int_equal(sp[1].off, 20);
	assert_int_equal(sp[1].off + sp[1].len, dl[1]);
	policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_two_way_cut),
		cmocka_unit_test(test_three_way_cuts),
		cmocka_unit_test(test_byte_chunks),
		cmocka_unit_test(test_dead_after_error),
		cmocka_unit_test(test_long_key_not_matched),
		cmocka_unit_test(test_container_over_three_chunks),
		cmocka_unit_test(test_long_string_then_resumed),
		cmocka_unit_test(test_split_bom),
		cmocka_unit_test(test_deep_keep_guarded),
		cmocka_unit_test(test_body_cut_guarded),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
