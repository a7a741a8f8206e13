/* Tests for src/keys_cache.c: the protected region (flags read back from
 * /proc/self/smaps and /proc/self/maps), wiping on rotation, eviction and
 * free (the region read through a test hook just before it is unmapped),
 * RCU snapshot swaps under concurrent reader threads (run it under ASan:
 * a use after free of a snapshot or a read of a wiped key fails it), usage
 * and age limits, and fail-closed tenants. The .c is included to reach the
 * region and the test hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>

#include "../../src/keys_cache.c"
#include "smaps.h"

#define HOUR (3600ull * ST_NS_PER_SEC)

static uint64_t now_ns(void)
{
	return st_wall_ns();
}

static struct keys_cache_cfg base_cfg(unsigned workers)
{
	struct keys_cache_cfg c = { .workers = workers, .max_tenants = 8,
				    .max_seals = 1000, .max_age_ns = HOUR,
				    .rotate_at_pct = 90,
				    .mem = KEYS_MEM_AUTO };
	return c;
}

static struct keys_cache *new_cache(struct keys_cache_cfg c)
{
	struct keys_cache *k;
	char err[256];
	int rc = keys_cache_new(&c, &k, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	return k;
}

/* Installs a DEK filled with |fill| for |tenant|; returns its slot. */
static int put_key(struct keys_cache *c, const char *tenant, uint8_t fill,
		   const char *id, int64_t created, uint64_t before)
{
	uint8_t *buf;
	size_t cap;
	int slot = keys_cache_slot_get(c, &buf, &cap);
	assert_true(slot >= 0);
	assert_int_equal(cap, KEYS_SLOT_SIZE);
	memset(buf, fill, SEAL_DEK_LEN);
	struct keys_dek_meta m = { id, 0, created, before };
	int rc = keys_cache_install(c, tenant, slot, &m);
	if (rc)
		return rc;
	return slot;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- memory protections ----------------------------------------------------------- */

/* Permissions ("rw-p", "---p") of the mapping holding |addr|. */
static bool perms_of(const void *addr, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && a >= lo &&
		    a < hi) {
			memcpy(perms, p, 5);
			fclose(f);
			return true;
		}
	}
	fclose(f);
	return false;
}

static void test_locked_region(void **state)
{
	(void)state;
	struct keys_cache_cfg cfg = base_cfg(1);
	cfg.mem = KEYS_MEM_LOCKED;
	struct keys_cache *c = new_cache(cfg);
	char flags[256], perms[5];
	assert_false(c->hugetlb);
	assert_true(vmflags_of(c->region, flags, sizeof(flags)));
	print_message("region VmFlags:%s", flags);
	assert_true(has_flag(flags, "dd")); /* MADV_DONTDUMP */
#if !defined(__SANITIZE_ADDRESS__)
	/* ASan intercepts mlock() as a no-op: checked in normal builds. */
	assert_true(has_flag(flags, "lo")); /* mlock */
#endif
#ifdef MADV_WIPEONFORK
	assert_true(has_flag(flags, "wf"));
#endif
	/* Guard pages on both sides. */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	assert_true(perms_of(c->region - 1, perms));
	assert_string_equal(perms, "---p");
	assert_true(perms_of(c->region + c->region_len, perms));
	assert_string_equal(perms, "---p");
	assert_true(perms_of(c->region, perms));
	assert_string_equal(perms, "rw-p");
	assert_int_equal(c->region_len % page, 0);
	assert_true(c->region_len >= c->nslots * KEYS_SLOT_SIZE);
	struct keys_cache_stats st;
	keys_cache_stats(c, &st);
	assert_string_equal(st.mem, "locked");
	keys_cache_free(c);
}

static int log_pipe[2];

