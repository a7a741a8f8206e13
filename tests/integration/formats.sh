#!/usr/bin/env bash
# Capture file formats and several files: the same traffic as pcapng (with
# nanosecond timestamps) gives identical digests; two captures given as two
# --pcap options give the union of their digests and count every packet.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init formats
need_bin
need_root
need_tools h2load nghttp nghttpd tcpdump tshark

capture h2 --client h2load --connections 2 --streams 8 --requests 24 --sizes 100,5000,70000,300000
capture ng --client nghttp --requests 6 --sizes 100,50000 --port 8081
run_tap h2 --pcap "$T/h2.pcap"
"${PCAPTOOL[@]}" convert "$T/h2.pcap" "$T/h2.pcapng" --pcapng
run_tap h2ng --pcap "$T/h2.pcapng"
same_digests h2 h2ng
check_streams h2ng "$T/h2.pcapng"
ok "pcapng: digests identical to the pcap's"
run_tap ng --pcap "$T/ng.pcap"
run_tap both --pcap "$T/h2.pcap" --pcap "$T/ng.pcap"
expect_packets both "$T/h2.pcap" "$T/ng.pcap"
cat "$T/h2.ndjson" "$T/ng.ndjson" >"$T/union.ndjson"
same_digests union both
ok "two --pcap files: $(digest_lines both) digest lines, the union of both runs"
echo "PASS: $it_name"
