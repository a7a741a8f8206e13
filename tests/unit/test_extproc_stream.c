/* Tests for src/extproc_stream.c: the ext_proc exchange state machine.
 *
 * Sequences of ProcessingRequest messages (built with protobuf-c, as Envoy
 * would send them) go in; the reply types that come out, the error that
 * ends the stream, and the counters are checked step by step, as a table.
 * Separate tests look at the mutations themselves (raw_value only, append
 * actions, request id, protected headers), FULL_DUPLEX_STREAMED chunking,
 * unknown fields, mode overrides, content-length of buffered bodies, and
 * the record (valid JSON, credential values never in plain). The decider
 * is the real one: the policy decider with a small policy and a test DEK
 * (tests/unit/testkeys.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"
#include "sealtap/extproc.h"
#include "sealtap/policy.h"
#include "sealtap/seal.h"
#include "../fuzz/json_check.h"
#include "h2_json.h"
#include "testkeys.h"

#define CANARY "CANARYunit5ecret"

typedef Envoy__Service__ExtProc__V3__ProcessingResponse PRESP;

enum kind { RQH = 1, RSH, RQB, RSB, RQT, RST, EMPTY };

struct step {
	enum kind kind;
	const char *path;  /* RQH: :path ("/" if NULL) */
	const char *ctype; /* headers: content-type and content-length 99 */
	const char *body;  /* bodies */
	int eos;
	int obs;           /* observability_mode */
	int req_mode, resp_mode; /* protocol_config, -1 = none */
	int rc;            /* 0 or -grpc status */
	const char *want;  /* reply cases, space separated ("" = none) */
};

struct scen {
	const char *name;
	struct step steps[12];
	const char *end_want; /* replies from extproc_xchg_end_of_input */
};

#define NONE_PC .req_mode = -1, .resp_mode = -1
#define S(...) { __VA_ARGS__, NONE_PC }

static const char *const case_names[] = {
	[0] = "none", [1] = "request_headers", [2] = "response_headers",
	[3] = "request_body", [4] = "response_body", [5] = "request_trailers",
	[6] = "response_trailers", [7] = "immediate_response",
};

static const struct scen scens[] = {
	{ "headers only", {
		{ RQH, .eos = 1, .req_mode = 0, .resp_mode = 0, .want = "request_headers" },
		S(RSH, .eos = 1, .want = "response_headers"),
	}, "" },
	{ "streamed bodies answered in order", {
		{ RQH, .req_mode = 1, .resp_mode = 1, .want = "request_headers" },
		S(RQB, .body = "a", .want = "request_body"),
		S(RQB, .body = "b", .want = "request_body"),
		S(RQB, .body = "c", .eos = 1, .want = "request_body"),
		S(RSH, .want = "response_headers"),
		S(RSB, .body = "x", .eos = 1, .want = "response_body"),
	}, "" },
	{ "buffered", {
		{ RQH, .req_mode = 2, .resp_mode = 2, .want = "request_headers" },
		S(RQB, .body = "{\"password\":\"" CANARY "\"}", .eos = 1, .want = "request_body"),
		S(RSH, .want = "response_headers"),
		S(RSB, .body = "ok", .eos = 1, .want = "response_body"),
	}, "" },
	{ "full duplex: buffered until trailers, then streamed + trailers", {
		{ RQH, .req_mode = 4, .resp_mode = 4, .want = "request_headers" },
		S(RQB, .body = "aaa", .want = ""),
		S(RQB, .body = "bbb", .want = ""),
		S(RQT, .want = "request_body request_trailers"),
		S(RSH, .want = "response_headers"),
		S(RSB, .body = "zz", .eos = 1, .want = "response_body"),
		S(RSB, .body = "late", .want = ""),
	}, "" },
	{ "full duplex: flushed at half-close", {
		{ RQH, .req_mode = 4, .resp_mode = 0, .want = "request_headers" },
		S(RQB, .body = "tail", .want = ""),
	}, "request_body" },
	{ "observability: nothing answered", {
		{ RQH, .obs = 1, .req_mode = 1, .resp_mode = 0, .want = "" },
		S(RQB, .obs = 1, .body = "x", .eos = 1, .want = ""),
		S(RSH, .obs = 1, .want = ""),
	}, "" },
	{ "deny: immediate_response, then silence", {
		S(RQH, .path = "/admin/x", .want = "immediate_response"),
		S(RQB, .body = "x", .want = ""),
		S(RSH, .want = ""),
	}, "" },
	{ "response side may start first (request headers skipped)", {
		S(RSH, .want = "response_headers"),
		S(RSB, .body = "x", .want = "response_body"),
		S(RST, .want = "response_trailers"),
	}, "" },
	{ "request body while the response streams", {
		{ RQH, .req_mode = 1, .resp_mode = 1, .want = "request_headers" },
		S(RSH, .want = "response_headers"),
		S(RQB, .body = "late req", .eos = 1, .want = "request_body"),
		S(RSB, .body = "x", .eos = 1, .want = "response_body"),
	}, "" },
	{ "empty ProcessingRequest", {
		S(EMPTY, .rc = -EXTPROC_GRPC_INVALID_ARGUMENT),
	}, NULL },
	{ "request_headers twice", {
		S(RQH, .want = "request_headers"),
		S(RQH, .rc = -EXTPROC_GRPC_INVALID_ARGUMENT),
	}, NULL },
	{ "headers after body", {
		S(RQB, .body = "x", .want = "request_body"),
		S(RQH, .rc = -EXTPROC_GRPC_INVALID_ARGUMENT),
	}, NULL },
	{ "body after trailers", {
		S(RSH, .want = "response_headers"),
		S(RST, .want = "response_trailers"),
		S(RSB, .body = "x", .rc = -EXTPROC_GRPC_INVALID_ARGUMENT),
	}, NULL },
	{ "trailers twice", {
		S(RQT, .want = "request_trailers"),
		S(RQT, .rc = -EXTPROC_GRPC_INVALID_ARGUMENT),
	}, NULL },
};

