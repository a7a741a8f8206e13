/* sealtap gen: the TCP model of one connection, as a tap near the server
 * would see it.
 *
 * The connection runs in steps: the three-way handshake, then turns in
 * which one side writes what nghttp2 has for it (at most a congestion
 * window) and the other side receives it, then FIN in both directions.
 * Each step queues the segments it made with their times:
 *  - a side's bytes leave as MSS-sized segments, back to back at 1 Gbit/s,
 *    PSH on the last one of a write, ACK on all of them;
 *  - the receiver ACKs every second segment (RFC 1122 §4.2.3.2 delayed
 *    ACK, RFC 5681 §4.2) a tap round trip later, and acknowledges the rest
 *    with its own data or with a pure ACK in its next turn;
 *  - the other side's turn starts one tap round trip after the last
 *    segment (2 x its one-way delay from the tap), plus server think time;
 *  - the congestion window starts at 10 segments (RFC 6928) and doubles
 *    each time a side fills it (slow start), up to CWND_MAX.
 * No retransmissions: the network in this model loses nothing; --loss
 * removes packets from the capture only (gen_run.c), like a mirror that
 * drops.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_priv.h"
#include "sealtap/common.h"

#define CWND_INIT_SEGS 10
#define CWND_MAX (512u * 1024)
#define NS_PER_BYTE 8            /* 1 Gbit/s */
#define WIRE_OVERHEAD 78         /* Ethernet + preamble + IFG + IPv6 + TCP */
#define CLIENT_DELAY_MIN 1000000 /* tap <-> client one way: 1..21 ms */
#define CLIENT_DELAY_SPAN 20000000
#define SERVER_DELAY_MIN 20000   /* tap <-> server one way: 20..520 us */
#define SERVER_DELAY_SPAN 500000
#define THINK_SPAN 300000        /* server think time: 0..300 us */
#define SERVERS 8                /* server addresses, by connection index */

/* ---- set-up -------------------------------------------------------- */

/* Addresses from the connection index so that every connection has its
 * own 5-tuple: 10.16.0.0/10 for clients (4 M connections), 10.0.0.1-8 for
 * servers; fd00:5ea1::/32 likewise for IPv6. Frames from the client side
 * come from the router, hence one MAC. */
static void set_endpoints(struct gen_conn *c)
{
	uint32_t i = c->index + 1, srv = 1 + c->index % SERVERS; /* no .0 */
	static const uint8_t router[6] = { 0x02, 0x5e, 0xa1, 0x00, 0x00, 0xfe };
	memcpy(c->mac[GEN_CLIENT], router, 6);
	memcpy(c->mac[GEN_SERVER], router, 5);
	c->mac[GEN_SERVER][5] = (uint8_t)srv;
	if (c->o->ipv6) {
		static const uint8_t pfx[4] = { 0xfd, 0x00, 0x5e, 0xa1 };
		memcpy(c->ip[GEN_CLIENT], pfx, 4);
		memcpy(c->ip[GEN_SERVER], pfx, 4);
		c->ip[GEN_CLIENT][5] = 1;
		c->ip[GEN_CLIENT][12] = (uint8_t)(i >> 24);
		c->ip[GEN_CLIENT][13] = (uint8_t)(i >> 16);
		c->ip[GEN_CLIENT][14] = (uint8_t)(i >> 8);
		c->ip[GEN_CLIENT][15] = (uint8_t)i;
		c->ip[GEN_SERVER][15] = (uint8_t)srv;
	} else {
		uint8_t cli[4] = { 10, (uint8_t)(16 + ((i >> 16) & 0x3f)),
				   (uint8_t)(i >> 8), (uint8_t)i };
		uint8_t ser[4] = { 10, 0, 0, (uint8_t)srv };
		memcpy(c->ip[GEN_CLIENT], cli, 4);
		memcpy(c->ip[GEN_SERVER], ser, 4);
	}
	/* Linux's default ephemeral range, 32768-60999 */
	c->port[GEN_CLIENT] = (uint16_t)(32768 + gen_rng_below(&c->rng, 28232));
	c->port[GEN_SERVER] = c->o->port;
	c->ip_id[GEN_CLIENT] = (uint16_t)gen_rng_next(&c->rng);
	c->ip_id[GEN_SERVER] = (uint16_t)gen_rng_next(&c->rng);
	c->outer_sport = (uint16_t)(49152 + gen_rng_below(&c->rng, 16384));
}

