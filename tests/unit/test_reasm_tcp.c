/* Tests for src/reasm_tcp.c through its public API (reasm.h).
 *
 * Suricata-style tables: each case is a list of steps (push a segment with
 * direction, sequence number, bytes or length, wire length, flags and
 * packet time; run the gap timer; end the flow) and the expected result:
 * the stream image per direction (delivered bytes, '_' for each gap
 * byte), the ordered event trace and selected counters.
 *
 * The recording consumer checks the reassembly contract on every call:
 * on_data/on_gap start exactly where the previous one ended, never have
 * length 0, nothing arrives after on_end, on_end comes once per direction.
 *
 * Trace syntax, events separated by one space (adjacent data of the same
 * direction merged, since splitting is an implementation detail):
 *   D<dir>@<off>+<len>   data          G<dir>@<off>+<len>   gap
 *   O<dir>@<off>         overlap with different bytes
 *   E<dir>:<how>         end (fin, rst, timeout, evicted, shutdown)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sealtap/decode.h"
#include "sealtap/flow.h"
#include "sealtap/reasm.h"

/* ---- the recording consumer ----------------------------------------- */

#define REC_MAX_EV 512
#define REC_IMG_MAX 65536

struct rec_ev {
	char kind; /* 'D', 'G', 'O', 'E' */
	unsigned dir;
	uint64_t off, len;
	int how;
};

struct rec {
	struct rec_ev ev[REC_MAX_EV];
	unsigned nev;
	bool ev_overflow;
	uint64_t next[2];  /* where the next on_data/on_gap must start */
	int ended[2];      /* enum reasm_end once ended */
	uint64_t data_bytes[2], gap_bytes[2];
	unsigned gaps[2], ends, overlaps;
	uint8_t img[2][REC_IMG_MAX]; /* first REC_IMG_MAX bytes of the image */
	/* If set, every delivered byte at offset o must equal
	 * expect[dir][o] (for the property test). */
	const uint8_t *expect[2];
	uint64_t expect_len[2];
	/* If set, every delivered byte must match pat() of its sequence
	 * number (base_seq + offset). */
	bool check_pattern;
};

static uint8_t pat(uint32_t seq)
{
	return (uint8_t)('a' + seq % 26);
}

static void rec_event(struct rec *r, char kind, unsigned dir, uint64_t off,
		      uint64_t len, int how)
{
	if (kind == 'D' && r->nev > 0) {
		struct rec_ev *l = &r->ev[r->nev - 1];
		if (l->kind == 'D' && l->dir == dir && l->off + l->len == off) {
			l->len += len;
			return;
		}
	}
	if (r->nev == REC_MAX_EV) {
		r->ev_overflow = true;
		return;
	}
	r->ev[r->nev++] = (struct rec_ev){ kind, dir, off, len, how };
}

static struct rec *rec_of(struct flow *f)
{
	assert_non_null(f->app);
	return f->app;
}

static void rec_data(void *u, struct flow *f, unsigned dir, uint64_t off,
		     const uint8_t *data, uint32_t len, uint64_t ts)
{
	(void)u, (void)ts;
	struct rec *r = rec_of(f);
	assert_true(dir < 2);
	if (r->ended[dir])
		fail_msg("on_data dir %u after on_end", dir);
	if (off != r->next[dir])
		fail_msg("on_data dir %u at %llu, expected %llu", dir,
			 (unsigned long long)off,
			 (unsigned long long)r->next[dir]);
	assert_true(len > 0);
	assert_non_null(data);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		if (o < REC_IMG_MAX)
			r->img[dir][o] = data[i];
		if (r->check_pattern) {
			uint32_t seq = f->dir[dir].base_seq + (uint32_t)o;
			if (data[i] != pat(seq))
				fail_msg("dir %u byte at %llu is '%c', want '%c'",
					 dir, (unsigned long long)o, data[i],
					 pat(seq));
		}
		if (r->expect[dir]) {
			if (o >= r->expect_len[dir])
				fail_msg("dir %u data beyond the stream", dir);
			if (data[i] != r->expect[dir][o])
				fail_msg("dir %u byte %llu differs", dir,
					 (unsigned long long)o);
		}
	}
	r->next[dir] = off + len;
	r->data_bytes[dir] += len;
	rec_event(r, 'D', dir, off, len, 0);
}

static void rec_gap(void *u, struct flow *f, unsigned dir, uint64_t off,
		    uint64_t len, uint64_t ts)
{
	(void)u, (void)ts;
	struct rec *r = rec_of(f);
	assert_true(dir < 2);
	if (r->ended[dir])
		fail_msg("on_gap dir %u after on_end", dir);
	if (off != r->next[dir])
		fail_msg("on_gap dir %u at %llu, expected %llu", dir,
			 (unsigned long long)off,
			 (unsigned long long)r->next[dir]);
	assert_true(len > 0);
	for (uint64_t o = off; o < off + len && o < REC_IMG_MAX; o++)
		r->img[dir][o] = '_';
	r->next[dir] = off + len;
	r->gap_bytes[dir] += len;
	r->gaps[dir]++;
	rec_event(r, 'G', dir, off, len, 0);
}

static void rec_overlap(void *u, struct flow *f, unsigned dir, uint64_t off)
{
	(void)u;
	struct rec *r = rec_of(f);
	if (r->ended[dir])
		fail_msg("on_overlap dir %u after on_end", dir);
	r->overlaps++;
	rec_event(r, 'O', dir, off, 0, 0);
}

static void rec_end(void *u, struct flow *f, unsigned dir, enum reasm_end how,
		    uint64_t ts)
{
	(void)u, (void)ts;
	struct rec *r = rec_of(f);
	assert_true(dir < 2);
	if (r->ended[dir])
		fail_msg("second on_end for dir %u", dir);
	assert_true(how >= REASM_END_FIN && how <= REASM_END_SHUTDOWN);
	r->ended[dir] = (int)how;
	r->ends++;
	rec_event(r, 'E', dir, 0, 0, (int)how);
}

static void rec_flow_free(void *u, struct flow *f)
{
	(void)u, (void)f;
	fail_msg("reassembly never frees flows");
}

static const struct reasm_ops rec_ops = {
	.on_data = rec_data,
	.on_gap = rec_gap,
	.on_overlap = rec_overlap,
	.on_end = rec_end,
	.on_flow_free = rec_flow_free,
};

static void rec_trace(const struct rec *r, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < r->nev && n < len; i++) {
		const struct rec_ev *e = &r->ev[i];
		const char *sep = i ? " " : "";
		switch (e->kind) {
		case 'D':
		case 'G':
			n += (size_t)snprintf(buf + n, len - n, "%s%c%u@%llu+%llu",
					      sep, e->kind, e->dir,
					      (unsigned long long)e->off,
					      (unsigned long long)e->len);
			break;
		case 'O':
			n += (size_t)snprintf(buf + n, len - n, "%sO%u@%llu", sep,
					      e->dir, (unsigned long long)e->off);
			break;
		case 'E':
			n += (size_t)snprintf(buf + n, len - n, "%sE%u:%s", sep,
					      e->dir, reasm_end_name(e->how));
			break;
		}
	}
}

/* A flow as the table would hand it out, with |r| as consumer state. */
static void flow_setup(struct flow *f, struct rec *r)
{
	memset(f, 0, sizeof(*f));
	f->client_dir = FLOW_ROLE_UNKNOWN;
	f->dir[0].idx = 0;
	f->dir[1].idx = 1;
	memset(r, 0, sizeof(*r));
	f->app = r;
}

/* ---- tables ----------------------------------------------------------- */

enum op { OP_PUSH = 0, OP_TICK, OP_END };

