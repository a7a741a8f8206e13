#!/usr/bin/env bash
# `sealtap run`: the tap and the ext_proc server in one process. In a
# private network namespace, the tap captures the loopback through a real
# DPDK port (net_pcap) while curl sends HTTP/2 requests to nghttpd, and a
# python3-grpcio client plays Envoy against the ext_proc server on the same
# loopback. Both faces seal under the one DEK of the built-in policy's
# tenant (a real SoftHSM2 token made here): the ext_proc reply carries a
# token in raw_value, the records of both (source tap and extproc) land in
# one directory, `sealtap open` recovers every canary, and no canary
# appears in plaintext in records, logs or the summary. SIGUSR1 prints the
# ext_proc counters and leaves the process running; SIGINT stops the tap
# and drains the server; a SIGTERM that comes right after the ready file,
# while the tap still sets up, stops it in order too (exit 0); a second
# SIGTERM during the server's drain ends it at once.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init run_both
need_bin
need_root
need_tools nghttpd curl ip ethtool softhsm2-util protoc
"$PY" -c 'import grpc, google.protobuf' 2>/dev/null || skip "python3-grpcio / python3-protobuf not installed"

R=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
cd "$T"
dev_keys default
printf 'eal: { hugepages: off }\n' >"$T/run.yaml"

cleanup_ns() {
	[[ -n ${RUNPID:-} ]] && kill "$RUNPID" 2>/dev/null
	[[ -n ${HOLDPID:-} ]] && kill "$HOLDPID" 2>/dev/null
	ns_down
}
trap 'cleanup_ns; it_cleanup' EXIT
ns_up "runboth$$"

ip netns exec "$NS" "$BIN" run -c "$T/run.yaml" --port net_pcap0 \
	--listen 127.0.0.1:0 --ready-file "$T/ready.json" --out "$T/rec" --no-progress \
	-- --vdev net_pcap0,iface=lo >"$T/out" 2>"$T/err" &
RUNPID=$!
# Up when the server wrote its addresses and the tap's port runs.
for _ in $(seq 600); do [[ -s $T/ready.json ]] && grep -q '"port started"' "$T/err" && break; sleep 0.1; done
sleep 0.5 # workers launched
[[ -s $T/ready.json ]] && grep -q '"port started"' "$T/err" || { cat "$T/err"; fail "sealtap run did not start"; }
ok "sealtap run is up: $(cat "$T/ready.json")"
sleep 0.5

# The tap's face: curl through the captured loopback.
for i in 1 2 3 4 5; do
	c="CANARYtap${R}n$i"
	echo "$c" >>"$T/canaries"
	ip netns exec "$NS" curl -s -o /dev/null --http2-prior-knowledge \
		-H "authorization: Bearer $c" "http://127.0.0.1:8080/r" || fail "curl"
done

# The ext_proc face: Envoy's request_headers for one request.
XC="CANARYxp${R}"
echo "$XC" >>"$T/canaries"
ip netns exec "$NS" "$PY" - "$T/ready.json" "$XC" "$IT_ROOT/tests/integration/extproc" <<'PYEOF' >"$T/xp.out" 2>&1 || { cat "$T/xp.out"; fail "ext_proc client"; }
import json, re, sys
sys.path.insert(0, sys.argv[3])
import grpc, xp
pb = xp.stubs()
addr = json.load(open(sys.argv[1]))["listen"][0]
canary = sys.argv[2]
with grpc.insecure_channel(addr) as ch:
    c = xp.Call(ch, pb)
    c.send(pb.ep.ProcessingRequest(request_headers=xp.headers(pb, [
        (":authority", "shop.test"), (":path", "/cart"), (":method", "GET"),
        (":scheme", "https"), ("authorization", "Bearer " + canary)], eos=True)))
    r = c.recv()
    muts = r.request_headers.response.header_mutation.set_headers
    auth = [m.header.raw_value.decode() for m in muts if m.header.key == "authorization"]
    if len(auth) != 1 or not re.fullmatch(r"stk1\.g\.default-1\.[A-Za-z0-9_-]+", auth[0]):
        raise SystemExit("authorization not sealed by default-1: %r" % auth)
    if canary in str(r):
        raise SystemExit("canary in the reply")
    c.half_close()
    code, _ = c.finish()
    if code != grpc.StatusCode.OK:
        raise SystemExit("stream ended %s" % code)
print("ext_proc reply: authorization ->", auth[0][:24] + "...")
xp.cleanup_stubs()
PYEOF
ok "$(tail -1 "$T/xp.out")"

# SIGUSR1: the ext_proc counters on stdout, the process keeps running
kill -USR1 "$RUNPID"
for _ in $(seq 50); do grep -q '"streams_process":1' "$T/out" && break; sleep 0.1; done
kill -0 "$RUNPID" 2>/dev/null || fail "SIGUSR1 ended sealtap run"
grep -q '"streams_process":1' "$T/out" || fail "SIGUSR1 printed no ext_proc counters"
ok "SIGUSR1: ext_proc counters printed, still running"

sleep 1
kill -INT "$RUNPID"
wait "$RUNPID"
rc=$?
RUNPID=""
[[ $rc == 0 ]] || { tail -20 "$T/err"; fail "sealtap run exited $rc"; }
no_sanitizer_report "$T/err"
grep -q '"extproc stopping: GOAWAY, draining"' "$T/err" || fail "server not drained"

