/* Policy lookups on the hot path: route selection, header/cookie/query/form
 * rules, detector runs on (decoded) text, and the span output every scanner
 * writes through.
 *
 * Nothing here allocates or locks (path regexes aside, see policy.h). The
 * only scratch is a struct pol_view (12 KiB) on the scanner's stack, used
 * when a value must be decoded (percent-encoding, JSON escapes) before the
 * detectors can see it; spans found in the decoded text are mapped back to
 * the encoded bytes, which are what gets sealed.
 */
#include <errno.h>
#include <string.h>

#include "policy_priv.h"
#include "sealtap/common.h"

static inline uint8_t lc(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* |n| bytes of input |s| equal |pat| (already lowercase when |ci|). */
static bool name_eq(const char *pat, const uint8_t *s, size_t n, bool ci)
{
	if (!ci)
		return memcmp(pat, s, n) == 0;
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)pat[i] != lc(s[i]))
			return false;
	return true;
}

static bool name_is(const uint8_t *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && name_eq(lit, s, n, true);
}

/* ---- names, actions ------------------------------------------------------- */

static const char *const action_names[] = {
	[POLICY_ACTION_NONE] = "none",	       [POLICY_ACTION_KEEP] = "keep",
	[POLICY_ACTION_TOKENIZE] = "tokenize", [POLICY_ACTION_HASH] = "hash",
	[POLICY_ACTION_SEAL] = "seal",	       [POLICY_ACTION_REDACT] = "redact",
	[POLICY_ACTION_DENY] = "deny",
};

const char *policy_action_name(enum policy_action a)
{
	return (unsigned)a < ST_ARRAY_SIZE(action_names) ? action_names[a] : "?";
}

static const char *const kind_names[] = {
	[POLICY_KIND_NONE] = "none",	 [POLICY_KIND_HEADER] = "header",
	[POLICY_KIND_COOKIE] = "cookie", [POLICY_KIND_QUERY] = "query",
	[POLICY_KIND_FORM] = "form",	 [POLICY_KIND_JSON] = "json",
	[POLICY_KIND_DETECTOR] = "detector", [POLICY_KIND_LIMIT] = "limit",
};

const char *policy_kind_name(enum policy_kind k)
{
	return (unsigned)k < ST_ARRAY_SIZE(kind_names) ? kind_names[k] : "?";
}

/* Exact name (one probe sequence in a table at most half full), else the
 * longest matching prefix. */
const struct pol_name_rule *pol_names_find(const struct pol_names *t,
					   const uint8_t *s, size_t n)
{
	if (t->nexact && n <= POL_NAME_MAX) {
		uint32_t h = st_name_hash(s, n, t->ci);
		for (uint32_t k = 0; k <= t->mask; k++) {
			uint32_t slot = t->slots[(h + k) & t->mask];
			if (!slot)
				break;
			const struct pol_name_rule *r = &t->exact[slot - 1];
			if (r->len == n && name_eq(r->name, s, n, t->ci))
				return r;
		}
	}
	for (uint32_t k = 0; k < t->nprefix; k++) {
		const struct pol_name_rule *r = &t->prefix[k];
		if (r->len <= n && name_eq(r->name, s, r->len, t->ci))
			return r;
	}
	return NULL;
}

static bool names_empty(const struct pol_names *t)
{
	return t->nexact == 0 && t->nprefix == 0;
}

/* ---- span output ---------------------------------------------------------- */

bool pol_out_add(struct pol_scan *sc, uint32_t off, uint32_t len,
		 uint8_t action, uint8_t kind, uint8_t det, uint8_t flags,
		 uint16_t rule_id, const char *rule)
{
	if (sc->full)
		return false;
	if (len == 0 || action <= POLICY_ACTION_KEEP)
		return true;
	if (sc->n) {
		struct policy_span *l = &sc->spans[sc->n - 1];
		uint32_t lend = l->off + l->len;
		if (off < lend) {
			/* Scanners emit in order; an overlap can only come
			 * from two rules on the same bytes. One span, the
			 * stronger action. */
			uint32_t end = ST_MAX(lend, off + len);
			l->off = ST_MIN(l->off, off);
			l->len = end - l->off;
			l->flags = 0;
			if (action > l->action) {
				l->action = action;
				l->kind = kind;
				l->detector = det;
				l->rule_id = rule_id;
				l->rule = rule;
			}
			return true;
		}
	}
	if (sc->n == sc->max) {
		/* Fail closed: everything from the last span on is covered
		 * by it, so no hit after this one goes unprotected. */
		struct policy_span *l = &sc->spans[sc->n - 1];
		l->len = sc->total - l->off;
		l->action = pol_action_max(pol_action_max(l->action, action),
					   POLICY_ACTION_SEAL);
		l->kind = POLICY_KIND_LIMIT;
		l->detector = 0;
		l->flags = 0;
		l->rule_id = POLICY_RULE_LIMIT_SPANS;
		l->rule = sc->p->rule_names[POLICY_RULE_LIMIT_SPANS];
		sc->full = true;
		sc->flags |= POLICY_SCAN_SPANS_FULL;
		return false;
	}
	sc->spans[sc->n++] = (struct policy_span){
		.off = off, .len = len, .rule = rule, .rule_id = rule_id,
		.action = action, .kind = kind, .detector = det, .flags = flags,
	};
	return true;
}

void pol_scan_rest(struct pol_scan *sc, uint32_t off, uint16_t rule_id,
		   bool detect_if_keep)
{
	if (sc->full || off >= sc->total)
		return;
	uint8_t a = sc->p->limits.unscanned;
	if (a <= POLICY_ACTION_KEEP) {
		if (detect_if_keep)
			pol_scan_text(sc, off, sc->total - off, POL_ENC_RAW,
				      sc->rs->det_mask[POL_SCOPE_BODY], 0);
		return;
	}
	pol_out_add(sc, off, sc->total - off, a, POLICY_KIND_LIMIT, 0, 0,
		    rule_id, sc->p->rule_names[rule_id]);
}

/* ---- decoded views ------------------------------------------------------- */

