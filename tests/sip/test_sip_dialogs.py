"""INVITE attempts and dialogs through the tracker: one hand-computed test per branch.

Every expectation is worked out from the message times in the test (RFC 6076 definitions,
docs/rfc6076.md choices), never from running the code.
"""

from __future__ import annotations

import dataclasses

import pytest
from sipflow import Flow, ns, request, response

from netbuild import ethernet, ipv4, udp
from sip_otel.net.types import LINKTYPE_ETHERNET, Frame
from sip_otel.pipeline import Pipeline
from sip_otel.records import DialogRecord
from sip_otel.sip.dialogs import dialog_id
from sip_otel.sip.tracker import TrackerConfig

approx = pytest.approx
LOOP_A = bytes([127, 0, 0, 1])
LOOP_B = bytes([127, 0, 0, 2])


def samples(h: object) -> tuple[int, float]:
    from sip_otel.stats import Histogram

    assert isinstance(h, Histogram)
    return h.count, h.total


def dialog_records(f: Flow) -> list[DialogRecord]:
    return [r for r in f.records if isinstance(r, DialogRecord)]


def test_dialog_id_is_sorted_tags() -> None:
    assert dialog_id("c", "zz", "aa") == "c:aa:zz" == dialog_id("c", "aa", "zz")


def test_basic_call_srd_sdt_sdd() -> None:
    f = Flow()
    # INVITE 0, 100 at 0.010 (not an SRD end), 180 at 0.120, 200 at 3.0, BYE 63.0, 200 63.040
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 100, 0.010)
    f.resp(inv, 180, 0.120, to_tag="b1")
    f.resp(inv, 200, 3.0, to_tag="b1")
    f.req("ACK", 3.01, to_tag="b1")
    bye = f.req("BYE", 63.0, to_tag="b1", cseq=2)
    f.resp(bye, 200, 63.040)
    c = f.stats.rfc6076
    assert samples(c.srd_success) == (1, approx(0.120))
    assert samples(c.sdt) == (1, approx(60.0))
    assert samples(c.sdd_success) == (1, approx(0.040))
    assert (c.invite_attempts, c.invite_success, c.sessions_completed) == (1, 1, 1)
    (rec,) = dialog_records(f)
    assert rec.outcome == "completed" and rec.srd_s == approx(0.120) and rec.sdt_s == approx(60)
    assert [e.name for e in rec.events] == [
        "sip.provisional", "sip.2xx", "sip.ack", "sip.bye", "sip.bye_response",
    ]  # fmt: skip
    assert rec.start_ns == 0 and rec.end_ns == ns(63.040)


def test_redirect_3xx_then_retried_invite_keeps_srd_start() -> None:
    f = Flow()
    inv1 = f.req("INVITE", 0.0, cseq=1)
    f.resp(inv1, 302, 0.050, to_tag="r")
    f.send(request("ACK", 0.060, cseq=1, to_tag="r", branch=inv1.via_branch))
    inv2 = f.req("INVITE", 0.100, cseq=2)
    f.resp(inv2, 180, 0.300, to_tag="b1")
    f.resp(inv2, 200, 1.0, to_tag="b1")
    f.req("ACK", 1.01, to_tag="b1", cseq=2)
    bye = f.req("BYE", 11.0, to_tag="b1", cseq=3)
    f.resp(bye, 200, 11.05)
    c = f.stats.rfc6076
    # two INVITEs, one answered 3xx: SER = 1/(2-1), ISA = 0/2, SCR = 1/2
    assert (c.invite_attempts, c.invite_3xx, c.invite_success) == (2, 1, 1)
    assert (c.ser(), c.seer(), c.isa(), c.scr()) == (100.0, 100.0, 0.0, 50.0)
    assert samples(c.srd_success) == (1, approx(0.300))  # from the first INVITE (§4.3)
    assert c.srd_failure.count == 0
    assert f.stats.dialog_outcomes == {"redirected": 1, "completed": 1}


