#!/usr/bin/env bash
# sealtap gen checked by an independent decoder (tshark). For each option
# combination:
#  1. two runs with the same seed write byte-identical files (cmp);
#  2. tshark decodes the capture without malformed packets or expert
#     errors;
#  3. tshark counts the HEADERS frames and the streams the options imply,
#     and the CONTINUATION / RST_STREAM / GOAWAY frames gen reports;
#  4. a filter proving the option took effect matches (padding present,
#     gRPC messages, VXLAN VNI, the 101 of the upgrade, ...).
# Prior-knowledge h2c is decoded with -d tcp.port==8080,http2; the h2c
# upgrade needs nothing (8080 is an HTTP port for tshark, which follows the
# 101 into HTTP/2), and would be misread with -d.
# Exit: 0 pass, 1 fail, 77 skip (no tshark, or sealtap not built).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SEALTAP_BIN:-$ROOT/build/src/sealtap}
command -v tshark >/dev/null || { echo "SKIP: tshark not installed"; exit 77; }
[[ -x $BIN ]] || { echo "SKIP: $BIN not built"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Number before/after a word in gen's summary line.
count_after() { grep -o "$1 [0-9]*" <<<"$2" | head -1 | awk '{print $2}'; }
count_before() { grep -o "[0-9]* $1" <<<"$2" | head -1 | awk '{print $1}'; }

# tshark over |file| with the decode flags of |mode| (pk or upgrade).
ts() { # mode file [tshark args...]
	local mode=$1 file=$2; shift 2
	if [[ $mode == pk ]]; then
		tshark -r "$file" -d tcp.port==8080,http2 "$@" 2>/dev/null
	else
		tshark -r "$file" "$@" 2>/dev/null
	fi
}

# HEADERS, CONTINUATION, RST_STREAM, GOAWAY frames and distinct streams
# with HEADERS, as tshark sees them: "H C R G S".
tshark_counts() { # mode file
	ts "$1" "$2" -Y http2 -T fields -E "separator=|" -e tcp.stream \
		-e http2.type -e http2.streamid |
		awk -F"|" '{
			nt = split($2, t, ","); split($3, s, ",")
			for (i = 1; i <= nt; i++) {
				n[t[i]]++
				if (t[i] == 1) seen[$1 "." s[i]] = 1
			}
		}
		END { for (k in seen) st++
		      printf "%d %d %d %d %d\n", n[1], n[9], n[3], n[7], st }'
}

check() { # name mode expected_headers proof_filter [gen args...]
	local name=$1 mode=$2 want_h=$3 proof=$4
	shift 4
	local f=$T/$name.pcap out
	out=$("$BIN" gen --out "$f" "$@" 2>"$T/$name.err") ||
		fail "$name: sealtap gen exited $?: $(cat "$T/$name.err")"
	"$BIN" gen --out "$T/$name.again.pcap" "$@" >/dev/null 2>&1 ||
		fail "$name: second run failed"
	cmp -s "$f" "$T/$name.again.pcap" ||
		fail "$name: two runs with the same seed differ"

	local bad
	bad=$(ts "$mode" "$f" -Y '_ws.malformed || _ws.expert.severity >= error')
	[[ -z $bad ]] || fail "$name: tshark reports errors:"$'\n'"$(head -5 <<<"$bad")"

	local conns streams h c r g s
	conns=$(count_before connections "$out")
	streams=$(count_before streams "$out")
	read -r h c r g s <<<"$(tshark_counts "$mode" "$f")"
	[[ $h == "$want_h" ]] || fail "$name: tshark sees $h HEADERS, expected $want_h"
	[[ $h == "$(count_after HEADERS "$out")" ]] || fail "$name: HEADERS: tshark $h, gen: $out"
	[[ $s == "$streams" ]] || fail "$name: tshark sees $s streams, gen sent $streams"
	[[ $c == "$(count_after CONTINUATION "$out")" ]] || fail "$name: CONTINUATION: tshark $c, gen: $out"
	[[ $r == "$(count_after RST_STREAM "$out")" ]] || fail "$name: RST_STREAM: tshark $r, gen: $out"
	[[ $g == "$(count_after GOAWAY "$out")" ]] || fail "$name: GOAWAY: tshark $g, gen: $out"
	[[ -n $(ts "$mode" "$f" -Y "$proof" | head -1) ]] ||
		fail "$name: nothing matches '$proof'"
	echo "ok: $name ($conns connections, $s streams, HEADERS $h, CONTINUATION $c, RST_STREAM $r, GOAWAY $g)"
}

