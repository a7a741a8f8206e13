/* Packet decoding: link layer → VLAN → IP → (UDP tunnel → inner frame)* → TCP.
 * See include/sealtap/decode.h for what is accepted and rejected. */
#include <arpa/inet.h>
#include <string.h>

#include "sealtap/decode.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100
#define ETHERTYPE_TEB 0x6558 /* transparent Ethernet bridging (Geneve) */

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60
#define IPV6_MAX_EXT 8 /* extension headers walked before giving up */

/* The part of the packet still to decode: |cap| bytes present at |p|,
 * |wire| bytes on the wire (>= cap once lengths are known). */
struct cursor {
	const uint8_t *p;
	uint32_t cap;
	uint32_t wire;
};

/* What a packet carried, for the informational counters: each counts
 * packets, so it is incremented once at the end however many headers of
 * the kind were nested. */
#define SEEN_VLAN 0x01
#define SEEN_VXLAN 0x02
#define SEEN_GENEVE 0x04

struct ctx {
	const struct decode_cfg *cfg;
	const uint8_t *base; /* start of the packet, for offsets */
	struct decode_pkt *out;
	struct st_counters *c;
	unsigned depth;
	unsigned seen;    /* SEEN_* */
	uint8_t ip_ver;   /* version of the innermost IP header reached */
};

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static void advance(struct cursor *cur, uint32_t n)
{
	/* Callers checked n <= cur->cap. */
	cur->p += n;
	cur->cap -= n;
	cur->wire = cur->wire >= n ? cur->wire - n : 0;
}

static int decode_ether(struct ctx *x, struct cursor cur);
static int decode_ip_by_version(struct ctx *x, struct cursor cur);
static int decode_ipv4(struct ctx *x, struct cursor cur);
static int decode_ipv6(struct ctx *x, struct cursor cur);

bool decode_link_supported(int linktype)
{
	switch (linktype) {
	case DECODE_LINK_NULL:
	case DECODE_LINK_ETHERNET:
	case DECODE_LINK_RAW:
	case 12: /* LINKTYPE_RAW as DLT_RAW on some platforms */
	case 14: /* DLT_RAW on OpenBSD */
	case DECODE_LINK_SLL:
	case DECODE_LINK_SLL2:
		return true;
	default:
		return false;
	}
}

const char *decode_link_name(int linktype)
{
	switch (linktype) {
	case DECODE_LINK_NULL: return "NULL/loopback";
	case DECODE_LINK_ETHERNET: return "Ethernet";
	case DECODE_LINK_RAW: case 12: case 14: return "raw IP";
	case DECODE_LINK_SLL: return "Linux cooked (SLL)";
	case DECODE_LINK_SLL2: return "Linux cooked v2 (SLL2)";
	default: return "unknown";
	}
}

const char *decode_rc_name(int rc)
{
	switch (rc) {
	case DECODE_OK: return "ok";
	case DECODE_NON_IP: return "non_ip";
	case DECODE_NON_TCP: return "non_tcp";
	case DECODE_TRUNCATED: return "truncated";
	case DECODE_BAD_L2: return "bad_l2";
	case DECODE_BAD_IPV4: return "bad_ipv4";
	case DECODE_BAD_IPV6: return "bad_ipv6";
	case DECODE_BAD_TCP: return "bad_tcp";
	case DECODE_BAD_TUNNEL: return "bad_tunnel";
	case DECODE_FRAGMENT: return "fragment";
	case DECODE_TOO_DEEP: return "too_deep";
	default: return "unknown";
	}
}

/* Dispatches on an ethertype once VLAN tags are gone. The ethertype, not
 * the version nibble, picks the decoder: an IPv4 ethertype over a header
 * whose version is not 4 is a malformed IPv4 header. */
static int decode_ethertype(struct ctx *x, uint16_t type, struct cursor cur)
{
	switch (type) {
	case ETHERTYPE_IPV4:
		return decode_ipv4(x, cur);
	case ETHERTYPE_IPV6:
		return decode_ipv6(x, cur);
	default:
		return DECODE_NON_IP;
	}
}

/* Ethernet II with up to DECODE_MAX_VLAN 802.1Q/802.1ad tags. */
static int decode_ether(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 14)
		return DECODE_TRUNCATED;
	uint16_t type = rd16(cur.p + 12);
	advance(&cur, 14);
	unsigned tags = 0;
	while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ ||
	       type == ETHERTYPE_QINQ_OLD) {
		if (++tags > DECODE_MAX_VLAN)
			return DECODE_BAD_L2;
		if (cur.cap < 4)
			return DECODE_TRUNCATED;
		if (tags == 1 && x->depth == 0)
			x->out->vlan = rd16(cur.p) & 0x0fff;
		x->seen |= SEEN_VLAN;
		type = rd16(cur.p + 2);
		advance(&cur, 4);
	}
	if (type < 0x0600) /* an 802.3 length field: LLC/SNAP, not IP */
		return DECODE_NON_IP;
	return decode_ethertype(x, type, cur);
}

