/* Passive HTTP/2: per-connection frame parsing, streams and exchange
 * records. Contract in h2.h; frame rules in h2_frame.c; HPACK in
 * h2_hpack.c; JSON helpers in record_json.c.
 *
 * Shape of the code: bytes of one direction go through dir_feed(), a state
 * machine over (connection start | preface | HTTP/1.1 upgrade | frame
 * header | frame payload | resync | dead). Frame payloads are handled as
 * they arrive, never buffered whole: DATA is counted (and the first
 * body_inspect bytes kept), header block fragments go straight into the
 * direction's HPACK inflater, control frames are read in small fixed
 * pieces. Header fields are written as JSON fragments into the stream's
 * chains as they are decoded, so a finished exchange is assembled from
 * those fragments into one record.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sealtap/bpool.h"
#include "sealtap/flow.h"
#include "sealtap/h2.h"
#include "sealtap/h2_frame.h"
#include "sealtap/h2_hpack.h"
#include "sealtap/mem.h"
#include "sealtap/record.h"
#include "sealtap/record_seal.h"

/* ---- limits that are not worth a config option ---- */
#define H1_HEAD_MAX 16384    /* HTTP/1.1 upgrade request/response head */
#define PSEUDO_MAX 8192      /* bytes kept of :path, :authority, ... */
#define RESYNC_CHAIN 2       /* frames in a row that make a boundary */
#define GRPC_PREFIX 5

/* ---- anomalies on an exchange (bit -> name in the record) ---- */
enum {
	A_MIDSTREAM = 1u << 0,       /* connection joined mid-stream */
	A_UNCERTAIN = 1u << 1,       /* header fields from placeholders */
	A_REQ_MISSED = 1u << 2,      /* request headers never seen */
	A_RESP_MISSED = 1u << 3,     /* response headers never seen */
	A_HEADERS_LOST = 1u << 4,    /* a header block lost to a gap */
	A_BODY_GAP = 1u << 5,        /* body bytes lost to a gap */
	A_HPACK_ERROR = 1u << 6,     /* a header block failed to decode */
	A_BLOCK_TOO_BIG = 1u << 7,   /* header fields cut at the cap */
	A_MEMCAP = 1u << 8,          /* worker memory cap cut the record */
	A_STREAM_LIMIT = 1u << 9,    /* recorded early: per-conn cap */
	A_PROTOCOL = 1u << 10,       /* frame broke RFC 9113 rules */
	A_RESYNC = 1u << 11,         /* connection lost framing meanwhile */
	A_PADDING_UNKNOWN = 1u << 12, /* pad length lost: body count rough */
};

static const char *const anomaly_names[] = {
	"midstream",	    "uncertain_headers", "request_headers_missed",
	"response_headers_missed", "headers_lost", "body_gap",
	"hpack_error",	    "header_block_too_big", "memcap",
	"stream_limit",	    "protocol_error",	 "resync",
	"padding_unknown",
};

enum stream_end {
	END_OPEN = 0,
	END_COMPLETE,
	END_RESET,
	END_REFUSED, /* above a GOAWAY's last stream id */
	END_GOAWAY,  /* connection closed after a GOAWAY */
	END_CONN_CLOSED,
	END_CONN_RESET,
	END_TIMEOUT,
	END_EVICTED,
	END_SHUTDOWN,
	END_STREAM_LIMIT,
	END_CONN_REPLACED,
};

static const char *const end_names[] = {
	"open",	       "complete",	   "reset",   "refused_by_goaway",
	"goaway",      "connection_closed", "connection_reset", "timeout",
	"evicted",     "shutdown",	   "stream_limit",
	"connection_replaced",
};

/* Where the header block being decoded goes. */
enum target {
	T_NONE = 0,
	T_REQ_HEADERS,
	T_REQ_TRAILERS,
	T_RESP_INFO,
	T_RESP_HEADERS,
	T_RESP_TRAILERS,
	T_DISCARD, /* decode to keep the table in step, keep nothing */
};

/* One side of an exchange. */
struct h2_msg {
	struct bchain hdrs;      /* "[n,v],[n,v]" (JSON, no brackets) */
	struct bchain trailers;  /* same */
	struct bchain uncertain; /* "3,5" indices into hdrs */
	uint32_t nhdrs, ntrailers;
	uint64_t body_bytes, body_gap_bytes;
	uint32_t grpc_msgs;
	uint32_t grpc_left; /* bytes left of the current message */
	uint8_t grpc_hdr[GRPC_PREFIX];
	uint8_t grpc_hlen;
	uint8_t grpc;        /* content-type is application/grpc* */
	uint8_t headers_seen;  /* its header block (not trailers) was seen */
	uint8_t trailers_seen;
	uint8_t end_stream;
	uint8_t ctype_len;
	uint8_t pad;
	char ctype[64];      /* content-type (truncated), for body scans */
	struct bchain found; /* sealed body findings, JSON objects */
	struct bchain body; /* first body_inspect bytes (policy stage) */
};

struct h2_conn;

struct h2_stream {
	struct h2_stream *hnext;           /* ctx hash chain */
	struct h2_stream *lprev, *lnext;   /* ctx idle list (LRU) */
	struct h2_stream *cprev, *cnext;   /* conn list, creation order */
	struct h2_conn *conn;
	uint32_t id;
	uint32_t promised_by;
	uint32_t rst_code;
	uint32_t seq;       /* n-th stream of the connection */
	char rid[17];       /* record id, 16 hex digits, fixed when the stream
			     * opens (the record's "id" and the sealing AAD) */
	uint32_t anomalies;
	uint8_t end;        /* enum stream_end once decided */
	uint8_t rst_by_client;
	uint8_t pad[2];
	uint32_t info_count; /* informational (1xx) header blocks */
	uint32_t info_fields; /* fields in the current 1xx block */
	uint32_t info_start;  /* s->info length before the current block */
	uint64_t first_ts, last_ts;
	struct bchain method, scheme, authority, path, status;
	struct bchain info; /* "[[n,v],...],[[...]]" 1xx header lists */
	struct bchain applied; /* rules applied to header values (JSON) */
	const struct policy_route *route; /* from the request, or default */
	uint8_t routed;       /* |route| decided */
	uint8_t npseudo;      /* request pseudo-headers waiting for the route */
	uint8_t pseudo[8];    /* which chain (P_*) | unknown << 4 */
	struct h2_msg req, resp;
};

enum dir_state {
	D_START = 0,  /* nothing seen yet */
	D_PREFACE,    /* matching the client preface */
	D_H1_HEAD,    /* HTTP/1.1 head of an h2c upgrade */
	D_H1_BODY,    /* body of the upgrade request (Content-Length) */
	D_FRAME_HDR,  /* collecting a 9-byte frame header */
	D_PAYLOAD,    /* inside a frame's payload */
	D_RESYNC,     /* looking for a frame boundary */
	D_DEAD,       /* not parsing this direction */
};

/* Stages inside a frame's payload. */
enum pay_stage {
	P_PREFIX = 0, /* pad length, priority, promised stream id */
	P_CONTENT,
	P_PADDING,
};

/* One direction's parser. */
struct h2_dir {
	uint8_t state;
	uint8_t hlen;
	uint8_t hbuf[H2_FRAME_HEADER_LEN];
	struct h2_frame_hdr fh;
	uint32_t fleft;          /* payload bytes of the frame still to come */
	uint8_t stage;           /* enum pay_stage */
	uint8_t plen;            /* prefix bytes collected */
	uint8_t prefix_need;     /* prefix bytes this frame has */
	uint8_t damaged;         /* the frame lost bytes to a gap */
	uint8_t pbuf[12];        /* prefix / small control payload pieces */
	uint32_t pad_len;
	uint32_t content_left;   /* content bytes still to come */
	uint32_t ctl_len;        /* bytes collected in ctl */
	uint8_t ctl[16];         /* SETTINGS entry, RST/GOAWAY/PING head */
	/* Header block in progress (HEADERS/PUSH_PROMISE + CONTINUATION). */
	uint8_t in_block;
	uint8_t block_target;    /* enum target */
	uint8_t block_first;     /* no field emitted yet */
	uint8_t block_end_stream;
	uint8_t block_failed;    /* skip the rest of the block, reprime */
	uint8_t block_gap;       /* ... because of a gap (else HPACK error) */
	uint8_t ready;           /* dir_init() done */
	uint32_t block_sid;      /* stream the block belongs to */
	uint32_t block_bytes;    /* encoded bytes so far (flood cap) */
	struct h2_stream *block_stream;
	uint32_t max_frame;      /* largest frame this sender may send */
	uint32_t preface_got;
	uint64_t h1_body_left;
	struct bchain h1;        /* HTTP/1.1 head being collected */
	struct bchain resync;    /* bytes being searched for a boundary */
	uint64_t resync_skipped; /* bytes dropped during this resync */
	struct h2_hpack hpack;
};

struct h2_conn {
	struct h2_ctx *ctx;
	struct flow *flow;
	struct h2_stream *shead, *stail; /* streams, creation order */
	uint32_t nstreams;
	uint32_t next_seq;
	uint32_t goaway_last; /* last stream id from a GOAWAY */
	uint8_t goaway;       /* a GOAWAY was seen */
	uint8_t midstream;    /* joined without a preface */
	uint8_t upgrade;      /* h2c upgrade */
	uint8_t roles_known;  /* client direction confirmed */
	uint8_t dead;         /* not HTTP/2: ignore */
	uint8_t resynced;     /* framing was lost at least once */
	uint8_t pad[2];
	uint32_t highest_sid[2]; /* highest stream id opened, by parity */
	uint8_t ep_dir;       /* ep[] formatted for client_dir + 1 (0: not) */
	char ep[2][56];       /* "client", "server" endpoint strings */
	struct h2_dir d[2];
};

struct h2_ctx {
	struct h2_cfg cfg;
	struct h2_run_info run;
	struct h2_sink sink;
	struct st_counters *c;
	struct bpool *conns;
	struct bpool *streams;
	struct bpool *bytes;
	struct h2_stream **shash;
	uint32_t smask;
	struct h2_stream *lru_head, *lru_tail;
	char *scratch; /* record assembly, cfg.max_record bytes */
	uint8_t *pseudo_buf; /* 4 x PSEUDO_MAX: request pseudo values */
	struct mem_heap *heap; /* the inflaters' allocations: not dumped */
	uint8_t *body_buf;   /* body_inspect bytes: a body being scanned */
	uint8_t *flat; /* contiguous copy of a resync window */
	size_t flat_len;
	uint8_t no_conn; /* f->app marker: flow not parsed */
	struct record_sealer *sealer; /* policy + keys; NULL: built-in list */
	uint64_t ts_sec;   /* put_ts() cache: the second ts_text shows */
	char ts_text[24];
	bool keep_bodies; /* a policy inspects bodies: keep body_inspect bytes */
};

