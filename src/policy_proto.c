/* Protobuf bodies: the detectors on every string and bytes field of a
 * serialized message, read without its schema, so that ext_proc can put
 * tokens into gRPC messages and still hand the data plane valid ones.
 *
 * Why a walker of our own: a token is longer than the value it replaces,
 * and in protobuf every enclosing length (the field's varint, the nested
 * messages' varints, the gRPC frame's 4-byte prefix) must grow with it.
 * Scanning the bytes as text, as other bodies are, would also let a hit
 * run over a tag or length byte ('2' is the tag of field 6, bytes). So the
 * walker reads the wire format (tag, wire type, value) and reports where
 * the nested messages begin and end; the caller rewrites the lengths.
 *
 * Without the schema a length-delimited field is one of two things,
 * decided by its bytes:
 *   - a sequence of well-formed fields that ends exactly at its end: a
 *     nested message, walked (at most limits.json_depth levels; deeper ones
 *     are one unscanned region);
 *   - anything else: a string or bytes, scanned (raw; bytes fields often
 *     carry text too).
 * Messages first, because a message is often printable text as well
 * ("\n$" + a 36-character id: field 1, length 36). But text can happen to
 * parse as fields ("h" + any byte is field 13, a varint), so content that
 * is both is first scanned as text: a hit that does not lie inside one
 * string of the message reading makes it text (fail closed: the secret is
 * sealed, at worst a real message's inner length with it).
 * Varint and fixed-width fields (numbers) are not scanned: a token cannot
 * stand in an integer. Groups (wire types 3 and 4, long deprecated) and any
 * other malformation make the rest of the frame (or message) one
 * unscanned region, as a JSON syntax error does.
 *
 * Each call scans one field's bytes alone, with its own span array, so the
 * span limit (limits: the last span grows to the end) stays inside that
 * field. Bytes past limits.body_bytes are unscanned by field, never
 * across a length. Nothing here allocates; recursion is bounded by
 * limits.json_depth (<= POL_JSON_DEPTH_MAX), and the bytes read to tell
 * fields apart by WORK_PER_BYTE times the body (past that, a field still
 * to be told is one unscanned region, as if nested too deep).
 */
#include <errno.h>
#include <string.h>

#include "policy_priv.h"
#include "sealtap/common.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct pb_walk {
	const struct policy_route *r;
	const uint8_t *b;
	uint32_t n;   /* bytes of input present */
	uint32_t lim; /* limits.body_bytes */
	unsigned max_depth;
	struct policy_span *spans;
	unsigned max;
	unsigned flags; /* POLICY_SCAN_* of every field */
	policy_pb_fn fn;
	void *user;
	int rc; /* the callback's stop code */
	uint64_t budget; /* bytes the field tests may still read */
};

/* Telling a field's kind reads its content once per level it is nested
 * in: up to limits.json_depth times. A cap on that work keeps a crafted
 * body (a chain of nested messages) from costing 128 times its size. */
#define WORK_PER_BYTE 16
#define WORK_BASE (1u << 20)

static bool charge(struct pb_walk *w, uint64_t n)
{
	if (w->budget < n)
		return false;
	w->budget -= n;
	return true;
}

/* A varint of at most |maxb| bytes at *|pos| (< |end|). */
static bool varint(const uint8_t *b, uint32_t end, uint32_t *pos,
		   unsigned maxb, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < maxb && *pos < end; i++) {
		uint8_t c = b[(*pos)++];
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* One field at *|pos|: its wire type, and for WT_LEN where its length
 * varint (*|lpos|) and its content (*|cpos|) start and the content's
 * length. False if the field is malformed or runs past |end|. */
static bool field(const uint8_t *b, uint32_t end, uint32_t *pos,
		  unsigned *wt, uint32_t *lpos, uint32_t *cpos,
		  uint32_t *clen)
{
	uint64_t tag, v;
	if (!varint(b, end, pos, 5, &tag) || tag > UINT32_MAX || (tag >> 3) == 0)
		return false;
	*wt = (unsigned)(tag & 7);
	switch (*wt) {
	case WT_VARINT:
		return varint(b, end, pos, 10, &v);
	case WT_I64:
		if (end - *pos < 8)
			return false;
		*pos += 8;
		return true;
	case WT_I32:
		if (end - *pos < 4)
			return false;
		*pos += 4;
		return true;
	case WT_LEN:
		*lpos = *pos;
		if (!varint(b, end, pos, 5, &v) || v > end - *pos)
			return false;
		*cpos = *pos;
		*clen = (uint32_t)v;
		*pos += (uint32_t)v;
		return true;
	default:
		return false;
	}
}

/* [a, end) is a sequence of well-formed fields (one level, not nested). */
static bool fields_ok(const uint8_t *b, uint32_t a, uint32_t end)
{
	uint32_t pos = a, lpos, cpos, clen;
	unsigned wt;
	while (pos < end)
		if (!field(b, end, &pos, &wt, &lpos, &cpos, &clen))
			return false;
	return true;
}

/* Valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) with no control character but tab, LF and CR. */
static bool is_text(const uint8_t *s, uint32_t n)
{
	uint32_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
			    c == 0x7f)
				return false;
			i++;
			continue;
		}
		unsigned k;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (unsigned j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* Hands the spans of one region to the caller: a field's content (|nd|
 * with its length prefix) or bytes inside a frame or message (no
 * prefix). */
