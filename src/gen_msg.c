/* sealtap gen: what requests and responses say.
 *
 * Header lists, body sizes and bytes, gRPC framing, the h2c upgrade
 * request, and the alphabets behind --huffman off. No nghttp2 session
 * here: gen_h2.c submits what this file builds, and nghttp2 encodes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_priv.h"
#include "sealtap/common.h"

#define GRPC_MSG_MAX 16384   /* payload bytes per gRPC message */
#define GRPC_PREFIX 5        /* compressed flag + 32-bit length */
#define CHURN_REQ_HEADERS 4  /* --table-churn with --req-headers 0 */
#define CHURN_RESP_HEADERS 2
#define PATH_MAX_LEN 48
#define AUTHORITY "api.sealtap.test"

static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyz0123456789";
static const char TOKEN[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* --huffman off. nghttp2 1.52 has no switch for Huffman coding: its
 * deflater codes a string with Huffman exactly when that is shorter
 * (nghttp2_hd.c, emit_string). These alphabets hold only characters whose
 * Huffman code (RFC 7541 Appendix B) is 8 bits or longer, so strings made
 * of them never get shorter and go out as raw literals. Names and paths
 * start with a shorter-coded prefix ("x-", "/"); every character after it
 * is at least 11 (names) or 10 (paths) bits long, which pays the prefix
 * back from the first one on. tests/unit/test_gen.c checks all of this
 * against nghttp2's own deflater. */
static const char RAW_VALUE[] = "!\"#$&'()*+,;<>?@XZ[]^`{|}~";
static const char RAW_NAME[] = "#$^`|~";
static const char RAW_PATH[] = "!$'()+@~";
#define RAW_AUTHORITY "~~h2gen~~" /* 80 bits of Huffman for 9 bytes */

/* ---- bodies ---------------------------------------------------------- */

/* gRPC body of |payload| message bytes: messages of at most GRPC_MSG_MAX,
 * each behind a 5-byte prefix; an empty body is one empty message. */
static uint64_t grpc_framed_len(uint64_t payload)
{
	uint64_t nmsg = payload ? (payload + GRPC_MSG_MAX - 1) / GRPC_MSG_MAX
				: 1;
	return payload + nmsg * GRPC_PREFIX;
}

static void body_size(struct gen_msg *m, struct gen_body *b, uint64_t size)
{
	b->grpc = m->o->grpc;
	b->pattern = (uint32_t)gen_rng_below(m->rng, sizeof(ALNUM) - 1);
	b->grpc_payload = b->grpc ? size : 0;
	b->len = b->grpc ? grpc_framed_len(size) : size;
	b->off = 0;
}

static uint8_t body_byte(const struct gen_body *b, uint64_t off)
{
	uint8_t filler = (uint8_t)ALNUM[(b->pattern + off) % (sizeof(ALNUM) - 1)];
	if (!b->grpc)
		return filler;
	/* gRPC over HTTP/2: Length-Prefixed-Message = Compressed-Flag (1 byte,
	 * 0 here) Message-Length (4 bytes, big endian) Message. */
	uint64_t k = off / (GRPC_MSG_MAX + GRPC_PREFIX);
	uint64_t r = off % (GRPC_MSG_MAX + GRPC_PREFIX);
	if (r >= GRPC_PREFIX)
		return filler;
	if (r == 0)
		return 0;
	uint64_t len = ST_MIN((uint64_t)GRPC_MSG_MAX,
			      b->grpc_payload - k * GRPC_MSG_MAX);
	return (uint8_t)(len >> (8 * (4 - r)));
}

size_t gen_body_read(struct gen_body *b, uint8_t *dst, size_t cap)
{
	size_t n = (size_t)ST_MIN((uint64_t)cap, b->len - b->off);
	for (size_t i = 0; i < n; i++)
		dst[i] = body_byte(b, b->off + i);
	b->off += n;
	return n;
}

/* ---- header lists ------------------------------------------------------ */

static int hdrs_init(struct gen_hdrs *b, size_t fields, size_t bytes)
{
	memset(b, 0, sizeof(*b));
	b->nv = calloc(fields, sizeof(*b->nv));
	b->arena = malloc(bytes);
	b->cap = fields;
	b->size = bytes;
	if (!b->nv || !b->arena) {
		gen_hdrs_fini(b);
		return -ENOMEM;
	}
	return 0;
}

void gen_hdrs_fini(struct gen_hdrs *b)
{
	free(b->nv);
	free(b->arena);
	b->nv = NULL;
	b->arena = NULL;
}

/* Space for |n| bytes in the arena, or NULL (and the list marked as
 * overflowed) if the size given to hdrs_init() was short. */
static char *hdrs_alloc(struct gen_hdrs *b, size_t n)
{
	if (n > b->size - b->used) {
		b->overflow = true;
		return NULL;
	}
	char *p = b->arena + b->used;
	b->used += n;
	return p;
}

static void hdrs_add(struct gen_hdrs *b, const char *name, size_t nlen,
		     const char *value, size_t vlen)
{
	if (b->n == b->cap || !name || !value) {
		b->overflow = true;
		return;
	}
	b->nv[b->n++] = (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value,
				      nlen, vlen, NGHTTP2_NV_FLAG_NONE };
}

static void hdrs_lit(struct gen_hdrs *b, const char *name, const char *value)
{
	hdrs_add(b, name, strlen(name), value, strlen(value));
}

static void hdrs_num(struct gen_hdrs *b, const char *name, uint64_t v)
{
	char *p = hdrs_alloc(b, 24);
	if (p)
		snprintf(p, 24, "%" PRIu64, v);
	hdrs_add(b, name, strlen(name), p, p ? strlen(p) : 0);
}

/* Adds a header whose name and value are drawn now: --table-churn makes
 * every message insert new dynamic table entries (RFC 7541 §2.3.2), so
 * the table turns over. */
static void hdrs_churn(struct gen_msg *m, struct gen_hdrs *b, size_t vlen)
{
	bool raw = !m->o->huffman;
	size_t nlen = 2 + 1 + gen_rng_below(m->rng, raw ? 6 : 10);
	char *name = hdrs_alloc(b, nlen);
	char *value = hdrs_alloc(b, vlen);
	if (!name || !value)
		return;
	memcpy(name, "x-", 2);
	gen_rng_string(m->rng, name + 2, nlen - 2, raw ? RAW_NAME : ALNUM);
	gen_rng_string(m->rng, value, vlen, raw ? RAW_VALUE : TOKEN);
	hdrs_add(b, name, nlen, value, vlen);
}

static uint32_t extra_count(const struct gen_opts *o)
{
	return o->table_churn && !o->req_headers ? CHURN_REQ_HEADERS
						 : o->req_headers;
}

static void hdrs_extra(struct gen_msg *m, struct gen_hdrs *b)
{
	const struct gen_opts *o = m->o;
	for (uint32_t i = 0; i < extra_count(o); i++) {
		if (o->table_churn)
			hdrs_churn(m, b, o->header_size);
		else
			hdrs_add(b, m->fixed_names[i],
				 strlen(m->fixed_names[i]),
				 m->fixed_values + (size_t)i * o->header_size,
				 o->header_size);
	}
}

/* Arena bytes for one header list: extra headers plus the short strings
 * (path, numbers, churn names). */
static size_t hdrs_bytes(const struct gen_opts *o, uint32_t nextra)
{
	return (size_t)nextra * (o->header_size + 16) + 1024;
}

static int hdrs_done(struct gen_hdrs *b)
{
	if (!b->overflow)
		return 0;
	gen_hdrs_fini(b);
	return -ENOSPC;
}

/* ---- requests ---------------------------------------------------------- */

static bool method_has_body(const char *method)
{
	return !strcmp(method, "POST") || !strcmp(method, "PUT") ||
	       !strcmp(method, "PATCH");
}

static const char *pick_method(struct gen_msg *m)
{
	const struct gen_opts *o = m->o;
	if (o->grpc) /* gRPC over HTTP/2: requests are POST */
		return "POST";
	return o->methods[gen_rng_below(m->rng, o->nmethods)];
}

static const char *authority(const struct gen_msg *m)
{
	return m->o->huffman ? AUTHORITY : RAW_AUTHORITY;
}

static void random_path(struct gen_msg *m, char *p, size_t minlen,
			size_t span, const char *alphabet)
{
	size_t n = minlen + gen_rng_below(m->rng, span);
	p[0] = '/';
	gen_rng_string(m->rng, p + 1, n, alphabet);
	p[n + 1] = '\0';
}

static const char *make_path(struct gen_msg *m, struct gen_hdrs *b)
{
	char *p = hdrs_alloc(b, PATH_MAX_LEN);
	if (!p)
		return NULL;
	if (m->o->grpc)
		strcpy(p, "/sealtap.gen.v1.Echo/Call");
	else if (!m->o->huffman)
		random_path(m, p, 4, 12, RAW_PATH);
	else if (m->o->table_churn)
		random_path(m, p, 8, 16, ALNUM);
	else
		snprintf(p, PATH_MAX_LEN, "/api/v1/items/%" PRIu64,
			 gen_rng_below(m->rng, 100000));
	return p;
}

int gen_msg_request(struct gen_msg *m, struct gen_hdrs *b,
		    struct gen_body *body)
{
	const struct gen_opts *o = m->o;
	uint32_t nextra = extra_count(o);
	if (hdrs_init(b, nextra + 16, hdrs_bytes(o, nextra)) < 0)
		return -ENOMEM;
	const char *method = pick_method(m);
	bool has_body = o->grpc || method_has_body(method);
	body_size(m, body, has_body ? gen_rng_range(m->rng, &o->req_body) : 0);
	hdrs_lit(b, ":method", method);
	hdrs_lit(b, ":scheme", "http");
	hdrs_lit(b, ":authority", authority(m));
	const char *path = make_path(m, b);
	hdrs_add(b, ":path", 5, path, path ? strlen(path) : 0);
	if (o->grpc) {
		hdrs_lit(b, "content-type", "application/grpc");
		hdrs_lit(b, "te", "trailers");
	} else if (body->len) {
		hdrs_lit(b, "content-type", "application/octet-stream");
		hdrs_num(b, "content-length", body->len);
	}
	if (o->huffman) /* a fixed string that Huffman would shorten */
		hdrs_lit(b, "user-agent", "sealtap-gen/0.1");
	hdrs_extra(m, b);
	return hdrs_done(b);
}

/* RFC 4648 §5 base64url without padding, as HTTP2-Settings requires
 * (RFC 7540 §3.2.1). |out| holds 4 * ceil(n / 3) + 1 bytes. */
static void base64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[k++] = a[(v >> 18) & 63];
		out[k++] = a[(v >> 12) & 63];
		if (i + 1 < n)
			out[k++] = a[(v >> 6) & 63];
		if (i + 2 < n)
			out[k++] = a[v & 63];
	}
	out[k] = '\0';
}

