#!/usr/bin/env bash
# The main job on the embedded default: installs what is needed, builds,
# makes a capture of real HTTP/2 traffic (nghttpd + nghttp/h2load in a
# private network namespace; needs root) unless one is given, and runs the
# tap on it.
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

echo "demo: sealtap tap --pcap $PCAP --stream-digests out/streams.ndjson" >&2
build/src/sealtap tap --config config/sealtap.yaml --pcap "$PCAP" \
	--stream-digests out/streams.ndjson "$@"
echo "demo: per-stream digests (no payload bytes) in out/streams.ndjson:" >&2
head -n 4 out/streams.ndjson >&2
