/* Tests for src/seal_siv.c: tokenize (AES-SIV) and hash (HMAC-SHA-256).
 *
 * The .c is included to reach the raw layer: RFC 5297 gives AES-128-SIV
 * vectors (256-bit keys) with several associated-data strings, which the
 * public API (AES-256-SIV, one canonical AAD) never produces, so they run
 * through siv_new_with_key(key, 32, ...) / siv_seal_raw(). The empty-value
 * path, which sealtap computes itself because OpenSSL 3.0 cannot, is
 * checked against OpenSSL's own SIV on every short length. The public API
 * is compared with an independent reference built here from plain OpenSSL
 * calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include "../../src/seal_siv.c"

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

static uint64_t rng_state = 0x0123456789abcdefull;
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
	0xaa, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x55,
};

/* ---- RFC 5297 ----------------------------------------------------------------- */

/* Appendix A.1 (deterministic, one AD) and A.2 (nonce-based: two ADs and
 * the nonce as the last AD string); output = V || C. Plus two vectors with
 * no AD at all (empty and one-block plaintext) that exercise S2V's
 * edge cases, as published with several AES-SIV implementations. */
static const struct siv_kat {
	const char *name, *key, *ad[3], *pt, *out;
} kats[] = {
	{"RFC 5297 A.1",
	 "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	 {"101112131415161718191a1b1c1d1e1f2021222324252627"},
	 "112233445566778899aabbccddee",
	 "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"},
	{"RFC 5297 A.2",
	 "7f7e7d7c7b7a797877767574737271704041424344454647"
	 "48494a4b4c4d4e4f",
	 {"00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa9988"
	  "7766554433221100",
	  "102030405060708090a0", "09f911029d74e35bd84156c5635688c0"},
	 "7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074"
	 "207573696e67205349562d414553",
	 "7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17"
	 "dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d"},
	{"no AD, empty plaintext",
	 "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	 {NULL}, "", "f2007a5beb2b8900c588a7adf599f172"},
	{"no AD, one-block plaintext",
	 "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	 {NULL}, "00112233445566778899aabbccddeeff",
	 "f304f912863e303d5b540e5057c7010c942ffaf45b0e5ca5fb9a56a5263bb065"},
};

static void test_rfc5297_vectors(void **state)
{
	(void)state;
	for (size_t k = 0; k < ST_ARRAY_SIZE(kats); k++) {
		const struct siv_kat *v = &kats[k];
		uint8_t key[32], adb[3][64], pt[64], want[80], out[80],
			back[64];
		struct siv_ad ad[3];
		size_t n_ad = 0;
		size_t kl = unhex(v->key, key);
		assert_int_equal(kl, 32); /* AES-128-SIV */
		for (; n_ad < 3 && v->ad[n_ad]; n_ad++) {
			ad[n_ad].len = unhex(v->ad[n_ad], adb[n_ad]);
			ad[n_ad].p = adb[n_ad];
		}
		size_t ptl = unhex(v->pt, pt);
		size_t wl = unhex(v->out, want);
		assert_int_equal(wl, ptl + 16);
		struct seal_siv *s;
		assert_int_equal(siv_new_with_key(key, kl, "t", "k", &s), 0);
		assert_int_equal(siv_seal_raw(s, ad, n_ad, pt, ptl, out,
					      out + 16),
				 0);
		if (memcmp(out, want, wl))
			fail_msg("%s: wrong output", v->name);
		memset(back, 0xee, sizeof(back));
		assert_int_equal(siv_open_raw(s, ad, n_ad, want, want + 16,
					      ptl, back),
				 0);
		assert_memory_equal(back, pt, ptl);
		want[0] ^= 0x80;
		assert_int_equal(siv_open_raw(s, ad, n_ad, want, want + 16,
					      ptl, back),
				 -EBADMSG);
		seal_siv_free(s);
	}
}

/* sealtap's own S2V (used for empty values) equals OpenSSL's SIV tag on
 * every length it can compute (1..15 bytes), for both key sizes and 0..3
 * AD strings. */
static void test_own_s2v_matches_openssl(void **state)
{
	(void)state;
	for (size_t kl = 32; kl <= 64; kl += 32) {
		for (int round = 0; round < 200; round++) {
			uint8_t key[64], adb[3][40], pt[16], tag1[16],
				tag2[16], ct[16];
			rnd_fill(key, kl);
			struct seal_siv *s;
			assert_int_equal(siv_new_with_key(key, kl, "t", "k",
							  &s),
					 0);
			struct siv_ad ad[3];
			size_t n_ad = (size_t)round % 4;
			for (size_t i = 0; i < n_ad; i++) {
				ad[i].len = 1 + rnd() % 40;
				rnd_fill(adb[i], ad[i].len);
				ad[i].p = adb[i];
			}
			size_t n = 1 + (size_t)round % 15;
			rnd_fill(pt, n);
			assert_int_equal(siv_seal_raw(s, ad, n_ad, pt, n, tag1,
						      ct),
					 0);
			assert_int_equal(siv_s2v_short(s, ad, n_ad, pt, n,
						       tag2),
					 0);
			assert_memory_equal(tag1, tag2, 16);
			seal_siv_free(s);
		}
	}
}

/* ---- public API ----------------------------------------------------------------- */

static void ref_derive(const char *label, uint8_t *out, size_t n)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
		OSSL_PARAM_construct_octet_string("key", (void *)test_dek, 32),
		OSSL_PARAM_construct_octet_string("salt", "sealtap kdf v1", 14),
		OSSL_PARAM_construct_octet_string("info", (void *)label,
						  strlen(label)),
		OSSL_PARAM_construct_end(),
	};
	assert_int_equal(EVP_KDF_derive(k, out, n, p), 1);
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
}

