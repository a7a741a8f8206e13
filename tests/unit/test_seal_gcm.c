/* Tests for src/seal_gcm.c.
 *
 * The .c is included to reach the raw layer (gcm_new_with_key,
 * gcm_encrypt_raw, gcm_decrypt_raw): the NIST vectors use their own IVs and
 * AAD, which the public API (deterministic nonces, canonical AAD) never
 * produces. Everything else goes through the public API, and is checked
 * against an independent reference written here with plain OpenSSL calls
 * (its own HKDF, its own AAD bytes, a fresh one-shot EVP context), so a
 * mistake shared by the engine's layers cannot cancel out.
 *
 * Every behavioural test runs once per available backend (OpenSSL, and
 * intel-ipsec-mb when built in and the CPU has AES-NI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "../../src/seal_gcm.c"

/* ---- helpers --------------------------------------------------------------- */

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

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x5ea17a9c0ffee123ull;
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

static enum seal_backend backends[2];
static int n_backends;

static int group_setup(void **state)
{
	(void)state;
	backends[n_backends++] = SEAL_BACKEND_OPENSSL;
	if (seal_backend_available(SEAL_BACKEND_IPSEC_MB))
		backends[n_backends++] = SEAL_BACKEND_IPSEC_MB;
	else
		fprintf(stderr, "note: intel-ipsec-mb not available; "
				"testing the OpenSSL backend only\n");
	return 0;
}

static const uint8_t test_dek[SEAL_DEK_LEN] = {
	0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45,
	0x67, 0x89, 0xab, 0xcd, 0xef, 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5,
	0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f,
};

/* Forgets every fixed field handed out so far: tests that compare two
 * contexts with one lease on purpose call it between the two. */
static void forget_fixed(void)
{
	free(fixed_set);
	fixed_set = NULL;
	fixed_n = fixed_cap = 0;
}

static int reset_guard(void **state)
{
	(void)state;
	forget_fixed();
	return 0;
}

static struct seal_gcm *mk(enum seal_backend b, uint32_t fixed, uint64_t max,
			   const char *tenant, const char *kid)
{
	struct seal_gcm_cfg cfg = {.fixed = fixed, .max_seals = max,
				   .backend = b};
	struct seal_gcm *g = NULL;
	assert_int_equal(seal_gcm_new(test_dek, tenant, kid, &cfg, &g), 0);
	assert_non_null(g);
	assert_int_equal(seal_gcm_backend(g), b);
	return g;
}

/* ---- NIST known answers ------------------------------------------------------ */

/* AES-256, 96-bit IVs, 128-bit tags. TC13-TC16 are from the GCM
 * specification (McGrew & Viega, also in NIST's GCM test vectors);
 * the CAVP ones from gcmEncryptExtIV256.rsp, Count = 0 of each block. */
