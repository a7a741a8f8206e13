/* The file exporter thread. See export.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sealtap/common.h"
#include "sealtap/export.h"
#include "sealtap/log.h"

#define IDLE_SLEEP_NS 1000000 /* 1 ms between polls of empty rings */
#define TRICKLE_RECORDS 64     /* fewer per pass: records come slowly */
#define TRICKLE_SLEEP_NS 100000 /* 100 us: rings hold far more than that */
#define RETRY_NS 1000000000ull  /* a failed write is retried after 1 s */
#define STOP_RETRY_NS 10000000000ull /* and for 10 s more at the end,
					     unless cfg.stop_retry_ns */

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
	uint32_t batch_cap;     /* cfg.batch_bytes, or one larger record */
	uint64_t batch_records; /* records in |batch| */
	uint64_t retry_ns;      /* != 0: writes fail; the rings wait until */
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

/* A new temporary file, held with an exclusive flock until it has its
 * final name: the lock, not the pid in the name, tells a starting
 * exporter that the file is alive (pids repeat: a container's sealtap is
 * pid 1 at every start, and other pid namespaces may share the
 * directory). Never over an existing file (O_EXCL): a name left by a
 * dead run with the same pid keeps its records for recover_stale(). */
static int open_next(struct export_file *ef)
{
	char path[4200];
	for (unsigned tries = 0;; tries++) {
		ef->seq++;
		tmp_name(ef, path, sizeof(path));
		ef->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			      0640);
		if (ef->fd >= 0 || errno != EEXIST || tries == 1000)
			break;
	}
	if (ef->fd >= 0 && flock(ef->fd, LOCK_EX) < 0) {
		log_kv(LOG_LEVEL_WARN, "cannot lock a record file; another "
		       "exporter could take it for an unfinished one", "path",
		       path, "error", strerror(errno), NULL);
	}
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

/* Renames |tmp| to the final name of file number ef->seq, never over
 * another exporter's file: a taken number is skipped. 0 or -1. */
static int publish(struct export_file *ef, const char *tmp)
{
	char fin[4200];
	final_name(ef, fin, sizeof(fin));
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
	}
	return rc;
}

/* Makes the current file durable and gives it its final name. */
static void close_current(struct export_file *ef)
{
	if (ef->fd < 0)
		return;
	char tmp[4200];
	tmp_name(ef, tmp, sizeof(tmp));
	if (fdatasync(ef->fd) < 0) {
		/* the kernel may have dropped some of it (EIO, or ENOSPC on
		 * a filesystem that allocates late): said, and counted */
		ef->st.write_errors++;
		log_kv(LOG_LEVEL_ERROR, "record file not made durable; some "
		       "of its records may be lost", "path", tmp, "error",
		       strerror(errno), NULL);
	}
	/* renamed (or removed) before the close lets go of the lock, so no
	 * starting exporter takes it for a dead run's */
	if (ef->file_bytes == 0) {
		unlink(tmp);
		ef->seq--; /* reuse the number: no empty files */
	} else if (publish(ef, tmp) == 0) {
		ef->st.files++;
	}
	close(ef->fd);
	ef->fd = -1;
}

/* Bytes of |b| (|n| long) up to and with its last newline: the whole
 * records in it (records are NDJSON lines). */
static uint32_t whole_records_len(const char *b, uint32_t n)
{
	while (n && b[n - 1] != '\n')
		n--;
	return n;
}

static uint64_t count_lines(const char *b, uint32_t n)
{
	uint64_t k = 0;
	for (const char *p = b; (p = memchr(p, '\n', (size_t)(b + n - p)));
	     p++)
		k++;
	return k;
}

