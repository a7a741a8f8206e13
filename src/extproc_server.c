/* ext_proc: the gRPC server. See extproc.h.
 *
 * Threads: N event-loop threads, each with its own libevent base and its
 * own listening socket per address, all bound to the same port with
 * SO_REUSEPORT so the kernel spreads connections over them. A connection
 * lives on the thread that accepted it; nothing is shared between threads
 * but the read-only configuration (counters and export rings are per
 * thread).
 *
 * A connection: optional TLS (OpenSSL directly on the non-blocking socket,
 * ALPN "h2", optional client certificates), then a sniff of the first
 * bytes (RFC 9113 §3.4 preface; an HTTP/1.x request gets a 505 and
 * anything else a GOAWAY), then an nghttp2 server session fed with
 * nghttp2_session_mem_recv() and drained with nghttp2_session_mem_send()
 * into the connection's output buffer.
 *
 * A stream: request headers are checked when they end (POST,
 * content-type application/grpc*, known path, grpc-encoding identity,
 * header list size); DATA is cut into gRPC messages (5-byte prefix,
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), each
 * handled as soon as it is complete -- in place when it arrived whole in
 * one DATA chunk -- and the replies go out through a deferred nghttp2 data
 * provider, ended by trailers carrying grpc-status (and grpc-message).
 *
 * Caps: max_message per message, max_streams per connection (SETTINGS),
 * max_header_list per stream, CONN_BUFFER_MSGS messages' worth of admitted
 * partial input per connection and as much again waiting (conn_admit()),
 * OUT_HIGH bytes of output pulled from nghttp2
 * before the socket takes them, and a premature-reset budget per
 * connection against stream floods (the rapid reset pattern).
 *
 * Replies not yet taken by the client: STREAM_OUT_MSGS max_messages (+
 * STREAM_OUT_SLACK) per stream and CONN_OUT_STREAMS times that per
 * connection. Past either, the stream's input is held back by HTTP/2 flow
 * control: nghttp2 sends no WINDOW_UPDATE by itself
 * (nghttp2_option_set_no_auto_window_update), DATA is consumed
 * (nghttp2_session_consume) when it is handled, or, for a stream over
 * the cap, once its replies drain. A client that does not read at all is
 * cut off by stream_timeout without output progress: the stream and the
 * connection are reset (write stall, tick_cb()).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

/* protoc-c's *__INIT macros leave the braces of oneof unions out */
#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"
#include "health.pb-c.h"
#include "sealtap/common.h"
#include "sealtap/export.h"
#include "sealtap/extproc.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/mem_secret.h"
#include "sealtap/record.h"

#define RBUF_SIZE (64u * 1024)      /* one read from a socket */
#define OUT_HIGH (1u << 20)         /* output pulled from nghttp2 before a write */
#define READS_PER_EVENT 16          /* fairness between connections */
#define ACCEPTS_PER_EVENT 64
#define CONN_BUFFER_MSGS 4          /* partial input per conn, in max_message */
#define STREAM_WINDOW (256u << 10)  /* SETTINGS_INITIAL_WINDOW_SIZE: what a
				       stream waiting for admission may
				       send */
#define CONN_WINDOW (16u << 20)     /* connection receive window */
#define STREAM_OUT_MSGS 2           /* unsent replies per stream, in max_message */
#define STREAM_OUT_SLACK (64u << 10) /* ... plus this */
#define CONN_OUT_STREAMS 4          /* unsent replies per conn, in stream caps */
#define HANDSHAKE_TIMEOUT_NS (10 * ST_NS_PER_SEC)
#define GOAWAY_DELAY_MS 100         /* shutdown notice -> final GOAWAY */
#define RESET_BUDGET 1000.0         /* premature resets a connection may burst */
#define RESET_REFILL 100.0          /* ... and refill per second */
#define HEALTH_REQ_MAX 2048
#define HEALTH_TIMEOUT_S 5
#define HEALTH_CONNS_MAX 256        /* open health-port connections */
#define ACCEPT_PAUSE_MS 100         /* listeners off after EMFILE/ENFILE */

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

enum conn_state { C_TLS, C_SNIFF, C_H2, C_CLOSING };
enum stream_kind { K_NONE = 0, K_PROCESS, K_HEALTH, K_WATCH, K_UNKNOWN };

struct xp_worker;
struct xp_conn;
struct hconn;

struct xp_stream {
	struct xp_stream *prev, *next; /* conn's list, least recently active first */
	struct xp_conn *c;
	int32_t id;
	uint8_t kind;
	bool is_post, ct_ok, enc_bad, hdr_too_big, headers_done;
	bool resp_started, finishing, finished, remote_closed;
	bool rejected; /* refused at its headers: input is discarded */
	uint32_t hdr_bytes;
	uint64_t timeout_ns; /* grpc-timeout, 0 = none */
	struct event *deadline;
	uint8_t prefix[5];
	uint8_t nprefix;
	uint32_t msg_len;
	struct extproc_buf in;
	uint32_t nmsgs;
	struct extproc_buf out;
	size_t out_off;
	size_t counted;    /* out.len - out_off as summed in c->pending */
	uint32_t held;     /* DATA bytes handled but not consumed (flow
			      control): replies over the cap */
	bool admitted;     /* its partial message is counted in c->reserved */
	bool waiting;      /* its partial message waits for room there */
	uint32_t wait_new; /* bytes of the DATA chunk in hand it stored while
			      waiting (stream_data() -> on_data_chunk()) */
	uint32_t unconsumed; /* stored while waiting: the connection window
				given back, the stream's not */
	bool stall_rst;    /* reset for a write stall */
	bool peer_rst;     /* the client's RST_STREAM ended it */
	uint64_t sent;     /* reply bytes nghttp2 pulled */
	uint64_t stall_sent, stall_ns; /* |sent| when last seen moving */
	int grpc_status; /* -1 until finished */
	const char *grpc_msg;
	struct extproc_xchg *x;
	uint64_t last_ns;
};

struct xp_conn {
	struct xp_conn *prev, *next;
	struct xp_worker *w;
	int fd;
	SSL *ssl;
	nghttp2_session *h2;
	struct event *rd, *wr;
	enum conn_state state;
	struct extproc_buf out;
	size_t out_off;
	uint8_t sniff[PREFACE_LEN];
	size_t nsniff;
	char peer[64];
	uint64_t seq;
	uint64_t created_ns, last_ns;
	unsigned nstreams;
	uint64_t buffered; /* partial message bytes held by its streams */
	uint64_t reserved; /* sizes of the partial messages admitted */
	uint64_t waiting;  /* bytes stored by streams waiting for admission */
	uint64_t pending;  /* unsent reply bytes of its streams (s->out) */
	bool held_conn;    /* a stream holds input for the conn cap */
	uint64_t sent;     /* bytes written to the socket */
	uint64_t stall_acked, stall_ns; /* sent - kernel send queue, when
					   last seen moving */
	double reset_tokens;
	uint64_t reset_ns;
	bool close_after_write;
	bool notice_sent, goaway_sent;
	bool detached; /* fuzz/test session: no socket */
	struct xp_stream *shead, *stail;
};

struct xp_listener {
	int fd;
	struct event *ev;
	struct xp_worker *w;
};

struct xp_worker {
	struct extproc_server *srv; /* NULL for a detached session */
	const struct extproc_cfg *cfg;
	unsigned id;
	pthread_t thread;
	bool started;
	struct event_base *base;
	struct event *shutdown_ev, *tick_ev, *goaway_ev;
	struct xp_listener lst[EXTPROC_MAX_LISTEN];
	unsigned nlst;
	struct xp_listener health;
	struct event *resume_ev; /* turns the listeners on again */
	struct event *drain_ev;  /* waits for the other threads' drain */
	bool accept_paused;
	bool drained;
	struct hconn *hconns; /* open health-port connections */
	unsigned nhconns;
	struct xp_conn *conns;
	unsigned nconns;
	struct extproc_counters ctr;
	struct extproc_ctx ctx;
	struct extproc_policy *pd; /* the thread's decider */
	struct export_ring *ring;
	struct extproc_buf rec;
	uint64_t out_cap, conn_out_cap; /* unsent replies: stream, conn */
	unsigned max_conns; /* its share of max_connections; 0: no cap */
	uint8_t *rbuf;
	uint64_t conn_seq;
	uint64_t nonce;
	bool draining;
	uint64_t drain_deadline;
	SSL_CTX *ssl_ctx;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
};

struct extproc_server {
	const struct extproc_cfg *cfg;
	unsigned nworkers;
	struct xp_worker *workers;
	SSL_CTX *ssl_ctx;
	struct export_ring *rings;
	struct export_file *exporter;
	char addrs[EXTPROC_MAX_LISTEN][80];
	unsigned naddrs;
	char health_addr[80];
	int health_fd;
	uint64_t nonce;
	atomic_int shutdown;
	atomic_int force;     /* a second stop: end the drain now */
	atomic_uint draining; /* threads not done draining */
};

static void conn_close(struct xp_conn *c);
static bool conn_flush(struct xp_conn *c);
static void stream_finish(struct xp_stream *s, int status, const char *msg);

/* A draining thread with no connection left: its loop ends, except the
 * one with the health port, which answers 503 until every thread has
 * drained (a probe in between would otherwise find no one answering). */
static void worker_drained(struct xp_worker *w)
{
	if (!w->drained) {
		w->drained = true;
		if (w->srv)
			atomic_fetch_sub(&w->srv->draining, 1);
	}
	if (w->srv && w->health.ev && w->health.fd >= 0 &&
	    atomic_load(&w->srv->draining) > 0) {
		struct timeval tv = { .tv_usec = 50 * 1000 };
		evtimer_add(w->drain_ev, &tv);
		return;
	}
	event_base_loopexit(w->base, NULL);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_drained(arg);
}

/* ---- streams ---------------------------------------------------------- */

static void stream_touch(struct xp_stream *s)
{
	struct xp_conn *c = s->c;
	s->last_ns = c->last_ns;
	if (c->stail == s)
		return;
	/* unlink */
	if (s->prev)
		s->prev->next = s->next;
	else
		c->shead = s->next;
	if (s->next)
		s->next->prev = s->prev;
	/* append */
	s->prev = c->stail;
	s->next = NULL;
	if (c->stail)
		c->stail->next = s;
	else
		c->shead = s;
	c->stail = s;
}

static struct xp_stream *stream_new(struct xp_conn *c, int32_t id)
{
	struct xp_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->c = c;
	s->id = id;
	s->grpc_status = -1;
	s->last_ns = s->stall_ns = c->last_ns;
	s->prev = c->stail;
	if (c->stail)
		c->stail->next = s;
	else
		c->shead = s;
	c->stail = s;
	c->nstreams++;
	return s;
}

/* Keeps c->pending, the sum of the connection's unsent reply bytes, in
 * step with |s|: call after s->out grew or shrank. */
static void stream_out_sync(struct xp_stream *s)
{
	size_t p = s->out.len - s->out_off;
	s->c->pending = s->c->pending - s->counted + p;
	s->counted = p;
}

