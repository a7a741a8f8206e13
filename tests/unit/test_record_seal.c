/* Tests for src/record_seal.c: policy spans turned into tokens for the
 * tap's record JSON (record_seal_value, record_seal_body) and into plain
 * bytes for ext_proc (record_seal_replace) by the one shared span walk.
 * Tables of value -> output shape; every token is opened with the sealing
 * engine to prove its field and record binding; a tenant without a key
 * fails closed; a pool too small for the output never leaves half a JSON
 * value. A test DEK stands in for the KMS (testkeys.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "sealtap/bpool.h"
#include "sealtap/policy.h"
#include "sealtap/record_seal.h"
#include "sealtap/seal.h"
#include "h2_json.h"
#include "testkeys.h"

static const char test_policy[] =
	"tenants:\n"
	"  acme: {kms: pkcs11, kek: k1}\n"
	"  beta: {kms: pkcs11, kek: k2}\n"
	"rule_sets:\n"
	"  s:\n"
	"    extends: builtin\n"
	"    headers: {x-t: tokenize, x-r: redact}\n"
	"    json: {\"$.n\": seal}\n"
	"routes:\n"
	"  - {name: b, match: {authority: b.test}, tenant: beta, rules: s}\n"
	"default: {tenant: acme, rules: s}\n";

#define FILL 0x77
#define RID "0123456789abcdef"

struct fx {
	struct policy *pol;
	struct keys_cache *keys;
	struct record_sealer *rs;
	struct st_counters ctr;
	struct bpool *pool;
	const struct policy_route *acme, *beta;
	char key_id[32];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	f->pol = policy_load_text("t.yaml", test_policy, sizeof(test_policy) - 1,
				  err, sizeof(err));
	assert_non_null(f->pol);
	static const char *const ok[] = { "acme" };
	f->keys = testkeys_new(1, ok, 1, FILL, NULL, 0);
	assert_non_null(f->keys);
	snprintf(f->key_id, sizeof(f->key_id), "%s", testkeys_id);
	keys_cache_online(f->keys, 0);
	f->rs = record_seal_new(f->pol, f->keys, 0, &f->ctr);
	assert_non_null(f->rs);
	f->pool = bpool_new(256, 1u << 20);
	assert_non_null(f->pool);
	f->acme = record_seal_route(f->rs, "a.test", 6, "/", 1, NULL, 0, NULL, 0);
	f->beta = record_seal_route(f->rs, "b.test", 6, "/", 1, NULL, 0, NULL, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	record_seal_free(f->rs);
	keys_cache_offline(f->keys, 0);
	keys_cache_free(f->keys);
	policy_free(f->pol);
	bpool_free(f->pool);
	free(f);
	return 0;
}

static char *chain_text(const struct bchain *c)
{
	char *s = malloc(c->len + 1);
	bchain_copy(c, 0, s, c->len);
	s[c->len] = '\0';
	return s;
}

/* Opens token |tok| of acme for |field| in record RID (seal or tokenize);
 * NULL if it does not open there. */
static const char *open_tok(struct fx *f, const char *field, const char *tok,
			    size_t n)
{
	static char pt[256];
	uint8_t dek[SEAL_DEK_LEN];
	memset(dek, FILL, sizeof(dek));
	int rc;
	if (tok[5] == 'g') {
		struct seal_gcm *g;
		assert_int_equal(seal_gcm_new(dek, "acme", f->key_id, NULL, &g), 0);
		rc = seal_token_open_gcm(g, field, strlen(field), RID, 16, tok, n,
					 (uint8_t *)pt, sizeof(pt) - 1);
		seal_gcm_free(g);
	} else {
		struct seal_siv *s;
		assert_int_equal(seal_siv_new(dek, "acme", f->key_id, &s), 0);
		rc = seal_token_open_siv(s, field, strlen(field), tok, n,
					 (uint8_t *)pt, sizeof(pt) - 1);
		seal_siv_free(s);
	}
	if (rc < 0)
		return NULL;
	pt[rc] = '\0';
	return pt;
}

/* ---- record values (the tap) ------------------------------------------------ */

struct vcase {
	bool beta;          /* the tenant without a key */
	const char *name, *value;
	const char *json;   /* exact record JSON, or NULL: a token string */
	const char *plain;  /* the token opens to this */
	const char *action; /* of the "sealed" entry, NULL: none */
};

static const struct vcase vcases[] = {
	{ false, "accept", "*/*", "\"*/*\"", NULL, NULL },
	{ false, "x-q", "a\"b\x01", "\"a\\\"b\\u0001\"", NULL, NULL },
	{ false, "authorization", "Bearer x", NULL, "Bearer x", "seal" },
	{ false, "x-t", "tok", NULL, "tok", "tokenize" },
	{ false, "x-r", "gone", "{\"redacted\":4}", NULL, "redact" },
	{ true, "authorization", "Bearer x", "{\"redacted\":8}", NULL, "redact" },
	{ true, "x-m", "to bob@example.com \"q\"", "\"to *************** \\\"q\\\"\"",
	  NULL, "redact" },
};

