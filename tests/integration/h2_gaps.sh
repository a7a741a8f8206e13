#!/usr/bin/env bash
# Capture gaps: real captures with payload packets removed (pcaptool drop;
# handshakes and FINs kept). sealtap must not crash; h2oracle --gaps places
# every removed byte in tshark's decoding of the whole capture and checks:
#  - exchanges with none of their frames touched are exact (fields decoded
#    from placeholders after a lost header block may be null, and counted);
#  - touched ones carry an anomaly (body_gap, headers_lost, resync, ...),
#    a gap inside one DATA payload keeps framing and body_bytes exact with
#    body_gap_bytes = the bytes lost; no field is invented or moved;
#  - every exchange whose request header block survived is recorded;
#  - when a gap broke framing (not inside one payload) and frames followed
#    that sealtap could resync on (two headers in a row: the oracle's
#    framing_resynced), h2_resyncs > 0. A break in a direction's last
#    frames leaves nothing to resync on.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_gaps
need_bin
need_root
need_tools nghttp nghttpd h2load tcpdump tshark

capture nghttp --client nghttp --connections 2 --requests 16 --sizes 100,5000,70000,300000
capture h2load --client h2load --requests 400 --connections 2 --streams 16 --sizes 100,3000,40000
capture post --client nghttp --requests 6 --post-size 60000 --sizes 2000,90000

failed=() lines=()
for c in nghttp h2load post; do
	for v in "every9:--every 9 --skip 5" "every40:--every 40 --skip 3" "p3:--prob 0.03 --seed 3" "p10:--prob 0.10 --seed 11"; do
		name=$c-${v%%:*}
		# shellcheck disable=SC2086
		"${PCAPTOOL[@]}" drop "$T/$c.pcap" "$T/$name.pcap" --only-payload --no-fin ${v#*:} \
			2>"$T/$name.drop.log" || fail "pcaptool drop: $(cat "$T/$name.drop.log")"
		h2_tap_try "$name" "$T/$name.pcap" || { failed+=("$name"); continue; }
		h2_oracle_try "$name" "$T/$name.pcap" --gaps "$T/$c.pcap" || failed+=("$name")
		lost=$(oracle_get "$name" framing_lost)
		resyncable=$(oracle_get "$name" framing_resynced)
		resyncs=$(h2_counter "$name" h2_resyncs)
		if ((resyncable > 0 && resyncs == 0)); then
			echo "$name: $resyncable framing breaks had frames to resync on but h2_resyncs is 0"
			failed+=("$name")
		fi
		lines+=("$name: $(sed 's/^drop: //' "$T/$name.drop.log" | cut -d';' -f1); $(oracle_get "$name" damaged) exchanges damaged, $(oracle_get "$name" exact) exact, $(oracle_get "$name" uncertain) with null fields; framing lost $lost times ($resyncable with frames to resync on), h2_resyncs $resyncs, h2_blocks_lost $(h2_counter "$name" h2_blocks_lost), body gap bytes $(h2_counter "$name" h2_gap_body_bytes)")
	done
done
printf 'case %s\n' "${lines[@]}"
((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
echo "PASS: $it_name"
