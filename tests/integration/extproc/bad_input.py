#!/usr/bin/env python3
"""Bad input against sealtap extproc: each case must end its stream or
connection cleanly with the right gRPC / HTTP/2 error, be counted, and
leave the server serving others. Raw bytes and raw HTTP/2 (python3-h2)
rather than a gRPC library, which would refuse to send most of these.

usage: bad_input.py --workdir DIR
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import xp  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402

pb = xp.stubs()
EP = pb.ep
CANARY = b'CANARYbad1nput42'

GRPC_HDRS = [(':method', 'POST'), (':scheme', 'http'), (':authority', 'x'),
             ('content-type', 'application/grpc'), ('te', 'trailers')]


def frame(msg, flags=0, length=None):
    return struct.pack('>BI', flags, len(msg) if length is None else length) + msg


class Raw:
    """One HTTP/2 client connection with python3-h2."""

    def __init__(self, port, window=1 << 24):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=5)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding='utf-8',
                                      validate_outbound_headers=False,
                                      normalize_outbound_headers=False))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.streams = {}
        self.goaway = None

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.sock.sendall(d)

    def call(self, path, hdrs=None, chunks=(), end=True, extra=()):
        sid = self.conn.get_next_available_stream_id()
        h = list(hdrs if hdrs is not None else GRPC_HDRS) + [(':path', path)] + list(extra)
        # RFC 9113 §8.3: pseudo-header fields come first
        h = [x for x in h if x[0].startswith(':')] + [x for x in h if not x[0].startswith(':')]
        self.conn.send_headers(sid, h, end_stream=end and not chunks)
        for i, c in enumerate(chunks):
            self.conn.send_data(sid, c, end_stream=end and i == len(chunks) - 1)
        self.flush()
        self.streams[sid] = {'headers': [], 'data': b'', 'trailers': [], 'ended': False,
                             'reset': None}
        return sid

    def pump(self, until, timeout=5.0):
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                raise AssertionError('timed out')
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.closed = True
                return
            for ev in self.conn.receive_data(data):
                s = self.streams.get(getattr(ev, 'stream_id', None))
                if isinstance(ev, h2.events.ResponseReceived):
                    s['headers'] = ev.headers
                elif isinstance(ev, h2.events.DataReceived):
                    s['data'] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    s['trailers'] = ev.headers
                elif isinstance(ev, h2.events.StreamEnded):
                    s['ended'] = True
                elif isinstance(ev, h2.events.StreamReset):
                    if s is not None:
                        s['reset'] = ev.error_code
                        s['ended'] = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
            self.flush()

    def wait(self, sid, timeout=5.0):
        self.pump(lambda: self.streams[sid]['ended'], timeout)
        return self.streams[sid]

    def close(self):
        self.sock.close()


def vm_rss(pid):
    """Resident memory of |pid| in bytes."""
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    return 0


def body_messages(pb):
    """request_headers, then one ~62 KiB request_body message whose
    card numbers the built-in policy replaces: every body message gets a
    reply about as large as itself."""
    rh = pb.ep.ProcessingRequest()
    for k, v in [(':method', 'POST'), (':path', '/x'), ('content-type', 'text/plain')]:
        rh.request_headers.headers.headers.add(key=k, raw_value=v.encode())
    body = pb.ep.ProcessingRequest()
    body.request_body.body = b'card 4111 1111 1111 1111 ' * 2500
    return frame(rh.SerializeToString()), frame(body.SerializeToString())


def unread_replies(workdir):
    """A client that gives the server no window (INITIAL_WINDOW_SIZE 0)
    and keeps sending request_body messages on one stream: without a cap
    the server keeps every reply. It must run out of window instead (flow
    control) while the server's memory stays bounded, count it, and go on
    serving others."""
    srv = xp.Server(workdir, 'unread-replies')
    try:
        pid = srv.proc.pid
        rss0 = vm_rss(pid)
        r = Raw(srv.port, window=0)
        sid = r.call(xp.PROCESS, end=False)
        hdr, body = body_messages(pb)
        r.conn.send_data(sid, hdr)
        r.flush()
        r.sock.setblocking(False)
        goal, sent = 100 << 20, 0
        t0 = last = time.time()
        reset = False
        # send while the server opens window; stop at the goal, when no
        # window came for 3 s, or after 90 s
        while sent < goal and time.time() - last < 3 and time.time() - t0 < 90:
            try:
                while True:
                    d = r.sock.recv(1 << 20)
                    if not d:
                        raise AssertionError('server closed the connection')
                    for ev in r.conn.receive_data(d):
                        if isinstance(ev, h2.events.StreamReset):
                            reset = True
            except (BlockingIOError, InterruptedError):
                pass
            if reset:
                break
            if r.conn.local_flow_control_window(sid) >= len(body):
                for i in range(0, len(body), 16384):
                    r.conn.send_data(sid, body[i:i + 16384])
                sent += len(body)
                last = time.time()
            out = r.conn.data_to_send()
            if out:
                r.sock.setblocking(True)
                r.sock.sendall(out)
                r.sock.setblocking(False)
            else:
                time.sleep(0.005)
        time.sleep(0.5)
        grew = vm_rss(pid) - rss0
        ctr = srv.usr1_counters()
        print('  sent %d MiB of request_body in %.1fs; server RSS grew %d MiB; '
              'streams_backpressure %d' % (sent >> 20, time.time() - t0, grew >> 20,
                                           ctr.get('streams_backpressure', 0)))
        # the stream cap is 2 x max_message (4 MiB) + 64 KiB: replies it
        # holds, plus one stream window (256 KiB) of input and the
        # connection's 1 MiB of output
        if grew >= 64 << 20:
            raise AssertionError('server RSS grew by %d MiB holding unread replies'
                                 % (grew >> 20))
        if sent >= goal:
            raise AssertionError('the server kept opening window: %d MiB taken '
                                 'with no reply read' % (sent >> 20))
        if ctr.get('streams_backpressure', 0) < 1:
            raise AssertionError('streams_backpressure did not move')
        f = Raw(srv.port)
        s = f.wait(f.call(xp.PROCESS, chunks=[hdr]))
        expect_grpc(s, 0)
        f.close()
        r.close()
    finally:
        srv.stop()


def write_stall(workdir):
    """Clients that stop reading are cut off after stream_timeout without
    output progress: a connection whose socket takes nothing more is
    closed (conns_write_stalled), a stream given no window is reset with
    CANCEL (streams_write_stalled), and the server serves others."""
    # idle_timeout long: only the write-stall rule may close (a), even
    # once its streams are reset and it has none left
    srv = xp.Server(workdir, 'write-stall', stream_timeout='2s',
                    extra_yaml='  idle_timeout: 1h')
    try:
        hdr, body = body_messages(pb)
        # (a) never reads the socket; huge windows so replies reach it
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(('127.0.0.1', srv.port))
        c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding='utf-8'))
        c.initiate_connection()
        c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
        c.increment_flow_control_window((1 << 31) - 1 - 65535)
        s.sendall(c.data_to_send())
        # the server's SETTINGS and connection WINDOW_UPDATE (16 MiB),
        # the last bytes this client reads until the end
        while c.outbound_flow_control_window <= 65535:
            d = s.recv(65536)
            if not d:
                raise AssertionError('closed before its SETTINGS')
            c.receive_data(d)
        s.sendall(c.data_to_send())
        for _ in range(8):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(':method', 'POST'), (':scheme', 'http'),
                                 (':authority', 'x'), (':path', xp.PROCESS),
                                 ('content-type', 'application/grpc'), ('te', 'trailers')])
            c.send_data(sid, hdr)
            # as many body messages as the stream's window takes (no
            # WINDOW_UPDATE is read from here on)
            for _ in range(16):
                if c.local_flow_control_window(sid) < len(body):
                    break
                for i in range(0, len(body), 16384):
                    c.send_data(sid, body[i:i + 16384])
            s.sendall(c.data_to_send())
        # (b) reads, but gives its stream no window: the reply waits
        r = Raw(srv.port, window=0)
        sid = r.call(xp.PROCESS, chunks=[hdr])
        st = r.wait(sid, timeout=15)
        if st['reset'] != 8:
            raise AssertionError('stream with no window: %r, not RST_STREAM(CANCEL)' % st)
        r.close()
        # (a) now, still without reading (a read would be progress): the
        # server must count the stall and reset the connection
        deadline = time.time() + 20
        ctr = srv.usr1_counters()
        while not ctr.get('conns_write_stalled') and time.time() < deadline:
            time.sleep(0.5)
            ctr = srv.usr1_counters()
        closed = False
        try:
            while True:
                if not s.recv(1 << 20):
                    closed = True
                    break
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            pass
        s.close()
        if not closed:
            raise AssertionError('connection that never reads still open after 20 s: %r' % {
                k: ctr.get(k) for k in ('conns_write_stalled', 'streams_write_stalled',
                                        'conns_closed', 'replies')})
        f = Raw(srv.port)
        x = f.wait(f.call(xp.PROCESS, chunks=[hdr]))
        expect_grpc(x, 0)
        f.close()
        ctr = srv.usr1_counters()
        for k in ('conns_write_stalled', 'streams_write_stalled'):
            if ctr.get(k, 0) < 1:
                raise AssertionError('%s did not move: %r' % (k, {
                    k: ctr.get(k) for k in ('conns_write_stalled', 'streams_write_stalled',
                                            'conns_idle_timeout', 'streams_idle_timeout')}))
    finally:
        srv.stop()


def interleaved_uploads(workdir, n=40, size=1000000):
    """|n| streams on one connection, each request_headers then one
    request_body message of |size| bytes (Envoy's 1 MiB buffer limit),
    their DATA interleaved over the streams that have window, as a
    multiplexing client sends them: partial messages past the
    connection's cap (4 x max_message) wait for room instead of failing
    (24 of 40 ended with RESOURCE_EXHAUSTED), and every stream ends
    with grpc-status 0."""
    srv = xp.Server(workdir, 'interleaved', stream_timeout='30s')
    try:
        rh = pb.ep.ProcessingRequest()
        for k, v in [(':method', 'POST'), (':path', '/upload'), ('content-type', 'text/plain')]:
            rh.request_headers.headers.headers.add(key=k, raw_value=v.encode())
        body = pb.ep.ProcessingRequest()
        body.request_body.body = b'x' * size
        body.request_body.end_of_stream = True
        msg = frame(rh.SerializeToString()) + frame(body.SerializeToString())
        r = Raw(srv.port)
        sids = [r.call(xp.PROCESS, chunks=[], end=False) for _ in range(n)]
        off = dict.fromkeys(sids, 0)
        deadline = time.time() + 60
        while not all(r.streams[x]['ended'] for x in sids):
            if time.time() > deadline:
                raise AssertionError('uploads did not finish: %d of %d ended' % (
                    sum(r.streams[x]['ended'] for x in sids), n))
            for x in sids:
                w = min(r.conn.local_flow_control_window(x), 16384) \
                    if off[x] < len(msg) and not r.streams[x]['ended'] else 0
                if w > 0:
                    piece = msg[off[x]:off[x] + w]
                    off[x] += len(piece)
                    r.conn.send_data(x, piece, end_stream=off[x] >= len(msg))
            r.flush()
            try:  # replies and WINDOW_UPDATEs: whatever came within 20 ms
                r.pump(lambda: False, timeout=0.02)
            except AssertionError:
                pass
        bad = [status_of(r.streams[x]) for x in sids if status_of(r.streams[x])[0] != '0']
        r.close()
    finally:
        ctr = srv.stop()
    if bad or ctr.get('msgs_over_conn_input'):
        raise AssertionError('%d of %d uploads failed: %r' % (len(bad), n, bad[:2]))


def body_msg(n, eos=False, headers=False):
    """One framed ProcessingRequest: request_headers (|headers|), or a
    request_body of |n| bytes."""
    m = pb.ep.ProcessingRequest()
    if headers:
        for k, v in [(':method', 'POST'), (':path', '/u'), ('content-type', 'text/plain')]:
            m.request_headers.headers.headers.add(key=k, raw_value=v.encode())
    else:
        m.request_body.body = b'y' * n
        m.request_body.end_of_stream = eos
    return frame(m.SerializeToString())


def waiting_under_reply_cap(workdir):
    """The admission cap full (four 4 MiB messages begun), a client that
    reads no reply (INITIAL_WINDOW_SIZE 0) sends 15 KB messages on a fifth
    stream, each DATA frame cut inside a message so each waits: the cap on
    unsent replies must still stop it (the waiting bytes gave their window
    back at once and 150 MB went in, server RSS +155 MB)."""
    srv = xp.Server(workdir, 'waiting-cap', stream_timeout='60s')
    try:
        pid = srv.proc.pid
        r = Raw(srv.port, window=0)
        for _ in range(4):
            r.call(xp.PROCESS, chunks=[body_msg(0, headers=True) +
                                       body_msg(4 * 1024 * 1024 - 100, True)[:1000]], end=False)
        v = r.call(xp.PROCESS, chunks=[body_msg(0, headers=True)], end=False)
        try:
            r.pump(lambda: False, timeout=0.5)
        except AssertionError:
            pass
        rss0 = vm_rss(pid)
        one = body_msg(15000)
        half = len(one) // 2
        piece = one[half:] + one[:half]
        r.conn.send_data(v, one[:half])
        r.flush()
        sent, t0 = 0, time.time()
        while sent < 60 << 20 and time.time() - t0 < 60:
            tw = time.time()
            while r.conn.local_flow_control_window(v) < len(piece) and time.time() - tw < 3:
                try:
                    r.pump(lambda: False, timeout=0.02)
                except AssertionError:
                    pass
            if r.conn.local_flow_control_window(v) < len(piece):
                break  # held by flow control, as it should be
            r.conn.send_data(v, piece)
            r.flush()
            sent += len(piece)
        grew = vm_rss(pid) - rss0
        print('  sent %d MiB on a stream whose messages wait, replies unread; '
              'server RSS grew %d MiB' % (sent >> 20, grew >> 20))
        if sent >= 32 << 20 or grew >= 64 << 20:
            raise AssertionError('the reply cap did not hold: %d MiB taken, RSS +%d MiB' % (
                sent >> 20, grew >> 20))
        r.close()
    finally:
        srv.stop()


def waiting_keeps_window(workdir):
    """Four streams hold the connection's admission cap (4 x 64 KiB) but a
    few KB with partial messages; a fifth alternates a 20 KB message,
    which waits and completes while waiting, and a 4 KB one, admitted at
    once. Every byte of its stream window must come back: a message that
    completed while waiting left its last chunk's stream window
    unreturned, and after 30 such rounds the stream stalled for good."""
    srv = xp.Server(workdir, 'waiting-window', max_message='64KiB', stream_timeout='30s')

    def idle(r, t):
        try:
            r.pump(lambda: False, timeout=t)
        except AssertionError:
            pass

    msg = body_msg
    try:
        r = Raw(srv.port)
        for _ in range(4):
            r.call(xp.PROCESS, chunks=[msg(0, headers=True) + msg(64000, True)[:1000]], end=False)
        v = r.call(xp.PROCESS, chunks=[msg(0, headers=True)], end=False)
        idle(r, 0.3)
        full = r.conn.local_flow_control_window(v)
        for i in range(60):
            m = msg(20000 if i % 2 == 0 else 4000)
            if r.conn.local_flow_control_window(v) < len(m):
                idle(r, 2.0)
                if r.conn.local_flow_control_window(v) < len(m):
                    raise AssertionError('stream stalled at message %d: window %d of %d' % (
                        i, r.conn.local_flow_control_window(v), full))
            before = len(r.streams[v]['data'])
            r.conn.send_data(v, m[:len(m) // 2])
            r.flush()
            idle(r, 0.02)
            r.conn.send_data(v, m[len(m) // 2:])
            r.flush()
            r.pump(lambda: len(r.streams[v]['data']) > before, timeout=5)
        r.close()
    finally:
        srv.stop()


def first_message_rejected(workdir):
    """An exchange whose first message the server refuses (not protobuf,
    compressed, over max_message, cut short by END_STREAM, reserved flag
    bits) still leaves its record: end error, one message, protocol_error.
    (None was written: the record needed one message read.)"""
    srv = xp.Server(workdir, 'first-rejected', max_message=65536)
    try:
        f = Raw(srv.port)
        cases = [
            ('malformed', frame(b'\xff\xff\xff'), '13'),
            ('compressed', b'\x01' + struct.pack('>I', 3) + b'abc', '12'),
            ('too large', b'\x00' + struct.pack('>I', 100000) + b'x' * 100, '8'),
            ('truncated', b'\x00' + struct.pack('>I', 100) + b'xy', '13'),
            ('reserved flag', b'\x02' + struct.pack('>I', 3) + b'abc', '13'),
        ]
        for name, chunk, code in cases:
            s = f.wait(f.call(xp.PROCESS, chunks=[chunk]))
            if status_of(s)[0] != code:
                raise AssertionError('%s: grpc-status %r, want %s'
                                     % (name, status_of(s), code))
        f.close()
    finally:
        srv.stop()
    recs = srv.records()
    bad = [r for r in recs if r.get('end') != 'error'
           or r['extproc']['messages'] != 1
           or 'protocol_error' not in r.get('anomalies', [])]
    if len(recs) != len(cases) or bad:
        raise AssertionError('%d records for %d refused exchanges: %r'
                             % (len(recs), len(cases), recs))


def status_of(s):
    """grpc-status and grpc-message, from trailers or a trailers-only reply."""
    h = dict(s['trailers'] or s['headers'])
    return h.get('grpc-status'), h.get('grpc-message', '')


failures = 0
messages = []


def case(name, fn):
    global failures
    try:
        fn()
        print('ok: %s' % name)
    except Exception as e:
        failures += 1
        print('FAIL: %s: %s' % (name, e))


def expect_grpc(s, code):
    st, msg = status_of(s)
    messages.append(msg)
    if st != str(code):
        raise AssertionError('grpc-status %r (%r), expected %d' % (st, msg, code))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--workdir', required=True)
    args = ap.parse_args()
    srv = xp.Server(args.workdir, 'bad-input')
    P = srv.port
    req_hdrs = EP.ProcessingRequest(request_headers=xp.headers(
        pb, [(':path', '/'), ('authorization', 'Bearer ' + CANARY.decode())]))

    def garbage():
        s = socket.create_connection(('127.0.0.1', P), timeout=5)
        s.sendall(b'\x16\x03\x01\x02\x00' + CANARY + os.urandom(64))
        got = b''
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        s.close()
        # a GOAWAY frame with PROTOCOL_ERROR (1)
        if len(got) < 17 or got[3] != 7 or struct.unpack('>I', got[13:17])[0] != 1:
            raise AssertionError('no GOAWAY(PROTOCOL_ERROR): %r' % got[:32])
    case('garbage bytes -> GOAWAY(PROTOCOL_ERROR), connection closed', garbage)

    def http1():
        s = socket.create_connection(('127.0.0.1', P), timeout=5)
        s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\nAuthorization: ' + CANARY + b'\r\n\r\n')
        got = b''
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        s.close()
        if not got.startswith(b'HTTP/1.1 505'):
            raise AssertionError('HTTP/1.1 request: %r' % got[:40])
    case('HTTP/1.1 request -> 505, connection closed', http1)

    r = Raw(P)

    def wrong_ct():
        h = [x for x in GRPC_HDRS if x[0] != 'content-type'] + [('content-type', 'application/json')]
        s = r.wait(r.call(xp.PROCESS, hdrs=h, chunks=[b'{}']))
        if dict(s['headers']).get(':status') != '415':
            raise AssertionError('status %r' % s['headers'])
    case('wrong content-type -> HTTP 415', wrong_ct)

    def get_method():
        h = [(':method', 'GET')] + [x for x in GRPC_HDRS if x[0] != ':method']
        s = r.wait(r.call(xp.PROCESS, hdrs=h))
        if dict(s['headers']).get(':status') != '405':
            raise AssertionError('status %r' % s['headers'])
    case('GET instead of POST -> HTTP 405', get_method)

    def truncated():
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(b'\x12\x00' + CANARY, length=100)]))
        expect_grpc(s, 13)
    case('truncated gRPC frame -> INTERNAL (13)', truncated)

    def truncated_prefix():
        s = r.wait(r.call(xp.PROCESS, chunks=[b'\x00\x00\x00']))
        expect_grpc(s, 13)
    case('truncated 5-byte prefix -> INTERNAL (13)', truncated_prefix)

    def malformed():
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(b'\x12\xff\xff\xff\xff\x0f' + CANARY)]))
        expect_grpc(s, 13)
    case('malformed protobuf -> INTERNAL (13)', malformed)

    def empty_request():
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(b'')]))
        expect_grpc(s, 3)
    case('ProcessingRequest without a phase -> INVALID_ARGUMENT (3)', empty_request)

    def twice():
        m = frame(req_hdrs.SerializeToString())
        s = r.wait(r.call(xp.PROCESS, chunks=[m, m]))
        # the first is answered, the second ends the stream
        if len(s['data']) < 5 or s['data'][5:6] != b'\x0a':
            raise AssertionError('first request_headers not answered: %r' % s['data'][:8])
        expect_grpc(s, 3)
    case('request_headers twice (type mismatch) -> reply, then INVALID_ARGUMENT (3)', twice)

    def body_after_trailers():
        t = EP.ProcessingRequest(request_trailers=EP.HttpTrailers()).SerializeToString()
        b = EP.ProcessingRequest(request_body=EP.HttpBody(body=CANARY)).SerializeToString()
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(t), frame(b)]))
        expect_grpc(s, 3)
    case('request_body after request_trailers -> INVALID_ARGUMENT (3)', body_after_trailers)

    def compressed_flag():
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(req_hdrs.SerializeToString(), flags=1)]))
        expect_grpc(s, 12)
        if dict(s['trailers'] or s['headers']).get('grpc-accept-encoding') != 'identity':
            raise AssertionError('no grpc-accept-encoding: identity')
    case('compressed flag -> UNIMPLEMENTED (12) + grpc-accept-encoding', compressed_flag)

    def gzip_encoding():
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(b'')], extra=[('grpc-encoding', 'gzip')]))
        expect_grpc(s, 12)
        if dict(s['headers']).get('grpc-accept-encoding') != 'identity':
            raise AssertionError('no grpc-accept-encoding: identity')
    case('grpc-encoding gzip -> UNIMPLEMENTED (12) + grpc-accept-encoding', gzip_encoding)

    def too_large():
        s = r.wait(r.call(xp.PROCESS, chunks=[struct.pack('>BI', 0, 5 << 20) + b'x' * 1000], end=False))
        expect_grpc(s, 8)
    case('5 MiB message over the default 4 MiB -> RESOURCE_EXHAUSTED (8)', too_large)

    def big_headers():
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(b'')], extra=[('x-big', 'a' * 20000)]))
        expect_grpc(s, 8)
    case('header list over max_header_list -> RESOURCE_EXHAUSTED (8)', big_headers)

    def deadline():
        t0 = time.time()
        s = r.wait(r.call(xp.PROCESS, chunks=[frame(req_hdrs.SerializeToString())], end=False,
                          extra=[('grpc-timeout', '150m')]))
        expect_grpc(s, 4)
        if time.time() - t0 > 2:
            raise AssertionError('deadline took %.1fs' % (time.time() - t0))
    case('grpc-timeout 150m honoured -> DEADLINE_EXCEEDED (4)', deadline)

    def unknown_path():
        s = r.wait(r.call('/foo.Bar/Baz', chunks=[frame(b'')]))
        expect_grpc(s, 12)
    case('unknown method -> UNIMPLEMENTED (12)', unknown_path)

    def still_serving():
        s = r.wait(r.call(xp.HEALTH_CHECK, chunks=[frame(b'')]))
        expect_grpc(s, 0)
        if s['data'] != frame(b'\x08\x01'):
            raise AssertionError('health reply %r' % s['data'])
    case('same connection still serves (Health/Check SERVING)', still_serving)
    r.close()

    def flood(end_stream=False, code=8):
        f = Raw(P)
        try:
            for i in range(3000):
                sid = f.conn.get_next_available_stream_id()
                f.conn.send_headers(sid, [(':path', xp.PROCESS)] + GRPC_HDRS,
                                    end_stream=end_stream)
                f.conn.reset_stream(sid, code)
                if i % 100 == 99:
                    f.flush()
            f.flush()
        except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
            pass
        try:
            f.pump(lambda: f.goaway is not None, timeout=5)
        except (ConnectionResetError, BrokenPipeError):
            pass
        if f.goaway != 11:
            raise AssertionError('no GOAWAY(ENHANCE_YOUR_CALM): %r' % f.goaway)
        f.close()
    case('stream flood (open + RST) -> GOAWAY(ENHANCE_YOUR_CALM)', flood)
    # the same with END_STREAM on the HEADERS: the client's side is
    # closed, but no message came and no answer went out
    case('stream flood (HEADERS with END_STREAM + RST) -> GOAWAY(ENHANCE_YOUR_CALM)',
         lambda: flood(end_stream=True))
    # RST_STREAM(NO_ERROR) is what Envoy's own gRPC client sends: a flood
    # of it must spend the same budget (it once counted as a normal end)
    case('stream flood (open + RST_STREAM(NO_ERROR)) -> GOAWAY(ENHANCE_YOUR_CALM)',
         lambda: flood(code=0))

    def nghttp_health():
        body = os.path.join(args.workdir, 'health.bin')
        with open(body, 'wb') as fh:
            fh.write(frame(b''))
        out = subprocess.run(['nghttp', '-v', '-H', 'content-type: application/grpc',
                              '-H', 'te: trailers', '-d', body,
                              'http://127.0.0.1:%d%s' % (P, xp.HEALTH_CHECK)],
                             capture_output=True, timeout=10).stdout.decode()
        if 'grpc-status: 0' not in out:
            raise AssertionError('nghttp: %s' % out[-400:])
        hexout = subprocess.run(['nghttp', '-H', 'content-type: application/grpc',
                                 '-d', body, 'http://127.0.0.1:%d%s' % (P, xp.HEALTH_CHECK)],
                                capture_output=True, timeout=10).stdout
        if hexout != frame(b'\x08\x01'):
            raise AssertionError('nghttp body %r' % hexout)
    case('Health/Check over raw HTTP/2 (nghttp) -> SERVING, grpc-status 0', nghttp_health)

    def other_conn_serves():
        f = Raw(P)
        s = f.wait(f.call(xp.PROCESS, chunks=[frame(req_hdrs.SerializeToString())]))
        expect_grpc(s, 0)
        f.close()
    case('a new connection is served after all of it', other_conn_serves)

    case('replies the client does not read: its input is held back by flow '
         'control, memory stays bounded', lambda: unread_replies(args.workdir))
    case('a client that stops reading: connection closed, stream reset '
         '(write stall)', lambda: write_stall(args.workdir))
    case('40 uploads of 1 MB interleaved on one connection: partial messages '
         'over the cap wait for room, none fails', lambda: interleaved_uploads(args.workdir))
    case('a stream whose messages wait and complete while waiting keeps its '
         'whole window', lambda: waiting_keeps_window(args.workdir))
    case('a stream whose messages wait still stops at the cap on unread '
         'replies', lambda: waiting_under_reply_cap(args.workdir))
    case('a first message refused (malformed, compressed, too large, cut '
         'short, reserved flags) still leaves a record',
         lambda: first_message_rejected(args.workdir))

    ctr = srv.stop()
    want = {'conns_bad_preface': 1, 'conns_http1': 1, 'streams_bad_request': 2,
            'msgs_truncated': 2, 'msgs_malformed': 1, 'msgs_out_of_order': 3,
            'msgs_compressed': 2, 'msgs_too_large': 1, 'streams_header_too_big': 1,
            'streams_deadline': 1, 'streams_unimplemented': 1, 'conns_flood': 3,
            'streams_premature_reset': 3000}
    for k, v in want.items():
        if ctr.get(k, 0) < v:
            print('FAIL: counter %s = %s, expected >= %d' % (k, ctr.get(k, 0), v))
            failures_add()
    leak = CANARY in srv.all_output() or any(CANARY.decode() in m for m in messages)
    if leak:
        print('FAIL: the canary appears in logs, records or error messages')
        failures_add()
    else:
        print('ok: no canary in logs, records or %d error messages' % len(messages))
    print('bad input: %d failure(s)' % failures)
    xp.cleanup_stubs()
    return 1 if failures else 0


def failures_add():
    global failures
    failures += 1


if __name__ == '__main__':
    sys.exit(main())
