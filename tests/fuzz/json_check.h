/* A strict little JSON validator for fuzz targets: every record the
 * HTTP/2 analyzer writes must be one valid JSON object followed by "\n".
 * Recursive descent over the RFC 8259 grammar; depth bounded. */
#ifndef SEALTAP_FUZZ_JSON_CHECK_H
#define SEALTAP_FUZZ_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct jc {
	const char *p, *end;
	int depth;
};

static bool jc_value(struct jc *c);

static void jc_ws(struct jc *c)
{
	while (c->p < c->end &&
	       (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool jc_lit(struct jc *c, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n))
		return false;
	c->p += n;
	return true;
}

static bool jc_string(struct jc *c)
{
	if (c->p >= c->end || *c->p != '"')
		return false;
	c->p++;
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p++;
		if (ch == '"')
			return true;
		if (ch < 0x20 || ch >= 0x80) /* we only ever emit ASCII */
			return false;
		if (ch == '\\') {
			if (c->p >= c->end)
				return false;
			char e = *c->p++;
			if (e == 'u') {
				for (int i = 0; i < 4; i++) {
					if (c->p >= c->end)
						return false;
					char h = *c->p++;
					if (!((h >= '0' && h <= '9') ||
					      (h >= 'a' && h <= 'f') ||
					      (h >= 'A' && h <= 'F')))
						return false;
				}
			} else if (!strchr("\"\\/bfnrt", e)) {
				return false;
			}
		}
	}
	return false;
}

static bool jc_number(struct jc *c)
{
	const char *s = c->p;
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return false;
	if (*c->p == '0') {
		c->p++;
	} else if (*c->p >= '1' && *c->p <= '9') {
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	} else {
		return false;
	}
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		const char *d = c->p;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
		if (c->p == d)
			return false;
	}
	return c->p > s;
}

static bool jc_container(struct jc *c, char open, char close, bool object)
{
	if (++c->depth > 64)
		return false;
	c->p++; /* open */
	(void)open;
	jc_ws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		c->depth--;
		return true;
	}
	for (;;) {
		jc_ws(c);
		if (object) {
			if (!jc_string(c))
				return false;
			jc_ws(c);
			if (c->p >= c->end || *c->p++ != ':')
				return false;
			jc_ws(c);
		}
		if (!jc_value(c))
			return false;
		jc_ws(c);
		if (c->p >= c->end)
			return false;
		char ch = *c->p++;
		if (ch == close) {
			c->depth--;
			return true;
		}
		if (ch != ',')
			return false;
	}
}

static bool jc_value(struct jc *c)
{
	if (c->p >= c->end)
		return false;
	switch (*c->p) {
	case '{': return jc_container(c, '{', '}', true);
	case '[': return jc_container(c, '[', ']', false);
	case '"': return jc_string(c);
	case 't': return jc_lit(c, "true");
	case 'f': return jc_lit(c, "false");
	case 'n': return jc_lit(c, "null");
	default: return jc_number(c);
	}
}

/* True if |s| (|len| bytes) is exactly one JSON object and a newline. */
static inline bool json_record_ok(const char *s, size_t len)
{
	if (len < 3 || s[len - 1] != '\n' || s[0] != '{')
		return false;
	struct jc c = { s, s + len - 1, 0 };
	if (!jc_value(&c))
		return false;
	return c.p == c.end;
}

#endif