static bool report(struct pb_walk *w, const struct policy_pb_node *nd,
		   const struct pol_scan *sc)
{
	w->flags |= sc->flags;
	if (!sc->n)
		return true;
	w->rc = w->fn(w->user, POLICY_PB_TEXT, nd, w->spans, sc->n);
	return w->rc == 0;
}

static void scan_start(struct pb_walk *w, struct pol_scan *sc,
		       struct pol_view *view, uint32_t end)
{
	*sc = (struct pol_scan){
		.p = w->r->policy, .rs = w->r->rules, .base = w->b,
		.spans = w->spans, .max = w->max, .total = end, .view = view,
	};
}

/* A string or bytes field's content: the detectors up to
 * limits.body_bytes, the rest unscanned. */
static bool scan_field(struct pb_walk *w, const struct policy_pb_node *nd)
{
	struct pol_view view;
	struct pol_scan sc;
	uint32_t off = nd->off, len = nd->len, end = off + len;
	scan_start(w, &sc, &view, end);
	uint32_t cut = end > w->lim ? (off > w->lim ? off : w->lim) : end;
	if (cut > off)
		pol_scan_text(&sc, off, cut - off, POL_ENC_RAW,
			      sc.rs->det_mask[POL_SCOPE_BODY], 0);
	if (cut < end && !sc.full) {
		sc.flags |= POLICY_SCAN_BODY_CUT;
		pol_scan_rest(&sc, cut, POLICY_RULE_LIMIT_BODY, false);
	}
	return report(w, nd, &sc);
}

/* Bytes that could not be read (|nd|: a field's content, or bytes with
 * no prefix of their own): one unscanned region (with keep: the detectors
 * still run, unless the bytes are compressed). */
static bool scan_opaque(struct pb_walk *w, const struct policy_pb_node *nd,
			uint16_t rule, unsigned flag)
{
	if (!nd->len)
		return true;
	struct pol_view view;
	struct pol_scan sc;
	scan_start(w, &sc, &view, nd->off + nd->len);
	sc.flags |= flag;
	pol_scan_rest(&sc, nd->off, rule, rule != POLICY_RULE_LIMIT_COMPRESSED);
	return report(w, nd, &sc);
}

/* [off, end): bytes with no length prefix of their own. */
static bool scan_rest(struct pb_walk *w, uint32_t off, uint32_t end,
		      uint16_t rule, unsigned flag)
{
	struct policy_pb_node nd = { .off = off, .len = end - off };
	return off >= end || scan_opaque(w, &nd, rule, flag);
}

/* [a, end), read as a message, has a string (or bytes) field whose content
 * holds [off, off + len) whole. False also when the work cap is reached
 * (the caller then reads the field as text: fail closed). */
static bool inside_leaf(struct pb_walk *w, uint32_t a, uint32_t end,
			uint32_t off, uint32_t len, unsigned depth)
{
	uint32_t pos = a, lpos, cpos, clen;
	unsigned wt;
	while (pos < end && field(w->b, end, &pos, &wt, &lpos, &cpos, &clen)) {
		if (wt != WT_LEN || off < cpos || off >= cpos + clen)
			continue;
		if (off + len > cpos + clen || !charge(w, clen))
			return false;
		if (depth < w->max_depth && fields_ok(w->b, cpos, cpos + clen))
			return inside_leaf(w, cpos, cpos + clen, off, len,
					   depth + 1);
		return true;
	}
	return false;
}

/* Content that is both text and a well-formed message: text when the
 * detectors find something in it that the message reading would not put
 * inside one string. */
static bool read_as_text(struct pb_walk *w, const struct policy_pb_node *nd,
			 unsigned depth)
{
	uint32_t end = nd->off + nd->len;
	if (nd->off >= w->lim)
		return false;
	struct pol_view view;
	struct pol_scan sc;
	scan_start(w, &sc, &view, end);
	pol_scan_text(&sc, nd->off, (end > w->lim ? w->lim : end) - nd->off,
		      POL_ENC_RAW, sc.rs->det_mask[POL_SCOPE_BODY], 0);
	for (unsigned i = 0; i < sc.n; i++)
		if (!inside_leaf(w, nd->off, end, w->spans[i].off,
				 w->spans[i].len, depth + 1))
			return true;
	return false;
}

enum shape { SHAPE_STRING, SHAPE_MESSAGE, SHAPE_UNKNOWN };