/* TCP header and payload. |cur| covers the IP payload; cur.wire is the
 * payload length the IP header claims. */
static int decode_tcp(struct ctx *x, struct cursor cur)
{
	if (cur.wire < 20)
		return cur.cap < cur.wire ? DECODE_TRUNCATED : DECODE_BAD_TCP;
	if (cur.cap < 20)
		return DECODE_TRUNCATED;
	const uint8_t *h = cur.p;
	uint32_t hlen = (uint32_t)(h[12] >> 4) * 4;
	if (hlen < 20 || hlen > cur.wire)
		return DECODE_BAD_TCP;
	if (hlen > cur.cap)
		return DECODE_TRUNCATED;
	struct decode_pkt *o = x->out;
	o->key.port[0] = rd16(h);
	o->key.port[1] = rd16(h + 2);
	o->key.proto = IPPROTO_TCP_;
	o->l4_off = (uint16_t)(h - x->base);
	o->seq = rd32(h + 4);
	o->ack = rd32(h + 8);
	o->tcp_flags = h[13];
	o->window = rd16(h + 14);
	o->payload = h + hlen;
	o->payload_wire_len = cur.wire - hlen;
	o->payload_len = ST_MIN(cur.cap - hlen, o->payload_wire_len);
	if (o->payload_len < o->payload_wire_len)
		ST_CTR_INC(x->c, decode_payload_truncated);
	return DECODE_OK;
}

/* VXLAN (RFC 7348): 8-byte header, I flag set, then an Ethernet frame. */
static int decode_vxlan(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 8)
		return cur.wire < 8 ? DECODE_BAD_TUNNEL : DECODE_TRUNCATED;
	if (!(cur.p[0] & 0x08))
		return DECODE_BAD_TUNNEL;
	if (x->out->tunnel == DECODE_TUNNEL_NONE) {
		x->out->tunnel = DECODE_TUNNEL_VXLAN;
		x->out->vni = rd32(cur.p + 4) >> 8;
	}
	x->seen |= SEEN_VXLAN;
	advance(&cur, 8);
	return decode_ether(x, cur);
}

/* Geneve (RFC 8926): version 0, options of opt_len*4 bytes, then a frame of
 * the given protocol type (Ethernet, or IP directly). */
static int decode_geneve(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 8)
		return cur.wire < 8 ? DECODE_BAD_TUNNEL : DECODE_TRUNCATED;
	if ((cur.p[0] >> 6) != 0)
		return DECODE_BAD_TUNNEL;
	uint32_t hlen = 8 + (uint32_t)(cur.p[0] & 0x3f) * 4;
	uint16_t proto = rd16(cur.p + 2);
	if (hlen > cur.wire)
		return DECODE_BAD_TUNNEL;
	if (hlen > cur.cap)
		return DECODE_TRUNCATED;
	if (x->out->tunnel == DECODE_TUNNEL_NONE) {
		x->out->tunnel = DECODE_TUNNEL_GENEVE;
		x->out->vni = rd32(cur.p + 4) >> 8;
	}
	x->seen |= SEEN_GENEVE;
	advance(&cur, hlen);
	if (proto == ETHERTYPE_TEB)
		return decode_ether(x, cur);
	if (proto == ETHERTYPE_IPV4 || proto == ETHERTYPE_IPV6)
		return decode_ethertype(x, proto, cur);
	return DECODE_BAD_TUNNEL;
}

/* UDP: only tunnels are of interest; anything else is non-TCP. */
static int decode_udp(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 8)
		return cur.wire < 8 ? DECODE_BAD_TUNNEL : DECODE_TRUNCATED;
	uint16_t dport = rd16(cur.p + 2);
	uint16_t ulen = rd16(cur.p + 4);
	bool vx = x->cfg->vxlan_port && dport == x->cfg->vxlan_port;
	bool gn = x->cfg->geneve_port && dport == x->cfg->geneve_port;
	if (!vx && !gn)
		return DECODE_NON_TCP;
	if (++x->depth > DECODE_MAX_DEPTH)
		return DECODE_TOO_DEEP;
	/* The UDP length bounds the tunnel payload; 0 is allowed by some
	 * encapsulators (RFC 6935 jumbograms), then the IP length rules. */
	if (ulen != 0) {
		if (ulen < 8 || ulen > cur.wire)
			return DECODE_BAD_TUNNEL;
		cur.wire = ulen;
		cur.cap = ST_MIN(cur.cap, ulen);
	}
	advance(&cur, 8);
	return vx ? decode_vxlan(x, cur) : decode_geneve(x, cur);
}

