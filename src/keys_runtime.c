/* Keys at run time: start-up and the keys control thread. See
 * keys_runtime.h.
 *
 * Ownership. struct keys_runtime belongs to the thread that made it until
 * keys_runtime_start() returns; from then until keys_runtime_stop() joins
 * it, everything except |stop| (under |mu|) belongs to the control thread:
 * the store copy, the tenant table, the control side of the cache and the
 * counters. Workers only read the cache's snapshots.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sealtap/common.h"
#include "sealtap/keys_runtime.h"
#include "sealtap/kms.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/policy.h"
#include "sealtap/seal.h"

#define RT_TICK_NS (100 * ST_NS_PER_MS)   /* cache tick period */
#define RT_WORK_NS (50 * ST_NS_PER_MS)    /* KMS work per tick, at most */

struct rt_tenant {
	char name[KEYS_TENANT_MAX + 1];
	char key_id[SEAL_KEY_ID_MAX + 1]; /* DEK the cache holds; "" none */
	uint64_t synced;     /* keys_cache_usage() total already in the store */
	bool want_rotate;    /* the cache asked for a successor */
	bool want_adopt;     /* the store's active DEK is not the cache's */
	char replace_id[SEAL_KEY_ID_MAX + 1]; /* the DEK a rotation replaces */
	const char *reason;  /* of the rotation: "count", "age", "limit" */
	uint64_t saving;     /* usage total being saved (save_usage) */
	unsigned failures;   /* consecutive failed attempts */
	uint64_t retry_at;   /* CLOCK_REALTIME ns */
};

struct keys_runtime {
	const struct st_config *cfg; /* outlives the runtime */
	struct keys_store *store;    /* as last read; owned */
	struct kms *kms;             /* NULL while the KMS cannot be opened */
	struct keys_cache *cache;
	char store_path[PATH_MAX];
	struct stat store_seen;      /* the file keys_store was read from */
	struct rt_tenant *t;         /* the policy's tenants; owned */
	unsigned nt;
	unsigned ok, failed;         /* at start-up */
	struct st_counters ctr;
	uint64_t kms_failures_seen;  /* health.failures already counted */
	bool kms_down;
	uint64_t next_save, next_kms_open;
	pthread_t thread;
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
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
	softhsm_env(cfg);
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

static int kms_fail_msg(const struct kms_req *r, const char *what, char *err,
			size_t errlen)
{
	snprintf(err, errlen, "%s: %s (%s, %u attempt%s)", what, r->msg,
		 kms_class_name(r->cls), r->attempts,
		 r->attempts == 1 ? "" : "s");
	return r->rc ? r->rc : -EIO;
}

int keys_dek_unwrap(struct kms *k, const struct keys_tenant_rec *t,
		    const struct keys_dek_rec *d, uint8_t *out, size_t cap,
		    char *err, size_t errlen)
{
	struct kms_req r;
	memset(&r, 0, sizeof(r));
	r.op = KMS_OP_UNWRAP;
	snprintf(r.kek_ref, sizeof(r.kek_ref), "%s", t->kek);
	r.blob = d->wrapped;
	r.dek_out = out;
	r.dek_cap = cap;
	if (kms_call(k, &r) != 0) {
		char what[SEAL_KEY_ID_MAX + 32];
		snprintf(what, sizeof(what), "unwrap of DEK %s", d->id);
		kms_fail_msg(&r, what, err, errlen);
		return -EIO;
	}
	if (r.dek_out_len != SEAL_DEK_LEN) {
		snprintf(err, errlen, "DEK %s unwrapped to %zu bytes, not %d",
			 d->id, r.dek_out_len, SEAL_DEK_LEN);
		return -EIO;
	}
	return 0;
}

/* ---- a new DEK ------------------------------------------------------------------------- */

/* One locked page, excluded from core dumps: where a fresh DEK and its
 * check unwrap live for the few milliseconds they exist. */
static uint8_t *sec_page(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mlock(p, page) || madvise(p, page, MADV_DONTDUMP)) {
		munmap(p, page);
		return NULL;
	}
	return p;
}

static void sec_free(uint8_t *p)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (!p)
		return;
	OPENSSL_cleanse(p, page);
	munlock(p, page);
	munmap(p, page);
}