struct step {
	int op;
	unsigned dir;
	uint32_t seq;
	const char *data; /* NULL: |len| bytes of pat() from the payload seq */
	uint32_t len;
	uint32_t wire;    /* wire length when more than |len| (truncated) */
	uint8_t flags;
	uint64_t ts;
	int how;          /* OP_END */
};

#define S DECODE_TCP_SYN
#define A DECODE_TCP_ACK
#define F DECODE_TCP_FIN
#define R DECODE_TCP_RST

/* Push literal bytes. */
#define P(d, sq, str, fl, t)                                                   \
	{ .op = OP_PUSH, .dir = (d), .seq = (sq), .data = (str),               \
	  .len = sizeof(str) - 1, .flags = (fl), .ts = (t) }
/* Push literal bytes that were |w| bytes on the wire (truncated). */
#define PT(d, sq, str, w, fl, t)                                               \
	{ .op = OP_PUSH, .dir = (d), .seq = (sq), .data = (str),               \
	  .len = sizeof(str) - 1, .wire = (w), .flags = (fl), .ts = (t) }
/* Push |n| pattern bytes. */
#define PN(d, sq, n, fl, t)                                                    \
	{ .op = OP_PUSH, .dir = (d), .seq = (sq), .len = (n), .flags = (fl),   \
	  .ts = (t) }
#define TICK(t) { .op = OP_TICK, .ts = (t) }
#define FEND(h, t) { .op = OP_END, .how = (h), .ts = (t) }

struct cexp {
	enum st_counter id;
	uint64_t v;
};
#define C(name, v) { ST_CTR_##name, (v) }
#define CEND { ST_CTR__COUNT, 0 }

struct rcase {
	const char *name;
	struct reasm_cfg cfg; /* chunk_size 0: test_cfg */
	struct step steps[24];
	const char *image[2]; /* NULL: not checked */
	const char *trace;    /* NULL: not checked */
	struct cexp ctr[12];
	bool pattern;         /* check pattern bytes */
};

/* Small chunks (104 data bytes each), 64 KiB pool, 100 ns gap timeout. */
static const struct reasm_cfg test_cfg = {
	.flow_ooo_max = 16384,
	.worker_memcap = 65536,
	.chunk_size = 128,
	.gap_timeout_ns = 100,
};

/* Anomaly counters: they must be 0 unless a case names them. */
static const enum st_counter anomalies[] = {
	ST_CTR_reasm_dup_segments,   ST_CTR_reasm_dup_bytes,
	ST_CTR_reasm_overlap_diff,   ST_CTR_reasm_before_start,
	ST_CTR_reasm_gaps,           ST_CTR_reasm_gap_bytes,
	ST_CTR_reasm_gap_timeout,    ST_CTR_reasm_gap_flow_cap,
	ST_CTR_reasm_gap_worker_cap, ST_CTR_reasm_gap_end,
	ST_CTR_reasm_gap_truncated,  ST_CTR_reasm_far_segment,
	ST_CTR_reasm_after_fin,      ST_CTR_reasm_syn_changed,
	ST_CTR_reasm_rst,            ST_CTR_reasm_midstream,
	ST_CTR_reasm_fin,            ST_CTR_reasm_ooo_queued,
};

static void check_counters(const struct st_counters *c, const struct cexp *e)
{
	uint64_t want[ST_CTR__COUNT];
	bool named[ST_CTR__COUNT] = { false };
	for (; e->id != ST_CTR__COUNT; e++) {
		want[e->id] = e->v;
		named[e->id] = true;
	}
	for (size_t i = 0; i < ST_ARRAY_SIZE(anomalies); i++) {
		if (!named[anomalies[i]]) {
			want[anomalies[i]] = 0;
			named[anomalies[i]] = true;
		}
	}
	for (unsigned i = 0; i < ST_CTR__COUNT; i++)
		if (named[i] && c->v[i] != want[i])
			fail_msg("counter %s = %llu, want %llu",
				 counters_name(i), (unsigned long long)c->v[i],
				 (unsigned long long)want[i]);
}

static void run_steps(struct reasm_ctx *ctx, struct flow *f,
		      const struct step *st, size_t n, uint64_t memcap)
{
	static uint8_t buf[1 << 16];
	for (size_t i = 0; i < n; i++, st++) {
		switch (st->op) {
		case OP_PUSH: {
			const uint8_t *p = (const uint8_t *)st->data;
			if (!p) {
				uint32_t pseq = st->seq + ((st->flags & S) ? 1 : 0);
				for (uint32_t k = 0; k < st->len; k++)
					buf[k] = pat(pseq + k);
				p = buf;
			}
			uint32_t wire = st->wire > st->len ? st->wire : st->len;
			reasm_tcp_push(ctx, f, st->dir, st->seq, p, st->len, wire,
				       st->flags, st->ts);
			break;
		}
		case OP_TICK:
			reasm_tcp_tick(ctx, st->ts, 1000);
			break;
		case OP_END:
			reasm_dir_end(ctx, f, 0, st->how, st->ts);
			reasm_dir_end(ctx, f, 1, st->how, st->ts);
			break;
		}
		assert_true(reasm_ctx_mem_used(ctx) <= memcap);
	}
}

static size_t nsteps(const struct step *st, size_t max)
{
	size_t n = 0;
	/* A step is used if anything in it is set. */
	static const struct step zero;
	while (n < max && memcmp(&st[n], &zero, sizeof(zero)) != 0)
		n++;
	return n;
}

static void run_case(void **state)
{
	const struct rcase *k = *state;
	struct reasm_cfg cfg = k->cfg.chunk_size ? k->cfg : test_cfg;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	r.check_pattern = k->pattern;

	run_steps(ctx, &f, k->steps, nsteps(k->steps, ST_ARRAY_SIZE(k->steps)),
		  cfg.worker_memcap);

	char trace[4096];
	rec_trace(&r, trace, sizeof(trace));
	assert_false(r.ev_overflow);
	if (k->trace && strcmp(trace, k->trace) != 0)
		fail_msg("trace\n  got:  %s\n  want: %s", trace, k->trace);
	for (unsigned d = 0; d < 2; d++) {
		if (!k->image[d])
			continue;
		size_t n = strlen(k->image[d]);
		if (r.next[d] != n ||
		    memcmp(r.img[d], k->image[d], n) != 0)
			fail_msg("dir %u image\n  got:  %.*s\n  want: %s", d,
				 (int)r.next[d], (const char *)r.img[d],
				 k->image[d]);
	}
	check_counters(&c, k->ctr);
	/* Whatever was buffered is released once both directions end. */
	if (r.ended[0] && r.ended[1])
		assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_ctx_free(ctx);
}

#define ISN0 1000u
#define ISN1 5000u
#define SYN0(t) P(0, ISN0, "", S, t)
#define SYNACK1(t) P(1, ISN1, "", S | A, t)
#define ISNW 0xffffff00u

