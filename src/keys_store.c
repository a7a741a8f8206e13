/* Key store file: tenants, KEK references and wrapped DEKs (see keys.h and
 * docs/keys.md "Key store").
 *
 *   {
 *     "format": "sealtap-keystore",
 *     "version": 1,
 *     "tenants": [
 *       {
 *         "name": "acme",
 *         "kms": "pkcs11",
 *         "kek": "sealtap-dev-kek",
 *         "next_seq": 3,
 *         "deks": [
 *           { "id": "acme-1", "state": "retired",
 *             "created": "2026-11-20T10:00:00Z",
 *             "retired": "2026-11-23T10:00:00Z",
 *             "seals": 1234, "leases": 2, "wrapped": "AYc3..." },
 *           { "id": "acme-2", "state": "active", ... }
 *         ]
 *       }
 *     ]
 *   }
 *
 * Parsing is two steps: a small strict JSON reader builds a tree (objects,
 * arrays, strings and non-negative integers only: the store has no other
 * kinds), then the schema walk checks every field and builds the store.
 * Either step stops at the first problem with "file:line: json.path: what;
 * fix", and nothing is returned on failure.
 *
 * Ownership: a struct keys_store owns its tenant array, each tenant its DEK
 * array. Nothing here holds plaintext key material; wrapped blobs are
 * ciphertext.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "sealtap/keys.h"

#define JSON_MAX_DEPTH 8
#define JSON_MAX_NODES (1u << 21)

static int ks_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int ks_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- names ------------------------------------------------------------------- */

bool keys_tenant_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > KEYS_TENANT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' &&
		    name[i] != '-')
			return false;
	return true;
}

static bool kms_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > KEYS_KMS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Printable ASCII: PKCS#11 labels may hold blanks, cloud resource names
 * slashes. */
static bool kek_ref_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > KMS_REF_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* ---- base64 (RFC 4648 §4, padded, strict) ------------------------------------------ */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_val(char c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

/* Decodes exactly the canonical padded form; -1 on anything else. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0;
	if (n == 0 || n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = b64_val(s[i + j])) < 0)
				return -1;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -1; /* non-zero bits under the padding */
		size_t k = 3 - (size_t)pad;
		if (o + k > cap)
			return -1;
		for (size_t j = 0; j < k; j++)
			out[o++] = (uint8_t)(w >> (16 - 8 * j));
	}
	return (long)o;
}

/* ---- time -------------------------------------------------------------------- */

static void fmt_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "YYYY-MM-DDTHH:MM:SSZ" exactly, a real date. */
static int parse_time(const char *s, size_t n, int64_t *out)
{
	struct tm tm = { 0 };
	char back[32];
	if (n != 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		bool digit = isdigit((unsigned char)s[i]);
		bool want_digit = !(i == 4 || i == 7 || i == 10 || i == 13 ||
				    i == 16 || i == 19);
		if (digit != want_digit)
			return -1;
	}
	if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z')
		return -1;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	fmt_time(t, back); /* rejects 2026-02-30 and 25:00:00 */
	if (memcmp(back, s, 20))
		return -1;
	*out = t;
	return 0;
}

/* ---- strict JSON reader ----------------------------------------------------------- */

enum jtype { J_OBJ, J_ARR, J_STR, J_INT };

struct jmember;

struct jval {
	enum jtype t;
	unsigned line;
	char *s;               /* J_STR, NUL-terminated (may hold NULs) */
	size_t slen;
	uint64_t u;            /* J_INT */
	struct jval *items;    /* J_ARR */
	struct jmember *mem;   /* J_OBJ */
	unsigned n, cap;
};

struct jmember {
	char *key;
	unsigned line;
	struct jval v;
};

struct jp {
	const char *p, *end;
	unsigned line;
	unsigned nodes;
	const char *name;
	char *err;
	size_t errlen;
};