static int hexv(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lc(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int hex4(const uint8_t *s)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexv(s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Appends code point |cp| as UTF-8, every byte mapped to |at|. */
static bool put_utf8(struct pol_view *v, uint32_t cp, uint16_t at)
{
	uint8_t b[4];
	unsigned k;
	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		k = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | (cp >> 18));
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		k = 4;
	}
	if (v->n + k > POL_VIEW_MAX)
		return false;
	for (unsigned i = 0; i < k; i++) {
		v->map[v->n] = at;
		v->buf[v->n++] = b[i];
	}
	return true;
}

static bool put_byte(struct pol_view *v, uint8_t b, uint16_t at)
{
	if (v->n == POL_VIEW_MAX)
		return false;
	v->map[v->n] = at;
	v->buf[v->n++] = b;
	return true;
}

/* The code point of the JSON escape at |s| (a backslash, |avail| bytes
 * left); its length in *|step|. A \u escape of a surrogate pair is one
 * code point; a lone surrogate is U+FFFD; an invalid escape is kept as its
 * backslash alone. */
static uint32_t json_escape(const uint8_t *s, size_t avail, size_t *step)
{
	*step = 2;
	switch (s[1]) {
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'u': break;
	default: return s[1]; /* \" \\ \/ and invalid ones */
	}
	int u = avail >= 6 ? hex4(s + 2) : -1;
	if (u < 0) {
		*step = 1;
		return '\\';
	}
	*step = 6;
	if (u >= 0xdc00 && u <= 0xdfff)
		return 0xfffd;
	if (u < 0xd800 || u > 0xdbff)
		return (uint32_t)u;
	int lo = avail >= 12 && s[6] == '\\' && s[7] == 'u' ? hex4(s + 8) : -1;
	if (lo < 0xdc00 || lo > 0xdfff)
		return 0xfffd;
	*step = 12;
	return 0x10000 + (((uint32_t)u - 0xd800) << 10) +
	       ((uint32_t)lo - 0xdc00);
}

bool pol_view_decode(struct pol_view *v, const uint8_t *s, size_t len,
		     enum pol_enc enc)
{
	v->n = 0;
	if (len > UINT16_MAX)
		return false; /* map entries are 16-bit offsets */
	size_t i = 0;
	while (i < len) {
		uint16_t at = (uint16_t)i;
		uint8_t c = s[i];
		size_t step = 1;
		bool ok;
		if (enc == POL_ENC_JSON && c == '\\' && i + 1 < len) {
			uint32_t cp = json_escape(s + i, len - i, &step);
			ok = put_utf8(v, cp, at);
		} else if ((enc == POL_ENC_PCT || enc == POL_ENC_FORM) &&
			   c == '%' && i + 2 < len && hexv(s[i + 1]) >= 0 &&
			   hexv(s[i + 2]) >= 0) {
			step = 3;
			ok = put_byte(v, (uint8_t)(hexv(s[i + 1]) * 16 +
						   hexv(s[i + 2])),
				      at);
		} else if (c == '+' &&
			   (enc == POL_ENC_FORM ||
			    (enc == POL_ENC_PCT && i && i + 1 < len &&
			     s[i - 1] >= '0' && s[i - 1] <= '9' &&
			     s[i + 1] >= '0' && s[i + 1] <= '9'))) {
			/* in a URL only between digits: a form's blank in a
			 * card's groups ("4539+1488+..."), while a+b@x.org
			 * stays one address */
			ok = put_byte(v, ' ', at);
		} else {
			ok = put_byte(v, c, at);
		}
		if (!ok)
			return false;
		i += step;
	}
	v->map[v->n] = (uint16_t)len;
	return true;
}

static bool needs_decode(const uint8_t *s, size_t len, enum pol_enc enc)
{
	switch (enc) {
	case POL_ENC_PCT:
		return memchr(s, '%', len) != NULL || memchr(s, '+', len) != NULL;
	case POL_ENC_FORM:
		return memchr(s, '%', len) != NULL || memchr(s, '+', len) != NULL;
	case POL_ENC_JSON: return memchr(s, '\\', len) != NULL;
	default: return false;
	}
}

struct temit {
	struct pol_scan *sc;
	const struct pol_view *v; /* NULL: offsets are raw */
	uint32_t off;             /* of the scanned text in sc->base */
	uint8_t flags;
};

static bool text_emit(void *ctx, uint32_t o, uint32_t l, unsigned det)
{
	struct temit *t = ctx;
	const struct pol_det *d = &t->sc->rs->det[det];
	uint32_t s = o, e = o + l;
	if (t->v) {
		/* The end maps to the first encoded character after the
		 * last decoded byte (bytes of one escape share a map entry). */
		const struct pol_view *v = t->v;
		uint32_t j = e;
		while (j < v->n && v->map[j] == v->map[e - 1])
			j++;
		s = v->map[o];
		e = v->map[j];
	}
	return pol_out_add(t->sc, t->off + s, e - s, d->action,
			   POLICY_KIND_DETECTOR, (uint8_t)det, t->flags,
			   d->rule_id, d->rule);
}

void pol_scan_text(struct pol_scan *sc, uint32_t off, uint32_t len,
		   enum pol_enc enc, unsigned mask, uint8_t span_flags)
{
	if (!mask || !len || sc->full)
		return;
	const uint8_t *s = sc->base + off;
	struct temit t = { .sc = sc, .off = off, .flags = span_flags };
	if (enc != POL_ENC_RAW && needs_decode(s, len, enc)) {
		if (pol_view_decode(sc->view, s, len, enc)) {
			t.v = sc->view;
			pol_detect_run(sc->view->buf, sc->view->n, mask,
				       text_emit, &t);
			return;
		}
		sc->flags |= POLICY_SCAN_RAW;
	}
	pol_detect_run(s, len, mask, text_emit, &t);
}

/* ---- splitting helpers ------------------------------------------------------ */

static inline bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Fills |pr| from piece [a, b) of |s|, blanks around name and value
 * trimmed. False if the piece is empty. */
static bool make_pair(const uint8_t *s, size_t a, size_t b, bool trim,
		      struct policy_pair *pr)
{
	if (trim) {
		while (a < b && is_blank(s[a]))
			a++;
		while (b > a && is_blank(s[b - 1]))
			b--;
	}
	if (a == b)
		return false;
	const uint8_t *eq = memchr(s + a, '=', b - a);
	size_t ne = eq ? (size_t)(eq - s) : b;
	size_t vs = eq ? ne + 1 : b;
	size_t nb = ne;
	if (trim) {
		while (nb > a && is_blank(s[nb - 1]))
			nb--;
		while (vs < b && is_blank(s[vs]))
			vs++;
	}
	pr->name_off = (uint32_t)a;
	pr->name_len = (uint32_t)(nb - a);
	pr->value_off = (uint32_t)vs;
	pr->value_len = (uint32_t)(b - vs);
	pr->has_eq = eq != NULL;
	return true;
}

int policy_cookie_next(const void *value, size_t len, size_t *pos,
		       struct policy_pair *pr)
{
	const uint8_t *s = value;
	size_t i = *pos;
	while (i < len) {
		const uint8_t *semi = memchr(s + i, ';', len - i);
		size_t e = semi ? (size_t)(semi - s) : len;
		*pos = semi ? e + 1 : len;
		if (make_pair(s, i, e, true, pr))
			return 1;
		i = *pos;
	}
	*pos = len;
	return 0;
}

int policy_set_cookie_pair(const void *value, size_t len,
			   struct policy_pair *pr)
{
	const uint8_t *s = value;
	const uint8_t *semi = len ? memchr(s, ';', len) : NULL;
	size_t e = semi ? (size_t)(semi - s) : len;
	/* RFC 6265 §5.2: no '=' in the cookie-pair means no cookie. */
	return make_pair(s, 0, e, true, pr) && pr->has_eq;
}

size_t policy_query_offset(const void *path, size_t len)
{
	const uint8_t *q = len ? memchr(path, '?', len) : NULL;
	return q ? (size_t)(q - (const uint8_t *)path) + 1 : len;
}

/* The next name=value pair of |str| from *|pos|, pairs ending at '&' or
 * also at '?' (|q|). */
static int param_next(const uint8_t *s, size_t len, size_t *pos,
		      struct policy_pair *pr, bool q)
{
	size_t i = *pos;
	while (i < len) {
		size_t e = i;
		while (e < len && s[e] != '&' && !(q && s[e] == '?'))
			e++;
		*pos = e < len ? e + 1 : len;
		if (make_pair(s, i, e, false, pr))
			return 1;
		i = *pos;
	}
	*pos = len;
	return 0;
}

int policy_param_next(const void *str, size_t len, size_t *pos,
		      struct policy_pair *pr)
{
	return param_next(str, len, pos, pr, false);
}

/* A URL fragment's parameters: '?' separates too, since a client-side
 * route carries its own query there ("#/reset?token=..."). */
static int fragment_param_next(const void *str, size_t len, size_t *pos,
			       struct policy_pair *pr)
{
	return param_next(str, len, pos, pr, true);
}

int policy_pct_decode(const void *in, size_t len, bool plus_is_space,
		      char *out, size_t cap)
{
	const uint8_t *s = in;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		if (c == '%' && i + 2 < len && hexv(s[i + 1]) >= 0 &&
		    hexv(s[i + 2]) >= 0) {
			c = (uint8_t)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (o == cap)
			return -ENOBUFS;
		out[o++] = (char)c;
	}
	return (int)o;
}

/* ---- field scanning ------------------------------------------------------------ */

struct pair_cfg {
	const struct pol_names *names;
	const struct pol_name_rule *fallback; /* for pairs without a rule */
	int (*next)(const void *, size_t, size_t *, struct policy_pair *);
	unsigned mask;         /* detectors for everything else */
	enum pol_enc name_enc; /* how names are encoded */
	enum pol_enc text_enc; /* how the rest is encoded */
	uint8_t kind, fallback_kind;
};

/* The rule for a pair's name, matched in decoded form. A name too long to
 * decode is matched as it is (only prefix rules can match it then). */
static const struct pol_name_rule *pair_rule(const struct pol_names *t,
					     const uint8_t *s, size_t n,
					     enum pol_enc enc)
{
	char buf[POL_NAME_MAX];
	if (enc != POL_ENC_RAW && needs_decode(s, n, enc)) {
		int k = policy_pct_decode(s, n, enc == POL_ENC_FORM, buf,
					  sizeof(buf));
		if (k >= 0)
			return pol_names_find(t, (const uint8_t *)buf,
					      (size_t)k);
	}
	return pol_names_find(t, s, n);
}

/* A query or form name without a rule of its own, read loosely: the last
 * segment of a bracketed name (PHP's and Rails' user[password], an array's
 * password[]), then with its first letter in lowercase (AccessToken), then
 * all in lowercase (Password, ACCESS_TOKEN), so the rules for a credential
 * take its usual spellings. */
static const struct pol_name_rule *pair_rule_loose(const struct pol_names *t,
						   const uint8_t *s, size_t n,
						   enum pol_enc enc)
{
	char buf[POL_NAME_MAX];
	int k = policy_pct_decode(s, n, enc == POL_ENC_FORM, buf, sizeof(buf));
	if (k <= 0)
		return NULL;
	size_t b = 0, e = (size_t)k;
	while (e >= 2 && buf[e - 2] == '[' && buf[e - 1] == ']')
		e -= 2; /* password[] */
	if (e && buf[e - 1] == ']') {
		size_t o = e - 1;
		while (o > 0 && buf[o - 1] != '[')
			o--;
		if (o > 0) { /* user[password] */
			b = o;
			e--;
		}
	}
	if (e <= b)
		return NULL;
	const struct pol_name_rule *r = NULL;
	if (b || e != (size_t)k)
		r = pol_names_find(t, (const uint8_t *)buf + b, e - b);
	/* PascalCase to camelCase (AccessToken: accessToken), then all in
	 * lowercase (ACCESS_TOKEN: access_token) */
	for (int pass = 0; !r && pass < 2; pass++) {
		bool changed = false;
		for (size_t i = b; i < (pass ? e : b + 1); i++) {
			if (buf[i] >= 'A' && buf[i] <= 'Z') {
				buf[i] = (char)(buf[i] + 32);
				changed = true;
			}
		}
		if (changed)
			r = pol_names_find(t, (const uint8_t *)buf + b, e - b);
	}
	return r;
}

/* name=value pairs of [off, off+len): a value whose name has a rule (or the
 * fallback) is one span; everything else (names, separators, values
 * without a rule) is scanned by the detectors, in pieces between the
 * values that have rules. */
static void scan_pairs(struct pol_scan *sc, uint32_t off, uint32_t len,
		       const struct pair_cfg *pc)
{
	const uint8_t *v = sc->base + off;
	size_t pos = 0;
	uint32_t free_from = 0;
	struct policy_pair pr;
	while (!sc->full && pc->next(v, len, &pos, &pr)) {
		if (!pr.has_eq)
			continue;
		const struct pol_name_rule *r = NULL;
		uint8_t kind = pc->kind;
		if (pr.name_len && !names_empty(pc->names))
			r = pair_rule(pc->names, v + pr.name_off, pr.name_len,
				      pc->name_enc);
		if (!r && pr.name_len && !names_empty(pc->names) &&
		    (pc->kind == POLICY_KIND_QUERY || pc->kind == POLICY_KIND_FORM))
			r = pair_rule_loose(pc->names, v + pr.name_off,
					    pr.name_len, pc->name_enc);
		if (!r && pc->fallback) {
			r = pc->fallback;
			kind = pc->fallback_kind;
		}
		if (!r)
			continue;
		pol_scan_text(sc, off + free_from, pr.value_off - free_from,
			      pc->text_enc, pc->mask, 0);
		pol_out_add(sc, off + pr.value_off, pr.value_len, r->action,
			    kind, 0, 0, r->rule_id, r->rule);
		free_from = pr.value_off + pr.value_len;
	}
	pol_scan_text(sc, off + free_from, len - free_from, pc->text_enc,
		      pc->mask, 0);
}

static int next_set_cookie(const void *v, size_t len, size_t *pos,
			   struct policy_pair *pr)
{
	if (*pos)
		return 0;
	*pos = len;
	return policy_set_cookie_pair(v, len, pr);
}

/* Headers whose value is a URL or a path with its query: the referring
 * and redirect URLs, and the original request path a proxy keeps when it
 * rewrites :path (Envoy's x-envoy-original-path, nginx's and IIS's
 * x-original-uri / x-original-url, Traefik's x-forwarded-uri). */
static bool url_header(const uint8_t *n, size_t len)
{
	static const char *const names[] = {
		"referer", "location", "content-location",
		"x-envoy-original-path", "x-original-url", "x-original-uri",
		"x-forwarded-uri",
	};
	for (size_t i = 0; i < ST_ARRAY_SIZE(names); i++)
		if (name_is(n, len, names[i]))
			return true;
	return false;
}

/* A URL or origin-form path: the query's parameters by the query rules,
 * and so are the fragment's: OAuth's implicit grant and OpenID Connect's
 * response_mode=fragment put access_token and id_token there (RFC 6749
 * §4.2.2), in a redirect's location; the rest (and unmatched values) by
 * the detectors on percent-decoded text. '+' is left as is in URLs, but
 * between two digits: decoding it to a blank would cut an e-mail address
 * like a+b@x.org in two, leaving it would hide a card's groups
 * ("4539+1488+0343+6467"). */
static void scan_url(struct pol_scan *sc, uint32_t len, unsigned mask)
{
	const uint8_t *v = sc->base;
	if (names_empty(&sc->rs->query)) {
		pol_scan_text(sc, 0, len, POL_ENC_PCT, mask, 0);
		return;
	}
	const uint8_t *hash = memchr(v, '#', len);
	size_t fe = hash ? (size_t)(hash - v) : len; /* where '#' is */
	size_t q = policy_query_offset(v, fe);       /* after '?', or fe */
	struct pair_cfg pc = {
		.names = &sc->rs->query, .next = policy_param_next,
		.mask = mask, .name_enc = POL_ENC_FORM,
		.text_enc = POL_ENC_PCT, .kind = POLICY_KIND_QUERY,
	};
	pol_scan_text(sc, 0, (uint32_t)q, POL_ENC_PCT, mask, 0);
	if (q < fe)
		scan_pairs(sc, (uint32_t)q, (uint32_t)(fe - q), &pc);
	if (hash) {
		pc.next = fragment_param_next;
		scan_pairs(sc, (uint32_t)fe + 1, (uint32_t)(len - fe - 1), &pc);
	}
}

static void scan_init(struct pol_scan *sc, const struct policy_route *r,
		      const void *base, size_t len, struct policy_span *spans,
		      unsigned max, struct pol_view *view)
{
	*sc = (struct pol_scan){
		.p = r->policy, .rs = r->rules, .base = base, .spans = spans,
		.max = max, .total = (uint32_t)len, .view = view,
	};
}

struct policy_verdict policy_header_action(const struct policy_route *r,
					   const void *name, size_t len)
{
	struct policy_verdict v = { 0 };
	if (!r || (!name && len))
		return v;
	const struct pol_name_rule *h =
		pol_names_find(&r->rules->headers, name, len);
	if (h) {
		v.action = h->action;
		v.kind = POLICY_KIND_HEADER;
		v.rule_id = h->rule_id;
		v.rule = h->rule;
	}
	return v;
}

int policy_scan_value(const struct policy_route *r, const void *name,
		      size_t name_len, const void *value, size_t value_len,
		      struct policy_span *spans, unsigned max,
		      unsigned *flags)
{
	if (!r || !spans || max == 0 || (!name && name_len) ||
	    (!value && value_len) || value_len > UINT32_MAX)
		return -EINVAL;
	struct pol_view view;
	struct pol_scan sc;
	const struct policy_rules *rs = r->rules;
	const uint8_t *n = name;
	scan_init(&sc, r, value, value_len, spans, max, &view);
	const struct pol_name_rule *h = pol_names_find(&rs->headers, n,
						       name_len);
	uint8_t ha = h ? h->action : POLICY_ACTION_NONE;
	bool cookie = name_is(n, name_len, "cookie");
	bool set_cookie = !cookie && name_is(n, name_len, "set-cookie");

	if (value_len == 0 || ha == POLICY_ACTION_KEEP) {
		/* nothing to scan */
	} else if ((cookie || set_cookie) && !names_empty(&rs->cookies)) {
		struct pair_cfg pc = {
			.names = &rs->cookies,
			.fallback = ha > POLICY_ACTION_KEEP ? h : NULL,
			.next = cookie ? policy_cookie_next : next_set_cookie,
			.mask = rs->det_mask[POL_SCOPE_HEADERS],
			.name_enc = POL_ENC_RAW, .text_enc = POL_ENC_PCT,
			.kind = POLICY_KIND_COOKIE,
			.fallback_kind = POLICY_KIND_HEADER,
		};
		scan_pairs(&sc, 0, (uint32_t)value_len, &pc);
	} else if (ha > POLICY_ACTION_KEEP) {
		pol_out_add(&sc, 0, (uint32_t)value_len, ha,
			    POLICY_KIND_HEADER, 0, 0, h->rule_id, h->rule);
	} else if (name_is(n, name_len, ":path")) {
		scan_url(&sc, (uint32_t)value_len,
			 rs->det_mask[POL_SCOPE_PATH]);
	} else if (url_header(n, name_len)) {
		scan_url(&sc, (uint32_t)value_len,
			 rs->det_mask[POL_SCOPE_HEADERS]);
	} else {
		pol_scan_text(&sc, 0, (uint32_t)value_len, POL_ENC_RAW,
			      rs->det_mask[POL_SCOPE_HEADERS], 0);
	}
	if (flags)
		*flags |= sc.flags;
	return (int)sc.n;
}

/* ---- bodies ---------------------------------------------------------------------- */

/* BODY_WIDE: text in a charset whose characters are not single ASCII
 * bytes (UTF-16, UTF-32): no detector reads it */
enum body_kind { BODY_TEXT, BODY_JSON, BODY_FORM, BODY_SKIP, BODY_WIDE };

static bool has_prefix(const char *s, size_t n, const char *p)
{
	size_t l = strlen(p);
	return n >= l && memcmp(s, p, l) == 0;
}

static bool is(const char *s, size_t n, const char *p)
{
	return n == strlen(p) && memcmp(s, p, n) == 0;
}

/* The media type of a content-type value (RFC 9110 §8.3.1: type/subtype,
 * case-insensitive, parameters after ';'). */
static size_t media_type(const uint8_t *ct, size_t n, char mt[128])
{
	size_t i = 0, k = 0;
	while (i < n && is_blank(ct[i]))
		i++;
	while (i < n && ct[i] != ';' && !is_blank(ct[i]) && k < 128)
		mt[k++] = (char)lc(ct[i++]);
	return k;
}

/* Whether the charset parameter of content-type |ct| names UTF-16 or
 * UTF-32: its labels in the WHATWG Encoding Standard and IANA's (a
 * parameter is name=token or name="quoted", RFC 9110 5.6.6). */
bool policy_ctype_wide(const void *ctype, size_t n)
{
	static const char *const wide[] = {
		"utf-16", "utf-16le", "utf-16be", "utf-32", "utf-32le",
		"utf-32be", "ucs-2", "ucs-4", "unicode", "csunicode",
		"iso-10646-ucs-2", "unicodefeff", "unicodefffe", "utf16",
		"utf32", "csutf16", "csutf32",
	};
	const uint8_t *ct = ctype;
	size_t i = 0;
	while (i < n && ct[i] != ';')
		i++;
	while (i < n) {
		i++; /* past ';' */
		while (i < n && is_blank(ct[i]))
			i++;
		size_t nb = i;
		while (i < n && ct[i] != '=' && ct[i] != ';')
			i++;
		size_t ne = i;
		while (ne > nb && is_blank(ct[ne - 1]))
			ne--;
		if (i >= n || ct[i] == ';')
			continue;
		i++; /* past '=' */
		size_t vb = i, ve;
		if (i < n && ct[i] == '"') {
			vb = ++i;
			while (i < n && ct[i] != '"')
				i += ct[i] == '\\' && i + 1 < n ? 2 : 1;
			ve = i < n ? i : n;
			while (i < n && ct[i] != ';')
				i++;
		} else {
			while (i < n && ct[i] != ';')
				i++;
			ve = i;
			while (ve > vb && is_blank(ct[ve - 1]))
				ve--;
		}
		if (ne - nb != 7 || strncasecmp((const char *)ct + nb, "charset", 7))
			continue;
		for (size_t w = 0; w < ST_ARRAY_SIZE(wide); w++)
			if (strlen(wide[w]) == ve - vb &&
			    !strncasecmp((const char *)ct + vb, wide[w], ve - vb))
				return true;
		return false; /* the first charset counts */
	}
	return false;
}

static enum body_kind body_kind(const uint8_t *ct, size_t n)
{
	char mt[128];
	size_t k = media_type(ct, n, mt);
	if (k == 0)
		return BODY_TEXT;
	if (policy_ctype_wide(ct, n))
		return BODY_WIDE;
	if (is(mt, k, "application/json") || is(mt, k, "text/json") ||
	    is(mt, k, "application/x-ndjson") ||
	    (k > 5 && memcmp(mt + k - 5, "+json", 5) == 0))
		return BODY_JSON;
	if (is(mt, k, "application/x-www-form-urlencoded"))
		return BODY_FORM;
	if (has_prefix(mt, k, "image/") || has_prefix(mt, k, "audio/") ||
	    has_prefix(mt, k, "video/") || has_prefix(mt, k, "font/") ||
	    is(mt, k, "application/octet-stream") ||
	    is(mt, k, "application/zip") || is(mt, k, "application/gzip") ||
	    is(mt, k, "application/x-gzip") || is(mt, k, "application/pdf"))
		return BODY_SKIP;
	return BODY_TEXT;
}

bool policy_scans_body(const struct policy_route *r, const void *ctype,
		       size_t ctype_len)
{
	return r && r->rules->scans_bodies &&
	       body_kind(ctype, ctype ? ctype_len : 0) != BODY_SKIP;
}

bool policy_body_reads_on(const void *ctype, size_t ctype_len)
{
	enum body_kind k = body_kind(ctype, ctype ? ctype_len : 0);
	return k == BODY_JSON || k == BODY_FORM;
}

unsigned policy_body_protobuf(const void *ctype, size_t ctype_len,
			      bool *is_pb)
{
	char mt[128];
	size_t k = ctype ? media_type(ctype, ctype_len, mt) : 0;
	*is_pb = true;
	if (is(mt, k, "application/grpc") ||
	    is(mt, k, "application/grpc+proto") ||
	    is(mt, k, "application/grpc-web") ||
	    is(mt, k, "application/grpc-web+proto"))
		return POLICY_PB_FRAMED;
	/* gRPC framing around another codec: the frames are read, their
	 * content is not protobuf */
	if (is(mt, k, "application/grpc+json") ||
	    is(mt, k, "application/grpc-web+json"))
		return POLICY_PB_FRAMED | POLICY_PB_JSON;
	if (has_prefix(mt, k, "application/grpc+") ||
	    has_prefix(mt, k, "application/grpc-web+"))
		return POLICY_PB_FRAMED | POLICY_PB_RAW;
	*is_pb = is(mt, k, "application/x-protobuf") ||
		 is(mt, k, "application/protobuf") ||
		 is(mt, k, "application/vnd.google.protobuf");
	return 0;
}

static bool digit_or_upper(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

bool policy_hit_byte(const void *text, size_t len, size_t i)
{
	const uint8_t *b = text;
	uint8_t c = b[i];
	if ((c >= 'a' && c <= 'z') || digit_or_upper(c) ||
	    (c && strchr("-._~+/=%@", c)))
		return true;
	return c == ' ' && (i == 0 || digit_or_upper(b[i - 1])) &&
	       (i + 1 == len || digit_or_upper(b[i + 1]));
}

size_t policy_guard_cut(const void *text, size_t start, size_t cut)
{
	const uint8_t *b = text;
	size_t len = cut;
	while (cut > start && len - cut < POLICY_GUARD_MAX) {
		if (policy_hit_byte(text, len, cut - 1)) {
			cut--;
			continue;
		}
		/* a backslash with a run before it may be an escape inside
		 * the value (JSON "alice\u0040example.com"): the run goes on
		 * before it */
		if (b[cut - 1] == '\\' && cut - 1 > start &&
		    policy_hit_byte(text, len, cut - 2)) {
			cut--;
			continue;
		}
		break;
	}
	return cut;
}

int policy_scan_opaque(const struct policy_route *r, const void *body,
		       size_t len, uint16_t rule, struct policy_span *spans,
		       unsigned max)
{
	if (!r || !spans || max == 0 || (!body && len) || len > UINT32_MAX)
		return -EINVAL;
	if (!r->rules->scans_bodies || len == 0)
		return 0;
	struct pol_view view;
	struct pol_scan sc;
	scan_init(&sc, r, body, len, spans, max, &view);
	pol_scan_rest(&sc, 0, rule, false);
	return (int)sc.n;
}

/* How an application/x-www-form-urlencoded body is read: pairs by '&',
 * names matched against the form rules, the detectors everywhere else. */
static struct pair_cfg form_cfg(const struct policy_rules *rs)
{
	return (struct pair_cfg){
		.names = &rs->form, .next = policy_param_next,
		.mask = rs->det_mask[POL_SCOPE_BODY], .name_enc = POL_ENC_FORM,
		.text_enc = POL_ENC_FORM, .kind = POLICY_KIND_FORM,
	};
}

bool policy_body_wide_bom(const void *body, size_t n)
{
	const uint8_t *b = body;
	return n >= 2 && ((b[0] == 0xff && b[1] == 0xfe) ||
			  (b[0] == 0xfe && b[1] == 0xff) ||
			  (n >= 4 && !b[0] && !b[1] && b[2] == 0xfe &&
			   b[3] == 0xff));
}

int policy_scan_body(const struct policy_route *r, const void *ctype,
		     size_t ctype_len, const void *body, size_t len,
		     struct policy_span *spans, unsigned max, unsigned *flags)
{
	if (!r || !spans || max == 0 || (!ctype && ctype_len) ||
	    (!body && len) || len > UINT32_MAX)
		return -EINVAL;
	const struct policy_rules *rs = r->rules;
	if (!rs->scans_bodies || len == 0)
		return 0;
	enum body_kind kind = body_kind(ctype, ctype ? ctype_len : 0);
	if (kind == BODY_SKIP)
		return 0;
	struct pol_view view;
	struct pol_scan sc;
	scan_init(&sc, r, body, len, spans, max, &view);
	if (kind == BODY_WIDE ||
	    (kind != BODY_JSON && policy_body_wide_bom(body, len))) {
		/* read as bytes, UTF-16 or -32 hides every hit */
		pol_scan_rest(&sc, 0, POLICY_RULE_LIMIT_CHARSET, false);
		if (flags)
			*flags |= sc.flags;
		return (int)sc.n;
	}
	uint32_t lim = r->policy->limits.body_bytes;
	/* a value the limit cuts goes wholly to the unscanned rest: its
	 * first part alone would not be found (a card's first groups). In
	 * JSON the value then ends at the moved cut (policy_json.c: a value
	 * open at the end is handled as far as it goes) */
	uint32_t n = len <= lim ? (uint32_t)len
				: (uint32_t)policy_guard_cut(body, 0, lim);
	unsigned mask = rs->det_mask[POL_SCOPE_BODY];
	switch (kind) {
	case BODY_JSON:
		pol_json_scan(&sc, 0, n);
		break;
	case BODY_FORM: {
		struct pair_cfg pc = form_cfg(rs);
		scan_pairs(&sc, 0, n, &pc);
		break;
	}
	default:
		pol_scan_text(&sc, 0, n, POL_ENC_RAW, mask, 0);
		break;
	}
	if (len > n && !sc.full) {
		sc.flags |= POLICY_SCAN_BODY_CUT;
		pol_scan_rest(&sc, n, POLICY_RULE_LIMIT_BODY, false);
	}
	if (flags)
		*flags |= sc.flags;
	return (int)sc.n;
}

/* Drops the spans that cover only the first |carry| bytes of the input
 * (handled with the chunk before), clips the ones that start there, and
 * makes offsets relative to the chunk. Returns the new count. */
static unsigned clip_carry(struct policy_span *sp, unsigned n, uint32_t carry)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		struct policy_span s = sp[i];
		if (s.off + s.len <= carry)
			continue;
		if (s.off < carry) {
			s.len -= carry - s.off;
			s.off = carry;
			if (s.flags & POLICY_SPAN_JSON_VALUE)
				s.flags |= POLICY_SPAN_OPEN_BEFORE;
		}
		s.off -= carry;
		sp[k++] = s;
	}
	return k;
}

