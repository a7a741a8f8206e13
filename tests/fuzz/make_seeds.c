/* Writes the seed corpus of fuzz_capture (format: fuzz_capture.c) with the
 * unit tests' packet builder: one packet of every encapsulation the
 * decoder takes, and a few whole TCP conversations (handshake, data both
 * ways, reordering, retransmission, loss, FIN, RST, mid-stream, many
 * flows).
 *
 *   build-fuzz/tests/fuzz/make_seeds tests/fuzz/seeds/capture
 *
 * The output is deterministic; the seeds are committed so the corpus does
 * not depend on a fuzz build. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pktbuild.h"

#define LINK_ETH 0
#define LINK_RAW 3
#define LINK_SLL 4
#define LINK_SLL2 5
#define LINK_NULL 6

struct seed {
	uint8_t b[65536];
	size_t len;
};

static void seed_init(struct seed *s, uint8_t config)
{
	s->b[0] = config;
	s->len = 1;
}

/* One record: link selector, wire-length extra (7-byte units), time step
 * (2 ms units), the packet. */
static void rec(struct seed *s, unsigned link, unsigned extra, uint8_t dt,
		const uint8_t *p, uint32_t len)
{
	if (s->len + 4 + len > sizeof(s->b)) {
		fprintf(stderr, "seed too big\n");
		exit(1);
	}
	uint8_t *o = s->b + s->len;
	o[0] = (uint8_t)(link | (extra << 3));
	o[1] = dt;
	o[2] = (uint8_t)(len >> 8);
	o[3] = (uint8_t)len;
	memcpy(o + 4, p, len);
	s->len += 4 + len;
}

static void put(const char *dir, const char *name, const struct seed *s)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->len, f) != s->len || fclose(f) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* ---- single packets ------------------------------------------------------ */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void tcp4(struct pb *b, uint8_t flags)
{
	pb_ipv4(b, PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1), PB_PROTO_TCP);
	pb_tcp(b, 40000, 443, 1000, 2000, flags, NULL, 0);
	pb_payload(b, h2_preface, sizeof(h2_preface) - 1);
}

static void tcp6(struct pb *b, uint8_t first_next)
{
	uint8_t s[16], d[16];
	pb_ip6addr(s, 2);
	pb_ip6addr(d, 1);
	pb_ipv6(b, s, d, first_next);
}

static void udp4(struct pb *b, uint16_t dport)
{
	pb_ipv4(b, PB_IP4(192, 0, 2, 1), PB_IP4(192, 0, 2, 2), PB_PROTO_UDP);
	pb_udp(b, 50000, dport);
}

static void single(const char *dir, const char *name, unsigned link,
		   const struct pb *b)
{
	struct seed *s = malloc(sizeof(*s));
	seed_init(s, 0x3f);
	rec(s, link, 0, 1, b->b, b->len);
	put(dir, name, s);
	free(s);
}

