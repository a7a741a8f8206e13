/* Tests for src/seal_token.c: canonical AAD, base64url, the token text
 * (encode, strict parse with its error codes, decode) and the seal/open
 * helpers. The .c is included to reach the base64 statics.
 *
 * Properties checked on real tokens of every kind:
 *   - text uses only [A-Za-z0-9._-] (fits a header value, a URL, a JSON
 *     string without escaping);
 *   - changing any byte of a token to any other allowed byte, or cutting it
 *     anywhere, never opens;
 *   - a token moved to another field, record, tenant or key never opens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/seal_token.c"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}
static void rnd_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd() >> 56);
}

static const uint8_t test_dek[SEAL_DEK_LEN] = {
	7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
	23, 22, 21, 20, 19, 18, 17, 16, 31, 30, 29, 28, 27, 26, 25, 24,
};

struct ctxs {
	struct seal_gcm *g;
	struct seal_siv *s;
	struct seal_hash *h;
};

/* Every sealing context gets a fixed field of its own: the engine refuses
 * to hand one out twice for a key in a process. */
static uint32_t next_fixed = 0x00000100u;

static struct ctxs mk(const char *tenant, const char *kid)
{
	struct ctxs c;
	struct seal_gcm_cfg cfg = {.fixed = next_fixed++};
	assert_int_equal(seal_gcm_new(test_dek, tenant, kid, &cfg, &c.g), 0);
	assert_int_equal(seal_siv_new(test_dek, tenant, kid, &c.s), 0);
	assert_int_equal(seal_hash_new(test_dek, tenant, kid, &c.h), 0);
	return c;
}

static void rm(struct ctxs *c)
{
	seal_gcm_free(c->g);
	seal_siv_free(c->s);
	seal_hash_free(c->h);
}

/* ---- canonical AAD ------------------------------------------------------------- */

static void test_aad_build(void **state)
{
	(void)state;
	uint8_t a[SEAL_AAD_MAX], b[SEAL_AAD_MAX];
	int n = seal_aad_build('g', "acme", 4, "k1", 2, "f", 1, "\x01\x02", 2,
			       a, sizeof(a));
	const uint8_t want[] = {0x01, 'g', 4, 'a', 'c', 'm', 'e', 2, 'k', '1',
				1,    'f', 2, 1,   2};
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(a, want, sizeof(want));
	/* SIV / hash: no record part */
	n = seal_aad_build('s', "acme", 4, "k1", 2, "f", 1, "ignored", 7, a,
			   sizeof(a));
	assert_int_equal(n, 12);
	assert_int_equal(a[1], 's');
	/* injective: moving bytes between parts changes the encoding */
	const char *splits[][4] = {
		{"ab", "c", "d", "e"}, {"a", "bc", "d", "e"},
		{"a", "b", "cd", "e"}, {"a", "b", "c", "de"},
		{"", "abc", "d", "e"}, {"abcd", "", "", "e"},
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(splits); i++) {
		int ni = seal_aad_build('g', splits[i][0], strlen(splits[i][0]),
					splits[i][1], strlen(splits[i][1]),
					splits[i][2], strlen(splits[i][2]),
					splits[i][3], strlen(splits[i][3]), a,
					sizeof(a));
		for (size_t j = i + 1; j < ST_ARRAY_SIZE(splits); j++) {
			int nj = seal_aad_build(
				'g', splits[j][0], strlen(splits[j][0]),
				splits[j][1], strlen(splits[j][1]),
				splits[j][2], strlen(splits[j][2]),
				splits[j][3], strlen(splits[j][3]), b,
				sizeof(b));
			assert_true(ni != nj || memcmp(a, b, (size_t)ni) != 0);
		}
	}
	char big[256];
	memset(big, 'x', sizeof(big));
	assert_int_equal(seal_aad_build('g', big, 255, big, 255, big, 255, big,
					255, a, sizeof(a)),
			 (int)SEAL_AAD_MAX);
	assert_int_equal(seal_aad_build('g', big, 256, "k", 1, "f", 1, "r", 1,
					a, sizeof(a)),
			 -EINVAL);
	assert_int_equal(seal_aad_build('x', "t", 1, "k", 1, "f", 1, "r", 1, a,
					sizeof(a)),
			 -EINVAL);
	assert_int_equal(seal_aad_build('g', "t", 1, "k", 1, "f", 1, "r", 1, a,
					8),
			 -ENOBUFS);
}

/* ---- base64url ------------------------------------------------------------------- */

