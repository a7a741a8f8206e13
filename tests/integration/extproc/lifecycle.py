#!/usr/bin/env python3
"""sealtap extproc life cycle: several event-loop threads sharing the port
(SO_REUSEPORT), and graceful shutdown -- on SIGTERM a stream in flight
finishes (GOAWAY, then drain), new connections are refused, the process
exits 0 and writes its summary; and thousands of streams on one connection
each closed the way Envoy closes them by default (half-close, then
RST_STREAM(NO_ERROR) from Envoy's own gRPC client, RST_STREAM(CANCEL)
from a gRPC library), played by bench/extproc_load, which checks each
reply has authorization sealed, keep that connection up (nghttp2's own
reset limit would tear it down after 1,000); a second
instance cannot take the port (SO_REUSEPORT would let it share the
connections); the health port answers 503 while draining and cuts off a
client that trickles its request; out of file descriptors, the server
pauses accepting instead of spinning a core, and recovers; connections
over extproc.max_connections are closed at accept; requests sent just
before SIGTERM and not yet read are served in the drain; a second stop
signal ends the drain at once; SIGHUP and SIGQUIT drain like SIGTERM;
and the bench's plain HTTP/2 reference client (extproc_load --plain)
against a real nghttpd.

usage: lifecycle.py --workdir DIR --keys-yaml FILE (a key store with a
DEK for the tenant `default`, SOFTHSM2_CONF naming its token)
"""
import argparse
import http.client
import json
import os
import resource
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


def load_path():
    return os.environ.get('SEALTAP_LOAD') or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(xp.BIN))),
        'bench', 'extproc_load')


