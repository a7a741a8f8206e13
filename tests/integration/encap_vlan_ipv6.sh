#!/usr/bin/env bash
# Other link/network encodings of the same traffic:
#  - 802.1Q tag, and 802.1ad + 802.1Q (QinQ): digests identical;
#  - IPv4 rewritten to IPv6 (fd00::/96), with hop-by-hop and destination
#    options headers: digests identical once addresses are mapped;
#  - native IPv6 traffic over ::1 (nghttp, and curl with real loss): digests
#    equal tshark's streams.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init encap_vlan_ipv6
need_bin
need_root
need_tools h2load nghttp curl nghttpd tcpdump tshark ip6tables

capture h2 --client h2load --connections 2 --streams 8 --requests 24 --sizes 100,5000,70000,300000
run_tap h2 --pcap "$T/h2.pcap"
check_streams h2 "$T/h2.pcap"
"${PCAPTOOL[@]}" vlan "$T/h2.pcap" "$T/vlan.pcap" --id 100
"${PCAPTOOL[@]}" vlan "$T/h2.pcap" "$T/qinq.pcap" --id 100 --outer-id 200
for v in vlan qinq; do
	run_tap "$v" --pcap "$T/$v.pcap"
	same_digests h2 "$v"
	ok "$v: digests identical to the untagged capture's"
done
"${PCAPTOOL[@]}" ipv6 "$T/h2.pcap" "$T/v6.pcap"
"${PCAPTOOL[@]}" ipv6 "$T/h2.pcap" "$T/v6ext.pcap" --ext hbh,dst
for v in v6 v6ext; do
	run_tap "$v" --pcap "$T/$v.pcap"
	same_digests h2 "$v" --map-ipv6 fd00::
	check_streams "$v" "$T/$v.pcap"
	ok "$v: IPv6 digests identical to the IPv4 capture's (addresses mapped)"
done
capture n6 --ipv6 --client nghttp --requests 8 --sizes 100,5000,70000,300000
full_check n6 "$T/n6.pcap"
ok "n6: native IPv6 nghttp traffic equals tshark's streams"
loss_capture l6 --ipv6 --client curl --connections 2 --requests 6 --sizes 5000,120000 --loss 0.05
full_check l6 "$T/l6.pcap"
ok "l6: native IPv6 curl traffic with real loss equals tshark's streams"
echo "PASS: $it_name"
