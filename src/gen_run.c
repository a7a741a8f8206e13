/* sealtap gen: one run, from options to pcap file.
 *
 * Connections start one after another (0-2 ms apart) and overlap in time.
 * Each runs its own steps (gen_conn.c); a min-heap on (time of the next
 * segment, connection index) merges their segments into one time-ordered
 * capture. A connection is only stepped when it is the earliest and its
 * queue is empty, and a step never makes segments earlier than the
 * connection's clock, so the merge needs no look-ahead and memory stays
 * bounded by the connections open at the same time.
 *
 * Capture impairments come after the merge, in the order a mirror would
 * apply them: --midstream (the capture starts late), --loss, --reorder.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_priv.h"
#include "sealtap/common.h"

/* 2024-01-01T00:00:00Z: a fixed epoch, never the wall clock. */
#define BASE_NS (1704067200ull * ST_NS_PER_SEC)
#define START_GAP_NS (2 * ST_NS_PER_MS)

/* ---- options ------------------------------------------------------- */

void gen_opts_default(struct gen_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->seed = 1;
	o->connections = 1;
	o->streams = 10;
	o->concurrency = 4;
	strcpy(o->methods[0], "GET");
	strcpy(o->methods[1], "POST");
	o->nmethods = 2;
	o->header_size = 32;
	o->req_body = (struct gen_range){ 0, 2048 };
	o->resp_body = (struct gen_range){ 100, 8192 };
	o->huffman = true;
	o->mtu = 1500;
	o->port = 8080;
}

static int bad(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

static bool range_ok(const struct gen_range *r)
{
	return r->lo <= r->hi && r->hi <= GEN_BODY_MAX;
}

int gen_opts_check(const struct gen_opts *o, char *err, size_t errlen)
{
	if (o->connections < 1 || o->connections > 1000000)
		return bad(err, errlen, "--connections: give 1 to 1000000");
	if (o->streams < 1 || o->streams > 1000000)
		return bad(err, errlen, "--streams: give 1 to 1000000");
	if (o->concurrency < 1 || o->concurrency > 1000)
		return bad(err, errlen, "--concurrency: give 1 to 1000");
	if (o->nmethods < 1 || o->nmethods > GEN_METHODS_MAX)
		return bad(err, errlen, "--methods: give 1 to 8 methods");
	if (o->header_size > GEN_HEADER_SIZE_MAX)
		return bad(err, errlen, "--header-size: at most 60000 bytes "
			   "(nghttp2 refuses header fields over 64 KiB)");
	if ((uint64_t)o->req_headers * (o->header_size + 16) >
	    GEN_HEADER_BLOCK_MAX)
		return bad(err, errlen, "--req-headers x --header-size: at "
			   "most 1 MiB of extra headers per request");
	if (!range_ok(&o->req_body) || !range_ok(&o->resp_body))
		return bad(err, errlen, "--req-body/--resp-body: give N or "
			   "LO-HI with LO <= HI <= 1GiB");
	if (o->padding > 255)
		return bad(err, errlen, "--padding: at most 255 (one-byte Pad "
			   "Length, RFC 9113 §6.1)");
	if (o->rst_ppm > GEN_PPM || o->loss_ppm > GEN_PPM)
		return bad(err, errlen, "--rst/--loss: give 0 to 100%");
	if (o->mtu < GEN_MTU_MIN || o->mtu > GEN_MTU_MAX)
		return bad(err, errlen, "--mtu: give 256 to 9216");
	if (o->ipv6 && o->mtu < 1280)
		return bad(err, errlen, "--mtu: IPv6 needs at least 1280 "
			   "(RFC 8200 §5)");
	if (o->reorder > GEN_REORDER_MAX)
		return bad(err, errlen, "--reorder: window of at most 1024");
	if (o->encap != GEN_ENCAP_NONE && o->vni > 0xffffff)
		return bad(err, errlen, "--vxlan/--geneve: VNI is 24 bits "
			   "(0 to 16777215)");
	if (o->h2c_upgrade && o->grpc)
		return bad(err, errlen, "--h2c-upgrade with --grpc: gRPC "
			   "speaks HTTP/2 with prior knowledge; drop one");
	if (o->port == 0)
		return bad(err, errlen, "--port: give 1 to 65535");
	return 0;
}

/* ---- the merge heap ------------------------------------------------ */

struct heap {
	struct gen_conn **a;
	size_t n, cap;
};

static bool earlier(const struct gen_conn *x, const struct gen_conn *y)
{
	uint64_t tx = gen_conn_next_ts(x), ty = gen_conn_next_ts(y);
	return tx != ty ? tx < ty : x->index < y->index;
}

static void sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < h->n && earlier(h->a[l], h->a[m]))
			m = l;
		if (l + 1 < h->n && earlier(h->a[l + 1], h->a[m]))
			m = l + 1;
		if (m == i)
			return;
		struct gen_conn *t = h->a[i];
		h->a[i] = h->a[m];
		h->a[m] = t;
		i = m;
	}
}

