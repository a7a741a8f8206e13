#!/usr/bin/python3
"""Searching a core dump for bytes that must not be there, and saying
where each hit lies: at which address, in which mapping of
/proc/PID/maps (copied before the dump), or in the registers (a hit
outside every PT_LOAD segment is in the notes: a thread's saved
registers).

As a module:
  Core(path, maps_path) -- the core, mapped (never read whole: a
      sanitizer build's core is larger than memory);
  Core.places(needle) -> ["0x... in <maps line>" | "registers", ...]
"""
import mmap
import struct


class Core:
    def __init__(self, path, maps_path):
        self._f = open(path, "rb")
        self.data = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = len(self.data)
        self.loads = self._loads()
        self.spans = []
        for line in open(maps_path):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            self.spans.append((lo, hi, line.strip()))

    def _loads(self):
        """(file offset, address, size) of each PT_LOAD segment."""
        d = self.data
        if d[:4] != b"\x7fELF":
            raise ValueError("not an ELF core")
        phoff, = struct.unpack_from("<Q", d, 0x20)
        phnum, = struct.unpack_from("<H", d, 0x38)
        out = []
        for i in range(phnum):
            t, _, off, va, _, fsz = struct.unpack_from("<IIQQQQ", d,
                                                       phoff + 56 * i)
            if t == 1:
                out.append((off, va, fsz))
        return out

    def places(self, needle, most=8):
        pos, out = self.data.find(needle), []
        while pos != -1 and len(out) < most:
            va = next((v + pos - o for o, v, n in self.loads
                       if o <= pos < o + n), None)
            if va is None:
                out.append("registers")
            else:
                m = next((s for lo, hi, s in self.spans if lo <= va < hi),
                         "?")
                out.append("%#x in %s" % (va, m))
            pos = self.data.find(needle, pos + 1)
        return out

    def close(self):
        self.data.close()
        self._f.close()
