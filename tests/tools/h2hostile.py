#!/usr/bin/python3
"""h2hostile: captures of hostile HTTP/2 byte streams, and checks of what
sealtap made of them.

  h2hostile.py list
  h2hostile.py write CASE OUT.pcap      also writes OUT.pcap.expect.json
  h2hostile.py check --expect OUT.pcap.expect.json --records DIR --summary S.json

The pcaps are Ethernet/IPv4/TCP with a three-way handshake, exact sequence
numbers, segments of at most 1448 payload bytes, an ACK from the other side
every few segments and a FIN exchange at the end (unless the case leaves
connections open); timestamps advance 10 us a packet. Header blocks come
from the `hpack` encoder or are built byte by byte where the encoder would
refuse (RFC 7541 integers and literals).

Cases (see CASES):
  flood       one HEADERS + CONTINUATION frames carrying a > 10 MiB header
              block of indexed literals, then a request that references the
              table the flood left behind
  unended     HEADERS + CONTINUATION without END_HEADERS until the connection
              ends (5 MiB)
  streams     100,000 streams opened (HEADERS without END_STREAM), never closed
  tablebomb   client SETTINGS_HEADER_TABLE_SIZE = 2^32-1; the server's encoder
              sends a table size update to 1 GiB and 1000 literals of 4 KiB
  settings    a SETTINGS frame of 16 KiB of entries (table size going to 0
              and back), 100,000 SETTINGS frames, malformed SETTINGS, then a
              request the server answers with a table size update
  garbage     a valid preface and exchange, then 2 MiB of random bytes each way
  info        300 informational (103) header blocks before the final response
  conns       3000 connections left open, each with one exchange
  badframes   padding longer than the frame, RST_STREAM/WINDOW_UPDATE of wrong
              length, CONTINUATION out of a block, DATA on stream 0
  bigblock    not hostile: an 80 KiB request header list, over a 64 KiB
              h2.max_header_block
  tablefirst  not hostile: the client's SETTINGS_HEADER_TABLE_SIZE arrives
              before the server's first byte (browsers, python3-h2)
In every case but tablefirst the server's SETTINGS come first.

The expectation file says what must hold whatever the limits: counters that
must be non-zero, records that must exist with given fields or anomalies,
records that must be valid JSON. `check` prints what failed; exit 0 pass,
1 fail, 2 usage error.
"""

import argparse
import glob
import json
import os
import random
import struct
import sys

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
MSS = 1448
CLIENT_IP, SERVER_IP, SERVER_PORT = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 8080
AUTHORITY = b"10.0.0.2:8080"

# ---------------------------------------------------------------- pcap


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.t = 1_800_000_000 * 1_000_000  # us
        self.ident = 0
        self.packets = 0

    def tcp(self, src, dst, sport, dport, seq, ack, flags, payload=b""):
        self.ident = (self.ident + 1) & 0xFFFF
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                          flags, 65535, 0, 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self.ident, 0x4000, 64, 6, 0, src, dst)
        s = sum(struct.unpack(">10H", ip))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        ip = ip[:10] + struct.pack(">H", ~s & 0xFFFF) + ip[12:]
        frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp
        self.t += 10
        self.f.write(struct.pack("<IIII", self.t // 1_000_000, self.t % 1_000_000, len(frame), len(frame)))
        self.f.write(frame)
        self.packets += 1

    def close(self):
        self.f.close()


FIN_F, SYN_F, RST_F, PSH_F, ACK_F = 0x01, 0x02, 0x04, 0x08, 0x10


class Conn:
    """One TCP connection; side 0 = client, 1 = server."""

    def __init__(self, pcap, cport, cip=CLIENT_IP, sip=SERVER_IP, sport=SERVER_PORT):
        self.p = pcap
        self.ep = [(cip, cport), (sip, sport)]
        self.nxt = [random.getrandbits(32), random.getrandbits(32)]
        self.unacked = [0, 0]

    def _pkt(self, side, flags, payload=b""):
        (src, sp), (dst, dp) = self.ep[side], self.ep[1 - side]
        self.p.tcp(src, dst, sp, dp, self.nxt[side], self.nxt[1 - side], flags, payload)

    def open(self):
        self._pkt(0, SYN_F)
        self.nxt[0] += 1
        self.nxt[1] -= 0
        (src, sp), (dst, dp) = self.ep[1], self.ep[0]
        self.p.tcp(src, dst, sp, dp, self.nxt[1], self.nxt[0], SYN_F | ACK_F)
        self.nxt[1] += 1
        self._pkt(0, ACK_F)
        return self

    def send(self, side, data):
        for i in range(0, len(data), MSS):
            seg = data[i:i + MSS]
            self._pkt(side, PSH_F | ACK_F, seg)
            self.nxt[side] += len(seg)
            self.unacked[side] += 1
            if self.unacked[side] >= 4:
                self._pkt(1 - side, ACK_F)
                self.unacked[side] = 0

    def close(self):
        for side in (0, 1):
            self._pkt(side, FIN_F | ACK_F)
            self.nxt[side] += 1
        self._pkt(0, ACK_F)


# ---------------------------------------------------------------- HTTP/2


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", i, v) for i, v in pairs))


def hp_int(v, nbits, first):
    """RFC 7541 §5.1 integer with an |nbits| prefix after pattern |first|."""
    m = (1 << nbits) - 1
    if v < m:
        return bytes([first | v])
    out = [first | m]
    v -= m
    while v >= 128:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def literal(name, value, index=True):
    """Literal field with a new name, with (§6.2.1) or without (§6.2.2)
    incremental indexing, no Huffman."""
    return (b"\x40" if index else b"\x00") + hp_int(len(name), 7, 0) + name + hp_int(len(value), 7, 0) + value


def block_frames(sid, block, flags=0, chunk=16384, end_headers=True):
    """HEADERS + CONTINUATION frames carrying |block|."""
    out = []
    parts = [block[i:i + chunk] for i in range(0, len(block), chunk)] or [b""]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        eh = END_HEADERS if (last and end_headers) else 0
        if i == 0:
            out.append(frame(HEADERS, flags | eh, sid, part))
        else:
            out.append(frame(CONTINUATION, eh, sid, part))
    return b"".join(out)


def req(enc, path, extra=()):
    return enc.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", AUTHORITY),
                       (b":path", path)] + list(extra))


