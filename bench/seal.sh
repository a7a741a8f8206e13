#!/usr/bin/env bash
# Sealing benchmark: seals per second on one pinned core for value sizes
# 16, 64, 256, 1024 and 16384 bytes through the engine's API (one value per
# call and bursts of 32), next to raw OpenSSL EVP AES-256-GCM (context keyed
# once) and raw intel-ipsec-mb (IMB_AES256_GCM_ENC), all measured in the
# same run; also token text, tokenize (AES-SIV) and hash (HMAC) rates.
#
# Usage: bench/seal.sh [--seconds S] [--reps N] [--cpu N] [--sizes 16,64,...]
#   --seconds  minimum time of one measurement (default 0.25)
#   --reps     measurements per figure, run round-robin; the best is
#              reported, the median beside it (default 5)
#   --cpu      CPU to pin to (default: the one it starts on)
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
ninja -C "$BUILD" bench/bench_seal >/dev/null

exec "$BUILD/bench/bench_seal" "$@"
