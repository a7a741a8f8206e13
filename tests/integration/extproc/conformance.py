#!/usr/bin/env python3
"""ext_proc conformance: a real gRPC client (python3-grpcio) plays Envoy's
message sequences for every processing mode against sealtap extproc and
checks that every reply has the type Envoy expects, carries the mutations
the policy implies with values in raw_value only, and that the planted
canary secrets never leave the server in plain form.

The server runs the built-in rules with no key store, so its tenant fails
closed: a value a rule covers whole is removed, parts of values and body
spans become '*'. Two routes deny (/admin, /v1/cards/). Sealing with real
keys is policy.py's part.

usage: conformance.py --workdir DIR [--tls plain|tls|mtls]
Exit 0 when every scenario passed.
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import xp  # noqa: E402

import grpc  # noqa: E402

pb = xp.stubs()
EP = pb.ep
MODE = pb.mode.ProcessingMode

# Canaries: planted secrets that must never appear in plain outside the
# mutation markers (logs, records, counters, errors, replies).
C_AUTH = 'CANARYa1f0c9e2auth'
C_COOKIE = 'CANARYc00k1e77'
C_KEY = 'CANARYapik3y55'
C_SETCOOKIE = 'CANARYsetc00k19'
C_BODY = 'CANARYb0dyPw0rd'
C_BEARER = 'CANARYbearerT0k'
C_TRAILER = 'CANARYtra1ler88'
CANARIES = [C_AUTH, C_COOKIE, C_KEY, C_SETCOOKIE, C_BODY, C_BEARER, C_TRAILER]

ALL_REPLIES = []   # serialized replies, scanned for canaries at the end
ERRORS_SEEN = []   # grpc details strings

REQ_HEADERS = [
    (':authority', 'shop.example.com'), (':path', '/api/v1/orders?id=42'),
    (':method', 'POST'), (':scheme', 'https'),
    ('host', 'shop.example.com'),
    ('user-agent', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0'),
    ('accept', 'application/json'), ('accept-encoding', 'gzip, br'),
    ('content-type', 'application/json'), ('content-length', '64'),
    ('authorization', 'Bearer ' + C_AUTH),
    ('cookie', 'session=' + C_COOKIE + '; theme=dark'),
    ('x-api-key', C_KEY),
    ('x-forwarded-for', '203.0.113.7'), ('x-forwarded-proto', 'https'),
    ('x-request-id', '3b1f7e0a-5c1d-4e7e-9a0f-1d2c3b4a5f60'),
    ('x-envoy-expected-rq-timeout-ms', '15000'),
]
RESP_HEADERS = [(':status', '200'), ('content-type', 'application/json'),
                ('set-cookie', 'sid=' + C_SETCOOKIE + '; HttpOnly'),
                ('x-envoy-upstream-service-time', '3')]

# The built-in rules; /admin and /v1/cards/ are refused.
POLICY = """
tenants: {default: {kms: pkcs11, kek: sealtap-kek}}
rule_sets:
  forbidden: {extends: builtin, headers: {":path": deny}}
routes:
  - {name: admin, match: {path_prefix: /admin}, rules: forbidden}
  - {name: cards, match: {path_prefix: /v1/cards/}, rules: forbidden}
