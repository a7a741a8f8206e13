/* Policy internals shared by policy_load.c (YAML -> these structs),
 * policy_match.c (routes, header/cookie/query/form rules, span output),
 * policy_detect.c (content detectors) and policy_json.c (JSON bodies).
 *
 * Everything here is built once by the loader into memory the policy owns
 * and is read-only afterwards; the scanners use only the caller's span
 * array and fixed-size scratch on their own stack.
 */
#ifndef SEALTAP_POLICY_PRIV_H
#define SEALTAP_POLICY_PRIV_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealtap/policy.h"

/* ---- bounds ------------------------------------------------------------- */

#define POL_NAME_MAX 255u          /* header/cookie/param/JSON key name */
#define POL_JSON_STATES 256u       /* NFA states of all JSON paths of a set */
#define POL_JSON_WORDS (POL_JSON_STATES / 64u)
#define POL_JSON_STEPS_MAX 32u     /* steps of one JSON path */
#define POL_JSON_PATH_MAX 512u     /* characters of one JSON path */
#define POL_JSON_DEPTH_MAX 128u    /* ceiling of limits.json_depth */
#define POL_VIEW_MAX 4096u         /* decoded bytes of one encoded value */
#define POL_METHODS_MAX 8u         /* methods of one route */

/* Where a detector runs (the YAML "in:" list). */
enum pol_scope {
	POL_SCOPE_HEADERS = 1, /* header and trailer values, cookies */
	POL_SCOPE_PATH = 2,    /* :path, its query, URL-valued headers */
	POL_SCOPE_BODY = 4,    /* message bodies */
};
#define POL_SCOPE_ALL 7u

/* ---- compiled rule sets --------------------------------------------------- */

struct pol_name_rule {
	const char *name; /* lowercase for case-insensitive tables */
	const char *rule; /* rule name */
	uint16_t len;
	uint16_t rule_id;
	uint8_t action;
};

/* Names of one kind (headers, cookies, query, form): exact names in an
 * open-addressing table, prefixes longest first ("*" is the empty prefix,
 * so it comes last). */
struct pol_names {
	bool ci; /* compare case-insensitively (headers) */
	uint32_t nexact;
	struct pol_name_rule *exact;
	uint32_t mask;   /* table slots - 1 (power of two) */
	uint32_t *slots; /* 0 = empty, else index + 1 into |exact| */
	uint32_t nprefix;
	struct pol_name_rule *prefix;
};

/* JSON paths compiled into one NFA per rule set: pattern p owns states
 * base_p .. base_p + nsteps_p; the last is accepting. A node's state set
 * says which patterns have matched how many steps on the way to it. */
enum pol_jkind {
	POL_J_CHILD = 0,    /* .name / ["name"] */
	POL_J_ANY = 1,      /* .* / [*] */
	POL_J_INDEX = 2,    /* [n] */
	POL_J_DESC = 3,     /* ..name: any depth below */
	POL_J_DESC_ANY = 4, /* ..* */
	POL_J_ACCEPT = 5,
};

struct pol_jstate {
	const char *name; /* CHILD, DESC */
	const char *rule; /* ACCEPT: rule name */
	uint32_t index;   /* INDEX */
	uint16_t len;
	uint16_t rule_id; /* ACCEPT */
	uint8_t kind;     /* enum pol_jkind */
	uint8_t action;   /* ACCEPT */
};

struct pol_json {
	unsigned nstates;
	struct pol_jstate *st;
	uint64_t start[POL_JSON_WORDS];  /* the root's set */
	uint64_t accept[POL_JSON_WORDS]; /* accepting states */
};

struct pol_det {
	const char *rule;
	uint16_t rule_id;
	uint8_t action; /* NONE = off */
	uint8_t scopes; /* enum pol_scope bits */
};

struct policy_rules {
	const char *name;
	struct pol_names headers, cookies, query, form;
	struct pol_json json;
	struct pol_det det[POLICY_DET_COUNT];
	uint8_t det_mask[POL_SCOPE_ALL + 1]; /* by scope bit: detectors on */
	bool scans_bodies;
};

/* ---- routes ------------------------------------------------------------------ */

enum pol_auth {
	POL_AUTH_ANY = 0,
	POL_AUTH_SUFFIX = 1, /* "*.example.com": stored as ".example.com" */
	POL_AUTH_EXACT = 2,
};

