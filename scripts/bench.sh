#!/usr/bin/env bash
# Benchmarks. Usage: scripts/bench.sh capture [options]
#
#   capture   decode + flow + TCP reassembly from memory with 1 worker,
#             next to dpdk-testpmd --forward-mode=rxonly on the same capture
#             from memory (net_pcap infinite_rx), measured in the same run.
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

bash scripts/bootstrap.sh
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

# Packets and average size of the capture (the capture's own records).
read -r CAP_PKTS CAP_BYTES < <($PY - "$PCAP" <<'PYEOF'
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
)

bench_capture() {
	# Enough passes for a run of several seconds at ~5 Mpps.
	local passes=${PASSES:-$(( (40000000 + CAP_PKTS - 1) / CAP_PKTS ))}
	echo "bench: sealtap tap --preload $passes --workers $WORKERS on $PCAP ($CAP_PKTS packets, avg $((CAP_BYTES / CAP_PKTS)) B)" >&2
	local out
	out=$("$BIN" tap --pcap "$PCAP" --preload "$passes" --workers "$WORKERS" --no-progress | tail -1)
	echo "$out" >&2

	echo "bench: reference dpdk-testpmd rxonly, net_pcap infinite_rx, ${SECONDS_TP}s" >&2
	local tplog
	tplog=$(mktemp)
	timeout -s INT "$((SECONDS_TP + 4))" dpdk-testpmd --no-huge --no-shconf -m 2048 --no-pci --no-telemetry \
		-l 0-1 --vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" -- \
		--forward-mode=rxonly --port-topology=loop --auto-start --stats-period=1 \
		--total-num-mbufs=65536 >"$tplog" 2>&1 || true

	$PY - "$out" "$tplog" "$PCAP" "$CAP_PKTS" "$CAP_BYTES" "$passes" <<'PYEOF'
import json, re, sys
tap = json.loads(sys.argv[1])
rates = [int(x) for x in re.findall(r'Rx-pps:\s+(\d+)', open(sys.argv[2]).read())]
# Skip the first (warm-up, partial second) and the last sample.
steady = rates[1:-1] or rates
ref = sum(steady) / len(steady) / 1e6 if steady else 0.0
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
	rm -f "$tplog"
}

case $what in
capture) bench_capture ;;
*) echo "bench.sh: unknown benchmark '$what' (available: capture)" >&2; exit 2 ;;
esac
