/* Policy: which parts of an HTTP exchange are sensitive, for which tenant,
 * and what happens to them (docs/policy.md).
 *
 * A policy file (YAML) is compiled once, before any worker starts, into
 * immutable lookup structures:
 *
 *   routes     (authority, path, method, gRPC service/method) -> route
 *   route      -> tenant (whose keys seal) + rule set (what is sensitive)
 *   rule set   -> field rules: header names (exact, prefix), cookie names,
 *                 query parameters, form fields, JSON body paths; and
 *                 content detectors (card numbers, e-mail, SSN, IBAN, JWT,
 *                 bearer tokens, API keys), each with its own action.
 *
 * The hot path (HTTP/2 analyzer, ext_proc) only looks things up: no
 * allocation, no locks, bounded work per byte, every output bounded by a
 * caller-given array. The one exception is a route with a path regex: it is
 * matched with POSIX regexec(), which in glibc serialises callers of one
 * pattern and allocates matching state; sealtap evaluates a regex only for a
 * route whose other conditions (and the regex's literal prefix) already
 * matched, once per request (docs/policy.md "Cost").
 *
 * What the scanners return are spans [off, off+len) of the input bytes,
 * each with the action to apply and the name of the rule that asked for
 * it. The caller (record writer, ext_proc mutation) seals/tokenizes/hashes/
 * redacts exactly those bytes through the sealing engine (seal.h); the
 * policy never sees keys. Spans of one call are sorted by offset and never
 * overlap.
 *
 * Fail-closed limits: when the span array runs out, the last span grows to
 * the end of the input (action at least seal, rule "limit/spans"); body
 * bytes past limits.body_bytes, JSON nested deeper than limits.json_depth
 * and the rest of a malformed JSON body become one span with the
 * limits.unscanned action (default redact).
 *
 * Threads: a loaded policy is read-only and may be shared by any number of
 * threads. Replacing it (reload) is the owner's business: load a new one,
 * publish it, free the old one when no reader can hold it any more.
 */
#ifndef SEALTAP_POLICY_H
#define SEALTAP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- actions, kinds, detectors ---------------------------------------- */

/* Ordered by how little of the value they let through: where two rules
 * apply to the same bytes, the higher one wins. */
enum policy_action {
	POLICY_ACTION_NONE = 0,     /* no rule: detectors decide */
	POLICY_ACTION_KEEP = 1,     /* recorded as seen; detectors skip it */
	POLICY_ACTION_TOKENIZE = 2, /* AES-SIV: equal values, equal tokens */
	POLICY_ACTION_HASH = 3,     /* HMAC-SHA-256, one-way */
	POLICY_ACTION_SEAL = 4,     /* AES-GCM, opened by a key holder */
	POLICY_ACTION_REDACT = 5,   /* dropped, length kept */
	POLICY_ACTION_DENY = 6,     /* ext_proc: refuse the request; tap: seal */
};

/* "none", "keep", "tokenize", "hash", "seal", "redact", "deny". */
const char *policy_action_name(enum policy_action a);

/* What the compliance tap does for |a|: deny is sealed there (there is no
 * request to refuse). */
static inline enum policy_action policy_action_tap(enum policy_action a)
{
	return a == POLICY_ACTION_DENY ? POLICY_ACTION_SEAL : a;
}

/* What kind of rule produced a span. */
enum policy_kind {
	POLICY_KIND_NONE = 0,
	POLICY_KIND_HEADER = 1,   /* header name rule: the whole value */
	POLICY_KIND_COOKIE = 2,   /* cookie name rule: that cookie's value */
	POLICY_KIND_QUERY = 3,    /* query parameter rule: that value */
	POLICY_KIND_FORM = 4,     /* form field rule: that value */
	POLICY_KIND_JSON = 5,     /* JSON path rule: that value */
	POLICY_KIND_DETECTOR = 6, /* content detector hit */
	POLICY_KIND_LIMIT = 7,    /* fail-closed limit (see above) */
};

const char *policy_kind_name(enum policy_kind k);