static uint8_t *build(const struct step *st, size_t *len)
{
	Envoy__Service__ExtProc__V3__ProcessingRequest r =
		ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
	Envoy__Config__Core__V3__HeaderValue hv[5];
	Envoy__Config__Core__V3__HeaderValue *hp[5];
	const char *kv[5][2] = {
		{ ":path", st->path ? st->path : "/" },
		{ "authorization", "Bearer " CANARY },
		{ "accept", "*/*" },
		{ "content-type", st->ctype },
		{ "content-length", "99" },
	};
	int nh = st->ctype ? 5 : 3;
	for (int i = 0; i < nh; i++) {
		envoy__config__core__v3__header_value__init(&hv[i]);
		hv[i].key = (char *)kv[i][0];
		hv[i].raw_value.data = (uint8_t *)kv[i][1];
		hv[i].raw_value.len = strlen(kv[i][1]);
		hp[i] = &hv[i];
	}
	Envoy__Config__Core__V3__HeaderMap map = ENVOY__CONFIG__CORE__V3__HEADER_MAP__INIT;
	map.headers = hp;
	map.n_headers = (size_t)nh;
	Envoy__Service__ExtProc__V3__HttpHeaders hh = ENVOY__SERVICE__EXT_PROC__V3__HTTP_HEADERS__INIT;
	hh.headers = &map;
	hh.end_of_stream = st->eos;
	Envoy__Service__ExtProc__V3__HttpBody hb = ENVOY__SERVICE__EXT_PROC__V3__HTTP_BODY__INIT;
	hb.body.data = (uint8_t *)st->body;
	hb.body.len = st->body ? strlen(st->body) : 0;
	hb.end_of_stream = st->eos;
	Envoy__Service__ExtProc__V3__HttpTrailers ht = ENVOY__SERVICE__EXT_PROC__V3__HTTP_TRAILERS__INIT;
	ht.trailers = &map;
	Envoy__Service__ExtProc__V3__ProtocolConfiguration pc =
		ENVOY__SERVICE__EXT_PROC__V3__PROTOCOL_CONFIGURATION__INIT;
	if (st->req_mode >= 0 && st->resp_mode >= 0) {
		pc.request_body_mode = st->req_mode;
		pc.response_body_mode = st->resp_mode;
		r.protocol_config = &pc;
	}
	r.observability_mode = st->obs;
	switch (st->kind) {
	case RQH: r.request_case = 2; r.request_headers = &hh; break;
	case RSH: r.request_case = 3; r.response_headers = &hh; break;
	case RQB: r.request_case = 4; r.request_body = &hb; break;
	case RSB: r.request_case = 5; r.response_body = &hb; break;
	case RQT: r.request_case = 6; r.request_trailers = &ht; break;
	case RST: r.request_case = 7; r.response_trailers = &ht; break;
	default: break;
	}
	*len = envoy__service__ext_proc__v3__processing_request__get_packed_size(&r);
	uint8_t *p = malloc(*len + 1);
	envoy__service__ext_proc__v3__processing_request__pack(&r, p);
	return p;
}

/* /admin is denied, /static/ has no body rules, everything else extends
 * the built-in rules (which read bodies). */
static const char test_policy[] =
	"tenants: {t: {kms: pkcs11, kek: k}}\n"
	"rule_sets:\n"
	"  plain: {headers: {authorization: seal}}\n"
	"  forbidden: {extends: builtin, headers: {\":path\": deny}}\n"
	"  main: {extends: builtin, headers: {x-gone: redact}}\n"
	"routes:\n"
	"  - {name: admin, match: {path_prefix: /admin}, rules: forbidden}\n"
	"  - {name: static, match: {path_prefix: /static/}, rules: plain}\n"
	"default: {tenant: t, rules: main}\n";

#define DEK_FILL 0x5a

struct fixture {
	struct policy *pol;
	struct keys_cache *keys;
	struct extproc_policy *pd;
	struct extproc_counters ctr;
	struct extproc_ctx ctx;
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	char err[256];
	f->pol = policy_load_text("test.yaml", test_policy,
				  sizeof(test_policy) - 1, err, sizeof(err));
	if (!f->pol)
		print_error("%s\n", err);
	assert_non_null(f->pol);
	static const char *const tenants[] = { "t" };
	f->keys = testkeys_new(1, tenants, 1, DEK_FILL, NULL, 0);
	assert_non_null(f->keys);
	f->pd = extproc_policy_new(f->pol, f->keys, 0, &f->ctr.seal);
	assert_non_null(f->pd);
	extproc_policy_online(f->pd, true);
	f->ctx.decider = extproc_policy_decider(f->pd);
	f->ctx.ctr = &f->ctr;
	f->ctx.request_id_header = EXTPROC_REQUEST_ID_DEFAULT;
	f->ctx.max_record = 1 << 20;
	f->ctx.records = true;
	f->ctx.arena = extproc_arena_new(4096);
	assert_non_null(f->ctx.arena);
}

