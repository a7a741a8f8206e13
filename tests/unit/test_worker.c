/* Tests for src/worker.c end to end: raw packets (built with pktbuild.h)
 * through worker_raw() into the stream_digest consumer, whose JSON lines
 * are checked field by field (bytes, SHA-256 of the known stream, gaps,
 * end reason, role). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "sealtap/stream_digest.h"
#include "sealtap/worker.h"
#include "pktbuild.h"

/* ---- a worker writing digests to memory ------------------------------- */

struct rig {
	struct worker *w;
	struct stream_digest *sd;
	FILE *out;
	char *buf;
	size_t len;
};

static struct worker_cfg rig_cfg(void)
{
	struct worker_cfg cfg = {
		.decode = DECODE_CFG_DEFAULT,
		.flow = { .max_flows = 64, .idle_timeout_ns = 30 * ST_NS_PER_SEC,
			  .closed_timeout_ns = 5 * ST_NS_PER_SEC },
		.reasm = { .flow_ooo_max = 1 << 16, .worker_memcap = 1 << 20,
			   .chunk_size = 2048, .gap_timeout_ns = ST_NS_PER_SEC },
		.tick_ns = 100 * ST_NS_PER_MS,
	};
	return cfg;
}

static void rig_open(struct rig *r, const struct worker_cfg *cfg)
{
	memset(r, 0, sizeof(*r));
	r->out = open_memstream(&r->buf, &r->len);
	assert_non_null(r->out);
	r->sd = stream_digest_new(r->out);
	assert_non_null(r->sd);
	r->w = worker_new(3, cfg, stream_digest_ops(), r->sd);
	assert_non_null(r->w);
}

/* Finishes the worker and returns the output (valid until rig_close). */
static const char *rig_finish(struct rig *r)
{
	worker_finish(r->w);
	fflush(r->out);
	return r->buf;
}

static void rig_close(struct rig *r)
{
	worker_free(r->w);
	stream_digest_free(r->sd);
	fclose(r->out);
	free(r->buf);
}

static int tx(struct rig *r, const struct pb_ends *e, unsigned from,
	      uint32_t seq, uint32_t ack, uint8_t flags, const char *data,
	      uint64_t ts)
{
	struct pb b;
	uint32_t n = data ? (uint32_t)strlen(data) : 0;
	uint32_t len = pb_tcp_frame(&b, e, from, seq, ack, flags, data, n);
	return worker_raw(r->w, DECODE_LINK_ETHERNET, b.b, len, len, ts);
}

/* ---- JSON lines --------------------------------------------------------- */

/* The line whose "src" is |src|, copied to |line|. */
static bool find_line(const char *out, const char *src, char *line, size_t n)
{
	char pat[96];
	snprintf(pat, sizeof(pat), "{\"src\":\"%s\"", src);
	const char *p = strstr(out ? out : "", pat);
	if (!p)
		return false;
	const char *e = strchr(p, '\n');
	assert_non_null(e);
	size_t l = (size_t)(e - p);
	assert_true(l < n);
	memcpy(line, p, l);
	line[l] = 0;
	return true;
}

/* The line containing |needle|, copied to |line|. */
static bool line_with(const char *out, const char *needle, char *line,
		      size_t n)
{
	const char *p = strstr(out ? out : "", needle);
	if (!p)
		return false;
	while (p > out && p[-1] != '\n')
		p--;
	const char *e = strchr(p, '\n');
	assert_non_null(e);
	size_t l = (size_t)(e - p);
	assert_true(l < n);
	memcpy(line, p, l);
	line[l] = 0;
	return true;
}

/* The value of |key| in the one-line object |line|: strings without their
 * quotes, arrays with their brackets, numbers and literals as they are. */
static const char *jget(const char *line, const char *key)
{
	static char v[1024];
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(line, pat);
	if (!p)
		fail_msg("no \"%s\" in %s", key, line);
	p += strlen(pat);
	size_t n = 0;
	if (*p == '"') {
		for (p++; *p && *p != '"' && n < sizeof(v) - 1; p++)
			v[n++] = *p;
	} else if (*p == '[') {
		int depth = 0;
		do {
			if (*p == '[')
				depth++;
			else if (*p == ']')
				depth--;
			v[n++] = *p++;
		} while (*p && depth > 0 && n < sizeof(v) - 1);
	} else {
		for (; *p && *p != ',' && *p != '}' && n < sizeof(v) - 1; p++)
			v[n++] = *p;
	}
	v[n] = 0;
	return v;
}

