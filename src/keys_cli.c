/* `sealtap keys`: the development token, tenants' DEKs and the key store.
 *
 *   keys init     create the SoftHSM2 token and KEK(s) if missing
 *   keys create   give a tenant its first DEK (nothing to do if it has one)
 *   keys rotate   give a tenant a new active DEK, retiring the old one
 *   keys list     tenants and DEKs: ids, ages, usage, state
 *
 * A new DEK is 32 bytes from RAND_priv_bytes() in a locked page excluded
 * from core dumps; it is wrapped by the KMS (through the async front, so
 * transient errors are retried), unwrapped once more to prove the blob
 * opens, wiped, and only the wrapped form is written to the store. Nothing
 * printed ever holds key material or a PIN.
 *
 * Exit codes: 0 done, 1 runtime error (KMS unreachable, I/O, damaged
 * store), 2 usage or configuration (options, config file, PIN source,
 * module, token or KEK missing, unknown tenant).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sealtap/config.h"
#include "sealtap/keys.h"
#include "sealtap/keys_runtime.h"
#include "sealtap/kms.h"
#include "sealtap/log.h"

enum { KX_OK = 0, KX_RUNTIME = 1, KX_USAGE = 2 };

#define MAX_KEKS 16

struct opts {
	const char *cmd;
	const char *config;
	const char *store;   /* --store: overrides keys.store */
	const char *tenant;
	const char *kek;     /* create: KEK of a new tenant */
	const char *keks[MAX_KEKS]; /* init: KEKs to ensure */
	unsigned nkeks;
	bool json;
};

/* Resolved settings: config values with defaults filled in. */
struct env {
	struct st_config cfg;
	struct kms_pkcs11_cfg p11;
	const char *store;
	const char *default_kek;
};

