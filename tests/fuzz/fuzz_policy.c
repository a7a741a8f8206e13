/* libFuzzer target for the policy engine: the YAML loader, the header value
 * and body scanners, the detectors and the splitting helpers.
 *
 * Input format:
 *
 *   input := mode (u8) rest
 *   mode % 4 == 0: rest is a policy file. It is loaded; if it loads, its
 *                  default route and every route scan a fixed header, path
 *                  and JSON body. A failed load must leave a one-line error.
 *   mode % 4 == 1: rest := which (u8) max (u8) name_len (u8) name value
 *                  A header value scanned with policy_scan_value() on the
 *                  fixed policy below (which % 2: its rich route or the
 *                  built-in policy), at most max % 16 + 1 spans.
 *   mode % 4 == 2: rest := which (u8) max (u8) ctype (u8) body
 *                  A body scanned with policy_scan_body(); ctype % 8 picks
 *                  the content type from a table (JSON, form, text, ...).
 *                  Then the same body in chunks with
 *                  policy_scan_body_chunk(), chunk lengths drawn from
 *                  ctype / 8 (each chunk in its own exact-size buffer).
 *   mode % 4 == 3: rest := mask (u8) text
 *                  The detectors alone (policy_detect), the cookie and
 *                  query splitters, percent-decoding, and the decoded views
 *                  (every map entry inside the input, non-decreasing).
 *
 * Invariants (abort on violation): a count in [0, max]; spans in bounds,
 * non-empty, sorted, disjoint, with a rule name and an action other than
 * none/keep; scan flags only the defined bits; pairs inside their input.
 * Inputs are copied to heap buffers of exactly their size, so ASan sees
 * any read past them.
 *
 * Seeds: tests/fuzz/seeds/policy. seed-NN are written by this target
 * itself:
 *
 *   FUZZ_POLICY_WRITE_SEEDS=tests/fuzz/seeds/policy \
 *       build-fuzz/tests/fuzz/fuzz_policy -runs=0
 *
 * sample-policy is a zero byte then config/policy.yaml; regress-* are
 * inputs that once failed (an empty JSON key under a wildcard path; a path
 * handed to regexec() without a terminating NUL).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/policy_priv.h"
#include "sealtap/common.h"
#include "seed_file.h"

static const char rich_policy[] =
	"limits: {body_bytes: 4KiB, json_depth: 8, unscanned: redact}\n"
	"tenants: {t: {kms: pkcs11, kek: k}, u: {kms: gcp, kek: x/y}}\n"
	"rule_sets:\n"
	"  rich:\n"
	"    extends: builtin\n"
	"    headers: {x-keep: keep, \"x-s-*\": redact, x-deny: deny}\n"
	"    cookies: {session: tokenize, theme: keep, \"tr_*\": hash}\n"
	"    query: {token: seal, \"*\": hash, cb: keep}\n"
	"    form: {user: keep, \"*\": tokenize}\n"
	"    json:\n"
	"      \"$.a.b\": seal\n"
	"      \"$.l[*].s\": tokenize\n"
	"      \"$.l[2]\": hash\n"
	"      \"$..ssn\": redact\n"
	"      \"$..k\": keep\n"
	"      \"$.*.w\": seal\n"
	"      \"$..*.deep\": seal\n"
	"      \"$['x y']\": hash\n"
	"    detectors:\n"
	"      card: seal\n"
	"      email: {action: tokenize, in: [headers, body]}\n"
	"      ssn: {action: hash, in: [path, body]}\n"
	"      iban: redact\n"
	"      jwt: seal\n"
	"      bearer: seal\n"
	"      api_key: deny\n"
	"routes:\n"
	"  - match: {authority: \"*.example.com\", path_regex: \"^/v[0-9]+/\"}\n"
	"    tenant: u\n"
	"default: {tenant: t, rules: rich}\n";

static struct policy *rich, *builtin;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_policy: invariant violated: %s\n", what);
	abort();
}

static void setup(void)
{
	char err[512];
	if (rich)
		return;
	rich = policy_load_text("rich.yaml", rich_policy,
				sizeof(rich_policy) - 1, err, sizeof(err));
	builtin = policy_builtin(err, sizeof(err));
	if (!rich || !builtin) {
		fprintf(stderr, "fuzz_policy: %s\n", err);
		abort();
	}
}

#define FLAGS_ALL                                                              \
	(POLICY_SCAN_SPANS_FULL | POLICY_SCAN_BODY_CUT |                       \
	 POLICY_SCAN_MALFORMED | POLICY_SCAN_DEPTH | POLICY_SCAN_RAW |        \
	 POLICY_SCAN_RESUMED | POLICY_SCAN_CUT_STRING)

static void check(int n, const struct policy_span *sp, unsigned max,
		  size_t len, unsigned flags, bool detect_only)
{
	if (n < 0 || (unsigned)n > max)
		die("span count");
	if (flags & ~FLAGS_ALL)
		die("flags");
	for (int i = 0; i < n; i++) {
		if (sp[i].len == 0 || (size_t)sp[i].off + sp[i].len > len)
			die("span bounds");
		if (i && sp[i - 1].off + sp[i - 1].len > sp[i].off)
			die("spans overlap or out of order");
		if (detect_only) {
			if (sp[i].kind != POLICY_KIND_DETECTOR ||
			    sp[i].detector >= POLICY_DET_COUNT)
				die("detector span");
			continue;
		}
		if ((sp[i].flags & POLICY_SPAN_JSON_NUMBER) &&
		    (sp[i].action != POLICY_ACTION_REDACT ||
		     sp[i].kind != POLICY_KIND_LIMIT))
			die("cut number span");
		if (!sp[i].rule || sp[i].action <= POLICY_ACTION_KEEP ||
		    sp[i].action > POLICY_ACTION_DENY ||
		    sp[i].kind == POLICY_KIND_NONE ||
		    sp[i].kind > POLICY_KIND_LIMIT)
			die("span fields");
	}
	if ((flags & POLICY_SCAN_SPANS_FULL) &&
	    (n == 0 || sp[n - 1].off + sp[n - 1].len != len))
		die("full span array must cover to the end");
}

static void scan_value(const struct policy_route *r, const char *name,
		       const uint8_t *v, size_t vl, unsigned max)
{
	struct policy_span sp[16];
	unsigned flags = 0;
	int n = policy_scan_value(r, name, strlen(name), v, vl, sp, max,
				  &flags);
	check(n, sp, max, vl, flags, false);
}

static void scan_body(const struct policy_route *r, const char *ct,
		      const uint8_t *b, size_t bl, unsigned max)
{
	struct policy_span sp[16];
	unsigned flags = 0;
	int n = policy_scan_body(r, ct, ct ? strlen(ct) : 0, b, bl, sp, max,
				 &flags);
	check(n, sp, max, bl, flags, false);
}

/* |b| in chunks whose lengths come from |seed|; every chunk's spans
 * checked against the chunk. */
