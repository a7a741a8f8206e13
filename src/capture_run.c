/* The capture run: EAL set-up, mempool, rings, workers, the RX stage and
 * the worker poll loops. See capture.h for the design. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_memory.h>
#include <sys/mman.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "sealtap/capture.h"
#include "sealtap/export.h"
#include "sealtap/h2.h"
#include "sealtap/keys_runtime.h"
#include "sealtap/policy.h"
#include "sealtap/record_seal.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/stream_digest.h"
#include "sealtap/worker.h"

#define RUN_MAX_WORKERS 128
#define RUN_MAX_BURST 512
#define RUN_MEMPOOL_CACHE 256
/* Empty polls (or full-ring retries) before a thread yields its CPU: keeps
 * runs with more lcores than CPUs (e.g. 2 workers + RX on 2 cores) moving,
 * at no cost when a thread has work. */
#define RUN_SPINS_BEFORE_YIELD 64

static volatile sig_atomic_t stop_requested;

void capture_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct run;

/* What each worker lcore is given. */
struct wctx {
	struct run *run;
	struct worker *w;
	struct h2_ctx *h2;        /* HTTP/2 analyzer (analyzer h2) */
	struct record_sealer *sealer; /* policy + keys for its records */
	struct export_ring *out;  /* this worker's ring to the exporter */
	bool out_wait;            /* offline: wait for room, never drop */
	struct st_counters h2_ctr; /* the analyzer's counters */
	struct rte_ring *ring; /* software dispatch: our input */
	uint16_t queue;        /* rss: our RX queue */
	unsigned id;
} __rte_cache_aligned;

struct run {
	const struct st_config *cfg;
	const struct capture_opts *o;
	struct rte_mempool *mp;
	unsigned nworkers;
	struct wctx wc[RUN_MAX_WORKERS];
	struct st_counters rx; /* the RX stage's own counters */
	atomic_int input_done; /* RX stage finished: drain and end */
	bool live, rss;
	struct capture_port port;
	double ns_per_cycle;
	struct stream_digest *sd;
	FILE *digest_out;
	struct export_ring *out_rings; /* one per worker, for the exporter */
	const struct policy *policy;
	struct keys_runtime *keys;
	struct policy *own_policy;     /* loaded here (not sealtap run) */
	struct keys_runtime *own_keys;
	struct export_file *exporter;
	/* dispatch() sorts a burst per worker here (too big for a stack). */
	struct rte_mbuf *per[RUN_MAX_WORKERS][RUN_MAX_BURST];
};

static inline struct capture_meta *meta_of(struct rte_mbuf *m)
{
	return (struct capture_meta *)rte_mbuf_to_priv(m);
}

static inline uint64_t wall_ns(const struct run *r)
{
	return (uint64_t)((double)rte_get_tsc_cycles() * r->ns_per_cycle);
}

/* ---- DPDK log messages become our JSON log lines ---- */

static ssize_t dpdk_log_write(void *cookie, const char *buf, size_t len)
{
	(void)cookie;
	char line[1024];
	size_t n = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, buf, n);
	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	line[n] = 0;
	if (n == 0)
		return (ssize_t)len;
	unsigned lvl = (unsigned)rte_log_cur_msg_loglevel();
	enum log_level l = lvl <= RTE_LOG_ERR	  ? LOG_LEVEL_ERROR
			   : lvl <= RTE_LOG_WARNING ? LOG_LEVEL_WARN
			   : lvl <= RTE_LOG_INFO    ? LOG_LEVEL_INFO
						    : LOG_LEVEL_DEBUG;
	log_kv(l, line, "src", "dpdk", NULL);
	return (ssize_t)len;
}

static void redirect_dpdk_log(void)
{
	cookie_io_functions_t io = { .write = dpdk_log_write };
	FILE *f = fopencookie(NULL, "w", io);
	if (f) {
		setvbuf(f, NULL, _IOLBF, 0);
		rte_openlog_stream(f);
	}
}

/* ---- EAL ---- */

struct eal_argv {
	char *v[CONFIG_MAX_LIST + 64];
	int n;
	char lcores[1024];
	char mem[32];
};

static void eal_push(struct eal_argv *a, const char *s)
{
	if (a->n < (int)ST_ARRAY_SIZE(a->v) - 1)
		a->v[a->n++] = (char *)s;
}

/* Free hugepage memory in MiB and whether hugetlbfs is mounted. */
static uint64_t hugepages_free_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	char line[256];
	uint64_t nfree = 0, size_kb = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if (sscanf(line, "HugePages_Free: %llu", &v) == 1)
			nfree = v;
		else if (sscanf(line, "Hugepagesize: %llu kB", &v) == 1)
			size_kb = v;
	}
	fclose(f);
	f = fopen("/proc/mounts", "r");
	bool mounted = false;
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (strstr(line, " hugetlbfs "))
				mounted = true;
		fclose(f);
	}
	return mounted ? nfree * size_kb / 1024 : 0;
}

