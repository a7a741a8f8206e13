/* ext_proc: the policy decider. See extproc.h and docs/extproc.md
 * "Policy".
 *
 * The same policy, sealing and keys as the tap (policy.h, record_seal.h,
 * keys.h), behind the decider interface the protocol engine
 * (extproc_stream.c) calls:
 *
 *   begin          the exchange's route from :authority (or host), :path,
 *                  :method and content-type; a mode_override asking for
 *                  bodies the data plane does not send when the route's
 *                  rules read bodies;
 *   decide_header  the policy's spans of the value: replaced in place by
 *                  the tokens the tap would write, bound to the record id
 *                  and the field "<request|response>.<headers|trailers>:
 *                  <name>"; a value that is one span and cannot become a
 *                  token (redact, tenant without a usable key) is removed;
 *                  a deny span in a request answers with the policy's
 *                  immediate response;
 *   decide_body    the same for a body chunk by its content type;
 *                  tokens bound to "<request|response>.body:<rule>" as
 *                  the tap binds body findings. gRPC and protobuf bodies
 *                  (and GRPC-mode messages) are read field by field
 *                  (policy_scan_protobuf()) and written back with every
 *                  length the tokens change (pb_body()), so the data
 *                  plane gets valid messages.
 *
 * What the decisions mean for the record goes into the exchange's
 * extproc_xdec: tenant, route, the "sealed" entries of header values and
 * the body findings, in the tap's formats (docs/records.md).
 *
 * A JSON body in several chunks is parsed on from one chunk to the next,
 * and a form's is read behind the pair the chunk before ended inside
 * (policy_scan_body_chunk(), state in xdec.body_state); other text types
 * are scanned one chunk at a time. Where a value may be cut by a chunk
 * boundary and its first part already sent, sealtap fails closed: the
 * run of characters a detector hit can consist of that touches the
 * boundary is redacted, at most POLICY_GUARD_MAX bytes (guard_boundaries()).
 * BUFFERED bodies (what the mode_override asks for) come whole and need
 * none of it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/extproc.h"
#include "sealtap/keys.h"
#include "sealtap/policy.h"
#include "sealtap/record_seal.h"
#include "sealtap/seal.h"

#define MAX_SPANS 32  /* spans handled per value, as record_seal.c */
#define NAME_MAX_FIELD 120 /* header name bytes in a token's field */
/* Bytes of record notes ("sealed" entries, body findings) one exchange
 * keeps per list: a record holds at most extproc's 1 MiB anyway (past it
 * the lists are left out and the record says record_too_big), and a long
 * streamed body must not grow them without bound. */
#define NOTES_MAX (1u << 20)

/* One change to a protobuf body: |len| input bytes at |off| become
 * |rep_len| bytes at |rep| in extproc_policy.pb_rep. */
struct pb_edit {
	uint32_t off, len;
	size_t rep, rep_len;
};

struct extproc_policy {
	struct policy *own; /* the built-in policy when none was given */
	const struct policy *pol;
	struct keys_cache *keys;
	unsigned worker;
	struct record_sealer *rs;
	struct extproc_buf scratch; /* policy_scan_body_chunk()'s input:
				       carried token + chunk (wiped by it) */
	struct extproc_buf pb_rep;  /* protobuf bodies: replacement bytes
				       (tokens, stars, new lengths) */
	struct pb_edit *edits;      /* ... and where they go */
	size_t nedits, edits_cap;
};

/* Record sections by part: the first half of a token's field. */
static const char *const sections[EXTPROC_PART__COUNT] = {
	[EXTPROC_REQ_HEADERS] = "request.headers",
	[EXTPROC_REQ_BODY] = "request.body",
	[EXTPROC_REQ_TRAILERS] = "request.trailers",
	[EXTPROC_RESP_HEADERS] = "response.headers",
	[EXTPROC_RESP_BODY] = "response.body",
	[EXTPROC_RESP_TRAILERS] = "response.trailers",
};

static bool buf_put(void *user, const void *p, size_t n)
{
	return extproc_buf_put(user, p, n);
}