static unsigned count_lines(const char *out)
{
	unsigned n = 0;
	for (; out && *out; out++)
		n += *out == '\n';
	return n;
}

static const char *sha256_hex(const void *data, size_t len)
{
	static char hex[65];
	uint8_t md[32];
	unsigned int mdlen = 0;
	assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

/* Checks one direction's line. */
struct want {
	const char *src, *dst, *role, *syn, *end, *gaps;
	uint32_t base_seq;
	uint64_t bytes, gap_bytes;
	unsigned ngaps;
	const char *stream; /* delivered bytes, gaps left out */
};

static void check_line(const char *out, const struct want *w)
{
	char line[2048];
	if (!find_line(out, w->src, line, sizeof(line)))
		fail_msg("no line for %s in:\n%s", w->src, out ? out : "");
	char num[32];
	assert_string_equal(jget(line, "dst"), w->dst);
	assert_string_equal(jget(line, "role"), w->role);
	assert_string_equal(jget(line, "syn"), w->syn);
	snprintf(num, sizeof(num), "%u", w->base_seq);
	assert_string_equal(jget(line, "base_seq"), num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)w->bytes);
	assert_string_equal(jget(line, "bytes"), num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)w->gap_bytes);
	assert_string_equal(jget(line, "gap_bytes"), num);
	snprintf(num, sizeof(num), "%u", w->ngaps);
	assert_string_equal(jget(line, "ngaps"), num);
	assert_string_equal(jget(line, "gaps"), w->gaps);
	assert_string_equal(jget(line, "sha256"),
			    sha256_hex(w->stream, strlen(w->stream)));
	assert_int_equal(strlen(w->stream), w->bytes);
	assert_string_equal(jget(line, "end"), w->end);
}

/* ---- tests ---------------------------------------------------------------- */

#define T0 (1000 * ST_NS_PER_SEC)
#define MS ST_NS_PER_MS

static const struct pb_ends conv = {
	{ PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1) }, { 40000, 8080 }, 0
};

/* A whole HTTP/1-looking exchange: handshake, a request in two segments,
 * a response in three (two swapped), FIN both ways. */
