#!/usr/bin/python3
"""h2oracle: sealtap's HTTP/2 exchange records checked against tshark.

tshark is the decoding oracle: it reassembles TCP, walks HTTP/2 frames and
decodes HPACK (with its own nghttp2 inflater). From its JSON (-x, so header
names and values are exact bytes) this tool rebuilds, per TCP connection and
stream id, the ordered header blocks of each direction (request headers,
request trailers, 1xx blocks, response headers, response trailers), the
DATA payload bytes of each direction (frame length minus pad length byte and
padding), END_STREAM and RST_STREAM, and compares them with the records
(docs/records.md).

  h2oracle.py --pcap F --port P[,P...] --records DIR
      Clean mode: the records come from F. Every exchange with request
      headers (HEADERS from the client, or PUSH_PROMISE) has exactly one
      record and vice versa; method, scheme, authority, path, status,
      informational, headers, trailers (ordered, byte-exact), body_bytes,
      body_gap_bytes (0), end_stream, promised_by, end (complete/reset,
      rst_code, rst_by) and roles ("sure") must equal tshark's.

  h2oracle.py --pcap CUT --midstream FULL --port P --records DIR
  h2oracle.py --pcap DAMAGED --gaps FULL --port P --records DIR
      The records come from CUT (pcaptool cut) or DAMAGED (pcaptool drop),
      tshark decodes FULL. Which stream bytes sealtap could see is taken
      from the packets of CUT/DAMAGED (placed in FULL's sequence space by
      FULL's ISNs). A missing range strictly inside one frame's payload
      damages that frame only (sealtap keeps framing); any other missing
      range loses framing: every frame it touches is damaged, and frames
      that start after it are intact again (sealtap resyncs). Then:
        - an exchange whose request header block is intact must have a
          record with those request headers;
        - intact blocks must equal tshark's, except fields written as null
          (uncertain: counted, the non-null half still compared); damaged
          blocks must be a prefix of tshark's (no field invented or moved);
        - body_bytes must be exact when the direction's DATA frames are
          intact or damaged only inside their payload (then body_gap_bytes
          = the lost content bytes), else at most tshark's, and marked;
        - a damaged exchange carries an anomaly that says so; an intact one
          carries none but midstream/uncertain_headers/resync;
        - nulls and `uncertain` indices agree; credential names never have
          a plaintext value, not even under an unknown (null) name.
      It reports exchanges exact vs uncertain per connection and whether
      the later ones became exact (HPACK table turnover).

  h2oracle.py --pcap REORDERED --same-as FULL --port P --records DIR
      Clean-mode checks against tshark's decoding of FULL, for a capture
      holding the same packets in another order (pcaptool reorder).

  --cache DIR keeps tshark's decoding of a capture (keyed by path, size,
  mtime, ports) so several checks against one FULL capture run tshark once.
  --json FILE writes the summary object there too.

Exit: 0 all equal, 1 mismatch (a diff is printed), 2 usage or tool error.
Standard library only, plus the tshark executable.
"""

import argparse
import bisect
import glob
import hashlib
import json
import os
import pickle
import subprocess
import sys

TSHARK = "tshark"
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
F_END_STREAM, F_END_HEADERS, F_PADDED, F_PRIORITY = 0x1, 0x4, 0x8, 0x20
MAGIC = -1  # pseudo frame type for the 24-byte client preface
MAGIC_LEN = 24
REDACTED = {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie",
            b"x-api-key", b"x-auth-token"}
INTACT_OK = {"midstream", "uncertain_headers", "resync"}
DAMAGE_MARKS = {"midstream", "headers_lost", "body_gap", "resync", "padding_unknown",
                "request_headers_missed", "response_headers_missed", "hpack_error",
                "protocol_error"}
CACHE_VERSION = 3


class ToolError(Exception):
    pass


# ---------------------------------------------------------------- tshark


def run_tshark(args):
    cmd = [TSHARK, "-n", "-o", "tcp.reassemble_out_of_order:TRUE"] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise ToolError("%s failed (%d): %s" % (" ".join(cmd[:8]), r.returncode,
                                              r.stderr.decode(errors="replace").strip()[-500:]))
    return r.stdout


def ts_ns(s):
    sec, _, frac = s.partition(".")
    return int(sec) * 1000000000 + int((frac + "000000000")[:9])


def endpoint(ip4, ip6, port):
    if ip6:
        return "[%s]:%s" % (ip6, port)
    return "%s:%s" % (ip4, port)


PKT_FIELDS = ["frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ipv6.src",
              "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.seq_raw", "tcp.len",
              "tcp.flags"]


def read_packets(path):
    """Per TCP packet: (frame, ts_ns, tcp.stream, src, dst, seq, len, flags)."""
    args = ["-r", path, "-o", "tcp.desegment_tcp_streams:FALSE",
            "-o", "tcp.analyze_sequence_numbers:FALSE", "-Y", "tcp",
            "-T", "fields", "-E", "occurrence=l", "-E", "separator=\t"]
    for f in PKT_FIELDS:
        args += ["-e", f]
    out = []
    for line in run_tshark(args).decode().splitlines():
        v = line.split("\t")
        if len(v) != len(PKT_FIELDS):
            raise ToolError("unexpected tshark line: %r" % line[:200])
        out.append((int(v[0]), ts_ns(v[1]), int(v[2]), endpoint(v[3], v[4], v[5]),
                    endpoint(v[6], v[7], v[8]), int(v[9]), int(v[10] or 0), int(v[11], 16)))
    return out


