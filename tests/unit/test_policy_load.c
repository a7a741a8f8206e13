/* Tests for src/policy_load.c: every kind of error line (file:line, key,
 * value, fix), nothing half-applied, "extends" semantics, rule names, the
 * sample policy and the built-in one (and docs/policy.md showing it
 * verbatim), file errors, and an allocation-failure run.
 *
 * Includes policy_load.c to count its allocations (malloc, calloc, realloc,
 * strdup) and make the n-th one fail. */
#include <errno.h>
#include <fcntl.h>
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

/* Allocations that fail once |alloc_budget| successful ones are used up
 * (-1 = never fail). */
static long alloc_budget = -1;

static int take(void)
{
	if (alloc_budget == 0)
		return 0;
	if (alloc_budget > 0)
		alloc_budget--;
	return 1;
}

static void *t_malloc(size_t n)
{
	return take() ? malloc(n) : NULL;
}

static void *t_calloc(size_t n, size_t m)
{
	return take() ? calloc(n, m) : NULL;
}

static void *t_realloc(void *p, size_t n)
{
	return take() ? realloc(p, n) : NULL;
}

static char *t_strdup(const char *s)
{
	return take() ? strdup(s) : NULL;
}

#define malloc t_malloc
#define calloc t_calloc
#define realloc t_realloc
#define strdup t_strdup
#include "../../src/policy_load.c"
#include "policy_text.h"
#undef malloc
#undef calloc
#undef realloc
#undef strdup

#define SAMPLE SEALTAP_SOURCE_ROOT "/config/policy.yaml"
#define DOCS SEALTAP_SOURCE_ROOT "/docs/policy.md"

#define T "tenants: {acme: {kms: pkcs11, kek: acme-kek}}\n"

/* ---- errors --------------------------------------------------------------- */

struct ecase {
	const char *text;
	const char *want; /* after "test.yaml" */
};

