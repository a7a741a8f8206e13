/* Formats: the canonical AAD and the token text (docs/tokens.md).
 *
 *   stk1.<kind>.<key-id>.<base64url(payload)>
 *
 * Parsing is strict because tokens come back from outside (headers replayed
 * by clients, records edited by people): one spelling per token, so two
 * different strings never open to the same value, and every length is
 * checked before a byte is decoded. Encoding is on the hot path of the
 * extproc face, so it writes straight into the caller's buffer: the value is
 * sealed where its base64 will end up and encoded backwards in place. */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "sealtap/common.h"
#include "sealtap/seal.h"

/* "stk1." + kind + "." + key id + "." */
#define TOKEN_HDR_LEN(kid_len) (8u + (kid_len))

/* ---- canonical AAD ---------------------------------------------------------------- */

int seal_aad_build(char kind, const char *tenant, size_t tenant_len,
		   const char *key_id, size_t key_id_len, const void *field,
		   size_t field_len, const void *record, size_t record_len,
		   uint8_t *out, size_t cap)
{
	int with_record;
	switch (kind) {
	case SEAL_KIND_GCM:
		with_record = 1;
		break;
	case SEAL_KIND_SIV:
	case SEAL_KIND_HASH:
		with_record = 0;
		record_len = 0;
		break;
	default:
		return -EINVAL;
	}
	if (tenant_len > SEAL_AAD_PART_MAX || key_id_len > SEAL_AAD_PART_MAX ||
	    field_len > SEAL_AAD_PART_MAX || record_len > SEAL_AAD_PART_MAX ||
	    (!tenant && tenant_len) || (!key_id && key_id_len) ||
	    (!field && field_len) || (!record && record_len) || !out)
		return -EINVAL;
	size_t need = 2 + 1 + tenant_len + 1 + key_id_len + 1 + field_len +
		      (with_record ? 1 + record_len : 0);
	if (cap < need)
		return -ENOBUFS;
	/* Every part is length-prefixed, so the encoding is injective: a
	 * parser reading prefixes recovers each part exactly. */
	const struct {
		const void *p;
		size_t len;
	} parts[4] = {
		{tenant, tenant_len},
		{key_id, key_id_len},
		{field, field_len},
		{record, record_len},
	};
	uint8_t *p = out;
	*p++ = SEAL_AAD_VERSION;
	*p++ = (uint8_t)kind;
	for (int i = 0; i < 3 + with_record; i++) {
		*p++ = (uint8_t)parts[i].len;
		if (parts[i].len)
			memcpy(p, parts[i].p, parts[i].len);
		p += parts[i].len;
	}
	return (int)(p - out);
}

static inline int key_id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int seal_key_id_valid(const char *id, size_t len)
{
	if (!id || len == 0 || len > SEAL_KEY_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!key_id_char((unsigned char)id[i]))
			return 0;
	return 1;
}

/* ---- base64url (RFC 4648 §5), unpadded ---------------------------------------------- */

static const char b64_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decode table: 6-bit value, or 0xff for bytes outside the alphabet
 * (including '=', '+', '/', whitespace and NUL). */
#define D_ 0xff
static const uint8_t b64_value[256] = {
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, 62, D_, D_,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, D_, D_, D_, D_, D_, D_,
	D_, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, D_, D_, D_, D_, 63,
	D_, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, D_,
};
#undef D_

