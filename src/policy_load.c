/* Policy loader: YAML policy file -> compiled, immutable lookup structures
 * (policy_priv.h), validated entirely before anything uses them.
 *
 * The file is read with libyaml's document API. Scalars are taken as text
 * (YAML 1.1 typing is never applied: "off" is the word off). Every mapping
 * is checked for unknown keys (with a did-you-mean), wrong types and
 * duplicate keys (libyaml accepts those silently).
 *
 * Order of work: limits, tenants, rule sets (parsed raw, then "extends"
 * resolved and each set compiled: name tables, JSON path NFA, detector
 * masks), the default route, routes (regexes compiled, conditions checked,
 * sorted into match order). The built-in rule set "builtin" is parsed from
 * the built-in policy text into every policy, so files can extend it.
 *
 * Errors are one line, "file:line: key: what is wrong with which value;
 * the fix", the same shape as config.c. Everything goes into a fresh
 * struct policy; on any error it is freed whole and NULL returned, so a
 * caller never sees a half-applied policy.
 *
 * Memory: the policy owns one arena (strings, tables, routes); regexes are
 * the only separately owned objects (regfree() in policy_free()). Load-time
 * scratch (raw rules) lives in a second arena dropped at the end of the load.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "policy_priv.h"
#include "sealtap/common.h"

/* ---- the built-in policy ------------------------------------------------- */

/* Kept in step with docs/policy.md "Defaults" (tests compare them). */
static const char builtin_yaml[] =
	"# sealtap built-in policy: used when no policy file is given.\n"
	"# Its rule set \"builtin\" is part of every policy: extend it\n"
	"# (extends: builtin) or use it in a route (rules: builtin).\n"
	"version: 1\n"
	"tenants:\n"
	"  default:\n"
	"    kms: pkcs11\n"
	"    kek: sealtap-dev-kek\n"
	"rule_sets:\n"
	"  builtin:\n"
	"    description: credentials and common personal data\n"
	"    headers:\n"
	"      authorization: seal\n"
	"      proxy-authorization: seal\n"
	"      cookie: seal\n"
	"      set-cookie: seal\n"
	"      x-api-key: seal\n"
	"      x-auth-token: seal\n"
	"      x-goog-api-key: seal\n"
	"      x-amz-security-token: seal\n"
	"      x-csrf-token: seal\n"
	"      x-xsrf-token: seal\n"
	"      x-forwarded-authorization: seal\n"
	"    query:\n"
	"      access_token: seal\n"
	"      id_token: seal\n"
	"      refresh_token: seal\n"
	"      client_secret: seal\n"
	"      api_key: seal\n"
	"      apikey: seal\n"
	"      password: seal\n"
	"      accessToken: seal\n"
	"      idToken: seal\n"
	"      refreshToken: seal\n"
	"      clientSecret: seal\n"
	"      apiKey: seal\n"
	"    form:\n"
	"      password: seal\n"
	"      client_secret: seal\n"
	"      access_token: seal\n"
	"      refresh_token: seal\n"
	"      id_token: seal\n"
	"      api_key: seal\n"
	"      accessToken: seal\n"
	"      idToken: seal\n"
	"      refreshToken: seal\n"
	"      clientSecret: seal\n"
	"    json:\n"
	"      \"$..password\": seal\n"
	"      \"$..client_secret\": seal\n"
	"      \"$..access_token\": seal\n"
	"      \"$..refresh_token\": seal\n"
	"      \"$..id_token\": seal\n"
	"      \"$..accessToken\": seal\n"
	"      \"$..idToken\": seal\n"
	"      \"$..refreshToken\": seal\n"
	"      \"$..clientSecret\": seal\n"
	"      \"$..api_key\": seal\n"
	"      \"$..apiKey\": seal\n"
	"    detectors:\n"
	"      card: seal\n"
	"      email: tokenize\n"
	"      ssn: seal\n"
	"      iban: seal\n"
	"      jwt: seal\n"
	"      bearer: seal\n"
	"      api_key: seal\n"
	"default:\n"
	"  tenant: default\n"
	"  rules: builtin\n";

#define BUILTIN_NAME "<builtin>"
#define BUILTIN_SET "builtin"

const char *policy_builtin_text(void)
{
	return builtin_yaml;
}

/* ---- bounds ------------------------------------------------------------------ */

#define MAX_TENANTS 1024u
#define MAX_SETS 1024u
#define MAX_ROUTES 4096u
#define MAX_ENTRIES 4096u /* rules of one kind in one set */
#define MAX_RULES 60000u  /* rule names in a policy (ids are 16-bit) */
#define MAX_KEK 1024u
#define MAX_PATH_PREFIX 1024u
#define MAX_REGEX 1024u
#define BODY_BYTES_MAX (64u << 20)

/* ---- arena ------------------------------------------------------------------- */

