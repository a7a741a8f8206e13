/* AES-256-GCM sealing: one context per (worker, DEK), two interchangeable
 * implementations behind it (intel-ipsec-mb's direct GCM API, OpenSSL EVP),
 * deterministic nonces, canonical AAD. See seal.h for the contract and
 * docs/tokens.md for the nonce construction and its limits.
 *
 * Hot path budget: a 64-byte value costs ~35 ns in ipsec-mb's
 * aes_gcm_enc_256 on a VAES core, so everything sealtap adds per value must
 * stay a few nanoseconds: no allocation, no key setup (the key schedule and
 * GHASH table are built once in seal_gcm_new), the AAD prefix (version,
 * kind, tenant, key id) is written once and only field and record are
 * appended per value, the nonce is two stores, and the output goes straight
 * into the caller's buffer. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#ifdef SEALTAP_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

#include "sealtap/common.h"
#include "sealtap/mem_secret.h"
#include "sealtap/seal.h"

/* ---- key derivation ------------------------------------------------------- */

int seal_key_derive(const uint8_t *dek, const char *label, uint8_t *out,
		    size_t out_len)
{
	if (!dek || !label || !out || out_len == 0 || out_len > 255 * 32)
		return -EINVAL;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -EIO;
	EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!kctx)
		return -ENOMEM;
	/* RFC 5869 extract-then-expand; the salt is a fixed public string
	 * (the DEK is already uniformly random, so the salt only separates
	 * sealtap's derivations from any other use of the same DEK). */
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						 (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						  (void *)dek, SEAL_DEK_LEN),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						  (void *)SEAL_KDF_SALT,
						  sizeof(SEAL_KDF_SALT) - 1),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						  (void *)label, strlen(label)),
		OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(kctx, out, out_len, params);
	EVP_KDF_CTX_free(kctx);
	return ok > 0 ? 0 : -EIO;
}

/* ---- backends --------------------------------------------------------------- */

#ifdef SEALTAP_HAVE_IPSEC_MB
/* One manager for the process, used only for its function table: the direct
 * GCM functions keep all state in gcm_key_data / gcm_context_data, which
 * each context owns, so sharing the (read-only after init) table between
 * worker threads is safe. */
static IMB_MGR *imb_mgr;
static pthread_once_t imb_once = PTHREAD_ONCE_INIT;

static void imb_setup(void)
{
	IMB_MGR *m = alloc_mb_mgr(0);
	if (!m)
		return;
	IMB_ARCH arch = IMB_ARCH_NONE;
	init_mb_mgr_auto(m, &arch);
	/* The no-AES-NI code path is slower than OpenSSL's; only a real
	 * AES-NI (SSE and up) implementation counts as available. */
	if (arch < IMB_ARCH_SSE || imb_get_errno(m) != 0) {
		free_mb_mgr(m);
		return;
	}
	imb_mgr = m;
}

static IMB_MGR *imb_get(void)
{
	pthread_once(&imb_once, imb_setup);
	return imb_mgr;
}
#endif

int seal_backend_available(enum seal_backend b)
{
	switch (b) {
	case SEAL_BACKEND_AUTO:
	case SEAL_BACKEND_OPENSSL:
		return 1;
	case SEAL_BACKEND_IPSEC_MB:
#ifdef SEALTAP_HAVE_IPSEC_MB
		return imb_get() != NULL;
#else
		return 0;
#endif
	}
	return 0;
}

const char *seal_backend_name(enum seal_backend b)
{
	switch (b) {
	case SEAL_BACKEND_AUTO:
		return "auto";
	case SEAL_BACKEND_OPENSSL:
		return "openssl";
	case SEAL_BACKEND_IPSEC_MB:
		return "ipsec-mb";
	}
	return "unknown";
}

/* ---- fixed-field guard ------------------------------------------------------------ */

/* Leases are the key cache's job (docs/tokens.md), but the failure they
 * prevent is silent and total: a context created twice with one fixed field
 * for one DEK restarts its counter at 0 and reuses every nonce. The classic
 * way in is a DEK evicted from the cache and loaded again in the same
 * process with the same lease. So every (tenant, key id, fixed field) that
 * ever got a sealing context in this process is remembered, and a second
 * one is refused (-EEXIST) even after the first was freed.
 *
 * Entries are the first 64 bits of SHA-256(tenant, key id, fixed): 8 bytes
 * per sealing context created, in an open-addressing set that doubles at
 * half load. A false "already used" needs a 64-bit collision (~n^2/2^65)
 * and only costs a new lease. Context creation is a control-path operation,
 * so a mutex is fine here. */