enum policy_detector {
	POLICY_DET_CARD = 0,   /* payment card: 13-19 digits, Luhn, IIN 2-6 */
	POLICY_DET_EMAIL = 1,  /* local@domain.tld */
	POLICY_DET_SSN = 2,    /* US SSN AAA-GG-SSSS, invalid ranges refused */
	POLICY_DET_IBAN = 3,   /* country length table + mod-97 */
	POLICY_DET_JWT = 4,    /* three base64url parts, header JSON has "alg" */
	POLICY_DET_BEARER = 5, /* "Bearer <token68>": the token */
	POLICY_DET_API_KEY = 6, /* AWS, Stripe, GitHub, GitLab, Slack, Google */
	POLICY_DET_COUNT = 7,
};

#define POLICY_DET_ALL ((1u << POLICY_DET_COUNT) - 1)

/* "card", "email", "ssn", "iban", "jwt", "bearer", "api_key". */
const char *policy_detector_name(enum policy_detector d);

/* ---- spans ---------------------------------------------------------------- */

/* Span flags (JSON bodies): how to put a replacement back so the body
 * stays valid JSON. */
#define POLICY_SPAN_JSON_STRING 0x01 /* bytes inside the quotes of a JSON
					string (still escaped): a token can
					replace them in place */
#define POLICY_SPAN_JSON_VALUE 0x02  /* a whole non-string value (number,
					object, array, literal): replace it
					with a quoted token */
/* Chunked JSON (policy_scan_body_chunk()): */
#define POLICY_SPAN_OPEN_BEFORE 0x04 /* a JSON_VALUE span whose value began
					in an earlier chunk: no opening
					quote */
#define POLICY_SPAN_OPEN_AFTER 0x08  /* ... that goes on in a later chunk:
					no closing quote */
#define POLICY_SPAN_JSON_NUMBER 0x10 /* a number (or a literal under a
					rule) cut by a chunk boundary:
					redacted as '9's, so it stays a
					JSON number of the same length */

struct policy_span {
	uint32_t off;     /* first byte, from the start of the input */
	uint32_t len;     /* >= 1 */
	const char *rule; /* rule name, for the record; lives as long as the
			     policy */
	uint16_t rule_id; /* index for policy_rule_name() */
	uint8_t action;   /* enum policy_action, never NONE or KEEP */
	uint8_t kind;     /* enum policy_kind */
	uint8_t detector; /* enum policy_detector when kind is DETECTOR */
	uint8_t flags;    /* POLICY_SPAN_* */
};

/* Scan flags, OR-ed into *|flags| by the scanners. */
#define POLICY_SCAN_SPANS_FULL 0x01 /* out of span slots (see above) */
#define POLICY_SCAN_BODY_CUT 0x02   /* body longer than limits.body_bytes */
#define POLICY_SCAN_MALFORMED 0x04  /* JSON body did not parse */
#define POLICY_SCAN_DEPTH 0x08      /* JSON deeper than limits.json_depth */
#define POLICY_SCAN_RAW 0x10        /* an encoded value too long to decode
				       was scanned in its encoded form */
#define POLICY_SCAN_RESUMED 0x20    /* policy_scan_body_chunk(): the chunk
				       was parsed on from the previous one
				       with the whole token cut by the
				       boundary in view */
#define POLICY_SCAN_CUT_STRING 0x40 /* ... and it ends inside a string or
				       key (or a container too deep to
				       parse), whose bytes so far could
				       begin a detector's hit (the caller
				       guards them); any other token cut at
				       the end is handled by the spans */

/* Rule ids of the built-in limit "rules" (same in every policy). */
#define POLICY_RULE_LIMIT_SPANS 0     /* "limit/spans" */
#define POLICY_RULE_LIMIT_BODY 1      /* "limit/body_bytes" */
#define POLICY_RULE_LIMIT_DEPTH 2     /* "limit/json_depth" */
#define POLICY_RULE_LIMIT_MALFORMED 3 /* "limit/malformed_json" */
#define POLICY_RULE_LIMIT_CHUNK 4     /* "limit/chunk_boundary" */
#define POLICY_RULE_LIMIT_COMPRESSED 5 /* "limit/compressed" */
#define POLICY_RULE_LIMIT_CHARSET 6   /* "limit/charset": UTF-16/-32 text */