static void dir_feed(struct h2_conn *cn, unsigned di, const uint8_t *p,
		     uint32_t len, uint64_t ts);

/* ------------------------------------------------------------------ */
/* streams                                                            */
/* ------------------------------------------------------------------ */

static inline uint32_t shash_of(const struct h2_conn *cn, uint32_t sid)
{
	uintptr_t x = (uintptr_t)cn >> 6;
	return (uint32_t)((x * 0x9e3779b97f4a7c15ull + sid) >> 17);
}

static struct h2_stream *stream_find(struct h2_ctx *ctx, struct h2_conn *cn,
				     uint32_t sid)
{
	for (struct h2_stream *s = ctx->shash[shash_of(cn, sid) & ctx->smask];
	     s; s = s->hnext)
		if (s->conn == cn && s->id == sid)
			return s;
	return NULL;
}

static void lru_unlink(struct h2_ctx *ctx, struct h2_stream *s)
{
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		ctx->lru_head = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	else
		ctx->lru_tail = s->lprev;
	s->lprev = s->lnext = NULL;
}

static void lru_append(struct h2_ctx *ctx, struct h2_stream *s)
{
	s->lprev = ctx->lru_tail;
	s->lnext = NULL;
	if (ctx->lru_tail)
		ctx->lru_tail->lnext = s;
	else
		ctx->lru_head = s;
	ctx->lru_tail = s;
}

static void stream_touch(struct h2_ctx *ctx, struct h2_stream *s, uint64_t ts)
{
	if (ts > s->last_ts)
		s->last_ts = ts;
	if (ctx->lru_tail != s) {
		lru_unlink(ctx, s);
		lru_append(ctx, s);
	}
}

static void msg_init(struct h2_msg *m, const struct h2_cfg *cfg)
{
	memset(m, 0, sizeof(*m));
	bchain_init(&m->hdrs, cfg->max_header_block);
	bchain_init(&m->trailers, cfg->max_header_block);
	bchain_init(&m->uncertain, 4096);
	bchain_init(&m->body, cfg->body_inspect);
	bchain_init(&m->found, 64u << 10);
}

static void msg_release(struct bpool *p, struct h2_msg *m)
{
	bchain_reset(p, &m->hdrs);
	bchain_reset(p, &m->trailers);
	bchain_reset(p, &m->uncertain);
	bchain_reset(p, &m->body);
	bchain_reset(p, &m->found);
}

static void emit_record(struct h2_ctx *ctx, struct h2_stream *s);

/* Removes |s| from every list and returns its memory. */
static void stream_free(struct h2_ctx *ctx, struct h2_stream *s)
{
	struct h2_conn *cn = s->conn;
	struct h2_stream **pp = &ctx->shash[shash_of(cn, s->id) & ctx->smask];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	lru_unlink(ctx, s);
	if (s->cprev)
		s->cprev->cnext = s->cnext;
	else
		cn->shead = s->cnext;
	if (s->cnext)
		s->cnext->cprev = s->cprev;
	else
		cn->stail = s->cprev;
	cn->nstreams--;
	for (unsigned i = 0; i < 2; i++)
		if (cn->d[i].block_stream == s)
			cn->d[i].block_stream = NULL;
	struct bpool *p = ctx->bytes;
	bchain_reset(p, &s->method);
	bchain_reset(p, &s->scheme);
	bchain_reset(p, &s->authority);
	bchain_reset(p, &s->path);
	bchain_reset(p, &s->status);
	bchain_reset(p, &s->info);
	bchain_reset(p, &s->applied);
	msg_release(p, &s->req);
	msg_release(p, &s->resp);
	bpool_put(ctx->streams, s);
}

/* Records |s| with end state |end| and frees it. */
static void stream_finish(struct h2_ctx *ctx, struct h2_stream *s,
			  enum stream_end end)
{
	if (s->end == END_OPEN)
		s->end = (uint8_t)end;
	emit_record(ctx, s);
	stream_free(ctx, s);
}

/* Record id: a hash of the connection (canonical key, first packet time),
 * the stream id and its order in the connection, so a replay of the same
 * input gives the same ids whatever the number of workers. */
static uint64_t compute_record_id(const struct flow *f, uint32_t sid,
				  uint32_t seq)
{
	struct {
		struct flow_key key;
		uint64_t first_ts;
		uint32_t sid, seq;
	} id;
	memset(&id, 0, sizeof(id));
	id.key = f->key;
	id.first_ts = f->first_ts;
	id.sid = sid;
	id.seq = seq;
	return record_hash64(&id, sizeof(id), RECORD_SCHEMA_VERSION);
}

static struct h2_stream *stream_new(struct h2_ctx *ctx, struct h2_conn *cn,
				    uint32_t sid, uint64_t ts)
{
	if (cn->nstreams >= ctx->cfg.max_conn_streams && cn->shead) {
		/* RFC 9113 §5.1.2 lets peers cap concurrency; a connection
		 * that opens streams without end (or whose ends we missed)
		 * must not hold the worker's memory: record the oldest. */
		ST_CTR_INC(ctx->c, h2_stream_limit);
		cn->shead->anomalies |= A_STREAM_LIMIT;
		stream_finish(ctx, cn->shead, END_STREAM_LIMIT);
	}
	struct h2_stream *s = bpool_get(ctx->streams);
	if (!s && ctx->lru_head) {
		/* Pool full: the longest idle stream of any connection is
		 * recorded to make room (it would time out first anyway). */
		ST_CTR_INC(ctx->c, h2_streams_no_memory);
		ctx->lru_head->anomalies |= A_MEMCAP;
		stream_finish(ctx, ctx->lru_head, END_EVICTED);
		s = bpool_get(ctx->streams);
	}
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->conn = cn;
	s->id = sid;
	s->seq = cn->next_seq++;
	snprintf(s->rid, sizeof(s->rid), "%016llx",
		 (unsigned long long)compute_record_id(cn->flow, sid, s->seq));
	s->first_ts = s->last_ts = ts;
	const struct h2_cfg *cfg = &ctx->cfg;
	bchain_init(&s->method, PSEUDO_MAX);
	bchain_init(&s->scheme, PSEUDO_MAX);
	bchain_init(&s->authority, PSEUDO_MAX);
	bchain_init(&s->path, PSEUDO_MAX);
	bchain_init(&s->status, 64);
	bchain_init(&s->info, cfg->max_header_block);
	bchain_init(&s->applied, 64u << 10);
	msg_init(&s->req, cfg);
	msg_init(&s->resp, cfg);
	if (cn->midstream)
		s->anomalies |= A_MIDSTREAM;
	uint32_t b = shash_of(cn, sid) & ctx->smask;
	s->hnext = ctx->shash[b];
	ctx->shash[b] = s;
	lru_append(ctx, s);
	s->cprev = cn->stail;
	if (cn->stail)
		cn->stail->cnext = s;
	else
		cn->shead = s;
	cn->stail = s;
	cn->nstreams++;
	ST_CTR_INC(ctx->c, h2_streams);
	return s;
}

/* Records the stream once both sides ended. */
static void stream_maybe_done(struct h2_ctx *ctx, struct h2_stream *s)
{
	if (s->req.end_stream && s->resp.end_stream)
		stream_finish(ctx, s, END_COMPLETE);
}

/* ------------------------------------------------------------------ */
/* roles                                                              */
/* ------------------------------------------------------------------ */

static inline bool dir_is_client(const struct h2_conn *cn, unsigned di)
{
	return cn->flow->client_dir == di;
}

static enum h2_sender dir_sender(const struct h2_conn *cn, unsigned di)
{
	if (!cn->roles_known && !cn->flow->role_sure)
		return H2_SENDER_UNKNOWN;
	return dir_is_client(cn, di) ? H2_SENDER_CLIENT : H2_SENDER_SERVER;
}

static void confirm_client(struct h2_conn *cn, unsigned di)
{
	if (!cn->roles_known || cn->flow->client_dir != di) {
		flow_set_client(cn->flow, di);
		cn->roles_known = 1;
	}
}

/* ------------------------------------------------------------------ */
/* header fields                                                      */
/* ------------------------------------------------------------------ */

static bool name_is(const uint8_t *n, size_t nl, const char *lit)
{
	size_t l = strlen(lit);
	return nl == l && memcmp(n, lit, l) == 0;
}

static void note_memcap(struct h2_ctx *ctx, struct h2_stream *s)
{
	if (!(s->anomalies & (A_MEMCAP | A_BLOCK_TOO_BIG))) {
		if (bpool_used_bytes(ctx->bytes) >=
		    bpool_capacity_bytes(ctx->bytes) -
			    bpool_block_payload(ctx->bytes)) {
			s->anomalies |= A_MEMCAP;
			ST_CTR_INC(ctx->c, h2_memcap);
		} else {
			s->anomalies |= A_BLOCK_TOO_BIG;
			ST_CTR_INC(ctx->c, h2_block_too_big);
		}
	}
}

/* Credentials that must never reach a record in plaintext. Until the
 * policy stage (sealing under tenant keys) is in place, these values are
 * replaced by {"redacted":<length>}; the policy engine will take over this
 * decision and write sealed tokens in the same place. */