static const struct kat {
	const char *name, *key, *iv, *pt, *aad, *ct, *tag;
} kats[] = {
	{"spec TC13 (empty)",
	 "0000000000000000000000000000000000000000000000000000000000000000",
	 "000000000000000000000000", "", "", "",
	 "530f8afbc74536b9a963b4f1c4cb738b"},
	{"spec TC14 (one block)",
	 "0000000000000000000000000000000000000000000000000000000000000000",
	 "000000000000000000000000", "00000000000000000000000000000000", "",
	 "cea7403d4d606b6e074ec5d3baf39d18",
	 "d0d1c8a799996bf0265b98b5d48ab919"},
	{"spec TC15 (64 bytes)",
	 "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	 "cafebabefacedbaddecaf888",
	 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	 "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	 "",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	 "b094dac5d93471bdec1a502270e3cc6c"},
	{"spec TC16 (60 bytes, 20-byte AAD)",
	 "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	 "cafebabefacedbaddecaf888",
	 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	 "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	 "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	 "76fc6ece0f4e1768cddf8853bb2d551b"},
	{"CAVP PTlen=0 AADlen=0",
	 "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
	 "516c33929df5a3284ff463d7", "", "", "",
	 "bdc1ac884d332457a1d2664f168c76f0"},
	{"CAVP PTlen=128 AADlen=0",
	 "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
	 "0d18e06c7c725ac9e362e1ce", "2db5168e932556f8089a0622981d017d", "",
	 "fa4362189661d163fcd6a56d8bf0405a",
	 "d636ac1bbedd5cc3ee727dc2ab4a9489"},
	{"CAVP PTlen=128 AADlen=128",
	 "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
	 "ac93a1a6145299bde902f21a", "2d71bcfa914e4ac045b2aa60955fad24",
	 "1e0889016f67601c8ebea4943bc23ad6",
	 "8995ae2e6df3dbf96fac7b7137bae67f",
	 "eca5aa77d51d4a0a14d9c51e1da474ab"},
};

static void test_nist_vectors(void **state)
{
	(void)state;
	for (int bi = 0; bi < n_backends; bi++) {
		for (size_t k = 0; k < ST_ARRAY_SIZE(kats); k++) {
			const struct kat *v = &kats[k];
			uint8_t key[32], iv[12], pt[64], aad[32], ct[64],
				tag[16], out[64], otag[16], back[64];
			unhex(v->key, key);
			unhex(v->iv, iv);
			size_t ptl = unhex(v->pt, pt);
			size_t aadl = unhex(v->aad, aad);
			unhex(v->ct, ct);
			unhex(v->tag, tag);
			struct seal_gcm_cfg cfg = {.backend = backends[bi]};
			struct seal_gcm *g;
			forget_fixed(); /* one fixed field for every vector */
			assert_int_equal(gcm_new_with_key(key, "t", "k", &cfg,
							  &g), 0);
			assert_int_equal(gcm_encrypt_raw(g, iv, aad, aadl, pt,
							 ptl, out, otag), 0);
			if (memcmp(out, ct, ptl) || memcmp(otag, tag, 16))
				fail_msg("%s: wrong output on %s", v->name,
					 seal_backend_name(backends[bi]));
			assert_int_equal(gcm_decrypt_raw(g, iv, aad, aadl, ct,
							 ptl, tag, back), 0);
			assert_memory_equal(back, pt, ptl);
			/* One flipped tag bit must fail. */
			tag[15] ^= 1;
			assert_int_equal(gcm_decrypt_raw(g, iv, aad, aadl, ct,
							 ptl, tag, back),
					 -EBADMSG);
			seal_gcm_free(g);
		}
	}
}

/* ---- the public API against an independent reference --------------------------- */

/* HKDF-SHA256 and AES-256-GCM written out with OpenSSL directly. */
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

static size_t ref_aad(const char *tenant, const char *kid, const char *field,
		      size_t fl, const char *rec, size_t rl, uint8_t *a)
{
	size_t n = 0, tl = strlen(tenant), kl = strlen(kid);
	a[n++] = 0x01;
	a[n++] = 'g';
	a[n++] = (uint8_t)tl;
	memcpy(a + n, tenant, tl), n += tl;
	a[n++] = (uint8_t)kl;
	memcpy(a + n, kid, kl), n += kl;
	a[n++] = (uint8_t)fl;
	memcpy(a + n, field, fl), n += fl;
	a[n++] = (uint8_t)rl;
	memcpy(a + n, rec, rl), n += rl;
	return n;
}

static void ref_seal(const uint8_t *key, const uint8_t *iv, const uint8_t *aad,
		     size_t aadl, const uint8_t *pt, size_t n, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l;
	assert_true(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv));
	assert_true(EVP_EncryptUpdate(c, NULL, &l, aad, (int)aadl));
	if (n)
		assert_true(EVP_EncryptUpdate(c, out + 12, &l, pt, (int)n));
	assert_true(EVP_EncryptFinal_ex(c, out + 12 + n, &l));
	assert_true(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16,
					out + 12 + n));
	memcpy(out, iv, 12);
	EVP_CIPHER_CTX_free(c);
}

