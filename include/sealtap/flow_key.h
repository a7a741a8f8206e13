/* Flow keys: the 5-tuple of a TCP connection. Types and inline helpers. */
#ifndef SEALTAP_FLOW_KEY_H
#define SEALTAP_FLOW_KEY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define FLOW_FAMILY_IPV4 4
#define FLOW_FAMILY_IPV6 6

/* 40 bytes. IPv4 addresses occupy the first 4 bytes of addr[i], the rest is
 * zero, so keys can be compared and hashed as plain memory. Ports are in
 * host byte order. */
struct flow_key {
	uint8_t addr[2][16];
	uint16_t port[2];
	uint8_t family;
	uint8_t proto;
	uint16_t pad; /* always zero */
};

/* Orders the two endpoints so that both directions of a connection give the
 * same key. Writes the canonical key to |out| and returns the direction of
 * the packet: 0 if its source became endpoint 0, 1 otherwise. */
static inline unsigned flow_key_canon(const struct flow_key *in,
				      struct flow_key *out)
{
	int c = memcmp(in->addr[0], in->addr[1], 16);
	if (c == 0)
		c = (int)in->port[0] - (int)in->port[1];
	if (c <= 0) {
		*out = *in;
		return 0;
	}
	memcpy(out->addr[0], in->addr[1], 16);
	memcpy(out->addr[1], in->addr[0], 16);
	out->port[0] = in->port[1];
	out->port[1] = in->port[0];
	out->family = in->family;
	out->proto = in->proto;
	out->pad = 0;
	return 1;
}

static inline bool flow_key_eq(const struct flow_key *a,
			       const struct flow_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* Hash of a canonical key; symmetric because the key is canonical. Used to
 * pick a worker in software dispatch and as the flow-table hash. */
uint32_t flow_key_hash(const struct flow_key *canon);

/* Formats "a.b.c.d:p" / "[v6]:p" for endpoint |i| into |buf|. */
char *flow_key_endpoint_str(const struct flow_key *k, unsigned i, char *buf,
			    size_t len);

#endif