static void singles(const char *dir)
{
	struct pb b;
	static const uint8_t ipopt[8] = { 1, 1, 7, 7, 4, 0, 0, 0 };
	static const uint8_t tcpopt[12] = { 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7 };

	pb_init(&b); pb_eth(&b, PB_ETH_IPV4); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-eth-ipv4", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4_opts(&b, PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1), PB_PROTO_TCP,
		     ipopt, sizeof(ipopt));
	pb_tcp(&b, 40000, 443, 1, 2, PB_TCP_ACK, tcpopt, sizeof(tcpopt));
	pb_payload(&b, "x", 1); pb_finish(&b);
	single(dir, "pkt-eth-ipv4-options", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_VLAN); pb_vlan(&b, 100, PB_ETH_IPV4);
	tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-vlan", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_QINQ); pb_vlan(&b, 300, PB_ETH_VLAN);
	pb_vlan(&b, 100, PB_ETH_IPV4); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-qinq", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV6); tcp6(&b, PB_PROTO_HOPOPTS);
	pb_ip6_ext(&b, PB_PROTO_HOPOPTS, PB_PROTO_ROUTING, 0);
	pb_ip6_ext(&b, PB_PROTO_ROUTING, PB_PROTO_DSTOPTS, 2);
	pb_ip6_ext(&b, PB_PROTO_DSTOPTS, PB_PROTO_FRAGMENT, 1);
	pb_ip6_frag(&b, PB_PROTO_TCP, 0, 0, 7);
	pb_tcp(&b, 40000, 443, 1, 2, PB_TCP_ACK, NULL, 0);
	pb_payload(&b, h2_preface, sizeof(h2_preface) - 1); pb_finish(&b);
	single(dir, "pkt-ipv6-ext", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV6); tcp6(&b, PB_PROTO_FRAGMENT);
	pb_ip6_frag(&b, PB_PROTO_TCP, 0, 1, 8);
	pb_tcp(&b, 40000, 443, 1, 2, PB_TCP_ACK, NULL, 0); pb_finish(&b);
	single(dir, "pkt-ipv6-fragment", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV4); udp4(&b, 4789); pb_vxlan(&b, 42);
	pb_eth(&b, PB_ETH_IPV4); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-vxlan", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_VLAN); pb_vlan(&b, 7, PB_ETH_IPV4);
	udp4(&b, 6081); pb_geneve(&b, PB_ETH_TEB, 43, 3);
	pb_eth(&b, PB_ETH_VLAN); pb_vlan(&b, 8, PB_ETH_IPV6);
	tcp6(&b, PB_PROTO_TCP);
	pb_tcp(&b, 40000, 443, 1, 2, PB_TCP_ACK, NULL, 0);
	pb_payload(&b, "y", 1); pb_finish(&b);
	single(dir, "pkt-vlan-geneve-teb-vlan-ipv6", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV4); udp4(&b, 6081);
	pb_geneve(&b, PB_ETH_IPV4, 44, 1); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-geneve-ip", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV4); udp4(&b, 4789); pb_vxlan(&b, 1);
	pb_eth(&b, PB_ETH_IPV4); udp4(&b, 6081); pb_geneve(&b, PB_ETH_IPV4, 2, 0);
	tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-vxlan-geneve", LINK_ETH, &b);

	/* One tunnel more than DECODE_MAX_DEPTH (4). */
	pb_init(&b); pb_eth(&b, PB_ETH_IPV4);
	for (int i = 0; i < 5; i++) {
		udp4(&b, 4789); pb_vxlan(&b, (uint32_t)i); pb_eth(&b, PB_ETH_IPV4);
	}
	tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-vxlan-too-deep", LINK_ETH, &b);

	pb_init(&b); pb_sll(&b, PB_ETH_IPV4); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-sll", LINK_SLL, &b);

	pb_init(&b); pb_sll(&b, PB_ETH_VLAN); pb_vlan(&b, 5, PB_ETH_IPV4);
	tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-sll-vlan", LINK_SLL, &b);

	pb_init(&b); pb_sll2(&b, PB_ETH_IPV6); tcp6(&b, PB_PROTO_TCP);
	pb_tcp(&b, 40000, 443, 1, 2, PB_TCP_ACK, NULL, 0);
	pb_payload(&b, "z", 1); pb_finish(&b);
	single(dir, "pkt-sll2", LINK_SLL2, &b);

	pb_init(&b); pb_null(&b, 2); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-null", LINK_NULL, &b);

	pb_init(&b); pb_null(&b, __builtin_bswap32(30)); tcp6(&b, PB_PROTO_TCP);
	pb_tcp(&b, 40000, 443, 1, 2, PB_TCP_ACK, NULL, 0); pb_finish(&b);
	single(dir, "pkt-null-ipv6-swapped", LINK_NULL, &b);

	pb_init(&b); tcp4(&b, PB_TCP_ACK); pb_finish(&b);
	single(dir, "pkt-raw", LINK_RAW, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_IPV4); udp4(&b, 53); pb_zero(&b, 20);
	pb_finish(&b);
	single(dir, "pkt-udp-dns", LINK_ETH, &b);

	pb_init(&b); pb_eth(&b, PB_ETH_ARP); pb_zero(&b, 28); pb_finish(&b);
	single(dir, "pkt-arp", LINK_ETH, &b);
}

