"""The tracker: transactions -> attempts/dialogs/registrations, on packet time.

The layers run in C (``_c/so_track*.c``, ``so_txn.c``, ``so_attempt.c``, ``so_dialog.c``,
``so_reg.c``; theory of operation in those files and in docs/rfc6076.md). The pipeline drives
them on whole batches of frames without making Python objects. :class:`SipTracker` is the
same tracker message by message for tests and tools: :meth:`SipTracker.handle` takes a
:class:`SipMessage` (``now`` = its packet time) and returns the events it caused, with any
timer that fell due before it first; counters go to the given :class:`PipelineStats` and
:class:`Reasons`, finished dialogs and registration attempts to ``on_record``.

Returned events: :class:`Retransmission`, :class:`OrphanResponse`, :class:`TransactionTimeout`
(transaction layer), :class:`AttemptEnded`, :class:`ForkedDialogConfirmed`,
:class:`SessionEnded`, :class:`Reinvite` (dialog layer), :class:`RegistrationEnded`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sip_otel.sizes import DEFAULT_MEMORY_LIMIT

from .. import _core
from ..errors import Reasons
from ..records import DialogRecord, RegistrationRecord
from ..stats import PipelineStats
from .dialogs import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_DIALOGS
from .events import (
    REINVITE,
    AttemptEnded,
    ForkedDialogConfirmed,
    RegistrationEnded,
    Reinvite,
    SessionEnded,
)
from .message import SipMessage
from .registrations import DEFAULT_MAX_REGISTER_ATTEMPTS, DEFAULT_MAX_REGISTRATIONS
from .transactions import (
    DEFAULT_MAX_TRANSACTIONS,
    OrphanResponse,
    Retransmission,
    Transaction,
    TransactionTimeout,
)

__all__ = ["Event", "SipTracker", "TrackerConfig", "event_factory"]

Event = (
    Retransmission | OrphanResponse | TransactionTimeout | AttemptEnded | ForkedDialogConfirmed
    | SessionEnded | Reinvite | RegistrationEnded
)  # fmt: skip
Record = DialogRecord | RegistrationRecord


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    t1_ns: int = 500_000_000  # RFC 3261 T1; Timer B/F = 64*T1
    session_expires_default_s: int = 1800  # RFC 4028 default when absent (as sip-exporter)
    expiry_check_ns: int = 1_000_000_000  # expiry sweep every 1 s of packet time
    challenge_retry_is_new_attempt: bool = False  # 401/407 + credentialed retry: 1 attempt or 2
    max_transactions: int = DEFAULT_MAX_TRANSACTIONS
    max_dialogs: int = DEFAULT_MAX_DIALOGS
    max_registrations: int = DEFAULT_MAX_REGISTRATIONS
    max_invite_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_register_attempts: int = DEFAULT_MAX_REGISTER_ATTEMPTS
    # An INVITE that got a provisional but no final is given up after this (Timer C stand-in).
    invite_proceeding_timeout_ns: int = 300_000_000_000
    register_expires_default_s: int = 3600  # RFC 3261 §10.2.1.1
    # The byte budget of this tracker's tables when it runs alone (a Pipeline has one budget
    # for all its layers: PipelineConfig.memory_limit); 0: none. docs/reliability.md.
    memory_limit: int = DEFAULT_MEMORY_LIMIT


class _EventFactory:
    """How the binding builds the Python event objects of sip/ (one place for their types)."""

    @staticmethod
    def retransmission(method: str, is_request: bool, status: int) -> Retransmission:
        return Retransmission(method, is_request, status)

    @staticmethod
    def orphan(msg: SipMessage) -> OrphanResponse:
        return OrphanResponse(msg)

    @staticmethod
    def transaction(core: _core.TrackerCore, ref: tuple[int, int], key: tuple[int, int],
                    method: str) -> Transaction:  # fmt: skip
        return Transaction(core, ref, key, method)

    @staticmethod
    def timeout(txn: Transaction, timer: str, ts_ns: int) -> TransactionTimeout:
        return TransactionTimeout(txn, timer, ts_ns)

    @staticmethod
    def attempt_ended(outcome: str, status: int, timer: str, srd: tuple[int, ...],
                      record: DialogRecord | None) -> AttemptEnded:  # fmt: skip
        return AttemptEnded(outcome, status, timer, srd, record)

    @staticmethod
    def forked(srd_ns: int) -> ForkedDialogConfirmed:
        return ForkedDialogConfirmed(srd_ns)

    @staticmethod
    def session_ended(outcome: str, sdt: int | None, sdd: int | None, sdd_ok: bool,
                      completes: bool, record: DialogRecord) -> SessionEnded:  # fmt: skip
        return SessionEnded(outcome, sdt, sdd, sdd_ok, completes, record)

    @staticmethod
    def reinvite() -> Reinvite:
        return REINVITE

    @staticmethod
    def registration_ended(outcome: str, status: int, rrd: int | None,
                           record: RegistrationRecord) -> RegistrationEnded:  # fmt: skip
        return RegistrationEnded(outcome, status, rrd, record)


event_factory = _EventFactory()


class SipTracker:
    """Transactions, dialogs, registrations and the RFC 6076 counters, message by message."""

    def __init__(
        self,
        stats: PipelineStats,
        reasons: Reasons,
        config: TrackerConfig = TrackerConfig(),  # frozen: a safe default
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        self.stats = stats
        self.reasons = reasons
        self.config = config
        self.on_record = on_record
        self._core = _core.TrackerCore(config, event_factory, fixed_seed=True)

    def _done(self, events: list[Any]) -> list[Event]:
        self._core.sync(self.stats, self.reasons)
        on_record = self.on_record
        if on_record is not None:
            for ev in events:
                record = getattr(ev, "record", None)
                if record is not None:
                    on_record(record)
        return events

    def handle(self, msg: SipMessage) -> list[Event]:
        """Track one message; returns the events it (and any timer due before it) caused."""
        return self._done(self._core.handle(msg))

    def handle_timer(self, now_ns: int) -> list[Event]:
        """Fire Timer B/F/C, retry windows and (every ``expiry_check_ns``) expiries."""
        return self._done(self._core.handle_timer(now_ns))

    def finish(self, now_ns: int) -> None:
        """End of input: fire due timers, then flush everything still open as "open"."""
        self._done(self._core.finish(now_ns))

    def gauges(self) -> dict[str, int]:
        return dict(self._core.gauges())

    def memory(self) -> dict[str, int]:
        """Bytes charged to the memory budget per table, and ``limit``."""
        return dict(self._core.memory())