static bool always_redact(const uint8_t *n, size_t nl)
{
	static const char *const names[] = {
		"authorization", "proxy-authorization", "cookie",
		"set-cookie",	 "x-api-key",	       "x-auth-token",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (name_is(n, nl, names[i]))
			return true;
	return false;
}

/* Appends one [name, value] pair to |list|; unknown parts become null. */

/* The route of |s| once known: from its request, else the default. */
static const struct policy_route *stream_route(struct h2_ctx *ctx,
					       struct h2_stream *s)
{
	if (!s->routed && ctx->sealer) {
		s->route = record_seal_route(ctx->sealer, NULL, 0, NULL, 0, NULL,
					     0, NULL, 0);
		s->routed = 1;
	}
	return s->route;
}

/* Writes the JSON value of a field: through the policy (sealed tokens)
 * when a sealer is set, else the built-in credential list. */
static bool put_value(struct h2_ctx *ctx, struct h2_stream *s,
		      const char *section, struct bchain *list,
		      const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
	struct bpool *p = ctx->bytes;
	if (!ctx->sealer) {
		if (always_redact(n, nl))
			return record_json_redacted(p, list, vl);
		return record_json_str(p, list, v, (uint32_t)vl);
	}
	char field[160];
	snprintf(field, sizeof(field), "%s:%.*s", section,
		 (int)(nl > 120 ? 120 : nl), (const char *)n);
	struct record_seal_where w = { s->rid, field };
	uint32_t a0 = s->applied.len;
	bool ok = record_seal_value(ctx->sealer, stream_route(ctx, s), &w, n,
				    nl, v, vl, p, list, &s->applied);
	if (!ok)
		bchain_truncate(p, &s->applied, a0);
	return ok;
}

static void append_field(struct h2_ctx *ctx, struct h2_stream *s,
			 const char *section, struct bchain *list,
			 uint32_t *count, struct bchain *uncertain,
			 const uint8_t *n, size_t nl, const uint8_t *v,
			 size_t vl, unsigned unknown)
{
	struct bpool *p = ctx->bytes;
	uint32_t undo = list->len;
	bool ok = bchain_append(p, list, *count ? ",[" : "[", *count ? 2 : 1);
	if (unknown & H2_HPACK_NAME_UNKNOWN)
		ok = ok && bchain_puts(p, list, "null");
	else
		ok = ok && record_json_str(p, list, n, (uint32_t)nl);
	ok = ok && bchain_append(p, list, ",", 1);
	if (unknown & H2_HPACK_VALUE_UNKNOWN) {
		ok = ok && bchain_puts(p, list, "null");
	} else if (unknown & H2_HPACK_NAME_UNKNOWN) {
		/* A value whose name we do not know might be a credential:
		 * only its length is kept. */
		ok = ok && record_json_redacted(p, list, vl);
	} else {
		ok = ok && put_value(ctx, s, section, list, n, nl, v, vl);
	}
	ok = ok && bchain_append(p, list, "]", 1);
	if (!ok) {
		/* Never leave half a field: the list stays valid JSON. */
		bchain_truncate(p, list, undo);
		note_memcap(ctx, s);
		return;
	}
	if (unknown && uncertain) {
		char idx[16];
		int k = snprintf(idx, sizeof(idx), "%s%u",
				 uncertain->len ? "," : "", *count);
		uint32_t u0 = uncertain->len;
		if (!bchain_append(p, uncertain, idx, (uint32_t)k))
			bchain_truncate(p, uncertain, u0);
		s->anomalies |= A_UNCERTAIN;
		ST_CTR_INC(ctx->c, h2_headers_uncertain);
	}
	(*count)++;
}

static void set_pseudo(struct h2_ctx *ctx, struct bchain *c, const uint8_t *v,
		       size_t vl, unsigned unknown)
{
	if (c->len || (unknown & H2_HPACK_VALUE_UNKNOWN))
		return; /* first one wins; duplicates stay in the list */
	if (!record_json_str(ctx->bytes, c, v, (uint32_t)vl))
		bchain_reset(ctx->bytes, c); /* too long: null, still listed */
}

/* Decides where a block goes once its first field is known: pseudo-header
 * fields say request (:method ...) or response (:status) whatever roles we
 * had guessed. */
static uint8_t classify_block(struct h2_conn *cn, unsigned di,
			      struct h2_stream *s, const uint8_t *n, size_t nl,
			      const uint8_t *v, size_t vl)
{
	if (nl && n[0] == ':') {
		if (name_is(n, nl, ":status")) {
			if (dir_is_client(cn, di) && !cn->flow->role_sure)
				confirm_client(cn, di ^ 1);
			if (vl == 3 && v[0] == '1')
				return T_RESP_INFO;
			return T_RESP_HEADERS;
		}
		if (!cn->roles_known)
			confirm_client(cn, di);
		return T_REQ_HEADERS;
	}
	/* RFC 9113 §8.3: a request or response header block starts with
	 * its pseudo-header fields, so a block whose first field is a known
	 * regular field is trailers. Only when the first name is unknown
	 * (a placeholder: it may be a pseudo-header) do we have to guess:
	 * trailers end the stream, and a stream joined mid-way whose header
	 * block we missed is the usual reason to see one. */
	bool client = dir_is_client(cn, di);
	struct h2_msg *m = client ? &s->req : &s->resp;
	bool trailers;
	if (nl && !(nl == 1 && n[0] == '?'))
		trailers = true;
	else
		trailers = m->headers_seen ||
			   (cn->d[di].block_end_stream &&
			    (cn->midstream || cn->resynced));
	if (client)
		return trailers ? T_REQ_TRAILERS : T_REQ_HEADERS;
	return trailers ? T_RESP_TRAILERS : T_RESP_HEADERS;
}

struct emit_ctx {
	struct h2_conn *cn;
	unsigned di;
};

enum { P_METHOD = 0, P_SCHEME, P_AUTHORITY, P_PATH };
static const char *const pseudo_names[] = { ":method", ":scheme",
					    ":authority", ":path" };

static int pseudo_which(const uint8_t *n, size_t nl)
{
	for (int i = 0; i < 4; i++)
		if (name_is(n, nl, pseudo_names[i]))
			return i;
	return -1;
}

static struct bchain *pseudo_chain(struct h2_stream *s, int which)
{
	switch (which) {
	case P_METHOD: return &s->method;
	case P_SCHEME: return &s->scheme;
	case P_AUTHORITY: return &s->authority;
	default: return &s->path;
	}
}

static void keep_ctype(struct h2_msg *m, const uint8_t *v, size_t vl)
{
	if (vl >= 16 && !memcmp(v, "application/grpc", 16))
		m->grpc = 1;
	if (m->ctype_len)
		return;
	size_t n = vl < sizeof(m->ctype) - 1 ? vl : sizeof(m->ctype) - 1;
	memcpy(m->ctype, v, n);
	m->ctype_len = (uint8_t)n;
}

/* Decides the request's route from the pseudo-headers held back, then
 * records them (sealed as the route says), in their order. Each pseudo
 * chain then holds the JSON of its (sealed) value. */
static void route_request(struct h2_ctx *ctx, struct h2_stream *s)
{
	uint8_t *raw[4];
	uint32_t len[4];
	for (int i = 0; i < 4; i++) {
		raw[i] = ctx->pseudo_buf + i * PSEUDO_MAX;
		len[i] = bchain_copy(pseudo_chain(s, i), 0, raw[i], PSEUDO_MAX);
	}
	s->route = record_seal_route(ctx->sealer, raw[P_AUTHORITY],
				     len[P_AUTHORITY], raw[P_PATH],
				     len[P_PATH], raw[P_METHOD], len[P_METHOD],
				     NULL, 0);
	s->routed = 1;
	struct bpool *p = ctx->bytes;
	for (unsigned i = 0; i < s->npseudo; i++) {
		int w = s->pseudo[i] & 0x0f;
		const char *nm = pseudo_names[w];
		struct bchain val;
		bchain_init(&val, 0);
		bool ok = put_value(ctx, s, "request.headers", &val,
				    (const uint8_t *)nm, strlen(nm), raw[w],
				    len[w]);
		/* the header list entry */
		struct bchain *list = &s->req.hdrs;
		uint32_t undo = list->len;
		ok = ok && bchain_append(p, list, s->req.nhdrs ? ",[" : "[",
					 s->req.nhdrs ? 2 : 1);
		ok = ok && record_json_str(p, list, (const uint8_t *)nm,
					   (uint32_t)strlen(nm));
		ok = ok && bchain_append(p, list, ",", 1);
		for (struct bblock *b = val.head; ok && b; b = b->next)
			ok = bchain_append(p, list, b->data, b->used);
		ok = ok && bchain_append(p, list, "]", 1);
		if (!ok) {
			bchain_truncate(p, list, undo);
			note_memcap(ctx, s);
		} else {
			s->req.nhdrs++;
		}
		/* the pseudo chain now holds the JSON value */
		bchain_reset(p, pseudo_chain(s, w));
		if (ok)
			bchain_move(p, pseudo_chain(s, w), &val);
		bchain_reset(p, &val);
	}
	s->npseudo = 0;
}


static void on_field(void *user, const uint8_t *n, size_t nl, const uint8_t *v,
		     size_t vl, unsigned unknown)
{
	struct emit_ctx *e = user;
	struct h2_conn *cn = e->cn;
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[e->di];
	struct h2_stream *s = d->block_stream;
	if (!s || d->block_target == T_DISCARD)
		return;
	if (d->block_first) {
		d->block_first = 0;
		if (d->block_target == T_NONE)
			d->block_target =
				classify_block(cn, e->di, s, n, nl, v, vl);
		if (d->block_target == T_RESP_INFO) {
			struct bchain *in = &s->info;
			s->info_start = in->len;
			if (!bchain_append(ctx->bytes, in,
					   s->info_count ? ",[" : "[",
					   s->info_count ? 2 : 1)) {
				bchain_truncate(ctx->bytes, in, s->info_start);
				d->block_target = T_DISCARD;
				note_memcap(ctx, s);
				return;
			}
			s->info_count++;
			s->info_fields = 0;
		}
	}
	if (d->block_target == T_REQ_HEADERS && ctx->sealer && !s->routed) {
		/* Request pseudo-headers wait until the route is known (the
		 * first regular field, or the block end): their values are
		 * sealed under the route's tenant too. */
		int w = nl && n[0] == ':' ? pseudo_which(n, nl) : -1;
		if (w >= 0 && s->npseudo < sizeof(s->pseudo) &&
		    !(unknown & H2_HPACK_VALUE_UNKNOWN) &&
		    !pseudo_chain(s, w)->len) {
			if (!bchain_append(ctx->bytes, pseudo_chain(s, w), v,
					   (uint32_t)vl))
				bchain_reset(ctx->bytes, pseudo_chain(s, w));
			s->pseudo[s->npseudo++] = (uint8_t)(w | (unknown << 4));
			return;
		}
		route_request(ctx, s);
	}
	switch (d->block_target) {
	case T_REQ_HEADERS:
		if (nl && n[0] == ':') {
			if (name_is(n, nl, ":method"))
				set_pseudo(ctx, &s->method, v, vl, unknown);
			else if (name_is(n, nl, ":scheme"))
				set_pseudo(ctx, &s->scheme, v, vl, unknown);
			else if (name_is(n, nl, ":authority"))
				set_pseudo(ctx, &s->authority, v, vl, unknown);
			else if (name_is(n, nl, ":path"))
				set_pseudo(ctx, &s->path, v, vl, unknown);
		} else if (name_is(n, nl, "content-type")) {
			keep_ctype(&s->req, v, vl);
		}
		append_field(ctx, s, "request.headers", &s->req.hdrs,
			     &s->req.nhdrs, &s->req.uncertain, n, nl, v, vl,
			     unknown);
		break;
	case T_REQ_TRAILERS:
		append_field(ctx, s, "request.trailers", &s->req.trailers,
			     &s->req.ntrailers, NULL, n, nl, v, vl, unknown);
		if (unknown)
			s->anomalies |= A_UNCERTAIN;
		break;
	case T_RESP_HEADERS:
		if (name_is(n, nl, ":status"))
			set_pseudo(ctx, &s->status, v, vl, unknown);
		else if (name_is(n, nl, "content-type"))
			keep_ctype(&s->resp, v, vl);
		append_field(ctx, s, "response.headers", &s->resp.hdrs,
			     &s->resp.nhdrs, &s->resp.uncertain, n, nl, v, vl,
			     unknown);
		break;
	case T_RESP_INFO:
		append_field(ctx, s, "response.informational", &s->info,
			     &s->info_fields, NULL, n, nl, v, vl, unknown);
		if (unknown)
			s->anomalies |= A_UNCERTAIN;
		break;
	case T_RESP_TRAILERS:
		append_field(ctx, s, "response.trailers", &s->resp.trailers,
			     &s->resp.ntrailers, NULL, n, nl, v, vl, unknown);
		if (unknown)
			s->anomalies |= A_UNCERTAIN;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* header blocks                                                      */
/* ------------------------------------------------------------------ */

/* A HEADERS or PUSH_PROMISE frame starts a block for stream |sid|. */
static void block_begin(struct h2_conn *cn, unsigned di, uint32_t sid,
			uint8_t type, uint8_t flags, uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	d->in_block = 1;
	d->block_failed = 0;
	d->block_gap = 0;
	d->block_sid = sid;
	d->block_bytes = 0;
	d->block_first = 1;
	d->block_target = T_NONE;
	d->block_end_stream = (type == H2_HEADERS) &&
			      (flags & H2_FLAG_END_STREAM);
	struct h2_stream *s = stream_find(ctx, cn, sid);
	if (!s && !cn->midstream && !cn->resynced &&
	    sid <= cn->highest_sid[sid & 1]) {
		/* Seen from its start, so this stream was opened and already
		 * recorded (reset, or recorded early at a cap): a late block.
		 * Decode it to keep the table right, keep nothing. */
		ST_CTR_INC(ctx->c, h2_orphan_frames);
		d->block_target = T_DISCARD;
		d->block_stream = NULL;
		return;
	}
	if (!s) {
		s = stream_new(ctx, cn, sid, ts);
		if (sid > cn->highest_sid[sid & 1])
			cn->highest_sid[sid & 1] = sid;
	}
	d->block_stream = s;
	if (!s) {
		d->block_target = T_DISCARD; /* still decoded: table */
		return;
	}
	stream_touch(ctx, s, ts);
	if (type == H2_PUSH_PROMISE)
		d->block_target = T_REQ_HEADERS;
}

/* Settles the stream once its block ended (END_HEADERS, or given up). */
static void block_end(struct h2_conn *cn, unsigned di)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	struct h2_stream *s = d->block_stream;
	bool failed = d->block_failed;
	d->in_block = 0;
	d->block_stream = NULL;
	ST_CTR_INC(ctx->c, h2_header_blocks);
	if (failed) {
		/* The table is unknown now: the lost part may have added
		 * entries. Decode errors may mean the peer's table is
		 * bigger than our priming, so that case primes larger. */
		uint32_t sz = d->hpack.prime_size ? d->hpack.prime_size
						  : H2_HPACK_DEFAULT_TABLE;
		h2_hpack_reprime(&d->hpack, d->block_gap ? sz : sz * 2);
		ST_CTR_INC(ctx->c, h2_hpack_primed);
	} else if (d->hpack.primed && h2_hpack_exact(&d->hpack)) {
		ST_CTR_INC(ctx->c, h2_hpack_exact);
	}
	if (!s)
		return;
	if (d->block_target == T_REQ_HEADERS && ctx->sealer && !s->routed)
		route_request(ctx, s);
	if (d->block_target == T_NONE)
		d->block_target = dir_is_client(cn, di)
					  ? (s->req.headers_seen ? T_REQ_TRAILERS
								 : T_REQ_HEADERS)
					  : (s->resp.headers_seen
						     ? T_RESP_TRAILERS
						     : T_RESP_HEADERS);
	switch (d->block_target) {
	case T_RESP_INFO:
		if (!bchain_append(ctx->bytes, &s->info, "]", 1)) {
			/* Drop the whole 1xx list rather than half of it. */
			bchain_truncate(ctx->bytes, &s->info, s->info_start);
			s->info_count--;
		}
		break;
	case T_REQ_HEADERS:
	case T_REQ_TRAILERS:
		if (d->block_target == T_REQ_HEADERS)
			s->req.headers_seen = 1;
		else
			s->req.trailers_seen = 1;
		if (d->block_end_stream)
			s->req.end_stream = 1;
		break;
	case T_RESP_HEADERS:
	case T_RESP_TRAILERS:
		if (d->block_target == T_RESP_HEADERS)
			s->resp.headers_seen = 1;
		else
			s->resp.trailers_seen = 1;
		if (d->block_end_stream)
			s->resp.end_stream = 1;
		break;
	default:
		break;
	}
	stream_maybe_done(ctx, s);
}

/* The block in progress cannot be decoded any more (a gap inside it, or an
 * HPACK error). Its remaining fragments are skipped; block_end() reprimes
 * the inflater. */
static void block_mark_failed(struct h2_conn *cn, unsigned di, bool gap)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	if (d->block_failed)
		return;
	d->block_failed = 1;
	d->block_gap = gap;
	if (gap)
		ST_CTR_INC(ctx->c, h2_blocks_lost);
	else
		ST_CTR_INC(ctx->c, h2_hpack_errors);
	if (d->block_stream)
		d->block_stream->anomalies |= gap ? A_HEADERS_LOST
						  : A_HPACK_ERROR;
}

/* Gives the block up now (framing lost, or a frame that may not come
 * inside a block arrived). */
static void block_abort(struct h2_conn *cn, unsigned di, bool gap)
{
	if (!cn->d[di].in_block)
		return;
	block_mark_failed(cn, di, gap);
	block_end(cn, di);
}

static void block_feed(struct h2_conn *cn, unsigned di, const uint8_t *p,
		       uint32_t n, bool final)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	d->block_bytes += n;
	if (d->block_bytes > ctx->cfg.max_header_block && d->block_stream &&
	    d->block_target != T_DISCARD) {
		/* A flood of CONTINUATION: keep decoding so the table stays
		 * right, but keep no more fields. */
		d->block_stream->anomalies |= A_BLOCK_TOO_BIG;
		ST_CTR_INC(ctx->c, h2_block_too_big);
		d->block_target = T_DISCARD;
	}
	if (!d->block_failed) {
		struct emit_ctx e = { cn, di };
		if (h2_hpack_feed(&d->hpack, p, n, final, on_field, &e) < 0)
			block_mark_failed(cn, di, false);
	}
	if (final)
		block_end(cn, di);
}