/* ---- conversations ---------------------------------------------------------- */

struct conv {
	struct seed *s;
	struct pb_ends e;
	unsigned link; /* always Ethernet frames here */
	int vxlan;     /* wrap frames in VXLAN */
};

static void tx(struct conv *c, unsigned from, uint32_t seq, uint32_t ack,
	       uint8_t flags, const char *data, uint8_t dt, unsigned cut)
{
	struct pb b;
	uint32_t n = data ? (uint32_t)strlen(data) : 0;
	uint32_t len = pb_tcp_frame(&b, &c->e, from, seq, ack, flags, data, n);
	if (c->vxlan) {
		struct pb o;
		pb_init(&o);
		pb_eth(&o, PB_ETH_IPV4);
		udp4(&o, 4789);
		pb_vxlan(&o, 99);
		pb_bytes(&o, b.b, len);
		len = pb_finish(&o);
		memcpy(b.b, o.b, len);
	}
	/* |cut| 7-byte units are left out of the capture (snaplen). */
	uint32_t capl = len > cut * 7 ? len - cut * 7 : 0;
	rec(c->s, LINK_ETH, cut, dt, b.b, capl);
}

static void conversation(struct conv *c, uint32_t cs, uint32_t ss)
{
	const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *r1 = "HTTP/1.1 200 OK\r\n", *r2 = "Content-Length: 4\r\n\r\n",
		   *r3 = "body";
	uint32_t ql = (uint32_t)strlen(req), l1 = (uint32_t)strlen(r1),
		 l2 = (uint32_t)strlen(r2);
	tx(c, 0, cs, 0, PB_TCP_SYN, NULL, 1, 0);
	tx(c, 1, ss, cs + 1, PB_TCP_SYN | PB_TCP_ACK, NULL, 1, 0);
	tx(c, 0, cs + 1, ss + 1, PB_TCP_ACK, NULL, 1, 0);
	tx(c, 0, cs + 1, ss + 1, PB_TCP_ACK | PB_TCP_PSH, req, 1, 0);
	tx(c, 1, ss + 1, cs + 1 + ql, PB_TCP_ACK, r1, 1, 0);
	tx(c, 1, ss + 1 + l1 + l2, cs + 1 + ql, PB_TCP_ACK, r3, 1, 0);
	tx(c, 1, ss + 1 + l1, cs + 1 + ql, PB_TCP_ACK, r2, 1, 0);
	tx(c, 0, cs + 1, ss + 1, PB_TCP_ACK | PB_TCP_PSH, req, 1, 0);
	tx(c, 0, cs + 1 + ql, ss + 5 + l1 + l2, PB_TCP_ACK | PB_TCP_FIN, NULL, 1, 0);
	tx(c, 1, ss + 5 + l1 + l2, cs + 2 + ql, PB_TCP_ACK | PB_TCP_FIN, NULL, 1, 0);
	tx(c, 0, cs + 2 + ql, ss + 6 + l1 + l2, PB_TCP_ACK, NULL, 1, 0);
}