enum pol_path {
	POL_PATH_ANY = 0,
	POL_PATH_PREFIX = 1,
	POL_PATH_REGEX = 2,
	POL_PATH_GRPC = 3, /* prefix "/svc/" or exactly "/svc/method" */
};

struct policy_route {
	const char *name;
	const struct policy_tenant *tenant;
	const struct policy_rules *rules;
	const struct policy *policy;
	const char *auth; /* host, lowercase; suffix kind keeps the '.' */
	const char *port; /* NULL: any port */
	const char *prefix; /* path prefix; regex: its literal prefix */
	regex_t *re;
	const char *methods[POL_METHODS_MAX];
	uint8_t method_len[POL_METHODS_MAX];
	uint32_t prefix_len;
	uint16_t auth_len;
	uint8_t auth_kind;  /* enum pol_auth */
	uint8_t port_len;
	uint8_t path_kind;  /* enum pol_path */
	bool grpc_exact;    /* POL_PATH_GRPC with a method */
	uint8_t nmethods;
	unsigned order;     /* position in the file */
	unsigned line;
};

struct pol_arena;

struct policy {
	char *path;
	struct pol_arena *arena;
	struct policy_tenant *tenants;
	unsigned ntenants;
	struct policy_rules *sets;
	unsigned nsets;
	struct policy_route *routes; /* match order */
	unsigned nroutes;
	struct policy_route def;
	const char **rule_names;
	unsigned nrules;
	struct policy_deny deny;
	struct {
		uint32_t body_bytes;
		uint32_t json_depth;
		uint8_t unscanned; /* enum policy_action */
	} limits;
};

/* ---- scanning (policy_match.c) ------------------------------------------------- */

/* A decoded copy of an encoded value (percent, form or JSON escapes) with,
 * for each decoded byte, the offset of the encoded character it came from,
 * so hits found in decoded text map back to the encoded bytes. */
struct pol_view {
	uint8_t buf[POL_VIEW_MAX];
	uint16_t map[POL_VIEW_MAX + 1]; /* relative to the encoded start */
	uint32_t n;
};

enum pol_enc {
	POL_ENC_RAW = 0,
	POL_ENC_PCT = 1,  /* %XX */
	POL_ENC_FORM = 2, /* %XX and '+' = ' ' */
	POL_ENC_JSON = 3, /* JSON string escapes */
};

/* One scanner call: the input, where spans go, and scratch. */
struct pol_scan {
	const struct policy *p;
	const struct policy_rules *rs;
	const uint8_t *base;       /* start of the input; span offsets */
	struct policy_span *spans;
	unsigned n, max;
	unsigned flags;
	uint32_t total;            /* input length */
	bool full;                 /* out of slots: stop scanning */
	struct pol_view *view;     /* scratch, on the caller's stack */
};

/* Appends a span; spans must come in order and not overlap (the last span
 * is merged with an overlapping one). Returns false once the array is full
 * (the caller stops; pol_scan_finish() closes the policy fail-safe). */
bool pol_out_add(struct pol_scan *sc, uint32_t off, uint32_t len,
		 uint8_t action, uint8_t kind, uint8_t det, uint8_t flags,
		 uint16_t rule_id, const char *rule);

/* Adds [off, total) as one limit span (|rule_id|) with limits.unscanned.
 * When that is keep, the bytes stay as they are; with |detect_if_keep| the
 * body detectors still run over them. */
void pol_scan_rest(struct pol_scan *sc, uint32_t off, uint16_t rule_id,
		   bool detect_if_keep);

/* Runs the detectors of |mask| on |len| bytes at |off| (relative to
 * sc->base), decoded per |enc| first; spans get |span_flags|. */
void pol_scan_text(struct pol_scan *sc, uint32_t off, uint32_t len,
		   enum pol_enc enc, unsigned mask, uint8_t span_flags);

/* Decodes |len| bytes at |s| per |enc| into |v|. False if the result
 * would not fit (then the caller scans |s| as it is). */
bool pol_view_decode(struct pol_view *v, const uint8_t *s, size_t len,
		     enum pol_enc enc);

