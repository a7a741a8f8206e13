/* Keys: the tenant key store file, the DEK cache the workers read, and the
 * `sealtap keys` command. The KMS that wraps and unwraps DEKs is kms.h; the
 * sealing engine that uses a plaintext DEK is seal.h. docs/keys.md describes
 * the key hierarchy, the store format and the cache's memory protections.
 *
 *   tenant KEK (in the KMS, never leaves it)
 *     └─ wraps ─> DEK (32 random bytes; wrapped in the store file,
 *                      plaintext only in the DEK cache region)
 *                   └─ HKDF ─> GCM / SIV / HMAC keys (seal.h)
 */
#ifndef SEALTAP_KEYS_H
#define SEALTAP_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealtap/kms.h"
#include "sealtap/seal.h"

/* ---- key store file (keys_store.c) ---------------------------------------------
 *
 * One JSON file, versioned, listing per tenant its KMS, KEK reference and
 * wrapped DEKs (never plaintext key material). Written atomically (temp
 * file, fsync, rename, fsync of the directory) with mode 0600; parsed
 * strictly (unknown or duplicate keys, wrong types, bad base64, bad dates,
 * inconsistent states are errors naming the line and the JSON path).
 * Read-modify-write cycles hold keys_store_lock(). */

#define KEYS_STORE_DEFAULT "keys.json"     /* keys.store left empty */
#define KEYS_KEK_DEFAULT "sealtap-dev-kek" /* keys.default_kek left empty */
#define KEYS_STORE_FORMAT "sealtap-keystore"
#define KEYS_STORE_VERSION 1
#define KEYS_TENANT_MAX 48          /* tenant name: [A-Za-z0-9_-]{1,48} */
#define KEYS_KMS_NAME_MAX 15
#define KEYS_STORE_MAX_TENANTS 4096
#define KEYS_STORE_MAX_DEKS 1024    /* per tenant, retired ones included */
#define KEYS_STORE_MAX_FILE (16u << 20)

enum keys_dek_state {
	KEYS_DEK_ACTIVE = 0,  /* seals new values; one per tenant */
	KEYS_DEK_RETIRED = 1, /* opens old values only */
};

struct keys_dek_rec {
	char id[SEAL_KEY_ID_MAX + 1]; /* "<tenant>-<seq>" */
	enum keys_dek_state state;
	int64_t created;              /* Unix seconds (UTC) */
	int64_t retired;              /* Unix seconds; 0 while active */
	uint64_t seals;               /* seals counted so far */
	uint32_t leases;              /* nonce fixed-field leases handed out */
	struct kms_blob wrapped;
};

struct keys_tenant_rec {
	char name[KEYS_TENANT_MAX + 1];
	char kms[KEYS_KMS_NAME_MAX + 1];  /* backend name: "pkcs11" */
	char kek[KMS_REF_MAX + 1];        /* KEK reference in that KMS */
	uint32_t next_seq;                /* next DEK id number */
	struct keys_dek_rec *deks;        /* oldest first; owned */
	unsigned ndeks, cap;
};

struct keys_store {
	struct keys_tenant_rec *tenants;  /* sorted by name; owned */
	unsigned ntenants, cap;
};

/* True if |name| is a valid tenant name (see KEYS_TENANT_MAX). */
bool keys_tenant_name_valid(const char *name);

/* An empty store. On success the caller frees *|out| with
 * keys_store_free(). 0 or -ENOMEM. */
int keys_store_new(struct keys_store **out);
/* Takes ownership of |s|. NULL is fine. */
void keys_store_free(struct keys_store *s);

/* Strict parse of |len| bytes at |text|; |name| (the file) prefixes error
 * messages. On error nothing is returned (no half-parsed store) and one
 * line goes to |err|: "keys.json:14: tenants[0].deks[1].wrapped: not valid
 * base64; ...". -EINVAL (content), -EPROTONOSUPPORT (other version),
 * -EFBIG, -ENOMEM. Does not take ownership of |text|; on success the caller
 * frees *|out|. */
int keys_store_parse(const char *text, size_t len, const char *name,
		     struct keys_store **out, char *err, size_t errlen);
