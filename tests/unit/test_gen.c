/* Tests for sealtap gen (src/gen_*.c).
 *
 * The .c files are included (one translation unit) to reach the Huffman
 * alphabets of gen_msg.c and the parsers of gen_main.c. Captures are made
 * in memory with open_memstream() and read back by a small pcap/TCP
 * reader written here, independent of gen_pcap.c:
 *  - same options and seed give the same bytes, another seed other bytes;
 *  - no IP packet exceeds the MTU, and full segments fill it (MSS used);
 *  - sequence numbers are continuous per direction (SYN and FIN count
 *    one), ACKs never acknowledge what the other side has not sent;
 *  - the frame counts follow the options (HEADERS, CONTINUATION, trailers,
 *    h2c upgrade), impairments remove what they say;
 *  - the --huffman off alphabets really make nghttp2 emit raw literals.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/gen_util.c"
#include "../../src/gen_msg.c"
#include "../../src/gen_h2.c"
#include "../../src/gen_conn.c"
#include "../../src/gen_pcap.c"
#include "../../src/gen_run.c"
#include "../../src/gen_main.c"

/* ---- running gen into memory ----------------------------------------- */

struct cap {
	char *buf;
	size_t len;
	struct gen_summary sum;
};

static void gen_mem(const struct gen_opts *o, struct cap *c)
{
	char err[256] = "";
	FILE *f = open_memstream(&c->buf, &c->len);
	assert_non_null(f);
	int rc = gen_run(o, f, &c->sum, err, sizeof(err));
	if (rc != 0)
		fail_msg("gen_run: %d %s", rc, err);
	assert_int_equal(fclose(f), 0);
}

static void cap_free(struct cap *c)
{
	free(c->buf);
	c->buf = NULL;
}

static struct gen_opts base_opts(void)
{
	struct gen_opts o;
	gen_opts_default(&o);
	o.connections = 3;
	o.streams = 12;
	o.concurrency = 4;
	o.resp_body = (struct gen_range){ 100, 40000 };
	o.req_body = (struct gen_range){ 0, 20000 };
	return o;
}

/* ---- an independent pcap / TCP reader --------------------------------- */

static uint32_t rd_le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

struct tcpseg {
	uint64_t ts;      /* in the file's unit */
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint32_t iplen;   /* IPv4 total length / IPv6 40 + payload length */
	uint32_t paylen;
};

/* Parses the Ethernet frame |f| (after |skip| bytes of tunnel headers). */
static void parse_frame(const uint8_t *f, uint32_t len, uint32_t skip,
			struct tcpseg *t)
{
	assert_true(len > skip + 14);
	f += skip;
	len -= skip;
	uint16_t type = rd16(f + 12);
	const uint8_t *ip = f + 14, *tcp;
	memset(t->src, 0, 16);
	memset(t->dst, 0, 16);
	if (type == 0x0800) {
		assert_int_equal(ip[9], 6);
		t->iplen = rd16(ip + 2);
		memcpy(t->src, ip + 12, 4);
		memcpy(t->dst, ip + 16, 4);
		tcp = ip + (ip[0] & 15) * 4;
	} else {
		assert_int_equal(type, 0x86dd);
		assert_int_equal(ip[6], 6);
		t->iplen = 40 + rd16(ip + 4);
		memcpy(t->src, ip + 8, 16);
		memcpy(t->dst, ip + 24, 16);
		tcp = ip + 40;
	}
	assert_int_equal(14 + t->iplen, len);
	t->sport = rd16(tcp);
	t->dport = rd16(tcp + 2);
	t->seq = rd32(tcp + 4);
	t->ack = rd32(tcp + 8);
	t->flags = tcp[13];
	t->paylen = (uint32_t)(f + len - tcp) - (tcp[12] >> 4) * 4;
}

/* Calls |fn| for every TCP segment of capture |c|; returns the count. */
static size_t each_seg(const struct cap *c, uint32_t skip,
		       void (*fn)(const struct tcpseg *, void *), void *arg)
{
	const uint8_t *p = (const uint8_t *)c->buf;
	assert_true(c->len >= 24);
	uint32_t magic = rd_le32(p);
	assert_true(magic == 0xa1b2c3d4 || magic == 0xa1b23c4d);
	assert_int_equal(rd_le32(p + 20), 1); /* LINKTYPE_ETHERNET */
	uint64_t unit = magic == 0xa1b2c3d4 ? 1000000 : 1000000000;
	size_t off = 24, n = 0;
	uint64_t last = 0;
	while (off < c->len) {
		assert_true(off + 16 <= c->len);
		uint32_t caplen = rd_le32(p + off + 8);
		assert_int_equal(caplen, rd_le32(p + off + 12));
		assert_true(off + 16 + caplen <= c->len);
		struct tcpseg t;
		t.ts = rd_le32(p + off) * unit + rd_le32(p + off + 4);
		assert_true(t.ts >= last); /* time never goes back */
		last = t.ts;
		parse_frame(p + off + 16, caplen, skip, &t);
		fn(&t, arg);
		off += 16 + caplen;
		n++;
	}
	return n;
}