int gen_msg_upgrade_request(struct gen_msg *m, const uint8_t *settings,
			    size_t len, struct gen_buf *out)
{
	char b64[4 * (GEN_SETTINGS_MAX + 2) / 3 + 1], text[512];
	struct gen_hdrs b;
	if (len > GEN_SETTINGS_MAX)
		return -EINVAL;
	if (hdrs_init(&b, 1, PATH_MAX_LEN) < 0)
		return -ENOMEM;
	base64url(settings, len, b64);
	const char *path = make_path(m, &b);
	/* RFC 7540 §3.2: a GET, so that no body has to cross the upgrade */
	int n = snprintf(text, sizeof(text),
			 "GET %s HTTP/1.1\r\nHost: %s\r\n"
			 "Connection: Upgrade, HTTP2-Settings\r\n"
			 "Upgrade: h2c\r\nHTTP2-Settings: %s\r\n"
			 "User-Agent: sealtap-gen/0.1\r\n\r\n",
			 path ? path : "/", authority(m), b64);
	gen_hdrs_fini(&b);
	return gen_buf_append(out, text, (size_t)n);
}

/* ---- responses --------------------------------------------------------- */

/* Mostly 200, a few errors so that records see more than one status. */
static const char *pick_status(struct gen_msg *m)
{
	uint64_t r = gen_rng_below(m->rng, 100);
	return r < 94 ? "200" : r < 98 ? "404" : "503";
}

