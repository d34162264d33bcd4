"""Frame decoder cost per frame on synthetic frames (no file I/O).

    python benchmarks/bench_decoder.py [--frames 200000] [--repeat 3]

Cases: a SIP INVITE in one Ethernet/IPv4/UDP frame; an RTP frame skipped by the port filter;
one SIP message per in-order TCP segment; a SIP message split over three TCP segments; a UDP
SIP message in two IPv4 fragments. Prints the best of ``--repeat`` runs in microseconds per
frame.
"""

from __future__ import annotations

import argparse
import struct
import time

from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder

MSG = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-524287-1---77ba3fc4f5b04ac1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=9fxced76sl\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: 3848276298220188511@10.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 130\r\n"
    b"\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n"
    b"t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
ETH = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"


def ipv4(proto: int, payload: bytes, ident: int = 1, frag: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        frag,
        64,
        proto,
        0,
        b"\x0a\0\0\x01",
        b"\x0a\0\0\x02",
    )
    return header + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!HHIIHHHH", 40000, 5060, seq, 1, (5 << 12) | 0x18, 65535, 0, 0) + payload


def cases(n: int) -> dict[str, list[bytes]]:
    udp_frame = ETH + ipv4(17, udp(5060, 5060, MSG))
    rtp_frame = ETH + ipv4(17, udp(20000, 20002, b"\x80" * 172))
    tcp_one: list[bytes] = []
    tcp_split: list[bytes] = []
    seq = 1
    third = len(MSG) // 3
    for _ in range(n):
        tcp_one.append(ETH + ipv4(6, tcp(seq, MSG)))
        seq += len(MSG)
    seq = 1
    while len(tcp_split) < n:
        for part in (MSG[:third], MSG[third : 2 * third], MSG[2 * third :]):
            tcp_split.append(ETH + ipv4(6, tcp(seq, part)))
            seq += len(part)
    datagram = udp(5060, 5060, MSG)
    frags: list[bytes] = []
    ident = 0
    while len(frags) < n:
        ident = (ident + 1) & 0xFFFF
        frags.append(ETH + ipv4(17, datagram[:256], ident, 0x2000))
        frags.append(ETH + ipv4(17, datagram[256:], ident, 256 // 8))
    return {
        "udp SIP frame": [udp_frame] * n,
        "udp RTP frame (skipped)": [rtp_frame] * n,
        "tcp segment = 1 message": tcp_one,
        "tcp segment = 1/3 message": tcp_split[:n],
        "ipv4 fragment (2 per msg)": frags[:n],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for name, frames in cases(args.frames).items():
        best = float("inf")
        payloads = 0
        for _ in range(args.repeat):
            dec = FrameDecoder(Reasons())
            feed = dec.feed
            t0 = time.perf_counter()
            payloads = 0
            for i, frame in enumerate(frames):
                payloads += len(feed(i, 1, frame))
            best = min(best, time.perf_counter() - t0)
        per = best / len(frames) * 1e6
        print(f"{name:28s} {per:6.2f} us/frame  ({payloads} payloads / {len(frames)} frames)")


if __name__ == "__main__":
    main()