static void test_b64_vectors(void **state)
{
	(void)state;
	/* RFC 4648 §10, unpadded, plus the two url-safe characters. */
	const struct {
		const char *in, *out;
		size_t n;
	} v[] = {
		{"", "", 0},           {"f", "Zg", 1},
		{"fo", "Zm8", 2},      {"foo", "Zm9v", 3},
		{"foob", "Zm9vYg", 4}, {"fooba", "Zm9vYmE", 5},
		{"foobar", "Zm9vYmFy", 6},
		{"\xfb\xff\xbf", "-_-_", 3},
		{"\xfb\xf0", "-_A", 2},
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(v); i++) {
		char out[16] = {0};
		uint8_t back[16];
		b64_encode_back((const uint8_t *)v[i].in, v[i].n, out);
		assert_int_equal(SEAL_B64_LEN(v[i].n), strlen(v[i].out));
		assert_memory_equal(out, v[i].out, strlen(v[i].out));
		size_t ol = strlen(v[i].out);
		assert_int_equal(b64_check(v[i].out, ol), 0);
		assert_int_equal(b64_raw_len(ol), (long)v[i].n);
		b64_decode_range(v[i].out, ol, 0, v[i].n, back);
		assert_memory_equal(back, v[i].in, v[i].n);
	}
	/* strictness */
	assert_int_equal(b64_check("Zg==", 4), -EILSEQ);  /* padding */
	assert_int_equal(b64_check("Zh", 2), -EILSEQ);    /* tail bits */
	assert_int_equal(b64_check("Zm8", 3), 0);
	assert_int_equal(b64_check("Zm9", 3), -EILSEQ); /* tail bits */
	assert_int_equal(b64_check("Zm-", 3), -EILSEQ);   /* tail bits */
	assert_int_equal(b64_check("Zm9vY", 5), -EILSEQ); /* 4k+1 */
	assert_int_equal(b64_check("Zm+v", 4), -EILSEQ);
	assert_int_equal(b64_check("Zm/v", 4), -EILSEQ);
	assert_int_equal(b64_check("Zm v", 4), -EILSEQ);
	assert_int_equal(b64_check("Zm\0v", 4), -EILSEQ);
}

/* Encoding backwards in place equals encoding to a separate buffer, for
 * every length and every offset the token layer can use. */
static void test_b64_in_place(void **state)
{
	(void)state;
	for (size_t n = 0; n < 200; n++) {
		for (size_t off = 0; off < 4; off++) {
			uint8_t raw[200];
			char ref[300], buf[300];
			rnd_fill(raw, n);
			b64_encode_back(raw, n, ref);
			/* text at or after its bytes (the token layer uses
			 * off 0: sealed payload and its text start at the same
			 * place) */
			memcpy(buf, raw, n);
			b64_encode_back((uint8_t *)buf, n, buf + off);
			assert_memory_equal(buf + off, ref, SEAL_B64_LEN(n));
			/* decode any sub-range */
			if (n) {
				size_t a = rnd() % n, b = a + rnd() % (n - a + 1);
				uint8_t back[200];
				b64_decode_range(ref, SEAL_B64_LEN(n), a, b,
						 back);
				assert_memory_equal(back, raw + a, b - a);
			}
		}
	}
}

/* ---- token text --------------------------------------------------------------------- */

static void test_encode_parse(void **state)
{
	(void)state;
	uint8_t raw[100];
	rnd_fill(raw, sizeof(raw));
	char tok[300];
	int n = seal_token_encode('g', "dek-2024_a", 10, raw, 40, tok,
				  sizeof(tok));
	assert_int_equal(n, (int)seal_token_len(10, 40));
	assert_int_equal(n, 8 + 10 + 54);
	assert_int_equal(tok[n], '\0');
	assert_memory_equal(tok, "stk1.g.dek-2024_a.", 18);
	struct seal_token t;
	assert_int_equal(seal_token_parse(tok, (size_t)n, &t), 0);
	assert_int_equal(t.kind, 'g');
	assert_int_equal(t.key_id_len, 10);
	assert_memory_equal(t.key_id, "dek-2024_a", 10);
	assert_int_equal(t.raw_len, 40);
	uint8_t back[100];
	assert_int_equal(seal_token_decode(&t, back, sizeof(back)), 40);
	assert_memory_equal(back, raw, 40);
	assert_int_equal(seal_token_decode(&t, back, 39), -ENOBUFS);

	/* no NUL when the buffer is exactly full */
	memset(tok, '#', sizeof(tok));
	assert_int_equal(seal_token_encode('h', "k", 1, raw, 32, tok,
					   seal_token_len(1, 32)),
			 (int)seal_token_len(1, 32));
	assert_int_equal(tok[seal_token_len(1, 32)], '#');
	assert_int_equal(seal_token_encode('h', "k", 1, raw, 32, tok,
					   seal_token_len(1, 32) - 1),
			 -ENOBUFS);
	assert_int_equal(seal_token_encode('h', "k", 1, raw, 31, tok, 300),
			 -ENODATA);
	assert_int_equal(seal_token_encode('h', "k", 1, raw, 33, tok, 300),
			 -EMSGSIZE);
	assert_int_equal(seal_token_encode('x', "k", 1, raw, 32, tok, 300),
			 -EINVAL);
	assert_int_equal(seal_token_encode('g', "k.1", 3, raw, 32, tok, 300),
			 -EINVAL);
	assert_int_equal(seal_token_encode('s', "", 0, raw, 32, tok, 300),
			 -EINVAL);
}

