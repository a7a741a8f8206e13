/* Tests for src/flow_table.c: canonical keys, LRU eviction, timeouts, the
 * end hook, and (through the worker) reopening on SYN and a million flows
 * through a table of 65536. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "sealtap/flow.h"
#include "sealtap/worker.h"
#include "pktbuild.h"

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static struct flow_key key4(uint32_t a, uint16_t pa, uint32_t b, uint16_t pb)
{
	struct flow_key k;
	memset(&k, 0, sizeof(k));
	pb_put32(k.addr[0], a);
	pb_put32(k.addr[1], b);
	k.port[0] = pa;
	k.port[1] = pb;
	k.family = FLOW_FAMILY_IPV4;
	k.proto = 6;
	return k;
}

static struct flow_key reverse(const struct flow_key *k)
{
	struct flow_key r = *k;
	memcpy(r.addr[0], k->addr[1], 16);
	memcpy(r.addr[1], k->addr[0], 16);
	r.port[0] = k->port[1];
	r.port[1] = k->port[0];
	return r;
}

/* ---- canonical keys --------------------------------------------------- */

static void check_symmetric(const struct flow_key *k)
{
	struct flow_key rk = reverse(k), c1, c2;
	unsigned d1 = flow_key_canon(k, &c1);
	unsigned d2 = flow_key_canon(&rk, &c2);
	assert_true(flow_key_eq(&c1, &c2));
	assert_int_equal(flow_key_hash(&c1), flow_key_hash(&c2));
	assert_int_equal(c1.pad, 0);
	if (flow_key_eq(k, &rk))
		assert_int_equal(d1, d2); /* both endpoints the same */
	else
		assert_int_equal(d1, d2 ^ 1);
	/* The direction says which endpoint of the canonical key sent. */
	assert_memory_equal(c1.addr[d1], k->addr[0], 16);
	assert_int_equal(c1.port[d1], k->port[0]);
	/* Canonical keys are fixed points. */
	struct flow_key c3;
	assert_int_equal(flow_key_canon(&c1, &c3), 0);
	assert_true(flow_key_eq(&c1, &c3));
}

static void test_key_canon_symmetric(void **state)
{
	(void)state;
	uint64_t x = 99;
	for (int i = 0; i < 20000; i++) {
		struct flow_key k;
		memset(&k, 0, sizeof(k));
		k.proto = 6;
		if (i & 1) {
			k.family = FLOW_FAMILY_IPV6;
			for (int j = 0; j < 16; j++) {
				k.addr[0][j] = (uint8_t)rnd(&x);
				k.addr[1][j] = (i % 7 == 0) ? k.addr[0][j]
							    : (uint8_t)rnd(&x);
			}
		} else {
			k.family = FLOW_FAMILY_IPV4;
			uint32_t a = (uint32_t)rnd(&x);
			pb_put32(k.addr[0], a);
			pb_put32(k.addr[1], (i % 6 == 0) ? a : (uint32_t)rnd(&x));
		}
		k.port[0] = (uint16_t)rnd(&x);
		k.port[1] = (i % 5 == 0) ? k.port[0] : (uint16_t)rnd(&x);
		check_symmetric(&k);
	}
	/* Same address, ports decide; same everything: direction 0. */
	struct flow_key k = key4(PB_IP4(10, 0, 0, 1), 80, PB_IP4(10, 0, 0, 1), 81);
	check_symmetric(&k);
	struct flow_key c;
	assert_int_equal(flow_key_canon(&k, &c), 0);
	k = key4(PB_IP4(10, 0, 0, 1), 81, PB_IP4(10, 0, 0, 1), 80);
	assert_int_equal(flow_key_canon(&k, &c), 1);
	k = key4(PB_IP4(10, 0, 0, 1), 80, PB_IP4(10, 0, 0, 1), 80);
	check_symmetric(&k);
	/* Endpoint strings. */
	char buf[64];
	k = key4(PB_IP4(192, 0, 2, 1), 443, PB_IP4(10, 0, 0, 2), 40000);
	assert_string_equal(flow_key_endpoint_str(&k, 0, buf, sizeof(buf)),
			    "192.0.2.1:443");
	assert_string_equal(flow_key_endpoint_str(&k, 1, buf, sizeof(buf)),
			    "10.0.0.2:40000");
	memset(&k, 0, sizeof(k));
	k.family = FLOW_FAMILY_IPV6;
	pb_ip6addr(k.addr[0], 1);
	k.port[0] = 8443;
	assert_string_equal(flow_key_endpoint_str(&k, 0, buf, sizeof(buf)),
			    "[2001:db8::1]:8443");
}

