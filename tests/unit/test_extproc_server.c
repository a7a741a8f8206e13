/* Tests for src/extproc_server.c through a detached server session (no
 * socket): a real nghttp2 client session produces the bytes, fed to the
 * server whole, in odd pieces and one byte at a time; the server's output
 * goes back into the client. Checks gRPC framing across DATA frames and
 * reads, trailers, trailers-only errors, and the connection-level answers
 * to a bad preface and to HTTP/1.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <nghttp2/nghttp2.h>

#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"
#include "sealtap/extproc.h"

struct cstream {
	char status[8];
	char grpc_status[8];
	uint8_t data[65536];
	size_t dlen;
	bool closed;
	uint32_t rst;
};

struct client {
	nghttp2_session *h2;
	struct cstream st[16]; /* by (stream id - 1) / 2 */
	const uint8_t *body;   /* request body being sent */
	size_t body_len, body_off;
	size_t piece;          /* feed size, 0 = whole */
};

static struct cstream *cs(struct client *c, int32_t id)
{
	return &c->st[((unsigned)id - 1) / 2 % 16];
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f,
		     const uint8_t *n, size_t nl, const uint8_t *v, size_t vl,
		     uint8_t flags, void *u)
{
	(void)h2;
	(void)flags;
	struct cstream *s = cs(u, f->hd.stream_id);
	if (nl == 7 && !memcmp(n, ":status", 7))
		snprintf(s->status, sizeof(s->status), "%.*s", (int)vl, v);
	if (nl == 11 && !memcmp(n, "grpc-status", 11))
		snprintf(s->grpc_status, sizeof(s->grpc_status), "%.*s", (int)vl, v);
	return 0;
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id,
		   const uint8_t *d, size_t len, void *u)
{
	(void)h2;
	(void)flags;
	struct cstream *s = cs(u, id);
	if (s->dlen + len <= sizeof(s->data)) {
		memcpy(s->data + s->dlen, d, len);
		s->dlen += len;
	}
	return 0;
}

static int on_close(nghttp2_session *h2, int32_t id, uint32_t code, void *u)
{
	(void)h2;
	struct cstream *s = cs(u, id);
	s->closed = true;
	s->rst = code;
	return 0;
}

static ssize_t body_cb(nghttp2_session *h2, int32_t id, uint8_t *buf,
		       size_t length, uint32_t *flags, nghttp2_data_source *src,
		       void *u)
{
	(void)h2;
	(void)id;
	(void)src;
	struct client *c = u;
	/* at most 7 bytes per DATA frame: messages cross frame boundaries */
	size_t n = c->body_len - c->body_off;
	if (n > 7)
		n = 7;
	if (n > length)
		n = length;
	memcpy(buf, c->body + c->body_off, n);
	c->body_off += n;
	if (c->body_off == c->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void client_init(struct client *c)
{
	memset(c, 0, sizeof(*c));
	nghttp2_session_callbacks *cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
	nghttp2_session_client_new(&c->h2, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0);
}

/* Moves bytes both ways until neither side has anything to say. */
static void pump(struct client *c, struct extproc_session *s)
{
	for (int round = 0; round < 1000; round++) {
		bool moved = false;
		const uint8_t *d;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(c->h2, &d)) > 0) {
			moved = true;
			size_t piece = c->piece ? c->piece : (size_t)n;
			for (ssize_t off = 0; off < n; off += (ssize_t)piece) {
				size_t k = (size_t)(n - off) < piece ? (size_t)(n - off) : piece;
				extproc_session_feed(s, d + off, k);
			}
		}
		struct extproc_buf *out = extproc_session_output(s);
		if (out->len) {
			moved = true;
			assert_true(nghttp2_session_mem_recv(c->h2, out->p, out->len) >= 0);
			out->len = 0;
		}
		if (!moved)
			return;
	}
	fail_msg("pump did not settle");
}

