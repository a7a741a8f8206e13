/* HPACK decoding with placeholder priming. See h2_hpack.h. */
#include <errno.h>
#include <string.h>
#include <nghttp2/nghttp2.h>

#include "sealtap/h2_hpack.h"
#include "sealtap/mem.h"

#define PLACEHOLDER_SIZE 33 /* RFC 7541 §4.1: name 1 + value 0 + 32 */
#define STATIC_ENTRIES 61

static bool is_placeholder_name(const uint8_t *name, size_t len)
{
	return len == 1 && name[0] == '?';
}

/* Writes |v| as an HPACK integer with an |nbits| prefix (RFC 7541 §5.1)
 * after |first| (the pattern bits). Returns bytes written. */
static size_t put_int(uint8_t *out, uint8_t first, unsigned nbits, uint32_t v)
{
	uint32_t max = (1u << nbits) - 1;
	size_t n = 0;
	if (v < max) {
		out[n++] = (uint8_t)(first | v);
		return n;
	}
	out[n++] = (uint8_t)(first | max);
	v -= max;
	while (v >= 128) {
		out[n++] = (uint8_t)((v & 0x7f) | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

static void discard(void *u, const uint8_t *n, size_t nl, const uint8_t *v,
		    size_t vl, unsigned unk)
{
	(void)u, (void)n, (void)nl, (void)v, (void)vl, (void)unk;
}

/* Fills a new inflater's table with placeholders through an ordinary
 * header block: a table size update to |size|, then size/33 literals with
 * incremental indexing (RFC 7541 §6.2.1) named "?" with empty values. */
static int prime(struct h2_hpack *h, uint32_t size)
{
	uint8_t chunk[4 * 64 + 8];
	uint32_t n = size / PLACEHOLDER_SIZE;
	size_t len = put_int(chunk, 0x20, 5, size); /* §6.3 size update */
	h->prime_size = size;
	h->primed = 1;
	h->in_block = 0;
	h->broken = 0;
	while (n > 0) {
		uint32_t k = n > 64 ? 64 : n;
		for (uint32_t i = 0; i < k; i++) {
			chunk[len++] = 0x40; /* literal, incremental, new name */
			chunk[len++] = 1;
			chunk[len++] = '?';
			chunk[len++] = 0;
		}
		n -= k;
		if (h2_hpack_feed(h, chunk, len, n == 0, discard, NULL) < 0)
			return -EPROTO;
		len = 0;
	}
	if (size / PLACEHOLDER_SIZE == 0 &&
	    h2_hpack_feed(h, chunk, len, true, discard, NULL) < 0)
		return -EPROTO;
	h->primed = size >= PLACEHOLDER_SIZE;
	return 0;
}

static void *heap_malloc(size_t n, void *u)
{
	return mem_heap_alloc(u, n);
}

static void heap_free(void *p, void *u)
{
	mem_heap_release(u, p);
}

static void *heap_calloc(size_t nmemb, size_t size, void *u)
{
	return mem_heap_calloc(u, nmemb, size);
}

static void *heap_realloc(void *p, size_t n, void *u)
{
	return mem_heap_realloc(u, p, n);
}

static int fresh(struct h2_hpack *h)
{
	if (h->inf)
		nghttp2_hd_inflate_del(h->inf);
	h->inf = NULL;
	h->broken = 0;
	h->in_block = 0;
	int rc;
	if (h->heap) {
		/* nghttp2 keeps the pointer: |h->mem| lives as long as |h|. */
		h->mem = (nghttp2_mem){ h->heap, heap_malloc, heap_free,
					heap_calloc, heap_realloc };
		rc = nghttp2_hd_inflate_new2(&h->inf, &h->mem);
	} else {
		rc = nghttp2_hd_inflate_new(&h->inf);
	}
	if (rc != 0)
		return -ENOMEM;
	/* Accept size updates up to our cap from the start. */
	if (nghttp2_hd_inflate_change_table_size(h->inf, h->cap) != 0)
		return -ENOMEM;
	return 0;
}

int h2_hpack_init(struct h2_hpack *h, uint32_t cap, bool do_prime)
{
	return h2_hpack_init_heap(h, cap, do_prime, NULL);
}

int h2_hpack_init_heap(struct h2_hpack *h, uint32_t cap, bool do_prime,
		       struct mem_heap *heap)
{
	memset(h, 0, sizeof(*h));
	h->heap = heap;
	h->cap = cap < H2_HPACK_DEFAULT_TABLE ? H2_HPACK_DEFAULT_TABLE : cap;
	int rc = fresh(h);
	if (rc == 0 && do_prime)
		rc = prime(h, H2_HPACK_DEFAULT_TABLE);
	return rc;
}

void h2_hpack_fini(struct h2_hpack *h)
{
	if (h->inf)
		nghttp2_hd_inflate_del(h->inf);
	h->inf = NULL;
}

int h2_hpack_reprime(struct h2_hpack *h, uint32_t size)
{
	if (size < H2_HPACK_DEFAULT_TABLE)
		size = H2_HPACK_DEFAULT_TABLE;
	if (size > h->cap)
		size = h->cap;
	int rc = fresh(h);
	return rc ? rc : prime(h, size);
}

int h2_hpack_set_settings_size(struct h2_hpack *h, uint32_t size)
{
	if (!h->inf)
		return -EINVAL;
	if (h->in_block)
		return -EBUSY;
	if (size > h->cap)
		size = h->cap;
	/* nghttp2 then insists on a size update at the next block start if
	 * the size went down, exactly as RFC 7541 §4.2 asks of encoders. */
	return nghttp2_hd_inflate_change_table_size(h->inf, size) ? -EPROTO
								  : 0;
}

int h2_hpack_feed(struct h2_hpack *h, const uint8_t *in, size_t len,
		  bool final, h2_hpack_emit_fn emit, void *user)
{
	if (h->broken)
		return -EPROTO; /* dead until h2_hpack_reprime() */
	h->in_block = !final;
	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t rv = nghttp2_hd_inflate_hd2(h->inf, &nv, &flags, in, len,
						    final ? 1 : 0);
		if (rv < 0) {
			/* nghttp2's inflater is unusable after an error. */
			h->broken = 1;
			h->in_block = 0;
			return -EPROTO;
		}
		if (rv > 0) { /* |in| may be NULL with len 0 (final call) */
			in += rv;
			len -= (size_t)rv;
		}
		if (flags & NGHTTP2_HD_INFLATE_EMIT) {
			unsigned unk = 0;
			if (is_placeholder_name(nv.name, nv.namelen)) {
				unk = H2_HPACK_NAME_UNKNOWN;
				/* A fully indexed placeholder hides the value
				 * too; a literal value after a placeholder
				 * name is real. nghttp2 does not say which
				 * form it was, but only placeholders have an
				 * empty value and the "?" name together. */
				if (nv.valuelen == 0)
					unk |= H2_HPACK_VALUE_UNKNOWN;
			}
			emit(user, nv.name, nv.namelen, nv.value, nv.valuelen,
			     unk);
		}
		if (flags & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(h->inf);
			return 0;
		}
		if (len == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT))
			return 0; /* needs the next fragment */
	}
}

bool h2_hpack_exact(struct h2_hpack *h)
{
	if (!h->primed)
		return true;
	/* Placeholders sit at the old end; scan from there and stop at the
	 * first one, so this is cheap while the table is still primed. */
	size_t n = nghttp2_hd_inflate_get_num_table_entries(h->inf);
	for (size_t i = n; i > STATIC_ENTRIES; i--) {
		const nghttp2_nv *nv =
			nghttp2_hd_inflate_get_table_entry(h->inf, i);
		if (nv && is_placeholder_name(nv->name, nv->namelen))
			return false;
	}
	h->primed = 0;
	return true;
}