def resp(enc, status=b"200", extra=()):
    return enc.encode([(b":status", status)] + list(extra))


def pairs(hdrs):
    return [[n.decode("latin-1"), v.decode("latin-1")] for n, v in hdrs]


REQ_FIELDS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", AUTHORITY)]


def start(p, cport=40000, client_settings=()):
    """A connection with both prefaces and ACKed SETTINGS, the server's
    first (nghttpd writes its SETTINGS as soon as it accepts); returns
    (conn, client encoder, server encoder)."""
    c = Conn(p, cport).open()
    c.send(1, settings((3, 100)))
    c.send(0, PREFACE + settings(*client_settings) + settings(ack=True))
    c.send(1, settings(ack=True))
    return c, hpack.Encoder(), hpack.Encoder()


def normal_exchange(c, cenc, senc, sid, path, body=b"hello", extra=()):
    """A GET and a 200 with |body|; returns the expected record subset."""
    c.send(0, block_frames(sid, req(cenc, path, extra), END_STREAM))
    c.send(1, block_frames(sid, resp(senc, b"200", [(b"content-length", b"%d" % len(body))]))
           + frame(DATA, END_STREAM, sid, body))
    return {"stream_id": sid, "request_headers": pairs(REQ_FIELDS + [(b":path", path)] + list(extra)),
            "status": 200, "response_body_bytes": len(body), "end": "complete", "anomalies": []}


# ---------------------------------------------------------------- cases


