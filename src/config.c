/* Configuration: one declarative option table (see config.h).
 *
 * The table below is the only place an option is described: its dotted
 * name, type, range, default, target field and help. Everything else is
 * driven by it: config_defaults(), parsing of the YAML file, per-option
 * validation, config_write_reference() (the commented reference YAML) and
 * the consistency tests against docs/config.md and config/sealtap.yaml.
 *
 * The file is YAML, read with libyaml's document API: the top level is a
 * mapping of sections ("capture:"), each a mapping of keys ("workers: 4").
 * Scalars are taken as text and converted by the option's type; YAML's own
 * typing (1.1 booleans such as "on"/"off", octal "010", ...) is never
 * applied, so "hugepages: off" is the enum value "off" and "010" is ten.
 *
 * Errors are one line: file:line: dotted.key: what is wrong with which
 * value; how to fix it. The file is parsed into a private struct that is
 * copied out only once everything (including cross-option rules) passed,
 * so a caller never sees a half-applied configuration.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "sealtap/common.h"
#include "sealtap/config.h"
#include "sealtap/keys.h"
#include "sealtap/log.h"

/* A sealtap config is a few KiB; anything this large is the wrong file. */
#define CONFIG_MAX_FILE (1u << 20)

enum opt_type {
	OPT_BOOL,     /* true/false, yes/no, on/off -> bool */
	OPT_U16,      /* decimal integer -> uint16_t */
	OPT_U32,      /* decimal integer -> uint32_t */
	OPT_U64,      /* decimal integer -> uint64_t */
	OPT_SIZE,     /* integer with optional B/KiB/MiB/GiB/TiB -> bytes */
	OPT_DURATION, /* integer with ns/us/ms/s/m/h/d -> nanoseconds */
	OPT_ENUM,     /* one of |choices| -> int */
	OPT_STRING,   /* any scalar -> strdup'd char *, "" = NULL */
	OPT_STRLIST,  /* sequence of scalars -> char *[CONFIG_MAX_LIST] */
};

struct opt_choice {
	const char *name;
	int value;
};

/* One option. Numeric types (bool, integers, size, duration) store into an
 * unsigned field of |width| bytes; |min|, |max| and |def| are in the stored
 * unit (bytes, nanoseconds). Enums store an int; |def| is the value. String
 * defaults are always NULL (config_free() frees what it finds). */
struct config_opt {
	const char *name; /* "section.key" */
	enum opt_type type;
	size_t off;       /* target in struct st_config */
	size_t width;     /* sizeof the target */
	size_t count_off; /* OPT_STRLIST: the unsigned item count */
	uint64_t min, max, def;
	const struct opt_choice *choices; /* OPT_ENUM, ends with { NULL } */
	const char *help; /* what it does */
	const char *why;  /* why the default is what it is */
};

#define FIELD(f)                                                               \
	.off = offsetof(struct st_config, f),                                  \
	.width = sizeof(((struct st_config *)0)->f)

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)
#define NS_US 1000ull
#define NS_MS 1000000ull
#define NS_S 1000000000ull
#define NS_M (60 * NS_S)
#define NS_H (3600 * NS_S)
#define NS_D (86400 * NS_S)

static const struct opt_choice log_levels[] = {
	{ "debug", LOG_LEVEL_DEBUG }, { "info", LOG_LEVEL_INFO },
	{ "warn", LOG_LEVEL_WARN },   { "error", LOG_LEVEL_ERROR },
	{ NULL, 0 },
};

static const struct opt_choice hugepages_choices[] = {
	{ "auto", CONFIG_HUGEPAGES_AUTO },
	{ "on", CONFIG_HUGEPAGES_ON },
	{ "off", CONFIG_HUGEPAGES_OFF },
	{ NULL, 0 },
};

static const struct opt_choice kms_backend_choices[] = {
	{ "pkcs11", CONFIG_KMS_PKCS11 },
	{ NULL, 0 },
};

static const struct opt_choice keys_memory_choices[] = {
	{ "auto", KEYS_MEM_AUTO },
	{ "hugepages", KEYS_MEM_HUGETLB },
	{ "locked", KEYS_MEM_LOCKED },
	{ NULL, 0 },
};

static const struct opt_choice dispatch_choices[] = {
	{ "auto", CONFIG_DISPATCH_AUTO },
	{ "rss", CONFIG_DISPATCH_RSS },
	{ "software", CONFIG_DISPATCH_SOFTWARE },
	{ NULL, 0 },
};

/* The options, grouped by section in the order the reference prints them.
 * Keep docs/config.md and config/sealtap.yaml in step (tests check both). */
