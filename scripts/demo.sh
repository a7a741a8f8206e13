#!/usr/bin/env bash
# The main job on the embedded default: installs what is needed, builds,
# makes a capture of real HTTP/2 traffic (nghttpd + nghttp/h2load/curl in a
# private network namespace; needs root) unless one is given, and runs the
# tap on it: one JSON record per HTTP/2 exchange in out/records/.
#
#   scripts/demo.sh [--pcap FILE] [extra 'sealtap tap' options]
#
# Without root (no namespace), it runs on tests/data/demo-h2.pcap, the
# bundled capture made the same way.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/bootstrap.sh
if [[ ! -f build/build.ninja ]]; then
	meson setup build >/dev/null
fi
ninja -C build >/dev/null

PCAP=
if [[ ${1:-} == --pcap ]]; then PCAP=$2; shift 2; fi
mkdir -p out
if [[ -z $PCAP ]]; then
	if [[ $(id -u) == 0 ]]; then
		PCAP=out/demo-h2.pcap
		echo "demo: capturing real HTTP/2 traffic (nghttpd <- h2load, nghttp, curl) into $PCAP" >&2
		bash scripts/make-capture.sh --demo --out "$PCAP" >&2
	else
		PCAP=tests/data/demo-h2.pcap
	fi
fi

# Development keys: a private SoftHSM2 token under out/hsm (never the
# system one), a KEK in it, and a DEK for the built-in policy's tenant, so
# sensitive values are sealed (not just redacted). The PIN is a dev PIN.
eval "$(scripts/softhsm-env.sh out/hsm 2>/dev/null)"
export SEALTAP_PKCS11_PIN=${SEALTAP_PKCS11_PIN:-sealtap-demo}
(cd out && ../build/src/sealtap keys init >/dev/null &&
	../build/src/sealtap keys create --tenant default >/dev/null) ||
	echo "demo: no keys (SoftHSM2 unavailable): sensitive values will be redacted" >&2

echo "demo: sealtap tap --pcap $PCAP --out out/records" >&2
rm -rf out/records
(cd out && ../build/src/sealtap tap --config ../config/sealtap.yaml \
	--pcap "$(realpath "../$PCAP" 2>/dev/null || echo "$PCAP")" \
	--out records --no-progress "$@" | head -n 2)
echo >&2
echo "demo: one record per HTTP/2 exchange in out/records/ (schema: docs/records.md):" >&2
ls -l out/records >&2
/usr/bin/python3 - out/records <<'PYEOF' >&2
import glob, json, sys
recs = [json.loads(l) for f in sorted(glob.glob(sys.argv[1] + '/records-*.ndjson')) for l in open(f)]
for r in recs[:5]:
    q, s = r['request'], r['response']
    print(f"  {r['client']} -> {r['server']} stream {r['stream_id']}: {q['method']} {q['path']} -> {s['status']}"
          f" ({s['body_bytes']} body bytes, end {r['end']})")
if len(recs) > 5:
    print(f"  ... {len(recs) - 5} more")
sealed = sum(len(r.get('sealed', [])) for r in recs)
if sealed:
    print(f"  {sealed} sensitive values sealed; a key holder opens them with:")
    print("    (cd out && SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf ../build/src/sealtap open records/*.ndjson)")
else:
    print("  (this traffic carries no credentials; tests/integration/canary_tap.sh shows sealing)")
PYEOF
