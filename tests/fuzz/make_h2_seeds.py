#!/usr/bin/python3
"""Makes seed inputs for fuzz_h2 and fuzz_tap from captures.

fuzz_tap seeds are the (small) captures themselves. fuzz_h2 seeds are the
HTTP/2 byte streams of each capture's first TCP connection, taken with
tshark's follow,tcp,raw (which keeps the order in which the two sides
spoke), written in fuzz_h2's chunk format: byte 0 = start flags, then
[dir | gap<<1][len16][bytes] chunks. Variants: from the start, mid-stream
(first 200 bytes of each side dropped, no SYN flags), and with a gap.

usage: make_h2_seeds.py OUTDIR_H2 OUTDIR_TAP PCAP...
"""
import os
import shutil
import struct
import subprocess
import sys


def follow(pcap):
    out = subprocess.run(['tshark', '-r', pcap, '-q', '-z', 'follow,tcp,raw,0'],
                         capture_output=True, text=True, check=True).stdout
    chunks, started = [], False
    for line in out.split('\n'):
        if line.startswith('====='):
            started = not started if started else True
            continue
        if not started or not line.strip() or line.startswith(('Follow', 'Filter', 'Node')):
            continue
        d = 1 if line.startswith('\t') else 0
        chunks.append((d, bytes.fromhex(line.strip())))
    return chunks


def encode(flags, chunks):
    out = bytearray([flags])
    for d, kind, data in chunks:
        if kind == 'gap':
            out += bytes([d | 2]) + struct.pack('>H', data)
        else:
            for i in range(0, len(data), 65535):
                part = data[i:i + 65535]
                out += bytes([d]) + struct.pack('>H', len(part)) + part
    return bytes(out)


def main():
    h2dir, tapdir, pcaps = sys.argv[1], sys.argv[2], sys.argv[3:]
    for pcap in pcaps:
        base = os.path.splitext(os.path.basename(pcap))[0]
        if os.path.getsize(pcap) <= 256 * 1024:
            shutil.copy(pcap, os.path.join(tapdir, base + '.pcap'))
        ch = follow(pcap)
        full = [(d, 'data', b) for d, b in ch]
        # Node 0 is the side that spoke first: the client.
        open(os.path.join(h2dir, base + '-start'), 'wb').write(encode(0b1111, full))
        skip = [200, 200]
        mid = []
        for d, b in ch:
            k = min(skip[d], len(b))
            skip[d] -= k
            if b[k:]:
                mid.append((d, 'data', b[k:]))
        open(os.path.join(h2dir, base + '-mid'), 'wb').write(encode(0b0100, mid))
        gap = list(full)
        if len(gap) > 4:
            gap.insert(len(gap) // 2, (1, 'gap', 700))
        open(os.path.join(h2dir, base + '-gap'), 'wb').write(encode(0b1111, gap))


main()
