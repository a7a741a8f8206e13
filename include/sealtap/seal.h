/* Sealing engine: what turns a sensitive value into something that may leave
 * the VM.
 *
 * Three actions, one per policy verb, all keyed from one tenant DEK:
 *
 *   seal      AES-256-GCM (seal_gcm_*). Randomised by a unique nonce, so
 *             equal values give unrelated outputs; bound by its AAD to the
 *             tenant, key id, field name and record id. Opened with the DEK.
 *   tokenize  AES-256-SIV (seal_siv_*, RFC 5297). Deterministic: equal values
 *             in one tenant, key and field give equal tokens, so they can be
 *             joined and counted without the key. Bound to tenant, key id and
 *             field (not the record). Opened with the DEK.
 *   hash      HMAC-SHA-256 (seal_hash_*). Deterministic and one-way.
 *
 * Keys. The DEK is a plain 32-byte secret handed in by the caller (the key
 * cache owns it). No algorithm uses it directly: each derives its own key
 * with HKDF-SHA256 (RFC 5869) under a distinct label (seal_key_derive), so a
 * GCM key, a SIV key and an HMAC key made from one DEK are independent, and a
 * weakness of one use cannot be carried to another. Contexts hold only the
 * derived keys; they and everything OpenSSL allocates for them live in
 * secret memory (mem_secret.h: not in core dumps, wiped when freed).
 *
 * Nonces (GCM). 96 bits = fixed field (32) || invocation counter (64), the
 * deterministic construction of NIST SP 800-38D §8.2.1 and RFC 5116 §3.2.
 * The fixed field is unique per (DEK, sealtap instance, worker): see
 * seal_gcm_fixed_field() and docs/tokens.md "Nonces". The counter starts at 0
 * in every context and stops at the context's budget; it never wraps.
 *
 * Canonical AAD (seal_aad_build): version, kind, then each part length-
 * prefixed, so no two different (tenant, key id, field, record) tuples encode
 * to the same bytes ("ab"+"c" differs from "a"+"bc").
 *
 * Threads. A context is used by one thread at a time (one per worker and
 * key); nothing here takes a lock. seal_gcm_used() may be read from another
 * thread (relaxed atomic) for usage accounting.
 *
 * Errors: 0 or a positive byte count on success, -errno on failure. Sealing
 * and opening never log, and never put key or value bytes in any message.
 *
 * Ownership: no function here takes ownership of a buffer it is given;
 * contexts are owned by whoever created them (free with the matching
 * _free). Each function comment says so in the usual form.
 */
#ifndef SEALTAP_SEAL_H
#define SEALTAP_SEAL_H

#include <stddef.h>
#include <stdint.h>

/* ---- sizes -------------------------------------------------------------- */

#define SEAL_DEK_LEN 32         /* tenant data-encryption key, bytes */
#define SEAL_GCM_KEY_LEN 32     /* AES-256 */
#define SEAL_GCM_NONCE_LEN 12   /* 96-bit nonce: fixed(4) || counter(8) */
#define SEAL_GCM_TAG_LEN 16     /* full 128-bit tag, never truncated */
#define SEAL_GCM_OVERHEAD (SEAL_GCM_NONCE_LEN + SEAL_GCM_TAG_LEN)
#define SEAL_SIV_KEY_LEN 64     /* AES-256-SIV: 2 x 256 bits (MAC || CTR) */
#define SEAL_SIV_TAG_LEN 16     /* the synthetic IV */
#define SEAL_HASH_KEY_LEN 32
#define SEAL_HASH_LEN 32        /* HMAC-SHA-256 output */

/* Largest plaintext value, bytes. Values come from headers and bounded body
 * fields; anything larger is a policy error, refused rather than sealed. */
#define SEAL_VALUE_MAX 65536u
/* Each AAD part (tenant, key id, field, record id) is at most this long: the
 * length prefix is one byte. */
#define SEAL_AAD_PART_MAX 255u
/* Key ids travel in tokens: 1..SEAL_KEY_ID_MAX chars of [A-Za-z0-9_-]. */
#define SEAL_KEY_ID_MAX 64u
/* Longest canonical AAD: version, kind, four parts with their prefixes. */
#define SEAL_AAD_MAX (2u + 4u * (1u + SEAL_AAD_PART_MAX))

/* ---- key derivation ------------------------------------------------------ */

/* HKDF-SHA256 labels (the HKDF "info"); the salt is SEAL_KDF_SALT. Changing
 * any of these changes every key: they are part of the token format. */
