/* The file exporter thread. See export.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sealtap/common.h"
#include "sealtap/export.h"
#include "sealtap/log.h"

#define IDLE_SLEEP_NS 1000000 /* 1 ms between polls of empty rings */
#define TRICKLE_RECORDS 64     /* fewer per pass: records come slowly */
#define TRICKLE_SLEEP_NS 100000 /* 100 us: rings hold far more than that */

struct export_file {
	struct export_file_cfg cfg;
	char dir[4096];
	struct export_ring *rings;
	unsigned nrings;
	pthread_t thread;
	_Atomic int stop;
	int fd;              /* current temporary file, -1 if none */
	uint64_t seq;        /* file number */
	unsigned instance;   /* exporters started in this process before */
	uint64_t file_bytes; /* bytes in the current file */
	uint64_t opened_ns;
	uint64_t last_write_ns;
	char *batch;
	uint32_t batch_len;
	struct export_stats st;
};

/* The file being written: private to this exporter (pid and instance),
 * so two exporters sharing a directory (sealtap run, or a tap and an
 * ext_proc server given the same export.dir) never write one file. */
static uint64_t last_seq(const char *dir);

static void tmp_name(const struct export_file *ef, char *buf, size_t len)
{
	snprintf(buf, len, "%s/.records-%06llu.%d.%u.ndjson.tmp", ef->dir,
		 (unsigned long long)ef->seq, (int)getpid(), ef->instance);
}

static void final_name(const struct export_file *ef, char *buf, size_t len)
{
	snprintf(buf, len, "%s/records-%06llu.ndjson", ef->dir,
		 (unsigned long long)ef->seq);
}

static int open_next(struct export_file *ef)
{
	char path[4200];
	ef->seq++;
	tmp_name(ef, path, sizeof(path));
	ef->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (ef->fd < 0) {
		ef->st.write_errors++;
		log_kv(LOG_LEVEL_ERROR, "cannot create record file", "path",
		       path, "error", strerror(errno), NULL);
		return -errno;
	}
	ef->file_bytes = 0;
	ef->opened_ns = st_mono_ns();
	return 0;
}

/* Makes the current file durable and gives it its final name. */
static void close_current(struct export_file *ef)
{
	if (ef->fd < 0)
		return;
	char tmp[4200], fin[4200];
	fdatasync(ef->fd);
	close(ef->fd);
	ef->fd = -1;
	tmp_name(ef, tmp, sizeof(tmp));
	final_name(ef, fin, sizeof(fin));
	if (ef->file_bytes == 0) {
		unlink(tmp);
		ef->seq--; /* reuse the number: no empty files */
		return;
	}
	/* Never over another exporter's file: a taken number is skipped. */
	int rc;
	for (unsigned tries = 0;; tries++) {
		rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, fin, RENAME_NOREPLACE);
		if (rc == 0 || errno != EEXIST || tries == 1000)
			break;
		uint64_t last = last_seq(ef->dir);
		ef->seq = (last > ef->seq ? last : ef->seq) + 1;
		final_name(ef, fin, sizeof(fin));
	}
	if (rc < 0) {
		ef->st.write_errors++;
		log_kv(LOG_LEVEL_ERROR, "cannot rename record file", "path",
		       tmp, "error", strerror(errno), NULL);
		return;
	}
	ef->st.files++;
}

static void write_batch(struct export_file *ef)
{
	if (ef->batch_len == 0)
		return;
	if (ef->fd < 0 && open_next(ef) < 0) {
		ef->batch_len = 0; /* counted in write_errors */
		return;
	}
	const char *p = ef->batch;
	uint32_t left = ef->batch_len;
	while (left) {
		ssize_t w = write(ef->fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			ef->st.write_errors++;
			log_kv(LOG_LEVEL_ERROR, "record write failed", "error",
			       strerror(errno), NULL);
			break;
		}
		p += w;
		left -= (uint32_t)w;
	}
	ef->st.bytes += ef->batch_len - left;
	ef->file_bytes += ef->batch_len - left;
	ef->batch_len = 0;
	ef->last_write_ns = st_mono_ns();
	if (ef->file_bytes >= ef->cfg.max_bytes)
		close_current(ef);
}

