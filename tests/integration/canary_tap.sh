#!/usr/bin/env bash
# No plaintext secret leaves the tap: canary secrets planted in every place
# a policy rule covers (headers, cookies, query strings, JSON bodies, card
# numbers with a valid Luhn digit; two tenants on two routes) go through
# real HTTP/2 traffic (nghttpd + curl in a namespace), then `sealtap tap`
# with a real SoftHSM2 token made here. The records, the JSON log lines on
# stderr and the summary/metrics on stdout must not contain any canary; the
# records must carry the tenants and the rules applied; `sealtap open`
# must recover every canary exactly; a token moved to another field must
# not open.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init canary_tap
need_bin
need_root
need_tools nghttpd curl tcpdump ip ethtool softhsm2-util tshark

R=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
C_AUTH="CANARYauth$R"
C_COOKIE="CANARYsid$R"
C_SECRET="CANARYhdr$R"
C_QUERY="CANARYq$R"
C_SSN="CANARYssn$R"
C_EMAIL="canary.$R@example.com"
CARD=4111111111111111          # Luhn-valid test card
CARD2="5500 0000 0000 0004"     # Luhn-valid, with spaces
CANARIES=("$C_AUTH" "$C_COOKIE" "$C_SECRET" "$C_QUERY" "$C_SSN" "$C_EMAIL" "$CARD" "$CARD2")

# ---- keys: a private SoftHSM2 token, one DEK per tenant ----
cd "$T"
dev_keys acme beta

cat >"$T/policy.yaml" <<'YAML'
version: 1
tenants:
  acme: { kms: pkcs11, kek: sealtap-dev-kek }
  beta: { kms: pkcs11, kek: sealtap-dev-kek }
rule_sets:
  shop:
    extends: builtin
    headers:
      x-secret: seal
    cookies:
      sid: tokenize
    query:
      token: seal
    json:
      "$.ssn": seal
    detectors:
      card: seal
      email: tokenize
routes:
  - name: a-route
    match: { authority: "a.test" }
    tenant: acme
    rules: shop
  - name: b-route
    match: { authority: "b.test" }
    tenant: beta
    rules: shop
default:
  tenant: acme
  rules: shop
YAML

# ---- real traffic with the canaries ----
mkdir -p "$T/www"
head -c 3000 /dev/urandom >"$T/www/r"
NS="canary$$"
cleanup_ns() {
	[[ -n ${NG:-} ]] && kill "$NG" 2>/dev/null
	[[ -n ${TD:-} ]] && kill -INT "$TD" 2>/dev/null && wait "$TD" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
}
trap 'cleanup_ns; it_cleanup' EXIT
ip netns add "$NS" || fail "netns"
ip netns exec "$NS" ip link set lo mtu 1500 up
ip netns exec "$NS" ethtool -K lo tso off gso off gro off >/dev/null 2>&1
ip netns exec "$NS" tcpdump -i lo -s 0 -U -w "$T/c.pcap" 'tcp port 8080' 2>"$T/td.log" &
TD=$!
for _ in $(seq 50); do grep -q listening "$T/td.log" && break; sleep 0.1; done
ip netns exec "$NS" nghttpd --no-tls -d "$T/www" 8080 >/dev/null 2>&1 &
NG=$!
sleep 0.5
CURL=(ip netns exec "$NS" curl -s -o /dev/null --http2-prior-knowledge)
for host in a.test b.test; do
	"${CURL[@]}" --connect-to "$host:8080:127.0.0.1:8080" \
		-H "authorization: Bearer $C_AUTH" \
		-H "cookie: sid=$C_COOKIE; theme=dark" \
		-H "x-secret: $C_SECRET" \
		"http://$host:8080/r?token=$C_QUERY&card=$CARD&page=2" || fail "curl $host"
	"${CURL[@]}" --connect-to "$host:8080:127.0.0.1:8080" \
		-H "content-type: application/json" \
		--data-binary "{\"ssn\":\"$C_SSN\",\"contact\":\"$C_EMAIL\",\"pay\":\"$CARD2\"}" \
		"http://$host:8080/r" || fail "curl post $host"
done
sleep 0.5
cleanup_ns
TD="" NG=""
trap it_cleanup EXIT
[[ $(pcap_packets "$T/c.pcap") -gt 20 ]] || fail "capture too small"
# The canaries are really in the traffic (HPACK may Huffman-code them, so
# ask tshark's decoder, and look at the bodies as sent).
tshark -r "$T/c.pcap" -d tcp.port==8080,http2 -T fields -e http2.header.value \
	-e http2.data.data 2>/dev/null >"$T/tshark.txt"
for c in "$C_AUTH" "$C_COOKIE" "$C_SECRET" "$C_QUERY" "$CARD"; do
	grep -aqF "$c" "$T/tshark.txt" || fail "canary $c not in the traffic (test broken)"
