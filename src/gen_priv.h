/* Internals shared by the gen_*.c files (sealtap gen). Nothing outside
 * gen_* includes this; the public face is include/sealtap/gen.h.
 *
 * Pipeline of one run (gen_run.c):
 *   gen_msg  what requests and responses contain
 *   gen_h2   two nghttp2 sessions exchange them, in turns
 *   gen_conn the turns become TCP segments with times, seq and ack
 *   gen_run  connections merged in time order, then --midstream, --loss,
 *            --reorder
 *   gen_pcap segments become Ethernet frames and pcap records
 */
#ifndef SEALTAP_GEN_PRIV_H
#define SEALTAP_GEN_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "sealtap/gen.h"

/* ---- gen_util.c: PRNG and byte buffer ------------------------------- */

/* xoshiro256** seeded through splitmix64. Never seeded from time or
 * addresses: determinism of the output rests on it. */
struct gen_rng {
	uint64_t s[4];
};

/* Seeds |r| from |seed| and a |stream| number, so that each connection
 * (and the capture impairments) draw from an independent sequence. */
void gen_rng_seed(struct gen_rng *r, uint64_t seed, uint64_t stream);
uint64_t gen_rng_next(struct gen_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t gen_rng_below(struct gen_rng *r, uint64_t n);
/* Uniform in [g->lo, g->hi]. */
uint64_t gen_rng_range(struct gen_rng *r, const struct gen_range *g);
/* True with probability ppm / 1e6. */
bool gen_rng_chance(struct gen_rng *r, uint32_t ppm);
/* Fills |dst| with |n| characters drawn from |alphabet|. */
void gen_rng_string(struct gen_rng *r, char *dst, size_t n,
		    const char *alphabet);

/* Growable byte buffer. Owns |p|; gen_buf_fini() frees it. */
struct gen_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

/* Appends |n| bytes. Returns 0 or -ENOMEM (|b| unchanged). */
int gen_buf_append(struct gen_buf *b, const void *data, size_t n);
void gen_buf_fini(struct gen_buf *b);

/* ---- gen_msg.c: contents of requests and responses ------------------ */

/* Per-connection content state. Does not own |o| or |rng|. */
struct gen_msg {
	const struct gen_opts *o;
	struct gen_rng *rng;
	char (*fixed_names)[24];  /* --req-headers without --table-churn */
	char *fixed_values;
};

/* A body being sent: its size is decided up front, its bytes are made as
 * nghttp2 asks for them (nothing is buffered). */
struct gen_body {
	uint64_t len;          /* DATA payload bytes, gRPC framing included */
	uint64_t off;          /* bytes handed out so far */
	uint64_t grpc_payload; /* gRPC: message bytes without prefixes */
	uint32_t pattern;
	bool grpc;
};

/* A header list for nghttp2_submit_*(), which copies it: the strings live
 * in |arena| and die with the list. Free with gen_hdrs_fini(). */
struct gen_hdrs {
	nghttp2_nv *nv;
	size_t n, cap;
	char *arena;
	size_t used, size;
	bool overflow;
};

#define GEN_SETTINGS_MAX 36 /* SETTINGS payload of the h2c upgrade */

/* Draws the fixed extra headers of a connection. Does not take ownership
 * of |o| or |rng|. Returns 0 or -ENOMEM; gen_msg_fini() frees. */
int gen_msg_init(struct gen_msg *m, const struct gen_opts *o,
		 struct gen_rng *rng);
void gen_msg_fini(struct gen_msg *m);

/* A new request: picks the method, sizes the body into |body| and builds
 * the header list into |hs|. On success the caller frees |hs| with
 * gen_hdrs_fini(). Returns 0, -ENOMEM or -ENOSPC. */
int gen_msg_request(struct gen_msg *m, struct gen_hdrs *hs,
		    struct gen_body *body);
/* The response to a request (|head|: it was HEAD). As gen_msg_request(). */
int gen_msg_response(struct gen_msg *m, bool head, struct gen_hdrs *hs,
		     struct gen_body *body);
/* gRPC trailers into |nv| (static strings); returns how many. */
size_t gen_msg_trailers(struct gen_msg *m, nghttp2_nv nv[2]);
/* Appends the HTTP/1.1 request of an h2c upgrade, carrying the client's
 * SETTINGS payload |settings|. Returns 0 or -errno. */
int gen_msg_upgrade_request(struct gen_msg *m, const uint8_t *settings,
			    size_t len, struct gen_buf *out);
/* Writes the next bytes of |b|, at most |cap|, to |dst|; returns how many. */
size_t gen_body_read(struct gen_body *b, uint8_t *dst, size_t cap);
void gen_hdrs_fini(struct gen_hdrs *hs);

/* ---- gen_h2.c: the HTTP/2 conversation of one connection ------------ */

enum { GEN_CLIENT = 0, GEN_SERVER = 1 };


struct gen_h2;

/* Creates the client and server sessions of one connection. Does not take
 * ownership of |o| or |rng|; both must outlive the object. On success the
 * caller frees |*out| with gen_h2_free(). Returns 0 or -errno. */
int gen_h2_new(struct gen_h2 **out, const struct gen_opts *o,
	       struct gen_rng *rng);
void gen_h2_free(struct gen_h2 *h);

/* Lets |side| write what it has to send now: the client first cancels and
 * opens streams, the server sends GOAWAY once everything is answered.
 * Stops asking nghttp2 for more once about |budget| bytes are out (the
 * TCP congestion window); the rest waits for the next turn. Appends the
 * bytes to |out|. Returns 0 or -errno (reason from gen_h2_error()). */
int gen_h2_produce(struct gen_h2 *h, int side, size_t budget,
		   struct gen_buf *out);

/* Hands |n| bytes sent by the other side to |side|. Does not take
 * ownership of |p| (nghttp2 copies what it keeps). Returns 0 or -errno. */
int gen_h2_deliver(struct gen_h2 *h, int side, const uint8_t *p, size_t n);

/* True when every stream is closed on both sides, GOAWAY (if asked for)
 * is out, and neither side has anything left to write. */
bool gen_h2_done(const struct gen_h2 *h);

/* Adds the frame counts seen on the wire to |frames| and the number of
 * requests to |*streams|. */
void gen_h2_count(const struct gen_h2 *h, uint64_t frames[GEN_FRAME_TYPES],
		  uint64_t *streams);

/* Why the last call failed, for error messages. */
const char *gen_h2_error(const struct gen_h2 *h);

/* ---- gen_conn.c: TCP model of one connection ------------------------ */

#define GEN_TCP_FIN 0x01
#define GEN_TCP_SYN 0x02
#define GEN_TCP_PSH 0x08
#define GEN_TCP_ACK 0x10

/* One TCP segment as seen at the tap. The payload lives in the owning
 * connection's turn buffer, valid until its next gen_conn_step(). */
struct gen_seg {
	uint64_t ts_ns;
	uint32_t seq;
	uint32_t ack;
	uint32_t off;     /* payload offset in gen_conn.turn */
	uint16_t len;     /* payload bytes */
	uint8_t dir;      /* GEN_CLIENT: client to server */
	uint8_t flags;    /* GEN_TCP_* */
	uint32_t order;   /* creation order: ties on ts_ns keep it */
};

enum gen_conn_phase {
	GEN_CONN_IDLE = 0, /* not started */
	GEN_CONN_TALK,
	GEN_CONN_CLOSING,
	GEN_CONN_DONE,
};

struct gen_conn {
	const struct gen_opts *o;
	uint32_t index;
	enum gen_conn_phase phase;
	struct gen_rng rng;
	struct gen_h2 *h2;
	/* endpoints, network byte order where they go on the wire as is */
	uint8_t mac[2][6];
	uint8_t ip[2][16];        /* IPv4 in the first 4 bytes */
	uint16_t port[2];         /* host order */
	uint16_t ip_id[2];        /* next IPv4 identification per direction */
	uint16_t outer_sport;     /* tunnel source port (flow entropy) */
	/* TCP state per direction (GEN_CLIENT = client to server) */
	uint16_t mss;
	uint32_t snd_nxt[2];      /* next sequence number to send */
	uint32_t acked[2];        /* highest ack this side has sent */
	uint32_t cwnd[2];         /* bytes a side may send in one turn */
	uint64_t delay_ns[2];     /* one-way tap <-> side delay */
	uint64_t now_ns;          /* no segment of a later step is earlier */
	int turn;                 /* side whose turn is next */
	uint32_t quiet_turns;     /* consecutive turns with nothing to say */
	/* this step's output */
	struct gen_buf turn_buf;
	struct gen_seg *q;
	size_t qlen, qhead, qcap;
	uint32_t order;
	uint64_t payload_pkts;    /* for --midstream, counted in gen_run */
};

/* Sets up connection |index| (addresses, delays, ISNs) to start at
 * |start_ns|. Does not take ownership of |o|. No allocation: the HTTP/2
 * sessions are created by the first gen_conn_step(). */
void gen_conn_init(struct gen_conn *c, const struct gen_opts *o,
		   uint32_t index, uint64_t start_ns);
/* Frees what the connection holds; |c| itself belongs to the caller. */
void gen_conn_fini(struct gen_conn *c);

/* Runs the next exchange of the connection and queues its segments,
 * sorted by time, all at or after the previous |now_ns|. Call only with
 * an empty queue. Returns 0 (phase GEN_CONN_DONE at the end) or -errno
 * with a reason in |err|. */
int gen_conn_step(struct gen_conn *c, char *err, size_t errlen);

/* Time of the next queued segment, or of the next step if none. */
uint64_t gen_conn_next_ts(const struct gen_conn *c);

/* ---- gen_pcap.c: frames and the file -------------------------------- */

/* Largest frame gen builds: outer Ethernet + IPv4 + UDP + Geneve + inner
 * Ethernet + an IP packet of GEN_MTU_MAX bytes. */
#define GEN_FRAME_MAX (GEN_MTU_MAX + 14 + 20 + 8 + 8 + 14)

/* Builds the Ethernet frame of segment |s| of |c| into |buf| (at least
 * GEN_FRAME_MAX bytes) and returns its length. Advances c->ip_id. Does
 * not take ownership of anything; |buf| is the caller's. */
size_t gen_pcap_frame(struct gen_conn *c, const struct gen_seg *s,
		      uint8_t *buf);

/* Writes the pcap file header. Returns 0 or -EIO. */
int gen_pcap_write_header(FILE *f, bool nanosecond);
/* Writes one record. Returns 0 or -EIO. */
int gen_pcap_write_packet(FILE *f, bool nanosecond, uint64_t ts_ns,
			  const uint8_t *frame, size_t len);

/* IP header + TCP header bytes for a segment (no TCP options on data
 * segments): MSS = MTU - this. */
#define GEN_IP4_TCP_HDR 40
#define GEN_IP6_TCP_HDR 60

#endif
