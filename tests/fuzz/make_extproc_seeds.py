#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_extproc_msg, fuzz_extproc_h2 and
fuzz_protobuf (tests/fuzz/seeds/extproc_*, protobuf; committed,
deterministic). Messages are built
with stubs generated from proto/ at run time; HTTP/2 bytes with python3-h2.

usage: tests/fuzz/make_extproc_seeds.py
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration', 'extproc'))
import xp  # noqa: E402
import h2.config  # noqa: E402
import h2.connection  # noqa: E402

pb = xp.stubs()
EP = pb.ep
M = pb.mode.ProcessingMode


def hdrs(pairs, eos=False):
    return xp.headers(pb, pairs, eos)


REQ = [(':path', '/api/x'), (':method', 'POST'), (':authority', 'a.example'),
       ('authorization', 'Bearer abc'), ('cookie', 'a=b'), ('cookie', 'c=d'),
       ('host', 'a.example'), ('x-envoy-foo', '1')]
RESP = [(':status', '200'), ('set-cookie', 's=1')]


def pc(a, b):
    return EP.ProtocolConfiguration(request_body_mode=a, response_body_mode=b)


def seq(*msgs):
    out = b''
    for m in msgs:
        b = m if isinstance(m, bytes) else m.SerializeToString()
        out += struct.pack('>H', len(b)) + b
    return out


msg_seeds = {
    'headers_only': seq(EP.ProcessingRequest(request_headers=hdrs(REQ, True), protocol_config=pc(0, 0)),
                        EP.ProcessingRequest(response_headers=hdrs(RESP, True))),
    'streamed': seq(EP.ProcessingRequest(request_headers=hdrs(REQ), protocol_config=pc(M.STREAMED, M.STREAMED)),
                    EP.ProcessingRequest(request_body=EP.HttpBody(body=b'{"password":"x"}')),
                    EP.ProcessingRequest(request_body=EP.HttpBody(body=b'Bearer t0k', end_of_stream=True)),
                    EP.ProcessingRequest(response_headers=hdrs(RESP)),
                    EP.ProcessingRequest(response_body=EP.HttpBody(body=b'ok', end_of_stream=True))),
    'full_duplex': seq(EP.ProcessingRequest(request_headers=hdrs(REQ), protocol_config=pc(M.FULL_DUPLEX_STREAMED, M.FULL_DUPLEX_STREAMED)),
                       EP.ProcessingRequest(request_body=EP.HttpBody(body=b'a' * 300)),
                       EP.ProcessingRequest(request_trailers=EP.HttpTrailers(trailers=hdrs([('x-api-key', 'k')]).headers)),
                       EP.ProcessingRequest(response_body=EP.HttpBody(body=b'z', end_of_stream=True)),
                       EP.ProcessingRequest(response_body=EP.HttpBody(body=b'late'))),
    'observability': seq(EP.ProcessingRequest(request_headers=hdrs(REQ), observability_mode=True),
                         EP.ProcessingRequest(request_body=EP.HttpBody(body=b'x'), observability_mode=True)),
    'deny': seq(EP.ProcessingRequest(request_headers=hdrs([(':path', '/admin/a')])),
                EP.ProcessingRequest(response_headers=hdrs(RESP))),
    'unknown_fields': seq(EP.ProcessingRequest(request_headers=hdrs(REQ)).SerializeToString()
                          + bytes([13 << 3 | 2, 2]) + b'hi'),
    'attributes': seq(EP.ProcessingRequest(
        request_headers=hdrs(REQ),
        attributes={'envoy.filters.http.ext_proc': pb.wkt.Struct(fields={
            'source.address': pb.wkt.Value(string_value='10.0.0.1:4444'),
            'destination.address': pb.wkt.Value(string_value='10.0.0.2:443')})})),
    'out_of_order': seq(EP.ProcessingRequest(request_trailers=EP.HttpTrailers()),
                        EP.ProcessingRequest(request_headers=hdrs(REQ))),
    # the policy decider: JSON bodies (paths, detectors, a number to quote),
    # content-length of a buffered body, a card in :path, cut text chunks
    'policy_json': seq(EP.ProcessingRequest(request_headers=hdrs(
        REQ + [('content-type', 'application/json'), ('content-length', '60'),
               (':path', '/pay?card=4111111111111111&token=t')]), protocol_config=pc(0, 0)),
        EP.ProcessingRequest(request_body=EP.HttpBody(
            body=b'{"password":"p","n":4111111111111111,"e":"a@b.co","d":{"x":[1]}}',
            end_of_stream=True)),
        EP.ProcessingRequest(response_headers=hdrs(RESP + [('content-type', 'application/json')])),
        EP.ProcessingRequest(response_body=EP.HttpBody(body=b'{"access_token":"t"}',
                                                       end_of_stream=True))),
    'policy_chunks': seq(EP.ProcessingRequest(request_headers=hdrs(
        REQ + [('content-type', 'text/plain')]), protocol_config=pc(M.STREAMED, M.NONE)),
        EP.ProcessingRequest(request_body=EP.HttpBody(body=b'card 4111 1111 ')),
        EP.ProcessingRequest(request_body=EP.HttpBody(body=b'1111 1111 end bob@')),
        EP.ProcessingRequest(request_body=EP.HttpBody(body=b'example.com', end_of_stream=True))),
}


