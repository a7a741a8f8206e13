/* Tests for src/h2_frame.c (h2_frame.h): header parsing, the per-type rules
 * of RFC 9113 §6, the plausibility test used for resync and the boundary
 * search.
 *
 * Tables: each row of a rule table is a frame header (type, flags, stream,
 * length, max frame size) and the expected outcome (NULL or a substring of
 * the reason). The boundary search is run on built buffers with the
 * expected offset and more_from, and on random buffers for the false
 * positive rate (H2_FRAME_RANDOM_BUFFERS overrides how many).
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

#include "sealtap/h2_frame.h"

#define MAXF H2_DEFAULT_MAX_FRAME

/* Writes a 9-byte frame header (RFC 9113 §4.1) at |p|; returns 9. */
static size_t put_hdr(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags,
		      uint32_t sid)
{
	p[0] = (uint8_t)(len >> 16);
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	p[3] = type;
	p[4] = flags;
	p[5] = (uint8_t)(sid >> 24);
	p[6] = (uint8_t)(sid >> 16);
	p[7] = (uint8_t)(sid >> 8);
	p[8] = (uint8_t)sid;
	return H2_FRAME_HEADER_LEN;
}

/* Appends a whole frame with a payload of |len| bytes of |fill|. */
static size_t put_frame(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags,
			uint32_t sid, uint8_t fill)
{
	size_t n = put_hdr(p, len, type, flags, sid);
	memset(p + n, fill, len);
	return n + len;
}

/* ---- h2_frame_hdr_parse --------------------------------------------- */