/* Two output chars per 12 input bits, so a 3-byte group is two loads and
 * two 2-byte stores instead of four of each (token text is on the extproc
 * hot path: a 64-byte value's token is 123 chars). Built at compile time
 * from the alphabet's arithmetic form; entries hold the chars in memory
 * order, which needs a little-endian host. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "b64_pairs assumes a little-endian host"
#endif
#define B64C(x)                                                                \
	((x) < 26 ? 'A' + (x)                                                  \
	 : (x) < 52 ? 'a' + (x) - 26                                           \
	 : (x) < 62 ? '0' + (x) - 52                                           \
	 : (x) == 62 ? '-' : '_')
#define P1(i) (uint16_t)(B64C((i) >> 6) | (B64C((i) & 63) << 8))
#define P4(i) P1(i), P1((i) + 1), P1((i) + 2), P1((i) + 3)
#define P16(i) P4(i), P4((i) + 4), P4((i) + 8), P4((i) + 12)
#define P64(i) P16(i), P16((i) + 16), P16((i) + 32), P16((i) + 48)
#define P256(i) P64(i), P64((i) + 64), P64((i) + 128), P64((i) + 192)
#define P1024(i) P256(i), P256((i) + 256), P256((i) + 512), P256((i) + 768)
static const uint16_t b64_pairs[4096] = {
	P1024(0), P1024(1024), P1024(2048), P1024(3072),
};
#undef P1
#undef P4
#undef P16
#undef P64
#undef P256
#undef P1024
#undef B64C

/* Encodes |n| bytes at |in| to |out| (SEAL_B64_LEN(n) chars, no NUL),
 * last group first: with |out| >= |in| the text may overwrite the bytes it
 * comes from, because group i is written at out+4i >= in+3i, past every
 * byte of the groups before it, and its own bytes are read first. */
static void b64_encode_back(const uint8_t *in, size_t n, char *out)
{
	size_t full = n / 3, rest = n % 3;
	const uint8_t *s = in + full * 3;
	char *d = out + full * 4;
	if (rest == 1) {
		uint32_t v = s[0];
		d[0] = b64_alphabet[v >> 2];
		d[1] = b64_alphabet[(v & 3) << 4];
	} else if (rest == 2) {
		uint32_t v = ((uint32_t)s[0] << 8) | s[1];
		d[0] = b64_alphabet[v >> 10];
		d[1] = b64_alphabet[(v >> 4) & 63];
		d[2] = b64_alphabet[(v & 15) << 2];
	}
	while (full--) {
		s -= 3;
		d -= 4;
		uint32_t v = ((uint32_t)s[0] << 16) | ((uint32_t)s[1] << 8) |
			     s[2];
		memcpy(d, &b64_pairs[v >> 12], 2);
		memcpy(d + 2, &b64_pairs[v & 0xfff], 2);
	}
}

/* Decoded length of |n| base64 chars, or -1 when no string of that length
 * is valid unpadded base64 (n % 4 == 1). */
static inline long b64_raw_len(size_t n)
{
	if (n % 4 == 1)
		return -1;
	return (long)(n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0));
}

/* Checks every char and the canonical tail: the unused low bits of the
 * last char must be zero (RFC 4648 §3.5), otherwise several strings would
 * decode to the same bytes. */
static int b64_check(const char *s, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= b64_value[(unsigned char)s[i]];
	if (acc == 0xff || (acc & 0xc0))
		return -EILSEQ;
	if (n % 4 == 1)
		return -EILSEQ;
	uint8_t last = n ? b64_value[(unsigned char)s[n - 1]] : 0;
	if (n % 4 == 2 && (last & 15))
		return -EILSEQ;
	if (n % 4 == 3 && (last & 3))
		return -EILSEQ;
	return 0;
}

/* Decodes the bytes [from, to) of the payload |s| (|n| chars, already
 * checked) into |dst|: the token's parts go to different buffers without a
 * copy of the whole payload. */
static void b64_decode_range(const char *s, size_t n, size_t from, size_t to,
			     uint8_t *dst)
{
	for (size_t g = from / 3; g * 3 < to; g++) {
		size_t c = g * 4;
		uint32_t v = 0;
		int chars = 0;
		for (; chars < 4 && c + (size_t)chars < n; chars++)
			v = (v << 6) | b64_value[(unsigned char)s[c + chars]];
		v <<= 6 * (4 - chars);
		uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8),
				(uint8_t)v};
		for (size_t k = 0; k < 3; k++) {
			size_t pos = g * 3 + k;
			if (pos >= from && pos < to)
				dst[pos - from] = b[k];
		}
	}
}

/* ---- token text ----------------------------------------------------------------------- */