static const struct ecase ecases[] = {
	/* document shape */
	{ "", ": the policy is empty; define at least tenants: (see "
	      "config/policy.yaml)" },
	{ "# only a comment\n", ": the policy is empty; define at least "
				"tenants: (see config/policy.yaml)" },
	{ "- a\n", ":1: the top level is a list; it must be a mapping with "
		   "tenants:, rule_sets:, routes:, default:" },
	{ "tenant: {}\n", ":1: tenant: unknown key; did you mean \"tenants\"?" },
	{ "zzz: 1\n", ":1: zzz: unknown key; keys here are version, limits, "
		      "tenants, rule_sets, routes, default, deny" },
	{ T "tenants: {}\n", ":2: tenants: duplicate key (first on line 1); "
			     "keep one of them" },
	{ "tenants: [a\n", ":2: YAML syntax error: did not find expected ',' "
			   "or ']' while parsing a flow sequence (from line 1); "
			   "check indentation (spaces, not tabs), quoting and "
			   "the \":\" after each key" },
	{ T "---\n" T, ":2: a second YAML document starts here; a policy file "
		       "holds one, remove the \"---\" and merge" },
	{ "version: 2\n" T, ":1: version: value \"2\" is not supported; this "
			    "sealtap reads policy version 1" },
	{ "version: [1]\n" T, ":1: version: expected a single value, found a "
			      "list; write it on one line as \"key: value\"" },
	/* limits */
	{ "limits: {body_bytes: 64KB}\n" T,
	  ":1: limits.body_bytes: value \"64KB\" is not a size; use bytes, KiB "
	  "or MiB, e.g. 64KiB" },
	{ "limits: {body_bytes: 65MiB}\n" T,
	  ":1: limits.body_bytes: value \"65MiB\" is out of range [0, 64MiB]; "
	  "use a size in that range" },
	{ "limits: {json_depth: 0}\n" T,
	  ":1: limits.json_depth: value \"0\" is out of range [1, 128]; use an "
	  "integer in that range" },
	{ "limits: {unscanned: tokenize}\n" T,
	  ":1: limits.unscanned: value \"tokenize\" is not an action here; use "
	  "one of redact, seal, keep" },
	{ "limits: {unscaned: keep}\n" T,
	  ":1: limits.unscaned: unknown key; did you mean \"unscanned\"?" },
	/* deny */
	{ "deny: {status: 200}\n" T,
	  ":1: deny.status: value \"200\" is not an error status; use an HTTP "
	  "status from 400 to 599, e.g. 403" },
	{ "deny: {status: 4O3}\n" T,
	  ":1: deny.status: value \"4O3\" is not an error status; use an HTTP "
	  "status from 400 to 599, e.g. 403" },
	{ "deny: {details: \"no way\"}\n" T,
	  ":1: deny.details: details \"no way\" is not a valid name; use 1-64 "
	  "letters, digits, '_', '.' or '-', starting with a letter or digit" },
	{ "deny: {body: \"bell\\a\"}\n" T,
	  ":1: deny.body: byte 4 is not printable ASCII; use text, tabs and "
	  "newlines only" },
	{ "deny: {stauts: 403}\n" T,
	  ":1: deny.stauts: unknown key; did you mean \"status\"?" },
	{ "deny: [403]\n" T,
	  ":1: deny: expected a mapping of deny settings, found a list; put "
	  "them on their own lines below \"deny:\", indented" },
	/* tenants */
	{ "rule_sets: {}\n", ": tenants: no tenants; define at least one, e.g. "
			     "\"tenants: {acme: {kms: pkcs11, kek: acme-kek}}\"" },
	{ "tenants: {}\n", ":1: tenants: no tenants; define at least one, e.g. "
			   "\"tenants: {acme: {kms: pkcs11, kek: acme-kek}}\"" },
	{ "tenants:\n  acme: {kms: pkcs11}\n",
	  ":2: tenants.acme: no \"kek\"; a tenant names its KMS backend and "
	  "key-encryption key, e.g. \"kms: pkcs11\" and \"kek: acme-kek\"" },
	{ "tenants:\n  \"a b\": {kms: pkcs11, kek: k}\n",
	  ":2: tenants.a b: tenant \"a b\" is not a valid name; use 1-64 "
	  "letters, digits, '_', '.' or '-', starting with a letter or digit" },
	{ "tenants:\n  acme: {kms: PKCS11, kek: k}\n",
	  ":2: tenants.acme.kms: value \"PKCS11\" is not a KMS backend name; use "
	  "lowercase letters, digits, '_' or '-' (e.g. pkcs11, gcp)" },
	{ "tenants:\n  acme: {kms: pkcs11, kek: \"my kek\"}\n",
	  ":2: tenants.acme.kek: value \"my kek\" is not a key reference; use "
	  "1-1024 printable characters without blanks (a key label, PKCS#11 "
	  "URI or KMS resource name)" },
	{ "tenants:\n  acme: {kms: pkcs11, kek: k, keek: k}\n",
	  ":2: tenants.acme.keek: unknown key; did you mean \"kek\"?" },
	{ "tenants:\n  acme: {kms: pkcs11, kek: k}\n  acme: {kms: x, kek: y}\n",
	  ":3: tenants.acme: duplicate tenant; each tenant is defined once" },
	{ "tenants:\n  acme: pkcs11\n",
	  ":2: tenants.acme: expected a mapping of kms and kek, found a scalar; "
	  "put them on their own lines below \"tenants.acme:\", indented" },
	{ "tenants:\n  acme: {kms: pkcs11, kek: \"a\\0b\"}\n",
	  ":2: tenants.acme.kek: value holds a NUL byte; remove the \"\\0\"" },
	{ "tenants:\n  acme: {kms: pkcs11, kek: }\n",
	  ":2: tenants.acme.kek: no value given; write a value or remove the "
	  "key" },
	/* rule sets */
	{ T "rule_sets:\n  r:\n    header: {a: seal}\n",
	  ":4: rule_sets.r.header: unknown key; did you mean \"headers\"?" },
	{ T "rule_sets:\n  r:\n    headers: {authorization: seel}\n",
	  ":4: rule_sets.r.headers.authorization: value \"seel\" is not an "
	  "action here; use one of seal, tokenize, hash, redact, keep, deny "
	  "(did you mean \"seal\"?)" },
	{ T "rule_sets:\n  r:\n    headers: {authorization: encrypt}\n",
	  ":4: rule_sets.r.headers.authorization: value \"encrypt\" is not an "
	  "action here; use one of seal, tokenize, hash, redact, keep, deny" },
	{ T "rule_sets:\n  r:\n    headers: {authorization: off}\n",
	  ":4: rule_sets.r.headers.authorization: value \"off\" is not an "
	  "action here; use one of seal, tokenize, hash, redact, keep, deny" },
	{ T "rule_sets:\n  r:\n    headers: [authorization]\n",
	  ":4: rule_sets.r.headers: expected a mapping of names to actions, "
	  "found a list; put them on their own lines below "
	  "\"rule_sets.r.headers:\", indented" },
	{ T "rule_sets:\n  r:\n    headers: {\"x bad\": seal}\n",
	  ":4: rule_sets.r.headers.x bad: name \"x bad\" has the character ' '; "
	  "header names are tokens (letters, digits, !#$%&'*+-.^_`|~), "
	  "pseudo-headers start with ':'" },
	{ T "rule_sets:\n  r:\n    headers: {\"x-*-y\": seal}\n",
	  ":4: rule_sets.r.headers.x-*-y: name \"x-*-y\": '*' may only end a "
	  "name (a prefix match, e.g. \"x-secret-*\"), or stand alone for "
	  "every name" },
	{ T "rule_sets:\n  r:\n    headers:\n      Authorization: seal\n"
	    "      authorization: hash\n",
	  ":6: rule_sets.r.headers.authorization: duplicate rule (first on line "
	  "5) (header names are case-insensitive); keep one of them" },
	{ T "rule_sets:\n  r:\n    cookies: {\"a;b\": seal}\n",
	  ":4: rule_sets.r.cookies.a;b: name \"a;b\" has the character ';'; "
	  "cookie names are tokens (letters, digits, !#$%&'*+-.^_`|~)" },
	{ T "rule_sets:\n  r:\n    query: {\"a&b\": seal}\n",
	  ":4: rule_sets.r.query.a&b: name \"a&b\" has the character '&'; write "
	  "the decoded name, without '&', '=' or '#'" },
	{ T "rule_sets:\n  r:\n    headers: {x: {name: n}}\n",
	  ":4: rule_sets.r.headers.x: no action; add \"action: seal\" (or "
	  "tokenize, hash, redact, keep, deny)" },
	{ T "rule_sets:\n  r:\n    headers: {x: {action: seal, nmae: n}}\n",
	  ":4: rule_sets.r.headers.x.nmae: unknown key; did you mean \"name\"?" },
	{ T "rule_sets:\n  r:\n    headers: {x: {action: seal, name: \"a\\\"b\"}}\n",
	  ":4: rule_sets.r.headers.x: value \"a\\\"b\" is not a valid rule "
	  "name; use up to 255 printable characters without '\"' or '\\'" },
	{ T "rule_sets:\n  r:\n    headers:\n      x: {action: seal, name: n}\n"
	    "      y: {action: seal, name: n}\n",
	  ":6: rule_sets.r.headers.y: rule name \"n\" is already used (line 5); "
	  "give this rule another name" },
	{ T "rule_sets:\n  r:\n    json: {\"$.a[\": seal}\n",
	  ":4: rule_sets.r.json.$.a[: JSON path \"$.a[\" is not valid at "
	  "character 5: expected *, an index or a quoted name after \"[\"; "
	  "write paths like $.a.b, $.a[*].b, $.a[0], $..ssn, $[\"odd name\"]" },
	{ T "rule_sets:\n  r:\n    json: {\"a.b\": seal}\n",
	  ":4: rule_sets.r.json.a.b: JSON path \"a.b\" is not valid at "
	  "character 1: a path starts with \"$\"; write paths like $.a.b, "
	  "$.a[*].b, $.a[0], $..ssn, $[\"odd name\"]" },
	{ T "rule_sets:\n  r:\n    detectors: {cards: seal}\n",
	  ":4: rule_sets.r.detectors.cards: unknown key; did you mean "
	  "\"card\"?" },
	{ T "rule_sets:\n  r:\n    detectors: {card: keep}\n",
	  ":4: rule_sets.r.detectors.card: value \"keep\" is not a detector "
	  "action; use off to turn the detector off" },
	{ T "rule_sets:\n  r:\n    detectors: {card: {action: seal, in: [header]}}\n",
	  ":4: rule_sets.r.detectors.card.in: value \"header\" is not a place; "
	  "use headers, path or body (did you mean \"headers\"?)" },
	{ T "rule_sets:\n  r:\n    detectors: {card: {action: seal, in: []}}\n",
	  ":4: rule_sets.r.detectors.card.in: the list is empty; name at least "
	  "one of headers, path, body, or set the detector to off" },
	{ T "rule_sets:\n  r:\n    extends: buitin\n",
	  ":4: rule_sets.r.extends: unknown rule set \"buitin\"; did you mean "
	  "\"builtin\"?" },
	{ T "rule_sets:\n  a: {extends: b}\n  b: {extends: c}\n  c: {extends: a}\n",
	  ":3: rule_sets.a.extends: rule sets extend each other in a cycle (a "
	  "-> b -> c -> a); remove one of the extends" },
	{ T "rule_sets:\n  a: {extends: a}\n",
	  ":3: rule_sets.a.extends: rule sets extend each other in a cycle (a "
	  "-> a); remove one of the extends" },
	{ T "rule_sets:\n  builtin: {}\n",
	  ":3: rule_sets.builtin: \"builtin\" is the name of the built-in rule "
	  "set; name yours differently and use \"extends: builtin\" to build on "
	  "it" },
	{ T "rule_sets:\n  \"-x\": {}\n",
	  ":3: rule_sets.-x: rule set \"-x\" is not a valid name; use 1-64 "
	  "letters, digits, '_', '.' or '-', starting with a letter or digit" },
	/* routes */
	{ T "routes: {a: 1}\n",
	  ":2: routes: expected a list of routes, found a mapping; start each "
	  "route with \"- name: ...\"" },
	{ T "routes:\n  - name: r\n    match: {path_prefix: /}\n    tenant: acmee\n",
	  ":5: routes[0].tenant: unknown tenant \"acmee\"; did you mean "
	  "\"acme\"?" },
	{ T "routes:\n  - name: r\n    match: {path_prefix: /}\n    tenant: zz\n",
	  ":5: routes[0].tenant: unknown tenant \"zz\"; define it under "
	  "tenants: or use one of: acme" },
	{ T "routes:\n  - name: r\n    match: {path_prefix: /}\n    rules: strict\n",
	  ":5: routes[0].rules: unknown rule set \"strict\"; define it under "
	  "rule_sets: or use one of: builtin" },
	{ T "routes:\n  - match: {path_regex: \"^/a(\"}\n",
	  ":3: routes[0].match.path_regex: value \"^/a(\" is not a valid regular "
	  "expression (Unmatched ( or \\(); fix the pattern (POSIX extended "
	  "syntax, e.g. ^/users/[0-9]+$)" },
	{ T "routes:\n  - match: {path_prefix: api}\n",
	  ":3: routes[0].match.path_prefix: value \"api\" is not a path prefix; "
	  "start with '/', no blanks, '?' or '#', at most 1024 characters (e.g. "
	  "/api/v1/)" },
	{ T "routes:\n  - match: {path_prefix: /a, path_regex: ^/a}\n",
	  ":3: routes[0].match: path_prefix and path_regex together; use one (a "
	  "regex can start with the prefix: ^/api/...)" },
	{ T "routes:\n  - match: {grpc_method: Get}\n",
	  ":3: routes[0].match: grpc_method without grpc_service; add "
	  "\"grpc_service: package.Service\"" },
	{ T "routes:\n  - match: {grpc_service: a.B, path_prefix: /a}\n",
	  ":3: routes[0].match: grpc_service/grpc_method together with a path "
	  "condition; a gRPC route is matched by its /service/method path "
	  "already, drop the path" },
	{ T "routes:\n  - match: {grpc_service: \"a/B\"}\n",
	  ":3: routes[0].match.grpc_service: value \"a/B\" is not a gRPC service "
	  "name; write package.Service (letters, digits, '_' and '.')" },
	{ T "routes:\n  - match: {}\n",
	  ":3: routes[0].match: no conditions; a route without conditions "
	  "matches everything, put its tenant and rules under \"default:\" "
	  "instead" },
	{ T "routes:\n  - match: {authority: \"*\"}\n",
	  ":3: routes[0].match: no conditions (authority \"*\" matches any); a "
	  "route that matches everything belongs under \"default:\"" },
	{ T "routes:\n  - name: r\n",
	  ":3: routes[0]: no \"match\"; say which requests the route takes, "
	  "e.g. \"match: {authority: api.example.com, path_prefix: /v1/}\"" },
	{ T "routes:\n  - name: r\n    match: {path_prefix: /a}\n"
	    "  - name: r\n    match: {path_prefix: /b}\n",
	  ":5: routes[1].name: duplicate route name (first on line 3); route "
	  "names are unique" },
	{ T "routes:\n  - name: default\n    match: {path_prefix: /a}\n",
	  ":3: routes[0].name: \"default\" is the name of the default route; "
	  "name this route differently" },
	{ T "routes:\n  - name: a\n    match: {authority: X.com, methods: [GET, "
	    "POST]}\n  - name: b\n    match: {methods: [POST, GET], authority: "
	    "x.com}\n",
	  ":6: routes[1].match: same conditions as route \"a\" (line 3), which "
	  "comes first, so this route can never match; merge them or make this "
	  "one differ" },
	{ T "routes:\n  - match: {authority: \"api.*.com\"}\n",
	  ":3: routes[0].match.authority: value \"api.*.com\": a wildcard may "
	  "only be a leading \"*.\" label (\"*.example.com\" matches every "
	  "subdomain) or \"*\" alone" },
	{ T "routes:\n  - match: {authority: \"x.com:99999\"}\n",
	  ":3: routes[0].match.authority: value \"x.com:99999\" is not an "
	  "authority; write a host name or address, optionally with :port "
	  "(api.example.com, *.example.com, 10.0.0.1:8080, [2001:db8::1]:443)" },
	{ T "routes:\n  - match: {authority: \"user@x.com\"}\n",
	  ":3: routes[0].match.authority: value \"user@x.com\" is not an "
	  "authority; write a host name or address, optionally with :port "
	  "(api.example.com, *.example.com, 10.0.0.1:8080, [2001:db8::1]:443)" },
	{ T "routes:\n  - match: {methods: get}\n",
	  ":3: routes[0].match.methods: value \"get\" is not a method; methods "
	  "are case-sensitive tokens, in uppercase (GET, POST, ...)" },
	{ T "routes:\n  - match: {methods: [GET, GET]}\n",
	  ":3: routes[0].match.methods: method \"GET\" is listed twice; keep "
	  "one" },
	{ T "routes:\n  - match: {path_prefix: /a}\n    tenat: acme\n",
	  ":4: routes[0].tenat: unknown key; did you mean \"tenant\"?" },
	/* default */
	{ "tenants:\n  a: {kms: pkcs11, kek: k}\n  b: {kms: pkcs11, kek: k}\n",
	  ": default: missing; with several tenants say who owns requests no "
	  "route matches: add \"default: {tenant: a, rules: builtin}\"" },
	{ "tenants:\n  a: {kms: pkcs11, kek: k}\n  b: {kms: pkcs11, kek: k}\n"
	  "default: {rules: builtin}\n",
	  ":4: default: no tenant; with several tenants say which one owns "
	  "requests no route matches, e.g. \"tenant: a\"" },
	{ T "rule_sets: {x: {}, y: {}}\n",
	  ": default.rules: missing; with several rule sets say which one "
	  "applies to requests no route matches, e.g. \"rules: x\"" },
	{ T "default: {tenant: acme, rules: nope}\n",
	  ":2: default.rules: unknown rule set \"nope\"; define it under "
	  "rule_sets: or use one of: builtin" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ecases) / sizeof(*ecases); i++) {
		char err[1024], want[1200];
		const char *text = ecases[i].text;
		errno = 0;
		struct policy *p = policy_load_text("test.yaml", text,
						    strlen(text), err,
						    sizeof(err));
		snprintf(want, sizeof(want), "test.yaml%s", ecases[i].want);
		if (p || strcmp(err, want) != 0)
			print_error("input:\n%s\nwant: %s\ngot:  %s\n", text,
				    want, p ? "(loaded)" : err);
		assert_null(p);
		assert_string_equal(err, want);
		assert_int_equal(errno, EINVAL);
		assert_null(strchr(err, '\n'));
	}
}