static struct record_seal_sink sink(struct extproc_buf *b)
{
	return (struct record_seal_sink){ buf_put, b, b->len != 0 };
}

/* |s| over |b|, or NULL (no notes) once |b| reached NOTES_MAX or when
 * no record is written (|xd|->notes). */
static struct record_seal_sink *notes_sink(const struct extproc_xdec *xd,
					   struct extproc_buf *b,
					   struct record_seal_sink *s)
{
	*s = sink(b);
	return xd->notes && b->len < NOTES_MAX ? s : NULL;
}

/* ---- routing ---------------------------------------------------------------- */

static bool pd_begin(void *self, struct extproc_xdec *xd,
		     const struct policy_request *rq, struct extproc_mode *m)
{
	struct extproc_policy *pp = self;
	const struct policy_route *r = policy_route_for(pp->pol, rq);
	xd->route = r;
	xd->tenant = policy_route_tenant(r)->name;
	xd->route_name = policy_route_name(r);
	if (!policy_route_scans_bodies(r))
		return false;
	/* BUFFERED: a body comes whole, so JSON paths work and nothing is
	 * cut; one larger than the data plane's buffer is refused there
	 * (fail closed) rather than passed on unscanned. */
	bool ask = false;
	if (m->request_body == EXTPROC_BODY_NONE) {
		m->request_body = EXTPROC_BODY_BUFFERED;
		ask = true;
	}
	if (m->response_body == EXTPROC_BODY_NONE) {
		m->response_body = EXTPROC_BODY_BUFFERED;
		ask = true;
	}
	return ask;
}

/* ---- deny ---------------------------------------------------------------------- */

/* A deny span in a request part: fills |d| with the policy's answer.
 * Deny spans in a response are sealed, as the tap seals them: there is no
 * request left to refuse. */
static bool denied(const struct extproc_policy *pp, enum extproc_part part,
		   const struct policy_span *sp, int n,
		   struct extproc_decision *d)
{
	if (part != EXTPROC_REQ_HEADERS && part != EXTPROC_REQ_BODY &&
	    part != EXTPROC_REQ_TRAILERS)
		return false;
	for (int i = 0; i < n; i++) {
		if (sp[i].action != POLICY_ACTION_DENY)
			continue;
		const struct policy_deny *dn = policy_deny_response(pp->pol);
		d->status = dn->status;
		d->body = dn->body;
		d->details = dn->details;
		d->rule = sp[i].rule;
		return true;
	}
	return false;
}

/* ---- headers ---------------------------------------------------------------------- */

static enum extproc_verdict pd_header(void *self, struct extproc_xdec *xd,
				      enum extproc_part part,
				      const uint8_t *name, size_t nlen,
				      const uint8_t *value, size_t vlen,
				      struct extproc_decision *d)
{
	struct extproc_policy *pp = self;
	struct policy_span sp[MAX_SPANS];
	unsigned flags = 0;
	int n = policy_scan_value(xd->route, name, nlen, value, vlen, sp,
				  MAX_SPANS, &flags);
	if (n == 0)
		return d->verdict = EXTPROC_KEEP;
	if (denied(pp, part, sp, n, d))
		return d->verdict = EXTPROC_DENY;
	if (n < 0 || (flags & POLICY_SCAN_SPANS_FULL) || vlen > SEAL_VALUE_MAX)
		/* more sensitive parts than tracked, or too long to seal:
		 * none of it goes on (the tap records none of it) */
		return d->verdict = EXTPROC_REMOVE;
	char field[192];
	snprintf(field, sizeof(field), "%s:%.*s", sections[part],
		 (int)(nlen > NAME_MAX_FIELD ? NAME_MAX_FIELD : nlen),
		 (const char *)name);
	struct record_seal_where w = { xd->record_id, field };
	struct record_seal_sink out = sink(d->out), ns;
	size_t undo = xd->applied.len;
	int red = record_seal_replace(pp->rs, xd->route, &w, false, 0, sp,
				      (unsigned)n, value, vlen, &out,
				      notes_sink(xd, &xd->applied, &ns));
	if (red < 0) {
		xd->applied.len = undo; /* out of memory: fail closed */
		return d->verdict = EXTPROC_REMOVE;
	}
	if (n == 1 && sp[0].off == 0 && sp[0].len == vlen && red == 1)
		return d->verdict = EXTPROC_REMOVE;
	return d->verdict = EXTPROC_REPLACE;
}

