/* Per-worker counters.
 *
 * One flat array of uint64_t per worker (and one for the RX stage), written
 * only by its owner thread, so no atomics; the control thread reads them at
 * the end of a run or for periodic stats (a torn read of a 64-bit aligned
 * counter cannot happen on x86-64). Every drop or rejection in the pipeline
 * has its own named counter here: nothing is discarded silently.
 */
#ifndef SEALTAP_COUNTERS_H
#define SEALTAP_COUNTERS_H

#include <stdio.h>
#include <stdint.h>
#include "sealtap/common.h"

/* X(name, help) — the order here is the print order. */
#define ST_COUNTER_LIST(X)                                                     \
	X(rx_packets, "packets taken from the capture source")                 \
	X(rx_bytes, "bytes (wire length) taken from the capture source")       \
	X(rx_truncated_capture, "packets captured shorter than on the wire")   \
	X(rx_oversize, "packets larger than one mbuf, cut to the mbuf size")   \
	X(rx_nombuf, "packets dropped: mbuf pool empty")                       \
	X(rx_ring_full, "packets dropped: worker ring full (live mode)")       \
	X(decode_tcp, "packets decoded to a TCP segment")                      \
	X(decode_non_ip, "packets dropped: not IPv4/IPv6")                     \
	X(decode_non_tcp, "packets dropped: IP but not TCP")                   \
	X(decode_truncated, "packets dropped: headers cut by snaplen/mirror") \
	X(decode_bad_l2, "packets dropped: malformed link-layer header")       \
	X(decode_bad_ipv4, "packets dropped: malformed IPv4 header")           \
	X(decode_bad_ipv6, "packets dropped: malformed IPv6 header/ext")       \
	X(decode_bad_tcp, "packets dropped: malformed TCP header")             \
	X(decode_bad_tunnel, "packets dropped: malformed VXLAN/Geneve header") \
	X(decode_fragment, "packets dropped: IP fragment (not reassembled)")   \
	X(decode_too_deep, "packets dropped: too many nested headers")         \
	X(decode_vlan, "packets carrying 802.1Q/802.1ad tags")                 \
	X(decode_vxlan, "packets decapsulated from VXLAN")                     \
	X(decode_geneve, "packets decapsulated from Geneve")                   \
	X(decode_ipv6, "packets with an IPv6 inner header")                    \
	X(decode_payload_truncated, "TCP segments whose payload was cut")      \
	X(flow_created, "flows created")                                       \
	X(flow_closed, "flows ended by FIN/RST")                               \
	X(flow_timeout, "flows ended by idle timeout")                         \
	X(flow_evicted, "flows evicted (table full, least recently used)")     \
	X(flow_reused, "closed flows reopened by a new SYN")                   \
	X(flow_no_create, "packets dropped: no flow and not allowed to create")\
	X(flow_active_max, "highest number of flows held at once (gauge)")     \
	X(reasm_bytes, "stream bytes delivered in order")                      \
	X(reasm_segments, "segments with payload handed to reassembly")        \
	X(reasm_in_order, "segments delivered straight from the packet")       \
	X(reasm_ooo_queued, "segments buffered out of order")                  \
	X(reasm_ooo_bytes_max, "highest out-of-order bytes held (gauge)")      \
	X(reasm_dup_segments, "segments entirely already seen (retransmits)")  \
	X(reasm_dup_bytes, "payload bytes already seen")                       \
	X(reasm_overlap_diff, "overlaps whose bytes differ (first seen kept)") \
	X(reasm_before_start, "segments before a mid-stream start point")      \
	X(reasm_gaps, "gaps delivered to the consumer")                        \
	X(reasm_gap_bytes, "bytes never seen, delivered as gaps")              \
	X(reasm_gap_timeout, "gaps forced by the gap timeout")                 \
	X(reasm_gap_flow_cap, "gaps forced by the per-flow buffer cap")        \
	X(reasm_gap_worker_cap, "gaps forced by the per-worker memory cap")    \
	X(reasm_gap_end, "gaps forced because the flow ended")                 \
	X(reasm_gap_truncated, "gaps from segments cut by snaplen/mirror")     \
	X(reasm_far_segment, "segments dropped: too far outside the window")  \
	X(reasm_after_fin, "segments dropped: data past the FIN")              \
	X(reasm_midstream, "directions picked up without a SYN")               \
	X(reasm_syn_changed, "SYNs with a new ISN on a live direction")        \
	X(reasm_fin, "directions ended by FIN")                                \
	X(reasm_rst, "flows ended by RST")                                     \
	X(h2_conns, "connections handed to the HTTP/2 analyzer")               \
	X(h2_conns_preface, "connections seen from their preface")            \
	X(h2_conns_midstream, "connections joined mid-stream")                 \
	X(h2_conns_upgrade, "connections upgraded from HTTP/1.1 (h2c)")        \
	X(h2_conns_tls, "connections recognised as TLS (not parsed)")          \
	X(h2_conns_not_h2, "connections given up as not HTTP/2")              \
	X(h2_conns_no_memory, "connections not parsed: connection pool full")  \
	X(h2_frames, "HTTP/2 frames parsed")                                   \
	X(h2_frames_unknown, "frames of unknown type (skipped)")              \
	X(h2_frame_errors, "frames breaking RFC 9113 framing rules")           \
	X(h2_header_blocks, "header blocks decoded")                           \
	X(h2_hpack_errors, "header blocks HPACK could not decode")             \
	X(h2_hpack_primed, "inflaters started with placeholder entries")       \
	X(h2_hpack_exact, "inflaters whose placeholders all turned over")      \
	X(h2_headers_uncertain, "header fields decoded from placeholders")     \
	X(h2_block_too_big, "header blocks over max_header_block (cut)")       \
	X(h2_resyncs, "frame boundaries found again after a gap/join")         \
	X(h2_resync_bytes, "bytes skipped while looking for a boundary")       \
	X(h2_gaps, "stream gaps seen by the HTTP/2 analyzer")                  \
	X(h2_gap_body_bytes, "body bytes lost in gaps inside DATA frames")     \
	X(h2_blocks_lost, "header blocks lost to gaps")                        \
	X(h2_streams, "streams opened")                                        \
	X(h2_streams_no_memory, "streams not tracked: stream pool full")       \
	X(h2_stream_limit, "streams recorded early: per-connection cap")       \
	X(h2_orphan_frames, "frames for streams never opened in view")         \
	X(h2_memcap, "record fragments cut: per-worker memory cap")            \
	X(h2_exchanges, "exchanges recorded")                                  \
	X(h2_exchanges_complete, "exchanges recorded complete")                \
	X(h2_exchanges_reset, "exchanges ended by RST_STREAM")                 \
	X(h2_exchanges_anomalous, "exchanges recorded with anomalies")         \
	X(h2_records_dropped, "records dropped: export ring full")             \
	X(h2_records_too_big, "records over max_record (headers left out)")   \
	X(h2_grpc_messages, "gRPC messages counted in DATA frames")            \
	X(seal_sealed, "values or parts sealed (AES-256-GCM tokens)")          \
	X(seal_tokenized, "values or parts tokenized (AES-SIV tokens)")        \
	X(seal_hashed, "values or parts hashed (HMAC-SHA-256 tokens)")         \
	X(seal_redacted, "values or parts redacted by a rule")                 \
	X(seal_failed_closed, "spans redacted: tenant has no usable key")     \
	X(seal_errors, "spans redacted: sealing failed (value too long...)")  \
	X(seal_body_findings, "sensitive spans found in inspected bodies")     \
	X(keys_installed, "DEKs unwrapped into the DEK cache")                 \
	X(keys_install_failures, "DEK installs that failed (retried)")         \
	X(keys_rotations, "successor DEKs made during the run")                \
	X(keys_rotate_failures, "DEK rotations that failed (retried)")         \
	X(keys_exhausted, "DEKs withdrawn at a limit before a successor")      \
	X(keys_usage_saves, "times seal counts were saved to the key store")   \
	X(kms_outages, "times the KMS went from reachable to unreachable")     \
	X(kms_failures, "KMS operations that failed (each attempt)")

