/* Tests for src/config.c: the option table, value types and units, the
 * YAML walker's error lines, and the sample config, reference output and
 * docs/config.md staying in step with the table.
 *
 * Includes config.c to reach its statics (the table, parse_number(),
 * parse_text(), ...) and to count strdup() calls for the allocation-failure
 * run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* strdup() that fails once |strdup_budget| successful calls are used up
 * (-1 = never fails). config.c's own allocations go through it. */
static int strdup_budget = -1;

static char *test_strdup(const char *s)
{
	if (strdup_budget == 0)
		return NULL;
	if (strdup_budget > 0)
		strdup_budget--;
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

#define strdup test_strdup
#include "../../src/config.c"
#undef strdup

#define SAMPLE SEALTAP_SOURCE_ROOT "/config/sealtap.yaml"
#define DOCS SEALTAP_SOURCE_ROOT "/docs/config.md"

/* ---- helpers ---------------------------------------------------------- */

/* Writes |len| bytes of |text| to a new temporary file; its path goes to
 * |path| (at least 64 bytes). The caller unlinks it. */
static void write_tmp_n(const char *text, size_t len, char *path)
{
	strcpy(path, "/tmp/sealtap-cfg-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void write_tmp(const char *text, char *path)
{
	write_tmp_n(text, strlen(text), path);
}

static void assert_is_defaults(const struct st_config *c)
{
	struct st_config d;
	config_defaults(&d);
	assert_memory_equal(c, &d, sizeof(d));
}

/* Loads |text| and expects failure |rc| with the line
 * "<tmpfile>:<line>: <msg>" (no ":<line>" when |line| is 0), and |cfg|
 * holding defaults only. The cfg starts out as garbage to show that
 * config_load() does not depend on it. */
static void expect_error(const char *text, int rc, unsigned line,
			 const char *msg)
{
	char path[64], err[1024], want[1200];
	struct st_config cfg;
	memset(&cfg, 0xa5, sizeof(cfg));
	write_tmp(text, path);
	int got = config_load(path, &cfg, err, sizeof(err));
	unlink(path);
	if (line)
		snprintf(want, sizeof(want), "%s:%u: %s", path, line, msg);
	else
		snprintf(want, sizeof(want), "%s: %s", path, msg);
	if (strcmp(err, want) != 0)
		print_error("input:\n%s\nwant: %s\ngot:  %s\n", text, want,
			    err);
	assert_string_equal(err, want);
	assert_int_equal(got, rc);
	assert_null(strchr(err, '\n'));
	assert_is_defaults(&cfg);
}

/* Loads |text| and expects success. The caller frees |cfg|. */
static void expect_ok(const char *text, struct st_config *cfg)
{
	char path[64], err[1024];
	write_tmp(text, path);
	int rc = config_load(path, cfg, err, sizeof(err));
	unlink(path);
	if (rc != 0)
		print_error("input:\n%s\nerror: %s\n", text, err);
	assert_int_equal(rc, 0);
	assert_string_equal(err, "");
	assert_non_null(cfg->path);
}

static char *slurp(const char *path)
{
	char *text;
	size_t len;
	char err[512];
	int rc = read_file(path, &text, &len, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	return text;
}

/* ---- the table -------------------------------------------------------- */

static void test_table_sane(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *o = &opts[i];
		const char *dot = strchr(o->name, '.');
		assert_non_null(dot);
		assert_null(strchr(dot + 1, '.'));
		assert_true(o->help && *o->help && o->why && *o->why);
		for (size_t j = 0; j < i; j++) {
			assert_string_not_equal(opts[j].name, o->name);
			/* A section is one run of the table. */
			size_t sl = sect_len(o->name);
			if (j + 1 < i && in_section(&opts[j], o->name, sl))
				assert_true(in_section(&opts[i - 1], o->name,
						       sl));
		}
		assert_true(o->off + o->width <= sizeof(struct st_config));
		switch (o->type) {
		case OPT_BOOL: assert_int_equal(o->width, sizeof(bool)); break;
		case OPT_U16: assert_int_equal(o->width, 2); break;
		case OPT_U32: assert_int_equal(o->width, 4); break;
		case OPT_U64: assert_int_equal(o->width, 8); break;
		case OPT_SIZE:
		case OPT_DURATION:
			assert_true(o->width == 4 || o->width == 8);
			break;
		case OPT_ENUM:
			assert_int_equal(o->width, sizeof(int));
			assert_non_null(choice_name(o, (int)o->def));
			break;
		case OPT_STRING:
			assert_int_equal(o->width, sizeof(char *));
			break;
		case OPT_STRLIST:
			assert_true(o->max <= CONFIG_MAX_LIST);
			break;
		}
		if (is_numeric(o)) {
			assert_true(o->min <= o->def && o->def <= o->max);
			if (o->width < 8)
				assert_true(o->max < (1ull << (8 * o->width)));
		}
	}
}

static void test_defaults(void **state)
{
	(void)state;
	struct st_config c;
	char err[256];
	memset(&c, 0x5a, sizeof(c));
	config_defaults(&c);
	assert_null(c.path);
	assert_int_equal(c.log.level, LOG_LEVEL_INFO);
	assert_int_equal(c.eal.nargs, 0);
	assert_int_equal(c.eal.hugepages, CONFIG_HUGEPAGES_AUTO);
	assert_int_equal(c.eal.memory_mb, 512);
	assert_int_equal(c.capture.workers, 1);
	assert_int_equal(c.capture.burst, 32);
	assert_int_equal(c.capture.ring_size, 4096);
	assert_int_equal(c.capture.mbufs, 0);
	assert_int_equal(c.capture.mbuf_data_size, 2176);
	assert_int_equal(c.capture.rx_desc, 1024);
	assert_int_equal(c.capture.dispatch, CONFIG_DISPATCH_AUTO);
	assert_null(c.capture.port);

	/* The module headers' own defaults agree with the table. */
	struct decode_cfg dd = DECODE_CFG_DEFAULT;
	struct flow_table_cfg fd = FLOW_TABLE_CFG_DEFAULT;
	struct reasm_cfg rd = REASM_CFG_DEFAULT;
	assert_memory_equal(&c.decode, &dd, sizeof(dd));
	assert_int_equal(c.flow.max_flows, fd.max_flows);
	assert_int_equal(c.flow.idle_timeout_ns, fd.idle_timeout_ns);
	assert_int_equal(c.flow.closed_timeout_ns, fd.closed_timeout_ns);
	assert_int_equal(c.reasm.flow_ooo_max, rd.flow_ooo_max);
	assert_int_equal(c.reasm.worker_memcap, rd.worker_memcap);
	assert_int_equal(c.reasm.chunk_size, rd.chunk_size);
	assert_int_equal(c.reasm.gap_timeout_ns, rd.gap_timeout_ns);

	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);

	/* No file: the defaults, and no path. */
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(config_load(NULL, &c, err, sizeof(err)), 0);
	assert_is_defaults(&c);
}

/* ---- files that must load --------------------------------------------- */

/* Every option is set in |path| (so the file documents all of them) and
 * the result equals the defaults. */
static void check_sets_all_to_defaults(const char *path)
{
	char *text = slurp(path);
	unsigned lines[N_OPTS] = { 0 };
	char err[512];
	struct st_config c;
	config_defaults(&c);
	int rc = parse_text(path, text, strlen(text), &c, lines, err,
			    sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	for (size_t i = 0; i < N_OPTS; i++) {
		if (!lines[i])
			print_error("%s does not set %s\n", path, opts[i].name);
		assert_true(lines[i] > 0);
	}
	assert_is_defaults(&c);
	free(text);

	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.path, path);
	free(c.path);
	c.path = NULL;
	assert_is_defaults(&c);
}

static void test_sample_config(void **state)
{
	(void)state;
	check_sets_all_to_defaults(SAMPLE);
}

static void test_reference_roundtrip(void **state)
{
	(void)state;
	char path[64];
	write_tmp("", path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	config_write_reference(f);
	fclose(f);
	check_sets_all_to_defaults(path);

	/* Help, reason and range of every option are printed. */
	char *text = slurp(path);
	char range[128];
	for (size_t i = 0; i < N_OPTS; i++) {
		fmt_range(&opts[i], range, sizeof(range));
		if (opts[i].type != OPT_STRING)
			assert_non_null(strstr(text, range));
		/* The first words of help and why (wrapping may split the
		 * rest over lines). */
		assert_non_null(strstr(text, "Default "));
		char head[24];
		snprintf(head, sizeof(head), "%s", opts[i].help);
		assert_non_null(strstr(text, head));
	}
	free(text);
	unlink(path);
}

/* docs/config.md has one row per option with the table's type, default
 * and range: "| `name` | type | `default` | range | meaning |". */
static void test_docs_in_step(void **state)
{
	(void)state;
	char *text = slurp(DOCS);
	char want[512], def[64], range[128];
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *o = &opts[i];
		fmt_default(o, def, sizeof(def));
		fmt_range(o, range, sizeof(range));
		snprintf(want, sizeof(want), "| `%s` | %s | `%s` | %s | ",
			 o->name, type_name(o), def, range);
		if (!strstr(text, want))
			print_error("docs/config.md lacks the row: %s\n", want);
		assert_non_null(strstr(text, want));
	}
	/* ...and no row for an option that does not exist. */
	for (const char *p = strstr(text, "\n| `"); p;
	     p = strstr(p + 1, "\n| `")) {
		char name[64];
		if (sscanf(p, "\n| `%63[^`]`", name) == 1 && strchr(name, '.'))
			assert_non_null(opt_find(name));
	}
	free(text);
}

static void test_every_type(void **state)
{
	(void)state;
	struct st_config c;
	expect_ok("log:\n"
		  "  level: debug\n"
		  "eal:\n"
		  "  args:\n"
		  "    - --file-prefix=tap1\n"
		  "    - \"-a\"\n"
		  "    - '0000:3b:00.0'\n"
		  "  hugepages: off\n"
		  "  memory_mb: 2048\n"
		  "capture:\n"
		  "  workers: 8\n"
		  "  burst: 64\n"
		  "  ring_size: 8192\n"
		  "  mbufs: 65536\n"
		  "  mbuf_data_size: 9344\n"
		  "  rx_desc: 4096\n"
		  "  dispatch: software\n"
		  "  port: 0000:3b:00.0\n"
		  "decode:\n"
		  "  vxlan_port: 8472\n"
		  "  geneve_port: 0\n"
		  "flow:\n"
		  "  max_flows: 1048576\n"
		  "  idle_timeout: 90s\n"
		  "  closed_timeout: 0\n"
		  "reasm:\n"
		  "  flow_buffer: 4M\n"
		  "  worker_memcap: 1 GiB\n"
		  "  chunk_size: 4096\n"
		  "  gap_timeout: 500ms\n",
		  &c);
	assert_int_equal(c.log.level, LOG_LEVEL_DEBUG);
	assert_int_equal(c.eal.nargs, 3);
	assert_string_equal(c.eal.args[0], "--file-prefix=tap1");
	assert_string_equal(c.eal.args[1], "-a");
	assert_string_equal(c.eal.args[2], "0000:3b:00.0");
	assert_null(c.eal.args[3]);
	assert_int_equal(c.eal.hugepages, CONFIG_HUGEPAGES_OFF);
	assert_int_equal(c.eal.memory_mb, 2048);
	assert_int_equal(c.capture.workers, 8);
	assert_int_equal(c.capture.burst, 64);
	assert_int_equal(c.capture.ring_size, 8192);
	assert_int_equal(c.capture.mbufs, 65536);
	assert_int_equal(c.capture.mbuf_data_size, 9344);
	assert_int_equal(c.capture.rx_desc, 4096);
	assert_int_equal(c.capture.dispatch, CONFIG_DISPATCH_SOFTWARE);
	assert_string_equal(c.capture.port, "0000:3b:00.0");
	assert_int_equal(c.decode.vxlan_port, 8472);
	assert_int_equal(c.decode.geneve_port, 0);
	assert_int_equal(c.flow.max_flows, 1048576);
	assert_int_equal(c.flow.idle_timeout_ns, 90 * NS_S);
	assert_int_equal(c.flow.closed_timeout_ns, 0);
	assert_int_equal(c.reasm.flow_ooo_max, 4 * MiB);
	assert_int_equal(c.reasm.worker_memcap, GiB);
	assert_int_equal(c.reasm.chunk_size, 4096);
	assert_int_equal(c.reasm.gap_timeout_ns, 500 * NS_MS);
	config_free(&c);
	assert_is_defaults(&c);

	/* Flow style, the other enum values, case-insensitive enums, null
	 * and empty strings, the largest values. */
	expect_ok("log: {level: WARN}\n"
		  "eal: {args: [--no-pci, --no-telemetry], hugepages: on}\n"
		  "capture: {dispatch: rss, port: \"\"}\n"
		  "reasm: {worker_memcap: 1TiB, flow_buffer: 1GiB}\n"
		  "flow: {idle_timeout: 7d, closed_timeout: 1h}\n",
		  &c);
	assert_int_equal(c.log.level, LOG_LEVEL_WARN);
	assert_int_equal(c.eal.nargs, 2);
	assert_string_equal(c.eal.args[1], "--no-telemetry");
	assert_int_equal(c.eal.hugepages, CONFIG_HUGEPAGES_ON);
	assert_int_equal(c.capture.dispatch, CONFIG_DISPATCH_RSS);
	assert_null(c.capture.port);
	assert_int_equal(c.reasm.worker_memcap, TiB);
	assert_int_equal(c.reasm.flow_ooo_max, GiB);
	assert_int_equal(c.flow.idle_timeout_ns, 7 * NS_D);
	assert_int_equal(c.flow.closed_timeout_ns, NS_H);
	config_free(&c);

	/* Null values: an empty string option and an empty list are unset;
	 * a section with every key commented out is fine. */
	expect_ok("log:\n"
		  "  # level: debug\n"
		  "eal:\n"
		  "  args:\n"
		  "capture:\n"
		  "  port: ~\n"
		  "flow: {}\n",
		  &c);
	free(c.path);
	c.path = NULL;
	assert_is_defaults(&c);

	/* CONFIG_MAX_LIST items fit. */
	char text[2048] = "eal:\n  args:\n";
	for (int i = 0; i < CONFIG_MAX_LIST; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "    - --a%d\n", i);
	expect_ok(text, &c);
	assert_int_equal(c.eal.nargs, CONFIG_MAX_LIST);
	assert_string_equal(c.eal.args[CONFIG_MAX_LIST - 1], "--a63");
	config_free(&c);
	assert_is_defaults(&c);
}

static void test_empty_files(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"", "\n\n", "# only a comment\n", "---\n", "---\n...\n", "~\n",
		"null\n",
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(texts); i++) {
		struct st_config c;
		expect_ok(texts[i], &c);
		free(c.path);
		c.path = NULL;
		assert_is_defaults(&c);
	}
}

/* ---- value types, through the static converters ----------------------- */

struct vcase {
	const char *in;
	uint64_t want; /* when |err| is NULL */
	const char *err;
};

static void run_cases(const struct config_opt *o, const struct vcase *cs,
		      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char why[512];
		uint64_t v = 0xdead;
		why[0] = '\0';
		int rc = parse_number(o, cs[i].in, &v, why, sizeof(why));
		if (cs[i].err) {
			if (rc == 0 || strcmp(why, cs[i].err) != 0)
				print_error("%s \"%s\": want error: %s\n"
					    "got rc %d: %s\n", o->name,
					    cs[i].in, cs[i].err, rc, why);
			assert_int_equal(rc, -EINVAL);
			assert_string_equal(why, cs[i].err);
			assert_int_equal(v, 0xdead); /* untouched */
		} else {
			if (rc != 0 || v != cs[i].want)
				print_error("%s \"%s\": want %" PRIu64 ", got "
					    "rc %d v %" PRIu64 ": %s\n",
					    o->name, cs[i].in, cs[i].want, rc,
					    v, why);
			assert_int_equal(rc, 0);
			assert_int_equal(v, cs[i].want);
		}
	}
}

