#!/usr/bin/env bash
# A handshake packet overtaken by the data behind it on the same direction
# (pcaptool synlate: each direction's SYN or SYN-ACK moved to just after
# that direction's first payload packet, e.g. the server's SETTINGS frame
# arriving before the SYN-ACK that precedes it on the wire). Every byte is
# in the capture and offset 0 is still the byte after the SYN, so the tap
# must deliver the whole stream and, once the SYN shows base_seq = ISN+1,
# report syn=true.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init reorder_syn
need_bin
need_root
need_tools h2load curl nghttpd tcpdump tshark

capture h2 --client h2load --connections 3 --streams 8 --requests 24 --sizes 100,5000,70000
capture cu --client curl --connections 2 --requests 4 --post-size 3000 --sizes 100,20000
bad=0
for c in h2 cu; do
	for d in server client; do
		n=$c-$d
		"${PCAPTOOL[@]}" synlate "$T/$c.pcap" "$T/$n.pcap" --direction $d 2>&1
		run_tap "$n" --pcap "$T/$n.pcap"
		if "${STREAMS[@]}" check --pcap "$T/$n.pcap" --original "$T/$c.pcap" --digests "$T/$n.ndjson" >"$T/$n.check" 2>&1; then
			ok "$n: whole streams, syn=true"
		else
			cat "$T/$n.check"
			# Say whether only the syn flag is wrong or bytes too.
			if grep -v "syn=False" "$T/$n.check" | grep -q "^MISMATCH"; then
				echo "not ok: $n: stream bytes wrong"
			else
				echo "not ok: $n: bytes complete, but syn=false on directions whose SYN came late"
			fi
			bad=$((bad + 1))
		fi
	done
done
((bad == 0)) || fail "$bad of 4 late-SYN captures misreported"
echo "PASS: $it_name"
