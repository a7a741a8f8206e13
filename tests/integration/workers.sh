#!/usr/bin/env bash
# Multi-worker runs: flows spread over 2 (and 3) workers by the symmetric
# hash must give exactly the digests of one worker, on clean traffic with
# many connections, on real loss, on a reordered capture and on a VXLAN one.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init workers
need_bin
need_root
need_tools h2load curl nghttpd tcpdump tshark iptables

capture h2 --client h2load --connections 8 --streams 4 --requests 64 --sizes 100,5000,70000,200000
capture cu --client curl --connections 4 --requests 16 --sizes 300,20000
loss_capture loss --client h2load --connections 4 --streams 4 --requests 24 --sizes 5000,70000 --loss 0.04
"${PCAPTOOL[@]}" reorder "$T/h2.pcap" "$T/h2r.pcap" --window 8 --seed 3 2>&1
"${PCAPTOOL[@]}" vxlan "$T/h2.pcap" "$T/h2vx.pcap" --vni 9
for c in h2 cu loss h2r h2vx; do
	run_tap "$c-w1" --pcap "$T/$c.pcap" --workers 1
	for w in 2 3; do
		run_tap "$c-w$w" --pcap "$T/$c.pcap" --workers $w
		same_digests "$c-w1" "$c-w$w"
		[[ $(summary_get "$c-w$w" workers) == "$w" ]] || fail "$c-w$w: summary does not say $w workers"
	done
	[[ $c == h2r || $c == h2vx ]] || check_streams "$c-w2" "$T/$c.pcap"
	ok "$c: --workers 2 and 3 give the digests of --workers 1 ($(digest_lines "$c-w1") lines)"
done
echo "PASS: $it_name"
