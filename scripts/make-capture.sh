#!/usr/bin/env bash
# Makes a real HTTP/2 (h2c, prior knowledge) capture: nghttpd serves
# generated files inside a private network namespace, a real client fetches
# them, tcpdump records the loopback. Optionally drops packets at random with
# iptables inside the namespace, so the capture holds real TCP loss recovery
# (the capture point is before INPUT, so it sees the lost packet *and* its
# retransmission: the stream itself is complete).
#
# Usage: make-capture.sh -o OUT.pcap [options]
#   --client nghttp|curl|h2load  client (default nghttp); a comma list runs
#                                each in turn into the same capture
#   --requests N                 requests in total (default 12)
#   --connections C              parallel connections (nghttp: C clients each
#                                sending all requests; curl: C at a time, one
#                                request per connection) (default 1)
#   --streams M                  concurrent streams per connection (h2load -m,
#                                curl --parallel-max; nghttp sends all at once) (default 8)
#   --sizes S1,S2,...            response body sizes in bytes, cycled over the
#                                requests (default 100,5000,70000,300000)
#   --post-size N                send requests as POST with an N-byte body
#   --loss P                     drop each packet with probability P (0..1)
#   --ipv6                       talk over ::1 instead of 127.0.0.1
#   --port P                     server port (default 8080)
#   --bench                      benchmark reference capture preset (see below)
#   --demo                       demo preset: h2load, nghttp and curl in turn
#   -q                           only the final summary line on stdout
#
# Prints one JSON line at the end: {"file":..., "packets":..., "avg_wire_size":...}.
# Exits non-zero if anything failed (server, client, or the capture lost
# packets in the kernel); everything it started is torn down in any case.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
pcaptool=(/usr/bin/python3 "$repo/tests/tools/pcaptool.py")

out="" client=nghttp requests=12 connections=1 streams=8
sizes=100,5000,70000,300000 post_size=0 loss=0 ipv6=0 port=8080 bench=0 demo=0 quiet=0
small_requests=0 small_streams=2 small_sizes=

die() { echo "make-capture: $*" >&2; exit 1; }
say() { ((quiet)) || echo "make-capture: $*" >&2; }

while (($#)); do
	case $1 in
	-o | --out) out=$2; shift 2 ;;
	--client) client=$2; shift 2 ;;
	--requests) requests=$2; shift 2 ;;
	--connections) connections=$2; shift 2 ;;
	--streams) streams=$2; shift 2 ;;
	--sizes) sizes=$2; shift 2 ;;
	--post-size) post_size=$2; shift 2 ;;
	--loss) loss=$2; shift 2 ;;
	--ipv6) ipv6=1; shift ;;
	--port) port=$2; shift 2 ;;
	--bench) bench=1; shift ;;
	--demo) demo=1; shift ;;
	-q) quiet=1; shift ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

if ((bench)); then
	# Benchmark reference: multiplexed HTTP/2 from h2load in two phases
	# against the same server: bulk downloads (8 connections x 16 streams;
	# full-MSS segments, few ACKs) then API-style small exchanges (8 x 2
	# streams, 60-400 byte bodies: packets of a few dozen to a few hundred
	# bytes). On this loopback the bulk phase alone averages ~1.3 KB a
	# packet; the small phase brings the mix to ~1.2 KB (1.15-1.25 KB from
	# run to run: ACK coalescing varies) over ~60k packets.
	# BENCH_REQUESTS, BENCH_SIZES, BENCH_SMALL_REQUESTS override the mix.
	client=h2load,h2load-small
	[[ -n $out ]] || out=$repo/bench/data/h2-bench.pcap
	requests=${BENCH_REQUESTS:-2400} connections=8 streams=16
	sizes=${BENCH_SIZES:-150,400,3000,16000,40000,60000,90000}
	small_requests=${BENCH_SMALL_REQUESTS:-4000} small_streams=2
	small_sizes=60,120,250,400
fi

if ((demo)); then
	client=h2load,nghttp,curl requests=8 connections=2 streams=4
	sizes=120,2500,40000,150000
fi

[[ -n $out ]] || die "-o OUT.pcap is required"
IFS=, read -r -a clients <<<"$client"
for k in "${clients[@]}"; do
	case $k in nghttp | curl | h2load | h2load-small) ;; *) die "--client must be nghttp, curl or h2load (or a comma list)" ;; esac
