/* Tests for src/decode_pkt.c through decode_packet().
 *
 * Every encapsulation the decoder accepts is built with pktbuild.h and
 * decoded whole, cut at every length short of its TCP payload (each must
 * be DECODE_TRUNCATED) and cut inside its payload (accepted, payload
 * truncated). Rejections each have a case. Every case checks the whole
 * counter array: exactly one outcome counter per packet, plus the
 * informational counters it names, and nothing else.
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
#include "pktbuild.h"

/* ---- counter expectations ------------------------------------------- */

struct cexp {
	enum st_counter id;
	uint64_t v;
};
#define CEXP_END { ST_CTR__COUNT, 0 }
/* A list of (counter, value) pairs; counters not named must be zero. */
#define CTRS(...) ((const struct cexp[]){ __VA_ARGS__ CEXP_END })
#define C(name, v) { ST_CTR_##name, (v) },

static const enum st_counter outcome_ctr[] = {
	ST_CTR_decode_tcp,        ST_CTR_decode_non_ip,
	ST_CTR_decode_non_tcp,    ST_CTR_decode_truncated,
	ST_CTR_decode_bad_l2,     ST_CTR_decode_bad_ipv4,
	ST_CTR_decode_bad_ipv6,   ST_CTR_decode_bad_tcp,
	ST_CTR_decode_bad_tunnel, ST_CTR_decode_fragment,
	ST_CTR_decode_too_deep,
};

static enum st_counter rc_counter(int rc)
{
	switch (rc) {
	case DECODE_OK: return ST_CTR_decode_tcp;
	case DECODE_NON_IP: return ST_CTR_decode_non_ip;
	case DECODE_NON_TCP: return ST_CTR_decode_non_tcp;
	case DECODE_TRUNCATED: return ST_CTR_decode_truncated;
	case DECODE_BAD_L2: return ST_CTR_decode_bad_l2;
	case DECODE_BAD_IPV4: return ST_CTR_decode_bad_ipv4;
	case DECODE_BAD_IPV6: return ST_CTR_decode_bad_ipv6;
	case DECODE_BAD_TCP: return ST_CTR_decode_bad_tcp;
	case DECODE_BAD_TUNNEL: return ST_CTR_decode_bad_tunnel;
	case DECODE_FRAGMENT: return ST_CTR_decode_fragment;
	case DECODE_TOO_DEEP: return ST_CTR_decode_too_deep;
	}
	fail_msg("unknown rc %d", rc);
	return ST_CTR__COUNT;
}

static bool is_outcome(unsigned id)
{
	for (size_t i = 0; i < ST_ARRAY_SIZE(outcome_ctr); i++)
		if (outcome_ctr[i] == id)
			return true;
	return false;
}

/* Exactly one outcome counter is set, to 1. */
static void assert_one_outcome(const struct st_counters *c, int rc)
{
	unsigned n = 0;
	for (unsigned i = 0; i < ST_CTR__COUNT; i++)
		if (is_outcome(i))
			n += (unsigned)c->v[i];
	assert_int_equal(n, 1);
	assert_int_equal(c->v[rc_counter(rc)], 1);
}

/* The whole counter array matches: the outcome of |rc| is 1, |extra| as
 * listed, everything else 0. */
static void assert_counters(const struct st_counters *c, int rc,
			    const struct cexp *extra)
{
	uint64_t want[ST_CTR__COUNT] = { 0 };
	want[rc_counter(rc)] = 1;
	for (; extra && extra->id != ST_CTR__COUNT; extra++)
		want[extra->id] = extra->v;
	for (unsigned i = 0; i < ST_CTR__COUNT; i++)
		if (c->v[i] != want[i])
			fail_msg("counter %s = %llu, want %llu",
				 counters_name(i), (unsigned long long)c->v[i],
				 (unsigned long long)want[i]);
}

static const struct decode_cfg cfg_default = DECODE_CFG_DEFAULT;

/* Decodes and checks rc and the counters; returns rc. */
static int decode_check(int link, const uint8_t *p, uint32_t caplen,
			uint32_t wirelen, struct decode_pkt *out, int want_rc,
			const struct cexp *extra)
{
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	int rc = decode_packet(&cfg_default, link, p, caplen, wirelen, out, &c);
	if (rc != want_rc)
		fail_msg("decode rc %s (%d), want %s (%d)", decode_rc_name(rc),
			 rc, decode_rc_name(want_rc), want_rc);
	assert_one_outcome(&c, rc);
	assert_counters(&c, rc, extra);
	return rc;
}

/* ---- the inner TCP segment every good case carries ------------------ */

