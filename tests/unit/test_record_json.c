/* Tests for src/record_json.c (record.h): JSON string escaping of octets,
 * the bounded record buffer and the record id hash.
 *
 * Escaping is checked three ways: the exact escape of each byte (a table
 * built from the rule in record.h), a strict JSON reader (h2_json.h)
 * decoding \u00XX back to the byte, and Python's json module
 * (/usr/bin/python3, standard library) as an independent decoder: decoding
 * the JSON string and encoding it as Latin-1 must give the original bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sealtap/bpool.h"
#include "sealtap/record.h"
#include "h2_json.h"

/* The escape record.h promises for one byte. */
static void want_escape(uint8_t ch, char *out)
{
	if (ch == '"' || ch == '\\')
		sprintf(out, "\\%c", ch);
	else if (ch >= 0x20 && ch < 0x7f)
		sprintf(out, "%c", ch);
	else
		sprintf(out, "\\u00%02x", ch);
}

static char *chain_str(const struct bchain *c)
{
	char *s = malloc(c->len + 1);
	assert_int_equal(bchain_copy(c, 0, s, c->len), c->len);
	s[c->len] = 0;
	return s;
}

/* Every byte alone: exact escape, same from both writers. */
static void test_escape_each_byte(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(1024, 1u << 20);
	for (int ch = 0; ch < 256; ch++) {
		uint8_t b = (uint8_t)ch;
		char esc[8], want[16];
		want_escape(b, esc);
		snprintf(want, sizeof(want), "\"%s\"", esc);
		struct bchain c;
		bchain_init(&c, 0);
		assert_true(record_json_str(p, &c, &b, 1));
		char *got = chain_str(&c);
		assert_string_equal(got, want);
		free(got);
		bchain_reset(p, &c);
		char buf[32];
		struct record_buf rb = { .p = buf, .cap = sizeof(buf) };
		record_buf_str(&rb, &b, 1);
		assert_false(rb.overflow);
		assert_int_equal(rb.len, strlen(want));
		assert_memory_equal(buf, want, rb.len);
	}
	bpool_free(p);
}

/* All 256 bytes (and long strings crossing the 256-byte chunks the writer
 * escapes in) decode back to the same bytes. */
static void test_roundtrip_reader(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(1024, 4u << 20);
	static const uint32_t lens[] = { 0, 1, 255, 256, 257, 511, 512, 513,
					 5000 };
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		uint32_t n = lens[li];
		uint8_t *s = malloc(n + 1);
		for (uint32_t i = 0; i < n; i++)
			s[i] = (uint8_t)(i * 37 + li);
		struct bchain c;
		bchain_init(&c, 0);
		assert_true(record_json_str(p, &c, s, n));
		char *txt = chain_str(&c);
		struct jv *v = j_parse(txt, c.len);
		assert_non_null(v);
		assert_int_equal(v->t, J_STR);
		assert_int_equal(v->slen, n);
		assert_memory_equal(v->s, s, n);
		j_free(v);
		/* record_buf_str writes the same text */
		char *buf = malloc(6 * n + 3);
		struct record_buf rb = { .p = buf, .cap = 6 * n + 2 };
		record_buf_str(&rb, s, n);
		assert_false(rb.overflow);
		assert_int_equal(rb.len, c.len);
		assert_memory_equal(buf, txt, c.len);
		free(buf);
		free(txt);
		bchain_reset(p, &c);
		free(s);
	}
	bpool_free(p);
}

/* Python as the independent decoder. */
static void test_roundtrip_python(void **state)
{
	(void)state;
	if (access("/usr/bin/python3", X_OK) != 0) {
		print_message("skipped: no /usr/bin/python3\n");
		skip();
	}
	uint8_t all[512];
	for (int i = 0; i < 512; i++)
		all[i] = (uint8_t)(i < 256 ? i : 511 - i);
	char buf[6 * 512 + 8];
	struct record_buf rb = { .p = buf, .cap = sizeof(buf) };
	record_buf_str(&rb, all, sizeof(all));
	assert_false(rb.overflow);
	char in[] = "/tmp/sealtap-json-XXXXXX";
	int fd = mkstemp(in);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, rb.len), (ssize_t)rb.len);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import json,sys; "
		 "sys.stdout.buffer.write(json.load(open(sys.argv[1]))"
		 ".encode(\"latin-1\"))' %s",
		 in);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	uint8_t out[1024];
	size_t n = fread(out, 1, sizeof(out), f);
	assert_int_equal(pclose(f), 0);
	unlink(in);
	assert_int_equal(n, sizeof(all));
	assert_memory_equal(out, all, sizeof(all));
}

/* record_json_str stopped by the chain's cap or the pool: false. */
static void test_json_str_limits(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(128, 128 * 4);
	const uint8_t s[] = "ab\"c\x01";
	/* "ab\"c\u0001" is 13 bytes with the quotes */
	static const struct {
		uint32_t cap;
		bool ok;
	} rows[] = { { 0, true }, { 13, true }, { 12, false }, { 1, false } };
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct bchain c;
		bchain_init(&c, rows[i].cap);
		bool ok = record_json_str(p, &c, s, 5);
		if (ok != rows[i].ok)
			fail_msg("cap %u: %d", rows[i].cap, ok);
		if (ok) {
			char *t = chain_str(&c);
			assert_string_equal(t, "\"ab\\\"c\\u0001\"");
			free(t);
		} else {
			assert_true(c.len <= rows[i].cap);
		}
		bchain_reset(p, &c);
	}
	/* pool too small for a long string */
	struct bchain c;
	bchain_init(&c, 0);
	uint8_t big[1000];
	memset(big, 0, sizeof(big)); /* 6 bytes each escaped */
	assert_false(record_json_str(p, &c, big, sizeof(big)));
	bchain_reset(p, &c);
	assert_int_equal(bpool_used_bytes(p), 0);
	bpool_free(p);
}