static void test_matches_reference(void **state)
{
	(void)state;
	uint8_t key[32];
	ref_derive("sealtap/v1 seal aes-256-gcm", key, 32);
	/* The derived key is not the DEK. */
	assert_memory_not_equal(key, test_dek, 32);
	for (int bi = 0; bi < n_backends; bi++) {
		uint32_t fixed = 0x01020304u + (uint32_t)bi;
		struct seal_gcm *g = mk(backends[bi], fixed, 0, "acme", "dek-7");
		for (unsigned i = 0; i < 300; i++) {
			uint8_t pt[700], out[800], want[800], aad[600], iv[12];
			size_t n = i < 200 ? i : rnd() % 700;
			rnd_fill(pt, n);
			char field[40], rec[40];
			size_t fl = rnd() % sizeof(field),
			       rl = rnd() % sizeof(rec);
			rnd_fill((uint8_t *)field, fl);
			rnd_fill((uint8_t *)rec, rl);
			int r = seal_gcm_seal(g, field, fl, rec, rl, pt, n, out,
					      sizeof(out));
			assert_int_equal(r, (int)n + 28);
			/* nonce = fixed || counter, big-endian */
			iv[0] = (uint8_t)(fixed >> 24);
			iv[1] = (uint8_t)(fixed >> 16);
			iv[2] = (uint8_t)(fixed >> 8);
			iv[3] = (uint8_t)fixed;
			for (int b = 0; b < 8; b++)
				iv[4 + b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
			size_t al = ref_aad("acme", "dek-7", field, fl, rec, rl,
					    aad);
			ref_seal(key, iv, aad, al, pt, n, want);
			assert_memory_equal(out, want, n + 28);
		}
		assert_int_equal(seal_gcm_used(g), 300);
		seal_gcm_free(g);
	}
}

/* ---- round trips ---------------------------------------------------------------- */

static void test_round_trip_sizes(void **state)
{
	(void)state;
	size_t cap = SEAL_VALUE_MAX + SEAL_GCM_OVERHEAD;
	uint8_t *pt = malloc(SEAL_VALUE_MAX), *sealed = malloc(cap),
		*back = malloc(SEAL_VALUE_MAX);
	rnd_fill(pt, SEAL_VALUE_MAX);
	for (int bi = 0; bi < n_backends; bi++) {
		/* each backend reuses the fixed fields below */
		forget_fixed();
		struct seal_gcm *g = mk(backends[bi], 7, 0, "t", "k");
		for (size_t n = 0; n <= SEAL_VALUE_MAX;
		     n = n < 300 ? n + 1 : n * 3 / 2 + 7) {
			int r = seal_gcm_seal(g, "f", 1, "r", 1, pt, n, sealed,
					      cap);
			assert_int_equal(r, (int)(n + 28));
			assert_int_equal(seal_gcm_open(g, "f", 1, "r", 1,
						       sealed, (size_t)r, back,
						       n),
					 (int)n);
			assert_memory_equal(back, pt, n);
			/* in place: plaintext over the ciphertext */
			assert_int_equal(seal_gcm_open(g, "f", 1, "r", 1,
						       sealed, (size_t)r,
						       sealed + 12, n),
					 (int)n);
			assert_memory_equal(sealed + 12, pt, n);
		}
		/* exactly the maximum */
		size_t n = SEAL_VALUE_MAX;
		int r = seal_gcm_seal(g, "f", 1, "r", 1, pt, n, sealed, cap);
		assert_int_equal(r, (int)(n + 28));
		assert_int_equal(seal_gcm_open(g, "f", 1, "r", 1, sealed,
					       (size_t)r, back, n),
				 (int)n);
		assert_memory_equal(back, pt, n);
		/* an open-only context of the same DEK opens it too */
		struct seal_gcm *o;
		assert_int_equal(seal_gcm_new(test_dek, "t", "k", NULL, &o), 0);
		assert_int_equal(seal_gcm_open(o, "f", 1, "r", 1, sealed,
					       (size_t)r, back, n),
				 (int)n);
		assert_int_equal(seal_gcm_seal(o, "f", 1, "r", 1, pt, 1, sealed,
					       cap),
				 -EKEYEXPIRED);
		seal_gcm_free(o);
		seal_gcm_free(g);
	}
	free(pt);
	free(sealed);
	free(back);
}

/* ---- both backends give the same bytes --------------------------------------------- */

static void test_backends_identical(void **state)
{
	(void)state;
	if (n_backends < 2)
		skip();
	uint8_t dek[32];
	for (int round = 0; round < 20; round++) {
		rnd_fill(dek, 32);
		struct seal_gcm_cfg c = {.fixed = (uint32_t)rnd()};
		struct seal_gcm *a, *b;
		c.backend = SEAL_BACKEND_OPENSSL;
		assert_int_equal(seal_gcm_new(dek, "tenant-x", "k1", &c, &a), 0);
		forget_fixed(); /* the same lease twice, on purpose */
		c.backend = SEAL_BACKEND_IPSEC_MB;
		assert_int_equal(seal_gcm_new(dek, "tenant-x", "k1", &c, &b), 0);
		for (int i = 0; i < 500; i++) {
			uint8_t pt[5000], oa[5100], ob[5100], back[5000];
			size_t n = (i % 5 == 0) ? rnd() % 5000 : rnd() % 300;
			rnd_fill(pt, n);
			uint8_t f[255], r[255];
			size_t fl = rnd() % 256, rl = rnd() % 256;
			rnd_fill(f, fl);
			rnd_fill(r, rl);
			int ra = seal_gcm_seal(a, f, fl, r, rl, pt, n, oa,
					       sizeof(oa));
			int rb = seal_gcm_seal(b, f, fl, r, rl, pt, n, ob,
					       sizeof(ob));
			assert_int_equal(ra, (int)n + 28);
			assert_int_equal(ra, rb);
			assert_memory_equal(oa, ob, (size_t)ra);
			/* each opens the other's */
			assert_int_equal(seal_gcm_open(b, f, fl, r, rl, oa,
						       (size_t)ra, back, n),
					 (int)n);
			assert_memory_equal(back, pt, n);
			assert_int_equal(seal_gcm_open(a, f, fl, r, rl, ob,
						       (size_t)rb, back, n),
					 (int)n);
		}
		seal_gcm_free(a);
		seal_gcm_free(b);
	}
}

/* ---- nonces -------------------------------------------------------------------------- */

static int cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, 12);
}

