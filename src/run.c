/* `sealtap run`: tap and ext_proc server side by side. See run.h. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sealtap/keys_runtime.h"
#include "sealtap/log.h"
#include "sealtap/policy.h"
#include "sealtap/run.h"

/* Starts the server with the shared policy and keys; |xc| (filled here)
 * must outlive it. Its event-loop
 * threads are made with SIGINT/SIGTERM blocked (they inherit the mask),
 * so those signals reach the tap's handlers on the main thread. */
static int start_server(const struct st_config *cfg, const struct policy *pol,
			struct keys_runtime *keys, const char *ready_file,
			struct extproc_cfg *xc, struct extproc_server **out,
			char *err, size_t errlen)
{
	extproc_cfg_from_config(cfg, xc);
	xc->policy = pol;
	xc->keys = keys_runtime_cache(keys);
	xc->key_reader_base = cfg->capture.workers;
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	signal(SIGPIPE, SIG_IGN);
	struct extproc_server *srv;
	int rc = extproc_server_new(xc, &srv, err, errlen);
	if (rc == 0 && (rc = extproc_server_start(srv, err, errlen)) < 0) {
		extproc_server_shutdown(srv);
		extproc_server_free(srv);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		return rc;
	if (ready_file && (rc = extproc_write_ready(srv, ready_file)) < 0) {
		snprintf(err, errlen, "--ready-file %s: %s", ready_file,
			 strerror(-rc));
		extproc_server_shutdown(srv);
		extproc_server_join(srv);
		extproc_server_free(srv);
		return rc;
	}
	char addrs[1024] = "";
	FILE *mf = fmemopen(addrs, sizeof(addrs), "w");
	if (mf) {
		extproc_server_write_addrs(srv, mf);
		fclose(mf);
	}
	log_kv(LOG_LEVEL_INFO, "extproc listening", "addresses", addrs, NULL);
	*out = srv;
	return 0;
}

/* SIGUSR1 prints the ext_proc counters, as `sealtap extproc` does: a
 * thread of its own waits for it (every other thread has it blocked;
 * its default action would end the process, tap included). */
struct usr1 {
	struct extproc_server *srv;
	struct keys_runtime *keys;
	_Atomic bool done;
	pthread_t thread;
	bool started;
};

static void *usr1_main(void *arg)
{
	struct usr1 *u = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (atomic_load(&u->done))
			return NULL;
		struct extproc_counters sum;
		extproc_server_counters(u->srv, &sum);
		keys_runtime_counters(u->keys, &sum.seal);
		extproc_counters_write_json(stdout, &sum);
		fputc('\n', stdout);
		fflush(stdout);
	}
}

static void usr1_stop(struct usr1 *u)
{
	if (!u->started)
		return;
	atomic_store(&u->done, true);
	pthread_kill(u->thread, SIGUSR1);
	pthread_join(u->thread, NULL);
	u->started = false;
}

int run_tap_and_extproc(const struct st_config *cfg, struct capture_opts *o,
			const char *ready_file, struct capture_result *res,
			struct extproc_counters *xsum, char *err,
			size_t errlen)
{
	struct policy *pol;
	struct keys_runtime *keys;
	memset(res, 0, sizeof(*res));
	memset(xsum, 0, sizeof(*xsum));
	/* SIGINT/SIGTERM/SIGHUP held from the start: the server serves (and
	 * writes its ready file) long before the tap installs its handlers
	 * (preload, EAL, ports), and their default action would end the
	 * process with no drain and its records left in .tmp. capture_run()
	 * unblocks them once its handlers are in place, so one that came
	 * early stops the run in order. */
	sigset_t stopset;
	capture_stop_signals(&stopset);
	pthread_sigmask(SIG_BLOCK, &stopset, NULL);
	/* SIGUSR1: blocked from here on in this thread and every thread
	 * made after (keys, event loops, DPDK lcores): only usr1_main takes
	 * it. */
	sigset_t usr1set;
	sigemptyset(&usr1set);
	sigaddset(&usr1set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1set, NULL);
	int rc = extproc_start_policy(cfg, o->policy_path,
				      cfg->capture.workers +
					      cfg->extproc.threads,
				      &pol, &keys, err, errlen);
	if (rc < 0)
		return rc;
	struct usr1 u = { .keys = keys };
	struct extproc_server *srv = NULL;
	struct extproc_cfg xc; /* the server keeps a pointer: lives to the end */
	rc = start_server(cfg, pol, keys, ready_file, &xc, &srv, err, errlen);
	if (rc == 0) {
		u.srv = srv;
		u.started = pthread_create(&u.thread, NULL, usr1_main, &u) == 0;
		if (!u.started)
			log_kv(LOG_LEVEL_WARN, "SIGUSR1 will not print the "
			       "ext_proc counters: no thread for it", NULL);
		o->policy = pol;
		o->keys = keys;
		o->reader_base = 0;
		rc = capture_run(cfg, o, res, err, errlen);
		usr1_stop(&u);
		/* the stop signals went to capture_run()'s handlers: held
		 * again, so one during the drain ends it (as in sealtap
		 * extproc) */
		pthread_sigmask(SIG_BLOCK, &stopset, NULL);
		extproc_server_stop(srv, &stopset);
		extproc_server_join(srv);
		extproc_server_counters(srv, xsum);
		extproc_server_free(srv);
	}
	/* Keys last: every reader (workers, event-loop threads) is gone. */
	keys_runtime_halt(keys);
	keys_runtime_counters(keys, &res->total);
	keys_runtime_stop(keys);
	policy_free(pol);
	return rc;
}
