/* libFuzzer target: the whole tap on a pcap file (libpcap reader -> decode
 * -> flows -> reassembly -> HTTP/2 -> records), without EAL. Every record
 * must be valid JSON; small caps so limits are hit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pcap/pcap.h>

#include "sealtap/decode.h"
#include "sealtap/h2.h"
#include "sealtap/worker.h"
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

static unsigned tick(void *u, uint64_t now, unsigned budget)
{
	return h2_ctx_tick(u, now, budget);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size, "rb");
	if (!f)
		return 0;
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(
		f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pc)
		return 0; /* pcap_fopen_offline closed |f| */
	int link = pcap_datalink(pc);
	if (!decode_link_supported(link)) {
		pcap_close(pc);
		return 0;
	}
	struct st_counters hc = { 0 };
	struct h2_cfg hcfg = H2_CFG_DEFAULT;
	hcfg.max_connections = 8;
	hcfg.max_streams = 64;
	hcfg.max_conn_streams = 16;
	hcfg.max_header_block = 4096;
	hcfg.max_record = 16384;
	hcfg.body_inspect = 256;
	hcfg.resync_window = 2048;
	hcfg.memcap = 1 << 20;
	hcfg.stream_timeout_ns = 2000000000ull;
	struct h2_sink s = { .write = sink };
	struct h2_ctx *h2 = h2_ctx_new(&hcfg, NULL, &s, &hc);
	struct worker_cfg wcfg = {
		.decode = DECODE_CFG_DEFAULT,
		.flow = { .max_flows = 8, .idle_timeout_ns = 5000000000ull,
			  .closed_timeout_ns = 1000000000ull },
		.reasm = { .flow_ooo_max = 16384, .worker_memcap = 65536,
			   .chunk_size = 512, .gap_timeout_ns = 500000000ull },
	};
	struct worker *w = worker_new(0, &wcfg, h2_reasm_ops(), h2);
	if (!w || !h2)
		abort();
	w->tick = tick;
	w->tick_user = h2;
	struct pcap_pkthdr *hdr;
	const u_char *pkt;
	unsigned n = 0;
	while (n++ < 4096 && pcap_next_ex(pc, &hdr, &pkt) == 1) {
		uint64_t ts = (uint64_t)hdr->ts.tv_sec * 1000000000ull +
			      (uint64_t)hdr->ts.tv_usec;
		worker_raw(w, link, pkt, hdr->caplen, hdr->len, ts);
	}
	worker_finish(w);
	worker_free(w);
	h2_ctx_free(h2);
	pcap_close(pc);
	return 0;
}