int keys_dek_create(struct kms *k, const char *kek, struct kms_blob *out,
		    char *err, size_t errlen)
{
	uint8_t *dek = sec_page(), *back = sec_page();
	struct kms_req *r = calloc(1, sizeof(*r));
	int rc = -ENOMEM;
	if (!dek || !back || !r) {
		snprintf(err, errlen, "cannot get locked memory for the DEK "
			 "(ulimit -l)");
		goto out;
	}
	if (RAND_priv_bytes(dek, SEAL_DEK_LEN) != 1) {
		snprintf(err, errlen, "RAND_priv_bytes failed");
		rc = -EIO;
		goto out;
	}
	r->op = KMS_OP_WRAP;
	snprintf(r->kek_ref, sizeof(r->kek_ref), "%s", kek);
	r->dek_in = dek;
	r->dek_len = SEAL_DEK_LEN;
	if (kms_call(k, r)) {
		rc = kms_fail_msg(r, "wrap", err, errlen);
		goto out;
	}
	*out = r->blob;
	r->op = KMS_OP_UNWRAP;
	r->dek_out = back;
	r->dek_cap = KEYS_SLOT_SIZE;
	if (kms_call(k, r)) {
		rc = kms_fail_msg(r, "check unwrap", err, errlen);
		goto out;
	}
	rc = 0;
	if (r->dek_out_len != SEAL_DEK_LEN ||
	    CRYPTO_memcmp(dek, back, SEAL_DEK_LEN)) {
		snprintf(err, errlen, "the KMS unwrapped a different key than "
			 "it wrapped; not storing it");
		rc = -EBADMSG;
	}
out:
	sec_free(dek);
	sec_free(back);
	free(r);
	mem_scrub_registers();
	return rc;
}

/* ---- the key store, read-modify-write ------------------------------------------------ */

/* Locks the store and reads it afresh (`sealtap keys` or another sealtap
 * may have changed it). Returns the lock fd, or -errno with |why|. */
static int store_begin(struct keys_runtime *rt, struct keys_store **s,
		       char *why, size_t wl)
{
	int lock = keys_store_lock(rt->store_path, why, wl);
	if (lock < 0)
		return lock;
	int rc = keys_store_load(rt->store_path, s, why, wl);
	if (rc) {
		keys_store_unlock(lock);
		return rc;
	}
	return lock;
}

/* Saves |s| if |rc| is 0, unlocks, and makes |s| the runtime's copy on
 * success (else frees it). */
static int store_end(struct keys_runtime *rt, struct keys_store *s, int lock,
		     int rc, char *why, size_t wl)
{
	if (rc == 0)
		rc = keys_store_save(s, rt->store_path, why, wl);
	keys_store_unlock(lock);
	if (rc) {
		keys_store_free(s);
		return rc;
	}
	keys_store_free(rt->store);
	rt->store = s;
	stat(rt->store_path, &rt->store_seen);
	return 0;
}

/* Adds the seals counted since the last save of |t|'s current DEK to its
 * record in |s|. Returns the total to remember once |s| is saved. */
static uint64_t usage_into(struct keys_runtime *rt, struct rt_tenant *t,
			   struct keys_store *s)
{
	uint64_t total;
	if (!t->key_id[0] || keys_cache_usage(rt->cache, t->name, &total))
		return t->synced;
	struct keys_tenant_rec *tr = keys_store_tenant(s, t->name);
	struct keys_dek_rec *d = tr ? keys_store_dek(tr, t->key_id) : NULL;
	if (d && total > t->synced)
		d->seals += total - t->synced;
	return total;
}

/* ---- adopting and rotating a tenant's DEK ------------------------------------------ */

static int kms_ready(struct keys_runtime *rt, uint64_t now, char *why,
		     size_t wl)
{
	if (rt->kms)
		return 0;
	if (now < rt->next_kms_open) {
		snprintf(why, wl, "the KMS is not available");
		return -ENODEV;
	}
	rt->next_kms_open = now + rt->cfg->kms.retry_max_ns;
	int rc = keys_kms_open(rt->cfg, &rt->kms, why, wl);
	if (rc) {
		rt->kms = NULL;
		log_kv(LOG_LEVEL_WARN, "KMS cannot be opened; tried again "
		       "later", "error", why, NULL);
	}
	return rc;
}

