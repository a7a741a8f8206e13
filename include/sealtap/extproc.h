/* ext_proc callout backend: sealtap as an Envoy external processor.
 *
 * Envoy (or a Google Cloud Service Extensions callout) opens one gRPC
 * stream per HTTP request on /envoy.service.ext_proc.v3.ExternalProcessor/
 * Process and sends one ProcessingRequest per phase (request headers,
 * body, trailers, response headers, body, trailers) as its processing mode
 * says; sealtap answers each with the ProcessingResponse of the matching
 * type carrying header/body mutations (sensitive values replaced) or an
 * immediate_response when a deny rule matches, and writes one record per
 * exchange through the export rings.
 *
 * Layers, one file each:
 *   extproc_server.c  listeners, TLS/ALPN/mTLS, event-loop threads sharing
 *                     the port (SO_REUSEPORT), nghttp2 sessions, gRPC
 *                     framing, grpc.health.v1, HTTP/1.1 health port
 *   extproc_stream.c  one ext_proc exchange: phase order, processing
 *                     modes, replies, the record
 *   extproc_policy.c  what to change: the policy decider (the tap's
 *                     policy, sealing and keys behind the decider
 *                     interface below)
 *   extproc_main.c    `sealtap extproc --config FILE --policy FILE`
 * The protocol itself is in proto/ (compiled with protobuf-c). The
 * behaviour follows the Envoy API protos: docs/extproc.md.
 */
#ifndef SEALTAP_EXTPROC_H
#define SEALTAP_EXTPROC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sealtap/common.h"
#include "sealtap/counters.h"

struct keys_cache;
struct policy;
struct policy_request;

/* gRPC method paths served. */
#define EXTPROC_PATH_PROCESS "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
#define EXTPROC_PATH_HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define EXTPROC_PATH_HEALTH_WATCH "/grpc.health.v1.Health/Watch"
#define EXTPROC_SERVICE_NAME "envoy.service.ext_proc.v3.ExternalProcessor"

#define EXTPROC_REQUEST_ID_DEFAULT "x-sealtap-request-id"
#define EXTPROC_LISTEN_DEFAULT "0.0.0.0:9000"
#define EXTPROC_MAX_LISTEN 16

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum extproc_grpc_status {
	EXTPROC_GRPC_OK = 0,
	EXTPROC_GRPC_CANCELLED = 1,
	EXTPROC_GRPC_UNKNOWN = 2,
	EXTPROC_GRPC_INVALID_ARGUMENT = 3,
	EXTPROC_GRPC_DEADLINE_EXCEEDED = 4,
	EXTPROC_GRPC_NOT_FOUND = 5,
	EXTPROC_GRPC_FAILED_PRECONDITION = 9,
	EXTPROC_GRPC_RESOURCE_EXHAUSTED = 8,
	EXTPROC_GRPC_UNIMPLEMENTED = 12,
	EXTPROC_GRPC_INTERNAL = 13,
	EXTPROC_GRPC_UNAVAILABLE = 14,
};

/* ---- run-time configuration (filled from struct st_config) ---- */

struct extproc_cfg {
	const char *listen[EXTPROC_MAX_LISTEN]; /* "host:port", "[v6]:port" */
	unsigned nlisten;
	const char *tls_cert, *tls_key; /* both or neither: TLS with ALPN h2 */
	const char *tls_client_ca;      /* set: clients must present a cert */
	unsigned threads;               /* event-loop threads */
	uint64_t max_message;           /* bytes of one gRPC message */
	uint32_t max_streams;           /* SETTINGS_MAX_CONCURRENT_STREAMS */
	uint32_t max_connections;       /* open connections, all threads
					   (0: no cap) */
	uint32_t max_header_list;       /* SETTINGS_MAX_HEADER_LIST_SIZE */
	uint64_t idle_timeout_ns;       /* connection without streams */
	uint64_t stream_timeout_ns;     /* stream without a frame; replies
					   not read (write stall) */
	uint64_t shutdown_timeout_ns;   /* drain after GOAWAY, then close */
	const char *request_id_header;  /* NULL or "": none added */
	const char *health_listen;      /* HTTP/1.1 GET / port; NULL: off */
	const struct policy *policy;    /* NULL: the built-in policy */
	struct keys_cache *keys;        /* one reader per thread; NULL:
					   every tenant fails closed */
	unsigned key_reader_base;       /* thread i is cache reader base + i
					   (sealtap run: after the tap's) */
	bool records;                   /* write exchange records */
	/* exporter (export.* options) */
	const char *record_dir;
	uint64_t ring_size, file_max_bytes, file_max_age_ns, flush_ns;
	uint32_t batch_bytes;
};

