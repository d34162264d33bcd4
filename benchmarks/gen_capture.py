"""Write a reproducible benchmark capture of SIPp-style full calls.

Each call is INVITE / 100 / 180 / 200 / ACK / BYE / 200 over UDP/IPv4 on Ethernet (7 messages,
SDP bodies on the INVITE and the 200), like SIPp's built-in ``uac``/``uas`` scenarios. Calls start
every ``--interval-ms`` and last ``--hold-s``, so many dialogs are open at once. The output is a
pcap with nanosecond timestamps; the same arguments always give the same bytes.

    python benchmarks/gen_capture.py --messages 1000000 -o /tmp/bench-1m.pcap
"""

from __future__ import annotations

import argparse
import heapq
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sip_otel.capture.pcapfile import PcapWriter
from sip_otel.net.types import LINKTYPE_ETHERNET

# Loopback addresses only: generated load never carries private or public ranges.
UAC = (127, 0, 0, 1)
UAS = (127, 0, 0, 2)
MAC_UAC = bytes.fromhex("020000000001")
MAC_UAS = bytes.fromhex("020000000002")
T0_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z

SDP = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.{h}\r\ns=-\r\n"
    "c=IN IP4 127.0.0.{h}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _ip_udp(src: tuple[int, ...], dst: tuple[int, ...], sport: int, dport: int,
            payload: bytes, ident: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, 17, 0,
                      bytes(src), bytes(dst))
    return hdr + udp


def _frame(src_mac: bytes, dst_mac: bytes, ip: bytes) -> bytes:
    return dst_mac + src_mac + b"\x08\x00" + ip


def call_messages(i: int) -> list[tuple[int, bool, str]]:
    """(offset_ns, from_uac, text) for call i."""
    cid = f"{i}-4242@127.0.0.1"
    ftag = f"{i}SIPpTag00"
    ttag = f"{i}SIPpTag01"
    br1 = f"z9hG4bK-4242-{i}-0"
    br_ack = f"z9hG4bK-4242-{i}-5"
    br_bye = f"z9hG4bK-4242-{i}-6"
    via = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch={b}\r\n"
    base_req = (
        "{m} sip:service@127.0.0.2:5060 SIP/2.0\r\n" + via +
        "From: sipp <sip:sipp@127.0.0.1:5060>;tag=" + ftag + "\r\n"
        "To: service <sip:service@127.0.0.2:5060>{tt}\r\n"
        "Call-ID: " + cid + "\r\n"
        "CSeq: {cseq} {m}\r\n"
        "Contact: sip:sipp@127.0.0.1:5060\r\n"
        "Max-Forwards: 70\r\n"
        "Subject: Performance Test\r\n"
        "{extra}Content-Length: {cl}\r\n\r\n{body}"
    )
    base_resp = (
        "SIP/2.0 {code} {reason}\r\n" + via +
        "From: sipp <sip:sipp@127.0.0.1:5060>;tag=" + ftag + "\r\n"
        "To: service <sip:service@127.0.0.2:5060>{tt}\r\n"
        "Call-ID: " + cid + "\r\n"
        "CSeq: {cseq} {m}\r\n"
        "{extra}Content-Length: {cl}\r\n\r\n{body}"
    )
    sdp_a = SDP.format(h=1, port=6000 + i % 1000)
    sdp_b = SDP.format(h=2, port=7000 + i % 1000)
    contact_b = "Contact: <sip:127.0.0.2:5060;transport=UDP>\r\n"
    tt = ";tag=" + ttag
    msgs = [
        (0, True, base_req.format(m="INVITE", b=br1, tt="", cseq=1,
                                  extra="Content-Type: application/sdp\r\n",
                                  cl=len(sdp_a), body=sdp_a)),
        (2_000_000, False, base_resp.format(code=100, reason="Trying", b=br1, tt="", cseq=1,
                                            m="INVITE", extra="", cl=0, body="")),
        (40_000_000, False, base_resp.format(code=180, reason="Ringing", b=br1, tt=tt, cseq=1,
                                             m="INVITE", extra=contact_b, cl=0, body="")),
        (1_040_000_000, False, base_resp.format(
            code=200, reason="OK", b=br1, tt=tt, cseq=1, m="INVITE",
            extra=contact_b + "Content-Type: application/sdp\r\n", cl=len(sdp_b), body=sdp_b)),
        (1_041_000_000, True, base_req.format(m="ACK", b=br_ack, tt=tt, cseq=1, extra="",
                                              cl=0, body="")),
    ]
    bye = base_req.format(m="BYE", b=br_bye, tt=tt, cseq=2, extra="", cl=0, body="")
    bye_ok = base_resp.format(code=200, reason="OK", b=br_bye, tt=tt, cseq=2, m="BYE", extra="",
                              cl=0, body="")
    return [*msgs, (0, True, bye), (1_000_000, False, bye_ok)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--messages", type=int, default=1_000_000, help="about this many messages")
    ap.add_argument("--interval-ms", type=float, default=1.0, help="time between call starts")
    ap.add_argument("--hold-s", type=float, default=3.0, help="time from ACK to BYE")
    args = ap.parse_args()
    calls = max(1, args.messages // 7)
    hold_ns = int(args.hold_s * 1e9)
    interval_ns = int(args.interval_ms * 1e6)
    heap: list[tuple[int, int, int, bytes]] = []  # (ts, seq, from_uac, ip payload) time-ordered
    seq = 0
    written = 0
    with open(args.output, "wb") as fh:
        w = PcapWriter(fh, LINKTYPE_ETHERNET)

        def flush_until(limit: int) -> None:
            nonlocal written
            while heap and heap[0][0] <= limit:
                ts, _s, from_uac, ip = heapq.heappop(heap)
                if from_uac:
                    w.write(ts, _frame(MAC_UAC, MAC_UAS, ip))
                else:
                    w.write(ts, _frame(MAC_UAS, MAC_UAC, ip))
                written += 1

        for i in range(calls):
            start = T0_NS + i * interval_ns
            flush_until(start)
            for n, (off, from_uac, text) in enumerate(call_messages(i)):
                ts = start + off if n < 5 else start + 1_041_000_000 + hold_ns + off
                src, dst = (UAC, UAS) if from_uac else (UAS, UAC)
                ip = _ip_udp(src, dst, 5060, 5060, text.encode(), seq)
                heapq.heappush(heap, (ts, seq, int(from_uac), ip))
                seq += 1
        flush_until(1 << 62)
    print(f"wrote {written} messages ({calls} calls) to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
