/* Tests for src/kms_pkcs11.c and src/kms.c.
 *
 * The PKCS#11 tests run against a real SoftHSM2 token that the test creates
 * in a temporary directory (its own softhsm2.conf through SOFTHSM2_CONF),
 * with sealtap's own token and KEK setup; nothing is mocked. The .c is
 * included to reach the session and the raw function list, so the test can
 * ask the token directly whether the KEK is extractable.
 *
 * The async front (kms.c) is tested twice: with the SoftHSM2 backend (token
 * removed mid-run: errors are classified transient, retried, and cached
 * DEKs keep being served), and with a scripted backend for retry counts,
 * backoff, cancellation and the completion queue, which a real token cannot
 * produce on demand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <poll.h>
#include <sys/stat.h>

#include "../../src/kms_pkcs11.c"
#include "sealtap/common.h"
#include "sealtap/keys.h"

#define MODULE KMS_PKCS11_MODULE_DEFAULT
#define PIN "4711-sealtap-test"
#define TOKEN "sealtap-test"
#define KEK_A "kek-a"
#define KEK_B "kek-b"

static char hsm_dir[256], hsm_conf[300], hsm_tokens[300], pin_path[300];

static struct kms_pkcs11_cfg cfg_ok(void)
{
	struct kms_pkcs11_cfg c = { MODULE, TOKEN, pin_path, NULL };
	return c;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static struct kms_backend *open_ok(void)
{
	struct kms_pkcs11_cfg c = cfg_ok();
	struct kms_backend *b = NULL;
	char err[KMS_MSG_MAX];
	int rc = kms_pkcs11_open(&c, &b, err, sizeof(err));
	if (rc)
		print_error("open: %s\n", err);
	assert_int_equal(rc, 0);
	return b;
}

static int group_setup(void **state)
{
	(void)state;
	char err[KMS_MSG_MAX];
	bool created;
	if (access(MODULE, R_OK) != 0) {
		print_message("SoftHSM2 not installed (%s)\n", MODULE);
		return -1;
	}
	snprintf(hsm_dir, sizeof(hsm_dir), "/tmp/sealtap-kms-XXXXXX");
	assert_non_null(mkdtemp(hsm_dir));
	snprintf(hsm_tokens, sizeof(hsm_tokens), "%s/tokens", hsm_dir);
	snprintf(hsm_conf, sizeof(hsm_conf), "%s/softhsm2.conf", hsm_dir);
	snprintf(pin_path, sizeof(pin_path), "%s/pin", hsm_dir);
	assert_int_equal(mkdir(hsm_tokens, 0700), 0);
	char conf[512];
	snprintf(conf, sizeof(conf),
		 "directories.tokendir = %s\nobjectstore.backend = file\n"
		 "log.level = ERROR\nslots.removable = false\n",
		 hsm_tokens);
	write_file(hsm_conf, conf, 0600);
	write_file(pin_path, PIN "\n", 0600);
	setenv("SOFTHSM2_CONF", hsm_conf, 1);

	struct kms_pkcs11_cfg c = cfg_ok();
	assert_int_equal(kms_pkcs11_token_init(&c, &created, err, sizeof(err)),
			 0);
	assert_true(created);
	struct kms_backend *b = open_ok();
	assert_int_equal(kms_pkcs11_kek_ensure(b, KEK_A, &created, err,
					       sizeof(err)), 0);
	assert_true(created);
	assert_int_equal(kms_pkcs11_kek_ensure(b, KEK_B, &created, err,
					       sizeof(err)), 0);
	kms_backend_close(b);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", hsm_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* ---- setup and mechanisms ------------------------------------------------------- */

static void test_idempotent_setup(void **state)
{
	(void)state;
	char err[KMS_MSG_MAX];
	bool created = true;
	struct kms_pkcs11_cfg c = cfg_ok();
	assert_int_equal(kms_pkcs11_token_init(&c, &created, err, sizeof(err)),
			 0);
	assert_false(created);
	struct kms_backend *b = open_ok();
	created = true;
	assert_int_equal(kms_pkcs11_kek_ensure(b, KEK_A, &created, err,
					       sizeof(err)), 0);
	assert_false(created);
	kms_backend_close(b);
}

/* SoftHSM2 2.6 offers CKM_AES_KEY_WRAP_PAD for wrap/unwrap (not for
 * encrypt/decrypt) and CKM_AES_GCM for encrypt/decrypt; sealtap picks the
 * former. */
static void test_mechanisms(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	struct p11 *p = b->impl;
	assert_true(p->kwp_ok);
	assert_true(p->gcm_ok);
	assert_false(mech_has(p, CKM_AES_KEY_WRAP_PAD,
			      CKF_ENCRYPT | CKF_DECRYPT));
	assert_string_equal(kms_pkcs11_mechanism(b), "CKM_AES_KEY_WRAP_PAD");
	kms_backend_close(b);
}

/* ---- wrap / unwrap ---------------------------------------------------------------- */

