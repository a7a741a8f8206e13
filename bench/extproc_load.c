/* extproc_load: an ext_proc load generator on nghttp2, playing Envoy's
 * pattern against `sealtap extproc`.
 *
 * Envoy opens one gRPC stream per HTTP request on a few long-lived
 * connections, sends request_headers (and, later, response_headers) and
 * waits for each reply. Then it closes the stream, in one of two ways:
 *   --close reset (Envoy's default): a half-close (empty DATA with
 *     END_STREAM) followed at once by RST_STREAM(NO_ERROR), in the same
 *     write; the server's trailers are never awaited (Envoy's
 *     ExternalProcessorStreamImpl::close: closeStream, then resetStream,
 *     which Envoy's HTTP/2 codec sends as NO_ERROR for a local reset);
 *   --close cancel: the same with RST_STREAM(CANCEL), as a gRPC library
 *     sends it (Envoy configured with google_grpc);
 *   --close graceful (Envoy with the runtime flag
 *     envoy.reloadable_features.ext_proc_graceful_grpc_close): a
 *     half-close, then the server ends the stream with grpc-status 0.
 * This program does the same over --connections
 * connections from one thread (epoll), with the same ~15 realistic request
 * headers each time (authorization included, so the server has a value to
 * replace), encoded once with protobuf-c.
 *
 * Modes:
 *   closed loop (--rate 0): every connection keeps --depth streams in
 *     flight; reports the streams/s the server sustains;
 *   open loop (--rate R): streams start on a fixed schedule of R per
 *     second whatever the server does; latency is measured from the
 *     scheduled start to the reply of each message (so queueing caused by
 *     a slow server is counted, not hidden).
 * Latency percentiles come from a log-linear histogram (1/64 octave). In
 * the open loop a second histogram holds each stream's start lag (its
 * scheduled start to its submission here): the generator's own share of
 * the latency, so a slow reply can be told from a late request.
 * A third histogram (wire) ends each latency where the reply reached this
 * host's socket (the kernel's receive timestamp, SO_TIMESTAMPNS) instead
 * of where this program read it: a generator that is itself near
 * saturation leaves replies waiting in its socket, and that wait is the
 * generator's, not the server's. A read that returns several replies
 * carries the timestamp of its last segment, so earlier replies in it are
 * given a later arrival than they had: the error is never in the server's
 * favour.
 * Every reply is checked (bad_replies): its type, grpc-status 0, and for
 * request_headers that the authorization header comes back set to a
 * sealed token (stk1.g...), not removed, and that no reply carries the
 * plaintext of the authorization token or the session cookie.
 * When the window ends, no stream is started any more and those in flight
 * get up to --drain seconds to finish: their latency is counted, so a
 * stall at the end is not cut out. Streams still unanswered then
 * (unfinished) and starts the schedule owed but never sent (unsent) enter
 * the histograms with the latency they had reached at least (the end of
 * the drain minus their scheduled start), and are reported.
 * --plain PATH makes it a plain HTTP/2 client instead: each stream a GET
 * of PATH (no body, END_STREAM on the HEADERS), done when the whole
 * response came with status 200, on the same schedule and measured the
 * same way, so a plain HTTP/2 server (nghttpd) can be measured as the
 * reference for the ext_proc figures.
 * Output: one JSON object on stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"

#define PATH "/envoy.service.ext_proc.v3.ExternalProcessor/Process"

/* ---- histograms: 64 sub-buckets per power of two, ns ---- */
#define SUB 64
#define OCTAVES 40
struct hist {
	uint64_t b[OCTAVES * SUB];
	uint64_t n;
};
/* lat: scheduled (open loop) or sent to reply, every message;
 * lag (open loop): scheduled start to the stream's submission here, so
 * a report can tell the generator's own delay from the server's;
 * wire: as lat, but to the reply's arrival in this host's socket */
static struct hist lat, lag, wire;

static void hist_add(struct hist *h, uint64_t ns)
{
	if (ns < SUB) {
		h->b[ns]++;
	} else {
		unsigned o = 63 - (unsigned)__builtin_clzll(ns); /* >= 6 */
		unsigned sub = (unsigned)(ns >> (o - 6)) & (SUB - 1);
		unsigned b = (o - 5) * SUB + sub;
		if (b >= OCTAVES * SUB)
			b = OCTAVES * SUB - 1;
		h->b[b]++;
	}
	h->n++;
}