/* The first |n| bytes of the batch (whole records) are in the file. */
static void batch_written(struct export_file *ef, uint32_t n)
{
	uint64_t recs = count_lines(ef->batch, n);
	if (recs > ef->batch_records)
		recs = ef->batch_records;
	ef->st.bytes += n;
	ef->st.records += recs;
	ef->file_bytes += n;
	ef->batch_records -= recs;
	memmove(ef->batch, ef->batch + n, ef->batch_len - n);
	ef->batch_len -= n;
}

/* Writes the batch. A short or failed write (disk full, I/O error) keeps
 * the whole records that reached the file and cuts off the torn rest (a
 * line holding half a record would glue the next batch's first record to
 * it, and parse as neither); the records not written stay in the batch
 * for the retry RETRY_NS later, and false is returned. Meanwhile the
 * rings are not drained past a full batch: live producers count their
 * drops, offline ones wait. */
static bool write_batch(struct export_file *ef)
{
	if (ef->batch_len == 0)
		return true;
	if (ef->fd < 0 && open_next(ef) < 0)
		goto failed; /* counted in write_errors */
	uint32_t done = 0;
	int err = 0;
	while (done < ef->batch_len) {
		ssize_t w = write(ef->fd, ef->batch + done,
				  ef->batch_len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err = w < 0 ? errno : ENOSPC;
			break;
		}
		done += (uint32_t)w;
	}
	if (err) {
		uint32_t keep = whole_records_len(ef->batch, done);
		if (keep < done &&
		    (ftruncate(ef->fd, (off_t)(ef->file_bytes + keep)) < 0 ||
		     lseek(ef->fd, (off_t)(ef->file_bytes + keep), SEEK_SET) < 0)) {
			/* cannot cut: this file ends here, torn tail and all,
			 * and the next batch starts a new one */
			log_kv(LOG_LEVEL_ERROR, "cannot cut back a record "
			       "file after a failed write", "error",
			       strerror(errno), NULL);
			batch_written(ef, keep);
			close_current(ef);
		} else {
			batch_written(ef, keep);
		}
		ef->st.write_errors++;
		if (!ef->retry_ns)
			log_kv(LOG_LEVEL_ERROR, "record write failed; holding "
			       "the records and retrying every second",
			       "error", strerror(err), NULL);
		goto failed;
	}
	batch_written(ef, done);
	if (ef->retry_ns)
		log_kv(LOG_LEVEL_INFO, "record writes resumed", NULL);
	ef->retry_ns = 0;
	ef->last_write_ns = st_mono_ns();
	if (ef->file_bytes >= ef->cfg.max_bytes)
		close_current(ef);
	return true;
failed:
	ef->retry_ns = st_mono_ns() + RETRY_NS;
	return false;
}

/* One record from a ring into the batch. False leaves it in the ring:
 * the batch is full and cannot be written now. */
static bool take(void *u, const void *rec, uint32_t len)
{
	struct export_file *ef = u;
	if (ef->batch_len + len > ef->batch_cap) {
		if (ef->retry_ns || !write_batch(ef))
			return false;
		if (len > ef->batch_cap) { /* one record larger than a batch */
			char *b = realloc(ef->batch, len);
			if (!b) {
				ef->st.records_lost++;
				log_kv(LOG_LEVEL_ERROR, "record lost: out of "
				       "memory", NULL);
				return true;
			}
			ef->batch = b;
			ef->batch_cap = len;
		}
	}
	memcpy(ef->batch + ef->batch_len, rec, len);
	ef->batch_len += len;
	ef->batch_records++;
	return true;
}

static void count_only(void *u, const void *rec, uint32_t len)
{
	(void)u;
	(void)rec;
	(void)len;
}

static const char *u64_str(uint64_t v)
{
	static _Thread_local char buf[24];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return buf;
}

