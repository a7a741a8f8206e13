#!/usr/bin/env bash
# Content detector benchmark: MB/s on one pinned core of pol_detect_run()
# (SSE candidate search) and pol_detect_run_ref() (byte-at-a-time
# reference), all detectors on, over random bytes, English-like text with
# few hits and JSON with many, measured in the same run.
#
# Usage: bench/detect.sh [--seconds S] [--reps N]
#
# Builds build-release (buildtype=release, as scripts/bench.sh) if needed.
# A table goes to stderr; the last line of stdout is one JSON object.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${SEALTAP_BENCH_BUILD:-build-release}

if [[ ! -f $BUILD/build.ninja ]]; then
	meson setup "$BUILD" -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C "$BUILD" bench/bench_detect >/dev/null

exec "$BUILD/bench/bench_detect" "$@"