int gen_msg_response(struct gen_msg *m, bool head, struct gen_hdrs *b,
		     struct gen_body *body)
{
	const struct gen_opts *o = m->o;
	uint32_t nextra = o->table_churn ? CHURN_RESP_HEADERS : 0;
	if (hdrs_init(b, nextra + 8, hdrs_bytes(o, nextra)) < 0)
		return -ENOMEM;
	uint64_t size = gen_rng_range(m->rng, &o->resp_body);
	if (o->grpc) {
		body_size(m, body, size);
		hdrs_lit(b, ":status", "200"); /* gRPC errors go in trailers */
		hdrs_lit(b, "content-type", "application/grpc");
	} else {
		/* RFC 9110 §9.3.2: HEAD gets the headers of a GET, no body */
		body_size(m, body, head ? 0 : size);
		hdrs_lit(b, ":status", pick_status(m));
		hdrs_lit(b, "content-type", "application/octet-stream");
		hdrs_num(b, "content-length", size);
	}
	if (o->huffman)
		hdrs_lit(b, "server", "sealtap-gen");
	for (uint32_t i = 0; i < nextra; i++)
		hdrs_churn(m, b, ST_MAX(o->header_size / 4, 8u));
	return hdrs_done(b);
}

size_t gen_msg_trailers(struct gen_msg *m, nghttp2_nv nv[2])
{
	/* mostly OK (0), a few UNAVAILABLE (14) */
	bool ok = gen_rng_below(m->rng, 100) < 97;
	nv[0] = (nghttp2_nv){ (uint8_t *)"grpc-status",
			      (uint8_t *)(ok ? "0" : "14"), 11, ok ? 1 : 2,
			      NGHTTP2_NV_FLAG_NONE };
	nv[1] = (nghttp2_nv){ (uint8_t *)"grpc-message",
			      (uint8_t *)"unavailable", 12, 11,
			      NGHTTP2_NV_FLAG_NONE };
	return ok ? 1 : 2;
}