/* ---- objects ---------------------------------------------------------------- */

struct policy;       /* a loaded policy, opaque */
struct policy_route; /* one route of it, opaque */

/* A tenant: whose keys seal the values of a route. Strings are validated
 * for shape only here; the key layer interprets kms and kek. */
struct policy_tenant {
	const char *name;  /* [A-Za-z0-9][A-Za-z0-9_.-]{0,63} */
	const char *kms;   /* backend name, [a-z][a-z0-9_-]{0,31} */
	const char *kek;   /* key reference, 1..1024 printable, no blanks */
	uint32_t index;    /* 0..policy_tenant_count()-1 */
};

/* The request attributes a route is chosen by. Pointers need no NUL; a
 * NULL pointer or zero length is "not present". |authority| is :authority
 * (or the Host header when there is none); |path| is :path with its query;
 * |content_type| is the request's content-type. */
struct policy_request {
	const void *authority;
	size_t authority_len;
	const void *path;
	size_t path_len;
	const void *method;
	size_t method_len;
	const void *content_type;
	size_t content_type_len;
};

/* ---- loading (control thread) ------------------------------------------------ */

/* Longest policy file. */
#define POLICY_MAX_FILE (4u << 20)

/* Loads and compiles the policy file |path|. On success returns the policy;
 * the caller frees it with policy_free(). On failure returns NULL, sets
 * errno (EINVAL for a bad file, ENOMEM, or the I/O error) and writes one
 * line to |err|: "file:line: key: what is wrong with which value; the fix".
 * Nothing is half-applied: either the whole file compiled or nothing did. */
struct policy *policy_load(const char *path, char *err, size_t errlen);

/* policy_load() on |len| bytes of YAML at |text|; |name| stands for the
 * file name in errors. Does not take ownership of |text|. */
struct policy *policy_load_text(const char *name, const char *text,
				size_t len, char *err, size_t errlen);

/* The built-in policy (used when no policy file is given): tenant
 * "default" and rule set "builtin" (docs/policy.md "Defaults"). Same
 * returns as policy_load(). */
struct policy *policy_builtin(char *err, size_t errlen);

/* The YAML text of the built-in policy (static). */
const char *policy_builtin_text(void);

/* Frees |p| and everything it owns. Takes ownership of |p|; NULL is fine.
 * No route, tenant or rule name of |p| may be used afterwards. */
void policy_free(struct policy *p);

/* File the policy came from ("<builtin>" for the built-in one). */
const char *policy_path(const struct policy *p);

unsigned policy_tenant_count(const struct policy *p);
const struct policy_tenant *policy_tenant_at(const struct policy *p,
					     unsigned i);
/* NULL if there is no tenant |name|. */
const struct policy_tenant *policy_tenant_find(const struct policy *p,
					       const char *name);

/* Routes in match order (most specific first), i < policy_route_count();
 * the default route is apart. */
unsigned policy_route_count(const struct policy *p);
const struct policy_route *policy_route_at(const struct policy *p,
					   unsigned i);
const struct policy_route *policy_default_route(const struct policy *p);

/* How ext_proc answers a request a deny rule refused: the policy's
 * "deny:" section (docs/policy.md "Deny"), defaults 403, "request denied
 * by policy", "sealtap_denied". Static text from the policy file, never
 * request data; the strings live as long as the policy. */
struct policy_deny {
	uint32_t status;     /* 400..599 */
	const char *body;    /* response body */
	const char *details; /* Envoy's response code details, no blanks */
};
const struct policy_deny *policy_deny_response(const struct policy *p);

/* Rule names by id (spans carry both). NULL for an id out of range. */
unsigned policy_rule_count(const struct policy *p);
const char *policy_rule_name(const struct policy *p, unsigned id);

/* ---- hot path (workers) ------------------------------------------------------- */

