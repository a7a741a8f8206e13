#!/usr/bin/python3
"""pcaptool: rewrite captures to make the hard cases a passive tap meets.

Reads classic pcap (either byte order, micro- or nanosecond) and pcapng
(SHB/IDB/EPB/SPB/OPB, one link type); writes classic pcap (or pcapng with
--pcapng where offered). Standard library only.

Subcommands (IN OUT first, except stats):
  stats     IN                        packet count, wire bytes, average size
  reorder   IN OUT --window W --seed S
            Moves every packet by less than W positions (sort on index +
            uniform[0, W)); timestamps stay in slot order, so time never runs
            backwards. SYN and RST packets are barriers (nothing moves across
            them) unless --move-all: a tap cannot know an ISN it has not seen
            yet, and data after an RST is legitimately discarded. With
            --keep-direction-order only the interleaving of directions and
            flows changes (as with ECMP), SYN/RST included.
  synlate   IN OUT [--direction client|server|both]
            Moves each direction's SYN (SYN-ACK) to just after its first
            payload packet: the handshake overtaken by the data behind it.
  drop      IN OUT (--every N | --prob P [--seed S] | --first N)
            [--only-payload] [--no-fin] [--skip K] [--sidecar FILE]
            Removes packets and lists them (index, flow, seq, len) in a JSON
            sidecar (default OUT.removed.json) for streams.py.
  cut       IN OUT (--skip-payload-packets K | --from-time T)
            Starts the capture mid-connection: drops every packet before the
            K-th TCP packet carrying payload (K from 0), or before T seconds
            after the first packet, handshakes included.
  vxlan     IN OUT --vni N            outer Eth/IPv4/UDP 4789/VXLAN
  geneve    IN OUT --vni N [--options] [--inner eth|ip]
                                      outer Eth/IPv4/UDP 6081/Geneve
  truncate  IN OUT --snaplen N        cut every packet to N bytes, keep wire len
  vlan      IN OUT --id N [--outer-id M]   add an 802.1Q tag (and an 802.1ad
                                      outer tag with --outer-id)
  ipv6      IN OUT [--prefix P] [--ext hbh,dst]
            IPv4 -> IPv6 (addresses mapped into prefix P, default fd00::/96),
            optionally with hop-by-hop / destination-options headers.
  relink    IN OUT --linktype N       rewrite the header's link type only
  convert   IN OUT [--pcapng]         re-encode (pcapng -> pcap, or to pcapng)

Input of the rewriting commands must be Ethernet (LINKTYPE 1), except
relink/convert/truncate/stats.
"""

import argparse
import json
import random
import struct
import sys
import zlib

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

# ---------------------------------------------------------------- file I/O


class Capture:
    """A whole capture in memory: link type, snaplen, time resolution and a
    list of packets [ts_ns, data, orig_len]."""

    def __init__(self, linktype=LINKTYPE_ETHERNET, snaplen=262144, nanos=False):
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanos = nanos
        self.packets = []


class FormatError(Exception):
    pass


