/* `sealtap extproc`: run the ext_proc callout backend until SIGTERM.
 * Library-style: returns the exit code to main(), which exits. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sealtap/config.h"
#include "sealtap/extproc.h"
#include "sealtap/keys_runtime.h"
#include "sealtap/log.h"
#include "sealtap/policy.h"

enum { XP_OK = 0, XP_RUNTIME = 1, XP_USAGE = 2 };

static void usage(FILE *out)
{
	fprintf(out,
"usage: sealtap extproc [options]\n"
"\n"
"Envoy / Service Extensions external processor (ext_proc gRPC over HTTP/2,\n"
"h2c or TLS with ALPN h2). Applies the policy as the tap does: sensitive\n"
"header and body values are replaced by sealed tokens under the tenant's\n"
"keys (removed when they cannot be), deny rules answer with an immediate\n"
"response, and every exchange leaves a record. Stops gracefully on\n"
"SIGTERM/SIGINT (GOAWAY, drain); SIGUSR1 prints the counters as one JSON\n"
"line.\n"
"\n"
"options:\n"
"  -c, --config FILE        YAML configuration (extproc:, export:, kms:,\n"
"                           keys:)\n"
"      --policy FILE        which values are sealed, tokenized, hashed,\n"
"                           redacted or denied (default: the built-in\n"
"                           policy; see docs/policy.md)\n"
"  -l, --listen ADDR        listen on host:port (repeatable; replaces\n"
"                           extproc.listen; port 0 picks a free one)\n"
"  -t, --threads N          event-loop threads (extproc.threads)\n"
"      --health-listen ADDR plain HTTP/1.1 health port (GET / -> 200)\n"
"      --out DIR            record directory (export.dir)\n"
"      --no-records         write no exchange records\n"
"      --ready-file FILE    once listening, write the bound addresses as\n"
"                           JSON to FILE (tests, supervisors)\n"
"      --duration SECONDS   stop after this long (benchmarks)\n"
"      --log-level LEVEL    debug, info, warn, error\n"
"  -h, --help               this text\n"
"\n"
"Output: logs are JSON lines on stderr; at exit a summary line and the\n"
"counters as one JSON object (last line of stdout).\n"
"Exit status: 0 stopped cleanly, 1 run failed, 2 bad usage or configuration.\n");
}

static int fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sealtap extproc: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

/* See extproc.h. */
void extproc_cfg_from_config(const struct st_config *cfg,
			     struct extproc_cfg *x)
{
	memset(x, 0, sizeof(*x));
	for (unsigned i = 0; i < cfg->extproc.nlisten && i < EXTPROC_MAX_LISTEN; i++)
		x->listen[x->nlisten++] = cfg->extproc.listen[i];
	x->tls_cert = cfg->extproc.tls_cert;
	x->tls_key = cfg->extproc.tls_key;
	x->tls_client_ca = cfg->extproc.tls_client_ca;
	x->threads = cfg->extproc.threads;
	x->max_message = cfg->extproc.max_message;
	x->max_streams = cfg->extproc.max_streams;
	x->max_connections = cfg->extproc.max_connections;
	x->max_header_list = cfg->extproc.max_header_list;
	x->idle_timeout_ns = cfg->extproc.idle_timeout_ns;
	x->stream_timeout_ns = cfg->extproc.stream_timeout_ns;
	x->shutdown_timeout_ns = cfg->extproc.shutdown_timeout_ns;
	x->request_id_header = cfg->extproc.request_id_header
				       ? cfg->extproc.request_id_header
				       : EXTPROC_REQUEST_ID_DEFAULT;
	if (!strcmp(x->request_id_header, "none"))
		x->request_id_header = NULL;
	x->health_listen = cfg->extproc.health_listen;
	x->records = cfg->extproc.records;
	x->record_dir = cfg->export_.dir;
	x->ring_size = cfg->export_.ring_size;
	x->file_max_bytes = cfg->export_.file_max_bytes;
	x->file_max_age_ns = cfg->export_.file_max_age_ns;
	x->flush_ns = cfg->export_.flush_ns;
	x->batch_bytes = cfg->export_.batch_bytes;
}

/* Loads the policy (or the built-in one) and unwraps the DEKs of its
 * tenants into the DEK cache, |readers| cache readers, before any thread
 * starts. A tenant without a usable key fails closed (logged), it does
 * not stop the server. 0 or -errno with |err|; on error nothing is left
 * to free. Shared with sealtap run. */
