#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs dependencies, builds
# the normal, sanitizer (ASan+UBSan) and fuzzing (clang/libFuzzer) variants,
# then runs
#   - every unit test executable (normal and sanitizer builds),
#   - every integration test (real captures from nghttpd/nghttp/curl/h2load
#     in network namespaces, tshark as the oracle),
#   - every fuzz target for FUZZ_SECONDS on its seed corpus (ASan+UBSan).
# Ends with one line "N passed, N failed, N skipped" counting executables.
#
# Environment: FUZZ_SECONDS (default 60), SKIP_FUZZ=1, SKIP_ASAN=1,
# ONLY=<substring> to run only matching integration tests.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
PY=/usr/bin/python3
JOBS=$(nproc)

bash scripts/bootstrap.sh || { echo "bootstrap failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0
failures=()

note() { printf '\n=== %s ===\n' "$*"; }

record() { # name rc
	case "$2" in
	0) passed=$((passed + 1)); echo "PASS $1" ;;
	77) skipped=$((skipped + 1)); echo "SKIP $1" ;;
	*) failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1 (exit $2)" ;;
	esac
}

build() { # dir [meson options...]
	local dir=$1; shift
	if [[ ! -f $dir/build.ninja ]]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" -j "$JOBS" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

# Runs the unit suite of build dir $1; each test executable counts once.
unit_suite() {
	local dir=$1 label=$2
	meson test -C "$dir" --suite unit --print-errorlogs >"$dir.test.log" 2>&1
	local log="$dir/meson-logs/testlog.json"
	if [[ ! -f $log ]]; then
		record "$label:unit (no test log)" 1
		return
	fi
	while IFS=$'\t' read -r name result; do
		case "$result" in
		OK) record "$label:$name" 0 ;;
		SKIP) record "$label:$name" 77 ;;
		*) record "$label:$name" 1; grep -A40 "$name" "$dir.test.log" | head -60 ;;
		esac
	done < <($PY -c '
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    print(t["name"] + "\t" + t["result"])' "$log")
}

note "build (gcc, -Werror)"
if ! build build; then record build 1; echo "$passed passed, $failed failed, $skipped skipped"; exit 1; fi
record build 0
note "unit tests"
unit_suite build gcc

if [[ ${SKIP_ASAN:-0} != 1 ]]; then
	note "ASan+UBSan build and unit tests"
	if build build-asan -Dsanitize=true -Dbuildtype=debug; then
		record build-asan 0
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 unit_suite build-asan asan
	else
		record build-asan 1
	fi
fi

note "integration tests"
export SEALTAP_BIN="$ROOT/build/src/sealtap"
for t in tests/integration/*; do
	[[ -f $t && -x $t ]] || continue
	[[ $(basename "$t") == lib.* ]] && continue
	if [[ -n ${ONLY:-} && $t != *"$ONLY"* ]]; then continue; fi
	echo "--- $t"
	timeout 600 "$t"
	rc=$? # before the $(basename) below, which would reset $?
	record "integration:$(basename "$t")" "$rc"
done

if [[ ${SKIP_FUZZ:-0} != 1 ]]; then
	note "fuzz targets (${FUZZ_SECONDS}s each, ASan+UBSan)"
	if CC=clang build build-fuzz -Dfuzz=true -Dtests=false -Dbuildtype=debugoptimized; then
		for f in build-fuzz/tests/fuzz/fuzz_*; do
			[[ -x $f && ! -d $f ]] || continue
			name=$(basename "$f")
			seeds="tests/fuzz/seeds/${name#fuzz_}"
			work=$(mktemp -d)
			[[ -d $seeds ]] && cp -r "$seeds"/. "$work"/
			# -error_exitcode: libFuzzer's default for a crash is 77,
			# which would read as "skipped" here.
			"$f" -max_total_time="$FUZZ_SECONDS" -max_len=300000 -rss_limit_mb=4096 \
				-error_exitcode=1 -timeout=30 -print_final_stats=1 \
				-artifact_prefix=build-fuzz/ \
				"$work" >"build-fuzz/$name.log" 2>&1
			rc=$?
			[[ $rc == 77 ]] && rc=1
			[[ $rc != 0 ]] && tail -40 "build-fuzz/$name.log"
			record "fuzz:$name" $rc
			rm -rf "$work"
		done
	else
		record build-fuzz 1
	fi
fi

note "summary"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed == 0 ]]