/* ---- a table with a recording end hook ------------------------------- */

struct hook_log {
	unsigned n;
	struct {
		struct flow *f;
		uint32_t tag; /* app cookie at the time */
		enum flow_end why;
		uint64_t now;
	} e[64];
	uint32_t *calls; /* per tag: how often ended */
};

static void hook(void *user, struct flow *f, enum flow_end why, uint64_t now)
{
	struct hook_log *l = user;
	uint32_t tag = (uint32_t)(uintptr_t)f->app;
	if (l->calls)
		l->calls[tag]++;
	if (l->n < ST_ARRAY_SIZE(l->e)) {
		l->e[l->n].f = f;
		l->e[l->n].tag = tag;
		l->e[l->n].why = why;
		l->e[l->n].now = now;
	}
	l->n++;
	f->app = NULL;
}

static struct flow *get4(struct flow_table *t, uint32_t i, uint64_t now,
			 bool *created)
{
	struct flow_key k = key4(PB_IP4(10, 0, 0, 1), (uint16_t)(1000 + i),
				 PB_IP4(10, 0, 0, 2), 443),
			c;
	flow_key_canon(&k, &c);
	struct flow *f = flow_table_get(t, &c, flow_key_hash(&c), now, created);
	assert_non_null(f);
	if (*created)
		f->app = (void *)(uintptr_t)i;
	return f;
}

static struct flow *find4(struct flow_table *t, uint32_t i)
{
	struct flow_key k = key4(PB_IP4(10, 0, 0, 1), (uint16_t)(1000 + i),
				 PB_IP4(10, 0, 0, 2), 443),
			c;
	flow_key_canon(&k, &c);
	return flow_table_find(t, &c, flow_key_hash(&c));
}

/* Both directions of a connection map to one flow (IPv4 and IPv6). */
static void test_both_directions_one_flow(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct flow_table_cfg cfg = { .max_flows = 8, .idle_timeout_ns = 100,
				      .closed_timeout_ns = 10 };
	struct hook_log log = { 0 };
	struct flow_table *t = flow_table_new(&cfg, hook, &log, &c);
	assert_non_null(t);
	for (int v6 = 0; v6 < 2; v6++) {
		struct flow_key k;
		if (v6) {
			memset(&k, 0, sizeof(k));
			k.family = FLOW_FAMILY_IPV6;
			k.proto = 6;
			pb_ip6addr(k.addr[0], 0x20);
			pb_ip6addr(k.addr[1], 0x10);
			k.port[0] = 40000;
			k.port[1] = 443;
		} else {
			k = key4(PB_IP4(10, 9, 9, 9), 40000, PB_IP4(10, 1, 1, 1),
				 443);
		}
		struct flow_key rk = reverse(&k), c1, c2;
		unsigned d1 = flow_key_canon(&k, &c1);
		unsigned d2 = flow_key_canon(&rk, &c2);
		assert_int_equal(d1, 1); /* the higher address sent */
		assert_int_equal(d2, 0);
		bool cr1, cr2;
		struct flow *f1 = flow_table_get(t, &c1, flow_key_hash(&c1), 1, &cr1);
		struct flow *f2 = flow_table_get(t, &c2, flow_key_hash(&c2), 2, &cr2);
		assert_true(cr1);
		assert_false(cr2);
		assert_ptr_equal(f1, f2);
		assert_int_equal(f1->last_ts, 2);
		assert_int_equal(f1->first_ts, 1);
		assert_int_equal(f1->client_dir, FLOW_ROLE_UNKNOWN);
		assert_int_equal(f1->dir[0].idx, 0);
		assert_int_equal(f1->dir[1].idx, 1);
		assert_ptr_equal(flow_table_find(t, &c2, flow_key_hash(&c2)), f1);
	}
	assert_int_equal(flow_table_count(t), 2);
	assert_int_equal(c.v[ST_CTR_flow_created], 2);
	assert_int_equal(flow_table_capacity(t), 8);
	flow_table_flush(t, 10);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.e[0].why, FLOW_END_SHUTDOWN);
	assert_int_equal(flow_table_count(t), 0);
	flow_table_free(t);
}