static void take(void *u, const void *rec, uint32_t len)
{
	struct export_file *ef = u;
	if (ef->batch_len + len > ef->cfg.batch_bytes)
		write_batch(ef);
	if (len > ef->cfg.batch_bytes) { /* larger than a batch: direct */
		char *saved = ef->batch;
		ef->batch = (char *)rec; /* only read by write_batch() */
		ef->batch_len = len;
		write_batch(ef);
		ef->batch = saved;
	} else {
		memcpy(ef->batch + ef->batch_len, rec, len);
		ef->batch_len += len;
	}
	ef->st.records++;
}

static void *run(void *arg)
{
	struct export_file *ef = arg;
	ef->last_write_ns = st_mono_ns();
	for (;;) {
		int stopping = atomic_load(&ef->stop);
		unsigned got = 0;
		for (unsigned i = 0; i < ef->nrings; i++)
			got += export_ring_drain(&ef->rings[i], take, ef);
		uint64_t now = st_mono_ns();
		if (ef->batch_len &&
		    now - ef->last_write_ns >= ef->cfg.flush_ns)
			write_batch(ef);
		if (ef->fd >= 0 && st_mono_ns() - ef->opened_ns >= ef->cfg.max_age_ns) {
			write_batch(ef);
			close_current(ef);
		}
		if (stopping && got == 0)
			break;
		/* Idle: sleep 1 ms. A trickle: sleep a little so records
		 * batch up instead of the thread spinning a core on a few
		 * records per pass; under load it drains back to back. */
		if (got == 0 || got < TRICKLE_RECORDS) {
			struct timespec ts = { 0, got ? TRICKLE_SLEEP_NS
						      : IDLE_SLEEP_NS };
			nanosleep(&ts, NULL);
		}
	}
	write_batch(ef);
	close_current(ef);
	return NULL;
}

/* Finds the highest file number present (a reader may have deleted older
 * files, so the numbers need not start at 1 or be contiguous), so a new run
 * continues after it instead of overwriting records not yet read. */
static uint64_t last_seq(const char *dir)
{
	uint64_t seq = 0;
	DIR *dp = opendir(dir);
	if (!dp)
		return 0;
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		unsigned long long n;
		char tail[16];
		if (sscanf(e->d_name, "records-%llu.%15s", &n, tail) == 2 &&
		    !strcmp(tail, "ndjson") && n > seq)
			seq = n;
	}
	closedir(dp);
	return seq;
}

int export_file_start(const struct export_file_cfg *cfg,
		      struct export_ring *rings, unsigned n,
		      struct export_file **out, char *err, size_t errlen)
{
	if (mkdir(cfg->dir, 0750) < 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create record directory '%s': %s",
			 cfg->dir, strerror(e));
		return -e;
	}
	struct export_file *ef = calloc(1, sizeof(*ef));
	if (!ef) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ef->cfg = *cfg;
	snprintf(ef->dir, sizeof(ef->dir), "%s", cfg->dir);
	ef->rings = rings;
	ef->nrings = n;
	ef->fd = -1;
	ef->seq = last_seq(ef->dir);
	static atomic_uint instances;
	ef->instance = atomic_fetch_add(&instances, 1);
	ef->batch = malloc(cfg->batch_bytes);
	if (!ef->batch) {
		free(ef);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Check now that files can be made here, not at the first record. */
	char probe[4200];
	snprintf(probe, sizeof(probe), "%s/.sealtap-probe", ef->dir);
	int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot write in record directory '%s': "
			 "%s", cfg->dir, strerror(e));
		free(ef->batch);
		free(ef);
		return -e;
	}
	close(fd);
	unlink(probe);
	int rc = pthread_create(&ef->thread, NULL, run, ef);
	if (rc) {
		snprintf(err, errlen, "cannot start exporter thread: %s",
			 strerror(rc));
		free(ef->batch);
		free(ef);
		return -rc;
	}
	pthread_setname_np(ef->thread, "st-export");
	*out = ef;
	return 0;
}

void export_file_stop(struct export_file *ef, struct export_stats *st)
{
	atomic_store(&ef->stop, 1);
	pthread_join(ef->thread, NULL);
	if (st)
		*st = ef->st;
	free(ef->batch);
	free(ef);
}
