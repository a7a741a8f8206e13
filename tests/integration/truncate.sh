#!/usr/bin/env bash
# Mirror truncation: packets cut to a snap length (headers kept, wire length
# recorded). The payload bytes past the cut must be reported as gaps at once
# (reasm_gap_truncated), at the right offsets, and the captured bytes
# delivered exactly. Snap lengths 100, 200, 1000 and 1400 bytes.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init truncate
need_bin
need_root
need_tools h2load nghttpd tcpdump tshark

capture h2 --client h2load --connections 2 --streams 8 --requests 24 --sizes 100,5000,70000,300000
for s in 100 200 1000 1400; do
	n=snap$s
	"${PCAPTOOL[@]}" truncate "$T/h2.pcap" "$T/$n.pcap" --snaplen $s 2>&1
	run_tap "$n" --pcap "$T/$n.pcap"
	check_streams "$n" "$T/$n.pcap" --original "$T/h2.pcap"
	t=$(summary_get "$n" counters.reasm_gap_truncated)
	[[ $t -gt 0 ]] || fail "$n: no gap from truncation counted (reasm_gap_truncated=0)"
	ok "$n: $t truncated segments, gaps exactly the cut bytes, the rest equal"
done
echo "PASS: $it_name"