static const struct config_opt opts[] = {
	/* log */
	{ .name = "log.level", .type = OPT_ENUM, FIELD(log.level),
	  .def = LOG_LEVEL_INFO, .choices = log_levels,
	  .help = "Lowest level of the JSON log lines written to stderr.",
	  .why = "start-up, shutdown and rare events only, never a line "
		 "per packet; debug is for development." },

	/* eal */
	{ .name = "eal.args", .type = OPT_STRLIST, FIELD(eal.args),
	  .count_off = offsetof(struct st_config, eal.nargs),
	  .max = CONFIG_MAX_LIST,
	  .help = "Extra DPDK EAL arguments, appended to the ones sealtap "
		  "derives (e.g. --file-prefix, -a <pci>, --vdev).",
	  .why = "cores, memory and hugepages already come from the "
		 "options of this file." },
	{ .name = "eal.hugepages", .type = OPT_ENUM, FIELD(eal.hugepages),
	  .def = CONFIG_HUGEPAGES_AUTO, .choices = hugepages_choices,
	  .help = "Hugepages: auto uses them if enough are reserved, on "
		  "requires them, off runs the EAL with --no-huge.",
	  .why = "a laptop or CI box without reserved hugepages still "
		 "replays pcaps." },
	{ .name = "eal.memory_mb", .type = OPT_U32, FIELD(eal.memory_mb),
	  .min = 64, .max = 1048576, .def = 512,
	  .help = "MiB of memory the EAL reserves at start (-m).",
	  .why = "holds the default mempool and rings of a few workers; "
		 "raise it with capture.workers and capture.mbufs." },

	/* capture */
	{ .name = "capture.workers", .type = OPT_U32, FIELD(capture.workers),
	  .min = 1, .max = 128, .def = 1,
	  .help = "Worker lcores; each owns a flow table and a reassembly "
		  "pool (flow.* and reasm.* sizes are per worker).",
	  .why = "suits pcap replay and light taps; memory grows "
		 "linearly with workers." },
	{ .name = "capture.burst", .type = OPT_U32, FIELD(capture.burst),
	  .min = 1, .max = 512, .def = 32,
	  .help = "Packets taken per RX burst.",
	  .why = "the customary DPDK burst; it amortizes per-call cost "
		 "without adding latency." },
	{ .name = "capture.ring_size", .type = OPT_U32,
	  FIELD(capture.ring_size), .min = 64, .max = 1048576, .def = 4096,
	  .help = "Entries in each worker's input ring; a power of two.",
	  .why = "absorbs 128 bursts of 32 while a worker is busy with a "
		 "slow flow." },
	{ .name = "capture.mbufs", .type = OPT_U32, FIELD(capture.mbufs),
	  .min = 0, .max = 16777216, .def = 0,
	  .help = "Packet buffers in the mempool; 0 = derived. If set, at "
		  "least capture.workers * capture.ring_size.",
	  .why = "sealtap sizes the pool so every ring and RX queue can be "
		 "full at once, with bursts in flight and per-lcore "
		 "caches." },
	{ .name = "capture.mbuf_data_size", .type = OPT_U32,
	  FIELD(capture.mbuf_data_size), .min = 256, .max = 65535,
	  .def = 2048 + 128,
	  .help = "Bytes of data room per mbuf, including 128 bytes of "
		  "headroom; DPDK holds it in 16 bits.",
	  .why = "2048 + 128 headroom (RTE_MBUF_DEFAULT_BUF_SIZE) holds a "
		 "1500-byte frame with a tunnel header; raise it for "
		 "jumbo frames." },
	{ .name = "capture.rx_desc", .type = OPT_U32, FIELD(capture.rx_desc),
	  .min = 64, .max = 65536, .def = 1024,
	  .help = "RX descriptors per queue (live capture only).",
	  .why = "rides out short stalls on common NICs; raise it if the "
		 "NIC reports missed packets." },
	{ .name = "capture.dispatch", .type = OPT_ENUM,
	  FIELD(capture.dispatch), .def = CONFIG_DISPATCH_AUTO,
	  .choices = dispatch_choices,
	  .help = "How packets reach workers: rss = one RX queue per worker "
		  "hashed by the NIC, software = an RX stage hashes the "
		  "inner 5-tuple. rss needs decode.vxlan_port and "
		  "decode.geneve_port at 0 (NICs hash the outer header).",
	  .why = "rss where the port can do it and no tunnel is "
		 "decapsulated, software otherwise." },
	{ .name = "capture.port", .type = OPT_STRING, FIELD(capture.port),
	  .help = "Ethdev name or PCI address for live capture (e.g. "
		  "0000:3b:00.0).",
	  .why = "no live port; pcap replay needs none." },

	/* decode */
	{ .name = "decode.vxlan_port", .type = OPT_U16,
	  FIELD(decode.vxlan_port), .min = 0, .max = 65535, .def = 4789,
	  .help = "UDP destination port decoded as VXLAN (RFC 7348); "
		  "0 = off.",
	  .why = "the IANA-assigned VXLAN port." },
	{ .name = "decode.geneve_port", .type = OPT_U16,
	  FIELD(decode.geneve_port), .min = 0, .max = 65535, .def = 6081,
	  .help = "UDP destination port decoded as Geneve (RFC 8926); "
		  "0 = off.",
	  .why = "the IANA-assigned Geneve port." },

	/* flow */
	{ .name = "flow.max_flows", .type = OPT_U32, FIELD(flow.max_flows),
	  .min = 1024, .max = 67108864, .def = 262144,
	  .help = "Flows tracked per worker, preallocated at 256 bytes each; "
		  "when full the least recently used flow is evicted.",
	  .why = "64MiB per worker, enough for the concurrent "
		 "connections of a busy load balancer path." },
	{ .name = "flow.idle_timeout", .type = OPT_DURATION,
	  FIELD(flow.idle_timeout_ns), .min = NS_S, .max = 7 * NS_D,
	  .def = 300 * NS_S,
	  .help = "A flow without packets for this long is ended.",
	  .why = "keeps quiet HTTP/2 connections that ping every minute "
		 "or two; lower it if dead flows fill the table." },
	{ .name = "flow.closed_timeout", .type = OPT_DURATION,
	  FIELD(flow.closed_timeout_ns), .min = 0, .max = NS_H,
	  .def = 10 * NS_S,
	  .help = "How long a flow lingers after both directions ended "
		  "(FIN/RST) to absorb late ACKs and retransmissions.",
	  .why = "outlasts the retransmission of a lost final segment "
		 "without holding the slot long." },

	/* reasm */
	{ .name = "reasm.flow_buffer", .type = OPT_SIZE,
	  FIELD(reasm.flow_ooo_max), .min = 4 * KiB, .max = GiB,
	  .def = MiB,
	  .help = "Chunk memory holding out-of-order data per direction "
		  "before the oldest hole becomes a gap (memory, not "
		  "payload: small segments cannot exceed it); at most "
		  "reasm.worker_memcap.",
	  .why = "holds a full window of a fast connection, and caps "
		 "what one hostile peer can pin." },
	{ .name = "reasm.worker_memcap", .type = OPT_SIZE,
	  FIELD(reasm.worker_memcap), .min = MiB, .max = TiB,
	  .def = 64 * MiB,
	  .help = "Chunk memory per worker for out-of-order data, allocated "
		  "at start.",
	  .why = "lets 64 directions hold a full flow_buffer at once; "
		 "raise it on lossy links." },
	{ .name = "reasm.chunk_size", .type = OPT_SIZE,
	  FIELD(reasm.chunk_size), .min = 256, .max = 64 * KiB,
	  .def = 2048,
	  .help = "Bytes per pool chunk, including a 40-byte header.",
	  .why = "holds one full-size TCP segment with little waste." },
	{ .name = "reasm.gap_timeout", .type = OPT_DURATION,
	  FIELD(reasm.gap_timeout_ns), .min = NS_MS, .max = NS_H,
	  .def = 2 * NS_S,
	  .help = "Packet time a hole may stay open before the data after "
		  "it is delivered behind a gap.",
	  .why = "longer than the retransmission timeout of most paths "
		 "(RFC 6298 minimum 1s, Linux 200ms), so a lost segment "
		 "has been resent by then." },
	{ .name = "reasm.start_hold", .type = OPT_DURATION,
	  FIELD(reasm.start_hold_ns), .min = 0, .max = NS_S,
	  .def = 0,
	  .help = "Packet time a direction picked up without its SYN holds "
		  "its first data, so a reordered earlier segment or the SYN "
		  "can still move the start back; 0 delivers at once.",
	  .why = "off: holding one direction delays it against the other, "
		 "which can split an HTTP/2 exchange whose response overtakes "
		 "its request; 10ms suits mirrors that reorder handshakes." },

	/* h2 */
	{ .name = "h2.max_connections", .type = OPT_U32,
	  FIELD(h2.max_connections), .min = 16, .max = 16u << 20,
	  .def = 65536,
	  .help = "HTTP/2 connections parsed at once per worker; more are "
		  "counted (h2_conns_no_memory) and not parsed.",
	  .why = "about 1 KiB each; a quarter of flow.max_flows, since most "
		 "flows on a tap are short or not HTTP/2." },
	{ .name = "h2.max_streams", .type = OPT_U32, FIELD(h2.max_streams),
	  .min = 16, .max = 64u << 20, .def = 131072,
	  .help = "Open streams per worker; when full the longest idle one "
		  "is recorded early (h2_streams_no_memory).",
	  .why = "two open exchanges per parsed connection on average." },
	{ .name = "h2.max_conn_streams", .type = OPT_U32,
	  FIELD(h2.max_conn_streams), .min = 1, .max = 1u << 20, .def = 1024,
	  .help = "Open streams per connection; beyond it the oldest is "
		  "recorded early (h2_stream_limit).",
	  .why = "well above the concurrency servers allow (100-256) yet "
		 "stops one connection from holding a worker's streams." },
	{ .name = "h2.max_header_block", .type = OPT_SIZE,
	  FIELD(h2.max_header_block), .min = 1 * KiB, .max = 16 * MiB,
	  .def = 256 * KiB,
	  .help = "Bytes of one header block (HEADERS + CONTINUATION) and of "
		  "each decoded header list kept; beyond it fields are "
		  "dropped and the exchange is marked.",
	  .why = "four times the 64 KiB most servers accept, so real "
		 "traffic is never cut; CONTINUATION floods are." },
	{ .name = "h2.max_table_size", .type = OPT_SIZE,
	  FIELD(h2.max_table_size), .min = 4 * KiB, .max = 16 * MiB,
	  .def = 64 * KiB,
	  .help = "Largest HPACK dynamic table a peer may use; larger "
		  "SETTINGS are capped and the blocks that need more fail "
		  "(h2_hpack_errors).",
	  .why = "browsers and servers use 4-64 KiB; caps table-size bombs." },
	{ .name = "h2.max_record", .type = OPT_SIZE, FIELD(h2.max_record),
	  .min = 4 * KiB, .max = 64 * MiB, .def = 1 * MiB,
	  .help = "Largest encoded record; a bigger one is written without "
		  "its header lists and marked record_too_big.",
	  .why = "fits two full header blocks with JSON escaping." },
	{ .name = "h2.body_inspect", .type = OPT_SIZE, FIELD(h2.body_inspect),
	  .min = 0, .max = 16 * MiB, .def = 64 * KiB,
	  .help = "Body bytes kept per direction of an exchange when the "
		  "policy inspects bodies (bodies are always counted in "
		  "full).",
	  .why = "covers typical JSON API bodies without holding uploads." },
	{ .name = "h2.resync_window", .type = OPT_SIZE,
	  FIELD(h2.resync_window), .min = 1 * KiB, .max = 16 * MiB,
	  .def = 64 * KiB,
	  .help = "Bytes searched for a frame boundary after a gap or a "
		  "mid-stream join before the direction is given up.",
	  .why = "four maximum-size default frames." },
	{ .name = "h2.memcap", .type = OPT_SIZE, FIELD(h2.memcap),
	  .min = 1 * MiB, .max = 1024 * GiB, .def = 256 * MiB,
	  .help = "Per-worker memory for header fields, kept body bytes and "
		  "resync windows, allocated at start.",
	  .why = "about 2 KiB for each of h2.max_streams." },
	{ .name = "h2.stream_timeout", .type = OPT_DURATION,
	  FIELD(h2.stream_timeout_ns), .min = NS_S, .max = 7 * NS_D,
	  .def = 300 * NS_S,
	  .help = "A stream idle this long is recorded as timed out.",
	  .why = "matches flow.idle_timeout: long polls and streaming RPCs "
		 "stay open for minutes." },

	/* export */
	{ .name = "export.dir", .type = OPT_STRING, FIELD(export_.dir),
	  .help = "Directory for record files (created if missing); empty "
		  "means ./records.",
	  .why = "a relative directory keeps demo runs self-contained." },
	{ .name = "export.ring_size", .type = OPT_SIZE,
	  FIELD(export_.ring_size), .min = 64 * KiB, .max = 16 * GiB,
	  .def = 8 * MiB,
	  .help = "Bytes of the ring from each worker to the exporter; a full "
		  "ring drops records (h2_records_dropped).",
	  .why = "several thousand typical records: the exporter wakes every "
		 "millisecond." },
	{ .name = "export.file_max_bytes", .type = OPT_SIZE,
	  FIELD(export_.file_max_bytes), .min = 4 * KiB, .max = 1024 * GiB,
	  .def = 64 * MiB,
	  .help = "A record file is closed and renamed at this size.",
	  .why = "easy to ship and to open in an editor." },
	{ .name = "export.file_max_age", .type = OPT_DURATION,
	  FIELD(export_.file_max_age_ns), .min = NS_S, .max = 7 * NS_D,
	  .def = 60 * NS_S,
	  .help = "A record file is closed and renamed this long after it "
		  "was opened.",
	  .why = "records reach readers within a minute at low rates." },
	{ .name = "export.flush_interval", .type = OPT_DURATION,
	  FIELD(export_.flush_ns), .min = NS_MS, .max = NS_H, .def = NS_S,
	  .help = "A partial batch is written after this long.",
	  .why = "bounds how long a record sits in memory." },
	{ .name = "export.batch_bytes", .type = OPT_SIZE,
	  FIELD(export_.batch_bytes), .min = 4 * KiB, .max = 256 * MiB,
	  .def = 1 * MiB,
	  .help = "Records are written in batches of this size.",
	  .why = "one write(2) per megabyte keeps the exporter cheap." },

	/* kms */
	{ .name = "kms.backend", .type = OPT_ENUM, FIELD(kms.backend),
	  .def = CONFIG_KMS_PKCS11, .choices = kms_backend_choices,
	  .help = "KMS holding the tenants' key-encryption keys: pkcs11 "
		  "loads a PKCS#11 module (SoftHSM2 locally, an HSM in "
		  "production).",
	  .why = "the embedded default runs with no cloud." },
	{ .name = "kms.pkcs11_module", .type = OPT_STRING,
	  FIELD(kms.pkcs11_module),
	  .help = "Path of the PKCS#11 library; empty means "
		  KMS_PKCS11_MODULE_DEFAULT ".",
	  .why = "where Debian's softhsm2 package installs SoftHSM2." },
	{ .name = "kms.token_label", .type = OPT_STRING,
	  FIELD(kms.token_label),
	  .help = "Label of the token holding the KEKs (at most 32 "
		  "characters); empty means " KMS_TOKEN_DEFAULT ".",
	  .why = "the token `sealtap keys init` creates." },
	{ .name = "kms.pin_file", .type = OPT_STRING, FIELD(kms.pin_file),
	  .help = "File holding the token's user PIN on its first line; it "
		  "must belong to sealtap's user with mode 0600 or 0400. "
		  "Takes precedence over kms.pin_env.",
	  .why = "the PIN comes from kms.pin_env; it never appears in this "
		 "file or on a command line." },
	{ .name = "kms.pin_env", .type = OPT_STRING, FIELD(kms.pin_env),
	  .help = "Name of the environment variable holding the user PIN "
		  "when kms.pin_file is empty; empty means "
		  KMS_PIN_ENV_DEFAULT ".",
	  .why = "a service manager can pass a secret this way." },
	{ .name = "kms.softhsm_dir", .type = OPT_STRING,
	  FIELD(kms.softhsm_dir),
	  .help = "Development: directory for a private SoftHSM2 "
		  "configuration and token store (sealtap sets SOFTHSM2_CONF "
		  "to its softhsm2.conf; `sealtap keys init` creates it). "
		  "Empty: SOFTHSM2_CONF as set in the environment.",
	  .why = "production tokens are set up outside sealtap." },
	{ .name = "kms.retry_attempts", .type = OPT_U32,
	  FIELD(kms.retry_attempts), .min = 1, .max = 100, .def = 5,
	  .help = "Attempts per KMS request when the KMS is unreachable or "
		  "busy (errors of other kinds are not retried).",
	  .why = "rides out a restart of the KMS without hiding an "
		 "outage for long." },
	{ .name = "kms.retry_base", .type = OPT_DURATION,
	  FIELD(kms.retry_base_ns), .min = NS_MS, .max = NS_M,
	  .def = 200 * NS_MS,
	  .help = "Delay before the second attempt; each further delay "
		  "doubles, with jitter over its upper half.",
	  .why = "fast enough for a blip, slow enough not to hammer a "
		 "recovering KMS." },
	{ .name = "kms.retry_max", .type = OPT_DURATION,
	  FIELD(kms.retry_max_ns), .min = NS_MS, .max = NS_H,
	  .def = 30 * NS_S,
	  .help = "Longest delay between two attempts; at least "
		  "kms.retry_base.",
	  .why = "many VMs retrying after a shared outage stay spread "
		 "out." },
	{ .name = "kms.health_interval", .type = OPT_DURATION,
	  FIELD(kms.health_interval_ns), .min = 0, .max = NS_H,
	  .def = 30 * NS_S,
	  .help = "An idle KMS is probed this often so an outage shows in "
		  "logs and health before a rotation needs it; 0 = never.",
	  .why = "cheap for any KMS, and soon enough to act on." },

	/* keys */
	{ .name = "keys.store", .type = OPT_STRING, FIELD(keys.store),
	  .help = "Key store file: tenants, KEK references and wrapped DEKs "
		  "(docs/keys.md); empty means ./" KEYS_STORE_DEFAULT ".",
	  .why = "a relative file keeps demo runs self-contained." },
	{ .name = "keys.default_kek", .type = OPT_STRING,
	  FIELD(keys.default_kek),
	  .help = "KEK reference given to a tenant created without --kek; "
		  "empty means " KEYS_KEK_DEFAULT ".",
	  .why = "the KEK `sealtap keys init` creates; give each tenant "
		 "its own KEK in production (revoking it shreds only that "
		 "tenant)." },
	{ .name = "keys.max_tenants", .type = OPT_U32,
	  FIELD(keys.max_tenants), .min = 1, .max = 65536, .def = 1024,
	  .help = "Tenants the DEK cache holds (two 64-byte key slots "
		  "each, in locked memory).",
	  .why = "far more than one deployment serves, in 130 KiB." },
	{ .name = "keys.dek_max_seals", .type = OPT_U64,
	  FIELD(keys.dek_max_seals), .min = 1, .max = 1ull << 32,
	  .def = 1ull << 32,
	  .help = "Values one DEK may seal (all workers and runs together) "
		  "before it is retired.",
	  .why = "2^32, the NIST SP 800-38D invocation limit for AES-GCM, "
		 "kept although the nonces are deterministic: it keeps the "
		 "data under one key small and rotation routine." },
	{ .name = "keys.dek_max_age", .type = OPT_DURATION,
	  FIELD(keys.dek_max_age_ns), .min = NS_S, .max = 730 * NS_D,
	  .def = 30 * NS_D,
	  .help = "Age at which a DEK is retired, counted from its "
		  "creation.",
	  .why = "a month bounds what one key protects; NIST SP 800-57 "
		 "allows up to two years for data-encryption keys." },
	{ .name = "keys.rotate_at", .type = OPT_U32, FIELD(keys.rotate_at),
	  .min = 50, .max = 99, .def = 90,
	  .help = "Percent of either limit (seals, age) at which a new DEK "
		  "is made, so it is ready before the old one stops.",
	  .why = "leaves a tenth of the budget for the KMS to answer, even "
		 "through retries." },
	{ .name = "keys.save_interval", .type = OPT_DURATION,
	  FIELD(keys.save_interval_ns), .min = NS_S, .max = NS_H,
	  .def = 10 * NS_S,
	  .help = "How often the seal counts of the DEKs in use are added "
		  "to the key store (and at exit).",
	  .why = "a crash loses at most this long's count; nonces never "
		 "depend on it (leases do), only the volume bound of "
		 "keys.dek_max_seals." },
	{ .name = "keys.memory", .type = OPT_ENUM, FIELD(keys.memory),
	  .def = KEYS_MEM_AUTO, .choices = keys_memory_choices,
	  .help = "Memory for plaintext DEKs: hugepages requires a "
		  "MAP_HUGETLB page, locked uses mlock()ed pages between "
		  "guard pages, auto tries hugepages first. Always excluded "
		  "from core dumps.",
	  .why = "runs on boxes without reserved hugepages (with a "
		 "warning)." },

	/* extproc */
	{ .name = "extproc.listen", .type = OPT_STRLIST, FIELD(extproc.listen),
	  .count_off = offsetof(struct st_config, extproc.nlisten),
	  .max = 16,
	  .help = "Addresses of the ext_proc gRPC server, host:port or "
		  "[v6]:port (port 0 picks a free one); every event-loop "
		  "thread listens on each with SO_REUSEPORT. Empty means "
		  "0.0.0.0:9000.",
	  .why = "a load balancer reaches the backend on any interface." },
	{ .name = "extproc.tls_cert", .type = OPT_STRING,
	  FIELD(extproc.tls_cert),
	  .help = "PEM certificate chain; with extproc.tls_key the server "
		  "speaks TLS (ALPN h2) instead of h2c.",
	  .why = "h2c, as load balancers in a private network or a "
		 "sidecar use it." },
	{ .name = "extproc.tls_key", .type = OPT_STRING, FIELD(extproc.tls_key),
	  .help = "PEM private key of extproc.tls_cert.",
	  .why = "no TLS." },
	{ .name = "extproc.tls_client_ca", .type = OPT_STRING,
	  FIELD(extproc.tls_client_ca),
	  .help = "PEM CA bundle; when set, clients must present a "
		  "certificate it signed (mutual TLS). Needs extproc.tls_cert.",
	  .why = "any client that reaches the port may connect." },
	{ .name = "extproc.threads", .type = OPT_U32, FIELD(extproc.threads),
	  .min = 1, .max = 128, .def = 1,
	  .help = "Event-loop threads; each accepts on the shared port and "
		  "owns its connections.",
	  .why = "one thread serves 100k+ streams/s; add threads with "
		 "cores." },
	{ .name = "extproc.max_message", .type = OPT_SIZE,
	  FIELD(extproc.max_message), .min = 64 * KiB, .max = GiB,
	  .def = 4 * MiB,
	  .help = "Largest gRPC message accepted; a larger one ends its "
		  "stream with RESOURCE_EXHAUSTED. Raise it with Envoy's "
		  "buffered body limits.",
	  .why = "gRPC's customary default, above Envoy's 1 MiB buffered "
		 "bodies." },
	{ .name = "extproc.max_streams", .type = OPT_U32,
	  FIELD(extproc.max_streams), .min = 1, .max = 1u << 20,
	  .def = 4096,
	  .help = "Concurrent streams per connection "
		  "(SETTINGS_MAX_CONCURRENT_STREAMS); one stream is one "
		  "HTTP request in flight at the load balancer.",
	  .why = "room for a busy Envoy on few connections." },
	{ .name = "extproc.max_connections", .type = OPT_U32,
	  FIELD(extproc.max_connections), .min = 1, .max = 1u << 20,
	  .def = 4096,
	  .help = "Open client connections the server keeps, shared out "
		  "among its threads; one more is closed at once "
		  "(conns_refused_limit).",
	  .why = "an Envoy fleet opens about one connection per worker; "
		 "the cap bounds what a flood of idle connections holds." },
	{ .name = "extproc.max_header_list", .type = OPT_SIZE,
	  FIELD(extproc.max_header_list), .min = KiB, .max = 16 * MiB,
	  .def = 16 * KiB,
	  .help = "Largest request header list of a gRPC call "
		  "(SETTINGS_MAX_HEADER_LIST_SIZE); larger calls end with "
		  "RESOURCE_EXHAUSTED.",
	  .why = "gRPC calls carry a few hundred bytes of headers; "
		 "twice gRPC's 8 KiB default." },
	{ .name = "extproc.idle_timeout", .type = OPT_DURATION,
	  FIELD(extproc.idle_timeout_ns), .min = NS_S, .max = 7 * NS_D,
	  .def = NS_H,
	  .help = "A connection without streams for this long is closed "
		  "with GOAWAY.",
	  .why = "load balancers keep their connections; an hour frees "
		 "forgotten ones." },
	{ .name = "extproc.stream_timeout", .type = OPT_DURATION,
	  FIELD(extproc.stream_timeout_ns), .min = NS_S, .max = NS_D,
	  .def = 5 * NS_M,
	  .help = "A stream without a frame for this long is ended "
		  "(CANCELLED); grpc-timeout, when sent, ends it earlier "
		  "(DEADLINE_EXCEEDED). Also the write-stall limit: a stream "
		  "whose replies the client takes none of for this long is "
		  "reset (CANCEL), a connection whose pending output makes no "
		  "progress for this long is closed.",
	  .why = "long request bodies pause; five minutes still frees "
		 "abandoned streams." },
	{ .name = "extproc.shutdown_timeout", .type = OPT_DURATION,
	  FIELD(extproc.shutdown_timeout_ns), .min = 0, .max = NS_H,
	  .def = 10 * NS_S,
	  .help = "After SIGTERM (GOAWAY sent), how long streams in flight "
		  "may finish before connections are closed.",
	  .why = "longer than any single HTTP exchange should take." },
	{ .name = "extproc.request_id_header", .type = OPT_STRING,
	  FIELD(extproc.request_id_header),
	  .help = "Request header sealtap adds (overwriting any copy) with "
		  "the record id of the exchange; lowercase. Empty means "
		  "x-sealtap-request-id; none adds nothing.",
	  .why = "backends and logs can join a request to its record." },
	{ .name = "extproc.health_listen", .type = OPT_STRING,
	  FIELD(extproc.health_listen),
	  .help = "host:port of a plain HTTP/1.1 health port (GET / answers "
		  "200, 503 while draining) for load balancers that do not "
		  "speak gRPC health checks. Empty: off.",
	  .why = "grpc.health.v1.Health/Check on the main port covers "
		 "most load balancers." },
	{ .name = "extproc.records", .type = OPT_BOOL, FIELD(extproc.records),
	  .min = 0, .max = 1, .def = 1,
	  .help = "Write one record per exchange to export.dir.",
	  .why = "the audit trail is the point; turn off only to measure "
		 "the protocol alone." },
};