static uint64_t hist_q(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
	for (unsigned b = 0; b < OCTAVES * SUB; b++) {
		seen += h->b[b];
		if (seen > want && h->b[b]) {
			if (b < SUB)
				return b;
			unsigned o = b / SUB + 5, sub = b % SUB;
			return ((uint64_t)(SUB + sub) << (o - 6)) +
			       ((1ull << (o - 6)) >> 1);
		}
	}
	return 0;
}

/* CPU time of this process so far, in ns (user + system). */
static uint64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
		       1000000000ull +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts_ns(&ts);
}

/* Monotonic time at which the bytes of the read being parsed reached the
 * socket (set by conn_read before nghttp2 sees them); 0 when the kernel
 * gave no timestamp, and then the wire histogram is not fed. */
static uint64_t rx_mono_ns;

/* ---- messages ---- */

static uint8_t *msg_req, *msg_resp; /* framed (5-byte prefix) */
static size_t msg_req_len, msg_resp_len;

static const char *const req_hdrs[][2] = {
	{ ":authority", "shop.example.com" },
	{ ":path", "/api/v1/orders?id=42&expand=items" },
	{ ":method", "POST" },
	{ ":scheme", "https" },
	{ "user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" },
	{ "accept", "application/json, text/plain, */*" },
	{ "accept-encoding", "gzip, deflate, br" },
	{ "accept-language", "en-US,en;q=0.9" },
	{ "content-type", "application/json" },
	{ "content-length", "312" },
	{ "authorization", "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dGVzdHNpZ25hdHVyZQ" },
	{ "x-forwarded-for", "203.0.113.7" },
	{ "x-forwarded-proto", "https" },
	{ "x-request-id", "3b1f7e0a-5c1d-4e7e-9a0f-1d2c3b4a5f60" },
	{ "x-envoy-expected-rq-timeout-ms", "15000" },
};
static const char *const resp_hdrs[][2] = {
	{ ":status", "200" },
	{ "content-type", "application/json" },
	{ "content-length", "1024" },
	{ "cache-control", "no-store" },
	{ "set-cookie", "sid=8f14e45fceea167a5a36dedd4bea2543; Path=/; HttpOnly; Secure" },
	{ "x-envoy-upstream-service-time", "3" },
};

static uint8_t *encode(bool response, size_t *len)
{
	const char *const(*h)[2] = response ? resp_hdrs : req_hdrs;
	size_t n = response ? sizeof(resp_hdrs) / sizeof(resp_hdrs[0])
			    : sizeof(req_hdrs) / sizeof(req_hdrs[0]);
	Envoy__Config__Core__V3__HeaderValue hv[16];
	Envoy__Config__Core__V3__HeaderValue *hp[16];
	for (size_t i = 0; i < n; i++) {
		envoy__config__core__v3__header_value__init(&hv[i]);
		hv[i].key = (char *)h[i][0];
		hv[i].raw_value.data = (uint8_t *)h[i][1];
		hv[i].raw_value.len = strlen(h[i][1]);
		hp[i] = &hv[i];
	}
	Envoy__Config__Core__V3__HeaderMap map = ENVOY__CONFIG__CORE__V3__HEADER_MAP__INIT;
	map.headers = hp;
	map.n_headers = n;
	Envoy__Service__ExtProc__V3__HttpHeaders hh = ENVOY__SERVICE__EXT_PROC__V3__HTTP_HEADERS__INIT;
	hh.headers = &map;
	hh.end_of_stream = response;
	Envoy__Service__ExtProc__V3__ProcessingRequest r = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__INIT;
	Envoy__Service__ExtProc__V3__ProtocolConfiguration pc = ENVOY__SERVICE__EXT_PROC__V3__PROTOCOL_CONFIGURATION__INIT;
	if (response) {
		r.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_RESPONSE_HEADERS;
		r.response_headers = &hh;
	} else {
		r.request_case = ENVOY__SERVICE__EXT_PROC__V3__PROCESSING_REQUEST__REQUEST_REQUEST_HEADERS;
		r.request_headers = &hh;
		r.protocol_config = &pc;
	}
	size_t sz = envoy__service__ext_proc__v3__processing_request__get_packed_size(&r);
	uint8_t *p = malloc(5 + sz);
	p[0] = 0;
	p[1] = (uint8_t)(sz >> 24);
	p[2] = (uint8_t)(sz >> 16);
	p[3] = (uint8_t)(sz >> 8);
	p[4] = (uint8_t)sz;
	envoy__service__ext_proc__v3__processing_request__pack(&r, p + 5);
	*len = 5 + sz;
	return p;
}