/* Unwraps |d| of |tr| into a cache slot reserved for it. Returns the
 * slot, or -errno with |why|. */
static int unwrap_to_slot(struct keys_runtime *rt,
			  const struct keys_tenant_rec *tr,
			  const struct keys_dek_rec *d, char *why, size_t wl)
{
	uint8_t *buf;
	size_t cap;
	int slot = keys_cache_slot_get(rt->cache, &buf, &cap);
	if (slot < 0) {
		snprintf(why, wl, "DEK cache full (keys.max_tenants)");
		return slot;
	}
	if (keys_dek_unwrap(rt->kms, tr, d, buf, cap, why, wl) != 0) {
		keys_cache_slot_put(rt->cache, slot);
		return -EIO;
	}
	return slot;
}

/* Takes a nonce lease on the store's active DEK of |t|, which must still
 * be |id|, and saves it together with the seal count of the DEK in use.
 * Returns 0 with *|d| (in rt->store) and *|instance|, or -errno with
 * |why|. */
static int lease(struct keys_runtime *rt, struct rt_tenant *t,
		 const char *id, struct keys_dek_rec **d, uint32_t *instance,
		 char *why, size_t wl)
{
	struct keys_store *s;
	int lock = store_begin(rt, &s, why, wl);
	if (lock < 0)
		return lock;
	int rc = 0;
	struct keys_tenant_rec *tr = keys_store_tenant(s, t->name);
	*d = tr ? keys_store_active(tr) : NULL;
	if (!*d || strcmp((*d)->id, id)) {
		snprintf(why, wl, "the key store changed during the unwrap");
		rc = -EAGAIN;
	} else if (keys_store_lease(*d, instance)) {
		snprintf(why, wl, "DEK %s has handed out all its nonce "
			 "leases", id);
		rc = -ERANGE;
	}
	uint64_t synced = rc ? t->synced : usage_into(rt, t, s);
	rc = store_end(rt, s, lock, rc, why, wl);
	if (rc == 0)
		t->synced = synced;
	return rc;
}

/* Makes the store's active DEK of |t| the one workers seal with: unwraps
 * it into a cache slot, takes a nonce lease (saved before the key is
 * used, so a crash can never reuse one; a failed unwrap costs none),
 * installs and publishes. */
static int adopt(struct keys_runtime *rt, struct rt_tenant *t, uint64_t now,
		 char *why, size_t wl)
{
	/* The runtime's copy is at most one tick old; lease() checks the
	 * file under the lock. A tenant absent from it needs neither the
	 * KMS nor the lock file. */
	struct keys_tenant_rec *tr = keys_store_tenant(rt->store, t->name);
	struct keys_dek_rec *d = tr ? keys_store_active(tr) : NULL;
	if (!d) {
		snprintf(why, wl, "no active DEK in the key store (sealtap "
			 "keys create --tenant %s)", t->name);
		return -ENOKEY;
	}
	if (!strcmp(d->id, t->key_id))
		return 0;
	int rc = kms_ready(rt, now, why, wl);
	int slot = rc ? rc : unwrap_to_slot(rt, tr, d, why, wl);
	if (slot < 0)
		return slot;
	char id[SEAL_KEY_ID_MAX + 1], old[SEAL_KEY_ID_MAX + 1];
	snprintf(id, sizeof(id), "%s", d->id);
	snprintf(old, sizeof(old), "%s", t->key_id);
	uint32_t instance;
	rc = lease(rt, t, id, &d, &instance, why, wl);
	if (rc == -ERANGE)
		snprintf(t->replace_id, sizeof(t->replace_id), "%s", id);
	if (rc) {
		keys_cache_slot_put(rt->cache, slot);
		return rc;
	}
	struct keys_dek_meta m = {
		.key_id = id,
		.instance = instance,
		.created = d->created,
		.seals_before = d->seals,
	};
	rc = keys_cache_install(rt->cache, t->name, slot, &m);
	if (rc) {
		if (rc == -EKEYEXPIRED)
			snprintf(t->replace_id, sizeof(t->replace_id), "%s",
				 id);
		snprintf(why, wl, "DEK cache refused DEK %s: %s", id,
			 rc == -EKEYEXPIRED ? "already at a limit"
					    : strerror(-rc));
		return rc;
	}
	keys_cache_publish(rt->cache);
	snprintf(t->key_id, sizeof(t->key_id), "%s", id);
	t->synced = d->seals;
	ST_CTR_INC(&rt->ctr, keys_installed);
	log_kv(LOG_LEVEL_INFO, old[0] ? "tenant key replaced"
				      : "tenant key ready",
	       "tenant", t->name, "key_id", id,
	       old[0] ? "previous" : NULL, old, NULL);
	return 0;
}

