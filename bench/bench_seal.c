/* Sealing throughput on one core, next to the references it is built on.
 *
 * For each value size (16, 64, 256, 1024, 16384 bytes by default) it
 * measures, in one run and on one pinned core:
 *
 *   ipsecmb_raw     intel-ipsec-mb's direct API (IMB_AES256_GCM_ENC) with a
 *                   precomputed key, incrementing nonce: the ceiling
 *   openssl_raw     OpenSSL EVP AES-256-GCM with a context keyed once, IV
 *                   set per value (EVP_EncryptInit_ex(ctx,NULL,NULL,NULL,iv))
 *   engine_single   seal_gcm_seal(), backend "auto"
 *   engine_burst    seal_gcm_seal_burst(), 32 values per call, each with its
 *                   own input and output buffer
 *   engine_openssl  seal_gcm_seal() forced onto the OpenSSL backend
 *   engine_token    seal_token_seal_gcm(): seal + base64url token text
 *   siv_token       seal_siv_seal() (tokenize), hash: seal_hash_compute()
 *
 * The raw references are given the same AAD bytes the engine builds (the
 * canonical AAD of a typical tenant, key id, field and 16-byte record id),
 * so every row does the same GHASH work. Each figure is the best of
 * --reps runs of at least --seconds each (the median is reported too): the
 * machine may be shared, and interference only ever makes a run slower.
 *
 * Human-readable table on stderr; the last line on stdout is one JSON
 * object. Never prints key bytes or values. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#ifdef BENCH_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

#include "sealtap/common.h"
#include "sealtap/seal.h"

#define BURST 32
#define MAX_REPS 15

static const char TENANT[] = "tenant-0001";
static const char KEY_ID[] = "dek-0001";
static const char FIELD[] = "header:authorization";
static const uint8_t RECORD[16] = {0x3f, 0x2a, 0x91, 0x07, 0x55, 0xc0,
				   0x4e, 0x1b, 0x88, 0x6d, 0x02, 0xfa,
				   0x19, 0xe4, 0x73, 0xb6};

static double opt_seconds = 0.25;
static int opt_reps = 5;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Runs |fn| for |iters| operations and returns the seconds taken. */
typedef double (*bench_fn)(void *arg, size_t size, long iters);

struct result {
	double best, median; /* operations per second */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One thing measured at one size. */
struct variant {
	bench_fn fn;
	void *arg;
	long iters;
	double rates[MAX_REPS];
	struct result *res;
};

/* Calibrates each variant to run at least opt_seconds, then measures them
 * round-robin, opt_reps rounds: a burst of interference from another
 * process hits every variant alike instead of one of them. */
static void measure_all(struct variant *v, int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		long iters = 256;
		double t;
		while ((t = v[i].fn(v[i].arg, size, iters)) < 0.02 &&
		       iters < (1l << 40))
			iters *= 4;
		v[i].iters = (long)((double)iters * opt_seconds / t) + 1;
	}
	for (int r = 0; r < opt_reps; r++)
		for (int i = 0; i < n; i++)
			v[i].rates[r] = (double)v[i].iters /
					v[i].fn(v[i].arg, size, v[i].iters);
	for (int i = 0; i < n; i++) {
		qsort(v[i].rates, (size_t)opt_reps, sizeof(double), cmp_double);
		*v[i].res = (struct result){v[i].rates[opt_reps - 1],
					    v[i].rates[opt_reps / 2]};
	}
}

/* ---- shared buffers -------------------------------------------------------------- */

static uint8_t *in_buf, *out_buf;          /* single-value rows */
static uint8_t *burst_in[BURST], *burst_out[BURST];
static char *tok_buf;
static uint8_t aad[SEAL_AAD_MAX];
static size_t aad_len;
static volatile uint8_t sink;

static const uint8_t bench_dek[SEAL_DEK_LEN] = {
	0x6b, 0x65, 0x79, 0x20, 0x66, 0x6f, 0x72, 0x20, 0x62, 0x65, 0x6e,
	0x63, 0x68, 0x6d, 0x61, 0x72, 0x6b, 0x73, 0x20, 0x6f, 0x6e, 0x6c,
	0x79, 0x2c, 0x20, 0x6e, 0x6f, 0x74, 0x20, 0x61, 0x20, 0x6b,
};

/* ---- references --------------------------------------------------------------------- */

#ifdef BENCH_HAVE_IPSEC_MB
struct imb_ref {
	IMB_MGR *mgr;
	struct gcm_key_data kd __attribute__((aligned(64)));
	struct gcm_context_data cd;
};