/* ---- determinism ------------------------------------------------------ */

static void test_same_seed_same_bytes(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	o.seed = 42;
	o.rst_ppm = 200000;
	o.padding = 16;
	o.table_churn = true;
	o.loss_ppm = 10000;
	o.reorder = 3;
	o.connections = 20; /* overlapping: exercises the merge */
	struct cap a = { 0 }, b = { 0 };
	/* Fresh heap memory filled with different bytes in each run: output
	 * that read uninitialised memory would differ. */
	mallopt(M_PERTURB, 0x5a);
	gen_mem(&o, &a);
	mallopt(M_PERTURB, 0xa5);
	gen_mem(&o, &b);
	mallopt(M_PERTURB, 0);
	assert_true(a.sum.packets > 50);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.buf, b.buf, a.len);
	cap_free(&a);
	cap_free(&b);
}

static void test_other_seed_other_bytes(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	struct cap a = { 0 }, b = { 0 };
	o.seed = 1;
	gen_mem(&o, &a);
	o.seed = 2;
	gen_mem(&o, &b);
	assert_true(a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0);
	cap_free(&a);
	cap_free(&b);
}

/* ---- segmentation ----------------------------------------------------- */

struct mtu_check {
	uint32_t mtu;
	uint32_t max_seen;
};

static void on_mtu(const struct tcpseg *t, void *arg)
{
	struct mtu_check *m = arg;
	assert_true(t->iplen <= m->mtu);
	if (t->iplen > m->max_seen)
		m->max_seen = t->iplen;
}

static void check_mtu(struct gen_opts o, uint32_t mtu, uint32_t skip)
{
	o.mtu = mtu;
	o.resp_body = (struct gen_range){ 20000, 60000 };
	struct cap c = { 0 };
	gen_mem(&o, &c);
	struct mtu_check m = { mtu, 0 };
	each_seg(&c, skip, on_mtu, &m);
	assert_int_equal(m.max_seen, mtu); /* full segments use the MSS */
	cap_free(&c);
}

static void test_mtu_respected(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	check_mtu(o, 1500, 0);
	check_mtu(o, 576, 0);
	check_mtu(o, 9000, 0);
	o.ipv6 = true;
	check_mtu(o, 1280, 0);
	o.encap = GEN_ENCAP_GENEVE;
	check_mtu(o, 1500, 50); /* the MTU is the inner one */
	o.ipv6 = false;
	o.encap = GEN_ENCAP_VXLAN;
	check_mtu(o, 1400, 50);
}

/* Per-direction TCP state, keyed by source address and port. */
struct dir_state {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint32_t next;    /* next expected sequence number */
	uint32_t acked;   /* highest ack sent */
	bool has_acked;
	bool fin;
};

struct seq_check {
	struct dir_state d[64];
	size_t n;
	size_t syns, fins;
};

static struct dir_state *dir_find(struct seq_check *s, const uint8_t *ip,
				  uint16_t port, const struct tcpseg *create)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->d[i].sport == port && !memcmp(s->d[i].src, ip, 16))
			return &s->d[i];
	if (!create)
		return NULL;
	assert_true(s->n < 64);
	struct dir_state *d = &s->d[s->n++];
	memset(d, 0, sizeof(*d));
	memcpy(d->src, ip, 16);
	memcpy(d->dst, create->dst, 16);
	d->sport = port;
	d->dport = create->dport;
	return d;
}

