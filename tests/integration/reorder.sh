#!/usr/bin/env bash
# Reordering, as mirrors and multipath links do it: every packet moved by
# less than W positions (pcaptool reorder; SYN/RST stay barriers, time stays
# monotonic). For W = 2, 4, 8 and 24 on h2load and nghttp traffic, the tap
# must deliver exactly the original streams (no gap) and say it buffered
# out-of-order segments. Then ECMP-style reordering on curl traffic (many
# handshakes): each direction keeps its order, directions and flows
# interleave within W = 4, 16 (SYN, SYN-ACK and FIN move too).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init reorder
need_bin
need_root
need_tools h2load nghttp nghttpd tcpdump tshark

capture h2 --client h2load --connections 3 --streams 8 --requests 48 --sizes 100,5000,70000,300000
capture ng --client nghttp --requests 8 --post-size 30000 --sizes 2000,120000
capture cu --client curl --connections 4 --requests 16 --post-size 2000 --sizes 100,3000,40000
for c in h2 ng; do
	for w in 2 4 8 24; do
		n=$c-w$w
		"${PCAPTOOL[@]}" reorder "$T/$c.pcap" "$T/$n.pcap" --window $w --seed $((w * 7)) 2>&1
		run_tap "$n" --pcap "$T/$n.pcap"
		check_streams "$n" "$T/$n.pcap" --original "$T/$c.pcap"
		q=$(summary_get "$n" counters.reasm_ooo_queued)
		g=$(summary_get "$n" counters.reasm_gaps)
		[[ $q -gt 0 ]] || fail "$n: no segment was buffered out of order (reasm_ooo_queued=0)"
		[[ $g -eq 0 ]] || fail "$n: $g gaps on a complete capture"
		ok "$n: streams equal the original's; $q segments buffered out of order"
	done
done
for w in 4 16; do
	for seed in 1 2; do
		n=cu-x$w-$seed
		"${PCAPTOOL[@]}" reorder "$T/cu.pcap" "$T/$n.pcap" --window $w --seed $seed --keep-direction-order 2>&1
		run_tap "$n" --pcap "$T/$n.pcap"
		check_streams "$n" "$T/$n.pcap" --original "$T/cu.pcap"
		ok "$n: directions interleaved within $w packets, streams equal the original's"
	done
done
echo "PASS: $it_name"