/* Unsent replies under both caps: the stream may take more input. */
static bool stream_out_ok(const struct xp_stream *s)
{
	const struct xp_worker *w = s->c->w;
	return s->out.len - s->out_off <= w->out_cap &&
	       s->c->pending <= w->conn_out_cap;
}

/* Whether |s| holds flow-control credit to give back once its replies
 * drain: DATA held unconsumed, or the stream window of a message that
 * waited for admission and is no longer waiting. */
static bool stream_holds(const struct xp_stream *s)
{
	return s->held || (s->unconsumed && !s->waiting);
}

/* Consumes the DATA |s| held back: nghttp2 sends WINDOW_UPDATE for the
 * stream and the connection once enough is consumed, and the client may
 * send more. */
static void stream_release(struct xp_stream *s)
{
	nghttp2_session_consume(s->c->h2, s->id, s->held);
	s->held = 0;
	if (s->unconsumed && !s->waiting) {
		nghttp2_session_consume_stream(s->c->h2, s->id, s->unconsumed);
		s->unconsumed = 0;
	}
}

/* The connection's replies drained below half its cap: releases every
 * stream held back for it (those still over their own cap stay held
 * until their own replies drain, data_read_cb()). One walk per half a
 * cap of output sent. */
static void conn_release(struct xp_conn *c)
{
	if (!c->held_conn || !c->h2 || c->pending > c->w->conn_out_cap / 2)
		return;
	c->held_conn = false;
	for (struct xp_stream *s = c->shead; s; s = s->next)
		if (stream_holds(s) && stream_out_ok(s))
			stream_release(s);
}

/* Partial messages of a connection: one is admitted when its whole size
 * fits under CONN_BUFFER_MSGS max_messages with the others admitted; its
 * DATA is consumed as it comes, so it always completes. One that does
 * not fit waits: its DATA is kept and the connection window given back
 * (nghttp2_session_consume_connection), so the admitted ones never
 * starve, but its stream window is not, so the client sends at most one
 * stream window more on it. Admitted in the connection's stream order
 * as room frees up. Waiting bytes past another CONN_BUFFER_MSGS
 * max_messages end the stream (msgs_over_conn_input). Envoy interleaves
 * many streams' bodies on one connection: they queue here instead of
 * failing. */
static uint64_t conn_input_cap(const struct xp_conn *c)
{
	return CONN_BUFFER_MSGS * (uint64_t)c->w->cfg->max_message;
}

/* The stream window a message held while it waited goes back, unless
 * the stream's replies are over their caps: then it goes with the held
 * DATA when they drain (stream_release()), or the client could send on
 * past the cap on unsent replies. */
static void stream_give_back(struct xp_stream *s)
{
	if (!s->unconsumed || !s->c->h2)
		return;
	if (stream_out_ok(s)) {
		nghttp2_session_consume_stream(s->c->h2, s->id, s->unconsumed);
		s->unconsumed = 0;
	} else if (s->c->pending > s->c->w->conn_out_cap) {
		s->c->held_conn = true;
	}
}

static void stream_admit(struct xp_stream *s)
{
	struct xp_conn *c = s->c;
	if (s->waiting) {
		c->waiting -= s->in.len;
		s->waiting = false;
		stream_give_back(s);
	}
	s->admitted = true;
	c->reserved += s->msg_len;
}

/* Room freed up: admits the waiting streams that now fit, in order. */
static void conn_admit(struct xp_conn *c)
{
	if (!c->waiting)
		return;
	for (struct xp_stream *s = c->shead; s && c->waiting; s = s->next)
		if (s->waiting &&
		    c->reserved + s->msg_len <= conn_input_cap(c))
			stream_admit(s);
}

/* Forgets |s|'s partial message (done, or dropped). */
static void stream_input_done(struct xp_stream *s)
{
	struct xp_conn *c = s->c;
	c->buffered -= s->in.len;
	if (s->admitted)
		c->reserved -= s->msg_len;
	if (s->waiting)
		c->waiting -= s->in.len;
	s->admitted = s->waiting = false;
	if (s->finishing)
		s->unconsumed = 0; /* no window to give a stream that ends */
	else
		stream_give_back(s);
	s->in.len = 0;
}

static void stream_free(struct xp_stream *s)
{
	struct xp_conn *c = s->c;
	c->pending -= s->counted;
	/* RFC 9113 §6.9.1: DATA of a closed stream still counts against
	 * the connection window; return what this one held */
	if (s->held && c->h2)
		nghttp2_session_consume_connection(c->h2, s->held);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->shead = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		c->stail = s->prev;
	c->nstreams--;
	s->finishing = true; /* no window to give back: the stream is gone */
	stream_input_done(s);
	conn_admit(c);
	if (s->deadline)
		event_free(s->deadline);
	extproc_buf_free(&s->in);
	extproc_buf_free(&s->out);
	extproc_xchg_free(s->x);
	free(s);
	conn_release(c);
}

static ssize_t data_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf,
			    size_t length, uint32_t *flags,
			    nghttp2_data_source *src, void *user);

/* Submits the response HEADERS (with the data provider) once. */
static int stream_start_response(struct xp_stream *s)
{
	stream_out_sync(s);
	if (s->resp_started)
		return nghttp2_session_resume_data(s->c->h2, s->id);
	static const nghttp2_nv hdrs[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3,
		  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12,
		  16, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
	};
	nghttp2_data_provider prd = { .source.ptr = s,
				      .read_callback = data_read_cb };
	s->resp_started = true;
	return nghttp2_submit_response(s->c->h2, s->id, hdrs,
				       ST_ARRAY_SIZE(hdrs), &prd);
}

/* The status fields that end a stream, in trailers or a trailers-only
 * response: grpc-status (its digits in |st|, which must outlive the
 * submission), grpc-message when there is one (a static text), and
 * grpc-accept-encoding when the client sent what we do not decode.
 * Returns how many of the three it wrote to |t|. */
static size_t status_fields(const struct xp_stream *s, char st[12],
			    nghttp2_nv t[3])
{
	int n = snprintf(st, 12, "%d", s->grpc_status);
	size_t nt = 0;
	t[nt++] = (nghttp2_nv){ (uint8_t *)"grpc-status", (uint8_t *)st, 11,
				(size_t)n, NGHTTP2_NV_FLAG_NO_COPY_NAME };
	if (s->grpc_msg)
		t[nt++] = (nghttp2_nv){ (uint8_t *)"grpc-message",
					(uint8_t *)s->grpc_msg, 12,
					strlen(s->grpc_msg),
					NGHTTP2_NV_FLAG_NO_COPY_NAME |
						NGHTTP2_NV_FLAG_NO_COPY_VALUE };
	if (s->grpc_status == EXTPROC_GRPC_UNIMPLEMENTED && s->enc_bad)
		t[nt++] = (nghttp2_nv){ (uint8_t *)"grpc-accept-encoding",
					(uint8_t *)"identity", 20, 8,
					NGHTTP2_NV_FLAG_NO_COPY_NAME |
						NGHTTP2_NV_FLAG_NO_COPY_VALUE };
	return nt;
}

static void submit_trailers(struct xp_stream *s)
{
	char st[12];
	nghttp2_nv t[3];
	size_t nt = status_fields(s, st, t);
	nghttp2_submit_trailer(s->c->h2, s->id, t, nt);
}

static ssize_t data_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf,
			    size_t length, uint32_t *flags,
			    nghttp2_data_source *src, void *user)
{
	(void)h2;
	(void)id;
	(void)user;
	struct xp_stream *s = src->ptr;
	size_t avail = s->out.len - s->out_off;
	size_t n = avail < length ? avail : length;
	if (n) {
		memcpy(buf, s->out.p + s->out_off, n);
		s->out_off += n;
		s->sent += n;
		extproc_buf_sent(&s->out, &s->out_off);
		stream_out_sync(s);
		if (stream_holds(s) &&
		    s->out.len - s->out_off <= s->c->w->out_cap) {
			if (s->c->pending <= s->c->w->conn_out_cap)
				stream_release(s);
			else
				s->c->held_conn = true;
		}
		conn_release(s->c);
	}
	if (s->out.len == s->out_off && s->finishing) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		submit_trailers(s);
		s->finished = true;
		return (ssize_t)n;
	}
	if (!n)
		return NGHTTP2_ERR_DEFERRED;
	return (ssize_t)n;
}

/* Ends the stream with |status| (0 = OK) and a static |msg|: what is
 * queued goes out first, then the trailers. Before any reply this is a
 * trailers-only response (one HEADERS frame with END_STREAM). */
static void stream_finish(struct xp_stream *s, int status, const char *msg)
{
	if (s->finishing || s->finished)
		return;
	struct xp_worker *w = s->c->w;
	s->finishing = true;
	s->grpc_status = status;
	s->grpc_msg = status ? msg : NULL;
	if (status == 0)
		EXTPROC_INC(&w->ctr, streams_ok);
	else
		EXTPROC_INC(&w->ctr, streams_error);
	stream_input_done(s);
	conn_admit(s->c);
	if (s->deadline)
		event_del(s->deadline);
	if (s->resp_started) {
		nghttp2_session_resume_data(s->c->h2, s->id);
		return;
	}
	if (s->out.len > s->out_off) {
		stream_start_response(s);
		return;
	}
	char st[12];
	nghttp2_nv h[5] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, 0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
	};
	size_t nh = 2 + status_fields(s, st, h + 2);
	s->resp_started = true;
	s->finished = true;
	nghttp2_submit_response(s->c->h2, s->id, h, nh, NULL);
}