static int32_t call(struct client *c, const char *path, const uint8_t *body,
		    size_t len)
{
	const nghttp2_nv h[] = {
#define NV(n, v) { (uint8_t *)n, (uint8_t *)v, strlen(n), strlen(v), 0 }
		NV(":method", "POST"), NV(":scheme", "http"), NV(":path", path),
		NV(":authority", "t"), NV("content-type", "application/grpc"),
		NV("te", "trailers"),
#undef NV
	};
	c->body = body;
	c->body_len = len;
	c->body_off = 0;
	nghttp2_data_provider prd = { .read_callback = body_cb };
	return nghttp2_submit_request(c->h2, NULL, h, 6, &prd, NULL);
}

static struct extproc_cfg cfg(void)
{
	struct extproc_cfg x = { 0 };
	x.max_message = 4u << 20;
	x.max_streams = 100;
	x.max_header_list = 16384;
	x.stream_timeout_ns = 60ull * 1000000000ull;
	x.idle_timeout_ns = 60ull * 1000000000ull;
	x.request_id_header = EXTPROC_REQUEST_ID_DEFAULT;
	return x;
}

static uint8_t *framed_request(size_t *len)
{
	Envoy__Config__Core__V3__HeaderValue hv = ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT;
	Envoy__Config__Core__V3__HeaderValue *hp = &hv;
	hv.key = "authorization";
	hv.raw_value.data = (uint8_t *)"Bearer zzz";
	hv.raw_value.len = 10;
	Envoy__Config__Core__V3__HeaderMap map = ENVOY__CONFIG__CORE__V3__HEADER_MAP__INIT;
	map.headers = &hp;
	map.n_headers = 1;
	Envoy__Service__ExtProc__V3__HttpHeaders hh = ENVOY__SERVICE__EXT_PROC__V3__HTTP_HEADERS__INIT;
	hh.headers = &map;
	Envoy__Service__ExtProc__V3__ProcessingRequest r =
		ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
	r.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS;
	r.request_headers = &hh;
	size_t n = envoy__service__ext_proc__v3__processing_request__get_packed_size(&r);
	uint8_t *p = malloc(5 + n);
	p[0] = 0;
	p[1] = 0;
	p[2] = 0;
	p[3] = (uint8_t)(n >> 8);
	p[4] = (uint8_t)n;
	envoy__service__ext_proc__v3__processing_request__pack(&r, p + 5);
	*len = 5 + n;
	return p;
}

static void run_health(size_t piece)
{
	struct extproc_cfg x = cfg();
	struct extproc_session *s = extproc_session_new(&x);
	assert_non_null(s);
	struct client c;
	client_init(&c);
	c.piece = piece;
	static const uint8_t empty[5] = { 0 };
	int32_t id = call(&c, EXTPROC_PATH_HEALTH_CHECK, empty, 5);
	pump(&c, s);
	struct cstream *st = cs(&c, id);
	assert_true(st->closed);
	assert_string_equal(st->status, "200");
	assert_string_equal(st->grpc_status, "0");
	static const uint8_t serving[] = { 0, 0, 0, 0, 2, 0x08, 0x01 };
	assert_int_equal(st->dlen, sizeof(serving));
	assert_memory_equal(st->data, serving, sizeof(serving));
	nghttp2_session_del(c.h2);
	extproc_session_free(s);
}

static void test_health_whole(void **state) { (void)state; run_health(0); }
static void test_health_bytewise(void **state) { (void)state; run_health(1); }
static void test_health_pieces(void **state) { (void)state; run_health(13); }