static void test_bool(void **state)
{
	(void)state;
	struct {
		uint32_t pad;
		bool b;
	} s = { 0, false };
	const struct config_opt o = { .name = "t.flag", .type = OPT_BOOL,
				      .off = offsetof(__typeof__(s), b),
				      .width = sizeof(bool), .max = 1,
				      .help = "h", .why = "w" };
	static const struct vcase cs[] = {
		{ "true", 1, NULL },  { "TRUE", 1, NULL }, { "yes", 1, NULL },
		{ "on", 1, NULL },    { "false", 0, NULL }, { "No", 0, NULL },
		{ "off", 0, NULL },
		{ "1", 0, "value \"1\" is not a boolean; use true or false" },
		{ "maybe", 0,
		  "value \"maybe\" is not a boolean; use true or false" },
	};
	run_cases(&o, cs, ST_ARRAY_SIZE(cs));

	char why[256];
	assert_int_equal(apply_scalar(&o, "yes", &s, why, sizeof(why)), 0);
	assert_true(s.b);
	assert_int_equal(load_uint(&s, &o), 1);
	assert_int_equal(apply_scalar(&o, "off", &s, why, sizeof(why)), 0);
	assert_false(s.b);
	assert_int_equal(s.pad, 0);
	char buf[32];
	fmt_default(&o, buf, sizeof(buf));
	assert_string_equal(buf, "false");
}