static void test_nonce_layout_and_uniqueness(void **state)
{
	(void)state;
	/* 3 instances (restarts / VMs) x 4 workers, 2000 seals each, all of
	 * one DEK: 24000 nonces, no two equal. */
	enum { INST = 3, WORKERS = 4, PER = 2000 };
	uint8_t(*nonces)[12] = malloc((size_t)INST * WORKERS * PER * 12);
	size_t k = 0;
	for (uint32_t inst = 0; inst < INST; inst++) {
		for (uint32_t w = 0; w < WORKERS; w++) {
			uint32_t fixed;
			assert_int_equal(seal_gcm_fixed_field(inst * 1000 + 1,
							      w, &fixed),
					 0);
			assert_int_equal(fixed, ((inst * 1000 + 1) << 8) | w);
			struct seal_gcm *g = mk(backends[(inst + w) % n_backends],
						fixed, 0, "t", "k");
			for (uint64_t i = 0; i < PER; i++) {
				uint8_t out[64];
				assert_int_equal(seal_gcm_seal(g, "f", 1, "r",
							       1, (uint8_t *)"v",
							       1, out,
							       sizeof(out)),
						 29);
				/* fixed field, then the counter value */
				assert_int_equal(out[0], (uint8_t)(fixed >> 24));
				assert_int_equal(out[3], (uint8_t)fixed);
				uint64_t c = 0;
				for (int b = 0; b < 8; b++)
					c = (c << 8) | out[4 + b];
				assert_int_equal(c, i);
				memcpy(nonces[k++], out, 12);
			}
			seal_gcm_free(g);
		}
	}
	qsort(nonces, k, 12, cmp_nonce);
	for (size_t i = 1; i < k; i++)
		assert_memory_not_equal(nonces[i - 1], nonces[i], 12);
	free(nonces);

	/* Range checks of the fixed field. */
	uint32_t f;
	assert_int_equal(seal_gcm_fixed_field(SEAL_GCM_INSTANCE_MAX,
					      SEAL_GCM_WORKER_MAX, &f),
			 0);
	assert_int_equal(f, 0xffffffffu);
	assert_int_equal(seal_gcm_fixed_field(SEAL_GCM_INSTANCE_MAX + 1, 0,
					      &f),
			 -ERANGE);
	assert_int_equal(seal_gcm_fixed_field(0, SEAL_GCM_WORKER_MAX + 1, &f),
			 -ERANGE);
}