static int cli_err(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int cli_err(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sealtap keys: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

/* Exit code for a KMS / store error. */
static int code_of(int rc)
{
	switch (rc) {
	case -ENOENT: case -ELIBBAD: case -EINVAL: case -ENXIO: case -ENOKEY:
	case -EACCES: case -EKEYREVOKED: case -ENOTSUP: case -ENAMETOOLONG:
		return KX_USAGE;
	default:
		return KX_RUNTIME;
	}
}

static void usage(FILE *out, const char *cmd)
{
	if (!cmd || (strcmp(cmd, "init") && strcmp(cmd, "create") &&
		     strcmp(cmd, "rotate") && strcmp(cmd, "list")))
		fprintf(out,
"usage: sealtap keys <command> [options]\n"
"\n"
"Tenants' data-encryption keys (DEKs), wrapped by the tenants' KEKs in the\n"
"KMS and kept in the key store file (docs/keys.md).\n"
"\n"
"commands:\n"
"  init                 create the SoftHSM2 token and KEK(s) if missing\n"
"                       (development and demo; idempotent)\n"
"  create --tenant T    give tenant T a DEK (nothing to do if it has one)\n"
"  rotate --tenant T    give tenant T a new active DEK; the old one is\n"
"                       retired (it still opens what it sealed)\n"
"  list                 tenants and DEKs: ids, ages, usage, state\n"
"\n"
"Run 'sealtap keys <command> --help' for its options.\n"
"Exit status: 0 done, 1 runtime error (KMS, I/O, damaged store),\n"
"2 bad usage or configuration (options, config, PIN, module, token, KEK).\n");
	else if (!strcmp(cmd, "init"))
		fprintf(out,
"usage: sealtap keys init [--kek REF ...] [-c FILE]\n"
"\n"
"Creates, if missing: the SoftHSM2 configuration and token directory in\n"
"kms.softhsm_dir (when set), the PIN file kms.pin_file (when set; random\n"
"PIN, mode 0600), the token kms.token_label (random SO PIN, not kept), and\n"
"the KEK keys.default_kek (or each --kek) as an AES-256 key that cannot\n"
"leave the token. Running it again changes nothing.\n"
"\n"
"options:\n"
"      --kek REF        KEK to create (repeatable; default keys.default_kek)\n"
"  -c, --config FILE    YAML configuration (sections kms, keys)\n"
"  -h, --help           this text\n");
	else if (!strcmp(cmd, "create"))
		fprintf(out,
"usage: sealtap keys create --tenant T [--kek REF] [-c FILE] [--store FILE]\n"
"\n"
"Gives tenant T its first DEK: 32 random bytes wrapped by the tenant's KEK\n"
"and appended to the key store. A tenant that has an active DEK is left as\n"
"it is (use rotate). A new tenant gets the KEK --kek, or keys.default_kek.\n"
"\n"
"options:\n"
"  -t, --tenant T       tenant name (1-48 of A-Z a-z 0-9 _ -)\n"
"      --kek REF        KEK of a new tenant\n"
"  -c, --config FILE    YAML configuration\n"
"      --store FILE     key store (overrides keys.store)\n"
"  -h, --help           this text\n");
	else if (!strcmp(cmd, "rotate"))
		fprintf(out,
"usage: sealtap keys rotate --tenant T [-c FILE] [--store FILE]\n"
"\n"
"Gives tenant T a new active DEK; its previous DEK is retired and kept, so\n"
"what it sealed still opens.\n"
"\n"
"options:\n"
"  -t, --tenant T       tenant name\n"
"  -c, --config FILE    YAML configuration\n"
"      --store FILE     key store (overrides keys.store)\n"
"  -h, --help           this text\n");
	else
		fprintf(out,
"usage: sealtap keys list [--tenant T] [--json] [-c FILE] [--store FILE]\n"
"\n"
"Lists every DEK of the key store: tenant, key id, state, creation time,\n"
"age, seals counted (and the share of keys.dek_max_seals), nonce leases,\n"
"KMS and KEK. Never key material. No KMS access is needed.\n"
"\n"
"options:\n"
"  -t, --tenant T       only this tenant\n"
"      --json           one JSON object per DEK instead of a table\n"
"  -c, --config FILE    YAML configuration\n"
"      --store FILE     key store (overrides keys.store)\n"
"  -h, --help           this text\n");
}

/* ---- arguments and settings ------------------------------------------------------- */

enum { OPT_KEK = 256, OPT_STORE, OPT_JSON };

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "tenant", required_argument, NULL, 't' },
		{ "kek", required_argument, NULL, OPT_KEK },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	bool is_init = !strcmp(o->cmd, "init");
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:t:h", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 't': o->tenant = optarg; break;
		case OPT_STORE: o->store = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_KEK:
			if (is_init && o->nkeks == MAX_KEKS)
				return cli_err(KX_USAGE, "at most %d --kek",
					    MAX_KEKS);
			if (is_init)
				o->keks[o->nkeks++] = optarg;
			o->kek = optarg;
			break;
		case 'h': usage(stdout, o->cmd); return -1;
		case ':':
			return cli_err(KX_USAGE, "option %s needs a value; see "
				    "'sealtap keys %s --help'",
				    argv[optind - 1], o->cmd);
		default:
			return cli_err(KX_USAGE, "unknown option '%s'; see "
				    "'sealtap keys %s --help'",
				    argv[optind - 1], o->cmd);
		}
	}
	if (optind < argc)
		return cli_err(KX_USAGE, "unexpected argument '%s'; see "
			    "'sealtap keys %s --help'", argv[optind], o->cmd);
	bool needs_tenant = !strcmp(o->cmd, "create") ||
			    !strcmp(o->cmd, "rotate");
	if (needs_tenant && !o->tenant)
		return cli_err(KX_USAGE, "%s needs --tenant T", o->cmd);
	if (o->tenant && !keys_tenant_name_valid(o->tenant))
		return cli_err(KX_USAGE, "tenant name '%.60s' is not valid; use "
			    "1-%d of A-Z a-z 0-9 _ -", o->tenant,
			    KEYS_TENANT_MAX);
	if (o->kek && !is_init && strcmp(o->cmd, "create"))
		return cli_err(KX_USAGE, "--kek is for init and create");
	if (o->json && strcmp(o->cmd, "list"))
		return cli_err(KX_USAGE, "--json is for list");
	return 0;
}

