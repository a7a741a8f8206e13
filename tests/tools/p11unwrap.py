#!/usr/bin/python3
"""An independent PKCS#11 client for tests: unwraps every DEK of a sealtap
key store (RFC 5649 blobs, format byte 0x01) with the token's KEK through
ctypes, so tests can look for key bytes where none may be.

As a module: deks(module, token_label, pin, store_path) -> [(id, bytes)].
"""
import base64
import ctypes as C
import json

U = C.c_ulong


class Attr(C.Structure):
    _fields_ = [("type", U), ("value", C.c_void_p), ("len", U)]


class Mech(C.Structure):
    _fields_ = [("mech", U), ("param", C.c_void_p), ("len", U)]


def deks(module, label, pin, store):
    p = C.CDLL(module)

    def ck(name, *a):
        rv = getattr(p, name)(*a)
        if rv:
            raise SystemExit("%s: 0x%x" % (name, rv))

    def attrs(*pairs):
        arr = (Attr * len(pairs))()
        keep = []
        for i, (t, v) in enumerate(pairs):
            b = C.create_string_buffer(v, len(v))
            keep.append(b)
            arr[i] = Attr(t, C.cast(b, C.c_void_p), len(v))
        return arr, keep

    ulong = lambda v: bytes(U(v))
    ck("C_Initialize", None)
    n = U(0)
    ck("C_GetSlotList", C.c_ubyte(1), None, C.byref(n))
    slots = (U * n.value)()
    ck("C_GetSlotList", C.c_ubyte(1), slots, C.byref(n))
    slot = None
    for s in slots:
        info = C.create_string_buffer(512)
        ck("C_GetTokenInfo", U(s), info)
        if info.raw[:32].rstrip(b" ") == label.encode():
            slot = s
    assert slot is not None, "token not found"
    h = U()
    ck("C_OpenSession", U(slot), U(6), None, None, C.byref(h))
    ck("C_Login", h, U(1), pin, U(len(pin)))

    def kek(name):
        t, keep = attrs((0, ulong(4)), (3, name.encode()))
        ck("C_FindObjectsInit", h, t, U(2))
        o, cnt = U(), U()
        ck("C_FindObjects", h, C.byref(o), U(1), C.byref(cnt))
        ck("C_FindObjectsFinal", h)
        assert cnt.value == 1, name
        return o

    out = []
    for ten in json.load(open(store))["tenants"]:
        k = kek(ten["kek"])
        for d in ten["deks"]:
            blob = base64.b64decode(d["wrapped"])
            assert blob[0] == 1, "not an RFC 5649 blob"
            w = C.create_string_buffer(blob[1:], len(blob) - 1)
            t, keep = attrs((0, ulong(4)), (0x100, ulong(0x10)), (1, b"\0"),
                            (0x103, b"\0"), (0x162, b"\1"))
            o = U()
            m = Mech(0x210A, None, 0)
            ck("C_UnwrapKey", h, C.byref(m), k, w, U(len(blob) - 1), t, U(5),
               C.byref(o))
            v = C.create_string_buffer(64)
            a = Attr(0x11, C.cast(v, C.c_void_p), 64)
            ck("C_GetAttributeValue", h, o, C.byref(a), U(1))
            ck("C_DestroyObject", h, o)
            assert a.len == 32, a.len
            out.append((d["id"], v.raw[:32]))
    return out