/* Lcore 0 (main, the RX stage) on the first allowed CPU; workers on the
 * others, round robin, sharing CPUs only when there are too few. */
static void lcore_map(char *buf, size_t len, unsigned nworkers)
{
	cpu_set_t set;
	int cpus[CPU_SETSIZE], ncpu = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				cpus[ncpu++] = c;
	if (ncpu == 0)
		cpus[ncpu++] = 0;
	size_t off = (size_t)snprintf(buf, len, "0@%d", cpus[0]);
	for (unsigned i = 1; i <= nworkers && off < len; i++) {
		int cpu = ncpu > 1 ? cpus[1 + (int)((i - 1) % (unsigned)(ncpu - 1))]
				   : cpus[0];
		off += (size_t)snprintf(buf + off, len - off, ",%u@%d", i, cpu);
	}
}

static int eal_start(struct run *r, uint64_t pool_mb, bool *huge, char *err,
		     size_t errlen)
{
	static bool started;
	if (started) {
		snprintf(err, errlen, "EAL already initialised in this process");
		return -EALREADY;
	}
	const struct st_config *cfg = r->cfg;
	struct eal_argv a = { .n = 0 };
	eal_push(&a, "sealtap");
	lcore_map(a.lcores, sizeof(a.lcores), r->nworkers);
	eal_push(&a, "--lcores");
	eal_push(&a, a.lcores);
	eal_push(&a, "--no-telemetry");
	eal_push(&a, "--log-level=lib.eal:warning");
	if (!r->live)
		eal_push(&a, "--no-pci");
	uint64_t hfree = hugepages_free_mb();
	*huge = cfg->eal.hugepages == CONFIG_HUGEPAGES_ON ||
		(cfg->eal.hugepages == CONFIG_HUGEPAGES_AUTO &&
		 hfree >= pool_mb + 64);
	if (cfg->eal.hugepages == CONFIG_HUGEPAGES_ON && hfree == 0) {
		snprintf(err, errlen,
			 "eal.hugepages is 'on' but no free hugepages are "
			 "mounted; reserve some (/proc/sys/vm/nr_hugepages, "
			 "hugetlbfs on /dev/hugepages) or set it to auto");
		return -ENOMEM;
	}
	if (*huge) {
		eal_push(&a, "--in-memory");
	} else {
		/* --no-huge cannot be combined with --in-memory; --no-shconf
		 * keeps runs from sharing state files. */
		eal_push(&a, "--no-huge");
		eal_push(&a, "--no-shconf");
		snprintf(a.mem, sizeof(a.mem), "%u", cfg->eal.memory_mb);
		eal_push(&a, "-m");
		eal_push(&a, a.mem);
	}
	for (unsigned i = 0; i < cfg->eal.nargs; i++)
		eal_push(&a, cfg->eal.args[i]);
	for (unsigned i = 0; i < r->o->neal_args; i++)
		eal_push(&a, r->o->eal_args[i]);
	a.v[a.n] = NULL;
	redirect_dpdk_log();
	if (rte_eal_init(a.n, a.v) < 0) {
		snprintf(err, errlen, "DPDK EAL initialisation failed: %s "
			 "(check eal.args and the EAL arguments after --)",
			 rte_strerror(rte_errno));
		return -rte_errno;
	}
	started = true;
	if (rte_lcore_count() < r->nworkers + 1) {
		snprintf(err, errlen, "EAL gave %u lcores but %u workers + 1 "
			 "RX lcore are needed", rte_lcore_count(),
			 r->nworkers);
		return -EINVAL;
	}
	return 0;
}

/* ---- EAL memory holds packets: never in a core dump ---- */

static int nodump_msl(const struct rte_memseg_list *msl, void *arg)
{
	(void)arg;
	if (msl->base_va && msl->len)
		(void)madvise(msl->base_va, msl->len, MADV_DONTDUMP);
	return 0;
}

/* Marks every EAL memory area (mbufs hold raw packets, i.e. plaintext)
 * MADV_DONTDUMP. Hugepage and --no-huge memory alike. */
static void eal_memory_nodump(void)
{
	rte_memseg_list_walk(nodump_msl, NULL);
}

/* ---- mempool ---- */

static uint32_t pool_size(const struct run *r)
{
	const struct st_config *cfg = r->cfg;
	if (cfg->capture.mbufs)
		return cfg->capture.mbufs;
	/* Every ring full, every RX descriptor filled, a burst in flight on
	 * every lcore, every per-lcore cache full, and some slack. */
	uint64_t n = (uint64_t)r->nworkers * cfg->capture.ring_size +
		     (uint64_t)cfg->capture.burst * 2 * (r->nworkers + 1) +
		     (uint64_t)RUN_MEMPOOL_CACHE * (r->nworkers + 1) + 1024;
	if (r->live)
		n += (uint64_t)cfg->capture.rx_desc * r->nworkers;
	return n > 16u << 20 ? 16u << 20 : (uint32_t)n;
}

