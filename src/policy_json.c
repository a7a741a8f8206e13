/* JSON bodies: field path rules and detectors on values.
 *
 * A small streaming parser of our own (RFC 8259), iterative with an
 * explicit stack of at most limits.json_depth frames (never recursion), no
 * allocation, one pass. It validates the grammar as it goes; on the first
 * error the rest of the body is treated as unscanned (fail closed, see
 * policy.h) and POLICY_SCAN_MALFORMED is set. A body cut short (truncated
 * capture, limits.body_bytes) simply ends: a value open at the end is
 * handled as far as it goes. Several top-level values in a row (NDJSON)
 * are accepted.
 *
 * Paths. All JSON paths of a rule set form one NFA (policy_priv.h). Each
 * container on the stack keeps the state set of its node; a member's set is
 * computed from its key (decoded, so "\u0073sn" is "ssn"), an element's
 * from its index. A value whose set holds an accepting state is handled as
 * a whole by the strongest matching rule (ties: the first in the file): a
 * string's inner bytes, or the whole text of a number, literal, object or
 * array, become one span; keep skips it, detectors included.
 *
 * Detectors run on every other string (keys included: maps keyed by
 * e-mail address exist), on its decoded form when it has escapes, and on
 * numbers (a card number sent as a JSON number); a hit inside a number
 * covers the whole number so the replacement can be a quoted token.
 *
 * Chunks (pol_json_scan_chunk, for ext_proc bodies in several messages):
 * the same loop, with the stack, the pending member set, a container
 * being skipped and the token the chunk's end cut kept in a
 * policy_json_stream. The cut token's bytes (the carry) are put before the
 * next chunk and parsed again from the state as it was before that token,
 * so keys match and detectors see values whole; policy_match.c drops the
 * spans of the carried part. A number cut by a boundary is redacted as 9s
 * in each part (cut_scalar), and a container a rule takes is skipped with
 * its bracket and string state carried over (skip_run).
 */
#include <string.h>

#include "policy_priv.h"
#include "sealtap/common.h"

#define W POL_JSON_WORDS

enum { F_OBJ = 0, F_ARR = 1 };
enum {
	S_KEY_OR_END, /* after '{' */
	S_KEY,        /* after ',' in an object */
	S_COLON,
	S_VALUE,        /* after ':' or ',' in an array */
	S_COMMA_OR_END,
	S_VALUE_OR_END, /* after '[' */
};
enum { J_OK = 0, J_EOF = 1, J_ERR = 2 };

struct jx {
	struct pol_scan *sc;
	const struct pol_json *nfa;
	const uint8_t *s;
	uint32_t pos, end;
	unsigned mask;      /* body detectors */
	unsigned depth, depth_max;
	bool live;          /* the rule set has JSON paths */
	uint64_t pending[W]; /* set of the member whose key was just read */
	/* chunks (pol_json_scan_chunk); NULL / 0 for a whole body */
	struct policy_json_stream *js;
	bool last;          /* the input ends where the body ends */
	uint32_t carry;     /* leading bytes carried from the chunk before */
	struct pol_jframe st[POL_JSON_DEPTH_MAX];
};

static inline bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* The string starting with the quote at |p|. Returns 1 with *|close| at
 * the closing quote, 0 if the input ends first (*|close| = |end|), -1 for a
 * control character or a bad escape. *|esc| tells if it has escapes. */
static int str_end(const uint8_t *s, uint32_t p, uint32_t end,
		   uint32_t *close, bool *esc)
{
	*esc = false;
	for (uint32_t i = p + 1; i < end; i++) {
		uint8_t c = s[i];
		if (c == '"') {
			*close = i;
			return 1;
		}
		if (c == '\\') {
			*esc = true;
			if (i + 1 >= end)
				break;
			uint8_t e = s[i + 1];
			if (e == 'u') {
				for (uint32_t k = i + 2; k < i + 6; k++) {
					if (k >= end) {
						*close = end;
						return 0;
					}
					if (!is_hex(s[k]))
						return -1;
				}
				i += 5;
			} else if (strchr("\"\\/bfnrt", e) && e) {
				i++;
			} else {
				return -1;
			}
		} else if (c < 0x20) {
			return -1;
		}
	}
	*close = end;
	return 0;
}