static void test_counter_exhaustion(void **state)
{
	(void)state;
	for (int bi = 0; bi < n_backends; bi++) {
		/* each backend reuses the fixed fields below */
		forget_fixed();
		struct seal_gcm *g = mk(backends[bi], 1, 3, "t", "k");
		uint8_t out[64], back[8];
		assert_int_equal(seal_gcm_remaining(g), 3);
		for (int i = 0; i < 3; i++)
			assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1,
						       (uint8_t *)"abc", 3, out,
						       sizeof(out)),
					 31);
		for (int i = 0; i < 3; i++)
			assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1,
						       (uint8_t *)"abc", 3, out,
						       sizeof(out)),
					 -EKEYEXPIRED);
		assert_int_equal(seal_gcm_used(g), 3);
		assert_int_equal(seal_gcm_remaining(g), 0);
		/* Opening still works after the budget is gone. */
		assert_int_equal(seal_gcm_open(g, "f", 1, "r", 1, out, 31, back,
					       sizeof(back)),
				 3);
		seal_gcm_free(g);

		/* At the top of the 64-bit counter: the last value is used,
		 * then it stops; it never wraps to 0. */
		g = mk(backends[bi], 2, UINT64_MAX, "t", "k");
		g->next = UINT64_MAX - 2;
		assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1,
					       (uint8_t *)"abc", 3, out,
					       sizeof(out)),
				 31);
		assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1,
					       (uint8_t *)"abc", 3, out,
					       sizeof(out)),
				 31);
		for (int b = 4; b < 11; b++)
			assert_int_equal(out[b], 0xff);
		assert_int_equal(out[11], 0xfe);
		assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1,
					       (uint8_t *)"abc", 3, out,
					       sizeof(out)),
				 -EKEYEXPIRED);
		assert_int_equal(seal_gcm_used(g), UINT64_MAX);
		seal_gcm_free(g);
	}
}

/* ---- AAD binding --------------------------------------------------------------------- */

