/* DEK cache: plaintext DEKs in one protected region, read by workers
 * through RCU snapshots (see keys.h and docs/keys.md "DEK cache").
 *
 * Memory. The region holds |nslots| slots of KEYS_SLOT_SIZE bytes and
 * nothing else: no pointer, name or counter, so a wipe of the region is a
 * wipe of every key. It is a MAP_HUGETLB mapping (never swapped) or, when
 * hugepages are unavailable, regular pages locked with mlock() between two
 * PROT_NONE guard pages (an overrun from a neighbour faults instead of
 * reading a key). Both get MADV_DONTDUMP (not in core dumps) and, where the
 * kernel allows, MADV_WIPEONFORK (a fork child sees zeros).
 *
 * Snapshots (RCU with quiescent-state epochs). |snap| points to an
 * immutable snapshot: per tenant its name, state and DEK view (key pointer
 * into the region, key id, lease, limits). The control thread builds a new
 * one from its staged tenant table, swaps the pointer and bumps |epoch| to
 * e; the old snapshot, and every slot only it referenced, retire with
 * epoch e. Each worker, at a quiescent point (between bursts, holding no
 * snapshot pointer), copies |epoch| into its own cache line. Once every
 * online worker shows a value >= e, nobody can hold the old snapshot: it
 * is freed and its slots wiped. Offline workers (0) are skipped; going
 * online publishes the current epoch before the first read (seq_cst on both
 * sides, so a worker either is seen online or reads the new pointer).
 *
 * Usage. Worker w counts seals of the DEK in slot s in usage[w][s]: a
 * plain load and store of its own counter (one writer; relaxed atomics so
 * the control thread may read it), no read-modify-write shared between
 * cores. Each DEK gives every worker a quota of (limit - seals before this
 * process) / workers, so the sum can never pass the limit between two ticks
 * of the control thread, which sums the rows, asks for rotation at
 * rotate_at_pct of either limit and withdraws a key at a limit.
 *
 * Ownership. Everything in struct keys_cache except |snap|, |epoch|,
 * |usage| and |wrc| belongs to the control thread. Workers only read
 * |snap| and |epoch| and write their own |wrc| entry and |usage| row.
 */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sealtap/common.h"
#include "sealtap/keys.h"
#include "sealtap/log.h"

#define HUGE_2M (2u << 20)
#define SLOTS_SPARE 16 /* beyond 2 per tenant: rotations waiting for RCU */

/* Test hooks: force locked pages; see the region before it is unmapped. */
static bool cache_test_no_hugetlb;
static void (*cache_test_before_unmap)(const uint8_t *region, size_t len);

enum slot_state {
	SLOT_FREE = 0,
	SLOT_RESERVED, /* handed out for an unwrap */
	SLOT_USED,     /* a tenant's key in the staged set */
	SLOT_ORPHAN,   /* replaced, but the published snapshot has it */
	SLOT_DYING,    /* retired at |epoch|, waiting for the workers */
};

struct slot_info {
	enum slot_state state;
	bool published;  /* referenced by the current snapshot */
	uint64_t epoch;  /* SLOT_DYING */
};

struct worker_rc {
	_Atomic uint64_t qs; /* epoch seen at the last quiescent point; 0 =
				offline */
} ST_CACHE_ALIGNED;

/* Control thread's view of a tenant (the staged set). */
struct ctl_tenant {
	char name[KEYS_TENANT_MAX + 1];
	enum keys_tenant_state state;
	int slot;               /* -1: no key */
	struct keys_dek dek;    /* valid with |slot| */
	uint64_t base;          /* seals before this process */
	uint64_t created_ns;
	bool rotate_sent;
};

/* One allocation: header, views, DEK views, names. Immutable once
 * published. */
struct snap_mem {
	struct keys_snapshot pub;
	struct keys_tenant_view *views;
	struct keys_dek *deks;
};

