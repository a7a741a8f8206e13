/* Start-up glue between the key store, the KMS and the DEK cache. See
 * keys_runtime.h. Runs on the control thread before workers start. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sealtap/keys_runtime.h"
#include "sealtap/kms.h"
#include "sealtap/log.h"
#include "sealtap/seal.h"

struct keys_runtime {
	struct keys_store *store;
	struct kms *kms;
	struct keys_cache *cache;
	char store_path[PATH_MAX];
	unsigned ok, failed;
};

static const char *or_default(const char *v, const char *def)
{
	return v && v[0] ? v : def;
}

/* kms.softhsm_dir makes the dev token directory the one SoftHSM2 uses,
 * as `sealtap keys init` set it up. */
static void softhsm_env(const struct st_config *cfg)
{
	const char *dir = cfg->kms.softhsm_dir;
	char abs[PATH_MAX], conf[PATH_MAX + 32];
	if (!dir || !dir[0] || getenv("SOFTHSM2_CONF") || !realpath(dir, abs))
		return;
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", abs);
	setenv("SOFTHSM2_CONF", conf, 0);
}

int keys_kms_open(const struct st_config *cfg, struct kms **out, char *err,
		  size_t errlen)
{
	struct kms_pkcs11_cfg p11 = {
		.module = or_default(cfg->kms.pkcs11_module,
				     KMS_PKCS11_MODULE_DEFAULT),
		.token = or_default(cfg->kms.token_label, KMS_TOKEN_DEFAULT),
		.pin_file = or_default(cfg->kms.pin_file, NULL),
		.pin_env = or_default(cfg->kms.pin_env, KMS_PIN_ENV_DEFAULT),
	};
	struct kms_backend *b;
	int rc = kms_pkcs11_open(&p11, &b, err, errlen);
	if (rc)
		return rc;
	struct kms_async_cfg ac = {
		.max_attempts = cfg->kms.retry_attempts,
		.backoff_base_ns = cfg->kms.retry_base_ns,
		.backoff_max_ns = cfg->kms.retry_max_ns,
		.health_interval_ns = cfg->kms.health_interval_ns,
		.queue_max = 64,
	};
	rc = kms_new(b, &ac, out);
	if (rc)
		snprintf(err, errlen, "cannot start the KMS thread: %s",
			 strerror(-rc));
	return rc;
}

int keys_dek_unwrap(struct kms *k, const struct keys_tenant_rec *t,
		    const struct keys_dek_rec *d, uint8_t *out, size_t cap)
{
	struct kms_req r;
	memset(&r, 0, sizeof(r));
	r.op = KMS_OP_UNWRAP;
	snprintf(r.kek_ref, sizeof(r.kek_ref), "%s", t->kek);
	r.blob = d->wrapped;
	r.dek_out = out;
	r.dek_cap = cap;
	int rc = kms_call(k, &r);
	return rc == 0 && r.rc == 0 && r.dek_out_len == SEAL_DEK_LEN ? 0
								      : -EIO;
}

static void fail_tenant(struct keys_runtime *rt, const char *tenant,
			const char *why)
{
	keys_cache_fail(rt->cache, tenant, false);
	rt->failed++;
	log_kv(LOG_LEVEL_WARN, "tenant fails closed: its values are redacted",
	       "tenant", tenant, "reason", why, NULL);
}

/* Leases a nonce fixed field for the tenant's active DEK (saved to the
 * store before the key is used), unwraps the DEK into a cache slot and
 * installs it. */
