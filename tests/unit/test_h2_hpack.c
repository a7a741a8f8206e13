/* Tests for src/h2_hpack.c (h2_hpack.h): HPACK decoding with placeholder
 * priming.
 *
 * Header blocks are made by nghttp2's own deflater (a real encoder with a
 * real dynamic table), so what the inflater is fed is what a peer sends.
 * Each case states the header lists the deflater encodes, which of them
 * the observer sees, and what the observer must decode: exact fields, or
 * fields with H2_HPACK_NAME_UNKNOWN / H2_HPACK_VALUE_UNKNOWN where the
 * encoder referred to entries inserted by blocks the observer never saw.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "sealtap/h2_hpack.h"

/* ---- collected fields ----------------------------------------------- */

#define MAXF 512

struct field {
	uint8_t *name, *value;
	size_t nlen, vlen;
	unsigned unk;
};

struct fields {
	struct field f[MAXF];
	size_t n;
};

static void collect(void *u, const uint8_t *n, size_t nl, const uint8_t *v,
		    size_t vl, unsigned unk)
{
	struct fields *fs = u;
	assert_true(fs->n < MAXF);
	struct field *f = &fs->f[fs->n++];
	f->name = malloc(nl + 1);
	f->value = malloc(vl + 1);
	memcpy(f->name, n, nl);
	memcpy(f->value, v, vl);
	f->nlen = nl;
	f->vlen = vl;
	f->unk = unk;
}

static void fields_clear(struct fields *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->f[i].name);
		free(fs->f[i].value);
	}
	fs->n = 0;
}

static bool field_is(const struct field *f, const char *n, const uint8_t *v,
		     size_t vl)
{
	return f->nlen == strlen(n) && !memcmp(f->name, n, f->nlen) &&
	       f->vlen == vl && !memcmp(f->value, v, vl);
}

/* ---- deflating ------------------------------------------------------ */

#define NV(n, v)                                                               \
	{ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,        \
	  NGHTTP2_NV_FLAG_NONE }

static size_t deflate(nghttp2_hd_deflater *d, const nghttp2_nv *nv, size_t n,
		      uint8_t *out, size_t cap)
{
	size_t bound = nghttp2_hd_deflate_bound(d, nv, n);
	assert_true(bound <= cap);
	ssize_t rv = nghttp2_hd_deflate_hd(d, out, cap, nv, n);
	assert_true(rv >= 0);
	return (size_t)rv;
}

static nghttp2_hd_deflater *deflater(size_t table)
{
	nghttp2_hd_deflater *d;
	assert_int_equal(nghttp2_hd_deflate_new(&d, table), 0);
	return d;
}

/* Feeds |len| bytes as fragments of |frag| bytes (0: one piece), the last
 * one final. With |empty_final|, all bytes go non-final and a zero-length
 * final call ends the block (what the connection does at END_HEADERS). */
static int feed(struct h2_hpack *h, const uint8_t *in, size_t len, size_t frag,
		bool empty_final, struct fields *fs)
{
	if (frag == 0)
		frag = len ? len : 1;
	size_t off = 0;
	do {
		size_t k = len - off < frag ? len - off : frag;
		bool last = off + k == len;
		int rc = h2_hpack_feed(h, in + off, k, last && !empty_final,
				       collect, fs);
		if (rc < 0)
			return rc;
		off += k;
	} while (off < len);
	if (empty_final)
		return h2_hpack_feed(h, NULL, 0, true, collect, fs);
	return 0;
}