/* End of the number at |i|: its end offset, -1 if malformed, -2 if the
 * input ends inside it where more was required. */
static long num_end(const uint8_t *s, uint32_t i, uint32_t end)
{
	if (i < end && s[i] == '-')
		i++;
	if (i >= end)
		return -2;
	if (s[i] == '0') {
		i++;
	} else if (is_digit(s[i])) {
		while (i < end && is_digit(s[i]))
			i++;
	} else {
		return -1;
	}
	if (i < end && s[i] == '.') {
		if (++i >= end)
			return -2;
		if (!is_digit(s[i]))
			return -1;
		while (i < end && is_digit(s[i]))
			i++;
	}
	if (i < end && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < end && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= end)
			return -2;
		if (!is_digit(s[i]))
			return -1;
		while (i < end && is_digit(s[i]))
			i++;
	}
	return (long)i;
}

/* true/false/null at |i|: end offset, -1, or -2 (cut short). */
static long lit_end(const uint8_t *s, uint32_t i, uint32_t end)
{
	const char *w = s[i] == 't' ? "true" : s[i] == 'f' ? "false" : "null";
	size_t l = strlen(w);
	for (size_t k = 0; k < l; k++) {
		if (i + k >= end)
			return -2;
		if (s[i + k] != (uint8_t)w[k])
			return -1;
	}
	return (long)(i + l);
}

/* One past the bracket that closes the container opening at |p|, counting
 * brackets outside strings (no stack, so any depth). Sets *|closed| false
 * and returns |end| when the input ends first or a string inside is bad. */
static uint32_t skip_container(const uint8_t *s, uint32_t p, uint32_t end,
			       bool *closed)
{
	uint32_t d = 0;
	*closed = false;
	for (uint32_t i = p; i < end; i++) {
		uint8_t c = s[i];
		if (c == '"') {
			uint32_t close;
			bool esc;
			if (str_end(s, i, end, &close, &esc) <= 0)
				return end;
			i = close;
		} else if (c == '{' || c == '[') {
			d++;
		} else if (c == '}' || c == ']') {
			if (--d == 0) {
				*closed = true;
				return i + 1;
			}
		}
	}
	return end;
}

/* ---- NFA ---------------------------------------------------------------- */

static bool set_any(const uint64_t *a)
{
	uint64_t o = 0;
	for (unsigned w = 0; w < W; w++)
		o |= a[w];
	return o != 0;
}

static inline void set_bit(uint64_t *a, unsigned s)
{
	a[s / 64] |= 1ull << (s % 64);
}

/* |out| = states reached from |in| by a member named |key| (|klen| bytes;
 * |klen| < 0: an array element with index |idx|, or, with -2, a member
 * whose name is too long to match any rule). */
static void jstep(const struct pol_json *j, const uint64_t *in,
		  const uint8_t *key, long klen, uint32_t idx, uint64_t *out)
{
	memset(out, 0, W * sizeof(uint64_t));
	for (unsigned w = 0; w < W; w++) {
		uint64_t bits = in[w];
		while (bits) {
			unsigned s = w * 64 + (unsigned)__builtin_ctzll(bits);
			bits &= bits - 1;
			const struct pol_jstate *st = &j->st[s];
			bool named = (st->kind == POL_J_CHILD ||
				      st->kind == POL_J_DESC) &&
				     klen >= 0 && (size_t)klen == st->len &&
				     (st->len == 0 ||
				      memcmp(key, st->name, st->len) == 0);
			switch (st->kind) {
			case POL_J_CHILD:
				if (named)
					set_bit(out, s + 1);
				break;
			case POL_J_ANY:
				set_bit(out, s + 1);
				break;
			case POL_J_INDEX:
				if (klen == -1 && st->index == idx)
					set_bit(out, s + 1);
				break;
			case POL_J_DESC:
				set_bit(out, s);
				if (named)
					set_bit(out, s + 1);
				break;
			case POL_J_DESC_ANY:
				set_bit(out, s);
				set_bit(out, s + 1);
				break;
			default:
				break;
			}
		}
	}
}