/* ---- per connection ---------------------------------------------------- */

/* --req-headers without --table-churn: names and values drawn once per
 * connection, so after the first request they are dynamic table hits. */
static void fixed_name(const struct gen_opts *o, uint32_t i, char *name,
		       size_t size)
{
	if (o->huffman) {
		snprintf(name, size, "x-gen-%u", i);
		return;
	}
	/* i in base 6 over RAW_NAME: unique, raw-coded */
	size_t k = 2;
	memcpy(name, "x-", 2);
	for (uint32_t v = i; k == 2 || v; v /= 6)
		name[k++] = RAW_NAME[v % 6];
	name[k] = '\0';
}

int gen_msg_init(struct gen_msg *m, const struct gen_opts *o,
		 struct gen_rng *rng)
{
	memset(m, 0, sizeof(*m));
	m->o = o;
	m->rng = rng;
	if (o->table_churn || !o->req_headers)
		return 0;
	m->fixed_names = calloc(o->req_headers, sizeof(*m->fixed_names));
	m->fixed_values = malloc((size_t)o->req_headers * o->header_size + 1);
	if (!m->fixed_names || !m->fixed_values) {
		gen_msg_fini(m);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < o->req_headers; i++) {
		fixed_name(o, i, m->fixed_names[i], sizeof(*m->fixed_names));
		gen_rng_string(rng, m->fixed_values + (size_t)i * o->header_size,
			       o->header_size, o->huffman ? TOKEN : RAW_VALUE);
	}
	return 0;
}

void gen_msg_fini(struct gen_msg *m)
{
	free(m->fixed_names);
	free(m->fixed_values);
	m->fixed_names = NULL;
	m->fixed_values = NULL;
}