/* A plain HTTP error (not gRPC): wrong method or content-type. */
static void stream_http_error(struct xp_stream *s, const char *status)
{
	nghttp2_nv h[2] = {
		{ (uint8_t *)":status", (uint8_t *)status, 7, 3, 0 },
		{ (uint8_t *)"content-length", (uint8_t *)"0", 14, 1, 0 },
	};
	s->resp_started = s->finishing = s->finished = true;
	s->rejected = true;
	nghttp2_submit_response(s->c->h2, s->id, h, 2, NULL);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct xp_stream *s = arg;
	struct xp_conn *c = s->c;
	EXTPROC_INC(&c->w->ctr, streams_deadline);
	stream_finish(s, EXTPROC_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
	conn_flush(c);
}

/* A century is the cap because 8 digits of hours would not fit in 64 bits
 * of nanoseconds (97357816H wrapped to 200 s), and a deadline that far
 * off is none. */
uint64_t extproc_grpc_timeout_ns(const uint8_t *v, size_t len)
{
	if (len < 2 || len > 9)
		return 0;
	uint64_t n = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	uint64_t unit;
	switch (v[len - 1]) {
	case 'H': unit = 3600 * ST_NS_PER_SEC; break;
	case 'M': unit = 60 * ST_NS_PER_SEC; break;
	case 'S': unit = ST_NS_PER_SEC; break;
	case 'm': unit = ST_NS_PER_MS; break;
	case 'u': unit = 1000; break;
	case 'n': unit = 1; break;
	default: return 0;
	}
	const uint64_t century = 100ull * 365 * 24 * 3600 * ST_NS_PER_SEC;
	if (n > century / unit)
		return 0;
	/* "0S": a deadline already passed, not none (1 ns: expires at once) */
	return n ? n * unit : 1;
}

/* End of the request headers: accept the call or refuse it. */
static void stream_headers_done(struct xp_stream *s)
{
	struct xp_conn *c = s->c;
	struct xp_worker *w = c->w;
	s->headers_done = true;
	EXTPROC_INC(&w->ctr, streams_opened);
	if (s->hdr_too_big) {
		EXTPROC_INC(&w->ctr, streams_header_too_big);
		s->rejected = true;
		stream_finish(s, EXTPROC_GRPC_RESOURCE_EXHAUSTED,
			      "header list too large");
		return;
	}
	if (!s->is_post) {
		/* gRPC over HTTP/2: calls are POST; RFC 9110 §15.5.6 */
		EXTPROC_INC(&w->ctr, streams_bad_request);
		stream_http_error(s, "405");
		return;
	}
	if (!s->ct_ok) {
		/* PROTOCOL-HTTP2.md: 415 for a non-gRPC content-type */
		EXTPROC_INC(&w->ctr, streams_bad_request);
		stream_http_error(s, "415");
		return;
	}
	if (s->kind == K_UNKNOWN || s->kind == K_NONE || s->kind == K_WATCH) {
		EXTPROC_INC(&w->ctr, streams_unimplemented);
		s->rejected = true;
		stream_finish(s, EXTPROC_GRPC_UNIMPLEMENTED,
			      s->kind == K_WATCH ? "Health/Watch is not implemented"
						 : "unknown method");
		return;
	}
	if (s->enc_bad) {
		EXTPROC_INC(&w->ctr, msgs_compressed);
		s->rejected = true;
		stream_finish(s, EXTPROC_GRPC_UNIMPLEMENTED,
			      "grpc-encoding not supported; use identity");
		return;
	}
	if (s->kind == K_PROCESS) {
		EXTPROC_INC(&w->ctr, streams_process);
		uint64_t seq[3] = { w->nonce, c->seq, (uint64_t)s->id };
		struct extproc_xchg_info info = {
			.peer = c->peer,
			.stream_id = (uint32_t)s->id,
			.id = record_hash64(seq, sizeof(seq), w->id),
			.start_ns = st_wall_ns(),
		};
		s->x = extproc_xchg_new(&info);
		if (!s->x) {
			s->rejected = true;
			stream_finish(s, EXTPROC_GRPC_RESOURCE_EXHAUSTED,
				      "out of memory");
			return;
		}
	} else {
		EXTPROC_INC(&w->ctr, streams_health);
	}
	if (s->timeout_ns && !c->detached) {
		s->deadline = evtimer_new(w->base, deadline_cb, s);
		if (s->deadline) {
			struct timeval tv = {
				.tv_sec = (time_t)(s->timeout_ns / ST_NS_PER_SEC),
				.tv_usec = (suseconds_t)(s->timeout_ns %
							 ST_NS_PER_SEC / 1000),
			};
			evtimer_add(s->deadline, &tv);
		}
	}
}

static void health_reply(struct xp_stream *s, const uint8_t *msg, size_t len)
{
	struct xp_worker *w = s->c->w;
	if (s->nmsgs > 1) {
		stream_finish(s, EXTPROC_GRPC_INTERNAL,
			      "Health/Check takes one request message");
		return;
	}
	extproc_arena_reset(w->ctx.arena);
	Grpc__Health__V1__HealthCheckRequest *req =
		grpc__health__v1__health_check_request__unpack(
			extproc_arena_allocator(w->ctx.arena), len, msg);
	if (!req) {
		EXTPROC_INC(&w->ctr, msgs_malformed);
		stream_finish(s, EXTPROC_GRPC_INTERNAL,
			      "HealthCheckRequest is not valid protobuf");
		return;
	}
	if (req->service && req->service[0] &&
	    strcmp(req->service, EXTPROC_SERVICE_NAME) != 0) {
		stream_finish(s, EXTPROC_GRPC_NOT_FOUND, "unknown service");
		return;
	}
	Grpc__Health__V1__HealthCheckResponse r =
		GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	r.status = w->draining
			   ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
			   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	size_t n = grpc__health__v1__health_check_response__get_packed_size(&r);
	if (!extproc_buf_reserve(&s->out, 5 + n)) {
		stream_finish(s, EXTPROC_GRPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	uint8_t *p = s->out.p + s->out.len;
	p[0] = 0;
	p[1] = (uint8_t)(n >> 24);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 8);
	p[4] = (uint8_t)n;
	grpc__health__v1__health_check_response__pack(&r, p + 5);
	s->out.len += 5 + n;
	stream_start_response(s);
}

/* One complete gRPC message of |s|. */
static void stream_message(struct xp_stream *s, const uint8_t *msg, size_t len)
{
	struct xp_worker *w = s->c->w;
	uint64_t t0 = st_mono_ns();
	s->nmsgs++;
	EXTPROC_INC(&w->ctr, msgs);
	if (s->kind == K_HEALTH) {
		health_reply(s, msg, len);
		return;
	}
	size_t before = s->out.len;
	const char *why = NULL;
	int rc = extproc_xchg_message(s->x, &w->ctx, msg, len, &s->out, &why);
	if (rc < 0) {
		stream_finish(s, -rc, why);
		return;
	}
	if (s->out.len > before) {
		extproc_counters_lat(&w->ctr, st_mono_ns() - t0);
		stream_start_response(s);
	}
}

/* The periodic tick for |s|: FULL_DUPLEX_STREAMED text the exchange held
 * back with no data after it is answered now (extproc_xchg_tick()).
 * Returns true if something was queued. */
static bool stream_tick(struct xp_stream *s, uint64_t now)
{
	if (!s->x || s->finishing || s->finished || s->rejected)
		return false;
	struct xp_worker *w = s->c->w;
	size_t before = s->out.len;
	const char *why = NULL;
	int rc = extproc_xchg_tick(s->x, &w->ctx, now, &s->out, &why);
	if (rc < 0) {
		stream_finish(s, -rc, why);
		return true;
	}
	if (s->out.len == before)
		return false;
	stream_start_response(s);
	return true;
}

/* A message refused before it was read (too large, compressed, cut
 * short): the exchange counts it, so its record is still written. */
static void stream_rejected_message(struct xp_stream *s)
{
	if (s->x)
		extproc_xchg_rejected_message(s->x);
}

/* DATA payload of |s|: cut into gRPC messages. Bounded by the caps on
 * message size and on partial input per connection. */
static void stream_data(struct xp_stream *s, const uint8_t *data, size_t len)
{
	struct xp_conn *c = s->c;
	struct xp_worker *w = c->w;
	const uint64_t max_msg = w->cfg->max_message;
	while (len && !s->finishing && !s->rejected) {
		if (s->nprefix < 5) {
			size_t k = 5 - s->nprefix;
			if (k > len)
				k = len;
			memcpy(s->prefix + s->nprefix, data, k);
			s->nprefix += (uint8_t)k;
			data += k;
			len -= k;
			if (s->nprefix < 5)
				return;
			if (s->prefix[0] & 1) {
				/* PROTOCOL-HTTP2.md: a compressed message
				 * without a grpc-encoding we accepted */
				EXTPROC_INC(&w->ctr, msgs_compressed);
				stream_rejected_message(s);
				s->enc_bad = true; /* grpc-accept-encoding */
				stream_finish(s, EXTPROC_GRPC_UNIMPLEMENTED,
					      "compressed messages are not "
					      "supported; send with identity "
					      "encoding");
				return;
			}
			if (s->prefix[0] & 0xfe) {
				stream_rejected_message(s);
				stream_finish(s, EXTPROC_GRPC_INTERNAL,
					      "reserved flag bits set in a "
					      "gRPC message prefix");
				return;
			}
			s->msg_len = (uint32_t)s->prefix[1] << 24 |
				     (uint32_t)s->prefix[2] << 16 |
				     (uint32_t)s->prefix[3] << 8 | s->prefix[4];
			if (s->msg_len > max_msg) {
				EXTPROC_INC(&w->ctr, msgs_too_large);
				stream_rejected_message(s);
				stream_finish(s, EXTPROC_GRPC_RESOURCE_EXHAUSTED,
					      "message larger than "
					      "extproc.max_message");
				return;
			}
			if (s->msg_len == 0) {
				s->nprefix = 0;
				stream_message(s, (const uint8_t *)"", 0);
				continue;
			}
		}
		size_t need = s->msg_len - s->in.len;
		if (s->in.len == 0 && len >= need) {
			/* whole message in this chunk: no copy */
			s->nprefix = 0;
			stream_message(s, data, need);
			data += need;
			len -= need;
			continue;
		}
		size_t k = need < len ? need : len;
		if (!s->admitted && !s->waiting) {
			if (c->reserved + s->msg_len <= conn_input_cap(c))
				stream_admit(s);
			else
				s->waiting = true;
		}
		if (s->waiting && c->waiting + k > conn_input_cap(c)) {
			EXTPROC_INC(&w->ctr, msgs_over_conn_input);
			stream_rejected_message(s);
			stream_finish(s, EXTPROC_GRPC_RESOURCE_EXHAUSTED,
				      "too much partial input on this "
				      "connection");
			return;
		}
		if (!extproc_buf_put(&s->in, data, k)) {
			stream_finish(s, EXTPROC_GRPC_RESOURCE_EXHAUSTED,
				      "out of memory");
			return;
		}
		c->buffered += k;
		if (s->waiting) {
			c->waiting += k;
			s->wait_new += (uint32_t)k;
		}
		data += k;
		len -= k;
		if (s->in.len == s->msg_len) {
			s->nprefix = 0;
			size_t n = s->in.len;
			/* the bytes stay where they are until the message
			 * is handled; only the counts go */
			stream_input_done(s);
			stream_message(s, s->in.p, n);
			conn_admit(c);
		}
	}
}

/* The client half-closed its side (END_STREAM). */
static void stream_remote_closed(struct xp_stream *s)
{
	struct xp_worker *w = s->c->w;
	s->remote_closed = true;
	if (s->finishing || s->rejected || !s->headers_done)
		return;
	if (s->nprefix || s->in.len) {
		EXTPROC_INC(&w->ctr, msgs_truncated);
		stream_rejected_message(s);
		stream_finish(s, EXTPROC_GRPC_INTERNAL,
			      "stream ended inside a gRPC message");
		return;
	}
	if (s->kind == K_HEALTH && s->nmsgs == 0) {
		stream_finish(s, EXTPROC_GRPC_INTERNAL,
			      "Health/Check without a request message");
		return;
	}
	if (s->x) {
		const char *why = NULL;
		size_t before = s->out.len;
		int rc = extproc_xchg_end_of_input(s->x, &w->ctx, &s->out, &why);
		if (rc < 0) {
			stream_finish(s, -rc, why);
			return;
		}
		if (s->out.len > before)
			stream_start_response(s);
	}
	stream_finish(s, EXTPROC_GRPC_OK, NULL);
}

/* ---- nghttp2 callbacks ------------------------------------------------ */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f,
			    void *user)
{
	struct xp_conn *c = user;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct xp_stream *s = stream_new(c, f->hd.stream_id);
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, s);
	return 0;
}

