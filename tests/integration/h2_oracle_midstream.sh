#!/usr/bin/env bash
# Mid-stream joins: real captures cut at several points (pcaptool cut: every
# packet before the K-th payload packet removed, handshake included). sealtap
# must not crash; every exchange whose request header block lies wholly in
# the cut capture must be recorded; fields not written as null must equal
# tshark's decoding of the whole capture; nulls must be listed as uncertain;
# and once the HPACK tables turned over, later exchanges must be exact.
#
#  nghttp.pcap  nghttp, multiplexed GETs, POSTs with trailers, padding.
#  h2load.pcap  h2load -c1 -n 2000 -m 10 over 200 paths whose files have
#               distinct mtimes: the server's table turns over (a new
#               last-modified entry per file), h2load's does not (it repeats
#               the same request fields), so its requests stay uncertain.
#  py.pcap      python3-h2 client, 1500 GETs, 10 at a time, per-request
#               header values and cookies: both tables turn over, so every
#               connection must become exact again.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_oracle_midstream
need_bin
need_root
need_tools nghttp nghttpd h2load tcpdump tshark ethtool
"$PY" -c 'import h2, hpack' 2>/dev/null || skip "python3-h2 not installed for $PY"

u=http://127.0.0.1:$H2_PORT
h2_docroot "$T/doc" 100 5000 70000
h2_docroot_mtimes "$T/doc" 200
head -c 20000 /dev/urandom >"$T/post.bin"
h2_ns_up

h2_server "$T/doc" -b 16 --trailer 'x-srv-trailer: t1'
h2_dump_start "$T/nghttp.pcap"
h2_client get nghttp -n -m 4 -H 'x-a: 1' "$u/f100" "$u/f5000" "$u/f70000" "$u/f3"
h2_client post nghttp -n -d "$T/post.bin" --trailer 'x-client-trailer: c1' "$u/f100" "$u/f5000"
h2_dump_stop
h2_server_stop

h2_server "$T/doc"
urls=()
for ((i = 0; i < 200; i++)); do urls+=("$u/f$i"); done
h2_dump_start "$T/h2load.pcap"
h2_client h2load h2load -c 1 -n 2000 -m 10 -t 1 -T 30 "${urls[@]}"
grep -qE "requests: .* 0 failed, 0 errored" "$T/h2load.log" || fail "h2load: $(grep requests: "$T/h2load.log")"
h2_dump_stop

h2_dump_start "$T/py.pcap"
h2_pyclient py 1500 10 200
h2_dump_stop

payload_packets() {
	"${PCAPTOOL[@]}" stats "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tcp_payload_packets"])'
}

summary_line=() failed=()
for c in nghttp h2load py; do
	n=$(payload_packets "$T/$c.pcap")
	for k in 1 4 $((n / 7)) $((n / 3)) $((n * 2 / 3)); do
		cut=$c-cut$k
		"${PCAPTOOL[@]}" cut "$T/$c.pcap" "$T/$cut.pcap" --skip-payload-packets "$k" 2>/dev/null ||
			fail "pcaptool cut $k failed"
		h2_tap_try "$cut" "$T/$cut.pcap" || { failed+=("$cut"); continue; }
		h2_oracle_try "$cut" "$T/$cut.pcap" --midstream "$T/$c.pcap" || failed+=("$cut")
		[[ $(h2_counter "$cut" h2_conns_midstream) -ge 1 ]] || fail "$cut: no connection counted as joined mid-stream"
		unc=$(oracle_get "$cut" uncertain)
		withu=$(oracle_get "$cut" conns_with_uncertain)
		became=$(oracle_get "$cut" conns_became_exact)
		summary_line+=("$cut: $(oracle_get "$cut" exact) exact, $unc uncertain, exact again: $became/$withu conns")
		if [[ $c == py ]] && ((withu > 0)); then
			# Both tables turn over: every connection ends exact, and
			# sealtap says so (h2_hpack_exact).
			((became == withu)) || { echo "$cut: $((withu - became)) connection(s) never became exact after the tables turned over"; failed+=("$cut"); }
			[[ $(h2_counter "$cut" h2_hpack_exact) -ge 1 ]] || { echo "$cut: exact again but counter h2_hpack_exact is 0"; failed+=("$cut"); }
		fi
	done
done
printf 'cut: %s\n' "${summary_line[@]}"
((${#failed[@]} == 0)) || fail "records differ from tshark in: ${failed[*]}"
echo "PASS: $it_name"