/* The strongest accepting state in |set|, first in the file on ties. */
static const struct pol_jstate *accepted(const struct pol_json *j,
					 const uint64_t *set)
{
	const struct pol_jstate *best = NULL;
	for (unsigned w = 0; w < W; w++) {
		uint64_t bits = set[w] & j->accept[w];
		while (bits) {
			unsigned s = w * 64 + (unsigned)__builtin_ctzll(bits);
			bits &= bits - 1;
			if (!best || j->st[s].action > best->action)
				best = &j->st[s];
		}
	}
	return best;
}

/* ---- scanning ----------------------------------------------------------- */

static void rest(struct jx *x, uint32_t from, uint16_t rule_id)
{
	struct pol_scan *sc = x->sc;
	uint8_t a = sc->p->limits.unscanned;
	if (from >= x->end)
		return;
	if (a > POLICY_ACTION_KEEP)
		pol_out_add(sc, from, x->end - from, a, POLICY_KIND_LIMIT, 0, 0,
			    rule_id, sc->p->rule_names[rule_id]);
	else
		pol_scan_text(sc, from, x->end - from, POL_ENC_RAW, x->mask, 0);
}

static void rule_span(struct jx *x, const struct pol_jstate *acc,
		      uint32_t off, uint32_t len, uint8_t flags)
{
	pol_out_add(x->sc, off, len, acc->action, POLICY_KIND_JSON, 0, flags,
		    acc->rule_id, acc->rule);
}

struct numhit {
	unsigned det;
	bool hit;
};

static bool num_emit(void *ctx, uint32_t off, uint32_t len, unsigned det)
{
	struct numhit *h = ctx;
	(void)off;
	(void)len;
	h->det = det;
	h->hit = true;
	return false; /* one is enough: the whole number goes */
}

/* A number or literal a chunk boundary cuts (|p| < x->carry: its start
 * was in the chunk before; |at_end|: it goes on in the next one). It
 * cannot become one quoted token in two parts, so each part is redacted
 * as '9's (a number of the same length), unless a rule keeps it. Literals
 * have no detectors: they only matter under a rule. */
static int cut_scalar(struct jx *x, const struct pol_jstate *acc, bool num,
		      uint32_t p, uint32_t e, bool at_end)
{
	bool keep = acc && acc->action == POLICY_ACTION_KEEP;
	if (!keep && (num || acc) && e > p)
		pol_out_add(x->sc, p, e - p, POLICY_ACTION_REDACT,
			    POLICY_KIND_LIMIT, 0, POLICY_SPAN_JSON_NUMBER,
			    POLICY_RULE_LIMIT_CHUNK,
			    x->sc->p->rule_names[POLICY_RULE_LIMIT_CHUNK]);
	x->pos = e;
	return at_end ? J_EOF : J_OK;
}

/* Skips a container from |i| with the bracket count and string state in
 * |js|, which carry over chunk boundaries. Returns the offset one past its
 * closing bracket, or x->end (then js->skipping stays set). String
 * contents are not checked here: the container is one span either way. */
static uint32_t skip_run(struct policy_json_stream *js, const uint8_t *s,
			 uint32_t i, uint32_t end)
{
	for (; i < end; i++) {
		uint8_t c = s[i];
		if (js->skip_in_str) {
			if (js->skip_esc)
				js->skip_esc = 0;
			else if (c == '\\')
				js->skip_esc = 1;
			else if (c == '"')
				js->skip_in_str = 0;
		} else if (c == '"') {
			js->skip_in_str = 1;
		} else if (c == '{' || c == '[') {
			js->skip_depth++;
		} else if ((c == '}' || c == ']') && --js->skip_depth == 0) {
			js->skipping = 0;
			return i + 1;
		}
	}
	return end;
}