#define SEAL_KDF_SALT "sealtap kdf v1"
#define SEAL_KDF_LABEL_GCM "sealtap/v1 seal aes-256-gcm"
#define SEAL_KDF_LABEL_SIV "sealtap/v1 tokenize aes-256-siv"
#define SEAL_KDF_LABEL_HASH "sealtap/v1 hash hmac-sha-256"

/* Derives |out_len| bytes from |dek| (SEAL_DEK_LEN bytes) with HKDF-SHA256,
 * salt SEAL_KDF_SALT and info |label|. Does not take ownership of |dek| or
 * |out|; the caller wipes |out| when done. 0 or -EINVAL / -EIO. */
int seal_key_derive(const uint8_t *dek, const char *label, uint8_t *out,
		    size_t out_len);

/* ---- canonical AAD ------------------------------------------------------- */

/* Kinds: the letter in the token and the second byte of the AAD. */
#define SEAL_KIND_GCM 'g'
#define SEAL_KIND_SIV 's'
#define SEAL_KIND_HASH 'h'

#define SEAL_AAD_VERSION 0x01

/* Writes the canonical AAD for |kind| into |out|:
 *
 *   0x01 | kind | len(tenant) tenant | len(key_id) key_id | len(field) field
 *        [ | len(record) record ]   -- record only for SEAL_KIND_GCM
 *
 * each len one byte. |record| is ignored (may be NULL) for 's' and 'h'.
 * Does not take ownership of any argument.
 * Returns the AAD length, -EINVAL for an unknown kind or a part longer than
 * SEAL_AAD_PART_MAX, -ENOBUFS if |cap| is too small (SEAL_AAD_MAX always
 * suffices). */
int seal_aad_build(char kind, const char *tenant, size_t tenant_len,
		   const char *key_id, size_t key_id_len, const void *field,
		   size_t field_len, const void *record, size_t record_len,
		   uint8_t *out, size_t cap);

/* True if |id| is a valid key id (see SEAL_KEY_ID_MAX). */
int seal_key_id_valid(const char *id, size_t len);

/* ---- AES-256-GCM ----------------------------------------------------------- */

/* Implementations of the same AES-256-GCM, chosen per context. AUTO takes
 * intel-ipsec-mb when the library is built in and the CPU has AES-NI (its
 * direct GCM API is 4-5x faster than OpenSSL EVP for small values), OpenSSL
 * otherwise. Both produce identical bytes (tests/unit/test_seal_gcm.c). */
enum seal_backend {
	SEAL_BACKEND_AUTO = 0,
	SEAL_BACKEND_OPENSSL = 1,
	SEAL_BACKEND_IPSEC_MB = 2,
};

/* 1 if |b| can be used in this process (built in, CPU capable), else 0. */
int seal_backend_available(enum seal_backend b);
const char *seal_backend_name(enum seal_backend b);

/* Nonce fixed field layout: instance (24 bits) || worker (8 bits). */
#define SEAL_GCM_WORKER_BITS 8
#define SEAL_GCM_WORKER_MAX ((1u << SEAL_GCM_WORKER_BITS) - 1)            /* 255 */
#define SEAL_GCM_INSTANCE_MAX ((1u << (32 - SEAL_GCM_WORKER_BITS)) - 1)   /* 2^24-1 */

/* Per-DEK usage cap sealtap recommends to the key cache (sum over every
 * context of every instance): 2^32 seals. NIST SP 800-38D §8.3 sets 2^32 as
 * the limit for random IVs; the deterministic construction used here allows
 * more, but staying at 2^32 keeps the GCM data-volume bound small (see
 * docs/tokens.md) and makes rotation routine rather than exceptional. */
#define SEAL_GCM_DEK_CAP_DEFAULT (1ull << 32)
/* Budget of one context when the caller gives none. */
#define SEAL_GCM_CTX_MAX_DEFAULT (1ull << 32)

/* Composes the 32-bit nonce fixed field from |instance| (this sealtap
 * process's lease number for the DEK, allocated by the key cache from a
 * counter stored with the wrapped DEK and never handed out twice) and
 * |worker| (the worker index in this process). 0, or -ERANGE if either is
 * out of range (instance > SEAL_GCM_INSTANCE_MAX means the DEK has used up
 * its leases and must be rotated). */
int seal_gcm_fixed_field(uint32_t instance, uint32_t worker, uint32_t *fixed);

struct seal_gcm_cfg {
	uint32_t fixed;         /* nonce fixed field, seal_gcm_fixed_field() */
	uint64_t max_seals;     /* nonces this context may use; 0 = default */
	enum seal_backend backend;
};

struct seal_gcm;