static void roundtrip(struct kms_backend *b, size_t len, uint8_t fmt,
		      struct kms_blob *keep)
{
	uint8_t dek[KMS_DEK_MAX] = { 0 }, back[KEYS_SLOT_SIZE];
	size_t got = 0;
	struct kms_blob blob;
	char msg[KMS_MSG_MAX];
	fill(dek, len, (uint8_t)len);
	int rc = kms_wrap(b, KEK_A, dek, len, &blob, msg, sizeof(msg));
	if (rc)
		print_error("wrap: %s\n", msg);
	assert_int_equal(rc, 0);
	assert_int_equal(blob.b[0], fmt);
	/* The DEK is not in the blob in clear. */
	if (len >= 8)
		assert_null(memmem(blob.b, blob.len, dek, 8));
	memset(back, 0xee, sizeof(back));
	rc = kms_unwrap(b, KEK_A, &blob, back, sizeof(back), &got, msg,
			sizeof(msg));
	if (rc)
		print_error("unwrap: %s\n", msg);
	assert_int_equal(rc, 0);
	assert_int_equal(got, len);
	assert_memory_equal(back, dek, len);
	if (keep)
		*keep = blob;
}

static void test_roundtrip_kwp(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	static const size_t sizes[] = { 8, 16, 24, 32, 40, 64 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		roundtrip(b, sizes[i], BLOB_KWP, NULL);
	/* SoftHSM2 2.6 unwraps RFC 5649 blobs of other lengths to the padded
	 * length, so those go by AES-GCM, exactly. */
	static const size_t odd[] = { 1, 7, 31, 33, 63 };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		roundtrip(b, odd[i], BLOB_GCM, NULL);
	struct kms_blob blob;
	roundtrip(b, 32, BLOB_KWP, &blob);
	assert_int_equal(blob.len, 1 + 40); /* RFC 5649: 32 -> 40 bytes */
	kms_backend_close(b);
}

static void test_roundtrip_gcm(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	struct kms_blob kwp;
	roundtrip(b, 32, BLOB_KWP, &kwp);
	kms_backend_close(b);

	p11_force_mech = CKM_AES_GCM;
	b = open_ok();
	p11_force_mech = 0;
	assert_string_equal(kms_pkcs11_mechanism(b), "CKM_AES_GCM");
	struct kms_blob gcm, gcm2;
	roundtrip(b, 32, BLOB_GCM, &gcm);
	assert_int_equal(gcm.len, 1 + GCM_IV_LEN + 32 + GCM_TAG_LEN);
	roundtrip(b, 32, BLOB_GCM, &gcm2);
	/* Random IVs: the same DEK wraps differently each time. */
	assert_memory_not_equal(gcm.b + 1, gcm2.b + 1, GCM_IV_LEN);

	/* Either kind of blob unwraps whatever the current mechanism. */
	uint8_t back[KEYS_SLOT_SIZE], dek[32];
	size_t got;
	char msg[KMS_MSG_MAX];
	fill(dek, 32, 32);
	assert_int_equal(kms_unwrap(b, KEK_A, &kwp, back, sizeof(back), &got,
				    msg, sizeof(msg)), 0);
	assert_memory_equal(back, dek, 32);
	kms_backend_close(b);
}

/* Unwrapping leaves no object behind: the transient session object holding
 * the DEK is destroyed at once. */
static void test_no_object_left(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	struct p11 *p = b->impl;
	roundtrip(b, 32, BLOB_KWP, NULL);
	CK_BBOOL f = CK_FALSE;
	struct ck_attribute t[] = { { CKA_TOKEN, &f, sizeof(f) } };
	CK_OBJECT_HANDLE h[4];
	CK_ULONG n = 99;
	assert_int_equal(p->f->C_FindObjectsInit(p->sess, t, 1), CKR_OK);
	assert_int_equal(p->f->C_FindObjects(p->sess, h, 4, &n), CKR_OK);
	p->f->C_FindObjectsFinal(p->sess);
	assert_int_equal(n, 0);
	kms_backend_close(b);
}

/* ---- the KEK stays in the token ------------------------------------------------------ */

static void test_kek_not_extractable(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	struct p11 *p = b->impl;
	CK_OBJECT_HANDLE kek;
	char msg[KMS_MSG_MAX];
	assert_int_equal(find_kek(p, KEK_A, &kek, msg, sizeof(msg)), 0);

	CK_BBOOL v = 9;
	assert_int_equal(bool_attr(p, kek, CKA_EXTRACTABLE, &v), 0);
	assert_int_equal(v, CK_FALSE);
	assert_int_equal(bool_attr(p, kek, CKA_SENSITIVE, &v), 0);
	assert_int_equal(v, CK_TRUE);
	assert_int_equal(bool_attr(p, kek, CKA_NEVER_EXTRACTABLE, &v), 0);
	assert_int_equal(v, CK_TRUE);

	/* Its value cannot be read ... */
	uint8_t val[64];
	struct ck_attribute a = { CKA_VALUE, val, sizeof(val) };
	CK_RV rv = p->f->C_GetAttributeValue(p->sess, kek, &a, 1);
	assert_int_equal(rv, CKR_ATTRIBUTE_SENSITIVE);
	/* ... nor wrapped out of the token, not even by another KEK. */
	CK_OBJECT_HANDLE other;
	assert_int_equal(find_kek(p, KEK_B, &other, msg, sizeof(msg)), 0);
	struct ck_mechanism m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	uint8_t out[128];
	CK_ULONG len = sizeof(out);
	rv = p->f->C_WrapKey(p->sess, &m, other, kek, out, &len);
	assert_true(rv == CKR_KEY_UNEXTRACTABLE || rv == CKR_KEY_NOT_WRAPPABLE);
	kms_backend_close(b);

	/* And an independent tool agrees (opensc's pkcs11-tool). */
	if (system("command -v pkcs11-tool >/dev/null 2>&1") == 0) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd),
			 "pkcs11-tool --module %s --token-label %s --login "
			 "--pin %s --list-objects --type secrkey 2>/dev/null | "
			 "grep -A6 'label: *%s' | grep -q 'never extractable'",
			 MODULE, TOKEN, PIN, KEK_A);
		assert_int_equal(system(cmd), 0);
	}
}