static void test_aad_binding(void **state)
{
	(void)state;
	for (int bi = 0; bi < n_backends; bi++) {
		/* each backend reuses the fixed fields below */
		forget_fixed();
		struct seal_gcm *g = mk(backends[bi], 9, 0, "acme", "k1");
		struct seal_gcm *other_tenant = mk(backends[bi], 10, 0, "acme2",
						   "k1");
		struct seal_gcm *other_kid = mk(backends[bi], 11, 0, "acme",
						"k2");
		uint8_t s[64], back[32];
		int n = seal_gcm_seal(g, "ab", 2, "c", 1,
				      (uint8_t *)"secret", 6, s, sizeof(s));
		assert_int_equal(n, 34);
		assert_int_equal(seal_gcm_open(g, "ab", 2, "c", 1, s, 34, back,
					       32),
				 6);
		assert_memory_equal(back, "secret", 6);
		/* length-prefixed: "ab"+"c" is not "a"+"bc" */
		assert_int_equal(seal_gcm_open(g, "a", 1, "bc", 1, s, 34, back,
					       32),
				 -EBADMSG);
		assert_int_equal(seal_gcm_open(g, "abc", 3, "", 0, s, 34, back,
					       32),
				 -EBADMSG);
		assert_int_equal(seal_gcm_open(g, "ab", 2, "d", 1, s, 34, back,
					       32),
				 -EBADMSG);
		assert_int_equal(seal_gcm_open(g, "ac", 2, "c", 1, s, 34, back,
					       32),
				 -EBADMSG);
		/* same DEK, other tenant or key id: refused */
		assert_int_equal(seal_gcm_open(other_tenant, "ab", 2, "c", 1, s,
					       34, back, 32),
				 -EBADMSG);
		assert_int_equal(seal_gcm_open(other_kid, "ab", 2, "c", 1, s,
					       34, back, 32),
				 -EBADMSG);
		/* the failed open left no plaintext behind */
		for (int i = 0; i < 6; i++)
			assert_int_equal(back[i], 0);
		/* every single-bit flip of nonce, ciphertext or tag fails */
		for (int i = 0; i < 34 * 8; i++) {
			s[i / 8] ^= (uint8_t)(1u << (i % 8));
			assert_int_equal(seal_gcm_open(g, "ab", 2, "c", 1, s, 34,
						       back, 32),
					 -EBADMSG);
			s[i / 8] ^= (uint8_t)(1u << (i % 8));
		}
		assert_int_equal(seal_gcm_open(g, "ab", 2, "c", 1, s, 33, back,
					       32),
				 -EBADMSG);
		seal_gcm_free(g);
		seal_gcm_free(other_tenant);
		seal_gcm_free(other_kid);
	}
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_errors(void **state)
{
	(void)state;
	struct seal_gcm *g = NULL;
	struct seal_gcm_cfg cfg = {.fixed = 1};
	assert_int_equal(seal_gcm_new(test_dek, "t", "bad.id", &cfg, &g),
			 -EINVAL);
	assert_null(g);
	assert_int_equal(seal_gcm_new(test_dek, "t", "", &cfg, &g), -EINVAL);
	assert_int_equal(seal_gcm_new(NULL, "t", "k", &cfg, &g), -EINVAL);
	char longt[300];
	memset(longt, 'x', sizeof(longt));
	longt[299] = '\0';
	assert_int_equal(seal_gcm_new(test_dek, longt, "k", &cfg, &g), -EINVAL);
	cfg.backend = (enum seal_backend)7;
	assert_int_equal(seal_gcm_new(test_dek, "t", "k", &cfg, &g), -EINVAL);
#ifndef SEALTAP_HAVE_IPSEC_MB
	cfg.backend = SEAL_BACKEND_IPSEC_MB;
	assert_int_equal(seal_gcm_new(test_dek, "t", "k", &cfg, &g), -ENOTSUP);
#endif
	for (int bi = 0; bi < n_backends; bi++) {
		/* each backend reuses the fixed fields below */
		forget_fixed();
		g = mk(backends[bi], 1, 0, "t", "k");
		static uint8_t big[SEAL_VALUE_MAX + 1];
		static uint8_t out[SEAL_VALUE_MAX + 64];
		assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1, big,
					       sizeof(big), out, sizeof(out)),
				 -EMSGSIZE);
		assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1, big, 10, out,
					       37),
				 -ENOBUFS);
		assert_int_equal(seal_gcm_seal(g, longt, 256, "r", 1, big, 10,
					       out, 64),
				 -EINVAL);
		assert_int_equal(seal_gcm_seal(g, "f", 1, longt, 256, big, 10,
					       out, 64),
				 -EINVAL);
		assert_int_equal(seal_gcm_seal(g, NULL, 1, "r", 1, big, 10, out,
					       64),
				 -EINVAL);
		assert_int_equal(seal_gcm_seal(g, "f", 1, "r", 1, NULL, 10, out,
					       64),
				 -EINVAL);
		/* refusals consume no nonce */
		assert_int_equal(seal_gcm_used(g), 0);
		/* 255-byte parts are fine; NULL with length 0 too */
		assert_int_equal(seal_gcm_seal(g, longt, 255, longt, 255, NULL,
					       0, out, 64),
				 28);
		assert_int_equal(seal_gcm_seal(g, NULL, 0, NULL, 0, big, 1, out,
					       64),
				 29);
		assert_int_equal(seal_gcm_open(g, NULL, 0, NULL, 0, out, 29, big,
					       0),
				 -ENOBUFS);
		assert_int_equal(seal_gcm_open(g, NULL, 0, NULL, 0, out, 27, big,
					       10),
				 -ENODATA);
		assert_int_equal(seal_gcm_open(g, NULL, 0, NULL, 0, out,
					       SEAL_VALUE_MAX + 29, big, 10),
				 -EMSGSIZE);
		seal_gcm_free(g);
	}
	seal_gcm_free(NULL);
}

