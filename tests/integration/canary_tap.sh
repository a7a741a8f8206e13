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
# ---- core dumps of a running tap hold no canary, no DEK, no derived key ----
# The tap replays the capture from memory for a while and is dumped
# mid-run twice:
#   - by the kernel, on SIGABRT with core dumps enabled. The whole file must
#     be clean, thread registers included: sealtap's crash guard parks every
#     thread in a handler that clears its registers before the default
#     action dumps (mem_crash_guard_install);
#   - by gcore, which stops the threads from outside wherever they are: the
#     memory it writes must be clean. A thread stopped in the middle of a
#     burst holds that burst's bytes in its registers, and nothing in the
#     process can clear them first (workers clear theirs after every
#     burst); such register hits are listed, not failed.
# Both honour MADV_DONTDUMP. Besides the canaries and the DEKs, a core must
# not hold the keys the engine derives from each DEK (HKDF-SHA256, salt and
# labels read from seal.h): the GCM key, both halves of the SIV key, the
# HMAC key. Each is searched whole and in 16-byte pieces: AES key schedules
# (OpenSSL's, intel-ipsec-mb's) start with the key's bytes as 16-byte round
# keys, so a key schedule on the dumped heap is found too. The derivation
# done here is checked first: a GCM and a SIV token of each tenant's records
# must open with the keys computed here (otherwise "clean" would prove
# nothing).
start_replay() {
	"$BIN" tap --pcap "$T/c.pcap" --policy "$T/policy.yaml" --out "$T/$1" \
		--preload 5000000 --no-progress >/dev/null 2>&1 &
	TAPPID=$!
	sleep "${CANARY_CORE_AT:-2}"
	cp "/proc/$TAPPID/maps" "$T/maps.$1"
}
CORES=()
# The kernel's dump, into $T whatever core_pattern said (put back on exit).
OLD_PATTERN=$(cat /proc/sys/kernel/core_pattern)
trap 'echo "$OLD_PATTERN" >/proc/sys/kernel/core_pattern; it_cleanup' EXIT
echo "$T/kcore.%p" >/proc/sys/kernel/core_pattern ||
	fail "cannot set core_pattern"
ulimit -c unlimited
start_replay rec-k
kill -ABRT "$TAPPID"
wait "$TAPPID" 2>/dev/null
st=$?
echo "$OLD_PATTERN" >/proc/sys/kernel/core_pattern
ulimit -c 0
[[ $st -eq 134 ]] || fail "the tap ended with $st on SIGABRT, not 134"
[[ -s $T/kcore.$TAPPID ]] || fail "the kernel wrote no core"
CORES+=("$T/kcore.$TAPPID=all=$T/maps.rec-k")
if command -v gcore >/dev/null; then
	start_replay rec-g
	gcore -o "$T/core" "$TAPPID" >"$T/gcore.log" 2>&1
	kill "$TAPPID" 2>/dev/null
	wait "$TAPPID" 2>/dev/null
	[[ -s $T/core.$TAPPID ]] || { cat "$T/gcore.log"; fail "gcore made no core"; }
	CORES+=("$T/core.$TAPPID=memory=$T/maps.rec-g")
else
	echo "SKIP gcore part: gdb (gcore) not installed"
fi
"$PY" - "$(ls "$SOFTHSM2_CONF" >/dev/null && echo /usr/lib/softhsm/libsofthsm2.so)" \
	"$SEALTAP_PKCS11_PIN" "$T/keys.json" "$(IFS=,; echo "${CORES[*]}")" \
	"$IT_ROOT/tests/tools" "$IT_ROOT/include/sealtap/seal.h" "$T/rec" \
	"${CANARIES[@]}" <<'PYEOF' ||
import base64, glob, hashlib, hmac, json, re, sys
sys.path.insert(0, sys.argv[5])
from p11unwrap import deks as unwrap
from coresearch import Core
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
mod, pin, store, cores = sys.argv[1], sys.argv[2].encode(), sys.argv[3], sys.argv[4]
hdr, recdir = open(sys.argv[6]).read(), sys.argv[7]
canaries = [c.encode() for c in sys.argv[8:]]

