/* `sealtap open RECORDS...`: prints records with their sealed and
 * tokenized values opened, for a key holder (KMS access to the tenant's
 * KEK). Hashed values cannot be opened (one-way); they stay as tokens.
 *
 * How a token finds its key and AAD: the record says its tenant and id;
 * the token says its key id (any DEK of the tenant, retired ones too, is
 * unwrapped on first use); the field comes from where the token sits —
 * "<request|response>.<headers|trailers|informational>:<name>" for header
 * values (a pseudo-header field such as "path" counts as
 * request.headers::path), the "where" of a body finding. A token moved to
 * another field or record, or altered, fails to open: it is left as it is,
 * reported on stderr, and the exit status is 1.
 *
 * The records are walked as JSON, one line at a time, and written back
 * with only the token texts replaced by their (JSON-escaped) plaintext. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "sealtap/config.h"
#include "sealtap/keys.h"
#include "sealtap/keys_runtime.h"
#include "sealtap/kms.h"
#include "sealtap/log.h"
#include "sealtap/mem.h"
#include "sealtap/open.h"
#include "sealtap/seal.h"

#define OPEN_MAX_KEYS 256
#define OPEN_DEPTH 16
#define OPEN_OUTBUF 65536 /* stdout's buffer */

struct open_key {
	char tenant[KEYS_TENANT_MAX + 1];
	char key_id[SEAL_KEY_ID_MAX + 1];
	struct seal_gcm *gcm;
	struct seal_siv *siv;
	bool failed;
};

struct open_env {
	struct st_config cfg;
	struct keys_store *store;
	struct kms *kms;
	struct open_key keys[OPEN_MAX_KEYS];
	unsigned nkeys;
	const char *only_tenant;
	const char *only_field;
	unsigned long opened, refused, kept;
	uint8_t *plain; /* SEAL_VALUE_MAX, not dumped */
};

/* ---- keys ------------------------------------------------------------ */

static const char *or_default(const char *v, const char *def)
{
	return v && v[0] ? v : def;
}

static int env_open_kms(struct open_env *e)
{
	char err[KMS_MSG_MAX + 64];
	int rc = keys_kms_open(&e->cfg, &e->kms, err, sizeof(err));
	if (rc)
		fprintf(stderr, "sealtap: error: %s\n", err);
	return rc;
}

/* The open-only contexts of |key_id| of |tenant|, unwrapped on first use;
 * NULL if the key is unknown or cannot be unwrapped (reported once). */
static struct open_key *key_get(struct open_env *e, const char *tenant,
				const char *key_id, size_t idlen)
{
	for (unsigned i = 0; i < e->nkeys; i++) {
		struct open_key *k = &e->keys[i];
		if (!strcmp(k->tenant, tenant) && strlen(k->key_id) == idlen &&
		    !memcmp(k->key_id, key_id, idlen))
			return k->failed ? NULL : k;
	}
	if (e->nkeys == OPEN_MAX_KEYS || idlen > SEAL_KEY_ID_MAX)
		return NULL;
	struct open_key *k = &e->keys[e->nkeys++];
	memset(k, 0, sizeof(*k));
	snprintf(k->tenant, sizeof(k->tenant), "%s", tenant);
	memcpy(k->key_id, key_id, idlen);
	k->failed = true;
	struct keys_tenant_rec *t = keys_store_tenant(e->store, tenant);
	struct keys_dek_rec *d = t ? keys_store_dek(t, k->key_id) : NULL;
	if (!d) {
		fprintf(stderr, "sealtap: error: key %s of tenant %s is not in "
			"the key store\n", k->key_id, tenant);
		return NULL;
	}
	if (!e->kms && env_open_kms(e) != 0)
		return NULL;
	/* The DEK exists only here, in a buffer wiped right after the
	 * contexts (which keep derived keys only) are made. */
	uint8_t dek[KMS_DEK_MAX];
	char why[KMS_MSG_MAX + 96] = "cannot make cipher contexts";
	if (keys_dek_unwrap(e->kms, t, d, dek, sizeof(dek), why,
			    sizeof(why)) == 0 &&
	    seal_gcm_new(dek, tenant, k->key_id, NULL, &k->gcm) == 0 &&
	    seal_siv_new(dek, tenant, k->key_id, &k->siv) == 0)
		k->failed = false;
	else
		fprintf(stderr, "sealtap: error: key %s of tenant %s cannot be "
			"used: %s\n", k->key_id, tenant, why);
	OPENSSL_cleanse(dek, sizeof(dek));
	return k->failed ? NULL : k;
}

