/* Tests for src/h2_conn.c (h2.h): the passive HTTP/2 analyzer driven
 * through its reassembly consumer interface (h2_reasm_ops()) with a
 * hand-made struct flow, as reasm_tcp.c would drive it.
 *
 * Byte streams come from real nghttp2 client and server sessions talking
 * in memory (mem_send -> mem_recv, the way src/gen_h2.c does), so frames,
 * HPACK, padding, CONTINUATION, push and trailers are nghttp2's; error
 * paths use hand-made frames with HPACK blocks from nghttp2's deflater.
 * What each side sent is kept as a list of chunks in send order; a plan
 * replays them into the analyzer, optionally starting each direction
 * mid-way, withholding byte ranges as gaps, or cutting pieces smaller.
 *
 * Every record the sink receives must be one valid JSON object (strict
 * reader in h2_json.h); the checks then look at fields of the parsed
 * records and at the counters.
 *
 * Run one test with its name as the argument (a cmocka filter pattern);
 * H2_DUMP=1 prints every record and the counters of each run.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "sealtap/counters.h"
#include "sealtap/flow.h"
#include "sealtap/h2.h"
#include "sealtap/h2_frame.h"
#include "h2_json.h"

/* ==================================================================== */
/* the wire: what each side sent, in order                              */
/* ==================================================================== */

struct chunk {
	unsigned dir; /* 0: client -> server, 1: server -> client */
	uint8_t *p;
	size_t len;
};

struct wire {
	struct chunk *c;
	size_t n;
	uint8_t *all[2]; /* each direction's bytes concatenated */
	size_t len[2];
};

static void wire_add(struct wire *w, unsigned dir, const void *p, size_t len)
{
	if (len == 0)
		return;
	w->c = realloc(w->c, (w->n + 1) * sizeof(*w->c));
	struct chunk *c = &w->c[w->n++];
	c->dir = dir;
	c->p = malloc(len);
	memcpy(c->p, p, len);
	c->len = len;
	w->all[dir] = realloc(w->all[dir], w->len[dir] + len);
	memcpy(w->all[dir] + w->len[dir], p, len);
	w->len[dir] += len;
}

static void wire_free(struct wire *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->c[i].p);
	free(w->c);
	free(w->all[0]);
	free(w->all[1]);
	memset(w, 0, sizeof(*w));
}

/* A frame found in one direction's bytes. */
struct wframe {
	size_t off; /* of the 9-byte header */
	struct h2_frame_hdr h;
};

/* Walks direction |dir|'s frames from |start| (after the preface or an
 * HTTP/1.1 head). Returns how many were found (at most |max|). */
static size_t wire_frames(const struct wire *w, unsigned dir, size_t start,
			  struct wframe *out, size_t max)
{
	size_t n = 0, off = start;
	while (off + 9 <= w->len[dir] && n < max) {
		out[n].off = off;
		h2_frame_hdr_parse(w->all[dir] + off, &out[n].h);
		off += 9 + out[n].h.length;
		n++;
	}
	return n;
}

/* The |k|-th frame (0-based) of |type| on |sid| (0: any) in |dir|. */
static const struct wframe *find_frame(const struct wframe *f, size_t nf,
				       uint8_t type, uint32_t sid, unsigned k)
{
	for (size_t i = 0; i < nf; i++)
		if (f[i].h.type == type && (!sid || f[i].h.stream_id == sid) &&
		    k-- == 0)
			return &f[i];
	return NULL;
}

/* ==================================================================== */
/* real peers: nghttp2 client and server sessions in memory              */
/* ==================================================================== */

struct body {
	const uint8_t *p;
	size_t len, off;
	size_t max_chunk;      /* largest DATA payload per read (0: any) */
	const nghttp2_nv *tr;  /* trailers after the body */
	size_t ntr;
};

struct conv {
	nghttp2_session *s[2]; /* [0] client, [1] server */
	struct wire w;
	size_t pad;            /* padding per frame (select_padding) */
	bool upgraded;
};

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf,
			 size_t length, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	(void)ud;
	struct body *b = src->ptr;
	size_t n = b->len - b->off;
	if (n > length)
		n = length;
	if (b->max_chunk && n > b->max_chunk)
		n = b->max_chunk;
	memcpy(buf, b->p + b->off, n);
	b->off += n;
	if (b->off == b->len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (b->ntr) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			int rc = nghttp2_submit_trailer(s, id, b->tr, b->ntr);
			assert_int_equal(rc, 0);
		}
	}
	return (ssize_t)n;
}

static ssize_t select_padding(nghttp2_session *s, const nghttp2_frame *f,
			      size_t max_payloadlen, void *ud)
{
	(void)s;
	struct conv *cv = ud;
	size_t want = f->hd.length + cv->pad;
	return (ssize_t)(want < max_payloadlen ? want : max_payloadlen);
}

static int on_invalid(nghttp2_session *s, const nghttp2_frame *f, int err,
		      void *ud)
{
	(void)s, (void)ud;
	fail_msg("nghttp2 rejected a %s frame on stream %d: %s",
		 h2_frame_type_name(f->hd.type), f->hd.stream_id,
		 nghttp2_strerror(err));
	return 0;
}

static void conv_init(struct conv *cv, size_t pad, bool settings)
{
	memset(cv, 0, sizeof(*cv));
	cv->pad = pad;
	nghttp2_session_callbacks *cb;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb,
								     on_invalid);
	if (pad)
		nghttp2_session_callbacks_set_select_padding_callback(
			cb, select_padding);
	nghttp2_option *opt;
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_max_send_header_block_length(opt, 1u << 20);
	assert_int_equal(nghttp2_session_client_new2(&cv->s[0], cb, cv, opt), 0);
	assert_int_equal(nghttp2_session_server_new2(&cv->s[1], cb, cv, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (settings) {
		assert_int_equal(nghttp2_submit_settings(cv->s[0],
							 NGHTTP2_FLAG_NONE,
							 NULL, 0),
				 0);
		assert_int_equal(nghttp2_submit_settings(cv->s[1],
							 NGHTTP2_FLAG_NONE,
							 NULL, 0),
				 0);
	}
}

static void conv_fini(struct conv *cv)
{
	nghttp2_session_del(cv->s[0]);
	nghttp2_session_del(cv->s[1]);
	wire_free(&cv->w);
}

/* Lets side |side| send what it has (one mem_send burst), handing it to
 * the other side and to the wire. Returns bytes sent. */
static size_t conv_send(struct conv *cv, unsigned side)
{
	size_t total = 0;
	for (;;) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(cv->s[side], &p);
		assert_true(n >= 0);
		if (n == 0)
			return total;
		wire_add(&cv->w, side, p, (size_t)n);
		ssize_t r = nghttp2_session_mem_recv(cv->s[side ^ 1], p,
						     (size_t)n);
		if (r != n)
			fail_msg("side %u mem_recv: %s", side ^ 1,
				 nghttp2_strerror((int)r));
		total += (size_t)n;
	}
}

/* Turns until neither side has anything to send. */
static void conv_pump(struct conv *cv)
{
	while (conv_send(cv, 0) + conv_send(cv, 1))
		;
}

#define NVS(n, v)                                                              \
	{ (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v),                \
	  NGHTTP2_NV_FLAG_NONE }

static int32_t conv_request(struct conv *cv, const char *method,
			    const char *path, struct body *b,
			    const nghttp2_nv *extra, size_t nextra)
{
	nghttp2_nv nv[32] = {
		NVS(":method", method), NVS(":path", path),
		NVS(":scheme", "http"), NVS(":authority", "example.com"),
	};
	size_t n = 4;
	for (size_t i = 0; i < nextra; i++)
		nv[n++] = extra[i];
	nghttp2_data_provider prd = { .source.ptr = b,
				      .read_callback = body_read };
	int32_t id = nghttp2_submit_request(cv->s[0], NULL, nv, n,
					    b ? &prd : NULL, NULL);
	assert_true(id > 0);
	return id;
}

static void conv_respond(struct conv *cv, int32_t id, const char *status,
			 struct body *b, const nghttp2_nv *extra,
			 size_t nextra)
{
	nghttp2_nv nv[32] = { NVS(":status", status) };
	size_t n = 1;
	for (size_t i = 0; i < nextra; i++)
		nv[n++] = extra[i];
	nghttp2_data_provider prd = { .source.ptr = b,
				      .read_callback = body_read };
	assert_int_equal(nghttp2_submit_response(cv->s[1], id, nv, n,
						 b ? &prd : NULL),
			 0);
}

/* ==================================================================== */
/* the analyzer under test, with a sink that parses every record         */
/* ==================================================================== */

#define MAX_RECS 4096

struct tap {
	struct h2_ctx *ctx;
	struct st_counters c;
	struct flow f;
	struct h2_cfg cfg;
	char *raw[MAX_RECS];
	struct jv *rec[MAX_RECS];
	size_t nrec;
	uint64_t off[2];
	uint64_t ts;
	bool ended;
	int sink_fail; /* return -1 from the sink */
};

static int sink_write(void *u, const void *rec, uint32_t len)
{
	struct tap *t = u;
	assert_true(len > 0);
	const char *s = rec;
	if (s[len - 1] != '\n' || memchr(s, '\n', len - 1))
		fail_msg("record is not one line: %.*s", (int)len, s);
	struct jv *v = j_parse(s, len - 1);
	if (!v || v->t != J_OBJ)
		fail_msg("record is not a JSON object (%u bytes): %.*s", len,
			 (int)(len > 3000 ? 3000 : len), s);
	assert_true(t->nrec < MAX_RECS);
	if (getenv("H2_DUMP")) /* H2_DUMP=1: print every record */
		fprintf(stderr, "%.*s", (int)len, s);
	t->raw[t->nrec] = strndup(s, len);
	t->rec[t->nrec++] = v;
	return t->sink_fail ? -1 : 0;
}

#define TS0 1795399054837095000ull

/* A flow 10.0.0.1:40000 (dir 0) <-> 10.0.0.2:8080 (dir 1). |syn| bit i:
 * direction i started from its SYN. |client_dir| and |sure| as reasm/flow
 * would set them. */
static void tap_init_flow(struct tap *t, unsigned syn, unsigned client_dir,
			  bool sure)
{
	struct flow *f = &t->f;
	memset(f, 0, sizeof(*f));
	f->key.family = FLOW_FAMILY_IPV4;
	f->key.proto = 6;
	f->key.addr[0][0] = 10;
	f->key.addr[0][3] = 1;
	f->key.addr[1][0] = 10;
	f->key.addr[1][3] = 2;
	f->key.port[0] = 40000;
	f->key.port[1] = 8080;
	f->first_ts = t->ts;
	for (unsigned i = 0; i < 2; i++) {
		f->dir[i].idx = (uint8_t)i;
		f->dir[i].flags = REASM_DIR_STARTED |
				  ((syn >> i) & 1 ? REASM_DIR_SYN : 0);
	}
	f->client_dir = (uint8_t)client_dir;
	f->role_sure = sure;
	t->off[0] = t->off[1] = 0;
	t->ended = false;
}

static struct tap *tap_new_cfg(const struct h2_cfg *cfg)
{
	struct tap *t = calloc(1, sizeof(*t));
	t->cfg = *cfg;
	t->ts = TS0;
	struct h2_sink s = { .write = sink_write, .user = t };
	struct h2_run_info run = { .worker = 0, .source = "tap" };
	t->ctx = h2_ctx_new(cfg, &run, &s, &t->c);
	assert_non_null(t->ctx);
	tap_init_flow(t, 3, 0, true);
	return t;
}

/* The defaults with pools sized for a test (a full-size context touches
 * ~400 MB setting its pools up, which dominates the run time). */
static struct h2_cfg test_cfg(void)
{
	struct h2_cfg cfg = H2_CFG_DEFAULT;
	cfg.max_connections = 16;
	cfg.max_streams = 4096;
	cfg.memcap = 32u << 20;
	return cfg;
}

static struct tap *tap_new(void)
{
	struct h2_cfg cfg = test_cfg();
	return tap_new_cfg(&cfg);
}

static void tap_data(struct tap *t, unsigned dir, const uint8_t *p,
		     size_t len)
{
	const struct reasm_ops *ops = h2_reasm_ops();
	while (len) {
		uint32_t k = len > 65536 ? 65536 : (uint32_t)len;
		t->ts += 1000;
		if (t->f.last_ts < t->ts)
			t->f.last_ts = t->ts;
		ops->on_data(t->ctx, &t->f, dir, t->off[dir], p, k, t->ts);
		t->off[dir] += k;
		p += k;
		len -= k;
	}
}

static void tap_gap(struct tap *t, unsigned dir, uint64_t len)
{
	t->ts += 1000;
	h2_reasm_ops()->on_gap(t->ctx, &t->f, dir, t->off[dir], len, t->ts);
	t->off[dir] += len;
}

/* Ends both directions (|how|) and frees the flow, as reasm/flow do. */
static void tap_end(struct tap *t, enum reasm_end how)
{
	const struct reasm_ops *ops = h2_reasm_ops();
	t->ts += 1000;
	t->f.dir[0].flags |= REASM_DIR_ENDED;
	ops->on_end(t->ctx, &t->f, 0, how, t->ts);
	t->f.dir[1].flags |= REASM_DIR_ENDED;
	ops->on_end(t->ctx, &t->f, 1, how, t->ts);
	ops->on_flow_free(t->ctx, &t->f);
	assert_null(t->f.app);
	t->ended = true;
	if (getenv("H2_DUMP")) {
		counters_write_json(stderr, &t->c);
		fputc('\n', stderr);
	}
}