struct retired {
	struct snap_mem *snap;
	uint64_t epoch;
	struct retired *next;
};

struct keys_cache {
	struct keys_cache_cfg cfg;
	/* region */
	uint8_t *map, *region;
	size_t map_len, region_len;
	bool hugetlb;
	unsigned nslots;
	struct slot_info *slots;
	/* worker-shared */
	uint64_t *usage;        /* usage[w * stride + slot] */
	size_t stride;
	struct worker_rc *wrc;
	_Atomic(struct snap_mem *) snap;
	_Atomic uint64_t epoch;
	/* control */
	struct retired *retired;
	struct ctl_tenant *tenants; /* sorted by name */
	unsigned ntenants;
	bool dirty;
	uint64_t generation, version;
	struct keys_cache_stats st;
};

const char *keys_tenant_state_name(enum keys_tenant_state s)
{
	switch (s) {
	case KEYS_TENANT_PENDING: return "pending";
	case KEYS_TENANT_OK: return "ok";
	case KEYS_TENANT_FAILED: return "failed";
	case KEYS_TENANT_EXHAUSTED: return "exhausted";
	}
	return "unknown";
}

static int kc_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int kc_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- region -------------------------------------------------------------------- */

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static int map_hugetlb(struct keys_cache *c, size_t need)
{
	size_t len = round_up(need, HUGE_2M);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	c->map = c->region = p;
	c->map_len = c->region_len = len;
	c->hugetlb = true;
	/* Hugetlb pages are never swapped; the lock only makes it explicit
	 * (and may be refused by RLIMIT_MEMLOCK, which is fine here). */
	(void)mlock(c->region, c->region_len);
	return 0;
}

static int map_locked(struct keys_cache *c, size_t need, char *err,
		      size_t errlen)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = round_up(need, page);
	void *p = mmap(NULL, len + 2 * page, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return kc_fail(err, errlen, -errno, "DEK cache: mmap: %s",
			    strerror(errno));
	c->map = p;
	c->map_len = len + 2 * page;
	c->region = c->map + page;
	c->region_len = len;
	if (mprotect(c->region, len, PROT_READ | PROT_WRITE))
		return kc_fail(err, errlen, -errno, "DEK cache: mprotect: %s",
			    strerror(errno));
	if (mlock(c->region, len))
		return kc_fail(err, errlen, -errno,
			    "DEK cache: mlock of %zu bytes: %s; raise the "
			    "locked-memory limit (ulimit -l, LimitMEMLOCK=) so "
			    "keys cannot be swapped to disk", len,
			    strerror(errno));
	return 0;
}

static int protect_region(struct keys_cache *c, char *err, size_t errlen)
{
	if (madvise(c->region, c->region_len, MADV_DONTDUMP))
		return kc_fail(err, errlen, -errno,
			    "DEK cache: madvise(MADV_DONTDUMP): %s; refusing "
			    "to hold keys that a core dump would contain",
			    strerror(errno));
#ifdef MADV_WIPEONFORK
	/* Not for hugetlb on some kernels: MADV_DONTFORK then, so a child
	 * has no mapping at all. */
	if (madvise(c->region, c->region_len, MADV_WIPEONFORK))
		(void)madvise(c->region, c->region_len, MADV_DONTFORK);
#else
	(void)madvise(c->region, c->region_len, MADV_DONTFORK);
#endif
	return 0;
}

static int map_region(struct keys_cache *c, char *err, size_t errlen)
{
	size_t need = (size_t)c->nslots * KEYS_SLOT_SIZE;
	int rc = -ENOMEM;
	if (c->cfg.mem != KEYS_MEM_LOCKED && !cache_test_no_hugetlb)
		rc = map_hugetlb(c, need);
	if (rc && c->cfg.mem == KEYS_MEM_HUGETLB)
		return kc_fail(err, errlen, rc,
			    "DEK cache: no hugepage for the key region (%s); "
			    "reserve some (/proc/sys/vm/nr_hugepages) or "
			    "allow locked pages", strerror(-rc));
	if (rc) {
		rc = map_locked(c, need, err, errlen);
		if (rc)
			return rc;
		log_kv(LOG_LEVEL_WARN,
		       "DEK cache on locked regular pages with guard pages "
		       "(no hugepages available)",
		       "reason", "MAP_HUGETLB failed or disabled", NULL);
	}
	return protect_region(c, err, errlen);
}