def json_packets(path, ports):
    """Streams tshark's JSON one packet at a time (the whole document of a
    few thousand packets with -x is hundreds of MB)."""
    args = ["-r", path]
    for p in ports:
        args += ["-d", "tcp.port==%d,http2" % p]
    args += ["-Y", "http2", "-T", "json", "--no-duplicate-keys", "-x", "-J", "frame tcp http2"]
    cmd = [TSHARK, "-n", "-o", "tcp.reassemble_out_of_order:TRUE"] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = []
    for raw in p.stdout:
        line = raw.decode("utf-8", "surrogateescape")
        if line.startswith("  {"):
            buf = [line]
        elif line.startswith("  }"):
            buf.append("}")
            yield json.loads("".join(buf))["_source"]["layers"]
            buf = []
        elif buf:
            buf.append(line)
    err = p.stderr.read()
    if p.wait() != 0:
        raise ToolError("tshark failed on %s: %s" % (path, err.decode(errors="replace")[-500:]))


def as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def raw_bytes(h, key):
    r = h.get(key + "_raw")
    if r is not None:
        if isinstance(r[0], list):  # should not happen: one per header
            r = r[0]
        return bytes.fromhex(r[0])
    v = h.get(key)
    if v is None or v == "":
        return b""
    # No raw bytes (tshark leaves them out for empty values): the text is
    # all we have; non-ASCII would have been replaced, so refuse it.
    if any(ord(c) > 126 for c in v):
        raise ToolError("no raw bytes for %s %r" % (key, v))
    return v.encode("latin-1")


def parse_frame(f):
    """One http2.stream dict -> compact tuple."""
    if "http2.magic" in f:
        return (MAGIC, 0, 0, MAGIC_LEN, 0, 0, None, None)
    t = int(f["http2.type"])
    flags = int(f["http2.flags"], 16)
    sid = int(f["http2.streamid"])
    length = int(f["http2.length"])
    pad = 0
    if flags & F_PADDED and t in (DATA, HEADERS, PUSH_PROMISE):
        pad = int(f.get("http2.pad_length", "0"))
    extra = None
    if t == PUSH_PROMISE:
        extra = int(f["http2.push_promise.promised_stream_id"])
    elif t == RST_STREAM:
        extra = int(f["http2.rst_stream.error"])
    elif t == GOAWAY:
        extra = int(f.get("http2.goaway.last_stream_id", "0"))
    hdrs = None
    if t in (HEADERS, PUSH_PROMISE, CONTINUATION):
        hdrs = [(raw_bytes(h, "http2.header.name"), raw_bytes(h, "http2.header.value"))
                for h in as_list(f.get("http2.header"))]
    return (t, flags, sid, length, pad, extra, hdrs, None)


def decode_capture(path, ports, cache_dir=None):
    """tshark's view of |path|: {"packets": [...], "frames": {frame_no: [(tcp.stream,
    srcport, frame tuple), ...]}}."""
    key = None
    if cache_dir:
        st = os.stat(path)
        key = hashlib.sha1(("%d|%s|%d|%d|%s" % (CACHE_VERSION, os.path.abspath(path), st.st_size,
                                                st.st_mtime_ns, ports)).encode()).hexdigest()
        cpath = os.path.join(cache_dir, "h2oracle-%s.pickle" % key)
        if os.path.exists(cpath):
            with open(cpath, "rb") as fh:
                return pickle.load(fh)
    packets = read_packets(path)
    frames = {}
    for layers in json_packets(path, ports):
        num = int(layers["frame"]["frame.number"])
        tcp = layers.get("tcp", {})
        lst = []
        for pdu in as_list(layers.get("http2")):
            for f in as_list(pdu.get("http2.stream")):
                lst.append(parse_frame(f))
        if lst:
            frames[num] = (int(tcp["tcp.stream"]), int(tcp["tcp.srcport"]), lst)
    model = {"packets": packets, "frames": frames}
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = cpath + ".tmp%d" % os.getpid()
        with open(tmp, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cpath)
    return model


# ---------------------------------------------------------------- model


class Frame:
    __slots__ = ("type", "flags", "sid", "length", "pad", "extra", "hdrs", "pkt", "start",
                 "damage", "content_lost", "head_lost")

    def __init__(self, t, pkt, start):
        self.type, self.flags, self.sid, self.length, self.pad, self.extra, self.hdrs, _ = t
        self.pkt = pkt
        self.start = start
        self.damage = None  # None, "inner" (inside the payload), "lost"
        self.content_lost = 0
        self.head_lost = False  # its 9-byte header was never seen

    @property
    def end(self):
        return self.start + (MAGIC_LEN if self.type == MAGIC else 9 + self.length)

    def content_range(self):
        """DATA content (after the pad length byte, before padding)."""
        a = self.start + 9 + (1 if self.flags & F_PADDED else 0)
        return a, a + self.body()

    def body(self):
        if self.flags & F_PADDED:
            return max(0, self.length - 1 - self.pad)
        return self.length