static void *run(void *arg)
{
	struct export_file *ef = arg;
	ef->last_write_ns = st_mono_ns();
	uint64_t stop_deadline = 0;
	for (;;) {
		int stopping = atomic_load(&ef->stop);
		uint64_t now = st_mono_ns();
		if (stopping && !stop_deadline)
			stop_deadline = now + (ef->cfg.stop_retry_ns
						       ? ef->cfg.stop_retry_ns
						       : STOP_RETRY_NS);
		if (ef->retry_ns && now >= ef->retry_ns)
			write_batch(ef); /* the retry */
		if (ef->retry_ns) {
			/* still failing: the rings wait; at the end, after
			 * STOP_RETRY_NS more, what is held is lost, counted */
			if (stopping && now >= stop_deadline)
				break;
			struct timespec ts = { 0, IDLE_SLEEP_NS * 10 };
			nanosleep(&ts, NULL);
			continue;
		}
		unsigned got = 0;
		for (unsigned i = 0; i < ef->nrings; i++)
			got += export_ring_drain_until(&ef->rings[i], take, ef);
		now = st_mono_ns();
		if (ef->batch_len && !ef->retry_ns &&
		    (stopping || now - ef->last_write_ns >= ef->cfg.flush_ns))
			write_batch(ef);
		if (ef->fd >= 0 && !ef->retry_ns &&
		    st_mono_ns() - ef->opened_ns >= ef->cfg.max_age_ns &&
		    write_batch(ef))
			close_current(ef);
		if (stopping && got == 0 && !ef->batch_len)
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
	uint64_t lost = ef->batch_records;
	for (unsigned i = 0; i < ef->nrings; i++)
		lost += export_ring_drain(&ef->rings[i], count_only, NULL);
	if (lost) {
		ef->st.records_lost += lost;
		log_kv(LOG_LEVEL_ERROR, "records lost: the record files could "
		       "not be written by the end", "records", u64_str(lost),
		       NULL);
	}
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

/* The length of |fd|'s content up to and with its last newline: a file
 * an exporter could not finish may end inside a record. */
static off_t whole_lines(int fd)
{
	char buf[65536];
	off_t end = lseek(fd, 0, SEEK_END);
	while (end > 0) {
		off_t from = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf)
						      : 0;
		ssize_t n = pread(fd, buf, (size_t)(end - from), from);
		if (n <= 0)
			return 0;
		for (ssize_t i = n - 1; i >= 0; i--)
			if (buf[i] == '\n')
				return from + i + 1;
		end = from;
	}
	return 0;
}

/* A file an exporter that is gone left unfinished (killed, power cut):
 * its whole records get a final name after the files present, instead of
 * staying hidden from readers under the .tmp name for good. Files a live
 * exporter holds (its flock: open_next()) are left alone, whatever the
 * pid in their name. */
static void recover_stale(struct export_file *ef)
{
	DIR *dp = opendir(ef->dir);
	if (!dp)
		return;
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		unsigned long long n;
		int pid;
		unsigned inst;
		char tail[16];
		if (sscanf(e->d_name, ".records-%llu.%d.%u.%15s", &n, &pid,
			   &inst, tail) != 4 ||
		    strcmp(tail, "ndjson.tmp"))
			continue;
		char path[4400];
		snprintf(path, sizeof(path), "%s/%s", ef->dir, e->d_name);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* held: a live exporter's (this process's too) */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;
		}
		/* An empty one is left alone: it may be a file a live
		 * exporter just created and has not locked yet. */
		off_t keep = whole_lines(fd);
		if (keep > 0 && ftruncate(fd, keep) == 0 && fdatasync(fd) == 0) {
			ef->seq++;
			if (publish(ef, path) == 0) {
				char fin[4200];
				final_name(ef, fin, sizeof(fin));
				log_kv(LOG_LEVEL_WARN, "recovered the records an "
				       "earlier run left unfinished", "from",
				       e->d_name, "to", fin, NULL);
			}
		}
		close(fd);
	}
	closedir(dp);
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
	recover_stale(ef);
	static atomic_uint instances;
	ef->instance = atomic_fetch_add(&instances, 1);
	ef->batch_cap = cfg->batch_bytes;
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