static void test_hdr_parse(void **state)
{
	(void)state;
	static const struct {
		uint8_t b[9];
		struct h2_frame_hdr want;
	} rows[] = {
		{ { 0, 0, 0, 0, 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0 } },
		{ { 0, 0, 8, 6, 1, 0, 0, 0, 0 }, { 8, 6, 1, 0, 0 } },
		{ { 0x12, 0x34, 0x56, 1, 0x25, 0x00, 0x00, 0x00, 0x03 },
		  { 0x123456, 1, 0x25, 3, 0 } },
		/* reserved bit set: cleared from the id, reported apart */
		{ { 0, 0, 4, 3, 0, 0x80, 0, 0, 1 }, { 4, 3, 0, 1, 1 } },
		{ { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
		  { 0xffffff, 0xff, 0xff, 0x7fffffff, 1 } },
		{ { 0, 0x40, 0, 9, 4, 0x7f, 0xff, 0xff, 0xff },
		  { 0x4000, 9, 4, 0x7fffffff, 0 } },
		{ { 0, 0, 0, 0x0a, 0, 0x01, 0x02, 0x03, 0x04 },
		  { 0, 0x0a, 0, 0x01020304, 0 } },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct h2_frame_hdr h;
		memset(&h, 0xaa, sizeof(h));
		h2_frame_hdr_parse(rows[i].b, &h);
		if (h.length != rows[i].want.length ||
		    h.type != rows[i].want.type ||
		    h.flags != rows[i].want.flags ||
		    h.stream_id != rows[i].want.stream_id ||
		    h.reserved != rows[i].want.reserved)
			fail_msg("row %zu: got len %u type %u flags %#x sid %u "
				 "r %u",
				 i, h.length, h.type, h.flags, h.stream_id,
				 h.reserved);
		/* put_hdr is the inverse for ids without the reserved bit */
		uint8_t b[9];
		put_hdr(b, h.length, h.type, h.flags,
			h.stream_id | ((uint32_t)h.reserved << 31));
		assert_memory_equal(b, rows[i].b, 9);
	}
}

static void test_type_name(void **state)
{
	(void)state;
	static const char *const want[] = {
		"DATA",	    "HEADERS", "PRIORITY", "RST_STREAM",
		"SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
		"WINDOW_UPDATE", "CONTINUATION",
	};
	for (unsigned t = 0; t <= H2_FRAME_TYPE_MAX; t++)
		assert_string_equal(h2_frame_type_name((uint8_t)t), want[t]);
	assert_string_equal(h2_frame_type_name(10), "UNKNOWN");
	assert_string_equal(h2_frame_type_name(0xff), "UNKNOWN");
}

/* ---- h2_frame_check ------------------------------------------------- */

struct check_row {
	uint8_t type, flags;
	uint32_t sid, len, max;
	const char *want; /* NULL: well formed; else substring of the reason */
};

#define PAD H2_FLAG_PADDED
#define PRI H2_FLAG_PRIORITY
#define ES H2_FLAG_END_STREAM
#define EH H2_FLAG_END_HEADERS
#define ACK H2_FLAG_ACK

static const struct check_row check_rows[] = {
	/* DATA (§6.1) */
	{ H2_DATA, 0, 1, 0, MAXF, NULL },
	{ H2_DATA, ES, 1, 100, MAXF, NULL },
	{ H2_DATA, 0, 0, 10, MAXF, "stream 0" },
	{ H2_DATA, PAD, 1, 0, MAXF, "PADDED frame without pad length" },
	{ H2_DATA, PAD, 1, 1, MAXF, NULL },
	{ H2_DATA, 0, 1, MAXF, MAXF, NULL },
	{ H2_DATA, 0, 1, MAXF + 1, MAXF, "longer" },
	{ H2_DATA, 0, 1, MAXF + 1, MAXF + 1, NULL },
	{ H2_DATA, 0, 1, H2_MAX_FRAME_LIMIT, H2_MAX_FRAME_LIMIT, NULL },
	/* HEADERS (§6.2) */
	{ H2_HEADERS, EH, 1, 10, MAXF, NULL },
	{ H2_HEADERS, EH, 0, 10, MAXF, "stream 0" },
	{ H2_HEADERS, PAD | EH, 3, 0, MAXF, "PADDED frame without pad" },
	{ H2_HEADERS, PAD | EH, 3, 1, MAXF, NULL },
	{ H2_HEADERS, PRI | EH, 3, 5, MAXF, NULL },
	{ H2_HEADERS, 0, 3, MAXF + 1, MAXF, "longer" },
	/* PRIORITY (§6.3) */
	{ H2_PRIORITY, 0, 1, 5, MAXF, NULL },
	{ H2_PRIORITY, 0, 0, 5, MAXF, "PRIORITY on stream 0" },
	{ H2_PRIORITY, 0, 1, 4, MAXF, "PRIORITY length != 5" },
	{ H2_PRIORITY, 0, 1, 6, MAXF, "PRIORITY length != 5" },
	{ H2_PRIORITY, 0, 1, 0, MAXF, "PRIORITY length != 5" },
	/* RST_STREAM (§6.4) */
	{ H2_RST_STREAM, 0, 1, 4, MAXF, NULL },
	{ H2_RST_STREAM, 0, 0, 4, MAXF, "RST_STREAM on stream 0" },
	{ H2_RST_STREAM, 0, 1, 3, MAXF, "RST_STREAM length != 4" },
	{ H2_RST_STREAM, 0, 1, 8, MAXF, "RST_STREAM length != 4" },
	/* SETTINGS (§6.5) */
	{ H2_SETTINGS, 0, 0, 0, MAXF, NULL },
	{ H2_SETTINGS, 0, 0, 18, MAXF, NULL },
	{ H2_SETTINGS, ACK, 0, 0, MAXF, NULL },
	{ H2_SETTINGS, 0, 1, 0, MAXF, "SETTINGS on a stream" },
	{ H2_SETTINGS, ACK, 0, 6, MAXF, "SETTINGS ACK with payload" },
	{ H2_SETTINGS, 0, 0, 5, MAXF, "multiple of 6" },
	{ H2_SETTINGS, 0, 0, 7, MAXF, "multiple of 6" },
	{ H2_SETTINGS, 0, 0, 13, MAXF, "multiple of 6" },
	/* PUSH_PROMISE (§6.6) */
	{ H2_PUSH_PROMISE, EH, 1, 4, MAXF, NULL },
	{ H2_PUSH_PROMISE, EH, 0, 8, MAXF, "PUSH_PROMISE on stream 0" },
	{ H2_PUSH_PROMISE, EH, 1, 3, MAXF, "PUSH_PROMISE too short" },
	{ H2_PUSH_PROMISE, EH, 1, 0, MAXF, "PUSH_PROMISE too short" },
	{ H2_PUSH_PROMISE, PAD | EH, 1, 4, MAXF, "PUSH_PROMISE too short" },
	{ H2_PUSH_PROMISE, PAD | EH, 1, 5, MAXF, NULL },
	/* PING (§6.7) */
	{ H2_PING, 0, 0, 8, MAXF, NULL },
	{ H2_PING, ACK, 0, 8, MAXF, NULL },
	{ H2_PING, 0, 1, 8, MAXF, "PING on a stream" },
	{ H2_PING, 0, 0, 7, MAXF, "PING length != 8" },
	{ H2_PING, 0, 0, 9, MAXF, "PING length != 8" },
	{ H2_PING, 0, 0, 0, MAXF, "PING length != 8" },
	/* GOAWAY (§6.8) */
	{ H2_GOAWAY, 0, 0, 8, MAXF, NULL },
	{ H2_GOAWAY, 0, 0, 100, MAXF, NULL },
	{ H2_GOAWAY, 0, 5, 8, MAXF, "GOAWAY on a stream" },
	{ H2_GOAWAY, 0, 0, 7, MAXF, "GOAWAY too short" },
	{ H2_GOAWAY, 0, 0, 0, MAXF, "GOAWAY too short" },
	/* WINDOW_UPDATE (§6.9): both stream 0 and streams */
	{ H2_WINDOW_UPDATE, 0, 0, 4, MAXF, NULL },
	{ H2_WINDOW_UPDATE, 0, 7, 4, MAXF, NULL },
	{ H2_WINDOW_UPDATE, 0, 0, 3, MAXF, "WINDOW_UPDATE length != 4" },
	{ H2_WINDOW_UPDATE, 0, 7, 5, MAXF, "WINDOW_UPDATE length != 4" },
	/* CONTINUATION (§6.10) */
	{ H2_CONTINUATION, EH, 1, 0, MAXF, NULL },
	{ H2_CONTINUATION, EH, 1, 100, MAXF, NULL },
	{ H2_CONTINUATION, EH, 0, 10, MAXF, "stream 0" },
	/* PADDED means nothing on CONTINUATION: no pad length required */
	{ H2_CONTINUATION, PAD, 1, 0, MAXF, NULL },
	/* unknown types are ignored (§5.5): well formed whatever they say */
	{ 10, 0xff, 0, 0, MAXF, NULL },
	{ 0xfe, 0, 12345, 777, MAXF, NULL },
	{ 0xff, 0xff, 0x7fffffff, MAXF, MAXF, NULL },
	/* ... but the frame size limit applies to every frame (§4.2) */
	{ 10, 0, 0, MAXF + 1, MAXF, "longer" },
	{ H2_PING, 0, 0, MAXF + 1, MAXF, "longer" },
	{ H2_SETTINGS, 0, 0, 0x7fff8, MAXF, "longer" },
};

static void test_check_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(check_rows) / sizeof(check_rows[0]);
	     i++) {
		const struct check_row *r = &check_rows[i];
		struct h2_frame_hdr h = { .length = r->len,
					  .type = r->type,
					  .flags = r->flags,
					  .stream_id = r->sid };
		const char *got = h2_frame_check(&h, r->max);
		if (!r->want && got)
			fail_msg("row %zu (%s len %u sid %u flags %#x): "
				 "rejected: %s",
				 i, h2_frame_type_name(r->type), r->len, r->sid,
				 r->flags, got);
		if (r->want && (!got || !strstr(got, r->want)))
			fail_msg("row %zu (%s len %u sid %u flags %#x): got "
				 "\"%s\", want \"%s\"",
				 i, h2_frame_type_name(r->type), r->len, r->sid,
				 r->flags, got ? got : "(null)", r->want);
	}
}

