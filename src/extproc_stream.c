/* ext_proc: one exchange (one gRPC stream = one HTTP request/response).
 * See extproc.h for the contract and docs/extproc.md for the behaviour.
 *
 * Each ProcessingRequest is decoded with protobuf-c into the thread's
 * arena (reset after every message, so decoding never touches the general
 * heap for small messages), checked against the phases seen so far, shown
 * to the decider, and answered with exactly one ProcessingResponse of the
 * matching type -- except in observability mode (never answered), after an
 * immediate_response (nothing more is answered), and for
 * FULL_DUPLEX_STREAMED bodies, which are answered with streamed_response
 * chunks as the data comes, holding back only what a cut token may be
 * part of: an unfinished gRPC frame, or the run of characters at the end
 * of text a detector hit could continue (the API lets the server buffer;
 * held so a credential split across two data chunks is seen whole, and
 * answered, guarded, when no data follows it for EXTPROC_FD_HOLD_NS).
 *
 * The decider (extproc.h) is asked about every header and body chunk;
 * before its first question about an exchange it is told the request's
 * routing attributes, gathered from the whole request header map first.
 *
 * Phase order (per direction, as the data plane sends them): headers,
 * body chunks, trailers; each step may be skipped by the processing mode,
 * none may go backwards. Request and response directions interleave
 * freely (a response may start while a streamed request body is still
 * flowing).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <protobuf-c/protobuf-c.h>

/* protoc-c's *__INIT macros leave the braces of oneof unions out */
#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"
#include "sealtap/extproc.h"
#include "sealtap/mem.h"
#include "sealtap/mem_secret.h"
#include "sealtap/policy.h"
#include "sealtap/record.h"

/* Short names for the generated types. */
#define PREQ Envoy__Service__ExtProc__V3__ProcessingRequest
#define PRESP Envoy__Service__ExtProc__V3__ProcessingResponse
#define HTTP_HEADERS Envoy__Service__ExtProc__V3__HttpHeaders
#define HTTP_BODY Envoy__Service__ExtProc__V3__HttpBody
#define HTTP_TRAILERS Envoy__Service__ExtProc__V3__HttpTrailers
#define HDR_MAP Envoy__Config__Core__V3__HeaderMap
#define HDR_VALUE Envoy__Config__Core__V3__HeaderValue
#define HDR_OPTION Envoy__Config__Core__V3__HeaderValueOption
#define HDR_MUTATION Envoy__Service__ExtProc__V3__HeaderMutation
#define COMMON_RESP Envoy__Service__ExtProc__V3__CommonResponse
#define HEADERS_RESP Envoy__Service__ExtProc__V3__HeadersResponse
#define BODY_RESP Envoy__Service__ExtProc__V3__BodyResponse
#define TRAILERS_RESP Envoy__Service__ExtProc__V3__TrailersResponse
#define BODY_MUTATION Envoy__Service__ExtProc__V3__BodyMutation
#define STREAMED_BODY Envoy__Service__ExtProc__V3__StreamedBodyResponse
#define IMMEDIATE Envoy__Service__ExtProc__V3__ImmediateResponse
#define HTTP_STATUS Envoy__Type__V3__HttpStatus

#define REQ_CASE(x) ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_##x
#define RESP_CASE(x) ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__RESPONSE_##x

/* FULL_DUPLEX_STREAMED: the largest chunk sent (the API recommends at most
 * 64 KiB), and what text made of one run of token characters longer than
 * the guard (bulk data: base64) gathers before it is answered. */
#define FD_CHUNK (64u * 1024)
/* Longest JSON of a pseudo-header value kept apart for the record's
 * method/scheme/authority/path (the header list has it anyway). */
#define PSEUDO_MAX 8192
/* Bytes of a content-type kept (the policy reads its media type). */
#define CTYPE_MAX 128
/* Protobuf bodies in STREAMED and FULL_DUPLEX_STREAMED modes: the longest
 * incomplete gRPC frame (or unframed message) held back until the rest of
 * it comes, so the policy sees whole messages and can put tokens into
 * them. A longer one is decided as far as it came (the cut is unscanned)
 * and what follows of it is unreadable (pb_rest). */
#define GRPC_HOLD_MAX (1u << 20)
#define PB_REST_ALL UINT64_MAX

/* Body send modes (ProcessingMode.BodySendMode). */
enum {
	MODE_NONE = 0,
	MODE_STREAMED = 1,
	MODE_BUFFERED = 2,
	MODE_BUFFERED_PARTIAL = 3,
	MODE_FULL_DUPLEX = 4,
	MODE_GRPC = 5,
	MODE_UNKNOWN = 255, /* no protocol_config seen */
};

static const char *mode_name(unsigned m)
{
	static const char *const names[] = { "NONE", "STREAMED", "BUFFERED",
					     "BUFFERED_PARTIAL",
					     "FULL_DUPLEX_STREAMED", "GRPC" };
	return m < ST_ARRAY_SIZE(names) ? names[m] : NULL;
}

/* Phases of one direction. */
enum { PH_NONE = 0, PH_HEADERS, PH_BODY, PH_TRAILERS };

/* Anomalies (bit -> name in the record). */
enum {
	A_PROTOCOL = 1u << 0,     /* the stream ended with a gRPC error */
	A_TOO_BIG = 1u << 1,      /* header fields left out at the cap */
	A_RECORD_BIG = 1u << 2,   /* record over max_record: lists left out */
	A_UNKNOWN_FIELDS = 1u << 3,
	A_GRPC_FRAME_CUT = 1u << 4, /* a STREAMED protobuf body ended inside
				       what was held */
	A_OVERRIDE_IGNORED = 1u << 5, /* the route reads bodies its modes do
					 not send, and the data plane would
					 ignore a mode_override */
	A_ENCODED = 1u << 6, /* a body with a content-encoding (unscanned) */
};
static const char *const anomaly_names[] = {
	"protocol_error", "header_block_too_big", "record_too_big",
	"unknown_fields", "grpc_frame_cut", "mode_override_ignored",
	"body_encoded",
};

struct side {
	struct extproc_buf hdrs;     /* JSON "[n,v],[n,v]" */
	struct extproc_buf trailers; /* same */
	uint64_t body_bytes;
	uint64_t body_shown; /* body bytes shown to the decider */
	uint8_t phase;
	uint8_t body_mode;
	uint8_t said_mode; /* the body mode the data plane announced (body_mode
			      may be what a mode_override asked for) */
	bool body_eos;   /* end_of_stream seen (headers or body) */
	bool body_whole; /* a BUFFERED body without end_of_stream was taken
			    as whole (trailers follow): no more body */
	bool any_hdrs;   /* a header list was received */
	bool has_clen;   /* its headers carry content-length */
	bool encoded;    /* ... a content-encoding other than identity */
	bool wide;       /* its text is UTF-16/32: a charset naming it, or a
			    byte order mark at the body's start */
	uint8_t nctype;
	uint8_t ctype[CTYPE_MAX]; /* its content-type, first copy, cut */
	struct extproc_buf pending; /* body not answered yet: FULL_DUPLEX
				       chunks gathered, or the incomplete
				       gRPC frame (protobuf message) a
				       STREAMED chunk ended in */
	uint64_t pb_rest; /* protobuf bodies: bytes still to come of a frame
			     passed on unfinished (PB_REST_ALL: the rest of
			     the body cannot be read) */
	uint64_t held_ns; /* FULL_DUPLEX: since when |pending| holds bytes
			     already received (0: none), for
			     extproc_xchg_tick() */
};

struct extproc_xchg {
	struct extproc_xchg_info info;
	char peer[64];
	struct side side[2]; /* 0 request, 1 response */
	/* JSON strings (quoted) of the request pseudo-headers, or empty */
	struct extproc_buf method, scheme, authority, path;
	struct extproc_buf client, server; /* from attributes, quoted */
	int status; /* response :status, -1 unknown */
	uint32_t messages, replies, mutations;
	uint32_t anomalies;
	uint32_t deny_status;
	const char *deny_rule; /* the policy's rule name */
	bool observability;
	bool overridden; /* a mode_override was sent: the body modes are what
			    sealtap asked for, which the data plane applies
			    only with allow_mode_override */
	bool done;  /* immediate_response sent */
	bool begun; /* the decider was told the exchange's route */
	bool no_wait;  /* protocol_config: bodies sent without waiting for the
			  headers reply (Envoy then ignores mode_override) */
	bool in_value; /* the data plane sends header values in `value`
			  (Envoy with send_header_raw_value off), and then
			  reads only that field of a mutation: ours go there */
	struct extproc_xdec xd;
	uint64_t last_ns;
};

/* ---- buffers ---------------------------------------------------------- */

bool extproc_buf_reserve(struct extproc_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return true;
	size_t want = b->cap ? b->cap : 256;
	while (want - b->len < n) {
		if (want > SIZE_MAX / 2)
			return false;
		want *= 2;
	}
	/* Secret memory: these buffers hold request and response bytes
	 * (gRPC messages, bodies, header values) in plaintext; not dumped,
	 * wiped when freed or moved. */
	uint8_t *p = mem_secret_realloc(b->p, want);
	if (!p)
		return false;
	b->p = p;
	b->cap = want;
	return true;
}

bool extproc_buf_put(struct extproc_buf *b, const void *s, size_t n)
{
	if (!n)
		return true;
	if (!extproc_buf_reserve(b, n))
		return false;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return true;
}

void extproc_buf_sent(struct extproc_buf *b, size_t *off)
{
	if (*off == b->len) {
		b->len = *off = 0;
	} else if (*off >= b->len / 2) {
		memmove(b->p, b->p + *off, b->len - *off);
		b->len -= *off;
		*off = 0;
	}
}

