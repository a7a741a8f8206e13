/* TCP reassembly, one instance per flow direction.
 *
 * What it does: turns TCP segments of one direction into an ordered byte
 * stream addressed by 64-bit offsets (offset 0 = first byte after the SYN,
 * or the first byte seen when the direction was picked up mid-stream).
 * Delivery follows sequence order only, never ACKs, so one-sided captures
 * work; there is no depth limit.
 *
 * Rules (and why):
 *  - In-order data is handed to the consumer straight from the packet and is
 *    not kept afterwards: a tap sees connections that live for hours, so
 *    memory may only be spent on data that cannot be delivered yet.
 *  - Out-of-order data is copied into fixed-size chunks from a per-worker
 *    pool (the per-worker memory cap) and limited per direction
 *    (flow_ooo_max bytes of chunk memory). Touching runs share chunks.
 *  - A hole that is not filled becomes a gap event: after the direction has
 *    made no progress for gap_timeout_ns of packet time, when the
 *    direction's buffer cap is reached, when the worker pool is empty, when
 *    the flow ends, or, for a segment cut short by snaplen/mirror
 *    truncation, as soon as delivery reaches its missing tail.
 *  - A direction first seen without its SYN starts at the first byte seen,
 *    but holds its data for start_hold_ns of packet time first: mirrors
 *    reorder, so the real first segment or the SYN may still come, and
 *    then the start moves back to it (nothing was delivered yet). If the
 *    SYN arrives after delivery began and says the first byte delivered was
 *    the first one, the direction is marked as started from its SYN.
 *  - Retransmissions are dropped and counted. Where a segment overlaps data
 *    still buffered, the first-seen bytes win; differing bytes are counted as
 *    an anomaly (reasm_overlap_diff) and reported to the consumer.
 *  - Sequence numbers wrap at 2^32; offsets are 64-bit, derived from the
 *    distance to the next expected sequence number (segments more than
 *    REASM_MAX_DISTANCE away are dropped as unrelated).
 */
#ifndef SEALTAP_REASM_H
#define SEALTAP_REASM_H

#include <stdbool.h>
#include <stdint.h>
#include "sealtap/counters.h"

struct flow;

#define REASM_MAX_DISTANCE (1u << 30) /* bytes either side of next seq */

/* How a direction's stream ended (consumer's on_end). */
enum reasm_end {
	REASM_END_FIN = 1,     /* FIN reached in sequence order */
	REASM_END_RST = 2,     /* RST seen (either side) */
	REASM_END_TIMEOUT = 3, /* flow idle timeout */
	REASM_END_EVICTED = 4, /* flow evicted to make room */
	REASM_END_SHUTDOWN = 5, /* end of input / program exit */
	REASM_END_REPLACED = 6, /* a new connection (SYN, new ISN) took the
				 * tuple: this one ended unseen */
};
const char *reasm_end_name(enum reasm_end e);

/* The consumer interface: what the HTTP/2 parser (or any other stream
 * consumer) plugs into. All calls happen on the worker thread that owns the
 * flow, in stream order per direction:
 *
 *   on_data*  (interleaved with on_gap*)  then exactly one on_end
 *
 * on_data: |len| bytes at stream offset |off| of direction |dir|. |data| is
 *   borrowed: it points into the packet or into reassembly memory and is only
 *   valid during the call; the consumer copies what it needs to keep. Bytes
 *   are delivered once. Never called with len 0.
 * on_gap: |len| bytes at |off| will never be delivered (lost, truncated or
 *   given up on). The next on_data, if any, starts at off + len.
 * on_overlap: an out-of-order overlap carried different bytes at |off|
 *   (first-seen bytes were kept). Informational; may be NULL.
 * on_end: the direction's stream is over; no more calls for |dir|.
 * on_flow_free: the flow object is about to be reused; the consumer frees
 *   f->app here. Called once per flow after both directions ended.
 * Callbacks must not block and must not free the flow.
 */
struct reasm_ops {
	void (*on_data)(void *user, struct flow *f, unsigned dir, uint64_t off,
			const uint8_t *data, uint32_t len, uint64_t ts);
	void (*on_gap)(void *user, struct flow *f, unsigned dir, uint64_t off,
		       uint64_t len, uint64_t ts);
	void (*on_overlap)(void *user, struct flow *f, unsigned dir,
			   uint64_t off);
	void (*on_end)(void *user, struct flow *f, unsigned dir,
		       enum reasm_end how, uint64_t ts);
	void (*on_flow_free)(void *user, struct flow *f);
};

/* An out-of-order run held in one pool chunk. Runs that touch are merged
 * into the same chunk while it has room, so small segments do not each
 * take a chunk. */
