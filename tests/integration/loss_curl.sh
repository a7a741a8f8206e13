#!/usr/bin/env bash
# Real TCP loss: curl (one connection per request, POSTs) with iptables dropping 4% of packets at
# random inside the namespace. tcpdump sees packets before INPUT, so the
# capture holds both the lost packets and their retransmissions (fast
# retransmit, RTO, SACK recovery; partial overlaps included): the tap must
# deduplicate and still deliver exactly tshark's streams, with no gap.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init loss_curl
need_bin
need_root
need_tools curl nghttpd tcpdump tshark iptables

loss_capture loss --client curl --connections 4 --requests 12 --post-size 3000 --sizes 100,5000,70000,300000 --loss 0.04
full_check loss "$T/loss.pcap"
dups=$(summary_get loss counters.reasm_dup_segments)
gaps=$(summary_get loss counters.reasm_gaps)
[[ $dups -gt 0 ]] || fail "sealtap counted no duplicate segments (reasm_dup_segments) in a capture with retransmissions"
[[ $gaps -eq 0 ]] || fail "sealtap reported $gaps gaps in a complete capture"
ok "loss: digests equal tshark's streams; $dups retransmitted segments dropped as duplicates"
echo "PASS: $it_name"
