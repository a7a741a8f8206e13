/* Capture: where packets come from and how they reach the workers.
 *
 * Sources:
 *  - offline: pcap/pcapng files read with libpcap into mbufs from the same
 *    mempool the live path uses, with exact end of file and packet
 *    timestamps (all timers then run on packet time, so runs are
 *    deterministic); optionally preloaded into memory and replayed N times
 *    for benchmarks;
 *  - live: a DPDK ethdev port. With several workers and a port that can
 *    hash, each worker polls its own RX queue (symmetric Toeplitz RSS on IPs
 *    and ports). Otherwise the RX stage on the main lcore polls one queue.
 *
 * Dispatch: where the NIC cannot spread flows (single queue, tunnels, pcap)
 * the RX stage decodes each packet, hashes the canonical inner 5-tuple and
 * hands it to a worker through that worker's single-producer /
 * single-consumer rte_ring. Decoding results travel in the mbuf's private
 * area (struct capture_meta) so the worker does not decode twice. With one
 * worker the RX stage only copies and the worker decodes, which splits the
 * work more evenly between the two cores.
 *
 * Offline runs never drop: a full ring makes the reader wait. Live runs
 * never wait: a full ring drops and counts (rx_ring_full).
 */
#ifndef SEALTAP_CAPTURE_H
#define SEALTAP_CAPTURE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "sealtap/config.h"
#include "sealtap/counters.h"
#include "sealtap/decode.h"

/* What the RX stage leaves in each mbuf's private area. */
struct capture_meta {
	uint64_t ts;      /* ns: packet time (offline) or arrival (live) */
	int32_t link;     /* pcap LINKTYPE_ of the frame */
	int32_t rc;       /* decode result if |decoded| */
	uint32_t decoded; /* 1 if |d| and |rc| are valid */
	uint32_t pad;
	struct decode_pkt d;
};

/* ---- offline source (capture_pcap.c) ---- */

struct capture_pcap;

/* Opens |path| (pcap or pcapng). Fails with a one-line reason in |err| if
 * the file is missing, not a capture, or of a link type decode_packet()
 * does not take. The caller closes it with capture_pcap_close(). */
int capture_pcap_open(const char *path, struct capture_pcap **out, char *err,
		      size_t errlen);
void capture_pcap_close(struct capture_pcap *p);
int capture_pcap_link(const struct capture_pcap *p);

/* Reads the next packet. Returns 1 with the packet (borrowed: valid until
 * the next call, which wipes it, as closing does: packet bytes do not
 * linger in libpcap's buffer), 0 at end of file, or -EIO with a reason in
 * |err| when the file is truncated or corrupt. */
int capture_pcap_next(struct capture_pcap *p, const uint8_t **data,
		      uint32_t *caplen, uint32_t *wirelen, uint64_t *ts_ns,
		      char *err, size_t errlen);

/* A whole set of captures loaded into memory, for replay. */
struct capture_preload;

/* Reads every packet of |paths| into memory, noting where each TCP header
 * is (decoded with |dcfg|) so replays can re-key them. Returns 0 or
 * -errno/-EIO with |err|. The caller frees it with capture_preload_free(). */
int capture_preload_load(const char *const *paths, unsigned n,
			 const struct decode_cfg *dcfg,
			 struct capture_preload **out, char *err,
			 size_t errlen);
void capture_preload_free(struct capture_preload *pl);
uint64_t capture_preload_packets(const struct capture_preload *pl);
uint64_t capture_preload_bytes(const struct capture_preload *pl);

/* Iterates a preload |passes| times. Each pass shifts timestamps by the
 * capture's duration so time keeps going forward, and is re-keyed: the
 * caller XORs both TCP ports of every packet with capture_preload_key(),
 * so each pass is a new set of connections (not retransmissions of the
 * previous pass) whatever the capture holds. */
struct capture_preload_iter {
	const struct capture_preload *pl;
	uint64_t pos;        /* byte offset of the next record */
	uint64_t pass;       /* current pass, from 0 */
	uint64_t passes;
	uint64_t shift;      /* ns added to timestamps this pass */
};
void capture_preload_iter_init(struct capture_preload_iter *it,
			       const struct capture_preload *pl,
			       uint64_t passes);
