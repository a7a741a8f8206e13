#!/usr/bin/env bash
# The capture path runs the same with and without hugepages, and through a
# real DPDK ethdev (net_pcap vdev) as well as the offline reader:
#  1. offline, --no-huge (eal.hugepages: off)           -> digests A
#  2. offline, hugepages reserved by this test (on)     -> digests == A
#  3. live port net_pcap0 (rx_pcap=capture), 1 and 2 workers -> digests == A
# The hugepage part reserves 2 MiB pages and mounts hugetlbfs if needed and
# restores both afterwards.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SEALTAP_BIN:-$ROOT/build/src/sealtap}
PCAP=$ROOT/tests/data/h2-small.pcap
T=$(mktemp -d)
OLD_NR=$(cat /proc/sys/vm/nr_hugepages)
MOUNTED_BY_US=0
cleanup() {
	echo "$OLD_NR" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	[[ $MOUNTED_BY_US == 1 ]] && umount /dev/hugepages 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

run_tap() { # name config [args...]
	local name=$1 cfg=$2; shift 2
	"$BIN" tap -c "$cfg" --no-progress --stream-digests "$T/$name.ndjson" "$@" >"$T/$name.out" 2>"$T/$name.err" ||
		{ cat "$T/$name.err"; fail "$name: sealtap exited $?"; }
	sort "$T/$name.ndjson" | sed 's/"end":"[a-z]*"//' >"$T/$name.sorted"
	[[ -s $T/$name.sorted ]] || fail "$name: no streams"
}

printf 'eal:\n  hugepages: off\n' >"$T/nohuge.yaml"
run_tap nohuge "$T/nohuge.yaml" --pcap "$PCAP"
grep -q '"hugepages":false' "$T/nohuge.out" || fail "nohuge run used hugepages"
echo "ok: offline without hugepages ($(wc -l <"$T/nohuge.sorted") stream directions)"

# Hugepages: reserve 512 x 2 MiB if fewer are free.
mkdir -p /dev/hugepages
if ! grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts; then
	mount -t hugetlbfs nodev /dev/hugepages && MOUNTED_BY_US=1
fi
FREE=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if ((FREE < 512)); then
	echo $((OLD_NR + 512 - FREE)) >/proc/sys/vm/nr_hugepages
fi
FREE=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if ((FREE < 256)); then
	echo "SKIP hugepage part: could only reserve $FREE hugepages"
else
	printf 'eal:\n  hugepages: on\n' >"$T/huge.yaml"
	run_tap huge "$T/huge.yaml" --pcap "$PCAP"
	grep -q '"hugepages":true' "$T/huge.out" || fail "hugepage run did not use hugepages"
	diff "$T/nohuge.sorted" "$T/huge.sorted" || fail "hugepage run gave other streams"
	echo "ok: offline with hugepages, same streams"
fi
echo "$OLD_NR" >/proc/sys/vm/nr_hugepages

# Live: a real ethdev (net_pcap reads the capture once, then idles).
for w in 1 2; do
	run_tap "live$w" "$T/nohuge.yaml" --port net_pcap0 --duration 2 -w $w -- \
		--vdev "net_pcap0,rx_pcap=$PCAP"
	grep -q '"packets":125' "$T/live$w.out" || { cat "$T/live$w.out"; fail "live port with $w workers: packet count"; }
	diff "$T/nohuge.sorted" "$T/live$w.sorted" || fail "live port with $w workers gave other streams"
	echo "ok: live port net_pcap0, $w worker(s), same streams"
done
echo "PASS"