static void fixture_fini(struct fixture *f)
{
	extproc_arena_free(f->ctx.arena);
	extproc_buf_free(&f->ctx.scratch);
	extproc_policy_online(f->pd, false);
	extproc_policy_free(f->pd);
	keys_cache_free(f->keys);
	policy_free(f->pol);
}

/* Reply cases in |out| as a space-separated string; frees nothing. */
static void reply_cases(const struct extproc_buf *out, char *s, size_t sl,
			unsigned *n)
{
	s[0] = '\0';
	*n = 0;
	size_t off = 0;
	while (off < out->len) {
		assert_true(out->len - off >= 5);
		assert_int_equal(out->p[off], 0);
		uint32_t ml = (uint32_t)out->p[off + 1] << 24 | (uint32_t)out->p[off + 2] << 16 |
			      (uint32_t)out->p[off + 3] << 8 | out->p[off + 4];
		assert_true(off + 5 + ml <= out->len);
		PRESP *r = envoy__service__ext_proc__v3__processing_response__unpack(
			NULL, ml, out->p + off + 5);
		assert_non_null(r);
		unsigned c = r->response_case;
		const char *name = c < 8 ? case_names[c] : "?";
		snprintf(s + strlen(s), sl - strlen(s), "%s%s", *n ? " " : "", name);
		(*n)++;
		envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
		off += 5 + ml;
	}
}

static void test_sequences(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scens) / sizeof(scens[0]); i++) {
		const struct scen *sc = &scens[i];
		struct fixture f;
		fixture_init(&f);
		struct extproc_xchg_info info = { .peer = "127.0.0.1:1", .stream_id = 1,
						  .id = 0x1234, .start_ns = 1 };
		struct extproc_xchg *x = extproc_xchg_new(&info);
		struct extproc_buf out = { 0 };
		char got[256];
		unsigned n;
		int rc = 0;
		for (size_t k = 0; k < 12 && sc->steps[k].kind; k++) {
			const struct step *st = &sc->steps[k];
			size_t len;
			uint8_t *m = build(st, &len);
			const char *why = NULL;
			out.len = 0;
			rc = extproc_xchg_message(x, &f.ctx, m, len, &out, &why);
			free(m);
			if (rc != st->rc)
				print_error("%s step %zu: rc %d want %d (%s)\n", sc->name,
					    k, rc, st->rc, why ? why : "");
			assert_int_equal(rc, st->rc);
			if (rc) {
				assert_non_null(why);
				assert_null(strstr(why, CANARY));
				assert_int_equal(out.len, 0);
				break;
			}
			reply_cases(&out, got, sizeof(got), &n);
			if (strcmp(got, st->want))
				print_error("%s step %zu: replies \"%s\", want \"%s\"\n",
					    sc->name, k, got, st->want);
			assert_string_equal(got, st->want);
			if (out.len)
				assert_null(memmem(out.p, out.len, CANARY, strlen(CANARY)));
		}
		if (sc->end_want) {
			const char *why = NULL;
			out.len = 0;
			assert_int_equal(extproc_xchg_end_of_input(x, &f.ctx, &out, &why), 0);
			reply_cases(&out, got, sizeof(got), &n);
			assert_string_equal(got, sc->end_want);
		}
		/* the record: valid JSON, credentials never in plain */
		struct extproc_buf rec = { 0 };
		size_t rl = extproc_xchg_record(x, &f.ctx, EXTPROC_END_COMPLETE, 0,
						rc ? -rc : 0, 2, &rec);
		assert_true(rl > 0);
		if (!json_record_ok((const char *)rec.p, rl))
			print_error("bad record: %.*s\n", (int)rl, rec.p);
		assert_true(json_record_ok((const char *)rec.p, rl));
		if (memmem(rec.p, rl, CANARY, strlen(CANARY)))
			print_error("%s: %.*s\n", sc->name, (int)rl, rec.p);
		assert_null(memmem(rec.p, rl, CANARY, strlen(CANARY)));
		assert_non_null(memmem(rec.p, rl, "\"source\":\"extproc\"", 18));
		extproc_buf_free(&rec);
		extproc_buf_free(&out);
		extproc_xchg_free(x);
		fixture_fini(&f);
	}
}

/* One reply of |out| (the first), unpacked; free with free_reply(). */
static PRESP *first_reply(const struct extproc_buf *out)
{
	assert_true(out->len > 5);
	PRESP *r = envoy__service__ext_proc__v3__processing_response__unpack(
		NULL, out->len - 5, out->p + 5);
	assert_non_null(r);
	return r;
}

static void free_reply(PRESP *r)
{
	envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
}

/* Sends |st| to |x|; its replies in |out| (reset first). */
static void send_step(struct fixture *f, struct extproc_xchg *x,
		      const struct step *st, struct extproc_buf *out)
{
	size_t len;
	uint8_t *m = build(st, &len);
	const char *why = NULL;
	out->len = 0;
	int rc = extproc_xchg_message(x, &f->ctx, m, len, out, &why);
	if (rc)
		print_error("rc %d: %s\n", rc, why ? why : "");
	assert_int_equal(rc, 0);
	free(m);
}

/* Opens a seal token |tok| of tenant "t" made for |field| in record
 * |rid|; returns the plaintext length, the bytes in |pt|. */