#define T_SPORT 40000
#define T_DPORT 443
#define T_SEQ 0x01020304u
#define T_ACK 0xa0b0c0d0u
#define T_FLAGS (PB_TCP_PSH | PB_TCP_ACK)
#define T_SRC4 PB_IP4(10, 0, 0, 1)
#define T_DST4 PB_IP4(10, 0, 0, 2)
static const char t_payload[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define T_PLEN ((uint32_t)sizeof(t_payload) - 1)

static void tcp_seg(struct pb *b)
{
	pb_tcp(b, T_SPORT, T_DPORT, T_SEQ, T_ACK, T_FLAGS, NULL, 0);
	pb_payload(b, t_payload, T_PLEN);
}

static void inner4(struct pb *b)
{
	pb_ipv4(b, T_SRC4, T_DST4, PB_PROTO_TCP);
	tcp_seg(b);
}

static void inner6(struct pb *b)
{
	uint8_t s[16], d[16];
	pb_ip6addr(s, 1);
	pb_ip6addr(d, 2);
	pb_ipv6(b, s, d, PB_PROTO_TCP);
	tcp_seg(b);
}

/* An outer UDP tunnel header over IPv4 from 192.0.2.1 to 192.0.2.2. */
static void outer4_udp(struct pb *b, uint16_t dport)
{
	pb_ipv4(b, PB_IP4(192, 0, 2, 1), PB_IP4(192, 0, 2, 2), PB_PROTO_UDP);
	pb_udp(b, 54321, dport);
}

static void outer6_udp(struct pb *b, uint16_t dport)
{
	uint8_t s[16], d[16];
	pb_ip6addr(s, 0x101);
	pb_ip6addr(d, 0x102);
	pb_ipv6(b, s, d, PB_PROTO_UDP);
	pb_udp(b, 54321, dport);
}

/* ---- good packets: one builder per encapsulation -------------------- */

static void b_eth4(struct pb *b) { pb_eth(b, PB_ETH_IPV4); inner4(b); }
static void b_eth6(struct pb *b) { pb_eth(b, PB_ETH_IPV6); inner6(b); }

static void b_eth4_opts(struct pb *b)
{
	/* NOP, NOP, then a record-route option with room for one address. */
	static const uint8_t ipopt[8] = { 1, 1, 7, 7, 4, 0, 0, 0 };
	pb_eth(b, PB_ETH_IPV4);
	pb_ipv4_opts(b, T_SRC4, T_DST4, PB_PROTO_TCP, ipopt, sizeof(ipopt));
	/* TCP options: NOP NOP timestamps, SACK block. */
	static const uint8_t tcpopt[24] = { 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7,
					    1, 1, 5, 10, 0, 0, 1, 0, 0, 0, 2, 0 };
	pb_tcp(b, T_SPORT, T_DPORT, T_SEQ, T_ACK, T_FLAGS, tcpopt,
	       sizeof(tcpopt));
	pb_payload(b, t_payload, T_PLEN);
}

static void b_vlan(struct pb *b)
{
	pb_eth(b, PB_ETH_VLAN);
	pb_vlan(b, 100, PB_ETH_IPV4);
	inner4(b);
}

static void b_qinq(struct pb *b)
{
	pb_eth(b, PB_ETH_QINQ);
	pb_vlan(b, 300, PB_ETH_VLAN);
	pb_vlan(b, 100, PB_ETH_IPV6);
	inner6(b);
}

static void b_qinq_9100(struct pb *b)
{
	pb_eth(b, 0x9100);
	pb_vlan(b, 301, PB_ETH_VLAN);
	pb_vlan(b, 101, PB_ETH_IPV4);
	inner4(b);
}

static void b_vlan4(struct pb *b)
{
	pb_eth(b, PB_ETH_QINQ);
	pb_vlan(b, 1, PB_ETH_VLAN);
	pb_vlan(b, 2, PB_ETH_VLAN);
	pb_vlan(b, 3, PB_ETH_VLAN);
	pb_vlan(b, 4, PB_ETH_IPV4);
	inner4(b);
}

static void b_ip6_ext(struct pb *b)
{
	uint8_t s[16], d[16];
	pb_ip6addr(s, 1);
	pb_ip6addr(d, 2);
	pb_eth(b, PB_ETH_IPV6);
	pb_ipv6(b, s, d, PB_PROTO_HOPOPTS);
	pb_ip6_ext(b, PB_PROTO_HOPOPTS, PB_PROTO_ROUTING, 0);
	pb_ip6_ext(b, PB_PROTO_ROUTING, PB_PROTO_DSTOPTS, 2);
	pb_ip6_ext(b, PB_PROTO_DSTOPTS, PB_PROTO_FRAGMENT, 1);
	pb_ip6_frag(b, PB_PROTO_TCP, 0, 0, 0xdeadbeef); /* atomic */
	tcp_seg(b);
}

static void b_vxlan4(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 4789);
	pb_vxlan(b, 0x123456);
	pb_eth(b, PB_ETH_IPV4);
	inner4(b);
}

static void b_vxlan4_in6(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 4789);
	pb_vxlan(b, 7);
	pb_eth(b, PB_ETH_IPV6);
	inner6(b);
}

static void b_vxlan6(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV6);
	outer6_udp(b, 4789);
	pb_vxlan(b, 8);
	pb_eth(b, PB_ETH_IPV4);
	inner4(b);
}

static void b_geneve_teb(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 6081);
	pb_geneve(b, PB_ETH_TEB, 0xabcdef, 3);
	pb_eth(b, PB_ETH_IPV4);
	inner4(b);
}

static void b_geneve_ip4(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 6081);
	pb_geneve(b, PB_ETH_IPV4, 77, 2);
	inner4(b);
}

static void b_geneve_ip6(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 6081);
	pb_geneve(b, PB_ETH_IPV6, 78, 0);
	inner6(b);
}

/* VLAN outside the tunnel and inside it: the outer id is reported. */
static void b_vlan_vxlan_vlan(struct pb *b)
{
	pb_eth(b, PB_ETH_VLAN);
	pb_vlan(b, 200, PB_ETH_IPV4);
	outer4_udp(b, 4789);
	pb_vxlan(b, 9);
	pb_eth(b, PB_ETH_VLAN);
	pb_vlan(b, 201, PB_ETH_IPV4);
	inner4(b);
}

static void b_qinq_geneve(struct pb *b)
{
	pb_eth(b, PB_ETH_QINQ);
	pb_vlan(b, 210, PB_ETH_VLAN);
	pb_vlan(b, 211, PB_ETH_IPV4);
	outer4_udp(b, 6081);
	pb_geneve(b, PB_ETH_TEB, 10, 1);
	pb_eth(b, PB_ETH_IPV6);
	inner6(b);
}

/* A tag only inside the tunnel: counted, but the outer frame is untagged
 * so the reported VLAN id stays 0. */
static void b_vxlan_inner_vlan(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 4789);
	pb_vxlan(b, 13);
	pb_eth(b, PB_ETH_VLAN);
	pb_vlan(b, 202, PB_ETH_IPV4);
	inner4(b);
}