def read_capture(path):
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 4:
        raise FormatError("%s: too short to be a capture" % path)
    magic = buf[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(path, buf)
    return _read_pcap(path, buf)


def _read_pcap(path, buf):
    if len(buf) < 24:
        raise FormatError("%s: truncated pcap header" % path)
    m = struct.unpack("<I", buf[:4])[0]
    table = {0xA1B2C3D4: ("<", False), 0xA1B23C4D: ("<", True),
             0xD4C3B2A1: (">", False), 0x4D3CB2A1: (">", True)}
    if m not in table:
        raise FormatError("%s: not a pcap/pcapng file (magic %08x)" % (path, m))
    e, nanos = table[m]
    _, _, _, _, snaplen, linktype = struct.unpack(e + "HHiIII", buf[4:24])
    cap = Capture(linktype & 0x0FFFFFFF, snaplen, nanos)
    off = 24
    hdr = struct.Struct(e + "IIII")
    while off < len(buf):
        if off + 16 > len(buf):
            raise FormatError("%s: truncated record header at byte %d" % (path, off))
        sec, frac, caplen, origlen = hdr.unpack_from(buf, off)
        off += 16
        if off + caplen > len(buf):
            raise FormatError("%s: truncated packet at byte %d" % (path, off))
        ts = sec * 1_000_000_000 + (frac if nanos else frac * 1000)
        cap.packets.append([ts, buf[off:off + caplen], origlen])
        off += caplen
    return cap


def _read_pcapng(path, buf):
    e = None
    off = 0
    ifaces = []  # (linktype, snaplen, ts_units_per_sec)
    cap = None
    while off + 12 <= len(buf):
        btype_raw = buf[off:off + 4]
        if btype_raw == b"\x0a\x0d\x0d\x0a":
            bom = buf[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else None
            if e is None:
                raise FormatError("%s: bad pcapng byte-order magic" % path)
            ifaces = []
        btype, blen = struct.unpack_from(e + "II", buf, off)
        if blen < 12 or off + blen > len(buf):
            raise FormatError("%s: truncated pcapng block at byte %d" % (path, off))
        body = buf[off + 8:off + blen - 4]
        if btype == 1:  # IDB
            lt, _, snap = struct.unpack_from(e + "HHI", body, 0)
            units = 1_000_000
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack_from(e + "HH", body, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:  # if_tsresol
                    r = body[o + 4]
                    units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((lt, snap, units))
            if cap is None:
                cap = Capture(lt, snap or 262144, True)
            elif cap.linktype != lt:
                raise FormatError("%s: interfaces with different link types" % path)
        elif btype in (6, 2):  # EPB, OPB
            if btype == 6:
                ifid, tsh, tsl, caplen, origlen = struct.unpack_from(e + "IIIII", body, 0)
            else:
                ifid, _, tsh, tsl, caplen, origlen = struct.unpack_from(e + "HHIIII", body, 0)
            if ifid >= len(ifaces):
                raise FormatError("%s: packet for unknown interface %d" % (path, ifid))
            units = ifaces[ifid][2]
            t = (tsh << 32) | tsl
            ts = t * 1_000_000_000 // units
            cap.packets.append([ts, body[20:20 + caplen], origlen])
        elif btype == 3:  # SPB
            if not ifaces:
                raise FormatError("%s: simple packet before any interface" % path)
            origlen = struct.unpack_from(e + "I", body, 0)[0]
            caplen = min(origlen, ifaces[0][1] or origlen)
            cap.packets.append([0, body[4:4 + caplen], origlen])
        off += blen
    if off != len(buf):
        raise FormatError("%s: trailing %d bytes" % (path, len(buf) - off))
    if cap is None:
        raise FormatError("%s: pcapng without an interface" % path)
    return cap


def write_capture(path, cap, pcapng=False):
    if pcapng:
        return _write_pcapng(path, cap)
    out = [struct.pack("<IHHiIII", 0xA1B23C4D if cap.nanos else 0xA1B2C3D4, 2, 4,
                       0, 0, cap.snaplen, cap.linktype)]
    for ts, data, origlen in cap.packets:
        sec, ns = divmod(ts, 1_000_000_000)
        frac = ns if cap.nanos else ns // 1000
        out.append(struct.pack("<IIII", sec, frac, len(data), origlen))
        out.append(bytes(data))
    with open(path, "wb") as f:
        f.write(b"".join(out))


def _block(btype, body):
    pad = (-len(body)) % 4
    blen = 12 + len(body) + pad
    return struct.pack("<II", btype, blen) + body + b"\0" * pad + struct.pack("<I", blen)


def _write_pcapng(path, cap):
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    # if_tsresol = 9 (nanoseconds), then opt_endofopt
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    out.append(_block(1, struct.pack("<HHI", cap.linktype, 0, cap.snaplen) + opts))
    for ts, data, origlen in cap.packets:
        out.append(_block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF,
                                         len(data), origlen) + bytes(data)))
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ------------------------------------------------------------ packet views


class Seg:
    """What the tools need to know about one TCP packet."""
    __slots__ = ("src", "dst", "seq", "flags", "plen", "pcap", "l3", "ethertype",
                 "l3_end_cap")


def _ip_str(b):
    if len(b) == 4:
        return ".".join(str(x) for x in b)
    import ipaddress
    return "[%s]" % ipaddress.IPv6Address(bytes(b))


def parse_tcp(data, origlen, linktype):
    """Returns a Seg for a TCP packet, or None. Handles Ethernet with VLAN
    tags and raw IP; IPv4 and IPv6 (extension headers skipped)."""
    off = 0
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        et = struct.unpack_from(">H", data, 12)[0]
        off = 14
        while et in (0x8100, 0x88A8) and len(data) >= off + 4:
            et = struct.unpack_from(">H", data, off + 2)[0]
            off += 4
    elif linktype in (LINKTYPE_RAW, 12, 14):
        et = 0x0800 if data and data[0] >> 4 == 4 else 0x86DD
    else:
        return None
    s = Seg()
    s.l3 = off
    s.ethertype = et
    if et == 0x0800:
        if len(data) < off + 20:
            return None
        ihl = (data[off] & 0x0F) * 4
        tot = struct.unpack_from(">H", data, off + 2)[0]
        if data[off + 9] != 6:
            return None
        frag = struct.unpack_from(">H", data, off + 6)[0]
        if frag & 0x3FFF:
            return None
        src, dst = data[off + 12:off + 16], data[off + 16:off + 20]
        l4 = off + ihl
        l4_wire_end = off + tot
    elif et == 0x86DD:
        if len(data) < off + 40:
            return None
        plen = struct.unpack_from(">H", data, off + 4)[0]
        nh = data[off + 6]
        src, dst = data[off + 8:off + 24], data[off + 24:off + 40]
        l4 = off + 40
        while nh in (0, 43, 60):
            if len(data) < l4 + 2:
                return None
            nh, hl = data[l4], (data[l4 + 1] + 1) * 8
            l4 += hl
        if nh != 6:
            return None
        l4_wire_end = off + 40 + plen
    else:
        return None
    if len(data) < l4 + 20:
        return None
    sport, dport, seq = struct.unpack_from(">HHI", data, l4)
    thl = (data[l4 + 12] >> 4) * 4
    s.flags = data[l4 + 13]
    s.src = "%s:%d" % (_ip_str(src), sport)
    s.dst = "%s:%d" % (_ip_str(dst), dport)
    s.seq = seq
    s.plen = max(0, l4_wire_end - (l4 + thl))
    s.pcap = max(0, min(len(data), l4_wire_end) - (l4 + thl))
    s.l3_end_cap = min(len(data), l4_wire_end)
    return s


FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def segs_of(cap):
    return [parse_tcp(d, o, cap.linktype) for _, d, o in cap.packets]


def need_ethernet(cap, what):
    if cap.linktype != LINKTYPE_ETHERNET:
        sys.exit("pcaptool %s: input link type %d is not Ethernet (1)" % (what, cap.linktype))


# ------------------------------------------------------------- checksums


def csum16(b):
    if len(b) % 2:
        b = bytes(b) + b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4_header(src, dst, proto, payload_len, ident):
    h = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident & 0xFFFF,
                              0x4000, 64, proto, 0, src, dst))
    struct.pack_into(">H", h, 10, csum16(h))
    return bytes(h)


