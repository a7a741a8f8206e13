"""Helpers for the ext_proc conformance tests: Python stubs generated from
the project's own proto/ files at test time, a sealtap extproc server
started on 127.0.0.1 with ephemeral ports (stopped by PID), and a
bidirectional call wrapper that plays Envoy's side of a Process stream.

python3-grpcio only: calls are made with channel.stream_stream /
unary_unary and explicit serializers, so grpc_tools is not needed.
"""
import glob
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
BIN = os.environ.get('SEALTAP_BIN', os.path.join(ROOT, 'build', 'src', 'sealtap'))

PROCESS = '/envoy.service.ext_proc.v3.ExternalProcessor/Process'
HEALTH_CHECK = '/grpc.health.v1.Health/Check'
HEALTH_WATCH = '/grpc.health.v1.Health/Watch'

_stub_dir = None


def stubs():
    """Generates *_pb2.py from proto/*.proto into a temporary directory
    (once) and imports them. Returns a namespace with the modules."""
    global _stub_dir
    if _stub_dir is None:
        _stub_dir = tempfile.mkdtemp(prefix='sealtap-xp-stubs.')
        protos = sorted(glob.glob(os.path.join(ROOT, 'proto', '*.proto')))
        subprocess.run(['protoc', '--proto_path=' + os.path.join(ROOT, 'proto'),
                        '--python_out=' + _stub_dir] + protos, check=True)
        sys.path.insert(0, _stub_dir)
    import ext_proc_pb2, envoy_core_pb2, envoy_ext_proc_mode_pb2  # noqa
    import envoy_type_pb2, health_pb2, wkt_pb2  # noqa

    class NS:
        pass
    ns = NS()
    ns.ep = ext_proc_pb2
    ns.core = envoy_core_pb2
    ns.mode = envoy_ext_proc_mode_pb2
    ns.typ = envoy_type_pb2
    ns.health = health_pb2
    ns.wkt = wkt_pb2
    return ns


def cleanup_stubs():
    if _stub_dir:
        subprocess.run(['rm', '-rf', _stub_dir])


