#!/usr/bin/env bash
# Benchmarks. Usage: scripts/bench.sh capture|tap|seal|detect|extproc [options]
#
#   capture   decode + flow + TCP reassembly from memory with 1 worker,
#             next to dpdk-testpmd --forward-mode=rxonly on the same capture
#             from memory (net_pcap infinite_rx), measured in the same run.
#   tap       end to end: capture -> HTTP/2 -> records written by the file
#             exporter to a tmpfs directory, with 1 and 2 workers, on the
#             real-traffic reference capture and on a `sealtap gen` one,
#             each next to testpmd rxonly on the same capture.
#   seal      seals/s on one core for 16..16384-byte values through the
#             engine (single and batched) next to raw OpenSSL EVP and raw
#             intel-ipsec-mb GCM (bench/bench_seal.c).
#   detect    content detectors on one core: the SSE scan next to the
#             byte-at-a-time reference, on random bytes, text and JSON
#             (bench/bench_detect.c).
#
# Options: --pcap FILE (default: bench/data/ref-h2.pcap, made on demand by
# scripts/make-capture.sh --bench from real nghttpd/h2load traffic),
# --passes N (replays of the capture, default: enough for ~8 s),
# --seconds S (testpmd run time, default 8), --workers N (default 1).
# The last line of output is one JSON object with the figures.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3

what=${1:-}
[[ -n $what ]] || { echo "usage: scripts/bench.sh capture [--pcap FILE] [--passes N] [--seconds S] [--workers N]" >&2; exit 2; }
shift

# Every bench builds from source and most start real peers: install what is
# missing first, so each one works on a machine that has never seen sealtap.
bash scripts/bootstrap.sh

# seal and detect are one C program each (no captures, no EAL), run from
# the release build; their options are the program's (--help).
if [[ $what == seal || $what == detect ]]; then
	BUILD=${SEALTAP_BENCH_BUILD:-build-release}
	if [[ ! -f $BUILD/build.ninja ]]; then
		meson setup "$BUILD" -Dbuildtype=release -Dtests=false >/dev/null
	fi
	ninja -C "$BUILD" "bench/bench_$what" >/dev/null
	exec "$BUILD/bench/bench_$what" "$@"
fi
if [[ $what == extproc ]]; then
	exec bash bench/extproc.sh "$@"
fi

PCAP=bench/data/ref-h2.pcap
PASSES=
SECONDS_TP=8
WORKERS=1
while (($#)); do
	case $1 in
	--pcap) PCAP=$2; shift 2 ;;
	--passes) PASSES=$2; shift 2 ;;
	--seconds) SECONDS_TP=$2; shift 2 ;;
	--workers) WORKERS=$2; shift 2 ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