/* ---- connections and streams ---- */

struct conn;

struct stream {
	struct conn *c;
	int32_t id;
	uint8_t phase;     /* messages sent so far */
	uint8_t replies;   /* replies received */
	bool close_pending; /* half-close when the send buffer drains */
	bool eof_sent;
	const uint8_t *out;
	size_t out_len, out_off;
	uint64_t t_sched;  /* scheduled start (open loop) or start */
	uint64_t t_sent;   /* current message handed to nghttp2 */
	uint32_t in_have;  /* bytes of the current reply seen */
	uint32_t in_need;  /* reply length incl. prefix, 0 = unknown */
	uint8_t pfx[5];
	uint8_t *reply;    /* the current reply's message, being read */
	struct stream *prev, *next; /* the streams in flight */
};

struct conn {
	int fd;
	nghttp2_session *h2;
	unsigned inflight;
	uint8_t wbuf_pending; /* EPOLLOUT armed */
	bool dead;
	bool dirty; /* may have output: on the dirty list */
	struct conn *next_dirty;
};

/* Connections with something submitted or read since their last flush:
 * only these are flushed, so a loop turn costs what happened in it, not
 * one nghttp2_session_mem_send per connection. */
static struct conn *dirty_head;

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->next_dirty = dirty_head;
	dirty_head = c;
}

static struct {
	const char *host, *port;
	unsigned conns, depth;
	double duration, warmup, rate;
	bool resp_headers;
	bool graceful; /* --close graceful: wait for the server's trailers */
	uint32_t rst_code; /* --close reset / cancel: the RST_STREAM's code */
	double drain;      /* seconds the streams in flight get at the end */
	int cpu;
	/* --plain PATH: GET PATH from a plain HTTP/2 server (the reference
	 * for the same schedule and latency), any 200 reply accepted */
	const char *plain;
} opt = { "127.0.0.1", "9000", 64, 16, 5, 1, 0, false, false,
	  NGHTTP2_NO_ERROR, 1.0, -1, NULL };

static struct conn *conns;
static int ep;
static uint64_t done_streams, failed_streams, started_streams;
static uint64_t msgs_replied, bad_replies;
static struct stream *inflight_head;
static bool measuring;
static bool draining; /* the window is over: finishing what is in flight */
static uint64_t unfinished, unsent;
static uint64_t backlog_max;
static uint64_t pending_starts; /* open loop: starts owed (connection full) */

static ssize_t data_cb(nghttp2_session *h2, int32_t id, uint8_t *buf,
		       size_t length, uint32_t *flags, nghttp2_data_source *src,
		       void *user)
{
	(void)h2;
	(void)id;
	(void)user;
	struct stream *s = src->ptr;
	size_t avail = s->out_len - s->out_off;
	size_t n = avail < length ? avail : length;
	if (n) {
		memcpy(buf, s->out + s->out_off, n);
		s->out_off += n;
	}
	if (s->out_off == s->out_len && s->close_pending) {
		*flags |= NGHTTP2_DATA_FLAG_EOF; /* END_STREAM: half-close */
		s->eof_sent = true;
		return (ssize_t)n;
	}
	if (!n)
		return NGHTTP2_ERR_DEFERRED;
	return (ssize_t)n;
}

static void send_msg(struct stream *s, const uint8_t *m, size_t len)
{
	s->out = m;
	s->out_len = len;
	s->out_off = 0;
	s->t_sent = now_ns();
	s->phase++;
	s->in_have = 0;
	s->in_need = 0;
	nghttp2_session_resume_data(s->c->h2, s->id);
}

