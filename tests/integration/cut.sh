#!/usr/bin/env bash
# Mid-stream pickup (mirroring switched on while connections are open):
# captures cut before the 1st, 10th, 500th, ~50% and ~95% payload packet and
# at a point in time, handshakes dropped. Directions without their SYN must
# say syn=false, start at a base_seq inside the original stream no later than
# the first payload seen, and deliver exactly the original stream's suffix
# from there (offsets placed with the ISN of the uncut capture).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init cut
need_bin
need_root
need_tools h2load curl nghttpd tcpdump tshark

capture h2 --client h2load --connections 3 --streams 8 --requests 48 --sizes 100,5000,70000,300000
capture cu --client curl --connections 3 --requests 9 --post-size 4000 --sizes 500,80000
h2n=$("${PCAPTOOL[@]}" stats "$T/h2.pcap" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tcp_payload_packets"])')
run_cut() { # name source cut-options...
	local n=$1 src=$2
	shift 2
	"${PCAPTOOL[@]}" cut "$T/$src.pcap" "$T/$n.pcap" "$@" 2>&1
	run_tap "$n" --pcap "$T/$n.pcap"
	check_streams "$n" "$T/$n.pcap" --original "$T/$src.pcap"
	local mid
	mid=$(grep -c '"syn":false' "$T/$n.ndjson" || true)
	[[ $mid -gt 0 ]] || fail "$n: no direction marked syn=false after cutting the handshakes"
	ok "$n: $mid directions picked up mid-stream (syn=false), suffixes equal"
}
run_cut h2-k1 h2 --skip-payload-packets 1
run_cut h2-k10 h2 --skip-payload-packets 10
run_cut h2-k500 h2 --skip-payload-packets 500
run_cut h2-half h2 --skip-payload-packets $((h2n / 2))
run_cut h2-end h2 --skip-payload-packets $((h2n * 95 / 100))
run_cut cu-k3 cu --skip-payload-packets 3
dur=$("${PCAPTOOL[@]}" stats "$T/h2.pcap" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["duration_s"] / 2)')
run_cut h2-time h2 --from-time "$dur"
echo "PASS: $it_name"