/* Checks that |fs| equals |nv| exactly, nothing unknown. */
static void expect_exact(const struct fields *fs, const nghttp2_nv *nv,
			 size_t n, const char *what)
{
	if (fs->n != n)
		fail_msg("%s: %zu fields, want %zu", what, fs->n, n);
	for (size_t i = 0; i < n; i++) {
		const struct field *f = &fs->f[i];
		if (f->unk || f->nlen != nv[i].namelen ||
		    memcmp(f->name, nv[i].name, f->nlen) ||
		    f->vlen != nv[i].valuelen ||
		    memcmp(f->value, nv[i].value, f->vlen))
			fail_msg("%s: field %zu '%.*s: %.*s' unk %u, want "
				 "'%.*s: %.*s'",
				 what, i, (int)f->nlen, f->name, (int)f->vlen,
				 f->value, f->unk, (int)nv[i].namelen,
				 nv[i].name, (int)nv[i].valuelen, nv[i].value);
	}
}

/* ---- round trip ----------------------------------------------------- */

static uint8_t binval[256];

/* A few header lists that exercise static entries, dynamic entries,
 * Huffman and raw strings, never-indexed fields, long and binary values. */
static void make_lists(nghttp2_nv lists[][8], size_t *counts)
{
	for (int i = 0; i < 256; i++)
		binval[i] = (uint8_t)i;
	static char longval[5000];
	memset(longval, 'L', sizeof(longval) - 1);
	nghttp2_nv l0[] = {
		NV(":method", "GET"), NV(":path", "/"),
		NV(":scheme", "http"), NV(":authority", "example.com"),
		NV("accept", "*/*"), NV("user-agent", "nghttp2/1.52.0"),
	};
	nghttp2_nv l1[] = {
		NV(":method", "GET"), NV(":path", "/index.html"),
		NV(":scheme", "http"), NV(":authority", "example.com"),
		NV("accept", "*/*"), NV("user-agent", "nghttp2/1.52.0"),
		NV("x-custom", "value-1"),
	};
	nghttp2_nv l2[] = {
		NV(":method", "POST"), NV(":path", "/upload?q=1&r=%20"),
		NV(":scheme", "https"), NV(":authority", "example.com"),
		NV("content-type", "application/grpc+proto"),
		NV("authorization", "Bearer secret"),
		NV("x-custom", "value-2"),
		NV("x-empty", ""),
	};
	l2[5].flags = NGHTTP2_NV_FLAG_NO_INDEX; /* never indexed (§6.2.3) */
	nghttp2_nv l3[] = {
		NV(":status", "200"), NV("content-length", "5000"),
		NV("x-long", ""), NV("x-bin", ""),
	};
	l3[2].value = (uint8_t *)longval;
	l3[2].valuelen = sizeof(longval) - 1;
	l3[3].value = binval;
	l3[3].valuelen = sizeof(binval);
	l3[3].flags = NGHTTP2_NV_FLAG_NO_COPY_VALUE;
	nghttp2_nv l4[] = {
		NV(":method", "GET"), NV(":path", "/index.html"),
		NV(":scheme", "http"), NV(":authority", "example.com"),
		NV("accept", "*/*"), NV("user-agent", "nghttp2/1.52.0"),
		NV("x-custom", "value-1"), NV("x-custom", "value-2"),
	};
	memcpy(lists[0], l0, sizeof(l0));
	counts[0] = 6;
	memcpy(lists[1], l1, sizeof(l1));
	counts[1] = 7;
	memcpy(lists[2], l2, sizeof(l2));
	counts[2] = 8;
	memcpy(lists[3], l3, sizeof(l3));
	counts[3] = 4;
	memcpy(lists[4], l4, sizeof(l4));
	counts[4] = 8;
}