/* Makes a successor DEK for |t| (wrapped by the KMS, proven to unwrap)
 * and saves it as the tenant's active DEK; adopt() then installs it. If
 * the store already has a newer active DEK (`sealtap keys rotate` ran),
 * that one is adopted instead. */
static int rotate(struct keys_runtime *rt, struct rt_tenant *t, uint64_t now,
		  char *why, size_t wl)
{
	int rc = kms_ready(rt, now, why, wl);
	if (rc)
		return rc;
	struct keys_store *s;
	int lock = store_begin(rt, &s, why, wl);
	if (lock < 0)
		return lock;
	struct keys_tenant_rec *tr = keys_store_tenant(s, t->name);
	struct keys_dek_rec *cur = tr ? keys_store_active(tr) : NULL;
	struct keys_dek_rec *d = NULL;
	struct kms_blob blob;
	if (!tr) {
		snprintf(why, wl, "tenant %s is no longer in the key store",
			 t->name);
		rc = -ENOKEY;
	} else if (cur && strcmp(cur->id, t->replace_id)) {
		rc = 1; /* a successor exists already */
	} else {
		rc = keys_dek_create(rt->kms, tr->kek, &blob, why, wl);
		if (rc == 0)
			rc = keys_store_dek_add(tr, &blob, (int64_t)(now /
							ST_NS_PER_SEC),
						&d, why, wl);
	}
	char id[SEAL_KEY_ID_MAX + 1] = "";
	if (d)
		snprintf(id, sizeof(id), "%s", d->id);
	rc = store_end(rt, s, lock, rc, why, wl);
	if (rc && rc != 1)
		return rc;
	t->want_rotate = false;
	t->want_adopt = true;
	if (id[0]) {
		ST_CTR_INC(&rt->ctr, keys_rotations);
		log_kv(LOG_LEVEL_INFO, "DEK rotated", "tenant", t->name,
		       "retired", t->replace_id, "key_id", id, "reason",
		       t->reason ? t->reason : "limit", NULL);
	}
	return 0;
}

/* ---- the control thread ---------------------------------------------------------------- */

/* Delay before the next attempt after |failures| failed ones. */
static uint64_t retry_delay(const struct keys_runtime *rt, unsigned failures)
{
	struct kms_async_cfg ac = {
		.backoff_base_ns = rt->cfg->kms.retry_base_ns,
		.backoff_max_ns = rt->cfg->kms.retry_max_ns,
	};
	uint64_t rnd = ((uint64_t)random() << 31) ^ (uint64_t)random();
	return kms_backoff_ns(&ac, failures, rnd);
}

/* A failed attempt for |t|: the tenant keeps a key it still has (the
 * workers use it until its limits), else it fails closed. Logged at the
 * first failure and then at every power of two, so a long outage does not
 * flood the log. */
static void attempt_failed(struct keys_runtime *rt, struct rt_tenant *t,
			   const char *what, const char *why, uint64_t now)
{
	t->failures++;
	t->retry_at = now + retry_delay(rt, t->failures);
	bool closed = keys_cache_fail(rt->cache, t->name, false) == 0;
	if (closed)
		keys_cache_publish(rt->cache);
	if (t->failures & (t->failures - 1))
		return;
	char n[16];
	snprintf(n, sizeof(n), "%u", t->failures);
	log_kv(LOG_LEVEL_WARN,
	       closed ? "tenant fails closed: its values are redacted"
		      : "tenant keeps sealing with its cached DEK",
	       "tenant", t->name, "step", what, "reason", why, "attempts", n,
	       NULL);
}