static int jerr(struct jp *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int jerr(struct jp *j, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (j->p >= j->end) /* whatever was expected: the file stops early */
		snprintf(what, sizeof(what),
			 "unexpected end of file (truncated?)");
	return ks_fail(j->err, j->errlen, -EINVAL,
		    "%s:%u: not valid JSON: %s; the key store is damaged "
		    "(restore it from a backup)", j->name, j->line, what);
}

static void jval_free(struct jval *v)
{
	free(v->s);
	for (unsigned i = 0; v->t == J_ARR && i < v->n; i++)
		jval_free(&v->items[i]);
	for (unsigned i = 0; v->t == J_OBJ && i < v->n; i++) {
		free(v->mem[i].key);
		jval_free(&v->mem[i].v);
	}
	free(v->items);
	free(v->mem);
	memset(v, 0, sizeof(*v));
}

static void skip_ws(struct jp *j)
{
	while (j->p < j->end) {
		char c = *j->p;
		if (c == '\n')
			j->line++;
		else if (c != ' ' && c != '\t' && c != '\r')
			return;
		j->p++;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 8259 §7. \u escapes of the Basic Multilingual Plane are decoded to
 * UTF-8; surrogates are refused (no field of the store needs them). */
static int parse_string(struct jp *j, char **out, size_t *outlen)
{
	const char *s = ++j->p; /* after the quote */
	size_t cap = 0;
	while (j->p < j->end && *j->p != '"') {
		if ((unsigned char)*j->p < 0x20)
			return jerr(j, "control character in a string");
		if (*j->p == '\\')
			j->p++;
		j->p++;
	}
	if (j->p >= j->end)
		return jerr(j, "string not terminated");
	cap = (size_t)(j->p - s) + 1;
	char *buf = malloc(cap), *o = buf;
	if (!buf)
		return ks_fail(j->err, j->errlen, -ENOMEM, "out of memory");
	for (const char *q = s; q < j->p; q++) {
		if (*q != '\\') {
			*o++ = *q;
			continue;
		}
		q++;
		switch (*q) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			int h[4];
			for (int i = 0; i < 4; i++)
				if (q + 1 + i >= j->p ||
				    (h[i] = hexval(q[1 + i])) < 0) {
					free(buf);
					return jerr(j, "bad \\u escape");
				}
			unsigned cp = (unsigned)(h[0] << 12 | h[1] << 8 |
						 h[2] << 4 | h[3]);
			q += 4;
			if (cp >= 0xd800 && cp <= 0xdfff) {
				free(buf);
				return jerr(j, "\\u surrogate in a string");
			}
			if (cp < 0x80) {
				*o++ = (char)cp;
			} else if (cp < 0x800) { /* 2 bytes fit in 6 of text */
				*o++ = (char)(0xc0 | cp >> 6);
				*o++ = (char)(0x80 | (cp & 0x3f));
			} else {
				*o++ = (char)(0xe0 | cp >> 12);
				*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*o++ = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			free(buf);
			return jerr(j, "bad escape \"\\%c\" in a string",
				    isprint((unsigned char)*q) ? *q : '?');
		}
	}
	*o = '\0';
	*out = buf;
	*outlen = (size_t)(o - buf);
	j->p++; /* closing quote */
	return 0;
}

static int parse_value(struct jp *j, struct jval *v, int depth);

static int parse_int(struct jp *j, struct jval *v)
{
	const char *s = j->p;
	uint64_t u = 0;
	if (*s == '-')
		return jerr(j, "negative number; counts are never negative");
	while (j->p < j->end && isdigit((unsigned char)*j->p)) {
		unsigned d = (unsigned)(*j->p - '0');
		if (u > (UINT64_MAX - d) / 10)
			return jerr(j, "number larger than 2^64-1");
		u = u * 10 + d;
		j->p++;
	}
	if (j->p - s > 1 && *s == '0')
		return jerr(j, "number with a leading zero");
	if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
		return jerr(j, "fraction or exponent; the store has integers "
			       "only");
	v->t = J_INT;
	v->u = u;
	return 0;
}

static int grow(void **arr, unsigned *cap, size_t elem)
{
	unsigned nc = *cap ? *cap * 2 : 4;
	void *p = realloc(*arr, nc * elem);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
	*arr = p;
	*cap = nc;
	return 0;
}

static int parse_array(struct jp *j, struct jval *v, int depth)
{
	v->t = J_ARR;
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (v->n == v->cap &&
		    grow((void **)&v->items, &v->cap, sizeof(*v->items)))
			return ks_fail(j->err, j->errlen, -ENOMEM,
				    "out of memory");
		int rc = parse_value(j, &v->items[v->n++], depth + 1);
		if (rc)
			return rc;
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return 0;
		}
		return jerr(j, "expected \",\" or \"]\" in an array");
	}
}

static int parse_object(struct jp *j, struct jval *v, int depth)
{
	v->t = J_OBJ;
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		skip_ws(j);
		if (j->p >= j->end || *j->p != '"')
			return jerr(j, "expected a quoted key");
		if (v->n == v->cap &&
		    grow((void **)&v->mem, &v->cap, sizeof(*v->mem)))
			return ks_fail(j->err, j->errlen, -ENOMEM,
				    "out of memory");
		struct jmember *m = &v->mem[v->n++];
		size_t kl;
		m->line = j->line;
		int rc = parse_string(j, &m->key, &kl);
		if (rc)
			return rc;
		for (unsigned i = 0; i + 1 < v->n; i++)
			if (!strcmp(v->mem[i].key, m->key))
				return jerr(j, "duplicate key \"%.40s\" (first "
					       "on line %u)", m->key,
					    v->mem[i].line);
		skip_ws(j);
		if (j->p >= j->end || *j->p != ':')
			return jerr(j, "expected \":\" after key \"%.40s\"",
				    m->key);
		j->p++;
		rc = parse_value(j, &m->v, depth + 1);
		if (rc)
			return rc;
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		return jerr(j, "expected \",\" or \"}\" after a member");
	}
}

