"""Write a reproducible benchmark capture of SIPp-style full calls.

Each call is INVITE / 100 / 180 / 200 / ACK / BYE / 200 over UDP/IPv4 on Ethernet (7 messages,
SDP bodies on the INVITE and the 200), like SIPp's built-in ``uac``/``uas`` scenarios. Calls start
every ``--interval-ms`` and last ``--hold-s``, so many dialogs are open at once. The output is a
pcap with nanosecond timestamps; the same arguments always give the same bytes.

``--mix`` varies the outcome by call number (of every 10 calls: 7 answered 200 and hung up,
1 busy 486, 1 refused 503, 1 cancelled: CANCEL / 200 / 487); ``--tcp-percent N`` carries N % of
the calls over TCP (one connection per call from its own client port, handshake included, one
SIP message per segment, closed with FIN / FIN / ACK after the call's last message). Client
ports cycle through 40,000 values, so with ``--mix`` or ``--tcp-percent`` the client address
changes every 40,000 calls (:func:`client_addr`: 127.0.0.1, then 127.1.0.1, 127.1.0.2, ...): a
TCP 4-tuple is never reused within a capture. ``--counts FILE`` writes what the capture holds
as JSON (frames, SIP messages, requests by method, responses by status code) for exact checks
against a live agent. ``--split N`` deals the calls out to N captures (call i to capture
i % N), each in time order, for N replays in parallel; the counts are of all of them.

    python benchmarks/gen_capture.py --messages 1000000 -o /tmp/bench-1m.pcap
    python benchmarks/gen_capture.py --messages 50000 --mix --tcp-percent 20 \
        --counts /tmp/mix.json -o /tmp/mix.pcap
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import struct
import sys
from collections import Counter
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


CALLS_PER_CLIENT = 40_000  # client ports 20000..59999, one per TCP call


def client_addr(call: int) -> tuple[int, int, int, int]:
    """The client (UAC) address of call ``call`` in a mixed/TCP capture: 127.0.0.1 for the first
    40,000 calls, then 127.1.0.1 for the next block, 127.1.0.2, ... (never the server's
    127.0.0.2), so no (address, port) pair comes back within a capture."""
    block = call // CALLS_PER_CLIENT
    if block == 0:
        return UAC
    return (127, 1 + (block >> 16), (block >> 8) & 0xFF, block & 0xFF)


def _ip_udp(
    src: tuple[int, ...], dst: tuple[int, ...], sport: int, dport: int, payload: bytes, ident: int
) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, 17, 0, bytes(src), bytes(dst)
    )
    return hdr + udp


def _ip_tcp(
    src: tuple[int, ...],
    dst: tuple[int, ...],
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes,
    ident: int,
) -> bytes:
    tcp = (
        struct.pack(
            "!HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            5 << 4,
            flags,
            65535,
            0,
            0,
        )
        + payload
    )
    total = 20 + len(tcp)
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, 6, 0, bytes(src), bytes(dst)
    )
    return hdr + tcp


TCP_FIN, TCP_SYN, TCP_ACK, TCP_PSH = 0x01, 0x02, 0x10, 0x08
OUTCOMES = ("200",) * 7 + ("486", "503", "cancel")


def mixed_messages(i: int, outcome: str, hold_ns: int) -> list[tuple[int, bool, str]]:
    """(offset_ns from the call start, from_uac, text) of call i ending with ``outcome``."""
    full = call_messages(i)
    invite, trying, ringing, ok, ack, bye, bye_ok = full
    if outcome == "200":
        msgs = [invite, trying, ringing, ok, ack]
        after = 1_041_000_000 + hold_ns
        return msgs + [(after + off, u, t) for off, u, t in (bye, bye_ok)]
    text = invite[2]
    head = text.split("\r\n")
    call_id = next(h for h in head if h.startswith("Call-ID:"))
    from_h = next(h for h in head if h.startswith("From:"))
    to_h = next(h for h in head if h.startswith("To:"))
    via = next(h for h in head if h.startswith("Via:"))
    tag = f";tag={i}SIPpTag01"

    def resp(code: int, reason: str, to: str, method: str = "INVITE", v: str = via) -> str:
        return (
            f"SIP/2.0 {code} {reason}\r\n{v}\r\n{from_h}\r\n{to}\r\n{call_id}\r\n"
            f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )

    def ack_for(code_branch: str) -> str:
        return (
            f"ACK sip:service@127.0.0.2:5060 SIP/2.0\r\n{code_branch}\r\n{from_h}\r\n"
            f"{to_h}{tag}\r\n{call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )

    if outcome in ("486", "503"):
        code, reason = (486, "Busy Here") if outcome == "486" else (503, "Service Unavailable")
        return [
            invite,
            trying,
            ringing,
            (600_000_000, False, resp(code, reason, to_h + tag)),
            (601_000_000, True, ack_for(via)),
        ]
    cancel_via = via  # CANCEL carries the INVITE's branch (RFC 3261 9.1)
    cancel = (
        f"CANCEL sip:service@127.0.0.2:5060 SIP/2.0\r\n{cancel_via}\r\n{from_h}\r\n"
        f"{to_h}\r\n{call_id}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return [
        invite,
        trying,
        ringing,
        (500_000_000, True, cancel),
        (501_000_000, False, resp(200, "OK", to_h + tag, "CANCEL")),
        (502_000_000, False, resp(487, "Request Terminated", to_h + tag)),
        (503_000_000, True, ack_for(via)),
    ]


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
        "{m} sip:service@127.0.0.2:5060 SIP/2.0\r\n"
        + via
        + "From: sipp <sip:sipp@127.0.0.1:5060>;tag="
        + ftag
        + "\r\n"
        "To: service <sip:service@127.0.0.2:5060>{tt}\r\n"
        "Call-ID: " + cid + "\r\n"
        "CSeq: {cseq} {m}\r\n"
        "Contact: sip:sipp@127.0.0.1:5060\r\n"
        "Max-Forwards: 70\r\n"
        "Subject: Performance Test\r\n"
        "{extra}Content-Length: {cl}\r\n\r\n{body}"
    )
    base_resp = (
        "SIP/2.0 {code} {reason}\r\n"
        + via
        + "From: sipp <sip:sipp@127.0.0.1:5060>;tag="
        + ftag
        + "\r\n"
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
        (
            0,
            True,
            base_req.format(
                m="INVITE",
                b=br1,
                tt="",
                cseq=1,
                extra="Content-Type: application/sdp\r\n",
                cl=len(sdp_a),
                body=sdp_a,
            ),
        ),
        (
            2_000_000,
            False,
            base_resp.format(
                code=100, reason="Trying", b=br1, tt="", cseq=1, m="INVITE", extra="", cl=0, body=""
            ),
        ),
        (
            40_000_000,
            False,
            base_resp.format(
                code=180,
                reason="Ringing",
                b=br1,
                tt=tt,
                cseq=1,
                m="INVITE",
                extra=contact_b,
                cl=0,
                body="",
            ),
        ),
        (
            1_040_000_000,
            False,
            base_resp.format(
                code=200,
                reason="OK",
                b=br1,
                tt=tt,
                cseq=1,
                m="INVITE",
                extra=contact_b + "Content-Type: application/sdp\r\n",
                cl=len(sdp_b),
                body=sdp_b,
            ),
        ),
        (
            1_041_000_000,
            True,
            base_req.format(m="ACK", b=br_ack, tt=tt, cseq=1, extra="", cl=0, body=""),
        ),
    ]
    bye = base_req.format(m="BYE", b=br_bye, tt=tt, cseq=2, extra="", cl=0, body="")
    bye_ok = base_resp.format(
        code=200, reason="OK", b=br_bye, tt=tt, cseq=2, m="BYE", extra="", cl=0, body=""
    )
    return [*msgs, (0, True, bye), (1_000_000, False, bye_ok)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--messages", type=int, default=1_000_000, help="about this many messages")
    ap.add_argument("--interval-ms", type=float, default=1.0, help="time between call starts")
    ap.add_argument("--hold-s", type=float, default=3.0, help="time from ACK to BYE")
    ap.add_argument("--mix", action="store_true", help="mixed call outcomes (see above)")
    ap.add_argument("--tcp-percent", type=int, default=0, help="calls carried over TCP, %%")
    ap.add_argument("--counts", help="write the capture's message counts here (JSON)")
    ap.add_argument(
        "--split",
        type=int,
        default=1,
        help="write N captures (OUTPUT with .0, .1, ... before the suffix), call i in i %% N",
    )
    args = ap.parse_args()
    counts: Counter[str] = Counter()
    calls = max(1, args.messages // 7)
    hold_ns = int(args.hold_s * 1e9)
    interval_ns = int(args.interval_ms * 1e6)
    # (ts, seq, from_uac, output, ip payload), time-ordered
    heap: list[tuple[int, int, int, int, bytes]] = []
    seq = 0
    written = 0
    with contextlib.ExitStack() as stack:
        writers = [
            PcapWriter(stack.enter_context(open(path, "wb")), LINKTYPE_ETHERNET)
            for path in split_paths(Path(args.output), args.split)
        ]
        out = 0  # the capture that takes the current call

        def flush_until(limit: int) -> None:
            nonlocal written
            while heap and heap[0][0] <= limit:
                ts, _s, from_uac, k, ip = heapq.heappop(heap)
                if from_uac:
                    writers[k].write(ts, _frame(MAC_UAC, MAC_UAS, ip))
                else:
                    writers[k].write(ts, _frame(MAC_UAS, MAC_UAC, ip))
                written += 1

        def push(ts: int, from_uac: bool, ip: bytes) -> None:
            nonlocal seq
            heapq.heappush(heap, (ts, seq, int(from_uac), out, ip))
            seq += 1

        for i in range(calls):
            start = T0_NS + i * interval_ns
            out = i % len(writers)
            flush_until(start)
            if not args.mix and not args.tcp_percent:  # the original SIPp-style capture
                for n, (off, from_uac, text) in enumerate(call_messages(i)):
                    ts = start + off if n < 5 else start + 1_041_000_000 + hold_ns + off
                    src, dst = (UAC, UAS) if from_uac else (UAS, UAC)
                    push(ts, from_uac, _ip_udp(src, dst, 5060, 5060, text.encode(), seq))
                    _count(counts, text)
                continue
            outcome = OUTCOMES[i % len(OUTCOMES)] if args.mix else "200"
            msgs = mixed_messages(i, outcome, hold_ns)
            tcp = i * 37 % 100 < args.tcp_percent  # spread TCP calls over the outcomes
            uac = client_addr(i)
            if not tcp:
                for off, from_uac, text in msgs:
                    src, dst = (uac, UAS) if from_uac else (UAS, uac)
                    push(start + off, from_uac, _ip_udp(src, dst, 5060, 5060, text.encode(), seq))
                    _count(counts, text)
                continue
            cport = 20000 + i % CALLS_PER_CLIENT
            nxt = {True: 1000, False: 5000}  # next sequence number by direction (from_uac)
            for off, from_uac, flags in (
                (-3_000_000, True, TCP_SYN),
                (-2_000_000, False, TCP_SYN | TCP_ACK),
                (-1_000_000, True, TCP_ACK),
            ):
                sport, dport = (cport, 5060) if from_uac else (5060, cport)
                src, dst = (uac, UAS) if from_uac else (UAS, uac)
                ack = nxt[not from_uac] + (1 if flags & TCP_ACK else 0)
                push(
                    start + off,
                    from_uac,
                    _ip_tcp(src, dst, sport, dport, nxt[from_uac], ack, flags, b"", seq),
                )
                counts["frames"] += 1
            nxt = {True: 1001, False: 5001}
            for off, from_uac, text in msgs:
                text = text.replace("SIP/2.0/UDP", "SIP/2.0/TCP").replace(
                    "transport=UDP", "transport=TCP"
                )
                payload = text.encode()
                sport, dport = (cport, 5060) if from_uac else (5060, cport)
                src, dst = (uac, UAS) if from_uac else (UAS, uac)
                push(
                    start + off,
                    from_uac,
                    _ip_tcp(
                        src,
                        dst,
                        sport,
                        dport,
                        nxt[from_uac],
                        nxt[not from_uac],
                        TCP_PSH | TCP_ACK,
                        payload,
                        seq,
                    ),
                )
                nxt[from_uac] += len(payload)
                _count(counts, text)
            # Close: the client's FIN, the server's FIN, the client's last ACK (each FIN takes
            # one sequence number), 1 ms apart after the call's last message.
            end = start + max(off for off, _u, _t in msgs)
            for n, (from_uac, flags) in enumerate(
                ((True, TCP_FIN | TCP_ACK), (False, TCP_FIN | TCP_ACK), (True, TCP_ACK)), 1
            ):
                sport, dport = (cport, 5060) if from_uac else (5060, cport)
                src, dst = (uac, UAS) if from_uac else (UAS, uac)
                push(
                    end + n * 1_000_000,
                    from_uac,
                    _ip_tcp(
                        src, dst, sport, dport, nxt[from_uac], nxt[not from_uac], flags, b"", seq
                    ),
                )
                counts["frames"] += 1
                if flags & TCP_FIN:
                    nxt[from_uac] += 1
        flush_until(1 << 62)
    print(f"wrote {written} frames ({calls} calls) to {args.output}", file=sys.stderr)
    if args.counts:
        summary = {
            "frames": written,
            "messages": counts["messages"],
            "requests": {k[4:]: n for k, n in sorted(counts.items()) if k.startswith("req ")},
            "responses": {k[5:]: n for k, n in sorted(counts.items()) if k.startswith("resp ")},
        }
        Path(args.counts).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def split_paths(output: Path, n: int) -> list[Path]:
    """Where ``--split N`` writes: OUTPUT itself for 1, else OUTPUT with .0 ... .N-1 inserted
    before its suffix (load.pcap -> load.0.pcap, load.1.pcap)."""
    if n <= 1:
        return [output]
    return [output.with_name(f"{output.stem}.{k}{output.suffix}") for k in range(n)]


def _count(counts: Counter[str], text: str) -> None:
    first = text.split(" ", 2)
    counts["messages"] += 1
    counts[f"resp {first[1]}" if first[0] == "SIP/2.0" else f"req {first[0]}"] += 1


if __name__ == "__main__":
    raise SystemExit(main())