static uint64_t mbuf_bytes(const struct st_config *cfg)
{
	return sizeof(struct rte_mbuf) +
	       RTE_ALIGN(sizeof(struct capture_meta), RTE_MBUF_PRIV_ALIGN) +
	       cfg->capture.mbuf_data_size + 64;
}

static int pool_create(struct run *r, char *err, size_t errlen)
{
	uint32_t n = pool_size(r);
	uint16_t priv = RTE_ALIGN(sizeof(struct capture_meta),
				  RTE_MBUF_PRIV_ALIGN);
	r->mp = rte_pktmbuf_pool_create("st_mbufs", n, RUN_MEMPOOL_CACHE, priv,
					(uint16_t)r->cfg->capture.mbuf_data_size,
					(int)rte_socket_id());
	if (!r->mp) {
		uint64_t mb = (uint64_t)n * mbuf_bytes(r->cfg) >> 20;
		snprintf(err, errlen,
			 "cannot create a pool of %u mbufs (~%llu MiB): %s; "
			 "raise eal.memory_mb (now %u) or lower "
			 "capture.ring_size/capture.mbufs/capture.workers",
			 n, (unsigned long long)mb, rte_strerror(rte_errno),
			 r->cfg->eal.memory_mb);
		return -ENOMEM;
	}
	return 0;
}

/* ---- workers ---- */

/* Processes a burst already in the worker's hands and frees it. */
static void process_burst(struct worker *w, struct rte_mbuf **m, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (i + 2 < n)
			rte_prefetch0(rte_pktmbuf_mtod(m[i + 2], void *));
		struct capture_meta *cm = meta_of(m[i]);
		if (cm->decoded) {
			worker_packet(w, &cm->d, cm->ts);
			continue;
		}
		/* data_len: bytes present; pkt_len: length on the wire. */
		worker_raw(w, cm->link, rte_pktmbuf_mtod(m[i], uint8_t *),
			   m[i]->data_len, m[i]->pkt_len, cm->ts);
	}
	rte_pktmbuf_free_bulk(m, n);
}

/* Software dispatch: take bursts from our ring until the RX stage is done
 * and the ring is empty. */
/* End of a burst, or an idle spin: the worker holds no key snapshot, so
 * the keys thread may reclaim retired ones (RCU quiescent point). Its
 * vector registers still hold the last bytes memcpy moved (packet data,
 * body values); cleared, so a core dump of an idle or between-bursts
 * worker has none (mem.h). */
static inline void burst_done(struct wctx *wc)
{
	if (wc->sealer)
		record_seal_quiescent(wc->sealer);
	mem_scrub_registers();
}

static void ring_loop(struct wctx *wc)
{
	struct run *r = wc->run;
	struct rte_mbuf *m[RUN_MAX_BURST];
	unsigned burst = r->cfg->capture.burst, idle = 0;
	for (;;) {
		unsigned n = rte_ring_sc_dequeue_burst(wc->ring, (void **)m,
						       burst, NULL);
		burst_done(wc);
		if (n) {
			process_burst(wc->w, m, n);
			idle = 0;
			continue;
		}
		if (atomic_load_explicit(&r->input_done, memory_order_acquire) &&
		    rte_ring_empty(wc->ring))
			break;
		if (r->live)
			worker_clock(wc->w, wall_ns(r));
		if (++idle % RUN_SPINS_BEFORE_YIELD == 0)
			sched_yield();
		else
			rte_pause();
	}
}

/* RSS dispatch: poll our own RX queue until asked to stop. */
static void queue_loop(struct wctx *wc)
{
	struct run *r = wc->run;
	struct rte_mbuf *m[RUN_MAX_BURST];
	unsigned burst = r->cfg->capture.burst;
	struct worker *w = wc->w;
	while (!atomic_load_explicit(&r->input_done, memory_order_acquire)) {
		uint16_t n = rte_eth_rx_burst(r->port.port_id, wc->queue, m,
					      (uint16_t)burst);
		uint64_t now = wall_ns(r);
		burst_done(wc);
		if (n == 0) {
			worker_clock(w, now);
			continue;
		}
		for (uint16_t i = 0; i < n; i++) {
			ST_CTR_INC(&w->ctr, rx_packets);
			ST_CTR_ADD(&w->ctr, rx_bytes, m[i]->pkt_len);
			worker_raw(w, DECODE_LINK_ETHERNET,
				   rte_pktmbuf_mtod(m[i], uint8_t *),
				   m[i]->data_len, m[i]->pkt_len, now);
		}
		rte_pktmbuf_free_bulk(m, n);
	}
}