/* Geneve inside VXLAN: two tunnel levels. */
static void b_vxlan_geneve(struct pb *b)
{
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 4789);
	pb_vxlan(b, 11);
	pb_eth(b, PB_ETH_IPV4);
	outer4_udp(b, 6081);
	pb_geneve(b, PB_ETH_IPV4, 12, 1);
	inner4(b);
}

static void b_sll4(struct pb *b) { pb_sll(b, PB_ETH_IPV4); inner4(b); }
static void b_sll6(struct pb *b) { pb_sll(b, PB_ETH_IPV6); inner6(b); }

static void b_sll_vlan(struct pb *b)
{
	pb_sll(b, PB_ETH_VLAN);
	pb_vlan(b, 55, PB_ETH_IPV4);
	inner4(b);
}

static void b_sll2_4(struct pb *b) { pb_sll2(b, PB_ETH_IPV4); inner4(b); }
static void b_sll2_6(struct pb *b) { pb_sll2(b, PB_ETH_IPV6); inner6(b); }
static void b_null4(struct pb *b) { pb_null(b, 2); inner4(b); }
static void b_null6_linux(struct pb *b) { pb_null(b, 10); inner6(b); }
static void b_null6_bsd(struct pb *b) { pb_null(b, 24); inner6(b); }
static void b_null6_macos(struct pb *b) { pb_null(b, 30); inner6(b); }
static void b_null6_swapped(struct pb *b)
{
	/* Captured on a host of the other byte order. */
	pb_null(b, __builtin_bswap32(28));
	inner6(b);
}
static void b_raw4(struct pb *b) { inner4(b); }
static void b_raw6(struct pb *b) { inner6(b); }

struct good {
	const char *name;
	int link;
	void (*build)(struct pb *);
	uint8_t family;
	uint8_t tunnel;
	uint32_t vni;
	uint16_t vlan;
	/* informational counters of the whole packet */
	struct cexp info[4];
};

#define I(name, v) { ST_CTR_##name, (v) }
#define IEND { ST_CTR__COUNT, 0 }

static const struct good goods[] = {
	{ "eth4", 1, b_eth4, 4, 0, 0, 0, { IEND } },
	{ "eth4_opts", 1, b_eth4_opts, 4, 0, 0, 0, { IEND } },
	{ "eth6", 1, b_eth6, 6, 0, 0, 0, { I(decode_ipv6, 1), IEND } },
	{ "vlan", 1, b_vlan, 4, 0, 0, 100, { I(decode_vlan, 1), IEND } },
	{ "qinq", 1, b_qinq, 6, 0, 0, 300,
	  { I(decode_vlan, 1), I(decode_ipv6, 1), IEND } },
	{ "qinq_9100", 1, b_qinq_9100, 4, 0, 0, 301, { I(decode_vlan, 1), IEND } },
	{ "vlan_x4", 1, b_vlan4, 4, 0, 0, 1, { I(decode_vlan, 1), IEND } },
	{ "ip6_ext", 1, b_ip6_ext, 6, 0, 0, 0, { I(decode_ipv6, 1), IEND } },
	{ "vxlan4", 1, b_vxlan4, 4, DECODE_TUNNEL_VXLAN, 0x123456, 0,
	  { I(decode_vxlan, 1), IEND } },
	{ "vxlan4_in6", 1, b_vxlan4_in6, 6, DECODE_TUNNEL_VXLAN, 7, 0,
	  { I(decode_vxlan, 1), I(decode_ipv6, 1), IEND } },
	{ "vxlan6", 1, b_vxlan6, 4, DECODE_TUNNEL_VXLAN, 8, 0,
	  { I(decode_vxlan, 1), IEND } },
	{ "geneve_teb", 1, b_geneve_teb, 4, DECODE_TUNNEL_GENEVE, 0xabcdef, 0,
	  { I(decode_geneve, 1), IEND } },
	{ "geneve_ip4", 1, b_geneve_ip4, 4, DECODE_TUNNEL_GENEVE, 77, 0,
	  { I(decode_geneve, 1), IEND } },
	{ "geneve_ip6", 1, b_geneve_ip6, 6, DECODE_TUNNEL_GENEVE, 78, 0,
	  { I(decode_geneve, 1), I(decode_ipv6, 1), IEND } },
	{ "vlan_vxlan_vlan", 1, b_vlan_vxlan_vlan, 4, DECODE_TUNNEL_VXLAN, 9,
	  200, { I(decode_vlan, 1), I(decode_vxlan, 1), IEND } },
	{ "qinq_geneve", 1, b_qinq_geneve, 6, DECODE_TUNNEL_GENEVE, 10, 210,
	  { I(decode_vlan, 1), I(decode_geneve, 1), I(decode_ipv6, 1), IEND } },
	{ "vxlan_inner_vlan", 1, b_vxlan_inner_vlan, 4, DECODE_TUNNEL_VXLAN, 13,
	  0, { I(decode_vlan, 1), I(decode_vxlan, 1), IEND } },
	{ "vxlan_geneve", 1, b_vxlan_geneve, 4, DECODE_TUNNEL_VXLAN, 11, 0,
	  { I(decode_vxlan, 1), I(decode_geneve, 1), IEND } },
	{ "sll4", DECODE_LINK_SLL, b_sll4, 4, 0, 0, 0, { IEND } },
	{ "sll6", DECODE_LINK_SLL, b_sll6, 6, 0, 0, 0, { I(decode_ipv6, 1), IEND } },
	{ "sll_vlan", DECODE_LINK_SLL, b_sll_vlan, 4, 0, 0, 55,
	  { I(decode_vlan, 1), IEND } },
	{ "sll2_4", DECODE_LINK_SLL2, b_sll2_4, 4, 0, 0, 0, { IEND } },
	{ "sll2_6", DECODE_LINK_SLL2, b_sll2_6, 6, 0, 0, 0,
	  { I(decode_ipv6, 1), IEND } },
	{ "null4", DECODE_LINK_NULL, b_null4, 4, 0, 0, 0, { IEND } },
	{ "null6_linux", DECODE_LINK_NULL, b_null6_linux, 6, 0, 0, 0,
	  { I(decode_ipv6, 1), IEND } },
	{ "null6_bsd", DECODE_LINK_NULL, b_null6_bsd, 6, 0, 0, 0,
	  { I(decode_ipv6, 1), IEND } },
	{ "null6_macos", DECODE_LINK_NULL, b_null6_macos, 6, 0, 0, 0,
	  { I(decode_ipv6, 1), IEND } },
	{ "null6_swapped", DECODE_LINK_NULL, b_null6_swapped, 6, 0, 0, 0,
	  { I(decode_ipv6, 1), IEND } },
	{ "raw4", DECODE_LINK_RAW, b_raw4, 4, 0, 0, 0, { IEND } },
	{ "raw6", DECODE_LINK_RAW, b_raw6, 6, 0, 0, 0, { I(decode_ipv6, 1), IEND } },
	{ "raw4_dlt12", 12, b_raw4, 4, 0, 0, 0, { IEND } },
	{ "raw6_dlt14", 14, b_raw6, 6, 0, 0, 0, { I(decode_ipv6, 1), IEND } },
};