static size_t ref_aad(char kind, const char *tenant, const char *kid,
		      const char *field, uint8_t *a)
{
	size_t n = 0, tl = strlen(tenant), kl = strlen(kid),
	       fl = strlen(field);
	a[n++] = 0x01;
	a[n++] = (uint8_t)kind;
	a[n++] = (uint8_t)tl;
	memcpy(a + n, tenant, tl), n += tl;
	a[n++] = (uint8_t)kl;
	memcpy(a + n, kid, kl), n += kl;
	a[n++] = (uint8_t)fl;
	memcpy(a + n, field, fl), n += fl;
	return n;
}

static void test_siv_matches_reference(void **state)
{
	(void)state;
	uint8_t key[64], aad[600];
	ref_derive("sealtap/v1 tokenize aes-256-siv", key, 64);
	size_t al = ref_aad('s', "acme", "k9", "header:x-user", aad);
	struct seal_siv *s;
	assert_int_equal(seal_siv_new(test_dek, "acme", "k9", &s), 0);
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-SIV", NULL);
	for (size_t n = 1; n < 600; n += 1 + n / 8) {
		uint8_t pt[600], out[700], want[700];
		rnd_fill(pt, n);
		assert_int_equal(seal_siv_seal(s, "header:x-user", 13, pt, n,
					       out, sizeof(out)),
				 (int)n + 16);
		EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
		int l;
		assert_true(EVP_EncryptInit_ex2(x, c, key, NULL, NULL));
		assert_true(EVP_EncryptUpdate(x, NULL, &l, aad, (int)al));
		assert_true(EVP_EncryptUpdate(x, want + 16, &l, pt, (int)n));
		assert_true(EVP_EncryptFinal_ex(x, want + 16 + n, &l));
		assert_true(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16,
						want));
		EVP_CIPHER_CTX_free(x);
		assert_memory_equal(out, want, n + 16);
	}
	EVP_CIPHER_free(c);
	seal_siv_free(s);
}

