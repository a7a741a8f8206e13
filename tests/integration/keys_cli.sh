#!/usr/bin/env bash
# `sealtap keys` against a real SoftHSM2 token made in a scratch directory
# (scripts/softhsm-env.sh, SOFTHSM2_CONF): init / create / rotate / list run
# twice (init and create are idempotent, rotate adds a DEK each time), the
# key store is checked (JSON, mode 0600, states, no temporary files), and
# then every DEK is unwrapped by an independent PKCS#11 client (Python
# ctypes straight on libsofthsm2, RFC 5649) and its bytes - raw, hex,
# base64, base64url - are searched for in every stdout, stderr and the
# store: none may appear, nor the PIN. Then the failures: usage errors,
# wrong PIN, PIN file open to others, wrong module path, unknown token,
# damaged store, token removed mid-run (transient, store untouched, works
# again once the token is back), bad config. Exit codes: 0 ok, 1 runtime,
# 2 usage/config; every error is one line.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init keys_cli
need_bin
MODULE=/usr/lib/softhsm/libsofthsm2.so
[[ -r $MODULE ]] || skip "SoftHSM2 not installed ($MODULE)"
"$BIN" keys --help >/dev/null 2>&1 || skip "$BIN has no keys command"

eval "$("$IT_ROOT/scripts/softhsm-env.sh" "$T/hsm")" || fail "softhsm-env.sh"
# Idempotent: a second call reuses the directory.
"$IT_ROOT/scripts/softhsm-env.sh" "$T/hsm" >/dev/null 2>&1 || fail "softhsm-env.sh twice"
[[ $(stat -c %a "$T/hsm/tokens") == 700 ]] || fail "token dir is not 0700"

cat >"$T/cfg.yaml" <<EOF
kms:
  pin_file: $T/pin
  retry_base: 10ms
  retry_max: 50ms
keys:
  store: $T/keys.json
EOF
n=0
# run EXPECTED_RC NAME sealtap-args...: output in $T/NAME.out / .err.
run() {
	local want=$1 name=$2 rc=0
	shift 2
	n=$((n + 1))
	timeout 60 "$BIN" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
	no_sanitizer_report "$T/$name.err"
	if [[ $rc != "$want" ]]; then
		cat "$T/$name.out" "$T/$name.err"
		fail "$name: sealtap $* exited $rc, expected $want"
	fi
}
# expect_err NAME TEXT: stderr is one line and contains TEXT.
expect_err() {
	local lines
	lines=$(wc -l <"$T/$1.err")
	[[ $lines == 1 ]] || { cat "$T/$1.err"; fail "$1: $lines lines on stderr, expected one"; }
	grep -qF -- "$2" "$T/$1.err" || fail "$1: stderr lacks \"$2\": $(cat "$T/$1.err")"
}

# ---- the normal flow, twice ------------------------------------------------------
for round in 1 2; do
	run 0 "init$round" keys init -c "$T/cfg.yaml" --kek sealtap-dev-kek --kek kek-beta
	run 0 "create-acme$round" keys create --tenant acme -c "$T/cfg.yaml"
	run 0 "create-beta$round" keys create --tenant beta --kek kek-beta -c "$T/cfg.yaml"
	run 0 "rotate$round" keys rotate --tenant acme -c "$T/cfg.yaml"
	run 0 "list$round" keys list -c "$T/cfg.yaml"
	run 0 "json$round" keys list --json -c "$T/cfg.yaml"
done
grep -q "token sealtap-dev: created" "$T/init1.out" || fail "init 1: $(cat "$T/init1.out")"
grep -q "kek kek-beta: created" "$T/init1.out" || fail "init 1 made no kek-beta"
grep -q "token sealtap-dev: present" "$T/init2.out" || fail "init 2 not idempotent: $(cat "$T/init2.out")"
grep -q "kek kek-beta: present" "$T/init2.out" || fail "init 2 made kek-beta again"
grep -q "wrap mechanism: CKM_AES_KEY_WRAP_PAD" "$T/init1.out" || fail "mechanism: $(cat "$T/init1.out")"
[[ $(stat -c %a "$T/pin") == 600 ]] || fail "PIN file is not 0600"
grep -q "created DEK acme-1" "$T/create-acme1.out" || fail "create 1: $(cat "$T/create-acme1.out")"
grep -q "nothing to do" "$T/create-acme2.out" || fail "create 2 not idempotent: $(cat "$T/create-acme2.out")"
grep -q "rotated to DEK acme-2 (acme-1 retired" "$T/rotate1.out" || fail "rotate 1: $(cat "$T/rotate1.out")"
grep -q "rotated to DEK acme-3 (acme-2 retired" "$T/rotate2.out" || fail "rotate 2: $(cat "$T/rotate2.out")"
ok "init/create/rotate/list twice: idempotent where they should be"