def app_msg(mail=b'bob@example.com'):
    """An application message with an address three levels down, for the
    protobuf seeds (HttpHeaders > HeaderMap > HeaderValue)."""
    hv = pb.core.HeaderValue
    return EP.HttpHeaders(headers=pb.core.HeaderMap(headers=[
        hv(key='x-note', value='n' * 100), hv(key='x-mail', raw_value=mail),
        hv(key='x-pad', value='p' * 90 + ' ' + mail.decode())]),
        end_of_stream=True).SerializeToString()


def gframe(b, flags=0, declared=None):
    return struct.pack('>BI', flags, len(b) if declared is None else declared) + b


GRPC_REQ = REQ + [('content-type', 'application/grpc')]
APP = app_msg()
msg_seeds.update({
    # protobuf bodies: frames rewritten, STREAMED frames cut by chunks,
    # GRPC body mode with a half-close without a message
    'grpc_buffered': seq(EP.ProcessingRequest(request_headers=hdrs(GRPC_REQ), protocol_config=pc(M.BUFFERED, M.BUFFERED)),
                         EP.ProcessingRequest(request_body=EP.HttpBody(body=gframe(APP) + gframe(APP), end_of_stream=True)),
                         EP.ProcessingRequest(response_headers=hdrs(RESP + [('content-type', 'application/grpc')])),
                         EP.ProcessingRequest(response_body=EP.HttpBody(body=gframe(APP, 1)))),
    'grpc_streamed': seq(EP.ProcessingRequest(request_headers=hdrs(GRPC_REQ), protocol_config=pc(M.STREAMED, M.FULL_DUPLEX_STREAMED)),
                         EP.ProcessingRequest(request_body=EP.HttpBody(body=(gframe(APP) + gframe(APP))[:len(APP) + 12])),
                         EP.ProcessingRequest(request_body=EP.HttpBody(body=(gframe(APP) + gframe(APP))[len(APP) + 12:], end_of_stream=True)),
                         EP.ProcessingRequest(response_headers=hdrs(RESP + [('content-type', 'application/grpc')])),
                         EP.ProcessingRequest(response_body=EP.HttpBody(body=gframe(APP)[:30])),
                         EP.ProcessingRequest(response_trailers=EP.HttpTrailers())),
    'grpc_mode': seq(EP.ProcessingRequest(request_headers=hdrs(GRPC_REQ), protocol_config=pc(M.GRPC, M.GRPC)),
                     EP.ProcessingRequest(request_body=EP.HttpBody(body=APP)),
                     EP.ProcessingRequest(request_body=EP.HttpBody(body=APP, grpc_message_compressed=True)),
                     EP.ProcessingRequest(request_body=EP.HttpBody(end_of_stream=True, end_of_stream_without_message=True)),
                     EP.ProcessingRequest(response_body=EP.HttpBody(body=APP))),
})