int extproc_start_policy(const struct st_config *cfg, const char *path,
			 unsigned readers, struct policy **pol,
			 struct keys_runtime **keys, char *err, size_t errlen)
{
	*pol = path ? policy_load(path, err, errlen)
		    : policy_builtin(err, errlen);
	if (!*pol)
		return -EINVAL;
	int rc = keys_runtime_start_policy(cfg, *pol, readers, keys, err,
					   errlen);
	if (rc) {
		policy_free(*pol);
		*pol = NULL;
		return rc;
	}
	log_kv(LOG_LEVEL_INFO, "policy loaded", "policy",
	       path ? path : "built-in", NULL);
	return 0;
}

void extproc_config_override(struct st_config *cfg,
			     const char *const *listen, unsigned nlisten,
			     unsigned threads, const char *health)
{
	if (nlisten) {
		for (unsigned i = 0; i < cfg->extproc.nlisten; i++) {
			free(cfg->extproc.listen[i]);
			cfg->extproc.listen[i] = NULL;
		}
		cfg->extproc.nlisten = 0;
		for (unsigned i = 0; i < nlisten; i++)
			cfg->extproc.listen[cfg->extproc.nlisten++] =
				strdup(listen[i]);
	}
	if (threads)
		cfg->extproc.threads = threads;
	if (health) {
		free(cfg->extproc.health_listen);
		cfg->extproc.health_listen = strdup(health);
	}
}

int extproc_write_ready(struct extproc_server *srv, const char *path)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	extproc_server_write_addrs(srv, f);
	fputc('\n', f);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -errno;
	return 0;
}

static void print_counters(const struct extproc_counters *c, double wall)
{
	extproc_write_summary(stdout, "sealtap extproc", c, wall);
	printf("{\"wall_s\":%.3f,\"counters\":", wall);
	extproc_counters_write_json(stdout, c);
	printf("}\n");
	fflush(stdout);
}

