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
 * Not yet here: rotation during a run (the cache raises rotate events at
 * keys.rotate_at; a key at its limit is withdrawn and its tenant's values
 * are redacted until a restart picks up a new DEK from `sealtap keys
 * rotate`), and periodic persistence of seal counts. */
#ifndef SEALTAP_KEYS_RUNTIME_H
#define SEALTAP_KEYS_RUNTIME_H

#include <stddef.h>

#include "sealtap/config.h"
#include "sealtap/keys.h"

struct keys_runtime;
struct kms;

/* Opens the configured KMS backend (kms.*; PKCS#11 today) behind its async
 * front. 0 or -errno with a one-line |err|. Shared by the tap, `sealtap
 * keys` and `sealtap open`. Free with kms_free(). */
int keys_kms_open(const struct st_config *cfg, struct kms **out, char *err,
		  size_t errlen);

/* Unwraps DEK |d| of tenant |t| through |k| into |out| (|cap| bytes).
 * Returns 0 when exactly SEAL_DEK_LEN bytes came back, else -EIO (|out|
 * then holds nothing usable). Does not take ownership of anything. */
int keys_dek_unwrap(struct kms *k, const struct keys_tenant_rec *t,
		    const struct keys_dek_rec *d, uint8_t *out, size_t cap);

/* Loads the store, opens the KMS, creates the cache for |workers| readers
 * and installs a DEK for each of |tenants| (|n| names). Returns 0, or
 * -errno with |err| when nothing can work at all (bad config, cache
 * memory, unreadable store); tenants that fail are failed closed and
 * logged, not errors. The caller frees it with keys_runtime_stop(). */
int keys_runtime_start(const struct st_config *cfg,
		       const char *const *tenants, unsigned n,
		       unsigned workers, struct keys_runtime **out, char *err,
		       size_t errlen);
struct keys_cache *keys_runtime_cache(struct keys_runtime *rt);
/* Tenants that got a key / were failed closed. */
unsigned keys_runtime_ok(const struct keys_runtime *rt);
unsigned keys_runtime_failed(const struct keys_runtime *rt);
/* Wipes the cache and closes the KMS. Workers must have stopped. */
void keys_runtime_stop(struct keys_runtime *rt);

#endif