static int parse_value(struct jp *j, struct jval *v, int depth)
{
	skip_ws(j);
	if (depth > JSON_MAX_DEPTH)
		return jerr(j, "nested deeper than %d", JSON_MAX_DEPTH);
	if (++j->nodes > JSON_MAX_NODES)
		return jerr(j, "more than %u values", JSON_MAX_NODES);
	if (j->p >= j->end)
		return jerr(j, "unexpected end of file (truncated?)");
	v->line = j->line;
	char c = *j->p;
	if (c == '{')
		return parse_object(j, v, depth);
	if (c == '[')
		return parse_array(j, v, depth);
	if (c == '"') {
		v->t = J_STR;
		return parse_string(j, &v->s, &v->slen);
	}
	if (c == '-' || isdigit((unsigned char)c))
		return parse_int(j, v);
	return jerr(j, "unexpected \"%c\"; expected an object, array, "
		       "string or integer", isprint((unsigned char)c) ? c : '?');
}

static int json_parse(const char *text, size_t len, const char *name,
		      struct jval *root, char *err, size_t errlen)
{
	struct jp j = { .p = text, .end = text + len, .line = 1,
			.name = name, .err = err, .errlen = errlen };
	memset(root, 0, sizeof(*root));
	int rc = parse_value(&j, root, 0);
	if (rc == 0) {
		skip_ws(&j);
		if (j.p != j.end)
			rc = jerr(&j, "text after the end of the store");
	}
	if (rc)
		jval_free(root);
	return rc;
}

/* ---- schema ------------------------------------------------------------------- */

struct sc {
	const char *name;
	char *err;
	size_t errlen;
};

