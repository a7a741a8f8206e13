/* The deterministic actions: tokenize (AES-256-SIV, RFC 5297) and hash
 * (HMAC-SHA-256). They share a file because they share their shape: a key
 * derived from the DEK under their own label, the canonical AAD without a
 * record id (equal values in one tenant, key and field must give equal
 * output across records), and no nonce state at all.
 *
 * OpenSSL 3.0's AES-SIV allows one operation per key setup (its S2V state
 * is not reset between messages), and re-keying fetches ciphers and builds
 * a CMAC context (~2.5 us). So each context keys one EVP context per
 * direction once and copies it per value (EVP_CIPHER_CTX_copy, ~1 us for a
 * small value including the SIV itself). The allocations that copy makes
 * are OpenSSL's (about 19 blocks per value); sealtap adds none. They land
 * in secret memory (mem_secret.h: OpenSSL is routed there), served from
 * per-thread free lists and wiped when freed, so no copy's key schedules
 * reach a core dump either. Tokenize is the slow action (about 1 M
 * values/s per core against ~20 M for GCM); see bench/bench_seal.c.
 *
 * OpenSSL 3.0 also cannot SIV-encrypt an empty plaintext (its final step
 * needs one data call with bytes in it). Empty values are common (empty
 * header values), so for them S2V is computed here with OpenSSL's CMAC
 * (RFC 5297 §2.4: T = dbl(D) xor pad(""), V = CMAC(K1, T)); the ciphertext
 * is empty, so no CTR step is needed. Tests check this path against
 * OpenSSL's own SIV for every non-empty length they try. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "sealtap/common.h"
#include "sealtap/mem_secret.h"
#include "sealtap/seal.h"

#define SIV_BLOCK 16

struct seal_siv {
	EVP_CIPHER_CTX *tmpl_enc; /* keyed once, never used directly */
	EVP_CIPHER_CTX *tmpl_dec;
	EVP_CIPHER_CTX *work;     /* a fresh copy of a template per value */
	EVP_MAC_CTX *cmac;        /* CMAC under K1, for empty values */
	size_t half;              /* AES key length: 16 (KAT) or 32 */
	uint8_t k1[32];           /* S2V key, for empty values */
	size_t aad_prefix_len;
	char key_id[SEAL_KEY_ID_MAX + 1];
	uint8_t aad[SEAL_AAD_MAX];
};

/* One associated-data string of S2V's vector (RFC 5297 §2.4). */
struct siv_ad {
	const uint8_t *p;
	size_t len;
};

static void siv_free_ctx(struct seal_siv *s)
{
	EVP_CIPHER_CTX_free(s->tmpl_enc);
	EVP_CIPHER_CTX_free(s->tmpl_dec);
	EVP_CIPHER_CTX_free(s->work);
	EVP_MAC_CTX_free(s->cmac);
	mem_secret_free(s); /* wipes k1 with the rest */
}

/* Creates a SIV context from the raw SIV key (|key_len| 32: AES-128-SIV, for
 * the RFC 5297 vectors; 64: AES-256-SIV, production). */
static int siv_new_with_key(const uint8_t *key, size_t key_len,
			    const char *tenant, const char *key_id,
			    struct seal_siv **out)
{
	*out = NULL;
	if (!tenant || !key_id || (key_len != 32 && key_len != 64))
		return -EINVAL;
	size_t kid_len = strlen(key_id);
	if (!seal_key_id_valid(key_id, kid_len))
		return -EINVAL;
	struct seal_siv *s = mem_secret_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->key_id, key_id, kid_len + 1);
	int n = seal_aad_build(SEAL_KIND_SIV, tenant, strlen(tenant), key_id,
			       kid_len, NULL, 0, NULL, 0, s->aad,
			       sizeof(s->aad));
	if (n < 0) {
		siv_free_ctx(s);
		return n;
	}
	s->aad_prefix_len = (size_t)n - 1; /* minus the empty field's length */
	s->half = key_len / 2;
	memcpy(s->k1, key, s->half);

	int rc = -EIO;
	EVP_CIPHER *c = EVP_CIPHER_fetch(
		NULL, key_len == 32 ? "AES-128-SIV" : "AES-256-SIV", NULL);
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	s->tmpl_enc = EVP_CIPHER_CTX_new();
	s->tmpl_dec = EVP_CIPHER_CTX_new();
	s->work = EVP_CIPHER_CTX_new();
	s->cmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	if (!s->tmpl_enc || !s->tmpl_dec || !s->work || !s->cmac) {
		rc = (!c || !mac) ? -EIO : -ENOMEM;
		goto out;
	}
	if (!c)
		goto out;
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_utf8_string(
			OSSL_MAC_PARAM_CIPHER,
			(char *)(key_len == 32 ? "AES-128-CBC" : "AES-256-CBC"),
			0),
		OSSL_PARAM_construct_end(),
	};
	if (!EVP_EncryptInit_ex2(s->tmpl_enc, c, key, NULL, NULL) ||
	    !EVP_DecryptInit_ex2(s->tmpl_dec, c, key, NULL, NULL) ||
	    !EVP_MAC_init(s->cmac, s->k1, s->half, p))
		goto out;
	rc = 0;
