/* TCP reassembly per flow direction. Contract and rules: reasm.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/decode.h"
#include "sealtap/flow.h"
#include "sealtap/mem.h"
#include "sealtap/reasm.h"

struct reasm_ctx {
	struct reasm_cfg cfg;
	const struct reasm_ops *ops;
	void *user;
	struct st_counters *c;
	uint8_t *arena;           /* all chunks, allocated once */
	struct reasm_seg *free;   /* free chunks, linked through ->next */
	uint32_t nchunks;
	uint32_t nfree;
	uint32_t chunk_payload;   /* data bytes per chunk */
	/* Directions holding buffered data or a hole before a FIN, roughly
	 * oldest wait first. */
	struct reasm_dir *pend_head, *pend_tail;
};

/* ---- chunk pool --------------------------------------------------- */

struct reasm_ctx *reasm_ctx_new(const struct reasm_cfg *cfg,
				const struct reasm_ops *ops, void *user,
				struct st_counters *c)
{
	if (cfg->chunk_size < sizeof(struct reasm_seg) + 64)
		return NULL;
	struct reasm_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->cfg = *cfg;
	ctx->ops = ops;
	ctx->user = user;
	ctx->c = c;
	/* Round chunks to 8 bytes so headers stay aligned. */
	uint32_t cs = (cfg->chunk_size + 7u) & ~7u;
	ctx->cfg.chunk_size = cs;
	ctx->chunk_payload = cs - (uint32_t)sizeof(struct reasm_seg);
	uint64_t n = cfg->worker_memcap / cs;
	if (n > UINT32_MAX)
		n = UINT32_MAX;
	ctx->nchunks = (uint32_t)n;
	if (n) {
		/* Out-of-order stream bytes: plaintext, never dumped. */
		ctx->arena = mem_nodump_alloc((size_t)n * cs);
		if (!ctx->arena) {
			free(ctx);
			return NULL;
		}
	}
	for (uint64_t i = n; i-- > 0;) {
		struct reasm_seg *s =
			(struct reasm_seg *)(ctx->arena + (size_t)i * cs);
		s->next = ctx->free;
		ctx->free = s;
	}
	ctx->nfree = ctx->nchunks;
	return ctx;
}

void reasm_ctx_free(struct reasm_ctx *ctx)
{
	if (!ctx)
		return;
	mem_nodump_free(ctx->arena, (size_t)ctx->nchunks * ctx->cfg.chunk_size);
	free(ctx);
}

uint64_t reasm_ctx_mem_used(const struct reasm_ctx *ctx)
{
	return (uint64_t)(ctx->nchunks - ctx->nfree) * ctx->cfg.chunk_size;
}

static struct reasm_seg *chunk_get(struct reasm_ctx *ctx)
{
	struct reasm_seg *s = ctx->free;
	if (s) {
		ctx->free = s->next;
		ctx->nfree--;
	}
	return s;
}

static void chunk_put(struct reasm_ctx *ctx, struct reasm_seg *s)
{
	s->next = ctx->free;
	ctx->free = s;
	ctx->nfree++;
}

/* ---- helpers ------------------------------------------------------ */

static inline struct flow *dir_flow(struct reasm_dir *d)
{
	return (struct flow *)((char *)(d - d->idx) - offsetof(struct flow, dir));
}

const char *reasm_end_name(enum reasm_end e)
{
	switch (e) {
	case REASM_END_FIN: return "fin";
	case REASM_END_RST: return "rst";
	case REASM_END_TIMEOUT: return "timeout";
	case REASM_END_EVICTED: return "evicted";
	case REASM_END_SHUTDOWN: return "shutdown";
	case REASM_END_REPLACED: return "replaced";
	}
	return "unknown";
}

void reasm_dir_init(struct reasm_dir *d)
{
	uint8_t idx = d->idx;
	memset(d, 0, sizeof(*d));
	d->idx = idx;
}

bool reasm_flow_done(const struct flow *f)
{
	return (f->dir[0].flags & REASM_DIR_ENDED) &&
	       (f->dir[1].flags & REASM_DIR_ENDED);
}