/* The span of a container taken whole by |acc| (or, NULL, skipped for
 * depth) over [|p|, |e|): OPEN_* when it began before this input or goes
 * on after it. */
static void skip_span(struct jx *x, const struct pol_jstate *acc, uint32_t p,
		      uint32_t e, bool open_before, bool open_after)
{
	struct pol_scan *sc = x->sc;
	if (e <= p)
		return;
	if (acc) {
		uint8_t f = POLICY_SPAN_JSON_VALUE;
		if (open_before)
			f |= POLICY_SPAN_OPEN_BEFORE;
		if (open_after)
			f |= POLICY_SPAN_OPEN_AFTER;
		rule_span(x, acc, p, e - p, f);
		return;
	}
	/* Too deep to follow paths: the container is one unscanned region
	 * (fail closed). */
	sc->flags |= POLICY_SCAN_DEPTH;
	uint8_t a = sc->p->limits.unscanned;
	if (a > POLICY_ACTION_KEEP)
		pol_out_add(sc, p, e - p, a, POLICY_KIND_LIMIT, 0, 0,
			    POLICY_RULE_LIMIT_DEPTH,
			    sc->p->rule_names[POLICY_RULE_LIMIT_DEPTH]);
	else
		pol_scan_text(sc, p, e - p, POL_ENC_RAW, x->mask, 0);
}

/* The value at x->pos, whose node has NFA set |set|. */
static int value(struct jx *x, const uint64_t *set)
{
	struct pol_scan *sc = x->sc;
	const uint8_t *s = x->s;
	uint32_t p = x->pos;
	uint8_t c = s[p];
	const struct pol_jstate *acc = x->live ? accepted(x->nfa, set) : NULL;

	if (c == '"') {
		uint32_t close;
		bool esc;
		int r = str_end(s, p, x->end, &close, &esc);
		if (r < 0)
			return J_ERR;
		if (acc)
			rule_span(x, acc, p + 1, close - p - 1,
				  POLICY_SPAN_JSON_STRING);
		else
			pol_scan_text(sc, p + 1, close - p - 1,
				      esc ? POL_ENC_JSON : POL_ENC_RAW, x->mask,
				      POLICY_SPAN_JSON_STRING);
		x->pos = r ? close + 1 : x->end;
		return r ? J_OK : J_EOF;
	}
	if (c == '{' || c == '[') {
		if (acc || x->depth == x->depth_max) {
			bool closed;
			uint32_t e;
			if (x->js) {
				struct policy_json_stream *js = x->js;
				js->skipping = 1;
				js->skip_depth = 0;
				js->skip_in_str = js->skip_esc = 0;
				js->skip_acc = acc;
				e = skip_run(js, s, p, x->end);
				closed = !js->skipping;
			} else {
				e = skip_container(s, p, x->end, &closed);
			}
			skip_span(x, acc, p, e, false, x->js && !closed);
			x->pos = e;
			return closed ? J_OK : J_EOF;
		}
		struct pol_jframe *f = &x->st[x->depth++];
		memcpy(f->set, set, sizeof(f->set));
		f->index = 0;
		f->type = c == '{' ? F_OBJ : F_ARR;
		f->state = c == '{' ? S_KEY_OR_END : S_VALUE_OR_END;
		x->pos = p + 1;
		return J_OK;
	}
	long e;
	bool num = c == '-' || is_digit(c);
	if (num)
		e = num_end(s, p, x->end);
	else if (c == 't' || c == 'f' || c == 'n')
		e = lit_end(s, p, x->end);
	else
		return J_ERR;
	if (e == -1)
		return J_ERR;
	/* In a chunk, a number that reaches the end may go on in the next
	 * one: it is cut, as a value that needed more bytes. */
	bool cut_end = e == -2 || (x->js && !x->last && num &&
				   (uint32_t)e == x->end);
	if (x->js && (cut_end || p < x->carry))
		return cut_scalar(x, acc, num, p, cut_end ? x->end : (uint32_t)e,
				  cut_end);
	if (e == -2) {
		x->pos = x->end;
		return J_EOF;
	}
	uint32_t len = (uint32_t)e - p;
	if (acc) {
		rule_span(x, acc, p, len, POLICY_SPAN_JSON_VALUE);
	} else if (num && x->mask) {
		struct numhit h = { 0 };
		pol_detect_run(s + p, len, x->mask, num_emit, &h);
		if (h.hit) {
			const struct pol_det *d = &sc->rs->det[h.det];
			pol_out_add(sc, p, len, d->action, POLICY_KIND_DETECTOR,
				    (uint8_t)h.det, POLICY_SPAN_JSON_VALUE,
				    d->rule_id, d->rule);
		}
	}
	x->pos = (uint32_t)e;
	return J_OK;
}