/* Every known type: stream-0 rule in both directions, exhaustively. */
static void test_check_stream_zero_rule(void **state)
{
	(void)state;
	/* length that satisfies each type's length rule */
	static const uint32_t ok_len[] = { 1, 1, 5, 4, 0, 4, 8, 8, 4, 0 };
	/* 1: must be non-zero, 0: must be zero, 2: either */
	static const int needs[] = { 1, 1, 1, 1, 0, 1, 0, 0, 2, 1 };
	for (unsigned t = 0; t <= H2_FRAME_TYPE_MAX; t++) {
		for (uint32_t sid = 0; sid < 4; sid++) {
			struct h2_frame_hdr h = { .length = ok_len[t],
						  .type = (uint8_t)t,
						  .stream_id = sid };
			bool ok = needs[t] == 2 || (needs[t] == 1) == (sid != 0);
			const char *got = h2_frame_check(&h, MAXF);
			if (ok != (got == NULL))
				fail_msg("%s on stream %u: %s",
					 h2_frame_type_name((uint8_t)t), sid,
					 got ? got : "accepted");
		}
	}
}

/* ---- h2_frame_plausible --------------------------------------------- */

struct plaus_row {
	uint8_t type, flags, reserved;
	uint32_t sid, len;
	int client, server, unknown; /* expected per sender */
};