static int serr(struct sc *c, unsigned line, const char *path, int rc,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int serr(struct sc *c, unsigned line, const char *path, int rc,
		const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return ks_fail(c->err, c->errlen, rc, "%s:%u: %s: %s", c->name, line,
		    path, what);
}

/* |out| = base sep name, cut to |cap| (paths are for messages only). */
static void jpath(char *out, size_t cap, const char *base, const char *sep,
		  const char *name)
{
	if (snprintf(out, cap, "%s%s%s", base, sep, name) >= (int)cap)
		out[cap - 1] = '\0'; /* already terminated; checked so the
					 compiler sees the cut is meant */
}

static const char *jtype_name(enum jtype t)
{
	static const char *const n[] = { "an object", "an array", "a string",
					 "an integer" };
	return n[t];
}

/* Checks that |o| is an object with exactly the keys in |req| (required)
 * and possibly |opt| (optional), NULL-terminated lists. */
static int keys_exact(struct sc *c, const struct jval *o, const char *path,
		      const char *const *req, const char *const *opt,
		      const char *list)
{
	if (o->t != J_OBJ)
		return serr(c, o->line, path, -EINVAL, "is %s; expected an "
			    "object", jtype_name(o->t));
	for (unsigned i = 0; i < o->n; i++) {
		bool known = false;
		for (const char *const *k = req; *k && !known; k++)
			known = !strcmp(*k, o->mem[i].key);
		for (const char *const *k = opt; k && *k && !known; k++)
			known = !strcmp(*k, o->mem[i].key);
		if (!known)
			return serr(c, o->mem[i].line, path, -EINVAL,
				    "unknown key \"%.40s\"; keys here are %s",
				    o->mem[i].key, list);
	}
	for (const char *const *k = req; *k; k++) {
		bool found = false;
		for (unsigned i = 0; i < o->n && !found; i++)
			found = !strcmp(*k, o->mem[i].key);
		if (!found)
			return serr(c, o->line, path, -EINVAL,
				    "missing key \"%s\"", *k);
	}
	return 0;
}

static const struct jval *get(const struct jval *o, const char *key)
{
	for (unsigned i = 0; i < o->n; i++)
		if (!strcmp(o->mem[i].key, key))
			return &o->mem[i].v;
	return NULL;
}

/* String member |key| of |o| into |out| (|cap| bytes), checked by |ok|. */
static int get_str(struct sc *c, const struct jval *o, const char *path,
		   const char *key, char *out, size_t cap,
		   bool (*ok)(const char *), const char *rule)
{
	const struct jval *v = get(o, key);
	char p[128];
	jpath(p, sizeof(p), path, ".", key);
	if (v->t != J_STR)
		return serr(c, v->line, p, -EINVAL, "is %s; expected a string",
			    jtype_name(v->t));
	if (v->slen >= cap || strlen(v->s) != v->slen || (ok && !ok(v->s)))
		return serr(c, v->line, p, -EINVAL, "\"%.60s\" is not %s",
			    v->s, rule);
	memcpy(out, v->s, v->slen + 1);
	return 0;
}

static int get_u64(struct sc *c, const struct jval *o, const char *path,
		   const char *key, uint64_t max, uint64_t *out)
{
	const struct jval *v = get(o, key);
	char p[128];
	jpath(p, sizeof(p), path, ".", key);
	if (v->t != J_INT)
		return serr(c, v->line, p, -EINVAL,
			    "is %s; expected an integer", jtype_name(v->t));
	if (v->u > max)
		return serr(c, v->line, p, -EINVAL,
			    "%" PRIu64 " is larger than %" PRIu64, v->u, max);
	*out = v->u;
	return 0;
}

static int get_time(struct sc *c, const struct jval *o, const char *path,
		    const char *key, int64_t *out)
{
	const struct jval *v = get(o, key);
	char p[128];
	jpath(p, sizeof(p), path, ".", key);
	if (v->t != J_STR || parse_time(v->s, v->slen, out))
		return serr(c, v->line, p, -EINVAL,
			    "expected a UTC time like \"2026-11-23T10:00:00Z\"");
	return 0;
}

static bool key_id_ok(const char *s)
{
	return seal_key_id_valid(s, strlen(s));
}

static int dek_from_json(struct sc *c, const struct jval *o, const char *path,
			 struct keys_dek_rec *d)
{
	static const char *const req[] = { "id", "state", "created", "seals",
					   "leases", "wrapped", NULL };
	static const char *const opt[] = { "retired", NULL };
	char state[16];
	uint64_t u;
	int rc = keys_exact(c, o, path, req, opt,
			    "id, state, created, retired, seals, leases, "
			    "wrapped");
	if (!rc)
		rc = get_str(c, o, path, "id", d->id, sizeof(d->id), key_id_ok,
			     "a key id (1-64 of A-Z a-z 0-9 _ -)");
	if (!rc)
		rc = get_str(c, o, path, "state", state, sizeof(state), NULL,
			     "a state");
	if (rc)
		return rc;
	const struct jval *sv = get(o, "state");
	char p[128];
	jpath(p, sizeof(p), path, ".", "state");
	if (!strcmp(state, "active"))
		d->state = KEYS_DEK_ACTIVE;
	else if (!strcmp(state, "retired"))
		d->state = KEYS_DEK_RETIRED;
	else
		return serr(c, sv->line, p, -EINVAL,
			    "\"%.20s\" is not one of: active, retired", state);
	rc = get_time(c, o, path, "created", &d->created);
	if (!rc && get(o, "retired"))
		rc = get_time(c, o, path, "retired", &d->retired);
	if (rc)
		return rc;
	if ((d->state == KEYS_DEK_RETIRED) != (get(o, "retired") != NULL))
		return serr(c, o->line, path, -EINVAL,
			    "a %s DEK %s a \"retired\" time", state,
			    d->state == KEYS_DEK_RETIRED ? "needs"
							 : "cannot have");
	if (d->state == KEYS_DEK_RETIRED && d->retired < d->created)
		return serr(c, get(o, "retired")->line, path, -EINVAL,
			    "retired before it was created");
	rc = get_u64(c, o, path, "seals", UINT64_MAX, &d->seals);
	if (!rc)
		rc = get_u64(c, o, path, "leases",
			     (uint64_t)SEAL_GCM_INSTANCE_MAX + 1, &u);
	if (rc)
		return rc;
	d->leases = (uint32_t)u;
	const struct jval *w = get(o, "wrapped");
	jpath(p, sizeof(p), path, ".", "wrapped");
	long n = w->t == J_STR ? b64_decode(w->s, w->slen, d->wrapped.b,
					    sizeof(d->wrapped.b))
			       : -1;
	if (n <= 0)
		return serr(c, w->line, p, -EINVAL,
			    "not valid padded base64 of 1..%d bytes",
			    KMS_BLOB_MAX);
	d->wrapped.len = (size_t)n;
	return 0;
}

static int tenant_deks(struct sc *c, const struct jval *a, const char *path,
		       struct keys_tenant_rec *t)
{
	char p[128];
	jpath(p, sizeof(p), path, ".", "deks");
	if (a->t != J_ARR)
		return serr(c, a->line, p, -EINVAL, "is %s; expected an array",
			    jtype_name(a->t));
	if (a->n > KEYS_STORE_MAX_DEKS)
		return serr(c, a->line, p, -EINVAL, "more than %d DEKs",
			    KEYS_STORE_MAX_DEKS);
	t->deks = calloc(a->n ? a->n : 1, sizeof(*t->deks));
	if (!t->deks)
		return ks_fail(c->err, c->errlen, -ENOMEM, "out of memory");
	t->cap = a->n ? a->n : 1;
	unsigned active = 0;
	for (unsigned i = 0; i < a->n; i++) {
		char dp[128];
		char idx[16];
		snprintf(idx, sizeof(idx), "[%u]", i);
		jpath(dp, sizeof(dp), p, "", idx);
		struct keys_dek_rec *d = &t->deks[i];
		int rc = dek_from_json(c, &a->items[i], dp, d);
		if (rc)
			return rc;
		t->ndeks++;
		for (unsigned k = 0; k < i; k++)
			if (!strcmp(t->deks[k].id, d->id))
				return serr(c, a->items[i].line, dp, -EINVAL,
					    "key id \"%s\" appears twice",
					    d->id);
		if (d->state == KEYS_DEK_ACTIVE && ++active > 1)
			return serr(c, a->items[i].line, dp, -EINVAL,
				    "a second active DEK; a tenant has at "
				    "most one (retire the older)");
	}
	return 0;
}

static int tenant_from_json(struct sc *c, const struct jval *o,
			    const char *path, struct keys_tenant_rec *t)
{
	static const char *const req[] = { "name", "kms", "kek", "next_seq",
					   "deks", NULL };
	uint64_t seq;
	int rc = keys_exact(c, o, path, req, NULL,
			    "name, kms, kek, next_seq, deks");
	if (!rc)
		rc = get_str(c, o, path, "name", t->name, sizeof(t->name),
			     keys_tenant_name_valid,
			     "a tenant name (1-48 of A-Z a-z 0-9 _ -)");
	if (!rc)
		rc = get_str(c, o, path, "kms", t->kms, sizeof(t->kms),
			     kms_name_valid, "a KMS backend name");
	if (!rc)
		rc = get_str(c, o, path, "kek", t->kek, sizeof(t->kek),
			     kek_ref_valid,
			     "a KEK reference (1-255 printable ASCII)");
	if (!rc)
		rc = get_u64(c, o, path, "next_seq", UINT32_MAX, &seq);
	if (rc)
		return rc;
	t->next_seq = (uint32_t)seq;
	return tenant_deks(c, get(o, "deks"), path, t);
}

static int store_from_json(struct sc *c, const struct jval *root,
			   struct keys_store *s)
{
	static const char *const req[] = { "format", "version", "tenants",
					   NULL };
	char fmt[32];
	uint64_t ver;
	int rc = keys_exact(c, root, "$", req, NULL,
			    "format, version, tenants");
	if (!rc)
		rc = get_str(c, root, "$", "format", fmt, sizeof(fmt), NULL,
			     "\"" KEYS_STORE_FORMAT "\"");
	if (!rc && strcmp(fmt, KEYS_STORE_FORMAT))
		rc = serr(c, get(root, "format")->line, "$.format", -EINVAL,
			  "\"%s\" is not \"" KEYS_STORE_FORMAT "\"; is this a "
			  "sealtap key store?", fmt);
	if (!rc)
		rc = get_u64(c, root, "$", "version", UINT32_MAX, &ver);
	if (!rc && ver != KEYS_STORE_VERSION)
		rc = serr(c, get(root, "version")->line, "$.version",
			  -EPROTONOSUPPORT,
			  "version %" PRIu64 "; this sealtap reads version %d",
			  ver, KEYS_STORE_VERSION);
	if (rc)
		return rc;
	const struct jval *a = get(root, "tenants");
	if (a->t != J_ARR)
		return serr(c, a->line, "$.tenants", -EINVAL,
			    "is %s; expected an array", jtype_name(a->t));
	if (a->n > KEYS_STORE_MAX_TENANTS)
		return serr(c, a->line, "$.tenants", -EINVAL,
			    "more than %d tenants", KEYS_STORE_MAX_TENANTS);
	s->tenants = calloc(a->n ? a->n : 1, sizeof(*s->tenants));
	if (!s->tenants)
		return ks_fail(c->err, c->errlen, -ENOMEM, "out of memory");
	s->cap = a->n ? a->n : 1;
	for (unsigned i = 0; i < a->n; i++) {
		char p[64];
		snprintf(p, sizeof(p), "$.tenants[%u]", i);
		rc = tenant_from_json(c, &a->items[i], p, &s->tenants[i]);
		s->ntenants++;
		if (rc)
			return rc;
		if (i && strcmp(s->tenants[i - 1].name, s->tenants[i].name) >= 0)
			return serr(c, a->items[i].line, p, -EINVAL,
				    "tenant \"%s\" is out of order or a "
				    "duplicate; tenants are sorted by name",
				    s->tenants[i].name);
	}
	return 0;
}

/* ---- store objects --------------------------------------------------------------- */

int keys_store_new(struct keys_store **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void keys_store_free(struct keys_store *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->ntenants; i++)
		free(s->tenants[i].deks);
	free(s->tenants);
	free(s);
}

int keys_store_parse(const char *text, size_t len, const char *name,
		     struct keys_store **out, char *err, size_t errlen)
{
	struct jval root;
	struct keys_store *s;
	*out = NULL;
	if (len > KEYS_STORE_MAX_FILE)
		return ks_fail(err, errlen, -EFBIG,
			    "%s: larger than %u MiB; not a key store", name,
			    KEYS_STORE_MAX_FILE >> 20);
	if (len == 0)
		return ks_fail(err, errlen, -EINVAL,
			    "%s: empty file; the key store is damaged (restore "
			    "it from a backup, or delete it to start over)",
			    name);
	if (memchr(text, '\0', len))
		return ks_fail(err, errlen, -EINVAL,
			    "%s: holds a NUL byte; not a key store", name);
	int rc = json_parse(text, len, name, &root, err, errlen);
	if (rc)
		return rc;
	rc = keys_store_new(&s);
	if (rc == 0) {
		struct sc c = { name, err, errlen };
		rc = store_from_json(&c, &root, s);
		if (rc) {
			keys_store_free(s);
			s = NULL;
		}
	}
	jval_free(&root);
	*out = s;
	return rc;
}

int keys_store_load(const char *path, struct keys_store **out, char *err,
		    size_t errlen)
{
	struct stat st;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ks_fail(err, errlen, -errno, "%s: %s", path,
			    errno == ENOENT ? "no key store here (create one "
					      "with sealtap keys create)"
					    : strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ks_fail(err, errlen, -EINVAL, "%s: not a regular file",
			    path);
	}
	if (st.st_size > (off_t)KEYS_STORE_MAX_FILE) {
		close(fd);
		return ks_fail(err, errlen, -EFBIG,
			    "%s: larger than %u MiB; not a key store", path,
			    KEYS_STORE_MAX_FILE >> 20);
	}
	char *text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return ks_fail(err, errlen, -ENOMEM, "out of memory");
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			free(text);
			return ks_fail(err, errlen, -e, "%s: read: %s", path,
				    strerror(e));
		}
		got += (size_t)n;
	}
	close(fd);
	int rc = keys_store_parse(text, got, path, out, err, errlen);
	free(text);
	return rc;
}