static void test_auto_and_hugepages(void **state)
{
	(void)state;
	/* Without hugepages "auto" falls back to locked pages and warns. */
	struct keys_cache_cfg cfg = base_cfg(1);
	assert_int_equal(pipe(log_pipe), 0);
	log_set_fd(log_pipe[1]);
	log_set_level(LOG_LEVEL_WARN);
	cache_test_no_hugetlb = true;
	struct keys_cache *c = new_cache(cfg);
	cache_test_no_hugetlb = false;
	log_set_fd(2);
	log_set_level(LOG_LEVEL_ERROR);
	char buf[1024] = "";
	ssize_t n = read(log_pipe[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"level\":\"warn\""));
	assert_non_null(strstr(buf, "locked regular pages"));
	close(log_pipe[0]);
	close(log_pipe[1]);
	assert_false(c->hugetlb);
	keys_cache_free(c);

	/* "hugepages" requires them: works where reserved, else a clear
	 * error. */
	cfg.mem = KEYS_MEM_HUGETLB;
	char err[256];
	int rc = keys_cache_new(&cfg, &c, err, sizeof(err));
	if (rc == 0) {
		char flags[256];
		assert_true(c->hugetlb);
		assert_true(vmflags_of(c->region, flags, sizeof(flags)));
		assert_true(has_flag(flags, "dd"));
		assert_true(has_flag(flags, "ht"));
		print_message("hugetlb region VmFlags:%s", flags);
		keys_cache_free(c);
	} else {
		print_message("no hugepages here: %s\n", err);
		assert_int_equal(rc, -ENOMEM);
		assert_non_null(strstr(err, "nr_hugepages"));
		assert_null(c);
	}
}

/* ---- wiping ----------------------------------------------------------------------- */

static bool unmap_seen_zero;
static bool unmap_called;

static void check_before_unmap(const uint8_t *region, size_t len)
{
	unmap_called = true;
	unmap_seen_zero = all_zero(region, len);
}

static void test_wipe(void **state)
{
	(void)state;
	struct keys_cache *c = new_cache(base_cfg(1));
	int64_t t = (int64_t)time(NULL);
	int s1 = put_key(c, "acme", 0xa1, "acme-1", t, 0);
	assert_int_equal(keys_cache_publish(c), 0);
	uint8_t *p1 = slot_ptr(c, (unsigned)s1);
	assert_int_equal(p1[0], 0xa1);

	/* A worker holds the snapshot while the key rotates: the old key
	 * stays readable until the worker passes a quiescent point. */
	keys_cache_online(c, 0);
	const struct keys_snapshot *held = keys_cache_snapshot(c);
	const struct keys_dek *d = keys_snapshot_lookup(held, "acme", 4);
	assert_non_null(d);
	int s2 = put_key(c, "acme", 0xa2, "acme-2", t, 0);
	assert_int_not_equal(s1, s2);
	assert_int_equal(keys_cache_publish(c), 0);
	assert_int_equal(keys_cache_reclaim(c), 0);
	assert_int_equal(d->key[0], 0xa1); /* still intact for the reader */
	assert_int_equal(c->slots[s1].state, SLOT_DYING);
	keys_cache_quiescent(c, 0);
	assert_int_equal(keys_cache_reclaim(c), 1);
	assert_true(all_zero(p1, KEYS_SLOT_SIZE)); /* rotation wiped it */
	assert_int_equal(c->slots[s1].state, SLOT_FREE);

	/* Eviction (KEK revoked): wiped once the workers have moved on. */
	uint8_t *p2 = slot_ptr(c, (unsigned)s2);
	assert_int_equal(keys_cache_fail(c, "acme", true), 0);
	assert_int_equal(keys_cache_publish(c), 0);
	keys_cache_quiescent(c, 0);
	assert_int_equal(keys_cache_reclaim(c), 1);
	assert_true(all_zero(p2, KEYS_SLOT_SIZE));

	/* A reserved slot given back (unwrap failed) is wiped at once. */
	uint8_t *buf;
	size_t cap;
	int s3 = keys_cache_slot_get(c, &buf, &cap);
	memset(buf, 0x33, cap);
	keys_cache_slot_put(c, s3);
	assert_true(all_zero(buf, cap));

	/* A key replaced before it was ever published is wiped at once. */
	int s4 = put_key(c, "beta", 0x44, "beta-1", t, 0);
	uint8_t *p4 = slot_ptr(c, (unsigned)s4);
	put_key(c, "beta", 0x45, "beta-2", t, 0);
	assert_true(all_zero(p4, KEYS_SLOT_SIZE));

	/* A refused install wipes the slot it was given. */
	int s5 = keys_cache_slot_get(c, &buf, &cap);
	memset(buf, 0x55, cap);
	struct keys_dek_meta bad = { "bad id!", 0, t, 0 };
	assert_int_equal(keys_cache_install(c, "gamma", s5, &bad), -EINVAL);
	assert_true(all_zero(buf, cap));

	/* Free: the whole region, including live keys, is zero just before
	 * it is unmapped. */
	assert_int_equal(keys_cache_publish(c), 0);
	keys_cache_offline(c, 0);
	cache_test_before_unmap = check_before_unmap;
	keys_cache_free(c);
	cache_test_before_unmap = NULL;
	assert_true(unmap_called);
	assert_true(unmap_seen_zero);
}