/* A name longer than this, in a pair longer than the carry, is not kept:
 * the value's rule is then unknown in the next chunk. */
#define FORM_NAME_MAX 1024u

/* Keeps in |js| the pair a form chunk ends inside (the bytes of |in| after
 * its last '&'), so the next chunk is read behind it: whole when it fits
 * the carry, else its name and '=' and the value's last bytes. A pair
 * whose name does not fit loses it (carry_cut): the next chunk's value
 * part is then redacted up to its first '&'. */
static void form_keep(struct policy_json_stream *js, const uint8_t *in,
		      uint32_t total, bool last)
{
	const uint8_t *amp = last ? NULL : memrchr(in, '&', total);
	uint32_t p = amp ? (uint32_t)(amp - in) + 1 : 0;
	uint32_t pl = total - p, name = 0, keep = pl;
	bool lost = last || (!amp && js->carry_cut);
	if (!lost && pl > POLICY_JSON_CARRY) {
		const uint8_t *eq = memchr(in + p, '=', pl < FORM_NAME_MAX ? pl : FORM_NAME_MAX);
		name = eq ? (uint32_t)(eq - (in + p)) + 1 : 0;
		keep = POLICY_JSON_CARRY - name;
		lost = !eq;
	}
	uint32_t old = js->carry_len;
	js->carry_cut = !last && lost;
	js->carry_len = lost ? 0 : name + keep;
	if (!lost) {
		/* |in| is the chunk or the scratch copy, never the carry */
		memcpy(js->carry, in + p, name);
		memcpy(js->carry + name, in + total - keep, keep);
	}
	if (old > js->carry_len)
		explicit_bzero(js->carry + js->carry_len, old - js->carry_len);
}