/* ---- writing --------------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = b->cap * 2 + (n > 0 ? (size_t)n : 0);
		char *q = realloc(b->p, nc);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = nc;
	}
}

/* JSON string of printable ASCII (the only text the store holds). */
static void sb_str(struct sbuf *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			sb_printf(b, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			sb_printf(b, "\\u%04x", (unsigned char)*s);
		else
			sb_printf(b, "%c", *s);
	}
	sb_printf(b, "\"");
}

static void format_dek(struct sbuf *b, const struct keys_dek_rec *d,
		       bool last)
{
	char t[32], b64[((KMS_BLOB_MAX + 2) / 3) * 4 + 1];
	sb_printf(b, "        {\n          \"id\": ");
	sb_str(b, d->id);
	sb_printf(b, ",\n          \"state\": \"%s\",\n",
		  d->state == KEYS_DEK_ACTIVE ? "active" : "retired");
	fmt_time(d->created, t);
	sb_printf(b, "          \"created\": \"%s\",\n", t);
	if (d->state == KEYS_DEK_RETIRED) {
		fmt_time(d->retired, t);
		sb_printf(b, "          \"retired\": \"%s\",\n", t);
	}
	b64_encode(d->wrapped.b, d->wrapped.len, b64);
	sb_printf(b,
		  "          \"seals\": %" PRIu64 ",\n"
		  "          \"leases\": %" PRIu32 ",\n"
		  "          \"wrapped\": \"%s\"\n        }%s\n",
		  d->seals, d->leases, b64, last ? "" : ",");
}