void gen_conn_init(struct gen_conn *c, const struct gen_opts *o,
		   uint32_t index, uint64_t start_ns)
{
	memset(c, 0, sizeof(*c));
	c->o = o;
	c->index = index;
	c->now_ns = start_ns;
	/* Stream 0 belongs to gen_run (capture impairments). */
	gen_rng_seed(&c->rng, o->seed, (uint64_t)index + 1);
	set_endpoints(c);
	c->mss = (uint16_t)(o->mtu - (o->ipv6 ? GEN_IP6_TCP_HDR
					      : GEN_IP4_TCP_HDR));
	c->snd_nxt[GEN_CLIENT] = (uint32_t)gen_rng_next(&c->rng);
	c->snd_nxt[GEN_SERVER] = (uint32_t)gen_rng_next(&c->rng);
	c->delay_ns[GEN_CLIENT] =
		CLIENT_DELAY_MIN + gen_rng_below(&c->rng, CLIENT_DELAY_SPAN);
	c->delay_ns[GEN_SERVER] =
		SERVER_DELAY_MIN + gen_rng_below(&c->rng, SERVER_DELAY_SPAN);
	c->cwnd[GEN_CLIENT] = c->cwnd[GEN_SERVER] =
		(uint32_t)c->mss * CWND_INIT_SEGS;
	c->turn = GEN_CLIENT;
}

void gen_conn_fini(struct gen_conn *c)
{
	gen_h2_free(c->h2);
	c->h2 = NULL;
	gen_buf_fini(&c->turn_buf);
	free(c->q);
	c->q = NULL;
	c->qlen = c->qhead = c->qcap = 0;
}

uint64_t gen_conn_next_ts(const struct gen_conn *c)
{
	return c->qhead < c->qlen ? c->q[c->qhead].ts_ns : c->now_ns;
}

/* ---- segments ------------------------------------------------------ */

/* Queues a segment from |dir| carrying |len| bytes of the turn buffer at
 * |off|, and advances that direction's sequence space (SYN and FIN count
 * one, RFC 9293 §3.4). Returns 0 or -ENOMEM. */