/* policy_scan_body_chunk() of a form: the chunk read behind the pair the
 * boundary cut (|js|'s carry), so that pair's rule takes its continuation
 * and a detector's hit across the boundary is found; spans over the
 * carried bytes, sent with the chunk before, are dropped. */
static int form_chunk(const struct policy_route *r,
		      struct policy_json_stream *js, const uint8_t *chunk,
		      uint32_t len, bool last, uint8_t *scratch,
		      struct policy_span *spans, unsigned max, unsigned *flags)
{
	uint32_t carry = js->carry_len;
	const uint8_t *in = chunk;
	if (carry) {
		memcpy(scratch, js->carry, carry);
		if (len)
			memcpy(scratch + carry, chunk, len);
		in = scratch;
	}
	uint32_t total = carry + len;
	struct pol_view view;
	struct pol_scan sc;
	scan_init(&sc, r, in, total, spans, max, &view);
	uint32_t lim = r->policy->limits.body_bytes;
	/* body_bytes is the chunk's: the carry (sent before) does not count */
	uint32_t n = (uint64_t)total > (uint64_t)carry + lim
			     ? (uint32_t)policy_guard_cut(in, carry, carry + lim)
			     : total;
	uint32_t from = 0;
	bool resumed = !js->carry_cut;
	if (js->carry_cut) {
		/* the pair's name went by with the chunks before */
		const uint8_t *amp = memchr(in, '&', n);
		from = amp ? (uint32_t)(amp - in) : n;
		if (from)
			pol_out_add(&sc, 0, from, POLICY_ACTION_REDACT,
				    POLICY_KIND_LIMIT, 0, 0,
				    POLICY_RULE_LIMIT_CHUNK,
				    sc.p->rule_names[POLICY_RULE_LIMIT_CHUNK]);
	}
	struct pair_cfg pc = form_cfg(r->rules);
	scan_pairs(&sc, from, n - from, &pc);
	if (total > n && !sc.full) {
		sc.flags |= POLICY_SCAN_BODY_CUT;
		pol_scan_rest(&sc, n, POLICY_RULE_LIMIT_BODY, false);
	}
	form_keep(js, in, total, last);
	sc.n = clip_carry(spans, sc.n, carry);
	if (carry)
		explicit_bzero(scratch, total);
	/* the end of a chunk that is not the last may cut a value whose
	 * first part no detector can tell yet: the caller guards it */
	if (flags)
		*flags |= sc.flags | (resumed ? POLICY_SCAN_RESUMED : 0) |
			  (last ? 0 : POLICY_SCAN_CUT_STRING);
	return (int)sc.n;
}