int keys_store_format(const struct keys_store *s, char **text, size_t *len)
{
	struct sbuf b = { .p = malloc(4096), .cap = 4096 };
	if (!b.p)
		return -ENOMEM;
	sb_printf(&b, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n"
		      "  \"tenants\": [",
		  KEYS_STORE_FORMAT, KEYS_STORE_VERSION);
	for (unsigned i = 0; i < s->ntenants; i++) {
		const struct keys_tenant_rec *t = &s->tenants[i];
		sb_printf(&b, "%s\n    {\n      \"name\": ", i ? "," : "");
		sb_str(&b, t->name);
		sb_printf(&b, ",\n      \"kms\": ");
		sb_str(&b, t->kms);
		sb_printf(&b, ",\n      \"kek\": ");
		sb_str(&b, t->kek);
		sb_printf(&b, ",\n      \"next_seq\": %" PRIu32 ",\n"
			      "      \"deks\": [%s", t->next_seq,
			  t->ndeks ? "\n" : "");
		for (unsigned k = 0; k < t->ndeks; k++)
			format_dek(&b, &t->deks[k], k + 1 == t->ndeks);
		sb_printf(&b, "%s]\n    }", t->ndeks ? "      " : "");
	}
	sb_printf(&b, "%s]\n}\n", s->ntenants ? "\n  " : "");
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*text = b.p;
	*len = b.len;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Directory of |path| ("." for a bare name), into |dir|. */
static void dir_of(const char *path, char *dir, size_t cap)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(dir, cap, "%s", dirname(tmp));
}