struct reasm_seg {
	struct reasm_seg *next;
	struct reasm_seg *tail; /* last run of the list (valid in the head) */
	uint64_t ts;  /* packet time of its newest bytes: delivered with it */
	uint64_t off;
	uint32_t len;
	uint32_t pad;
	uint8_t data[];
};

#define REASM_DIR_STARTED 0x01  /* base_seq is valid */
#define REASM_DIR_SYN 0x02      /* started from a SYN (not mid-stream) */
#define REASM_DIR_FIN 0x04      /* FIN seen; fin_off is valid */
#define REASM_DIR_ENDED 0x08    /* on_end delivered */
#define REASM_DIR_PENDING 0x10  /* on the worker's pending-gap list */
#define REASM_DIR_TENTATIVE 0x20 /* mid-stream start on hold (start_hold) */

/* Per-direction state, embedded in struct flow. 64 bytes. */
struct reasm_dir {
	uint64_t next_off;      /* next stream offset to deliver */
	uint64_t fin_off;       /* offset of the FIN (valid with DIR_FIN) */
	uint64_t wait_since;    /* packet time the head hole started waiting */
	struct reasm_seg *ooo;  /* buffered runs, sorted, non-overlapping */
	/* Links on the worker's list of directions holding buffered data,
	 * oldest wait first (valid with DIR_PENDING). */
	struct reasm_dir *pend_prev, *pend_next;
	uint32_t base_seq;      /* sequence number of offset 0 */
	uint32_t ooo_bytes;     /* chunk memory held by |ooo| (the cap's
				 * unit: memory, not payload, so tiny
				 * segments cannot exceed it) */
	uint8_t flags;          /* REASM_DIR_* */
	uint8_t idx;            /* 0 or 1: which dir[] of the flow this is */
	uint8_t pad[6];
};

struct reasm_cfg {
	uint32_t flow_ooo_max;    /* chunk memory buffered per direction */
	uint64_t worker_memcap;   /* bytes of chunk memory per worker */
	uint32_t chunk_size;      /* bytes per pool chunk (incl. header) */
	uint64_t gap_timeout_ns;  /* packet time a hole may stay open */
	uint64_t start_hold_ns;   /* a mid-stream start waits this long for
				   * earlier segments or its SYN (0: off) */
};

#define REASM_CFG_DEFAULT                                                      \
	{ .flow_ooo_max = 1u << 20, .worker_memcap = 64ull << 20,              \
	  .chunk_size = 2048, .gap_timeout_ns = 2 * 1000000000ull,            \
	  .start_hold_ns = 0 }

/* Per-worker reassembly context: chunk pool, consumer, counters. */
struct reasm_ctx;

/* Creates a context. Allocates worker_memcap bytes of chunks up front, so
 * the hot path never allocates. Does not take ownership of |ops|, |user| or
 * |c| (they must outlive the context). Returns NULL on allocation failure.
 * The caller frees it with reasm_ctx_free(). */
struct reasm_ctx *reasm_ctx_new(const struct reasm_cfg *cfg,
				const struct reasm_ops *ops, void *user,
				struct st_counters *c);
void reasm_ctx_free(struct reasm_ctx *ctx);
/* Bytes of chunk memory currently in use (for tests and stats). */
uint64_t reasm_ctx_mem_used(const struct reasm_ctx *ctx);

/* Resets |d| to the unstarted state. Any buffered chunks must have been
 * released (reasm_dir_end). */
void reasm_dir_init(struct reasm_dir *d);

/* Handles one TCP segment of direction |dir| of |f|: |len| payload bytes at
 * |data| (|wire_len| >= |len| on the wire), sequence |seq|, flags |flags|
 * (DECODE_TCP_*), packet time |ts|. Delivers whatever became contiguous.
 * An RST ends both directions. Does not take ownership of |data|. */
void reasm_tcp_push(struct reasm_ctx *ctx, struct flow *f, unsigned dir,
		    uint32_t seq, const uint8_t *data, uint32_t len,
		    uint32_t wire_len, uint8_t flags, uint64_t ts);

/* Forces a gap at the head hole of every direction whose hole has waited
 * longer than the gap timeout at packet time |now|. Bounded: visits at most
 * |budget| directions per call (oldest first). Returns gaps forced. */
unsigned reasm_tcp_tick(struct reasm_ctx *ctx, uint64_t now, unsigned budget);

/* Ends direction |dir|: delivers everything buffered (holes become gaps),
 * then on_end(|how|). No-op if already ended. */
void reasm_dir_end(struct reasm_ctx *ctx, struct flow *f, unsigned dir,
		   enum reasm_end how, uint64_t ts);

/* True once both directions of |f| have ended. */
bool reasm_flow_done(const struct flow *f);

#endif