/* ---- counters ---- */

/* X(name, help): per event-loop thread, written only by that thread. */
#define EXTPROC_COUNTER_LIST(X)                                                \
	X(conns_accepted, "connections accepted")                              \
	X(conns_tls, "connections that completed a TLS handshake")             \
	X(conns_tls_failed, "connections refused in the TLS handshake")        \
	X(conns_refused_limit, "connections closed at accept: "                \
	  "max_connections open")                                              \
	X(conns_closed, "connections closed")                                  \
	X(conns_bad_preface, "connections closed: not the HTTP/2 preface")     \
	X(conns_http1, "connections closed: HTTP/1.x request (505 sent)")      \
	X(conns_protocol_error, "connections closed: HTTP/2 protocol error")   \
	X(conns_flood, "connections closed: stream reset flood (GOAWAY)")      \
	X(conns_idle_timeout, "connections closed: idle")                      \
	X(conns_write_stalled, "connections closed: output waited stream_timeout" \
	  " for a client that did not read")                                  \
	X(conns_drained, "connections closed by graceful shutdown")            \
	X(streams_opened, "gRPC streams opened")                               \
	X(streams_process, "ext_proc Process streams")                         \
	X(streams_health, "grpc.health.v1 Check calls")                        \
	X(streams_ok, "streams ended with grpc-status 0")                      \
	X(streams_cancelled, "streams cancelled by the client after half-close" \
	  " or in observability mode (normal)")                               \
	X(streams_reset, "streams reset by the client before they ended")      \
	X(streams_premature_reset, "streams reset before a complete message")  \
	X(streams_error, "streams ended with a gRPC error status")             \
	X(streams_unimplemented, "streams for unknown methods (status 12)")    \
	X(streams_bad_request, "streams refused: method or content-type")      \
	X(streams_header_too_big, "streams refused: header list too large")    \
	X(streams_deadline, "streams ended by grpc-timeout (status 4)")        \
	X(streams_idle_timeout, "streams ended: idle too long")                \
	X(streams_write_stalled, "streams reset (CANCEL): replies unread for"   \
	  " stream_timeout")                                                   \
	X(streams_backpressure, "times a stream's input was held back: unread" \
	  " replies over the cap (flow control)")                              \
	X(msgs, "gRPC messages received")                                      \
	X(msgs_request_headers, "ProcessingRequest request_headers")           \
	X(msgs_response_headers, "ProcessingRequest response_headers")         \
	X(msgs_request_body, "ProcessingRequest request_body")                 \
	X(msgs_response_body, "ProcessingRequest response_body")               \
	X(msgs_request_trailers, "ProcessingRequest request_trailers")         \
	X(msgs_response_trailers, "ProcessingRequest response_trailers")       \
	X(msgs_observability, "messages in observability mode (not answered)") \
	X(msgs_after_immediate, "messages after an immediate_response (ignored)")\
	X(msgs_after_eos, "body chunks after end of stream (ignored)")         \
	X(msgs_unknown_fields, "messages carrying unknown fields (skipped)")   \
	X(msgs_malformed, "messages that are not valid protobuf (status 13)")  \
	X(msgs_truncated, "streams ended inside a gRPC message (status 13)")   \
	X(msgs_too_large, "messages over max_message (status 8)")              \
	X(msgs_over_conn_input, "messages refused: partial input waiting on "   \
	  "the connection over its cap (status 8)")                            \
	X(msgs_compressed, "compressed messages refused (status 12)")          \
	X(msgs_out_of_order, "messages out of phase order (status 3)")         \
	X(replies, "ProcessingResponse messages sent")                         \
	X(replies_streamed, "streamed_response body chunks sent")              \
	X(grpc_frames_cut, "STREAMED gRPC/protobuf bodies that ended inside "   \
	  "what was held (lost)")                                               \
	X(body_chunks_encoded, "body chunks with a content-encoding (not "      \
	  "scanned: limits.unscanned)")                                         \
	X(immediate_responses, "immediate_response replies")                   \
	X(denials, "exchanges denied by a rule")                               \
	X(mutations_replaced, "header values replaced")                        \
	X(mutations_removed, "headers removed")                                \
	X(mutations_added, "headers added (request id)")                       \
	X(mutations_protected, "mutations refused on protected headers")       \
	X(mutations_body, "body chunks replaced")                              \
	X(mutations_observed, "mutations decided in observability mode, "      \
	  "never sent (the data plane applies nothing there)")                 \
	X(mode_overrides, "processing mode overrides sent (per route)")        \
	X(mode_overrides_ignored, "overrides a route needed but not sent: the" \
	  " data plane announced a mode in which it ignores them")            \
	X(health_http, "HTTP/1.1 health port requests")                        \
	X(health_http_refused, "health port connections closed at once: "     \
	  "HEALTH_CONNS_MAX open")                                             \
	X(accept_paused, "times a thread stopped accepting for 100 ms: no "    \
	  "file descriptor or memory (EMFILE, ENFILE)")                        \
	X(records, "exchange records written to the export ring")              \
	X(records_dropped, "records dropped: export ring full")                \
	X(records_too_big, "records over the size cap (headers left out)")    \
	X(record_write_errors, "record file writes that failed (disk full, "  \
	  "I/O error): cut back to the last whole record, retried each second")\
	X(records_lost, "records the exporter took but never wrote: writes "  \
	  "still failing at shutdown, or no memory")

