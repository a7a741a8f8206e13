/* Tests for src/log.c: every line written is one valid JSON object with
 * ts, level, msg and the fields, in that order; strings are escaped;
 * levels filter; level names parse.
 *
 * Output goes to a pipe through log_set_fd(). Each line is checked by a
 * small strict JSON reader below (objects of string values are all log.c
 * writes), which also decodes the strings so they can be compared with
 * what was logged. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sealtap/common.h"
#include "sealtap/log.h"

/* ---- capture ---------------------------------------------------------- */

static int pipefd[2];

static int setup(void **state)
{
	(void)state;
	if (pipe(pipefd) != 0)
		return -1;
	/* Non-blocking read end: "nothing logged" reads as empty. */
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	log_set_fd(pipefd[1]);
	log_set_level(LOG_LEVEL_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_fd(2);
	log_set_level(LOG_LEVEL_INFO);
	close(pipefd[0]);
	close(pipefd[1]);
	return 0;
}

/* Everything written since the last call, NUL-terminated. */
static char out[65536];

static const char *drain(void)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = read(pipefd[0], out + n, sizeof(out) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	return out;
}

/* ---- a strict reader for one line of JSON ----------------------------- */

#define MAX_FIELDS 16

/* Strings are decoded to code points; log.c only writes \u00XX, so each
 * fits a byte and the decoded text compares with the logged bytes. */
struct jline {
	unsigned n;
	char key[MAX_FIELDS][4096];
	char val[MAX_FIELDS][4096];
	size_t vlen[MAX_FIELDS];
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 8259 §7: a string is quoted, control characters must be escaped and
 * only the listed escapes exist. log.c also escapes every byte >= 0x7f, so
 * the line must be plain printable ASCII. Returns the end or NULL. */
static const char *read_string(const char *p, char *dst, size_t cap,
			       size_t *len)
{
	size_t n = 0;
	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*p++;
		unsigned v;
		if (c == '"')
			break;
		if (c < 0x20 || c >= 0x7f)
			return NULL;
		if (c == '\\') {
			char e = *p++;
			switch (e) {
			case '"': v = '"'; break;
			case '\\': v = '\\'; break;
			case '/': v = '/'; break;
			case 'b': v = '\b'; break;
			case 'f': v = '\f'; break;
			case 'n': v = '\n'; break;
			case 'r': v = '\r'; break;
			case 't': v = '\t'; break;
			case 'u':
				v = 0;
				for (int i = 0; i < 4; i++) {
					int h = hexval(*p++);
					if (h < 0)
						return NULL;
					v = v * 16 + (unsigned)h;
				}
				if (v > 0xff) /* log.c never writes these */
					return NULL;
				break;
			default:
				return NULL;
			}
		} else {
			v = c;
		}
		if (n + 1 >= cap)
			return NULL;
		dst[n++] = (char)v;
	}
	dst[n] = '\0';
	*len = n;
	return p;
}

/* Parses |line| (up to and including its '\n') as a flat object of
 * strings. Returns the position after the '\n', or NULL if invalid. */
static const char *read_line(const char *p, struct jline *j)
{
	size_t klen;
	memset(j, 0, sizeof(*j));
	if (*p++ != '{')
		return NULL;
	for (;;) {
		if (j->n == MAX_FIELDS)
			return NULL;
		p = read_string(p, j->key[j->n], sizeof(j->key[0]), &klen);
		if (!p || *p++ != ':')
			return NULL;
		p = read_string(p, j->val[j->n], sizeof(j->val[0]),
				&j->vlen[j->n]);
		if (!p)
			return NULL;
		j->n++;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p++ != '}')
			return NULL;
		break;
	}
	if (*p++ != '\n')
		return NULL;
	return p;
}

/* Exactly one valid line in the output; returns it parsed. */
static void one_line(struct jline *j)
{
	const char *s = drain();
	const char *end = read_line(s, j);
	if (!end)
		print_error("not one valid JSON line: %s\n", s);
	assert_non_null(end);
	assert_int_equal(*end, '\0');
	assert_non_null(strchr(s, '\n'));
	assert_ptr_equal(strchr(s, '\n') + 1, end);
}

/* ts, level, msg in that order, then the fields. */
static void check_head(const struct jline *j, const char *level,
		       const char *msg)
{
	assert_true(j->n >= 3);
	assert_string_equal(j->key[0], "ts");
	assert_string_equal(j->key[1], "level");
	assert_string_equal(j->key[2], "msg");
	assert_string_equal(j->val[1], level);
	assert_string_equal(j->val[2], msg);

	/* "2026-11-23T01:02:03.456Z": RFC 3339 UTC with milliseconds. */
	const char *t = j->val[0];
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	assert_int_equal(strlen(t), strlen(shape));
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd')
			assert_true(t[i] >= '0' && t[i] <= '9');
		else
			assert_int_equal(t[i], shape[i]);
	}
}

/* ---- tests ------------------------------------------------------------ */

static void test_msg(void **state)
{
	(void)state;
	struct jline j;
	log_msg(LOG_LEVEL_INFO, "started %d workers on %s", 4, "port0");
	one_line(&j);
	check_head(&j, "info", "started 4 workers on port0");
	assert_int_equal(j.n, 3);

	LOG_WARN("ring %s", "full");
	one_line(&j);
	check_head(&j, "warn", "ring full");

	LOG_ERROR("x");
	one_line(&j);
	check_head(&j, "error", "x");

	LOG_DEBUG("%s", "");
	one_line(&j);
	check_head(&j, "debug", "");
}