/* Too many JSON matcher states, counted with the inherited paths. */
static void test_json_state_cap(void **state)
{
	(void)state;
	char text[8192];
	size_t o = (size_t)snprintf(text, sizeof(text),
				    T "rule_sets:\n  r:\n    json:\n");
	for (int i = 0; i < 8; i++) {
		o += (size_t)snprintf(text + o, sizeof(text) - o, "      \"$");
		for (int k = 0; k < 32; k++)
			o += (size_t)snprintf(text + o, sizeof(text) - o,
					      ".%c", 'a' + i);
		o += (size_t)snprintf(text + o, sizeof(text) - o, "\": seal\n");
	}
	char err[512];
	struct policy *p = policy_load_text("test.yaml", text, o, err,
					    sizeof(err));
	assert_null(p);
	assert_string_equal(err,
			    "test.yaml:5: rule_sets.r.json: the JSON paths (with "
			    "inherited ones) need 264 matcher states, at most 256 "
			    "are allowed; use fewer or shorter paths ($..name "
			    "covers any depth)");
}

/* A long value is cut in the message, and control bytes escaped. */
static void test_error_sanitized(void **state)
{
	(void)state;
	char text[600], err[512];
	int n = snprintf(text, sizeof(text),
			 "tenants:\n  acme: {kms: \"%0200d\\x01\", kek: k}\n", 7);
	struct policy *p = policy_load_text("t.yaml", text, (size_t)n, err,
					    sizeof(err));
	assert_null(p);
	assert_non_null(strstr(err, "...\" is not a KMS backend name"));
	assert_true(strlen(err) < 300);
	/* a tiny buffer still gets a terminated prefix */
	char small[12];
	p = policy_load_text("t.yaml", text, (size_t)n, small, sizeof(small));
	assert_null(p);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	/* and none at all is fine */
	assert_null(policy_load_text("t.yaml", text, (size_t)n, NULL, 0));
}

