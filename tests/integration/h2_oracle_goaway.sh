#!/usr/bin/env bash
# GOAWAY direction (RFC 9113 §6.8): the last stream id of a GOAWAY is about
# streams the *receiver* of the GOAWAY initiated. A client that sends
# GOAWAY(last_stream_id 0) right after its requests refuses server pushes;
# its own streams go on, and nghttpd answers them. Real traffic: a raw
# HTTP/2 client (python3, hpack encoder) sends the preface, two GETs and
# GOAWAY(0) in one write, then reads both responses. The records must equal
# tshark's decoding: complete exchanges with their responses, not
# "refused_by_goaway".
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/h2_lib.sh"
h2_init h2_oracle_goaway
need_bin
need_root
need_tools nghttpd tcpdump tshark ethtool
"$PY" -c 'import hpack' 2>/dev/null || skip "python3-hpack not installed for $PY"

cat >"$T/goaway_client.py" <<'PYEOF'
import socket, struct, sys
import hpack

def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload

host, port = sys.argv[1], int(sys.argv[2])
enc = hpack.Encoder()
out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)  # SETTINGS, none changed
for sid, path in ((1, b"/f5000"), (3, b"/f100")):
    block = enc.encode([(b":method", b"GET"), (b":scheme", b"http"),
                        (b":authority", b"127.0.0.1:%d" % port), (b":path", path)])
    out += frame(1, 0x5, sid, block)  # END_STREAM | END_HEADERS
out += frame(7, 0, 0, struct.pack(">II", 0, 0))  # GOAWAY last_stream_id 0, NO_ERROR
s = socket.create_connection((host, port))
s.sendall(out)
buf, ended = b"", set()
while len(ended) < 2:
    data = s.recv(65536)
    if not data:
        sys.exit("server closed after %d responses" % len(ended))
    buf += data
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        t, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        if t == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0))  # SETTINGS ACK
        if t in (0, 1) and flags & 1:
            ended.add(sid)
        buf = buf[9 + n:]
s.close()
print("responses on streams", sorted(ended))
PYEOF

h2_docroot "$T/doc" 100 5000
h2_ns_up
h2_server "$T/doc"
h2_dump_start "$T/goaway.pcap"
h2_client goaway "$PY" "$T/goaway_client.py" 127.0.0.1 "$H2_PORT"
h2_dump_stop
grep -q "responses on streams \[1, 3\]" "$T/goaway.log" || fail "the server did not answer both streams: $(cat "$T/goaway.log")"
(($(tshark -n -r "$T/goaway.pcap" -d tcp.port==$H2_PORT,http2 -Y 'http2.type == 7' 2>/dev/null | grep -c .) == 1)) ||
	fail "goaway.pcap should hold the client's GOAWAY"

h2_tap goaway "$T/goaway.pcap"
h2_oracle goaway "$T/goaway.pcap"
[[ $(h2_counter goaway h2_exchanges_complete) == 2 ]] || fail "h2_exchanges_complete is $(h2_counter goaway h2_exchanges_complete), want 2"
echo "PASS: $it_name"