static void test_value(void **state)
{
	struct fx *f = *state;
	for (size_t i = 0; i < sizeof(vcases) / sizeof(*vcases); i++) {
		const struct vcase *c = &vcases[i];
		struct bchain out, applied;
		bchain_init(&out, 0);
		bchain_init(&applied, 0);
		char field[64];
		snprintf(field, sizeof(field), "request.headers:%s", c->name);
		struct record_seal_where w = { RID, field };
		assert_true(record_seal_value(f->rs, c->beta ? f->beta : f->acme,
					      &w, c->name, strlen(c->name),
					      c->value, strlen(c->value), f->pool,
					      &out, &applied));
		char *j = chain_text(&out);
		if (c->json) {
			if (strcmp(j, c->json))
				print_error("case %zu: %s\n", i, j);
			assert_string_equal(j, c->json);
		} else {
			size_t n = strlen(j);
			assert_true(n > 9 && j[0] == '"' && j[n - 1] == '"');
			const char *pt = open_tok(f, field, j + 1, n - 2);
			assert_non_null(pt);
			assert_string_equal(pt, c->plain);
		}
		char *a = chain_text(&applied);
		if (c->action) {
			char want[96];
			snprintf(want, sizeof(want), "\"action\":\"%s\"}", c->action);
			assert_non_null(strstr(a, want));
			assert_true(!strncmp(a, "{\"where\":\"request.headers:", 26));
		} else {
			assert_string_equal(a, "");
		}
		free(j);
		free(a);
		bchain_reset(f->pool, &out);
		bchain_reset(f->pool, &applied);
	}
	/* a pool too small for the value: false, the caller undoes */
	struct bpool *tiny = bpool_new(96, 96); /* one block, 80 bytes */
	assert_non_null(tiny);
	struct bchain out;
	bchain_init(&out, 0);
	struct record_seal_where w = { RID, "request.headers:authorization" };
	char big[61];
	memset(big, 'y', 60);
	big[60] = '\0';
	assert_false(record_seal_value(f->rs, f->acme, &w, "authorization", 13,
				       big, 60, tiny, &out, NULL));
	bchain_reset(tiny, &out);
	bpool_free(tiny);
}

/* ---- body findings (the tap) ------------------------------------------------- */

static void test_body(void **state)
{
	struct fx *f = *state;
	static const char b[] = "{\"n\":12,\"m\":\"bob@example.com\"}";
	struct bchain found;
	bchain_init(&found, 0);
	assert_int_equal(record_seal_body(f->rs, f->acme, RID, "request.body",
					  "application/json", 16,
					  (const uint8_t *)b, sizeof(b) - 1,
					  f->pool, &found), 2);
	char *t = chain_text(&found);
	char *list = malloc(strlen(t) + 3);
	sprintf(list, "[%s]", t);
	struct jv *j = j_parse(list, strlen(list));
	assert_non_null(j);
	assert_int_equal(j->n, 2);
	struct jv *e = j_at(j, 0);
	assert_true(j_is_str(j_get(e, "where"), "request.body:s/json/$.n"));
	assert_int_equal(j_get(e, "offset")->i, 5);
	assert_int_equal(j_get(e, "length")->i, 2);
	assert_true(j_is_str(j_get(e, "action"), "seal"));
	struct jv *v = j_get(e, "value");
	assert_string_equal(open_tok(f, "request.body:s/json/$.n", v->s, v->slen), "12");
	e = j_at(j, 1);
	v = j_get(e, "value");
	assert_true(j_is_str(j_get(e, "action"), "tokenize"));
	assert_string_equal(open_tok(f, "request.body:builtin/detector/email",
				     v->s, v->slen), "bob@example.com");
	j_free(j);
	free(list);
	free(t);
	bchain_reset(f->pool, &found);
	/* no key: findings say redacted, with the length */
	assert_int_equal(record_seal_body(f->rs, f->beta, RID, "response.body",
					  "application/json", 16,
					  (const uint8_t *)b, sizeof(b) - 1,
					  f->pool, &found), 2);
	t = chain_text(&found);
	assert_non_null(strstr(t, "\"action\":\"redact\",\"value\":{\"redacted\":2}}"));
	assert_null(strstr(t, "bob@"));
	free(t);
	bchain_reset(f->pool, &found);
}

/* ---- plain bytes (ext_proc) ---------------------------------------------------- */