/* Strongest action of two (enum order). */
static inline uint8_t pol_action_max(uint8_t a, uint8_t b)
{
	return a > b ? a : b;
}

const struct pol_name_rule *pol_names_find(const struct pol_names *t,
					   const uint8_t *s, size_t n);

/* ---- detectors (policy_detect.c) ------------------------------------------------ */

/* Called for each hit, left to right, non-overlapping; return false to
 * stop. */
typedef bool (*pol_emit_fn)(void *ctx, uint32_t off, uint32_t len,
			    unsigned det);

/* Runs the detectors of |mask| over |n| bytes of |t|. Work is O(n) with a
 * small constant: each detector looks at most a bounded window ahead of a
 * trigger byte (an e-mail at most 64 bytes back and 253 ahead). */
void pol_detect_run(const uint8_t *t, size_t n, unsigned mask,
		    pol_emit_fn emit, void *ctx);
/* The same scan one byte at a time: slower, and the reference that
 * pol_detect_run() (which looks at 16 bytes at a time for the few
 * positions a hit can start at) must agree with, call for call. For tests,
 * the fuzzer and bench/bench_detect. */
void pol_detect_run_ref(const uint8_t *t, size_t n, unsigned mask,
			pol_emit_fn emit, void *ctx);

/* Validators, for tests. |d| digits only. */
bool pol_luhn_ok(const uint8_t *d, size_t n);
/* IBAN without blanks (|n| bytes, uppercase). */
bool pol_iban_ok(const uint8_t *s, size_t n);
/* Expected IBAN length for country |cc| (two uppercase letters), 0 if
 * the country has no IBAN. */
unsigned pol_iban_length(const uint8_t *cc);
bool pol_ssn_ok(unsigned area, unsigned group, unsigned serial);

/* ---- JSON (policy_json.c) --------------------------------------------------------- */

/* Scans |len| bytes of JSON at sc->base + |off| (one or more top-level
 * values) with the rule set's JSON paths and the body detectors. */
void pol_json_scan(struct pol_scan *sc, uint32_t off, uint32_t len);

/* One frame of the JSON parser's stack: a container being parsed. */
struct pol_jframe {
	uint64_t set[POL_JSON_WORDS]; /* NFA states at this container */
	uint32_t index;               /* next array index */
	uint8_t type, state;
};

struct pol_jstate;

/* policy.h struct policy_json_stream: the parser between chunks. */
struct policy_json_stream {
	uint8_t dead;      /* error or cut: the rest of the body is unscanned */
	uint8_t started;   /* a chunk was seen (a byte order mark may lead) */
	uint8_t carry_cut; /* |carry| lost the start of its (string) token */
	uint8_t skipping;  /* inside a container taken or skipped whole */
	uint8_t skip_in_str, skip_esc;
	uint32_t skip_depth;
	const struct pol_jstate *skip_acc; /* its rule; NULL: too deep */
	unsigned depth;
	uint64_t pending[POL_JSON_WORDS];
	struct pol_jframe st[POL_JSON_DEPTH_MAX];
	uint32_t carry_len;
	uint8_t carry[POLICY_JSON_CARRY];
};

/* pol_json_scan() of [|off|, |off| + |len|) of sc->base, which starts with
 * the |js|->carry_len carried bytes, parsed on from |js| and saved back to
 * it unless |last|. Spans are relative to sc->base (the caller clips the
 * carried part away). */
void pol_json_scan_chunk(struct pol_scan *sc, uint32_t len,
			 struct policy_json_stream *js, bool last);

/* True if |len| bytes at |s| are exactly one JSON object (blanks around
 * allowed) with the top-level key |key|. Bounded depth; no allocation. */
bool pol_json_object_has_key(const uint8_t *s, size_t len, const char *key);

/* Parses a JSON path expression into steps; used by the loader. Returns
 * the number of steps, or -1 with a reason and the offending offset. */
struct pol_jstep_src {
	uint8_t kind;  /* POL_J_CHILD .. POL_J_DESC_ANY */
	uint32_t index;
	const char *name; /* points into |buf| given to pol_json_path_parse */
	uint16_t len;
};
int pol_json_path_parse(const char *path, size_t len,
			struct pol_jstep_src *steps, unsigned max,
			char *buf, size_t bufcap, const char **why,
			size_t *where);

#endif
