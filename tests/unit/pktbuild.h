/* Test packet builder: Ethernet / 802.1Q / QinQ, SLL, SLL2, NULL and raw
 * link headers, IPv4 (with options), IPv6 (with extension headers), UDP,
 * VXLAN, Geneve and TCP (with options), for the unit tests and the fuzz
 * seed generator. Header-only, no allocation.
 *
 * Headers are appended outermost first. Length fields (IPv4 total length,
 * IPv6 payload length, UDP length) are left open and filled by pb_finish()
 * from where the packet ends, so tunnels nest naturally:
 *
 *   struct pb b;
 *   pb_init(&b);
 *   pb_eth(&b, PB_ETH_IPV4);
 *   pb_ipv4(&b, PB_IP4(192, 0, 2, 1), PB_IP4(192, 0, 2, 2), PB_PROTO_UDP);
 *   pb_udp(&b, 40000, 4789);
 *   pb_vxlan(&b, 42);
 *   pb_eth(&b, PB_ETH_IPV4);
 *   pb_ipv4(&b, PB_IP4(10, 0, 0, 1), PB_IP4(10, 0, 0, 2), PB_PROTO_TCP);
 *   pb_tcp(&b, 40000, 443, 1000, 0, PB_TCP_ACK, NULL, 0);
 *   pb_payload(&b, "hello", 5);
 *   uint32_t len = pb_finish(&b);
 *
 * Every pb_* appender returns the offset of what it wrote, so a test can
 * corrupt a field afterwards (b.b[off + 9] = 17 ...). Checksums are left
 * zero: the decoder never looks at them, like the mirrors we tap.
 */
#ifndef SEALTAP_TESTS_PKTBUILD_H
#define SEALTAP_TESTS_PKTBUILD_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define PB_MAX 9216
#define PB_MAX_OPEN 16

#define PB_ETH_IPV4 0x0800
#define PB_ETH_IPV6 0x86dd
#define PB_ETH_ARP 0x0806
#define PB_ETH_VLAN 0x8100
#define PB_ETH_QINQ 0x88a8
#define PB_ETH_TEB 0x6558

#define PB_PROTO_HOPOPTS 0
#define PB_PROTO_ICMP 1
#define PB_PROTO_TCP 6
#define PB_PROTO_UDP 17
#define PB_PROTO_ROUTING 43
#define PB_PROTO_FRAGMENT 44
#define PB_PROTO_ICMPV6 58
#define PB_PROTO_NONE 59
#define PB_PROTO_DSTOPTS 60

#define PB_TCP_FIN 0x01
#define PB_TCP_SYN 0x02
#define PB_TCP_RST 0x04
#define PB_TCP_PSH 0x08
#define PB_TCP_ACK 0x10

/* An IPv4 address in host order, e.g. PB_IP4(10, 0, 0, 1). */
#define PB_IP4(a, b, c, d)                                                     \
	(((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | \
	 (uint32_t)(d))

enum pb_open_kind { PB_OPEN_IPV4 = 1, PB_OPEN_IPV6 = 2, PB_OPEN_UDP = 3 };

struct pb {
	uint8_t b[PB_MAX];
	uint32_t len;
	struct {
		uint8_t kind; /* enum pb_open_kind */
		uint32_t off;
	} open[PB_MAX_OPEN];
	unsigned nopen;
};

static inline void pb_init(struct pb *b)
{
	b->len = 0;
	b->nopen = 0;
}

static inline uint8_t *pb_room(struct pb *b, uint32_t n)
{
	assert(b->len + n <= PB_MAX);
	uint8_t *p = b->b + b->len;
	b->len += n;
	return p;
}

static inline void pb_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pb_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t pb_bytes(struct pb *b, const void *p, uint32_t n)
{
	uint32_t off = b->len;
	if (n)
		memcpy(pb_room(b, n), p, n);
	return off;
}

static inline uint32_t pb_zero(struct pb *b, uint32_t n)
{
	uint32_t off = b->len;
	memset(pb_room(b, n), 0, n);
	return off;
}

static inline void pb_open(struct pb *b, enum pb_open_kind kind, uint32_t off)
{
	assert(b->nopen < PB_MAX_OPEN);
	b->open[b->nopen].kind = (uint8_t)kind;
	b->open[b->nopen].off = off;
	b->nopen++;
}

/* ---- link layers --------------------------------------------------- */

/* Ethernet II: dst 02:00:00:00:00:02, src 02:00:00:00:00:01, |type|. For
 * tagged frames pass the TPID (PB_ETH_VLAN / PB_ETH_QINQ) and add tags with
 * pb_vlan(). */
static inline uint32_t pb_eth(struct pb *b, uint16_t type)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
	uint32_t off = pb_bytes(b, macs, 12);
	pb_put16(pb_room(b, 2), type);
	return off;
}

/* One 802.1Q/802.1ad tag: TCI with |vid|, then the next ethertype. */
static inline uint32_t pb_vlan(struct pb *b, uint16_t vid, uint16_t type)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 4);
	pb_put16(p, (uint16_t)(vid & 0x0fff));
	pb_put16(p + 2, type);
	return off;
}