enum extproc_counter {
#define EXTPROC_CTR_ENUM(name, help) EXTPROC_CTR_##name,
	EXTPROC_COUNTER_LIST(EXTPROC_CTR_ENUM)
#undef EXTPROC_CTR_ENUM
	EXTPROC_CTR__COUNT
};

/* Latency of one message: from the moment its last byte was read to the
 * moment its reply was queued for sending. Bucket i holds latencies in
 * [2^i, 2^(i+1)) ns; the last bucket takes the rest. */
#define EXTPROC_HIST_BUCKETS 40

struct extproc_counters {
	uint64_t v[EXTPROC_CTR__COUNT];
	uint64_t lat[EXTPROC_HIST_BUCKETS];
	struct st_counters seal; /* the sealer's (seal_*), as in the tap */
} ST_CACHE_ALIGNED;

/* one writer, readers anywhere: see st_ctr_add() in counters.h */
#define EXTPROC_INC(c, name) st_ctr_add(&(c)->v[EXTPROC_CTR_##name], 1)
#define EXTPROC_ADD(c, name, n) st_ctr_add(&(c)->v[EXTPROC_CTR_##name], (n))

const char *extproc_counter_name(enum extproc_counter id);
void extproc_counters_sum(struct extproc_counters *dst,
			  const struct extproc_counters *src);
void extproc_counters_lat(struct extproc_counters *c, uint64_t ns);
/* Latency quantile |q| (0..1) in ns, from the histogram (upper bucket
 * edge); 0 if empty. */
uint64_t extproc_counters_quantile(const struct extproc_counters *c, double q);
/* Non-zero counters (the seal_* ones included) and latency quantiles as
 * one JSON object. */
void extproc_counters_write_json(FILE *out, const struct extproc_counters *c);
/* One line for humans: connections, streams, messages, mutations,
 * denials, errors, records; |who| starts it ("sealtap extproc"). */
void extproc_write_summary(FILE *out, const char *who,
			   const struct extproc_counters *c, double wall_s);
/* "name value  # help" lines, non-zero only. */
void extproc_counters_write_text(FILE *out, const struct extproc_counters *c);

/* ---- a growable byte buffer with a cap ---- */

struct extproc_buf {
	uint8_t *p;
	size_t len, cap;
};