/* Reads and parses |path|. -ENOENT if it does not exist (with a message),
 * else as keys_store_parse() or -errno. */
int keys_store_load(const char *path, struct keys_store **out, char *err,
		    size_t errlen);
/* The JSON text of |s|, NUL-terminated; the caller frees *|text|. 0 or
 * -ENOMEM. */
int keys_store_format(const struct keys_store *s, char **text, size_t *len);
/* Writes |s| to |path| atomically with mode 0600. On failure |path| is
 * unchanged and no temporary file is left. 0 or -errno with |err|. Does
 * not take ownership of |s|. */
int keys_store_save(const struct keys_store *s, const char *path, char *err,
		    size_t errlen);

/* Takes an exclusive lock (flock) on "<path>.lock" for a read-modify-write
 * cycle; blocks while another process holds it. Returns the lock fd (give
 * it to keys_store_unlock) or -errno with |err|. */
int keys_store_lock(const char *path, char *err, size_t errlen);
void keys_store_unlock(int fd);

/* The tenant named |name|, or NULL. */
struct keys_tenant_rec *keys_store_tenant(struct keys_store *s,
					  const char *name);
/* Adds a tenant with no DEKs. -EEXIST, -EINVAL (name, kms, kek), -ENOSPC
 * (KEYS_STORE_MAX_TENANTS), -ENOMEM. *|out| points into |s| until the next
 * tenant is added. */
int keys_store_tenant_add(struct keys_store *s, const char *name,
			  const char *kms, const char *kek,
			  struct keys_tenant_rec **out, char *err,
			  size_t errlen);
/* The tenant's active DEK, or NULL. */
struct keys_dek_rec *keys_store_active(struct keys_tenant_rec *t);
struct keys_dek_rec *keys_store_dek(struct keys_tenant_rec *t,
				    const char *id);
/* Appends a DEK wrapped as |wrapped| with a fresh id, created at |now|
 * (Unix seconds), as the tenant's active DEK; the previous active one is
 * retired at |now|. -ENOSPC (KEYS_STORE_MAX_DEKS), -ENOMEM. *|out| points
 * into |t| until the next DEK is added. Does not take ownership of
 * |wrapped|. */
int keys_store_dek_add(struct keys_tenant_rec *t, const struct kms_blob *wrapped,
		       int64_t now, struct keys_dek_rec **out, char *err,
		       size_t errlen);
/* Hands out the next nonce fixed-field lease of |d| (seal.h: "instance")
 * and counts it. The caller saves the store before using the lease, so a
 * lease is never handed out twice. -ERANGE when the DEK has used all of
 * them (rotate it). */
int keys_store_lease(struct keys_dek_rec *d, uint32_t *instance);

/* ---- DEK cache (keys_cache.c) ---------------------------------------------------
 *
 * Plaintext DEKs live only in one dedicated region: a MAP_HUGETLB mapping
 * when hugepages are available, else regular pages locked with mlock() and
 * fenced by PROT_NONE guard pages (logged as a warning). The region is
 * excluded from core dumps (MADV_DONTDUMP) and from fork children
 * (MADV_WIPEONFORK); a slot is wiped (OPENSSL_cleanse) when its key is
 * rotated out or evicted and once no worker can still read it, and the
 * whole region on keys_cache_free().
 *
 * Workers read the key set through an immutable snapshot published by the
 * control thread (RCU with quiescent-state epochs): no lock, no shared write
 * on the hot path. Each worker counts its own seals per DEK in its own
 * cache line; the control thread sums them in keys_cache_tick(), asks for
 * rotation before a limit (event KEYS_EV_ROTATE) and withdraws a DEK that
 * reached one (KEYS_EV_EXHAUSTED). A tenant without a usable key (never
 * unwrapped, failed closed, exhausted) is absent from the snapshot's keys:
 * workers see NULL and must redact.
 *
 * Threads: keys_cache_snapshot, keys_snapshot_lookup, keys_cache_charge,
 * keys_cache_quiescent, keys_cache_online/offline are for worker |w| (each
 * worker only with its own index); everything else is for one control
 * thread. */