static const char *or_default(const char *v, const char *def)
{
	return v && v[0] ? v : def;
}

static int load_env(const struct opts *o, struct env *e)
{
	char err[1024];
	int rc = config_load(o->config, &e->cfg, err, sizeof(err));
	if (rc)
		return cli_err(KX_USAGE, "%s", err);
	e->p11.module = or_default(e->cfg.kms.pkcs11_module,
				   KMS_PKCS11_MODULE_DEFAULT);
	e->p11.token = or_default(e->cfg.kms.token_label, KMS_TOKEN_DEFAULT);
	e->p11.pin_file = or_default(e->cfg.kms.pin_file, NULL);
	e->p11.pin_env = or_default(e->cfg.kms.pin_env, KMS_PIN_ENV_DEFAULT);
	e->store = or_default(o->store,
			      or_default(e->cfg.keys.store, KEYS_STORE_DEFAULT));
	e->default_kek = or_default(e->cfg.keys.default_kek, KEYS_KEK_DEFAULT);
	return 0;
}

/* ---- SoftHSM2 development directory ------------------------------------------------ */

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Points SOFTHSM2_CONF at kms.softhsm_dir/softhsm2.conf; with |create|,
 * makes the directory, its token store and the file first (the same layout
 * as scripts/softhsm-env.sh). */
static int softhsm_setup(const struct env *e, bool create)
{
	const char *dir = e->cfg.kms.softhsm_dir;
	char conf[PATH_MAX], tokens[PATH_MAX], abs[PATH_MAX];
	struct stat st;
	if (!dir || !dir[0])
		return 0;
	if (create && mkdir_p(dir, 0700))
		return cli_err(KX_RUNTIME, "kms.softhsm_dir %s: cannot create: %s",
			    dir, strerror(errno));
	if (!realpath(dir, abs))
		return cli_err(create ? KX_RUNTIME : KX_USAGE,
			    "kms.softhsm_dir %s: %s; run sealtap keys init",
			    dir, strerror(errno));
	if (snprintf(conf, sizeof(conf), "%s/softhsm2.conf", abs) >=
		    (int)sizeof(conf) ||
	    snprintf(tokens, sizeof(tokens), "%s/tokens", abs) >=
		    (int)sizeof(tokens))
		return cli_err(KX_USAGE, "kms.softhsm_dir %s: path too long", dir);
	if (create && mkdir_p(tokens, 0700))
		return cli_err(KX_RUNTIME, "%s: cannot create: %s", tokens,
			    strerror(errno));
	if (create && stat(conf, &st) != 0) {
		FILE *f = fopen(conf, "wx");
		if (!f)
			return cli_err(KX_RUNTIME, "%s: cannot create: %s", conf,
				    strerror(errno));
		fprintf(f,
			"# SoftHSM2 configuration made by sealtap keys init "
			"(development only).\n"
			"directories.tokendir = %s\n"
			"objectstore.backend = file\n"
			"log.level = ERROR\n"
			"slots.removable = false\n",
			tokens);
		if (fclose(f))
			return cli_err(KX_RUNTIME, "%s: write: %s", conf,
				    strerror(errno));
		printf("softhsm: created %s\n", conf);
	}
	if (stat(conf, &st) != 0)
		return cli_err(KX_USAGE, "%s: missing; run sealtap keys init",
			    conf);
	setenv("SOFTHSM2_CONF", conf, 1);
	return 0;
}

