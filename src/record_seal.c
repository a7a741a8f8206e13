/* Policy + keys + sealing for record values. See record_seal.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sealtap/common.h"
#include "sealtap/keys.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/policy.h"
#include "sealtap/record.h"
#include "sealtap/record_seal.h"
#include "sealtap/seal.h"

#define MAX_SPANS 32      /* spans handled per value */
#define KEYS_START 64     /* (tenant, DEK) context slots to start with */
#define TOKEN_CAP (SEAL_TOKEN_MAX + 1)

/* Cipher contexts of one DEK, made by this worker at first use. */
struct key_ctx {
	uint64_t generation; /* keys_dek.generation; 0: slot free */
	char tenant[80];
	const struct keys_dek *dek; /* valid while the snapshot is held */
	struct seal_gcm *gcm;
	struct seal_siv *siv;
	struct seal_hash *hash;
	bool broken;        /* contexts could not be made: fail closed */
};

struct record_sealer {
	const struct policy *pol;
	struct policy *own_pol; /* built-in policy when none was given */
	struct keys_cache *cache;
	unsigned worker;
	struct st_counters *c;
	const struct keys_snapshot *snap; /* held until quiescent */
	/* One slot per DEK this worker sealed with and that is still a
	 * tenant's current one. Never evicted while current: a GCM context
	 * made again for the same DEK would restart its nonce counter, which
	 * seal_gcm's guard refuses (the tenant would fail closed for good).
	 * Grows with the tenants; slots of DEKs no longer current are
	 * reused first. */
	struct key_ctx *keys;
	unsigned nkeys;
	char *token;   /* TOKEN_CAP scratch */
};

struct record_sealer *record_seal_new(const struct policy *pol,
				      struct keys_cache *cache,
				      unsigned worker, struct st_counters *c)
{
	struct record_sealer *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->pol = pol;
	if (!rs->pol) {
		char err[256];
		rs->own_pol = policy_builtin(err, sizeof(err));
		rs->pol = rs->own_pol;
	}
	rs->cache = cache;
	rs->worker = worker;
	rs->c = c;
	rs->token = malloc(TOKEN_CAP);
	rs->keys = calloc(KEYS_START, sizeof(*rs->keys));
	rs->nkeys = rs->keys ? KEYS_START : 0;
	if (!rs->pol || !rs->token || !rs->keys) {
		record_seal_free(rs);
		return NULL;
	}
	/* Online from now: the snapshot this worker reads before its first
	 * quiescent point must not be reclaimed under it. */
	if (cache)
		keys_cache_online(cache, worker);
	return rs;
}

static void key_ctx_release(struct key_ctx *k)
{
	seal_gcm_free(k->gcm);
	seal_siv_free(k->siv);
	seal_hash_free(k->hash);
	memset(k, 0, sizeof(*k));
}

void record_seal_free(struct record_sealer *rs)
{
	if (!rs)
		return;
	if (rs->cache)
		keys_cache_offline(rs->cache, rs->worker);
	for (unsigned i = 0; i < rs->nkeys; i++)
		key_ctx_release(&rs->keys[i]);
	free(rs->keys);
	policy_free(rs->own_pol);
	free(rs->token);
	free(rs);
}

void record_seal_quiescent(struct record_sealer *rs)
{
	/* Also when idle (no snapshot held): an idle worker that stayed at an
	 * old epoch would keep retired key slots from being wiped. */
	if (rs->cache) {
		rs->snap = NULL;
		keys_cache_quiescent(rs->cache, rs->worker);
	}
}

const struct policy_route *record_seal_route(struct record_sealer *rs,
					     const void *authority, size_t alen,
					     const void *path, size_t plen,
					     const void *method, size_t mlen,
					     const void *ctype, size_t clen)
{
	struct policy_request rq = {
		.authority = authority, .authority_len = alen,
		.path = path,		.path_len = plen,
		.method = method,	.method_len = mlen,
		.content_type = ctype,	.content_type_len = clen,
	};
	return policy_route_for(rs->pol, &rq);
}

const char *record_seal_tenant(const struct policy_route *r)
{
	const struct policy_tenant *t = r ? policy_route_tenant(r) : NULL;
	return t ? t->name : NULL;
}