void extproc_buf_free(struct extproc_buf *b)
{
	mem_secret_free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static bool buf_puts(struct extproc_buf *b, const char *s)
{
	return extproc_buf_put(b, s, strlen(s));
}

static bool buf_printf(struct extproc_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static bool buf_printf(struct extproc_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	return extproc_buf_put(b, tmp, (size_t)n);
}

/* Decimal |v| without printf (records are built per exchange: printf's
 * format parsing showed in profiles). */
static bool buf_u64(struct extproc_buf *b, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return extproc_buf_put(b, tmp + sizeof(tmp) - n, (size_t)n);
}

static bool buf_lit(struct extproc_buf *b, const char *s, size_t n)
{
	return extproc_buf_put(b, s, n);
}
#define BUF_LIT(b, s) buf_lit((b), (s), sizeof(s) - 1)

/* Appends |s| as a JSON string with the records' escaping
 * (record_buf_str: every non-printable byte as \u00XX). */
static bool buf_json_str(struct extproc_buf *b, const uint8_t *s, size_t len)
{
	if (len > UINT32_MAX / 8 || !extproc_buf_reserve(b, 6 * len + 2))
		return false;
	struct record_buf rb = { .p = (char *)b->p + b->len, .len = 0,
				 .cap = (uint32_t)(b->cap - b->len) };
	record_buf_str(&rb, s, (uint32_t)len);
	b->len += rb.len;
	return !rb.overflow;
}

/* ---- arena for protobuf-c --------------------------------------------- */

struct big {
	struct big *next;
	max_align_t data[];
};

struct extproc_arena {
	ProtobufCAllocator alloc;
	uint8_t *base;
	size_t size, used;
	struct big *bigs;
};

static void *arena_alloc(void *u, size_t n)
{
	struct extproc_arena *a = u;
	n = (n + 15) & ~(size_t)15;
	if (a->size - a->used >= n) {
		void *p = a->base + a->used;
		a->used += n;
		return p;
	}
	/* Large or overflowing: from the heap, freed at reset. */
	if (n > SIZE_MAX - sizeof(struct big))
		return NULL;
	struct big *b = mem_secret_alloc(sizeof(*b) + n);
	if (!b)
		return NULL;
	b->next = a->bigs;
	a->bigs = b;
	return b->data;
}

static void arena_free(void *u, void *p)
{
	/* Everything goes at once in extproc_arena_reset(). */
	(void)u;
	(void)p;
}

struct extproc_arena *extproc_arena_new(size_t block)
{
	struct extproc_arena *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	/* Decoded messages (header values, bodies) live here: not
	 * dumped (mem.h). */
	a->base = mem_nodump_alloc(block);
	if (!a->base) {
		free(a);
		return NULL;
	}
	a->size = block;
	a->alloc.alloc = arena_alloc;
	a->alloc.free = arena_free;
	a->alloc.allocator_data = a;
	return a;
}

void extproc_arena_reset(struct extproc_arena *a)
{
	while (a->bigs) {
		struct big *b = a->bigs;
		a->bigs = b->next;
		mem_secret_free(b);
	}
	a->used = 0;
}

void extproc_arena_free(struct extproc_arena *a)
{
	if (!a)
		return;
	extproc_arena_reset(a);
	mem_nodump_free(a->base, a->size);
	free(a);
}

void *extproc_arena_allocator(struct extproc_arena *a)
{
	return &a->alloc;
}

static void *anew(struct extproc_ctx *ctx, size_t n)
{
	void *p = arena_alloc(ctx->arena, n);
	if (p)
		memset(p, 0, n);
	return p;
}

/* ---- counters --------------------------------------------------------- */

static const char *const ctr_names[] = {
#define EXTPROC_CTR_NAME(name, help) #name,
	EXTPROC_COUNTER_LIST(EXTPROC_CTR_NAME)
#undef EXTPROC_CTR_NAME
};
static const char *const ctr_helps[] = {
#define EXTPROC_CTR_HELP(name, help) help,
	EXTPROC_COUNTER_LIST(EXTPROC_CTR_HELP)
#undef EXTPROC_CTR_HELP
};

const char *extproc_counter_name(enum extproc_counter id)
{
	return (unsigned)id < EXTPROC_CTR__COUNT ? ctr_names[id] : "?";
}

void extproc_counters_sum(struct extproc_counters *dst,
			  const struct extproc_counters *src)
{
	/* |src| may be a live worker's (SIGUSR1) */
	for (unsigned i = 0; i < EXTPROC_CTR__COUNT; i++)
		dst->v[i] += st_ctr_get(&src->v[i]);
	for (unsigned i = 0; i < EXTPROC_HIST_BUCKETS; i++)
		dst->lat[i] += st_ctr_get(&src->lat[i]);
	counters_sum(&dst->seal, &src->seal);
}

void extproc_counters_lat(struct extproc_counters *c, uint64_t ns)
{
	unsigned b = ns ? 63 - (unsigned)__builtin_clzll(ns) : 0;
	st_ctr_add(&c->lat[b < EXTPROC_HIST_BUCKETS ? b
						     : EXTPROC_HIST_BUCKETS - 1],
		   1);
}

uint64_t extproc_counters_quantile(const struct extproc_counters *c, double q)
{
	uint64_t total = 0, seen = 0;
	for (unsigned i = 0; i < EXTPROC_HIST_BUCKETS; i++)
		total += c->lat[i];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)(q * (double)total);
	if (want >= total)
		want = total - 1;
	for (unsigned i = 0; i < EXTPROC_HIST_BUCKETS; i++) {
		seen += c->lat[i];
		if (seen > want)
			return 2ull << i; /* upper edge of [2^i, 2^(i+1)) */
	}
	return 0;
}

void extproc_counters_write_json(FILE *out, const struct extproc_counters *c)
{
	const char *sep = "";
	fputc('{', out);
	for (unsigned i = 0; i < EXTPROC_CTR__COUNT; i++) {
		if (!c->v[i])
			continue;
		fprintf(out, "%s\"%s\":%llu", sep, ctr_names[i],
			(unsigned long long)c->v[i]);
		sep = ",";
	}
	for (unsigned i = 0; i < ST_CTR__COUNT; i++) {
		if (!c->seal.v[i])
			continue;
		fprintf(out, "%s\"%s\":%llu", sep,
			counters_name((enum st_counter)i),
			(unsigned long long)c->seal.v[i]);
		sep = ",";
	}
	fprintf(out, "%s\"latency_ns\":{\"p50\":%llu,\"p99\":%llu,"
		"\"p999\":%llu,\"buckets\":[", sep,
		(unsigned long long)extproc_counters_quantile(c, 0.5),
		(unsigned long long)extproc_counters_quantile(c, 0.99),
		(unsigned long long)extproc_counters_quantile(c, 0.999));
	for (unsigned i = 0; i < EXTPROC_HIST_BUCKETS; i++)
		fprintf(out, "%s%llu", i ? "," : "",
			(unsigned long long)c->lat[i]);
	fputs("]}}", out);
}

void extproc_write_summary(FILE *out, const char *who,
			   const struct extproc_counters *c, double wall_s)
{
	const uint64_t *v = c->v;
	fprintf(out, "%s: %llu connections, %llu streams (%llu ext_proc, "
		"%llu health), %llu messages, %llu replies, %llu mutations, "
		"%llu denials, %llu stream errors, %llu records in %.1f s\n",
		who, (unsigned long long)v[EXTPROC_CTR_conns_accepted],
		(unsigned long long)v[EXTPROC_CTR_streams_opened],
		(unsigned long long)v[EXTPROC_CTR_streams_process],
		(unsigned long long)v[EXTPROC_CTR_streams_health],
		(unsigned long long)v[EXTPROC_CTR_msgs],
		(unsigned long long)v[EXTPROC_CTR_replies],
		(unsigned long long)(v[EXTPROC_CTR_mutations_replaced] +
				     v[EXTPROC_CTR_mutations_removed] +
				     v[EXTPROC_CTR_mutations_added] +
				     v[EXTPROC_CTR_mutations_body]),
		(unsigned long long)v[EXTPROC_CTR_denials],
		(unsigned long long)v[EXTPROC_CTR_streams_error],
		(unsigned long long)v[EXTPROC_CTR_records], wall_s);
}

void extproc_counters_write_text(FILE *out, const struct extproc_counters *c)
{
	for (unsigned i = 0; i < EXTPROC_CTR__COUNT; i++)
		if (c->v[i])
			fprintf(out, "%-28s %14llu  # %s\n", ctr_names[i],
				(unsigned long long)c->v[i], ctr_helps[i]);
	for (unsigned i = 0; i < ST_CTR__COUNT; i++)
		if (c->seal.v[i])
			fprintf(out, "%-28s %14llu  # %s\n",
				counters_name((enum st_counter)i),
				(unsigned long long)c->seal.v[i],
				counters_help((enum st_counter)i));
	fprintf(out, "%-28s %14llu  # message latency p50 (ns, bucket edge)\n",
		"latency_p50_ns",
		(unsigned long long)extproc_counters_quantile(c, 0.5));
	fprintf(out, "%-28s %14llu  # message latency p99 (ns, bucket edge)\n",
		"latency_p99_ns",
		(unsigned long long)extproc_counters_quantile(c, 0.99));
}

/* ---- exchange life ---------------------------------------------------- */

struct extproc_xchg *extproc_xchg_new(const struct extproc_xchg_info *info)
{
	struct extproc_xchg *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->info = *info;
	snprintf(x->peer, sizeof(x->peer), "%s", info->peer ? info->peer : "");
	x->info.peer = x->peer;
	x->status = -1;
	x->side[0].body_mode = x->side[1].body_mode = MODE_UNKNOWN;
	x->side[0].said_mode = x->side[1].said_mode = MODE_UNKNOWN;
	x->last_ns = info->start_ns;
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++)
		x->xd.record_id[i] = hex[(info->id >> (60 - 4 * i)) & 15];
	return x;
}

void extproc_xchg_free(struct extproc_xchg *x)
{
	if (!x)
		return;
	for (int d = 0; d < 2; d++) {
		extproc_buf_free(&x->side[d].hdrs);
		extproc_buf_free(&x->side[d].trailers);
		extproc_buf_free(&x->side[d].pending);
	}
	extproc_buf_free(&x->method);
	extproc_buf_free(&x->scheme);
	extproc_buf_free(&x->authority);
	extproc_buf_free(&x->path);
	extproc_buf_free(&x->client);
	extproc_buf_free(&x->server);
	extproc_buf_free(&x->xd.applied);
	extproc_buf_free(&x->xd.findings[0]);
	extproc_buf_free(&x->xd.findings[1]);
	extproc_buf_free(&x->xd.body_state[0]);
	extproc_buf_free(&x->xd.body_state[1]);
	extproc_buf_free(&x->xd.body_tail[0]);
	extproc_buf_free(&x->xd.body_tail[1]);
	free(x);
}

bool extproc_xchg_done(const struct extproc_xchg *x)
{
	return x->done;
}

void extproc_xchg_rejected_message(struct extproc_xchg *x)
{
	x->messages++;
}

/* ---- replies ---------------------------------------------------------- */

/* Packs |r| as one gRPC message (5-byte prefix, uncompressed) onto |out|. */
static int emit(struct extproc_xchg *x, struct extproc_ctx *ctx, PRESP *r,
		struct extproc_buf *out, const char **why)
{
	size_t n = envoy__service__ext_proc__v3__processing_response__get_packed_size(r);
	if (n > UINT32_MAX || !extproc_buf_reserve(out, 5 + n)) {
		*why = "out of memory for a reply";
		return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
	}
	uint8_t *p = out->p + out->len;
	p[0] = 0; /* not compressed */
	p[1] = (uint8_t)(n >> 24);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 8);
	p[4] = (uint8_t)n;
	envoy__service__ext_proc__v3__processing_response__pack(r, p + 5);
	out->len += 5 + n;
	x->replies++;
	EXTPROC_INC(ctx->ctr, replies);
	return 0;
}

