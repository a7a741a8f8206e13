/* Offline source: pcap/pcapng via libpcap, streamed or preloaded.
 *
 * Packet bytes are plaintext, so none is left where a core dump would
 * write it: libpcap reads the file through a stdio buffer that is ours
 * (not dumped, wiped and unmapped at close), and each packet in libpcap's
 * own read buffer is wiped once the caller is done with it (at the next
 * read, or at close), so that buffer only ever holds the packet in use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>

#include "sealtap/capture.h"
#include "sealtap/decode.h"
#include "sealtap/mem.h"

/* The stdio buffer libpcap reads the file through. */
#define PCAP_IOBUF (256u * 1024)

struct capture_pcap {
	pcap_t *pc;
	int link;
	uint64_t count; /* packets read so far, for error messages */
	uint8_t *iobuf; /* PCAP_IOBUF bytes, not dumped; the FILE's buffer */
	uint8_t *last;  /* the packet handed out last, in libpcap's buffer */
	uint32_t last_len;
	char path[512];
};

/* Wipes the packet handed out last (libpcap's buffer is writable; the
 * pointer is const only in its API). */
static void wipe_last(struct capture_pcap *p)
{
	if (p->last)
		explicit_bzero(p->last, p->last_len);
	p->last = NULL;
}

int capture_pcap_open(const char *path, struct capture_pcap **out, char *err,
		      size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct capture_pcap *p = calloc(1, sizeof(*p));
	if (p)
		p->iobuf = mem_nodump_alloc(PCAP_IOBUF);
	if (!p || !p->iobuf) {
		free(p);
		snprintf(err, errlen, "out of memory opening '%s'", path);
		return -ENOMEM;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "cannot open capture '%s': %s", path,
			 strerror(e));
		capture_pcap_close(p);
		return -e;
	}
	/* Before any read: the file's bytes go through our buffer. */
	setvbuf(f, (char *)p->iobuf, _IOFBF, PCAP_IOBUF);
	/* Nanosecond precision: pcapng and ns pcaps keep theirs, us pcaps
	 * are scaled by libpcap. */
	pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(
		f, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!pc) {
		fclose(f); /* libpcap leaves it to the caller on failure */
		/* libpcap's text already names the problem (unknown
		 * format, truncated header); strip its trailing newline. */
		size_t n = strlen(perr);
		while (n && (perr[n - 1] == '\n' || perr[n - 1] == '.'))
			perr[--n] = 0;
		snprintf(err, errlen, "cannot read capture '%s': %s", path,
			 perr[0] ? perr : "unknown error");
		capture_pcap_close(p);
		return -EINVAL;
	}
	p->pc = pc;
	int link = pcap_datalink(pc);
	if (!decode_link_supported(link)) {
		const char *nm = pcap_datalink_val_to_name(link);
		snprintf(err, errlen,
			 "capture '%s' has link type %d (%s), which sealtap "
			 "does not decode; supported: Ethernet, raw IP, Linux "
			 "cooked (SLL, SLL2), BSD loopback",
			 path, link, nm ? nm : "unknown");
		capture_pcap_close(p);
		return -ENOTSUP;
	}
	p->link = link;
	snprintf(p->path, sizeof(p->path), "%s", path);
	*out = p;
	return 0;
}

void capture_pcap_close(struct capture_pcap *p)
{
	if (!p)
		return;
	if (p->pc) {
		wipe_last(p);
		pcap_close(p->pc); /* closes the FILE; the buffer stays ours */
	}
	if (p->iobuf) {
		explicit_bzero(p->iobuf, PCAP_IOBUF);
		mem_nodump_free(p->iobuf, PCAP_IOBUF);
	}
	free(p);
}

int capture_pcap_link(const struct capture_pcap *p)
{
	return p->link;
}

int capture_pcap_next(struct capture_pcap *p, const uint8_t **data,
		      uint32_t *caplen, uint32_t *wirelen, uint64_t *ts_ns,
		      char *err, size_t errlen)
{
	struct pcap_pkthdr *h;
	const u_char *d;
	wipe_last(p);
	int rc = pcap_next_ex(p->pc, &h, &d);
	if (rc == 1) {
		p->count++;
		p->last = (uint8_t *)(uintptr_t)d;
		p->last_len = h->caplen;
		*data = d;
		*caplen = h->caplen;
		*wirelen = h->len;
		/* With nanosecond precision tv_usec holds nanoseconds. */
		*ts_ns = (uint64_t)h->ts.tv_sec * ST_NS_PER_SEC +
			 (uint64_t)h->ts.tv_usec;
		return 1;
	}
	if (rc == PCAP_ERROR_BREAK)
		return 0;
	snprintf(err, errlen,
		 "capture '%s' is truncated or corrupt after %llu packets: %s",
		 p->path, (unsigned long long)p->count, pcap_geterr(p->pc));
	return -EIO;
}