static void tap_free(struct tap *t)
{
	if (!t->ended)
		tap_end(t, REASM_END_SHUTDOWN);
	h2_ctx_free(t->ctx);
	for (size_t i = 0; i < t->nrec; i++) {
		j_free(t->rec[i]);
		free(t->raw[i]);
	}
	free(t);
}

static uint64_t ctr(const struct tap *t, enum st_counter id)
{
	return t->c.v[id];
}

#define CTR(t, name) ctr((t), ST_CTR_##name)

/* Withheld bytes of one direction: [off, off + len) of its stream. */
struct gapspec {
	unsigned dir;
	uint64_t off, len;
};

struct plan {
	uint64_t start[2];     /* first byte delivered per direction */
	const struct gapspec *gaps;
	size_t ngaps;
	size_t maxseg;         /* cut deliveries to this size (0: as sent) */
	size_t from_chunk;     /* skip chunks before this one */
	size_t to_chunk;       /* stop before this chunk (0: all) */
};

/* Replays |w| into the tap following |pl|. */
static void tap_play(struct tap *t, const struct wire *w,
		     const struct plan *pl)
{
	static const struct plan none;
	if (!pl)
		pl = &none;
	uint64_t pos[2] = { 0, 0 };
	bool reported[16] = { false };
	assert_true(pl->ngaps <= 16);
	size_t to = pl->to_chunk ? pl->to_chunk : w->n;
	for (size_t ci = 0; ci < to && ci < w->n; ci++) {
		const struct chunk *c = &w->c[ci];
		unsigned d = c->dir;
		uint64_t a = pos[d], b = a + c->len;
		pos[d] = b;
		if (ci < pl->from_chunk)
			continue;
		uint64_t x = a > pl->start[d] ? a : pl->start[d];
		while (x < b) {
			size_t g = SIZE_MAX;
			uint64_t next = b;
			for (size_t k = 0; k < pl->ngaps; k++) {
				const struct gapspec *gk = &pl->gaps[k];
				if (gk->dir != d)
					continue;
				if (gk->off <= x && x < gk->off + gk->len)
					g = k;
				else if (gk->off > x && gk->off < next)
					next = gk->off;
			}
			if (g != SIZE_MAX) {
				/* reported once, where it is first reached */
				uint64_t gend = pl->gaps[g].off + pl->gaps[g].len;
				if (!reported[g])
					tap_gap(t, d, gend - x);
				reported[g] = true;
				x = gend < b ? gend : b;
				continue;
			}
			uint64_t e = next;
			if (pl->maxseg && e - x > pl->maxseg)
				e = x + pl->maxseg;
			tap_data(t, d, c->p + (x - a), e - x);
			x = e;
		}
	}
}

/* ---- looking at records --------------------------------------------- */

static struct jv *rec_by_sid(const struct tap *t, uint32_t sid)
{
	struct jv *found = NULL;
	for (size_t i = 0; i < t->nrec; i++) {
		struct jv *s = j_get(t->rec[i], "stream_id");
		if (s && s->t == J_NUM && s->i == (long long)sid) {
			if (found)
				fail_msg("two records for stream %u", sid);
			found = t->rec[i];
		}
	}
	if (!found)
		fail_msg("no record for stream %u (%zu records)", sid, t->nrec);
	return found;
}

static bool has_anomaly(const struct jv *r, const char *name)
{
	const struct jv *a = j_get(r, "anomalies");
	assert_non_null(a);
	assert_int_equal(a->t, J_ARR);
	for (size_t i = 0; i < a->n; i++)
		if (j_is_str(a->items[i], name))
			return true;
	return false;
}

static size_t n_anomalies(const struct jv *r)
{
	const struct jv *a = j_get(r, "anomalies");
	assert_non_null(a);
	return a->n;
}

static long long jint(const struct jv *r, const char *path)
{
	const struct jv *v = j_path(r, path);
	if (!v || v->t != J_NUM || !v->is_int)
		fail_msg("%s is not an integer", path);
	return v->i;
}

static void expect_str(const struct jv *r, const char *path, const char *s)
{
	const struct jv *v = j_path(r, path);
	if (!j_is_str(v, s))
		fail_msg("%s: want \"%s\", got %s%.*s", path, s,
			 !v ? "(absent)" : v->t == J_NULL ? "null" : "",
			 v && v->t == J_STR ? (int)v->slen : 0,
			 v && v->t == J_STR ? v->s : "");
}

static void expect_null(const struct jv *r, const char *path)
{
	if (!j_is_null(j_path(r, path)))
		fail_msg("%s: want null", path);
}

static void expect_bool(const struct jv *r, const char *path, bool b)
{
	const struct jv *v = j_path(r, path);
	if (!v || v->t != J_BOOL || v->b != b)
		fail_msg("%s: want %s", path, b ? "true" : "false");
}

/* Value of header |name| (k-th occurrence) in list |path|. */
static const struct jv *header(const struct jv *r, const char *path,
			       const char *name, unsigned k)
{
	const struct jv *l = j_path(r, path);
	if (!l || l->t != J_ARR)
		fail_msg("%s is not an array", path);
	for (size_t i = 0; i < l->n; i++) {
		const struct jv *pr = l->items[i];
		if (pr->t != J_ARR || pr->n != 2)
			fail_msg("%s[%zu] is not a pair", path, i);
		if (j_is_str(pr->items[0], name) && k-- == 0)
			return pr->items[1];
	}
	return NULL;
}

static void expect_header(const struct jv *r, const char *path,
			  const char *name, const char *value)
{
	const struct jv *v = header(r, path, name, 0);
	if (!j_is_str(v, value))
		fail_msg("%s: header %s: want \"%s\"", path, name, value);
}

static size_t arr_len(const struct jv *r, const char *path)
{
	const struct jv *v = j_path(r, path);
	if (!v || v->t != J_ARR)
		fail_msg("%s is not an array", path);
	return v->n;
}

/* A complete, exact exchange: every check a clean capture must pass. */
static void expect_clean(const struct jv *r, const char *method,
			 const char *path, long long status,
			 long long req_body, long long resp_body)
{
	expect_str(r, "end", "complete");
	if (n_anomalies(r))
		fail_msg("stream %lld: unexpected anomalies",
			 jint(r, "stream_id"));
	expect_str(r, "request.method", method);
	expect_str(r, "request.path", path);
	expect_str(r, "request.scheme", "http");
	expect_str(r, "request.authority", "example.com");
	assert_int_equal(jint(r, "response.status"), status);
	assert_int_equal(jint(r, "request.body_bytes"), req_body);
	assert_int_equal(jint(r, "response.body_bytes"), resp_body);
	assert_int_equal(jint(r, "request.body_gap_bytes"), 0);
	assert_int_equal(jint(r, "response.body_gap_bytes"), 0);
	expect_bool(r, "request.end_stream", true);
	expect_bool(r, "response.end_stream", true);
	assert_int_equal(arr_len(r, "request.uncertain"), 0);
	assert_int_equal(arr_len(r, "response.uncertain"), 0);
	expect_str(r, "source", "tap");
	expect_str(r, "roles", "sure");
	expect_str(r, "client", "10.0.0.1:40000");
	expect_str(r, "server", "10.0.0.2:8080");
	assert_int_equal(jint(r, "v"), 1);
	const struct jv *id = j_get(r, "id");
	assert_true(id && id->t == J_STR && id->slen == 16);
}

/* Counters every run must keep consistent. */
static void check_invariants(const struct tap *t)
{
	assert_int_equal(CTR(t, h2_exchanges), t->nrec);
	assert_true(CTR(t, h2_exchanges_complete) <= CTR(t, h2_exchanges));
	assert_true(CTR(t, h2_exchanges) <= CTR(t, h2_streams));
	size_t complete = 0;
	for (size_t i = 0; i < t->nrec; i++)
		if (j_is_str(j_get(t->rec[i], "end"), "complete"))
			complete++;
	assert_int_equal(CTR(t, h2_exchanges_complete), complete);
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed);
	return p;
}

/* ==================================================================== */
/* hand-made frames                                                      */
/* ==================================================================== */

static size_t put_hdr(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags,
		      uint32_t sid)
{
	p[0] = (uint8_t)(len >> 16);
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	p[3] = type;
	p[4] = flags;
	p[5] = (uint8_t)(sid >> 24);
	p[6] = (uint8_t)(sid >> 16);
	p[7] = (uint8_t)(sid >> 8);
	p[8] = (uint8_t)sid;
	return 9;
}

static void raw_frame(struct wire *w, unsigned dir, uint8_t type,
		      uint8_t flags, uint32_t sid, const void *payload,
		      size_t len)
{
	uint8_t *b = malloc(9 + len);
	put_hdr(b, (uint32_t)len, type, flags, sid);
	if (len)
		memcpy(b + 9, payload, len);
	wire_add(w, dir, b, 9 + len);
	free(b);
}

/* A hand-made connection: one deflater per direction. */
struct hconv {
	struct wire w;
	nghttp2_hd_deflater *hd[2];
};

static void hconv_init(struct hconv *h, bool preface)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(nghttp2_hd_deflate_new(&h->hd[0], 4096), 0);
	assert_int_equal(nghttp2_hd_deflate_new(&h->hd[1], 4096), 0);
	if (preface) {
		wire_add(&h->w, 0, H2_PREFACE, H2_PREFACE_LEN);
		raw_frame(&h->w, 0, H2_SETTINGS, 0, 0, NULL, 0);
		raw_frame(&h->w, 1, H2_SETTINGS, 0, 0, NULL, 0);
		raw_frame(&h->w, 0, H2_SETTINGS, H2_FLAG_ACK, 0, NULL, 0);
		raw_frame(&h->w, 1, H2_SETTINGS, H2_FLAG_ACK, 0, NULL, 0);
	}
}

static void hconv_fini(struct hconv *h)
{
	nghttp2_hd_deflate_del(h->hd[0]);
	nghttp2_hd_deflate_del(h->hd[1]);
	wire_free(&h->w);
}

static size_t hblock(struct hconv *h, unsigned dir, const nghttp2_nv *nv,
		     size_t n, uint8_t *out, size_t cap)
{
	ssize_t k = nghttp2_hd_deflate_hd(h->hd[dir], out, cap, nv, n);
	assert_true(k >= 0);
	return (size_t)k;
}

/* HEADERS with an HPACK block of |nv| (END_HEADERS; |flags| added). */
static void hheaders(struct hconv *h, unsigned dir, uint32_t sid,
		     uint8_t flags, const nghttp2_nv *nv, size_t n)
{
	static uint8_t blk[1 << 20];
	size_t k = hblock(h, dir, nv, n, blk, sizeof(blk));
	size_t off = 0;
	do { /* frames of at most 16384 bytes: HEADERS, CONTINUATION... */
		size_t m = k - off > H2_DEFAULT_MAX_FRAME ? H2_DEFAULT_MAX_FRAME
							: k - off;
		bool last = off + m == k;
		raw_frame(&h->w, dir, off ? H2_CONTINUATION : H2_HEADERS,
			  (uint8_t)((off ? 0 : flags) |
				    (last ? H2_FLAG_END_HEADERS : 0)),
			  sid, blk + off, m);
		off += m;
	} while (off < k);
}

static void hrequest(struct hconv *h, uint32_t sid, const char *path,
		     bool end_stream)
{
	nghttp2_nv nv[] = { NVS(":method", "GET"), NVS(":path", path),
			    NVS(":scheme", "http"),
			    NVS(":authority", "example.com") };
	hheaders(h, 0, sid, end_stream ? H2_FLAG_END_STREAM : 0, nv, 4);
}

static void hresponse(struct hconv *h, uint32_t sid, const char *status,
		      bool end_stream)
{
	nghttp2_nv nv[] = { NVS(":status", status) };
	hheaders(h, 1, sid, end_stream ? H2_FLAG_END_STREAM : 0, nv, 1);
}

/* ==================================================================== */
/* clean traffic                                                         */
/* ==================================================================== */

/* Preface, a GET and a POST with bodies both ways, in pieces of every
 * size from as sent down to 1 byte: records are exact and identical. */