/* ---- snapshots under concurrent readers ---------------------------------------------- */

#define READERS 4
#define TENANTS 6

struct reader {
	struct keys_cache *c;
	unsigned w;
	_Atomic bool *stop;
	uint64_t lookups, hits, charged;
	bool bad;
};

static const char *const names[TENANTS] = { "a", "ab", "abc", "b", "t-1",
					    "zz" };

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	keys_cache_online(r->c, r->w);
	while (!atomic_load(r->stop)) {
		const struct keys_snapshot *s = keys_cache_snapshot(r->c);
		for (unsigned i = 0; i < TENANTS; i++) {
			const struct keys_dek *d = keys_snapshot_lookup(
				s, names[i], strlen(names[i]));
			r->lookups++;
			if (!d)
				continue;
			r->hits++;
			/* Every byte of a live key is its fill byte, which
			 * the key id names: a wiped or reused slot shows. */
			uint8_t f = d->key[0];
			unsigned id_fill = 0;
			sscanf(d->key_id, "%*[^-]-%u", &id_fill);
			if (f == 0 || f != (uint8_t)id_fill)
				r->bad = true;
			for (unsigned k = 1; k < SEAL_DEK_LEN; k++)
				if (d->key[k] != f)
					r->bad = true;
			if (keys_cache_charge(r->c, r->w, d, 1, now_ns()) == 0)
				r->charged++;
		}
		keys_cache_quiescent(r->c, r->w);
	}
	keys_cache_offline(r->c, r->w);
	return NULL;
}

static void test_concurrent_swaps(void **state)
{
	(void)state;
	struct keys_cache_cfg cfg = base_cfg(READERS);
	cfg.max_seals = 1ull << 40;
	cfg.max_tenants = TENANTS;
	struct keys_cache *c = new_cache(cfg);
	_Atomic bool stop = false;
	struct reader r[READERS];
	pthread_t th[READERS];
	int64_t t = (int64_t)time(NULL);
	for (unsigned i = 0; i < TENANTS; i++) {
		char id[32];
		snprintf(id, sizeof(id), "k-%u", 1 + i);
		assert_true(put_key(c, names[i], (uint8_t)(1 + i), id, t, 0) >=
			    0);
	}
	assert_int_equal(keys_cache_publish(c), 0);
	for (unsigned i = 0; i < READERS; i++) {
		r[i] = (struct reader){ .c = c, .w = i, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, reader_main,
						&r[i]), 0);
	}
	/* Rotate, fail and restore tenants as fast as slots come back. */
	/* 20000 rounds, or 4 s (slow sanitizer builds under load), at least
	 * 2000. */
	unsigned rotations = 0, gen = 0;
	uint64_t t_end = now_ns() + 4 * ST_NS_PER_SEC;
	for (unsigned round = 0; round < 20000; round++) {
		if (round >= 2000 && (round & 255) == 0 && now_ns() > t_end)
			break;
		unsigned ti = round % TENANTS;
		if (round % 7 == 3) {
			assert_int_equal(keys_cache_fail(c, names[ti], true),
					 0);
		} else {
			uint8_t fill = (uint8_t)(1 + (gen++ % 250));
			char id[32];
			snprintf(id, sizeof(id), "k-%u", fill);
			uint8_t *buf;
			size_t cap;
			int s;
			while ((s = keys_cache_slot_get(c, &buf, &cap)) < 0) {
				keys_cache_reclaim(c);
				sched_yield();
			}
			memset(buf, fill, SEAL_DEK_LEN);
			struct keys_dek_meta m = { id, 0, t, 0 };
			assert_int_equal(keys_cache_install(c, names[ti], s,
							    &m), 0);
			rotations++;
		}
		assert_int_equal(keys_cache_publish(c), 0);
		keys_cache_reclaim(c);
	}
	atomic_store(&stop, true);
	uint64_t hits = 0;
	for (unsigned i = 0; i < READERS; i++) {
		pthread_join(th[i], NULL);
		assert_false(r[i].bad);
		hits += r[i].hits;
	}
	print_message("%u rotations, %" PRIu64 " key reads by %d readers\n",
		      rotations, hits, READERS);
	assert_true(hits > 0);
	/* All readers offline: everything retired can go. */
	keys_cache_reclaim(c);
	struct keys_cache_stats st;
	keys_cache_stats(c, &st);
	assert_int_equal(st.snapshots_pending, 0);
	assert_true(st.slots_used <= TENANTS);
	assert_true(st.wiped >= rotations - TENANTS);
	keys_cache_free(c);
}

