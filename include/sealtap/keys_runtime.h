/* Keys at run time: at start-up, the DEK of each tenant the policy names
 * is unwrapped through the KMS into the DEK cache, under a fresh nonce
 * lease recorded in the key store first (so a crash can never reuse a
 * lease). Workers then read keys through the cache's snapshots.
 *
 * A tenant without a usable DEK (none in the store, the KMS refuses, the
 * token is gone) is marked failed-closed in the cache: workers see no key
 * for it and redact its values instead of sealing them. That never stops
 * the run.
 *
 * During the run one control thread ("st_keys") ticks every 100 ms:
 *   - keys_cache_tick(): sums the workers' seal counts, withdraws DEKs at
 *     a limit, raises rotation at keys.rotate_at;
 *   - rotation: a new DEK is made and wrapped by the KMS, proven to
 *     unwrap, saved in the store as the tenant's active DEK (the old one
 *     retired), then adopted: lease saved, unwrapped into a cache slot,
 *     installed and published; workers switch at their next snapshot;
 *   - a store file changed by someone else (`sealtap keys rotate`) is read
 *     again and new active DEKs are adopted the same way;
 *   - failed steps (KMS outage) are retried with backoff (kms.retry_*);
 *     a tenant keeps a cached DEK until its limits, one without fails
 *     closed; failed-closed tenants are retried too, so a KMS that comes
 *     back brings them back;
 *   - KMS health is watched: going down and coming back are logged and
 *     counted;
 *   - seal counts are added to the store every keys.save_interval and at
 *     stop.
 * KMS calls block this thread (with their retries), never a worker; the
 * workers' own quota and expiry checks hold the limits between ticks. */
#ifndef SEALTAP_KEYS_RUNTIME_H
#define SEALTAP_KEYS_RUNTIME_H

#include <stddef.h>

#include "sealtap/config.h"
#include "sealtap/counters.h"
#include "sealtap/keys.h"

struct keys_runtime;
struct kms;
struct policy;

/* Opens the configured KMS backend (kms.*; PKCS#11 today) behind its async
 * front. 0 or -errno with a one-line |err|. Shared by the tap, `sealtap
 * keys` and `sealtap open`. Free with kms_free(). */
int keys_kms_open(const struct st_config *cfg, struct kms **out, char *err,
		  size_t errlen);

/* Makes a new DEK for KEK |kek|: 32 bytes from RAND_priv_bytes() in a
 * locked page excluded from core dumps, wrapped by |k|, unwrapped once
 * more to prove the blob opens, then wiped. Only the wrapped form comes
 * back, in |out|. 0 or -errno (the KMS's, or -EBADMSG when the check
 * unwrap differs) with a one-line |err|. Shared by `sealtap keys` and the
 * keys control thread. */
int keys_dek_create(struct kms *k, const char *kek, struct kms_blob *out,
		    char *err, size_t errlen);

/* Unwraps DEK |d| of tenant |t| through |k| into |out| (|cap| bytes).
 * Returns 0 when exactly SEAL_DEK_LEN bytes came back, else -EIO with the
 * KMS's reason in |err| (|out| then holds nothing usable). Does not take
 * ownership of anything. */
int keys_dek_unwrap(struct kms *k, const struct keys_tenant_rec *t,
		    const struct keys_dek_rec *d, uint8_t *out, size_t cap,
		    char *err, size_t errlen);

/* Loads the store, opens the KMS, creates the cache for |workers| readers
 * and installs a DEK for each of |tenants| (|n| names). Returns 0, or
 * -errno with |err| when nothing can work at all (bad config, cache
 * memory, unreadable store); tenants that fail are failed closed and
 * logged, not errors. The caller frees it with keys_runtime_stop(). */
int keys_runtime_start(const struct st_config *cfg,
		       const char *const *tenants, unsigned n,
		       unsigned workers, struct keys_runtime **out, char *err,
		       size_t errlen);
/* keys_runtime_start() for the tenants |pol| names, with |readers| cache
 * readers (tap workers, ext_proc threads); logs how many got a key. */
int keys_runtime_start_policy(const struct st_config *cfg,
			      const struct policy *pol, unsigned readers,
			      struct keys_runtime **out, char *err,
			      size_t errlen);
struct keys_cache *keys_runtime_cache(struct keys_runtime *rt);
/* Tenants that got a key / were failed closed. */
unsigned keys_runtime_ok(const struct keys_runtime *rt);
unsigned keys_runtime_failed(const struct keys_runtime *rt);
/* Stops the control thread and saves the seal counts; the cache keeps its
 * keys until keys_runtime_stop(). Workers must have stopped. Idempotent;
 * NULL is fine. */
void keys_runtime_halt(struct keys_runtime *rt);
/* Adds the control thread's counters (keys_*, kms_*) to |sum|: exact after
 * keys_runtime_halt(), a possibly torn view before. NULL |rt| is fine. */
void keys_runtime_counters(const struct keys_runtime *rt,
			   struct st_counters *sum);
/* Halts, wipes the cache and closes the KMS. Workers must have stopped.
 * Frees |rt|; NULL is fine. */
void keys_runtime_stop(struct keys_runtime *rt);

#endif