static void test_roundtrip(void **state)
{
	(void)state;
	nghttp2_nv lists[5][8];
	size_t counts[5];
	make_lists(lists, counts);
	/* fragmenting: whole, 1 byte, 7 bytes, whole + empty final */
	static const struct {
		size_t frag;
		bool empty_final;
	} modes[] = { { 0, false }, { 1, false }, { 7, false }, { 0, true },
		      { 1, true } };
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		for (int table = 0; table < 2; table++) {
			size_t tsize = table ? 65536 : 4096;
			nghttp2_hd_deflater *d = deflater(tsize);
			struct h2_hpack h;
			assert_int_equal(h2_hpack_init(&h, 65536, false), 0);
			assert_true(h2_hpack_exact(&h));
			if (table) /* the peer announced a bigger table */
				assert_int_equal(
					nghttp2_hd_deflate_change_table_size(
						d, tsize),
					0);
			/* twice over so later blocks hit dynamic entries */
			for (int round = 0; round < 3; round++) {
				for (size_t i = 0; i < 5; i++) {
					uint8_t buf[16384];
					size_t n = deflate(d, lists[i],
							   counts[i], buf,
							   sizeof(buf));
					struct fields fs = { .n = 0 };
					char what[64];
					snprintf(what, sizeof(what),
						 "mode %zu table %zu round %d "
						 "list %zu",
						 m, tsize, round, i);
					int rc = feed(&h, buf, n,
						      modes[m].frag,
						      modes[m].empty_final,
						      &fs);
					if (rc)
						fail_msg("%s: rc %d", what, rc);
					expect_exact(&fs, lists[i], counts[i],
						     what);
					fields_clear(&fs);
					assert_true(h2_hpack_exact(&h));
				}
			}
			assert_int_equal(
				nghttp2_hd_inflate_get_num_table_entries(h.inf),
				nghttp2_hd_deflate_get_num_table_entries(d));
			h2_hpack_fini(&h);
			nghttp2_hd_deflate_del(d);
		}
	}
}

/* ---- priming -------------------------------------------------------- */

/* Entry of exactly 64 bytes (RFC 7541 §4.1): 9 + 23 + 32. */
static nghttp2_nv entry64(unsigned k, char *name, char *value)
{
	snprintf(name, 16, "x-hdr-%03u", k % 1000);
	snprintf(value, 32, "value-%017u", k);
	nghttp2_nv nv = { (uint8_t *)name, (uint8_t *)value, 9, 23,
			  NGHTTP2_NV_FLAG_NONE };
	return nv;
}

static void test_priming_placeholders(void **state)
{
	(void)state;
	struct h2_hpack h;
	assert_int_equal(h2_hpack_init(&h, 65536, true), 0);
	assert_true(h.primed);
	assert_int_equal(h.prime_size, 4096);
	/* 4096 / 33 placeholders */
	assert_int_equal(nghttp2_hd_inflate_get_num_table_entries(h.inf),
			 61 + 4096 / 33);
	assert_int_equal(nghttp2_hd_inflate_get_dynamic_table_size(h.inf),
			 (4096 / 33) * 33);
	assert_false(h2_hpack_exact(&h));
	/* reprime: below the default -> default; above the cap -> cap */
	static const struct {
		uint32_t ask, cap, want;
	} rows[] = {
		{ 100, 65536, 4096 },
		{ 4096, 65536, 4096 },
		{ 8192, 65536, 8192 },
		{ 100000, 65536, 65536 },
		{ 8192, 4096, 4096 },
		{ 8192, 1000, 4096 }, /* cap below the default is raised */
	};
	h2_hpack_fini(&h);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(h2_hpack_init(&h, rows[i].cap, false), 0);
		assert_false(h.primed);
		assert_int_equal(h2_hpack_reprime(&h, rows[i].ask), 0);
		assert_true(h.primed);
		if (h.prime_size != rows[i].want)
			fail_msg("row %zu: prime_size %u want %u", i,
				 h.prime_size, rows[i].want);
		assert_int_equal(
			nghttp2_hd_inflate_get_num_table_entries(h.inf),
			61 + rows[i].want / 33);
		assert_false(h2_hpack_exact(&h));
		h2_hpack_fini(&h);
	}
}

/* A deflater inserted N entries the observer never saw; then a block
 * refers to them (fully indexed, and by name with a new value) among
 * static-table and literal fields. */
