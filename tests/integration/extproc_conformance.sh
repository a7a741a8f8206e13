#!/usr/bin/env bash
# ext_proc conformance: python3-grpcio plays Envoy's message sequences for
# every processing mode against `sealtap extproc` over h2c, TLS (ALPN h2)
# and mutual TLS (built-in rules, no keys: fail closed); then the policy
# with real keys (a SoftHSM2 token and DEKs made here with `sealtap keys
# init/create`: tokens in mutations and records, deny, mode_override,
# `sealtap open`), bad input over raw HTTP/2 (python3-h2, nghttp), and the
# life cycle (SO_REUSEPORT threads, graceful shutdown on SIGTERM). Servers
# run on 127.0.0.1 with ephemeral ports and are stopped by PID; Python
# stubs are generated from proto/*.proto with protoc at test time. See
# tests/integration/extproc/*.py.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init extproc_conformance

command -v protoc >/dev/null || skip "protoc not installed"
"$PY" -c 'import grpc, google.protobuf, h2' 2>/dev/null ||
	skip "python3-grpcio / python3-protobuf / python3-h2 not installed"
command -v nghttp >/dev/null || skip "nghttp not installed"
[[ -r /usr/lib/softhsm/libsofthsm2.so ]] || skip "SoftHSM2 not installed"
[[ -x $BIN ]] || fail "no sealtap binary at $BIN"
export SEALTAP_BIN=$BIN

D=$IT_ROOT/tests/integration/extproc
rc=0
for mode in plain tls mtls; do
	mkdir -p "$T/$mode"
	timeout 300 "$PY" "$D/conformance.py" --workdir "$T/$mode" --tls "$mode" || rc=1
done
# keys: a private SoftHSM2 token (SOFTHSM2_CONF for every process below),
# one DEK per tenant
mkdir -p "$T/keys" "$T/policy"
eval "$("$IT_ROOT/scripts/softhsm-env.sh" "$T/keys/hsm" 2>/dev/null)" || fail "softhsm-env.sh"
cat >"$T/keys/keys.yaml" <<EOF
kms:
  pin_file: "$T/keys/pin"
keys:
  store: "$T/keys/keys.json"
EOF
{
	"$BIN" keys init -c "$T/keys/keys.yaml" &&
		"$BIN" keys create --tenant acme -c "$T/keys/keys.yaml" &&
		"$BIN" keys create --tenant globex -c "$T/keys/keys.yaml" &&
		"$BIN" keys create --tenant default -c "$T/keys/keys.yaml"
} >"$T/keys/out" 2>&1 || { cat "$T/keys/out"; fail "sealtap keys init/create"; }
timeout 300 "$PY" "$D/policy.py" --workdir "$T/policy" --keys-yaml "$T/keys/keys.yaml" || rc=1
mkdir -p "$T/bad"
timeout 300 "$PY" "$D/bad_input.py" --workdir "$T/bad" || rc=1
mkdir -p "$T/life"
timeout 120 "$PY" "$D/lifecycle.py" --workdir "$T/life" --keys-yaml "$T/keys/keys.yaml" || rc=1
# TLS key files that cannot serve: one line naming the key, exit 2.
mkdir -p "$T/tlskey"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tlskey/k.pem" -out "$T/tlskey/c.pem" \
	-days 1 -subj /CN=localhost >/dev/null 2>&1 || fail "openssl req"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tlskey/other.pem" -out "$T/tlskey/o.pem" \
	-days 1 -subj /CN=other >/dev/null 2>&1 || fail "openssl req"
echo "not a key" >"$T/tlskey/garbage.pem"
for bad in garbage:"cannot load" missing:"cannot open" other:"cannot load .*mismatch"; do
	key=${bad%%:*} want=${bad#*:}
	printf 'extproc:\n  tls_cert: %s\n  tls_key: %s\n' "$T/tlskey/c.pem" "$T/tlskey/$key.pem" >"$T/tlskey/$key.yaml"
	krc=0
	timeout 20 "$BIN" extproc -c "$T/tlskey/$key.yaml" --listen 127.0.0.1:0 --duration 1 \
		--no-records >/dev/null 2>"$T/tlskey/$key.err" || krc=$?
	[[ $krc == 2 ]] && grep -qE "extproc.tls_key: $want" "$T/tlskey/$key.err" ||
		{ cat "$T/tlskey/$key.err"; echo "FAIL: tls key $key: exit $krc"; rc=1; }
done
printf 'extproc:\n  tls_cert: %s\n  tls_key: %s\n' "$T/tlskey/c.pem" "$T/tlskey/k.pem" >"$T/tlskey/ok.yaml"
timeout 20 "$BIN" extproc -c "$T/tlskey/ok.yaml" --listen 127.0.0.1:0 --duration 0.5 \
	--no-records >/dev/null 2>"$T/tlskey/ok.err" || { cat "$T/tlskey/ok.err"; echo "FAIL: tls key ok"; rc=1; }
[[ $rc == 0 ]] || fail "see the FAIL lines above (KEEP=1 keeps $T)"
ok "ext_proc conformance over h2c, TLS and mTLS; policy with real keys; bad input; TLS key files; life cycle"
