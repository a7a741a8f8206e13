/* SHA-256 stream digests per flow direction. See stream_digest.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "sealtap/flow.h"
#include "sealtap/stream_digest.h"

struct stream_digest {
	FILE *out;
	pthread_mutex_t lock;
};

struct dir_state {
	EVP_MD_CTX *md;
	uint64_t bytes, gap_bytes;
	uint32_t ngaps;
	uint64_t gaps[STREAM_DIGEST_MAX_GAPS][2];
	int end; /* enum reasm_end, 0 until ended */
	uint8_t sha[32];
};

struct sd_flow {
	struct dir_state d[2];
};

struct stream_digest *stream_digest_new(FILE *out)
{
	struct stream_digest *sd = calloc(1, sizeof(*sd));
	if (!sd)
		return NULL;
	sd->out = out;
	pthread_mutex_init(&sd->lock, NULL);
	return sd;
}

void stream_digest_free(struct stream_digest *sd)
{
	if (!sd)
		return;
	pthread_mutex_destroy(&sd->lock);
	free(sd);
}

/* Returns the state of |f|, creating it on first use; NULL if out of
 * memory (then the flow is simply not digested, and says so at release). */
static struct sd_flow *state_of(struct flow *f)
{
	if (f->app)
		return f->app;
	struct sd_flow *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	for (int i = 0; i < 2; i++) {
		st->d[i].md = EVP_MD_CTX_new();
		if (!st->d[i].md ||
		    EVP_DigestInit_ex(st->d[i].md, EVP_sha256(), NULL) != 1) {
			EVP_MD_CTX_free(st->d[0].md);
			EVP_MD_CTX_free(st->d[1].md);
			free(st);
			return NULL;
		}
	}
	f->app = st;
	return st;
}

static void sd_data(void *u, struct flow *f, unsigned dir, uint64_t off,
		    const uint8_t *data, uint32_t len, uint64_t ts)
{
	(void)u, (void)off, (void)ts;
	struct sd_flow *st = state_of(f);
	if (!st)
		return;
	EVP_DigestUpdate(st->d[dir].md, data, len);
	st->d[dir].bytes += len;
}

static void sd_gap(void *u, struct flow *f, unsigned dir, uint64_t off,
		   uint64_t len, uint64_t ts)
{
	(void)u, (void)ts;
	struct sd_flow *st = state_of(f);
	if (!st)
		return;
	struct dir_state *d = &st->d[dir];
	d->gap_bytes += len;
	if (d->ngaps < STREAM_DIGEST_MAX_GAPS) {
		d->gaps[d->ngaps][0] = off;
		d->gaps[d->ngaps][1] = len;
	}
	d->ngaps++;
}

static void sd_end(void *u, struct flow *f, unsigned dir, enum reasm_end how,
		   uint64_t ts)
{
	(void)u, (void)ts;
	struct sd_flow *st = f->app;
	if (!st)
		return;
	st->d[dir].end = how;
}

static void write_dir(struct stream_digest *sd, struct flow *f,
		      struct dir_state *d, unsigned dir)
{
	char src[64], dst[64], hex[65];
	unsigned int n = 32;
	EVP_DigestFinal_ex(d->md, d->sha, &n);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d->sha[i]);
	flow_key_endpoint_str(&f->key, dir, src, sizeof(src));
	flow_key_endpoint_str(&f->key, dir ^ 1, dst, sizeof(dst));
	const char *role = f->client_dir == FLOW_ROLE_UNKNOWN ? "unknown"
			   : f->client_dir == dir		 ? "client"
								 : "server";
	pthread_mutex_lock(&sd->lock);
	fprintf(sd->out,
		"{\"src\":\"%s\",\"dst\":\"%s\",\"role\":\"%s\",\"syn\":%s,"
		"\"base_seq\":%u,\"bytes\":%llu,\"gap_bytes\":%llu,"
		"\"ngaps\":%u,\"gaps\":[",
		src, dst, role,
		(f->dir[dir].flags & REASM_DIR_SYN) ? "true" : "false",
		f->dir[dir].base_seq, (unsigned long long)d->bytes,
		(unsigned long long)d->gap_bytes, d->ngaps);
	for (uint32_t i = 0; i < d->ngaps && i < STREAM_DIGEST_MAX_GAPS; i++)
		fprintf(sd->out, "%s[%llu,%llu]", i ? "," : "",
			(unsigned long long)d->gaps[i][0],
			(unsigned long long)d->gaps[i][1]);
	fprintf(sd->out, "],\"sha256\":\"%s\",\"end\":\"%s\"}\n", hex,
		d->end ? reasm_end_name(d->end) : "none");
	pthread_mutex_unlock(&sd->lock);
}

static void sd_free(void *u, struct flow *f)
{
	struct stream_digest *sd = u;
	struct sd_flow *st = f->app;
	if (!st)
		return;
	for (unsigned i = 0; i < 2; i++) {
		struct dir_state *d = &st->d[i];
		if (d->bytes || d->gap_bytes)
			write_dir(sd, f, d, i);
		EVP_MD_CTX_free(d->md);
	}
	free(st);
	f->app = NULL;
}

static const struct reasm_ops ops = {
	.on_data = sd_data,
	.on_gap = sd_gap,
	.on_end = sd_end,
	.on_flow_free = sd_free,
};

const struct reasm_ops *stream_digest_ops(void)
{
	return &ops;
}
