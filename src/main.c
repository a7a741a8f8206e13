/* sealtap command line: dispatches subcommands. The only place that exits. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sealtap/capture.h"
#include "sealtap/config.h"
#include "sealtap/counters.h"
#include "sealtap/extproc.h"
#include "sealtap/gen.h"
#include "sealtap/keys.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/mem_secret.h"
#include "sealtap/open.h"
#include "sealtap/run.h"

#define SEALTAP_VERSION "0.1.0"

/* Exit codes: documented in --help. */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* the run failed (EAL, memory, port) */
	EXIT_USAGE = 2,   /* bad command line or configuration */
	EXIT_INPUT = 3,   /* input damaged: processed up to the damage */
};

#define MAX_PCAPS 256

static void usage_main(FILE *out)
{
	fprintf(out,
"usage: sealtap <command> [options]\n"
"\n"
"A confidential HTTP/2 traffic processor.\n"
"\n"
"commands:\n"
"  tap               pcap files or a DPDK port -> decode -> flows -> TCP\n"
"                    reassembly -> HTTP/2 -> policy -> sealed records\n"
"  gen               write a pcap of synthetic HTTP/2 traffic (nghttp2\n"
"                    client and server sessions, TCP segmentation)\n"
"  extproc           Envoy ext_proc callout backend (gRPC over HTTP/2):\n"
"                    header/body mutations, deny rules, records\n"
"  run               the tap and the ext_proc backend in one process,\n"
"                    one policy, one set of keys, one record directory\n"
"  keys              tenants' data-encryption keys: init (dev token and\n"
"                    KEK), create, rotate, list\n"
"  open              print records with sealed values opened (key holders)\n"
"  config-reference  print every configuration option as commented YAML\n"
"  version           print the version\n"
"  help [command]    this text, or a command's options\n"
"\n"

"Run 'sealtap <command> --help' for a command's options.\n");
}

static void usage_run(FILE *out)
{
	fprintf(out,
"usage: sealtap run [tap options] [ext_proc options] [-- EAL arguments]\n"
"\n"
"The tap (see 'sealtap tap --help'; live with --port, or offline with\n"
"--pcap) and the ext_proc server (see 'sealtap extproc --help') in one\n"
"process: one policy, one keys runtime, records of both in export.dir.\n"
"The server drains (GOAWAY) when the tap stops (SIGINT/SIGTERM, --duration,\n"
"or the end of the captures).\n"
"\n"
"ext_proc options (the extproc: section of the configuration otherwise):\n"
"  -l, --listen ADDR          listen on host:port (repeatable; port 0 picks\n"
"                             a free one)\n"
"  -t, --threads N            event-loop threads (extproc.threads)\n"
"      --health-listen ADDR   plain HTTP/1.1 health port (GET / -> 200)\n"
"      --ready-file FILE      once listening, write the bound addresses as\n"
"                             JSON to FILE\n"
"\n"
"Output: the tap's summary, the ext_proc summary, then one JSON object\n"
"(last line of stdout) with the tap's figures and counters and the\n"
"server's counters under \"extproc\".\n"
"Exit status as for sealtap tap.\n");
}