static void scan_chunks(const struct policy_route *r, const char *ct,
			const uint8_t *b, size_t bl, unsigned max,
			unsigned seed)
{
	struct policy_json_stream *js = malloc(policy_json_stream_size());
	policy_json_stream_init(js);
	size_t off = 0;
	for (unsigned i = 0; off < bl || i == 0; i++) {
		size_t k = 1 + (size_t)(seed * (i + 1) * 7u + i) % 97u;
		if (k > bl - off)
			k = bl - off;
		bool last = off + k == bl;
		uint8_t *c = malloc(k ? k : 1), *scratch;
		memcpy(c, b + off, k);
		scratch = malloc(k + POLICY_JSON_CARRY);
		struct policy_span sp[16];
		unsigned flags = 0;
		int n = policy_scan_body_chunk(r, ct, ct ? strlen(ct) : 0, js,
					       c, k, last, scratch, sp, max,
					       &flags);
		check(n, sp, max, k, flags, false);
		free(scratch);
		free(c);
		off += k;
		if (last)
			break;
	}
	free(js);
}

static void mode_load(const uint8_t *d, size_t n)
{
	char err[512];
	err[0] = 'x';
	struct policy *p = policy_load_text("fz.yaml", (const char *)d, n, err,
					    sizeof(err));
	if (!p) {
		if (strchr(err, '\n') || strncmp(err, "fz.yaml", 7) != 0)
			die("error line");
		return;
	}
	static const char hv[] = "session=a@b.co; x=4111111111111111";
	static const char pv[] = "/v1/x?token=eyJhbGciOiJub25lIn0.e30.&a=1";
	static const char jb[] = "{\"a\":{\"b\":[1,\"c@d.co\"]},\"ssn\":\"1\"}";
	for (unsigned i = 0; i <= policy_route_count(p); i++) {
		const struct policy_route *r = i < policy_route_count(p)
						       ? policy_route_at(p, i)
						       : policy_default_route(p);
		if (!r || !policy_route_tenant(r) || !policy_route_name(r))
			die("route");
		scan_value(r, "cookie", (const uint8_t *)hv, sizeof(hv) - 1, 8);
		scan_value(r, ":path", (const uint8_t *)pv, sizeof(pv) - 1, 8);
		scan_body(r, "application/json", (const uint8_t *)jb,
			  sizeof(jb) - 1, 8);
	}
	struct policy_request rq = { .authority = "a.example.com",
				     .authority_len = 13, .path = "/v2/x",
				     .path_len = 5 };
	if (!policy_route_for(p, &rq))
		die("route_for");
	policy_free(p);
}

