/* Small helpers shared by every module. Types and macros only. */
#ifndef SEALTAP_COMMON_H
#define SEALTAP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ST_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ST_CACHE_LINE 64
#define ST_CACHE_ALIGNED __attribute__((aligned(ST_CACHE_LINE)))
#define ST_UNUSED __attribute__((unused))
#define ST_LIKELY(x) __builtin_expect(!!(x), 1)
#define ST_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ST_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ST_MAX(a, b) ((a) > (b) ? (a) : (b))

#define ST_NS_PER_SEC 1000000000ull
#define ST_NS_PER_MS 1000000ull

/* Wall clock (CLOCK_REALTIME) and monotonic clock, in ns. */
static inline uint64_t st_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * ST_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static inline uint64_t st_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * ST_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* FNV-1a of a header or field name, ASCII-lower-cased when |ci|: the
 * hash of the policy's name tables and of ext_proc's grouping of header
 * lines by name. */
static inline uint32_t st_name_hash(const uint8_t *s, size_t n, int ci)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (ci && c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + 32);
		h = (h ^ c) * 16777619u;
	}
	return h;
}

/* Directions of a flow: index into per-direction arrays. Direction 0 is the
 * side whose (address, port) sorts lower in the canonical key; it says
 * nothing about client or server (see flow.h for roles). */
#define ST_DIR_0 0
#define ST_DIR_1 1

#endif