static void test_parse_errors(void **state)
{
	(void)state;
	/* 28 bytes of zeros = 38 chars of 'A' (28 = 9*3 + 1: 36 + 2) */
	char g28[64] = "stk1.g.k1.";
	memset(g28 + 10, 'A', 38);
	g28[48] = '\0';
	struct seal_token t;
	assert_int_equal(seal_token_parse(g28, strlen(g28), &t), 0);
	assert_int_equal(t.raw_len, 28);

	char hash43[64] = "stk1.h.k1.";
	memset(hash43 + 10, 'A', 43); /* 32 bytes */
	hash43[53] = '\0';
	assert_int_equal(seal_token_parse(hash43, strlen(hash43), &t), 0);

	const struct {
		const char *text;
		int err;
	} cases[] = {
		{"", -EINVAL},
		{"s", -ENODATA},
		{"st", -ENODATA},
		{"stk", -ENODATA},
		{"stk1", -ENODATA},
		{"stk1.", -ENODATA},
		{"stk1.g", -ENODATA},
		{"stk1.g.", -ENODATA},
		{"stk1.g.k1", -ENODATA},
		{"stk1.g.k1.", -ENODATA},
		{"stk1.g.k1.AAAA", -ENODATA},             /* 3 bytes < 28 */
		{"stk1.s.k1.AAAAAAAAAAAAAAAAAAAA", -ENODATA}, /* 15 < 16 */
		{"xtk1.g.k1.AAAA", -EINVAL},
		{"STK1.g.k1.AAAA", -EINVAL},
		{"stkx.g.k1.AAAA", -EINVAL},
		{"stk.g.k1.AAAA", -EINVAL},
		{"stk2.g.k1.AAAA", -EPROTONOSUPPORT},
		{"stk0.g.k1.AAAA", -EPROTONOSUPPORT},
		{"stk01.g.k1.AAAA", -EPROTONOSUPPORT},
		{"stk10.g.k1.AAAA", -EPROTONOSUPPORT},
		{"stk2", -EPROTONOSUPPORT},
		{"stk1:g.k1.AAAA", -EINVAL},
		{"stk1.x.k1.AAAA", -EINVAL},
		{"stk1.G.k1.AAAA", -EINVAL},
		{"stk1.gg.k1.AAAA", -EINVAL},
		{"stk1.g..AAAA", -EINVAL},
		{"stk1.g.k 1.AAAA", -EINVAL},
		{"stk1.g.k+1.AAAA", -EINVAL},
		{"stk1.g.k1.AAAAA", -EILSEQ},             /* 4k+1 chars */
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(cases); i++) {
		int r = seal_token_parse(cases[i].text, strlen(cases[i].text),
					 &t);
		if (r != cases[i].err)
			fail_msg("\"%s\": got %d (%s), want %d (%s)",
				 cases[i].text, r, seal_strerror(r),
				 cases[i].err, seal_strerror(cases[i].err));
	}
	/* Hash tokens: "stk1.h.k1." + |n_a| 'A' + |tail|. 43 chars carry
	 * the 32 bytes. */
	const struct {
		int n_a;
		const char *tail;
		int err;
	} hcases[] = {
		{43, "", 0},
		{42, "B", -EILSEQ},       /* non-canonical tail bits */
		{42, "E", 0},             /* canonical: low 2 bits zero */
		{42, "=", -EILSEQ},       /* padding */
		{42, " ", -EILSEQ},       /* trailing space */
		{42, "", -ENODATA},       /* 31 bytes: truncated */
		{44, "", -EMSGSIZE},      /* 33 bytes: oversize */
		{45, "", -EILSEQ},        /* 4k+1 chars */
		{22, "+AAAAAAAAAAAAAAAAAAAA", -EILSEQ},
		{22, "/AAAAAAAAAAAAAAAAAAAA", -EILSEQ},
		{22, ".AAAAAAAAAAAAAAAAAAAA", -EILSEQ}, /* a fifth part */
		{40, "AA==", -EMSGSIZE},  /* padded: 44 chars */
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(hcases); i++) {
		char h[100] = "stk1.h.k1.";
		memset(h + 10, 'A', (size_t)hcases[i].n_a);
		strcpy(h + 10 + hcases[i].n_a, hcases[i].tail);
		int r = seal_token_parse(h, strlen(h), &t);
		if (r != hcases[i].err)
			fail_msg("\"%s\": got %d (%s), want %d (%s)", h, r,
				 seal_strerror(r), hcases[i].err,
				 seal_strerror(hcases[i].err));
	}
	/* NUL inside */
	char nul[64];
	memcpy(nul, hash43, 54);
	nul[20] = '\0';
	assert_int_equal(seal_token_parse(nul, 53, &t), -EILSEQ);
	nul[20] = 'A';
	nul[8] = '\0';
	assert_int_equal(seal_token_parse(nul, 53, &t), -EINVAL);
	/* key id of 64 chars passes, 65 does not */
	char kid[200] = "stk1.h.";
	memset(kid + 7, 'k', 64);
	memcpy(kid + 71, ".", 1);
	memset(kid + 72, 'A', 43);
	assert_int_equal(seal_token_parse(kid, 72 + 43, &t), 0);
	memset(kid + 7, 'k', 65);
	memcpy(kid + 72, ".", 1);
	memset(kid + 73, 'A', 43);
	assert_int_equal(seal_token_parse(kid, 73 + 43, &t), -EINVAL);
	/* oversize: one byte over the longest possible token, and a gcm
	 * payload one byte over the value maximum */
	size_t big = SEAL_TOKEN_MAX + 1;
	char *b = malloc(big + 8);
	memcpy(b, "stk1.g.k.", 9);
	memset(b + 9, 'A', big - 9);
	assert_int_equal(seal_token_parse(b, big, &t), -EMSGSIZE);
	size_t pl = SEAL_B64_LEN(SEAL_VALUE_MAX + 28 + 1);
	assert_int_equal(seal_token_parse(b, 9 + pl, &t), -EMSGSIZE);
	pl = SEAL_B64_LEN(SEAL_VALUE_MAX + 28);
	assert_int_equal(seal_token_parse(b, 9 + pl, &t), 0);
	assert_int_equal(t.raw_len, SEAL_VALUE_MAX + 28);
	free(b);
	assert_int_equal(seal_token_parse(NULL, 3, &t), -EINVAL);
}