/* Creates a context for one (worker, DEK): derives the GCM key from |dek|,
 * expands it once (AES key schedule + GHASH tables, or an EVP context keyed
 * once), and precomputes the AAD prefix for |tenant| / |key_id| (NUL-
 * terminated; key id must pass seal_key_id_valid, tenant at most
 * SEAL_AAD_PART_MAX bytes). |cfg| NULL makes an open-only context (no
 * nonces; sealing returns -EKEYEXPIRED), which needs no fixed-field lease.
 * A fixed field is good for one sealing context per (tenant, key id) for
 * the life of the process: a second one, even after the first was freed,
 * is refused with -EEXIST (its counter would restart at 0 and reuse every
 * nonce), so a DEK loaded again after eviction needs a new lease.
 * Does not take ownership of |dek| (the caller keeps and wipes it). On
 * success the caller frees *|out| with seal_gcm_free(). 0, -EINVAL, -EEXIST,
 * -ENOMEM, -ENOTSUP (backend requested but not available) or -EIO. */
int seal_gcm_new(const uint8_t *dek, const char *tenant, const char *key_id,
		 const struct seal_gcm_cfg *cfg, struct seal_gcm **out);
/* Wipes the derived key material and frees |g|. Takes ownership of |g|.
 * NULL is fine. */
void seal_gcm_free(struct seal_gcm *g);

enum seal_backend seal_gcm_backend(const struct seal_gcm *g);
const char *seal_gcm_key_id(const struct seal_gcm *g);
/* Nonces used so far (= next counter value); safe to read from another
 * thread. */
uint64_t seal_gcm_used(const struct seal_gcm *g);
/* Nonces left before sealing returns -EKEYEXPIRED. */
uint64_t seal_gcm_remaining(const struct seal_gcm *g);

/* Seals |len| bytes at |in| for field |field| of record |record|, writing
 *
 *   nonce (12) || ciphertext (len) || tag (16)
 *
 * to |out| (|cap| bytes; |out| must not overlap |in|). Consumes one nonce,
 * also when the backend fails, so a nonce is never used twice. Returns
 * len + SEAL_GCM_OVERHEAD, or: -EMSGSIZE (len > SEAL_VALUE_MAX), -EINVAL
 * (field or record longer than SEAL_AAD_PART_MAX, NULL with nonzero
 * length), -ENOBUFS (cap too small), -EKEYEXPIRED (budget used up: the
 * context can only open from now on; make a new one with a new lease or a new
 * DEK), -EIO (backend error). Nothing is consumed on -EMSGSIZE, -EINVAL or
 * -ENOBUFS. Does not take ownership of any buffer. */
int seal_gcm_seal(struct seal_gcm *g, const void *field, size_t field_len,
		  const void *record, size_t record_len, const uint8_t *in,
		  size_t len, uint8_t *out, size_t cap);

/* One value of a burst. The caller fills the inputs; seal_gcm_seal_burst()
 * sets |res| to what seal_gcm_seal() would have returned for it. */
struct seal_item {
	const void *field;
	const void *record;
	const uint8_t *in;
	uint8_t *out;
	uint32_t field_len;
	uint32_t record_len;
	uint32_t len;
	uint32_t cap;
	int res;
};

/* Seals |n| values in order. Returns how many were sealed; every item's
 * |res| says what happened to it (an item refused with -EINVAL, -EMSGSIZE or
 * -ENOBUFS does not stop the others; once the budget runs out every
 * remaining item gets -EKEYEXPIRED). The caller owns all buffers, sealed or
 * not. */
unsigned seal_gcm_seal_burst(struct seal_gcm *g, struct seal_item *items,
			     unsigned n);

/* Opens |sealed| (nonce || ciphertext || tag, |sealed_len| bytes) made by a
 * context with the same DEK, tenant and key id, for the same |field| and
 * |record|. Writes the plaintext to |out| (|cap| bytes); |out| may be
 * exactly |sealed| + SEAL_GCM_NONCE_LEN (in place), must not overlap it
 * otherwise. Returns the plaintext length, or -EBADMSG (wrong tag: tampered,
 * other key, other tenant/field/record), -ENODATA (shorter than the
 * overhead), -EMSGSIZE, -EINVAL, -ENOBUFS, -EIO. On -EBADMSG |out| is
 * wiped. Works on any context (open-only too); consumes no nonce. Does not
 * take ownership of |sealed| or |out|. */
int seal_gcm_open(struct seal_gcm *g, const void *field, size_t field_len,
		  const void *record, size_t record_len, const uint8_t *sealed,
		  size_t sealed_len, uint8_t *out, size_t cap);