static void on_event(void *arg, const struct keys_event *ev)
{
	struct keys_runtime *rt = arg;
	struct rt_tenant *t = NULL;
	for (unsigned i = 0; i < rt->nt && !t; i++)
		if (!strcmp(rt->t[i].name, ev->tenant))
			t = &rt->t[i];
	if (!t)
		return;
	t->want_rotate = true;
	t->reason = ev->reason;
	snprintf(t->replace_id, sizeof(t->replace_id), "%s", ev->key_id);
	char used[24], limit[24];
	snprintf(used, sizeof(used), "%" PRIu64, ev->used);
	snprintf(limit, sizeof(limit), "%" PRIu64, ev->limit);
	if (ev->kind == KEYS_EV_EXHAUSTED) {
		ST_CTR_INC(&rt->ctr, keys_exhausted);
		log_kv(LOG_LEVEL_ERROR, "DEK at its limit before a successor "
		       "was ready: the tenant's values are redacted until one "
		       "is", "tenant", ev->tenant, "key_id", ev->key_id,
		       "reason", ev->reason, "seals", used, "max_seals", limit,
		       NULL);
	} else {
		log_kv(LOG_LEVEL_INFO, "DEK rotation due", "tenant", ev->tenant,
		       "key_id", ev->key_id, "reason", ev->reason, "seals",
		       used, "max_seals", limit, NULL);
	}
}

/* Counts the KMS going down (kms.c logs each transition) and its failed
 * attempts. */
static void watch_kms(struct keys_runtime *rt)
{
	if (!rt->kms)
		return;
	struct kms_health h;
	kms_get_health(rt->kms, &h);
	ST_CTR_ADD(&rt->ctr, kms_failures, h.failures - rt->kms_failures_seen);
	rt->kms_failures_seen = h.failures;
	if (!h.up && !rt->kms_down)
		ST_CTR_INC(&rt->ctr, kms_outages);
	rt->kms_down = !h.up;
}

/* A changed store file (`sealtap keys rotate`, another sealtap) is read
 * again; tenants whose active DEK changed adopt it. */
static void watch_store(struct keys_runtime *rt, uint64_t now)
{
	struct stat st;
	if (stat(rt->store_path, &st) != 0 ||
	    (st.st_ino == rt->store_seen.st_ino &&
	     st.st_size == rt->store_seen.st_size &&
	     st.st_mtim.tv_sec == rt->store_seen.st_mtim.tv_sec &&
	     st.st_mtim.tv_nsec == rt->store_seen.st_mtim.tv_nsec))
		return;
	char why[1024];
	struct keys_store *s;
	rt->store_seen = st;
	if (keys_store_load(rt->store_path, &s, why, sizeof(why)) != 0) {
		log_kv(LOG_LEVEL_ERROR, "key store changed but cannot be "
		       "read; keys in use stay", "error", why, NULL);
		return;
	}
	keys_store_free(rt->store);
	rt->store = s;
	for (unsigned i = 0; i < rt->nt; i++) {
		struct rt_tenant *t = &rt->t[i];
		struct keys_tenant_rec *tr = keys_store_tenant(s, t->name);
		struct keys_dek_rec *d = tr ? keys_store_active(tr) : NULL;
		if (d && strcmp(d->id, t->key_id) && !t->want_adopt) {
			t->want_adopt = true;
			t->failures = 0;
			t->retry_at = now;
		}
	}
}

/* One tenant's pending rotation or adoption, if it is due. */
static void work_tenant(struct keys_runtime *rt, struct rt_tenant *t,
			uint64_t now)
{
	char why[1024];
	if (now < t->retry_at)
		return;
	if (t->want_rotate && rotate(rt, t, now, why, sizeof(why)) != 0) {
		ST_CTR_INC(&rt->ctr, keys_rotate_failures);
		attempt_failed(rt, t, "rotate", why, now);
		return;
	}
	if (!t->want_adopt)
		return;
	int rc = adopt(rt, t, now, why, sizeof(why));
	if (rc == -EKEYEXPIRED || rc == -ERANGE) {
		/* The store's active DEK is used up (limit, leases): make its
		 * successor rather than wait for an operator. */
		t->want_rotate = true;
		t->reason = "limit";
	}
	if (rc) {
		ST_CTR_INC(&rt->ctr, keys_install_failures);
		attempt_failed(rt, t, "install", why, now);
		return;
	}
	t->want_adopt = false;
	t->failures = 0;
}