/* A sink into a growing C string. */
static bool buf_put(void *user, const void *p, size_t n)
{
	char **s = user;
	size_t have = *s ? strlen(*s) : 0;
	*s = realloc(*s, have + n + 1);
	memcpy(*s + have, p, n);
	(*s)[have + n] = '\0';
	return true;
}

static bool refuse(void *user, const void *p, size_t n)
{
	(void)user;
	(void)p;
	return n == 0;
}

static void test_replace(void **state)
{
	struct fx *f = *state;
	static const char b[] = "{\"n\":12,\"m\":\"bob\\u0040example.com x\"}";
	struct policy_span sp[8];
	int n = policy_scan_body(f->acme, "application/json", 16, b,
				 sizeof(b) - 1, sp, 8, NULL);
	assert_int_equal(n, 2);
	char *out = NULL, *notes = NULL;
	struct record_seal_sink os = { buf_put, &out, false };
	struct record_seal_sink ns = { buf_put, &notes, false };
	struct record_seal_where w = { RID, "response.body" };
	assert_int_equal(record_seal_replace(f->rs, f->acme, &w, true, 1000, sp,
					     (unsigned)n, (const uint8_t *)b,
					     sizeof(b) - 1, &os, &ns), 0);
	/* plain bytes, valid JSON: the number became a quoted token, the
	 * e-mail (JSON escapes and all) a token inside its string */
	struct jv *j = j_parse(out, strlen(out));
	assert_non_null(j);
	struct jv *v = j_get(j, "n");
	assert_int_equal(v->t, J_STR);
	assert_string_equal(open_tok(f, "response.body:s/json/$.n", v->s, v->slen), "12");
	v = j_get(j, "m");
	assert_int_equal(v->t, J_STR);
	assert_true(v->slen > 2 && !strcmp(v->s + v->slen - 2, " x"));
	j_free(j);
	char *list = malloc(strlen(notes) + 3);
	sprintf(list, "[%s]", notes);
	j = j_parse(list, strlen(list));
	assert_non_null(j);
	assert_int_equal(j_get(j_at(j, 0), "offset")->i, 1005);
	j_free(j);
	free(list);
	free(out);
	free(notes);
	/* redacted spans: '*' per byte, in quotes where a value was */
	out = NULL;
	notes = NULL;
	os.more = ns.more = false;
	n = policy_scan_body(f->beta, "application/json", 16, b, sizeof(b) - 1,
			     sp, 8, NULL);
	assert_int_equal(record_seal_replace(f->rs, f->beta, &w, true, 0, sp,
					     (unsigned)n, (const uint8_t *)b,
					     sizeof(b) - 1, &os, &ns), 2);
	assert_string_equal(out, "{\"n\":\"**\",\"m\":\"******************** x\"}");
	free(out);
	free(notes);
	/* a sink that refuses: -1 */
	struct record_seal_sink no = { refuse, NULL, false };
	n = policy_scan_body(f->acme, "application/json", 16, b, sizeof(b) - 1,
			     sp, 8, NULL);
	assert_int_equal(record_seal_replace(f->rs, f->acme, &w, true, 0, sp,
					     (unsigned)n, (const uint8_t *)b,
					     sizeof(b) - 1, &no, NULL), -1);
}

/* A worker whose share of a DEK's seal limit is spent fails closed at
 * once, before the keys thread withdraws the key: the value is redacted
 * and counted, never sealed beyond the limit. */
static void test_quota(void **state)
{
	struct fx *f = *state;
	struct keys_cache_cfg cfg = {
		.workers = 1, .max_tenants = 4, .max_seals = 3,
		.max_age_ns = 3600ull * 1000000000ull, .rotate_at_pct = 90,
		.mem = KEYS_MEM_AUTO,
	};
	struct keys_cache *c;
	char err[256];
	assert_int_equal(keys_cache_new(&cfg, &c, err, sizeof(err)), 0);
	uint8_t *buf;
	size_t cap;
	int slot = keys_cache_slot_get(c, &buf, &cap);
	assert_true(slot >= 0);
	memset(buf, FILL, SEAL_DEK_LEN);
	struct keys_dek_meta m = { "quota-1", 4000, (int64_t)time(NULL), 0 };
	assert_int_equal(keys_cache_install(c, "acme", slot, &m), 0);
	assert_int_equal(keys_cache_publish(c), 0);
	struct st_counters ctr;
	memset(&ctr, 0, sizeof(ctr));
	struct record_sealer *rs = record_seal_new(f->pol, c, 0, &ctr);
	assert_non_null(rs);
	struct record_seal_where w = { RID, "request.headers:authorization" };
	for (int i = 0; i < 5; i++) {
		struct bchain out;
		bchain_init(&out, 0);
		assert_true(record_seal_value(rs, f->acme, &w, "authorization",
					      13, "Bearer x", 8, f->pool, &out,
					      NULL));
		char *j = chain_text(&out);
		if (i < 3)
			assert_true(!strncmp(j, "\"stk1.g.quota-1.", 16));
		else
			assert_string_equal(j, "{\"redacted\":8}");
		free(j);
		bchain_reset(f->pool, &out);
	}
	assert_int_equal(ctr.v[ST_CTR_seal_sealed], 3);
	assert_int_equal(ctr.v[ST_CTR_seal_failed_closed], 2);
	record_seal_free(rs);
	keys_cache_free(c);
}