/* seal_gcm_open() with the three parts apart (the token layer decodes them
 * to different places): |nonce| 12 bytes, |ct| |len| bytes, |tag| 16 bytes.
 * |out| may equal |ct|. Same returns and ownership as seal_gcm_open(). */
int seal_gcm_open_detached(struct seal_gcm *g, const void *field,
			   size_t field_len, const void *record,
			   size_t record_len, const uint8_t *nonce,
			   const uint8_t *ct, size_t len, const uint8_t *tag,
			   uint8_t *out, size_t cap);

/* ---- AES-256-SIV (tokenize) and HMAC-SHA-256 (hash) ------------------------ */

struct seal_siv;

/* Creates a tokenize context: SIV key = HKDF(dek, SEAL_KDF_LABEL_SIV),
 * AAD = canonical 's' AAD of |tenant|, |key_id| and the field. Same
 * ownership and errors as seal_gcm_new(). Free with seal_siv_free(). */
int seal_siv_new(const uint8_t *dek, const char *tenant, const char *key_id,
		 struct seal_siv **out);
/* Wipes and frees |s|. Takes ownership of |s|. NULL is fine. */
void seal_siv_free(struct seal_siv *s);
const char *seal_siv_key_id(const struct seal_siv *s);

/* Deterministically seals |in| for |field|: writes siv (16) || ciphertext
 * (len) to |out|. Equal (tenant, key, field, value) give equal bytes.
 * Returns len + SEAL_SIV_TAG_LEN, or -EMSGSIZE, -EINVAL, -ENOBUFS, -EIO.
 * Does not take ownership of |in| or |out|; |out| must not overlap |in|. */
int seal_siv_seal(struct seal_siv *s, const void *field, size_t field_len,
		  const uint8_t *in, size_t len, uint8_t *out, size_t cap);
/* Opens siv || ciphertext for |field|. |out| may be exactly |sealed| +
 * SEAL_SIV_TAG_LEN (in place). Returns the plaintext length or -EBADMSG,
 * -ENODATA, -EMSGSIZE, -EINVAL, -ENOBUFS, -EIO; |out| wiped on -EBADMSG.
 * Does not take ownership of |sealed| or |out|. */
int seal_siv_open(struct seal_siv *s, const void *field, size_t field_len,
		  const uint8_t *sealed, size_t sealed_len, uint8_t *out,
		  size_t cap);

/* seal_siv_open() with |tag| (16 bytes) and |ct| apart; |out| may equal
 * |ct|. Same returns and ownership as seal_siv_open(). */
int seal_siv_open_detached(struct seal_siv *s, const void *field,
			   size_t field_len, const uint8_t *tag,
			   const uint8_t *ct, size_t len, uint8_t *out,
			   size_t cap);

struct seal_hash;

/* Creates a hash context: HMAC key = HKDF(dek, SEAL_KDF_LABEL_HASH). Same
 * ownership and errors as seal_gcm_new(). Free with seal_hash_free(). */
int seal_hash_new(const uint8_t *dek, const char *tenant, const char *key_id,
		  struct seal_hash **out);
/* Wipes and frees |h|. Takes ownership of |h|. NULL is fine. */
void seal_hash_free(struct seal_hash *h);
const char *seal_hash_key_id(const struct seal_hash *h);

/* out (SEAL_HASH_LEN bytes) = HMAC-SHA-256(key, aad('h') || value): the
 * canonical 'h' AAD (tenant, key id, field) is length-prefixed, so it cannot
 * run into the value. Returns SEAL_HASH_LEN or -EMSGSIZE, -EINVAL, -EIO.
 * Does not take ownership of |in| or |out|. */
int seal_hash_compute(struct seal_hash *h, const void *field, size_t field_len,
		      const uint8_t *in, size_t len, uint8_t *out);

/* ---- tokens (docs/tokens.md) ------------------------------------------------ */

/* Text form, URL- and header-safe:
 *
 *   stk1.<kind>.<key-id>.<base64url(payload), unpadded>
 *
 *   kind g: payload = nonce (12) || ciphertext || tag (16)
 *   kind s: payload = siv (16) || ciphertext
 *   kind h: payload = hmac (32)
 */
#define SEAL_TOKEN_PREFIX "stk"
#define SEAL_TOKEN_VERSION 1
/* Base64url length of |n| bytes without padding. */
#define SEAL_B64_LEN(n) (((n) / 3) * 4 + (((n) % 3) ? ((n) % 3) + 1 : 0))
/* Longest token text (a kind g token of a SEAL_VALUE_MAX value, longest key
 * id), without a NUL. Parsing refuses anything longer. */
