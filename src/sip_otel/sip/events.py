"""Events of the dialog and registration layers (what the tracker and RFC 6076 consume).

Frozen, slotted, created only when something ends or changes state, never per message.
Transaction-layer events live in :mod:`sip_otel.sip.transactions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, Protocol, TypeVar

from ..records import DialogRecord, RecordEvent, RegistrationRecord

__all__ = [
    "REINVITE",
    "AttemptEnded",
    "DialogEvent",
    "EventSink",
    "ForkedDialogConfirmed",
    "RegistrationEnded",
    "Reinvite",
    "SessionEnded",
    "attempt_ended",
    "record_event",
    "session_ended",
]


_E_contra = TypeVar("_E_contra", contravariant=True)


class EventSink(Protocol[_E_contra]):
    """Where a layer appends its events: a list of these events or of any wider union."""

    def append(self, event: _E_contra, /) -> None: ...


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """An initial INVITE attempt got its outcome (answered, failed, redirected, ...).

    ``srd_ns``: one delay per dialog created (RFC 6076 §5.4), or the single delay to the first
    non-100 provisional / the final when none was created. ``record`` is None when answered
    (the dialog's record comes with :class:`SessionEnded`).
    """

    outcome: str  # "answered" or a dialog outcome
    final_status: int  # 0 when a timer ended it
    timer: str  # "" / "B" / "C"
    srd_ns: tuple[int, ...]
    record: DialogRecord | None


@dataclass(frozen=True, slots=True)
class ForkedDialogConfirmed:
    """A further 2xx (other To tag) to an already answered attempt: its own SRD (§5.4)."""

    srd_ns: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    outcome: str  # completed, bye_failed, expired, evicted, open
    sdt_ns: int | None  # §4.5: 2xx -> BYE (completed) or -> its failure; None without a BYE
    sdd_ns: int | None  # BYE -> its final or Timer F (§4.4)
    sdd_ok: bool  # SDD (and SDT) ended by a 2xx: success histograms, else failure ones
    completes_attempt: bool  # first completed dialog of its attempt (SCR numerator)
    record: DialogRecord


@dataclass(frozen=True, slots=True)
class Reinvite:
    pass


REINVITE: Final = Reinvite()

DialogEvent = AttemptEnded | ForkedDialogConfirmed | SessionEnded | Reinvite


@dataclass(frozen=True, slots=True)
class RegistrationEnded:
    outcome: str  # registered, unregistered, failed, timed_out, open, evicted
    final_status: int  # 0 when Timer F fired
    rrd_ns: int | None  # first REGISTER -> 2xx, successful registrations only
    record: RegistrationRecord


# -- fast constructors -----------------------------------------------------------------
# The generated __init__ of a frozen dataclass stores every field through object.__setattr__,
# about twice the cost of a plain class; the tracker builds a few of these per call. These
# build the same objects (same type, fields, eq, hash, repr) by storing each field through its
# slot descriptor. Each checks its field list at import, so a field added later fails loudly.

_new = object.__new__


def _setters(cls: type, *names: str) -> tuple[Callable[[object, Any], None], ...]:
    if tuple(f.name for f in fields(cls)) != names:
        raise TypeError(f"{cls.__name__} fields changed: update sip_otel.sip.events")
    return tuple(getattr(cls, name).__set__ for name in names)


_re_ts, _re_name, _re_status, _re_method = _setters(
    RecordEvent, "ts_ns", "name", "status", "method"
)


def record_event(ts_ns: int, name: str, status: int, method: str) -> RecordEvent:
    """``RecordEvent(ts_ns, name, status, method)``, faster."""
    ev: RecordEvent = _new(RecordEvent)
    _re_ts(ev, ts_ns)
    _re_name(ev, name)
    _re_status(ev, status)
    _re_method(ev, method)
    return ev


_ae_outcome, _ae_final, _ae_timer, _ae_srd, _ae_record = _setters(
    AttemptEnded, "outcome", "final_status", "timer", "srd_ns", "record"
)


def attempt_ended(outcome: str, final_status: int, timer: str, srd_ns: tuple[int, ...],
                  record: DialogRecord | None) -> AttemptEnded:  # fmt: skip
    """``AttemptEnded(...)`` (positional), faster."""
    ev: AttemptEnded = _new(AttemptEnded)
    _ae_outcome(ev, outcome)
    _ae_final(ev, final_status)
    _ae_timer(ev, timer)
    _ae_srd(ev, srd_ns)
    _ae_record(ev, record)
    return ev


_se_outcome, _se_sdt, _se_sdd, _se_ok, _se_completes, _se_record = _setters(
    SessionEnded, "outcome", "sdt_ns", "sdd_ns", "sdd_ok", "completes_attempt", "record"
)


def session_ended(outcome: str, sdt_ns: int | None, sdd_ns: int | None, sdd_ok: bool,
                  completes_attempt: bool, record: DialogRecord) -> SessionEnded:  # fmt: skip
    """``SessionEnded(...)`` (positional), faster."""
    ev: SessionEnded = _new(SessionEnded)
    _se_outcome(ev, outcome)
    _se_sdt(ev, sdt_ns)
    _se_sdd(ev, sdd_ns)
    _se_ok(ev, sdd_ok)
    _se_completes(ev, completes_attempt)
    _se_record(ev, record)
    return ev