/* Linux cooked v1: packet type, ARPHRD_ETHER, address, protocol. */
static inline uint32_t pb_sll(struct pb *b, uint16_t proto)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 16);
	memset(p, 0, 16);
	pb_put16(p, 0);       /* to us */
	pb_put16(p + 2, 1);   /* ARPHRD_ETHER */
	pb_put16(p + 4, 6);   /* address length */
	p[6] = 2, p[11] = 1;  /* address */
	pb_put16(p + 14, proto);
	return off;
}

/* Linux cooked v2: protocol first, then ifindex, hatype, type, address. */
static inline uint32_t pb_sll2(struct pb *b, uint16_t proto)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 20);
	memset(p, 0, 20);
	pb_put16(p, proto);
	pb_put32(p + 4, 3);   /* interface index */
	pb_put16(p + 8, 1);   /* ARPHRD_ETHER */
	p[10] = 0;            /* to us */
	p[11] = 6;            /* address length */
	p[12] = 2, p[17] = 1; /* address */
	return off;
}

/* BSD loopback: the address family in the capturing host's byte order. */
static inline uint32_t pb_null(struct pb *b, uint32_t family)
{
	return pb_bytes(b, &family, 4);
}

/* ---- IP ------------------------------------------------------------ */

/* IPv4 with |optlen| bytes of options (a multiple of 4), DF set, total
 * length filled by pb_finish(). */
static inline uint32_t pb_ipv4_opts(struct pb *b, uint32_t src, uint32_t dst,
				    uint8_t proto, const void *opts,
				    uint32_t optlen)
{
	assert(optlen % 4 == 0 && optlen <= 40);
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 20);
	memset(p, 0, 20);
	p[0] = (uint8_t)(0x40 | ((20 + optlen) / 4));
	pb_put16(p + 4, 0x1234); /* id */
	pb_put16(p + 6, 0x4000); /* DF */
	p[8] = 64;
	p[9] = proto;
	pb_put32(p + 12, src);
	pb_put32(p + 16, dst);
	pb_bytes(b, opts, optlen);
	pb_open(b, PB_OPEN_IPV4, off);
	return off;
}

static inline uint32_t pb_ipv4(struct pb *b, uint32_t src, uint32_t dst,
			       uint8_t proto)
{
	return pb_ipv4_opts(b, src, dst, proto, NULL, 0);
}

/* An IPv6 address 2001:db8::|last|. */
static inline void pb_ip6addr(uint8_t out[16], uint16_t last)
{
	static const uint8_t pfx[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	memcpy(out, pfx, 16);
	out[14] = (uint8_t)(last >> 8);
	out[15] = (uint8_t)last;
}

/* IPv6; |next| is the first extension header or the upper protocol. */
static inline uint32_t pb_ipv6(struct pb *b, const uint8_t src[16],
			       const uint8_t dst[16], uint8_t next)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 40);
	memset(p, 0, 40);
	p[0] = 0x60;
	p[6] = next;
	p[7] = 64;
	memcpy(p + 8, src, 16);
	memcpy(p + 24, dst, 16);
	pb_open(b, PB_OPEN_IPV6, off);
	return off;
}

/* Hop-by-hop, routing or destination options: (|len8| + 1) * 8 bytes. The
 * body is PadN padding (hop-by-hop/dest) or a type 4 (segment routing)
 * header with no segments left (routing). */
static inline uint32_t pb_ip6_ext(struct pb *b, uint8_t type, uint8_t next,
				  uint8_t len8)
{
	uint32_t n = ((uint32_t)len8 + 1) * 8;
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, n);
	memset(p, 0, n);
	p[0] = next;
	p[1] = len8;
	if (type == PB_PROTO_ROUTING) {
		p[2] = 4; /* routing type: SRH */
		p[3] = 0; /* segments left */
	} else {
		p[2] = 1; /* PadN */
		p[3] = (uint8_t)(n - 4);
	}
	return off;
}

/* Fragment header; |frag_off| in 8-byte units. Offset 0 with |more| clear
 * is an atomic fragment (RFC 8200 §4.5). */
static inline uint32_t pb_ip6_frag(struct pb *b, uint8_t next,
				   uint16_t frag_off, int more, uint32_t id)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 8);
	p[0] = next;
	p[1] = 0;
	pb_put16(p + 2, (uint16_t)((frag_off << 3) | (more ? 1 : 0)));
	pb_put32(p + 4, id);
	return off;
}

/* ---- UDP and tunnels ------------------------------------------------ */

static inline uint32_t pb_udp(struct pb *b, uint16_t sport, uint16_t dport)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 8);
	memset(p, 0, 8);
	pb_put16(p, sport);
	pb_put16(p + 2, dport);
	pb_open(b, PB_OPEN_UDP, off);
	return off;
}