/* ---- bodies ---------------------------------------------------------------------- */

static struct policy_span guard_span(size_t off, size_t len)
{
	return (struct policy_span){ .off = (uint32_t)off,
				     .len = (uint32_t)len,
				     .rule = "extproc/chunk_boundary",
				     .rule_id = UINT16_MAX,
				     .action = POLICY_ACTION_REDACT,
				     .kind = POLICY_KIND_LIMIT };
}

/* Bytes of the chunks before kept for bearer_across(): "Bearer" and the
 * blanks after it (a run of blanks kept as one). */
#define TAIL_MAX 16

static bool blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static uint8_t ascii_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* The bearer detector takes a token only after "Bearer" and blanks, and
 * a chunk is scanned alone: when the keyword or its blanks end in the
 * chunk before (|tail|, its last bytes) and the token starts in this
 * one, nothing finds the token. Returns the end of that token in |b| (at
 * most POLICY_GUARD_MAX), 0 if there is none. */
static size_t bearer_across(const uint8_t *tail, size_t nt, const uint8_t *b,
			    size_t len)
{
	static const char kw[] = "bearer";
	for (size_t s = 0; s < nt; s++) {
		uint8_t p = s ? ascii_lower(tail[s - 1]) : 0;
		if ((p >= 'a' && p <= 'z') || (p >= '0' && p <= '9'))
			continue; /* "xbearer": another word */
		size_t i = s, k = 0;
		for (; k < 6; k++, i++) {
			size_t at = i < nt ? i : i - nt;
			if ((i >= nt && at >= len) ||
			    ascii_lower(i < nt ? tail[at] : b[at]) !=
				    (uint8_t)kw[k])
				break;
		}
		if (k < 6)
			continue;
		size_t bl = 0;
		for (; i < nt + len && blank(i < nt ? tail[i] : b[i - nt]); i++)
			bl++;
		if (!bl || i < nt)
			continue; /* no blank, or the token began before */
		size_t j = i - nt, e = j;
		while (e < len && e - j < POLICY_GUARD_MAX &&
		       policy_hit_byte(b, len, e))
			e++;
		/* the detector's shape: at least 8 characters, not an
		 * auth-param ("realm=..."); a run the chunk's end cuts may
		 * still be one */
		if (e > j && (e == len || (e - j >= 8 && b[e] != '"')))
			return e;
	}
	return 0;
}

/* How much of a chunk that continues what the chunk before left open
 * to guard from its start: the run of characters a hit can be made of
 * touching it, when the chunk before ended inside such a run (its last
 * byte, in |tail|, is one: else no hit can span the boundary), or
 * further, a bearer token whose "Bearer" the chunks before held. */
static size_t head_guard(const struct extproc_buf *tail, const uint8_t *b,
			 size_t len)
{
	size_t h = 0;
	bool cut = !tail->len || policy_hit_byte(tail->p, tail->len,
						 tail->len - 1);
	while (cut && h < len && h < POLICY_GUARD_MAX &&
	       policy_hit_byte(b, len, h))
		h++;
	size_t bt = bearer_across(tail->p, tail->len, b, len);
	return bt > h ? bt : h;
}

/* One byte onto a tail being built backwards from w[*k]: a blank after
 * (before, going backwards) a blank is dropped. */
static void tail_push(uint8_t *w, size_t *k, bool *blank_run, uint8_t b)
{
	if (blank(b)) {
		if (*blank_run)
			return;
		*blank_run = true;
	} else {
		*blank_run = false;
	}
	w[--*k] = b;
}

/* The side's tail becomes the last TAIL_MAX bytes of it and |c|, runs
 * of blanks kept as one: "Bearer" stays in view whatever number of
 * blanks, and chunks of blanks only, follow it. */