/* A member name at x->pos (a quote): detectors on it, then the member's
 * NFA set into x->pending. */
static int key(struct jx *x, struct pol_jframe *f)
{
	struct pol_scan *sc = x->sc;
	uint32_t p = x->pos, close;
	bool esc;
	int r = str_end(x->s, p, x->end, &close, &esc);
	if (r < 0)
		return J_ERR;
	pol_scan_text(sc, p + 1, close - p - 1, esc ? POL_ENC_JSON : POL_ENC_RAW,
		      x->mask, POLICY_SPAN_JSON_STRING);
	if (r == 0) {
		x->pos = x->end;
		return J_EOF;
	}
	if (x->live && set_any(f->set)) {
		const uint8_t *k = x->s + p + 1;
		long kl = (long)(close - p - 1);
		if (esc) {
			if (pol_view_decode(sc->view, k, (size_t)kl,
					    POL_ENC_JSON)) {
				k = sc->view->buf;
				kl = (long)sc->view->n;
			} else {
				kl = -2;
			}
		}
		/* a carried key that lost its start is longer than any
		 * rule's name */
		if (kl > (long)POL_NAME_MAX ||
		    (x->js && x->js->carry_cut && p < x->carry))
			kl = -2;
		jstep(x->nfa, f->set, k, kl, 0, x->pending);
	} else {
		memset(x->pending, 0, sizeof(x->pending));
	}
	x->pos = close + 1;
	return J_OK;
}

static void jx_init(struct jx *x, struct pol_scan *sc, uint32_t off,
		    uint32_t len)
{
	x->sc = sc;
	x->nfa = &sc->rs->json;
	x->s = sc->base;
	x->pos = off;
	x->end = off + len;
	x->mask = sc->rs->det_mask[POL_SCOPE_BODY];
	x->depth = 0;
	x->depth_max = ST_MIN(sc->p->limits.json_depth, POL_JSON_DEPTH_MAX);
	x->live = x->nfa->nstates > 0;
	x->js = NULL;
	x->last = true;
	x->carry = 0;
}

/* Where a token the input cut begins, and the parser as it was before it,
 * so the next chunk parses that token again, whole. */
struct cut {
	uint32_t tok;   /* x->end: no token open */
	unsigned depth;
	uint8_t state;
	uint32_t index;
};

/* The parser loop from x->pos. Returns J_OK at the end of the input
 * between tokens, J_EOF with |cut| filled when the input ends inside a
 * token, J_ERR after a syntax error (the rest is then unscanned). */
