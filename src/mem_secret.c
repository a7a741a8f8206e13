/* Secret memory: a not-dumped, wipe-on-free allocator, and OpenSSL routed
 * through it. See mem_secret.h for what goes here and why.
 *
 * Layout of this file: the region (shared), then one of two backends
 * (SEALTAP_SECRET_JEMALLOC: a jemalloc arena; otherwise a locked heap for
 * sanitizer builds), then the OpenSSL glue and the constructor. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sealtap/common.h"
#include "sealtap/log.h"
#include "sealtap/mem_secret.h"

/* ---- the region ---------------------------------------------------------- */

static uintptr_t region_lo, region_hi; /* [lo, hi): written once, by init */
static uintptr_t region_next;          /* first unused byte; atomic */
static size_t page_size;

static inline bool owns(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return a >= region_lo && a < region_hi;
}

bool mem_secret_owns(const void *p)
{
	return owns(p);
}

/* Reserves the region: address space only (PROT_NONE, MAP_NORESERVE), so
 * its size costs nothing until pages are used. The flags are set once on
 * the whole reservation; the pieces made writable later are parts of the
 * same mapping and keep them. */
static int region_reserve(void)
{
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	/* Less when the address space is limited (RLIMIT_AS), down to
	 * 1 GiB: the region only has to hold what is in use. */
	size_t len = MEM_SECRET_REGION;
	void *p;
	while ((p = mmap(NULL, len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			 0)) == MAP_FAILED) {
		if (len <= (1ull << 30))
			return -errno;
		len /= 4;
	}
	/* Not dumped: the whole point. A kernel that refuses gets no secret
	 * memory at all (fail closed), as the key cache does. */
	if (madvise(p, len, MADV_DONTDUMP)) {
		int e = -errno;
		munmap(p, len);
		return e;
	}
	/* A fork child sees zeros where the secrets were, and allocators
	 * (jemalloc's atfork handlers, this heap) still find their own
	 * metadata, which is not in here. Older kernels: not mapped in the
	 * child at all. */
#ifdef MADV_WIPEONFORK
	if (madvise(p, len, MADV_WIPEONFORK))
#endif
		(void)madvise(p, len, MADV_DONTFORK);
	region_lo = (uintptr_t)p;
	region_hi = region_lo + len;
	region_next = region_lo;
	return 0;
}

/* Takes |size| bytes (a multiple of the page size) aligned to |align|,
 * or exactly at |want| when given (NULL if that is not the next free
 * byte). The range is made readable and writable; fresh pages read zero.
 * Thread-safe (a CAS on the bump pointer). Address space is never given
 * back: jemalloc retains and reuses what it took, and the heap keeps free
 * lists. */