static double run_ipsecmb(void *arg, size_t size, long iters)
{
	struct imb_ref *r = arg;
	uint8_t iv[12] = {0, 0, 0, 1};
	double t0 = now_s();
	for (long i = 0; i < iters; i++) {
		uint64_t c = (uint64_t)i;
		memcpy(iv + 4, &c, 8);
		memcpy(out_buf, iv, 12);
		IMB_AES256_GCM_ENC(r->mgr, &r->kd, &r->cd, out_buf + 12, in_buf,
				   size, iv, aad, aad_len, out_buf + 12 + size,
				   16);
	}
	double t = now_s() - t0;
	sink ^= out_buf[12];
	return t;
}
#endif

static double run_openssl(void *arg, size_t size, long iters)
{
	EVP_CIPHER_CTX *c = arg;
	uint8_t iv[12] = {0, 0, 0, 1};
	int l;
	double t0 = now_s();
	for (long i = 0; i < iters; i++) {
		uint64_t n = (uint64_t)i;
		memcpy(iv + 4, &n, 8);
		memcpy(out_buf, iv, 12);
		if (!EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv) ||
		    !EVP_EncryptUpdate(c, NULL, &l, aad, (int)aad_len) ||
		    !EVP_EncryptUpdate(c, out_buf + 12, &l, in_buf, (int)size) ||
		    !EVP_EncryptFinal_ex(c, out_buf + 12 + size, &l) ||
		    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16,
					 out_buf + 12 + size))
			abort();
	}
	double t = now_s() - t0;
	sink ^= out_buf[12];
	return t;
}

/* ---- the engine ------------------------------------------------------------------------ */

static struct seal_gcm *mk_gcm(enum seal_backend b, uint32_t worker)
{
	/* instance 1, one worker index per context: one lease each */
	struct seal_gcm_cfg cfg = {.fixed = 0x00000100u | worker,
				   .max_seals = UINT64_MAX, .backend = b};
	struct seal_gcm *g;
	int rc = seal_gcm_new(bench_dek, TENANT, KEY_ID, &cfg, &g);
	if (rc < 0)
		fprintf(stderr, "bench_seal: seal_gcm_new: %s\n",
			seal_strerror(rc));
	return g;
}

static double run_engine_single(void *arg, size_t size, long iters)
{
	struct seal_gcm *g = arg;
	size_t cap = size + SEAL_GCM_OVERHEAD;
	double t0 = now_s();
	for (long i = 0; i < iters; i++)
		if (seal_gcm_seal(g, FIELD, sizeof(FIELD) - 1, RECORD,
				  sizeof(RECORD), in_buf, size, out_buf,
				  cap) < 0)
			abort();
	double t = now_s() - t0;
	sink ^= out_buf[12];
	return t;
}

static double run_engine_burst(void *arg, size_t size, long iters)
{
	struct seal_gcm *g = arg;
	struct seal_item items[BURST];
	for (int j = 0; j < BURST; j++)
		items[j] = (struct seal_item){
			.field = FIELD,
			.field_len = sizeof(FIELD) - 1,
			.record = RECORD,
			.record_len = sizeof(RECORD),
			.in = burst_in[j],
			.len = (uint32_t)size,
			.out = burst_out[j],
			.cap = (uint32_t)(size + SEAL_GCM_OVERHEAD),
		};
	long bursts = (iters + BURST - 1) / BURST;
	double t0 = now_s();
	for (long i = 0; i < bursts; i++)
		if (seal_gcm_seal_burst(g, items, BURST) != BURST)
			abort();
	double t = now_s() - t0;
	sink ^= burst_out[0][12];
	/* Report per value: scale to the |iters| asked for. */
	return t * (double)iters / (double)(bursts * BURST);
}

static double run_engine_token(void *arg, size_t size, long iters)
{
	struct seal_gcm *g = arg;
	size_t cap = seal_token_len(sizeof(KEY_ID) - 1,
				    size + SEAL_GCM_OVERHEAD) + 1;
	double t0 = now_s();
	for (long i = 0; i < iters; i++)
		if (seal_token_seal_gcm(g, FIELD, sizeof(FIELD) - 1, RECORD,
					sizeof(RECORD), in_buf, size, tok_buf,
					cap) < 0)
			abort();
	double t = now_s() - t0;
	sink ^= (uint8_t)tok_buf[20];
	return t;
}

static double run_siv(void *arg, size_t size, long iters)
{
	struct seal_siv *s = arg;
	double t0 = now_s();
	for (long i = 0; i < iters; i++)
		if (seal_siv_seal(s, FIELD, sizeof(FIELD) - 1, in_buf, size,
				  out_buf, size + SEAL_SIV_TAG_LEN) < 0)
			abort();
	double t = now_s() - t0;
	sink ^= out_buf[0];
	return t;
}