# -------------------------------------------------------------- commands


def cmd_stats(a):
    cap = read_capture(a.input)
    n = len(cap.packets)
    wire = sum(p[2] for p in cap.packets)
    capd = sum(len(p[1]) for p in cap.packets)
    segs = segs_of(cap)
    payload = sum(1 for s in segs if s and s.plen)
    res = {"packets": n, "wire_bytes": wire, "captured_bytes": capd,
           "avg_wire_size": round(wire / n, 1) if n else 0, "linktype": cap.linktype,
           "tcp_packets": sum(1 for s in segs if s), "tcp_payload_packets": payload,
           "duration_s": round((cap.packets[-1][0] - cap.packets[0][0]) / 1e9, 3) if n else 0}
    print(json.dumps(res))


def cmd_reorder(a):
    cap = read_capture(a.input)
    rng = random.Random(a.seed)
    segs = segs_of(cap)
    ts = [p[0] for p in cap.packets]
    out, run = [], []

    def flush():
        keyed = sorted(((i + rng.uniform(0, a.window), i) for i in run))
        out.extend(i for _, i in keyed)
        run.clear()

    for i, s in enumerate(segs):
        if not (a.move_all or a.keep_direction_order) and s is not None and s.flags & (SYN | RST):
            flush()
            out.append(i)
        else:
            run.append(i)
    flush()
    moved = 0
    if a.keep_direction_order:
        # Each direction keeps its own order; only the interleaving of
        # directions and flows changes (ECMP keeps a direction on one path,
        # the two directions and different flows take different ones).
        key = lambda i: (segs[i].src, segs[i].dst) if segs[i] else ("", "")
        queues = {}
        for i in sorted(out):
            queues.setdefault(key(i), []).append(i)
        pos = {k: 0 for k in queues}
        new = []
        for i in out:
            k = key(i)
            new.append(queues[k][pos[k]])
            pos[k] += 1
        out = new
        moved = sum(1 for pos, i in enumerate(out) if pos != i)
    moved = moved or sum(1 for pos, i in enumerate(out) if pos != i)
    cap.packets = [[ts[pos], cap.packets[i][1], cap.packets[i][2]] for pos, i in enumerate(out)]
    write_capture(a.output, cap)
    print("reorder: %d packets, %d moved (window %d, seed %d)" % (len(out), moved, a.window, a.seed),
          file=sys.stderr)


