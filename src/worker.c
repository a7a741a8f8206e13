/* Per-worker glue between decode, flow table and reassembly. See worker.h. */
#include <stdlib.h>
#include <string.h>

#include "sealtap/worker.h"

#define WORKER_TIMER_BUDGET 4096 /* flows or holes handled per timer run */

/* ---- the discard consumer (benchmarks, or when nothing consumes) ---- */

static void null_data(void *u, struct flow *f, unsigned dir, uint64_t off,
		      const uint8_t *data, uint32_t len, uint64_t ts)
{
	(void)u, (void)f, (void)dir, (void)off, (void)data, (void)len, (void)ts;
}

static void null_gap(void *u, struct flow *f, unsigned dir, uint64_t off,
		     uint64_t len, uint64_t ts)
{
	(void)u, (void)f, (void)dir, (void)off, (void)len, (void)ts;
}

static void null_end(void *u, struct flow *f, unsigned dir,
		     enum reasm_end how, uint64_t ts)
{
	(void)u, (void)f, (void)dir, (void)how, (void)ts;
}

static void null_free(void *u, struct flow *f)
{
	(void)u, (void)f;
}

static const struct reasm_ops null_ops = {
	.on_data = null_data,
	.on_gap = null_gap,
	.on_end = null_end,
	.on_flow_free = null_free,
};

/* ---- flow lifecycle ---------------------------------------------- */

static enum reasm_end reasm_reason(enum flow_end why)
{
	switch (why) {
	case FLOW_END_TIMEOUT: return REASM_END_TIMEOUT;
	case FLOW_END_EVICTED: return REASM_END_EVICTED;
	default: return REASM_END_SHUTDOWN;
	}
}

/* flow_table end hook: the streams end (buffered data first), then the
 * consumer frees its state. */
static void on_flow_end(void *user, struct flow *f, enum flow_end why,
			uint64_t now)
{
	struct worker *w = user;
	enum reasm_end how = reasm_reason(why);
	reasm_dir_end(w->rc, f, 0, how, now);
	reasm_dir_end(w->rc, f, 1, how, now);
	w->ops->on_flow_free(w->user, f);
	f->app = NULL;
}

struct worker *worker_new(unsigned id, const struct worker_cfg *cfg,
			  const struct reasm_ops *ops, void *user)
{
	struct worker *w = aligned_alloc(ST_CACHE_LINE, sizeof(*w));
	if (!w)
		return NULL;
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = *cfg;
	if (w->cfg.tick_ns == 0)
		w->cfg.tick_ns = 100 * ST_NS_PER_MS;
	w->ops = ops ? ops : &null_ops;
	w->user = user;
	w->ft = flow_table_new(&cfg->flow, on_flow_end, w, &w->ctr);
	w->rc = reasm_ctx_new(&cfg->reasm, w->ops, user, &w->ctr);
	if (!w->ft || !w->rc) {
		worker_free(w);
		return NULL;
	}
	return w;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	flow_table_free(w->ft);
	reasm_ctx_free(w->rc);
	free(w);
}

static void run_timers(struct worker *w)
{
	unsigned n = reasm_tcp_tick(w->rc, w->now, WORKER_TIMER_BUDGET);
	n += flow_table_expire(w->ft, w->now, WORKER_TIMER_BUDGET);
	if (w->tick)
		n += w->tick(w->tick_user, w->now, WORKER_TIMER_BUDGET);
	/* Out of budget: more is due, so come back on the next packet. */
	w->next_tick = n >= WORKER_TIMER_BUDGET ? w->now
						: w->now + w->cfg.tick_ns;
}

void worker_clock(struct worker *w, uint64_t now)
{
	if (now > w->now)
		w->now = now;
	if (w->now >= w->next_tick)
		run_timers(w);
}

/* Guesses roles for a new flow: the SYN sender is the client; without a
 * SYN the lower port is taken to be the server's (ephemeral ports are
 * high), which the consumer may correct later. */
static void guess_roles(struct flow *f, unsigned dir, uint8_t flags)
{
	if (flags & DECODE_TCP_SYN) {
		f->client_dir = (flags & DECODE_TCP_ACK) ? (uint8_t)(dir ^ 1)
							 : (uint8_t)dir;
		f->role_sure = 1;
		return;
	}
	f->client_dir = f->key.port[0] < f->key.port[1] ? 1 : 0;
	f->role_sure = 0;
}