class Block:
    """A header block: HEADERS/PUSH_PROMISE + CONTINUATION frames."""

    def __init__(self, first):
        self.frames = [first]
        self.fields = list(first.hdrs or [])
        self.end_stream = first.type == HEADERS and bool(first.flags & F_END_STREAM)
        self.done = bool(first.flags & F_END_HEADERS)

    @property
    def pkt(self):
        return self.frames[0].pkt

    def intact(self):
        return self.done and all(f.damage is None for f in self.frames)

    def head_seen(self):
        return not self.frames[0].head_lost


class Exchange:
    def __init__(self, conn, sid):
        self.conn, self.sid = conn, sid
        self.req = None          # Block
        self.req_trailers = []   # Blocks
        self.info = []
        self.resp = None
        self.resp_trailers = []
        self.promised_by = 0
        self.data = ([], [])     # DATA frames (client, server)
        self.end_stream = [None, None]  # packet number of END_STREAM per side
        self.rst = None          # (code, by_client, pkt)
        self.first_pkt = None

    def frames(self):
        out = []
        for b in [self.req, self.resp] + self.req_trailers + self.info + self.resp_trailers:
            if b:
                out += b.frames
        return out + self.data[0] + self.data[1]


class Direction:
    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.isn = None
        self.frames = []
        self.goaways = []  # (last stream id, packet)
        self.total = 0
        self.seg_end = 0  # furthest payload byte seen in FULL (offset)
        self.missing = []
        self.framing_lost = 0


class Conn:
    def __init__(self, stream):
        self.stream = stream
        self.client = self.server = None
        self.first_ts = self.last_ts = None
        self.dirs = {}  # (src, dst) -> Direction
        self.exchanges = {}

    def label(self):
        return "%s->%s" % (self.client, self.server)

    def cdir(self):
        return self.dirs.get((self.client, self.server))

    def sdir(self):
        return self.dirs.get((self.server, self.client))


def port_of(ep):
    return int(ep.rsplit(":", 1)[1])


def build(model, ports):
    conns = {}
    for (num, ts, stream, src, dst, seq, ln, flags) in model["packets"]:
        c = conns.get(stream)
        if c is None:
            c = conns[stream] = Conn(stream)
            c.first_ts = ts
        c.last_ts = ts
        d = c.dirs.get((src, dst))
        if d is None:
            d = c.dirs[(src, dst)] = Direction(src, dst)
        if flags & SYN and d.isn is None:
            d.isn = seq
            if not flags & ACK:
                c.client, c.server = src, dst
        if c.client is None and port_of(dst) in ports and port_of(src) not in ports:
            c.client, c.server = src, dst
        if d.isn is not None and ln:
            d.seg_end = max(d.seg_end, ((seq - d.isn - 1) & 0xFFFFFFFF) + ln)
    for c in conns.values():
        if c.client is None:
            raise ToolError("tcp.stream %d: cannot tell client from server" % c.stream)
        for key in ((c.client, c.server), (c.server, c.client)):
            c.dirs.setdefault(key, Direction(*key))
    for num in sorted(model["frames"]):
        stream, sport, lst = model["frames"][num]
        c = conns[stream]
        src = c.client if port_of(c.client) == sport else c.server
        d = c.dirs[(src, c.server if src == c.client else c.client)]
        for t in lst:
            f = Frame(t, num, d.total)
            d.frames.append(f)
            d.total = f.end
    for c in conns.values():
        for d in c.dirs.values():
            if d.isn is not None and d.frames and d.total != d.seg_end:
                raise ToolError("oracle self-check: %s->%s: tshark's frames cover %d bytes, the "
                                "TCP stream holds %d (tshark missed or repeated frames)" %
                                (d.src, d.dst, d.total, d.seg_end))
        build_exchanges(c)
    return conns


def build_exchanges(c):
    def ex(sid):
        e = c.exchanges.get(sid)
        if e is None:
            e = c.exchanges[sid] = Exchange(c, sid)
        return e

    for is_client, d in ((True, c.cdir()), (False, c.sdir())):
        side = 0 if is_client else 1
        block = None  # (Block, target exchange, kind)
        for f in d.frames:
            if f.type == CONTINUATION and block:
                b = block[0]
                b.frames.append(f)
                b.fields += f.hdrs or []
                b.done = bool(f.flags & F_END_HEADERS)
                if b.done:
                    place(block)
                    block = None
                continue
            if block:  # block broken by another frame: keep what we have
                place(block)
                block = None
            if f.type == HEADERS:
                b = Block(f)
                e = ex(f.sid)
                if b.end_stream and e.end_stream[side] is None:
                    e.end_stream[side] = f.pkt
                block = (b, e, "client" if is_client else "server")
            elif f.type == PUSH_PROMISE:
                b = Block(f)
                e = ex(f.extra)
                e.promised_by = f.sid
                e.end_stream[0] = f.pkt  # RFC 9113 §8.4: no request body
                block = (b, e, "push")
            elif f.type == DATA:
                e = ex(f.sid)
                e.data[side].append(f)
                if f.flags & F_END_STREAM and e.end_stream[side] is None:
                    e.end_stream[side] = f.pkt
            elif f.type == RST_STREAM:
                e = ex(f.sid)
                if e.rst is None:
                    e.rst = (f.extra, is_client, f.pkt)
            elif f.type == GOAWAY:
                d.goaways.append((f.extra, f.pkt))
                continue
            else:
                continue
            if block and block[0].done:
                place(block)
                block = None
        if block:
            place(block)
    for sid in [s for s, e in c.exchanges.items() if e.req is None and e.resp is None
                and not e.info and not e.resp_trailers and not e.req_trailers]:
        del c.exchanges[sid]  # DATA/RST only: sealtap records no such stream
    for e in c.exchanges.values():
        e.first_pkt = min(f.pkt for f in e.frames())