@pytest.mark.parametrize("challenge", [401, 407])
def test_challenge_then_200_is_one_attempt(challenge: int) -> None:
    f = Flow()
    inv1 = f.req("INVITE", 0.0, cseq=1)
    f.resp(inv1, challenge, 0.010, to_tag="x")
    f.send(request("ACK", 0.012, cseq=1, to_tag="x", branch=inv1.via_branch))
    inv2 = f.req("INVITE", 0.020, cseq=2)
    f.resp(inv2, 100, 0.025)
    f.resp(inv2, 180, 0.200, to_tag="b1")
    f.resp(inv2, 200, 2.0, to_tag="b1")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success, c.ser()) == (1, 1, 100.0)
    assert samples(c.srd_success) == (1, approx(0.200))  # t1 = the challenged INVITE
    assert f.tracker.gauges()["sessions"] == 1


@pytest.mark.parametrize("challenge", [401, 407])
def test_challenge_retry_as_new_attempt_switch(challenge: int) -> None:
    f = Flow(TrackerConfig(challenge_retry_is_new_attempt=True))
    inv1 = f.req("INVITE", 0.0, cseq=1)
    f.resp(inv1, challenge, 0.010, to_tag="x")
    inv2 = f.req("INVITE", 0.020, cseq=2)
    f.resp(inv2, 180, 0.200, to_tag="b1")
    f.resp(inv2, 200, 2.0, to_tag="b1")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success, c.ser()) == (2, 1, 50.0)
    assert samples(c.srd_success) == (1, approx(0.180))
    assert c.srd_failure.count == 0  # 401/407 are no failure (§4.3.2)
    assert f.stats.dialog_outcomes == {"failed_4xx": 1}


def test_challenge_without_retry_fails_after_64_t1() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 407, 0.010, to_tag="x")
    f.timer(32.0)
    assert f.stats.rfc6076.invite_attempts == 0
    f.timer(32.010)
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success, c.srd_failure.count) == (1, 0, 0)
    assert f.stats.dialog_outcomes == {"failed_4xx": 1}


def test_180_then_486_is_a_failure_srd() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 180, 0.120, to_tag="b1")
    f.resp(inv, 486, 3.0, to_tag="b1")
    c = f.stats.rfc6076
    assert samples(c.srd_failure) == (1, approx(0.120))
    assert c.srd_success.count == 0
    assert (c.ser(), c.seer(), c.isa()) == (0.0, 100.0, 0.0)
    assert f.stats.dialog_outcomes == {"failed_4xx": 1}
    assert f.tracker.gauges()["early_dialogs"] == 0


def test_failure_without_provisional_measures_to_the_final() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 100, 0.005)
    f.resp(inv, 503, 0.250, to_tag="b1")
    c = f.stats.rfc6076
    assert samples(c.srd_failure) == (1, approx(0.250))
    assert (c.isa(), c.seer()) == (100.0, 0.0)
    assert f.stats.dialog_outcomes == {"failed_5xx": 1}


def test_invite_without_answer_until_timer_b() -> None:
    f = Flow()
    f.req("INVITE", 0.0)
    f.req("INVITE", 0.5, branch="z9hG4bK-b1")  # retransmission (Timer A)
    f.timer(31.9)
    assert f.stats.rfc6076.invite_attempts == 0
    f.timer(32.0)
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_ineffective, c.isa(), c.ser()) == (1, 1, 100.0, 0.0)
    assert c.srd_failure.count == 0 and c.srd_success.count == 0  # nothing answered
    assert f.stats.dialog_outcomes == {"timed_out": 1}
    assert f.stats.retransmissions == {"INVITE": 1}
    (rec,) = dialog_records(f)
    assert rec.end_ns == ns(32.0) and rec.final_status == 0


def test_forking_two_early_dialogs_one_answer() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 180, 0.100, to_tag="b1")
    f.resp(inv, 180, 0.200, to_tag="b2")
    assert f.tracker.gauges()["early_dialogs"] == 2
    f.resp(inv, 200, 1.0, to_tag="b2")
    c = f.stats.rfc6076
    assert c.invite_attempts == 1 and c.invite_success == 1  # attempt counted once
    assert samples(c.srd_success) == (2, approx(0.300))  # one SRD per dialog: 0.1 + 0.2
    g = f.tracker.gauges()
    assert (g["early_dialogs"], g["sessions"]) == (0, 1)
    f.tracker.finish(ns(5.0))
    (rec,) = dialog_records(f)
    assert rec.to_tag == "b2" and rec.srd_s == approx(0.200) and rec.outcome == "open"


