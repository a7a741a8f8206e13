#!/usr/bin/python3
"""streams: the expected per-direction TCP byte streams of a capture, with
tshark as the packet oracle, checked against sealtap's stream digests
(include/sealtap/stream_digest.h).

  streams.py check --pcap TAPPED.pcap --digests OUT.ndjson
                   [--original ORIG.pcap] [--removed SIDECAR.json]
      TAPPED is the capture sealtap read. ORIG (default: TAPPED) is the
      capture TAPPED was derived from (pcaptool drop/cut/truncate/reorder):
      the stream bytes come from ORIG, what sealtap could know from TAPPED.
      For every flow direction of TAPPED:
        - offset 0 is the byte after the SYN if TAPPED holds the SYN
          (then syn must be true and base_seq = ISN+1), else the digest's
          base_seq (syn must be false), placed in ORIG by the ISN seen there;
        - the known extent ends at the furthest byte a segment of TAPPED
          announces (sequence + wire length) or at its FIN;
        - expected gaps = the extent minus the payload bytes TAPPED holds;
        - expected delivered bytes = ORIG's stream over the rest, in order.
      bytes, gap_bytes, gaps, sha256, syn, base_seq, role and end must match;
      directions without a byte must be absent; no unexpected lines.
      With --removed (pcaptool drop's sidecar), every expected gap must also
      lie in bytes that were removed and not retransmitted elsewhere.
  streams.py dump --pcap F          expected directions as JSON lines
  streams.py follow-check --pcap F  cross-check this assembly against
                                    tshark -z follow,tcp,raw (tool self-test)
  streams.py same A.ndjson B.ndjson [--map-ipv6 PREFIX]
      the two digest files describe the same streams (order ignored);
      --map-ipv6 maps A's IPv4 addresses into PREFIX (pcaptool ipv6).
  streams.py retrans --pcap F       count tcp.analysis.retransmission

Exit: 0 match, 1 mismatch, 2 usage or tool error.
Standard library only, plus the tshark executable.
"""

import argparse
import bisect
import hashlib
import ipaddress
import json
import subprocess
import sys

TSHARK = "tshark"
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


class ToolError(Exception):
    pass