/* Makes room for |n| more bytes; false on allocation failure. */
bool extproc_buf_reserve(struct extproc_buf *b, size_t n);
bool extproc_buf_put(struct extproc_buf *b, const void *s, size_t n);
void extproc_buf_free(struct extproc_buf *b);
/* |b| is being sent from offset *|off|: empties it once all is sent, and
 * moves the unsent tail to the front once more than half is, so a buffer
 * that never drains completely does not grow by all it ever sent (fewer
 * bytes move than were sent since the last move: O(1) a byte). */
void extproc_buf_sent(struct extproc_buf *b, size_t *off);

/* ---- deciding mutations ---- */

/* Which part of the exchange a header or body belongs to. */
enum extproc_part {
	EXTPROC_REQ_HEADERS = 0,
	EXTPROC_REQ_BODY,
	EXTPROC_REQ_TRAILERS,
	EXTPROC_RESP_HEADERS,
	EXTPROC_RESP_BODY,
	EXTPROC_RESP_TRAILERS,
	EXTPROC_PART__COUNT,
};

enum extproc_verdict {
	EXTPROC_KEEP = 0,
	EXTPROC_REPLACE, /* new value in the decision */
	EXTPROC_REMOVE,  /* header removed, body cleared */
	EXTPROC_DENY,    /* answer the exchange with immediate_response */
};

/* What a decider returns. For REPLACE the new value is written into
 * |out| (the caller's scratch buffer, reset before each call). For DENY
 * |status|, |body|, |details| describe the immediate response and |rule|
 * names the rule that denied; all are static strings (the policy's) and
 * never hold request data. */
struct extproc_decision {
	enum extproc_verdict verdict;
	struct extproc_buf *out;
	uint32_t status;
	const char *body;
	const char *details;
	const char *rule;
};

/* Body send modes (ProcessingMode.BodySendMode). */
enum extproc_body_mode {
	EXTPROC_BODY_NONE = 0,
	EXTPROC_BODY_STREAMED = 1,
	EXTPROC_BODY_BUFFERED = 2,
	EXTPROC_BODY_BUFFERED_PARTIAL = 3,
	EXTPROC_BODY_FULL_DUPLEX_STREAMED = 4,
	EXTPROC_BODY_GRPC = 5,
};

/* A mode_override replaces the data plane's whole ProcessingMode for the
 * exchange (proto3 has no "unset"): both body modes are sent; header and
 * trailer modes are sent as DEFAULT (as configured). */
struct extproc_mode {
	enum extproc_body_mode request_body;
	enum extproc_body_mode response_body;
};

/* What a decider keeps of one exchange, and what it says about it in the
 * record. The exchange owns it (zeroed when the exchange starts, with
 * |record_id| set, freed with it); the decider fills the rest. Nothing in
 * it may hold request data in plain. */
struct extproc_xdec {
	char record_id[17];       /* the record id, 16 hex digits: tokens are
				     bound to it */
	const void *route;        /* the decider's choice for the exchange */
	const char *tenant;       /* for the record: whose keys seal; NULL */
	const char *route_name;   /* for the record; NULL */
	bool notes;               /* the engine writes a record: fill
				     |applied| and |findings| */
	struct extproc_buf applied;     /* record "sealed": JSON objects,
					   comma-separated */
	struct extproc_buf findings[2]; /* record "body_findings" of the
					   request and the response */
	struct extproc_buf body_state[2]; /* the policy's scanner between
					     chunks of the request and the
					     response body (body bytes:
					     secret memory like the rest) */
	struct extproc_buf body_tail[2];  /* the last bytes of the chunk
					     before, for a keyword cut by the
					     boundary (same memory) */
};

/* A body chunk shown to a decider: pointers into the message, valid for
 * the call only. */
struct extproc_chunk {
	enum extproc_part part;      /* EXTPROC_REQ_BODY or EXTPROC_RESP_BODY */
	const uint8_t *data;
	size_t len;
	uint64_t off;                /* bytes of this body before the chunk */
	bool last;                   /* the chunk ends the body */
	const uint8_t *ctype;        /* the side's content-type; NULL: none */
	size_t ctype_len;
	bool grpc_message;           /* GRPC body mode: one de-framed gRPC
					message, whatever |ctype| says */
	bool compressed;             /* ... which the data plane says is
					compressed */
	bool encoded;                /* the side's headers name a
					content-encoding other than identity:
					the bytes are compressed */
	bool wide;                   /* the side's text is UTF-16/32 (its
					charset, or a byte order mark at the
					body's start) */
	size_t pb_skip;              /* protobuf bodies: leading bytes that
					continue a frame (or message) an
					earlier chunk passed on unfinished:
					unreadable */
	bool pb_cut;                 /* ... and this chunk passes one on
					unfinished (not the last) */
};