def cmd_synlate(a):
    """Moves the SYN (or SYN-ACK) of every direction to just after that
    direction's first payload packet: the handshake packet overtaken by the
    data that follows it on the same direction."""
    cap = read_capture(a.input)
    segs = segs_of(cap)
    order = list(range(len(cap.packets)))
    syn_at, first_data = {}, {}
    for i, s in enumerate(segs):
        if s is None:
            continue
        k = (s.src, s.dst)
        if s.flags & SYN and k not in syn_at:
            syn_at[k] = i
        elif s.plen and k not in first_data:
            first_data[k] = i
    moves = sorted(((syn_at[k], first_data[k]) for k in syn_at
                    if k in first_data and first_data[k] > syn_at[k]
                    and (a.direction == "both" or (segs[syn_at[k]].flags & ACK) == (a.direction == "server") * ACK)),
                   key=lambda x: x[1])
    for syn, data in moves:
        order.remove(syn)
        order.insert(order.index(data) + 1, syn)
    ts = [p[0] for p in cap.packets]
    cap.packets = [[ts[pos], cap.packets[i][1], cap.packets[i][2]] for pos, i in enumerate(order)]
    write_capture(a.output, cap)
    print("synlate: %d SYNs moved after their direction's first data" % len(moves), file=sys.stderr)


def cmd_drop(a):
    cap = read_capture(a.input)
    rng = random.Random(a.seed)
    segs = segs_of(cap)
    keep, removed, eligible = [], [], 0
    for i, (p, s) in enumerate(zip(cap.packets, segs)):
        ok = True
        if a.only_payload and not (s and s.plen):
            ok = False
        if a.no_fin and s and s.flags & (FIN | SYN | RST):
            ok = False
        if ok:
            eligible += 1
            if eligible <= a.skip:
                ok = False
        drop = False
        if ok:
            if a.first:
                drop = eligible - a.skip <= a.first
            elif a.every:
                drop = (eligible - a.skip) % a.every == 0
            else:
                drop = rng.random() < a.prob
        if drop:
            removed.append({"index": i, "src": s.src if s else None, "dst": s.dst if s else None,
                            "seq": s.seq if s else None, "len": s.plen if s else 0,
                            "flags": s.flags if s else None})
        else:
            keep.append(p)
    cap.packets = keep
    write_capture(a.output, cap)
    side = a.sidecar or a.output + ".removed.json"
    with open(side, "w") as f:
        json.dump({"input": a.input, "removed": removed}, f, indent=0)
    print("drop: removed %d of %d packets (%d payload bytes); sidecar %s" %
          (len(removed), len(keep) + len(removed), sum(r["len"] for r in removed), side),
          file=sys.stderr)


def cmd_cut(a):
    cap = read_capture(a.input)
    segs = segs_of(cap)
    start = len(cap.packets)
    if a.skip_payload_packets is not None:
        k = 0
        for i, s in enumerate(segs):
            if s and s.plen:
                if k == a.skip_payload_packets:
                    start = i
                    break
                k += 1
    else:
        t0 = cap.packets[0][0] if cap.packets else 0
        lim = t0 + int(a.from_time * 1e9)
        start = next((i for i, p in enumerate(cap.packets) if p[0] >= lim), len(cap.packets))
    cap.packets = cap.packets[start:]
    write_capture(a.output, cap)
    print("cut: dropped the first %d packets, kept %d" % (start, len(cap.packets)), file=sys.stderr)


