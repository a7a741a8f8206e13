/* Packet decoding: link layer, VLAN tags, tunnels, IP, TCP.
 *
 * decode_packet() works on a plain byte buffer (no mbuf, no EAL), so it can
 * be unit-tested and fuzzed directly. It never copies the packet: the result
 * points into the buffer, which must outlive it.
 *
 * It accepts: Ethernet II (with any number of 802.1Q / 802.1ad tags up to
 * DECODE_MAX_VLAN), Linux cooked (SLL, SLL2), BSD loopback (NULL) and raw IP
 * link types; IPv4 with options; IPv6 with hop-by-hop, routing, destination
 * options and fragment extension headers; VXLAN (RFC 7348) and Geneve
 * (RFC 8926) inside UDP on configurable ports, decapsulated to the inner
 * Ethernet frame (one level of nesting per tunnel, DECODE_MAX_DEPTH overall);
 * TCP with options.
 *
 * It rejects, each with its own counter: non-IP, non-TCP, IP fragments (we
 * count and drop them: TCP over IP fragments does not occur on the LB paths
 * we tap, and reassembling them would let a hostile peer pin memory), and
 * headers that are malformed or cut short. Checksums are never checked:
 * mirrors leave them unset. A TCP payload cut short by the snap length or by
 * mirror truncation is accepted and reported as truncated (payload_len <
 * payload_wire_len).
 */
#ifndef SEALTAP_DECODE_H
#define SEALTAP_DECODE_H

#include <stdbool.h>
#include <stdint.h>
#include "sealtap/counters.h"
#include "sealtap/flow_key.h"

#define DECODE_MAX_VLAN 4
#define DECODE_MAX_DEPTH 4 /* tunnels nested inside each other */

/* Link-layer types, numbered as pcap LINKTYPE_* values. */
enum decode_link {
	DECODE_LINK_NULL = 0,
	DECODE_LINK_ETHERNET = 1,
	DECODE_LINK_RAW = 101,
	DECODE_LINK_SLL = 113,
	DECODE_LINK_SLL2 = 276,
};

/* True if |linktype| (a pcap LINKTYPE_ value) is one decode_packet() takes. */
bool decode_link_supported(int linktype);
const char *decode_link_name(int linktype);

struct decode_cfg {
	uint16_t vxlan_port;  /* UDP destination port for VXLAN, 0 = off */
	uint16_t geneve_port; /* UDP destination port for Geneve, 0 = off */
};

#define DECODE_CFG_DEFAULT { .vxlan_port = 4789, .geneve_port = 6081 }

enum decode_tunnel {
	DECODE_TUNNEL_NONE = 0,
	DECODE_TUNNEL_VXLAN = 1,
	DECODE_TUNNEL_GENEVE = 2,
};

/* TCP flag bits as on the wire. */
#define DECODE_TCP_FIN 0x01
#define DECODE_TCP_SYN 0x02
#define DECODE_TCP_RST 0x04
#define DECODE_TCP_PSH 0x08
#define DECODE_TCP_ACK 0x10

/* The decoded view of one TCP segment. Pointers refer into the packet. */
struct decode_pkt {
	struct flow_key key;       /* as seen: addr[0]/port[0] is the source */
	const uint8_t *payload;    /* TCP payload as captured */
	uint32_t payload_len;      /* payload bytes present in the buffer */
	uint32_t payload_wire_len; /* payload bytes per the IP length fields */
	uint32_t seq;
	uint32_t ack;
	uint16_t window;
	uint8_t tcp_flags;
	uint8_t tunnel; /* enum decode_tunnel of the outermost tunnel */
	uint32_t vni;   /* VXLAN VNI / Geneve VNI of that tunnel */
	uint16_t vlan;  /* outermost VLAN id, 0 if untagged */
	uint16_t l3_off; /* offset of the inner IP header in the buffer */
	uint16_t l4_off; /* offset of the TCP header in the buffer */
};

enum decode_rc {
	DECODE_OK = 0,           /* a TCP segment; |out| is filled */
	DECODE_NON_IP = -1,
	DECODE_NON_TCP = -2,
	DECODE_TRUNCATED = -3,
	DECODE_BAD_L2 = -4,
	DECODE_BAD_IPV4 = -5,
	DECODE_BAD_IPV6 = -6,
	DECODE_BAD_TCP = -7,
	DECODE_BAD_TUNNEL = -8,
	DECODE_FRAGMENT = -9,
	DECODE_TOO_DEEP = -10,
};

/* Decodes the packet |p| of |caplen| captured bytes (|wirelen| on the wire)
 * with link type |link|. Returns DECODE_OK and fills |out|, or a negative
 * enum decode_rc. Increments exactly one outcome counter in |c| (decode_tcp
 * or the matching decode_* rejection) plus informational ones (vlan,
 * tunnels, ipv6, payload_truncated). Does not take ownership of |p|. */
int decode_packet(const struct decode_cfg *cfg, int link, const uint8_t *p,
		  uint32_t caplen, uint32_t wirelen, struct decode_pkt *out,
		  struct st_counters *c);

const char *decode_rc_name(int rc);

#endif
