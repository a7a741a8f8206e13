/* PKCS#11 KMS backend (see kms.h): SoftHSM2 locally, an HSM in production.
 *
 * The PKCS#11 declarations below are our own, written from the OASIS
 * PKCS#11 v2.40 base specification (types, the CK_FUNCTION_LIST order and
 * the constant values), so the build needs no PKCS#11 headers. Only what is
 * used is declared. On Linux the structures use the platform's natural
 * alignment (no packing), as every Unix module is built.
 *
 * Wrapped DEK blob, first byte = format:
 *
 *   0x01  RFC 5649 AES key wrap with padding (CKM_AES_KEY_WRAP_PAD) of the
 *         DEK, done with C_WrapKey on a session object that exists only for
 *         the call; unwrap is C_UnwrapKey into a session object whose value
 *         is read straight into the caller's buffer and which is destroyed
 *         at once.
 *   0x02  AES-256-GCM (CKM_AES_GCM) with C_Encrypt/C_Decrypt:
 *         iv (12, from C_GenerateRandom) || ciphertext || tag (16), AAD =
 *         "sealtap dek v1" || KEK reference. C_Decrypt writes the DEK
 *         straight into the caller's buffer; no object is created.
 *
 * State ownership: struct p11 belongs to its kms_backend; |lock| guards all
 * of it (one session, one thread in the token at a time). The module table
 * |mods| is process-wide, guarded by |mods_lock|: backends opened on the same
 * library share one loaded, initialised module (C_Initialize is per
 * process).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sealtap/kms.h"
#include "sealtap/log.h"

/* ---- PKCS#11 v2.40 declarations (OASIS spec, §3 and §5) --------------------- */

typedef unsigned long CK_ULONG;
typedef unsigned char CK_BYTE;
typedef CK_BYTE CK_BBOOL;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_MECHANISM_TYPE;
typedef CK_ULONG CK_ATTRIBUTE_TYPE;
typedef CK_ULONG CK_USER_TYPE;
typedef void *CK_VOID_PTR;

struct ck_version {
	CK_BYTE major, minor;
};

struct ck_token_info {
	CK_BYTE label[32];
	CK_BYTE manufacturer_id[32];
	CK_BYTE model[16];
	CK_BYTE serial_number[16];
	CK_FLAGS flags;
	CK_ULONG max_session_count, session_count;
	CK_ULONG max_rw_session_count, rw_session_count;
	CK_ULONG max_pin_len, min_pin_len;
	CK_ULONG total_public_memory, free_public_memory;
	CK_ULONG total_private_memory, free_private_memory;
	struct ck_version hardware_version, firmware_version;
	CK_BYTE utc_time[16];
};

struct ck_mechanism_info {
	CK_ULONG min_key_size, max_key_size;
	CK_FLAGS flags;
};

struct ck_mechanism {
	CK_MECHANISM_TYPE mechanism;
	CK_VOID_PTR parameter;
	CK_ULONG parameter_len;
};

struct ck_attribute {
	CK_ATTRIBUTE_TYPE type;
	CK_VOID_PTR value;
	CK_ULONG value_len;
};

struct ck_gcm_params {
	CK_BYTE *iv;
	CK_ULONG iv_len, iv_bits;
	CK_BYTE *aad;
	CK_ULONG aad_len, tag_bits;
};

struct ck_c_initialize_args {
	CK_VOID_PTR create_mutex, destroy_mutex, lock_mutex, unlock_mutex;
	CK_FLAGS flags;
	CK_VOID_PTR reserved;
};

/* The function list, in the order of the specification. Functions sealtap
 * never calls are plain pointers: only their slot matters. */
struct ck_function_list {
	struct ck_version version;
	CK_RV (*C_Initialize)(CK_VOID_PTR);
	CK_RV (*C_Finalize)(CK_VOID_PTR);
	void *C_GetInfo;
	void *C_GetFunctionList;
	CK_RV (*C_GetSlotList)(CK_BBOOL, CK_SLOT_ID *, CK_ULONG *);
	void *C_GetSlotInfo;
	CK_RV (*C_GetTokenInfo)(CK_SLOT_ID, struct ck_token_info *);
	CK_RV (*C_GetMechanismList)(CK_SLOT_ID, CK_MECHANISM_TYPE *,
				    CK_ULONG *);
	CK_RV (*C_GetMechanismInfo)(CK_SLOT_ID, CK_MECHANISM_TYPE,
				    struct ck_mechanism_info *);
	CK_RV (*C_InitToken)(CK_SLOT_ID, CK_BYTE *, CK_ULONG, CK_BYTE *);
	CK_RV (*C_InitPIN)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG);
	void *C_SetPIN;
	CK_RV (*C_OpenSession)(CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_VOID_PTR,
			       CK_SESSION_HANDLE *);
	CK_RV (*C_CloseSession)(CK_SESSION_HANDLE);
	void *C_CloseAllSessions;
	CK_RV (*C_GetSessionInfo)(CK_SESSION_HANDLE, CK_VOID_PTR);
	void *C_GetOperationState;
	void *C_SetOperationState;
	CK_RV (*C_Login)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_BYTE *, CK_ULONG);
	CK_RV (*C_Logout)(CK_SESSION_HANDLE);
	CK_RV (*C_CreateObject)(CK_SESSION_HANDLE, struct ck_attribute *,
				CK_ULONG, CK_OBJECT_HANDLE *);
	void *C_CopyObject;
	CK_RV (*C_DestroyObject)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
	void *C_GetObjectSize;
	CK_RV (*C_GetAttributeValue)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE,
				     struct ck_attribute *, CK_ULONG);
	void *C_SetAttributeValue;
	CK_RV (*C_FindObjectsInit)(CK_SESSION_HANDLE, struct ck_attribute *,
				   CK_ULONG);
	CK_RV (*C_FindObjects)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE *, CK_ULONG,
			       CK_ULONG *);
	CK_RV (*C_FindObjectsFinal)(CK_SESSION_HANDLE);
	CK_RV (*C_EncryptInit)(CK_SESSION_HANDLE, struct ck_mechanism *,
			       CK_OBJECT_HANDLE);
	CK_RV (*C_Encrypt)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *,
			   CK_ULONG *);
	void *C_EncryptUpdate;
	void *C_EncryptFinal;
	CK_RV (*C_DecryptInit)(CK_SESSION_HANDLE, struct ck_mechanism *,
			       CK_OBJECT_HANDLE);
	CK_RV (*C_Decrypt)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *,
			   CK_ULONG *);
	void *C_DecryptUpdate;
	void *C_DecryptFinal;
	void *C_DigestInit;
	void *C_Digest;
	void *C_DigestUpdate;
	void *C_DigestKey;
	void *C_DigestFinal;
	void *C_SignInit;
	void *C_Sign;
	void *C_SignUpdate;
	void *C_SignFinal;
	void *C_SignRecoverInit;
	void *C_SignRecover;
	void *C_VerifyInit;
	void *C_Verify;
	void *C_VerifyUpdate;
	void *C_VerifyFinal;
	void *C_VerifyRecoverInit;
	void *C_VerifyRecover;
	void *C_DigestEncryptUpdate;
	void *C_DecryptDigestUpdate;
	void *C_SignEncryptUpdate;
	void *C_DecryptVerifyUpdate;
	CK_RV (*C_GenerateKey)(CK_SESSION_HANDLE, struct ck_mechanism *,
			       struct ck_attribute *, CK_ULONG,
			       CK_OBJECT_HANDLE *);
	void *C_GenerateKeyPair;
	CK_RV (*C_WrapKey)(CK_SESSION_HANDLE, struct ck_mechanism *,
			   CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, CK_BYTE *,
			   CK_ULONG *);
	CK_RV (*C_UnwrapKey)(CK_SESSION_HANDLE, struct ck_mechanism *,
			     CK_OBJECT_HANDLE, CK_BYTE *, CK_ULONG,
			     struct ck_attribute *, CK_ULONG,
			     CK_OBJECT_HANDLE *);
	void *C_DeriveKey;
	void *C_SeedRandom;
	CK_RV (*C_GenerateRandom)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG);
	void *C_GetFunctionStatus;
	void *C_CancelFunction;
	void *C_WaitForSlotEvent;
};

