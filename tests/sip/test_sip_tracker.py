"""The tracker facade: the sip-exporter invariant, timers, finish, gauges, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sipflow import Flow, ns, request, response

from sip_otel.records import DialogRecord
from sip_otel.rfc6076 import dialog_outcomes_report, rfc6076_report
from sip_otel.sip.dialogs import AttemptEnded, SessionEnded
from sip_otel.sip.tracker import TrackerConfig
from sip_otel.sip.transactions import OrphanResponse, Retransmission, TransactionTimeout


def test_invariant_100_ok_50_busy_50_server_error() -> None:
    f = Flow()
    for i in range(100):
        t = i * 10.0
        f.call(t, call_id=f"ok-{i}", ring=t + 0.1, answer_at=t + 1.0, bye_at=t + 5.0)
    for i in range(50):
        f.call(2000.0 + i * 10.0, call_id=f"busy-{i}", answer=486)
    for i in range(50):
        f.call(3000.0 + i * 10.0, call_id=f"err-{i}", answer=500)
    f.tracker.finish(ns(4000.0))
    rep = rfc6076_report(f.stats)
    # SER 100/200, SEER (100+50)/200, ISA 50/200, SCR 100/200
    assert (rep["ser"], rep["seer"], rep["isa"], rep["scr"]) == (50.0, 75.0, 25.0, 50.0)
    assert rep["ira"] is None
    assert rep["srd_success"]["count"] == 100
    assert rep["srd_success"]["mean_s"] == pytest.approx(0.1)
    assert rep["srd_failure"]["count"] == 100
    assert rep["srd_failure"]["mean_s"] == pytest.approx(1.0)
    assert rep["sdt"]["mean_s"] == pytest.approx(4.0) and rep["sdd"]["count"] == 100
    out = dialog_outcomes_report(f.stats)
    assert (out["completed"], out["failed_4xx"], out["failed_5xx"], out["open"]) == (
        100, 50, 50, 0,
    )  # fmt: skip
    assert sum(out.values()) == 200 == len(f.records)


def test_no_traffic_ratios_undefined() -> None:
    rep = rfc6076_report(Flow().stats)
    assert all(rep[k] is None for k in ("ser", "seer", "isa", "scr", "ira"))
    assert rep["sdt"] == {"count": 0, "mean_s": None, "p50_s": None, "p95_s": None}


def test_handle_returns_events() -> None:
    f = Flow()
    inv = request("INVITE", 0.0)
    assert f.send(inv) == []
    assert f.send(request("INVITE", 0.5)) == [Retransmission("INVITE", True)]
    (ended,) = f.send(response(inv, 486, 1.0, to_tag="b"))
    assert isinstance(ended, AttemptEnded) and ended.outcome == "failed_4xx"
    assert ended.srd_ns == (ns(1.0),)
    orphan = f.send(response(request("BYE", 0.0, branch="z9hG4bK-x"), 200, 2.0))
    assert isinstance(orphan[0], OrphanResponse)


def test_timers_due_before_a_message_fire_first() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    # no handle_timer call: the 408 at 40 s comes after Timer B (32 s) and is too late
    evs = f.send(response(inv, 408, 40.0, to_tag="b"))
    assert [type(e) for e in evs] == [TransactionTimeout, AttemptEnded, OrphanResponse]
    assert f.stats.dialog_outcomes == {"timed_out": 1}


def test_finish_counts_open_and_flushes_records() -> None:
    f = Flow()
    f.call(0.0, call_id="up")  # confirmed, never ended
    f.req("INVITE", 5.0, call_id="ringing")  # no answer before finish
    f.tracker.finish(ns(10.0))
    assert f.stats.dialog_outcomes == {"open": 2}
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success, c.sessions_completed) == (1, 1, 0)
    assert all(isinstance(r, DialogRecord) and r.end_ns == ns(10.0) for r in f.records)
    assert f.tracker.gauges()["sessions"] == 0


def test_gauges() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0, call_id="a")
    f.resp(inv, 183, 0.1, to_tag="e1")
    f.call(1.0, call_id="b")
    r = f.req("REGISTER", 2.0, to_uri="sip:x@example.com")
    f.resp(r, 200, 2.1)
    g = f.tracker.gauges()
    assert (g["sessions"], g["early_dialogs"], g["registrations"]) == (1, 1, 1)
    assert g["transactions"] == 1  # only the ringing INVITE waits for a final
    assert g["invite_attempts"] == 1


def test_dialog_table_limit_evicts_oldest() -> None:
    f = Flow(TrackerConfig(max_dialogs=1))
    f.call(0.0, call_id="first")
    f.call(10.0, call_id="second")
    assert f.stats.evictions == {"dialogs.full": 1}
    assert f.stats.dialog_outcomes == {"evicted": 1}
    (rec,) = f.records
    assert isinstance(rec, DialogRecord) and rec.call_id == "first"


def test_attempt_table_limit_evicts_without_counting() -> None:
    f = Flow(TrackerConfig(max_invite_attempts=1))
    f.req("INVITE", 0.0, call_id="first")
    f.req("INVITE", 1.0, call_id="second")
    assert f.stats.evictions == {"attempts.full": 1}
    assert f.stats.dialog_outcomes == {"evicted": 1}
    assert f.stats.rfc6076.invite_attempts == 0


def test_session_events_carry_sdd_and_completion() -> None:
    f = Flow()
    f.call(0.0, call_id="c")
    bye = f.req("BYE", 4.0, call_id="c", to_tag="b1", cseq=2)
    (ev,) = f.send(response(bye, 200, 4.25))
    assert isinstance(ev, SessionEnded)
    assert (ev.outcome, ev.sdt_ns, ev.sdd_ns, ev.sdd_ok, ev.completes_attempt) == (
        "completed", ns(3.0), ns(0.25), True, True,
    )  # fmt: skip


# --- through the real parser (SIP text -> parse_payload -> tracker) ----------------------

_CALL = "a84b4c76e66710@pc33.example.com"


def _sip(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _head(start: str, cseq: str, branch: str, to_tag: str = "", extra: tuple[str, ...] = ()) -> (
        bytes):  # fmt: skip
    return _sip([
        start,
        f"Via: SIP/2.0/UDP pc33.example.com;branch={branch}",
        "Max-Forwards: 70",
        "From: Alice <sip:alice@example.com>;tag=1928301774",
        "To: Bob <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {_CALL}",
        f"CSeq: {cseq}",
        *extra,
        "Content-Length: 0",
    ])  # fmt: skip


def test_parsed_call_flow() -> None:
    from sip_otel.net.types import PROTO_UDP, SipPayload
    from sip_otel.sip.parser import parse_payload

    f = Flow()
    a, b = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
    flow = [
        (0.0, True, _head("INVITE sip:bob@example.com SIP/2.0", "314159 INVITE", "z9hG4bKnashds8")),
        (0.5, True, _head("INVITE sip:bob@example.com SIP/2.0", "314159 INVITE", "z9hG4bKnashds8")),
        (0.6, False, _head("SIP/2.0 100 Trying", "314159 INVITE", "z9hG4bKnashds8")),
        (0.75, False, _head("SIP/2.0 180 Ringing", "314159 INVITE", "z9hG4bKnashds8", "a6c85cf")),
        (2.0, False, _head("SIP/2.0 200 OK", "314159 INVITE", "z9hG4bKnashds8", "a6c85cf",
                           ("Session-Expires: 600;refresher=uac",))),
        (2.01, True, _head("ACK sip:bob@192.0.2.4 SIP/2.0", "314159 ACK", "z9hG4bKnashds9",
                           "a6c85cf")),
        (32.0, True, _head("BYE sip:bob@192.0.2.4 SIP/2.0", "314160 BYE", "z9hG4bKnashds10",
                           "a6c85cf")),
        (32.03, False, _head("SIP/2.0 200 OK", "314160 BYE", "z9hG4bKnashds10", "a6c85cf")),
    ]  # fmt: skip
    reasons_before = dict(f.reasons.counts)
    for t, is_req, data in flow:
        src, dst = (a, b) if is_req else (b, a)
        (msg,) = parse_payload(SipPayload(ns(t), PROTO_UDP, src, 5060, dst, 5060, data), f.reasons)
        f.send(msg)
    assert f.reasons.counts == reasons_before
    c = f.stats.rfc6076
    assert f.stats.retransmissions == {"INVITE": 1}
    assert (c.invite_attempts, c.invite_success, c.sessions_completed) == (1, 1, 1)
    assert (c.srd_success.count, c.srd_success.total) == (1, pytest.approx(0.75))
    assert (c.sdt.count, c.sdt.total) == (1, pytest.approx(30.0))
    assert (c.sdd_success.count, c.sdd_success.total) == (1, pytest.approx(0.03))
    (rec,) = f.records
    assert isinstance(rec, DialogRecord) and rec.outcome == "completed"
    assert (rec.call_id, rec.src, rec.dst, rec.transport) == (
        _CALL, "192.0.2.1:5060", "192.0.2.2:5060", "udp",
    )  # fmt: skip


# --- property: arbitrary message soup never raises and keeps the books consistent -------

_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "UPDATE", "REGISTER", "OPTIONS")
_STATUSES = (100, 180, 183, 200, 302, 401, 407, 408, 481, 486, 487, 500, 503, 603)

_step = st.tuples(
    st.booleans(),  # request?
    st.sampled_from(_METHODS),
    st.sampled_from(_STATUSES),
    st.sampled_from(("c1", "c2")),  # Call-ID
    st.sampled_from(("", "t1", "t2")),  # To tag
    st.integers(1, 3),  # CSeq
    st.sampled_from(("z9hG4bK-1", "z9hG4bK-2", "z9hG4bK-3", "old-style")),
    st.integers(0, 40_000),  # ms since the previous message
    st.sampled_from((None, 0, 60)),  # Expires / Session-Expires / Retry-After
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=40))
def test_message_soup_keeps_books_consistent(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    f = Flow(TrackerConfig(max_transactions=8, max_dialogs=2, max_invite_attempts=2,
                           max_registrations=2, max_register_attempts=2))  # fmt: skip
    t = 0.0
    for is_req, method, status, cid, tag, cseq, branch, dt, num in steps:
        t += dt / 1000
        req = request(method, t, call_id=cid, to_tag=tag, cseq=cseq, branch=branch,
                      expires=num, session_expires=num, retry_after=num)  # fmt: skip
        f.send(req if is_req else response(req, status, t, to_tag=tag or "t9"))
        g = f.tracker.gauges()
        assert min(g.values()) >= 0
    f.tracker.finish(ns(t + 1.0))
    g = f.tracker.gauges()
    assert (g["sessions"], g["early_dialogs"], g["invite_attempts"]) == (0, 0, 0)
    c = f.stats.rfc6076
    assert c.invite_success + c.invite_3xx <= c.invite_attempts
    assert c.invite_ineffective <= c.invite_attempts
    assert c.sessions_completed <= c.invite_success
    assert c.register_success + c.register_ineffective <= c.register_attempts
    dialog_recs = [r for r in f.records if isinstance(r, DialogRecord)]
    assert sum(f.stats.dialog_outcomes.values()) == len(dialog_recs)
    for ratio in (c.ser(), c.seer(), c.isa(), c.scr(), c.ira()):
        assert ratio is None or 0.0 <= ratio <= 100.0
    for h in (c.srd_success, c.srd_failure, c.sdd_success, c.sdd_failure, c.sdt, c.rrd):
        assert h.total >= 0.0
