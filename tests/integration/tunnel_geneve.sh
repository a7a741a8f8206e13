#!/usr/bin/env bash
# Geneve (Google out-of-band mirroring, UDP 6081): real captures wrapped in
# outer Ethernet/IPv4/UDP/Geneve, (a) carrying Ethernet without options,
# (b) with two option TLVs (12 bytes), (c) carrying IP directly (protocol
# type 0x0800). Digests must be identical to the plain capture's and every
# packet decapsulated.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init tunnel_geneve
need_bin
need_root
need_tools h2load nghttp nghttpd tcpdump tshark

capture h2 --client h2load --connections 3 --streams 8 --requests 36 --sizes 100,5000,70000,300000
capture ng --client nghttp --requests 8 --post-size 10000 --sizes 700,60000
for c in h2 ng; do
	run_tap "$c" --pcap "$T/$c.pcap"
	check_streams "$c" "$T/$c.pcap"
	n=$(pcap_packets "$T/$c.pcap")
	for v in plain:"" opts:--options ip:"--inner ip" ipopts:"--options --inner ip"; do
		name=$c-gn-${v%%:*}
		# shellcheck disable=SC2086
		"${PCAPTOOL[@]}" geneve "$T/$c.pcap" "$T/$name.pcap" --vni 77 ${v#*:}
		run_tap "$name" --pcap "$T/$name.pcap"
		same_digests "$c" "$name"
		g=$(summary_get "$name" counters.decode_geneve)
		[[ $g == "$n" ]] || fail "$name: decode_geneve=$g, expected $n (every packet)"
		ok "$name: Geneve (${v#*:}) digests identical to the plain capture's ($g packets decapsulated)"
	done
done
check_streams h2-gn-opts "$T/h2-gn-opts.pcap"
echo "PASS: $it_name"