/* ---- seal / open through tokens --------------------------------------------------- */

static int header_safe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!key_id_char((unsigned char)s[i]) && s[i] != '.')
			return 0;
	return 1;
}

static void test_token_round_trips(void **state)
{
	(void)state;
	struct ctxs c = mk("acme", "k-1");
	size_t tcap = SEAL_TOKEN_MAX + 1;
	char *tok = malloc(tcap);
	uint8_t *v = malloc(SEAL_VALUE_MAX), *back = malloc(SEAL_VALUE_MAX);
	rnd_fill(v, SEAL_VALUE_MAX);
	for (size_t n = 0;; n = n < 70 ? n + 1 : n * 2 + 1) {
		if (n > SEAL_VALUE_MAX)
			n = SEAL_VALUE_MAX;
		int tl = seal_token_seal_gcm(c.g, "hdr:x", 5, "rec-1", 5, v, n,
					     tok, tcap);
		assert_int_equal(tl, (int)seal_token_len(3, n + 28));
		assert_int_equal(tok[tl], '\0');
		assert_true(header_safe(tok, (size_t)tl));
		assert_memory_equal(tok, "stk1.g.k-1.", 11);
		assert_int_equal(seal_token_open_gcm(c.g, "hdr:x", 5, "rec-1",
						     5, tok, (size_t)tl, back,
						     n),
				 (int)n);
		assert_memory_equal(back, v, n);

		tl = seal_token_seal_siv(c.s, "hdr:x", 5, v, n, tok, tcap);
		assert_int_equal(tl, (int)seal_token_len(3, n + 16));
		assert_true(header_safe(tok, (size_t)tl));
		assert_int_equal(seal_token_open_siv(c.s, "hdr:x", 5, tok,
						     (size_t)tl, back, n),
				 (int)n);
		assert_memory_equal(back, v, n);

		tl = seal_token_hash(c.h, "hdr:x", 5, v, n, tok, tcap);
		assert_int_equal(tl, (int)seal_token_len(3, 32));
		assert_int_equal(seal_token_check_hash(c.h, "hdr:x", 5, v, n,
						       tok, (size_t)tl),
				 0);
		if (n)
			assert_int_equal(seal_token_check_hash(c.h, "hdr:x", 5,
							       v, n - 1, tok,
							       (size_t)tl),
					 -EBADMSG);
		if (n == SEAL_VALUE_MAX)
			break;
	}
	/* buffer too small by one: refused before any nonce is used */
	uint64_t used = seal_gcm_used(c.g);
	size_t need = seal_token_len(3, 10 + 28);
	assert_int_equal(seal_token_seal_gcm(c.g, "f", 1, "r", 1, v, 10, tok,
					     need - 1),
			 -ENOBUFS);
	assert_int_equal(seal_gcm_used(c.g), used);
	assert_int_equal(seal_token_seal_gcm(c.g, "f", 1, "r", 1, v,
					     SEAL_VALUE_MAX + 1, tok, tcap),
			 -EMSGSIZE);
	assert_int_equal(seal_token_seal_gcm(c.g, "f", 1, "r", 1, v, 10, tok,
					     need),
			 (int)need);

	/* the token's payload is exactly what seal_gcm_seal() writes: the
	 * nonce (fixed field, next counter value), then ciphertext and tag */
	struct ctxs d = mk("acme", "k-1");
	uint8_t raw[100], back2[64];
	int tl = seal_token_seal_gcm(d.g, "f", 1, "r", 1, v, 50, tok, tcap);
	struct seal_token t;
	assert_int_equal(seal_token_parse(tok, (size_t)tl, &t), 0);
	assert_int_equal(seal_token_decode(&t, raw, sizeof(raw)), 50 + 28);
	assert_int_equal(raw[3], (uint8_t)(next_fixed - 1));
	for (int b = 4; b < 12; b++)
		assert_int_equal(raw[b], 0);
	assert_int_equal(seal_gcm_open(d.g, "f", 1, "r", 1, raw, 78, back2,
				       sizeof(back2)),
			 50);
	assert_memory_equal(back2, v, 50);
	char t2[200];
	assert_int_equal(seal_token_encode('g', "k-1", 3, raw, 78, t2,
					   sizeof(t2)),
			 tl);
	assert_memory_equal(tok, t2, (size_t)tl);
	rm(&d);
	rm(&c);
	free(tok);
	free(v);
	free(back);
}

