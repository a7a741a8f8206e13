# shellcheck shell=bash
# Shared helpers for the integration tests (sourced, not run).
#
# A test calls it_init NAME first: that makes a scratch directory $T, removed
# on exit (kept with KEEP=1), and installs the exit trap. make-capture.sh
# tears down its own namespace, processes and iptables rules; sealtap runs in
# the foreground under timeout. Exit codes: 0 pass, 1 fail, 77 skipped.
#
# Environment: SEALTAP_BIN (default <repo>/build/src/sealtap), KEEP=1.

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SEALTAP_BIN:-$IT_ROOT/build/src/sealtap}
PY=/usr/bin/python3
PCAPTOOL=("$PY" "$IT_ROOT/tests/tools/pcaptool.py")
STREAMS=("$PY" "$IT_ROOT/tests/tools/streams.py")
MKCAP=("$IT_ROOT/scripts/make-capture.sh")
TAP_TIMEOUT=${TAP_TIMEOUT:-60}

it_name=""
T=""

it_cleanup() {
	local rc=$?
	if [[ -n $T && -d $T ]]; then
		if [[ ${KEEP:-0} == 1 ]]; then
			echo "$it_name: kept $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit $rc
}

it_init() { # name
	it_name=$1
	T=$(mktemp -d "/tmp/sealtap-it.$1.XXXXXX")
	trap it_cleanup EXIT
	trap 'exit 1' INT TERM
	echo "== $it_name (sealtap: $BIN)"
}

ok() { echo "ok: $*"; }
fail() {
	echo "FAIL: $it_name: $*"
	exit 1
}
skip() {
	echo "SKIP: $it_name: $*"
	exit 77
}

need_bin() {
	[[ -x $BIN ]] || skip "no sealtap binary at $BIN (build it or set SEALTAP_BIN)"
	"$BIN" tap --help >/dev/null 2>&1 || skip "$BIN tap --help fails: tap CLI not available"
}

need_root() {
	[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, tcpdump, iptables)"
	ip netns add "sealtap-probe-$$" 2>/dev/null || skip "cannot create network namespaces here"
	ip netns del "sealtap-probe-$$"
}

need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || skip "$t not installed"
	done
}

# capture NAME [make-capture options...]: real traffic into $T/NAME.pcap.
capture() {
	local name=$1
	shift
	if ! "${MKCAP[@]}" -q -o "$T/$name.pcap" "$@" >"$T/$name.cap.json" 2>"$T/$name.cap.err"; then
		cat "$T/$name.cap.err"
		fail "make-capture $* failed"
	fi
	echo "capture $name: $(cat "$T/$name.cap.json")"
}

pcap_packets() { # file -> packet count
	"${PCAPTOOL[@]}" stats "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["packets"])'
}

# Fails if stderr file $1 shows a sanitizer report or a crash.
no_sanitizer_report() {
	if grep -qE "AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|Segmentation fault|core dumped" "$1"; then
		head -40 "$1"
		fail "sanitizer report or crash in $1"
	fi
}

# run_tap NAME [sealtap tap options...]: runs the tap with stream digests to
# $T/NAME.ndjson, stdout to $T/NAME.out, stderr to $T/NAME.err; fails unless
# it exits 0 with a JSON summary as the last stdout line.
run_tap() {
	local name=$1
	shift
	local rc=0
	timeout "$TAP_TIMEOUT" "$BIN" tap --no-progress --stream-digests "$T/$name.ndjson" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" || rc=$?
	no_sanitizer_report "$T/$name.err"
	if ((rc != 0)); then
		tail -5 "$T/$name.err"
		((rc == 124)) && fail "$name: sealtap tap $* did not finish in ${TAP_TIMEOUT}s"
		fail "$name: sealtap tap $* exited $rc"
	fi
	tail -n 1 "$T/$name.out" >"$T/$name.summary.json"
	"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "packets" in d and "counters" in d' \
		"$T/$name.summary.json" 2>/dev/null || fail "$name: last stdout line is not a JSON summary: $(cat "$T/$name.summary.json")"
}

# summary_get NAME KEY: a top-level key of the summary, or counters.KEY
# (0 when absent: zero counters are not printed).
summary_get() {
	"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
k = sys.argv[2]
v = d["counters"].get(k[9:], 0) if k.startswith("counters.") else d.get(k, 0)
print(v)' "$T/$1.summary.json" "$2"
}