/* The one interface between the protocol engine and the policy. For each
 * exchange the engine calls begin() once, before any other call: with
 * the request's routing attributes when request headers come (all of them
 * gathered first, since :path may follow authorization in a header map),
 * or with none of them before the first decision otherwise. It then calls
 * decide_header for every header of every header map it receives
 * (pseudo-headers included, so rules can look at :path) and decide_body
 * for every body chunk it sees. It never mutates pseudo-headers, host or
 * x-envoy-* whatever the decider says (counted as mutations_protected).
 * Deciders must not keep pointers to the input. */
struct extproc_decider_ops {
	/* Picks what applies to the exchange (|xd|'s route, tenant, route
	 * name) from |rq|. |m| holds the body modes the data plane announced
	 * (NONE when it did not say); the decider may change them and returns
	 * true to have them sent as a mode_override in the request_headers
	 * reply (the data plane applies it when allow_mode_override is set),
	 * so bodies are only requested where a rule needs them. */
	bool (*begin)(void *self, struct extproc_xdec *xd,
		      const struct policy_request *rq, struct extproc_mode *m);
	enum extproc_verdict (*decide_header)(void *self,
					      struct extproc_xdec *xd,
					      enum extproc_part part,
					      const uint8_t *name, size_t nlen,
					      const uint8_t *value, size_t vlen,
					      struct extproc_decision *d);
	enum extproc_verdict (*decide_body)(void *self, struct extproc_xdec *xd,
					    const struct extproc_chunk *c,
					    struct extproc_decision *d);
	/* Whether body chunks of content type |ctype| are looked at in
	 * this exchange at all (else nothing is held back for them: a
	 * FULL_DUPLEX_STREAMED stream of images is answered at once).
	 * NULL: every body is. */
	bool (*reads_body)(void *self, const struct extproc_xdec *xd,
			   const uint8_t *ctype, size_t ctype_len);
};

struct extproc_decider {
	const struct extproc_decider_ops *ops;
	void *self;
};

/* True for header names sealtap never mutates: pseudo-headers, host and
 * x-envoy-*. */
bool extproc_header_protected(const uint8_t *name, size_t nlen);

/* ---- the policy decider (extproc_policy.c) ---- */

/* The tap's policy and sealing behind the decider interface: values the
 * policy marks sensitive become the same tokens the tap writes (bound to
 * the exchange's record id and field), a whole value that cannot become a
 * token is removed, deny rules in the request answer with the policy's
 * immediate response, routes whose rules read bodies ask for them with a
 * mode_override. docs/extproc.md "Policy". */
struct extproc_policy;

/* Event-loop thread |worker|'s decider: |pol| (NULL: the built-in policy)
 * decides; |keys| (NULL: every tenant fails closed) seals, read as cache
 * reader |worker|; sealing counters go to |c|. Does not take ownership of
 * |pol|, |keys| or |c|, which must outlive it. NULL on allocation
 * failure. Free with extproc_policy_free(). */
struct extproc_policy *extproc_policy_new(const struct policy *pol,
					  struct keys_cache *keys,
					  unsigned worker,
					  struct st_counters *c);
void extproc_policy_free(struct extproc_policy *pp);
struct extproc_decider extproc_policy_decider(struct extproc_policy *pp);
/* The thread starts (|on|) or stops reading keys: an online reader that
 * never reaches a quiescent point holds up key reclamation. */
void extproc_policy_online(struct extproc_policy *pp, bool on);
/* The thread holds no key snapshot any more: call after every batch of
 * events, idle or not. */
void extproc_policy_quiescent(struct extproc_policy *pp);

/* ---- one exchange (extproc_stream.c) ---- */