#define KEYS_SLOT_SIZE 64 /* bytes per DEK slot (>= KMS_DEK_MAX) */

enum keys_mem_mode {
	KEYS_MEM_AUTO = 0,    /* hugepages if possible, else locked pages */
	KEYS_MEM_HUGETLB = 1, /* hugepages or fail */
	KEYS_MEM_LOCKED = 2,  /* locked regular pages with guard pages */
};

enum keys_event_kind {
	KEYS_EV_ROTATE = 1,    /* a DEK passed rotate_at_pct of a limit */
	KEYS_EV_EXHAUSTED = 2, /* a DEK reached a limit */
};

struct keys_event {
	enum keys_event_kind kind;
	const char *tenant;
	const char *key_id;
	const char *reason;    /* "count" or "age" */
	uint64_t used;         /* seals so far (count) */
	uint64_t limit;
};

struct keys_cache_cfg {
	unsigned workers;          /* readers, 1..256 */
	unsigned max_tenants;      /* 1..65536 */
	uint64_t max_seals;        /* per DEK, over all instances */
	uint64_t max_age_ns;       /* per DEK, from its creation */
	unsigned rotate_at_pct;    /* 50..99 */
	enum keys_mem_mode mem;
	/* Control-thread callback for events; NULL = none. Called from
	 * keys_cache_tick(); must not call back into the cache. */
	void (*on_event)(void *arg, const struct keys_event *ev);
	void *arg;
};

/* What the control thread knows about a DEK it installs. */
struct keys_dek_meta {
	const char *key_id;     /* seal_key_id_valid() */
	uint32_t instance;      /* nonce lease (keys_store_lease) */
	int64_t created;        /* Unix seconds, for the age limit */
	uint64_t seals_before;  /* seals counted before this process */
};

/* A DEK as a worker sees it; immutable while in a snapshot. */
struct keys_dek {
	const uint8_t *key;     /* SEAL_DEK_LEN bytes in the protected region */
	char key_id[SEAL_KEY_ID_MAX + 1];
	uint32_t instance;      /* for seal_gcm_fixed_field() */
	uint32_t slot;          /* index of the per-worker usage counters */
	uint64_t generation;    /* unique per install: rebuild contexts when
				   it changes */
	uint64_t worker_quota;  /* seals one worker may make with it */
	uint64_t expires_ns;    /* CLOCK_REALTIME; unusable from then on */
};

enum keys_tenant_state {
	KEYS_TENANT_PENDING = 0,   /* known, no key yet */
	KEYS_TENANT_OK = 1,        /* has a usable key */
	KEYS_TENANT_FAILED = 2,    /* fail closed: DEK could not be unwrapped */
	KEYS_TENANT_EXHAUSTED = 3, /* key reached a limit, no successor yet */
};
const char *keys_tenant_state_name(enum keys_tenant_state s);

struct keys_tenant_view {
	const char *name;
	uint32_t name_len;
	enum keys_tenant_state state;
	const struct keys_dek *dek; /* NULL unless state is OK */
};

struct keys_snapshot {
	uint64_t version;           /* increases with each publish */
	unsigned n;
	const struct keys_tenant_view *t; /* sorted by name */
};

struct keys_cache_stats {
	const char *mem;            /* "hugetlb" or "locked" */
	size_t region_bytes;
	unsigned slots, slots_used;
	unsigned tenants, tenants_ok, tenants_failed, tenants_exhausted;
	uint64_t publishes, rotations_requested, exhausted, wiped;
	unsigned snapshots_pending; /* retired, waiting for workers */
};

struct keys_cache;

/* Maps and protects the region. -EINVAL (cfg), -ENOMEM (hugepages
 * required but missing, or mmap), -errno of mlock/madvise, with |err|. On
 * success the caller frees *|out| with keys_cache_free(). */
int keys_cache_new(const struct keys_cache_cfg *cfg, struct keys_cache **out,
		   char *err, size_t errlen);
/* Wipes every slot, frees snapshots, unmaps. Workers must be stopped.
 * Takes ownership of |c|. NULL is fine. */
void keys_cache_free(struct keys_cache *c);