def test_forking_two_2xx_two_dialogs_one_attempt() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 200, 1.0, to_tag="b1")
    f.resp(inv, 200, 1.5, to_tag="b2")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success) == (1, 1)
    assert samples(c.srd_success) == (2, approx(2.5))
    assert f.tracker.gauges()["sessions"] == 2


def test_forked_2xx_of_an_early_dialog_keeps_its_one_srd() -> None:
    """b2 got its SRD at its 180 (booked with b1's 200); its own 200 adds none (§4.3.1, §5.4)."""
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 180, 0.100, to_tag="b1")
    f.resp(inv, 180, 0.200, to_tag="b2")
    f.resp(inv, 200, 1.0, to_tag="b1")
    f.resp(inv, 200, 1.5, to_tag="b2")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success) == (1, 1)
    assert samples(c.srd_success) == (2, approx(0.300))  # 0.1 (b1) + 0.2 (b2), nothing at 1.5
    assert f.tracker.gauges()["sessions"] == 2
    f.tracker.finish(ns(5.0))
    srd = {r.to_tag: r.srd_s for r in dialog_records(f)}
    assert srd == {"b1": approx(0.100), "b2": approx(0.200)}


def test_forked_2xx_without_provisional_gets_its_srd_at_the_2xx() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 180, 0.100, to_tag="b1")
    f.resp(inv, 200, 1.0, to_tag="b1")
    f.resp(inv, 200, 1.5, to_tag="b2")  # no 18x from b2: its dialog's SRD ends at its 2xx
    assert samples(f.stats.rfc6076.srd_success) == (2, approx(1.600))


def test_reinvite_is_not_an_attempt() -> None:
    f = Flow()
    f.call(0.0, call_id="call-1")  # INVITE 0, 200 at 1.0, ACK
    re_inv = f.req("INVITE", 10.0, to_tag="b1", cseq=2)
    f.send(request("INVITE", 10.5, to_tag="b1", cseq=2, branch=re_inv.via_branch))
    f.resp(re_inv, 200, 10.6)
    assert f.stats.reinvites == 1
    assert f.stats.retransmissions == {"INVITE": 1}
    assert f.stats.rfc6076.invite_attempts == 1


def test_update_refresh_extends_session_expiry() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0, session_expires=90)
    f.resp(inv, 200, 1.0, to_tag="b1", session_expires=90)  # expires at 91.0
    upd = f.req("UPDATE", 60.0, to_tag="b1", cseq=2, session_expires=90)
    f.resp(upd, 200, 60.010, session_expires=90)  # refreshed: expires at 150.010
    f.timer(100.0)
    assert f.tracker.gauges()["sessions"] == 1
    f.timer(150.5)
    assert f.tracker.gauges()["sessions"] == 0
    assert f.stats.dialog_outcomes == {"expired": 1}
    (rec,) = dialog_records(f)
    assert rec.end_ns == ns(150.010) and rec.sdt_s is None
    c = f.stats.rfc6076
    assert (c.sessions_completed, c.scr(), c.sdt.count) == (0, 0.0, 0)


def test_session_expires_expiry_checked_on_the_1s_sweep() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 200, 1.0, to_tag="b1", session_expires=90)  # expires at 91.0
    f.timer(90.5)  # sweep; next sweep not before 91.5
    f.timer(91.2)
    assert f.tracker.gauges()["sessions"] == 1
    f.timer(91.5)
    assert f.stats.dialog_outcomes == {"expired": 1}


def test_default_session_expires_1800s() -> None:
    f = Flow()
    f.call(0.0, call_id="c")  # 200 at 1.0 without Session-Expires
    f.timer(1800.9)  # sweep; the next one is at 1801.9
    assert f.tracker.gauges()["sessions"] == 1
    f.timer(1801.9)
    assert f.stats.dialog_outcomes == {"expired": 1}