static bool lit_eq(const uint8_t *v, size_t len, const char *lit)
{
	size_t l = strlen(lit);
	return len == l && !memcmp(v, lit, l);
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *user)
{
	(void)flags;
	(void)user;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers from the client: gRPC has none */
	struct xp_stream *s =
		nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (!s)
		return 0;
	/* RFC 9113 §6.5.2: entry size = name + value + 32 */
	s->hdr_bytes += (uint32_t)(nlen + vlen + 32);
	if (s->hdr_bytes > s->c->w->cfg->max_header_list) {
		s->hdr_too_big = true;
		return 0;
	}
	if (lit_eq(name, nlen, ":method")) {
		s->is_post = lit_eq(value, vlen, "POST");
	} else if (lit_eq(name, nlen, ":path")) {
		if (lit_eq(value, vlen, EXTPROC_PATH_PROCESS))
			s->kind = K_PROCESS;
		else if (lit_eq(value, vlen, EXTPROC_PATH_HEALTH_CHECK))
			s->kind = K_HEALTH;
		else if (lit_eq(value, vlen, EXTPROC_PATH_HEALTH_WATCH))
			s->kind = K_WATCH;
		else
			s->kind = K_UNKNOWN;
	} else if (lit_eq(name, nlen, "content-type")) {
		/* application/grpc, application/grpc+proto, ...;charset */
		s->ct_ok = vlen >= 16 &&
			   !strncasecmp((const char *)value, "application/grpc", 16) &&
			   (vlen == 16 || value[16] == '+' || value[16] == ';');
	} else if (lit_eq(name, nlen, "grpc-timeout")) {
		s->timeout_ns = extproc_grpc_timeout_ns(value, vlen);
	} else if (lit_eq(name, nlen, "grpc-encoding")) {
		s->enc_bad = !lit_eq(value, vlen, "identity");
	}
	return 0;
}

/* DATA of stream |id|. Flow control is ours (no automatic
 * WINDOW_UPDATE): what is not handed to a live stream is consumed at
 * once (nghttp2 consumes padding and DATA of closed streams itself); a
 * stream whose unsent replies are over the caps holds its bytes
 * unconsumed until they drain (data_read_cb(), conn_release()), so the
 * client runs out of window instead of the server out of memory. */
static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id,
			 const uint8_t *data, size_t len, void *user)
{
	(void)flags;
	struct xp_conn *c = user;
	struct xp_stream *s = nghttp2_session_get_stream_user_data(h2, id);
	if (!s || !s->headers_done) {
		nghttp2_session_consume(h2, id, len);
		return 0;
	}
	stream_touch(s);
	s->wait_new = 0;
	stream_data(s, data, len);
	stream_out_sync(s);
	if (!s->finishing && !s->rejected && !stream_out_ok(s))
		s->wait_new = 0; /* held whole below, waiting bytes too */
	if (s->wait_new && s->waiting && !s->finishing && !s->rejected) {
		/* stored while waiting for room: the connection window goes
		 * back at once, the stream's when the message is admitted or
		 * done. (Bytes here of a message that completed while
		 * waiting go the same way when the chunk began another
		 * waiting one: given back with that one, a delay, not a
		 * loss; otherwise they are consumed below as any handled
		 * DATA.) Over the reply caps nothing goes back: all is held. */
		nghttp2_session_consume_connection(h2, s->wait_new);
		s->unconsumed += s->wait_new;
		len -= s->wait_new;
	}
	s->wait_new = 0;
	if (s->finishing || s->rejected || stream_out_ok(s)) {
		/* input discarded or under the caps */
		nghttp2_session_consume(h2, id, len + s->held);
		s->held = 0;
		return 0;
	}
	if (!s->held)
		EXTPROC_INC(&c->w->ctr, streams_backpressure);
	s->held += (uint32_t)len;
	if (c->pending > c->w->conn_out_cap)
		c->held_conn = true;
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f,
			 void *user)
{
	(void)user;
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA &&
	    f->hd.type != NGHTTP2_RST_STREAM)
		return 0;
	struct xp_stream *s =
		nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (!s)
		return 0;
	if (f->hd.type == NGHTTP2_RST_STREAM) {
		/* nghttp2 closes the stream right after this callback; the
		 * close needs to know the reset was the client's, since a
		 * NO_ERROR reset and a normal close carry the same code */
		s->peer_rst = true;
		return 0;
	}
	stream_touch(s);
	if (f->hd.type == NGHTTP2_HEADERS &&
	    f->headers.cat == NGHTTP2_HCAT_REQUEST)
		stream_headers_done(s);
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		stream_remote_closed(s);
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f,
			 void *user)
{
	(void)user;
	/* Our side ended while the client's is still open (an error or a
	 * deadline): RFC 9113 §8.1 lets us tell it to stop sending. */
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		struct xp_stream *s =
			nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
		if (s && !s->remote_closed)
			nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE,
						  f->hd.stream_id,
						  NGHTTP2_NO_ERROR);
	}
	return 0;
}

/* Sends the final GOAWAY (RFC 9113 §6.8: it names the last stream that
 * will be processed; later ones are refused) with |code| and |debug|, and
 * with |close| closes the connection once the output is written. */
static void conn_goaway(struct xp_conn *c, uint32_t code, const char *debug,
			bool close)
{
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->h2),
			      code, (const uint8_t *)debug,
			      debug ? strlen(debug) : 0);
	c->goaway_sent = true;
	c->close_after_write = c->close_after_write || close;
}

static void premature_reset(struct xp_conn *c)
{
	struct xp_worker *w = c->w;
	uint64_t now = c->last_ns;
	double dt = (double)(now - c->reset_ns) / 1e9;
	c->reset_ns = now;
	c->reset_tokens += dt * RESET_REFILL;
	if (c->reset_tokens > RESET_BUDGET)
		c->reset_tokens = RESET_BUDGET;
	c->reset_tokens -= 1.0;
	if (c->reset_tokens < 0 && !c->goaway_sent) {
		EXTPROC_INC(&w->ctr, conns_flood);
		conn_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM, "stream reset flood",
			    true);
	}
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code,
			   void *user)
{
	struct xp_conn *c = user;
	struct xp_worker *w = c->w;
	struct xp_stream *s = nghttp2_session_get_stream_user_data(h2, id);
	if (!s)
		return 0;
	enum extproc_end end;
	/* Reset before it carried a message: the rapid-reset pattern,
	 * whether or not the client's HEADERS ended its side or the server
	 * already answered it (END_STREAM + RST, or an unknown method +
	 * RST, cost the server a stream all the same). Envoy's streams
	 * always carry a message first. Our own write-stall reset is not
	 * the client's. */
	bool empty = !s->nmsgs && !s->stall_rst;
	/* The client's end of a stream: Envoy's own gRPC client resets with
	 * NO_ERROR (its codec's code for a local reset), gRPC libraries
	 * (Envoy's google_grpc) with CANCEL. Our own write-stall reset
	 * (CANCEL) ends a stream the same way. */
	bool cancel = code == NGHTTP2_CANCEL ||
		      (s->peer_rst && code == NGHTTP2_NO_ERROR);
	if (s->finished && s->remote_closed && !s->peer_rst &&
	    code == NGHTTP2_NO_ERROR) {
		end = s->grpc_status ? EXTPROC_END_ERROR : EXTPROC_END_COMPLETE;
	} else if (cancel && !empty &&
		   (s->remote_closed || (s->x && extproc_xchg_done(s->x)) ||
		    s->finished || s->stall_rst)) {
		/* Envoy's normal end: half-close, then RST_STREAM */
		end = s->grpc_status > 0 ? EXTPROC_END_ERROR
					 : EXTPROC_END_COMPLETE;
		EXTPROC_INC(&w->ctr, streams_cancelled);
	} else if (cancel && s->nmsgs) {
		/* reset while open, its messages answered or not: counted,
		 * not an error */
		end = EXTPROC_END_CANCELLED;
		EXTPROC_INC(&w->ctr, streams_cancelled);
	} else if (code != NGHTTP2_NO_ERROR || s->peer_rst) {
		end = w->draining ? EXTPROC_END_SHUTDOWN : EXTPROC_END_RESET;
		EXTPROC_INC(&w->ctr, streams_reset);
		if (empty) {
			EXTPROC_INC(&w->ctr, streams_premature_reset);
			premature_reset(c);
		}
	} else {
		end = s->grpc_status > 0 ? EXTPROC_END_ERROR
					 : EXTPROC_END_COMPLETE;
	}
	if (s->grpc_status == EXTPROC_GRPC_DEADLINE_EXCEEDED || s->stall_rst)
		end = EXTPROC_END_TIMEOUT;
	if (s->x && w->cfg->records) {
		size_t n = extproc_xchg_record(s->x, &w->ctx, end, code,
					       s->grpc_status, st_wall_ns(),
					       &w->rec);
		if (n && w->ring) {
			if (export_ring_push(w->ring, w->rec.p, (uint32_t)n) == 0)
				EXTPROC_INC(&w->ctr, records);
			else
				EXTPROC_INC(&w->ctr, records_dropped);
		}
	}
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	stream_free(s);
	return 0;
}

static nghttp2_session_callbacks *make_callbacks(void)
{
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs))
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	return cbs;
}

static int conn_start_h2(struct xp_conn *c)
{
	struct xp_worker *w = c->w;
	if (nghttp2_session_server_new2(&c->h2, w->cbs, c, w->opt))
		return -ENOMEM;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, w->cfg->max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, w->cfg->max_header_list },
	};
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv,
				    ST_ARRAY_SIZE(iv)))
		return -ENOMEM;
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
					      CONN_WINDOW);
	if (w->draining)
		nghttp2_submit_shutdown_notice(c->h2);
	return 0;
}

/* ---- connection I/O --------------------------------------------------- */

enum { IO_AGAIN = -1, IO_ERR = -2 };

static ssize_t conn_recv(struct xp_conn *c, uint8_t *buf, size_t len)
{
	if (!c->ssl) {
		ssize_t n = read(c->fd, buf, len);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EINTR ? IO_AGAIN : IO_ERR;
	}
	ERR_clear_error();
	int n = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ: return IO_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		if (c->wr)
			event_add(c->wr, NULL);
		return IO_AGAIN;
	case SSL_ERROR_ZERO_RETURN: return 0;
	default: return IO_ERR;
	}
}

static ssize_t conn_send(struct xp_conn *c, const uint8_t *buf, size_t len)
{
	if (!c->ssl) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EINTR ? IO_AGAIN : IO_ERR;
	}
	ERR_clear_error();
	int n = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: return IO_AGAIN;
	default: return IO_ERR;
	}
}

/* Pulls frames out of nghttp2 and writes what the socket takes. Returns
 * false if the connection was closed (|c| is freed then). */
