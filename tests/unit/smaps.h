/* Reading this process's /proc/self/smaps in tests: the VmFlags of the
 * mapping that holds an address ("dd" = not dumped, "wf" = wiped on fork,
 * "lo" = locked ...). Header-only (static functions), like testkeys.h;
 * include after cmocka.h. */
#ifndef SEALTAP_TEST_SMAPS_H
#define SEALTAP_TEST_SMAPS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sealtap/mem_secret.h"

/* VmFlags of the mapping holding |addr|, into |flags| (|cap| bytes). False
 * if no mapping holds it. */
__attribute__((unused)) static bool vmflags_of(const void *addr, char *flags,
					       size_t cap)
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

/* The length of the pieces scan_dumpable() looks for. */
#define DUMP_PIECE 16

/* Searches every mapping a core dump would contain (readable, not "dd",
 * not device/pfn memory, not the vvar/vsyscall pages) for any of the |n|
 * 16-byte |pieces|, reading through /proc/self/mem into |buf| (secret
 * memory, so the copies are not searched again). Mappings over 1 GiB are
 * skipped: under ASan that is the shadow, which holds no data. Returns the
 * number of hits; prints each. */
__attribute__((unused)) static int
scan_dumpable(const uint8_t *pieces, size_t n, uint8_t *buf, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	struct map {
		unsigned long lo, hi;
		char perms[5];
		char name[128];
		bool dump;
	} *maps = mem_secret_calloc(4096, sizeof(*maps));
	size_t nm = 0;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    strchr(line, ' ') == line + strcspn(line, " ")) {
			if (nm == 4096)
				break;
			struct map *m = &maps[nm++];
			m->lo = lo;
			m->hi = hi;
			memcpy(m->perms, perms, 5);
			char *name = strrchr(line, ' ');
			snprintf(m->name, sizeof(m->name), "%s",
				 name && name[1] != '\n' ? name + 1 : "(anon)\n");
			m->name[strcspn(m->name, "\n")] = '\0';
			m->dump = perms[0] == 'r' && hi - lo <= (1ul << 30) &&
				  strcmp(m->name, "[vvar]") &&
				  strcmp(m->name, "[vsyscall]");
			continue;
		}
		if (nm && !strncmp(line, "VmFlags:", 8)) {
			struct map *m = &maps[nm - 1];
			if (has_flag(line + 7, "dd") || has_flag(line + 7, "io") ||
			    has_flag(line + 7, "pf"))
				m->dump = false;
		}
	}
	fclose(f);
	int fd = open("/proc/self/mem", O_RDONLY);
	assert_true(fd >= 0);
	int hits = 0;
	size_t scanned = 0;
	for (size_t i = 0; i < nm; i++) {
		if (!maps[i].dump)
			continue;
		/* Chunks overlap by DUMP_PIECE - 1 bytes so nothing straddling a
		 * chunk boundary is missed. */
		for (unsigned long a = maps[i].lo; a < maps[i].hi;) {
			size_t want = maps[i].hi - a < cap ? maps[i].hi - a : cap;
			ssize_t got = pread(fd, buf, want, (off_t)a);
			if (got <= 0)
				break; /* unreadable (guard page): skip the rest */
			scanned += (size_t)got;
			for (size_t k = 0; k < n; k++) {
				const uint8_t *at = buf;
				size_t left = (size_t)got;
				while (left >= DUMP_PIECE &&
				       (at = memmem(at, left, pieces + k * DUMP_PIECE,
						    DUMP_PIECE))) {
					print_message("  piece %zu at %#lx in %s %s\n",
						      k, a + (unsigned long)(at - buf),
						      maps[i].perms, maps[i].name);
					hits++;
					at++;
					left = (size_t)got - (size_t)(at - buf);
				}
			}
			if ((size_t)got < DUMP_PIECE || a + (size_t)got >= maps[i].hi)
				break;
			a += (size_t)got - (DUMP_PIECE - 1);
		}
	}
	close(fd);
	print_message("  searched %zu MB of dumpable memory for %zu pieces: %d "
		      "found\n", scanned >> 20, n, hits);
	mem_secret_free(maps);
	return hits;
}

#endif
