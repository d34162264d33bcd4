"""Events of the tracker (what the Python views of transactions, dialogs and registrations
return; the pipeline folds the same events in C without building these objects).

Frozen, slotted, created only when something ends or changes state, never per message on the
hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..records import DialogRecord, RegistrationRecord

__all__ = [
    "REINVITE",
    "AttemptEnded",
    "DialogEvent",
    "ForkedDialogConfirmed",
    "RegistrationEnded",
    "Reinvite",
    "SessionEnded",
]


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
    """A further 2xx (new To tag, no early dialog) to an answered attempt: its own SRD."""

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
