/* Per-worker flow table: chained hash over a preallocated flow pool, with an
 * LRU list for active flows and one for closed (lingering) flows. See
 * flow.h for the lifetime rules. Single-threaded by design. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <rte_hash_crc.h>

#include "sealtap/flow.h"

struct flow_list {
	struct flow *head, *tail; /* head = least recently used */
};

struct flow_table {
	struct flow_table_cfg cfg;
	flow_end_fn end;
	void *user;
	struct st_counters *c;
	struct flow **buckets;
	uint32_t mask;
	uint32_t count;
	struct flow *pool;       /* max_flows objects */
	struct flow *free;       /* linked through ->hnext */
	struct flow_list active, closed;
};

uint32_t flow_key_hash(const struct flow_key *k)
{
	/* CRC32-C over the 40-byte key: the SSE4.2 instruction when the CPU
	 * has it (DPDK picks at start-up), table-driven otherwise. */
	return rte_hash_crc(k, sizeof(*k), 0x5ea17a9u);
}

char *flow_key_endpoint_str(const struct flow_key *k, unsigned i, char *buf,
			    size_t len)
{
	char a[INET6_ADDRSTRLEN];
	if (k->family == FLOW_FAMILY_IPV4) {
		inet_ntop(AF_INET, k->addr[i], a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, k->port[i]);
	} else {
		inet_ntop(AF_INET6, k->addr[i], a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, k->port[i]);
	}
	return buf;
}

static void list_unlink(struct flow_list *l, struct flow *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		l->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		l->tail = f->prev;
	f->prev = f->next = NULL;
}

static void list_append(struct flow_list *l, struct flow *f)
{
	f->next = NULL;
	f->prev = l->tail;
	if (l->tail)
		l->tail->next = f;
	else
		l->head = f;
	l->tail = f;
}

static inline struct flow_list *list_of(struct flow_table *t, struct flow *f)
{
	return f->state == FLOW_CLOSED ? &t->closed : &t->active;
}

struct flow_table *flow_table_new(const struct flow_table_cfg *cfg,
				  flow_end_fn end, void *user,
				  struct st_counters *c)
{
	if (cfg->max_flows == 0)
		return NULL;
	struct flow_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cfg = *cfg;
	t->end = end;
	t->user = user;
	t->c = c;
	/* Buckets: a power of two >= max_flows, so chains average <= 1. */
	uint32_t nb = 1;
	while (nb < cfg->max_flows && nb < (1u << 31))
		nb <<= 1;
	t->mask = nb - 1;
	t->buckets = calloc(nb, sizeof(*t->buckets));
	t->pool = aligned_alloc(ST_CACHE_LINE,
				(size_t)cfg->max_flows * sizeof(struct flow));
	if (!t->buckets || !t->pool) {
		flow_table_free(t);
		return NULL;
	}
	memset(t->pool, 0, (size_t)cfg->max_flows * sizeof(struct flow));
	for (uint32_t i = cfg->max_flows; i-- > 0;) {
		t->pool[i].hnext = t->free;
		t->free = &t->pool[i];
	}
	return t;
}

void flow_table_free(struct flow_table *t)
{
	if (!t)
		return;
	free(t->buckets);
	free(t->pool);
	free(t);
}

uint32_t flow_table_count(const struct flow_table *t)
{
	return t->count;
}

uint32_t flow_table_capacity(const struct flow_table *t)
{
	return t->cfg.max_flows;
}

uint64_t flow_table_mem(const struct flow_table *t)
{
	return (uint64_t)t->cfg.max_flows * sizeof(struct flow) +
	       (uint64_t)(t->mask + 1) * sizeof(struct flow *) + sizeof(*t);
}

struct flow *flow_table_find(struct flow_table *t, const struct flow_key *k,
			     uint32_t h)
{
	for (struct flow *f = t->buckets[h & t->mask]; f; f = f->hnext)
		if (f->hash == h && flow_key_eq(&f->key, k))
			return f;
	return NULL;
}

static void hash_unlink(struct flow_table *t, struct flow *f)
{
	struct flow **pp = &t->buckets[f->hash & t->mask];
	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
}

