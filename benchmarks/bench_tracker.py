"""Micro-benchmark of the tracker: µs per message over realistic call flows.

Run: ``.venv/bin/python benchmarks/bench_tracker.py [--calls N] [--repeat R]``. Builds the
messages up front (no parser), then times ``SipTracker.handle`` (plus the timers the messages
make due) over them; prints the best of R runs (robust on a shared machine) with the collector's
default thresholds, with those ``sip-otel replay`` sets (``gc cli``), and with it off.

Flow per call (10 messages): INVITE, 100, 180, 200, ACK, BYE, 200, plus one INVITE
retransmission, one 200 retransmission and an UPDATE/200 pair every 4th call; every 5th call
is rejected with 486 (INVITE, 100, 486, ACK instead). Calls overlap: a new call every 10 ms.

``--pcap FILE`` times the tracker over the messages of a capture instead (parsed up front, e.g.
the output of ``gen_capture.py``), which is the tracker's share of ``sip-otel replay``.
"""

from __future__ import annotations

import argparse
import gc
import time

from sip_otel.capture.pcapfile import read_frames
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.message import SipMessage
from sip_otel.sip.parser import parse_payload
from sip_otel.sip.tracker import SipTracker
from sip_otel.stats import PipelineStats

A = bytes([192, 0, 2, 1])
B = bytes([192, 0, 2, 2])
MS = 1_000_000


def _msg(req: bool, method: str, status: int, t: int, cid: str, ftag: str, ttag: str,
         cseq: int, branch: str) -> SipMessage:  # fmt: skip
    return SipMessage(
        is_request=req, method=method, status=status, reason_phrase="", request_uri="",
        ts_ns=t, call_id=cid, from_uri="sip:alice@example.com", from_tag=ftag,
        to_uri="sip:bob@example.com", to_tag=ttag, cseq=cseq, cseq_method=method,
        via_branch=branch, via_sent_by="192.0.2.1:5060", via_transport="UDP", via_count=1,
        session_expires=1800 if method == "INVITE" and status == 200 else None,
        origin=SipPayload(t, PROTO_UDP, A, 5060, B, 5060, b""),
    )  # fmt: skip


def build(calls: int) -> list[SipMessage]:
    out: list[tuple[int, int, SipMessage]] = []
    seq = 0
    for i in range(calls):
        t0 = i * 10 * MS
        cid, ft, tt = f"{i:08x}-call@example.com", f"f{i}", f"t{i}"
        br = f"z9hG4bK-{i}-inv"
        flow: list[tuple[int, SipMessage]] = [
            (t0, _msg(True, "INVITE", 0, t0, cid, ft, "", 1, br)),
            (t0 + 5 * MS, _msg(False, "INVITE", 100, t0 + 5 * MS, cid, ft, "", 1, br)),
        ]
        if i % 5 == 4:
            flow += [
                (t0 + 300 * MS, _msg(False, "INVITE", 486, t0 + 300 * MS, cid, ft, tt, 1, br)),
                (t0 + 301 * MS, _msg(True, "ACK", 0, t0 + 301 * MS, cid, ft, tt, 1, br)),
            ]
        else:
            ta = t0 + 2_000 * MS
            tb = t0 + 30_000 * MS
            flow += [
                (t0 + 500 * MS, _msg(True, "INVITE", 0, t0 + 500 * MS, cid, ft, "", 1, br)),
                (t0 + 100 * MS, _msg(False, "INVITE", 180, t0 + 100 * MS, cid, ft, tt, 1, br)),
                (ta, _msg(False, "INVITE", 200, ta, cid, ft, tt, 1, br)),
                (ta + 500 * MS, _msg(False, "INVITE", 200, ta + 500 * MS, cid, ft, tt, 1, br)),
                (ta + MS, _msg(True, "ACK", 0, ta + MS, cid, ft, tt, 1, f"z9hG4bK-{i}-ack")),
                (tb, _msg(True, "BYE", 0, tb, cid, ft, tt, 2, f"z9hG4bK-{i}-bye")),
                (tb + 20 * MS, _msg(False, "BYE", 200, tb + 20 * MS, cid, ft, tt, 2,
                                    f"z9hG4bK-{i}-bye")),
            ]  # fmt: skip
            if i % 4 == 0:
                tu = t0 + 10_000 * MS
                ub = f"z9hG4bK-{i}-upd"
                flow += [
                    (tu, _msg(True, "UPDATE", 0, tu, cid, tt, ft, 1, ub)),
                    (tu + MS, _msg(False, "UPDATE", 200, tu + MS, cid, tt, ft, 1, ub)),
                ]
        for t, m in flow:
            seq += 1
            out.append((t, seq, m))
    out.sort(key=lambda x: (x[0], x[1]))
    return [m for _, _, m in out]


def from_pcap(path: str) -> list[SipMessage]:
    """Every SIP message of a capture, parsed (as the replay pipeline does, without timing)."""
    reasons = Reasons()
    decoder = FrameDecoder(reasons, frozenset({5060, 5061}))
    out: list[SipMessage] = []
    for batch in read_frames(path):
        for ts, linktype, data, _ifindex, _pkt_type in batch:
            for payload in decoder.feed(ts, linktype, data):
                out.extend(parse_payload(payload, reasons))
    return out


def run(msgs: list[SipMessage]) -> float:
    tracker = SipTracker(PipelineStats(), Reasons())
    handle = tracker.handle
    start = time.process_time()  # CPU time: robust on a shared machine
    for m in msgs:
        handle(m)
    elapsed = time.process_time() - start
    tracker.finish(msgs[-1].ts_ns + 3600 * 1_000_000_000)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pcap", help="time the messages of this capture instead of built calls")
    args = ap.parse_args()
    msgs = from_pcap(args.pcap) if args.pcap else build(args.calls)
    what = args.pcap if args.pcap else f"{args.calls} calls"
    # The pipeline does not keep messages; keep the prebuilt input out of the GC's way.
    gc.collect()
    gc.freeze()
    default = gc.get_threshold()
    # default thresholds, those `sip-otel replay` sets (cli._tune_gc), and no collector
    for label, threshold in (("gc on ", default), ("gc cli", (50_000, 50, 100)), ("gc off", None)):
        if threshold is None:
            gc.disable()
        else:
            gc.set_threshold(*threshold)
        best = min(run(msgs) for _ in range(args.repeat))
        print(
            f"{label}: {len(msgs)} messages, {what}: best "
            f"{best * 1e6 / len(msgs):.2f} µs/message ({len(msgs) / best:,.0f} messages/s)"
        )
    gc.enable()  # fmt: skip
    gc.set_threshold(*default)


if __name__ == "__main__":
    main()