static void test_process_two_messages(void **state)
{
	(void)state;
	struct extproc_cfg x = cfg();
	struct extproc_session *s = extproc_session_new(&x);
	struct client c;
	client_init(&c);
	c.piece = 5;
	size_t len;
	uint8_t *m = framed_request(&len);
	/* request_headers, then a response_headers-shaped second message:
	 * the same bytes again are request_headers twice -> error 3 after
	 * the first reply */
	uint8_t *two = malloc(2 * len);
	memcpy(two, m, len);
	memcpy(two + len, m, len);
	int32_t id = call(&c, EXTPROC_PATH_PROCESS, two, 2 * len);
	pump(&c, s);
	struct cstream *st = cs(&c, id);
	assert_true(st->closed);
	assert_string_equal(st->grpc_status, "3");
	assert_true(st->dlen > 5);
	assert_int_equal(st->data[5], 0x0a); /* request_headers reply */
	assert_int_equal(extproc_session_counters(s)->v[EXTPROC_CTR_replies], 1);

	/* a clean one on the same connection */
	id = call(&c, EXTPROC_PATH_PROCESS, m, len);
	pump(&c, s);
	st = cs(&c, id);
	assert_true(st->closed);
	assert_string_equal(st->grpc_status, "0");
	assert_null(memmem(st->data, st->dlen, "Bearer zzz", 10));
	/* no keys: the built-in policy's tenant fails closed and the sealed
	 * header is removed */
	assert_non_null(memmem(st->data, st->dlen, "authorization", 13));
	struct extproc_counters *k = extproc_session_counters(s);
	assert_int_equal(k->v[EXTPROC_CTR_mutations_removed], 2);
	assert_int_equal(k->seal.v[ST_CTR_seal_failed_closed], 2);

	/* unknown method: trailers-only UNIMPLEMENTED */
	id = call(&c, "/x.Y/Z", m, len);
	pump(&c, s);
	assert_string_equal(cs(&c, id)->grpc_status, "12");
	free(m);
	free(two);
	nghttp2_session_del(c.h2);
	extproc_session_free(s);
}

static void test_bad_preface(void **state)
{
	(void)state;
	struct extproc_cfg x = cfg();
	struct extproc_session *s = extproc_session_new(&x);
	assert_int_equal(extproc_session_feed(s, (const uint8_t *)"\x16\x03\x01garbage", 10), -1);
	struct extproc_buf *out = extproc_session_output(s);
	assert_true(out->len >= 17);
	assert_int_equal(out->p[3], 7); /* GOAWAY */
	assert_int_equal(extproc_session_counters(s)->v[EXTPROC_CTR_conns_bad_preface], 1);
	extproc_session_free(s);

	s = extproc_session_new(&x);
	assert_int_equal(extproc_session_feed(s, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), -1);
	out = extproc_session_output(s);
	assert_true(out->len > 12);
	assert_memory_equal(out->p, "HTTP/1.1 505", 12);
	extproc_session_free(s);

	/* the preface split over reads is fine */
	s = extproc_session_new(&x);
	const char *pre = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	for (int i = 0; i < 24; i++)
		assert_int_equal(extproc_session_feed(s, (const uint8_t *)pre + i, 1), 0);
	extproc_session_free(s);
}

/* grpc-timeout values, the ones whose nanoseconds do not fit in 64 bits
 * included (97357816H used to wrap to 200 s). */
static void test_grpc_timeout(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		uint64_t ns;
	} t[] = {
		{ "1S", 1000000000ull },
		{ "100m", 100000000ull },
		{ "7u", 7000 },
		{ "5n", 5 },
		{ "2M", 120000000000ull },
		{ "876000H", 876000ull * 3600 * 1000000000ull }, /* a century */
		{ "876001H", 0 },
		{ "97357816H", 0 },
		{ "99999999H", 0 },
		{ "99999999S", 99999999ull * 1000000000ull },
		{ "123456789S", 0 }, /* 9 digits */
		{ "S", 0 },
		{ "1x", 0 },
		{ "1.5S", 0 },
		{ "0S", 1 }, /* already expired, not "no deadline" */
		{ "0m", 1 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		uint64_t got = extproc_grpc_timeout_ns((const uint8_t *)t[i].v,
						       strlen(t[i].v));
		if (got != t[i].ns)
			print_error("%s: %llu\n", t[i].v, (unsigned long long)got);
		assert_true(got == t[i].ns);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_whole),
		cmocka_unit_test(test_health_bytewise),
		cmocka_unit_test(test_health_pieces),
		cmocka_unit_test(test_process_two_messages),
		cmocka_unit_test(test_bad_preface),
		cmocka_unit_test(test_grpc_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