def envoy_close_many(workdir, keys_yaml, close):
    """Streams closed as Envoy closes them, at full speed on one
    connection for 1.5 s: none may fail and the connection must stay
    up. Returns the number of failures."""
    load = load_path()
    if not os.access(load, os.X_OK):
        print('FAIL: no load generator at %s' % load)
        return 1
    srv = xp.Server(workdir, 'envoy-close-' + close, keys_yaml=keys_yaml,
                    env=dict(os.environ))
    try:
        out = subprocess.run(
            [load, '--port', str(srv.port), '--connections', '1',
             '--depth', '8', '--duration', '1.5', '--warmup', '0',
             '--close', close],
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
    code = 'NO_ERROR' if close == 'reset' else 'CANCEL'
    if (r['conns_died'] or r['failed'] or r['bad_replies'] or r['unfinished']
            or r['streams'] < want):
        print('FAIL: half-close + RST_STREAM(%s) on one connection: %s %s'
              % (code, r, out.stderr))
        failures += 1
    elif (ctr.get('streams_cancelled', 0) < r['streams'] or ctr.get('conns_flood')
          or ctr.get('streams_premature_reset') or ctr.get('seal_failed_closed')
          or ctr.get('seal_sealed', 0) < r['streams']):
        print('FAIL: server counters %r' % ctr)
        failures += 1
    else:
        print('ok: %d streams on one connection closed with half-close + '
              'RST_STREAM(%s), each reply sealed, connection kept'
              % (r['streams'], code))
    failures += check_wire_latency(r)
    return failures


def plain_reference(workdir):
    """The bench's latency reference: extproc_load --plain drives a plain
    HTTP/2 server (a real nghttpd) with GETs on an open-loop schedule;
    every 200 counts, anything else is a bad reply. Returns the number of
    failures."""
    load = load_path()
    root = os.path.join(workdir, 'plain-www')
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'small'), 'w') as f:
        f.write('x' * 64)
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    ng = subprocess.Popen(['nghttpd', '--no-tls', '-a', '127.0.0.1', '-d', root,
                           str(port)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    failures = 0
    try:
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        res = {}
        for path in ('/small', '/missing'):
            out = subprocess.run(
                [load, '--port', str(port), '--connections', '4',
                 '--duration', '0.5', '--warmup', '0.2', '--rate', '2000',
                 '--plain', path], capture_output=True, timeout=60, text=True)
            try:
                res[path] = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                print('FAIL: extproc_load --plain %s: %s %s'
                      % (path, out.stdout, out.stderr))
                return 1
    finally:
        ng.terminate()
        ng.wait()
    ok, missing = res['/small'], res['/missing']
    if (ok['close'] != 'plain' or ok['streams'] < 900 or ok['bad_replies']
            or ok['failed'] or ok['unfinished'] or ok['conns_died']):
        print('FAIL: GET /small from nghttpd at 2,000/s: %r' % ok)
        failures += 1
    elif missing['bad_replies'] < 900:
        print('FAIL: 404s not counted as bad replies: %r' % missing)
        failures += 1
    else:
        print('ok: extproc_load --plain: %d GETs answered 200 by nghttpd on '
              'schedule (p99 %.0f us), %d 404s counted as bad replies'
              % (ok['streams'], ok['p99_us'], missing['bad_replies']))
    return failures + check_wire_latency(ok)


def drain_takes_pending(workdir):
    """Connections the kernel completed but the server had not yet
    accepted or read when SIGTERM came (preface and request already sent)
    are served in the drain, not reset with the listener or closed
    unread. Returns the number of failures."""
    import bad_input as bi
    srv = xp.Server(workdir, 'drain-pending')
    msg = EP.ProcessingRequest(request_headers=xp.headers(
        pb, [(':path', '/pending')], eos=True)).SerializeToString()
    calls = []
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(6):
            f = bi.Raw(srv.port)
            calls.append((f, f.call(xp.PROCESS, chunks=[bi.frame(msg)])))
        os.kill(srv.proc.pid, signal.SIGTERM)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    got = []
    for f, sid in calls:
        try:
            s = f.wait(sid)
            got.append(bi.status_of(s)[0])
        except bi.h2.exceptions.ProtocolError:
            # python-h2 takes any GOAWAY (the drain's notice) as the end
            # of the connection and refuses the frames after it; the
            # records below say whether the request was served
            got.append('goaway')
        except (AssertionError, OSError) as e:
            got.append('%s' % e.__class__.__name__)
        f.close()
    srv.stop()
    done = [r for r in srv.records()
            if r['request'].get('path') == '/pending' and r['end'] == 'complete']
    if any(g not in ('0', 'goaway') for g in got) or len(done) != len(calls):
        print('FAIL: requests sent before SIGTERM and not yet read: client %r, '
              '%d complete records' % (got, len(done)))
        return 1
    print('ok: %d requests sent before SIGTERM, not yet accepted or read, '
          'served in the drain' % len(calls))
    return 0


def second_signal(workdir):
    """A second SIGTERM/SIGINT during the drain ends it at once: the
    stream still open is closed (its record says shutdown) and the process
    exits 0, instead of waiting out shutdown_timeout (60 s here); also
    when the two come back to back, before the threads saw the first.
    Returns the number of failures."""
    failures = 0
    for gap in (0.5, 0):
        srv = xp.Server(workdir, 'second-signal-%s' % gap, threads=2,
                        shutdown_timeout='60s')
        ch = grpc.insecure_channel('127.0.0.1:%d' % srv.port, options=OPTS)
        calls = []
        for _ in range(4):
            c = xp.Call(ch, pb)
            c.send(EP.ProcessingRequest(request_headers=xp.headers(
                pb, [(':path', '/held')])))
            c.recv()  # answered; the stream stays open (no half-close)
            calls.append(c)
        srv.proc.send_signal(signal.SIGTERM)
        if gap:
            time.sleep(gap)
            if not srv.alive():
                print('FAIL: the drain ended with streams open, before its '
                      'timeout')
                failures += 1
        t0 = time.time()
        srv.proc.send_signal(signal.SIGINT)
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        took = time.time() - t0
        for c in calls:
            c.cancel()
        ch.close()
        ctr = srv.stop(timeout=70)
        held = [r['end'] for r in srv.records()
                if r['request'].get('path') == '/held']
        if took > 5 or not ctr.get('conns_drained') or \
                held != ['shutdown'] * len(calls):
            print('FAIL: second signal %s s after the first: exit after '
                  '%.1f s, conns_drained %s, records %r'
                  % (gap, took, ctr.get('conns_drained'), held))
            failures += 1
        else:
            print('ok: a second signal %s s after the first ends the drain '
                  'at once (%.2f s), the open streams recorded as shutdown'
                  % (gap, took))
    return failures


def hangup_drains(workdir):
    """SIGHUP (a supervisor, a closed terminal) and SIGQUIT stop the
    server as SIGTERM does: drain, summary, exit 0, records named (their
    default action killed it: no summary, the record file left .tmp).
    Returns the number of failures."""
    failures = 0
    for sig in (signal.SIGHUP, signal.SIGQUIT):
        srv = xp.Server(workdir, 'hangup-%d' % sig)
        if not served(srv.port):
            failures += 1
        srv.proc.send_signal(sig)
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            ctr = srv.stop()
        except RuntimeError as e:
            print('FAIL: %s: %s' % (signal.Signals(sig).name, e))
            failures += 1
            continue
        tmp = [f for f in os.listdir(srv.records_dir) if f.endswith('.tmp')]
        if ctr.get('records', 0) < 1 or len(srv.records()) < 1 or tmp:
            print('FAIL: %s: counters %r, records %d, left %r'
                  % (signal.Signals(sig).name, ctr, len(srv.records()), tmp))
            failures += 1
        else:
            print('ok: %s drains like SIGTERM: exit 0, summary, records named'
                  % signal.Signals(sig).name)
    return failures


def served(port):
    """Whether one ext_proc exchange on a new connection to |port| gets
    its reply and ends with grpc-status 0."""
    ch = grpc.insecure_channel('127.0.0.1:%d' % port, options=OPTS)
    c = xp.Call(ch, pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [(':path', '/')], eos=True)))
    ok = c.recv(10).WhichOneof('response') == 'request_headers'
    c.half_close()
    ok = ok and c.finish(10)[0] == grpc.StatusCode.OK
    ch.close()
    return ok