static int worker_lcore(void *arg)
{
	struct wctx *wc = arg;
	if (mem_nodump_stack() != 0)
		log_kv(LOG_LEVEL_WARN, "worker stack stays in core dumps "
		       "(madvise refused)", NULL);
	if (wc->ring)
		ring_loop(wc);
	else
		queue_loop(wc);
	worker_finish(wc->w);
	return 0;
}

/* ---- the RX stage (main lcore) ---- */

/* Picks the worker for an mbuf; with one worker it is always 0 and the
 * worker decodes. Returns -1 if the packet was rejected (and freed). */
static int classify(struct run *r, struct rte_mbuf *m)
{
	struct capture_meta *cm = meta_of(m);
	cm->decoded = 0;
	if (r->nworkers == 1)
		return 0;
	cm->rc = decode_packet(&r->cfg->decode, cm->link,
			       rte_pktmbuf_mtod(m, uint8_t *), m->data_len,
			       m->pkt_len, &cm->d, &r->rx);
	cm->decoded = 1;
	if (cm->rc != DECODE_OK) {
		rte_pktmbuf_free(m);
		return -1;
	}
	struct flow_key canon;
	flow_key_canon(&cm->d.key, &canon);
	uint32_t h = flow_key_hash(&canon);
	return (int)(((uint64_t)h * r->nworkers) >> 32);
}

/* Hands |n| classified mbufs to the workers. Offline: waits for room.
 * Live: drops and counts what does not fit. */
static void dispatch(struct run *r, struct rte_mbuf **m, unsigned n)
{
	struct rte_mbuf *(*per)[RUN_MAX_BURST] = r->per;
	unsigned cnt[RUN_MAX_WORKERS] = { 0 };
	for (unsigned i = 0; i < n; i++) {
		int wi = classify(r, m[i]);
		if (wi >= 0)
			per[wi][cnt[wi]++] = m[i];
	}
	for (unsigned w = 0; w < r->nworkers; w++) {
		unsigned done = 0, spins = 0;
		while (done < cnt[w]) {
			done += rte_ring_sp_enqueue_burst(
				r->wc[w].ring, (void **)&per[w][done],
				cnt[w] - done, NULL);
			if (done == cnt[w])
				break;
			if (r->live) {
				ST_CTR_ADD(&r->rx, rx_ring_full, cnt[w] - done);
				rte_pktmbuf_free_bulk(&per[w][done],
						      cnt[w] - done);
				break;
			}
			if (++spins % RUN_SPINS_BEFORE_YIELD == 0)
				sched_yield();
			else
				rte_pause();
		}
	}
}

/* Copies one captured frame into |m|; frames longer than the data room
 * are cut (and will decode as truncated), counted as oversize. */
static void fill_mbuf(struct run *r, struct rte_mbuf *m, const uint8_t *d,
		      uint32_t caplen, uint32_t wirelen, uint64_t ts, int link)
{
	uint16_t room = rte_pktmbuf_tailroom(m);
	uint32_t n = caplen;
	if (n > room) {
		n = room;
		ST_CTR_INC(&r->rx, rx_oversize);
	}
	rte_memcpy(rte_pktmbuf_mtod(m, void *), d, n);
	m->data_len = (uint16_t)n;
	/* pkt_len carries the wire length so truncation stays visible. */
	m->pkt_len = wirelen > n ? wirelen : n;
	if (caplen < wirelen)
		ST_CTR_INC(&r->rx, rx_truncated_capture);
	struct capture_meta *cm = meta_of(m);
	cm->ts = ts;
	cm->link = link;
	cm->decoded = 0;
	ST_CTR_INC(&r->rx, rx_packets);
	ST_CTR_ADD(&r->rx, rx_bytes, wirelen);
}

/* Takes |burst| mbufs from the pool, waiting (offline) while the workers
 * still hold them all. */
static int alloc_burst(struct run *r, struct rte_mbuf **m, unsigned burst)
{
	unsigned spins = 0;
	while (rte_pktmbuf_alloc_bulk(r->mp, m, burst) != 0) {
		if (stop_requested)
			return -1;
		if (++spins % RUN_SPINS_BEFORE_YIELD == 0)
			sched_yield();
		else
			rte_pause();
	}
	return 0;
}

struct source {
	struct capture_pcap *pc; /* streaming: current file */
	unsigned next_file;
	struct capture_preload_iter it; /* preload */
	bool preload;
	uint16_t l4_off; /* preload: TCP header offset of the last packet */
};

/* Replays after the first are re-keyed (see capture_preload_key). The
 * ports are rewritten in the mbuf copy, never in the preload buffer. */