static void pend_unlink(struct reasm_ctx *ctx, struct reasm_dir *d)
{
	if (!(d->flags & REASM_DIR_PENDING))
		return;
	if (d->pend_prev)
		d->pend_prev->pend_next = d->pend_next;
	else
		ctx->pend_head = d->pend_next;
	if (d->pend_next)
		d->pend_next->pend_prev = d->pend_prev;
	else
		ctx->pend_tail = d->pend_prev;
	d->pend_prev = d->pend_next = NULL;
	d->flags &= (uint8_t)~REASM_DIR_PENDING;
}

/* Puts |d| at the tail of the pending list, its head hole waiting since
 * |ts|. */
static void pend_append(struct reasm_ctx *ctx, struct reasm_dir *d,
			uint64_t ts)
{
	pend_unlink(ctx, d);
	d->wait_since = ts;
	d->pend_prev = ctx->pend_tail;
	d->pend_next = NULL;
	if (ctx->pend_tail)
		ctx->pend_tail->pend_next = d;
	else
		ctx->pend_head = d;
	ctx->pend_tail = d;
	d->flags |= REASM_DIR_PENDING;
}

/* Hands |len| bytes at next_off to the consumer, stamped with |ts| (the
 * time the bytes arrived, not when they became contiguous: records then
 * carry packet times, whatever the worker's clock says at a flush). */
static void deliver(struct reasm_ctx *ctx, struct reasm_dir *d,
		    const uint8_t *data, uint32_t len, uint64_t ts)
{
	/* Progress: whatever hole is ahead has not waited yet. A stray
	 * segment far ahead of a live stream therefore never turns the
	 * stream into a gap while data keeps arriving in order. */
	if ((d->flags & REASM_DIR_PENDING) && ts > d->wait_since)
		pend_append(ctx, d, ts);
	ctx->ops->on_data(ctx->user, dir_flow(d), d->idx, d->next_off, data,
			  len, ts);
	d->next_off += len;
	ST_CTR_ADD(ctx->c, reasm_bytes, len);
}

static void deliver_gap(struct reasm_ctx *ctx, struct reasm_dir *d,
			uint64_t len, uint64_t ts)
{
	if (len == 0)
		return;
	ctx->ops->on_gap(ctx->user, dir_flow(d), d->idx, d->next_off, len, ts);
	d->next_off += len;
	ST_CTR_INC(ctx->c, reasm_gaps);
	ST_CTR_ADD(ctx->c, reasm_gap_bytes, len);
}

/* True if a FIN was seen beyond what has been delivered: the bytes before
 * it are a hole that waits (and times out) like one before buffered data,
 * even when nothing is buffered. */
static bool fin_hole(const struct reasm_dir *d)
{
	return (d->flags & (REASM_DIR_FIN | REASM_DIR_ENDED)) == REASM_DIR_FIN &&
	       d->next_off < d->fin_off;
}

/* Delivers buffered runs that are contiguous with next_off. Keeps the
 * pending list in step: a new head hole starts waiting at |ts|. */
static void drain(struct reasm_ctx *ctx, struct reasm_dir *d, uint64_t ts)
{
	bool moved = false;
	struct reasm_seg *s;
	while ((s = d->ooo) != NULL && s->off <= d->next_off) {
		uint64_t end = s->off + s->len;
		if (end > d->next_off) {
			uint32_t skip = (uint32_t)(d->next_off - s->off);
			deliver(ctx, d, s->data + skip, s->len - skip,
				s->ts ? s->ts : ts);
		}
		d->ooo = s->next;
		if (d->ooo)
			d->ooo->tail = s->tail;
		d->ooo_bytes -= ctx->cfg.chunk_size;
		chunk_put(ctx, s);
		moved = true;
	}
	if (!d->ooo && !fin_hole(d))
		pend_unlink(ctx, d);
	else if (moved)
		pend_append(ctx, d, ts);
}

/* Gives up on the hole before the first buffered run: delivers it as a gap
 * and drains what follows. Returns false if nothing was buffered. */
static bool force_head_gap(struct reasm_ctx *ctx, struct reasm_dir *d,
			   uint64_t ts)
{
	if (!d->ooo)
		return false;
	if (d->ooo->off > d->next_off)
		deliver_gap(ctx, d, d->ooo->off - d->next_off, ts);
	drain(ctx, d, ts);
	return true;
}

static void maybe_fin(struct reasm_ctx *ctx, struct reasm_dir *d, uint64_t ts)
{
	if ((d->flags & REASM_DIR_FIN) && !(d->flags & REASM_DIR_ENDED) &&
	    d->next_off >= d->fin_off) {
		ST_CTR_INC(ctx->c, reasm_fin);
		reasm_dir_end(ctx, dir_flow(d), d->idx, REASM_END_FIN, ts);
	}
}