/* ---- preload ---- */

/* One record in the preload buffer; |caplen| bytes follow, padded to 8. */
struct rec {
	uint64_t ts;
	uint32_t caplen;
	uint32_t wirelen;
	int32_t link;
	uint16_t l4_off; /* TCP header offset, 0 if not TCP */
	uint16_t pad;
};

struct capture_preload {
	uint8_t *buf;
	uint64_t len, cap;
	uint64_t packets, bytes;
	uint64_t first_ts, last_ts;
};

static int grow(struct capture_preload *pl, uint64_t need)
{
	if (pl->len + need <= pl->cap)
		return 0;
	uint64_t ncap = pl->cap ? pl->cap : (1u << 20);
	while (ncap < pl->len + need)
		ncap *= 2;
	/* The whole capture, packets and all: not dumped. */
	uint8_t *nb = mem_nodump_resize(pl->buf, pl->cap, ncap);
	if (!nb)
		return -ENOMEM;
	pl->buf = nb;
	pl->cap = ncap;
	return 0;
}

static int preload_one(struct capture_preload *pl, const char *path,
		       const struct decode_cfg *dcfg, char *err, size_t errlen)
{
	struct capture_pcap *p;
	int rc = capture_pcap_open(path, &p, err, errlen);
	if (rc < 0)
		return rc;
	const uint8_t *d;
	uint32_t cl, wl;
	uint64_t ts;
	while ((rc = capture_pcap_next(p, &d, &cl, &wl, &ts, err, errlen)) ==
	       1) {
		uint64_t need = sizeof(struct rec) + ((cl + 7u) & ~7u);
		if (grow(pl, need) < 0) {
			snprintf(err, errlen,
				 "out of memory preloading '%s' (%llu bytes "
				 "so far)",
				 path, (unsigned long long)pl->len);
			capture_pcap_close(p);
			return -ENOMEM;
		}
		struct rec *r = (struct rec *)(pl->buf + pl->len);
		r->ts = ts;
		r->caplen = cl;
		r->wirelen = wl;
		r->link = p->link;
		r->pad = 0;
		struct decode_pkt dp;
		struct st_counters scratch;
		r->l4_off = decode_packet(dcfg, p->link, d, cl, wl, &dp,
					  &scratch) == DECODE_OK
				    ? dp.l4_off
				    : 0;
		memcpy(r + 1, d, cl);
		pl->len += need;
		if (pl->packets == 0 || ts < pl->first_ts)
			pl->first_ts = ts;
		if (ts > pl->last_ts)
			pl->last_ts = ts;
		pl->packets++;
		pl->bytes += wl;
	}
	capture_pcap_close(p);
	return rc;
}

int capture_preload_load(const char *const *paths, unsigned n,
			 const struct decode_cfg *dcfg,
			 struct capture_preload **out, char *err,
			 size_t errlen)
{
	struct capture_preload *pl = calloc(1, sizeof(*pl));
	if (!pl) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		int rc = preload_one(pl, paths[i], dcfg, err, errlen);
		if (rc < 0) {
			capture_preload_free(pl);
			return rc;
		}
	}
	*out = pl;
	return 0;
}

void capture_preload_free(struct capture_preload *pl)
{
	if (!pl)
		return;
	mem_nodump_free(pl->buf, pl->cap);
	free(pl);
}

uint64_t capture_preload_packets(const struct capture_preload *pl)
{
	return pl->packets;
}

uint64_t capture_preload_bytes(const struct capture_preload *pl)
{
	return pl->bytes;
}

void capture_preload_iter_init(struct capture_preload_iter *it,
			       const struct capture_preload *pl,
			       uint64_t passes)
{
	it->pl = pl;
	it->pos = 0;
	it->pass = 0;
	it->passes = passes;
	it->shift = 0;
}

int capture_preload_next(struct capture_preload_iter *it,
			 const uint8_t **data, uint32_t *caplen,
			 uint32_t *wirelen, uint64_t *ts_ns, int *link,
			 uint16_t *l4_off)
{
	const struct capture_preload *pl = it->pl;
	if (it->pos >= pl->len) {
		if (++it->pass >= it->passes || pl->len == 0)
			return 0;
		it->pos = 0;
		/* Keep packet time moving forward across passes. */
		it->shift += pl->last_ts - pl->first_ts + ST_NS_PER_MS;
	}
	const struct rec *r = (const struct rec *)(pl->buf + it->pos);
	*data = (const uint8_t *)(r + 1);
	*caplen = r->caplen;
	*wirelen = r->wirelen;
	*ts_ns = r->ts + it->shift;
	*link = r->link;
	*l4_off = r->l4_off;
	it->pos += sizeof(*r) + ((r->caplen + 7u) & ~7u);
	return 1;
}