/* ---- bursts ------------------------------------------------------------------------------ */

static void test_burst(void **state)
{
	(void)state;
	for (int bi = 0; bi < n_backends; bi++) {
		/* each backend reuses the fixed fields below */
		forget_fixed();
		/* Two contexts with the same lease: the burst of one must equal
		 * value-by-value sealing on the other. */
		struct seal_gcm *a = mk(backends[bi], 42, 0, "t", "k");
		forget_fixed(); /* the same lease twice, on purpose */
		struct seal_gcm *b = mk(backends[bi], 42, 0, "t", "k");
		enum { N = 64 };
		static uint8_t in[N][300], oa[N][400], ob[N][400];
		char fields[N][16];
		struct seal_item items[N];
		for (int i = 0; i < N; i++) {
			size_t n = rnd() % 300;
			rnd_fill(in[i], n);
			snprintf(fields[i], sizeof(fields[i]), "f%d", i);
			items[i] = (struct seal_item){
				.field = fields[i],
				.field_len = (uint32_t)strlen(fields[i]),
				.record = "rec",
				.record_len = 3,
				.in = in[i],
				.len = (uint32_t)n,
				.out = oa[i],
				.cap = sizeof(oa[i]),
			};
		}
		/* one bad item in the middle is refused, the rest go on */
		items[10].cap = 5;
		assert_int_equal(seal_gcm_seal_burst(a, items, N), N - 1);
		assert_int_equal(items[10].res, -ENOBUFS);
		for (int i = 0; i < N; i++) {
			if (i == 10)
				continue;
			int r = seal_gcm_seal(b, items[i].field,
					      items[i].field_len, "rec", 3,
					      in[i], items[i].len, ob[i],
					      sizeof(ob[i]));
			assert_int_equal(items[i].res, r);
			assert_memory_equal(oa[i], ob[i], (size_t)r);
		}
		seal_gcm_free(a);
		seal_gcm_free(b);

		/* budget runs out mid-burst */
		a = mk(backends[bi], 43, 5, "t", "k");
		items[10].cap = sizeof(oa[10]);
		assert_int_equal(seal_gcm_seal_burst(a, items, 8), 5);
		for (int i = 0; i < 8; i++)
			assert_int_equal(items[i].res,
					 i < 5 ? (int)items[i].len + 28
					       : -EKEYEXPIRED);
		assert_int_equal(seal_gcm_seal_burst(a, items, 0), 0);
		seal_gcm_free(a);
	}
}

/* A fixed field is good for one sealing context per (tenant, key id) for
 * the life of the process, also after that context is freed. */