static void test_priming_unknown_fields(void **state)
{
	(void)state;
	static const unsigned ns[] = { 1, 5, 60, 120 };
	for (size_t t = 0; t < sizeof(ns) / sizeof(ns[0]); t++) {
		unsigned N = ns[t];
		nghttp2_hd_deflater *d = deflater(4096);
		char names[128][16], values[128][32];
		nghttp2_nv hidden[128];
		uint8_t buf[16384];
		for (unsigned k = 0; k < N; k++)
			hidden[k] = entry64(k, names[k], values[k]);
		/* unseen: the observer joins after these blocks */
		for (unsigned k = 0; k < N; k++)
			deflate(d, &hidden[k], 1, buf, sizeof(buf));
		/* entries beyond the 4096-byte table have been evicted */
		unsigned live = N * 64 > 4096 ? 4096 / 64 : N;
		assert_int_equal(nghttp2_hd_deflate_get_num_table_entries(d),
				 61 + live);

		struct h2_hpack h;
		assert_int_equal(h2_hpack_init(&h, 65536, true), 0);
		/* the observed block */
		/* oldest still in the table; the literal below evicts it
		 * when the table is full, so the block refers to the next */
		unsigned first = N - live;
		char nv_name_only_val[] = "another-value";
		nghttp2_nv blk[] = {
			NV(":method", "GET"),              /* static, exact */
			hidden[N - 1],                     /* indexed: unknown */
			NV("x-literal", "fresh"),          /* literal, exact */
			hidden[first + (live > 1)],        /* indexed: unknown */
			{ hidden[N - 1].name, (uint8_t *)nv_name_only_val,
			  9, sizeof(nv_name_only_val) - 1,
			  NGHTTP2_NV_FLAG_NONE },          /* name only */
			NV(":path", "/"),                  /* static, exact */
			NV("accept-encoding", "gzip, deflate"), /* static */
		};
		size_t n = deflate(d, blk, 7, buf, sizeof(buf));
		for (int frag = 0; frag < 2; frag++) {
			struct h2_hpack hh;
			assert_int_equal(h2_hpack_init(&hh, 65536, true), 0);
			struct fields fs = { .n = 0 };
			assert_int_equal(feed(&hh, buf, n, frag ? 1 : 0, false,
					      &fs),
					 0);
			assert_int_equal(fs.n, 7);
			const uint8_t *v;
			v = (const uint8_t *)"GET";
			assert_true(field_is(&fs.f[0], ":method", v, 3));
			assert_int_equal(fs.f[0].unk, 0);
			assert_int_equal(fs.f[1].unk, H2_HPACK_NAME_UNKNOWN |
							      H2_HPACK_VALUE_UNKNOWN);
			v = (const uint8_t *)"fresh";
			assert_true(field_is(&fs.f[2], "x-literal", v, 5));
			assert_int_equal(fs.f[2].unk, 0);
			assert_int_equal(fs.f[3].unk, H2_HPACK_NAME_UNKNOWN |
							      H2_HPACK_VALUE_UNKNOWN);
			/* literal value after an unknown name: value real */
			assert_int_equal(fs.f[4].unk, H2_HPACK_NAME_UNKNOWN);
			assert_int_equal(fs.f[4].vlen,
					 sizeof(nv_name_only_val) - 1);
			assert_memory_equal(fs.f[4].value, nv_name_only_val,
					    fs.f[4].vlen);
			v = (const uint8_t *)"/";
			assert_true(field_is(&fs.f[5], ":path", v, 1));
			assert_int_equal(fs.f[5].unk, 0);
			v = (const uint8_t *)"gzip, deflate";
			assert_true(field_is(&fs.f[6], "accept-encoding", v,
					     13));
			assert_int_equal(fs.f[6].unk, 0);
			fields_clear(&fs);
			assert_false(h2_hpack_exact(&hh));
			h2_hpack_fini(&hh);
		}
		h2_hpack_fini(&h);
		nghttp2_hd_deflate_del(d);
	}
}

