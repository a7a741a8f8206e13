/* Tests for src/mem_secret.c: secret memory, and OpenSSL routed to it.
 *
 * What is checked, each in a way that fails if the property is lost:
 *   - blocks of every size and alignment lie in one mapping whose VmFlags
 *     (/proc/self/smaps) say "dd" (MADV_DONTDUMP) and "wf" (wipe on fork);
 *   - a freed block, and the old place of a block realloc moved, read back
 *     as zeros (read through /proc/self/mem, so ASan's poison on freed
 *     blocks does not get in the way);
 *   - a fork child sees zeros where the parent keeps a secret;
 *   - OpenSSL's allocations (OPENSSL_malloc, cipher/MAC/digest contexts, an
 *     SSL_CTX, from the main thread and another thread) are in secret memory;
 *   - the keys sealtap derives from a DEK, and the DEK, appear nowhere a
 *     core dump would write: every readable mapping without "dd" is read
 *     and searched for 16-byte pieces of them, after contexts of every kind
 *     (GCM on both backends, SIV, HMAC) were made and used. A control copy
 *     planted on the ordinary heap first proves the search finds a piece;
 *   - threads allocating and freeing at once, freeing each other's blocks,
 *     never get overlapping or foreign blocks (patterns checked at free).
 * Run in both builds: gcc (jemalloc backend) and ASan (heap backend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "sealtap/mem.h"
#include "sealtap/mem_secret.h"
#include "sealtap/seal.h"
#include "smaps.h"

/* ---- helpers ---------------------------------------------------------------- */

/* |p| is secret memory: in the region, in a not-dumped mapping. */
static void assert_secret(const void *p)
{
	char flags[256];
	assert_non_null(p);
	assert_true(mem_secret_owns(p));
	assert_true(vmflags_of(p, flags, sizeof(flags)));
	if (!has_flag(flags, "dd"))
		fail_msg("%p: VmFlags%s has no dd", p, flags);
}

/* Reads |n| bytes at |addr| through /proc/self/mem: the kernel copies
 * them, so a freed (ASan-poisoned) block can be looked at. */
static void peek(const void *addr, void *out, size_t n)
{
	int fd = open("/proc/self/mem", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, out, n, (off_t)(uintptr_t)addr), (ssize_t)n);
	close(fd);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- the region -------------------------------------------------------------- */

static void test_init_and_flags(void **state)
{
	(void)state;
	/* The constructor ran before main: OpenSSL is routed (not -EBUSY). */
	assert_int_equal(mem_secret_init(), 0);
	print_message("backend: %s\n", mem_secret_backend());
	void *p = mem_secret_alloc(100);
	char flags[256];
	assert_secret(p);
	assert_true(vmflags_of(p, flags, sizeof(flags)));
	print_message("secret VmFlags:%s", flags);
#ifdef MADV_WIPEONFORK
	assert_true(has_flag(flags, "wf"));
#endif
	assert_false(mem_secret_owns(flags)); /* the stack is not */
	void *h = malloc(100);
	assert_false(mem_secret_owns(h)); /* nor the ordinary heap */
	free(h);
	mem_secret_free(p);
	mem_secret_free(NULL);
}

static void test_sizes_and_alignment(void **state)
{
	(void)state;
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 64, 100, 1000, 4096,
					5000, 65536, 70000, 1 << 20,
					(1 << 20) + 1, 3 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint8_t *p = mem_secret_alloc(n);
		assert_secret(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		memset(p, 0xa5, n);
		uint8_t *z = mem_secret_calloc(1, n);
		assert_secret(z);
		assert_true(all_zero(z, n));
		for (size_t al = 32; al <= 4096; al *= 2) {
			uint8_t *a = mem_secret_aligned_alloc(al, n);
			assert_secret(a);
			assert_int_equal((uintptr_t)a % al, 0);
			memset(a, 0x5a, n);
			mem_secret_free(a);
		}
		mem_secret_free(z);
		mem_secret_free(p);
	}
	/* struct seal_gcm's use: one cache line alignment, ~1 KiB+ */
	assert_null(mem_secret_aligned_alloc(3, 10));
	assert_null(mem_secret_aligned_alloc(8192, 10));
	assert_null(mem_secret_calloc(SIZE_MAX / 2, 4));
}

