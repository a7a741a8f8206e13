/* Passive HTTP/2 analysis: reassembled TCP streams in, one record per
 * request/response exchange out.
 *
 * The analyzer is a reasm consumer (h2_reasm_ops(), user = struct h2_ctx):
 * each flow gets a struct h2_conn with one frame parser and one HPACK
 * inflater per direction. It is built to keep going where other passive
 * decoders stop:
 *  - it needs no connection preface: a connection joined mid-stream is
 *    recognised from plausible frame sequences, and its inflaters start with
 *    a dynamic table of placeholder entries, so references to entries never
 *    seen decode to "unknown" (marked uncertain) instead of failing; the
 *    connection is exact again once the table has turned over;
 *  - a gap inside a DATA payload costs only those body bytes; a gap that
 *    breaks framing is followed by a resync at the next plausible frame
 *    boundary with fresh primed inflaters; a broken header block costs that
 *    block, never the connection.
 * Everything it holds has a cap (see struct h2_cfg); hitting one is a
 * counted anomaly on the exchange, never unbounded growth.
 *
 * Frames follow RFC 9113, header compression RFC 7541 (decoded by
 * nghttp2's inflater), h2c upgrade RFC 7540 §3.2.
 */
#ifndef SEALTAP_H2_H
#define SEALTAP_H2_H

#include <stdbool.h>
#include <stdint.h>

#include "sealtap/counters.h"
#include "sealtap/reasm.h"

struct h2_cfg {
	uint32_t max_connections;  /* parsed connections per worker */
	uint32_t max_streams;      /* open streams per worker */
	uint32_t max_conn_streams; /* open streams per connection */
	uint32_t max_header_block; /* bytes of one header block (+CONT) */
	uint32_t max_table_size;   /* HPACK dynamic table cap, bytes */
	uint32_t max_record;       /* bytes of one encoded record */
	uint32_t body_inspect;     /* body bytes kept per direction */
	uint32_t resync_window;    /* bytes searched for a frame boundary */
	uint64_t memcap;           /* per-worker bytes for blocks/records */
	uint64_t stream_timeout_ns; /* idle stream is recorded as timed out */
};

#define H2_CFG_DEFAULT                                                         \
	{ .max_connections = 65536, .max_streams = 131072,                     \
	  .max_conn_streams = 1024, .max_header_block = 256u << 10,            \
	  .max_table_size = 64u << 10, .max_record = 1u << 20,                 \
	  .body_inspect = 64u << 10, .resync_window = 64u << 10,               \
	  .memcap = 256ull << 20, .stream_timeout_ns = 300ull * 1000000000ull }

/* Where finished records go. |write| copies the record (|len| bytes of
 * NDJSON, newline included) and returns 0, or -1 if it had to drop it
 * (then the analyzer counts the drop). Called on the worker thread. */
struct h2_sink {
	int (*write)(void *user, const void *rec, uint32_t len);
	void *user;
};

/* Identity of the analyzer's run, stamped into records so record ids are
 * unique and stable across a replay of the same input. */
struct h2_run_info {
	unsigned worker;
	const char *source; /* "tap" */
};

struct h2_ctx;

/* Creates a worker's analyzer. Allocates its pools (memcap) up front. Does
 * not take ownership of |c| or |sink|. Free with h2_ctx_free() after the
 * worker's flows have ended. NULL on allocation failure. */
struct h2_ctx *h2_ctx_new(const struct h2_cfg *cfg,
			  const struct h2_run_info *run,
			  const struct h2_sink *sink, struct st_counters *c);
void h2_ctx_free(struct h2_ctx *ctx);

/* The reassembly consumer; pass the struct h2_ctx as the user pointer. */
const struct reasm_ops *h2_reasm_ops(void);

/* Keeps the first body_inspect bytes of each body for the policy stage.
 * Off by default: copying bodies nobody inspects costs throughput. */
void h2_ctx_keep_bodies(struct h2_ctx *ctx, bool keep);

/* Sends every header, trailer, path and inspected body through |rs|
 * (policy, keys, sealing) before it reaches a record. Without one, the
 * built-in credential list is redacted. Does not take ownership. */
struct record_sealer;
void h2_ctx_set_sealer(struct h2_ctx *ctx, struct record_sealer *rs);

/* Records streams idle longer than stream_timeout_ns at time |now| (at most
 * |budget|). Returns how many were recorded. */
unsigned h2_ctx_tick(struct h2_ctx *ctx, uint64_t now, unsigned budget);

#endif
