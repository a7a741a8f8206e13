/* Exporting records: per-worker SPSC rings to an exporter thread that
 * writes batches to rotating files.
 *
 * Workers never block on the exporter: export_ring_push() either copies the
 * record into the worker's ring or fails at once (the caller counts the
 * drop). The exporter thread drains every ring into a batch buffer and
 * writes it when the buffer is full or the flush interval has passed, so
 * output is timely at low rates and cheap at high ones. Files are written
 * as DIR/.records-<n>.ndjson.tmp and renamed to DIR/records-<n>.ndjson
 * (after fdatasync) when they reach max_bytes or max_age or the run ends,
 * so a reader never sees a half-written file under the final name.
 * A failed write (disk full) keeps the whole records that reached the
 * file and cuts off the torn rest; the others are held and retried every
 * second, and the rings are not drained past a full batch meanwhile, so
 * live producers drop (counted) and offline ones wait. At the end writes
 * are retried for 10 s more; what is still unwritten is records_lost.
 * Each exporter holds an flock on the file it writes, so an exporter
 * starting in the directory recovers (cuts to whole records and names)
 * exactly the .tmp files nobody holds: those of processes that died,
 * whatever their pid or pid namespace.
 */
#ifndef SEALTAP_EXPORT_H
#define SEALTAP_EXPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sealtap/counters.h"

/* ---- SPSC byte ring ---- */

struct export_ring {
	_Alignas(64) _Atomic uint64_t head; /* producer: bytes written */
	_Alignas(64) _Atomic uint64_t tail; /* consumer: bytes read */
	_Alignas(64) uint8_t *buf;
	uint64_t size; /* power of two */
	uint64_t mask;
};

/* Creates a ring of |size| bytes (rounded up to a power of two, >= 4 KiB).
 * 0 or -ENOMEM. Free with export_ring_fini(). */
int export_ring_init(struct export_ring *r, uint64_t size);
void export_ring_fini(struct export_ring *r);
/* Producer side: copies |len| bytes in as one record. 0, or -1 if there is
 * no room (nothing written). */
int export_ring_push(struct export_ring *r, const void *rec, uint32_t len);
/* Consumer side: calls |fn| for each record available now, in order; the
 * pointer is valid during the call. Returns records consumed. */
unsigned export_ring_drain(struct export_ring *r,
			   void (*fn)(void *u, const void *rec, uint32_t len),
			   void *u);
/* The same, stopping at the first record |fn| refuses (returns false),
 * which stays in the ring. */
unsigned export_ring_drain_until(struct export_ring *r,
				 bool (*fn)(void *u, const void *rec,
					    uint32_t len),
				 void *u);

/* ---- file exporter ---- */

struct export_file_cfg {
	const char *dir;        /* created if missing */
	uint64_t max_bytes;     /* rotate after this many bytes */
	uint64_t max_age_ns;    /* rotate after this long (wall time) */
	uint64_t flush_ns;      /* write a partial batch after this long */
	uint32_t batch_bytes;   /* write when a batch reaches this size */
	uint64_t stop_retry_ns; /* at the end, failed writes are retried
				   this long (0: 10 s) */
};

struct export_stats {
	uint64_t records;      /* written */
	uint64_t bytes;
	uint64_t files;
	uint64_t write_errors; /* failed writes, creates, renames (retried) */
	uint64_t records_lost; /* taken but never written: writes still
				  failing at the end, or no memory */
};

struct export_file;

/* Starts the exporter thread over |rings| (|n| of them). Does not take
 * ownership of the rings (they must outlive export_file_stop()). 0 or
 * -errno with |err|. */
int export_file_start(const struct export_file_cfg *cfg,
		      struct export_ring *rings, unsigned n,
		      struct export_file **out, char *err, size_t errlen);
/* Drains what remains, closes and renames the last file, joins the thread
 * and frees everything. Fills |st|. */
void export_file_stop(struct export_file *ef, struct export_stats *st);

#endif