/* A key with the KEK's label that could leave the token is refused. */
static void test_extractable_kek_refused(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	struct p11 *p = b->impl;
	CK_ULONG cls = CKO_SECRET_KEY, kt = CKK_AES, vl = 32;
	CK_BBOOL t = CK_TRUE;
	struct ck_attribute tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &vl, sizeof(vl) },
		{ CKA_LABEL, "leaky", 5 },
		{ CKA_TOKEN, &t, sizeof(t) },
		{ CKA_EXTRACTABLE, &t, sizeof(t) },
		{ CKA_SENSITIVE, &t, sizeof(t) },
		{ CKA_WRAP, &t, sizeof(t) },
		{ CKA_UNWRAP, &t, sizeof(t) },
	};
	struct ck_mechanism gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_OBJECT_HANDLE h;
	assert_int_equal(p->f->C_GenerateKey(p->sess, &gen, tmpl, 9, &h),
			 CKR_OK);
	uint8_t dek[32] = { 1 };
	struct kms_blob blob;
	char msg[KMS_MSG_MAX];
	int rc = kms_wrap(b, "leaky", dek, 32, &blob, msg, sizeof(msg));
	assert_int_equal(rc, -EPERM);
	assert_non_null(strstr(msg, "extractable"));
	p->f->C_DestroyObject(p->sess, h);
	kms_backend_close(b);
}

/* ---- configuration and credential errors ---------------------------------------------- */

static void expect_open_fails(const struct kms_pkcs11_cfg *c, int want,
			      enum kms_class cls, const char *needle)
{
	struct kms_backend *b = (void *)1;
	char err[KMS_MSG_MAX] = "";
	int rc = kms_pkcs11_open(c, &b, err, sizeof(err));
	if (rc != want || (needle && !strstr(err, needle)))
		print_error("rc %d (want %d): %s\n", rc, want, err);
	assert_int_equal(rc, want);
	assert_null(b);
	assert_int_equal(kms_classify(rc), cls);
	if (needle)
		assert_non_null(strstr(err, needle));
	assert_null(strstr(err, PIN)); /* never the PIN */
	assert_null(strchr(err, '\n'));
}

static void test_wrong_pin(void **state)
{
	(void)state;
	struct kms_pkcs11_cfg c = { MODULE, TOKEN, NULL, "SEALTAP_TEST_PIN" };
	setenv("SEALTAP_TEST_PIN", "wrong-" PIN, 1);
	expect_open_fails(&c, -EACCES, KMS_AUTH, "CKR_PIN_INCORRECT");
	setenv("SEALTAP_TEST_PIN", PIN, 1);
	struct kms_backend *b;
	char err[KMS_MSG_MAX];
	assert_int_equal(kms_pkcs11_open(&c, &b, err, sizeof(err)), 0);
	kms_backend_close(b);
	unsetenv("SEALTAP_TEST_PIN");
}

static void test_pin_sources(void **state)
{
	(void)state;
	char path[400], pin[KMS_PKCS11_PIN_MAX + 1], err[KMS_MSG_MAX];
	struct kms_pkcs11_cfg c = { MODULE, TOKEN, path, NULL };

	/* Readable by others: refused before the token sees it. */
	snprintf(path, sizeof(path), "%s/pin-open", hsm_dir);
	write_file(path, PIN "\n", 0644);
	expect_open_fails(&c, -EACCES, KMS_AUTH, "chmod 600");
	/* 0400 is fine, CRLF and a second line are ignored. */
	write_file(path, PIN "\r\nsecond line\n", 0400);
	assert_int_equal(kms_pkcs11_pin_read(&c, pin, sizeof(pin), err,
					     sizeof(err)),
			 (int)strlen(PIN));
	assert_string_equal(pin, PIN);
	unlink(path);
	/* Missing file. */
	expect_open_fails(&c, -ENOENT, KMS_FATAL, "PIN file");
	/* Empty file. */
	write_file(path, "\n", 0600);
	expect_open_fails(&c, -EINVAL, KMS_FATAL, "empty");
	/* Too long. */
	char longpin[400];
	memset(longpin, 'x', 300);
	longpin[300] = '\0';
	write_file(path, longpin, 0600);
	expect_open_fails(&c, -EINVAL, KMS_FATAL, "longer than");
	unlink(path);
	/* Not a regular file. */
	c.pin_file = hsm_dir;
	expect_open_fails(&c, -EACCES, KMS_AUTH, "regular file");
	/* Variable unset, or no source at all. */
	c.pin_file = NULL;
	c.pin_env = "SEALTAP_TEST_UNSET_PIN";
	unsetenv("SEALTAP_TEST_UNSET_PIN");
	expect_open_fails(&c, -EINVAL, KMS_FATAL, "SEALTAP_TEST_UNSET_PIN");
	c.pin_env = NULL;
	expect_open_fails(&c, -EINVAL, KMS_FATAL, "no PIN source");
}