/* Test hook: fail after the temporary file is written, before rename. */
static int store_fail_before_rename;

int keys_store_save(const struct keys_store *s, const char *path, char *err,
		    size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *text;
	size_t len;
	unsigned char r[6];
	int rc;

	if (strlen(path) + 32 >= sizeof(tmp))
		return ks_fail(err, errlen, -ENAMETOOLONG, "%s: path too long",
			    path);
	if (keys_store_format(s, &text, &len))
		return ks_fail(err, errlen, -ENOMEM, "out of memory");
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%02x%02x%02x%02x%02x%02x", path,
		 (int)getpid(), r[0], r[1], r[2], r[3], r[4], r[5]);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = ks_fail(err, errlen, -errno, "%s: cannot create %s: %s",
			  path, tmp, strerror(errno));
		free(text);
		return rc;
	}
	/* Mode 0600 whatever the umask; fsync before rename so a crash
	 * leaves the old store or the new one, never a torn one. */
	rc = fchmod(fd, 0600) ? -errno : 0;
	if (!rc)
		rc = write_all(fd, text, len);
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	free(text);
	if (!rc && store_fail_before_rename)
		rc = -store_fail_before_rename;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return ks_fail(err, errlen, rc, "%s: cannot write the key store: "
			    "%s; it is unchanged", path, strerror(-rc));
	}
	dir_of(path, dir, sizeof(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) { /* the rename itself must survive a crash */
		if (fsync(dfd))
			rc = ks_fail(err, errlen, -errno, "%s: fsync of %s: %s",
				  path, dir, strerror(errno));
		close(dfd);
	}
	return rc;
}

int keys_store_lock(const char *path, char *err, size_t errlen)
{
	char lp[PATH_MAX];
	if (strlen(path) + 6 >= sizeof(lp))
		return ks_fail(err, errlen, -ENAMETOOLONG, "%s: path too long",
			    path);
	snprintf(lp, sizeof(lp), "%s.lock", path);
	int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ks_fail(err, errlen, -errno, "%s: cannot open the lock "
			    "file: %s", lp, strerror(errno));
	while (flock(fd, LOCK_EX)) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return ks_fail(err, errlen, -e, "%s: flock: %s", lp,
				    strerror(e));
		}
	}
	return fd;
}

void keys_store_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* ---- editing ------------------------------------------------------------------- */

struct keys_tenant_rec *keys_store_tenant(struct keys_store *s,
					  const char *name)
{
	for (unsigned i = 0; i < s->ntenants; i++)
		if (!strcmp(s->tenants[i].name, name))
			return &s->tenants[i];
	return NULL;
}

