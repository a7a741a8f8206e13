/* HTTP/2 frame headers (RFC 9113 §4.1, §6): parsing, per-type rules and the
 * plausibility test used to find frame boundaries in a stream joined
 * mid-way or after a gap. Pure functions on bytes. */
#ifndef SEALTAP_H2_FRAME_H
#define SEALTAP_H2_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define H2_FRAME_HEADER_LEN 9
#define H2_DEFAULT_MAX_FRAME 16384u
#define H2_MAX_FRAME_LIMIT 16777215u /* RFC 9113 §6.5.2 */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

enum h2_frame_type {
	H2_DATA = 0,
	H2_HEADERS = 1,
	H2_PRIORITY = 2,
	H2_RST_STREAM = 3,
	H2_SETTINGS = 4,
	H2_PUSH_PROMISE = 5,
	H2_PING = 6,
	H2_GOAWAY = 7,
	H2_WINDOW_UPDATE = 8,
	H2_CONTINUATION = 9,
	H2_FRAME_TYPE_MAX = 9,
};

#define H2_FLAG_END_STREAM 0x01
#define H2_FLAG_ACK 0x01
#define H2_FLAG_END_HEADERS 0x04
#define H2_FLAG_PADDED 0x08
#define H2_FLAG_PRIORITY 0x20

/* SETTINGS identifiers (RFC 9113 §6.5.2). */
#define H2_SETTINGS_HEADER_TABLE_SIZE 0x1
#define H2_SETTINGS_MAX_FRAME_SIZE 0x5

struct h2_frame_hdr {
	uint32_t length;
	uint8_t type;
	uint8_t flags;
	uint32_t stream_id; /* reserved bit cleared */
	uint8_t reserved;   /* the reserved bit as sent */
};

static inline void h2_frame_hdr_parse(const uint8_t *p, struct h2_frame_hdr *h)
{
	h->length = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
	h->type = p[3];
	h->flags = p[4];
	h->reserved = p[5] >> 7;
	h->stream_id = ((uint32_t)(p[5] & 0x7f) << 24) | ((uint32_t)p[6] << 16) |
		       ((uint32_t)p[7] << 8) | p[8];
}

const char *h2_frame_type_name(uint8_t type);

/* Checks the per-type rules of RFC 9113 §6 that a frame header alone can
 * violate: stream id zero or non-zero, fixed payload lengths, SETTINGS ACK
 * with payload, length over |max_frame|. Returns NULL if it is well formed,
 * else a static reason (e.g. "RST_STREAM length != 4"). Unknown types are
 * well formed (they are ignored, §5.5). */
const char *h2_frame_check(const struct h2_frame_hdr *h, uint32_t max_frame);

/* Who sent the bytes being scanned, for stream-id parity checks. */
enum h2_sender {
	H2_SENDER_UNKNOWN = 0,
	H2_SENDER_CLIENT = 1,
	H2_SENDER_SERVER = 2,
};

/* Stricter than h2_frame_check: is this a header we would bet a resync on?
 * Known type only, only flags defined for the type, reserved bit clear,
 * length <= |max_frame|, stream-id parity consistent with |sender|
 * (client-sent HEADERS/DATA/PRIORITY/RST on odd streams; PUSH_PROMISE only
 * from servers). */
int h2_frame_plausible(const struct h2_frame_hdr *h, uint32_t max_frame,
		       enum h2_sender sender);

/* Looks in |buf| (|len| bytes) for the first offset at which |need| frame
 * headers in a row are plausible, each starting where the previous frame
 * ends. Returns the offset, or -2 if no chain is complete but some
 * candidate needs more bytes (then *|more_from| is the earliest such
 * candidate: everything before it can be discarded), or -1 if no offset can
 * start a chain (*|more_from| = where the unexamined tail begins). */
long h2_frame_find_boundary(const uint8_t *buf, size_t len, uint32_t max_frame,
			    enum h2_sender sender, unsigned need,
			    size_t *more_from);

#endif
