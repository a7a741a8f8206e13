/* libFuzzer target: ProcessingRequest decoding and the ext_proc exchange
 * state machine (extproc_stream.c) with the policy decider
 * (extproc_policy.c): the built-in policy, and a DEK cache holding a test
 * key for its tenant, so values are really sealed and tokenized.
 *
 * Input: messages as [2 bytes big-endian length][bytes], all fed to one
 * exchange in order (so phase order, observability mode, full duplex
 * buffering and immediate responses are reached), then the end of input
 * and the record. Every reply must be a well-framed ProcessingResponse
 * that decodes; every record must be one valid JSON object. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wmissing-braces"
#include "ext_proc.pb-c.h"
#include "json_check.h"
#include "sealtap/extproc.h"
#include "testkeys.h"

static struct extproc_counters ctr;
static struct extproc_ctx ctx;
static struct extproc_buf out, rec;

static void check_replies(void)
{
	size_t off = 0;
	while (off < out.len) {
		if (out.len - off < 5)
			abort();
		uint32_t n = (uint32_t)out.p[off + 1] << 24 | (uint32_t)out.p[off + 2] << 16 |
			     (uint32_t)out.p[off + 3] << 8 | out.p[off + 4];
		if (out.p[off] != 0 || off + 5 + n > out.len)
			abort();
		Envoy__Service__ExtProc__V3__ProcessingResponse *r =
			envoy__service__ext_proc__v3__processing_response__unpack(
				NULL, n, out.p + off + 5);
		if (!r || r->response_case == 0)
			abort();
		envoy__service__ext_proc__v3__processing_response__free_unpacked(r, NULL);
		off += 5 + n;
	}
	out.len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctx.arena) {
		/* once per process: the sealing engine refuses a second context
		 * for the same key and nonce field */
		static const char *const tenants[] = { "default" };
		struct keys_cache *keys = testkeys_new(1, tenants, 1, 0x5a, NULL, 0);
		struct extproc_policy *pd = keys ? extproc_policy_new(NULL, keys, 0,
								      &ctr.seal)
						 : NULL;
		if (!pd)
			abort();
		extproc_policy_online(pd, true);
		ctx.decider = extproc_policy_decider(pd);
		ctx.ctr = &ctr;
		ctx.request_id_header = EXTPROC_REQUEST_ID_DEFAULT;
		ctx.max_record = 64u << 10;
		ctx.records = true;
		ctx.arena = extproc_arena_new(4096);
	}
	struct extproc_xchg_info info = { .peer = "fuzz:1", .stream_id = 1,
					  .id = 42, .start_ns = 1 };
	struct extproc_xchg *x = extproc_xchg_new(&info);
	if (!x)
		return 0;
	int status = 0;
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		const char *why = NULL;
		int rc = extproc_xchg_message(x, &ctx, data, n, &out, &why);
		data += n;
		size -= n;
		if (rc < 0) {
			if (!why || out.len)
				abort();
			status = -rc;
			break;
		}
		check_replies();
	}
	if (!status) {
		const char *why = NULL;
		int rc = extproc_xchg_end_of_input(x, &ctx, &out, &why);
		if (rc < 0)
			status = -rc;
		check_replies();
	}
	size_t rl = extproc_xchg_record(x, &ctx, EXTPROC_END_COMPLETE, 0, status,
					2, &rec);
	if (rl && !json_record_ok((const char *)rec.p, rl)) {
		fprintf(stderr, "invalid record: %.*s\n", (int)rl, rec.p);
		abort();
	}
	extproc_xchg_free(x);
	extproc_policy_quiescent(ctx.decider.self);
	return 0;
}