const char *record_seal_route_name(const struct policy_route *r)
{
	return r ? policy_route_name(r) : NULL;
}

bool record_seal_scans_bodies(const struct policy_route *r)
{
	return r && policy_route_scans_bodies(r);
}

/* A free slot when every slot is taken: one whose DEK is no longer its
 * tenant's current one (rotated, or the tenant gone) is released; else
 * the table grows. NULL only without memory. */
static struct key_ctx *key_slot(struct record_sealer *rs)
{
	for (unsigned i = 0; i < rs->nkeys; i++) {
		struct key_ctx *k = &rs->keys[i];
		const struct keys_dek *cur = keys_snapshot_lookup(
			rs->snap, k->tenant, strlen(k->tenant));
		if (!cur || cur->generation != k->generation) {
			key_ctx_release(k);
			return k;
		}
	}
	unsigned n = rs->nkeys * 2;
	struct key_ctx *keys = realloc(rs->keys, n * sizeof(*keys));
	if (!keys)
		return NULL;
	memset(keys + rs->nkeys, 0, (n - rs->nkeys) * sizeof(*keys));
	rs->keys = keys;
	struct key_ctx *k = &keys[rs->nkeys];
	rs->nkeys = n;
	return k;
}

/* The cipher contexts for |tenant|'s current DEK, made at first use; NULL
 * if the tenant has no usable key (fail closed). */
static struct key_ctx *key_for(struct record_sealer *rs, const char *tenant)
{
	if (!rs->cache || !tenant)
		return NULL;
	if (!rs->snap)
		rs->snap = keys_cache_snapshot(rs->cache);
	const struct keys_dek *d =
		keys_snapshot_lookup(rs->snap, tenant, strlen(tenant));
	if (!d)
		return NULL;
	struct key_ctx *free_slot = NULL;
	for (unsigned i = 0; i < rs->nkeys; i++) {
		struct key_ctx *k = &rs->keys[i];
		if (k->generation == d->generation) {
			k->dek = d;
			return k->broken ? NULL : k;
		}
		if (!k->generation && !free_slot)
			free_slot = k;
	}
	if (!free_slot)
		free_slot = key_slot(rs);
	if (!free_slot) {
		log_kv(LOG_LEVEL_ERROR, "no memory for cipher contexts: value "
		       "fails closed", "tenant", tenant, NULL);
		return NULL;
	}
	struct key_ctx *k = free_slot;
	k->generation = d->generation;
	k->dek = d;
	snprintf(k->tenant, sizeof(k->tenant), "%s", tenant);
	uint32_t fixed;
	struct seal_gcm_cfg gc = { .max_seals = d->worker_quota };
	int rc = seal_gcm_fixed_field(d->instance, rs->worker, &fixed);
	gc.fixed = fixed;
	if (rc == 0)
		rc = seal_gcm_new(d->key, tenant, d->key_id, &gc, &k->gcm);
	if (rc == 0)
		rc = seal_siv_new(d->key, tenant, d->key_id, &k->siv);
	if (rc == 0)
		rc = seal_hash_new(d->key, tenant, d->key_id, &k->hash);
	/* Key derivation moved DEK bytes through vector registers. */
	mem_scrub_registers();
	if (rc != 0) {
		k->broken = true;
		log_kv(LOG_LEVEL_ERROR, "cannot make cipher contexts: tenant "
		       "fails closed on this worker", "tenant", tenant,
		       "error", seal_strerror(rc), NULL);
		return NULL;
	}
	return k;
}

static const char *action_name(uint8_t a)
{
	switch (a) {
	case POLICY_ACTION_SEAL:
	case POLICY_ACTION_DENY: return "seal";
	case POLICY_ACTION_TOKENIZE: return "tokenize";
	case POLICY_ACTION_HASH: return "hash";
	default: return "redact";
	}
}

/* Seals |in| by action into rs->token. Returns the token length, or -1
 * when the span must be redacted (no key, error): counted. */
