#!/usr/bin/env bash
# Installs everything sealtap needs to build, run and test on Debian 12.
# Idempotent: packages already present are skipped, so a second run is fast.
# Must run as root (apt-get); prints what it does on stderr.
set -euo pipefail

# Build toolchain and libraries (pkg-config names in meson.build).
BUILD_PKGS=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev llvm
  libdpdk-dev dpdk dpdk-dev
  libevent-dev libssl-dev libnghttp2-dev libhiredis-dev libjemalloc-dev
  libprotobuf-c-dev protobuf-c-compiler libyaml-dev libpcap-dev libcmocka-dev
  libipsec-mb-dev
)
# Real peers and oracles used by the tests and benchmarks.
TEST_PKGS=(
  nghttp2-client nghttp2-server curl tcpdump tshark iproute2 iptables ethtool
  redis-server softhsm2 opensc python3 python3-grpcio python3-protobuf python3-h2 python3-cryptography
  protobuf-compiler gdb
)

missing=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # wireshark-common asks whether non-root users may capture; answer no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
echo "bootstrap: dependencies present" >&2