static void rekey(struct rte_mbuf *m, const struct source *s)
{
	uint16_t k = capture_preload_key(&s->it);
	if (!k || !s->l4_off || s->l4_off + 4u > m->data_len)
		return;
	uint8_t *h = rte_pktmbuf_mtod_offset(m, uint8_t *, s->l4_off);
	uint8_t kh = (uint8_t)(k >> 8), kl = (uint8_t)k;
	h[0] ^= kh;
	h[1] ^= kl;
	h[2] ^= kh;
	h[3] ^= kl;
}

/* Next packet from whichever offline source; 1, 0 (end) or -EIO. */
static int source_next(struct run *r, struct source *s, const uint8_t **d,
		       uint32_t *cl, uint32_t *wl, uint64_t *ts, int *link,
		       char *err, size_t errlen)
{
	if (s->preload) {
		uint16_t l4;
		int rc = capture_preload_next(&s->it, d, cl, wl, ts, link, &l4);
		s->l4_off = l4;
		return rc;
	}
	for (;;) {
		if (!s->pc) {
			if (s->next_file >= r->o->npcaps)
				return 0;
			int rc = capture_pcap_open(r->o->pcaps[s->next_file++],
						   &s->pc, err, errlen);
			if (rc < 0)
				return rc;
		}
		int rc = capture_pcap_next(s->pc, d, cl, wl, ts, err, errlen);
		if (rc != 0) {
			*link = capture_pcap_link(s->pc);
			return rc;
		}
		capture_pcap_close(s->pc);
		s->pc = NULL;
	}
}

static void progress(struct run *r, uint64_t *last)
{
	uint64_t now = wall_ns(r);
	if (now - *last < ST_NS_PER_SEC)
		return;
	*last = now;
	fprintf(stderr, "\r%llu packets read",
		(unsigned long long)r->rx.v[ST_CTR_rx_packets]);
	fflush(stderr);
}

static int rx_offline(struct run *r, struct source *s, struct capture_result *res)
{
	unsigned burst = r->cfg->capture.burst;
	struct rte_mbuf *m[RUN_MAX_BURST];
	uint64_t last_progress = wall_ns(r);
	int rc = 0;
	bool more = true;
	while (more && !stop_requested) {
		if (alloc_burst(r, m, burst) < 0)
			break;
		unsigned n = 0;
		while (n < burst) {
			const uint8_t *d;
			uint32_t cl, wl;
			uint64_t ts;
			int link;
			rc = source_next(r, s, &d, &cl, &wl, &ts, &link,
					 res->input_error,
					 sizeof(res->input_error));
			if (rc <= 0) {
				more = false;
				break;
			}
			fill_mbuf(r, m[n], d, cl, wl, ts, link);
			if (s->preload)
				rekey(m[n], s);
			n++;
		}
		if (n < burst)
			rte_pktmbuf_free_bulk(&m[n], burst - n);
		dispatch(r, m, n);
		/* Packet bytes were copied through the vector registers. */
		mem_scrub_registers();
		if (r->o->progress)
			progress(r, &last_progress);
	}
	if (r->o->progress)
		fprintf(stderr, "\r\033[K");
	return rc < 0 ? rc : 0;
}

/* Live, software dispatch: poll queue 0 and spread over the workers. */
static void rx_live(struct run *r, uint64_t deadline)
{
	unsigned burst = r->cfg->capture.burst;
	struct rte_mbuf *m[RUN_MAX_BURST];
	while (!stop_requested && (!deadline || wall_ns(r) < deadline)) {
		uint16_t n = rte_eth_rx_burst(r->port.port_id, 0, m,
					      (uint16_t)burst);
		if (n == 0)
			continue;
		uint64_t now = wall_ns(r);
		for (uint16_t i = 0; i < n; i++) {
			struct capture_meta *cm = meta_of(m[i]);
			cm->ts = now;
			cm->link = DECODE_LINK_ETHERNET;
			ST_CTR_INC(&r->rx, rx_packets);
			ST_CTR_ADD(&r->rx, rx_bytes, m[i]->pkt_len);
		}
		dispatch(r, m, n);
		/* The PMD copied packet bytes on this thread. */
		mem_scrub_registers();
	}
}

static void wait_live(struct run *r, uint64_t deadline)
{
	while (!stop_requested && (!deadline || wall_ns(r) < deadline))
		rte_delay_us_sleep(10000);
}

/* ---- set-up and tear-down ---- */

/* The analyzer's sink. Live, a full ring drops the record (counted by
 * the analyzer): a worker never waits on the exporter. Offline, nothing is
 * dropped: the worker waits for the exporter, as the reader waits for the
 * workers, so a run over a capture always gives the same records; also
 * while the exporter's writes fail (a full disk: it retries each second),
 * until a stop is asked for, which drops (counted) instead of hanging. */
