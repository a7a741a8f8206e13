/* Fixed-size block pool and byte chains. See bpool.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/bpool.h"
#include "sealtap/mem.h"

struct bpool {
	uint8_t *arena;
	struct bblock *free;
	uint32_t block_size;
	uint32_t payload;
	uint64_t nblocks, nfree;
};

struct bpool *bpool_new(uint32_t block_size, uint64_t memcap)
{
	block_size = (block_size + 7u) & ~7u;
	if (block_size < sizeof(struct bblock) + 64)
		return NULL;
	struct bpool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->block_size = block_size;
	p->payload = block_size - (uint32_t)sizeof(struct bblock);
	p->nblocks = memcap / block_size;
	if (p->nblocks) {
		/* Header fields and body bytes before sealing: not dumped. */
		p->arena = mem_nodump_alloc(p->nblocks * block_size);
		if (!p->arena) {
			free(p);
			return NULL;
		}
	}
	for (uint64_t i = p->nblocks; i-- > 0;) {
		struct bblock *b = (struct bblock *)(p->arena + i * block_size);
		b->next = p->free;
		p->free = b;
	}
	p->nfree = p->nblocks;
	return p;
}

void bpool_free(struct bpool *p)
{
	if (!p)
		return;
	mem_nodump_free(p->arena, p->nblocks * p->block_size);
	free(p);
}

uint32_t bpool_block_payload(const struct bpool *p)
{
	return p->payload;
}

uint64_t bpool_used_bytes(const struct bpool *p)
{
	return (p->nblocks - p->nfree) * p->block_size;
}

uint64_t bpool_capacity_bytes(const struct bpool *p)
{
	return p->nblocks * p->block_size;
}

static struct bblock *block_get(struct bpool *p)
{
	struct bblock *b = p->free;
	if (!b)
		return NULL;
	p->free = b->next;
	p->nfree--;
	b->next = NULL;
	b->used = 0;
	return b;
}

void *bpool_get(struct bpool *p)
{
	struct bblock *b = block_get(p);
	return b ? b->data : NULL;
}

void bpool_put(struct bpool *p, void *obj)
{
	struct bblock *b =
		(struct bblock *)((uint8_t *)obj - offsetof(struct bblock, data));
	b->next = p->free;
	p->free = b;
	p->nfree++;
}

bool bchain_append(struct bpool *p, struct bchain *c, const void *data,
		   uint32_t len)
{
	const uint8_t *s = data;
	bool complete = true;
	if (c->cap && len > c->cap - c->len) {
		len = c->cap - c->len;
		complete = false;
	}
	while (len) {
		struct bblock *t = c->tail;
		if (!t || t->used == p->payload) {
			struct bblock *nb = block_get(p);
			if (!nb)
				return false;
			if (t)
				t->next = nb;
			else
				c->head = nb;
			c->tail = t = nb;
		}
		uint32_t n = p->payload - t->used;
		if (n > len)
			n = len;
		memcpy(t->data + t->used, s, n);
		t->used += n;
		c->len += n;
		s += n;
		len -= n;
	}
	return complete;
}

bool bchain_puts(struct bpool *p, struct bchain *c, const char *s)
{
	return bchain_append(p, c, s, (uint32_t)strlen(s));
}

uint32_t bchain_copy(const struct bchain *c, uint32_t off, void *out,
		     uint32_t len)
{
	uint8_t *o = out;
	uint32_t done = 0;
	for (const struct bblock *b = c->head; b && done < len; b = b->next) {
		if (off >= b->used) {
			off -= b->used;
			continue;
		}
		uint32_t n = b->used - off;
		if (n > len - done)
			n = len - done;
		memcpy(o + done, b->data + off, n);
		done += n;
		off = 0;
	}
	return done;
}

void bchain_truncate(struct bpool *p, struct bchain *c, uint32_t len)
{
	if (len >= c->len)
		return;
	if (len == 0) {
		bchain_reset(p, c);
		return;
	}
	uint32_t seen = 0;
	struct bblock *b = c->head;
	while (seen + b->used < len) {
		seen += b->used;
		b = b->next;
	}
	b->used = len - seen;
	struct bblock *rest = b->next;
	b->next = NULL;
	c->tail = b;
	c->len = len;
	while (rest) {
		struct bblock *n = rest->next;
		rest->next = p->free;
		p->free = rest;
		p->nfree++;
		rest = n;
	}
}

void bchain_reset(struct bpool *p, struct bchain *c)
{
	struct bblock *b = c->head;
	while (b) {
		struct bblock *n = b->next;
		b->next = p->free;
		p->free = b;
		p->nfree++;
		b = n;
	}
	c->head = c->tail = NULL;
	c->len = 0;
}

bool bchain_move(struct bpool *p, struct bchain *dst, struct bchain *src)
{
	if (!src->head)
		return true;
	if (dst->cap && src->len > dst->cap - dst->len) {
		/* Copy what fits, release the rest. */
		bool ok = true;
		for (struct bblock *b = src->head; b && ok; b = b->next)
			ok = bchain_append(p, dst, b->data, b->used);
		bchain_reset(p, src);
		return false;
	}
	/* Link the blocks; the last block of |dst| may stay part-filled,
	 * which readers handle (they follow |used|). */
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->len += src->len;
	src->head = src->tail = NULL;
	src->len = 0;
	return true;
}