static void settle(struct reasm_ctx *ctx, struct reasm_dir *d, uint64_t ts);

void reasm_dir_end(struct reasm_ctx *ctx, struct flow *f, unsigned dir,
		   enum reasm_end how, uint64_t ts)
{
	struct reasm_dir *d = &f->dir[dir];
	if (d->flags & REASM_DIR_ENDED)
		return;
	if (d->flags & REASM_DIR_TENTATIVE) {
		/* A hold the end cut short: its data goes out first, and a
		 * FIN it held ends the direction as a FIN. */
		settle(ctx, d, ts);
		if (d->flags & REASM_DIR_ENDED)
			return;
	}
	if (d->ooo || fin_hole(d))
		ST_CTR_INC(ctx->c, reasm_gap_end);
	while (force_head_gap(ctx, d, ts))
		;
	/* Bytes announced by a FIN but never seen are a gap too. */
	if (fin_hole(d))
		deliver_gap(ctx, d, d->fin_off - d->next_off, ts);
	pend_unlink(ctx, d);
	d->flags |= REASM_DIR_ENDED;
	ctx->ops->on_end(ctx->user, f, dir, how, ts);
}

/* ---- out-of-order insertion --------------------------------------- */

static uint32_t chunks_for(const struct reasm_ctx *ctx, uint64_t bytes)
{
	return (uint32_t)((bytes + ctx->chunk_payload - 1) / ctx->chunk_payload);
}

/* Bytes of [s, e) not covered by buffered runs, and in *|chunks| the
 * chunks insert() takes to copy them (each uncovered piece starts a chunk
 * of its own). Compares the covered part with what is buffered (first
 * seen wins) and reports the first overlap that differs. */
static uint64_t uncovered(struct reasm_ctx *ctx, struct reasm_dir *d,
			  uint64_t s, uint64_t e, const uint8_t *data,
			  bool report, uint32_t *chunks)
{
	uint64_t need = 0, pos = s, diff_at = 0;
	uint32_t nch = 0;
	bool differs = false;
	struct reasm_seg *tail = d->ooo ? d->ooo->tail : NULL;
	if (!tail || s >= tail->off + tail->len) {
		/* Beyond everything buffered: nothing to compare. */
		if (chunks)
			*chunks = chunks_for(ctx, e - s);
		return e - s;
	}
	for (struct reasm_seg *g = d->ooo; g && pos < e; g = g->next) {
		uint64_t gs = g->off, ge = g->off + g->len;
		if (ge <= pos)
			continue;
		if (gs >= e)
			break;
		if (gs > pos) {
			need += gs - pos;
			nch += chunks_for(ctx, gs - pos);
		}
		uint64_t os = ST_MAX(gs, pos), oe = ST_MIN(ge, e);
		if (!differs && memcmp(g->data + (os - gs), data + (os - s),
				       oe - os) != 0) {
			differs = true;
			diff_at = os;
		}
		pos = oe;
	}
	if (pos < e) {
		need += e - pos;
		nch += chunks_for(ctx, e - pos);
	}
	if (differs && report) {
		ST_CTR_INC(ctx->c, reasm_overlap_diff);
		if (ctx->ops->on_overlap)
			ctx->ops->on_overlap(ctx->user, dir_flow(d), d->idx,
					     diff_at);
	}
	if (chunks)
		*chunks = nch;
	return need;
}

/* Copies [a, b) of the segment (data starts at offset |s|) in before
 * |*link|: first into the spare room of the run just before it when they
 * touch, then into new chunks. The caller reserved enough chunks. Returns
 * the last run written. */
static struct reasm_seg *fill(struct reasm_ctx *ctx, struct reasm_dir *d,
			      struct reasm_seg **link, struct reasm_seg *prev,
			      uint64_t a, uint64_t b, uint64_t s,
			      const uint8_t *data, uint64_t ts)
{
	if (prev && prev->off + prev->len == a &&
	    prev->len < ctx->chunk_payload) {
		uint32_t n = (uint32_t)ST_MIN(b - a,
					      ctx->chunk_payload - prev->len);
		memcpy(prev->data + prev->len, data + (a - s), n);
		prev->len += n;
		if (ts > prev->ts)
			prev->ts = ts;
		a += n;
	}
	struct reasm_seg *last = prev;
	while (a < b) {
		uint32_t n = (uint32_t)ST_MIN(b - a, ctx->chunk_payload);
		struct reasm_seg *g = chunk_get(ctx);
		g->off = a;
		g->len = n;
		g->ts = ts;
		memcpy(g->data, data + (a - s), n);
		g->next = *link;
		*link = g;
		link = &g->next;
		d->ooo_bytes += ctx->cfg.chunk_size;
		a += n;
		last = g;
	}
	return last;
}

