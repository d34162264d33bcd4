"""so_media.c in the pipeline on a call built by hand: endpoints learned from an offer and an
answer, RTP counted per stream, and RTCP: an SR from the stream's sender, then an RR about it,
give the round trip on the monitor's clock -- RR seen - SR seen - DLSR."""

from __future__ import annotations

import struct

from netbuild import ethernet, ipv4, udp
from sip_otel.net.types import Frame
from sip_otel.pipeline import Pipeline, PipelineConfig

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])
T0 = 1_700_000_000 * 10**9
S = 10**9


def frame(ts: int, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> Frame:
    return Frame(ts, 1, ethernet(ipv4(udp(payload, sport, dport), src=src, dst=dst)))


def sip(start: str, sdp: str, cseq: str = "1 INVITE") -> bytes:
    body = sdp.replace("\n", "\r\n").encode()
    head = (
        f"{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
        f"To: <sip:b@x>\r\nCall-ID: media-1\r\nCSeq: {cseq}\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


OFFER = "v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\n"
ANSWER = "v=0\nc=IN IP4 10.0.0.2\nm=audio 5000 RTP/AVP 0\n"
SSRC_A = 0xA0A0A0A0


def rtp(seq: int, ts: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + b"\xd5" * 160


def test_round_trip_from_sr_and_rr() -> None:
    frames = [
        frame(T0, A, B, 5060, 5060, sip("INVITE sip:b@x SIP/2.0", OFFER)),
        frame(T0 + S // 10, B, A, 5060, 5060, sip("SIP/2.0 200 OK", ANSWER)),
    ]
    # A -> B RTP (to B's learned 5000), 3 packets
    for i in range(3):
        frames.append(
            frame(T0 + S + i * 20_000_000, A, B, 4000, 5000, rtp(10 + i, 160 * i, SSRC_A))
        )
    # A's SR to B's RTCP port (5001): NTP 0x00001234.80000000 -> middle 32 bits 0x12348000
    sr = struct.pack("!BBHI", 0x80, 200, 6, SSRC_A) + struct.pack(
        "!IIIII", 0x1234, 0x80000000, 480, 3, 480
    )
    frames.append(frame(T0 + 2 * S, A, B, 4001, 5001, sr))
    # B's RR to A's RTCP port (4001) 1.5 s later, about SSRC_A, DLSR 1 s (65536)
    block = struct.pack("!IB3sIIII", SSRC_A, 0, b"\0\0\0", 12, 3, 0x12348000, 65536)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0xB0B0B0B0) + block
    frames.append(frame(T0 + 3 * S + S // 2, B, A, 5001, 4001, rr))
    p = Pipeline(PipelineConfig(media=True))
    p.feed(frames)
    p.finish()
    assert p.media_counts() == {"rtp_packets": 3, "rtcp_packets": 2, "endpoints_learned": 4}
    (s,) = p.media_streams()
    assert (s["src"], s["sport"], s["dst"], s["dport"]) == ("10.0.0.1", 4000, "10.0.0.2", 5000)
    assert s["codec"] == "PCMU" and s["packets"] == 3 and s["rtcp_reports"] == 1
    assert (s["rr_fraction_lost"], s["rr_cum_lost"], s["rr_jitter"]) == (0, 0, 3)
    # RR seen at 3.5 s, SR seen at 2 s, DLSR 1 s: 0.5 s
    assert s["rtt_ns"] == 500_000_000


def test_rr_without_a_matching_sr_gives_no_round_trip() -> None:
    frames = [
        frame(T0, A, B, 5060, 5060, sip("INVITE sip:b@x SIP/2.0", OFFER)),
        frame(T0 + S // 10, B, A, 5060, 5060, sip("SIP/2.0 200 OK", ANSWER)),
        frame(T0 + S, A, B, 4000, 5000, rtp(1, 0, SSRC_A)),
    ]
    block = struct.pack("!IB3sIIII", SSRC_A, 0, b"\0\0\0", 1, 0, 0x12348000, 65536)
    frames.append(
        frame(T0 + 2 * S, B, A, 5001, 4001, struct.pack("!BBHI", 0x81, 201, 7, 1) + block)
    )
    p = Pipeline(PipelineConfig(media=True))
    p.feed(frames)
    (s,) = p.media_streams()
    assert s["rtcp_reports"] == 1 and s["rtt_ns"] is None
