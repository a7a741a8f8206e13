#!/usr/bin/env python3
"""ext_proc with the policy and real keys: sealtap extproc runs a policy
file whose tenants have DEKs in a real SoftHSM2 token (made by the calling
script with `sealtap keys init/create`), and a gRPC client (python3-grpcio)
plays Envoy. Checks that
  - sensitive header values come back as tokens (stk1.<kind>.<key id>.
    <base64url>) in raw_value, parts of values (a cookie, a query
    parameter) replaced in place, repeated headers all replaced;
  - a redact rule removes its header; a tenant without a key fails closed;
  - a name with several lines of which only some change is set again
    whole, in order, the kept lines as they were (a set overwrites every
    line of its name in Envoy, so setting only the changed ones would
    drop the others);
  - a card number in the URL, or in a request body, is denied with the
    policy's immediate_response (status, body, details), echoing nothing;
  - JSON body fields become tokens in BUFFERED, STREAMED and
    FULL_DUPLEX_STREAMED body mutations and the body stays valid JSON,
    also a STREAMED body in several chunks (parsed on from one to the
    next)
    (BUFFERED: content-length set to the new length);
  - mode_override asks for bodies only on routes whose rules read them;
  - every exchange has a record with tenant, route and the rules applied,
    holding the same tokens the mutations carried; `sealtap open` recovers
    every planted canary exactly from the records;
  - no canary appears in plain in records, logs, counters or replies, nor
    in a core of the server (gcore) taken after every scenario with its
    connection still open.

usage: policy.py --workdir DIR --keys-yaml FILE
FILE holds the kms:/keys: configuration sections of the token and store;
SOFTHSM2_CONF names the token's directory.
Exit 0 when every scenario passed.
"""
import argparse
import base64
import gzip
import json
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
HVO = pb.core.HeaderValueOption

R = base64.b32encode(os.urandom(5)).decode().lower()
C = {k: 'CANARY%s%s' % (k, R) for k in (
    'auth', 'key', 'secret', 'internal', 'sid', 'sidtwo', 'query', 'ssn',
    'card', 'resp', 'setc', 'trailer', 'globex', 'streamed', 'duplex',
    'nokey', 'chunked', 'vauth', 'vssn', 'bearer', 'sniff')}
C_EMAIL = 'canary.%s@example.com' % R
C_EMAIL2 = 'canary2.%s@example.com' % R
CARD = '4111111111111111'          # Luhn-valid test card
CARD2 = '5500 0000 0000 0004'      # Luhn-valid, grouped
ALL_CANARIES = list(C.values()) + [C_EMAIL, C_EMAIL2, CARD, CARD2]

POLICY = """
version: 1
tenants:
  acme: {kms: pkcs11, kek: sealtap-dev-kek}
  globex: {kms: pkcs11, kek: sealtap-dev-kek}
  nokey: {kms: pkcs11, kek: sealtap-dev-kek}
deny:
  status: 451
  body: "refused by sealtap policy\\n"
  details: sealtap_policy_denied
rule_sets:
  shop:
    extends: builtin
    headers: {x-secret: seal, x-internal: redact, x-user: tokenize}
    cookies: {sid: tokenize, theme: keep}
    query: {token: seal}
    json: {"$.ssn": seal, "$.card.number": seal}
    detectors:
      card: deny
      email: tokenize
  static:
    headers: {authorization: seal, x-secret: seal}
routes:
  - {name: globex-api, match: {authority: api.globex.test}, tenant: globex, rules: shop}
  - {name: static, match: {authority: shop.acme.test, path_prefix: /static/}, rules: static}
  - {name: nokey, match: {authority: nokey.test}, tenant: nokey, rules: shop}
default: {tenant: acme, rules: shop}
"""

TOKEN = r'stk1\.([gsh])\.([A-Za-z0-9_-]{1,64})\.[A-Za-z0-9_-]+'
ALL_REPLIES = []
EXPECT = {}     # record id -> what sealtap open must give back
results = []


def scenario(fn):
    results.append(fn)
    return fn


def kept(r):
    ALL_REPLIES.append(r.SerializeToString())
    return r


def expect_any(call, timeout=5.0):
    r = call.recv(timeout)
    ALL_REPLIES.append(r.SerializeToString())
    return r


def expect(call, kind, timeout=5.0):
    r = kept(call.recv(timeout))
    if r.WhichOneof('response') != kind:
        xp.fail('expected a %s reply, got %r' % (kind, r))
    return r


def mutation(hm):
    """({name: [(raw_value, append_action)]}, [removed]) of a HeaderMutation,
    checking raw_value-only and the protected names."""
    sets = {}
    for o in hm.set_headers:
        h = o.header
        if h.value:
            xp.fail('%s carries value=%r; values go in raw_value only' % (h.key, h.value))
        if h.key.startswith(':') or h.key == 'host' or h.key.startswith('x-envoy-'):
            xp.fail('protected header %s was mutated' % h.key)
        # Envoy reads `append`, gRPC's ext_proc append_action: they agree
        if not o.HasField('append') or \
                o.append.value != (o.append_action == HVO.APPEND_IF_EXISTS_OR_ADD):
            xp.fail('%s: append %r disagrees with append_action %r' % (
                h.key, o.append if o.HasField('append') else None, o.append_action))
        sets.setdefault(h.key, []).append((h.raw_value.decode('latin-1'), o.append_action))
    return sets, list(hm.remove_headers)


def is_token(s, kind, kid):
    m = re.fullmatch(TOKEN, s)
    return bool(m) and m.group(1) == kind and m.group(2) == kid


def has_token(s, kind, kid):
    return any(m.group(1) == kind and m.group(2) == kid for m in re.finditer(TOKEN, s))


def pcfg(req=MODE.NONE, resp=MODE.NONE):
    return EP.ProtocolConfiguration(request_body_mode=req, response_body_mode=resp)


def request_id(sets):
    rid = sets.get('x-sealtap-request-id')
    if not rid or not re.fullmatch(r'[0-9a-f]{16}', rid[0][0]):
        xp.fail('no request id header: %r' % sets)
    return rid[0][0]


# ---------------------------------------------------------------------------