[[ $(stat -c %a "$T/keys.json") == 600 ]] || fail "store mode is $(stat -c %a "$T/keys.json")"
ls "$T"/keys.json.tmp.* >/dev/null 2>&1 && fail "temporary store files left behind"
"$PY" - "$T/keys.json" "$T/json2.out" <<'EOF' || fail "store contents"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["format"] == "sealtap-keystore" and s["version"] == 1
t = {x["name"]: x for x in s["tenants"]}
assert sorted(t) == ["acme", "beta"], t.keys()
acme = [(d["id"], d["state"]) for d in t["acme"]["deks"]]
assert acme == [("acme-1", "retired"), ("acme-2", "retired"), ("acme-3", "active")], acme
assert [d["state"] for d in t["beta"]["deks"]] == ["active"]
assert t["beta"]["kek"] == "kek-beta" and t["acme"]["kek"] == "sealtap-dev-kek"
for x in s["tenants"]:
    for d in x["deks"]:
        assert set(d) <= {"id", "state", "created", "retired", "seals", "leases", "wrapped"}, d.keys()
rows = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == 4 and {r["key_id"] for r in rows} == {"acme-1", "acme-2", "acme-3", "beta-1"}
EOF
grep -q "^acme .*acme-3 .*active" "$T/list2.out" || fail "list: $(cat "$T/list2.out")"
ok "store: 4 DEKs, states and KEKs right, mode 0600, no temporary files"

# ---- the same with kms.softhsm_dir: sealtap makes the SoftHSM2 directory ---------------
cat >"$T/cfg2.yaml" <<EOF
kms:
  softhsm_dir: $T/hsm2
  pin_file: $T/pin2
  token_label: other-token
keys:
  store: $T/keys2.json
EOF
(
	unset SOFTHSM2_CONF
	run 0 init-dir keys init -c "$T/cfg2.yaml"
	run 0 init-dir2 keys init -c "$T/cfg2.yaml"
	run 0 create-dir keys create --tenant gamma -c "$T/cfg2.yaml"
) || exit 1
[[ -f $T/hsm2/softhsm2.conf && -d $T/hsm2/tokens ]] || fail "kms.softhsm_dir not created"
grep -q "token other-token: present" "$T/init-dir2.out" || fail "init with softhsm_dir not idempotent"
ok "kms.softhsm_dir: SoftHSM2 directory, token and DEK made by sealtap"