/* The least recently used flow goes first, closed flows before active. */
static void test_lru_eviction_order(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct flow_table_cfg cfg = { .max_flows = 4, .idle_timeout_ns = 1000,
				      .closed_timeout_ns = 100 };
	struct hook_log log = { 0 };
	struct flow_table *t = flow_table_new(&cfg, hook, &log, &c);
	bool cr;
	for (uint32_t i = 1; i <= 4; i++)
		get4(t, i, i, &cr);
	get4(t, 1, 5, &cr); /* touch 1: order is now 2 3 4 1 */
	assert_false(cr);
	get4(t, 5, 6, &cr); /* evicts 2 */
	assert_true(cr);
	assert_int_equal(log.n, 1);
	assert_int_equal(log.e[0].tag, 2);
	assert_int_equal(log.e[0].why, FLOW_END_EVICTED);
	assert_int_equal(log.e[0].now, 6);
	assert_null(find4(t, 2));
	/* find does not touch the order: 3 is still the oldest. */
	assert_non_null(find4(t, 3));
	/* Close 4 (newer than 3): it goes first, as FLOW_END_CLOSED. */
	flow_table_mark_closed(t, find4(t, 4));
	flow_table_mark_closed(t, find4(t, 4)); /* idempotent */
	assert_int_equal(c.v[ST_CTR_flow_closed], 1);
	get4(t, 6, 7, &cr);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.e[1].tag, 4);
	assert_int_equal(log.e[1].why, FLOW_END_CLOSED);
	/* No closed flows left: back to the active LRU (3, then 1). */
	get4(t, 7, 8, &cr);
	get4(t, 8, 9, &cr);
	assert_int_equal(log.e[2].tag, 3);
	assert_int_equal(log.e[3].tag, 1);
	assert_int_equal(log.e[3].why, FLOW_END_EVICTED);
	assert_int_equal(c.v[ST_CTR_flow_evicted], 4);
	assert_int_equal(c.v[ST_CTR_flow_active_max], 4);
	assert_int_equal(flow_table_count(t), 4);
	/* A reopened flow is active again (and at the tail). */
	struct flow *f7 = find4(t, 7);
	flow_table_mark_closed(t, f7);
	flow_table_reopen(t, f7);
	flow_table_reopen(t, f7); /* no-op on an active flow */
	assert_int_equal(f7->state, FLOW_ACTIVE);
	assert_int_equal(c.v[ST_CTR_flow_reused], 1);
	get4(t, 9, 10, &cr); /* LRU: 5 (ts 6) */
	assert_int_equal(log.e[4].tag, 5);
	flow_table_flush(t, 11);
	flow_table_free(t);
}

/* Idle timeout for active flows, linger for closed ones, oldest first,
 * bounded by the budget. */
static void test_expire(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct flow_table_cfg cfg = { .max_flows = 64, .idle_timeout_ns = 100,
				      .closed_timeout_ns = 10 };
	struct hook_log log = { 0 };
	struct flow_table *t = flow_table_new(&cfg, hook, &log, &c);
	bool cr;
	for (uint32_t i = 0; i < 10; i++)
		get4(t, i, i * 10, &cr); /* flow i last seen at 10*i */
	/* Close flow 5 (last seen 50). */
	flow_table_mark_closed(t, find4(t, 5));
	assert_int_equal(flow_table_expire(t, 59, 100), 0);
	assert_int_equal(flow_table_expire(t, 60, 100), 1);
	assert_int_equal(log.e[0].tag, 5);
	assert_int_equal(log.e[0].why, FLOW_END_CLOSED);
	assert_int_equal(c.v[ST_CTR_flow_timeout], 0);
	/* A late packet on flow 0 at 95 keeps it. */
	get4(t, 0, 95, &cr);
	assert_false(cr);
	/* At 130: flows 1, 2, 3 (10, 20, 30) are idle 100+; budget 2. */
	assert_int_equal(flow_table_expire(t, 130, 2), 2);
	assert_int_equal(flow_table_expire(t, 130, 5), 1);
	assert_int_equal(log.n, 4);
	assert_int_equal(log.e[1].tag, 1);
	assert_int_equal(log.e[2].tag, 2);
	assert_int_equal(log.e[3].tag, 3);
	assert_int_equal(log.e[3].why, FLOW_END_TIMEOUT);
	assert_int_equal(c.v[ST_CTR_flow_timeout], 3);
	/* A clock that went back expires nothing. */
	assert_int_equal(flow_table_expire(t, 5, 100), 0);
	/* Much later: everything, flow 0 last. */
	assert_int_equal(flow_table_expire(t, 10000, 100), 6);
	assert_int_equal(log.e[9].tag, 0);
	assert_int_equal(flow_table_count(t), 0);
	flow_table_free(t);
}

