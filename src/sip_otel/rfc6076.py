"""RFC 6076 aggregation: attempt/session/registration events -> :class:`Rfc6076Counters`.

Pure functions, no I/O. The tracker (:mod:`sip_otel.sip.tracker`) produces the events on packet
time; every rule the RFC leaves open is written down in docs/rfc6076.md and cited here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .sip.events import AttemptEnded, ForkedDialogConfirmed, RegistrationEnded, SessionEnded
from .stats import Histogram, PipelineStats, Rfc6076Counters

__all__ = [
    "DIALOG_OUTCOMES",
    "ISA_CODES",
    "SEER_CODES",
    "aggregate",
    "count_attempt",
    "count_forked",
    "count_registration",
    "count_session",
    "dialog_outcomes_report",
    "is_failure_final",
    "rfc6076_report",
]

# §4.7: answers that show the network did its job (200 read as any 2xx, docs/rfc6076.md).
SEER_CODES: Final = frozenset({200, 480, 486, 600, 603})
# §4.8: the RFC's guideline list of ineffective answers (Timer B is added by the caller).
ISA_CODES: Final = frozenset({408, 500, 503, 504})
# §4.3.2 / §4.2: failure finals are 4xx except these, 5xx, 6xx.
_NOT_FAILURE: Final = frozenset({401, 402, 407})
# Outcomes that say nothing about the attempt (still open, or dropped by a table limit).
_UNRESOLVED: Final = frozenset({"open", "evicted"})

# The bounded set of dialog outcomes (docs/rfc6076.md explains each).
DIALOG_OUTCOMES: Final = (
    "completed", "failed_4xx", "failed_5xx", "failed_6xx", "redirected", "cancelled",
    "timed_out", "bye_failed", "expired", "evicted", "open",
)  # fmt: skip

_NS: Final = 1e9


def is_failure_final(status: int) -> bool:
    """RFC 6076 §4.2/§4.3.2: a final 4xx other than 401/402/407, or a 5xx/6xx."""
    return 400 <= status < 700 and status not in _NOT_FAILURE


def count_attempt(c: Rfc6076Counters, ev: AttemptEnded) -> None:
    """Fold one ended INVITE attempt (the tracker calls the four ``count_*`` directly)."""
    if ev.outcome in _UNRESOLVED:
        return
    c.invite_attempts += 1  # §4.6-§4.9 denominators: one per initial INVITE attempt
    status = ev.final_status
    if 200 <= status < 300:
        c.invite_success += 1  # §4.6
        c.invite_effective += 1  # §4.7
        for d in ev.srd_ns:
            c.srd_success.observe(d / _NS)  # §4.3.1
        return
    if 300 <= status < 400:
        c.invite_3xx += 1  # §4.6/§4.7 leave the denominator; SRD carried to the retry
        return
    if status in SEER_CODES:
        c.invite_effective += 1
    if status in ISA_CODES or ev.timer == "B":
        c.invite_ineffective += 1  # §4.8
    if is_failure_final(status) or ev.timer:
        for d in ev.srd_ns:
            c.srd_failure.observe(d / _NS)  # §4.3.2


def count_forked(c: Rfc6076Counters, ev: ForkedDialogConfirmed) -> None:
    c.srd_success.observe(ev.srd_ns / _NS)  # §5.4: one SRD per dialog created


def count_session(c: Rfc6076Counters, ev: SessionEnded) -> None:
    if ev.sdt_ns is not None:  # §4.5, confirmed dialogs only (never early-media-only)
        (c.sdt if ev.sdd_ok else c.sdt_failure).observe(ev.sdt_ns / _NS)
    if ev.sdd_ns is not None:
        (c.sdd_success if ev.sdd_ok else c.sdd_failure).observe(ev.sdd_ns / _NS)  # §4.4
    if ev.completes_attempt:
        c.sessions_completed += 1  # §4.9


def count_registration(c: Rfc6076Counters, ev: RegistrationEnded) -> None:
    if ev.outcome in _UNRESOLVED:
        return
    c.register_attempts += 1  # §4.2 denominator: one per attempt (challenge + retry = one)
    if ev.outcome == "registered":
        c.register_success += 1
        if ev.rrd_ns is not None:
            c.rrd.observe(ev.rrd_ns / _NS)  # §4.1
    elif ev.outcome == "timed_out" or is_failure_final(ev.final_status):
        c.register_ineffective += 1  # §4.2


_DISPATCH: Final[dict[type, Callable[[Rfc6076Counters, Any], None]]] = {
    AttemptEnded: count_attempt,
    ForkedDialogConfirmed: count_forked,
    SessionEnded: count_session,
    RegistrationEnded: count_registration,
}


def aggregate(counters: Rfc6076Counters, event: object) -> None:
    """Fold one tracker event into the counters (events of other types are ignored)."""
    fn = _DISPATCH.get(type(event))
    if fn is not None:
        fn(counters, event)


def _delay(h: Histogram) -> dict[str, Any]:
    return {"count": h.count, "mean_s": h.mean(), "p50_s": h.quantile(0.5),
            "p95_s": h.quantile(0.95)}  # fmt: skip


def rfc6076_report(stats: PipelineStats) -> dict[str, Any]:
    """The ``"rfc6076"`` JSON object of ``sip-otel replay`` (ratios in percent or None)."""
    c = stats.rfc6076
    return {
        "ser": c.ser(),
        "seer": c.seer(),
        "isa": c.isa(),
        "scr": c.scr(),
        "ira": c.ira(),
        "srd_success": _delay(c.srd_success),
        "srd_failure": _delay(c.srd_failure),
        "sdd": _delay(c.sdd_success),
        "sdd_failure": _delay(c.sdd_failure),
        "sdt": _delay(c.sdt),
        "sdt_failure": _delay(c.sdt_failure),
        "rrd": _delay(c.rrd),
    }


def dialog_outcomes_report(stats: PipelineStats) -> dict[str, int]:
    """Every outcome of the bounded set, in a fixed order, 0 when none."""
    got = stats.dialog_outcomes
    return {name: got.get(name, 0) for name in DIALOG_OUTCOMES}
