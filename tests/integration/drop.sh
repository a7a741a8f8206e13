#!/usr/bin/env bash
# Packets missing from the capture (mirror drops): payload packets removed
# after capture (every 17th, every 5th, 5% at random) with pcaptool drop,
# which lists them. Every direction must report as gaps exactly the removed
# bytes that were not retransmitted elsewhere, at the right offsets, and
# deliver everything else byte for byte (sha256 of the original stream minus
# the gaps). Also a capture with real loss (retransmissions) minus packets.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init drop
need_bin
need_root
need_tools h2load nghttp nghttpd tcpdump tshark iptables

capture h2 --client h2load --connections 3 --streams 8 --requests 48 --sizes 100,5000,70000,300000
capture ng --client nghttp --connections 2 --requests 8 --post-size 20000 --sizes 3000,90000
loss_capture loss --client h2load --connections 2 --streams 4 --requests 24 --sizes 5000,70000 --loss 0.04
run_drop() { # name source drop-options...
	local n=$1 src=$2
	shift 2
	"${PCAPTOOL[@]}" drop "$T/$src.pcap" "$T/$n.pcap" --only-payload "$@" 2>&1
	run_tap "$n" --pcap "$T/$n.pcap"
	check_streams "$n" "$T/$n.pcap" --original "$T/$src.pcap" --removed "$T/$n.pcap.removed.json"
	local g
	g=$(summary_get "$n" counters.reasm_gap_bytes)
	[[ $g -gt 0 ]] || fail "$n: packets were removed but no gap reported"
	ok "$n: $g gap bytes, exactly the removed ones; all other bytes equal"
}
run_drop h2-every17 h2 --every 17
run_drop h2-every5 h2 --every 5
run_drop h2-prob5 h2 --prob 0.05 --seed 11
run_drop ng-every9 ng --every 9
run_drop ng-first ng --first 1
run_drop ng-second ng --first 1 --skip 1
run_drop loss-every7 loss --every 7
echo "PASS: $it_name"
