/* Tests for src/bpool.c (bpool.h): the fixed-size block pool and the byte
 * chains built on it.
 *
 * Each chain operation is checked against a plain reference buffer: after
 * every step the chain's bytes (read back with bchain_copy) must equal the
 * reference, its length must match, and the pool's used bytes must equal
 * the blocks the chains hold. Tables give the block sizes and the append,
 * truncate and move steps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sealtap/bpool.h"

#define HDR ((uint32_t)sizeof(struct bblock))

/* Blocks a chain holds (walking it), checking |used| never exceeds the
 * payload and the tail/len fields agree with the list. */
static uint64_t chain_blocks(const struct bpool *p, const struct bchain *c)
{
	uint64_t n = 0, len = 0;
	const struct bblock *last = NULL;
	for (const struct bblock *b = c->head; b; b = b->next) {
		assert_true(b->used <= bpool_block_payload(p));
		len += b->used;
		last = b;
		n++;
	}
	assert_int_equal(len, c->len);
	assert_ptr_equal(last, c->tail);
	return n;
}

static void expect_chain(const struct bpool *p, const struct bchain *c,
			 const uint8_t *ref, uint32_t len)
{
	assert_int_equal(c->len, len);
	uint8_t *out = malloc(len + 16);
	assert_int_equal(bchain_copy(c, 0, out, len + 16), len);
	assert_memory_equal(out, ref, len);
	free(out);
	chain_blocks(p, c);
}

static uint8_t *pat(uint32_t len, unsigned seed)
{
	uint8_t *b = malloc(len ? len : 1);
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 8));
	return b;
}

/* ---- the pool --------------------------------------------------------- */