/* The route for a request: the first route in match order whose conditions
 * all hold, else the default route; never NULL. Order: most specific
 * authority (exact, then the longest *.suffix, then any), then the longest
 * path prefix (a gRPC service/method counts as the prefix /svc/ or
 * /svc/method, a regex as its literal prefix), then the order in the file. */
const struct policy_route *
policy_route_for(const struct policy *p, const struct policy_request *rq);

const char *policy_route_name(const struct policy_route *r);
const struct policy_tenant *policy_route_tenant(const struct policy_route *r);
const char *policy_route_rules_name(const struct policy_route *r);

/* Whether bodies of this route need scanning at all: the rule set has JSON
 * or form rules, or a detector enabled for bodies. Lets the caller skip
 * buffering bodies nobody looks at. */
bool policy_route_scans_bodies(const struct policy_route *r);

/* Whether policy_scan_body() looks at a body of content type |ctype|
 * (NULL: unknown) under route |r| at all: the route scans bodies and the
 * type is not one that is skipped. Tells "no span" apart from "not
 * scanned". */
bool policy_scans_body(const struct policy_route *r, const void *ctype,
		       size_t ctype_len);

/* What the rule set says about header |name| (|len| bytes, matched
 * case-insensitively): the exact-name rule, else the longest prefix rule,
 * else action NONE (rule NULL). Allocation-free, O(len). */
struct policy_verdict {
	uint8_t action;   /* enum policy_action */
	uint8_t kind;     /* POLICY_KIND_HEADER, or NONE */
	uint16_t rule_id;
	const char *rule; /* NULL when action is NONE */
};
struct policy_verdict policy_header_action(const struct policy_route *r,
					   const void *name, size_t len);

/* Spans of header (or trailer) value |value| of header |name| to replace:
 *
 *   - a header rule other than keep covers the whole value (one span);
 *     explicit keep: no span, no detectors;
 *   - cookie / set-cookie, when the rule set has cookie rules: each
 *     cookie's value by its cookie rule; cookies without one by the
 *     cookie header's rule if it has one, else by detectors;
 *   - :path (and referer, location, content-location): query parameters by
 *     their query rules, the rest by detectors (on percent-decoded text);
 *   - anything else: detectors enabled for headers (:path: for paths).
 *
 * A field whose name is not known (an HPACK placeholder entry) cannot be
 * matched against the rules: the caller should seal its whole value.
 *
 * Writes at most |max| (>= 1) spans to |spans|; returns their count, or
 * -EINVAL (NULL route/spans, max 0, value over 4 GiB). ORs POLICY_SCAN_*
 * into *|flags| if |flags| is not NULL. Does not take ownership of
 * anything; never allocates. */
int policy_scan_value(const struct policy_route *r, const void *name,
		      size_t name_len, const void *value, size_t value_len,
		      struct policy_span *spans, unsigned max,
		      unsigned *flags);

/* Spans of a message body with content type |ctype| (NULL: unknown):
 *
 *   application/json, text/json, *+json, application/x-ndjson:
 *       JSON path rules on values, detectors on string and number values;
 *   application/x-www-form-urlencoded: form rules, detectors;
 *   image/, audio/, video/, font/, application/octet-stream, zip, gzip,
 *   pdf: not scanned (no spans);
 *   anything else (text, XML, gRPC/protobuf, unknown): detectors.
 *
 * At most limits.body_bytes are scanned (see the fail-closed limits
 * above). Same returns, flags and ownership as policy_scan_value(). */
int policy_scan_body(const struct policy_route *r, const void *ctype,
		     size_t ctype_len, const void *body, size_t len,
		     struct policy_span *spans, unsigned max, unsigned *flags);

/* A body nothing in which can be read -- one with a content-encoding
 * (gzip, br, ...: |rule| POLICY_RULE_LIMIT_COMPRESSED), or UTF-16/32 text
 * (POLICY_RULE_LIMIT_CHARSET) --: all |len| bytes are one span with
 * limits.unscanned, none when that is keep or the route scans no bodies.
 * Returns the count or -EINVAL. */