static pthread_mutex_t fixed_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *fixed_set; /* 0 = empty slot */
static size_t fixed_n, fixed_cap;

static uint64_t fixed_key(const char *tenant, const char *key_id,
			  uint32_t fixed)
{
	uint8_t md[32], f[4] = {(uint8_t)(fixed >> 24), (uint8_t)(fixed >> 16),
				(uint8_t)(fixed >> 8), (uint8_t)fixed};
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int mdl = 0;
	uint64_t k = 0;
	/* Length-prefix-free but unambiguous: tenant and key id are C
	 * strings, so their NULs separate them. */
	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(c, tenant, strlen(tenant) + 1) &&
	    EVP_DigestUpdate(c, key_id, strlen(key_id) + 1) &&
	    EVP_DigestUpdate(c, f, sizeof(f)) &&
	    EVP_DigestFinal_ex(c, md, &mdl))
		memcpy(&k, md, sizeof(k));
	EVP_MD_CTX_free(c);
	return k; /* 0: digest failed (a real digest starts with 64 zero
		   * bits with probability 2^-64; it is refused as well) */
}

/* Inserts |k|; 0, -EEXIST if present, -ENOMEM. Caller holds fixed_mu. */
static int fixed_insert(uint64_t k)
{
	if (2 * (fixed_n + 1) > fixed_cap) {
		size_t ncap = fixed_cap ? 2 * fixed_cap : 256;
		uint64_t *ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < fixed_cap; i++) {
			if (!fixed_set[i])
				continue;
			size_t j = fixed_set[i] & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = fixed_set[i];
		}
		free(fixed_set);
		fixed_set = ns;
		fixed_cap = ncap;
	}
	size_t j = k & (fixed_cap - 1);
	while (fixed_set[j]) {
		if (fixed_set[j] == k)
			return -EEXIST;
		j = (j + 1) & (fixed_cap - 1);
	}
	fixed_set[j] = k;
	fixed_n++;
	return 0;
}

static int fixed_claim(const char *tenant, const char *key_id, uint32_t fixed)
{
	uint64_t k = fixed_key(tenant, key_id, fixed);
	if (k == 0)
		return -EIO;
	pthread_mutex_lock(&fixed_mu);
	int rc = fixed_insert(k);
	pthread_mutex_unlock(&fixed_mu);
	return rc;
}

/* ---- the context -------------------------------------------------------------- */

struct seal_gcm {
#ifdef SEALTAP_HAVE_IPSEC_MB
	/* First: ipsec-mb wants the expanded keys 64-byte aligned. */
	struct gcm_key_data kd;
	struct gcm_context_data cd;
	IMB_MGR *mgr;
#endif
	enum seal_backend backend;
	uint64_t next;           /* next counter value = nonces used */
	uint64_t max;            /* budget: counter values 0 .. max-1 */
	uint8_t fixed[4];        /* nonce fixed field, big-endian */
	EVP_CIPHER_CTX *enc;     /* OpenSSL: keyed once for encryption */
	EVP_CIPHER_CTX *dec;     /* OpenSSL: keyed once for decryption */
	size_t aad_prefix_len;
	char key_id[SEAL_KEY_ID_MAX + 1];
	/* Canonical AAD; the prefix stays, field and record are rewritten
	 * after it for every value. */
	uint8_t aad[SEAL_AAD_MAX];
};

/* Keys the chosen backend with the raw AES-256 |key|, once: ipsec-mb
 * expands the key schedule and the GHASH powers into |g|; OpenSSL gets one
 * EVP context per direction, keyed here and afterwards only given IVs. */
static int gcm_key_setup(struct seal_gcm *g, const uint8_t *key,
			 enum seal_backend b)
{
	g->backend = b;
	if (b == SEAL_BACKEND_IPSEC_MB) {
#ifdef SEALTAP_HAVE_IPSEC_MB
		g->mgr = imb_get();
		if (!g->mgr)
			return -ENOTSUP;
		IMB_AES256_GCM_PRE(g->mgr, key, &g->kd);
		return 0;
#else
		return -ENOTSUP;
#endif
	}
	g->enc = EVP_CIPHER_CTX_new();
	g->dec = EVP_CIPHER_CTX_new();
	if (!g->enc || !g->dec)
		return -ENOMEM;
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (!c)
		return -EIO;
	int ok = EVP_EncryptInit_ex2(g->enc, c, key, NULL, NULL) &&
		 EVP_DecryptInit_ex2(g->dec, c, key, NULL, NULL);
	EVP_CIPHER_free(c);
	return ok ? 0 : -EIO;
}

