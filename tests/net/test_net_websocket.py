"""SIP over WebSocket (RFC 7118): handshake detection, RFC 6455 framing, errors, and the
decoder's TCP flows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbuild import (
    ACK,
    DST4,
    INVITE,
    OK,
    PSH,
    SRC4,
    SYN,
    WS_ACCEPT,
    WS_UPGRADE,
    eth_tcp4,
    ws_frame,
)
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits
from sip_otel.net.types import PROTO_TCP, SipPayload
from sip_otel.net.websocket import MAX_HANDSHAKE_BYTES, WebSocketFramer, is_sip_upgrade

KEY = b"\x37\xfa\x21\x3d"
LIMIT = 4096


def framer(response: bool = False) -> tuple[WebSocketFramer, Reasons]:
    reasons = Reasons()
    return WebSocketFramer(reasons, LIMIT, response=response), reasons


def feed_all(f: WebSocketFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += f.feed(chunk)
    return out


# -- handshake detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "want"),
    [
        (WS_UPGRADE, True),
        (WS_UPGRADE.replace(b"Protocol: sip", b"Protocol: chat, SIP"), True),
        (WS_UPGRADE.lower().replace(b"get /ws http", b"GET /ws HTTP"), True),  # header case
        (WS_UPGRADE.replace(b"Protocol: sip", b"Protocol: chat"), False),
        (WS_UPGRADE.replace(b"Protocol: sip", b"Protocol: sipx"), False),
        (WS_UPGRADE.replace(b"Sec-WebSocket-Protocol: sip\r\n", b""), False),
        (WS_UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"), False),
        (WS_UPGRADE.replace(b"GET ", b"POST "), False),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n",
            False,
        ),  # the headers are in the body, not the header block
    ],
)
def test_is_sip_upgrade(request_bytes: bytes, want: bool) -> None:
    assert is_sip_upgrade(request_bytes, 0, len(request_bytes)) is want


# -- framing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        [ws_frame(INVITE, key=KEY)],  # masked text, 16-bit length
        [ws_frame(INVITE)],  # unmasked
        [ws_frame(INVITE, opcode=2, key=KEY)],  # binary
        [ws_frame(INVITE, length_bytes=8)],  # 64-bit length
        [ws_frame(INVITE[:60], fin=False, key=KEY), ws_frame(INVITE[60:], opcode=0, key=KEY)],
        [
            ws_frame(INVITE[:10], fin=False),
            ws_frame(b"ping", opcode=9),  # control frames may come between fragments
            ws_frame(INVITE[10:100], opcode=0, fin=False),
            ws_frame(b"", opcode=10),
            ws_frame(INVITE[100:], opcode=0),
        ],
    ],
    ids=["masked", "unmasked", "binary", "len64", "fragmented", "fragmented+control"],
)
def test_one_message_per_data_message(frames: list[bytes]) -> None:
    f, reasons = framer()
    stream = WS_UPGRADE + b"".join(frames) + ws_frame(OK, key=KEY)[:3]
    assert feed_all(f, [stream]) == [INVITE]
    assert reasons.counts == {}


def test_small_frame_seven_bit_length() -> None:
    f, reasons = framer()
    msg = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"
    assert feed_all(f, [WS_UPGRADE, ws_frame(msg, key=KEY), ws_frame(msg)]) == [msg, msg]
    assert reasons.counts == {}


def test_byte_at_a_time() -> None:
    f, reasons = framer()
    stream = (
        WS_UPGRADE
        + ws_frame(INVITE, key=KEY)
        + ws_frame(OK[:50], fin=False)
        + ws_frame(OK[50:], opcode=0, key=KEY)
    )
    assert feed_all(f, [stream[i : i + 1] for i in range(len(stream))]) == [INVITE, OK]
    assert reasons.counts == {}


def test_server_side_needs_101() -> None:
    f, reasons = framer(response=True)
    assert feed_all(f, [WS_ACCEPT + ws_frame(OK)]) == [OK]
    assert reasons.counts == {}
    f, reasons = framer(response=True)
    refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    assert feed_all(f, [refused, ws_frame(OK)]) == []
    assert reasons.counts == {"skipped.websocket_refused": 1}


def test_control_frames_and_empty_messages_yield_nothing() -> None:
    f, reasons = framer()
    frames = (
        ws_frame(b"", opcode=9)
        + ws_frame(b"x", opcode=10)
        + ws_frame(b"")
        + ws_frame(b"\x03\xe8", opcode=8)
    )
    assert feed_all(f, [WS_UPGRADE, frames]) == []
    assert reasons.counts == {}


def test_empty_masked_frames_before_any_data() -> None:
    # The first data frames of the stream are empty and masked: the message buffer has never
    # been allocated, and the unmasking must not form NULL + 0 (undefined behaviour, fatal in
    # the fuzz build; tests/fuzz/regressions replays it there).
    f, reasons = framer()
    frames = (
        ws_frame(b"", key=KEY)
        + ws_frame(b"", key=KEY, fin=False)
        + ws_frame(b"", opcode=0, key=KEY, fin=False)
        + ws_frame(INVITE, opcode=0, key=KEY)
    )
    assert feed_all(f, [WS_UPGRADE, frames]) == [INVITE]
    assert reasons.counts == {}


@pytest.mark.parametrize(
    ("frame", "slug"),
    [
        (ws_frame(INVITE, opcode=0), "net.bad_websocket_frame"),  # continuation, no message
        (ws_frame(INVITE, opcode=3), "net.bad_websocket_frame"),  # reserved data opcode
        (ws_frame(b"", opcode=11), "net.bad_websocket_frame"),  # reserved control opcode
        (ws_frame(b"x", opcode=9, fin=False), "net.bad_websocket_frame"),  # fragmented control
        (ws_frame(b"x" * 126, opcode=9), "net.bad_websocket_frame"),  # control too long
        (ws_frame(INVITE, rsv=2), "net.bad_websocket_frame"),  # RSV2, no extension
        (ws_frame(INVITE, rsv=4), "skipped.websocket_compressed"),  # RSV1: permessage-deflate
        (b"\x81\x7f\x80" + b"\0" * 7, "net.bad_websocket_frame"),  # 64-bit length MSB set
        (ws_frame(b"a", fin=False) + ws_frame(b"b"), "net.bad_websocket_frame"),  # no continuation
    ],
)
def test_bad_frames_kill_the_stream(frame: bytes, slug: str) -> None:
    f, reasons = framer()
    assert feed_all(f, [WS_UPGRADE, frame, ws_frame(INVITE)]) == []
    assert reasons.counts == {slug: 1}
    assert feed_all(f, [ws_frame(INVITE)]) == []  # the rest of the flow is ignored
    f.close()
    assert reasons.counts == {slug: 1}


def test_messages_before_a_bad_frame_are_kept() -> None:
    f, reasons = framer()
    assert feed_all(f, [WS_UPGRADE + ws_frame(INVITE) + ws_frame(b"", opcode=0)]) == [INVITE]
    assert reasons.counts == {"net.bad_websocket_frame": 1}


def test_too_large_message_is_skipped_keeping_the_framing() -> None:
    f, reasons = framer()
    big = [
        ws_frame(b"x" * 3000, fin=False),
        ws_frame(b"y" * 3000, opcode=0, fin=False),
        ws_frame(b"z" * 10, opcode=0),
    ]
    stream = WS_UPGRADE + b"".join(big) + ws_frame(INVITE, key=KEY)
    assert feed_all(f, [stream[i : i + 700] for i in range(0, len(stream), 700)]) == [INVITE]
    assert reasons.counts == {"sip_framing.too_large": 1}


def test_single_huge_frame_is_not_buffered() -> None:
    f, reasons = framer()
    assert feed_all(f, [WS_UPGRADE, ws_frame(b"\0" * 100_000, length_bytes=8)[:5000]]) == []
    assert f.pending() == 0
    assert reasons.counts == {"sip_framing.too_large": 1}


def test_handshake_too_long() -> None:
    f, reasons = framer()
    assert feed_all(f, [b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HANDSHAKE_BYTES // 6)]) == []
    assert reasons.counts == {"net.bad_websocket_handshake": 1}


@pytest.mark.parametrize(
    "chunks",
    [
        [WS_UPGRADE[:20]],
        [WS_UPGRADE, ws_frame(INVITE)[:30]],
        [WS_UPGRADE, ws_frame(b"a", fin=False)],
    ],
    ids=["handshake", "frame", "message"],
)
def test_close_counts_partial_data(chunks: list[bytes]) -> None:
    f, reasons = framer()
    assert feed_all(f, chunks) == []
    f.close()
    assert reasons.counts == {"sip_framing.incomplete": 1}


def test_reset_after_a_gap_ignores_the_rest() -> None:
    f, reasons = framer()
    feed_all(f, [WS_UPGRADE, ws_frame(INVITE)[:40]])
    f.reset()
    assert feed_all(f, [ws_frame(INVITE)]) == []
    f.close()
    assert reasons.counts == {}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8))
def test_random_frames_never_raise(chunks: list[bytes]) -> None:
    f, _ = framer()
    f.feed(WS_UPGRADE)
    for chunk in chunks:
        assert isinstance(f.feed(chunk), list)
    f.close()


# -- decoder integration ------------------------------------------------------------------------


def _connection(port: int, split: bool = False) -> list[bytes]:
    """Client 40000 -> server ``port``: handshake, a masked INVITE (optionally split over two
    segments), an unmasked 200 back."""
    c_isn, s_isn = 1000, 5000
    invite = ws_frame(INVITE, key=KEY)
    c = c_isn + 1 + len(WS_UPGRADE)

    def client(payload: bytes, seq: int, flags: int = ACK | PSH) -> bytes:
        return eth_tcp4(payload, seq, flags, 40000, port, SRC4, DST4)

    def server(payload: bytes, seq: int, flags: int = ACK | PSH) -> bytes:
        return eth_tcp4(payload, seq, flags, port, 40000, DST4, SRC4)

    frames = [
        client(b"", c_isn, SYN),
        server(b"", s_isn, SYN | ACK),
        client(WS_UPGRADE, c_isn + 1),
        server(WS_ACCEPT, s_isn + 1),
    ]
    if split:
        frames += [client(invite[:3], c), client(invite[3:], c + 3)]
    else:
        frames.append(client(invite, c))
    frames.append(server(ws_frame(OK), s_isn + 1 + len(WS_ACCEPT)))
    return frames


def _decode(frames: list[bytes], **kwargs: object) -> tuple[list[SipPayload], dict[str, int]]:
    reasons = Reasons()
    dec = FrameDecoder(reasons, **kwargs)  # type: ignore[arg-type]
    out: list[SipPayload] = []
    for frame in frames:
        out += dec.feed(7, 1, frame)
    return out, reasons.counts


WANT = [
    SipPayload(7, PROTO_TCP, SRC4, 40000, DST4, 8080, INVITE),
    SipPayload(7, PROTO_TCP, DST4, 8080, SRC4, 40000, OK),
]


@pytest.mark.parametrize("split", [False, True])
def test_websocket_on_any_port_in_all_ports_mode(split: bool) -> None:
    out, counts = _decode(_connection(8080, split), all_ports=True)
    assert out == WANT
    assert counts == {"skipped.not_sip": 2}  # the SYN and SYN/ACK before the handshake


def test_websocket_on_a_sip_port_after_the_syn() -> None:
    out, counts = _decode(_connection(5060))
    assert [(p.src_port, p.dst_port, p.data) for p in out] == [
        (40000, 5060, INVITE),
        (5060, 40000, OK),
    ]
    assert counts == {}


def test_websocket_off_sip_ports_needs_all_ports() -> None:
    out, counts = _decode(_connection(8080))
    assert out == []
    assert counts == {"skipped.port": 6}


def test_plain_http_is_not_followed() -> None:
    frames = _connection(8080)
    frames[2] = eth_tcp4(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1001, ACK | PSH, 40000, 8080)
    out, counts = _decode(frames[:3], all_ports=True)
    assert out == []
    assert counts == {"skipped.not_sip": 3}


def test_upgrade_in_a_one_flow_table_drops_the_segment() -> None:
    # Opening the server direction evicts the client direction at once (the pure-Python
    # decoder raised KeyError here): the segment is dropped, the table stays consistent.
    reasons = Reasons()
    dec = FrameDecoder(reasons, limits=NetLimits(max_tcp_flows=1))
    assert dec.feed(1, 1, eth_tcp4(WS_UPGRADE, 1)) == []
    assert dec.evictions == {"tcp_flows.full": 1}
    assert dec.table_sizes()["tcp_flows"] == 1
    assert reasons.counts == {}