static void test_new_sizes(void **state)
{
	(void)state;
	static const struct {
		uint32_t block;
		uint64_t memcap;
		bool ok;
		uint32_t block_rounded;
		uint64_t nblocks;
	} rows[] = {
		{ 0, 4096, false, 0, 0 },
		{ HDR + 56, 4096, false, 0, 0 },      /* payload < 64 */
		{ HDR + 57, 4096, true, HDR + 64, 4096 / (HDR + 64) },
		{ HDR + 64, 4096, true, HDR + 64, 4096 / (HDR + 64) },
		{ HDR + 65, 4096, true, HDR + 72, 4096 / (HDR + 72) },
		{ 1024, 0, true, 1024, 0 },
		{ 1024, 1023, true, 1024, 0 },
		{ 1024, 1024, true, 1024, 1 },
		{ 1024, 1u << 20, true, 1024, 1024 },
		{ 1000, 10000, true, 1000, 10 },
		{ 1001, 10000, true, 1008, 9 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct bpool *p = bpool_new(rows[i].block, rows[i].memcap);
		if (!rows[i].ok) {
			assert_null(p);
			continue;
		}
		assert_non_null(p);
		assert_int_equal(bpool_block_payload(p),
				 rows[i].block_rounded - HDR);
		assert_int_equal(bpool_capacity_bytes(p),
				 rows[i].nblocks * rows[i].block_rounded);
		assert_int_equal(bpool_used_bytes(p), 0);
		bpool_free(p);
	}
	bpool_free(NULL);
}

/* Taking every block, then one more, then giving back and taking again. */
static void test_exhaustion(void **state)
{
	(void)state;
	static const uint32_t blocks[] = { 80, 100, 1024, 4096 };
	for (size_t bi = 0; bi < sizeof(blocks) / sizeof(blocks[0]); bi++) {
		uint64_t memcap = 64 * 1024 + 17;
		struct bpool *p = bpool_new(blocks[bi], memcap);
		assert_non_null(p);
		uint32_t pay = bpool_block_payload(p);
		uint64_t nblocks = bpool_capacity_bytes(p) / (pay + HDR);
		void **objs = calloc(nblocks + 1, sizeof(void *));
		for (uint64_t k = 0; k < nblocks; k++) {
			objs[k] = bpool_get(p);
			assert_non_null(objs[k]);
			assert_int_equal((uintptr_t)objs[k] % 8, 0);
			memset(objs[k], (int)(k & 0xff), pay);
			assert_int_equal(bpool_used_bytes(p),
					 (k + 1) * (pay + HDR));
		}
		assert_null(bpool_get(p));
		assert_null(bpool_get(p));
		assert_int_equal(bpool_used_bytes(p), bpool_capacity_bytes(p));
		/* no block overlaps another: every payload kept its fill */
		for (uint64_t k = 0; k < nblocks; k++) {
			const uint8_t *o = objs[k];
			for (uint32_t j = 0; j < pay; j++)
				if (o[j] != (uint8_t)(k & 0xff))
					fail_msg("block %llu byte %u changed",
						 (unsigned long long)k, j);
		}
		/* give back every other one, take them again */
		for (uint64_t k = 0; k < nblocks; k += 2)
			bpool_put(p, objs[k]);
		for (uint64_t k = 0; k < nblocks; k += 2) {
			objs[k] = bpool_get(p);
			assert_non_null(objs[k]);
		}
		assert_null(bpool_get(p));
		for (uint64_t k = 0; k < nblocks; k++)
			bpool_put(p, objs[k]);
		assert_int_equal(bpool_used_bytes(p), 0);
		free(objs);
		bpool_free(p);
	}
	/* an empty pool */
	struct bpool *p = bpool_new(1024, 100);
	assert_null(bpool_get(p));
	struct bchain c;
	bchain_init(&c, 0);
	assert_false(bchain_append(p, &c, "x", 1));
	assert_int_equal(c.len, 0);
	assert_true(bchain_append(p, &c, "", 0));
	bpool_free(p);
}

/* ---- appends ------------------------------------------------------------ */

/* Appends of the sizes in |steps| (0-terminated) to one chain with block
 * size |block| and cap |cap|: contents, length and blocks held. */
static void test_append_table(void **state)
{
	(void)state;
	static const struct {
		uint32_t block;
		uint32_t cap;
		uint32_t steps[8];
	} rows[] = {
		{ 128, 0, { 1, 1, 1, 0 } },
		{ 128, 0, { 128 - HDR, 0 } },         /* exactly one payload */
		{ 128, 0, { 128 - HDR, 1, 0 } },      /* one byte over */
		{ 128, 0, { 5000, 0 } },              /* many blocks at once */
		{ 128, 0, { 103, 105, 104, 1, 500, 0 } },
		{ 1024, 0, { 1000, 1000, 1000, 24, 0 } },
		{ 1024, 3000, { 1000, 1000, 1000, 0 } }, /* cap hit */
		{ 1024, 3000, { 3000, 1, 0 } },       /* exactly at cap */
		{ 1024, 10, { 4, 4, 4, 4, 0 } },
		{ 4096, 0, { 70000, 3, 0 } },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct bpool *p = bpool_new(rows[i].block, 1u << 20);
		uint32_t pay = bpool_block_payload(p);
		struct bchain c;
		bchain_init(&c, rows[i].cap);
		uint8_t *ref = malloc(1u << 20);
		uint32_t rl = 0;
		unsigned seed = 0;
		for (const uint32_t *s = rows[i].steps; *s; s++) {
			uint8_t *d = pat(*s, seed++);
			uint32_t fit = *s;
			bool want = true;
			if (rows[i].cap && fit > rows[i].cap - rl) {
				fit = rows[i].cap - rl;
				want = false;
			}
			bool got = bchain_append(p, &c, d, *s);
			if (got != want)
				fail_msg("row %zu step %u: append %d want %d",
					 i, *s, got, want);
			memcpy(ref + rl, d, fit);
			rl += fit;
			free(d);
			expect_chain(p, &c, ref, rl);
			/* blocks are filled before a new one is taken */
			uint64_t nb = chain_blocks(p, &c);
			assert_int_equal(nb, (rl + pay - 1) / pay);
			assert_int_equal(bpool_used_bytes(p), nb * (pay + HDR));
		}
		assert_true(!rows[i].cap || c.len <= rows[i].cap);
		bchain_reset(p, &c);
		assert_int_equal(c.len, 0);
		assert_null(c.head);
		assert_int_equal(c.cap, rows[i].cap); /* cap kept */
		assert_int_equal(bpool_used_bytes(p), 0);
		free(ref);
		bpool_free(p);
	}
}

/* The pool running out in the middle of an append: false, and the chain
 * holds exactly the prefix that fit. */
static void test_append_pool_exhausted(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(128, 128 * 5);
	uint32_t pay = bpool_block_payload(p);
	struct bchain a, b;
	bchain_init(&a, 0);
	bchain_init(&b, 0);
	uint8_t *d = pat(pay * 10, 3);
	assert_true(bchain_append(p, &a, d, pay * 2 + 1)); /* 3 blocks */
	assert_false(bchain_append(p, &b, d, pay * 3));    /* 2 left */
	expect_chain(p, &b, d, pay * 2);
	assert_null(bpool_get(p));
	/* the last block of |a| has room: appends into it need no block */
	assert_true(bchain_append(p, &a, d + pay * 2 + 1, pay - 1));
	expect_chain(p, &a, d, pay * 3);
	assert_false(bchain_append(p, &a, d, 1));
	assert_int_equal(a.len, pay * 3);
	assert_true(bchain_puts(p, &b, ""));
	assert_false(bchain_puts(p, &b, "x"));
	bchain_reset(p, &a);
	assert_true(bchain_puts(p, &b, "hello"));
	assert_int_equal(b.len, pay * 2 + 5);
	bchain_reset(p, &b);
	assert_int_equal(bpool_used_bytes(p), 0);
	free(d);
	bpool_free(p);
}

/* ---- reading ------------------------------------------------------------ */

static void test_copy_offsets(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(128, 1u << 20);
	struct bchain c;
	bchain_init(&c, 0);
	uint32_t n = 1000;
	uint8_t *d = pat(n, 5);
	/* irregular appends so block boundaries fall anywhere */
	for (uint32_t off = 0, k = 1; off < n; k = k * 3 % 97 + 1) {
		uint32_t m = k < n - off ? k : n - off;
		assert_true(bchain_append(p, &c, d + off, m));
		off += m;
	}
	uint8_t out[1100];
	for (uint32_t off = 0; off <= n + 5; off += (off < 300 ? 1 : 37)) {
		static const uint32_t lens[] = { 0, 1, 2, 103, 104, 105, 999,
						 2000 };
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			uint32_t len = lens[li];
			uint32_t want = off >= n ? 0
				      : (len < n - off ? len : n - off);
			memset(out, 0xee, sizeof(out));
			uint32_t got = bchain_copy(&c, off, out,
						   len < 1100 ? len : 1100);
			if (len >= 1100)
				want = off >= n ? 0
				     : (1100 < n - off ? 1100 : n - off);
			if (got != want)
				fail_msg("copy off %u len %u: %u want %u", off,
					 len, got, want);
			assert_memory_equal(out, d + (off < n ? off : 0), got);
			if (got < sizeof(out))
				assert_int_equal(out[got], 0xee);
		}
	}
	bchain_reset(p, &c);
	free(d);
	bpool_free(p);
}