out:
	EVP_CIPHER_free(c);
	EVP_MAC_free(mac);
	if (rc < 0) {
		siv_free_ctx(s);
		return rc;
	}
	*out = s;
	return 0;
}

int seal_siv_new(const uint8_t *dek, const char *tenant, const char *key_id,
		 struct seal_siv **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dek)
		return -EINVAL;
	uint8_t key[SEAL_SIV_KEY_LEN];
	int rc = seal_key_derive(dek, SEAL_KDF_LABEL_SIV, key, sizeof(key));
	if (rc == 0)
		rc = siv_new_with_key(key, sizeof(key), tenant, key_id, out);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

void seal_siv_free(struct seal_siv *s)
{
	if (s)
		siv_free_ctx(s);
}

const char *seal_siv_key_id(const struct seal_siv *s)
{
	return s->key_id;
}

/* ---- S2V for the empty plaintext ---------------------------------------------- */

/* RFC 5297 §2.3: multiplication by x in GF(2^128), big-endian. */
static void siv_dbl(uint8_t b[SIV_BLOCK])
{
	uint8_t carry = b[0] >> 7;
	for (int i = 0; i < SIV_BLOCK - 1; i++)
		b[i] = (uint8_t)((b[i] << 1) | (b[i + 1] >> 7));
	b[SIV_BLOCK - 1] = (uint8_t)((b[SIV_BLOCK - 1] << 1) ^ (carry * 0x87));
}

static int siv_cmac(struct seal_siv *s, const uint8_t *p, size_t len,
		    uint8_t out[SIV_BLOCK])
{
	size_t outl = 0;
	/* Key NULL: restart with the key set in siv_new_with_key. */
	if (!EVP_MAC_init(s->cmac, NULL, 0, NULL) ||
	    (len && !EVP_MAC_update(s->cmac, p, len)) ||
	    !EVP_MAC_final(s->cmac, out, &outl, SIV_BLOCK) ||
	    outl != SIV_BLOCK)
		return -EIO;
	return 0;
}

/* RFC 5297 §2.4 S2V(K1, AD_1..AD_n, P) where |plen| < 16 (here: P = "",
 * the one case OpenSSL 3.0 cannot do). Written for any short P so the tests
 * can compare it with OpenSSL on 1..15-byte values. */
static int siv_s2v_short(struct seal_siv *s, const struct siv_ad *ad,
			 size_t n_ad, const uint8_t *pt, size_t plen,
			 uint8_t v[SIV_BLOCK])
{
	static const uint8_t zero[SIV_BLOCK];
	uint8_t d[SIV_BLOCK], t[SIV_BLOCK];
	if (plen >= SIV_BLOCK)
		return -EINVAL;
	int rc = siv_cmac(s, zero, SIV_BLOCK, d);
	for (size_t i = 0; rc == 0 && i < n_ad; i++) {
		rc = siv_cmac(s, ad[i].p, ad[i].len, t);
		siv_dbl(d);
		for (int j = 0; j < SIV_BLOCK; j++)
			d[j] ^= t[j];
	}
	if (rc == 0) {
		siv_dbl(d);
		memset(t, 0, sizeof(t));
		if (plen)
			memcpy(t, pt, plen);
		t[plen] = 0x80; /* pad(P) = P || 10* */
		for (int j = 0; j < SIV_BLOCK; j++)
			t[j] ^= d[j];
		rc = siv_cmac(s, t, SIV_BLOCK, v);
	}
	OPENSSL_cleanse(d, sizeof(d));
	OPENSSL_cleanse(t, sizeof(t));
	return rc;
}