@scenario
def headers_and_buffered_bodies(ctx):
    kid = ctx['kid']['acme']
    c = xp.Call(ctx['ch'], pb)
    body = json.dumps({'ssn': C['ssn'], 'card': {'number': CARD2},
                       'contact': C_EMAIL, 'note': 'ok'}).encode()
    req = [(':authority', 'shop.acme.test'),
           (':path', '/orders?token=%s&page=2' % C['query']),
           (':method', 'POST'), (':scheme', 'https'),
           ('content-type', 'application/json'),
           ('content-length', str(len(body))),
           ('authorization', 'Bearer ' + C['auth']),
           ('cookie', 'sid=%s; theme=dark' % C['sid']),
           ('cookie', 'sid=' + C['sidtwo']),
           ('x-api-key', C['key']), ('x-secret', C['secret']),
           ('x-internal', C['internal']), ('x-user', 'alice'),
           ('user-agent', 'curl/8.5.0')]
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, req), protocol_config=pcfg()))
    r = expect(c, 'request_headers')
    if not r.HasField('mode_override') or r.mode_override.request_body_mode != MODE.BUFFERED \
            or r.mode_override.response_body_mode != MODE.BUFFERED:
        xp.fail('route with body rules: no mode_override asking for bodies: %r' % r)
    sets, removed = mutation(r.request_headers.response.header_mutation)
    rid = request_id(sets)
    for name in ('authorization', 'x-api-key', 'x-secret'):
        v = sets.get(name, [('', 0)])
        if len(v) != 1 or not is_token(v[0][0], 'g', kid):
            xp.fail('%s not a seal token of %s: %r' % (name, kid, v))
    if not is_token(sets['x-user'][0][0], 's', kid):
        xp.fail('x-user not a tokenize token: %r' % sets['x-user'])
    ck = sets.get('cookie', [])
    if len(ck) != 2 or [a for _, a in ck] != [HVO.OVERWRITE_IF_EXISTS_OR_ADD,
                                               HVO.APPEND_IF_EXISTS_OR_ADD]:
        xp.fail('two cookie lines: first overwrites, second appends: %r' % ck)
    if not re.fullmatch(r'sid=' + TOKEN + r'; theme=dark', ck[0][0]) or \
            not has_token(ck[0][0], 's', kid) or not re.fullmatch('sid=' + TOKEN, ck[1][0]):
        xp.fail('cookie sid not tokenized in place: %r' % ck)
    if removed != ['x-internal']:
        xp.fail('the redact rule did not remove x-internal: %r' % removed)
    if set(sets) != {'authorization', 'x-api-key', 'x-secret', 'x-user', 'cookie',
                     'x-sealtap-request-id'}:
        xp.fail('unexpected mutations: %r' % sorted(sets))
    ctx['alice'] = sets['x-user'][0][0]
    # the request body, buffered as asked
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
    r = expect(c, 'request_body')
    cr = r.request_body.response
    nb = cr.body_mutation.body
    j = json.loads(nb)  # still JSON
    if not is_token(j['ssn'], 'g', kid) or not is_token(j['card']['number'], 'g', kid) \
            or not is_token(j['contact'], 's', kid) or j['note'] != 'ok':
        xp.fail('JSON fields not tokens: %r' % j)
    cl, _ = mutation(cr.header_mutation)
    if cl != {'content-length': [(str(len(nb)), HVO.OVERWRITE_IF_EXISTS_OR_ADD)]}:
        xp.fail('BUFFERED body without its new content-length: %r' % cl)
    # the response
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, [
        (':status', '200'), ('content-type', 'application/json'),
        ('set-cookie', 'sid=%s; Path=/; HttpOnly' % C['setc'])])))
    r = expect(c, 'response_headers')
    sets, _ = mutation(r.response_headers.response.header_mutation)
    sc = sets.get('set-cookie', [('', 0)])[0][0]
    if not re.fullmatch('sid=' + TOKEN + '; Path=/; HttpOnly', sc):
        xp.fail('set-cookie not tokenized in place: %r' % sc)
    rbody = json.dumps({'access_token': C['resp'], 'n': 1}).encode()
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=rbody, end_of_stream=True)))
    r = expect(c, 'response_body')
    rj = json.loads(r.response_body.response.body_mutation.body)
    if not is_token(rj['access_token'], 'g', kid) or rj['n'] != 1:
        xp.fail('response body not sealed: %r' % rj)
    c.send(EP.ProcessingRequest(response_trailers=EP.HttpTrailers(
        trailers=xp.headers(pb, [('x-secret', C['trailer'])]).headers)))
    r = expect(c, 'response_trailers')
    sets, _ = mutation(r.response_trailers.header_mutation)
    if not is_token(sets['x-secret'][0][0], 'g', kid):
        xp.fail('trailer not sealed: %r' % sets)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    ctx['main_rid'] = rid
    EXPECT[rid] = {
        ('request.headers', 'authorization'): 'Bearer ' + C['auth'],
        ('request.headers', 'x-api-key'): C['key'],
        ('request.headers', 'x-secret'): C['secret'],
        ('request.headers', 'x-user'): 'alice',
        ('request.headers', 'cookie'): 'sid=%s; theme=dark' % C['sid'],
        ('request.headers', ':path'): '/orders?token=%s&page=2' % C['query'],
        ('response.headers', 'set-cookie'): 'sid=%s; Path=/; HttpOnly' % C['setc'],
        ('response.trailers', 'x-secret'): C['trailer'],
        ('body', 'request.body:shop/json/$.ssn'): C['ssn'],
        ('body', 'request.body:shop/json/$.card.number'): CARD2,
        ('body', 'request.body:shop/detector/email'): C_EMAIL,
        ('body', 'response.body:builtin/json/$..access_token'): C['resp'],
        ('tokens',): [v for v in re.findall(r'stk1\.[gsh]\.[A-Za-z0-9_.-]+', nb.decode())],
        ('tenant', 'route'): ('acme', 'default'),
    }


@scenario
def headers_in_value_field(ctx):
    """A data plane that sends header values in `value` (Envoy with the
    runtime flag send_header_raw_value off) reads only `value` from a
    mutation: the sealed value, the request id and a BUFFERED body's new
    content-length come back there, raw_value empty (they came back empty
    to such a data plane)."""
    kid = ctx['kid']['acme']
    c = xp.Call(ctx['ch'], pb)
    hm = pb.core.HeaderMap()
    body = json.dumps({'ssn': C['vssn']}).encode()
    for k, v in ((':authority', 'shop.acme.test'), (':path', '/orders'), (':method', 'POST'),
                 ('content-type', 'application/json'), ('content-length', str(len(body))),
                 ('authorization', 'Bearer ' + C['vauth']), ('x-user', 'alice')):
        hv = hm.headers.add()
        hv.key, hv.value = k, v
    # a line that is not UTF-8 came in raw_value: its mutation goes there
    # too (in value it made the whole reply unparseable)
    hv = hm.headers.add()
    hv.key, hv.raw_value = 'x-note', b'caf\xe9 mail ' + C_EMAIL2.encode()
    c.send(EP.ProcessingRequest(request_headers=EP.HttpHeaders(headers=hm),
                                protocol_config=pcfg(MODE.BUFFERED)))
    r = expect(c, 'request_headers')
    sets = {}
    for o in r.request_headers.response.header_mutation.set_headers:
        if o.header.key == 'x-note':
            if o.header.value or not has_token(o.header.raw_value.decode('latin-1'), 's', kid):
                xp.fail('x-note (not UTF-8): %r' % o.header)
            continue
        if o.header.raw_value or not o.header.value:
            xp.fail('%s: value %r, raw_value %r; this data plane reads value' % (
                o.header.key, o.header.value, o.header.raw_value))
        sets[o.header.key] = o.header.value
    if 'x-note' in sets or not any(o.header.key == 'x-note' for o in
                                   r.request_headers.response.header_mutation.set_headers):
        xp.fail('x-note not replaced')
    if not is_token(sets.get('authorization', ''), 'g', kid) or \
            not is_token(sets.get('x-user', ''), 's', kid) or \
            not re.fullmatch('[0-9a-f]{16}', sets.get('x-sealtap-request-id', '')):
        xp.fail('mutations in value: %r' % sets)
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
    cr = expect(c, 'request_body').request_body.response
    nb = cr.body_mutation.body
    cl = [(o.header.key, o.header.value, o.header.raw_value) for o in cr.header_mutation.set_headers]
    if not is_token(json.loads(nb)['ssn'], 'g', kid) or cl != [('content-length', str(len(nb)), b'')]:
        xp.fail('BUFFERED body in value mode: %r %r' % (nb, cl))
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def buffered_body_then_trailers(ctx):
    """A BUFFERED body that trailers follow comes from Envoy without
    end_of_stream, but whole: nothing of it is guarded as a cut chunk
    ("ship to 12 Elm St 4111" came back "ship to 12 Elm St ****"); only
    when the data plane said BUFFERED, not when sealtap's mode_override did."""
    c = start_notes(ctx, 'text/plain')
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
        body=b'ship to 12 Elm St 4111', end_of_stream=False)))
    cr = expect(c, 'request_body').request_body.response
    if cr.HasField('body_mutation'):
        xp.fail('a whole BUFFERED body changed: %r' % cr.body_mutation)
    c.send(EP.ProcessingRequest(request_trailers=EP.HttpTrailers(
        trailers=xp.headers(pb, [('x-checksum', 'abc')]).headers)))
    expect(c, 'request_trailers')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    # more body after one taken whole would turn its end into a cut that
    # went out unguarded: the stream ends instead
    c = start_notes(ctx, 'text/plain')
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=b'pay 5500 0000', end_of_stream=False)))
    expect(c, 'request_body')
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=b' 0000 0004', end_of_stream=True)))
    code, details = c.finish()[:2]
    if code != grpc.StatusCode.INVALID_ARGUMENT or 'whole BUFFERED' not in (details or ''):
        xp.fail('a second BUFFERED body message: %r %r' % (code, details))