static void test_digest_full_conversation(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	const char *q1 = "GET / HTTP/1.1\r\n", *q2 = "Host: example\r\n\r\n";
	const char *s1 = "HTTP/1.1 200 OK\r\n", *s2 = "Content-Length: 5\r\n\r\n",
		   *s3 = "hello";
	uint32_t c = 12345, s = 0xfffffff0u; /* server ISN wraps */
	uint32_t ql = (uint32_t)(strlen(q1) + strlen(q2));
	uint32_t l1 = (uint32_t)strlen(s1), l2 = (uint32_t)strlen(s2);
	assert_int_equal(tx(&r, &conv, 0, c, 0, PB_TCP_SYN, NULL, T0), DECODE_OK);
	tx(&r, &conv, 1, s, c + 1, PB_TCP_SYN | PB_TCP_ACK, NULL, T0 + 1 * MS);
	tx(&r, &conv, 0, c + 1, s + 1, PB_TCP_ACK, NULL, T0 + 2 * MS);
	tx(&r, &conv, 0, c + 1, s + 1, PB_TCP_ACK | PB_TCP_PSH, q1, T0 + 3 * MS);
	tx(&r, &conv, 0, c + 1 + (uint32_t)strlen(q1), s + 1,
	   PB_TCP_ACK | PB_TCP_PSH, q2, T0 + 4 * MS);
	tx(&r, &conv, 1, s + 1, c + 1 + ql, PB_TCP_ACK, s1, T0 + 5 * MS);
	tx(&r, &conv, 1, s + 1 + l1 + l2, c + 1 + ql, PB_TCP_ACK | PB_TCP_PSH,
	   s3, T0 + 6 * MS);
	tx(&r, &conv, 1, s + 1 + l1, c + 1 + ql, PB_TCP_ACK, s2, T0 + 7 * MS);
	/* a retransmission of the request */
	tx(&r, &conv, 0, c + 1, s + 1, PB_TCP_ACK | PB_TCP_PSH, q1, T0 + 8 * MS);
	tx(&r, &conv, 0, c + 1 + ql, s + 1 + l1 + l2 + 5, PB_TCP_FIN | PB_TCP_ACK,
	   NULL, T0 + 9 * MS);
	tx(&r, &conv, 1, s + 1 + l1 + l2 + 5, c + 2 + ql,
	   PB_TCP_FIN | PB_TCP_ACK, NULL, T0 + 10 * MS);
	tx(&r, &conv, 0, c + 2 + ql, s + 2 + l1 + l2 + 5, PB_TCP_ACK, NULL,
	   T0 + 11 * MS);
	struct worker *w = r.w;
	assert_int_equal(w->ctr.v[ST_CTR_flow_created], 1);
	assert_int_equal(w->ctr.v[ST_CTR_flow_closed], 1);
	assert_int_equal(w->ctr.v[ST_CTR_reasm_fin], 2);
	assert_int_equal(w->ctr.v[ST_CTR_reasm_dup_segments], 1);
	assert_int_equal(w->ctr.v[ST_CTR_reasm_ooo_queued], 1);
	assert_int_equal(w->ctr.v[ST_CTR_reasm_gaps], 0);
	assert_int_equal(w->ctr.v[ST_CTR_decode_tcp], 12);
	assert_int_equal(w->ctr.v[ST_CTR_reasm_bytes], ql + l1 + l2 + 5);

	const char *out = rig_finish(&r);
	assert_int_equal(count_lines(out), 2);
	char req[128], resp[128];
	snprintf(req, sizeof(req), "%s%s", q1, q2);
	snprintf(resp, sizeof(resp), "%s%s%s", s1, s2, s3);
	check_line(out, &(struct want){
		.src = "10.0.0.2:40000", .dst = "10.0.0.1:8080",
		.role = "client", .syn = "true", .end = "fin", .gaps = "[]",
		.base_seq = c + 1, .bytes = ql, .stream = req });
	check_line(out, &(struct want){
		.src = "10.0.0.1:8080", .dst = "10.0.0.2:40000",
		.role = "server", .syn = "true", .end = "fin", .gaps = "[]",
		.base_seq = s + 1, .bytes = l1 + l2 + 5, .stream = resp });
	rig_close(&r);
}

/* A lost server segment: after the gap timeout (packet time) it is a gap;
 * the flow then idles out. The digest covers the delivered bytes. */
static void test_digest_gap_and_timeout(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	uint32_t c = 100, s = 900;
	tx(&r, &conv, 0, c, 0, PB_TCP_SYN, NULL, T0);
	tx(&r, &conv, 1, s, c + 1, PB_TCP_SYN | PB_TCP_ACK, NULL, T0 + MS);
	tx(&r, &conv, 0, c + 1, s + 1, PB_TCP_ACK, "req", T0 + 2 * MS);
	tx(&r, &conv, 1, s + 1, c + 4, PB_TCP_ACK, "aaaa", T0 + 3 * MS);
	/* "bbbb" at s+5 is lost */
	tx(&r, &conv, 1, s + 9, c + 4, PB_TCP_ACK, "cccc", T0 + 4 * MS);
	tx(&r, &conv, 1, s + 13, c + 4, PB_TCP_ACK, "dd", T0 + 5 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_gaps], 0);
	/* Packet time moves on (another flow's packets): the hole goes. */
	const struct pb_ends other = {
		{ PB_IP4(10, 0, 0, 3), PB_IP4(10, 0, 0, 1) }, { 40001, 8080 }, 0
	};
	tx(&r, &other, 0, 1, 0, PB_TCP_ACK, "x", T0 + 4 * MS + ST_NS_PER_SEC);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_gaps], 1);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_gap_timeout], 1);
	/* Idle timeout for both flows. */
	worker_clock(r.w, T0 + 40 * ST_NS_PER_SEC);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_timeout], 2);
	assert_int_equal(flow_table_count(r.w->ft), 0);
	const char *out = rig_finish(&r);
	assert_int_equal(count_lines(out), 3);
	check_line(out, &(struct want){
		.src = "10.0.0.1:8080", .dst = "10.0.0.2:40000",
		.role = "server", .syn = "true", .end = "timeout",
		.gaps = "[[4,4]]", .base_seq = s + 1, .bytes = 10,
		.gap_bytes = 4, .ngaps = 1, .stream = "aaaaccccdd" });
	check_line(out, &(struct want){
		.src = "10.0.0.2:40000", .dst = "10.0.0.1:8080",
		.role = "client", .syn = "true", .end = "timeout", .gaps = "[]",
		.base_seq = c + 1, .bytes = 3, .stream = "req" });
	/* Mid-stream, single packet: the higher port is the client. */
	check_line(out, &(struct want){
		.src = "10.0.0.3:40001", .dst = "10.0.0.1:8080",
		.role = "client", .syn = "false", .end = "timeout", .gaps = "[]",
		.base_seq = 1, .bytes = 1, .stream = "x" });
	rig_close(&r);
}

