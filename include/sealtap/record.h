/* Record encoding helpers: JSON text built without a general-heap
 * allocation per record.
 *
 * Strings are written as JSON strings byte for byte: printable ASCII as is
 * (quote and backslash escaped), every other byte as \u00XX. Header values
 * are octets, not text, so this keeps every byte recoverable (decode the
 * JSON string and encode it as Latin-1 to get the original bytes) and the
 * output is always valid UTF-8 JSON. The record schema is docs/records.md.
 */
#ifndef SEALTAP_RECORD_H
#define SEALTAP_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "sealtap/bpool.h"

#define RECORD_SCHEMA_VERSION 1

/* Writes |len| bytes of |s| JSON-escaped (the escaping above, no quotes)
 * to |out|, which has room for 6 * |len| bytes; returns the length. */
uint32_t record_json_escape(const uint8_t *s, uint32_t len, char *out);

/* Appends |s| (|len| bytes) as a JSON string, quotes included. False if
 * the chain's cap or the pool stopped it (the chain then holds a prefix:
 * the caller marks the record incomplete). */
bool record_json_str(struct bpool *p, struct bchain *c, const uint8_t *s,
		     uint32_t len);

/* Appends {"redacted":<len>}: what a record holds in place of a value it
 * must not show. False if the chain's cap or the pool stopped it. */
bool record_json_redacted(struct bpool *p, struct bchain *c, size_t len);

/* A bounded output buffer for assembling one record. */
struct record_buf {
	char *p;
	uint32_t len, cap;
	bool overflow; /* something did not fit; contents are cut */
};

void record_buf_puts(struct record_buf *b, const char *s);
void record_buf_put(struct record_buf *b, const void *s, uint32_t len);
void record_buf_printf(struct record_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Decimal and fixed-width hex numbers, without printf (records are built
 * on the packet path). */
void record_buf_u64(struct record_buf *b, uint64_t v);
void record_buf_hex64(struct record_buf *b, uint64_t v);
/* JSON string from bytes (same escaping as record_json_str). */
void record_buf_str(struct record_buf *b, const uint8_t *s, uint32_t len);
/* Copies a chain's bytes in. */
void record_buf_chain(struct record_buf *b, const struct bchain *c);

/* 64-bit hash for record ids (stable across runs and machines). */
uint64_t record_hash64(const void *data, uint32_t len, uint64_t seed);

#endif