/* ------------------------------------------------------------------ */
/* frames                                                             */
/* ------------------------------------------------------------------ */

static void frame_error(struct h2_conn *cn, unsigned di, uint32_t sid)
{
	struct h2_ctx *ctx = cn->ctx;
	ST_CTR_INC(ctx->c, h2_frame_errors);
	struct h2_stream *s = sid ? stream_find(ctx, cn, sid) : NULL;
	if (s)
		s->anomalies |= A_PROTOCOL;
	(void)di;
}

static void data_bytes(struct h2_conn *cn, unsigned di, const uint8_t *p,
		       uint32_t n, uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	struct h2_stream *s = stream_find(ctx, cn, d->fh.stream_id);
	if (!s)
		return;
	stream_touch(ctx, s, ts);
	struct h2_msg *m = dir_is_client(cn, di) ? &s->req : &s->resp;
	m->body_bytes += n;
	if (ctx->keep_bodies && m->body.len < m->body.cap)
		bchain_append(ctx->bytes, &m->body, p, n);
	if (!m->grpc)
		return;
	/* gRPC length-prefixed messages: 1-byte flag + 4-byte length. */
	while (n) {
		if (m->grpc_left) {
			uint32_t k = n < m->grpc_left ? n : m->grpc_left;
			m->grpc_left -= k;
			n -= k;
			p += k;
			continue;
		}
		m->grpc_hdr[m->grpc_hlen++] = *p++;
		n--;
		if (m->grpc_hlen == GRPC_PREFIX) {
			m->grpc_left = ((uint32_t)m->grpc_hdr[1] << 24) |
				       ((uint32_t)m->grpc_hdr[2] << 16) |
				       ((uint32_t)m->grpc_hdr[3] << 8) |
				       m->grpc_hdr[4];
			m->grpc_hlen = 0;
			m->grpc_msgs++;
			ST_CTR_INC(ctx->c, h2_grpc_messages);
		}
	}
}

static void data_end(struct h2_conn *cn, unsigned di)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	struct h2_stream *s = stream_find(ctx, cn, d->fh.stream_id);
	if (!s)
		return; /* counted when the frame began */
	if (d->fh.flags & H2_FLAG_END_STREAM) {
		struct h2_msg *m = dir_is_client(cn, di) ? &s->req : &s->resp;
		m->end_stream = 1;
		stream_maybe_done(ctx, s);
	}
}

static void settings_entry(struct h2_conn *cn, unsigned di, const uint8_t *e)
{
	/* SETTINGS from this side tell the *other* side how to send: the
	 * table size bounds the other side's encoder (decoded by the other
	 * direction's inflater), the frame size the other side's frames.
	 * We apply them at once instead of at the ACK: a passive observer
	 * only needs to accept what the peer may legally send. */
	uint16_t id = (uint16_t)((e[0] << 8) | e[1]);
	uint32_t v = ((uint32_t)e[2] << 24) | ((uint32_t)e[3] << 16) |
		     ((uint32_t)e[4] << 8) | e[5];
	struct h2_dir *other = &cn->d[di ^ 1];
	if (id == H2_SETTINGS_HEADER_TABLE_SIZE) {
		/* Nothing to do: our inflaters accept any size up to
		 * h2.max_table_size from the start, and the encoder announces
		 * the size it really uses in the block (RFC 7541 §6.3).
		 * Lowering our maximum here would wrongly fail blocks the
		 * peer encoded before it saw these SETTINGS. */
		(void)v;
	} else if (id == H2_SETTINGS_MAX_FRAME_SIZE) {
		if (v >= H2_DEFAULT_MAX_FRAME && v <= H2_MAX_FRAME_LIMIT &&
		    v > other->max_frame)
			other->max_frame = v;
	}
}

static void rst_stream(struct h2_conn *cn, unsigned di, const uint8_t *p)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_stream *s = stream_find(ctx, cn, cn->d[di].fh.stream_id);
	if (!s)
		return;
	s->rst_code = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		      ((uint32_t)p[2] << 8) | p[3];
	s->rst_by_client = dir_is_client(cn, di);
	ST_CTR_INC(ctx->c, h2_exchanges_reset);
	stream_finish(ctx, s, END_RESET);
}