static void test_resize(void **state)
{
	(void)state;
	uint8_t *p = mem_secret_realloc(NULL, 40);
	assert_secret(p);
	for (int i = 0; i < 40; i++)
		p[i] = (uint8_t)i;
	p = mem_secret_realloc(p, 20); /* shrink keeps the bytes */
	for (int i = 0; i < 20; i++)
		assert_int_equal(p[i], i);
	uint8_t *q = mem_secret_realloc(p, 200000); /* grows, moves */
	assert_secret(q);
	for (int i = 0; i < 20; i++)
		assert_int_equal(q[i], i);
	assert_null(mem_secret_realloc(q, 0)); /* frees */

	/* A block from malloc comes in (OpenSSL told to own it): it moves
	 * into secret memory with its bytes. */
	uint8_t *m = malloc(32);
	memset(m, 7, 32);
	uint8_t *s = mem_secret_realloc(m, 64);
	assert_secret(s);
	for (int i = 0; i < 32; i++)
		assert_int_equal(s[i], 7);
	mem_secret_free(s);
	mem_secret_free(malloc(10)); /* a foreign free is handled too */
}

/* ---- wiping -------------------------------------------------------------------- */

static void test_wipe_on_free(void **state)
{
	(void)state;
	static const size_t sizes[] = { 16, 48, 256, 3000, 100000, 2 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint8_t *p = mem_secret_alloc(n);
		uint8_t *back = malloc(n);
		assert_non_null(back);
		memset(p, 0xc3, n);
		peek(p, back, n);
		assert_int_equal(back[0], 0xc3); /* peek sees live bytes */
		mem_secret_free(p);
		/* The region stays mapped (address space is never given
		 * back), so the old place can be read: all zeros. */
		peek(p, back, n);
		if (!all_zero(back, n))
			fail_msg("%zu-byte block not wiped on free", n);
		free(back);
	}
	/* realloc that moves: the old copy is wiped. */
	uint8_t *p = mem_secret_alloc(64), back[64];
	memset(p, 0x3c, 64);
	uint8_t *q = mem_secret_realloc(p, 1 << 20);
	assert_true(q != p);
	peek(p, back, sizeof(back));
	assert_true(all_zero(back, sizeof(back)));
	mem_secret_free(q);
}

static void test_fork_child_sees_zeros(void **state)
{
	(void)state;
#ifndef MADV_WIPEONFORK
	skip();
#else
	uint8_t *p = mem_secret_alloc(4096);
	memset(p, 0x99, 4096);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(all_zero(p, 4096) ? 0 : 1);
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(p[4095], 0x99); /* the parent keeps its bytes */
	mem_secret_free(p);
#endif
}

/* ---- OpenSSL ------------------------------------------------------------------- */

static void *openssl_allocs(void *arg)
{
	(void)arg;
	void *m = OPENSSL_malloc(24);
	assert_secret(m);
	OPENSSL_free(m);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	assert_secret(c);
	EVP_MD_CTX *d = EVP_MD_CTX_new();
	assert_secret(d);
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	assert_non_null(mac);
	EVP_MAC_CTX *mc = EVP_MAC_CTX_new(mac);
	assert_secret(mc);
	EVP_MAC_CTX_free(mc);
	EVP_MAC_free(mac);
	EVP_MD_CTX_free(d);
	EVP_CIPHER_CTX_free(c);
	return NULL;
}