# name mode HEADERS proof [gen options]: 2 connections x 10 streams unless
# said otherwise; HEADERS = request + response per stream, plus trailers for
# gRPC, minus the HTTP/1.1 request of each upgrade.
C=(--connections 2 --streams 10 --seed 7)
check plain pk 40 'http2.type == 0' "${C[@]}"
check continuation pk 40 'http2.type == 9' "${C[@]}" --req-headers 3 --header-size 9000
check padding pk 40 'http2.pad_length > 0' "${C[@]}" --padding 200
check grpc pk 60 'grpc.message_length' "${C[@]}" --grpc --resp-body 10-40K
check rst-goaway pk 80 'http2.rst_stream.error == 8 && http2.type == 3' \
	--connections 2 --streams 20 --seed 7 --rst 40% --goaway --resp-body 100K-300K
check ipv6 pk 40 'ipv6.src == fd00:5ea1:1::1' "${C[@]}" --ipv6
check vxlan pk 40 'vxlan.vni == 42' "${C[@]}" --vxlan 42
check geneve pk 40 'geneve.vni == 4242' "${C[@]}" --geneve 4242
check h2c-upgrade upgrade 38 'http.response.code == 101' "${C[@]}" --h2c-upgrade
check churn-huffman-off pk 60 'http2.header.repr == "Literal Header Field with Incremental Indexing - New Name"' \
	--connections 3 --streams 10 --table-churn --huffman off --methods GET,HEAD,PUT,DELETE,PATCH,OPTIONS
check small-mtu pk 40 'tcp.len == 536' "${C[@]}" --mtu 576 --resp-body 5K-20K

# Impairments change the capture, not the conversation: same seed, same
# file; packets removed as reported; a different seed gives another file.
out=$("$BIN" gen --out "$T/imp.pcap" --connections 5 --loss 5% --reorder 4 --midstream 3 --ts ns) ||
	fail "impairments: sealtap gen failed"
"$BIN" gen --out "$T/imp2.pcap" --connections 5 --loss 5% --reorder 4 --midstream 3 --ts ns >/dev/null ||
	fail "impairments: second run failed"
cmp -s "$T/imp.pcap" "$T/imp2.pcap" || fail "impairments: same seed, different files"
n=$(tshark -r "$T/imp.pcap" 2>/dev/null | wc -l)
[[ $n == "$(count_before packets "$out")" ]] || fail "impairments: tshark reads $n packets, gen says: $out"
[[ -z $(tshark -r "$T/imp.pcap" -Y "tcp.flags.syn == 1" 2>/dev/null | head -1) ]] ||
	fail "impairments: --midstream left a SYN in the capture"
"$BIN" gen --out "$T/imp3.pcap" --connections 5 --loss 5% --reorder 4 --midstream 3 --ts ns --seed 2 >/dev/null ||
	fail "impairments: seed 2 failed"
cmp -s "$T/imp.pcap" "$T/imp3.pcap" && fail "impairments: seeds 1 and 2 give the same file"
echo "ok: impairments ($out)"

# Bad usage: one line on stderr, exit 2, no file left behind.
"$BIN" gen --out "$T/bad.pcap" --mtu 10 >/dev/null 2>"$T/bad.err"
rc=$?
[[ $rc == 2 ]] || fail "bad --mtu: exit $rc, expected 2"
[[ $(wc -l <"$T/bad.err") == 1 ]] || fail "bad --mtu: stderr is not one line"
[[ ! -e $T/bad.pcap && ! -e $T/bad.pcap.tmp ]] || fail "bad --mtu left a file"
"$BIN" gen >/dev/null 2>&1
[[ $? == 2 ]] || fail "missing --out: exit is not 2"
echo "ok: usage errors"
echo "PASS"