/* No SYN seen: offsets start at the first byte, roles are a guess (the
 * higher port is the client), and the end of input ends the streams. */
static void test_digest_midstream(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	const struct pb_ends e = {
		{ PB_IP4(192, 168, 1, 1), PB_IP4(192, 168, 1, 200) },
		{ 443, 51000 }, 0
	};
	/* The server (443, lower address) talks first. */
	tx(&r, &e, 0, 0x7ffffff0u, 5, PB_TCP_ACK, "server data ", T0);
	tx(&r, &e, 1, 5, 0x7ffffffcu, PB_TCP_ACK, "client", T0 + MS);
	tx(&r, &e, 0, 0x7ffffffcu, 11, PB_TCP_ACK, "more", T0 + 2 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_midstream], 2);
	const char *out = rig_finish(&r);
	assert_int_equal(count_lines(out), 2);
	check_line(out, &(struct want){
		.src = "192.168.1.1:443", .dst = "192.168.1.200:51000",
		.role = "server", .syn = "false", .end = "shutdown",
		.gaps = "[]", .base_seq = 0x7ffffff0u, .bytes = 16,
		.stream = "server data more" });
	check_line(out, &(struct want){
		.src = "192.168.1.200:51000", .dst = "192.168.1.1:443",
		.role = "client", .syn = "false", .end = "shutdown",
		.gaps = "[]", .base_seq = 5, .bytes = 6, .stream = "client" });
	rig_close(&r);
}

/* A full table evicts (end "evicted"); an RST ends both directions ("rst");
 * a direction that carried nothing is not written. */
static void test_digest_evicted_and_rst(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	cfg.flow.max_flows = 1;
	struct rig r;
	rig_open(&r, &cfg);
	tx(&r, &conv, 0, 10, 0, PB_TCP_SYN, NULL, T0);
	tx(&r, &conv, 0, 11, 0, PB_TCP_ACK, "first", T0 + MS);
	const struct pb_ends e2 = {
		{ PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1) }, { 40002, 8080 }, 0
	};
	tx(&r, &e2, 0, 50, 0, PB_TCP_SYN, NULL, T0 + 2 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_evicted], 1);
	fflush(r.out);
	assert_int_equal(count_lines(r.buf), 1);
	check_line(r.buf, &(struct want){
		.src = "10.0.0.2:40000", .dst = "10.0.0.1:8080",
		.role = "client", .syn = "true", .end = "evicted", .gaps = "[]",
		.base_seq = 11, .bytes = 5, .stream = "first" });
	tx(&r, &e2, 1, 70, 51, PB_TCP_SYN | PB_TCP_ACK, NULL, T0 + 3 * MS);
	tx(&r, &e2, 1, 71, 51, PB_TCP_ACK, "welcome", T0 + 4 * MS);
	tx(&r, &e2, 0, 51, 78, PB_TCP_RST, NULL, T0 + 5 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_rst], 1);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_closed], 1);
	const char *out = rig_finish(&r);
	assert_int_equal(count_lines(out), 2);
	check_line(out, &(struct want){
		.src = "10.0.0.1:8080", .dst = "10.0.0.2:40002",
		.role = "server", .syn = "true", .end = "rst", .gaps = "[]",
		.base_seq = 71, .bytes = 7, .stream = "welcome" });
	rig_close(&r);
}

