/* HPACK decoding for a passive observer: nghttp2's inflater, plus a
 * dynamic table primed with placeholder entries for connections joined
 * mid-stream or after a lost header block.
 *
 * Placeholders are entries named "?" with an empty value. "?" is not a
 * valid field-name character (RFC 9110 §5.1), so no real header has that
 * name. A reference to a placeholder therefore decodes to name "?" and is
 * reported with H2_HPACK_NAME_UNKNOWN (and H2_HPACK_VALUE_UNKNOWN for a
 * fully indexed field). Entries the real encoder adds evict placeholders
 * from the old end exactly as they evict old real entries in the real
 * table, so every entry we hold that is not a placeholder is the one the
 * peer holds at that index: decoding stays exact for everything that does
 * not reference the unseen past, and the connection is exact again once no
 * placeholder remains (h2_hpack_exact()).
 */
#ifndef SEALTAP_H2_HPACK_H
#define SEALTAP_H2_HPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nghttp2_hd_inflater;

#define H2_HPACK_NAME_UNKNOWN 0x1
#define H2_HPACK_VALUE_UNKNOWN 0x2
#define H2_HPACK_DEFAULT_TABLE 4096u

#include <nghttp2/nghttp2.h>

struct mem_heap;

struct h2_hpack {
	struct nghttp2_hd_inflater *inf;
	struct mem_heap *heap; /* where the inflater allocates; NULL: malloc */
	nghttp2_mem mem;       /* nghttp2 keeps a pointer to it: lives here */
	uint32_t cap;        /* most table size we accept (config) */
	uint32_t prime_size; /* table size of the last priming */
	uint8_t primed;      /* placeholders may remain */
	uint8_t in_block;    /* between the first and last fragment */
	uint8_t broken;      /* inflater failed; dead until reprimed */
	uint8_t pad;
};

/* Called for each decoded field. |name|/|value| are borrowed for the call. */
typedef void (*h2_hpack_emit_fn)(void *user, const uint8_t *name, size_t nlen,
				 const uint8_t *value, size_t vlen,
				 unsigned unknown);

/* Starts |h| with an empty table (|prime| false: the connection was seen
 * from its start) or a primed one. |cap| bounds the table size the peer
 * may use. 0 or -ENOMEM. */
int h2_hpack_init(struct h2_hpack *h, uint32_t cap, bool prime);
/* The same, with the inflater's allocations (its dynamic table holds
 * decoded header values) on |heap|, which is not dumped. Does not take
 * ownership of |heap|; it must outlive |h|. */
int h2_hpack_init_heap(struct h2_hpack *h, uint32_t cap, bool prime,
		       struct mem_heap *heap);
void h2_hpack_fini(struct h2_hpack *h);

/* Replaces the inflater with a freshly primed one of at least |size| bytes
 * (capped): after a lost or failed block the table is unknown. */
int h2_hpack_reprime(struct h2_hpack *h, uint32_t size);

/* Applies a SETTINGS_HEADER_TABLE_SIZE the decoding side announced (capped
 * at |cap|). Only between blocks; returns -EBUSY inside one. */
int h2_hpack_set_settings_size(struct h2_hpack *h, uint32_t size);

/* Feeds one fragment of a header block; |final| on the last one. Decoded
 * fields go to |emit|. Returns 0, or -EPROTO when the block cannot be
 * decoded: the inflater is then dead (every call fails) until
 * h2_hpack_reprime(). */
int h2_hpack_feed(struct h2_hpack *h, const uint8_t *in, size_t len,
		  bool final, h2_hpack_emit_fn emit, void *user);

/* True when no placeholder is left in the table (decoding is exact). Only
 * meaningful between blocks. */
bool h2_hpack_exact(struct h2_hpack *h);

#endif
