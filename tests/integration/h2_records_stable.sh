#!/usr/bin/env bash
# Records are a function of the input alone (docs/records.md: ids hash the
# connection, stream id and order; times are packet times): the same
# capture tapped twice, and with two workers, must give the same set of
# record lines byte for byte (order across files and workers aside), and
# no id may repeat. Inputs: a clean capture of many connections from three
# clients, the same capture with packets removed (gaps, resyncs, primed
# tables), and one cut mid-stream.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_records_stable
need_bin
need_root
need_tools nghttp nghttpd curl h2load tcpdump

capture mix --client h2load,nghttp,curl --requests 60 --connections 4 --streams 8 --sizes 100,5000,70000
"${PCAPTOOL[@]}" drop "$T/mix.pcap" "$T/mix-drop.pcap" --only-payload --no-fin --prob 0.04 --seed 5 2>/dev/null ||
	fail "pcaptool drop failed"
"${PCAPTOOL[@]}" cut "$T/mix.pcap" "$T/mix-cut.pcap" --skip-payload-packets 40 2>/dev/null || fail "pcaptool cut failed"

sorted() { cat "$T/$1.rec"/records-*.ndjson 2>/dev/null | LC_ALL=C sort; }
failed=()
for c in mix mix-drop mix-cut; do
	nfail=${#failed[@]}
	h2_tap_try "$c-a" "$T/$c.pcap" || { failed+=("$c-a"); continue; }
	h2_tap_try "$c-b" "$T/$c.pcap" || { failed+=("$c-b"); continue; }
	h2_tap_try "$c-w2" "$T/$c.pcap" --workers 2 || { failed+=("$c-w2"); continue; }
	sorted "$c-a" >"$T/$c-a.sorted"
	n=$(grep -c . "$T/$c-a.sorted")
	((n > 0)) || { echo "$c: no records"; failed+=("$c"); continue; }
	dup=$("$PY" -c 'import json,sys,collections; c=collections.Counter(json.loads(l)["id"] for l in open(sys.argv[1])); print(sum(1 for v in c.values() if v > 1))' "$T/$c-a.sorted")
	((dup == 0)) || { echo "$c: $dup record ids appear more than once"; failed+=("$c"); }
	for v in b w2; do
		sorted "$c-$v" >"$T/$c-$v.sorted"
		if ! cmp -s "$T/$c-a.sorted" "$T/$c-$v.sorted"; then
			echo "$c: run $v differs from run a ($(grep -c . "$T/$c-$v.sorted") vs $n records):"
			"$PY" - "$T/$c-a.sorted" "$T/$c-$v.sorted" <<'PYEOF'
import json, sys
a = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[1])}
b = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[2])}
print("  ids only in a: %d, only in the other: %d" % (len(set(a) - set(b)), len(set(b) - set(a))))
n = 0
for k in sorted(set(a) & set(b)):
    if a[k] != b[k]:
        n += 1
        if n <= 5:
            d = {f: (a[k].get(f), b[k].get(f)) for f in a[k] if a[k].get(f) != b[k].get(f)}
            print("  id %s (%s stream %s): %s" % (k, a[k]["client"], a[k]["stream_id"], str(d)[:300]))
print("  %d records with the same id differ" % n)
PYEOF
			failed+=("$c-$v")
		fi
	done
	[[ $(summary_get "$c-w2" workers) == 2 ]] || { echo "$c-w2: summary says $(summary_get "$c-w2" workers) workers"; failed+=("$c-w2"); }
	((${#failed[@]} == nfail)) || continue
	ok "$c: $n records, identical in two runs and with --workers 2 ($(h2_counter "$c-a" h2_exchanges_anomalous) with anomalies)"
done
((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
echo "PASS: $it_name"