int policy_scan_body_chunk(const struct policy_route *r, const void *ctype,
			   size_t ctype_len, struct policy_json_stream *js,
			   const void *chunk, size_t len, bool last,
			   void *scratch, struct policy_span *spans,
			   unsigned max, unsigned *flags)
{
	if (!js || !scratch || (!chunk && len) || len > UINT32_MAX - POLICY_JSON_CARRY)
		return -EINVAL;
	enum body_kind kind = r ? body_kind(ctype, ctype ? ctype_len : 0)
				: BODY_TEXT;
	if (!r || (kind != BODY_JSON && kind != BODY_FORM) ||
	    !r->rules->scans_bodies)
		return policy_scan_body(r, ctype, ctype_len, chunk, len, spans,
					max, flags);
	if (!spans || max == 0 || (!ctype && ctype_len))
		return -EINVAL;
	if (kind == BODY_FORM)
		return form_chunk(r, js, chunk, (uint32_t)len, last, scratch,
				  spans, max, flags);
	if (len == 0 && !js->carry_len)
		return 0;
	struct pol_view view;
	struct pol_scan sc;
	if (js->dead) {
		scan_init(&sc, r, chunk, len, spans, max, &view);
		sc.flags |= POLICY_SCAN_MALFORMED;
		pol_scan_rest(&sc, 0, POLICY_RULE_LIMIT_MALFORMED, true);
		if (flags)
			*flags |= sc.flags;
		return (int)sc.n;
	}
	/* the carried token, then the chunk, side by side in |scratch|;
	 * without a carry the chunk is parsed where it is (no copy) */
	const uint8_t *in = chunk;
	uint32_t carry = js->carry_len;
	/* the chunk's start was seen in context unless the carry lost the
	 * start of its token, or a too-deep container is being skipped
	 * (only the detectors run there, on each chunk's piece alone) */
	bool whole = !js->carry_cut && !(js->skipping && !js->skip_acc);
	if (carry) {
		memcpy(scratch, js->carry, carry);
		if (len)
			memcpy((uint8_t *)scratch + carry, chunk, len);
		in = scratch;
	}
	uint32_t total = carry + (uint32_t)len;
	scan_init(&sc, r, in, total, spans, max, &view);
	uint32_t lim = r->policy->limits.body_bytes;
	/* as in a whole body, the cut moves back past a value it splits;
	 * never into the carry, whose bytes went out with the chunk before
	 * (starred there by ext_proc's chunk guard when a string was open) */
	bool cut = (uint64_t)total > (uint64_t)carry + lim;
	uint32_t n = cut ? (uint32_t)policy_guard_cut(in, carry, carry + lim)
			 : total;
	pol_json_scan_chunk(&sc, n, js, last || cut);
	if (!last && !cut && !js->dead &&
	    ((js->carry_len && js->carry[0] == '"') ||
	     (js->skipping && !js->skip_acc)))
		sc.flags |= POLICY_SCAN_CUT_STRING;
	if (cut && !sc.full) {
		sc.flags |= POLICY_SCAN_BODY_CUT;
		pol_scan_rest(&sc, n, POLICY_RULE_LIMIT_BODY, false);
	}
	if (cut || sc.full)
		js->dead = 1;
	sc.n = clip_carry(spans, sc.n, carry);
	if (carry)
		explicit_bzero(scratch, total);
	if (flags)
		*flags |= sc.flags | (whole ? POLICY_SCAN_RESUMED : 0);
	return (int)sc.n;
}