static bool keep_tail(struct extproc_buf *t, const struct extproc_chunk *c)
{
	uint8_t w[TAIL_MAX];
	size_t k = TAIL_MAX;
	bool run = false;
	for (size_t i = c->len; i-- > 0 && k;)
		tail_push(w, &k, &run, c->data[i]);
	for (size_t i = t->len; i-- > 0 && k;)
		tail_push(w, &k, &run, t->p[i]);
	t->len = 0;
	bool ok = extproc_buf_put(t, w + k, TAIL_MAX - k);
	explicit_bzero(w, sizeof(w));
	return ok;
}

/* Adds a redact span over the hit bytes touching each boundary of |c|
 * inside its body (the start of a chunk that is not the first, the end of
 * one that is not the last), clipped so spans stay sorted and disjoint.
 * A JSON body parsed on from chunk to chunk needs neither where the
 * scanner saw the bytes on both sides of the boundary (|flags|
 * POLICY_SCAN_RESUMED: none at the start) or where the chunk does not end
 * inside a string (no POLICY_SCAN_CUT_STRING: none at the end). At the
 * start the guard also takes a bearer token whose "Bearer" the chunk
 * before held (|tail|: its last bytes).
 * |sp| has room for |n| + 2. Returns the new count. */
static int guard_boundaries(struct policy_span *sp, int n,
			    const struct extproc_chunk *c, unsigned flags,
			    bool json_stream, const struct extproc_buf *tail)
{
	const uint8_t *b = c->data;
	size_t len = c->len;
	if (c->off && len && !(flags & POLICY_SCAN_RESUMED)) {
		size_t h = head_guard(tail, b, len);
		if (n && sp[0].off < h)
			h = sp[0].off;
		if (h) {
			memmove(sp + 1, sp, (size_t)n * sizeof(*sp));
			sp[0] = guard_span(0, h);
			n++;
		}
	}
	if (!c->last && len &&
	    (!json_stream || (flags & POLICY_SCAN_CUT_STRING))) {
		size_t t = policy_guard_cut(b, 0, len);
		/* a run that starts right after an escape's backslash
		 * takes the backslash too: "\u00" or "\n" cut in half must
		 * not leave a lone backslash before the stars (invalid
		 * JSON) */
		size_t bs = 0;
		while (bs < t && b[t - 1 - bs] == '\\')
			bs++;
		if (t < len && (bs & 1))
			t--;
		size_t end = n ? sp[n - 1].off + (size_t)sp[n - 1].len : 0;
		if (t < end)
			t = end;
		if (t < len)
			sp[n++] = guard_span(t, len - t);
	}
	return n;
}

/* A chunk of a body that comes in several messages: scanned on from
 * where the side's previous chunk left the scanner (state made on the
 * first chunk, freed with the exchange). */
static int scan_chunk(struct extproc_policy *pp, struct extproc_xdec *xd,
		      const struct extproc_chunk *c, struct policy_span *sp,
		      unsigned *flags)
{
	struct extproc_buf *st = &xd->body_state[c->part == EXTPROC_RESP_BODY];
	if (!st->len) {
		size_t sz = policy_json_stream_size();
		if (!extproc_buf_reserve(st, sz))
			return -ENOMEM;
		policy_json_stream_init((struct policy_json_stream *)st->p);
		st->len = sz;
	}
	if (c->len > SIZE_MAX - POLICY_JSON_CARRY ||
	    !extproc_buf_reserve(&pp->scratch, c->len + POLICY_JSON_CARRY))
		return -ENOMEM;
	return policy_scan_body_chunk(xd->route, c->ctype, c->ctype_len,
				      (struct policy_json_stream *)st->p,
				      c->data, c->len, c->last, pp->scratch.p,
				      sp, MAX_SPANS - 2, flags);
}

/* ---- protobuf bodies ----------------------------------------------------------- */

/* limits.json_depth's ceiling (policy_priv.h POL_JSON_DEPTH_MAX) and the
 * gRPC frame around the top message */
#define PB_DEPTH_MAX 130

/* A protobuf body being rewritten: policy_scan_protobuf() reports the
 * fields with spans and the frames and nested messages around them; each
 * field's new bytes are an edit, and every enclosing length that changes
 * with them is another. */