static int open_token(const char *field, const char *rid, const uint8_t *tok,
		      size_t tlen, uint8_t *pt, size_t cap)
{
	uint8_t dek[SEAL_DEK_LEN];
	memset(dek, DEK_FILL, sizeof(dek));
	struct seal_gcm *g;
	assert_int_equal(seal_gcm_new(dek, "t", testkeys_id, NULL, &g), 0);
	int n = seal_token_open_gcm(g, field, strlen(field), rid, strlen(rid),
				    (const char *)tok, tlen, pt, cap);
	seal_gcm_free(g);
	return n;
}

static void test_mutation_shape(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p", .stream_id = 3, .id = 0xabcdef };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step st = S(RQH);
	struct extproc_buf out = { 0 };
	send_step(&f, x, &st, &out);
	PRESP *r = first_reply(&out);
	assert_int_equal(r->response_case, 1);
	Envoy__Service__ExtProc__V3__HeaderMutation *hm =
		r->request_headers->response->header_mutation;
	assert_int_equal(hm->n_set_headers, 2);
	/* authorization sealed, value in raw_value only: the tap's token,
	 * bound to the field and the record id */
	Envoy__Config__Core__V3__HeaderValue *h = hm->set_headers[0]->header;
	assert_string_equal(h->key, "authorization");
	assert_string_equal(h->value, "");
	char prefix[48];
	snprintf(prefix, sizeof(prefix), "stk1.g.%s.", testkeys_id);
	assert_true(h->raw_value.len > strlen(prefix));
	assert_memory_equal(h->raw_value.data, prefix, strlen(prefix));
	uint8_t pt[128];
	int n = open_token("request.headers:authorization", "0000000000abcdef",
			   h->raw_value.data, h->raw_value.len, pt, sizeof(pt));
	assert_int_equal(n, (int)strlen("Bearer " CANARY));
	assert_memory_equal(pt, "Bearer " CANARY, (size_t)n);
	/* ... and nowhere else: not in another field or record */
	assert_true(open_token("request.headers:x-api-key", "0000000000abcdef",
			       h->raw_value.data, h->raw_value.len, pt,
			       sizeof(pt)) < 0);
	assert_int_equal(hm->set_headers[0]->append_action,
			 ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD);
	/* Envoy reads the deprecated append flag, not append_action */
	assert_non_null(hm->set_headers[0]->append);
	assert_false(hm->set_headers[0]->append->value);
	/* request id: the record id, 16 hex digits */
	assert_string_equal(hm->set_headers[1]->header->key, EXTPROC_REQUEST_ID_DEFAULT);
	assert_memory_equal(hm->set_headers[1]->header->raw_value.data, "0000000000abcdef", 16);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mutations_replaced], 1);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mutations_added], 1);
	assert_int_equal(f.ctr.seal.v[ST_CTR_seal_sealed], 1);
	free_reply(r);
	extproc_buf_free(&out);
	extproc_xchg_free(x);
	fixture_fini(&f);
}

static void test_protected(void **state)
{
	(void)state;
	static const char *const yes[] = { ":path", ":authority", ":status", "host",
					   "HOST", "x-envoy-original-path", "X-Envoy-A", "" };
	static const char *const no[] = { "hostx", "x-envoy", "x-envoyz",
					  "authorization", "x-forwarded-host" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(extproc_header_protected((const uint8_t *)yes[i], strlen(yes[i])));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(extproc_header_protected((const uint8_t *)no[i], strlen(no[i])));
	/* a card number in :path is sealed in the record, never mutated */
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p", .id = 7 };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step st = S(RQH, .path = "/pay/4111111111111111");
	struct extproc_buf out = { 0 }, rec = { 0 };
	send_step(&f, x, &st, &out);
	PRESP *r = first_reply(&out);
	Envoy__Service__ExtProc__V3__HeaderMutation *hm =
		r->request_headers->response->header_mutation;
	for (size_t i = 0; i < hm->n_set_headers; i++)
		assert_string_not_equal(hm->set_headers[i]->header->key, ":path");
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mutations_protected], 1);
	free_reply(r);
	size_t rl = extproc_xchg_record(x, &f.ctx, EXTPROC_END_COMPLETE, 0, 0, 2, &rec);
	assert_null(memmem(rec.p, rl, "4111111111111111", 16));
	assert_non_null(memmem(rec.p, rl, "\"path\":\"/pay/stk1.g.", 20));
	extproc_buf_free(&rec);
	extproc_buf_free(&out);
	extproc_xchg_free(x);
	fixture_fini(&f);
}

static void test_unknown_fields_and_malformed(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p" };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step st = S(RSH);
	size_t len;
	uint8_t *m = build(&st, &len);
	uint8_t *m2 = malloc(len + 16);
	memcpy(m2, m, len);
	/* field 13 (bytes "hi") and field 99 (varint 1) */
	const uint8_t extra[] = { 13 << 3 | 2, 2, 'h', 'i', 0x98, 0x06, 1 };
	memcpy(m2 + len, extra, sizeof(extra));
	struct extproc_buf out = { 0 };
	const char *why;
	assert_int_equal(extproc_xchg_message(x, &f.ctx, m2, len + sizeof(extra), &out, &why), 0);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_msgs_unknown_fields], 1);
	assert_true(out.len > 5);
	static const uint8_t bad[] = { 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f };
	out.len = 0;
	assert_int_equal(extproc_xchg_message(x, &f.ctx, bad, sizeof(bad), &out, &why),
			 -EXTPROC_GRPC_INTERNAL);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_msgs_malformed], 1);
	free(m);
	free(m2);
	extproc_buf_free(&out);
	extproc_xchg_free(x);
	fixture_fini(&f);
}