/* What a length-delimited field holds (policy_proto.c's header): a nested
 * message, a string or bytes, or unknown once the work cap is reached. */
static enum shape field_shape(struct pb_walk *w,
			      const struct policy_pb_node *nd, unsigned depth)
{
	if (!charge(w, 2ull * nd->len))
		return SHAPE_UNKNOWN;
	if (!fields_ok(w->b, nd->off, nd->off + nd->len))
		return SHAPE_STRING;
	if (!is_text(w->b + nd->off, nd->len))
		return SHAPE_MESSAGE;
	if (!charge(w, nd->len))
		return SHAPE_UNKNOWN;
	return read_as_text(w, nd, depth) ? SHAPE_STRING : SHAPE_MESSAGE;
}

static bool node_event(struct pb_walk *w, enum policy_pb_event ev,
		       const struct policy_pb_node *nd)
{
	w->rc = w->fn(w->user, ev, nd, NULL, 0);
	return w->rc == 0;
}

/* The fields of a message at [a, end), |depth| levels down (1: the
 * top). False when the callback stopped the walk. */
static bool walk_message(struct pb_walk *w, uint32_t a, uint32_t end,
			 unsigned depth)
{
	uint32_t pos = a;
	while (pos < end) {
		uint32_t at = pos, lpos = 0, cpos = 0, clen = 0;
		unsigned wt;
		if (!field(w->b, end, &pos, &wt, &lpos, &cpos, &clen))
			return scan_rest(w, at, end, POLICY_RULE_LIMIT_PROTOBUF,
					 POLICY_SCAN_MALFORMED);
		if (wt != WT_LEN || clen == 0)
			continue;
		struct policy_pb_node nd = {
			.hdr = lpos, .off = cpos, .len = clen,
			.hdr_len = (uint8_t)(cpos - lpos),
		};
		bool ok;
		enum shape sh = field_shape(w, &nd, depth);
		if (sh == SHAPE_STRING)
			ok = scan_field(w, &nd);
		else if (sh == SHAPE_UNKNOWN || depth >= w->max_depth)
			ok = scan_opaque(w, &nd, POLICY_RULE_LIMIT_DEPTH,
					 POLICY_SCAN_DEPTH);
		else
			ok = node_event(w, POLICY_PB_ENTER, &nd) &&
			     walk_message(w, cpos, cpos + clen, depth + 1) &&
			     node_event(w, POLICY_PB_LEAVE, &nd);
		if (!ok)
			return false;
	}
	return true;
}

/* gRPC length-prefixed messages: flag byte (bit 0: compressed), 4-byte
 * big-endian length, message. The last may be cut short (a body that
 * ends early); a header cut short is left as it is (nothing to scan). */
static bool walk_frames(struct pb_walk *w)
{
	uint32_t pos = 0;
	while (w->n - pos >= 5) {
		const uint8_t *h = w->b + pos;
		if (h[0] > 1)
			return scan_rest(w, pos, w->n,
					 POLICY_RULE_LIMIT_PROTOBUF,
					 POLICY_SCAN_MALFORMED);
		uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
			       (uint32_t)h[3] << 8 | h[4];
		struct policy_pb_node nd = {
			.hdr = pos, .off = pos + 5, .len = len, .hdr_len = 5,
			.frame = true,
		};
		uint32_t end = len > w->n - nd.off ? w->n : nd.off + len;
		bool ok = node_event(w, POLICY_PB_ENTER, &nd) &&
			  (h[0] ? scan_rest(w, nd.off, end,
					    POLICY_RULE_LIMIT_COMPRESSED, 0)
				: walk_message(w, nd.off, end, 1)) &&
			  node_event(w, POLICY_PB_LEAVE, &nd);
		if (!ok)
			return false;
		pos = end;
	}
	return true;
}

int policy_scan_protobuf(const struct policy_route *r, const void *body,
			 size_t len, unsigned how, struct policy_span *spans,
			 unsigned max, unsigned *flags, policy_pb_fn fn,
			 void *user)
{
	if (!r || !spans || max == 0 || !fn || (!body && len) ||
	    len > UINT32_MAX)
		return -EINVAL;
	if (!r->rules->scans_bodies || len == 0)
		return 0;
	struct pb_walk w = {
		.r = r, .b = body, .n = (uint32_t)len,
		.lim = r->policy->limits.body_bytes,
		.max_depth = r->policy->limits.json_depth,
		.spans = spans, .max = max, .fn = fn, .user = user,
		.budget = WORK_PER_BYTE * (uint64_t)len + WORK_BASE,
	};
	if (how & POLICY_PB_COMPRESSED)
		scan_rest(&w, 0, w.n, POLICY_RULE_LIMIT_COMPRESSED, 0);
	else if (how & POLICY_PB_FRAMED)
		walk_frames(&w);
	else
		walk_message(&w, 0, w.n, 1);
	if (flags)
		*flags |= w.flags;
	return w.rc;
}