static const struct policy_route *pick(uint8_t which, const uint8_t *path,
				       size_t pl)
{
	if (which % 2)
		return policy_default_route(builtin);
	struct policy_request rq = { .authority = "api.example.com",
				     .authority_len = 15, .path = path,
				     .path_len = pl };
	return policy_route_for(rich, &rq);
}

static const char *const names[] = {
	"cookie", "set-cookie", ":path", "referer", "authorization",
	"x-keep", "x-s-abc",    "x-deny", "user-agent", "location",
};

static void mode_value(const uint8_t *d, size_t n)
{
	if (n < 3)
		return;
	uint8_t which = d[0], max = d[1], nl = d[2];
	d += 3;
	n -= 3;
	const char *name;
	char nbuf[256];
	if (nl < 0x80) {
		name = names[nl % (sizeof(names) / sizeof(*names))];
	} else {
		size_t k = ST_MIN((size_t)(nl & 0x7f), n);
		memcpy(nbuf, d, k);
		nbuf[k] = '\0';
		name = nbuf;
		d += k;
		n -= k;
	}
	uint8_t *v = malloc(n ? n : 1);
	memcpy(v, d, n);
	scan_value(pick(which, v, n), name, v, n, max % 16u + 1);
	struct policy_verdict vd = policy_header_action(pick(which, NULL, 0),
							v, n);
	if (vd.action > POLICY_ACTION_DENY || (vd.action && !vd.rule))
		die("verdict");
	free(v);
}

static const char *const ctypes[] = {
	"application/json", "application/x-www-form-urlencoded",
	"text/plain",       "application/x-ndjson",
	NULL,               "application/grpc",
	"image/png",        "application/merge-patch+json; charset=utf-8",
};

static void mode_body(const uint8_t *d, size_t n)
{
	if (n < 3)
		return;
	uint8_t which = d[0], max = d[1], ct = d[2];
	d += 3;
	n -= 3;
	uint8_t *b = malloc(n ? n : 1);
	memcpy(b, d, n);
	scan_body(pick(which, NULL, 0), ctypes[ct % 8], b, n, max % 16u + 1);
	scan_chunks(pick(which, NULL, 0), ctypes[ct % 8], b, n, max % 16u + 1,
		    ct / 8u + 1);
	free(b);
}

static struct pol_view view;

static void mode_text(const uint8_t *d, size_t n)
{
	if (n < 1)
		return;
	unsigned mask = d[0];
	d++;
	n--;
	uint8_t *t = malloc(n ? n : 1);
	memcpy(t, d, n);
	struct policy_span sp[8];
	int k = policy_detect(mask, t, n, sp, 8);
	check(k, sp, 8, n, 0, true);

	struct policy_pair pr;
	size_t pos = 0, steps = 0;
	while (policy_cookie_next(t, n, &pos, &pr)) {
		if ((size_t)pr.name_off + pr.name_len > n ||
		    (size_t)pr.value_off + pr.value_len > n || pos > n ||
		    ++steps > n)
			die("cookie pair");
	}
	pos = 0;
	steps = 0;
	size_t q = policy_query_offset(t, n);
	if (q > n)
		die("query offset");
	while (policy_param_next(t + q, n - q, &pos, &pr)) {
		if ((size_t)pr.name_off + pr.name_len > n - q ||
		    (size_t)pr.value_off + pr.value_len > n - q || ++steps > n)
			die("param pair");
	}
	if (policy_set_cookie_pair(t, n, &pr) &&
	    (size_t)pr.value_off + pr.value_len > n)
		die("set-cookie pair");
	char out[64];
	int dl = policy_pct_decode(t, n, mask & 1, out, sizeof(out));
	if (dl != -ENOBUFS &&
	    (dl < 0 || dl > (int)sizeof(out) || (size_t)dl > n))
		die("pct decode");
	for (int e = POL_ENC_PCT; e <= POL_ENC_JSON; e++) {
		if (!pol_view_decode(&view, t, n, (enum pol_enc)e))
			continue;
		if (view.map[view.n] != n)
			die("view end");
		for (uint32_t i = 0; i < view.n; i++)
			if (view.map[i] >= n || view.map[i] > view.map[i + 1])
				die("view map");
	}
	free(t);
}