static void work(struct keys_runtime *rt, uint64_t now)
{
	for (unsigned i = 0; i < rt->nt; i++) {
		if (st_wall_ns() - now > RT_WORK_NS)
			return; /* the rest next tick: keep ticks regular */
		work_tenant(rt, &rt->t[i], now);
	}
}

/* Writes the seals counted since the last save into the store. */
static void save_usage(struct keys_runtime *rt)
{
	char why[1024];
	bool any = false;
	for (unsigned i = 0; i < rt->nt && !any; i++) {
		uint64_t total;
		any = rt->t[i].key_id[0] &&
		      !keys_cache_usage(rt->cache, rt->t[i].name, &total) &&
		      total > rt->t[i].synced;
	}
	if (!any)
		return;
	struct keys_store *s;
	int lock = store_begin(rt, &s, why, sizeof(why));
	if (lock < 0)
		goto fail;
	for (unsigned i = 0; i < rt->nt; i++)
		rt->t[i].saving = usage_into(rt, &rt->t[i], s);
	if (store_end(rt, s, lock, 0, why, sizeof(why)))
		goto fail;
	for (unsigned i = 0; i < rt->nt; i++)
		rt->t[i].synced = rt->t[i].saving;
	ST_CTR_INC(&rt->ctr, keys_usage_saves);
	return;
fail:
	log_kv(LOG_LEVEL_WARN, "cannot save seal counts to the key store; "
	       "retried", "error", why, NULL);
}

/* Waits one tick; false once keys_runtime_stop() asked to stop. */
static bool wait_tick(struct keys_runtime *rt)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)RT_TICK_NS;
	if (ts.tv_nsec >= (long)ST_NS_PER_SEC) {
		ts.tv_sec++;
		ts.tv_nsec -= (long)ST_NS_PER_SEC;
	}
	pthread_mutex_lock(&rt->mu);
	while (!rt->stop &&
	       pthread_cond_timedwait(&rt->cv, &rt->mu, &ts) != ETIMEDOUT)
		;
	bool go = !rt->stop;
	pthread_mutex_unlock(&rt->mu);
	return go;
}

