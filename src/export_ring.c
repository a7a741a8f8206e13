/* SPSC byte ring for records. See export.h.
 *
 * Layout: each record is a 4-byte length followed by its bytes, padded to
 * 4 bytes. A record never wraps: if it does not fit before the end of the
 * buffer, a length of EXPORT_WRAP marks the rest of the buffer unused and
 * the record starts at offset 0. head and tail count bytes forever (64-bit,
 * they never overflow in practice), so full/empty need no extra flag. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/export.h"

#define EXPORT_WRAP 0xffffffffu

int export_ring_init(struct export_ring *r, uint64_t size)
{
	uint64_t s = 4096;
	while (s < size)
		s <<= 1;
	r->buf = malloc(s);
	if (!r->buf)
		return -ENOMEM;
	r->size = s;
	r->mask = s - 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	return 0;
}

void export_ring_fini(struct export_ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

int export_ring_push(struct export_ring *r, const void *rec, uint32_t len)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint64_t need = 4 + (((uint64_t)len + 3) & ~3ull);
	uint64_t off = head & r->mask;
	uint64_t to_end = r->size - off;
	uint64_t total = need <= to_end ? need : to_end + need;
	if (need > r->size / 2 || r->size - (head - tail) < total)
		return -1;
	if (need > to_end) {
		uint32_t w = EXPORT_WRAP;
		memcpy(r->buf + off, &w, 4 <= to_end ? 4 : 0);
		head += to_end;
		off = 0;
	}
	memcpy(r->buf + off, &len, 4);
	memcpy(r->buf + off + 4, rec, len);
	atomic_store_explicit(&r->head, head + need, memory_order_release);
	return 0;
}

unsigned export_ring_drain_until(struct export_ring *r,
				 bool (*fn)(void *u, const void *rec,
					    uint32_t len),
				 void *u)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	unsigned n = 0;
	while (tail != head) {
		uint64_t off = tail & r->mask;
		uint64_t to_end = r->size - off;
		uint32_t len;
		if (to_end < 4) { /* too little room even for a marker */
			tail += to_end;
			continue;
		}
		memcpy(&len, r->buf + off, 4);
		if (len == EXPORT_WRAP) {
			tail += to_end;
			continue;
		}
		if (!fn(u, r->buf + off + 4, len))
			break; /* left in the ring */
		tail += 4 + (((uint64_t)len + 3) & ~3ull);
		n++;
	}
	atomic_store_explicit(&r->tail, tail, memory_order_release);
	return n;
}

/* export_ring_drain()'s callback, for export_ring_drain_until() */
struct drain_all {
	void (*fn)(void *u, const void *rec, uint32_t len);
	void *u;
};

static bool take_all(void *u, const void *rec, uint32_t len)
{
	struct drain_all *d = u;
	d->fn(d->u, rec, len);
	return true;
}

unsigned export_ring_drain(struct export_ring *r,
			   void (*fn)(void *u, const void *rec, uint32_t len),
			   void *u)
{
	struct drain_all d = { fn, u };
	return export_ring_drain_until(r, take_all, &d);
}