static bool conn_flush(struct xp_conn *c)
{
	/* Our SETTINGS wait for the first bytes of the client preface, so a
	 * client that is not HTTP/2 gets a plain answer (RFC 9113 §3.4 lets
	 * the server preface follow the client's). */
	if (c->state == C_H2 || (c->state == C_SNIFF && c->h2 && c->nsniff)) {
		extproc_buf_sent(&c->out, &c->out_off);
		while (c->out.len - c->out_off < OUT_HIGH) {
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(c->h2, &d);
			if (n < 0) {
				EXTPROC_INC(&c->w->ctr, conns_protocol_error);
				c->close_after_write = true;
				break;
			}
			if (n == 0)
				break;
			if (!extproc_buf_put(&c->out, d, (size_t)n)) {
				conn_close(c);
				return false;
			}
		}
	}
	if (c->detached) {
		if (c->out.len > (4u << 20))
			c->out.len = c->out_off = 0;
		return true;
	}
	while (c->out_off < c->out.len) {
		ssize_t n = conn_send(c, c->out.p + c->out_off,
				      c->out.len - c->out_off);
		if (n == IO_AGAIN) {
			event_add(c->wr, NULL);
			return true;
		}
		if (n <= 0) {
			conn_close(c);
			return false;
		}
		c->out_off += (size_t)n;
		c->sent += (uint64_t)n;
	}
	c->out.len = c->out_off = 0;
	if (c->state == C_H2 && nghttp2_session_want_write(c->h2)) {
		/* more than OUT_HIGH was pending: continue when writable */
		event_add(c->wr, NULL);
		return true;
	}
	if (c->close_after_write ||
	    (c->state == C_H2 && !nghttp2_session_want_read(c->h2) &&
	     !nghttp2_session_want_write(c->h2))) {
		conn_close(c);
		return false;
	}
	event_del(c->wr);
	return true;
}

static bool looks_http1(const uint8_t *b, size_t n)
{
	static const char *const methods[] = { "GET ", "POST ", "PUT ",
					       "HEAD ", "DELETE ", "OPTIONS ",
					       "PATCH ", "CONNECT ", "TRACE " };
	for (size_t i = 0; i < ST_ARRAY_SIZE(methods); i++) {
		size_t l = strlen(methods[i]);
		if (!memcmp(b, methods[i], n < l ? n : l))
			return true;
	}
	return false;
}

/* Handles bytes read from the socket. Returns false once the connection
 * is closing (the rest is ignored). */
static bool conn_input(struct xp_conn *c, const uint8_t *data, size_t len)
{
	struct xp_worker *w = c->w;
	if (c->state == C_SNIFF) {
		/* RFC 9113 §3.4: the client preface comes first */
		size_t k = PREFACE_LEN - c->nsniff;
		if (k > len)
			k = len;
		memcpy(c->sniff + c->nsniff, data, k);
		c->nsniff += k;
		if (memcmp(c->sniff, PREFACE, c->nsniff) != 0) {
			if (looks_http1(c->sniff, c->nsniff)) {
				static const char r505[] =
					"HTTP/1.1 505 HTTP Version Not Supported\r\n"
					"Content-Type: text/plain\r\n"
					"Content-Length: 47\r\n"
					"Connection: close\r\n\r\n"
					"sealtap extproc speaks gRPC over HTTP/2 only.\r\n";
				EXTPROC_INC(&w->ctr, conns_http1);
				c->out.len = c->out_off = 0;
				extproc_buf_put(&c->out, r505, sizeof(r505) - 1);
			} else {
				/* GOAWAY(PROTOCOL_ERROR), last stream 0 */
				static const uint8_t ga[] = {
					0, 0, 8, 7, 0, 0, 0, 0, 0,
					0, 0, 0, 0, 0, 0, 0, 1,
				};
				EXTPROC_INC(&w->ctr, conns_bad_preface);
				c->out.len = c->out_off = 0;
				extproc_buf_put(&c->out, ga, sizeof(ga));
			}
			c->state = C_CLOSING;
			c->close_after_write = true;
			return false;
		}
		if (c->nsniff == PREFACE_LEN)
			c->state = C_H2;
	}
	if (!c->h2)
		return false;
	ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);
	if (rv < 0) {
		EXTPROC_INC(&w->ctr, conns_protocol_error);
		nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR);
		c->close_after_write = true;
		return false;
	}
	return true;
}

static bool tls_handshake(struct xp_conn *c)
{
	struct xp_worker *w = c->w;
	ERR_clear_error();
	int rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		EXTPROC_INC(&w->ctr, conns_tls);
		c->state = C_SNIFF;
		if (conn_start_h2(c)) {
			conn_close(c);
			return false;
		}
		return true;
	}
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ: return false;
	case SSL_ERROR_WANT_WRITE:
		event_add(c->wr, NULL);
		return false;
	default:
		EXTPROC_INC(&w->ctr, conns_tls_failed);
		log_kv(LOG_LEVEL_DEBUG, "extproc: TLS handshake failed", "peer",
		       c->peer, NULL);
		conn_close(c);
		return false;
	}
}

static void conn_readable(struct xp_conn *c)
{
	struct xp_worker *w = c->w;
	c->last_ns = st_mono_ns();
	if (c->state == C_TLS && !tls_handshake(c))
		return;
	for (int i = 0; i < READS_PER_EVENT; i++) {
		ssize_t n = conn_recv(c, w->rbuf, RBUF_SIZE);
		if (n == IO_AGAIN)
			break;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		if (c->state == C_CLOSING)
			continue; /* discard while the last bytes go out */
		if (!conn_input(c, w->rbuf, (size_t)n))
			break;
		/* A short read drained the socket: skip the read that would
		 * only say EAGAIN (the event is level-triggered, so bytes
		 * arriving now wake the loop again). One syscall less per
		 * request at low depth. */
		if (!c->ssl && (size_t)n < RBUF_SIZE)
			break;
		if (i == READS_PER_EVENT - 1 && c->ssl && SSL_pending(c->ssl))
			event_active(c->rd, EV_READ, 0);
	}
	conn_flush(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_readable(arg);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct xp_conn *c = arg;
	if (c->state == C_TLS) {
		conn_readable(c);
		return;
	}
	c->last_ns = st_mono_ns();
	if (!conn_flush(c))
		return;
	/* TLS reads that wanted to write may have data waiting */
	if (c->ssl && SSL_pending(c->ssl))
		event_active(c->rd, EV_READ, 0);
}

static void conn_end_streams(struct xp_conn *c, enum extproc_end end);

/* Closes and frees |c|. Streams still open are recorded as ended by the
 * connection (nghttp2_session_del() frees them without calling
 * on_stream_close). */
static void conn_close(struct xp_conn *c)
{
	struct xp_worker *w = c->w;
	conn_end_streams(c, w->draining ? EXTPROC_END_SHUTDOWN
					: EXTPROC_END_CONN_CLOSED);
	if (c->h2) {
		nghttp2_session_del(c->h2);
		c->h2 = NULL;
	}
	while (c->shead) /* streams nghttp2 never closed (refused) */
		stream_free(c->shead);
	if (c->rd)
		event_free(c->rd);
	if (c->wr)
		event_free(c->wr);
	if (c->ssl) {
		/* close_notify, best effort (the socket may not take it): a
		 * clean end of the TLS stream rather than a truncation */
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (!c->detached) {
		if (c->prev)
			c->prev->next = c->next;
		else
			w->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		w->nconns--;
		/* the last connection of a draining thread: done */
		if (w->draining && !w->conns)
			worker_drained(w);
	}
	EXTPROC_INC(&w->ctr, conns_closed);
	extproc_buf_free(&c->out);
	free(c);
}

static void conn_end_streams(struct xp_conn *c, enum extproc_end end)
{
	struct xp_worker *w = c->w;
	for (struct xp_stream *s = c->shead; s; s = s->next) {
		if (!s->x || !w->cfg->records)
			continue;
		size_t n = extproc_xchg_record(s->x, &w->ctx, end, 0,
					       s->grpc_status, st_wall_ns(),
					       &w->rec);
		if (n && w->ring) {
			if (export_ring_push(w->ring, w->rec.p, (uint32_t)n) == 0)
				EXTPROC_INC(&w->ctr, records);
			else
				EXTPROC_INC(&w->ctr, records_dropped);
		}
		extproc_xchg_free(s->x);
		s->x = NULL;
	}
}

static struct xp_conn *conn_new(struct xp_worker *w, int fd,
				const struct sockaddr *sa)
{
	struct xp_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->w = w;
	c->fd = fd;
	c->seq = ++w->conn_seq;
	c->created_ns = c->last_ns = c->reset_ns = st_mono_ns();
	c->stall_ns = c->created_ns;
	c->reset_tokens = RESET_BUDGET;
	if (sa) {
		char host[INET6_ADDRSTRLEN] = "?";
		unsigned port = 0;
		if (sa->sa_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)sa;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
			snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
		} else if (sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)sa;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
			snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, port);
		}
	}
	return c;
}

/* ---- accepting -------------------------------------------------------- */

/* accept4() failed for want of a descriptor or memory: the connection
 * stays in the backlog and the level-triggered listener would fire again
 * at once, forever, a core spinning while the limit lasts. The thread's
 * listeners go off for ACCEPT_PAUSE_MS (resume_cb()). */
static void accept_failed(struct xp_worker *w, int err)
{
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return; /* EAGAIN, or a connection that went away */
	if (w->accept_paused)
		return;
	EXTPROC_INC(&w->ctr, accept_paused);
	w->accept_paused = true;
	for (unsigned i = 0; i < w->nlst; i++)
		if (w->lst[i].fd >= 0)
			event_del(w->lst[i].ev);
	if (w->health.ev && w->health.fd >= 0)
		event_del(w->health.ev);
	struct timeval tv = { .tv_usec = ACCEPT_PAUSE_MS * 1000 };
	evtimer_add(w->resume_ev, &tv);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct xp_worker *w = arg;
	w->accept_paused = false;
	for (unsigned i = 0; i < w->nlst; i++)
		if (w->lst[i].fd >= 0) /* closed when draining */
			event_add(w->lst[i].ev, NULL);
	if (w->health.ev && w->health.fd >= 0)
		event_add(w->health.ev, NULL);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	struct xp_listener *l = arg;
	struct xp_worker *w = l->w;
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			accept_failed(w, errno);
			return;
		}
		if (w->max_conns && w->nconns >= w->max_conns) {
			/* over the cap: closed at once, the backlog drained
			 * (the client sees its connection end, not a hang) */
			EXTPROC_INC(&w->ctr, conns_refused_limit);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct xp_conn *c = conn_new(w, fd, (struct sockaddr *)&ss);
		if (!c) {
			close(fd);
			continue;
		}
		EXTPROC_INC(&w->ctr, conns_accepted);
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		w->nconns++;
		c->rd = event_new(w->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
		c->wr = event_new(w->base, fd, EV_WRITE, conn_write_cb, c);
		if (!c->rd || !c->wr) {
			conn_close(c);
			continue;
		}
		if (w->ssl_ctx) {
			c->ssl = SSL_new(w->ssl_ctx);
			if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
				conn_close(c);
				continue;
			}
			SSL_set_accept_state(c->ssl);
			c->state = C_TLS;
		} else {
			c->state = C_SNIFF;
			if (conn_start_h2(c)) {
				conn_close(c);
				continue;
			}
		}
		event_add(c->rd, NULL);
	}
}

/* ---- HTTP/1.1 health port --------------------------------------------- */