static int make_token(struct record_sealer *rs, uint8_t action,
		      const char *tenant, const struct record_seal_where *w,
		      const uint8_t *in, size_t len)
{
	if (action == POLICY_ACTION_REDACT)
		return -1;
	struct key_ctx *k = key_for(rs, tenant);
	/* Charged before use: a worker whose share of the DEK's limits (count
	 * or age) is spent must not seal with it, even before the keys
	 * thread withdraws it at its next tick. */
	if (!k || (rs->cache && keys_cache_charge(rs->cache, rs->worker,
						  k->dek, 1, st_wall_ns()))) {
		ST_CTR_INC(rs->c, seal_failed_closed);
		return -1;
	}
	size_t flen = strlen(w->field);
	int n;
	switch (action) {
	case POLICY_ACTION_TOKENIZE:
		n = seal_token_seal_siv(k->siv, w->field, flen, in, len,
					rs->token, TOKEN_CAP);
		if (n > 0)
			ST_CTR_INC(rs->c, seal_tokenized);
		break;
	case POLICY_ACTION_HASH:
		n = seal_token_hash(k->hash, w->field, flen, in, len, rs->token,
				    TOKEN_CAP);
		if (n > 0)
			ST_CTR_INC(rs->c, seal_hashed);
		break;
	default: /* seal, and deny on the tap */
		n = seal_token_seal_gcm(k->gcm, w->field, flen, w->record_id,
					strlen(w->record_id), in, len,
					rs->token, TOKEN_CAP);
		if (n > 0)
			ST_CTR_INC(rs->c, seal_sealed);
		break;
	}
	if (n <= 0) {
		ST_CTR_INC(rs->c, seal_errors);
		return -1;
	}
	return n;
}

/* ---- output --------------------------------------------------------------- */

static bool put(const struct record_seal_sink *s, const void *p, size_t n)
{
	return !n || s->put(s->user, p, n);
}

static bool put_lit(const struct record_seal_sink *s, const char *lit)
{
	return put(s, lit, strlen(lit));
}

/* |n| bytes of |p| with the records' JSON escaping, no quotes. */
static bool put_escaped(const struct record_seal_sink *s, const uint8_t *p,
			size_t n)
{
	char tmp[6 * 256];
	while (n) {
		uint32_t k = n > 256 ? 256 : (uint32_t)n;
		if (!put(s, tmp, record_json_escape(p, k, tmp)))
			return false;
		p += k;
		n -= k;
	}
	return true;
}

static bool put_str(const struct record_seal_sink *s, const char *str)
{
	return put(s, "\"", 1) &&
	       put_escaped(s, (const uint8_t *)str, strlen(str)) &&
	       put(s, "\"", 1);
}

/* '*' for each of |n| bytes. */
/* |n| copies of |c|. */
static bool put_fill(const struct record_seal_sink *s, char c, size_t n)
{
	char tmp[256];
	memset(tmp, c, sizeof(tmp));
	while (n) {
		size_t k = n > sizeof(tmp) ? sizeof(tmp) : n;
		if (!put(s, tmp, k))
			return false;
		n -= k;
	}
	return true;
}

/* The separator before an entry of a comma-separated list. */
static bool put_sep(struct record_seal_sink *s)
{
	bool ok = !s->more || put(s, ",", 1);
	s->more = true;
	return ok;
}

/* The tap's records are built in chains of the worker's pool. */
struct chain_sink {
	struct bpool *p;
	struct bchain *c;
};

static bool chain_put(void *user, const void *p, size_t n)
{
	struct chain_sink *cs = user;
	return n <= UINT32_MAX && bchain_append(cs->p, cs->c, p, (uint32_t)n);
}

/* One entry of a record's "sealed": {"where","rule","action"}. */
static bool put_applied(struct record_seal_sink *s, const char *where,
			const struct policy_span *sp, bool redacted)
{
	return put_sep(s) && put_lit(s, "{\"where\":") && put_str(s, where) &&
	       put_lit(s, ",\"rule\":") && put_str(s, sp->rule ? sp->rule : "?") &&
	       put_lit(s, ",\"action\":\"") &&
	       put_lit(s, redacted ? "redact" : action_name(sp->action)) &&
	       put_lit(s, "\"}");
}

/* One body finding: {"where","offset","length","action","value"} with the
 * token (|tok|, |tlen| bytes) or, |tok| NULL, {"redacted":len}. */