"$PY" - "$T/out" <<'PYEOF' || fail "summary"
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
c, x = s["counters"], s["extproc"]
assert c.get("h2_exchanges", 0) >= 5, c
assert c.get("seal_sealed", 0) >= 5, c
assert x.get("streams_process", 0) == 1, x
assert x.get("records", 0) == 1, x
assert x.get("seal_sealed", 0) >= 1, x
assert c.get("keys_installed", 0) == 1, c
print("summary: tap %d exchanges, %d sealed; ext_proc %d stream, %d sealed" %
      (c["h2_exchanges"], c["seal_sealed"], x["streams_process"], x["seal_sealed"]))
PYEOF
cat "$T"/rec/*.ndjson >"$T/all.ndjson"
grep -q '"source":"extproc"' "$T/all.ndjson" || fail "no ext_proc record"
grep -q '"source":"tap"' "$T/all.ndjson" || fail "no tap record"
for f in "$T/all.ndjson" "$T/out" "$T/err"; do
	for c in $(cat "$T/canaries"); do
		grep -aqF "$c" "$f" && fail "canary $c in plaintext in $(basename "$f")"
	done
done
"$BIN" open "$T"/rec/*.ndjson >"$T/opened" 2>"$T/open.err" || { cat "$T/open.err"; fail "open exited $?"; }
for c in $(cat "$T/canaries"); do
	grep -aqF "$c" "$T/opened" || fail "canary $c not recovered by sealtap open"
done
ok "records of both faces in one directory, every canary sealed and opened, none in plaintext"

# SIGTERM as soon as the server is ready, while the tap sets up its port
rm -f "$T/ready2.json"
ip netns exec "$NS" "$BIN" run -c "$T/run.yaml" --port net_pcap0 \
	--listen 127.0.0.1:0 --ready-file "$T/ready2.json" --out "$T/rec2" --no-progress \
	-- --vdev net_pcap0,iface=lo >"$T/out2" 2>"$T/err2" &
RUNPID=$!
for _ in $(seq 300); do [[ -s $T/ready2.json ]] && break; sleep 0.01; done
[[ -s $T/ready2.json ]] || { cat "$T/err2"; fail "second sealtap run did not start"; }
kill -TERM "$RUNPID"
wait "$RUNPID"
rc=$?
RUNPID=""
[[ $rc == 0 ]] || { tail -5 "$T/err2"; fail "SIGTERM during set-up: exit $rc, not an orderly stop"; }
grep -q '"extproc stopping: GOAWAY, draining"' "$T/err2" || fail "SIGTERM during set-up: server not drained"
ok "SIGTERM right after the ready file: orderly stop, exit 0"

# A second SIGTERM while the server drains a stream left open (60 s
# shutdown_timeout) ends the drain at once
printf 'eal: { hugepages: off }\nextproc:\n  shutdown_timeout: 60s\n' >"$T/run3.yaml"
rm -f "$T/ready3.json"
ip netns exec "$NS" "$BIN" run -c "$T/run3.yaml" --port net_pcap0 \
	--listen 127.0.0.1:0 --ready-file "$T/ready3.json" --out "$T/rec3" --no-progress \
	-- --vdev net_pcap0,iface=lo >"$T/out3" 2>"$T/err3" &
RUNPID=$!
for _ in $(seq 600); do [[ -s $T/ready3.json ]] && grep -q '"port started"' "$T/err3" && break; sleep 0.1; done
[[ -s $T/ready3.json ]] || { cat "$T/err3"; fail "third sealtap run did not start"; }
# a client that sends its request_headers and then holds the stream open
ip netns exec "$NS" "$PY" - "$T/ready3.json" "$IT_ROOT/tests/integration/extproc" <<'PYEOF' >"$T/hold.out" 2>&1 &
import json, sys, time
sys.path.insert(0, sys.argv[2])
import grpc, xp
pb = xp.stubs()
addr = json.load(open(sys.argv[1]))["listen"][0]
ch = grpc.insecure_channel(addr)
c = xp.Call(ch, pb)
c.send(pb.ep.ProcessingRequest(request_headers=xp.headers(pb, [(":path", "/held")])))
c.recv()
print("holding", flush=True)
time.sleep(30)
PYEOF
HOLDPID=$!
for _ in $(seq 100); do grep -q holding "$T/hold.out" && break; sleep 0.1; done
grep -q holding "$T/hold.out" || { cat "$T/hold.out"; fail "holding client"; }
kill -TERM "$RUNPID"
sleep 1
kill -0 "$RUNPID" 2>/dev/null || fail "the drain ended with a stream open, before its timeout"
t0=$(date +%s)
kill -TERM "$RUNPID"
wait "$RUNPID"
rc=$?
RUNPID=""
took=$(($(date +%s) - t0))
kill "$HOLDPID" 2>/dev/null
wait "$HOLDPID" 2>/dev/null
HOLDPID=
[[ $rc == 0 ]] || { tail -5 "$T/err3"; fail "second SIGTERM: exit $rc"; }
((took <= 5)) || fail "second SIGTERM: the drain went on for $took s"
grep -q 'a second stop signal ends the drain' "$T/err3" || fail "second SIGTERM not taken"
ok "a second SIGTERM ends the server's drain at once (${took} s)"
echo PASS