OUTER_MAC = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")
OUTER_SRC, OUTER_DST = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def _encap_udp(cap, dport, build):
    """Wraps every frame: |build|(data, origlen) returns (tunnel header,
    inner bytes, inner wire length)."""
    need_ethernet(cap, "encap")
    out = []
    for n, (ts, data, origlen) in enumerate(cap.packets):
        hdr, inner, inner_orig = build(data, origlen)
        # Entropy in the source port, as encapsulators do (per inner flow).
        sport = 49152 + (zlib.crc32(bytes(data[26:38])) & 0x3FFF)
        ulen = 8 + len(hdr) + inner_orig
        udp = struct.pack(">HHHH", sport, dport, ulen, 0)
        ip = ipv4_header(OUTER_SRC, OUTER_DST, 17, ulen, n)
        pkt = OUTER_MAC + b"\x08\x00" + ip + udp + hdr + bytes(inner)
        out.append([ts, pkt, 14 + 20 + ulen])
    cap.packets = out
    cap.snaplen = max(cap.snaplen, 65535) + 128


def cmd_vxlan(a):
    cap = read_capture(a.input)
    hdr = struct.pack(">BBHI", 0x08, 0, 0, (a.vni & 0xFFFFFF) << 8)
    _encap_udp(cap, a.port, lambda d, o: (hdr, d, o))
    write_capture(a.output, cap)


def _strip_l2(data, origlen):
    off = 14
    et = struct.unpack_from(">H", data, 12)[0]
    while et in (0x8100, 0x88A8):
        et = struct.unpack_from(">H", data, off + 2)[0]
        off += 4
    return data[off:], origlen - off, et


