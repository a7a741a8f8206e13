/* Memory for secret material: keys derived from DEKs, their expanded forms
 * (AES key schedules, GHASH tables), and everything OpenSSL allocates.
 *
 * What is secret here. A DEK lives in the key cache's protected region
 * (keys_cache.c). The keys derived from it (HKDF -> GCM, SIV, HMAC keys),
 * the contexts built from those (struct seal_gcm with intel-ipsec-mb's key
 * schedule, OpenSSL's EVP_CIPHER_CTX / EVP_MAC_CTX internals, the SIV
 * contexts copied per value), HKDF's intermediate buffers, the ext_proc
 * server's TLS private key and session keys: all of these are made on a
 * heap, and a core dump or gcore writes the heap out. This allocator keeps
 * them out of it.
 *
 * Where the memory comes from. One region of address space is reserved at
 * start (MEM_SECRET_REGION bytes, PROT_NONE, nothing committed), marked
 * MADV_DONTDUMP (no core dump, no gcore) and MADV_WIPEONFORK (a fork child
 * sees zeros; MADV_DONTFORK where the kernel lacks it), and handed out front
 * to back, page-aligned, made readable and writable as it is used. Every
 * block of this allocator lies inside it, so "is this block ours" is two
 * compares (mem_secret_owns). Memory is not mlock()ed: only DEKs are; a
 * confidential VM runs without swap.
 *
 * Two backends over that region, chosen at build time (src/meson.build):
 *   jemalloc  normal builds: a jemalloc arena of its own whose extent hooks
 *             take pages from the region (jemalloc's metadata stays on its
 *             default, dumped, heap: it holds addresses, never contents).
 *             Each thread has its own free lists of wiped small blocks in
 *             front of it, and one explicit jemalloc tcache behind those,
 *             so workers share no lock and a small block costs ~10 ns to
 *             allocate, wipe and free (OpenSSL's SIV copy makes ~19 per
 *             value).
 *   heap      sanitizer and fuzz builds (-Dsanitize, -Dfuzz), where jemalloc
 *             would hide allocations from ASan: power-of-two classes on
 *             region chunks under one mutex, every block surrounded by ASan
 *             poison (header, tail) and poisoned while free, so overflows
 *             and uses after free in OpenSSL's contexts are still caught;
 *             the region is an LSan root. Slow, and correct.
 *
 * Wiping. A block is wiped (explicit_bzero) when it is freed, and when
 * realloc moves it: every byte its caller could have written. (The jemalloc
 * backend wipes the bytes asked for and keeps every other byte of its arena
 * zero; the heap backend wipes whole blocks.) So a freed OpenSSL context or
 * derived key never lingers, even in the not-dumped region.
 *
 * OpenSSL. mem_secret_init() routes all of OpenSSL's allocations here with
 * CRYPTO_set_mem_functions(), not only the contexts sealtap creates: HKDF
 * keeps the DEK and its PRK in buffers of its own, the TLS stack keeps the
 * server's private key, handshake secrets and session keys, and none of
 * those are reachable from sealtap's code. OpenSSL accepts the call only
 * before its first allocation, so it is made from a constructor of this
 * file (before main(), in every program linking the seal code: the sealtap
 * binary, unit tests, benchmarks, fuzzers); main() calls mem_secret_init()
 * again and refuses to run if the routing did not take.
 *
 * Threads: every function is thread-safe. A block may be freed by another
 * thread than the one that allocated it. A fork child must exec or _exit:
 * it sees zeros where the parent's secrets (OpenSSL's objects included)
 * were.
 *
 * Misuse (freeing a block twice, or a pointer into the middle of one) is
 * caught by a live marker in each block: logged once, counted
 * (mem_secret_bad_blocks), and the block is left alone; realloc of such a
 * pointer returns NULL.
 */
#ifndef SEALTAP_MEM_SECRET_H
#define SEALTAP_MEM_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Address space reserved for secret memory (a quarter, a sixteenth ...
 * down to 1 GiB when RLIMIT_AS refuses it). Nothing of it is committed
 * until used; exhausting it makes allocations fail (NULL). */
#define MEM_SECRET_REGION (64ull << 30)

/* Sets the allocator up and routes OpenSSL through it; the first call does
 * the work, later calls return its result. Thread-safe. Returns 0, -ENOMEM
 * (the region or the jemalloc arena could not be made: every allocation
 * fails), or -EBUSY (the allocator works but OpenSSL had already allocated
 * before it, so OpenSSL's memory is on the ordinary, dumped heap). */
int mem_secret_init(void);

/* "jemalloc" or "heap" (see above). */
const char *mem_secret_backend(void);

/* |n| bytes (contents unspecified), aligned to 16. NULL on failure. Free
 * with mem_secret_free(). */
void *mem_secret_alloc(size_t n);
/* |nmemb| * |size| zeroed bytes; NULL on failure or overflow. */
void *mem_secret_calloc(size_t nmemb, size_t size);
/* |n| bytes aligned to |align| (a power of two, at most 4096). */
void *mem_secret_aligned_alloc(size_t align, size_t n);
/* Resizes |p| keeping min(old, new) bytes; a moved block's old copy is
 * wiped. |p| NULL allocates; on failure NULL and |p| is untouched. |n| 0
 * frees |p| and returns NULL (as OpenSSL's CRYPTO_realloc). */
void *mem_secret_realloc(void *p, size_t n);
/* Wipes the whole block and frees it. Takes ownership of |p|. NULL is
 * fine. A pointer that is not this allocator's (handed to OpenSSL_free by
 * code that got it from malloc) is wiped and given to free(). */
void mem_secret_free(void *p);

/* True if |p| lies in the secret region. */
bool mem_secret_owns(const void *p);

/* Frees and reallocs refused because the block was not live. */
uint64_t mem_secret_bad_blocks(void);

#endif
