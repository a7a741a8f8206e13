/* Applying the policy to record values: what the HTTP/2 analyzer calls for
 * every header, trailer, path and inspected body before anything is
 * written to a record, and what ext_proc calls for the values it puts
 * back into traffic (record_seal_replace).
 *
 * For a value, the policy gives spans to replace (a whole header for a
 * header rule, the sensitive parts for detectors, a query parameter, a JSON
 * field ...). Each span becomes, by its action:
 *   seal      an AES-256-GCM token (docs/tokens.md), AAD = tenant, key id,
 *             field, record id: only a key holder opens it, and only in
 *             this field of this record;
 *   tokenize  an AES-SIV token: equal values of one tenant, equal tokens;
 *   hash      an HMAC-SHA-256 token (one-way);
 *   redact    nothing: the value is replaced by {"redacted": length} when
 *             the span is the whole value, else the span's bytes by "*".
 * Keys come from the DEK cache snapshot of the route's tenant. A tenant
 * with no usable key fails closed: its spans are redacted, never written
 * as seen (counted in seal_failed_closed).
 *
 * One sealer per worker; not thread-safe; never blocks. Cipher contexts
 * are made once per (worker, DEK) and reused.
 */
#ifndef SEALTAP_RECORD_SEAL_H
#define SEALTAP_RECORD_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealtap/bpool.h"
#include "sealtap/counters.h"

struct policy;
struct policy_route;
struct keys_cache;
struct record_sealer;

/* Creates worker |worker|'s sealer. |pol| and |cache| may be NULL: no
 * policy means the built-in defaults; no cache means every tenant fails
 * closed. Does not take ownership of |pol|, |cache| or |c|. NULL on
 * allocation failure. Free with record_seal_free(). */
struct record_sealer *record_seal_new(const struct policy *pol,
				      struct keys_cache *cache,
				      unsigned worker, struct st_counters *c);
void record_seal_free(struct record_sealer *rs);

/* The worker holds no key snapshot any more (end of a burst). */
void record_seal_quiescent(struct record_sealer *rs);

/* The route of a request (pseudo-headers and content type as seen). */
const struct policy_route *record_seal_route(struct record_sealer *rs,
					     const void *authority, size_t alen,
					     const void *path, size_t plen,
					     const void *method, size_t mlen,
					     const void *ctype, size_t clen);
const char *record_seal_tenant(const struct policy_route *r);
const char *record_seal_route_name(const struct policy_route *r);
bool record_seal_scans_bodies(const struct policy_route *r);

/* The record-side identity of a value, bound into sealed tokens. */
struct record_seal_where {
	const char *record_id;  /* 16 hex digits */
	const char *field;      /* e.g. "request.headers:authorization" */
};

/* Writes header/trailer value |value| of |name| under route |r| to |out|
 * as a JSON value: a string (spans replaced by tokens) or
 * {"redacted":len}. Appends {"where":..,"rule":..,"action":..} objects
 * (comma-separated, no brackets) to |applied| for each span. Returns true
 * if |out| holds a complete JSON value (false: a cap cut it; the caller
 * undoes the append). Never blocks. */
bool record_seal_value(struct record_sealer *rs, const struct policy_route *r,
		       const struct record_seal_where *w, const void *name,
		       size_t nlen, const void *value, size_t vlen,
		       struct bpool *p, struct bchain *out,
		       struct bchain *applied);

/* Scans an inspected body and appends, for each sensitive span, an object
 * {"where":..,"offset":..,"length":..,"action":..,"value":<token or
 * {"redacted":n}>} to |found| (comma-separated); when the pool runs out,
 * none of this body's. |prefix| names the body in "where" (e.g.
 * "request.body"). Returns the number of spans found. */
unsigned record_seal_body(struct record_sealer *rs,
			  const struct policy_route *r,
			  const char *record_id, const char *prefix,
			  const void *ctype, size_t clen, const uint8_t *body,
			  size_t len, struct bpool *p, struct bchain *found);

/* A byte sink: |put| appends |n| bytes for |user|, false when it cannot
 * (a cap, memory). For a comma-separated list of record entries |more|
 * says it already holds one (the next starts with ','); the writer keeps
 * it up to date. */
struct record_seal_sink {
	bool (*put)(void *user, const void *p, size_t n);
	void *user;
	bool more;
};

struct policy_span;

/* For values that go back into traffic (ext_proc mutations): writes |len|
 * bytes at |in| to |out| as plain bytes (not JSON), each of the |n| spans
 * |sp| (sorted and disjoint, as policy_scan_value() and policy_scan_body()
 * return them) replaced the way record_seal_value() replaces it: by its
 * token, or one '*' per byte when it cannot have one (redact rule, tenant
 * without a usable key, sealing error: counted). A span flagged
 * POLICY_SPAN_JSON_VALUE goes in quotes, so a JSON body stays valid.
 * Tokens are bound to |w|: its record id, and its field -- or, with
 * |body|, "<field>:<rule>" per span, as record_seal_body() binds them.
 * For each span one entry is appended to |notes| (NULL: none): the
 * "sealed" entry of record_seal_value(), or with |body| the body finding
 * of record_seal_body() with |off| (the input's offset in its body) added
 * to its offset. Returns the number of spans redacted rather than
 * tokenized, or -1 when a sink refused bytes (the output is then
 * incomplete and must not be used). |out| may be NULL (notes only). Does
 * not take ownership of anything; never blocks. */
int record_seal_replace(struct record_sealer *rs, const struct policy_route *r,
			const struct record_seal_where *w, bool body,
			uint64_t off, const struct policy_span *sp, unsigned n,
			const uint8_t *in, size_t len,
			const struct record_seal_sink *out,
			struct record_seal_sink *notes);

#endif