/* ---- routes ------------------------------------------------------------------------ */

/* Longest path a regex route is matched against; longer paths never
 * match one (docs/policy.md "Bounds"). */
#define POL_REGEX_PATH_MAX 8192u

struct req {
	const uint8_t *host, *port, *path, *method;
	size_t host_len, port_len, path_len, method_len;
	bool grpc;
	bool rx_ready; /* |rx| holds the path, NUL-terminated */
	char *rx;      /* POL_REGEX_PATH_MAX bytes on the caller's stack */
};

static bool ieq_lower(const uint8_t *s, const char *lower, size_t n)
{
	return name_eq(lower, s, n, true);
}

static void split_authority(const uint8_t *a, size_t n, struct req *q)
{
	q->host = a;
	q->host_len = n;
	q->port = NULL;
	q->port_len = 0;
	if (!a || !n)
		return;
	size_t colon = n;
	if (a[0] == '[') {
		const uint8_t *rb = memchr(a, ']', n);
		if (rb) {
			size_t e = (size_t)(rb - a) + 1;
			q->host_len = e;
			if (e < n && a[e] == ':')
				colon = e;
		}
	} else {
		const uint8_t *c = memchr(a, ':', n);
		if (c)
			colon = (size_t)(c - a);
		q->host_len = colon;
	}
	if (colon < n) {
		q->port = a + colon + 1;
		q->port_len = n - colon - 1;
	}
	/* "example.com." names the same host as "example.com". */
	if (q->host_len > 1 && a[q->host_len - 1] == '.')
		q->host_len--;
}