int keys_store_tenant_add(struct keys_store *s, const char *name,
			  const char *kms, const char *kek,
			  struct keys_tenant_rec **out, char *err,
			  size_t errlen)
{
	if (!keys_tenant_name_valid(name))
		return ks_fail(err, errlen, -EINVAL,
			    "tenant name \"%.60s\" is not valid; use 1-%d of "
			    "A-Z a-z 0-9 _ -", name, KEYS_TENANT_MAX);
	if (!kms_name_valid(kms))
		return ks_fail(err, errlen, -EINVAL, "KMS name \"%.20s\" is not "
			    "valid", kms);
	if (!kek_ref_valid(kek))
		return ks_fail(err, errlen, -EINVAL,
			    "KEK reference \"%.60s\" is not valid; use 1-%d "
			    "printable ASCII characters", kek, KMS_REF_MAX);
	if (keys_store_tenant(s, name))
		return ks_fail(err, errlen, -EEXIST, "tenant %s exists", name);
	if (s->ntenants >= KEYS_STORE_MAX_TENANTS)
		return ks_fail(err, errlen, -ENOSPC, "the store holds %d "
			    "tenants, the most it can", KEYS_STORE_MAX_TENANTS);
	if (s->ntenants == s->cap &&
	    grow((void **)&s->tenants, &s->cap, sizeof(*s->tenants)))
		return ks_fail(err, errlen, -ENOMEM, "out of memory");
	unsigned at = 0;
	while (at < s->ntenants && strcmp(s->tenants[at].name, name) < 0)
		at++;
	memmove(&s->tenants[at + 1], &s->tenants[at],
		(s->ntenants - at) * sizeof(*s->tenants));
	struct keys_tenant_rec *t = &s->tenants[at];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->kms, sizeof(t->kms), "%s", kms);
	snprintf(t->kek, sizeof(t->kek), "%s", kek);
	t->next_seq = 1;
	s->ntenants++;
	*out = t;
	return 0;
}

struct keys_dek_rec *keys_store_active(struct keys_tenant_rec *t)
{
	for (unsigned i = 0; i < t->ndeks; i++)
		if (t->deks[i].state == KEYS_DEK_ACTIVE)
			return &t->deks[i];
	return NULL;
}

struct keys_dek_rec *keys_store_dek(struct keys_tenant_rec *t, const char *id)
{
	for (unsigned i = 0; i < t->ndeks; i++)
		if (!strcmp(t->deks[i].id, id))
			return &t->deks[i];
	return NULL;
}

int keys_store_dek_add(struct keys_tenant_rec *t, const struct kms_blob *wrapped,
		       int64_t now, struct keys_dek_rec **out, char *err,
		       size_t errlen)
{
	char id[SEAL_KEY_ID_MAX + 1];
	if (!wrapped->len || wrapped->len > KMS_BLOB_MAX)
		return ks_fail(err, errlen, -EINVAL, "empty wrapped DEK");
	if (t->ndeks >= KEYS_STORE_MAX_DEKS)
		return ks_fail(err, errlen, -ENOSPC,
			    "tenant %s has %d DEKs, the most a store holds; "
			    "remove retired ones no record needs", t->name,
			    KEYS_STORE_MAX_DEKS);
	do { /* a hand-edited next_seq must not give a duplicate id */
		if (t->next_seq == UINT32_MAX)
			return ks_fail(err, errlen, -ENOSPC,
				    "tenant %s: DEK sequence exhausted",
				    t->name);
		snprintf(id, sizeof(id), "%s-%" PRIu32, t->name, t->next_seq++);
	} while (keys_store_dek(t, id));
	if (t->ndeks == t->cap &&
	    grow((void **)&t->deks, &t->cap, sizeof(*t->deks)))
		return ks_fail(err, errlen, -ENOMEM, "out of memory");
	struct keys_dek_rec *old = keys_store_active(t);
	if (old) {
		old->state = KEYS_DEK_RETIRED;
		old->retired = now < old->created ? old->created : now;
	}
	struct keys_dek_rec *d = &t->deks[t->ndeks++];
	memset(d, 0, sizeof(*d));
	memcpy(d->id, id, sizeof(id));
	d->state = KEYS_DEK_ACTIVE;
	d->created = now;
	d->wrapped = *wrapped;
	*out = d;
	return 0;
}

int keys_store_lease(struct keys_dek_rec *d, uint32_t *instance)
{
	if (d->leases > SEAL_GCM_INSTANCE_MAX)
		return -ERANGE;
	*instance = d->leases++;
	return 0;
}