def cmd_geneve(a):
    cap = read_capture(a.input)
    opts = b""
    if a.options:
        # Two TLVs (RFC 8926 §3.5): a 4-byte one and an 8-byte one, with
        # made-up option classes (0xFFxx is experimental use).
        opts += struct.pack(">HBB", 0xFF01, 0x01, 1) + b"\xde\xad\xbe\xef"
        opts += struct.pack(">HBB", 0xFF02, 0x82, 2) + bytes(range(8))
    vni = (a.vni & 0xFFFFFF) << 8

    def build(d, o):
        if a.inner == "eth":
            return struct.pack(">BBHI", len(opts) // 4, 0, 0x6558, vni) + opts, d, o
        inner, inner_orig, et = _strip_l2(d, o)
        return struct.pack(">BBHI", len(opts) // 4, 0, et, vni) + opts, inner, inner_orig

    _encap_udp(cap, a.port, build)
    write_capture(a.output, cap)


def cmd_truncate(a):
    cap = read_capture(a.input)
    n = 0
    for p in cap.packets:
        if len(p[1]) > a.snaplen:
            p[1] = p[1][:a.snaplen]
            n += 1
    cap.snaplen = a.snaplen
    write_capture(a.output, cap)
    print("truncate: %d packets cut to %d bytes" % (n, a.snaplen), file=sys.stderr)


def cmd_vlan(a):
    cap = read_capture(a.input)
    need_ethernet(cap, "vlan")
    tag = struct.pack(">HH", 0x8100, a.id & 0x0FFF)
    if a.outer_id is not None:
        tag = struct.pack(">HH", 0x88A8, a.outer_id & 0x0FFF) + tag
    for p in cap.packets:
        p[1] = bytes(p[1][:12]) + tag + bytes(p[1][12:])
        p[2] += len(tag)
    write_capture(a.output, cap)


def cmd_ipv6(a):
    import ipaddress
    cap = read_capture(a.input)
    need_ethernet(cap, "ipv6")
    prefix = ipaddress.IPv6Address(a.prefix).packed[:12]
    exts = [x for x in a.ext.split(",") if x] if a.ext else []
    out = []
    for ts, data, origlen in cap.packets:
        s = parse_tcp(data, origlen, cap.linktype)
        if s is None or s.ethertype != 0x0800:
            out.append([ts, data, origlen])
            continue
        off = s.l3
        ihl = (data[off] & 0x0F) * 4
        tot = struct.unpack_from(">H", data, off + 2)[0]
        tos, ttl = data[off + 1], data[off + 8]
        src, dst = prefix + data[off + 12:off + 16], prefix + data[off + 16:off + 20]
        l4 = bytearray(data[off + ihl:])
        l4_wire = tot - ihl
        complete = len(l4) >= l4_wire
        if complete:
            l4 = l4[:l4_wire]
            struct.pack_into(">H", l4, 16, 0)
            pseudo = src + dst + struct.pack(">IxxxB", l4_wire, 6)
            struct.pack_into(">H", l4, 16, csum16(pseudo + bytes(l4)))
        chain = b""
        codes = {"hbh": 0, "dst": 60}
        nhs = [codes[x] for x in exts] + [6]
        for i, x in enumerate(exts):
            # PadN option filling the 8-byte header (RFC 8200 §4.2).
            chain += bytes([nhs[i + 1], 0, 1, 4, 0, 0, 0, 0])
        first_nh = nhs[0]
        v6 = struct.pack(">IHBB", (6 << 28) | (tos << 20), len(chain) + l4_wire, first_nh, ttl) + src + dst
        eth = bytes(data[:off - 2]) + b"\x86\xdd"
        pkt = eth + v6 + chain + bytes(l4)
        out.append([ts, pkt, off + 40 + len(chain) + l4_wire + (origlen - off - tot)])
    cap.packets = out
    write_capture(a.output, cap)


def cmd_relink(a):
    cap = read_capture(a.input)
    cap.linktype = a.linktype
    write_capture(a.output, cap)


def cmd_convert(a):
    cap = read_capture(a.input)
    write_capture(a.output, cap, pcapng=a.pcapng)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pcaptool", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def io(name, fn, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("input")
        p.add_argument("output")
        p.set_defaults(fn=fn)
        return p

    p = sub.add_parser("stats", help="count packets and average wire size")
    p.add_argument("input")
    p.set_defaults(fn=cmd_stats)

    p = io("reorder", cmd_reorder, "shuffle packets within a sliding window")
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--move-all", action="store_true", help="SYN/RST packets move too")
    p.add_argument("--keep-direction-order", action="store_true",
                   help="every direction keeps its own order; directions and flows interleave (SYN/RST move)")

    p = io("synlate", cmd_synlate, "SYN after its direction's first data")
    p.add_argument("--direction", choices=("client", "server", "both"), default="both")

    p = io("drop", cmd_drop, "remove packets, list them in a sidecar")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--every", type=int)
    g.add_argument("--prob", type=float)
    g.add_argument("--first", type=int, help="the first N eligible packets")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only-payload", action="store_true")
    p.add_argument("--no-fin", action="store_true", help="never drop SYN/FIN/RST packets")
    p.add_argument("--skip", type=int, default=0, help="never drop the first K eligible packets")
    p.add_argument("--sidecar")

    p = io("cut", cmd_cut, "start the capture mid-connection")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--skip-payload-packets", type=int)
    g.add_argument("--from-time", type=float, help="seconds after the first packet")

    p = io("vxlan", cmd_vxlan, "encapsulate in VXLAN")
    p.add_argument("--vni", type=int, required=True)
    p.add_argument("--port", type=int, default=4789)

    p = io("geneve", cmd_geneve, "encapsulate in Geneve")
    p.add_argument("--vni", type=int, required=True)
    p.add_argument("--port", type=int, default=6081)
    p.add_argument("--options", action="store_true", help="add two option TLVs")
    p.add_argument("--inner", choices=("eth", "ip"), default="eth")

    p = io("truncate", cmd_truncate, "cut packets to a snap length")
    p.add_argument("--snaplen", type=int, required=True)

    p = io("vlan", cmd_vlan, "add 802.1Q (and 802.1ad) tags")
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--outer-id", type=int)

    p = io("ipv6", cmd_ipv6, "turn IPv4 into IPv6")
    p.add_argument("--prefix", default="fd00::")
    p.add_argument("--ext", default="", help="comma list of hbh,dst")

    p = io("relink", cmd_relink, "rewrite the link type")
    p.add_argument("--linktype", type=int, required=True)

    p = io("convert", cmd_convert, "re-encode")
    p.add_argument("--pcapng", action="store_true")

    a = ap.parse_args(argv)
    try:
        a.fn(a)
    except FormatError as e:
        sys.exit("pcaptool: %s" % e)


if __name__ == "__main__":
    main()