struct hconn {
	struct hconn *prev, *next; /* the worker's list */
	struct xp_worker *w;
	int fd;
	struct event *ev;
	uint64_t deadline_ns; /* HEALTH_TIMEOUT_S after accept, whatever
				 trickles in */
	char buf[HEALTH_REQ_MAX];
	size_t len;
};

static void hconn_free(struct hconn *h)
{
	struct xp_worker *w = h->w;
	if (h->prev)
		h->prev->next = h->next;
	else
		w->hconns = h->next;
	if (h->next)
		h->next->prev = h->prev;
	w->nhconns--;
	event_free(h->ev);
	close(h->fd);
	free(h);
}

static void hconn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *h = arg;
	/* the event's timeout restarts with every read: a client sending a
	 * byte now and then is cut off by the deadline from accept */
	if ((what & EV_TIMEOUT) || st_mono_ns() > h->deadline_ns) {
		hconn_free(h);
		return;
	}
	ssize_t n = read(fd, h->buf + h->len, sizeof(h->buf) - 1 - h->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		hconn_free(h);
		return;
	}
	h->len += (size_t)n;
	h->buf[h->len] = '\0';
	if (!strstr(h->buf, "\r\n\r\n") && !strstr(h->buf, "\n\n") &&
	    h->len < sizeof(h->buf) - 1)
		return;
	EXTPROC_INC(&h->w->ctr, health_http);
	const char *resp;
	bool head = !strncmp(h->buf, "HEAD / ", 7);
	if (!strncmp(h->buf, "GET / ", 6) || head)
		resp = h->w->draining
			       ? "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: text/plain\r\nContent-Length: 9\r\n"
				 "Connection: close\r\n\r\ndraining\n"
			       : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				 "Content-Length: 3\r\nConnection: close\r\n\r\nok\n";
	else
		resp = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
		       "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
	size_t rl = strlen(resp);
	if (head) /* no body */
		rl = (size_t)(strstr(resp, "\r\n\r\n") + 4 - resp);
	ssize_t wn = send(fd, resp, rl, MSG_NOSIGNAL);
	(void)wn; /* a short reply fits the socket buffer */
	hconn_free(h);
}

static void health_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	struct xp_worker *w = arg;
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			accept_failed(w, errno);
			return;
		}
		struct hconn *h = w->nhconns < HEALTH_CONNS_MAX
					  ? calloc(1, sizeof(*h))
					  : NULL;
		if (!h) { /* over the cap: a probe's connect fails, it retries */
			EXTPROC_INC(&w->ctr, health_http_refused);
			close(fd);
			continue;
		}
		h->w = w;
		h->fd = fd;
		h->deadline_ns = st_mono_ns() + HEALTH_TIMEOUT_S * ST_NS_PER_SEC;
		h->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, hconn_cb, h);
		if (!h->ev) {
			close(fd);
			free(h);
			continue;
		}
		h->next = w->hconns;
		if (w->hconns)
			w->hconns->prev = h;
		w->hconns = h;
		w->nhconns++;
		struct timeval tv = { .tv_sec = HEALTH_TIMEOUT_S };
		event_add(h->ev, &tv);
	}
}

/* ---- worker threads --------------------------------------------------- */

/* Write stall of a connection: output waits for the client -- bytes in
 * the kernel's send queue (SIOCOUTQ), bytes the socket does not take, or
 * replies while the client's connection window is closed -- and the
 * client acknowledged nothing for stream_timeout. Counts and resets
 * it, returning true: SO_LINGER 0 makes the close an RST that drops what
 * the kernel still holds for a peer that does not read (a plain close
 * would leave it in FIN-WAIT-1 behind that data, retried by zero-window
 * probes for minutes). Progress is what the peer acknowledged, not bytes
 * read, so a client that keeps sending but never reads is cut off too.
 * One ioctl per connection per tick: the stall is seen within
 * stream_timeout + 1 s. */
static bool conn_write_stalled(struct xp_conn *c, uint64_t now)
{
	int outq = 0;
	if (ioctl(c->fd, SIOCOUTQ, &outq) != 0 || outq < 0)
		outq = 0;
	bool owes = outq > 0 || c->out_off < c->out.len ||
		    (c->pending && c->h2 &&
		     nghttp2_session_get_remote_window_size(c->h2) <= 0);
	/* what the peer took: grows as it reads, whether the bytes still
	 * wait here or in the kernel (with TLS, sent counts plaintext and
	 * outq records: a change still means progress) */
	uint64_t acked = c->sent - (uint64_t)outq;
	if (!owes || acked != c->stall_acked) {
		c->stall_acked = acked;
		c->stall_ns = now;
		return false;
	}
	if (now - c->stall_ns <= c->w->cfg->stream_timeout_ns)
		return false;
	EXTPROC_INC(&c->w->ctr, conns_write_stalled);
	struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_close,
		   sizeof(abort_close));
	conn_close(c);
	return true;
}

/* Write stall of single streams: a stream that owes output (replies or
 * its trailers) and none of it was pulled by nghttp2 for stream_timeout
 * (the client gives it no window) is reset with CANCEL, which frees it
 * and what it holds once the RST_STREAM is sent. True if any was. */
static bool streams_write_stalled(struct xp_conn *c, uint64_t now)
{
	bool any = false;
	for (struct xp_stream *s = c->shead; s; s = s->next) {
		bool owes = s->out.len > s->out_off ||
			    (s->finishing && !s->finished);
		if (!owes || s->sent != s->stall_sent) {
			s->stall_sent = s->sent;
			s->stall_ns = now;
			continue;
		}
		if (s->stall_rst ||
		    now - s->stall_ns <= c->w->cfg->stream_timeout_ns)
			continue;
		EXTPROC_INC(&c->w->ctr, streams_write_stalled);
		s->stall_rst = true;
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_CANCEL);
		any = true;
	}
	return any;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct xp_worker *w = arg;
	const struct extproc_cfg *cfg = w->cfg;
	uint64_t now = st_mono_ns();
	struct xp_conn *next;
	for (struct xp_conn *c = w->conns; c; c = next) {
		next = c->next;
		if (c->state != C_H2 && c->state != C_CLOSING &&
		    now - c->created_ns > HANDSHAKE_TIMEOUT_NS) {
			EXTPROC_INC(&w->ctr, conns_idle_timeout);
			conn_close(c);
			continue;
		}
		if ((c->state == C_H2 || c->state == C_CLOSING) &&
		    conn_write_stalled(c, now))
			continue;
		if (c->state != C_H2)
			continue;
		if (!c->nstreams && now - c->last_ns > cfg->idle_timeout_ns &&
		    !c->goaway_sent) {
			EXTPROC_INC(&w->ctr, conns_idle_timeout);
			conn_goaway(c, NGHTTP2_NO_ERROR, NULL, true);
			conn_flush(c);
			continue;
		}
		bool any = false;
		for (struct xp_stream *s = c->shead, *nx; s; s = nx) {
			nx = s->next;
			any |= stream_tick(s, now);
		}
		for (struct xp_stream *s = c->shead; s; s = s->next) {
			if (now - s->last_ns <= cfg->stream_timeout_ns)
				break;
			if (s->finishing || s->finished)
				continue;
			EXTPROC_INC(&w->ctr, streams_idle_timeout);
			stream_finish(s, EXTPROC_GRPC_CANCELLED,
				      "stream idle timeout");
			any = true;
		}
		if (streams_write_stalled(c, now))
			any = true;
		if (any)
			conn_flush(c);
	}
	if (w->draining) {
		if (now > w->drain_deadline) {
			while (w->conns) {
				EXTPROC_INC(&w->ctr, conns_drained);
				conn_close(w->conns);
			}
		}
		if (!w->conns)
			worker_drained(w);
	}
}

static void goaway_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct xp_worker *w = arg;
	struct xp_conn *next;
	for (struct xp_conn *c = w->conns; c; c = next) {
		next = c->next;
		if (c->state == C_CLOSING || c->goaway_sent)
			continue;
		if (c->state != C_H2) {
			/* silent since the drain began: nothing to lose */
			conn_close(c);
			continue;
		}
		conn_goaway(c, NGHTTP2_NO_ERROR, NULL, false);
		conn_flush(c);
	}
	if (!w->conns)
		worker_drained(w);
}

/* The stop was asked for a second time: the operator does not want to
 * wait for the drain; what is open ends as at the drain's deadline. */
static void drain_forced(struct xp_worker *w)
{
	if (!w->srv || !atomic_load(&w->srv->force))
		return;
	while (w->conns) {
		EXTPROC_INC(&w->ctr, conns_drained);
		conn_close(w->conns);
	}
	worker_drained(w);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct xp_worker *w = arg;
	if (w->draining) {
		drain_forced(w);
		return;
	}
	w->draining = true;
	w->drain_deadline = st_mono_ns() + w->cfg->shutdown_timeout_ns;
	for (unsigned i = 0; i < w->nlst; i++) {
		/* Connections the kernel completed but we had not accepted
		 * would be reset by the close, their requests lost unseen:
		 * taken first, they drain like the others. */
		for (unsigned k = 0; k < 16; k++) {
			unsigned before = w->nconns;
			accept_cb(w->lst[i].fd, EV_READ, &w->lst[i]);
			if (w->nconns == before)
				break;
		}
		event_del(w->lst[i].ev);
		close(w->lst[i].fd);
		w->lst[i].fd = -1;
	}
	/* the health port stays open while the connections drain: probes
	 * get 503 and take this instance out of rotation */
	struct xp_conn *next;
	for (struct xp_conn *c = w->conns; c; c = next) {
		next = c->next;
		/* Not HTTP/2 yet (TLS handshake, preface not read): such a
		 * client may have sent its request already. It has until the
		 * final GOAWAY (goaway_cb) to start its session, which then
		 * begins with the shutdown notice. */
		if (c->state != C_H2)
			continue;
		/* two-step GOAWAY: a notice now, the last stream id after
		 * GOAWAY_DELAY_MS, so streams in flight are not refused */
		nghttp2_submit_shutdown_notice(c->h2);
		c->notice_sent = true;
		conn_flush(c);
	}
	struct timeval tv = { .tv_usec = GOAWAY_DELAY_MS * 1000 };
	evtimer_add(w->goaway_ev, &tv);
	/* both stops may have come before this thread ran the first (the
	 * two activations of its event are one then) */
	drain_forced(w);
}

static void *worker_main(void *arg)
{
	struct xp_worker *w = arg;
	/* Header and body values pass through this thread's stack. */
	if (mem_nodump_stack() != 0)
		log_kv(LOG_LEVEL_WARN, "extproc thread stack stays in core "
		       "dumps (madvise refused)", NULL);
	extproc_policy_online(w->pd, true);
	/* One pass of the loop at a time, so the thread passes a key
	 * quiescent point after every batch of events; the 1 s tick makes a
	 * pass even when the thread is idle, so it never holds up the
	 * reclamation of retired key snapshots for long. */
	while (event_base_loop(w->base, EVLOOP_ONCE) == 0 &&
	       !event_base_got_exit(w->base)) {
		extproc_policy_quiescent(w->pd);
		/* Request bytes went through the vector registers (memcpy,
		 * the detectors); the loop sleeps with none of them (mem.h),
		 * as the tap's workers do after a burst. */
		mem_scrub_registers();
	}
	/* leftovers after loopexit (drain deadline) */
	while (w->conns)
		conn_close(w->conns);
	extproc_policy_online(w->pd, false);
	return NULL;
}