static int export_push(void *user, const void *rec, uint32_t len)
{
	struct wctx *wc = user;
	unsigned spins = 0;
	while (export_ring_push(wc->out, rec, len) < 0) {
		if (!wc->out_wait || len > wc->out->size / 2 || stop_requested)
			return -1;
		if (++spins % RUN_SPINS_BEFORE_YIELD == 0)
			sched_yield();
		else
			rte_pause();
	}
	return 0;
}

static unsigned analyzer_tick(void *user, uint64_t now, unsigned budget)
{
	struct wctx *wc = user;
	return h2_ctx_tick(wc->h2, now, budget);
}

/* Loads the policy (or the built-in one) and unwraps the DEKs of its
 * tenants into the DEK cache, before any worker starts; or takes the ones
 * sealtap run shares with its ext_proc server. */
static int start_policy(struct run *r, char *err, size_t errlen)
{
	if (r->o->policy) {
		r->policy = r->o->policy;
		r->keys = r->o->keys;
		return 0;
	}
	r->own_policy = r->o->policy_path
				? policy_load(r->o->policy_path, err, errlen)
				: policy_builtin(err, errlen);
	if (!r->own_policy)
		return -EINVAL;
	r->policy = r->own_policy;
	int rc = keys_runtime_start_policy(r->cfg, r->policy, r->nworkers,
					   &r->own_keys, err, errlen);
	r->keys = r->own_keys;
	if (rc == 0)
		log_kv(LOG_LEVEL_INFO, "policy loaded", "policy",
		       r->o->policy_path ? r->o->policy_path : "built-in",
		       NULL);
	return rc;
}

static bool policy_scans_bodies(const struct policy *p)
{
	for (unsigned i = 0; i < policy_route_count(p); i++)
		if (policy_route_scans_bodies(policy_route_at(p, i)))
			return true;
	return policy_route_scans_bodies(policy_default_route(p));
}

/* The HTTP/2 analyzer of one worker and its ring to the exporter. */
static int make_analyzer(struct run *r, struct wctx *wc, char *err,
			 size_t errlen)
{
	const struct st_config *cfg = r->cfg;
	struct export_ring *ring = &r->out_rings[wc->id];
	if (export_ring_init(ring, cfg->export_.ring_size) < 0) {
		snprintf(err, errlen, "cannot allocate the %llu-byte export "
			 "ring of worker %u; lower export.ring_size",
			 (unsigned long long)cfg->export_.ring_size, wc->id);
		return -ENOMEM;
	}
	struct h2_run_info run = { .worker = wc->id, .source = "tap" };
	wc->out = ring;
	wc->out_wait = !r->live;
	struct h2_sink sink = { .write = export_push, .user = wc };
	wc->h2 = h2_ctx_new(&cfg->h2, &run, &sink, &wc->h2_ctr);
	if (wc->h2 && r->policy) {
		wc->sealer = record_seal_new(r->policy,
					     keys_runtime_cache(r->keys),
					     r->o->reader_base + wc->id,
					     &wc->h2_ctr);
		if (wc->sealer) {
			h2_ctx_set_sealer(wc->h2, wc->sealer);
			h2_ctx_keep_bodies(wc->h2,
					   policy_scans_bodies(r->policy));
		}
	}
	if (!wc->h2 || (r->policy && !wc->sealer)) {
		snprintf(err, errlen, "cannot allocate the HTTP/2 analyzer of "
			 "worker %u (h2.memcap %llu MiB, %u streams, %u "
			 "connections); lower them",
			 wc->id, (unsigned long long)(cfg->h2.memcap >> 20),
			 cfg->h2.max_streams, cfg->h2.max_connections);
		return -ENOMEM;
	}
	return 0;
}

static int start_exporter(struct run *r, struct capture_result *res,
			  char *err, size_t errlen)
{
	const struct st_config *cfg = r->cfg;
	const char *dir = cfg->export_.dir && cfg->export_.dir[0]
				  ? cfg->export_.dir
				  : "records";
	snprintf(res->record_dir, sizeof(res->record_dir), "%s", dir);
	struct export_file_cfg ec = {
		.dir = dir,
		.max_bytes = cfg->export_.file_max_bytes,
		.max_age_ns = cfg->export_.file_max_age_ns,
		.flush_ns = cfg->export_.flush_ns,
		.batch_bytes = cfg->export_.batch_bytes,
	};
	return export_file_start(&ec, r->out_rings, r->nworkers, &r->exporter,
				 err, errlen);
}