static const struct rcase cases[] = {
	{ "in_order",
	  .steps = { SYN0(1), SYNACK1(2), P(0, 1001, "abcd", A, 3),
		     P(0, 1005, "efgh", A, 4), P(1, 5001, "HTTP", A, 5),
		     P(0, 1009, "", A, 6) },
	  .image = { "abcdefgh", "HTTP" },
	  .trace = "D0@0+8 D1@0+4",
	  .ctr = { C(reasm_bytes, 12), C(reasm_segments, 3),
		   C(reasm_in_order, 3), CEND } },

	{ "reordered",
	  .steps = { SYN0(1), P(0, 1009, "ijkl", A, 2), P(0, 1005, "efgh", A, 3),
		     P(0, 1013, "mn", A, 4), P(0, 1001, "abcd", A, 5) },
	  .image = { "abcdefghijklmn", "" },
	  .trace = "D0@0+14",
	  .ctr = { C(reasm_bytes, 14), C(reasm_ooo_queued, 3),
		   C(reasm_in_order, 1), C(reasm_segments, 4), CEND } },

	{ "retransmission",
	  .steps = { SYN0(1), P(0, 1001, "abcd", A, 2), P(0, 1001, "abcd", A, 3),
		     P(0, 1005, "efgh", A, 4), P(0, 1003, "cd", A, 5),
		     P(0, 1001, "abcdefgh", A, 6) },
	  .image = { "abcdefgh", "" },
	  .trace = "D0@0+8",
	  .ctr = { C(reasm_dup_segments, 3), C(reasm_dup_bytes, 14),
		   C(reasm_bytes, 8), CEND } },

	{ "retransmission_ooo",
	  .steps = { SYN0(1), P(0, 1009, "ijkl", A, 2), P(0, 1009, "ijkl", A, 3),
		     P(0, 1010, "jk", A, 4), P(0, 1001, "abcdefgh", A, 5) },
	  .image = { "abcdefghijkl", "" },
	  .trace = "D0@0+12",
	  .ctr = { C(reasm_dup_segments, 2), C(reasm_dup_bytes, 6),
		   C(reasm_ooo_queued, 1), CEND } },

	/* In-order overlap: only the new tail is delivered. */
	{ "overlap_same_in_order",
	  .steps = { SYN0(1), P(0, 1001, "abcdef", A, 2),
		     P(0, 1004, "defghi", A, 3) },
	  .image = { "abcdefghi", "" },
	  .trace = "D0@0+9",
	  .ctr = { C(reasm_in_order, 2), C(reasm_bytes, 9), CEND } },

	/* Out-of-order overlaps with the same bytes: only uncovered parts
	 * are buffered, nothing reported. */
	{ "overlap_same_ooo",
	  .steps = { SYN0(1), P(0, 1007, "ghij", A, 2), P(0, 1009, "ijkl", A, 3),
		     P(0, 1005, "efghijklmn", A, 4), P(0, 1001, "abcdef", A, 5) },
	  .image = { "abcdefghijklmn", "" },
	  .trace = "D0@0+14",
	  .ctr = { C(reasm_ooo_queued, 3), C(reasm_bytes, 14), CEND } },

	/* Different bytes over buffered data: the first seen stay, the
	 * difference is counted and reported at the overlap. */
	{ "overlap_diff_ooo",
	  .steps = { SYN0(1), P(0, 1005, "efgh", A, 2), P(0, 1003, "CDEFGHij", A, 3),
		     P(0, 1001, "ab", A, 4) },
	  .image = { "abCDefghij", "" },
	  .trace = "O0@4 D0@0+10",
	  .ctr = { C(reasm_overlap_diff, 1), C(reasm_ooo_queued, 2), CEND } },

	/* In-order data over buffered data with different bytes. */
	{ "overlap_diff_in_order",
	  .steps = { SYN0(1), P(0, 1005, "efgh", A, 2), P(0, 1001, "abcdEFGHij", A, 3) },
	  .image = { "abcdefghij", "" },
	  .trace = "O0@4 D0@0+10",
	  .ctr = { C(reasm_overlap_diff, 1), C(reasm_ooo_queued, 1), CEND } },

	{ "gap_filled_later",
	  .steps = { SYN0(1), P(0, 1001, "abcd", A, 2), P(0, 1009, "ijkl", A, 10),
		     TICK(50), TICK(109), P(0, 1005, "efgh", A, 109), TICK(500) },
	  .image = { "abcdefghijkl", "" },
	  .trace = "D0@0+12",
	  .ctr = { C(reasm_ooo_queued, 1), CEND } },

	/* The hole waits gap_timeout (100) from when the run was buffered. */
	{ "gap_timeout_tick",
	  .steps = { SYN0(1), P(0, 1001, "abcd", A, 2), P(0, 1009, "ijkl", A, 10),
		     TICK(109), TICK(110), P(0, 1005, "efgh", A, 111) },
	  .image = { "abcd____ijkl", "" },
	  .trace = "D0@0+4 G0@4+4 D0@8+4",
	  .ctr = { C(reasm_gaps, 1), C(reasm_gap_bytes, 4),
		   C(reasm_gap_timeout, 1), C(reasm_ooo_queued, 1),
		   C(reasm_dup_segments, 1), C(reasm_dup_bytes, 4), CEND } },

	/* Two holes: the second one waits from when the first was given up. */
	{ "gap_timeout_two_holes",
	  .steps = { SYN0(1), P(0, 1003, "cd", A, 10), P(0, 1007, "gh", A, 60),
		     TICK(110), TICK(209), TICK(210) },
	  .image = { "__cd__gh", "" },
	  .trace = "G0@0+2 D0@2+2 G0@4+2 D0@6+2",
	  .ctr = { C(reasm_gaps, 2), C(reasm_gap_bytes, 4),
		   C(reasm_gap_timeout, 2), C(reasm_ooo_queued, 2), CEND } },

	{ "gap_at_flow_end",
	  .steps = { SYN0(1), P(0, 1001, "abcd", A, 2), P(0, 1009, "ijkl", A, 10),
		     FEND(REASM_END_TIMEOUT, 20) },
	  .image = { "abcd____ijkl", "" },
	  .trace = "D0@0+4 G0@4+4 D0@8+4 E0:timeout E1:timeout",
	  .ctr = { C(reasm_gaps, 1), C(reasm_gap_bytes, 4),
		   C(reasm_gap_end, 1), C(reasm_ooo_queued, 1), CEND } },

	/* ISN just below 2^32: data crosses the wrap, out of order. */
	{ "seq_wrap",
	  .steps = { P(0, ISNW, "", S, 1), PN(0, ISNW + 1 + 200, 100, A, 2),
		     PN(0, ISNW + 1 + 100, 100, A, 3), PN(0, ISNW + 1, 100, A, 4),
		     PN(0, ISNW + 1 + 300, 100, A, 5),
		     PN(0, ISNW + 1 + 250, 100, A, 6),
		     P(0, ISNW + 1 + 400, "", F | A, 7) },
	  .trace = "D0@0+400 E0:fin",
	  .pattern = true,
	  .ctr = { C(reasm_bytes, 400), C(reasm_ooo_queued, 2),
		   C(reasm_dup_segments, 1), C(reasm_dup_bytes, 100),
		   C(reasm_fin, 1), CEND } },

	/* Mid-stream pickup right before the wrap. */
	{ "seq_wrap_midstream",
	  .steps = { PN(1, 0xfffffff0u, 32, A, 1), PN(1, 0x10u, 16, A, 2),
		     PN(1, 0x30u, 16, A, 3), PN(1, 0x20u, 16, A, 4) },
	  .trace = "D1@0+80",
	  .pattern = true,
	  .ctr = { C(reasm_midstream, 1), C(reasm_ooo_queued, 1),
		   C(reasm_bytes, 80), CEND } },

	/* No SYN: the first byte seen is offset 0. */
	{ "midstream",
	  .steps = { P(1, 777777, "HTTP/1.1", A, 1), P(0, 4242, "GET", A, 2),
		     P(1, 777785, " 200", A, 3) },
	  .image = { "GET", "HTTP/1.1 200" },
	  .trace = "D1@0+8 D0@0+3 D1@8+4",
	  .ctr = { C(reasm_midstream, 2), CEND } },

	{ "one_direction_only",
	  .steps = { P(1, ISN1, "", S | A, 1), P(1, 5001, "hello", A, 2),
		     P(1, 5006, "world", A, 3), FEND(REASM_END_SHUTDOWN, 4) },
	  .image = { "", "helloworld" },
	  .trace = "D1@0+10 E0:shutdown E1:shutdown",
	  .ctr = { CEND } },

	/* Data on the SYN (TFO), retransmitted SYN, then a SYN with another
	 * ISN on the live direction (ignored). */
	{ "syn_then_data",
	  .steps = { P(0, ISN0, "ab", S, 1), P(0, ISN0, "", S, 2),
		     P(0, 1003, "cd", A, 3), P(0, 9000, "", S, 4),
		     P(0, 9001, "zz", A, 5) },
	  .image = { "abcd", "" },
	  .trace = "D0@0+4",
	  .ctr = { C(reasm_syn_changed, 1), C(reasm_far_segment, 0),
		   C(reasm_ooo_queued, 1), CEND } },

	{ "fin_ends_direction",
	  .steps = { SYN0(1), SYNACK1(2), P(0, 1001, "abcd", A, 3),
		     P(0, 1005, "efgh", F | A, 4), P(0, 1009, "zz", A, 5),
		     P(0, 1005, "efgh", F | A, 6), P(1, 5001, "ok", A, 7),
		     P(1, 5003, "", F | A, 8) },
	  .image = { "abcdefgh", "ok" },
	  .trace = "D0@0+8 E0:fin D1@0+2 E1:fin",
	  .ctr = { C(reasm_fin, 2), C(reasm_after_fin, 2), CEND } },

	/* FIN before the data in front of it: the end waits for the data;
	 * bytes past the FIN are cut. */
	{ "fin_out_of_order",
	  .steps = { SYN0(1), P(0, 1005, "", F | A, 2), P(0, 1003, "cdXY", A, 3),
		     P(0, 1001, "ab", A, 4) },
	  .image = { "abcd", "" },
	  .trace = "D0@0+4 E0:fin",
	  .ctr = { C(reasm_fin, 1), C(reasm_after_fin, 1),
		   C(reasm_ooo_queued, 1), CEND } },

	/* A hole before a FIN that carries no data is a hole like any
	 * other: it becomes a gap after the gap timeout, then the FIN ends
	 * the direction. */
	{ "fin_after_hole_times_out",
	  .steps = { SYN0(1), P(0, 1001, "ab", A, 2), P(0, 1005, "", F | A, 10),
		     TICK(109), TICK(110) },
	  .image = { "ab__", "" },
	  .trace = "D0@0+2 G0@2+2 E0:fin",
	  .ctr = { C(reasm_fin, 1), C(reasm_gaps, 1), C(reasm_gap_bytes, 2),
		   C(reasm_gap_timeout, 1), CEND } },

	{ "fin_after_hole_flow_end",
	  .steps = { SYN0(1), P(0, 1001, "ab", A, 2), P(0, 1005, "", F | A, 10),
		     FEND(REASM_END_SHUTDOWN, 20) },
	  .image = { "ab__", "" },
	  .trace = "D0@0+2 G0@2+2 E0:shutdown E1:shutdown",
	  .ctr = { C(reasm_gaps, 1), C(reasm_gap_bytes, 2),
		   C(reasm_gap_end, 1), CEND } },

	{ "rst_ends_both",
	  .steps = { SYN0(1), SYNACK1(2), P(0, 1001, "abcd", A, 3),
		     P(1, 5001, "", R, 4), P(0, 1005, "efgh", A, 5) },
	  .image = { "abcd", "" },
	  .trace = "D0@0+4 E0:rst E1:rst",
	  .ctr = { C(reasm_rst, 1), C(reasm_after_fin, 1), CEND } },

	/* An RST flushes buffered data (with the hole as a gap) first. */
	{ "rst_flushes_buffered",
	  .steps = { SYN0(1), P(0, 1001, "abcd", A, 2), P(0, 1009, "ijkl", A, 3),
		     P(0, 1013, "", R, 4) },
	  .image = { "abcd____ijkl", "" },
	  .trace = "D0@0+4 G0@4+4 D0@8+4 E0:rst E1:rst",
	  .ctr = { C(reasm_rst, 1), C(reasm_gaps, 1), C(reasm_gap_bytes, 4),
		   C(reasm_gap_end, 1), C(reasm_ooo_queued, 1), CEND } },

	/* flow_ooo_max = two chunks of memory (the cap counts memory, not
	 * payload): the third run, not touching the others, needs a third. */
	{ "flow_cap",
	  .cfg = { .flow_ooo_max = 256, .worker_memcap = 65536,
		   .chunk_size = 128, .gap_timeout_ns = 100 },
	  .steps = { SYN0(1), P(0, 1005, "efgh", A, 2), P(0, 1011, "klmn", A, 3),
		     P(0, 1017, "qrst", A, 4), FEND(REASM_END_SHUTDOWN, 5) },
	  .image = { "____efgh__klmn__qrst", "" },
	  .trace = "G0@0+4 D0@4+4 G0@8+2 D0@10+4 G0@14+2 D0@16+4 "
		   "E0:shutdown E1:shutdown",
	  .ctr = { C(reasm_gap_flow_cap, 1), C(reasm_gaps, 3),
		   C(reasm_gap_bytes, 8), C(reasm_gap_end, 1),
		   C(reasm_ooo_queued, 3), CEND } },

	/* A single segment larger than the per-flow cap: the hole before it
	 * goes and the segment is delivered in order. */
	{ "flow_cap_big_segment",
	  .cfg = { .flow_ooo_max = 4, .worker_memcap = 65536,
		   .chunk_size = 128, .gap_timeout_ns = 100 },
	  .steps = { SYN0(1), P(0, 1003, "cdefgh", A, 2) },
	  .image = { "__cdefgh", "" },
	  .trace = "G0@0+2 D0@2+6",
	  .ctr = { C(reasm_gap_flow_cap, 1), C(reasm_gaps, 1),
		   C(reasm_gap_bytes, 2), C(reasm_in_order, 1), CEND } },

	/* Truncated in order: the cut tail is a gap at once. */
	{ "truncated_segment",
	  .steps = { SYN0(1), PT(0, 1001, "abcd", 10, A, 2),
		     P(0, 1011, "klmn", A, 3), PT(0, 1015, "", 6, A, 4),
		     P(0, 1021, "uv", A, 5), P(0, 1001, "abcdefghij", A, 6) },
	  .image = { "abcd______klmn______uv", "" },
	  .trace = "D0@0+4 G0@4+6 D0@10+4 G0@14+6 D0@20+2",
	  .ctr = { C(reasm_gap_truncated, 2), C(reasm_gaps, 2),
		   C(reasm_gap_bytes, 12), C(reasm_dup_segments, 1),
		   C(reasm_dup_bytes, 10), CEND } },

	/* Truncated with later data already buffered inside the cut part. */
	{ "truncated_over_buffered",
	  .steps = { SYN0(1), P(0, 1009, "ijkl", A, 2), P(0, 1015, "op", A, 3),
		     PT(0, 1001, "abcd", 16, A, 4) },
	  .image = { "abcd____ijkl__op", "" },
	  .trace = "D0@0+4 G0@4+4 D0@8+4 G0@12+2 D0@14+2",
	  .ctr = { C(reasm_gap_truncated, 1), C(reasm_gaps, 2),
		   C(reasm_gap_bytes, 6), C(reasm_ooo_queued, 2), CEND } },

	/* Mid-stream at 5000: bytes before it are dropped, the rest kept. */
	{ "before_start",
	  .steps = { P(0, 5000, "efgh", A, 1), P(0, 4990, "abc", A, 2),
		     P(0, 4996, "abcdefgh", A, 3), P(0, 4998, "cdefghij", A, 4) },
	  .image = { "efghij", "" },
	  .trace = "D0@0+6",
	  .ctr = { C(reasm_midstream, 1), C(reasm_before_start, 3),
		   C(reasm_dup_segments, 1), C(reasm_dup_bytes, 4), CEND } },

	/* More than REASM_MAX_DISTANCE either side of next seq: dropped;
	 * exactly at it: kept. */
	{ "far_segment",
	  .steps = { SYN0(1), P(0, 1001u + (1u << 30) + 1, "x", A, 2),
		     P(0, 1001u - (1u << 30) - 1, "y", A, 3),
		     P(0, 1001u + (1u << 30), "z", A, 4),
		     P(0, 1001, "ab", A, 5), FEND(REASM_END_SHUTDOWN, 6) },
	  .trace = "D0@0+2 G0@2+1073741822 D0@1073741824+1 E0:shutdown "
		   "E1:shutdown",
	  .ctr = { C(reasm_far_segment, 2), C(reasm_ooo_queued, 1),
		   C(reasm_gaps, 1), C(reasm_gap_bytes, 1073741822),
		   C(reasm_gap_end, 1), CEND } },

	/* Pure ACKs carry nothing and do not start a direction. */
	{ "zero_length",
	  .steps = { P(1, 9999, "", A, 1), SYN0(2), P(0, 1001, "", A, 3),
		     P(1, 5000, "xy", A, 4), P(1, 5002, "", A, 5),
		     P(0, 1001, "ab", A, 6) },
	  .image = { "ab", "xy" },
	  .trace = "D1@0+2 D0@0+2",
	  .ctr = { C(reasm_midstream, 1), C(reasm_segments, 2), CEND } },

	/* No pool at all: every out-of-order segment forces its hole. */
	{ "no_pool",
	  .cfg = { .flow_ooo_max = 1000, .worker_memcap = 0,
		   .chunk_size = 128, .gap_timeout_ns = 100 },
	  .steps = { SYN0(1), P(0, 1005, "efgh", A, 2), P(0, 1001, "abcd", A, 3),
		     P(0, 1011, "kl", A, 4) },
	  .image = { "____efgh__kl", "" },
	  .trace = "G0@0+4 D0@4+4 G0@8+2 D0@10+2",
	  .ctr = { C(reasm_gap_worker_cap, 2), C(reasm_gaps, 2),
		   C(reasm_gap_bytes, 6), C(reasm_dup_segments, 1),
		   C(reasm_dup_bytes, 4), CEND } },

	/* The gap timer is bounded by the budget and visits oldest first;
	 * nothing is due before its time. */
	{ "tick_not_due",
	  .steps = { SYN0(1), P(0, 1005, "ef", A, 1000), TICK(1099), TICK(5),
		     TICK(1099) },
	  .image = { "", "" },
	  .trace = "",
	  .ctr = { C(reasm_ooo_queued, 1), CEND } },
};