/* Everything a worker owns except sockets; shared by the server and the
 * detached test session. */
static int worker_init(struct xp_worker *w, const struct extproc_cfg *cfg,
		       unsigned id, uint64_t nonce)
{
	w->cfg = cfg;
	w->id = id;
	w->nonce = nonce;
	w->base = event_base_new();
	/* Raw request bytes, plaintext: not dumped (mem.h). */
	w->rbuf = mem_nodump_alloc(RBUF_SIZE);
	w->cbs = make_callbacks();
	w->ctx.arena = extproc_arena_new(256u << 10);
	w->pd = extproc_policy_new(cfg->policy, cfg->keys,
				   cfg->key_reader_base + id, &w->ctr.seal);
	if (!w->base || !w->rbuf || !w->cbs || !w->ctx.arena || !w->pd)
		return -ENOMEM;
	if (nghttp2_option_new(&w->opt))
		return -ENOMEM;
	/* RFC 9113 §6.5.2 is advisory for the receiver; nghttp2 keeps its
	 * own protections (SETTINGS/PING flood limits) at their defaults. */
	nghttp2_option_set_max_send_header_block_length(w->opt, 64u << 10);
	/* nghttp2's own RST_STREAM limit (1,000, then 33 per second, since
	 * the rapid-reset fix) tears the connection down with
	 * INTERNAL_ERROR. Envoy ends every ext_proc stream with a half-close
	 * followed by RST_STREAM(CANCEL), so one busy Envoy connection
	 * passes that limit within seconds. The server limits resets itself
	 * (premature_reset(): only resets of streams that never carried a
	 * message count), so nghttp2's limit is lifted: 2^32 per second
	 * cannot overflow its 64-bit token arithmetic. */
	nghttp2_option_set_stream_reset_rate_limit(w->opt, 1ull << 32,
						   1ull << 32);
	/* Flow control is the cap on unsent replies: DATA is consumed
	 * when handled, or held while the stream's replies are over
	 * out_cap (on_data_chunk()). */
	nghttp2_option_set_no_auto_window_update(w->opt, 1);
	w->out_cap = STREAM_OUT_MSGS * cfg->max_message + STREAM_OUT_SLACK;
	w->conn_out_cap = CONN_OUT_STREAMS * w->out_cap;
	w->ctx.decider = extproc_policy_decider(w->pd);
	w->ctx.ctr = &w->ctr;
	w->ctx.request_id_header = cfg->request_id_header &&
					   cfg->request_id_header[0]
				   ? cfg->request_id_header
				   : NULL;
	w->ctx.max_record = 1u << 20;
	w->ctx.records = cfg->records;
	w->tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
	w->goaway_ev = evtimer_new(w->base, goaway_cb, w);
	w->shutdown_ev = event_new(w->base, -1, 0, shutdown_cb, w);
	w->resume_ev = evtimer_new(w->base, resume_cb, w);
	w->drain_ev = evtimer_new(w->base, drain_cb, w);
	if (!w->tick_ev || !w->goaway_ev || !w->shutdown_ev || !w->resume_ev ||
	    !w->drain_ev)
		return -ENOMEM;
	return 0;
}

static void worker_fini(struct xp_worker *w)
{
	while (w->conns)
		conn_close(w->conns);
	for (unsigned i = 0; i < w->nlst; i++) {
		if (w->lst[i].ev)
			event_free(w->lst[i].ev);
		if (w->lst[i].fd >= 0)
			close(w->lst[i].fd);
	}
	while (w->hconns)
		hconn_free(w->hconns);
	if (w->health.ev)
		event_free(w->health.ev);
	if (w->health.fd >= 0)
		close(w->health.fd);
	if (w->resume_ev)
		event_free(w->resume_ev);
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	if (w->goaway_ev)
		event_free(w->goaway_ev);
	if (w->shutdown_ev)
		event_free(w->shutdown_ev);
	if (w->base)
		event_base_free(w->base);
	if (w->cbs)
		nghttp2_session_callbacks_del(w->cbs);
	if (w->opt)
		nghttp2_option_del(w->opt);
	extproc_arena_free(w->ctx.arena);
	extproc_buf_free(&w->ctx.scratch);
	extproc_buf_free(&w->rec);
	extproc_policy_free(w->pd);
	mem_nodump_free(w->rbuf, RBUF_SIZE);
}

/* ---- listeners -------------------------------------------------------- */

/* Splits "host:port" / "[v6]:port" / ":port". */
static int split_addr(const char *s, char *host, size_t hl, char *port,
		      size_t pl)
{
	const char *colon;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		snprintf(host, hl, "%.*s", (int)(end - s - 1), s + 1);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		snprintf(host, hl, "%.*s", (int)(colon - s), s);
	}
	snprintf(port, pl, "%s", colon + 1);
	if (!port[0])
		return -EINVAL;
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	if (atoi(port) > 65535)
		return -EINVAL;
	return 0;
}

/* Binds |addr| (port |port_override| if non-zero) with SO_REUSEPORT.
 * Returns the fd and the bound port in |bound|, or -errno. */
/* getaddrinfo() for a listening socket on |host| (empty: any) and
 * |port|; the caller frees *|res|. */
static int passive_addr(const char *host, const char *port,
			struct addrinfo **res)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	return getaddrinfo(host[0] ? host : NULL, port, &hints, res);
}

/* Whether a socket (of any process) already listens on |ai|'s address. */
static bool port_taken(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false; /* the real bind will say what is wrong */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bool taken = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
		     errno == EADDRINUSE;
	close(fd);
	return taken;
}

/* SO_REUSEPORT lets a second process of the same user bind a port too,
 * and the kernel would then split the connections between the two: so,
 * before the server binds anything, each listen address with a port is
 * tried without it (SO_REUSEADDR: TIME_WAIT is no obstacle). All first,
 * then the binds, so the server's own 0.0.0.0:P cannot fail the probe of
 * its dual-stack [::]:P, and no address goes unprobed. Returns 0 or
 * -EADDRINUSE with |err| set; an address that does not parse or resolve
 * is left to the bind to report. */
static int probe_addr(const char *addr, char *err, size_t errlen)
{
	char host[256], port[16];
	if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0 ||
	    strcmp(port, "0") == 0)
		return 0;
	struct addrinfo *res;
	if (passive_addr(host, port, &res))
		return 0;
	bool taken = port_taken(res);
	freeaddrinfo(res);
	if (!taken)
		return 0;
	snprintf(err, errlen, "cannot listen on %s: %s; is another process "
		 "using the port?", addr, strerror(EADDRINUSE));
	return -EADDRINUSE;
}

static int bind_one(const char *addr, unsigned port_override, bool reuseport,
		    unsigned *bound, char *err, size_t errlen)
{
	char host[256], port[16];
	if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "listen address \"%s\" is not host:port "
			 "(use 0.0.0.0:9000, [::]:9000 or 127.0.0.1:0)", addr);
		return -EINVAL;
	}
	if (port_override)
		snprintf(port, sizeof(port), "%u", port_override);
	struct addrinfo *res;
	int rc = passive_addr(host, port, &res);
	if (rc) {
		snprintf(err, errlen, "listen address \"%s\": %s", addr,
			 gai_strerror(rc));
		return -EINVAL;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(res);
		snprintf(err, errlen, "socket: %s", strerror(-rc));
		return rc;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		rc = -errno;
		freeaddrinfo(res);
		close(fd);
		snprintf(err, errlen, "cannot listen on %s: %s; is another "
			 "process using the port?", addr, strerror(-rc));
		return rc;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*bound = ss.ss_family == AF_INET6
			 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void fmt_bound(const char *addr, unsigned port, char *out, size_t len)
{
	char host[256], p[16];
	if (split_addr(addr, host, sizeof(host), p, sizeof(p)) < 0)
		host[0] = '\0';
	if (strchr(host, ':'))
		snprintf(out, len, "[%s]:%u", host, port);
	else
		snprintf(out, len, "%s:%u", host[0] ? host : "0.0.0.0", port);
}

/* ---- TLS -------------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	static const unsigned char h2[] = "\x02h2";
	unsigned char *o;
	/* RFC 7301 §3.2: no protocol in common is a fatal alert */
	if (SSL_select_next_proto(&o, outlen, h2, sizeof(h2) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static void ssl_err(char *err, size_t errlen, const char *what,
		    const char *path)
{
	char e[256] = "";
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, e, sizeof(e));
	snprintf(err, errlen, "%s %s: %s", what, path, e[0] ? e : "failed");
	ERR_clear_error();
}

#define TLS_KEY_FILE_MAX (1u << 20)

/* Reads the private key file |path| into secret memory (not dumped, wiped
 * when freed) with plain read(2), so the PEM text never sits in a stdio
 * buffer on the ordinary heap as SSL_CTX_use_PrivateKey_file() would leave
 * it. Returns the bytes (free with mem_secret_free after wiping) or NULL
 * with |err|. */
static uint8_t *read_key_file(const char *path, size_t *len, char *err,
			      size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "extproc.tls_key: cannot open %s: %s",
			 path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > TLS_KEY_FILE_MAX) {
		snprintf(err, errlen, "extproc.tls_key: %s: %lld bytes is not "
			 "a PEM private key (empty or over 1 MiB)", path,
			 (long long)st.st_size);
		close(fd);
		return NULL;
	}
	uint8_t *buf = mem_secret_alloc((size_t)st.st_size);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != (size_t)st.st_size) {
		snprintf(err, errlen, "extproc.tls_key: cannot read %s", path);
		if (buf) {
			OPENSSL_cleanse(buf, (size_t)st.st_size);
			mem_secret_free(buf);
		}
		return NULL;
	}
	*len = got;
	return buf;
}

/* SSL_CTX_use_PrivateKey_file() without the stdio copy: the key is parsed
 * from secret memory (OpenSSL's own allocations are secret memory too). */
static int load_private_key(SSL_CTX *ctx, const char *path, char *err,
			    size_t errlen)
{
	size_t len;
	uint8_t *pem = read_key_file(path, &len, err, errlen);
	if (!pem)
		return -1;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
	EVP_PKEY_free(k);
	BIO_free(b);
	OPENSSL_cleanse(pem, len);
	mem_secret_free(pem);
	if (!ok) {
		ssl_err(err, errlen, "extproc.tls_key: cannot load", path);
		return -1;
	}
	return 0;
}

static SSL_CTX *make_ssl_ctx(const struct extproc_cfg *cfg, char *err,
			     size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	/* RFC 9113 §9.2: TLS 1.2 or later, no renegotiation, no
	 * compression */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* RFC 9113 §9.2.2: with TLS 1.2 only ephemeral key exchange and
	 * AEAD ciphers (the rest are on its block list; DHE would need
	 * parameters, ECDHE does not); TLS 1.3's suites all qualify and are
	 * set apart */
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
		ssl_err(err, errlen, "extproc TLS:",
			"cannot set the TLS 1.2 cipher list");
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		ssl_err(err, errlen, "extproc.tls_cert: cannot load", cfg->tls_cert);
		goto fail;
	}
	if (load_private_key(ctx, cfg->tls_key, err, errlen) != 0)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, errlen, "extproc.tls_key: does not match the "
			"certificate", cfg->tls_key);
		goto fail;
	}
	if (cfg->tls_client_ca && cfg->tls_client_ca[0]) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
			ssl_err(err, errlen, "extproc.tls_client_ca: cannot load",
				cfg->tls_client_ca);
			goto fail;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_client_ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
					       SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   NULL);
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- the server ------------------------------------------------------- */