int policy_scan_opaque(const struct policy_route *r, const void *body,
		       size_t len, uint16_t rule, struct policy_span *spans,
		       unsigned max);
/* Whether content-type |ctype| has a charset parameter naming UTF-16 or
 * UTF-32 (policy_scan_body() takes such a body as opaque), and whether a
 * body starts with their byte order mark (the caller of a body in chunks
 * remembers that from its first chunk). */
bool policy_ctype_wide(const void *ctype, size_t ctype_len);
bool policy_body_wide_bom(const void *body, size_t len);

/* Whether policy_scan_body_chunk() reads a body of content type |ctype|
 * on from one chunk to the next (JSON, forms) rather than each chunk
 * alone. */
bool policy_body_reads_on(const void *ctype, size_t ctype_len);

/* ---- protobuf bodies (ext_proc, policy_proto.c) ---- */

/* How to read a protobuf body (policy_scan_protobuf()'s |how|). */
#define POLICY_PB_FRAMED 0x01     /* gRPC length-prefixed messages */
#define POLICY_PB_COMPRESSED 0x02 /* one compressed message: not readable */
#define POLICY_PB_RAW 0x04        /* another codec: the frames' content (or
				     the one message) is scanned as raw bytes,
				     hits in place */
#define POLICY_PB_JSON 0x08       /* the JSON codec: the frames' content (or
				     the one message) is JSON, scanned as a
				     JSON body (paths, detectors; tokens keep
				     it valid JSON, the frame lengths follow) */

/* A gRPC frame's flag byte: bit 0 compressed, bit 7 a gRPC-Web trailers
 * frame; any other bit is not gRPC. */
static inline bool policy_grpc_flag_ok(uint8_t f)
{
	return !(f & ~0x81u);
}

/* Bytes a value cut at a boundary may have left just before it: byte |i|
 * of |text| (|len| bytes) can be inside a detector hit -- a letter,
 * digit, one of "-._~+/=%@", or a single blank between two digits or
 * capitals (a card number or IBAN in groups; the edge counts as one). */
bool policy_hit_byte(const void *text, size_t len, size_t i);
/* Long enough for a whole bearer or ID token (1-2 KB is common); a
 * shorter guard let the back half of a long token, signature included,
 * pass beside a cut. */
#define POLICY_GUARD_MAX 8192
/* A cut at |cut| moved back, past such bytes (at most POLICY_GUARD_MAX,
 * not before |start|), so a value it splits goes wholly to the part
 * after it. */
size_t policy_guard_cut(const void *text, size_t start, size_t cut);

/* Whether |n| bytes are valid UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF) with no control character but tab, LF and
 * CR: what protobuf reads as a string. */
bool policy_is_text(const void *text, size_t n);

/* POLICY_PB_FRAMED for application/grpc, application/grpc+proto and
 * application/grpc-web(+proto); with POLICY_PB_JSON for gRPC framing
 * around JSON (application/grpc+json, grpc-web+json), with POLICY_PB_RAW
 * around any other codec (application/grpc+..., grpc-web+...); 0 with
 * *|is_pb| for application/x-protobuf, application/protobuf and
 * application/vnd.google.protobuf (one message); *|is_pb| false for
 * anything else. */
unsigned policy_body_protobuf(const void *ctype, size_t ctype_len,
			      bool *is_pb);

/* A gRPC frame or a nested message, for a caller that rewrites lengths. */
struct policy_pb_node {
	uint32_t hdr;    /* its length prefix (a frame: the flag byte) */
	uint32_t off;    /* first content byte */
	uint32_t len;    /* content length as declared (a frame cut short
			    declares more than the input holds) */
	uint8_t hdr_len; /* prefix bytes: the varint's 1..5, a frame's 5 */
	bool frame;      /* 4-byte big-endian length after the flag byte */
	bool in_place;   /* POLICY_PB_TEXT: replace the spans without
			    changing the field's length (bytes that are not
			    text, or text that also reads as a message) */
};