/* Creates a context keyed with the raw AES key |key| (no derivation): the
 * body of seal_gcm_new(), and what the known-answer tests drive. */
static int gcm_new_with_key(const uint8_t *key, const char *tenant,
			    const char *key_id, const struct seal_gcm_cfg *cfg,
			    struct seal_gcm **out)
{
	*out = NULL;
	if (!tenant || !key_id)
		return -EINVAL;
	size_t kid_len = strlen(key_id);
	if (!seal_key_id_valid(key_id, kid_len))
		return -EINVAL;
	/* Every check that can refuse comes before the fixed field is
	 * claimed, so a refused creation does not use up a lease. */
	enum seal_backend b = cfg ? cfg->backend : SEAL_BACKEND_AUTO;
	if (b == SEAL_BACKEND_AUTO)
		b = seal_backend_available(SEAL_BACKEND_IPSEC_MB)
			    ? SEAL_BACKEND_IPSEC_MB
			    : SEAL_BACKEND_OPENSSL;
	else if (b != SEAL_BACKEND_OPENSSL && b != SEAL_BACKEND_IPSEC_MB)
		return -EINVAL;
	if (!seal_backend_available(b))
		return -ENOTSUP;
	/* Secret memory (mem_secret.h): |g| holds the expanded key (ipsec-mb
	 * key schedule and GHASH powers) and is never in a core dump. */
	struct seal_gcm *g = mem_secret_aligned_alloc(ST_CACHE_LINE,
						      sizeof(*g));
	if (!g)
		return -ENOMEM;
	memset(g, 0, sizeof(*g));
	memcpy(g->key_id, key_id, kid_len + 1);

	/* The prefix is the canonical 'g' AAD with empty field and record,
	 * minus those two length bytes. */
	int n = seal_aad_build(SEAL_KIND_GCM, tenant, strlen(tenant), key_id,
			       kid_len, NULL, 0, NULL, 0, g->aad,
			       sizeof(g->aad));
	if (n < 0) {
		seal_gcm_free(g);
		return n;
	}
	g->aad_prefix_len = (size_t)n - 2;

	if (cfg) {
		int c = fixed_claim(tenant, key_id, cfg->fixed);
		if (c < 0) {
			seal_gcm_free(g);
			return c;
		}
		g->max = cfg->max_seals ? cfg->max_seals
					: SEAL_GCM_CTX_MAX_DEFAULT;
		g->fixed[0] = (uint8_t)(cfg->fixed >> 24);
		g->fixed[1] = (uint8_t)(cfg->fixed >> 16);
		g->fixed[2] = (uint8_t)(cfg->fixed >> 8);
		g->fixed[3] = (uint8_t)cfg->fixed;
	}
	int rc = gcm_key_setup(g, key, b);
	if (rc < 0) {
		seal_gcm_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int seal_gcm_new(const uint8_t *dek, const char *tenant, const char *key_id,
		 const struct seal_gcm_cfg *cfg, struct seal_gcm **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dek)
		return -EINVAL;
	uint8_t key[SEAL_GCM_KEY_LEN];
	int rc = seal_key_derive(dek, SEAL_KDF_LABEL_GCM, key, sizeof(key));
	if (rc == 0)
		rc = gcm_new_with_key(key, tenant, key_id, cfg, out);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

void seal_gcm_free(struct seal_gcm *g)
{
	if (!g)
		return;
	/* EVP_CIPHER_CTX_free cleanses OpenSSL's copy of the key schedule
	 * (NULL with ipsec-mb), itself in secret memory like all of
	 * OpenSSL's; the ipsec-mb schedule and GHASH powers live in |g|,
	 * which mem_secret_free wipes. */
	EVP_CIPHER_CTX_free(g->enc);
	EVP_CIPHER_CTX_free(g->dec);
	mem_secret_free(g);
}

enum seal_backend seal_gcm_backend(const struct seal_gcm *g)
{
	return g->backend;
}

const char *seal_gcm_key_id(const struct seal_gcm *g)
{
	return g->key_id;
}

uint64_t seal_gcm_used(const struct seal_gcm *g)
{
	return __atomic_load_n(&g->next, __ATOMIC_RELAXED);
}

uint64_t seal_gcm_remaining(const struct seal_gcm *g)
{
	uint64_t used = seal_gcm_used(g);
	return used < g->max ? g->max - used : 0;
}

int seal_gcm_fixed_field(uint32_t instance, uint32_t worker, uint32_t *fixed)
{
	if (!fixed || instance > SEAL_GCM_INSTANCE_MAX ||
	    worker > SEAL_GCM_WORKER_MAX)
		return -ERANGE;
	*fixed = (instance << SEAL_GCM_WORKER_BITS) | worker;
	return 0;
}

/* ---- raw AES-256-GCM ------------------------------------------------------------ */

/* Encrypts with an explicit 96-bit |iv| and arbitrary |aad|: the primitive
 * under seal_gcm_seal (and the layer the NIST vectors test). |ct| receives
 * |len| bytes, |tag| 16. */
static int gcm_encrypt_raw(struct seal_gcm *g, const uint8_t *iv,
			   const uint8_t *aad, size_t aad_len,
			   const uint8_t *in, size_t len, uint8_t *ct,
			   uint8_t *tag)
{
	static const uint8_t empty[1];
	if (!in)
		in = empty; /* len is 0; both libraries want a pointer */
#ifdef SEALTAP_HAVE_IPSEC_MB
	if (g->backend == SEAL_BACKEND_IPSEC_MB) {
		IMB_AES256_GCM_ENC(g->mgr, &g->kd, &g->cd, ct, in, len, iv,
				   aad_len ? aad : empty, aad_len, tag,
				   SEAL_GCM_TAG_LEN);
		return 0;
	}
#endif
	/* OpenSSL: only the IV is set per value; the key schedule and GHASH
	 * key stay from EVP_EncryptInit_ex2 in gcm_key_setup. */
	EVP_CIPHER_CTX *c = g->enc;
	int outl = 0;
	if (!EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv))
		return -EIO;
	if (aad_len && !EVP_EncryptUpdate(c, NULL, &outl, aad, (int)aad_len))
		return -EIO;
	if (len && !EVP_EncryptUpdate(c, ct, &outl, in, (int)len))
		return -EIO;
	if (!EVP_EncryptFinal_ex(c, ct + len, &outl))
		return -EIO;
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
						  tag, SEAL_GCM_TAG_LEN),
		OSSL_PARAM_construct_end(),
	};
	if (!EVP_CIPHER_CTX_get_params(c, p))
		return -EIO;
	return 0;
}