@scenario
def client_request_id_overwritten(ctx):
    """A client-sent copy of the request id header the policy changes (an
    address in it is tokenized) is overwritten by the real id: the walk's
    line for it used to stay, and the id was appended after it, so Envoy
    kept both and a backend reading the first line joined on the client's."""
    hdrs = [(':authority', 'shop.acme.test'), (':path', '/notes'), (':method', 'GET'),
            ('x-sealtap-request-id', 'forged-by-mallory@example.com')]
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, hdrs, eos=True)))
    hm = expect(c, 'request_headers').request_headers.response.header_mutation
    sets, _ = mutation(hm)
    rid = request_id(sets)
    got = [v for k, v in xp.envoy_apply(hdrs, hm) if k == 'x-sealtap-request-id']
    if got != [rid] or sets['x-sealtap-request-id'] != [(rid, HVO.OVERWRITE_IF_EXISTS_OR_ADD)]:
        xp.fail('request id after Envoy applies the mutation: %r (%r)' % (got, sets))
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


ENCODED_RIDS = []


@scenario
def compressed_body(ctx):
    """A body with a content-encoding is compressed: scanned, the detectors
    found nothing in gzip bytes and the client decompressed the card to
    plaintext; a JSON body was read as broken JSON. It is taken whole by
    limits.unscanned now (redact: stars, its length kept), counted, and
    the record says so."""
    for ctype in ('text/plain', 'application/json'):
        plain = b'{"note": "card 4539148803436467 ok"}'
        body = gzip.compress(plain)
        c = xp.Call(ctx['ch'], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
            (':authority', 'shop.acme.test'), (':path', '/notes'), (':method', 'POST'),
            ('content-type', ctype), ('content-encoding', 'gzip')]),
            protocol_config=pcfg(MODE.BUFFERED)))
        r = expect(c, 'request_headers')
        ENCODED_RIDS.append(request_id(mutation(r.request_headers.response.header_mutation)[0]))
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
        bm = expect(c, 'request_body').request_body.response.body_mutation
        if bm.body != b'*' * len(body):
            xp.fail('%s gzip body not taken whole by limits.unscanned: %r' % (ctype, bm))
        c.half_close()
        assert c.finish()[0] == grpc.StatusCode.OK
    # identity is no coding, nor is S3's aws-chunked framing: scanned as
    # usual (the address tokenized, the rest kept)
    for enc in ('Identity', 'aws-chunked'):
        c = xp.Call(ctx['ch'], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
            (':authority', 'shop.acme.test'), (':path', '/notes'), (':method', 'POST'),
            ('content-type', 'text/plain'), ('content-encoding', enc)]),
            protocol_config=pcfg(MODE.BUFFERED)))
        expect(c, 'request_headers')
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
            body=b'hello there, mail bob@example.com', end_of_stream=True)))
        got = expect(c, 'request_body').request_body.response.body_mutation.body
        if not got.startswith(b'hello there, mail stk1.') or b'bob@' in got:
            xp.fail('a %s body was not scanned as usual: %r' % (enc, got))
        c.half_close()
        c.finish()


IGNORED_RIDS = []


@scenario
def override_the_data_plane_would_ignore(ctx):
    """Envoy ignores a mode_override when a direction is announced
    FULL_DUPLEX_STREAMED or bodies go out without waiting for the headers
    reply: on a route that reads bodies none is sent then, the record
    keeps the announced modes and says mode_override_ignored (the record
    claimed BUFFERED while the response body never came)."""
    for cfg in (EP.ProtocolConfiguration(request_body_mode=MODE.FULL_DUPLEX_STREAMED,
                                         response_body_mode=MODE.NONE),
                EP.ProtocolConfiguration(request_body_mode=MODE.STREAMED,
                                         send_body_without_waiting_for_header_response=True)):
        c = xp.Call(ctx['ch'], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
            (':authority', 'shop.acme.test'), (':path', '/orders'), (':method', 'POST'),
            ('content-type', 'application/json')]), protocol_config=cfg))
        r = expect(c, 'request_headers')
        if r.HasField('mode_override'):
            xp.fail('a mode_override the data plane ignores: %r' % r.mode_override)
        IGNORED_RIDS.append(request_id(mutation(r.request_headers.response.header_mutation)[0]))
        c.half_close()
        assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def json_body_without_content_type(ctx):
    """A response body whose headers never came (response header mode
    SKIP) has no content-type: a body that opens a JSON object is read as
    JSON, so the JSON path rules apply ($.ssn was passed in plain: the body
    went to the detectors as text)."""
    kid = ctx['kid']['acme']
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/me'), (':method', 'GET')], eos=True),
        protocol_config=pcfg(MODE.NONE, MODE.BUFFERED)))
    expect(c, 'request_headers')
    body = b'\xef\xbb\xbf  {"user": "bob", "ssn": "%s"}' % C['sniff'].encode()
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=body, end_of_stream=True)))
    cr = expect(c, 'response_body').response_body.response
    j = json.loads(cr.body_mutation.body.decode('utf-8-sig')) \
        if cr.HasField('body_mutation') else {}
    if not is_token(j.get('ssn', ''), 'g', kid) or j.get('user') != 'bob':
        xp.fail('JSON body without a content-type: %r' % (cr.body_mutation.body or body))
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    # one that only begins like JSON (a log line) stays text: its e-mail
    # tokenized in place, nothing else touched (it was starred whole as
    # malformed JSON)
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/log'), (':method', 'GET')], eos=True),
        protocol_config=pcfg(MODE.NONE, MODE.BUFFERED)))
    expect(c, 'request_headers')
    body = b'[INFO] login by ' + C_EMAIL.encode() + b'\n[WARN] retry\n'
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=body, end_of_stream=True)))
    nb = expect(c, 'response_body').response_body.response.body_mutation.body
    if not re.fullmatch(rb'\[INFO\] login by stk1\.s\.[A-Za-z0-9_.-]+\n\[WARN\] retry\n', nb):
        xp.fail('a log line without a content-type: %r' % nb)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def tokenize_is_deterministic(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/'), ('x-user', 'alice')], eos=True)))
    r = expect(c, 'request_headers')
    sets, _ = mutation(r.request_headers.response.header_mutation)
    if sets['x-user'][0][0] != ctx['alice']:
        xp.fail('tokenize gave another token for the same value')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def repeated_names_keep_every_line(ctx):
    kid = ctx['kid']['acme']
    c = xp.Call(ctx['ch'], pb)
    sent = [(':authority', 'shop.acme.test'), (':path', '/'),
            ('x-note', 'hello'), ('x-note', 'mail ' + C_EMAIL2), ('x-note', 'bye'),
            ('cookie', 'theme=dark'), ('cookie', 'sid=' + C['sidtwo']),
            ('x-trace', 'a'), ('x-trace', 'b')]
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, sent, eos=True)))
    r = expect(c, 'request_headers')
    hm = r.request_headers.response.header_mutation
    sets, removed = mutation(hm)
    # what the backend gets from Envoy: every line of each name, in order,
    # the e-mail and the session id tokenized (Envoy kept only each name's
    # last line when the later lines did not say `append`)
    lines = {}
    for k, v in xp.envoy_apply(sent, hm):
        lines.setdefault(k, []).append(v)
    xn, ck, xt = lines.get('x-note', []), lines.get('cookie', []), lines.get('x-trace')
    if len(xn) != 3 or xn[0::2] != ['hello', 'bye'] or not has_token(xn[1], 's', kid) or \
            len(ck) != 2 or ck[0] != 'theme=dark' or not has_token(ck[1], 's', kid) or \
            xt != ['a', 'b']:
        xp.fail('Envoy would pass on %r' % lines)
    ow, ap = HVO.OVERWRITE_IF_EXISTS_OR_ADD, HVO.APPEND_IF_EXISTS_OR_ADD
    note = sets.get('x-note', [])
    if [v for v, _ in note][0::2] != ['hello', 'bye'] or [a for _, a in note] != [ow, ap, ap] \
            or not re.fullmatch('mail ' + TOKEN, note[1][0]) or not has_token(note[1][0], 's', kid):
        xp.fail('x-note lines not set again whole, in order: %r' % note)
    ck = sets.get('cookie', [])
    if len(ck) != 2 or ck[0] != ('theme=dark', ow) or ck[1][1] != ap \
            or not re.fullmatch('sid=' + TOKEN, ck[1][0]):
        xp.fail('cookie lines not set again whole, in order: %r' % ck)
    if 'x-trace' in sets or removed:
        xp.fail('unchanged or removed lines in the mutation: %r %r' % (sets, removed))
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