static void on_seq(const struct tcpseg *t, void *arg)
{
	struct seq_check *s = arg;
	struct dir_state *d = dir_find(s, t->src, t->sport,
				       (t->flags & 0x02) ? t : NULL);
	assert_non_null(d); /* every direction starts with its SYN */
	if (t->flags & 0x02) {
		d->next = t->seq;
		s->syns++;
	}
	if (d->fin) /* after FIN, only the last ACK */
		assert_true(t->paylen == 0 && !(t->flags & 0x03));
	assert_int_equal(t->seq, d->next);
	d->next += t->paylen + !!(t->flags & 0x02) + !!(t->flags & 0x01);
	if (t->flags & 0x01) {
		d->fin = true;
		s->fins++;
	}
	if (!(t->flags & 0x10))
		return;
	/* ACKs only acknowledge what the peer sent, and never go back. */
	struct dir_state *peer = dir_find(s, t->dst, t->dport, NULL);
	assert_non_null(peer);
	assert_true((int32_t)(t->ack - peer->next) <= 0);
	if (d->has_acked)
		assert_true((int32_t)(t->ack - d->acked) >= 0);
	d->acked = t->ack;
	d->has_acked = true;
}

static void check_seq(struct gen_opts o)
{
	struct cap c = { 0 };
	gen_mem(&o, &c);
	struct seq_check s = { .n = 0 };
	size_t n = each_seg(&c, o.encap ? 50 : 0, on_seq, &s);
	assert_int_equal(n, c.sum.packets);
	assert_int_equal(s.syns, 2 * o.connections);
	assert_int_equal(s.fins, 2 * o.connections);
	assert_int_equal(s.n, 2 * o.connections);
	for (size_t i = 0; i < s.n; i++) { /* every byte and FIN acknowledged */
		struct dir_state *peer =
			dir_find(&s, s.d[i].dst, s.d[i].dport, NULL);
		assert_non_null(peer);
		assert_int_equal(peer->acked, s.d[i].next);
	}
	cap_free(&c);
}

static void test_seq_continuous(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	check_seq(o);
	o.mtu = 700;
	o.resp_body = (struct gen_range){ 50000, 300000 };
	o.rst_ppm = 300000;
	o.goaway = true;
	check_seq(o);
	o.ipv6 = true;
	o.mtu = 1280;
	o.h2c_upgrade = true;
	o.encap = GEN_ENCAP_VXLAN;
	check_seq(o);
}

/* ---- what the endpoints said ------------------------------------------ */

static void test_frame_counts(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	struct cap c = { 0 };
	uint64_t reqs = (uint64_t)o.connections * o.streams;

	gen_mem(&o, &c);
	assert_int_equal(c.sum.streams, reqs);
	assert_int_equal(c.sum.frames[NGHTTP2_HEADERS], 2 * reqs);
	assert_int_equal(c.sum.frames[NGHTTP2_CONTINUATION], 0);
	assert_int_equal(c.sum.frames[NGHTTP2_GOAWAY], 0);
	cap_free(&c);

	/* 3 x 9000 bytes of header values (about 21 KB with Huffman): one
	 * HEADERS + one CONTINUATION per request, every time (each field is
	 * too big for the 4 KiB dynamic table). */
	o.req_headers = 3;
	o.header_size = 9000;
	gen_mem(&o, &c);
	assert_int_equal(c.sum.frames[NGHTTP2_HEADERS], 2 * reqs);
	assert_int_equal(c.sum.frames[NGHTTP2_CONTINUATION], reqs);
	cap_free(&c);

	/* gRPC: request HEADERS, response HEADERS, trailers */
	o = base_opts();
	o.grpc = true;
	o.goaway = true;
	gen_mem(&o, &c);
	assert_int_equal(c.sum.frames[NGHTTP2_HEADERS], 3 * reqs);
	assert_int_equal(c.sum.frames[NGHTTP2_GOAWAY], o.connections);
	cap_free(&c);

	/* h2c upgrade: stream 1's request is HTTP/1.1 */
	o = base_opts();
	o.h2c_upgrade = true;
	gen_mem(&o, &c);
	assert_int_equal(c.sum.frames[NGHTTP2_HEADERS], 2 * reqs - o.connections);
	cap_free(&c);

	/* cancels happen mid-response: large responses, about half */
	o = base_opts();
	o.rst_ppm = 500000;
	o.streams = 40;
	o.resp_body = (struct gen_range){ 200000, 400000 };
	gen_mem(&o, &c);
	uint64_t rst = c.sum.frames[NGHTTP2_RST_STREAM];
	assert_true(rst > 20 && rst < 100);
	cap_free(&c);
}

static void first_pkt(const struct tcpseg *t, void *arg)
{
	size_t *st = arg; /* [0] first packet's payload, [1] packets */
	if (st[1]++ == 0)
		st[0] = t->paylen;
	assert_false(t->flags & 0x02); /* no handshake in a --midstream cut */
}

