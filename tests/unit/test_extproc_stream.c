/* Tests for src/extproc_stream.c: the ext_proc exchange state machine.
 *
 * Sequences of ProcessingRequest messages (built with protobuf-c, as Envoy
 * would send them) go in; the reply types that come out, the error that
 * ends the stream, and the counters are checked step by step, as a table.
 * Separate tests look at the mutations themselves (raw_value only, append
 * actions, request id), FULL_DUPLEX_STREAMED chunking, unknown fields, and
 * the record (valid JSON, credential values never in plain). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"
#include "sealtap/extproc.h"
#include "../fuzz/json_check.h"

#define CANARY "CANARYunit5ecret"

typedef Envoy__Service__ExtProc__V3__ProcessingResponse PRESP;

enum kind { RQH = 1, RSH, RQB, RSB, RQT, RST, EMPTY };

struct step {
	enum kind kind;
	const char *path;  /* RQH: :path ("/" if NULL) */
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
	Envoy__Config__Core__V3__HeaderValue hv[3];
	Envoy__Config__Core__V3__HeaderValue *hp[3];
	const char *kv[3][2] = {
		{ ":path", st->path ? st->path : "/" },
		{ "authorization", "Bearer " CANARY },
		{ "accept", "*/*" },
	};
	for (int i = 0; i < 3; i++) {
		envoy__config__core__v3__header_value__init(&hv[i]);
		hv[i].key = (char *)kv[i][0];
		hv[i].raw_value.data = (uint8_t *)kv[i][1];
		hv[i].raw_value.len = strlen(kv[i][1]);
		hp[i] = &hv[i];
	}
	Envoy__Config__Core__V3__HeaderMap map = ENVOY__CONFIG__CORE__V3__HEADER_MAP__INIT;
	map.headers = hp;
	map.n_headers = 3;
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

struct fixture {
	struct extproc_default_decider dd;
	struct extproc_counters ctr;
	struct extproc_ctx ctx;
};

static const char *const deny[] = { "/admin" };

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	extproc_default_decider_init(&f->dd, deny, 1);
	f->ctx.decider = extproc_default_decider(&f->dd);
	f->ctx.ctr = &f->ctr;
	f->ctx.request_id_header = EXTPROC_REQUEST_ID_DEFAULT;
	f->ctx.max_record = 1 << 20;
	f->ctx.arena = extproc_arena_new(4096);
	assert_non_null(f->ctx.arena);
}

static void fixture_fini(struct fixture *f)
{
	extproc_arena_free(f->ctx.arena);
	extproc_buf_free(&f->ctx.scratch);
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
		assert_null(memmem(rec.p, rl, CANARY, strlen(CANARY)));
		assert_non_null(memmem(rec.p, rl, "\"source\":\"extproc\"", 18));
		extproc_buf_free(&rec);
		extproc_buf_free(&out);
		extproc_xchg_free(x);
		fixture_fini(&f);
	}
}

static void test_mutation_shape(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_xchg_info info = { .peer = "p", .stream_id = 3, .id = 0xabcdef };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	struct step st = S(RQH);
	size_t len;
	uint8_t *m = build(&st, &len);
	struct extproc_buf out = { 0 };
	const char *why;
	assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
	PRESP *r = envoy__service__ext_proc__v3__processing_response__unpack(
		NULL, out.len - 5, out.p + 5);
	assert_non_null(r);
	assert_int_equal(r->response_case, 1);
	Envoy__Service__ExtProc__V3__HeaderMutation *hm =
		r->request_headers->response->header_mutation;
	assert_int_equal(hm->n_set_headers, 2);
	/* authorization replaced, value in raw_value only */
	assert_string_equal(hm->set_headers[0]->header->key, "authorization");
	assert_string_equal(hm->set_headers[0]->header->value, "");
	char want[32];
	snprintf(want, sizeof(want), "redacted:%zu", strlen("Bearer " CANARY));
	assert_int_equal(hm->set_headers[0]->header->raw_value.len, strlen(want));
	assert_memory_equal(hm->set_headers[0]->header->raw_value.data, want, strlen(want));
	assert_int_equal(hm->set_headers[0]->append_action,
			 ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD);
	/* request id: the record id, 16 hex digits */
	assert_string_equal(hm->set_headers[1]->header->key, EXTPROC_REQUEST_ID_DEFAULT);
	assert_memory_equal(hm->set_headers[1]->header->raw_value.data, "0000000000abcdef", 16);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mutations_replaced], 1);
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mutations_added], 1);
	envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
	free(m);
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

/* A decider that asks for buffered request bodies on /upload only. */
static bool upload_mode(void *self, const uint8_t *path, size_t plen,
			struct extproc_mode *m)
{
	(void)self;
	if (plen < 7 || memcmp(path, "/upload", 7))
		return false;
	m->request_body = EXTPROC_BODY_BUFFERED;
	m->response_body = EXTPROC_BODY_NONE;
	return true;
}

static void test_mode_override(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct extproc_decider_ops ops = *f.ctx.decider.ops;
	ops.decide_mode = upload_mode;
	f.ctx.decider.ops = &ops;
	for (int i = 0; i < 2; i++) {
		struct extproc_xchg_info info = { .peer = "p" };
		struct extproc_xchg *x = extproc_xchg_new(&info);
		struct step st = S(RQH, .path = i ? "/upload/a" : "/index.html");
		size_t len;
		uint8_t *m = build(&st, &len);
		struct extproc_buf out = { 0 };
		const char *why;
		assert_int_equal(extproc_xchg_message(x, &f.ctx, m, len, &out, &why), 0);
		PRESP *r = envoy__service__ext_proc__v3__processing_response__unpack(
			NULL, out.len - 5, out.p + 5);
		assert_int_equal(r->response_case, 1);
		if (i) {
			assert_non_null(r->mode_override);
			assert_int_equal(r->mode_override->request_body_mode, 2);
			assert_int_equal(r->mode_override->response_body_mode, 0);
		} else {
			assert_null(r->mode_override);
		}
		envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
		free(m);
		extproc_buf_free(&out);
		extproc_xchg_free(x);
	}
	assert_int_equal(f.ctr.v[EXTPROC_CTR_mode_overrides], 1);
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
		cmocka_unit_test(test_unknown_fields_and_malformed),
		cmocka_unit_test(test_full_duplex_chunking),
		cmocka_unit_test(test_mode_override),
		cmocka_unit_test(test_counters_quantile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
