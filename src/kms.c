/* KMS async front: one thread in front of a backend (see kms.h).
 *
 * State ownership. struct kms is shared between the control thread(s)
 * (kms_submit, kms_poll, kms_call, kms_get_health) and the KMS thread; every
 * field below |lock| is guarded by it. The backend is touched only by the
 * KMS thread (and by kms_free() after the thread has ended). A request
 * belongs to its submitter, but while queued its |next_|, |not_before_|,
 * |state_| and outputs are written only by the KMS thread.
 *
 * Scheduling. Requests wait in |ready| (FIFO) or, after a transient failure,
 * in |delayed| (sorted by |not_before_|). The thread takes one request at a
 * time, calls the backend without the lock, and then completes or delays
 * it. Completion: the request's callback (run without the lock, so it may
 * submit again), or the completion queue plus an eventfd write, or the
 * condition variable a kms_call() waits on.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sealtap/common.h"
#include "sealtap/kms.h"
#include "sealtap/mem.h"
#include "sealtap/log.h"

/* ---- error classes ---------------------------------------------------------- */

enum kms_class kms_classify(int rc)
{
	switch (rc) {
	case 0:
		return KMS_OK;
	case -EAGAIN: case -ETIMEDOUT: case -EIO: case -ENODEV:
	case -ECONNREFUSED: case -ECONNRESET: case -ENETUNREACH:
	case -EHOSTUNREACH: case -EBUSY:
		return KMS_TRANSIENT;
	case -EACCES: case -EPERM: case -EKEYREVOKED: case -EKEYEXPIRED:
		return KMS_AUTH;
	case -ENOKEY: case -ENXIO:
		return KMS_NOT_FOUND;
	case -EBADMSG: case -EPROTO:
		return KMS_CORRUPT;
	default:
		return KMS_FATAL;
	}
}

const char *kms_class_name(enum kms_class c)
{
	static const char *const names[] = { "ok", "transient", "auth",
					     "not-found", "corrupt", "fatal" };
	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c]
							       : "unknown";
}

/* ---- backend wrappers --------------------------------------------------------- */

static int ref_ok(const char *ref)
{
	return ref && ref[0] && strnlen(ref, KMS_REF_MAX + 1) <= KMS_REF_MAX;
}

static void set_msg(char *msg, size_t msglen, const char *s)
{
	if (msg && msglen)
		snprintf(msg, msglen, "%s", s);
}

int kms_wrap(struct kms_backend *b, const char *kek_ref, const uint8_t *dek,
	     size_t dek_len, struct kms_blob *out, char *msg, size_t msglen)
{
	set_msg(msg, msglen, "");
	if (!b || !ref_ok(kek_ref) || !dek || !dek_len ||
	    dek_len > KMS_DEK_MAX || !out) {
		set_msg(msg, msglen, "wrap: invalid arguments");
		return -EINVAL;
	}
	out->len = 0;
	return b->ops->wrap(b, kek_ref, dek, dek_len, out, msg, msglen);
}

int kms_unwrap(struct kms_backend *b, const char *kek_ref,
	       const struct kms_blob *in, uint8_t *dek, size_t cap,
	       size_t *dek_len, char *msg, size_t msglen)
{
	set_msg(msg, msglen, "");
	if (!b || !ref_ok(kek_ref) || !in || !in->len ||
	    in->len > KMS_BLOB_MAX || !dek || !cap || !dek_len) {
		set_msg(msg, msglen, "unwrap: invalid arguments");
		return -EINVAL;
	}
	*dek_len = 0;
	int rc = b->ops->unwrap(b, kek_ref, in, dek, cap, dek_len, msg,
				msglen);
	if (rc) { /* whatever the backend did, nothing half-written stays */
		OPENSSL_cleanse(dek, cap);
		*dek_len = 0;
	}
	return rc;
}