def s32(x):
    """Signed distance of a 32-bit sequence difference."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= (1 << 31) else x


def tshark(args):
    cmd = [TSHARK, "-n"] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise ToolError("%s failed (%d): %s" % (" ".join(cmd[:6]), r.returncode,
                                              r.stderr.decode(errors="replace").strip()[-500:]))
    return r.stdout.decode()


# ---------------------------------------------------------------- intervals


class Ranges:
    """Sorted, merged, half-open [a, b) intervals."""

    def __init__(self, items=()):
        self.a, self.b = [], []
        for x, y in items:
            self.add(x, y)

    def add(self, x, y):
        if y <= x:
            return
        i = bisect.bisect_left(self.b, x)
        j = bisect.bisect_right(self.a, y)
        if i < j:
            x = min(x, self.a[i])
            y = max(y, self.b[j - 1])
        self.a[i:j] = [x]
        self.b[i:j] = [y]

    def uncovered(self, x, y):
        """Parts of [x, y) not in the set."""
        out = []
        i = bisect.bisect_right(self.b, x)
        cur = x
        while cur < y and i < len(self.a):
            if self.a[i] >= y:
                break
            if self.a[i] > cur:
                out.append((cur, self.a[i]))
            cur = max(cur, self.b[i])
            i += 1
        if cur < y:
            out.append((cur, y))
        return out

    def clip(self, x, y):
        r = Ranges()
        for a, b in zip(self.a, self.b):
            a, b = max(a, x), min(b, y)
            if a < b:
                r.a.append(a)
                r.b.append(b)
        return r

    def items(self):
        return list(zip(self.a, self.b))

    def total(self):
        return sum(b - a for a, b in zip(self.a, self.b))

    def __eq__(self, other):
        return self.items() == other.items()


def merged(pairs):
    return Ranges(pairs).items()


# ------------------------------------------------------------- assembly


class Direction:
    """One direction of one TCP connection as tshark sees it."""

    def __init__(self, stream, src, dst):
        self.stream, self.src, self.dst = stream, src, dst
        self.isn = None          # sequence number of the SYN
        self.syn_frame = None
        self.client = None       # True if it sent a bare SYN
        self.ref = None          # sequence number of offset 0 in this capture
        self.segs = []           # (frame, seq, payload bytes, wire len, flags)
        self.fin_seq = None
        self.fin_frame = None
        self.first_frame = None

    def key(self):
        return (self.src, self.dst)

    def label(self):
        return "%s -> %s (tcp.stream %d)" % (self.src, self.dst, self.stream)


class Flow:
    def __init__(self, stream):
        self.stream = stream
        self.dirs = {}
        self.rst_frame = None


FIELDS = ["frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst",
          "ipv6.dst", "tcp.dstport", "tcp.seq_raw", "tcp.len", "tcp.flags", "tcp.payload"]


def endpoint(ip4, ip6, port):
    if ip6:
        return "[%s]:%s" % (ipaddress.IPv6Address(ip6), port)
    return "%s:%s" % (ip4, port)


def read_flows(path):
    """Returns {stream: Flow} from tshark's per-packet fields. The innermost
    (last) occurrence of each field is used, so tunnelled captures give the
    inner connection."""
    args = ["-r", path, "-o", "tcp.desegment_tcp_streams:FALSE",
            "-o", "tcp.analyze_sequence_numbers:FALSE", "-Y", "tcp",
            "-T", "fields", "-E", "occurrence=l", "-E", "separator=\t"]
    for f in FIELDS:
        args += ["-e", f]
    flows = {}
    for line in tshark(args).splitlines():
        v = line.split("\t")
        if len(v) != len(FIELDS):
            raise ToolError("unexpected tshark line: %r" % line[:200])
        frame, stream = int(v[0]), int(v[1])
        src, dst = endpoint(v[2], v[3], v[4]), endpoint(v[5], v[6], v[7])
        seq, wlen, flags = int(v[8]), int(v[9] or 0), int(v[10], 16)
        payload = bytes.fromhex(v[11].replace(":", "")) if v[11] else b""
        fl = flows.setdefault(stream, Flow(stream))
        d = fl.dirs.get((src, dst))
        if d is None:
            d = fl.dirs[(src, dst)] = Direction(stream, src, dst)
            d.first_frame = frame
        if flags & RST and fl.rst_frame is None:
            fl.rst_frame = frame
        if flags & SYN:
            if d.isn is None:
                d.isn = seq
                d.syn_frame = frame
                d.client = not (flags & ACK)
            seq = (seq + 1) & 0xFFFFFFFF
        if d.ref is None:
            d.ref = (d.isn + 1) & 0xFFFFFFFF if d.isn is not None else seq
        if wlen:
            d.segs.append((frame, seq, payload, wlen, flags))
        if flags & FIN and d.fin_seq is None:
            d.fin_seq = (seq + wlen) & 0xFFFFFFFF
            d.fin_frame = frame
    return flows


class Assembly:
    """A direction's bytes by offset from its ref, first-seen wins."""

    def __init__(self, d, ref=None):
        self.ref = d.ref if ref is None else ref
        self.cover = Ranges()      # bytes present in the capture
        self.extent = 0            # furthest byte announced (seq + wire len, FIN)
        self.buf = bytearray()
        self.conflicts = 0         # overlapping bytes that differed
        self.before = 0            # segments before offset 0
        self.min_data_off = None   # first payload offset seen (arrival order)
        for frame, seq, payload, wlen, flags in d.segs:
            off = s32(seq - self.ref)
            if off < 0:
                self.before += 1
                continue
            if self.min_data_off is None:
                self.min_data_off = off
            self.extent = max(self.extent, off + wlen)
            end = off + len(payload)
            if len(self.buf) < end:
                self.buf.extend(bytes(end - len(self.buf)))
            for a, b in self.cover.uncovered(off, end):
                self.buf[a:b] = payload[a - off:b - off]
            if self.conflicts == 0:
                for a, b in self.cover.clip(off, end).items():
                    if self.buf[a:b] != payload[a - off:b - off]:
                        self.conflicts += 1
            self.cover.add(off, end)
        if d.fin_seq is not None:
            self.fin_off = s32(d.fin_seq - self.ref)
            self.extent = max(self.extent, self.fin_off)
        else:
            self.fin_off = None

    def bytes_over(self, ranges):
        return b"".join(bytes(self.buf[a:b]) for a, b in ranges)