def test_cancel_and_487() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 180, 0.100, to_tag="b1")
    cancel = request("CANCEL", 2.0, branch=inv.via_branch)
    f.send(cancel)
    f.send(response(cancel, 200, 2.010))
    f.resp(inv, 487, 2.020, to_tag="b1")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.ser(), c.seer(), c.isa()) == (1, 0.0, 0.0, 0.0)
    assert samples(c.srd_failure) == (1, approx(0.100))  # 487 is a 4xx failure final
    assert f.stats.dialog_outcomes == {"cancelled": 1}
    (rec,) = dialog_records(f)
    assert "sip.cancel" in [e.name for e in rec.events] and rec.final_status == 487


def test_183_then_cancel_is_not_in_sdt() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 183, 0.300, to_tag="b1")  # early media
    cancel = request("CANCEL", 20.0, branch=inv.via_branch)
    f.send(cancel)
    f.send(response(cancel, 200, 20.01))
    f.resp(inv, 487, 20.02, to_tag="b1")
    c = f.stats.rfc6076
    assert c.sdt.count == 0 and c.sessions_completed == 0
    assert f.tracker.gauges()["sessions"] == 0 and f.tracker.gauges()["early_dialogs"] == 0


def test_bye_answered_481_is_bye_failed() -> None:
    f = Flow()
    f.call(0.0, call_id="call-1", bye_at=30.0, bye_status=481, bye_resp_at=30.020)
    c = f.stats.rfc6076
    assert f.stats.dialog_outcomes == {"bye_failed": 1}
    assert samples(c.sdd_failure) == (1, approx(0.020)) and c.sdd_success.count == 0
    # §4.5.2 failed completion: 200 at 1.0 -> the BYE's failure at 30.020
    assert samples(c.sdt_failure) == (1, approx(29.020)) and c.sdt.count == 0
    assert (c.sessions_completed, c.scr()) == (0, 0.0)


def test_bye_503_retry_after_then_retried_bye() -> None:
    f = Flow()
    f.call(0.0, call_id="call-1")  # 200 at 1.0
    bye1 = f.req("BYE", 10.0, to_tag="b1", cseq=2)
    f.resp(bye1, 503, 10.050, retry_after=2)
    assert f.tracker.gauges()["sessions"] == 1  # not an end
    bye2 = f.req("BYE", 12.100, to_tag="b1", cseq=3)
    f.resp(bye2, 200, 12.150)
    c = f.stats.rfc6076
    assert f.stats.dialog_outcomes == {"completed": 1}
    assert samples(c.sdd_success) == (1, approx(2.150))  # from the first BYE (§4.4)
    assert samples(c.sdt) == (1, approx(9.0))
    assert c.sdd_failure.count == 0 and c.scr() == 100.0


def test_bye_503_retry_never_comes() -> None:
    f = Flow()
    f.call(0.0, call_id="call-1")
    bye1 = f.req("BYE", 10.0, to_tag="b1", cseq=2)
    f.resp(bye1, 503, 10.050, retry_after=2)
    f.timer(44.0)  # 10.05 + 2 + 32 = 44.05
    assert f.tracker.gauges()["sessions"] == 1
    f.timer(44.05)
    assert f.stats.dialog_outcomes == {"bye_failed": 1}


def test_bye_timer_f_is_bye_failed_with_sdd_failure() -> None:
    f = Flow()
    f.call(0.0, call_id="call-1")
    f.req("BYE", 10.0, to_tag="b1", cseq=2)
    f.timer(42.0)
    c = f.stats.rfc6076
    assert f.stats.dialog_outcomes == {"bye_failed": 1}
    assert samples(c.sdd_failure) == (1, approx(32.0)) and c.sdd_success.count == 0
    assert samples(c.sdt_failure) == (1, approx(41.0))  # 200 at 1.0 -> Timer F at 42.0
    assert c.sdt.count == 0


def test_invite_retransmissions_do_not_reset_t1() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    for t in (0.5, 1.5):
        f.send(request("INVITE", t, branch=inv.via_branch))
    f.resp(inv, 180, 2.0, to_tag="b1")
    f.resp(inv, 200, 3.0, to_tag="b1")
    c = f.stats.rfc6076
    assert f.stats.retransmissions == {"INVITE": 2}
    assert c.invite_attempts == 1 and samples(c.srd_success) == (1, approx(2.0))