/* Same contract as capture_pcap_next() (no error case); also returns the
 * link type in |link| and the TCP header offset in |l4_off| (0: none). */
int capture_preload_next(struct capture_preload_iter *it,
			 const uint8_t **data, uint32_t *caplen,
			 uint32_t *wirelen, uint64_t *ts_ns, int *link,
			 uint16_t *l4_off);
/* The port XOR mask of the iterator's current pass (0 for the first). */
static inline uint16_t capture_preload_key(const struct capture_preload_iter *it)
{
	/* Odd multiplier: distinct passes get distinct masks mod 2^16. */
	return (uint16_t)(it->pass * 0x9e37u);
}

/* ---- live ports (capture_port.c) ---- */

struct rte_mempool;

struct capture_port {
	uint16_t port_id;
	uint16_t nb_queues; /* RX queues set up (1 = software dispatch) */
	bool rss;           /* symmetric RSS spreads flows over queues */
	char name[64];
};

/* Finds |name| (any port if empty and exactly one exists), sets up
 * |want_queues| RX queues with symmetric RSS if the device can hash on IPs
 * and TCP ports (else one queue), |rx_desc| descriptors each from |mp|, and
 * starts it. 0 or -errno with a one-line reason in |err|. */
int capture_port_open(const char *name, uint16_t want_queues, bool allow_rss,
		      uint16_t rx_desc, struct rte_mempool *mp,
		      struct capture_port *out, char *err, size_t errlen);
void capture_port_close(struct capture_port *p);

/* ---- the run (capture_run.c) ---- */

/* What consumes the reassembled streams. */
enum capture_analyzer {
	CAPTURE_ANALYZER_H2 = 0, /* HTTP/2 records to export.dir */
	CAPTURE_ANALYZER_DIGEST, /* stream digests only (tests) */
	CAPTURE_ANALYZER_NONE,   /* nothing: the capture path alone */
};

struct policy;
struct keys_runtime;

struct capture_opts {
	const char *const *pcaps; /* offline inputs (NULL/0: live port) */
	int analyzer;             /* enum capture_analyzer */
	unsigned npcaps;
	uint64_t preload_passes;  /* >0: load into memory, replay N times */
	const char *digest_path;  /* stream_digest output, or NULL */
	const char *policy_path;  /* policy YAML, or NULL: built-in policy */
	/* Shared with an ext_proc server in the same process (sealtap run):
	 * when |policy| is set the tap uses it and |keys| instead of loading
	 * its own (policy_path is ignored), and its workers are the key
	 * cache's readers |reader_base| .. |reader_base| + workers - 1. Not
	 * owned. */
	const struct policy *policy;
	struct keys_runtime *keys;
	unsigned reader_base;
	double duration_s;        /* live: stop after this long (0 = ^C) */
	const char *const *eal_args; /* extra EAL args from the command line */
	unsigned neal_args;
	bool progress;            /* print progress to stderr while running */
};

struct capture_result {
	struct st_counters total;
	uint64_t records_written; /* by the exporter */
	uint64_t record_bytes;
	uint64_t record_files;
	uint64_t record_write_errors;
	uint64_t records_lost; /* taken by the exporter, never written */
	char record_dir[512];
	double wall_s;
	unsigned workers;
	bool hugepages;
	bool rss;
	char input_error[256]; /* non-empty: input ended early (e.g. truncated) */
};

/* Runs the capture pipeline to the end of input (offline), for the
 * duration or until SIGINT/SIGTERM (live). Initialises the EAL (once per
 * process). Returns 0, or -errno with a one-line reason in |err|. When an
 * input file turns out truncated, what was read is still processed, 0 is
 * returned and |r->input_error| says what happened. */
int capture_run(const struct st_config *cfg, const struct capture_opts *o,
		struct capture_result *r, char *err, size_t errlen);

/* The signals that stop a run in order (SIGINT, SIGTERM, SIGHUP) in
 * |set|. capture_run() unblocks them once its handlers are in place, so
 * a caller that set up other work first (sealtap run) can hold them. */
void capture_stop_signals(sigset_t *set);

#endif