struct pol_arena {
	struct pol_arena *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

static void *arena_zalloc(struct pol_arena **head, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	struct pol_arena *a = *head;
	if (!a || a->cap - a->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		a = malloc(sizeof(*a) + cap);
		if (!a)
			return NULL;
		a->next = *head;
		a->used = 0;
		a->cap = cap;
		*head = a;
	}
	void *p = a->data + a->used;
	a->used += n;
	memset(p, 0, n);
	return p;
}

static void arena_free(struct pol_arena *a)
{
	while (a) {
		struct pol_arena *n = a->next;
		free(a);
		a = n;
	}
}

/* ---- load context ------------------------------------------------------------ */

enum { L_HEADERS, L_COOKIES, L_QUERY, L_FORM, L_JSON, L_NKINDS };

static const char *const list_keys[L_NKINDS] = {
	"headers", "cookies", "query", "form", "json",
};
static const char *const list_kind[L_NKINDS] = {
	"header", "cookie", "query", "form", "json",
};

struct raw_entry {
	const char *key;  /* as matched: lowercase header, prefix without '*' */
	const char *rule; /* rule name */
	unsigned line;
	uint16_t klen;
	uint16_t rule_id;
	uint8_t action;
	uint8_t scopes; /* detectors */
	bool prefix;
};

struct raw_set {
	const char *name;
	const char *file;
	const char *extends;
	unsigned line, ext_line, json_line;
	struct raw_entry *own[L_NKINDS];
	unsigned nown[L_NKINDS];
	struct raw_entry det[POLICY_DET_COUNT];
	bool det_given[POLICY_DET_COUNT];
	struct raw_entry *eff[L_NKINDS];
	unsigned neff[L_NKINDS];
	struct raw_entry eff_det[POLICY_DET_COUNT];
	int state; /* 0 new, 1 resolving, 2 resolved */
	struct policy_rules *out;
};

struct lctx {
	const char *file; /* name in errors */
	const char *top;  /* the file being loaded (out of memory is not the
			     fault of the part being read) */
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	struct policy *p;
	struct pol_arena *tmp; /* load-time scratch */
	bool builtin;          /* loading the built-in text itself */
	struct raw_set *sets;
	unsigned nsets, nuser_sets;
	/* rule names: ids, and a hash set for uniqueness */
	const char **names;
	unsigned *name_lines;
	unsigned nnames, capnames;
	uint32_t *ntab;
	uint32_t ntab_mask;
	/* route match signatures, for duplicate detection */
	const char **sigs;
	/* default route */
	const struct policy_tenant *def_tenant;
	const struct policy_rules *def_rules;
};

/* ---- error lines --------------------------------------------------------------- */

/* Copies |s| (|n| bytes) for an error line: quotes, backslashes and control
 * bytes escaped, long values cut with "...". */
static void sanitize(const char *s, size_t n, char *out, size_t outlen)
{
	const size_t cut = 60;
	size_t o = 0, i;
	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	for (i = 0; i < n && i < cut; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		size_t k = 0;
		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
		} else {
			esc[k++] = (char)c;
		}
		if (o + k + 4 > outlen)
			break;
		memcpy(out + o, esc, k);
		o += k;
	}
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

#define Q(name, s) char name[128]; sanitize((s), strlen(s), name, sizeof(name))

/* "a.b" into |out| (cut if too long: it only names a key in a message). */
static void kpath(char *out, size_t n, const char *a, const char *b)
{
	if (snprintf(out, n, "%s.%s", a, b) >= (int)n)
		memcpy(out + n - 4, "...", 4);
}

/* Writes "file:line: key: <fmt>" to the error buffer; |line| 0 drops the
 * line, |key| NULL the key. Returns -EINVAL. */
static int __attribute__((format(printf, 4, 5)))
report(struct lctx *c, unsigned line, const char *key, const char *fmt, ...)
{
	if (!c->err || c->errlen == 0)
		return -EINVAL;
	size_t n = 0;
	int w;
	if (line)
		w = snprintf(c->err, c->errlen, "%s:%u: ", c->file, line);
	else
		w = snprintf(c->err, c->errlen, "%s: ", c->file);
	if (w > 0)
		n = (size_t)w < c->errlen ? (size_t)w : c->errlen - 1;
	if (key) {
		w = snprintf(c->err + n, c->errlen - n, "%s: ", key);
		if (w > 0)
			n = (size_t)w < c->errlen - n ? n + (size_t)w
						      : c->errlen - 1;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int oom(struct lctx *c)
{
	const char *f = c->file;
	c->file = c->top ? c->top : f;
	report(c, 0, NULL, "out of memory");
	c->file = f;
	return -ENOMEM;
}

/* Optimal string alignment distance, as in config.c. */
static unsigned edit_distance(const char *a, const char *b)
{
	enum { MAXL = 64 };
	size_t la = strlen(a), lb = strlen(b);
	if (la >= MAXL || lb >= MAXL)
		return 1000;
	unsigned d[MAXL + 1][MAXL + 1];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			v = ST_MIN(v, d[i - 1][j] + 1);
			v = ST_MIN(v, d[i][j - 1] + 1);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1])
				v = ST_MIN(v, d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

static unsigned typo_budget(size_t len)
{
	return (unsigned)ST_MAX(1, ST_MIN(3, len / 3));
}

/* The candidate closest to |s| within the typo budget, or NULL. */
static const char *closest(const char *s, const char *const *cands,
			   unsigned n)
{
	const char *best = NULL;
	unsigned bestd = typo_budget(strlen(s)) + 1;
	for (unsigned i = 0; i < n; i++) {
		unsigned d = edit_distance(s, cands[i]);
		if (d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	return best;
}

/* "a, b, c" from |cands| into |buf|. */
static const char *join(const char *const *cands, unsigned n, char *buf,
			size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		int w = snprintf(buf + o, len - o, "%s%s", o ? ", " : "",
				 cands[i]);
		if (w < 0 || (size_t)w >= len - o)
			break;
		o += (size_t)w;
	}
	return buf;
}

/* ---- YAML nodes ------------------------------------------------------------------- */

static yaml_node_t *node(struct lctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

static unsigned line_of(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.line + 1;
}

static const char *kind_of(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a scalar";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = scalar(n);
	return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static bool has_nul(const yaml_node_t *n)
{
	return strlen(scalar(n)) != n->data.scalar.length;
}

#define FOR_PAIRS(m, p)                                                        \
	for (yaml_node_pair_t *p = (m)->data.mapping.pairs.start;              \
	     p < (m)->data.mapping.pairs.top; p++)

static unsigned map_size(const yaml_node_t *m)
{
	return (unsigned)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
}

/* |v| must be a mapping (|what| describes what it should hold). */
static int want_map(struct lctx *c, yaml_node_t *v, const char *kp,
		    const char *what)
{
	if (v->type == YAML_MAPPING_NODE)
		return 0;
	return report(c, line_of(v), kp,
		      "expected a mapping of %s, found %s; put them on their "
		      "own lines below \"%s:\", indented", what, kind_of(v), kp);
}

/* Checks every key of mapping |m|: a plain name, one of |allowed| (NULL-
 * terminated), not repeated. */
static int check_keys(struct lctx *c, yaml_node_t *m, const char *kp,
		      const char *const *allowed)
{
	unsigned na = 0;
	while (allowed[na])
		na++;
	FOR_PAIRS(m, p) {
		yaml_node_t *k = node(c, p->key);
		if (k->type != YAML_SCALAR_NODE)
			return report(c, line_of(k), kp,
				      "a key is %s; keys are plain names",
				      kind_of(k));
		if (has_nul(k))
			return report(c, line_of(k), kp,
				      "a key holds a NUL byte; remove the "
				      "\"\\0\"");
		const char *s = scalar(k);
		unsigned i;
		for (i = 0; i < na; i++)
			if (strcmp(s, allowed[i]) == 0)
				break;
		char full[256];
		Q(qs, s);
		snprintf(full, sizeof(full), "%s%s%s", kp ? kp : "",
			 kp ? "." : "", qs);
		if (i == na) {
			const char *best = closest(s, allowed, na);
			char list[512];
			if (best)
				return report(c, line_of(k), full,
					      "unknown key; did you mean "
					      "\"%s\"?", best);
			return report(c, line_of(k), full,
				      "unknown key; keys here are %s",
				      join(allowed, na, list, sizeof(list)));
		}
		for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p;
		     q++) {
			yaml_node_t *k2 = node(c, q->key);
			if (strcmp(scalar(k2), s) == 0)
				return report(c, line_of(k), full,
					      "duplicate key (first on line "
					      "%u); keep one of them",
					      line_of(k2));
		}
	}
	return 0;
}

/* Value of key |key| in mapping |m| (keys already checked), or NULL. */
static yaml_node_t *get(struct lctx *c, yaml_node_t *m, const char *key)
{
	FOR_PAIRS(m, p) {
		yaml_node_t *k = node(c, p->key);
		if (strcmp(scalar(k), key) == 0)
			return node(c, p->value);
	}
	return NULL;
}

/* |v| must be one non-empty scalar; its text in *|out|. */
static int want_scalar(struct lctx *c, yaml_node_t *v, const char *kp,
		       const char **out)
{
	if (v->type != YAML_SCALAR_NODE)
		return report(c, line_of(v), kp,
			      "expected a single value, found %s; write it on "
			      "one line as \"key: value\"", kind_of(v));
	if (is_null(v) || !*scalar(v))
		return report(c, line_of(v), kp,
			      "no value given; write a value or remove the "
			      "key");
	if (has_nul(v))
		return report(c, line_of(v), kp,
			      "value holds a NUL byte; remove the \"\\0\"");
	*out = scalar(v);
	return 0;
}

static char *adup(struct lctx *c, const char *s, size_t n)
{
	char *d = arena_zalloc(&c->p->arena, n + 1);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* ---- shapes --------------------------------------------------------------------- */

static bool is_ident(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int ident(struct lctx *c, unsigned line, const char *kp,
		 const char *what, const char *s)
{
	if (is_ident(s))
		return 0;
	Q(q, s);
	return report(c, line, kp,
		      "%s \"%s\" is not a valid name; use 1-64 letters, digits, "
		      "'_', '.' or '-', starting with a letter or digit",
		      what, q);
}

/* ---- actions ---------------------------------------------------------------------- */

enum {
	ALLOW_FIELD = 1,  /* keep .. deny */
	ALLOW_DET = 2,    /* off, tokenize .. deny */
	ALLOW_UNSCAN = 3, /* keep, seal, redact */
};

static const char *const field_actions[] = {
	"seal", "tokenize", "hash", "redact", "keep", "deny", NULL,
};
static const char *const det_actions[] = {
	"seal", "tokenize", "hash", "redact", "deny", "off", NULL,
};
static const char *const unscan_actions[] = { "redact", "seal", "keep", NULL };

static int action_of(const char *s)
{
	for (int a = POLICY_ACTION_KEEP; a <= POLICY_ACTION_DENY; a++)
		if (strcmp(s, policy_action_name((enum policy_action)a)) == 0)
			return a;
	return strcmp(s, "off") == 0 ? POLICY_ACTION_NONE : -1;
}

static int parse_action(struct lctx *c, yaml_node_t *v, const char *kp,
			int allow, uint8_t *out)
{
	const char *s;
	int rc = want_scalar(c, v, kp, &s);
	if (rc)
		return rc;
	const char *const *list = allow == ALLOW_FIELD ? field_actions
				: allow == ALLOW_DET  ? det_actions
						      : unscan_actions;
	unsigned n = 0;
	while (list[n])
		n++;
	int a = action_of(s);
	bool ok = false;
	for (unsigned i = 0; i < n; i++)
		ok = ok || strcmp(list[i], s) == 0;
	if (a >= 0 && ok) {
		*out = (uint8_t)a;
		return 0;
	}
	Q(q, s);
	char l[160];
	join(list, n, l, sizeof(l));
	if (allow == ALLOW_DET && a == POLICY_ACTION_KEEP)
		return report(c, line_of(v), kp,
			      "value \"keep\" is not a detector action; use "
			      "off to turn the detector off");
	const char *best = closest(s, list, n);
	if (best)
		return report(c, line_of(v), kp,
			      "value \"%s\" is not an action here; use one of "
			      "%s (did you mean \"%s\"?)", q, l, best);
	return report(c, line_of(v), kp,
		      "value \"%s\" is not an action here; use one of %s", q,
		      l);
}

/* ---- rule names -------------------------------------------------------------------- */

static int names_grow(struct lctx *c)
{
	unsigned cap = c->capnames ? c->capnames * 2 : 64;
	const char **n = realloc(c->names, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	c->names = n;
	unsigned *l = realloc(c->name_lines, cap * sizeof(*l));
	if (!l)
		return -ENOMEM;
	c->name_lines = l;
	c->capnames = cap;
	/* Rebuild the hash set at twice the capacity (load <= 1/2). */
	uint32_t mask = cap * 2 - 1;
	uint32_t *t = calloc((size_t)mask + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (unsigned i = 0; i < c->nnames; i++) {
		uint32_t h = st_name_hash((const uint8_t *)c->names[i],
					   strlen(c->names[i]), false);
		while (t[h & mask])
			h++;
		t[h & mask] = i + 1;
	}
	free(c->ntab);
	c->ntab = t;
	c->ntab_mask = mask;
	return 0;
}

/* Registers rule name |name| (copied) seen on |line|; its id in *|id|.
 * Names are unique in a policy so a record names exactly one rule. */
static int rule_name(struct lctx *c, const char *name, unsigned line,
		     const char *kp, uint16_t *id, const char **stored)
{
	size_t n = strlen(name);
	uint32_t h = st_name_hash((const uint8_t *)name, n, false);
	if (c->ntab) {
		for (uint32_t k = h;; k++) {
			uint32_t s = c->ntab[k & c->ntab_mask];
			if (!s)
				break;
			if (strcmp(c->names[s - 1], name) == 0) {
				Q(q, name);
				return report(c, line, kp,
					      "rule name \"%s\" is already used "
					      "(line %u); give this rule another "
					      "name", q, c->name_lines[s - 1]);
			}
		}
	}
	if (c->nnames >= MAX_RULES)
		return report(c, line, kp,
			      "more than %u rules in the policy; merge rules "
			      "(prefixes, detectors) or split the policy",
			      MAX_RULES);
	if (c->nnames == c->capnames && names_grow(c))
		return oom(c);
	char *d = adup(c, name, n);
	if (!d)
		return oom(c);
	c->names[c->nnames] = d;
	c->name_lines[c->nnames] = line;
	for (uint32_t k = h;; k++) {
		if (!c->ntab[k & c->ntab_mask]) {
			c->ntab[k & c->ntab_mask] = c->nnames + 1;
			break;
		}
	}
	*id = (uint16_t)c->nnames++;
	*stored = d;
	return 0;
}

/* A rule name from the file: printable, no quotes or backslashes (it is
 * written into records). */
static int check_rule_name(struct lctx *c, yaml_node_t *v, const char *kp,
			   const char **out)
{
	const char *s;
	int rc = want_scalar(c, v, kp, &s);
	if (rc)
		return rc;
	size_t n = strlen(s);
	bool ok = n <= 255;
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\';
	if (!ok) {
		Q(q, s);
		return report(c, line_of(v), kp,
			      "value \"%s\" is not a valid rule name; use up "
			      "to 255 printable characters without '\"' or "
			      "'\\'", q);
	}
	*out = s;
	return 0;
}

/* ---- rule lists -------------------------------------------------------------------- */

/* Checks and normalises the key of a rule of kind |kind| into |e|
 * (key, klen, prefix). */
static int entry_key(struct lctx *c, int kind, yaml_node_t *k, const char *kp,
		     struct raw_entry *e)
{
	const char *s = scalar(k);
	size_t n = strlen(s);
	Q(q, s);
	if (has_nul(k) || n == 0)
		return report(c, line_of(k), kp,
			      "a name is empty or holds a NUL byte; write the "
			      "name");
	if (kind == L_JSON) {
		struct pol_jstep_src st[POL_JSON_STEPS_MAX];
		char buf[POL_JSON_PATH_MAX];
		const char *why;
		size_t where;
		if (pol_json_path_parse(s, n, st, POL_JSON_STEPS_MAX, buf,
					sizeof(buf), &why, &where) < 0)
			return report(c, line_of(k), kp,
				      "JSON path \"%s\" is not valid at "
				      "character %zu: %s; write paths like "
				      "$.a.b, $.a[*].b, $.a[0], $..ssn, "
				      "$[\"odd name\"]", q, where + 1, why);
		e->key = adup(c, s, n);
		e->klen = (uint16_t)n;
		return e->key ? 0 : oom(c);
	}
	bool prefix = s[n - 1] == '*';
	size_t kl = prefix ? n - 1 : n;
	if (kl > POL_NAME_MAX)
		return report(c, line_of(k), kp,
			      "name \"%s\" is longer than 255 bytes; shorten "
			      "it or use a prefix", q);
	char buf[POL_NAME_MAX + 1];
	for (size_t i = 0; i < kl; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool ok;
		if (ch == '*')
			return report(c, line_of(k), kp,
				      "name \"%s\": '*' may only end a name "
				      "(a prefix match, e.g. \"x-secret-*\"), "
				      "or stand alone for every name", q);
		if (kind == L_HEADERS)
			ok = is_tchar(ch) || (i == 0 && ch == ':');
		else if (kind == L_COOKIES)
			ok = is_tchar(ch);
		else
			ok = ch >= 0x20 && ch != 0x7f && ch != '&' &&
			     ch != '=' && ch != '#';
		if (!ok) {
			const char *what = kind == L_HEADERS
				? "header names are tokens (letters, digits, "
				  "!#$%&'*+-.^_`|~), pseudo-headers start "
				  "with ':'"
				: kind == L_COOKIES
				? "cookie names are tokens (letters, digits, "
				  "!#$%&'*+-.^_`|~)"
				: "write the decoded name, without '&', '=' or "
				  "'#'";
			return report(c, line_of(k), kp,
				      "name \"%s\" has the character %s%c%s; "
				      "%s", q, ch >= 0x20 && ch < 0x7f ? "'" : "",
				      ch >= 0x20 && ch < 0x7f ? ch : '?',
				      ch >= 0x20 && ch < 0x7f ? "'" : "", what);
		}
		buf[i] = kind == L_HEADERS ? (char)tolower(ch) : (char)ch;
	}
	e->key = adup(c, buf, kl);
	e->klen = (uint16_t)kl;
	e->prefix = prefix;
	return e->key ? 0 : oom(c);
}

static bool same_key(const struct raw_entry *a, const struct raw_entry *b)
{
	return a->klen == b->klen && a->prefix == b->prefix &&
	       memcmp(a->key, b->key, a->klen) == 0;
}

/* Auto rule name: "<set>/<kind>/<key as written>", with characters that
 * would need escaping in a record replaced by '_'. */
static void auto_name(char *out, size_t len, const char *set, const char *kind,
		      const char *key)
{
	int w = snprintf(out, len, "%s/%s/%s", set, kind, key);
	size_t n = w < 0 ? 0 : ST_MIN((size_t)w, len - 1);
	for (size_t i = 0; i < n; i++)
		if (out[i] < 0x20 || out[i] >= 0x7f || out[i] == '"' ||
		    out[i] == '\\')
			out[i] = '_';
}

static const char *const entry_keys[] = { "action", "name", NULL };

/* "name: action" or "name: {action: ..., name: ...}" for every pair of
 * mapping |m| (list |kind| of set |s|). */
static int parse_list(struct lctx *c, struct raw_set *s, int kind,
		      yaml_node_t *m, const char *kp)
{
	if (is_null(m))
		return 0;
	int rc = want_map(c, m, kp, "names to actions");
	if (rc)
		return rc;
	unsigned n = map_size(m);
	if (n > MAX_ENTRIES)
		return report(c, line_of(m), kp,
			      "%u rules; at most %u are allowed, use prefixes "
			      "or split the set", n, MAX_ENTRIES);
	s->own[kind] = arena_zalloc(&c->tmp, (n ? n : 1) * sizeof(struct raw_entry));
	if (!s->own[kind])
		return oom(c);
	if (kind == L_JSON)
		s->json_line = line_of(m);
	FOR_PAIRS(m, p) {
		yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
		struct raw_entry *e = &s->own[kind][s->nown[kind]];
		char ekp[256];
		if (k->type != YAML_SCALAR_NODE)
			return report(c, line_of(k), kp,
				      "a name is %s; write a plain name",
				      kind_of(k));
		Q(qk, scalar(k));
		kpath(ekp, sizeof(ekp), kp, qk);
		if ((rc = entry_key(c, kind, k, ekp, e)))
			return rc;
		e->line = line_of(k);
		for (unsigned i = 0; i < s->nown[kind]; i++)
			if (same_key(&s->own[kind][i], e))
				return report(c, e->line, ekp,
					      "duplicate rule (first on line "
					      "%u)%s; keep one of them",
					      s->own[kind][i].line,
					      kind == L_HEADERS
						      ? " (header names are "
							"case-insensitive)"
						      : "");
		const char *given = NULL;
		yaml_node_t *av = v;
		if (v->type == YAML_MAPPING_NODE) {
			if ((rc = check_keys(c, v, ekp, entry_keys)))
				return rc;
			av = get(c, v, "action");
			if (!av)
				return report(c, line_of(v), ekp,
					      "no action; add \"action: seal\" "
					      "(or tokenize, hash, redact, "
					      "keep, deny)");
			yaml_node_t *nv = get(c, v, "name");
			if (nv && (rc = check_rule_name(c, nv, ekp, &given)))
				return rc;
		}
		if ((rc = parse_action(c, av, ekp, ALLOW_FIELD, &e->action)))
			return rc;
		char an[512];
		if (!given) {
			auto_name(an, sizeof(an), s->name, list_kind[kind],
				  scalar(k));
			given = an;
		}
		if ((rc = rule_name(c, given, e->line, ekp, &e->rule_id,
				    &e->rule)))
			return rc;
		s->nown[kind]++;
	}
	return 0;
}

static const char *const det_keys[] = {
	"card", "email", "ssn", "iban", "jwt", "bearer", "api_key", NULL,
};
static const char *const det_entry_keys[] = { "action", "in", "name", NULL };
static const char *const scope_names[] = { "headers", "path", "body", NULL };

static int parse_scopes(struct lctx *c, yaml_node_t *v, const char *kp,
			uint8_t *out)
{
	*out = 0;
	bool seq = v->type == YAML_SEQUENCE_NODE;
	if (!seq && v->type != YAML_SCALAR_NODE)
		return report(c, line_of(v), kp,
			      "expected a list of places, found %s; write e.g. "
			      "[headers, path, body]", kind_of(v));
	unsigned n = seq ? (unsigned)(v->data.sequence.items.top -
				      v->data.sequence.items.start)
			 : 1;
	for (unsigned i = 0; i < n; i++) {
		yaml_node_t *it = seq ? node(c, v->data.sequence.items.start[i])
				      : v;
		const char *s;
		int rc = want_scalar(c, it, kp, &s);
		if (rc)
			return rc;
		unsigned k;
		for (k = 0; scope_names[k]; k++)
			if (strcmp(s, scope_names[k]) == 0)
				break;
		if (!scope_names[k]) {
			Q(q, s);
			const char *best = closest(s, scope_names, 3);
			return report(c, line_of(it), kp,
				      "value \"%s\" is not a place; use headers, "
				      "path or body%s%s%s", q,
				      best ? " (did you mean \"" : "",
				      best ? best : "", best ? "\"?)" : "");
		}
		*out |= (uint8_t)(1u << k);
	}
	if (!*out)
		return report(c, line_of(v), kp,
			      "the list is empty; name at least one of headers, "
			      "path, body, or set the detector to off");
	return 0;
}

static int parse_detectors(struct lctx *c, struct raw_set *s, yaml_node_t *m,
			   const char *kp)
{
	if (is_null(m))
		return 0;
	int rc = want_map(c, m, kp, "detectors to actions");
	if (rc || (rc = check_keys(c, m, kp, det_keys)))
		return rc;
	FOR_PAIRS(m, p) {
		yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
		unsigned d;
		for (d = 0; d < POLICY_DET_COUNT; d++)
			if (strcmp(scalar(k), det_keys[d]) == 0)
				break;
		struct raw_entry *e = &s->det[d];
		char ekp[256];
		snprintf(ekp, sizeof(ekp), "%s.%s", kp, det_keys[d]);
		e->line = line_of(k);
		e->scopes = POL_SCOPE_ALL;
		const char *given = NULL;
		yaml_node_t *av = v;
		if (v->type == YAML_MAPPING_NODE) {
			if ((rc = check_keys(c, v, ekp, det_entry_keys)))
				return rc;
			av = get(c, v, "action");
			if (!av)
				return report(c, line_of(v), ekp,
					      "no action; add \"action: seal\" "
					      "(or tokenize, hash, redact, "
					      "deny, off)");
			yaml_node_t *iv = get(c, v, "in");
			char ikp[280];
			snprintf(ikp, sizeof(ikp), "%s.in", ekp);
			if (iv && (rc = parse_scopes(c, iv, ikp, &e->scopes)))
				return rc;
			yaml_node_t *nv = get(c, v, "name");
			if (nv && (rc = check_rule_name(c, nv, ekp, &given)))
				return rc;
		}
		if ((rc = parse_action(c, av, ekp, ALLOW_DET, &e->action)))
			return rc;
		char an[512];
		if (!given) {
			auto_name(an, sizeof(an), s->name, "detector",
				  det_keys[d]);
			given = an;
		}
		if ((rc = rule_name(c, given, e->line, ekp, &e->rule_id,
				    &e->rule)))
			return rc;
		s->det_given[d] = true;
	}
	return 0;
}

static const char *const set_keys[] = {
	"description", "extends", "headers", "cookies", "query",
	"form",        "json",    "detectors", NULL,
};

static int parse_set(struct lctx *c, const char *name, unsigned line,
		     yaml_node_t *v)
{
	char kp[128];
	snprintf(kp, sizeof(kp), "rule_sets.%s", name);
	struct raw_set *s = &c->sets[c->nsets];
	memset(s, 0, sizeof(*s));
	s->name = adup(c, name, strlen(name));
	if (!s->name)
		return oom(c);
	s->file = c->file;
	s->line = line;
	c->nsets++;
	if (is_null(v))
		return 0;
	int rc = want_map(c, v, kp, "rule kinds");
	if (rc || (rc = check_keys(c, v, kp, set_keys)))
		return rc;
	yaml_node_t *x;
	if ((x = get(c, v, "description"))) {
		const char *d;
		char dkp[160];
		snprintf(dkp, sizeof(dkp), "%s.description", kp);
		if ((rc = want_scalar(c, x, dkp, &d)))
			return rc;
	}
	if ((x = get(c, v, "extends"))) {
		const char *e;
		char ekp[160];
		snprintf(ekp, sizeof(ekp), "%s.extends", kp);
		if ((rc = want_scalar(c, x, ekp, &e)))
			return rc;
		if (!(s->extends = adup(c, e, strlen(e))))
			return oom(c);
		s->ext_line = line_of(x);
	}
	for (int k = 0; k < L_NKINDS; k++) {
		if (!(x = get(c, v, list_keys[k])))
			continue;
		char lkp[160];
		snprintf(lkp, sizeof(lkp), "%s.%s", kp, list_keys[k]);
		if ((rc = parse_list(c, s, k, x, lkp)))
			return rc;
	}
	if ((x = get(c, v, "detectors"))) {
		char dkp[160];
		snprintf(dkp, sizeof(dkp), "%s.detectors", kp);
		if ((rc = parse_detectors(c, s, x, dkp)))
			return rc;
	}
	return 0;
}

static struct raw_set *find_set(struct lctx *c, const char *name)
{
	for (unsigned i = 0; i < c->nsets; i++)
		if (strcmp(c->sets[i].name, name) == 0)
			return &c->sets[i];
	return NULL;
}

static int unknown_ref(struct lctx *c, unsigned line, const char *kp,
		       const char *what, const char *where, const char *name,
		       const char *const *cands, unsigned n)
{
	Q(q, name);
	char list[512];
	const char *best = closest(name, cands, n);
	if (best)
		return report(c, line, kp,
			      "unknown %s \"%s\"; did you mean \"%s\"?", what, q,
			      best);
	return report(c, line, kp,
		      "unknown %s \"%s\"; define it under %s or use one of: %s",
		      what, q, where, join(cands, n, list, sizeof(list)));
}

static int unknown_set(struct lctx *c, unsigned line, const char *kp,
		       const char *name)
{
	const char *cands[MAX_SETS + 1];
	for (unsigned i = 0; i < c->nsets; i++)
		cands[i] = c->sets[i].name;
	return unknown_ref(c, line, kp, "rule set", "rule_sets:", name, cands,
			   c->nsets);
}

/* Effective rules of |s|: its parent's (resolved first), then its own; an
 * own rule replaces the parent's rule for the same name. */
static int resolve(struct lctx *c, struct raw_set *s)
{
	if (s->state == 2)
		return 0;
	char kp[160];
	snprintf(kp, sizeof(kp), "rule_sets.%s.extends", s->name);
	if (s->state == 1) {
		char chain[256];
		size_t o = 0;
		int w = snprintf(chain, sizeof(chain), "%s", s->name);
		o = w > 0 ? (size_t)w : 0;
		for (struct raw_set *t = find_set(c, s->extends); t && o < 200;
		     t = t->extends ? find_set(c, t->extends) : NULL) {
			w = snprintf(chain + o, sizeof(chain) - o, " -> %s",
				     t->name);
			o += w > 0 ? (size_t)w : 0;
			if (t == s)
				break;
		}
		return report(c, s->ext_line, kp,
			      "rule sets extend each other in a cycle (%s); "
			      "remove one of the extends", chain);
	}
	s->state = 1;
	struct raw_set *parent = NULL;
	int rc;
	if (s->extends) {
		const char *saved = c->file;
		c->file = s->file;
		parent = find_set(c, s->extends);
		if (!parent)
			return unknown_set(c, s->ext_line, kp, s->extends);
		c->file = saved;
		if ((rc = resolve(c, parent)))
			return rc;
	}
	for (int k = 0; k < L_NKINDS; k++) {
		unsigned pn = parent ? parent->neff[k] : 0;
		unsigned n = pn + s->nown[k];
		if (n > MAX_ENTRIES)
			return report(c, s->line, kp,
				      "%u %s rules with the inherited ones; at "
				      "most %u are allowed", n, list_kind[k],
				      MAX_ENTRIES);
		s->eff[k] = arena_zalloc(&c->tmp,
					 (n ? n : 1) * sizeof(struct raw_entry));
		if (!s->eff[k])
			return oom(c);
		if (pn)
			memcpy(s->eff[k], parent->eff[k], pn * sizeof(*s->eff[k]));
		unsigned m = pn;
		for (unsigned i = 0; i < s->nown[k]; i++) {
			unsigned j;
			for (j = 0; j < pn; j++)
				if (same_key(&s->eff[k][j], &s->own[k][i]))
					break;
			if (j < pn)
				s->eff[k][j] = s->own[k][i];
			else
				s->eff[k][m++] = s->own[k][i];
		}
		s->neff[k] = m;
	}
	for (unsigned d = 0; d < POLICY_DET_COUNT; d++) {
		if (s->det_given[d])
			s->eff_det[d] = s->det[d];
		else if (parent)
			s->eff_det[d] = parent->eff_det[d];
	}
	s->state = 2;
	return 0;
}

/* ---- compiling a set -------------------------------------------------------------- */

static struct pol_name_rule mk_rule(const struct raw_entry *e)
{
	return (struct pol_name_rule){
		.name = e->key, .rule = e->rule, .len = e->klen,
		.rule_id = e->rule_id, .action = e->action,
	};
}

static int build_names(struct lctx *c, struct pol_names *t,
		       const struct raw_entry *e, unsigned n, bool ci)
{
	t->ci = ci;
	unsigned ne = 0, np = 0;
	for (unsigned i = 0; i < n; i++)
		ne += !e[i].prefix;
	np = n - ne;
	if (ne) {
		uint32_t slots = 4;
		while (slots < ne * 2)
			slots *= 2;
		t->exact = arena_zalloc(&c->p->arena, ne * sizeof(*t->exact));
		t->slots = arena_zalloc(&c->p->arena, slots * sizeof(*t->slots));
		if (!t->exact || !t->slots)
			return oom(c);
		t->mask = slots - 1;
		for (unsigned i = 0; i < n; i++) {
			if (e[i].prefix)
				continue;
			t->exact[t->nexact] = mk_rule(&e[i]);
			uint32_t h = st_name_hash((const uint8_t *)e[i].key,
						   e[i].klen, ci);
			while (t->slots[h & t->mask])
				h++;
			t->slots[h & t->mask] = ++t->nexact;
		}
	}
	if (np) {
		t->prefix = arena_zalloc(&c->p->arena, np * sizeof(*t->prefix));
		if (!t->prefix)
			return oom(c);
		/* Longest first (insertion sort: sets are small, and equal
		 * lengths keep file order). */
		for (unsigned i = 0; i < n; i++) {
			if (!e[i].prefix)
				continue;
			struct pol_name_rule r = mk_rule(&e[i]);
			unsigned j = t->nprefix++;
			while (j > 0 && t->prefix[j - 1].len < r.len) {
				t->prefix[j] = t->prefix[j - 1];
				j--;
			}
			t->prefix[j] = r;
		}
	}
	return 0;
}

static int compile_json(struct lctx *c, const struct raw_set *s,
			struct pol_json *j)
{
	const struct raw_entry *e = s->eff[L_JSON];
	unsigned n = s->neff[L_JSON], total = 0;
	struct pol_jstep_src st[POL_JSON_STEPS_MAX];
	char buf[POL_JSON_PATH_MAX];
	const char *why;
	size_t where;
	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		int k = pol_json_path_parse(e[i].key, e[i].klen, st,
					    POL_JSON_STEPS_MAX, buf, sizeof(buf),
					    &why, &where);
		total += (unsigned)k + 1;
	}
	if (total > POL_JSON_STATES) {
		char kp[160];
		snprintf(kp, sizeof(kp), "rule_sets.%s.json", s->name);
		return report(c, s->json_line, kp,
			      "the JSON paths (with inherited ones) need %u "
			      "matcher states, at most %u are allowed; use fewer "
			      "or shorter paths ($..name covers any depth)",
			      total, POL_JSON_STATES);
	}
	j->st = arena_zalloc(&c->p->arena, total * sizeof(*j->st));
	if (!j->st)
		return oom(c);
	unsigned base = 0;
	for (unsigned i = 0; i < n; i++) {
		int k = pol_json_path_parse(e[i].key, e[i].klen, st,
					    POL_JSON_STEPS_MAX, buf, sizeof(buf),
					    &why, &where);
		j->start[base / 64] |= 1ull << (base % 64);
		for (int q = 0; q < k; q++) {
			struct pol_jstate *js = &j->st[base + (unsigned)q];
			js->kind = st[q].kind;
			js->index = st[q].index;
			js->len = st[q].len;
			if (st[q].name) {
				char *nm = adup(c, st[q].name, st[q].len);
				if (!nm)
					return oom(c);
				js->name = nm;
			}
		}
		unsigned a = base + (unsigned)k;
		j->st[a].kind = POL_J_ACCEPT;
		j->st[a].action = e[i].action;
		j->st[a].rule_id = e[i].rule_id;
		j->st[a].rule = e[i].rule;
		j->accept[a / 64] |= 1ull << (a % 64);
		base = a + 1;
	}
	j->nstates = total;
	return 0;
}

static int compile_set(struct lctx *c, struct raw_set *s,
		       struct policy_rules *out)
{
	int rc;
	out->name = s->name;
	if ((rc = build_names(c, &out->headers, s->eff[L_HEADERS],
			      s->neff[L_HEADERS], true)) ||
	    (rc = build_names(c, &out->cookies, s->eff[L_COOKIES],
			      s->neff[L_COOKIES], false)) ||
	    (rc = build_names(c, &out->query, s->eff[L_QUERY],
			      s->neff[L_QUERY], false)) ||
	    (rc = build_names(c, &out->form, s->eff[L_FORM], s->neff[L_FORM],
			      false)) ||
	    (rc = compile_json(c, s, &out->json)))
		return rc;
	for (unsigned d = 0; d < POLICY_DET_COUNT; d++) {
		const struct raw_entry *e = &s->eff_det[d];
		out->det[d] = (struct pol_det){
			.rule = e->rule, .rule_id = e->rule_id,
			.action = e->action, .scopes = e->scopes,
		};
		if (e->action <= POLICY_ACTION_KEEP)
			continue;
		for (unsigned sc = 1; sc <= POL_SCOPE_ALL; sc++)
			if (sc & e->scopes)
				out->det_mask[sc] |= (uint8_t)(1u << d);
	}
	out->scans_bodies = out->json.nstates || s->neff[L_FORM] ||
			    out->det_mask[POL_SCOPE_BODY];
	s->out = out;
	return 0;
}

/* ---- top-level sections -------------------------------------------------------------- */

static const char *const top_keys[] = {
	"version", "limits", "tenants", "rule_sets", "routes", "default",
	"deny", NULL,
};
static const char *const deny_keys[] = { "status", "body", "details", NULL };
static const char *const limit_keys[] = {
	"body_bytes", "json_depth", "unscanned", NULL,
};
static const char *const tenant_keys[] = { "description", "kms", "kek", NULL };
static const char *const default_keys[] = {
	"description", "tenant", "rules", NULL,
};
static const char *const route_keys[] = {
	"name", "description", "match", "tenant", "rules", NULL,
};
static const char *const match_keys[] = {
	"authority", "path_prefix", "path_regex", "methods", "grpc_service",
	"grpc_method", NULL,
};

/* "64KiB", "1MiB", "4096": bytes. */
static int parse_size(struct lctx *c, yaml_node_t *v, const char *kp,
		      uint32_t *out)
{
	const char *s;
	int rc = want_scalar(c, v, kp, &s);
	if (rc)
		return rc;
	Q(q, s);
	char *end;
	if (!isdigit((unsigned char)s[0]))
		goto bad;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno)
		goto range;
	while (*end == ' ')
		end++;
	unsigned long long mul = 1;
	if (*end == '\0' || strcmp(end, "B") == 0)
		mul = 1;
	else if (strcmp(end, "KiB") == 0)
		mul = 1ull << 10;
	else if (strcmp(end, "MiB") == 0)
		mul = 1ull << 20;
	else
		goto bad;
	if (n > BODY_BYTES_MAX / mul)
		goto range;
	*out = (uint32_t)(n * mul);
	return 0;
bad:
	return report(c, line_of(v), kp,
		      "value \"%s\" is not a size; use bytes, KiB or MiB, e.g. "
		      "64KiB", q);
range:
	return report(c, line_of(v), kp,
		      "value \"%s\" is out of range [0, 64MiB]; use a size in "
		      "that range", q);
}

static int load_limits(struct lctx *c, yaml_node_t *v)
{
	struct policy *p = c->p;
	if (is_null(v))
		return 0;
	int rc = want_map(c, v, "limits", "limits");
	if (rc || (rc = check_keys(c, v, "limits", limit_keys)))
		return rc;
	yaml_node_t *x;
	if ((x = get(c, v, "body_bytes")) &&
	    (rc = parse_size(c, x, "limits.body_bytes", &p->limits.body_bytes)))
		return rc;
	if ((x = get(c, v, "json_depth"))) {
		const char *s;
		if ((rc = want_scalar(c, x, "limits.json_depth", &s)))
			return rc;
		char *end;
		errno = 0;
		unsigned long d = isdigit((unsigned char)s[0])
					  ? strtoul(s, &end, 10)
					  : 0;
		if (!isdigit((unsigned char)s[0]) || *end || errno || d < 1 ||
		    d > POL_JSON_DEPTH_MAX) {
			Q(q, s);
			return report(c, line_of(x), "limits.json_depth",
				      "value \"%s\" is out of range [1, %u]; use "
				      "an integer in that range", q,
				      POL_JSON_DEPTH_MAX);
		}
		p->limits.json_depth = (uint32_t)d;
	}
	if ((x = get(c, v, "unscanned")) &&
	    (rc = parse_action(c, x, "limits.unscanned", ALLOW_UNSCAN,
			       &p->limits.unscanned)))
		return rc;
	return 0;
}

#define DENY_BODY_MAX 4096u

/* ext_proc's answer to a denied request: an error status, a body of
 * printable text, details Envoy can log (no blanks). */
static int load_deny(struct lctx *c, yaml_node_t *v)
{
	struct policy_deny *d = &c->p->deny;
	if (is_null(v))
		return 0;
	int rc = want_map(c, v, "deny", "deny settings");
	if (rc || (rc = check_keys(c, v, "deny", deny_keys)))
		return rc;
	yaml_node_t *x;
	const char *s;
	if ((x = get(c, v, "status"))) {
		if ((rc = want_scalar(c, x, "deny.status", &s)))
			return rc;
		char *end;
		unsigned long st = isdigit((unsigned char)s[0])
					   ? strtoul(s, &end, 10)
					   : 0;
		if (!isdigit((unsigned char)s[0]) || *end || st < 400 ||
		    st > 599) {
			Q(q, s);
			return report(c, line_of(x), "deny.status",
				      "value \"%s\" is not an error status; use "
				      "an HTTP status from 400 to 599, e.g. 403",
				      q);
		}
		d->status = (uint32_t)st;
	}
	if ((x = get(c, v, "body"))) {
		if ((rc = want_scalar(c, x, "deny.body", &s)))
			return rc;
		size_t n = strlen(s);
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)s[i];
			if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch >= 0x7f)
				return report(c, line_of(x), "deny.body",
					      "byte %zu is not printable ASCII; "
					      "use text, tabs and newlines only",
					      i);
		}
		if (n > DENY_BODY_MAX)
			return report(c, line_of(x), "deny.body",
				      "%zu bytes is too long; keep it under "
				      "%u bytes", n, DENY_BODY_MAX);
		if (!(d->body = adup(c, s, n)))
			return oom(c);
	}
	if ((x = get(c, v, "details"))) {
		if ((rc = want_scalar(c, x, "deny.details", &s)) ||
		    (rc = ident(c, line_of(x), "deny.details", "details", s)))
			return rc;
		if (!(d->details = adup(c, s, strlen(s))))
			return oom(c);
	}
	return 0;
}

static bool kms_shape(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32 || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || isdigit((unsigned char)s[i]) ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static bool kek_shape(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MAX_KEK)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

static int load_tenants(struct lctx *c, yaml_node_t *v)
{
	struct policy *p = c->p;
	int rc;
	if (!v || is_null(v) ||
	    (v->type == YAML_MAPPING_NODE && map_size(v) == 0))
		return report(c, v ? line_of(v) : 0, "tenants",
			      "no tenants; define at least one, e.g. "
			      "\"tenants: {acme: {kms: pkcs11, kek: "
			      "acme-kek}}\"");
	if ((rc = want_map(c, v, "tenants", "tenant names to their keys")))
		return rc;
	unsigned n = map_size(v);
	if (n > MAX_TENANTS)
		return report(c, line_of(v), "tenants",
			      "%u tenants; at most %u are allowed", n,
			      MAX_TENANTS);
	p->tenants = arena_zalloc(&p->arena, n * sizeof(*p->tenants));
	if (!p->tenants)
		return oom(c);
	FOR_PAIRS(v, pr) {
		yaml_node_t *k = node(c, pr->key), *tv = node(c, pr->value);
		if (k->type != YAML_SCALAR_NODE || has_nul(k))
			return report(c, line_of(k), "tenants",
				      "a tenant name is %s; write a plain name",
				      kind_of(k));
		const char *name = scalar(k);
		char kp[128];
		Q(qn, name);
		kpath(kp, sizeof(kp), "tenants", qn);
		if ((rc = ident(c, line_of(k), kp, "tenant", name)))
			return rc;
		for (unsigned i = 0; i < p->ntenants; i++)
			if (strcmp(p->tenants[i].name, name) == 0)
				return report(c, line_of(k), kp,
					      "duplicate tenant; each tenant is "
					      "defined once");
		if ((rc = want_map(c, tv, kp, "kms and kek")) ||
		    (rc = check_keys(c, tv, kp, tenant_keys)))
			return rc;
		yaml_node_t *kms = get(c, tv, "kms"), *kek = get(c, tv, "kek");
		if (!kms || !kek)
			return report(c, line_of(tv), kp,
				      "no \"%s\"; a tenant names its KMS backend "
				      "and key-encryption key, e.g. \"kms: "
				      "pkcs11\" and \"kek: %s-kek\"",
				      kms ? "kek" : "kms", name);
		const char *ks, *es;
		char kkp[160];
		snprintf(kkp, sizeof(kkp), "%s.kms", kp);
		if ((rc = want_scalar(c, kms, kkp, &ks)))
			return rc;
		if (!kms_shape(ks)) {
			Q(q, ks);
			return report(c, line_of(kms), kkp,
				      "value \"%s\" is not a KMS backend name; "
				      "use lowercase letters, digits, '_' or "
				      "'-' (e.g. pkcs11, gcp)", q);
		}
		snprintf(kkp, sizeof(kkp), "%s.kek", kp);
		if ((rc = want_scalar(c, kek, kkp, &es)))
			return rc;
		if (!kek_shape(es)) {
			Q(q, es);
			return report(c, line_of(kek), kkp,
				      "value \"%s\" is not a key reference; use "
				      "1-%u printable characters without "
				      "blanks (a key label, PKCS#11 URI or KMS "
				      "resource name)", q, MAX_KEK);
		}
		yaml_node_t *d = get(c, tv, "description");
		const char *ds;
		snprintf(kkp, sizeof(kkp), "%s.description", kp);
		if (d && (rc = want_scalar(c, d, kkp, &ds)))
			return rc;
		struct policy_tenant *t = &p->tenants[p->ntenants];
		t->name = adup(c, name, strlen(name));
		t->kms = adup(c, ks, strlen(ks));
		t->kek = adup(c, es, strlen(es));
		if (!t->name || !t->kms || !t->kek)
			return oom(c);
		t->index = p->ntenants++;
	}
	return 0;
}

static int load_sets(struct lctx *c, yaml_node_t *v)
{
	unsigned n = v && !is_null(v) && v->type == YAML_MAPPING_NODE
			     ? map_size(v)
			     : 0;
	int rc;
	if (v && !is_null(v) &&
	    (rc = want_map(c, v, "rule_sets", "rule set names to rules")))
		return rc;
	if (n > MAX_SETS)
		return report(c, line_of(v), "rule_sets",
			      "%u rule sets; at most %u are allowed", n,
			      MAX_SETS);
	c->sets = arena_zalloc(&c->tmp, (n + 1) * sizeof(*c->sets));
	if (!c->sets)
		return oom(c);
	if (!n)
		return 0;
	FOR_PAIRS(v, pr) {
		yaml_node_t *k = node(c, pr->key);
		if (k->type != YAML_SCALAR_NODE || has_nul(k))
			return report(c, line_of(k), "rule_sets",
				      "a rule set name is %s; write a plain "
				      "name", kind_of(k));
		const char *name = scalar(k);
		char kp[128];
		Q(qn, name);
		kpath(kp, sizeof(kp), "rule_sets", qn);
		if ((rc = ident(c, line_of(k), kp, "rule set", name)))
			return rc;
		if (!c->builtin && strcmp(name, BUILTIN_SET) == 0)
			return report(c, line_of(k), kp,
				      "\"builtin\" is the name of the built-in "
				      "rule set; name yours differently and "
				      "use \"extends: builtin\" to build on it");
		struct raw_set *prev = find_set(c, name);
		if (prev)
			return report(c, line_of(k), kp,
				      "duplicate rule set (first on line %u); "
				      "merge the two", prev->line);
		if ((rc = parse_set(c, name, line_of(k), node(c, pr->value))))
			return rc;
	}
	c->nuser_sets = c->nsets;
	return 0;
}

/* Parses the "builtin" set of the built-in text into |c| (files never
 * define it; every policy has it). */
static int add_builtin_set(struct lctx *c)
{
	yaml_parser_t yp;
	yaml_document_t doc;
	int rc = -EINVAL;
	if (!yaml_parser_initialize(&yp))
		return oom(c);
	yaml_parser_set_input_string(&yp, (const unsigned char *)builtin_yaml,
				     sizeof(builtin_yaml) - 1);
	if (!yaml_parser_load(&yp, &doc)) {
		yaml_parser_delete(&yp);
		return report(c, 0, NULL, "built-in policy does not parse");
	}
	yaml_document_t *saved_doc = c->doc;
	const char *saved_file = c->file;
	c->doc = &doc;
	c->file = BUILTIN_NAME;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	yaml_node_t *sets = root ? get(c, root, "rule_sets") : NULL;
	yaml_node_t *b = sets ? get(c, sets, BUILTIN_SET) : NULL;
	if (b)
		rc = parse_set(c, BUILTIN_SET, line_of(b), b);
	c->doc = saved_doc;
	if (rc == 0)
		c->file = saved_file;
	yaml_document_delete(&doc);
	yaml_parser_delete(&yp);
	return rc;
}

static int compile_sets(struct lctx *c)
{
	struct policy *p = c->p;
	int rc;
	p->sets = arena_zalloc(&p->arena, (c->nsets ? c->nsets : 1) *
						  sizeof(*p->sets));
	if (!p->sets)
		return oom(c);
	for (unsigned i = 0; i < c->nsets; i++)
		if ((rc = resolve(c, &c->sets[i])))
			return rc;
	for (unsigned i = 0; i < c->nsets; i++) {
		const char *saved = c->file;
		c->file = c->sets[i].file;
		rc = compile_set(c, &c->sets[i], &p->sets[p->nsets]);
		if (rc)
			return rc;
		c->file = saved;
		p->nsets++;
	}
	return 0;
}

static const struct policy_tenant *find_tenant(const struct policy *p,
					       const char *name)
{
	for (unsigned i = 0; i < p->ntenants; i++)
		if (strcmp(p->tenants[i].name, name) == 0)
			return &p->tenants[i];
	return NULL;
}

/* The tenant named by scalar |v|. */
static int ref_tenant(struct lctx *c, yaml_node_t *v, const char *kp,
		      const struct policy_tenant **out)
{
	const char *s;
	int rc = want_scalar(c, v, kp, &s);
	if (rc)
		return rc;
	if ((*out = find_tenant(c->p, s)))
		return 0;
	const char *cands[MAX_TENANTS];
	for (unsigned i = 0; i < c->p->ntenants; i++)
		cands[i] = c->p->tenants[i].name;
	return unknown_ref(c, line_of(v), kp, "tenant", "tenants:", s, cands,
			   c->p->ntenants);
}

static int ref_rules(struct lctx *c, yaml_node_t *v, const char *kp,
		     const struct policy_rules **out)
{
	const char *s;
	int rc = want_scalar(c, v, kp, &s);
	if (rc)
		return rc;
	struct raw_set *r = find_set(c, s);
	if (!r)
		return unknown_set(c, line_of(v), kp, s);
	*out = r->out;
	return 0;
}

static int load_default(struct lctx *c, yaml_node_t *v)
{
	struct policy *p = c->p;
	int rc;
	if (v && !is_null(v)) {
		if ((rc = want_map(c, v, "default", "tenant and rules")) ||
		    (rc = check_keys(c, v, "default", default_keys)))
			return rc;
		yaml_node_t *t = get(c, v, "tenant"), *r = get(c, v, "rules");
		yaml_node_t *d = get(c, v, "description");
		const char *ds;
		if (d && (rc = want_scalar(c, d, "default.description", &ds)))
			return rc;
		if (t && (rc = ref_tenant(c, t, "default.tenant",
					  &c->def_tenant)))
			return rc;
		if (r && (rc = ref_rules(c, r, "default.rules", &c->def_rules)))
			return rc;
		if (!t && p->ntenants > 1)
			return report(c, line_of(v), "default",
				      "no tenant; with several tenants say which "
				      "one owns requests no route matches, e.g. "
				      "\"tenant: %s\"", p->tenants[0].name);
	} else if (p->ntenants > 1) {
		return report(c, 0, "default",
			      "missing; with several tenants say who owns "
			      "requests no route matches: add \"default: "
			      "{tenant: %s, rules: builtin}\"",
			      p->tenants[0].name);
	}
	if (!c->def_tenant)
		c->def_tenant = &p->tenants[0];
	if (!c->def_rules) {
		/* One rule set in the file: it is the default; none: the
		 * built-in one; several: say which. */
		if (c->nuser_sets > 1 && !c->builtin)
			return report(c, v && !is_null(v) ? line_of(v) : 0,
				      "default.rules",
				      "missing; with several rule sets say which "
				      "one applies to requests no route matches, "
				      "e.g. \"rules: %s\"", c->sets[0].name);
		c->def_rules = c->nuser_sets == 1 ? c->sets[0].out
						  : find_set(c, BUILTIN_SET)->out;
	}
	p->def = (struct policy_route){
		.name = "default", .tenant = c->def_tenant,
		.rules = c->def_rules, .policy = p,
	};
	return 0;
}

/* ---- routes --------------------------------------------------------------------------- */

static int parse_authority(struct lctx *c, yaml_node_t *v, const char *kp,
			   struct policy_route *r)
{
	const char *s;
	int rc = want_scalar(c, v, kp, &s);
	if (rc)
		return rc;
	Q(q, s);
	size_t n = strlen(s);
	char h[256];
	if (n >= sizeof(h))
		return report(c, line_of(v), kp,
			      "value \"%s\" is longer than 255 characters; use "
			      "a host name, optionally with :port", q);
	for (size_t i = 0; i <= n; i++)
		h[i] = (char)tolower((unsigned char)s[i]);
	if (strcmp(h, "*") == 0)
		return 0; /* any authority */
	char *host = h;
	size_t hl = n;
	if (h[0] == '*') {
		if (h[1] != '.')
			goto wild;
		r->auth_kind = POL_AUTH_SUFFIX;
		host = h + 1; /* keeps the '.' */
		hl = n - 1;
	} else {
		r->auth_kind = POL_AUTH_EXACT;
	}
	if (strchr(host, '*'))
		goto wild;
	/* port */
	char *colon = NULL;
	if (host[0] == '[') {
		char *rb = strchr(host, ']');
		if (!rb)
			goto bad;
		if (rb[1] == ':')
			colon = rb + 1;
		else if (rb[1])
			goto bad;
	} else {
		colon = strchr(host, ':');
	}
	if (colon) {
		const char *port = colon + 1;
		size_t pl = strlen(port);
		unsigned long pv = 0;
		if (pl == 0 || pl > 5)
			goto bad;
		for (size_t i = 0; i < pl; i++) {
			if (!isdigit((unsigned char)port[i]))
				goto bad;
			pv = pv * 10 + (unsigned long)(port[i] - '0');
		}
		if (pv == 0 || pv > 65535)
			goto bad;
		if (!(r->port = adup(c, port, pl)))
			return oom(c);
		r->port_len = (uint8_t)pl;
		hl = (size_t)(colon - host);
	}
	if (hl > 1 && host[hl - 1] == '.')
		hl--;
	if (hl == 0 || (r->auth_kind == POL_AUTH_SUFFIX && hl < 2))
		goto bad;
	for (size_t i = 0; i < hl; i++) {
		char ch = host[i];
		bool ok = (ch >= 'a' && ch <= 'z') || isdigit((unsigned char)ch) ||
			  ch == '.' || ch == '-' ||
			  (host[0] == '[' && (ch == ':' || ch == '[' || ch == ']'));
		if (!ok)
			goto bad;
	}
	if (!(r->auth = adup(c, host, hl)))
		return oom(c);
	r->auth_len = (uint16_t)hl;
	return 0;
wild:
	return report(c, line_of(v), kp,
		      "value \"%s\": a wildcard may only be a leading \"*.\" "
		      "label (\"*.example.com\" matches every subdomain) or "
		      "\"*\" alone", q);
bad:
	return report(c, line_of(v), kp,
		      "value \"%s\" is not an authority; write a host name or "
		      "address, optionally with :port (api.example.com, "
		      "*.example.com, 10.0.0.1:8080, [2001:db8::1]:443)", q);
}

/* Literal prefix of an anchored ERE: the path must start with it before
 * regexec() is worth calling. Conservative: stops at the first special
 * character and drops a last literal that a quantifier may repeat zero
 * times; any '|' means no prefix. */
static size_t regex_prefix(const char *re, char *out, size_t cap)
{
	if (re[0] != '^' || strchr(re, '|'))
		return 0;
	size_t n = 0;
	const char *s = re + 1;
	while (*s && n < cap) {
		if (strchr(".[]()*+?{}^$", *s))
			break;
		if (*s == '\\') {
			if (s[1] && strchr(".[]()*+?{}|^$\\/", s[1])) {
				out[n++] = s[1];
				s += 2;
				continue;
			}
			break;
		}
		out[n++] = *s++;
	}
	if (n && (*s == '*' || *s == '?' || *s == '{'))
		n--;
	return n;
}

static bool path_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (size_t i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '?' ||
		    s[i] == '#')
			return false;
	return true;
}

static bool grpc_name_ok(const char *s, bool dots)
{
	if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; s[i]; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' ||
		      (dots && s[i] == '.')))
			return false;
	return strlen(s) <= 255;
}

static int parse_methods(struct lctx *c, yaml_node_t *v, const char *kp,
			 struct policy_route *r)
{
	bool seq = v->type == YAML_SEQUENCE_NODE;
	unsigned n = seq ? (unsigned)(v->data.sequence.items.top -
				      v->data.sequence.items.start)
			 : 1;
	if (n == 0 || n > POL_METHODS_MAX)
		return report(c, line_of(v), kp,
			      "%u methods; list 1 to %u, e.g. [GET, POST]", n,
			      POL_METHODS_MAX);
	for (unsigned i = 0; i < n; i++) {
		yaml_node_t *it = seq ? node(c, v->data.sequence.items.start[i])
				      : v;
		const char *s;
		int rc = want_scalar(c, it, kp, &s);
		if (rc)
			return rc;
		size_t l = strlen(s);
		bool ok = l > 0 && l <= 32;
		for (size_t k = 0; ok && k < l; k++)
			ok = is_tchar((unsigned char)s[k]) &&
			     !islower((unsigned char)s[k]);
		if (!ok) {
			Q(q, s);
			return report(c, line_of(it), kp,
				      "value \"%s\" is not a method; methods "
				      "are case-sensitive tokens, in uppercase "
				      "(GET, POST, ...)", q);
		}
		for (unsigned k = 0; k < r->nmethods; k++)
			if (strcmp(r->methods[k], s) == 0) {
				Q(q, s);
				return report(c, line_of(it), kp,
					      "method \"%s\" is listed twice; "
					      "keep one", q);
			}
		if (!(r->methods[r->nmethods] = adup(c, s, l)))
			return oom(c);
		r->method_len[r->nmethods++] = (uint8_t)l;
	}
	return 0;
}

static int parse_match(struct lctx *c, yaml_node_t *m, const char *kp,
		       struct policy_route *r, const char **sig)
{
	int rc;
	if ((rc = want_map(c, m, kp, "conditions")) ||
	    (rc = check_keys(c, m, kp, match_keys)))
		return rc;
	char k2[200];
	yaml_node_t *x;
	if (map_size(m) == 0)
		return report(c, line_of(m), kp,
			      "no conditions; a route without conditions "
			      "matches everything, put its tenant and rules "
			      "under \"default:\" instead");
	if ((x = get(c, m, "authority"))) {
		snprintf(k2, sizeof(k2), "%s.authority", kp);
		if ((rc = parse_authority(c, x, k2, r)))
			return rc;
	}
	if ((x = get(c, m, "methods"))) {
		snprintf(k2, sizeof(k2), "%s.methods", kp);
		if ((rc = parse_methods(c, x, k2, r)))
			return rc;
	}
	yaml_node_t *pp = get(c, m, "path_prefix"), *pr = get(c, m, "path_regex");
	yaml_node_t *gs = get(c, m, "grpc_service"), *gm = get(c, m, "grpc_method");
	if (pp && pr)
		return report(c, line_of(pr), kp,
			      "path_prefix and path_regex together; use one "
			      "(a regex can start with the prefix: ^/api/...)");
	if ((gs || gm) && (pp || pr))
		return report(c, line_of(gs ? gs : gm), kp,
			      "grpc_service/grpc_method together with a path "
			      "condition; a gRPC route is matched by its "
			      "/service/method path already, drop the path");
	if (gm && !gs)
		return report(c, line_of(gm), kp,
			      "grpc_method without grpc_service; add "
			      "\"grpc_service: package.Service\"");
	const char *src = "";
	char pbuf[MAX_PATH_PREFIX + 1];
	if (pp) {
		snprintf(k2, sizeof(k2), "%s.path_prefix", kp);
		const char *s;
		if ((rc = want_scalar(c, pp, k2, &s)))
			return rc;
		if (strlen(s) > MAX_PATH_PREFIX || !path_ok(s)) {
			Q(q, s);
			return report(c, line_of(pp), k2,
				      "value \"%s\" is not a path prefix; start "
				      "with '/', no blanks, '?' or '#', at most "
				      "%u characters (e.g. /api/v1/)", q,
				      MAX_PATH_PREFIX);
		}
		r->path_kind = POL_PATH_PREFIX;
		if (!(r->prefix = adup(c, s, strlen(s))))
			return oom(c);
		r->prefix_len = (uint32_t)strlen(s);
		src = s;
	} else if (pr) {
		snprintf(k2, sizeof(k2), "%s.path_regex", kp);
		const char *s;
		if ((rc = want_scalar(c, pr, k2, &s)))
			return rc;
		Q(q, s);
		if (strlen(s) > MAX_REGEX)
			return report(c, line_of(pr), k2,
				      "value \"%s\" is longer than %u "
				      "characters; simplify the pattern", q,
				      MAX_REGEX);
		regex_t *re = arena_zalloc(&c->p->arena, sizeof(*re));
		if (!re)
			return oom(c);
		int e = regcomp(re, s, REG_EXTENDED | REG_NOSUB);
		if (e) {
			char why[128];
			regerror(e, re, why, sizeof(why));
			return report(c, line_of(pr), k2,
				      "value \"%s\" is not a valid regular "
				      "expression (%s); fix the pattern (POSIX "
				      "extended syntax, e.g. ^/users/[0-9]+$)",
				      q, why);
		}
		r->re = re;
		r->path_kind = POL_PATH_REGEX;
		size_t pl = regex_prefix(s, pbuf, MAX_PATH_PREFIX);
		if (!(r->prefix = adup(c, pbuf, pl)))
			return oom(c);
		r->prefix_len = (uint32_t)pl;
		src = s;
	} else if (gs) {
		const char *svc, *meth = NULL;
		snprintf(k2, sizeof(k2), "%s.grpc_service", kp);
		if ((rc = want_scalar(c, gs, k2, &svc)))
			return rc;
		if (!grpc_name_ok(svc, true)) {
			Q(q, svc);
			return report(c, line_of(gs), k2,
				      "value \"%s\" is not a gRPC service name; "
				      "write package.Service (letters, digits, "
				      "'_' and '.')", q);
		}
		if (gm) {
			snprintf(k2, sizeof(k2), "%s.grpc_method", kp);
			if ((rc = want_scalar(c, gm, k2, &meth)))
				return rc;
			if (!grpc_name_ok(meth, false)) {
				Q(q, meth);
				return report(c, line_of(gm), k2,
					      "value \"%s\" is not a gRPC method "
					      "name; write the method alone "
					      "(letters, digits, '_')", q);
			}
		}
		int w = snprintf(pbuf, sizeof(pbuf), "/%s/%s", svc,
				 meth ? meth : "");
		r->path_kind = POL_PATH_GRPC;
		r->grpc_exact = meth != NULL;
		if (!(r->prefix = adup(c, pbuf, (size_t)w)))
			return oom(c);
		r->prefix_len = (uint32_t)w;
		src = r->prefix;
	}
	if (r->auth_kind == POL_AUTH_ANY && !r->port && !r->nmethods &&
	    r->path_kind == POL_PATH_ANY)
		return report(c, line_of(m), kp,
			      "no conditions (authority \"*\" matches any); a "
			      "route that matches everything belongs under "
			      "\"default:\"");
	/* Signature of the conditions, for "two routes, same conditions". */
	const char *ms[POL_METHODS_MAX];
	unsigned nm = r->nmethods;
	for (unsigned i = 0; i < nm; i++) {
		unsigned j = i;
		while (j > 0 && strcmp(ms[j - 1], r->methods[i]) > 0) {
			ms[j] = ms[j - 1];
			j--;
		}
		ms[j] = r->methods[i];
	}
	char sb[4096];
	int o = snprintf(sb, sizeof(sb), "%d|%.*s|%.*s|%d|%s|", r->auth_kind,
			 (int)r->auth_len, r->auth ? r->auth : "",
			 (int)r->port_len, r->port ? r->port : "", r->path_kind,
			 src);
	for (unsigned i = 0; i < nm && o > 0 && (size_t)o < sizeof(sb); i++)
		o += snprintf(sb + o, sizeof(sb) - (size_t)o, "%s,", ms[i]);
	*sig = arena_zalloc(&c->tmp, strlen(sb) + 1);
	if (!*sig)
		return oom(c);
	memcpy((char *)*sig, sb, strlen(sb));
	return 0;
}

static int route_cmp(const void *a, const void *b)
{
	const struct policy_route *x = a, *y = b;
	if (x->auth_kind != y->auth_kind)
		return x->auth_kind > y->auth_kind ? -1 : 1;
	unsigned lx = x->auth_len + x->port_len, ly = y->auth_len + y->port_len;
	if (lx != ly)
		return lx > ly ? -1 : 1;
	if (x->prefix_len != y->prefix_len)
		return x->prefix_len > y->prefix_len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int load_routes(struct lctx *c, yaml_node_t *v)
{
	struct policy *p = c->p;
	int rc;
	if (!v || is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return report(c, line_of(v), "routes",
			      "expected a list of routes, found %s; start each "
			      "route with \"- name: ...\"", kind_of(v));
	unsigned n = (unsigned)(v->data.sequence.items.top -
				v->data.sequence.items.start);
	if (n > MAX_ROUTES)
		return report(c, line_of(v), "routes",
			      "%u routes; at most %u are allowed", n,
			      MAX_ROUTES);
	p->routes = arena_zalloc(&p->arena, (n ? n : 1) * sizeof(*p->routes));
	c->sigs = arena_zalloc(&c->tmp, (n ? n : 1) * sizeof(*c->sigs));
	if (!p->routes || !c->sigs)
		return oom(c);
	for (unsigned i = 0; i < n; i++) {
		yaml_node_t *it = node(c, v->data.sequence.items.start[i]);
		char kp[64];
		snprintf(kp, sizeof(kp), "routes[%u]", i);
		if ((rc = want_map(c, it, kp, "route keys (name, match, tenant, "
					      "rules)")) ||
		    (rc = check_keys(c, it, kp, route_keys)))
			return rc;
		struct policy_route *r = &p->routes[p->nroutes++];
		r->policy = p;
		r->order = i;
		r->line = line_of(it);
		yaml_node_t *x;
		char k2[96];
		if ((x = get(c, it, "name"))) {
			const char *s;
			snprintf(k2, sizeof(k2), "%s.name", kp);
			if ((rc = want_scalar(c, x, k2, &s)) ||
			    (rc = ident(c, line_of(x), k2, "route", s)))
				return rc;
			if (strcmp(s, "default") == 0)
				return report(c, line_of(x), k2,
					      "\"default\" is the name of the "
					      "default route; name this route "
					      "differently");
			for (unsigned j = 0; j + 1 < p->nroutes; j++)
				if (strcmp(p->routes[j].name, s) == 0)
					return report(c, line_of(x), k2,
						      "duplicate route name "
						      "(first on line %u); "
						      "route names are unique",
						      p->routes[j].line);
			if (!(r->name = adup(c, s, strlen(s))))
				return oom(c);
		} else {
			char nm[32];
			snprintf(nm, sizeof(nm), "route-%u", i + 1);
			if (!(r->name = adup(c, nm, strlen(nm))))
				return oom(c);
		}
		if ((x = get(c, it, "description"))) {
			const char *s;
			snprintf(k2, sizeof(k2), "%s.description", kp);
			if ((rc = want_scalar(c, x, k2, &s)))
				return rc;
		}
		yaml_node_t *m = get(c, it, "match");
		if (!m)
			return report(c, line_of(it), kp,
				      "no \"match\"; say which requests the "
				      "route takes, e.g. \"match: {authority: "
				      "api.example.com, path_prefix: /v1/}\"");
		snprintf(k2, sizeof(k2), "%s.match", kp);
		if ((rc = parse_match(c, m, k2, r, &c->sigs[i])))
			return rc;
		r->tenant = c->def_tenant;
		r->rules = c->def_rules;
		if ((x = get(c, it, "tenant"))) {
			snprintf(k2, sizeof(k2), "%s.tenant", kp);
			if ((rc = ref_tenant(c, x, k2, &r->tenant)))
				return rc;
		}
		if ((x = get(c, it, "rules"))) {
			snprintf(k2, sizeof(k2), "%s.rules", kp);
			if ((rc = ref_rules(c, x, k2, &r->rules)))
				return rc;
		}
		for (unsigned j = 0; j < i; j++)
			if (strcmp(c->sigs[j], c->sigs[i]) == 0)
				return report(c, line_of(m), k2,
					      "same conditions as route \"%s\" "
					      "(line %u), which comes first, so "
					      "this route can never match; merge "
					      "them or make this one differ",
					      p->routes[j].name,
					      p->routes[j].line);
	}
	qsort(p->routes, p->nroutes, sizeof(*p->routes), route_cmp);
	return 0;
}

/* ---- the document ---------------------------------------------------------------------- */

static int load_doc(struct lctx *c)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	int rc;
	if (!root || is_null(root))
		return report(c, 0, NULL,
			      "the policy is empty; define at least tenants: "
			      "(see config/policy.yaml)");
	if (root->type != YAML_MAPPING_NODE)
		return report(c, line_of(root), NULL,
			      "the top level is %s; it must be a mapping with "
			      "tenants:, rule_sets:, routes:, default:",
			      kind_of(root));
	if ((rc = check_keys(c, root, NULL, top_keys)))
		return rc;
	yaml_node_t *x = get(c, root, "version");
	if (x) {
		const char *s;
		if ((rc = want_scalar(c, x, "version", &s)))
			return rc;
		if (strcmp(s, "1") != 0) {
			Q(q, s);
			return report(c, line_of(x), "version",
				      "value \"%s\" is not supported; this "
				      "sealtap reads policy version 1", q);
		}
	}
	if ((x = get(c, root, "limits")) && (rc = load_limits(c, x)))
		return rc;
	if ((x = get(c, root, "deny")) && (rc = load_deny(c, x)))
		return rc;
	if ((rc = load_tenants(c, get(c, root, "tenants"))))
		return rc;
	if ((rc = load_sets(c, get(c, root, "rule_sets"))))
		return rc;
	if (!c->builtin && (rc = add_builtin_set(c)))
		return rc;
	if (!find_set(c, BUILTIN_SET))
		return report(c, 0, NULL, "built-in rule set missing");
	if ((rc = compile_sets(c)) ||
	    (rc = load_default(c, get(c, root, "default"))) ||
	    (rc = load_routes(c, get(c, root, "routes"))))
		return rc;
	return 0;
}

static int yaml_error(struct lctx *c, const yaml_parser_t *yp,
		      const char *text, size_t len)
{
	const char *problem = yp->problem ? yp->problem : "unknown error";
	if (yp->error == YAML_MEMORY_ERROR)
		return oom(c);
	if (yp->error == YAML_READER_ERROR) {
		unsigned line = 1;
		for (size_t i = 0; i < yp->problem_offset && i < len; i++)
			line += text[i] == '\n';
		return report(c, line, NULL,
			      "not valid text: %s; save the file as UTF-8 text",
			      problem);
	}
	unsigned line = (unsigned)yp->problem_mark.line + 1;
	if (yp->context)
		return report(c, line, NULL,
			      "YAML syntax error: %s %s (from line %u); check "
			      "indentation (spaces, not tabs), quoting and the "
			      "\":\" after each key", problem, yp->context,
			      (unsigned)yp->context_mark.line + 1);
	return report(c, line, NULL,
		      "YAML syntax error: %s; check indentation (spaces, not "
		      "tabs), quoting and the \":\" after each key", problem);
}

static struct policy *load_text(const char *name, const char *text,
				size_t len, bool builtin, char *err,
				size_t errlen)
{
	yaml_parser_t yp;
	yaml_document_t doc;
	struct lctx c = { .file = name, .top = name, .err = err,
			  .errlen = errlen, .builtin = builtin };
	int rc = -ENOMEM;
	if (err && errlen)
		err[0] = '\0';
	struct policy *p = calloc(1, sizeof(*p));
	if (!p) {
		oom(&c);
		errno = ENOMEM;
		return NULL;
	}
	c.p = p;
	p->limits.body_bytes = 64u << 10;
	p->limits.json_depth = 64;
	p->limits.unscanned = POLICY_ACTION_REDACT;
	p->deny = (struct policy_deny){ 403, "request denied by policy\n",
					"sealtap_denied" };
	if (!(p->path = strdup(name)) || names_grow(&c)) {
		oom(&c);
		goto out;
	}
	static const char *const limit_names[] = {
		[POLICY_RULE_LIMIT_SPANS] = "limit/spans",
		[POLICY_RULE_LIMIT_BODY] = "limit/body_bytes",
		[POLICY_RULE_LIMIT_DEPTH] = "limit/json_depth",
		[POLICY_RULE_LIMIT_MALFORMED] = "limit/malformed_json",
		[POLICY_RULE_LIMIT_CHUNK] = "limit/chunk_boundary",
		[POLICY_RULE_LIMIT_COMPRESSED] = "limit/compressed",
		[POLICY_RULE_LIMIT_CHARSET] = "limit/charset",
	};
	for (unsigned i = 0; i < ST_ARRAY_SIZE(limit_names); i++) {
		uint16_t id;
		const char *s;
		if ((rc = rule_name(&c, limit_names[i], 0, NULL, &id, &s)))
			goto out;
	}
	if (!yaml_parser_initialize(&yp)) {
		rc = oom(&c);
		goto out;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	if (!yaml_parser_load(&yp, &doc)) {
		rc = yaml_error(&c, &yp, text, len);
		yaml_parser_delete(&yp);
		goto out;
	}
	c.doc = &doc;
	rc = load_doc(&c);
	bool empty = yaml_document_get_root_node(&doc) == NULL;
	yaml_document_delete(&doc);
	if (rc == 0 && !empty) {
		/* A second document would be ignored silently otherwise. */
		if (!yaml_parser_load(&yp, &doc)) {
			rc = yaml_error(&c, &yp, text, len);
		} else {
			if (yaml_document_get_root_node(&doc))
				rc = report(&c, (unsigned)doc.start_mark.line + 1,
					    NULL,
					    "a second YAML document starts "
					    "here; a policy file holds one, "
					    "remove the \"---\" and merge");
			yaml_document_delete(&doc);
		}
	}
	yaml_parser_delete(&yp);
	if (rc == 0) {
		p->rule_names = arena_zalloc(&p->arena,
					     c.nnames * sizeof(*p->rule_names));
		if (!p->rule_names) {
			rc = oom(&c);
		} else {
			memcpy(p->rule_names, c.names,
			       c.nnames * sizeof(*p->rule_names));
			p->nrules = c.nnames;
		}
	}
out:
	free(c.names);
	free(c.name_lines);
	free(c.ntab);
	arena_free(c.tmp);
	if (rc) {
		policy_free(p);
		errno = rc == -ENOMEM ? ENOMEM : EINVAL;
		return NULL;
	}
	return p;
}

/* ---- public API ------------------------------------------------------------------------- */

struct policy *policy_load_text(const char *name, const char *text,
				size_t len, char *err, size_t errlen)
{
	if (!name || (!text && len)) {
		errno = EINVAL;
		return NULL;
	}
	return load_text(name, text ? text : "", len, false, err, errlen);
}

struct policy *policy_builtin(char *err, size_t errlen)
{
	return load_text(BUILTIN_NAME, builtin_yaml, sizeof(builtin_yaml) - 1,
			 true, err, errlen);
}

struct policy *policy_load(const char *path, char *err, size_t errlen)
{
	struct lctx c = { .file = path ? path : "(null)", .err = err,
			  .errlen = errlen };
	FILE *f;
	struct stat st;
	int e = 0;
	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		report(&c, 0, NULL, "no policy file given");
		errno = EINVAL;
		return NULL;
	}
	if (!(f = fopen(path, "rb"))) {
		e = errno;
		report(&c, 0, NULL,
		       "cannot open: %s; check the path and its permissions",
		       strerror(e));
		errno = e;
		return NULL;
	}
	char *text = NULL;
	size_t len = 0;
	if (fstat(fileno(f), &st) != 0) {
		e = errno;
		report(&c, 0, NULL, "cannot stat: %s", strerror(e));
	} else if (S_ISDIR(st.st_mode)) {
		e = EISDIR;
		report(&c, 0, NULL,
		       "is a directory; give the path of a YAML policy file");
	} else if (!(text = malloc(POLICY_MAX_FILE + 1))) {
		e = ENOMEM;
		report(&c, 0, NULL, "out of memory");
	} else {
		/* Read up to the cap, not st_size: a FIFO reports 0. */
		len = fread(text, 1, POLICY_MAX_FILE + 1, f);
		if (ferror(f)) {
			e = errno ? errno : EIO;
			report(&c, 0, NULL, "cannot read: %s", strerror(e));
		} else if (len > POLICY_MAX_FILE) {
			e = EFBIG;
			report(&c, 0, NULL,
			       "file is larger than %uMiB; a policy is a few "
			       "KiB, check the path", POLICY_MAX_FILE >> 20);
		}
	}
	fclose(f);
	if (e) {
		free(text);
		errno = e;
		return NULL;
	}
	struct policy *p = load_text(path, text, len, false, err, errlen);
	free(text);
	return p;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nroutes; i++)
		if (p->routes[i].re)
			regfree(p->routes[i].re);
	arena_free(p->arena);
	free(p->path);
	free(p);
}

const char *policy_path(const struct policy *p)
{
	return p->path;
}

const struct policy_deny *policy_deny_response(const struct policy *p)
{
	return &p->deny;
}

unsigned policy_tenant_count(const struct policy *p)
{
	return p->ntenants;
}

const struct policy_tenant *policy_tenant_at(const struct policy *p,
					     unsigned i)
{
	return i < p->ntenants ? &p->tenants[i] : NULL;
}

const struct policy_tenant *policy_tenant_find(const struct policy *p,
					       const char *name)
{
	return name ? find_tenant(p, name) : NULL;
}

unsigned policy_route_count(const struct policy *p)
{
	return p->nroutes;
}

const struct policy_route *policy_route_at(const struct policy *p,
					   unsigned i)
{
	return i < p->nroutes ? &p->routes[i] : NULL;
}

const struct policy_route *policy_default_route(const struct policy *p)
{
	return &p->def;
}

unsigned policy_rule_count(const struct policy *p)
{
	return p->nrules;
}

const char *policy_rule_name(const struct policy *p, unsigned id)
{
	return id < p->nrules ? p->rule_names[id] : NULL;
}