/* Random gets, closes, reopens, expiries and evictions: the end hook runs
 * exactly once for every flow created, and the table never exceeds its
 * capacity. */
static void test_end_hook_once(void **state)
{
	(void)state;
	struct st_counters c;
	memset(&c, 0, sizeof(c));
	struct flow_table_cfg cfg = { .max_flows = 50, .idle_timeout_ns = 40,
				      .closed_timeout_ns = 5 };
	enum { N = 400000 };
	uint32_t *calls = calloc(N + 1, sizeof(*calls));
	struct hook_log log = { .calls = calls };
	struct flow_table *t = flow_table_new(&cfg, hook, &log, &c);
	uint64_t x = 7;
	uint32_t next_tag = 1;
	for (uint64_t step = 4; step <= N; step++) {
		/* Several operations per clock tick, so the table both fills
		 * up (evictions) and idles out (timeouts). */
		uint64_t now = step / 4;
		/* Busy phases over 300 keys, quiet ones over 20. */
		uint32_t i = (uint32_t)(rnd(&x) % ((now / 1000) % 2 ? 300 : 20));
		unsigned op = (unsigned)(rnd(&x) % 10);
		if (op < 7) {
			struct flow_key k = key4(PB_IP4(10, 0, 0, 1),
						 (uint16_t)(1000 + i),
						 PB_IP4(10, 0, 0, 2), 443),
					ck;
			flow_key_canon(&k, &ck);
			bool cr;
			struct flow *f = flow_table_get(t, &ck, flow_key_hash(&ck),
							now, &cr);
			if (cr) {
				assert_true(next_tag <= N);
				f->app = (void *)(uintptr_t)next_tag++;
			}
		} else if (op < 9) {
			struct flow *f = find4(t, i);
			if (f)
				flow_table_mark_closed(t, f);
		} else {
			struct flow *f = find4(t, i);
			if (f && f->state == FLOW_CLOSED)
				flow_table_reopen(t, f);
		}
		if (step % 29 == 0)
			flow_table_expire(t, now, 8);
		assert_true(flow_table_count(t) <= 50);
	}
	flow_table_flush(t, N);
	assert_int_equal(flow_table_count(t), 0);
	assert_int_equal(c.v[ST_CTR_flow_created], next_tag - 1);
	assert_int_equal(log.n, next_tag - 1);
	for (uint32_t tag = 1; tag < next_tag; tag++)
		if (calls[tag] != 1)
			fail_msg("flow %u ended %u times", tag, calls[tag]);
	assert_int_equal(calls[0], 0);
	assert_true(c.v[ST_CTR_flow_evicted] > 0);
	assert_true(c.v[ST_CTR_flow_timeout] > 0);
	flow_table_free(t);
	free(calls);
}

static void test_new_limits(void **state)
{
	(void)state;
	struct st_counters c;
	struct flow_table_cfg cfg = { .max_flows = 0 };
	assert_null(flow_table_new(&cfg, NULL, NULL, &c));
	flow_table_free(NULL);
	/* One flow: every new key evicts the previous one; no hook is fine. */
	cfg.max_flows = 1;
	memset(&c, 0, sizeof(c));
	struct flow_table *t = flow_table_new(&cfg, NULL, NULL, &c);
	bool cr;
	for (uint32_t i = 0; i < 10; i++)
		get4(t, i, i, &cr);
	assert_int_equal(flow_table_count(t), 1);
	assert_int_equal(c.v[ST_CTR_flow_evicted], 9);
	assert_true(flow_table_mem(t) >= sizeof(struct flow));
	flow_table_flush(t, 100);
	flow_table_free(t);
}