/* ---- per-worker memory cap ------------------------------------------ */

/* Four chunks shared by three flows: buffering for the third gives up the
 * oldest hole (of the first flow), whose data is then delivered. Memory in
 * use never exceeds the cap. */
static void test_worker_memcap(void **state)
{
	(void)state;
	struct reasm_cfg cfg = test_cfg;
	cfg.worker_memcap = 4 * 128;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	static struct flow f[3];
	static struct rec r[3];
	for (int i = 0; i < 3; i++)
		flow_setup(&f[i], &r[i]);

	const struct step a[] = { SYN0(1), P(0, 1005, "efgh", A, 2),
				  P(0, 1011, "klmn", A, 3) };
	const struct step b[] = { SYN0(4), P(0, 1003, "cd", A, 5) };
	const struct step cc[] = { SYN0(6), PN(0, 1101, 150, A, 7) };
	run_steps(ctx, &f[0], a, ST_ARRAY_SIZE(a), cfg.worker_memcap);
	assert_int_equal(reasm_ctx_mem_used(ctx), 2 * 128);
	run_steps(ctx, &f[1], b, ST_ARRAY_SIZE(b), cfg.worker_memcap);
	assert_int_equal(reasm_ctx_mem_used(ctx), 3 * 128);
	run_steps(ctx, &f[2], cc, ST_ARRAY_SIZE(cc), cfg.worker_memcap);
	/* 150 bytes need 2 chunks: flow 0 gave up its holes. */
	assert_int_equal(c.v[ST_CTR_reasm_gap_worker_cap], 1);
	assert_int_equal(reasm_ctx_mem_used(ctx), 3 * 128);
	char t[512];
	rec_trace(&r[0], t, sizeof(t));
	assert_string_equal(t, "G0@0+4 D0@4+4 G0@8+2 D0@10+4");
	rec_trace(&r[1], t, sizeof(t));
	assert_string_equal(t, "");
	rec_trace(&r[2], t, sizeof(t));
	assert_string_equal(t, "");
	/* Flow 0 goes on in order after its forced gaps. */
	const struct step a2[] = { P(0, 1015, "op", A, 8) };
	run_steps(ctx, &f[0], a2, 1, cfg.worker_memcap);
	rec_trace(&r[0], t, sizeof(t));
	assert_string_equal(t, "G0@0+4 D0@4+4 G0@8+2 D0@10+6");

	/* With nothing else to give up, a flow gives up its own hole. */
	const struct step b2[] = { PN(0, 1201, 300, A, 9) };
	run_steps(ctx, &f[1], b2, 1, cfg.worker_memcap);
	assert_true(c.v[ST_CTR_reasm_gap_worker_cap] >= 2);
	rec_trace(&r[2], t, sizeof(t));
	for (int i = 0; i < 3; i++) {
		reasm_dir_end(ctx, &f[i], 0, REASM_END_SHUTDOWN, 10);
		reasm_dir_end(ctx, &f[i], 1, REASM_END_SHUTDOWN, 10);
		assert_int_equal(r[i].gap_bytes[0] + r[i].data_bytes[0],
				 r[i].next[0]);
	}
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_ctx_free(ctx);
}