def place(block):
    b, e, kind = block
    if kind in ("client", "push"):
        if e.req is None:
            e.req = b
        else:
            e.req_trailers.append(b)
        return
    first = b.fields[0] if b.fields else None
    if first and first[0] == b":status" and len(first[1]) == 3 and first[1][:1] == b"1":
        e.info.append(b)
    elif e.resp is None:
        e.resp = b
    else:
        e.resp_trailers.append(b)


# ---------------------------------------------------------------- coverage


class Ranges:
    def __init__(self):
        self.a, self.b = [], []

    def add(self, x, y):
        if y <= x:
            return
        i = bisect.bisect_left(self.b, x)
        j = bisect.bisect_right(self.a, y)
        if i < j:
            x, y = min(x, self.a[i]), max(y, self.b[j - 1])
        self.a[i:j] = [x]
        self.b[i:j] = [y]

    def complement(self, lo, hi):
        out, cur = [], lo
        for a, b in zip(self.a, self.b):
            if a > cur:
                out.append((cur, min(a, hi)))
            cur = max(cur, b)
            if cur >= hi:
                break
        if cur < hi:
            out.append((cur, hi))
        return [(a, b) for a, b in out if a < b]


def lose(f, head=True):
    f.damage = "lost"
    if head:
        f.head_lost = True


def walk_gaps(d, totals):
    """Replays sealtap's framing over one direction with d.missing taken
    out. In sync, a missing range strictly inside one frame's payload
    (after its 9-byte header, ending before its end) costs that frame's
    bytes only; any other range loses framing. Then sealtap searches for a
    boundary from the range's end: it takes the first frame whose header
    and the next frame's header (RESYNC_CHAIN = 2) arrive without another
    missing range; frames before it are lost, and a frame with no frame
    after it (the direction ended) is never confirmed."""
    frames = d.frames
    starts = [f.start for f in frames]
    resync_from = None

    def first_at(off):
        return bisect.bisect_left(starts, off)

    def try_sync(upto):
        """Resync from resync_from with bytes up to |upto| (next missing
        range start, or None at the end). Returns True when in sync."""
        i = first_at(resync_from)
        if i >= len(frames):
            return False
        f = frames[i]
        nxt_hdr_end = frames[i + 1].start + 9 if i + 1 < len(frames) else None
        if nxt_hdr_end is not None and (upto is None or nxt_hdr_end <= upto):
            return True
        for j in range(i, len(frames)):  # never confirmed before the gap
            if upto is not None and frames[j].start >= upto:
                break
            lose(frames[j])
        return False

    for a, b in d.missing:
        if resync_from is not None:
            if try_sync(a):
                resync_from = None
                totals["resynced"] += 1
            else:
                for f in frames[first_at(resync_from):]:
                    if f.start >= b:
                        break
                    lose(f)
                resync_from = b
                continue
        i = bisect.bisect_right(starts, a) - 1
        f = frames[i]
        if f.start + 9 <= a and b <= f.end and f.type != MAGIC:
            # Inside one payload (possibly up to its very end): sealtap
            # keeps framing.
            if f.damage is None:
                f.damage = "inner"
            if f.type == DATA:
                ca, cb = f.content_range()
                f.content_lost += max(0, min(b, cb) - max(a, ca))
                if f.flags & F_PADDED and a <= f.start + 9:
                    f.damage = "lost"  # pad length lost
            totals["inner"] += 1
            continue
        d.framing_lost += 1
        totals["framing_lost"] += 1
        j = i
        while j < len(frames) and frames[j].start < b:
            lose(frames[j], frames[j].start + 9 > a)
            j += 1
        resync_from = b
    if resync_from is not None and try_sync(None):
        totals["resynced"] += 1


def apply_coverage(conns, derived_packets):
    """Marks FULL's frames damaged where the derived capture lacks bytes."""
    byq = {}
    for c in conns.values():
        byq.setdefault(frozenset((c.client, c.server)), []).append(c)
    cover = {}
    for (num, ts, stream, src, dst, seq, ln, flags) in derived_packets:
        if not ln:
            continue
        cands = byq.get(frozenset((src, dst)), [])
        if not cands:
            continue
        c = min(cands, key=lambda k: 0 if k.first_ts <= ts <= k.last_ts else
                min(abs(ts - k.first_ts), abs(ts - k.last_ts)))
        d = c.dirs[(src, dst)]
        if d.isn is None:
            raise ToolError("%s->%s: FULL capture lacks the SYN; cannot place bytes" % (src, dst))
        off = (seq - d.isn - 1) & 0xFFFFFFFF
        cover.setdefault(id(d), Ranges()).add(off, off + ln)
    totals = {"framing_lost": 0, "inner": 0, "resynced": 0}
    for c in conns.values():
        for d in c.dirs.values():
            if d.frames:
                d.missing = cover.get(id(d), Ranges()).complement(0, d.total)
                walk_gaps(d, totals)
    return totals


