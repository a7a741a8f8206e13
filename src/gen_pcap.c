/* sealtap gen: Ethernet frames and the pcap file.
 *
 * Frames are Ethernet II / IPv4 or IPv6 / TCP with valid checksums,
 * optionally inside VXLAN (RFC 7348) or Geneve (RFC 8926) over
 * IPv4/UDP, the way cloud packet mirroring delivers them. The file is
 * classic pcap, LINKTYPE_ETHERNET, always written little-endian so that
 * the bytes do not depend on the machine that wrote them.
 */
#include <errno.h>
#include <string.h>

#include "gen_priv.h"

#define ETH_HDR 14
#define IP4_HDR 20
#define IP6_HDR 40
#define UDP_HDR 8
#define TUN_HDR 8 /* VXLAN, and Geneve without options */
#define OUTER_HDR (ETH_HDR + IP4_HDR + UDP_HDR + TUN_HDR)
#define TCP_HDR 20
#define TCP_SYN_OPTS 12
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_TEB 0x6558 /* Geneve protocol type: an Ethernet frame */
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PORT_VXLAN 4789
#define PORT_GENEVE 6081
#define WSCALE 7
#define WINDOW_SCALED 8192 /* 1 MiB with WSCALE 7 */
#define SNAPLEN 262144
#define LINKTYPE_ETHERNET 1

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* RFC 1071 one's complement sum, continued from |sum|. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t put_eth(uint8_t *p, const uint8_t *dst, const uint8_t *src,
		      uint16_t type)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	put16(p + 12, type);
	return ETH_HDR;
}

/* IPv4 header, DF set, with checksum. */
static size_t put_ip4(uint8_t *p, const uint8_t *src, const uint8_t *dst,
		      uint8_t proto, uint8_t ttl, uint16_t id, size_t payload)
{
	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (uint16_t)(IP4_HDR + payload));
	put16(p + 4, id);
	put16(p + 6, 0x4000);
	p[8] = ttl;
	p[9] = proto;
	put16(p + 10, 0);
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	put16(p + 10, csum_fold(csum_add(0, p, IP4_HDR)));
	return IP4_HDR;
}

static size_t put_ip6(uint8_t *p, const uint8_t *src, const uint8_t *dst,
		      uint8_t hops, uint32_t flow, size_t payload)
{
	put32(p, 0x60000000u | (flow & 0xfffff));
	put16(p + 4, (uint16_t)payload);
	p[6] = PROTO_TCP;
	p[7] = hops;
	memcpy(p + 8, src, 16);
	memcpy(p + 24, dst, 16);
	return IP6_HDR;
}

/* SYN options: MSS, SACK permitted, window scale (RFC 9293 §3.7.1,
 * RFC 2018, RFC 7323), padded with NOPs to 12 bytes. */
static size_t put_syn_opts(uint8_t *p, uint16_t mss)
{
	static const uint8_t rest[8] = { 1, 1, 4, 2, 1, 3, 3, WSCALE };
	p[0] = 2;
	p[1] = 4;
	put16(p + 2, mss);
	memcpy(p + 4, rest, sizeof(rest));
	return TCP_SYN_OPTS;
}

static size_t put_tcp(uint8_t *p, const struct gen_conn *c,
		      const struct gen_seg *s)
{
	size_t hl = TCP_HDR;
	put16(p, c->port[s->dir]);
	put16(p + 2, c->port[!s->dir]);
	put32(p + 4, s->seq);
	put32(p + 8, s->ack);
	if (s->flags & GEN_TCP_SYN)
		hl += put_syn_opts(p + TCP_HDR, c->mss);
	p[12] = (uint8_t)((hl / 4) << 4);
	p[13] = s->flags;
	/* RFC 7323 §2.2: the window in a SYN is never scaled. */
	put16(p + 14, (s->flags & GEN_TCP_SYN) ? 65535 : WINDOW_SCALED);
	put16(p + 16, 0);
	put16(p + 18, 0);
	if (s->len) /* handshake segments come before any turn buffer */
		memcpy(p + hl, c->turn_buf.p + s->off, s->len);
	return hl + s->len;
}

/* TCP checksum over the pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1). */
static void tcp_csum(uint8_t *tcp, size_t len, const uint8_t *src,
		     const uint8_t *dst, size_t alen)
{
	uint32_t sum = csum_add(0, src, alen);
	sum = csum_add(sum, dst, alen);
	sum += (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff) + PROTO_TCP;
	put16(tcp + 16, csum_fold(csum_add(sum, tcp, len)));
}