static void unmap_region(struct keys_cache *c)
{
	if (!c->map)
		return;
	OPENSSL_cleanse(c->region, c->region_len);
	if (cache_test_before_unmap)
		cache_test_before_unmap(c->region, c->region_len);
	munlock(c->region, c->region_len);
	munmap(c->map, c->map_len);
	c->map = c->region = NULL;
}

static uint8_t *slot_ptr(struct keys_cache *c, unsigned s)
{
	return c->region + (size_t)s * KEYS_SLOT_SIZE;
}

static void slot_wipe_free(struct keys_cache *c, unsigned s)
{
	OPENSSL_cleanse(slot_ptr(c, s), KEYS_SLOT_SIZE);
	c->slots[s].state = SLOT_FREE;
	c->slots[s].published = false;
	c->st.wiped++;
}

/* ---- snapshots ------------------------------------------------------------------ */

/* Builds the snapshot of the staged set. NULL on allocation failure. */
static struct snap_mem *snap_build(struct keys_cache *c)
{
	size_t n = c->ntenants;
	size_t sz = sizeof(struct snap_mem) +
		    n * (sizeof(struct keys_tenant_view) +
			 sizeof(struct keys_dek) + KEYS_TENANT_MAX + 1);
	struct snap_mem *m = calloc(1, sz);
	if (!m)
		return NULL;
	m->deks = (struct keys_dek *)(m + 1);
	m->views = (struct keys_tenant_view *)(m->deks + n);
	char *names = (char *)(m->views + n);
	for (size_t i = 0; i < n; i++) {
		const struct ctl_tenant *t = &c->tenants[i];
		struct keys_tenant_view *v = &m->views[i];
		size_t nl = strlen(t->name);
		memcpy(names, t->name, nl + 1);
		v->name = names;
		v->name_len = (uint32_t)nl;
		names += nl + 1;
		v->state = t->state;
		if (t->state == KEYS_TENANT_OK && t->slot >= 0) {
			m->deks[i] = t->dek;
			v->dek = &m->deks[i];
		}
	}
	m->pub.version = ++c->version;
	m->pub.n = (unsigned)n;
	m->pub.t = m->views;
	return m;
}

static void retire(struct keys_cache *c, struct snap_mem *old, uint64_t e)
{
	struct retired *r = malloc(sizeof(*r));
	if (!r) {
		/* Cannot defer: wait until the workers pass, then free. The
		 * control thread can afford it; it is out of memory anyway. */
		for (;;) {
			unsigned all = 1;
			for (unsigned w = 0; w < c->cfg.workers; w++) {
				uint64_t q = atomic_load(&c->wrc[w].qs);
				all &= q == 0 || q >= e;
			}
			if (all)
				break;
			sched_yield();
		}
		free(old);
		return;
	}
	r->snap = old;
	r->epoch = e;
	r->next = c->retired;
	c->retired = r;
	c->st.snapshots_pending++;
}

int keys_cache_publish(struct keys_cache *c)
{
	if (!c->dirty)
		return 0;
	struct snap_mem *m = snap_build(c);
	if (!m)
		return -ENOMEM;
	struct snap_mem *old = atomic_exchange(&c->snap, m);
	uint64_t e = atomic_fetch_add(&c->epoch, 1) + 1;
	for (unsigned s = 0; s < c->nslots; s++) {
		struct slot_info *si = &c->slots[s];
		bool in_new = si->state == SLOT_USED;
		if (si->published && !in_new) {
			si->state = SLOT_DYING;
			si->epoch = e;
		}
		si->published = in_new;
	}
	retire(c, old, e);
	c->dirty = false;
	c->st.publishes++;
	return 0;
}