static void test_siv_deterministic_and_bound(void **state)
{
	(void)state;
	struct seal_siv *a, *a2, *b, *k2;
	assert_int_equal(seal_siv_new(test_dek, "acme", "k1", &a), 0);
	assert_int_equal(seal_siv_new(test_dek, "acme", "k1", &a2), 0);
	assert_int_equal(seal_siv_new(test_dek, "globex", "k1", &b), 0);
	assert_int_equal(seal_siv_new(test_dek, "acme", "k2", &k2), 0);
	const uint8_t *v = (const uint8_t *)"alice@example.com";
	uint8_t t1[64], t2[64], t3[64], back[64];
	/* equal inputs, equal tokens: also from another context (another
	 * worker) and again later (another record) */
	assert_int_equal(seal_siv_seal(a, "email", 5, v, 17, t1, 64), 33);
	assert_int_equal(seal_siv_seal(a2, "email", 5, v, 17, t2, 64), 33);
	assert_memory_equal(t1, t2, 33);
	assert_int_equal(seal_siv_seal(a, "email", 5, v, 17, t2, 64), 33);
	assert_memory_equal(t1, t2, 33);
	/* another tenant, key id or field: different */
	assert_int_equal(seal_siv_seal(b, "email", 5, v, 17, t3, 64), 33);
	assert_memory_not_equal(t1, t3, 33);
	assert_int_equal(seal_siv_seal(k2, "email", 5, v, 17, t3, 64), 33);
	assert_memory_not_equal(t1, t3, 33);
	assert_int_equal(seal_siv_seal(a, "emai", 4, v, 17, t3, 64), 33);
	assert_memory_not_equal(t1, t3, 33);
	/* and they do not open across */
	assert_int_equal(seal_siv_open(a, "email", 5, t1, 33, back, 64), 17);
	assert_memory_equal(back, v, 17);
	assert_int_equal(seal_siv_open(b, "email", 5, t1, 33, back, 64),
			 -EBADMSG);
	assert_int_equal(seal_siv_open(k2, "email", 5, t1, 33, back, 64),
			 -EBADMSG);
	assert_int_equal(seal_siv_open(a, "phone", 5, t1, 33, back, 64),
			 -EBADMSG);
	for (int i = 0; i < 17; i++)
		assert_int_equal(back[i], 0); /* wiped on failure */
	/* every bit of siv || ciphertext matters */
	for (int i = 0; i < 33 * 8; i++) {
		t1[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(seal_siv_open(a, "email", 5, t1, 33, back, 64),
				 -EBADMSG);
		t1[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* empty values: deterministic, bound, openable */
	assert_int_equal(seal_siv_seal(a, "email", 5, NULL, 0, t1, 64), 16);
	assert_int_equal(seal_siv_seal(a2, "email", 5, (uint8_t *)"", 0, t2,
				       64),
			 16);
	assert_memory_equal(t1, t2, 16);
	assert_int_equal(seal_siv_seal(b, "email", 5, NULL, 0, t3, 64), 16);
	assert_memory_not_equal(t1, t3, 16);
	assert_int_equal(seal_siv_open(a, "email", 5, t1, 16, back, 0), 0);
	assert_int_equal(seal_siv_open(b, "email", 5, t1, 16, back, 0),
			 -EBADMSG);
	t1[3] ^= 4;
	assert_int_equal(seal_siv_open(a, "email", 5, t1, 16, back, 0),
			 -EBADMSG);
	/* the empty value's token differs from a one-byte value's */
	assert_int_equal(seal_siv_seal(a, "email", 5, (uint8_t *)"\0", 1, t3,
				       64),
			 17);
	assert_memory_not_equal(t2, t3, 16);
	seal_siv_free(a);
	seal_siv_free(a2);
	seal_siv_free(b);
	seal_siv_free(k2);
}

static void test_siv_round_trip_sizes(void **state)
{
	(void)state;
	struct seal_siv *s;
	assert_int_equal(seal_siv_new(test_dek, "t", "k", &s), 0);
	size_t cap = SEAL_VALUE_MAX + 16;
	uint8_t *pt = malloc(SEAL_VALUE_MAX), *out = malloc(cap),
		*back = malloc(SEAL_VALUE_MAX);
	rnd_fill(pt, SEAL_VALUE_MAX);
	for (size_t n = 0;; n = n < 100 ? n + 1 : n * 2 + 3) {
		if (n > SEAL_VALUE_MAX)
			n = SEAL_VALUE_MAX;
		assert_int_equal(seal_siv_seal(s, "f", 1, pt, n, out, cap),
				 (int)n + 16);
		assert_int_equal(seal_siv_open(s, "f", 1, out, n + 16, back,
					       n),
				 (int)n);
		assert_memory_equal(back, pt, n);
		/* in place */
		assert_int_equal(seal_siv_open(s, "f", 1, out, n + 16,
					       out + 16, n),
				 (int)n);
		assert_memory_equal(out + 16, pt, n);
		if (n == SEAL_VALUE_MAX)
			break;
	}
	assert_int_equal(seal_siv_seal(s, "f", 1, pt, SEAL_VALUE_MAX + 1, out,
				       cap),
			 -EMSGSIZE);
	assert_int_equal(seal_siv_seal(s, "f", 1, pt, 10, out, 25), -ENOBUFS);
	assert_int_equal(seal_siv_seal(s, NULL, 3, pt, 10, out, 64), -EINVAL);
	assert_int_equal(seal_siv_open(s, "f", 1, out, 15, back, 10),
			 -ENODATA);
	assert_int_equal(seal_siv_open(s, "f", 1, out, 30, back, 10),
			 -ENOBUFS);
	free(pt);
	free(out);
	free(back);
	seal_siv_free(s);
	assert_int_equal(seal_siv_new(test_dek, "t", "k.x", &s), -EINVAL);
	assert_null(s);
	seal_siv_free(NULL);
}

/* ---- hash ---------------------------------------------------------------------- */

static void test_hash(void **state)
{
	(void)state;
	uint8_t key[32], aad[600], msg[700], want[32], got[32], got2[32];
	ref_derive("sealtap/v1 hash hmac-sha-256", key, 32);
	struct seal_hash *h, *h2, *other;
	assert_int_equal(seal_hash_new(test_dek, "acme", "k1", &h), 0);
	assert_int_equal(seal_hash_new(test_dek, "acme", "k1", &h2), 0);
	assert_int_equal(seal_hash_new(test_dek, "globex", "k1", &other), 0);
	for (size_t n = 0; n < 300; n += 7) {
		uint8_t v[300];
		rnd_fill(v, n);
		size_t al = ref_aad('h', "acme", "k1", "body:ssn", aad);
		memcpy(msg, aad, al);
		memcpy(msg + al, v, n);
		unsigned int wl = 32;
		assert_non_null(HMAC(EVP_sha256(), key, 32, msg, al + n, want,
				     &wl));
		assert_int_equal(seal_hash_compute(h, "body:ssn", 8, v, n, got),
				 32);
		assert_memory_equal(got, want, 32);
		assert_int_equal(seal_hash_compute(h2, "body:ssn", 8, v, n,
						   got2),
				 32);
		assert_memory_equal(got, got2, 32);
		assert_int_equal(seal_hash_compute(other, "body:ssn", 8, v, n,
						   got2),
				 32);
		assert_memory_not_equal(got, got2, 32);
		assert_int_equal(seal_hash_compute(h, "body:ss", 7, v, n, got2),
				 32);
		assert_memory_not_equal(got, got2, 32);
	}
	/* the length prefix keeps field and value apart */
	assert_int_equal(seal_hash_compute(h, "ab", 2, (uint8_t *)"c", 1, got),
			 32);
	assert_int_equal(seal_hash_compute(h, "a", 1, (uint8_t *)"bc", 2, got2),
			 32);
	assert_memory_not_equal(got, got2, 32);
	static uint8_t big[SEAL_VALUE_MAX + 1];
	assert_int_equal(seal_hash_compute(h, "f", 1, big, sizeof(big), got),
			 -EMSGSIZE);
	assert_int_equal(seal_hash_compute(h, "f", 1, big, SEAL_VALUE_MAX, got),
			 32);
	assert_int_equal(seal_hash_compute(h, "f", 1, NULL, 5, got), -EINVAL);
	seal_hash_free(h);
	seal_hash_free(h2);
	seal_hash_free(other);
	seal_hash_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc5297_vectors),
		cmocka_unit_test(test_own_s2v_matches_openssl),
		cmocka_unit_test(test_siv_matches_reference),
		cmocka_unit_test(test_siv_deterministic_and_bound),
		cmocka_unit_test(test_siv_round_trip_sizes),
		cmocka_unit_test(test_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