static void install_tenant(struct keys_runtime *rt, const char *name)
{
	struct keys_tenant_rec *t = keys_store_tenant(rt->store, name);
	struct keys_dek_rec *d = t ? keys_store_active(t) : NULL;
	if (!d) {
		fail_tenant(rt, name, "no active DEK in the key store "
				      "(sealtap keys create --tenant)");
		return;
	}
	if (!rt->kms) {
		fail_tenant(rt, name, "the KMS is not available");
		return;
	}
	uint32_t instance;
	char err[1024];
	if (keys_store_lease(d, &instance) != 0 ||
	    keys_store_save(rt->store, rt->store_path, err, sizeof(err)) != 0) {
		fail_tenant(rt, name, "cannot record a nonce lease in the key "
				      "store");
		return;
	}
	uint8_t *buf;
	size_t cap;
	int slot = keys_cache_slot_get(rt->cache, &buf, &cap);
	if (slot < 0) {
		fail_tenant(rt, name, "DEK cache full (keys.max_tenants)");
		return;
	}
	if (keys_dek_unwrap(rt->kms, t, d, buf, cap) != 0) {
		keys_cache_slot_put(rt->cache, slot);
		fail_tenant(rt, name, "the KMS did not unwrap its DEK");
		return;
	}
	struct keys_dek_meta m = {
		.key_id = d->id,
		.instance = instance,
		.created = d->created,
		.seals_before = d->seals,
	};
	if (keys_cache_install(rt->cache, name, slot, &m) != 0) {
		keys_cache_slot_put(rt->cache, slot);
		fail_tenant(rt, name, "DEK cache refused the key");
		return;
	}
	rt->ok++;
	log_kv(LOG_LEVEL_INFO, "tenant key ready", "tenant", name, "key_id",
	       d->id, NULL);
}

int keys_runtime_start(const struct st_config *cfg,
		       const char *const *tenants, unsigned n,
		       unsigned workers, struct keys_runtime **out, char *err,
		       size_t errlen)
{
	struct keys_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(rt->store_path, sizeof(rt->store_path), "%s",
		 or_default(cfg->keys.store, KEYS_STORE_DEFAULT));
	struct keys_cache_cfg cc = {
		.workers = workers,
		.max_tenants = cfg->keys.max_tenants,
		.max_seals = cfg->keys.dek_max_seals,
		.max_age_ns = cfg->keys.dek_max_age_ns,
		.rotate_at_pct = cfg->keys.rotate_at,
		.mem = (enum keys_mem_mode)cfg->keys.memory,
	};
	int rc = keys_cache_new(&cc, &rt->cache, err, errlen);
	if (rc) {
		free(rt);
		return rc;
	}
	char kerr[KMS_MSG_MAX + 64];
	rc = keys_store_load(rt->store_path, &rt->store, err, errlen);
	if (rc == -ENOENT) {
		/* No store: every tenant fails closed (values redacted). */
		log_kv(LOG_LEVEL_WARN, "no key store: sensitive values will be "
		       "redacted, not sealed", "store", rt->store_path,
		       "fix", "sealtap keys init && sealtap keys create "
		       "--tenant NAME", NULL);
		keys_store_new(&rt->store);
		rc = 0;
	}
	if (rc) {
		keys_runtime_stop(rt);
		return rc;
	}
	softhsm_env(cfg);
	unsigned stored = 0;
	for (unsigned i = 0; i < n; i++)
		stored += keys_store_tenant(rt->store, tenants[i]) != NULL;
	if (stored && keys_kms_open(cfg, &rt->kms, kerr, sizeof(kerr)) != 0) {
		log_kv(LOG_LEVEL_WARN, "KMS unavailable at start: tenants fail "
		       "closed", "error", kerr, NULL);
		rt->kms = NULL;
	}
	for (unsigned i = 0; i < n; i++)
		install_tenant(rt, tenants[i]);
	keys_cache_publish(rt->cache);
	*out = rt;
	return 0;
}

struct keys_cache *keys_runtime_cache(struct keys_runtime *rt)
{
	return rt->cache;
}

unsigned keys_runtime_ok(const struct keys_runtime *rt)
{
	return rt->ok;
}

unsigned keys_runtime_failed(const struct keys_runtime *rt)
{
	return rt->failed;
}

void keys_runtime_stop(struct keys_runtime *rt)
{
	if (!rt)
		return;
	if (rt->cache)
		keys_cache_free(rt->cache);
	if (rt->kms)
		kms_free(rt->kms);
	keys_store_free(rt->store);
	free(rt);
}