static void test_integers(void **state)
{
	(void)state;
	const struct config_opt u64 = { .name = "t.u64", .type = OPT_U64,
					.width = 8, .max = UINT64_MAX };
	static const struct vcase c64[] = {
		{ "0", 0, NULL },
		{ "007", 7, NULL },
		{ "18446744073709551615", UINT64_MAX, NULL },
		{ "18446744073709551616", 0,
		  "value \"18446744073709551616\" is out of range [0, "
		  "18446744073709551615]; use an integer in that range" },
		{ "99999999999999999999999999", 0,
		  "value \"99999999999999999999999999\" is out of range [0, "
		  "18446744073709551615]; use an integer in that range" },
		{ "-1", 0,
		  "value \"-1\" is out of range [0, 18446744073709551615]; use "
		  "an integer in that range" },
		{ "-0", 0, NULL },
	};
	run_cases(&u64, c64, ST_ARRAY_SIZE(c64));

	const struct config_opt *mf = opt_find("flow.max_flows");
	static const struct vcase cmf[] = {
		{ "1024", 1024, NULL },
		{ "67108864", 67108864, NULL },
		{ "-5", 0,
		  "value \"-5\" is out of range [1024, 67108864]; use an "
		  "integer in that range" },
		{ "1023", 0,
		  "value \"1023\" is out of range [1024, 67108864]; use an "
		  "integer in that range" },
		{ "67108865", 0,
		  "value \"67108865\" is out of range [1024, 67108864]; use "
		  "an integer in that range" },
		{ "4294967297", 0, /* would wrap to 1 in a uint32_t */
		  "value \"4294967297\" is out of range [1024, 67108864]; use "
		  "an integer in that range" },
		{ "12abc", 0,
		  "value \"12abc\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "-5x", 0,
		  "value \"-5x\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "+2048", 0,
		  "value \"+2048\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ " 2048", 0,
		  "value \" 2048\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "2048 ", 0,
		  "value \"2048 \" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "0x800", 0,
		  "value \"0x800\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "1e6", 0,
		  "value \"1e6\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "2048.0", 0,
		  "value \"2048.0\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
		{ "", 0,
		  "value \"\" is not an integer; use an integer in "
		  "[1024, 67108864]" },
	};
	run_cases(mf, cmf, ST_ARRAY_SIZE(cmf));

	/* u16: stored in 16 bits, 65536 refused rather than wrapped. */
	const struct config_opt *vx = opt_find("decode.vxlan_port");
	static const struct vcase cvx[] = {
		{ "65535", 65535, NULL },
		{ "65536", 0,
		  "value \"65536\" is out of range [0, 65535]; use an integer "
		  "in that range" },
	};
	run_cases(vx, cvx, ST_ARRAY_SIZE(cvx));
	struct st_config c;
	char why[256];
	config_defaults(&c);
	assert_int_equal(apply_scalar(vx, "65535", &c, why, sizeof(why)), 0);
	assert_int_equal(c.decode.vxlan_port, 65535);
	assert_int_equal(c.decode.geneve_port, 6081); /* neighbour intact */
}

static void test_sizes(void **state)
{
	(void)state;
	const struct config_opt any = { .name = "t.size", .type = OPT_SIZE,
					.width = 8, .max = UINT64_MAX };
	static const struct vcase cs[] = {
		{ "0", 0, NULL },
		{ "512", 512, NULL },
		{ "512B", 512, NULL },
		{ "1K", 1024, NULL },
		{ "1KiB", 1024, NULL },
		{ "3M", 3 * MiB, NULL },
		{ "3MiB", 3 * MiB, NULL },
		{ "2G", 2 * GiB, NULL },
		{ "2GiB", 2 * GiB, NULL },
		{ "5T", 5 * TiB, NULL },
		{ "5TiB", 5 * TiB, NULL },
		{ "64 MiB", 64 * MiB, NULL },
		{ "16777215TiB", 16777215 * TiB, NULL },
		{ "16777216TiB", 0, /* 2^64: overflows the multiply */
		  "value \"16777216TiB\" is out of range [0B, "
		  "18446744073709551615B]; use a size in that range" },
		{ "64MB", 0,
		  "value \"64MB\" has an unknown unit \"MB\"; use one of B, "
		  "KiB, MiB, GiB, TiB; K, M, G, T are the same (all powers "
		  "of 1024)" },
		{ "64kib", 0,
		  "value \"64kib\" has an unknown unit \"kib\"; use one of B, "
		  "KiB, MiB, GiB, TiB; K, M, G, T are the same (all powers "
		  "of 1024)" },
		{ "1.5GiB", 0,
		  "value \"1.5GiB\" is not a whole number; use a smaller unit "
		  "(e.g. 1536MiB, not 1.5GiB)" },
		{ "-1MiB", 0,
		  "value \"-1MiB\" is out of range [0B, "
		  "18446744073709551615B]; use a size in that range" },
		{ "MiB", 0,
		  "value \"MiB\" is not a size; write it like \"64MiB\" "
		  "(units: B, KiB, MiB, GiB, TiB; K, M, G, T are the same)" },
	};
	run_cases(&any, cs, ST_ARRAY_SIZE(cs));

	/* A 32-bit target: 4GiB would wrap to 0 if not range-checked. */
	const struct config_opt *fb = opt_find("reasm.flow_buffer");
	static const struct vcase cfb[] = {
		{ "4KiB", 4096, NULL },
		{ "1GiB", GiB, NULL },
		{ "4GiB", 0,
		  "value \"4GiB\" is out of range [4KiB, 1GiB]; use a size in "
		  "that range" },
		{ "4095", 0,
		  "value \"4095\" is out of range [4KiB, 1GiB]; use a size in "
		  "that range" },
	};
	run_cases(fb, cfb, ST_ARRAY_SIZE(cfb));
}

static void test_durations(void **state)
{
	(void)state;
	const struct config_opt any = { .name = "t.dur", .type = OPT_DURATION,
					.width = 8, .max = UINT64_MAX };
	static const struct vcase cs[] = {
		{ "0", 0, NULL },
		{ "0s", 0, NULL },
		{ "7ns", 7, NULL },
		{ "7us", 7 * NS_US, NULL },
		{ "7ms", 7 * NS_MS, NULL },
		{ "7s", 7 * NS_S, NULL },
		{ "7m", 7 * NS_M, NULL },
		{ "7h", 7 * NS_H, NULL },
		{ "7d", 7 * NS_D, NULL },
		{ "7 s", 7 * NS_S, NULL },
		{ "30", 0,
		  "value \"30\" has no unit; write it like \"30s\" (units: ns, "
		  "us, ms, s, m, h, d)" },
		{ "5min", 0,
		  "value \"5min\" has an unknown unit \"min\"; use one of ns, "
		  "us, ms, s, m, h, d" },
		{ "5S", 0,
		  "value \"5S\" has an unknown unit \"S\"; use one of ns, us, "
		  "ms, s, m, h, d" },
		{ "1.5s", 0,
		  "value \"1.5s\" is not a whole number; use a smaller unit "
		  "(e.g. 1500ms, not 1.5s)" },
		{ "213504d", 0, /* > 2^64 ns */
		  "value \"213504d\" is out of range [0s, "
		  "18446744073709551615ns]; use a duration in that range" },
		{ "-1s", 0,
		  "value \"-1s\" is out of range [0s, 18446744073709551615ns]; "
		  "use a duration in that range" },
		{ "soon", 0,
		  "value \"soon\" is not a duration; write it like \"30s\" "
		  "(units: ns, us, ms, s, m, h, d)" },
	};
	run_cases(&any, cs, ST_ARRAY_SIZE(cs));

	const struct config_opt *it = opt_find("flow.idle_timeout");
	static const struct vcase cit[] = {
		{ "1s", NS_S, NULL },
		{ "1000ms", NS_S, NULL },
		{ "168h", 7 * NS_D, NULL },
		{ "999ms", 0,
		  "value \"999ms\" is out of range [1s, 7d]; use a duration in "
		  "that range" },
		{ "0", 0,
		  "value \"0\" is out of range [1s, 7d]; use a duration in "
		  "that range" },
		{ "8d", 0,
		  "value \"8d\" is out of range [1s, 7d]; use a duration in "
		  "that range" },
	};
	run_cases(it, cit, ST_ARRAY_SIZE(cit));
}

static void test_formatting(void **state)
{
	(void)state;
	char b[64];
	fmt_units(0, size_out, b, sizeof(b));
	assert_string_equal(b, "0B");
	fmt_units(1536, size_out, b, sizeof(b));
	assert_string_equal(b, "1536B");
	fmt_units(3 * MiB, size_out, b, sizeof(b));
	assert_string_equal(b, "3MiB");
	fmt_units(0, dur_out, b, sizeof(b));
	assert_string_equal(b, "0s");
	fmt_units(300 * NS_S, dur_out, b, sizeof(b));
	assert_string_equal(b, "5m");
	fmt_units(1500 * NS_MS, dur_out, b, sizeof(b));
	assert_string_equal(b, "1500ms");
	fmt_units(1, dur_out, b, sizeof(b));
	assert_string_equal(b, "1ns");

	/* Error lines quote hostile values safely and briefly. */
	sanitize("a\"b\\c\nd\x01\xff", 9, b, sizeof(b));
	assert_string_equal(b, "a\\\"b\\\\c\\nd\\x01\\xff");
	char big[200];
	memset(big, 'x', sizeof(big));
	sanitize(big, sizeof(big), b, sizeof(b));
	assert_true(strlen(b) < sizeof(b));
	assert_string_equal(b + strlen(b) - 3, "...");
}

static void test_suggestions(void **state)
{
	(void)state;
	assert_int_equal(edit_distance("workers", "workers"), 0);
	assert_int_equal(edit_distance("wrokers", "workers"), 1);
	assert_int_equal(edit_distance("", "abc"), 3);
	assert_int_equal(edit_distance("kitten", "sitting"), 3);
	assert_string_equal(closest_opt("capture.wrokers")->name,
			    "capture.workers");
	assert_string_equal(closest_opt("capture.worker")->name,
			    "capture.workers");
	assert_string_equal(closest_opt("reasm.gap_timeout_ns")->name,
			    "reasm.gap_timeout");
	assert_string_equal(closest_opt("flow.chunk_size")->name,
			    "reasm.chunk_size");
	assert_null(closest_opt("capture.zzz"));
	assert_null(closest_opt("capture.snaplen"));
}

/* ---- error lines ------------------------------------------------------ */

struct ecase {
	const char *yaml;
	unsigned line;
	const char *msg;
};

static const struct ecase errors[] = {
	/* values */
	{ "flow:\n  max_flows: 262144\n\n\n\n\n\n\n\n\n\n"
	  "  idle_timeout: 5m\n  closed_timeout: -5\n",
	  13,
	  "flow.closed_timeout: value \"-5\" is out of range [0s, 1h]; use a "
	  "duration in that range" },
	{ "flow:\n  max_flows: -5\n", 2,
	  "flow.max_flows: value \"-5\" is out of range [1024, 67108864]; use "
	  "an integer in that range" },
	{ "flow:\n  max_flows: 99999999999999999999999\n", 2,
	  "flow.max_flows: value \"99999999999999999999999\" is out of range "
	  "[1024, 67108864]; use an integer in that range" },
	{ "capture:\n  workers: four\n", 2,
	  "capture.workers: value \"four\" is not an integer; use an integer "
	  "in [1, 128]" },
	{ "flow:\n  idle_timeout: 30\n", 2,
	  "flow.idle_timeout: value \"30\" has no unit; write it like \"30s\" "
	  "(units: ns, us, ms, s, m, h, d)" },
	{ "reasm:\n  worker_memcap: 2TiB\n", 2,
	  "reasm.worker_memcap: value \"2TiB\" is out of range [1MiB, 1TiB]; "
	  "use a size in that range" },
	{ "capture:\n  dispatch: hash\n", 2,
	  "capture.dispatch: value \"hash\" is not a valid choice; use one "
	  "of: auto, rss, software" },
	{ "log:\n  level: verbose\n", 2,
	  "log.level: value \"verbose\" is not a valid choice; use one of: "
	  "debug, info, warn, error" },
	{ "log:\n  level: off\n", 2,
	  "log.level: value \"off\" is not a valid choice; use one of: "
	  "debug, info, warn, error" },
	{ "capture:\n  workers:\n", 2,
	  "capture.workers: no value given; write a value (default 1) or "
	  "remove the key" },
	{ "capture:\n  workers: |\n    1\n    2\n", 2,
	  "capture.workers: value \"1\\n2\\n\" is not an integer; use an "
	  "integer in [1, 128]" },
	{ "capture:\n  port: \"eth\\0\"\n", 2,
	  "capture.port: value holds a NUL byte; remove the \"\\0\"" },

	/* keys and sections */
	{ "capture:\n  workers: 2\n  wrokers: 3\n", 3,
	  "capture.wrokers: unknown key; did you mean \"capture.workers\"?" },
	{ "flow:\n  chunk_size: 4KiB\n", 2,
	  "flow.chunk_size: unknown key; did you mean \"reasm.chunk_size\"?" },
	{ "capture:\n  snaplen: 128\n", 2,
	  "capture.snaplen: unknown key; keys of \"capture\" are workers, "
	  "burst, ring_size, mbufs, mbuf_data_size, rx_desc, dispatch, "
	  "port" },
	{ "captur:\n  workers: 2\n", 1,
	  "captur: unknown section; did you mean \"capture\"?" },
	{ "output:\n  dir: /tmp\n", 1,
	  "output: unknown section; sections are log, eal, capture, decode, "
	  "flow, reasm, h2, export, kms, keys, extproc" },
	{ "workers: 2\n", 1,
	  "workers: unknown section; \"workers\" is a key of section "
	  "\"capture\", write it under \"capture:\"" },
	{ "flow.max_flows: 4096\n", 1,
	  "flow.max_flows: unknown section; write it nested as \"flow:\" then "
	  "\"  max_flows: ...\"" },
	{ "capture:\n  workers: 2\n  workers: 3\n", 3,
	  "capture.workers: duplicate key (first set on line 2); keep one of "
	  "them" },
	{ "flow:\n  max_flows: 4096\nreasm:\n  chunk_size: 4KiB\nflow:\n"
	  "  idle_timeout: 1m\n",
	  5, "flow: duplicate section (first on line 1); merge the two into "
	     "one" },
	{ "\"a\\0b\": 1\n", 1,
	  "a section name holds a NUL byte; remove the \"\\0\"" },

	/* YAML types */
	{ "- capture\n- flow\n", 1,
	  "the top level is a list; it must be a mapping of sections like "
	  "\"capture:\" with keys indented below" },
	{ "capture\n", 1,
	  "the top level is a scalar; it must be a mapping of sections like "
	  "\"capture:\" with keys indented below" },
	{ "capture: 4\n", 1,
	  "capture: expected a mapping of keys, found a scalar; put the keys "
	  "on their own lines below \"capture:\", indented" },
	{ "capture:\n  - workers: 4\n", 2,
	  "capture: expected a mapping of keys, found a list; put the keys on "
	  "their own lines below \"capture:\", indented" },
	{ "capture:\n  workers: [4]\n", 2,
	  "capture.workers: expected a single value, found a list; write it "
	  "on one line as \"workers: <value>\"" },
	{ "capture:\n  workers:\n    count: 4\n", 3,
	  "capture.workers: expected a single value, found a mapping; write "
	  "it on one line as \"workers: <value>\"" },
	{ "capture:\n  ? [a, b]\n  : 4\n", 2,
	  "capture: a key is a list; keys are plain names like \"workers\"" },
	{ "? {a: b}\n: 4\n", 1,
	  "a section name is a mapping; sections are plain names like "
	  "\"capture\"" },
	{ "eal:\n  args: --no-pci\n", 2,
	  "eal.args: expected a list, found the scalar \"--no-pci\"; write it "
	  "as a YAML list, e.g. [\"--no-pci\"]" },
	{ "eal:\n  args: {a: b}\n", 2,
	  "eal.args: expected a list, found a mapping; write it as a YAML "
	  "list of strings, e.g. [\"--no-pci\"]" },
	{ "eal:\n  args:\n    - --no-pci\n    - -a: 0000:3b:00.0\n", 4,
	  "eal.args: item 2 is a mapping, expected a string; quote it if it "
	  "contains \": \"" },
	{ "eal:\n  args: [--no-pci, \"\"]\n", 2,
	  "eal.args: item 2 is empty or holds a NUL byte; remove it" },

	/* cross-option rules, at the line of the offending key */
	{ "capture:\n  workers: 2\n  ring_size: 5000\n", 3,
	  "capture.ring_size: value \"5000\" is not a power of two; use 4096 "
	  "or 8192" },
	{ "reasm:\n  flow_buffer: 128MiB\n", 2,
	  "reasm.flow_buffer: value \"128MiB\" is larger than "
	  "reasm.worker_memcap (64MiB); lower it or raise "
	  "reasm.worker_memcap" },
	{ "reasm:\n  worker_memcap: 1MiB\n  flow_buffer: 1MiB\n", 3,
	  NULL /* equal is fine: checked as a success below */ },
	{ "reasm:\n\n  worker_memcap: 2MiB\n", 0, NULL },
	{ "capture:\n  workers: 4\n  mbufs: 8192\n", 3,
	  "capture.mbufs: value \"8192\" is less than capture.workers * "
	  "capture.ring_size (4 * 4096 = 16384); use 0 (derived) or at least "
	  "16384" },

	/* YAML syntax */
	{ "capture:\n  workers: \"4\n", 3,
	  "YAML syntax error: found unexpected end of stream while scanning a "
	  "quoted scalar (from line 2); check indentation (spaces, not tabs), "
	  "quoting and the \":\" after each key" },
	{ "capture:\n  workers: 4: 5\n", 2,
	  "YAML syntax error: mapping values are not allowed in this context; "
	  "check indentation (spaces, not tabs), quoting and the \":\" after "
	  "each key" },
	{ "capture:\n\tworkers: 4\n", 2,
	  "YAML syntax error: found character that cannot start any token "
	  "while scanning for the next token (from line 2); check indentation "
	  "(spaces, not tabs), quoting and the \":\" after each key" },
	{ "capture:\n  workers: 4\n bad: 1\n", 3,
	  "YAML syntax error: did not find expected key while parsing a block "
	  "mapping (from line 1); check indentation (spaces, not tabs), "
	  "quoting and the \":\" after each key" },
	{ "capture:\n  workers: *w\n", 2,
	  "YAML syntax error: found undefined alias; check indentation "
	  "(spaces, not tabs), quoting and the \":\" after each key" },
	{ "capture:\n  port: \"\xff\"\n", 2,
	  "not valid text: invalid leading UTF-8 octet (byte 0xff); save the "
	  "file as UTF-8 text" },
	{ "capture:\n  workers: 4\n---\nflow:\n  max_flows: 4096\n", 3,
	  "a second YAML document starts here; a config file holds one, "
	  "remove the \"---\" and merge" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ST_ARRAY_SIZE(errors); i++) {
		if (errors[i].msg) {
			expect_error(errors[i].yaml, -EINVAL, errors[i].line,
				     errors[i].msg);
		} else {
			struct st_config c;
			expect_ok(errors[i].yaml, &c);
			config_free(&c);
		}
	}
}

static void test_too_many_items(void **state)
{
	(void)state;
	char text[2048] = "eal:\n  args:\n";
	for (int i = 0; i <= CONFIG_MAX_LIST; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "    - --a%d\n", i);
	expect_error(text, -EINVAL, 3,
		     "eal.args: too many items (65); at most 64 are allowed");
}

/* Values set before the error are not applied, strings included. */
static void test_nothing_half_applied(void **state)
{
	(void)state;
	expect_error("eal:\n  args: [--no-pci]\ncapture:\n  workers: 8\n"
		     "  port: eth0\n  dispatch: rss\nflow:\n"
		     "  max_flows: 12\n",
		     -EINVAL, 8,
		     "flow.max_flows: value \"12\" is out of range [1024, "
		     "67108864]; use an integer in that range");

	/* A loaded config, freed, then a failed load: defaults. */
	struct st_config c;
	char path[64], err[512];
	expect_ok("capture:\n  port: eth0\n", &c);
	config_free(&c);
	write_tmp("capture:\n  port: eth1\n  burst: 0\n", path);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	unlink(path);
	assert_is_defaults(&c);
}

static void test_io_errors(void **state)
{
	(void)state;
	char err[512], want[512];
	struct st_config c;
	const char *missing = "/nonexistent/sealtap.yaml";

	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(config_load(missing, &c, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want),
		 "%s: cannot open: %s; check the path and its permissions",
		 missing, strerror(ENOENT));
	assert_string_equal(err, want);
	assert_is_defaults(&c);

	assert_int_equal(config_load("/tmp", &c, err, sizeof(err)), -EISDIR);
	assert_string_equal(err,
			    "/tmp: is a directory; give the path of a YAML "
			    "file");
	assert_is_defaults(&c);

	/* Over the 1MiB cap. */
	size_t n = CONFIG_MAX_FILE + 10;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, '#', n);
	char path[64];
	write_tmp_n(big, n, path);
	free(big);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EFBIG);
	unlink(path);
	snprintf(want, sizeof(want),
		 "%s: file is larger than 1024KiB; a sealtap config is a few "
		 "KiB, check the path", path);
	assert_string_equal(err, want);
	assert_is_defaults(&c);
}