static int json_run(struct jx *x, struct cut *cut)
{
	struct pol_scan *sc = x->sc;
	const uint64_t *root = x->nfa->start;
	uint64_t child[W];

	cut->tok = x->end;
	while (!sc->full) {
		while (x->pos < x->end && is_ws(x->s[x->pos]))
			x->pos++;
		if (x->pos >= x->end)
			return J_OK;
		uint32_t tok = x->pos;
		uint8_t c = x->s[x->pos];
		int r = J_OK;
		struct pol_jframe *f = x->depth ? &x->st[x->depth - 1] : NULL;
		*cut = (struct cut){ tok, x->depth, f ? f->state : 0,
				     f ? f->index : 0 };
		if (!f) {
			r = value(x, root);
		} else {
			switch (f->state) {
			case S_KEY_OR_END:
			case S_KEY:
				if (c == '}' && f->state == S_KEY_OR_END) {
					x->depth--;
					x->pos++;
				} else if (c == '"') {
					r = key(x, f);
					f->state = S_COLON;
				} else {
					r = J_ERR;
				}
				break;
			case S_COLON:
				if (c != ':') {
					r = J_ERR;
				} else {
					x->pos++;
					f->state = S_VALUE;
				}
				break;
			case S_VALUE:
			case S_VALUE_OR_END:
				if (c == ']' && f->state == S_VALUE_OR_END &&
				    f->type == F_ARR) {
					x->depth--;
					x->pos++;
					break;
				}
				f->state = S_COMMA_OR_END;
				if (f->type == F_OBJ) {
					r = value(x, x->pending);
				} else {
					if (x->live && set_any(f->set))
						jstep(x->nfa, f->set, NULL, -1,
						      f->index, child);
					else
						memset(child, 0, sizeof(child));
					f->index++;
					r = value(x, child);
				}
				break;
			case S_COMMA_OR_END:
				if (c == ',') {
					x->pos++;
					f->state = f->type == F_OBJ ? S_KEY
								    : S_VALUE;
				} else if (c == (f->type == F_OBJ ? '}' : ']')) {
					x->depth--;
					x->pos++;
				} else {
					r = J_ERR;
				}
				break;
			}
		}
		if (r == J_EOF)
			return J_EOF;
		if (r == J_ERR) {
			sc->flags |= POLICY_SCAN_MALFORMED;
			rest(x, tok, POLICY_RULE_LIMIT_MALFORMED);
			return J_ERR;
		}
	}
	return J_ERR; /* out of span slots: the caller closes the rest */
}

void pol_json_scan(struct pol_scan *sc, uint32_t off, uint32_t len)
{
	struct jx x;
	struct cut cut;
	jx_init(&x, sc, off, len);
	/* A UTF-8 byte order mark is tolerated (RFC 8259 §8.1). */
	if (len >= 3 && memcmp(x.s + off, "\xef\xbb\xbf", 3) == 0)
		x.pos += 3;
	json_run(&x, &cut);
}

/* Keeps the token the chunk's end cut, [|tok|, x->end), as the next
 * chunk's carry. A string longer than the carry keeps its opening quote
 * and its last bytes, from a character boundary (never inside an escape,
 * whose second half would read as a quote or a backslash). False for
 * anything else that long (a number of 4 KiB): the body goes dead. */
static bool keep_carry(struct jx *x, uint32_t tok)
{
	struct policy_json_stream *js = x->js;
	const uint8_t *s = x->s;
	uint32_t n = x->end - tok;
	js->carry_cut = 0;
	if (n <= POLICY_JSON_CARRY) {
		memmove(js->carry, s + tok, n);
		js->carry_len = n;
		return true;
	}
	if (s[tok] != '"')
		return false;
	uint32_t from = x->end - (POLICY_JSON_CARRY - 1), i = tok + 1;
	while (i < from)
		i += s[i] == '\\' ? (s[i + 1] == 'u' ? 6 : 2) : 1;
	js->carry[0] = '"';
	if (i > x->end)
		i = x->end;
	memmove(js->carry + 1, s + i, x->end - i);
	js->carry_len = 1 + (x->end - i);
	js->carry_cut = 1;
	return true;
}

