/* A DEK cache with test keys, for tests and fuzz targets that seal without
 * a KMS: each named tenant gets a DEK of 32 bytes of |fill|, installed and
 * published the way keys_runtime.c does after an unwrap; a tenant listed
 * as failed is marked failed closed. The sealing engine refuses a second
 * context for the same (tenant, key id, nonce fixed field) in one process
 * (docs/tokens.md), so every install gets a fresh key id "test-<n>" and
 * instance <n>.
 *
 * Header-only (static functions), like h2_json.h. */
#ifndef SEALTAP_TEST_TESTKEYS_H
#define SEALTAP_TEST_TESTKEYS_H

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sealtap/keys.h"

/* Key id of the DEK the last testkeys_new() installed for a tenant. */
static char testkeys_id[32];

/* A cache for |workers| readers with |tenants| (|n|) holding test DEKs of
 * |fill| bytes and |failed| (|nf|) failed closed. NULL on failure (with a
 * message on stderr). Free with keys_cache_free(). */
static struct keys_cache *testkeys_new(unsigned workers,
				       const char *const *tenants, unsigned n,
				       uint8_t fill, const char *const *failed,
				       unsigned nf)
{
	static unsigned seq;
	struct keys_cache_cfg cfg = {
		.workers = workers, .max_tenants = 16,
		.max_seals = 1ull << 62, .max_age_ns = 3600ull * 1000000000ull,
		.rotate_at_pct = 90, .mem = KEYS_MEM_AUTO,
	};
	struct keys_cache *c;
	char err[256];
	if (keys_cache_new(&cfg, &c, err, sizeof(err))) {
		fprintf(stderr, "testkeys: %s\n", err);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t *buf;
		size_t cap;
		int slot = keys_cache_slot_get(c, &buf, &cap);
		if (slot < 0)
			goto fail;
		memset(buf, fill, SEAL_DEK_LEN);
		snprintf(testkeys_id, sizeof(testkeys_id), "test-%u", ++seq);
		struct keys_dek_meta m = { testkeys_id, seq, (int64_t)time(NULL),
					   0 };
		if (keys_cache_install(c, tenants[i], slot, &m))
			goto fail;
	}
	for (unsigned i = 0; i < nf; i++)
		if (keys_cache_fail(c, failed[i], true))
			goto fail;
	if (keys_cache_publish(c))
		goto fail;
	return c;
fail:
	fprintf(stderr, "testkeys: cannot install the test keys\n");
	keys_cache_free(c);
	return NULL;
}

#endif