struct pb_job {
	struct extproc_policy *pp;
	struct extproc_xdec *xd;
	const struct extproc_chunk *c;
	struct extproc_decision *d;
	struct {
		struct policy_pb_node nd;
		int64_t delta; /* change of its content's length */
	} open[PB_DEPTH_MAX];
	unsigned depth;
	bool denied, failed;
};

static bool pb_edit(struct pb_job *j, uint32_t off, uint32_t len,
		    size_t rep)
{
	struct extproc_policy *pp = j->pp;
	if (pp->nedits == pp->edits_cap) {
		size_t cap = pp->edits_cap ? 2 * pp->edits_cap : 64;
		struct pb_edit *e = realloc(pp->edits, cap * sizeof(*e));
		if (!e)
			return false;
		pp->edits = e;
		pp->edits_cap = cap;
	}
	pp->edits[pp->nedits++] = (struct pb_edit){
		off, len, rep, pp->pb_rep.len - rep,
	};
	return true;
}

/* The enclosing frame or message grows by |delta| bytes. */
static void pb_grow(struct pb_job *j, int64_t delta)
{
	if (j->depth)
		j->open[j->depth - 1].delta += delta;
}

/* |nd|'s content changed by |delta| bytes: its length prefix (if it has
 * one) is written again, and the enclosing frame or message grows by
 * both. */
