"""The four state machines run from their transition tables: every row exists, and a set of
hand-written flows walks every row that changes something.

The tables are C data (``_c/so_track_sm.c``); the tracker counts each row it takes. A flow below
is named after the rows it is there for; the expected rows come from the RFC 3261 / RFC 6076
rules written next to each row (``machine_rows()[i][5]``), not from running the code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from sipflow import Flow, request, response

from sip_otel import _core
from sip_otel.sip.tracker import TrackerConfig

ROWS = _core.machine_rows()
STATES = {
    "transaction": {"calling", "proceeding", "completed"},
    "attempt": {"proceeding", "challenged", "answered", "ended"},
    "dialog": {"confirmed", "bye_sent", "bye_retry", "ended"},
    "registration": {"pending", "challenged", "ended"},
}


def test_every_state_input_pair_has_a_row_with_its_rule() -> None:
    seen: Counter[str] = Counter()
    for machine, state, inp, nxt, _action, rule in ROWS:
        assert state in STATES[machine]
        assert nxt in STATES[machine], (machine, state, inp)
        assert rule, (machine, state, inp)
        seen[machine] += 1
    inputs = {m: {r[2] for r in ROWS if r[0] == m} for m in STATES}
    for machine, states in STATES.items():
        assert seen[machine] == len(states) * len(inputs[machine])


def test_ignored_inputs_keep_the_state() -> None:
    for machine, state, inp, nxt, action, _rule in ROWS:
        if machine != "transaction" and action == 0:
            assert nxt == state, (machine, state, inp)


# -- flows ----------------------------------------------------------------------------------------


def call_with_bye_answers(f: Flow) -> None:
    """Forked answer, re-INVITE refresh, BYE 503+Retry-After, retried BYE 2xx; BYE 481; BYE
    unanswered (Timer F); a late provisional and a forked 2xx in Completed."""
    inv = f.req("INVITE", 0.0, call_id="c1")
    f.resp(inv, 180, 0.1, to_tag="t1")  # calling -> proceeding
    f.resp(inv, 183, 0.2, to_tag="t1")  # proceeding + provisional
    f.resp(inv, 200, 1.0, to_tag="t1")  # proceeding + final
    f.resp(inv, 180, 1.1, to_tag="t9")  # completed + provisional (late)
    f.resp(inv, 200, 1.2, to_tag="t2")  # completed + final (fork): attempt answered + 2xx
    f.req("ACK", 1.3, call_id="c1", to_tag="t1")
    re = f.req("INVITE", 5.0, call_id="c1", to_tag="t1", cseq=2)
    f.resp(re, 200, 5.1, session_expires=90)  # dialog refresh
    bye = f.req("BYE", 10.0, call_id="c1", to_tag="t1", cseq=3)
    f.resp(bye, 503, 10.1, retry_after=1)  # bye_sent -> bye_retry
    bye2 = f.req("BYE", 11.5, call_id="c1", to_tag="t1", cseq=4)  # bye_retry + bye
    f.resp(bye2, 200, 11.6)  # bye_2xx
    bye3 = f.req("BYE", 12.0, call_id="c1", to_tag="t2", cseq=3)
    f.resp(bye3, 481, 12.1)  # bye_fail
    f.call(20.0, call_id="c2")
    f.req("BYE", 30.0, call_id="c2", to_tag="b1", cseq=2)  # no answer: Timer F
    f.timer(70.0)  # calling + deadline, completed + deadline (lingers end)


def bye_retry_never_comes(f: Flow) -> None:
    f.call(0.0, call_id="r1")
    bye = f.req("BYE", 2.0, call_id="r1", to_tag="b1", cseq=2)
    f.resp(bye, 401, 2.1)  # bye_retry
    f.timer(40.0)  # retry_over


def attempt_endings(f: Flow) -> None:
    """Challenge + retry, challenge abandoned, CANCEL + 487, Timer B, Timer C, 3xx."""
    inv = f.req("INVITE", 0.0, call_id="a1", cseq=1)
    f.resp(inv, 407, 0.1, to_tag="x")  # challenge
    inv2 = f.req("INVITE", 0.2, call_id="a1", cseq=2)  # retry
    f.resp(inv2, 200, 0.5, to_tag="y")
    inv = f.req("INVITE", 1.0, call_id="a2")
    f.resp(inv, 401, 1.1, to_tag="x")  # challenge, never retried: abandon at 33.1
    inv = f.req("INVITE", 2.0, call_id="a3")
    f.resp(inv, 180, 2.1, to_tag="r")
    cancel = f.send(request("CANCEL", 2.5, call_id="a3", branch=inv.via_branch))
    assert cancel == []
    f.resp(inv, 487, 2.6, to_tag="r")  # final
    f.req("INVITE", 3.0, call_id="a4")  # Timer B at 35.0
    inv = f.req("INVITE", 4.0, call_id="a5")
    f.resp(inv, 180, 4.1, to_tag="r")  # proceeding + deadline: Timer C stand-in at 304.0
    inv = f.req("INVITE", 5.0, call_id="a6", cseq=1)
    f.resp(inv, 302, 5.1, to_tag="m")
    f.req("INVITE", 5.2, call_id="a6", cseq=2)  # redirected retry (carry)
    f.timer(40.0)
    f.timer(305.0)


def options_timer_f_after_provisional(f: Flow) -> None:
    opt = f.req("OPTIONS", 0.0)
    f.resp(opt, 100, 0.1)  # non-INVITE in proceeding: Timer F still runs
    f.timer(40.0)


def table_limits(f: Flow) -> None:
    """Evictions in every state that has them: attempts, pending (challenged), dialogs with a
    BYE pending and waiting for a retry, registrations pending and challenged."""
    f.req("INVITE", 0.0, call_id="e1")
    f.req("INVITE", 0.1, call_id="e2")  # attempts full: e1 evicted (proceeding)
    for i, cid in enumerate(("p1", "p2")):
        inv = f.req("INVITE", 1.0 + i, call_id=cid)
        f.resp(inv, 407, 1.05 + i, to_tag="x")  # pending full: p1 evicted (challenged)
    f.call(3.0, call_id="d1")
    f.req("BYE", 4.5, call_id="d1", to_tag="b1", cseq=2)  # d1 in bye_sent
    f.call(5.0, call_id="d2")  # dialogs full: d1 evicted in bye_sent
    bye = f.req("BYE", 6.5, call_id="d2", to_tag="b1", cseq=2)
    f.resp(bye, 503, 6.6, retry_after=5)
    f.call(7.0, call_id="d3")  # d2 evicted in bye_retry
    f.call(7.5, call_id="d4")  # d3 evicted (confirmed)
    r = f.req("REGISTER", 8.0, call_id="g1", to_uri="sip:a@x")
    f.resp(r, 401, 8.1)  # challenged
    f.req("REGISTER", 8.2, call_id="g2", to_uri="sip:b@x")  # g1 evicted (challenged)
    f.req("REGISTER", 8.3, call_id="g3", to_uri="sip:c@x")  # g2 evicted (pending)


def open_at_the_end(f: Flow) -> None:
    f.req("INVITE", 0.0, call_id="o1")  # attempt open
    inv = f.req("INVITE", 0.1, call_id="o2")
    f.resp(inv, 401, 0.2, to_tag="x")  # challenged, open at the end
    f.call(1.0, call_id="o3")  # confirmed, open
    f.call(2.0, call_id="o4")
    f.req("BYE", 4.0, call_id="o4", to_tag="b1", cseq=2)  # bye_sent, open
    f.call(5.0, call_id="o5")
    bye = f.req("BYE", 7.0, call_id="o5", to_tag="b1", cseq=2)
    f.resp(bye, 503, 7.1, retry_after=60)  # bye_retry, open
    f.req("REGISTER", 8.0, call_id="q1", to_uri="sip:a@x")  # pending, open
    r = f.req("REGISTER", 8.1, call_id="q2", to_uri="sip:b@x")
    f.resp(r, 407, 8.2)  # challenged, open
    f.tracker.finish(9_000_000_000)


def session_expiry(f: Flow) -> None:
    inv = f.req("INVITE", 0.0, call_id="x1", session_expires=90)
    f.resp(inv, 200, 1.0, to_tag="t", session_expires=90)
    f.timer(92.0)  # expire


def registrations(f: Flow) -> None:
    r = f.req("REGISTER", 0.0, call_id="r1", to_uri="sip:a@x", cseq=1)
    f.resp(r, 401, 0.1)  # challenge
    r2 = f.req("REGISTER", 0.2, call_id="r1", to_uri="sip:a@x", cseq=2)  # retry
    f.resp(r2, 200, 0.3)  # 2xx
    r = f.req("REGISTER", 1.0, call_id="r2", to_uri="sip:b@x")
    f.resp(r, 403, 1.1)  # final
    f.req("REGISTER", 2.0, call_id="r3", to_uri="sip:c@x")  # Timer F
    r = f.req("REGISTER", 3.0, call_id="r4", to_uri="sip:d@x")
    f.resp(r, 407, 3.1)  # challenged, abandoned
    f.timer(40.0)


FLOWS: list[tuple[Callable[[Flow], None], TrackerConfig]] = [
    (call_with_bye_answers, TrackerConfig()),
    (bye_retry_never_comes, TrackerConfig()),
    (attempt_endings, TrackerConfig()),
    (options_timer_f_after_provisional, TrackerConfig()),
    (table_limits, TrackerConfig(max_invite_attempts=1, max_dialogs=1, max_register_attempts=1)),
    (open_at_the_end, TrackerConfig()),
    (session_expiry, TrackerConfig()),
    (registrations, TrackerConfig()),
]


@pytest.fixture(scope="module")
def hits() -> Counter[tuple[str, str, str]]:
    total: Counter[tuple[str, str, str]] = Counter()
    for flow, config in FLOWS:
        f = Flow(config)
        flow(f)
        assert not {k: v for k, v in f.reasons.counts.items() if k.startswith("internal.")}
        total.update(f.tracker._core.machine_hits())
    return total


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r[0] == "transaction" or r[4] == 1],
    ids=lambda r: f"{r[0]}:{r[1]}+{r[2]}",
)
def test_flows_walk_the_row(row: tuple[str, str, str, str, int, str],
                            hits: Counter[tuple[str, str, str]]) -> None:  # fmt: skip
    machine, state, inp = row[:3]
    assert hits[(machine, state, inp)] > 0, f"no flow takes {machine} {state} + {inp}: {row[5]}"


def test_response_helper_still_builds_answers() -> None:
    # the flows above lean on sipflow's request/response; keep them honest
    req = request("INVITE", 1.0)
    assert response(req, 180, 1.5, to_tag="t").to_tag == "t"