def start_notes(ctx, ctype):
    """A POST /notes exchange of |ctype| whose body comes BUFFERED, as the
    data plane announced: the call, its request_headers answered."""
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/notes'), (':method', 'POST'),
        ('content-type', ctype)]), protocol_config=pcfg(MODE.BUFFERED)))
    expect(c, 'request_headers')
    return c


def start_streamed(ctx, ctype):
    """A PUT /profile exchange whose request body comes STREAMED: the
    call, the request_headers reply and the record id."""
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/profile'), (':method', 'PUT'),
        ('content-type', ctype)]),
        protocol_config=pcfg(MODE.STREAMED, MODE.NONE)))
    r = expect(c, 'request_headers')
    return c, r, request_id(mutation(r.request_headers.response.header_mutation)[0])


@scenario
def streamed_json_body(ctx):
    kid = ctx['kid']['acme']
    c, r, rid = start_streamed(ctx, 'application/json; charset=utf-8')
    mo = r.mode_override
    if mo.request_body_mode != MODE.STREAMED or mo.response_body_mode != MODE.BUFFERED:
        xp.fail('override must keep STREAMED and ask for the response: %r' % mo)
    body = b'{"ssn": "%s", "tags": [1, 2]}' % C['streamed'].encode()
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
    r = expect(c, 'request_body')
    cr = r.request_body.response
    j = json.loads(cr.body_mutation.body)
    if not is_token(j['ssn'], 'g', kid) or j['tags'] != [1, 2]:
        xp.fail('streamed JSON body: %r' % j)
    if cr.header_mutation.set_headers:
        xp.fail('content-length set on a STREAMED body')
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    EXPECT[rid] = {('body', 'request.body:shop/json/$.ssn'): C['streamed'],
                   ('tenant', 'route'): ('acme', 'default')}


@scenario
def streamed_json_in_chunks(ctx):
    """A STREAMED JSON body in four chunks, cut inside a plain string,
    inside a number, between tokens and inside an array: every reply
    parses on from the one before, so the parts put together are JSON and
    the "ssn" value in the third chunk is sealed by its path rule (its key
    and the object it is in began chunks earlier)."""
    kid = ctx['kid']['acme']
    c, _, rid = start_streamed(ctx, 'application/json')
    parts = [b'{"note": "hello wor', b'ld", "n": 12', b'345, "ssn": "%s", "tags": [1, ' %
             C['chunked'].encode(), b'2]}']
    got = b''
    for i, p in enumerate(parts):
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=p, end_of_stream=i == 3)))
        cr = expect(c, 'request_body').request_body.response
        got += cr.body_mutation.body if cr.HasField('body_mutation') else p
    try:
        j = json.loads(got)
    except ValueError:
        xp.fail('chunked JSON body is not JSON: %r' % got)
    # the cut string: its first part guarded (a detector's hit could go on
    # past the cut), the rest kept; the cut number: 9s, still a number
    if j.get('note') != 'hello ***ld' or j.get('n') != 99999 or j.get('tags') != [1, 2]:
        xp.fail('chunked JSON body: %r' % got)
    if not is_token(j.get('ssn', ''), 'g', kid):
        xp.fail('ssn in the third chunk not sealed: %r' % got)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    EXPECT[rid] = {('body', 'request.body:shop/json/$.ssn'): C['chunked'],
                   ('tenant', 'route'): ('acme', 'default')}


@scenario
def streamed_bearer_cut_anywhere(ctx):
    """A STREAMED text body carrying "Authorization: Bearer <token>", cut
    in two at every offset: the bearer detector needs "Bearer" before the
    token, and a chunk is scanned alone, so a boundary inside the word or
    its blanks left the token bare in the next chunk (it passed, 23 cuts
    in a review). No byte of the token may pass at any cut."""
    tok = 'tq5kep' + C['bearer'][-8:]

    def streamed(parts):
        c, _, _ = start_streamed(ctx, 'text/plain')
        out = b''
        for i, p in enumerate(parts):
            c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
                body=p, end_of_stream=i == len(parts) - 1)))
            cr = expect(c, 'request_body').request_body.response
            out += cr.body_mutation.body if cr.HasField('body_mutation') else p
        c.half_close()
        assert c.finish()[0] == grpc.StatusCode.OK
        return out
    leaks = []
    # one blank, and more blanks than the 16 bytes kept of a chunk
    for gap in (b'   ', b' ' * 20):
        body = b'{"log":"x"}\nAuthorization: Bearer' + gap + tok.encode() + b'\nend\n'
        for cut in range(1, len(body)):
            out = streamed((body[:cut], body[cut:]))
            if any(tok[i:i + 6].encode() in out for i in range(len(tok) - 5)):
                leaks.append((cut, out))
    # a chunk of blanks only between "Bearer" and the token
    out = streamed((b'x Bearer', b' ' * 30, b' ' + tok.encode() + b' end'))
    if tok[:6].encode() in out or tok[-6:].encode() in out:
        leaks.append(('blank chunk', out))
    if leaks:
        xp.fail('%d cuts let the token through, e.g. %r' % (len(leaks), leaks[0]))
    # an ordinary word after "bearer" is no token: left alone
    out = streamed((b'the bearer', b' of this note is ok'))
    if not out.endswith(b' of this note is ok'):
        xp.fail('a word after "bearer" starred: %r' % out)