#define N_OPTS ST_ARRAY_SIZE(opts)

/* ---- units ------------------------------------------------------------ */

struct unit {
	const char *name;
	uint64_t mult;
};

/* Accepted on input. K/M/G/T are the same 1024 powers as KiB/MiB/...: a
 * config never means 1000-based sizes, and "MB" is refused rather than
 * guessed. */
static const struct unit size_units[] = {
	{ "B", 1 },	  { "K", KiB }, { "KiB", KiB }, { "M", MiB },
	{ "MiB", MiB }, { "G", GiB }, { "GiB", GiB }, { "T", TiB },
	{ "TiB", TiB }, { NULL, 0 },
};
#define SIZE_UNITS "B, KiB, MiB, GiB, TiB; K, M, G, T are the same"

static const struct unit dur_units[] = {
	{ "ns", 1 },	 { "us", NS_US }, { "ms", NS_MS }, { "s", NS_S },
	{ "m", NS_M }, { "h", NS_H },	  { "d", NS_D },   { NULL, 0 },
};
#define DUR_UNITS "ns, us, ms, s, m, h, d"

/* Output units, largest first; the largest one that divides exactly. */
static const struct unit size_out[] = {
	{ "TiB", TiB }, { "GiB", GiB }, { "MiB", MiB },
	{ "KiB", KiB }, { "B", 1 },	{ NULL, 0 },
};
static const struct unit dur_out[] = {
	{ "d", NS_D },	 { "h", NS_H },	  { "m", NS_M }, { "s", NS_S },
	{ "ms", NS_MS }, { "us", NS_US }, { "ns", 1 },	 { NULL, 0 },
};