/* A segment whose uncovered parts lie between buffered runs needs one
 * chunk per part at least: the pool must hold what the copy takes, even
 * when it is down to its last chunks. */
static void test_worker_memcap_split_fill(void **state)
{
	(void)state;
	struct reasm_cfg cfg = test_cfg;
	cfg.worker_memcap = 4 * 128;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	r.check_pattern = true;
	const struct step st[] = {
		SYN0(1),
		PN(0, 1011, 1, A, 2),  /* [10,11) */
		PN(0, 1021, 1, A, 3),  /* [20,21) */
		PN(0, 1006, 25, A, 4), /* [5,30): three holes to fill */
		PN(0, 1001, 5, A, 5),
	};
	run_steps(ctx, &f, st, ST_ARRAY_SIZE(st), cfg.worker_memcap);
	char t[256];
	rec_trace(&r, t, sizeof(t));
	/* Either buffered whole (then delivered) or a forced gap: but
	 * contiguous and within the cap (run_steps checked). */
	assert_int_equal(r.next[0], 30);
	assert_int_equal(r.data_bytes[0] + r.gap_bytes[0], 30);
	reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 6);
	reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 6);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_ctx_free(ctx);
}

/* Many flows, tiny pool, random out-of-order traffic: the cap holds after
 * every segment and every stream stays contiguous. */