static int pb_prefix(struct pb_job *j, const struct policy_pb_node *nd,
		     int64_t delta)
{
	if (!delta)
		return 0;
	if (!nd->hdr_len) {
		pb_grow(j, delta);
		return 0;
	}
	int64_t len = (int64_t)nd->len + delta;
	if (len < 0 || len > UINT32_MAX) {
		j->failed = true;
		return 1;
	}
	struct extproc_buf *b = &j->pp->pb_rep;
	size_t rep = b->len;
	uint8_t p[5];
	unsigned k = 0;
	if (nd->frame) {
		for (; k < 4; k++)
			p[k] = (uint8_t)(len >> (24 - 8 * k));
	} else {
		uint64_t v = (uint64_t)len;
		do {
			p[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v);
	}
	/* a frame keeps its flag byte */
	uint32_t at = nd->frame ? nd->hdr + 1 : nd->hdr;
	uint32_t old = nd->frame ? 4 : nd->hdr_len;
	if (!extproc_buf_put(b, p, k) || !pb_edit(j, at, old, rep)) {
		j->failed = true;
		return 1;
	}
	pb_grow(j, delta + (int64_t)k - old);
	return 0;
}

/* |len| bytes at |in| onto |b|, each byte of the |n| spans a '*'. */
static bool stars_in_place(struct extproc_buf *b, const uint8_t *in,
			   size_t len, const struct policy_span *sp, unsigned n)
{
	size_t at = b->len;
	if (!extproc_buf_put(b, in, len))
		return false;
	for (unsigned i = 0; i < n; i++)
		memset(b->p + at + sp[i].off, '*', sp[i].len);
	return true;
}

/* A field with spans: its new bytes (tokens or stars in place). */
static int pb_text(struct pb_job *j, const struct policy_pb_node *nd,
		   const struct policy_span *sp, unsigned n)
{
	struct extproc_policy *pp = j->pp;
	const struct extproc_chunk *c = j->c;
	if (denied(pp, c->part, sp, (int)n, j->d)) {
		j->denied = true;
		return 1;
	}
	struct policy_span local[MAX_SPANS];
	for (unsigned i = 0; i < n; i++) {
		local[i] = sp[i];
		local[i].off -= nd->off;
	}
	struct record_seal_where w = { j->xd->record_id, sections[c->part] };
	struct record_seal_sink out = sink(&pp->pb_rep), ns;
	size_t rep = pp->pb_rep.len;
	struct extproc_buf *found =
		&j->xd->findings[c->part == EXTPROC_RESP_BODY];
	/* in place: the record gets the tokens, the traffic one '*' per
	 * byte of each span, so no length moves */
	if (record_seal_replace(pp->rs, j->xd->route, &w, true,
				c->off + nd->off, local, n, c->data + nd->off,
				nd->len, nd->in_place ? NULL : &out,
				notes_sink(j->xd, found, &ns)) < 0 ||
	    (nd->in_place && !stars_in_place(&pp->pb_rep, c->data + nd->off,
					     nd->len, local, n)) ||
	    !pb_edit(j, nd->off, nd->len, rep)) {
		j->failed = true;
		return 1;
	}
	return pb_prefix(j, nd, (int64_t)(pp->pb_rep.len - rep) - nd->len);
}

/* A frame or nested message ends: its length prefix is written again if
 * its content changed, and its parent grows by what it grew. */
static int pb_leave(struct pb_job *j, const struct policy_pb_node *nd)
{
	return pb_prefix(j, nd, j->open[--j->depth].delta);
}


static int pb_event(void *user, enum policy_pb_event ev,
		    const struct policy_pb_node *nd,
		    const struct policy_span *sp, unsigned n)
{
	struct pb_job *j = user;
	switch (ev) {
	case POLICY_PB_ENTER:
		if (j->depth == PB_DEPTH_MAX) {
			j->failed = true;
			return 1;
		}
		j->open[j->depth].nd = *nd;
		j->open[j->depth++].delta = 0;
		return 0;
	case POLICY_PB_LEAVE:
		return pb_leave(j, nd);
	case POLICY_PB_TEXT:
		return pb_text(j, nd, sp, n);
	}
	return 0;
}

static int edit_cmp(const void *a, const void *b)
{
	const struct pb_edit *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* The body with every edit applied, in input order (edits never
 * overlap: a length prefix is never inside a field's content). */
static bool pb_write(struct extproc_policy *pp, const uint8_t *in,
		     size_t len, struct extproc_buf *out)
{
	qsort(pp->edits, pp->nedits, sizeof(*pp->edits), edit_cmp);
	size_t pos = 0;
	for (size_t i = 0; i < pp->nedits; i++) {
		const struct pb_edit *e = &pp->edits[i];
		if (!extproc_buf_put(out, in + pos, e->off - pos) ||
		    !extproc_buf_put(out, pp->pb_rep.p + e->rep, e->rep_len))
			return false;
		pos = e->off + e->len;
	}
	return extproc_buf_put(out, in + pos, len - pos);
}

/* A protobuf body (gRPC frames, one message, or GRPC mode's de-framed
 * message): tokens go into its string and bytes fields and every length
 * around them is fixed, so the data plane gets valid messages. */
static enum extproc_verdict pb_body(struct extproc_policy *pp,
				    struct extproc_xdec *xd,
				    const struct extproc_chunk *c,
				    struct extproc_decision *d, unsigned how)
{
	struct pb_job j = { .pp = pp, .xd = xd, .c = c, .d = d };
	struct extproc_buf *found = &xd->findings[c->part == EXTPROC_RESP_BODY];
	size_t undo = found->len;
	struct policy_span sp[MAX_SPANS];
	pp->nedits = 0;
	pp->pb_rep.len = 0;
	/* a chunk decided without the ones around it (no holding): the
	 * bytes continuing a field at its start and those of a field it
	 * cuts at its end are guarded as a text chunk's ends are */
	struct extproc_buf *tail = &xd->body_tail[c->part == EXTPROC_RESP_BODY];
	struct policy_pb_chunk ck = {
		.skip = c->pb_skip, .cut_end = c->pb_cut,
		.head = c->pb_skip ? head_guard(tail, c->data, c->len) : 0,
	};
	if (c->pb_cut && !keep_tail(tail, c))
		return d->verdict = EXTPROC_REMOVE; /* no memory: fail closed */
	int rc = policy_scan_protobuf(xd->route, c->data, c->len, how, &ck, sp,
				      MAX_SPANS, NULL, pb_event, &j);
	enum extproc_verdict v = EXTPROC_REPLACE;
	if (j.denied)
		v = EXTPROC_DENY;
	else if (j.failed || rc < 0)
		v = EXTPROC_REMOVE; /* no memory, over 4 GiB: fail closed */
	else if (!pp->nedits)
		v = EXTPROC_KEEP;
	else if (!pb_write(pp, c->data, c->len, d->out))
		v = EXTPROC_REMOVE;
	if (v == EXTPROC_DENY || v == EXTPROC_REMOVE)
		found->len = undo;
	pp->pb_rep.len = 0;
	return d->verdict = v;
}

/* A chunk scanned alone. A whole body without a content-type (none in
 * its headers, or no headers message: header mode SKIP) that parses as
 * JSON is scanned as JSON, so the JSON path rules apply; one that does
 * not (a log line "[INFO] ...", an INI section) stays text, as does a
 * body in several chunks (RFC 9110 8.3: a recipient may examine the data
 * when the type is missing). */
static int scan_whole(const struct policy_route *r,
		      const struct extproc_chunk *c, struct policy_span *sp)
{
	if (!c->ctype && !c->off && c->last) {
		/* a byte order mark, which the JSON scanner skips too */
		size_t i = c->len >= 3 && !memcmp(c->data, "\xef\xbb\xbf", 3) ? 3 : 0;
		while (i < c->len && (c->data[i] == ' ' || c->data[i] == '\t' ||
				      c->data[i] == '\r' || c->data[i] == '\n'))
			i++;
		if (i < c->len && (c->data[i] == '{' || c->data[i] == '[')) {
			unsigned f = 0;
			int n = policy_scan_body(r, "application/json", 16, c->data,
						 c->len, sp, MAX_SPANS - 2, &f);
			if (n < 0 || !(f & POLICY_SCAN_MALFORMED))
				return n;
		}
	}
	return policy_scan_body(r, c->ctype, c->ctype_len, c->data, c->len, sp,
				MAX_SPANS - 2, NULL);
}

static enum extproc_verdict apply_spans(struct extproc_policy *pp,
					struct extproc_xdec *xd,
					const struct extproc_chunk *c,
					struct extproc_decision *d,
					const struct policy_span *sp, int n);

static enum extproc_verdict pd_body(void *self, struct extproc_xdec *xd,
				    const struct extproc_chunk *c,
				    struct extproc_decision *d)
{
	struct extproc_policy *pp = self;
	/* a GRPC-mode message is protobuf whatever the content-type says */
	if (c->grpc_message ? !policy_route_scans_bodies(xd->route)
			    : !policy_scans_body(xd->route, c->ctype,
						 c->ctype_len))
		return d->verdict = EXTPROC_KEEP;
	bool is_pb;
	unsigned how = policy_body_protobuf(c->ctype, c->ctype_len, &is_pb);
	if (c->grpc_message) {
		/* one de-framed message, of the codec the content-type names
		 * (protobuf when it names none) */
		is_pb = true;
		how = c->compressed ? POLICY_PB_COMPRESSED
				    : how & (POLICY_PB_JSON | POLICY_PB_RAW);
	}
	struct policy_span sp[MAX_SPANS];
	if ((c->encoded || c->wide) && !c->grpc_message) {
		/* compressed (content-encoding) or UTF-16/32: nothing in it
		 * can be read, and stars or a token would break it:
		 * limits.unscanned over all of it, no chunk guards */
		int n = policy_scan_opaque(xd->route, c->data, c->len,
					   c->encoded ? POLICY_RULE_LIMIT_COMPRESSED
						      : POLICY_RULE_LIMIT_CHARSET,
					   sp, MAX_SPANS - 2);
		return n < 0 ? (d->verdict = EXTPROC_REMOVE)
			     : apply_spans(pp, xd, c, d, sp, n);
	}
	if (is_pb)
		return pb_body(pp, xd, c, d, how);
	unsigned flags = 0;
	/* JSON and forms are read on from chunk to chunk; other types are
	 * scanned chunk by chunk, guarded at both ends */
	bool stream = (c->off || !c->last) &&
		      policy_body_reads_on(c->ctype, c->ctype_len);
	int n = stream ? scan_chunk(pp, xd, c, sp, &flags)
		       : scan_whole(xd->route, c, sp);
	if (n < 0)
		return d->verdict = EXTPROC_REMOVE; /* no memory, over 4 GiB */
	/* a JSON parse that broke off (syntax, body_bytes, span slots)
	 * leaves the end of the chunk to the detectors alone: guarded */
	bool parsed = stream &&
		      !(flags & (POLICY_SCAN_MALFORMED | POLICY_SCAN_BODY_CUT |
				 POLICY_SCAN_SPANS_FULL));
	struct extproc_buf *tail = &xd->body_tail[c->part == EXTPROC_RESP_BODY];
	n = guard_boundaries(sp, n, c, flags, parsed, tail);
	if (!c->last && !keep_tail(tail, c))
		return d->verdict = EXTPROC_REMOVE; /* no memory: fail closed */
	return apply_spans(pp, xd, c, d, sp, n);
}

/* The decision for body chunk |c| from its |n| spans: kept, denied, or
 * replaced with the spans sealed, and the findings noted. */
static enum extproc_verdict apply_spans(struct extproc_policy *pp,
					struct extproc_xdec *xd,
					const struct extproc_chunk *c,
					struct extproc_decision *d,
					const struct policy_span *sp, int n)
{
	if (!n)
		return d->verdict = EXTPROC_KEEP;
	if (denied(pp, c->part, sp, n, d))
		return d->verdict = EXTPROC_DENY;
	struct extproc_buf *found = &xd->findings[c->part == EXTPROC_RESP_BODY];
	struct record_seal_where w = { xd->record_id, sections[c->part] };
	struct record_seal_sink out = sink(d->out), ns;
	size_t undo = found->len;
	if (record_seal_replace(pp->rs, xd->route, &w, true, c->off, sp,
				(unsigned)n, c->data, c->len, &out,
				notes_sink(xd, found, &ns)) < 0) {
		found->len = undo; /* out of memory: fail closed */
		return d->verdict = EXTPROC_REMOVE;
	}
	return d->verdict = EXTPROC_REPLACE;
}

static bool pd_reads_body(void *self, const struct extproc_xdec *xd,
			  const uint8_t *ctype, size_t ctype_len)
{
	(void)self;
	return policy_scans_body(xd->route, ctype, ctype_len);
}

/* ---- life ------------------------------------------------------------------------ */

static const struct extproc_decider_ops policy_ops = {
	.begin = pd_begin,
	.decide_header = pd_header,
	.decide_body = pd_body,
	.reads_body = pd_reads_body,
};

struct extproc_policy *extproc_policy_new(const struct policy *pol,
					  struct keys_cache *keys,
					  unsigned worker,
					  struct st_counters *c)
{
	struct extproc_policy *pp = calloc(1, sizeof(*pp));
	if (!pp)
		return NULL;
	if (!pol) {
		char err[256];
		pol = pp->own = policy_builtin(err, sizeof(err));
	}
	pp->pol = pol;
	pp->keys = keys;
	pp->worker = worker;
	pp->rs = pol ? record_seal_new(pol, keys, worker, c) : NULL;
	if (!pp->rs) {
		extproc_policy_free(pp);
		return NULL;
	}
	return pp;
}

void extproc_policy_free(struct extproc_policy *pp)
{
	if (!pp)
		return;
	record_seal_free(pp->rs);
	extproc_buf_free(&pp->scratch);
	extproc_buf_free(&pp->pb_rep);
	free(pp->edits);
	policy_free(pp->own);
	free(pp);
}

struct extproc_decider extproc_policy_decider(struct extproc_policy *pp)
{
	return (struct extproc_decider){ .ops = &policy_ops, .self = pp };
}

void extproc_policy_online(struct extproc_policy *pp, bool on)
{
	if (!pp->keys)
		return;
	record_seal_quiescent(pp->rs);
	if (on)
		keys_cache_online(pp->keys, pp->worker);
	else
		keys_cache_offline(pp->keys, pp->worker);
}

void extproc_policy_quiescent(struct extproc_policy *pp)
{
	/* record_seal_quiescent() passes a quiescent point only while the
	 * sealer holds a snapshot; an idle thread must pass one too, or the
	 * snapshots published since its last one are never reclaimed. */
	record_seal_quiescent(pp->rs);
	if (pp->keys)
		keys_cache_quiescent(pp->keys, pp->worker);
}
