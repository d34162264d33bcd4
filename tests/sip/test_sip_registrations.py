"""REGISTER attempts, challenges, unregisters and active registrations (RFC 6076 §4.1-§4.2)."""

from __future__ import annotations

import pytest
from sipflow import Flow, ns

from sip_otel.records import RegistrationRecord
from sip_otel.sip.tracker import TrackerConfig

approx = pytest.approx
AOR = "sip:alice@example.com"


def reg_records(f: Flow) -> list[RegistrationRecord]:
    return [r for r in f.records if isinstance(r, RegistrationRecord)]


def test_challenge_then_200_is_one_attempt_rrd_from_first_register() -> None:
    f = Flow()
    r1 = f.req("REGISTER", 0.0, to_uri=AOR, cseq=1, expires=3600)
    f.resp(r1, 401, 0.020)
    r2 = f.req("REGISTER", 0.050, to_uri=AOR, cseq=2, expires=3600)
    f.resp(r2, 200, 0.080, contact_expires=3600)
    c = f.stats.rfc6076
    assert (c.register_attempts, c.register_success, c.register_ineffective) == (1, 1, 0)
    assert c.ira() == 0.0
    assert (c.rrd.count, c.rrd.total) == (1, approx(0.080))
    assert f.tracker.gauges()["registrations"] == 1
    (rec,) = reg_records(f)
    assert rec.outcome == "registered" and rec.challenged and rec.rrd_s == approx(0.080)


def test_challenge_as_new_attempt_switch() -> None:
    f = Flow(TrackerConfig(challenge_retry_is_new_attempt=True))
    r1 = f.req("REGISTER", 0.0, to_uri=AOR, cseq=1)
    f.resp(r1, 407, 0.020)
    r2 = f.req("REGISTER", 0.050, to_uri=AOR, cseq=2)
    f.resp(r2, 200, 0.080)
    c = f.stats.rfc6076
    assert (c.register_attempts, c.register_success, c.register_ineffective) == (2, 1, 0)
    assert (c.rrd.count, c.rrd.total) == (1, approx(0.030))
    assert f.stats.register_failures == {407: 1}


def test_unregister_is_not_a_registration() -> None:
    f = Flow()
    r1 = f.req("REGISTER", 0.0, to_uri=AOR, cseq=1, expires=3600)
    f.resp(r1, 200, 0.010)
    assert f.tracker.gauges()["registrations"] == 1
    r2 = f.req("REGISTER", 5.0, to_uri=AOR, cseq=2, expires=0)
    f.resp(r2, 200, 5.010)
    r3 = f.req("REGISTER", 6.0, to_uri=AOR, cseq=3, contact_expires=0, expires=3600)
    f.resp(r3, 200, 6.010)
    c = f.stats.rfc6076
    assert f.tracker.gauges()["registrations"] == 0
    assert (c.register_attempts, c.register_success, c.rrd.count) == (3, 1, 1)
    assert [r.outcome for r in reg_records(f)] == ["registered", "unregistered", "unregistered"]


def test_contact_star_is_unregister() -> None:
    f = Flow()
    r = f.req("REGISTER", 0.0, to_uri=AOR, contact_star=True, expires=0)
    f.resp(r, 200, 0.010)
    assert reg_records(f)[0].outcome == "unregistered"


def test_registration_expires_on_the_sweep() -> None:
    f = Flow()
    r = f.req("REGISTER", 0.0, to_uri=AOR, expires=60)
    f.resp(r, 200, 0.5)  # no expiry in the 2xx: the request's 60 s -> 60.5
    f.timer(60.0)  # sweep; next at 61.0
    assert f.tracker.gauges()["registrations"] == 1
    f.timer(61.0)
    assert f.tracker.gauges()["registrations"] == 0


