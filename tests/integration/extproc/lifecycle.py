#!/usr/bin/env python3
"""sealtap extproc life cycle: several event-loop threads sharing the port
(SO_REUSEPORT), and graceful shutdown -- on SIGTERM a stream in flight
finishes (GOAWAY, then drain), new connections are refused, the process
exits 0 and writes its summary; and thousands of streams on one connection
each closed the way Envoy closes them by default (half-close, then
RST_STREAM(CANCEL)), played by bench/extproc_load, keep that connection
up (nghttp2's own reset limit would tear it down after 1,000).

usage: lifecycle.py --workdir DIR
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import xp  # noqa: E402

import grpc  # noqa: E402

pb = xp.stubs()
EP = pb.ep
OPTS = [('grpc.use_local_subchannel_pool', 1)]


def envoy_close_many(workdir):
    """Streams closed as Envoy closes them, at full speed on one
    connection for 1.5 s: none may fail and the connection must stay
    up. Returns the number of failures."""
    load = os.environ.get('SEALTAP_LOAD') or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(xp.BIN))),
        'bench', 'extproc_load')
    if not os.access(load, os.X_OK):
        print('FAIL: no load generator at %s' % load)
        return 1
    srv = xp.Server(workdir, 'envoy-close')
    try:
        out = subprocess.run(
            [load, '--port', str(srv.port), '--connections', '1',
             '--depth', '8', '--duration', '1.5', '--warmup', '0',
             '--close', 'reset'],
            capture_output=True, timeout=60, text=True)
    finally:
        ctr = srv.stop()
    failures = 0
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print('FAIL: extproc_load: %s %s' % (out.stdout, out.stderr))
        return 1
    # nghttp2's default allows 1,000 resets, then 33 per second
    want = 1000 + 33 * 2 + 1
    if r['conns_died'] or r['failed'] or r['bad_replies'] or r['streams'] < want:
        print('FAIL: half-close + cancel on one connection: %s %s' % (r, out.stderr))
        failures += 1
    elif ctr.get('streams_cancelled', 0) < r['streams'] or ctr.get('conns_flood'):
        print('FAIL: server counters %r' % ctr)
        failures += 1
    else:
        print('ok: %d streams on one connection closed with half-close + '
              'RST_STREAM(CANCEL), connection kept' % r['streams'])
    failures += check_wire_latency(r)
    return failures


def check_wire_latency(r):
    """The generator's second latency, ended at the reply's arrival in
    its socket (kernel receive timestamp), must cover every reply and can
    only be shorter than the one ended when the reply is read: each
    arrival comes before its read. A missing timestamp, or the real-time
    stamp taken for a monotonic one, breaks this."""
    if not r['replies'] or r['wire_replies'] != r['replies']:
        print('FAIL: wire latency for %d of %d replies' % (r['wire_replies'], r['replies']))
        return 1
    if not (0 < r['wire_p50_us'] <= r['p50_us'] and r['wire_p99_us'] <= r['p99_us']):
        print('FAIL: wire latency not below the read latency: %r' % r)
        return 1
    print('ok: reply arrival timestamps: p50 %.1f us at the socket, %.1f us read'
          % (r['wire_p50_us'], r['p50_us']))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--workdir', required=True)
    args = ap.parse_args()
    failures = 0
    srv = xp.Server(args.workdir, 'lifecycle', threads=4)
    tasks = os.listdir('/proc/%d/task' % srv.proc.pid)
    if len(tasks) < 5:  # main + 4 event loops (+ exporter)
        print('FAIL: %d threads, expected 4 event loops' % len(tasks))
        failures += 1
    else:
        print('ok: 4 event-loop threads (%d threads in all)' % len(tasks))
    # many connections spread over the threads
    chans = [grpc.insecure_channel('127.0.0.1:%d' % srv.port, options=OPTS)
             for _ in range(16)]
    for ch in chans:
        c = xp.Call(ch, pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [(':path', '/')], eos=True)))
        if c.recv().WhichOneof('response') != 'request_headers':
            failures += 1
        c.half_close()
        if c.finish()[0] != grpc.StatusCode.OK:
            failures += 1
    for ch in chans[1:]:
        ch.close()
    print('ok: 16 connections served by the shared port')

    # a stream in flight when SIGTERM arrives
    ch = chans[0]
    c = xp.Call(ch, pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [(':path', '/slow')])))
    c.recv()
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # shutdown notice, then the final GOAWAY
    try:
        socket.create_connection(('127.0.0.1', srv.port), timeout=1).close()
        print('FAIL: new connections still accepted while draining')
        failures += 1
    except OSError:
        print('ok: listener closed on SIGTERM')
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, [(':status', '200')], eos=True)))
    r = c.recv()
    if r.WhichOneof('response') != 'response_headers':
        print('FAIL: stream in flight not served after SIGTERM')
        failures += 1
    c.half_close()
    code = c.finish()[0]
    if code != grpc.StatusCode.OK:
        print('FAIL: stream in flight ended with %s' % code)
        failures += 1
    else:
        print('ok: stream in flight finished after SIGTERM (GOAWAY, drain)')
    srv.proc.wait(10)
    took = time.time() - t0
    rc = srv.proc.returncode
    ctr = srv.stop()
    if rc != 0:
        print('FAIL: exit status %d' % rc)
        failures += 1
    elif took > 5:
        print('FAIL: drain took %.1fs' % took)
        failures += 1
    else:
        print('ok: exited 0 %.2fs after SIGTERM, %d streams ok' % (took, ctr.get('streams_ok', 0)))
    if ctr.get('streams_ok', 0) < 17:
        print('FAIL: streams_ok %r' % ctr.get('streams_ok'))
        failures += 1
    ch.close()
    failures += envoy_close_many(args.workdir)
    xp.cleanup_stubs()
    print('lifecycle: %d failure(s)' % failures)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