static void *region_take(void *want, size_t size, size_t align)
{
	if (align < page_size)
		align = page_size;
	uintptr_t cur = __atomic_load_n(&region_next, __ATOMIC_RELAXED);
	uintptr_t start, end;
	do {
		start = want ? (uintptr_t)want : (cur + align - 1) & ~(align - 1);
		if (want && start != cur)
			return NULL;
		end = start + size;
		if (end < start || end > region_hi || start < cur)
			return NULL;
	} while (!__atomic_compare_exchange_n(&region_next, &cur, end, false,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	if (mprotect((void *)start, size, PROT_READ | PROT_WRITE))
		return NULL; /* the range is lost; nothing else can be done */
	return (void *)start;
}

/* A block that is not ours, handed to our free (someone gave malloc'd
 * memory to OpenSSL to own): wiped too, then back where it came from. */
static void foreign_free(void *p)
{
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* Misuse (a block freed twice, a pointer into a block's middle): counted,
 * reported once, and the block left alone. Library code does not end the
 * process; leaving one block unfreed is the safe outcome. */
static uint64_t bad_blocks;

static void bad_block(const void *p)
{
	if (__atomic_fetch_add(&bad_blocks, 1, __ATOMIC_RELAXED) == 0) {
		char a[32];
		snprintf(a, sizeof(a), "%p", p);
		log_kv(LOG_LEVEL_ERROR, "mem_secret: free or realloc of a "
		       "block that is not live (double free or bad pointer); "
		       "left alone", "pointer", a, NULL);
	}
}

uint64_t mem_secret_bad_blocks(void)
{
	return __atomic_load_n(&bad_blocks, __ATOMIC_RELAXED);
}

#if defined(SEALTAP_SECRET_JEMALLOC)
/* ---- backend: jemalloc arena --------------------------------------------- */

#include <jemalloc/jemalloc.h>

#if JEMALLOC_VERSION_MAJOR < 5 ||                                              \
	(JEMALLOC_VERSION_MAJOR == 5 && JEMALLOC_VERSION_MINOR < 3)
#error "the secret arena needs jemalloc >= 5.3 (experimental.arenas_create_ext)"
#endif

/* Extent hooks: jemalloc asks for pages, we give region pages. Only alloc
 * does real work; the rest say what jemalloc may do with them.
 *
 * dalloc opts out (returns true), so jemalloc retains extents and reuses
 * them rather than unmapping; purge_forced drops the physical pages
 * (MADV_DONTNEED: they read zero afterwards, and the flags stay); split
 * and merge are always allowed (every extent is a piece of one mapping
 * with one set of flags). No decommit and no lazy purge: jemalloc then
 * neither calls commit nor relies on MADV_FREE. */
static void *ext_alloc(extent_hooks_t *h, void *new_addr, size_t size,
		       size_t align, bool *zero, bool *commit, unsigned ind)
{
	(void)h;
	(void)ind;
	void *p = region_take(new_addr, size, align);
	if (!p)
		return NULL;
	*zero = true;   /* never handed out before: fresh zero pages */
	*commit = true;
	return p;
}

static bool ext_dalloc(extent_hooks_t *h, void *addr, size_t size,
		       bool committed, unsigned ind)
{
	(void)h, (void)addr, (void)size, (void)committed, (void)ind;
	return true; /* keep it: jemalloc retains the extent */
}

static void ext_destroy(extent_hooks_t *h, void *addr, size_t size,
			bool committed, unsigned ind)
{
	(void)h, (void)committed, (void)ind;
	/* The arena is never destroyed; if it were, the pages go. */
	(void)madvise(addr, size, MADV_DONTNEED);
	(void)mprotect(addr, size, PROT_NONE);
}

static bool ext_purge_forced(extent_hooks_t *h, void *addr, size_t size,
			     size_t offset, size_t length, unsigned ind)
{
	(void)h, (void)size, (void)ind;
	return madvise((char *)addr + offset, length, MADV_DONTNEED) != 0;
}

static bool ext_split(extent_hooks_t *h, void *addr, size_t size,
		      size_t size_a, size_t size_b, bool committed,
		      unsigned ind)
{
	(void)h, (void)addr, (void)size, (void)size_a, (void)size_b;
	(void)committed, (void)ind;
	return false;
}

static bool ext_merge(extent_hooks_t *h, void *addr_a, size_t size_a,
		      void *addr_b, size_t size_b, bool committed,
		      unsigned ind)
{
	(void)h, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b;
	(void)committed, (void)ind;
	return false;
}

static extent_hooks_t secret_hooks = {
	.alloc = ext_alloc,
	.dalloc = ext_dalloc,
	.destroy = ext_destroy,
	.commit = NULL,
	.decommit = NULL,
	.purge_lazy = NULL,
	.purge_forced = ext_purge_forced,
	.split = ext_split,
	.merge = ext_merge,
};

/* jemalloc 5.3's arena_config_t, the argument of
 * experimental.arenas_create_ext (the mallctl checks its size).
 * metadata_use_hooks false: the arena's own bookkeeping (extent records,
 * bins, mutexes) stays on jemalloc's default pages. It holds no block
 * contents, and jemalloc's fork handlers must find it intact in a child,
 * which wipe-on-fork region pages would not give them. */
struct je_arena_config {
	extent_hooks_t *extent_hooks;
	bool metadata_use_hooks;
};

static unsigned arena_ind;
static int arena_flags; /* MALLOCX_ARENA(arena_ind) */

static int backend_init(void)
{
	struct je_arena_config cfg = { &secret_hooks, false };
	size_t sz = sizeof(arena_ind);
	int rc = mallctl("experimental.arenas_create_ext", &arena_ind, &sz,
			 &cfg, sizeof(cfg));
	if (rc)
		return -rc;
	arena_flags = MALLOCX_ARENA(arena_ind);
	return 0;
}

/* Every block starts with this header; the caller gets what follows
 * (16-byte aligned, like malloc). It spares free() a size lookup in
 * jemalloc (sallocx) and says how much to wipe: the bytes the caller asked
 * for. Nothing beyond them can hold a secret, because every byte of the
 * arena that is not a live caller's is zero: fresh pages are, and every
 * free wipes what its caller could have written. |magic| sits last, next
 * to the caller's bytes, and is cleared when the block is freed: a double
 * free, or a pointer into the middle of a block, is caught. The header
 * holds no secret. */
struct jhdr {
	union {
		struct jhdr *link; /* free list, while listed */
		size_t size;       /* bytes the caller may have written */
	};
	uint16_t cls;      /* size class, or J_DIRECT */
	uint16_t off;      /* caller's pointer - start of the jemalloc block */
	uint32_t magic;
};

#define J_DIRECT 0xffff
#define J_LIVE 0x5ec2e7a1u

/* Per-thread state, in two layers.
 *
 * 1. A free list per size class of wiped blocks (up to 4 KiB, SC_CAP
 *    blocks per class), in front of jemalloc: the SIV path copies an
 *    OpenSSL context per value (about 19 allocations and frees per value)
 *    and HMAC restarts copy digest contexts, so allocation is on the hot
 *    path of tokenize and hash. mallocx/dallocx with explicit flags take
 *    jemalloc's general path (~15 ns a pair here); a pop or a push on
 *    these lists is a few loads and stores. A freed block is wiped before
 *    it is listed, so a listed block's caller bytes are all zeros.
 * 2. An explicit jemalloc tcache for what the lists do not serve. The
 *    thread's automatic tcache cannot be used: its bins hold blocks of
 *    every arena, so a MALLOCX_ARENA request could be served a block of
 *    the ordinary (dumped) heap. An explicit tcache only ever sees blocks
 *    of this arena. One per thread (jemalloc requires that).
 * Both go away when the thread exits (thread_exit, a pthread key
 * destructor): listed blocks back to the arena, the tcache destroyed.
 * A block freed by another thread than its allocator's joins the freeing
 * thread's list: all blocks are of the one arena.
 *
 * Classes (header included): 16, 32, then 48, 64, 96, 128, ... 3072,
 * 4096, steps of 1.5 and 2, all jemalloc size classes, so jemalloc gives
 * exactly the class size and there is nothing beyond it to wipe. */
#define SC_N 16
#define SC_MAX 4096
#define SC_CAP 32

struct tstate {
	struct jhdr *head[SC_N];
	uint16_t n[SC_N];
	unsigned tc;  /* 0: not set up; 1: no tcache; k + 2: tcache k */
	bool dead;    /* thread_exit ran, or no key: no lists any more */
};

static __thread struct tstate tls __attribute__((tls_model("initial-exec")));
static pthread_key_t tc_key;

/* Smallest class holding |n| (1 <= n <= SC_MAX). */
static inline unsigned sc_index(size_t n)
{
	if (n <= 32)
		return n <= 16 ? 0 : 1;
	unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)n - 1);
	size_t p = (size_t)1 << lg; /* p < n <= 2p, p >= 32 */
	return 2 * (lg - 5) + (n <= p + p / 2 ? 2 : 3);
}

static inline size_t sc_size(unsigned c)
{
	if (c < 2)
		return c ? 32 : 16;
	size_t p = (size_t)1 << ((c - 2) / 2 + 5);
	return (c & 1) ? 2 * p : p + p / 2;
}

static void thread_exit(void *v)
{
	(void)v;
	struct tstate *t = &tls;
	int f = t->tc >= 2 ? MALLOCX_TCACHE(t->tc - 2) : MALLOCX_TCACHE_NONE;
	for (unsigned c = 0; c < SC_N; c++) {
		while (t->head[c]) {
			struct jhdr *h = t->head[c];
			t->head[c] = h->link;
			memset(h, 0, sizeof(*h));
			dallocx(h, f);
		}
		t->n[c] = 0;
	}
	if (t->tc >= 2) {
		unsigned ind = t->tc - 2;
		(void)mallctl("tcache.destroy", NULL, NULL, &ind, sizeof(ind));
	}
	t->tc = 1;
	t->dead = true;
}

/* First use in a thread: its tcache, and the key whose destructor
 * cleans up at exit. A thread whose key cannot be set gets no lists (they
 * would never be flushed). */
static void tstate_setup(struct tstate *t)
{
	unsigned ind;
	size_t sz = sizeof(ind);
	t->tc = 1;
	if (pthread_setspecific(tc_key, (void *)1) != 0) {
		t->dead = true;
		return;
	}
	if (mallctl("tcache.create", &ind, &sz, NULL, 0) == 0)
		t->tc = ind + 2;
}

static inline int tc_flags(struct tstate *t)
{
	if (ST_UNLIKELY(t->tc == 0))
		tstate_setup(t);
	return t->tc >= 2 ? MALLOCX_TCACHE(t->tc - 2) : MALLOCX_TCACHE_NONE;
}

static void *backend_alloc(size_t n, size_t align, bool zero)
{
	struct tstate *t = &tls;
	struct jhdr *h;
	if (n > SIZE_MAX / 2)
		return NULL;
	if (align <= 16 && n <= SC_MAX - sizeof(*h)) {
		unsigned c = sc_index(n + sizeof(*h));
		h = t->head[c];
		if (h) {
			/* Caller bytes are zeros: wiped when it was freed. */
			t->head[c] = h->link;
			t->n[c]--;
		} else {
			h = mallocx(sc_size(c), arena_flags | tc_flags(t) |
						       (zero ? MALLOCX_ZERO : 0));
			if (!h)
				return NULL;
		}
		h->size = n;
		h->cls = (uint16_t)c;
		h->off = sizeof(*h);
		h->magic = J_LIVE;
		return h + 1;
	}
	size_t off = align > sizeof(*h) ? align : sizeof(*h);
	int f = arena_flags | tc_flags(t);
	if (align > 16)
		f |= MALLOCX_ALIGN(align);
	if (zero)
		f |= MALLOCX_ZERO;
	uint8_t *base = mallocx(off + n, f);
	if (!base)
		return NULL;
	h = (struct jhdr *)(base + off) - 1;
	h->size = n;
	h->cls = J_DIRECT;
	h->off = (uint16_t)off;
	h->magic = J_LIVE;
	return base + off;
}

/* The header of live block |p|, or NULL (counted) if |p| is not one. */
static struct jhdr *hdr_of(void *p)
{
	struct jhdr *h = (struct jhdr *)p - 1;
	if (ST_UNLIKELY(h->magic != J_LIVE)) {
		bad_block(p);
		return NULL;
	}
	return h;
}

/* Bytes the caller may use at |p|. */
static size_t backend_usable(void *p)
{
	struct jhdr *h = hdr_of(p);
	if (h->cls != J_DIRECT)
		return sc_size(h->cls) - sizeof(*h);
	return sallocx((uint8_t *)p - h->off, 0) - h->off;
}

static void backend_free(void *p)
{
	struct jhdr *h = hdr_of(p);
	if (!h)
		return;
	struct tstate *t = &tls;
	unsigned c = h->cls;
	if (ST_LIKELY(c != J_DIRECT)) {
		explicit_bzero(p, h->size);
		h->magic = 0;
		if (ST_UNLIKELY(t->tc == 0))
			tstate_setup(t);
		if (ST_LIKELY(t->n[c] < SC_CAP && !t->dead)) {
			h->link = t->head[c];
			t->head[c] = h;
			t->n[c]++;
			return;
		}
		memset(h, 0, sizeof(*h));
		dallocx(h, tc_flags(t));
		return;
	}
	uint8_t *base = (uint8_t *)p - h->off;
	explicit_bzero(base, h->off + h->size);
	dallocx(base, tc_flags(t));
}

static void *backend_realloc(void *p, size_t n)
{
	struct jhdr *h = hdr_of(p);
	if (!h)
		return NULL;
	if (n <= h->size)
		return p; /* shrinking: |size| stays, so free wipes it all */
	if (n <= backend_usable(p)) {
		h->size = n;
		return p;
	}
	void *q = backend_alloc(n, 16, false);
	if (!q)
		return NULL;
	memcpy(q, p, h->size);
	backend_free(p);
	return q;
}

static const char backend_name[] = "jemalloc";

#else
/* ---- backend: locked heap (sanitizer and fuzz builds) --------------------- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECRET_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SECRET_ASAN 1
#endif

#ifdef SECRET_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define NO_ASAN __attribute__((no_sanitize_address))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define NO_ASAN
#endif

/* Classes 2^5 .. 2^20 bytes, header included, carved from 4 MiB chunks;
 * larger blocks take their own page run, kept on a list when freed. */
#define H_MIN_SHIFT 5
#define H_MAX_SHIFT 20
#define H_CLASSES (H_MAX_SHIFT - H_MIN_SHIFT + 1)
#define H_CHUNK (4u << 20)
#define H_BIG 0xffff
#define H_LIVE 0x5ec2e71bu

/* Right before every user pointer. |magic| sits last, next to the user's
 * bytes, so a free-list link (at the block's start) or the wipe on free
 * overwrites it: a double free or a pointer into the middle of a block is
 * caught. */
struct shdr {
	size_t size;   /* bytes asked for */
	uint16_t cls;  /* class index, or H_BIG */
	uint16_t off;  /* user pointer - block start */
	uint32_t magic;
};

struct big {
	struct big *next;
	size_t len;
};

static pthread_mutex_t h_mu = PTHREAD_MUTEX_INITIALIZER;
static void *h_free[H_CLASSES];
static uint8_t *h_cur;
static size_t h_left;
static struct big *h_bigs;

static int backend_init(void)
{
#ifdef SECRET_ASAN
	/* Blocks here point at ordinary heap blocks (OpenSSL objects hold
	 * application pointers); LSan must see those references. */
	__lsan_register_root_region((void *)region_lo, region_hi - region_lo);
#endif
	return 0;
}

NO_ASAN static size_t block_len(const struct shdr *h)
{
	if (h->cls != H_BIG)
		return (size_t)1 << (h->cls + H_MIN_SHIFT);
	return (h->off + h->size + page_size - 1) & ~(page_size - 1);
}

NO_ASAN static void *big_take(size_t len)
{
	for (struct big **pp = &h_bigs; *pp; pp = &(*pp)->next) {
		struct big *b = *pp;
		if (b->len == len) {
			*pp = b->next;
			b->next = NULL;
			b->len = 0;
			return b;
		}
	}
	void *p = region_take(NULL, len, page_size);
	if (p)
		POISON(p, len);
	return p;
}

NO_ASAN static void *block_get(size_t need, uint16_t *cls)
{
	if (need > ((size_t)1 << H_MAX_SHIFT)) {
		*cls = H_BIG;
		return big_take((need + page_size - 1) & ~(page_size - 1));
	}
	unsigned c = 0;
	while (((size_t)1 << (c + H_MIN_SHIFT)) < need)
		c++;
	*cls = (uint16_t)c;
	void *b = h_free[c];
	if (b) {
		h_free[c] = *(void **)b;
		*(void **)b = NULL;
		return b;
	}
	/* A block is aligned to its size (up to a page), so an aligned
	 * request, which asks for at least |align| + its size, gets a block
	 * whose start is aligned enough. Skipped bytes are never handed out. */
	size_t bytes = (size_t)1 << (c + H_MIN_SHIFT);
	size_t al = bytes < page_size ? bytes : page_size;
	size_t skip = (size_t)(-(uintptr_t)h_cur & (al - 1));
	if (!h_cur || h_left < skip + bytes) {
		/* The rest of the old chunk is abandoned: small, and never
		 * handed out, so it holds nothing. */
		h_cur = region_take(NULL, H_CHUNK, page_size);
		if (!h_cur) {
			h_left = 0;
			return NULL;
		}
		POISON(h_cur, H_CHUNK);
		h_left = H_CHUNK;
		skip = 0;
	}
	b = h_cur + skip;
	h_cur += skip + bytes;
	h_left -= skip + bytes;
	return b;
}

NO_ASAN static void *backend_alloc(size_t n, size_t align, bool zero)
{
	if (align < 16)
		align = 16;
	if (n > SIZE_MAX / 2)
		return NULL;
	size_t off = (sizeof(struct shdr) + align - 1) & ~(align - 1);
	uint16_t cls;
	pthread_mutex_lock(&h_mu);
	uint8_t *b = block_get(off + (n ? n : 1), &cls);
	pthread_mutex_unlock(&h_mu);
	if (!b)
		return NULL;
	struct shdr *h = (struct shdr *)(b + off) - 1;
	h->size = n;
	h->cls = cls;
	h->off = (uint16_t)off;
	h->magic = H_LIVE;
	/* Only the bytes asked for are addressable: the header before them
	 * and the rest of the class after them are red zones. */
	UNPOISON(b + off, n);
	if (zero)
		memset(b + off, 0, n);
	return b + off;
}

/* The header of live block |p|, or NULL (counted) if |p| is not one. */
NO_ASAN static struct shdr *hdr_of(void *p)
{
	struct shdr *h = (struct shdr *)p - 1;
	if (h->magic != H_LIVE) {
		bad_block(p);
		return NULL;
	}
	return h;
}

NO_ASAN static void backend_free(void *p)
{
	struct shdr *h = hdr_of(p);
	if (!h)
		return;
	uint8_t *b = (uint8_t *)p - h->off;
	size_t len = block_len(h);
	uint16_t cls = h->cls;
	UNPOISON(b, len);
	explicit_bzero(b, len);
	pthread_mutex_lock(&h_mu);
	if (cls == H_BIG) {
		(void)madvise(b, len, MADV_DONTNEED);
		struct big *g = (struct big *)b;
		g->len = len;
		g->next = h_bigs;
		h_bigs = g;
		POISON(b + sizeof(*g), len - sizeof(*g));
	} else {
		*(void **)b = h_free[cls];
		h_free[cls] = b;
		POISON(b, len);
	}
	pthread_mutex_unlock(&h_mu);
}

/* The header is a red zone: read it without ASan's check. */
NO_ASAN static size_t live_size(const struct shdr *h)
{
	return h->size;
}

static void *backend_realloc(void *p, size_t n)
{
	struct shdr *h = hdr_of(p);
	if (!h)
		return NULL;
	size_t have = live_size(h);
	void *q = backend_alloc(n, 16, false);
	if (!q)
		return NULL;
	memcpy(q, p, have < n ? have : n);
	backend_free(p);
	return q;
}

static const char backend_name[] = "heap";

#endif

/* ---- the API --------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -ENOMEM;
static int usable; /* the region and backend are ready */

static void *ossl_malloc(size_t n, const char *file, int line);
static void *ossl_realloc(void *p, size_t n, const char *file, int line);
static void ossl_free(void *p, const char *file, int line);

static void init_once_fn(void)
{
	int rc = region_reserve();
#if defined(SEALTAP_SECRET_JEMALLOC)
	if (rc == 0 && pthread_key_create(&tc_key, thread_exit))
		rc = -EAGAIN;
#endif
	if (rc == 0)
		rc = backend_init();
	if (rc < 0) {
		init_rc = rc;
		return;
	}
	__atomic_store_n(&usable, 1, __ATOMIC_RELEASE);
	/* Refused once OpenSSL has allocated anything: then its memory stays
	 * on the ordinary heap, and main() refuses to run. */
	init_rc = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)
			  ? 0
			  : -EBUSY;
}

int mem_secret_init(void)
{
	pthread_once(&init_once, init_once_fn);
	return init_rc;
}

const char *mem_secret_backend(void)
{
	return backend_name;
}

static inline bool ready(void)
{
	if (ST_LIKELY(__atomic_load_n(&usable, __ATOMIC_ACQUIRE)))
		return true;
	mem_secret_init();
	return __atomic_load_n(&usable, __ATOMIC_ACQUIRE);
}

void *mem_secret_alloc(size_t n)
{
	return ready() ? backend_alloc(n, 16, false) : NULL;
}

void *mem_secret_calloc(size_t nmemb, size_t size)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	return ready() ? backend_alloc(nmemb * size, 16, true) : NULL;
}