static void check_tcp_fields(const struct decode_pkt *d, uint8_t family)
{
	assert_int_equal(d->key.family, family);
	assert_int_equal(d->key.proto, 6);
	assert_int_equal(d->key.pad, 0);
	uint8_t a[2][16];
	memset(a, 0, sizeof(a));
	if (family == 4) {
		pb_put32(a[0], T_SRC4);
		pb_put32(a[1], T_DST4);
	} else {
		pb_ip6addr(a[0], 1);
		pb_ip6addr(a[1], 2);
	}
	assert_memory_equal(d->key.addr, a, sizeof(a));
	assert_int_equal(d->key.port[0], T_SPORT);
	assert_int_equal(d->key.port[1], T_DPORT);
	assert_int_equal(d->seq, T_SEQ);
	assert_int_equal(d->ack, T_ACK);
	assert_int_equal(d->tcp_flags, T_FLAGS);
	assert_int_equal(d->window, 65535);
}

/* Every good packet decodes whole, with the right key and payload, and
 * the inner IP header at l3_off. */
static void test_good_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < ST_ARRAY_SIZE(goods); i++) {
		const struct good *g = &goods[i];
		struct pb b;
		struct decode_pkt d;
		pb_init(&b);
		g->build(&b);
		uint32_t len = pb_finish(&b);
		print_message("  %s (%u bytes)\n", g->name, len);
		decode_check(g->link, b.b, len, len, &d, DECODE_OK, g->info);
		check_tcp_fields(&d, g->family);
		assert_int_equal(d.payload_len, T_PLEN);
		assert_int_equal(d.payload_wire_len, T_PLEN);
		assert_ptr_equal(d.payload, b.b + len - T_PLEN);
		assert_memory_equal(d.payload, t_payload, T_PLEN);
		assert_int_equal(d.tunnel, g->tunnel);
		assert_int_equal(d.vni, g->vni);
		assert_int_equal(d.vlan, g->vlan);
		/* l3_off points at the innermost IP header. */
		uint32_t l3len = (g->family == 4 ? 20 : 40) + 20 + T_PLEN;
		if (g->build == b_eth4_opts)
			l3len += 8 + 24;
		if (g->build == b_ip6_ext)
			l3len += 8 + 24 + 16 + 8;
		assert_int_equal(d.l3_off, len - l3len);
		uint32_t l4len = 20 + T_PLEN + (g->build == b_eth4_opts ? 24 : 0);
		assert_int_equal(d.l4_off, len - l4len);
		assert_int_equal(b.b[d.l3_off] >> 4, g->family);
	}
}

/* Cut at every length short of the TCP payload: DECODE_TRUNCATED, never a
 * crash or a "bad" verdict (the wire length says more was sent). Cut inside
 * the payload: accepted with payload_len < payload_wire_len. */
static void test_good_truncated_everywhere(void **state)
{
	(void)state;
	for (size_t i = 0; i < ST_ARRAY_SIZE(goods); i++) {
		const struct good *g = &goods[i];
		struct pb b;
		struct decode_pkt d;
		pb_init(&b);
		g->build(&b);
		uint32_t len = pb_finish(&b);
		uint32_t poff = len - T_PLEN;
		for (uint32_t cut = 0; cut < len; cut++) {
			/* Copy to a buffer of exactly |cut| bytes so ASan sees
			 * any read past the capture. */
			uint8_t *p = malloc(cut ? cut : 1);
			assert_non_null(p);
			memcpy(p, b.b, cut);
			struct st_counters c;
			memset(&c, 0, sizeof(c));
			int rc = decode_packet(&cfg_default, g->link, p, cut,
					       len, &d, &c);
			assert_one_outcome(&c, rc);
			if (cut < poff) {
				if (rc != DECODE_TRUNCATED)
					fail_msg("%s cut at %u/%u: %s", g->name,
						 cut, len, decode_rc_name(rc));
				assert_int_equal(
					c.v[ST_CTR_decode_payload_truncated], 0);
			} else {
				if (rc != DECODE_OK)
					fail_msg("%s cut at %u/%u: %s", g->name,
						 cut, len, decode_rc_name(rc));
				check_tcp_fields(&d, g->family);
				assert_int_equal(d.payload_len, cut - poff);
				assert_int_equal(d.payload_wire_len, T_PLEN);
				assert_ptr_equal(d.payload, p + poff);
				assert_int_equal(
					c.v[ST_CTR_decode_payload_truncated], 1);
			}
			free(p);
		}
	}
}

/* A payload cut short by snaplen counts decode_payload_truncated once, on
 * top of decode_tcp. */