/* ---- raw SIV ---------------------------------------------------------------- */

/* SIV-encrypts |pt| under the vector |ad|: |tag| gets V (16 bytes), |ct|
 * |len| bytes. Each AD string must be non-empty (OpenSSL skips empty AAD
 * updates instead of feeding them to S2V); sealtap's AAD never is. */
static int siv_seal_raw(struct seal_siv *s, const struct siv_ad *ad,
			size_t n_ad, const uint8_t *pt, size_t len,
			uint8_t *tag, uint8_t *ct)
{
	if (len == 0)
		return siv_s2v_short(s, ad, n_ad, NULL, 0, tag);
	EVP_CIPHER_CTX *w = s->work;
	int outl = 0;
	if (!EVP_CIPHER_CTX_copy(w, s->tmpl_enc))
		return -EIO;
	for (size_t i = 0; i < n_ad; i++)
		if (!EVP_EncryptUpdate(w, NULL, &outl, ad[i].p, (int)ad[i].len))
			return -EIO;
	if (!EVP_EncryptUpdate(w, ct, &outl, pt, (int)len) ||
	    !EVP_EncryptFinal_ex(w, ct + len, &outl))
		return -EIO;
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
						  tag, SIV_BLOCK),
		OSSL_PARAM_construct_end(),
	};
	return EVP_CIPHER_CTX_get_params(w, p) ? 0 : -EIO;
}

/* Verifies and decrypts; |out| may equal |ct|. -EBADMSG with |out| wiped
 * if V does not match. */
static int siv_open_raw(struct seal_siv *s, const struct siv_ad *ad,
			size_t n_ad, const uint8_t *tag, const uint8_t *ct,
			size_t len, uint8_t *out)
{
	if (len == 0) {
		uint8_t v[SIV_BLOCK];
		int rc = siv_s2v_short(s, ad, n_ad, NULL, 0, v);
		if (rc == 0 && CRYPTO_memcmp(v, tag, SIV_BLOCK) != 0)
			rc = -EBADMSG;
		return rc;
	}
	EVP_CIPHER_CTX *w = s->work;
	int outl = 0;
	if (!EVP_CIPHER_CTX_copy(w, s->tmpl_dec) ||
	    !EVP_CIPHER_CTX_ctrl(w, EVP_CTRL_AEAD_SET_TAG, SIV_BLOCK,
				 (void *)tag))
		return -EIO;
	for (size_t i = 0; i < n_ad; i++)
		if (!EVP_DecryptUpdate(w, NULL, &outl, ad[i].p, (int)ad[i].len))
			return -EIO;
	/* OpenSSL's SIV checks V inside the data call and wipes |out| itself
	 * on a mismatch; wipe again so that holds whatever the version. */
	if (!EVP_DecryptUpdate(w, out, &outl, ct, (int)len) ||
	    EVP_DecryptFinal_ex(w, out + len, &outl) <= 0) {
		OPENSSL_cleanse(out, len);
		return -EBADMSG;
	}
	return 0;
}

/* ---- tokenize ----------------------------------------------------------------- */

static int siv_aad(struct seal_siv *s, const void *field, size_t field_len,
		   struct siv_ad *ad)
{
	if (field_len > SEAL_AAD_PART_MAX || (!field && field_len))
		return -EINVAL;
	uint8_t *p = s->aad + s->aad_prefix_len;
	*p++ = (uint8_t)field_len;
	if (field_len)
		memcpy(p, field, field_len);
	ad->p = s->aad;
	ad->len = s->aad_prefix_len + 1 + field_len;
	return 0;
}

int seal_siv_seal(struct seal_siv *s, const void *field, size_t field_len,
		  const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	if (!in && len)
		return -EINVAL;
	struct siv_ad ad;
	int rc = siv_aad(s, field, field_len, &ad);
	if (rc < 0)
		return rc;
	if (!out || cap < len + SEAL_SIV_TAG_LEN)
		return -ENOBUFS;
	rc = siv_seal_raw(s, &ad, 1, in, len, out, out + SEAL_SIV_TAG_LEN);
	return rc < 0 ? rc : (int)(len + SEAL_SIV_TAG_LEN);
}

