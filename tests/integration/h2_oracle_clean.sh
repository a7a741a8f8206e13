#!/usr/bin/env bash
# Clean captures of real HTTP/2 traffic; every record must equal tshark's
# decoding (tests/tools/h2oracle.py): pseudo-headers, status, ordered header
# lists byte for byte (credentials by length), trailers, 1xx blocks, bodies,
# END_STREAM, pushes; one record per exchange with request headers.
#
#  nghttp.pcap  nghttpd with padding (-b), response trailers and a push;
#               nghttp: multiplexed GETs (-m 3) with padding and odd header
#               bytes (0x80, 0xff, tab), cookie/authorization/x-api-key;
#               POSTs of a file (-d) with request trailers and
#               Expect: 100-continue (a 1xx block); a 30 KiB request header
#               (HEADERS + CONTINUATION); nghttp --continuation.
#  curl.pcap    curl --http2-prior-knowledge: GET with odd bytes and a
#               24 KiB header (CONTINUATION), POST --data-binary.
#  h2load.pcap  h2load -n 600 -c 3 -m 48: many concurrent streams.
#  tables.pcap  both sides announce SETTINGS_HEADER_TABLE_SIZE (nghttp -c
#               8192, nghttpd -c 16384 --encoder-header-table-size 8192),
#               as browsers do (65536), so both tables grow past 4096.
#  py.pcap      python3-h2 client (hpack indexes everything; its first
#               SETTINGS carries HEADER_TABLE_SIZE and usually reaches the
#               tap before the server has sent a byte), 300 GETs, 10 at a
#               time, per-request header names and values.
# Every capture is checked even if an earlier one failed; the test fails
# at the end with the list.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_oracle_clean
need_bin
need_root
need_tools nghttp nghttpd curl h2load tcpdump tshark ethtool

doc=$T/doc
h2_docroot "$doc" 0 100 5000 70000 300000
head -c 40000 /dev/urandom >"$T/post.bin"
# base64 text: Huffman coding cannot fit it in one 16 KiB frame
big30=$(head -c 30000 /dev/urandom | base64 -w0 | head -c 30720)
big40=$(head -c 40000 /dev/urandom | base64 -w0 | head -c 40960)
u=http://127.0.0.1:$H2_PORT
odd=$'x-odd: a\x80\xff\tb~\x7e'

h2_ns_up

# --- nghttp
h2_server "$doc" -b 20 --trailer 'x-srv-trailer: t1' -p/f5000=/f100 --echo-upload
h2_dump_start "$T/nghttp.pcap"
h2_client get nghttp -n -m 3 -b 13 -H "$odd" -H 'cookie: sid=0123456789abcdef' \
	-H 'authorization: Bearer abc.def' -H 'x-api-key: k-1' "$u/f100" "$u/f5000" "$u/f70000" "$u/f0"
h2_client post nghttp -n -d "$T/post.bin" --trailer 'x-client-trailer: c1' --expect-continue \
	"$u/f100" "$u/f300000"
h2_client big nghttp -n -H "x-big: $big30" -H $'x-big-odd: \xe9\xe8' "$u/f5000" "$u/f100"
h2_client cont nghttp -n --continuation "$u/f100"
h2_dump_stop
h2_server_stop

# --- curl (7.88 cannot reuse an h2c prior-knowledge connection: one each)
h2_server "$doc"
h2_dump_start "$T/curl.pcap"
h2_client curl-get curl --http2-prior-knowledge -sS --fail -o /dev/null -H $'X-Odd: \xe9t\xe9 ~' \
	-H 'X-Auth-Token: tok' "$u/f70000"
h2_client curl-big curl --http2-prior-knowledge -sS --fail -o /dev/null -H "x-big: $big40" "$u/f100"
h2_client curl-post curl --http2-prior-knowledge -sS --fail -o /dev/null --data-binary "@$T/post.bin" \
	-H 'content-type: application/octet-stream' "$u/f5000"
h2_dump_stop

# --- h2load
urls=()
for ((i = 0; i < 60; i++)); do urls+=("$u/f$(((i % 3 == 0) ? 5000 : 100))?q=$i"); done
h2_dump_start "$T/h2load.pcap"
h2_client h2load h2load -n 600 -c 3 -m 48 -t 1 -T 30 -H 'x-load: yes' "${urls[@]}"
grep -qE "requests: .* 0 failed, 0 errored" "$T/h2load.log" || fail "h2load: $(grep requests: "$T/h2load.log")"
h2_dump_stop

# --- bigger HPACK tables announced by both sides (the client speaks first)
h2_server "$doc" -c 16384 --encoder-header-table-size 8192
h2_dump_start "$T/tables.pcap"
hdrs=()
for ((i = 0; i < 40; i++)); do hdrs+=(-H "x-fill-$i: $(head -c 60 /dev/urandom | base64 -w0)"); done
h2_client tables nghttp -n -c 8192 -m 2 "${hdrs[@]}" "$u/f100" "$u/f5000" "$u/f0"
h2_dump_stop

# --- python3-h2 client
"$PY" -c 'import h2, hpack' 2>/dev/null || skip "python3-h2 not installed for $PY"
h2_docroot_mtimes "$doc" 50
h2_dump_start "$T/py.pcap"
h2_pyclient py 300 10 50
h2_dump_stop

failed=()
for c in nghttp curl h2load tables py; do
	h2_tap_try "$c" "$T/$c.pcap" || { failed+=("$c"); continue; }
	h2_oracle_try "$c" "$T/$c.pcap" || { failed+=("$c"); continue; }
	n=$(oracle_get "$c" records)
	((n > 0)) || { echo "$c: no records"; failed+=("$c"); continue; }
	[[ $(summary_get "$c" exchanges) == "$n" ]] ||
		{ echo "$c: summary counts $(summary_get "$c" exchanges) exchanges, $n records on disk"; failed+=("$c"); continue; }
	ok "$c: $n records equal tshark's decoding"
done
# The captures hold what they are meant to: CONTINUATION, padding, 1xx,
# trailers, a push.
have() { tshark -n -r "$T/$1.pcap" -d tcp.port==$H2_PORT,http2 -Y "$2" 2>/dev/null | grep -c . || true; }
(($(have nghttp 'http2.type == 9') >= 1)) || fail "nghttp.pcap holds no CONTINUATION frame"
(($(have curl 'http2.type == 9') >= 1)) || fail "curl.pcap holds no CONTINUATION frame"
(($(have nghttp 'http2.flags.padded == 1') > 0)) || fail "nghttp.pcap holds no padded frame"
(($(have nghttp 'http2.type == 5') > 0)) || fail "nghttp.pcap holds no PUSH_PROMISE"
(($(have tables 'http2.settings.header_table_size == 8192') > 0)) || fail "tables.pcap: the client announced no table size"
if [[ -d $T/nghttp.rec ]]; then
	grep -q '"informational":\[\[\[":status","100"\]' "$T"/nghttp.rec/records-*.ndjson || fail "no 100-continue block recorded"
	grep -q '"trailers":\[\["x-client-trailer"' "$T"/nghttp.rec/records-*.ndjson || fail "no request trailers recorded"
fi
((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
echo "PASS: $it_name"