static int make_workers(struct run *r, char *err, size_t errlen)
{
	const struct st_config *cfg = r->cfg;
	struct worker_cfg wcfg = {
		.decode = cfg->decode,
		.flow = cfg->flow,
		.reasm = cfg->reasm,
	};
	for (unsigned i = 0; i < r->nworkers; i++) {
		struct wctx *wc = &r->wc[i];
		wc->run = r;
		wc->id = i;
		const struct reasm_ops *ops = NULL;
		void *user = NULL;
		if (r->o->analyzer == CAPTURE_ANALYZER_DIGEST) {
			ops = stream_digest_ops();
			user = r->sd;
		} else if (r->o->analyzer == CAPTURE_ANALYZER_H2) {
			int rc = make_analyzer(r, wc, err, errlen);
			if (rc < 0)
				return rc;
			ops = h2_reasm_ops();
			user = wc->h2;
		}
		wc->w = worker_new(i, &wcfg, ops, user);
		if (wc->w && wc->h2) {
			wc->w->tick = analyzer_tick;
			wc->w->tick_user = wc;
		}
		if (!wc->w) {
			snprintf(err, errlen,
				 "cannot allocate worker %u (flow table of %u "
				 "flows + %llu MiB reassembly memory); lower "
				 "flow.max_flows or reasm.worker_memcap",
				 i, cfg->flow.max_flows,
				 (unsigned long long)(cfg->reasm.worker_memcap >>
						      20));
			return -ENOMEM;
		}
		if (r->rss) {
			wc->queue = (uint16_t)i;
			continue;
		}
		char name[32];
		snprintf(name, sizeof(name), "st_w%u", i);
		wc->ring = rte_ring_create(name, cfg->capture.ring_size,
					   (int)rte_socket_id(),
					   RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (!wc->ring) {
			snprintf(err, errlen, "cannot create ring %s of %u "
				 "entries: %s", name, cfg->capture.ring_size,
				 rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	return 0;
}

static void teardown(struct run *r, struct capture_result *res)
{
	res->total = r->rx;
	for (unsigned i = 0; i < r->nworkers; i++) {
		struct wctx *wc = &r->wc[i];
		if (wc->w) {
			counters_sum(&res->total, &wc->w->ctr);
			worker_free(wc->w);
		}
		if (wc->h2) {
			counters_sum(&res->total, &wc->h2_ctr);
			h2_ctx_free(wc->h2);
		}
		record_seal_free(wc->sealer);
		rte_ring_free(wc->ring);
	}
	/* Workers are done: the exporter drains what they left, then the
	 * rings can go. */
	if (r->exporter) {
		struct export_stats st;
		export_file_stop(r->exporter, &st);
		res->records_written = st.records;
		res->record_bytes = st.bytes;
		res->record_files = st.files;
		res->record_write_errors = st.write_errors;
		res->records_lost = st.records_lost;
	}
	if (r->out_rings) {
		for (unsigned i = 0; i < r->nworkers; i++)
			export_ring_fini(&r->out_rings[i]);
		free(r->out_rings);
	}
	/* Keys last: the workers that used them are gone. */
	keys_runtime_halt(r->own_keys);
	keys_runtime_counters(r->own_keys, &res->total);
	keys_runtime_stop(r->own_keys);
	policy_free(r->own_policy);
	if (r->live && r->port.nb_queues)
		capture_port_close(&r->port);
	rte_mempool_free(r->mp);
	stream_digest_free(r->sd);
	if (r->digest_out)
		fclose(r->digest_out);
}

/* Opens every input once before anything starts, so a bad file is an
 * error before EAL set-up rather than halfway through a run. */
static int check_inputs(const struct capture_opts *o, char *err,
			size_t errlen)
{
	for (unsigned i = 0; i < o->npcaps; i++) {
		struct capture_pcap *p;
		int rc = capture_pcap_open(o->pcaps[i], &p, err, errlen);
		if (rc < 0)
			return rc;
		capture_pcap_close(p);
	}
	return 0;
}

int capture_run(const struct st_config *cfg, const struct capture_opts *o,
		struct capture_result *res, char *err, size_t errlen)
{
	static struct run r; /* large; one run per process */
	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	r.cfg = cfg;
	r.o = o;
	r.nworkers = cfg->capture.workers;
	r.live = o->npcaps == 0;
	if (r.nworkers > RUN_MAX_WORKERS || cfg->capture.burst > RUN_MAX_BURST) {
		snprintf(err, errlen, "at most %d workers and bursts of %d",
			 RUN_MAX_WORKERS, RUN_MAX_BURST);
		return -EINVAL;
	}
	int rc = check_inputs(o, err, errlen);
	if (rc < 0)
		return rc;
	struct source src = { .preload = o->preload_passes > 0 };
	struct capture_preload *pl = NULL;
	if (src.preload) {
		rc = capture_preload_load(o->pcaps, o->npcaps, &cfg->decode, &pl,
					  err, errlen);
		if (rc < 0)
			return rc;
		capture_preload_iter_init(&src.it, pl, o->preload_passes);
	}
	if (o->digest_path && o->analyzer == CAPTURE_ANALYZER_DIGEST) {
		r.digest_out = fopen(o->digest_path, "w");
		if (!r.digest_out) {
			snprintf(err, errlen, "cannot write '%s': %s",
				 o->digest_path, strerror(errno));
			capture_preload_free(pl);
			return -errno;
		}
		r.sd = stream_digest_new(r.digest_out);
	}
	uint64_t pool_mb = (uint64_t)pool_size(&r) * mbuf_bytes(cfg) >> 20;
	rc = eal_start(&r, pool_mb, &res->hugepages, err, errlen);
	if (rc == 0)
		rc = pool_create(&r, err, errlen);
	if (rc == 0)
		eal_memory_nodump();
	r.ns_per_cycle = 1e9 / (double)rte_get_tsc_hz();
	/* A NIC hashes the outer header of a tunnelled packet, and the two
	 * directions of a mirrored connection may come in different outer
	 * headers; so RSS is only right when nothing is decapsulated. */
	bool tunnels = cfg->decode.vxlan_port || cfg->decode.geneve_port;
	if (rc == 0 && r.live && tunnels &&
	    cfg->capture.dispatch == CONFIG_DISPATCH_RSS) {
		snprintf(err, errlen,
			 "capture.dispatch 'rss' cannot be used while VXLAN or "
			 "Geneve is decapsulated (the NIC hashes outer "
			 "headers, splitting a connection's directions "
			 "across workers); set decode.vxlan_port and "
			 "decode.geneve_port to 0, or use dispatch auto");
		rc = -EINVAL;
	}
	if (rc == 0 && r.live) {
		rc = capture_port_open(cfg->capture.port, (uint16_t)r.nworkers,
				       cfg->capture.dispatch ==
						       CONFIG_DISPATCH_RSS ||
					       (cfg->capture.dispatch ==
							CONFIG_DISPATCH_AUTO &&
						!tunnels),
				       (uint16_t)cfg->capture.rx_desc, r.mp,
				       &r.port, err, errlen);
		if (rc == 0 && cfg->capture.dispatch == CONFIG_DISPATCH_RSS &&
		    !r.port.rss && r.nworkers > 1) {
			snprintf(err, errlen, "capture.dispatch is 'rss' but "
				 "port %s cannot spread TCP flows over %u "
				 "queues; use auto or software",
				 r.port.name, r.nworkers);
			rc = -ENOTSUP;
		}
		r.rss = rc == 0 && r.port.rss;
	}
	if (rc == 0 && o->analyzer == CAPTURE_ANALYZER_H2) {
		r.out_rings = calloc(r.nworkers, sizeof(*r.out_rings));
		if (!r.out_rings) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && o->analyzer == CAPTURE_ANALYZER_H2)
		rc = start_policy(&r, err, errlen);
	if (rc == 0)
		rc = make_workers(&r, err, errlen);
	if (rc == 0 && o->analyzer == CAPTURE_ANALYZER_H2)
		rc = start_exporter(&r, res, err, errlen);
	if (rc < 0) {
		teardown(&r, res);
		capture_preload_free(pl);
		return rc;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* a supervisor's or a closed terminal's SIGHUP ends the run the
	 * same orderly way (its default would lose the records in flight) */
	signal(SIGHUP, on_signal);
	/* sealtap run holds these until now (see run.c): one that came
	 * during set-up is delivered here */
	sigset_t stopset;
	capture_stop_signals(&stopset);
	pthread_sigmask(SIG_UNBLOCK, &stopset, NULL);
	/* This thread is the RX stage: packet bytes pass through its stack. */
	if (mem_nodump_stack() != 0)
		log_kv(LOG_LEVEL_WARN, "RX stage stack stays in core dumps "
		       "(madvise refused)", NULL);
	res->workers = r.nworkers;
	res->rss = r.rss;
	unsigned lc = rte_get_next_lcore(-1, 1, 0);
	for (unsigned i = 0; i < r.nworkers; i++) {
		rte_eal_remote_launch(worker_lcore, &r.wc[i], lc);
		lc = rte_get_next_lcore(lc, 1, 0);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (r.live) {
		uint64_t deadline =
			o->duration_s > 0
				? wall_ns(&r) + (uint64_t)(o->duration_s * 1e9)
				: 0;
		if (r.rss)
			wait_live(&r, deadline);
		else
			rx_live(&r, deadline);
	} else {
		rc = rx_offline(&r, &src, res);
		if (src.pc)
			capture_pcap_close(src.pc);
	}
	atomic_store_explicit(&r.input_done, 1, memory_order_release);
	rte_eal_mp_wait_lcore();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->wall_s = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	teardown(&r, res);
	capture_preload_free(pl);
	/* A truncated input was processed up to the damage; the caller
	 * reports it from res->input_error. */
	(void)rc;
	return 0;
}