static void goaway(struct h2_conn *cn, unsigned di, const uint8_t *p)
{
	struct h2_ctx *ctx = cn->ctx;
	cn->goaway = 1;
	cn->goaway_last = (((uint32_t)p[0] & 0x7f) << 24) |
			  ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	/* §6.8: the last id is about streams the *receiver* started, which
	 * the sender will not process beyond it: a server's GOAWAY refuses
	 * client (odd) streams, a client's refuses pushed (even) ones. */
	unsigned parity = dir_is_client(cn, di) ? 0 : 1;
	struct h2_stream *s = cn->shead;
	while (s) {
		struct h2_stream *next = s->cnext;
		if (s->id > cn->goaway_last && (s->id & 1) == parity)
			stream_finish(ctx, s, END_REFUSED);
		s = next;
	}
}

/* Bytes of a control frame's payload: collected into d->ctl in pieces
 * (SETTINGS entry by entry; the fixed heads of the others). */
static void control_bytes(struct h2_conn *cn, unsigned di, const uint8_t *p,
			  uint32_t n)
{
	struct h2_dir *d = &cn->d[di];
	while (n) {
		uint32_t want;
		switch (d->fh.type) {
		case H2_SETTINGS: want = 6; break;
		case H2_RST_STREAM: want = 4; break;
		case H2_GOAWAY: want = 8; break;
		default: want = 0; break;
		}
		if (d->ctl_len >= want) {
			return; /* the rest (e.g. GOAWAY debug data) skipped */
		}
		uint32_t k = want - d->ctl_len;
		if (k > n)
			k = n;
		memcpy(d->ctl + d->ctl_len, p, k);
		d->ctl_len += k;
		p += k;
		n -= k;
		if (d->ctl_len < want)
			return;
		if (d->fh.type == H2_SETTINGS) {
			if (!d->damaged)
				settings_entry(cn, di, d->ctl);
			d->ctl_len = 0;
		} else if (d->fh.type == H2_RST_STREAM) {
			if (!d->damaged)
				rst_stream(cn, di, d->ctl);
		} else if (d->fh.type == H2_GOAWAY) {
			if (!d->damaged)
				goaway(cn, di, d->ctl);
		}
	}
}

/* Number of prefix bytes before a frame's content (RFC 9113 §6.1-6.6). */
static uint8_t prefix_len(const struct h2_frame_hdr *h)
{
	uint8_t n = 0;
	bool padded = h->flags & H2_FLAG_PADDED;
	switch (h->type) {
	case H2_DATA:
		n = padded;
		break;
	case H2_HEADERS:
		n = padded + ((h->flags & H2_FLAG_PRIORITY) ? 5 : 0);
		break;
	case H2_PUSH_PROMISE:
		n = padded + 4;
		break;
	default:
		break;
	}
	return n;
}

static bool is_block_type(uint8_t t)
{
	return t == H2_HEADERS || t == H2_PUSH_PROMISE || t == H2_CONTINUATION;
}

/* A frame header was read. Returns false if it cannot be a frame here
 * (lost sync): the caller then resyncs. */
static bool frame_begin(struct h2_conn *cn, unsigned di, uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	struct h2_frame_hdr *h = &d->fh;
	h2_frame_hdr_parse(d->hbuf, h);
	const char *bad = h2_frame_check(h, d->max_frame);
	if (h->length > d->max_frame) {
		/* Not a frame we can walk over: framing is lost. */
		frame_error(cn, di, 0);
		return false;
	}
	/* Anything else that breaks a rule is walked over (its length is
	 * sound) and counted on its stream. */
	ST_CTR_INC(ctx->c, h2_frames);
	if (bad)
		frame_error(cn, di, h->stream_id);
	if (h->type > H2_FRAME_TYPE_MAX)
		ST_CTR_INC(ctx->c, h2_frames_unknown);
	/* RFC 9113 §6.10: inside a block only CONTINUATION of the same
	 * stream may come; anything else breaks the block. */
	if (d->in_block && (h->type != H2_CONTINUATION ||
			    h->stream_id != d->block_sid)) {
		frame_error(cn, di, d->block_sid);
		block_abort(cn, di, false);
	} else if (!d->in_block && h->type == H2_CONTINUATION) {
		frame_error(cn, di, h->stream_id);
	}
	d->fleft = h->length;
	d->stage = P_PREFIX;
	d->plen = 0;
	d->pad_len = 0;
	d->ctl_len = 0;
	d->damaged = 0;
	d->prefix_need = prefix_len(h);
	if (d->prefix_need > h->length) {
		frame_error(cn, di, h->stream_id);
		d->prefix_need = 0;
		d->stage = P_PADDING; /* skip it whole */
		d->content_left = 0;
		return true;
	}
	if (d->prefix_need == 0) {
		d->stage = P_CONTENT;
		d->content_left = h->length;
	}
	if (h->type == H2_HEADERS && d->prefix_need == 0)
		block_begin(cn, di, h->stream_id, h->type, h->flags, ts);
	if (h->type == H2_DATA && h->stream_id &&
	    !stream_find(ctx, cn, h->stream_id) &&
	    (h->length || (h->flags & H2_FLAG_END_STREAM))) {
		/* After a join or a resync, DATA of a stream whose headers we
		 * missed is expected: track the stream so its body counts and
		 * its trailers land in one record. Otherwise the stream was
		 * never opened (or is already recorded): counted only. */
		if (cn->midstream || cn->resynced)
			stream_new(ctx, cn, h->stream_id, ts);
		else
			ST_CTR_INC(ctx->c, h2_orphan_frames);
	}
	return true;
}

/* The prefix is complete: learn padding, start blocks. */
static void prefix_done(struct h2_conn *cn, unsigned di, uint64_t ts)
{
	struct h2_dir *d = &cn->d[di];
	struct h2_frame_hdr *h = &d->fh;
	uint32_t body = h->length - d->prefix_need;
	bool pad_error = false;
	if (h->flags & H2_FLAG_PADDED) {
		d->pad_len = d->pbuf[0];
		if (d->pad_len > body) { /* §6.1: PROTOCOL_ERROR */
			pad_error = true;
			d->pad_len = body;
		}
	}
	d->content_left = body - d->pad_len;
	d->stage = P_CONTENT;
	if (pad_error && h->type != H2_HEADERS)
		frame_error(cn, di, h->stream_id);
	if (h->type == H2_HEADERS) {
		block_begin(cn, di, h->stream_id, h->type, h->flags, ts);
		if (pad_error) /* after the stream exists, so it is marked */
			frame_error(cn, di, h->stream_id);
	} else if (h->type == H2_PUSH_PROMISE) {
		const uint8_t *q = d->pbuf + (d->prefix_need - 4);
		uint32_t promised = (((uint32_t)q[0] & 0x7f) << 24) |
				    ((uint32_t)q[1] << 16) |
				    ((uint32_t)q[2] << 8) | q[3];
		block_begin(cn, di, promised, H2_PUSH_PROMISE, h->flags, ts);
		struct h2_stream *s = d->block_stream;
		if (s) {
			s->promised_by = h->stream_id;
			s->req.end_stream = 1; /* §8.4: no request body */
		}
	}
}

static void content_bytes(struct h2_conn *cn, unsigned di, const uint8_t *p,
			  uint32_t n, uint64_t ts)
{
	struct h2_dir *d = &cn->d[di];
	switch (d->fh.type) {
	case H2_DATA:
		data_bytes(cn, di, p, n, ts);
		break;
	case H2_HEADERS:
	case H2_PUSH_PROMISE:
	case H2_CONTINUATION:
		if (d->in_block)
			block_feed(cn, di, p, n, false);
		break;
	default:
		control_bytes(cn, di, p, n);
		break;
	}
}

static void frame_end(struct h2_conn *cn, unsigned di)
{
	struct h2_dir *d = &cn->d[di];
	uint8_t t = d->fh.type;
	if (t == H2_DATA) {
		data_end(cn, di);
	} else if (is_block_type(t) && d->in_block &&
		   (d->fh.flags & H2_FLAG_END_HEADERS)) {
		block_feed(cn, di, NULL, 0, true);
	}
}

/* Consumes payload bytes of the current frame. Returns bytes used. */
static uint32_t payload_feed(struct h2_conn *cn, unsigned di, const uint8_t *p,
			     uint32_t len, uint64_t ts)
{
	struct h2_dir *d = &cn->d[di];
	uint32_t used = 0;
	while (used < len && d->fleft) {
		uint32_t avail = len - used;
		if (avail > d->fleft)
			avail = d->fleft;
		uint32_t k;
		if (d->stage == P_PREFIX) {
			k = d->prefix_need - d->plen;
			if (k > avail)
				k = avail;
			memcpy(d->pbuf + d->plen, p + used, k);
			d->plen += (uint8_t)k;
			if (d->plen == d->prefix_need)
				prefix_done(cn, di, ts);
		} else if (d->stage == P_CONTENT) {
			k = d->content_left < avail ? d->content_left : avail;
			if (k)
				content_bytes(cn, di, p + used, k, ts);
			d->content_left -= k;
			if (d->content_left == 0)
				d->stage = P_PADDING;
		} else {
			k = avail; /* padding, or a frame skipped whole */
		}
		used += k;
		d->fleft -= k;
	}
	return used;
}

/* ------------------------------------------------------------------ */
/* resync                                                             */
/* ------------------------------------------------------------------ */

static void enter_resync(struct h2_conn *cn, unsigned di)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	block_abort(cn, di, true);
	d->state = D_RESYNC;
	d->hlen = 0;
	cn->resynced = 1;
	bchain_reset(ctx->bytes, &d->resync);
	d->resync_skipped = 0;
	for (struct h2_stream *s = cn->shead; s; s = s->cnext)
		s->anomalies |= A_RESYNC;
}

/* A boundary was found at |off| of the window just flattened into
 * ctx->flat (|len| bytes): restart framing there with a fresh primed
 * inflater and parse the window's bytes from the boundary on. They are
 * first moved into a chain of their own, since parsing may need ctx->flat
 * again (a later resync) while they are being read. */
static void resync_found(struct h2_conn *cn, unsigned di, uint32_t len,
			 uint32_t off, uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	ST_CTR_INC(ctx->c, h2_resyncs);
	ST_CTR_ADD(ctx->c, h2_resync_bytes, d->resync_skipped + off);
	bchain_reset(ctx->bytes, &d->resync);
	struct bchain rest;
	bchain_init(&rest, 0);
	if (!bchain_append(ctx->bytes, &rest, ctx->flat + off, len - off)) {
		bchain_reset(ctx->bytes, &rest);
		d->state = D_DEAD;
		return;
	}
	h2_hpack_reprime(&d->hpack, d->hpack.prime_size);
	ST_CTR_INC(ctx->c, h2_hpack_primed);
	d->state = D_FRAME_HDR;
	d->hlen = 0;
	for (struct bblock *b = rest.head; b; b = b->next)
		dir_feed(cn, di, b->data, b->used, ts);
	bchain_reset(ctx->bytes, &rest);
}