static bool route_matches(const struct policy_route *r, struct req *q)
{
	switch (r->auth_kind) {
	case POL_AUTH_EXACT:
		if (q->host_len != r->auth_len ||
		    !ieq_lower(q->host, r->auth, r->auth_len))
			return false;
		break;
	case POL_AUTH_SUFFIX:
		if (q->host_len <= r->auth_len ||
		    !ieq_lower(q->host + q->host_len - r->auth_len, r->auth,
			       r->auth_len))
			return false;
		break;
	default:
		break;
	}
	if (r->port && (q->port_len != r->port_len ||
			memcmp(q->port, r->port, r->port_len) != 0))
		return false;
	if (r->nmethods) {
		unsigned k;
		for (k = 0; k < r->nmethods; k++)
			if (q->method_len == r->method_len[k] &&
			    memcmp(q->method, r->methods[k], q->method_len) == 0)
				break;
		if (k == r->nmethods)
			return false;
	}
	switch (r->path_kind) {
	case POL_PATH_PREFIX:
		return q->path_len >= r->prefix_len &&
		       memcmp(q->path, r->prefix, r->prefix_len) == 0;
	case POL_PATH_GRPC:
		if (!q->grpc || q->path_len < r->prefix_len ||
		    (r->grpc_exact && q->path_len != r->prefix_len))
			return false;
		return memcmp(q->path, r->prefix, r->prefix_len) == 0;
	case POL_PATH_REGEX: {
		if (q->path_len < r->prefix_len ||
		    (r->prefix_len &&
		     memcmp(q->path, r->prefix, r->prefix_len) != 0))
			return false;
		/* regexec() wants a C string (and sanitizers check it as
		 * one), so the path is copied once per request, NUL-
		 * terminated; REG_STARTEND then bounds the match to its
		 * length, so a NUL inside the path is just a byte. */
		if (q->path_len >= POL_REGEX_PATH_MAX)
			return false;
		if (!q->rx_ready) {
			if (q->path_len)
				memcpy(q->rx, q->path, q->path_len);
			q->rx[q->path_len] = '\0';
			q->rx_ready = true;
		}
		regmatch_t m = { .rm_so = 0, .rm_eo = (regoff_t)q->path_len };
		return regexec(r->re, q->rx, 1, &m, REG_STARTEND) == 0;
	}
	default:
		return true;
	}
}

