"""Pure RFC 6076 aggregation: hand-built events -> counters, ratios and the report shape."""

from __future__ import annotations

import pytest

from sip_otel.records import DialogRecord, RegistrationRecord
from sip_otel.rfc6076 import (
    DIALOG_OUTCOMES,
    aggregate,
    dialog_outcomes_report,
    is_failure_final,
    rfc6076_report,
)
from sip_otel.sip.dialogs import AttemptEnded, ForkedDialogConfirmed, SessionEnded
from sip_otel.sip.registrations import RegistrationEnded
from sip_otel.stats import PipelineStats, Rfc6076Counters

S = 1_000_000_000
DREC = DialogRecord("c", "", "", "", "", 0, 0, "x", 0, "", "", "")
RREC = RegistrationRecord("aor", "c", 0, 0, "x", 0, "", "", "")


def attempt(status: int, srd: tuple[float, ...] = (), timer: str = "", outcome: str = "x") -> (
        AttemptEnded):  # fmt: skip
    return AttemptEnded(outcome, status, timer, tuple(round(s * S) for s in srd), DREC)


@pytest.mark.parametrize(
    ("status", "failure"),
    [(400, True), (401, False), (402, False), (403, True), (407, False), (408, True),
     (486, True), (487, True), (500, True), (503, True), (603, True), (200, False),
     (302, False), (180, False)],
)  # fmt: skip
def test_failure_final_set(status: int, failure: bool) -> None:
    assert is_failure_final(status) is failure


@pytest.mark.parametrize(
    ("status", "timer", "ser_num", "seer_num", "isa_num", "three_xx"),
    [(200, "", 1, 1, 0, 0), (486, "", 0, 1, 0, 0), (480, "", 0, 1, 0, 0), (600, "", 0, 1, 0, 0),
     (603, "", 0, 1, 0, 0), (404, "", 0, 0, 0, 0), (408, "", 0, 0, 1, 0), (500, "", 0, 0, 1, 0),
     (503, "", 0, 0, 1, 0), (504, "", 0, 0, 1, 0), (502, "", 0, 0, 0, 0), (302, "", 0, 0, 0, 1),
     (0, "B", 0, 0, 1, 0), (0, "C", 0, 0, 0, 0), (401, "", 0, 0, 0, 0)],
)  # fmt: skip
def test_attempt_classification(status: int, timer: str, ser_num: int, seer_num: int,
                                isa_num: int, three_xx: int) -> None:  # fmt: skip
    c = Rfc6076Counters()
    aggregate(c, attempt(status, timer=timer))
    assert c.invite_attempts == 1
    assert (c.invite_success, c.invite_effective, c.invite_ineffective, c.invite_3xx) == (
        ser_num, seer_num, isa_num, three_xx,
    )  # fmt: skip


def test_srd_success_and_failure_never_combined() -> None:
    c = Rfc6076Counters()
    aggregate(c, attempt(200, (0.1, 0.2)))
    aggregate(c, attempt(486, (0.5,)))
    aggregate(c, attempt(302, (0.05,)))  # redirected: SRD continues on the retry
    aggregate(c, attempt(407, (0.01,)))  # challenge never answered: no SRD
    aggregate(c, attempt(0, (0.3,), timer="C"))  # rang, then gave up: failure
    aggregate(c, ForkedDialogConfirmed(round(0.4 * S)))
    assert (c.srd_success.count, c.srd_success.total) == (3, pytest.approx(0.7))
    assert (c.srd_failure.count, c.srd_failure.total) == (2, pytest.approx(0.8))


def test_unresolved_attempts_are_not_counted() -> None:
    c = Rfc6076Counters()
    aggregate(c, attempt(0, outcome="open"))
    aggregate(c, attempt(0, outcome="evicted"))
    assert c.invite_attempts == 0 and c.ser() is None


def test_session_end() -> None:
    c = Rfc6076Counters()
    aggregate(c, SessionEnded("completed", 60 * S, S // 4, True, True, DREC))
    aggregate(c, SessionEnded("completed", 30 * S, S // 2, True, False, DREC))  # 2nd fork
    aggregate(c, SessionEnded("bye_failed", 10 * S, 32 * S, False, False, DREC))
    aggregate(c, SessionEnded("expired", None, None, False, False, DREC))
    assert c.sessions_completed == 1
    assert (c.sdt.count, c.sdt.total) == (2, pytest.approx(90.0))
    assert (c.sdt_failure.count, c.sdt_failure.total) == (1, pytest.approx(10.0))
    assert (c.sdd_success.count, c.sdd_success.total) == (2, pytest.approx(0.75))
    assert (c.sdd_failure.count, c.sdd_failure.total) == (1, pytest.approx(32.0))


@pytest.mark.parametrize(
    ("outcome", "status", "attempts", "success", "ineffective"),
    [("registered", 200, 1, 1, 0), ("unregistered", 200, 1, 0, 0), ("failed", 403, 1, 0, 1),
     ("failed", 401, 1, 0, 0), ("failed", 302, 1, 0, 0), ("timed_out", 0, 1, 0, 1),
     ("open", 0, 0, 0, 0)],
)  # fmt: skip
def test_registration(outcome: str, status: int, attempts: int, success: int,
                      ineffective: int) -> None:  # fmt: skip
    c = Rfc6076Counters()
    rrd = S // 10 if outcome == "registered" else None
    aggregate(c, RegistrationEnded(outcome, status, rrd, RREC))
    assert (c.register_attempts, c.register_success, c.register_ineffective) == (
        attempts, success, ineffective,
    )  # fmt: skip
    assert c.rrd.count == success


def test_report_shape_and_values() -> None:
    st = PipelineStats()
    c = st.rfc6076
    for _ in range(3):
        aggregate(c, attempt(200, (0.1,)))
    aggregate(c, attempt(503, (0.2,)))
    rep = rfc6076_report(st)
    assert set(rep) == {"ser", "seer", "isa", "scr", "ira", "srd_success", "srd_failure", "sdd",
                        "sdd_failure", "sdt", "sdt_failure", "rrd"}  # fmt: skip
    assert (rep["ser"], rep["seer"], rep["isa"], rep["scr"], rep["ira"]) == (
        75.0, 75.0, 25.0, 0.0, None,
    )  # fmt: skip
    assert rep["srd_success"]["count"] == 3
    assert rep["srd_success"]["mean_s"] == pytest.approx(0.1)
    assert set(rep["srd_failure"]) == {"count", "mean_s", "p50_s", "p95_s"}


def test_dialog_outcomes_report_is_the_full_bounded_set() -> None:
    st = PipelineStats()
    st.dialog_outcomes["completed"] = 3
    rep = dialog_outcomes_report(st)
    assert list(rep) == list(DIALOG_OUTCOMES) and len(rep) == 11
    assert rep["completed"] == 3 and sum(rep.values()) == 3