/* A few inputs per mode, for the seed corpus. */
static void write_seeds(const char *dir)
{
	static const struct {
		uint8_t head[3];
		size_t hl;
		const char *rest;
	} seeds[] = {
		{ { 0 }, 1, "tenants: {a: {kms: pkcs11, kek: k}}\n" },
		{ { 4 }, 1,
		  "version: 1\nlimits: {body_bytes: 1KiB}\ntenants:\n  a: {kms: "
		  "pkcs11, kek: k}\n  b: {kms: gcp, kek: p/q}\nrule_sets:\n  r:\n"
		  "    extends: builtin\n    headers: {\"x-*\": hash}\n    json: "
		  "{\"$..a[*].b\": seal, \"$['q']\": keep}\n    detectors: {card: "
		  "{action: seal, in: [body]}}\nroutes:\n  - name: x\n    match: "
		  "{authority: \"*.example.com\", path_regex: \"^/a/[0-9]+$\", "
		  "methods: [GET]}\n    tenant: b\n  - match: {grpc_service: "
		  "p.S, grpc_method: M}\ndefault: {tenant: a, rules: r}\n" },
		{ { 8 }, 1, "tenants: {a: {kms: pkcs11, kek: k}}\nroutes: [\n" },
		{ { 1, 0, 0 }, 3,
		  " session=abc; theme=a@b.co; tr_x=1; other=4111111111111111" },
		{ { 1, 3, 2 }, 3,
		  "/u/bob%40example.com?token=x&q=4111%201111%201111%201111&cb=z"
		  "#f" },
		{ { 1, 15, 1 }, 3,
		  "id=eyJhbGciOiJub25lIn0.e30.; Domain=x@y.org; Path=/" },
		{ { 1, 7, 8 }, 3,
		  "Bearer AKIAIOSFODNN7EXAMPLE ssn 123-45-6789 DE89 3704 0044 "
		  "0532 0130 00" },
		{ { 2, 15, 0 }, 3,
		  "{\"a\":{\"b\":\"s\"},\"l\":[{\"s\":1},{\"s\":\"x\"},[2]],"
		  "\"m\":{\"ssn\":{\"k\":1}},\"\\u0073sn\":\"bob\\u0040x.org\","
		  "\"n\":4111111111111111,\"x y\":[true,false,null]}" },
		{ { 2, 1, 0 }, 3, "[[[[[[[[[[[[{\"deep\":\"a@b.co\"}]]]]]]]]]]]]" },
		{ { 2, 4, 0 }, 3, "{\"a\": tru, \"ssn\": \"1\"}" },
		{ { 2, 4, 3 }, 3, "{\"a\":{\"b\":1}}\n{\"a\":{\"b\":\"2\"}}\n" },
		{ { 2, 9, 1 }, 3,
		  "user=bob%40x.org&password=p%40ss&note=4111+1111+1111+1111&=v&"
		  "k" },
		{ { 2, 9, 2 }, 3, "mail a@b.co card 5500-0000-0000-0004 "
				  "xoxb-1234567890-abc" },
		{ { 3, 0xff }, 2,
		  "a=1; b=%41%zz+c; q=\"x\"?t=1&u=\\u0040\\ud83d\\ude00" },
		{ { 3, 0x7f }, 2,
		  "AIzaSyA1234567890abcdefghijklmnopqrs_-x ghp_0123456789abcdefghij"
		  "ABCDEFGHIJ012345 sk_live_4eC39HqLyjWDarjtT1zdp7dc" },
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(*seeds); i++) {
		char name[32];
		snprintf(name, sizeof(name), "seed-%02zu", i);
		if (!fuzz_seed_write(dir, name, seeds[i].head, seeds[i].hl,
				     seeds[i].rest, strlen(seeds[i].rest)))
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool seeded;
	if (!seeded) {
		const char *dir = getenv("FUZZ_POLICY_WRITE_SEEDS");
		if (dir)
			write_seeds(dir);
		seeded = true;
	}
	setup();
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: mode_load(data + 1, size - 1); break;
	case 1: mode_value(data + 1, size - 1); break;
	case 2: mode_body(data + 1, size - 1); break;
	default: mode_text(data + 1, size - 1); break;
	}
	return 0;
}