/* Buffers the uncovered parts of [s, e). Chunks must be available. The
 * common case, data beyond everything buffered (a hole followed by a run
 * of segments), goes straight to the tail. */
static void insert(struct reasm_ctx *ctx, struct reasm_dir *d, uint64_t s,
		   uint64_t e, const uint8_t *data, uint64_t ts)
{
	struct reasm_seg *tail = d->ooo ? d->ooo->tail : NULL;
	if (tail && s >= tail->off + tail->len) {
		struct reasm_seg *last =
			fill(ctx, d, &tail->next, tail, s, e, s, data, ts);
		d->ooo->tail = last;
		return;
	}
	struct reasm_seg **link = &d->ooo, *prev = NULL, *appended = NULL;
	uint64_t pos = s;
	while (pos < e) {
		struct reasm_seg *g = *link;
		if (!g || g->off >= e) {
			struct reasm_seg *last =
				fill(ctx, d, link, prev, pos, e, s, data, ts);
			if (!g)
				appended = last;
			break;
		}
		uint64_t ge = g->off + g->len;
		if (ge <= pos) {
			prev = g;
			link = &g->next;
			continue;
		}
		if (g->off > pos) {
			fill(ctx, d, link, prev, pos, g->off, s, data, ts);
			/* Step |link| past what was filled, to |g|. */
			while (*link != g)
				link = &(*link)->next;
		}
		pos = ST_MAX(pos, ge);
		prev = g;
		link = &g->next;
	}
	/* The head may be new (filled before the old head): it carries the
	 * tail, which moved only if something was appended at the end. */
	d->ooo->tail = appended ? appended : tail;
}

/* Frees chunks for |want| more: first by giving up on other directions'
 * oldest holes (their data is then delivered, so nothing is lost silently),
 * then on this direction's own head hole. Returns true if enough chunks
 * are free. Each victim leaves the pending list (all its holes, up to a
 * FIN, are given up), so this ends. */
static bool make_room(struct reasm_ctx *ctx, struct reasm_dir *d,
		      uint32_t want, uint64_t ts)
{
	while (ctx->nfree < want) {
		struct reasm_dir *victim = ctx->pend_head;
		if (victim == d)
			victim = d->pend_next;
		if (!victim)
			return false;
		ST_CTR_INC(ctx->c, reasm_gap_worker_cap);
		while (force_head_gap(ctx, victim, ts))
			;
		if (fin_hole(victim))
			deliver_gap(ctx, victim, victim->fin_off - victim->next_off,
				    ts);
		maybe_fin(ctx, victim, ts);
	}
	return true;
}

/* Buffers a segment that starts beyond next_off (or any segment of a
 * direction on hold). Returns true if it is buffered (or was a duplicate);
 * false if a cap made the hole before it a gap and the caller must
 * deliver it in order now. */
static bool push_ooo(struct reasm_ctx *ctx, struct reasm_dir *d, uint64_t s,
		     uint64_t e, const uint8_t *data, uint64_t ts)
{
	for (bool first = true;; first = false) {
		uint32_t want;
		uint64_t need = uncovered(ctx, d, s, e, data, first, &want);
		if (need == 0) {
			ST_CTR_INC(ctx->c, reasm_dup_segments);
			ST_CTR_ADD(ctx->c, reasm_dup_bytes, e - s);
			return true;
		}
		bool flow_ok = d->ooo_bytes + (uint64_t)want * ctx->cfg.chunk_size <=
			       ctx->cfg.flow_ooo_max;
		if (flow_ok && make_room(ctx, d, want, ts)) {
			bool was_empty = d->ooo == NULL;
			insert(ctx, d, s, e, data, ts);
			ST_CTR_INC(ctx->c, reasm_ooo_queued);
			if (was_empty)
				pend_append(ctx, d, ts);
			return true;
		}
		/* Over a cap: the head hole becomes a gap. If nothing is
		 * buffered here, the segment itself is the head: give up on
		 * the hole before it and deliver it in order. */
		if (flow_ok)
			ST_CTR_INC(ctx->c, reasm_gap_worker_cap);
		else
			ST_CTR_INC(ctx->c, reasm_gap_flow_cap);
		if (!d->ooo || d->ooo->off >= s) {
			deliver_gap(ctx, d, s - d->next_off, ts);
			return false; /* caller delivers in order now */
		}
		force_head_gap(ctx, d, ts);
		if (s <= d->next_off)
			return false;
	}
}