/* Lowest epoch any online worker may still read under; UINT64_MAX if
 * none is online. */
static uint64_t min_quiescent(struct keys_cache *c)
{
	uint64_t min = UINT64_MAX;
	for (unsigned w = 0; w < c->cfg.workers; w++) {
		uint64_t q = atomic_load(&c->wrc[w].qs);
		if (q && q < min)
			min = q;
	}
	return min;
}

unsigned keys_cache_reclaim(struct keys_cache *c)
{
	uint64_t min = min_quiescent(c);
	unsigned wiped = 0;
	for (struct retired **pp = &c->retired; *pp;) {
		struct retired *r = *pp;
		if (r->epoch <= min) {
			*pp = r->next;
			free(r->snap);
			free(r);
			c->st.snapshots_pending--;
		} else {
			pp = &r->next;
		}
	}
	for (unsigned s = 0; s < c->nslots; s++)
		if (c->slots[s].state == SLOT_DYING &&
		    c->slots[s].epoch <= min) {
			slot_wipe_free(c, s);
			wiped++;
		}
	return wiped;
}

/* ---- worker side ------------------------------------------------------------------- */

const struct keys_snapshot *keys_cache_snapshot(struct keys_cache *c)
{
	return &atomic_load_explicit(&c->snap, memory_order_acquire)->pub;
}