#define SEAL_TOKEN_MAX                                                         \
	(8u + SEAL_KEY_ID_MAX + SEAL_B64_LEN(SEAL_VALUE_MAX + SEAL_GCM_OVERHEAD))

/* A parsed token: views into the text given to seal_token_parse(). */
struct seal_token {
	char kind;              /* SEAL_KIND_* */
	const char *key_id;
	size_t key_id_len;
	const char *payload;    /* base64url text */
	size_t payload_len;
	size_t raw_len;         /* decoded payload bytes */
};

/* Exact text length of a token (no NUL). */
size_t seal_token_len(size_t key_id_len, size_t raw_len);

/* Writes the token for |raw| (|raw_len| payload bytes) into |out|, with a
 * NUL after it if there is room. |raw| may lie inside |out| exactly at
 * |out| + seal_token_len(key_id_len, 0) (encoding runs backwards, in place).
 * Returns the text length, or -EINVAL (bad kind or key id), -ENODATA /
 * -EMSGSIZE (payload under / over the kind's size), -ENOBUFS. Does not take
 * ownership of |raw| or |out|. */
int seal_token_encode(char kind, const char *key_id, size_t key_id_len,
		      const uint8_t *raw, size_t raw_len, char *out,
		      size_t cap);

/* Strict parse of |len| bytes at |text| (no NUL needed; a NUL inside is an
 * error). |t| points into |text| afterwards: the caller keeps |text| alive
 * while it uses |t|; nothing is allocated. Accepts exactly the form above and nothing else: no padding, no
 * whitespace, no non-canonical base64 tail bits. Fills |t| and returns 0, or:
 *   -EINVAL           malformed (prefix, separators, kind, key id)
 *   -EPROTONOSUPPORT  "stk<digits>" with a version other than 1
 *   -EILSEQ           payload is not strict unpadded base64url
 *   -ENODATA          truncated: payload shorter than the kind's minimum
 *   -EMSGSIZE         oversize: text or payload over the kind's maximum
 */
int seal_token_parse(const char *text, size_t len, struct seal_token *t);

/* Decodes a parsed token's payload into |raw|. Returns t->raw_len or
 * -ENOBUFS. Does not take ownership of |raw|. */
int seal_token_decode(const struct seal_token *t, uint8_t *raw, size_t cap);

/* Seal + encode in one step, no intermediate buffer: the payload is sealed
 * straight into |out| and base64url-encoded in place. Returns the text
 * length or the errors of seal_gcm_seal() / seal_siv_seal() /
 * seal_hash_compute() and seal_token_encode(). A NUL follows the text when
 * |cap| leaves room for it. Does not take ownership of |in| or |out|. */
int seal_token_seal_gcm(struct seal_gcm *g, const void *field,
			size_t field_len, const void *record, size_t record_len,
			const uint8_t *in, size_t len, char *out, size_t cap);
int seal_token_seal_siv(struct seal_siv *s, const void *field,
			size_t field_len, const uint8_t *in, size_t len,
			char *out, size_t cap);
int seal_token_hash(struct seal_hash *h, const void *field, size_t field_len,
		    const uint8_t *in, size_t len, char *out, size_t cap);

/* Parse + open. The token must be of the context's kind and key id
 * (-ENOKEY otherwise); then the parse errors above, or the open errors of
 * seal_gcm_open() / seal_siv_open() (-EBADMSG when the tag does not verify:
 * tampered, or moved to another field, record or tenant). Writes the
 * plaintext to |out| and returns its length; |cap| need only hold the
 * plaintext (the payload is decoded straight into |out| and opened in
 * place). Does not take ownership of |text| or |out|. */
int seal_token_open_gcm(struct seal_gcm *g, const void *field,
			size_t field_len, const void *record, size_t record_len,
			const char *text, size_t text_len, uint8_t *out,
			size_t cap);
int seal_token_open_siv(struct seal_siv *s, const void *field,
			size_t field_len, const char *text, size_t text_len,
			uint8_t *out, size_t cap);
/* Recomputes the hash of |in| and compares it (constant time) with the
 * token. 0 if equal, -EBADMSG if not, -ENOKEY / parse errors. Does not take
 * ownership of |in| or |text|. */
int seal_token_check_hash(struct seal_hash *h, const void *field,
			  size_t field_len, const uint8_t *in, size_t len,
			  const char *text, size_t text_len);

/* A short static description of a negative return of any seal_ function
 * ("truncated token", "authentication failed", ...). Never NULL. */
const char *seal_strerror(int err);

#endif