static void test_worker_memcap_many_flows(void **state)
{
	(void)state;
	struct reasm_cfg cfg = test_cfg;
	cfg.worker_memcap = 16 * 128;
	cfg.flow_ooo_max = 600;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	enum { NF = 8 };
	static struct flow f[NF];
	static struct rec r[NF];
	for (int i = 0; i < NF; i++) {
		flow_setup(&f[i], &r[i]);
		r[i].check_pattern = true;
	}
	uint64_t x = 12345;
	uint8_t buf[300];
	uint64_t peak = 0;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		unsigned fi = (unsigned)(x % NF);
		unsigned dir = (unsigned)((x >> 8) & 1);
		uint32_t off = (uint32_t)((x >> 16) % 4000);
		uint32_t len = (uint32_t)((x >> 32) % 300);
		uint32_t seq = 1000 + off;
		for (uint32_t k = 0; k < len; k++)
			buf[k] = pat(seq + k);
		/* Start every direction with a SYN at 999. */
		if (!(f[fi].dir[dir].flags & REASM_DIR_STARTED))
			reasm_tcp_push(ctx, &f[fi], dir, 999, NULL, 0, 0, S,
				       (uint64_t)i);
		reasm_tcp_push(ctx, &f[fi], dir, seq, buf, len, len, A,
			       (uint64_t)i);
		uint64_t used = reasm_ctx_mem_used(ctx);
		assert_true(used <= cfg.worker_memcap);
		if (used > peak)
			peak = used;
		if (i % 97 == 0)
			reasm_tcp_tick(ctx, (uint64_t)i, 10);
	}
	assert_true(peak > cfg.worker_memcap / 2);
	assert_true(c.v[ST_CTR_reasm_gap_worker_cap] > 0);
	for (int i = 0; i < NF; i++) {
		reasm_dir_end(ctx, &f[i], 0, REASM_END_SHUTDOWN, 1u << 20);
		reasm_dir_end(ctx, &f[i], 1, REASM_END_SHUTDOWN, 1u << 20);
		assert_int_equal(r[i].ends, 2);
	}
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_ctx_free(ctx);
}

/* A direction whose only hole is before its FIN holds no memory; under
 * memory pressure it is given up like the others (and ends), and the
 * search for room goes on without looping. */
static void test_worker_memcap_fin_hole_victim(void **state)
{
	(void)state;
	struct reasm_cfg cfg = test_cfg;
	cfg.worker_memcap = 2 * 128;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	static struct flow f[3];
	static struct rec r[3];
	for (int i = 0; i < 3; i++)
		flow_setup(&f[i], &r[i]);
	const struct step a[] = { SYN0(1), P(0, 1001, "ab", A, 1),
				  P(0, 1005, "", F | A, 2) };
	const struct step b[] = { SYN0(3), P(0, 1005, "ef", A, 3) };
	const struct step cc[] = { SYN0(4), PN(0, 1101, 150, A, 4) };
	run_steps(ctx, &f[0], a, ST_ARRAY_SIZE(a), cfg.worker_memcap);
	run_steps(ctx, &f[1], b, ST_ARRAY_SIZE(b), cfg.worker_memcap);
	run_steps(ctx, &f[2], cc, ST_ARRAY_SIZE(cc), cfg.worker_memcap);
	char t[256];
	rec_trace(&r[0], t, sizeof(t));
	assert_string_equal(t, "D0@0+2 G0@2+2 E0:fin");
	rec_trace(&r[1], t, sizeof(t));
	assert_string_equal(t, "G0@0+4 D0@4+2");
	rec_trace(&r[2], t, sizeof(t));
	assert_string_equal(t, "");
	assert_int_equal(c.v[ST_CTR_reasm_gap_worker_cap], 2);
	assert_int_equal(reasm_ctx_mem_used(ctx), 2 * 128);
	/* The timer finds nothing else to force but flow 2's hole. */
	assert_int_equal(reasm_tcp_tick(ctx, 1000, 100), 1);
	rec_trace(&r[2], t, sizeof(t));
	assert_string_equal(t, "G0@0+100 D0@100+150");
	assert_int_equal(reasm_tcp_tick(ctx, 2000, 100), 0);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	for (int i = 0; i < 3; i++) {
		reasm_dir_end(ctx, &f[i], 0, REASM_END_SHUTDOWN, 3000);
		reasm_dir_end(ctx, &f[i], 1, REASM_END_SHUTDOWN, 3000);
	}
	reasm_ctx_free(ctx);
}

/* reasm_tcp_tick visits at most |budget| directions, oldest first. */
static void test_tick_budget(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&test_cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	static struct flow f[4];
	static struct rec r[4];
	for (int i = 0; i < 4; i++) {
		flow_setup(&f[i], &r[i]);
		const struct step st[] = { SYN0(1),
					   P(0, 1003, "cd", A, 10 + (uint64_t)i) };
		run_steps(ctx, &f[i], st, 2, test_cfg.worker_memcap);
	}
	assert_int_equal(reasm_tcp_tick(ctx, 111, 10), 2); /* 10 and 11 due */
	assert_int_equal(r[0].gaps[0], 1);
	assert_int_equal(r[1].gaps[0], 1);
	assert_int_equal(r[2].gaps[0], 0);
	assert_int_equal(reasm_tcp_tick(ctx, 500, 1), 1);
	assert_int_equal(r[2].gaps[0], 1);
	assert_int_equal(r[3].gaps[0], 0);
	assert_int_equal(reasm_tcp_tick(ctx, 500, 0), 0);
	assert_int_equal(reasm_tcp_tick(ctx, 500, 5), 1);
	assert_int_equal(r[3].gaps[0], 1);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	assert_int_equal(c.v[ST_CTR_reasm_gap_timeout], 4);
	reasm_ctx_free(ctx);
}

/* Configuration limits of reasm_ctx_new(). */
static void test_ctx_new_limits(void **state)
{
	(void)state;
	struct st_counters c;
	struct reasm_cfg cfg = test_cfg;
	cfg.chunk_size = (uint32_t)sizeof(struct reasm_seg) + 63;
	assert_null(reasm_ctx_new(&cfg, &rec_ops, NULL, &c));
	cfg.chunk_size = (uint32_t)sizeof(struct reasm_seg) + 64;
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_ctx_free(ctx);
	reasm_ctx_free(NULL);
	assert_string_equal(reasm_end_name(REASM_END_EVICTED), "evicted");
}

/* ---- property test ----------------------------------------------------- */

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

struct seg {
	uint32_t off, len;
	uint64_t key; /* send order */
};

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* A random stream chopped into random segments, shuffled within a window,
 * some duplicated, with random overlapping retransmissions carrying the
 * same bytes: the delivered stream is the original, exactly, with no gaps,
 * whatever the ISN (wrap included). */