/* The fields a block inserts are decoded exactly by later blocks, while
 * placeholders remain; h2_hpack_exact() turns true exactly when the
 * encoder's new insertions have evicted every placeholder. */
static void test_priming_turnover(void **state)
{
	(void)state;
	nghttp2_hd_deflater *d = deflater(4096);
	uint8_t buf[16384];
	char names[400][16], values[400][32];
	/* 10 unseen entries */
	for (unsigned k = 0; k < 10; k++) {
		nghttp2_nv nv = entry64(k, names[k], values[k]);
		deflate(d, &nv, 1, buf, sizeof(buf));
	}
	struct h2_hpack h;
	assert_int_equal(h2_hpack_init(&h, 4096, true), 0);
	unsigned placeholders = 4096 / 33; /* 124, 4092 bytes */
	for (unsigned k = 10; k < 10 + 80; k++) {
		/* one new 64-byte entry, plus a reference to the previous
		 * observed entry (exact) and to an unseen one while it
		 * lives in the encoder's table (unknown) */
		nghttp2_nv blk[3];
		unsigned nb = 0;
		unsigned seen = k - 9; /* observed 64-byte entries */
		blk[nb++] = entry64(k, names[k], values[k]);
		if (k > 10)
			blk[nb++] = entry64(k - 1, names[k - 1], values[k - 1]);
		unsigned nexact = nb;
		char n0[16], v0[32];
		if (seen <= 50) /* unseen entry 0 still in the encoder's table */
			blk[nb++] = entry64(0, n0, v0);
		size_t n = deflate(d, blk, nb, buf, sizeof(buf));
		struct fields fs = { .n = 0 };
		assert_int_equal(feed(&h, buf, n, 0, false, &fs), 0);
		assert_int_equal(fs.n, nb);
		if (nb > nexact) {
			assert_int_equal(fs.f[nexact].unk,
					 H2_HPACK_NAME_UNKNOWN |
						 H2_HPACK_VALUE_UNKNOWN);
			fs.n--;
			free(fs.f[nexact].name);
			free(fs.f[nexact].value);
		}
		expect_exact(&fs, blk, nexact, "turnover");
		fields_clear(&fs);
		bool want_exact = seen * 64 > 4096 - 33;
		unsigned left = (4096 - seen * 64) / 33;
		if (left > placeholders)
			left = placeholders;
		if (!want_exact)
			assert_int_equal(
				nghttp2_hd_inflate_get_num_table_entries(h.inf),
				61 + seen + left);
		if (h2_hpack_exact(&h) != want_exact)
			fail_msg("after %u observed entries: exact %d want %d",
				 seen, !want_exact, want_exact);
	}
	/* now every index matches the encoder's table */
	assert_int_equal(nghttp2_hd_inflate_get_num_table_entries(h.inf),
			 nghttp2_hd_deflate_get_num_table_entries(d));
	for (size_t i = 62;
	     i <= nghttp2_hd_deflate_get_num_table_entries(d); i++) {
		const nghttp2_nv *a =
			nghttp2_hd_deflate_get_table_entry(d, i);
		const nghttp2_nv *b =
			nghttp2_hd_inflate_get_table_entry(h.inf, i);
		assert_int_equal(a->namelen, b->namelen);
		assert_memory_equal(a->name, b->name, a->namelen);
		assert_int_equal(a->valuelen, b->valuelen);
		assert_memory_equal(a->value, b->value, a->valuelen);
	}
	h2_hpack_fini(&h);
	nghttp2_hd_deflate_del(d);
}

/* ---- errors --------------------------------------------------------- */

struct err_row {
	const char *what;
	uint8_t in[16];
	size_t len;
	uint32_t cap;
	bool prime;
	size_t frag; /* 0: whole */
};