/* Ends |f| through the owner's hook, then returns it to the pool. */
static void remove_flow(struct flow_table *t, struct flow *f,
			enum flow_end why, uint64_t now)
{
	if (t->end)
		t->end(t->user, f, why, now);
	list_unlink(list_of(t, f), f);
	hash_unlink(t, f);
	t->count--;
	f->hnext = t->free;
	t->free = f;
}

static struct flow *evict_one(struct flow_table *t, uint64_t now)
{
	struct flow *victim = t->closed.head ? t->closed.head : t->active.head;
	remove_flow(t, victim, victim->state == FLOW_CLOSED ? FLOW_END_CLOSED
							    : FLOW_END_EVICTED,
		    now);
	ST_CTR_INC(t->c, flow_evicted);
	return victim;
}

static void flow_init(struct flow *f, const struct flow_key *k, uint32_t h,
		      uint64_t now)
{
	memset(f, 0, sizeof(*f));
	f->key = *k;
	f->hash = h;
	f->state = FLOW_ACTIVE;
	f->client_dir = FLOW_ROLE_UNKNOWN;
	f->first_ts = f->last_ts = now;
	f->dir[0].idx = 0;
	f->dir[1].idx = 1;
}

struct flow *flow_table_get(struct flow_table *t, const struct flow_key *k,
			    uint32_t h, uint64_t now, bool *created)
{
	struct flow *f = flow_table_find(t, k, h);
	if (f) {
		*created = false;
		struct flow_list *l = list_of(t, f);
		if (l->tail != f) {
			list_unlink(l, f);
			list_append(l, f);
		}
		if (now > f->last_ts)
			f->last_ts = now;
		return f;
	}
	if (!t->free)
		evict_one(t, now);
	f = t->free;
	t->free = f->hnext;
	flow_init(f, k, h, now);
	uint32_t b = h & t->mask;
	f->hnext = t->buckets[b];
	t->buckets[b] = f;
	list_append(&t->active, f);
	t->count++;
	ST_CTR_INC(t->c, flow_created);
	ST_CTR_MAXG(t->c, flow_active_max, t->count);
	*created = true;
	return f;
}

void flow_table_mark_closed(struct flow_table *t, struct flow *f)
{
	if (f->state == FLOW_CLOSED)
		return;
	list_unlink(&t->active, f);
	f->state = FLOW_CLOSED;
	list_append(&t->closed, f);
	ST_CTR_INC(t->c, flow_closed);
}

void flow_table_reopen(struct flow_table *t, struct flow *f)
{
	if (f->state != FLOW_CLOSED)
		return;
	list_unlink(&t->closed, f);
	f->state = FLOW_ACTIVE;
	list_append(&t->active, f);
	ST_CTR_INC(t->c, flow_reused);
}

/* Removes the head of |l| if it has been idle for |timeout| at |now|. */
static bool expire_head(struct flow_table *t, struct flow_list *l,
			uint64_t timeout, enum flow_end why, uint64_t now)
{
	struct flow *f = l->head;
	if (!f || now < f->last_ts || now - f->last_ts < timeout)
		return false;
	remove_flow(t, f, why, now);
	return true;
}

unsigned flow_table_expire(struct flow_table *t, uint64_t now,
			   unsigned budget)
{
	unsigned n = 0;
	while (n < budget && expire_head(t, &t->closed,
					 t->cfg.closed_timeout_ns,
					 FLOW_END_CLOSED, now))
		n++;
	while (n < budget && expire_head(t, &t->active, t->cfg.idle_timeout_ns,
					 FLOW_END_TIMEOUT, now)) {
		ST_CTR_INC(t->c, flow_timeout);
		n++;
	}
	return n;
}

void flow_table_flush(struct flow_table *t, uint64_t now)
{
	while (t->closed.head)
		remove_flow(t, t->closed.head, FLOW_END_CLOSED, now);
	while (t->active.head)
		remove_flow(t, t->active.head, FLOW_END_SHUTDOWN, now);
}