static int reply_immediate(struct extproc_xchg *x, struct extproc_ctx *ctx,
			   const struct extproc_decision *d,
			   struct extproc_buf *out, const char **why)
{
	PRESP r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
	IMMEDIATE im = ENVOY__SERVICE__EXT_PROC__V3__IMMEDIATE_RESPONSE__INIT;
	HTTP_STATUS st = ENVOY__TYPE__V3__HTTP_STATUS__INIT;
	st.code = (Envoy__Type__V3__StatusCode)(d->status ? d->status : 403);
	im.status = &st;
	if (d->body) {
		im.body.data = (uint8_t *)d->body;
		im.body.len = strlen(d->body);
	}
	im.details = (char *)(d->details ? d->details : "sealtap_denied");
	r.response_case = RESP_CASE(IMMEDIATE_RESPONSE);
	r.immediate_response = &im;
	if (!x->deny_status) { /* the record keeps the first denial */
		x->deny_status = st.code;
		x->deny_rule = d->rule;
	}
	EXTPROC_INC(ctx->ctr, denials);
	/* In observability mode the data plane acts on no reply: the
	 * exchange goes on, so its later messages are still processed and
	 * recorded (the record says it would have been denied). */
	if (x->observability)
		return 0;
	x->done = true;
	EXTPROC_INC(ctx->ctr, immediate_responses);
	return emit(x, ctx, &r, out, why);
}

/* ---- header maps ------------------------------------------------------ */

/* A header mutation being built in the arena. */
struct hmut {
	HDR_OPTION **set;
	size_t nset, capset;
	char **remove;
	size_t nremove, capremove;
	bool in_value; /* values in `value`, not raw_value (xchg.in_value) */
	bool nomem;
};

static bool grow(struct extproc_ctx *ctx, void ***arr, size_t *cap, size_t n)
{
	if (n < *cap)
		return true;
	size_t nc = *cap ? *cap * 2 : 8;
	void **na = arena_alloc(ctx->arena, nc * sizeof(void *));
	if (!na)
		return false;
	if (*cap)
		memcpy(na, *arr, *cap * sizeof(void *));
	*arr = na;
	*cap = nc;
	return true;
}

static char *astrndup(struct extproc_ctx *ctx, const void *s, size_t n)
{
	char *p = arena_alloc(ctx->arena, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* The deprecated `append` flag, which Envoy's ext_proc filter reads
 * instead of append_action (unset means false: every option of a name
 * would overwrite the one before, and only the last line would stay).
 * Shared by every reply, never freed: replies live in the stream's
 * arena and are packed, not freed through protobuf-c. */
static Sealtap__Wkt__BoolValue append_no = SEALTAP__WKT__BOOL_VALUE__INIT;
static Sealtap__Wkt__BoolValue append_yes = {
	PROTOBUF_C_MESSAGE_INIT(&sealtap__wkt__bool_value__descriptor), 1
};

/* Adds "set |name| to |value|" (in raw_value, or in value only for a data
 * plane that sends its headers that way): overwriting every line
 * the data plane has under that name, or, with |append|, adding a line
 * after those an earlier option of this mutation set. Both ways of
 * saying so are set: append_action (the API's current field, gRPC's
 * ext_proc) and append (Envoy's). */
static void hmut_add(struct extproc_ctx *ctx, struct hmut *m,
		     const uint8_t *name, size_t nl, const uint8_t *value,
		     size_t vl, bool append)
{
	HDR_OPTION *o = anew(ctx, sizeof(*o));
	HDR_VALUE *hv = anew(ctx, sizeof(*hv));
	char *k = astrndup(ctx, name, nl);
	/* in value: the data plane's values were UTF-8 (a proto3 string)
	 * and tokens are ASCII, so the string stays valid */
	char *v = astrndup(ctx, value, vl);
	if (!o || !hv || !k || !v ||
	    !grow(ctx, (void ***)&m->set, &m->capset, m->nset)) {
		m->nomem = true;
		return;
	}
	envoy__config__core__v3__header_value_option__init(o);
	envoy__config__core__v3__header_value__init(hv);
	hv->key = k;
	if (m->in_value && policy_is_text(value, vl)) {
		/* (a line that is not UTF-8 cannot be a proto3 string: it
		 * goes in raw_value, which such a data plane sent it in) */
		hv->value = v;
	} else {
		hv->raw_value.data = (uint8_t *)v;
		hv->raw_value.len = vl;
	}
	o->header = hv;
	o->append_action =
		append ? ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD
		       : ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD;
	o->append = append ? &append_yes : &append_no;
	o->keep_empty_value = vl == 0;
	m->set[m->nset++] = o;
}

/* hmut_add for one header of our own (the request id, a BUFFERED body's
 * content-length): it overwrites every line of that name, so lines the
 * walk set for it (a client-sent copy the policy changed) are dropped
 * first; appended after them, ours would come second and the client's
 * first, which a backend reading the first line would take. One scan of
 * the options, so only for a single call per message. */
static void hmut_set(struct extproc_ctx *ctx, struct hmut *m,
		     const uint8_t *name, size_t nl, const uint8_t *value,
		     size_t vl)
{
	size_t k = 0;
	for (size_t i = 0; i < m->nset; i++) {
		const char *key = m->set[i]->header->key;
		if (strlen(key) != nl || strncasecmp(key, (const char *)name, nl))
			m->set[k++] = m->set[i];
	}
	m->nset = k;
	hmut_add(ctx, m, name, nl, value, vl, false);
}

/* Adds |name| to remove_headers: every line of it goes. The caller asks
 * once per name. */
static void hmut_remove(struct extproc_ctx *ctx, struct hmut *m,
			const uint8_t *name, size_t nl)
{
	char *k = astrndup(ctx, name, nl);
	if (!k || !grow(ctx, (void ***)&m->remove, &m->capremove, m->nremove)) {
		m->nomem = true;
		return;
	}
	m->remove[m->nremove++] = k;
}

static HDR_MUTATION *hmut_finish(struct extproc_ctx *ctx, struct hmut *m)
{
	if (!m->nset && !m->nremove)
		return NULL;
	HDR_MUTATION *hm = anew(ctx, sizeof(*hm));
	if (!hm) {
		m->nomem = true;
		return NULL;
	}
	envoy__service__ext_proc__v3__header_mutation__init(hm);
	hm->set_headers = m->set;
	hm->n_set_headers = m->nset;
	hm->remove_headers = m->remove;
	hm->n_remove_headers = m->nremove;
	return hm;
}

bool extproc_header_protected(const uint8_t *name, size_t nlen)
{
	if (nlen == 0 || name[0] == ':')
		return true;
	if (nlen == 4 && !strncasecmp((const char *)name, "host", 4))
		return true;
	return nlen >= 8 && strncasecmp((const char *)name, "x-envoy-", 8) == 0;
}

/* HTTP/2 header names are lowercase (RFC 9113 §8.2.1): pseudo-headers
 * are matched exactly. */
static bool is_name(const uint8_t *n, size_t nl, const char *lit)
{
	return strlen(lit) == nl && !memcmp(n, lit, nl);
}

/* Regular fields in any case, as the policy matches them: a data plane
 * that sent "Content-Type" must not get its JSON scanned as text. */
static bool is_field(const uint8_t *n, size_t nl, const char *lit)
{
	return strlen(lit) == nl && !strncasecmp((const char *)n, lit, nl);
}

/* Name and value of a field: raw_value, or value when only that is set. */
static void field_of(const HDR_VALUE *hv, const uint8_t **name, size_t *nl,
		     const uint8_t **val, size_t *vl)
{
	*name = (const uint8_t *)(hv->key ? hv->key : "");
	*nl = strlen((const char *)*name);
	if (hv->raw_value.len || !hv->value) {
		*val = hv->raw_value.data ? hv->raw_value.data
					  : (const uint8_t *)"";
		*vl = hv->raw_value.len;
	} else {
		*val = (const uint8_t *)hv->value;
		*vl = strlen(hv->value);
	}
}

/* A body mode as the data plane announced it; NONE when it did not. */
static enum extproc_body_mode announced(uint8_t m)
{
	return m <= MODE_GRPC ? (enum extproc_body_mode)m : EXTPROC_BODY_NONE;
}

/* Tells the decider, once per exchange, what the exchange is: the
 * routing attributes of the request header map |map| (first copies;
 * host stands in for a missing :authority), or none (NULL: the request
 * headers never came). Returns true with |mo| filled when the decider
 * wants a mode_override. */
static bool begin(struct extproc_xchg *x, struct extproc_ctx *ctx,
		  const HDR_MAP *map, struct extproc_mode *mo)
{
	if (x->begun)
		return false;
	x->begun = true;
	struct policy_request rq = { 0 };
	const uint8_t *host = NULL;
	size_t hl = 0;
	for (size_t i = 0; map && i < map->n_headers; i++) {
		const uint8_t *n, *v;
		size_t nl, vl;
		if (!map->headers[i])
			continue;
		field_of(map->headers[i], &n, &nl, &v, &vl);
		if (is_name(n, nl, ":authority") && !rq.authority) {
			rq.authority = v;
			rq.authority_len = vl;
		} else if (is_field(n, nl, "host") && !host) {
			host = v;
			hl = vl;
		} else if (is_name(n, nl, ":path") && !rq.path) {
			rq.path = v;
			rq.path_len = vl;
		} else if (is_name(n, nl, ":method") && !rq.method) {
			rq.method = v;
			rq.method_len = vl;
		} else if (is_field(n, nl, "content-type") && !rq.content_type) {
			rq.content_type = v;
			rq.content_type_len = vl;
		}
	}
	if (!rq.authority) {
		rq.authority = host;
		rq.authority_len = hl;
	}
	mo->request_body = announced(x->side[0].body_mode);
	mo->response_body = announced(x->side[1].body_mode);
	x->xd.notes = ctx->records;
	return ctx->decider.ops->begin(ctx->decider.self, &x->xd, &rq, mo);
}

/* Whether a content-encoding value names no coding but identity (RFC
 * 9110 8.4: a list; blanks around; case-insensitive), or aws-chunked: S3's
 * signed chunk framing of a plain payload, not a compression. */
static bool identity_only(const uint8_t *v, size_t vl)
{
	size_t i = 0;
	while (i < vl) {
		while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t b = i;
		while (i < vl && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i > b &&
		    !(i - b == 8 && !strncasecmp((const char *)v + b, "identity", 8)) &&
		    !(i - b == 11 && !strncasecmp((const char *)v + b, "aws-chunked", 11)))
			return false;
	}
	return true;
}

/* What a body's decisions need from its side's headers. */
static void note_entity(struct side *s, const uint8_t *n, size_t nl,
			const uint8_t *v, size_t vl)
{
	if (is_field(n, nl, "content-length"))
		s->has_clen = true;
	if (is_field(n, nl, "content-encoding") && !identity_only(v, vl))
		s->encoded = true;
	if (is_field(n, nl, "content-type") && !s->nctype && vl) {
		/* from the whole value: the copy is cut at CTYPE_MAX */
		s->wide = policy_ctype_wide(v, vl);
		s->nctype = (uint8_t)(vl < CTYPE_MAX ? vl : CTYPE_MAX);
		memcpy(s->ctype, v, s->nctype);
	}
}

/* One field of a header map as the walk decided it. A header mutation
 * acts on every line of a name at once (set overwrites them all, remove
 * drops them all), so a name with a changed line is rewritten as a whole:
 * the fields of such a name form a list (|next|) headed by its first
 * field (|head|), which also holds what the group needs. */
#define HF_NONE UINT32_MAX
struct hfield {
	const uint8_t *name, *val, *repl; /* repl: the decider's value */
	size_t nl, vl, rl;
	uint32_t head, next, tail; /* head: HF_NONE until grouped */
	uint8_t verdict;
	bool change;      /* replaced or removed, and not protected */
	bool emitted;     /* head: its mutation is built */
	bool all_removed; /* head: every line of the name is removed */
};

static bool same_name(const struct hfield *a, const struct hfield *b)
{
	return a->nl == b->nl &&
	       !strncasecmp((const char *)a->name, (const char *)b->name, a->nl);
}

/* Adds field |i| to the group headed by |h| (|h| == |i| starts it). */
static void group_join(struct hfield *f, uint32_t h, uint32_t i)
{
	f[i].head = h;
	f[i].next = HF_NONE;
	if (h == i) {
		f[i].tail = i;
		f[i].emitted = false;
		f[i].all_removed = true;
	} else {
		f[f[h].tail].next = i;
		f[h].tail = i;
	}
	if (f[i].verdict != EXTPROC_REMOVE)
		f[h].all_removed = false;
}

/* Groups every field by name through a hash table of 2n slots from the
 * arena: O(n) for a map with many changed names, where a scan per name
 * would be O(n^2). False when out of memory. */
static bool group_all(struct extproc_ctx *ctx, struct hfield *f, uint32_t n)
{
	uint32_t size = 16;
	while (size < 2 * n)
		size *= 2;
	uint32_t *slot = arena_alloc(ctx->arena, size * sizeof(*slot));
	if (!slot)
		return false;
	memset(slot, 0xff, size * sizeof(*slot));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = st_name_hash(f[i].name, f[i].nl, 1) & (size - 1);
		while (slot[k] != HF_NONE && !same_name(&f[slot[k]], &f[i]))
			k = (k + 1) & (size - 1);
		if (slot[k] == HF_NONE)
			slot[k] = i;
		group_join(f, slot[k], i);
	}
	return true;
}

/* Groups the fields of |i|'s name by one scan of the map: the usual
 * case, a few changed names among a few dozen fields. */
static void group_one(struct hfield *f, uint32_t n, uint32_t i)
{
	uint32_t h = HF_NONE;
	for (uint32_t j = 0; j < n; j++) {
		if (j != i && !same_name(&f[j], &f[i]))
			continue;
		if (h == HF_NONE)
			h = j;
		group_join(f, h, j);
	}
}

/* The mutation for one name with a changed line: remove it if every line
 * goes; else set its lines again in their order, replaced values in their
 * new form and the lines the policy kept as they were, so no kept line is
 * lost to the overwrite. */
static void mutate_name(struct extproc_xchg *x, struct extproc_ctx *ctx,
			struct hmut *m, struct hfield *f, uint32_t head)
{
	struct hfield *h = &f[head];
	h->emitted = true;
	if (h->all_removed) {
		hmut_remove(ctx, m, h->name, h->nl);
		for (uint32_t j = head; j != HF_NONE; j = f[j].next) {
			EXTPROC_INC(ctx->ctr, mutations_removed);
			x->mutations++;
		}
		return;
	}
	bool append = false;
	for (uint32_t j = head; j != HF_NONE; j = f[j].next) {
		const struct hfield *e = &f[j];
		if (e->verdict == EXTPROC_REMOVE) {
			EXTPROC_INC(ctx->ctr, mutations_removed);
			x->mutations++;
			continue;
		}
		bool repl = e->verdict == EXTPROC_REPLACE;
		hmut_add(ctx, m, e->name, e->nl, repl ? e->repl : e->val,
			 repl ? e->rl : e->vl, append);
		append = true;
		if (repl) {
			EXTPROC_INC(ctx->ctr, mutations_replaced);
			x->mutations++;
		}
	}
}

/* Builds the header mutation from the walk's verdicts (|nchange| fields
 * changed): one per name, in the order of each name's first changed
 * line. */
#define GROUP_SCAN_MAX 8 /* changed fields grouped by scans, not hashing */
static void mutate_fields(struct extproc_xchg *x, struct extproc_ctx *ctx,
			  struct hmut *m, struct hfield *f, uint32_t n,
			  uint32_t nchange)
{
	bool hashed = nchange > GROUP_SCAN_MAX;
	if (hashed && !group_all(ctx, f, n)) {
		m->nomem = true;
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!f[i].change)
			continue;
		if (f[i].head == HF_NONE)
			group_one(f, n, i);
		if (!f[f[i].head].emitted)
			mutate_name(x, ctx, m, f, f[i].head);
	}
}

