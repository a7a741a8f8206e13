/* Content detector throughput on one core: pol_detect_run() (candidate
 * positions found 16 bytes at a time) next to pol_detect_run_ref() (the
 * byte-at-a-time scan it replaced and is tested against), all detectors
 * on, on three kinds of text measured in the same run:
 *
 *   random   uniform random bytes: what the tap scans when a body is
 *            binary with a content type that is not excluded (the
 *            reference capture's bodies are such)
 *   text     English-like prose, some numbers and capitalised words, an
 *            e-mail address now and then: few hits
 *   json     API records whose fields hold e-mails, cards, SSNs, IBANs,
 *            bearer tokens, JWTs and AWS key ids: a hit every ~50 bytes
 *
 * Each set is 1 MiB, scanned as 64 KiB slices (the tap scans at most
 * limits.body_bytes, 64 KiB by default, of a body). Both scanners must
 * report the same number of hits, or the run fails. Figures are the best
 * of --reps runs of at least --seconds (median alongside), run
 * round-robin so interference hits both alike.
 *
 * Table on stderr; the last line on stdout is one JSON object. */
#include <getopt.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/policy_priv.h"

#define SET_LEN (1u << 20)
#define SLICE (64u << 10)
#define MAX_REPS 15

static double opt_seconds = 0.3;
static int opt_reps = 5;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rn(unsigned k)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (unsigned)(((rng * 0x2545f4914f6cdd1dull) >> 33) % k);
}

/* ---- data sets ------------------------------------------------------------ */

struct out {
	uint8_t *b;
	size_t n;
};

static void put(struct out *o, const char *s)
{
	size_t l = strlen(s);
	if (o->n + l > SET_LEN)
		l = SET_LEN - o->n;
	memcpy(o->b + o->n, s, l);
	o->n += l;
}

static const char *pick(const char *const *a, size_t n)
{
	return a[rn((unsigned)n)];
}
#define PICK(a) pick(a, sizeof(a) / sizeof(*a))

static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "was", "that", "for", "it",
	"with", "as", "his", "on", "be", "at", "by", "had", "are", "but",
	"from", "or", "have", "an", "they", "which", "one", "you", "were",
	"all", "we", "when", "there", "can", "been", "has", "more", "if",
	"no", "out", "so", "said", "what", "up", "its", "about", "into",
	"than", "them", "only", "other", "new", "some", "could", "time",
	"these", "two", "may", "first", "then", "do", "any", "like", "my",
	"now", "over", "such", "our", "man", "me", "even", "most", "made",
	"after", "also", "did", "many", "before", "must", "through", "back",
	"years", "where", "much", "your", "way", "well", "down", "should",
	"because", "each", "just", "those", "people", "how", "too", "little",
	"state", "good", "very", "make", "world", "still", "own", "see",
	"men", "work", "long", "get", "here", "between", "both", "life",
	"being", "under", "never", "day", "same", "another", "know", "while",
	"last", "might", "us", "great", "old", "year", "off", "come", "since",
	"against", "go", "came", "right", "used", "take", "three", "account",
	"order", "payment", "invoice", "shipping", "customer", "support",
};
static const char *const names[] = {
	"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
	"London", "Paris", "Monday", "January", "ACME", "NASA", "EU", "USA",
};

static void gen_random(struct out *o)
{
	for (o->n = 0; o->n < SET_LEN; o->n++)
		o->b[o->n] = (uint8_t)rn(256);
}

static void gen_text(struct out *o)
{
	char num[32];
	for (o->n = 0; o->n < SET_LEN;) {
		unsigned nw = 5 + rn(16);
		for (unsigned w = 0; w < nw; w++) {
			const char *s = PICK(words);
			if (w == 0) {
				snprintf(num, sizeof(num), "%c%s",
					 s[0] - 'a' + 'A', s + 1);
				put(o, num);
			} else if (rn(12) == 0) {
				put(o, PICK(names));
			} else if (rn(25) == 0) {
				snprintf(num, sizeof(num), "%u", rn(rn(2) ? 100 : 3000));
				put(o, num);
			} else if (rn(2000) == 0) {
				put(o, "write to help.desk@example.org");
			} else {
				put(o, s);
			}
			put(o, w + 1 == nw ? "" : rn(10) ? " " : ", ");
		}
		put(o, rn(8) ? ". " : ".\n\n");
	}
}

static void gen_json(struct out *o)
{
	static const char *const cards[] = {
		"4111 1111 1111 1111", "5500000000000004", "378282246310005",
		"6011-1111-1111-1117",
	};
	static const char *const ibans[] = {
		"DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
		"FR1420041010050500013M02606",
	};
	char s[600];
	put(o, "[");
	for (o->n = 1; o->n < SET_LEN;) {
		snprintf(s, sizeof(s),
			 "{\"id\":%u,\"name\":\"%s %s\",\"email\":\"%s.%u@"
			 "example.com\",\"card\":\"%s\",\"ssn\":\"%03u-%02u-%04u\","
			 "\"iban\":\"%s\",\"auth\":\"Bearer tok%08u.abcdefgh\","
			 "\"jwt\":\"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOi"
			 "IxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQ"
			 "ssw5c\",\"aws\":\"AKIAIOSFODNN7EXAMPLE\",\"note\":\"%s %s "
			 "%s\",\"qty\":%u},\n",
			 rn(1000000), PICK(names), PICK(names), PICK(words),
			 rn(1000), PICK(cards), 1 + rn(665), 1 + rn(99),
			 1 + rn(9999), PICK(ibans), rn(100000000), PICK(words),
			 PICK(words), PICK(words), rn(100));
		put(o, s);
	}
}

/* ---- measuring -------------------------------------------------------------- */