/* ---- tokens inside a JSON string ------------------------------------ */

static bool b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool idchar(char c)
{
	return b64url(c) || c == '.';
}

/* Length of a token starting at |s| (at "stk1."), 0 if none. */
static size_t token_len(const char *s, size_t n)
{
	if (n < 8 || memcmp(s, "stk1.", 5) != 0 || s[6] != '.')
		return 0;
	size_t i = 7, last_dot = 0;
	while (i < n && idchar(s[i])) {
		if (s[i] == '.')
			last_dot = i;
		i++;
	}
	return last_dot ? i : 0;
}

static void put_json_bytes(FILE *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, out);
		else
			fprintf(out, "\\u%04x", c);
	}
}

static bool field_wanted(const struct open_env *e, const char *field)
{
	return !e->only_field ||
	       !strncmp(field, e->only_field, strlen(e->only_field));
}

/* Writes the string body |s| (raw JSON-escaped text, no quotes) with its
 * tokens opened. Tokens never contain characters JSON escapes, so they
 * are found in the escaped text as they are. */
static void put_opened(struct open_env *e, FILE *out, const char *s, size_t n,
		       const char *tenant, const char *rid, const char *field)
{
	size_t i = 0;
	while (i < n) {
		size_t t = (tenant && field && field_wanted(e, field))
				   ? token_len(s + i, n - i)
				   : 0;
		if (!t) {
			fputc(s[i++], out);
			continue;
		}
		const char *tok = s + i;
		char kind = tok[5];
		const char *kid = tok + 7;
		const char *dot = memchr(kid, '.', t - 7);
		const char *last = kid;
		for (const char *q = kid; q < tok + t; q++)
			if (*q == '.')
				last = q;
		(void)dot;
		size_t idlen = (size_t)(last - kid);
		struct open_key *k = key_get(e, tenant, kid, idlen);
		int rc = -ENOKEY;
		if (k && kind == SEAL_KIND_GCM)
			rc = seal_token_open_gcm(k->gcm, field, strlen(field), rid,
						 strlen(rid), tok, t, e->plain,
						 SEAL_VALUE_MAX);
		else if (k && kind == SEAL_KIND_SIV)
			rc = seal_token_open_siv(k->siv, field, strlen(field),
						 tok, t, e->plain,
						 SEAL_VALUE_MAX);
		if (rc >= 0) {
			put_json_bytes(out, e->plain, (size_t)rc);
			OPENSSL_cleanse(e->plain, (size_t)rc);
			e->opened++;
		} else {
			fwrite(tok, 1, t, out);
			if (kind == SEAL_KIND_HASH) {
				e->kept++; /* one-way by design */
			} else {
				e->refused++;
				fprintf(stderr,
					"sealtap: record %s, %s: token does not "
					"open (%s): moved, altered or another "
					"key\n",
					rid, field, seal_strerror(rc));
			}
		}
		i += t;
	}
}

/* ---- a JSON walker that knows where it is --------------------------- */

struct frame {
	bool array;
	char key[48];       /* object: current key */
	unsigned index;     /* array: current index */
	char first[160];    /* array: its element 0 if a string (a name) */
};

struct walk {
	struct open_env *e;
	FILE *out;
	const char *tenant; /* NULL: record without one (nothing sealed) */
	char rid[24];
	struct frame st[OPEN_DEPTH];
	int depth;
	char where[160];    /* body finding: its "where" seen so far */
};

