/* Writing seed files for the fuzz targets' corpora (each target writes its
 * own when FUZZ_<NAME>_WRITE_SEEDS names a directory). Header-only. */
#ifndef SEALTAP_FUZZ_SEED_FILE_H
#define SEALTAP_FUZZ_SEED_FILE_H

#include <stdbool.h>
#include <stdio.h>

/* Writes |dir|/|name|: |a| then |b| (either may be empty). False, with
 * the reason on stderr, if the file cannot be written. */
static inline bool fuzz_seed_write(const char *dir, const char *name,
				   const void *a, size_t al, const void *b,
				   size_t bl)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(a, 1, al, f) == al && fwrite(b, 1, bl, f) == bl;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok)
		perror(path);
	return ok;
}

#endif