/* Development: a PIN file that does not exist yet gets a random PIN. */
static int pin_file_setup(const struct env *e)
{
	const char *path = e->p11.pin_file;
	unsigned char rnd[24];
	char pin[2 * sizeof(rnd) + 2];
	if (!path || access(path, F_OK) == 0)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_err(KX_RUNTIME, "PIN file %s: cannot create: %s", path,
			    strerror(errno));
	if (RAND_priv_bytes(rnd, sizeof(rnd)) != 1) {
		close(fd);
		unlink(path);
		return cli_err(KX_RUNTIME, "no randomness for the PIN");
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(pin + 2 * i, 3, "%02x", rnd[i]);
	size_t n = strlen(pin);
	pin[n++] = '\n';
	ssize_t w = write(fd, pin, n);
	int werr = errno;
	OPENSSL_cleanse(rnd, sizeof(rnd));
	OPENSSL_cleanse(pin, sizeof(pin));
	if (fsync(fd) || close(fd) || w != (ssize_t)n) {
		unlink(path);
		return cli_err(KX_RUNTIME, "PIN file %s: write: %s", path,
			    strerror(werr));
	}
	printf("pin: created %s (random PIN, mode 0600)\n", path);
	return 0;
}

/* ---- protected scratch for a plaintext DEK ------------------------------------------- */

/* ---- KMS ------------------------------------------------------------------------------ */

static int open_kms(const struct env *e, struct kms **out)
{
	char err[KMS_MSG_MAX + 64];
	int rc = keys_kms_open(&e->cfg, out, err, sizeof(err));
	return rc ? cli_err(code_of(rc), "%s", err) : 0;
}

/* ---- commands ---------------------------------------------------------------------------- */

static int cmd_init(const struct opts *o, struct env *e)
{
	char err[KMS_MSG_MAX];
	bool created;
	int rc = softhsm_setup(e, true);
	if (rc == 0)
		rc = pin_file_setup(e);
	if (rc)
		return rc;
	rc = kms_pkcs11_token_init(&e->p11, &created, err, sizeof(err));
	if (rc)
		return cli_err(code_of(rc), "%s", err);
	const char *conf = getenv("SOFTHSM2_CONF");
	printf("token %s: %s (module %s%s%s)\n", e->p11.token,
	       created ? "created" : "present", e->p11.module,
	       conf ? ", SOFTHSM2_CONF " : "", conf ? conf : "");
	struct kms_backend *b;
	rc = kms_pkcs11_open(&e->p11, &b, err, sizeof(err));
	if (rc)
		return cli_err(code_of(rc), "%s", err);
	const char *def[1] = { e->default_kek };
	const char *const *keks = o->nkeks ? o->keks : def;
	unsigned n = o->nkeks ? o->nkeks : 1;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		rc = kms_pkcs11_kek_ensure(b, keks[i], &created, err,
					   sizeof(err));
		if (rc == 0)
			printf("kek %s: %s (AES-256, sensitive, not "
			       "extractable)\n", keks[i],
			       created ? "created" : "present");
	}
	if (rc == 0)
		printf("wrap mechanism: %s\n", kms_pkcs11_mechanism(b));
	kms_backend_close(b);
	return rc ? cli_err(code_of(rc), "%s", err) : KX_OK;
}

/* Loads the store, or an empty one if the file does not exist yet. */
static int load_store(const struct env *e, bool may_be_new,
		      struct keys_store **s)
{
	char err[1024];
	int rc = keys_store_load(e->store, s, err, sizeof(err));
	if (rc == -ENOENT && may_be_new)
		rc = keys_store_new(s);
	if (rc == -ENOENT)
		return cli_err(KX_USAGE, "%s", err);
	if (rc)
		return cli_err(KX_RUNTIME, "%s", err);
	return 0;
}

static int save_store(const struct env *e, const struct keys_store *s)
{
	char err[1024];
	int rc = keys_store_save(s, e->store, err, sizeof(err));
	return rc ? cli_err(KX_RUNTIME, "%s", err) : 0;
}

/* The tenant create/rotate works on, checked against the options. Returns
 * 0 with *|t| (NULL: a new tenant), -1 when there is nothing to do (create
 * of a tenant that has a DEK), or an exit code. */