static int heap_push(struct heap *h, struct gen_conn *c)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct gen_conn **a = realloc(h->a, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		h->a = a;
		h->cap = cap;
	}
	size_t i = h->n++;
	h->a[i] = c;
	while (i && earlier(h->a[i], h->a[(i - 1) / 2])) {
		struct gen_conn *t = h->a[i];
		h->a[i] = h->a[(i - 1) / 2];
		h->a[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
	return 0;
}

static void heap_pop(struct heap *h)
{
	h->a[0] = h->a[--h->n];
	sift_down(h, 0);
}

/* ---- the run ------------------------------------------------------- */

/* --reorder: a packet waiting in the window, with how many younger
 * packets have overtaken it. */
struct slot {
	uint32_t len;
	uint32_t overtaken;
	uint8_t data[GEN_FRAME_MAX];
};

struct run {
	const struct gen_opts *o;
	FILE *out;
	struct gen_summary *sum;
	struct gen_rng rng;        /* capture impairments */
	struct heap heap;
	uint32_t started;          /* connections created so far */
	uint64_t next_start_ns;
	struct slot **win;         /* --reorder window, oldest first */
	uint64_t *win_ts;          /* time slots, in capture order */
	uint32_t nwin;
	uint8_t frame[GEN_FRAME_MAX];
	char *err;
	size_t errlen;
};

static int write_frame(struct run *r, uint64_t ts, const uint8_t *p,
		       size_t len)
{
	if (gen_pcap_write_packet(r->out, r->o->nanosecond, ts, p, len) < 0) {
		snprintf(r->err, r->errlen, "write failed");
		return -EIO;
	}
	r->sum->packets++;
	r->sum->bytes += len;
	return 0;
}

/* Sends out one packet of the full window: a random one, except that a
 * packet already overtaken W-1 times goes now, so that no packet moves
 * more than W-1 places. It takes the earliest time slot: reordering
 * changes which packet comes when, never the capture's clock. */
static int reorder_out(struct run *r)
{
	uint32_t w = r->o->reorder, i = 0;
	if (r->win[0]->overtaken + 1 < w)
		i = (uint32_t)gen_rng_below(&r->rng, r->nwin);
	struct slot *s = r->win[i];
	for (uint32_t j = 0; j < i; j++)
		r->win[j]->overtaken++;
	int rc = write_frame(r, r->win_ts[0], s->data, s->len);
	memmove(r->win + i, r->win + i + 1, (r->nwin - i - 1) * sizeof(*r->win));
	memmove(r->win_ts, r->win_ts + 1, (r->nwin - 1) * sizeof(*r->win_ts));
	r->win[--r->nwin] = s; /* keep the slot for reuse */
	return rc;
}

static int reorder_in(struct run *r, uint64_t ts, const uint8_t *p,
		      size_t len)
{
	if (r->o->reorder <= 1)
		return write_frame(r, ts, p, len);
	struct slot *s = r->win[r->nwin];
	memcpy(s->data, p, len);
	s->len = (uint32_t)len;
	s->overtaken = 0;
	r->win_ts[r->nwin++] = ts;
	return r->nwin == r->o->reorder ? reorder_out(r) : 0;
}

/* One segment of |c| through the impairments into the file. */
static int emit(struct run *r, struct gen_conn *c, const struct gen_seg *s)
{
	const struct gen_opts *o = r->o;
	/* Built even if dropped: IPv4 ids advance as on the real wire. */
	size_t len = gen_pcap_frame(c, s, r->frame);
	if (s->len)
		c->payload_pkts++;
	if (o->midstream && c->payload_pkts < o->midstream) {
		r->sum->skipped++;
		return 0;
	}
	if (gen_rng_chance(&r->rng, o->loss_ppm)) {
		r->sum->lost++;
		return 0;
	}
	return reorder_in(r, s->ts_ns, r->frame, len);
}

static int start_next(struct run *r)
{
	if (r->started == r->o->connections)
		return 0;
	struct gen_conn *c = malloc(sizeof(*c));
	if (c) /* before heap_push(): the heap orders by its clock */
		gen_conn_init(c, r->o, r->started, r->next_start_ns);
	if (!c || heap_push(&r->heap, c) < 0) {
		free(c);
		snprintf(r->err, r->errlen, "out of memory");
		return -ENOMEM;
	}
	r->started++;
	r->next_start_ns += gen_rng_below(&r->rng, START_GAP_NS);
	return 0;
}

static void finish_conn(struct run *r, struct gen_conn *c)
{
	if (c->h2)
		gen_h2_count(c->h2, r->sum->frames, &r->sum->streams);
	r->sum->connections++;
	gen_conn_fini(c);
	free(c);
}

/* Advances the earliest connection by one segment or one step. */
static int advance(struct run *r)
{
	struct gen_conn *c = r->heap.a[0];
	int rc = 0;
	if (c->qhead < c->qlen) {
		rc = emit(r, c, &c->q[c->qhead++]);
	} else if (c->phase == GEN_CONN_DONE) {
		heap_pop(&r->heap);
		finish_conn(r, c);
		return 0;
	} else {
		bool first = c->phase == GEN_CONN_IDLE;
		rc = gen_conn_step(c, r->err, r->errlen);
		sift_down(&r->heap, 0);
		/* The next connection joins once this one has begun. */
		if (rc == 0 && first)
			rc = start_next(r);
		return rc;
	}
	sift_down(&r->heap, 0);
	return rc;
}

static int run_init(struct run *r, const struct gen_opts *o, FILE *out,
		    struct gen_summary *sum, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->o = o;
	r->out = out;
	r->sum = sum;
	r->err = err;
	r->errlen = errlen;
	r->next_start_ns = BASE_NS;
	gen_rng_seed(&r->rng, o->seed, 0);
	if (o->reorder <= 1)
		return 0;
	r->win = calloc(o->reorder, sizeof(*r->win));
	r->win_ts = calloc(o->reorder, sizeof(*r->win_ts));
	if (!r->win || !r->win_ts)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->reorder; i++)
		if (!(r->win[i] = malloc(sizeof(struct slot))))
			return -ENOMEM;
	return 0;
}