void *mem_secret_aligned_alloc(size_t align, size_t n)
{
	if (align == 0 || (align & (align - 1)) || align > 4096)
		return NULL;
	return ready() ? backend_alloc(n, align, false) : NULL;
}

void mem_secret_free(void *p)
{
	if (!p)
		return;
	if (ST_LIKELY(owns(p)))
		backend_free(p);
	else
		foreign_free(p);
}

void *mem_secret_realloc(void *p, size_t n)
{
	if (!p)
		return mem_secret_alloc(n);
	if (n == 0) {
		mem_secret_free(p);
		return NULL;
	}
	if (ST_LIKELY(owns(p)))
		return backend_realloc(p, n);
	/* Someone else's block grows into ours. */
	size_t have = malloc_usable_size(p);
	void *q = mem_secret_alloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, have < n ? have : n);
	foreign_free(p);
	return q;
}

/* ---- OpenSSL ----------------------------------------------------------------- */

/* OpenSSL's own CRYPTO_malloc returns NULL for 0 bytes; these keep that.
 * They are installed only once the backend is up, so they go to it
 * straight (a few nanoseconds count: ~19 allocations per SIV value). */
static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return n ? backend_alloc(n, 16, false) : NULL;
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file, (void)line;
	if (!p && n == 0)
		return NULL;
	return mem_secret_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	if (ST_LIKELY(owns(p)))
		backend_free(p);
	else if (p)
		foreign_free(p);
}

/* Before main(), and before any other constructor of the program (101 is
 * the first priority applications may use): OpenSSL must not have
 * allocated yet. Shared libraries' constructors run earlier still; none
 * of the ones sealtap links allocates through OpenSSL, and if one ever
 * does, mem_secret_init() returns -EBUSY and main() says so. */
__attribute__((constructor(101))) static void mem_secret_ctor(void)
{
	(void)mem_secret_init();
}