static bool start_stream(struct conn *c, uint64_t t_sched)
{
	static const nghttp2_nv hdrs[] = {
#define NV(n, v) { (uint8_t *)n, (uint8_t *)v, sizeof(n) - 1, sizeof(v) - 1, \
		   NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE }
		NV(":method", "POST"),
		NV(":scheme", "http"),
		NV(":path", PATH),
		NV(":authority", "ext-proc.local"),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("user-agent", "envoy/1.31"),
		NV("x-envoy-internal", "true"),
#undef NV
	};
	const nghttp2_nv get[] = {
		{ (uint8_t *)":method", (uint8_t *)"GET", 7, 3,
		  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
		hdrs[1],
		{ (uint8_t *)":path", (uint8_t *)opt.plain, 5,
		  opt.plain ? strlen(opt.plain) : 0,
		  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
		hdrs[3],
	};
	struct stream *s = calloc(1, sizeof(*s));
	s->c = c;
	s->t_sched = t_sched;
	s->out = msg_req;
	s->out_len = msg_req_len;
	s->t_sent = now_ns();
	s->phase = 1;
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = data_cb };
	int32_t id = opt.plain
		? nghttp2_submit_request(c->h2, NULL, get, 4, NULL, s)
		: nghttp2_submit_request(c->h2, NULL, hdrs,
					 sizeof(hdrs) / sizeof(hdrs[0]), &prd, s);
	s->eof_sent = opt.plain != NULL; /* END_STREAM on the HEADERS */
	if (id < 0) {
		free(s);
		return false;
	}
	s->id = id;
	s->next = inflight_head;
	if (inflight_head)
		inflight_head->prev = s;
	inflight_head = s;
	/* after the submission: a refused one is retried, counted once */
	if (measuring && opt.rate > 0)
		hist_add(&lag, s->t_sent > t_sched ? s->t_sent - t_sched : 0);
	c->inflight++;
	started_streams++;
	mark_dirty(c);
	return true;
}

/* ---- reply checks ---- */

/* The secrets of the request and response headers above: a reply must
 * never carry them in plaintext. */
#define AUTH_PLAIN "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
#define SID_PLAIN "8f14e45fceea167a5a36dedd4bea2543"

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned sh = 0; sh < 64 && *p < end; sh += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* The next length-delimited field of [*p, end): its number and bytes;
 * fields of other wire types are skipped. False at the end or on a
 * malformed message (then *bad is set). */
static bool pb_next(const uint8_t **p, const uint8_t *end, uint32_t *field,
		    const uint8_t **v, size_t *vl, bool *bad)
{
	while (*p < end) {
		uint64_t key, x;
		if (!pb_varint(p, end, &key))
			break;
		switch (key & 7) {
		case 0:
			if (!pb_varint(p, end, &x))
				goto malformed;
			continue;
		case 1:
		case 5: {
			size_t k = (key & 7) == 1 ? 8 : 4;
			if ((size_t)(end - *p) < k)
				goto malformed;
			*p += k;
			continue;
		}
		case 2:
			if (!pb_varint(p, end, &x) || x > (uint64_t)(end - *p))
				goto malformed;
			*field = (uint32_t)(key >> 3);
			*v = *p;
			*vl = (size_t)x;
			*p += x;
			return true;
		default:
			goto malformed;
		}
	}
	if (*p == end)
		return false;
malformed:
	*bad = true;
	return false;
}

/* |len| bytes at |v| are |name| */
static bool pb_is(const uint8_t *v, size_t len, const char *name)
{
	return len == strlen(name) && !memcmp(v, name, len);
}

/* A protobuf message or string: bytes [p, end). */
struct pb {
	const uint8_t *p, *end;
};

/* The first length-delimited field |num| of |m| (an embedded message or
 * a string); false if there is none or |m| is malformed (then *bad). */
static bool pb_field(struct pb m, uint32_t num, struct pb *out, bool *bad)
{
	uint32_t f;
	const uint8_t *v;
	size_t vl;
	while (pb_next(&m.p, m.end, &f, &v, &vl, bad))
		if (f == num) {
			*out = (struct pb){ v, v + vl };
			return true;
		}
	return false;
}

/* A HeaderValue that sets authorization to a sealed token (its value in
 * raw_value, 3, or value, 2). */
static bool sealed_auth(struct pb hv, bool *bad)
{
	struct pb key, val;
	if (!pb_field(hv, 1, &key, bad) ||
	    !pb_is(key.p, (size_t)(key.end - key.p), "authorization"))
		return false;
	if (!pb_field(hv, 3, &val, bad) && !pb_field(hv, 2, &val, bad))
		return false;
	return val.end - val.p > 7 && !memcmp(val.p, "stk1.g.", 7);
}

/* Walks a HeaderMutation: whether it sets authorization to a sealed
 * token (set_headers, 1: HeaderValueOption.header) or removes it
 * (remove_headers, 2). */
static void check_mutation(struct pb hm, bool *sealed, bool *removed,
			   bool *bad)
{
	uint32_t f;
	const uint8_t *v;
	size_t vl;
	struct pb hv;
	while (pb_next(&hm.p, hm.end, &f, &v, &vl, bad)) {
		if (f == 2 && pb_is(v, vl, "authorization"))
			*removed = true;
		else if (f == 1 &&
			 pb_field((struct pb){ v, v + vl }, 1, &hv, bad) &&
			 sealed_auth(hv, bad))
			*sealed = true;
	}
}