done
for c in "$C_SSN" "$C_EMAIL" "$CARD2"; do
	grep -aqF "$c" "$T/c.pcap" || fail "canary $c not in the bodies (test broken)"
done
ok "the traffic holds every canary"

# ---- the tap ----
"$BIN" tap --pcap "$T/c.pcap" --policy "$T/policy.yaml" --out "$T/rec" \
	--log-level debug --no-progress >"$T/stdout" 2>"$T/stderr" ||
	{ cat "$T/stderr"; fail "tap exited $?"; }
nrec=$(cat "$T"/rec/*.ndjson | wc -l)
[[ $nrec == 4 ]] || fail "expected 4 records, got $nrec"
for c in "${CANARIES[@]}"; do
	for f in "$T"/rec/*.ndjson "$T/stdout" "$T/stderr"; do
		if grep -aqF "$c" "$f"; then fail "canary $c in $(basename "$f")"; fi
	done
done
ok "no canary in records, logs or metrics"
grep -q '"tenant":"acme"' "$T"/rec/*.ndjson || fail "no acme record"
grep -q '"tenant":"beta"' "$T"/rec/*.ndjson || fail "no beta record"
for rule in "shop/header/x-secret" "builtin/header/authorization" "shop/cookie/sid" \
	"shop/query/token" "shop/json/\$.ssn" "shop/detector/card" "shop/detector/email"; do
	grep -qF "$rule" "$T"/rec/*.ndjson || fail "rule $rule not recorded"
done
sealed=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["counters"].get("seal_sealed",0))' "$T/stdout")
[[ ${sealed:-0} -ge 8 ]] || fail "seal_sealed counter $sealed"
ok "records name tenants and the rules applied; $sealed values sealed"

# ---- a key holder opens them ----
"$BIN" open "$T"/rec/*.ndjson >"$T/opened" 2>"$T/open.err" || { cat "$T/open.err"; fail "open exited $?"; }
for c in "${CANARIES[@]}"; do
	n=$(grep -aoF "$c" "$T/opened" | wc -l)
	[[ $n -ge 2 ]] || fail "canary $c opened $n times (want one per tenant)"
done
ok "sealtap open recovers every canary"

# ---- a token moved to another field does not open ----
"$PY" - "$T"/rec/*.ndjson >"$T/moved.ndjson" <<'PYEOF'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
h = r["request"]["headers"]
auth = next(x for x in h if x[0] == "authorization")
sec = next(x for x in h if x[0] == "x-secret")
sec[1] = auth[1]
print(json.dumps(r, separators=(",", ":")))
PYEOF
if "$BIN" open "$T/moved.ndjson" >/dev/null 2>"$T/moved.err"; then
	fail "a moved token opened"
fi
grep -q "does not open" "$T/moved.err" || fail "no refusal message"
ok "a token moved to another field is refused"
# ---- a core dump of a running tap holds no canary and no DEK ----
# The tap replays the capture from memory for a while; gcore (which honours
# MADV_DONTDUMP, as the kernel's dumper does) snapshots it mid-run.
if command -v gcore >/dev/null; then
	"$BIN" tap --pcap "$T/c.pcap" --policy "$T/policy.yaml" --out "$T/rec2" \
		--preload 5000000 --no-progress >/dev/null 2>&1 &
	TAPPID=$!
	sleep 2
	gcore -o "$T/core" "$TAPPID" >"$T/gcore.log" 2>&1
	kill "$TAPPID" 2>/dev/null
	wait "$TAPPID" 2>/dev/null
	[[ -s $T/core.$TAPPID ]] || { cat "$T/gcore.log"; fail "gcore made no core"; }
	"$PY" - "$(ls "$SOFTHSM2_CONF" >/dev/null && echo /usr/lib/softhsm/libsofthsm2.so)" \
		"$SEALTAP_PKCS11_PIN" "$T/keys.json" "$T/core.$TAPPID" \
		"$IT_ROOT/tests/tools" "${CANARIES[@]}" <<'PYEOF' ||
import sys
sys.path.insert(0, sys.argv[5])
from p11unwrap import deks as unwrap
mod, pin, store, core = sys.argv[1], sys.argv[2].encode(), sys.argv[3], sys.argv[4]
canaries = [c.encode() for c in sys.argv[6:]]
deks = [key for _, key in unwrap(mod, "sealtap-dev", pin, store)]
data = open(core, "rb").read()
bad = [c.decode() for c in canaries if c in data]
bad += ["DEK bytes" for k in deks if k in data or k[:16] in data]
print("core: %d MB searched for %d canaries and %d DEKs: %s" %
      (len(data) >> 20, len(canaries), len(deks), "clean" if not bad else "FOUND " + ", ".join(bad)))
sys.exit(1 if bad else 0)
PYEOF
		fail "a core dump of the tap holds plaintext"
	ok "core dump of a running tap: no canary, no DEK bytes"
	rm -f "$T/core.$TAPPID"
else
	echo "SKIP core dump part: gdb (gcore) not installed"
fi
echo PASS
