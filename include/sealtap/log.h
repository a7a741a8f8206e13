/* Structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-23T01:02:03.456Z","level":"info","msg":"...","k":"v"}
 *
 * Thread-safe (one write(2) per line). Messages and values are escaped as
 * JSON strings. Never log packet payloads or key material: callers pass
 * only metadata (counts, names, addresses). */
#ifndef SEALTAP_LOG_H
#define SEALTAP_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO = 1,
	LOG_LEVEL_WARN = 2,
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_OFF = 4,
};

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "debug" / "info" / "warn" / "error" / "off"; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level lvl);
/* Redirects output to |fd| (default 2), for tests. */
void log_set_fd(int fd);

/* Logs |msg| with key/value string pairs, terminated by NULL:
 *   log_kv(LOG_LEVEL_INFO, "flow table full", "worker", "1", NULL); */
void log_kv(enum log_level lvl, const char *msg, ...)
	__attribute__((sentinel));
/* printf-style message, no extra fields. */
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