int extproc_server_new(const struct extproc_cfg *cfg,
		       struct extproc_server **out, char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	*out = NULL;
	struct extproc_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->cfg = cfg;
	s->health_fd = -1;
	s->nworkers = cfg->threads ? cfg->threads : 1;
	if (getrandom(&s->nonce, sizeof(s->nonce), 0) != sizeof(s->nonce))
		s->nonce = st_wall_ns();
	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	s->rings = calloc(s->nworkers, sizeof(*s->rings));
	/* every fd -1 first: a failure below frees all workers */
	for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
		for (unsigned j = 0; j < EXTPROC_MAX_LISTEN; j++)
			s->workers[i].lst[j].fd = -1;
		s->workers[i].health.fd = -1;
	}
	int rc = -ENOMEM;
	if (!s->workers || !s->rings) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (cfg->tls_cert && cfg->tls_cert[0]) {
		s->ssl_ctx = make_ssl_ctx(cfg, err, errlen);
		if (!s->ssl_ctx) {
			rc = -EINVAL;
			goto fail;
		}
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct xp_worker *w = &s->workers[i];
		w->srv = s;
		if ((rc = worker_init(w, cfg, i, s->nonce)) < 0) {
			snprintf(err, errlen, "out of memory for event-loop "
				 "thread %u", i);
			goto fail;
		}
		w->ssl_ctx = s->ssl_ctx;
		/* the kernel spreads connections evenly over the threads'
		 * sockets: each keeps its share (at least one) */
		if (cfg->max_connections)
			w->max_conns = (cfg->max_connections + s->nworkers - 1) /
				       s->nworkers;
		if (cfg->records) {
			if (export_ring_init(&s->rings[i], cfg->ring_size) < 0) {
				snprintf(err, errlen, "cannot allocate the "
					 "export ring of thread %u; lower "
					 "export.ring_size", i);
				rc = -ENOMEM;
				goto fail;
			}
			w->ring = &s->rings[i];
		}
	}
	/* Listeners: thread 0 binds first (port 0 picks one), the others
	 * bind the same port. */
	unsigned nl = cfg->nlisten ? cfg->nlisten : 1;
	for (unsigned a = 0; a < nl; a++) {
		rc = probe_addr(cfg->nlisten ? cfg->listen[a]
					     : EXTPROC_LISTEN_DEFAULT,
				err, errlen);
		if (rc < 0)
			goto fail;
	}
	for (unsigned a = 0; a < nl; a++) {
		const char *addr = cfg->nlisten ? cfg->listen[a]
						: EXTPROC_LISTEN_DEFAULT;
		unsigned port = 0;
		for (unsigned i = 0; i < s->nworkers; i++) {
			struct xp_worker *w = &s->workers[i];
			unsigned bound;
			int fd = bind_one(addr, port, true, &bound, err, errlen);
			if (fd < 0) {
				rc = fd;
				goto fail;
			}
			port = bound;
			struct xp_listener *l = &w->lst[w->nlst++];
			l->fd = fd;
			l->w = w;
			l->ev = event_new(w->base, fd, EV_READ | EV_PERSIST,
					  accept_cb, l);
			if (!l->ev) {
				rc = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		}
		fmt_bound(addr, port, s->addrs[s->naddrs], sizeof(s->addrs[0]));
		s->naddrs++;
	}
	if (cfg->health_listen && cfg->health_listen[0]) {
		struct xp_worker *w = &s->workers[0];
		unsigned bound;
		int fd = bind_one(cfg->health_listen, 0, false, &bound, err,
				  errlen);
		if (fd < 0) {
			rc = fd;
			goto fail;
		}
		w->health.fd = fd;
		w->health.w = w;
		w->health.ev = event_new(w->base, fd, EV_READ | EV_PERSIST,
					 health_accept_cb, w);
		if (!w->health.ev) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		fmt_bound(cfg->health_listen, bound, s->health_addr,
			  sizeof(s->health_addr));
	}
	if (cfg->records) {
		struct export_file_cfg ec = {
			.dir = cfg->record_dir && cfg->record_dir[0]
				       ? cfg->record_dir
				       : "records",
			.max_bytes = cfg->file_max_bytes,
			.max_age_ns = cfg->file_max_age_ns,
			.flush_ns = cfg->flush_ns,
			.batch_bytes = cfg->batch_bytes,
		};
		rc = export_file_start(&ec, s->rings, s->nworkers, &s->exporter,
				       err, errlen);
		if (rc < 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	extproc_server_free(s);
	return rc;
}

int extproc_server_start(struct extproc_server *s, char *err, size_t errlen)
{
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct xp_worker *w = &s->workers[i];
		for (unsigned j = 0; j < w->nlst; j++)
			event_add(w->lst[j].ev, NULL);
		if (w->health.ev)
			event_add(w->health.ev, NULL);
		struct timeval tv = { .tv_sec = 1 };
		event_add(w->tick_ev, &tv);
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			snprintf(err, errlen, "cannot start event-loop thread "
				 "%u: %s", i, strerror(rc));
			return -rc;
		}
		char name[16];
		snprintf(name, sizeof(name), "extproc-%u", i & 0xffu);
		pthread_setname_np(w->thread, name);
		w->started = true;
	}
	return 0;
}

void extproc_server_write_addrs(struct extproc_server *s, FILE *out)
{
	fputs("{\"listen\":[", out);
	for (unsigned i = 0; i < s->naddrs; i++)
		fprintf(out, "%s\"%s\"", i ? "," : "", s->addrs[i]);
	fputs("],\"health\":", out);
	if (s->health_addr[0])
		fprintf(out, "\"%s\"", s->health_addr);
	else
		fputs("null", out);
	fprintf(out, ",\"threads\":%u,\"tls\":%s,\"mtls\":%s}", s->nworkers,
		s->ssl_ctx ? "true" : "false",
		s->cfg->tls_client_ca && s->cfg->tls_client_ca[0] ? "true"
								  : "false");
}

void extproc_server_shutdown(struct extproc_server *s)
{
	if (atomic_exchange(&s->shutdown, 1)) {
		/* the second call: no more waiting */
		atomic_store(&s->force, 1);
		for (unsigned i = 0; i < s->nworkers; i++)
			if (s->workers[i].started)
				event_active(s->workers[i].shutdown_ev,
					     EV_TIMEOUT, 0);
		return;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < s->nworkers; i++)
		n += s->workers[i].started;
	atomic_store(&s->draining, n);
	for (unsigned i = 0; i < s->nworkers; i++)
		if (s->workers[i].started)
			event_active(s->workers[i].shutdown_ev, EV_TIMEOUT, 0);
}

void extproc_server_stop(struct extproc_server *s, const sigset_t *stop)
{
	log_kv(LOG_LEVEL_INFO, "extproc stopping: GOAWAY, draining", NULL);
	extproc_server_shutdown(s);
	while (atomic_load(&s->draining) > 0) {
		struct timespec to = { 0, 50 * 1000 * 1000 };
		int sig = sigtimedwait(stop, NULL, &to);
		if (sig < 0 || sig == SIGUSR1)
			continue;
		log_kv(LOG_LEVEL_WARN, "extproc stopping now: a second stop "
		       "signal ends the drain", NULL);
		extproc_server_shutdown(s);
	}
}

void extproc_server_join(struct extproc_server *s)
{
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (s->workers[i].started) {
			pthread_join(s->workers[i].thread, NULL);
			s->workers[i].started = false;
		}
	}
	if (s->exporter) {
		struct export_stats st;
		export_file_stop(s->exporter, &st);
		s->exporter = NULL;
		/* the exporter's own losses, beside the workers' drops */
		struct extproc_counters *c = &s->workers[0].ctr;
		c->v[EXTPROC_CTR_record_write_errors] += st.write_errors;
		c->v[EXTPROC_CTR_records_lost] += st.records_lost;
	}
}

void extproc_server_counters(struct extproc_server *s,
			     struct extproc_counters *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < s->nworkers; i++)
		extproc_counters_sum(sum, &s->workers[i].ctr);
}

void extproc_server_free(struct extproc_server *s)
{
	if (!s)
		return;
	extproc_server_join(s);
	for (unsigned i = 0; s->workers && i < s->nworkers; i++)
		worker_fini(&s->workers[i]);
	for (unsigned i = 0; s->rings && i < s->nworkers; i++)
		export_ring_fini(&s->rings[i]);
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	free(s->workers);
	free(s->rings);
	free(s);
}

/* ---- detached session (fuzzing, unit tests) --------------------------- */

struct extproc_session {
	struct xp_worker w;
	struct xp_conn *c;
	bool dead;
};

struct extproc_session *extproc_session_new(const struct extproc_cfg *cfg)
{
	struct extproc_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	for (unsigned j = 0; j < EXTPROC_MAX_LISTEN; j++)
		s->w.lst[j].fd = -1;
	s->w.health.fd = -1;
	if (worker_init(&s->w, cfg, 0, 1) < 0) {
		worker_fini(&s->w);
		free(s);
		return NULL;
	}
	s->c = conn_new(&s->w, -1, NULL);
	if (!s->c) {
		worker_fini(&s->w);
		free(s);
		return NULL;
	}
	snprintf(s->c->peer, sizeof(s->c->peer), "test:0");
	s->c->detached = true;
	s->c->state = C_SNIFF;
	if (conn_start_h2(s->c) < 0) {
		conn_close(s->c);
		worker_fini(&s->w);
		free(s);
		return NULL;
	}
	conn_flush(s->c);
	extproc_policy_online(s->w.pd, true);
	return s;
}

int extproc_session_feed(struct extproc_session *s, const uint8_t *data,
			 size_t len)
{
	if (s->dead)
		return -1;
	struct xp_conn *c = s->c;
	c->last_ns = st_mono_ns();
	if (c->state != C_CLOSING)
		conn_input(c, data, len);
	conn_flush(c);
	extproc_policy_quiescent(s->w.pd);
	if (c->state == C_CLOSING || c->close_after_write ||
	    (c->h2 && !nghttp2_session_want_read(c->h2) &&
	     !nghttp2_session_want_write(c->h2))) {
		s->dead = true;
		return -1;
	}
	return 0;
}

struct extproc_buf *extproc_session_output(struct extproc_session *s)
{
	return &s->c->out;
}

struct extproc_counters *extproc_session_counters(struct extproc_session *s)
{
	return &s->w.ctr;
}

void extproc_session_free(struct extproc_session *s)
{
	if (!s)
		return;
	conn_close(s->c);
	extproc_policy_online(s->w.pd, false);
	worker_fini(&s->w);
	free(s);
}