/* Snaplen cut the payload: the tail is a gap at once, and the digest
 * covers what was captured. */
static void test_digest_truncated_capture(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	tx(&r, &conv, 0, 10, 0, PB_TCP_SYN, NULL, T0);
	struct pb b;
	uint32_t len = pb_tcp_frame(&b, &conv, 0, 11, 0, PB_TCP_ACK,
				    "0123456789", 10);
	assert_int_equal(worker_raw(r.w, DECODE_LINK_ETHERNET, b.b, len - 6, len,
				    T0 + MS),
			 DECODE_OK);
	assert_int_equal(r.w->ctr.v[ST_CTR_decode_payload_truncated], 1);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_gap_truncated], 1);
	tx(&r, &conv, 0, 21, 0, PB_TCP_ACK | PB_TCP_FIN, "ab", T0 + 2 * MS);
	const char *out = rig_finish(&r);
	check_line(out, &(struct want){
		.src = "10.0.0.2:40000", .dst = "10.0.0.1:8080",
		.role = "client", .syn = "true", .end = "fin", .gaps = "[[4,6]]",
		.base_seq = 11, .bytes = 6, .gap_bytes = 6, .ngaps = 1,
		.stream = "0123ab" });
	rig_close(&r);
}

/* IPv6 inside VXLAN, through the whole pipeline. */
static void test_digest_ipv6_vxlan(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	uint8_t a[2][16];
	pb_ip6addr(a[0], 1);
	pb_ip6addr(a[1], 2);
	static const struct {
		unsigned from;
		uint32_t seq;
		uint8_t flags;
		const char *data;
	} pk[] = {
		{ 1, 77, PB_TCP_SYN, NULL },
		{ 0, 500, PB_TCP_SYN | PB_TCP_ACK, NULL },
		{ 1, 78, PB_TCP_ACK, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" },
		{ 0, 501, PB_TCP_ACK, "settings" },
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(pk); i++) {
		struct pb b;
		pb_init(&b);
		pb_eth(&b, PB_ETH_VLAN);
		pb_vlan(&b, 12, PB_ETH_IPV4);
		pb_ipv4(&b, PB_IP4(172, 16, 0, 1), PB_IP4(172, 16, 0, 2),
			PB_PROTO_UDP);
		pb_udp(&b, 33333, 4789);
		pb_vxlan(&b, 1000);
		pb_eth(&b, PB_ETH_IPV6);
		pb_ipv6(&b, a[pk[i].from], a[pk[i].from ^ 1], PB_PROTO_TCP);
		pb_tcp(&b, pk[i].from ? 50000 : 443, pk[i].from ? 443 : 50000,
		       pk[i].seq, 0, pk[i].flags, NULL, 0);
		if (pk[i].data)
			pb_payload(&b, pk[i].data, (uint32_t)strlen(pk[i].data));
		uint32_t len = pb_finish(&b);
		assert_int_equal(worker_raw(r.w, DECODE_LINK_ETHERNET, b.b, len,
					    len, T0 + i * MS),
				 DECODE_OK);
	}
	assert_int_equal(r.w->ctr.v[ST_CTR_decode_vxlan], 4);
	assert_int_equal(r.w->ctr.v[ST_CTR_decode_ipv6], 4);
	assert_int_equal(r.w->ctr.v[ST_CTR_decode_vlan], 4);
	const char *out = rig_finish(&r);
	assert_int_equal(count_lines(out), 2);
	check_line(out, &(struct want){
		.src = "[2001:db8::2]:50000", .dst = "[2001:db8::1]:443",
		.role = "client", .syn = "true", .end = "shutdown",
		.gaps = "[]", .base_seq = 78, .bytes = 24,
		.stream = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" });
	check_line(out, &(struct want){
		.src = "[2001:db8::1]:443", .dst = "[2001:db8::2]:50000",
		.role = "server", .syn = "true", .end = "shutdown",
		.gaps = "[]", .base_seq = 501, .bytes = 8, .stream = "settings" });
	rig_close(&r);
}

/* Packets that do not decode are counted, still move the clock (timers
 * run), and never reach the flow table. */
static void test_worker_raw_rejects(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	tx(&r, &conv, 0, 10, 0, PB_TCP_SYN, NULL, T0);
	struct pb b;
	pb_init(&b);
	pb_eth(&b, PB_ETH_ARP);
	pb_zero(&b, 28);
	uint32_t len = pb_finish(&b);
	assert_int_equal(worker_raw(r.w, DECODE_LINK_ETHERNET, b.b, len, len,
				    T0 + 60 * ST_NS_PER_SEC),
			 DECODE_NON_IP);
	assert_int_equal(r.w->ctr.v[ST_CTR_decode_non_ip], 1);
	assert_int_equal(r.w->now, T0 + 60 * ST_NS_PER_SEC);
	/* The idle timeout ran on that clock. */
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_timeout], 1);
	assert_int_equal(flow_table_count(r.w->ft), 0);
	/* A clock going back is ignored. */
	assert_int_equal(worker_raw(r.w, DECODE_LINK_ETHERNET, b.b, 3, 60, T0),
			 DECODE_TRUNCATED);
	assert_int_equal(r.w->now, T0 + 60 * ST_NS_PER_SEC);
	assert_int_equal(worker_raw(r.w, 999, b.b, len, len, T0), DECODE_BAD_L2);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_created], 1);
	const char *out = rig_finish(&r);
	/* The SYN-only flow carried no bytes: nothing written. */
	assert_int_equal(count_lines(out), 0);
	rig_close(&r);
}