static bool put_finding(struct record_seal_sink *s, const char *where,
			uint64_t off, const struct policy_span *sp,
			const char *tok, size_t tlen)
{
	char num[80];
	snprintf(num, sizeof(num), ",\"offset\":%llu,\"length\":%u,\"action\":\"",
		 (unsigned long long)off, sp->len);
	bool ok = put_sep(s) && put_lit(s, "{\"where\":") && put_str(s, where) &&
		  put_lit(s, num) &&
		  put_lit(s, tok ? action_name(sp->action) : "redact") &&
		  put_lit(s, "\",\"value\":");
	if (tok)
		return ok && put(s, "\"", 1) && put(s, tok, tlen) &&
		       put_lit(s, "\"}");
	snprintf(num, sizeof(num), "{\"redacted\":%u}}", sp->len);
	return ok && put_lit(s, num);
}

/* ---- replacing spans -------------------------------------------------------- */

/* Where one splice writes. */
struct splice {
	const struct record_seal_sink *out; /* the value; NULL: none */
	bool json;            /* |out| is inside a JSON string: escape */
	struct record_seal_sink *notes;     /* entries; NULL: none */
	bool body;            /* body findings, field "<field>:<rule>" */
	uint64_t off;         /* findings: offset of the input in its body */
};

/* The bytes between spans, as they are. */
static bool put_gap(const struct splice *o, const uint8_t *p, size_t n)
{
	if (!o->out)
		return true;
	return o->json ? put_escaped(o->out, p, n) : put(o->out, p, n);
}

/* A span's replacement: its token, or '*' per byte. A whole JSON value
 * (number, object ...) goes in quotes so the JSON around stays valid; one
 * cut by chunk boundaries gets the opening quote in its first part and
 * the closing one in its last. A number cut by a boundary is redacted as
 * '9's: each part alone cannot be a quoted token, and a number of 9s is
 * still a number. */
static bool put_span(const struct splice *o, const struct policy_span *sp,
		     const char *tok, size_t tlen)
{
	if (!o->out)
		return true;
	if (sp->flags & POLICY_SPAN_JSON_NUMBER)
		return put_fill(o->out, '9', sp->len);
	bool quote = !o->json && (sp->flags & POLICY_SPAN_JSON_VALUE);
	bool open = quote && !(sp->flags & POLICY_SPAN_OPEN_BEFORE);
	bool close = quote && !(sp->flags & POLICY_SPAN_OPEN_AFTER);
	return (!open || put(o->out, "\"", 1)) &&
	       (tok ? put(o->out, tok, tlen) : put_fill(o->out, '*', sp->len)) &&
	       (!close || put(o->out, "\"", 1));
}

static bool put_note(struct record_sealer *rs, const struct splice *o,
		     const char *where, const struct policy_span *sp,
		     const char *tok, size_t tlen)
{
	if (!o->notes)
		return true;
	if (!o->body)
		return put_applied(o->notes, where, sp, !tok);
	if (!put_finding(o->notes, where, o->off + sp->off, sp, tok, tlen))
		return false;
	ST_CTR_INC(rs->c, seal_body_findings);
	return true;
}

/* The one walk over a value's spans that every output shares: the bytes
 * between spans go out as they are, each span as its token (sealed under
 * the route's tenant, bound to |w|) or '*'s, with a note per span.
 * Spans must be sorted and disjoint (the policy's contract); one that is
 * not is skipped. Returns the number of spans redacted rather than made
 * into tokens, or -1 when a sink refused bytes. */
static int splice(struct record_sealer *rs, const struct policy_route *r,
		  const struct record_seal_where *w,
		  const struct policy_span *sp, unsigned n, const uint8_t *in,
		  size_t len, const struct splice *o)
{
	const char *tenant = record_seal_tenant(r);
	char field[192];
	size_t pos = 0;
	int redacted = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct policy_span *s = &sp[i];
		if (s->off < pos || s->off + (size_t)s->len > len)
			continue;
		struct record_seal_where sw = *w;
		if (o->body) {
			/* the body and the rule: a token cannot be moved to a
			 * header or to another rule's place */
			snprintf(field, sizeof(field), "%s:%s", w->field,
				 s->rule ? s->rule : "?");
			sw.field = field;
		}
		int t = make_token(rs, s->action, tenant, &sw, in + s->off,
				   s->len);
		const char *tok = t < 0 ? NULL : rs->token;
		size_t tlen = t < 0 ? 0 : (size_t)t;
		if (t < 0) {
			redacted++;
			if (s->action == POLICY_ACTION_REDACT)
				ST_CTR_INC(rs->c, seal_redacted);
		}
		if (!put_gap(o, in + pos, s->off - pos) ||
		    !put_span(o, s, tok, tlen) ||
		    !put_note(rs, o, sw.field, s, tok, tlen))
			return -1;
		pos = s->off + s->len;
	}
	return put_gap(o, in + pos, len - pos) ? redacted : -1;
}