static size_t property_one(uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	uint32_t total = 1 + (uint32_t)(rnd(&x) % 20000);
	uint8_t *stream = malloc(total);
	assert_non_null(stream);
	for (uint32_t i = 0; i < total; i++)
		stream[i] = (uint8_t)rnd(&x);

	/* Chop. */
	size_t cap = total + 16, n = 0;
	struct seg *sg = malloc(cap * 3 * sizeof(*sg));
	assert_non_null(sg);
	uint32_t maxseg = 1 + (uint32_t)(rnd(&x) % 1500);
	for (uint32_t off = 0; off < total;) {
		uint32_t len = 1 + (uint32_t)(rnd(&x) % maxseg);
		if (len > total - off)
			len = total - off;
		sg[n++] = (struct seg){ off, len, 0 };
		off += len;
	}
	/* Shuffle within a window: the next segment sent is one of the
	 * first |win| not yet sent. */
	size_t base = n;
	size_t win = 1 + rnd(&x) % 16;
	for (size_t i = 0; i < base; i++) {
		size_t j = i + rnd(&x) % ST_MIN(base - i, win);
		struct seg t = sg[i];
		sg[i] = sg[j];
		sg[j] = t;
	}
	/* Duplicates and same-byte overlaps (retransmissions, possibly
	 * re-cut), each sent within a few windows of the original. Sorting
	 * on a key places them: originals at even keys, copies at odd. */
	for (size_t i = 0; i < base; i++)
		sg[i].key = 2 * (uint64_t)i + 2 * 64;
	unsigned dups = (unsigned)(rnd(&x) % (base / 4 + 2));
	for (unsigned i = 0; i < dups; i++) {
		size_t j = rnd(&x) % base;
		struct seg s = sg[j];
		if (rnd(&x) & 1) {
			uint32_t back = (uint32_t)(rnd(&x) % 200);
			uint32_t fwd = (uint32_t)(rnd(&x) % 200);
			uint32_t a = s.off > back ? s.off - back : 0;
			uint32_t e = s.off + s.len + fwd;
			if (e > total)
				e = total;
			s.off = a;
			s.len = e - a;
		}
		int64_t shift = (int64_t)(rnd(&x) % (8 * win + 1)) - 4 * (int64_t)win;
		s.key = (uint64_t)((int64_t)s.key + 2 * shift) | 1;
		sg[n++] = s;
	}
	qsort(sg, n, sizeof(*sg), seg_cmp);

	struct reasm_cfg cfg = {
		.flow_ooo_max = 1u << 20,
		.worker_memcap = 1u << 20,
		.chunk_size = 64 + (uint32_t)sizeof(struct reasm_seg) +
			      (uint32_t)(rnd(&x) % 2000),
		.gap_timeout_ns = 1000000,
	};
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	assert_non_null(ctx);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	unsigned dir = (unsigned)(seed & 1);
	r.expect[dir] = stream;
	r.expect_len[dir] = total;

	/* ISN: random, or just below the wrap so the stream crosses it. */
	uint32_t isn = (seed % 3 == 0) ? (uint32_t)(0u - 1 - rnd(&x) % 5000)
				       : (uint32_t)rnd(&x);
	bool syn = (seed % 5) != 1;
	if (syn) {
		reasm_tcp_push(ctx, &f, dir, isn, NULL, 0, 0, S, 0);
	} else {
		/* Mid-stream: the first segment sent must start at 0 for
		 * the whole stream to be seen. */
		for (size_t i = 0; i < n; i++) {
			if (sg[i].off == 0) {
				struct seg t = sg[0];
				sg[0] = sg[i];
				sg[i] = t;
				break;
			}
		}
	}
	uint32_t s0 = syn ? isn + 1 : isn;
	for (size_t i = 0; i < n; i++) {
		reasm_tcp_push(ctx, &f, dir, s0 + sg[i].off,
			       stream + sg[i].off, sg[i].len, sg[i].len, A,
			       (uint64_t)i);
		assert_true(r.next[dir] <= total);
	}
	reasm_tcp_push(ctx, &f, dir, s0 + total, NULL, 0, 0, F | A, n);

	if (r.data_bytes[dir] != total || r.gaps[dir] != 0 ||
	    r.ended[dir] != REASM_END_FIN) {
		counters_write_text(stderr, &c);
		fprintf(stderr, "chunk %u maxseg %u n %zu\n", cfg.chunk_size, maxseg, n);
		fail_msg("seed %llu: %llu/%u bytes, %u gaps, end %d",
			 (unsigned long long)seed,
			 (unsigned long long)r.data_bytes[dir], total,
			 r.gaps[dir], r.ended[dir]);
	}
	assert_int_equal(c.v[ST_CTR_reasm_gaps], 0);
	assert_int_equal(c.v[ST_CTR_reasm_overlap_diff], 0);
	assert_int_equal(r.overlaps, 0);
	assert_int_equal(c.v[ST_CTR_reasm_bytes], total);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_dir_end(ctx, &f, dir ^ 1, REASM_END_SHUTDOWN, n);
	reasm_ctx_free(ctx);
	free(sg);
	free(stream);
	return n;
}

static void test_property_random_streams(void **state)
{
	(void)state;
	size_t segs = 0;
	for (uint64_t seed = 1; seed <= 3000; seed++)
		segs += property_one(seed);
	print_message("  3000 streams, %zu segments\n", segs);
}

/* Different overlapping bytes in random order: whatever is delivered is
 * contiguous and each byte is one of the versions sent for its offset,
 * namely the first one buffered or delivered. */
static void test_property_first_seen_wins(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 300; seed++) {
		uint64_t x = seed + 77;
		enum { LEN = 3000 };
		static uint8_t first[LEN];
		static bool seen[LEN];
		memset(seen, 0, sizeof(seen));
		struct reasm_cfg cfg = test_cfg;
		cfg.worker_memcap = 1u << 20;
		struct st_counters c;
		memset(&c, 0, sizeof(c));
		struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
		static struct flow f;
		static struct rec r;
		flow_setup(&f, &r);
		reasm_tcp_push(ctx, &f, 0, 99, NULL, 0, 0, S, 0);
		uint8_t buf[400];
		for (int i = 0; i < 200; i++) {
			uint32_t off = (uint32_t)(rnd(&x) % LEN);
			uint32_t len = 1 + (uint32_t)(rnd(&x) % 300);
			if (off + len > LEN)
				len = LEN - off;
			/* Letters only, so '_' in the image means a gap. */
			uint8_t v = (uint8_t)('A' + rnd(&x) % 26);
			memset(buf, v, len);
			for (uint32_t k = 0; k < len; k++) {
				if (!seen[off + k]) {
					seen[off + k] = true;
					first[off + k] = v;
				}
			}
			reasm_tcp_push(ctx, &f, 0, 100 + off, buf, len, len, A,
				       (uint64_t)i);
		}
		reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 1000);
		reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 1000);
		/* Every byte delivered is the first version sent for its
		 * offset; every offset never sent is a gap. */
		for (uint64_t o = 0; o < r.next[0]; o++) {
			uint8_t want = seen[o] ? first[o] : '_';
			if (r.img[0][o] != want)
				fail_msg("seed %llu off %llu: '%c', want '%c'",
					 (unsigned long long)seed,
					 (unsigned long long)o, r.img[0][o],
					 want);
		}
		assert_int_equal(c.v[ST_CTR_reasm_overlap_diff], r.overlaps);
		reasm_ctx_free(ctx);
	}
}


/* A SYN that arrives after the first data byte it precedes (mirror
 * reordering) marks the direction as started from its SYN. */
static void test_syn_after_first_data(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&test_cfg, &rec_ops, NULL, &c);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	reasm_tcp_push(ctx, &f, 0, 1001, (const uint8_t *)"abcd", 4, 4,
		       DECODE_TCP_ACK, 1);
	assert_false(f.dir[0].flags & REASM_DIR_SYN);
	reasm_tcp_push(ctx, &f, 0, 1000, NULL, 0, 0, DECODE_TCP_SYN, 2);
	assert_true(f.dir[0].flags & REASM_DIR_SYN);
	assert_int_equal(c.v[ST_CTR_reasm_syn_changed], 0);
	/* A SYN with another ISN is not taken for the start. */
	reasm_tcp_push(ctx, &f, 1, 7001, (const uint8_t *)"wxyz", 4, 4,
		       DECODE_TCP_ACK, 3);
	reasm_tcp_push(ctx, &f, 1, 6000, NULL, 0, 0,
		       DECODE_TCP_SYN | DECODE_TCP_ACK, 4);
	assert_false(f.dir[1].flags & REASM_DIR_SYN);
	assert_int_equal(c.v[ST_CTR_reasm_syn_changed], 1);
	reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 5);
	reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 5);
	reasm_ctx_free(ctx);
}

