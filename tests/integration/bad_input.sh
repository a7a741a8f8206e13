#!/usr/bin/env bash
# Bad input must give a clear one-line error on stderr and a non-zero exit,
# never a crash (exit < 128) or a sanitizer report: a capture cut in the
# middle of a packet, cut in its file header, an empty file, garbage, a
# directory, a record claiming a 256 MB packet, an 802.11 capture (link type
# 105), a missing file, and invalid config files (value out of range, wrong
# type, unknown key, YAML syntax error, missing file). A capture whose
# packets carry random bytes after valid headers must be processed (exit 0,
# malformed packets counted). Runs with SEALTAP_BIN and, when present, with
# the ASan+UBSan build (SEALTAP_ASAN_BIN, default <repo>/build-asan/src/sealtap).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init bad_input
need_bin

# A small valid capture: the bundled one, or a fresh one when we can.
good=$IT_ROOT/tests/data/h2-small.pcap
if [[ ! -f $good ]]; then
	need_root
	capture small --client nghttp --requests 4 --sizes 100,30000
	good=$T/small.pcap
fi
cp "$good" "$T/good.pcap"
size=$(stat -c %s "$T/good.pcap")
head -c $((size - 700)) "$T/good.pcap" >"$T/cut-mid-packet.pcap"
head -c 13 "$T/good.pcap" >"$T/cut-header.pcap"
: >"$T/empty.pcap"
head -c 20000 /dev/urandom >"$T/garbage.pcap"
mkdir "$T/dir.pcap"
"${PCAPTOOL[@]}" relink "$T/good.pcap" "$T/wifi.pcap" --linktype 105
"$PY" - "$T/good.pcap" "$T/huge-record.pcap" "$T/mangled.pcap" <<'PYEOF'
import random, struct, sys
src = open(sys.argv[1], "rb").read()
# A valid header, then one record that claims 256 MB captured.
open(sys.argv[2], "wb").write(src[:24] + struct.pack("<IIII", 1, 0, 1 << 28, 1 << 28) + b"\0" * 64)
# Every packet keeps its first 14..54 bytes and the rest is random.
rng = random.Random(7)
out, off = [src[:24]], 24
e = "<" if src[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
while off + 16 <= len(src):
    sec, frac, cap, orig = struct.unpack(e + "IIII", src[off:off + 16])
    data = bytearray(src[off + 16:off + 16 + cap])
    keep = rng.choice((14, 18, 23, 34, 38, 54))
    for i in range(keep, len(data)):
        data[i] = rng.randrange(256)
    out.append(src[off:off + 16] + bytes(data))
    off += 16 + cap
open(sys.argv[3], "wb").write(b"".join(out))
PYEOF
printf 'flow:\n  max_flows: -5\n' >"$T/range.yaml"
printf 'flow:\n  max_flows: lots\n' >"$T/type.yaml"
printf 'capture:\n  wrokers: 2\n' >"$T/unknown.yaml"
printf 'flow: [\n  max_flows: 4\n' >"$T/syntax.yaml"

# case NAME EXPECTED-IN-STDERR sealtap-tap-args...
bins=("$BIN")
ASAN_BIN=${SEALTAP_ASAN_BIN:-$IT_ROOT/build-asan/src/sealtap}
[[ -x $ASAN_BIN && $ASAN_BIN != "$BIN" ]] && bins+=("$ASAN_BIN")
nfail=0
bad_case() {
	local name=$1 want=$2 b rc lines
	shift 2
	for b in "${bins[@]}"; do
		rc=0
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
			timeout "$TAP_TIMEOUT" "$b" tap --no-progress --stream-digests "$T/$name.ndjson" "$@" \
			>"$T/$name.out" 2>"$T/$name.err" || rc=$?
		lines=$(grep -c . "$T/$name.err" || true)
		local why=""
		if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault" "$T/$name.err"; then
			why="sanitizer report"
		elif ((rc == 0)); then
			why="exit 0"
		elif ((rc >= 124)); then
			why="exit $rc (crash, signal or timeout)"
		elif ((lines != 1)); then
			why="$lines lines on stderr, expected 1"
		elif ! grep -qiF -- "$want" "$T/$name.err"; then
			why="stderr does not mention '$want'"
		fi
		if [[ -n $why ]]; then
			echo "not ok: $name ($(basename "$b")): $why; stderr:"
			head -20 "$T/$name.err" | sed 's/^/    /'
			nfail=$((nfail + 1))
		else
			echo "ok: $name ($([[ $b == "$BIN" ]] && echo main || echo asan)): exit $rc: $(cat "$T/$name.err")"
		fi
	done
}
bad_case truncated-packet cut-mid-packet.pcap --pcap "$T/cut-mid-packet.pcap"
bad_case truncated-header cut-header.pcap --pcap "$T/cut-header.pcap"
bad_case empty-file empty.pcap --pcap "$T/empty.pcap"
bad_case garbage garbage.pcap --pcap "$T/garbage.pcap"
bad_case directory dir.pcap --pcap "$T/dir.pcap"
bad_case huge-record huge-record.pcap --pcap "$T/huge-record.pcap"
bad_case linktype-105 105 --pcap "$T/wifi.pcap"
bad_case missing-file no-such.pcap --pcap "$T/no-such.pcap"
bad_case missing-second no-such.pcap --pcap "$T/good.pcap" --pcap "$T/no-such.pcap"
bad_case config-range max_flows --config "$T/range.yaml" --pcap "$T/good.pcap"
bad_case config-type max_flows --config "$T/type.yaml" --pcap "$T/good.pcap"
bad_case config-unknown wrokers --config "$T/unknown.yaml" --pcap "$T/good.pcap"
bad_case config-syntax syntax.yaml --config "$T/syntax.yaml" --pcap "$T/good.pcap"
bad_case config-missing no-such.yaml --config "$T/no-such.yaml" --pcap "$T/good.pcap"
bad_case workers-zero workers --workers 0 --pcap "$T/good.pcap"

# Random bytes after valid headers: processed, counted, no crash.
for b in "${bins[@]}"; do
	rc=0
	timeout "$TAP_TIMEOUT" "$b" tap --no-progress --pcap "$T/mangled.pcap" --stream-digests "$T/m.ndjson" \
		>"$T/m.out" 2>"$T/m.err" || rc=$?
	if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/m.err" || ((rc != 0)); then
		echo "not ok: mangled packets ($(basename "$b")): exit $rc"
		head -20 "$T/m.err" | sed 's/^/    /'
		nfail=$((nfail + 1))
	else
		echo "ok: mangled packets: exit 0; $(tail -n 1 "$T/m.out" | "$PY" -c 'import json,sys; c=json.load(sys.stdin)["counters"]; print(", ".join("%s=%d" % (k, v) for k, v in c.items() if k.startswith("decode_")))')"
	fi
done
((nfail == 0)) || fail "$nfail bad-input cases misbehaved"
echo "PASS: $it_name"