static void test_get_post(void **state)
{
	(void)state;
	static const size_t segs[] = { 0, 1448, 100, 9, 1 };
	char *first[2] = { NULL, NULL };
	for (size_t si = 0; si < sizeof(segs) / sizeof(segs[0]); si++) {
		struct conv cv;
		conv_init(&cv, 0, true);
		uint8_t *post = pattern(1000, 1), *r1 = pattern(5000, 2),
			*r2 = pattern(20000, 3);
		struct body bpost = { post, 1000, 0, 0, NULL, 0 };
		struct body b1 = { r1, 5000, 0, 0, NULL, 0 };
		struct body b2 = { r2, 20000, 0, 0, NULL, 0 };
		nghttp2_nv ua[] = { NVS("user-agent", "nghttp2/1.52.0"),
				    NVS("accept", "*/*") };
		int32_t s1 = conv_request(&cv, "GET", "/small", NULL, ua, 2);
		conv_pump(&cv);
		nghttp2_nv ct[] = { NVS("content-length", "5000") };
		conv_respond(&cv, s1, "200", &b1, ct, 1);
		conv_pump(&cv);
		int32_t s2 = conv_request(&cv, "POST", "/upload", &bpost, ua, 2);
		conv_pump(&cv);
		conv_respond(&cv, s2, "201", &b2, NULL, 0);
		conv_pump(&cv);
		assert_int_equal(s1, 1);
		assert_int_equal(s2, 3);

		struct tap *t = tap_new();
		struct plan pl = { .maxseg = segs[si] };
		tap_play(t, &cv.w, &pl);
		assert_int_equal(t->nrec, 2);
		tap_end(t, REASM_END_FIN);
		assert_int_equal(t->nrec, 2);
		const struct jv *a = rec_by_sid(t, 1), *b = rec_by_sid(t, 3);
		expect_clean(a, "GET", "/small", 200, 0, 5000);
		expect_clean(b, "POST", "/upload", 201, 1000, 20000);
		expect_header(a, "request.headers", "user-agent",
			      "nghttp2/1.52.0");
		expect_header(a, "request.headers", ":method", "GET");
		expect_header(a, "response.headers", "content-length", "5000");
		assert_int_equal(arr_len(a, "request.headers"), 6);
		assert_int_equal(arr_len(a, "request.trailers"), 0);
		assert_int_equal(arr_len(a, "response.informational"), 0);
		assert_null(j_get(a, "promised_by"));
		assert_null(j_get(a, "rst_code"));
		assert_null(j_get(a, "request.grpc_messages"));
		assert_true(jint(a, "first_ts_ns") >= (long long)TS0);
		assert_true(jint(a, "last_ts_ns") >= jint(a, "first_ts_ns"));
		{ /* ts is first_ts_ns in ISO 8601 with microseconds */
			long long ns = jint(a, "first_ts_ns");
			time_t sec = (time_t)(ns / 1000000000);
			struct tm tm;
			char want[64], d[32];
			gmtime_r(&sec, &tm);
			strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
			snprintf(want, sizeof(want), "%s.%06lldZ", d,
				 ns % 1000000000 / 1000);
			expect_str(a, "ts", want);
			assert_true(strncmp(want, "2026-11-23T01:57:34.8", 21) ==
				    0);
		}
		/* the same bytes cut differently give the same records,
		 * timestamps aside */
		for (int k = 0; k < 2; k++) {
			const char *raw = t->raw[k];
			const char *cut = strstr(raw, "\"client\"");
			if (!first[k])
				first[k] = strdup(cut);
			else
				assert_string_equal(first[k], cut);
		}
		/* counters */
		assert_int_equal(CTR(t, h2_conns), 1);
		assert_int_equal(CTR(t, h2_conns_preface), 1);
		assert_int_equal(CTR(t, h2_conns_midstream), 0);
		assert_int_equal(CTR(t, h2_streams), 2);
		assert_int_equal(CTR(t, h2_exchanges), 2);
		assert_int_equal(CTR(t, h2_exchanges_complete), 2);
		assert_int_equal(CTR(t, h2_exchanges_anomalous), 0);
		assert_int_equal(CTR(t, h2_header_blocks), 4);
		assert_int_equal(CTR(t, h2_frame_errors), 0);
		assert_int_equal(CTR(t, h2_resyncs), 0);
		assert_int_equal(CTR(t, h2_hpack_errors), 0);
		assert_int_equal(CTR(t, h2_hpack_primed), 0);
		assert_int_equal(CTR(t, h2_orphan_frames), 0);
		assert_int_equal(CTR(t, h2_records_dropped), 0);
		struct wframe fr[256];
		size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, fr, 256);
		size_t n1 = wire_frames(&cv.w, 1, 0, fr, 256);
		assert_int_equal(CTR(t, h2_frames), n0 + n1);
		check_invariants(t);
		tap_free(t);
		conv_fini(&cv);
		free(post), free(r1), free(r2);
	}
	free(first[0]), free(first[1]);
}

/* Ten streams open at once, answered in reverse order with bodies whose
 * DATA frames interleave. */
static void test_multiplexed(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	enum { N = 10 };
	int32_t id[N];
	char path[N][16];
	uint8_t *bodies[N];
	struct body b[N];
	for (int i = 0; i < N; i++) {
		snprintf(path[i], sizeof(path[i]), "/item/%d", i);
		id[i] = conv_request(&cv, "GET", path[i], NULL, NULL, 0);
	}
	conv_pump(&cv);
	for (int i = N - 1; i >= 0; i--) {
		size_t len = 3000u * (unsigned)(i + 1);
		bodies[i] = pattern(len, (unsigned)i);
		b[i] = (struct body){ bodies[i], len, 0, 1000, NULL, 0 };
		conv_respond(&cv, id[i], "200", &b[i], NULL, 0);
	}
	conv_pump(&cv);
	struct tap *t = tap_new();
	tap_play(t, &cv.w, NULL);
	assert_int_equal(t->nrec, N);
	for (int i = 0; i < N; i++)
		expect_clean(rec_by_sid(t, (uint32_t)id[i]), "GET", path[i],
			     200, 0, 3000 * (i + 1));
	/* sequence numbers make every id distinct */
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			assert_string_not_equal(
				j_get(t->rec[i], "id")->s,
				j_get(t->rec[j], "id")->s);
	assert_int_equal(CTR(t, h2_streams), N);
	assert_int_equal(CTR(t, h2_exchanges_complete), N);
	check_invariants(t);
	tap_free(t);
	for (int i = 0; i < N; i++)
		free(bodies[i]);
	conv_fini(&cv);
}

/* Trailers on both sides (gRPC style on the response). */
static void test_trailers(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	uint8_t *q = pattern(300, 4), *r = pattern(700, 5);
	nghttp2_nv qtr[] = { NVS("x-checksum", "abc123") };
	nghttp2_nv rtr[] = { NVS("grpc-status", "0"),
			     NVS("grpc-message", "OK") };
	struct body bq = { q, 300, 0, 0, qtr, 1 };
	struct body br = { r, 700, 0, 0, rtr, 2 };
	nghttp2_nv te[] = { NVS("te", "trailers") };
	int32_t id = conv_request(&cv, "POST", "/t", &bq, te, 1);
	conv_pump(&cv);
	conv_respond(&cv, id, "200", &br, NULL, 0);
	conv_pump(&cv);
	struct tap *t = tap_new();
	tap_play(t, &cv.w, NULL);
	assert_int_equal(t->nrec, 1);
	const struct jv *x = t->rec[0];
	expect_clean(x, "POST", "/t", 200, 300, 700);
	assert_int_equal(arr_len(x, "request.trailers"), 1);
	expect_header(x, "request.trailers", "x-checksum", "abc123");
	assert_int_equal(arr_len(x, "response.trailers"), 2);
	expect_header(x, "response.trailers", "grpc-status", "0");
	expect_header(x, "response.trailers", "grpc-message", "OK");
	/* trailers are not in the header lists */
	assert_null(header(x, "response.headers", "grpc-status", 0));
	assert_null(header(x, "request.headers", "x-checksum", 0));
	assert_int_equal(CTR(t, h2_header_blocks), 4);
	check_invariants(t);
	tap_free(t);
	free(q), free(r);
	conv_fini(&cv);
}

/* 103 Early Hints and 100 Continue, then the final response. */
static void test_informational(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	uint8_t *r = pattern(10, 6);
	struct body br = { r, 10, 0, 0, NULL, 0 };
	int32_t id = conv_request(&cv, "GET", "/hints", NULL, NULL, 0);
	conv_pump(&cv);
	nghttp2_nv h103[] = { NVS(":status", "103"),
			      NVS("link", "</style.css>; rel=preload") };
	nghttp2_nv h100[] = { NVS(":status", "100") };
	assert_int_equal(nghttp2_submit_headers(cv.s[1], NGHTTP2_FLAG_NONE,
						id, NULL, h103, 2, NULL),
			 0);
	conv_pump(&cv);
	assert_int_equal(nghttp2_submit_headers(cv.s[1], NGHTTP2_FLAG_NONE,
						id, NULL, h100, 1, NULL),
			 0);
	conv_pump(&cv);
	conv_respond(&cv, id, "200", &br, NULL, 0);
	conv_pump(&cv);
	struct tap *t = tap_new();
	tap_play(t, &cv.w, NULL);
	assert_int_equal(t->nrec, 1);
	const struct jv *x = t->rec[0];
	expect_clean(x, "GET", "/hints", 200, 0, 10);
	const struct jv *info = j_path(x, "response.informational");
	assert_int_equal(info->n, 2);
	const struct jv *i0 = info->items[0], *i1 = info->items[1];
	assert_int_equal(i0->n, 2);
	assert_true(j_is_str(i0->items[0]->items[0], ":status"));
	assert_true(j_is_str(i0->items[0]->items[1], "103"));
	assert_true(j_is_str(i0->items[1]->items[0], "link"));
	assert_true(j_is_str(i0->items[1]->items[1],
			     "</style.css>; rel=preload"));
	assert_int_equal(i1->n, 1);
	assert_true(j_is_str(i1->items[0]->items[1], "100"));
	/* the final header list has only the final response */
	assert_int_equal(arr_len(x, "response.headers"), 1);
	expect_header(x, "response.headers", ":status", "200");
	check_invariants(t);
	tap_free(t);
	free(r);
	conv_fini(&cv);
}

/* A header list larger than one frame: HEADERS + CONTINUATION (both
 * directions), with the analyzer fed 1 byte at a time too. */
static void test_continuation(void **state)
{
	(void)state;
	for (int seg = 0; seg < 2; seg++) {
		struct conv cv;
		conv_init(&cv, 0, true);
		char *big = malloc(40001);
		for (int i = 0; i < 40000; i++)
			big[i] = (char)('a' + i % 26);
		big[40000] = 0;
		nghttp2_nv x[] = { { (uint8_t *)"x-big", (uint8_t *)big, 5,
				     40000, NGHTTP2_NV_FLAG_NO_INDEX },
				   NVS("x-after", "after") };
		int32_t id = conv_request(&cv, "GET", "/c", NULL, x, 2);
		conv_pump(&cv);
		conv_respond(&cv, id, "200", NULL, x, 2);
		conv_pump(&cv);
		struct wframe fr[64];
		size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, fr, 64);
		assert_non_null(find_frame(fr, n0, H2_CONTINUATION, 1, 0));
		const struct wframe *h = find_frame(fr, n0, H2_HEADERS, 1, 0);
		assert_false(h->h.flags & H2_FLAG_END_HEADERS);
		struct tap *t = tap_new();
		struct plan pl = { .maxseg = seg ? 1 : 0 };
		tap_play(t, &cv.w, &pl);
		assert_int_equal(t->nrec, 1);
		const struct jv *r = t->rec[0];
		expect_clean(r, "GET", "/c", 200, 0, 0);
		expect_header(r, "request.headers", "x-big", big);
		expect_header(r, "request.headers", "x-after", "after");
		expect_header(r, "response.headers", "x-big", big);
		assert_int_equal(CTR(t, h2_header_blocks), 2);
		assert_int_equal(CTR(t, h2_frame_errors), 0);
		check_invariants(t);
		tap_free(t);
		free(big);
		conv_fini(&cv);
	}
}

/* Padding on DATA and HEADERS (nghttp2 pads every frame it can). */
static void test_padding(void **state)
{
	(void)state;
	static const size_t pads[] = { 1, 7, 200, 255 };
	for (size_t pi = 0; pi < sizeof(pads) / sizeof(pads[0]); pi++) {
		struct conv cv;
		conv_init(&cv, pads[pi], true);
		uint8_t *q = pattern(5000, 7), *r = pattern(30000, 8);
		struct body bq = { q, 5000, 0, 999, NULL, 0 };
		/* frames below the maximum, so nghttp2 has room to pad */
		struct body br = { r, 30000, 0, 4000, NULL, 0 };
		int32_t id = conv_request(&cv, "PUT", "/pad", &bq, NULL, 0);
		conv_pump(&cv);
		conv_respond(&cv, id, "200", &br, NULL, 0);
		conv_pump(&cv);
		struct wframe fr[256];
		size_t n1 = wire_frames(&cv.w, 1, 0, fr, 256);
		const struct wframe *d = find_frame(fr, n1, H2_DATA, 1, 0);
		const struct wframe *h = find_frame(fr, n1, H2_HEADERS, 1, 0);
		assert_true(d->h.flags & H2_FLAG_PADDED);
		assert_true(h->h.flags & H2_FLAG_PADDED);
		struct tap *t = tap_new();
		tap_play(t, &cv.w, NULL);
		assert_int_equal(t->nrec, 1);
		expect_clean(t->rec[0], "PUT", "/pad", 200, 5000, 30000);
		assert_int_equal(CTR(t, h2_frame_errors), 0);
		tap_free(t);
		/* 1-byte pieces: the pad length byte alone in a piece */
		t = tap_new();
		struct plan pl = { .maxseg = 1 };
		tap_play(t, &cv.w, &pl);
		assert_int_equal(t->nrec, 1);
		expect_clean(t->rec[0], "PUT", "/pad", 200, 5000, 30000);
		tap_free(t);
		free(q), free(r);
		conv_fini(&cv);
	}
}

/* HEADERS with the PRIORITY flag (5 bytes before the block). */
static void test_priority_flag(void **state)
{
	(void)state;
	for (int padded = 0; padded < 2; padded++) {
		struct conv cv;
		conv_init(&cv, padded ? 10 : 0, true);
		nghttp2_priority_spec ps;
		nghttp2_priority_spec_init(&ps, 0, 200, 1);
		nghttp2_nv nv[] = { NVS(":method", "GET"), NVS(":path", "/p"),
				    NVS(":scheme", "http"),
				    NVS(":authority", "example.com") };
		int32_t id = nghttp2_submit_request(cv.s[0], &ps, nv, 4, NULL,
						    NULL);
		assert_true(id > 0);
		conv_pump(&cv);
		/* PRIORITY frame too */
		nghttp2_priority_spec_init(&ps, 0, 16, 0);
		assert_int_equal(nghttp2_submit_priority(cv.s[0],
							 NGHTTP2_FLAG_NONE, id,
							 &ps),
				 0);
		conv_respond(&cv, id, "204", NULL, NULL, 0);
		conv_pump(&cv);
		struct wframe fr[64];
		size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, fr, 64);
		const struct wframe *h = find_frame(fr, n0, H2_HEADERS, 1, 0);
		assert_non_null(h);
		assert_true(h->h.flags & H2_FLAG_PRIORITY);
		struct tap *t = tap_new();
		tap_play(t, &cv.w, NULL);
		assert_int_equal(t->nrec, 1);
		expect_clean(t->rec[0], "GET", "/p", 204, 0, 0);
		assert_int_equal(CTR(t, h2_frame_errors), 0);
		tap_free(t);
		conv_fini(&cv);
	}
}