static void usage_tap(FILE *out)
{
	fprintf(out,
"usage: sealtap tap [options] [-- EAL arguments]\n"
"\n"
"Offline:  sealtap tap --pcap FILE [--pcap FILE ...]\n"
"Live:     sealtap tap --port NAME -- -a 0000:00:04.0   (or --vdev ...)\n"
"\n"
"options:\n"
"  -c, --config FILE          YAML configuration (see config/sealtap.yaml);\n"
"                             defaults apply without one\n"
"  -r, --pcap FILE            read a pcap/pcapng capture (repeatable; files\n"
"                             are read in order, timers run on packet time)\n"
"      --preload N            load the captures into memory and replay them\n"
"                             N times (benchmarks)\n"
"  -w, --workers N            worker lcores (overrides capture.workers)\n"
"      --port NAME            DPDK port for live capture (capture.port)\n"
"      --duration SECONDS     live: stop after this long (default: ^C)\n"
"      --out DIR              write HTTP/2 exchange records (NDJSON) to DIR\n"
"                             (export.dir; default ./records)\n"
"      --policy FILE          which values are sealed, tokenized, hashed or\n"
"                             redacted, per route and tenant (default: the\n"
"                             built-in policy; see docs/policy.md)\n"
"      --analyzer KIND        h2 (records, the default), digest, or none\n"
"                             (the capture path alone, for benchmarks)\n"
"      --stream-digests FILE  instead of records, write SHA-256 digests of\n"
"                             every reassembled stream direction (never the\n"
"                             bytes) as NDJSON\n"
"      --log-level LEVEL      debug, info, warn, error (log.level)\n"
"      --no-progress          no progress display on a terminal\n"
"  -h, --help                 this text\n"
"\n"
"Output: a one-line summary, then the summary as one JSON object (last line\n"
"of stdout). Logs are JSON lines on stderr.\n"
"Exit status: 0 done, 1 run failed, 2 bad usage or configuration,\n"
"3 an input file was damaged (what could be read was processed).\n");
}

static int fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sealtap: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s[0] || s[0] == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The tap's summary; with |x| (sealtap run) the ext_proc server's too. */
static void print_summary(const struct capture_result *res,
			  const struct extproc_counters *x)
{
	const uint64_t *v = res->total.v;
	uint64_t pkts = v[ST_CTR_rx_packets], bytes = v[ST_CTR_rx_bytes];
	double mpps = res->wall_s > 0 ? (double)pkts / res->wall_s / 1e6 : 0;
	double gbps = res->wall_s > 0 ? (double)bytes * 8 / res->wall_s / 1e9
				      : 0;
	uint64_t rejected = pkts > v[ST_CTR_decode_tcp]
				    ? pkts - v[ST_CTR_decode_tcp]
				    : 0;
	uint64_t dropped = v[ST_CTR_rx_nombuf] + v[ST_CTR_rx_ring_full];
	printf("sealtap tap: %llu packets, %.1f MB in %.3f s (%.3f Mpps, "
	       "%.2f Gbit/s, %u worker%s); %llu flows, %llu stream bytes, "
	       "%llu gaps; %llu packets not TCP/IP or malformed, %llu "
	       "dropped\n",
	       (unsigned long long)pkts, (double)bytes / 1e6, res->wall_s,
	       mpps, gbps, res->workers, res->workers == 1 ? "" : "s",
	       (unsigned long long)v[ST_CTR_flow_created],
	       (unsigned long long)v[ST_CTR_reasm_bytes],
	       (unsigned long long)v[ST_CTR_reasm_gaps],
	       (unsigned long long)rejected, (unsigned long long)dropped);
	if (res->record_dir[0])
		printf("sealtap tap: %llu HTTP/2 connections, %llu exchanges "
		       "(%llu complete, %llu with anomalies), %llu records "
		       "written to %s/ in %llu file%s, %llu dropped, %llu lost "
		       "(%llu failed writes)\n",
		       (unsigned long long)v[ST_CTR_h2_conns],
		       (unsigned long long)v[ST_CTR_h2_exchanges],
		       (unsigned long long)v[ST_CTR_h2_exchanges_complete],
		       (unsigned long long)v[ST_CTR_h2_exchanges_anomalous],
		       (unsigned long long)res->records_written,
		       res->record_dir,
		       (unsigned long long)res->record_files,
		       res->record_files == 1 ? "" : "s",
		       (unsigned long long)v[ST_CTR_h2_records_dropped],
		       (unsigned long long)res->records_lost,
		       (unsigned long long)res->record_write_errors);
	printf("{\"packets\":%llu,\"bytes\":%llu,\"wall_s\":%.6f,\"mpps\":%.6f,"
	       "\"gbps\":%.6f,\"workers\":%u,\"mpps_per_worker\":%.6f,"
	       "\"gbps_per_worker\":%.6f,\"hugepages\":%s,\"rss\":%s,"
	       "\"flows\":%llu,\"stream_bytes\":%llu,\"gaps\":%llu,"
	       "\"dropped\":%llu,\"exchanges\":%llu,\"exchanges_per_sec\":%.1f,"
	       "\"records_written\":%llu,\"record_files\":%llu,"
	       "\"records_lost\":%llu,\"record_write_errors\":%llu,"
	       "\"record_dir\":\"%s\",\"counters\":",
	       (unsigned long long)pkts, (unsigned long long)bytes,
	       res->wall_s, mpps, gbps, res->workers,
	       res->workers ? mpps / res->workers : 0,
	       res->workers ? gbps / res->workers : 0,
	       res->hugepages ? "true" : "false", res->rss ? "true" : "false",
	       (unsigned long long)v[ST_CTR_flow_created],
	       (unsigned long long)v[ST_CTR_reasm_bytes],
	       (unsigned long long)v[ST_CTR_reasm_gaps],
	       (unsigned long long)dropped,
	       (unsigned long long)v[ST_CTR_h2_exchanges],
	       res->wall_s > 0 ? (double)v[ST_CTR_h2_exchanges] / res->wall_s
			       : 0.0,
	       (unsigned long long)res->records_written,
	       (unsigned long long)res->record_files,
	       (unsigned long long)res->records_lost,
	       (unsigned long long)res->record_write_errors, res->record_dir);
	counters_write_json(stdout, &res->total);
	if (x) {
		printf(",\"extproc\":");
		extproc_counters_write_json(stdout, x);
	}
	printf("}\n");
	fflush(stdout);
}

