/* libFuzzer target for the capture path: decode -> flow table -> TCP
 * reassembly -> consumer, through worker_raw(), with small caps so that
 * eviction, timeouts, the per-flow and per-worker memory caps all happen.
 *
 * Input format (all integers big-endian):
 *
 *   input   := config record*
 *   config  := u8      bits 0-2: max_flows - 1 (1..8)
 *                      bits 3-5: reassembly pool, 3 * n chunks of 128 bytes
 *                      bit 6:    flow_ooo_max 4096 instead of 100 bytes
 *                      bit 7:    tunnels (VXLAN 4789, Geneve 6081) off
 *   record  := u8 sel, u8 dt, u16 len, len bytes (cut at the input's end)
 *     sel bits 0-2: link type: 0-2 Ethernet, 3 raw IP, 4 SLL, 5 SLL2,
 *                   6 NULL, 7 Ethernet
 *     sel bits 3-7: wire length = captured length + 7 * (sel >> 3)
 *                   (snaplen / mirror truncation)
 *     dt:           packet time advances by dt * 2 ms before the packet
 *                   (dt 255: + 10 s instead)
 *
 * Timers: gap timeout 20 ms, idle timeout 400 ms, closed linger 50 ms,
 * timer tick 5 ms, all on packet time.
 *
 * The consumer checks the reassembly contract and aborts on a violation:
 * on_data / on_gap start where the previous call of that direction ended,
 * never have length 0, nothing comes after on_end, on_end once per
 * direction, on_flow_free only after both directions ended and once per
 * flow; the table never holds more than max_flows flows and the pool never
 * more than its cap. worker_finish() at the end must release every flow.
 * Each packet is copied into a buffer of exactly its captured length so
 * AddressSanitizer sees any read past it.
 *
 * Seeds: tests/fuzz/seeds/capture, written by make_seeds (make_seeds.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/worker.h"

#define FZ_CHUNK 128

struct fz_flow {
	uint64_t next[2];
	uint8_t ended[2];
	uint32_t sum; /* touches every delivered byte */
};

struct fz {
	long live;     /* consumer states allocated and not yet freed */
	uint64_t sum;
};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_capture: contract violated: %s\n", what);
	abort();
}

static struct fz_flow *st(struct fz *z, struct flow *f)
{
	if (!f->app) {
		f->app = calloc(1, sizeof(struct fz_flow));
		if (!f->app)
			abort();
		z->live++;
	}
	return f->app;
}

static void fz_data(void *u, struct flow *f, unsigned dir, uint64_t off,
		    const uint8_t *data, uint32_t len, uint64_t ts)
{
	(void)ts;
	struct fz *z = u;
	struct fz_flow *s = st(z, f);
	if (dir > 1)
		die("direction");
	if (s->ended[dir])
		die("on_data after on_end");
	if (off != s->next[dir])
		die("on_data offset not contiguous");
	if (len == 0)
		die("on_data with length 0");
	for (uint32_t i = 0; i < len; i++)
		s->sum = s->sum * 31 + data[i];
	s->next[dir] = off + len;
}

static void fz_gap(void *u, struct flow *f, unsigned dir, uint64_t off,
		   uint64_t len, uint64_t ts)
{
	(void)ts;
	struct fz_flow *s = st(u, f);
	if (dir > 1)
		die("direction");
	if (s->ended[dir])
		die("on_gap after on_end");
	if (off != s->next[dir])
		die("on_gap offset not contiguous");
	if (len == 0)
		die("on_gap with length 0");
	s->next[dir] = off + len;
}

static void fz_overlap(void *u, struct flow *f, unsigned dir, uint64_t off)
{
	struct fz_flow *s = st(u, f);
	if (dir > 1 || s->ended[dir])
		die("on_overlap after on_end");
	(void)off;
}

static void fz_end(void *u, struct flow *f, unsigned dir, enum reasm_end how,
		   uint64_t ts)
{
	(void)ts;
	struct fz_flow *s = st(u, f);
	if (dir > 1)
		die("direction");
	if (s->ended[dir])
		die("second on_end");
	if (how < REASM_END_FIN || how > REASM_END_REPLACED)
		die("end reason");
	s->ended[dir] = 1;
}

static void fz_free(void *u, struct flow *f)
{
	struct fz *z = u;
	struct fz_flow *s = f->app;
	if (!s)
		die("on_flow_free before any on_end");
	if (!s->ended[0] || !s->ended[1])
		die("on_flow_free before both directions ended");
	z->sum += s->sum;
	free(s);
	f->app = NULL;
	z->live--;
}

static const struct reasm_ops fz_ops = {
	.on_data = fz_data,
	.on_gap = fz_gap,
	.on_overlap = fz_overlap,
	.on_end = fz_end,
	.on_flow_free = fz_free,
};

static const int links[8] = {
	DECODE_LINK_ETHERNET, DECODE_LINK_ETHERNET, DECODE_LINK_ETHERNET,
	DECODE_LINK_RAW,      DECODE_LINK_SLL,      DECODE_LINK_SLL2,
	DECODE_LINK_NULL,     DECODE_LINK_ETHERNET,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t c0 = data[0];
	struct worker_cfg cfg = {
		.decode = DECODE_CFG_DEFAULT,
		.flow = { .max_flows = 1u + (c0 & 7u),
			  .idle_timeout_ns = 400 * ST_NS_PER_MS,
			  .closed_timeout_ns = 50 * ST_NS_PER_MS },
		.reasm = { .flow_ooo_max = (c0 & 0x40) ? 4096 : 100,
			   .worker_memcap = 3ull * ((c0 >> 3) & 7u) * FZ_CHUNK,
			   .chunk_size = FZ_CHUNK,
			   .gap_timeout_ns = 20 * ST_NS_PER_MS },
		.tick_ns = 5 * ST_NS_PER_MS,
	};
	if (c0 & 0x80)
		cfg.decode.vxlan_port = cfg.decode.geneve_port = 0;
	struct fz z = { 0 };
	struct worker *w = worker_new(0, &cfg, &fz_ops, &z);
	if (!w)
		abort();

	uint64_t ts = ST_NS_PER_SEC;
	size_t pos = 1;
	while (pos + 4 <= size) {
		uint8_t sel = data[pos], dt = data[pos + 1];
		uint32_t len = (uint32_t)data[pos + 2] << 8 | data[pos + 3];
		pos += 4;
		if (len > size - pos)
			len = (uint32_t)(size - pos);
		ts += dt == 255 ? 10 * ST_NS_PER_SEC : dt * 2 * ST_NS_PER_MS;
		uint8_t *p = malloc(len ? len : 1);
		if (!p)
			abort();
		memcpy(p, data + pos, len);
		pos += len;
		worker_raw(w, links[sel & 7], p, len, len + 7u * (sel >> 3), ts);
		free(p);
		if (flow_table_count(w->ft) > cfg.flow.max_flows)
			die("flow table over capacity");
		if (reasm_ctx_mem_used(w->rc) > cfg.reasm.worker_memcap)
			die("reassembly pool over its cap");
	}
	worker_finish(w);
	if (flow_table_count(w->ft) != 0)
		die("flows left after worker_finish");
	if (z.live != 0)
		die("consumer state not released exactly once per flow");
	if (reasm_ctx_mem_used(w->rc) != 0)
		die("reassembly memory held after worker_finish");
	worker_free(w);
	return 0;
}
