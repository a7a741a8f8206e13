/* Tests for src/export_ring.c and src/export_file.c (export.h).
 *
 * Ring: tables of push/drain steps with the expected result of each push
 * and the records each drain returns (in order), with the ring's head and
 * tail checked where a wrap marker must have been written; a producer and
 * a consumer thread passing 10^6 records of random sizes with sequence
 * numbers and checksums.
 *
 * File exporter: a real exporter thread writing into a temporary
 * directory; the files are read back and compared with what was pushed;
 * writes that fail part-way (a file size limit standing in for a full
 * disk) leave no torn line and lose nothing uncounted.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "sealtap/export.h"

/* ==================================================================== */
/* ring                                                                  */
/* ==================================================================== */

struct drained {
	uint32_t len[256];
	uint8_t first[256]; /* first byte of each record */
	unsigned n;
	bool content_ok;
};

/* Records are |len| bytes of (seed + i). */
static void fill(uint8_t *b, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i);
}

static void collect(void *u, const void *rec, uint32_t len)
{
	struct drained *d = u;
	const uint8_t *p = rec;
	assert_true(d->n < 256);
	d->len[d->n] = len;
	d->first[d->n] = len ? p[0] : 0;
	for (uint32_t i = 1; i < len; i++)
		if (p[i] != (uint8_t)(p[0] + i))
			d->content_ok = false;
	d->n++;
}

static void test_ring_init(void **state)
{
	(void)state;
	static const struct {
		uint64_t ask, size;
	} rows[] = { { 0, 4096 },     { 1, 4096 },	 { 4096, 4096 },
		     { 4097, 8192 },  { 65536, 65536 }, { 100000, 131072 } };
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct export_ring r;
		assert_int_equal(export_ring_init(&r, rows[i].ask), 0);
		assert_int_equal(r.size, rows[i].size);
		assert_int_equal(r.mask, rows[i].size - 1);
		assert_int_equal(atomic_load(&r.head), 0);
		assert_int_equal(atomic_load(&r.tail), 0);
		export_ring_fini(&r);
		assert_null(r.buf);
	}
}

/* A step: push a record of |len| (seed |seed|) expecting |want|, or drain
 * (len = DRAIN) expecting |want| records. */
#define DRAIN 0xffffffffu

struct ring_step {
	uint32_t len;
	uint8_t seed;
	int want;
	uint64_t head; /* head after the step (0: not checked) */
};

struct ring_case {
	const char *what;
	struct ring_step steps[24];
};

/* Ring of 4096 bytes. A record takes 4 + len rounded up to 4. */
static const struct ring_case ring_cases[] = {
	{ "in order",
	  { { 10, 1, 0, 16 }, { 0, 2, 0, 20 }, { 3, 3, 0, 28 },
	    { 100, 4, 0, 132 }, { DRAIN, 0, 4, 0 }, { DRAIN, 0, 0, 0 },
	    { 0 } } },
	{ "half the ring is the largest record",
	  { { 2044, 1, 0, 2048 }, /* need 2048 = size / 2 */
	    { 2045, 2, -1, 2048 }, /* need 2052 > size / 2 */
	    { 4000, 3, -1, 2048 }, { DRAIN, 0, 1, 0 }, { 0 } } },
	{ "full ring refuses, nothing written",
	  { { 2044, 1, 0, 2048 }, { 2040, 2, 0, 4092 }, { 1, 3, -1, 4092 },
	    { 0, 4, 0, 4096 },	  /* exactly full: a 4-byte record */
	    { 0, 5, -1, 4096 },	  { DRAIN, 0, 3, 0 },
	    { 0, 6, 0, 4100 },	  { DRAIN, 0, 1, 0 }, { 0 } } },
	{ "wrap marker",
	  /* 2004 + 1004 = 3008 used; after draining, a 1500-byte record
	   * (1504) does not fit in the 1088 bytes before the end: a wrap
	   * marker covers them and the record starts at offset 0 */
	  { { 2000, 1, 0, 2004 }, { 1000, 2, 0, 3008 }, { DRAIN, 0, 2, 0 },
	    { 1500, 3, 0, 4096 + 1504 }, { 8, 4, 0, 4096 + 1516 },
	    { DRAIN, 0, 2, 0 }, { 0 } } },
	{ "wrap needs room for the skipped end too",
	  { { 2000, 1, 0, 2004 }, { 1500, 2, 0, 3508 }, { DRAIN, 0, 2, 0 },
	    /* tail = head = 3508: 588 bytes to the end are skipped */
	    { 2044, 3, 0, 4096 + 2048 }, /* 588 + 2048 used */
	    { 1500, 4, -1, 4096 + 2048 }, /* 1504 > 1460 free */
	    { 1456, 5, 0, 4096 + 3508 },  /* 1460: exactly full */
	    { 0, 6, -1, 4096 + 3508 },
	    { DRAIN, 0, 2, 0 },
	    /* empty again at offset 3508: 1000 (1004) does not fit in the
	     * 588 to the end; 588 + 1004 <= 4096 */
	    { 1000, 7, 0, 8192 + 1004 }, { DRAIN, 0, 1, 0 }, { 0 } } },
	{ "many wraps",
	  { { 1000, 1, 0, 0 }, { 1000, 2, 0, 0 }, { 1000, 3, 0, 0 },
	    { DRAIN, 0, 3, 0 }, { 1000, 4, 0, 0 }, { 1000, 5, 0, 0 },
	    { DRAIN, 0, 2, 0 }, { 1000, 6, 0, 0 }, { 1000, 7, 0, 0 },
	    { 1000, 8, 0, 0 }, { DRAIN, 0, 3, 0 }, { 1000, 9, 0, 0 },
	    { 1000, 10, 0, 0 }, { 1000, 11, 0, 0 },
	    { 1000, 12, 0, 4096 * 2 + 4016 }, /* exactly full */
	    { 1000, 13, -1, 0 }, { DRAIN, 0, 4, 0 }, { 0 } } },
};