/* Every byte of a token replaced by every other character of the token
 * alphabet, and every truncation: nothing opens. */
static void test_tamper_every_byte(void **state)
{
	(void)state;
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789-_.=+/ \0";
	struct ctxs c = mk("acme", "k1");
	const uint8_t *v = (const uint8_t *)"4111-1111-1111-1111";
	char tok[3][200];
	int tl[3];
	tl[0] = seal_token_seal_gcm(c.g, "card", 4, "r1", 2, v, 19, tok[0],
				    200);
	tl[1] = seal_token_seal_siv(c.s, "card", 4, v, 19, tok[1], 200);
	tl[2] = seal_token_hash(c.h, "card", 4, v, 19, tok[2], 200);
	uint8_t back[64];
	unsigned tries = 0;
	for (int k = 0; k < 3; k++) {
		assert_true(tl[k] > 0);
		char m[200];
		for (int i = 0; i < tl[k]; i++) {
			for (size_t a = 0; a < sizeof(alpha) - 1; a++) {
				if (alpha[a] == tok[k][i])
					continue;
				memcpy(m, tok[k], (size_t)tl[k]);
				m[i] = alpha[a];
				int r;
				if (k == 0)
					r = seal_token_open_gcm(c.g, "card", 4,
								"r1", 2, m,
								(size_t)tl[k],
								back, 64);
				else if (k == 1)
					r = seal_token_open_siv(c.s, "card", 4,
								m, (size_t)tl[k],
								back, 64);
				else
					r = seal_token_check_hash(
						c.h, "card", 4, v, 19, m,
						(size_t)tl[k]);
				if (r >= 0)
					fail_msg("kind %d: byte %d -> '%c' "
						 "opened",
						 k, i, alpha[a]);
				tries++;
			}
		}
		for (int cut = 0; cut < tl[k]; cut++) {
			int r = k == 0 ? seal_token_open_gcm(c.g, "card", 4,
							     "r1", 2, tok[k],
							     (size_t)cut, back,
							     64)
				: k == 1 ? seal_token_open_siv(c.s, "card", 4,
							       tok[k],
							       (size_t)cut,
							       back, 64)
					 : seal_token_check_hash(
						   c.h, "card", 4, v, 19,
						   tok[k], (size_t)cut);
			assert_true(r < 0);
		}
	}
	assert_true(tries > 10000);
	rm(&c);
}