/* Decrypts and verifies; |out| may equal |ct|. 0, or -EBADMSG with |out|
 * wiped (nothing unauthenticated is left for a caller to misuse). */
static int gcm_decrypt_raw(struct seal_gcm *g, const uint8_t *iv,
			   const uint8_t *aad, size_t aad_len,
			   const uint8_t *ct, size_t len, const uint8_t *tag,
			   uint8_t *out)
{
	static const uint8_t empty[1];
	uint8_t scratch[1];
	if (!ct)
		ct = empty;
	if (!out)
		out = scratch;
#ifdef SEALTAP_HAVE_IPSEC_MB
	if (g->backend == SEAL_BACKEND_IPSEC_MB) {
		uint8_t calc[SEAL_GCM_TAG_LEN];
		IMB_AES256_GCM_DEC(g->mgr, &g->kd, &g->cd, out, ct, len, iv,
				   aad_len ? aad : empty, aad_len, calc,
				   SEAL_GCM_TAG_LEN);
		if (CRYPTO_memcmp(calc, tag, SEAL_GCM_TAG_LEN) != 0) {
			OPENSSL_cleanse(out, len);
			return -EBADMSG;
		}
		return 0;
	}
#endif
	EVP_CIPHER_CTX *c = g->dec;
	int outl = 0;
	if (!EVP_DecryptInit_ex(c, NULL, NULL, NULL, iv))
		return -EIO;
	if (aad_len && !EVP_DecryptUpdate(c, NULL, &outl, aad, (int)aad_len))
		return -EIO;
	if (len && !EVP_DecryptUpdate(c, out, &outl, ct, (int)len))
		return -EIO;
	if (!EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SEAL_GCM_TAG_LEN,
				 (void *)tag))
		return -EIO;
	if (EVP_DecryptFinal_ex(c, out + len, &outl) <= 0) {
		OPENSSL_cleanse(out, len);
		return -EBADMSG;
	}
	return 0;
}

/* ---- sealing ----------------------------------------------------------------------- */

/* Appends lp(field) lp(record) after the prefix; returns the AAD length.
 * Lengths were checked by the caller. */
static inline size_t gcm_aad_tail(struct seal_gcm *g, const void *field,
				  size_t field_len, const void *record,
				  size_t record_len)
{
	uint8_t *p = g->aad + g->aad_prefix_len;
	*p++ = (uint8_t)field_len;
	if (field_len)
		memcpy(p, field, field_len);
	p += field_len;
	*p++ = (uint8_t)record_len;
	if (record_len)
		memcpy(p, record, record_len);
	p += record_len;
	return (size_t)(p - g->aad);
}