const struct keys_dek *keys_snapshot_lookup(const struct keys_snapshot *s,
					    const char *tenant, size_t len)
{
	unsigned lo = 0, hi = s->n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const struct keys_tenant_view *v = &s->t[mid];
		size_t m = len < v->name_len ? len : v->name_len;
		int cmp = memcmp(tenant, v->name, m);
		if (cmp == 0)
			cmp = len < v->name_len ? -1 : len > v->name_len;
		if (cmp == 0)
			return v->dek;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int keys_cache_charge(struct keys_cache *c, unsigned w,
		      const struct keys_dek *d, uint64_t n, uint64_t now_ns)
{
	if (ST_UNLIKELY(w >= c->cfg.workers || d->slot >= c->nslots))
		return -EINVAL;
	uint64_t *p = &c->usage[(size_t)w * c->stride + d->slot];
	uint64_t u = __atomic_load_n(p, __ATOMIC_RELAXED);
	if (u > d->worker_quota || n > d->worker_quota - u ||
	    now_ns >= d->expires_ns)
		return -EKEYEXPIRED;
	__atomic_store_n(p, u + n, __ATOMIC_RELAXED);
	return 0;
}

void keys_cache_quiescent(struct keys_cache *c, unsigned w)
{
	uint64_t e = atomic_load_explicit(&c->epoch, memory_order_acquire);
	atomic_store_explicit(&c->wrc[w].qs, e, memory_order_release);
}

void keys_cache_offline(struct keys_cache *c, unsigned w)
{
	atomic_store_explicit(&c->wrc[w].qs, 0, memory_order_release);
}

void keys_cache_online(struct keys_cache *c, unsigned w)
{
	atomic_store(&c->wrc[w].qs, atomic_load(&c->epoch));
}

/* ---- control side ---------------------------------------------------------------------- */

static int cfg_check(const struct keys_cache_cfg *cfg, char *err,
		     size_t errlen)
{
	if (!cfg || cfg->workers < 1 || cfg->workers > 256 ||
	    cfg->max_tenants < 1 || cfg->max_tenants > 65536 ||
	    cfg->max_seals < 1 || cfg->max_age_ns < 1 ||
	    cfg->rotate_at_pct < 50 || cfg->rotate_at_pct > 99)
		return kc_fail(err, errlen, -EINVAL,
			    "DEK cache: invalid configuration");
	return 0;
}

int keys_cache_new(const struct keys_cache_cfg *cfg, struct keys_cache **out,
		   char *err, size_t errlen)
{
	*out = NULL;
	int rc = cfg_check(cfg, err, errlen);
	if (rc)
		return rc;
	struct keys_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return kc_fail(err, errlen, -ENOMEM, "out of memory");
	c->cfg = *cfg;
	c->nslots = 2 * cfg->max_tenants + SLOTS_SPARE;
	c->stride = round_up(c->nslots, ST_CACHE_LINE / sizeof(uint64_t));
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	c->tenants = calloc(cfg->max_tenants, sizeof(*c->tenants));
	c->usage = aligned_alloc(ST_CACHE_LINE,
				 cfg->workers * c->stride * sizeof(uint64_t));
	c->wrc = aligned_alloc(ST_CACHE_LINE,
			       cfg->workers * sizeof(struct worker_rc));
	atomic_init(&c->epoch, 1);
	struct snap_mem *empty = snap_build(c);
	atomic_init(&c->snap, empty);
	if (!c->slots || !c->tenants || !c->usage || !c->wrc || !empty) {
		keys_cache_free(c);
		return kc_fail(err, errlen, -ENOMEM, "out of memory");
	}
	memset(c->usage, 0, cfg->workers * c->stride * sizeof(uint64_t));
	for (unsigned w = 0; w < cfg->workers; w++)
		atomic_init(&c->wrc[w].qs, 0);
	rc = map_region(c, err, errlen);
	if (rc) {
		keys_cache_free(c);
		return rc;
	}
	c->st.mem = c->hugetlb ? "hugetlb" : "locked";
	*out = c;
	return 0;
}

void keys_cache_free(struct keys_cache *c)
{
	if (!c)
		return;
	while (c->retired) {
		struct retired *r = c->retired;
		c->retired = r->next;
		free(r->snap);
		free(r);
	}
	free(atomic_load(&c->snap));
	unmap_region(c); /* wipes every slot */
	free(c->slots);
	free(c->tenants);
	free(c->usage);
	free(c->wrc);
	free(c);
}

int keys_cache_slot_get(struct keys_cache *c, uint8_t **buf, size_t *cap)
{
	for (unsigned s = 0; s < c->nslots; s++) {
		if (c->slots[s].state != SLOT_FREE)
			continue;
		c->slots[s].state = SLOT_RESERVED;
		/* No worker can touch a free slot's counters: they were last
		 * written under a snapshot every worker has left. */
		for (unsigned w = 0; w < c->cfg.workers; w++)
			__atomic_store_n(&c->usage[w * c->stride + s], 0,
					 __ATOMIC_RELAXED);
		*buf = slot_ptr(c, s);
		*cap = KEYS_SLOT_SIZE;
		return (int)s;
	}
	return -ENOSPC;
}

void keys_cache_slot_put(struct keys_cache *c, int slot)
{
	if (slot >= 0 && (unsigned)slot < c->nslots &&
	    c->slots[slot].state == SLOT_RESERVED)
		slot_wipe_free(c, (unsigned)slot);
}

static struct ctl_tenant *tenant_find(struct keys_cache *c, const char *name)
{
	for (unsigned i = 0; i < c->ntenants; i++)
		if (!strcmp(c->tenants[i].name, name))
			return &c->tenants[i];
	return NULL;
}

static struct ctl_tenant *tenant_add(struct keys_cache *c, const char *name)
{
	struct ctl_tenant *t = tenant_find(c, name);
	if (t || c->ntenants >= c->cfg.max_tenants)
		return t;
	unsigned at = 0;
	while (at < c->ntenants && strcmp(c->tenants[at].name, name) < 0)
		at++;
	memmove(&c->tenants[at + 1], &c->tenants[at],
		(c->ntenants - at) * sizeof(*c->tenants));
	t = &c->tenants[at];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->slot = -1;
	t->state = KEYS_TENANT_PENDING;
	c->ntenants++;
	return t;
}

/* Takes the key away from |t| (staged set); the slot is wiped now if no
 * snapshot has it, else once the workers have left the last one that did. */
static void drop_key(struct keys_cache *c, struct ctl_tenant *t)
{
	if (t->slot < 0)
		return;
	struct slot_info *si = &c->slots[t->slot];
	if (si->published)
		si->state = SLOT_ORPHAN;
	else
		slot_wipe_free(c, (unsigned)t->slot);
	t->slot = -1;
	c->dirty = true;
}

int keys_cache_install(struct keys_cache *c, const char *tenant, int slot,
		       const struct keys_dek_meta *m)
{
	if (slot < 0 || (unsigned)slot >= c->nslots ||
	    c->slots[slot].state != SLOT_RESERVED)
		return -EINVAL;
	int rc = 0;
	uint64_t created_ns = m && m->created > 0
				      ? (uint64_t)m->created * ST_NS_PER_SEC
				      : 0;
	uint64_t expires = created_ns + c->cfg.max_age_ns;
	if (!m || !keys_tenant_name_valid(tenant) ||
	    !seal_key_id_valid(m->key_id, strlen(m->key_id)) ||
	    m->instance > SEAL_GCM_INSTANCE_MAX)
		rc = -EINVAL;
	else if (m->seals_before >= c->cfg.max_seals ||
		 (c->cfg.max_seals - m->seals_before) / c->cfg.workers == 0 ||
		 st_wall_ns() >= expires)
		rc = -EKEYEXPIRED;
	struct ctl_tenant *t = rc ? NULL : tenant_add(c, tenant);
	if (!rc && !t)
		rc = -ENOSPC;
	if (rc) {
		slot_wipe_free(c, (unsigned)slot);
		return rc;
	}
	drop_key(c, t);
	t->slot = slot;
	t->state = KEYS_TENANT_OK;
	t->base = m->seals_before;
	t->created_ns = created_ns;
	t->rotate_sent = false;
	memset(&t->dek, 0, sizeof(t->dek));
	t->dek.key = slot_ptr(c, (unsigned)slot);
	snprintf(t->dek.key_id, sizeof(t->dek.key_id), "%s", m->key_id);
	t->dek.instance = m->instance;
	t->dek.slot = (uint32_t)slot;
	t->dek.generation = ++c->generation;
	t->dek.worker_quota =
		(c->cfg.max_seals - m->seals_before) / c->cfg.workers;
	t->dek.expires_ns = expires;
	c->slots[slot].state = SLOT_USED;
	c->dirty = true;
	return 0;
}

int keys_cache_fail(struct keys_cache *c, const char *tenant, bool withdraw)
{
	if (!keys_tenant_name_valid(tenant))
		return -EINVAL;
	struct ctl_tenant *t = tenant_add(c, tenant);
	if (!t)
		return -ENOSPC;
	if (t->state == KEYS_TENANT_OK && !withdraw)
		return -EEXIST;
	drop_key(c, t);
	if (t->state != KEYS_TENANT_FAILED)
		c->dirty = true;
	t->state = KEYS_TENANT_FAILED;
	return 0;
}

static void emit(struct keys_cache *c, enum keys_event_kind k,
		 const struct ctl_tenant *t, const char *reason, uint64_t used,
		 uint64_t limit)
{
	if (!c->cfg.on_event)
		return;
	struct keys_event ev = { k, t->name, t->dek.key_id, reason, used,
				 limit };
	c->cfg.on_event(c->cfg.arg, &ev);
}

/* Sum and largest per-worker count of the DEK in |slot|. */
static void usage_of(struct keys_cache *c, unsigned slot, uint64_t *sum,
		     uint64_t *max)
{
	*sum = *max = 0;
	for (unsigned w = 0; w < c->cfg.workers; w++) {
		uint64_t u = __atomic_load_n(&c->usage[w * c->stride + slot],
					     __ATOMIC_RELAXED);
		*sum += u;
		if (u > *max)
			*max = u;
	}
}

static void check_limits(struct keys_cache *c, struct ctl_tenant *t,
			 uint64_t now_ns)
{
	uint64_t sum, max, pct = c->cfg.rotate_at_pct;
	usage_of(c, (unsigned)t->slot, &sum, &max);
	uint64_t used = t->base + sum, quota = t->dek.worker_quota;
	uint64_t age = now_ns > t->created_ns ? now_ns - t->created_ns : 0;
	bool by_age = now_ns >= t->dek.expires_ns;
	/* A worker at its quota can seal no more: the DEK is at its count
	 * limit as far as that worker goes; withdraw it for everyone so the
	 * tenant's state is one thing (redacted until rotated), not a
	 * per-worker lottery. */
	if (by_age || max >= quota) {
		emit(c, KEYS_EV_EXHAUSTED, t, by_age ? "age" : "count", used,
		     c->cfg.max_seals);
		drop_key(c, t);
		t->state = KEYS_TENANT_EXHAUSTED;
		c->st.exhausted++;
		return;
	}
	if (t->rotate_sent)
		return;
	typedef unsigned __int128 u128; /* no overflow near 2^64 */
	bool near_count = (u128)used * 100 >= (u128)c->cfg.max_seals * pct ||
			  (u128)max * 100 >= (u128)quota * pct;
	bool near_age = (u128)age * 100 >= (u128)c->cfg.max_age_ns * pct;
	if (near_count || near_age) {
		t->rotate_sent = true;
		c->st.rotations_requested++;
		emit(c, KEYS_EV_ROTATE, t, near_count ? "count" : "age", used,
		     c->cfg.max_seals);
	}
}

void keys_cache_tick(struct keys_cache *c, uint64_t now_ns)
{
	for (unsigned i = 0; i < c->ntenants; i++)
		if (c->tenants[i].state == KEYS_TENANT_OK &&
		    c->tenants[i].slot >= 0)
			check_limits(c, &c->tenants[i], now_ns);
	if (c->dirty)
		(void)keys_cache_publish(c); /* retried next tick on ENOMEM */
	keys_cache_reclaim(c);
}

int keys_cache_tenant_state(struct keys_cache *c, const char *tenant)
{
	struct ctl_tenant *t = tenant_find(c, tenant);
	return t ? (int)t->state : -ENOENT;
}

int keys_cache_usage(struct keys_cache *c, const char *tenant,
		     uint64_t *seals)
{
	struct ctl_tenant *t = tenant_find(c, tenant);
	uint64_t sum, max;
	if (!t || t->slot < 0)
		return -ENOENT;
	usage_of(c, (unsigned)t->slot, &sum, &max);
	*seals = t->base + sum;
	return 0;
}

void keys_cache_stats(struct keys_cache *c, struct keys_cache_stats *st)
{
	*st = c->st;
	st->region_bytes = c->region_len;
	st->slots = c->nslots;
	st->slots_used = 0;
	for (unsigned s = 0; s < c->nslots; s++)
		st->slots_used += c->slots[s].state != SLOT_FREE;
	st->tenants = c->ntenants;
	st->tenants_ok = st->tenants_failed = st->tenants_exhausted = 0;
	for (unsigned i = 0; i < c->ntenants; i++) {
		st->tenants_ok += c->tenants[i].state == KEYS_TENANT_OK;
		st->tenants_failed += c->tenants[i].state == KEYS_TENANT_FAILED;
		st->tenants_exhausted +=
			c->tenants[i].state == KEYS_TENANT_EXHAUSTED;
	}
}