static double run_hash(void *arg, size_t size, long iters)
{
	struct seal_hash *h = arg;
	double t0 = now_s();
	for (long i = 0; i < iters; i++)
		if (seal_hash_compute(h, FIELD, sizeof(FIELD) - 1, in_buf, size,
				      out_buf) < 0)
			abort();
	double t = now_s() - t0;
	sink ^= out_buf[0];
	return t;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_seal [--seconds S] [--reps N] [--cpu N] "
		"[--sizes 16,64,...]\n"
		"  --seconds S  minimum time per measurement (default 0.25)\n"
		"  --reps N     measurements per figure, best reported "
		"(default 5, max %d)\n"
		"  --cpu N      pin to this CPU (default: the current one)\n",
		MAX_REPS);
}

/* 1-minute load average: the machine may be shared, and the JSON says how
 * busy it was. */
static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static double r3(double x)
{
	return (double)(long long)(x * 1000.0 + 0.5) / 1000.0;
}

int main(int argc, char **argv)
{
	size_t sizes[16] = {16, 64, 256, 1024, 16384};
	int n_sizes = 5, cpu = -1;
	static const struct option opts[] = {
		{"seconds", required_argument, NULL, 's'},
		{"reps", required_argument, NULL, 'r'},
		{"cpu", required_argument, NULL, 'c'},
		{"sizes", required_argument, NULL, 'z'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			opt_seconds = atof(optarg);
			break;
		case 'r':
			opt_reps = atoi(optarg);
			break;
		case 'c':
			cpu = atoi(optarg);
			break;
		case 'z': {
			n_sizes = 0;
			for (char *p = strtok(optarg, ","); p && n_sizes < 16;
			     p = strtok(NULL, ","))
				sizes[n_sizes++] = strtoul(p, NULL, 10);
			break;
		}
		default:
			usage();
			return 2;
		}
	}
	if (opt_seconds <= 0 || opt_reps < 1 || opt_reps > MAX_REPS ||
	    n_sizes == 0) {
		usage();
		return 2;
	}
	for (int i = 0; i < n_sizes; i++)
		if (sizes[i] > SEAL_VALUE_MAX) {
			fprintf(stderr, "bench_seal: size %zu over %u\n",
				sizes[i], SEAL_VALUE_MAX);
			return 2;
		}

	/* One core: pin, so the figures are per core and not an average of
	 * migrations. */
	if (cpu < 0)
		cpu = sched_getcpu();
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		fprintf(stderr, "bench_seal: cannot pin to cpu %d: %s\n", cpu,
			strerror(errno));

	size_t maxsz = SEAL_VALUE_MAX + 64;
	in_buf = aligned_alloc(64, maxsz);
	out_buf = aligned_alloc(64, maxsz);
	tok_buf = aligned_alloc(64, SEAL_TOKEN_MAX + 64);
	for (int j = 0; j < BURST; j++) {
		burst_in[j] = aligned_alloc(64, 16384 + 64);
		burst_out[j] = aligned_alloc(64, 16384 + 128);
		memset(burst_in[j], 0x40 + j, 16384 + 64);
	}
	for (size_t i = 0; i < maxsz; i++)
		in_buf[i] = (uint8_t)(i * 131 + 7);
	int n = seal_aad_build(SEAL_KIND_GCM, TENANT, sizeof(TENANT) - 1,
			       KEY_ID, sizeof(KEY_ID) - 1, FIELD,
			       sizeof(FIELD) - 1, RECORD, sizeof(RECORD), aad,
			       sizeof(aad));
	if (n < 0)
		return 1;
	aad_len = (size_t)n;

	/* The engine derives its key; the references get a key of their
	 * own (the key value does not change the speed). */
	uint8_t key[32];
	if (seal_key_derive(bench_dek, SEAL_KDF_LABEL_GCM, key, 32) != 0)
		return 1;
	EVP_CIPHER_CTX *evp = EVP_CIPHER_CTX_new();
	if (!EVP_EncryptInit_ex(evp, EVP_aes_256_gcm(), NULL, key, NULL))
		return 1;
	int have_imb = 0;
#ifdef BENCH_HAVE_IPSEC_MB
	struct imb_ref *imb = aligned_alloc(64, (sizeof(*imb) + 63) & ~63ul);
	memset(imb, 0, sizeof(*imb));
	imb->mgr = alloc_mb_mgr(0);
	IMB_ARCH arch = IMB_ARCH_NONE;
	if (imb->mgr) {
		init_mb_mgr_auto(imb->mgr, &arch);
		if (arch >= IMB_ARCH_SSE) {
			IMB_AES256_GCM_PRE(imb->mgr, key, &imb->kd);
			have_imb = 1;
		}
	}
	static const char *arch_names[] = {"none", "noaesni", "sse", "avx",
					   "avx2", "avx512"};
	const char *imb_arch = arch < IMB_ARCH_NUM ? arch_names[arch] : "?";
	const char *imb_version = imb_get_version_str();
#else
	const char *imb_arch = "absent", *imb_version = "absent";
#endif
	OPENSSL_cleanse(key, sizeof(key));

	struct seal_gcm *g_auto = mk_gcm(SEAL_BACKEND_AUTO, 0);
	struct seal_gcm *g_ossl = mk_gcm(SEAL_BACKEND_OPENSSL, 1);
	struct seal_siv *siv;
	struct seal_hash *hash;
	if (!g_auto || !g_ossl ||
	    seal_siv_new(bench_dek, TENANT, KEY_ID, &siv) < 0 ||
	    seal_hash_new(bench_dek, TENANT, KEY_ID, &hash) < 0)
		return 1;

	char model[128] = "unknown";
	FILE *ci = fopen("/proc/cpuinfo", "r");
	if (ci) {
		char line[256];
		while (fgets(line, sizeof(line), ci))
			if (strncmp(line, "model name", 10) == 0) {
				char *c = strchr(line, ':');
				if (c) {
					snprintf(model, sizeof(model), "%s",
						 c + 2);
					model[strcspn(model, "\n\"\\")] = '\0';
				}
				break;
			}
		fclose(ci);
	}

	fprintf(stderr,
		"bench_seal: cpu %d (%s), engine backend %s, ipsec-mb %s/%s, "
		"%s; AAD %zu bytes; best of %d x >= %.2fs\n",
		cpu, model, seal_backend_name(seal_gcm_backend(g_auto)),
		imb_version, imb_arch, OpenSSL_version(OPENSSL_VERSION),
		aad_len, opt_reps, opt_seconds);
	fprintf(stderr, "%7s %12s %12s %12s %12s %12s %12s %10s %10s %7s %7s\n",
		"bytes", "ipsecmb", "openssl", "eng_single", "eng_burst",
		"eng_ossl", "eng_token", "siv", "hash", "single/", "burst/");
	fprintf(stderr, "%7s %12s %12s %12s %12s %12s %12s %10s %10s %7s %7s\n",
		"", "Mseal/s", "Mseal/s", "Mseal/s", "Mseal/s", "Mseal/s",
		"Mseal/s", "Mop/s", "Mop/s", "ipsecmb", "ipsecmb");

	double load_start = loadavg();
	struct row {
		size_t size;
		struct result imb, ossl, single, burst, eng_ossl, token, siv,
			hash;
	} rows[16];
	memset(rows, 0, sizeof(rows));
	for (int i = 0; i < n_sizes; i++) {
		struct row *r = &rows[i];
		size_t sz = sizes[i];
		r->size = sz;
		struct variant v[8];
		int nv = 0;
#ifdef BENCH_HAVE_IPSEC_MB
		if (have_imb)
			v[nv++] = (struct variant){.fn = run_ipsecmb,
						   .arg = imb, .res = &r->imb};
#endif
		v[nv++] = (struct variant){.fn = run_openssl, .arg = evp,
					   .res = &r->ossl};
		v[nv++] = (struct variant){.fn = run_engine_single,
					   .arg = g_auto, .res = &r->single};
		if (sz <= 16384)
			v[nv++] = (struct variant){.fn = run_engine_burst,
						   .arg = g_auto,
						   .res = &r->burst};
		v[nv++] = (struct variant){.fn = run_engine_single,
					   .arg = g_ossl, .res = &r->eng_ossl};
		v[nv++] = (struct variant){.fn = run_engine_token,
					   .arg = g_auto, .res = &r->token};
		v[nv++] = (struct variant){.fn = run_siv, .arg = siv,
					   .res = &r->siv};
		v[nv++] = (struct variant){.fn = run_hash, .arg = hash,
					   .res = &r->hash};
		measure_all(v, nv, sz);
		double ref = r->imb.best > 0 ? r->imb.best : r->ossl.best;
		fprintf(stderr,
			"%7zu %12.2f %12.2f %12.2f %12.2f %12.2f %12.2f %10.3f "
			"%10.3f %7.2f %7.2f\n",
			sz, r->imb.best / 1e6, r->ossl.best / 1e6,
			r->single.best / 1e6, r->burst.best / 1e6,
			r->eng_ossl.best / 1e6, r->token.best / 1e6,
			r->siv.best / 1e6, r->hash.best / 1e6,
			r->single.best / ref, r->burst.best / ref);
	}

	/* Targets: >= 10 M seals/s at 64 bytes; >= 0.7 of ipsec-mb at every
	 * size (single and burst). */
	int met_64 = -1, met_ratio = 1;
	for (int i = 0; i < n_sizes; i++) {
		struct row *r = &rows[i];
		if (r->size == 64)
			met_64 = ST_MAX(r->single.best, r->burst.best) >= 10e6;
		if (have_imb && (r->single.best < 0.7 * r->imb.best ||
				 (r->burst.best > 0 &&
				  r->burst.best < 0.7 * r->imb.best)))
			met_ratio = 0;
	}

	printf("{\"bench\":\"seal\",\"cpu\":%d,\"cpu_model\":\"%s\","
	       "\"engine_backend\":\"%s\",\"ipsec_mb\":\"%s\","
	       "\"ipsec_mb_arch\":\"%s\",\"openssl\":\"%s\","
	       "\"aad_bytes\":%zu,\"burst\":%d,\"reps\":%d,"
	       "\"min_seconds\":%.2f,\"online_cpus\":%ld,"
	       "\"loadavg_1m_start\":%.2f,\"loadavg_1m_end\":%.2f,"
	       "\"unit\":\"million ops per second, best "
	       "of reps (median alongside)\",\"sizes\":[",
	       cpu, model, seal_backend_name(seal_gcm_backend(g_auto)),
	       imb_version, imb_arch, OpenSSL_version(OPENSSL_VERSION),
	       aad_len, BURST, opt_reps, opt_seconds,
	       sysconf(_SC_NPROCESSORS_ONLN), load_start, loadavg());
	for (int i = 0; i < n_sizes; i++) {
		struct row *r = &rows[i];
		double ref = r->imb.best;
		printf("%s{\"bytes\":%zu,"
		       "\"ipsecmb_raw\":%.3f,\"openssl_raw\":%.3f,"
		       "\"engine_single\":%.3f,\"engine_burst\":%.3f,"
		       "\"engine_openssl\":%.3f,\"engine_token\":%.3f,"
		       "\"siv_tokenize\":%.3f,\"hmac_hash\":%.3f,"
		       "\"median\":{\"ipsecmb_raw\":%.3f,\"openssl_raw\":%.3f,"
		       "\"engine_single\":%.3f,\"engine_burst\":%.3f},"
		       "\"ratio_single_to_ipsecmb\":%.3f,"
		       "\"ratio_burst_to_ipsecmb\":%.3f,"
		       "\"ratio_single_to_openssl\":%.3f,"
		       "\"ratio_engine_openssl_to_openssl\":%.3f,"
		       "\"engine_single_gbps\":%.2f}",
		       i ? "," : "", r->size, r->imb.best / 1e6,
		       r->ossl.best / 1e6, r->single.best / 1e6,
		       r->burst.best / 1e6, r->eng_ossl.best / 1e6,
		       r->token.best / 1e6, r->siv.best / 1e6,
		       r->hash.best / 1e6, r->imb.median / 1e6,
		       r->ossl.median / 1e6, r->single.median / 1e6,
		       r->burst.median / 1e6,
		       ref > 0 ? r3(r->single.best / ref) : 0.0,
		       ref > 0 ? r3(r->burst.best / ref) : 0.0,
		       r3(r->single.best / r->ossl.best),
		       r3(r->eng_ossl.best / r->ossl.best),
		       r->single.best * (double)r->size * 8 / 1e9);
	}
	printf("],\"target_10M_at_64B\":%s,\"target_0.7_of_ipsecmb\":%s}\n",
	       met_64 < 0 ? "null" : met_64 ? "true" : "false",
	       have_imb ? (met_ratio ? "true" : "false") : "null");

	seal_gcm_free(g_auto);
	seal_gcm_free(g_ossl);
	seal_siv_free(siv);
	seal_hash_free(hash);
	EVP_CIPHER_CTX_free(evp);
#ifdef BENCH_HAVE_IPSEC_MB
	if (imb->mgr)
		free_mb_mgr(imb->mgr);
	memset(imb, 0, sizeof(*imb));
	free(imb);
#endif
	free(in_buf);
	free(out_buf);
	free(tok_buf);
	for (int j = 0; j < BURST; j++) {
		free(burst_in[j]);
		free(burst_out[j]);
	}
	return 0;
}
