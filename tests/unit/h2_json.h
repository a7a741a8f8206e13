/* A small strict JSON reader for tests that check records: parses one
 * value into a tree (RFC 8259 grammar: no leading zeros, no trailing
 * commas, escapes checked), strings decoded to bytes (\u00XX -> byte XX,
 * so header values come back as the octets they were). Records are ASCII,
 * so any byte >= 0x80 or control byte in the text is an error.
 *
 * j_parse() returns NULL on any error; free with j_free(). */
#ifndef SEALTAP_TEST_H2_JSON_H
#define SEALTAP_TEST_H2_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum j_type { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum j_type t;
	bool b;
	bool is_int;
	long long i;
	double num;
	char *s; /* J_STR: bytes (NUL added), J_OBJ: unused */
	size_t slen;
	struct jv **items; /* J_ARR / J_OBJ values */
	char **keys;       /* J_OBJ keys */
	size_t n;
};

struct jp {
	const char *p, *end;
	int depth;
};

static inline void j_free(struct jv *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		j_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
	free(v);
}

static void jp_ws(struct jp *c)
{
	while (c->p < c->end &&
	       (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int jp_hex(char h)
{
	if (h >= '0' && h <= '9')
		return h - '0';
	if (h >= 'a' && h <= 'f')
		return h - 'a' + 10;
	if (h >= 'A' && h <= 'F')
		return h - 'A' + 10;
	return -1;
}

/* Decodes a string at c->p (opening quote) into |out|/|len|. Code points
 * above 0xff are written as UTF-8 (records never have them). */
static bool jp_string(struct jp *c, char **out, size_t *len)
{
	if (c->p >= c->end || *c->p != '"')
		return false;
	c->p++;
	size_t cap = 16, n = 0;
	char *s = malloc(cap);
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p++;
		unsigned cp;
		if (ch == '"') {
			s[n] = 0;
			*out = s;
			*len = n;
			return true;
		}
		if (ch < 0x20 || ch >= 0x80)
			goto bad;
		if (ch != '\\') {
			cp = ch;
		} else {
			if (c->p >= c->end)
				goto bad;
			char e = *c->p++;
			switch (e) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u':
				cp = 0;
				for (int k = 0; k < 4; k++) {
					if (c->p >= c->end)
						goto bad;
					int h = jp_hex(*c->p++);
					if (h < 0)
						goto bad;
					cp = cp << 4 | (unsigned)h;
				}
				break;
			default:
				goto bad;
			}
		}
		if (n + 4 >= cap) {
			cap *= 2;
			s = realloc(s, cap);
		}
		if (cp <= 0xff) {
			s[n++] = (char)cp;
		} else if (cp < 0x800) {
			s[n++] = (char)(0xc0 | cp >> 6);
			s[n++] = (char)(0x80 | (cp & 0x3f));
		} else {
			s[n++] = (char)(0xe0 | cp >> 12);
			s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			s[n++] = (char)(0x80 | (cp & 0x3f));
		}
	}
bad:
	free(s);
	return false;
}

static struct jv *jp_value(struct jp *c);

static struct jv *jv_new(enum j_type t)
{
	struct jv *v = calloc(1, sizeof(*v));
	v->t = t;
	return v;
}

static void jv_push(struct jv *v, char *key, struct jv *item)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
	if (v->t == J_OBJ) {
		v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
		v->keys[v->n] = key;
	}
	v->items[v->n++] = item;
}

static struct jv *jp_number(struct jp *c)
{
	const char *s = c->p;
	bool frac = false;
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return NULL;
	if (*c->p == '0') {
		c->p++;
	} else if (*c->p >= '1' && *c->p <= '9') {
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	} else {
		return NULL;
	}
	if (c->p < c->end && *c->p == '.') {
		frac = true;
		c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9')
			return NULL;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		frac = true;
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9')
			return NULL;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	char tmp[64];
	size_t l = (size_t)(c->p - s);
	if (l >= sizeof(tmp))
		l = sizeof(tmp) - 1;
	memcpy(tmp, s, l);
	tmp[l] = 0;
	struct jv *v = jv_new(J_NUM);
	v->num = strtod(tmp, NULL);
	v->is_int = !frac;
	if (!frac)
		v->i = strtoll(tmp, NULL, 10);
	return v;
}

static struct jv *jp_value(struct jp *c)
{
	jp_ws(c);
	if (c->p >= c->end || ++c->depth > 64)
		return NULL;
	struct jv *v = NULL;
	char ch = *c->p;
	if (ch == '{' || ch == '[') {
		bool obj = ch == '{';
		v = jv_new(obj ? J_OBJ : J_ARR);
		c->p++;
		jp_ws(c);
		if (c->p < c->end && *c->p == (obj ? '}' : ']')) {
			c->p++;
			c->depth--;
			return v;
		}
		for (;;) {
			char *key = NULL;
			if (obj) {
				size_t kl;
				jp_ws(c);
				if (!jp_string(c, &key, &kl))
					goto bad;
				jp_ws(c);
				if (c->p >= c->end || *c->p != ':') {
					free(key);
					goto bad;
				}
				c->p++;
			}
			struct jv *item = jp_value(c);
			if (!item) {
				free(key);
				goto bad;
			}
			jv_push(v, key, item);
			jp_ws(c);
			if (c->p < c->end && *c->p == ',') {
				c->p++;
				continue;
			}
			if (c->p < c->end && *c->p == (obj ? '}' : ']')) {
				c->p++;
				break;
			}
			goto bad;
		}
	} else if (ch == '"') {
		v = jv_new(J_STR);
		if (!jp_string(c, &v->s, &v->slen))
			goto bad;
	} else if (ch == 't' && c->end - c->p >= 4 && !memcmp(c->p, "true", 4)) {
		v = jv_new(J_BOOL);
		v->b = true;
		c->p += 4;
	} else if (ch == 'f' && c->end - c->p >= 5 &&
		   !memcmp(c->p, "false", 5)) {
		v = jv_new(J_BOOL);
		c->p += 5;
	} else if (ch == 'n' && c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) {
		v = jv_new(J_NULL);
		c->p += 4;
	} else {
		v = jp_number(c);
		if (!v)
			return NULL;
	}
	c->depth--;
	return v;
bad:
	j_free(v);
	return NULL;
}

/* Parses exactly one value (surrounding whitespace allowed). */
static inline struct jv *j_parse(const char *s, size_t len)
{
	struct jp c = { s, s + len, 0 };
	struct jv *v = jp_value(&c);
	if (!v)
		return NULL;
	jp_ws(&c);
	if (c.p != c.end) {
		j_free(v);
		return NULL;
	}
	return v;
}

/* Member |key| of object |v|, or NULL. */
static inline struct jv *j_get(const struct jv *v, const char *key)
{
	if (!v || v->t != J_OBJ)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->keys[i], key))
			return v->items[i];
	return NULL;
}

/* Follows "a.b.c" through objects. */
static inline struct jv *j_path(const struct jv *v, const char *path)
{
	char buf[128];
	strncpy(buf, path, sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	const struct jv *cur = v;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
		cur = j_get(cur, tok);
	return (struct jv *)cur;
}

static inline struct jv *j_at(const struct jv *v, size_t i)
{
	if (!v || (v->t != J_ARR && v->t != J_OBJ) || i >= v->n)
		return NULL;
	return v->items[i];
}

static inline bool j_is_str(const struct jv *v, const char *s)
{
	return v && v->t == J_STR && v->slen == strlen(s) &&
	       !memcmp(v->s, s, v->slen);
}

static inline bool j_is_null(const struct jv *v)
{
	return v && v->t == J_NULL;
}

#endif
