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
 * Without the schema a length-delimited field is read by its bytes:
 *   - a sequence of well-formed fields that ends exactly at its end, and
 *     not valid text: a nested message, walked (at most limits.json_depth
 *     levels; deeper ones are read raw, below);
 *   - valid UTF-8 without control characters (tab, CR, LF aside) that does
 *     not parse as fields: a string, scanned; its hits become tokens;
 *   - neither: bytes, scanned too (they often carry text), but their hits
 *     are replaced in place (one '*' per byte): bytes may hold a structure
 *     of their own (a group, a packed list, another encoding) whose
 *     lengths a token would break unseen;
 *   - both text and well-formed fields ("\n$" + a 36-character id is field
 *     1 of length 36; "h" + any byte is field 13, a varint): which it is
 *     cannot be known, and the two readings put lengths in different
 *     places. Its hits under both readings (the text as a whole, and every
 *     string below it as a message, both readings again where that is
 *     ambiguous too) are replaced in place, so nothing either reading
 *     would find passes, and it stays valid either way unless a hit of the
 *     text reading runs over what the other takes for a tag or length.
 * In place, the record still gets the tokens (ext_proc: |in_place|).
 * Varint and fixed-width fields (numbers) are not scanned: a token cannot
 * stand in an integer. Bytes whose structure is not read -- a malformed
 * rest of a frame or message (groups, wire types 3 and 4, long
 * deprecated, included), nesting past limits.json_depth or the work cap,
 * frames of a codec other than protobuf and JSON (JSON frames are JSON
 * bodies: scan_json()), gRPC-Web trailers, the continuation of a frame
 * an earlier chunk began -- are scanned raw, their hits in place, so
 * whatever structure they hold keeps its lengths. Compressed bytes, which
 * no detector can read, are one unscanned region (limits.unscanned).
 *
 * Each call scans one field's bytes alone, with its own span array, so the
 * span limit (limits: the last span grows to the end) stays inside that
 * field. Bytes past limits.body_bytes are unscanned by field, never
 * across a length. Nothing here allocates; recursion is bounded by
 * limits.json_depth (<= POL_JSON_DEPTH_MAX), and the bytes read to tell
 * fields apart by WORK_PER_BYTE times the body (past that, a field still
 * to be told is read raw, as if nested too deep).
 */
#include <errno.h>
#include <string.h>