/* Hands the IP payload to the L4 decoder. |proto| is the IP protocol. */
static int decode_l4(struct ctx *x, uint8_t proto, struct cursor cur)
{
	if (proto == IPPROTO_TCP_)
		return decode_tcp(x, cur);
	if (proto == IPPROTO_UDP_)
		return decode_udp(x, cur);
	return DECODE_NON_TCP;
}

/* Sets the key's addresses for the innermost IP header. Each nested tunnel
 * overwrites them, so the last (inner) one wins. */
static void set_addrs(struct ctx *x, uint8_t family, const uint8_t *src,
		      const uint8_t *dst, size_t alen, const uint8_t *l3)
{
	struct decode_pkt *o = x->out;
	memset(o->key.addr, 0, sizeof(o->key.addr));
	memcpy(o->key.addr[0], src, alen);
	memcpy(o->key.addr[1], dst, alen);
	o->key.family = family;
	o->l3_off = (uint16_t)(l3 - x->base);
}

static int decode_ipv4(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 20)
		return DECODE_TRUNCATED;
	const uint8_t *h = cur.p;
	if ((h[0] >> 4) != 4)
		return DECODE_BAD_IPV4;
	x->ip_ver = 4;
	uint32_t hlen = (uint32_t)(h[0] & 0x0f) * 4;
	uint32_t total = rd16(h + 2);
	if (hlen < 20)
		return DECODE_BAD_IPV4;
	/* total == 0 happens with TSO captures; trust the frame length. */
	if (total == 0)
		total = cur.wire;
	/* A length beyond the frame is a lie (the wire length already
	 * includes any truncation), not a truncation. */
	if (total < hlen || total > cur.wire)
		return DECODE_BAD_IPV4;
	if (hlen > cur.cap)
		return DECODE_TRUNCATED;
	uint16_t frag = rd16(h + 6);
	if ((frag & 0x2000) || (frag & 0x1fff))
		return DECODE_FRAGMENT;
	set_addrs(x, FLOW_FAMILY_IPV4, h + 12, h + 16, 4, h);
	uint8_t proto = h[9];
	/* Ethernet pads short frames: cut to the IP length. */
	cur.wire = total;
	cur.cap = ST_MIN(cur.cap, total);
	advance(&cur, hlen);
	return decode_l4(x, proto, cur);
}

static int decode_ipv6(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 40)
		return DECODE_TRUNCATED;
	const uint8_t *h = cur.p;
	if ((h[0] >> 4) != 6)
		return DECODE_BAD_IPV6;
	x->ip_ver = 6;
	uint32_t plen = rd16(h + 4);
	uint8_t next = h[6];
	/* plen == 0: jumbogram or TSO capture; trust the frame length. */
	uint32_t total = plen ? plen + 40 : cur.wire;
	if (total > cur.wire)
		return DECODE_BAD_IPV6;
	set_addrs(x, FLOW_FAMILY_IPV6, h + 8, h + 24, 16, h);
	cur.wire = total;
	cur.cap = ST_MIN(cur.cap, total);
	advance(&cur, 40);
	/* Up to IPV6_MAX_EXT extension headers, then the upper layer. */
	for (unsigned i = 0; i <= IPV6_MAX_EXT; i++) {
		uint32_t len;
		switch (next) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
			if (cur.cap < 2)
				return cur.wire < 2 ? DECODE_BAD_IPV6
						    : DECODE_TRUNCATED;
			len = ((uint32_t)cur.p[1] + 1) * 8;
			break;
		case IPPROTO_AH_:
			if (cur.cap < 2)
				return cur.wire < 2 ? DECODE_BAD_IPV6
						    : DECODE_TRUNCATED;
			len = ((uint32_t)cur.p[1] + 2) * 4;
			break;
		case IPPROTO_FRAGMENT_:
			if (cur.cap < 8)
				return cur.wire < 8 ? DECODE_BAD_IPV6
						    : DECODE_TRUNCATED;
			/* RFC 8200 §4.5: offset 0 and M clear is an atomic
			 * fragment, i.e. a whole packet. */
			if ((rd16(cur.p + 2) & 0xfff9) != 0)
				return DECODE_FRAGMENT;
			len = 8;
			break;
		default:
			return decode_l4(x, next, cur);
		}
		if (i == IPV6_MAX_EXT)
			break;
		if (len > cur.wire)
			return DECODE_BAD_IPV6;
		if (len > cur.cap)
			return DECODE_TRUNCATED;
		next = cur.p[0];
		advance(&cur, len);
	}
	return DECODE_BAD_IPV6;
}