/* ---- limits ------------------------------------------------------------------------- */

struct events {
	unsigned n;
	struct {
		enum keys_event_kind kind;
		char tenant[64], reason[16];
		uint64_t used;
	} ev[16];
};

static void on_event(void *arg, const struct keys_event *e)
{
	struct events *ev = arg;
	if (ev->n >= 16)
		return;
	ev->ev[ev->n].kind = e->kind;
	snprintf(ev->ev[ev->n].tenant, 64, "%s", e->tenant);
	snprintf(ev->ev[ev->n].reason, 16, "%s", e->reason);
	ev->ev[ev->n].used = e->used;
	ev->n++;
}

static void test_count_limit(void **state)
{
	(void)state;
	struct events ev = { 0 };
	struct keys_cache_cfg cfg = base_cfg(2);
	cfg.on_event = on_event;
	cfg.arg = &ev;
	struct keys_cache *c = new_cache(cfg); /* 1000 seals, 500 a worker */
	int64_t t = (int64_t)time(NULL);
	put_key(c, "acme", 1, "acme-1", t, 0);
	keys_cache_publish(c);
	keys_cache_online(c, 0);
	keys_cache_online(c, 1);
	const struct keys_dek *d =
		keys_snapshot_lookup(keys_cache_snapshot(c), "acme", 4);
	assert_non_null(d);
	assert_int_equal(d->worker_quota, 500);
	uint64_t now = now_ns();

	assert_int_equal(keys_cache_charge(c, 0, d, 400, now), 0);
	assert_int_equal(keys_cache_charge(c, 1, d, 10, now), 0);
	keys_cache_quiescent(c, 0);
	keys_cache_quiescent(c, 1);
	keys_cache_tick(c, now);
	assert_int_equal(ev.n, 0); /* 41% used, worker 0 at 80% */
	uint64_t used;
	assert_int_equal(keys_cache_usage(c, "acme", &used), 0);
	assert_int_equal(used, 410);

	/* Worker 0 passes 90% of its share: rotation is requested, once. */
	d = keys_snapshot_lookup(keys_cache_snapshot(c), "acme", 4);
	assert_int_equal(keys_cache_charge(c, 0, d, 50, now), 0);
	keys_cache_quiescent(c, 0);
	keys_cache_tick(c, now);
	keys_cache_tick(c, now);
	assert_int_equal(ev.n, 1);
	assert_int_equal(ev.ev[0].kind, KEYS_EV_ROTATE);
	assert_string_equal(ev.ev[0].reason, "count");
	assert_string_equal(ev.ev[0].tenant, "acme");
	assert_int_equal(ev.ev[0].used, 460);

	/* The worker can never go past its share ... */
	d = keys_snapshot_lookup(keys_cache_snapshot(c), "acme", 4);
	assert_int_equal(keys_cache_charge(c, 0, d, 51, now), -EKEYEXPIRED);
	assert_int_equal(keys_cache_charge(c, 0, d, 50, now), 0);
	assert_int_equal(keys_cache_charge(c, 0, d, 1, now), -EKEYEXPIRED);
	keys_cache_quiescent(c, 0);
	/* ... and at it the key is withdrawn: the tenant is redacted until
	 * its successor arrives. */
	keys_cache_tick(c, now);
	assert_int_equal(ev.n, 2);
	assert_int_equal(ev.ev[1].kind, KEYS_EV_EXHAUSTED);
	assert_int_equal(keys_cache_tenant_state(c, "acme"),
			 KEYS_TENANT_EXHAUSTED);
	assert_null(keys_snapshot_lookup(keys_cache_snapshot(c), "acme", 4));
	/* The successor, counting what came before. */
	assert_true(put_key(c, "acme", 2, "acme-2", t, 100) >= 0);
	keys_cache_publish(c);
	d = keys_snapshot_lookup(keys_cache_snapshot(c), "acme", 4);
	assert_non_null(d);
	assert_string_equal(d->key_id, "acme-2");
	assert_int_equal(d->worker_quota, 450); /* (1000 - 100) / 2 */
	assert_int_equal(keys_cache_usage(c, "acme", &used), 0);
	assert_int_equal(used, 100);
	/* A DEK already at its limit is refused. */
	uint8_t *buf;
	size_t cap;
	int s = keys_cache_slot_get(c, &buf, &cap);
	struct keys_dek_meta full = { "acme-3", 0, t, 999 }; /* 1 left, 2 w */
	assert_int_equal(keys_cache_install(c, "acme", s, &full),
			 -EKEYEXPIRED);
	keys_cache_quiescent(c, 0);
	keys_cache_quiescent(c, 1);
	keys_cache_offline(c, 0);
	keys_cache_offline(c, 1);
	keys_cache_free(c);
}