/* ---- segment entry point ------------------------------------------ */

/* Delivers [s, e) of a segment that starts at or before next_off. Where
 * buffered runs cover part of it, the buffered (first-seen) bytes are the
 * ones delivered; differences are reported by uncovered(). Never buffers,
 * so it cannot fail. */
static void push_in_order(struct reasm_ctx *ctx, struct reasm_dir *d,
			  uint64_t s, uint64_t e, const uint8_t *data,
			  uint64_t ts)
{
	bool direct = false;
	if (d->ooo)
		(void)uncovered(ctx, d, d->next_off, e,
				data + (d->next_off - s), true, NULL);
	while (d->next_off < e) {
		struct reasm_seg *g = d->ooo;
		if (g && g->off <= d->next_off) {
			drain(ctx, d, ts);
			continue;
		}
		uint64_t stop = g ? ST_MIN(e, g->off) : e;
		deliver(ctx, d, data + (d->next_off - s),
			(uint32_t)(stop - d->next_off), ts);
		direct = true;
	}
	if (direct)
		ST_CTR_INC(ctx->c, reasm_in_order);
	drain(ctx, d, ts);
}

static void handle_rst(struct reasm_ctx *ctx, struct flow *f, uint64_t ts)
{
	ST_CTR_INC(ctx->c, reasm_rst);
	reasm_dir_end(ctx, f, 0, REASM_END_RST, ts);
	reasm_dir_end(ctx, f, 1, REASM_END_RST, ts);
}

/* Sets up a direction that has not started. Returns false to ignore the
 * segment (a pure ACK tells us nothing we need). */
static bool start_dir(struct reasm_ctx *ctx, struct reasm_dir *d, uint32_t seq,
		      uint32_t wire_len, uint8_t flags)
{
	if (flags & DECODE_TCP_SYN) {
		d->base_seq = seq + 1;
		d->flags |= REASM_DIR_STARTED | REASM_DIR_SYN;
		return true;
	}
	if (wire_len == 0 && !(flags & DECODE_TCP_FIN))
		return false;
	/* Mid-stream pickup: the first byte we see is offset 0, for now. */
	d->base_seq = seq;
	d->flags |= REASM_DIR_STARTED;
	if (ctx->cfg.start_hold_ns) {
		d->flags |= REASM_DIR_TENTATIVE;
		d->fin_off = 0;
		d->wait_since = 0; /* set when the first data is held */
	}
	ST_CTR_INC(ctx->c, reasm_midstream);
	return true;
}

/* Moves offset 0 back by |delta| bytes (to an earlier segment or the byte
 * after the SYN) while nothing has been delivered: buffered runs and the
 * FIN move up by as much. */
static void rebase(struct reasm_dir *d, uint32_t delta)
{
	d->base_seq -= delta;
	for (struct reasm_seg *g = d->ooo; g; g = g->next)
		g->off += delta;
	if (d->flags & REASM_DIR_FIN)
		d->fin_off += delta;
	/* |wait_since| is the hold start, unchanged. */
}

/* Ends the hold: offset 0 is final, buffered data goes out in order (a
 * hole at the front waits like any other). */
static void settle(struct reasm_ctx *ctx, struct reasm_dir *d, uint64_t ts)
{
	if (!(d->flags & REASM_DIR_TENTATIVE))
		return;
	d->flags &= (uint8_t)~REASM_DIR_TENTATIVE;
	if (d->ooo && d->ooo->off > d->next_off)
		pend_append(ctx, d, ts); /* the front hole starts waiting */
	drain(ctx, d, ts);
	maybe_fin(ctx, d, ts);
}

/* A SYN on a direction on hold: if it is at or before the held start
 * (within the buffer cap), the start moves to the byte after it and the
 * hold ends. Returns false if the SYN does not fit (another ISN). */
