/* KMS: where tenant key-encryption keys (KEKs) live, and the only code that
 * turns a wrapped DEK into a plaintext one (and back).
 *
 * Two layers:
 *
 *   backend   a small ops table (wrap, unwrap, health, close) over one KMS:
 *             PKCS#11 (SoftHSM2 locally, an HSM in production; this file),
 *             a cloud KMS over REST later. Calls block; a backend is used by
 *             one thread at a time (the KMS thread, or a CLI command).
 *   async     struct kms: one KMS thread with a request queue in front of a
 *             backend. The control thread submits requests and gets each
 *             completion by callback (run on the KMS thread) or from a
 *             completion queue it polls (with an eventfd to wait on).
 *             Transient failures are retried with exponential backoff and
 *             jitter. Workers never call anything here.
 *
 * What the interface does not assume, so a cloud KMS fits unchanged: a KEK
 * reference is an opaque string (a PKCS#11 CKA_LABEL here, a resource name
 * such as "projects/p/locations/l/keyRings/r/cryptoKeys/k" there); a wrapped
 * DEK is an opaque blob of at most KMS_BLOB_MAX bytes whose format belongs to
 * the backend; authentication (PIN, attestation token exchange) happens
 * inside the backend, at open and again whenever it reconnects.
 *
 * Errors: every function returns 0 or -errno, and failing operations also
 * write one line to a |msg| buffer (never key bytes, never a PIN). Errnos
 * fall into classes (kms_classify), the same for every backend:
 *
 *   KMS_TRANSIENT  -EAGAIN -ETIMEDOUT -EIO -ENODEV -ECONNREFUSED
 *                  -ECONNRESET -ENETUNREACH -EHOSTUNREACH -EBUSY
 *                  the KMS is unreachable or busy (token removed after it
 *                  was seen, device error, rate limit). Retried.
 *   KMS_AUTH       -EACCES -EPERM -EKEYREVOKED -EKEYEXPIRED
 *                  wrong PIN or token, PIN locked, KEK use not permitted.
 *   KMS_NOT_FOUND  -ENOKEY -ENXIO
 *                  no KEK with that reference, no token with that label.
 *   KMS_CORRUPT    -EBADMSG -EPROTO
 *                  the blob does not unwrap under that KEK (damaged, or
 *                  wrapped by another KEK) or is not a blob of this backend.
 *   KMS_FATAL      anything else (-ENOENT / -ELIBBAD module missing or not
 *                  a PKCS#11 module, -ENOTSUP no usable mechanism, -EINVAL,
 *                  -ENOMEM, -ECANCELED at shutdown): configuration or
 *                  programming errors, not retried.
 */
#ifndef SEALTAP_KMS_H
#define SEALTAP_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits ---------------------------------------------------------------- */

#define KMS_DEK_MAX 64    /* plaintext DEK bytes a backend wraps */
#define KMS_BLOB_MAX 512  /* wrapped DEK bytes (cloud ciphertexts included) */
#define KMS_REF_MAX 255   /* KEK reference characters */
#define KMS_MSG_MAX 256   /* error message buffer, NUL included */

/* ---- error classes --------------------------------------------------------- */

enum kms_class {
	KMS_OK = 0,
	KMS_TRANSIENT = 1,
	KMS_AUTH = 2,
	KMS_NOT_FOUND = 3,
	KMS_CORRUPT = 4,
	KMS_FATAL = 5,
};

/* Class of |rc| (0 or -errno), per the table above. */
enum kms_class kms_classify(int rc);
/* "ok", "transient", "auth", "not-found", "corrupt", "fatal". */
const char *kms_class_name(enum kms_class c);

/* ---- backend --------------------------------------------------------------- */

/* A wrapped DEK. Its bytes are ciphertext only: safe to store and log the
 * length of, never the plaintext. */
struct kms_blob {
	size_t len;
	uint8_t b[KMS_BLOB_MAX];
};

struct kms_backend;

/* One KMS. Every op blocks, is called by one thread at a time, and writes
 * one line to |msg| (|msglen| bytes) when it fails. None takes ownership of
 * its buffers. */
struct kms_backend_ops {
	const char *name; /* "pkcs11", ... : stored with each tenant */
	/* Wraps |dek_len| (1..KMS_DEK_MAX) bytes at |dek| under |kek_ref|. */
	int (*wrap)(struct kms_backend *b, const char *kek_ref,
		    const uint8_t *dek, size_t dek_len, struct kms_blob *out,
		    char *msg, size_t msglen);
	/* Unwraps |in| under |kek_ref| straight into |dek| (|cap| bytes; the
	 * caller's memory, e.g. a DEK cache slot), setting *|dek_len|. On
	 * failure |dek| is wiped. */
	int (*unwrap)(struct kms_backend *b, const char *kek_ref,
		      const struct kms_blob *in, uint8_t *dek, size_t cap,
		      size_t *dek_len, char *msg, size_t msglen);
	/* Cheap liveness check (session valid, token present, credentials
	 * accepted); reconnects if it can. */
	int (*health)(struct kms_backend *b, char *msg, size_t msglen);
	/* Ends sessions and frees |b|. */
	void (*close)(struct kms_backend *b);
};