static void conversations(const char *dir)
{
	struct seed *s = malloc(sizeof(*s));
	struct conv c = { .s = s,
			  .e = { { PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1) },
				 { 40000, 443 }, 0 } };

	seed_init(s, 0x7f);
	conversation(&c, 1000, 0xffffff00u);
	put(dir, "conv-http", s);

	/* IPv6, wrapped in VXLAN. */
	seed_init(s, 0x7f);
	c.e.v6 = 1;
	c.vxlan = 1;
	conversation(&c, 0xfffffff0u, 77);
	put(dir, "conv-ipv6-vxlan", s);
	c.e.v6 = 0;
	c.vxlan = 0;

	/* Loss, a long pause (gap timeout), truncation, RST. */
	seed_init(s, 0x3f);
	tx(&c, 0, 10, 0, PB_TCP_SYN, NULL, 1, 0);
	tx(&c, 1, 20, 11, PB_TCP_SYN | PB_TCP_ACK, NULL, 1, 0);
	tx(&c, 0, 11, 21, PB_TCP_ACK, "aaaaaaaa", 1, 0);
	tx(&c, 0, 27, 21, PB_TCP_ACK, "cccccccc", 1, 0); /* 19..27 lost */
	tx(&c, 0, 35, 21, PB_TCP_ACK, "dddddddd", 20, 0); /* gap timeout */
	tx(&c, 0, 43, 21, PB_TCP_ACK, "eeeeeeeeeeeeeeeeeeee", 1, 1); /* cut */
	tx(&c, 1, 21, 63, PB_TCP_ACK, "ok", 1, 0);
	tx(&c, 1, 23, 63, PB_TCP_RST, NULL, 1, 0);
	tx(&c, 0, 63, 23, PB_TCP_ACK, "late", 1, 0);
	put(dir, "conv-loss-truncation-rst", s);

	/* A lost first segment and 60-byte runs after it: the per-flow cap
	 * (100 bytes with this config) gives up the hole. */
	seed_init(s, 0x3f);
	tx(&c, 0, 10, 0, PB_TCP_SYN, NULL, 1, 0);
	{
		char run[61];
		for (uint32_t i = 1; i <= 4; i++) {
			memset(run, (int)('a' + i), 60);
			run[60] = 0;
			tx(&c, 0, 11 + 60 * i, 0, PB_TCP_ACK, run, 1, 0);
		}
	}
	tx(&c, 0, 11, 0, PB_TCP_ACK | PB_TCP_FIN, "lost and found", 1, 0);
	put(dir, "conv-flow-cap", s);

	/* Mid-stream, both directions, overlapping retransmissions with
	 * different bytes, an idle timeout. */
	seed_init(s, 0x7a);
	tx(&c, 1, 5000, 9000, PB_TCP_ACK, "server first", 1, 0);
	tx(&c, 0, 9000, 5012, PB_TCP_ACK, "client", 1, 0);
	tx(&c, 1, 5020, 9006, PB_TCP_ACK, "XXXXYYYY", 1, 0);
	tx(&c, 1, 5016, 9006, PB_TCP_ACK, "ZZZZxxxxyyyy", 1, 0);
	tx(&c, 1, 5012, 9006, PB_TCP_ACK, "abcd", 1, 0);
	tx(&c, 1, 5000, 9006, PB_TCP_ACK, "server first", 255, 0);
	tx(&c, 0, 9006, 5032, PB_TCP_ACK, "again", 1, 0);
	put(dir, "conv-midstream-overlap-timeout", s);

	/* Many flows through a table of two, with the pool nearly empty. */
	seed_init(s, 0x09);
	for (uint16_t i = 0; i < 12; i++) {
		c.e.port[0] = (uint16_t)(41000 + i);
		tx(&c, 0, 100u * i, 0, PB_TCP_SYN, NULL, 1, 0);
		tx(&c, 0, 100u * i + 9, 0, PB_TCP_ACK, "later", 1, 0);
		tx(&c, 1, 7, 0, PB_TCP_ACK, "reply", 1, 0);
		tx(&c, 0, 100u * i + 1, 0, PB_TCP_ACK, "first", 1, 0);
	}
	put(dir, "conv-many-flows-small-pool", s);
	c.e.port[0] = 40000;

	/* Port reuse: a closed connection, then a new SYN on the tuple. */
	seed_init(s, 0x7f);
	conversation(&c, 1000, 2000);
	conversation(&c, 500000, 600000);
	put(dir, "conv-port-reuse", s);

	free(s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	singles(argv[1]);
	conversations(argv[1]);
	return 0;
}
