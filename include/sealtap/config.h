/* Configuration: one YAML file turned into an immutable struct before
 * anything starts.
 *
 * The option table in config.c (name, type, range, default, target field,
 * help) drives parsing, validation, the reference printed by
 * `sealtap config-reference` and docs/config.md. Every option has a
 * default, so an absent file or an empty one is a valid configuration.
 *
 * Errors name the file, line, key, value and the fix, in one line:
 *   cfg.yaml:12: flow.max_flows: value "-5" is out of range [1024, 67108864]; use an integer in that range
 */
#ifndef SEALTAP_CONFIG_H
#define SEALTAP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sealtap/decode.h"
#include "sealtap/flow.h"
#include "sealtap/h2.h"
#include "sealtap/reasm.h"

enum config_hugepages {
	CONFIG_HUGEPAGES_AUTO = 0, /* use them if enough are reserved */
	CONFIG_HUGEPAGES_ON = 1,   /* require them */
	CONFIG_HUGEPAGES_OFF = 2,  /* --no-huge */
};

enum config_dispatch {
	CONFIG_DISPATCH_AUTO = 0,     /* rss where the port can, else software */
	CONFIG_DISPATCH_RSS = 1,      /* one RX queue per worker, NIC hashing */
	CONFIG_DISPATCH_SOFTWARE = 2, /* RX stage hashes the inner 5-tuple */
};

enum config_kms_backend {
	CONFIG_KMS_PKCS11 = 0, /* PKCS#11 module: SoftHSM2 locally, an HSM */
};

#define CONFIG_MAX_LIST 64 /* entries in a string list (eal.args, ...) */

struct st_config {
	char *path; /* file it came from, NULL for defaults only */
	struct {
		int level; /* enum log_level */
	} log;
	struct {
		char *args[CONFIG_MAX_LIST]; /* extra EAL arguments, owned */
		unsigned nargs;
		int hugepages;      /* enum config_hugepages */
		uint32_t memory_mb; /* EAL memory (-m) */
	} eal;
	struct {
		uint32_t workers;        /* worker lcores */
		uint32_t burst;          /* packets per rx burst */
		uint32_t ring_size;      /* per-worker ring entries (pow2) */
		uint32_t mbufs;          /* mempool size, 0 = derived */
		uint32_t mbuf_data_size; /* bytes per mbuf data room */
		uint32_t rx_desc;        /* RX descriptors per queue (live) */
		int dispatch;            /* enum config_dispatch */
		char *port;              /* ethdev name for live capture, owned */
	} capture;
	struct decode_cfg decode;
	struct flow_table_cfg flow;
	struct reasm_cfg reasm;
	struct h2_cfg h2;
	struct {
		char *dir;            /* record directory, owned; NULL: "records" */
		uint64_t ring_size;   /* per-worker ring bytes */
		uint64_t file_max_bytes;
		uint64_t file_max_age_ns;
		uint64_t flush_ns;
		uint32_t batch_bytes;
	} export_;
	struct {
		int backend;             /* enum config_kms_backend */
		char *pkcs11_module;     /* owned; NULL: KMS_PKCS11_MODULE_DEFAULT */
		char *token_label;       /* owned; NULL: KMS_TOKEN_DEFAULT */
		char *pin_file;          /* owned; NULL: the PIN is in pin_env */
		char *pin_env;           /* owned; NULL: KMS_PIN_ENV_DEFAULT */
		char *softhsm_dir;       /* owned; NULL: SOFTHSM2_CONF as set */
		uint32_t retry_attempts;
		uint64_t retry_base_ns;
		uint64_t retry_max_ns;
		uint64_t health_interval_ns;
	} kms;
	struct {
		char *store;             /* owned; NULL: KEYS_STORE_DEFAULT */
		char *default_kek;       /* owned; NULL: KEYS_KEK_DEFAULT */
		uint32_t max_tenants;
		uint64_t dek_max_seals;
		uint64_t dek_max_age_ns;
		uint32_t rotate_at;      /* percent of either limit */
		uint64_t save_interval_ns; /* seal counts to the store */
		int memory;              /* enum keys_mem_mode */
	} keys;
	struct {
		char *listen[CONFIG_MAX_LIST]; /* "host:port", owned */
		unsigned nlisten;
		char *tls_cert;          /* owned; NULL: h2c (no TLS) */
		char *tls_key;           /* owned */
		char *tls_client_ca;     /* owned; NULL: no client certs */
		uint32_t threads;        /* event-loop threads */
		uint64_t max_message;    /* bytes of one gRPC message */
		uint32_t max_streams;    /* concurrent streams per connection */
		uint32_t max_connections; /* open connections, all threads */
		uint32_t max_header_list; /* bytes of a request header list */
		uint64_t idle_timeout_ns;
		uint64_t stream_timeout_ns;
		uint64_t shutdown_timeout_ns;
		char *request_id_header; /* owned; NULL: x-sealtap-request-id */
		char *health_listen;     /* owned; NULL: no HTTP health port */
		bool records;            /* write exchange records */
	} extproc;
};

/* Fills |cfg| with every option's default. */
void config_defaults(struct st_config *cfg);

/* Loads |path| over the defaults and validates everything (types, ranges,
 * unknown keys, cross-option rules). On error returns -EINVAL (or -errno
 * for I/O) and writes one line to |err|; |cfg| is then left with defaults
 * only (nothing half-applied). On success the caller frees |cfg| with
 * config_free(). */
int config_load(const char *path, struct st_config *cfg, char *err,
		size_t errlen);

/* Validates rules that span options (e.g. ring_size a power of two);
 * also used after command-line overrides. 0 or -EINVAL with |err|. */
int config_validate(const struct st_config *cfg, char *err, size_t errlen);

/* Frees strings owned by |cfg| and resets it to defaults. */
void config_free(struct st_config *cfg);

/* Writes every option as commented YAML (name, default, range, help). */
void config_write_reference(FILE *out);

#endif