/* ---- semantics ----------------------------------------------------------------- */

static void test_extends(void **state)
{
	(void)state;
	static const char text[] =
		T
		"rule_sets:\n"
		"  base:\n"
		"    headers: {x-a: seal, x-b: hash, \"x-p-*\": redact}\n"
		"    cookies: {s: tokenize}\n"
		"    json: {\"$.a\": seal}\n"
		"    detectors: {email: tokenize, card: seal}\n"
		"  mid:\n"
		"    extends: base\n"
		"    headers: {x-b: keep, x-c: seal}\n"
		"    detectors: {email: off}\n"
		"  top:\n"
		"    extends: mid\n"
		"    headers: {\"x-p-*\": seal}\n"
		"    json: {\"$.b\": redact}\n"
		"    detectors: {card: {action: hash, in: [body], name: pan}}\n"
		"default: {rules: top}\n";
	struct policy *p = load(text);
	const struct policy_route *r = policy_default_route(p);
	assert_string_equal(policy_route_rules_name(r), "top");
	static const struct {
		const char *h;
		uint8_t a;
		const char *rule;
	} t[] = {
		{ "x-a", POLICY_ACTION_SEAL, "base/header/x-a" },
		{ "x-b", POLICY_ACTION_KEEP, "mid/header/x-b" },
		{ "x-c", POLICY_ACTION_SEAL, "mid/header/x-c" },
		{ "x-p-1", POLICY_ACTION_SEAL, "top/header/x-p-*" },
		{ "x-d", POLICY_ACTION_NONE, NULL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct policy_verdict v =
			policy_header_action(r, t[i].h, strlen(t[i].h));
		assert_int_equal(v.action, t[i].a);
		if (t[i].rule)
			assert_string_equal(v.rule, t[i].rule);
	}
	const struct policy_rules *rs = r->rules;
	assert_int_equal(rs->det[POLICY_DET_EMAIL].action, POLICY_ACTION_NONE);
	assert_int_equal(rs->det[POLICY_DET_CARD].action, POLICY_ACTION_HASH);
	assert_string_equal(rs->det[POLICY_DET_CARD].rule, "pan");
	assert_int_equal(rs->det_mask[POL_SCOPE_BODY], 1u << POLICY_DET_CARD);
	assert_int_equal(rs->det_mask[POL_SCOPE_HEADERS], 0);
	assert_int_equal(rs->cookies.nexact, 1);
	assert_int_equal(rs->json.nstates, 4); /* $.a and $.b: 2 each */
	/* the parent is unchanged */
	const char *body = "{\"a\":\"1\",\"b\":\"2\"}";
	struct policy_span sp[4];
	int n = policy_scan_body(r, "application/json", 16, body, strlen(body),
				 sp, 4, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(sp[0].rule, "base/json/$.a");
	assert_string_equal(sp[1].rule, "top/json/$.b");
	assert_int_equal(sp[1].action, POLICY_ACTION_REDACT);
	policy_free(p);
}

static void test_rule_names(void **state)
{
	(void)state;
	char err[256];
	struct policy *p = policy_builtin(err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(policy_rule_name(p, POLICY_RULE_LIMIT_SPANS),
			    "limit/spans");
	assert_string_equal(policy_rule_name(p, POLICY_RULE_LIMIT_BODY),
			    "limit/body_bytes");
	assert_string_equal(policy_rule_name(p, POLICY_RULE_LIMIT_DEPTH),
			    "limit/json_depth");
	assert_string_equal(policy_rule_name(p, POLICY_RULE_LIMIT_MALFORMED),
			    "limit/malformed_json");
	assert_null(policy_rule_name(p, policy_rule_count(p)));
	for (unsigned i = 0; i < policy_rule_count(p); i++)
		for (unsigned k = 0; k < i; k++)
			assert_string_not_equal(policy_rule_name(p, i),
						policy_rule_name(p, k));
	struct policy_verdict v = policy_header_action(
		policy_default_route(p), "x-api-key", 9);
	assert_string_equal(policy_rule_name(p, v.rule_id),
			    "builtin/header/x-api-key");
	policy_free(p);
}

static void test_deny(void **state)
{
	(void)state;
	static const char text[] = "deny:\n  status: 451\n  body: \"gone\\n\"\n"
				   "  details: sealtap.legal\n" T;
	char err[256];
	struct policy *p = policy_load_text("d.yaml", text, strlen(text), err,
					    sizeof(err));
	if (!p)
		print_error("%s\n", err);
	assert_non_null(p);
	const struct policy_deny *d = policy_deny_response(p);
	assert_int_equal(d->status, 451);
	assert_string_equal(d->body, "gone\n");
	assert_string_equal(d->details, "sealtap.legal");
	policy_free(p);
}

/* ---- the built-in policy, the sample, the docs ------------------------------------ */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *b = malloc(1 << 20);
	size_t n = fread(b, 1, (1 << 20) - 1, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

static void test_builtin(void **state)
{
	(void)state;
	char err[256];
	struct policy *p = policy_builtin(err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(policy_path(p), "<builtin>");
	assert_int_equal(policy_tenant_count(p), 1);
	const struct policy_tenant *t = policy_tenant_at(p, 0);
	assert_string_equal(t->name, "default");
	assert_string_equal(t->kms, "pkcs11");
	assert_string_equal(t->kek, "sealtap-dev-kek");
	assert_ptr_equal(policy_tenant_find(p, "default"), t);
	assert_null(policy_tenant_find(p, "nope"));
	assert_null(policy_tenant_at(p, 1));
	assert_int_equal(policy_route_count(p), 0);
	const struct policy_route *r = policy_default_route(p);
	assert_string_equal(policy_route_name(r), "default");
	assert_string_equal(policy_route_rules_name(r), "builtin");
	static const char *const sealed[] = {
		"authorization", "proxy-authorization", "cookie", "set-cookie",
		"x-api-key",     "x-auth-token",
	};
	for (size_t i = 0; i < sizeof(sealed) / sizeof(*sealed); i++)
		assert_int_equal(policy_header_action(r, sealed[i],
						      strlen(sealed[i]))
					 .action,
				 POLICY_ACTION_SEAL);
	assert_int_equal(r->rules->det[POLICY_DET_CARD].action,
			 POLICY_ACTION_SEAL);
	assert_int_equal(r->rules->det[POLICY_DET_EMAIL].action,
			 POLICY_ACTION_TOKENIZE);
	assert_int_equal(r->rules->det_mask[POL_SCOPE_PATH] &
				 (1u << POLICY_DET_CARD),
			 1u << POLICY_DET_CARD);
	assert_int_equal(r->rules->det_mask[POL_SCOPE_BODY] &
				 (1u << POLICY_DET_CARD),
			 1u << POLICY_DET_CARD);
	assert_int_equal(p->limits.body_bytes, 64u << 10);
	assert_int_equal(p->limits.json_depth, 64);
	assert_int_equal(p->limits.unscanned, POLICY_ACTION_REDACT);
	const struct policy_deny *dn = policy_deny_response(p);
	assert_int_equal(dn->status, 403);
	assert_string_equal(dn->body, "request denied by policy\n");
	assert_string_equal(dn->details, "sealtap_denied");
	policy_free(p);

	/* docs/policy.md shows the built-in policy verbatim */
	char *doc = slurp(DOCS);
	if (!strstr(doc, policy_builtin_text()))
		print_error("docs/policy.md does not contain the built-in "
			    "policy text:\n%s\n", policy_builtin_text());
	assert_non_null(strstr(doc, policy_builtin_text()));
	free(doc);
}

static void test_sample(void **state)
{
	(void)state;
	char err[512];
	struct policy *p = policy_load(SAMPLE, err, sizeof(err));
	if (!p)
		print_error("%s\n", err);
	assert_non_null(p);
	assert_int_equal(policy_tenant_count(p), 2);
	assert_string_equal(policy_tenant_find(p, "globex")->kms, "gcp");
	assert_int_equal(policy_deny_response(p)->status, 403);
	assert_string_equal(policy_deny_response(p)->details, "sealtap_denied");
	static const struct {
		const char *auth, *path, *method, *ct, *route, *tenant, *rules;
	} t[] = {
		{ "shop.acme.example", "/checkout/pay", "POST", NULL, "checkout",
		  "acme", "payments" },
		{ "shop.acme.example", "/checkout/pay", "GET", NULL, "shop",
		  "acme", "storefront" },
		{ "shop.acme.example", "/orders/77/status", "GET", NULL,
		  "order-lookup", "acme", "storefront" },
		{ "api.globex.example", "/globex.ledger.v1.Ledger/Transfer",
		  "POST", "application/grpc", "partner-ledger-transfer",
		  "globex", "payments" },
		{ "api.globex.example", "/globex.ledger.v1.Ledger/Balance",
		  "POST", "application/grpc", "partner-ledger", "globex",
		  "partner" },
		{ "elsewhere.example", "/", "GET", NULL, "default", "acme",
		  "storefront" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		struct policy_request rq = {
			.authority = t[i].auth, .authority_len = strlen(t[i].auth),
			.path = t[i].path, .path_len = strlen(t[i].path),
			.method = t[i].method, .method_len = strlen(t[i].method),
			.content_type = t[i].ct,
			.content_type_len = t[i].ct ? strlen(t[i].ct) : 0,
		};
		const struct policy_route *r = policy_route_for(p, &rq);
		assert_string_equal(policy_route_name(r), t[i].route);
		assert_string_equal(policy_route_tenant(r)->name, t[i].tenant);
		assert_string_equal(policy_route_rules_name(r), t[i].rules);
	}
	/* storefront: session cookie tokenized, theme kept, others sealed by
	 * the inherited cookie rule */
	struct policy_request rq = { .authority = "www.acme.example",
				     .authority_len = 16 };
	const struct policy_route *r = policy_route_for(p, &rq);
	const char *ck = "session=s1; theme=dark; cart=c1";
	struct policy_span sp[4];
	int n = policy_scan_value(r, "cookie", 6, ck, strlen(ck), sp, 4, NULL);
	assert_int_equal(n, 2);
	assert_int_equal(sp[0].action, POLICY_ACTION_TOKENIZE);
	assert_string_equal(sp[0].rule, "storefront/cookie/session");
	assert_int_equal(sp[1].action, POLICY_ACTION_SEAL);
	assert_string_equal(sp[1].rule, "builtin/header/cookie");
	policy_free(p);
}

/* ---- files ------------------------------------------------------------------------------- */

static void test_files(void **state)
{
	(void)state;
	char err[512];
	errno = 0;
	assert_null(policy_load("/nonexistent/policy.yaml", err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_string_equal(err, "/nonexistent/policy.yaml: cannot open: No "
				 "such file or directory; check the path and "
				 "its permissions");
	assert_null(policy_load("/tmp", err, sizeof(err)));
	assert_int_equal(errno, EISDIR);
	assert_string_equal(err, "/tmp: is a directory; give the path of a "
				 "YAML policy file");
	assert_null(policy_load(NULL, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);

	char path[] = "/tmp/sealtap-pol-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, POLICY_MAX_FILE + 1), 0);
	close(fd);
	assert_null(policy_load(path, err, sizeof(err)));
	assert_int_equal(errno, EFBIG);
	assert_non_null(strstr(err, "file is larger than 4MiB"));
	/* a file with an error names its own path */
	fd = open(path, O_WRONLY | O_TRUNC);
	const char *bad = T "routes: 5\n";
	assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
	close(fd);
	assert_null(policy_load(path, err, sizeof(err)));
	char want[256];
	snprintf(want, sizeof(want),
		 "%s:2: routes: expected a list of routes, found a scalar; "
		 "start each route with \"- name: ...\"", path);
	assert_string_equal(err, want);
	unlink(path);
}

/* ---- allocation failures ------------------------------------------------------------------ */

/* Every allocation of a load of the sample policy fails in turn: each
 * attempt must fail cleanly ("out of memory", nothing leaked: run under
 * ASan) until the budget is large enough to succeed. */
static void test_alloc_failure(void **state)
{
	(void)state;
	char *text = slurp(SAMPLE);
	size_t len = strlen(text);
	char err[512];
	struct policy *p = NULL;
	long budget;
	for (budget = 0; budget < 100000 && !p; budget++) {
		alloc_budget = budget;
		errno = 0;
		p = policy_load_text("sample.yaml", text, len, err, sizeof(err));
		if (!p) {
			if (strcmp(err, "sample.yaml: out of memory") != 0)
				print_error("budget %ld: %s\n", budget, err);
			assert_string_equal(err, "sample.yaml: out of memory");
			assert_int_equal(errno, ENOMEM);
		}
	}
	alloc_budget = -1;
	assert_non_null(p);
	assert_true(budget > 3);
	policy_free(p);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_json_state_cap),
		cmocka_unit_test(test_error_sanitized),
		cmocka_unit_test(test_extends),
		cmocka_unit_test(test_rule_names),
		cmocka_unit_test(test_deny),
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_alloc_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