/* Whether the reply message |msg| (no prefix) is what the server owes
 * for message |phase|: request_headers (field 1) with authorization
 * sealed, or response_headers (field 2); and carries neither secret. */
static bool reply_ok(const uint8_t *msg, size_t len, uint8_t phase)
{
	if (memmem(msg, len, AUTH_PLAIN, sizeof(AUTH_PLAIN) - 1) ||
	    memmem(msg, len, SID_PLAIN, sizeof(SID_PLAIN) - 1))
		return false;
	struct pb m = { msg, msg + len }, hr, cr, hm;
	bool bad = false, sealed = false, removed = false;
	if (!pb_field(m, phase == 1 ? 1 : 2, &hr, &bad))
		return false; /* not the reply type owed */
	/* HeadersResponse.response (1): CommonResponse.header_mutation (2) */
	if (phase == 1 && pb_field(hr, 1, &cr, &bad) &&
	    pb_field(cr, 2, &hm, &bad))
		check_mutation(hm, &sealed, &removed, &bad);
	return !bad && (phase != 1 || (sealed && !removed));
}

/* A reply came: its latency into the histograms. */
static void count_reply(struct stream *s)
{
	uint64_t t = now_ns();
	/* open loop: from the scheduled start for the first message */
	uint64_t from = s->phase == 1 && opt.rate > 0 ? s->t_sched : s->t_sent;
	if (measuring) {
		hist_add(&lat, t - from);
		if (rx_mono_ns)
			hist_add(&wire, rx_mono_ns > from ? rx_mono_ns - from : 0);
	}
	msgs_replied++;
	s->replies++;
}

static void on_reply(struct stream *s)
{
	count_reply(s);
	if (opt.resp_headers && s->phase == 1) {
		send_msg(s, msg_resp, msg_resp_len);
		return;
	}
	s->close_pending = true;
	s->out_len = s->out_off = 0;
	nghttp2_session_resume_data(s->c->h2, s->id);
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id,
		   const uint8_t *data, size_t len, void *user)
{
	(void)flags;
	(void)user;
	struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
	if (!s || opt.plain)
		return 0; /* --plain: the body is not looked at */
	while (len) {
		if (s->in_have < 5) {
			size_t k = 5 - s->in_have;
			if (k > len)
				k = len;
			memcpy(s->pfx + s->in_have, data, k);
			s->in_have += (uint32_t)k;
			data += k;
			len -= k;
			if (s->in_have == 5) {
				s->in_need = 5 + ((uint32_t)s->pfx[1] << 24 |
						  (uint32_t)s->pfx[2] << 16 |
						  (uint32_t)s->pfx[3] << 8 | s->pfx[4]);
				if (s->pfx[0] != 0)
					bad_replies++;
				/* a reply is a few hundred bytes; a huge
				 * length is a bad reply, not an allocation */
				if (s->in_need > (1u << 20)) {
					bad_replies++;
					return NGHTTP2_ERR_CALLBACK_FAILURE;
				}
				s->reply = malloc(s->in_need - 5 + 1);
			}
		}
		if (s->in_have >= 5) {
			size_t k = s->in_need - s->in_have;
			if (k > len)
				k = len;
			memcpy(s->reply + (s->in_have - 5), data, k);
			s->in_have += (uint32_t)k;
			data += k;
			len -= k;
			if (s->in_have == s->in_need) {
				if (!reply_ok(s->reply, s->in_need - 5, s->phase))
					bad_replies++;
				free(s->reply);
				s->reply = NULL;
				s->in_have = 0;
				on_reply(s);
			}
		}
	}
	return 0;
}

/* --close reset / cancel: RST_STREAM right behind the half-close, queued
 * while the half-close is being written so both leave in one write. */
static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f,
			 void *user)
{
	(void)user;
	if (!opt.graceful && f->hd.type == NGHTTP2_DATA &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE,
					  f->hd.stream_id, opt.rst_code);
	return 0;
}

