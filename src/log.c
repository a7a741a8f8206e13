/* JSON-lines logging to stderr. See log.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sealtap/log.h"

static enum log_level cur_level = LOG_LEVEL_INFO;
static int out_fd = 2;

static const char *const level_names[] = { "debug", "info", "warn", "error",
					   "off" };

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_set_fd(int fd)
{
	out_fd = fd;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_LEVEL_OFF; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return -1;
}

const char *log_level_name(enum log_level lvl)
{
	return (unsigned)lvl <= LOG_LEVEL_OFF ? level_names[lvl] : "?";
}

/* A line being built; long lines are cut, never overflowed, and always
 * stay valid JSON: strings are cut at a character boundary and closed. */
struct line {
	char buf[4096];
	size_t len;
};

/* Room kept at the end of every line for a closing quote and "}\n". */
#define LINE_RESERVE 3

/* Appends |n| bytes if they fit entirely; returns false otherwise. */
static bool put(struct line *l, const char *s, size_t n)
{
	if (l->len + n > sizeof(l->buf) - LINE_RESERVE)
		return false;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static void put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Appends |s| as a JSON string (quotes included). Control characters and
 * bytes >= 0x7f (which might not be UTF-8) are escaped as \u00XX. When the
 * line is full the string is cut before the escape that does not fit, and
 * still closed (the reserve guarantees room for the quote). */
static void put_json(struct line *l, const char *s)
{
	if (!put(l, "\"", 1))
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		size_t n;
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			n = 2;
		} else if (*p < 0x20 || *p >= 0x7f) {
			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
		} else {
			esc[0] = (char)*p;
			n = 1;
		}
		if (!put(l, esc, n))
			break;
	}
	l->buf[l->len++] = '"'; /* within LINE_RESERVE */
}

static void begin(struct line *l, enum log_level lvl, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char tbuf[64];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tbuf + n, sizeof(tbuf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	l->len = 0;
	put_str(l, "{\"ts\":\"");
	put_str(l, tbuf);
	put_str(l, "\",\"level\":\"");
	put_str(l, log_level_name(lvl));
	put_str(l, "\",\"msg\":");
	put_json(l, msg);
}

static void finish(struct line *l)
{
	if (l->len + 2 > sizeof(l->buf))
		l->len = sizeof(l->buf) - 2;
	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	ssize_t r = write(out_fd, l->buf, l->len);
	(void)r;
}

void log_kv(enum log_level lvl, const char *msg, ...)
{
	if (lvl < cur_level || lvl >= LOG_LEVEL_OFF)
		return;
	struct line l;
	begin(&l, lvl, msg);
	va_list ap;
	va_start(ap, msg);
	const char *k;
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		/* Leave room for the value's quotes, or drop the field. */
		if (l.len + strlen(k) + 8 > sizeof(l.buf) - LINE_RESERVE)
			break;
		put(&l, ",", 1);
		/* A caller's field never shadows one of ours: "ts" -> "_ts". */
		char renamed[16];
		if (!strcmp(k, "ts") || !strcmp(k, "level") || !strcmp(k, "msg")) {
			snprintf(renamed, sizeof(renamed), "_%s", k);
			k = renamed;
		}
		put_json(&l, k);
		put(&l, ":", 1);
		put_json(&l, v ? v : "");
	}
	va_end(ap);
	finish(&l);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl < cur_level || lvl >= LOG_LEVEL_OFF)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct line l;
	begin(&l, lvl, msg);
	finish(&l);
}
