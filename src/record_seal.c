/* Policy + keys + sealing for record values. See record_seal.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "sealtap/keys.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/policy.h"
#include "sealtap/record.h"
#include "sealtap/record_seal.h"
#include "sealtap/seal.h"

#define MAX_SPANS 32      /* spans handled per value */
#define MAX_KEYS 64       /* (tenant, DEK) contexts cached per worker */
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
	struct key_ctx keys[MAX_KEYS];
	char *token;   /* TOKEN_CAP scratch */
	char *masked;  /* a value with redacted spans, SEAL_VALUE_MAX */
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
	rs->masked = malloc(SEAL_VALUE_MAX);
	if (!rs->pol || !rs->token || !rs->masked) {
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
	for (unsigned i = 0; i < MAX_KEYS; i++)
		key_ctx_release(&rs->keys[i]);
	policy_free(rs->own_pol);
	free(rs->token);
	free(rs->masked);
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

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
	for (unsigned i = 0; i < MAX_KEYS; i++) {
		struct key_ctx *k = &rs->keys[i];
		if (k->generation == d->generation) {
			k->dek = d;
			return k->broken ? NULL : k;
		}
		if (!k->generation && !free_slot)
			free_slot = k;
	}
	if (!free_slot) { /* drop the oldest contexts: a rare rotation storm */
		free_slot = &rs->keys[d->generation % MAX_KEYS];
		key_ctx_release(free_slot);
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
	if (!k) {
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
	if (rs->cache)
		keys_cache_charge(rs->cache, rs->worker, k->dek, 1, wall_ns());
	return n;
}

static bool put_applied(struct bpool *p, struct bchain *applied,
			const char *where, const struct policy_span *sp,
			bool redacted)
{
	if (!applied)
		return true;
	bool ok = bchain_puts(p, applied, applied->len ? ",{\"where\":"
						       : "{\"where\":");
	ok = ok && record_json_str(p, applied, (const uint8_t *)where,
				   (uint32_t)strlen(where));
	ok = ok && bchain_puts(p, applied, ",\"rule\":");
	const char *rule = sp->rule ? sp->rule : "?";
	ok = ok && record_json_str(p, applied, (const uint8_t *)rule,
				   (uint32_t)strlen(rule));
	ok = ok && bchain_puts(p, applied, ",\"action\":\"");
	ok = ok && bchain_puts(p, applied,
			       redacted ? "redact" : action_name(sp->action));
	ok = ok && bchain_puts(p, applied, "\"}");
	return ok;
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
	const char *tenant = record_seal_tenant(r);
	/* A single span over the whole value that cannot be sealed becomes
	 * {"redacted":len}; otherwise a string with tokens in place of the
	 * spans and '*' over redacted ones. */
	if (n == 1 && sp[0].off == 0 && sp[0].len == vlen) {
		int t = make_token(rs, sp[0].action, tenant, w, v, vlen);
		put_applied(p, applied, w->field, &sp[0], t < 0);
		if (t < 0) {
			if (sp[0].action == POLICY_ACTION_REDACT)
				ST_CTR_INC(rs->c, seal_redacted);
			return record_json_redacted(p, out, vlen);
		}
		return record_json_str(p, out, (const uint8_t *)rs->token,
				       (uint32_t)t);
	}
	/* Build the new value piece by piece: the bytes between spans as they
	 * are, spans as tokens (or '*'). Spans come sorted and disjoint. */
	bool ok = bchain_puts(p, out, "\"");
	size_t pos = 0;
	for (int i = 0; i < n && ok; i++) {
		if (sp[i].off < pos || sp[i].off + sp[i].len > vlen)
			continue; /* overlapping/out of range: skip */
		char tmp[6 * 64];
		size_t gap = sp[i].off - pos;
		/* the plain part (escaped through a throwaway JSON string) */
		if (gap) {
			struct bchain plain;
			bchain_init(&plain, 0);
			ok = record_json_str(p, &plain, v + pos, (uint32_t)gap);
			/* copy without its quotes */
			uint32_t inner = plain.len >= 2 ? plain.len - 2 : 0;
			for (uint32_t o = 0; ok && o < inner;) {
				uint32_t k = inner - o > sizeof(tmp)
						     ? (uint32_t)sizeof(tmp)
						     : inner - o;
				bchain_copy(&plain, 1 + o, tmp, k);
				ok = bchain_append(p, out, tmp, k);
				o += k;
			}
			bchain_reset(p, &plain);
		}
		int t = make_token(rs, sp[i].action, tenant, w, v + sp[i].off,
				   sp[i].len);
		put_applied(p, applied, w->field, &sp[i], t < 0);
		if (t < 0) {
			if (sp[i].action == POLICY_ACTION_REDACT)
				ST_CTR_INC(rs->c, seal_redacted);
			memset(tmp, '*', sizeof(tmp));
			for (uint32_t left = sp[i].len; ok && left;) {
				uint32_t k = left > sizeof(tmp)
						     ? (uint32_t)sizeof(tmp)
						     : left;
				ok = bchain_append(p, out, tmp, k);
				left -= k;
			}
		} else {
			ok = ok && bchain_append(p, out, rs->token, (uint32_t)t);
		}
		pos = sp[i].off + sp[i].len;
	}
	if (ok && pos < vlen) {
		struct bchain plain;
		bchain_init(&plain, 0);
		ok = record_json_str(p, &plain, v + pos, (uint32_t)(vlen - pos));
		char tmp[256];
		uint32_t inner = plain.len >= 2 ? plain.len - 2 : 0;
		for (uint32_t o = 0; ok && o < inner;) {
			uint32_t k = inner - o > sizeof(tmp)
					     ? (uint32_t)sizeof(tmp)
					     : inner - o;
			bchain_copy(&plain, 1 + o, tmp, k);
			ok = bchain_append(p, out, tmp, k);
			o += k;
		}
		bchain_reset(p, &plain);
	}
	return ok && bchain_puts(p, out, "\"");
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
	const char *tenant = record_seal_tenant(r);
	char where[128];
	for (int i = 0; i < n; i++) {
		if (sp[i].off + (size_t)sp[i].len > len)
			continue;
		/* The field bound into the token: the body and the rule, so
		 * a token cannot be moved to a header or another rule. */
		snprintf(where, sizeof(where), "%s:%s", prefix,
			 sp[i].rule ? sp[i].rule : "?");
		struct record_seal_where w = { record_id, where };
		int t = make_token(rs, sp[i].action, tenant, &w,
				   body + sp[i].off, sp[i].len);
		uint32_t undo = found->len;
		bool ok = bchain_puts(p, found, found->len ? ",{\"where\":"
							   : "{\"where\":");
		ok = ok && record_json_str(p, found, (const uint8_t *)where,
					   (uint32_t)strlen(where));
		ok = ok && bchain_puts(p, found, ",\"offset\":");
		char num[48];
		snprintf(num, sizeof(num), "%u,\"length\":%u", sp[i].off,
			 sp[i].len);
		ok = ok && bchain_puts(p, found, num);
		ok = ok && bchain_puts(p, found, ",\"action\":\"");
		ok = ok && bchain_puts(p, found,
				       t < 0 ? "redact" : action_name(sp[i].action));
		ok = ok && bchain_puts(p, found, "\",\"value\":");
		if (t < 0) {
			if (sp[i].action == POLICY_ACTION_REDACT)
				ST_CTR_INC(rs->c, seal_redacted);
			ok = ok && record_json_redacted(p, found, sp[i].len);
		} else {
			ok = ok && record_json_str(p, found,
						   (const uint8_t *)rs->token,
						   (uint32_t)t);
		}
		ok = ok && bchain_puts(p, found, "}");
		if (!ok) {
			bchain_truncate(p, found, undo);
			break;
		}
		ST_CTR_INC(rs->c, seal_body_findings);
	}
	OPENSSL_cleanse(rs->token, TOKEN_CAP);
	return (unsigned)n;
}