static void test_missing_token(void **state)
{
	(void)state;
	struct kms_pkcs11_cfg c = cfg_ok();
	c.token = "no-such-token";
	expect_open_fails(&c, -ENXIO, KMS_NOT_FOUND, "no-such-token");
	c.token = "a-label-longer-than-thirty-two-characters";
	expect_open_fails(&c, -EINVAL, KMS_FATAL, "1..32");
}

static void test_bad_module(void **state)
{
	(void)state;
	struct kms_pkcs11_cfg c = cfg_ok();
	c.module = "/nonexistent/libsofthsm2.so";
	expect_open_fails(&c, -ENOENT, KMS_FATAL, "/nonexistent/libsofthsm2.so");
	/* A library that is not a PKCS#11 module. */
	c.module = "/lib/x86_64-linux-gnu/libz.so.1";
	if (access(c.module, R_OK) == 0)
		expect_open_fails(&c, -ELIBBAD, KMS_FATAL, "C_GetFunctionList");
	/* Not a library at all. */
	c.module = hsm_conf;
	expect_open_fails(&c, -ELIBBAD, KMS_FATAL, "cannot load");
}

static void test_unknown_kek(void **state)
{
	(void)state;
	struct kms_backend *b = open_ok();
	uint8_t dek[32] = { 0 };
	struct kms_blob blob;
	char msg[KMS_MSG_MAX];
	int rc = kms_wrap(b, "no-such-kek", dek, 32, &blob, msg, sizeof(msg));
	assert_int_equal(rc, -ENOKEY);
	assert_int_equal(kms_classify(rc), KMS_NOT_FOUND);
	assert_non_null(strstr(msg, "no-such-kek"));
	kms_backend_close(b);
}

static void expect_corrupt(struct kms_backend *b, const char *kek,
			   const struct kms_blob *blob, int want)
{
	uint8_t back[KEYS_SLOT_SIZE];
	size_t got = 99;
	char msg[KMS_MSG_MAX];
	memset(back, 0x5a, sizeof(back));
	int rc = kms_unwrap(b, kek, blob, back, sizeof(back), &got, msg,
			    sizeof(msg));
	if (rc != want)
		print_error("rc %d want %d: %s\n", rc, want, msg);
	assert_int_equal(rc, want);
	assert_int_equal(kms_classify(rc), KMS_CORRUPT);
	assert_int_equal(got, 0);
	for (size_t i = 0; i < sizeof(back); i++) /* wiped */
		assert_int_equal(back[i], 0);
}

static void test_corrupt_blobs(void **state)
{
	(void)state;
	for (int gcm = 0; gcm <= 1; gcm++) {
		p11_force_mech = gcm ? CKM_AES_GCM : 0;
		struct kms_backend *b = open_ok();
		p11_force_mech = 0;
		struct kms_blob blob, bad;
		roundtrip(b, 32, gcm ? BLOB_GCM : BLOB_KWP, &blob);
		for (size_t at = 1; at < blob.len; at += 5) {
			bad = blob;
			bad.b[at] ^= 0x40;
			expect_corrupt(b, KEK_A, &bad, -EBADMSG);
		}
		/* Wrapped by another KEK. */
		expect_corrupt(b, KEK_B, &blob, -EBADMSG);
		/* Truncated. */
		bad = blob;
		bad.len = gcm ? 20 : blob.len - 8;
		expect_corrupt(b, KEK_A, &bad, gcm ? -EPROTO : -EBADMSG);
		/* Not a blob of this backend. */
		bad = blob;
		bad.b[0] = 0x7f;
		expect_corrupt(b, KEK_A, &bad, -EPROTO);
		kms_backend_close(b);
	}
}

/* ---- async front over SoftHSM2: the token goes away mid-run --------------------------- */

static struct kms_async_cfg async_cfg(unsigned attempts)
{
	struct kms_async_cfg c = { .max_attempts = attempts,
				   .backoff_base_ns = 1000000,
				   .backoff_max_ns = 4000000,
				   .health_interval_ns = 0,
				   .queue_max = 64 };
	return c;
}

