/* libFuzzer target: protobuf bodies -- the schema-less wire-format walker
 * (policy_proto.c, policy_scan_protobuf()) and ext_proc's rewrite of the
 * lengths around the tokens it puts in (extproc_policy.c), with the
 * built-in policy and a test DEK, so values are really sealed and
 * tokenized.
 *
 * Input: how (u8) body.
 *   how & 1: gRPC frames, their codec by (how >> 4) & 3: application/grpc,
 *            grpc+json, grpc-web, grpc+thrift; else one message
 *            (application/x-protobuf);
 *   how & 2: GRPC body mode's de-framed message (whatever the type says),
 *            how & 4 its compressed flag;
 *   how & 8: a response body (a request's may be denied);
 *   how >> 6: the first (how >> 6) * 5 bytes (at most all) continue a
 *            frame an earlier chunk began (pb_skip: unreadable).
 *
 * Invariants (abort on violation): every span the walker reports lies
 * inside the field it is reported with, sorted and disjoint; frames and
 * nested messages open and close in pairs; a body the walker read without
 * a malformation comes back from the rewrite without one either, and with
 * as many frames (the rewrite fixed every length it changed).
 *
 * Seeds: tests/fuzz/seeds/protobuf (tests/fuzz/make_extproc_seeds.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/extproc.h"
#include "sealtap/policy.h"
#include "testkeys.h"

#define SPANS 32

struct walk_check {
	uint32_t len;
	unsigned depth, frames;
	uint32_t last_end; /* end of the previous span: they come in order */
};

/* A broken invariant: the one way a fuzz target reports (libFuzzer keeps
 * the input that crashed it). */
static void require(bool holds)
{
	if (!holds)
		abort();
}

static bool span_ok(const struct walk_check *w,
		    const struct policy_pb_node *nd, const struct policy_span *s)
{
	return s->len && s->off >= nd->off &&
	       s->off + s->len <= nd->off + nd->len && s->off >= w->last_end &&
	       s->rule && s->action > POLICY_ACTION_KEEP;
}

static int on_event(void *user, enum policy_pb_event ev,
		    const struct policy_pb_node *nd,
		    const struct policy_span *sp, unsigned n)
{
	struct walk_check *w = user;
	switch (ev) {
	case POLICY_PB_ENTER:
		require(nd->hdr + nd->hdr_len == nd->off && nd->off <= w->len &&
			!(nd->frame && w->depth));
		w->frames += nd->frame;
		w->depth++;
		break;
	case POLICY_PB_LEAVE:
		require(w->depth);
		w->depth--;
		break;
	case POLICY_PB_TEXT:
		require(n && n <= SPANS && nd->off + nd->len <= w->len &&
			(!nd->hdr_len || nd->hdr + nd->hdr_len == nd->off));
		for (unsigned i = 0; i < n; i++) {
			require(span_ok(w, nd, &sp[i]));
			w->last_end = sp[i].off + sp[i].len;
		}
		break;
	}
	return 0;
}

/* Walks |b|: returns its POLICY_SCAN_* flags, fills |w|. */
static unsigned walk(const struct policy_route *r, const uint8_t *b,
		     size_t len, unsigned how, size_t skip, bool cut,
		     struct walk_check *w)
{
	struct policy_span sp[SPANS];
	unsigned flags = 0;
	*w = (struct walk_check){ .len = (uint32_t)len };
	struct policy_pb_chunk ck = { .skip = skip, .head = skip / 2,
				      .cut_end = cut };
	require(policy_scan_protobuf(r, b, len, how, &ck, sp, SPANS, &flags,
				     on_event, w) == 0 && !w->depth);
	return flags;
}

static struct policy *pol;
static struct extproc_policy *pp;
static struct extproc_decider dec;
static struct st_counters ctr;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pp) {
		char err[256];
		pol = policy_builtin(err, sizeof(err));
		static const char *const tenants[] = { "default" };
		struct keys_cache *keys = testkeys_new(1, tenants, 1, 0x5a, NULL, 0);
		pp = pol && keys ? extproc_policy_new(pol, keys, 0, &ctr) : NULL;
		require(pp);
		extproc_policy_online(pp, true);
		dec = extproc_policy_decider(pp);
	}
	if (size < 1)
		return 0;
	unsigned how = data[0];
	size_t len = size - 1;
	uint8_t *body = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	if (!body)
		return 0;
	memcpy(body, data + 1, len);
	const struct policy_route *r = policy_default_route(pol);
	static const char *const framed[] = {
		"application/grpc", "application/grpc+json",
		"application/grpc-web", "application/grpc+thrift",
	};
	const char *ctype = how & 1 ? framed[(how >> 4) & 3]
				    : "application/x-protobuf";
	bool grpc_message = how & 2, compressed = grpc_message && (how & 4);
	bool is_pb;
	unsigned wh = policy_body_protobuf(ctype, strlen(ctype), &is_pb);
	if (grpc_message)
		wh = compressed ? POLICY_PB_COMPRESSED
				: wh & (POLICY_PB_JSON | POLICY_PB_RAW);
	size_t skip = (size_t)(how >> 6) * 5;
	if (skip > len)
		skip = len;
	/* a chunk that passes a frame on unfinished: guarded at its end */
	bool cut = !grpc_message && len % 3 == 0;
	struct walk_check in_w, out_w;
	unsigned in_flags = walk(r, body, len, wh, skip, cut, &in_w);

	struct extproc_xdec xd = { .notes = true };
	memcpy(xd.record_id, "00000000000000f2", 16);
	struct extproc_mode m = { 0 };
	struct policy_request rq = { .path = "/p.S/M", .path_len = 6 };
	dec.ops->begin(dec.self, &xd, &rq, &m);
	struct extproc_buf out = { 0 };
	struct extproc_decision d = { .out = &out };
	struct extproc_chunk c = {
		.part = how & 8 ? EXTPROC_RESP_BODY : EXTPROC_REQ_BODY,
		.data = body, .len = len, .last = !cut, .pb_cut = cut,
		.ctype = (const uint8_t *)ctype, .ctype_len = strlen(ctype),
		.grpc_message = grpc_message, .compressed = compressed,
		.pb_skip = grpc_message ? 0 : skip,
	};
	enum extproc_verdict v = dec.ops->decide_body(dec.self, &xd, &c, &d);
	/* the unreadable lead keeps its length: the walk of the output
	 * starts where the input's did. JSON content is the JSON scanner's
	 * (a container too deep is starred there, docs/policy.md); raw
	 * content is not parsed */
	if (v == EXTPROC_REPLACE && !c.pb_skip &&
	    !(wh & (POLICY_PB_JSON | POLICY_PB_RAW)) &&
	    !(in_flags & (POLICY_SCAN_MALFORMED | POLICY_SCAN_SPANS_FULL))) {
		unsigned out_flags = walk(r, out.p, out.len, wh, 0, false,
					  &out_w);
		require(!(out_flags & POLICY_SCAN_MALFORMED) &&
			out_w.frames == in_w.frames);
	}
	extproc_buf_free(&out);
	extproc_buf_free(&xd.applied);
	extproc_buf_free(&xd.findings[0]);
	extproc_buf_free(&xd.findings[1]);
	extproc_buf_free(&xd.body_state[0]);
	extproc_buf_free(&xd.body_state[1]);
	extproc_buf_free(&xd.body_tail[0]);
	extproc_buf_free(&xd.body_tail[1]);
	extproc_policy_quiescent(pp);
	free(body);
	return 0;
}
