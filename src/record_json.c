/* JSON encoding helpers for records. See record.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sealtap/record.h"

uint32_t record_json_escape(const uint8_t *s, uint32_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t n = 0;
	for (uint32_t i = 0; i < len; i++) {
		uint8_t ch = s[i];
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch >= 0x20 && ch < 0x7f) {
			out[n++] = (char)ch;
		} else {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[ch >> 4];
			out[n + 5] = hex[ch & 15];
			n += 6;
		}
	}
	return n;
}

bool record_json_str(struct bpool *p, struct bchain *c, const uint8_t *s,
		     uint32_t len)
{
	char tmp[6 * 256];
	if (!bchain_append(p, c, "\"", 1))
		return false;
	while (len) {
		uint32_t k = len > 256 ? 256 : len;
		if (!bchain_append(p, c, tmp, record_json_escape(s, k, tmp)))
			return false;
		s += k;
		len -= k;
	}
	return bchain_append(p, c, "\"", 1);
}

bool record_json_redacted(struct bpool *p, struct bchain *c, size_t len)
{
	char red[40];
	int k = snprintf(red, sizeof(red), "{\"redacted\":%zu}", len);
	return bchain_append(p, c, red, (uint32_t)k);
}

void record_buf_put(struct record_buf *b, const void *s, uint32_t len)
{
	if (len > b->cap - b->len) {
		len = b->cap - b->len;
		b->overflow = true;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
}

void record_buf_puts(struct record_buf *b, const char *s)
{
	record_buf_put(b, s, (uint32_t)strlen(s));
}

void record_buf_printf(struct record_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	uint32_t room = b->cap - b->len;
	int n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((uint32_t)n >= room) {
		b->overflow = true;
		b->len = b->cap;
		return;
	}
	b->len += (uint32_t)n;
}

void record_buf_u64(struct record_buf *b, uint64_t v)
{
	char tmp[20];
	unsigned n = 0;
	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	record_buf_put(b, tmp + sizeof(tmp) - n, n);
}

void record_buf_hex64(struct record_buf *b, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	for (int i = 15; i >= 0; i--, v >>= 4)
		tmp[i] = hex[v & 15];
	record_buf_put(b, tmp, 16);
}

void record_buf_str(struct record_buf *b, const uint8_t *s, uint32_t len)
{
	char tmp[6 * 256];
	record_buf_put(b, "\"", 1);
	while (len) {
		uint32_t k = len > 256 ? 256 : len;
		record_buf_put(b, tmp, record_json_escape(s, k, tmp));
		s += k;
		len -= k;
	}
	record_buf_put(b, "\"", 1);
}

void record_buf_chain(struct record_buf *b, const struct bchain *c)
{
	for (const struct bblock *k = c->head; k; k = k->next)
		record_buf_put(b, k->data, k->used);
}

uint64_t record_hash64(const void *data, uint32_t len, uint64_t seed)
{
	/* FNV-1a over the bytes, then a 64-bit finaliser (splitmix64) so
	 * nearby inputs spread over all bits. */
	const uint8_t *s = data;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (uint32_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}
