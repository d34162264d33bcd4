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
from ..rfc6076 import count_attempt, count_forked, count_registration, count_session
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
        self._queues = (
            self.transactions.deadlines,
            self.dialogs.deadlines,
            self.registrations.deadlines,
        )
        self._next_sweep = 0
        # Earliest packet time at which any timer can be due. Every deadline pushed while
        # handling messages is at least 64*T1 ahead, so capping this at the last timer run
        # + 64*T1 keeps it exact without looking at the queues on every message.
        self._next_check = 0
        self._min_push_ns = 64 * config.t1_ns
        # Hot path: bound methods looked up once
        self._classify_request = self.transactions.classify_request
        self._classify_response = self.transactions.classify_response
        self._dialog_request = self.dialogs.request
        self._dialog_response = self.dialogs.response

    # -- input -----------------------------------------------------------------------

    def handle(self, msg: SipMessage) -> list[Event]:
        """Track one message; returns the events it (and any timer due before it) caused."""
        out: list[Event] = []
        if msg.ts_ns >= self._next_check:
            self._timers(msg.ts_ns, out)
            mark = len(out)
        else:
            mark = 0
        if msg.is_request:
            req = self._classify_request(msg)
            if isinstance(req, tuple):
                if msg.method == "REGISTER":
                    self.registrations.request(msg, req[0], out)
                else:
                    self._dialog_request(msg, req[0], req[1], out)
            else:
                self._other(req, out)
                return out
        else:
            resp = self._classify_response(msg)
            if isinstance(resp, tuple):
                if msg.method == "REGISTER":
                    self.registrations.response(msg, resp[0], out)
                else:
                    self._dialog_response(msg, resp[0], resp[1], out)
            else:
                self._other(resp, out)
                return out
        if len(out) > mark:
            self._publish(out, mark)
        return out

    def _other(self, ev: Retransmission | OrphanResponse, out: list[Event]) -> None:
        if type(ev) is Retransmission:
            r = self.stats.retransmissions
            r[ev.method] = r.get(ev.method, 0) + 1
        else:  # monitor started mid-transaction, one-sided capture
            self.reasons.add("tracker.orphan_response")
        out.append(ev)

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
        tq, dq, rq = self._queues
        dlg: list[DialogEvent] = []
        reg: list[RegistrationEnded] = []
        if tq.due(now):
            for tmo in self.transactions.handle_timer(now):
                out.append(tmo)
                if tmo.txn.method == "REGISTER":
                    self.registrations.on_timeout(tmo, reg)
                else:
                    self.dialogs.on_timeout(tmo, dlg)
                tmo.txn.ctx = None  # the transaction is gone: break its reference cycle
        if sweep or dq.due(now):
            self.dialogs.handle_timer(now, sweep, dlg)
        if sweep or rq.due(now):
            self.registrations.handle_timer(now, sweep, reg)
        nxt = min(self._next_sweep, now + self._min_push_ns)
        for q in self._queues:
            due = q.next_due()
            if due is not None and due < nxt:
                nxt = due
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
            record: Record | None
            if type(ev) is SessionEnded:
                count_session(counters, ev)
                record = ev.record
                o = stats.dialog_outcomes
                o[record.outcome] = o.get(record.outcome, 0) + 1
            elif type(ev) is AttemptEnded:
                count_attempt(counters, ev)
                record = ev.record
                if record is None:
                    continue  # answered: the record comes with the dialog's SessionEnded
                o = stats.dialog_outcomes
                o[record.outcome] = o.get(record.outcome, 0) + 1
            elif type(ev) is Reinvite:
                stats.reinvites += 1
                continue
            elif type(ev) is RegistrationEnded:
                count_registration(counters, ev)
                record = ev.record
                if ev.outcome == "failed" and ev.final_status:
                    f = stats.register_failures
                    f[ev.final_status] = f.get(ev.final_status, 0) + 1
            elif type(ev) is ForkedDialogConfirmed:
                count_forked(counters, ev)
                continue
            else:  # transaction-layer events: counted where they arise
                continue
            if on_record is not None:
                on_record(record)