/* Server push: the promised stream's request comes from the
 * PUSH_PROMISE, promised_by names the stream it came on. */
static void test_push_promise(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	uint8_t *r = pattern(100, 9), *pr = pattern(2000, 10);
	struct body br = { r, 100, 0, 0, NULL, 0 };
	struct body bp = { pr, 2000, 0, 0, NULL, 0 };
	int32_t id = conv_request(&cv, "GET", "/index.html", NULL, NULL, 0);
	conv_pump(&cv);
	nghttp2_nv pnv[] = { NVS(":method", "GET"), NVS(":path", "/style.css"),
			     NVS(":scheme", "http"),
			     NVS(":authority", "example.com") };
	int32_t pid = nghttp2_submit_push_promise(cv.s[1], NGHTTP2_FLAG_NONE,
						  id, pnv, 4, NULL);
	assert_int_equal(pid, 2);
	conv_respond(&cv, id, "200", &br, NULL, 0);
	nghttp2_nv ct[] = { NVS("content-type", "text/css") };
	conv_respond(&cv, pid, "200", &bp, ct, 1);
	conv_pump(&cv);
	struct tap *t = tap_new();
	tap_play(t, &cv.w, NULL);
	assert_int_equal(t->nrec, 2);
	const struct jv *a = rec_by_sid(t, 1), *p = rec_by_sid(t, 2);
	expect_clean(a, "GET", "/index.html", 200, 0, 100);
	expect_clean(p, "GET", "/style.css", 200, 0, 2000);
	assert_int_equal(jint(p, "promised_by"), 1);
	expect_header(p, "request.headers", ":path", "/style.css");
	expect_header(p, "response.headers", "content-type", "text/css");
	assert_null(j_get(a, "promised_by"));
	check_invariants(t);
	tap_free(t);
	free(r), free(pr);
	conv_fini(&cv);
}

/* RST_STREAM from either side. */
static void test_rst_stream(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	uint8_t *r = pattern(100000, 11);
	struct body br = { r, 100000, 0, 0, NULL, 0 };
	int32_t a = conv_request(&cv, "GET", "/cancelled", NULL, NULL, 0);
	int32_t b = conv_request(&cv, "GET", "/refused", NULL, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", &br, NULL, 0);
	conv_send(&cv, 1); /* response headers and the first window */
	assert_int_equal(nghttp2_submit_rst_stream(cv.s[0], NGHTTP2_FLAG_NONE,
						   a, NGHTTP2_CANCEL),
			 0);
	assert_int_equal(nghttp2_submit_rst_stream(cv.s[1], NGHTTP2_FLAG_NONE,
						   b, NGHTTP2_REFUSED_STREAM),
			 0);
	conv_pump(&cv);
	struct tap *t = tap_new();
	tap_play(t, &cv.w, NULL);
	assert_int_equal(t->nrec, 2);
	const struct jv *x = rec_by_sid(t, (uint32_t)a);
	expect_str(x, "end", "reset");
	assert_int_equal(jint(x, "rst_code"), NGHTTP2_CANCEL);
	expect_str(x, "rst_by", "client");
	assert_int_equal(jint(x, "response.status"), 200);
	assert_true(jint(x, "response.body_bytes") > 0);
	expect_bool(x, "response.end_stream", false);
	const struct jv *y = rec_by_sid(t, (uint32_t)b);
	expect_str(y, "end", "reset");
	assert_int_equal(jint(y, "rst_code"), NGHTTP2_REFUSED_STREAM);
	expect_str(y, "rst_by", "server");
	expect_null(y, "response.status");
	/* no response was due after a reset: not "missed" */
	assert_false(has_anomaly(y, "response_headers_missed"));
	assert_int_equal(CTR(t, h2_exchanges_reset), 2);
	check_invariants(t);
	tap_free(t);
	free(r);
	conv_fini(&cv);
}

/* GOAWAY: a server's refuses client streams above its last stream id; a
 * client's refuses only pushed streams, never client streams. */
static void test_goaway(void **state)
{
	(void)state;
	/* server GOAWAY(last = 1) with 1, 3, 5 open */
	struct conv cv;
	conv_init(&cv, 0, true);
	int32_t s1 = conv_request(&cv, "GET", "/1", NULL, NULL, 0);
	int32_t s3 = conv_request(&cv, "GET", "/3", NULL, NULL, 0);
	int32_t s5 = conv_request(&cv, "GET", "/5", NULL, NULL, 0);
	conv_pump(&cv);
	assert_int_equal(nghttp2_submit_goaway(cv.s[1], NGHTTP2_FLAG_NONE, s1,
					       NGHTTP2_NO_ERROR, NULL, 0),
			 0);
	conv_respond(&cv, s1, "200", NULL, NULL, 0);
	conv_pump(&cv);
	struct tap *t = tap_new();
	tap_play(t, &cv.w, NULL);
	assert_int_equal(t->nrec, 3);
	expect_clean(rec_by_sid(t, (uint32_t)s1), "GET", "/1", 200, 0, 0);
	for (int32_t s = s3; s <= s5; s += 2) {
		const struct jv *x = rec_by_sid(t, (uint32_t)s);
		expect_str(x, "end", "refused_by_goaway");
		assert_false(has_anomaly(x, "response_headers_missed"));
		assert_null(j_get(x, "rst_code"));
	}
	check_invariants(t);
	tap_free(t);
	conv_fini(&cv);

	/* client GOAWAY(last = 0) with client streams 1, 3 and pushed 2
	 * open: only 2 is refused; 1 and 3 complete afterwards */
	conv_init(&cv, 0, true);
	s1 = conv_request(&cv, "GET", "/a", NULL, NULL, 0);
	s3 = conv_request(&cv, "GET", "/b", NULL, NULL, 0);
	conv_pump(&cv);
	nghttp2_nv pnv[] = { NVS(":method", "GET"), NVS(":path", "/pushed"),
			     NVS(":scheme", "http"),
			     NVS(":authority", "example.com") };
	int32_t p2 = nghttp2_submit_push_promise(cv.s[1], NGHTTP2_FLAG_NONE,
						 s1, pnv, 4, NULL);
	assert_int_equal(p2, 2);
	conv_pump(&cv);
	assert_int_equal(nghttp2_submit_goaway(cv.s[0], NGHTTP2_FLAG_NONE, 0,
					       NGHTTP2_NO_ERROR, NULL, 0),
			 0);
	conv_pump(&cv);
	conv_respond(&cv, s1, "200", NULL, NULL, 0);
	conv_respond(&cv, s3, "200", NULL, NULL, 0);
	conv_pump(&cv);
	t = tap_new();
	tap_play(t, &cv.w, NULL);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 3);
	expect_clean(rec_by_sid(t, 1), "GET", "/a", 200, 0, 0);
	expect_clean(rec_by_sid(t, 3), "GET", "/b", 200, 0, 0);
	const struct jv *x = rec_by_sid(t, 2);
	expect_str(x, "end", "refused_by_goaway");
	assert_int_equal(jint(x, "promised_by"), 1);
	expect_str(x, "request.path", "/pushed");
	check_invariants(t);
	tap_free(t);
	conv_fini(&cv);

	/* a stream still open when the connection closes after a GOAWAY */
	conv_init(&cv, 0, true);
	s1 = conv_request(&cv, "GET", "/slow", NULL, NULL, 0);
	conv_pump(&cv);
	assert_int_equal(nghttp2_submit_goaway(cv.s[1], NGHTTP2_FLAG_NONE, s1,
					       NGHTTP2_NO_ERROR, NULL, 0),
			 0);
	conv_respond(&cv, s1, "200", NULL, NULL, 0);
	conv_pump(&cv);
	/* keep the response from the tap: the stream stays open */
	t = tap_new();
	struct wframe fr[64];
	size_t n1 = wire_frames(&cv.w, 1, 0, fr, 64);
	const struct wframe *h = find_frame(fr, n1, H2_HEADERS, 1, 0);
	/* deliver server bytes only up to the response HEADERS */
	tap_data(t, 0, cv.w.all[0], cv.w.len[0]);
	tap_data(t, 1, cv.w.all[1], h->off);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 1);
	x = t->rec[0];
	expect_str(x, "end", "goaway");
	assert_true(has_anomaly(x, "response_headers_missed"));
	tap_free(t);
	conv_fini(&cv);
}