static const struct err_row err_rows[] = {
	/* RFC 7541 §6.1: index 0 is an error */
	{ "index 0", { 0x80 }, 1, 4096, false, 0 },
	/* index 62 with an empty dynamic table */
	{ "index past the table", { 0xbe }, 1, 4096, false, 0 },
	/* primed with 124 placeholders: 62+124 = 186 is past the end */
	{ "index past the primed table", { 0xff, 0x3b }, 2, 4096, true, 0 },
	/* huge index: 7-bit prefix 127 + continuation */
	{ "huge index", { 0xff, 0xff, 0xff, 0xff, 0x7f }, 5, 4096, false, 0 },
	/* integer whose continuation never ends in the block */
	{ "truncated integer", { 0xff, 0x80 }, 2, 4096, false, 0 },
	{ "truncated integer, 1-byte frags", { 0xff, 0x80, 0x80 }, 3, 4096,
	  false, 1 },
	/* literal whose string is cut by the block end */
	{ "truncated string", { 0x40, 0x05, 'a', 'b' }, 4, 4096, false, 0 },
	/* literal name index past the table */
	{ "name index past the table", { 0x7f, 0x10, 0x01, 'x' }, 4, 4096,
	  false, 0 },
	/* §6.3: size update above the cap */
	{ "size update above cap", { 0x3f, 0xe1, 0x3f }, 3, 4096, false, 0 },
	{ "size update above cap 64k", { 0x3f, 0xe2, 0xff, 0x03 }, 4, 65536,
	  false, 0 },
	/* §4.2: size update after the first field */
	{ "size update mid-block", { 0x82, 0x3f, 0xe1, 0x1f }, 4, 65536, false,
	  0 },
	/* invalid Huffman (EOS padding longer than 7 bits) */
	{ "bad huffman", { 0x40, 0x81, 0xff, 0x01, 'a' }, 5, 4096, false, 0 },
};

static void test_errors_dead_until_reprime(void **state)
{
	(void)state;
	/* a valid block to try afterwards */
	static const uint8_t ok[] = { 0x82, 0x84, 0x86 }; /* GET / http */
	for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		const struct err_row *r = &err_rows[i];
		struct h2_hpack h;
		assert_int_equal(h2_hpack_init(&h, r->cap, r->prime), 0);
		struct fields fs = { .n = 0 };
		int rc = feed(&h, r->in, r->len, r->frag, false, &fs);
		if (rc != -EPROTO)
			fail_msg("%s: rc %d want -EPROTO", r->what, rc);
		assert_true(h.broken);
		assert_false(h.in_block);
		fields_clear(&fs);
		/* dead: even a valid block fails, in any shape */
		assert_int_equal(h2_hpack_feed(&h, ok, sizeof(ok), true,
					       collect, &fs),
				 -EPROTO);
		assert_int_equal(h2_hpack_feed(&h, ok, 1, false, collect, &fs),
				 -EPROTO);
		assert_int_equal(h2_hpack_feed(&h, NULL, 0, true, collect,
					       &fs),
				 -EPROTO);
		assert_int_equal(fs.n, 0);
		/* until reprimed */
		assert_int_equal(h2_hpack_reprime(&h, 4096), 0);
		assert_false(h.broken);
		assert_int_equal(h2_hpack_feed(&h, ok, sizeof(ok), true,
					       collect, &fs),
				 0);
		assert_int_equal(fs.n, 3);
		assert_true(field_is(&fs.f[0], ":method",
				     (const uint8_t *)"GET", 3));
		assert_true(field_is(&fs.f[1], ":path", (const uint8_t *)"/",
				     1));
		fields_clear(&fs);
		h2_hpack_fini(&h);
	}
}

