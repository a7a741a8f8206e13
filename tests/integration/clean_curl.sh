#!/usr/bin/env bash
# Clean captures of curl --http2-prior-knowledge traffic (one connection per
# request, four at a time: many short flows; GETs, then POSTs with 20 KB
# bodies): every direction's digest must equal tshark's stream.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init clean_curl
need_bin
need_root
need_tools curl nghttpd tcpdump tshark

capture get --client curl --connections 4 --requests 16 --sizes 100,5000,70000,300000
capture post --client curl --connections 4 --requests 8 --post-size 20000 --sizes 500,60000
for c in get post; do
	full_check "$c" "$T/$c.pcap"
	flows=$(summary_get "$c" counters.flow_created)
	[[ $flows -ge 8 ]] || fail "$c: only $flows flows created"
	ok "$c: digests equal tshark's streams ($flows flows)"
done
echo "PASS: $it_name"
