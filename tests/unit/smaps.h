/* Reading this process's /proc/self/smaps in tests: the VmFlags of the
 * mapping that holds an address ("dd" = not dumped, "wf" = wiped on fork,
 * "lo" = locked ...). Header-only (static functions), like testkeys.h;
 * include after cmocka.h. */
#ifndef SEALTAP_TEST_SMAPS_H
#define SEALTAP_TEST_SMAPS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* VmFlags of the mapping holding |addr|, into |flags| (|cap| bytes). False
 * if no mapping holds it. */
static bool vmflags_of(const void *addr, char *flags, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	uintptr_t a = (uintptr_t)addr;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, ' ') == line + strcspn(line, " ")) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			if (snprintf(flags, cap, "%s", line + 8) >= (int)cap)
				flags[cap - 1] = '\0';
			fclose(f);
			return true;
		}
	}
	fclose(f);
	return false;
}

/* True if the VmFlags text |flags| has the two-letter flag |f|. */
static bool has_flag(const char *flags, const char *f)
{
	char want[8];
	snprintf(want, sizeof(want), " %s", f);
	return strstr(flags, want) != NULL;
}

#endif
