"""Micro-benchmark of the SIP parser: µs per message for typical messages.

Run: ``.venv/bin/python benchmarks/bench_parser.py [--number N]``. Prints, per message kind, the
best of 30 runs (robust on a shared machine) of ``parse_payload`` (what the pipeline calls) and
of ``parse_message``, next to a naive baseline (split lines, dict of all headers) for scale.
``--capture FILE`` adds parse_payload over all SIP payloads of a capture (e.g. one written by
``benchmarks/gen_capture.py``): many distinct, cache-cold messages, as in the pipeline.

The parser is compiled C; these figures include the Python facade (a SipMessage per message,
which costs more than the parse). The two fixed messages repeat, so the CPU caches and branch
predictors stay warm: a best case, like a burst of retransmissions. The capture figure is the
one to compare with the pipeline. This machine is noisy: compare A/B runs made in the same
minute, or interleave the variants in one process.
"""

from __future__ import annotations

import argparse
import time
import timeit

from sip_otel.errors import Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.parser import parse_message, parse_payload

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, PRACK, UPDATE\r\n"
    b"Supported: timer, 100rel\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"User-Agent: ExamplePhone/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=5060"
    b";received=192.0.2.10\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Server: ExampleSwitch/2.3\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _payload(data: bytes) -> SipPayload:
    return SipPayload(0, PROTO_UDP, b"\xc0\x00\x02\x0a", 5060, b"\xc0\x00\x02\x04", 5060, data)


def naive(data: bytes) -> dict[str, str]:
    """Baseline only: split at the blank line, decode, split lines, dict of every header."""
    head = data.partition(b"\r\n\r\n")[0].decode()
    return {
        line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
        for line in head.split("\r\n")[1:]
    }


def bench(number: int, repeat: int = 30) -> dict[str, float]:
    results: dict[str, float] = {}
    for name, data in (("INVITE+SDP", INVITE), ("200 OK", OK_200)):
        payload = _payload(data)
        reasons = Reasons()
        msgs = parse_payload(payload, reasons)
        assert len(msgs) == 1 and not reasons.counts, reasons.counts
        glb = {"parse_payload": parse_payload, "parse_message": parse_message,
               "payload": payload, "reasons": reasons, "data": data, "naive": naive}
        for stmt in (
            "parse_payload(payload, reasons)", "parse_message(data, 0, 0, payload)", "naive(data)"
        ):
            t = min(timeit.repeat(stmt, number=number, repeat=repeat, globals=glb))
            results[f"{stmt.split('(')[0]} {name}"] = t / number * 1e6
    return results


def bench_capture(path: str) -> tuple[int, float]:
    """(messages, µs/message) of parse_payload over every SIP payload of a capture file.

    Cold caches and many distinct messages: closer to the pipeline than the loops above. The
    payloads are decoded first (pcap reader and frame decoder are not timed).
    """
    from sip_otel.capture.pcapfile import PcapReader
    from sip_otel.net.decoder import FrameDecoder

    reasons = Reasons()
    decoder = FrameDecoder(reasons, all_ports=True)
    payloads: list[SipPayload] = []
    with PcapReader(path) as reader:
        for batch in reader.batches():
            for frame in batch:
                payloads.extend(decoder.feed(frame.ts_ns, frame.linktype, frame.data))
    best = float("inf")
    count = 0
    for _ in range(3):
        count = 0
        t = time.perf_counter()
        for payload in payloads:
            count += len(parse_payload(payload, reasons))
        best = min(best, time.perf_counter() - t)
    return count, best / max(count, 1) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--number", type=int, default=2000, help="calls per run (best of 30 runs)")
    ap.add_argument("--capture", help="also time parse_payload over this pcap/pcapng")
    args = ap.parse_args()
    print(f"INVITE+SDP: {len(INVITE)} bytes, 200 OK: {len(OK_200)} bytes")
    for label, us in bench(args.number).items():
        print(f"{label:28s} {us:6.2f} µs/message  ({1e6 / us:,.0f} msg/s)")
    if args.capture:
        n, us = bench_capture(args.capture)
        label = f"capture ({n} msgs)"
        print(f"{label:28s} {us:6.2f} µs/message  ({1e6 / us:,.0f} msg/s)")


if __name__ == "__main__":
    main()
