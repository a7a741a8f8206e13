/* Tests for src/keys_store.c: round trips, the strict parser (a table of
 * damaged stores, each with the error it must give; every truncation of a
 * valid store), atomic writes, the lock, and the editing functions. The .c
 * is included for the base64 and time helpers and the write-failure hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/wait.h>

#include "../../src/keys_store.c"

static char dir[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sealtap-ks-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct kms_blob blob_of(uint8_t seed, size_t len)
{
	struct kms_blob b = { .len = len };
	for (size_t i = 0; i < len; i++)
		b.b[i] = (uint8_t)(seed * 31 + i);
	return b;
}

/* Two tenants: acme with a retired and an active DEK, zeta with one. */
static struct keys_store *sample(void)
{
	struct keys_store *s;
	struct keys_tenant_rec *t;
	struct keys_dek_rec *d;
	char err[256];
	assert_int_equal(keys_store_new(&s), 0);
	assert_int_equal(keys_store_tenant_add(s, "zeta", "pkcs11",
					       "kek \"z\"\\x", &t, err,
					       sizeof(err)), 0);
	struct kms_blob b = blob_of(1, 41);
	assert_int_equal(keys_store_dek_add(t, &b, 1763800000, &d, err,
					    sizeof(err)), 0);
	d->seals = 12345;
	d->leases = 3;
	assert_int_equal(keys_store_tenant_add(s, "acme", "pkcs11",
					       "sealtap-dev-kek", &t, err,
					       sizeof(err)), 0);
	b = blob_of(2, 41);
	assert_int_equal(keys_store_dek_add(t, &b, 1763700000, &d, err,
					    sizeof(err)), 0);
	d->seals = UINT64_MAX;
	b = blob_of(3, 61);
	assert_int_equal(keys_store_dek_add(t, &b, 1763900000, &d, err,
					    sizeof(err)), 0);
	return s;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* ---- round trip ------------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
	(void)state;
	char path[200], err[512];
	snprintf(path, sizeof(path), "%s/keys.json", dir);
	struct keys_store *s = sample(), *back;
	assert_int_equal(s->ntenants, 2);
	assert_string_equal(s->tenants[0].name, "acme"); /* sorted */
	assert_int_equal(keys_store_save(s, path, err, sizeof(err)), 0);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	int rc = keys_store_load(path, &back, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	char *t1, *t2;
	size_t l1, l2;
	assert_int_equal(keys_store_format(s, &t1, &l1), 0);
	assert_int_equal(keys_store_format(back, &t2, &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(t1, t2, l1);

	struct keys_tenant_rec *a = keys_store_tenant(back, "acme");
	assert_non_null(a);
	assert_int_equal(a->ndeks, 2);
	assert_string_equal(a->deks[0].id, "acme-1");
	assert_int_equal(a->deks[0].state, KEYS_DEK_RETIRED);
	assert_int_equal(a->deks[0].retired, 1763900000);
	assert_int_equal(a->deks[0].seals, UINT64_MAX);
	assert_string_equal(a->deks[1].id, "acme-2");
	assert_int_equal(a->deks[1].state, KEYS_DEK_ACTIVE);
	assert_int_equal(a->deks[1].wrapped.len, 61);
	struct kms_blob b3 = blob_of(3, 61);
	assert_memory_equal(a->deks[1].wrapped.b, b3.b, 61);
	assert_int_equal(a->next_seq, 3);
	struct keys_tenant_rec *z = keys_store_tenant(back, "zeta");
	assert_string_equal(z->kek, "kek \"z\"\\x");
	assert_int_equal(z->deks[0].leases, 3);
	assert_ptr_equal(keys_store_active(z), &z->deks[0]);
	assert_null(keys_store_tenant(back, "nobody"));
	free(t1);
	free(t2);
	keys_store_free(s);
	keys_store_free(back);
}

static void test_empty_store(void **state)
{
	(void)state;
	struct keys_store *s, *back;
	char *text, err[256];
	size_t len;
	assert_int_equal(keys_store_new(&s), 0);
	assert_int_equal(keys_store_format(s, &text, &len), 0);
	assert_int_equal(keys_store_parse(text, len, "x", &back, err,
					  sizeof(err)), 0);
	assert_int_equal(back->ntenants, 0);
	free(text);
	keys_store_free(s);
	keys_store_free(back);
}

/* ---- the parser refuses damage ------------------------------------------------------- */

#define HEAD "{\"format\":\"sealtap-keystore\",\"version\":1,\"tenants\":["
#define T_OPEN "{\"name\":\"acme\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":3,\"deks\":["
#define DEK_A "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}"
#define T_CLOSE "]}"
#define TAIL "]}"

static const struct {
	const char *text;
	int rc;
	const char *msg; /* expected error, after "store.json:" */
} bad[] = {
	{ "", -EINVAL, " empty file" },
	{ "{", -EINVAL, "1: not valid JSON: unexpected end of file (truncated?)" },
	{ "[]", -EINVAL, "1: $: is an array; expected an object" },
	{ "{\"format\":\"sealtap-keystore\",\"version\":1}", -EINVAL,
	  "1: $: missing key \"tenants\"" },
	{ HEAD TAIL "x", -EINVAL, "1: not valid JSON: text after the end" },
	{ "{\"format\":\"other\",\"version\":1,\"tenants\":[]}", -EINVAL,
	  "1: $.format: \"other\" is not \"sealtap-keystore\"" },
	{ "{\"format\":\"sealtap-keystore\",\"version\":2,\"tenants\":[]}",
	  -EPROTONOSUPPORT, "1: $.version: version 2; this sealtap reads version 1" },
	{ "{\"format\":\"sealtap-keystore\",\"version\":1,\"tenants\":[],\"x\":1}",
	  -EINVAL, "1: $: unknown key \"x\"" },
	{ "{\"format\":\"sealtap-keystore\",\"format\":\"a\"}", -EINVAL,
	  "1: not valid JSON: duplicate key \"format\"" },
	{ HEAD T_OPEN DEK_A T_CLOSE "," T_OPEN T_CLOSE TAIL, -EINVAL,
	  "1: $.tenants[1]: tenant \"acme\" is out of order or a duplicate" },
	{ HEAD "{\"name\":\"ac me\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":1,\"deks\":[]}" TAIL,
	  -EINVAL, "1: $.tenants[0].name: \"ac me\" is not a tenant name" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"PKCS\",\"kek\":\"k\",\"next_seq\":1,\"deks\":[]}" TAIL,
	  -EINVAL, "1: $.tenants[0].kms: \"PKCS\" is not a KMS backend name" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"pkcs11\",\"kek\":\"\",\"next_seq\":1,\"deks\":[]}" TAIL,
	  -EINVAL, "1: $.tenants[0].kek: \"\" is not a KEK reference" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":-1,\"deks\":[]}" TAIL,
	  -EINVAL, "1: not valid JSON: negative number" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":1.5,\"deks\":[]}" TAIL,
	  -EINVAL, "1: not valid JSON: fraction or exponent" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":01,\"deks\":[]}" TAIL,
	  -EINVAL, "1: not valid JSON: number with a leading zero" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":\"1\",\"deks\":[]}" TAIL,
	  -EINVAL, "1: $.tenants[0].next_seq: is a string; expected an integer" },
	{ HEAD "{\"name\":\"a\",\"kms\":\"pkcs11\",\"kek\":\"k\",\"next_seq\":1,\"deks\":null}" TAIL,
	  -EINVAL, "1: not valid JSON: unexpected \"n\"" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQI\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0].wrapped: not valid padded base64" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQJ=\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0].wrapped: not valid padded base64" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-02-30T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0].created: expected a UTC time" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"activ\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0].state: \"activ\" is not one of: active, retired" },
	{ HEAD T_OPEN "{\"id\":\"acme 1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0].id: \"acme 1\" is not a key id" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"retired\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0]: a retired DEK needs a \"retired\" time" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"retired\",\"created\":\"2026-01-02T03:04:05Z\",\"retired\":\"2025-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0]: retired before it was created" },
	{ HEAD T_OPEN DEK_A "," DEK_A T_CLOSE TAIL, -EINVAL,
	  "1: $.tenants[0].deks[1]: key id \"acme-1\" appears twice" },
	{ HEAD T_OPEN DEK_A ",{\"id\":\"acme-2\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[1]: a second active DEK" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":16777217,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0].leases: 16777217 is larger than 16777216" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":1,\"leases\":0,\"wrapped\":\"AQID\",\"plaintext\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: $.tenants[0].deks[0]: unknown key \"plaintext\"" },
	{ HEAD T_OPEN "{\"id\":\"acme-1\",\"state\":\"active\",\"created\":\"2026-01-02T03:04:05Z\",\"seals\":99999999999999999999,\"leases\":0,\"wrapped\":\"AQID\"}" T_CLOSE TAIL,
	  -EINVAL, "1: not valid JSON: number larger than 2^64-1" },
	{ "{\"format\":\"seal\ttap\"}", -EINVAL,
	  "1: not valid JSON: control character in a string" },
	{ "{\"format\":\"\\ud800\"}", -EINVAL,
	  "1: not valid JSON: \\u surrogate in a string" },
	{ "{\"format\":\"\\q\"}", -EINVAL,
	  "1: not valid JSON: bad escape \"\\q\" in a string" },
	{ "[[[[[[[[[[[[]]]]]]]]]]]]", -EINVAL,
	  "1: not valid JSON: nested deeper than 8" },
	{ "{\n\n  \"format\" \"x\"}", -EINVAL,
	  "3: not valid JSON: expected \":\" after key \"format\"" },
};