/* -- worker side -- */

/* The current snapshot (never NULL). Valid until this worker's next
 * keys_cache_quiescent() or keys_cache_offline(). */
const struct keys_snapshot *keys_cache_snapshot(struct keys_cache *c);
/* The DEK of |tenant| in |s|, or NULL: unknown tenant or no usable key
 * (the caller redacts). */
const struct keys_dek *keys_snapshot_lookup(const struct keys_snapshot *s,
					    const char *tenant, size_t len);
/* Counts |n| seals of worker |w| with |d| at |now_ns| (CLOCK_REALTIME).
 * 0, or -EKEYEXPIRED: the worker's share of the count limit is used up or
 * the DEK is too old (the caller must not seal with it; redact). Writes
 * only worker |w|'s own counter. */
int keys_cache_charge(struct keys_cache *c, unsigned w,
		      const struct keys_dek *d, uint64_t n, uint64_t now_ns);
/* Worker |w| holds no snapshot pointer any more (end of a burst). */
void keys_cache_quiescent(struct keys_cache *c, unsigned w);
/* Worker |w| stops / starts reading (parked workers must not hold up
 * reclamation). Workers start offline. */
void keys_cache_offline(struct keys_cache *c, unsigned w);
void keys_cache_online(struct keys_cache *c, unsigned w);

/* -- control side -- */

/* Reserves a free slot for a DEK about to be unwrapped: *|buf| (|*cap|
 * bytes, in the region) is where the KMS writes it. Returns the slot
 * number, or -ENOSPC (reclaim and retry). The slot belongs to the caller
 * until keys_cache_install() or keys_cache_slot_put(). */
int keys_cache_slot_get(struct keys_cache *c, uint8_t **buf, size_t *cap);
/* Wipes and frees a reserved slot (the unwrap failed). */
void keys_cache_slot_put(struct keys_cache *c, int slot);
/* Makes the DEK in |slot| (SEAL_DEK_LEN bytes written there) the active key
 * of |tenant| in the next snapshot; the tenant's previous key, if any, is
 * wiped once no worker can read it. Takes ownership of |slot| (also on
 * failure: it is wiped). -EINVAL, -ENOSPC (max_tenants), -EKEYEXPIRED (the
 * DEK is already at a limit), -ENOMEM. */
int keys_cache_install(struct keys_cache *c, const char *tenant, int slot,
		       const struct keys_dek_meta *m);
/* Marks |tenant| failed closed (adding it if unknown). With |withdraw| its
 * key, if any, is withdrawn (KEK revoked); without, a tenant that still has
 * a usable key keeps it (KMS outage: cached keys work until their limits)
 * and this returns -EEXIST. */
int keys_cache_fail(struct keys_cache *c, const char *tenant, bool withdraw);
/* Publishes the staged key set as a new snapshot (no-op if unchanged).
 * 0 or -ENOMEM (the old snapshot stays). */
int keys_cache_publish(struct keys_cache *c);
/* Frees retired snapshots and wipes slots every online worker has passed.
 * Returns the number of slots wiped. */
unsigned keys_cache_reclaim(struct keys_cache *c);
/* Periodic work (every 100 ms or so): sums usage, raises events, withdraws
 * exhausted keys (and publishes), reclaims. */
void keys_cache_tick(struct keys_cache *c, uint64_t now_ns);
/* State of |tenant| in the staged set; -ENOENT if unknown. */
int keys_cache_tenant_state(struct keys_cache *c, const char *tenant);
/* Seals made with the tenant's active DEK (before this process + counted
 * by workers), to save in the store. -ENOENT if it has no key. */
int keys_cache_usage(struct keys_cache *c, const char *tenant,
		     uint64_t *seals);
void keys_cache_stats(struct keys_cache *c, struct keys_cache_stats *st);

/* ---- CLI (keys_cli.c) ------------------------------------------------------------ */

/* `sealtap keys <init|create|rotate|list> ...`: |argv[0]| is "keys".
 * Returns the exit code: 0 ok, 1 runtime error, 2 usage or configuration.
 * Prints never key material nor PINs. */
int keys_main(int argc, char **argv);

#endif