static int pick_tenant(const struct opts *o, const struct env *e,
		       struct keys_store *s, bool rotate,
		       struct keys_tenant_rec **t)
{
	struct keys_dek_rec *old;
	*t = keys_store_tenant(s, o->tenant);
	if (rotate && !*t)
		return cli_err(KX_USAGE, "unknown tenant %s in %s; create it "
			       "with sealtap keys create --tenant %s",
			       o->tenant, e->store, o->tenant);
	if (!*t)
		return 0;
	if (o->kek && strcmp(o->kek, (*t)->kek))
		return cli_err(KX_USAGE, "tenant %s uses KEK %s; --kek %s "
			       "differs (a tenant keeps its KEK)", (*t)->name,
			       (*t)->kek, o->kek);
	if (!rotate && (old = keys_store_active(*t))) {
		printf("tenant %s: active DEK %s exists; nothing to do (use "
		       "rotate for a new one)\n", (*t)->name, old->id);
		return -1;
	}
	if (strcmp((*t)->kms, "pkcs11"))
		return cli_err(KX_USAGE, "tenant %s uses KMS '%s'; this sealtap "
			       "has the pkcs11 backend", (*t)->name,
			       (*t)->kms);
	return 0;
}

/* Appends |blob| as the active DEK of |t| (made if NULL), saves the store
 * and says what changed. */
static int store_dek(const struct opts *o, const struct env *e,
		     struct keys_store *s, struct keys_tenant_rec *t,
		     const char *kek, const struct kms_blob *blob)
{
	char err[1024], old_id[SEAL_KEY_ID_MAX + 1] = "";
	struct keys_dek_rec *d, *old;
	if (!t && keys_store_tenant_add(s, o->tenant, "pkcs11", kek, &t, err,
					sizeof(err)))
		return cli_err(KX_USAGE, "%s", err);
	if ((old = keys_store_active(t)))
		snprintf(old_id, sizeof(old_id), "%s", old->id);
	if (keys_store_dek_add(t, blob, (int64_t)time(NULL), &d, err,
			       sizeof(err)))
		return cli_err(KX_RUNTIME, "%s", err);
	int rc = save_store(e, s);
	if (rc)
		return rc;
	if (old_id[0])
		printf("tenant %s: rotated to DEK %s (%s retired; KEK %s)\n",
		       t->name, d->id, old_id, t->kek);
	else
		printf("tenant %s: created DEK %s (KEK %s via %s)\n", t->name,
		       d->id, t->kek, t->kms);
	return 0;
}

/* create and rotate: one read-modify-write under the store lock, so two
 * runs at once cannot both take the same key id or lose a DEK. */
static int add_dek(const struct opts *o, struct env *e, bool rotate)
{
	char err[1024];
	struct keys_store *s = NULL;
	struct kms *k = NULL;
	struct keys_tenant_rec *t;
	struct kms_blob blob;
	int rc = softhsm_setup(e, false);
	if (rc)
		return rc;
	int lock = keys_store_lock(e->store, err, sizeof(err));
	if (lock < 0)
		return cli_err(KX_RUNTIME, "%s", err);
	rc = load_store(e, !rotate, &s);
	if (rc == 0)
		rc = pick_tenant(o, e, s, rotate, &t);
	if (rc == 0) {
		const char *kek = t ? t->kek
				    : or_default(o->kek, e->default_kek);
		rc = open_kms(e, &k);
		if (rc == 0 && (rc = keys_dek_create(k, kek, &blob, err,
						     sizeof(err))))
			rc = cli_err(code_of(rc), "%s", err);
		if (rc == 0)
			rc = store_dek(o, e, s, t, kek, &blob);
	}
	kms_free(k);
	keys_store_free(s);
	keys_store_unlock(lock);
	return rc < 0 ? KX_OK : rc;
}

static void fmt_age(int64_t secs, char *out, size_t cap)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, cap, "%" PRId64 "s", secs);
	else if (secs < 7200)
		snprintf(out, cap, "%" PRId64 "m", secs / 60);
	else if (secs < 172800)
		snprintf(out, cap, "%" PRId64 "h", secs / 3600);
	else
		snprintf(out, cap, "%" PRId64 "d", secs / 86400);
}