typedef CK_RV (*ck_get_function_list_fn)(struct ck_function_list **);

#define CK_TRUE 1
#define CK_FALSE 0
#define CK_INVALID_HANDLE 0ul

/* return values (§5.1) */
#define CKR_OK 0x000ul
#define CKR_HOST_MEMORY 0x002ul
#define CKR_SLOT_ID_INVALID 0x003ul
#define CKR_GENERAL_ERROR 0x005ul
#define CKR_FUNCTION_FAILED 0x006ul
#define CKR_ARGUMENTS_BAD 0x007ul
#define CKR_ATTRIBUTE_SENSITIVE 0x011ul
#define CKR_ATTRIBUTE_TYPE_INVALID 0x012ul
#define CKR_ATTRIBUTE_VALUE_INVALID 0x013ul
#define CKR_DATA_INVALID 0x020ul
#define CKR_DATA_LEN_RANGE 0x021ul
#define CKR_DEVICE_ERROR 0x030ul
#define CKR_DEVICE_MEMORY 0x031ul
#define CKR_DEVICE_REMOVED 0x032ul
#define CKR_ENCRYPTED_DATA_INVALID 0x040ul
#define CKR_ENCRYPTED_DATA_LEN_RANGE 0x041ul
#define CKR_FUNCTION_CANCELED 0x050ul
#define CKR_KEY_HANDLE_INVALID 0x060ul
#define CKR_KEY_SIZE_RANGE 0x062ul
#define CKR_KEY_TYPE_INCONSISTENT 0x063ul
#define CKR_KEY_FUNCTION_NOT_PERMITTED 0x068ul
#define CKR_KEY_NOT_WRAPPABLE 0x069ul
#define CKR_KEY_UNEXTRACTABLE 0x06Aul
#define CKR_MECHANISM_INVALID 0x070ul
#define CKR_MECHANISM_PARAM_INVALID 0x071ul
#define CKR_OBJECT_HANDLE_INVALID 0x082ul
#define CKR_OPERATION_ACTIVE 0x090ul
#define CKR_OPERATION_NOT_INITIALIZED 0x091ul
#define CKR_PIN_INCORRECT 0x0A0ul
#define CKR_PIN_INVALID 0x0A1ul
#define CKR_PIN_LEN_RANGE 0x0A2ul
#define CKR_PIN_EXPIRED 0x0A3ul
#define CKR_PIN_LOCKED 0x0A4ul
#define CKR_SESSION_CLOSED 0x0B0ul
#define CKR_SESSION_COUNT 0x0B1ul
#define CKR_SESSION_HANDLE_INVALID 0x0B3ul
#define CKR_SESSION_READ_ONLY 0x0B5ul
#define CKR_TEMPLATE_INCOMPLETE 0x0D0ul
#define CKR_TEMPLATE_INCONSISTENT 0x0D1ul
#define CKR_TOKEN_NOT_PRESENT 0x0E0ul
#define CKR_TOKEN_NOT_RECOGNIZED 0x0E1ul
#define CKR_TOKEN_WRITE_PROTECTED 0x0E2ul
#define CKR_UNWRAPPING_KEY_HANDLE_INVALID 0x0F0ul
#define CKR_USER_ALREADY_LOGGED_IN 0x100ul
#define CKR_USER_NOT_LOGGED_IN 0x101ul
#define CKR_USER_PIN_NOT_INITIALIZED 0x102ul
#define CKR_USER_TYPE_INVALID 0x103ul
#define CKR_WRAPPED_KEY_INVALID 0x110ul
#define CKR_WRAPPED_KEY_LEN_RANGE 0x112ul
#define CKR_WRAPPING_KEY_HANDLE_INVALID 0x113ul
#define CKR_BUFFER_TOO_SMALL 0x150ul
#define CKR_CRYPTOKI_NOT_INITIALIZED 0x190ul
#define CKR_CRYPTOKI_ALREADY_INITIALIZED 0x191ul
#define CKR_FUNCTION_REJECTED 0x200ul

/* flags */
#define CKF_OS_LOCKING_OK 0x2ul          /* C_Initialize args */
#define CKF_RW_SESSION 0x2ul             /* C_OpenSession */
#define CKF_SERIAL_SESSION 0x4ul
#define CKF_USER_PIN_INITIALIZED 0x8ul   /* token info */
#define CKF_TOKEN_INITIALIZED 0x400ul
#define CKF_USER_PIN_LOCKED 0x40000ul
#define CKF_ENCRYPT 0x100ul              /* mechanism info */
#define CKF_DECRYPT 0x200ul
#define CKF_WRAP 0x20000ul
#define CKF_UNWRAP 0x40000ul

#define CKU_SO 0ul
#define CKU_USER 1ul

#define CKO_SECRET_KEY 0x4ul
#define CKK_GENERIC_SECRET 0x10ul
#define CKK_AES 0x1Ful

#define CKA_CLASS 0x000ul
#define CKA_TOKEN 0x001ul
#define CKA_PRIVATE 0x002ul
#define CKA_LABEL 0x003ul
#define CKA_VALUE 0x011ul
#define CKA_KEY_TYPE 0x100ul
#define CKA_SENSITIVE 0x103ul
#define CKA_ENCRYPT 0x104ul
#define CKA_DECRYPT 0x105ul
#define CKA_WRAP 0x106ul
#define CKA_UNWRAP 0x107ul
#define CKA_SIGN 0x108ul
#define CKA_VERIFY 0x10Aul
#define CKA_DERIVE 0x10Cul
#define CKA_VALUE_LEN 0x161ul
#define CKA_EXTRACTABLE 0x162ul
#define CKA_NEVER_EXTRACTABLE 0x164ul
#define CKA_ALWAYS_SENSITIVE 0x165ul
#define CKA_MODIFIABLE 0x170ul

#define CKM_AES_KEY_GEN 0x1080ul
#define CKM_AES_GCM 0x1087ul
#define CKM_AES_KEY_WRAP_PAD 0x210Aul

/* ---- constants of this backend ------------------------------------------------ */

#define BLOB_KWP 0x01
#define BLOB_GCM 0x02
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
#define GCM_AAD_PREFIX "sealtap dek v1"
#define KEK_LEN 32        /* AES-256 */
#define LABEL_LEN 32      /* CK_TOKEN_INFO label */
#define MAX_SLOTS 64
#define MAX_MODULES 4
#define KEK_CACHE 16      /* KEK handles remembered per session */