# ---------------------------------------------------------------- records


def load_records(path):
    files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "records-*.ndjson")))
    recs = []
    for fn in files:
        with open(fn, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except ValueError as e:
                    raise ToolError("%s:%d: not JSON: %s" % (fn, n, e))
    return recs


def b2s(b):
    return b.decode("latin-1") if isinstance(b, bytes) else b


def show(v, limit=80):
    """Header octets as a bytes literal (record strings are Latin-1 for
    octets), anything else as JSON."""
    s = repr(v) if isinstance(v, bytes) else v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


class Checker:
    def __init__(self, mode, show_max=60):
        self.mode = mode
        self.errors = []
        self.show_max = show_max
        self.uncertain_fields = 0

    def bad(self, e, field, exp, got, why=""):
        where = "conn %s stream %d" % (e.conn.label(), e.sid) if e else "-"
        self.errors.append("MISMATCH %s %s: expected %s got %s%s" %
                           (where, field, show(exp), show(got), ("  (" + why + ")") if why else ""))

    # One field: record [n, v] vs expected (nb, vb). Returns True if equal
    # (uncertain parts skipped).
    def field_eq(self, e, where, rec, exp, count=True):
        n, v = rec
        en, ev = exp
        unc = n is None or v is None
        if unc and count:
            self.uncertain_fields += 1
        if n is not None and n.encode("latin-1") != en:
            self.bad(e, where + ".name", en, n.encode("latin-1"))
            return False
        if isinstance(v, dict):
            if "redacted" not in v:
                self.bad(e, where + ".value", ev, v, "unknown value object")
                return False
            if en not in REDACTED:
                self.bad(e, where + ".value", ev, v, "redacted a field that is not a credential")
                return False
            if v["redacted"] != len(ev):
                self.bad(e, where + ".value.redacted", len(ev), v["redacted"], "redacted length")
                return False
            return True
        if v is not None and en in REDACTED:
            self.bad(e, where + ".value", {"redacted": len(ev)}, v.encode("latin-1"),
                     "credential in plaintext%s" % (" under an unknown name" if n is None else ""))
            return False
        if v is not None and v.encode("latin-1") != ev:
            self.bad(e, where + ".value", ev, v.encode("latin-1"))
            return False
        return True

    def list_eq(self, e, where, rec, exp, prefix=False):
        """rec: record's list of [n, v]; exp: [(nb, vb)]."""
        ok = True
        if prefix:
            if len(rec) > len(exp):
                self.bad(e, where + " length", "<= %d fields (%s)" % (len(exp), fields_str(exp)),
                         "%d (%s)" % (len(rec), fields_str(rec)), "damaged block holds fields tshark does not have there")
                return False
        elif len(rec) != len(exp):
            self.bad(e, where + " length", "%d (%s)" % (len(exp), fields_str(exp)),
                     "%d (%s)" % (len(rec), fields_str(rec)))
            return False
        for i, (r, x) in enumerate(zip(rec, exp)):
            if not self.field_eq(e, "%s[%d]" % (where, i), r, x):
                ok = False
                break
        return ok


def fields_str(lst, n=6):
    out = []
    for x in lst[:n]:
        name = x[0]
        out.append(b2s(name) if name is not None else "null")
    return ",".join(out) + (",..." if len(lst) > n else "")


def has_null(lst):
    return any(x[0] is None or x[1] is None for x in lst)


def record_has_null(r):
    q, p = r["request"], r["response"]
    return (has_null(q["headers"]) or has_null(q["trailers"]) or has_null(p["headers"])
            or has_null(p["trailers"]) or any(has_null(b) for b in p["informational"]))


def first_value(fields, name):
    for n, v in fields:
        if n == name:
            return v
    return None


def check_exchange(ck, e, r, derived):
    q, p = r["request"], r["response"]
    anomalies = set(r.get("anomalies", []))
    where = "conn %s stream %d" % (e.conn.label(), e.sid)

    # --- uncertain bookkeeping: nulls <-> indices
    for side, m in (("request", q), ("response", p)):
        nulls = [i for i, x in enumerate(m["headers"]) if x[0] is None or x[1] is None]
        if sorted(m.get("uncertain", [])) != nulls:
            ck.bad(e, side + ".uncertain", nulls, m.get("uncertain"), "indices of null fields")
    if record_has_null(r) and "uncertain_headers" not in anomalies:
        ck.bad(e, "anomalies", "uncertain_headers", sorted(anomalies), "null fields but not marked")
    if not derived and record_has_null(r):
        ck.bad(e, "headers", "no null field", "null fields", "clean capture")

    # --- header blocks
    def block(side, name, b, rec_list):
        exp = b.fields if b else []
        intact = (b is None) or b.intact() or not derived
        if b is not None and derived and not b.head_seen() and rec_list:
            # sealtap never saw this block start: what it holds here came
            # from another block (e.g. trailers taken for headers).
            ck.bad(e, "%s.%s" % (side, name), "[] (the block's first frame is not in the capture)",
                   "%d field(s): %s" % (len(rec_list), fields_str(rec_list)),
                   "fields of another block recorded as %s %s" % (side, name))
            return False
        return ck.list_eq(e, "%s.%s" % (side, name), rec_list, exp, prefix=not intact)

    block("request", "headers", e.req, q["headers"])
    if len(e.req_trailers) <= 1:
        block("request", "trailers", e.req_trailers[0] if e.req_trailers else None, q["trailers"])
    block("response", "headers", e.resp, p["headers"])
    if len(e.resp_trailers) <= 1:
        block("response", "trailers", e.resp_trailers[0] if e.resp_trailers else None, p["trailers"])
    infos = p.get("informational", [])
    if not derived or all(b.intact() for b in e.info):
        if len(infos) != len(e.info):
            ck.bad(e, "response.informational", len(e.info), len(infos), "number of 1xx blocks")
        else:
            for i, (rb, xb) in enumerate(zip(infos, e.info)):
                ck.list_eq(e, "response.informational[%d]" % i, rb, xb.fields)

    # --- pseudo-header fields
    req_fields = e.req.fields if e.req else []
    for key, name in (("method", b":method"), ("scheme", b":scheme"),
                      ("authority", b":authority"), ("path", b":path")):
        exp = first_value(req_fields, name)
        got = q.get(key)
        if got is None:
            if exp is not None and (not derived or (e.req and e.req.intact()
                                                   and not has_null(q["headers"]))):
                ck.bad(e, "request." + key, exp, None)
            elif exp is not None:
                ck.uncertain_fields += 0
        elif exp is None or got.encode("latin-1") != exp:
            ck.bad(e, "request." + key, exp, got.encode("latin-1"))
    st = first_value(e.resp.fields, b":status") if e.resp else None
    got = p.get("status")
    if got is None:
        if st is not None and (not derived or (e.resp.intact() and not has_null(p["headers"]))):
            ck.bad(e, "response.status", int(st), None)
    elif st is None or not st.isdigit() or int(st) != got:
        ck.bad(e, "response.status", st, got)

    # --- bodies
    for side, m, frames, idx in (("request", q, e.data[0], 0), ("response", p, e.data[1], 1)):
        exp = sum(f.body() for f in frames)
        lost = [f for f in frames if f.damage == "lost"]
        inner = sum(f.content_lost for f in frames if f.damage == "inner")
        # sealtap counts DATA only for streams it knows when the frame is
        # parsed. If this side's header block was never seen, the stream
        # may only become known later (the other direction can lag behind
        # a hole for up to reasm.gap_timeout): then the count may be short,
        # and the record must say the headers were missed.
        opened = e.req is not None and e.req.head_seen() and \
            (idx == 0 or e.resp is None or e.resp.head_seen())
        if not derived or (not lost and opened):
            if m["body_bytes"] != exp:
                ck.bad(e, side + ".body_bytes", exp, m["body_bytes"])
            if m["body_gap_bytes"] != inner:
                ck.bad(e, side + ".body_gap_bytes", inner, m["body_gap_bytes"])
            if inner and "body_gap" not in anomalies:
                ck.bad(e, "anomalies", "body_gap", sorted(anomalies))
        else:
            if m["body_bytes"] > exp:
                ck.bad(e, side + ".body_bytes", "<= %d" % exp, m["body_bytes"], "DATA frames lost")
            marks = {"body_gap", "resync", "midstream",
                     "request_headers_missed" if idx == 0 else "response_headers_missed"}
            if m["body_bytes"] < exp and not anomalies & marks:
                ck.bad(e, "anomalies", "one of %s" % sorted(marks), sorted(anomalies),
                       "%s body short by %d" % (side, exp - m["body_bytes"]))
        # END_STREAM: if tshark saw it in an intact frame, so must sealtap.
        es = e.end_stream[idx]
        if es is not None:
            carrier = None
            for f in ([e.req.frames[0]] if idx == 0 and e.req else []) + \
                     ([b.frames[0] for b in e.req_trailers] if idx == 0 else []) + \
                     ([e.resp.frames[0]] if idx == 1 and e.resp else []) + \
                     ([b.frames[0] for b in e.resp_trailers] if idx == 1 else []) + frames:
                if f.pkt == es and (f.flags & F_END_STREAM or f.type == PUSH_PROMISE):
                    carrier = f
            if (carrier is None or carrier.damage is None) and not m["end_stream"] \
                    and r["end"] not in ("reset",) and not (derived and (e.rst or not opened)):
                ck.bad(e, side + ".end_stream", True, m["end_stream"])
        elif m["end_stream"]:
            ck.bad(e, side + ".end_stream", False, True)

    if e.promised_by != r.get("promised_by", 0):
        ck.bad(e, "promised_by", e.promised_by, r.get("promised_by", 0))

    # --- how it ended
    all_frames = e.frames()
    intact = all(f.damage is None for f in all_frames) and (e.req is None or e.req.done)
    both = e.end_stream[0] is not None and e.end_stream[1] is not None
    if intact:
        if e.rst and (not both or e.rst[2] < max(e.end_stream)):
            if r["end"] != "reset":
                ck.bad(e, "end", "reset", r["end"])
            elif r.get("rst_code") != e.rst[0] or r.get("rst_by") != ("client" if e.rst[1] else "server"):
                ck.bad(e, "rst", (e.rst[0], "client" if e.rst[1] else "server"),
                       (r.get("rst_code"), r.get("rst_by")))
        elif both and not e.rst and r["end"] != "complete":
            ck.bad(e, "end", "complete", r["end"])

    # RFC 9113 §6.8: a GOAWAY's last stream id is about streams its
    # *receiver* initiated; only the server's GOAWAY can refuse a client's
    # (odd) stream, only the client's a pushed (even) one.
    if r["end"] == "refused_by_goaway":
        by_server = e.sid % 2 == 1
        d = e.conn.sdir() if by_server else e.conn.cdir()
        if not any(last < e.sid for last, _ in d.goaways):
            other = e.conn.cdir() if by_server else e.conn.sdir()
            sent = ["last_stream_id %d" % last for last, _ in other.goaways]
            ck.bad(e, "end", "not refused_by_goaway (no GOAWAY from the %s below stream %d)" %
                   ("server" if by_server else "client", e.sid), r["end"],
                   "the %s sent GOAWAY %s, which says nothing about %s-initiated streams" %
                   ("client" if by_server else "server", ", ".join(sent) or "-",
                    "client" if by_server else "server"))

    # --- anomalies
    if not derived:
        if anomalies:
            ck.bad(e, "anomalies", [], sorted(anomalies), "clean capture")
        if r.get("roles") != "sure":
            ck.bad(e, "roles", "sure", r.get("roles"))
    elif intact:
        extra = anomalies - INTACT_OK
        if extra:
            ck.bad(e, "anomalies", "subset of %s" % sorted(INTACT_OK), sorted(anomalies),
                   "every frame of this exchange is in the capture")
    else:
        if not anomalies & DAMAGE_MARKS:
            ck.bad(e, "anomalies", "one of %s" % sorted(DAMAGE_MARKS), sorted(anomalies),
                   "frames of this exchange are missing: %s" % damaged_desc(e))
    if e.req and q["headers"] == [] and e.req.fields and \
            not anomalies & {"request_headers_missed", "headers_lost", "hpack_error", "memcap",
                             "header_block_too_big"}:
        ck.bad(e, "anomalies", "request_headers_missed", sorted(anomalies), "record has no request headers")
    if e.resp and p["headers"] == [] and e.resp.fields and r["end"] not in ("reset", "refused_by_goaway") and \
            not anomalies & {"response_headers_missed", "headers_lost", "hpack_error", "memcap",
                             "header_block_too_big"}:
        ck.bad(e, "anomalies", "response_headers_missed", sorted(anomalies), "record has no response headers")


def damaged_desc(e):
    out = []
    names = {DATA: "DATA", HEADERS: "HEADERS", PUSH_PROMISE: "PUSH_PROMISE", CONTINUATION: "CONTINUATION",
             RST_STREAM: "RST_STREAM"}
    for f in e.frames():
        if f.damage:
            out.append("%s@%d(%s)" % (names.get(f.type, str(f.type)), f.start, f.damage))
    return " ".join(out[:6])


# ---------------------------------------------------------------- main


def match_records(conns, recs, ck):
    """Returns {(conn stream, sid): [records]} and the records matching no
    connection."""
    byq = {}
    for c in conns.values():
        byq.setdefault((c.client, c.server), []).append(c)
    swapped = {(c.server, c.client) for c in conns.values()}
    out, orphans = {}, []
    for r in recs:
        cands = byq.get((r.get("client"), r.get("server")))
        if not cands:
            if (r.get("client"), r.get("server")) in swapped:
                ck.errors.append("MISMATCH record %s stream %s: client/server swapped (%s -> %s, roles %s)" %
                                 (r.get("id"), r.get("stream_id"), r.get("client"), r.get("server"),
                                  r.get("roles")))
            else:
                orphans.append(r)
            continue
        ts = r.get("first_ts_ns", 0)
        c = min(cands, key=lambda k: 0 if k.first_ts <= ts <= k.last_ts else
                min(abs(ts - k.first_ts), abs(ts - k.last_ts)))
        out.setdefault((c.stream, r["stream_id"]), []).append(r)
    return out, orphans


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pcap", required=True, help="the capture sealtap read")
    ap.add_argument("--port", required=True, help="server port(s), comma separated")
    ap.add_argument("--records", required=True, help="record directory (or one .ndjson file)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--midstream", metavar="FULL", help="PCAP was cut from FULL")
    g.add_argument("--gaps", metavar="FULL", help="PCAP is FULL with packets removed")
    g.add_argument("--same-as", metavar="FULL", help="PCAP holds FULL's packets (e.g. reordered): "
                   "tshark decodes FULL, clean-mode checks")
    ap.add_argument("--cache", help="directory to keep tshark's decoding of a capture")
    ap.add_argument("--json", help="also write the summary object to this file")
    ap.add_argument("--max-diff", type=int, default=60, help="mismatch lines printed")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    try:
        ports = sorted(int(x) for x in a.port.split(","))
    except ValueError:
        print("h2oracle: --port wants numbers", file=sys.stderr)
        return 2
    full = a.midstream or a.gaps
    mode = "midstream" if a.midstream else "gaps" if a.gaps else "clean"
    try:
        model = decode_capture(full or a.same_as or a.pcap, ports, a.cache)
        conns = build(model, ports)
        totals = {"framing_lost": 0, "inner": 0, "resynced": 0}
        if full:
            totals = apply_coverage(conns, read_packets(a.pcap))
        recs = load_records(a.records)
    except (ToolError, OSError) as e:
        print("h2oracle: %s" % e, file=sys.stderr)
        return 2

    ck = Checker(mode, a.max_diff)
    matched, orphans = match_records(conns, recs, ck)
    for r in orphans:
        ck.errors.append("MISMATCH record %s (%s -> %s stream %s): no such connection in tshark's view" %
                         (r.get("id"), r.get("client"), r.get("server"), r.get("stream_id")))
    n_ex = n_req = 0
    exact = uncertain = damaged = missing_ok = 0
    per_conn = []
    for c in sorted(conns.values(), key=lambda k: k.first_ts):
        rows = []
        for sid in sorted(c.exchanges, key=lambda s: c.exchanges[s].first_pkt):
            e = c.exchanges[sid]
            n_ex += 1
            rs = matched.pop((c.stream, sid), [])
            has_req = e.req is not None
            need = has_req and (not full or e.req.intact())
            n_req += has_req
            is_damaged = full and any(f.damage for f in e.frames())
            damaged += bool(is_damaged)
            if len(rs) > 1:
                ck.bad(e, "records", 1, len(rs), "duplicate records: ids %s" % [r.get("id") for r in rs])
            if not rs:
                if need:
                    ck.bad(e, "record", "one record (request %s %s)" %
                           (b2s(first_value(e.req.fields, b":method") or b"?"),
                            b2s(first_value(e.req.fields, b":path") or b"?")), "none")
                else:
                    missing_ok += 1
                continue
            r = rs[0]
            check_exchange(ck, e, r, bool(full))
            unc = record_has_null(r)
            exact += not unc
            uncertain += unc
            rows.append((e.first_pkt, unc))
        if rows and full:
            unc_idx = [i for i, (_, u) in enumerate(rows) if u]
            last = unc_idx[-1] if unc_idx else -1
            per_conn.append({"conn": c.label(), "exchanges": len(rows), "uncertain": len(unc_idx),
                             "exact": len(rows) - len(unc_idx),
                             "exact_after_last_uncertain": len(rows) - 1 - last,
                             "became_exact": bool(unc_idx) and last < len(rows) - 1})
    for (stream, sid), rs in matched.items():
        c = conns[stream]
        for r in rs:
            ck.errors.append("MISMATCH conn %s stream %d: record %s for a stream tshark saw no headers on "
                             "(anomalies %s)" % (c.label(), sid, r.get("id"), r.get("anomalies")))

    summary = {"mode": mode, "exchanges": n_ex, "with_request_headers": n_req, "records": len(recs),
               "exact": exact, "uncertain": uncertain, "uncertain_fields": ck.uncertain_fields,
               "damaged": damaged, "unrecorded_damaged": missing_ok,
               "framing_lost": totals["framing_lost"], "inner_gaps": totals["inner"],
               "framing_resynced": totals["resynced"],
               "mismatches": len(ck.errors)}
    if full:
        summary["connections"] = per_conn
        had = [p for p in per_conn if p["uncertain"]]
        summary["conns_with_uncertain"] = len(had)
        summary["conns_became_exact"] = sum(1 for p in had if p["became_exact"])
    for line in ck.errors[:a.max_diff]:
        print(line)
    if len(ck.errors) > a.max_diff:
        print("... %d more mismatches" % (len(ck.errors) - a.max_diff))
    if full and (a.verbose or ck.errors):
        for p in per_conn:
            print("conn %s: %d recorded, %d exact, %d uncertain, %d exact after the last uncertain%s" %
                  (p["conn"], p["exchanges"], p["exact"], p["uncertain"], p["exact_after_last_uncertain"],
                   " (became exact)" if p["became_exact"] else ""))
    text = ("h2oracle %s: %d exchanges (%d with request headers), %d records: %d exact, %d with uncertain "
            "fields (%d fields); %d damaged by missing bytes (%d unrecorded), %d framing losses, %d gaps "
            "inside payloads; %d mismatches" %
            (mode, n_ex, n_req, len(recs), exact, uncertain, ck.uncertain_fields, damaged, missing_ok,
             totals["framing_lost"], totals["inner"], len(ck.errors)))
    if full and summary.get("conns_with_uncertain"):
        text += "; %d of %d connections with uncertain fields became exact" % (
            summary["conns_became_exact"], summary["conns_with_uncertain"])
    print(text)
    print(json.dumps(summary, separators=(",", ":")) if not a.verbose else json.dumps(summary))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(summary, fh)
    return 1 if ck.errors else 0


if __name__ == "__main__":
    sys.exit(main())