static void test_openssl_routed(void **state)
{
	(void)state;
	assert_int_equal(mem_secret_init(), 0);
	openssl_allocs(NULL);
	/* TLS: the server's key and session keys hang off these. */
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_secret(ctx);
	SSL *ssl = SSL_new(ctx);
	assert_secret(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	/* Another thread (its own cache in the jemalloc backend). */
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, openssl_allocs, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

/* ---- no derived key where a core dump would look --------------------------------- */

#define PIECE DUMP_PIECE

static void test_no_key_in_dumpable_memory(void **state)
{
	(void)state;
	/* DEK and expected keys are made in secret memory, so the test's own
	 * copies are not where it searches. */
	enum { NPIECES = 2 + 2 + 4 + 2 };
	uint8_t *dek = mem_secret_alloc(SEAL_DEK_LEN);
	uint8_t *pieces = mem_secret_alloc(NPIECES * PIECE);
	uint8_t *buf = mem_secret_alloc(1 << 20);
	assert_int_equal(RAND_bytes(dek, SEAL_DEK_LEN), 1);
	memcpy(pieces, dek, SEAL_DEK_LEN);
	assert_int_equal(seal_key_derive(dek, SEAL_KDF_LABEL_GCM,
					 pieces + 2 * PIECE, SEAL_GCM_KEY_LEN), 0);
	assert_int_equal(seal_key_derive(dek, SEAL_KDF_LABEL_SIV,
					 pieces + 4 * PIECE, SEAL_SIV_KEY_LEN), 0);
	assert_int_equal(seal_key_derive(dek, SEAL_KDF_LABEL_HASH,
					 pieces + 8 * PIECE, SEAL_HASH_KEY_LEN), 0);

	/* Contexts of every kind, used once, as a worker holds them. */
	struct seal_gcm *g[2] = { NULL, NULL };
	enum seal_backend bk[2] = { SEAL_BACKEND_OPENSSL, SEAL_BACKEND_IPSEC_MB };
	uint8_t in[40] = "4111111111111111", out[128], back[40];
	for (int i = 0; i < 2; i++) {
		if (!seal_backend_available(bk[i]))
			continue;
		struct seal_gcm_cfg cfg = { .fixed = 0x100u + (uint32_t)i,
					    .backend = bk[i] };
		assert_int_equal(seal_gcm_new(dek, "tenant", "k1", &cfg, &g[i]), 0);
		assert_secret(g[i]);
		assert_int_equal((uintptr_t)g[i] % 64, 0);
		int n = seal_gcm_seal(g[i], "f", 1, "r", 1, in, sizeof(in), out,
				      sizeof(out));
		assert_int_equal(n, (int)sizeof(in) + SEAL_GCM_OVERHEAD);
		assert_int_equal(seal_gcm_open(g[i], "f", 1, "r", 1, out,
					       (size_t)n, back, sizeof(back)),
				 (int)sizeof(in));
	}
	struct seal_siv *s;
	struct seal_hash *h;
	assert_int_equal(seal_siv_new(dek, "tenant", "k1", &s), 0);
	assert_int_equal(seal_hash_new(dek, "tenant", "k1", &h), 0);
	assert_secret(s);
	assert_secret(h);
	for (size_t len = 0; len < 3; len++) { /* len 0: the CMAC path */
		int n = seal_siv_seal(s, "f", 1, in, len * 16, out, sizeof(out));
		assert_true(n > 0);
		assert_int_equal(seal_siv_open(s, "f", 1, out, (size_t)n, back,
					       sizeof(back)),
				 (int)(len * 16));
	}
	assert_int_equal(seal_hash_compute(h, "f", 1, in, sizeof(in), out),
			 SEAL_HASH_LEN);

	/* Control: a piece planted on the ordinary heap is found, so a clean
	 * search below means something. */
	uint8_t *plant = malloc(64);
	memcpy(plant + 8, pieces + 2 * PIECE, PIECE);
	print_message("control (one GCM key piece planted on the heap):\n");
	int control = scan_dumpable(pieces + 2 * PIECE, 1, buf, 1 << 20);
	explicit_bzero(plant, 64);
	free(plant);
	assert_true(control >= 1);

	print_message("with live contexts:\n");
	int hits = scan_dumpable(pieces, NPIECES, buf, 1 << 20);
	for (int i = 0; i < 2; i++)
		seal_gcm_free(g[i]);
	seal_siv_free(s);
	seal_hash_free(h);
	print_message("after the contexts were freed:\n");
	hits += scan_dumpable(pieces, NPIECES, buf, 1 << 20);
	mem_secret_free(buf);
	mem_secret_free(pieces);
	mem_secret_free(dek);
	assert_int_equal(hits, 0);
}

/* ---- threads ------------------------------------------------------------------- */

#define T_THREADS 4
#define T_ITERS 20000
#define T_SLOTS 64

/* A block tagged with its size and a pattern derived from its address, so
 * an overlap with another live block or a foreign block shows at free. */
struct tblk {
	uint8_t *p;
	size_t n;
};

static pthread_mutex_t mbox_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tblk mbox[T_SLOTS]; /* blocks handed to another thread */
static int bad_blocks;

static uint8_t pat(const uint8_t *p, size_t i)
{
	return (uint8_t)(((uintptr_t)p >> 4) + i * 131);
}

static void tfill(struct tblk *b)
{
	for (size_t i = 0; i < b->n; i++)
		b->p[i] = pat(b->p, i);
}

static void tcheck_free(struct tblk *b)
{
	if (!b->p)
		return;
	bool ok = mem_secret_owns(b->p);
	for (size_t i = 0; ok && i < b->n; i++)
		ok = b->p[i] == pat(b->p, i);
	if (!ok)
		__atomic_fetch_add(&bad_blocks, 1, __ATOMIC_RELAXED);
	mem_secret_free(b->p);
	b->p = NULL;
}

static void *tworker(void *arg)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (uintptr_t)arg + 1;
	struct tblk own[T_SLOTS] = { { NULL, 0 } };
	for (int it = 0; it < T_ITERS; it++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		struct tblk *b = &own[x % T_SLOTS];
		tcheck_free(b);
		unsigned kind = (unsigned)(x >> 32) % 16;
		b->n = kind == 0 ? 70000 : 1 + (x >> 40) % 1500;
		b->p = kind == 1 ? mem_secret_aligned_alloc(64, b->n)
				 : mem_secret_alloc(b->n);
		if (!b->p) {
			__atomic_fetch_add(&bad_blocks, 1, __ATOMIC_RELAXED);
			continue;
		}
		tfill(b);
		if (kind == 2) { /* swap with the mailbox: cross-thread free */
			pthread_mutex_lock(&mbox_mu);
			struct tblk t = mbox[(x >> 20) % T_SLOTS];
			mbox[(x >> 20) % T_SLOTS] = *b;
			pthread_mutex_unlock(&mbox_mu);
			*b = t;
		}
	}
	for (int i = 0; i < T_SLOTS; i++)
		tcheck_free(&own[i]);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[T_THREADS];
	for (uintptr_t i = 0; i < T_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, tworker,
						(void *)(i + 1)), 0);
	for (int i = 0; i < T_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < T_SLOTS; i++)
		tcheck_free(&mbox[i]);
	assert_int_equal(bad_blocks, 0);
}