def test_refresh_keeps_one_active_registration() -> None:
    f = Flow()
    for i, t in enumerate((0.0, 30.0)):
        r = f.req("REGISTER", t, to_uri=AOR, cseq=i + 1, expires=60)
        f.resp(r, 200, t + 0.01, contact_expires=60)
    f.timer(61.0)
    assert f.tracker.gauges()["registrations"] == 1  # refreshed to 90.01


@pytest.mark.parametrize(("code", "ineffective"), [(403, 1), (500, 1), (603, 1), (402, 0)])
def test_failure_finals_and_ira(code: int, ineffective: int) -> None:
    f = Flow()
    r = f.req("REGISTER", 0.0, to_uri=AOR)
    f.resp(r, code, 0.1)
    c = f.stats.rfc6076
    assert (c.register_attempts, c.register_ineffective) == (1, ineffective)
    assert f.stats.register_failures == {code: 1}
    assert c.rrd.count == 0


def test_register_timer_f_is_ineffective() -> None:
    f = Flow()
    f.req("REGISTER", 0.0, to_uri=AOR)
    f.timer(32.0)
    c = f.stats.rfc6076
    assert (c.register_attempts, c.register_ineffective, c.ira()) == (1, 1, 100.0)
    assert reg_records(f)[0].outcome == "timed_out"


def test_register_retransmission_counted_once() -> None:
    f = Flow()
    r = f.req("REGISTER", 0.0, to_uri=AOR)
    f.send(r)
    f.resp(r, 200, 0.6)
    assert f.stats.retransmissions == {"REGISTER": 1}
    assert f.stats.rfc6076.register_attempts == 1


def test_challenge_without_retry_fails_after_64_t1() -> None:
    f = Flow()
    r = f.req("REGISTER", 0.0, to_uri=AOR)
    f.resp(r, 401, 0.010)
    f.timer(32.010)
    c = f.stats.rfc6076
    assert (c.register_attempts, c.register_ineffective) == (1, 0)  # 401 is not an IRA
    assert reg_records(f)[0].end_ns == ns(32.010)


def test_open_register_at_finish_is_not_counted() -> None:
    f = Flow()
    f.req("REGISTER", 0.0, to_uri=AOR)
    f.tracker.finish(ns(1.0))
    assert f.stats.rfc6076.register_attempts == 0
    assert reg_records(f)[0].outcome == "open"


def test_same_register_on_two_hops_is_one_attempt() -> None:
    f = Flow()
    r1 = f.req("REGISTER", 0.0, to_uri=AOR, sent_by="10.0.0.1:5060")
    r2 = f.req("REGISTER", 0.002, to_uri=AOR, sent_by="10.0.0.5:5060")  # proxy hop
    f.resp(r2, 200, 0.050)
    f.resp(r1, 200, 0.052)
    c = f.stats.rfc6076
    assert (c.register_attempts, c.register_success) == (1, 1)
    assert (c.rrd.count, c.rrd.total) == (1, approx(0.050))


def test_registration_table_limit_evicts_least_recently_refreshed() -> None:
    f = Flow(TrackerConfig(max_registrations=2))
    # b (expires at 51 s) is the least recently refreshed when c comes: b goes, a (refreshed
    # at 2 s, expires at 102 s) and c (1003 s) stay. Which two stay shows in the expiry sweep.
    expires = {"sip:a@x": 100, "sip:b@x": 50, "sip:c@x": 1000}
    for i, aor in enumerate(("sip:a@x", "sip:b@x", "sip:a@x", "sip:c@x")):
        r = f.req("REGISTER", float(i), to_uri=aor, call_id=f"r{i}", expires=expires[aor])
        f.resp(r, 200, i + 0.01)
    assert f.stats.evictions == {"registrations.full": 1}
    assert f.tracker.gauges()["registrations"] == 2
    f.timer(60.0)  # b would have lapsed by now: nothing changes
    assert f.tracker.gauges()["registrations"] == 2
    f.timer(110.0)  # a lapses
    assert f.tracker.gauges()["registrations"] == 1
    f.timer(1010.0)  # c lapses
    assert f.tracker.gauges()["registrations"] == 0
