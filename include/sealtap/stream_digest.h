/* A stream consumer for testing and diagnosis: instead of the stream bytes
 * (which may hold secrets and must never leave the process) it writes, per
 * flow direction, the SHA-256 of the delivered bytes, their count and the
 * gaps, as one JSON line when the flow is released:
 *
 *   {"src":"10.0.0.2:40000","dst":"10.0.0.1:8080","role":"client",
 *    "syn":true,"base_seq":12345,"bytes":1000,"gap_bytes":0,"gaps":[],
 *    "sha256":"...","end":"fin"}
 *
 * "src" sends the direction; "syn" says whether offset 0 is the byte after
 * the SYN (true) or the first byte seen mid-stream (false); "base_seq" is
 * the sequence number of offset 0; "gaps" lists [offset, length] pairs
 * (first STREAM_DIGEST_MAX_GAPS). Directions that never carried a byte
 * (no data, no gap) are not written.
 *
 * It allocates per-flow state from the heap, so it is a diagnostic
 * consumer, not a hot-path one. Thread-safe: several workers may share one
 * output file (each line is written under a lock).
 */
#ifndef SEALTAP_STREAM_DIGEST_H
#define SEALTAP_STREAM_DIGEST_H

#include <stdio.h>
#include "sealtap/reasm.h"

#define STREAM_DIGEST_MAX_GAPS 64

struct stream_digest;

/* Creates a digest writer on |out|. Does not take ownership of |out|. The
 * caller frees it with stream_digest_free() after the workers finished. */
struct stream_digest *stream_digest_new(FILE *out);
void stream_digest_free(struct stream_digest *sd);
/* The consumer operations; pass |sd| as their user pointer. */
const struct reasm_ops *stream_digest_ops(void);

#endif