/* A short or absent error buffer never overflows. */
static void test_small_err_buffer(void **state)
{
	(void)state;
	char path[64], err[8];
	struct st_config c;
	write_tmp("capture:\n  workers: 0\n", path);
	memset(err, 'x', sizeof(err));
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(config_load(path, &c, NULL, 0), -EINVAL);
	assert_int_equal(config_load(path, &c, err, 1), -EINVAL);
	assert_string_equal(err, "");
	unlink(path);
	assert_is_defaults(&c);
}

/* config_validate() on a struct changed in code (command-line overrides):
 * no file or line, every rule. */
static void test_validate(void **state)
{
	(void)state;
	struct st_config c;
	char err[512];

	config_defaults(&c);
	c.capture.workers = 0;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "capture.workers: value \"0\" is out of range "
				 "[1, 128]; use a value in that range");

	config_defaults(&c);
	c.flow.idle_timeout_ns = 10 * NS_D;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "flow.idle_timeout: value \"10d\" is out of "
				 "range [1s, 7d]; use a value in that range");

	config_defaults(&c);
	c.capture.dispatch = 7;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "capture.dispatch: value 7 is not a valid "
				 "choice; use one of: auto, rss, software");

	config_defaults(&c);
	c.eal.nargs = CONFIG_MAX_LIST + 1;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "eal.args: too many items (65); at most 64 "
				 "are allowed");

	config_defaults(&c);
	c.capture.ring_size = 100;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "capture.ring_size: value \"100\" is not a "
				 "power of two; use 64 or 128");

	config_defaults(&c);
	c.reasm.worker_memcap = 2 * MiB;
	c.reasm.flow_ooo_max = 3 * MiB;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "reasm.flow_buffer: value \"3MiB\" is larger "
				 "than reasm.worker_memcap (2MiB); lower it or "
				 "raise reasm.worker_memcap");

	config_defaults(&c);
	c.capture.workers = 128;
	c.capture.ring_size = 1048576;
	c.capture.mbufs = 16777216;
	assert_int_equal(config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "capture.mbufs: value \"16777216\" is less "
				 "than capture.workers * capture.ring_size "
				 "(128 * 1048576 = 134217728); use 0 (derived) "
				 "or at least 134217728");
	c.capture.mbufs = 0;
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(err, "");

	/* ext_proc addresses that would take one socket twice */
	static const struct {
		const char *a, *b; /* b NULL: the health port takes a */
		bool bad;
	} lrows[] = {
		{ "127.0.0.1:9000", "127.0.0.1:9000", true },
		{ "0.0.0.0:9000", "127.0.0.1:9000", true },
		{ "[::]:9000", "[::1]:9000", true },
		{ ":9000", "10.0.0.1:9000", true },
		{ "0.0.0.0:9000", "[::]:9000", false }, /* dual stack */
		{ "127.0.0.1:0", "127.0.0.1:0", false }, /* each its own */
		{ "127.0.0.1:9000", "127.0.0.2:9000", false },
		{ "127.0.0.1:9000", "127.0.0.1:9001", false },
		{ "0.0.0.0:9000", NULL, true },
		{ "127.0.0.1:9000", NULL, true },
		{ "127.0.0.2:9000", NULL, false },
	};
	for (size_t i = 0; i < sizeof(lrows) / sizeof(lrows[0]); i++) {
		config_defaults(&c);
		char a[32], b[32], h[32];
		snprintf(a, sizeof(a), "%s", lrows[i].a);
		c.extproc.listen[0] = a;
		c.extproc.nlisten = 1;
		if (lrows[i].b) {
			snprintf(b, sizeof(b), "%s", lrows[i].b);
			c.extproc.listen[1] = b;
			c.extproc.nlisten = 2;
		} else {
			snprintf(h, sizeof(h), "127.0.0.1:9000");
			c.extproc.health_listen = h;
		}
		int rc = config_validate(&c, err, sizeof(err));
		if ((rc < 0) != lrows[i].bad)
			fail_msg("%s + %s: rc %d (%s)", lrows[i].a,
				 lrows[i].b ? lrows[i].b : "health 127.0.0.1:9000",
				 rc, err);
		if (lrows[i].bad)
			assert_non_null(strstr(err, lrows[i].b
							    ? "are the same address"
							    : "is also an ext_proc"));
	}

	/* Rules spanning two keys point at the one set in the file. */
	expect_error("reasm:\n  worker_memcap: 1MiB\n  flow_buffer: 2MiB\n",
		     -EINVAL, 3,
		     "reasm.flow_buffer: value \"2MiB\" is larger than "
		     "reasm.worker_memcap (1MiB); lower it or raise "
		     "reasm.worker_memcap");
}