/* Payload bounds per kind. */
static int kind_bounds(char kind, size_t *min, size_t *max)
{
	switch (kind) {
	case SEAL_KIND_GCM:
		*min = SEAL_GCM_OVERHEAD;
		*max = SEAL_GCM_OVERHEAD + SEAL_VALUE_MAX;
		return 0;
	case SEAL_KIND_SIV:
		*min = SEAL_SIV_TAG_LEN;
		*max = SEAL_SIV_TAG_LEN + SEAL_VALUE_MAX;
		return 0;
	case SEAL_KIND_HASH:
		*min = *max = SEAL_HASH_LEN;
		return 0;
	}
	return -EINVAL;
}

size_t seal_token_len(size_t key_id_len, size_t raw_len)
{
	return TOKEN_HDR_LEN(key_id_len) + SEAL_B64_LEN(raw_len);
}

static char *token_header(char *out, char kind, const char *key_id,
			  size_t kid_len)
{
	memcpy(out, "stk1.", 5);
	out[5] = kind;
	out[6] = '.';
	memcpy(out + 7, key_id, kid_len);
	out[7 + kid_len] = '.';
	return out + TOKEN_HDR_LEN(kid_len);
}

int seal_token_encode(char kind, const char *key_id, size_t key_id_len,
		      const uint8_t *raw, size_t raw_len, char *out,
		      size_t cap)
{
	size_t min, max;
	if (kind_bounds(kind, &min, &max) < 0 ||
	    !seal_key_id_valid(key_id, key_id_len) || (!raw && raw_len))
		return -EINVAL;
	if (raw_len > max)
		return -EMSGSIZE;
	if (raw_len < min)
		return -ENODATA;
	size_t n = seal_token_len(key_id_len, raw_len);
	if (!out || cap < n)
		return -ENOBUFS;
	/* Payload first: when |raw| sits right after the header, the header
	 * bytes are free to write, and the payload is encoded in place. */
	b64_encode_back(raw, raw_len, out + TOKEN_HDR_LEN(key_id_len));
	token_header(out, kind, key_id, key_id_len);
	if (cap > n)
		out[n] = '\0';
	return (int)n;
}

int seal_token_parse(const char *text, size_t len, struct seal_token *t)
{
	if (!text || !t)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	if (len > SEAL_TOKEN_MAX)
		return -EMSGSIZE;
	/* Prefix and version first: a future version may change everything
	 * after them, so "stk2...." is "unsupported", not "malformed". */
	if (len < 3)
		return len && memcmp(text, "stk", len) == 0 ? -ENODATA
							    : -EINVAL;
	if (memcmp(text, "stk", 3) != 0)
		return -EINVAL;
	size_t i = 3;
	while (i < len && i < 3 + 9 && text[i] >= '0' && text[i] <= '9')
		i++;
	if (i == 3)
		return i == len ? -ENODATA : -EINVAL;
	if (i - 3 != 1 || text[3] != '0' + SEAL_TOKEN_VERSION)
		return -EPROTONOSUPPORT;
	if (i == len)
		return -ENODATA;
	if (text[i++] != '.')
		return -EINVAL;

	/* kind */
	if (i == len)
		return -ENODATA;
	char kind = text[i++];
	size_t min, max;
	if (kind_bounds(kind, &min, &max) < 0)
		return -EINVAL;
	if (i == len)
		return -ENODATA;
	if (text[i++] != '.')
		return -EINVAL;

	/* key id, up to the next '.' */
	size_t kid = i;
	while (i < len && text[i] != '.') {
		if (!key_id_char((unsigned char)text[i]) ||
		    i - kid >= SEAL_KEY_ID_MAX)
			return -EINVAL;
		i++;
	}
	if (i == len)
		return -ENODATA;
	if (i == kid)
		return -EINVAL;
	size_t kid_len = i - kid;
	i++; /* '.' */

	/* payload: lengths before content, so an oversize or truncated
	 * token is refused without scanning it. */
	size_t plen = len - i;
	if (plen == 0)
		return -ENODATA;
	long raw = b64_raw_len(plen);
	if (raw < 0)
		return -EILSEQ;
	if ((size_t)raw < min)
		return -ENODATA;
	if ((size_t)raw > max)
		return -EMSGSIZE;
	int rc = b64_check(text + i, plen);
	if (rc < 0)
		return rc;

	t->kind = kind;
	t->key_id = text + kid;
	t->key_id_len = kid_len;
	t->payload = text + i;
	t->payload_len = plen;
	t->raw_len = (size_t)raw;
	return 0;
}