/* A closed flow met a new SYN: the tuple is being reused for a new
 * connection. The old consumer state goes; the streams start afresh. */
static void reopen(struct worker *w, struct flow *f)
{
	w->ops->on_flow_free(w->user, f);
	f->app = NULL;
	reasm_dir_init(&f->dir[0]);
	reasm_dir_init(&f->dir[1]);
	f->pkts[0] = f->pkts[1] = 0;
	f->bytes[0] = f->bytes[1] = 0;
	f->first_ts = w->now;
	flow_table_reopen(w->ft, f);
}

/* A SYN without ACK, from a side that has a live direction with another
 * ISN: a client does not reuse a port while its connection lives, so the
 * old connection is over. A retransmitted SYN has the same ISN. */
static bool new_connection(const struct worker *w, const struct flow *f,
			   unsigned dir, const struct decode_pkt *d)
{
	if ((d->tcp_flags & (DECODE_TCP_SYN | DECODE_TCP_ACK)) !=
	    DECODE_TCP_SYN)
		return false;
	const struct reasm_dir *rd = &f->dir[dir];
	if (!(rd->flags & REASM_DIR_STARTED) || rd->base_seq == d->seq + 1)
		return false;
	/* A start still on hold may move back to this SYN (reordering). */
	if ((rd->flags & REASM_DIR_TENTATIVE) &&
	    (uint32_t)(rd->base_seq - (d->seq + 1)) <= w->cfg.reasm.flow_ooo_max)
		return false;
	return true;
}

void worker_packet(struct worker *w, const struct decode_pkt *d, uint64_t ts)
{
	struct flow_key canon;
	unsigned dir = flow_key_canon(&d->key, &canon);
	uint32_t h = flow_key_hash(&canon);
	if (ts > w->now)
		w->now = ts;
	bool created;
	struct flow *f = flow_table_get(w->ft, &canon, h, w->now, &created);
	/* Streams can also end off this path (the gap timer or the memory cap
	 * giving up the hole before a FIN): such a flow is closed all the
	 * same, so a new SYN reopens it instead of being data after a FIN. */
	if (!created && f->state == FLOW_ACTIVE && reasm_flow_done(f))
		flow_table_mark_closed(w->ft, f);
	if (created) {
		guess_roles(f, dir, d->tcp_flags);
	} else if (f->state == FLOW_ACTIVE && new_connection(w, f, dir, d)) {
		/* The tuple was reused while we never saw the old connection
		 * end (FIN/RST lost): end its streams, start afresh. */
		reasm_dir_end(w->rc, f, 0, REASM_END_REPLACED, w->now);
		reasm_dir_end(w->rc, f, 1, REASM_END_REPLACED, w->now);
		reopen(w, f);
		ST_CTR_INC(&w->ctr, flow_reused);
		guess_roles(f, dir, d->tcp_flags);
	} else if (f->state == FLOW_CLOSED) {
		if ((d->tcp_flags & (DECODE_TCP_SYN | DECODE_TCP_ACK)) !=
		    DECODE_TCP_SYN)
			return; /* late ACK or retransmission: absorbed */
		reopen(w, f);
		guess_roles(f, dir, d->tcp_flags);
	}
	f->pkts[dir]++;
	f->bytes[dir] += d->payload_wire_len;
	/* The packet's own time, not the worker's clock: what the consumer
	 * stamps on records must not depend on which worker saw what. */
	reasm_tcp_push(w->rc, f, dir, d->seq, d->payload, d->payload_len,
		       d->payload_wire_len, d->tcp_flags, ts);
	if (f->state == FLOW_ACTIVE && reasm_flow_done(f))
		flow_table_mark_closed(w->ft, f);
	if (w->now >= w->next_tick)
		run_timers(w);
}

int worker_raw(struct worker *w, int link, const uint8_t *p, uint32_t caplen,
	       uint32_t wirelen, uint64_t ts)
{
	struct decode_pkt d;
	int rc = decode_packet(&w->cfg.decode, link, p, caplen, wirelen, &d,
			       &w->ctr);
	if (rc == DECODE_OK)
		worker_packet(w, &d, ts);
	else
		worker_clock(w, ts);
	return rc;
}

void worker_finish(struct worker *w)
{
	flow_table_flush(w->ft, w->now);
}