def case_flood(p):
    c, ce, se = start(p)
    parts = [req(ce, b"/flood")]
    size, i, last = len(parts[0]), 0, None
    while size < 10 * 1024 * 1024 + 512 * 1024:
        last = (b"x-flood-%d" % (i % 500), b"%07d-" % i + b"v" * 180)
        parts.append(ce.encode([last], huffman=False))
        size += len(parts[-1])
        i += 1
    block = b"".join(parts)
    c.send(0, block_frames(1, block, END_STREAM))
    c.send(1, block_frames(1, resp(se, b"431")))
    c.send(1, frame(DATA, END_STREAM, 1, b""))
    # The last flood field is in the client's table: this request refers
    # to it by index, so it decodes right only if sealtap kept the table
    # in step through the flood.
    ok = normal_exchange(c, ce, se, 3, b"/after", extra=[last])
    c.close()
    return {"summary": "one header block of %d bytes (%d fields) in HEADERS + %d CONTINUATION frames" %
                       (len(block), i + 4, (len(block) + 16383) // 16384 - 1),
            "counters_min": {"h2_block_too_big": 1},
            "records": [{"stream_id": 1, "anomalies_has": ["header_block_too_big"], "status": 431}, ok]}


def case_unended(p):
    c, ce, se = start(p)
    parts = [req(ce, b"/unended")]
    size, i = len(parts[0]), 0
    while size < 5 * 1024 * 1024:
        parts.append(literal(b"x-u", b"%07d" % i + b"w" * 100, index=False))
        size += len(parts[-1])
        i += 1
    block = b"".join(parts)
    c.send(0, block_frames(1, block, END_STREAM, end_headers=False))
    c.close()
    return {"summary": "HEADERS + %d CONTINUATION frames without END_HEADERS (%d bytes), then FIN" %
                       ((len(block) + 16383) // 16384 - 1, len(block)),
            "counters_min": {"h2_block_too_big": 1}, "records": []}


def case_streams(p):
    c, ce, se = start(p)
    n = 100_000
    buf = []
    for k in range(n):
        sid = 1 + 2 * k
        buf.append(frame(HEADERS, END_HEADERS, sid, req(ce, b"/s")))
        if len(buf) >= 2000:
            c.send(0, b"".join(buf))
            buf = []
    c.send(0, b"".join(buf))
    c.close()
    return {"summary": "%d streams opened with HEADERS (no END_STREAM), never answered or closed" % n,
            "counters_min": {"h2_stream_limit": 1, "h2_streams": n}, "max_records": n,
            "records": [{"stream_id": 1, "anomalies_has": ["stream_limit"], "end": "stream_limit"}]}


def case_tablebomb(p):
    c, ce, se = start(p, client_settings=[(1, 0xFFFFFFFF)])
    for k in range(5):
        c.send(0, block_frames(1 + 2 * k, req(ce, b"/t%d" % k), END_STREAM))
    # RFC 7541 §6.3: the encoder may use up to the decoder's announced
    # maximum: 2^32-1. It says 1 GiB and fills the table with 4 KiB values.
    bomb = hp_int(1 << 30, 5, 0x20) + b"\x88"  # size update, then :status 200
    bomb += b"".join(literal(b"x-bomb", b"%06d" % i + b"z" * 4090) for i in range(1000))
    c.send(1, block_frames(1, bomb))
    c.send(1, frame(DATA, END_STREAM, 1, b"x"))
    for k in range(1, 5):  # more 4 MiB blocks referring to the big table
        blk = b"\x88" + b"".join(literal(b"x-bomb2", b"%06d" % i + b"y" * 4090) for i in range(1000)) + b"\xbe"
        c.send(1, block_frames(1 + 2 * k, blk, END_STREAM))
    c.close()
    return {"summary": "SETTINGS_HEADER_TABLE_SIZE 2^32-1; response blocks with a size update to 1 GiB "
                       "and 5 x 1000 literals of 4 KiB (20 MiB) indexed",
            "counters_min": {"h2_hpack_errors": 1},
            "records": [{"stream_id": 1, "anomalies_has": ["hpack_error"]}]}


def case_settings(p):
    c = Conn(p, 40000).open()
    big = []
    for i in range(16380 // 6):
        if i % 2 == 0:
            big.append((1, 0 if i % 4 == 0 else 4096))  # table size 0, 4096, ...
        else:
            big.append((random.choice([3, 4, 0x77, 0xFFFF]), random.randint(1, 1 << 20)))
    big[-1] = (1, 4096)
    c.send(1, settings((3, 100)))
    c.send(0, PREFACE + settings(*big))
    c.send(1, settings(ack=True))
    buf = []
    for i in range(100_000):
        buf.append(settings((3, 100 + i % 7)))
        if len(buf) >= 5000:
            c.send(0, b"".join(buf))
            c.send(1, settings(ack=True) * len(buf))
            buf = []
    c.send(0, b"".join(buf))
    c.send(1, settings(ack=True) * len(buf))
    # The server's encoder saw its table go to 0 and back: RFC 7541 §4.2
    # asks for both updates at the start of its next block.
    ce, se = hpack.Encoder(), hpack.Encoder()
    se.header_table_size = 0
    se.header_table_size = 4096
    ok = normal_exchange(c, ce, se, 1, b"/after-settings")
    # Malformed: length not a multiple of 6; ACK with a payload.
    c.send(0, frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"))
    c.send(0, frame(SETTINGS, ACK, 0, b"\x00\x03\x00\x00\x00\x64"))
    c.close()
    return {"summary": "a SETTINGS frame of %d entries (16380 bytes, table size 0/4096 alternating), 100000 "
                       "SETTINGS frames (+ACKs), then an exchange, then two malformed SETTINGS" % len(big),
            "counters_min": {"h2_frame_errors": 1}, "records": [ok]}


def case_garbage(p):
    c, ce, se = start(p)
    ok = normal_exchange(c, ce, se, 1, b"/before-garbage")
    rng = random.Random(7)
    c.send(0, bytes(rng.getrandbits(8) for _ in range(2 << 20)))
    c.send(1, bytes(rng.getrandbits(8) for _ in range(2 << 20)))
    c.close()
    return {"summary": "preface, one exchange, then 2 MiB of random bytes each way",
            "counters_any": ["h2_frame_errors", "h2_conns_not_h2", "h2_resyncs"], "records": [ok]}


def case_info(p):
    c, ce, se = start(p)
    c.send(0, block_frames(1, req(ce, b"/hints"), END_STREAM))
    for i in range(300):
        c.send(1, block_frames(1, resp(se, b"103", [(b"link", b"</s%d.css>; rel=preload" % i)])))
    c.send(1, block_frames(1, resp(se, b"200")) + frame(DATA, END_STREAM, 1, b"ok"))
    c.close()
    return {"summary": "300 informational 103 blocks on one stream, then 200",
            "counters_min": {"h2_exchanges": 1},
            "records": [{"stream_id": 1, "status": 200, "informational": 300, "response_body_bytes": 2}]}


def case_conns(p):
    n = 3000
    for k in range(n):
        c = Conn(p, 10000 + k, cip=bytes([10, 1, k >> 8, k & 0xFF])).open()
        c.send(0, PREFACE + settings())
        c.send(1, settings((3, 100)) + settings(ack=True))
        ce, se = hpack.Encoder(), hpack.Encoder()
        c.send(0, frame(HEADERS, END_HEADERS | END_STREAM, 1, req(ce, b"/c%d" % k)))
        c.send(1, frame(HEADERS, END_HEADERS, 1, resp(se)) + frame(DATA, END_STREAM, 1, b"x"))
        # left open: no FIN
    return {"summary": "%d connections, one exchange each, never closed" % n,
            "counters_any": ["h2_conns_no_memory", "flow_evicted"], "max_records": n, "records": []}


def case_badframes(p):
    c, ce, se = start(p)
    # HEADERS PADDED with a pad length longer than the frame.
    blk = req(ce, b"/pad")
    c.send(0, frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, bytes([200]) + blk))
    c.send(1, frame(HEADERS, END_HEADERS, 1, resp(se)) +
           frame(DATA, END_STREAM | PADDED, 1, bytes([250]) + b"abc"))
    c.send(0, frame(CONTINUATION, END_HEADERS, 3, b"\x82"))  # no block open
    c.send(0, frame(DATA, 0, 0, b"zzzz"))                    # DATA on stream 0
    c.send(0, frame(RST_STREAM, 0, 1, b"\x00\x00\x08"))      # 3 bytes
    c.send(0, frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x10\x00\x00"))  # 5 bytes
    c.send(0, frame(PRIORITY, 0, 0, b"\x00\x00\x00\x01\x10"))  # stream 0
    ok = normal_exchange(c, ce, se, 5, b"/after-bad")
    c.close()
    return {"summary": "pad length beyond the frame (HEADERS, DATA), CONTINUATION outside a block, DATA on "
                       "stream 0, RST_STREAM of 3 bytes, WINDOW_UPDATE of 5, PRIORITY on stream 0",
            "counters_min": {"h2_frame_errors": 3}, "records": [{"stream_id": 1, "anomalies_has": ["protocol_error"]}]}


def case_tablefirst(p):
    # The order python3-h2 and browsers produce: the client's preface and
    # SETTINGS (with HEADER_TABLE_SIZE) reach the tap before the server
    # has sent a byte.
    c = Conn(p, 40000).open()
    c.send(0, PREFACE + settings((1, 65536), (4, 6291456)))
    c.send(1, settings((3, 100)) + settings(ack=True))
    c.send(0, settings(ack=True))
    ok = normal_exchange(c, hpack.Encoder(), hpack.Encoder(), 1, b"/first")
    c.close()
    return {"summary": "client SETTINGS_HEADER_TABLE_SIZE 65536 before the server's first byte, then an exchange",
            "counters_min": {"h2_exchanges": 1}, "records": [ok]}


def case_bigblock(p):
    c, ce, se = start(p)
    big = [(b"x-big-%d" % i, b"%05d" % i + b"q" * 995) for i in range(80)]  # 80 KiB
    c.send(0, block_frames(1, req(ce, b"/big", big), END_STREAM))
    c.send(1, block_frames(1, resp(se)) + frame(DATA, END_STREAM, 1, b"ok"))
    ok = normal_exchange(c, ce, se, 3, b"/after-big")
    c.close()
    return {"summary": "a request with 80 fields of 1 KiB (80 KiB of header list), then an exchange",
            "counters_min": {"h2_exchanges": 2},
            "records": [{"stream_id": 1, "status": 200, "response_body_bytes": 2}, ok]}


CASES = {
    "tablefirst": case_tablefirst,
    "bigblock": case_bigblock,
    "flood": case_flood, "unended": case_unended, "streams": case_streams, "tablebomb": case_tablebomb,
    "settings": case_settings, "garbage": case_garbage, "info": case_info, "conns": case_conns,
    "badframes": case_badframes,
}


# ---------------------------------------------------------------- check


def check(a):
    exp = json.load(open(a.expect))
    summ = json.load(open(a.summary))
    ctr = summ.get("counters", {})
    errs = []
    recs, bad_json = [], 0
    for fn in sorted(glob.glob(os.path.join(a.records, "records-*.ndjson"))):
        with open(fn, encoding="utf-8", errors="surrogateescape") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    recs.append(json.loads(line))
                except ValueError as e:
                    bad_json += 1
                    if bad_json <= 3:
                        errs.append("%s:%d: record is not valid JSON (%s): ...%s..." %
                                    (os.path.basename(fn), n, e, line[max(0, e.pos - 60):e.pos + 40]
                                     if hasattr(e, "pos") else line[:100]))
    if bad_json > 3:
        errs.append("%d records are not valid JSON" % bad_json)
    for k, v in exp.get("counters_min", {}).items():
        if ctr.get(k, 0) < v:
            errs.append("counter %s is %d, expected >= %d" % (k, ctr.get(k, 0), v))
    anyk = exp.get("counters_any")
    if anyk and not any(ctr.get(k, 0) for k in anyk):
        errs.append("none of the counters %s is non-zero" % anyk)
    if "max_records" in exp and len(recs) > exp["max_records"]:
        errs.append("%d records, at most %d exchanges were sent" % (len(recs), exp["max_records"]))
    by_sid = {}
    for r in recs:
        by_sid.setdefault(r.get("stream_id"), []).append(r)
    for want in exp.get("records", []):
        sid = want["stream_id"]
        got = by_sid.get(sid, [])
        if len(got) != 1:
            errs.append("stream %d: %d records, expected 1" % (sid, len(got)))
            continue
        r = got[0]
        an = r.get("anomalies", [])
        if "anomalies" in want and an != want["anomalies"]:
            errs.append("stream %d: anomalies %s, expected %s" % (sid, an, want["anomalies"]))
        for x in want.get("anomalies_has", []):
            if x not in an:
                errs.append("stream %d: anomalies %s lack %s" % (sid, an, x))
        if "request_headers" in want and r["request"]["headers"] != want["request_headers"]:
            errs.append("stream %d: request headers %s, expected %s" %
                        (sid, str(r["request"]["headers"])[:300], str(want["request_headers"])[:300]))
        if "status" in want and r["response"]["status"] != want["status"]:
            errs.append("stream %d: status %s, expected %s" % (sid, r["response"]["status"], want["status"]))
        if "response_body_bytes" in want and r["response"]["body_bytes"] != want["response_body_bytes"]:
            errs.append("stream %d: response body_bytes %s, expected %s" %
                        (sid, r["response"]["body_bytes"], want["response_body_bytes"]))
        if "informational" in want and len(r["response"]["informational"]) != want["informational"]:
            errs.append("stream %d: %d informational blocks, expected %d" %
                        (sid, len(r["response"]["informational"]), want["informational"]))
        if "end" in want and r["end"] != want["end"]:
            errs.append("stream %d: end %s, expected %s" % (sid, r["end"], want["end"]))
    for e in errs:
        print("  " + e)
    print("check %s: %d records, %d checks failed" % (exp.get("case"), len(recs), len(errs)))
    return 1 if errs else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    w = sub.add_parser("write")
    w.add_argument("case", choices=sorted(CASES))
    w.add_argument("out")
    w.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("check")
    c.add_argument("--expect", required=True)
    c.add_argument("--records", required=True)
    c.add_argument("--summary", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "list":
        for k in sorted(CASES):
            print(k)
        return 0
    if a.cmd == "check":
        return check(a)
    random.seed(a.seed)
    p = Pcap(a.out)
    exp = CASES[a.case](p)
    p.close()
    exp["case"] = a.case
    exp["packets"] = p.packets
    with open(a.out + ".expect.json", "w") as fh:
        json.dump(exp, fh, indent=1)
    print("%s: %s; %d packets" % (a.case, exp["summary"], p.packets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