void pol_json_scan_chunk(struct pol_scan *sc, uint32_t len,
			 struct policy_json_stream *js, bool last)
{
	struct jx x;
	struct cut cut;
	jx_init(&x, sc, 0, len);
	x.js = js;
	x.last = last;
	x.carry = js->carry_len;
	x.depth = js->depth;
	memcpy(x.st, js->st, x.depth * sizeof(x.st[0]));
	memcpy(x.pending, js->pending, sizeof(x.pending));
	if (!js->started) {
		/* a UTF-8 byte order mark may lead; a first chunk of 1-2 of
		 * its bytes waits for the rest as a carry */
		if (!last && len < 3 && memcmp(x.s, "\xef\xbb\xbf", len) == 0) {
			memmove(js->carry, x.s, len);
			js->carry_len = len;
			js->carry_cut = 0;
			return;
		}
		js->started = 1;
		if (len >= 3 && memcmp(x.s, "\xef\xbb\xbf", 3) == 0)
			x.pos += 3;
	}
	if (js->skipping) {
		/* nothing is carried while skipping: the container goes on
		 * at byte 0 */
		uint32_t e = skip_run(js, x.s, 0, x.end);
		skip_span(&x, js->skip_acc, 0, e, true, js->skipping != 0);
		x.pos = e;
	}
	int r = js->skipping ? J_OK : json_run(&x, &cut);
	js->carry_len = 0;
	js->carry_cut = 0;
	if (last)
		return;
	if (r == J_ERR || sc->full) {
		js->dead = 1;
		return;
	}
	if (r == J_EOF && !js->skipping) {
		/* the parser as before the cut token, which the next chunk
		 * reads again from the carry */
		x.depth = cut.depth;
		if (x.depth) {
			x.st[x.depth - 1].state = cut.state;
			x.st[x.depth - 1].index = cut.index;
		}
		if (!keep_carry(&x, cut.tok)) {
			js->dead = 1;
			return;
		}
	}
	js->depth = x.depth;
	memcpy(js->st, x.st, x.depth * sizeof(x.st[0]));
	memcpy(js->pending, x.pending, sizeof(x.pending));
}

size_t policy_json_stream_size(void)
{
	return sizeof(struct policy_json_stream);
}

void policy_json_stream_init(struct policy_json_stream *js)
{
	memset(js, 0, sizeof(*js));
}

/* ---- helpers for other modules -------------------------------------------- */

static long skip_value(const uint8_t *s, uint32_t i, uint32_t end)
{
	if (i >= end)
		return -1;
	if (s[i] == '"') {
		uint32_t close;
		bool esc;
		return str_end(s, i, end, &close, &esc) == 1 ? (long)close + 1
							      : -1;
	}
	if (s[i] == '{' || s[i] == '[') {
		bool closed;
		uint32_t e = skip_container(s, i, end, &closed);
		return closed ? (long)e : -1;
	}
	long e = (s[i] == '-' || is_digit(s[i])) ? num_end(s, i, end)
	       : (s[i] == 't' || s[i] == 'f' || s[i] == 'n') ? lit_end(s, i, end)
								: -1;
	return e < 0 ? -1 : e;
}

bool pol_json_object_has_key(const uint8_t *s, size_t len, const char *k)
{
	size_t kl = strlen(k);
	bool found = false;
	if (len > UINT32_MAX)
		return false;
	uint32_t end = (uint32_t)len, i = 0;
#define WS() while (i < end && is_ws(s[i])) i++
	WS();
	if (i >= end || s[i] != '{')
		return false;
	i++;
	WS();
	if (i < end && s[i] == '}') {
		i++;
	} else {
		for (;;) {
			uint32_t close;
			bool esc;
			if (i >= end || s[i] != '"' ||
			    str_end(s, i, end, &close, &esc) != 1)
				return false;
			if (!esc && close - i - 1 == kl &&
			    memcmp(s + i + 1, k, kl) == 0)
				found = true;
			i = close + 1;
			WS();
			if (i >= end || s[i] != ':')
				return false;
			i++;
			WS();
			long e = skip_value(s, i, end);
			if (e < 0)
				return false;
			i = (uint32_t)e;
			WS();
			if (i < end && s[i] == ',') {
				i++;
				WS();
				continue;
			}
			if (i < end && s[i] == '}') {
				i++;
				break;
			}
			return false;
		}
	}
	WS();
#undef WS
	return i == end && found;
}

/* ---- path expressions --------------------------------------------------------- */

static bool name_char(uint8_t c)
{
	return c > 0x20 && c != 0x7f && !strchr(".[]*'\"\\", c);
}