def test_200_retransmissions_do_not_reset_sdt() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    for t in (1.0, 1.5, 2.5):
        f.resp(inv, 200, t, to_tag="b1")
    ack = f.req("ACK", 2.6, to_tag="b1")
    f.send(request("ACK", 2.7, to_tag="b1", branch=ack.via_branch))
    bye = f.req("BYE", 11.0, to_tag="b1", cseq=2)
    f.resp(bye, 200, 11.01)
    f.resp(bye, 200, 11.02)
    c = f.stats.rfc6076
    assert f.stats.retransmissions == {"INVITE": 2, "ACK": 1, "BYE": 1}
    assert samples(c.sdt) == (1, approx(10.0)) and samples(c.srd_success) == (1, approx(1.0))
    assert (c.invite_success, c.sessions_completed) == (1, 1)


def test_mid_call_start_is_not_an_attempt() -> None:
    f = Flow()
    inv = request("INVITE", -5.0, branch="z9hG4bK-unseen")  # never fed to the tracker
    f.send(response(inv, 200, 0.0, to_tag="b1"))
    f.req("ACK", 0.01, to_tag="b1")
    bye = f.req("BYE", 10.0, to_tag="b1", cseq=2)
    f.resp(bye, 200, 10.01)
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success, c.sessions_completed) == (0, 0, 0)
    assert (c.ser(), c.scr()) == (None, None)
    assert f.reasons.get("tracker.orphan_response") == 1
    assert f.reasons.get("dialogs.orphan_bye") == 1
    assert f.stats.dialog_outcomes == {} and f.tracker.gauges()["sessions"] == 0


def test_2xx_confirms_the_dialog_of_its_invite() -> None:
    # The 2xx reaches the attempt through its INVITE transaction (same Via branch) but spells
    # the Call-ID in capitals and carries another From tag. The dialog is the INVITE's:
    # (call-1, a1, b1), so the ACK and BYE that use the INVITE's Call-ID and From tag find it.
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 180, 0.200, to_tag="b1")
    ok = response(inv, 200, 1.0, to_tag="b1")
    f.send(dataclasses.replace(ok, call_id="CALL-1", from_tag="a1-other"))
    f.req("ACK", 1.01, to_tag="b1")
    bye = f.req("BYE", 10.0, to_tag="b1", cseq=2)
    f.resp(bye, 200, 10.05)
    c = f.stats.rfc6076
    assert samples(c.sdt) == (1, approx(9.0))  # 2xx at 1.0 -> BYE at 10.0
    assert samples(c.sdd_success) == (1, approx(0.05))  # BYE at 10.0 -> its 200 at 10.05
    assert (c.invite_attempts, c.invite_success, c.sessions_completed) == (1, 1, 1)
    assert f.reasons.get("dialogs.orphan_bye") == 0
    assert f.stats.dialog_outcomes == {"completed": 1}
    (rec,) = dialog_records(f)
    assert (rec.call_id, rec.from_tag, rec.to_tag) == ("call-1", "a1", "b1")
    assert [e.name for e in rec.events] == [
        "sip.provisional", "sip.2xx", "sip.ack", "sip.bye", "sip.bye_response",
    ]  # fmt: skip