static const struct plaus_row plaus_rows[] = {
	/* client streams are odd; a client never pushes */
	{ H2_HEADERS, EH, 0, 1, 10, 1, 1, 1 },
	{ H2_HEADERS, EH, 0, 2, 10, 0, 1, 1 },
	{ H2_DATA, ES, 0, 1, 10, 1, 1, 1 },
	{ H2_DATA, ES, 0, 2, 10, 0, 1, 1 },
	{ H2_DATA, 0, 0, 4, 10, 0, 1, 1 },
	{ H2_PUSH_PROMISE, EH, 0, 1, 8, 0, 1, 1 },
	{ H2_PUSH_PROMISE, EH, 0, 3, 8, 0, 1, 1 },
	/* a server pushes only on client (odd) streams */
	{ H2_PUSH_PROMISE, EH, 0, 2, 8, 0, 0, 1 },
	/* PRIORITY, RST, WINDOW_UPDATE, CONTINUATION: no parity rule */
	{ H2_PRIORITY, 0, 0, 2, 5, 1, 1, 1 },
	{ H2_RST_STREAM, 0, 0, 2, 4, 1, 1, 1 },
	{ H2_RST_STREAM, 0, 0, 1, 4, 1, 1, 1 },
	{ H2_WINDOW_UPDATE, 0, 0, 2, 4, 1, 1, 1 },
	{ H2_CONTINUATION, EH, 0, 2, 4, 1, 1, 1 },
	{ H2_SETTINGS, 0, 0, 0, 12, 1, 1, 1 },
	{ H2_SETTINGS, ACK, 0, 0, 0, 1, 1, 1 },
	{ H2_PING, ACK, 0, 0, 8, 1, 1, 1 },
	{ H2_GOAWAY, 0, 0, 0, 8, 1, 1, 1 },
	/* empty DATA without END_STREAM: legal, never sent */
	{ H2_DATA, 0, 0, 1, 0, 0, 0, 0 },
	{ H2_DATA, PAD, 0, 1, 1, 1, 1, 1 },
	{ H2_DATA, ES, 0, 1, 0, 1, 1, 1 },
	/* reserved bit set */
	{ H2_DATA, ES, 1, 1, 10, 0, 0, 0 },
	{ H2_SETTINGS, 0, 1, 0, 0, 0, 0, 0 },
	/* unknown types are never a resync point */
	{ 10, 0, 0, 1, 10, 0, 0, 0 },
	{ 0xff, 0, 0, 0, 0, 0, 0, 0 },
	/* rule violations (h2_frame_check) */
	{ H2_PING, 0, 0, 0, 7, 0, 0, 0 },
	{ H2_SETTINGS, 0, 0, 1, 0, 0, 0, 0 },
	{ H2_HEADERS, EH, 0, 0, 1, 0, 0, 0 },
	{ H2_DATA, 0, 0, 1, MAXF + 1, 0, 0, 0 },
};