static void resync_feed(struct h2_conn *cn, unsigned di, const uint8_t *p,
			uint32_t len, uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	uint32_t window = ctx->cfg.resync_window;
	while (len) {
		uint32_t room = window - d->resync.len;
		uint32_t k = len < room ? len : room;
		if (!bchain_append(ctx->bytes, &d->resync, p, k)) {
			/* No memory for the window: give this direction up. */
			bchain_reset(ctx->bytes, &d->resync);
			d->state = D_DEAD;
			ST_CTR_INC(ctx->c, h2_conns_not_h2);
			return;
		}
		p += k;
		len -= k;
		uint32_t n = bchain_copy(&d->resync, 0, ctx->flat, window);
		size_t from = 0;
		long at = h2_frame_find_boundary(
			ctx->flat, n, d->max_frame, dir_sender(cn, di),
			RESYNC_CHAIN, &from);
		if (at >= 0) {
			resync_found(cn, di, n, (uint32_t)at, ts);
			/* The rest of this run follows the window. */
			if (len)
				dir_feed(cn, di, p, len, ts);
			return;
		}
		/* Drop what can no longer start a frame. */
		if (from > 0) {
			d->resync_skipped += from;
			struct bchain keep;
			bchain_init(&keep, 0);
			bchain_append(ctx->bytes, &keep, ctx->flat + from,
				      (uint32_t)(n - from));
			bchain_reset(ctx->bytes, &d->resync);
			d->resync = keep;
			d->resync.cap = 0;
		}
		if (d->resync.len >= window) {
			/* A full window without a frame: not HTTP/2 here. */
			ST_CTR_INC(ctx->c, h2_conns_not_h2);
			ST_CTR_ADD(ctx->c, h2_resync_bytes,
				   d->resync_skipped + d->resync.len);
			bchain_reset(ctx->bytes, &d->resync);
			d->state = D_DEAD;
			return;
		}
	}
}

/* ------------------------------------------------------------------ */
/* connection start: preface, HTTP/1.1 upgrade, TLS                    */
/* ------------------------------------------------------------------ */

static bool looks_tls(const uint8_t *p, uint32_t len)
{
	/* TLS record: handshake (22), version 3.x. */
	return len >= 3 && p[0] == 0x16 && p[1] == 0x03 && p[2] <= 0x04;
}

static bool looks_h1_request(const uint8_t *p, uint32_t len)
{
	static const char *const methods[] = { "GET ",	   "POST ", "PUT ",
					       "HEAD ",	   "OPTIONS ",
					       "DELETE ", "PATCH " };
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t l = strlen(methods[i]);
		if (len >= l && !memcmp(p, methods[i], l))
			return true;
	}
	return false;
}

/* Decides how a direction seen from its first byte starts. */
static void start_dir(struct h2_conn *cn, unsigned di, const uint8_t *p,
		      uint32_t len)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	if (looks_tls(p, len)) {
		ST_CTR_INC(ctx->c, h2_conns_tls);
		cn->dead = 1;
		return;
	}
	if (len && p[0] == 'P' && !looks_h1_request(p, len)) {
		d->state = D_PREFACE;
		return;
	}
	if (looks_h1_request(p, len) || (len >= 5 && !memcmp(p, "HTTP/", 5))) {
		d->state = D_H1_HEAD;
		return;
	}
	d->state = D_FRAME_HDR; /* a server starts with its SETTINGS */
}

/* Finds "name: value" in an HTTP/1.1 head (case-insensitive name). */
static bool h1_header(const char *head, const char *name, const char **v,
		      size_t *vl)
{
	size_t nl = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
		l += 2;
		if (!strncasecmp(l, name, nl) && l[nl] == ':') {
			const char *s = l + nl + 1;
			while (*s == ' ' || *s == '\t')
				s++;
			const char *e = strstr(s, "\r\n");
			if (!e)
				return false;
			*v = s;
			*vl = (size_t)(e - s);
			return true;
		}
	}
	return false;
}

/* An HTTP/1.1 head is complete in |head| (NUL-terminated). */
static void h1_head_done(struct h2_conn *cn, unsigned di, char *head,
			 uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	const char *v;
	size_t vl;
	if (!strncmp(head, "HTTP/", 5)) {
		/* Response: only 101 to h2c continues as HTTP/2 (§3.2). */
		const char *sp = strchr(head, ' ');
		if (sp && !strncmp(sp + 1, "101", 3)) {
			confirm_client(cn, di ^ 1);
			d->state = D_FRAME_HDR;
			return;
		}
		/* The upgrade was refused: plain HTTP/1.1, not ours; the
		 * request kept as stream 1 is dropped unrecorded. */
		struct h2_stream *s1 = stream_find(ctx, cn, 1);
		if (s1)
			stream_free(ctx, s1);
		cn->dead = 1;
		ST_CTR_INC(ctx->c, h2_conns_not_h2);
		return;
	}
	bool upgrade = h1_header(head, "upgrade", &v, &vl) && vl >= 3 &&
		       !strncasecmp(v, "h2c", 3);
	if (!upgrade) {
		cn->dead = 1;
		ST_CTR_INC(ctx->c, h2_conns_not_h2);
		return;
	}
	confirm_client(cn, di);
	cn->upgrade = 1;
	ST_CTR_INC(ctx->c, h2_conns_upgrade);
	/* The upgrade request is stream 1's request (RFC 7540 §3.2). */
	struct h2_stream *s = stream_new(ctx, cn, 1, ts);
	if (s) {
		char *sp1 = strchr(head, ' ');
		char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (sp1 && sp2) {
			record_json_str(ctx->bytes, &s->method,
					(const uint8_t *)head,
					(uint32_t)(sp1 - head));
			record_json_str(ctx->bytes, &s->path,
					(const uint8_t *)sp1 + 1,
					(uint32_t)(sp2 - sp1 - 1));
		}
		record_json_str(ctx->bytes, &s->scheme,
				(const uint8_t *)"http", 4);
		if (h1_header(head, "host", &v, &vl))
			record_json_str(ctx->bytes, &s->authority,
					(const uint8_t *)v, (uint32_t)vl);
		s->req.headers_seen = 1;
	}
	d->h1_body_left = 0;
	if (h1_header(head, "content-length", &v, &vl))
		d->h1_body_left = strtoull(v, NULL, 10);
	if (s) {
		s->req.body_bytes = d->h1_body_left;
		if (!d->h1_body_left)
			s->req.end_stream = 1;
	}
	d->state = d->h1_body_left ? D_H1_BODY : D_PREFACE;
	d->preface_got = 0;
}

/* Collects an HTTP/1.1 head up to the blank line. Returns bytes used. */
static uint32_t h1_feed(struct h2_conn *cn, unsigned di, const uint8_t *p,
			uint32_t len, uint64_t ts)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	for (uint32_t i = 0; i < len; i++) {
		bchain_append(ctx->bytes, &d->h1, p + i, 1);
		uint32_t n = d->h1.len;
		if (n >= 4) {
			char tail[4];
			bchain_copy(&d->h1, n - 4, tail, 4);
			if (!memcmp(tail, "\r\n\r\n", 4)) {
				char *head = (char *)ctx->flat;
				bchain_copy(&d->h1, 0, head, n);
				head[n] = 0;
				bchain_reset(ctx->bytes, &d->h1);
				h1_head_done(cn, di, head, ts);
				return i + 1;
			}
		}
		if (n >= H1_HEAD_MAX) {
			bchain_reset(ctx->bytes, &d->h1);
			cn->dead = 1;
			ST_CTR_INC(ctx->c, h2_conns_not_h2);
			return len;
		}
	}
	return len;
}

/* ------------------------------------------------------------------ */
/* the direction state machine                                        */
/* ------------------------------------------------------------------ */

static void dir_feed(struct h2_conn *cn, unsigned di, const uint8_t *p,
		     uint32_t len, uint64_t ts)
{
	struct h2_dir *d = &cn->d[di];
	while (len && !cn->dead) {
		uint32_t k;
		switch (d->state) {
		case D_START:
			start_dir(cn, di, p, len);
			continue;
		case D_PREFACE: {
			k = H2_PREFACE_LEN - d->preface_got;
			if (k > len)
				k = len;
			if (memcmp(p, &H2_PREFACE[d->preface_got], k)) {
				frame_error(cn, di, 0);
				enter_resync(cn, di);
				continue;
			}
			d->preface_got += k;
			if (d->preface_got == H2_PREFACE_LEN) {
				confirm_client(cn, di);
				d->state = D_FRAME_HDR;
				ST_CTR_INC(cn->ctx->c, h2_conns_preface);
			}
			break;
		}
		case D_H1_HEAD:
			k = h1_feed(cn, di, p, len, ts);
			break;
		case D_H1_BODY:
			k = len < d->h1_body_left ? len : (uint32_t)d->h1_body_left;
			d->h1_body_left -= k;
			if (!d->h1_body_left) {
				struct h2_stream *s =
					stream_find(cn->ctx, cn, 1);
				if (s)
					s->req.end_stream = 1;
				d->state = D_PREFACE;
			}
			break;
		case D_FRAME_HDR:
			k = H2_FRAME_HEADER_LEN - d->hlen;
			if (k > len)
				k = len;
			memcpy(d->hbuf + d->hlen, p, k);
			d->hlen += (uint8_t)k;
			if (d->hlen == H2_FRAME_HEADER_LEN) {
				d->hlen = 0;
				if (!frame_begin(cn, di, ts)) {
					/* Re-scan from this header's bytes. */
					uint8_t hb[H2_FRAME_HEADER_LEN];
					memcpy(hb, d->hbuf, sizeof(hb));
					enter_resync(cn, di);
					resync_feed(cn, di, hb + 1,
						    H2_FRAME_HEADER_LEN - 1,
						    ts);
					break;
				}
				d->state = D_PAYLOAD;
				if (d->fleft == 0) {
					frame_end(cn, di);
					d->state = D_FRAME_HDR;
				}
			}
			break;
		case D_PAYLOAD:
			k = payload_feed(cn, di, p, len, ts);
			if (d->fleft == 0) {
				frame_end(cn, di);
				d->state = D_FRAME_HDR;
			}
			break;
		case D_RESYNC:
			resync_feed(cn, di, p, len, ts);
			return;
		default: /* D_DEAD */
			return;
		}
		p += k;
		len -= k;
	}
}

/* A gap of |len| bytes in direction |di|. Framing survives a gap that
 * falls entirely inside the current frame's payload; anything else needs
 * a resync. */