int kms_backend_health(struct kms_backend *b, char *msg, size_t msglen)
{
	set_msg(msg, msglen, "");
	if (!b)
		return -EINVAL;
	return b->ops->health(b, msg, msglen);
}

void kms_backend_close(struct kms_backend *b)
{
	if (b)
		b->ops->close(b);
}

/* ---- backoff --------------------------------------------------------------- */

uint64_t kms_backoff_ns(const struct kms_async_cfg *cfg, unsigned attempt,
			uint64_t rnd)
{
	uint64_t d = cfg->backoff_base_ns;
	for (unsigned i = 1; i < attempt && d < cfg->backoff_max_ns; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	if (d > cfg->backoff_max_ns)
		d = cfg->backoff_max_ns;
	/* Equal jitter: never sooner than half the delay (the KMS gets its
	 * pause), spread over the other half (many VMs do not retry in step
	 * after a shared outage). */
	return d / 2 + rnd % (d - d / 2 + 1);
}

/* ---- the async front ------------------------------------------------------- */

enum { REQ_IDLE = 0, REQ_QUEUED = 1, REQ_RUNNING = 2, REQ_DONE = 3 };
#define REQ_SYNC 0x100 /* a kms_call() waits on |done_cond| */
#define REQ_PHASE(r) ((r)->state_ & 0xff)

/* Stack of the KMS thread: PKCS#11 libraries are not frugal with it. */
#define KMS_STACK_BYTES (8u << 20)

struct kms {
	struct kms_backend *backend; /* KMS thread only */
	struct kms_async_cfg cfg;    /* immutable after kms_new */
	pthread_t thread;
	void *stack;                 /* not dumped; NULL: default stack */
	int efd;                     /* completion eventfd */

	pthread_mutex_t lock;
	pthread_cond_t work_cond;    /* to the KMS thread */
	pthread_cond_t done_cond;    /* to kms_call() waiters */
	struct kms_req *ready, *ready_tail;
	struct kms_req *delayed;     /* sorted by not_before_ */
	struct kms_req *cq, *cq_tail; /* completion queue */
	unsigned pending;            /* ready + delayed + running */
	bool stopping;
	uint64_t last_activity_ns;   /* monotonic */
	uint64_t rng;                /* jitter, xorshift64* */
	struct kms_health health;
};

static uint64_t rng_next(struct kms *k)
{
	k->rng ^= k->rng >> 12;
	k->rng ^= k->rng << 25;
	k->rng ^= k->rng >> 27;
	return k->rng * 0x2545F4914F6CDD1Dull;
}

static void ready_push(struct kms *k, struct kms_req *r)
{
	r->next_ = NULL;
	if (k->ready_tail)
		k->ready_tail->next_ = r;
	else
		k->ready = r;
	k->ready_tail = r;
}

static struct kms_req *ready_pop(struct kms *k)
{
	struct kms_req *r = k->ready;
	if (r) {
		k->ready = r->next_;
		if (!k->ready)
			k->ready_tail = NULL;
		r->next_ = NULL;
	}
	return r;
}

static void delayed_insert(struct kms *k, struct kms_req *r)
{
	struct kms_req **pp = &k->delayed;
	while (*pp && (*pp)->not_before_ <= r->not_before_)
		pp = &(*pp)->next_;
	r->next_ = *pp;
	*pp = r;
}

/* Moves delayed requests that are due to |ready|. */
static void promote_due(struct kms *k, uint64_t now)
{
	while (k->delayed && k->delayed->not_before_ <= now) {
		struct kms_req *r = k->delayed;
		k->delayed = r->next_;
		ready_push(k, r);
	}
}

/* Records the outcome of one backend call in the health block; logs the
 * transitions between up and down (never per request). Called with the
 * lock held. */
static void note_outcome(struct kms *k, int rc, const char *msg)
{
	struct kms_health *h = &k->health;
	enum kms_class cls = kms_classify(rc);
	/* A corrupt blob or an unknown KEK is an answer from a working KMS. */
	bool up = rc == 0 || cls == KMS_CORRUPT || cls == KMS_NOT_FOUND;

	if (rc == 0) {
		h->last_ok_ns = st_wall_ns();
		h->consecutive_failures = 0;
	} else {
		h->failures++;
		h->consecutive_failures++;
		h->last_fail_ns = st_wall_ns();
		h->last_rc = rc;
		h->last_class = cls;
		snprintf(h->last_msg, sizeof(h->last_msg), "%s", msg);
	}
	if (up != h->up) {
		char n[24];
		snprintf(n, sizeof(n), "%" PRIu64, h->consecutive_failures);
		if (up)
			log_kv(LOG_LEVEL_INFO, "kms reachable again", "backend",
			       k->backend->ops->name, NULL);
		else
			log_kv(LOG_LEVEL_WARN, "kms unavailable", "backend",
			       k->backend->ops->name, "class",
			       kms_class_name(cls), "error", msg, NULL);
	}
	h->up = up;
}

/* Runs one attempt of |r| on the backend. Called without the lock. */
static int run_op(struct kms *k, struct kms_req *r)
{
	r->msg[0] = '\0';
	switch (r->op) {
	case KMS_OP_WRAP:
		return kms_wrap(k->backend, r->kek_ref, r->dek_in, r->dek_len,
				&r->blob, r->msg, sizeof(r->msg));
	case KMS_OP_UNWRAP:
		return kms_unwrap(k->backend, r->kek_ref, &r->blob, r->dek_out,
				  r->dek_cap, &r->dek_out_len, r->msg,
				  sizeof(r->msg));
	case KMS_OP_HEALTH:
		return kms_backend_health(k->backend, r->msg, sizeof(r->msg));
	}
	snprintf(r->msg, sizeof(r->msg), "unknown operation");
	return -EINVAL;
}

/* Delivers a finished request. Called with the lock held; drops it around a
 * callback. */
static void complete(struct kms *k, struct kms_req *r)
{
	k->pending--;
	r->state_ = (r->state_ & REQ_SYNC) | REQ_DONE;
	if (r->state_ & REQ_SYNC) {
		pthread_cond_broadcast(&k->done_cond);
	} else if (r->done) {
		pthread_mutex_unlock(&k->lock);
		r->done(r, r->arg);
		pthread_mutex_lock(&k->lock);
	} else {
		r->next_ = NULL;
		if (k->cq_tail)
			k->cq_tail->next_ = r;
		else
			k->cq = r;
		k->cq_tail = r;
		uint64_t one = 1;
		if (write(k->efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow at our rates; a
			 * poller still finds the request. */
		}
	}
}

static void finish_attempt(struct kms *k, struct kms_req *r, int rc)
{
	r->rc = rc;
	r->cls = kms_classify(rc);
	note_outcome(k, rc, r->msg);
	k->health.ops++;
	if (r->cls == KMS_TRANSIENT && r->attempts < k->cfg.max_attempts &&
	    !k->stopping) {
		r->not_before_ =
			st_mono_ns() + kms_backoff_ns(&k->cfg, r->attempts,
						   rng_next(k));
		r->state_ = (r->state_ & REQ_SYNC) | REQ_QUEUED;
		k->health.retries++;
		delayed_insert(k, r);
		return;
	}
	complete(k, r);
}

/* Idle health probe, so an outage shows before the next rotation needs
 * the KMS. Called with the lock held; drops it around the backend call. */
static void probe(struct kms *k)
{
	char msg[KMS_MSG_MAX] = "";
	pthread_mutex_unlock(&k->lock);
	int rc = kms_backend_health(k->backend, msg, sizeof(msg));
	pthread_mutex_lock(&k->lock);
	note_outcome(k, rc, msg);
	k->last_activity_ns = st_mono_ns();
}

static void wait_for_work(struct kms *k, uint64_t now)
{
	uint64_t until = UINT64_MAX;
	if (k->delayed)
		until = k->delayed->not_before_;
	if (k->cfg.health_interval_ns) {
		uint64_t h = k->last_activity_ns + k->cfg.health_interval_ns;
		if (h < until)
			until = h;
	}
	if (until == UINT64_MAX) {
		pthread_cond_wait(&k->work_cond, &k->lock);
		return;
	}
	if (until <= now)
		return;
	struct timespec ts = { .tv_sec = (time_t)(until / 1000000000ull),
			       .tv_nsec = (long)(until % 1000000000ull) };
	pthread_cond_timedwait(&k->work_cond, &k->lock, &ts);
}

static void *kms_thread(void *arg)
{
	struct kms *k = arg;
	pthread_mutex_lock(&k->lock);
	while (!k->stopping) {
		uint64_t now = st_mono_ns();
		promote_due(k, now);
		struct kms_req *r = ready_pop(k);
		if (!r) {
			if (k->cfg.health_interval_ns &&
			    now - k->last_activity_ns >=
				    k->cfg.health_interval_ns) {
				probe(k);
				continue;
			}
			wait_for_work(k, now);
			continue;
		}
		r->state_ = (r->state_ & REQ_SYNC) | REQ_RUNNING;
		r->attempts++;
		pthread_mutex_unlock(&k->lock);
		int rc = run_op(k, r);
		/* The backend moved key bytes through vector registers. */
		mem_scrub_registers();
		pthread_mutex_lock(&k->lock);
		k->last_activity_ns = st_mono_ns();
		finish_attempt(k, r, rc);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

static int cfg_ok(const struct kms_async_cfg *c)
{
	return c && c->max_attempts >= 1 && c->backoff_base_ns > 0 &&
	       c->backoff_max_ns >= c->backoff_base_ns && c->queue_max >= 1;
}

int kms_new(struct kms_backend *b, const struct kms_async_cfg *cfg,
	    struct kms **out)
{
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!b || !cfg_ok(cfg)) {
		kms_backend_close(b);
		return -EINVAL;
	}
	struct kms *k = calloc(1, sizeof(*k));
	if (!k) {
		kms_backend_close(b);
		return -ENOMEM;
	}
	k->backend = b;
	k->cfg = *cfg;
	k->health.up = true; /* until shown otherwise */
	k->last_activity_ns = st_mono_ns();
	if (RAND_bytes((unsigned char *)&k->rng, sizeof(k->rng)) != 1 ||
	    k->rng == 0)
		k->rng = st_mono_ns() | 1;
	k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (k->efd < 0) {
		rc = -errno;
		goto fail_efd;
	}
	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->work_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&k->done_cond, NULL);
	/* The KMS thread handles plaintext DEKs (the backend library copies
	 * them through its stack while unwrapping): its stack is a mapping
	 * excluded from core dumps, like the DEK cache. */
	pthread_attr_t ta;
	pthread_attr_init(&ta);
	k->stack = mem_nodump_alloc(KMS_STACK_BYTES);
	if (k->stack)
		pthread_attr_setstack(&ta, k->stack, KMS_STACK_BYTES);
	rc = pthread_create(&k->thread, &ta, kms_thread, k);
	pthread_attr_destroy(&ta);
	if (rc) {
		mem_nodump_free(k->stack, KMS_STACK_BYTES);
		k->stack = NULL;
		rc = -rc;
		goto fail_thread;
	}
	*out = k;
	return 0;

fail_thread:
	pthread_cond_destroy(&k->done_cond);
	pthread_cond_destroy(&k->work_cond);
	pthread_mutex_destroy(&k->lock);
	close(k->efd);
fail_efd:
	kms_backend_close(b);
	free(k);
	return rc;
}

static void cancel_list(struct kms *k, struct kms_req *r)
{
	while (r) {
		struct kms_req *next = r->next_;
		r->rc = -ECANCELED;
		r->cls = KMS_FATAL;
		snprintf(r->msg, sizeof(r->msg), "KMS shut down");
		complete(k, r);
		r = next;
	}
}

void kms_free(struct kms *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->stopping = true;
	pthread_cond_broadcast(&k->work_cond);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	if (k->stack) {
		explicit_bzero(k->stack, KMS_STACK_BYTES);
		mem_nodump_free(k->stack, KMS_STACK_BYTES);
		k->stack = NULL;
	}

	pthread_mutex_lock(&k->lock);
	struct kms_req *ready = k->ready, *delayed = k->delayed;
	k->ready = k->ready_tail = k->delayed = NULL;
	cancel_list(k, ready);
	cancel_list(k, delayed);
	k->cq = k->cq_tail = NULL; /* owners keep their requests */
	pthread_mutex_unlock(&k->lock);

	kms_backend_close(k->backend);
	pthread_cond_destroy(&k->done_cond);
	pthread_cond_destroy(&k->work_cond);
	pthread_mutex_destroy(&k->lock);
	close(k->efd);
	free(k);
}

static int req_ok(const struct kms_req *r)
{
	if (!r || !ref_ok(r->kek_ref))
		return 0;
	switch (r->op) {
	case KMS_OP_WRAP:
		return r->dek_in && r->dek_len && r->dek_len <= KMS_DEK_MAX;
	case KMS_OP_UNWRAP:
		return r->dek_out && r->dek_cap && r->blob.len &&
		       r->blob.len <= KMS_BLOB_MAX;
	case KMS_OP_HEALTH:
		return 1;
	}
	return 0;
}

static int submit_flags(struct kms *k, struct kms_req *r, int flags)
{
	if (r && r->op == KMS_OP_HEALTH && !r->kek_ref[0])
		snprintf(r->kek_ref, sizeof(r->kek_ref), "-");
	if (!k || !req_ok(r))
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	int rc = 0;
	if (k->stopping)
		rc = -ESHUTDOWN;
	else if (REQ_PHASE(r) == REQ_QUEUED || REQ_PHASE(r) == REQ_RUNNING)
		rc = -EINVAL; /* already in flight */
	else if (k->pending >= k->cfg.queue_max)
		rc = -EAGAIN;
	if (rc == 0) {
		r->rc = 0;
		r->cls = KMS_OK;
		r->attempts = 0;
		r->dek_out_len = 0;
		r->msg[0] = '\0';
		r->state_ = flags | REQ_QUEUED;
		if (r->op == KMS_OP_WRAP)
			r->blob.len = 0;
		k->pending++;
		k->health.queued++;
		ready_push(k, r);
		pthread_cond_signal(&k->work_cond);
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int kms_submit(struct kms *k, struct kms_req *r)
{
	return submit_flags(k, r, 0);
}

struct kms_req *kms_poll(struct kms *k)
{
	pthread_mutex_lock(&k->lock);
	struct kms_req *r = k->cq;
	if (r) {
		k->cq = r->next_;
		if (!k->cq)
			k->cq_tail = NULL;
		r->next_ = NULL;
	}
	if (!k->cq) {
		uint64_t v;
		if (read(k->efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: already clear. */
		}
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

int kms_completion_fd(const struct kms *k)
{
	return k->efd;
}

int kms_call(struct kms *k, struct kms_req *r)
{
	if (!r || r->done)
		return -EINVAL;
	int rc = submit_flags(k, r, REQ_SYNC);
	if (rc)
		return rc;
	pthread_mutex_lock(&k->lock);
	while (REQ_PHASE(r) != REQ_DONE)
		pthread_cond_wait(&k->done_cond, &k->lock);
	r->state_ = REQ_DONE;
	pthread_mutex_unlock(&k->lock);
	return r->rc;
}

void kms_get_health(struct kms *k, struct kms_health *h)
{
	pthread_mutex_lock(&k->lock);
	*h = k->health;
	pthread_mutex_unlock(&k->lock);
}

const char *kms_backend_name(const struct kms *k)
{
	return k->backend->ops->name;
}
