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