static int decode_ip_by_version(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 1)
		return DECODE_TRUNCATED;
	switch (cur.p[0] >> 4) {
	case 4:
		return decode_ipv4(x, cur);
	case 6:
		return decode_ipv6(x, cur);
	default:
		return DECODE_NON_IP;
	}
}

/* SLL (16-byte header, protocol at offset 14) and SLL2 (20 bytes, protocol
 * at offset 0): the protocol field is an ethertype. */
static int decode_sll(struct ctx *x, struct cursor cur, bool v2)
{
	uint32_t hlen = v2 ? 20 : 16;
	if (cur.cap < hlen)
		return DECODE_TRUNCATED;
	uint16_t type = rd16(cur.p + (v2 ? 0 : 14));
	advance(&cur, hlen);
	if (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ) {
		if (cur.cap < 4)
			return DECODE_TRUNCATED;
		x->out->vlan = rd16(cur.p) & 0x0fff;
		x->seen |= SEEN_VLAN;
		type = rd16(cur.p + 2);
		advance(&cur, 4);
	}
	return decode_ethertype(x, type, cur);
}

/* BSD loopback: 4-byte address family in the capturing host's order. */
static int decode_null(struct ctx *x, struct cursor cur)
{
	if (cur.cap < 4)
		return DECODE_TRUNCATED;
	uint32_t fam;
	memcpy(&fam, cur.p, 4);
	if (fam > 0xffff)
		fam = __builtin_bswap32(fam);
	advance(&cur, 4);
	switch (fam) {
	case 2: /* AF_INET everywhere */
	case 10: case 24: case 28: case 30: /* AF_INET6: Linux, BSDs, macOS */
		return decode_ip_by_version(x, cur);
	default:
		return DECODE_NON_IP;
	}
}

static void count_outcome(struct st_counters *c, int rc)
{
	switch (rc) {
	case DECODE_OK: ST_CTR_INC(c, decode_tcp); break;
	case DECODE_NON_IP: ST_CTR_INC(c, decode_non_ip); break;
	case DECODE_NON_TCP: ST_CTR_INC(c, decode_non_tcp); break;
	case DECODE_TRUNCATED: ST_CTR_INC(c, decode_truncated); break;
	case DECODE_BAD_L2: ST_CTR_INC(c, decode_bad_l2); break;
	case DECODE_BAD_IPV4: ST_CTR_INC(c, decode_bad_ipv4); break;
	case DECODE_BAD_IPV6: ST_CTR_INC(c, decode_bad_ipv6); break;
	case DECODE_BAD_TCP: ST_CTR_INC(c, decode_bad_tcp); break;
	case DECODE_BAD_TUNNEL: ST_CTR_INC(c, decode_bad_tunnel); break;
	case DECODE_FRAGMENT: ST_CTR_INC(c, decode_fragment); break;
	case DECODE_TOO_DEEP: ST_CTR_INC(c, decode_too_deep); break;
	default: break;
	}
}

int decode_packet(const struct decode_cfg *cfg, int link, const uint8_t *p,
		  uint32_t caplen, uint32_t wirelen, struct decode_pkt *out,
		  struct st_counters *c)
{
	struct ctx x = { .cfg = cfg, .base = p, .out = out, .c = c };
	struct cursor cur = { .p = p, .cap = caplen,
			      .wire = ST_MAX(wirelen, caplen) };
	memset(out, 0, sizeof(*out));
	int rc;
	switch (link) {
	case DECODE_LINK_ETHERNET:
		rc = decode_ether(&x, cur);
		break;
	case DECODE_LINK_RAW:
	case 12:
	case 14:
		rc = decode_ip_by_version(&x, cur);
		break;
	case DECODE_LINK_SLL:
		rc = decode_sll(&x, cur, false);
		break;
	case DECODE_LINK_SLL2:
		rc = decode_sll(&x, cur, true);
		break;
	case DECODE_LINK_NULL:
		rc = decode_null(&x, cur);
		break;
	default:
		rc = DECODE_BAD_L2;
		break;
	}
	count_outcome(c, rc);
	if (x.seen & SEEN_VLAN)
		ST_CTR_INC(c, decode_vlan);
	if (x.seen & SEEN_VXLAN)
		ST_CTR_INC(c, decode_vxlan);
	if (x.seen & SEEN_GENEVE)
		ST_CTR_INC(c, decode_geneve);
	if (x.ip_ver == 6)
		ST_CTR_INC(c, decode_ipv6);
	return rc;
}
