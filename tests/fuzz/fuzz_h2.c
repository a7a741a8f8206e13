/* libFuzzer target: the passive HTTP/2 analyzer on raw direction byte
 * streams, exactly as TCP reassembly would hand them over.
 *
 * Input: byte 0 sets the start (bit 0: direction 0 began at its SYN, bit 1:
 * direction 1 did, bit 2: direction 0 is the client); then chunks of
 *   [1 byte: bit 0 direction, bit 1 gap] [2 bytes big-endian length] [bytes]
 * (a gap chunk carries no bytes; its length is the gap). Data offsets
 * advance per direction like reasm's. At the end both directions end and
 * the flow is freed. Every record must be one valid JSON object; limits are
 * small so caps are hit often. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/flow.h"
#include "sealtap/h2.h"
#include "json_check.h"

static int sink(void *u, const void *rec, uint32_t len)
{
	(void)u;
	if (!json_record_ok(rec, len)) {
		fprintf(stderr, "invalid record: %.*s\n", (int)len,
			(const char *)rec);
		abort();
	}
	return 0;
}

static struct h2_ctx *ctx;
static struct st_counters ctr;

static void setup(void)
{
	struct h2_cfg cfg = H2_CFG_DEFAULT;
	cfg.max_connections = 4;
	cfg.max_streams = 64;
	cfg.max_conn_streams = 16;
	cfg.max_header_block = 4096;
	cfg.max_table_size = 8192;
	cfg.max_record = 16384;
	cfg.body_inspect = 512;
	cfg.resync_window = 2048;
	cfg.memcap = 1 << 20;
	struct h2_sink s = { .write = sink };
	struct h2_run_info run = { .worker = 0, .source = "fuzz" };
	ctx = h2_ctx_new(&cfg, &run, &s, &ctr);
	if (!ctx)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctx)
		setup();
	if (size < 1)
		return 0;
	const struct reasm_ops *ops = h2_reasm_ops();
	struct flow f;
	memset(&f, 0, sizeof(f));
	f.key.family = FLOW_FAMILY_IPV4;
	f.key.proto = 6;
	f.key.addr[0][0] = 10;
	f.key.addr[1][0] = 10;
	f.key.addr[1][3] = 1;
	f.key.port[0] = 40000;
	f.key.port[1] = 8080;
	f.dir[0].idx = 0;
	f.dir[1].idx = 1;
	for (unsigned i = 0; i < 2; i++)
		f.dir[i].flags = REASM_DIR_STARTED |
				 ((data[0] >> i) & 1 ? REASM_DIR_SYN : 0);
	f.client_dir = (data[0] & 4) ? 0 : 1;
	f.role_sure = (data[0] >> 3) & 1;
	uint64_t off[2] = { 0, 0 }, ts = 1000;
	size_t pos = 1;
	while (pos + 3 <= size) {
		unsigned dir = data[pos] & 1;
		bool gap = data[pos] & 2;
		uint32_t len = ((uint32_t)data[pos + 1] << 8) | data[pos + 2];
		pos += 3;
		ts += 1000;
		if (gap) {
			if (len == 0)
				len = 1;
			ops->on_gap(ctx, &f, dir, off[dir], len, ts);
			off[dir] += len;
			continue;
		}
		if (len > size - pos)
			len = (uint32_t)(size - pos);
		if (len == 0)
			break;
		ops->on_data(ctx, &f, dir, off[dir], data + pos, len, ts);
		off[dir] += len;
		pos += len;
	}
	h2_ctx_tick(ctx, ts, 16);
	f.dir[0].flags |= REASM_DIR_ENDED;
	ops->on_end(ctx, &f, 0, REASM_END_FIN, ts);
	f.dir[1].flags |= REASM_DIR_ENDED;
	ops->on_end(ctx, &f, 1, REASM_END_FIN, ts);
	ops->on_flow_free(ctx, &f);
	return 0;
}