static void test_payload_truncated_counter(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	pb_init(&b);
	b_vlan(&b);
	uint32_t len = pb_finish(&b);
	decode_check(1, b.b, len - 5, len, &d, DECODE_OK,
		     CTRS(C(decode_vlan, 1) C(decode_payload_truncated, 1)));
	assert_int_equal(d.payload_len, T_PLEN - 5);
	assert_int_equal(d.payload_wire_len, T_PLEN);
	/* A wire length below the capture length is ignored. */
	decode_check(1, b.b, len, 10, &d, DECODE_OK, CTRS(C(decode_vlan, 1)));
	assert_int_equal(d.payload_len, T_PLEN);
}

/* Short frames are padded to 60 bytes: the IP length decides where the
 * segment ends, not the frame. */
static void test_ethernet_padding(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4(&b, T_SRC4, T_DST4, PB_PROTO_TCP);
	pb_tcp(&b, T_SPORT, T_DPORT, T_SEQ, T_ACK, PB_TCP_ACK, NULL, 0);
	uint32_t len = pb_finish(&b);
	assert_int_equal(len, 54);
	memset(b.b + len, 0xee, 6);
	decode_check(1, b.b, 60, 60, &d, DECODE_OK, NULL);
	assert_int_equal(d.payload_len, 0);
	assert_int_equal(d.payload_wire_len, 0);

	/* Same with two payload bytes and padding; inside VXLAN too. */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 4789);
	pb_vxlan(&b, 1);
	pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4(&b, T_SRC4, T_DST4, PB_PROTO_TCP);
	pb_tcp(&b, T_SPORT, T_DPORT, T_SEQ, T_ACK, PB_TCP_ACK, NULL, 0);
	pb_payload(&b, "ok", 2);
	uint32_t inner_end = pb_finish(&b);
	/* Inner frame padding inside the UDP payload, then outer padding. */
	pb_zero(&b, 4);
	len = b.len;
	/* Recompute outer lengths to include the inner padding. */
	pb_put16(b.b + 14 + 2, (uint16_t)(len - 14));
	pb_put16(b.b + 14 + 20 + 4, (uint16_t)(len - 14 - 20));
	memset(b.b + len, 0xee, 8);
	decode_check(1, b.b, len + 8, len + 8, &d, DECODE_OK,
		     CTRS(C(decode_vxlan, 1)));
	assert_int_equal(d.payload_len, 2);
	assert_int_equal(d.payload_wire_len, 2);
	assert_ptr_equal(d.payload, b.b + inner_end - 2);

	/* IPv6 with trailing bytes past the payload length. */
	pb_init(&b);
	b_eth6(&b);
	len = pb_finish(&b);
	memset(b.b + len, 0xee, 10);
	decode_check(1, b.b, len + 10, len + 10, &d, DECODE_OK,
		     CTRS(C(decode_ipv6, 1)));
	assert_int_equal(d.payload_len, T_PLEN);
}

/* IPv4 total length 0 (TSO capture): the frame length is trusted. */
static void test_ipv4_total_zero(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	pb_init(&b);
	b_eth4(&b);
	uint32_t len = pb_finish(&b);
	pb_put16(b.b + 14 + 2, 0);
	decode_check(1, b.b, len, len, &d, DECODE_OK, NULL);
	assert_int_equal(d.payload_len, T_PLEN);
	/* IPv6 payload length 0 likewise. */
	pb_init(&b);
	b_eth6(&b);
	len = pb_finish(&b);
	pb_put16(b.b + 14 + 4, 0);
	decode_check(1, b.b, len, len, &d, DECODE_OK, CTRS(C(decode_ipv6, 1)));
	assert_int_equal(d.payload_len, T_PLEN);
}

/* ---- fragments ------------------------------------------------------- */

static void test_fragments(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;

	/* IPv4 first fragment (MF), later fragment (offset), DF only. */
	static const uint16_t frag[] = { 0x2000, 0x0010, 0x2010, 0x4000 };
	for (size_t i = 0; i < ST_ARRAY_SIZE(frag); i++) {
		pb_init(&b);
		b_eth4(&b);
		len = pb_finish(&b);
		pb_put16(b.b + 14 + 6, frag[i]);
		decode_check(1, b.b, len, len, &d,
			     frag[i] == 0x4000 ? DECODE_OK : DECODE_FRAGMENT,
			     NULL);
	}

	/* IPv6 fragment headers: first (M), middle, last; atomic is OK
	 * (b_ip6_ext). */
	static const struct {
		uint16_t off;
		int more;
	} f6[] = { { 0, 1 }, { 100, 1 }, { 100, 0 } };
	for (size_t i = 0; i < ST_ARRAY_SIZE(f6); i++) {
		uint8_t s[16], dd[16];
		pb_ip6addr(s, 1);
		pb_ip6addr(dd, 2);
		pb_init(&b);
		pb_eth(&b, PB_ETH_IPV6);
		pb_ipv6(&b, s, dd, PB_PROTO_FRAGMENT);
		pb_ip6_frag(&b, PB_PROTO_TCP, f6[i].off, f6[i].more, 1);
		tcp_seg(&b);
		len = pb_finish(&b);
		decode_check(1, b.b, len, len, &d, DECODE_FRAGMENT,
			     CTRS(C(decode_ipv6, 1)));
	}
}

/* ---- link layer ------------------------------------------------------ */

static void test_vlan_limits(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	/* Five tags: one more than DECODE_MAX_VLAN. */
	pb_init(&b);
	pb_eth(&b, PB_ETH_QINQ);
	for (int i = 0; i < 4; i++)
		pb_vlan(&b, (uint16_t)(i + 1), PB_ETH_VLAN);
	pb_vlan(&b, 5, PB_ETH_IPV4);
	inner4(&b);
	uint32_t len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_L2,
		     CTRS(C(decode_vlan, 1)));
	/* The priority and DEI bits are not part of the id. */
	pb_init(&b);
	b_vlan(&b);
	len = pb_finish(&b);
	b.b[14] |= 0xf0;
	decode_check(1, b.b, len, len, &d, DECODE_OK, CTRS(C(decode_vlan, 1)));
	assert_int_equal(d.vlan, 100);
}

