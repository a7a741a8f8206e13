/* Not-dumped anonymous mappings. See mem.h. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sealtap/mem.h"

void *mem_nodump_alloc(size_t len)
{
	if (len == 0)
		len = 1;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* If the kernel refuses the hint there is nothing better to do than
	 * to go on: the data path must still run. */
	(void)madvise(p, len, MADV_DONTDUMP);
	(void)madvise(p, len, MADV_DONTFORK);
	return p;
}

void *mem_nodump_resize(void *p, size_t old_len, size_t new_len)
{
	if (!p)
		return mem_nodump_alloc(new_len);
	void *q = mremap(p, old_len ? old_len : 1, new_len ? new_len : 1,
			 MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		return NULL;
	(void)madvise(q, new_len, MADV_DONTDUMP);
	return q;
}

void mem_nodump_free(void *p, size_t len)
{
	if (p)
		munmap(p, len ? len : 1);
}

/* ---- heap ---- */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEAP_MIN_SHIFT 4   /* 16 bytes */
#define HEAP_MAX_SHIFT 16  /* 64 KiB */
#define HEAP_CLASSES (HEAP_MAX_SHIFT - HEAP_MIN_SHIFT + 1)
#define HEAP_CHUNK (1u << 20)
#define HEAP_BIG 0xff

/* Each block starts with this header; the caller gets what follows. */
struct blk {
	union {
		struct blk *next; /* free list */
		struct {
			uint32_t cls;  /* size class, or HEAP_BIG */
			uint32_t pad;
		} h;
	};
	size_t size; /* usable bytes */
};

struct chunk {
	struct chunk *next;
	size_t len;
};

struct mem_heap {
	struct blk *free[HEAP_CLASSES];
	struct chunk *chunks;
	uint8_t *cur; /* carving point in the newest chunk */
	size_t left;
};

struct mem_heap *mem_heap_new(void)
{
	return calloc(1, sizeof(struct mem_heap));
}

void mem_heap_free(struct mem_heap *h)
{
	if (!h)
		return;
	struct chunk *c = h->chunks;
	while (c) {
		struct chunk *n = c->next;
		mem_nodump_free(c, c->len);
		c = n;
	}
	free(h);
}

static unsigned class_of(size_t n)
{
	unsigned s = HEAP_MIN_SHIFT;
	while (((size_t)1 << s) < n)
		s++;
	return s - HEAP_MIN_SHIFT;
}

static void *carve(struct mem_heap *h, size_t bytes)
{
	if (h->left < bytes) {
		struct chunk *c = mem_nodump_alloc(HEAP_CHUNK);
		if (!c)
			return NULL;
		c->len = HEAP_CHUNK;
		c->next = h->chunks;
		h->chunks = c;
		h->cur = (uint8_t *)c + 64;
		h->left = HEAP_CHUNK - 64;
	}
	void *p = h->cur;
	h->cur += bytes;
	h->left -= bytes;
	return p;
}

void *mem_heap_alloc(struct mem_heap *h, size_t n)
{
	if (n > ((size_t)1 << HEAP_MAX_SHIFT)) {
		size_t len = sizeof(struct blk) + n;
		struct blk *b = mem_nodump_alloc(len);
		if (!b)
			return NULL;
		b->h.cls = HEAP_BIG;
		b->size = n;
		return b + 1;
	}
	unsigned c = class_of(n ? n : 1);
	struct blk *b = h->free[c];
	if (b) {
		h->free[c] = b->next;
	} else {
		b = carve(h, sizeof(struct blk) +
				     ((size_t)1 << (c + HEAP_MIN_SHIFT)));
		if (!b)
			return NULL;
	}
	b->h.cls = c;
	b->h.pad = 0;
	b->size = (size_t)1 << (c + HEAP_MIN_SHIFT);
	return b + 1;
}

void *mem_heap_calloc(struct mem_heap *h, size_t nmemb, size_t size)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	void *p = mem_heap_alloc(h, nmemb * size);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

void mem_heap_release(struct mem_heap *h, void *p)
{
	if (!p)
		return;
	struct blk *b = (struct blk *)p - 1;
	/* Wipe: freed blocks must not keep traffic around either. */
	explicit_bzero(p, b->size);
	if (b->h.cls == HEAP_BIG) {
		mem_nodump_free(b, sizeof(*b) + b->size);
		return;
	}
	unsigned c = b->h.cls;
	b->next = h->free[c];
	h->free[c] = b;
}

void *mem_heap_realloc(struct mem_heap *h, void *p, size_t n)
{
	if (!p)
		return mem_heap_alloc(h, n);
	struct blk *b = (struct blk *)p - 1;
	if (n <= b->size)
		return p;
	void *q = mem_heap_alloc(h, n);
	if (!q)
		return NULL;
	memcpy(q, p, b->size);
	mem_heap_release(h, p);
	return q;
}

int mem_nodump_stack(void)
{
	pthread_attr_t a;
	void *addr;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &a) != 0)
		return -EINVAL;
	int rc = pthread_attr_getstack(&a, &addr, &size);
	pthread_attr_destroy(&a);
	if (rc != 0)
		return -rc;
	/* The main thread's stack is reported at its rlimit size, beyond
	 * what is mapped yet: madvise marks the mapped part (the [stack]
	 * area keeps the flag as it grows) and says ENOMEM for the rest. */
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)addr + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)addr + size) & ~(page - 1);
	if (hi <= lo)
		return -EINVAL;
	if (madvise((void *)lo, hi - lo, MADV_DONTDUMP) != 0 && errno != ENOMEM)
		return -errno;
	return 0;
}

void mem_scrub_registers(void)
{
#if defined(__x86_64__)
	/* ymm16-31 / zmm16-31 exist only with AVX-512, and vzeroall leaves
	 * them. The 256-bit form where AVX512VL allows (an EVEX write clears
	 * the upper bits too): a 512-bit instruction can lower the core's
	 * clock for a while, and this runs after every burst. The assembler
	 * takes these whatever -march says. */
#define CLR(r, n) "vpxord %%" r n ", %%" r n ", %%" r n "\n\t"
#define CLR16(r)                                                         \
	CLR(r, "16") CLR(r, "17") CLR(r, "18") CLR(r, "19") CLR(r, "20")  \
	CLR(r, "21") CLR(r, "22") CLR(r, "23") CLR(r, "24") CLR(r, "25")  \
	CLR(r, "26") CLR(r, "27") CLR(r, "28") CLR(r, "29") CLR(r, "30")  \
	CLR(r, "31")
	if (__builtin_cpu_supports("avx512vl"))
		__asm__ volatile(CLR16("ymm") ::: "memory");
	else if (__builtin_cpu_supports("avx512f"))
		__asm__ volatile(CLR16("zmm") ::: "memory");
#undef CLR16
#undef CLR
	if (__builtin_cpu_supports("avx")) {
		__asm__ volatile("vzeroall" ::: "memory");
	} else {
		__asm__ volatile(
			"pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\t"
			"pxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
			"pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
			"pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
			"pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\t"
			"pxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
			"pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\t"
			"pxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15\n\t" :::
				"memory");
	}
#endif
}