static void test_impairments(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	struct cap full = { 0 }, c = { 0 };
	gen_mem(&o, &full);

	o.loss_ppm = GEN_PPM; /* 100%: an empty capture */
	gen_mem(&o, &c);
	assert_int_equal(c.sum.packets, 0);
	assert_int_equal(c.sum.lost, full.sum.packets);
	assert_int_equal(c.len, 24);
	cap_free(&c);

	o.loss_ppm = 0;
	o.reorder = 8; /* same packets, other order */
	gen_mem(&o, &c);
	assert_int_equal(c.sum.packets, full.sum.packets);
	assert_int_equal(c.sum.bytes, full.sum.bytes);
	assert_true(memcmp(c.buf, full.buf, ST_MIN(c.len, full.len)) != 0);
	cap_free(&c);

	o.reorder = 0;
	o.midstream = 5;
	gen_mem(&o, &c);
	size_t st[2] = { 0, 0 };
	each_seg(&c, 0, first_pkt, st);
	assert_true(st[0] > 0); /* starts with a payload packet */
	assert_int_equal(st[1], c.sum.packets);
	assert_int_equal(c.sum.skipped + c.sum.packets, full.sum.packets);
	/* per connection: 3 handshake + 4 payload packets at least */
	assert_true(c.sum.skipped >= o.connections * (3 + 4));
	cap_free(&c);
	cap_free(&full);
}

/* ---- --huffman off ----------------------------------------------------- */

/* Deflates name: value with nghttp2 and says whether the |which| string
 * (0 name, 1 value) was Huffman coded: RFC 7541 §5.2, H bit. */
static bool huffman_used(const char *name, const char *value, int which)
{
	nghttp2_hd_deflater *d;
	uint8_t out[512];
	assert_int_equal(nghttp2_hd_deflate_new(&d, 4096), 0);
	nghttp2_nv nv = { (uint8_t *)name, (uint8_t *)value, strlen(name),
			  strlen(value), NGHTTP2_NV_FLAG_NO_INDEX };
	ssize_t n = nghttp2_hd_deflate_hd(d, out, sizeof(out), &nv, 1);
	nghttp2_hd_deflate_del(d);
	assert_true(n > 3);
	/* Literal never indexed, new name: 0x10, then name, then value; all
	 * lengths here fit the 7-bit prefix. */
	assert_int_equal(out[0], 0x10);
	if (which == 0)
		return out[1] & 0x80;
	return out[2 + (out[1] & 0x7f)] & 0x80;
}

static void test_huffman_alphabets(void **state)
{
	(void)state;
	char s[16];
	/* the check itself sees Huffman where it is shorter */
	assert_true(huffman_used("a", "aaaaaaaa", 1));
	for (const char *p = RAW_VALUE; *p; p++) {
		memset(s, *p, 8);
		s[8] = '\0';
		assert_false(huffman_used("a", s, 1));
	}
	for (const char *p = RAW_NAME; *p; p++) { /* worst case: 1 char */
		snprintf(s, sizeof(s), "x-%c", *p);
		assert_false(huffman_used(s, "v", 0));
	}
	for (const char *p = RAW_PATH; *p; p++) {
		snprintf(s, sizeof(s), "/%c", *p);
		assert_false(huffman_used("a", s, 1));
	}
	assert_false(huffman_used("a", RAW_AUTHORITY, 1));
}

/* The strings gen makes with --huffman off, through the real code. */
static void test_huffman_off_strings(void **state)
{
	(void)state;
	struct gen_opts o = base_opts();
	o.huffman = false;
	o.req_headers = 40;
	o.header_size = 20;
	struct gen_rng rng;
	gen_rng_seed(&rng, 7, 1);
	struct gen_msg m;
	assert_int_equal(gen_msg_init(&m, &o, &rng), 0);
	for (uint32_t i = 0; i < o.req_headers; i++) {
		char v[32];
		memcpy(v, m.fixed_values + (size_t)i * o.header_size, 20);
		v[20] = '\0';
		assert_false(huffman_used(m.fixed_names[i], v, 0));
		assert_false(huffman_used(m.fixed_names[i], v, 1));
	}
	struct gen_hdrs b;
	assert_int_equal(hdrs_init(&b, 64, 8192), 0);
	for (int i = 0; i < 50; i++) {
		hdrs_churn(&m, &b, 20);
		const char *path = make_path(&m, &b);
		assert_non_null(path);
		assert_false(huffman_used("a", path, 1));
	}
	assert_false(b.overflow);
	for (size_t i = 0; i < b.n; i++) {
		char nm[32], v[32];
		snprintf(nm, sizeof(nm), "%.*s", (int)b.nv[i].namelen,
			 b.nv[i].name);
		snprintf(v, sizeof(v), "%.*s", (int)b.nv[i].valuelen,
			 b.nv[i].value);
		assert_false(huffman_used(nm, v, 0));
		assert_false(huffman_used(nm, v, 1));
	}
	gen_hdrs_fini(&b);
	gen_msg_fini(&m);
}

