/* ext_proc: what to change in an exchange. See extproc.h.
 *
 * The protocol engine (extproc_stream.c) asks a decider about every header
 * and body chunk; the decider answers keep / replace / remove / deny. This
 * file holds that interface's built-in implementation, which does what the
 * tap does before the policy stage exists: the values of the credential
 * headers are replaced by a marker carrying only their length, credential
 * values found in bodies likewise, and a configurable :path prefix rule
 * denies requests (for tests and simple deployments). The policy engine
 * plugs in behind the same struct extproc_decider.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sealtap/extproc.h"

/* Replacement text: never contains any byte of the original. */
#define MARK "redacted:"

static bool name_eq(const uint8_t *n, size_t nl, const char *lit)
{
	size_t ll = strlen(lit);
	return nl == ll && strncasecmp((const char *)n, lit, ll) == 0;
}

bool extproc_header_protected(const uint8_t *name, size_t nlen)
{
	if (nlen == 0 || name[0] == ':')
		return true;
	if (name_eq(name, nlen, "host"))
		return true;
	return nlen >= 8 && strncasecmp((const char *)name, "x-envoy-", 8) == 0;
}

/* The tap's list (h2_conn.c always_redact), kept identical so both faces
 * hide the same values until the policy engine decides per tenant. */
static const char *const sensitive_headers[] = {
	"authorization", "proxy-authorization", "cookie",
	"set-cookie",    "x-api-key",           "x-auth-token",
};

bool extproc_header_sensitive(const uint8_t *name, size_t nlen)
{
	for (size_t i = 0; i < ST_ARRAY_SIZE(sensitive_headers); i++)
		if (name_eq(name, nlen, sensitive_headers[i]))
			return true;
	return false;
}

/* Appends "redacted:<len>" to |out|. */
static bool put_mark(struct extproc_buf *out, size_t len)
{
	char tmp[40];
	size_t n = sizeof(tmp);
	do { /* decimal, right to left: cheaper than snprintf per header */
		tmp[--n] = (char)('0' + len % 10);
		len /= 10;
	} while (len);
	return extproc_buf_put(out, MARK, sizeof(MARK) - 1) &&
	       extproc_buf_put(out, tmp + n, sizeof(tmp) - n);
}

static enum extproc_verdict dd_header(void *self, enum extproc_part part,
				      const uint8_t *name, size_t nlen,
				      const uint8_t *value, size_t vlen,
				      struct extproc_decision *d)
{
	struct extproc_default_decider *dd = self;
	if (part == EXTPROC_REQ_HEADERS && name_eq(name, nlen, ":path")) {
		for (unsigned i = 0; i < dd->ndeny; i++) {
			size_t pl = strlen(dd->deny[i]);
			if (pl && vlen >= pl && !memcmp(value, dd->deny[i], pl)) {
				d->status = 403;
				d->body = "denied by policy\n";
				d->details = "sealtap_denied_path";
				return d->verdict = EXTPROC_DENY;
			}
		}
		return d->verdict = EXTPROC_KEEP;
	}
	if (!extproc_header_sensitive(name, nlen))
		return d->verdict = EXTPROC_KEEP;
	if (!put_mark(d->out, vlen))
		return d->verdict = EXTPROC_REMOVE; /* fail closed */
	return d->verdict = EXTPROC_REPLACE;
}

/* ---- bodies ---- */

static const char *const sensitive_keys[] = {
	"password",	"passwd",	 "secret",	 "client_secret",
	"token",	"access_token", "refresh_token", "id_token",
	"api_key",	"apikey",	 "authorization", "cookie",
	"private_key",
};

static bool key_sensitive(const uint8_t *k, size_t kl)
{
	for (size_t i = 0; i < ST_ARRAY_SIZE(sensitive_keys); i++)
		if (name_eq(k, kl, sensitive_keys[i]))
			return true;
	return false;
}

static bool token_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~' || c == '+' || c == '/' || c == '=';
}

/* A span of |body| to replace. */
struct span {
	size_t off, len;
};

/* Finds the next credential value at or after |from|: the token after
 * "Bearer " (RFC 6750 §2.1), or the string value of a JSON member whose
 * key names a credential. Bounded: one pass over the bytes. */
static bool next_span(const uint8_t *b, size_t len, size_t from,
		      struct span *s)
{
	for (size_t i = from; i < len; i++) {
		if ((b[i] == 'B' || b[i] == 'b') && len - i > 7 &&
		    !strncasecmp((const char *)b + i, "bearer ", 7)) {
			size_t j = i + 7;
			while (j < len && b[j] == ' ')
				j++;
			size_t k = j;
			while (k < len && token_char(b[k]))
				k++;
			if (k > j) {
				s->off = j;
				s->len = k - j;
				return true;
			}
			continue;
		}
		if (b[i] != '"')
			continue;
		/* "key" : "value" */
		size_t ks = i + 1, ke = ks;
		while (ke < len && b[ke] != '"' && b[ke] != '\\' &&
		       ke - ks < 64)
			ke++;
		if (ke >= len || b[ke] != '"')
			continue;
		size_t j = ke + 1;
		while (j < len && (b[j] == ' ' || b[j] == '\t' ||
				   b[j] == '\r' || b[j] == '\n'))
			j++;
		if (j >= len || b[j] != ':') {
			i = ke; /* a string value, skip past it */
			continue;
		}
		if (!key_sensitive(b + ks, ke - ks)) {
			i = ke;
			continue;
		}
		j++;
		while (j < len && (b[j] == ' ' || b[j] == '\t' ||
				   b[j] == '\r' || b[j] == '\n'))
			j++;
		if (j >= len || b[j] != '"') {
			i = ke;
			continue;
		}
		size_t vs = j + 1, ve = vs;
		while (ve < len && b[ve] != '"')
			ve += b[ve] == '\\' ? 2 : 1;
		if (ve > len)
			ve = len;
		s->off = vs;
		s->len = ve - vs;
		return true;
	}
	return false;
}

static enum extproc_verdict dd_body(void *self, enum extproc_part part,
				    const uint8_t *body, size_t len,
				    struct extproc_decision *d)
{
	(void)self;
	(void)part;
	struct span s;
	size_t pos = 0, scan = 0; /* copied up to / searched from */
	bool any = false;
	while (scan < len && next_span(body, len, scan, &s)) {
		if (!extproc_buf_put(d->out, body + pos, s.off - pos) ||
		    !put_mark(d->out, s.len))
			return d->verdict = EXTPROC_REMOVE; /* fail closed */
		pos = s.off + s.len;
		/* past a JSON value's closing quote, or it would read as the
		 * opening quote of a key */
		scan = pos < len && body[pos] == '"' ? pos + 1 : pos;
		any = true;
	}
	if (!any)
		return d->verdict = EXTPROC_KEEP;
	if (!extproc_buf_put(d->out, body + pos, len - pos))
		return d->verdict = EXTPROC_REMOVE;
	return d->verdict = EXTPROC_REPLACE;
}

static const struct extproc_decider_ops default_ops = {
	.decide_header = dd_header,
	.decide_body = dd_body,
};

void extproc_default_decider_init(struct extproc_default_decider *dd,
				  const char *const *deny, unsigned ndeny)
{
	dd->deny = deny;
	dd->ndeny = ndeny;
}

struct extproc_decider extproc_default_decider(struct extproc_default_decider *dd)
{
	return (struct extproc_decider){ .ops = &default_ops, .self = dd };
}