static void test_ring_table(void **state)
{
	(void)state;
	for (size_t ci = 0; ci < sizeof(ring_cases) / sizeof(ring_cases[0]);
	     ci++) {
		const struct ring_case *c = &ring_cases[ci];
		struct export_ring r;
		assert_int_equal(export_ring_init(&r, 4096), 0);
		/* expected queue of (len, seed) */
		uint32_t qlen[64];
		uint8_t qseed[64];
		unsigned qh = 0, qt = 0;
		uint8_t buf[4096];
		for (size_t si = 0; si < 24; si++) {
			const struct ring_step *s = &c->steps[si];
			if (s->len == 0 && s->seed == 0 && s->want == 0 &&
			    s->head == 0)
				break;
			if (s->len == DRAIN) {
				struct drained d = { .content_ok = true };
				unsigned n = export_ring_drain(&r, collect, &d);
				if ((int)n != s->want)
					fail_msg("%s step %zu: drained %u want "
						 "%d",
						 c->what, si, n, s->want);
				assert_true(d.content_ok);
				for (unsigned k = 0; k < n; k++) {
					assert_true(qt < qh);
					assert_int_equal(d.len[k], qlen[qt]);
					if (d.len[k])
						assert_int_equal(d.first[k],
								 qseed[qt]);
					qt++;
				}
				assert_int_equal(atomic_load(&r.tail),
						 atomic_load(&r.head));
				continue;
			}
			fill(buf, s->len < sizeof(buf) ? s->len : 0, s->seed);
			uint64_t h0 = atomic_load(&r.head);
			int rc = export_ring_push(&r, buf, s->len);
			if (rc != s->want)
				fail_msg("%s step %zu: push %u -> %d want %d",
					 c->what, si, s->len, rc, s->want);
			if (rc == 0) {
				qlen[qh] = s->len;
				qseed[qh] = s->seed;
				qh++;
			} else {
				assert_int_equal(atomic_load(&r.head), h0);
			}
			if (s->head &&
			    atomic_load(&r.head) != s->head)
				fail_msg("%s step %zu: head %llu want %llu",
					 c->what, si,
					 (unsigned long long)atomic_load(
						 &r.head),
					 (unsigned long long)s->head);
		}
		export_ring_fini(&r);
	}
}

