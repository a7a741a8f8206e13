/* libFuzzer target for the content detectors' fast scan: pol_detect_run()
 * (candidate positions found 16 bytes at a time) must make exactly the
 * emit() calls of pol_detect_run_ref() (one byte at a time).
 *
 * Input format:
 *
 *   input := mask (u8) stop (u8) text
 *   Both scanners run the detectors of |mask| (bits 1 << POLICY_DET_*;
 *   the top bit, outside POLICY_DET_ALL, must be ignored) over |text|;
 *   emit() returns false on call number |stop| (0: never).
 *
 * Invariants (abort on violation): the same (offset, length, detector)
 * calls in the same order; spans in bounds, non-empty, sorted, disjoint.
 * The text is copied to a heap buffer of exactly its size, so ASan sees
 * any read past it.
 *
 * Seeds: tests/fuzz/seeds/detect, written by this target itself:
 *
 *   FUZZ_DETECT_WRITE_SEEDS=tests/fuzz/seeds/detect \
 *       build-fuzz/tests/fuzz/fuzz_detect -runs=0
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/policy_priv.h"
#include "seed_file.h"

#define CALLS_MAX 256

struct calls {
	uint32_t off[CALLS_MAX], len[CALLS_MAX];
	unsigned det[CALLS_MAX];
	unsigned n, stop;
};

static bool record(void *ctx, uint32_t off, uint32_t len, unsigned det)
{
	struct calls *c = ctx;
	if (c->n == CALLS_MAX)
		return false;
	c->off[c->n] = off;
	c->len[c->n] = len;
	c->det[c->n] = det;
	return ++c->n != c->stop;
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz_detect: invariant violated: %s\n", what);
	abort();
}

static void write_seeds(const char *dir)
{
#define S(x) { x, sizeof(x) - 1 } /* NUL bytes inside */
	static const struct {
		const char *s;
		size_t len;
	} seeds[] = {
		S("\x7f\x00mail bob@example.com card 4111 1111 1111 1111 ssn "
		  "123-45-6789 iban DE89 3704 0044 0532 0130 00"),
		S("\x7f\x02t=eyJhbGciOiJub25lIn0.e30.&a=Authorization: Bearer "
		  "abcdefgh12345 x@y.org"),
		S("\xff\x00" "AKIAIOSFODNN7EXAMPLE AIzaSyA1234567890abcdefghijklmn"
		  "opqrs_-x sk_live_4eC39HqLyjWDarjtT1zdp7dc ghp_0123456789abcde"
		  "fghijABCDEFGHIJ012345 github_pat_11ABCDEFG0123456789_abcdefgh"
		  "ijKLMNOPQRSTUV glpat-0123456789abcdefGHIJ xoxb-123456789012-"
		  "abcdef"),
		S("\x41\x00\x80\xff\x00\x01@@a@b.co\xc3\xa9 4111-1111-1111-1111"
		  "\x00GB82WEST12345698765432\x7f"),
		S("\x01\x01" "4111111111111111@example.com 5500 0000 0000 0004"),
	};
#undef S
	for (size_t i = 0; i < sizeof(seeds) / sizeof(*seeds); i++) {
		char name[32];
		snprintf(name, sizeof(name), "seed-%02zu", i);
		if (!fuzz_seed_write(dir, name, seeds[i].s, seeds[i].len, "", 0))
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool seeded;
	static struct calls fast, ref;
	if (!seeded) {
		const char *dir = getenv("FUZZ_DETECT_WRITE_SEEDS");
		if (dir)
			write_seeds(dir);
		seeded = true;
	}
	if (size < 2)
		return 0;
	unsigned mask = data[0], stop = data[1];
	size_t n = size - 2;
	uint8_t *t = malloc(n ? n : 1);
	memcpy(t, data + 2, n);
	fast.n = ref.n = 0;
	fast.stop = ref.stop = stop;
	pol_detect_run(t, n, mask, record, &fast);
	pol_detect_run_ref(t, n, mask, record, &ref);
	if (fast.n != ref.n)
		die("fast and reference scans emit different counts");
	for (unsigned i = 0; i < ref.n; i++) {
		if (fast.off[i] != ref.off[i] || fast.len[i] != ref.len[i] ||
		    fast.det[i] != ref.det[i])
			die("fast and reference scans emit different spans");
		if (ref.len[i] == 0 || (size_t)ref.off[i] + ref.len[i] > n ||
		    ref.det[i] >= POLICY_DET_COUNT ||
		    !(mask & (1u << ref.det[i])))
			die("span");
		if (i && ref.off[i - 1] + ref.len[i - 1] > ref.off[i])
			die("spans overlap or out of order");
	}
	if (stop && ref.n > stop)
		die("emit() returned false but the scan went on");
	free(t);
	return 0;
}