# ---------------------------------------------------------------- digests


def read_digests(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except ValueError as e:
                raise ToolError("%s:%d: not JSON (%s): %r" % (path, n, e, line[:120]))
            for k in ("src", "dst", "syn", "base_seq", "bytes", "gap_bytes", "gaps", "sha256", "end"):
                if k not in d:
                    raise ToolError("%s:%d: no %r in %r" % (path, n, k, line[:200]))
            d["_line"] = n
            out.append(d)
    return out


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------ check


class Report:
    def __init__(self):
        self.fail = []
        self.notes = []
        self.ok = 0

    def bad(self, where, msg):
        self.fail.append("MISMATCH %s: %s" % (where, msg))

    def note(self, where, msg):
        self.notes.append("note %s: %s" % (where, msg))


def removed_ranges(sidecar, orig_dirs):
    """Per (src, dst): Ranges of removed payload in the original's offsets."""
    with open(sidecar) as f:
        side = json.load(f)
    out = {}
    for r in side["removed"]:
        if not r.get("len") or r.get("src") is None:
            continue
        cands = orig_dirs.get((r["src"], r["dst"]), [])
        seq = r["seq"]
        if r.get("flags") is not None and r["flags"] & SYN:
            seq = (seq + 1) & 0xFFFFFFFF
        for od, asm in cands:
            off = s32(seq - asm.ref)
            if 0 <= off <= asm.extent:
                out.setdefault(id(od), Ranges()).add(off, off + r["len"])
                break
    return out


def diagnose(exp, got, d, asm, cover_items, base_off):
    """Hypotheses for a sha256 mismatch, to say what sealtap delivered."""
    hints = []
    n = got["bytes"]
    if n <= len(exp) and sha(exp[:n]) == got["sha256"]:
        hints.append("got = the first %d expected bytes: the stream is correct up to "
                     "delivered offset %d and then stops" % (n, n))
    concat = b"".join(p for _, _, p, _, _ in d.segs)
    if sha(concat) == got["sha256"]:
        hints.append("got = every payload concatenated in capture order (retransmissions/"
                     "reordering not handled)")
    # Last-seen-wins over the same coverage.
    last = bytearray(asm.buf)
    for frame, seq, payload, wlen, flags in d.segs:
        off = s32(seq - asm.ref)
        if off >= 0:
            last[off:off + len(payload)] = payload
    alt = b"".join(bytes(last[a:b]) for a, b in cover_items)
    if alt != exp and sha(alt) == got["sha256"]:
        hints.append("got = last-seen-wins on overlaps")
    # A prefix of the expected stream with a different start.
    for delta in range(-64, 65):
        if delta and 0 <= base_off + delta and sha(bytes(asm.buf[base_off + delta:base_off + delta + n])) == got["sha256"]:
            hints.append("got = %d original bytes from offset %d (base off by %+d)" % (n, base_off + delta, delta))
            break
    return hints


def check(a):
    rep = Report()
    tapped = read_flows(a.pcap)
    orig = read_flows(a.original) if a.original else tapped
    digests = read_digests(a.digests)
    used = set()

    # Original directions by endpoints, with their assemblies.
    orig_dirs = {}
    for fl in orig.values():
        for d in fl.dirs.values():
            orig_dirs.setdefault(d.key(), []).append((d, Assembly(d)))
    removed = removed_ranges(a.removed, orig_dirs) if a.removed else None

    by_key = {}
    for i, g in enumerate(digests):
        by_key.setdefault((g["src"], g["dst"]), []).append(i)

    ndirs = nbytes = ngapbytes = 0
    for fl in sorted(tapped.values(), key=lambda f: f.stream):
        for d in sorted(fl.dirs.values(), key=lambda x: x.first_frame):
            where = d.label()
            # The same direction in the original capture.
            od = oasm = None
            for cand, casm in orig_dirs.get(d.key(), []):
                probe = d.segs[0][1] if d.segs else (d.fin_seq if d.fin_seq is not None else d.ref)
                if d.isn is not None and cand.isn == d.isn:
                    od, oasm = cand, casm
                    break
                if -1 <= s32(probe - casm.ref) <= casm.extent + 1:
                    od, oasm = cand, casm
                    break
            if od is None:
                raise ToolError("%s: not found in the original capture" % where)
            if oasm.conflicts:
                rep.note(where, "original capture has %d overlaps with differing bytes" % oasm.conflicts)

            cands = [i for i in by_key.get(d.key(), []) if i not in used]
            syn_known = d.isn is not None
            if syn_known:
                base_seq = (d.isn + 1) & 0xFFFFFFFF
                g = next((digests[i] for i in cands if digests[i]["base_seq"] == base_seq), None)
                if g is None and cands:
                    g = digests[cands[0]]
            else:
                # Mid-stream: the digest says where offset 0 is; take the
                # candidate whose base lies inside this direction.
                g = None
                for i in cands:
                    off = s32(digests[i]["base_seq"] - oasm.ref)
                    if 0 <= off <= oasm.extent:
                        g = digests[i]
                        break
                base_seq = g["base_seq"] if g else None
            base_off = s32(base_seq - oasm.ref) if base_seq is not None else None

            # What sealtap could know from the tapped capture, in original offsets.
            tasm = Assembly(d, ref=oasm.ref)
            if base_off is not None:
                start = base_off
            elif syn_known:
                start = 0
            else:
                # Mid-stream and no digest line: it should start at the first
                # payload seen; with no payload at all nothing is expected
                # (a FIN or ACK alone does not say where the stream began).
                start = tasm.min_data_off if tasm.min_data_off is not None else tasm.extent
            end = max(tasm.extent, start)
            cover = tasm.cover.clip(start, end)
            gaps = Ranges(cover.uncovered(start, end))
            exp_bytes = oasm.bytes_over(cover.items())
            if cover.total() and oasm.cover.clip(start, end).total() < cover.total():
                raise ToolError("%s: tapped capture has bytes the original lacks" % where)
            if syn_known and base_off != 0:
                rep.note(where, "ISN+1 is at original offset %d" % base_off)

            if g is None:
                if exp_bytes or gaps.total():
                    rep.bad(where, "no digest line; expected %d bytes, %d gap bytes, sha256 %s" %
                            (len(exp_bytes), gaps.total(), sha(exp_bytes)))
                else:
                    rep.ok += 1
                continue
            used.add(digests.index(g))
            lw = "%s [digest line %d]" % (where, g["_line"])
            ndirs += 1
            nbytes += len(exp_bytes)
            ngapbytes += gaps.total()

            if not exp_bytes and not gaps.total():
                rep.bad(lw, "direction carried no byte but has a digest line: %s" % json.dumps(g))
                continue
            if g["syn"] != syn_known:
                rep.bad(lw, "syn=%s, expected %s (%s)" % (g["syn"], syn_known,
                        "SYN at frame %d" % d.syn_frame if syn_known else "no SYN in the capture"))
            if not syn_known:
                if tasm.min_data_off is not None and base_off > tasm.min_data_off:
                    rep.bad(lw, "base_seq %d is %d bytes after the first payload seen (seq %d): "
                            "bytes present in the capture were skipped" %
                            (base_seq, base_off - tasm.min_data_off,
                             (oasm.ref + tasm.min_data_off) & 0xFFFFFFFF))
                elif tasm.min_data_off is not None and base_off < tasm.min_data_off:
                    rep.note(lw, "base_seq is %d bytes before the first payload seen" %
                             (tasm.min_data_off - base_off))
            if syn_known and fl.dirs and any(x.client for x in fl.dirs.values() if x.isn is not None):
                exp_role = "client" if d.client else "server"
                if g.get("role") != exp_role:
                    rep.bad(lw, "role=%r, expected %r" % (g.get("role"), exp_role))

            # Digest gaps are [offset, length]; compare as merged [a, b) runs
            # (adjacent gaps from different causes may be reported apart).
            rel_gaps = [(x - start, y - start) for x, y in gaps.items()]
            got_gaps = merged((o, o + n) for o, n in g["gaps"])
            if g["bytes"] != len(exp_bytes):
                rep.bad(lw, "bytes=%d, expected %d (%+d)" % (g["bytes"], len(exp_bytes),
                                                            g["bytes"] - len(exp_bytes)))
            if g["gap_bytes"] != gaps.total():
                rep.bad(lw, "gap_bytes=%d, expected %d" % (g["gap_bytes"], gaps.total()))
            ngaps = g.get("ngaps", len(g["gaps"]))
            if ngaps <= len(g["gaps"]):
                if got_gaps != rel_gaps:
                    rep.bad(lw, "gaps [offset,length]=%s, expected %s" % (_short(_ol(got_gaps)), _short(_ol(rel_gaps))))
            else:  # the list is capped; what is listed must be expected
                exp_r = Ranges(rel_gaps)
                stray = [x for x in got_gaps if exp_r.uncovered(*x)]
                if stray:
                    rep.bad(lw, "listed gaps [offset,length] not expected: %s" % _short(_ol(stray)))
            if g["sha256"] != sha(exp_bytes):
                hints = diagnose(exp_bytes, g, d, tasm, cover.items(), start)
                rep.bad(lw, "sha256 differs: got %s, expected %s over %d bytes%s" %
                        (g["sha256"][:16], sha(exp_bytes)[:16], len(exp_bytes),
                         "".join("\n    hint: " + h for h in hints)))
            # How the direction ended.
            if gaps.total():
                exp_end = {"fin", "rst", "shutdown", "timeout"}
            elif d.fin_frame is not None and (fl.rst_frame is None or d.fin_frame < fl.rst_frame):
                exp_end = {"fin"}
            elif fl.rst_frame is not None:
                exp_end = {"rst"}
            else:
                exp_end = {"shutdown", "timeout"}
            if g["end"] not in exp_end:
                rep.bad(lw, "end=%r, expected %s" % (g["end"], "/".join(sorted(exp_end))))
            # Gaps must be bytes that were taken out of the capture.
            if removed is not None and gaps.total():
                rr = removed.get(id(od), Ranges())
                for x, y in gaps.items():
                    left = rr.uncovered(x, y)
                    if left:
                        rep.bad(lw, "expected gap bytes %s (original offsets [a,b)) were not removed by pcaptool "
                                "(capture itself incomplete?)" % _short(left))
            if not any(lw in f for f in rep.fail):
                rep.ok += 1

    for i, g in enumerate(digests):
        if i not in used:
            rep.bad("digest line %d" % g["_line"], "no such direction in the capture: %s" %
                    json.dumps({k: v for k, v in g.items() if k != "_line"}))

    for n in rep.notes:
        print(n)
    for f in rep.fail:
        print(f)
    print("%s: %d directions with a digest line, %d stream bytes, %d gap bytes expected; "
          "%d directions fully match, %d mismatches" %
          ("OK" if not rep.fail else "FAIL", ndirs, nbytes, ngapbytes, rep.ok, len(rep.fail)))
    return 1 if rep.fail else 0


def _ol(pairs):
    return [(a, b - a) for a, b in pairs]


def _short(pairs, n=8):
    pairs = [list(p) for p in pairs]
    s = json.dumps(pairs[:n])
    return s + (" ... (%d in all)" % len(pairs) if len(pairs) > n else "")


# ------------------------------------------------------------ other tools


def dump(a):
    for fl in sorted(read_flows(a.pcap).values(), key=lambda f: f.stream):
        for d in fl.dirs.values():
            asm = Assembly(d)
            gaps = Ranges(asm.cover.uncovered(0, asm.extent))
            data = asm.bytes_over(asm.cover.items())
            print(json.dumps({"stream": d.stream, "src": d.src, "dst": d.dst,
                              "syn": d.isn is not None, "base_seq": asm.ref,
                              "bytes": len(data), "gap_bytes": gaps.total(),
                              "gaps": _ol(gaps.items())[:64], "sha256": sha(data),
                              "segments": len(d.segs), "conflicts": asm.conflicts}))
    return 0


def follow_check(a):
    """Our assembly against tshark's own follow (both are tshark's view,
    but follow reassembles independently: a tool self-test)."""
    flows = read_flows(a.pcap)
    streams = sorted(flows)
    bad = 0
    for i in range(0, len(streams), 32):
        chunk = streams[i:i + 32]
        args = ["-r", a.pcap, "-q"]
        for s in chunk:
            args += ["-z", "follow,tcp,raw,%d" % s]
        out = tshark(args)
        blocks = out.split("Follow: tcp,raw")[1:]
        for blk in blocks:
            nodes, data = {}, {0: [], 1: []}
            s = None
            for line in blk.splitlines():
                if line.startswith("Filter: tcp.stream eq "):
                    s = int(line.split()[-1])
                elif line.startswith("Node 0: "):
                    nodes[0] = line[8:].strip()
                elif line.startswith("Node 1: "):
                    nodes[1] = line[8:].strip()
                elif line.startswith("\t") and line.strip():
                    data[1].append(line.strip())
                elif line and line[0] in "0123456789abcdef" and all(c in "0123456789abcdef" for c in line):
                    data[0].append(line)
            for n in (0, 1):
                if n not in nodes:
                    continue
                fb = bytes.fromhex("".join(data[n]))
                d = next((x for x in flows[s].dirs.values() if x.src == nodes[n]), None)
                ours = Assembly(d).bytes_over(Assembly(d).cover.items()) if d else b""
                ok = sha(ours) == sha(fb)
                bad += not ok
                if not ok or a.verbose:
                    print("%s stream %d %s: follow %d bytes, ours %d bytes" %
                          ("ok" if ok else "DIFFER", s, nodes[n], len(fb), len(ours)))
    print("follow-check: %d streams, %s" % (len(streams), "all equal" if not bad else "%d differ" % bad))
    return 1 if bad else 0


def canon(g, mapper=None):
    g = {k: v for k, v in g.items() if k != "_line"}
    if mapper:
        g["src"], g["dst"] = mapper(g["src"]), mapper(g["dst"])
    return json.dumps(g, sort_keys=True)


def same(a):
    mapper = None
    if a.map_ipv6:
        pfx = ipaddress.IPv6Address(a.map_ipv6).packed[:12]

        def mapper(ep):
            host, port = ep.rsplit(":", 1)
            if host.startswith("["):
                return ep
            return "[%s]:%s" % (ipaddress.IPv6Address(pfx + ipaddress.IPv4Address(host).packed), port)
    A = sorted(canon(g, mapper) for g in read_digests(a.a))
    B = sorted(canon(g) for g in read_digests(a.b))
    if A == B:
        print("same: %d digest lines identical" % len(A))
        return 0
    sa, sb = set(A), set(B)
    for x in sorted(sa - sb):
        print("only in %s: %s" % (a.a, x))
    for x in sorted(sb - sa):
        print("only in %s: %s" % (a.b, x))
    if len(A) != len(B):
        print("line counts differ: %d vs %d" % (len(A), len(B)))
    print("FAIL: digest files differ")
    return 1


def retrans(a):
    out = tshark(["-r", a.pcap, "-Y", "tcp.analysis.retransmission", "-T", "fields", "-e", "frame.number"])
    n = len([x for x in out.splitlines() if x.strip()])
    print(n)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="streams", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check")
    p.add_argument("--pcap", required=True, help="the capture sealtap read")
    p.add_argument("--digests", required=True)
    p.add_argument("--original", help="the capture PCAP was derived from")
    p.add_argument("--removed", help="pcaptool drop sidecar")
    p.set_defaults(fn=check)
    p = sub.add_parser("dump")
    p.add_argument("--pcap", required=True)
    p.set_defaults(fn=dump)
    p = sub.add_parser("follow-check")
    p.add_argument("--pcap", required=True)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(fn=follow_check)
    p = sub.add_parser("same")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--map-ipv6")
    p.set_defaults(fn=same)
    p = sub.add_parser("retrans")
    p.add_argument("--pcap", required=True)
    p.set_defaults(fn=retrans)
    a = ap.parse_args(argv)
    try:
        return a.fn(a)
    except (ToolError, OSError) as e:
        print("streams: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
