"""The tracker facade: transactions -> attempts/dialogs/registrations -> RFC 6076. Sans-IO.

The pipeline calls :meth:`SipTracker.handle` for every parsed message (``now`` = the message's
packet time), :meth:`SipTracker.handle_timer` as packet time advances, and
:meth:`SipTracker.finish` at the end of a replay. Everything is counted into the shared
:class:`PipelineStats` (plain ints, no OTel); finished dialogs and registration attempts go to
``on_record`` for spans. :meth:`handle` also fires any timer that fell due before the message,
so a late caller of :meth:`handle_timer` cannot reorder a timeout and a response.

Returned events: :class:`Retransmission`, :class:`OrphanResponse`, :class:`TransactionTimeout`
(transaction layer), :class:`AttemptEnded`, :class:`ForkedDialogConfirmed`,
:class:`SessionEnded`, :class:`Reinvite` (dialog layer), :class:`RegistrationEnded`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Reasons
from ..records import DialogRecord, RegistrationRecord
from ..rfc6076 import aggregate
from ..stats import PipelineStats
from .dialogs import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_DIALOGS,
    AttemptEnded,
    DialogEvent,
    DialogLayer,
    ForkedDialogConfirmed,
    Reinvite,
    SessionEnded,
)
from .message import SipMessage
from .registrations import (
    DEFAULT_MAX_REGISTER_ATTEMPTS,
    DEFAULT_MAX_REGISTRATIONS,
    RegistrationEnded,
    RegistrationLayer,
)
from .transactions import (
    DEFAULT_MAX_TRANSACTIONS,
    NewRequest,
    NewResponse,
    OrphanResponse,
    Retransmission,
    TransactionLayer,
    TransactionTimeout,
)

__all__ = ["Event", "SipTracker", "TrackerConfig"]

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


class SipTracker:
    """Transactions, dialogs, registrations and the RFC 6076 counters on packet time."""

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
        ev = stats.evictions
        self.transactions = TransactionLayer(
            config.t1_ns, config.invite_proceeding_timeout_ns, config.max_transactions, ev
        )
        self.dialogs = DialogLayer(
            reasons, config.t1_ns, config.session_expires_default_s,
            config.challenge_retry_is_new_attempt, config.max_dialogs,
            config.max_invite_attempts, ev,
        )  # fmt: skip
        self.registrations = RegistrationLayer(
            config.t1_ns, config.challenge_retry_is_new_attempt, config.max_registrations,
            config.max_register_attempts, config.register_expires_default_s, ev,
        )  # fmt: skip
        self._heaps = (
            self.transactions.deadlines.heap,
            self.dialogs.deadlines.heap,
            self.registrations.deadlines.heap,
        )
        self._next_sweep = 0
        # Earliest packet time at which any timer can be due. Every deadline pushed while
        # handling messages is at least 64*T1 ahead, so capping this at the last timer run
        # + 64*T1 keeps it exact without looking at the heaps on every message.
        self._next_check = 0
        self._min_push_ns = 64 * config.t1_ns

    # -- input -----------------------------------------------------------------------

    def handle(self, msg: SipMessage) -> list[Event]:
        """Track one message; returns the events it (and any timer due before it) caused."""
        now = msg.ts_ns
        out: list[Event] = []
        if now >= self._next_check:
            self._timers(now, out)
        tev = self.transactions.handle(msg)
        kind = type(tev)
        if kind is NewRequest or kind is NewResponse:
            if msg.method == "REGISTER":
                reg: list[RegistrationEnded] = []
                if type(tev) is NewRequest:
                    self.registrations.on_request(tev, reg)
                elif type(tev) is NewResponse:
                    self.registrations.on_response(tev, reg)
                if reg:
                    mark = len(out)
                    out.extend(reg)
                    self._publish(out, mark)
            else:
                dlg: list[DialogEvent] = []
                if type(tev) is NewRequest:
                    self.dialogs.on_request(tev, dlg)
                elif type(tev) is NewResponse:
                    self.dialogs.on_response(tev, dlg)
                if dlg:
                    mark = len(out)
                    out.extend(dlg)
                    self._publish(out, mark)
        elif type(tev) is Retransmission:
            r = self.stats.retransmissions
            r[tev.method] = r.get(tev.method, 0) + 1
            out.append(tev)
        elif type(tev) is OrphanResponse:  # monitor started mid-transaction, one-sided capture
            self.reasons.add("tracker.orphan_response")
            out.append(tev)
        return out

    def handle_timer(self, now_ns: int) -> list[Event]:
        """Fire Timer B/F/C, retry windows and (every ``expiry_check_ns``) expiries."""
        out: list[Event] = []
        self._timers(now_ns, out)
        return out

    def finish(self, now_ns: int) -> None:
        """End of input: fire due timers, then flush everything still open as "open"."""
        out: list[Event] = []
        self._timers(now_ns, out)
        mark = len(out)
        dlg: list[DialogEvent] = []
        reg: list[RegistrationEnded] = []
        self.dialogs.finish(now_ns, dlg)
        self.registrations.finish(now_ns, reg)
        out.extend(dlg)
        out.extend(reg)
        self._publish(out, mark)

    def gauges(self) -> dict[str, int]:
        d = self.dialogs
        return {
            "sessions": len(d.dialogs),  # confirmed dialogs active
            "early_dialogs": d.early_count,
            "registrations": len(self.registrations.active),
            "transactions": self.transactions.open,  # waiting for a final response
            "transactions_tracked": len(self.transactions.table),  # incl. lingering
            "invite_attempts": len(d.attempts) + len(d.pending),  # ringing, challenged, carries
            "register_attempts": len(self.registrations.attempts),
        }

    # -- internals -------------------------------------------------------------------

    def _timers(self, now: int, out: list[Event]) -> None:
        mark = len(out)
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + self.config.expiry_check_ns
        th, dh, rh = self._heaps
        dlg: list[DialogEvent] = []
        reg: list[RegistrationEnded] = []
        if th and th[0][0] <= now:
            for tmo in self.transactions.handle_timer(now):
                out.append(tmo)
                if tmo.txn.method == "REGISTER":
                    self.registrations.on_timeout(tmo, reg)
                else:
                    self.dialogs.on_timeout(tmo, dlg)
                tmo.txn.ctx = None  # the transaction is gone: break its reference cycle
        if sweep or (dh and dh[0][0] <= now):
            self.dialogs.handle_timer(now, sweep, dlg)
        if sweep or (rh and rh[0][0] <= now):
            self.registrations.handle_timer(now, sweep, reg)
        nxt = min(self._next_sweep, now + self._min_push_ns)
        for h in self._heaps:
            if h and h[0][0] < nxt:
                nxt = h[0][0]
        self._next_check = nxt
        if dlg or reg:
            out.extend(dlg)
            out.extend(reg)
            self._publish(out, mark)

    def _publish(self, events: list[Event], start: int) -> None:
        """Count events[start:] into stats, and hand finished records to ``on_record``."""
        stats = self.stats
        counters = stats.rfc6076
        on_record = self.on_record
        for i in range(start, len(events)):
            ev = events[i]
            kind = type(ev)
            if kind is Reinvite:
                stats.reinvites += 1
                continue
            if kind is Retransmission or kind is OrphanResponse or kind is TransactionTimeout:
                continue
            aggregate(counters, ev)
            record: Record | None = None
            if isinstance(ev, AttemptEnded | SessionEnded):
                record = ev.record
                if record is not None:
                    o = stats.dialog_outcomes
                    o[record.outcome] = o.get(record.outcome, 0) + 1
            elif isinstance(ev, RegistrationEnded):
                record = ev.record
                if ev.outcome == "failed" and ev.final_status:
                    f = stats.register_failures
                    f[ev.final_status] = f.get(ev.final_status, 0) + 1
            if record is not None and on_record is not None:
                on_record(record)