int seal_siv_open_detached(struct seal_siv *s, const void *field,
			   size_t field_len, const uint8_t *tag,
			   const uint8_t *ct, size_t len, uint8_t *out,
			   size_t cap)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	if (!tag || (!ct && len))
		return -EINVAL;
	struct siv_ad ad;
	int rc = siv_aad(s, field, field_len, &ad);
	if (rc < 0)
		return rc;
	if ((!out && len) || cap < len)
		return -ENOBUFS;
	rc = siv_open_raw(s, &ad, 1, tag, ct, len, out);
	return rc < 0 ? rc : (int)len;
}

int seal_siv_open(struct seal_siv *s, const void *field, size_t field_len,
		  const uint8_t *sealed, size_t sealed_len, uint8_t *out,
		  size_t cap)
{
	if (!sealed)
		return -EINVAL;
	if (sealed_len < SEAL_SIV_TAG_LEN)
		return -ENODATA;
	uint8_t tag[SEAL_SIV_TAG_LEN];
	memcpy(tag, sealed, sizeof(tag)); /* before an in-place open */
	return seal_siv_open_detached(s, field, field_len, tag,
				      sealed + SEAL_SIV_TAG_LEN,
				      sealed_len - SEAL_SIV_TAG_LEN, out, cap);
}

/* ---- hash ----------------------------------------------------------------------- */

struct seal_hash {
	EVP_MAC_CTX *mac; /* HMAC-SHA-256, keyed once; restarted per value */
	size_t aad_prefix_len;
	char key_id[SEAL_KEY_ID_MAX + 1];
	uint8_t aad[SEAL_AAD_MAX];
};

void seal_hash_free(struct seal_hash *h)
{
	if (!h)
		return;
	EVP_MAC_CTX_free(h->mac); /* cleanses OpenSSL's copy of the key */
	mem_secret_free(h);
}

int seal_hash_new(const uint8_t *dek, const char *tenant, const char *key_id,
		  struct seal_hash **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dek || !tenant || !key_id)
		return -EINVAL;
	size_t kid_len = strlen(key_id);
	if (!seal_key_id_valid(key_id, kid_len))
		return -EINVAL;
	struct seal_hash *h = mem_secret_calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	memcpy(h->key_id, key_id, kid_len + 1);
	int n = seal_aad_build(SEAL_KIND_HASH, tenant, strlen(tenant), key_id,
			       kid_len, NULL, 0, NULL, 0, h->aad,
			       sizeof(h->aad));
	if (n < 0) {
		seal_hash_free(h);
		return n;
	}
	h->aad_prefix_len = (size_t)n - 1;

	uint8_t key[SEAL_HASH_KEY_LEN];
	int rc = seal_key_derive(dek, SEAL_KDF_LABEL_HASH, key, sizeof(key));
	if (rc == 0) {
		EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		h->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
		EVP_MAC_free(mac);
		OSSL_PARAM p[] = {
			OSSL_PARAM_construct_utf8_string(
				OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
			OSSL_PARAM_construct_end(),
		};
		if (!h->mac)
			rc = -EIO;
		else if (!EVP_MAC_init(h->mac, key, sizeof(key), p))
			rc = -EIO;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (rc < 0) {
		seal_hash_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

const char *seal_hash_key_id(const struct seal_hash *h)
{
	return h->key_id;
}

int seal_hash_compute(struct seal_hash *h, const void *field, size_t field_len,
		      const uint8_t *in, size_t len, uint8_t *out)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	if ((!in && len) || !out || field_len > SEAL_AAD_PART_MAX ||
	    (!field && field_len))
		return -EINVAL;
	uint8_t *p = h->aad + h->aad_prefix_len;
	*p++ = (uint8_t)field_len;
	if (field_len)
		memcpy(p, field, field_len);
	size_t aad_len = h->aad_prefix_len + 1 + field_len;
	size_t outl = 0;
	/* Key NULL: restart HMAC with the key set at creation (no re-keying,
	 * no allocation). */
	if (!EVP_MAC_init(h->mac, NULL, 0, NULL) ||
	    !EVP_MAC_update(h->mac, h->aad, aad_len) ||
	    (len && !EVP_MAC_update(h->mac, in, len)) ||
	    !EVP_MAC_final(h->mac, out, &outl, SEAL_HASH_LEN) ||
	    outl != SEAL_HASH_LEN)
		return -EIO;
	return SEAL_HASH_LEN;
}