default: {tenant: default, rules: builtin}
"""

# Headers the built-in rules seal whole: with no key they are removed.
SEALED = ('authorization', 'cookie', 'x-api-key', 'proxy-authorization',
          'x-auth-token', 'set-cookie')

results = []


def scenario(fn):
    results.append(fn)
    return fn


def kept(r):
    ALL_REPLIES.append(r.SerializeToString())
    return r


def expect(call, kind, timeout=5.0):
    r = kept(call.recv(timeout))
    got = r.WhichOneof('response')
    if got != kind:
        xp.fail('expected a %s reply, got %s: %r' % (kind, got, r))
    return r


def set_map(hm):
    """{name: [raw values]} of a HeaderMutation, checking raw_value-only."""
    out = {}
    for o in hm.set_headers:
        h = o.header
        if h.value:
            xp.fail('header %s carries value=%r; values go in raw_value only'
                    % (h.key, h.value))
        if h.key.startswith(':') or h.key == 'host' or h.key.startswith('x-envoy-'):
            xp.fail('protected header %s was mutated' % h.key)
        # Envoy reads `append`, gRPC's ext_proc append_action: they agree
        appends = o.append_action == pb.core.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
        if not o.HasField('append') or o.append.value != appends:
            xp.fail('header %s: append disagrees with append_action' % h.key)
        out.setdefault(h.key, []).append((h.raw_value, o.append_action))
    return out


def check_request_mutation(cr, pairs):
    if not cr.HasField('header_mutation'):
        xp.fail('request headers reply without a header mutation')
    m = set_map(cr.header_mutation)
    removed = set(cr.header_mutation.remove_headers)
    for name, val in pairs:
        if name in SEALED and name not in removed:
            xp.fail('%s not removed (tenant without a key): %r' % (name, removed))
    rid = m.get('x-sealtap-request-id')
    if not rid or not re.fullmatch(rb'[0-9a-f]{16}', rid[0][0]):
        xp.fail('request id header missing: %r' % (m,))
    if rid[0][1] != pb.core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD:
        xp.fail('request id must overwrite a client-sent copy')
    for name in m:
        if name != 'x-sealtap-request-id':
            xp.fail('unexpected mutation of %s' % name)
    for name in removed:
        if name not in SEALED:
            xp.fail('unexpected removal of %s' % name)


def pcfg(req=MODE.NONE, resp=MODE.NONE):
    return EP.ProtocolConfiguration(request_body_mode=req, response_body_mode=resp)


def channel(ctx, **kw):
    return ctx['channel'](**kw)


# ---------------------------------------------------------------------------

@scenario
def headers_only(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS, eos=True),
                                protocol_config=pcfg()))
    r = expect(c, 'request_headers')
    check_request_mutation(r.request_headers.response, REQ_HEADERS)
    # the built-in rules read bodies: ask for them, buffered
    mo = r.mode_override
    if not r.HasField('mode_override') or mo.request_body_mode != MODE.BUFFERED \
            or mo.response_body_mode != MODE.BUFFERED:
        xp.fail('no mode_override asking for buffered bodies: %r' % r)
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS, eos=True)))
    r = expect(c, 'response_headers')
    hm = r.response_headers.response.header_mutation
    if list(hm.remove_headers) != ['set-cookie'] or hm.set_headers:
        xp.fail('response mutation is not the removal of set-cookie: %r' % hm)
    c.half_close()
    code, det = c.finish()
    assert code == grpc.StatusCode.OK, (code, det)
    c.none_within(0)


@scenario
def no_sensitive_headers_no_mutation(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(response_headers=xp.headers(
        pb, [(':status', '204'), ('server', 'x')], eos=True)))
    r = expect(c, 'response_headers')
    if r.response_headers.HasField('response') and \
            r.response_headers.response.header_mutation.set_headers:
        xp.fail('mutation without a reason: %r' % r)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def many_header_names(ctx):
    """5,000 names whose card numbers are masked (no key: a detector's
    finding is replaced, not removed) and one name with a kept line and a
    masked one: every name is set once, in order, the kept line again as
    it was; a name's lines go together, names in the order of their first
    changed line. Exercises the server's grouping of lines by name at
    scale (a hash table past a few changed names)."""
    c = xp.Call(ctx['ch'], pb)
    card = 'card 4111 1111 1111 1111'
    names = ['x-n%d' % i for i in range(5000)]
    hdrs = [(':path', '/'), (':method', 'GET'), ('x-dup', 'keep')] + \
        [(n, card) for n in names] + [('x-dup', card)]
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, hdrs, eos=True)))
    r = expect(c, 'request_headers', timeout=30)
    hm = r.request_headers.response.header_mutation
    ow = pb.core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    ap = pb.core.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    order = [o.header.key for o in hm.set_headers if o.header.key != 'x-sealtap-request-id']
    if order != names + ['x-dup', 'x-dup']:
        xp.fail('names not set once each, in order: %d options' % len(order))
    m = set_map(hm)
    dup = m['x-dup']
    if dup[0] != (b'keep', ow) or dup[1][1] != ap or b'4111' in dup[1][0]:
        xp.fail('x-dup: kept line lost or card not masked: %r' % dup)
    if any(v != [(m['x-n0'][0][0], ow)] or b'4111' in v[0][0]
           for k, v in m.items() if k.startswith('x-n')):
        xp.fail('a masked name is not one overwrite of the masked value')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def repeated_cookie_headers(ctx):
    c = xp.Call(ctx['ch'], pb)
    hdrs = [(':path', '/'), (':method', 'GET'), ('cookie', 'a=' + C_COOKIE),
            ('cookie', 'b=' + C_COOKIE + 'x')]
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, hdrs, eos=True)))
    r = expect(c, 'request_headers')
    hm = r.request_headers.response.header_mutation
    if list(hm.remove_headers) != ['cookie']:
        xp.fail('two cookie lines: one removal of the name: %r' % hm)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def streamed_bodies(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS),
                                protocol_config=pcfg(MODE.STREAMED, MODE.STREAMED)))
    expect(c, 'request_headers')
    # each chunk is scanned alone: a JSON body cut into chunks does not
    # parse after its first one, and what does not parse is redacted
    chunks = [b'{"user":"ann",', b'"password":"' + C_BODY.encode() + b'",', b'"n":1}']
    for i, ch in enumerate(chunks):
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=ch, end_of_stream=i == 2)))
    # one reply per chunk, in order
    for i, ch in enumerate(chunks):
        r = expect(c, 'request_body')
        cr = r.request_body.response
        if i == 0 and cr.HasField('body_mutation'):
            xp.fail('a clean first chunk was mutated: %r' % r)
        if i == 1:
            bm = cr.body_mutation
            if bm.WhichOneof('mutation') != 'body' or C_BODY.encode() in bm.body \
                    or len(bm.body) != len(ch) or b'*' * len(C_BODY) not in bm.body:
                xp.fail('chunk with a password not redacted: %r' % r)
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS)))
    expect(c, 'response_headers')
    for i in range(3):
        c.send(EP.ProcessingRequest(response_body=EP.HttpBody(
            body=b'part%d ' % i + (b'Bearer ' + C_BEARER.encode() if i == 2 else b''),
            end_of_stream=i == 2)))
    for i in range(3):
        r = expect(c, 'response_body')
        if i == 2 and C_BEARER.encode() in r.response_body.response.body_mutation.body:
            xp.fail('bearer token in a body not replaced')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


def buffered(ctx, mode):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS),
                                protocol_config=pcfg(mode, mode)))
    expect(c, 'request_headers')
    body = b'{"items":[1,2,3],"password":"' + C_BEARER.encode() + b'"}'
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
    r = expect(c, 'request_body')
    nb = r.request_body.response.body_mutation.body
    if nb != b'{"items":[1,2,3],"password":"%s"}' % (b'*' * len(C_BEARER)):
        xp.fail('buffered body mutation wrong: %r' % nb)
    # BUFFERED: Envoy leaves content-length to the processor
    hm = r.request_body.response.header_mutation
    if mode == MODE.BUFFERED:
        if [(h.header.key, h.header.raw_value) for h in hm.set_headers] != \
                [('content-length', str(len(nb)).encode())]:
            xp.fail('buffered body without its content-length: %r' % hm)
    elif hm.set_headers:
        xp.fail('content-length set outside BUFFERED: %r' % hm)
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS)))
    expect(c, 'response_headers')
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=b'{"ok":true}', end_of_stream=True)))
    r = expect(c, 'response_body')
    if r.response_body.response.HasField('body_mutation'):
        xp.fail('clean body mutated')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    c.none_within(0)


@scenario
def buffered_body(ctx):
    buffered(ctx, MODE.BUFFERED)


@scenario
def buffered_partial_body(ctx):
    buffered(ctx, MODE.BUFFERED_PARTIAL)


@scenario
def full_duplex_with_trailers(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS),
                                protocol_config=pcfg(MODE.FULL_DUPLEX_STREAMED,
                                                     MODE.FULL_DUPLEX_STREAMED)))
    expect(c, 'request_headers')
    # request: small chunks, then trailers (no end_of_stream on the body)
    parts = [b'{"a":"alpha",', b'"password":"' + C_BODY.encode() + b'",', b'"z":"omega"}']
    for p in parts:
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=p)))
    c.send(EP.ProcessingRequest(request_trailers=EP.HttpTrailers(
        trailers=xp.headers(pb, [('x-auth-token', C_TRAILER), ('x-checksum', 'abc')]).headers)))
    got = b''
    while True:
        r = kept(c.recv())
        kind = r.WhichOneof('response')
        if kind == 'request_body':
            sr = r.request_body.response.body_mutation.streamed_response
            if r.request_body.response.body_mutation.WhichOneof('mutation') != 'streamed_response':
                xp.fail('full duplex body answered without streamed_response')
            got += sr.body
            continue
        if kind != 'request_trailers':
            xp.fail('unexpected %s' % kind)
        if list(r.request_trailers.header_mutation.remove_headers) != ['x-auth-token']:
            xp.fail('trailer x-auth-token not removed: %r' % r)
        break
    # gathered whole, so the JSON parses: the password redacted in place
    want = b''.join(parts).replace(C_BODY.encode(), b'*' * len(C_BODY))
    if got != want:
        xp.fail('streamed body %r != %r' % (got, want))
    # response: > 64 KiB in chunks, end_of_stream on the last; answered in
    # streamed chunks of at most 64 KiB, the last with end_of_stream. The
    # response says JSON and is not: redacted (limits.unscanned), length
    # kept
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS)))
    expect(c, 'response_headers')
    big = [bytes([65 + i]) * 30000 for i in range(4)]
    for i, b in enumerate(big):
        c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=b, end_of_stream=i == 3)))
    got = b''
    while True:
        r = expect(c, 'response_body')
        sr = r.response_body.response.body_mutation.streamed_response
        if len(sr.body) > 65536:
            xp.fail('streamed chunk over 64 KiB')
        got += sr.body
        if sr.end_of_stream:
            break
    if got != b'*' * len(b''.join(big)):
        xp.fail('streamed response body not redacted whole: %r...' % got[:40])
    # data after end of stream is ignored
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=b'late')))
    c.none_within(0.3)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    c.none_within(0)


def streamed_body(c, kind, timeout):
    """One streamed_response body reply of |kind| within |timeout| s."""
    r = expect(c, kind, timeout)
    bm = getattr(r, kind).response.body_mutation
    if bm.WhichOneof('mutation') != 'streamed_response':
        xp.fail('full duplex body answered without streamed_response')
    return bm.streamed_response


@scenario
def full_duplex_interactive(ctx):
    """FULL_DUPLEX_STREAMED as an event stream and a bidi gRPC call use it:
    Envoy passes on only what the processor sends, with no timeout, so
    each chunk must be answered when it comes, not when more data or the
    end arrives (server-sent events, an LLM's tokens, a gRPC message the
    client waits on)."""
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(
        request_headers=xp.headers(pb, [(':path', '/v1/chat'),
                                        ('content-type', 'application/grpc')]),
        protocol_config=pcfg(MODE.FULL_DUPLEX_STREAMED, MODE.FULL_DUPLEX_STREAMED)))
    expect(c, 'request_headers')
    # one whole gRPC message (field 1: "hello"), the call stays open
    frame = b'\x00\x00\x00\x00\x07\x0a\x05hello'
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=frame)))
    sr = streamed_body(c, 'request_body', 1.0)
    if sr.body != frame or sr.end_of_stream:
        xp.fail('bidi gRPC message: %r' % sr)
    # half a frame waits for its rest
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=frame[:8])))
    c.none_within(0.3)
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=frame[8:])))
    if streamed_body(c, 'request_body', 1.0).body != frame:
        xp.fail('gRPC message in two chunks not answered whole')
    c.send(EP.ProcessingRequest(response_headers=xp.headers(
        pb, [(':status', '200'), ('content-type', 'text/event-stream')])))
    expect(c, 'response_headers')
    for ev in (b'event: token\ndata: Hel\n\n', b'data: lo\n\n'):
        c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=ev)))
        sr = streamed_body(c, 'response_body', 1.0)
        if sr.body != ev or sr.end_of_stream:
            xp.fail('event %r answered as %r' % (ev, sr))
    # an event cut inside a word: the word waits for what follows it, and
    # when nothing does, goes out (guarded) within about a second
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=b'data: wor')))
    if streamed_body(c, 'response_body', 1.0).body != b'data: ':
        xp.fail('the part before a cut word not answered at once')
    t0 = time.time()
    sr = streamed_body(c, 'response_body', 3.0)
    if sr.body != b'***' or not 0.3 < time.time() - t0 < 2.5:
        xp.fail('held word: %r after %.2fs' % (sr.body, time.time() - t0))
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=b'ld\n\n',
                                                          end_of_stream=True)))
    sr = streamed_body(c, 'response_body', 1.0)
    if not sr.end_of_stream or sr.body != b'**\n\n':
        xp.fail('end of the event stream: %r' % sr)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def observability_mode(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS),
                                observability_mode=True,
                                protocol_config=pcfg(MODE.STREAMED)))
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=b'x', end_of_stream=True),
                                observability_mode=True))
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS, eos=True),
                                observability_mode=True))
    c.none_within(0.4)
    c.cancel()
    code, _ = c.finish()
    if code != grpc.StatusCode.CANCELLED:
        xp.fail('expected a cancelled stream, got %s' % code)


@scenario
def immediate_response_on_deny(ctx):
    c = xp.Call(ctx['ch'], pb)
    hdrs = [(':path', '/v1/cards/4111111111111111'), (':method', 'GET'),
            (':authority', 'pay.example.com'), ('authorization', 'Bearer ' + C_AUTH)]
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, hdrs, eos=True)))
    r = expect(c, 'immediate_response')
    im = r.immediate_response
    if im.status.code != 403 or not im.details:
        xp.fail('immediate response: %r' % im)
    if b'4111' in r.SerializeToString():
        xp.fail('the denied path leaks into the immediate response')
    # the data plane stops after it; anything more is not answered
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS)))
    c.none_within(0.3)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def immediate_response_in_response_phase(ctx):
    # deny decided on request headers of the admin path while the body is
    # streamed: the reply to request_headers is the immediate_response
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(
        pb, [(':path', '/admin/users'), (':method', 'POST')]),
        protocol_config=pcfg(MODE.STREAMED)))
    expect(c, 'immediate_response')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def trailers_both_ways(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS)))
    expect(c, 'request_headers')
    c.send(EP.ProcessingRequest(request_trailers=EP.HttpTrailers(
        trailers=xp.headers(pb, [('x-api-key', C_KEY)]).headers)))
    r = expect(c, 'request_trailers')
    if list(r.request_trailers.header_mutation.remove_headers) != ['x-api-key']:
        xp.fail('request trailer not removed: %r' % r)
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, RESP_HEADERS)))
    expect(c, 'response_headers')
    c.send(EP.ProcessingRequest(response_trailers=EP.HttpTrailers(
        trailers=xp.headers(pb, [('grpc-status', '0'), ('x-trace', 't1')]).headers)))
    r = expect(c, 'response_trailers')
    if r.response_trailers.header_mutation.set_headers:
        xp.fail('clean trailers mutated')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def half_close_then_cancel(ctx):
    # the end of a stream from a gRPC library (Envoy's google_grpc):
    # half-close, then RST_STREAM(CANCEL); Envoy's own client sends
    # NO_ERROR (lifecycle.py, bad_input.py)
    for _ in range(20):
        c = xp.Call(ctx['ch'], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS, eos=True)))
        expect(c, 'request_headers')
        c.half_close()
        c.cancel()
        code, _ = c.finish()
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            xp.fail('half-close + cancel ended with %s' % code)


@scenario
def unknown_field_13(ctx):
    c = xp.Call(ctx['ch'], pb)
    m = EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS, eos=True)).SerializeToString()
    # field 13, length-delimited, and field 14 varint: both unknown
    m += bytes([13 << 3 | 2, 5]) + b'hello' + bytes([14 << 3 | 0, 0x96, 0x01])
    c.send(m)
    r = expect(c, 'request_headers')
    check_request_mutation(r.request_headers.response, REQ_HEADERS)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def message_over_4mib(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS),
                                protocol_config=pcfg(MODE.BUFFERED)))
    expect(c, 'request_headers')
    body = b'x' * (5 << 20) + b' Bearer ' + C_BEARER.encode()
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
    r = expect(c, 'request_body', timeout=20)
    nb = r.request_body.response.body_mutation.body
    # not JSON, and past limits.body_bytes: redacted whole, length kept
    if len(nb) != len(body) or nb.strip(b'*'):
        xp.fail('large body not redacted whole: %d bytes' % len(nb))
    ALL_REPLIES.pop()  # 5 MiB of x's: not worth keeping
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def many_streams_one_connection(ctx):
    ch = ctx['ch']

    def one(i):
        c = xp.Call(ch, pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(
            pb, REQ_HEADERS + [('x-n', str(i))]), protocol_config=pcfg(MODE.STREAMED)))
        r1 = kept(c.recv(20))
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=b'b%d' % i, end_of_stream=True)))
        r2 = kept(c.recv(20))
        c.half_close()
        code = c.finish(20)[0]
        return r1.WhichOneof('response'), r2.WhichOneof('response'), code
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        calls = list(ex.map(one, range(300)))
    bad = [x for x in calls if x != ('request_headers', 'request_body', grpc.StatusCode.OK)]
    if bad:
        xp.fail('%d of 300 concurrent streams went wrong: %r' % (len(bad), bad[:3]))


@scenario
def several_connections(ctx):
    chans = [ctx['new_channel']() for _ in range(6)]

    def one(i):
        c = xp.Call(chans[i % len(chans)], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS, eos=True)))
        r = kept(c.recv(20))
        c.half_close()
        return r.WhichOneof('response'), c.finish(20)[0]
    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        res = list(ex.map(one, range(120)))
    for ch in chans:
        ch.close()
    if any(x != ('request_headers', grpc.StatusCode.OK) for x in res):
        xp.fail('several connections: %r' % res[:5])


@scenario
def health_check_python(ctx):
    ch = ctx['ch']
    check = ch.unary_unary(xp.HEALTH_CHECK,
                           request_serializer=pb.health.HealthCheckRequest.SerializeToString,
                           response_deserializer=pb.health.HealthCheckResponse.FromString)
    for svc in ('', 'envoy.service.ext_proc.v3.ExternalProcessor'):
        r = check(pb.health.HealthCheckRequest(service=svc), timeout=5)
        if r.status != pb.health.HealthCheckResponse.SERVING:
            xp.fail('health %r: %r' % (svc, r))
    try:
        check(pb.health.HealthCheckRequest(service='no.such.Service'), timeout=5)
        xp.fail('unknown service answered')
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            xp.fail('unknown service: %s' % e.code())
    watch = ch.unary_stream(xp.HEALTH_WATCH,
                            request_serializer=pb.health.HealthCheckRequest.SerializeToString,
                            response_deserializer=pb.health.HealthCheckResponse.FromString)
    try:
        list(watch(pb.health.HealthCheckRequest(), timeout=5))
        xp.fail('Watch answered')
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNIMPLEMENTED:
            xp.fail('Watch: %s' % e.code())


@scenario
def unknown_method(ctx):
    m = ctx['ch'].unary_unary('/envoy.service.ext_proc.v3.ExternalProcessor/Nope',
                              request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
    try:
        m(b'', timeout=5)
        xp.fail('unknown method answered')
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNIMPLEMENTED:
            xp.fail('unknown method: %s' % e.code())
        ERRORS_SEEN.append(e.details() or '')


@scenario
def grpc_timeout_honoured(ctx):
    c = xp.Call(ctx['ch'], pb, timeout=0.3)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, REQ_HEADERS)))
    expect(c, 'request_headers')
    code, det = c.finish(5)
    if code != grpc.StatusCode.DEADLINE_EXCEEDED:
        xp.fail('grpc-timeout: %s %s' % (code, det))


# ---------------------------------------------------------------------------

def make_certs(d):
    """A CA, a server cert for 127.0.0.1/localhost, a client cert, and a
    client cert from another CA -- openssl CLI, at test time."""
    def run(*a):
        subprocess.run(a, check=True, cwd=d, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    for ca in ('ca', 'rogue'):
        run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
            'ec_paramgen_curve:P-256', '-nodes', '-keyout', ca + '.key',
            '-out', ca + '.pem', '-days', '2', '-subj', '/CN=sealtap test ' + ca)
    with open(os.path.join(d, 'san.ext'), 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    for name, ca in (('server', 'ca'), ('client', 'ca'), ('evil', 'rogue')):
        run('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
            '-nodes', '-keyout', name + '.key', '-out', name + '.csr',
            '-subj', '/CN=' + name)
        run('openssl', 'x509', '-req', '-in', name + '.csr', '-CA', ca + '.pem',
            '-CAkey', ca + '.key', '-CAcreateserial', '-out', name + '.pem',
            '-days', '2', '-extfile', 'san.ext')
    return {k: os.path.join(d, k) for k in
            ('ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key',
             'evil.pem', 'evil.key')}


OPTS = [('grpc.use_local_subchannel_pool', 1),
        ('grpc.max_send_message_length', -1),
        ('grpc.max_receive_message_length', -1)]


def channel_factory(port, creds=None):
    def make():
        target = '127.0.0.1:%d' % port
        if creds is None:
            return grpc.insecure_channel(target, options=OPTS)
        return grpc.secure_channel(target, creds, options=OPTS)
    return make


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--workdir', required=True)
    ap.add_argument('--tls', default='plain', choices=['plain', 'tls', 'mtls'])
    ap.add_argument('--only', default='')
    args = ap.parse_args()

    tls = None
    creds = None
    certs = None
    if args.tls != 'plain':
        certs = make_certs(args.workdir)
        tls = {'cert': certs['server.pem'], 'key': certs['server.key']}
        rd = lambda k: open(certs[k], 'rb').read()  # noqa: E731
        if args.tls == 'mtls':
            tls['client_ca'] = certs['ca.pem']
            creds = grpc.ssl_channel_credentials(rd('ca.pem'), rd('client.key'), rd('client.pem'))
        else:
            creds = grpc.ssl_channel_credentials(rd('ca.pem'))

    srv = xp.Server(args.workdir, 'conformance-' + args.tls, tls=tls,
                    threads=2, max_message='16MiB', policy=POLICY)
    new_channel = channel_factory(srv.port, creds)
    ch = new_channel()
    ctx = {'ch': ch, 'new_channel': new_channel, 'server': srv}
    failures = 0
    t0 = time.time()
    for fn in results:
        if args.only and args.only not in fn.__name__:
            continue
        try:
            fn(ctx)
            print('ok: %s [%s]' % (fn.__name__, args.tls))
        except Exception as e:  # report and go on
            failures += 1
            print('FAIL: %s [%s]: %s' % (fn.__name__, args.tls, e))
        if not srv.alive():
            print('FAIL: server died after %s' % fn.__name__)
            failures += 1
            break

    if args.tls != 'plain':
        # TLS with ALPN: h2 is negotiated; a client offering only
        # http/1.1 is refused in the handshake
        out = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % srv.port,
                              '-alpn', 'h2', '-CAfile', certs['ca.pem']] +
                             (['-cert', certs['client.pem'], '-key', certs['client.key']]
                              if args.tls == 'mtls' else []),
                             input=b'', capture_output=True, timeout=10).stdout
        if b'ALPN protocol: h2' not in out:
            print('FAIL: ALPN h2 not negotiated')
            failures += 1
        else:
            print('ok: ALPN h2 negotiated [%s]' % args.tls)
        r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % srv.port,
                            '-alpn', 'http/1.1', '-CAfile', certs['ca.pem']],
                           input=b'', capture_output=True, timeout=10)
        if b'ALPN protocol: http/1.1' in r.stdout or b'no application protocol' not in r.stdout + r.stderr:
            print('FAIL: a client without h2 in ALPN was not refused')
            failures += 1
        else:
            print('ok: ALPN without h2 refused [%s]' % args.tls)
        # RFC 9113 §9.2.2: TLS 1.2 with h2 only with AEAD ciphers and
        # ephemeral keys; a CBC suite is refused in the handshake
        mt = ['-cert', certs['client.pem'], '-key', certs['client.key']] \
            if args.tls == 'mtls' else []
        for cipher, want in (('ECDHE-ECDSA-AES128-SHA', False),
                             ('ECDHE-ECDSA-AES128-GCM-SHA256', True)):
            r = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % srv.port,
                                '-tls1_2', '-cipher', cipher, '-alpn', 'h2',
                                '-CAfile', certs['ca.pem']] + mt,
                               input=b'', capture_output=True, timeout=10)
            got = b'Cipher is ' + cipher.encode() in r.stdout
            if got != want:
                print('FAIL: TLS 1.2 with %s %s' % (cipher, 'refused' if want else 'accepted'))
                failures += 1
            else:
                print('ok: TLS 1.2 with %s %s [%s]' % (cipher, 'accepted' if want else 'refused',
                                                       args.tls))
    if args.tls == 'mtls':
        rd = lambda k: open(certs[k], 'rb').read()  # noqa: E731
        for label, cr in (('no client certificate', grpc.ssl_channel_credentials(rd('ca.pem'))),
                          ('certificate from another CA',
                           grpc.ssl_channel_credentials(rd('ca.pem'), rd('evil.key'), rd('evil.pem')))):
            bad = grpc.secure_channel('127.0.0.1:%d' % srv.port, cr, options=OPTS)
            check = bad.unary_unary(xp.HEALTH_CHECK,
                                    request_serializer=pb.health.HealthCheckRequest.SerializeToString,
                                    response_deserializer=pb.health.HealthCheckResponse.FromString)
            try:
                check(pb.health.HealthCheckRequest(), timeout=5)
                print('FAIL: mTLS accepted a client with %s' % label)
                failures += 1
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    print('FAIL: mTLS %s: %s' % (label, e.code()))
                    failures += 1
                else:
                    print('ok: mTLS refuses a client with %s' % label)
            bad.close()
    ch.close()
    if not args.only:
        # the HTTP health port
        import http.client
        hc = http.client.HTTPConnection('127.0.0.1', srv.health_port, timeout=5)
        hc.request('GET', '/')
        resp = hc.getresponse()
        if resp.status != 200:
            print('FAIL: health port GET / -> %d' % resp.status)
            failures += 1
        else:
            print('ok: health port GET / -> 200')
    ctr = srv.stop()
    # counters: what the scenarios must have left
    want = {'streams_process': 400, 'msgs_unknown_fields': 1, 'denials': 2,
            'immediate_responses': 2, 'msgs_observability': 3,
            'streams_cancelled': 1, 'replies_streamed': 3, 'records': 400,
            'mutations_removed': 100, 'mutations_added': 100,
            'mutations_body': 300, 'mode_overrides': 100,
            'seal_failed_closed': 100, 'streams_health': 3,
            'streams_unimplemented': 2, 'mutations_observed': 1}
    if not args.only:
        for k, v in want.items():
            if ctr.get(k, 0) < v:
                print('FAIL: counter %s = %s, expected >= %d' % (k, ctr.get(k, 0), v))
                failures += 1
        for k in ('msgs_malformed', 'msgs_out_of_order', 'conns_protocol_error',
                  'records_dropped', 'streams_premature_reset'):
            if ctr.get(k, 0):
                print('FAIL: counter %s = %d in a clean run' % (k, ctr[k]))
                failures += 1
    # records: one per exchange, credentials never in plain
    recs = srv.records()
    if not args.only:
        # observability mode: nothing sealtap decides is sent, so its
        # record says no mutation (it claimed them, and the counters too)
        obs = [r for r in recs if r['extproc'].get('observability')]
        if not obs or any(r['extproc']['mutations'] for r in obs):
            print('FAIL: observability-mode records: %r' % [r['extproc'] for r in obs])
            failures += 1
        if len(recs) < 400 or any(r.get('source') != 'extproc' for r in recs):
            print('FAIL: records: %d, sources %r' % (len(recs), {r.get('source') for r in recs}))
            failures += 1
        auth = [h for r in recs for h in r['request']['headers'] if h[0] == 'authorization']
        if not auth or any(not isinstance(h[1], dict) or 'redacted' not in h[1] for h in auth):
            print('FAIL: records hold authorization values in plain: %r' % auth[:2])
            failures += 1
        elif any(r.get('tenant') != 'default' or r.get('route') not in ('default', 'admin', 'cards')
                 for r in recs):
            print('FAIL: records without the tenant and route')
            failures += 1
        elif not any(s.get('rule') == 'builtin/header/authorization' and s.get('action') == 'redact'
                     for r in recs for s in r.get('sealed', [])):
            print('FAIL: records do not say which rule redacted authorization')
            failures += 1
        elif not any(r['extproc'].get('deny_rule') == 'forbidden/header/:path' for r in recs):
            print('FAIL: no record names the deny rule')
            failures += 1
        else:
            print('ok: %d records, credential values redacted, tenant, route '
                  'and rules recorded' % len(recs))
    # canaries: nowhere in the server's output, nowhere in the replies
    blob = srv.all_output() + b'\n'.join(ALL_REPLIES) + '\n'.join(ERRORS_SEEN).encode()
    leaked = [c for c in CANARIES if c.encode() in blob]
    if leaked:
        print('FAIL: canaries leaked: %r' % leaked)
        failures += 1
    else:
        print('ok: no canary in logs, records, counters, errors or replies '
              '(%d replies scanned)' % len(ALL_REPLIES))
    print('conformance [%s]: %d scenario(s), %d failure(s) in %.1fs'
          % (args.tls, len(results), failures, time.time() - t0))
    xp.cleanup_stubs()
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