/* Keeps the first request pseudo-header value (its record JSON |j|, |jl|
 * bytes) for the record's method/scheme/authority/path. */
static void keep_pseudo(struct extproc_xchg *x, const uint8_t *n, size_t nl,
			const uint8_t *j, size_t jl)
{
	struct extproc_buf *b = is_name(n, nl, ":method")      ? &x->method
				: is_name(n, nl, ":scheme")    ? &x->scheme
				: is_name(n, nl, ":authority") ? &x->authority
				: is_name(n, nl, ":path")      ? &x->path
							       : NULL;
	if (b && !b->len && jl <= PSEUDO_MAX)
		extproc_buf_put(b, j, jl);
}

/* Appends [name, value] to the record's list |rec|, the value as the
 * policy left it: the decider's replacement, {"redacted":len} when it
 * removed or denied the field, the value itself when it kept it. A
 * protected field keeps its value in traffic, but the record still holds
 * what the policy made of it, never a sensitive value in plain. */
static void record_field(struct extproc_xchg *x, struct extproc_ctx *ctx,
			 enum extproc_part part, struct extproc_buf *rec,
			 const uint8_t *n, size_t nl, const uint8_t *v,
			 size_t vl, enum extproc_verdict verdict)
{
	if (!ctx->records)
		return; /* building a record nobody writes costs a tenth */
	if (rec->len > ctx->max_record) {
		x->anomalies |= A_TOO_BIG;
		return;
	}
	if (rec->len)
		extproc_buf_put(rec, ",", 1);
	extproc_buf_put(rec, "[", 1);
	buf_json_str(rec, n, nl);
	extproc_buf_put(rec, ",", 1);
	size_t at = rec->len;
	if (verdict == EXTPROC_KEEP) {
		buf_json_str(rec, v, vl);
	} else if (verdict == EXTPROC_REPLACE) {
		buf_json_str(rec, ctx->scratch.p, ctx->scratch.len);
	} else {
		BUF_LIT(rec, "{\"redacted\":");
		buf_u64(rec, vl);
		BUF_LIT(rec, "}");
	}
	if (part == EXTPROC_REQ_HEADERS && nl && n[0] == ':')
		keep_pseudo(x, n, nl, rec->p + at, rec->len - at);
	extproc_buf_put(rec, "]", 1);
}

/* Walks a header map: asks the decider about every field and records
 * it, then builds the mutation from all the verdicts (mutate_fields).
 * Returns false with |deny| filled when the decider denies (the walk
 * still records every field). */
static bool walk_headers(struct extproc_xchg *x, struct extproc_ctx *ctx,
			 enum extproc_part part, const HDR_MAP *map,
			 struct extproc_buf *rec, struct hmut *m,
			 struct extproc_decision *deny)
{
	struct side *s = &x->side[part >= EXTPROC_RESP_HEADERS];
	bool headers = part == EXTPROC_REQ_HEADERS ||
		       part == EXTPROC_RESP_HEADERS;
	bool denied = false;
	size_t nh = map ? map->n_headers : 0;
	/* one allocation for the usual list instead of a doubling series */
	if (rec->len <= ctx->max_record)
		extproc_buf_reserve(rec, nh * 64);
	struct hfield *f = nh ? arena_alloc(ctx->arena, nh * sizeof(*f)) : NULL;
	if (nh && (!f || nh >= HF_NONE)) {
		m->nomem = true;
		return true;
	}
	uint32_t nf = 0, nchange = 0;
	for (size_t i = 0; i < nh && !x->in_value; i++)
		x->in_value = map->headers[i] &&
			      !map->headers[i]->raw_value.len &&
			      map->headers[i]->value && map->headers[i]->value[0];
	m->in_value = x->in_value;
	for (size_t i = 0; i < nh; i++) {
		if (!map->headers[i])
			continue;
		const uint8_t *name, *val;
		size_t nl, vl;
		field_of(map->headers[i], &name, &nl, &val, &vl);
		if (part == EXTPROC_RESP_HEADERS &&
		    is_name(name, nl, ":status") && vl == 3 &&
		    val[0] >= '1' && val[0] <= '5' && val[1] >= '0' &&
		    val[1] <= '9' && val[2] >= '0' && val[2] <= '9')
			x->status = (val[0] - '0') * 100 + (val[1] - '0') * 10 +
				    (val[2] - '0');
		if (headers)
			note_entity(s, name, nl, val, vl);
		ctx->scratch.len = 0;
		struct extproc_decision d = { .out = &ctx->scratch };
		enum extproc_verdict v = ctx->decider.ops->decide_header(
			ctx->decider.self, &x->xd, part, name, nl, val, vl, &d);
		if (v == EXTPROC_DENY && !denied) {
			*deny = d;
			denied = true;
		}
		struct hfield *e = &f[nf++];
		*e = (struct hfield){ .name = name, .nl = nl, .val = val,
				      .vl = vl, .verdict = (uint8_t)v,
				      .head = HF_NONE };
		if (v == EXTPROC_REPLACE) {
			/* the scratch is the next field's: keep a copy */
			uint8_t *r = arena_alloc(ctx->arena, ctx->scratch.len + 1);
			if (!r) {
				m->nomem = true;
				return true;
			}
			memcpy(r, ctx->scratch.p, ctx->scratch.len);
			e->repl = r;
			e->rl = ctx->scratch.len;
		}
		if (v == EXTPROC_REPLACE || v == EXTPROC_REMOVE) {
			e->change = !extproc_header_protected(name, nl);
			if (e->change)
				nchange++;
			else
				EXTPROC_INC(ctx->ctr, mutations_protected);
		}
		record_field(x, ctx, part, rec, name, nl, val, vl, v);
	}
	if (!denied && nchange)
		mutate_fields(x, ctx, m, f, nf, nchange);
	return !denied;
}

