/* `sealtap gen` command line. One table of options drives parsing and
 * --help; gen_run() does the work. Writes to FILE.tmp and renames it, so
 * a failed run never leaves a truncated capture under the asked-for name.
 * Returns exit codes to main.c, which is the only place that exits. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen_priv.h"
#include "sealtap/common.h"

#define GEN_EXIT_OK 0
#define GEN_EXIT_FAIL 2

struct cli {
	struct gen_opts o;
	const char *out;
	const char *why; /* set by a parser that knows better than --help */
};

/* ---- value parsers: 0 or -EINVAL ---------------------------------- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s[0] || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int rc = parse_u64(s, max, &v);
	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/* A byte count: digits with an optional K or M (KiB, MiB). */
static int parse_size(const char *s, size_t n, uint64_t *out)
{
	char buf[32];
	uint64_t mul = 1;
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char last = buf[n - 1];
	if (last == 'K' || last == 'k' || last == 'M' || last == 'm') {
		mul = (last == 'K' || last == 'k') ? 1024 : 1024 * 1024;
		buf[n - 1] = '\0';
	}
	uint64_t v;
	if (parse_u64(buf, GEN_BODY_MAX, &v) < 0 || v > GEN_BODY_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* "N" or "LO-HI". */
static int parse_range(const char *s, struct gen_range *r)
{
	const char *dash = strchr(s, '-');
	if (!dash) {
		if (parse_size(s, strlen(s), &r->lo) < 0)
			return -EINVAL;
		r->hi = r->lo;
		return 0;
	}
	if (parse_size(s, (size_t)(dash - s), &r->lo) < 0 ||
	    parse_size(dash + 1, strlen(dash + 1), &r->hi) < 0 ||
	    r->lo > r->hi)
		return -EINVAL;
	return 0;
}

/* "12", "12%", "0.5%": a percentage with up to 4 decimals, in ppm.
 * Integer arithmetic: no float rounding between machines. */
static int parse_pct(const char *s, uint32_t *ppm)
{
	uint64_t whole = 0, frac = 0, scale = GEN_PPM / 100;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	while (*p >= '0' && *p <= '9' && whole <= 100)
		whole = whole * 10 + (uint64_t)(*p++ - '0');
	if (*p == '.') {
		p++;
		for (int d = 0; *p >= '0' && *p <= '9'; d++, p++) {
			if (d >= 4)
				return -EINVAL;
			scale /= 10;
			frac += (uint64_t)(*p - '0') * scale;
		}
	}
	if (*p == '%')
		p++;
	uint64_t v = whole * (GEN_PPM / 100) + frac;
	if (*p || v > GEN_PPM)
		return -EINVAL;
	*ppm = (uint32_t)v;
	return 0;
}

static int parse_onoff(const char *s, bool *out)
{
	if (!strcmp(s, "on"))
		*out = true;
	else if (!strcmp(s, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Methods whose requests nghttp2's server accepts with the pseudo-headers
 * we send (CONNECT needs others, RFC 9113 §8.5). */
static bool method_known(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT",
					     "DELETE", "PATCH", "OPTIONS" };
	for (size_t i = 0; i < ST_ARRAY_SIZE(known); i++)
		if (!strcmp(m, known[i]))
			return true;
	return false;
}

static int parse_methods(const char *s, struct gen_opts *o)
{
	o->nmethods = 0;
	while (*s) {
		size_t n = strcspn(s, ",");
		if (n == 0 || n >= GEN_METHOD_LEN || o->nmethods == GEN_METHODS_MAX)
			return -EINVAL;
		char *m = o->methods[o->nmethods++];
		memcpy(m, s, n);
		m[n] = '\0';
		if (!method_known(m))
			return -EINVAL;
		s += n + (s[n] == ',');
	}
	return o->nmethods ? 0 : -EINVAL;
}

/* ---- the option table ---------------------------------------------- */

#define U32(field, max)                                                        \
	static int set_##field(struct cli *c, const char *v)                   \
	{                                                                      \
		return parse_u32(v, max, &c->o.field);                         \
	}
U32(connections, 1000000)
U32(streams, 1000000)
U32(concurrency, 1000)
U32(req_headers, 100000)
U32(header_size, GEN_HEADER_SIZE_MAX)
U32(padding, 255)
U32(mtu, GEN_MTU_MAX)
U32(reorder, GEN_REORDER_MAX)
U32(midstream, UINT32_MAX)
#undef U32

static int set_out(struct cli *c, const char *v)
{
	c->out = v;
	return v[0] ? 0 : -EINVAL;
}
static int set_seed(struct cli *c, const char *v)
{
	return parse_u64(v, UINT64_MAX, &c->o.seed);
}
static int set_methods(struct cli *c, const char *v)
{
	return parse_methods(v, &c->o);
}
static int set_req_body(struct cli *c, const char *v)
{
	return parse_range(v, &c->o.req_body);
}
static int set_resp_body(struct cli *c, const char *v)
{
	return parse_range(v, &c->o.resp_body);
}
static int set_huffman(struct cli *c, const char *v)
{
	return parse_onoff(v, &c->o.huffman);
}
static int set_churn(struct cli *c, const char *v)
{
	(void)v;
	c->o.table_churn = true;
	return 0;
}
static int set_grpc(struct cli *c, const char *v)
{
	(void)v;
	c->o.grpc = true;
	return 0;
}
static int set_rst(struct cli *c, const char *v)
{
	return parse_pct(v, &c->o.rst_ppm);
}
static int set_goaway(struct cli *c, const char *v)
{
	(void)v;
	c->o.goaway = true;
	return 0;
}
static int set_loss(struct cli *c, const char *v)
{
	return parse_pct(v, &c->o.loss_ppm);
}
static int set_tunnel(struct cli *c, const char *v, enum gen_encap e)
{
	if (c->o.encap != GEN_ENCAP_NONE && c->o.encap != e) {
		c->why = "give either --vxlan or --geneve, not both";
		return -EINVAL;
	}
	c->o.encap = e;
	return parse_u32(v, 0xffffff, &c->o.vni);
}
static int set_vxlan(struct cli *c, const char *v)
{
	return set_tunnel(c, v, GEN_ENCAP_VXLAN);
}
static int set_geneve(struct cli *c, const char *v)
{
	return set_tunnel(c, v, GEN_ENCAP_GENEVE);
}
static int set_ipv6(struct cli *c, const char *v)
{
	(void)v;
	c->o.ipv6 = true;
	return 0;
}
static int set_upgrade(struct cli *c, const char *v)
{
	(void)v;
	c->o.h2c_upgrade = true;
	return 0;
}
static int set_port(struct cli *c, const char *v)
{
	uint32_t p = 0;
	int rc = parse_u32(v, 65535, &p);
	c->o.port = (uint16_t)p;
	return rc < 0 || p == 0 ? -EINVAL : 0;
}
static int set_ts(struct cli *c, const char *v)
{
	if (!strcmp(v, "us"))
		c->o.nanosecond = false;
	else if (!strcmp(v, "ns"))
		c->o.nanosecond = true;
	else
		return -EINVAL;
	return 0;
}

struct optdef {
	const char *name;
	const char *arg;  /* NULL: a flag */
	int (*set)(struct cli *c, const char *v);
	const char *help; /* ends with the default where there is one */
};

static const struct optdef OPTS[] = {
	{ "out", "FILE", set_out, "pcap file to write (required)" },
	{ "seed", "N", set_seed, "PRNG seed; same options + seed = same "
	  "bytes (1)" },
	{ "connections", "N", set_connections, "TCP connections, started "
	  "0-2 ms apart (1)" },
	{ "streams", "N", set_streams, "requests per connection (10)" },
	{ "concurrency", "N", set_concurrency, "open streams per connection "
	  "at most (4)" },
	{ "methods", "LIST", set_methods, "request methods drawn at random: "
	  "GET,HEAD,POST,PUT,DELETE,PATCH,OPTIONS (GET,POST)" },
	{ "req-headers", "N", set_req_headers, "extra request header fields "
	  "x-gen-<i> (0)" },
	{ "header-size", "BYTES", set_header_size, "bytes per extra header "
	  "value, <= 60000; blocks over 16384 bytes go out as HEADERS + "
	  "CONTINUATION (32)" },
	{ "req-body", "RANGE", set_req_body, "POST/PUT/PATCH body bytes: N "
	  "or LO-HI, K/M suffixes (0-2048)" },
	{ "resp-body", "RANGE", set_resp_body, "response body bytes "
	  "(100-8192)" },
	{ "padding", "N", set_padding, "pad each HEADERS and DATA frame with "
	  "0..N bytes, N <= 255 (0: no padding)" },
	{ "huffman", "on|off", set_huffman, "off: every string gen chooses "
	  "goes out as a raw HPACK literal (see docs/gen.md) (on)" },
	{ "table-churn", NULL, set_churn, "fresh random extra headers on "
	  "every request and response: the HPACK dynamic table turns over" },
	{ "grpc", NULL, set_grpc, "gRPC: POST, application/grpc, 5-byte "
	  "length-prefixed messages, grpc-status trailers" },
	{ "rst", "P%", set_rst, "the client cancels P% of streams with "
	  "RST_STREAM(CANCEL) once their response has begun (0)" },
	{ "goaway", NULL, set_goaway, "the server ends each connection with "
	  "GOAWAY(NO_ERROR), then closes it" },
	{ "mtu", "N", set_mtu, "IP MTU of the endpoints; MSS = MTU - 40 "
	  "(IPv4) or 60 (IPv6) (1500)" },
	{ "loss", "P%", set_loss, "remove P% of packets from the capture "
	  "(no retransmission: the mirror lost them) (0)" },
	{ "reorder", "W", set_reorder, "shuffle packets within a window of "
	  "W; none moves more than W-1 places (0: off)" },
	{ "midstream", "K", set_midstream, "capture each connection from its "
	  "K-th payload packet on, handshake dropped (0: off)" },
	{ "vxlan", "VNI", set_vxlan, "wrap frames in VXLAN, outer "
	  "IPv4/UDP 4789" },
	{ "geneve", "VNI", set_geneve, "wrap frames in Geneve, outer "
	  "IPv4/UDP 6081" },
	{ "ipv6", NULL, set_ipv6, "IPv6 endpoints (fd00:5ea1::/32)" },
	{ "h2c-upgrade", NULL, set_upgrade, "start with HTTP/1.1 Upgrade: h2c "
	  "and 101 instead of prior knowledge" },
	{ "port", "N", set_port, "server TCP port (8080)" },
	{ "ts", "us|ns", set_ts, "pcap timestamp resolution (us)" },
};

/* One option of --help: name in a 22-column field, help wrapped at
 * HELP_WIDTH under itself. */
#define HELP_INDENT 25
#define HELP_WIDTH 79
static void print_option(FILE *f, const char *left, const char *help)
{
	fprintf(f, "  %-22s", left);
	size_t col = HELP_INDENT - 1;
	while (*help) {
		size_t w = strcspn(help, " ");
		if (col + 1 + w > HELP_WIDTH) {
			fprintf(f, "\n%*s", HELP_INDENT - 1, "");
			col = HELP_INDENT - 1;
		}
		fprintf(f, " %.*s", (int)w, help);
		col += 1 + w;
		help += w;
		help += strspn(help, " ");
	}
	fputc('\n', f);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: sealtap gen --out FILE [options]\n"
"\n"
"Writes a pcap of synthetic HTTP/2 (h2c) traffic made by real nghttp2\n"
"client and server sessions, cut into TCP packets. Deterministic.\n"
"\n"
"options:\n");
	for (size_t i = 0; i < ST_ARRAY_SIZE(OPTS); i++) {
		char left[40];
		snprintf(left, sizeof(left), "--%s%s%s", OPTS[i].name,
			 OPTS[i].arg ? " " : "",
			 OPTS[i].arg ? OPTS[i].arg : "");
		print_option(f, left, OPTS[i].help);
	}
	print_option(f, "-h, --help", "this text");
	fprintf(f,
"\n"
"Prints one summary line. Exit status: 0 done, 2 bad usage or failure\n"
"(one line on stderr). See docs/gen.md.\n");
}

static int cli_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int cli_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sealtap gen: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return GEN_EXIT_FAIL;
}

/* Parses argv into |c|. Returns 0, 1 for --help, or -EINVAL after
 * printing the reason. */
static int parse_args(int argc, char **argv, struct cli *c)
{
	struct option lo[ST_ARRAY_SIZE(OPTS) + 2];
	for (size_t i = 0; i < ST_ARRAY_SIZE(OPTS); i++)
		lo[i] = (struct option){ OPTS[i].name,
					 OPTS[i].arg ? required_argument
						     : no_argument,
					 NULL, (int)(i + 256) };
	lo[ST_ARRAY_SIZE(OPTS)] = (struct option){ "help", no_argument, NULL,
						   'h' };
	lo[ST_ARRAY_SIZE(OPTS) + 1] = (struct option){ NULL, 0, NULL, 0 };
	int ch;
	optind = 1;
	opterr = 0; /* errors are ours: one line, in our words */
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (ch == 'h')
			return 1;
		if (ch < 256) {
			cli_fail("unknown option or missing value in '%s'; see "
				 "'sealtap gen --help'", argv[optind - 1]);
			return -EINVAL;
		}
		const struct optdef *d = &OPTS[ch - 256];
		if (d->set(c, optarg ? optarg : "") < 0) {
			cli_fail("--%s '%s': %s", d->name, optarg ? optarg : "",
				 c->why ? c->why : d->help);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		cli_fail("unexpected argument '%s'; see 'sealtap gen --help'",
		     argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static void print_summary(const char *path, const struct gen_summary *s)
{
	printf("sealtap gen: wrote %s: %llu packets, %llu bytes, %llu "
	       "connections, %llu streams (HEADERS %llu, CONTINUATION %llu, "
	       "DATA %llu, RST_STREAM %llu, GOAWAY %llu; removed %llu by "
	       "--loss, %llu by --midstream)\n",
	       path, (unsigned long long)s->packets,
	       (unsigned long long)s->bytes,
	       (unsigned long long)s->connections,
	       (unsigned long long)s->streams,
	       (unsigned long long)s->frames[GEN_FRAME_HEADERS],
	       (unsigned long long)s->frames[GEN_FRAME_CONTINUATION],
	       (unsigned long long)s->frames[GEN_FRAME_DATA],
	       (unsigned long long)s->frames[GEN_FRAME_RST_STREAM],
	       (unsigned long long)s->frames[GEN_FRAME_GOAWAY],
	       (unsigned long long)s->lost, (unsigned long long)s->skipped);
}

/* Runs into |path|.tmp and renames it into place on success. */
static int write_capture(const struct cli *c, struct gen_summary *sum)
{
	char tmp[4096], err[256] = "";
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", c->out) >= sizeof(tmp))
		return cli_fail("--out '%s': path too long", c->out);
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return cli_fail("--out '%s': %s", tmp, strerror(errno));
	int rc = gen_run(&c->o, f, sum, err, sizeof(err));
	if (fclose(f) != 0 && rc == 0) {
		rc = -EIO;
		snprintf(err, sizeof(err), "write failed");
	}
	if (rc == 0 && rename(tmp, c->out) != 0) {
		rc = -errno;
		snprintf(err, sizeof(err), "rename to '%s': %s", c->out,
			 strerror(errno));
	}
	if (rc < 0) {
		unlink(tmp);
		return cli_fail("%s", err);
	}
	return GEN_EXIT_OK;
}

int gen_main(int argc, char **argv)
{
	struct cli c = { .out = NULL };
	gen_opts_default(&c.o);
	int rc = parse_args(argc, argv, &c);
	if (rc == 1) {
		usage(stdout);
		return GEN_EXIT_OK;
	}
	if (rc < 0)
		return GEN_EXIT_FAIL;
	if (!c.out)
		return cli_fail("--out FILE is required; see 'sealtap gen --help'");
	char err[256];
	if (gen_opts_check(&c.o, err, sizeof(err)) < 0)
		return cli_fail("%s", err);
	struct gen_summary sum;
	rc = write_capture(&c, &sum);
	if (rc == GEN_EXIT_OK)
		print_summary(c.out, &sum);
	return rc;
}
