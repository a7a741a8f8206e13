#!/usr/bin/env bash
# Limits under hostile HTTP/2 input (tests/tools/h2hostile.py writes the
# captures: CONTINUATION floods, unterminated blocks, 100,000 streams, an
# HPACK table-size bomb, SETTINGS floods, garbage, 1xx floods, 3000 open
# connections, malformed frames), plus every capture kept in
# tests/data/hostile/ (inputs that once crashed or broke sealtap).
#
# sealtap runs with small caps (the config below). For each input it must
# exit 0 within the time limit, keep its peak RSS (/usr/bin/time -v) under
# the bound derived from the config, write only valid JSON records, and
# show the case in its counters and/or record anomalies (h2hostile.py
# check against the case's .expect.json).
#
# RSS bound = RSS of the same config on tests/data/h2-small.pcap (EAL,
# mempool, preallocated pools, libraries)
#           + h2.memcap (header fields, kept bodies, resync windows)
#           + reasm.worker_memcap (out-of-order chunks)
#           + h2.max_streams x 1 KiB (stream objects)
#           + h2.max_connections x 2 directions x 2 x h2.max_table_size
#             (nghttp2 inflater tables, with their allocation overhead)
#           + export.ring_size + 16 MiB (export batches, stdio, slack)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_hostile
need_bin
[[ -x /usr/bin/time ]] || skip "/usr/bin/time not installed (needed for the peak RSS)"
"$PY" -c 'import hpack' 2>/dev/null || skip "python3-hpack not installed for $PY"

MEMCAP_MB=16 WORKER_MEMCAP_MB=4 MAX_STREAMS=4096 MAX_CONNS=64 TABLE_KB=64 RING_MB=1
cat >"$T/hostile.yaml" <<EOF
eal:
  memory_mb: 128
flow:
  max_flows: 1024
reasm:
  worker_memcap: ${WORKER_MEMCAP_MB}MiB
  flow_buffer: 1MiB
h2:
  max_connections: $MAX_CONNS
  max_streams: $MAX_STREAMS
  max_conn_streams: 1000
  max_header_block: 64KiB
  max_table_size: ${TABLE_KB}KiB
  max_record: 256KiB
  memcap: ${MEMCAP_MB}MiB
  resync_window: 64KiB
export:
  ring_size: ${RING_MB}MiB
  batch_bytes: 256KiB
EOF

# tap_rss NAME PCAP: runs the tap under /usr/bin/time; sets rc and rss_kb.
tap_rss() {
	local name=$1 pcap=$2
	rm -rf "$T/$name.rec"
	rc=0
	/usr/bin/time -v -o "$T/$name.time" timeout "$TAP_TIMEOUT" "$BIN" tap -c "$T/hostile.yaml" --no-progress \
		--pcap "$pcap" --out "$T/$name.rec" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
	rss_kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$T/$name.time")
	tail -n 1 "$T/$name.out" >"$T/$name.summary.json"
}

tap_rss baseline "$IT_ROOT/tests/data/h2-small.pcap"
((rc == 0)) || { tail -3 "$T/baseline.err"; fail "sealtap tap with $T/hostile.yaml fails on tests/data/h2-small.pcap"; }
base_kb=$rss_kb
bound_kb=$((base_kb + (MEMCAP_MB + WORKER_MEMCAP_MB + RING_MB + 16) * 1024 + MAX_STREAMS + MAX_CONNS * 4 * TABLE_KB))
echo "RSS bound: baseline ${base_kb} KiB + $(((bound_kb - base_kb) / 1024)) MiB = $((bound_kb / 1024)) MiB"

failed=() lines=()
run_case() { # name pcap expect
	local name=$1 pcap=$2 expect=$3 why=""
	tap_rss "$name" "$pcap"
	if grep -qE "AddressSanitizer|runtime error:" "$T/$name.err"; then
		grep -E "ERROR|SUMMARY|^    #[0-4] " "$T/$name.err" | head -8
		why="sanitizer report"
	elif ((rc == 124)); then
		why="did not finish in ${TAP_TIMEOUT}s"
	elif ((rc > 128)); then
		why="died of signal $((rc - 128))"
	elif ((rc != 0)); then
		tail -3 "$T/$name.err"
		why="exited $rc"
	elif ((rss_kb > bound_kb)); then
		why="peak RSS $((rss_kb / 1024)) MiB over the bound $((bound_kb / 1024)) MiB"
	fi
	if [[ -z $why && -f $expect ]]; then
		"${H2HOSTILE[@]}" check --expect "$expect" --records "$T/$name.rec" --summary "$T/$name.summary.json" \
			>"$T/$name.check" 2>&1 || why="$(grep -v '^check' "$T/$name.check" | head -4 | cut -c1-300 | tr '\n' ';')"
	fi
	local sum
	sum=$("$PY" -c '
import json, sys
try:
    c = json.load(open(sys.argv[1]))["counters"]
except Exception:
    print("no summary"); sys.exit()
keys = ["h2_block_too_big", "h2_hpack_errors", "h2_frame_errors", "h2_stream_limit", "h2_resyncs",
        "h2_conns_not_h2", "h2_conns_no_memory", "h2_memcap", "h2_records_dropped", "h2_exchanges"]
print(" ".join("%s=%d" % (k[3:], c[k]) for k in keys if c.get(k)))' "$T/$name.summary.json")
	if [[ -n $why ]]; then
		echo "FAILED: $name ($(basename "$pcap")): $why"
		failed+=("$name")
	fi
	lines+=("$name: rc $rc, peak RSS $((rss_kb / 1024)) MiB; $sum${why:+; FAILED}")
}

for c in $("${H2HOSTILE[@]}" list); do
	"${H2HOSTILE[@]}" write "$c" "$T/$c.pcap" >"$T/$c.write" 2>&1 || { cat "$T/$c.write"; fail "h2hostile.py write $c failed"; }
	echo "case $(cat "$T/$c.write")"
	run_case "$c" "$T/$c.pcap" "$T/$c.pcap.expect.json"
done
for f in "$IT_ROOT"/tests/data/hostile/*.pcap; do
	[[ -f $f ]] || continue
	same=""
	for c in $("${H2HOSTILE[@]}" list); do cmp -s "$f" "$T/$c.pcap" && same=$c; done
	if [[ -n $same ]]; then
		echo "data $(basename "$f"): the same bytes as case $same (ran above)"
		continue
	fi
	run_case "data-$(basename "$f" .pcap)" "$f" "$f.expect.json"
done
printf 'result %s\n' "${lines[@]}"
((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
echo "PASS: $it_name"