struct kms_backend {
	const struct kms_backend_ops *ops;
	void *impl; /* owned by the backend */
};

/* Convenience wrappers over b->ops, with argument checks (-EINVAL) and an
 * empty |msg| on success. Same ownership as the ops. */
int kms_wrap(struct kms_backend *b, const char *kek_ref, const uint8_t *dek,
	     size_t dek_len, struct kms_blob *out, char *msg, size_t msglen);
int kms_unwrap(struct kms_backend *b, const char *kek_ref,
	       const struct kms_blob *in, uint8_t *dek, size_t cap,
	       size_t *dek_len, char *msg, size_t msglen);
int kms_backend_health(struct kms_backend *b, char *msg, size_t msglen);
/* Takes ownership of |b|. NULL is fine. */
void kms_backend_close(struct kms_backend *b);

/* ---- PKCS#11 backend (kms_pkcs11.c) ----------------------------------------
 *
 * The module is dlopen()ed from |module| and entered through
 * C_GetFunctionList. The token is found by label; the user logs in with a PIN
 * read from |pin_file| (a regular file of this user, no group/other
 * permission bits, first line) or, when no file is set, from the environment
 * variable |pin_env|. A PIN is never taken from the command line or from the
 * config file itself, never logged, and wiped from memory after login.
 *
 * KEKs are AES-256 secret-key token objects labelled with the KEK reference:
 * CKA_SENSITIVE true, CKA_EXTRACTABLE false (the key never leaves the token).
 * Wrapping uses CKM_AES_KEY_WRAP_PAD (RFC 5649) through C_WrapKey/C_UnwrapKey
 * when the token offers it for wrap and unwrap, else CKM_AES_GCM through
 * C_Encrypt/C_Decrypt with a random 96-bit IV from the token. The blob's
 * first byte says which (see docs/keys.md), so either kind unwraps later.
 *
 * Threads: one session, used under a lock. A token that disappears after it
 * was found (removed, library reinitialised elsewhere) gives -ENODEV
 * (transient); the next call reconnects (C_Finalize, C_Initialize, find the
 * token, log in again with the PIN read again from its source). */

struct kms_pkcs11_cfg {
	const char *module;  /* path of the PKCS#11 library */
	const char *token;   /* token label (CKA_LABEL of the token) */
	const char *pin_file; /* NULL or "": use |pin_env| */
	const char *pin_env; /* environment variable holding the PIN */
};

#define KMS_PKCS11_PIN_MAX 255 /* SoftHSM2 and most HSMs: 4..255 */

/* Defaults of the kms.* options left empty. */
#define KMS_PKCS11_MODULE_DEFAULT "/usr/lib/softhsm/libsofthsm2.so" /* Debian */
#define KMS_TOKEN_DEFAULT "sealtap-dev"
#define KMS_PIN_ENV_DEFAULT "SEALTAP_PKCS11_PIN"

/* Loads the module, finds the token, logs in and picks the wrap mechanism.
 * Errors: -ENOENT / -ELIBBAD (module), -ENXIO (no such token), -EACCES
 * (wrong PIN, PIN file permissions), -EKEYREVOKED (PIN locked), -ENOTSUP
 * (no AES key wrap or AES-GCM), -EINVAL (configuration), -ENODEV / -EIO.
 * On success the caller frees *|out| with kms_backend_close(). Does not take
 * ownership of |cfg| (strings are copied). */
int kms_pkcs11_open(const struct kms_pkcs11_cfg *cfg, struct kms_backend **out,
		    char *err, size_t errlen);

/* Reads the PIN per |cfg| into |pin| (|cap| bytes, NUL-terminated): the
 * file's first line, or the variable's value. Refuses a PIN file that is
 * not a regular file, not owned by this user, or open to group or others
 * (-EACCES); a missing file (-ENOENT); an unset or empty variable, an empty
 * PIN, or one longer than KMS_PKCS11_PIN_MAX (-EINVAL). Does not take
 * ownership of |pin|; the caller wipes it (OPENSSL_cleanse). Returns the
 * PIN length or -errno. */
int kms_pkcs11_pin_read(const struct kms_pkcs11_cfg *cfg, char *pin,
			size_t cap, char *err, size_t errlen);

/* Development setup (sealtap keys init). Creates the token labelled
 * cfg->token on the module's free slot if no token has that label, with a
 * random SO PIN that is not kept and the user PIN from the PIN source.
 * Sets *|created|. Idempotent. */
int kms_pkcs11_token_init(const struct kms_pkcs11_cfg *cfg, bool *created,
			  char *err, size_t errlen);