/* A ring never holds more than its size, whatever the pattern. */
static void test_ring_random(void **state)
{
	(void)state;
	struct export_ring r;
	assert_int_equal(export_ring_init(&r, 8192), 0);
	uint32_t x = 1;
	uint8_t buf[4096];
	uint32_t qlen[4096];
	uint8_t qseed[4096];
	unsigned qh = 0, qt = 0;
	for (int round = 0; round < 200000; round++) {
		x = x * 1664525 + 1013904223;
		if ((x >> 28) < 11) {
			uint32_t len = (x >> 8) % 4100;
			uint8_t seed = (uint8_t)(x >> 3);
			fill(buf, len < sizeof(buf) ? len : 0, seed);
			int rc = export_ring_push(&r, buf, len);
			if (len > 4092)
				assert_int_equal(rc, -1);
			if (rc == 0) {
				qlen[qh % 4096] = len;
				qseed[qh % 4096] = seed;
				qh++;
			}
		} else {
			struct drained d = { .content_ok = true };
			if ((x >> 20) & 1) {
				unsigned n = export_ring_drain(&r, collect, &d);
				for (unsigned k = 0; k < n; k++, qt++) {
					assert_int_equal(d.len[k],
							 qlen[qt % 4096]);
					if (d.len[k])
						assert_int_equal(
							d.first[k],
							qseed[qt % 4096]);
				}
				assert_true(d.content_ok);
				assert_int_equal(qt, qh);
			}
		}
		uint64_t used = atomic_load(&r.head) - atomic_load(&r.tail);
		assert_true(used <= r.size);
	}
	export_ring_fini(&r);
}

/* ---- two threads --------------------------------------------------------- */

#define SPSC_RECORDS 1000000u

static uint32_t csum(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

struct spsc {
	struct export_ring r;
	_Atomic int done;
	uint64_t pushed_bytes;
	uint32_t next;      /* consumer: next sequence expected */
	uint64_t got_bytes;
	uint32_t errors;
	uint64_t full;      /* producer retries */
};

static void *producer(void *arg)
{
	struct spsc *s = arg;
	uint8_t rec[2048];
	uint64_t x = 0x243f6a8885a308d3ull;
	for (uint32_t seq = 0; seq < SPSC_RECORDS; seq++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t len = 8 + (uint32_t)(x % 1500);
		memcpy(rec, &seq, 4);
		for (uint32_t i = 8; i < len; i++)
			rec[i] = (uint8_t)(x >> (i % 56));
		uint32_t c = csum(rec + 8, len - 8) ^ len;
		memcpy(rec + 4, &c, 4);
		while (export_ring_push(&s->r, rec, len) != 0) {
			s->full++;
			sched_yield();
		}
		s->pushed_bytes += len;
	}
	atomic_store(&s->done, 1);
	return NULL;
}

static void take(void *u, const void *rec, uint32_t len)
{
	struct spsc *s = u;
	const uint8_t *p = rec;
	uint32_t seq, c;
	if (len < 8) {
		s->errors++;
		return;
	}
	memcpy(&seq, p, 4);
	memcpy(&c, p + 4, 4);
	if (seq != s->next || c != (csum(p + 8, len - 8) ^ len))
		s->errors++;
	s->next = seq + 1;
	s->got_bytes += len;
}

static void test_ring_two_threads(void **state)
{
	(void)state;
	struct spsc *s = calloc(1, sizeof(*s));
	assert_int_equal(export_ring_init(&s->r, 64 * 1024), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, producer, s), 0);
	for (;;) {
		int done = atomic_load(&s->done);
		unsigned n = export_ring_drain(&s->r, take, s);
		if (done && n == 0 &&
		    atomic_load(&s->r.tail) == atomic_load(&s->r.head))
			break;
		if (n == 0)
			sched_yield();
	}
	pthread_join(th, NULL);
	print_message("spsc: %u records, %llu bytes, %llu full retries\n",
		      s->next, (unsigned long long)s->got_bytes,
		      (unsigned long long)s->full);
	assert_int_equal(s->errors, 0);
	assert_int_equal(s->next, SPSC_RECORDS);
	assert_int_equal(s->got_bytes, s->pushed_bytes);
	export_ring_fini(&s->r);
	free(s);
}

/* ==================================================================== */
/* file exporter                                                          */
/* ==================================================================== */

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sealtap-export-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			chmod(p, 0700);
			rm_rf(p);
		} else {
			unlink(p);
		}
	}
	closedir(d);
	return rmdir(dir);
}

static int teardown_dir(void **state)
{
	(void)state;
	rm_rf(tmpdir);
	return 0;
}