static int on_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	(void)user;
	struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
	if (!s)
		return 0;
	/* a stream is done when every reply came and it was closed the
	 * chosen way: the server's grpc-status 0 (graceful) or our own
	 * reset after the half-close (reset, cancel) */
	bool ok = opt.graceful || opt.plain ? code == NGHTTP2_NO_ERROR
					    : code == opt.rst_code;
	if (opt.plain && ok)
		count_reply(s); /* the whole response came */
	if (ok && s->eof_sent)
		done_streams += measuring && !draining;
	else
		failed_streams++;
	s->c->inflight--;
	if (s->prev)
		s->prev->next = s->next;
	else
		inflight_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->reply);
	free(s);
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f,
		     const uint8_t *name, size_t nl, const uint8_t *value,
		     size_t vl, uint8_t flags, void *user)
{
	(void)h2;
	(void)flags;
	(void)user;
	(void)f;
	if (nl == 11 && !memcmp(name, "grpc-status", 11) &&
	    !(vl == 1 && value[0] == '0'))
		bad_replies++;
	if (opt.plain && nl == 7 && !memcmp(name, ":status", 7) &&
	    !(vl == 3 && !memcmp(value, "200", 3)))
		bad_replies++;
	return 0;
}

static nghttp2_session_callbacks *cbs;

static int conn_open(struct conn *c)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(opt.host, opt.port, &hints, &res))
		return -1;
	c->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (connect(c->fd, res->ai_addr, res->ai_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	nghttp2_session_client_new(&c->h2, cbs, c);
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	c->wbuf_pending = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	mark_dirty(c);
	return 0;
}

/* A connection the server closed (or that failed): out of epoll, so a
 * dead socket does not wake the loop again, and counted in the output
 * (conns_died) so a run that lost connections is not taken for a good
 * one. Its streams never finish: they are not in "streams". */
static void conn_die(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
}

static uint8_t wbuf[1 << 20];

static void conn_flush(struct conn *c)
{
	for (;;) {
		size_t n = 0;
		while (n < sizeof(wbuf) - 16384) {
			const uint8_t *d;
			ssize_t k = nghttp2_session_mem_send(c->h2, &d);
			if (k <= 0)
				break;
			if ((size_t)k > sizeof(wbuf) - n) {
				/* cannot happen with 16 KiB frames */
				break;
			}
			memcpy(wbuf + n, d, (size_t)k);
			n += (size_t)k;
		}
		if (!n)
			break;
		size_t off = 0;
		while (off < n) {
			ssize_t w = send(c->fd, wbuf + off, n - off, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN) {
					/* keep it simple: spin on EPOLLOUT */
					usleep(10);
					continue;
				}
				conn_die(c);
				return;
			}
			off += (size_t)w;
		}
	}
}

/* The arrival of a read's last segment on the monotonic clock: its age
 * (the real-time clock now minus the kernel's real-time stamp) taken from
 * the monotonic now, so the two clocks need not agree, only tick alike
 * over that age. 0 if the read carried no timestamp. */
static uint64_t rx_arrival(struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
	     cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_TIMESTAMPNS)
			continue;
		struct timespec stamp, real;
		memcpy(&stamp, CMSG_DATA(cm), sizeof(stamp));
		uint64_t mono = now_ns();
		clock_gettime(CLOCK_REALTIME, &real);
		uint64_t age = ts_ns(&real) > ts_ns(&stamp)
				       ? ts_ns(&real) - ts_ns(&stamp)
				       : 0;
		return mono > age ? mono - age : 0;
	}
	return 0;
}

