#!/usr/bin/env bash
# Clean captures of h2load traffic (3 connections x 8 concurrent streams;
# then POSTs with 5 KB bodies): every direction's digest must equal tshark's
# stream.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init clean_h2load
need_bin
need_root
need_tools h2load nghttpd tcpdump tshark

capture get --client h2load --connections 3 --streams 8 --requests 60 --sizes 100,5000,70000,300000
capture post --client h2load --connections 2 --streams 4 --requests 20 --post-size 5000 --sizes 300,30000
for c in get post; do
	full_check "$c" "$T/$c.pcap"
	ok "$c: digests equal tshark's streams"
done
echo "PASS: $it_name"