/* Connection ends: how each reasm end maps onto open streams. */
static void test_connection_end(void **state)
{
	(void)state;
	static const struct {
		enum reasm_end how;
		const char *end;
	} rows[] = {
		{ REASM_END_FIN, "connection_closed" },
		{ REASM_END_RST, "connection_reset" },
		{ REASM_END_TIMEOUT, "timeout" },
		{ REASM_END_EVICTED, "evicted" },
		{ REASM_END_SHUTDOWN, "shutdown" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct conv cv;
		conv_init(&cv, 0, true);
		conv_request(&cv, "GET", "/open", NULL, NULL, 0);
		conv_pump(&cv);
		struct tap *t = tap_new();
		tap_play(t, &cv.w, NULL);
		assert_int_equal(t->nrec, 0);
		tap_end(t, rows[i].how);
		assert_int_equal(t->nrec, 1);
		expect_str(t->rec[0], "end", rows[i].end);
		assert_true(has_anomaly(t->rec[0], "response_headers_missed"));
		expect_str(t->rec[0], "request.path", "/open");
		expect_bool(t->rec[0], "request.end_stream", true);
		expect_bool(t->rec[0], "response.end_stream", false);
		tap_free(t);
		conv_fini(&cv);
	}
}

/* h2c: HTTP/1.1 Upgrade + 101, stream 1 is the upgrade request. */
static void test_h2c_upgrade(void **state)
{
	(void)state;
	for (int with_body = 0; with_body < 2; with_body++) {
		struct conv cv;
		conv_init(&cv, 0, false);
		uint8_t sp[64];
		nghttp2_settings_entry iv[] = {
			{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 },
		};
		ssize_t spl = nghttp2_pack_settings_payload(sp, sizeof(sp), iv,
							    1);
		assert_true(spl > 0);
		char req[512];
		int n = snprintf(req, sizeof(req),
				 "%s /up?x=1 HTTP/1.1\r\n"
				 "Host: example.com:8080\r\n"
				 "Connection: Upgrade, HTTP2-Settings\r\n"
				 "Upgrade: h2c\r\n"
				 "HTTP2-Settings: AAMAAABk\r\n"
				 "%s\r\n%s",
				 with_body ? "POST" : "GET",
				 with_body ? "Content-Length: 11\r\n" : "",
				 with_body ? "hello world" : "");
		wire_add(&cv.w, 0, req, (size_t)n);
		assert_int_equal(nghttp2_session_upgrade2(cv.s[0], sp,
							  (size_t)spl, 0, NULL),
				 0);
		assert_int_equal(nghttp2_session_upgrade2(cv.s[1], sp,
							  (size_t)spl, 0, NULL),
				 0);
		static const char r101[] =
			"HTTP/1.1 101 Switching Protocols\r\n"
			"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
		wire_add(&cv.w, 1, r101, sizeof(r101) - 1);
		assert_int_equal(nghttp2_submit_settings(cv.s[1],
							 NGHTTP2_FLAG_NONE,
							 NULL, 0),
				 0);
		uint8_t *r = pattern(3000, 12);
		struct body br = { r, 3000, 0, 0, NULL, 0 };
		conv_respond(&cv, 1, "200", &br, NULL, 0);
		conv_pump(&cv);
		/* and a second, ordinary stream on the upgraded connection */
		int32_t s3 = conv_request(&cv, "GET", "/next", NULL, NULL, 0);
		conv_pump(&cv);
		conv_respond(&cv, s3, "200", NULL, NULL, 0);
		conv_pump(&cv);
		struct tap *t = tap_new();
		tap_play(t, &cv.w, NULL);
		tap_end(t, REASM_END_FIN);
		assert_int_equal(t->nrec, 2);
		const struct jv *x = rec_by_sid(t, 1);
		expect_str(x, "end", "complete");
		expect_str(x, "request.method", with_body ? "POST" : "GET");
		expect_str(x, "request.path", "/up?x=1");
		expect_str(x, "request.authority", "example.com:8080");
		expect_str(x, "request.scheme", "http");
		assert_int_equal(jint(x, "request.body_bytes"),
				 with_body ? 11 : 0);
		assert_int_equal(jint(x, "response.status"), 200);
		assert_int_equal(jint(x, "response.body_bytes"), 3000);
		expect_str(x, "roles", "sure");
		assert_int_equal(n_anomalies(x), 0);
		expect_clean(rec_by_sid(t, 3), "GET", "/next", 200, 0, 0);
		assert_int_equal(CTR(t, h2_conns_upgrade), 1);
		assert_int_equal(CTR(t, h2_conns_preface), 1);
		assert_int_equal(CTR(t, h2_frame_errors), 0);
		assert_int_equal(CTR(t, h2_conns_not_h2), 0);
		check_invariants(t);
		tap_free(t);
		free(r);
		conv_fini(&cv);
	}
}

/* Not HTTP/2: TLS, HTTP/1.1 without upgrade, a refused upgrade. */
static void test_not_h2(void **state)
{
	(void)state;
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0x2f, 0x01,
					 0x00, 0x00, 0x2b, 0x03, 0x03, 0xaa };
	static const char h1[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char h1resp[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	static const char up[] = "GET / HTTP/1.1\r\nHost: x\r\n"
				 "Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
	static const char post[] = "POST /form HTTP/1.1\r\nHost: x\r\n"
				   "Content-Length: 3\r\n\r\nabc";
	struct {
		const char *what;
		const void *c;
		size_t clen;
		const void *s;
		size_t slen;
		enum st_counter ctr;
	} rows[] = {
		{ "tls", hello, sizeof(hello), hello, sizeof(hello),
		  ST_CTR_h2_conns_tls },
		{ "http/1.1", h1, sizeof(h1) - 1, h1resp, sizeof(h1resp) - 1,
		  ST_CTR_h2_conns_not_h2 },
		{ "upgrade refused", up, sizeof(up) - 1, h1resp,
		  sizeof(h1resp) - 1, ST_CTR_h2_conns_not_h2 },
		/* 'P' must not be taken for the start of the preface */
		{ "http/1.1 POST", post, sizeof(post) - 1, h1resp,
		  sizeof(h1resp) - 1, ST_CTR_h2_conns_not_h2 },
	};
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tap *t = tap_new();
		tap_data(t, 0, rows[i].c, rows[i].clen);
		tap_data(t, 1, rows[i].s, rows[i].slen);
		/* more bytes afterwards are ignored */
		tap_data(t, 0, (const uint8_t *)H2_PREFACE, H2_PREFACE_LEN);
		tap_end(t, REASM_END_FIN);
		bool ok = t->nrec == 0 && ctr(t, rows[i].ctr) == 1 &&
			  CTR(t, h2_conns) == 1 && CTR(t, h2_frames) == 0 &&
			  CTR(t, h2_frame_errors) == 0 &&
			  CTR(t, h2_resyncs) == 0 &&
			  /* an upgrade request opens stream 1 until the
			   * answer refuses it; then it goes unrecorded */
			  CTR(t, h2_streams) ==
				  (strcmp(rows[i].what, "upgrade refused") ? 0u
									   : 1u);
		if (!ok) {
			print_error("not-h2 row \"%s\": %zu records, %s %llu, "
				    "frame_errors %llu, resyncs %llu, streams "
				    "%llu\n",
				    rows[i].what, t->nrec,
				    counters_name(rows[i].ctr),
				    (unsigned long long)ctr(t, rows[i].ctr),
				    (unsigned long long)CTR(t, h2_frame_errors),
				    (unsigned long long)CTR(t, h2_resyncs),
				    (unsigned long long)CTR(t, h2_streams));
			bad++;
		}
		tap_free(t);
	}
	if (bad)
		fail_msg("%u rows failed", bad);
}

/* ==================================================================== */
/* mid-stream joins and gaps                                             */
/* ==================================================================== */

/* A long connection: |n| exchanges, each request carrying a session
 * header (indexed once, then referred to), a per-request header and a
 * response with a body. Returns the wire in |cv|. */
static void make_long_conn(struct conv *cv, int n, size_t body,
			   uint8_t **bodies, size_t req_body)
{
	conv_init(cv, 0, true);
	uint8_t *q = req_body ? pattern(req_body, 99) : NULL;
	for (int i = 0; i < n; i++) {
		char path[32], rid[32];
		snprintf(path, sizeof(path), "/r/%d", i);
		snprintf(rid, sizeof(rid), "req-%06d", i);
		nghttp2_nv x[] = { NVS("x-session", "s3ss10n-t0k3n-abcdef"),
				   NVS("x-request-id", rid),
				   NVS("user-agent", "test-agent/1.0") };
		struct body *b = NULL, qb = { q, req_body, 0, 0, NULL, 0 };
		int32_t id = conv_request(cv, req_body ? "POST" : "GET", path,
					  req_body ? &qb : NULL, x, 3);
		conv_pump(cv);
		bodies[i] = pattern(body, (unsigned)i);
		b = malloc(sizeof(*b));
		*b = (struct body){ bodies[i], body, 0, 0, NULL, 0 };
		nghttp2_nv rh[] = { NVS("server", "test-server"),
				    NVS("x-served-by", "node-7") };
		conv_respond(cv, id, "200", b, rh, 2);
		conv_pump(cv);
		free(b);
	}
	free(q);
}

static void free_bodies(uint8_t **b, int n)
{
	for (int i = 0; i < n; i++)
		free(b[i]);
}

/* Joined mid-way (no SYN, roles guessed): records say midstream, fields
 * from unseen table entries are null and listed as uncertain, everything
 * else exact. |req_body| 0: GET only, so the client direction carries
 * nothing but small HEADERS frames. */
static void midstream_join(size_t req_body)
{
	enum { N = 20 };
	uint8_t *bodies[N];
	struct conv cv;
	make_long_conn(&cv, N, 3000, bodies, req_body);
	struct wframe f0[512], f1[512];
	size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, f0, 512);
	size_t n1 = wire_frames(&cv.w, 1, 0, f1, 512);
	/* join 3 bytes into the 10th request's HEADERS (stream 19) and
	 * inside a DATA frame of the 9th response (stream 17) */
	const struct wframe *h = find_frame(f0, n0, H2_HEADERS, 19, 0);
	const struct wframe *d = find_frame(f1, n1, H2_DATA, 17, 0);
	assert_non_null(h);
	assert_non_null(d);
	for (int guess = 0; guess < 2; guess++) {
		struct tap *t = tap_new();
		/* guess 0: right (lower port is the server); 1: wrong */
		tap_init_flow(t, 0, guess ? 1 : 0, false);
		struct plan pl = { .start = { h->off + 3, d->off + 100 } };
		tap_play(t, &cv.w, &pl);
		tap_end(t, REASM_END_FIN);
		/* stream 17: joined inside its DATA, nothing to record;
		 * 19: request headers lost, response seen; 21..39: whole */
		assert_int_equal(t->nrec, 11);
		for (uint32_t sid = 21; sid <= 2 * N - 1; sid += 2) {
			const struct jv *r = rec_by_sid(t, sid);
			char path[32];
			snprintf(path, sizeof(path), "/r/%u", (sid - 1) / 2);
			expect_str(r, "end", "complete");
			assert_true(has_anomaly(r, "midstream"));
			expect_str(r, "request.method",
				   req_body ? "POST" : "GET");
			assert_int_equal(jint(r, "request.body_bytes"),
					 (long long)req_body);
			expect_str(r, "request.path", path);
			expect_str(r, "roles", "sure");
			expect_str(r, "client", "10.0.0.1:40000");
			assert_int_equal(jint(r, "response.status"), 200);
			assert_int_equal(jint(r, "response.body_bytes"), 3000);
			/* x-session (and the repeated :authority, scheme...)
			 * were indexed before the join */
			const struct jv *u = j_path(r, "request.uncertain");
			if (sid == 21) {
				assert_true(u->n > 0);
				assert_true(has_anomaly(r, "uncertain_headers"));
				const struct jv *hl =
					j_path(r, "request.headers");
				for (size_t k = 0; k < u->n; k++) {
					long long ix = u->items[k]->i;
					assert_true(ix >= 0 &&
						    (size_t)ix < hl->n);
					const struct jv *pr = hl->items[ix];
					assert_true(j_is_null(pr->items[0]));
				}
			}
			/* literal values are exact; after a name from a
			 * placeholder (x-request-id was indexed before the
			 * join) only their length is written, since the
			 * unknown name might be a credential */
			char rid[32];
			snprintf(rid, sizeof(rid), "req-%06u", (sid - 1) / 2);
			const struct jv *hl0 = j_path(r, "request.headers");
			bool found = false;
			for (size_t k = 0; k < hl0->n; k++) {
				const struct jv *pr = hl0->items[k];
				const struct jv *red = j_get(pr->items[1],
							     "redacted");
				if (j_is_str(pr->items[0], "x-request-id")) {
					found = true;
					assert_true(j_is_str(pr->items[1], rid));
				} else if (j_is_null(pr->items[0]) && red &&
					   red->i == (long long)strlen(rid)) {
					found = true;
				}
			}
			assert_true(found);
			/* a field is null only where listed */
			const struct jv *hl = j_path(r, "request.headers");
			size_t nulls = 0;
			for (size_t k = 0; k < hl->n; k++)
				nulls += j_is_null(hl->items[k]->items[0]);
			assert_int_equal(nulls, u->n);
		}
		const struct jv *r19 = rec_by_sid(t, 19);
		assert_true(has_anomaly(r19, "request_headers_missed"));
		assert_true(has_anomaly(r19, "midstream"));
		expect_null(r19, "request.method");
		assert_int_equal(jint(r19, "response.status"), 200);
		assert_int_equal(CTR(t, h2_conns_midstream), 1);
		assert_int_equal(CTR(t, h2_resyncs), 2);
		assert_true(CTR(t, h2_hpack_primed) >= 2);
		assert_int_equal(CTR(t, h2_conns_preface), 0);
		assert_true(CTR(t, h2_headers_uncertain) > 0);
		check_invariants(t);
		tap_free(t);
	}
	free_bodies(bodies, N);
	conv_fini(&cv);
}

static void test_midstream_join(void **state)
{
	(void)state;
	midstream_join(2000);
}

/* The same join on GET-only traffic: the client direction carries only
 * small HEADERS frames. A header read a few bytes off its real start looks
 * like a DATA/PUSH_PROMISE header with a length of several KiB; the resync
 * must not wait for those KiB before taking the real frame chain that
 * follows (h2_frame_find_boundary returns -2 at the first undecided
 * candidate). */
static void test_midstream_join_small_frames(void **state)
{
	(void)state;
	midstream_join(0);
}

/* After a join the table turns over: once the encoder's new entries have
 * evicted every placeholder, later records are exact again. */
static void test_midstream_turnover(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	enum { N = 60 };
	int32_t ids[N];
	uint8_t *rb = pattern(1000, 18);
	for (int i = 0; i < N; i++) {
		char path[32], name[32], v[128];
		snprintf(path, sizeof(path), "/t/%d", i);
		/* distinct names and 100-byte values: each inserts ~145 bytes
		 * (a name taken from an entry indexed before the join would
		 * stay unknown in every entry inserted with it) */
		snprintf(name, sizeof(name), "x-fill-%03d", i);
		snprintf(v, sizeof(v), "%0100d", i);
		nghttp2_nv x[] = { NVS("x-session", "constant-session"),
				   NVS(name, v) };
		ids[i] = conv_request(&cv, "GET", path, NULL, x, 2);
		conv_pump(&cv);
		struct body b = { rb, 1000, 0, 0, NULL, 0 };
		conv_respond(&cv, ids[i], "200", &b, NULL, 0);
		conv_pump(&cv);
	}
	free(rb);
	struct wframe f0[512], f1[512];
	size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, f0, 512);
	size_t n1 = wire_frames(&cv.w, 1, 0, f1, 512);
	const struct wframe *h = find_frame(f0, n0, H2_HEADERS, 21, 0);
	const struct wframe *g = find_frame(f1, n1, H2_HEADERS, 21, 0);
	struct tap *t = tap_new();
	tap_init_flow(t, 0, 0, false);
	struct plan pl = { .start = { h->off + 1, g->off + 1 } };
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	assert_true(CTR(t, h2_hpack_exact) >= 1);
	/* the last records are exact except for "midstream" */
	const struct jv *last = rec_by_sid(t, (uint32_t)ids[N - 1]);
	assert_int_equal(n_anomalies(last), 1);
	assert_true(has_anomaly(last, "midstream"));
	expect_header(last, "request.headers", "x-session",
		      "constant-session");
	/* the first after the join had it from a placeholder */
	const struct jv *first = rec_by_sid(t, 23);
	assert_true(has_anomaly(first, "uncertain_headers"));
	check_invariants(t);
	tap_free(t);
	conv_fini(&cv);
}

/* Gaps inside DATA payloads cost only body bytes; framing survives. */
static void test_gap_in_data(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	uint8_t *r = pattern(10000, 13), *q = pattern(4000, 14);
	struct body br = { r, 10000, 0, 0, NULL, 0 };
	struct body bq = { q, 4000, 0, 0, NULL, 0 };
	int32_t a = conv_request(&cv, "POST", "/a", &bq, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", &br, NULL, 0);
	conv_pump(&cv);
	int32_t b = conv_request(&cv, "GET", "/b", NULL, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, b, "200", NULL, NULL, 0);
	conv_pump(&cv);
	struct wframe f0[64], f1[64];
	size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, f0, 64);
	size_t n1 = wire_frames(&cv.w, 1, 0, f1, 64);
	const struct wframe *dq = find_frame(f0, n0, H2_DATA, 1, 0);
	const struct wframe *dr = find_frame(f1, n1, H2_DATA, 1, 0);
	assert_true(dr->h.length >= 1000);
	struct gapspec gaps[] = {
		{ 0, dq->off + 9 + 10, 50 },     /* request body */
		{ 1, dr->off + 9 + 200, 100 },   /* response body */
		{ 1, dr->off + 9 + 400, 1 },     /* and again */
	};
	struct tap *t = tap_new();
	struct plan pl = { .gaps = gaps, .ngaps = 3 };
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 2);
	const struct jv *x = rec_by_sid(t, 1);
	expect_str(x, "end", "complete");
	/* body_bytes counts the lost bytes too (docs/records.md) */
	assert_int_equal(jint(x, "request.body_bytes"), 4000);
	assert_int_equal(jint(x, "request.body_gap_bytes"), 50);
	assert_int_equal(jint(x, "response.body_bytes"), 10000);
	assert_int_equal(jint(x, "response.body_gap_bytes"), 101);
	assert_true(has_anomaly(x, "body_gap"));
	assert_int_equal(n_anomalies(x), 1);
	expect_clean(rec_by_sid(t, 3), "GET", "/b", 200, 0, 0);
	assert_int_equal(CTR(t, h2_gaps), 3);
	assert_int_equal(CTR(t, h2_gap_body_bytes), 151);
	assert_int_equal(CTR(t, h2_resyncs), 0);
	assert_int_equal(CTR(t, h2_hpack_primed), 0);
	check_invariants(t);
	tap_free(t);
	free(r), free(q);
	conv_fini(&cv);
}