/* Generates the KEK |kek_ref| in the token if it has none (AES-256,
 * C_GenerateKey, attributes as above). Sets *|created|. Idempotent. |b| must
 * come from kms_pkcs11_open(). */
int kms_pkcs11_kek_ensure(struct kms_backend *b, const char *kek_ref,
			  bool *created, char *err, size_t errlen);

/* Name of the wrap mechanism |b| uses for new blobs:
 * "CKM_AES_KEY_WRAP_PAD" or "CKM_AES_GCM". */
const char *kms_pkcs11_mechanism(const struct kms_backend *b);

/* ---- async front ------------------------------------------------------------ */

enum kms_op {
	KMS_OP_WRAP = 1,
	KMS_OP_UNWRAP = 2,
	KMS_OP_HEALTH = 3,
};

struct kms_req;
/* Completion callback: runs on the KMS thread, must be short and must not
 * call kms_free(). Reads the outcome from |r|. */
typedef void (*kms_done_fn)(struct kms_req *r, void *arg);

/* One request. The submitter owns it and keeps it (and |dek_in|,
 * |dek_out|) alive and untouched from kms_submit() until its completion is
 * delivered. */
struct kms_req {
	/* in */
	enum kms_op op;
	char kek_ref[KMS_REF_MAX + 1];
	const uint8_t *dek_in;   /* WRAP: plaintext DEK (caller's memory) */
	size_t dek_len;
	uint8_t *dek_out;        /* UNWRAP: where the DEK lands */
	size_t dek_cap;
	struct kms_blob blob;    /* WRAP: result; UNWRAP: input */
	kms_done_fn done;        /* NULL: completion queue (kms_poll) */
	void *arg;
	uint64_t tag;            /* caller's, untouched */
	/* out */
	int rc;                  /* 0 or -errno */
	enum kms_class cls;
	unsigned attempts;
	size_t dek_out_len;      /* UNWRAP */
	char msg[KMS_MSG_MAX];
	/* private to kms.c */
	struct kms_req *next_;
	uint64_t not_before_;
	int state_;
};

/* Retry and health settings (config section kms). */
struct kms_async_cfg {
	unsigned max_attempts;     /* per request, >= 1 */
	uint64_t backoff_base_ns;  /* delay before the 2nd attempt */
	uint64_t backoff_max_ns;   /* cap of one delay */
	uint64_t health_interval_ns; /* idle probe period; 0 = none */
	unsigned queue_max;        /* pending requests; beyond: -EAGAIN */
};

/* Health of the KMS as the KMS thread last saw it. */
struct kms_health {
	bool up;                  /* last operation succeeded */
	int last_rc;
	enum kms_class last_class;
	char last_msg[KMS_MSG_MAX];
	uint64_t last_ok_ns;      /* CLOCK_REALTIME, 0 = never */
	uint64_t last_fail_ns;
	uint64_t consecutive_failures; /* attempts since the last success */
	uint64_t ops, failures, retries, queued;
};

struct kms;

/* Starts the KMS thread over |b|. Takes ownership of |b| (closed by
 * kms_free(), also when this fails). On success the caller frees *|out| with
 * kms_free(). 0, -EINVAL, -ENOMEM or the pthread error. */
int kms_new(struct kms_backend *b, const struct kms_async_cfg *cfg,
	    struct kms **out);
/* Stops the thread and closes the backend. Requests not yet finished end
 * with rc -ECANCELED: their callbacks run (on the calling thread); requests
 * of the completion queue, delivered or not, are dropped from it (their
 * owner still reads r->rc). Takes ownership of |k|. NULL is fine. */
void kms_free(struct kms *k);

/* Queues |r|. Does not take ownership of |r| (see struct kms_req). 0,
 * -EINVAL (bad op, kek_ref, sizes), -EAGAIN (queue full), -ESHUTDOWN. */
int kms_submit(struct kms *k, struct kms_req *r);
/* Next completed request of the completion queue, or NULL. */
struct kms_req *kms_poll(struct kms *k);
/* An eventfd readable while the completion queue is non-empty (for
 * libevent). Owned by |k|. */
int kms_completion_fd(const struct kms *k);
/* Submits |r| (its |done| must be NULL) and blocks until it completes,
 * retries included. For the CLI and start-up, never for workers. Returns
 * r->rc, or the kms_submit() error. */
int kms_call(struct kms *k, struct kms_req *r);
/* Copies the current health into |h|. */
void kms_get_health(struct kms *k, struct kms_health *h);
/* The backend's name ("pkcs11"). */
const char *kms_backend_name(const struct kms *k);

/* Delay before attempt |attempt| + 1 (attempt >= 1): "equal jitter", half
 * of min(max, base * 2^(attempt-1)) fixed and half uniform in |rnd|. */
uint64_t kms_backoff_ns(const struct kms_async_cfg *cfg, unsigned attempt,
			uint64_t rnd);

#endif