enum st_counter {
#define ST_CTR_ENUM(name, help) ST_CTR_##name,
	ST_COUNTER_LIST(ST_CTR_ENUM)
#undef ST_CTR_ENUM
	ST_CTR__COUNT
};

struct st_counters {
	uint64_t v[ST_CTR__COUNT];
} ST_CACHE_ALIGNED;

/* A counter set has one writer (its worker thread) and readers anywhere
 * (SIGUSR1, progress lines): relaxed atomic loads and stores, plain moves
 * on x86-64 (no lock prefix, no read-modify-write), so a reader never
 * sees a torn value and the writes cost what ++ costs. */
static inline void st_ctr_add(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

static inline void st_ctr_set(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t st_ctr_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#define ST_CTR_INC(c, name) st_ctr_add(&(c)->v[ST_CTR_##name], 1)
#define ST_CTR_ADD(c, name, n) st_ctr_add(&(c)->v[ST_CTR_##name], (n))
#define ST_CTR_MAXG(c, name, x)                                                \
	do {                                                                   \
		if ((uint64_t)(x) > (c)->v[ST_CTR_##name])                     \
			st_ctr_set(&(c)->v[ST_CTR_##name], (uint64_t)(x));     \
	} while (0)

/* True for gauges (summed as max across workers, not added). */
int counters_is_gauge(enum st_counter id);
const char *counters_name(enum st_counter id);
const char *counters_help(enum st_counter id);
/* Adds |src| into |dst| (gauges: max). */
void counters_sum(struct st_counters *dst, const struct st_counters *src);
/* Writes every non-zero counter as one JSON object (no newline). */
void counters_write_json(FILE *out, const struct st_counters *c);
/* Writes "name value  # help" lines, for humans, skipping zeros. */
void counters_write_text(FILE *out, const struct st_counters *c);

#endif