struct dirlist {
	char names[4096][64];
	unsigned n;
	unsigned tmp; /* hidden .tmp files */
	unsigned other;
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void list_dir(const char *dir, struct dirlist *l)
{
	memset(l, 0, sizeof(*l));
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		unsigned long num;
		char tail[16];
		if (strstr(e->d_name, ".tmp"))
			l->tmp++;
		else if (sscanf(e->d_name, "records-%6lu.%15s", &num, tail) ==
				 2 &&
			 !strcmp(tail, "ndjson") && strlen(e->d_name) == 21)
			snprintf(l->names[l->n++], 64, "%.63s", e->d_name);
		else
			l->other++;
	}
	closedir(d);
	qsort(l->names, l->n, 64, cmp_names);
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = 0;
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* Pushes |n| NDJSON lines per ring ("{"r":R,"s":S,"pad":"xxx"}\n"). */
static void push_lines(struct export_ring *rings, unsigned nr, unsigned n,
		       unsigned first, size_t pad)
{
	char line[4096], p[2048];
	memset(p, 'x', pad);
	p[pad] = 0;
	for (unsigned s = first; s < first + n; s++) {
		for (unsigned r = 0; r < nr; r++) {
			int k = snprintf(line, sizeof(line),
					 "{\"r\":%u,\"s\":%u,\"pad\":\"%s\"}\n",
					 r, s, p);
			while (export_ring_push(&rings[r], line, (uint32_t)k))
				usleep(100);
		}
	}
}

/* Reads every file in order; checks whole lines, per-ring order, and that
 * ring r has exactly sequences [0, want[r]). Returns total bytes. */
static uint64_t check_files(const char *dir, const struct dirlist *l,
			    unsigned nr, const unsigned *want)
{
	unsigned next[8] = { 0 };
	uint64_t total = 0;
	for (unsigned i = 0; i < l->n; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, l->names[i]);
		size_t len;
		char *b = read_all(path, &len);
		assert_true(len > 0);
		assert_int_equal(b[len - 1], '\n');
		total += len;
		for (char *line = b; line < b + len;) {
			char *nl = strchr(line, '\n');
			assert_non_null(nl);
			unsigned r, s;
			assert_int_equal(sscanf(line, "{\"r\":%u,\"s\":%u", &r,
						&s),
					 2);
			assert_true(r < nr);
			if (s != next[r])
				fail_msg("%s: ring %u seq %u, want %u",
					 l->names[i], r, s, next[r]);
			next[r]++;
			line = nl + 1;
		}
		free(b);
	}
	for (unsigned r = 0; r < nr; r++)
		assert_int_equal(next[r], want[r]);
	return total;
}

static void test_file_basic(void **state)
{
	(void)state;
	struct export_ring rings[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(export_ring_init(&rings[i], 1 << 16), 0);
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/out", tmpdir); /* created if missing */
	struct export_file_cfg cfg = { .dir = dir,
				       .max_bytes = 1ull << 30,
				       .max_age_ns = 3600ull * 1000000000,
				       .flush_ns = 10000000,
				       .batch_bytes = 4096 };
	struct export_file *ef;
	char err[256];
	assert_int_equal(export_file_start(&cfg, rings, 2, &ef, err,
					   sizeof(err)),
			 0);
	push_lines(rings, 2, 1000, 0, 20);
	struct export_stats st;
	export_file_stop(ef, &st);
	struct dirlist l;
	list_dir(dir, &l);
	assert_int_equal(l.tmp, 0);
	assert_int_equal(l.other, 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.names[0], "records-000001.ndjson");
	unsigned want[2] = { 1000, 1000 };
	uint64_t bytes = check_files(dir, &l, 2, want);
	assert_int_equal(st.records, 2000);
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.write_errors, 0);

	/* a run with no record makes no file */
	assert_int_equal(export_file_start(&cfg, rings, 2, &ef, err,
					   sizeof(err)),
			 0);
	export_file_stop(ef, &st);
	list_dir(dir, &l);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.tmp, 0);
	assert_int_equal(st.files, 0);
	for (int i = 0; i < 2; i++)
		export_ring_fini(&rings[i]);
}