int seal_token_decode(const struct seal_token *t, uint8_t *raw, size_t cap)
{
	if (!t || (!raw && t->raw_len))
		return -EINVAL;
	if (cap < t->raw_len)
		return -ENOBUFS;
	b64_decode_range(t->payload, t->payload_len, 0, t->raw_len, raw);
	return (int)t->raw_len;
}

/* ---- seal + encode --------------------------------------------------------------------- */

/* The three sealers write their payload at |out| + header, then this
 * encodes it in place. |cap| was checked to hold the whole token. */
static int token_finish(char kind, const char *key_id, size_t kid_len,
			int raw_len, char *out, size_t cap)
{
	if (raw_len < 0)
		return raw_len;
	return seal_token_encode(kind, key_id, kid_len,
				 (const uint8_t *)out + TOKEN_HDR_LEN(kid_len),
				 (size_t)raw_len, out, cap);
}

int seal_token_seal_gcm(struct seal_gcm *g, const void *field,
			size_t field_len, const void *record, size_t record_len,
			const uint8_t *in, size_t len, char *out, size_t cap)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	const char *kid = seal_gcm_key_id(g);
	size_t kid_len = strlen(kid);
	size_t hdr = TOKEN_HDR_LEN(kid_len);
	if (!out || cap < seal_token_len(kid_len, len + SEAL_GCM_OVERHEAD))
		return -ENOBUFS;
	int n = seal_gcm_seal(g, field, field_len, record, record_len, in, len,
			      (uint8_t *)out + hdr, cap - hdr);
	return token_finish(SEAL_KIND_GCM, kid, kid_len, n, out, cap);
}

int seal_token_seal_siv(struct seal_siv *s, const void *field,
			size_t field_len, const uint8_t *in, size_t len,
			char *out, size_t cap)
{
	if (len > SEAL_VALUE_MAX)
		return -EMSGSIZE;
	const char *kid = seal_siv_key_id(s);
	size_t kid_len = strlen(kid);
	size_t hdr = TOKEN_HDR_LEN(kid_len);
	if (!out || cap < seal_token_len(kid_len, len + SEAL_SIV_TAG_LEN))
		return -ENOBUFS;
	int n = seal_siv_seal(s, field, field_len, in, len,
			      (uint8_t *)out + hdr, cap - hdr);
	return token_finish(SEAL_KIND_SIV, kid, kid_len, n, out, cap);
}

int seal_token_hash(struct seal_hash *h, const void *field, size_t field_len,
		    const uint8_t *in, size_t len, char *out, size_t cap)
{
	const char *kid = seal_hash_key_id(h);
	size_t kid_len = strlen(kid);
	size_t hdr = TOKEN_HDR_LEN(kid_len);
	if (!out || cap < seal_token_len(kid_len, SEAL_HASH_LEN))
		return -ENOBUFS;
	int n = seal_hash_compute(h, field, field_len, in, len,
				  (uint8_t *)out + hdr);
	return token_finish(SEAL_KIND_HASH, kid, kid_len, n, out, cap);
}

/* ---- open ---------------------------------------------------------------------------- */

static int token_for(const char *text, size_t text_len, char kind,
		     const char *key_id, struct seal_token *t)
{
	int rc = seal_token_parse(text, text_len, t);
	if (rc < 0)
		return rc;
	size_t kid_len = strlen(key_id);
	if (t->kind != kind || t->key_id_len != kid_len ||
	    memcmp(t->key_id, key_id, kid_len) != 0)
		return -ENOKEY;
	return 0;
}