/* More tenants than a worker's first table of cipher contexts (64),
 * round robin, twice: every value of every tenant is sealed both times.
 * (With a fixed table the 65th tenant evicted one, whose GCM context the
 * nonce guard then refused to make again: 64 of 66 tenants failed closed
 * for good in the second round.) */
#define NTEN 70
static void test_many_tenants(void **state)
{
	(void)state;
	static char pol_text[16384];
	size_t o = 0;
	o += (size_t)snprintf(pol_text + o, sizeof(pol_text) - o, "tenants:\n");
	for (int i = 0; i < NTEN; i++)
		o += (size_t)snprintf(pol_text + o, sizeof(pol_text) - o,
				      "  t%d: {kms: pkcs11, kek: k}\n", i);
	o += (size_t)snprintf(pol_text + o, sizeof(pol_text) - o,
			      "rule_sets:\n  s:\n    headers: "
			      "{authorization: seal}\nroutes:\n");
	for (int i = 0; i < NTEN; i++)
		o += (size_t)snprintf(pol_text + o, sizeof(pol_text) - o,
				      "  - {name: r%d, match: {authority: "
				      "t%d.test}, tenant: t%d, rules: s}\n",
				      i, i, i);
	o += (size_t)snprintf(pol_text + o, sizeof(pol_text) - o,
			      "default: {tenant: t0, rules: s}\n");
	char err[256];
	struct policy *pol = policy_load_text("many.yaml", pol_text, o, err,
					      sizeof(err));
	if (!pol)
		fail_msg("%s", err);
	struct keys_cache_cfg cfg = {
		.workers = 1, .max_tenants = 128, .max_seals = 1000000,
		.max_age_ns = 3600ull * 1000000000ull, .rotate_at_pct = 90,
		.mem = KEYS_MEM_AUTO,
	};
	struct keys_cache *c;
	assert_int_equal(keys_cache_new(&cfg, &c, err, sizeof(err)), 0);
	char tenant[NTEN][16], kid[NTEN][16];
	for (int i = 0; i < NTEN; i++) {
		uint8_t *buf;
		size_t cap;
		int slot = keys_cache_slot_get(c, &buf, &cap);
		assert_true(slot >= 0);
		memset(buf, FILL + i, SEAL_DEK_LEN);
		snprintf(tenant[i], sizeof(tenant[i]), "t%d", i);
		snprintf(kid[i], sizeof(kid[i]), "many-%d", i);
		struct keys_dek_meta m = { kid[i], 5000 + (uint32_t)i,
					   (int64_t)time(NULL), 0 };
		assert_int_equal(keys_cache_install(c, tenant[i], slot, &m), 0);
	}
	assert_int_equal(keys_cache_publish(c), 0);
	struct st_counters ctr;
	memset(&ctr, 0, sizeof(ctr));
	keys_cache_online(c, 0);
	struct record_sealer *rs = record_seal_new(pol, c, 0, &ctr);
	assert_non_null(rs);
	struct bpool *pool = bpool_new(256, 1u << 20);
	struct record_seal_where w = { RID, "request.headers:authorization" };
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < NTEN; i++) {
			char auth[32];
			int al = snprintf(auth, sizeof(auth), "t%d.test", i);
			const struct policy_route *r = record_seal_route(
				rs, auth, (size_t)al, "/", 1, NULL, 0, NULL, 0);
			struct bchain out;
			bchain_init(&out, 0);
			assert_true(record_seal_value(rs, r, &w, "authorization",
						      13, "Bearer x", 8, pool,
						      &out, NULL));
			char *j = chain_text(&out);
			char want[40];
			snprintf(want, sizeof(want), "\"stk1.g.%.15s.", kid[i]);
			if (strncmp(j, want, strlen(want)))
				fail_msg("round %d tenant %d: %s", round, i, j);
			free(j);
			bchain_reset(pool, &out);
			record_seal_quiescent(rs);
		}
	}
	assert_int_equal(ctr.v[ST_CTR_seal_sealed], 2 * NTEN);
	assert_int_equal(ctr.v[ST_CTR_seal_failed_closed], 0);
	record_seal_free(rs);
	keys_cache_offline(c, 0);
	keys_cache_free(c);
	bpool_free(pool);
	policy_free(pol);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_many_tenants),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