/* Rotation by size; a second run continues the numbering. */
static void test_file_rotation(void **state)
{
	(void)state;
	struct export_ring rings[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(export_ring_init(&rings[i], 1 << 16), 0);
	struct export_file_cfg cfg = { .dir = tmpdir,
				       .max_bytes = 20000,
				       .max_age_ns = 3600ull * 1000000000,
				       .flush_ns = 1000000,
				       .batch_bytes = 2048 };
	struct export_file *ef;
	char err[256];
	assert_int_equal(export_file_start(&cfg, rings, 3, &ef, err,
					   sizeof(err)),
			 0);
	/* ~100 bytes a line, 3 x 1000 lines: ~300 KB, ~15 files; some
	 * records bigger than a batch */
	push_lines(rings, 3, 1000, 0, 60);
	push_lines(rings, 3, 3, 1000, 2000);
	struct export_stats st;
	export_file_stop(ef, &st);
	struct dirlist l;
	list_dir(tmpdir, &l);
	assert_int_equal(l.tmp, 0);
	assert_true(l.n >= 10);
	assert_int_equal(st.files, l.n);
	for (unsigned i = 0; i < l.n; i++) {
		char want[64];
		snprintf(want, sizeof(want), "records-%06u.ndjson", i + 1);
		assert_string_equal(l.names[i], want);
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", tmpdir, l.names[i]);
		struct stat sb;
		assert_int_equal(stat(path, &sb), 0);
		/* a file closes once it reaches max_bytes: at most one
		 * batch (or one oversized record) beyond */
		assert_true((uint64_t)sb.st_size < 20000 + 2048 + 2100);
		if (i + 1 < l.n)
			assert_true((uint64_t)sb.st_size >= 20000);
	}
	unsigned want[3] = { 1003, 1003, 1003 };
	uint64_t bytes = check_files(tmpdir, &l, 3, want);
	assert_int_equal(st.bytes, bytes);
	unsigned first_run = l.n;

	/* second run: continues after the last file */
	assert_int_equal(export_file_start(&cfg, rings, 3, &ef, err,
					   sizeof(err)),
			 0);
	push_lines(rings, 3, 10, 0, 10);
	export_file_stop(ef, &st);
	list_dir(tmpdir, &l);
	assert_int_equal(l.n, first_run + 1);
	char want_name[64];
	snprintf(want_name, sizeof(want_name), "records-%06u.ndjson",
		 first_run + 1);
	assert_string_equal(l.names[first_run], want_name);
	for (int i = 0; i < 3; i++)
		export_ring_fini(&rings[i]);
}

/* A reader may delete the files it has processed, oldest first. A new run
 * must not reuse a number that is still taken: it continues after the
 * highest file present, never overwriting one. */
static void test_file_numbering_after_deletes(void **state)
{
	(void)state;
	char path[512];
	/* files 1 and 2 were read and deleted; 3 is still unread */
	snprintf(path, sizeof(path), "%s/records-000003.ndjson", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"unread\":true}\n", f);
	fclose(f);
	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	struct export_file_cfg cfg = { .dir = tmpdir,
				       .max_bytes = 500,
				       .max_age_ns = 3600ull * 1000000000,
				       .flush_ns = 1000000,
				       .batch_bytes = 256 };
	struct export_file *ef;
	char err[256];
	assert_int_equal(export_file_start(&cfg, &ring, 1, &ef, err,
					   sizeof(err)),
			 0);
	push_lines(&ring, 1, 100, 0, 10); /* several files */
	struct export_stats st;
	export_file_stop(ef, &st);
	size_t len;
	char *b = read_all(path, &len);
	if (strcmp(b, "{\"unread\":true}\n"))
		fail_msg("records-000003.ndjson was overwritten by the new "
			 "run (%zu bytes now)",
			 len);
	free(b);
	export_ring_fini(&ring);
}

/* Two exporters on one directory (sealtap run has a tap and an ext_proc
 * server; two processes may share export.dir): every record of both ends
 * up in exactly one file, no file is overwritten, no temporary left. */
static void test_two_exporters_one_dir(void **state)
{
	(void)state;
	struct export_ring a[2], b[2];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(export_ring_init(&a[i], 1 << 16), 0);
		assert_int_equal(export_ring_init(&b[i], 1 << 16), 0);
	}
	struct export_file_cfg cfg = { .dir = tmpdir,
				       .max_bytes = 3000,
				       .max_age_ns = 3600ull * 1000000000,
				       .flush_ns = 1000000,
				       .batch_bytes = 512 };
	struct export_file *ea, *eb;
	char err[256];
	assert_int_equal(export_file_start(&cfg, a, 2, &ea, err, sizeof(err)),
			 0);
	assert_int_equal(export_file_start(&cfg, b, 2, &eb, err, sizeof(err)),
			 0);
	/* Both start at the same number and rotate often: every name is
	 * contended. Ring r of exporter b writes "r":r+2. */
	for (unsigned k = 0; k < 40; k++) {
		push_lines(a, 2, 10, k * 10, 40);
		push_lines(b, 2, 10, k * 10, 40);
	}
	struct export_stats sa, sb;
	export_file_stop(ea, &sa);
	export_file_stop(eb, &sb);
	struct dirlist l;
	list_dir(tmpdir, &l);
	assert_int_equal(l.tmp, 0);
	assert_int_equal(l.n, sa.files + sb.files);
	assert_int_equal(sa.write_errors + sb.write_errors, 0);
	/* Count lines per (exporter, ring) over all files. */
	unsigned seen[2][2] = { { 0 } };
	uint64_t total = 0;
	for (unsigned i = 0; i < l.n; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", tmpdir, l.names[i]);
		size_t len;
		char *buf = read_all(path, &len);
		total += len;
		for (char *line = buf; line < buf + len;) {
			char *nl = strchr(line, '\n');
			assert_non_null(nl);
			unsigned r, s;
			assert_int_equal(sscanf(line, "{\"r\":%u,\"s\":%u", &r,
						&s), 2);
			assert_true(r < 2);
			seen[0][r]++;
			line = nl + 1;
		}
		free(buf);
	}
	/* Both exporters' rings are numbered 0 and 1: 400 lines each. */
	assert_int_equal(seen[0][0], 800);
	assert_int_equal(seen[0][1], 800);
	assert_int_equal(total, sa.bytes + sb.bytes);
	for (int i = 0; i < 2; i++) {
		export_ring_fini(&a[i]);
		export_ring_fini(&b[i]);
	}
}

