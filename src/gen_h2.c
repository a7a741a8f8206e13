/* sealtap gen: the HTTP/2 conversation of one connection.
 *
 * A real nghttp2 client session and a real nghttp2 server session talk in
 * memory: whatever one side's nghttp2_session_mem_send() produces is handed
 * to the other side's nghttp2_session_mem_recv() by the TCP model
 * (gen_conn.c), one turn at a time. The server answers each complete
 * request with nghttp2_submit_response() and a data provider, so frame
 * layout, HPACK, flow control, CONTINUATION splitting and padding are
 * nghttp2's, not ours. Both sessions validate what they receive (HTTP
 * messaging checks on), which makes nghttp2 the judge of what we generate:
 * any frame a session rejects fails the run.
 *
 * The frames each side sends are counted by walking the 9-byte frame
 * headers of its byte stream (RFC 9113 §4.1), so the counts are those on
 * the wire, CONTINUATION included (nghttp2 callbacks see a HEADERS frame
 * and its CONTINUATIONs as one).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_priv.h"
#include "sealtap/common.h"

#define H2_FRAME_MAX 16384   /* SETTINGS_MAX_FRAME_SIZE, never raised */

/* h2c upgrade (RFC 7540 §3.2; RFC 9113 drops it, deployments still use
 * it): the client's HTTP/1.1 request, then the server's 101. */
enum upgrade_state {
	UP_NONE = 0,     /* prior knowledge, or the upgrade is over */
	UP_REQUEST,      /* client has to send the HTTP/1.1 request */
	UP_SENT_REQUEST, /* server has to read it */
	UP_GOT_REQUEST,  /* server has to answer 101 + HTTP/2 */
	UP_SENT_101,     /* client has to read the 101 */
};

static const char RESP_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
			       "Connection: Upgrade\r\n"
			       "Upgrade: h2c\r\n\r\n";

/* One side's view of one stream. Owned by gen_h2.streams; freed when
 * nghttp2 closes the stream or with the gen_h2. */
struct h2_stream {
	struct h2_stream *prev, *next;
	int32_t id;
	struct gen_body body;  /* what this side sends */
	bool head;             /* server: the request was HEAD */
	bool cancel;           /* client: RST_STREAM once the response began */
};

/* Frame header walker of one direction: skips |skip| bytes (client magic,
 * frame payloads), gathers 9-byte headers in between. */
struct frame_walk {
	uint64_t skip;
	uint8_t hdr[9];
	uint32_t have;
};

struct gen_h2 {
	const struct gen_opts *o;
	struct gen_rng *rng;
	struct gen_msg msg;
	nghttp2_session *s[2];
	struct h2_stream *streams;
	uint32_t submitted;
	uint32_t client_open;
	uint32_t closed[2];
	int32_t *pending_rst;  /* client streams to cancel at its next turn */
	uint32_t npending;     /* <= concurrency: one entry per open stream */
	bool goaway_sent;
	enum upgrade_state up;
	uint8_t settings[GEN_SETTINGS_MAX];
	size_t settings_len;
	struct frame_walk walk[2];
	uint64_t frames[GEN_FRAME_TYPES];
	char err[160];
};

/* ---- small helpers ------------------------------------------------- */