# Hugepages as in a deployment: reserve 2 MiB pages and mount hugetlbfs for
# the run if we can (root), and give them back afterwards. Without them
# both sealtap and testpmd run with --no-huge; the JSON says which.
OLD_NR=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
MOUNTED_BY_US=0
restore_hugepages() {
	echo "$OLD_NR" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	[[ $MOUNTED_BY_US == 1 ]] && umount /dev/hugepages 2>/dev/null || true
}
trap restore_hugepages EXIT
if [[ $(id -u) == 0 && ${BENCH_NO_HUGE:-0} != 1 ]]; then
	mkdir -p /dev/hugepages
	if ! grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts; then
		mount -t hugetlbfs nodev /dev/hugepages && MOUNTED_BY_US=1
	fi
	echo $((OLD_NR + 1536)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
fi
HUGE_FREE=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if ((HUGE_FREE >= 1024)); then
	TP_MEM=(--in-memory)
else
	TP_MEM=(--no-huge --no-shconf -m 4096)
fi

# Optimised build of its own, so debug options elsewhere do not skew it.
if [[ ! -f build-release/build.ninja ]]; then
	meson setup build-release -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C build-release >/dev/null
BIN=build-release/src/sealtap

if [[ ! -f $PCAP ]]; then
	mkdir -p "$(dirname "$PCAP")"
	echo "bench: making the reference capture $PCAP (real nghttpd/h2load traffic)" >&2
	bash scripts/make-capture.sh --bench --out "$PCAP" >&2
fi

# Packets and wire bytes of the capture (its own records); pcap_stats is
# defined below, before anything calls it.

# testpmd rxonly on |pcap| from memory for SECONDS_TP; prints Mpps.
testpmd_mpps() {
	local pcap=$1 np=${2:-0} tplog
	tplog=$(mktemp)
	timeout -s INT "$((SECONDS_TP + 4))" dpdk-testpmd "${TP_MEM[@]}" --no-pci --no-telemetry \
		-l 0-1 --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" -- \
		--forward-mode=rxonly --port-topology=loop --auto-start --stats-period=1 \
		--total-num-mbufs=$((np + 65536)) >"$tplog" 2>&1 || true
	$PY - "$tplog" <<'PYEOF'
import re, sys
rates = [int(x) for x in re.findall(r'Rx-pps:\s+(\d+)', open(sys.argv[1]).read())]
steady = rates[1:-1] or rates
print(round(sum(steady) / len(steady) / 1e6, 3) if steady else 0.0)
PYEOF
	rm -f "$tplog"
}

# Packets and wire bytes of a classic pcap.
pcap_stats() {
	$PY - "$1" <<'PYEOF'
import struct, sys
f = open(sys.argv[1], 'rb'); hdr = f.read(24)
magic = struct.unpack('<I', hdr[:4])[0]
end = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
n = b = 0
while True:
    h = f.read(16)
    if len(h) < 16: break
    _, _, incl, orig = struct.unpack(end + 'IIII', h)
    f.seek(incl, 1); n += 1; b += orig
print(n, b)
PYEOF
}

bench_tap() {
	local gen_pcap=bench/data/ref-gen.pcap
	if [[ ! -f $gen_pcap ]]; then
		echo "bench: making $gen_pcap with sealtap gen" >&2
		build-release/src/sealtap gen --out "$gen_pcap" --seed 7 --connections 64 \
			--streams 400 --concurrency 16 --req-headers 6 --header-size 40 \
			--resp-body 800-12000 --req-body 0-1500 --methods GET,POST >&2
	fi
	local out=/dev/shm/sealtap-bench-$$
	local results=()
	for pcap in "$PCAP" "$gen_pcap"; do
		read -r np nb < <(pcap_stats "$pcap")
		local passes=${PASSES:-$(( (20000000 + np - 1) / np ))}
		local ref
		echo "bench: reference dpdk-testpmd rxonly on $pcap" >&2
		ref=$(testpmd_mpps "$pcap" "$np")
		for w in 1 2; do
			rm -rf "$out"
			echo "bench: sealtap tap --preload $passes -w $w --out $out on $pcap" >&2
			local line
			line=$("$BIN" tap --pcap "$pcap" --preload "$passes" --workers "$w" \
				--policy bench/policy-headers.yaml \
				--out "$out" --no-progress 2>/dev/null | tail -1)
			results+=("$pcap|$np|$nb|$passes|$ref|headers-only|$line")
		done
		# The built-in policy also scans up to 64 KiB of every body with
		# every detector: measured once per capture, 1 worker.
		rm -rf "$out"
		line=$("$BIN" tap --pcap "$pcap" --preload "$(( (passes + 9) / 10 ))" --workers 1 \
			--out "$out" --no-progress 2>/dev/null | tail -1)
		results+=("$pcap|$np|$nb|$(( (passes + 9) / 10 ))|$ref|builtin|$line")
	done
	rm -rf "$out"
	$PY - "${results[@]}" <<'PYEOF'
import json, sys
runs = []
for arg in sys.argv[1:]:
    pcap, np, nb, passes, ref, pol, line = arg.split('|', 6)
    t = json.loads(line)
    c = t['counters']
    runs.append({
        "capture": pcap, "policy": pol, "capture_packets": int(np),
        "avg_packet_bytes": round(int(nb) / int(np), 1), "passes": int(passes),
        "workers": t["workers"], "packets": t["packets"], "wall_s": t["wall_s"],
        "mpps_per_worker": round(t["mpps_per_worker"], 3),
        "gbps_per_worker": round(t["gbps_per_worker"], 3),
        "exchanges": t["exchanges"], "exchanges_per_sec": round(t["exchanges_per_sec"]),
        "records_written": t["records_written"],
        "records_dropped": c.get("h2_records_dropped", 0),
        "reference_mpps": float(ref),
    })
first = runs[0]
print(json.dumps({
    "bench": "tap",
    "reference": "dpdk-testpmd --forward-mode=rxonly, net_pcap infinite_rx, 1 lcore",
    "target_mpps_per_worker": 1.5,
    "mpps_per_worker": first["mpps_per_worker"],
    "gbps_per_worker": first["gbps_per_worker"],
    "exchanges_per_sec": first["exchanges_per_sec"],
    "reference_mpps": first["reference_mpps"],
    "runs": runs,
}))
PYEOF
}

bench_capture() {
	read -r CAP_PKTS CAP_BYTES < <(pcap_stats "$PCAP")
	# Enough passes for a run of several seconds at ~5 Mpps.
	local passes=${PASSES:-$(( (40000000 + CAP_PKTS - 1) / CAP_PKTS ))}
	echo "bench: sealtap tap --preload $passes --workers $WORKERS on $PCAP ($CAP_PKTS packets, avg $((CAP_BYTES / CAP_PKTS)) B)" >&2
	local out
	out=$("$BIN" tap --pcap "$PCAP" --preload "$passes" --workers "$WORKERS" \
		--analyzer none --no-progress | tail -1)
	echo "$out" >&2

	echo "bench: reference dpdk-testpmd rxonly, net_pcap infinite_rx, ${SECONDS_TP}s" >&2
	local ref
	ref=$(testpmd_mpps "$PCAP" "$CAP_PKTS")

	$PY - "$out" "$ref" "$PCAP" "$CAP_PKTS" "$CAP_BYTES" "$passes" <<'PYEOF'
import json, sys
tap = json.loads(sys.argv[1])
ref = float(sys.argv[2])
cap_pkts, cap_bytes = int(sys.argv[4]), int(sys.argv[5])
res = {
    "bench": "capture",
    "capture": sys.argv[3],
    "capture_packets": cap_pkts,
    "avg_packet_bytes": round(cap_bytes / cap_pkts, 1),
    "passes": int(sys.argv[6]),
    "packets": tap["packets"],
    "wall_s": tap["wall_s"],
    "workers": tap["workers"],
    "hugepages": tap["hugepages"],
    "mpps_per_worker": round(tap["mpps_per_worker"], 3),
    "gbps_per_worker": round(tap["gbps_per_worker"], 3),
    "stream_bytes": tap["stream_bytes"],
    "gaps": tap["gaps"],
    "reference": "dpdk-testpmd --forward-mode=rxonly, net_pcap infinite_rx, 1 lcore",
    "reference_mpps": round(ref, 3),
    "reference_gbps": round(ref * cap_bytes / cap_pkts * 8 / 1e3, 3),
    "ratio_to_reference": round(tap["mpps_per_worker"] / ref, 3) if ref else None,
    "target_mpps_per_worker": 3.0,
}
print(json.dumps(res))
PYEOF
}

case $what in
capture) bench_capture ;;
tap) bench_tap ;;
*) echo "bench.sh: unknown benchmark '$what' (available: capture, tap, seal, detect, extproc)" >&2; exit 2 ;;
esac
