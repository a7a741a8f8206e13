#!/usr/bin/env bash
# VXLAN (AWS Traffic Mirroring, Azure vTAP): every frame of real captures
# wrapped in outer Ethernet/IPv4/UDP 4789/VXLAN (outer UDP checksum 0). The
# digests must be identical, line for line, to those of the plain capture,
# and every packet must have been decapsulated. Also a VXLAN capture that is
# reordered and one cut mid-stream, checked against tshark directly.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init tunnel_vxlan
need_bin
need_root
need_tools h2load curl nghttpd tcpdump tshark

capture h2 --client h2load --connections 3 --streams 8 --requests 36 --sizes 100,5000,70000,300000
capture cu --client curl --connections 3 --requests 6 --post-size 2000 --sizes 300,40000
for c in h2 cu; do
	run_tap "$c" --pcap "$T/$c.pcap"
	check_streams "$c" "$T/$c.pcap"
	"${PCAPTOOL[@]}" vxlan "$T/$c.pcap" "$T/$c-vx.pcap" --vni 4242
	run_tap "$c-vx" --pcap "$T/$c-vx.pcap"
	same_digests "$c" "$c-vx"
	n=$(pcap_packets "$T/$c.pcap")
	v=$(summary_get "$c-vx" counters.decode_vxlan)
	[[ $v == "$n" ]] || fail "$c-vx: decode_vxlan=$v, expected $n (every packet)"
	check_streams "$c-vx" "$T/$c-vx.pcap"
	ok "$c-vx: VXLAN digests identical to the plain capture's ($v packets decapsulated)"
done
"${PCAPTOOL[@]}" reorder "$T/h2-vx.pcap" "$T/h2-vx-r.pcap" --window 6 --seed 5 2>&1
run_tap h2-vx-r --pcap "$T/h2-vx-r.pcap"
same_digests h2 h2-vx-r
ok "h2-vx-r: reordered VXLAN capture gives the same digests"
"${PCAPTOOL[@]}" cut "$T/h2-vx.pcap" "$T/h2-vx-c.pcap" --skip-payload-packets 300 2>&1
run_tap h2-vx-c --pcap "$T/h2-vx-c.pcap"
check_streams h2-vx-c "$T/h2-vx-c.pcap" --original "$T/h2.pcap"
ok "h2-vx-c: VXLAN capture cut mid-stream gives the original suffixes"
echo "PASS: $it_name"