/* Every strdup() in config.c failing in turn: -ENOMEM, defaults, and no
 * leak (run under valgrind or ASan). */
static void test_strdup_failure(void **state)
{
	(void)state;
	const char *text = "eal:\n  args: [a, b, c]\ncapture:\n  port: x\n";
	char path[64], err[512];
	write_tmp(text, path);
	int budget;
	for (budget = 0; budget < 10; budget++) {
		struct st_config c;
		strdup_budget = budget;
		int rc = config_load(path, &c, err, sizeof(err));
		strdup_budget = -1;
		if (rc == 0) {
			assert_int_equal(c.eal.nargs, 3);
			assert_string_equal(c.capture.port, "x");
			config_free(&c);
			break;
		}
		assert_int_equal(rc, -ENOMEM);
		assert_non_null(strstr(err, "out of memory"));
		assert_is_defaults(&c);
	}
	assert_int_equal(budget, 5); /* 3 args, the port, the path */
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sane),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_sample_config),
		cmocka_unit_test(test_reference_roundtrip),
		cmocka_unit_test(test_docs_in_step),
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_empty_files),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_formatting),
		cmocka_unit_test(test_suggestions),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_items),
		cmocka_unit_test(test_nothing_half_applied),
		cmocka_unit_test(test_io_errors),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_strdup_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