typedef void (*scan_fn)(const uint8_t *t, size_t n, unsigned mask,
			pol_emit_fn emit, void *ctx);

static bool count_emit(void *ctx, uint32_t off, uint32_t len, unsigned det)
{
	(void)off;
	(void)len;
	(void)det;
	++*(unsigned long *)ctx;
	return true;
}

/* |passes| scans of the set in 64 KiB slices; returns seconds. */
static double run(scan_fn fn, const struct out *o, long passes,
		  unsigned long *hits)
{
	double t0 = now_s();
	for (long p = 0; p < passes; p++)
		for (size_t off = 0; off < o->n; off += SLICE)
			fn(o->b + off, o->n - off < SLICE ? o->n - off : SLICE,
			   POLICY_DET_ALL, count_emit, hits);
	return now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct result {
	double best, median; /* MB/s */
};

/* Both scanners on |o|, round-robin. Returns -1 if their hit counts
 * differ (the fast scan would be measured doing something else). */
static int measure(const struct out *o, struct result *fast,
		   struct result *ref, double *hits_per_mib)
{
	scan_fn fn[2] = { pol_detect_run, pol_detect_run_ref };
	struct result *res[2] = { fast, ref };
	double rates[2][MAX_REPS];
	long passes[2];
	unsigned long hits[2] = { 0, 0 }, sink = 0;
	for (int v = 0; v < 2; v++) {
		run(fn[v], o, 1, &hits[v]); /* warm-up, and the hit count */
		double t;
		passes[v] = 1;
		while ((t = run(fn[v], o, passes[v], &sink)) < 0.02)
			passes[v] *= 4;
		passes[v] = (long)((double)passes[v] * opt_seconds / t) + 1;
	}
	if (hits[0] != hits[1]) {
		fprintf(stderr, "bench_detect: fast scan found %lu hits, "
				"reference %lu\n", hits[0], hits[1]);
		return -1;
	}
	for (int r = 0; r < opt_reps; r++)
		for (int v = 0; v < 2; v++)
			rates[v][r] = (double)o->n * (double)passes[v] / 1e6 /
				      run(fn[v], o, passes[v], &sink);
	for (int v = 0; v < 2; v++) {
		qsort(rates[v], (size_t)opt_reps, sizeof(double), cmp_double);
		*res[v] = (struct result){ rates[v][opt_reps - 1],
					   rates[v][opt_reps / 2] };
	}
	*hits_per_mib = (double)hits[0] * (double)(1u << 20) / (double)o->n;
	return 0;
}

/* ---- main ------------------------------------------------------------------- */

/* Prints the usage; main() returns 2 after it. */
static void usage(void)
{
	fprintf(stderr,
		"usage: bench_detect [--seconds S] [--reps N]\n"
		"  --seconds  minimum time of one measurement (default 0.3)\n"
		"  --reps     measurements per figure, best reported (default 5, "
		"at most %d)\n",
		MAX_REPS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	bool bad = false;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 's')
			opt_seconds = atof(optarg);
		else if (o == 'r')
			opt_reps = atoi(optarg);
		else
			bad = true;
	}
	if (bad || optind != argc || opt_seconds <= 0 || opt_reps < 1 ||
	    opt_reps > MAX_REPS) {
		usage();
		return 2;
	}

	/* Pin to the CPU we started on, as bench_seal does. */
	int cpu = sched_getcpu();
	cpu_set_t cs;
	CPU_ZERO(&cs);
	CPU_SET(cpu, &cs);
	if (sched_setaffinity(0, sizeof(cs), &cs) != 0)
		perror("bench_detect: sched_setaffinity");

	static const struct {
		const char *name;
		void (*gen)(struct out *);
	} sets[] = {
		{ "random", gen_random },
		{ "text", gen_text },
		{ "json", gen_json },
	};
	enum { NSETS = sizeof(sets) / sizeof(*sets) };
	struct result fast[NSETS], ref[NSETS];
	double hits[NSETS];
	struct out d = { .b = malloc(SET_LEN) };
	if (!d.b)
		return 1;
	fprintf(stderr,
		"bench_detect: cpu %d, all detectors, %u KiB slices of 1 MiB, "
		"best of %d x >= %.2fs\n%-8s %12s %12s %8s %10s\n",
		cpu, SLICE >> 10, opt_reps, opt_seconds, "data", "fast MB/s",
		"ref MB/s", "speedup", "hits/MiB");
	for (int i = 0; i < NSETS; i++) {
		sets[i].gen(&d);
		if (measure(&d, &fast[i], &ref[i], &hits[i]) < 0) {
			free(d.b);
			return 1;
		}
		fprintf(stderr, "%-8s %12.1f %12.1f %8.2f %10.0f\n", sets[i].name,
			fast[i].best, ref[i].best, fast[i].best / ref[i].best,
			hits[i]);
	}
	free(d.b);

	printf("{\"bench\":\"detect\",\"cpu\":%d,\"mask\":\"all\","
	       "\"slice_bytes\":%u,\"reps\":%d,\"min_seconds\":%.2f,"
	       "\"unit\":\"MB/s (1e6 bytes), best of reps (median "
	       "alongside)\",\"sets\":[",
	       cpu, SLICE, opt_reps, opt_seconds);
	for (int i = 0; i < NSETS; i++)
		printf("%s{\"data\":\"%s\",\"fast\":%.1f,\"reference\":%.1f,"
		       "\"speedup\":%.2f,\"median\":{\"fast\":%.1f,"
		       "\"reference\":%.1f},\"hits_per_mib\":%.0f}",
		       i ? "," : "", sets[i].name, fast[i].best, ref[i].best,
		       fast[i].best / ref[i].best, fast[i].median,
		       ref[i].median, hits[i]);
	printf("]}\n");
	return 0;
}