/* ---- through the worker ---------------------------------------------- */

struct wrec {
	unsigned data_calls, ends, frees;
	uint64_t bytes[2];
	int end_how[2];
	uint8_t client_dir;
	uint8_t role_sure;
	char first[2][64];
};

static void w_data(void *u, struct flow *f, unsigned dir, uint64_t off,
		   const uint8_t *data, uint32_t len, uint64_t ts)
{
	(void)ts;
	struct wrec *r = u;
	r->data_calls++;
	if (off < sizeof(r->first[dir]) - 1) {
		uint32_t n = (uint32_t)ST_MIN(len, sizeof(r->first[dir]) - 1 - off);
		memcpy(r->first[dir] + off, data, n);
	}
	r->bytes[dir] += len;
	r->client_dir = f->client_dir;
	r->role_sure = f->role_sure;
}

static void w_gap(void *u, struct flow *f, unsigned dir, uint64_t off,
		  uint64_t len, uint64_t ts)
{
	(void)u, (void)f, (void)dir, (void)off, (void)len, (void)ts;
}

static void w_end(void *u, struct flow *f, unsigned dir, enum reasm_end how,
		  uint64_t ts)
{
	(void)f, (void)ts;
	struct wrec *r = u;
	r->ends++;
	r->end_how[dir] = (int)how;
}

static void w_free(void *u, struct flow *f)
{
	struct wrec *r = u;
	/* Both directions ended before the flow is released. */
	assert_true(reasm_flow_done(f));
	r->frees++;
}

static const struct reasm_ops w_ops = {
	.on_data = w_data,
	.on_gap = w_gap,
	.on_end = w_end,
	.on_flow_free = w_free,
};

static struct worker_cfg small_worker_cfg(uint32_t max_flows)
{
	struct worker_cfg cfg = {
		.decode = DECODE_CFG_DEFAULT,
		.flow = { .max_flows = max_flows,
			  .idle_timeout_ns = 300 * ST_NS_PER_SEC,
			  .closed_timeout_ns = 10 * ST_NS_PER_SEC },
		.reasm = { .flow_ooo_max = 65536, .worker_memcap = 1 << 20,
			   .chunk_size = 2048, .gap_timeout_ns = ST_NS_PER_SEC },
		.tick_ns = 100 * ST_NS_PER_MS,
	};
	return cfg;
}

static int tx(struct worker *w, const struct pb_ends *e, unsigned from,
		uint32_t seq, uint32_t ack, uint8_t flags, const char *data,
		uint64_t ts)
{
	struct pb b;
	uint32_t n = data ? (uint32_t)strlen(data) : 0;
	uint32_t len = pb_tcp_frame(&b, e, from, seq, ack, flags, data, n);
	return worker_raw(w, DECODE_LINK_ETHERNET, b.b, len, len, ts);
}

/* A connection closes (FIN both ways), lingers, absorbs a late ACK, and a
 * new SYN on the same tuple reopens it as a new connection. */