static void test_kv(void **state)
{
	(void)state;
	struct jline j;
	log_kv(LOG_LEVEL_INFO, "flow table full", "worker", "1", "flows",
	       "262144", NULL);
	one_line(&j);
	check_head(&j, "info", "flow table full");
	assert_int_equal(j.n, 5);
	assert_string_equal(j.key[3], "worker");
	assert_string_equal(j.val[3], "1");
	assert_string_equal(j.key[4], "flows");
	assert_string_equal(j.val[4], "262144");

	/* No fields; a NULL value is written as an empty string. */
	log_kv(LOG_LEVEL_WARN, "plain", NULL);
	one_line(&j);
	check_head(&j, "warn", "plain");
	assert_int_equal(j.n, 3);

	log_kv(LOG_LEVEL_ERROR, "m", "k", (const char *)NULL, NULL);
	one_line(&j);
	assert_int_equal(j.n, 4);
	assert_string_equal(j.key[3], "k");
	assert_string_equal(j.val[3], "");
}

/* Quotes, backslashes, every control character, DEL and every high byte,
 * in messages, keys and values, come back byte for byte. */
static void test_escaping(void **state)
{
	(void)state;
	struct jline j;
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';

	log_kv(LOG_LEVEL_INFO, all, all, all, "path", "C:\\dir\\\"x\"",
	       NULL);
	one_line(&j);
	check_head(&j, "info", all);
	assert_int_equal(j.n, 5);
	assert_string_equal(j.key[3], all);
	assert_int_equal(j.vlen[3], 255);
	assert_memory_equal(j.val[3], all, 255);
	assert_string_equal(j.val[4], "C:\\dir\\\"x\"");

	/* The escapes themselves, not only that they decode. */
	log_msg(LOG_LEVEL_INFO, "a\"b\\c\nd\x01\x7f\xc3\xa9");
	const char *s = drain();
	assert_non_null(strstr(s, "\"msg\":\"a\\\"b\\\\c\\u000ad\\u0001"
				  "\\u007f\\u00c3\\u00a9\"}\n"));

	/* printf's % handling is not confused by escaping. */
	log_msg(LOG_LEVEL_INFO, "100%% \"%s\"", "q");
	one_line(&j);
	assert_string_equal(j.val[2], "100% \"q\"");
}

static void test_level_filter(void **state)
{
	(void)state;
	static const enum log_level lv[] = { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO,
					     LOG_LEVEL_WARN,
					     LOG_LEVEL_ERROR };
	for (int min = LOG_LEVEL_DEBUG; min <= LOG_LEVEL_OFF; min++) {
		log_set_level((enum log_level)min);
		assert_int_equal(log_get_level(), min);
		for (size_t i = 0; i < ST_ARRAY_SIZE(lv); i++) {
			log_msg(lv[i], "m");
			log_kv(lv[i], "k", "a", "b", NULL);
			const char *s = drain();
			if ((int)lv[i] < min) {
				assert_string_equal(s, "");
				continue;
			}
			/* Two lines: one per call. */
			struct jline j;
			const char *p = read_line(s, &j);
			assert_non_null(p);
			assert_string_equal(j.val[1], log_level_name(lv[i]));
			p = read_line(p, &j);
			assert_non_null(p);
			assert_int_equal(*p, '\0');
		}
	}
	/* OFF is a threshold, never a level to log at. */
	log_set_level(LOG_LEVEL_DEBUG);
	log_msg(LOG_LEVEL_OFF, "never");
	log_kv(LOG_LEVEL_OFF, "never", NULL);
	assert_string_equal(drain(), "");
}

static void test_level_names(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("info"), LOG_LEVEL_INFO);
	assert_int_equal(log_level_parse("warn"), LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("warning"), LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("error"), LOG_LEVEL_ERROR);
	assert_int_equal(log_level_parse("off"), LOG_LEVEL_OFF);
	assert_int_equal(log_level_parse("INFO"), LOG_LEVEL_INFO);
	assert_int_equal(log_level_parse("Error"), LOG_LEVEL_ERROR);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse("verbose"), -1);
	assert_int_equal(log_level_parse("info "), -1);
	assert_int_equal(log_level_parse("inf"), -1);

	for (int l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_OFF; l++)
		assert_int_equal(
			log_level_parse(log_level_name((enum log_level)l)), l);
	assert_string_equal(log_level_name((enum log_level)5), "?");
	assert_string_equal(log_level_name((enum log_level)-1), "?");
}

/* A long message or value is cut, but stays one line under 4KiB that ends
 * the object. */
static void test_long_line_bounded(void **state)
{
	(void)state;
	static char big[6000];
	memset(big, 'a', sizeof(big) - 1);
	log_kv(LOG_LEVEL_INFO, "long", "v", big, NULL);
	const char *s = drain();
	size_t n = strlen(s);
	assert_true(n <= 4096);
	assert_ptr_equal(strchr(s, '\n'), s + n - 1);
	assert_int_equal(s[n - 2], '}');

	log_msg(LOG_LEVEL_INFO, "%s", big);
	s = drain();
	n = strlen(s);
	assert_true(n <= 4096);
	assert_ptr_equal(strchr(s, '\n'), s + n - 1);
}

/* A line longer than the 4 KiB buffer is cut at a character boundary and
 * stays valid JSON. */
static void test_long_line_valid_json(void **state)
{
	(void)state;
	static char big[6000];
	struct jline j;
	memset(big, '"', sizeof(big) - 1);
	log_kv(LOG_LEVEL_INFO, "long", "v", big, NULL);
	one_line(&j);
	log_msg(LOG_LEVEL_INFO, "%s", big);
	one_line(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_msg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup,
						teardown),
		cmocka_unit_test(test_level_names),
		cmocka_unit_test_setup_teardown(test_long_line_bounded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_line_valid_json,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