static void run_fini(struct run *r)
{
	for (size_t i = 0; i < r->heap.n; i++) {
		gen_conn_fini(r->heap.a[i]);
		free(r->heap.a[i]);
	}
	free(r->heap.a);
	for (uint32_t i = 0; r->win && i < r->o->reorder; i++)
		free(r->win[i]);
	free(r->win);
	free(r->win_ts);
}

int gen_run(const struct gen_opts *o, FILE *out, struct gen_summary *sum,
	    char *err, size_t errlen)
{
	memset(sum, 0, sizeof(*sum));
	int rc = gen_opts_check(o, err, errlen);
	if (rc < 0)
		return rc;
	struct run r;
	rc = run_init(&r, o, out, sum, err, errlen);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	if (rc == 0 && gen_pcap_write_header(out, o->nanosecond) < 0) {
		snprintf(err, errlen, "write failed");
		rc = -EIO;
	}
	if (rc == 0)
		rc = start_next(&r);
	while (rc == 0 && r.heap.n)
		rc = advance(&r);
	while (rc == 0 && r.nwin)
		rc = reorder_out(&r);
	if (rc == 0 && fflush(out) != 0) {
		snprintf(err, errlen, "write failed");
		rc = -EIO;
	}
	run_fini(&r);
	return rc;
}