static void fmt_units(uint64_t v, const struct unit *u, char *buf,
		      size_t len)
{
	if (v == 0) {
		snprintf(buf, len, "0%s", u == dur_out ? "s" : "B");
		return;
	}
	for (; u->name; u++)
		if (v % u->mult == 0)
			break;
	snprintf(buf, len, "%" PRIu64 "%s", v / u->mult, u->name);
}

/* ---- field access ----------------------------------------------------- */

static void *field(void *base, size_t off)
{
	return (char *)base + off;
}

static void store_uint(void *base, const struct config_opt *o, uint64_t v)
{
	void *p = field(base, o->off);
	if (o->type == OPT_BOOL) {
		*(bool *)p = v != 0;
		return;
	}
	switch (o->width) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static uint64_t load_uint(const void *base, const struct config_opt *o)
{
	const void *p = (const char *)base + o->off;
	if (o->type == OPT_BOOL)
		return *(const bool *)p;
	switch (o->width) {
	case 1: return *(const uint8_t *)p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

static bool is_numeric(const struct config_opt *o)
{
	return o->type == OPT_BOOL || o->type == OPT_U16 ||
	       o->type == OPT_U32 || o->type == OPT_U64 ||
	       o->type == OPT_SIZE || o->type == OPT_DURATION;
}

static const char *choice_name(const struct config_opt *o, int v)
{
	for (const struct opt_choice *c = o->choices; c->name; c++)
		if (c->value == v)
			return c->name;
	return NULL;
}

/* Numbers as a user writes them: sizes and durations with a unit. */
static void fmt_num(const struct config_opt *o, uint64_t v, char *buf,
		    size_t len)
{
	if (o->type == OPT_SIZE)
		fmt_units(v, size_out, buf, len);
	else if (o->type == OPT_DURATION)
		fmt_units(v, dur_out, buf, len);
	else if (o->type == OPT_BOOL)
		snprintf(buf, len, "%s", v ? "true" : "false");
	else
		snprintf(buf, len, "%" PRIu64, v);
}

/* The default as YAML text. */
static void fmt_default(const struct config_opt *o, char *buf, size_t len)
{
	if (o->type == OPT_ENUM)
		snprintf(buf, len, "%s", choice_name(o, (int)o->def));
	else if (o->type == OPT_STRING)
		snprintf(buf, len, "\"\"");
	else if (o->type == OPT_STRLIST)
		snprintf(buf, len, "[]");
	else
		fmt_num(o, o->def, buf, len);
}

/* The accepted values, e.g. "[1s, 7d]" or "debug, info, warn, error". */
static void fmt_range(const struct config_opt *o, char *buf, size_t len)
{
	char lo[32], hi[32];
	size_t n = 0;
	switch (o->type) {
	case OPT_BOOL:
		snprintf(buf, len, "true, false");
		break;
	case OPT_ENUM:
		buf[0] = '\0';
		for (const struct opt_choice *c = o->choices; c->name; c++) {
			int w = snprintf(buf + n, len - n, "%s%s",
					 n ? ", " : "", c->name);
			if (w < 0 || (size_t)w >= len - n)
				break;
			n += (size_t)w;
		}
		break;
	case OPT_STRING:
		snprintf(buf, len, "any string");
		break;
	case OPT_STRLIST:
		snprintf(buf, len, "at most %" PRIu64 " items", o->max);
		break;
	default:
		fmt_num(o, o->min, lo, sizeof(lo));
		fmt_num(o, o->max, hi, sizeof(hi));
		snprintf(buf, len, "[%s, %s]", lo, hi);
		break;
	}
}

static const char *type_name(const struct config_opt *o)
{
	switch (o->type) {
	case OPT_BOOL: return "bool";
	case OPT_U16:
	case OPT_U32:
	case OPT_U64: return "integer";
	case OPT_SIZE: return "size";
	case OPT_DURATION: return "duration";
	case OPT_ENUM: return "enum";
	case OPT_STRING: return "string";
	case OPT_STRLIST: return "string list";
	}
	return "?";
}

/* ---- error lines ------------------------------------------------------ */

/* Copies |s| (|n| bytes) for an error line: control characters, quotes and
 * bytes >= 0x7f are escaped and long values cut with "...", so the error
 * stays one readable line whatever the file holds. */
static void sanitize(const char *s, size_t n, char *out, size_t outlen)
{
	const size_t cut = 60;
	size_t o = 0, i;
	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	for (i = 0; i < n && i < cut; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		size_t k = 0;
		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c == '\n') {
			esc[k++] = '\\';
			esc[k++] = 'n';
		} else if (c < 0x20 || c >= 0x7f) {
			k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
		} else {
			esc[k++] = (char)c;
		}
		if (o + k + 4 > outlen) /* keep room for "..." and NUL */
			break;
		memcpy(out + o, esc, k);
		o += k;
	}
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Writes "path:line: key: <fmt>" to |err|. |path| NULL (config_validate on
 * a struct) drops the location, |line| 0 drops the line and |key| NULL the
 * key. Returns -EINVAL. */
static int __attribute__((format(printf, 6, 7)))
report(char *err, size_t errlen, const char *path, unsigned line,
       const char *key, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return -EINVAL;
	size_t n = 0;
	int w = 0;
	if (path && line)
		w = snprintf(err, errlen, "%s:%u: ", path, line);
	else if (path)
		w = snprintf(err, errlen, "%s: ", path);
	if (w > 0)
		n = (size_t)w < errlen ? (size_t)w : errlen - 1;
	if (key) {
		w = snprintf(err + n, errlen - n, "%s: ", key);
		if (w > 0 && (size_t)w < errlen - n)
			n += (size_t)w;
		else if (w > 0)
			n = errlen - 1;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ---- scalar values ---------------------------------------------------- */

/* A decimal number at the start of a value. */
struct num {
	uint64_t v;
	bool neg;      /* started with '-' */
	bool overflow; /* does not fit 64 bits */
	const char *end;
};

/* Reads [-]digits from |s|. Returns false if |s| does not start with one.
 * strtoull alone would accept leading blanks, '+' and wrap "-5" around to
 * a huge value; the sign is taken off first and ERANGE kept. */
static bool read_num(const char *s, struct num *n)
{
	memset(n, 0, sizeof(*n));
	if (*s == '-') {
		n->neg = true;
		s++;
	}
	if (!isdigit((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	n->overflow = errno == ERANGE;
	n->v = v;
	n->end = end;
	return true;
}

static const struct unit *find_unit(const struct unit *u, const char *s)
{
	for (; u->name; u++)
		if (strcmp(u->name, s) == 0)
			return u;
	return NULL;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -EINVAL)

/* Converts scalar |s| for numeric option |o|. On success stores into *|v|
 * and returns 0; otherwise -EINVAL with the message (after "key: ") in
 * |why|. Accepts what docs/config.md says for the type (decimal digits,
 * then for sizes and durations optional blanks and a unit); rejects
 * leading blanks, '+', hex, fractions, unknown units, and anything outside
 * [min, max], checked in 64 bits before the multiply can overflow. */
static int parse_number(const struct config_opt *o, const char *s,
			uint64_t *v, char *why, size_t whylen)
{
	char q[128], range[64];
	struct num n;
	sanitize(s, strlen(s), q, sizeof(q));
	fmt_range(o, range, sizeof(range));

	if (o->type == OPT_BOOL) {
		/* YAML 1.1's spellings, which people write out of habit. */
		static const char *const words[] = { "false", "true", "no",
						     "yes", "off", "on" };
		for (size_t i = 0; i < ST_ARRAY_SIZE(words); i++) {
			if (strcasecmp(s, words[i]) == 0) {
				*v = i % 2;
				return 0;
			}
		}
		return WHY("value \"%s\" is not a boolean; use true or false",
			   q);
	}

	const char *what = o->type == OPT_SIZE	   ? "a size"
			   : o->type == OPT_DURATION ? "a duration"
						     : "an integer";
	if (!read_num(s, &n)) {
		if (o->type == OPT_SIZE)
			return WHY("value \"%s\" is not a size; write it like "
				   "\"64MiB\" (units: " SIZE_UNITS ")", q);
		if (o->type == OPT_DURATION)
			return WHY("value \"%s\" is not a duration; write it "
				   "like \"30s\" (units: " DUR_UNITS ")", q);
		return WHY("value \"%s\" is not an integer; use an integer "
			   "in %s", q, range);
	}
	uint64_t mult = 1;
	if (*n.end == '.' && o->type == OPT_SIZE)
		return WHY("value \"%s\" is not a whole number; use a "
			   "smaller unit (e.g. 1536MiB, not 1.5GiB)", q);
	if (*n.end == '.' && o->type == OPT_DURATION)
		return WHY("value \"%s\" is not a whole number; use a "
			   "smaller unit (e.g. 1500ms, not 1.5s)", q);
	if (o->type == OPT_SIZE || o->type == OPT_DURATION) {
		const char *u = n.end;
		while (*u == ' ')
			u++;
		const struct unit *un = find_unit(
			o->type == OPT_SIZE ? size_units : dur_units, u);
		if (o->type == OPT_SIZE && *u == '\0') {
			mult = 1; /* plain bytes */
		} else if (o->type == OPT_DURATION && *u == '\0') {
			/* Zero is zero in any unit; anything else is a
			 * guess we refuse to make. */
			if ((n.v != 0 || n.overflow) && !n.neg)
				return WHY("value \"%s\" has no unit; write it "
					   "like \"%ss\" (units: " DUR_UNITS
					   ")", q, q);
		} else if (!un) {
			char uq[64];
			sanitize(u, strlen(u), uq, sizeof(uq));
			if (o->type == OPT_SIZE)
				return WHY("value \"%s\" has an unknown unit "
					   "\"%s\"; use one of " SIZE_UNITS
					   " (all powers of 1024)", q, uq);
			return WHY("value \"%s\" has an unknown unit \"%s\"; "
				   "use one of " DUR_UNITS, q, uq);
		} else {
			mult = un->mult;
		}
	} else if (*n.end != '\0') {
		return WHY("value \"%s\" is not an integer; use an integer in "
			   "%s", q, range);
	}
	if (n.neg && n.v == 0 && !n.overflow)
		n.neg = false; /* "-0" */
	if (n.neg || n.overflow || n.v > UINT64_MAX / mult ||
	    n.v * mult < o->min || n.v * mult > o->max)
		return WHY("value \"%s\" is out of range %s; use %s in that "
			   "range", q, range, what);
	*v = n.v * mult;
	return 0;
}

static int parse_enum(const struct config_opt *o, const char *s, int *v,
		      char *why, size_t whylen)
{
	char q[128], range[128];
	for (const struct opt_choice *c = o->choices; c->name; c++)
		if (strcasecmp(c->name, s) == 0)
			return *v = c->value, 0;
	sanitize(s, strlen(s), q, sizeof(q));
	fmt_range(o, range, sizeof(range));
	return WHY("value \"%s\" is not a valid choice; use one of: %s", q,
		   range);
}

/* Applies scalar |s| to option |o| of the struct at |base|. Strings are
 * duplicated; the previous string, if any, is freed. Returns 0, -EINVAL
 * with the reason in |why|, or -ENOMEM. */
static int apply_scalar(const struct config_opt *o, const char *s,
			void *base, char *why, size_t whylen)
{
	if (o->type == OPT_ENUM) {
		int v;
		int rc = parse_enum(o, s, &v, why, whylen);
		if (rc == 0)
			*(int *)field(base, o->off) = v;
		return rc;
	}
	if (o->type == OPT_STRING) {
		char **p = field(base, o->off);
		char *copy = NULL;
		if (*s && !(copy = strdup(s))) {
			snprintf(why, whylen, "out of memory");
			return -ENOMEM;
		}
		free(*p);
		*p = copy;
		return 0;
	}
	uint64_t v;
	int rc = parse_number(o, s, &v, why, whylen);
	if (rc == 0)
		store_uint(base, o, v);
	return rc;
}

/* ---- option lookup ---------------------------------------------------- */

static const struct config_opt *opt_find(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

static size_t sect_len(const char *name)
{
	return (size_t)(strchr(name, '.') - name);
}

static const char *key_part(const char *name)
{
	return strchr(name, '.') + 1;
}

static bool in_section(const struct config_opt *o, const char *s, size_t n)
{
	return sect_len(o->name) == n && strncmp(o->name, s, n) == 0;
}

/* Index of the first option of section |s|, or -1. Sections are the name
 * prefixes, so a new section is just a new prefix in the table. */
static int sect_find(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < N_OPTS; i++)
		if (in_section(&opts[i], s, n))
			return (int)i;
	return -1;
}

/* Optimal string alignment distance (Levenshtein plus transpositions, so
 * "wrokers" is one edit from "workers"). Names are short; inputs longer
 * than the buffer are "far". */
static unsigned edit_distance(const char *a, const char *b)
{
	enum { MAXL = 64 };
	size_t la = strlen(a), lb = strlen(b);
	if (la >= MAXL || lb >= MAXL)
		return 1000;
	unsigned d[MAXL + 1][MAXL + 1];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned v = d[i - 1][j - 1] + cost;
			v = ST_MIN(v, d[i - 1][j] + 1);
			v = ST_MIN(v, d[i][j - 1] + 1);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1])
				v = ST_MIN(v, d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/* How many edits still count as a typo of a name of |len| characters. */
static unsigned typo_budget(size_t len)
{
	return (unsigned)ST_MAX(1, ST_MIN(3, len / 3));
}

/* The option a mistyped |dotted| name most likely meant: the same key in
 * another section, else the closest name within the typo budget. */
static const struct config_opt *closest_opt(const char *dotted)
{
	const char *dot = strchr(dotted, '.');
	const char *key = dot ? dot + 1 : dotted;
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(key_part(opts[i].name), key) == 0)
			return &opts[i];
	const struct config_opt *best = NULL;
	unsigned bestd = typo_budget(strlen(key)) + 1;
	for (size_t i = 0; i < N_OPTS; i++) {
		unsigned d = edit_distance(dotted, opts[i].name);
		if (d < bestd) {
			bestd = d;
			best = &opts[i];
		}
	}
	return best;
}

/* ---- the YAML document ------------------------------------------------ */

struct pctx {
	const char *path;
	yaml_document_t *doc;
	struct st_config *cfg;  /* the private copy being filled */
	unsigned *lines;        /* per option: line it was set on, 0 = not */
	char *err;
	size_t errlen;
};

static unsigned node_line(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.line + 1;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a scalar";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* "key:" with nothing after it, "~" or "null" (unquoted). */
static bool is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = scalar(n);
	return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* A scalar with a NUL inside ("\0" in a quoted string) would be cut short
 * by every C string function below and silently mean something else. */
static bool has_nul(const yaml_node_t *n)
{
	return strlen(scalar(n)) != n->data.scalar.length;
}

static int apply_list(struct pctx *c, const struct config_opt *o,
		      const char *key, yaml_node_t *v)
{
	char **items = field(c->cfg, o->off);
	unsigned *count = field(c->cfg, o->count_off);
	char q[128];

	for (unsigned i = 0; i < *count; i++) {
		free(items[i]);
		items[i] = NULL;
	}
	*count = 0;
	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE) {
		if (v->type == YAML_SCALAR_NODE) {
			sanitize(scalar(v), v->data.scalar.length, q,
				 sizeof(q));
			return report(c->err, c->errlen, c->path,
				      node_line(v), key,
				      "expected a list, found the scalar "
				      "\"%s\"; write it as a YAML list, e.g. "
				      "[\"%s\"]", q, q);
		}
		return report(c->err, c->errlen, c->path, node_line(v), key,
			      "expected a list, found %s; write it as a YAML "
			      "list of strings, e.g. [\"--no-pci\"]",
			      node_kind(v));
	}
	size_t n = (size_t)(v->data.sequence.items.top -
			    v->data.sequence.items.start);
	if (n > o->max)
		return report(c->err, c->errlen, c->path, node_line(v), key,
			      "too many items (%zu); at most %" PRIu64
			      " are allowed", n, o->max);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = yaml_document_get_node(
			c->doc, v->data.sequence.items.start[i]);
		if (it->type != YAML_SCALAR_NODE)
			return report(c->err, c->errlen, c->path,
				      node_line(it), key,
				      "item %zu is %s, expected a string; "
				      "quote it if it contains \": \"", i + 1,
				      node_kind(it));
		if (has_nul(it) || !*scalar(it))
			return report(c->err, c->errlen, c->path,
				      node_line(it), key,
				      "item %zu is empty or holds a NUL "
				      "byte; remove it", i + 1);
		if (!(items[i] = strdup(scalar(it)))) {
			report(c->err, c->errlen, c->path, 0, NULL,
			       "out of memory");
			return -ENOMEM;
		}
		*count = (unsigned)(i + 1);
	}
	return 0;
}

static int apply_value(struct pctx *c, const struct config_opt *o,
		       const char *key, yaml_node_t *v)
{
	char why[512], def[64];
	if (o->type == OPT_STRLIST)
		return apply_list(c, o, key, v);
	if (v->type != YAML_SCALAR_NODE)
		return report(c->err, c->errlen, c->path, node_line(v), key,
			      "expected a single value, found %s; write it "
			      "on one line as \"%s: <value>\"", node_kind(v),
			      key_part(o->name));
	if (is_null(v)) {
		if (o->type == OPT_STRING)
			return apply_scalar(o, "", c->cfg, why, sizeof(why));
		fmt_default(o, def, sizeof(def));
		return report(c->err, c->errlen, c->path, node_line(v), key,
			      "no value given; write a value (default %s) "
			      "or remove the key", def);
	}
	if (has_nul(v))
		return report(c->err, c->errlen, c->path, node_line(v), key,
			      "value holds a NUL byte; remove the \"\\0\"");
	int rc = apply_scalar(o, scalar(v), c->cfg, why, sizeof(why));
	if (rc == -ENOMEM) {
		report(c->err, c->errlen, c->path, 0, NULL, "out of memory");
		return -ENOMEM;
	}
	if (rc)
		return report(c->err, c->errlen, c->path, node_line(v), key,
			      "%s", why);
	return 0;
}

static int unknown_section(struct pctx *c, yaml_node_t *k, const char *name)
{
	char q[128];
	sanitize(name, strlen(name), q, sizeof(q));
	const struct config_opt *o = opt_find(name);
	if (o)
		return report(c->err, c->errlen, c->path, node_line(k), q,
			      "unknown section; write it nested as "
			      "\"%.*s:\" then \"  %s: ...\"",
			      (int)sect_len(o->name), o->name,
			      key_part(o->name));
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(key_part(opts[i].name), name) == 0)
			return report(c->err, c->errlen, c->path,
				      node_line(k), q,
				      "unknown section; \"%s\" is a key of "
				      "section \"%.*s\", write it under "
				      "\"%.*s:\"", q,
				      (int)sect_len(opts[i].name),
				      opts[i].name,
				      (int)sect_len(opts[i].name),
				      opts[i].name);
	/* The closest section name, if it is close enough. */
	const char *best = NULL;
	size_t bestlen = 0;
	unsigned bestd = typo_budget(strlen(name)) + 1;
	char list[256];
	size_t ln = 0;
	list[0] = '\0';
	for (size_t i = 0; i < N_OPTS; i++) {
		size_t sl = sect_len(opts[i].name);
		if (i > 0 && in_section(&opts[i - 1], opts[i].name, sl))
			continue;
		char sect[32];
		snprintf(sect, sizeof(sect), "%.*s", (int)sl, opts[i].name);
		unsigned d = edit_distance(name, sect);
		if (d < bestd) {
			bestd = d;
			best = opts[i].name;
			bestlen = sl;
		}
		int w = snprintf(list + ln, sizeof(list) - ln, "%s%s",
				 ln ? ", " : "", sect);
		if (w > 0 && (size_t)w < sizeof(list) - ln)
			ln += (size_t)w;
	}
	if (best)
		return report(c->err, c->errlen, c->path, node_line(k), q,
			      "unknown section; did you mean \"%.*s\"?",
			      (int)bestlen, best);
	return report(c->err, c->errlen, c->path, node_line(k), q,
		      "unknown section; sections are %s", list);
}

static int unknown_key(struct pctx *c, yaml_node_t *k, const char *dotted,
		       int first)
{
	char q[160];
	sanitize(dotted, strlen(dotted), q, sizeof(q));
	const struct config_opt *o = closest_opt(dotted);
	if (o)
		return report(c->err, c->errlen, c->path, node_line(k), q,
			      "unknown key; did you mean \"%s\"?", o->name);
	char list[512];
	size_t ln = 0, sl = sect_len(opts[first].name);
	list[0] = '\0';
	for (size_t i = (size_t)first;
	     i < N_OPTS && in_section(&opts[i], opts[first].name, sl); i++) {
		int w = snprintf(list + ln, sizeof(list) - ln, "%s%s",
				 ln ? ", " : "", key_part(opts[i].name));
		if (w > 0 && (size_t)w < sizeof(list) - ln)
			ln += (size_t)w;
	}
	return report(c->err, c->errlen, c->path, node_line(k), q,
		      "unknown key; keys of \"%.*s\" are %s", (int)sl,
		      opts[first].name, list);
}

static int load_section(struct pctx *c, const char *sect, int first,
			yaml_node_t *m)
{
	char dotted[160];
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
	     p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		if (k->type != YAML_SCALAR_NODE)
			return report(c->err, c->errlen, c->path,
				      node_line(k), sect,
				      "a key is %s; keys are plain names "
				      "like \"workers\"", node_kind(k));
		if (has_nul(k))
			return report(c->err, c->errlen, c->path,
				      node_line(k), sect,
				      "a key holds a NUL byte; remove the "
				      "\"\\0\"");
		snprintf(dotted, sizeof(dotted), "%s.%s", sect, scalar(k));
		const struct config_opt *o = opt_find(dotted);
		if (!o || !in_section(o, sect, strlen(sect)))
			return unknown_key(c, k, dotted, first);
		size_t idx = (size_t)(o - opts);
		if (c->lines[idx])
			return report(c->err, c->errlen, c->path,
				      node_line(k), o->name,
				      "duplicate key (first set on line %u); "
				      "keep one of them", c->lines[idx]);
		c->lines[idx] = node_line(k);
		int rc = apply_value(c, o, o->name, v);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_doc(struct pctx *c)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	if (!root || is_null(root))
		return 0; /* empty file, or comments only: all defaults */
	if (root->type != YAML_MAPPING_NODE)
		return report(c->err, c->errlen, c->path, node_line(root),
			      NULL,
			      "the top level is %s; it must be a mapping of "
			      "sections like \"capture:\" with keys indented "
			      "below", node_kind(root));
	unsigned sect_line[N_OPTS] = { 0 }; /* by first option index */
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		if (k->type != YAML_SCALAR_NODE)
			return report(c->err, c->errlen, c->path,
				      node_line(k), NULL,
				      "a section name is %s; sections are "
				      "plain names like \"capture\"",
				      node_kind(k));
		if (has_nul(k))
			return report(c->err, c->errlen, c->path,
				      node_line(k), NULL,
				      "a section name holds a NUL byte; "
				      "remove the \"\\0\"");
		const char *sect = scalar(k);
		int first = sect_find(sect);
		if (first < 0)
			return unknown_section(c, k, sect);
		if (sect_line[first])
			return report(c->err, c->errlen, c->path,
				      node_line(k), sect,
				      "duplicate section (first on line %u); "
				      "merge the two into one",
				      sect_line[first]);
		sect_line[first] = node_line(k);
		if (is_null(v))
			continue; /* every key commented out */
		if (v->type != YAML_MAPPING_NODE)
			return report(c->err, c->errlen, c->path,
				      node_line(v), sect,
				      "expected a mapping of keys, found %s; "
				      "put the keys on their own lines below "
				      "\"%s:\", indented", node_kind(v), sect);
		int rc = load_section(c, sect, first, v);
		if (rc)
			return rc;
	}
	return 0;
}

/* Line (1-based) of byte |off| in |text|. */
static unsigned line_of(const char *text, size_t len, size_t off)
{
	unsigned line = 1;
	for (size_t i = 0; i < off && i < len; i++)
		line += text[i] == '\n';
	return line;
}

static int yaml_error(const yaml_parser_t *yp, const char *path,
		      const char *text, size_t len, char *err, size_t errlen)
{
	const char *problem = yp->problem ? yp->problem : "unknown error";
	switch (yp->error) {
	case YAML_MEMORY_ERROR:
		report(err, errlen, path, 0, NULL, "out of memory");
		return -ENOMEM;
	case YAML_READER_ERROR:
		if (yp->problem_value >= 0)
			return report(err, errlen, path,
				      line_of(text, len, yp->problem_offset),
				      NULL,
				      "not valid text: %s (byte 0x%02x); save "
				      "the file as UTF-8 text",
				      problem, (unsigned)yp->problem_value);
		return report(err, errlen, path,
			      line_of(text, len, yp->problem_offset), NULL,
			      "not valid text: %s; save the file as UTF-8 "
			      "text", problem);
	default:
		break;
	}
	unsigned line = (unsigned)yp->problem_mark.line + 1;
	if (yp->context)
		return report(err, errlen, path, line, NULL,
			      "YAML syntax error: %s %s (from line %u); check "
			      "indentation (spaces, not tabs), quoting and "
			      "the \":\" after each key",
			      problem, yp->context,
			      (unsigned)yp->context_mark.line + 1);
	return report(err, errlen, path, line, NULL,
		      "YAML syntax error: %s; check indentation (spaces, "
		      "not tabs), quoting and the \":\" after each key",
		      problem);
}

/* Parses |len| bytes of YAML into |cfg| (which holds defaults), recording
 * the line of every option set in |lines|. */
static int parse_text(const char *path, const char *text, size_t len,
		      struct st_config *cfg, unsigned *lines, char *err,
		      size_t errlen)
{
	yaml_parser_t yp;
	yaml_document_t doc;
	int rc;

	if (!yaml_parser_initialize(&yp)) {
		report(err, errlen, path, 0, NULL, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	/* yaml_parser_load() frees the document itself when it fails. */
	if (!yaml_parser_load(&yp, &doc)) {
		rc = yaml_error(&yp, path, text, len, err, errlen);
		yaml_parser_delete(&yp);
		return rc;
	}
	struct pctx c = { .path = path, .doc = &doc, .cfg = cfg,
			  .lines = lines, .err = err, .errlen = errlen };
	rc = load_doc(&c);
	bool empty = yaml_document_get_root_node(&doc) == NULL;
	yaml_document_delete(&doc);
	if (rc == 0 && !empty) {
		/* A second document would be ignored silently otherwise. */
		if (!yaml_parser_load(&yp, &doc)) {
			rc = yaml_error(&yp, path, text, len, err, errlen);
		} else {
			if (yaml_document_get_root_node(&doc))
				rc = report(err, errlen, path,
					    (unsigned)doc.start_mark.line + 1,
					    NULL,
					    "a second YAML document starts "
					    "here; a config file holds one, "
					    "remove the \"---\" and merge");
			yaml_document_delete(&doc);
		}
	}
	yaml_parser_delete(&yp);
	return rc;
}

/* Reads all of |path| into a NUL-terminated buffer the caller frees. */
static int read_file(const char *path, char **text, size_t *len, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	int rc = 0;

	*text = NULL;
	if (!f) {
		rc = -errno;
		report(err, errlen, path, 0, NULL,
		       "cannot open: %s; check the path and its permissions",
		       strerror(-rc));
		return rc;
	}
	if (fstat(fileno(f), &st) != 0) {
		rc = -errno;
		report(err, errlen, path, 0, NULL, "cannot stat: %s",
		       strerror(-rc));
	} else if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		report(err, errlen, path, 0, NULL,
		       "is a directory; give the path of a YAML file");
	} else if (st.st_size > (off_t)CONFIG_MAX_FILE) {
		rc = -EFBIG;
		report(err, errlen, path, 0, NULL,
		       "file is larger than %uKiB; a sealtap config is a few "
		       "KiB, check the path", CONFIG_MAX_FILE / 1024);
	} else if (!(*text = malloc(CONFIG_MAX_FILE + 1))) {
		rc = -ENOMEM;
		report(err, errlen, path, 0, NULL, "out of memory");
	} else {
		/* Read up to the cap, not st_size: a FIFO or /dev/stdin
		 * reports 0. */
		*len = fread(*text, 1, CONFIG_MAX_FILE + 1, f);
		if (ferror(f)) {
			rc = errno ? -errno : -EIO;
			report(err, errlen, path, 0, NULL, "cannot read: %s",
			       strerror(-rc));
		} else if (*len > CONFIG_MAX_FILE) {
			rc = -EFBIG;
			report(err, errlen, path, 0, NULL,
			       "file is larger than %uKiB; a sealtap config "
			       "is a few KiB, check the path",
			       CONFIG_MAX_FILE / 1024);
		} else {
			(*text)[*len] = '\0';
		}
	}
	fclose(f);
	if (rc) {
		free(*text);
		*text = NULL;
	}
	return rc;
}

/* ---- public API ------------------------------------------------------- */

static void free_strings(struct st_config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *o = &opts[i];
		if (o->type == OPT_STRING) {
			char **p = field(cfg, o->off);
			free(*p);
			*p = NULL;
		} else if (o->type == OPT_STRLIST) {
			char **items = field(cfg, o->off);
			unsigned *n = field(cfg, o->count_off);
			for (unsigned j = 0; j < *n && j < o->max; j++) {
				free(items[j]);
				items[j] = NULL;
			}
			*n = 0;
		}
	}
	free(cfg->path);
	cfg->path = NULL;
}

void config_defaults(struct st_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *o = &opts[i];
		if (is_numeric(o))
			store_uint(cfg, o, o->def);
		else if (o->type == OPT_ENUM)
			*(int *)field(cfg, o->off) = (int)o->def;
		/* strings and lists: NULL / empty from the memset */
	}
}

/* config_validate() with the location of each option: |path| and |lines|
 * (per option, 0 = not from the file) may be NULL. */
/* Whether two checked "host:port" listen addresses would take the same
 * socket: one port (not 0: each gets its own), and the same host or a
 * wildcard of the host's family (0.0.0.0 covers IPv4 hosts, [::] IPv6
 * ones; the two wildcards together are the usual dual-stack pair). */
static bool addrs_overlap(const char *a, const char *b)
{
	const char *ca = strrchr(a, ':'), *cb = strrchr(b, ':');
	long pa = atol(ca + 1), pb = atol(cb + 1);
	if (pa != pb || pa == 0)
		return false;
	size_t la = (size_t)(ca - a), lb = (size_t)(cb - b);
	if (la == lb && !strncmp(a, b, la))
		return true;
	bool v6a = a[0] == '[', v6b = b[0] == '[';
	if (v6a != v6b)
		return false;
	const char *wild = v6a ? "[::]" : "0.0.0.0";
	size_t wl = strlen(wild);
	return (la == wl && !strncmp(a, wild, wl)) ||
	       (lb == wl && !strncmp(b, wild, wl)) || la == 0 || lb == 0;
}

static int validate_at(const struct st_config *cfg, const char *path,
		       const unsigned *lines, char *err, size_t errlen)
{
#define LINE(o) (lines ? lines[(o) - opts] : 0)
	char q[64], range[128];

	/* Per option, for values set outside the file (command line). */
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *o = &opts[i];
		if (is_numeric(o)) {
			uint64_t v = load_uint(cfg, o);
			if (v >= o->min && v <= o->max)
				continue;
			fmt_num(o, v, q, sizeof(q));
			fmt_range(o, range, sizeof(range));
			return report(err, errlen, path, LINE(o), o->name,
				      "value \"%s\" is out of range %s; use a "
				      "value in that range", q, range);
		}
		if (o->type == OPT_ENUM) {
			int v = *(const int *)((const char *)cfg + o->off);
			if (choice_name(o, v))
				continue;
			fmt_range(o, range, sizeof(range));
			return report(err, errlen, path, LINE(o), o->name,
				      "value %d is not a valid choice; use one "
				      "of: %s", v, range);
		}
		if (o->type == OPT_STRLIST) {
			unsigned n = *(const unsigned *)((const char *)cfg +
							 o->count_off);
			if (n > o->max)
				return report(err, errlen, path, LINE(o),
					      o->name,
					      "too many items (%u); at most "
					      "%" PRIu64 " are allowed", n,
					      o->max);
		}
	}

	/* rte_ring sizes are powers of two (the ring masks indices). */
	const struct config_opt *ring = opt_find("capture.ring_size");
	uint32_t rs = cfg->capture.ring_size;
	if (rs & (rs - 1)) {
		uint32_t lo = 1;
		while (lo <= rs / 2)
			lo <<= 1;
		return report(err, errlen, path, LINE(ring), ring->name,
			      "value \"%u\" is not a power of two; use %u or "
			      "%u", rs, lo, lo * 2);
	}

	/* One direction may not hold more than the whole worker pool. */
	const struct config_opt *fb = opt_find("reasm.flow_buffer");
	const struct config_opt *mc = opt_find("reasm.worker_memcap");
	if (cfg->reasm.flow_ooo_max > cfg->reasm.worker_memcap) {
		char fbs[32], mcs[32];
		fmt_num(fb, cfg->reasm.flow_ooo_max, fbs, sizeof(fbs));
		fmt_num(mc, cfg->reasm.worker_memcap, mcs, sizeof(mcs));
		const struct config_opt *at = LINE(fb) ? fb : mc;
		return report(err, errlen, path, LINE(at), fb->name,
			      "value \"%s\" is larger than "
			      "reasm.worker_memcap (%s); lower it or raise "
			      "reasm.worker_memcap", fbs, mcs);
	}

	/* PKCS#11 token labels are 32 bytes (CK_TOKEN_INFO.label). */
	const struct config_opt *tl = opt_find("kms.token_label");
	if (cfg->kms.token_label && strlen(cfg->kms.token_label) > 32)
		return report(err, errlen, path, LINE(tl), tl->name,
			      "value \"%s\" is longer than 32 characters; "
			      "PKCS#11 token labels hold at most 32",
			      cfg->kms.token_label);

	const struct config_opt *rb = opt_find("kms.retry_base");
	const struct config_opt *rm = opt_find("kms.retry_max");
	if (cfg->kms.retry_max_ns < cfg->kms.retry_base_ns) {
		char bs[32], ms[32];
		fmt_num(rb, cfg->kms.retry_base_ns, bs, sizeof(bs));
		fmt_num(rm, cfg->kms.retry_max_ns, ms, sizeof(ms));
		const struct config_opt *at = LINE(rm) ? rm : rb;
		return report(err, errlen, path, LINE(at), rm->name,
			      "value \"%s\" is less than kms.retry_base "
			      "(%s); raise it or lower kms.retry_base", ms,
			      bs);
	}

	/* extproc: TLS files come in pairs; addresses and names parse. */
	const struct config_opt *tc = opt_find("extproc.tls_cert");
	const struct config_opt *tk = opt_find("extproc.tls_key");
	const struct config_opt *ca = opt_find("extproc.tls_client_ca");
	bool has_cert = cfg->extproc.tls_cert && cfg->extproc.tls_cert[0];
	bool has_key = cfg->extproc.tls_key && cfg->extproc.tls_key[0];
	if (has_cert != has_key) {
		const struct config_opt *at = has_cert ? tc : tk;
		return report(err, errlen, path, LINE(at), at->name,
			      "is set without %s; give both the certificate "
			      "and its key, or neither (h2c)",
			      has_cert ? tk->name : tc->name);
	}
	if (cfg->extproc.tls_client_ca && cfg->extproc.tls_client_ca[0] &&
	    !has_cert)
		return report(err, errlen, path, LINE(ca), ca->name,
			      "needs extproc.tls_cert and extproc.tls_key "
			      "(mutual TLS is TLS first)");
	const struct config_opt *xl = opt_find("extproc.listen");
	for (unsigned i = 0; i < cfg->extproc.nlisten; i++) {
		const char *a = cfg->extproc.listen[i];
		const char *colon = a ? strrchr(a, ':') : NULL;
		bool ok = colon && colon[1];
		for (const char *q2 = colon ? colon + 1 : ""; ok && *q2; q2++)
			ok = *q2 >= '0' && *q2 <= '9';
		if (ok)
			ok = atol(colon + 1) <= 65535 &&
			     (a[0] != '[' || (colon > a && colon[-1] == ']'));
		if (!ok)
			return report(err, errlen, path, LINE(xl), xl->name,
				      "value \"%s\" is not host:port; write "
				      "e.g. 0.0.0.0:9000, [::]:9000 or "
				      "127.0.0.1:0", a ? a : "");
	}
	const struct config_opt *hl = opt_find("extproc.health_listen");
	const char *ha = cfg->extproc.health_listen;
	if (ha && ha[0]) {
		const char *colon = strrchr(ha, ':');
		bool ok = colon && colon[1];
		for (const char *q2 = colon ? colon + 1 : ""; ok && *q2; q2++)
			ok = *q2 >= '0' && *q2 <= '9';
		if (!ok || atol(colon + 1) > 65535)
			return report(err, errlen, path, LINE(hl), hl->name,
				      "value \"%s\" is not host:port; write "
				      "e.g. 0.0.0.0:8080", ha);
	}
	/* The same address twice (or a wildcard and an address it covers,
	 * on one port) would fail at bind as if another process held the
	 * port; it is a mistake in this file. */
	for (unsigned i = 0; i < cfg->extproc.nlisten; i++) {
		for (unsigned j = i + 1; j < cfg->extproc.nlisten; j++)
			if (addrs_overlap(cfg->extproc.listen[i],
					  cfg->extproc.listen[j]))
				return report(err, errlen, path, LINE(xl),
					      xl->name, "\"%s\" and \"%s\" are "
					      "the same address and port; "
					      "list each once",
					      cfg->extproc.listen[i],
					      cfg->extproc.listen[j]);
		if (ha && ha[0] && addrs_overlap(cfg->extproc.listen[i], ha))
			return report(err, errlen, path, LINE(hl), hl->name,
				      "\"%s\" is also an ext_proc listen "
				      "address (\"%s\"); give the health port "
				      "a port of its own", ha,
				      cfg->extproc.listen[i]);
	}
	const struct config_opt *rh = opt_find("extproc.request_id_header");
	const char *rid = cfg->extproc.request_id_header;
	for (const char *q2 = rid; q2 && *q2; q2++) {
		/* RFC 9110 §5.6.2 token, lowercase for HTTP/2 (RFC 9113
		 * §8.2.1) */
		if (!((*q2 >= 'a' && *q2 <= 'z') || (*q2 >= '0' && *q2 <= '9') ||
		      strchr("-_.!#$%&'*+^`|~", *q2)))
			return report(err, errlen, path, LINE(rh), rh->name,
				      "value \"%s\" is not a lowercase header "
				      "name; use letters a-z, digits and '-'",
				      rid);
	}

	/* Every worker ring full at once must not drain the pool, or RX
	 * stalls while workers hold all mbufs. */
	const struct config_opt *mb = opt_find("capture.mbufs");
	uint64_t need = (uint64_t)cfg->capture.workers * cfg->capture.ring_size;
	if (cfg->capture.mbufs && cfg->capture.mbufs < need)
		return report(err, errlen, path, LINE(mb), mb->name,
			      "value \"%u\" is less than capture.workers * "
			      "capture.ring_size (%u * %u = %" PRIu64 "); use "
			      "0 (derived) or at least %" PRIu64,
			      cfg->capture.mbufs, cfg->capture.workers,
			      cfg->capture.ring_size, need, need);
	return 0;
#undef LINE
}

int config_validate(const struct st_config *cfg, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	return validate_at(cfg, NULL, NULL, err, errlen);
}

/* |cfg| is overwritten, not freed: call config_free() on a loaded config
 * before loading into it again. A NULL |path| gives the defaults. */
int config_load(const char *path, struct st_config *cfg, char *err,
		size_t errlen)
{
	struct st_config tmp;
	unsigned lines[N_OPTS] = { 0 };
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	config_defaults(cfg);
	if (!path)
		return 0;
	config_defaults(&tmp);
	rc = read_file(path, &text, &len, err, errlen);
	if (rc == 0)
		rc = parse_text(path, text, len, &tmp, lines, err, errlen);
	free(text);
	if (rc == 0)
		rc = validate_at(&tmp, path, lines, err, errlen);
	if (rc == 0 && !(tmp.path = strdup(path))) {
		rc = -ENOMEM;
		report(err, errlen, path, 0, NULL, "out of memory");
	}
	if (rc) {
		free_strings(&tmp);
		return rc;
	}
	*cfg = tmp;
	return 0;
}

void config_free(struct st_config *cfg)
{
	free_strings(cfg);
	config_defaults(cfg);
}

/* Writes "  # " comment lines of |s| wrapped at 78 columns. */
static void write_comment(FILE *out, const char *s)
{
	const size_t width = 78 - 4;
	while (*s) {
		size_t n = strlen(s);
		if (n > width) {
			n = width;
			while (n > 0 && s[n] != ' ')
				n--;
			if (n == 0)
				n = width;
		}
		fprintf(out, "  # %.*s\n", (int)n, s);
		s += n;
		while (*s == ' ')
			s++;
	}
}

void config_write_reference(FILE *out)
{
	char def[64], range[128], line[256];

	fprintf(out,
		"# sealtap configuration reference: every option with its "
		"default.\n"
		"# Printed from the option table in src/config.c; "
		"docs/config.md lists the\n"
		"# same options. Sizes take " SIZE_UNITS ";\n"
		"# durations take " DUR_UNITS ".\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *o = &opts[i];
		size_t sl = sect_len(o->name);
		if (i == 0 || !in_section(&opts[i - 1], o->name, sl))
			fprintf(out, "\n%.*s:\n", (int)sl, o->name);
		else
			fprintf(out, "\n");
		fmt_default(o, def, sizeof(def));
		fmt_range(o, range, sizeof(range));
		write_comment(out, o->help);
		snprintf(line, sizeof(line), "Default %s: %s", def, o->why);
		write_comment(out, line);
		if (o->type == OPT_STRING)
			snprintf(line, sizeof(line), "Type string.");
		else if (o->type == OPT_STRLIST)
			snprintf(line, sizeof(line), "Type string list, %s.",
				 range);
		else
			snprintf(line, sizeof(line), "Type %s; %s%s.",
				 type_name(o),
				 o->type == OPT_ENUM ? "one of: " : "range ",
				 range);
		write_comment(out, line);
		fprintf(out, "  %s: %s\n", key_part(o->name), def);
	}
}