static void test_bad_stores(void **state)
{
	(void)state;
	char err[512], want[600];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct keys_store *s = (void *)1;
		int rc = keys_store_parse(bad[i].text, strlen(bad[i].text),
					  "store.json", &s, err, sizeof(err));
		snprintf(want, sizeof(want), "store.json:%s", bad[i].msg);
		if (rc != bad[i].rc || strncmp(err, want, strlen(want)))
			print_error("case %zu: rc %d want %d\n  got:  %s\n  "
				    "want: %s...\n", i, rc, bad[i].rc, err,
				    want);
		assert_int_equal(rc, bad[i].rc);
		assert_int_equal(strncmp(err, want, strlen(want)), 0);
		assert_null(s);
		assert_null(strchr(err, '\n'));
	}
	/* A NUL byte inside. */
	struct keys_store *s;
	assert_int_equal(keys_store_parse("{\"a\0\"}", 6, "store.json", &s,
					  err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
}

/* Every truncation of a valid store is refused with a message, never
 * accepted in part. */
static void test_every_truncation(void **state)
{
	(void)state;
	struct keys_store *s = sample(), *back;
	char *text, err[512];
	size_t len;
	assert_int_equal(keys_store_format(s, &text, &len), 0);
	for (size_t cut = 0; cut < len - 1; cut++) {
		back = (void *)1;
		err[0] = '\0';
		int rc = keys_store_parse(text, cut, "s", &back, err,
					  sizeof(err));
		if (rc == 0)
			print_error("accepted a cut at %zu\n", cut);
		assert_int_not_equal(rc, 0);
		assert_null(back);
		assert_true(err[0]);
	}
	/* Only the final newline may go. */
	assert_int_equal(keys_store_parse(text, len - 1, "s", &back, err,
					  sizeof(err)), 0);
	keys_store_free(back);
	free(text);
	keys_store_free(s);
}

static void test_load_errors(void **state)
{
	(void)state;
	char path[200], err[512];
	struct keys_store *s;
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	assert_int_equal(keys_store_load(path, &s, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "sealtap keys create"));
	assert_int_equal(keys_store_load(dir, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	/* A damaged file names the file and the line. */
	snprintf(path, sizeof(path), "%s/damaged.json", dir);
	FILE *f = fopen(path, "w");
	fputs("{\n  \"format\": \"sealtap-keystore\",\n  \"version\": 1,\n"
	      "  \"tenants\": [\n    {\"name\": 7}\n  ]\n}\n", f);
	fclose(f);
	assert_int_equal(keys_store_load(path, &s, err, sizeof(err)), -EINVAL);
	char want[300];
	snprintf(want, sizeof(want), "%s:5: $.tenants[0]: missing key", path);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);
}

/* ---- atomic write ---------------------------------------------------------------- */

static unsigned count_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_atomic_write(void **state)
{
	(void)state;
	char path[200], err[512];
	snprintf(path, sizeof(path), "%s/atomic.json", dir);
	struct keys_store *s = sample(), *back;
	assert_int_equal(keys_store_save(s, path, err, sizeof(err)), 0);
	size_t len0;
	char *before = slurp(path, &len0);
	unsigned files = count_files();

	/* A failure between writing the temporary file and the rename
	 * leaves the old store as it was and no temporary file. */
	struct keys_tenant_rec *t = keys_store_tenant(s, "zeta");
	struct keys_dek_rec *d;
	struct kms_blob b = blob_of(9, 41);
	assert_int_equal(keys_store_dek_add(t, &b, 1763999999, &d, err,
					    sizeof(err)), 0);
	store_fail_before_rename = EIO;
	assert_int_equal(keys_store_save(s, path, err, sizeof(err)), -EIO);
	store_fail_before_rename = 0;
	assert_non_null(strstr(err, "unchanged"));
	size_t len1;
	char *after = slurp(path, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	assert_int_equal(count_files(), files);
	free(after);

	/* The next save goes through; the umask does not matter. */
	mode_t old = umask(0);
	assert_int_equal(keys_store_save(s, path, err, sizeof(err)), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(keys_store_load(path, &back, err, sizeof(err)), 0);
	assert_int_equal(keys_store_tenant(back, "zeta")->ndeks, 2);
	assert_int_equal(count_files(), files);
	keys_store_free(back);

	/* A directory that does not exist. */
	assert_int_not_equal(keys_store_save(s, "/nonexistent/dir/k.json", err,
					     sizeof(err)), 0);
	assert_non_null(strstr(err, "/nonexistent/dir/k.json"));
	free(before);
	keys_store_free(s);
}

static void test_lock(void **state)
{
	(void)state;
	char path[200], lp[220], err[256];
	snprintf(path, sizeof(path), "%s/locked.json", dir);
	snprintf(lp, sizeof(lp), "%s.lock", path);
	int fd = keys_store_lock(path, err, sizeof(err));
	assert_true(fd >= 0);
	pid_t pid = fork();
	if (pid == 0) {
		int f = open(lp, O_RDWR);
		_exit(flock(f, LOCK_EX | LOCK_NB) == 0 ? 1 : 0);
	}
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* was held */
	keys_store_unlock(fd);
	pid = fork();
	if (pid == 0) {
		int f = open(lp, O_RDWR);
		_exit(flock(f, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* released */
}

/* ---- editing ----------------------------------------------------------------------- */

static void test_edit(void **state)
{
	(void)state;
	struct keys_store *s;
	struct keys_tenant_rec *t;
	struct keys_dek_rec *d;
	char err[256];
	assert_int_equal(keys_store_new(&s), 0);
	assert_int_equal(keys_store_tenant_add(s, "bad name", "pkcs11", "k",
					       &t, err, sizeof(err)), -EINVAL);
	assert_int_equal(keys_store_tenant_add(s, "t", "pkcs11", "", &t, err,
					       sizeof(err)), -EINVAL);
	assert_int_equal(keys_store_tenant_add(s, "t", "PK", "k", &t, err,
					       sizeof(err)), -EINVAL);
	assert_int_equal(keys_store_tenant_add(s, "t", "pkcs11", "k", &t, err,
					       sizeof(err)), 0);
	assert_int_equal(keys_store_tenant_add(s, "t", "pkcs11", "k", &t, err,
					       sizeof(err)), -EEXIST);
	t = keys_store_tenant(s, "t");
	struct kms_blob b = blob_of(1, 41), empty = { 0 };
	assert_int_equal(keys_store_dek_add(t, &empty, 100, &d, err,
					    sizeof(err)), -EINVAL);
	/* A hand-edited store whose next_seq points at an existing id. */
	assert_int_equal(keys_store_dek_add(t, &b, 100, &d, err, sizeof(err)),
			 0);
	assert_string_equal(d->id, "t-1");
	t->next_seq = 1;
	assert_int_equal(keys_store_dek_add(t, &b, 50, &d, err, sizeof(err)),
			 0);
	assert_string_equal(d->id, "t-2");
	/* The previous one is retired, never before its creation. */
	assert_int_equal(t->deks[0].state, KEYS_DEK_RETIRED);
	assert_int_equal(t->deks[0].retired, 100);
	assert_ptr_equal(keys_store_active(t), &t->deks[1]);
	assert_ptr_equal(keys_store_dek(t, "t-1"), &t->deks[0]);
	for (unsigned i = 2; i < KEYS_STORE_MAX_DEKS; i++)
		assert_int_equal(keys_store_dek_add(t, &b, 200 + i, &d, err,
						    sizeof(err)), 0);
	assert_int_equal(keys_store_dek_add(t, &b, 9999, &d, err,
					    sizeof(err)), -ENOSPC);
	unsigned active = 0;
	for (unsigned i = 0; i < t->ndeks; i++)
		active += t->deks[i].state == KEYS_DEK_ACTIVE;
	assert_int_equal(active, 1);

	/* Leases: handed out once each, up to the fixed field's range. */
	uint32_t inst;
	d = keys_store_active(t);
	assert_int_equal(keys_store_lease(d, &inst), 0);
	assert_int_equal(inst, 0);
	assert_int_equal(keys_store_lease(d, &inst), 0);
	assert_int_equal(inst, 1);
	d->leases = SEAL_GCM_INSTANCE_MAX;
	assert_int_equal(keys_store_lease(d, &inst), 0);
	assert_int_equal(inst, SEAL_GCM_INSTANCE_MAX);
	assert_int_equal(keys_store_lease(d, &inst), -ERANGE);
	keys_store_free(s);
}

static void test_helpers(void **state)
{
	(void)state;
	uint8_t raw[64], back[64];
	char enc[100];
	for (size_t n = 1; n <= 40; n++) {
		for (size_t i = 0; i < n; i++)
			raw[i] = (uint8_t)(i * 37 + n);
		size_t el = b64_encode(raw, n, enc);
		assert_int_equal(el % 4, 0);
		assert_int_equal(b64_decode(enc, el, back, sizeof(back)),
				 (long)n);
		assert_memory_equal(raw, back, n);
	}
	assert_int_equal(b64_decode("AQI=", 4, back, 64), 2);
	assert_int_equal(b64_decode("AQJ=", 4, back, 64), -1); /* tail bits */
	assert_int_equal(b64_decode("A=I=", 4, back, 64), -1);
	assert_int_equal(b64_decode("AQ==AQ==", 8, back, 64), -1);
	assert_int_equal(b64_decode("AQ\nI", 4, back, 64), -1);
	int64_t t;
	assert_int_equal(parse_time("2024-02-29T23:59:59Z", 20, &t), 0);
	assert_int_equal(t, 1709251199);
	assert_int_equal(parse_time("2023-02-29T00:00:00Z", 20, &t), -1);
	assert_int_equal(parse_time("2024-01-01 00:00:00Z", 20, &t), -1);
	assert_int_equal(parse_time("2024-01-01T00:00:00+", 20, &t), -1);
	assert_true(keys_tenant_name_valid("a_b-C9"));
	assert_false(keys_tenant_name_valid(""));
	assert_false(keys_tenant_name_valid("a.b"));
	char longname[60];
	memset(longname, 'a', 49);
	longname[49] = '\0';
	assert_false(keys_tenant_name_valid(longname));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_store),
		cmocka_unit_test(test_bad_stores),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_edit),
		cmocka_unit_test(test_helpers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