static int h2_fail(struct gen_h2 *h, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int h2_fail(struct gen_h2 *h, int rc, const char *fmt, ...)
{
	if (!h->err[0]) { /* the first reason is the one that matters */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(h->err, sizeof(h->err), fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int side_of(const struct gen_h2 *h, const nghttp2_session *s)
{
	return s == h->s[GEN_SERVER] ? GEN_SERVER : GEN_CLIENT;
}

/* A zeroed stream state, linked into |h|. It belongs to |h|: freed by
 * stream_free() when nghttp2 closes the stream, or by gen_h2_free(). */
static struct h2_stream *stream_new(struct gen_h2 *h)
{
	struct h2_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->next = h->streams;
	if (h->streams)
		h->streams->prev = st;
	h->streams = st;
	return st;
}

static void stream_free(struct gen_h2 *h, struct h2_stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	free(st);
}

/* Maps a gen_msg_*() error to the reason given to the user. */
static int msg_failed(struct gen_h2 *h, int rc)
{
	return h2_fail(h, rc, rc == -ENOSPC ? "header list overflow"
					    : "out of memory");
}

/* ---- requests and responses ---------------------------------------- */

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf,
			 size_t length, uint32_t *flags,
			 nghttp2_data_source *src, void *ud);

static int submit_request(struct gen_h2 *h)
{
	struct h2_stream *st = stream_new(h);
	if (!st)
		return h2_fail(h, -ENOMEM, "out of memory");
	struct gen_hdrs hs;
	int rc = gen_msg_request(&h->msg, &hs, &st->body);
	if (rc < 0) {
		stream_free(h, st);
		return msg_failed(h, rc);
	}
	st->cancel = gen_rng_chance(h->rng, h->o->rst_ppm);
	nghttp2_data_provider prd = { .source.ptr = st,
				      .read_callback = body_read };
	int32_t id = nghttp2_submit_request(h->s[GEN_CLIENT], NULL, hs.nv,
					    hs.n, st->body.len ? &prd : NULL,
					    st);
	gen_hdrs_fini(&hs);
	if (id < 0) {
		stream_free(h, st);
		return h2_fail(h, -EPROTO, "client: submit request: %s",
			       nghttp2_strerror(id));
	}
	st->id = id;
	h->submitted++;
	h->client_open++;
	return 0;
}

static int respond(struct gen_h2 *h, struct h2_stream *st)
{
	struct gen_hdrs hs;
	int rc = gen_msg_response(&h->msg, st->head, &hs, &st->body);
	if (rc < 0)
		return msg_failed(h, rc);
	nghttp2_data_provider prd = { .source.ptr = st,
				      .read_callback = body_read };
	rc = nghttp2_submit_response(h->s[GEN_SERVER], st->id, hs.nv, hs.n,
				     st->body.len ? &prd : NULL);
	gen_hdrs_fini(&hs);
	if (rc < 0)
		return h2_fail(h, -EPROTO, "server: submit response: %s",
			       nghttp2_strerror(rc));
	return 0;
}

/* Data provider for both sides: the stream's body, then EOF. A gRPC
 * response ends with trailers instead of END_STREAM on DATA (nghttp2
 * allows submitting them from here). */
static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf,
			 size_t length, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct gen_h2 *h = ud;
	struct gen_body *b = &((struct h2_stream *)src->ptr)->body;
	size_t n = gen_body_read(b, buf, length);
	if (b->off < b->len)
		return (ssize_t)n;
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (b->grpc && side_of(h, s) == GEN_SERVER) {
		nghttp2_nv nv[2];
		size_t k = gen_msg_trailers(&h->msg, nv);
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		int rc = nghttp2_submit_trailer(s, id, nv, k);
		if (rc < 0) {
			h2_fail(h, -EPROTO, "server: submit trailer: %s",
				nghttp2_strerror(rc));
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		}
	}
	return (ssize_t)n;
}

/* ---- nghttp2 callbacks --------------------------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
			    void *ud)
{
	struct gen_h2 *h = ud;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *st = stream_new(h);
	if (!st) {
		h2_fail(h, -ENOMEM, "out of memory");
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	st->id = f->hd.stream_id;
	nghttp2_session_set_stream_user_data(s, st->id, st);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
		     const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *ud)
{
	(void)flags;
	(void)ud;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *st =
		nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st && namelen == 7 && !memcmp(name, ":method", 7) &&
	    valuelen == 4 && !memcmp(value, "HEAD", 4))
		st->head = true;
	return 0;
}

/* Client: a cancel-marked stream whose response has begun and is still
 * open gets RST_STREAM(CANCEL) at the client's next turn. */
static void client_frame_recv(struct gen_h2 *h, nghttp2_session *s,
			      const nghttp2_frame *f)
{
	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_RESPONSE ||
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return;
	struct h2_stream *st =
		nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st && st->cancel && h->npending < h->o->concurrency)
		h->pending_rst[h->npending++] = st->id;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
			 void *ud)
{
	struct gen_h2 *h = ud;
	int side = side_of(h, s);
	/* Nothing we generate should make a peer reset a stream or end the
	 * connection with an error: if it does, the generator is wrong. */
	if ((f->hd.type == NGHTTP2_RST_STREAM &&
	     f->rst_stream.error_code != NGHTTP2_CANCEL) ||
	    (f->hd.type == NGHTTP2_GOAWAY &&
	     f->goaway.error_code != NGHTTP2_NO_ERROR)) {
		h2_fail(h, -EPROTO, "%s received %s with %s",
		     side ? "server" : "client",
		     f->hd.type == NGHTTP2_GOAWAY ? "GOAWAY" : "RST_STREAM",
		     nghttp2_http2_strerror(f->hd.type == NGHTTP2_GOAWAY
						    ? f->goaway.error_code
						    : f->rst_stream.error_code));
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (side == GEN_CLIENT) {
		client_frame_recv(h, s, f);
		return 0;
	}
	/* Server: answer once the request is complete (END_STREAM on its
	 * HEADERS or last DATA, RFC 9113 §8.1). */
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct h2_stream *st =
		nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st && respond(h, st) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f,
			    int lib_error, void *ud)
{
	struct gen_h2 *h = ud;
	h2_fail(h, -EPROTO, "%s rejected a frame of type %u on stream %d: %s",
	     side_of(h, s) ? "server" : "client", f->hd.type, f->hd.stream_id,
	     nghttp2_strerror(lib_error));
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static void pending_remove(struct gen_h2 *h, int32_t id)
{
	for (uint32_t i = 0; i < h->npending; i++)
		if (h->pending_rst[i] == id) {
			h->pending_rst[i] = h->pending_rst[--h->npending];
			return;
		}
}

static int on_stream_close(nghttp2_session *s, int32_t id,
			   uint32_t error_code, void *ud)
{
	(void)error_code;
	struct gen_h2 *h = ud;
	int side = side_of(h, s);
	h->closed[side]++;
	if (side == GEN_CLIENT) {
		h->client_open--;
		pending_remove(h, id);
	}
	struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (st)
		stream_free(h, st);
	return 0;
}

/* --padding N: RFC 9113 §6.1/§6.2 padding on DATA and HEADERS; the
 * callback returns the padded payload length, Pad Length field included. */
static ssize_t select_padding(nghttp2_session *s, const nghttp2_frame *f,
			      size_t max_payloadlen, void *ud)
{
	(void)s;
	struct gen_h2 *h = ud;
	size_t want = f->hd.length + 1 + gen_rng_below(h->rng, h->o->padding + 1);
	return (ssize_t)ST_MIN(want, max_payloadlen);
}

/* ---- sessions ------------------------------------------------------ */

static size_t client_settings(const struct gen_opts *o,
			      nghttp2_settings_entry iv[4])
{
	(void)o;
	iv[0] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	iv[1] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
					  100 };
	return 2;
}

static size_t server_settings(const struct gen_opts *o,
			      nghttp2_settings_entry iv[4])
{
	iv[0] = (nghttp2_settings_entry){
		NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		ST_MAX(o->concurrency, 100u) };
	return 1;
}

static nghttp2_session_callbacks *make_callbacks(const struct gen_opts *o,
						 int side)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb,
							       on_stream_close);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
		cb, on_invalid_frame);
	if (side == GEN_SERVER) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(
			cb, on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	}
	if (o->padding)
		nghttp2_session_callbacks_set_select_padding_callback(
			cb, select_padding);
	return cb;
}