enum policy_pb_event {
	POLICY_PB_ENTER, /* a frame or nested message begins: |nd| */
	POLICY_PB_LEAVE, /* ... and ends: the same |nd| */
	POLICY_PB_TEXT,  /* the |n| spans (offsets from the body's start) of
			    one string or bytes field (|nd|: its content and
			    length prefix), or of bytes that could not be read
			    (|nd|->hdr_len 0: no prefix of their own) */
};

/* Returns 0 to go on; anything else stops the walk and is returned. */
typedef int (*policy_pb_fn)(void *user, enum policy_pb_event ev,
			    const struct policy_pb_node *nd,
			    const struct policy_span *sp, unsigned n);

/* Walks a serialized protobuf body (|how|: POLICY_PB_*) without its
 * schema and runs the body detectors on each string and bytes field
 * alone (policy_proto.c says how fields are told apart), calling |fn|
 * for frames and nested messages and for each field with spans, in the
 * order of the input. Bytes whose structure is not read -- a malformed
 * rest (POLICY_SCAN_MALFORMED), nesting deeper than limits.json_depth or
 * past the work cap (POLICY_SCAN_DEPTH), another codec's frames, the
 * first |ck|->skip bytes, which continue a frame (or message) an earlier
 * chunk began -- are scanned raw, their hits reported |in_place|;
 * compressed messages are one span with limits.unscanned
 * ("limit/compressed"); string bytes past limits.body_bytes one with
 * limits.unscanned ("limit/body_bytes"), each inside its field. Without
 * POLICY_PB_FRAMED nothing after a skip can be read either. |ck| (NULL:
 * a whole body) says how a chunk decided without its neighbours is cut;
 * unread bytes at its boundaries get chunk guards (below). |spans|
 * (|max| >= 1) is scratch reused for each field. Returns 0, what |fn|
 * stopped with, or -EINVAL. ORs POLICY_SCAN_* into *|flags|. Never
 * allocates. */
struct policy_pb_chunk {
	size_t skip;  /* bytes continuing a frame an earlier chunk began */
	size_t head;  /* of those, how many from the start to star in place
			 ("limit/chunk_boundary"): the caller's guard of a
			 value the boundary cut, <= the chunk's length */
	bool cut_end; /* the chunk ends inside a field that goes on in the
			 next: the run of characters a hit can be made of
			 touching its end is starred in place */
};
int policy_scan_protobuf(const struct policy_route *r, const void *body,
			 size_t len, unsigned how,
			 const struct policy_pb_chunk *ck,
			 struct policy_span *spans, unsigned max,
			 unsigned *flags, policy_pb_fn fn, void *user);

/* A JSON body that arrives in chunks (ext_proc STREAMED): what the
 * scanner keeps from one chunk to the next -- the open containers with
 * their path states, a container being skipped whole, and the raw bytes of
 * the token the boundary cut (at most POLICY_JSON_CARRY bytes: a longer
 * string keeps its last ones). It holds body bytes: the caller puts it in
 * memory that is wiped and not dumped (mem_secret). */
struct policy_json_stream;
#define POLICY_JSON_CARRY 4096u
size_t policy_json_stream_size(void);
void policy_json_stream_init(struct policy_json_stream *js);