/* Both directions end by the gap timer (a hole before each FIN), not by a
 * packet: the flow is over all the same, so a new SYN on the tuple is a
 * new connection, not data after the FIN. */
static void test_reopen_after_timer_end(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	tx(&r, &conv, 0, 10, 0, PB_TCP_SYN, NULL, T0);
	tx(&r, &conv, 1, 50, 11, PB_TCP_SYN | PB_TCP_ACK, NULL, T0 + MS);
	tx(&r, &conv, 0, 11, 51, PB_TCP_ACK, "ab", T0 + 2 * MS);
	/* "cd" lost, then the client's FIN */
	tx(&r, &conv, 0, 15, 51, PB_TCP_ACK | PB_TCP_FIN, NULL, T0 + 3 * MS);
	tx(&r, &conv, 1, 51, 16, PB_TCP_ACK, "xy", T0 + 4 * MS);
	/* "zz" lost, then the server's FIN */
	tx(&r, &conv, 1, 55, 16, PB_TCP_ACK | PB_TCP_FIN, NULL, T0 + 5 * MS);
	worker_clock(r.w, T0 + 2 * ST_NS_PER_SEC);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_gap_timeout], 2);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_fin], 2);
	/* Same tuple, new connection, well within the idle timeout. */
	tx(&r, &conv, 0, 9000, 0, PB_TCP_SYN, NULL, T0 + 3 * ST_NS_PER_SEC);
	tx(&r, &conv, 1, 7000, 9001, PB_TCP_SYN | PB_TCP_ACK, NULL,
	   T0 + 3 * ST_NS_PER_SEC + MS);
	tx(&r, &conv, 0, 9001, 7001, PB_TCP_ACK, "new", T0 + 3 * ST_NS_PER_SEC + 2 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_reused], 1);
	assert_int_equal(r.w->ctr.v[ST_CTR_reasm_after_fin], 0);
	const char *out = rig_finish(&r);
	/* Old connection: two lines written on reuse; new one: one line. */
	assert_int_equal(count_lines(out), 3);
	check_line(out, &(struct want){
		.src = "10.0.0.1:8080", .dst = "10.0.0.2:40000",
		.role = "server", .syn = "true", .end = "fin",
		.gaps = "[[2,2]]", .base_seq = 51, .bytes = 2, .gap_bytes = 2,
		.ngaps = 1, .stream = "xy" });
	char line[2048];
	assert_true(line_with(out, "\"base_seq\":11,", line, sizeof(line)));
	assert_string_equal(jget(line, "src"), "10.0.0.2:40000");
	assert_string_equal(jget(line, "gaps"), "[[2,2]]");
	assert_string_equal(jget(line, "end"), "fin");
	assert_string_equal(jget(line, "sha256"), sha256_hex("ab", 2));
	assert_true(line_with(out, "\"base_seq\":9001,", line, sizeof(line)));
	assert_string_equal(jget(line, "src"), "10.0.0.2:40000");
	assert_string_equal(jget(line, "role"), "client");
	assert_string_equal(jget(line, "base_seq"), "9001");
	assert_string_equal(jget(line, "sha256"), sha256_hex("new", 3));
	assert_string_equal(jget(line, "end"), "shutdown");
	rig_close(&r);
}