/* mem_nodump_stack(): the calling thread's stack leaves core dumps (a
 * thread that parses traffic keeps plaintext in locals), for a created
 * thread and for the main thread. */
static void *stack_thread(void *arg)
{
	char local[64], flags[256];
	memset(local, 1, sizeof(local));
	assert_true(vmflags_of(local, flags, sizeof(flags)));
	*(bool *)arg = has_flag(flags, "dd"); /* before: must be false */
	assert_int_equal(mem_nodump_stack(), 0);
	assert_true(vmflags_of(local, flags, sizeof(flags)));
	assert_true(has_flag(flags, "dd"));
	return NULL;
}

static void test_nodump_stack(void **state)
{
	(void)state;
	pthread_t t;
	bool before = true;
	assert_int_equal(pthread_create(&t, NULL, stack_thread, &before), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_false(before);
	char local[64], flags[256];
	memset(local, 2, sizeof(local));
	assert_int_equal(mem_nodump_stack(), 0);
	assert_true(vmflags_of(local, flags, sizeof(flags)));
	assert_true(has_flag(flags, "dd"));
}

/* A block freed twice, or a pointer into a block's middle, is refused and
 * counted, never a crash; realloc of it returns NULL. */
static void test_bad_free(void **state)
{
	(void)state;
	uint64_t before = mem_secret_bad_blocks();
	uint8_t *p = mem_secret_alloc(100);
	assert_non_null(p);
	mem_secret_free(p);
	mem_secret_free(p);
	assert_int_equal(mem_secret_bad_blocks(), before + 1);
	uint8_t *q = mem_secret_alloc(200);
	assert_non_null(q);
	assert_null(mem_secret_realloc(q + 64, 400));
	assert_int_equal(mem_secret_bad_blocks(), before + 2);
	mem_secret_free(q);
	assert_int_equal(mem_secret_bad_blocks(), before + 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_and_flags),
		cmocka_unit_test(test_sizes_and_alignment),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_wipe_on_free),
		cmocka_unit_test(test_fork_child_sees_zeros),
		cmocka_unit_test(test_openssl_routed),
		cmocka_unit_test(test_no_key_in_dumpable_memory),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_nodump_stack),
		cmocka_unit_test(test_bad_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