bool record_seal_value(struct record_sealer *rs, const struct policy_route *r,
		       const struct record_seal_where *w, const void *name,
		       size_t nlen, const void *value, size_t vlen,
		       struct bpool *p, struct bchain *out,
		       struct bchain *applied)
{
	struct policy_span sp[MAX_SPANS];
	unsigned flags = 0;
	int n = r ? policy_scan_value(r, name, nlen, value, vlen, sp,
				      MAX_SPANS, &flags)
		  : 0;
	const uint8_t *v = value;
	if (n <= 0 && !(flags & POLICY_SCAN_SPANS_FULL))
		return record_json_str(p, out, v, (uint32_t)vlen);
	if (n < 0 || (flags & POLICY_SCAN_SPANS_FULL) || vlen > SEAL_VALUE_MAX) {
		/* More sensitive parts than we track, or too long to seal:
		 * nothing of it is written. */
		ST_CTR_INC(rs->c, seal_errors);
		return record_json_redacted(p, out, vlen);
	}
	/* A string with tokens in place of the spans and '*' over redacted
	 * ones; a single span over the whole value that cannot be sealed
	 * becomes {"redacted":len} instead. */
	struct chain_sink oc = { p, out }, ac = { p, applied };
	struct record_seal_sink os = { chain_put, &oc, false };
	struct record_seal_sink as = { chain_put, &ac, applied && applied->len };
	struct splice o = { .out = &os, .json = true,
			    .notes = applied ? &as : NULL };
	uint32_t undo = out->len;
	int red = put(&os, "\"", 1) ? splice(rs, r, w, sp, (unsigned)n, v, vlen,
					     &o)
				    : -1;
	if (red < 0 || !put(&os, "\"", 1))
		return false;
	if (n == 1 && sp[0].off == 0 && sp[0].len == vlen && red == 1) {
		bchain_truncate(p, out, undo);
		return record_json_redacted(p, out, vlen);
	}
	return true;
}

int record_seal_replace(struct record_sealer *rs, const struct policy_route *r,
			const struct record_seal_where *w, bool body,
			uint64_t off, const struct policy_span *sp, unsigned n,
			const uint8_t *in, size_t len,
			const struct record_seal_sink *out,
			struct record_seal_sink *notes)
{
	struct splice o = { .out = out, .notes = notes, .body = body,
			    .off = off };
	/* rs->token held only sealed output (no plaintext): nothing to wipe;
	 * wiping its ~88 KB per value cost a fifth of ext_proc's time. */
	return splice(rs, r, w, sp, n, in, len, &o);
}

unsigned record_seal_body(struct record_sealer *rs,
			  const struct policy_route *r,
			  const char *record_id, const char *prefix,
			  const void *ctype, size_t clen, const uint8_t *body,
			  size_t len, struct bpool *p, struct bchain *found)
{
	if (!r || !len)
		return 0;
	struct policy_span sp[MAX_SPANS];
	unsigned flags = 0;
	int n = policy_scan_body(r, ctype, clen, body, len, sp, MAX_SPANS,
				 &flags);
	if (n <= 0)
		return 0;
	/* Findings only (the body itself is never recorded); when the pool
	 * runs out, this body's findings are left out whole. */
	struct chain_sink fc = { p, found };
	struct record_seal_sink fs = { chain_put, &fc, found->len != 0 };
	struct record_seal_where w = { record_id, prefix };
	uint32_t undo = found->len;
	if (record_seal_replace(rs, r, &w, true, 0, sp, (unsigned)n, body, len,
				NULL, &fs) < 0)
		bchain_truncate(p, found, undo);
	return (unsigned)n;
}
