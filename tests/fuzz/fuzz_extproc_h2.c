/* libFuzzer target: raw HTTP/2 bytes into an ext_proc server session
 * (extproc_server.c: preface sniffing, nghttp2, gRPC framing, streams,
 * health, ext_proc exchanges with the policy decider, records), without
 * sockets. The built-in policy with its tenant failed closed in a real DEK
 * cache (a session per input makes a sealer per input, and the sealing
 * engine allows one context per key and nonce field in a process, so the
 * keyed path is fuzz_extproc_msg's).
 *
 * Input: byte 0 bit 0 set = the client preface is prepended (so the
 * fuzzer starts inside HTTP/2); bits 1-7 give the size of each read the
 * server gets (0 = all at once), so frames and messages cross read
 * boundaries. The session must never crash, leak or loop; its output is
 * discarded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sealtap/extproc.h"
#include "sealtap/policy.h"
#include "testkeys.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	static struct extproc_cfg cfg;
	if (!cfg.max_message) {
		cfg.max_message = 64u << 10; /* caps hit often */
		cfg.max_streams = 16;
		cfg.max_header_list = 4096;
		cfg.idle_timeout_ns = 1000000000ull;
		cfg.stream_timeout_ns = 1000000000ull;
		cfg.request_id_header = EXTPROC_REQUEST_ID_DEFAULT;
		char err[256];
		static const char *const failed[] = { "default" };
		cfg.policy = policy_builtin(err, sizeof(err));
		cfg.keys = testkeys_new(1, NULL, 0, 0, failed, 1);
		if (!cfg.policy || !cfg.keys)
			abort();
	}
	struct extproc_session *s = extproc_session_new(&cfg);
	if (!s)
		return 0;
	size_t piece = data[0] >> 1;
	bool preface = data[0] & 1;
	data++;
	size--;
	if (preface)
		extproc_session_feed(s, (const uint8_t *)PREFACE, 24);
	while (size) {
		size_t n = piece && piece < size ? piece : size;
		if (extproc_session_feed(s, data, n) < 0)
			break;
		extproc_session_output(s)->len = 0;
		data += n;
		size -= n;
	}
	extproc_session_free(s);
	return 0;
}