static int push(struct gen_conn *c, int dir, uint64_t ts, uint8_t flags,
		uint32_t ack, size_t off, size_t len)
{
	if (c->qlen == c->qcap) {
		size_t cap = c->qcap ? c->qcap * 2 : 64;
		struct gen_seg *q = realloc(c->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		c->q = q;
		c->qcap = cap;
	}
	c->q[c->qlen++] = (struct gen_seg){
		.ts_ns = ts, .seq = c->snd_nxt[dir],
		.ack = (flags & GEN_TCP_ACK) ? ack : 0, .off = (uint32_t)off,
		.len = (uint16_t)len, .dir = (uint8_t)dir, .flags = flags,
		.order = c->order++,
	};
	c->snd_nxt[dir] += (uint32_t)len + !!(flags & GEN_TCP_SYN) +
			   !!(flags & GEN_TCP_FIN);
	if (flags & GEN_TCP_ACK)
		c->acked[dir] = ack;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct gen_seg *x = a, *y = b;
	if (x->ts_ns != y->ts_ns)
		return x->ts_ns < y->ts_ns ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Time a segment of |len| payload bytes occupies the wire. */
static uint64_t wire_ns(size_t len)
{
	return (uint64_t)(len + WIRE_OVERHEAD) * NS_PER_BYTE;
}

/* ---- steps --------------------------------------------------------- */

/* RFC 9293 §3.5: SYN, SYN-ACK, ACK. */
static int handshake(struct gen_conn *c)
{
	int cl = GEN_CLIENT, sv = GEN_SERVER;
	uint64_t t = c->now_ns;
	int rc = push(c, cl, t, GEN_TCP_SYN, 0, 0, 0);
	t += 2 * c->delay_ns[sv];
	if (rc == 0)
		rc = push(c, sv, t, GEN_TCP_SYN | GEN_TCP_ACK, c->snd_nxt[cl],
			  0, 0);
	t += 2 * c->delay_ns[cl];
	if (rc == 0)
		rc = push(c, cl, t, GEN_TCP_ACK, c->snd_nxt[sv], 0, 0);
	c->now_ns = t + wire_ns(0);
	return rc;
}

/* Cuts the |n| bytes side |x| wrote into segments starting at now, with
 * the receiver's delayed ACKs in between. Returns the time of the last
 * segment; *rc becomes -ENOMEM if the queue could not grow. */
static uint64_t segment(struct gen_conn *c, int x, size_t n, int *rc)
{
	int y = !x;
	uint64_t t = c->now_ns, last = t;
	uint32_t k = 0;
	for (size_t off = 0; off < n && *rc == 0; k++) {
		size_t len = ST_MIN(n - off, (size_t)c->mss);
		uint8_t flags = GEN_TCP_ACK | (off + len == n ? GEN_TCP_PSH : 0);
		*rc = push(c, x, t, flags, c->snd_nxt[y], off, len);
		off += len;
		if (*rc == 0 && (k & 1))
			*rc = push(c, y, t + 2 * c->delay_ns[y], GEN_TCP_ACK,
				   c->snd_nxt[x], 0, 0);
		last = t;
		t += wire_ns(len);
	}
	return last;
}

/* One turn of side c->turn. A side with nothing to write still ACKs what
 * it has not acknowledged; two silent turns in a row end the talk. */
static int talk(struct gen_conn *c, char *err, size_t errlen)
{
	int x = c->turn, y = !x, rc = 0;
	if (gen_h2_produce(c->h2, x, c->cwnd[x], &c->turn_buf) < 0)
		goto h2_failed;
	size_t n = c->turn_buf.len;
	uint64_t last = c->now_ns;
	if (n == 0) {
		if (c->acked[x] != c->snd_nxt[y])
			rc = push(c, x, c->now_ns, GEN_TCP_ACK, c->snd_nxt[y], 0,
				  0);
		c->quiet_turns++;
	} else {
		c->quiet_turns = 0;
		last = segment(c, x, n, &rc);
		if (rc == 0 && gen_h2_deliver(c->h2, y, c->turn_buf.p, n) < 0)
			goto h2_failed;
		if (n >= c->cwnd[x]) /* slow start: the window was filled */
			c->cwnd[x] = ST_MIN(2 * c->cwnd[x], CWND_MAX);
	}
	if (rc < 0) {
		snprintf(err, errlen, "connection %u: out of memory", c->index);
		return rc;
	}
	c->now_ns = last + wire_ns(0) + 2 * c->delay_ns[y] +
		    (y == GEN_SERVER ? gen_rng_below(&c->rng, THINK_SPAN) : 0);
	c->turn = y;
	if (c->quiet_turns >= 2) {
		if (!gen_h2_done(c->h2)) {
			snprintf(err, errlen, "connection %u: HTTP/2 stalled "
				 "with streams open", c->index);
			return -EPROTO;
		}
		c->phase = GEN_CONN_CLOSING;
	}
	return 0;
h2_failed:
	snprintf(err, errlen, "connection %u: %s", c->index,
		 gen_h2_error(c->h2));
	return -EPROTO;
}

/* RFC 9293 §3.6: FIN from the closing side (the server after GOAWAY, the
 * client otherwise), FIN back, last ACK. */
static int closing(struct gen_conn *c)
{
	int x = c->o->goaway ? GEN_SERVER : GEN_CLIENT, y = !x;
	uint64_t t = c->now_ns;
	int rc = push(c, x, t, GEN_TCP_FIN | GEN_TCP_ACK, c->snd_nxt[y], 0, 0);
	t += 2 * c->delay_ns[y];
	if (rc == 0)
		rc = push(c, y, t, GEN_TCP_FIN | GEN_TCP_ACK, c->snd_nxt[x], 0,
			  0);
	t += 2 * c->delay_ns[x];
	if (rc == 0)
		rc = push(c, x, t, GEN_TCP_ACK, c->snd_nxt[y], 0, 0);
	c->now_ns = t;
	c->phase = GEN_CONN_DONE;
	return rc;
}

int gen_conn_step(struct gen_conn *c, char *err, size_t errlen)
{
	int rc = 0;
	c->turn_buf.len = 0;
	c->qlen = c->qhead = 0;
	switch (c->phase) {
	case GEN_CONN_IDLE:
		rc = gen_h2_new(&c->h2, c->o, &c->rng);
		if (rc == 0)
			rc = handshake(c);
		if (rc < 0)
			snprintf(err, errlen, "connection %u: out of memory",
				 c->index);
		c->phase = GEN_CONN_TALK;
		break;
	case GEN_CONN_TALK:
		rc = talk(c, err, errlen);
		break;
	case GEN_CONN_CLOSING:
		rc = closing(c);
		if (rc < 0)
			snprintf(err, errlen, "connection %u: out of memory",
				 c->index);
		break;
	case GEN_CONN_DONE:
		break;
	}
	if (rc < 0)
		return rc;
	/* Delayed ACKs interleave with the data they acknowledge. */
	qsort(c->q, c->qlen, sizeof(*c->q), seg_cmp);
	if (c->qlen && c->q[c->qlen - 1].ts_ns > c->now_ns)
		c->now_ns = c->q[c->qlen - 1].ts_ns;
	return 0;
}