int seal_token_open_gcm(struct seal_gcm *g, const void *field,
			size_t field_len, const void *record, size_t record_len,
			const char *text, size_t text_len, uint8_t *out,
			size_t cap)
{
	struct seal_token t;
	int rc = token_for(text, text_len, SEAL_KIND_GCM, seal_gcm_key_id(g),
			   &t);
	if (rc < 0)
		return rc;
	size_t len = t.raw_len - SEAL_GCM_OVERHEAD;
	if ((!out && len) || cap < len)
		return -ENOBUFS;
	uint8_t nonce[SEAL_GCM_NONCE_LEN], tag[SEAL_GCM_TAG_LEN];
	b64_decode_range(t.payload, t.payload_len, 0, SEAL_GCM_NONCE_LEN,
			 nonce);
	b64_decode_range(t.payload, t.payload_len, t.raw_len - SEAL_GCM_TAG_LEN,
			 t.raw_len, tag);
	if (len)
		b64_decode_range(t.payload, t.payload_len, SEAL_GCM_NONCE_LEN,
				 SEAL_GCM_NONCE_LEN + len, out);
	return seal_gcm_open_detached(g, field, field_len, record, record_len,
				      nonce, out, len, tag, out, cap);
}

int seal_token_open_siv(struct seal_siv *s, const void *field,
			size_t field_len, const char *text, size_t text_len,
			uint8_t *out, size_t cap)
{
	struct seal_token t;
	int rc = token_for(text, text_len, SEAL_KIND_SIV, seal_siv_key_id(s),
			   &t);
	if (rc < 0)
		return rc;
	size_t len = t.raw_len - SEAL_SIV_TAG_LEN;
	if ((!out && len) || cap < len)
		return -ENOBUFS;
	uint8_t tag[SEAL_SIV_TAG_LEN];
	b64_decode_range(t.payload, t.payload_len, 0, SEAL_SIV_TAG_LEN, tag);
	if (len)
		b64_decode_range(t.payload, t.payload_len, SEAL_SIV_TAG_LEN,
				 t.raw_len, out);
	return seal_siv_open_detached(s, field, field_len, tag, out, len, out,
				      cap);
}

int seal_token_check_hash(struct seal_hash *h, const void *field,
			  size_t field_len, const uint8_t *in, size_t len,
			  const char *text, size_t text_len)
{
	struct seal_token t;
	int rc = token_for(text, text_len, SEAL_KIND_HASH, seal_hash_key_id(h),
			   &t);
	if (rc < 0)
		return rc;
	uint8_t want[SEAL_HASH_LEN], got[SEAL_HASH_LEN];
	b64_decode_range(t.payload, t.payload_len, 0, SEAL_HASH_LEN, want);
	rc = seal_hash_compute(h, field, field_len, in, len, got);
	if (rc < 0)
		return rc;
	return CRYPTO_memcmp(want, got, SEAL_HASH_LEN) == 0 ? 0 : -EBADMSG;
}

/* ---- errors ------------------------------------------------------------------------------ */

const char *seal_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -EINVAL:
		return "malformed token or invalid argument";
	case -EPROTONOSUPPORT:
		return "unsupported token version";
	case -EILSEQ:
		return "token payload is not strict unpadded base64url";
	case -ENODATA:
		return "truncated token or sealed value";
	case -EMSGSIZE:
		return "value or token too large";
	case -ENOKEY:
		return "token is of another kind or key id";
	case -EBADMSG:
		return "authentication failed (tampered, or bound to another "
		       "tenant, key, field or record)";
	case -ENOBUFS:
		return "output buffer too small";
	case -EKEYEXPIRED:
		return "nonce budget of this key context used up (rotate)";
	case -ENOTSUP:
		return "crypto backend not available";
	case -ERANGE:
		return "instance or worker id out of range for the nonce";
	case -EEXIST:
		return "nonce fixed field already used for this key in this "
		       "process (take a new lease)";
	case -ENOMEM:
		return "out of memory";
	case -EIO:
		return "crypto library error";
	}
	return "unknown error";
}