/* A gap that ends exactly where a DATA frame's payload ends is still
 * inside the frame: the next byte is the next frame header, so framing
 * and HPACK state survive (a lost segment often ends on a frame end). */
static void test_gap_to_frame_end(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	uint8_t *r = pattern(3000, 15);
	struct body br = { r, 3000, 0, 1000, NULL, 0 };
	int32_t a = conv_request(&cv, "GET", "/a", NULL, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", &br, NULL, 0);
	conv_pump(&cv);
	int32_t b = conv_request(&cv, "GET", "/a", NULL, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, b, "200", NULL, NULL, 0);
	conv_pump(&cv);
	struct wframe f1[64];
	size_t n1 = wire_frames(&cv.w, 1, 0, f1, 64);
	const struct wframe *d = find_frame(f1, n1, H2_DATA, 1, 0);
	assert_int_equal(d->h.length, 1000);
	struct gapspec gaps[] = { { 1, d->off + 9 + 600, 400 } };
	struct tap *t = tap_new();
	struct plan pl = { .gaps = gaps, .ngaps = 1 };
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(CTR(t, h2_resyncs), 0);
	assert_int_equal(CTR(t, h2_gap_body_bytes), 400);
	const struct jv *x = rec_by_sid(t, 1);
	assert_int_equal(jint(x, "response.body_gap_bytes"), 400);
	expect_str(x, "end", "complete");
	expect_clean(rec_by_sid(t, 3), "GET", "/a", 200, 0, 0);
	tap_free(t);
	free(r);
	conv_fini(&cv);
}

/* A gap inside padding loses no body byte. */
static void test_gap_in_padding(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 100, true);
	uint8_t *r = pattern(500, 16);
	struct body br = { r, 500, 0, 0, NULL, 0 };
	int32_t a = conv_request(&cv, "GET", "/p", NULL, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", &br, NULL, 0);
	conv_pump(&cv);
	struct wframe f1[64];
	size_t n1 = wire_frames(&cv.w, 1, 0, f1, 64);
	const struct wframe *d = find_frame(f1, n1, H2_DATA, 1, 0);
	assert_true(d->h.flags & H2_FLAG_PADDED);
	uint8_t padlen = cv.w.all[1][d->off + 9];
	assert_int_equal(d->h.length, 1 + 500 + padlen);
	assert_true(padlen >= 40);
	struct gapspec gaps[] = { { 1, d->off + 9 + 1 + 500 + 10, 20 } };
	struct tap *t = tap_new();
	struct plan pl = { .gaps = gaps, .ngaps = 1 };
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	const struct jv *x = rec_by_sid(t, 1);
	expect_str(x, "end", "complete");
	assert_int_equal(jint(x, "response.body_bytes"), 500);
	assert_int_equal(jint(x, "response.body_gap_bytes"), 0);
	assert_false(has_anomaly(x, "body_gap"));
	assert_int_equal(CTR(t, h2_resyncs), 0);
	tap_free(t);

	/* the pad length byte itself lost: padding_unknown */
	struct gapspec g2[] = { { 1, d->off + 9, 5 } };
	t = tap_new();
	pl.gaps = g2;
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	x = rec_by_sid(t, 1);
	assert_true(has_anomaly(x, "padding_unknown"));
	assert_true(has_anomaly(x, "body_gap"));
	assert_int_equal(jint(x, "response.body_gap_bytes"), 5);
	assert_int_equal(CTR(t, h2_resyncs), 0);
	tap_free(t);
	free(r);
	conv_fini(&cv);
}

/* A gap inside a header block: that block is lost (headers_lost), the
 * inflater is reprimed, framing survives, later blocks decode with
 * placeholders where they refer to the lost entries. */
static void test_gap_in_header_block(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	nghttp2_nv x[] = { NVS("x-session", "0123456789abcdef"),
			   NVS("x-other", "zzzzzzzzzzzzzzzz") };
	int32_t a = conv_request(&cv, "GET", "/first", NULL, x, 2);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", NULL, NULL, 0);
	conv_pump(&cv);
	int32_t b = conv_request(&cv, "GET", "/second", NULL, x, 2);
	conv_pump(&cv);
	conv_respond(&cv, b, "200", NULL, NULL, 0);
	conv_pump(&cv);
	struct wframe f0[64];
	size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, f0, 64);
	const struct wframe *h = find_frame(f0, n0, H2_HEADERS, 1, 0);
	assert_true(h->h.length > 20);
	struct gapspec gaps[] = { { 0, h->off + 9 + h->h.length - 10, 5 } };
	struct tap *t = tap_new();
	struct plan pl = { .gaps = gaps, .ngaps = 1 };
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 2);
	const struct jv *r1 = rec_by_sid(t, 1);
	assert_true(has_anomaly(r1, "headers_lost"));
	expect_str(r1, "end", "complete");
	assert_int_equal(jint(r1, "response.status"), 200);
	/* fields before the gap were decoded */
	expect_str(r1, "request.method", "GET");
	const struct jv *r3 = rec_by_sid(t, 3);
	expect_str(r3, "end", "complete");
	expect_str(r3, "request.path", "/second");
	assert_false(has_anomaly(r3, "headers_lost"));
	assert_true(has_anomaly(r3, "uncertain_headers"));
	assert_int_equal(CTR(t, h2_blocks_lost), 1);
	assert_int_equal(CTR(t, h2_hpack_primed), 1);
	assert_int_equal(CTR(t, h2_resyncs), 0);
	assert_int_equal(CTR(t, h2_hpack_errors), 0);
	check_invariants(t);
	tap_free(t);
	conv_fini(&cv);
}

/* A gap across frame boundaries: resync at the next plausible boundary,
 * open streams marked, later exchanges decoded. */
static void test_gap_across_frames(void **state)
{
	(void)state;
	enum { N = 12 };
	uint8_t *bodies[N];
	struct conv cv;
	make_long_conn(&cv, N, 2000, bodies, 0);
	struct wframe f0[256], f1[256];
	size_t n0 = wire_frames(&cv.w, 0, H2_PREFACE_LEN, f0, 256);
	size_t n1 = wire_frames(&cv.w, 1, 0, f1, 256);
	/* client: from inside stream 5's HEADERS to inside stream 7's;
	 * server: from inside stream 5's DATA to inside stream 7's HEADERS */
	const struct wframe *c5 = find_frame(f0, n0, H2_HEADERS, 5, 0);
	const struct wframe *c7 = find_frame(f0, n0, H2_HEADERS, 7, 0);
	const struct wframe *s5 = find_frame(f1, n1, H2_DATA, 5, 0);
	const struct wframe *s7 = find_frame(f1, n1, H2_HEADERS, 7, 0);
	struct gapspec gaps[] = {
		{ 0, c5->off + 4, c7->off + 4 - (c5->off + 4) },
		{ 1, s5->off + 9 + 10, s7->off + 2 - (s5->off + 19) },
	};
	struct tap *t = tap_new();
	struct plan pl = { .gaps = gaps, .ngaps = 2 };
	tap_play(t, &cv.w, &pl);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(CTR(t, h2_resyncs), 2);
	assert_int_equal(CTR(t, h2_gaps), 2);
	/* streams 1, 3 exact; 9.. decoded again */
	expect_clean(rec_by_sid(t, 1), "GET", "/r/0", 200, 0, 2000);
	expect_clean(rec_by_sid(t, 3), "GET", "/r/1", 200, 0, 2000);
	const struct jv *r5 = rec_by_sid(t, 5);
	assert_true(has_anomaly(r5, "resync"));
	for (uint32_t sid = 9; sid <= 2 * N - 1; sid += 2) {
		const struct jv *r = rec_by_sid(t, sid);
		char path[32];
		snprintf(path, sizeof(path), "/r/%u", (sid - 1) / 2);
		expect_str(r, "end", "complete");
		expect_str(r, "request.path", path);
		assert_int_equal(jint(r, "response.status"), 200);
		assert_int_equal(jint(r, "response.body_bytes"), 2000);
		assert_false(has_anomaly(r, "resync"));
	}
	check_invariants(t);
	tap_free(t);
	free_bodies(bodies, N);
	conv_fini(&cv);
}

/* ==================================================================== */
/* limits, unknown frames, frame errors                                  */
/* ==================================================================== */

static void test_stream_limit(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	int32_t ids[6];
	for (int i = 0; i < 6; i++) {
		char path[16];
		snprintf(path, sizeof(path), "/s%d", i);
		ids[i] = conv_request(&cv, "GET", path, NULL, NULL, 0);
		conv_pump(&cv);
	}
	for (int i = 0; i < 6; i++)
		conv_respond(&cv, ids[i], "200", NULL, NULL, 0);
	conv_pump(&cv);
	struct h2_cfg cfg = test_cfg();
	cfg.max_conn_streams = 4;
	struct tap *t = tap_new_cfg(&cfg);
	tap_play(t, &cv.w, NULL);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 6);
	for (int i = 0; i < 2; i++) {
		const struct jv *r = rec_by_sid(t, (uint32_t)ids[i]);
		expect_str(r, "end", "stream_limit");
		assert_true(has_anomaly(r, "stream_limit"));
	}
	for (int i = 2; i < 6; i++) {
		char path[16];
		snprintf(path, sizeof(path), "/s%d", i);
		expect_clean(rec_by_sid(t, (uint32_t)ids[i]), "GET", path, 200,
			     0, 0);
	}
	assert_int_equal(CTR(t, h2_stream_limit), 2);
	/* the late responses of the two recorded streams must not open new
	 * streams (each would push out another open stream in turn) */
	assert_int_equal(CTR(t, h2_streams), 6);
	check_invariants(t);
	tap_free(t);
	conv_fini(&cv);
}

/* Frames of unknown type (extensions, §5.5) are skipped. */
static void test_unknown_frame(void **state)
{
	(void)state;
	struct hconv h;
	hconv_init(&h, true);
	uint8_t junk[100];
	memset(junk, 0x5a, sizeof(junk));
	raw_frame(&h.w, 0, 0x42, 0xff, 0, junk, sizeof(junk));
	hrequest(&h, 1, "/u", false);
	raw_frame(&h.w, 0, 0xfa, 0, 1, junk, 3);
	raw_frame(&h.w, 0, H2_DATA, H2_FLAG_END_STREAM, 1, junk, 10);
	raw_frame(&h.w, 1, 0x0b, 0, 1, NULL, 0); /* ALTSVC-ish type 10+ */
	hresponse(&h, 1, "200", true);
	struct tap *t = tap_new();
	tap_play(t, &h.w, NULL);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 1);
	expect_clean(t->rec[0], "GET", "/u", 200, 10, 0);
	assert_int_equal(CTR(t, h2_frames_unknown), 3);
	assert_int_equal(CTR(t, h2_frame_errors), 0);
	assert_int_equal(CTR(t, h2_resyncs), 0);
	tap_free(t);
	hconv_fini(&h);
}

/* Frame error paths of frame_begin/prefix_done, table-driven: each row
 * builds a hand-made connection and states the counters and the record
 * of stream 1. */
struct ferr_row {
	const char *what;
	void (*build)(struct hconv *h);
	uint64_t frame_errors, resyncs, hpack_errors, records;
	const char *end1;       /* stream 1's end (NULL: no record) */
	const char *anomaly1;   /* an anomaly stream 1 must have */
	bool later_ok;          /* stream 3 decodes exactly afterwards */
};

static uint8_t bytes100[100];