def full_duplex(c, parts):
    """Sends |parts| as a FULL_DUPLEX_STREAMED request body; returns the
    streamed_response bytes up to the one that ends the stream."""
    for i, p in enumerate(parts):
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
            body=p, end_of_stream=i == len(parts) - 1)))
    out = b''
    while True:
        sr = expect(c, 'request_body').request_body.response.body_mutation.streamed_response
        out += sr.body
        if sr.end_of_stream:
            return out


@scenario
def full_duplex_json_body(ctx):
    kid = ctx['kid']['acme']
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/upload'),
        ('content-type', 'application/json')]),
        protocol_config=pcfg(MODE.FULL_DUPLEX_STREAMED, MODE.FULL_DUPLEX_STREAMED)))
    r = expect(c, 'request_headers')
    rid = request_id(mutation(r.request_headers.response.header_mutation)[0])
    if r.HasField('mode_override'):
        xp.fail('bodies come both ways already: no mode_override expected')
    got = full_duplex(c, [b'{"a":1,', b'"ssn":"%s",' % C['duplex'].encode(), b'"b":2}'])
    j = json.loads(got)
    if not is_token(j['ssn'], 'g', kid) or (j['a'], j['b']) != (1, 2):
        xp.fail('full duplex body: %r' % got)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    EXPECT[rid] = {('body', 'request.body:shop/json/$.ssn'): C['duplex'],
                   ('tenant', 'route'): ('acme', 'default')}


# gRPC bodies: the application's messages (here HttpHeaders, for its
# three levels of nesting: HttpHeaders > HeaderMap > HeaderValue) must stay
# valid protobuf with tokens inside, every enclosing length (field varints,
# the 5-byte gRPC frame prefix) fixed; x-pad's value grows past 127 bytes
# with its token, so its varint grows a byte too.
NOTE = 'plain note ' + 'n' * 90
PAD = 'p' * 100 + ' contact '


def app_msg():
    hv = pb.core.HeaderValue
    return EP.HttpHeaders(headers=pb.core.HeaderMap(headers=[
        hv(key='x-note', value=NOTE), hv(key='x-mail', raw_value=C_EMAIL.encode()),
        hv(key='x-pad', value=PAD + C_EMAIL)]), end_of_stream=True).SerializeToString()


def frame(m):
    return b'\x00' + len(m).to_bytes(4, 'big') + m


def unframe(data, what):
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos + 1:pos + 5], 'big')
        if len(data) - pos < 5 or data[pos] != 0 or pos + 5 + n > len(data):
            xp.fail('%s: not whole gRPC frames at %d: %r' % (what, pos, data[pos:pos + 16]))
        out.append(data[pos + 5:pos + 5 + n])
        pos += 5 + n
    return out


def check_app_msg(m, kid, what):
    """The message parses (a wrong length anywhere makes protobuf refuse
    it), the e-mail addresses are tokens, the rest is as sent."""
    try:
        h = EP.HttpHeaders.FromString(m)
    except Exception as e:  # noqa: BLE001 - DecodeError's module varies
        xp.fail('%s: not a valid message any more (%s): %r' % (what, e, m[:64]))
    kv = {x.key: x for x in h.headers.headers}
    if set(kv) != {'x-note', 'x-mail', 'x-pad'} or kv['x-note'].value != NOTE \
            or not is_token(kv['x-mail'].raw_value.decode(), 's', kid) \
            or not re.fullmatch(re.escape(PAD) + TOKEN, kv['x-pad'].value) \
            or not h.end_of_stream:
        xp.fail('%s: e-mail addresses not tokens, or fields changed: %r' % (what, h))


def start_grpc(ctx, req_mode, resp_mode=MODE.NONE, path='/shop.v1.Orders/Create'):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', path),
        (':method', 'POST'), ('content-type', 'application/grpc'), ('te', 'trailers')]),
        protocol_config=pcfg(req_mode, resp_mode)))
    r = expect(c, 'request_headers')
    return c, request_id(mutation(r.request_headers.response.header_mutation)[0])


def check_frames(data, n, kid, what):
    """|data| is |n| whole gRPC frames, each a valid message with tokens."""
    got = unframe(data, what)
    if len(got) != n:
        xp.fail('%s: %d frames back, %d sent' % (what, len(got), n))
    for i, g in enumerate(got):
        check_app_msg(g, kid, '%s frame %d' % (what, i))


def end_grpc(c, rid, sides=('request',)):
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK
    if sides:
        EXPECT[rid] = {('body', '%s.body:shop/detector/email' % s): C_EMAIL for s in sides}
        EXPECT[rid][('tenant', 'route')] = ('acme', 'default')


def body_of(r, kind, sent):
    """What the data plane passes on for a body reply of |kind|."""
    bm = getattr(r, kind).response.body_mutation
    which = bm.WhichOneof('mutation')
    return {'body': bm.body, 'clear_body': b'', None: sent}[which]


@scenario
def grpc_body_buffered(ctx):
    kid = ctx['kid']['acme']
    c, rid = start_grpc(ctx, MODE.BUFFERED, MODE.BUFFERED)
    m = app_msg()
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
        body=frame(m) + frame(m), end_of_stream=True)))
    r = expect(c, 'request_body')
    check_frames(body_of(r, 'request_body', None), 2, kid, 'BUFFERED request')
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, [
        (':status', '200'), ('content-type', 'application/grpc')])))
    expect(c, 'response_headers')
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=frame(m))))
    r = expect(c, 'response_body')
    check_frames(body_of(r, 'response_body', None), 1, kid, 'BUFFERED response')
    end_grpc(c, rid, ('request', 'response'))


@scenario
def grpc_body_streamed_split_frames(ctx):
    """STREAMED: a chunk ends inside a frame; its reply carries the whole
    frames, the rest comes with the next chunk's reply."""
    kid = ctx['kid']['acme']
    c, rid = start_grpc(ctx, MODE.STREAMED)
    m = app_msg()
    data = frame(m) + frame(m)
    cut = [0, len(frame(m)) + 7, len(data) - 3, len(data)]
    out = b''
    for i in range(3):
        part = data[cut[i]:cut[i + 1]]
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=part, end_of_stream=i == 2)))
        r = expect(c, 'request_body')
        got = body_of(r, 'request_body', part)
        if i == 1 and got:
            xp.fail('STREAMED: a chunk inside a frame was passed on: %r' % got[:32])
        out += got
    check_frames(out, 2, kid, 'STREAMED request')
    end_grpc(c, rid)


@scenario
def grpc_body_full_duplex_split_frames(ctx):
    kid = ctx['kid']['acme']
    c, rid = start_grpc(ctx, MODE.FULL_DUPLEX_STREAMED)
    m = app_msg()
    data = frame(m) + frame(m) + frame(m)
    out = full_duplex(c, [data[:9], data[9:len(data) - 20], data[len(data) - 20:]])
    check_frames(out, 3, kid, 'FULL_DUPLEX request')
    end_grpc(c, rid)