/* Options that keep runs deterministic and let large header blocks
 * through: nghttp2 limits what it sends (64 KiB) and receives
 * (8 CONTINUATION frames, CVE-2024-28182) per header block, and rate-limits
 * incoming RST_STREAM by wall-clock seconds, which would make --rst
 * depend on how fast the machine is. */
static nghttp2_option *make_option(void)
{
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt) != 0)
		return NULL;
	size_t block = GEN_HEADER_BLOCK_MAX + 65536;
	nghttp2_option_set_max_send_header_block_length(opt, block);
	nghttp2_option_set_max_continuations(opt, block / H2_FRAME_MAX + 1);
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT64_MAX, 1);
	return opt;
}

static int session_new(struct gen_h2 *h, int side)
{
	nghttp2_session_callbacks *cb = make_callbacks(h->o, side);
	nghttp2_option *opt = make_option();
	int rc = NGHTTP2_ERR_NOMEM;
	if (cb && opt)
		rc = side == GEN_CLIENT
			     ? nghttp2_session_client_new2(&h->s[side], cb, h, opt)
			     : nghttp2_session_server_new2(&h->s[side], cb, h, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (rc != 0)
		return h2_fail(h, -ENOMEM, "nghttp2 session: %s",
			    nghttp2_strerror(rc));
	return 0;
}

static int submit_settings(struct gen_h2 *h, int side)
{
	nghttp2_settings_entry iv[4];
	size_t n = side == GEN_CLIENT ? client_settings(h->o, iv)
				      : server_settings(h->o, iv);
	int rc = nghttp2_submit_settings(h->s[side], NGHTTP2_FLAG_NONE, iv, n);
	return rc < 0 ? h2_fail(h, -EPROTO, "submit SETTINGS: %s",
			     nghttp2_strerror(rc))
		      : 0;
}

int gen_h2_new(struct gen_h2 **out, const struct gen_opts *o,
	       struct gen_rng *rng)
{
	struct gen_h2 *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->o = o;
	h->rng = rng;
	h->up = o->h2c_upgrade ? UP_REQUEST : UP_NONE;
	h->walk[GEN_CLIENT].skip = sizeof(NGHTTP2_CLIENT_MAGIC) - 1;
	h->pending_rst = calloc(o->concurrency, sizeof(*h->pending_rst));
	int rc = h->pending_rst ? 0 : -ENOMEM;
	if (rc == 0 && gen_msg_init(&h->msg, o, rng) < 0)
		rc = h2_fail(h, -ENOMEM, "out of memory");
	if (rc == 0)
		rc = session_new(h, GEN_CLIENT);
	if (rc == 0)
		rc = session_new(h, GEN_SERVER);
	/* With an upgrade, SETTINGS are queued when the upgrade happens. */
	if (rc == 0 && !o->h2c_upgrade) {
		rc = submit_settings(h, GEN_CLIENT);
		if (rc == 0)
			rc = submit_settings(h, GEN_SERVER);
	}
	if (rc < 0) {
		gen_h2_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void gen_h2_free(struct gen_h2 *h)
{
	if (!h)
		return;
	/* nghttp2_session_del() runs no callbacks: free stream state here. */
	nghttp2_session_del(h->s[GEN_CLIENT]);
	nghttp2_session_del(h->s[GEN_SERVER]);
	while (h->streams)
		stream_free(h, h->streams);
	free(h->pending_rst);
	gen_msg_fini(&h->msg);
	free(h);
}

/* ---- h2c upgrade --------------------------------------------------- */

/* Client: writes the HTTP/1.1 GET with Upgrade: h2c (RFC 7540 §3.2) and
 * turns the request into stream 1 of its session. */
static int client_upgrade(struct gen_h2 *h, struct gen_buf *out)
{
	nghttp2_settings_entry iv[4];
	size_t niv = client_settings(h->o, iv);
	ssize_t n = nghttp2_pack_settings_payload(h->settings,
						  sizeof(h->settings), iv, niv);
	if (n < 0)
		return h2_fail(h, -EPROTO, "pack settings: %s",
			       nghttp2_strerror((int)n));
	h->settings_len = (size_t)n;
	struct h2_stream *st = stream_new(h);
	if (!st)
		return h2_fail(h, -ENOMEM, "out of memory");
	st->cancel = gen_rng_chance(h->rng, h->o->rst_ppm);
	int rc = gen_msg_upgrade_request(&h->msg, h->settings, h->settings_len,
					 out);
	if (rc < 0) /* gen_h2_free() frees |st| */
		return h2_fail(h, rc, "out of memory");
	/* This also queues the client SETTINGS (with the same payload). */
	rc = nghttp2_session_upgrade2(h->s[GEN_CLIENT], h->settings,
				      h->settings_len, 0, st);
	if (rc < 0)
		return h2_fail(h, -EPROTO, "client upgrade: %s",
			       nghttp2_strerror(rc));
	st->id = 1;
	h->submitted++;
	h->client_open++;
	h->up = UP_SENT_REQUEST;
	return 0;
}

/* Server: answers 101 and takes the request over as stream 1, then
 * answers it in HTTP/2 (RFC 7540 §3.2). */
static int server_upgrade(struct gen_h2 *h, struct gen_buf *out)
{
	if (gen_buf_append(out, RESP_101, sizeof(RESP_101) - 1) < 0)
		return h2_fail(h, -ENOMEM, "out of memory");
	int rc = nghttp2_session_upgrade2(h->s[GEN_SERVER], h->settings,
					  h->settings_len, 0, NULL);
	if (rc < 0)
		return h2_fail(h, -EPROTO, "server upgrade: %s",
			    nghttp2_strerror(rc));
	struct h2_stream *st = stream_new(h);
	if (!st)
		return h2_fail(h, -ENOMEM, "out of memory");
	st->id = 1;
	nghttp2_session_set_stream_user_data(h->s[GEN_SERVER], 1, st);
	h->up = UP_SENT_101;
	rc = submit_settings(h, GEN_SERVER);
	return rc < 0 ? rc : respond(h, st);
}

/* ---- turns --------------------------------------------------------- */

/* Counts the frames in |n| more bytes that |side| sent. */
static void walk(struct gen_h2 *h, int side, const uint8_t *p, size_t n)
{
	struct frame_walk *w = &h->walk[side];
	while (n) {
		if (w->skip) {
			size_t k = (size_t)ST_MIN((uint64_t)n, w->skip);
			w->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		w->hdr[w->have++] = *p++;
		n--;
		if (w->have < 9)
			continue;
		w->have = 0;
		w->skip = (uint64_t)w->hdr[0] << 16 | w->hdr[1] << 8 | w->hdr[2];
		if (w->hdr[3] < GEN_FRAME_TYPES)
			h->frames[w->hdr[3]]++;
	}
}

static int client_prepare(struct gen_h2 *h)
{
	for (uint32_t i = 0; i < h->npending; i++) {
		int rc = nghttp2_submit_rst_stream(h->s[GEN_CLIENT],
						   NGHTTP2_FLAG_NONE,
						   h->pending_rst[i],
						   NGHTTP2_CANCEL);
		if (rc < 0)
			return h2_fail(h, -EPROTO, "submit RST_STREAM: %s",
				    nghttp2_strerror(rc));
	}
	h->npending = 0;
	while (h->client_open < h->o->concurrency &&
	       h->submitted < h->o->streams) {
		int rc = submit_request(h);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* RFC 9113 §6.8: a graceful GOAWAY names the last stream processed. */
static int server_prepare(struct gen_h2 *h)
{
	if (!h->o->goaway || h->goaway_sent ||
	    h->closed[GEN_SERVER] < h->o->streams)
		return 0;
	nghttp2_session *s = h->s[GEN_SERVER];
	int rc = nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE,
				       nghttp2_session_get_last_proc_stream_id(s),
				       NGHTTP2_NO_ERROR, NULL, 0);
	if (rc < 0)
		return h2_fail(h, -EPROTO, "submit GOAWAY: %s",
			    nghttp2_strerror(rc));
	h->goaway_sent = true;
	return 0;
}

static int drain(struct gen_h2 *h, int side, size_t budget,
		 struct gen_buf *out)
{
	size_t start = out->len;
	while (out->len - start < budget) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(h->s[side], &data);
		if (n < 0)
			return h2_fail(h, -EPROTO, "%s: send: %s",
				    side ? "server" : "client",
				    nghttp2_strerror((int)n));
		if (n == 0)
			break;
		if (gen_buf_append(out, data, (size_t)n) < 0)
			return h2_fail(h, -ENOMEM, "out of memory");
	}
	walk(h, side, out->p + start, out->len - start);
	return 0;
}

int gen_h2_produce(struct gen_h2 *h, int side, size_t budget,
		   struct gen_buf *out)
{
	int rc = 0;
	if (side == GEN_CLIENT) {
		if (h->up == UP_REQUEST)
			return client_upgrade(h, out);
		if (h->up != UP_NONE) /* waiting for the 101 */
			return 0;
		rc = client_prepare(h);
	} else {
		if (h->up == UP_GOT_REQUEST) {
			size_t start = out->len;
			rc = server_upgrade(h, out);
			budget -= ST_MIN(budget, out->len - start);
		} else if (h->up != UP_NONE && h->up != UP_SENT_101) {
			return 0;
		}
		if (rc == 0)
			rc = server_prepare(h);
	}
	return rc < 0 ? rc : drain(h, side, budget, out);
}

int gen_h2_deliver(struct gen_h2 *h, int side, const uint8_t *p, size_t n)
{
	if (side == GEN_SERVER && h->up == UP_SENT_REQUEST) {
		/* The turn held the HTTP/1.1 request and nothing else: the
		 * client sends no HTTP/2 before the 101. */
		h->up = UP_GOT_REQUEST;
		return 0;
	}
	if (side == GEN_CLIENT && h->up == UP_SENT_101) {
		size_t k = ST_MIN(n, sizeof(RESP_101) - 1);
		p += k;
		n -= k;
		h->up = UP_NONE;
	}
	ssize_t r = nghttp2_session_mem_recv(h->s[side], p, n);
	if (r < 0)
		return h2_fail(h, -EPROTO, "%s: receive: %s",
			    side ? "server" : "client",
			    nghttp2_strerror((int)r));
	return 0;
}

bool gen_h2_done(const struct gen_h2 *h)
{
	const struct gen_opts *o = h->o;
	return h->up == UP_NONE && h->closed[GEN_CLIENT] == o->streams &&
	       h->closed[GEN_SERVER] == o->streams &&
	       (!o->goaway || h->goaway_sent) &&
	       !nghttp2_session_want_write(h->s[GEN_CLIENT]) &&
	       !nghttp2_session_want_write(h->s[GEN_SERVER]);
}

void gen_h2_count(const struct gen_h2 *h, uint64_t frames[GEN_FRAME_TYPES],
		  uint64_t *streams)
{
	for (int i = 0; i < GEN_FRAME_TYPES; i++)
		frames[i] += h->frames[i];
	*streams += h->submitted;
}

const char *gen_h2_error(const struct gen_h2 *h)
{
	return h->err[0] ? h->err : "HTTP/2 session failed";
}