static void test_reopen_on_syn(void **state)
{
	(void)state;
	struct worker_cfg cfg = small_worker_cfg(16);
	struct wrec r;
	memset(&r, 0, sizeof(r));
	struct worker *w = worker_new(0, &cfg, &w_ops, &r);
	assert_non_null(w);
	const struct pb_ends e = { { PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1) },
				   { 40000, 80 }, 0 };
	uint64_t t = ST_NS_PER_SEC;
	tx(w, &e, 0, 100, 0, PB_TCP_SYN, NULL, t);
	tx(w, &e, 1, 900, 101, PB_TCP_SYN | PB_TCP_ACK, NULL, t + 1);
	tx(w, &e, 0, 101, 901, PB_TCP_ACK, "GET", t + 2);
	tx(w, &e, 1, 901, 104, PB_TCP_ACK, "200", t + 3);
	tx(w, &e, 0, 104, 904, PB_TCP_FIN | PB_TCP_ACK, NULL, t + 4);
	tx(w, &e, 1, 904, 105, PB_TCP_FIN | PB_TCP_ACK, NULL, t + 5);
	assert_int_equal(w->ctr.v[ST_CTR_flow_closed], 1);
	assert_int_equal(r.ends, 2);
	assert_int_equal(r.end_how[0], REASM_END_FIN);
	assert_int_equal(r.end_how[1], REASM_END_FIN);
	assert_int_equal(r.frees, 0); /* lingering */
	/* canonical dir 1 is the client 10.0.0.2:40000 */
	assert_string_equal(r.first[1], "GET");
	assert_string_equal(r.first[0], "200");
	/* canonical dir 0 is 10.0.0.1:80, the server: the client is dir 1 */
	assert_int_equal(r.client_dir, 1);
	assert_int_equal(r.role_sure, 1);
	/* Late ACK and a retransmitted FIN: absorbed, no new flow. */
	tx(w, &e, 0, 105, 905, PB_TCP_ACK, NULL, t + 6);
	tx(w, &e, 1, 904, 105, PB_TCP_FIN | PB_TCP_ACK, NULL, t + 7);
	assert_int_equal(w->ctr.v[ST_CTR_flow_created], 1);
	assert_int_equal(w->ctr.v[ST_CTR_reasm_after_fin], 0);
	assert_int_equal(r.ends, 2);
	/* New SYN, new ISN: the old flow is released, a new one starts. */
	memset(r.first, 0, sizeof(r.first));
	tx(w, &e, 0, 7000, 0, PB_TCP_SYN, NULL, t + 8);
	assert_int_equal(w->ctr.v[ST_CTR_flow_reused], 1);
	assert_int_equal(w->ctr.v[ST_CTR_flow_created], 1);
	assert_int_equal(r.frees, 1);
	tx(w, &e, 1, 3000, 7001, PB_TCP_SYN | PB_TCP_ACK, NULL, t + 9);
	tx(w, &e, 0, 7001, 3001, PB_TCP_ACK, "PUT", t + 10);
	assert_string_equal(r.first[1], "PUT"); /* at offset 0 again */
	assert_int_equal(flow_table_count(w->ft), 1);
	/* A SYN-ACK alone does not reopen a closed flow. */
	tx(w, &e, 0, 7004, 3001, PB_TCP_RST, NULL, t + 11);
	assert_int_equal(r.ends, 4);
	assert_int_equal(r.end_how[0], REASM_END_RST);
	assert_int_equal(w->ctr.v[ST_CTR_flow_closed], 2);
	tx(w, &e, 1, 5000, 1, PB_TCP_SYN | PB_TCP_ACK, NULL, t + 12);
	assert_int_equal(w->ctr.v[ST_CTR_flow_reused], 1);
	/* Linger ends by packet time: 10 s after the last packet. */
	worker_clock(w, t + 12 + 10 * ST_NS_PER_SEC);
	assert_int_equal(r.frees, 2);
	assert_int_equal(flow_table_count(w->ft), 0);
	worker_finish(w);
	assert_int_equal(r.frees, 2);
	worker_free(w);
}

/* Roles: the SYN sender is the client; SYN-ACK first means the other side
 * is; without a SYN the higher port is guessed to be the client. */
static void test_roles(void **state)
{
	(void)state;
	struct worker_cfg cfg = small_worker_cfg(16);
	struct wrec r;
	const struct pb_ends e = { { PB_IP4(10, 0, 0, 2), PB_IP4(10, 0, 0, 1) },
				   { 40000, 443 }, 0 };
	/* canonical: dir 0 = 10.0.0.1:443, dir 1 = 10.0.0.2:40000 */
	struct {
		unsigned from;
		uint8_t flags;
		uint8_t client, sure;
	} k[] = {
		{ 0, PB_TCP_SYN, 1, 1 },               /* client's SYN */
		{ 1, PB_TCP_SYN | PB_TCP_ACK, 1, 1 },  /* server's SYN-ACK */
		{ 0, PB_TCP_ACK, 1, 0 },               /* mid-stream, client */
		{ 1, PB_TCP_ACK, 1, 0 },               /* mid-stream, server */
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(k); i++) {
		memset(&r, 0, sizeof(r));
		struct worker *w = worker_new(0, &cfg, &w_ops, &r);
		tx(w, &e, k[i].from, 1000, 1, k[i].flags, NULL, 1);
		tx(w, &e, k[i].from, 1001, 1, PB_TCP_ACK, "x", 2);
		assert_int_equal(r.client_dir, k[i].client);
		assert_int_equal(r.role_sure, k[i].sure);
		worker_finish(w);
		worker_free(w);
	}
}

