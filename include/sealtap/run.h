/* `sealtap run`: the tap and the ext_proc server in one process, sharing
 * one policy, one keys runtime (one DEK cache: tap workers are readers
 * 0..W-1, event-loop threads W..W+T-1) and one record directory (each with
 * its own exporter; record files never overwrite each other). */
#ifndef SEALTAP_RUN_H
#define SEALTAP_RUN_H

#include <stddef.h>

#include "sealtap/capture.h"
#include "sealtap/config.h"
#include "sealtap/extproc.h"

/* Loads the policy (o->policy_path, or the built-in one), starts the keys
 * and the ext_proc server (extproc.* of |cfg|; |ready_file|, if not NULL,
 * gets its addresses), runs the tap as capture_run() does (live: until
 * SIGINT/SIGTERM or the duration; offline: to the end of the captures),
 * then drains the server and stops the keys. Fills |res| (the tap's
 * counters and the keys thread's) and |xsum| (the server's). Returns 0 or
 * -errno with a one-line |err|. Modifies |o| (policy and keys). */
int run_tap_and_extproc(const struct st_config *cfg, struct capture_opts *o,
			const char *ready_file, struct capture_result *res,
			struct extproc_counters *xsum, char *err,
			size_t errlen);

#endif