/* Test hook: force a mechanism for new blobs (0 = choose). */
static CK_MECHANISM_TYPE p11_force_mech;

/* ---- return values -> errno and text ------------------------------------------ */

static const struct {
	CK_RV rv;
	const char *name;
	int err;
} ckr_table[] = {
	{ CKR_OK, "CKR_OK", 0 },
	{ CKR_HOST_MEMORY, "CKR_HOST_MEMORY", -ENOMEM },
	{ CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID", -ENODEV },
	{ CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", -EIO },
	{ CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED", -EIO },
	{ CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", -EINVAL },
	{ CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE", -EPERM },
	{ CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID", -EINVAL },
	{ CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID", -EINVAL },
	{ CKR_DATA_INVALID, "CKR_DATA_INVALID", -EINVAL },
	{ CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE", -EINVAL },
	{ CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR", -EIO },
	{ CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY", -EAGAIN },
	{ CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", -ENODEV },
	{ CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID", -EBADMSG },
	{ CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE",
	  -EBADMSG },
	{ CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED", -EAGAIN },
	{ CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID", -ENODEV },
	{ CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE", -EINVAL },
	{ CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT", -EINVAL },
	{ CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED",
	  -EPERM },
	{ CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE", -EPERM },
	{ CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE", -EPERM },
	{ CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID", -ENOTSUP },
	{ CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID",
	  -ENOTSUP },
	{ CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID", -ENODEV },
	{ CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE", -EBUSY },
	{ CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED",
	  -EIO },
	{ CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT", -EACCES },
	{ CKR_PIN_INVALID, "CKR_PIN_INVALID", -EACCES },
	{ CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE", -EACCES },
	{ CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED", -EACCES },
	{ CKR_PIN_LOCKED, "CKR_PIN_LOCKED", -EKEYREVOKED },
	{ CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED", -ENODEV },
	{ CKR_SESSION_COUNT, "CKR_SESSION_COUNT", -EBUSY },
	{ CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID", -ENODEV },
	{ CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY", -EPERM },
	{ CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE", -EINVAL },
	{ CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT", -EINVAL },
	{ CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT", -ENODEV },
	{ CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED", -ENODEV },
	{ CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED", -EPERM },
	{ CKR_UNWRAPPING_KEY_HANDLE_INVALID,
	  "CKR_UNWRAPPING_KEY_HANDLE_INVALID", -ENODEV },
	{ CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN", 0 },
	{ CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN", -EACCES },
	{ CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED",
	  -EACCES },
	{ CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID", -EINVAL },
	{ CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID", -EBADMSG },
	{ CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE", -EBADMSG },
	{ CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID",
	  -ENODEV },
	{ CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL", -ENOBUFS },
	{ CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED",
	  -ENODEV },
	{ CKR_CRYPTOKI_ALREADY_INITIALIZED,
	  "CKR_CRYPTOKI_ALREADY_INITIALIZED", 0 },
	{ CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED", -EPERM },
};

static int ckr_errno(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++)
		if (ckr_table[i].rv == rv)
			return ckr_table[i].err;
	return -EIO; /* vendor codes: assume the device is unwell */
}

static const char *ckr_name(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++)
		if (ckr_table[i].rv == rv)
			return ckr_table[i].name;
	return "CKR_VENDOR_DEFINED";
}

static int p11_fail(char *msg, size_t msglen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int p11_fail(char *msg, size_t msglen, int rc, const char *fmt, ...)
{
	if (msg && msglen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* "pkcs11: C_Login: CKR_PIN_INCORRECT (0xa0)" plus |what|. */
static int ckfail(char *msg, size_t msglen, const char *fn, CK_RV rv,
		  const char *what)
{
	return p11_fail(msg, msglen, ckr_errno(rv), "pkcs11: %s: %s (0x%lx)%s%s",
		    fn, ckr_name(rv), rv, what && what[0] ? ": " : "",
		    what ? what : "");
}

/* ---- modules -------------------------------------------------------------------- */

struct p11_module {
	char path[PATH_MAX];
	void *dl;
	struct ck_function_list *f;
	unsigned refs;
	bool initialised; /* by us: we finalise it */
};

static pthread_mutex_t mods_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module mods[MAX_MODULES];

static CK_RV mod_initialize(struct p11_module *m)
{
	struct ck_c_initialize_args args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = m->f->C_Initialize(&args);
	if (rv == CKR_OK)
		m->initialised = true;
	else if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		rv = CKR_OK; /* another component of this process did */
	return rv;
}

/* Loads |path| (or finds it loaded) and takes a reference. */
static int mod_acquire(const char *path, struct p11_module **out, char *err,
		       size_t errlen)
{
	struct stat st;
	int rc = 0;

	pthread_mutex_lock(&mods_lock);
	struct p11_module *m = NULL, *free_m = NULL;
	for (int i = 0; i < MAX_MODULES; i++) {
		if (mods[i].refs && !strcmp(mods[i].path, path))
			m = &mods[i];
		else if (!mods[i].refs && !free_m)
			free_m = &mods[i];
	}
	if (m) {
		m->refs++;
		*out = m;
		goto out;
	}
	if (!free_m) {
		rc = p11_fail(err, errlen, -EMFILE,
			  "pkcs11: more than %d modules loaded", MAX_MODULES);
		goto out;
	}
	m = free_m;
	if (strlen(path) >= sizeof(m->path)) {
		rc = p11_fail(err, errlen, -ENAMETOOLONG,
			  "pkcs11 module path too long");
		goto out;
	}
	if (stat(path, &st) != 0) {
		rc = p11_fail(err, errlen, -ENOENT,
			  "pkcs11 module %s: %s; install it (softhsm2) or set "
			  "kms.pkcs11_module", path, strerror(errno));
		goto out;
	}
	/* RTLD_NODELETE: some modules register exit handlers and cannot be
	 * unloaded safely; keeping the code mapped costs nothing. */
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!dl) {
		rc = p11_fail(err, errlen, -ELIBBAD,
			  "pkcs11 module %s: cannot load: %s", path,
			  dlerror());
		goto out;
	}
	ck_get_function_list_fn gfl =
		(ck_get_function_list_fn)dlsym(dl, "C_GetFunctionList");
	struct ck_function_list *f = NULL;
	if (!gfl || gfl(&f) != CKR_OK || !f) {
		dlclose(dl);
		rc = p11_fail(err, errlen, -ELIBBAD,
			  "pkcs11 module %s: no usable C_GetFunctionList; "
			  "not a PKCS#11 module", path);
		goto out;
	}
	if (f->version.major != 2) {
		dlclose(dl);
		rc = p11_fail(err, errlen, -ELIBBAD,
			  "pkcs11 module %s: Cryptoki version %u.%u; sealtap "
			  "needs 2.x", path, f->version.major,
			  f->version.minor);
		goto out;
	}
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->dl = dl;
	m->f = f;
	m->initialised = false;
	CK_RV rv = mod_initialize(m);
	if (rv != CKR_OK) {
		dlclose(dl);
		rc = ckfail(err, errlen, "C_Initialize", rv,
			    "module cannot start; for SoftHSM2 check "
			    "SOFTHSM2_CONF and its token directory "
			    "(scripts/softhsm-env.sh)");
		if (rc == 0 || kms_classify(rc) == KMS_TRANSIENT)
			rc = -ELIBBAD;
		goto out;
	}
	m->refs = 1;
	*out = m;
out:
	pthread_mutex_unlock(&mods_lock);
	return rc;
}

static void mod_release(struct p11_module *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&mods_lock);
	if (--m->refs == 0) {
		if (m->initialised)
			m->f->C_Finalize(NULL);
		dlclose(m->dl);
		memset(m, 0, sizeof(*m));
	}
	pthread_mutex_unlock(&mods_lock);
}

/* Finalises and initialises |m| again so the module re-reads its slots (a
 * SoftHSM2 token directory that came back, a reinserted HSM). Every session
 * of every backend on |m| ends; they reconnect on their next call. */
static CK_RV mod_restart(struct p11_module *m)
{
	pthread_mutex_lock(&mods_lock);
	if (m->initialised)
		m->f->C_Finalize(NULL);
	m->initialised = false;
	CK_RV rv = mod_initialize(m);
	pthread_mutex_unlock(&mods_lock);
	return rv;
}

/* ---- PIN ------------------------------------------------------------------------ */

/* Strips one trailing "\n" or "\r\n". */
static size_t chomp(char *s, size_t n)
{
	if (n && s[n - 1] == '\n')
		s[--n] = '\0';
	if (n && s[n - 1] == '\r')
		s[--n] = '\0';
	return n;
}

static int pin_from_file(const char *path, char *pin, size_t cap, char *err,
			 size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return p11_fail(err, errlen, -errno,
			    "PIN file %s: %s; create it with mode 0600 (or run "
			    "sealtap keys init)", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return p11_fail(err, errlen, -EACCES,
			    "PIN file %s: not a regular file", path);
	}
	if (st.st_uid != geteuid()) {
		close(fd);
		return p11_fail(err, errlen, -EACCES,
			    "PIN file %s: owned by uid %u, not by this user "
			    "(%u); chown it", path, (unsigned)st.st_uid,
			    (unsigned)geteuid());
	}
	if (st.st_mode & 077) {
		close(fd);
		return p11_fail(err, errlen, -EACCES,
			    "PIN file %s: mode %04o lets group or others read "
			    "it; chmod 600 %s", path,
			    (unsigned)(st.st_mode & 07777), path);
	}
	ssize_t n = read(fd, pin, cap - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		OPENSSL_cleanse(pin, cap);
		return p11_fail(err, errlen, -e, "PIN file %s: %s", path,
			    strerror(e));
	}
	pin[n] = '\0';
	char *nl = memchr(pin, '\n', (size_t)n);
	if (nl) { /* first line only */
		OPENSSL_cleanse(nl, (size_t)n - (size_t)(nl - pin));
		*nl = '\0';
		n = nl - pin;
	} else if ((size_t)n == cap - 1) {
		OPENSSL_cleanse(pin, cap);
		return p11_fail(err, errlen, -EINVAL,
			    "PIN file %s: PIN longer than %d characters", path,
			    KMS_PKCS11_PIN_MAX);
	}
	return (int)chomp(pin, (size_t)n);
}

int kms_pkcs11_pin_read(const struct kms_pkcs11_cfg *cfg, char *pin,
			size_t cap, char *err, size_t errlen)
{
	char buf[KMS_PKCS11_PIN_MAX + 2];
	int n;

	if (!cfg || !pin || cap < 2)
		return -EINVAL;
	pin[0] = '\0';
	if (cfg->pin_file && cfg->pin_file[0]) {
		n = pin_from_file(cfg->pin_file, buf, sizeof(buf), err,
				  errlen);
		if (n < 0)
			return n;
	} else {
		const char *var = cfg->pin_env && cfg->pin_env[0]
					  ? cfg->pin_env
					  : NULL;
		const char *v = var ? getenv(var) : NULL;
		if (!var)
			return p11_fail(err, errlen, -EINVAL,
				    "no PIN source: set kms.pin_file or "
				    "kms.pin_env");
		if (!v || !v[0])
			return p11_fail(err, errlen, -EINVAL,
				    "PIN variable %s is not set; export it or "
				    "set kms.pin_file", var);
		n = (int)strnlen(v, KMS_PKCS11_PIN_MAX + 1);
		if (n > KMS_PKCS11_PIN_MAX)
			return p11_fail(err, errlen, -EINVAL,
				    "PIN variable %s: PIN longer than %d "
				    "characters", var, KMS_PKCS11_PIN_MAX);
		memcpy(buf, v, (size_t)n);
		buf[n] = '\0';
	}
	if (n == 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return p11_fail(err, errlen, -EINVAL, "the PIN is empty");
	}
	if ((size_t)n >= cap) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return p11_fail(err, errlen, -ENOBUFS, "PIN buffer too small");
	}
	memcpy(pin, buf, (size_t)n + 1);
	OPENSSL_cleanse(buf, sizeof(buf));
	return n;
}

/* ---- the backend ------------------------------------------------------------- */

struct p11 {
	struct kms_backend base;
	pthread_mutex_t lock;
	struct p11_module *mod;
	struct ck_function_list *f; /* mod->f */
	struct kms_pkcs11_cfg cfg;  /* owned copies of the strings */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE sess;
	bool connected;             /* |sess| valid and logged in */
	bool ever_connected;        /* the token was there once */
	bool kwp_ok, gcm_ok;        /* mechanisms the token offers */
	CK_MECHANISM_TYPE mech;     /* for new blobs */
	struct {
		char ref[KMS_REF_MAX + 1];
		CK_OBJECT_HANDLE h;
	} keks[KEK_CACHE];          /* handles valid for |sess| */
	unsigned nkeks;
};

static void pad_label(const char *s, CK_BYTE out[LABEL_LEN])
{
	size_t n = strlen(s);
	memset(out, ' ', LABEL_LEN);
	memcpy(out, s, n < LABEL_LEN ? n : LABEL_LEN);
}

/* Finds the initialised token labelled |label|. 0, -ENXIO, or -errno. */
static int find_slot(struct ck_function_list *f, const char *label,
		     CK_SLOT_ID *slot, char *msg, size_t msglen)
{
	CK_SLOT_ID slots[MAX_SLOTS];
	CK_ULONG n = MAX_SLOTS;
	CK_BYTE want[LABEL_LEN];
	struct ck_token_info ti;

	CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_GetSlotList", rv, NULL);
	pad_label(label, want);
	for (CK_ULONG i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if ((ti.flags & CKF_TOKEN_INITIALIZED) &&
		    !memcmp(ti.label, want, LABEL_LEN)) {
			*slot = slots[i];
			return 0;
		}
	}
	return p11_fail(msg, msglen, -ENXIO,
		    "pkcs11: no token labelled \"%s\" (%lu slots); check "
		    "kms.token_label and SOFTHSM2_CONF, or run sealtap keys "
		    "init", label, n);
}

static bool mech_has(struct p11 *p, CK_MECHANISM_TYPE m, CK_FLAGS need)
{
	struct ck_mechanism_info mi;
	if (p->f->C_GetMechanismInfo(p->slot, m, &mi) != CKR_OK)
		return false;
	return (mi.flags & need) == need;
}

/* Chooses the mechanism for new blobs from the token's list. */
static int pick_mech(struct p11 *p, char *msg, size_t msglen)
{
	CK_MECHANISM_TYPE list[256];
	CK_ULONG n = 256;
	CK_RV rv = p->f->C_GetMechanismList(p->slot, list, &n);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_GetMechanismList", rv, NULL);
	p->kwp_ok = p->gcm_ok = false;
	for (CK_ULONG i = 0; i < n; i++) {
		if (list[i] == CKM_AES_KEY_WRAP_PAD)
			p->kwp_ok = mech_has(p, list[i], CKF_WRAP | CKF_UNWRAP);
		else if (list[i] == CKM_AES_GCM)
			p->gcm_ok = mech_has(p, list[i],
					     CKF_ENCRYPT | CKF_DECRYPT);
	}
	if (p11_force_mech == CKM_AES_GCM && p->gcm_ok)
		p->mech = CKM_AES_GCM;
	else if (p->kwp_ok)
		p->mech = CKM_AES_KEY_WRAP_PAD;
	else if (p->gcm_ok)
		p->mech = CKM_AES_GCM;
	else
		return p11_fail(msg, msglen, -ENOTSUP,
			    "pkcs11: token offers neither CKM_AES_KEY_WRAP_PAD "
			    "(wrap/unwrap) nor CKM_AES_GCM (encrypt/decrypt)");
	return 0;
}

static void disconnect(struct p11 *p)
{
	if (p->connected)
		p->f->C_CloseSession(p->sess);
	p->connected = false;
	p->sess = CK_INVALID_HANDLE;
	p->nkeks = 0;
}

/* Opens a session on |slot| and logs the user in with the PIN from its
 * source (read now, wiped right after C_Login). */
static int open_login(struct p11 *p, char *msg, size_t msglen)
{
	char pin[KMS_PKCS11_PIN_MAX + 1];
	CK_RV rv = p->f->C_OpenSession(p->slot,
				       CKF_SERIAL_SESSION | CKF_RW_SESSION,
				       NULL, NULL, &p->sess);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_OpenSession", rv, NULL);
	int n = kms_pkcs11_pin_read(&p->cfg, pin, sizeof(pin), msg, msglen);
	if (n < 0) {
		p->f->C_CloseSession(p->sess);
		return n;
	}
	rv = p->f->C_Login(p->sess, CKU_USER, (CK_BYTE *)pin, (CK_ULONG)n);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		p->f->C_CloseSession(p->sess);
		const char *hint = "";
		if (rv == CKR_PIN_INCORRECT)
			hint = "wrong PIN for this token; check kms.pin_file "
			       "/ kms.pin_env";
		else if (rv == CKR_PIN_LOCKED)
			hint = "the user PIN is locked; the token's security "
			       "officer must reset it";
		return ckfail(msg, msglen, "C_Login", rv, hint);
	}
	p->connected = true;
	return 0;
}

/* (Re)connects: on a second connect the module is restarted first so it
 * sees the token again. A token missing now that was there before is an
 * outage (-ENODEV), one never seen a configuration error (-ENXIO). */
static int connect_token(struct p11 *p, char *msg, size_t msglen)
{
	int rc;
	if (p->connected)
		return 0;
	if (p->ever_connected) {
		CK_RV rv = mod_restart(p->mod);
		if (rv != CKR_OK)
			return ckfail(msg, msglen, "C_Initialize", rv,
				      "module restart failed (token store or "
				      "device gone?); will retry");
	}
	rc = find_slot(p->f, p->cfg.token, &p->slot, msg, msglen);
	if (rc == -ENXIO && p->ever_connected)
		return p11_fail(msg, msglen, -ENODEV,
			    "pkcs11: token \"%s\" is no longer present "
			    "(removed?); will retry", p->cfg.token);
	if (rc)
		return rc;
	rc = open_login(p, msg, msglen);
	if (rc)
		return rc;
	rc = pick_mech(p, msg, msglen);
	if (rc) {
		disconnect(p);
		return rc;
	}
	p->ever_connected = true;
	return 0;
}

/* After a failed call: drop the session when the error says the token or
 * session is gone, so the next call reconnects. */
static int after_error(struct p11 *p, int rc)
{
	if (rc == -ENODEV || rc == -EIO)
		disconnect(p);
	return rc;
}

static int bool_attr(struct p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t,
		     CK_BBOOL *v)
{
	struct ck_attribute a = { t, v, sizeof(*v) };
	CK_RV rv = p->f->C_GetAttributeValue(p->sess, h, &a, 1);
	return rv == CKR_OK ? 0 : ckr_errno(rv);
}

/* Looks the KEK |ref| up (cached per session) and checks that it cannot
 * leave the token. 0, -ENOKEY, -EPERM (extractable or not sensitive),
 * -EINVAL (two keys with that label), or a transport error. */
static int find_kek(struct p11 *p, const char *ref, CK_OBJECT_HANDLE *h,
		    char *msg, size_t msglen)
{
	for (unsigned i = 0; i < p->nkeks; i++)
		if (!strcmp(p->keks[i].ref, ref)) {
			*h = p->keks[i].h;
			return 0;
		}
	CK_ULONG cls = CKO_SECRET_KEY, kt = CKK_AES;
	CK_BBOOL tok = CK_TRUE;
	struct ck_attribute tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &tok, sizeof(tok) },
		{ CKA_LABEL, (void *)ref, strlen(ref) },
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv = p->f->C_FindObjectsInit(p->sess, tmpl, 4);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_FindObjectsInit", rv, NULL);
	rv = p->f->C_FindObjects(p->sess, found, 2, &n);
	p->f->C_FindObjectsFinal(p->sess);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_FindObjects", rv, NULL);
	if (n == 0)
		return p11_fail(msg, msglen, -ENOKEY,
			    "pkcs11: no KEK labelled \"%s\" in token \"%s\"; "
			    "create it (sealtap keys init --kek %s) or fix the "
			    "tenant's kek", ref, p->cfg.token, ref);
	if (n > 1)
		return p11_fail(msg, msglen, -EINVAL,
			    "pkcs11: more than one AES key labelled \"%s\" in "
			    "token \"%s\"; KEK labels must be unique", ref,
			    p->cfg.token);
	CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE;
	int rc = bool_attr(p, found[0], CKA_EXTRACTABLE, &extractable);
	if (rc == 0)
		rc = bool_attr(p, found[0], CKA_SENSITIVE, &sensitive);
	if (rc)
		return p11_fail(msg, msglen, rc,
			    "pkcs11: cannot read the attributes of KEK \"%s\"",
			    ref);
	if (extractable || !sensitive)
		return p11_fail(msg, msglen, -EPERM,
			    "pkcs11: KEK \"%s\" is %s; sealtap only uses keys "
			    "with CKA_EXTRACTABLE false and CKA_SENSITIVE true",
			    ref, extractable ? "extractable" : "not sensitive");
	if (p->nkeks < KEK_CACHE) {
		snprintf(p->keks[p->nkeks].ref, sizeof(p->keks[0].ref), "%s",
			 ref);
		p->keks[p->nkeks++].h = found[0];
	}
	*h = found[0];
	return 0;
}

/* Connects if needed and finds |ref|. */
static int prepare(struct p11 *p, const char *ref, CK_OBJECT_HANDLE *kek,
		   char *msg, size_t msglen)
{
	int rc = connect_token(p, msg, msglen);
	if (rc == 0)
		rc = find_kek(p, ref, kek, msg, msglen);
	return after_error(p, rc);
}

static void gcm_aad(const char *ref, CK_BYTE *aad, CK_ULONG *len)
{
	size_t pl = sizeof(GCM_AAD_PREFIX) - 1, rl = strlen(ref);
	memcpy(aad, GCM_AAD_PREFIX, pl);
	memcpy(aad + pl, ref, rl);
	*len = (CK_ULONG)(pl + rl);
}

/* RFC 5649 wrap: the DEK becomes a session object (not a token object,
 * gone when destroyed below or when the session ends) for C_WrapKey. */
static int wrap_kwp(struct p11 *p, CK_OBJECT_HANDLE kek, const uint8_t *dek,
		    size_t dek_len, struct kms_blob *out, char *msg,
		    size_t msglen)
{
	CK_ULONG cls = CKO_SECRET_KEY, kt = CKK_GENERIC_SECRET;
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	struct ck_attribute tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &f, sizeof(f) },
		{ CKA_PRIVATE, &t, sizeof(t) },
		{ CKA_SENSITIVE, &t, sizeof(t) },
		{ CKA_EXTRACTABLE, &t, sizeof(t) },
		{ CKA_VALUE, (void *)dek, dek_len },
	};
	CK_OBJECT_HANDLE obj;
	CK_RV rv = p->f->C_CreateObject(p->sess, tmpl, 7, &obj);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_CreateObject", rv,
			      "cannot stage the DEK for wrapping");
	struct ck_mechanism m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_ULONG len = KMS_BLOB_MAX - 1;
	rv = p->f->C_WrapKey(p->sess, &m, kek, obj, out->b + 1, &len);
	p->f->C_DestroyObject(p->sess, obj);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_WrapKey", rv, NULL);
	out->b[0] = BLOB_KWP;
	out->len = len + 1;
	return 0;
}

static int wrap_gcm(struct p11 *p, CK_OBJECT_HANDLE kek, const char *ref,
		    const uint8_t *dek, size_t dek_len, struct kms_blob *out,
		    char *msg, size_t msglen)
{
	CK_BYTE aad[sizeof(GCM_AAD_PREFIX) + KMS_REF_MAX];
	CK_ULONG aad_len;
	CK_BYTE *iv = out->b + 1;

	/* The token's RNG: the IV never repeats under one KEK with
	 * overwhelming probability (2^-32 after 2^32 wraps, far beyond the
	 * DEKs one KEK wraps). */
	CK_RV rv = p->f->C_GenerateRandom(p->sess, iv, GCM_IV_LEN);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_GenerateRandom", rv, NULL);
	gcm_aad(ref, aad, &aad_len);
	struct ck_gcm_params gp = { iv, GCM_IV_LEN, GCM_IV_LEN * 8, aad,
				    aad_len, GCM_TAG_LEN * 8 };
	struct ck_mechanism m = { CKM_AES_GCM, &gp, sizeof(gp) };
	rv = p->f->C_EncryptInit(p->sess, &m, kek);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_EncryptInit", rv, NULL);
	CK_ULONG len = KMS_BLOB_MAX - 1 - GCM_IV_LEN;
	rv = p->f->C_Encrypt(p->sess, (CK_BYTE *)dek, dek_len,
			     out->b + 1 + GCM_IV_LEN, &len);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_Encrypt", rv, NULL);
	out->b[0] = BLOB_GCM;
	out->len = 1 + GCM_IV_LEN + len;
	return 0;
}

static int p11_wrap(struct kms_backend *b, const char *ref,
		    const uint8_t *dek, size_t dek_len, struct kms_blob *out,
		    char *msg, size_t msglen)
{
	struct p11 *p = b->impl;
	CK_OBJECT_HANDLE kek;
	pthread_mutex_lock(&p->lock);
	int rc = prepare(p, ref, &kek, msg, msglen);
	/* SoftHSM2 2.6 unwraps an RFC 5649 blob of a key that is not a
	 * multiple of 8 bytes to its padded length: such keys go by GCM. */
	bool kwp = p->mech == CKM_AES_KEY_WRAP_PAD &&
		   (dek_len % 8 == 0 || !p->gcm_ok);
	if (rc == 0 && p->mech == CKM_AES_KEY_WRAP_PAD && dek_len % 8)
		rc = kwp ? p11_fail(msg, msglen, -EINVAL,
				    "pkcs11: a %zu-byte key cannot be wrapped "
				    "exactly with AES key wrap on this token",
				    dek_len)
			 : 0;
	if (rc == 0)
		rc = kwp ? wrap_kwp(p, kek, dek, dek_len, out, msg, msglen)
			 : wrap_gcm(p, kek, ref, dek, dek_len, out, msg,
				    msglen);
	if (rc)
		out->len = 0;
	rc = after_error(p, rc);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Reads the value of the transient object |obj| into |dek| and destroys
 * the object whatever happens. */
static int take_value(struct p11 *p, CK_OBJECT_HANDLE obj, uint8_t *dek,
		      size_t cap, size_t *dek_len, char *msg, size_t msglen)
{
	struct ck_attribute a = { CKA_VALUE, dek, cap };
	CK_RV rv = p->f->C_GetAttributeValue(p->sess, obj, &a, 1);
	p->f->C_DestroyObject(p->sess, obj);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_GetAttributeValue", rv,
			      "cannot read the unwrapped DEK");
	*dek_len = a.value_len;
	return 0;
}

/* Why unwrapping failed. SoftHSM2 reports a failed RFC 5649 integrity
 * check and a wrong GCM tag as CKR_GENERAL_ERROR; when the token still
 * answers (checked), the blob is what is wrong, not the device. */
static int open_failed(struct p11 *p, const char *fn, CK_RV rv, char *msg,
		       size_t msglen)
{
	struct ck_token_info ti;
	bool blob = rv == CKR_WRAPPED_KEY_INVALID ||
		    rv == CKR_WRAPPED_KEY_LEN_RANGE ||
		    rv == CKR_ENCRYPTED_DATA_INVALID ||
		    rv == CKR_ENCRYPTED_DATA_LEN_RANGE;
	if (!blob && (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED ||
		      rv == CKR_DATA_INVALID || rv == CKR_DATA_LEN_RANGE))
		blob = p->f->C_GetTokenInfo(p->slot, &ti) == CKR_OK;
	if (!blob)
		return ckfail(msg, msglen, fn, rv, NULL);
	return p11_fail(msg, msglen, -EBADMSG,
			"pkcs11: %s: %s (0x%lx): the blob does not unwrap "
			"under this KEK (damaged, or wrapped by another KEK)",
			fn, ckr_name(rv), rv);
}

static int unwrap_kwp(struct p11 *p, CK_OBJECT_HANDLE kek,
		      const struct kms_blob *in, uint8_t *dek, size_t cap,
		      size_t *dek_len, char *msg, size_t msglen)
{
	CK_ULONG cls = CKO_SECRET_KEY, kt = CKK_GENERIC_SECRET;
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	/* Session object, readable once: sensitive false so CKA_VALUE can be
	 * read into |dek|, destroyed right after. */
	struct ck_attribute tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &f, sizeof(f) },
		{ CKA_PRIVATE, &t, sizeof(t) },
		{ CKA_SENSITIVE, &f, sizeof(f) },
		{ CKA_EXTRACTABLE, &t, sizeof(t) },
	};
	struct ck_mechanism m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_OBJECT_HANDLE obj;
	CK_RV rv = p->f->C_UnwrapKey(p->sess, &m, kek, (CK_BYTE *)in->b + 1,
				     in->len - 1, tmpl, 6, &obj);
	if (rv != CKR_OK)
		return open_failed(p, "C_UnwrapKey", rv, msg, msglen);
	return take_value(p, obj, dek, cap, dek_len, msg, msglen);
}

static int unwrap_gcm(struct p11 *p, CK_OBJECT_HANDLE kek, const char *ref,
		      const struct kms_blob *in, uint8_t *dek, size_t cap,
		      size_t *dek_len, char *msg, size_t msglen)
{
	CK_BYTE aad[sizeof(GCM_AAD_PREFIX) + KMS_REF_MAX];
	CK_ULONG aad_len;
	if (in->len < 1 + GCM_IV_LEN + GCM_TAG_LEN + 1)
		return p11_fail(msg, msglen, -EPROTO,
			    "pkcs11: AES-GCM blob of %zu bytes is truncated",
			    in->len);
	gcm_aad(ref, aad, &aad_len);
	struct ck_gcm_params gp = { (CK_BYTE *)in->b + 1, GCM_IV_LEN,
				    GCM_IV_LEN * 8, aad, aad_len,
				    GCM_TAG_LEN * 8 };
	struct ck_mechanism m = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_RV rv = p->f->C_DecryptInit(p->sess, &m, kek);
	if (rv != CKR_OK)
		return ckfail(msg, msglen, "C_DecryptInit", rv, NULL);
	/* Some tokens (SoftHSM2) want room for ciphertext + tag even though
	 * the plaintext is shorter. The DEK goes straight to |dek| when it
	 * has that room (a cache slot does, for 32-byte DEKs), else through
	 * a stack buffer wiped at once. */
	size_t ct_len = in->len - 1 - GCM_IV_LEN;
	uint8_t tmp[KMS_BLOB_MAX];
	uint8_t *out = cap >= ct_len ? dek : tmp;
	CK_ULONG len = cap >= ct_len ? cap : sizeof(tmp);
	rv = p->f->C_Decrypt(p->sess, (CK_BYTE *)in->b + 1 + GCM_IV_LEN,
			     ct_len, out, &len);
	int rc = 0;
	if (rv != CKR_OK)
		rc = open_failed(p, "C_Decrypt", rv, msg, msglen);
	else if (len > cap)
		rc = p11_fail(msg, msglen, -ENOBUFS,
			      "pkcs11: the DEK (%lu bytes) does not fit in "
			      "%zu", len, cap);
	else if (out == tmp)
		memcpy(dek, tmp, len);
	if (out == tmp)
		OPENSSL_cleanse(tmp, sizeof(tmp));
	if (rc == 0)
		*dek_len = len;
	return rc;
}

static int p11_unwrap(struct kms_backend *b, const char *ref,
		      const struct kms_blob *in, uint8_t *dek, size_t cap,
		      size_t *dek_len, char *msg, size_t msglen)
{
	struct p11 *p = b->impl;
	CK_OBJECT_HANDLE kek;
	int rc;

	if (in->len < 2 || (in->b[0] != BLOB_KWP && in->b[0] != BLOB_GCM)) {
		OPENSSL_cleanse(dek, cap);
		return p11_fail(msg, msglen, -EPROTO,
			    "pkcs11: not a pkcs11 blob (format byte 0x%02x, "
			    "%zu bytes)", in->len ? in->b[0] : 0, in->len);
	}
	pthread_mutex_lock(&p->lock);
	rc = prepare(p, ref, &kek, msg, msglen);
	if (rc == 0 && in->b[0] == BLOB_KWP)
		rc = unwrap_kwp(p, kek, in, dek, cap, dek_len, msg, msglen);
	else if (rc == 0)
		rc = unwrap_gcm(p, kek, ref, in, dek, cap, dek_len, msg,
				msglen);
	if (rc) {
		OPENSSL_cleanse(dek, cap);
		*dek_len = 0;
	}
	rc = after_error(p, rc);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static int p11_health(struct kms_backend *b, char *msg, size_t msglen)
{
	struct p11 *p = b->impl;
	struct ck_token_info ti;
	unsigned char info[64]; /* CK_SESSION_INFO: 4 CK_ULONGs */

	pthread_mutex_lock(&p->lock);
	int rc = connect_token(p, msg, msglen);
	if (rc == 0) {
		CK_RV rv = p->f->C_GetSessionInfo(p->sess, info);
		if (rv == CKR_OK)
			rv = p->f->C_GetTokenInfo(p->slot, &ti);
		if (rv != CKR_OK)
			rc = ckfail(msg, msglen, "health", rv, NULL);
		else if (ti.flags & CKF_USER_PIN_LOCKED)
			rc = p11_fail(msg, msglen, -EKEYREVOKED,
				  "pkcs11: the user PIN of token \"%s\" is "
				  "locked", p->cfg.token);
	}
	rc = after_error(p, rc);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static void cfg_free(struct kms_pkcs11_cfg *c)
{
	free((char *)c->module);
	free((char *)c->token);
	free((char *)c->pin_file);
	free((char *)c->pin_env);
	memset(c, 0, sizeof(*c));
}

static void p11_close(struct kms_backend *b)
{
	struct p11 *p = b->impl;
	pthread_mutex_lock(&p->lock);
	if (p->connected) {
		p->f->C_Logout(p->sess);
		disconnect(p);
	}
	pthread_mutex_unlock(&p->lock);
	mod_release(p->mod);
	cfg_free(&p->cfg);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct kms_backend_ops p11_ops = {
	.name = "pkcs11",
	.wrap = p11_wrap,
	.unwrap = p11_unwrap,
	.health = p11_health,
	.close = p11_close,
};

static int cfg_check(const struct kms_pkcs11_cfg *cfg, char *err,
		     size_t errlen)
{
	if (!cfg || !cfg->module || !cfg->module[0])
		return p11_fail(err, errlen, -EINVAL,
			    "pkcs11: no module path (kms.pkcs11_module)");
	if (!cfg->token || !cfg->token[0] || strlen(cfg->token) > LABEL_LEN)
		return p11_fail(err, errlen, -EINVAL,
			    "pkcs11: token label must be 1..%d characters "
			    "(kms.token_label)", LABEL_LEN);
	return 0;
}

static int cfg_copy(const struct kms_pkcs11_cfg *in, struct kms_pkcs11_cfg *out)
{
	out->module = strdup(in->module);
	out->token = strdup(in->token);
	out->pin_file = strdup(in->pin_file ? in->pin_file : "");
	out->pin_env = strdup(in->pin_env ? in->pin_env : "");
	if (!out->module || !out->token || !out->pin_file || !out->pin_env) {
		cfg_free(out);
		return -ENOMEM;
	}
	return 0;
}

int kms_pkcs11_open(const struct kms_pkcs11_cfg *cfg, struct kms_backend **out,
		    char *err, size_t errlen)
{
	int rc = cfg_check(cfg, err, errlen);
	*out = NULL;
	if (rc)
		return rc;
	struct p11 *p = calloc(1, sizeof(*p));
	if (!p)
		return p11_fail(err, errlen, -ENOMEM, "out of memory");
	if (cfg_copy(cfg, &p->cfg)) {
		free(p);
		return p11_fail(err, errlen, -ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->lock, NULL);
	p->base.ops = &p11_ops;
	p->base.impl = p;
	rc = mod_acquire(cfg->module, &p->mod, err, errlen);
	if (rc == 0) {
		p->f = p->mod->f;
		rc = connect_token(p, err, errlen);
	}
	if (rc) {
		mod_release(p->mod);
		cfg_free(&p->cfg);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return rc;
	}
	*out = &p->base;
	return 0;
}

const char *kms_pkcs11_mechanism(const struct kms_backend *b)
{
	const struct p11 *p = b->impl;
	return p->mech == CKM_AES_KEY_WRAP_PAD ? "CKM_AES_KEY_WRAP_PAD"
					       : "CKM_AES_GCM";
}

/* ---- development setup -------------------------------------------------------- */

int kms_pkcs11_kek_ensure(struct kms_backend *b, const char *ref,
			  bool *created, char *err, size_t errlen)
{
	struct p11 *p = b->impl;
	CK_OBJECT_HANDLE h;

	*created = false;
	if (!ref || !ref[0] || strlen(ref) > KMS_REF_MAX)
		return p11_fail(err, errlen, -EINVAL,
			    "KEK reference must be 1..%d characters",
			    KMS_REF_MAX);
	pthread_mutex_lock(&p->lock);
	int rc = prepare(p, ref, &h, err, errlen);
	if (rc != -ENOKEY)
		goto out;
	CK_ULONG cls = CKO_SECRET_KEY, kt = CKK_AES, len = KEK_LEN;
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	struct ck_attribute tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_LABEL, (void *)ref, strlen(ref) },
		{ CKA_TOKEN, &t, sizeof(t) },
		{ CKA_PRIVATE, &t, sizeof(t) },
		{ CKA_SENSITIVE, &t, sizeof(t) },
		{ CKA_EXTRACTABLE, &f, sizeof(f) },
		{ CKA_ENCRYPT, &t, sizeof(t) },
		{ CKA_DECRYPT, &t, sizeof(t) },
		{ CKA_WRAP, &t, sizeof(t) },
		{ CKA_UNWRAP, &t, sizeof(t) },
		{ CKA_SIGN, &f, sizeof(f) },
		{ CKA_VERIFY, &f, sizeof(f) },
		{ CKA_DERIVE, &f, sizeof(f) },
		{ CKA_MODIFIABLE, &f, sizeof(f) },
	};
	struct ck_mechanism m = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_RV rv = p->f->C_GenerateKey(p->sess, &m, tmpl,
				       sizeof(tmpl) / sizeof(tmpl[0]), &h);
	if (rv != CKR_OK) {
		rc = ckfail(err, errlen, "C_GenerateKey", rv,
			    "cannot create the KEK");
		goto out;
	}
	*created = true;
	rc = 0;
out:
	rc = after_error(p, rc);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* A token without a label: the slot SoftHSM2 (and most HSMs) keep free
 * for C_InitToken. */
static int find_free_slot(struct ck_function_list *f, CK_SLOT_ID *slot,
			  char *err, size_t errlen)
{
	CK_SLOT_ID slots[MAX_SLOTS];
	CK_ULONG n = MAX_SLOTS;
	struct ck_token_info ti;
	CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK)
		return ckfail(err, errlen, "C_GetSlotList", rv, NULL);
	for (CK_ULONG i = 0; i < n; i++)
		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			*slot = slots[i];
			return 0;
		}
	return p11_fail(err, errlen, -ENOSPC,
		    "pkcs11: no free slot to create a token in");
}

/* Sets the user PIN of the new token in |slot| as its security officer. */
static int init_user_pin(struct ck_function_list *f, CK_SLOT_ID slot,
			 const char *so_pin, size_t so_len,
			 const struct kms_pkcs11_cfg *cfg, char *err,
			 size_t errlen)
{
	char pin[KMS_PKCS11_PIN_MAX + 1];
	CK_SESSION_HANDLE s;
	CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				    NULL, NULL, &s);
	if (rv != CKR_OK)
		return ckfail(err, errlen, "C_OpenSession", rv, NULL);
	int n = kms_pkcs11_pin_read(cfg, pin, sizeof(pin), err, errlen);
	int rc = n < 0 ? n : 0;
	if (rc == 0) {
		rv = f->C_Login(s, CKU_SO, (CK_BYTE *)so_pin, so_len);
		if (rv == CKR_OK) {
			rv = f->C_InitPIN(s, (CK_BYTE *)pin, (CK_ULONG)n);
			f->C_Logout(s);
		}
		if (rv != CKR_OK)
			rc = ckfail(err, errlen, "C_InitPIN", rv,
				    "cannot set the user PIN");
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	f->C_CloseSession(s);
	return rc;
}

int kms_pkcs11_token_init(const struct kms_pkcs11_cfg *cfg, bool *created,
			  char *err, size_t errlen)
{
	struct p11_module *m = NULL;
	CK_SLOT_ID slot;
	char so_pin[33];
	unsigned char rnd[16];
	CK_BYTE label[LABEL_LEN];

	*created = false;
	int rc = cfg_check(cfg, err, errlen);
	if (rc == 0)
		rc = mod_acquire(cfg->module, &m, err, errlen);
	if (rc)
		return rc;
	rc = find_slot(m->f, cfg->token, &slot, err, errlen);
	if (rc != -ENXIO)
		goto out; /* there already, or the module failed */
	rc = find_free_slot(m->f, &slot, err, errlen);
	if (rc)
		goto out;
	/* A random SO PIN nobody keeps: this is a development token, and
	 * deleting its directory is the way to start over. */
	if (RAND_priv_bytes(rnd, sizeof(rnd)) != 1) {
		rc = p11_fail(err, errlen, -EIO, "no randomness for the SO PIN");
		goto out;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(so_pin + 2 * i, 3, "%02x", rnd[i]);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	pad_label(cfg->token, label);
	CK_RV rv = m->f->C_InitToken(slot, (CK_BYTE *)so_pin, 32, label);
	if (rv != CKR_OK) {
		rc = ckfail(err, errlen, "C_InitToken", rv,
			    "cannot create the token; is the token directory "
			    "writable?");
		goto wipe;
	}
	rc = find_slot(m->f, cfg->token, &slot, err, errlen);
	if (rc == 0)
		rc = init_user_pin(m->f, slot, so_pin, 32, cfg, err, errlen);
	if (rc == 0)
		*created = true;
wipe:
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
out:
	mod_release(m);
	return rc;
}