/* Rotation by age: a slow trickle of records spreads over files. */
static void test_file_max_age(void **state)
{
	(void)state;
	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	struct export_file_cfg cfg = { .dir = tmpdir,
				       .max_bytes = 1ull << 30,
				       .max_age_ns = 30000000, /* 30 ms */
				       .flush_ns = 1000000,
				       .batch_bytes = 4096 };
	struct export_file *ef;
	char err[256];
	assert_int_equal(export_file_start(&cfg, &ring, 1, &ef, err,
					   sizeof(err)),
			 0);
	for (unsigned k = 0; k < 10; k++) {
		push_lines(&ring, 1, 5, k * 5, 10);
		usleep(20000);
	}
	struct export_stats st;
	export_file_stop(ef, &st);
	struct dirlist l;
	list_dir(tmpdir, &l);
	assert_int_equal(l.tmp, 0);
	assert_true(l.n >= 3);
	unsigned want[1] = { 50 };
	check_files(tmpdir, &l, 1, want);
	export_ring_fini(&ring);
}

/* A partial batch reaches the file after flush_ns, before the stop, and
 * the file stays open for the records that follow: flushing is not
 * rotating (files rotate on max_bytes, max_age or the end of the run). */
/* Size of the exporter's temporary file for file number 1 (its name also
 * carries the pid and exporter instance), 0 if there is none. */
static uint64_t tmp_size(const char *dir)
{
	uint64_t size = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char path[512];
		struct stat sb;
		if (strncmp(e->d_name, ".records-000001.", 16) || n < 4 ||
		    strcmp(e->d_name + n - 4, ".tmp"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &sb) == 0)
			size = (uint64_t)sb.st_size;
	}
	closedir(d);
	return size;
}

static void test_file_flush(void **state)
{
	(void)state;
	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	struct export_file_cfg cfg = { .dir = tmpdir,
				       .max_bytes = 1ull << 30,
				       .max_age_ns = 3600ull * 1000000000,
				       .flush_ns = 5000000, /* 5 ms */
				       .batch_bytes = 1 << 20 };
	struct export_file *ef;
	char err[256];
	assert_int_equal(export_file_start(&cfg, &ring, 1, &ef, err,
					   sizeof(err)),
			 0);
	unsigned flushed_in_tmp = 0;
	for (unsigned k = 0; k < 5; k++) {
		push_lines(&ring, 1, 3, k * 3, 10);
		bool seen = false;
		for (int i = 0; i < 100 && !seen; i++) { /* up to 1 s */
			usleep(10000);
			seen = tmp_size(tmpdir) >= (k + 1) * 3 * 30;
		}
		flushed_in_tmp += seen;
	}
	struct export_stats st;
	export_file_stop(ef, &st);
	struct dirlist l;
	list_dir(tmpdir, &l);
	assert_int_equal(st.records, 15);
	unsigned want[1] = { 15 };
	check_files(tmpdir, &l, 1, want);
	if (l.n != 1 || flushed_in_tmp != 5)
		fail_msg("5 flushes made %u files (want 1); flushed bytes "
			 "seen in the open file %u times (want 5)",
			 l.n, flushed_in_tmp);
	export_ring_fini(&ring);
}