static void test_unsupported_link(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	pb_init(&b);
	b_raw4(&b);
	uint32_t len = pb_finish(&b);
	decode_check(105 /* 802.11 */, b.b, len, len, &d, DECODE_BAD_L2, NULL);
	decode_check(-1, b.b, len, len, &d, DECODE_BAD_L2, NULL);
	assert_false(decode_link_supported(105));
	assert_true(decode_link_supported(DECODE_LINK_SLL2));
	assert_string_equal(decode_link_name(DECODE_LINK_SLL), "Linux cooked (SLL)");
	assert_string_equal(decode_rc_name(DECODE_TOO_DEEP), "too_deep");
}

static void test_non_ip(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;

	/* ARP */
	pb_init(&b);
	pb_eth(&b, PB_ETH_ARP);
	pb_zero(&b, 28);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_IP, NULL);
	/* 802.3 length field (LLC) */
	pb_init(&b);
	pb_eth(&b, 46);
	pb_zero(&b, 46);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_IP, NULL);
	/* ARP in a VLAN */
	pb_init(&b);
	pb_eth(&b, PB_ETH_VLAN);
	pb_vlan(&b, 9, PB_ETH_ARP);
	pb_zero(&b, 28);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_IP,
		     CTRS(C(decode_vlan, 1)));
	/* SLL, SLL2 with ARP */
	pb_init(&b);
	pb_sll(&b, PB_ETH_ARP);
	pb_zero(&b, 28);
	len = pb_finish(&b);
	decode_check(DECODE_LINK_SLL, b.b, len, len, &d, DECODE_NON_IP, NULL);
	pb_init(&b);
	pb_sll2(&b, PB_ETH_ARP);
	pb_zero(&b, 28);
	len = pb_finish(&b);
	decode_check(DECODE_LINK_SLL2, b.b, len, len, &d, DECODE_NON_IP, NULL);
	/* NULL with AF 7 (OSI) */
	pb_init(&b);
	pb_null(&b, 7);
	inner4(&b);
	len = pb_finish(&b);
	decode_check(DECODE_LINK_NULL, b.b, len, len, &d, DECODE_NON_IP, NULL);
	/* Raw IP with version 5 or 0 */
	pb_init(&b);
	inner4(&b);
	len = pb_finish(&b);
	b.b[0] = 0x55;
	decode_check(DECODE_LINK_RAW, b.b, len, len, &d, DECODE_NON_IP, NULL);
	b.b[0] = 0x05;
	decode_check(DECODE_LINK_RAW, b.b, len, len, &d, DECODE_NON_IP, NULL);
	/* Geneve carrying something that is neither Ethernet nor IP */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 6081);
	pb_geneve(&b, PB_ETH_ARP, 1, 0);
	pb_zero(&b, 28);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL,
		     CTRS(C(decode_geneve, 1)));
	/* VXLAN carrying ARP */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 4789);
	pb_vxlan(&b, 1);
	pb_eth(&b, PB_ETH_ARP);
	pb_zero(&b, 28);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_IP,
		     CTRS(C(decode_vxlan, 1)));
}

static void test_non_tcp(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;
	uint8_t s[16], dd[16];
	pb_ip6addr(s, 1);
	pb_ip6addr(dd, 2);

	/* UDP not on a tunnel port (DNS) */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 53);
	pb_zero(&b, 30);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_TCP, NULL);
	/* VXLAN port as the *source* port only */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4(&b, 1, 2, PB_PROTO_UDP);
	pb_udp(&b, 4789, 9999);
	pb_vxlan(&b, 1);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_TCP, NULL);
	/* ICMP */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4(&b, 1, 2, PB_PROTO_ICMP);
	pb_zero(&b, 8);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_TCP, NULL);
	/* ICMPv6 after a hop-by-hop header */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV6);
	pb_ipv6(&b, s, dd, PB_PROTO_HOPOPTS);
	pb_ip6_ext(&b, PB_PROTO_HOPOPTS, PB_PROTO_ICMPV6, 0);
	pb_zero(&b, 8);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_TCP,
		     CTRS(C(decode_ipv6, 1)));
	/* IPv6 "no next header" */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV6);
	pb_ipv6(&b, s, dd, PB_PROTO_NONE);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_TCP,
		     CTRS(C(decode_ipv6, 1)));
	/* UDP inside VXLAN (tunnelled DNS) */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 4789);
	pb_vxlan(&b, 3);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 53);
	pb_zero(&b, 12);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_NON_TCP,
		     CTRS(C(decode_vxlan, 1)));
	/* Tunnels switched off in the config: VXLAN is plain UDP. */
	pb_init(&b);
	b_vxlan4(&b);
	len = pb_finish(&b);
	struct decode_cfg off = { 0 };
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(decode_packet(&off, 1, b.b, len, len, &d, &c),
			 DECODE_NON_TCP);
	assert_int_equal(c.v[ST_CTR_decode_non_tcp], 1);
	/* Non-default ports. */
	struct decode_cfg alt = { .vxlan_port = 8472, .geneve_port = 0 };
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 8472);
	pb_vxlan(&b, 3);
	pb_eth(&b, PB_ETH_IPV4);
	inner4(&b);
	len = pb_finish(&b);
	memset(&c, 0, sizeof(c));
	assert_int_equal(decode_packet(&alt, 1, b.b, len, len, &d, &c),
			 DECODE_OK);
	assert_int_equal(c.v[ST_CTR_decode_vxlan], 1);
}

/* ---- malformed headers ----------------------------------------------- */

