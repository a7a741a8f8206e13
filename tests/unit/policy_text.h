/* Loading a policy from YAML text in tests. Header-only (a static
 * function), like testkeys.h; include after cmocka.h. */
#ifndef SEALTAP_TEST_POLICY_TEXT_H
#define SEALTAP_TEST_POLICY_TEXT_H

#include <string.h>

#include "sealtap/policy.h"

/* The policy in YAML |text|; the test fails with the loader's error. The
 * caller frees it with policy_free(). */
__attribute__((unused)) static struct policy *load(const char *text)
{
	char err[512];
	struct policy *p = policy_load_text("test.yaml", text, strlen(text),
					    err, sizeof(err));
	if (!p)
		print_error("%s\n", err);
	assert_non_null(p);
	return p;
}

#endif