/* ---- truncate and move -------------------------------------------------- */

static void test_truncate(void **state)
{
	(void)state;
	static const uint32_t cuts[] = { 5000, 999,	    998, 500,
					 2 * (128 - HDR), 128 - HDR + 1,
					 128 - HDR,	    127 - HDR, 1, 0 };
	struct bpool *p = bpool_new(128, 1u << 20);
	uint32_t pay = bpool_block_payload(p);
	uint8_t *d = pat(2000, 9);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct bchain c;
		bchain_init(&c, 0);
		assert_true(bchain_append(p, &c, d, 999));
		bchain_truncate(p, &c, cuts[i]);
		uint32_t left = cuts[i] < 999 ? cuts[i] : 999;
		expect_chain(p, &c, d, left);
		assert_int_equal(bpool_used_bytes(p),
				 (uint64_t)((left + pay - 1) / pay) *
					 (pay + HDR));
		/* appending after a cut continues where it was cut */
		assert_true(bchain_append(p, &c, d + left, 300));
		expect_chain(p, &c, d, left + 300);
		bchain_reset(p, &c);
		assert_int_equal(bpool_used_bytes(p), 0);
	}
	free(d);
	bpool_free(p);
}

struct move_row {
	uint32_t dst_len, src_len, dst_cap;
	bool want;
};