static void test_age_limit(void **state)
{
	(void)state;
	struct events ev = { 0 };
	struct keys_cache_cfg cfg = base_cfg(1);
	cfg.max_age_ns = 100ull * ST_NS_PER_SEC;
	cfg.on_event = on_event;
	cfg.arg = &ev;
	struct keys_cache *c = new_cache(cfg);
	int64_t t = (int64_t)time(NULL);
	/* Already too old: refused. */
	uint8_t *buf;
	size_t cap;
	int s = keys_cache_slot_get(c, &buf, &cap);
	struct keys_dek_meta old = { "x-1", 0, t - 101, 0 };
	assert_int_equal(keys_cache_install(c, "x", s, &old), -EKEYEXPIRED);
	/* 80 s old: fine now, rotation at 90 s, gone at 100 s. */
	put_key(c, "x", 7, "x-2", t - 80, 0);
	keys_cache_publish(c);
	uint64_t base = (uint64_t)t * ST_NS_PER_SEC;
	keys_cache_tick(c, base);
	assert_int_equal(ev.n, 0);
	keys_cache_tick(c, base + 11 * ST_NS_PER_SEC);
	assert_int_equal(ev.n, 1);
	assert_int_equal(ev.ev[0].kind, KEYS_EV_ROTATE);
	assert_string_equal(ev.ev[0].reason, "age");
	const struct keys_dek *d =
		keys_snapshot_lookup(keys_cache_snapshot(c), "x", 1);
	assert_int_equal(keys_cache_charge(c, 0, d, 1,
					   base + 19 * ST_NS_PER_SEC), 0);
	assert_int_equal(keys_cache_charge(c, 0, d, 1,
					   base + 20 * ST_NS_PER_SEC),
			 -EKEYEXPIRED);
	keys_cache_tick(c, base + 20 * ST_NS_PER_SEC);
	assert_int_equal(ev.n, 2);
	assert_int_equal(ev.ev[1].kind, KEYS_EV_EXHAUSTED);
	assert_string_equal(ev.ev[1].reason, "age");
	assert_null(keys_snapshot_lookup(keys_cache_snapshot(c), "x", 1));
	keys_cache_free(c);
}

/* ---- fail closed ----------------------------------------------------------------------- */

