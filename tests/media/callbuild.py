"""A call built by hand for the per-call media tests: SIP with SDP between a caller (A, From tag
``a1``) and a callee (B, tag ``b1``), RTP and RTCP frames. Plain struct code."""

from __future__ import annotations

import struct

from netbuild import ethernet, ipv4, udp
from sip_otel.net.types import Frame

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])
T0 = 1_700_000_000 * 10**9
S = 10**9
MS = 10**6


def frame(ts: int, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> Frame:
    return Frame(ts, 1, ethernet(ipv4(udp(payload, sport, dport), src=src, dst=dst)))


def sdp(addr: str, port: int, extra: str = "") -> str:
    return f"v=0\nc=IN IP4 {addr}\nm=audio {port} RTP/AVP 0\n{extra}"


def sip(
    start: str,
    *,
    call_id: str = "call-1",
    from_tag: str = "a1",
    to_tag: str = "",
    cseq: str = "1 INVITE",
    branch: str = "z9hG4bK1",
    body: str = "",
) -> bytes:
    data = body.replace("\n", "\r\n").encode()
    to = "<sip:b@x>" + (f";tag={to_tag}" if to_tag else "")
    ctype = "Content-Type: application/sdp\r\n" if data else ""
    head = (
        f"{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch={branch}\r\n"
        f"From: <sip:a@x>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\nContact: <sip:a@10.0.0.1>\r\n{ctype}Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def rtp(seq: int, ts: int, ssrc: int, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + b"\xd5" * 160


def _in_call(start: str, call_id: str, tx: int, **kw: str) -> bytes:
    """A message of the call ``call_id`` in its transaction ``tx`` (1 INVITE, 2 ACK, 3 BYE)."""
    return sip(start, call_id=call_id, branch=f"z9hG4bK-{call_id}-{tx}", **kw)


def call_setup(
    t: int, call_id: str = "call-1", a_port: int = 4000, b_port: int = 5000
) -> list[Frame]:
    """INVITE (offer: A's a_port) at t, 200 OK (answer: B's b_port) at t + 100 ms, ACK."""
    invite = _in_call("INVITE sip:b@x SIP/2.0", call_id, 1, body=sdp("10.0.0.1", a_port))
    ok = _in_call("SIP/2.0 200 OK", call_id, 1, to_tag="b1", body=sdp("10.0.0.2", b_port))
    ack = _in_call("ACK sip:b@x SIP/2.0", call_id, 2, to_tag="b1", cseq="1 ACK")
    return [
        frame(t, A, B, 5060, 5060, invite),
        frame(t + 100 * MS, B, A, 5060, 5060, ok),
        frame(t + 200 * MS, A, B, 5060, 5060, ack),
    ]


def call_setups(n: int, prefix: str) -> list[Frame]:
    """``n`` calls set up one a second from T0: call i is ``{prefix}{i}``, A's port 4000 + 10 i,
    B's 5000 + 10 i."""
    frames: list[Frame] = []
    for i in range(n):
        frames += call_setup(
            T0 + i * S, call_id=f"{prefix}{i}", a_port=4000 + 10 * i, b_port=5000 + 10 * i
        )
    return frames


def bye(t: int, call_id: str = "call-1") -> list[Frame]:
    """A's BYE at t, B's 200 OK at t + 100 ms."""
    req = _in_call("BYE sip:b@x SIP/2.0", call_id, 3, to_tag="b1", cseq="2 BYE")
    ok = _in_call("SIP/2.0 200 OK", call_id, 3, to_tag="b1", cseq="2 BYE")
    return [frame(t, A, B, 5060, 5060, req), frame(t + 100 * MS, B, A, 5060, 5060, ok)]