/* ---- a million flows through 65536 ----------------------------------- */

struct count_rec {
	uint64_t ends, frees;
};

static void c_data(void *u, struct flow *f, unsigned dir, uint64_t off,
		   const uint8_t *data, uint32_t len, uint64_t ts)
{
	(void)u, (void)f, (void)dir, (void)off, (void)data, (void)len, (void)ts;
}

static void c_end(void *u, struct flow *f, unsigned dir, enum reasm_end how,
		  uint64_t ts)
{
	(void)f, (void)dir, (void)ts;
	struct count_rec *r = u;
	if (how != REASM_END_EVICTED && how != REASM_END_SHUTDOWN)
		fail_msg("unexpected end %s", reasm_end_name(how));
	r->ends++;
}

static void c_free(void *u, struct flow *f)
{
	(void)f;
	((struct count_rec *)u)->frees++;
}

static const struct reasm_ops count_ops = {
	.on_data = c_data,
	.on_gap = w_gap,
	.on_end = c_end,
	.on_flow_free = c_free,
};

static void test_million_flows(void **state)
{
	(void)state;
	enum { NFLOWS = 1000000, CAP = 65536 };
	struct worker_cfg cfg = small_worker_cfg(CAP);
	struct count_rec r = { 0 };
	struct worker *w = worker_new(0, &cfg, &count_ops, &r);
	assert_non_null(w);
	uint64_t mem0 = flow_table_mem(w->ft);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct mallinfo2 m0 = mallinfo2();
	struct pb b;
	for (uint32_t i = 0; i < NFLOWS; i++) {
		/* Distinct tuples: client 10.x.y.z:port, server fixed. */
		struct pb_ends e = {
			{ PB_IP4(10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
			  PB_IP4(192, 0, 2, 1) },
			{ (uint16_t)(1024 + (i % 50000)), 443 }, 0 };
		/* A SYN, with one data byte on every 8th flow so some
		 * reassembly state is there to release too. */
		uint8_t fl = (i & 7) ? PB_TCP_SYN : PB_TCP_SYN | PB_TCP_PSH;
		uint32_t len = pb_tcp_frame(&b, &e, 0, i, 0, fl, "d", (i & 7) ? 0 : 1);
		int rc = worker_raw(w, DECODE_LINK_ETHERNET, b.b, len, len,
				    ST_NS_PER_SEC + (uint64_t)i * 1000);
		if (rc != DECODE_OK)
			fail_msg("flow %u: %s", i, decode_rc_name(rc));
		if ((i & 0xffff) == 0) {
			assert_true(flow_table_count(w->ft) <= CAP);
			assert_int_equal(flow_table_mem(w->ft), mem0);
		}
	}
	/* The packet path never allocated. */
	struct mallinfo2 m1 = mallinfo2();
	assert_int_equal(m1.uordblks, m0.uordblks);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("  %d flows in %.2f s\n", NFLOWS, secs);

	assert_int_equal(flow_table_count(w->ft), CAP);
	assert_int_equal(w->ctr.v[ST_CTR_flow_created], NFLOWS);
	assert_int_equal(w->ctr.v[ST_CTR_flow_evicted], NFLOWS - CAP);
	assert_int_equal(w->ctr.v[ST_CTR_flow_timeout], 0);
	assert_int_equal(w->ctr.v[ST_CTR_flow_active_max], CAP);
	assert_int_equal(w->ctr.v[ST_CTR_decode_tcp], NFLOWS);
	assert_int_equal(r.frees, NFLOWS - CAP);
	assert_int_equal(r.ends, 2ull * (NFLOWS - CAP));
	assert_int_equal(flow_table_mem(w->ft), mem0);
	worker_finish(w);
	assert_int_equal(flow_table_count(w->ft), 0);
	assert_int_equal(r.frees, NFLOWS);
	assert_int_equal(r.ends, 2ull * NFLOWS);
	assert_int_equal(reasm_ctx_mem_used(w->rc), 0);
	worker_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_canon_symmetric),
		cmocka_unit_test(test_both_directions_one_flow),
		cmocka_unit_test(test_lru_eviction_order),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_end_hook_once),
		cmocka_unit_test(test_new_limits),
		cmocka_unit_test(test_reopen_on_syn),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_million_flows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