/* Ethernet + IP + TCP of segment |s| at |p|; returns the frame length. */
static size_t inner_frame(uint8_t *p, struct gen_conn *c,
			  const struct gen_seg *s)
{
	int d = s->dir;
	bool v6 = c->o->ipv6;
	/* Clients are several hops away, servers next door. */
	uint8_t ttl = d == GEN_CLIENT ? 57 : 64;
	size_t n = put_eth(p, c->mac[!d], c->mac[d],
			   v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
	size_t ip = n, iphl = v6 ? IP6_HDR : IP4_HDR;
	size_t tcplen = put_tcp(p + ip + iphl, c, s);
	if (v6)
		put_ip6(p + ip, c->ip[d], c->ip[!d], ttl, c->index * 2654435761u,
			tcplen);
	else
		put_ip4(p + ip, c->ip[d], c->ip[!d], PROTO_TCP, ttl,
			c->ip_id[d]++, tcplen);
	tcp_csum(p + ip + iphl, tcplen, c->ip[d], c->ip[!d], v6 ? 16 : 4);
	return ip + iphl + tcplen;
}

/* Outer Ethernet / IPv4 / UDP / VXLAN or Geneve in front of an inner
 * frame of |inner| bytes. UDP checksum zero, as RFC 7348 §5 allows and
 * mirrors send. */
static void outer_headers(uint8_t *p, const struct gen_conn *c, size_t inner)
{
	static const uint8_t mac_src[6] = { 0x02, 0x5e, 0xa1, 0xff, 0x00, 0x01 };
	static const uint8_t mac_dst[6] = { 0x02, 0x5e, 0xa1, 0xff, 0x00, 0x02 };
	static const uint8_t vtep_src[4] = { 192, 168, 255, 1 };
	static const uint8_t vtep_dst[4] = { 192, 168, 255, 2 };
	bool vxlan = c->o->encap == GEN_ENCAP_VXLAN;
	size_t udp_len = UDP_HDR + TUN_HDR + inner;
	size_t n = put_eth(p, mac_dst, mac_src, ETHERTYPE_IPV4);
	n += put_ip4(p + n, vtep_src, vtep_dst, PROTO_UDP, 64, 0, udp_len);
	put16(p + n, c->outer_sport);
	put16(p + n + 2, vxlan ? PORT_VXLAN : PORT_GENEVE);
	put16(p + n + 4, (uint16_t)udp_len);
	put16(p + n + 6, 0);
	uint8_t *t = p + n + UDP_HDR;
	memset(t, 0, TUN_HDR);
	if (vxlan)
		t[0] = 0x08; /* I flag: VNI valid */
	else
		put16(t + 2, ETHERTYPE_TEB);
	t[4] = (uint8_t)(c->o->vni >> 16);
	t[5] = (uint8_t)(c->o->vni >> 8);
	t[6] = (uint8_t)c->o->vni;
}

size_t gen_pcap_frame(struct gen_conn *c, const struct gen_seg *s,
		      uint8_t *buf)
{
	if (c->o->encap == GEN_ENCAP_NONE)
		return inner_frame(buf, c, s);
	size_t inner = inner_frame(buf + OUTER_HDR, c, s);
	outer_headers(buf, c, inner);
	return OUTER_HDR + inner;
}

static void le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int gen_pcap_write_header(FILE *f, bool nanosecond)
{
	uint8_t h[24];
	le32(h, nanosecond ? 0xa1b23c4d : 0xa1b2c3d4);
	h[4] = 2; /* version 2.4 */
	h[5] = 0;
	h[6] = 4;
	h[7] = 0;
	le32(h + 8, 0);  /* thiszone */
	le32(h + 12, 0); /* sigfigs */
	le32(h + 16, SNAPLEN);
	le32(h + 20, LINKTYPE_ETHERNET);
	return fwrite(h, sizeof(h), 1, f) == 1 ? 0 : -EIO;
}

int gen_pcap_write_packet(FILE *f, bool nanosecond, uint64_t ts_ns,
			  const uint8_t *frame, size_t len)
{
	uint8_t h[16];
	uint64_t frac = ts_ns % 1000000000u;
	le32(h, (uint32_t)(ts_ns / 1000000000u));
	le32(h + 4, (uint32_t)(nanosecond ? frac : frac / 1000));
	le32(h + 8, (uint32_t)len);
	le32(h + 12, (uint32_t)len);
	if (fwrite(h, sizeof(h), 1, f) != 1 || fwrite(frame, len, 1, f) != 1)
		return -EIO;
	return 0;
}