/* `sealtap tap`, and with |run| `sealtap run` (the same options plus the
 * ext_proc server's). */
static int cmd_tap(int argc, char **argv, bool run)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pcap", required_argument, NULL, 'r' },
		{ "preload", required_argument, NULL, 'P' },
		{ "workers", required_argument, NULL, 'w' },
		{ "port", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "stream-digests", required_argument, NULL, 'D' },
		{ "out", required_argument, NULL, 'o' },
		{ "analyzer", required_argument, NULL, 'a' },
		{ "policy", required_argument, NULL, 'y' },
		{ "log-level", required_argument, NULL, 'G' },
		{ "no-progress", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		/* sealtap run only */
		{ "listen", required_argument, NULL, 'L' },
		{ "threads", required_argument, NULL, 't' },
		{ "health-listen", required_argument, NULL, 'H' },
		{ "ready-file", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = run ? "run" : "tap";
	const char *listen[EXTPROC_MAX_LISTEN], *health = NULL, *ready = NULL;
	unsigned nlisten = 0;
	uint64_t threads = 0;
	const char *config_path = NULL, *pcaps[MAX_PCAPS];
	const char *port = NULL, *log_level = NULL, *out_dir = NULL;
	const char *analyzer = NULL;
	struct capture_opts o = { .pcaps = pcaps };
	uint64_t workers = 0;
	bool no_progress = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, run ? "c:r:w:hl:t:" : "c:r:w:h",
				opts, NULL)) != -1) {
		uint64_t v;
		if (!run && (c == 'L' || c == 't' || c == 'H' || c == 'R'))
			return fail(EXIT_USAGE, "ext_proc options belong to "
				    "'sealtap run' (or 'sealtap extproc')");
		switch (c) {
		case 'l': /* short -l of run */
		case 'L':
			if (nlisten >= EXTPROC_MAX_LISTEN)
				return fail(EXIT_USAGE, "at most %d --listen",
					    EXTPROC_MAX_LISTEN);
			listen[nlisten++] = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 128, &threads) < 0 || !threads)
				return fail(EXIT_USAGE, "--threads '%s': give "
					    "a number from 1 to 128", optarg);
			break;
		case 'H': health = optarg; break;
		case 'R': ready = optarg; break;
		case 'c': config_path = optarg; break;
		case 'r':
			if (o.npcaps >= MAX_PCAPS)
				return fail(EXIT_USAGE, "at most %d --pcap "
					    "files", MAX_PCAPS);
			pcaps[o.npcaps++] = optarg;
			break;
		case 'P':
			if (parse_u64(optarg, 1000000000, &v) < 0 || v == 0)
				return fail(EXIT_USAGE, "--preload '%s': give a "
					    "number of passes >= 1", optarg);
			o.preload_passes = v;
			break;
		case 'w':
			if (parse_u64(optarg, 128, &v) < 0 || v == 0)
				return fail(EXIT_USAGE, "--workers '%s': give "
					    "a number from 1 to 128", optarg);
			workers = v;
			break;
		case 'p': port = optarg; break;
		case 'd': {
			char *end;
			o.duration_s = strtod(optarg, &end);
			if (*end || o.duration_s <= 0)
				return fail(EXIT_USAGE, "--duration '%s': give "
					    "seconds > 0", optarg);
			break;
		}
		case 'D': o.digest_path = optarg; break;
		case 'o': out_dir = optarg; break;
		case 'a': analyzer = optarg; break;
		case 'y': o.policy_path = optarg; break;
		case 'G': log_level = optarg; break;
		case 'n': no_progress = true; break;
		case 'h':
			if (run)
				usage_run(stdout);
			else
				usage_tap(stdout);
			return EXIT_OK;
		default: /* getopt already named the bad option */
			return fail(EXIT_USAGE, "see 'sealtap %s --help'",
				    name);
		}
	}
	/* Whatever follows "--" goes to the DPDK EAL. */
	o.eal_args = (const char *const *)&argv[optind];
	o.neal_args = (unsigned)(argc - optind);
	if (o.npcaps == 0 && o.preload_passes)
		return fail(EXIT_USAGE, "--preload needs --pcap FILE");
	o.analyzer = o.digest_path ? CAPTURE_ANALYZER_DIGEST
				   : CAPTURE_ANALYZER_H2;
	if (analyzer) {
		if (!strcmp(analyzer, "h2"))
			o.analyzer = CAPTURE_ANALYZER_H2;
		else if (!strcmp(analyzer, "none"))
			o.analyzer = CAPTURE_ANALYZER_NONE;
		else if (!strcmp(analyzer, "digest"))
			o.analyzer = CAPTURE_ANALYZER_DIGEST;
		else
			return fail(EXIT_USAGE, "--analyzer '%s': use h2, "
				    "digest or none", analyzer);
	}
	if (o.analyzer == CAPTURE_ANALYZER_DIGEST && !o.digest_path)
		return fail(EXIT_USAGE, "--analyzer digest needs "
			    "--stream-digests FILE");

	struct st_config cfg;
	char err[512];
	if (config_path) {
		if (config_load(config_path, &cfg, err, sizeof(err)) < 0)
			return fail(EXIT_USAGE, "%s", err);
	} else {
		config_defaults(&cfg);
	}
	if (workers)
		cfg.capture.workers = (uint32_t)workers;
	extproc_config_override(&cfg, listen, nlisten, (unsigned)threads,
				health);
	if (port) {
		free(cfg.capture.port);
		cfg.capture.port = strdup(port);
	}
	if (out_dir) {
		free(cfg.export_.dir);
		cfg.export_.dir = strdup(out_dir);
	}
	if (log_level) {
		int l = log_level_parse(log_level);
		if (l < 0 || l == LOG_LEVEL_OFF) {
			config_free(&cfg);
			return fail(EXIT_USAGE, "--log-level '%s': use debug, "
				    "info, warn or error", log_level);
		}
		cfg.log.level = l;
	}
	log_set_level(cfg.log.level);
	if (config_validate(&cfg, err, sizeof(err)) < 0) {
		config_free(&cfg);
		return fail(EXIT_USAGE, "%s", err);
	}
	o.progress = !no_progress && isatty(STDERR_FILENO);

	if (run && o.analyzer != CAPTURE_ANALYZER_H2) {
		config_free(&cfg);
		return fail(EXIT_USAGE, "sealtap run writes records: drop "
			    "--analyzer/--stream-digests (or use sealtap tap)");
	}
	struct capture_result res;
	static struct extproc_counters xsum; /* large */
	int rc = run ? run_tap_and_extproc(&cfg, &o, ready, &res, &xsum, err,
					   sizeof(err))
		     : capture_run(&cfg, &o, &res, err, sizeof(err));
	config_free(&cfg);
	if (rc < 0)
		return fail(rc == -EINVAL || rc == -ENOTSUP || rc == -ENOENT
				    ? EXIT_USAGE
				    : EXIT_RUNTIME,
			    "%s", err);
	if (run)
		extproc_write_summary(stdout, "sealtap run: ext_proc", &xsum,
				      res.wall_s);
	print_summary(&res, run ? &xsum : NULL);
	if (res.input_error[0])
		return fail(EXIT_INPUT, "%s", res.input_error);
	uint64_t lost = res.records_lost +
			(run ? xsum.v[EXTPROC_CTR_records_lost] : 0);
	if (lost)
		return fail(EXIT_RUNTIME, "%llu records could not be written "
			    "to the record directory (see the errors above)",
			    (unsigned long long)lost);
	return EXIT_OK;
}