static void test_token_moved(void **state)
{
	(void)state;
	struct ctxs c = mk("acme", "k1");
	struct ctxs other_tenant = mk("globex", "k1");
	struct ctxs other_key = mk("acme", "k2");
	const uint8_t *v = (const uint8_t *)"Bearer abc.def";
	char tg[200], ts[200], th[200];
	uint8_t back[64];
	int ng = seal_token_seal_gcm(c.g, "authorization", 13, "req-1", 5, v,
				     14, tg, 200);
	int ns = seal_token_seal_siv(c.s, "authorization", 13, v, 14, ts, 200);
	int nh = seal_token_hash(c.h, "authorization", 13, v, 14, th, 200);
	/* in place */
	assert_int_equal(seal_token_open_gcm(c.g, "authorization", 13, "req-1",
					     5, tg, (size_t)ng, back, 64),
			 14);
	/* other record, other field */
	assert_int_equal(seal_token_open_gcm(c.g, "authorization", 13, "req-2",
					     5, tg, (size_t)ng, back, 64),
			 -EBADMSG);
	assert_int_equal(seal_token_open_gcm(c.g, "cookie", 6, "req-1", 5, tg,
					     (size_t)ng, back, 64),
			 -EBADMSG);
	/* SIV is not bound to the record: by design, only to the field */
	assert_int_equal(seal_token_open_siv(c.s, "cookie", 6, ts, (size_t)ns,
					     back, 64),
			 -EBADMSG);
	assert_int_equal(seal_token_check_hash(c.h, "cookie", 6, v, 14, th,
					       (size_t)nh),
			 -EBADMSG);
	/* other tenant with the same key id: tag fails */
	assert_int_equal(seal_token_open_gcm(other_tenant.g, "authorization",
					     13, "req-1", 5, tg, (size_t)ng,
					     back, 64),
			 -EBADMSG);
	assert_int_equal(seal_token_open_siv(other_tenant.s, "authorization",
					     13, ts, (size_t)ns, back, 64),
			 -EBADMSG);
	/* other key id: refused before any crypto */
	assert_int_equal(seal_token_open_gcm(other_key.g, "authorization", 13,
					     "req-1", 5, tg, (size_t)ng, back,
					     64),
			 -ENOKEY);
	/* wrong kind for the opener */
	assert_int_equal(seal_token_open_gcm(c.g, "authorization", 13, "req-1",
					     5, ts, (size_t)ns, back, 64),
			 -ENOKEY);
	assert_int_equal(seal_token_open_siv(c.s, "authorization", 13, th,
					     (size_t)nh, back, 64),
			 -ENOKEY);
	/* output too small */
	assert_int_equal(seal_token_open_gcm(c.g, "authorization", 13, "req-1",
					     5, tg, (size_t)ng, back, 13),
			 -ENOBUFS);
	rm(&c);
	rm(&other_tenant);
	rm(&other_key);
}

static void test_strerror(void **state)
{
	(void)state;
	const int errs[] = {0,        -EINVAL,   -EPROTONOSUPPORT, -EILSEQ,
			    -ENODATA, -EMSGSIZE, -ENOKEY,          -EBADMSG,
			    -ENOBUFS, -EKEYEXPIRED, -ENOTSUP,      -ERANGE,
			    -ENOMEM,  -EIO,      -EEXIST,          -12345};
	for (size_t i = 0; i < ST_ARRAY_SIZE(errs); i++) {
		const char *s = seal_strerror(errs[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 1);
	}
	assert_string_equal(seal_strerror(-EBADMSG),
			    "authentication failed (tampered, or bound to "
			    "another tenant, key, field or record)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aad_build),
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_in_place),
		cmocka_unit_test(test_encode_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_token_round_trips),
		cmocka_unit_test(test_tamper_every_byte),
		cmocka_unit_test(test_token_moved),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