@scenario
def grpc_body_mode(ctx):
    """GRPC body mode (gRPC clients' ext_proc, gRFC A93): one de-framed
    message per body request, one streamed_response per message; the
    half-close without a message is answered as one."""
    kid = ctx['kid']['acme']
    c, rid = start_grpc(ctx, MODE.GRPC, MODE.GRPC)
    m = app_msg()
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=m)))
    sr = expect(c, 'request_body').request_body.response.body_mutation.streamed_response
    if sr.end_of_stream or sr.end_of_stream_without_message:
        xp.fail('GRPC mode: the stream was ended early: %r' % sr)
    check_app_msg(sr.body, kid, 'GRPC mode request message')
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
        end_of_stream=True, end_of_stream_without_message=True)))
    sr = expect(c, 'request_body').request_body.response.body_mutation.streamed_response
    if not (sr.end_of_stream and sr.end_of_stream_without_message) or sr.body:
        xp.fail('GRPC mode: the half-close without a message came back as %r' % sr)
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, [
        (':status', '200'), ('content-type', 'application/grpc')])))
    expect(c, 'response_headers')
    c.send(EP.ProcessingRequest(response_body=EP.HttpBody(body=m)))
    sr = expect(c, 'response_body').response_body.response.body_mutation.streamed_response
    check_app_msg(sr.body, kid, 'GRPC mode response message')
    c.send(EP.ProcessingRequest(response_trailers=EP.HttpTrailers(
        trailers=xp.headers(pb, [('grpc-status', '0')]).headers)))
    expect(c, 'response_trailers')
    end_grpc(c, rid, ('request', 'response'))


def s_field(num, data):
    """A length-delimited protobuf field (wire format by hand)."""
    n, v = len(data), b''
    while True:
        v += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            break
    return bytes([num << 3 | 2]) + v + data


def send_chunks(c, parts, kind='request_body'):
    """Sends |parts| as body messages; returns what the data plane passes
    on (the replies' bodies, or each chunk as sent when kept)."""
    out = b''
    for i, part in enumerate(parts):
        c.send(EP.ProcessingRequest(**{kind: EP.HttpBody(body=part, end_of_stream=i == len(parts) - 1)}))
        out += body_of(expect(c, kind), kind, part)
    return out


@scenario
def protobuf_ambiguous_text_in_place(ctx):
    """A string that also parses as fields ("Bearer " + 96 characters: 'B'
    is field 8 of length 'e', 101) is neither read as a message nor
    tokenized: its hits become stars in place, so it stays valid as text
    and as a message, and the token is not passed on (gRPC frame,
    BUFFERED)."""
    tok = 'abcdcEfGh1JkLmN0pQrStUvWxYz234567890aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefghijklmnopqrstuvwx'
    c, rid = start_grpc(ctx, MODE.BUFFERED)
    m = s_field(1, ('Bearer ' + tok).encode())
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=frame(m), end_of_stream=True)))
    (got,) = unframe(body_of(expect(c, 'request_body'), 'request_body', frame(m)), 'ambiguous')
    if len(got) != len(m) or got[:2] != m[:2] or tok.encode()[:20] in got or b'*' not in got:
        xp.fail('text that also reads as a message: %r' % got[:40])
    end_grpc(c, rid, ())


@scenario
def protobuf_streamed_message(ctx):
    """STREAMED application/x-protobuf (one message, no frames): held until
    the body ends, then answered whole -- so an address cut by a chunk
    boundary is sealed, and a message without secrets comes back as it
    was (each chunk read alone destroyed both)."""
    kid = ctx['kid']['acme']
    for text, secret in ((b'contact ' + C_EMAIL.encode(), True),
                         (b'hello world, nothing secret here', False)):
        c = xp.Call(ctx['ch'], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
            (':authority', 'shop.acme.test'), (':path', '/m'), (':method', 'POST'),
            ('content-type', 'application/x-protobuf')]), protocol_config=pcfg(MODE.STREAMED)))
        rid = request_id(mutation(expect(c, 'request_headers').request_headers.response.header_mutation)[0])
        m = s_field(1, text)
        out = send_chunks(c, [m[:10], m[10:20], m[20:]])
        h = EP.HttpBody.FromString(out)  # field 1 is HttpBody.body: bytes
        if secret:
            if C_EMAIL.encode() in out or not re.fullmatch(b'contact ' + TOKEN.encode(), h.body):
                xp.fail('STREAMED message: address not a token: %r' % out)
            EXPECT[rid] = {('body', 'request.body:shop/detector/email'): C_EMAIL,
                           ('tenant', 'route'): ('acme', 'default')}
        elif out != m:
            xp.fail('STREAMED message without secrets changed: %r' % out)
        c.half_close()
        assert c.finish()[0] == grpc.StatusCode.OK
    assert kid


@scenario
def grpc_frame_continued_unread(ctx):
    """Bytes that continue a frame passed on unfinished are never read as
    frames: a frame over the 1 MiB hold cut by STREAMED chunks, and a gRPC
    body streamed by a data plane that announced no mode (no holding):
    the rest is unscanned, no plaintext passes, lengths unchanged."""
    inner = b'\0\0\0\0\x09ann@ex.co'   # reads as a frame of 9 bytes: field 12, fixed64
    big = s_field(2, b'x' * (1 << 20) + inner + b'y' * 100)
    data = frame(big)
    cut = 5 + 4 + (1 << 20)
    c, rid = start_grpc(ctx, MODE.STREAMED)
    out = send_chunks(c, [data[:cut], data[cut:]])
    if b'ann@ex.co' in out or len(out) != len(data):
        xp.fail('a frame over the hold cap: %r' % out[cut - 8:cut + 24])
    end_grpc(c, rid, ())
    small = frame(s_field(2, inner))
    c, rid = start_grpc(ctx, MODE.NONE)  # no protocol_config body mode
    out = send_chunks(c, [small[:7], small[7:]])
    if b'ann@ex.co' in out or len(out) != len(small):
        xp.fail('a chunk inside a frame (mode not announced): %r' % out)
    end_grpc(c, rid, ())


CUT_PATH = '/shop.v1.Orders/Cut'


@scenario
def grpc_chunks_unheld_guarded(ctx):
    """A gRPC body a data plane streams though it announced no body mode
    (no holding: each chunk is decided as it comes) cut in two at every
    offset of a string holding a card and a bearer token: the field cut
    at a chunk's end and what continues it at the next one's start are
    guarded (their runs starred in place), so no digit group of the card
    and no part of the token passes (the card's halves did: the
    detectors saw each alone)."""
    tok = 'kq7' + C['bearer'][-9:]
    msg = s_field(1, b'hello') + s_field(3, b'pay 4549 4173 4903 2462 Bearer ' +
                                         tok.encode() + b' thanks')
    data = frame(msg)
    leaks = []
    for cut in range(8, len(data) - 1):
        c, rid = start_grpc(ctx, MODE.NONE, path=CUT_PATH)
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=data[:cut])))
        r = expect_any(c)
        if r.WhichOneof('response') == 'immediate_response':
            c.half_close()
            c.finish()
            continue  # the card was seen whole: denied, nothing passes
        out = body_of(r, 'request_body', data[:cut])
        c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=data[cut:], end_of_stream=True)))
        r = expect_any(c)
        if r.WhichOneof('response') == 'request_body':
            out += body_of(r, 'request_body', data[cut:])
        c.half_close()
        c.finish()
        if len(out) != len(data) and r.WhichOneof('response') == 'request_body':
            leaks.append((cut, 'length', out))
        for g in (b'4549', b'4173', b'4903', b'2462', tok[:4].encode(), tok[-4:].encode()):
            if g in out:
                leaks.append((cut, g, out))
                break
    if leaks:
        xp.fail('%d cuts let part of the card or token through, e.g. %r' % (len(leaks), leaks[0]))