static void test_bad_ipv4(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;
	const uint32_t ip = 14;

	/* Ethertype IPv4 but the version nibble says 6 or 7. */
	for (uint8_t v = 5; v <= 7; v++) {
		pb_init(&b);
		b_eth4(&b);
		len = pb_finish(&b);
		b.b[ip] = (uint8_t)((v << 4) | 5);
		decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV4, NULL);
	}
	/* ihl < 5 */
	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		pb_init(&b);
		b_eth4(&b);
		len = pb_finish(&b);
		b.b[ip] = (uint8_t)(0x40 | ihl);
		decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV4, NULL);
	}
	/* total length < header length */
	pb_init(&b);
	b_eth4(&b);
	len = pb_finish(&b);
	pb_put16(b.b + ip + 2, 19);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV4, NULL);
	/* ihl beyond the total length (options claimed past the end) */
	pb_init(&b);
	b_eth4(&b);
	len = pb_finish(&b);
	pb_put16(b.b + ip + 2, 40);
	b.b[ip] = 0x4f; /* 60-byte header */
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV4, NULL);
	/* total length beyond the frame on the wire */
	pb_init(&b);
	b_eth4(&b);
	len = pb_finish(&b);
	pb_put16(b.b + ip + 2, (uint16_t)(len - ip + 1));
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV4, NULL);
}

static void test_bad_ipv6(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;
	uint8_t s[16], dd[16];
	pb_ip6addr(s, 1);
	pb_ip6addr(dd, 2);

	/* Ethertype IPv6 but version 4 or 7 in the header. */
	for (uint8_t v = 4; v <= 7; v += 3) {
		pb_init(&b);
		b_eth6(&b);
		len = pb_finish(&b);
		b.b[14] = (uint8_t)(v << 4);
		decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6, NULL);
	}
	/* payload length beyond the frame */
	pb_init(&b);
	b_eth6(&b);
	len = pb_finish(&b);
	pb_put16(b.b + 14 + 4, (uint16_t)(len - 14 - 40 + 1));
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6,
		     CTRS(C(decode_ipv6, 1)));
	/* extension header longer than the payload */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV6);
	pb_ipv6(&b, s, dd, PB_PROTO_DSTOPTS);
	pb_ip6_ext(&b, PB_PROTO_DSTOPTS, PB_PROTO_TCP, 0);
	tcp_seg(&b);
	len = pb_finish(&b);
	b.b[14 + 40 + 1] = 200;
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6,
		     CTRS(C(decode_ipv6, 1)));
	/* extension header announced, payload length 1 */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV6);
	pb_ipv6(&b, s, dd, PB_PROTO_HOPOPTS);
	pb_zero(&b, 1);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6,
		     CTRS(C(decode_ipv6, 1)));
	/* fragment header announced, payload length 4 */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV6);
	pb_ipv6(&b, s, dd, PB_PROTO_FRAGMENT);
	pb_zero(&b, 4);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6,
		     CTRS(C(decode_ipv6, 1)));
}

/* A chain of |n| destination-options headers, then TCP. */
static uint32_t ext_chain(struct pb *b, unsigned n)
{
	uint8_t s[16], dd[16];
	pb_ip6addr(s, 1);
	pb_ip6addr(dd, 2);
	pb_init(b);
	pb_eth(b, PB_ETH_IPV6);
	pb_ipv6(b, s, dd, n ? PB_PROTO_DSTOPTS : PB_PROTO_TCP);
	for (unsigned i = 0; i < n; i++)
		pb_ip6_ext(b, PB_PROTO_DSTOPTS,
			   i + 1 < n ? PB_PROTO_DSTOPTS : PB_PROTO_TCP, 0);
	tcp_seg(b);
	return pb_finish(b);
}

/* IPV6_MAX_EXT (8) extension headers are walked; a ninth is too many. */
static void test_ipv6_ext_chain_limit(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	for (unsigned n = 0; n <= 8; n++) {
		uint32_t len = ext_chain(&b, n);
		decode_check(1, b.b, len, len, &d, DECODE_OK,
			     CTRS(C(decode_ipv6, 1)));
		assert_memory_equal(d.payload, t_payload, T_PLEN);
	}
	uint32_t len = ext_chain(&b, 9);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6,
		     CTRS(C(decode_ipv6, 1)));
	len = ext_chain(&b, 40);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV6,
		     CTRS(C(decode_ipv6, 1)));
}

static void test_bad_tcp(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;
	const uint32_t tcp = 14 + 20;

	/* doff < 5 */
	for (uint8_t doff = 0; doff < 5; doff++) {
		pb_init(&b);
		b_eth4(&b);
		len = pb_finish(&b);
		b.b[tcp + 12] = (uint8_t)(doff << 4);
		decode_check(1, b.b, len, len, &d, DECODE_BAD_TCP, NULL);
	}
	/* doff beyond the segment (the IP length) */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4(&b, T_SRC4, T_DST4, PB_PROTO_TCP);
	pb_tcp(&b, 1, 2, 3, 4, PB_TCP_ACK, NULL, 0);
	pb_payload(&b, "abcd", 4);
	len = pb_finish(&b);
	b.b[tcp + 12] = 6 << 4; /* 24 bytes: fits */
	decode_check(1, b.b, len, len, &d, DECODE_OK, NULL);
	assert_int_equal(d.payload_len, 0);
	b.b[tcp + 12] = 7 << 4; /* 28 bytes: does not */
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TCP, NULL);
	b.b[tcp + 12] = 15 << 4;
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TCP, NULL);
	/* doff beyond the segment while the capture is also cut: the IP
	 * length says the header cannot fit, so it is bad, not truncated. */
	decode_check(1, b.b, tcp + 20, len, &d, DECODE_BAD_TCP, NULL);
	/* a segment shorter than a TCP header, per the IP length */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	pb_ipv4(&b, T_SRC4, T_DST4, PB_PROTO_TCP);
	pb_zero(&b, 12);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TCP, NULL);
	/* the same in IPv6 */
	uint8_t s[16], dd[16];
	pb_ip6addr(s, 1);
	pb_ip6addr(dd, 2);
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV6);
	pb_ipv6(&b, s, dd, PB_PROTO_TCP);
	pb_zero(&b, 19);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TCP,
		     CTRS(C(decode_ipv6, 1)));
}

