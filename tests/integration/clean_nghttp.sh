#!/usr/bin/env bash
# Clean captures of nghttp traffic (GETs multiplexed on one connection per
# client, two clients; then POSTs with 40 KB bodies): every flow direction's
# digest must equal tshark's stream (bytes, sha256, no gaps, syn, role, end).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init clean_nghttp
need_bin
need_root
need_tools nghttp nghttpd tcpdump tshark

capture get --client nghttp --connections 2 --requests 16 --sizes 100,5000,70000,300000
capture post --client nghttp --requests 6 --post-size 40000 --sizes 2000,90000
for c in get post; do
	full_check "$c" "$T/$c.pcap"
	ok "$c: digests equal tshark's streams"
done
echo "PASS: $it_name"
