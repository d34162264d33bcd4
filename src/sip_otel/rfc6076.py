"""RFC 6076: the rules that fold tracker events into :class:`Rfc6076Counters`, and the report.

The rules run in C (``_c/so_stats.c``; every choice the RFC leaves open is in docs/rfc6076.md):
the pipeline folds its events there without making Python objects. :func:`aggregate` applies
the same code to one Python event (tests, tools); the reports read the counters.
"""

from __future__ import annotations

from typing import Any, Final

from . import _core
from .sip.events import AttemptEnded, ForkedDialogConfirmed, RegistrationEnded, SessionEnded
from .stats import Histogram, PipelineStats, Rfc6076Counters

__all__ = [
    "DIALOG_OUTCOMES",
    "ISA_CODES",
    "SEER_CODES",
    "aggregate",
    "dialog_outcomes_report",
    "is_failure_final",
    "rfc6076_report",
]

# §4.7: answers that show the network did its job (200 read as any 2xx, docs/rfc6076.md).
SEER_CODES: Final = frozenset({200, 480, 486, 600, 603})
# §4.8: the RFC's guideline list of ineffective answers (Timer B is added by the caller).
ISA_CODES: Final = frozenset({408, 500, 503, 504})

# The bounded set of dialog outcomes (docs/rfc6076.md explains each), in report order.
DIALOG_OUTCOMES: Final[tuple[str, ...]] = _core.DIALOG_OUTCOME_NAMES


def is_failure_final(status: int) -> bool:
    """RFC 6076 §4.2/§4.3.2: a final 4xx other than 401/402/407, or a 5xx/6xx."""
    return _core.is_failure_final(status)


def aggregate(counters: Rfc6076Counters, event: object) -> None:
    """Fold one tracker event into the counters (events of other types are ignored)."""
    if isinstance(event, AttemptEnded):
        _core.fold_rfc6076(
            counters,
            _core.EV_ATTEMPT_ENDED,
            event.outcome,
            event.final_status,
            event.timer,
            event.srd_ns,
            None,
            None,
            False,
            False,
            None,
        )
    elif isinstance(event, ForkedDialogConfirmed):
        _core.fold_rfc6076(
            counters, _core.EV_FORKED, "", 0, "", (event.srd_ns,), None, None, False, False, None
        )
    elif isinstance(event, SessionEnded):
        _core.fold_rfc6076(
            counters,
            _core.EV_SESSION_ENDED,
            event.outcome,
            0,
            "",
            (),
            event.sdt_ns,
            event.sdd_ns,
            event.sdd_ok,
            event.completes_attempt,
            None,
        )
    elif isinstance(event, RegistrationEnded):
        _core.fold_rfc6076(
            counters,
            _core.EV_REGISTRATION_ENDED,
            event.outcome,
            event.final_status,
            "",
            (),
            None,
            None,
            False,
            False,
            event.rrd_ns,
        )


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
