/* Fixed-size block pool and byte chains built on it.
 *
 * The HTTP/2 layer keeps header blocks, record fragments and inspected body
 * bytes per stream. Workers must not allocate from the general heap on the
 * packet path, and every buffer needs a cap, so these come from a per-worker
 * pool of equal blocks allocated once: the pool's size is the worker's
 * memory cap for that purpose. Single-threaded: one pool per worker.
 *
 * A chain is a list of blocks holding a byte string that only grows at the
 * end and is read from the start. Appends stop (and say so) when the pool
 * is empty or the chain's own cap is reached: the caller counts that and
 * marks what it was building as incomplete.
 */
#ifndef SEALTAP_BPOOL_H
#define SEALTAP_BPOOL_H

#include <stdbool.h>
#include <stdint.h>

struct bpool;

struct bblock {
	struct bblock *next;
	uint32_t used;
	uint32_t pad;
	uint8_t data[];
};

struct bchain {
	struct bblock *head, *tail;
	uint32_t len; /* bytes in the chain */
	uint32_t cap; /* most bytes it may hold (0 = pool limit only) */
};

/* Creates a pool of blocks of |block_size| bytes (header included), as many
 * as fit in |memcap|. NULL on allocation failure. Free with bpool_free(). */
struct bpool *bpool_new(uint32_t block_size, uint64_t memcap);
void bpool_free(struct bpool *p);
/* Takes one block (its payload is bpool_block_payload() bytes), or NULL
 * when the pool is empty. Used directly for fixed-size objects. */
void *bpool_get(struct bpool *p);
/* Returns a block from bpool_get(). */
void bpool_put(struct bpool *p, void *obj);
/* Bytes of payload per block. */
uint32_t bpool_block_payload(const struct bpool *p);
uint64_t bpool_used_bytes(const struct bpool *p);
uint64_t bpool_capacity_bytes(const struct bpool *p);

static inline void bchain_init(struct bchain *c, uint32_t cap)
{
	c->head = c->tail = 0;
	c->len = 0;
	c->cap = cap;
}

/* Appends |len| bytes. Returns true if all fit; false if the pool or the
 * chain's cap stopped it (then a prefix may have been appended). */
bool bchain_append(struct bpool *p, struct bchain *c, const void *data,
		   uint32_t len);
/* Appends a NUL-terminated string. */
bool bchain_puts(struct bpool *p, struct bchain *c, const char *s);
/* Copies the chain's bytes [off, off + len) to |out|; returns bytes
 * copied (fewer if the chain is shorter). */
uint32_t bchain_copy(const struct bchain *c, uint32_t off, void *out,
		     uint32_t len);
/* Cuts the chain back to its first |len| bytes, returning blocks no longer
 * needed. Used to undo a partial append so the chain never holds half of a
 * JSON value. */
void bchain_truncate(struct bpool *p, struct bchain *c, uint32_t len);
/* Returns every block to the pool and empties the chain (cap kept). */
void bchain_reset(struct bpool *p, struct bchain *c);
/* Moves the contents of |src| to the end of |dst| without copying when
 * possible; |src| is left empty. Returns false if |dst|'s cap is hit
 * (then |src| is released and only what fit is kept). */
bool bchain_move(struct bpool *p, struct bchain *dst, struct bchain *src);

#endif