static void test_move(void **state)
{
	(void)state;
	static const struct move_row rows[] = {
		{ 0, 0, 0, true },
		{ 0, 500, 0, true },
		{ 500, 0, 0, true },
		{ 10, 500, 0, true },    /* dst's last block stays part-full */
		{ 128 - HDR, 128 - HDR, 0, true }, /* one full block each */
		{ 300, 700, 1000, true }, /* exactly at the cap */
		{ 300, 701, 1000, false }, /* one over: prefix kept */
		{ 0, 5000, 100, false },
		{ 1000, 1, 1000, false },
	};
	struct bpool *p = bpool_new(128, 1u << 20);
	uint32_t pay = bpool_block_payload(p);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct move_row *r = &rows[i];
		uint8_t *a = pat(r->dst_len, 1), *b = pat(r->src_len, 2);
		struct bchain dst, src;
		bchain_init(&dst, r->dst_cap);
		bchain_init(&src, 0);
		bchain_append(p, &dst, a, r->dst_len);
		bchain_append(p, &src, b, r->src_len);
		uint64_t used = bpool_used_bytes(p);
		const struct bblock *src_head = src.head;
		bool got = bchain_move(p, &dst, &src);
		if (got != r->want)
			fail_msg("row %zu: move %d want %d", i, got, r->want);
		uint32_t keep = r->src_len;
		if (r->dst_cap && keep > r->dst_cap - r->dst_len)
			keep = r->dst_cap - r->dst_len;
		uint8_t *ref = malloc(r->dst_len + r->src_len + 1);
		memcpy(ref, a, r->dst_len);
		memcpy(ref + r->dst_len, b, keep);
		expect_chain(p, &dst, ref, r->dst_len + keep);
		assert_int_equal(src.len, 0);
		assert_null(src.head);
		assert_null(src.tail);
		if (r->want) {
			/* linked, not copied: no block taken or freed */
			assert_int_equal(bpool_used_bytes(p), used);
			bool linked = !src_head;
			for (const struct bblock *k = dst.head; k; k = k->next)
				linked |= k == src_head;
			assert_true(linked);
		}
		/* everything the pool lent is in |dst| now */
		assert_int_equal(bpool_used_bytes(p),
				 chain_blocks(p, &dst) * (pay + HDR));
		/* appends after a move go on at the end */
		assert_true(bchain_append(p, &dst, "Z", 1) ||
			    (r->dst_cap && dst.len == r->dst_cap));
		bchain_reset(p, &dst);
		assert_int_equal(bpool_used_bytes(p), 0);
		free(a), free(b), free(ref);
	}
	bpool_free(p);
}

/* Many chains built, moved and cut at random: every block comes back. */
static void test_reset_returns_all(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(200, 200 * 300);
	uint64_t cap = bpool_capacity_bytes(p);
	struct bchain c[16];
	for (int k = 0; k < 16; k++)
		bchain_init(&c[k], k % 3 ? 0 : 2000);
	uint8_t *d = pat(4000, 4);
	uint32_t x = 12345;
	for (int round = 0; round < 20000; round++) {
		x = x * 1103515245 + 12345;
		unsigned k = (x >> 8) % 16, op = (x >> 16) % 8;
		uint32_t n = (x >> 4) % 700;
		switch (op) {
		case 0: case 1: case 2:
			bchain_append(p, &c[k], d, n);
			break;
		case 3:
			bchain_truncate(p, &c[k], c[k].len / 2);
			break;
		case 4:
			bchain_move(p, &c[k], &c[(k + 1) % 16]);
			break;
		case 5:
			bchain_reset(p, &c[k]);
			break;
		default:
			bchain_puts(p, &c[k], "abc");
			break;
		}
		uint64_t blocks = 0;
		for (int j = 0; j < 16; j++)
			blocks += chain_blocks(p, &c[j]);
		assert_int_equal(bpool_used_bytes(p),
				 blocks * bpool_block_payload(p) +
					 blocks * HDR);
		assert_true(bpool_used_bytes(p) <= cap);
	}
	for (int k = 0; k < 16; k++)
		bchain_reset(p, &c[k]);
	assert_int_equal(bpool_used_bytes(p), 0);
	/* and the free list really holds them all */
	uint64_t n = 0;
	void *o;
	void **all = malloc(sizeof(void *) * 400);
	while ((o = bpool_get(p)))
		all[n++] = o;
	assert_int_equal(n * 200, cap);
	while (n)
		bpool_put(p, all[--n]);
	free(all);
	free(d);
	bpool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_sizes),
		cmocka_unit_test(test_exhaustion),
		cmocka_unit_test(test_append_table),
		cmocka_unit_test(test_append_pool_exhausted),
		cmocka_unit_test(test_copy_offsets),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_move),
		cmocka_unit_test(test_reset_returns_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