class Server:
    """sealtap extproc on 127.0.0.1:0 with a health port, records on.
    |policy|: YAML text of a policy file (default: the built-in policy);
    |keys_yaml|: the kms:/keys: sections (default: a key store that does
    not exist, so every tenant fails closed)."""

    def __init__(self, workdir, name, extra_yaml='', tls=None, threads=1,
                 max_message=None, env=None, policy=None, keys_yaml=None,
                 stream_timeout='5s', shutdown_timeout='3s'):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.records_dir = os.path.join(self.dir, 'records')
        cfg = os.path.join(self.dir, 'sealtap.yaml')
        ready = os.path.join(self.dir, 'ready.json')
        lines = ['extproc:',
                 '  listen: ["127.0.0.1:0"]',
                 '  health_listen: "127.0.0.1:0"',
                 '  threads: %d' % threads,
                 '  stream_timeout: %s' % stream_timeout,
                 '  shutdown_timeout: %s' % shutdown_timeout]
        if max_message:
            lines.append('  max_message: %s' % max_message)
        if tls:
            lines.append('  tls_cert: "%s"' % tls['cert'])
            lines.append('  tls_key: "%s"' % tls['key'])
            if tls.get('client_ca'):
                lines.append('  tls_client_ca: "%s"' % tls['client_ca'])
        lines += [l for l in extra_yaml.splitlines() if l]
        if keys_yaml is None:
            keys_yaml = 'keys:\n  store: "%s"' % os.path.join(self.dir, 'no-keys.json')
        lines += [l for l in keys_yaml.splitlines() if l]
        lines += ['export:',
                  '  dir: "%s"' % self.records_dir,
                  '  flush_interval: 10ms']
        with open(cfg, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.config = cfg
        args = [BIN, 'extproc', '--config', cfg, '--ready-file', ready]
        if policy is not None:
            self.policy = os.path.join(self.dir, 'policy.yaml')
            with open(self.policy, 'w') as f:
                f.write(policy)
            args += ['--policy', self.policy]
        self.stdout_path = os.path.join(self.dir, 'stdout.txt')
        self.stderr_path = os.path.join(self.dir, 'stderr.txt')
        self.out = open(self.stdout_path, 'wb')
        self.err = open(self.stderr_path, 'wb')
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err,
                                     env=env)
        deadline = time.time() + 10
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise RuntimeError('sealtap extproc exited: ' +
                                   open(self.stderr_path).read())
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError('sealtap extproc did not start')
            time.sleep(0.02)
        info = json.load(open(ready))
        self.addr = info['listen'][0]
        self.port = int(self.addr.rsplit(':', 1)[1])
        self.health_port = int(info['health'].rsplit(':', 1)[1])
        self.counters = None
        self.summary = None

    def gcore(self):
        """A core of the running server by gdb's gcore, and a copy of its
        /proc/PID/maps from just before: (core path, maps path), or None
        when gdb is not installed or the server is an AddressSanitizer
        build (gcore writes its terabytes of shadow mappings out: a run
        against one filled this machine's disk)."""
        if not shutil.which('gcore'):
            return None
        maps = os.path.join(self.dir, 'maps')
        shutil.copy('/proc/%d/maps' % self.proc.pid, maps)
        if 'libasan' in open(maps).read():
            return None
        base = os.path.join(self.dir, 'core')
        subprocess.run(['gcore', '-o', base, str(self.proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)
        path = '%s.%d' % (base, self.proc.pid)
        if not os.path.exists(path):
            raise RuntimeError('gcore made no core')
        return path, maps

    def usr1_counters(self):
        """Counters now (SIGUSR1 prints them as one JSON line)."""
        before = os.path.getsize(self.stdout_path)
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(200):
            time.sleep(0.01)
            with open(self.stdout_path, 'rb') as f:
                f.seek(before)
                data = f.read()
            if data.endswith(b'\n'):
                return json.loads(data.decode().strip().splitlines()[-1])
        raise RuntimeError('no counters after SIGUSR1')

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM by PID, wait, parse the summary. Returns counters."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError('sealtap extproc did not stop on SIGTERM')
        self.out.close()
        self.err.close()
        err = open(self.stderr_path, 'rb').read()
        if self.proc.returncode != 0 or b'Sanitizer' in err or b'runtime error' in err:
            raise RuntimeError('sealtap extproc exited with %d: %s' %
                               (self.proc.returncode, err[-2000:].decode('latin-1')))
        lines = open(self.stdout_path).read().strip().splitlines()
        self.summary = json.loads(lines[-1]) if lines else {}
        self.counters = self.summary.get('counters', {})
        return self.counters

    def records(self):
        recs = []
        for p in sorted(glob.glob(os.path.join(self.records_dir, 'records-*.ndjson'))):
            for line in open(p, 'rb'):
                recs.append(json.loads(line))
        return recs

    def all_output(self):
        """Everything the server wrote: logs, summary, records."""
        blobs = [open(self.stdout_path, 'rb').read(),
                 open(self.stderr_path, 'rb').read()]
        for p in glob.glob(os.path.join(self.records_dir, '*')):
            blobs.append(open(p, 'rb').read())
        return b'\n'.join(blobs)


def raw_serializer(m):
    return m if isinstance(m, (bytes, bytearray)) else m.SerializeToString()


class Call:
    """One Process stream, Envoy's side: send() messages, recv() replies
    (with a timeout), half_close(), cancel()."""

    def __init__(self, channel, pb, timeout=None, metadata=None):
        self.pb = pb
        self.q = queue.Queue()
        self.replies = queue.Queue()
        self.done = threading.Event()
        self.error = None

        def gen():
            while True:
                m = self.q.get()
                if m is None:
                    return
                yield m
        method = channel.stream_stream(
            PROCESS, request_serializer=raw_serializer,
            response_deserializer=pb.ep.ProcessingResponse.FromString)
        self.call = method(gen(), timeout=timeout, metadata=metadata)

        def reader():
            try:
                for r in self.call:
                    self.replies.put(r)
            except Exception as e:  # grpc.RpcError at the end
                self.error = e
            self.done.set()
        self.t = threading.Thread(target=reader, daemon=True)
        self.t.start()

    def send(self, m):
        self.q.put(m)

    def recv(self, timeout=5.0):
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError('no reply within %.1fs' % timeout)

    def none_within(self, seconds):
        try:
            r = self.replies.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError('unexpected reply: %r' % (r,))

    def half_close(self):
        self.q.put(None)

    def cancel(self):
        self.call.cancel()

    def finish(self, timeout=5.0):
        """Waits for the end of the stream; returns (code, details)."""
        if not self.done.wait(timeout):
            raise AssertionError('stream did not end within %.1fs' % timeout)
        return self.call.code(), self.call.details()


def headers(pb, pairs, eos=False):
    hm = pb.core.HeaderMap()
    for k, v in pairs:
        hv = hm.headers.add()
        hv.key = k
        hv.raw_value = v if isinstance(v, bytes) else v.encode()
    return pb.ep.HttpHeaders(headers=hm, end_of_stream=eos)


def envoy_apply(pairs, hm):
    """The header list |pairs| [(name, value)] after HeaderMutation |hm|,
    applied as Envoy's ext_proc filter applies it (mutation_utils.cc):
    remove_headers first, then each set option in order, adding a line
    when its `append` flag (a BoolValue, false when unset) is true and
    otherwise replacing every line of the name with this one. It does not
    read append_action."""
    out = [(k, v) for k, v in pairs if k not in set(hm.remove_headers)]
    for o in hm.set_headers:
        k, v = o.header.key, o.header.raw_value.decode('latin-1')
        if o.HasField('append') and o.append.value:
            out.append((k, v))
            continue
        i = next((n for n, (name, _) in enumerate(out) if name == k), len(out))
        out = [p for p in out if p[0] != k]
        out.insert(i, (k, v))
    return out


def fail(msg):
    raise AssertionError(msg)