def second_instance(srv):
    """A second sealtap on the port of a running one must fail to start:
    with SO_REUSEPORT alone the kernel would hand it half the
    connections. Returns the number of failures."""
    cfg = os.path.join(srv.dir, 'second.yaml')
    text = open(srv.config).read().replace(
        '"127.0.0.1:0"]', '"127.0.0.1:%d"]' % srv.port, 1)
    with open(cfg, 'w') as f:
        f.write(text)
    try:
        p = subprocess.run([xp.BIN, 'extproc', '--config', cfg], capture_output=True,
                           text=True, timeout=10)
    except subprocess.TimeoutExpired:
        print('FAIL: a second instance started on port %d' % srv.port)
        return 1
    if p.returncode == 0 or 'another process' not in p.stderr:
        print('FAIL: second instance on the same port: rc %d %s' % (p.returncode, p.stderr[-300:]))
        return 1
    print('ok: a second instance on the same port refuses to start')
    if socket.has_ipv6:
        # the taken address second in a list whose first has the same port
        with open(cfg, 'w') as f:
            f.write(open(srv.config).read().replace(
                '"127.0.0.1:0"]', '"[::1]:%d", "127.0.0.1:%d"]' % (srv.port, srv.port), 1))
        try:
            p = subprocess.run([xp.BIN, 'extproc', '--config', cfg, '--no-records'],
                               capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            print('FAIL: a second instance joined 127.0.0.1:%d after [::1]:%d' % (
                srv.port, srv.port))
            return 1
        if p.returncode == 0 or 'another process' not in p.stderr:
            print('FAIL: [::1]:P + a taken 127.0.0.1:P: rc %d %s' % (p.returncode, p.stderr[-300:]))
            return 1
        print('ok: every listen address is probed, not only the first of a port')
    # its own addresses on one port do not trip that check: 0.0.0.0:P and
    # a dual-stack [::]:P (the probe of the second saw the first)
    if not socket.has_ipv6:
        return 0
    s = socket.socket()
    s.bind(('', 0))
    port = s.getsockname()[1]
    s.close()
    with open(cfg, 'w') as f:
        f.write(text.replace('"127.0.0.1:%d"]' % srv.port,
                             '"0.0.0.0:%d", "[::]:%d"]' % (port, port), 1))
    ready = os.path.join(srv.dir, 'dual.json')
    p = subprocess.Popen([xp.BIN, 'extproc', '--config', cfg, '--no-records',
                          '--ready-file', ready], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while not os.path.exists(ready) and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    started = os.path.exists(ready)
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=20)[1]
    if not started:
        print('FAIL: listen 0.0.0.0:P and [::]:P did not start: %s' % err[-300:])
        return 1
    print('ok: 0.0.0.0:P and [::]:P of one instance start together')
    return 0


def health_trickle(srv):
    """A client sending its health request a byte a second is cut off
    HEALTH_TIMEOUT_S (5 s) after it connected, not kept open by each
    byte. Returns the number of failures."""
    s = socket.create_connection(('127.0.0.1', srv.health_port), timeout=2)
    t0 = time.time()
    closed = None
    for b in b'GET / HTTP/1.1\r\nX-Slow: ' + b'y' * 20:
        try:
            s.sendall(bytes([b]))
            s.settimeout(1.0)
            if s.recv(1) == b'':
                closed = time.time() - t0
                break
        except socket.timeout:
            continue
        except OSError:
            closed = time.time() - t0
            break
    s.close()
    if closed is None or closed > 7.5:
        print('FAIL: health client trickling a byte a second still open after %s s' % closed)
        return 1
    print('ok: health client trickling its request cut off after %.1f s' % closed)
    return 0


def fd_limit(workdir):
    """The server out of file descriptors (RLIMIT_NOFILE 64, 80
    connections): it pauses accepting (accept_paused) instead of
    spinning on the listener, and serves again once connections close.
    Returns the number of failures."""
    srv = xp.Server(workdir, 'fd-limit')
    failures = 0
    socks = []
    try:
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
        for _ in range(80):
            socks.append(socket.create_connection(('127.0.0.1', srv.port), timeout=2))
        time.sleep(0.5)

        def cpu():
            f = open('/proc/%d/stat' % srv.proc.pid).read().rsplit(')', 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
        c0 = cpu()
        time.sleep(2)
        used = cpu() - c0
        if used > 0.5:
            print('FAIL: %.2f s of CPU in 2 s at the descriptor limit (spinning)' % used)
            failures += 1
        for s in socks:
            s.close()
        socks = []
        time.sleep(0.5)
        if not served(srv.port):
            print('FAIL: no service after the descriptors came back')
            failures += 1
    finally:
        for s in socks:
            s.close()
        ctr = srv.stop()
    if not ctr.get('accept_paused'):
        print('FAIL: accept_paused not counted: %r' % ctr.get('accept_paused'))
        failures += 1
    if not failures:
        print('ok: at the descriptor limit accepting paused (%d times, %.2f s of CPU '
              'in 2 s), served again after' % (ctr['accept_paused'], used))
    return failures


def conn_limit(workdir):
    """extproc.max_connections 3: the fourth and fifth connections are
    closed at once (conns_refused_limit), the three open ones still
    served, and a new one is taken again once one of them closes.
    Returns the number of failures."""
    srv = xp.Server(workdir, 'conn-limit', extra_yaml='  max_connections: 3')
    failures = 0
    socks = []
    try:
        for _ in range(5):
            socks.append(socket.create_connection(('127.0.0.1', srv.port), timeout=2))
        time.sleep(0.3)
        closed = []
        for i, s in enumerate(socks):
            s.settimeout(0.3)
            try:
                # the server's SETTINGS on a kept connection, EOF on a refused one
                closed.append(s.recv(64) == b'')
            except socket.timeout:
                closed.append(False)
            except ConnectionResetError:
                closed.append(True)
        if closed != [False, False, False, True, True]:
            print('FAIL: max_connections 3: closed %r' % closed)
            failures += 1
        socks[0].close()
        time.sleep(0.3)
        if not served(srv.port):
            print('FAIL: no service once a connection under the cap closed')
            failures += 1
    finally:
        for s in socks:
            s.close()
        ctr = srv.stop()
    if ctr.get('conns_refused_limit', 0) < 2:
        print('FAIL: conns_refused_limit %r' % ctr.get('conns_refused_limit'))
        failures += 1
    if not failures:
        print('ok: max_connections 3: two more closed at accept, served again after one closed')
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
    ap.add_argument('--keys-yaml', required=True)
    args = ap.parse_args()
    keys_yaml = open(args.keys_yaml).read()
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
    failures += second_instance(srv)
    failures += health_trickle(srv)

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
    # the health port stays up while draining, saying so
    try:
        hc = http.client.HTTPConnection('127.0.0.1', srv.health_port, timeout=2)
        hc.request('GET', '/')
        st = hc.getresponse().status
        hc.close()
    except OSError as e:
        st = repr(e)
    if st != 503:
        print('FAIL: health port while draining: %s (want 503)' % st)
        failures += 1
    else:
        print('ok: health port answers 503 while draining')
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
    for close in ('reset', 'cancel'):
        failures += envoy_close_many(args.workdir, keys_yaml, close)
    failures += plain_reference(args.workdir)
    failures += drain_takes_pending(args.workdir)
    failures += second_signal(args.workdir)
    failures += hangup_drains(args.workdir)
    failures += fd_limit(args.workdir)
    failures += conn_limit(args.workdir)
    xp.cleanup_stubs()
    print('lifecycle: %d failure(s)' % failures)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
