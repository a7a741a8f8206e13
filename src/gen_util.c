/* sealtap gen helpers: the seeded PRNG and a growable byte buffer.
 *
 * Every random choice of a run comes from gen_rng, never from time,
 * addresses or iteration order, so that the same options and seed give a
 * byte-identical capture. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gen_priv.h"

/* splitmix64: recommended by the xoshiro authors to expand a 64-bit seed
 * into a full state (no all-zero state, well mixed bits). */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void gen_rng_seed(struct gen_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed;
	/* Mix the seed before adding the stream so that (seed, stream + 1)
	 * and (seed + 1, stream) do not share a sequence. */
	uint64_t y = splitmix64(&x) ^ (stream * 0xd1b54a32d192ed03ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&y);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** 1.0 (Blackman & Vigna). */
uint64_t gen_rng_next(struct gen_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Lemire's multiply-and-reject: unbiased, one multiplication in the
 * common case. */
uint64_t gen_rng_below(struct gen_rng *r, uint64_t n)
{
	unsigned __int128 m = (unsigned __int128)gen_rng_next(r) * n;
	uint64_t low = (uint64_t)m;
	if (low < n) {
		uint64_t threshold = -n % n;
		while (low < threshold) {
			m = (unsigned __int128)gen_rng_next(r) * n;
			low = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

uint64_t gen_rng_range(struct gen_rng *r, const struct gen_range *g)
{
	uint64_t span = g->hi - g->lo + 1;
	if (span == 0) /* the full 64-bit range */
		return gen_rng_next(r);
	return g->lo + gen_rng_below(r, span);
}

bool gen_rng_chance(struct gen_rng *r, uint32_t ppm)
{
	if (ppm == 0) /* draw nothing: options that are off cost no draws */
		return false;
	return gen_rng_below(r, GEN_PPM) < ppm;
}

void gen_rng_string(struct gen_rng *r, char *dst, size_t n,
		    const char *alphabet)
{
	size_t k = strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		dst[i] = alphabet[gen_rng_below(r, k)];
}

int gen_buf_append(struct gen_buf *b, const void *data, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

void gen_buf_fini(struct gen_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