/* The field a string at the current position belongs to, or NULL. */
static const char *field_here(struct walk *w, char *buf, size_t cap)
{
	int d = w->depth;
	/* request.headers[i][1]: frames  {request} [headers] [pair] */
	if (d >= 4 && w->st[d - 1].array && w->st[d - 1].index == 1 &&
	    w->st[d - 2].array && !w->st[d - 3].array) {
		const char *list = w->st[d - 3].key;
		const char *side = d >= 4 ? w->st[d - 4].key : "";
		if (!strcmp(list, "headers") || !strcmp(list, "trailers")) {
			snprintf(buf, cap, "%s.%s:%s", side, list,
				 w->st[d - 1].first);
			return buf;
		}
	}
	/* response.informational[i][j][1] */
	if (d >= 5 && w->st[d - 1].array && w->st[d - 1].index == 1 &&
	    !strcmp(w->st[d - 4].key, "informational")) {
		snprintf(buf, cap, "response.informational:%s",
			 w->st[d - 1].first);
		return buf;
	}
	if (d >= 2 && !w->st[d - 1].array) {
		const char *k = w->st[d - 1].key;
		/* request.path etc.: the pseudo-header's field */
		if (!w->st[d - 2].array && !strcmp(w->st[d - 2].key, "request") &&
		    (!strcmp(k, "method") || !strcmp(k, "scheme") ||
		     !strcmp(k, "authority") || !strcmp(k, "path"))) {
			snprintf(buf, cap, "request.headers::%s", k);
			return buf;
		}
		/* body_findings[i].value */
		if (!strcmp(k, "value") && w->where[0])
			return w->where;
	}
	return NULL;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* Copies a JSON string at |p| (at its opening quote) to out, opening
 * tokens; returns the position after it, NULL if malformed. Sets *|raw|
 * and *|len| to the escaped body. */
static const char *string_end(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!*++p)
				return NULL;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

static void copy_unescaped(char *dst, size_t cap, const char *s, size_t n)
{
	/* Names and keys are plain ASCII in records; escaped text is kept
	 * as it is (it then just does not match a field name). */
	size_t k = n < cap - 1 ? n : cap - 1;
	memcpy(dst, s, k);
	dst[k] = 0;
}

static bool walk_line(struct walk *w, const char *p)
{
	w->depth = 0;
	bool expect_key = false;
	while (*(p = skip_ws(p))) {
		char c = *p;
		struct frame *top = w->depth ? &w->st[w->depth - 1] : NULL;
		if (c == '{' || c == '[') {
			if (w->depth == OPEN_DEPTH)
				return false;
			struct frame *f = &w->st[w->depth++];
			memset(f, 0, sizeof(*f));
			f->array = c == '[';
			expect_key = !f->array;
			fputc(c, w->out);
			p++;
			continue;
		}
		if (c == '}' || c == ']') {
			if (!w->depth)
				return false;
			w->depth--;
			fputc(c, w->out);
			p++;
			continue;
		}
		if (c == ',') {
			if (top && top->array)
				top->index++;
			else
				expect_key = true;
			fputc(c, w->out);
			p++;
			continue;
		}
		if (c == ':') {
			fputc(c, w->out);
			p++;
			continue;
		}
		if (c == '"') {
			const char *e = string_end(p);
			if (!e)
				return false;
			const char *s = p + 1;
			size_t n = (size_t)(e - 1 - s);
			if (expect_key && top && !top->array) {
				copy_unescaped(top->key, sizeof(top->key), s, n);
				fwrite(p, 1, (size_t)(e - p), w->out);
				expect_key = false;
				p = e;
				continue;
			}
			if (top && top->array && top->index == 0)
				copy_unescaped(top->first, sizeof(top->first), s,
					       n);
			if (top && !top->array && !strcmp(top->key, "where"))
				copy_unescaped(w->where, sizeof(w->where), s, n);
			char fb[200];
			const char *field = field_here(w, fb, sizeof(fb));
			fputc('"', w->out);
			put_opened(w->e, w->out, s, n, w->tenant, w->rid, field);
			fputc('"', w->out);
			p = e;
			continue;
		}
		/* number, true, false, null: copied as they are */
		const char *q = p;
		while (*q && !strchr(",]} \t\r\n", *q))
			q++;
		if (q == p)
			return false;
		fwrite(p, 1, (size_t)(q - p), w->out);
		p = q;
	}
	return w->depth == 0;
}

/* Top-level "key":"value" found by text: the keys are unique in a record
 * and a '"' inside a string is always escaped, so the match is exact. */
static bool top_string(const char *line, const char *key, char *out,
		       size_t cap)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(line, pat);
	if (!p)
		return false;
	p += strlen(pat);
	const char *q = strchr(p, '"');
	if (!q || (size_t)(q - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = 0;
	return true;
}

static int open_file(struct open_env *e, const char *path)
{
	FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "r");
	if (!f) {
		fprintf(stderr, "sealtap: error: cannot open '%s': %s\n", path,
			strerror(errno));
		return -errno;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int rc = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		char tenant[KEYS_TENANT_MAX + 1];
		struct walk w;
		memset(&w, 0, sizeof(w));
		w.e = e;
		w.out = stdout;
		w.tenant = top_string(line, "tenant", tenant, sizeof(tenant))
				   ? tenant
				   : NULL;
		if (e->only_tenant &&
		    (!w.tenant || strcmp(w.tenant, e->only_tenant)))
			continue;
		top_string(line, "id", w.rid, sizeof(w.rid));
		if (!walk_line(&w, line)) {
			fprintf(stderr, "sealtap: error: %s:%lu: not a record "
				"(malformed JSON)\n", path, lineno);
			rc = -EINVAL;
		}
		fputc('\n', stdout);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out,
"usage: sealtap open [options] RECORDS...\n"
"\n"
"Prints records (NDJSON files, or - for stdin) with their sealed (stk1.g)\n"
"and tokenized (stk1.s) values opened. Needs access to the tenants' KEKs\n"
"through the KMS (the same kms.* configuration and key store as the tap).\n"
"Hashed values (stk1.h) are one-way and stay as they are.\n"
"\n"
"options:\n"
"  -c, --config FILE   configuration (kms.*, keys.store)\n"
"      --store FILE    key store (overrides keys.store)\n"
"      --tenant NAME   only records of this tenant\n"
"      --field PREFIX  only open values of fields starting with PREFIX,\n"
"                      e.g. request.headers:authorization\n"
"  -h, --help          this text\n"
"\n"
"A token that does not open where it sits (moved to another field or\n"
"record, altered, or of an unknown key) is left as it is and reported on\n"
"stderr; the exit status is then 1. 0: all opened; 2: bad usage.\n");
}

int open_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "store", required_argument, NULL, 's' },
		{ "tenant", required_argument, NULL, 't' },
		{ "field", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct open_env e;
	memset(&e, 0, sizeof(e));
	const char *config = NULL, *store = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': store = optarg; break;
		case 't': e.only_tenant = optarg; break;
		case 'f': e.only_field = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealtap: error: see 'sealtap open "
				"--help'\n");
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	char err[1024];
	if (config ? config_load(config, &e.cfg, err, sizeof(err)) < 0
		   : (config_defaults(&e.cfg), 0)) {
		fprintf(stderr, "sealtap: error: %s\n", err);
		return 2;
	}
	const char *sp = or_default(store, or_default(e.cfg.keys.store,
						      KEYS_STORE_DEFAULT));
	if (keys_store_load(sp, &e.store, err, sizeof(err)) != 0) {
		fprintf(stderr, "sealtap: error: %s\n", err);
		config_free(&e.cfg);
		return 2;
	}
	/* Opened values are plaintext: the buffer they are opened into and
	 * stdout's buffer, which they pass through, are not dumped (mem.h);
	 * the contexts and OpenSSL's memory are secret memory already
	 * (mem_secret.h). stdout keeps its buffer until exit, so it is only
	 * wiped once flushed, never unmapped. */
	static char *outbuf;
	if (!outbuf && (outbuf = mem_nodump_alloc(OPEN_OUTBUF)))
		setvbuf(stdout, outbuf, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF,
			OPEN_OUTBUF);
	e.plain = mem_nodump_alloc(SEAL_VALUE_MAX);
	int rc = e.plain ? 0 : -ENOMEM;
	for (int i = optind; i < argc && rc == 0; i++)
		rc = open_file(&e, argv[i]);
	fflush(stdout);
	if (outbuf)
		OPENSSL_cleanse(outbuf, OPEN_OUTBUF);
	fprintf(stderr, "sealtap open: %lu values opened, %lu refused, %lu "
		"hashed (one-way)\n", e.opened, e.refused, e.kept);
	for (unsigned i = 0; i < e.nkeys; i++) {
		seal_gcm_free(e.keys[i].gcm);
		seal_siv_free(e.keys[i].siv);
	}
	if (e.plain)
		OPENSSL_cleanse(e.plain, SEAL_VALUE_MAX);
	mem_nodump_free(e.plain, SEAL_VALUE_MAX);
	kms_free(e.kms);
	keys_store_free(e.store);
	config_free(&e.cfg);
	if (rc)
		return rc == -EINVAL ? 1 : 2;
	return e.refused ? 1 : 0;
}