# fuzz_protobuf: how (u8: 1 framed, 2 GRPC mode, 4 compressed, 8 response,
# >> 4 & 3 the framed codec, >> 6 the unreadable lead) then the body
pb_seeds = {
    'frames': bytes([1]) + gframe(APP) + gframe(APP),
    'frame_cut': bytes([1]) + gframe(APP, declared=len(APP) + 300),
    'frame_compressed': bytes([9]) + gframe(APP, 1),
    'message': bytes([0]) + APP,
    'grpc_mode': bytes([2]) + APP,
    'grpc_mode_compressed': bytes([6]) + APP,
    'response_card': bytes([9]) + gframe(EP.HttpBody(body=b'pay 4111111111111111').SerializeToString()),
    'ambiguous_text': bytes([0]) + b'\x1a\x0ehxhy@hxhx.hxhx',
    'malformed': bytes([1]) + gframe(b'hello bob@example.com'),
    # (how >> 4) & 3 picks the framed codec: 1 grpc+json, 2 grpc-web
    'grpc_json': bytes([0x11]) + gframe(b'{"password":"p","mail":"bob@example.com"}'),
    'grpc_mode_json': bytes([0x13]) + b'"pay 5105105105105100"',
    'grpc_web_trailers': bytes([0x21]) + gframe(APP) + gframe(b'grpc-status:0\r\n', 0x80),
}
os.makedirs(os.path.join(HERE, 'seeds', 'protobuf'), exist_ok=True)
for name, data in pb_seeds.items():
    with open(os.path.join(HERE, 'seeds', 'protobuf', name), 'wb') as f:
        f.write(data)

for name, data in msg_seeds.items():
    with open(os.path.join(HERE, 'seeds', 'extproc_msg', name), 'wb') as f:
        f.write(data)


def h2_bytes(calls):
    """Client bytes (preface included) of |calls|: (path, body, headers)."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    for path, body, extra in calls:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(':method', 'POST'), (':scheme', 'http'), (':path', path),
                             (':authority', 'x'), ('content-type', 'application/grpc'),
                             ('te', 'trailers')] + extra)
        c.send_data(sid, body, end_stream=True)
    return c.data_to_send()


def frame(b, flags=0):
    return struct.pack('>BI', flags, len(b)) + b


req = EP.ProcessingRequest(request_headers=hdrs(REQ), protocol_config=pc(1, 1)).SerializeToString()
body = EP.ProcessingRequest(request_body=EP.HttpBody(body=b'{"token":"t"}', end_of_stream=True)).SerializeToString()
h2_seeds = {
    'health': h2_bytes([('/grpc.health.v1.Health/Check', frame(b''), [])]),
    'process': h2_bytes([('/envoy.service.ext_proc.v3.ExternalProcessor/Process',
                          frame(req) + frame(body), [])]),
    'two_streams': h2_bytes([('/envoy.service.ext_proc.v3.ExternalProcessor/Process', frame(req), []),
                             ('/grpc.health.v1.Health/Watch', frame(b''), [('grpc-timeout', '10m')])]),
    'compressed': h2_bytes([('/envoy.service.ext_proc.v3.ExternalProcessor/Process',
                             frame(req, 1), [('grpc-encoding', 'gzip')])]),
}
# byte 0: bit 0 = prepend the preface (these already carry it: 0), the
# rest the read size
for name, data in h2_seeds.items():
    for piece in (0, 7):
        with open(os.path.join(HERE, 'seeds', 'extproc_h2', '%s_%d' % (name, piece)), 'wb') as f:
            f.write(bytes([piece << 1]) + data)
with open(os.path.join(HERE, 'seeds', 'extproc_h2', 'http1'), 'wb') as f:
    f.write(b'\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n')
xp.cleanup_stubs()
print('seeds written')