static void dir_gap(struct h2_conn *cn, unsigned di, uint64_t len)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	ST_CTR_INC(ctx->c, h2_gaps);
	if (cn->dead || d->state == D_DEAD)
		return;
	if (d->state == D_RESYNC) {
		/* Bytes before the gap cannot join bytes after it. */
		d->resync_skipped += d->resync.len;
		bchain_reset(ctx->bytes, &d->resync);
		return;
	}
	if (d->state == D_PAYLOAD && len <= d->fleft) {
		d->damaged = 1;
		if (d->fh.type == H2_DATA) {
			struct h2_stream *s =
				stream_find(ctx, cn, d->fh.stream_id);
			uint64_t body = len;
			if (d->stage == P_PREFIX && d->prefix_need) {
				/* Pad length lost: count all as body. */
				d->stage = P_CONTENT;
				d->content_left = d->fleft;
				if (s)
					s->anomalies |= A_PADDING_UNKNOWN;
			}
			if (d->stage == P_CONTENT) {
				if (body > d->content_left)
					body = d->content_left;
				d->content_left -= (uint32_t)body;
				if (d->content_left == 0)
					d->stage = P_PADDING;
			} else {
				body = 0;
			}
			if (s) {
				struct h2_msg *m = dir_is_client(cn, di)
							   ? &s->req
							   : &s->resp;
				m->body_bytes += body;
				m->body_gap_bytes += body;
				if (body)
					s->anomalies |= A_BODY_GAP;
			}
			ST_CTR_ADD(ctx->c, h2_gap_body_bytes, body);
		} else if (is_block_type(d->fh.type) && d->in_block) {
			/* The rest of the block (this frame and any
			 * CONTINUATION up to END_HEADERS) is skipped. */
			block_mark_failed(cn, di, true);
		}
		d->fleft -= (uint32_t)len;
		/* Content bookkeeping for non-DATA frames is moot now: skip
		 * the rest of the frame. */
		if (d->fh.type != H2_DATA) {
			d->stage = P_PADDING;
			d->content_left = 0;
		}
		if (d->fleft == 0) { /* the gap ended exactly with the frame */
			frame_end(cn, di);
			d->state = D_FRAME_HDR;
		}
		return;
	}
	enter_resync(cn, di);
}

/* ------------------------------------------------------------------ */
/* records                                                            */
/* ------------------------------------------------------------------ */

static void put_chain_or_null(struct record_buf *b, const struct bchain *c)
{
	if (c->len)
		record_buf_chain(b, c);
	else
		record_buf_puts(b, "null");
}

static void put_msg(struct record_buf *b, const struct h2_msg *m,
		    bool with_headers)
{
	record_buf_puts(b, ",\"headers\":[");
	if (with_headers)
		record_buf_chain(b, &m->hdrs);
	record_buf_puts(b, "],\"trailers\":[");
	if (with_headers)
		record_buf_chain(b, &m->trailers);
	record_buf_puts(b, "],\"body_bytes\":");
	record_buf_u64(b, m->body_bytes);
	record_buf_puts(b, ",\"body_gap_bytes\":");
	record_buf_u64(b, m->body_gap_bytes);
	record_buf_puts(b, m->end_stream ? ",\"end_stream\":true"
					 : ",\"end_stream\":false");
	if (m->grpc) {
		record_buf_puts(b, ",\"grpc_messages\":");
		record_buf_u64(b, m->grpc_msgs);
	}
	record_buf_puts(b, ",\"uncertain\":[");
	if (with_headers)
		record_buf_chain(b, &m->uncertain);
	record_buf_puts(b, "]");
	if (m->found.len) {
		record_buf_puts(b, ",\"body_findings\":[");
		record_buf_chain(b, &m->found);
		record_buf_puts(b, "]");
	}
}

/* ",\"ts\":\"2026-11-23T01:57:34.837095Z\"". The date part is formatted
 * once per second of packet time (cached in |ctx|). */
static void put_ts(struct h2_ctx *ctx, struct record_buf *b, uint64_t ns)
{
	uint64_t sec = ns / 1000000000ull;
	if (sec != ctx->ts_sec || !ctx->ts_text[0]) {
		time_t t = (time_t)sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(ctx->ts_text, sizeof(ctx->ts_text), "%Y-%m-%dT%H:%M:%S",
			 &tm);
		ctx->ts_sec = sec;
	}
	char us[8];
	uint64_t frac = ns % 1000000000ull / 1000;
	for (int i = 5; i >= 0; i--, frac /= 10)
		us[i] = (char)('0' + frac % 10);
	us[6] = 'Z';
	record_buf_puts(b, ",\"ts\":\"");
	record_buf_puts(b, ctx->ts_text);
	record_buf_put(b, ".", 1);
	record_buf_put(b, us, 7);
	record_buf_put(b, "\"", 1);
}


/* Writes the whole record; |with_headers| false leaves header lists out
 * (used when they do not fit in max_record). */
static void build_record(struct h2_ctx *ctx, struct h2_stream *s,
			 struct record_buf *b, bool with_headers)
{
	struct flow *f = s->conn->flow;
	struct h2_conn *cn = s->conn;
	unsigned cd = f->client_dir == 1 ? 1 : 0;
	if (cn->ep_dir != cd + 1) { /* formatted once per connection/role */
		flow_key_endpoint_str(&f->key, cd, cn->ep[0], sizeof(cn->ep[0]));
		flow_key_endpoint_str(&f->key, cd ^ 1, cn->ep[1],
				      sizeof(cn->ep[1]));
		cn->ep_dir = (uint8_t)(cd + 1);
	}
	const char *cli = cn->ep[0], *srv = cn->ep[1];
	b->len = 0;
	b->overflow = false;
	record_buf_puts(b, "{\"v\":1,\"id\":\"");
	record_buf_put(b, s->rid, 16);
	record_buf_puts(b, "\",\"source\":\"");
	record_buf_puts(b, ctx->run.source ? ctx->run.source : "tap");
	record_buf_put(b, "\"", 1);
	put_ts(ctx, b, s->first_ts);
	record_buf_puts(b, ",\"first_ts_ns\":");
	record_buf_u64(b, s->first_ts);
	record_buf_puts(b, ",\"last_ts_ns\":");
	record_buf_u64(b, s->last_ts);
	record_buf_puts(b, ",\"client\":\"");
	record_buf_puts(b, cli);
	record_buf_puts(b, "\",\"server\":\"");
	record_buf_puts(b, srv);
	record_buf_puts(b, (s->conn->roles_known || f->role_sure)
				   ? "\",\"roles\":\"sure\",\"stream_id\":"
				   : "\",\"roles\":\"guessed\",\"stream_id\":");
	record_buf_u64(b, s->id);
	if (s->promised_by) {
		record_buf_puts(b, ",\"promised_by\":");
		record_buf_u64(b, s->promised_by);
	}
	record_buf_puts(b, ",\"request\":{\"method\":");
	put_chain_or_null(b, &s->method);
	record_buf_puts(b, ",\"scheme\":");
	put_chain_or_null(b, &s->scheme);
	record_buf_puts(b, ",\"authority\":");
	put_chain_or_null(b, &s->authority);
	record_buf_puts(b, ",\"path\":");
	put_chain_or_null(b, &s->path);
	put_msg(b, &s->req, with_headers);
	record_buf_puts(b, "},\"response\":{\"status\":");
	char st[8];
	if (s->status.len == 5 && bchain_copy(&s->status, 0, st, 5) == 5 &&
	    st[1] >= '1' && st[1] <= '9' && st[2] >= '0' && st[2] <= '9' &&
	    st[3] >= '0' && st[3] <= '9')
		record_buf_put(b, st + 1, 3); /* "200" as a number */
	else
		record_buf_puts(b, "null"); /* absent or not 3 digits */
	record_buf_puts(b, ",\"informational\":[");
	if (with_headers)
		record_buf_chain(b, &s->info);
	record_buf_puts(b, "]");
	put_msg(b, &s->resp, with_headers);
	record_buf_puts(b, "},\"end\":\"");
	record_buf_puts(b, end_names[s->end]);
	record_buf_put(b, "\"", 1);
	if (s->end == END_RESET) {
		record_buf_puts(b, ",\"rst_code\":");
		record_buf_u64(b, s->rst_code);
		record_buf_puts(b, s->rst_by_client ? ",\"rst_by\":\"client\""
						    : ",\"rst_by\":\"server\"");
	}
	if (ctx->sealer) {
		const char *tn = record_seal_tenant(s->route);
		const char *rn = record_seal_route_name(s->route);
		record_buf_puts(b, ",\"tenant\":");
		if (tn)
			record_buf_str(b, (const uint8_t *)tn,
				       (uint32_t)strlen(tn));
		else
			record_buf_puts(b, "null");
		record_buf_puts(b, ",\"route\":");
		if (rn)
			record_buf_str(b, (const uint8_t *)rn,
				       (uint32_t)strlen(rn));
		else
			record_buf_puts(b, "null");
		record_buf_puts(b, ",\"sealed\":[");
		if (with_headers)
			record_buf_chain(b, &s->applied);
		record_buf_puts(b, "]");
	}
	record_buf_puts(b, ",\"anomalies\":[");
	const char *sep = "";
	for (unsigned i = 0; i < sizeof(anomaly_names) / sizeof(*anomaly_names);
	     i++) {
		if (s->anomalies & (1u << i)) {
			record_buf_printf(b, "%s\"%s\"", sep, anomaly_names[i]);
			sep = ",";
		}
	}
	if (!with_headers)
		record_buf_printf(b, "%s\"record_too_big\"", sep);
	record_buf_puts(b, "]}\n");
}

/* Runs the route's body rules over the kept body bytes of each side. */
static void scan_bodies(struct h2_ctx *ctx, struct h2_stream *s)
{
	const struct policy_route *r = stream_route(ctx, s);
	if (!record_seal_scans_bodies(r))
		return;
	struct h2_msg *ms[2] = { &s->req, &s->resp };
	static const char *const names[2] = { "request.body",
					      "response.body" };
	for (int i = 0; i < 2; i++) {
		struct h2_msg *m = ms[i];
		if (!m->body.len)
			continue;
		uint32_t n = bchain_copy(&m->body, 0, ctx->body_buf,
					 ctx->cfg.body_inspect);
		record_seal_body(ctx->sealer, r, s->rid, names[i], m->ctype,
				 m->ctype_len, ctx->body_buf, n, ctx->bytes,
				 &m->found);
		/* the plaintext body goes as soon as it is scanned */
		bchain_reset(ctx->bytes, &m->body);
	}
}

