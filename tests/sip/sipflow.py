"""Test helpers: build SipMessage objects directly (no parser) and feed a SipTracker.

Times are given in seconds and chosen by hand; ``ns()`` converts exactly enough for the
expectations (every test compares with ``pytest.approx``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sip_otel.errors import Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.records import DialogRecord, RegistrationRecord
from sip_otel.sip.message import SipMessage
from sip_otel.sip.tracker import Event, SipTracker, TrackerConfig
from sip_otel.stats import PipelineStats

A_IP = bytes([10, 0, 0, 1])
B_IP = bytes([10, 0, 0, 2])


def ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def request(method: str, t: float, *, call_id: str = "call-1", from_tag: str = "a1",
            to_tag: str = "", cseq: int = 1, branch: str = "z9hG4bK-1",
            sent_by: str = "10.0.0.1:5060", to_uri: str = "sip:bob@example.com",
            **fields: Any) -> SipMessage:  # fmt: skip
    return SipMessage(
        is_request=True, method=method, status=0, reason_phrase="", request_uri=to_uri,
        ts_ns=ns(t), call_id=call_id, from_uri="sip:alice@example.com", from_tag=from_tag,
        to_uri=to_uri, to_tag=to_tag, cseq=cseq, cseq_method=method, via_branch=branch,
        via_sent_by=sent_by, via_transport="UDP", via_count=1,
        origin=SipPayload(ns(t), PROTO_UDP, A_IP, 5060, B_IP, 5060, b""), **fields,
    )  # fmt: skip


def response(req: SipMessage, status: int, t: float, *, to_tag: str = "",
             **fields: Any) -> SipMessage:  # fmt: skip
    return SipMessage(
        is_request=False, method=req.method, status=status, reason_phrase="", request_uri="",
        ts_ns=ns(t), call_id=req.call_id, from_uri=req.from_uri, from_tag=req.from_tag,
        to_uri=req.to_uri, to_tag=to_tag or req.to_tag, cseq=req.cseq, cseq_method=req.method,
        via_branch=req.via_branch, via_sent_by=req.via_sent_by, via_transport="UDP",
        via_count=1, origin=SipPayload(ns(t), PROTO_UDP, B_IP, 5060, A_IP, 5060, b""), **fields,
    )  # fmt: skip


@dataclass
class Flow:
    """A tracker with its stats, reasons and the records it emitted."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    stats: PipelineStats = field(default_factory=PipelineStats)
    reasons: Reasons = field(default_factory=Reasons)
    records: list[DialogRecord | RegistrationRecord] = field(default_factory=list)
    tracker: SipTracker = field(init=False)
    _n: int = 0

    def __post_init__(self) -> None:
        self.tracker = SipTracker(self.stats, self.reasons, self.config, self.records.append)

    def send(self, msg: SipMessage) -> list[Event]:
        return self.tracker.handle(msg)

    def timer(self, t: float) -> list[Event]:
        return self.tracker.handle_timer(ns(t))

    def branch(self) -> str:
        self._n += 1
        return f"z9hG4bK-b{self._n}"

    # -- one-liners for common steps ------------------------------------------------

    def req(self, method: str, t: float, **kw: Any) -> SipMessage:
        kw.setdefault("branch", self.branch())
        msg = request(method, t, **kw)
        self.send(msg)
        return msg

    def resp(self, req: SipMessage, status: int, t: float, **kw: Any) -> SipMessage:
        msg = response(req, status, t, **kw)
        self.send(msg)
        return msg

    def call(self, t0: float, *, call_id: str, answer: int = 200, ring: float | None = None,
             answer_at: float | None = None, bye_at: float | None = None,
             bye_status: int = 200, bye_resp_at: float | None = None) -> None:  # fmt: skip
        """INVITE at t0 [180 at ring] final at answer_at, ACK, [BYE at bye_at, its answer]."""
        inv = self.req("INVITE", t0, call_id=call_id)
        if ring is not None:
            self.resp(inv, 180, ring, to_tag="b1")
        final_t = answer_at if answer_at is not None else t0 + 1.0
        self.resp(inv, answer, final_t, to_tag="b1")
        if answer >= 300:
            self.send(request("ACK", final_t + 0.01, call_id=call_id, to_tag="b1",
                              branch=inv.via_branch))  # fmt: skip
            return
        self.req("ACK", final_t + 0.01, call_id=call_id, to_tag="b1")
        if bye_at is not None:
            bye = self.req("BYE", bye_at, call_id=call_id, to_tag="b1", cseq=2)
            end = bye_resp_at if bye_resp_at is not None else bye_at + 0.05
            self.resp(bye, bye_status, end)