def test_2xx_confirms_the_dialog_of_its_invite_without_records() -> None:
    # The same call through the pipeline with no record sink (the attempt keeps its strings
    # anyway: they key the dialog). Loopback UDP frames, one message each.
    def sip(start: str, t: float, cseq: str, *, branch: str, call_id: str = "call-1",
            from_tag: str = "a1", to_tag: str = "") -> Frame:  # fmt: skip
        to = "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        text = (
            f"{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
            f"From: <sip:alice@127.0.0.1>;tag={from_tag}\r\nTo: {to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
        )
        data = ethernet(ipv4(udp(text.encode()), src=LOOP_A, dst=LOOP_B))
        return Frame(ns(t), LINKTYPE_ETHERNET, data)

    invite = "INVITE sip:bob@127.0.0.1 SIP/2.0"
    frames = [
        sip(invite, 0.0, "1 INVITE", branch="z9hG4bK-i"),
        sip(
            "SIP/2.0 200 OK",
            1.0,
            "1 INVITE",
            branch="z9hG4bK-i",
            call_id="CALL-1",
            from_tag="a1-other",
            to_tag="b1",
        ),
        sip("ACK sip:bob@127.0.0.1 SIP/2.0", 1.01, "1 ACK", branch="z9hG4bK-a", to_tag="b1"),
        sip("BYE sip:bob@127.0.0.1 SIP/2.0", 10.0, "2 BYE", branch="z9hG4bK-b", to_tag="b1"),
        sip("SIP/2.0 200 OK", 10.05, "2 BYE", branch="z9hG4bK-b", to_tag="b1"),
    ]
    p = Pipeline()
    p.feed(frames)
    p.finish()
    assert p.stats.messages == 5
    assert p.stats.dialog_outcomes == {"completed": 1}
    assert p.reasons.get("dialogs.orphan_bye") == 0
    assert samples(p.stats.rfc6076.sdt) == (1, approx(9.0))


def test_same_invite_on_two_hops_is_one_attempt() -> None:
    f = Flow()
    leg1 = f.req("INVITE", 0.0, sent_by="10.0.0.1:5060")
    leg2 = f.req("INVITE", 0.002, sent_by="10.0.0.5:5060")  # proxy forwards, own branch
    f.resp(leg2, 180, 0.100, to_tag="b1")
    f.resp(leg1, 180, 0.102, to_tag="b1")
    f.resp(leg2, 200, 1.0, to_tag="b1")
    f.resp(leg1, 200, 1.002, to_tag="b1")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success) == (1, 1)
    assert samples(c.srd_success) == (1, approx(0.100))
    assert f.stats.retransmissions == {}


def test_reinvite_2xx_refreshes_expiry() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 200, 1.0, to_tag="b1", session_expires=90)  # expires at 91.0
    re_inv = f.req("INVITE", 80.0, to_tag="b1", cseq=2)
    f.resp(re_inv, 200, 80.5, session_expires=120)  # expires at 200.5
    f.timer(199.9)
    assert f.tracker.gauges()["sessions"] == 1
    f.timer(200.9)
    assert f.stats.dialog_outcomes == {"expired": 1}


def test_update_in_early_dialog_is_ignored() -> None:
    f = Flow()
    inv = f.req("INVITE", 0.0)
    f.resp(inv, 183, 0.1, to_tag="b1")
    upd = f.req("UPDATE", 0.2, to_tag="b1", cseq=2)
    f.resp(upd, 200, 0.21)
    f.resp(inv, 200, 1.0, to_tag="b1")
    assert f.reasons.counts == {} and f.stats.rfc6076.invite_success == 1


def test_early_dialogs_per_attempt_are_bounded() -> None:
    from sip_otel.sip.dialogs import MAX_EARLY_PER_ATTEMPT

    f = Flow()
    inv = f.req("INVITE", 0.0)
    for i in range(MAX_EARLY_PER_ATTEMPT + 5):
        f.resp(inv, 180, 0.1 + i / 1000, to_tag=f"fork{i}")
    assert f.tracker.gauges()["early_dialogs"] == MAX_EARLY_PER_ATTEMPT
    f.resp(inv, 486, 1.0, to_tag="fork0")
    assert f.stats.rfc6076.srd_failure.count == MAX_EARLY_PER_ATTEMPT
    assert f.tracker.gauges()["early_dialogs"] == 0


def test_challenged_attempts_table_is_bounded() -> None:
    f = Flow(TrackerConfig(max_invite_attempts=1))
    for i in range(2):
        inv = f.req("INVITE", float(i), call_id=f"c{i}")
        f.resp(inv, 407, i + 0.01, to_tag="x")
    assert f.stats.evictions == {"attempts.full": 1}
    assert f.stats.dialog_outcomes == {"evicted": 1}
    inv = f.req("INVITE", 1.02, call_id="c1", cseq=2)  # c1's retry still resumes its attempt
    f.resp(inv, 200, 1.5, to_tag="b")
    c = f.stats.rfc6076
    assert (c.invite_attempts, c.invite_success) == (1, 1)
    assert samples(c.srd_success) == (1, approx(0.5))