static int cmd_config_reference(void)
{
	config_write_reference(stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	/* Key material off the dumped heap (mem_secret.h). The allocator and
	 * OpenSSL's routing were set up by a constructor, before anything could
	 * allocate through OpenSSL; this reads the outcome. Failing closed:
	 * without it, derived keys, OpenSSL's key schedules and TLS keys would
	 * sit on the ordinary heap, where a core dump writes them out. */
	int sm = mem_secret_init();
	if (sm < 0)
		return fail(EXIT_RUNTIME, "secret memory: %s",
			    sm == -EBUSY
				    ? "OpenSSL allocated before main() and cannot "
				      "be routed to not-dumped memory"
				    : "cannot reserve not-dumped memory for key "
				      "material (mmap/madvise refused)");
	/* A crash dump must not show traffic in CPU registers (mem.h); the
	 * registers of a thread stopped by it are saved on its stack, and
	 * this thread handles plaintext in several commands (the tap's RX
	 * stage, `sealtap open`), so its stack is left out of dumps too. */
	if (mem_crash_guard_install() < 0)
		return fail(EXIT_RUNTIME, "cannot install the core dump "
			    "guard (sigaction refused)");
	(void)mem_nodump_stack();
	if (argc < 2) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "tap"))
		return cmd_tap(argc - 1, argv + 1, false);
	if (!strcmp(cmd, "run"))
		return cmd_tap(argc - 1, argv + 1, true);
	if (!strcmp(cmd, "gen"))
		return gen_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "extproc"))
		return extproc_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "keys"))
		return keys_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "open"))
		return open_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "config-reference"))
		return cmd_config_reference();
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("sealtap %s\n", SEALTAP_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		if (argc > 2 && !strcmp(argv[2], "tap"))
			usage_tap(stdout);
		else if (argc > 2 && !strcmp(argv[2], "run"))
			usage_run(stdout);
		else if (argc > 2 && !strcmp(argv[2], "keys"))
			return keys_main(2, (char *[]){ "keys", "--help", NULL });
		else if (argc > 2 && !strcmp(argv[2], "gen"))
			return gen_main(2, (char *[]){ "gen", "--help", NULL });
		else if (argc > 2 && !strcmp(argv[2], "extproc"))
			return extproc_main(2, (char *[]){ "extproc", "--help",
							   NULL });
		else
			usage_main(stdout);
		return EXIT_OK;
	}
	return fail(EXIT_USAGE, "unknown command '%s'; see 'sealtap help'", cmd);
}