/* VXLAN (RFC 7348) with the I flag; an Ethernet frame follows. */
static inline uint32_t pb_vxlan(struct pb *b, uint32_t vni)
{
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 8);
	memset(p, 0, 8);
	p[0] = 0x08;
	pb_put32(p + 4, vni << 8);
	return off;
}

/* Geneve (RFC 8926) version 0 with |optwords| 4-byte words of options
 * (one TLV per word run, class 0x0103), then a frame of type |proto|
 * (PB_ETH_TEB for Ethernet, or PB_ETH_IPV4/IPV6 for IP directly). */
static inline uint32_t pb_geneve(struct pb *b, uint16_t proto, uint32_t vni,
				 uint8_t optwords)
{
	assert(optwords <= 63);
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 8);
	memset(p, 0, 8);
	p[0] = optwords;
	pb_put16(p + 2, proto);
	pb_put32(p + 4, vni << 8);
	if (optwords) {
		uint8_t *o = pb_room(b, optwords * 4u);
		memset(o, 0, optwords * 4u);
		pb_put16(o, 0x0103);
		o[2] = 0x80;
		o[3] = (uint8_t)(optwords - 1); /* body length in words */
	}
	return off;
}

/* ---- TCP ------------------------------------------------------------ */

/* TCP with |optlen| bytes of options (a multiple of 4). */
static inline uint32_t pb_tcp(struct pb *b, uint16_t sport, uint16_t dport,
			      uint32_t seq, uint32_t ack, uint8_t flags,
			      const void *opts, uint32_t optlen)
{
	assert(optlen % 4 == 0 && optlen <= 40);
	uint32_t off = b->len;
	uint8_t *p = pb_room(b, 20);
	memset(p, 0, 20);
	pb_put16(p, sport);
	pb_put16(p + 2, dport);
	pb_put32(p + 4, seq);
	pb_put32(p + 8, ack);
	p[12] = (uint8_t)(((20 + optlen) / 4) << 4);
	p[13] = flags;
	pb_put16(p + 14, 65535);
	pb_bytes(b, opts, optlen);
	return off;
}

/* Typical SYN options: MSS 1460, SACK permitted, timestamps, NOP,
 * wscale 7. 20 bytes. */
static inline const uint8_t *pb_tcp_syn_opts(void)
{
	static const uint8_t o[20] = {
		2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
	};
	return o;
}

static inline uint32_t pb_payload(struct pb *b, const void *p, uint32_t n)
{
	return pb_bytes(b, p, n);
}

/* Fills the open length fields from the current end of the packet and
 * returns the packet length. */
static inline uint32_t pb_finish(struct pb *b)
{
	for (unsigned i = 0; i < b->nopen; i++) {
		uint32_t off = b->open[i].off;
		uint32_t n = b->len - off;
		switch (b->open[i].kind) {
		case PB_OPEN_IPV4:
			pb_put16(b->b + off + 2, (uint16_t)n);
			break;
		case PB_OPEN_IPV6:
			pb_put16(b->b + off + 4, (uint16_t)(n - 40));
			break;
		case PB_OPEN_UDP:
			pb_put16(b->b + off + 4, (uint16_t)n);
			break;
		}
	}
	b->nopen = 0;
	return b->len;
}

/* ---- whole packets --------------------------------------------------- */

/* One endpoint pair of a TCP connection; ports and IPv4 addresses in host
 * order. |v6| selects 2001:db8::|a4 & 0xffff| addresses instead. */
struct pb_ends {
	uint32_t a4[2];
	uint16_t port[2];
	int v6;
};

/* An Ethernet frame carrying one TCP segment from endpoint |from| of |e| to
 * the other. Returns the frame length. */
static inline uint32_t pb_tcp_frame(struct pb *b, const struct pb_ends *e,
				    unsigned from, uint32_t seq, uint32_t ack,
				    uint8_t flags, const void *payload,
				    uint32_t plen)
{
	unsigned to = from ^ 1;
	pb_init(b);
	if (e->v6) {
		uint8_t s[16], d[16];
		pb_ip6addr(s, (uint16_t)e->a4[from]);
		pb_ip6addr(d, (uint16_t)e->a4[to]);
		pb_eth(b, PB_ETH_IPV6);
		pb_ipv6(b, s, d, PB_PROTO_TCP);
	} else {
		pb_eth(b, PB_ETH_IPV4);
		pb_ipv4(b, e->a4[from], e->a4[to], PB_PROTO_TCP);
	}
	if (flags & PB_TCP_SYN)
		pb_tcp(b, e->port[from], e->port[to], seq, ack, flags,
		       pb_tcp_syn_opts(), 20);
	else
		pb_tcp(b, e->port[from], e->port[to], seq, ack, flags, NULL, 0);
	pb_payload(b, payload, plen);
	return pb_finish(b);
}

#endif