static void test_full_duplex_chunking(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p" };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step h = { RQH, .req_mode = 4, .resp_mode = 4 };
	size_t len;
	uint8_t *m = build(&h, &len);
	struct extproc_buf out = { 0 };
	const char *why;
	assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
	free(m);
	/* 150000 bytes in 3 chunks, the last with end_of_stream: answered
	 * as chunks of at most 64 KiB once 64 KiB are pending */
	char *big = malloc(50001);
	memset(big, 'q', 50000);
	big[50000] = 0;
	size_t total = 0;
	unsigned replies = 0;
	for (int i = 0; i < 3; i++) {
		struct step b = S(RQB, .body = big, .eos = i == 2);
		m = build(&b, &len);
		out.len = 0;
		assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
		free(m);
		size_t off = 0;
		while (off < out.len) {
			uint32_t ml = (uint32_t)out.p[off + 1] << 24 | (uint32_t)out.p[off + 2] << 16 |
				      (uint32_t)out.p[off + 3] << 8 | out.p[off + 4];
			PRESP *r = envoy__service__ext_proc__v3__processing_response__unpack(
				NULL, ml, out.p + off + 5);
			assert_int_equal(r->response_case, 3);
			Envoy__Service__ExtProc__V3__StreamedBodyResponse *sb =
				r->request_body->response->body_mutation->streamed_response;
			assert_non_null(sb);
			assert_true(sb->body.len <= 65536);
			total += sb->body.len;
			replies++;
			if (sb->end_of_stream)
				assert_int_equal(total, 150000);
			envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
			off += 5 + ml;
		}
		if (i == 0)
			assert_int_equal(out.len, 0); /* 50000 < 64 KiB: held */
	}
	assert_int_equal(total, 150000);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_replies_streamed], replies);
	free(big);
	extproc_buf_free(&out);
	extproc_xchg_free(x);
	fixture_fini(&f);
}

/* The streamed_response bodies in |out|, side by side into |got| (NUL
 * ended); how many replies, and whether one ended the stream. */
static unsigned streamed(const struct extproc_buf *out, char *got, size_t cap,
			 bool *eos)
{
	unsigned n = 0;
	size_t gl = 0;
	*eos = false;
	for (size_t off = 0; off < out->len; n++) {
		uint32_t ml = (uint32_t)out->p[off + 1] << 24 | (uint32_t)out->p[off + 2] << 16 |
			      (uint32_t)out->p[off + 3] << 8 | out->p[off + 4];
		PRESP *r = envoy__service__ext_proc__v3__processing_response__unpack(
			NULL, ml, out->p + off + 5);
		assert_non_null(r);
		assert_int_equal(r->response_case, 3);
		Envoy__Service__ExtProc__V3__StreamedBodyResponse *sb =
			r->request_body->response->body_mutation->streamed_response;
		assert_non_null(sb);
		assert_true(gl + sb->body.len < cap);
		memcpy(got + gl, sb->body.data, sb->body.len);
		gl += sb->body.len;
		*eos |= sb->end_of_stream;
		envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
		off += 5 + ml;
	}
	got[gl] = 0;
	return n;
}

/* FULL_DUPLEX_STREAMED text is answered as it comes: the data plane passes
 * on only what sealtap sends and waits with no timeout, so an event stream
 * or a bidi call would hang on data held for more. Held: only the run at
 * the end a token cut by the next chunk could be part of, until data
 * follows or the tick finds it held for EXTPROC_FD_HOLD_NS (then answered
 * with its end guarded). */