static void test_token_removed(void **state)
{
	(void)state;
	struct kms *k;
	assert_int_equal(kms_new(open_ok(), &(struct kms_async_cfg){
					     .max_attempts = 3,
					     .backoff_base_ns = 1000000,
					     .backoff_max_ns = 4000000,
					     .queue_max = 8 },
				 &k),
			 0);
	/* A DEK unwrapped into the cache while the token is there. */
	struct keys_cache_cfg cc = { .workers = 1, .max_tenants = 4,
				     .max_seals = 1000, .max_age_ns = 3600ull
				     * ST_NS_PER_SEC, .rotate_at_pct = 90,
				     .mem = KEYS_MEM_AUTO };
	struct keys_cache *cache;
	char err[256];
	assert_int_equal(keys_cache_new(&cc, &cache, err, sizeof(err)), 0);
	uint8_t dek[32];
	fill(dek, 32, 3);
	struct kms_req *r = calloc(1, sizeof(*r));
	r->op = KMS_OP_WRAP;
	snprintf(r->kek_ref, sizeof(r->kek_ref), KEK_A);
	r->dek_in = dek;
	r->dek_len = 32;
	assert_int_equal(kms_call(k, r), 0);


	uint8_t *slot_buf;
	size_t cap;
	int slot = keys_cache_slot_get(cache, &slot_buf, &cap);
	assert_true(slot >= 0);
	r->op = KMS_OP_UNWRAP;
	r->dek_out = slot_buf;
	r->dek_cap = cap;
	assert_int_equal(kms_call(k, r), 0);
	struct keys_dek_meta meta = { "t1-1", 0, (int64_t)time(NULL), 0 };
	assert_int_equal(keys_cache_install(cache, "t1", slot, &meta), 0);
	assert_int_equal(keys_cache_publish(cache), 0);

	/* The token store disappears. */
	char gone[400], cmd[900];
	snprintf(gone, sizeof(gone), "%s.gone", hsm_tokens);
	assert_int_equal(rename(hsm_tokens, gone), 0);

	uint8_t *buf2;
	int slot2 = keys_cache_slot_get(cache, &buf2, &cap);
	assert_true(slot2 >= 0);
	r->dek_out = buf2;
	int rc = kms_call(k, r);
	print_message("token gone: rc %d (%s) after %u attempts: %s\n", rc,
		      kms_class_name(r->cls), r->attempts, r->msg);
	assert_int_not_equal(rc, 0);
	assert_int_equal(r->cls, KMS_TRANSIENT);
	assert_int_equal(r->attempts, 3); /* retried */
	keys_cache_slot_put(cache, slot2);
	struct kms_health h;
	kms_get_health(k, &h);
	assert_false(h.up);
	assert_int_equal(h.last_class, KMS_TRANSIENT);
	assert_true(h.retries >= 2);

	/* Health probes say the same; wrap fails the same way. */
	struct kms_req *hr = calloc(1, sizeof(*hr));
	hr->op = KMS_OP_HEALTH;
	assert_int_not_equal(kms_call(k, hr), 0);
	assert_int_equal(hr->cls, KMS_TRANSIENT);

	/* The cached DEK is still served to workers. */
	keys_cache_online(cache, 0);
	const struct keys_snapshot *s = keys_cache_snapshot(cache);
	const struct keys_dek *d = keys_snapshot_lookup(s, "t1", 2);
	assert_non_null(d);
	assert_memory_equal(d->key, dek, 32);
	assert_int_equal(keys_cache_charge(cache, 0, d, 1,
					   (uint64_t)time(NULL) *
						   ST_NS_PER_SEC),
			 0);
	keys_cache_quiescent(cache, 0);

	/* The token comes back: the backend reconnects by itself. */
	assert_int_equal(rename(gone, hsm_tokens), 0);
	r->dek_out = dek; /* scratch, compared below */
	memset(dek, 0, sizeof(dek));
	r->dek_cap = sizeof(dek);
	assert_int_equal(kms_call(k, r), 0);
	uint8_t want[32];
	fill(want, 32, 3);
	assert_memory_equal(dek, want, 32);
	kms_get_health(k, &h);
	assert_true(h.up);

	/* SOFTHSM2_CONF pointed at an empty store: the token is no longer
	 * there after the module restarts. Still transient: it was seen. */
	char conf2[400], tok2[400];
	snprintf(tok2, sizeof(tok2), "%s/tokens-empty", hsm_dir);
	snprintf(conf2, sizeof(conf2), "%s/empty.conf", hsm_dir);
	mkdir(tok2, 0700);
	snprintf(cmd, sizeof(cmd), "directories.tokendir = %s\n", tok2);
	write_file(conf2, cmd, 0600);
	setenv("SOFTHSM2_CONF", conf2, 1);
	/* Force a reconnect as a device error would. */
	r->blob.b[0] = BLOB_KWP;
	rename(hsm_tokens, gone);
	rc = kms_call(k, r); /* session dies: handle invalid */
	assert_int_equal(r->cls, KMS_TRANSIENT);
	rename(gone, hsm_tokens);
	rc = kms_call(k, r); /* restart reads conf2: no such token */
	print_message("conf switched: rc %d (%s): %s\n", rc,
		      kms_class_name(r->cls), r->msg);
	assert_int_equal(rc, -ENODEV);
	assert_int_equal(r->cls, KMS_TRANSIENT);
	assert_non_null(strstr(r->msg, "no longer present"));
	setenv("SOFTHSM2_CONF", hsm_conf, 1);
	assert_int_equal(kms_call(k, r), 0);

	kms_free(k);
	keys_cache_offline(cache, 0);
	keys_cache_free(cache);
	free(r);
	free(hr);
}

