/* Memory that holds traffic: excluded from core dumps.
 *
 * Packets, reassembled stream bytes, decoded header fields before sealing
 * and kept body bytes are plaintext that must never leave the process, a
 * core dump included. Every large buffer that holds them comes from here:
 * anonymous mappings marked MADV_DONTDUMP (and MADV_DONTFORK), so neither
 * the kernel's core dump nor gdb's gcore (which honours the flag) writes
 * them out. Zeroed on allocation; munmap on free (the pages are gone). */
#ifndef SEALTAP_MEM_H
#define SEALTAP_MEM_H

#include <stddef.h>

/* |len| zeroed bytes, page-aligned, not dumped. NULL on failure. */
void *mem_nodump_alloc(size_t len);
/* Grows (or shrinks) a mapping from mem_nodump_alloc(), keeping its
 * contents and flags; may move. NULL on failure (|p| is unchanged). */
void *mem_nodump_resize(void *p, size_t old_len, size_t new_len);
/* Unmaps |p| (|len| as allocated). NULL is fine. */
void mem_nodump_free(void *p, size_t len);

#endif

/* A small heap on not-dumped memory, for a library that allocates as it
 * goes over traffic (nghttp2's HPACK inflater keeps decoded header values
 * in its dynamic table). Power-of-two size classes from 16 bytes to 64 KiB
 * carved from not-dumped chunks, larger blocks mapped alone. Freed blocks
 * are wiped. One heap per thread: not thread-safe. */
struct mem_heap;

struct mem_heap *mem_heap_new(void);
/* Unmaps everything. Every block must have been released. */
void mem_heap_free(struct mem_heap *h);
void *mem_heap_alloc(struct mem_heap *h, size_t n);
void *mem_heap_calloc(struct mem_heap *h, size_t nmemb, size_t size);
void *mem_heap_realloc(struct mem_heap *h, void *p, size_t n);
void mem_heap_release(struct mem_heap *h, void *p);

/* Excludes the calling thread's stack from core dumps. For threads that
 * handle traffic: parsers, detectors and the sealer keep short-lived
 * plaintext copies in locals (a card number's digits for the Luhn check,
 * a percent-decoded query value), and a stack is otherwise dumped. Called
 * first thing by the workers, the RX stage and the ext_proc event loops.
 * 0 or -errno. */
int mem_nodump_stack(void);

/* Clears the vector registers of the calling thread. Copying key bytes
 * (memcpy, AES key expansion) leaves them in SSE/AVX/AVX-512 registers,
 * and a core dump or gcore writes every thread's registers out. Called by
 * the threads that touch DEKs once they are done with them. */
void mem_scrub_registers(void);

/* Installs handlers for the signals whose default action dumps core
 * (SIGABRT, SIGSEGV, SIGBUS, SIGQUIT, ...). The first thread to take one
 * parks every other thread in a handler that clears its registers, clears
 * its own, then lets the default action run: the dump shows no thread's
 * registers as they were while handling traffic (those are saved in the
 * signal frame on the thread's stack, which mem_nodump_stack keeps out of
 * the dump). Not installed in sanitizer builds (their runtime owns these
 * signals). A dump taken from outside without a signal (gdb's gcore)
 * still shows each thread's registers where it was stopped. 0 or -errno. */
int mem_crash_guard_install(void);