static void test_full_duplex_interactive(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p" };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step h = { RQH, .ctype = "text/plain", .req_mode = 4,
			  .resp_mode = 4 };
	size_t len;
	uint8_t *m = build(&h, &len);
	struct extproc_buf out = { 0 };
	const char *why;
	char got[256];
	bool eos;
	assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
	free(m);
	static const struct {
		const char *in, *want; /* answered at once */
	} t[] = {
		{ "event: 1\n\n", "event: 1\n\n" },
		{ "{\"msg\":\"hi\"}\n", "{\"msg\":\"hi\"}\n" },
		{ "data: abc", "data: " }, /* "abc" may go on */
		{ "def ok ", "abcdef ok " },
		{ "tail", "" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct step b = S(RQB, .body = t[i].in);
		m = build(&b, &len);
		out.len = 0;
		assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
		free(m);
		streamed(&out, got, sizeof(got), &eos);
		assert_string_equal(got, t[i].want);
		assert_false(eos);
	}
	/* "tail" held: not before EXTPROC_FD_HOLD_NS, then guarded */
	out.len = 0;
	assert_int_equal(extproc_xchg_tick(x, &f.ctx, st_mono_ns(), &out, &why), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(extproc_xchg_tick(x, &f.ctx,
					   st_mono_ns() + 2 * EXTPROC_FD_HOLD_NS,
					   &out, &why), 0);
	assert_int_equal(streamed(&out, got, sizeof(got), &eos), 1);
	assert_string_equal(got, "****");
	/* a run longer than the guard (bulk data) gathers as before */
	char *run = malloc(POLICY_GUARD_MAX + 2);
	memset(run, 'q', POLICY_GUARD_MAX + 1);
	run[POLICY_GUARD_MAX + 1] = 0;
	struct step b = S(RQB, .body = run);
	m = build(&b, &len);
	out.len = 0;
	assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
	free(m);
	assert_int_equal(out.len, 0);
	struct step e = S(RQB, .body = " end", .eos = 1);
	m = build(&e, &len);
	assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
	free(m);
	char *all = malloc(POLICY_GUARD_MAX + 64);
	streamed(&out, all, POLICY_GUARD_MAX + 64, &eos);
	assert_true(eos);
	assert_int_equal(strlen(all), POLICY_GUARD_MAX + 5);
	free(all);
	free(run);
	extproc_buf_free(&out);
	extproc_xchg_free(x);
	fixture_fini(&f);
}

/* A request_body message carrying |blen| bytes of |body| (which may hold
 * NULs, so not through build()'s strlen); |*len| its size. */
static uint8_t *pack_body(const char *body, size_t blen, bool eos, size_t *len)
{
	struct step st = S(RQB, .body = "", .eos = eos);
	uint8_t *m = build(&st, len);
	Envoy__Service__ExtProc__V3__ProcessingRequest *r =
		envoy__service__ext_proc__v3__processing_request__unpack(NULL, *len, m);
	assert_non_null(r);
	free(m);
	r->request_body->body.data = (uint8_t *)body;
	r->request_body->body.len = blen;
	*len = envoy__service__ext_proc__v3__processing_request__get_packed_size(r);
	m = malloc(*len);
	envoy__service__ext_proc__v3__processing_request__pack(r, m);
	r->request_body->body.data = NULL;
	r->request_body->body.len = 0;
	envoy__service__ext_proc__v3__processing_request__free_unpacked(r, NULL);
	return m;
}

/* Sends |blen| bytes of |body| as a request body chunk of |x|; the
 * streamed_response bodies it got, side by side, into |got|. */
static unsigned send_chunk(struct fixture *f, struct extproc_xchg *x,
			   const char *body, size_t blen, bool eos, char *got,
			   size_t cap, bool *end)
{
	size_t len;
	uint8_t *m = pack_body(body, blen, eos, &len);
	struct extproc_buf out = { 0 };
	const char *why;
	assert_int_equal(extproc_xchg_message(x, &f->ctx, m, len, &out, &why), 0);
	free(m);
	unsigned n = streamed(&out, got, cap, end);
	extproc_buf_free(&out);
	return n;
}

/* A new exchange whose request headers (content-type |ctype|) announced
 * request body mode |mode| (1 STREAMED, 4 FULL_DUPLEX_STREAMED). */
static struct extproc_xchg *open_xchg(struct fixture *f, const char *ctype,
				      int mode)
{
	struct extproc_xchg_info info = { .peer = "p" };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step h = { RQH, .ctype = ctype, .req_mode = mode, .resp_mode = 0 };
	size_t len;
	uint8_t *m = build(&h, &len);
	struct extproc_buf out = { 0 };
	const char *why;
	assert_int_equal(extproc_xchg_message(x, &f->ctx, m, len, &out, &why), 0);
	free(m);
	extproc_buf_free(&out);
	return x;
}

/* Review findings on the FULL_DUPLEX hold and the body state a side keeps:
 * an email escaped in JSON and cut after its backslash is held whole, not
 * sent up to the backslash; a new held run gets its own age, so words of
 * a steady stream are not starred by the tick; a body the policy does not
 * read holds nothing back; a UTF-16 byte order mark in the first chunk
 * makes the later chunks opaque too. */
static void test_full_duplex_review(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	char got[512], all[512];
	bool eos;
	struct extproc_buf out = { 0 };
	const char *why;
	/* JSON escape */
	struct extproc_xchg *x = open_xchg(&f, "application/json", 4);
	static const char a[] = "{\"note\":\"mail alice.secret\\u0040exa";
	send_chunk(&f, x, a, sizeof(a) - 1, false, got, sizeof(got), &eos);
	assert_null(strstr(got, "alice"));
	strcpy(all, got);
	static const char b[] = "mple.com now\"}";
	send_chunk(&f, x, b, sizeof(b) - 1, true, got, sizeof(got), &eos);
	strcat(all, got);
	assert_true(eos);
	assert_null(strstr(all, "alice"));
	assert_null(strstr(all, "secret"));
	extproc_xchg_free(x);

	/* the age of a held run */
	x = open_xchg(&f, "text/plain", 4);
	send_chunk(&f, x, "hello wor", 9, false, got, sizeof(got), &eos);
	assert_string_equal(got, "hello ");
	struct timespec ts = { 0, 150 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	send_chunk(&f, x, "ld this is", 10, false, got, sizeof(got), &eos);
	assert_string_equal(got, "world this ");
	assert_int_equal(extproc_xchg_tick(x, &f.ctx,
					   st_mono_ns() + EXTPROC_FD_HOLD_NS * 4 / 5,
					   &out, &why), 0);
	assert_int_equal(out.len, 0); /* "is" is 0.4 s old, not 0.55 */
	extproc_xchg_free(x);

	/* a body the policy does not read (an image) holds nothing back */
	x = open_xchg(&f, "image/png", 4);
	send_chunk(&f, x, "IHDRabc", 7, false, got, sizeof(got), &eos);
	assert_string_equal(got, "IHDRabc");
	extproc_xchg_free(x);

	/* a byte order mark, then UTF-16 in a later chunk (STREAMED) */
	x = open_xchg(&f, "text/plain", 1);
	static const char bom[] = "\xff\xfeh\0i\0\n\0";
	static const char card[] = "4\0" "5\0" "3\0" "9\0" "1\0" "4\0" "8\0"
				   "8\0" "0\0" "3\0" "4\0" "3\0" "6\0" "4\0"
				   "6\0" "7\0";
	for (int i = 0; i < 2; i++) {
		size_t len, bl = i ? sizeof(card) - 1 : sizeof(bom) - 1;
		uint8_t *m = pack_body(i ? card : bom, bl, false, &len);
		out.len = 0;
		assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
		free(m);
		uint32_t ml = (uint32_t)out.p[1] << 24 | (uint32_t)out.p[2] << 16 |
			      (uint32_t)out.p[3] << 8 | out.p[4];
		PRESP *rp = envoy__service__ext_proc__v3__processing_response__unpack(
			NULL, ml, out.p + 5);
		assert_non_null(rp);
		Envoy__Service__ExtProc__V3__BodyMutation *bm =
			rp->request_body->response ? rp->request_body->response->body_mutation
						   : NULL;
		/* every byte starred: the second chunk has no mark of its own */
		assert_non_null(bm);
		assert_int_equal(bm->body.len, bl);
		for (size_t k = 0; k < bm->body.len; k++)
			assert_int_equal(bm->body.data[k], '*');
		envoy__service__ext_proc__v3__processing_response__free_unpacked(rp, NULL);
	}
	extproc_xchg_free(x);
	extproc_buf_free(&out);
	fixture_fini(&f);
}

static void test_mode_override(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		int req, resp; /* announced, -1: no protocol_config */
		int want_req, want_resp; /* -1: no override */
	} t[] = {
		{ "/static/a.css", -1, -1, -1, -1 }, /* no body rules */
		{ "/", -1, -1, 2, 2 },   /* nothing announced: BUFFERED */
		{ "/", 0, 0, 2, 2 },
		{ "/", 1, 0, 1, 2 },     /* a mode that sends bodies stays */
		{ "/", 1, 4, -1, -1 },   /* bodies come both ways already */
		{ "/admin", 0, 0, -1, -1 }, /* denied: immediate_response */
	};
	struct fixture f;
	fixture_init(&f);
	unsigned overrides = 0;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct extproc_xchg_info info = { .peer = "p" };
		struct extproc_xchg *x = extproc_xchg_new(&info);
		struct step st = { RQH, .path = t[i].path, .req_mode = t[i].req,
				   .resp_mode = t[i].resp };
		struct extproc_buf out = { 0 };
		send_step(&f, x, &st, &out);
		PRESP *r = first_reply(&out);
		if (t[i].want_req < 0) {
			assert_null(r->mode_override);
		} else {
			assert_int_equal(r->response_case, 1);
			assert_non_null(r->mode_override);
			assert_int_equal(r->mode_override->request_body_mode,
					 t[i].want_req);
			assert_int_equal(r->mode_override->response_body_mode,
					 t[i].want_resp);
			overrides++;
		}
		free_reply(r);
		extproc_buf_free(&out);
		extproc_xchg_free(x);
	}
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mode_overrides], overrides);
	fixture_fini(&f);
}