/* ---- record_buf ------------------------------------------------------- */

static void test_record_buf_overflow(void **state)
{
	(void)state;
	char mem[64];
	struct record_buf b = { .p = mem, .cap = 10 };
	record_buf_puts(&b, "01234");
	assert_false(b.overflow);
	record_buf_put(&b, "56789", 5); /* exactly full */
	assert_false(b.overflow);
	assert_int_equal(b.len, 10);
	assert_memory_equal(mem, "0123456789", 10);
	record_buf_puts(&b, "");
	assert_false(b.overflow);
	record_buf_puts(&b, "x");
	assert_true(b.overflow);
	assert_int_equal(b.len, 10);

	/* a put that does not fit keeps the prefix that does */
	b = (struct record_buf){ .p = mem, .cap = 8 };
	record_buf_puts(&b, "abc");
	record_buf_puts(&b, "defghij");
	assert_true(b.overflow);
	assert_int_equal(b.len, 8);
	assert_memory_equal(mem, "abcdefgh", 8);

	/* printf: fits, then does not */
	b = (struct record_buf){ .p = mem, .cap = 16 };
	record_buf_printf(&b, "%d-%s", 42, "ok");
	assert_false(b.overflow);
	assert_int_equal(b.len, 5);
	assert_memory_equal(mem, "42-ok", 5);
	record_buf_printf(&b, "%s", "0123456789abcdef");
	assert_true(b.overflow);
	assert_true(b.len <= b.cap);
	/* once full, nothing more is written past the cap */
	memset(mem + 16, 0x5a, 16);
	record_buf_printf(&b, "more");
	record_buf_puts(&b, "more");
	record_buf_str(&b, (const uint8_t *)"\x01", 1);
	assert_true(b.overflow);
	assert_true(b.len <= b.cap);
	for (int i = 16; i < 32; i++)
		assert_int_equal((uint8_t)mem[i], 0x5a);

	/* str: an escape cut by the cap sets overflow */
	b = (struct record_buf){ .p = mem, .cap = 5 };
	record_buf_str(&b, (const uint8_t *)"\x01", 1);
	assert_true(b.overflow);
	assert_int_equal(b.len, 5);
}

static void test_record_buf_chain(void **state)
{
	(void)state;
	struct bpool *p = bpool_new(128, 1u << 16);
	struct bchain c;
	bchain_init(&c, 0);
	char src[700];
	for (int i = 0; i < 700; i++)
		src[i] = (char)('a' + i % 26);
	assert_true(bchain_append(p, &c, src, 700));
	char mem[800];
	struct record_buf b = { .p = mem, .cap = sizeof(mem) };
	record_buf_puts(&b, "[");
	record_buf_chain(&b, &c);
	assert_false(b.overflow);
	assert_int_equal(b.len, 701);
	assert_memory_equal(mem + 1, src, 700);
	b = (struct record_buf){ .p = mem, .cap = 300 };
	record_buf_chain(&b, &c);
	assert_true(b.overflow);
	assert_int_equal(b.len, 300);
	assert_memory_equal(mem, src, 300);
	bchain_reset(p, &c);
	bpool_free(p);
}

/* ---- record_hash64 ------------------------------------------------------ */

/* Fixed values: ids must be the same on every run, machine and build
 * (computed independently: FNV-1a 64 then the splitmix64 finaliser). */
static void test_hash64_stable(void **state)
{
	(void)state;
	uint8_t seq40[40], ff[1000];
	for (int i = 0; i < 40; i++)
		seq40[i] = (uint8_t)i;
	memset(ff, 0xff, sizeof(ff));
	static const char hello[] = "hello";
	struct {
		const void *d;
		uint32_t len;
		uint64_t seed, want;
	} rows[] = {
		{ "", 0, 0, 0xf52a15e9a9b5e89bull },
		{ "", 0, 1, 0x7f555c6a530fdf81ull },
		{ "a", 1, 0, 0x02c0bdbf481420f8ull },
		{ hello, 5, 1, 0xdc5c1efbdaa98d83ull },
		{ seq40, 40, 1, 0xd43c328e40636db8ull },
		{ ff, 1000, 0xdeadbeefcafef00dull, 0xca32077fce54db74ull },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t h = record_hash64(rows[i].d, rows[i].len,
					   rows[i].seed);
		if (h != rows[i].want)
			fail_msg("row %zu: %016llx want %016llx", i,
				 (unsigned long long)h,
				 (unsigned long long)rows[i].want);
	}
	/* one bit of input or seed changes about half the output bits */
	unsigned total = 0, n = 0;
	for (int i = 0; i < 40; i++) {
		for (int bit = 0; bit < 8; bit++) {
			uint8_t x[40];
			memcpy(x, seq40, 40);
			x[i] ^= (uint8_t)(1u << bit);
			total += (unsigned)__builtin_popcountll(
				record_hash64(x, 40, 1) ^
				record_hash64(seq40, 40, 1));
			n++;
		}
	}
	assert_true(total / n >= 24 && total / n <= 40);
	assert_true(record_hash64(seq40, 40, 1) !=
		    record_hash64(seq40, 40, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_each_byte),
		cmocka_unit_test(test_roundtrip_reader),
		cmocka_unit_test(test_roundtrip_python),
		cmocka_unit_test(test_json_str_limits),
		cmocka_unit_test(test_record_buf_overflow),
		cmocka_unit_test(test_record_buf_chain),
		cmocka_unit_test(test_hash64_stable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