int extproc_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "health-listen", required_argument, NULL, 'H' },
		{ "out", required_argument, NULL, 'o' },
		{ "no-records", no_argument, NULL, 'n' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *policy_path = NULL, *health = NULL;
	const char *out_dir = NULL;
	const char *ready = NULL, *log_level = NULL;
	const char *listen[EXTPROC_MAX_LISTEN];
	unsigned nlisten = 0;
	long threads = 0;
	bool no_records = false;
	double duration = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:l:t:h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'p': policy_path = optarg; break;
		case 'l':
			if (nlisten >= EXTPROC_MAX_LISTEN)
				return fail(XP_USAGE, "at most %d --listen",
					    EXTPROC_MAX_LISTEN);
			listen[nlisten++] = optarg;
			break;
		case 't':
			threads = strtol(optarg, &end, 10);
			if (*end || threads < 1 || threads > 128)
				return fail(XP_USAGE, "--threads '%s': give a "
					    "number from 1 to 128", optarg);
			break;
		case 'H': health = optarg; break;
		case 'o': out_dir = optarg; break;
		case 'n': no_records = true; break;
		case 'r': ready = optarg; break;
		case 'd':
			duration = strtod(optarg, &end);
			if (*end || duration <= 0)
				return fail(XP_USAGE, "--duration '%s': give "
					    "seconds > 0", optarg);
			break;
		case 'L': log_level = optarg; break;
		case 'h': usage(stdout); return XP_OK;
		default: return fail(XP_USAGE, "see 'sealtap extproc --help'");
		}
	}
	if (optind < argc)
		return fail(XP_USAGE, "unexpected argument '%s'", argv[optind]);

	struct st_config cfg;
	char err[512];
	if (config_path) {
		if (config_load(config_path, &cfg, err, sizeof(err)) < 0)
			return fail(XP_USAGE, "%s", err);
	} else {
		config_defaults(&cfg);
	}
	extproc_config_override(&cfg, listen, nlisten, (unsigned)threads,
				health);
	if (out_dir) {
		free(cfg.export_.dir);
		cfg.export_.dir = strdup(out_dir);
	}
	if (no_records)
		cfg.extproc.records = false;
	if (log_level) {
		int l = log_level_parse(log_level);
		if (l < 0 || l == LOG_LEVEL_OFF) {
			config_free(&cfg);
			return fail(XP_USAGE, "--log-level '%s': use debug, "
				    "info, warn or error", log_level);
		}
		cfg.log.level = l;
	}
	log_set_level(cfg.log.level);
	if (config_validate(&cfg, err, sizeof(err)) < 0) {
		config_free(&cfg);
		return fail(XP_USAGE, "%s", err);
	}

	/* Signals go to this thread only (sigwait below); the event-loop
	 * threads inherit the mask. A peer closing mid-write is an error
	 * return, not a signal. SIGHUP (a supervisor, a closed terminal)
	 * and SIGQUIT drain like SIGTERM: their default ends the process
	 * with no drain, no summary and the record file left as .tmp. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct policy *pol = NULL;
	struct keys_runtime *keys = NULL;
	int rc = extproc_start_policy(&cfg, policy_path, cfg.extproc.threads,
				      &pol, &keys, err, sizeof(err));
	if (rc < 0) {
		config_free(&cfg);
		return fail(rc == -EINVAL ? XP_USAGE : XP_RUNTIME, "%s", err);
	}
	struct extproc_cfg xc;
	extproc_cfg_from_config(&cfg, &xc);
	xc.policy = pol;
	xc.keys = keys_runtime_cache(keys);
	struct extproc_server *srv;
	rc = extproc_server_new(&xc, &srv, err, sizeof(err));
	if (rc < 0) {
		keys_runtime_stop(keys);
		policy_free(pol);
		config_free(&cfg);
		return fail(rc == -EINVAL ? XP_USAGE : XP_RUNTIME, "%s", err);
	}
	rc = extproc_server_start(srv, err, sizeof(err));
	if (rc < 0) {
		extproc_server_shutdown(srv);
		extproc_server_free(srv);
		keys_runtime_stop(keys);
		policy_free(pol);
		config_free(&cfg);
		return fail(XP_RUNTIME, "%s", err);
	}
	char addrs[1024];
	FILE *mf = fmemopen(addrs, sizeof(addrs), "w");
	if (mf) {
		extproc_server_write_addrs(srv, mf);
		fclose(mf);
	} else {
		addrs[0] = '\0';
	}
	log_kv(LOG_LEVEL_INFO, "extproc listening", "addresses", addrs, NULL);
	if (ready && (rc = extproc_write_ready(srv, ready)) < 0) {
		extproc_server_shutdown(srv);
		extproc_server_free(srv);
		keys_runtime_stop(keys);
		policy_free(pol);
		config_free(&cfg);
		return fail(XP_RUNTIME, "--ready-file %s: %s", ready,
			    strerror(-rc));
	}

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int sig;
		if (duration > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			double left = duration - ((double)(t1.tv_sec - t0.tv_sec) +
						  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
			if (left <= 0)
				break;
			struct timespec to = { .tv_sec = (time_t)left,
					       .tv_nsec = (long)((left - (double)(time_t)left) * 1e9) };
			sig = sigtimedwait(&set, NULL, &to);
			if (sig < 0)
				continue;
		} else if (sigwait(&set, &sig) != 0) {
			continue;
		}
		if (sig == SIGUSR1) {
			struct extproc_counters sum;
			extproc_server_counters(srv, &sum);
			keys_runtime_counters(keys, &sum.seal);
			extproc_counters_write_json(stdout, &sum);
			fputc('\n', stdout);
			fflush(stdout);
			continue;
		}
		break;
	}
	extproc_server_stop(srv, &set);
	extproc_server_join(srv);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct extproc_counters sum;
	extproc_server_counters(srv, &sum);
	extproc_server_free(srv);
	/* Keys last: the threads that read them are gone. */
	keys_runtime_halt(keys);
	keys_runtime_counters(keys, &sum.seal);
	keys_runtime_stop(keys);
	policy_free(pol);
	print_counters(&sum, (double)(t1.tv_sec - t0.tv_sec) +
				     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	log_kv(LOG_LEVEL_INFO, "extproc stopped", NULL);
	config_free(&cfg);
	if (sum.v[EXTPROC_CTR_records_lost])
		return fail(XP_RUNTIME, "%llu records could not be written to "
			    "the record directory (see the errors above)",
			    (unsigned long long)sum.v[EXTPROC_CTR_records_lost]);
	return XP_OK;
}