static void conn_read(struct conn *c)
{
	static uint8_t rbuf[1 << 16];
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	/* replies lead to half-closes, acks and window updates */
	mark_dirty(c);
	for (int i = 0; i < 8; i++) {
		struct iovec iov = { rbuf, sizeof(rbuf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(c->fd, &mh, 0);
		if (n < 0 && errno == EAGAIN)
			break;
		rx_mono_ns = n > 0 ? rx_arrival(&mh) : 0;
		if (n <= 0 ||
		    nghttp2_session_mem_recv(c->h2, rbuf, (size_t)n) < 0) {
			conn_die(c);
			return;
		}
		/* a short read drained the socket (level-triggered epoll
		 * brings the rest) */
		if ((size_t)n < sizeof(rbuf))
			break;
	}
}

/* ---- the open-loop schedule ---- */

static uint64_t interval, next_start; /* ns between starts; the next one */
static unsigned rr;                   /* round robin over connections */

/* Starts every stream owed by |now|, round robin; a full connection
 * passes its turn to the next one. Called between connection reads too,
 * so starts do not wait behind a whole batch of reads (up to one per
 * connection) and then leave late and in a burst. */
static void start_due(uint64_t now)
{
	while (next_start <= now) {
		pending_starts++;
		next_start += interval;
	}
	unsigned tries = 0;
	while (pending_starts && tries < opt.conns) {
		struct conn *c = &conns[rr++ % opt.conns];
		if (c->dead || c->inflight >= opt.depth) {
			tries++;
			continue;
		}
		tries = 0;
		uint64_t sched = next_start - interval * pending_starts;
		if (!start_stream(c, sched))
			break;
		pending_starts--;
	}
	if (pending_starts > backlog_max)
		backlog_max = pending_starts;
}

/* Flushes the dirty connections. */
static void flush_dirty(void)
{
	while (dirty_head) {
		struct conn *c = dirty_head;
		dirty_head = c->next_dirty;
		c->dirty = false;
		if (!c->dead)
			conn_flush(c);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: extproc_load [--host H] [--port P] [--connections N] "
		"[--depth D] [--duration S] [--warmup S] [--rate R] "
		"[--response-headers] [--close reset|cancel|graceful] "
		"[--drain S] [--cpu N] [--plain PATH]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, NULL, 'H' },	  { "port", 1, NULL, 'p' },
		{ "connections", 1, NULL, 'c' }, { "depth", 1, NULL, 'm' },
		{ "duration", 1, NULL, 'd' },	  { "warmup", 1, NULL, 'w' },
		{ "rate", 1, NULL, 'r' },	  { "response-headers", 0, NULL, 'R' },
		{ "cpu", 1, NULL, 'C' },	  { "close", 1, NULL, 'x' },
		{ "drain", 1, NULL, 'D' },	  { "plain", 1, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': opt.host = optarg; break;
		case 'p': opt.port = optarg; break;
		case 'c': opt.conns = (unsigned)atoi(optarg); break;
		case 'm': opt.depth = (unsigned)atoi(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'w': opt.warmup = atof(optarg); break;
		case 'r': opt.rate = atof(optarg); break;
		case 'R': opt.resp_headers = true; break;
		case 'C': opt.cpu = atoi(optarg); break;
		case 'x':
			if (!strcmp(optarg, "graceful"))
				opt.graceful = true;
			else if (!strcmp(optarg, "cancel"))
				opt.rst_code = NGHTTP2_CANCEL;
			else if (strcmp(optarg, "reset"))
				usage();
			break;
		case 'D': opt.drain = atof(optarg); break;
		case 'P': opt.plain = optarg; break;
		default: usage();
		}
	}
	if (!opt.conns || !opt.depth || opt.duration <= 0 || opt.drain < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (opt.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(opt.cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	msg_req = encode(false, &msg_req_len);
	msg_resp = encode(true, &msg_resp_len);

	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);

	ep = epoll_create1(0);
	conns = calloc(opt.conns, sizeof(*conns));
	for (unsigned i = 0; i < opt.conns; i++)
		if (conn_open(&conns[i]) < 0) {
			fprintf(stderr, "extproc_load: cannot connect to %s:%s\n",
				opt.host, opt.port);
			return 1;
		}

	uint64_t t0 = now_ns();
	uint64_t t_measure = t0 + (uint64_t)(opt.warmup * 1e9);
	uint64_t t_end = t_measure + (uint64_t)(opt.duration * 1e9);
	interval = opt.rate > 0 ? (uint64_t)(1e9 / opt.rate) : 0;
	next_start = t0;
	uint64_t measured_start_count = 0;
	/* The generator's own CPU over the measured window: a busy client
	 * adds its delays to the latency it reports. */
	uint64_t cpu_at_measure = 0, cpu_at_end = 0, drain_end = 0;
	uint64_t window_starts = 0;
	struct epoll_event evs[256];
	unsigned dead = 0;
	for (;;) {
		uint64_t now = now_ns();
		if (!measuring && now >= t_measure) {
			measuring = true;
			measured_start_count = started_streams;
			cpu_at_measure = cpu_ns();
		}
		if (!draining && now >= t_end) {
			/* the starts due up to the end go out now; what
			 * stays owed (connections full) is never sent */
			if (opt.rate > 0)
				start_due(t_end);
			draining = true;
			window_starts = started_streams - measured_start_count;
			cpu_at_end = cpu_ns();
			drain_end = now + (uint64_t)(opt.drain * 1e9);
		}
		if (draining && (!inflight_head || now >= drain_end))
			break;
		if (draining) {
			/* no new streams: only what is in flight */
		} else if (opt.rate > 0) {
			start_due(now);
		} else {
			for (unsigned i = 0; i < opt.conns; i++) {
				struct conn *c = &conns[i];
				while (!c->dead && c->inflight < opt.depth)
					if (!start_stream(c, now))
						break;
			}
		}
		flush_dirty();
		/* Sleep until the next scheduled start or I/O, to the
		 * nanosecond (epoll_pwait2), so the generator does not burn
		 * its core spinning at low rates. */
		struct timespec to = { 0, 1000000 };
		if (opt.rate > 0) {
			uint64_t t = now_ns();
			uint64_t d = next_start > t ? next_start - t : 0;
			if (pending_starts)
				d = 0;
			to.tv_sec = (time_t)(d / 1000000000ull);
			to.tv_nsec = (long)(d % 1000000000ull);
		}
		int n = epoll_pwait2(ep, evs, 256, &to, NULL);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				conn_read(c);
				if (opt.rate > 0 && !draining &&
				    now_ns() >= next_start) {
					start_due(now_ns());
					flush_dirty();
				}
			}
			if ((evs[i].events & EPOLLOUT) && c->wbuf_pending) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				c->wbuf_pending = 0;
			}
		}
		dead = 0;
		for (unsigned i = 0; i < opt.conns; i++)
			dead += conns[i].dead;
		if (dead == opt.conns) {
			fprintf(stderr, "extproc_load: every connection died\n");
			return 1;
		}
	}
	/* What never came or never left: the latency it reached at least,
	 * and counted apart. */
	uint64_t t_final = now_ns();
	for (struct stream *s = inflight_head; s; s = s->next) {
		uint64_t from = s->phase == 1 && opt.rate > 0 ? s->t_sched
							       : s->t_sent;
		hist_add(&lat, t_final - from);
		hist_add(&wire, t_final - from);
		unfinished++;
	}
	for (uint64_t k = 1; k <= pending_starts; k++) {
		uint64_t sched = next_start - interval * k;
		hist_add(&lat, t_final > sched ? t_final - sched : 0);
		hist_add(&wire, t_final > sched ? t_final - sched : 0);
		unsent++;
	}
	double secs = opt.duration;
	printf("{\"mode\":\"%s\",\"close\":\"%s\",\"connections\":%u,"
	       "\"depth\":%u,\"response_headers\":%s,\"target_rate\":%.0f,"
	       "\"duration_s\":%.2f,\"streams\":%llu,\"streams_per_s\":%.0f,"
	       "\"messages_per_s\":%.0f,\"failed\":%llu,\"bad_replies\":%llu,"
	       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
	       "\"max_backlog\":%llu,\"started_in_window\":%llu,"
	       "\"client_cpu_pct\":%.0f,\"conns_died\":%u,"
	       "\"start_lag_p99_us\":%.1f,\"start_lag_p999_us\":%.1f,"
	       "\"replies\":%llu,\"wire_replies\":%llu,\"wire_p50_us\":%.1f,"
	       "\"wire_p99_us\":%.1f,\"wire_p999_us\":%.1f,"
	       "\"unfinished\":%llu,\"unsent\":%llu}\n",
	       opt.rate > 0 ? "open" : "closed",
	       opt.plain      ? "plain"
	       : opt.graceful ? "graceful"
	       : opt.rst_code == NGHTTP2_CANCEL ? "cancel" : "reset",
	       opt.conns, opt.depth,
	       opt.resp_headers ? "true" : "false", opt.rate, secs,
	       (unsigned long long)done_streams, (double)done_streams / secs,
	       (double)lat.n / secs, (unsigned long long)failed_streams,
	       (unsigned long long)bad_replies, (double)hist_q(&lat, 0.5) / 1e3,
	       (double)hist_q(&lat, 0.99) / 1e3,
	       (double)hist_q(&lat, 0.999) / 1e3,
	       (unsigned long long)backlog_max,
	       (unsigned long long)window_starts,
	       (double)(cpu_at_end - cpu_at_measure) / (secs * 1e7), dead,
	       (double)hist_q(&lag, 0.99) / 1e3, (double)hist_q(&lag, 0.999) / 1e3,
	       (unsigned long long)lat.n, (unsigned long long)wire.n,
	       (double)hist_q(&wire, 0.5) / 1e3,
	       (double)hist_q(&wire, 0.99) / 1e3,
	       (double)hist_q(&wire, 0.999) / 1e3,
	       (unsigned long long)unfinished, (unsigned long long)unsent);
	return 0;
}