/* ---- async front with a scripted backend ----------------------------------------------- */

struct script {
	int fail_rc;       /* returned while calls < fail_n */
	unsigned fail_n;
	unsigned calls;
	unsigned health_calls;
};

static int sc_wrap(struct kms_backend *b, const char *ref, const uint8_t *dek,
		   size_t len, struct kms_blob *out, char *msg, size_t msglen)
{
	struct script *s = b->impl;
	(void)ref;
	if (s->calls++ < s->fail_n) {
		snprintf(msg, msglen, "scripted failure %u", s->calls);
		return s->fail_rc;
	}
	out->b[0] = 0xaa; /* a test double, not a cipher */
	memcpy(out->b + 1, dek, len);
	out->len = len + 1;
	return 0;
}

static int sc_unwrap(struct kms_backend *b, const char *ref,
		     const struct kms_blob *in, uint8_t *dek, size_t cap,
		     size_t *len, char *msg, size_t msglen)
{
	struct script *s = b->impl;
	(void)ref;
	if (s->calls++ < s->fail_n) {
		snprintf(msg, msglen, "scripted failure");
		return s->fail_rc;
	}
	if (in->len - 1 > cap)
		return -ENOBUFS;
	memcpy(dek, in->b + 1, in->len - 1);
	*len = in->len - 1;
	return 0;
}

static int sc_health(struct kms_backend *b, char *msg, size_t msglen)
{
	struct script *s = b->impl;
	(void)msg;
	(void)msglen;
	__atomic_add_fetch(&s->health_calls, 1, __ATOMIC_RELAXED);
	return 0;
}

static void sc_close(struct kms_backend *b)
{
	free(b->impl);
	free(b);
}

static const struct kms_backend_ops sc_ops = { "script", sc_wrap, sc_unwrap,
					       sc_health, sc_close };

static struct kms *script_kms(int fail_rc, unsigned fail_n,
			      struct kms_async_cfg cfg, struct script **sp)
{
	struct kms_backend *b = calloc(1, sizeof(*b));
	struct script *s = calloc(1, sizeof(*s));
	s->fail_rc = fail_rc;
	s->fail_n = fail_n;
	b->ops = &sc_ops;
	b->impl = s;
	struct kms *k;
	assert_int_equal(kms_new(b, &cfg, &k), 0);
	if (sp)
		*sp = s;
	return k;
}

static struct kms_req *wrap_req(const uint8_t *dek)
{
	struct kms_req *r = calloc(1, sizeof(*r));
	r->op = KMS_OP_WRAP;
	snprintf(r->kek_ref, sizeof(r->kek_ref), "k");
	r->dek_in = dek;
	r->dek_len = 32;
	return r;
}

