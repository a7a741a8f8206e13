# Helpers for the h2_* integration tests (sourced after lib.sh, not run:
# not executable, so scripts/test.sh skips it).
#
# Captures are made the way scripts/make-capture.sh makes them (a private
# network namespace, 1500-byte MTU loopback without offloads, nghttpd
# serving generated files, tcpdump checked for kernel drops), but with any
# client command line, so tests can send odd headers, padding, trailers,
# CONTINUATION and pushes. Everything started here is torn down on exit,
# before lib.sh's own cleanup.

H2ORACLE=("$PY" "$IT_ROOT/tests/tools/h2oracle.py")
H2HOSTILE=("$PY" "$IT_ROOT/tests/tools/h2hostile.py")
H2_PORT=8080
h2_ns="" h2_pids=() h2_dump_pid="" h2_dump_file="" h2_ipt=()

h2_teardown() {
	local p
	for p in "${h2_pids[@]}"; do kill -- "-$p" 2>/dev/null; done
	for p in "${h2_pids[@]}"; do wait "$p" 2>/dev/null; done
	h2_pids=()
	if [[ -n $h2_ns ]]; then
		((${#h2_ipt[@]})) && ip netns exec "$h2_ns" iptables -D "${h2_ipt[@]}" 2>/dev/null
		ip netns del "$h2_ns" 2>/dev/null
		h2_ns=""
	fi
}

h2_exit() {
	local rc=$?
	h2_teardown
	(exit $rc)
	it_cleanup
}

h2_init() { # name
	it_init "$1"
	trap h2_exit EXIT
	mkdir -p "$T/cache"
}

h2_in_ns() { ip netns exec "$h2_ns" "$@"; }

# h2_ns_up: a namespace with a realistic loopback.
h2_ns_up() {
	h2_ns=sealtap-h2t-$$-$RANDOM
	ns_make "$h2_ns"
}

# h2_bg NAME CMD...: runs CMD in the namespace, in its own process group.
h2_bg() {
	local name=$1
	shift
	setsid ip netns exec "$h2_ns" "$@" >"$T/$name.log" 2>&1 &
	h2_pids+=($!)
	h2_last_pid=$!
}

# h2_server DOCROOT [nghttpd options...]: nghttpd on 127.0.0.1:$H2_PORT.
h2_server() {
	local doc=$1 i
	shift
	h2_bg nghttpd nghttpd --no-tls -a 127.0.0.1 -d "$doc" "$@" "$H2_PORT"
	h2_srv_pid=$h2_last_pid
	for ((i = 0; i < 100; i++)); do
		h2_in_ns ss -Hltn "sport = :$H2_PORT" | grep -q . && return 0
		kill -0 "$h2_last_pid" 2>/dev/null || fail "nghttpd exited: $(tail -n 3 "$T/nghttpd.log")"
		sleep 0.05
	done
	fail "nghttpd is not listening on $H2_PORT"
}

# h2_server_stop: stops nghttpd (so a test can restart it with other options).
h2_server_stop() {
	local keep=() p
	for p in "${h2_pids[@]}"; do
		if [[ $p == "$h2_srv_pid" ]]; then
			kill -- "-$p" 2>/dev/null
			wait "$p" 2>/dev/null
		else
			keep+=("$p")
		fi
	done
	h2_pids=("${keep[@]}")
}

# h2_loss P: drop each packet with probability P inside the namespace (the
# capture point is before INPUT, so the capture holds loss and recovery).
h2_loss() {
	h2_ipt=(INPUT -p tcp -m statistic --mode random --probability "$1" -j DROP)
	h2_in_ns iptables -A "${h2_ipt[@]}" || fail "iptables failed"
}

h2_loss_off() {
	((${#h2_ipt[@]})) && h2_in_ns iptables -D "${h2_ipt[@]}"
	h2_ipt=()
}

# h2_dump_start FILE: tcpdump on the namespace's loopback.
h2_dump_start() {
	local i
	h2_dump_file=$1
	h2_dump_log=tcpdump-$(basename "$1")
	: >"$T/$h2_dump_log.log"
	h2_bg "$h2_dump_log" tcpdump -i lo -w "$1" -s 0 -U --immediate-mode -B 32768 -n -Z root "tcp port $H2_PORT"
	h2_dump_pid=$h2_last_pid
	for ((i = 0; i < 200; i++)); do
		grep -q "listening on" "$T/$h2_dump_log.log" && return 0
		kill -0 "$h2_dump_pid" 2>/dev/null || fail "tcpdump exited: $(cat "$T/$h2_dump_log.log")"
		sleep 0.05
	done
	fail "tcpdump did not start"
}

# h2_dump_stop: waits for the connections to close and the file to stop
# growing, stops tcpdump and checks it lost nothing.
h2_dump_stop() {
	local i busy last=-1 sz keep=() p
	for ((i = 0; i < 100; i++)); do
		busy=$(h2_in_ns ss -Htan "( sport = :$H2_PORT or dport = :$H2_PORT )" |
			awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' | wc -l)
		((busy == 0)) && break
		sleep 0.05
	done
	for ((i = 0; i < 100; i++)); do
		sz=$(stat -c %s "$h2_dump_file")
		((sz == last)) && break
		last=$sz
		sleep 0.2
	done
	kill -TERM -- "-$h2_dump_pid" 2>/dev/null
	wait "$h2_dump_pid" 2>/dev/null
	for p in "${h2_pids[@]}"; do [[ $p == "$h2_dump_pid" ]] || keep+=("$p"); done
	h2_pids=("${keep[@]}")
	local captured received kdrop log=$T/$h2_dump_log.log
	captured=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$log")
	received=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$log")
	kdrop=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$log")
	[[ -n $captured ]] || fail "no tcpdump statistics: $(cat "$log")"
	[[ ${kdrop:-0} -eq 0 ]] || fail "tcpdump: $kdrop packets dropped by the kernel"
	# On lo every packet is seen twice (out and in); libpcap keeps one.
	[[ $received -eq $((2 * captured)) ]] || fail "tcpdump: kernel passed $received packets, tcpdump wrote $captured"
	[[ $(pcap_packets "$h2_dump_file") -eq $captured ]] || fail "$h2_dump_file holds fewer packets than tcpdump wrote"
	((captured > 0)) || fail "$h2_dump_file: no packets captured"
	echo "capture $(basename "$h2_dump_file"): $captured packets"
}

# h2_client NAME CMD...: a client in the namespace, in the foreground, with
# a time limit; fails the test if it fails.
h2_client() {
	local name=$1 rc=0
	shift
	timeout 60 ip netns exec "$h2_ns" "$@" >"$T/$name.log" 2>&1 || rc=$?
	if ((rc != 0)); then
		tail -n 5 "$T/$name.log"
		fail "client $name ($1) exited $rc"
	fi
}

# h2_docroot DIR SIZE...: files fSIZE of random bytes.
h2_docroot() {
	local dir=$1 s
	shift
	mkdir -p "$dir"
	for s in "$@"; do [[ -f $dir/f$s ]] || head -c "$s" /dev/urandom >"$dir/f$s"; done
}

# h2_tap NAME PCAP [sealtap tap options...]: records into $T/NAME.rec,
# stdout/stderr/summary like lib.sh's run_tap. Fails unless it exits 0
# with a JSON summary.
h2_tap() {
	h2_tap_try "$@" || fail "$h2_tap_why"
}

# h2_tap_try NAME PCAP [options...]: the same, but returns 1 (reason in
# $h2_tap_why, printed) so a test can go on with its other cases.
h2_tap_try() {
	local name=$1 pcap=$2 rc=0
	shift 2
	rm -rf "$T/$name.rec"
	timeout "$TAP_TIMEOUT" "$BIN" tap --no-progress --pcap "$pcap" --out "$T/$name.rec" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" || rc=$?
	h2_tap_why=""
	if grep -qE "AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:" "$T/$name.err"; then
		grep -E "ERROR|SUMMARY|^    #[0-9] " "$T/$name.err" | head -12
		h2_tap_why="$name: sanitizer report (sealtap tap --pcap $(basename "$pcap") $*)"
	elif ((rc == 124)); then
		h2_tap_why="$name: sealtap tap --pcap $(basename "$pcap") did not finish in ${TAP_TIMEOUT}s"
	elif ((rc > 128)); then
		h2_tap_why="$name: sealtap tap --pcap $(basename "$pcap") $* died of signal $((rc - 128))"
	elif ((rc != 0)); then
		tail -5 "$T/$name.err"
		h2_tap_why="$name: sealtap tap --pcap $(basename "$pcap") $* exited $rc"
	else
		tail -n 1 "$T/$name.out" >"$T/$name.summary.json"
		"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "counters" in d' \
			"$T/$name.summary.json" 2>/dev/null || h2_tap_why="$name: last stdout line is not a JSON summary"
	fi
	[[ -z $h2_tap_why ]] && return 0
	echo "FAILED: $h2_tap_why"
	return 1
}

# h2_oracle NAME PCAP [h2oracle options...]: records of run NAME against
# tshark; prints the diff and fails on a mismatch. The summary object goes
# to $T/NAME.oracle.json.
h2_oracle() {
	h2_oracle_try "$@" || fail "$1: records differ from tshark's decoding of $(basename "$2")"
}

# h2_oracle_try NAME PCAP [h2oracle options...]: the same, but returns 1 on
# a mismatch (after printing the diff) so a test can go on and report every
# case; h2oracle errors still fail the test.
h2_oracle_try() {
	local name=$1 pcap=$2 rc=0
	shift 2
	"${H2ORACLE[@]}" --pcap "$pcap" --port "$H2_PORT" --records "$T/$name.rec" --cache "$T/cache" \
		--json "$T/$name.oracle.json" --max-diff 25 "$@" >"$T/$name.oracle" 2>&1 || rc=$?
	if ((rc != 0)); then
		echo "--- $name: h2oracle $(basename "$pcap") $*"
		cat "$T/$name.oracle"
		((rc == 2)) && fail "$name: h2oracle could not run"
		return 1
	fi
	grep '^h2oracle' "$T/$name.oracle"
}

# oracle_get NAME KEY: a key of the oracle's summary.
oracle_get() {
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' \
		"$T/$1.oracle.json" "$2"
}

# h2_counter NAME COUNTER: a counter of run NAME's summary (0 if absent).
h2_counter() { summary_get "$1" "counters.$2"; }

# h2_pyclient NAME N M FILES [SEED]: a real HTTP/2 client of another kind
# (python3-h2, hpack encoder indexing every field) sends N GETs on one
# connection, M at a time, for /f0../f(FILES-1) with per-request values (a
# path query, a 32-hex-digit cookie, a header named x-req-<i mod 40>) so
# both its dynamic table and nghttpd's (last-modified differs per file when
# the files' mtimes differ) keep turning over: what mid-stream joins need
# to become exact again. Names cycle over 40 because an encoder takes a
# repeated name from the newest entry holding it, so a name present in
# every request is never sent as text again after a join, and stays
# unknowable. The first third of the requests carry x-api-key (one of five
# values): a credential whose name comes from the dynamic table.
h2_pyclient() {
	local name=$1 n=$2 m=$3 files=$4 seed=${5:-1}
	cat >"$T/h2client.py" <<'PYEOF'
import random, socket, sys
import h2.config, h2.connection, h2.events
host, port, n, m, files, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rng = random.Random(seed)
sock = socket.create_connection((host, port))
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding=None))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
sent = done = 0
inflight = set()
def send_one():
    global sent
    sid = conn.get_next_available_stream_id()
    i = sent
    conn.send_headers(sid, [
        (b":method", b"GET"), (b":scheme", b"http"), (b":authority", ("%s:%d" % (host, port)).encode()),
        (b":path", b"/f%d?r=%d" % (i % files, i)), (b"user-agent", b"h2oracle-pyclient/1"),
        (b"x-req-%d" % (i % 40), b"%d" % i), (b"cookie", b"session=%032x" % rng.getrandbits(128))] +
        ([(b"x-api-key", b"key-%d" % (i % 5))] if i < n // 3 else []), end_stream=True)
    inflight.add(sid)
    sent += 1
while done < n:
    while sent < n and len(inflight) < m:
        send_one()
    sock.sendall(conn.data_to_send())
    data = sock.recv(65536)
    if not data:
        sys.exit("server closed the connection after %d of %d responses" % (done, n))
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            inflight.discard(ev.stream_id)
            done += 1
        elif isinstance(ev, h2.events.StreamReset):
            sys.exit("stream %d reset" % ev.stream_id)
    sock.sendall(conn.data_to_send())
conn.close_connection()
sock.sendall(conn.data_to_send())
sock.shutdown(socket.SHUT_WR)
while sock.recv(65536):
    pass
sock.close()
print("pyclient: %d responses" % done)
PYEOF
	h2_client "$name" "$PY" "$T/h2client.py" 127.0.0.1 "$H2_PORT" "$n" "$m" "$files" "$seed"
}

# h2_docroot_mtimes DIR COUNT: files f0..f(COUNT-1) of 50..(50+COUNT) bytes,
# each with its own mtime (so each has its own last-modified value).
h2_docroot_mtimes() {
	local dir=$1 count=$2 i
	mkdir -p "$dir"
	for ((i = 0; i < count; i++)); do
		head -c $((50 + i)) /dev/urandom >"$dir/f$i"
		touch -d "@$((1700000000 + i * 3601))" "$dir/f$i"
	done
}