/* A stray segment far ahead of a stream that keeps arriving in order does
 * not time out into a gap while the stream makes progress; only once the
 * stream stalls for the gap timeout does the hole become a gap. */
static void test_stray_far_segment(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&test_cfg, &rec_ops, NULL, &c);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	reasm_tcp_push(ctx, &f, 0, 999, NULL, 0, 0, DECODE_TCP_SYN, 0);
	reasm_tcp_push(ctx, &f, 0, 1000 + 500000, (const uint8_t *)"XXXX", 4,
		       4, DECODE_TCP_ACK, 1);
	uint8_t b[50];
	memset(b, 'a', sizeof(b));
	/* 200 in-order segments, 60 ns apart: far beyond the 100 ns gap
	 * timeout in total, but never 100 ns without progress. */
	for (uint32_t i = 0; i < 200; i++) {
		uint64_t ts = 2 + 60ull * i;
		reasm_tcp_push(ctx, &f, 0, 1000 + 50 * i, b, 50, 50,
			       DECODE_TCP_ACK, ts);
		reasm_tcp_tick(ctx, ts, 16);
	}
	assert_int_equal(c.v[ST_CTR_reasm_gaps], 0);
	assert_int_equal(r.data_bytes[0], 200 * 50);
	/* Stalled now: the hole goes after the timeout. */
	reasm_tcp_tick(ctx, 2 + 60ull * 200 + 1000, 16);
	assert_int_equal(c.v[ST_CTR_reasm_gaps], 1);
	assert_int_equal(c.v[ST_CTR_reasm_gap_timeout], 1);
	reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 100000);
	reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 100000);
	reasm_ctx_free(ctx);
}

/* Many one-byte out-of-order segments that touch share chunks: the per-flow
 * cap counts memory, and 1000 adjacent bytes take ~10 chunks, not 1000. */
static void test_small_segments_share_chunks(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&test_cfg, &rec_ops, NULL, &c);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	reasm_tcp_push(ctx, &f, 0, 999, NULL, 0, 0, DECODE_TCP_SYN, 0);
	for (uint32_t i = 0; i < 1000; i++) {
		uint8_t ch = (uint8_t)('a' + i % 26);
		reasm_tcp_push(ctx, &f, 0, 1010 + i, &ch, 1, 1, DECODE_TCP_ACK,
			       1);
	}
	uint32_t per = test_cfg.chunk_size - (uint32_t)sizeof(struct reasm_seg);
	assert_true(reasm_ctx_mem_used(ctx) <=
		    (uint64_t)(1000 / per + 1) * test_cfg.chunk_size);
	assert_int_equal(c.v[ST_CTR_reasm_gaps], 0);
	uint8_t hole[10];
	memset(hole, 'z', sizeof(hole));
	reasm_tcp_push(ctx, &f, 0, 1000, hole, 10, 10, DECODE_TCP_ACK, 2);
	assert_int_equal(r.data_bytes[0], 1010);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 3);
	reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 3);
	reasm_ctx_free(ctx);
}


/* Mid-stream start held for start_hold: a reordered earlier segment and
 * the late SYN move the start back to the real first byte, and nothing is
 * lost or delivered twice. */
static void test_start_hold_reorder(void **state)
{
	(void)state;
	struct reasm_cfg cfg = test_cfg;
	cfg.start_hold_ns = 1000;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	reasm_tcp_push(ctx, &f, 0, 1003, (const uint8_t *)"cdef", 4, 4,
		       DECODE_TCP_ACK, 1);
	reasm_tcp_push(ctx, &f, 0, 1001, (const uint8_t *)"ab", 2, 2,
		       DECODE_TCP_ACK, 2);
	assert_int_equal(r.data_bytes[0], 0); /* held */
	reasm_tcp_push(ctx, &f, 0, 1000, NULL, 0, 0, DECODE_TCP_SYN, 3);
	assert_true(f.dir[0].flags & REASM_DIR_SYN);
	assert_int_equal(r.data_bytes[0], 6);
	assert_memory_equal(r.img[0], "abcdef", 6);
	assert_int_equal(c.v[ST_CTR_reasm_before_start], 0);
	assert_int_equal(c.v[ST_CTR_reasm_gaps], 0);

	/* The other direction: no SYN ever; the hold ends by time. */
	reasm_tcp_push(ctx, &f, 1, 5003, (const uint8_t *)"CDEF", 4, 4,
		       DECODE_TCP_ACK, 10);
	reasm_tcp_push(ctx, &f, 1, 5001, (const uint8_t *)"AB", 2, 2,
		       DECODE_TCP_ACK, 11);
	assert_int_equal(r.data_bytes[1], 0);
	reasm_tcp_push(ctx, &f, 1, 5007, (const uint8_t *)"GH", 2, 2,
		       DECODE_TCP_ACK, 2000);
	assert_int_equal(r.data_bytes[1], 8);
	assert_memory_equal(r.img[1], "ABCDEFGH", 8);
	assert_false(f.dir[1].flags & REASM_DIR_SYN);
	reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 3000);
	reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 3000);
	assert_int_equal(reasm_ctx_mem_used(ctx), 0);
	reasm_ctx_free(ctx);
}

/* A held start that the flow's end flushes: delivered, not lost. */
static void test_start_hold_flushed_at_end(void **state)
{
	(void)state;
	struct reasm_cfg cfg = test_cfg;
	cfg.start_hold_ns = 1000000;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct reasm_ctx *ctx = reasm_ctx_new(&cfg, &rec_ops, NULL, &c);
	static struct flow f;
	static struct rec r;
	flow_setup(&f, &r);
	reasm_tcp_push(ctx, &f, 0, 7000, (const uint8_t *)"xyz", 3, 3,
		       DECODE_TCP_ACK, 1);
	assert_int_equal(r.data_bytes[0], 0);
	reasm_dir_end(ctx, &f, 0, REASM_END_SHUTDOWN, 2);
	reasm_dir_end(ctx, &f, 1, REASM_END_SHUTDOWN, 2);
	assert_int_equal(r.data_bytes[0], 3);
	assert_memory_equal(r.img[0], "xyz", 3);
	reasm_ctx_free(ctx);
}

int main(void)
{
	size_t nc = ST_ARRAY_SIZE(cases);
	struct CMUnitTest *t = calloc(nc + 16, sizeof(*t));
	for (size_t i = 0; i < nc; i++) {
		t[i].name = cases[i].name;
		t[i].test_func = run_case;
		t[i].initial_state = (void *)&cases[i];
	}
	const struct CMUnitTest more[] = {
		cmocka_unit_test(test_worker_memcap),
		cmocka_unit_test(test_worker_memcap_split_fill),
		cmocka_unit_test(test_worker_memcap_many_flows),
		cmocka_unit_test(test_worker_memcap_fin_hole_victim),
		cmocka_unit_test(test_tick_budget),
		cmocka_unit_test(test_ctx_new_limits),
		cmocka_unit_test(test_property_random_streams),
		cmocka_unit_test(test_property_first_seen_wins),
		cmocka_unit_test(test_syn_after_first_data),
		cmocka_unit_test(test_stray_far_segment),
		cmocka_unit_test(test_small_segments_share_chunks),
		cmocka_unit_test(test_start_hold_reorder),
		cmocka_unit_test(test_start_hold_flushed_at_end),
	};
	memcpy(t + nc, more, sizeof(more));
	int rc = _cmocka_run_group_tests("reasm_tcp", t, nc + ST_ARRAY_SIZE(more),
					 NULL, NULL);
	free(t);
	return rc;
}