static inline int gcm_check_parts(const void *field, size_t field_len,
				  const void *record, size_t record_len)
{
	if ((field_len | record_len) > SEAL_AAD_PART_MAX ||
	    (!field && field_len) || (!record && record_len))
		return -EINVAL;
	return 0;
}

static inline int gcm_seal_one(struct seal_gcm *g, const void *field,
			       size_t field_len, const void *record,
			       size_t record_len, const uint8_t *in,
			       size_t len, uint8_t *out, size_t cap)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	if (!in && len)
		return -EINVAL;
	int rc = gcm_check_parts(field, field_len, record, record_len);
	if (rc < 0)
		return rc;
	if (!out || cap < len + SEAL_GCM_OVERHEAD)
		return -ENOBUFS;
	uint64_t ctr = g->next;
	if (ctr >= g->max)
		return -EKEYEXPIRED;
	/* Burn the nonce before using it: whatever happens below, this
	 * counter value is never handed out again. ctr < max <= UINT64_MAX,
	 * so ctr + 1 cannot wrap. */
	__atomic_store_n(&g->next, ctr + 1, __ATOMIC_RELAXED);

	/* SP 800-38D §8.2.1: fixed field || invocation field, big-endian so
	 * nonces read in sealing order. */
	uint64_t ctr_be = htobe64(ctr);
	memcpy(out, g->fixed, 4);
	memcpy(out + 4, &ctr_be, 8);

	size_t aad_len = gcm_aad_tail(g, field, field_len, record, record_len);
	rc = gcm_encrypt_raw(g, out, g->aad, aad_len, in, len,
			     out + SEAL_GCM_NONCE_LEN,
			     out + SEAL_GCM_NONCE_LEN + len);
	if (rc < 0)
		return rc;
	return (int)(len + SEAL_GCM_OVERHEAD);
}

int seal_gcm_seal(struct seal_gcm *g, const void *field, size_t field_len,
		  const void *record, size_t record_len, const uint8_t *in,
		  size_t len, uint8_t *out, size_t cap)
{
	return gcm_seal_one(g, field, field_len, record, record_len, in, len,
			    out, cap);
}

unsigned seal_gcm_seal_burst(struct seal_gcm *g, struct seal_item *items,
			     unsigned n)
{
	unsigned done = 0;
	for (unsigned i = 0; i < n; i++) {
		struct seal_item *it = &items[i];
		it->res = gcm_seal_one(g, it->field, it->field_len, it->record,
				       it->record_len, it->in, it->len,
				       it->out, it->cap);
		if (it->res >= 0)
			done++;
	}
	return done;
}

int seal_gcm_open_detached(struct seal_gcm *g, const void *field,
			   size_t field_len, const void *record,
			   size_t record_len, const uint8_t *nonce,
			   const uint8_t *ct, size_t len, const uint8_t *tag,
			   uint8_t *out, size_t cap)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	if (!nonce || !tag || (!ct && len))
		return -EINVAL;
	int rc = gcm_check_parts(field, field_len, record, record_len);
	if (rc < 0)
		return rc;
	if ((!out && len) || cap < len)
		return -ENOBUFS;
	size_t aad_len = gcm_aad_tail(g, field, field_len, record, record_len);
	rc = gcm_decrypt_raw(g, nonce, g->aad, aad_len, ct, len, tag, out);
	return rc < 0 ? rc : (int)len;
}

int seal_gcm_open(struct seal_gcm *g, const void *field, size_t field_len,
		  const void *record, size_t record_len, const uint8_t *sealed,
		  size_t sealed_len, uint8_t *out, size_t cap)
{
	if (!sealed)
		return -EINVAL;
	if (sealed_len < SEAL_GCM_OVERHEAD)
		return -ENODATA;
	size_t len = sealed_len - SEAL_GCM_OVERHEAD;
	/* The nonce and tag are copied out first, so an in-place open (|out|
	 * == ciphertext) cannot overwrite them before they are used. */
	uint8_t iv[SEAL_GCM_NONCE_LEN], tag[SEAL_GCM_TAG_LEN];
	memcpy(iv, sealed, sizeof(iv));
	memcpy(tag, sealed + SEAL_GCM_NONCE_LEN + len, sizeof(tag));
	return seal_gcm_open_detached(g, field, field_len, record, record_len,
				      iv, sealed + SEAL_GCM_NONCE_LEN, len,
				      tag, out, cap);
}