static void test_fail_closed(void **state)
{
	(void)state;
	struct keys_cache *c = new_cache(base_cfg(1));
	int64_t t = (int64_t)time(NULL);
	/* A tenant whose DEK never unwrapped: known, failed, no key. */
	assert_int_equal(keys_cache_fail(c, "newco", false), 0);
	put_key(c, "oldco", 9, "oldco-1", t, 0);
	keys_cache_publish(c);
	const struct keys_snapshot *s = keys_cache_snapshot(c);
	assert_int_equal(s->n, 2);
	assert_null(keys_snapshot_lookup(s, "newco", 5));
	assert_null(keys_snapshot_lookup(s, "nobody", 6));
	assert_int_equal(s->t[0].state, KEYS_TENANT_FAILED);
	assert_null(s->t[0].dek);
	assert_string_equal(keys_tenant_state_name(s->t[0].state), "failed");
	/* An outage does not take a working key away ... */
	assert_int_equal(keys_cache_fail(c, "oldco", false), -EEXIST);
	keys_cache_publish(c);
	assert_non_null(keys_snapshot_lookup(keys_cache_snapshot(c), "oldco",
					     5));
	/* ... a revocation does. */
	assert_int_equal(keys_cache_fail(c, "oldco", true), 0);
	keys_cache_publish(c);
	assert_null(keys_snapshot_lookup(keys_cache_snapshot(c), "oldco", 5));
	assert_int_equal(keys_cache_tenant_state(c, "oldco"),
			 KEYS_TENANT_FAILED);
	assert_int_equal(keys_cache_tenant_state(c, "nobody"), -ENOENT);
	/* A later successful unwrap brings the tenant back. */
	put_key(c, "newco", 3, "newco-1", t, 0);
	keys_cache_publish(c);
	assert_non_null(keys_snapshot_lookup(keys_cache_snapshot(c), "newco",
					     5));
	struct keys_cache_stats st;
	keys_cache_stats(c, &st);
	assert_int_equal(st.tenants, 2);
	assert_int_equal(st.tenants_ok, 1);
	assert_int_equal(st.tenants_failed, 1);
	keys_cache_free(c);
}

static void test_capacity_and_lookup(void **state)
{
	(void)state;
	struct keys_cache_cfg cfg = base_cfg(1);
	cfg.max_tenants = 3;
	struct keys_cache *c = new_cache(cfg);
	int64_t t = (int64_t)time(NULL);
	put_key(c, "b", 1, "b-1", t, 0);
	put_key(c, "a", 2, "a-1", t, 0);
	put_key(c, "ab", 3, "ab-1", t, 0);
	assert_int_equal(put_key(c, "c", 4, "c-1", t, 0), -ENOSPC);
	keys_cache_publish(c);
	const struct keys_snapshot *s = keys_cache_snapshot(c);
	assert_int_equal(s->n, 3);
	assert_string_equal(s->t[0].name, "a");
	assert_string_equal(s->t[1].name, "ab");
	assert_string_equal(keys_snapshot_lookup(s, "ab", 2)->key_id, "ab-1");
	assert_string_equal(keys_snapshot_lookup(s, "abc", 1)->key_id, "a-1");
	assert_null(keys_snapshot_lookup(s, "abc", 3));
	assert_null(keys_snapshot_lookup(s, "", 0));
	/* Slots run out when nothing is reclaimed. */
	uint8_t *buf;
	size_t cap;
	unsigned got = 0;
	while (keys_cache_slot_get(c, &buf, &cap) >= 0)
		got++;
	assert_int_equal(got, c->nslots - 3);
	/* Bad arguments. */
	struct keys_cache_cfg bad = base_cfg(0);
	char err[128];
	struct keys_cache *x;
	assert_int_equal(keys_cache_new(&bad, &x, err, sizeof(err)), -EINVAL);
	bad = base_cfg(1);
	bad.rotate_at_pct = 100;
	assert_int_equal(keys_cache_new(&bad, &x, err, sizeof(err)), -EINVAL);
	assert_int_equal(keys_cache_install(c, "a", 999999, NULL), -EINVAL);
	keys_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locked_region),
		cmocka_unit_test(test_auto_and_hugepages),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_concurrent_swaps),
		cmocka_unit_test(test_count_limit),
		cmocka_unit_test(test_age_limit),
		cmocka_unit_test(test_fail_closed),
		cmocka_unit_test(test_capacity_and_lookup),
	};
	/* The locked-pages warning is expected here (checked once). */
	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