/* NULL ops: the discard consumer (benchmarks). */
static void test_worker_null_consumer(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	cfg.tick_ns = 0; /* default */
	struct worker *w = worker_new(0, &cfg, NULL, NULL);
	assert_non_null(w);
	assert_int_equal(w->cfg.tick_ns, 100 * ST_NS_PER_MS);
	struct pb b;
	for (uint32_t i = 0; i < 100; i++) {
		uint32_t len = pb_tcp_frame(&b, &conv, 0, 1000 + i * 3, 0,
					    PB_TCP_ACK, "abc", 3);
		worker_raw(w, DECODE_LINK_ETHERNET, b.b, len, len, T0 + i);
	}
	assert_int_equal(w->ctr.v[ST_CTR_reasm_bytes], 300);
	worker_finish(w);
	worker_free(w);
	/* Creation failures come back as NULL. */
	cfg.flow.max_flows = 0;
	assert_null(worker_new(0, &cfg, NULL, NULL));
	cfg = rig_cfg();
	cfg.reasm.chunk_size = 8;
	assert_null(worker_new(0, &cfg, NULL, NULL));
	worker_free(NULL);
}


/* A new SYN (new ISN) on a tuple whose connection is still live for us
 * (its FIN/RST were lost): the old streams end as "replaced" and the new
 * connection is followed from its SYN. A retransmitted SYN changes
 * nothing. */
static void test_new_isn_replaces_live_flow(void **state)
{
	(void)state;
	struct worker_cfg cfg = rig_cfg();
	struct rig r;
	rig_open(&r, &cfg);
	tx(&r, &conv, 0, 10, 0, PB_TCP_SYN, NULL, T0);
	tx(&r, &conv, 0, 10, 0, PB_TCP_SYN, NULL, T0 + MS); /* retransmit */
	tx(&r, &conv, 1, 50, 11, PB_TCP_SYN | PB_TCP_ACK, NULL, T0 + MS);
	tx(&r, &conv, 0, 11, 51, PB_TCP_ACK, "old", T0 + 2 * MS);
	tx(&r, &conv, 1, 51, 14, PB_TCP_ACK, "OLD", T0 + 3 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_reused], 0);
	tx(&r, &conv, 0, 9000, 0, PB_TCP_SYN, NULL, T0 + 4 * MS);
	tx(&r, &conv, 1, 7000, 9001, PB_TCP_SYN | PB_TCP_ACK, NULL, T0 + 5 * MS);
	tx(&r, &conv, 0, 9001, 7001, PB_TCP_ACK, "new", T0 + 6 * MS);
	assert_int_equal(r.w->ctr.v[ST_CTR_flow_reused], 1);
	const char *out = rig_finish(&r);
	char line[2048];
	assert_true(line_with(out, "\"base_seq\":11,", line, sizeof(line)));
	assert_string_equal(jget(line, "end"), "replaced");
	assert_string_equal(jget(line, "sha256"), sha256_hex("old", 3));
	assert_true(line_with(out, "\"base_seq\":51,", line, sizeof(line)));
	assert_string_equal(jget(line, "end"), "replaced");
	assert_true(line_with(out, "\"base_seq\":9001,", line, sizeof(line)));
	assert_string_equal(jget(line, "syn"), "true");
	assert_string_equal(jget(line, "role"), "client");
	assert_string_equal(jget(line, "sha256"), sha256_hex("new", 3));
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_full_conversation),
		cmocka_unit_test(test_digest_gap_and_timeout),
		cmocka_unit_test(test_digest_midstream),
		cmocka_unit_test(test_digest_evicted_and_rst),
		cmocka_unit_test(test_digest_truncated_capture),
		cmocka_unit_test(test_digest_ipv6_vxlan),
		cmocka_unit_test(test_worker_raw_rejects),
		cmocka_unit_test(test_reopen_after_timer_end),
		cmocka_unit_test(test_new_isn_replaces_live_flow),
		cmocka_unit_test(test_worker_null_consumer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