static void test_plausible_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plaus_rows) / sizeof(plaus_rows[0]);
	     i++) {
		const struct plaus_row *r = &plaus_rows[i];
		struct h2_frame_hdr h = { .length = r->len,
					  .type = r->type,
					  .flags = r->flags,
					  .stream_id = r->sid,
					  .reserved = r->reserved };
		int got[3] = {
			h2_frame_plausible(&h, MAXF, H2_SENDER_CLIENT),
			h2_frame_plausible(&h, MAXF, H2_SENDER_SERVER),
			h2_frame_plausible(&h, MAXF, H2_SENDER_UNKNOWN),
		};
		int want[3] = { r->client, r->server, r->unknown };
		for (int k = 0; k < 3; k++)
			if (!!got[k] != want[k])
				fail_msg("row %zu (%s flags %#x sid %u len %u) "
					 "sender %s: got %d",
					 i, h2_frame_type_name(r->type),
					 r->flags, r->sid, r->len,
					 k == 0 ? "client"
					 : k == 1 ? "server" : "unknown",
					 got[k]);
	}
}

/* Exhaustive over flags: exactly the flags RFC 9113 defines per type. */
static void test_plausible_flags(void **state)
{
	(void)state;
	static const uint8_t defined[] = {
		[H2_DATA] = ES | PAD,
		[H2_HEADERS] = ES | EH | PAD | PRI,
		[H2_PRIORITY] = 0,
		[H2_RST_STREAM] = 0,
		[H2_SETTINGS] = ACK,
		[H2_PUSH_PROMISE] = EH | PAD,
		[H2_PING] = ACK,
		[H2_GOAWAY] = 0,
		[H2_WINDOW_UPDATE] = 0,
		[H2_CONTINUATION] = EH,
	};
	/* lengths/streams valid for every defined flag combination */
	static const uint32_t len[] = { 10, 10, 5, 4, 0, 10, 8, 8, 4, 10 };
	static const uint32_t sid[] = { 1, 1, 1, 1, 0, 1, 0, 0, 1, 1 };
	for (unsigned t = 0; t <= H2_FRAME_TYPE_MAX; t++) {
		for (unsigned f = 0; f < 256; f++) {
			struct h2_frame_hdr h = { .length = len[t],
						  .type = (uint8_t)t,
						  .flags = (uint8_t)f,
						  .stream_id = sid[t] };
			int want = (f & ~defined[t]) == 0;
			int got = h2_frame_plausible(&h, MAXF,
						     H2_SENDER_UNKNOWN);
			if (!!got != want)
				fail_msg("%s flags %#x: got %d want %d",
					 h2_frame_type_name((uint8_t)t), f, got,
					 want);
		}
	}
}

/* ---- h2_frame_find_boundary ----------------------------------------- */

/* A typical client sequence: SETTINGS, WINDOW_UPDATE, HEADERS, DATA. */
static size_t put_sequence(uint8_t *p)
{
	size_t n = 0;
	n += put_frame(p + n, 12, H2_SETTINGS, 0, 0, 0);
	n += put_frame(p + n, 4, H2_WINDOW_UPDATE, 0, 0, 1);
	n += put_frame(p + n, 30, H2_HEADERS, EH, 1, 0x82);
	n += put_frame(p + n, 100, H2_DATA, ES, 1, 'x');
	n += put_frame(p + n, 8, H2_PING, 0, 0, 0);
	return n;
}

struct fb_row {
	const char *what;
	size_t junk;      /* 0xff junk bytes before the sequence */
	size_t cut;       /* bytes cut from the end of the buffer */
	enum h2_sender sender;
	unsigned need;
	long want;        /* offset, -1 or -2 */
	long want_from;   /* expected more_from (-1: not checked) */
};

