/* Not-dumped anonymous mappings. See mem.h. */
#include <sys/mman.h>

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