/* Size updates: up to the cap is fine, above fails. */
static void test_table_size_update(void **state)
{
	(void)state;
	static const struct {
		uint32_t cap, size;
		int want;
	} rows[] = {
		{ 4096, 0, 0 },	    { 4096, 4096, 0 },	   { 4096, 4097, -EPROTO },
		{ 65536, 65536, 0 }, { 65536, 65537, -EPROTO },
		{ 65536, 8192, 0 }, { 100, 4096, 0 }, /* cap raised to 4096 */
		{ 100, 4097, -EPROTO },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (int pr = 0; pr < 2; pr++) {
			struct h2_hpack h;
			assert_int_equal(h2_hpack_init(&h, rows[i].cap, pr), 0);
			nghttp2_hd_deflater *d = deflater(1u << 20);
			assert_int_equal(nghttp2_hd_deflate_change_table_size(
						 d, rows[i].size),
					 0);
			nghttp2_nv nv[] = { NV(":status", "200"),
					    NV("x-a", "b") };
			uint8_t buf[256];
			size_t n = deflate(d, nv, 2, buf, sizeof(buf));
			struct fields fs = { .n = 0 };
			int rc = feed(&h, buf, n, 0, false, &fs);
			if (rc != rows[i].want)
				fail_msg("cap %u size %u primed %d: rc %d",
					 rows[i].cap, rows[i].size, pr, rc);
			if (rc == 0)
				expect_exact(&fs, nv, 2, "size update");
			fields_clear(&fs);
			nghttp2_hd_deflate_del(d);
			h2_hpack_fini(&h);
		}
	}
}

/* SETTINGS_HEADER_TABLE_SIZE: only between blocks. */
static void test_settings_size_busy(void **state)
{
	(void)state;
	struct h2_hpack h;
	assert_int_equal(h2_hpack_init(&h, 65536, false), 0);
	nghttp2_hd_deflater *d = deflater(4096);
	nghttp2_nv nv[] = { NV(":method", "GET"), NV(":path", "/a/b/c"),
			    NV("x-one", "1"), NV("x-two", "2") };
	uint8_t buf[256];
	size_t n = deflate(d, nv, 4, buf, sizeof(buf));
	struct fields fs = { .n = 0 };
	assert_int_equal(h2_hpack_set_settings_size(&h, 8192), 0);
	assert_int_equal(h2_hpack_feed(&h, buf, 3, false, collect, &fs), 0);
	assert_true(h.in_block);
	assert_int_equal(h2_hpack_set_settings_size(&h, 8192), -EBUSY);
	assert_int_equal(h2_hpack_set_settings_size(&h, 0), -EBUSY);
	assert_int_equal(h2_hpack_feed(&h, buf + 3, n - 3, true, collect, &fs),
			 0);
	assert_false(h.in_block);
	expect_exact(&fs, nv, 4, "busy");
	fields_clear(&fs);
	/* between blocks it applies; a smaller size then requires the
	 * encoder's size update (RFC 7541 §4.2), which nghttp2 sends */
	assert_int_equal(h2_hpack_set_settings_size(&h, 256), 0);
	assert_int_equal(nghttp2_hd_deflate_change_table_size(d, 256), 0);
	n = deflate(d, nv, 4, buf, sizeof(buf));
	assert_int_equal(feed(&h, buf, n, 1, false, &fs), 0);
	expect_exact(&fs, nv, 4, "after settings");
	fields_clear(&fs);
	/* a size above the cap is capped, not refused */
	assert_int_equal(h2_hpack_set_settings_size(&h, 1u << 30), 0);
	/* no inflater yet (the direction has not started) */
	struct h2_hpack none;
	memset(&none, 0, sizeof(none));
	assert_int_equal(h2_hpack_set_settings_size(&none, 4096), -EINVAL);
	nghttp2_hd_deflate_del(d);
	h2_hpack_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_priming_placeholders),
		cmocka_unit_test(test_priming_unknown_fields),
		cmocka_unit_test(test_priming_turnover),
		cmocka_unit_test(test_errors_dead_until_reprime),
		cmocka_unit_test(test_table_size_update),
		cmocka_unit_test(test_settings_size_busy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