static void test_find_boundary_table(void **state)
{
	(void)state;
	uint8_t seq[512];
	size_t sl = put_sequence(seq);
	/* frame ends within seq: 21, 34, 73, 182, 199 */
	const struct fb_row rows[] = {
		{ "clean at 0", 0, 0, H2_SENDER_UNKNOWN, 2, 0, -1 },
		{ "clean at 0, need 5", 0, 0, H2_SENDER_CLIENT, 5, 0, -1 },
		{ "clean at 0, need 1", 0, 0, H2_SENDER_CLIENT, 1, 0, -1 },
		{ "junk then frames", 37, 0, H2_SENDER_UNKNOWN, 2, 37, -1 },
		{ "1 junk byte", 1, 0, H2_SENDER_CLIENT, 3, 1, -1 },
		{ "long junk", 5000, 0, H2_SENDER_UNKNOWN, 2, 5000, -1 },
		/* need 6 > frames present: the chain runs off the end */
		{ "needs more (chain)", 10, 0, H2_SENDER_UNKNOWN, 6, -2, 10 },
		/* second header cut: undecided at the first candidate */
		{ "needs more (2nd hdr cut)", 20, sl - 21 - 5,
		  H2_SENDER_UNKNOWN, 2, -2, 20 },
		/* first frame's payload cut */
		{ "needs more (payload cut)", 3, sl - 10, H2_SENDER_UNKNOWN,
		  2, -2, 3 },
		/* a server never sends HEADERS on... it may on odd streams:
		 * still found */
		{ "sender server", 7, 0, H2_SENDER_SERVER, 2, 7, -1 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct fb_row *r = &rows[i];
		uint8_t *buf = malloc(r->junk + sl);
		memset(buf, 0xff, r->junk);
		memcpy(buf + r->junk, seq, sl);
		size_t len = r->junk + sl - r->cut;
		size_t from = 0xdeadbeef;
		long got = h2_frame_find_boundary(buf, len, MAXF, r->sender,
						  r->need, &from);
		if (got != r->want)
			fail_msg("%s: got %ld want %ld", r->what, got, r->want);
		if (r->want_from >= 0 && (long)from != r->want_from)
			fail_msg("%s: more_from %zu want %ld", r->what, from,
				 r->want_from);
		free(buf);
	}
}

/* Pure junk: -1, and only the last 8 bytes may be kept. */
static void test_find_boundary_junk(void **state)
{
	(void)state;
	static const size_t lens[] = { 0, 1, 8, 9, 10, 100, 65536 };
	uint8_t *buf = malloc(65536);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (int fill = 0; fill < 2; fill++) {
			/* 0xff: every length too big; text: HTTP/1.1 bytes */
			for (size_t k = 0; k < lens[i]; k++)
				buf[k] = fill ? (uint8_t)("GET / HTTP/1.1\r\n"[k % 16])
					      : 0xff;
			size_t from = 0xdeadbeef;
			long got = h2_frame_find_boundary(
				buf, lens[i], MAXF, H2_SENDER_UNKNOWN, 2, &from);
			assert_int_equal(got, -1);
			size_t want = lens[i] > 8 ? lens[i] - 8 : 0;
			if (from != want)
				fail_msg("len %zu fill %d: more_from %zu want %zu",
					 lens[i], fill, from, want);
		}
	}
	free(buf);
}

/* Retained tail: feeding junk, dropping what more_from says, then the
 * frames, finds the boundary exactly where the frames start even when the
 * header straddles the two pieces. */
static void test_find_boundary_incremental(void **state)
{
	(void)state;
	uint8_t seq[512];
	size_t sl = put_sequence(seq);
	for (size_t split = 1; split < 30; split++) {
		uint8_t all[1024];
		size_t junk = 40;
		memset(all, 0xff, junk);
		memcpy(all + junk, seq, sl);
		size_t total = junk + sl;
		size_t first = junk + split; /* cut inside the first header
						or payload */
		size_t from = 0;
		long got = h2_frame_find_boundary(all, first, MAXF,
						  H2_SENDER_UNKNOWN, 2, &from);
		assert_true(got < 0);
		assert_true(from <= junk); /* nothing after junk dropped */
		/* keep [from, first) then append the rest */
		uint8_t win[1024];
		size_t kept = first - from;
		memcpy(win, all + from, kept);
		memcpy(win + kept, all + first, total - first);
		got = h2_frame_find_boundary(win, kept + total - first, MAXF,
					     H2_SENDER_UNKNOWN, 2, &from);
		if (got < 0 || from + (size_t)got != junk)
			fail_msg("split %zu: got %ld (from %zu)", split, got,
				 from);
	}
}

