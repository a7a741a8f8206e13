#!/usr/bin/env bash
# Real TCP loss: iptables drops packets at random inside the capture
# namespace (scripts/make-capture.sh --loss); tcpdump sees each lost packet
# and its retransmission, so every stream is complete and every exchange
# must be recorded exactly as tshark decodes it (h2oracle, clean checks;
# its self-check also proves tshark's own reassembly covered each stream
# exactly once). Then the same captures reordered within a window of 4
# packets (pcaptool reorder): the records must still equal tshark's
# decoding of the lossy capture.
#
#  nghttp  GETs of 100 B..300 KB multiplexed on one connection, 3% loss
#  h2load  300 requests on 2 connections, 16 streams each, 3% loss
#  curl    POSTs of 3000 bytes, one connection each, 4% loss
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_oracle_loss
need_bin
need_root
need_tools nghttp nghttpd curl h2load tcpdump tshark iptables

loss_capture nghttp --client nghttp --requests 24 --sizes 100,5000,70000,300000 --loss 0.03
loss_capture h2load --client h2load --requests 300 --connections 2 --streams 16 --sizes 100,2000,40000 --loss 0.03
loss_capture curl --client curl --connections 2 --requests 6 --post-size 3000 --sizes 100,5000,70000 --loss 0.04

failed=()
for c in nghttp h2load curl; do
	"${PCAPTOOL[@]}" reorder "$T/$c.pcap" "$T/$c-reordered.pcap" --window 4 --seed 7 2>"$T/$c.reorder.log" ||
		fail "pcaptool reorder failed: $(cat "$T/$c.reorder.log")"
	for v in "$c" "$c-reordered"; do
		h2_tap_try "$v" "$T/$v.pcap" || { failed+=("$v"); continue; }
		if [[ $v == "$c" ]]; then
			h2_oracle_try "$v" "$T/$v.pcap" || { failed+=("$v"); continue; }
		else
			h2_oracle_try "$v" "$T/$v.pcap" --same-as "$T/$c.pcap" || { failed+=("$v"); continue; }
		fi
		gaps=$(h2_counter "$v" h2_gaps)
		((gaps == 0)) || { echo "$v: sealtap saw $gaps gaps in a complete capture"; failed+=("$v"); continue; }
		[[ $(summary_get "$v" exchanges) == "$(oracle_get "$v" records)" ]] ||
			{ echo "$v: summary counts $(summary_get "$v" exchanges) exchanges, $(oracle_get "$v" records) records on disk"; failed+=("$v"); continue; }
		ok "$v: $(oracle_get "$v" records) records equal tshark's decoding; $(h2_counter "$v" reasm_dup_segments) duplicate segments, $(h2_counter "$v" reasm_ooo_queued) segments buffered out of order"
		if [[ $v == *-reordered ]] && (($(h2_counter "$v" reasm_ooo_queued) == 0)); then
			echo "$v: nothing arrived out of order: the reordering did not reorder"; failed+=("$v")
		fi
	done
done
((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
echo "PASS: $it_name"