#include "policy_priv.h"
#include "sealtap/common.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* spans kept per reading of a field that is both text and a message */
#define POL_PB_SPANS 32

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
	bool raw;  /* frames of another codec: content read raw */
	bool json; /* frames of the JSON codec: content read as JSON */
	uint64_t budget; /* bytes the field tests may still read */
	uint32_t head; /* chunk guard: bytes at the start to star */
	bool cut_end;  /* the input ends inside a field that goes on */
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
bool policy_is_text(const void *text, size_t n)
{
	const uint8_t *s = text;
	size_t i = 0;
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

/* Hands the spans |sc| found in one region to the caller: a field's
 * content (|nd| with its length prefix) or bytes inside a frame or
 * message (no prefix). */
static bool report(struct pb_walk *w, const struct policy_pb_node *nd,
		   const struct pol_scan *sc)
{
	w->flags |= sc->flags;
	if (!sc->n)
		return true;
	w->rc = w->fn(w->user, POLICY_PB_TEXT, nd, sc->spans, sc->n);
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

/* The detectors on [off, off + len) up to limits.body_bytes, the rest
 * unscanned; into |sc| (whose spans must end before |off|). A cut at the
 * limit moves back past what a value it splits may have left before it
 * (policy_guard_cut()) and to a UTF-8 character's start, so neither half
 * of a secret passes and a string stays UTF-8. */
static void scan_bytes(struct pb_walk *w, struct pol_scan *sc, uint32_t off,
		       uint32_t len)
{
	uint32_t end = off + len;
	uint32_t cut = end > w->lim ? (off > w->lim ? off : w->lim) : end;
	if (cut < end) {
		cut = (uint32_t)policy_guard_cut(w->b, off, cut);
		while (cut > off && (w->b[cut] & 0xc0) == 0x80)
			cut--;
	}
	if (cut > off)
		pol_scan_text(sc, off, cut - off, POL_ENC_RAW,
			      sc->rs->det_mask[POL_SCOPE_BODY], 0);
	if (cut < end && !sc->full) {
		uint32_t total = sc->total;
		sc->total = end; /* the limit span ends with the field */
		sc->flags |= POLICY_SCAN_BODY_CUT;
		pol_scan_rest(sc, cut, POLICY_RULE_LIMIT_BODY, false);
		sc->total = total;
	}
}

/* A string or bytes field's content (|flag|: POLICY_SCAN_* to report). */
static bool scan_field(struct pb_walk *w, const struct policy_pb_node *nd,
		       unsigned flag)
{
	struct pol_view view;
	struct pol_scan sc;
	scan_start(w, &sc, &view, nd->off + nd->len);
	sc.flags |= flag;
	scan_bytes(w, &sc, nd->off, nd->len);
	return report(w, nd, &sc);
}

/* A chunk guard span over [off, end), in place: the part of a value a
 * chunk boundary cuts, which the detectors cannot judge alone. */
static void guard_add(struct pol_scan *sc, uint32_t off, uint32_t end)
{
	if (off < end)
		pol_out_add(sc, off, end - off, POLICY_ACTION_REDACT,
			    POLICY_KIND_LIMIT, 0, 0, POLICY_RULE_LIMIT_CHUNK,
			    sc->p->rule_names[POLICY_RULE_LIMIT_CHUNK]);
}

/* Bytes whose structure is not read (|nd|: a field's content, or bytes
 * with no prefix of their own): the detectors run over them raw and
 * their hits are replaced in place, so whatever structure they hold keeps
 * its lengths. |flag|: why (POLICY_SCAN_*). In a chunk decided without
 * the ones around it, such bytes touching the chunk's start (what
 * continues a field an earlier chunk passed on: w->head) or its end (a
 * field cut there: w->cut_end) may hold part of a value whose other part
 * went out or comes later: the run of characters a hit can be made of
 * at that boundary is starred too. */
static bool scan_raw(struct pb_walk *w, const struct policy_pb_node *nd,
		     unsigned flag)
{
	if (!nd->len)
		return true;
	struct policy_pb_node in = *nd;
	in.in_place = true;
	uint32_t end = nd->off + nd->len;
	struct pol_view view;
	struct pol_scan sc;
	scan_start(w, &sc, &view, end);
	sc.flags |= flag;
	if (nd->off == 0 && w->head)
		guard_add(&sc, 0, w->head < end ? w->head : end);
	scan_bytes(w, &sc, nd->off, nd->len);
	if (w->cut_end && end == w->n && !sc.full) {
		/* from the run's start, or past the spans already made
		 * (spans stay in order and disjoint, as the text guard's) */
		uint32_t t = (uint32_t)policy_guard_cut(w->b, nd->off, end);
		if (sc.n && t < sc.spans[sc.n - 1].off + sc.spans[sc.n - 1].len)
			t = sc.spans[sc.n - 1].off + sc.spans[sc.n - 1].len;
		guard_add(&sc, t, end);
	}
	return report(w, &in, &sc);
}

/* [off, end): bytes with no length prefix of their own, read raw. */
static bool scan_rest(struct pb_walk *w, uint32_t off, uint32_t end,
		      unsigned flag)
{
	struct policy_pb_node nd = { .off = off, .len = end - off };
	return off >= end || scan_raw(w, &nd, flag);
}

/* [off, end): a JSON document (the gRPC JSON codec), scanned as a JSON
 * body -- paths and detectors, limits.body_bytes, a syntax error's rest
 * unscanned -- its spans replaced by tokens that keep it valid JSON (no
 * prefix of its own: the frame around it grows). */
static bool scan_json(struct pb_walk *w, uint32_t off, uint32_t end)
{
	if (off >= end)
		return true;
	struct pol_view view;
	struct pol_scan sc;
	struct policy_pb_node nd = { .off = off, .len = end - off };
	scan_start(w, &sc, &view, end);
	uint32_t cut = end > w->lim ? (off > w->lim ? off : w->lim) : end;
	if (cut > off)
		pol_json_scan(&sc, off, cut - off);
	if (cut < end && !sc.full) {
		sc.flags |= POLICY_SCAN_BODY_CUT;
		pol_scan_rest(&sc, cut, POLICY_RULE_LIMIT_BODY, false);
	}
	return report(w, &nd, &sc);
}

/* Compressed bytes, which no detector can read: one unscanned region
 * (limits.unscanned), in place. */
static bool scan_compressed(struct pb_walk *w, uint32_t off, uint32_t end)
{
	if (off >= end)
		return true;
	struct pol_view view;
	struct pol_scan sc;
	struct policy_pb_node nd = { .off = off, .len = end - off,
				     .in_place = true };
	scan_start(w, &sc, &view, end);
	pol_scan_rest(&sc, off, POLICY_RULE_LIMIT_COMPRESSED, false);
	return report(w, &nd, &sc);
}

static bool both_readings(struct pb_walk *w, struct pol_scan *sc,
			  uint32_t off, uint32_t len, unsigned depth);
static unsigned merge_spans(const struct policy_span *a, unsigned na,
			    const struct policy_span *b, unsigned nb,
			    struct policy_span *out, unsigned max);

/* The message reading of [a, end): every string or bytes field below it
 * scanned, in order, into |sc|. False once the work cap is reached. */
static bool collect_leaves(struct pb_walk *w, struct pol_scan *sc, uint32_t a,
			   uint32_t end, unsigned depth)
{
	uint32_t pos = a, lpos, cpos, clen;
	unsigned wt;
	while (pos < end && field(w->b, end, &pos, &wt, &lpos, &cpos, &clen)) {
		if (wt != WT_LEN || !clen)
			continue;
		if (!charge(w, clen))
			return false;
		if (depth >= w->max_depth ||
		    !fields_ok(w->b, cpos, cpos + clen)) {
			scan_bytes(w, sc, cpos, clen);
		} else if (!policy_is_text(w->b + cpos, clen)) {
			if (!collect_leaves(w, sc, cpos, cpos + clen, depth + 1))
				return false;
		} else if (!both_readings(w, sc, cpos, clen, depth)) {
			return false;
		}
	}
	return true;
}

/* Content at [off, off + len) that is text and a message: the spans of
 * both readings, merged, appended to |sc|. */
static bool both_readings(struct pb_walk *w, struct pol_scan *sc,
			  uint32_t off, uint32_t len, unsigned depth)
{
	struct policy_span t[POL_PB_SPANS], l[POL_PB_SPANS], m[POL_PB_SPANS];
	unsigned max = ST_MIN(sc->max, POL_PB_SPANS);
	struct pol_scan st = *sc, sl;
	st.spans = t;
	st.n = 0;
	st.max = max;
	st.full = false;
	st.total = off + len;
	sl = st;
	sl.spans = l;
	scan_bytes(w, &st, off, len);
	if (!collect_leaves(w, &sl, off, off + len, depth + 1))
		return false;
	sc->flags |= st.flags | sl.flags;
	unsigned n = merge_spans(t, st.n, l, sl.n, m, max);
	for (unsigned i = 0; i < n; i++)
		pol_out_add(sc, m[i].off, m[i].len, m[i].action, m[i].kind,
			    m[i].detector, 0, m[i].rule_id, m[i].rule);
	return true;
}

/* Merges the sorted spans |a| and |b| into |out| (room for |max|):
 * overlapping ones become one with the stronger action. When they do not
 * fit, one span from the first to the end of the last (fail closed). */
static unsigned merge_spans(const struct policy_span *a, unsigned na,
			    const struct policy_span *b, unsigned nb,
			    struct policy_span *out, unsigned max)
{
	unsigned i = 0, j = 0, n = 0;
	while (i < na || j < nb) {
		const struct policy_span *s =
			j >= nb || (i < na && a[i].off <= b[j].off) ? &a[i++]
								    : &b[j++];
		if (n && s->off < out[n - 1].off + out[n - 1].len) {
			struct policy_span *l = &out[n - 1];
			uint32_t off = l->off;
			uint32_t e = ST_MAX(l->off + l->len, s->off + s->len);
			if (s->action > l->action)
				*l = *s;
			l->off = off;
			l->len = e - off;
			l->flags = 0;
			continue;
		}
		if (n == max) {
			uint32_t hi = 0;
			for (unsigned k = 0; k < na; k++)
				hi = ST_MAX(hi, a[k].off + a[k].len);
			for (unsigned k = 0; k < nb; k++)
				hi = ST_MAX(hi, b[k].off + b[k].len);
			out[0].len = hi - out[0].off;
			out[0].action = ST_MAX(out[0].action,
					       (uint8_t)POLICY_ACTION_SEAL);
			return 1;
		}
		out[n++] = *s;
	}
	return n;
}

/* Content that is valid text and also a well-formed message: which it is
 * cannot be known without the schema, and the two readings put lengths
 * in different places. So its hits under both readings (the text as a
 * whole; every string below it as a message) are replaced in place,
 * changing no length: valid either way, unless a hit of the text reading
 * runs over what the message reading takes for a tag or length. */
static bool scan_both(struct pb_walk *w, struct policy_pb_node *nd,
		      unsigned depth)
{
	struct pol_view view;
	struct pol_scan sc;
	scan_start(w, &sc, &view, nd->off + nd->len);
	if (!both_readings(w, &sc, nd->off, nd->len, depth))
		return scan_raw(w, nd, POLICY_SCAN_DEPTH);
	nd->in_place = true;
	return report(w, nd, &sc);
}

enum shape { SHAPE_STRING, SHAPE_BYTES, SHAPE_MESSAGE, SHAPE_BOTH,
	     SHAPE_UNKNOWN };

/* What a length-delimited field holds (policy_proto.c's header): text,
 * other bytes, a nested message, text that is also a message, or unknown
 * once the work cap is reached. */
static enum shape field_shape(struct pb_walk *w,
			      const struct policy_pb_node *nd)
{
	if (!charge(w, 2ull * nd->len))
		return SHAPE_UNKNOWN;
	bool text = policy_is_text(w->b + nd->off, nd->len);
	if (!fields_ok(w->b, nd->off, nd->off + nd->len))
		return text ? SHAPE_STRING : SHAPE_BYTES;
	return text ? SHAPE_BOTH : SHAPE_MESSAGE;
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
			return scan_rest(w, at, end, POLICY_SCAN_MALFORMED);
		if (wt != WT_LEN || clen == 0)
			continue;
		struct policy_pb_node nd = {
			.hdr = lpos, .off = cpos, .len = clen,
			.hdr_len = (uint8_t)(cpos - lpos),
		};
		bool ok;
		enum shape sh = field_shape(w, &nd);
		/* bytes may be a structure of their own (a group, a packed
		 * list, another encoding): tokens there would break lengths
		 * nobody can see */
		nd.in_place = sh == SHAPE_BYTES;
		if (sh == SHAPE_STRING || sh == SHAPE_BYTES)
			ok = scan_field(w, &nd, 0);
		else if (sh == SHAPE_BOTH)
			ok = charge(w, nd.len) ? scan_both(w, &nd, depth)
					       : scan_raw(w, &nd,
							  POLICY_SCAN_DEPTH);
		else if (sh == SHAPE_UNKNOWN || depth >= w->max_depth)
			ok = scan_raw(w, &nd, POLICY_SCAN_DEPTH);
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
/* A frame's content by its flag byte and the codec: compressed; a
 * gRPC-Web trailers frame (text) or another codec, raw; JSON; else a
 * message. */
static bool frame_content(struct pb_walk *w, uint8_t flag, uint32_t off,
			  uint32_t end)
{
	if (flag & 1)
		return scan_compressed(w, off, end);
	if ((flag & 0x80) || w->raw)
		return scan_rest(w, off, end, 0);
	if (w->json)
		return scan_json(w, off, end);
	return walk_message(w, off, end, 1);
}

static bool walk_frames(struct pb_walk *w, uint32_t pos)
{
	while (w->n - pos >= 5) {
		const uint8_t *h = w->b + pos;
		if (!policy_grpc_flag_ok(h[0]))
			return scan_rest(w, pos, w->n, POLICY_SCAN_MALFORMED);
		uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
			       (uint32_t)h[3] << 8 | h[4];
		struct policy_pb_node nd = {
			.hdr = pos, .off = pos + 5, .len = len, .hdr_len = 5,
			.frame = true,
		};
		uint32_t end = len > w->n - nd.off ? w->n : nd.off + len;
		/* compressed; a gRPC-Web trailers frame (text) or another
		 * codec: read raw; else a message */
		bool ok = node_event(w, POLICY_PB_ENTER, &nd) &&
			  frame_content(w, h[0], nd.off, end) &&
			  node_event(w, POLICY_PB_LEAVE, &nd);
		if (!ok)
			return false;
		pos = end;
	}
	return true;
}

int policy_scan_protobuf(const struct policy_route *r, const void *body,
			 size_t len, unsigned how,
			 const struct policy_pb_chunk *ck,
			 struct policy_span *spans, unsigned max,
			 unsigned *flags, policy_pb_fn fn, void *user)
{
	size_t skip = ck ? ck->skip : 0;
	if (!r || !spans || max == 0 || !fn || (!body && len) ||
	    len > UINT32_MAX || skip > len || (ck && ck->head > len))
		return -EINVAL;
	if (!r->rules->scans_bodies || len == 0)
		return 0;
	struct pb_walk w = {
		.r = r, .b = body, .n = (uint32_t)len,
		.lim = r->policy->limits.body_bytes,
		.max_depth = r->policy->limits.json_depth,
		.spans = spans, .max = max, .fn = fn, .user = user,
		.budget = WORK_PER_BYTE * (uint64_t)len + WORK_BASE,
		.head = ck && skip ? (uint32_t)ck->head : 0,
		.cut_end = ck && ck->cut_end,
	};
	/* the continuation of a frame or message an earlier chunk began;
	 * a message has no frame after which reading could start again */
	uint32_t at = (uint32_t)skip;
	if (at && !(how & POLICY_PB_FRAMED))
		at = w.n;
	w.raw = how & POLICY_PB_RAW;
	w.json = how & POLICY_PB_JSON;
	bool more = scan_rest(&w, 0, at, POLICY_SCAN_MALFORMED) && at < w.n;
	if (more && (how & POLICY_PB_FRAMED))
		walk_frames(&w, at);
	else if (more) /* one message: as a frame's content with flag 0 */
		frame_content(&w, (how & POLICY_PB_COMPRESSED) ? 1 : 0, 0, w.n);
	if (flags)
		*flags |= w.flags;
	return w.rc;
}