/* Parity: a sequence of even-stream HEADERS/DATA is not a client's. */
static void test_find_boundary_sender(void **state)
{
	(void)state;
	uint8_t b[256];
	size_t n = 0;
	n += put_frame(b + n, 20, H2_HEADERS, EH, 2, 0x88);
	n += put_frame(b + n, 10, H2_DATA, ES, 2, 'a');
	n += put_frame(b + n, 10, H2_DATA, ES, 2, 'a');
	size_t from;
	assert_int_equal(h2_frame_find_boundary(b, n, MAXF, H2_SENDER_SERVER,
						2, &from),
			 0);
	assert_int_equal(h2_frame_find_boundary(b, n, MAXF, H2_SENDER_UNKNOWN,
						2, &from),
			 0);
	assert_true(h2_frame_find_boundary(b, n, MAXF, H2_SENDER_CLIENT, 2,
					   &from) < 0);
	/* a PUSH_PROMISE chain is never a client's */
	n = 0;
	n += put_frame(b + n, 30, H2_PUSH_PROMISE, EH, 1, 0);
	n += put_frame(b + n, 10, H2_DATA, ES, 1, 'a');
	assert_true(h2_frame_find_boundary(b, n, MAXF, H2_SENDER_CLIENT, 2,
					   &from) < 0);
	assert_int_equal(h2_frame_find_boundary(b, n, MAXF, H2_SENDER_SERVER,
						2, &from),
			 0);
	/* a larger max frame lets a large DATA through */
	n = 0;
	uint8_t *big = calloc(1, 40000);
	n += put_hdr(big, 30000, H2_DATA, 0, 1);
	n += 30000;
	n += put_frame(big + n, 10, H2_DATA, ES, 1, 'a');
	assert_true(h2_frame_find_boundary(big, n, MAXF, H2_SENDER_UNKNOWN, 2,
					   &from) != 0);
	assert_int_equal(h2_frame_find_boundary(big, n, 32768,
						H2_SENDER_UNKNOWN, 2, &from),
			 0);
	free(big);
}

/* ---- random bytes: false positive rate ------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t rng_next(void)
{
	/* xorshift64* */
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

#if defined(__SANITIZE_ADDRESS__)
#define RANDOM_BUFFERS_DEFAULT 3000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RANDOM_BUFFERS_DEFAULT 3000
#endif
#endif
#ifndef RANDOM_BUFFERS_DEFAULT
#define RANDOM_BUFFERS_DEFAULT 25000 /* 10^5 with H2_FRAME_RANDOM_BUFFERS */
#endif

static void test_find_boundary_random(void **state)
{
	(void)state;
	const size_t sz = 64 * 1024;
	unsigned long nbuf = RANDOM_BUFFERS_DEFAULT;
	const char *env = getenv("H2_FRAME_RANDOM_BUFFERS");
	if (env)
		nbuf = strtoul(env, NULL, 10);
	uint64_t *buf = malloc(sz);
	unsigned long found = 0, undecided = 0;
	for (unsigned long i = 0; i < nbuf; i++) {
		for (size_t k = 0; k < sz / 8; k++)
			buf[k] = rng_next();
		size_t from = 0;
		long got = h2_frame_find_boundary((const uint8_t *)buf, sz,
						  MAXF, H2_SENDER_UNKNOWN, 2,
						  &from);
		if (got >= 0)
			found++;
		else if (got == -2)
			undecided++;
	}
	double starts = (double)nbuf * (double)(sz - 8);
	print_message("random: %lu buffers of 64 KiB (%.3g offsets), need=2: "
		      "%lu false boundaries (rate %.3g per buffer, %.3g per "
		      "offset), %lu undecided (-2)\n",
		      nbuf, starts, found, (double)found / (double)nbuf,
		      (double)found / starts, undecided);
	/* Expected ~ (2e-7)^2 per offset: ~1e-8 per buffer. Allow one. */
	assert_true(found <= 1 + nbuf / 20000);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_parse),
		cmocka_unit_test(test_type_name),
		cmocka_unit_test(test_check_table),
		cmocka_unit_test(test_check_stream_zero_rule),
		cmocka_unit_test(test_plausible_table),
		cmocka_unit_test(test_plausible_flags),
		cmocka_unit_test(test_find_boundary_table),
		cmocka_unit_test(test_find_boundary_junk),
		cmocka_unit_test(test_find_boundary_incremental),
		cmocka_unit_test(test_find_boundary_sender),
		cmocka_unit_test(test_find_boundary_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