# ---- no key bytes anywhere ---------------------------------------------------------------
# An independent PKCS#11 client unwraps every stored DEK (format byte 0x01 =
# RFC 5649), then looks for the DEKs and the PIN in every output file.
P11UNWRAP_DIR="$IT_ROOT/tests/tools" "$PY" - "$MODULE" "$(head -1 "$T/pin")" "$T/keys.json" "$T"/*.out "$T"/*.err "$T/keys.json" "$T/keys2.json" <<'EOF' || fail "key material or PIN found in output"
import base64, os, sys
sys.path.insert(0, os.environ["P11UNWRAP_DIR"])
from p11unwrap import deks as unwrap
mod, pin, store, files = sys.argv[1], sys.argv[2].encode(), sys.argv[3], sys.argv[4:]
deks = unwrap(mod, "sealtap-dev", pin, store)
assert len(deks) == 4 and len({x for _, x in deks}) == 4, "expected 4 distinct DEKs"
pats = [pin]
for _, key in deks:
    pats += [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
             base64.b64encode(key).rstrip(b"="), base64.urlsafe_b64encode(key).rstrip(b"=")]
    pats += [key[i:i + 12] for i in range(0, 21, 4)]  # pieces, in case of a partial dump
bad = 0
for f in files:
    data = open(f, "rb").read()
    for pat in pats:
        if pat in data:
            print("FOUND key material or PIN in", f); bad += 1; break
print("searched %d files for %d DEKs (%d patterns): %s" % (len(files), len(deks), len(pats), "clean" if not bad else "LEAK"))
sys.exit(1 if bad else 0)
EOF
ok "4 DEKs unwrapped independently (RFC 5649); none of their bytes, nor the PIN, in any output or store"

# ---- usage errors ------------------------------------------------------------------------
run 2 u1 keys
run 2 u2 keys bogus
expect_err u2 "unknown command 'bogus'"
run 2 u3 keys create -c "$T/cfg.yaml"
expect_err u3 "create needs --tenant T"
run 2 u4 keys create --tenant "bad name" -c "$T/cfg.yaml"
expect_err u4 "tenant name 'bad name' is not valid"
run 2 u5 keys rotate --tenant nobody -c "$T/cfg.yaml"
expect_err u5 "unknown tenant nobody"
run 2 u6 keys list --frobnicate
expect_err u6 "unknown option '--frobnicate'"
run 2 u7 keys create --tenant acme --kek other -c "$T/cfg.yaml"
expect_err u7 "tenant acme uses KEK sealtap-dev-kek"
for c in init create rotate list; do
	run 0 "help-$c" keys "$c" --help
	grep -q "usage: sealtap keys $c" "$T/help-$c.out" || fail "keys $c --help"
done
run 0 help-top help keys
ok "usage errors exit 2 with one line; --help exits 0"

# ---- configuration and credential errors ----------------------------------------------------
cfg_with() { # NAME, then YAML lines for the kms section
	local name=$1
	shift
	{
		echo "kms:"
		printf '  %s\n' "$@"
		echo "keys:"
		echo "  store: $T/keys.json"
	} >"$T/$name.yaml"
}
cfg_with wrongpin "pin_env: SEALTAP_TEST_PIN"
SEALTAP_TEST_PIN=not-the-pin-4711 run 2 wrongpin keys rotate --tenant acme -c "$T/wrongpin.yaml"
expect_err wrongpin "CKR_PIN_INCORRECT"
grep -q "not-the-pin-4711" "$T/wrongpin.err" && fail "the PIN appears in the error"
run 2 nopin keys rotate --tenant acme -c "$T/wrongpin.yaml"
expect_err nopin "PIN variable SEALTAP_TEST_PIN is not set"

cp "$T/pin" "$T/pin-open" && chmod 644 "$T/pin-open"
cfg_with openpin "pin_file: $T/pin-open"
run 2 openpin keys rotate --tenant acme -c "$T/openpin.yaml"
expect_err openpin "chmod 600"

cfg_with nomodule "pin_file: $T/pin" "pkcs11_module: /nonexistent/libpkcs11.so"
run 2 nomodule keys rotate --tenant acme -c "$T/nomodule.yaml"
expect_err nomodule "/nonexistent/libpkcs11.so"

cfg_with notoken "pin_file: $T/pin" "token_label: no-such-token"
run 2 notoken keys rotate --tenant acme -c "$T/notoken.yaml"
expect_err notoken 'no token labelled "no-such-token"'

cfg_with badcfg "pin_file: $T/pin" "retry_base: 10s" "retry_max: 1s"
run 2 badcfg keys list -c "$T/badcfg.yaml"
expect_err badcfg "kms.retry_max: value \"1s\" is less than kms.retry_base"
cfg_with badcfg2 "pin: 1234"
run 2 badcfg2 keys list -c "$T/badcfg2.yaml"
expect_err badcfg2 "kms.pin: unknown key"
ok "wrong PIN, open PIN file, missing module/token, bad config: exit 2, one line, no PIN"

# ---- damaged store: refused, nothing applied -----------------------------------------------------
cp "$T/keys.json" "$T/keys.good"
sum=$(sha256sum <"$T/keys.json")
head -c 300 "$T/keys.good" >"$T/keys.json"
run 1 cut-list keys list -c "$T/cfg.yaml"
expect_err cut-list "not valid JSON: unexpected end of file (truncated?)"
run 1 cut-rotate keys rotate --tenant acme -c "$T/cfg.yaml"
expect_err cut-rotate "$T/keys.json:"
[[ $(head -c 300 "$T/keys.good" | sha256sum) == $(sha256sum <"$T/keys.json") ]] || fail "a damaged store was rewritten"
sed 's/"active"/"actve"/' "$T/keys.good" >"$T/keys.json"
run 1 bad-state keys list -c "$T/cfg.yaml"
expect_err bad-state 'is not one of: active, retired'
cp "$T/keys.good" "$T/keys.json"
ok "damaged store: exit 1, file:line named, store untouched"

# ---- token removed mid-run ------------------------------------------------------------------------
mv "$T/hsm/tokens" "$T/hsm/tokens.gone"
mkdir -m 700 "$T/hsm/tokens"
run 2 gone keys rotate --tenant acme -c "$T/cfg.yaml"
expect_err gone 'no token labelled "sealtap-dev"'
[[ $(sha256sum <"$T/keys.json") == "$sum" ]] || fail "store changed while the token was gone"
rm -rf "$T/hsm/tokens" && mv "$T/hsm/tokens.gone" "$T/hsm/tokens"
run 0 back keys rotate --tenant acme -c "$T/cfg.yaml"
grep -q "rotated to DEK acme-4" "$T/back.out" || fail "rotate after the token came back: $(cat "$T/back.out")"
run 0 list-back keys list -c "$T/cfg.yaml"
ok "token gone: clear error, store untouched; back: rotation works"

echo "keys_cli: $n sealtap runs, all as expected"
