/* Per-worker flow table.
 *
 * Keyed on the canonical 5-tuple (both directions of a connection map to one
 * flow). Flow objects come from a pool preallocated when the table is made
 * (max_flows of them), so the packet path never allocates; the pool is
 * per-worker and single-threaded, which is why it is a plain free list and
 * not an rte_mempool (no atomics, usable in unit tests and fuzzers without
 * EAL).
 *
 * Lifetimes: a flow lives on the active list while packets arrive, ordered
 * by last packet time (so the head is the least recently used), and moves to
 * the closed list once both directions ended (FIN/RST), where it lingers for
 * closed_timeout to absorb late ACKs and retransmissions without creating a
 * new flow. Expiry and eviction call the owner's end hook so the consumer
 * sees every stream end exactly once.
 */
#ifndef SEALTAP_FLOW_H
#define SEALTAP_FLOW_H

#include <stdbool.h>
#include <stdint.h>
#include "sealtap/common.h"
#include "sealtap/counters.h"
#include "sealtap/flow_key.h"
#include "sealtap/reasm.h"

enum flow_state {
	FLOW_ACTIVE = 0,
	FLOW_CLOSED = 1, /* both directions ended; lingering */
};

/* Why a flow left the table (passed to the end hook). */
enum flow_end {
	FLOW_END_TIMEOUT = 1,
	FLOW_END_EVICTED = 2,
	FLOW_END_SHUTDOWN = 3,
	FLOW_END_CLOSED = 4, /* closed linger elapsed (streams already ended) */
};

#define FLOW_ROLE_UNKNOWN 0xff

struct flow {
	struct flow_key key;   /* canonical */
	uint32_t hash;
	uint8_t state;         /* enum flow_state */
	/* Direction index of the client (the side that opened the
	 * connection), FLOW_ROLE_UNKNOWN if never guessed. |role_sure| is set
	 * when it came from a SYN; otherwise it is a guess (lower port =
	 * server) that a consumer may correct with flow_set_client(). */
	uint8_t client_dir;
	uint8_t role_sure;
	uint8_t pad;
	struct flow *hnext;    /* hash chain */
	struct flow *prev, *next; /* active or closed list */
	uint64_t first_ts, last_ts;
	uint64_t pkts[2];
	uint64_t bytes[2];     /* TCP payload bytes on the wire, per dir */
	struct reasm_dir dir[2];
	void *app;             /* consumer state; freed by on_flow_free */
} ST_CACHE_ALIGNED;

struct flow_table_cfg {
	uint32_t max_flows;
	uint64_t idle_timeout_ns;
	uint64_t closed_timeout_ns;
};

#define FLOW_TABLE_CFG_DEFAULT                                                 \
	{ .max_flows = 1u << 18, .idle_timeout_ns = 300 * ST_NS_PER_SEC,       \
	  .closed_timeout_ns = 10 * ST_NS_PER_SEC }

/* Called before a flow is removed from the table (timeout, eviction,
 * shutdown, end of linger). The hook ends the streams and releases consumer
 * state; the table then recycles the object. */
typedef void (*flow_end_fn)(void *user, struct flow *f, enum flow_end why,
			    uint64_t now);

struct flow_table;

/* Creates a table holding at most cfg->max_flows flows. Does not take
 * ownership of |c| or |user|. The caller frees it with flow_table_free(),
 * which does not call the end hook (call flow_table_flush() first). */
struct flow_table *flow_table_new(const struct flow_table_cfg *cfg,
				  flow_end_fn end, void *user,
				  struct st_counters *c);
void flow_table_free(struct flow_table *t);

/* Finds the flow for canonical key |k| (hash |h|) or creates it, evicting
 * the least recently used flow if the table is full (closed flows first).
 * Moves it to the tail of its list with last_ts = |now|. Sets *|created|.
 * Never fails when max_flows > 0. */
struct flow *flow_table_get(struct flow_table *t, const struct flow_key *k,
			    uint32_t h, uint64_t now, bool *created);
/* Finds without creating; does not touch the LRU order. */
struct flow *flow_table_find(struct flow_table *t, const struct flow_key *k,
			     uint32_t h);

/* Moves |f| to the closed list (both streams ended). */
void flow_table_mark_closed(struct flow_table *t, struct flow *f);
/* Returns a closed flow to active use (a new SYN on a reused tuple). */
void flow_table_reopen(struct flow_table *t, struct flow *f);

/* Ends flows idle longer than their timeout at time |now|, oldest first,
 * at most |budget| of them. Returns how many were removed. */
unsigned flow_table_expire(struct flow_table *t, uint64_t now,
			   unsigned budget);
/* Ends every flow (FLOW_END_SHUTDOWN). */
void flow_table_flush(struct flow_table *t, uint64_t now);

uint32_t flow_table_count(const struct flow_table *t);
uint32_t flow_table_capacity(const struct flow_table *t);
/* Bytes held by the table (flow objects + buckets), fixed at creation. */
uint64_t flow_table_mem(const struct flow_table *t);

/* Records that direction |dir| is the client (the consumer knows better,
 * e.g. from the HTTP/2 preface). */
static inline void flow_set_client(struct flow *f, unsigned dir)
{
	f->client_dir = (uint8_t)dir;
	f->role_sure = 1;
}

#endif