# expect_packets NAME PCAP...: the summary counts every packet of the captures.
expect_packets() {
	local name=$1 n=0 f
	shift
	for f in "$@"; do n=$((n + $(pcap_packets "$f"))); done
	local got
	got=$(summary_get "$name" packets)
	[[ $got == "$n" ]] || fail "$name: summary says $got packets, the captures hold $n"
}

# check_streams NAME PCAP [streams.py check options...]: the digests of run
# NAME against tshark's view of PCAP.
check_streams() {
	local name=$1 pcap=$2
	shift 2
	local rc=0
	"${STREAMS[@]}" check --pcap "$pcap" --digests "$T/$name.ndjson" "$@" >"$T/$name.check" 2>&1 || rc=$?
	cat "$T/$name.check"
	((rc == 0)) || fail "$name: stream digests differ from tshark's streams of $(basename "$pcap") (rc $rc)"
}

# same_digests A B [--map-ipv6 P]: two runs gave the same digest lines.
same_digests() {
	local a=$1 b=$2
	shift 2
	"${STREAMS[@]}" same "$T/$a.ndjson" "$T/$b.ndjson" "$@" || fail "digests of $a and $b differ"
}

digest_lines() { grep -c . "$T/$1.ndjson" || true; }

# full_check NAME PCAP: run the tap on PCAP and compare every direction with
# tshark's streams (after a self-test of the oracle against tshark's own
# follow,tcp,raw); the summary must count every packet.
full_check() {
	local name=$1 pcap=$2
	shift 2
	"${STREAMS[@]}" follow-check --pcap "$pcap" >"$T/$name.follow" 2>&1 ||
		{ cat "$T/$name.follow"; fail "oracle self-test: our assembly differs from tshark follow on $pcap"; }
	run_tap "$name" --pcap "$pcap" "$@"
	expect_packets "$name" "$pcap"
	check_streams "$name" "$pcap"
}

# loss_capture NAME [make-capture options...]: a capture made with random
# drops inside the namespace that really holds retransmissions (tries up to
# three times; the drops are random).
loss_capture() {
	local name=$1 n=0
	shift
	for _ in 1 2 3; do
		capture "$name" "$@"
		n=$("${STREAMS[@]}" retrans --pcap "$T/$name.pcap")
		((n > 0)) && break
		echo "capture $name: no retransmission this time, again"
	done
	((n > 0)) || fail "$name: three captures with $* and not one retransmission"
	ok "$name: tshark counts $n retransmissions (tcp.analysis.retransmission)"
}

# dev_keys TENANT...: a private SoftHSM2 token under $T/hsm (SOFTHSM2_CONF
# exported), PIN 4321 in SEALTAP_PKCS11_PIN, the dev KEK, and one DEK per
# TENANT in ./keys.json (run from $T).
dev_keys() {
	local tn
	eval "$("$IT_ROOT/scripts/softhsm-env.sh" "$T/hsm" 2>/dev/null)" || fail "softhsm-env.sh"
	export SEALTAP_PKCS11_PIN=4321
	"$BIN" keys init >/dev/null 2>"$T/keys.err" || { cat "$T/keys.err"; fail "keys init"; }
	for tn in "$@"; do
		"$BIN" keys create --tenant "$tn" >/dev/null 2>>"$T/keys.err" ||
			{ cat "$T/keys.err"; fail "keys create $tn"; }
	done
}

# ns_make NAME: a network namespace whose loopback has a 1500-byte MTU and
# no segmentation offloads, so captures on it hold real segments.
ns_make() {
	ip netns add "$1" || fail "cannot create namespace $1"
	ip netns exec "$1" ip link set lo mtu 1500 up
	ip netns exec "$1" ethtool -K lo tso off gso off gro off >/dev/null 2>&1 ||
		ip netns exec "$1" ethtool -K lo tso off gso off >/dev/null
}

# ns_up NAME: ns_make NAME ($NS) with nghttpd on port 8080 serving
# $T/www/r ($NG its PID). ns_down removes both; call it from the EXIT trap.
ns_up() {
	NS=$1
	ns_make "$NS"
	mkdir -p "$T/www"
	echo hello >"$T/www/r"
	ip netns exec "$NS" nghttpd --no-tls -d "$T/www" 8080 >/dev/null 2>&1 &
	NG=$!
	sleep 0.3
}
ns_down() {
	[[ -n ${NG:-} ]] && kill "$NG" 2>/dev/null
	NG=""
	[[ -n ${NS:-} ]] && ip netns del "$NS" 2>/dev/null
	return 0
}