/* Directories that cannot hold files are refused at start. */
static void test_file_unwritable(void **state)
{
	(void)state;
	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	char file[300], ro[300], sub[400];
	snprintf(file, sizeof(file), "%s/a-file", tmpdir);
	FILE *f = fopen(file, "w");
	fclose(f);
	snprintf(sub, sizeof(sub), "%s/x/y", file);
	snprintf(ro, sizeof(ro), "%s/ro", tmpdir);
	assert_int_equal(mkdir(ro, 0500), 0);
	struct {
		const char *dir;
		bool only_non_root;
	} rows[] = { { file, false }, { sub, false }, { ro, true },
		     { "/proc/sealtap-no-such-dir", false } };
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].only_non_root && geteuid() == 0)
			continue; /* root writes anywhere */
		struct export_file_cfg cfg = { .dir = rows[i].dir,
					       .max_bytes = 1 << 20,
					       .max_age_ns = 1000000000,
					       .flush_ns = 1000000,
					       .batch_bytes = 4096 };
		struct export_file *ef = NULL;
		char err[256] = "";
		int rc = export_file_start(&cfg, &ring, 1, &ef, err,
					   sizeof(err));
		if (rc >= 0)
			fail_msg("%s: started", rows[i].dir);
		assert_true(strlen(err) > 0);
		assert_non_null(strstr(err, rows[i].dir));
	}
	export_ring_fini(&ring);
}

/* An exporter over |ring| into |dir| that never rotates, with the batch
 * size, flush interval and retry time at the end given (0: default). */
static struct export_file *start_tuned(struct export_ring *ring,
				       const char *dir, uint32_t batch_bytes,
				       uint64_t flush_ns, uint64_t stop_retry_ns)
{
	struct export_file_cfg cfg = { .dir = dir,
				       .max_bytes = 1ull << 30,
				       .max_age_ns = 3600ull * 1000000000,
				       .flush_ns = flush_ns,
				       .batch_bytes = batch_bytes,
				       .stop_retry_ns = stop_retry_ns };
	struct export_file *ef;
	char err[256];
	if (export_file_start(&cfg, ring, 1, &ef, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return ef;
}

/* ... writing each record within 1 ms. */
static struct export_file *start_one(struct export_ring *ring,
				     const char *dir)
{
	return start_tuned(ring, dir, 4096, 1000000, 0);
}

/* Sets the soft limit on file size (RLIMIT_FSIZE): past it writes fail
 * with EFBIG, after a partial write, as on a full disk. */
static void fsize_limit(rlim_t lim)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = lim == RLIM_INFINITY ? rl.rlim_max : lim;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* Writes that fail (here: past a file size limit, a partial write then
 * EFBIG, as on a full disk) are cut back to the last whole record and
 * retried; nothing is lost once writes work again, and what cannot be
 * written by the end is counted as lost, never left as a torn line. */
static void test_file_write_fails(void **state)
{
	(void)state;
	signal(SIGXFSZ, SIG_IGN);
	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/full", tmpdir);
	struct export_stats st;
	struct dirlist l;

	/* 1. the limit is lifted while the exporter retries */
	struct export_file *ef = start_one(&ring, dir);
	fsize_limit(10000);
	push_lines(&ring, 1, 200, 0, 80); /* ~20 KB */
	usleep(300000);
	fsize_limit(RLIM_INFINITY);
	usleep(1500000); /* the retry comes after 1 s */
	export_file_stop(ef, &st);
	list_dir(dir, &l);
	unsigned want = 200;
	check_files(dir, &l, 1, &want);
	assert_int_equal(st.records, 200);
	assert_true(st.write_errors >= 1);
	assert_int_equal(st.records_lost, 0);
	assert_int_equal(l.tmp, 0);

	/* 2. still failing at the end: what could not be written is lost,
	 * counted; the files hold whole lines, in order */
	char dir2[300];
	snprintf(dir2, sizeof(dir2), "%s/full2", tmpdir);
	ef = start_tuned(&ring, dir2, 4096, 1000000, 1000000000);
	fsize_limit(10000);
	push_lines(&ring, 1, 200, 0, 80);
	usleep(300000);
	export_file_stop(ef, &st);
	fsize_limit(RLIM_INFINITY);
	list_dir(dir2, &l);
	assert_true(st.records > 0 && st.records < 200);
	assert_int_equal(st.records + st.records_lost, 200);
	assert_true(st.write_errors >= 1);
	want = (unsigned)st.records;
	check_files(dir2, &l, 1, &want);

	/* 3. room for less than one batch: the whole records that fit are
	 * written (a short write keeps them), not the batch all or nothing */
	char dir3[300];
	snprintf(dir3, sizeof(dir3), "%s/full3", tmpdir);
	ef = start_tuned(&ring, dir3, 1 << 20, 200000000, 1000000000);
	fsize_limit(3000);
	push_lines(&ring, 1, 200, 0, 80); /* one ~20 KB batch */
	usleep(500000);
	export_file_stop(ef, &st);
	fsize_limit(RLIM_INFINITY);
	list_dir(dir3, &l);
	assert_true(st.records >= 25); /* ~28 lines of ~105 bytes fit */
	assert_int_equal(st.records + st.records_lost, 200);
	want = (unsigned)st.records;
	check_files(dir3, &l, 1, &want);
	export_ring_fini(&ring);
}

static void *lift_limit_later(void *arg)
{
	(void)arg;
	usleep(2000000);
	fsize_limit(RLIM_INFINITY);
	return NULL;
}

/* At the end of a run (the end of a capture) writes that fail are
 * retried for a while, not given up after one try: a disk that gets room
 * back within that time loses nothing. */
static void test_file_stop_retries(void **state)
{
	(void)state;
	signal(SIGXFSZ, SIG_IGN);
	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/late", tmpdir);
	struct export_file *ef = start_one(&ring, dir);
	fsize_limit(3000);
	push_lines(&ring, 1, 200, 0, 80);
	usleep(200000);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, lift_limit_later, NULL), 0);
	struct export_stats st;
	export_file_stop(ef, &st); /* the disk gets room 2 s into it */
	pthread_join(t, NULL);
	struct dirlist l;
	list_dir(dir, &l);
	unsigned want = 200;
	check_files(dir, &l, 1, &want);
	assert_int_equal(st.records, 200);
	assert_int_equal(st.records_lost, 0);
	assert_true(st.write_errors >= 1);
	export_ring_fini(&ring);
}