/* A BUFFERED body whose length changes gets its content-length set in
 * the same reply; a STREAMED one does not (Envoy drops it there). */
static void test_buffered_content_length(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	for (int mode = 1; mode <= 2; mode++) {
		struct extproc_xchg_info info = { .peer = "p", .id = 9 };
		struct extproc_xchg *x = extproc_xchg_new(&info);
		struct extproc_buf out = { 0 };
		struct step h = { RQH, .ctype = "application/json",
				  .req_mode = mode, .resp_mode = 0 };
		send_step(&f, x, &h, &out);
		struct step b = S(RQB, .body = "{\"password\":\"" CANARY "\",\"n\":[1]}",
				  .eos = 1);
		send_step(&f, x, &b, &out);
		PRESP *r = first_reply(&out);
		assert_int_equal(r->response_case, 3);
		Envoy__Service__ExtProc__V3__CommonResponse *cr = r->request_body->response;
		ProtobufCBinaryData nb = cr->body_mutation->body;
		assert_null(memmem(nb.data, nb.len, CANARY, strlen(CANARY)));
		struct jv *j = j_parse((const char *)nb.data, nb.len);
		assert_non_null(j); /* still valid JSON */
		assert_true(j_get(j, "password")->slen > 20);
		j_free(j);
		if (mode == 2) {
			assert_non_null(cr->header_mutation);
			Envoy__Config__Core__V3__HeaderValue *cl =
				cr->header_mutation->set_headers[0]->header;
			assert_string_equal(cl->key, "content-length");
			char want[16];
			snprintf(want, sizeof(want), "%zu", nb.len);
			assert_int_equal(cl->raw_value.len, strlen(want));
			assert_memory_equal(cl->raw_value.data, want, strlen(want));
		} else {
			assert_null(cr->header_mutation);
		}
		free_reply(r);
		extproc_buf_free(&out);
		extproc_xchg_free(x);
	}
	fixture_fini(&f);
}

/* The record carries what the tap's does: tenant, route, the rules
 * applied, body findings with the tokens sent on, the deny rule. */