static void fmt_utc(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void list_dek(const struct env *e, const struct keys_tenant_rec *t,
		     const struct keys_dek_rec *d, bool json, int64_t now)
{
	char created[32], age[32];
	fmt_utc(d->created, created);
	fmt_age(now - d->created, age, sizeof(age));
	double pct = 100.0 * (double)d->seals / (double)e->cfg.keys.dek_max_seals;
	const char *state = d->state == KEYS_DEK_ACTIVE ? "active" : "retired";
	if (json) {
		/* Names and ids are [A-Za-z0-9_-]; the KEK reference is
		 * printable ASCII and may need escaping. */
		printf("{\"tenant\":\"%s\",\"key_id\":\"%s\",\"state\":\"%s\","
		       "\"created\":\"%s\",\"age_s\":%" PRId64 ",\"seals\":%"
		       PRIu64 ",\"leases\":%" PRIu32 ",\"kms\":\"%s\","
		       "\"kek\":\"",
		       t->name, d->id, state, created,
		       now > d->created ? now - d->created : 0, d->seals,
		       d->leases, t->kms);
		for (const char *p = t->kek; *p; p++)
			printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		printf("\"}\n");
		return;
	}
	printf("%-20s %-26s %-8s %-21s %6s %12" PRIu64 " %6.2f%% %6" PRIu32
	       "  %-7s %s\n",
	       t->name, d->id, state, created, age, d->seals, pct, d->leases,
	       t->kms, t->kek);
}

static int cmd_list(const struct opts *o, struct env *e)
{
	struct keys_store *s;
	char err[1024];
	int rc = keys_store_load(e->store, &s, err, sizeof(err));
	if (rc == -ENOENT) {
		if (!o->json)
			printf("no key store at %s (sealtap keys create makes "
			       "one)\n", e->store);
		return KX_OK;
	}
	if (rc)
		return cli_err(KX_RUNTIME, "%s", err);
	if (o->tenant && !keys_store_tenant(s, o->tenant)) {
		keys_store_free(s);
		return cli_err(KX_USAGE, "unknown tenant %s in %s", o->tenant,
			    e->store);
	}
	int64_t now = (int64_t)time(NULL);
	if (!o->json)
		printf("%-20s %-26s %-8s %-21s %6s %12s %7s %6s  %-7s %s\n",
		       "TENANT", "KEY ID", "STATE", "CREATED", "AGE", "SEALS",
		       "LIMIT", "LEASES", "KMS", "KEK");
	for (unsigned i = 0; i < s->ntenants; i++) {
		const struct keys_tenant_rec *t = &s->tenants[i];
		if (o->tenant && strcmp(o->tenant, t->name))
			continue;
		if (!t->ndeks && !o->json)
			printf("%-20s (no DEK)\n", t->name);
		for (unsigned k = 0; k < t->ndeks; k++)
			list_dek(e, t, &t->deks[k], o->json, now);
	}
	keys_store_free(s);
	return KX_OK;
}

int keys_main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct env e;
	if (argc < 2) {
		usage(stderr, "keys");
		return KX_USAGE;
	}
	o.cmd = argv[1];
	if (!strcmp(o.cmd, "-h") || !strcmp(o.cmd, "--help") ||
	    !strcmp(o.cmd, "help")) {
		usage(stdout, argc > 2 ? argv[2] : "keys");
		return KX_OK;
	}
	if (strcmp(o.cmd, "init") && strcmp(o.cmd, "create") &&
	    strcmp(o.cmd, "rotate") && strcmp(o.cmd, "list"))
		return cli_err(KX_USAGE, "unknown command '%s'; see 'sealtap keys "
			    "--help'", o.cmd);
	int rc = parse_args(argc - 1, argv + 1, &o);
	if (rc)
		return rc < 0 ? KX_OK : rc;
	rc = load_env(&o, &e);
	if (rc)
		return rc;
	log_set_level((enum log_level)e.cfg.log.level);
	if (!strcmp(o.cmd, "init"))
		rc = cmd_init(&o, &e);
	else if (!strcmp(o.cmd, "create"))
		rc = add_dek(&o, &e, false);
	else if (!strcmp(o.cmd, "rotate"))
		rc = add_dek(&o, &e, true);
	else
		rc = cmd_list(&o, &e);
	config_free(&e.cfg);
	return rc;
}