static void test_classify(void **state)
{
	(void)state;
	static const struct {
		int rc;
		enum kms_class c;
	} t[] = {
		{ 0, KMS_OK },
		{ -EAGAIN, KMS_TRANSIENT },   { -ETIMEDOUT, KMS_TRANSIENT },
		{ -EIO, KMS_TRANSIENT },      { -ENODEV, KMS_TRANSIENT },
		{ -ECONNREFUSED, KMS_TRANSIENT },
		{ -EACCES, KMS_AUTH },        { -EKEYREVOKED, KMS_AUTH },
		{ -EPERM, KMS_AUTH },
		{ -ENOKEY, KMS_NOT_FOUND },   { -ENXIO, KMS_NOT_FOUND },
		{ -EBADMSG, KMS_CORRUPT },    { -EPROTO, KMS_CORRUPT },
		{ -ENOENT, KMS_FATAL },       { -ELIBBAD, KMS_FATAL },
		{ -EINVAL, KMS_FATAL },       { -ECANCELED, KMS_FATAL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(kms_classify(t[i].rc), t[i].c);
	assert_string_equal(kms_class_name(KMS_NOT_FOUND), "not-found");
}

static void test_backoff(void **state)
{
	(void)state;
	struct kms_async_cfg c = { .backoff_base_ns = 100, .backoff_max_ns =
								   1000 };
	for (unsigned a = 1; a <= 12; a++) {
		uint64_t d = 100ull << (a - 1);
		if (d > 1000)
			d = 1000;
		for (uint64_t r = 0; r < 3000; r += 37) {
			uint64_t v = kms_backoff_ns(&c, a, r);
			assert_true(v >= d / 2 && v <= d);
		}
		assert_int_equal(kms_backoff_ns(&c, a, 0), d / 2);
	}
	/* No overflow far out. */
	c.backoff_max_ns = UINT64_MAX / 2;
	assert_true(kms_backoff_ns(&c, 200, 12345) <= UINT64_MAX / 2);
}

static void test_retry_transient(void **state)
{
	(void)state;
	struct script *s;
	struct kms *k = script_kms(-ENODEV, 2, async_cfg(5), &s);
	uint8_t dek[32];
	fill(dek, 32, 9);
	struct kms_req *r = wrap_req(dek);
	assert_int_equal(kms_call(k, r), 0);
	assert_int_equal(r->attempts, 3);
	assert_int_equal(r->cls, KMS_OK);
	assert_int_equal(r->blob.len, 33);
	struct kms_health h;
	kms_get_health(k, &h);
	assert_true(h.up);
	assert_int_equal(h.retries, 2);
	assert_int_equal(h.failures, 2);
	assert_int_equal(h.consecutive_failures, 0);
	kms_free(k);
	free(r);
}

static void test_no_retry_other_classes(void **state)
{
	(void)state;
	static const int rcs[] = { -EACCES, -ENOKEY, -EBADMSG, -EINVAL };
	for (size_t i = 0; i < 4; i++) {
		struct kms *k = script_kms(rcs[i], 100, async_cfg(5), NULL);
		uint8_t dek[32] = { 0 };
		struct kms_req *r = wrap_req(dek);
		assert_int_equal(kms_call(k, r), rcs[i]);
		assert_int_equal(r->attempts, 1);
		assert_int_equal(r->cls, kms_classify(rcs[i]));
		assert_non_null(strstr(r->msg, "scripted"));
		kms_free(k);
		free(r);
	}
}

static void test_retry_gives_up(void **state)
{
	(void)state;
	struct kms *k = script_kms(-EIO, 1000, async_cfg(4), NULL);
	uint8_t dek[32] = { 0 };
	struct kms_req *r = wrap_req(dek);
	assert_int_equal(kms_call(k, r), -EIO);
	assert_int_equal(r->attempts, 4);
	assert_int_equal(r->cls, KMS_TRANSIENT);
	struct kms_health h;
	kms_get_health(k, &h);
	assert_false(h.up);
	assert_int_equal(h.consecutive_failures, 4);
	kms_free(k);
	free(r);
}

struct cb_state {
	pthread_mutex_t m;
	unsigned done;
	int last_rc;
	pthread_t thread;
};

static void on_done(struct kms_req *r, void *arg)
{
	struct cb_state *cs = arg;
	pthread_mutex_lock(&cs->m);
	cs->done++;
	cs->last_rc = r->rc;
	cs->thread = pthread_self();
	pthread_mutex_unlock(&cs->m);
}

static void test_callbacks_and_poll(void **state)
{
	(void)state;
	struct kms *k = script_kms(-EAGAIN, 1, async_cfg(3), NULL);
	struct cb_state cs = { .m = PTHREAD_MUTEX_INITIALIZER };
	uint8_t dek[32];
	fill(dek, 32, 1);
	enum { N = 20 };
	struct kms_req *r[N];
	for (int i = 0; i < N; i++) {
		r[i] = wrap_req(dek);
		r[i]->tag = (uint64_t)i;
		if (i % 2) {
			r[i]->done = on_done;
			r[i]->arg = &cs;
		}
		assert_int_equal(kms_submit(k, r[i]), 0);
	}
	/* Half by callback (on the KMS thread), half by the queue. */
	unsigned polled = 0;
	struct pollfd pfd = { kms_completion_fd(k), POLLIN, 0 };
	while (polled < N / 2) {
		assert_true(poll(&pfd, 1, 5000) == 1);
		struct kms_req *c;
		while ((c = kms_poll(k))) {
			assert_int_equal(c->tag % 2, 0);
			assert_int_equal(c->rc, 0);
			polled++;
		}
	}
	for (int spin = 0; spin < 5000; spin++) {
		pthread_mutex_lock(&cs.m);
		unsigned d = cs.done;
		pthread_mutex_unlock(&cs.m);
		if (d == N / 2)
			break;
		usleep(1000);
	}
	assert_int_equal(cs.done, N / 2);
	assert_int_equal(cs.last_rc, 0);
	assert_false(pthread_equal(cs.thread, pthread_self()));
	assert_null(kms_poll(k));
	/* The queue is empty: the eventfd is no longer readable. */
	assert_int_equal(poll(&pfd, 1, 0), 0);
	kms_free(k);
	for (int i = 0; i < N; i++)
		free(r[i]);
}

static void test_bad_requests(void **state)
{
	(void)state;
	struct kms *k = script_kms(0, 0, async_cfg(1), NULL);
	uint8_t dek[32] = { 0 };
	struct kms_req *r = wrap_req(dek);
	r->kek_ref[0] = '\0';
	assert_int_equal(kms_submit(k, r), -EINVAL);
	free(r);
	r = wrap_req(dek);
	r->dek_len = KMS_DEK_MAX + 1;
	assert_int_equal(kms_submit(k, r), -EINVAL);
	r->dek_len = 32;
	r->op = (enum kms_op)77;
	assert_int_equal(kms_submit(k, r), -EINVAL);
	r->op = KMS_OP_UNWRAP; /* no output buffer */
	assert_int_equal(kms_submit(k, r), -EINVAL);
	r->op = KMS_OP_WRAP;
	r->done = on_done;
	assert_int_equal(kms_call(k, r), -EINVAL); /* call takes no callback */
	kms_free(k);
	free(r);
	/* Bad configuration: the backend is closed all the same. */
	struct kms_backend *b = calloc(1, sizeof(*b));
	b->ops = &sc_ops;
	b->impl = calloc(1, sizeof(struct script));
	struct kms_async_cfg bad = async_cfg(0);
	struct kms *k2 = (void *)1;
	assert_int_equal(kms_new(b, &bad, &k2), -EINVAL);
	assert_null(k2);
}

static void test_queue_full_and_cancel(void **state)
{
	(void)state;
	/* Every attempt fails transiently with a long backoff: requests sit
	 * in the delay list until kms_free cancels them. */
	struct kms_async_cfg c = async_cfg(10);
	c.backoff_base_ns = 60ull * ST_NS_PER_SEC;
	c.backoff_max_ns = 60ull * ST_NS_PER_SEC;
	c.queue_max = 4;
	struct kms *k = script_kms(-EBUSY, 1000, c, NULL);
	struct cb_state cs = { .m = PTHREAD_MUTEX_INITIALIZER };
	uint8_t dek[32] = { 0 };
	struct kms_req *r[5];
	for (int i = 0; i < 5; i++) {
		r[i] = wrap_req(dek);
		r[i]->done = on_done;
		r[i]->arg = &cs;
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(kms_submit(k, r[i]), 0);
	assert_int_equal(kms_submit(k, r[4]), -EAGAIN);
	assert_int_equal(kms_submit(k, r[0]), -EINVAL); /* in flight */
	usleep(20000);
	kms_free(k);
	assert_int_equal(cs.done, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r[i]->rc, -ECANCELED);
		assert_int_equal(r[i]->attempts, 1);
	}
	for (int i = 0; i < 5; i++)
		free(r[i]);
}

static void test_idle_health_probe(void **state)
{
	(void)state;
	struct kms_async_cfg c = async_cfg(1);
	c.health_interval_ns = 2 * ST_NS_PER_MS;
	struct script *s;
	struct kms *k = script_kms(0, 0, c, &s);
	usleep(50000);
	unsigned n = __atomic_load_n(&s->health_calls, __ATOMIC_RELAXED);
	assert_true(n >= 2); /* probed while idle */
	kms_free(k); /* frees |s| with the backend */
}

static void test_unwrap_through_async(void **state)
{
	(void)state;
	struct kms *k = script_kms(0, 0, async_cfg(1), NULL);
	uint8_t dek[32], out[KEYS_SLOT_SIZE];
	fill(dek, 32, 77);
	struct kms_req *r = wrap_req(dek);
	assert_int_equal(kms_call(k, r), 0);
	r->op = KMS_OP_UNWRAP;
	r->dek_out = out;
	r->dek_cap = sizeof(out);
	assert_int_equal(kms_call(k, r), 0);
	assert_int_equal(r->dek_out_len, 32);
	assert_memory_equal(out, dek, 32);
	assert_string_equal(kms_backend_name(k), "script");
	kms_free(k);
	free(r);
}

int main(void)
{
	const struct CMUnitTest pkcs11[] = {
		cmocka_unit_test(test_idempotent_setup),
		cmocka_unit_test(test_mechanisms),
		cmocka_unit_test(test_roundtrip_kwp),
		cmocka_unit_test(test_roundtrip_gcm),
		cmocka_unit_test(test_no_object_left),
		cmocka_unit_test(test_kek_not_extractable),
		cmocka_unit_test(test_extractable_kek_refused),
		cmocka_unit_test(test_wrong_pin),
		cmocka_unit_test(test_pin_sources),
		cmocka_unit_test(test_missing_token),
		cmocka_unit_test(test_bad_module),
		cmocka_unit_test(test_unknown_kek),
		cmocka_unit_test(test_corrupt_blobs),
		cmocka_unit_test(test_token_removed),
	};
	const struct CMUnitTest async[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_retry_transient),
		cmocka_unit_test(test_no_retry_other_classes),
		cmocka_unit_test(test_retry_gives_up),
		cmocka_unit_test(test_callbacks_and_poll),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_queue_full_and_cancel),
		cmocka_unit_test(test_idle_health_probe),
		cmocka_unit_test(test_unwrap_through_async),
	};
	log_set_level(LOG_LEVEL_ERROR); /* outage warnings are expected */
	int fails = cmocka_run_group_tests_name("kms_async", async, NULL, NULL);
	fails += cmocka_run_group_tests_name("kms_pkcs11", pkcs11, group_setup,
					     group_teardown);
	return fails;
}