static void test_fixed_field_guard(void **state)
{
	(void)state;
	struct seal_gcm_cfg cfg = {.fixed = 0x00000305u};
	struct seal_gcm *a, *b;
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", &cfg, &a), 0);
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", &cfg, &b),
			 -EEXIST);
	assert_null(b);
	seal_gcm_free(a);
	/* the DEK "evicted and loaded again" with the old lease */
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", &cfg, &b),
			 -EEXIST);
	/* another worker, tenant or key id: fine */
	cfg.fixed = 0x00000306u;
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", &cfg, &a), 0);
	seal_gcm_free(a);
	cfg.fixed = 0x00000305u;
	assert_int_equal(seal_gcm_new(test_dek, "acme2", "k1", &cfg, &a), 0);
	seal_gcm_free(a);
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k2", &cfg, &a), 0);
	seal_gcm_free(a);
	/* open-only contexts take no lease */
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", NULL, &a), 0);
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", NULL, &b), 0);
	seal_gcm_free(a);
	seal_gcm_free(b);
	/* a refused creation does not use up the lease */
	cfg.fixed = 0x00000407u;
	cfg.backend = (enum seal_backend)7;
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", &cfg, &a),
			 -EINVAL);
	assert_int_equal(seal_gcm_new(test_dek, "acme", "bad id", &cfg, &a),
			 -EINVAL);
	cfg.backend = SEAL_BACKEND_OPENSSL;
	assert_int_equal(seal_gcm_new(test_dek, "acme", "k1", &cfg, &a), 0);
	seal_gcm_free(a);
	cfg.backend = SEAL_BACKEND_AUTO;
	/* the set grows past its first size */
	for (uint32_t i = 0; i < 5000; i++) {
		cfg.fixed = 0x10000000u + i;
		assert_int_equal(seal_gcm_new(test_dek, "grow", "k", &cfg, &a),
				 0);
		seal_gcm_free(a);
	}
	for (uint32_t i = 0; i < 5000; i += 97) {
		cfg.fixed = 0x10000000u + i;
		assert_int_equal(seal_gcm_new(test_dek, "grow", "k", &cfg, &a),
				 -EEXIST);
	}
	assert_int_equal(fixed_n, 5000 + 5);
}

static void test_key_derive(void **state)
{
	(void)state;
	uint8_t a[32], b[32], c[64], r[32];
	assert_int_equal(seal_key_derive(test_dek, SEAL_KDF_LABEL_GCM, a, 32),
			 0);
	assert_int_equal(seal_key_derive(test_dek, SEAL_KDF_LABEL_HASH, b, 32),
			 0);
	assert_int_equal(seal_key_derive(test_dek, SEAL_KDF_LABEL_SIV, c, 64),
			 0);
	ref_derive(SEAL_KDF_LABEL_GCM, r, 32);
	assert_memory_equal(a, r, 32);
	assert_memory_not_equal(a, b, 32);
	assert_memory_not_equal(a, c, 32);
	assert_memory_not_equal(a, c + 32, 32);
	assert_memory_not_equal(b, c, 32);
	assert_int_equal(seal_key_derive(NULL, "x", a, 32), -EINVAL);
	assert_int_equal(seal_key_derive(test_dek, "x", a, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_nist_vectors, reset_guard),
		cmocka_unit_test_setup(test_key_derive, reset_guard),
		cmocka_unit_test_setup(test_matches_reference, reset_guard),
		cmocka_unit_test_setup(test_round_trip_sizes, reset_guard),
		cmocka_unit_test_setup(test_backends_identical, reset_guard),
		cmocka_unit_test_setup(test_nonce_layout_and_uniqueness,
				       reset_guard),
		cmocka_unit_test_setup(test_counter_exhaustion, reset_guard),
		cmocka_unit_test_setup(test_aad_binding, reset_guard),
		cmocka_unit_test_setup(test_errors, reset_guard),
		cmocka_unit_test_setup(test_burst, reset_guard),
		cmocka_unit_test_setup(test_fixed_field_guard, reset_guard),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