static void *control_main(void *arg)
{
	struct keys_runtime *rt = arg;
	pthread_setname_np(pthread_self(), "st_keys");
	/* DEK bytes pass through this thread's registers while it makes and
	 * unwraps keys; on a crash they are saved in a signal frame on this
	 * stack (mem_crash_guard_install). */
	if (mem_nodump_stack() != 0)
		log_kv(LOG_LEVEL_WARN, "keys thread stack stays in core dumps "
		       "(madvise refused)", NULL);
	while (wait_tick(rt)) {
		uint64_t now = st_wall_ns();
		keys_cache_tick(rt->cache, now);
		watch_kms(rt);
		watch_store(rt, now);
		work(rt, now);
		if (now >= rt->next_save) {
			save_usage(rt);
			rt->next_save = now + rt->cfg->keys.save_interval_ns;
		}
	}
	mem_scrub_registers();
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------------------ */

static int make_cache(struct keys_runtime *rt, unsigned workers, char *err,
		      size_t errlen)
{
	const struct st_config *cfg = rt->cfg;
	struct keys_cache_cfg cc = {
		.workers = workers,
		.max_tenants = cfg->keys.max_tenants,
		.max_seals = cfg->keys.dek_max_seals,
		.max_age_ns = cfg->keys.dek_max_age_ns,
		.rotate_at_pct = cfg->keys.rotate_at,
		.mem = (enum keys_mem_mode)cfg->keys.memory,
		.on_event = on_event,
		.arg = rt,
	};
	return keys_cache_new(&cc, &rt->cache, err, errlen);
}

/* The store as it is at start; none at all is not an error (every tenant
 * fails closed until `sealtap keys create` makes one). */
static int first_store(struct keys_runtime *rt, char *err, size_t errlen)
{
	int rc = keys_store_load(rt->store_path, &rt->store, err, errlen);
	if (rc == -ENOENT) {
		log_kv(LOG_LEVEL_WARN, "no key store: sensitive values will be "
		       "redacted, not sealed", "store", rt->store_path,
		       "fix", "sealtap keys init && sealtap keys create "
		       "--tenant NAME", NULL);
		return keys_store_new(&rt->store);
	}
	if (rc == 0)
		stat(rt->store_path, &rt->store_seen);
	return rc;
}

int keys_runtime_start(const struct st_config *cfg,
		       const char *const *tenants, unsigned n,
		       unsigned workers, struct keys_runtime **out, char *err,
		       size_t errlen)
{
	struct keys_runtime *rt = calloc(1, sizeof(*rt));
	if (rt)
		rt->t = calloc(n ? n : 1, sizeof(*rt->t));
	if (!rt || !rt->t) {
		free(rt);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rt->cfg = cfg;
	rt->nt = n;
	pthread_mutex_init(&rt->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt->cv, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(rt->store_path, sizeof(rt->store_path), "%s",
		 or_default(cfg->keys.store, KEYS_STORE_DEFAULT));
	int rc = make_cache(rt, workers, err, errlen);
	if (rc == 0)
		rc = first_store(rt, err, errlen);
	if (rc) {
		keys_runtime_stop(rt);
		return rc;
	}
	uint64_t now = st_wall_ns();
	for (unsigned i = 0; i < n; i++) {
		struct rt_tenant *t = &rt->t[i];
		snprintf(t->name, sizeof(t->name), "%s", tenants[i]);
		t->want_adopt = true;
		work_tenant(rt, t, now);
		if (t->want_adopt)
			rt->failed++;
		else
			rt->ok++;
	}
	keys_cache_publish(rt->cache);
	rt->next_save = now + cfg->keys.save_interval_ns;
	rc = pthread_create(&rt->thread, NULL, control_main, rt);
	if (rc) {
		snprintf(err, errlen, "cannot start the keys thread: %s",
			 strerror(rc));
		keys_runtime_stop(rt);
		return -rc;
	}
	rt->running = true;
	*out = rt;
	return 0;
}

int keys_runtime_start_policy(const struct st_config *cfg,
			      const struct policy *pol, unsigned readers,
			      struct keys_runtime **out, char *err,
			      size_t errlen)
{
	unsigned n = policy_tenant_count(pol);
	const char **names = calloc(n ? n : 1, sizeof(*names));
	if (!names) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++)
		names[i] = policy_tenant_at(pol, i)->name;
	int rc = keys_runtime_start(cfg, names, n, readers, out, err, errlen);
	free(names);
	if (rc)
		return rc;
	char ok[16], failed[16];
	snprintf(ok, sizeof(ok), "%u", (*out)->ok);
	snprintf(failed, sizeof(failed), "%u", (*out)->failed);
	log_kv(LOG_LEVEL_INFO, "tenant keys", "tenants_with_keys", ok,
	       "tenants_failed_closed", failed, NULL);
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

void keys_runtime_counters(const struct keys_runtime *rt,
			   struct st_counters *sum)
{
	if (rt)
		counters_sum(sum, &rt->ctr);
}

void keys_runtime_halt(struct keys_runtime *rt)
{
	if (!rt || !rt->running)
		return;
	pthread_mutex_lock(&rt->mu);
	rt->stop = true;
	pthread_cond_signal(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
	pthread_join(rt->thread, NULL);
	rt->running = false;
	watch_kms(rt);
	save_usage(rt);
}

void keys_runtime_stop(struct keys_runtime *rt)
{
	if (!rt)
		return;
	keys_runtime_halt(rt);
	if (rt->cache)
		keys_cache_free(rt->cache);
	if (rt->kms)
		kms_free(rt->kms);
	keys_store_free(rt->store);
	pthread_cond_destroy(&rt->cv);
	pthread_mutex_destroy(&rt->mu);
	free(rt->t);
	free(rt);
}