@scenario
def card_in_url_denied(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'shop.acme.test'), (':path', '/pay?card=%s&k=%s' % (CARD, C['card'])),
        (':method', 'GET'), ('authorization', 'Bearer ' + C['auth'])], eos=True)))
    r = expect(c, 'immediate_response')
    im = r.immediate_response
    if im.status.code != 451 or im.body != b'refused by sealtap policy\n' or \
            im.details != 'sealtap_policy_denied':
        xp.fail('immediate response is not the policy\'s: %r' % im)
    raw = r.SerializeToString()
    if b'4111' in raw or C['card'].encode() in raw or C['auth'].encode() in raw:
        xp.fail('request data echoed in the immediate response')
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, [(':status', '200')])))
    c.none_within(0.3)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def card_in_body_denied(ctx):
    c = start_notes(ctx, 'text/plain')
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(
        body=b'pay with ' + CARD2.encode() + b' please', end_of_stream=True)))
    r = expect(c, 'immediate_response')
    if r.immediate_response.status.code != 451 or b'5500' in r.SerializeToString():
        xp.fail('card in a body: %r' % r)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def json_card_at_body_cut(ctx):
    """A JSON body longer than limits.body_bytes (64 KiB) whose cut falls
    inside a card number only the card detector finds: the card goes
    wholly to the unscanned rest (redacted), none of its digits passes
    (its first twelve did, the detector saw only them)."""
    c = start_notes(ctx, 'application/json')
    card = CARD2.encode()
    head = b'{"pad": "'
    mid = b'", "note": "pay with '
    pad = 65536 - 12 - len(head) - len(mid)   # the cut after 12 of the card
    body = head + b'a' * pad + mid + card + b' please"}'
    c.send(EP.ProcessingRequest(request_body=EP.HttpBody(body=body, end_of_stream=True)))
    r = expect(c, 'request_body')
    nb = r.request_body.response.body_mutation.body
    if not nb.startswith(head + b'a' * pad + mid) or CARD2[:4].encode() in nb:
        xp.fail('card at the body_bytes cut: %r' % nb[-80:])
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def mode_override_only_where_needed(ctx):
    for auth, path, want in (('shop.acme.test', '/static/app.js', False),
                             ('shop.acme.test', '/cart', True),
                             ('api.globex.test', '/v1/x', True)):
        c = xp.Call(ctx['ch'], pb)
        c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
            (':authority', auth), (':path', path), (':method', 'GET')], eos=True),
            protocol_config=pcfg()))
        r = expect(c, 'request_headers')
        if r.HasField('mode_override') != want:
            xp.fail('%s%s: mode_override %s, expected %s' % (auth, path,
                    r.HasField('mode_override'), want))
        c.half_close()
        assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def second_tenant(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'api.globex.test'), (':path', '/v1/ledger'),
        ('x-secret', C['globex'])], eos=True)))
    r = expect(c, 'request_headers')
    sets, _ = mutation(r.request_headers.response.header_mutation)
    if not is_token(sets['x-secret'][0][0], 'g', ctx['kid']['globex']):
        xp.fail('globex route not sealed under globex\'s key: %r' % sets)
    EXPECT[request_id(sets)] = {('request.headers', 'x-secret'): C['globex'],
                                ('tenant', 'route'): ('globex', 'globex-api')}
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


@scenario
def observability_deny_keeps_recording(ctx):
    """A deny in observability mode is not answered and does not stop
    the exchange: its later messages are recorded (check_records)."""
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'obs.acme.test'), (':path', '/pay?card=' + CARD),
        (':method', 'GET')], eos=True), observability_mode=True))
    c.send(EP.ProcessingRequest(response_headers=xp.headers(pb, [
        (':status', '200'), ('x-obs-after', 'yes')], eos=True), observability_mode=True))
    c.none_within(0.3)
    c.cancel()
    c.finish()


@scenario
def tenant_without_key_fails_closed(ctx):
    c = xp.Call(ctx['ch'], pb)
    c.send(EP.ProcessingRequest(request_headers=xp.headers(pb, [
        (':authority', 'nokey.test'), (':path', '/'),
        ('authorization', 'Bearer ' + C['nokey']),
        ('cookie', 'sid=%s; theme=dark' % C['nokey'])], eos=True)))
    r = expect(c, 'request_headers')
    sets, removed = mutation(r.request_headers.response.header_mutation)
    if removed != ['authorization']:
        xp.fail('whole value without a key not removed: %r' % removed)
    if sets.get('cookie', [('', 0)])[0][0] != 'sid=%s; theme=dark' % ('*' * len(C['nokey'])):
        xp.fail('cookie part without a key not starred: %r' % sets)
    c.half_close()
    assert c.finish()[0] == grpc.StatusCode.OK


# ---------------------------------------------------------------------------

def check_records(srv, recs, failures):
    by_id = {r['id']: r for r in recs}
    obs = [r for r in recs if r.get('request', {}).get('authority') == 'obs.acme.test']
    if len(obs) != 1 or not obs[0]['extproc'].get('denied') or \
            ['x-obs-after', 'yes'] not in obs[0].get('response', {}).get('headers', []):
        print('FAIL: observability exchange after a deny not recorded whole: %r' % obs)
        failures += 1
    for rid, want in EXPECT.items():
        r = by_id.get(rid)
        if not r:
            print('FAIL: no record %s' % rid)
            failures += 1
            continue
        if (r.get('tenant'), r.get('route')) != want[('tenant', 'route')]:
            print('FAIL: record %s: tenant/route %r' % (rid, (r.get('tenant'), r.get('route'))))
            failures += 1
    a = by_id.get(srv.main_rid)
    if not a:
        print('FAIL: the first scenario\'s record is missing')
        return failures + 1
    rules = {(s['rule'], s['action']) for s in a['sealed']}
    for want in (('builtin/header/authorization', 'seal'), ('shop/header/x-secret', 'seal'),
                 ('shop/cookie/sid', 'tokenize'), ('shop/header/x-internal', 'redact'),
                 ('shop/query/token', 'seal'), ('shop/header/x-user', 'tokenize')):
        if want not in rules:
            print('FAIL: record lacks the rule %r (has %r)' % (want, sorted(rules)))
            failures += 1
    wheres = [f['where'] for f in a['request'].get('body_findings', [])]
    if 'request.body:shop/json/$.ssn' not in wheres:
        print('FAIL: no body finding for $.ssn: %r' % wheres)
        failures += 1
    # the tokens the body mutation carried are the ones in the record
    values = [f['value'] for f in a['request'].get('body_findings', [])]
    if sorted(values) != sorted(EXPECT[a['id']][('tokens',)]):
        print('FAIL: body tokens in the record differ from the mutation\'s')
        failures += 1
    hdr = dict((h[0], h[1]) for h in a['request']['headers'])
    if not isinstance(hdr.get('x-internal'), dict) or 'redacted' not in hdr['x-internal']:
        print('FAIL: removed header not recorded as redacted: %r' % hdr.get('x-internal'))
        failures += 1
    # body modes: asked for with mode_override in the first scenario, as
    # the data plane announced them in the gRPC ones
    ep = a['extproc']
    if (ep.get('request_body_mode'), ep.get('response_body_mode'), ep.get('mode_override')) != \
            ('BUFFERED', 'BUFFERED', True):
        print('FAIL: record of an overridden exchange: %r' % ep)
        failures += 1
    ign = [by_id.get(rid) for rid in IGNORED_RIDS]
    if [(r['extproc'].get('request_body_mode'), r['extproc'].get('response_body_mode'),
         r['extproc'].get('mode_override'), 'mode_override_ignored' in r.get('anomalies', []))
        for r in ign if r] != [('FULL_DUPLEX_STREAMED', 'NONE', False, True),
                               ('STREAMED', 'NONE', False, True)]:
        print('FAIL: records of exchanges whose override was not sent: %r' %
              [(r or {}).get('extproc') for r in ign])
        failures += 1
    enc = [by_id.get(rid) for rid in ENCODED_RIDS]
    if len(enc) != 2 or not all(r and 'body_encoded' in r.get('anomalies', []) and
                                [f['where'] for f in r['request'].get('body_findings', [])] ==
                                ['request.body:limit/compressed'] for r in enc):
        print('FAIL: records of compressed bodies: %r' % enc)
        failures += 1
    g = [r['extproc'] for r in recs if r['extproc'].get('request_body_mode') == 'GRPC']
    if len(g) != 1 or g[0].get('mode_override') is not False:
        print('FAIL: record of the GRPC-mode exchange: %r' % g)
        failures += 1
    # the two answered denials (the observability one is checked above)
    denied = [r for r in recs if r['extproc'].get('denied') and
              not r['extproc'].get('observability') and
              r.get('request', {}).get('path') != CUT_PATH]
    if len(denied) != 2 or any(r['extproc'].get('deny_status') != 451 or
                               r['extproc'].get('deny_rule') != 'shop/detector/card'
                               for r in denied):
        print('FAIL: denied records: %r' % [r['extproc'] for r in denied])
        failures += 1
    if failures == 0:
        print('ok: %d records with tenant, route, rules, body findings and the '
              'tokens the mutations carried' % len(recs))
    return failures