/* ---- options ----------------------------------------------------------- */

static void test_parsers(void **state)
{
	(void)state;
	uint32_t ppm;
	assert_int_equal(parse_pct("12.5%", &ppm), 0);
	assert_int_equal(ppm, 125000);
	assert_int_equal(parse_pct("100", &ppm), 0);
	assert_int_equal(ppm, GEN_PPM);
	assert_int_equal(parse_pct("0.0001%", &ppm), 0);
	assert_int_equal(ppm, 1);
	assert_int_not_equal(parse_pct("100.5%", &ppm), 0);
	assert_int_not_equal(parse_pct("-1", &ppm), 0);
	assert_int_not_equal(parse_pct("0.00001", &ppm), 0);
	assert_int_not_equal(parse_pct("5%%", &ppm), 0);

	struct gen_range r;
	assert_int_equal(parse_range("100-5000", &r), 0);
	assert_true(r.lo == 100 && r.hi == 5000);
	assert_int_equal(parse_range("1K-2M", &r), 0);
	assert_true(r.lo == 1024 && r.hi == 2 * 1024 * 1024);
	assert_int_equal(parse_range("77", &r), 0);
	assert_true(r.lo == 77 && r.hi == 77);
	assert_int_not_equal(parse_range("5000-100", &r), 0);
	assert_int_not_equal(parse_range("-5", &r), 0);
	assert_int_not_equal(parse_range("2G", &r), 0);

	struct gen_opts o;
	assert_int_equal(parse_methods("GET,HEAD,PATCH", &o), 0);
	assert_int_equal(o.nmethods, 3);
	assert_string_equal(o.methods[2], "PATCH");
	assert_int_not_equal(parse_methods("GET,,POST", &o), 0);
	assert_int_not_equal(parse_methods("CONNECT", &o), 0);
	assert_int_not_equal(parse_methods("get", &o), 0);
}

static void test_opts_check(void **state)
{
	(void)state;
	char err[256];
	struct gen_opts o;
	gen_opts_default(&o);
	assert_int_equal(gen_opts_check(&o, err, sizeof(err)), 0);
	o.ipv6 = true;
	o.mtu = 1000;
	assert_int_equal(gen_opts_check(&o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--mtu"));
	gen_opts_default(&o);
	o.grpc = o.h2c_upgrade = true;
	assert_int_equal(gen_opts_check(&o, err, sizeof(err)), -EINVAL);
	gen_opts_default(&o);
	o.req_headers = 100;
	o.header_size = 20000;
	assert_int_equal(gen_opts_check(&o, err, sizeof(err)), -EINVAL);
	gen_opts_default(&o);
	o.padding = 256;
	assert_int_equal(gen_opts_check(&o, err, sizeof(err)), -EINVAL);
}

static void test_rng(void **state)
{
	(void)state;
	struct gen_rng a, b;
	gen_rng_seed(&a, 1, 0);
	gen_rng_seed(&b, 1, 1);
	assert_true(gen_rng_next(&a) != gen_rng_next(&b));
	struct gen_range r = { 5, 7 };
	unsigned seen[3] = { 0 };
	for (int i = 0; i < 3000; i++) {
		uint64_t v = gen_rng_range(&a, &r);
		assert_true(v >= 5 && v <= 7);
		seen[v - 5]++;
	}
	for (int i = 0; i < 3; i++)
		assert_true(seen[i] > 800);
	r = (struct gen_range){ 0, UINT64_MAX };
	gen_rng_range(&a, &r); /* full range: no division by zero */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_seed_same_bytes),
		cmocka_unit_test(test_other_seed_other_bytes),
		cmocka_unit_test(test_mtu_respected),
		cmocka_unit_test(test_seq_continuous),
		cmocka_unit_test(test_frame_counts),
		cmocka_unit_test(test_impairments),
		cmocka_unit_test(test_huffman_alphabets),
		cmocka_unit_test(test_huffman_off_strings),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_opts_check),
		cmocka_unit_test(test_rng),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