const struct policy_route *
policy_route_for(const struct policy *p, const struct policy_request *rq)
{
	char rx[POL_REGEX_PATH_MAX];
	struct req q = { .rx = rx };
	if (!p)
		return NULL;
	if (!rq || p->nroutes == 0)
		return &p->def;
	split_authority(rq->authority, rq->authority ? rq->authority_len : 0,
			&q);
	q.path = rq->path;
	q.path_len = rq->path ? rq->path_len : 0;
	for (size_t i = 0; i < q.path_len; i++) {
		if (q.path[i] == '?' || q.path[i] == '#') {
			q.path_len = i;
			break;
		}
	}
	q.method = rq->method;
	q.method_len = rq->method ? rq->method_len : 0;
	if (rq->content_type && rq->content_type_len >= 16) {
		const char *g = "application/grpc";
		q.grpc = ieq_lower(rq->content_type, g, 16);
	}
	for (unsigned i = 0; i < p->nroutes; i++)
		if (route_matches(&p->routes[i], &q))
			return &p->routes[i];
	return &p->def;
}

const char *policy_route_name(const struct policy_route *r)
{
	return r->name;
}

const struct policy_tenant *policy_route_tenant(const struct policy_route *r)
{
	return r->tenant;
}

const char *policy_route_rules_name(const struct policy_route *r)
{
	return r->rules->name;
}

bool policy_route_scans_bodies(const struct policy_route *r)
{
	return r->rules->scans_bodies;
}