static bool tentative_syn(struct reasm_ctx *ctx, struct reasm_dir *d,
			  uint32_t seq, uint64_t ts)
{
	uint32_t delta = d->base_seq - (seq + 1);
	if (delta > ctx->cfg.flow_ooo_max)
		return false;
	if (delta)
		rebase(d, delta);
	d->flags |= REASM_DIR_SYN;
	settle(ctx, d, ts);
	return true;
}

/* The hold of a direction is over after start_hold_ns of packet time
 * from its first held byte, or when holding more would hit a cap. */
static bool hold_over(const struct reasm_ctx *ctx, const struct reasm_dir *d,
		      uint32_t len, uint64_t ts)
{
	if (d->ooo && ts >= d->wait_since &&
	    ts - d->wait_since >= ctx->cfg.start_hold_ns)
		return true;
	uint64_t need = ((uint64_t)len / ctx->chunk_payload + 2) *
			ctx->cfg.chunk_size;
	return d->ooo_bytes + need > ctx->cfg.flow_ooo_max ||
	       (uint64_t)ctx->nfree * ctx->cfg.chunk_size < need;
}

void reasm_tcp_push(struct reasm_ctx *ctx, struct flow *f, unsigned dir,
		    uint32_t seq, const uint8_t *data, uint32_t len,
		    uint32_t wire_len, uint8_t flags, uint64_t ts)
{
	struct reasm_dir *d = &f->dir[dir];
	if (d->flags & REASM_DIR_ENDED) {
		if (wire_len)
			ST_CTR_INC(ctx->c, reasm_after_fin);
		return;
	}
	if (flags & DECODE_TCP_RST) {
		handle_rst(ctx, f, ts);
		return;
	}
	if (!(d->flags & REASM_DIR_STARTED)) {
		if (!start_dir(ctx, d, seq, wire_len, flags))
			return;
	} else if ((flags & DECODE_TCP_SYN) &&
		   (d->flags & REASM_DIR_TENTATIVE)) {
		if (!tentative_syn(ctx, d, seq, ts)) {
			ST_CTR_INC(ctx->c, reasm_syn_changed);
			return;
		}
	} else if ((flags & DECODE_TCP_SYN) && seq + 1 != d->base_seq) {
		/* A different ISN on a live direction: not ours to follow
		 * (port reuse is handled by the flow layer). */
		ST_CTR_INC(ctx->c, reasm_syn_changed);
		return;
	} else if ((flags & DECODE_TCP_SYN) && !(d->flags & REASM_DIR_SYN)) {
		/* The SYN came after the first data (mirror reordering): it
		 * says offset 0 was the first byte, so the direction did start
		 * at its SYN. */
		d->flags |= REASM_DIR_SYN;
	}
	if (flags & DECODE_TCP_SYN)
		seq += 1; /* the SYN occupies one sequence number */
	if (wire_len == 0 && !(flags & DECODE_TCP_FIN))
		return;

	/* Map the 32-bit sequence number to a 64-bit stream offset relative
	 * to the next byte we expect; wrap-around falls out of the cast. */
	int32_t rel = (int32_t)(seq - (d->base_seq + (uint32_t)d->next_off));
	if (rel > (int32_t)REASM_MAX_DISTANCE ||
	    rel < -(int32_t)REASM_MAX_DISTANCE) {
		ST_CTR_INC(ctx->c, reasm_far_segment);
		return;
	}
	int64_t soff = (int64_t)d->next_off + rel;
	if ((d->flags & REASM_DIR_TENTATIVE) && hold_over(ctx, d, len, ts))
		settle(ctx, d, ts);
	if ((d->flags & REASM_DIR_TENTATIVE) && soff < 0) {
		/* An earlier segment the mirror delivered late: nothing has
		 * gone out yet, so the start moves back to it. */
		if ((uint64_t)(-soff) <= ctx->cfg.flow_ooo_max) {
			rebase(d, (uint32_t)(-soff));
			soff = 0;
		} else {
			settle(ctx, d, ts);
		}
	}
	uint64_t skip = 0;
	if (soff < 0) { /* starts before the mid-stream start point */
		skip = (uint64_t)(-soff);
		ST_CTR_INC(ctx->c, reasm_before_start);
		if (skip >= wire_len)
			return;
		soff = 0;
	}
	uint64_t s = (uint64_t)soff;
	uint64_t wire_end = s + (wire_len - skip);
	uint64_t cap_end = len > skip ? s + (len - skip) : s;
	const uint8_t *p = len > skip ? data + skip : data;

	if (flags & DECODE_TCP_FIN) {
		if (!(d->flags & REASM_DIR_FIN)) {
			d->fin_off = wire_end;
			d->flags |= REASM_DIR_FIN;
		}
	}
	if ((d->flags & REASM_DIR_FIN) && wire_end > d->fin_off) {
		ST_CTR_INC(ctx->c, reasm_after_fin);
		wire_end = d->fin_off;
		cap_end = ST_MIN(cap_end, wire_end);
		if (s >= wire_end) {
			maybe_fin(ctx, d, ts);
			return;
		}
	}

	if (cap_end > s && (d->flags & REASM_DIR_TENTATIVE)) {
		/* On hold: everything is buffered, nothing delivered. */
		ST_CTR_INC(ctx->c, reasm_segments);
		if (!push_ooo(ctx, d, s, cap_end, p, ts)) {
			/* No room after all: the hold ends here. */
			settle(ctx, d, ts);
			push_in_order(ctx, d, s, cap_end, p, ts);
		}
	} else if (cap_end > s) {
		ST_CTR_INC(ctx->c, reasm_segments);
		if (cap_end <= d->next_off) {
			ST_CTR_INC(ctx->c, reasm_dup_segments);
			ST_CTR_ADD(ctx->c, reasm_dup_bytes, cap_end - s);
		} else if (s <= d->next_off) {
			push_in_order(ctx, d, s, cap_end, p, ts);
		} else {
			if (!push_ooo(ctx, d, s, cap_end, p, ts))
				/* a cap turned it in-order */
				push_in_order(ctx, d, s, cap_end, p, ts);
		}
	}
	/* A FIN on a held start: the sender is done, nothing earlier is worth
	 * waiting for. */
	if ((d->flags & REASM_DIR_TENTATIVE) && (flags & DECODE_TCP_FIN))
		settle(ctx, d, ts);
	/* A segment cut short (snaplen or mirror truncation): its tail will
	 * never be seen, so it is a gap now rather than after a timeout. */
	if (wire_end > cap_end && cap_end >= s && d->next_off >= cap_end &&
	    d->next_off < wire_end) {
		ST_CTR_INC(ctx->c, reasm_gap_truncated);
		while (d->next_off < wire_end) {
			if (d->ooo && d->ooo->off <= d->next_off) {
				drain(ctx, d, ts);
				continue;
			}
			uint64_t to = d->ooo ? ST_MIN(wire_end, d->ooo->off)
					     : wire_end;
			deliver_gap(ctx, d, to - d->next_off, ts);
			drain(ctx, d, ts);
		}
	}
	ST_CTR_MAXG(ctx->c, reasm_ooo_bytes_max, reasm_ctx_mem_used(ctx));
	maybe_fin(ctx, d, ts);
	/* A FIN beyond a hole with nothing buffered: the hole waits for the
	 * gap timeout like any other. */
	if (fin_hole(d) && !(d->flags & REASM_DIR_PENDING))
		pend_append(ctx, d, ts);
}

unsigned reasm_tcp_tick(struct reasm_ctx *ctx, uint64_t now, unsigned budget)
{
	unsigned forced = 0;
	while (budget-- > 0) {
		struct reasm_dir *d = ctx->pend_head;
		if (!d || now < d->wait_since ||
		    now - d->wait_since < ctx->cfg.gap_timeout_ns)
			break;
		if (d->flags & REASM_DIR_TENTATIVE) {
			/* A hold nobody ended (the flow went quiet). */
			settle(ctx, d, now);
			forced++;
			continue;
		}
		ST_CTR_INC(ctx->c, reasm_gap_timeout);
		/* Drains at least one run, which moves |d| to the tail of
		 * the list or off it; or, with nothing buffered, gives up the
		 * hole before the FIN, which ends |d|. */
		if (!force_head_gap(ctx, d, now) && fin_hole(d))
			deliver_gap(ctx, d, d->fin_off - d->next_off, now);
		maybe_fin(ctx, d, now);
		if (!d->ooo && !fin_hole(d))
			pend_unlink(ctx, d); /* nothing holds it open */
		forced++;
	}
	return forced;
}