def opened_values(lines):
    """{record id: {(section, name): value}} from `sealtap open` output."""
    out = {}
    for line in lines:
        r = json.loads(line)
        d = out.setdefault(r['id'], {})
        for side in ('request', 'response'):
            for lst in ('headers', 'trailers'):
                for n, v in r[side][lst]:
                    d.setdefault(('%s.%s' % (side, lst), n), v)
            for f in r[side].get('body_findings', []):
                d[('body', f['where'])] = f['value']
    return out


def check_open(srv, keys_cfg, env, failures):
    files = sorted(p for p in os.listdir(srv.records_dir) if p.endswith('.ndjson'))
    p = subprocess.run([xp.BIN, 'open', '-c', keys_cfg] +
                       [os.path.join(srv.records_dir, f) for f in files],
                       capture_output=True, timeout=60, env=env)
    if p.returncode != 0:
        print('FAIL: sealtap open exited %d: %s' % (p.returncode, p.stderr.decode()[-500:]))
        return failures + 1
    got = opened_values(p.stdout.decode().splitlines())
    bad = n = 0
    for rid, want in EXPECT.items():
        for k, v in want.items():
            if k[0] in ('tokens', 'tenant'):
                continue
            n += 1
            if got.get(rid, {}).get(k) != v:
                print('FAIL: open %s %s: %r, planted %r' % (rid, k, got.get(rid, {}).get(k), v))
                bad += 1
    if not bad:
        print('ok: sealtap open recovers every planted value exactly (%d values)' % n)
    return failures + bad


def check_core(srv, failures):
    """The server, idle after every scenario with the client's connection
    open, dumped by gcore: no canary anywhere in the core, neither in
    memory nor in the registers of its threads (idle event loops clear
    theirs after every callback)."""
    got = srv.gcore()
    if got is None:
        print('SKIP core: gdb (gcore) not installed, or an ASan build')
        return failures
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..',
                                    'tools'))
    from coresearch import Core
    core = Core(*got)
    hits = {c: core.places(c.encode()) for c in ALL_CANARIES}
    hits = {c: w for c, w in hits.items() if w}
    size = core.size
    core.close()
    os.unlink(got[0])
    if hits:
        for c, where in sorted(hits.items()):
            print('  %s: %s' % (c, '; '.join(where)))
        print('FAIL: core of the server holds %d canaries' % len(hits))
        return failures + 1
    print('ok: core of the server (%d MB): no canary' % (size >> 20))
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--workdir', required=True)
    ap.add_argument('--keys-yaml', required=True)
    ap.add_argument('--only', default='')
    args = ap.parse_args()
    keys_yaml = open(args.keys_yaml).read()
    env = dict(os.environ)  # SOFTHSM2_CONF names the test's token
    # the active DEK of each tenant: its id is in every token
    failures = 0
    kid = {}
    store = re.search(r'store: "?([^"\n]+)', keys_yaml)
    try:
        for t in json.load(open(store.group(1)))['tenants']:
            kid[t['name']] = [d['id'] for d in t['deks'] if d['state'] == 'active'][0]
    except (OSError, ValueError, AttributeError, IndexError, KeyError) as e:
        print('FAIL: no key store with active DEKs: %s' % e)
        failures += 1
    srv = xp.Server(args.workdir, 'policy', threads=2, policy=POLICY,
                    keys_yaml=keys_yaml, env=env)
    ch = grpc.insecure_channel('127.0.0.1:%d' % srv.port)
    ctx = {'ch': ch, 'kid': kid}
    t0 = time.time()
    for fn in results:
        if args.only and args.only not in fn.__name__:
            continue
        try:
            fn(ctx)
            print('ok: %s' % fn.__name__)
        except Exception as e:  # report and go on
            failures += 1
            print('FAIL: %s: %s' % (fn.__name__, e))
        if not srv.alive():
            print('FAIL: server died after %s' % fn.__name__)
            failures += 1
            break
    if not args.only:
        failures = check_core(srv, failures)
    ch.close()
    ctr = srv.stop()
    if not args.only:
        for k, v in {'denials': 2, 'immediate_responses': 2, 'mode_overrides': 4,
                     'seal_sealed': 10, 'seal_tokenized': 5, 'seal_failed_closed': 2,
                     'mutations_removed': 2, 'mutations_body': 4, 'records': 10}.items():
            if ctr.get(k, 0) < v:
                print('FAIL: counter %s = %s, expected >= %d' % (k, ctr.get(k, 0), v))
                failures += 1
        if ctr.get('records_dropped') or ctr.get('seal_errors'):
            print('FAIL: records dropped or sealing errors: %r' % ctr)
            failures += 1
        recs = srv.records()
        srv.main_rid = ctx.get('main_rid')
        failures = check_records(srv, recs, failures)
        failures = check_open(srv, args.keys_yaml, env, failures)
    blob = srv.all_output() + b'\n'.join(ALL_REPLIES)
    leaked = [c for c in ALL_CANARIES if c.encode() in blob]
    if leaked:
        print('FAIL: canaries in plain: %r' % leaked)
        failures += 1
    else:
        print('ok: no canary in records, logs, counters or %d replies' % len(ALL_REPLIES))
    print('policy: %d scenario(s), %d failure(s) in %.1fs' %
          (len(results), failures, time.time() - t0))
    xp.cleanup_stubs()
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
