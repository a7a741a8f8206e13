/* Per-worker processing: decoded packet -> flow -> TCP reassembly -> stream
 * consumer, plus the timers that run on packet time (offline) or wall time
 * (live). One struct worker per worker lcore; nothing in it is shared with
 * other threads except the counters, which the control thread only reads. */
#ifndef SEALTAP_WORKER_H
#define SEALTAP_WORKER_H

#include <stdint.h>

#include "sealtap/counters.h"
#include "sealtap/decode.h"
#include "sealtap/flow.h"
#include "sealtap/reasm.h"

struct worker_cfg {
	struct decode_cfg decode;
	struct flow_table_cfg flow;
	struct reasm_cfg reasm;
	uint64_t tick_ns; /* how often timers run, in the worker's clock */
};

struct worker {
	struct st_counters ctr; /* first: cache aligned, written only here */
	unsigned id;
	struct worker_cfg cfg;
	struct flow_table *ft;
	struct reasm_ctx *rc;
	const struct reasm_ops *ops;
	void *user;
	uint64_t now;       /* the worker's clock, ns; never goes back */
	uint64_t next_tick; /* when timers run next */
	/* Consumer timers (e.g. stream timeouts), run with the worker's. */
	unsigned (*tick)(void *user, uint64_t now, unsigned budget);
	void *tick_user;
};

/* Creates worker |id| feeding stream events to |ops|/|user| (NULL ops: a
 * consumer that discards data, used by benchmarks). Does not take ownership
 * of |ops| or |user|. The caller frees it with worker_free(). NULL on
 * allocation failure. */
struct worker *worker_new(unsigned id, const struct worker_cfg *cfg,
			  const struct reasm_ops *ops, void *user);
/* Frees |w|. Call worker_finish() first to end the streams it holds. */
void worker_free(struct worker *w);

/* Processes one decoded TCP segment seen at time |ts| (ns). */
void worker_packet(struct worker *w, const struct decode_pkt *d, uint64_t ts);

/* Decodes a raw packet with link type |link| and processes it. Returns the
 * decode result (DECODE_OK or a negative enum decode_rc, already counted).
 * Does not take ownership of |p|. */
int worker_raw(struct worker *w, int link, const uint8_t *p, uint32_t caplen,
	       uint32_t wirelen, uint64_t ts);

/* Advances the clock to |now| without a packet and runs due timers. */
void worker_clock(struct worker *w, uint64_t now);

/* Ends every flow (streams get on_end(SHUTDOWN) after their buffered data
 * and gaps). Used at end of input and on exit. */
void worker_finish(struct worker *w);

#endif
