/* Tests for src/capture_pcap.c: reading a capture leaves no packet bytes
 * where a core dump would write them.
 *
 * A pcap file is written from secret memory (so the test's own copy is not
 * found), its packets each carrying a distinct 16-byte random piece. The
 * file is then read through capture_pcap (streamed) and capture_preload;
 * every mapping a core dump would contain is searched for the pieces
 * (smaps.h, scan_dumpable):
 *   - while the file is open, none of the packets already consumed is
 *     found (libpcap's stdio buffer is ours and not dumped, each packet in
 *     libpcap's read buffer is wiped at the next read);
 *   - after closing, and after a preload, none at all.
 * A piece planted on the ordinary heap first proves the search finds one;
 * every packet is checked to arrive with its piece, so the bytes really
 * went through the reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include "sealtap/capture.h"
#include "sealtap/decode.h"
#include "sealtap/mem.h"
#include "sealtap/mem_secret.h"
#include "smaps.h"

#define NPKT 48
#define PIECE_AT 64 /* offset of the piece in each frame: in the payload */

struct fixture {
	char path[64];
	uint8_t *pieces; /* NPKT * DUMP_PIECE, secret memory */
	uint8_t *scan;   /* scan_dumpable's read buffer, secret memory */
};

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* the file is written in host order, as pcap allows */
}

/* Frame |i|: Ethernet, IPv4, TCP (10.0.0.1:40000+i -> 10.0.0.2:80), then
 * a payload of filler with the piece in it; lengths vary so libpcap's
 * buffer sees small and large packets. Real headers matter: the decoder
 * copies addresses out of a packet (into a flow key on the stack), and
 * a piece where it expects them would be copied too. */
static size_t frame(uint8_t *out, const uint8_t *piece, unsigned i)
{
	size_t len = PIECE_AT + DUMP_PIECE + 32 + (i * 97) % 1400;
	memset(out, 0x61 + (int)(i % 20), len);
	static const uint8_t eth[14] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1,
					 0x08, 0x00 };
	memcpy(out, eth, sizeof(eth));
	uint8_t *ip = out + 14, *tcp = ip + 20;
	uint16_t tot = (uint16_t)(len - 14);
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
	ip[8] = 64, ip[9] = 6;
	ip[12] = 10, ip[15] = 1; /* 10.0.0.1 */
	ip[16] = 10, ip[19] = 2; /* 10.0.0.2 */
	uint16_t sport = (uint16_t)(40000 + i);
	tcp[0] = (uint8_t)(sport >> 8), tcp[1] = (uint8_t)sport;
	tcp[3] = 80;
	tcp[7] = 1;            /* seq */
	tcp[12] = 5 << 4;      /* data offset */
	tcp[13] = 0x18;        /* PSH, ACK */
	tcp[14] = 0xff;        /* window */
	memcpy(out + PIECE_AT, piece, DUMP_PIECE);
	return len;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->pieces = mem_secret_alloc(NPKT * DUMP_PIECE);
	f->scan = mem_secret_alloc(1 << 20);
	assert_non_null(f->pieces);
	assert_non_null(f->scan);
	assert_int_equal(getrandom(f->pieces, NPKT * DUMP_PIECE, 0),
			 NPKT * DUMP_PIECE);
	size_t cap = 24 + NPKT * (16 + 2048);
	uint8_t *file = mem_secret_alloc(cap);
	assert_non_null(file);
	const uint16_t version[2] = { 2, 4 };
	put32(file, 0xa1b2c3d4);
	memcpy(file + 4, version, 4);
	memset(file + 8, 0, 8);
	put32(file + 16, 65535);
	put32(file + 20, 1); /* DLT_EN10MB */
	size_t n = 24;
	for (unsigned i = 0; i < NPKT; i++) {
		size_t len = frame(file + n + 16, f->pieces + i * DUMP_PIECE, i);
		put32(file + n, 1700000000u + i);
		put32(file + n + 4, i);
		put32(file + n + 8, (uint32_t)len);
		put32(file + n + 12, (uint32_t)len);
		n += 16 + len;
	}
	snprintf(f->path, sizeof(f->path), "/tmp/sealtap-pcap.XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, file, n), (ssize_t)n);
	close(fd);
	mem_secret_free(file);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unlink(f->path);
	mem_secret_free(f->pieces);
	mem_secret_free(f->scan);
	free(f);
	return 0;
}

/* The search finds a piece on the ordinary heap (else "none found" would
 * prove nothing). */
static void test_search_finds_a_planted_piece(void **state)
{
	struct fixture *f = *state;
	uint8_t *heap = malloc(256);
	assert_non_null(heap);
	memcpy(heap + 100, f->pieces + 5 * DUMP_PIECE, DUMP_PIECE);
	int hits = scan_dumpable(f->pieces + 5 * DUMP_PIECE, 1, f->scan, 1 << 20);
	explicit_bzero(heap, 256);
	free(heap);
	assert_true(hits >= 1);
}

static void test_streamed_read_leaves_no_packet(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct capture_pcap *p;
	assert_int_equal(capture_pcap_open(f->path, &p, err, sizeof(err)), 0);
	const uint8_t *d;
	uint32_t cl, wl;
	uint64_t ts;
	unsigned n = 0;
	int rc;
	while ((rc = capture_pcap_next(p, &d, &cl, &wl, &ts, err,
				       sizeof(err))) == 1) {
		assert_true(n < NPKT);
		assert_true(cl >= PIECE_AT + DUMP_PIECE);
		assert_memory_equal(d + PIECE_AT, f->pieces + n * DUMP_PIECE,
				    DUMP_PIECE);
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, NPKT);
	/* Open, the last packet handed out may still be in use: every
	 * earlier one must be gone. */
	assert_int_equal(scan_dumpable(f->pieces, NPKT - 1, f->scan, 1 << 20),
			 0);
	capture_pcap_close(p);
	assert_int_equal(scan_dumpable(f->pieces, NPKT, f->scan, 1 << 20), 0);
}

static void test_preload_leaves_no_packet(void **state)
{
	struct fixture *f = *state;
	char err[256];
	const char *paths[] = { f->path };
	struct decode_cfg dc = DECODE_CFG_DEFAULT;
	struct capture_preload *pl;
	assert_int_equal(capture_preload_load(paths, 1, &dc, &pl, err,
					      sizeof(err)),
			 0);
	assert_int_equal(scan_dumpable(f->pieces, NPKT, f->scan, 1 << 20), 0);
	capture_preload_free(pl);
}

int main(void)
{
	/* As in sealtap, whose threads that handle packets all have stacks
	 * left out of dumps: a library's first call through a lazily bound
	 * PLT entry runs the dynamic linker's trampoline, which saves every
	 * vector register (with the packet bytes memcpy left there) on the
	 * calling thread's stack (_dl_runtime_resolve_xsavec). What is
	 * tested here is the heap, stdio and libpcap's buffers. */
	assert_int_equal(mem_nodump_stack(), 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_search_finds_a_planted_piece),
		cmocka_unit_test(test_streamed_read_leaves_no_packet),
		cmocka_unit_test(test_preload_leaves_no_packet),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