/* DATA with pad length beyond its payload (§6.1) */
static void b_pad_gt_data(struct hconv *h)
{
	hrequest(h, 1, "/x", false);
	uint8_t p[10] = { 50 };
	raw_frame(&h->w, 0, H2_DATA, H2_FLAG_PADDED | H2_FLAG_END_STREAM, 1,
		  p, 10);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* HEADERS with pad length beyond its payload, opening stream 1 */
static void b_pad_gt_headers(struct hconv *h)
{
	uint8_t p[10] = { 200 };
	raw_frame(&h->w, 0, H2_HEADERS,
		  H2_FLAG_PADDED | H2_FLAG_END_HEADERS | H2_FLAG_END_STREAM, 1,
		  p, 10);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* CONTINUATION with no block open */
static void b_cont_outside(struct hconv *h)
{
	hrequest(h, 1, "/x", true);
	raw_frame(&h->w, 0, H2_CONTINUATION, H2_FLAG_END_HEADERS, 1, bytes100,
		  5);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* HEADERS without END_HEADERS, then DATA: the block is broken */
static void b_data_inside_block(struct hconv *h)
{
	nghttp2_nv nv[] = { NVS(":method", "GET"), NVS(":path", "/x"),
			    NVS(":scheme", "http"),
			    NVS(":authority", "example.com") };
	uint8_t blk[256];
	size_t k = hblock(h, 0, nv, 4, blk, sizeof(blk));
	raw_frame(&h->w, 0, H2_HEADERS, 0, 1, blk, k / 2);
	raw_frame(&h->w, 0, H2_DATA, H2_FLAG_END_STREAM, 1, bytes100, 10);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* HEADERS without END_HEADERS, then CONTINUATION of another stream */
static void b_cont_wrong_stream(struct hconv *h)
{
	nghttp2_nv nv[] = { NVS(":method", "GET"), NVS(":path", "/x"),
			    NVS(":scheme", "http"),
			    NVS(":authority", "example.com") };
	uint8_t blk[256];
	size_t k = hblock(h, 0, nv, 4, blk, sizeof(blk));
	raw_frame(&h->w, 0, H2_HEADERS, H2_FLAG_END_STREAM, 1, blk, k / 2);
	raw_frame(&h->w, 0, H2_CONTINUATION, H2_FLAG_END_HEADERS, 5,
		  blk + k / 2, k - k / 2);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* HEADERS with PRIORITY flag but shorter than the priority fields */
static void b_priority_short(struct hconv *h)
{
	raw_frame(&h->w, 0, H2_HEADERS,
		  H2_FLAG_PRIORITY | H2_FLAG_END_HEADERS | H2_FLAG_END_STREAM,
		  1, bytes100, 3);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

static void ping(struct hconv *h, unsigned dir)
{
	raw_frame(&h->w, dir, H2_PING, 0, 0, bytes100, 8);
}

/* a frame longer than SETTINGS_MAX_FRAME_SIZE: framing lost */
static void b_too_long(struct hconv *h)
{
	hrequest(h, 1, "/x", false);
	uint8_t hdr[9];
	put_hdr(hdr, 20000, H2_DATA, 0, 1);
	wire_add(&h->w, 0, hdr, 9);
	for (int i = 0; i < 200; i++)
		wire_add(&h->w, 0, bytes100, 100);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	ping(h, 0); /* a second frame for the resync */
	hresponse(h, 3, "200", true);
}

/* a broken preface */
static void b_bad_preface(struct hconv *h)
{
	static const char bad[] = "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n";
	wire_add(&h->w, 0, bad, sizeof(bad) - 1);
	raw_frame(&h->w, 0, H2_SETTINGS, 0, 0, NULL, 0);
	raw_frame(&h->w, 1, H2_SETTINGS, 0, 0, NULL, 0);
	raw_frame(&h->w, 0, H2_SETTINGS, H2_FLAG_ACK, 0, NULL, 0);
	hrequest(h, 3, "/later", true);
	ping(h, 0);
	hresponse(h, 3, "200", true);
}

/* a well-formed WINDOW_UPDATE: nothing to report */
static void b_wu_ok(struct hconv *h)
{
	hrequest(h, 1, "/x", true);
	raw_frame(&h->w, 1, H2_WINDOW_UPDATE, 0, 1, bytes100, 4);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* a WINDOW_UPDATE of length 5 (§6.9: FRAME_SIZE_ERROR): its length is
 * intact, so it can be walked over as a counted protocol error without
 * giving up framing (h2_conn.c frame_begin: "if (bad) frame_error") */
static void b_wu_bad_len(struct hconv *h)
{
	hrequest(h, 1, "/x", true);
	raw_frame(&h->w, 1, H2_WINDOW_UPDATE, 0, 1, bytes100, 5);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

/* an empty trailer block carrying END_STREAM ends the request */
static void b_empty_trailers(struct hconv *h)
{
	hrequest(h, 1, "/x", false);
	raw_frame(&h->w, 0, H2_DATA, 0, 1, bytes100, 10);
	raw_frame(&h->w, 0, H2_HEADERS,
		  H2_FLAG_END_HEADERS | H2_FLAG_END_STREAM, 1, NULL, 0);
	hresponse(h, 1, "200", true);
	hrequest(h, 3, "/later", true);
	hresponse(h, 3, "200", true);
}

static const struct ferr_row ferr_rows[] = {
	{ "pad length > DATA payload", b_pad_gt_data, 1, 0, 0, 2, "complete",
	  "protocol_error", true },
	{ "pad length > HEADERS payload", b_pad_gt_headers, 1, 0, 0, 2,
	  "complete", "protocol_error", true },
	{ "CONTINUATION outside a block", b_cont_outside, 1, 0, 0, 2,
	  "complete", "protocol_error", true },
	{ "DATA inside a block", b_data_inside_block, 1, 0, 1, 2, "complete",
	  "protocol_error", false },
	{ "CONTINUATION of another stream", b_cont_wrong_stream, 1, 0, 1, 2,
	  "complete", "protocol_error", false },
	{ "HEADERS+PRIORITY too short", b_priority_short, 1, 0, 0, 1, NULL,
	  NULL, true },
	{ "frame over max size", b_too_long, 1, 1, 0, 2, "connection_closed",
	  "resync", false },
	{ "bad preface", b_bad_preface, 1, 1, 0, 1, NULL, NULL, true },
	{ "well-formed WINDOW_UPDATE", b_wu_ok, 0, 0, 0, 2, "complete", NULL,
	  true },
	{ "empty trailer block with END_STREAM", b_empty_trailers, 0, 0, 0, 2,
	  "complete", NULL, true },
	{ "WINDOW_UPDATE length 5 (walkable)", b_wu_bad_len, 1, 0, 0, 2,
	  "complete", "protocol_error", true },
};

/* Finds stream |sid|'s record without failing; NULL if none or two. */
static const struct jv *soft_rec(const struct tap *t, uint32_t sid)
{
	const struct jv *found = NULL;
	for (size_t i = 0; i < t->nrec; i++) {
		const struct jv *v = j_get(t->rec[i], "stream_id");
		if (v && v->t == J_NUM && v->i == (long long)sid) {
			if (found)
				return NULL;
			found = t->rec[i];
		}
	}
	return found;
}

static bool soft_anomaly(const struct jv *r, const char *name)
{
	const struct jv *a = j_get(r, "anomalies");
	for (size_t i = 0; a && i < a->n; i++)
		if (j_is_str(a->items[i], name))
			return true;
	return false;
}

/* Every row runs; the mismatches are listed together at the end. */
static void test_frame_errors(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(ferr_rows) / sizeof(ferr_rows[0]); i++) {
		const struct ferr_row *r = &ferr_rows[i];
		struct hconv h;
		hconv_init(&h, r->build != b_bad_preface);
		r->build(&h);
		struct tap *t = tap_new();
		tap_play(t, &h.w, NULL);
		tap_end(t, REASM_END_FIN);
		char why[512] = "";
		size_t n = 0;
#define WHY(...) (n += (size_t)snprintf(why + n, sizeof(why) - n, __VA_ARGS__))
		if (CTR(t, h2_frame_errors) != r->frame_errors)
			WHY(" frame_errors %llu (want %llu);",
			    (unsigned long long)CTR(t, h2_frame_errors),
			    (unsigned long long)r->frame_errors);
		if (CTR(t, h2_resyncs) != r->resyncs)
			WHY(" resyncs %llu (want %llu);",
			    (unsigned long long)CTR(t, h2_resyncs),
			    (unsigned long long)r->resyncs);
		if (CTR(t, h2_hpack_errors) != r->hpack_errors)
			WHY(" hpack_errors %llu (want %llu);",
			    (unsigned long long)CTR(t, h2_hpack_errors),
			    (unsigned long long)r->hpack_errors);
		if (t->nrec != r->records)
			WHY(" %zu records (want %llu);", t->nrec,
			    (unsigned long long)r->records);
		if (r->end1) {
			const struct jv *x = soft_rec(t, 1);
			const struct jv *e = x ? j_get(x, "end") : NULL;
			if (!x)
				WHY(" no single record for stream 1;");
			else if (!j_is_str(e, r->end1))
				WHY(" stream 1 end \"%s\" (want \"%s\");",
				    e && e->t == J_STR ? e->s : "?", r->end1);
			if (x && r->anomaly1 && !soft_anomaly(x, r->anomaly1))
				WHY(" stream 1 lacks \"%s\";", r->anomaly1);
		}
		const struct jv *l = soft_rec(t, 3);
		if (!l || !j_is_str(j_get(l, "end"), "complete") ||
		    !j_is_str(j_path(l, "request.path"), "/later"))
			WHY(" stream 3 not recorded complete;");
		else if (r->later_ok && j_get(l, "anomalies")->n)
			WHY(" stream 3 has anomalies;");
#undef WHY
		if (n) {
			print_error("frame error row \"%s\":%s\n", r->what, why);
			bad++;
		}
		check_invariants(t);
		tap_free(t);
		hconv_fini(&h);
	}
	if (bad)
		fail_msg("%u of %zu rows failed", bad,
			 sizeof(ferr_rows) / sizeof(ferr_rows[0]));
}

/* Hostile :status values must still give valid JSON; a status that is
 * not three digits is not a number. */
static void test_bad_status(void **state)
{
	(void)state;
	static const char *const vals[] = { "abc", "007", "2\"0", "-1", "",
					    "20", "2000", " 200", "2e3",
					    "\x01\x02\x03" };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		struct hconv h;
		hconv_init(&h, true);
		hrequest(&h, 1, "/s", true);
		hresponse(&h, 1, vals[i], true);
		struct tap *t = tap_new();
		tap_play(t, &h.w, NULL); /* the sink checks the JSON */
		tap_end(t, REASM_END_FIN);
		assert_int_equal(t->nrec, 1);
		const struct jv *s = j_path(t->rec[0], "response.status");
		assert_non_null(s);
		if (!(s->t == J_NULL || (s->t == J_NUM && s->is_int)))
			fail_msg(":status \"%s\": status is neither null nor "
				 "an integer",
				 vals[i]);
		expect_header(t->rec[0], "response.headers", ":status",
			      vals[i]);
		tap_free(t);
		hconv_fini(&h);
	}
}

/* Values and pseudo-headers longer than their caps: the record stays
 * valid JSON (the caps cut fields, never the syntax). */
static void test_long_fields(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		const char *name;
		size_t len;
		uint8_t byte;
		uint32_t max_header_block;
	} rows[] = {
		{ "long :path", ":path", 9000, 'p', 256u << 10 },
		{ "long :authority", ":authority", 20000, 'a', 256u << 10 },
		{ "binary value over the block cap", "x-bin", 30000, 0x01,
		  64u << 10 },
		{ "quotes over the block cap", "x-q", 40000, '"', 64u << 10 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *v = malloc(rows[i].len + 1);
		memset(v, rows[i].byte, rows[i].len);
		v[rows[i].len] = 0;
		struct hconv h;
		hconv_init(&h, true);
		bool pseudo = rows[i].name[0] == ':';
		nghttp2_nv nv[5] = { NVS(":method", "GET"),
				     NVS(":path", "/"),
				     NVS(":scheme", "http"),
				     NVS(":authority", "example.com") };
		size_t n = 4;
		nghttp2_nv big = { (uint8_t *)rows[i].name, (uint8_t *)v,
				   strlen(rows[i].name), rows[i].len,
				   NGHTTP2_NV_FLAG_NO_INDEX };
		if (pseudo)
			nv[rows[i].name[1] == 'p' ? 1 : 3] = big;
		else
			nv[n++] = big;
		hheaders(&h, 0, 1, H2_FLAG_END_STREAM, nv, n);
		hresponse(&h, 1, "200", true);
		struct h2_cfg cfg = test_cfg();
		cfg.max_header_block = rows[i].max_header_block;
		struct tap *t = tap_new_cfg(&cfg);
		tap_play(t, &h.w, NULL); /* the sink checks the JSON */
		tap_end(t, REASM_END_FIN);
		if (t->nrec != 1)
			fail_msg("%s: %zu records", rows[i].what, t->nrec);
		expect_str(t->rec[0], "end", "complete");
		tap_free(t);
		hconv_fini(&h);
		free(v);
	}
}

/* Many fields from placeholders in one block: the uncertain list stays
 * valid and every index in it points at a null field. */
static void test_many_uncertain(void **state)
{
	(void)state;
	/* a block of 1500 references to dynamic indices 62..185 (the
	 * primed placeholders), after a mid-stream join */
	uint8_t blk[8192];
	size_t k = 0;
	blk[k++] = 0x82; /* :method GET */
	blk[k++] = 0x84; /* :path / */
	for (int i = 0; i < 1500; i++) {
		unsigned idx = 62 + (unsigned)i % 120; /* RFC 7541 §6.1 */
		if (idx < 127) {
			blk[k++] = (uint8_t)(0x80 | idx);
		} else { /* 7-bit prefix full, then idx - 127 (< 128) */
			blk[k++] = 0xff;
			blk[k++] = (uint8_t)(idx - 127);
		}
	}
	struct wire w = { 0 };
	uint8_t hdr[9];
	/* joined mid-stream: a DATA frame then HEADERS (two plausible frames
	 * in a row for the resync) */
	uint8_t junk[7] = { 1, 2, 3, 4, 5, 6, 7 };
	wire_add(&w, 0, junk, sizeof(junk));
	put_hdr(hdr, 4, H2_DATA, 0, 1);
	wire_add(&w, 0, hdr, 9);
	wire_add(&w, 0, "abcd", 4);
	put_hdr(hdr, (uint32_t)k, H2_HEADERS,
		H2_FLAG_END_HEADERS | H2_FLAG_END_STREAM, 3);
	wire_add(&w, 0, hdr, 9);
	wire_add(&w, 0, blk, k);
	struct tap *t = tap_new();
	tap_init_flow(t, 0, 0, false);
	tap_play(t, &w, NULL);
	tap_end(t, REASM_END_FIN); /* the sink checks the JSON */
	assert_int_equal(t->nrec, 1);
	const struct jv *r = rec_by_sid(t, 3);
	const struct jv *u = j_path(r, "request.uncertain");
	const struct jv *hl = j_path(r, "request.headers");
	for (size_t i = 0; i < u->n; i++) {
		long long ix = u->items[i]->i;
		if (ix < 0 || (size_t)ix >= hl->n ||
		    !j_is_null(hl->items[ix]->items[0]))
			fail_msg("uncertain[%zu] = %lld is not a null field",
				 i, ix);
	}
	tap_free(t);
	wire_free(&w);
}

/* gRPC: length-prefixed messages counted across DATA frame boundaries,
 * prefixes split between frames (7-byte DATA frames). */
static void test_grpc(void **state)
{
	(void)state;
	/* DATA frame sizes coprime with the 5-byte prefix split it at every
	 * position */
	static const size_t chunks[] = { 7, 3, 2, 4096, 0 };
	/* messages: sizes 0, 3, 100, 10000, 1 */
	static const uint32_t sizes[] = { 0, 3, 100, 10000, 1 };
	uint8_t *msg = malloc(20000);
	size_t ml = 0;
	for (size_t i = 0; i < 5; i++) {
		msg[ml++] = 0;
		msg[ml++] = (uint8_t)(sizes[i] >> 24);
		msg[ml++] = (uint8_t)(sizes[i] >> 16);
		msg[ml++] = (uint8_t)(sizes[i] >> 8);
		msg[ml++] = (uint8_t)sizes[i];
		memset(msg + ml, 'm', sizes[i]);
		ml += sizes[i];
	}
	for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
		struct conv cv;
		conv_init(&cv, 0, true);
		struct body bq = { msg, ml, 0, chunks[ci], NULL, 0 };
		nghttp2_nv rtr[] = { NVS("grpc-status", "0") };
		struct body br = { msg, ml - 1 - 5, 0, chunks[ci], rtr, 1 };
		nghttp2_nv qh[] = { NVS("content-type", "application/grpc"),
				    NVS("te", "trailers") };
		nghttp2_nv rh[] = {
			NVS("content-type", "application/grpc+proto") };
		int32_t id = conv_request(&cv, "POST", "/pkg.Svc/Method", &bq,
					  qh, 2);
		conv_pump(&cv);
		conv_respond(&cv, id, "200", &br, rh, 1);
		conv_pump(&cv);
		struct tap *t = tap_new();
		tap_play(t, &cv.w, NULL);
		assert_int_equal(t->nrec, 1);
		const struct jv *r = t->rec[0];
		expect_clean(r, "POST", "/pkg.Svc/Method", 200, (long long)ml,
			     (long long)(ml - 6));
		assert_int_equal(jint(r, "request.grpc_messages"), 5);
		assert_int_equal(jint(r, "response.grpc_messages"), 4);
		expect_header(r, "response.trailers", "grpc-status", "0");
		assert_int_equal(CTR(t, h2_grpc_messages), 9);
		tap_free(t);
		conv_fini(&cv);
	}
	free(msg);
}

/* Idle streams are recorded by h2_ctx_tick() after stream_timeout_ns. */
static void test_stream_timeout(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	int32_t a = conv_request(&cv, "GET", "/idle", NULL, NULL, 0);
	int32_t b = conv_request(&cv, "GET", "/busy", NULL, NULL, 0);
	conv_pump(&cv);
	struct h2_cfg cfg = test_cfg();
	cfg.stream_timeout_ns = 1000000000ull;
	struct tap *t = tap_new_cfg(&cfg);
	tap_play(t, &cv.w, NULL);
	uint64_t t0 = t->ts;
	assert_int_equal(h2_ctx_tick(t->ctx, t0, 16), 0);
	assert_int_equal(h2_ctx_tick(t->ctx, t0 + 500000000ull, 16), 0);
	/* stream b sees a response header block at t0 + 0.9 s */
	conv_respond(&cv, b, "200", NULL, NULL, 0);
	size_t before = cv.w.len[1];
	conv_send(&cv, 1);
	t->ts = t0 + 900000000ull;
	tap_data(t, 1, cv.w.all[1] + before, cv.w.len[1] - before);
	assert_int_equal(t->nrec, 1); /* b complete */
	/* a is idle for > 1 s at t0 + 1.1 s; budget respected */
	conv_request(&cv, "GET", "/c", NULL, NULL, 0);
	before = cv.w.len[0];
	conv_send(&cv, 0);
	tap_data(t, 0, cv.w.all[0] + before, cv.w.len[0] - before);
	assert_int_equal(h2_ctx_tick(t->ctx, t0 + 1100000000ull, 0), 0);
	assert_int_equal(h2_ctx_tick(t->ctx, t0 + 1100000000ull, 16), 1);
	assert_int_equal(t->nrec, 2);
	const struct jv *x = rec_by_sid(t, (uint32_t)a);
	expect_str(x, "end", "timeout");
	assert_true(has_anomaly(x, "response_headers_missed"));
	/* the third is recorded later, at the end */
	assert_int_equal(h2_ctx_tick(t->ctx, t0 + 1100000000ull, 16), 0);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 3);
	expect_str(rec_by_sid(t, 5), "end", "connection_closed");
	check_invariants(t);
	tap_free(t);
	conv_fini(&cv);
}

/* The sink refusing records is counted. */
static void test_sink_drop(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	int32_t a = conv_request(&cv, "GET", "/d", NULL, NULL, 0);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", NULL, NULL, 0);
	conv_pump(&cv);
	struct tap *t = tap_new();
	t->sink_fail = 1;
	tap_play(t, &cv.w, NULL);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 1);
	assert_int_equal(CTR(t, h2_records_dropped), 1);
	tap_free(t);
	conv_fini(&cv);
}

/* A record bigger than max_record is written without header lists. */
static void test_record_too_big(void **state)
{
	(void)state;
	struct conv cv;
	conv_init(&cv, 0, true);
	char v[3000];
	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	nghttp2_nv x[] = { NVS("x-long", v) };
	int32_t a = conv_request(&cv, "GET", "/big", NULL, x, 1);
	conv_pump(&cv);
	conv_respond(&cv, a, "200", NULL, x, 1);
	conv_pump(&cv);
	struct h2_cfg cfg = test_cfg();
	cfg.max_record = 4096;
	struct tap *t = tap_new_cfg(&cfg);
	tap_play(t, &cv.w, NULL);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 1);
	assert_true(has_anomaly(t->rec[0], "record_too_big"));
	assert_int_equal(arr_len(t->rec[0], "request.headers"), 0);
	expect_str(t->rec[0], "request.path", "/big");
	assert_int_equal(CTR(t, h2_records_too_big), 1);
	tap_free(t);
	conv_fini(&cv);
}

/* A peer that announces a smaller header table (SETTINGS) may have its
 * SETTINGS seen by the tap before blocks the other side encoded without
 * knowing it (the directions are independent): those blocks carry no
 * size update yet, and must still decode. */
static void test_settings_table_size_race(void **state)
{
	(void)state;
	struct hconv h;
	hconv_init(&h, false);
	wire_add(&h.w, 0, H2_PREFACE, H2_PREFACE_LEN);
	raw_frame(&h.w, 0, H2_SETTINGS, 0, 0, NULL, 0);
	/* server: SETTINGS_HEADER_TABLE_SIZE = 256, seen first */
	uint8_t st[6] = { 0, 1, 0, 0, 1, 0 };
	raw_frame(&h.w, 1, H2_SETTINGS, 0, 0, st, 6);
	/* client's first request, encoded before it got the SETTINGS */
	hrequest(&h, 1, "/early", true);
	raw_frame(&h.w, 0, H2_SETTINGS, H2_FLAG_ACK, 0, NULL, 0);
	hresponse(&h, 1, "200", true);
	/* the client then applies it: its next block starts with a size
	 * update (nghttp2's deflater emits it) */
	assert_int_equal(nghttp2_hd_deflate_change_table_size(h.hd[0], 256), 0);
	hrequest(&h, 3, "/late", true);
	hresponse(&h, 3, "200", true);
	struct tap *t = tap_new();
	tap_play(t, &h.w, NULL);
	tap_end(t, REASM_END_FIN);
	assert_int_equal(t->nrec, 2);
	assert_int_equal(CTR(t, h2_hpack_errors), 0);
	expect_clean(rec_by_sid(t, 1), "GET", "/early", 200, 0, 0);
	expect_clean(rec_by_sid(t, 3), "GET", "/late", 200, 0, 0);
	tap_free(t);
	hconv_fini(&h);
}

/* ==================================================================== */
/* allocation limits                                                     */
/* ==================================================================== */

static void test_alloc_limits(void **state)
{
	(void)state;
	/* a busy connection: 12 streams open at once with large headers */
	struct conv cv;
	conv_init(&cv, 0, true);
	char v[600];
	memset(v, 'h', sizeof(v) - 1);
	v[sizeof(v) - 1] = 0;
	int32_t ids[12];
	uint8_t *r = pattern(5000, 17);
	struct body br[12];
	for (int i = 0; i < 12; i++) {
		char path[16];
		snprintf(path, sizeof(path), "/m%d", i);
		nghttp2_nv x[] = { NVS("x-h", v), NVS("x-i", path) };
		x[0].flags = NGHTTP2_NV_FLAG_NO_INDEX;
		ids[i] = conv_request(&cv, "GET", path, NULL, x, 2);
	}
	conv_pump(&cv);
	for (int i = 0; i < 12; i++) {
		br[i] = (struct body){ r, 5000, 0, 0, NULL, 0 };
		conv_respond(&cv, ids[i], "200", &br[i], NULL, 0);
	}
	conv_pump(&cv);
	static const uint64_t memcaps[] = { 0, 1024, 2048, 4096, 8192, 16384,
					    65536, 1u << 20 };
	static const uint32_t streams[] = { 1, 2, 5, 64 };
	uint64_t saw_memcap = 0, saw_nomem = 0;
	for (size_t mi = 0; mi < sizeof(memcaps) / sizeof(memcaps[0]); mi++) {
		for (size_t si = 0; si < sizeof(streams) / sizeof(streams[0]);
		     si++) {
			struct h2_cfg cfg = H2_CFG_DEFAULT;
			cfg.memcap = memcaps[mi];
			cfg.max_streams = streams[si];
			cfg.max_connections = 1;
			cfg.body_inspect = 1024;
			cfg.resync_window = 4096;
			struct tap *t = tap_new_cfg(&cfg);
			/* two flows on a one-connection pool */
			struct flow other = t->f;
			other.key.port[0] = 40001;
			tap_play(t, &cv.w, NULL);
			struct flow saved = t->f;
			t->f = other;
			tap_play(t, &cv.w, NULL);
			tap_end(t, REASM_END_FIN);
			t->f = saved;
			t->ended = false;
			tap_end(t, REASM_END_FIN);
			assert_int_equal(CTR(t, h2_conns), 1);
			assert_int_equal(CTR(t, h2_conns_no_memory), 1);
			/* an exchange may be split in two (a stream recorded
			 * for memory, then its late half), never more */
			assert_true(t->nrec <= 24);
			if (streams[si] >= 12 && memcaps[mi] >= (1u << 20))
				assert_int_equal(t->nrec, 12);
			saw_memcap += CTR(t, h2_memcap);
			saw_nomem += CTR(t, h2_streams_no_memory);
			for (size_t k = 0; k < t->nrec; k++) {
				const struct jv *x = t->rec[k];
				if (has_anomaly(x, "memcap") ||
				    has_anomaly(x, "header_block_too_big"))
					continue;
				/* anything not cut is exact */
				if (j_is_str(j_get(x, "end"), "complete") &&
				    !has_anomaly(x, "request_headers_missed"))
					expect_header(x, "request.headers",
						      "x-h", v);
			}
			check_invariants(t);
			tap_free(t);
		}
	}
	assert_true(saw_memcap > 0);
	assert_true(saw_nomem > 0);
	free(r);
	conv_fini(&cv);
}

int main(int argc, char **argv)
{
	if (argc > 1) /* a test name pattern, e.g. test_gap_* */
		cmocka_set_test_filter(argv[1]);
	for (size_t i = 0; i < sizeof(bytes100); i++)
		bytes100[i] = (uint8_t)(0xa0 + i % 7);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_post),
		cmocka_unit_test(test_multiplexed),
		cmocka_unit_test(test_trailers),
		cmocka_unit_test(test_informational),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_priority_flag),
		cmocka_unit_test(test_push_promise),
		cmocka_unit_test(test_rst_stream),
		cmocka_unit_test(test_goaway),
		cmocka_unit_test(test_connection_end),
		cmocka_unit_test(test_h2c_upgrade),
		cmocka_unit_test(test_not_h2),
		cmocka_unit_test(test_midstream_join),
		cmocka_unit_test(test_midstream_join_small_frames),
		cmocka_unit_test(test_midstream_turnover),
		cmocka_unit_test(test_gap_in_data),
		cmocka_unit_test(test_gap_to_frame_end),
		cmocka_unit_test(test_gap_in_padding),
		cmocka_unit_test(test_gap_in_header_block),
		cmocka_unit_test(test_gap_across_frames),
		cmocka_unit_test(test_stream_limit),
		cmocka_unit_test(test_unknown_frame),
		cmocka_unit_test(test_frame_errors),
		cmocka_unit_test(test_bad_status),
		cmocka_unit_test(test_long_fields),
		cmocka_unit_test(test_many_uncertain),
		cmocka_unit_test(test_grpc),
		cmocka_unit_test(test_stream_timeout),
		cmocka_unit_test(test_sink_drop),
		cmocka_unit_test(test_record_too_big),
		cmocka_unit_test(test_settings_table_size_race),
		cmocka_unit_test(test_alloc_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