/* Reads source.address / destination.address from the attributes the
 * data plane was asked to send, for the record's client/server. */
static void take_attributes(struct extproc_xchg *x, const PREQ *req)
{
	for (size_t i = 0; i < req->n_attributes; i++) {
		const Sealtap__Wkt__Struct *s = req->attributes[i]->value;
		for (size_t j = 0; s && j < s->n_fields; j++) {
			const Sealtap__Wkt__Struct__FieldsEntry *f = s->fields[j];
			if (!f->key || !f->value ||
			    f->value->kind_case != SEALTAP__WKT__VALUE__KIND_STRING_VALUE ||
			    !f->value->string_value)
				continue;
			const char *v = f->value->string_value;
			size_t vl = strnlen(v, 256);
			if (!strcmp(f->key, "source.address") && !x->client.len)
				buf_json_str(&x->client, (const uint8_t *)v, vl);
			else if (!strcmp(f->key, "destination.address") &&
				 !x->server.len)
				buf_json_str(&x->server, (const uint8_t *)v, vl);
		}
	}
}

/* ---- phases ----------------------------------------------------------- */

static int on_headers(struct extproc_xchg *x, struct extproc_ctx *ctx,
		      int dir, const HTTP_HEADERS *h, struct extproc_buf *out,
		      const char **why)
{
	struct side *s = &x->side[dir];
	enum extproc_part part = dir ? EXTPROC_RESP_HEADERS : EXTPROC_REQ_HEADERS;
	if (s->phase != PH_NONE) {
		EXTPROC_INC(ctx->ctr, msgs_out_of_order);
		*why = dir ? "response_headers out of order"
			   : "request_headers out of order";
		return -EXTPROC_GRPC_INVALID_ARGUMENT;
	}
	s->phase = PH_HEADERS;
	s->any_hdrs = true;
	if (h->end_of_stream)
		s->body_eos = true;

	struct extproc_mode mo;
	bool override = begin(x, ctx, dir ? NULL : h->headers, &mo) && !dir;
	struct hmut m = { 0 };
	struct extproc_decision deny = { 0 };
	bool ok = walk_headers(x, ctx, part, h->headers, &s->hdrs, &m, &deny);
	if (!ok)
		return reply_immediate(x, ctx, &deny, out, why);

	if (!dir && ctx->request_id_header && ctx->request_id_header[0]) {
		hmut_set(ctx, &m, (const uint8_t *)ctx->request_id_header,
			 strlen(ctx->request_id_header),
			 (const uint8_t *)x->xd.record_id, 16);
		EXTPROC_INC(ctx->ctr, mutations_added);
		x->mutations++;
	}
	if (x->observability)
		return 0;

	PRESP r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
	HEADERS_RESP hr = ENVOY__SERVICE__EXT_PROC__V3__HEADERS_RESPONSE__INIT;
	COMMON_RESP cr = ENVOY__SERVICE__EXT_PROC__V3__COMMON_RESPONSE__INIT;
	cr.header_mutation = hmut_finish(ctx, &m);
	if (m.nomem) {
		*why = "out of memory for a mutation";
		return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
	}
	if (cr.header_mutation)
		hr.response = &cr;
	Envoy__Extensions__Filters__Http__ExtProc__V3__ProcessingMode pm =
		ENVOY__EXTENSIONS__FILTERS__HTTP__EXT_PROC__V3__PROCESSING_MODE__INIT;
	if (override && (x->no_wait ||
			 x->side[0].said_mode == MODE_FULL_DUPLEX ||
			 x->side[1].said_mode == MODE_FULL_DUPLEX)) {
		/* Envoy applies a mode_override only when it waits for this
		 * reply before sending bodies and neither direction is
		 * FULL_DUPLEX_STREAMED (ext_proc.cc onReceiveMessage): the
		 * modes stay as announced, and the record says the route's
		 * bodies may not all come */
		override = false;
		x->anomalies |= A_OVERRIDE_IGNORED;
		EXTPROC_INC(ctx->ctr, mode_overrides_ignored);
	}
	if (override) {
		pm.request_body_mode = (int)mo.request_body;
		pm.response_body_mode = (int)mo.response_body;
		x->side[0].body_mode = (uint8_t)mo.request_body;
		x->side[1].body_mode = (uint8_t)mo.response_body;
		r.mode_override = &pm;
		x->overridden = true;
		EXTPROC_INC(ctx->ctr, mode_overrides);
	}
	if (dir) {
		r.response_case = RESP_CASE(RESPONSE_HEADERS);
		r.response_headers = &hr;
	} else {
		r.response_case = RESP_CASE(REQUEST_HEADERS);
		r.request_headers = &hr;
	}
	return emit(x, ctx, &r, out, why);
}

/* Shows |len| bytes of |dir|'s body to the decider as its next chunk
 * (|last|: the body ends with it; |compressed|: GRPC mode's flag; |skip|:
 * leading protobuf bytes that cannot be read); a replacement lands in
 * ctx->scratch. */
static enum extproc_verdict decide_chunk(struct extproc_xchg *x,
					 struct extproc_ctx *ctx, int dir,
					 const uint8_t *data, size_t len,
					 bool last, bool compressed, size_t skip,
					 struct extproc_decision *d)
{
	struct side *s = &x->side[dir];
	struct extproc_mode mo;
	begin(x, ctx, NULL, &mo);
	struct extproc_chunk c = {
		.part = dir ? EXTPROC_RESP_BODY : EXTPROC_REQ_BODY,
		.data = data, .len = len, .off = s->body_shown, .last = last,
		.ctype = s->nctype ? s->ctype : NULL, .ctype_len = s->nctype,
		.grpc_message = s->body_mode == MODE_GRPC,
		.compressed = compressed, .pb_skip = skip,
		.encoded = s->encoded, .wide = s->wide,
		/* pb_plan() left what the decided bytes leave unfinished */
		.pb_cut = !last && s->pb_rest != 0,
	};
	if (!s->body_shown && !c.grpc_message &&
	    policy_body_wide_bom(data, len))
		s->wide = c.wide = true; /* later chunks lack the mark */
	s->body_shown += len;
	if (c.encoded && !c.grpc_message && len) {
		EXTPROC_INC(ctx->ctr, body_chunks_encoded);
		x->anomalies |= A_ENCODED;
	}
	ctx->scratch.len = 0;
	d->out = &ctx->scratch;
	return ctx->decider.ops->decide_body(ctx->decider.self, &x->xd, &c, d);
}

enum { PB_NO, PB_MSG, PB_FRAMED };

/* Whether the side's body is protobuf, and framed (gRPC) or one
 * message, by its content-type. */
static int side_pb(const struct side *s)
{
	bool pb = false;
	/* compressed bytes have no frames to read */
	unsigned how = s->nctype && !s->encoded
			       ? policy_body_protobuf(s->ctype, s->nctype, &pb)
			       : 0;
	return !pb ? PB_NO : (how & POLICY_PB_FRAMED) ? PB_FRAMED : PB_MSG;
}

/* A protobuf body's next |len| bytes at |p| (held ones first): returns
 * how many to decide now, sets *|skip| to how many of those continue what
 * an earlier chunk passed on unfinished (unreadable), and s->pb_rest to
 * what the decided bytes leave unfinished. With |hold| (STREAMED,
 * FULL_DUPLEX) an incomplete frame -- a whole message, unframed -- waits
 * for the rest unless the body ends or it outgrew GRPC_HOLD_MAX; without
 * (a mode not announced, BUFFERED_PARTIAL) it is passed on as far as it
 * came, and what follows it in the next chunk is unreadable. */
static size_t pb_plan(struct side *s, int kind, const uint8_t *p, size_t len,
		      bool last, bool hold, size_t *skip)
{
	uint64_t rest = s->pb_rest;
	size_t pos = rest >= len ? len : (size_t)rest;
	if (pos && kind == PB_MSG)
		pos = len; /* a message has no frame to start again at */
	*skip = pos;
	if (rest != PB_REST_ALL)
		s->pb_rest = rest - (rest >= len ? len : pos);
	if (pos == len)
		return len;
	uint64_t tail = 0; /* bytes still to come of the last frame */
	size_t whole = pos;
	if (kind == PB_MSG) {
		whole = 0;
		tail = PB_REST_ALL;
	}
	while (kind == PB_FRAMED && len - whole >= 5) {
		if (!policy_grpc_flag_ok(p[whole])) { /* not a frame: nor after */
			s->pb_rest = last ? 0 : PB_REST_ALL;
			return len;
		}
		uint32_t n = (uint32_t)p[whole + 1] << 24 |
			     (uint32_t)p[whole + 2] << 16 |
			     (uint32_t)p[whole + 3] << 8 | p[whole + 4];
		if (n > len - whole - 5) {
			tail = n - (len - whole - 5);
			break;
		}
		whole += 5 + (size_t)n;
	}
	if (whole < len && !tail)
		tail = PB_REST_ALL; /* a frame header cut: length unknown */
	if (last || whole == len) {
		s->pb_rest = 0;
		return len;
	}
	if (hold && len - whole <= GRPC_HOLD_MAX)
		return whole;
	s->pb_rest = tail;
	return len;
}

