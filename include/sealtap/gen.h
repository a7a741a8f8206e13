/* sealtap gen: synthetic HTTP/2 captures.
 *
 * Real nghttp2 client and server sessions talk to each other in memory;
 * their byte streams are cut into TCP segments (handshake, ACKs, FIN,
 * realistic sequence numbers and timing) and written as a classic pcap
 * file. Everything random comes from one seeded PRNG, so the same options
 * and seed give a byte-identical file. The options, their ranges and what
 * they do are described in docs/gen.md.
 */
#ifndef SEALTAP_GEN_H
#define SEALTAP_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GEN_METHODS_MAX 8
#define GEN_METHOD_LEN 16       /* longest method name + NUL */
#define GEN_MTU_MIN 256         /* leaves room for 20+ bytes of TCP payload */
#define GEN_MTU_MAX 9216        /* jumbo frames */
#define GEN_BODY_MAX (1ull << 30)
/* nghttp2's inflater refuses header fields over 64 KiB */
#define GEN_HEADER_SIZE_MAX 60000
#define GEN_HEADER_BLOCK_MAX (1u << 20) /* extra header bytes per request */
#define GEN_REORDER_MAX 1024
#define GEN_PPM 1000000u        /* percentages are kept in parts per million */

/* An inclusive range of byte counts; lo == hi for a fixed size. */
struct gen_range {
	uint64_t lo;
	uint64_t hi;
};

enum gen_encap {
	GEN_ENCAP_NONE = 0,
	GEN_ENCAP_VXLAN,  /* RFC 7348, outer UDP 4789 */
	GEN_ENCAP_GENEVE, /* RFC 8926, outer UDP 6081 */
};

/* Everything that shapes a capture. Plain values only, so a copy is a
 * complete description of the run (and of the bytes it writes). */
struct gen_opts {
	uint64_t seed;
	uint32_t connections;
	uint32_t streams;     /* requests per connection */
	uint32_t concurrency; /* open streams per connection at most */
	char methods[GEN_METHODS_MAX][GEN_METHOD_LEN];
	uint32_t nmethods;
	uint32_t req_headers; /* extra request header fields */
	uint32_t header_size; /* bytes per extra header value */
	struct gen_range req_body;
	struct gen_range resp_body;
	uint32_t padding;     /* 0: none; else 0..N pad bytes per frame */
	bool huffman;
	bool table_churn;
	bool grpc;
	uint32_t rst_ppm;     /* share of streams the client cancels */
	bool goaway;
	uint32_t mtu;
	uint32_t loss_ppm;    /* share of packets removed from the capture */
	uint32_t reorder;     /* window; 0 or 1: no reordering */
	uint32_t midstream;   /* 0: off; K: start at payload packet K */
	enum gen_encap encap;
	uint32_t vni;
	bool ipv6;
	bool h2c_upgrade;
	uint16_t port;        /* server TCP port */
	bool nanosecond;      /* pcap timestamps in ns instead of us */
};

/* HTTP/2 frame types counted in gen_summary.frames (RFC 9113 §6). */
#define GEN_FRAME_DATA 0
#define GEN_FRAME_HEADERS 1
#define GEN_FRAME_RST_STREAM 3
#define GEN_FRAME_GOAWAY 7
#define GEN_FRAME_CONTINUATION 9
#define GEN_FRAME_TYPES 10

/* What a run produced. Frame counts are what the endpoints sent, before
 * --loss / --midstream removed packets from the capture. */
struct gen_summary {
	uint64_t packets;      /* written to the file */
	uint64_t bytes;        /* frame bytes written (captured lengths) */
	uint64_t connections;
	uint64_t streams;      /* requests sent */
	uint64_t frames[GEN_FRAME_TYPES]; /* by type, both directions */
	uint64_t lost;         /* packets removed by --loss */
	uint64_t skipped;      /* packets removed by --midstream */
};

/* Fills |o| with the defaults documented in docs/gen.md. */
void gen_opts_default(struct gen_opts *o);

/* Checks ranges and combinations. Returns 0, or -EINVAL with a one-line
 * reason in |err| that names the option and the fix. */
int gen_opts_check(const struct gen_opts *o, char *err, size_t errlen);

/* Generates the capture described by |o| and writes it to |out| as classic
 * pcap. Does not take ownership of |out| (the caller closes it). Returns 0
 * and fills |sum|, or -errno with a reason in |err|; on error |out| holds a
 * partial file. */
int gen_run(const struct gen_opts *o, FILE *out, struct gen_summary *sum,
	    char *err, size_t errlen);

/* `sealtap gen` command line; argv[0] is "gen". Returns the exit status:
 * 0 done, 2 bad usage or failure (one line on stderr). Never exits. */
int gen_main(int argc, char **argv);

#endif