static void test_record_policy(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p", .id = 0x42 };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct extproc_buf out = { 0 }, rec = { 0 };
	struct step h = { RQH, .ctype = "application/json", .req_mode = 2,
			  .resp_mode = 0 };
	send_step(&f, x, &h, &out);
	PRESP *r = first_reply(&out);
	ProtobufCBinaryData tok =
		r->request_headers->response->header_mutation->set_headers[0]->header->raw_value;
	char *auth = strndup((const char *)tok.data, tok.len);
	free_reply(r);
	struct step b = S(RQB, .body = "{\"a\":1,\"password\":\"" CANARY "\"}", .eos = 1);
	send_step(&f, x, &b, &out);
	r = first_reply(&out);
	ProtobufCBinaryData nb = r->request_body->response->body_mutation->body;
	char *body = strndup((const char *)nb.data, nb.len);
	free_reply(r);
	size_t rl = extproc_xchg_record(x, &f.ctx, EXTPROC_END_COMPLETE, 0, 0, 2, &rec);
	assert_null(memmem(rec.p, rl, CANARY, strlen(CANARY)));
	struct jv *j = j_parse((const char *)rec.p, rl);
	assert_non_null(j);
	assert_true(j_is_str(j_get(j, "tenant"), "t"));
	assert_true(j_is_str(j_get(j, "route"), "default"));
	struct jv *sealed = j_get(j, "sealed");
	assert_int_equal(sealed->n, 1);
	assert_true(j_is_str(j_get(j_at(sealed, 0), "where"),
			     "request.headers:authorization"));
	assert_true(j_is_str(j_get(j_at(sealed, 0), "rule"),
			     "builtin/header/authorization"));
	assert_true(j_is_str(j_get(j_at(sealed, 0), "action"), "seal"));
	/* the header list holds the token sent on */
	struct jv *hl = j_path(j, "request.headers");
	bool seen = false;
	for (size_t i = 0; i < hl->n; i++)
		if (j_is_str(j_at(j_at(hl, i), 0), "authorization"))
			seen = j_is_str(j_at(j_at(hl, i), 1), auth);
	assert_true(seen);
	/* the body finding: where, offset, and the token in the body */
	struct jv *bf = j_path(j, "request.body_findings");
	assert_non_null(bf);
	assert_int_equal(bf->n, 1);
	struct jv *b0 = j_at(bf, 0);
	assert_true(j_is_str(j_get(b0, "where"), "request.body:builtin/json/$..password"));
	assert_int_equal(j_get(b0, "offset")->i, 19);
	assert_int_equal(j_get(b0, "length")->i, (long long)strlen(CANARY));
	assert_non_null(strstr(body, j_get(b0, "value")->s));
	uint8_t pt[64];
	int n = open_token("request.body:builtin/json/$..password",
			   "0000000000000042", (const uint8_t *)j_get(b0, "value")->s,
			   j_get(b0, "value")->slen, pt, sizeof(pt));
	assert_int_equal(n, (int)strlen(CANARY));
	assert_memory_equal(pt, CANARY, strlen(CANARY));
	j_free(j);
	free(auth);
	free(body);
	extproc_xchg_free(x);

	/* a denied request: status and rule recorded, :path not in plain */
	info.id = 0x43;
	x = extproc_xchg_new(&info);
	struct step d = S(RQH, .path = "/admin/" CANARY);
	send_step(&f, x, &d, &out);
	rl = extproc_xchg_record(x, &f.ctx, EXTPROC_END_COMPLETE, 0, 0, 2, &rec);
	assert_null(memmem(rec.p, rl, CANARY, strlen(CANARY)));
	j = j_parse((const char *)rec.p, rl);
	assert_non_null(j);
	assert_true(j_get(j_get(j, "extproc"), "denied")->b);
	assert_int_equal(j_get(j_get(j, "extproc"), "deny_status")->i, 403);
	assert_true(j_is_str(j_get(j_get(j, "extproc"), "deny_rule"),
			     "forbidden/header/:path"));
	assert_true(j_is_str(j_get(j, "route"), "admin"));
	assert_int_equal(j_get(j_path(j, "request.path"), "redacted")->i,
			 (long long)strlen("/admin/" CANARY));
	j_free(j);
	extproc_buf_free(&rec);
	extproc_buf_free(&out);
	extproc_xchg_free(x);
	fixture_fini(&f);
}

static void test_counters_quantile(void **state)
{
	(void)state;
	struct extproc_counters c = { 0 };
	assert_int_equal(extproc_counters_quantile(&c, 0.5), 0);
	for (int i = 0; i < 99; i++)
		extproc_counters_lat(&c, 1000); /* bucket [512, 1024) */
	extproc_counters_lat(&c, 1000000);
	assert_int_equal(extproc_counters_quantile(&c, 0.5), 1024);
	assert_true(extproc_counters_quantile(&c, 0.999) >= 1000000);
	extproc_counters_lat(&c, 0);
	extproc_counters_lat(&c, ~0ull);
	char buf[4096];
	FILE *m = fmemopen(buf, sizeof(buf), "w");
	c.v[EXTPROC_CTR_records] = 7;
	extproc_counters_write_json(m, &c);
	fclose(m);
	assert_true(json_record_ok(buf, strlen(buf)) || strstr(buf, "\"records\":7"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequences),
		cmocka_unit_test(test_mutation_shape),
		cmocka_unit_test(test_protected),
		cmocka_unit_test(test_buffered_content_length),
		cmocka_unit_test(test_record_policy),
		cmocka_unit_test(test_unknown_fields_and_malformed),
		cmocka_unit_test(test_full_duplex_chunking),
		cmocka_unit_test(test_full_duplex_interactive),
		cmocka_unit_test(test_full_duplex_review),
		cmocka_unit_test(test_mode_override),
		cmocka_unit_test(test_counters_quantile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