static void test_bad_tunnel(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len;
	const uint32_t udp = 14 + 20, tun = udp + 8;

	/* VXLAN without the I flag */
	pb_init(&b);
	b_vxlan4(&b);
	len = pb_finish(&b);
	b.b[tun] = 0;
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL, NULL);
	/* Geneve versions 1..3 */
	for (uint8_t v = 1; v <= 3; v++) {
		pb_init(&b);
		b_geneve_teb(&b);
		len = pb_finish(&b);
		b.b[tun] = (uint8_t)((v << 6) | (b.b[tun] & 0x3f));
		decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL, NULL);
	}
	/* Geneve options longer than the UDP payload */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 6081);
	pb_geneve(&b, PB_ETH_TEB, 1, 0);
	pb_zero(&b, 8);
	len = pb_finish(&b);
	b.b[tun] = 5; /* 20 bytes of options, 8 present */
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL, NULL);
	/* UDP length < 8 and > the IP payload */
	static const uint16_t ulen[] = { 1, 7 };
	for (size_t i = 0; i < ST_ARRAY_SIZE(ulen); i++) {
		pb_init(&b);
		b_vxlan4(&b);
		len = pb_finish(&b);
		pb_put16(b.b + udp + 4, ulen[i]);
		decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL, NULL);
	}
	pb_init(&b);
	b_vxlan4(&b);
	len = pb_finish(&b);
	pb_put16(b.b + udp + 4, (uint16_t)(len - udp + 1));
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL, NULL);
	/* UDP length 0 is allowed: the IP length rules. */
	pb_put16(b.b + udp + 4, 0);
	decode_check(1, b.b, len, len, &d, DECODE_OK, CTRS(C(decode_vxlan, 1)));
	/* A tunnel UDP payload shorter than the VXLAN header. */
	pb_init(&b);
	pb_eth(&b, PB_ETH_IPV4);
	outer4_udp(&b, 4789);
	pb_zero(&b, 4);
	len = pb_finish(&b);
	decode_check(1, b.b, len, len, &d, DECODE_BAD_TUNNEL, NULL);
	/* The UDP length shorter than the packet bounds the inner frame:
	 * the inner IPv4 length then exceeds it. */
	pb_init(&b);
	b_vxlan4(&b);
	len = pb_finish(&b);
	pb_put16(b.b + udp + 4, (uint16_t)(len - udp - 10));
	decode_check(1, b.b, len, len, &d, DECODE_BAD_IPV4,
		     CTRS(C(decode_vxlan, 1)));
}

/* Tunnels nest up to DECODE_MAX_DEPTH levels. */
static uint32_t nested(struct pb *b, unsigned levels)
{
	pb_init(b);
	pb_eth(b, PB_ETH_IPV4);
	for (unsigned i = 0; i < levels; i++) {
		outer4_udp(b, 4789);
		pb_vxlan(b, i + 1);
		pb_eth(b, PB_ETH_IPV4);
	}
	inner4(b);
	return pb_finish(b);
}

static void test_too_deep(void **state)
{
	(void)state;
	struct pb b;
	struct decode_pkt d;
	uint32_t len = nested(&b, DECODE_MAX_DEPTH);
	/* decode_vxlan counts packets, not headers. */
	decode_check(1, b.b, len, len, &d, DECODE_OK, CTRS(C(decode_vxlan, 1)));
	assert_int_equal(d.vni, 1); /* the outermost tunnel */
	check_tcp_fields(&d, 4);
	len = nested(&b, DECODE_MAX_DEPTH + 1);
	decode_check(1, b.b, len, len, &d, DECODE_TOO_DEEP,
		     CTRS(C(decode_vxlan, 1)));
}

/* Random corruption of every good packet: never a crash, exactly one
 * outcome. (The fuzz target does this far more thoroughly.) */
static void test_random_corruption(void **state)
{
	(void)state;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < ST_ARRAY_SIZE(goods); i++) {
		struct pb orig;
		pb_init(&orig);
		goods[i].build(&orig);
		uint32_t len = pb_finish(&orig);
		for (int round = 0; round < 2000; round++) {
			uint8_t *p = malloc(len);
			assert_non_null(p);
			memcpy(p, orig.b, len);
			int flips = 1 + round % 4;
			for (int k = 0; k < flips; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				p[(x >> 8) % len] = (uint8_t)x;
			}
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			uint32_t cap = (uint32_t)(x % (len + 1));
			struct st_counters c;
			struct decode_pkt d;
			memset(&c, 0, sizeof(c));
			int rc = decode_packet(&cfg_default, goods[i].link, p,
					       cap, len, &d, &c);
			assert_one_outcome(&c, rc);
			if (rc == DECODE_OK) {
				assert_true(d.payload_len <= d.payload_wire_len);
				assert_true(d.payload >= p &&
					    d.payload + d.payload_len <= p + cap);
			}
			free(p);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_whole),
		cmocka_unit_test(test_good_truncated_everywhere),
		cmocka_unit_test(test_payload_truncated_counter),
		cmocka_unit_test(test_ethernet_padding),
		cmocka_unit_test(test_ipv4_total_zero),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_vlan_limits),
		cmocka_unit_test(test_unsupported_link),
		cmocka_unit_test(test_non_ip),
		cmocka_unit_test(test_non_tcp),
		cmocka_unit_test(test_bad_ipv4),
		cmocka_unit_test(test_bad_ipv6),
		cmocka_unit_test(test_ipv6_ext_chain_limit),
		cmocka_unit_test(test_bad_tcp),
		cmocka_unit_test(test_bad_tunnel),
		cmocka_unit_test(test_too_deep),
		cmocka_unit_test(test_random_corruption),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