/* Per event-loop thread state the exchanges share. */
struct extproc_ctx {
	struct extproc_decider decider;
	struct extproc_counters *ctr;
	const char *request_id_header; /* NULL: none added */
	uint32_t max_record;           /* bytes of one record */
	bool records;                  /* write records (else none is built) */
	struct extproc_arena *arena;   /* protobuf-c allocations */
	struct extproc_buf scratch;    /* decisions */
};

struct extproc_arena;
struct extproc_arena *extproc_arena_new(size_t block);
void extproc_arena_free(struct extproc_arena *a);
void extproc_arena_reset(struct extproc_arena *a);
/* The arena as a ProtobufCAllocator (returns a ProtobufCAllocator *). */
void *extproc_arena_allocator(struct extproc_arena *a);

enum extproc_end {
	EXTPROC_END_OPEN = 0,
	EXTPROC_END_COMPLETE,     /* client half-closed, status 0 sent */
	EXTPROC_END_CANCELLED,    /* RST_STREAM(CANCEL) */
	EXTPROC_END_RESET,        /* other RST_STREAM from the client */
	EXTPROC_END_ERROR,        /* sealtap ended it with a gRPC error */
	EXTPROC_END_TIMEOUT,      /* grpc-timeout or idle */
	EXTPROC_END_CONN_CLOSED,  /* the connection went away */
	EXTPROC_END_SHUTDOWN,     /* the server stopped */
};

struct extproc_xchg;

/* Identity stamped into a record. */
struct extproc_xchg_info {
	const char *peer;   /* "addr:port" of the gRPC client (Envoy) */
	uint32_t stream_id; /* gRPC stream id */
	uint64_t id;        /* unique: hash of run, thread, conn, stream */
	uint64_t start_ns;  /* wall clock, ns since the epoch */
};

/* Allocates an exchange. NULL on allocation failure. Free with
 * extproc_xchg_free(). */
struct extproc_xchg *extproc_xchg_new(const struct extproc_xchg_info *info);
void extproc_xchg_free(struct extproc_xchg *x);

/* Handles one gRPC message (|msg|, |len| bytes, the 5-byte prefix already
 * removed): decodes the ProcessingRequest, checks its phase against the
 * exchange so far, decides mutations and appends zero or more framed
 * replies (prefix included) to |out|. Returns 0, or a negative gRPC
 * status (-EXTPROC_GRPC_*) with a static reason in |*why| after which the
 * stream must end with that status; nothing is appended then. */
int extproc_xchg_message(struct extproc_xchg *x, struct extproc_ctx *ctx,
			 const uint8_t *msg, size_t len,
			 struct extproc_buf *out, const char **why);

/* FULL_DUPLEX_STREAMED text held back since before |now_ns| -
 * EXTPROC_FD_HOLD_NS (the end of a chunk a token cut by the next one could
 * be part of) with no data after it: answers it, its end guarded, into
 * |out|, so an interactive stream is not held up. The server calls it
 * from its periodic tick. Returns 0 or -EXTPROC_GRPC_* like above. */
#define EXTPROC_FD_HOLD_NS 500000000ull
int extproc_xchg_tick(struct extproc_xchg *x, struct extproc_ctx *ctx,
		      uint64_t now_ns, struct extproc_buf *out,
		      const char **why);

/* The client half-closed: appends any reply still owed (buffered full
 * duplex body) to |out|. Returns 0 or -EXTPROC_GRPC_* like above. */
int extproc_xchg_end_of_input(struct extproc_xchg *x, struct extproc_ctx *ctx,
			      struct extproc_buf *out, const char **why);

/* True once an immediate_response was sent (no more replies). */
bool extproc_xchg_done(const struct extproc_xchg *x);

/* The transport rejected a message before it reached
 * extproc_xchg_message() (too large, compressed, truncated): counted as
 * a message, so the exchange still gets its record. */
void extproc_xchg_rejected_message(struct extproc_xchg *x);

/* Writes the exchange's record (one NDJSON line) into |out| (reset
 * first). |end| and |grpc_status| say how the stream ended. Returns the
 * record length, 0 if there is nothing to record (no message was
 * received). */
size_t extproc_xchg_record(struct extproc_xchg *x, struct extproc_ctx *ctx,
			   enum extproc_end end, uint32_t rst_code,
			   int grpc_status, uint64_t end_ns,
			   struct extproc_buf *out);