/* policy_scan_body() for the next |len| bytes of a body that arrives in
 * chunks, |last| for its final chunk. A JSON body is parsed on from where
 * the previous chunk of |js| left it, so paths and detectors work as in a
 * whole body; spans are relative to |chunk| and cover only its bytes:
 *   - a value cut by the boundary is seen whole in the chunk after it
 *     (its part there gets the span); its part in the chunk before it was
 *     handled with what that chunk held (a caller that cannot take bytes
 *     back guards them, as ext_proc does);
 *   - an object or array a rule takes whole gets a span in every chunk it
 *     touches, with POLICY_SPAN_OPEN_BEFORE / _OPEN_AFTER so the quotes of
 *     its token come out once;
 *   - a number cut by a boundary (or a literal a rule takes) cannot become
 *     a quoted token in two parts: each part is one span with
 *     POLICY_SPAN_JSON_NUMBER, rule POLICY_RULE_LIMIT_CHUNK, action redact
 *     (the replacement keeps it a number);
 *   - after a syntax error, a cut at limits.body_bytes (of one chunk) or
 *     running out of span slots, the rest of the body is one unscanned
 *     span per chunk (limits.unscanned).
 * |scratch| holds at least |len| + POLICY_JSON_CARRY bytes: when a token
 * was carried, it and the chunk side by side (body bytes: memory as for
 * |js|; wiped before return).
 * A form (application/x-www-form-urlencoded) is read behind the pair the
 * chunk before ended inside (kept in |js|'s carry: the whole pair, or its
 * name and '=' and the value's last POLICY_JSON_CARRY bytes), so that
 * pair's rule takes its continuation and a detector's hit across the
 * boundary is found; a pair whose name was longer than 1 KiB and the carry
 * has its continuation redacted up to the next '&'
 * (POLICY_RULE_LIMIT_CHUNK). Every chunk of a form but the last reports
 * POLICY_SCAN_CUT_STRING: its end may cut a value.
 * Other content types are scanned as policy_scan_body() does, chunk by
 * chunk. Returns as policy_scan_body(); ORs POLICY_SCAN_RESUMED when the
 * chunk was parsed on with the whole cut token in view (nothing at its
 * start needs a guard) and POLICY_SCAN_CUT_STRING as said there. */
int policy_scan_body_chunk(const struct policy_route *r, const void *ctype,
			   size_t ctype_len, struct policy_json_stream *js,
			   const void *chunk, size_t len, bool last,
			   void *scratch, struct policy_span *spans,
			   unsigned max, unsigned *flags);

/* Runs the detectors in |mask| (bits 1 << POLICY_DET_*) over |len| bytes
 * of |text| with no policy: spans with action NONE, kind DETECTOR, rule
 * NULL. Returns the count (at most |max|; further hits are dropped), or
 * -EINVAL. For tools and tests. */
int policy_detect(unsigned mask, const void *text, size_t len,
		  struct policy_span *spans, unsigned max);

/* ---- splitting helpers ---------------------------------------------------------- */

/* One name[=value] pair inside a larger value; offsets from its start.
 * Without '=', value_off is where the value would begin and value_len 0. */
struct policy_pair {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
	bool has_eq;
};

/* Next cookie of a cookie header value (RFC 6265 §5.4: "; "-separated
 * name=value; blanks around names and values trimmed, empty pieces
 * skipped, '=' inside a value kept; "=v" comes back with name_len 0 and
 * "v" without '=' with has_eq false). Start with *|pos| 0. Returns 1 and
 * fills |pr|, or 0 at the end. */
int policy_cookie_next(const void *value, size_t len, size_t *pos,
		       struct policy_pair *pr);

/* The cookie-pair of a set-cookie value (RFC 6265 §5.2: up to the first
 * ';'; the attributes after it are not returned). 1, or 0 if there is
 * none (no '=' or empty name). */
int policy_set_cookie_pair(const void *value, size_t len,
			   struct policy_pair *pr);

/* Offset of the query of |path| (the byte after the first '?'), or |len|
 * if it has none. A '#' ends the query. */
size_t policy_query_offset(const void *path, size_t len);

/* Next '&'-separated parameter of a query string or form body (empty
 * pieces skipped, '=' inside a value kept). Start with *|pos| 0 (offsets
 * are relative to |s|). Returns 1 and fills |pr|, or 0 at the end. */
int policy_param_next(const void *s, size_t len, size_t *pos,
		      struct policy_pair *pr);

/* Percent-decodes |len| bytes of |in| into |out| (|cap| bytes); with
 * |plus_is_space| '+' becomes ' ' (form encoding). An invalid escape is
 * kept as is. Returns the decoded length, or -ENOBUFS. Does not take
 * ownership of |in| or |out|. */
int policy_pct_decode(const void *in, size_t len, bool plus_is_space,
		      char *out, size_t cap);

#endif