static void emit_record(struct h2_ctx *ctx, struct h2_stream *s)
{
	/* Only exchanges with something to say: a stream we saw headers of
	 * (either side). Streams that carried only DATA were counted as
	 * orphan frames. */
	if (!s->req.headers_seen && !s->resp.headers_seen &&
	    !s->req.trailers_seen && !s->resp.trailers_seen)
		return;
	if (!s->req.headers_seen)
		s->anomalies |= A_REQ_MISSED;
	if (!s->resp.headers_seen && s->end != END_RESET &&
	    s->end != END_REFUSED)
		s->anomalies |= A_RESP_MISSED;
	if (ctx->sealer)
		scan_bodies(ctx, s);
	struct record_buf b = { .p = ctx->scratch, .cap = ctx->cfg.max_record };
	build_record(ctx, s, &b, true);
	if (b.overflow) {
		ST_CTR_INC(ctx->c, h2_records_too_big);
		build_record(ctx, s, &b, false);
		if (b.overflow)
			return;
	}
	ST_CTR_INC(ctx->c, h2_exchanges);
	if (s->end == END_COMPLETE)
		ST_CTR_INC(ctx->c, h2_exchanges_complete);
	if (s->anomalies & ~(uint32_t)A_MIDSTREAM)
		ST_CTR_INC(ctx->c, h2_exchanges_anomalous);
	if (ctx->sink.write && ctx->sink.write(ctx->sink.user, b.p, b.len) < 0)
		ST_CTR_INC(ctx->c, h2_records_dropped);
}

/* ------------------------------------------------------------------ */
/* connections and the reasm consumer                                 */
/* ------------------------------------------------------------------ */

static struct h2_conn *conn_get(struct h2_ctx *ctx, struct flow *f)
{
	if (f->app == &ctx->no_conn)
		return NULL;
	if (f->app)
		return f->app;
	struct h2_conn *cn = bpool_get(ctx->conns);
	if (!cn) {
		ST_CTR_INC(ctx->c, h2_conns_no_memory);
		f->app = &ctx->no_conn;
		return NULL;
	}
	memset(cn, 0, sizeof(*cn));
	cn->ctx = ctx;
	cn->flow = f;
	cn->roles_known = f->role_sure;
	for (unsigned i = 0; i < 2; i++) {
		struct h2_dir *d = &cn->d[i];
		d->max_frame = H2_DEFAULT_MAX_FRAME;
		bchain_init(&d->h1, H1_HEAD_MAX + 4);
		bchain_init(&d->resync, 0);
	}
	ST_CTR_INC(ctx->c, h2_conns);
	f->app = cn;
	return cn;
}

/* True if |p| is where a connection's bytes begin even though the SYN was
 * not seen (a mirror may deliver the first data before the handshake, or
 * lose the handshake): the client preface, or a server's first SETTINGS
 * (non-ACK, stream 0, whole entries). A mid-stream join landing exactly on
 * a SETTINGS frame is taken for a start too; then references to unseen
 * table entries fail to decode, are counted, and the table is primed. */
static bool looks_like_start(const uint8_t *p, uint32_t len)
{
	if (len >= 4 && !memcmp(p, H2_PREFACE, len < H2_PREFACE_LEN ? len
								   : H2_PREFACE_LEN))
		return true;
	if (len < H2_FRAME_HEADER_LEN)
		return false;
	struct h2_frame_hdr h;
	h2_frame_hdr_parse(p, &h);
	return h.type == H2_SETTINGS && h.flags == 0 && h.stream_id == 0 &&
	       h.length % 6 == 0 && h.length <= 6 * 16;
}

/* Sets a direction up at its first event. A direction whose first byte
 * follows its SYN, or whose first bytes look like a connection start, is
 * parsed from the start with an empty table; one picked up mid-stream (or
 * whose first event is a gap) starts by looking for a frame boundary, with
 * a primed table. */
static bool dir_init(struct h2_conn *cn, unsigned di, const uint8_t *p,
		     uint32_t len, bool gap_first)
{
	struct h2_ctx *ctx = cn->ctx;
	struct h2_dir *d = &cn->d[di];
	if (d->ready)
		return true;
	bool from_start = !gap_first &&
			  ((cn->flow->dir[di].flags & REASM_DIR_SYN) ||
			   looks_like_start(p, len));
	if (h2_hpack_init_heap(&d->hpack, ctx->cfg.max_table_size,
			       !from_start, ctx->heap) < 0) {
		cn->dead = 1;
		ST_CTR_INC(ctx->c, h2_conns_no_memory);
		return false;
	}
	d->ready = 1;
	if (!from_start) {
		ST_CTR_INC(ctx->c, h2_hpack_primed);
		d->state = D_RESYNC;
		if (!cn->midstream) {
			cn->midstream = 1;
			ST_CTR_INC(ctx->c, h2_conns_midstream);
			for (struct h2_stream *s = cn->shead; s; s = s->cnext)
				s->anomalies |= A_MIDSTREAM;
		}
	}
	return true;
}

static void conn_free(struct h2_ctx *ctx, struct h2_conn *cn,
		      enum stream_end end)
{
	/* A header block still open (CONTINUATION never ended) counts as
	 * lost, so its stream is recorded with what was decoded. */
	for (unsigned i = 0; i < 2; i++)
		if (cn->d[i].ready && cn->d[i].in_block)
			block_abort(cn, i, true);
	while (cn->shead) {
		struct h2_stream *s = cn->shead;
		stream_finish(ctx, s,
			      cn->goaway && end == END_CONN_CLOSED ? END_GOAWAY
								   : end);
	}
	for (unsigned i = 0; i < 2; i++) {
		if (cn->d[i].ready)
			h2_hpack_fini(&cn->d[i].hpack);
		bchain_reset(ctx->bytes, &cn->d[i].h1);
		bchain_reset(ctx->bytes, &cn->d[i].resync);
	}
	cn->flow->app = NULL;
	bpool_put(ctx->conns, cn);
}

static void on_data(void *user, struct flow *f, unsigned dir, uint64_t off,
		    const uint8_t *data, uint32_t len, uint64_t ts)
{
	struct h2_ctx *ctx = user;
	struct h2_conn *cn = conn_get(ctx, f);
	if (!cn || cn->dead)
		return;
	(void)off;
	if (!dir_init(cn, dir, data, len, false))
		return;
	dir_feed(cn, dir, data, len, ts);
}

static void on_gap(void *user, struct flow *f, unsigned dir, uint64_t off,
		   uint64_t len, uint64_t ts)
{
	(void)off, (void)ts;
	struct h2_ctx *ctx = user;
	struct h2_conn *cn = conn_get(ctx, f);
	if (!cn || cn->dead)
		return;
	if (!cn->d[dir].ready) {
		dir_init(cn, dir, NULL, 0, true);
		return;
	}
	dir_gap(cn, dir, len);
}

static void on_end(void *user, struct flow *f, unsigned dir,
		   enum reasm_end how, uint64_t ts)
{
	(void)dir, (void)ts;
	struct h2_ctx *ctx = user;
	if (!f->app || f->app == &ctx->no_conn)
		return;
	struct h2_conn *cn = f->app;
	if (!reasm_flow_done(f))
		return; /* wait for the other direction */
	enum stream_end end;
	switch (how) {
	case REASM_END_FIN: end = END_CONN_CLOSED; break;
	case REASM_END_RST: end = END_CONN_RESET; break;
	case REASM_END_TIMEOUT: end = END_TIMEOUT; break;
	case REASM_END_EVICTED: end = END_EVICTED; break;
	case REASM_END_REPLACED: end = END_CONN_REPLACED; break;
	default: end = END_SHUTDOWN; break;
	}
	conn_free(ctx, cn, end);
}

static void on_flow_free(void *user, struct flow *f)
{
	struct h2_ctx *ctx = user;
	if (f->app && f->app != &ctx->no_conn)
		conn_free(ctx, f->app, END_SHUTDOWN);
	f->app = NULL;
}

static const struct reasm_ops h2_ops = {
	.on_data = on_data,
	.on_gap = on_gap,
	.on_end = on_end,
	.on_flow_free = on_flow_free,
};

const struct reasm_ops *h2_reasm_ops(void)
{
	return &h2_ops;
}

void h2_ctx_keep_bodies(struct h2_ctx *ctx, bool keep)
{
	ctx->keep_bodies = keep;
}

void h2_ctx_set_sealer(struct h2_ctx *ctx, struct record_sealer *rs)
{
	ctx->sealer = rs;
}

unsigned h2_ctx_tick(struct h2_ctx *ctx, uint64_t now, unsigned budget)
{
	unsigned n = 0;
	while (n < budget && ctx->lru_head &&
	       now > ctx->lru_head->last_ts &&
	       now - ctx->lru_head->last_ts >= ctx->cfg.stream_timeout_ns) {
		stream_finish(ctx, ctx->lru_head, END_TIMEOUT);
		n++;
	}
	return n;
}

struct h2_ctx *h2_ctx_new(const struct h2_cfg *cfg,
			  const struct h2_run_info *run,
			  const struct h2_sink *sink, struct st_counters *c)
{
	struct h2_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->cfg = *cfg;
	if (run)
		ctx->run = *run;
	if (sink)
		ctx->sink = *sink;
	ctx->c = c;
	uint32_t bh = (uint32_t)sizeof(struct bblock);
	ctx->conns = bpool_new((uint32_t)sizeof(struct h2_conn) + bh,
			       (uint64_t)cfg->max_connections *
				       (sizeof(struct h2_conn) + bh + 8));
	ctx->streams = bpool_new((uint32_t)sizeof(struct h2_stream) + bh,
				 (uint64_t)cfg->max_streams *
					 (sizeof(struct h2_stream) + bh + 8));
	ctx->bytes = bpool_new(1024, cfg->memcap);
	uint32_t nb = 1;
	while (nb < cfg->max_streams)
		nb <<= 1;
	ctx->smask = nb - 1;
	ctx->shash = calloc(nb, sizeof(*ctx->shash));
	ctx->scratch = malloc(cfg->max_record);
	/* These hold plaintext (pseudo-header values, bodies being scanned,
	 * resync windows): not dumped. */
	ctx->pseudo_buf = mem_nodump_alloc(4 * PSEUDO_MAX);
	ctx->heap = mem_heap_new();
	ctx->body_buf = mem_nodump_alloc(cfg->body_inspect);
	/* The flat window holds a resync window plus one run after it, and
	 * an HTTP/1.1 head. */
	size_t flat = (size_t)cfg->resync_window * 2 + H1_HEAD_MAX + 16;
	ctx->flat_len = flat;
	ctx->flat = mem_nodump_alloc(flat);
	if (!ctx->conns || !ctx->streams || !ctx->bytes || !ctx->shash ||
	    !ctx->scratch || !ctx->flat || !ctx->pseudo_buf ||
	    !ctx->body_buf || !ctx->heap) {
		h2_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

void h2_ctx_free(struct h2_ctx *ctx)
{
	if (!ctx)
		return;
	bpool_free(ctx->conns);
	bpool_free(ctx->streams);
	bpool_free(ctx->bytes);
	free(ctx->shash);
	free(ctx->scratch);
	mem_nodump_free(ctx->flat, ctx->flat_len);
	mem_nodump_free(ctx->pseudo_buf, 4 * PSEUDO_MAX);
	mem_nodump_free(ctx->body_buf, ctx->cfg.body_inspect);
	mem_heap_free(ctx->heap);
	free(ctx);
}