/* ---- the server (extproc_server.c) ---- */

struct extproc_server;

/* Binds every listener (port 0 picks a free port, shared by all threads),
 * loads TLS material and starts the exporter; the event-loop threads start
 * with extproc_server_start(). Does not take ownership of |cfg| (it must
 * outlive the server). 0 or -errno with a one-line reason in |err|. */
int extproc_server_new(const struct extproc_cfg *cfg,
		       struct extproc_server **out, char *err, size_t errlen);
int extproc_server_start(struct extproc_server *s, char *err, size_t errlen);
/* The bound addresses as JSON: {"listen":["127.0.0.1:9000"],"health":...}. */
void extproc_server_write_addrs(struct extproc_server *s, FILE *out);
/* Graceful stop: GOAWAY on every connection, listeners closed, health
 * NOT_SERVING; connections drain for shutdown_timeout_ns, then close.
 * Safe to call from any thread. A second call ends the drain at once:
 * the connections still open are closed as at the drain's deadline. */
void extproc_server_shutdown(struct extproc_server *s);
/* Graceful stop, from a thread that holds the signals of |stop| blocked:
 * shutdown, then waits while the threads drain (up to
 * shutdown_timeout_ns); one more signal of |stop| (SIGUSR1 aside) ends
 * the drain at once. Join afterwards. */
void extproc_server_stop(struct extproc_server *s, const sigset_t *stop);
/* Waits for the threads to end (after shutdown), stops the exporter. */
void extproc_server_join(struct extproc_server *s);
/* Sum of every thread's counters. */
void extproc_server_counters(struct extproc_server *s,
			     struct extproc_counters *sum);
void extproc_server_free(struct extproc_server *s);

/* A grpc-timeout value (1-8 digits and a unit: H M S m u n) in ns; 0 (no
 * deadline) if invalid or more than a century off. */
uint64_t extproc_grpc_timeout_ns(const uint8_t *v, size_t len);

/* ---- test/fuzz entry: one server session without sockets ---- */

struct extproc_session;
/* A detached HTTP/2 server session with its own thread context; output is
 * discarded. NULL on allocation failure. */
struct extproc_session *extproc_session_new(const struct extproc_cfg *cfg);
/* Feeds |len| bytes as if read from the socket; -1 once the connection
 * would be closed. */
int extproc_session_feed(struct extproc_session *s, const uint8_t *data,
			 size_t len);
/* Bytes the session wanted to send so far (the caller may inspect and
 * clear them). */
struct extproc_buf *extproc_session_output(struct extproc_session *s);
struct extproc_counters *extproc_session_counters(struct extproc_session *s);
void extproc_session_free(struct extproc_session *s);

/* ---- CLI ---- */

struct st_config;
struct keys_runtime;
/* Loads the policy file |path| (NULL: the built-in policy) and starts the
 * keys runtime for its tenants with |readers| DEK cache readers. 0, or
 * -EINVAL (policy) / -errno with |err| and nothing to free. The caller
 * frees *|pol| (policy_free) and *|keys| (keys_runtime_stop) after the
 * readers have stopped. */
int extproc_start_policy(const struct st_config *cfg, const char *path,
			 unsigned readers, struct policy **pol,
			 struct keys_runtime **keys, char *err, size_t errlen);

/* Fills |x| from the extproc and export sections of |cfg| (pointers into
 * |cfg|, which must outlive |x|); policy and keys are left NULL. */
void extproc_cfg_from_config(const struct st_config *cfg,
			     struct extproc_cfg *x);
/* Command-line overrides of the extproc section: |listen| (|nlisten| > 0
 * replaces extproc.listen), |threads| (> 0), |health| (non-NULL). */
void extproc_config_override(struct st_config *cfg,
			     const char *const *listen, unsigned nlisten,
			     unsigned threads, const char *health);
/* Writes the bound addresses as JSON to |path| (atomically: temp file and
 * rename), for tests and supervisors. 0 or -errno. */
int extproc_write_ready(struct extproc_server *srv, const char *path);

/* `sealtap extproc [options]`: exit code as main() returns it. */
int extproc_main(int argc, char **argv);

#endif