/* Drops the first |n| bytes of |b|. */
static void buf_drop(struct extproc_buf *b, size_t n)
{
	if (!n)
		return; /* also when nothing was ever held (b->p NULL) */
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* |r| answers a request_body (|dir| 0) or response_body with |br|. */
static void body_case(PRESP *r, int dir, BODY_RESP *br)
{
	if (dir) {
		r->response_case = RESP_CASE(RESPONSE_BODY);
		r->response_body = br;
	} else {
		r->response_case = RESP_CASE(REQUEST_BODY);
		r->request_body = br;
	}
}

/* One streamed_response (FULL_DUPLEX_STREAMED and GRPC body modes). */
struct streamed {
	const uint8_t *data;
	size_t len;
	bool eos, eos_without_message, compressed;
};

static int emit_streamed(struct extproc_xchg *x, struct extproc_ctx *ctx,
			 int dir, const struct streamed *sr,
			 struct extproc_buf *out, const char **why)
{
	PRESP r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
	BODY_RESP br = ENVOY__SERVICE__EXT_PROC__V3__BODY_RESPONSE__INIT;
	COMMON_RESP cr = ENVOY__SERVICE__EXT_PROC__V3__COMMON_RESPONSE__INIT;
	BODY_MUTATION bm = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__INIT;
	STREAMED_BODY sb = ENVOY__SERVICE__EXT_PROC__V3__STREAMED_BODY_RESPONSE__INIT;
	sb.body.data = (uint8_t *)sr->data;
	sb.body.len = sr->len;
	sb.end_of_stream = sr->eos;
	sb.end_of_stream_without_message = sr->eos_without_message;
	sb.grpc_message_compressed = sr->compressed;
	bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_STREAMED_RESPONSE;
	bm.streamed_response = &sb;
	cr.body_mutation = &bm;
	br.response = &cr;
	body_case(&r, dir, &br);
	int rc = emit(x, ctx, &r, out, why);
	if (!rc)
		EXTPROC_INC(ctx->ctr, replies_streamed);
	return rc;
}

/* Whether the decider looks at |s|'s body at all (its route, its
 * content-type). */
static bool reads_body(struct extproc_xchg *x, struct extproc_ctx *ctx,
		       const struct side *s)
{
	struct extproc_mode mo;
	begin(x, ctx, NULL, &mo);
	return !ctx->decider.ops->reads_body ||
	       ctx->decider.ops->reads_body(ctx->decider.self, &x->xd,
					    s->nctype ? s->ctype : NULL,
					    s->nctype);
}

/* How much of a FULL_DUPLEX_STREAMED text body held in |b| (|len| bytes,
 * more to come) to answer now: all but the run at its end that a token
 * cut by the next data chunk could be part of (policy_guard_cut()), which
 * waits to be seen with what follows it. A run longer than the guard is
 * bulk data (base64): it gathers to FD_CHUNK first, and the guard stars
 * the cut as in a STREAMED chunk. */
static size_t fd_ready(const uint8_t *b, size_t len)
{
	size_t t = policy_guard_cut(b, 0, len);
	if (len - t >= POLICY_GUARD_MAX)
		return len < FD_CHUNK ? 0 : t;
	return t;
}

/* FULL_DUPLEX_STREAMED: answers what is pending as streamed_response
 * chunks of at most FD_CHUNK bytes, the last with |eos| -- of a gRPC body
 * only its whole frames until it ends, of other bodies with |hold| what
 * fd_ready() says. |last|: the body ends here (end of stream, or trailers
 * follow). */
static int fd_flush(struct extproc_xchg *x, struct extproc_ctx *ctx, int dir,
		    bool eos, bool last, bool hold, struct extproc_buf *out,
		    const char **why)
{
	struct side *s = &x->side[dir];
	const uint8_t *body = s->pending.p;
	size_t len = s->pending.len, skip = 0;
	int kind = side_pb(s);
	if (kind)
		len = pb_plan(s, kind, body, len, last, true, &skip);
	else if (hold && !last && !s->encoded && !s->wide &&
		 reads_body(x, ctx, s))
		len = fd_ready(body, len);
	size_t taken = len;
	if (!len && !eos)
		return 0;
	struct extproc_decision d = { 0 };
	enum extproc_verdict v = EXTPROC_KEEP;
	if (len)
		v = decide_chunk(x, ctx, dir, body, len, last, false, skip, &d);
	if (v == EXTPROC_DENY) {
		s->pending.len = 0;
		return reply_immediate(x, ctx, &d, out, why);
	}
	if (v == EXTPROC_REPLACE) {
		body = ctx->scratch.p;
		len = ctx->scratch.len;
	} else if (v == EXTPROC_REMOVE) {
		len = 0;
	}
	if (v != EXTPROC_KEEP) {
		EXTPROC_INC(ctx->ctr, mutations_body);
		x->mutations++;
	}
	if (x->observability) {
		buf_drop(&s->pending, taken);
		return 0;
	}
	size_t off = 0;
	do {
		size_t n = len - off > FD_CHUNK ? FD_CHUNK : len - off;
		struct streamed sr = {
			.data = len ? body + off : NULL, .len = n,
			.eos = eos && off + n == len,
		};
		int rc = emit_streamed(x, ctx, dir, &sr, out, why);
		if (rc)
			return rc;
		off += n;
	} while (off < len);
	buf_drop(&s->pending, taken);
	return 0;
}

/* A BUFFERED body whose length changed, when the headers went through
 * sealtap with a content-length: Envoy leaves content-length to the
 * processor in that mode alone (ProcessingMode.BodySendMode) and refuses
 * a body that does not match it, so the reply sets it to |len|. */
static int fix_length(struct extproc_ctx *ctx, const struct extproc_xchg *x,
		      const struct side *s, COMMON_RESP *cr, size_t len,
		      const char **why)
{
	if (s->body_mode != MODE_BUFFERED || !s->has_clen)
		return 0;
	char num[24];
	int k = snprintf(num, sizeof(num), "%zu", len);
	struct hmut m = { .in_value = x->in_value };
	hmut_set(ctx, &m, (const uint8_t *)"content-length", 14,
		 (const uint8_t *)num, (size_t)k);
	cr->header_mutation = hmut_finish(ctx, &m);
	if (m.nomem) {
		*why = "out of memory for a mutation";
		return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
	}
	return 0;
}

static int body_reply(struct extproc_xchg *x, struct extproc_ctx *ctx,
		      int dir, enum extproc_verdict v, const uint8_t *held,
		      size_t len, struct extproc_buf *out, const char **why);

/* GRPC body mode (gRPC clients' ext_proc, gRFC A93): each body message is
 * one de-framed gRPC message -- or, with end_of_stream_without_message,
 * the half-close alone -- answered with one streamed_response carrying
 * the message as the policy leaves it (tokens inside, lengths fixed). */
static int grpc_message(struct extproc_xchg *x, struct extproc_ctx *ctx,
			int dir, const HTTP_BODY *b, struct extproc_buf *out,
			const char **why)
{
	struct streamed sr = {
		.data = b->body.data, .len = b->body.len,
		.eos = b->end_of_stream,
		.eos_without_message = b->end_of_stream_without_message,
		.compressed = b->grpc_message_compressed,
	};
	if (!sr.eos_without_message) {
		struct extproc_decision d = { 0 };
		enum extproc_verdict v = decide_chunk(x, ctx, dir, sr.data,
						      sr.len, sr.eos,
						      sr.compressed, 0, &d);
		if (v == EXTPROC_DENY)
			return reply_immediate(x, ctx, &d, out, why);
		if (x->observability)
			return 0;
		if (v == EXTPROC_REMOVE) {
			/* an empty message would be another message: the
			 * stream ends instead (fail closed) */
			*why = "a gRPC message could not be sealed";
			return -EXTPROC_GRPC_INTERNAL;
		}
		if (v == EXTPROC_REPLACE) {
			sr.data = ctx->scratch.p;
			sr.len = ctx->scratch.len;
			EXTPROC_INC(ctx->ctr, mutations_body);
			x->mutations++;
		}
	}
	if (x->observability)
		return 0;
	return emit_streamed(x, ctx, dir, &sr, out, why);
}

static int on_body(struct extproc_xchg *x, struct extproc_ctx *ctx, int dir,
		   const HTTP_BODY *b, struct extproc_buf *out, const char **why)
{
	struct side *s = &x->side[dir];
	if (s->phase > PH_BODY) {
		EXTPROC_INC(ctx->ctr, msgs_out_of_order);
		*why = dir ? "response_body after response_trailers"
			   : "request_body after request_trailers";
		return -EXTPROC_GRPC_INVALID_ARGUMENT;
	}
	if (s->body_whole) {
		/* its end was not guarded as a cut: more body would make
		 * it one. BUFFERED is answered once (Envoy sends the whole
		 * body, or refuses one over its buffer with 413). */
		EXTPROC_INC(ctx->ctr, msgs_out_of_order);
		*why = dir ? "response_body after a whole BUFFERED body"
			   : "request_body after a whole BUFFERED body";
		return -EXTPROC_GRPC_INVALID_ARGUMENT;
	}
	s->phase = PH_BODY;
	bool fd = s->body_mode == MODE_FULL_DUPLEX;
	if (s->body_eos && (fd || s->body_mode == MODE_GRPC)) {
		/* FULL_DUPLEX_STREAMED, GRPC: data after end of stream is
		 * ignored */
		EXTPROC_INC(ctx->ctr, msgs_after_eos);
		return 0;
	}
	if (s->body_eos)
		EXTPROC_INC(ctx->ctr, msgs_after_eos);
	s->body_bytes += b->body.len;
	if (b->end_of_stream)
		s->body_eos = true;

	if (fd) {
		/* Answered as it comes (an interactive stream -- server-
		 * sent events, a bidi gRPC call -- waits for each reply:
		 * Envoy passes on only what we send, with no timeout);
		 * held: an unfinished gRPC frame, or at most FD_CHUNK plus
		 * one message (itself capped by max_message) of text. */
		if (!extproc_buf_put(&s->pending, b->body.data, b->body.len)) {
			*why = "out of memory for a body";
			return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
		}
		size_t had = s->pending.len;
		int rc = fd_flush(x, ctx, dir, b->end_of_stream,
				  b->end_of_stream, true, out, why);
		/* the hold's age is that of what is held now: a new run
		 * after bytes went out starts its own (else a steady stream
		 * of words would have each held one starred by the tick);
		 * one run that nothing was taken from keeps its age */
		if (!s->pending.len)
			s->held_ns = 0;
		else if (!s->held_ns || s->pending.len < had)
			s->held_ns = st_mono_ns();
		return rc;
	}

	if (s->body_mode == MODE_GRPC)
		return grpc_message(x, ctx, dir, b, out, why);

	/* STREAMED (one reply per chunk, in order), BUFFERED and
	 * BUFFERED_PARTIAL (one message, one reply), or a mode not announced
	 * (answered the same way). A STREAMED protobuf body is answered
	 * frame by frame: a chunk's reply carries the whole frames it
	 * completes (an unframed message: all of it, with the last chunk),
	 * the rest waits in |pending| for the next chunk (pb_plan()). */
	const uint8_t *data = b->body.data;
	size_t len = b->body.len, k = len, skip = 0;
	bool moved = false; /* the reply's bytes are not the chunk's */
	/* a BUFFERED body is whole also when trailers follow it (Envoy then
	 * sends it without end_of_stream): nothing goes on past its end, so
	 * its last characters are not guarded as a cut. Only when the data
	 * plane said BUFFERED: one that ignored our mode_override (no
	 * allow_mode_override) streams its chunks, and their ends are cuts */
	bool last = b->end_of_stream || s->said_mode == MODE_BUFFERED;
	s->body_whole = !b->end_of_stream && last;
	int kind = side_pb(s);
	if (kind) {
		if (s->pending.len) {
			if (!extproc_buf_put(&s->pending, data, len)) {
				*why = "out of memory for a body";
				return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
			}
			data = s->pending.p;
			len = s->pending.len;
		}
		k = pb_plan(s, kind, data, len, last,
			    s->body_mode == MODE_STREAMED, &skip);
		moved = data != b->body.data || k != len;
	}
	struct extproc_decision d = { 0 };
	enum extproc_verdict v = EXTPROC_KEEP;
	if (k || !moved)
		v = decide_chunk(x, ctx, dir, data, k, last, false, skip, &d);
	if (v == EXTPROC_DENY) {
		s->pending.len = 0;
		return reply_immediate(x, ctx, &d, out, why);
	}
	/* what this chunk left of a frame waits for the next one (kept
	 * before the reply, which may point into |pending|, is made) */
	bool from_pending = len && data == s->pending.p;
	if (!from_pending && k < len &&
	    !extproc_buf_put(&s->pending, data + k, len - k)) {
		*why = "out of memory for a body";
		return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
	}
	int rc = 0;
	if (!x->observability)
		rc = body_reply(x, ctx, dir, v, moved ? data : NULL, k, out,
				why);
	if (from_pending)
		buf_drop(&s->pending, k);
	return rc;
}

/* The reply to a body chunk that is not streamed_response: |v| applied,
 * or with |held| (a STREAMED protobuf body) those |len| bytes in place of the
 * chunk when the policy kept them. */
static int body_reply(struct extproc_xchg *x, struct extproc_ctx *ctx,
		      int dir, enum extproc_verdict v, const uint8_t *held,
		      size_t len, struct extproc_buf *out, const char **why)
{
	struct side *s = &x->side[dir];
	PRESP r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
	BODY_RESP br = ENVOY__SERVICE__EXT_PROC__V3__BODY_RESPONSE__INIT;
	COMMON_RESP cr = ENVOY__SERVICE__EXT_PROC__V3__COMMON_RESPONSE__INIT;
	BODY_MUTATION bm = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__INIT;
	if (v == EXTPROC_KEEP && held) {
		/* bytes moved between chunks: not a mutation of content */
		if (len) {
			bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_BODY;
			bm.body.data = (uint8_t *)held;
			bm.body.len = len;
		} else {
			bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_CLEAR_BODY;
			bm.clear_body = true;
		}
		cr.body_mutation = &bm;
		br.response = &cr;
	} else if (v == EXTPROC_REPLACE) {
		bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_BODY;
		bm.body.data = ctx->scratch.p;
		bm.body.len = ctx->scratch.len;
	} else if (v == EXTPROC_REMOVE) {
		bm.mutation_case = ENVOY__SERVICE__EXT_PROC__V3__BODY_MUTATION__MUTATION_CLEAR_BODY;
		bm.clear_body = true;
	}
	if (v == EXTPROC_REPLACE || v == EXTPROC_REMOVE) {
		cr.body_mutation = &bm;
		br.response = &cr;
		EXTPROC_INC(ctx->ctr, mutations_body);
		x->mutations++;
		int rc = fix_length(ctx, x, s, &cr, v == EXTPROC_REPLACE
							? ctx->scratch.len
							: 0, why);
		if (rc)
			return rc;
	}
	body_case(&r, dir, &br);
	return emit(x, ctx, &r, out, why);
}

/* A STREAMED protobuf body that ends (trailers, end of input) inside what
 * was held (a frame, or the unframed message): those bytes can no longer
 * be sent (a trailers reply carries no body), so they are counted lost. */
static void pending_lost(struct extproc_xchg *x, struct extproc_ctx *ctx,
			 int dir)
{
	struct side *s = &x->side[dir];
	if (s->body_mode == MODE_FULL_DUPLEX || !s->pending.len)
		return;
	EXTPROC_INC(ctx->ctr, grpc_frames_cut);
	x->anomalies |= A_GRPC_FRAME_CUT;
	s->pending.len = 0;
}

static int on_trailers(struct extproc_xchg *x, struct extproc_ctx *ctx,
		       int dir, const HTTP_TRAILERS *t,
		       struct extproc_buf *out, const char **why)
{
	struct side *s = &x->side[dir];
	enum extproc_part part = dir ? EXTPROC_RESP_TRAILERS : EXTPROC_REQ_TRAILERS;
	if (s->phase > PH_BODY) {
		EXTPROC_INC(ctx->ctr, msgs_out_of_order);
		*why = dir ? "response_trailers repeated"
			   : "request_trailers repeated";
		return -EXTPROC_GRPC_INVALID_ARGUMENT;
	}
	s->phase = PH_TRAILERS;
	/* FULL_DUPLEX_STREAMED: trailers tell that the body is complete;
	 * what is buffered goes out first (headers-body-trailers order). */
	if (s->body_mode == MODE_FULL_DUPLEX && s->pending.len) {
		int rc = fd_flush(x, ctx, dir, false, true, false, out, why);
		if (rc || x->done)
			return rc;
	}
	pending_lost(x, ctx, dir);
	s->body_eos = true;

	struct extproc_mode mo;
	begin(x, ctx, NULL, &mo);
	struct hmut m = { 0 };
	struct extproc_decision deny = { 0 };
	if (!walk_headers(x, ctx, part, t->trailers, &s->trailers, &m, &deny))
		return reply_immediate(x, ctx, &deny, out, why);
	if (x->observability)
		return 0;
	PRESP r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_RESPONSE__INIT;
	TRAILERS_RESP tr = ENVOY__SERVICE__EXT_PROC__V3__TRAILERS_RESPONSE__INIT;
	tr.header_mutation = hmut_finish(ctx, &m);
	if (m.nomem) {
		*why = "out of memory for a mutation";
		return -EXTPROC_GRPC_RESOURCE_EXHAUSTED;
	}
	if (dir) {
		r.response_case = RESP_CASE(RESPONSE_TRAILERS);
		r.response_trailers = &tr;
	} else {
		r.response_case = RESP_CASE(REQUEST_TRAILERS);
		r.request_trailers = &tr;
	}
	return emit(x, ctx, &r, out, why);
}

/* In observability mode the data plane applies nothing: the mutations
 * a message's processing counted are moved to mutations_observed, so the
 * counters and the record's `mutations` say only what was sent. */
struct mut_mark {
	uint64_t x;
	uint64_t v[4];
};

static const int mut_ctr[4] = {
	EXTPROC_CTR_mutations_replaced, EXTPROC_CTR_mutations_removed,
	EXTPROC_CTR_mutations_added, EXTPROC_CTR_mutations_body,
};

static void mut_mark_take(const struct extproc_xchg *x,
			  const struct extproc_ctx *ctx, struct mut_mark *m)
{
	m->x = x->mutations;
	for (int i = 0; i < 4; i++)
		m->v[i] = ctx->ctr->v[mut_ctr[i]];
}

static void mut_mark_unsent(struct extproc_xchg *x, struct extproc_ctx *ctx,
			    const struct mut_mark *m)
{
	for (int i = 0; i < 4; i++) {
		EXTPROC_ADD(ctx->ctr, mutations_observed,
			    ctx->ctr->v[mut_ctr[i]] - m->v[i]);
		st_ctr_set(&ctx->ctr->v[mut_ctr[i]], m->v[i]);
	}
	x->mutations = m->x;
}

static int dispatch(struct extproc_xchg *x, struct extproc_ctx *ctx,
		    const PREQ *req, struct extproc_buf *out, const char **why);

int extproc_xchg_message(struct extproc_xchg *x, struct extproc_ctx *ctx,
			 const uint8_t *msg, size_t len,
			 struct extproc_buf *out, const char **why)
{
	extproc_arena_reset(ctx->arena);
	/* counted before it is read: a first message that is not valid
	 * still leaves the exchange its record (an audit trail of what was
	 * refused) */
	x->messages++;
	PREQ *req = envoy__service__ext_proc__v3__processing_request__unpack(
		&ctx->arena->alloc, len, msg);
	if (!req) {
		EXTPROC_INC(ctx->ctr, msgs_malformed);
		*why = "ProcessingRequest is not valid protobuf";
		return -EXTPROC_GRPC_INTERNAL;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	x->last_ns = (uint64_t)ts.tv_sec * ST_NS_PER_SEC + (uint64_t)ts.tv_nsec;
	if (req->base.n_unknown_fields) {
		EXTPROC_INC(ctx->ctr, msgs_unknown_fields);
		x->anomalies |= A_UNKNOWN_FIELDS;
	}
	if (req->observability_mode && !x->observability)
		x->observability = true;
	if (req->protocol_config) {
		/* Sent with the first message; later copies change nothing. */
		for (int d = 0; d < 2; d++) {
			if (x->side[d].body_mode != MODE_UNKNOWN)
				continue;
			unsigned m = d ? req->protocol_config->response_body_mode
				       : req->protocol_config->request_body_mode;
			x->side[d].body_mode = m <= MODE_GRPC ? (uint8_t)m
							      : MODE_UNKNOWN;
			x->side[d].said_mode = x->side[d].body_mode;
		}
		if (req->protocol_config->send_body_without_waiting_for_header_response)
			x->no_wait = true;
	}
	if (req->n_attributes)
		take_attributes(x, req);

	switch (req->request_case) {
	case REQ_CASE(REQUEST_HEADERS): EXTPROC_INC(ctx->ctr, msgs_request_headers); break;
	case REQ_CASE(RESPONSE_HEADERS): EXTPROC_INC(ctx->ctr, msgs_response_headers); break;
	case REQ_CASE(REQUEST_BODY): EXTPROC_INC(ctx->ctr, msgs_request_body); break;
	case REQ_CASE(RESPONSE_BODY): EXTPROC_INC(ctx->ctr, msgs_response_body); break;
	case REQ_CASE(REQUEST_TRAILERS): EXTPROC_INC(ctx->ctr, msgs_request_trailers); break;
	case REQ_CASE(RESPONSE_TRAILERS): EXTPROC_INC(ctx->ctr, msgs_response_trailers); break;
	default:
		EXTPROC_INC(ctx->ctr, msgs_out_of_order);
		*why = "ProcessingRequest carries no request phase";
		return -EXTPROC_GRPC_INVALID_ARGUMENT;
	}
	if (x->observability)
		EXTPROC_INC(ctx->ctr, msgs_observability);
	if (x->done) {
		/* After an immediate_response the data plane has stopped
		 * listening; answering would be a reply to nothing. */
		EXTPROC_INC(ctx->ctr, msgs_after_immediate);
		return 0;
	}

	/* observability mode is known by now (set above from the
	 * message): only its messages pay for the mark */
	if (!x->observability)
		return dispatch(x, ctx, req, out, why);
	struct mut_mark mk;
	mut_mark_take(x, ctx, &mk);
	int rc = dispatch(x, ctx, req, out, why);
	mut_mark_unsent(x, ctx, &mk);
	return rc;
}

static int dispatch(struct extproc_xchg *x, struct extproc_ctx *ctx,
		    const PREQ *req, struct extproc_buf *out, const char **why)
{
	switch (req->request_case) {
	case REQ_CASE(REQUEST_HEADERS):
		return on_headers(x, ctx, 0, req->request_headers, out, why);
	case REQ_CASE(RESPONSE_HEADERS):
		return on_headers(x, ctx, 1, req->response_headers, out, why);
	case REQ_CASE(REQUEST_BODY):
		return on_body(x, ctx, 0, req->request_body, out, why);
	case REQ_CASE(RESPONSE_BODY):
		return on_body(x, ctx, 1, req->response_body, out, why);
	case REQ_CASE(REQUEST_TRAILERS):
		return on_trailers(x, ctx, 0, req->request_trailers, out, why);
	case REQ_CASE(RESPONSE_TRAILERS):
		return on_trailers(x, ctx, 1, req->response_trailers, out, why);
	default:
		return 0;
	}
}

/* What each side still holds, flushed at the end of the input. */
static int flush_sides(struct extproc_xchg *x, struct extproc_ctx *ctx,
		       struct extproc_buf *out, const char **why)
{
	int rc = 0;
	for (int d = 0; d < 2 && !rc && !x->done; d++) {
		pending_lost(x, ctx, d);
		if (x->side[d].pending.len) {
			extproc_arena_reset(ctx->arena);
			rc = fd_flush(x, ctx, d, true, true, false, out, why);
		}
	}
	return rc;
}

int extproc_xchg_tick(struct extproc_xchg *x, struct extproc_ctx *ctx,
		      uint64_t now_ns, struct extproc_buf *out,
		      const char **why)
{
	int rc = 0;
	for (int d = 0; d < 2 && !rc && !x->done; d++) {
		struct side *s = &x->side[d];
		if (s->body_mode != MODE_FULL_DUPLEX || !s->pending.len ||
		    !s->held_ns || now_ns - s->held_ns < EXTPROC_FD_HOLD_NS ||
		    side_pb(s))
			continue;
		/* no data came after it: answered, its end guarded as a
		 * STREAMED chunk's (the decider's fail-closed cut) */
		extproc_arena_reset(ctx->arena);
		struct mut_mark mk = { 0 };
		if (x->observability)
			mut_mark_take(x, ctx, &mk);
		rc = fd_flush(x, ctx, d, false, false, false, out, why);
		if (x->observability)
			mut_mark_unsent(x, ctx, &mk);
		s->held_ns = s->pending.len ? now_ns : 0;
	}
	return rc;
}

int extproc_xchg_end_of_input(struct extproc_xchg *x, struct extproc_ctx *ctx,
			      struct extproc_buf *out, const char **why)
{
	if (x->done)
		return 0;
	if (!x->observability)
		return flush_sides(x, ctx, out, why);
	struct mut_mark mk;
	mut_mark_take(x, ctx, &mk);
	int rc = flush_sides(x, ctx, out, why);
	mut_mark_unsent(x, ctx, &mk);
	return rc;
}

/* ---- the record ------------------------------------------------------- */

static const char *const end_names[] = {
	"open",	     "complete",	  "cancelled", "reset",
	"error",     "timeout",		  "connection_closed", "shutdown",
};

static void put_str_or_null(struct extproc_buf *b, const struct extproc_buf *s)
{
	if (s->len)
		extproc_buf_put(b, s->p, s->len);
	else
		buf_puts(b, "null");
}

static void put_mode(struct extproc_buf *b, unsigned m)
{
	const char *n = mode_name(m);
	if (n) {
		BUF_LIT(b, "\"");
		buf_puts(b, n);
		BUF_LIT(b, "\"");
	}
	else
		buf_puts(b, "null");
}

static void put_side(struct extproc_buf *b, const struct side *s,
		     const struct extproc_buf *findings, bool lists)
{
	buf_puts(b, "\"headers\":[");
	if (lists)
		extproc_buf_put(b, s->hdrs.p, s->hdrs.len);
	buf_puts(b, "],\"trailers\":[");
	if (lists)
		extproc_buf_put(b, s->trailers.p, s->trailers.len);
	BUF_LIT(b, "],\"body_bytes\":");
	buf_u64(b, s->body_bytes);
	buf_puts(b, s->body_eos ? ",\"end_stream\":true" : ",\"end_stream\":false");
	if (lists && findings->len) {
		buf_puts(b, ",\"body_findings\":[");
		extproc_buf_put(b, findings->p, findings->len);
		buf_puts(b, "]");
	}
}

static void put_name_or_null(struct extproc_buf *b, const char *s)
{
	if (s)
		buf_json_str(b, (const uint8_t *)s, strlen(s));
	else
		buf_puts(b, "null");
}

size_t extproc_xchg_record(struct extproc_xchg *x, struct extproc_ctx *ctx,
			   enum extproc_end end, uint32_t rst_code,
			   int grpc_status, uint64_t end_ns,
			   struct extproc_buf *out)
{
	out->len = 0;
	if (!x->messages)
		return 0;
	const struct extproc_xdec *xd = &x->xd;
	size_t lists = x->side[0].hdrs.len + x->side[0].trailers.len +
		       x->side[1].hdrs.len + x->side[1].trailers.len +
		       xd->applied.len + xd->findings[0].len +
		       xd->findings[1].len;
	bool with_lists = lists + 2048 <= ctx->max_record;
	uint32_t anomalies = x->anomalies;
	if (!with_lists) {
		anomalies |= A_RECORD_BIG;
		EXTPROC_INC(ctx->ctr, records_too_big);
	}
	if (grpc_status > 0)
		anomalies |= A_PROTOCOL;

	time_t secs = (time_t)(x->info.start_ns / ST_NS_PER_SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	buf_printf(out,
		   "{\"v\":%d,\"id\":\"%016llx\",\"source\":\"extproc\","
		   "\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06uZ\","
		   "\"first_ts_ns\":%llu,\"last_ts_ns\":%llu,\"client\":",
		   RECORD_SCHEMA_VERSION, (unsigned long long)x->info.id,
		   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		   tm.tm_min, tm.tm_sec,
		   (unsigned)(x->info.start_ns % ST_NS_PER_SEC / 1000),
		   (unsigned long long)x->info.start_ns,
		   (unsigned long long)(end_ns > x->last_ns ? end_ns
							     : x->last_ns));
	put_str_or_null(out, &x->client);
	buf_puts(out, ",\"server\":");
	put_str_or_null(out, &x->server);
	buf_puts(out, ",\"peer\":");
	buf_json_str(out, (const uint8_t *)x->peer, strlen(x->peer));
	BUF_LIT(out, ",\"roles\":\"sure\",\"stream_id\":");
	buf_u64(out, x->info.stream_id);
	BUF_LIT(out, ",\"request\":{\"method\":");
	put_str_or_null(out, &x->method);
	buf_puts(out, ",\"scheme\":");
	put_str_or_null(out, &x->scheme);
	buf_puts(out, ",\"authority\":");
	put_str_or_null(out, &x->authority);
	buf_puts(out, ",\"path\":");
	put_str_or_null(out, &x->path);
	buf_puts(out, ",");
	put_side(out, &x->side[0], &xd->findings[0], with_lists);
	buf_puts(out, "},\"response\":{\"status\":");
	if (x->status >= 0)
		buf_u64(out, (uint64_t)x->status);
	else
		buf_puts(out, "null");
	buf_puts(out, ",");
	put_side(out, &x->side[1], &xd->findings[1], with_lists);
	BUF_LIT(out, "},\"end\":\"");
	buf_puts(out, end_names[(unsigned)end < ST_ARRAY_SIZE(end_names) ? end : 0]);
	BUF_LIT(out, "\"");
	if (end == EXTPROC_END_RESET || end == EXTPROC_END_CANCELLED)
		buf_printf(out, ",\"rst_code\":%u,\"rst_by\":\"client\"",
			   rst_code);
	buf_puts(out, ",\"tenant\":");
	put_name_or_null(out, xd->tenant);
	buf_puts(out, ",\"route\":");
	put_name_or_null(out, xd->route_name);
	buf_puts(out, ",\"sealed\":[");
	if (with_lists)
		extproc_buf_put(out, xd->applied.p, xd->applied.len);
	buf_puts(out, "],\"anomalies\":[");
	const char *sep = "";
	for (unsigned i = 0; i < ST_ARRAY_SIZE(anomaly_names); i++) {
		if (anomalies & (1u << i)) {
			buf_printf(out, "%s\"%s\"", sep, anomaly_names[i]);
			sep = ",";
		}
	}
	BUF_LIT(out, "],\"extproc\":{\"messages\":");
	buf_u64(out, x->messages);
	BUF_LIT(out, ",\"replies\":");
	buf_u64(out, x->replies);
	BUF_LIT(out, ",\"mutations\":");
	buf_u64(out, x->mutations);
	buf_puts(out, x->deny_status ? ",\"denied\":true," : ",\"denied\":false,");
	if (x->deny_status) {
		buf_printf(out, "\"deny_status\":%u,\"deny_rule\":",
			   x->deny_status);
		put_name_or_null(out, x->deny_rule);
		buf_puts(out, ",");
	}
	buf_puts(out, x->observability ? "\"observability\":true"
				       : "\"observability\":false");
	BUF_LIT(out, ",\"request_body_mode\":");
	put_mode(out, x->side[0].body_mode);
	buf_puts(out, ",\"response_body_mode\":");
	put_mode(out, x->side[1].body_mode);
	buf_puts(out, x->overridden ? ",\"mode_override\":true"
				    : ",\"mode_override\":false");
	BUF_LIT(out, ",\"grpc_status\":");
	if (grpc_status >= 0)
		buf_u64(out, (uint64_t)grpc_status);
	else
		buf_puts(out, "null");
	buf_puts(out, "}}\n");
	return out->len;
}