int pol_json_path_parse(const char *path, size_t len,
			struct pol_jstep_src *steps, unsigned max, char *buf,
			size_t bufcap, const char **why, size_t *where)
{
	size_t i = 1, b = 0;
	unsigned n = 0;
#define FAIL(msg, at)                                                          \
	do {                                                                   \
		*why = (msg);                                                  \
		*where = (at);                                                 \
		return -1;                                                     \
	} while (0)
	if (len == 0 || path[0] != '$')
		FAIL("a path starts with \"$\"", 0);
	if (len > POL_JSON_PATH_MAX)
		FAIL("the path is longer than 512 characters", 0);
	while (i < len) {
		struct pol_jstep_src st = { 0 };
		bool desc = false;
		size_t at = i;
		if (path[i] == '.') {
			if (i + 1 < len && path[i + 1] == '.') {
				desc = true;
				i += 2;
			} else {
				i++;
			}
			if (i >= len)
				FAIL("the path ends after \".\"; add a member "
				     "name or *", at);
			if (path[i] == '[') {
				if (!desc)
					FAIL("\".[\" is not a step; write the "
					     "[...] right after the previous "
					     "step", at);
				goto bracket;
			}
			if (path[i] == '*') {
				st.kind = desc ? POL_J_DESC_ANY : POL_J_ANY;
				i++;
			} else {
				size_t s0 = i;
				while (i < len && name_char((uint8_t)path[i]))
					i++;
				if (i == s0)
					FAIL("expected a member name after "
					     "\".\" (quote unusual names: "
					     "[\"a b\"])", s0);
				if (i - s0 > POL_NAME_MAX)
					FAIL("a member name is longer than 255 "
					     "bytes", s0);
				st.kind = desc ? POL_J_DESC : POL_J_CHILD;
				st.len = (uint16_t)(i - s0);
				if (b + st.len > bufcap)
					FAIL("the path is too long", s0);
				memcpy(buf + b, path + s0, st.len);
				st.name = buf + b;
				b += st.len;
			}
		} else if (path[i] == '[') {
		bracket:
			i++;
			if (i + 1 < len && path[i] == '*' && path[i + 1] == ']') {
				st.kind = desc ? POL_J_DESC_ANY : POL_J_ANY;
				i += 2;
			} else if (i < len && path[i] >= '0' && path[i] <= '9') {
				uint64_t v = 0;
				size_t s0 = i;
				while (i < len && path[i] >= '0' && path[i] <= '9') {
					v = v * 10 + (uint64_t)(path[i] - '0');
					if (v > 0x7fffffff)
						FAIL("an index is larger than "
						     "2147483647", s0);
					i++;
				}
				if (i >= len || path[i] != ']')
					FAIL("expected \"]\" after an index", i);
				if (desc)
					FAIL("\"..[n]\" is not supported; use "
					     "..[*] or ..name", at);
				i++;
				st.kind = POL_J_INDEX;
				st.index = (uint32_t)v;
			} else if (i < len && (path[i] == '\'' || path[i] == '"')) {
				char q = path[i++];
				size_t s0 = b;
				for (;;) {
					if (i >= len)
						FAIL("a quoted name is not "
						     "closed", at);
					char c = path[i];
					if (c == q)
						break;
					if (c == '\\' && i + 1 < len &&
					    (path[i + 1] == q ||
					     path[i + 1] == '\\'))
						c = path[++i];
					if (b - s0 == POL_NAME_MAX)
						FAIL("a member name is longer "
						     "than 255 bytes", at);
					if (b == bufcap)
						FAIL("the path is too long", at);
					buf[b++] = c;
					i++;
				}
				i++;
				if (i >= len || path[i] != ']')
					FAIL("expected \"]\" after a quoted "
					     "name", i);
				i++;
				st.kind = desc ? POL_J_DESC : POL_J_CHILD;
				st.name = buf + s0;
				st.len = (uint16_t)(b - s0);
			} else {
				FAIL("expected *, an index or a quoted name "
				     "after \"[\"", i);
			}
		} else {
			FAIL("expected \".\" or \"[\"", i);
		}
		if (n == max)
			FAIL("the path has more than 32 steps", at);
		steps[n++] = st;
	}
#undef FAIL
	return (int)n;
}