done
[[ $requests =~ ^[0-9]+$ && $requests -gt 0 ]] || die "--requests must be a positive integer"
[[ $connections =~ ^[0-9]+$ && $connections -gt 0 ]] || die "--connections must be a positive integer"
[[ $streams =~ ^[0-9]+$ && $streams -gt 0 ]] || die "--streams must be a positive integer"
[[ $sizes =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--sizes must be a comma list of byte counts"
[[ $post_size =~ ^[0-9]+$ ]] || die "--post-size must be a byte count"
[[ $loss =~ ^(0|0?\.[0-9]+|1)$ ]] || die "--loss must be a probability 0..1"
[[ $(id -u) -eq 0 ]] || die "needs root (network namespace, tcpdump, iptables)"
for t in ip tcpdump nghttpd ethtool "${clients[@]%-small}"; do
	command -v "$t" >/dev/null || die "$t not found"
done

ns=sealtap-cap-$$-$RANDOM
work=$(mktemp -d /tmp/sealtap-cap.XXXXXX)
tmp_out="$out.tmp"
pids=()
ns_made=0 ipt_rule=() ipt=iptables

cleanup() {
	local rc=$?
	set +e
	for p in "${pids[@]}"; do
		kill -- "-$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	if ((ns_made)); then
		if ((${#ipt_rule[@]})); then
			ip netns exec "$ns" "$ipt" -D "${ipt_rule[@]}" 2>/dev/null
		fi
		ip netns del "$ns" 2>/dev/null
	fi
	if [[ -n ${KEEP_WORK:-} ]]; then echo "make-capture: kept $work" >&2; else rm -rf "$work"; fi
	rm -f "$tmp_out"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { ip netns exec "$ns" "$@"; }

# --- namespace with a realistic loopback: MTU 1500, no segmentation offloads
ip netns add "$ns"
ns_made=1
nsx ip link set lo mtu 1500 up
nsx ethtool -K lo tso off gso off gro off >/dev/null 2>&1 ||
	nsx ethtool -K lo tso off gso off >/dev/null
if ((ipv6)); then host="[::1]" addr=::1; else host=127.0.0.1 addr=127.0.0.1; fi

# --- content
mkdir -p "$work/docroot"
IFS=, read -r -a size_list <<<"$sizes"
for s in "${size_list[@]}"; do
	[[ -f $work/docroot/f$s ]] || head -c "$s" /dev/urandom >"$work/docroot/f$s"
done
if ((post_size)); then
	head -c "$post_size" /dev/urandom >"$work/post.bin"
fi
urls=()
for ((i = 0; i < requests; i++)); do
	urls+=("http://$host:$port/f${size_list[i % ${#size_list[@]}]}?r=$i")
done
small_urls=()
if [[ -n $small_sizes ]]; then
	IFS=, read -r -a small_list <<<"$small_sizes"
	for s in "${small_list[@]}"; do
		[[ -f $work/docroot/f$s ]] || head -c "$s" /dev/urandom >"$work/docroot/f$s"
		small_urls+=("http://$host:$port/f$s")
	done
fi

# --- server
setsid ip netns exec "$ns" nghttpd --no-tls -a "$addr" -d "$work/docroot" "$port" >"$work/nghttpd.log" 2>&1 &
pids+=("$!")
for ((i = 0; i < 100; i++)); do
	nsx ss -Hltn "sport = :$port" | grep -q . && break
	kill -0 "${pids[0]}" 2>/dev/null || die "nghttpd exited: $(tail -n 3 "$work/nghttpd.log")"
	sleep 0.05
done
nsx ss -Hltn "sport = :$port" | grep -q . || die "nghttpd is not listening on $port"

# --- loss (after the server is up; the capture sees everything anyway)
if [[ $loss != 0 ]]; then
	ipt_rule=(INPUT -p tcp -m statistic --mode random --probability "$loss" -j DROP)
	((ipv6)) && ipt=ip6tables
	nsx "$ipt" -A "${ipt_rule[@]}"
fi

# --- capture: wait until tcpdump really listens
: >"$work/tcpdump.log"
setsid ip netns exec "$ns" tcpdump -i lo -w "$tmp_out" -s 0 -U --immediate-mode -B 32768 -n -Z root "tcp port $port" \
	>"$work/tcpdump.log" 2>&1 &
tcpdump_pid=$!
pids+=("$tcpdump_pid")
for ((i = 0; i < 200; i++)); do
	grep -q "listening on" "$work/tcpdump.log" && break
	kill -0 "$tcpdump_pid" 2>/dev/null || die "tcpdump exited: $(cat "$work/tcpdump.log")"
	sleep 0.05
done
grep -q "listening on" "$work/tcpdump.log" || die "tcpdump did not start"

# --- client(s). Every process we start leads its own process group
# (setsid), so cleanup can stop it with everything it started.
#
# curl 7.88.1 cannot reuse an h2c prior-knowledge connection (curl issue
# #10634, fixed in 7.89: "Error in the HTTP2 framing layer" on the second
# request), so curl makes one connection per request, --connections of them
# at a time: many short flows, which the others do not give.
client_cmd() { # $1 = kind, $2 = index of the connection; fills cmd[]
	local i post=""
	((post_size)) && post=$work/post.bin
	cmd=()
	case $1 in
	nghttp)
		cmd=(timeout 60 ip netns exec "$ns" nghttp -n -t 30)
		((post_size)) && cmd+=(-d "$work/post.bin")
		cmd+=("${urls[@]}")
		;;
	curl)
		# shellcheck disable=SC2016 # expanded by the inner bash
		cmd=(bash -c 'ns=$1 post=$2; shift 2
			for u in "$@"; do
				a=(curl --http2-prior-knowledge -sS --fail --max-time 30 -o /dev/null)
				[[ -n $post ]] && a+=(--data-binary "@$post")
				timeout 40 ip netns exec "$ns" "${a[@]}" "$u" || exit 1
			done' curl-loop "$ns" "$post")
		for ((i = $2; i < ${#urls[@]}; i += connections)); do cmd+=("${urls[i]}"); done
		;;
	h2load)
		cmd=(timeout 60 ip netns exec "$ns" h2load -n "$requests" -c "$connections"
			-m "$streams" -t 1 -T 30)
		((post_size)) && cmd+=(-d "$work/post.bin")
		cmd+=("${urls[@]}")
		;;
	h2load-small)
		cmd=(timeout 60 ip netns exec "$ns" h2load -n "$small_requests" -c "$connections"
			-m "$small_streams" -t 1 -T 30 "${small_urls[@]}")
		;;
	esac
}
say "ns=$ns client=$client requests=$requests connections=$connections streams=$streams sizes=$sizes post=$post_size loss=$loss"
failed=0
for kind in "${clients[@]}"; do
	client_pids=()
	nclients=$connections
	[[ $kind == h2load* ]] && nclients=1
	for ((c = 0; c < nclients; c++)); do
		client_cmd "$kind" "$c"
		setsid "${cmd[@]}" >"$work/$kind$c.log" 2>&1 &
		client_pids+=("$!")
		pids+=("$!")
	done
	for c in "${!client_pids[@]}"; do
		if ! wait "${client_pids[c]}"; then
			failed=1
			echo "make-capture: $kind client $c failed:" >&2
			tail -n 5 "$work/$kind$c.log" >&2
		fi
	done
	if [[ $kind == h2load* ]]; then
		((quiet)) || grep -E "^requests:" "$work/${kind}0.log" >&2 || true
		grep -qE "requests: .* 0 failed, 0 errored" "$work/${kind}0.log" || failed=1
	fi
done
((failed == 0)) || die "client failed"

# --- let connections finish closing (FIN retransmits under loss), then
# stop tcpdump and make sure nothing was lost on the way to the file.
for ((i = 0; i < 100; i++)); do
	busy=$(nsx ss -Htan "( sport = :$port or dport = :$port )" |
		awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' | wc -l)
	((busy == 0)) && break
	sleep 0.05
done
# tcpdump writes each packet as it reads it (-U, --immediate-mode): wait
# until the file stops growing, so nothing is still queued in its socket.
last=-1
for ((i = 0; i < 100; i++)); do
	sz=$(stat -c %s "$tmp_out")
	((sz == last)) && break
	last=$sz
	sleep 0.2
done
kill -TERM "$tcpdump_pid"
wait "$tcpdump_pid" || true
keep=()
for p in "${pids[@]}"; do [[ $p == "$tcpdump_pid" ]] || keep+=("$p"); done
pids=("${keep[@]}")
captured=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$work/tcpdump.log")
received=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$work/tcpdump.log")
kdrop=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$work/tcpdump.log")
[[ -n $captured ]] || die "no tcpdump statistics: $(cat "$work/tcpdump.log")"
[[ ${kdrop:-0} -eq 0 ]] || die "tcpdump: $kdrop packets dropped by the kernel"
# On lo the kernel hands tcpdump every packet twice (outgoing and incoming)
# and libpcap skips the outgoing copy, so "received" counts double.
[[ $received -eq $((2 * captured)) ]] || die "tcpdump: kernel passed $received packets (2 per packet on lo), tcpdump wrote $captured"
stats=$("${pcaptool[@]}" stats "$tmp_out")
infile=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["packets"])' "$stats")
[[ $infile -eq $captured ]] || die "file holds $infile packets, tcpdump captured $captured"
mkdir -p "$(dirname "$out")"
mv "$tmp_out" "$out"
/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["file"]=sys.argv[2]; print(json.dumps(d))' "$stats" "$out"
if ((bench)); then
	/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("make-capture: bench capture %s: %d packets, average packet %.0f bytes (wire)" % (sys.argv[2], d["packets"], d["avg_wire_size"]), file=sys.stderr)' "$stats" "$out"
fi
