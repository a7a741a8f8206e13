#!/usr/bin/env bash
# Key lifecycle during a live run. `sealtap tap` captures a real DPDK port
# (net_pcap on the loopback of a private network namespace) while curl sends
# HTTP/2 requests to nghttpd, each with its own canary in `authorization`,
# and a real SoftHSM2 token made here holds the KEK.
#
#  count   keys.dek_max_seals 20: the keys thread makes successor DEKs as the
#          count nears the limit; the records name several DEKs;
#  age     keys.dek_max_age 2s: the same by age;
#  outage  the token store disappears mid-run and comes back: sealing goes
#          on with the cached DEK, the outage is logged and counted; then
#          `sealtap keys rotate` runs beside the tap, which adopts the new
#          DEK from the key store.
# In every run: tenant gamma's wrapped DEK is damaged, so gamma fails closed
# (its values redacted, counted, logged); no canary appears in records,
# logs or metrics; `sealtap open` recovers every sealed canary; every acme
# value is either sealed or counted as redacted for want of a key.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init keys_rotation
need_bin
need_root
need_tools nghttpd curl ip ethtool softhsm2-util

R=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
cd "$T"
dev_keys acme gamma
# Damage gamma's wrapped DEK: still valid base64, no longer unwraps.
"$PY" - "$T/keys.json" <<'PYEOF' || fail "cannot damage gamma's DEK"
import base64, json, sys
s = json.load(open(sys.argv[1]))
for t in s["tenants"]:
    if t["name"] == "gamma":
        b = bytearray(base64.b64decode(t["deks"][0]["wrapped"]))
        b[len(b) // 2] ^= 0x5a
        t["deks"][0]["wrapped"] = base64.b64encode(bytes(b)).decode()
json.dump(s, open(sys.argv[1], "w"), indent=2)
PYEOF
chmod 600 "$T/keys.json"

cat >"$T/policy.yaml" <<'YAML'
version: 1
tenants:
  acme: { kms: pkcs11, kek: sealtap-dev-kek }
  gamma: { kms: pkcs11, kek: sealtap-dev-kek }
routes:
  - name: g-route
    match: { authority: "g.test" }
    tenant: gamma
    rules: builtin
default:
  tenant: acme
  rules: builtin
YAML

cleanup_ns() {
	[[ -n ${TAPPID:-} ]] && kill "$TAPPID" 2>/dev/null
	[[ -d $T/hsm/tokens.gone ]] && mv "$T/hsm/tokens.gone" "$T/hsm/tokens"
	ns_down
}
trap 'cleanup_ns; it_cleanup' EXIT
ns_up "keyrot$$"

# request HOST CANARY: one HTTP/2 request carrying CANARY in authorization.
request() {
	ip netns exec "$NS" curl -s -o /dev/null --http2-prior-knowledge \
		--connect-to "$1:8080:127.0.0.1:8080" \
		-H "authorization: Bearer $2" "http://$1:8080/r" || fail "curl $1"
}

# live_run NAME REQUESTS [HOOK_AT HOOK]: runs the tap on the namespace's
# loopback with config $T/NAME.yaml, sends REQUESTS requests (every 10th
# to gamma) about 50 ms apart, then stops the tap with SIGINT; HOOK runs
# before request HOOK_AT. Canaries sent: $T/NAME.acme, $T/NAME.gamma.
live_run() {
	local name=$1 n=$2 hook_at=${3:-0} hook=${4:-}
	: >"$T/$name.acme"
	: >"$T/$name.gamma"
	ip netns exec "$NS" "$BIN" tap -c "$T/$name.yaml" --policy "$T/policy.yaml" \
		--port net_pcap0 --out "$T/$name.rec" --no-progress \
		-- --vdev net_pcap0,iface=lo >"$T/$name.out" 2>"$T/$name.err" &
	TAPPID=$!
	for _ in $(seq 600); do
		grep -q '"port started"' "$T/$name.err" && grep -q '"policy loaded"' "$T/$name.err" && break
		sleep 0.1
	done
	grep -q '"policy loaded"' "$T/$name.err" || { cat "$T/$name.err"; fail "$name: tap did not start"; }
	sleep 0.5
	for i in $(seq "$n"); do
		[[ $i == "$hook_at" ]] && $hook
		local c="CANARY${name}${R}n$i"
		if ((i % 10 == 0)); then
			echo "$c" >>"$T/$name.gamma"
			request g.test "$c"
		else
			echo "$c" >>"$T/$name.acme"
			request a.test "$c"
		fi
		sleep 0.05
	done
	sleep 1
	kill -INT "$TAPPID"
	wait "$TAPPID"
	local rc=$?
	TAPPID=""
	[[ $rc == 0 ]] || { tail -20 "$T/$name.err"; fail "$name: tap exited $rc"; }
	no_sanitizer_report "$T/$name.err"
	"$BIN" open "$T/$name.rec"/*.ndjson >"$T/$name.opened" 2>"$T/$name.open.err" ||
		{ cat "$T/$name.open.err"; fail "$name: sealtap open exited $?"; }
}

# counter NAME COUNTER: a counter from the tap's summary line (0 if absent).
counter() {
	"$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["counters"].get(sys.argv[2],0))' \
		"$T/$1.out" "$2"
}

# check_run NAME MIN_KEYS: the checks every run shares; prints the DEK ids
# that sealed acme values.
check_run() {
	local name=$1 min_keys=$2 c
	local nacme ngamma
	nacme=$(wc -l <"$T/$name.acme")
	ngamma=$(wc -l <"$T/$name.gamma")
	local nrec
	nrec=$(cat "$T/$name.rec"/*.ndjson | wc -l)
	[[ $nrec == $((nacme + ngamma)) ]] || fail "$name: $nrec records for $((nacme + ngamma)) requests"
	for f in "$T/$name.rec"/*.ndjson "$T/$name.out" "$T/$name.err"; do
		for c in $(cat "$T/$name.acme" "$T/$name.gamma"); do
			grep -aqF "$c" "$f" && fail "$name: canary $c in plaintext in $(basename "$f")"
		done
	done
	# acme: every value opens, except those redacted while no key was
	# usable (counted); gamma: never sealed, always redacted.
	local opened=0 missing=()
	for c in $(cat "$T/$name.acme"); do
		if grep -aqF "$c" "$T/$name.opened"; then opened=$((opened + 1)); else missing+=("$c"); fi
	done
	for c in $(cat "$T/$name.gamma"); do
		grep -aqF "$c" "$T/$name.opened" && fail "$name: gamma canary $c was sealed"
	done
	local closed
	closed=$(counter "$name" seal_failed_closed)
	[[ $closed == $((ngamma + ${#missing[@]})) ]] ||
		fail "$name: seal_failed_closed $closed, want $ngamma gamma + ${#missing[@]} unopened acme values"
	((opened * 10 >= nacme * 9)) || fail "$name: only $opened of $nacme acme values sealed"
	grep -q '"tenant fails closed: its values are redacted","tenant":"gamma"' "$T/$name.err" ||
		fail "$name: gamma's failure not logged"
	[[ $(counter "$name" keys_install_failures) -ge 1 ]] || fail "$name: gamma's failed install not counted"
	grep -aoh '"stk1\.g\.acme-[0-9]*\.' "$T/$name.rec"/*.ndjson | sort -u | cut -d. -f3 >"$T/$name.keys"
	local nkeys
	nkeys=$(wc -l <"$T/$name.keys")
	((nkeys >= min_keys)) || fail "$name: acme values sealed under $nkeys DEK(s), want >= $min_keys"
	ok "$name: $opened/$nacme acme values sealed under $nkeys DEKs ($(paste -sd, "$T/$name.keys")) and opened; ${#missing[@]} redacted and counted; $ngamma gamma values failed closed; no canary in records, logs, metrics"
}

# ---- rotation by count -------------------------------------------------------------
cat >"$T/count.yaml" <<EOF
eal: { hugepages: off }
kms: { retry_base: 10ms, retry_max: 500ms }
keys: { store: $T/keys.json, dek_max_seals: 20, rotate_at: 50, save_interval: 1s }
EOF
live_run count 100
check_run count 3
rot=$(counter count keys_rotations)
[[ $rot -ge 3 ]] || fail "count: keys_rotations $rot"
grep -q '"DEK rotated","tenant":"acme".*"reason":"count"' "$T/count.err" || fail "count: no rotation by count logged"
"$BIN" keys list --tenant acme --json >"$T/list.json" 2>"$T/list.err" || { cat "$T/list.err"; fail "keys list"; }
"$PY" - "$T/list.json" "$T/count.keys" <<'PYEOF' || fail "count: key store after the run"
import json, sys
deks = {d["key_id"]: d for d in map(json.loads, open(sys.argv[1]))}
used = open(sys.argv[2]).read().split()
active = [d for d in deks.values() if d["state"] == "active"]
assert len(active) == 1, "one active DEK, got %d" % len(active)
for k in used:
    assert k in deks, "DEK %s named in records is not in the store" % k
for k in used[:-1]:
    # retired DEKs carry the seals the run made with them (saved at rotation)
    assert deks[k]["seals"] >= 1, "DEK %s: seals %s" % (k, deks[k]["seals"])
print("store: %d DEKs for acme, 1 active, seals %s" % (len(deks), [deks[k]["seals"] for k in used]))
PYEOF
ok "count: $rot rotations during the run, the key store lists every DEK the records name"

# ---- rotation by age ----------------------------------------------------------------
cat >"$T/age.yaml" <<EOF
eal: { hugepages: off }
kms: { retry_base: 10ms, retry_max: 500ms }
keys: { store: $T/keys.json, dek_max_age: 2s, rotate_at: 50 }
EOF
live_run age 80
check_run age 3
grep -q '"DEK rotated","tenant":"acme".*"reason":"age"' "$T/age.err" || fail "age: no rotation by age logged"
ok "age: $(counter age keys_rotations) rotations by age"

# ---- KMS outage, then `sealtap keys rotate` beside the running tap ------------------------
outage_start() { mv "$T/hsm/tokens" "$T/hsm/tokens.gone"; }
outage_end() {
	sleep 1.5 # health probes see the outage
	mv "$T/hsm/tokens.gone" "$T/hsm/tokens"
	sleep 1.5 # ... and the recovery
	"$BIN" keys rotate --tenant acme >"$T/rot.out" 2>"$T/rot.err" || { cat "$T/rot.err"; fail "keys rotate during the run"; }
}
cat >"$T/outage.yaml" <<EOF
eal: { hugepages: off }
kms: { retry_base: 10ms, retry_max: 200ms, retry_attempts: 2, health_interval: 200ms }
keys: { store: $T/keys.json }
EOF
# Requests 1-20 with the token present, 21-40 without it, the rest after
# it is back and the DEK was rotated by the CLI.
outage_hook() {
	outage_start
	local j c
	for j in $(seq 20); do
		c="CANARYoutage${R}x$j"
		echo "$c" >>"$T/outage.acme"
		request a.test "$c"
		sleep 0.05
	done
	outage_end
}
live_run outage 60 21 outage_hook
check_run outage 2
grep -q '"kms unavailable"' "$T/outage.err" || fail "outage: not logged"
grep -q '"kms reachable again"' "$T/outage.err" || fail "outage: recovery not logged"
[[ $(counter outage kms_outages) -ge 1 ]] || fail "outage: kms_outages not counted"
[[ $(counter outage kms_failures) -ge 1 ]] || fail "outage: kms_failures not counted"
new=$(grep -o 'rotated to DEK acme-[0-9]*' "$T/rot.out" | awk '{print $4}')
[[ -n $new ]] || fail "outage: keys rotate said $(cat "$T/rot.out")"
grep -q "^$new\$" "$T/outage.keys" || fail "outage: the tap did not adopt $new (sealed with $(paste -sd, "$T/outage.keys"))"
grep -q '"tenant key replaced","tenant":"acme","key_id":"'"$new"'"' "$T/outage.err" || fail "outage: adoption of $new not logged"
ok "outage: sealing went on with the cached DEK through the outage (logged, counted); $new from sealtap keys rotate adopted mid-run"
echo PASS