def define(name):
    return re.search(r'#define %s "([^"]*)"' % name, hdr).group(1).encode()

def hkdf(ikm, info, n):  # RFC 5869 with SHA-256, written out
    prk = hmac.new(define("SEAL_KDF_SALT"), ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm, i = okm + t, i + 1
    return okm[:n]

def lp(b):
    return bytes([len(b)]) + b

deks = unwrap(mod, "sealtap-dev", pin, store)
derived = {}  # key id -> {name: bytes}
for kid, dek in deks:
    siv = hkdf(dek, define("SEAL_KDF_LABEL_SIV"), 64)
    derived[kid] = {"GCM key": hkdf(dek, define("SEAL_KDF_LABEL_GCM"), 32),
                    "SIV key K1 (S2V/CMAC)": siv[:32],
                    "SIV key K2 (CTR)": siv[32:],
                    "HMAC key": hkdf(dek, define("SEAL_KDF_LABEL_HASH"), 32)}

# The derivation is the engine's: tokens of the first run's records open.
checked = set()
for line in (l for f in glob.glob(recdir + "/*.ndjson") for l in open(f)):
    r = json.loads(line)
    hs = dict(r["request"]["headers"])
    for name, pat in (("x-secret", r"^(stk1\.g\.[^.]+\.\S+)$"),
                      ("cookie", r"sid=(stk1\.s\.[^.;]+\.[^;\s]+)")):
        m = re.search(pat, hs.get(name, ""))
        if not m:
            continue
        _, kind, kid, payload = m.group(1).split(".")
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        field = ("request.headers:" + name).encode()
        a = (b"\x01" + kind.encode() + lp(r["tenant"].encode()) +
             lp(kid.encode()) + lp(field))
        if kind == "g":
            AESGCM(derived[kid]["GCM key"]).decrypt(
                raw[:12], raw[12:], a + lp(r["id"].encode()))
        else:
            AESSIV(derived[kid]["SIV key K1 (S2V/CMAC)"] +
                   derived[kid]["SIV key K2 (CTR)"]).decrypt(raw, [a])
        checked.add((kid, kind))
if len(checked) != 2 * len(deks):
    sys.exit("derivation check: opened only %s (test broken)" % sorted(checked))

needles = [(c.decode(), [c]) for c in canaries]
needles += [("DEK bytes of " + kid, [k, k[:16], k[16:]]) for kid, k in deks]
for kid, keys in sorted(derived.items()):
    for name, k in keys.items():
        needles.append(("%s of %s" % (name, kid),
                        [k] + [k[i:i + 16] for i in range(0, len(k), 16)]))

failed = False
for spec in cores.split(","):
    path, mode, maps = spec.split("=")
    core = Core(path, maps)
    bad, regs = [], []
    for label, pieces in needles:
        where = [w for p in pieces for w in core.places(p)]
        if not where:
            continue
        if mode == "memory" and all(w == "registers" for w in where):
            regs.append(label)
            continue
        bad.append(label)
        for w in where:
            print("  %s: %s" % (label, w))
    print("%s core: %d MB searched for %d canaries, %d DEKs and %d derived "
          "keys (derivation checked on %d tokens): %s%s" %
          ("kernel" if mode == "all" else "gcore", core.size >> 20,
           len(canaries), len(deks), sum(len(k) for k in derived.values()),
           len(checked), "clean" if not bad else "FOUND " + ", ".join(bad),
           "; in the registers of a thread stopped mid-burst: " +
           ", ".join(regs) if regs else ""))
    failed |= bool(bad)
sys.exit(1 if failed else 0)
PYEOF
	fail "a core dump of the tap holds plaintext or key material"
ok "core dumps of a running tap: no canary, no DEK bytes, no derived key"
for c in "${CORES[@]}"; do rm -f "${c%%=*}"; done
echo PASS