/* A .tmp file left by an exporter whose process is gone (killed) is
 * given a final name at the next start, cut back to its whole lines,
 * whatever the pid in its name (a restart as the same pid, as a
 * container's pid 1, included); one a live exporter holds (its flock) is
 * left alone, also when its pid means nothing here (another pid
 * namespace). */
static void test_file_recovers_stale(void **state)
{
	(void)state;
	char dir[300], path[400];
	snprintf(dir, sizeof(dir), "%s/stale", tmpdir);
	assert_int_equal(mkdir(dir, 0750), 0);
	/* named with this process's own pid: a dead run's, restarted as the
	 * same pid */
	snprintf(path, sizeof(path), "%s/.records-000001.%d.0.ndjson.tmp", dir,
		 (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 3; i++)
		fprintf(f, "{\"r\":0,\"s\":%d,\"pad\":\"x\"}\n", i);
	fputs("{\"r\":0,\"s\":3,\"pa", f); /* torn by the kill */
	fclose(f);
	/* held by a live exporter whose pid is no process here */
	char live[400];
	snprintf(live, sizeof(live), "%s/.records-000009.999999.0.ndjson.tmp",
		 dir);
	int lfd = open(live, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(lfd >= 0);
	assert_int_equal(write(lfd, "{\"r\":1,\"s\":0}\n", 15), 15);
	assert_int_equal(flock(lfd, LOCK_EX), 0);

	struct export_ring ring;
	assert_int_equal(export_ring_init(&ring, 1 << 16), 0);
	struct export_file *ef = start_one(&ring, dir);
	push_lines(&ring, 1, 10, 3, 20);
	struct export_stats st;
	export_file_stop(ef, &st);
	struct dirlist l;
	list_dir(dir, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.names[0], "records-000001.ndjson");
	assert_int_equal(l.tmp, 1); /* the live process's */
	assert_int_equal(access(live, F_OK), 0);
	unsigned want = 13; /* 3 recovered, then the 10 of this run */
	check_files(dir, &l, 1, &want);
	close(lfd);
	unlink(live);
	export_ring_fini(&ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_init),
		cmocka_unit_test(test_ring_table),
		cmocka_unit_test(test_ring_random),
		cmocka_unit_test(test_ring_two_threads),
		cmocka_unit_test_setup_teardown(test_file_basic, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_rotation, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(
			test_file_numbering_after_deletes, setup_dir,
			teardown_dir),
		cmocka_unit_test_setup_teardown(test_two_exporters_one_dir,
						setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_max_age, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_flush, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_unwritable,
						setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_write_fails,
						setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_recovers_stale,
						setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_stop_retries,
						setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
