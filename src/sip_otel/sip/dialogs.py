"""INVITE attempts and dialogs (RFC 3261 §12-§15, RFC 4028, RFC 6076). No I/O, no clock.

Theory of operation
-------------------
This layer consumes the transaction layer's events (first copies only: retransmissions never
reach it) and keeps two tables.

**Attempts** (``InviteAttempt``, keyed by Call-ID + From tag + CSeq) are initial INVITEs, the
"INVITE" of RFC 6076. The same INVITE forwarded over a second hop (same key, new branch)
joins the attempt instead of starting one. An attempt is Proceeding until its first final:
  - 1xx (not 100) records the first provisional and one *early dialog* per To tag (forking);
  - the first 2xx answers it and confirms a dialog; later 2xx with other To tags (forking)
    confirm further dialogs of the same attempt, which is still counted once;
  - 401/407 park it (Challenged) until the credentialed INVITE (same Call-ID and From tag,
    higher CSeq) resumes it, or 64*T1 passes; ``challenge_retry_is_new_attempt`` ends it there
    instead so the retry counts as a second attempt;
  - 3xx ends it as "redirected" and leaves a carry so that the next INVITE of the same Call-ID
    and From tag measures SRD from the first INVITE (RFC 6076 §4.3: t1 not reset);
  - 487 ends it as "cancelled", other finals as failed_<class>, a transaction timer as
    "timed_out".

**Dialogs** (``Dialog``, keyed ``(Call-ID, min(tags), max(tags))``, the sip-exporter id) are
confirmed dialogs. A 2xx to a re-INVITE or UPDATE refreshes the Session-Expires deadline
(RFC 4028 §10); a dialog not refreshed in time ends "expired" at the next 1 s sweep. BYE stops
SDT; its 2xx ends the dialog "completed" (SDD success); 503 with Retry-After or a 401/407 wait
for the retried BYE (RFC 6076 §4.4); another final, or Timer F, ends it "bye_failed" (SDD
failure). Requests and responses for unknown dialogs (monitor started mid-call) are counted
as reasons and otherwise ignored.

Both tables are bounded; the oldest entry is evicted first and ends with outcome "evicted".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import fields
from typing import Final

from ..errors import Reasons
from ..net.types import PROTO_UDP, format_ip
from ..records import MAX_RECORD_EVENTS, DialogRecord, RecordEvent
from .events import (
    REINVITE,
    AttemptEnded,
    DialogEvent,
    EventSink,
    ForkedDialogConfirmed,
    Reinvite,
    SessionEnded,
    attempt_ended,
    record_event,
    session_ended,
)
from .message import SipMessage
from .transactions import Deadlines, NewRequest, NewResponse, Transaction, TransactionTimeout

__all__ = [
    "ATTEMPT_TRANSITIONS", "DEFAULT_MAX_ATTEMPTS", "DEFAULT_MAX_DIALOGS", "DIALOG_TRANSITIONS",
    "REINVITE", "AttemptEnded", "Dialog", "DialogEvent", "DialogLayer", "ForkedDialogConfirmed",
    "InviteAttempt", "Reinvite", "SessionEnded", "dialog_id",
]  # fmt: skip

# Confirmed dialogs: a large SBC carries ~100k concurrent calls; beyond 200k the oldest goes.
DEFAULT_MAX_DIALOGS: Final = 200_000
# Attempts still ringing/challenged (plus carries): ~1,000 cps * up to a few minutes ringing.
DEFAULT_MAX_ATTEMPTS: Final = 100_000

# Early dialogs (To tags) tracked per attempt: real forking fans out to a handful of phones.
MAX_EARLY_PER_ATTEMPT: Final = 16

# Attempt states
PROCEEDING: Final = "proceeding"
CHALLENGED: Final = "challenged"
ANSWERED: Final = "answered"
ENDED: Final = "ended"
# Dialog states
CONFIRMED: Final = "confirmed"
BYE_SENT: Final = "bye_sent"
BYE_RETRY: Final = "bye_retry"

# (state, input) -> (next state, rule). Inputs not listed for a state are ignored.
ATTEMPT_TRANSITIONS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    (PROCEEDING, "1xx"): (PROCEEDING, "RFC 3261 §13.2.2.1; early dialog per To tag §12.1"),
    (PROCEEDING, "2xx"): (ANSWERED, "RFC 3261 §13.2.2.4 dialog confirmed"),
    (ANSWERED, "2xx"): (ANSWERED, "RFC 3261 §13.2.2.4 forked 2xx: another dialog"),
    (PROCEEDING, "challenge"): (CHALLENGED, "RFC 3261 §22.2; RFC 6076 §4.1/§4.3 t1 kept"),
    (CHALLENGED, "retry"): (PROCEEDING, "RFC 3261 §22.2 credentialed INVITE, CSeq+1"),
    (CHALLENGED, "abandon"): (ENDED, "no credentialed retry within 64*T1: failed_4xx"),
    (PROCEEDING, "final"): (ENDED, "RFC 3261 §13.2.2.2/§13.2.2.3 3xx-6xx final"),
    (PROCEEDING, "timeout"): (ENDED, "RFC 3261 §17.1.1.2 Timer B (or Timer C stand-in)"),
}
DIALOG_TRANSITIONS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    (CONFIRMED, "refresh"): (CONFIRMED, "RFC 4028 §10 2xx to re-INVITE/UPDATE"),
    (CONFIRMED, "expire"): (ENDED, "RFC 4028 §10 Session-Expires passed: expired"),
    (CONFIRMED, "bye"): (BYE_SENT, "RFC 3261 §15.1.1; RFC 6076 §4.5 SDT stops"),
    (BYE_RETRY, "bye"): (BYE_SENT, "RFC 6076 §4.4 retried BYE; SDD start kept"),
    (BYE_SENT, "bye_2xx"): (ENDED, "RFC 3261 §15.1.2: completed; RFC 6076 §4.4 SDD"),
    (BYE_SENT, "bye_retry"): (BYE_RETRY, "RFC 6076 §4.4 503+Retry-After; §22.2 401/407"),
    (BYE_SENT, "bye_fail"): (ENDED, "RFC 3261 §12.2.1.2 481/408/other final: bye_failed"),
    (BYE_SENT, "bye_timeout"): (ENDED, "RFC 3261 §17.1.2.2 Timer F: bye_failed"),
    (BYE_RETRY, "expire"): (ENDED, "no retried BYE within Retry-After + 64*T1: bye_failed"),
}

# _record passes DialogRecord's fields positionally (keywords cost ~1 µs per record): fail at
# import, not silently, if that contract's field order ever changes.
_RECORD_FIELDS: Final = (
    "call_id", "from_uri", "to_uri", "from_tag", "to_tag", "start_ns", "end_ns", "outcome",
    "final_status", "transport", "src", "dst", "srd_s", "sdt_s", "user_agent", "events",
    "events_dropped",
)  # fmt: skip
if tuple(f.name for f in fields(DialogRecord))[: len(_RECORD_FIELDS)] != _RECORD_FIELDS:
    raise TypeError("DialogRecord fields changed: update sip_otel.sip.dialogs._record")

# Next states the hot paths use, looked up once (the tables above stay the reference).
_ON_2XX: Final = ATTEMPT_TRANSITIONS[PROCEEDING, "2xx"][0]

Origin = tuple[int, bytes, int, bytes, int]  # transport, src ip, src port, dst ip, dst port


def dialog_id(call_id: str, tag_a: str, tag_b: str) -> str:
    """The dialog id users of sip-exporter know: ``{Call-ID}:{min tag}:{max tag}``."""
    lo, hi = (tag_a, tag_b) if tag_a <= tag_b else (tag_b, tag_a)
    return f"{call_id}:{lo}:{hi}"


def _dkey(call_id: str, tag_a: str, tag_b: str) -> tuple[str, str, str]:
    return (call_id, tag_a, tag_b) if tag_a <= tag_b else (call_id, tag_b, tag_a)


def _origin(msg: SipMessage) -> Origin | None:
    o = msg.origin
    return None if o is None else (o.transport, o.src_ip, o.src_port, o.dst_ip, o.dst_port)


class _Events:
    """Bounded record-event list shared by attempts and dialogs."""

    __slots__ = ("dropped", "items")

    def __init__(self, items: list[RecordEvent] | None = None, dropped: int = 0) -> None:
        self.items: list[RecordEvent] = items if items is not None else []
        self.dropped = dropped

    def add(self, ts_ns: int, name: str, status: int = 0, method: str = "") -> None:
        items = self.items
        if len(items) < MAX_RECORD_EVENTS:
            items.append(record_event(ts_ns, name, status, method))
        else:
            self.dropped += 1

    def copy(self) -> _Events:
        return _Events(list(self.items), self.dropped)


class InviteAttempt:
    """One initial INVITE (RFC 6076 "INVITE"), across hops, challenge retries and forks."""

    __slots__ = (
        "call_id", "completed", "confirmed_tags", "cseq", "deadline_ns", "early", "events",
        "final_status", "first_prov_ns", "from_tag", "from_uri", "origin", "se", "seen",
        "srd_start_ns", "start_ns", "state", "to_uri", "txn", "user_agent",
    )  # fmt: skip

    def __init__(self, msg: SipMessage, txn: Transaction, srd_start_ns: int) -> None:
        self.call_id = msg.call_id
        self.from_tag = msg.from_tag
        self.from_uri = msg.from_uri
        self.to_uri = msg.to_uri
        self.cseq = msg.cseq
        self.start_ns = msg.ts_ns  # first INVITE of this attempt on the wire
        self.srd_start_ns = srd_start_ns  # RFC 6076 t1 (earlier after a 3xx redirect)
        self.state = PROCEEDING
        self.txn = txn  # first hop's transaction: only its timer ends the attempt
        self.first_prov_ns: int | None = None
        self.early: dict[str, int] = {}  # To tag -> first provisional creating the early dialog
        self.confirmed_tags: set[str] = set()
        self.seen: set[tuple[int, str]] = set()  # (status, To tag) across hops
        self.final_status = 0
        self.deadline_ns = 0
        self.completed = False  # SCR counted once per attempt
        self.se = msg.session_expires
        self.origin = _origin(msg)
        self.user_agent = msg.user_agent
        self.events = _Events()


class Dialog:
    """A confirmed dialog (RFC 3261 §12) from its 2xx to its end."""

    __slots__ = (
        "attempt", "bye_ns", "bye_txn", "confirmed_ns", "events", "expires_ns", "final_status",
        "key", "seen", "srd_ns", "state", "to_tag", "wait_ns",
    )  # fmt: skip

    def __init__(self, key: tuple[str, str, str], attempt: InviteAttempt, to_tag: str,
                 now: int, status: int, srd_ns: int, events: _Events) -> None:  # fmt: skip
        self.key = key
        self.attempt = attempt
        self.to_tag = to_tag
        self.confirmed_ns = now  # SDT start: the first 2xx (RFC 6076 §4.5)
        self.final_status = status
        self.srd_ns = srd_ns
        self.state = CONFIRMED
        self.expires_ns = 0
        self.wait_ns = 0
        self.bye_ns: int | None = None  # first BYE: SDT end, SDD start
        self.bye_txn: Transaction | None = None
        self.seen: set[tuple[str, int, str]] = set()  # (From tag, CSeq, method) across hops
        self.events = events


class _Carry:
    """After a 3xx: the redirected attempt's t1, for the next INVITE of the same call."""

    __slots__ = ("cseq", "deadline_ns", "srd_start_ns")

    def __init__(self, srd_start_ns: int, cseq: int, deadline_ns: int) -> None:
        self.srd_start_ns, self.cseq, self.deadline_ns = srd_start_ns, cseq, deadline_ns


def _outcome_of(status: int) -> str:
    return "cancelled" if status == 487 else _OUTCOMES[min(status // 100, 6)]


_OUTCOMES: Final = ("", "", "", "redirected", "failed_4xx", "failed_5xx", "failed_6xx")


class DialogLayer:
    """Attempts and dialogs; feed it transaction events, collect dialog events in ``out``."""

    def __init__(self, reasons: Reasons, t1_ns: int = 500_000_000,
                 session_expires_default_s: int = 1800,
                 challenge_retry_is_new_attempt: bool = False,
                 max_dialogs: int = DEFAULT_MAX_DIALOGS, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 evictions: dict[str, int] | None = None) -> None:  # fmt: skip
        self.reasons = reasons
        self.wait_ns = 64 * t1_ns  # window for a credentialed/redirected retry
        self.se_default_ns = session_expires_default_s * 1_000_000_000
        self.challenge_new = challenge_retry_is_new_attempt
        self.max_dialogs = max_dialogs
        self.max_attempts = max_attempts
        # OrderedDicts: the oldest entry is evicted in O(1) when a table is full
        self.attempts: OrderedDict[tuple[str, str, int], InviteAttempt] = OrderedDict()
        self.pending: OrderedDict[tuple[str, str], InviteAttempt | _Carry] = OrderedDict()
        self.dialogs: OrderedDict[tuple[str, str, str], Dialog] = OrderedDict()
        self.early_count = 0
        self.evictions = evictions if evictions is not None else {}
        self._waits = Deadlines()  # challenge/redirect windows, BYE retry windows
        self._expiry = Deadlines()  # Session-Expires deadlines (checked by the sweep)

    # -- requests --------------------------------------------------------------------

    def on_request(self, ev: NewRequest, out: EventSink[DialogEvent]) -> None:
        self.request(ev.msg, ev.txn, ev.related, out)

    def request(self, msg: SipMessage, txn: Transaction, related: Transaction | None,
                out: EventSink[DialogEvent]) -> None:  # fmt: skip
        """A first copy of a request (the fields of :class:`NewRequest`)."""
        method = msg.method
        if method == "INVITE":
            if msg.to_tag:
                self._in_dialog(msg, txn, "sip.reinvite", out)
            else:
                self._initial_invite(msg, txn, out)
        elif method == "ACK":
            if related is not None:  # ACK for a non-2xx final, same transaction
                att = related.ctx
                if type(att) is InviteAttempt:
                    att.events.add(msg.ts_ns, "sip.ack")
            else:
                ft, tt = msg.from_tag, msg.to_tag
                dlg = self.dialogs.get((msg.call_id, ft, tt) if ft <= tt else (msg.call_id, tt, ft))
                if dlg is not None and self._first_copy(dlg, msg):
                    dlg.events.add(msg.ts_ns, "sip.ack")
        elif method == "BYE":
            self._bye(msg, txn)
        elif method == "UPDATE":
            self._in_dialog(msg, txn, "sip.update", out)
        elif method == "CANCEL":
            inv = related
            att = inv.ctx if inv is not None else None
            if type(att) is InviteAttempt:
                if att.state == PROCEEDING:
                    att.events.add(msg.ts_ns, "sip.cancel")
            elif inv is None:
                self.reasons.add("dialogs.orphan_cancel")

    @staticmethod
    def _first_copy(dlg: Dialog, msg: SipMessage) -> bool:
        tok = (msg.from_tag, msg.cseq, msg.method)
        if tok in dlg.seen:
            return False  # the same request on another hop
        if len(dlg.seen) >= 32:  # bounded: only recent requests matter for hop de-duplication
            dlg.seen.clear()
        dlg.seen.add(tok)
        return True

    def _in_dialog(self, msg: SipMessage, txn: Transaction, name: str,
                   out: EventSink[DialogEvent]) -> None:  # fmt: skip
        dlg = self.dialogs.get(_dkey(msg.call_id, msg.from_tag, msg.to_tag))
        if dlg is None:
            if msg.method == "INVITE":
                self.reasons.add("dialogs.orphan_reinvite")
                out.append(REINVITE)
            return
        txn.ctx = dlg
        if self._first_copy(dlg, msg):
            dlg.events.add(msg.ts_ns, name, method=msg.method)
            if msg.method == "INVITE":
                out.append(REINVITE)

    def _initial_invite(self, msg: SipMessage, txn: Transaction,
                        out: EventSink[DialogEvent]) -> None:  # fmt: skip
        akey = (msg.call_id, msg.from_tag, msg.cseq)
        att = self.attempts.get(akey)
        if att is not None:  # same INVITE on another hop
            txn.ctx = att
            return
        pkey = (msg.call_id, msg.from_tag)
        pend = self.pending.get(pkey)
        srd_start = msg.ts_ns
        if pend is not None and msg.cseq > pend.cseq:
            del self.pending[pkey]
            if isinstance(pend, InviteAttempt):
                if pend.state == CHALLENGED:  # the credentialed retry resumes the attempt
                    pend.state = ATTEMPT_TRANSITIONS[CHALLENGED, "retry"][0]
                    pend.cseq = msg.cseq
                    pend.txn = txn
                    pend.events.add(msg.ts_ns, "sip.invite_retry")
                    self.attempts[akey] = pend
                    txn.ctx = pend
                    return
            else:
                srd_start = pend.srd_start_ns  # after a 3xx: t1 of the first INVITE
        if len(self.attempts) >= self.max_attempts:
            old = self.attempts.popitem(last=False)[1]
            self.evictions["attempts.full"] = self.evictions.get("attempts.full", 0) + 1
            self._end_attempt(old, msg.ts_ns, 0, "evicted", "", out)
        att = InviteAttempt(msg, txn, srd_start)
        self.attempts[akey] = att
        txn.ctx = att

    def _bye(self, msg: SipMessage, txn: Transaction) -> None:
        dlg = self.dialogs.get(_dkey(msg.call_id, msg.from_tag, msg.to_tag))
        if dlg is None:
            self.reasons.add("dialogs.orphan_bye")
            return
        txn.ctx = dlg
        if not self._first_copy(dlg, msg):
            return
        nxt = DIALOG_TRANSITIONS.get((dlg.state, "bye"))
        if nxt is None:
            return  # a second BYE (other party) while the first is pending: first one counts
        dlg.state = nxt[0]
        if dlg.bye_ns is None:
            dlg.bye_ns = msg.ts_ns
        dlg.bye_txn = txn
        dlg.events.add(msg.ts_ns, "sip.bye")

    # -- responses -------------------------------------------------------------------

    def on_response(self, ev: NewResponse, out: EventSink[DialogEvent]) -> None:
        self.response(ev.msg, ev.txn, ev.first_final, out)

    def response(self, msg: SipMessage, txn: Transaction, first_final: bool,
                 out: EventSink[DialogEvent]) -> None:  # fmt: skip
        """A new response (the fields of :class:`NewResponse`)."""
        ctx = txn.ctx
        if type(ctx) is InviteAttempt:
            if msg.status != 100:  # 100 Trying says nothing about the attempt
                self._attempt_response(ctx, msg, out)
        elif type(ctx) is Dialog and first_final:
            if msg.method == "BYE":
                self._bye_response(ctx, msg, out)
            elif msg.status < 300 and ctx.state == CONFIRMED:  # 2xx to re-INVITE / UPDATE
                se = msg.session_expires or txn.request_se
                ctx.expires_ns = msg.ts_ns + (se * 1_000_000_000 if se else self.se_default_ns)
                self._push_expiry(ctx)

    def _attempt_response(self, att: InviteAttempt, msg: SipMessage,
                          out: EventSink[DialogEvent]) -> None:  # fmt: skip
        status = msg.status
        now = msg.ts_ns
        tag = msg.to_tag
        if status < 200:
            if status == 100 or att.state != PROCEEDING:
                return
            seen = att.seen
            if (status, tag) in seen:
                return
            if len(seen) < 4 * MAX_EARLY_PER_ATTEMPT:
                seen.add((status, tag))
            if att.first_prov_ns is None:
                att.first_prov_ns = now
            early = att.early
            if tag and tag not in early and len(early) < MAX_EARLY_PER_ATTEMPT:
                early[tag] = now
                self.early_count += 1
            att.events.add(now, "sip.provisional", status)
            return
        if status < 300:
            if tag in att.confirmed_tags:
                return  # the same 2xx on another hop
            if att.state == PROCEEDING:
                att.state = _ON_2XX
                att.final_status = status
                self._forget(att)
                srd = self._srd_samples(att, now, tag)
                att.events.add(now, "sip.2xx", status)
                self._confirm(att, tag, msg, srd[-1] if tag not in att.early else
                              att.early[tag] - att.srd_start_ns, out)  # fmt: skip
                out.append(attempt_ended("answered", status, "", srd, None))
            elif att.state == ANSWERED:
                early_ns = att.early.get(tag)
                if early_ns is not None:
                    # Its early dialog got its SRD at the 18x (booked with the first 2xx):
                    # one SRD per dialog (RFC 6076 §4.3.1, §5.4), and the record carries it.
                    self._confirm(att, tag, msg, early_ns - att.srd_start_ns, out)
                else:
                    srd_ns = now - att.srd_start_ns
                    self._confirm(att, tag, msg, srd_ns, out)
                    out.append(ForkedDialogConfirmed(srd_ns))
            return
        if att.state != PROCEEDING:
            return
        if status in (401, 407) and not self.challenge_new:
            att.state = ATTEMPT_TRANSITIONS[PROCEEDING, "challenge"][0]
            att.final_status = status
            self._forget(att)
            self.early_count -= len(att.early)
            att.early.clear()
            att.first_prov_ns = None
            att.events.add(now, "sip.challenge", status)
            att.deadline_ns = now + self.wait_ns
            self._park(att, now, out)
            self._waits.push_in_order(att.deadline_ns, att)
            return
        att.events.add(now, "sip.final", status)
        self._end_attempt(att, now, status, _outcome_of(status), "", out)
        if status < 400:
            deadline = now + self.wait_ns
            self._park(_Carry(att.srd_start_ns, att.cseq, deadline), now, out, att)
            self._waits.push_in_order(deadline, (att.call_id, att.from_tag))

    def _park(self, item: InviteAttempt | _Carry, now: int, out: EventSink[DialogEvent],
              owner: InviteAttempt | None = None) -> None:  # fmt: skip
        """Keep a challenged attempt or a redirect carry for its retry (bounded table)."""
        src = owner or item
        assert isinstance(src, InviteAttempt)
        pending = self.pending
        if len(pending) >= self.max_attempts:
            old = pending.popitem(last=False)[1]
            self.evictions["attempts.full"] = self.evictions.get("attempts.full", 0) + 1
            if isinstance(old, InviteAttempt) and old.state == CHALLENGED:
                self._end_attempt(old, now, 0, "evicted", "", out)
        pending[(src.call_id, src.from_tag)] = item

    def _forget(self, att: InviteAttempt) -> None:
        akey = (att.call_id, att.from_tag, att.cseq)
        if self.attempts.get(akey) is att:
            del self.attempts[akey]

    @staticmethod
    def _srd_samples(att: InviteAttempt, final_ns: int | None, tag: str = "") -> tuple[int, ...]:
        """RFC 6076 §4.3/§5.4: one SRD per dialog created, else one to the first indication."""
        t1 = att.srd_start_ns
        samples = [ns - t1 for ns in att.early.values()]
        if tag and final_ns is not None and tag not in att.early and samples:
            samples.append(final_ns - t1)  # a fork answered without a provisional
        if not samples:
            end = att.first_prov_ns if att.first_prov_ns is not None else final_ns
            if end is not None:
                samples.append(end - t1)
        return tuple(samples)

    def _confirm(self, att: InviteAttempt, tag: str, msg: SipMessage, srd_ns: int,
                 out: EventSink[DialogEvent]) -> None:  # fmt: skip
        now = msg.ts_ns
        if not att.confirmed_tags:
            self.early_count -= len(att.early)  # early dialogs end with the first 2xx
        att.confirmed_tags.add(tag)
        if len(self.dialogs) >= self.max_dialogs:
            self.evictions["dialogs.full"] = self.evictions.get("dialogs.full", 0) + 1
            self._end_dialog(self.dialogs.popitem(last=False)[1], "evicted", now, out)
        key = _dkey(att.call_id, att.from_tag, tag)
        dlg = Dialog(key, att, tag, now, msg.status, srd_ns, att.events.copy())
        se = msg.session_expires or att.se
        dlg.expires_ns = now + (se * 1_000_000_000 if se else self.se_default_ns)
        old = self.dialogs.pop(key, None)
        if old is not None:  # same tags reused: the old one cannot continue
            self._end_dialog(old, "evicted", now, out)
        self.dialogs[key] = dlg
        self._push_expiry(dlg)

    def _push_expiry(self, dlg: Dialog) -> None:
        # The heap holds keys, not dialogs, and is rebuilt from the live table when dead entries
        # dominate: bounded by the dialog table, and ended dialogs are freed at once.
        exp = self._expiry
        exp.push_in_order(dlg.expires_ns, dlg.key)  # in order when Session-Expires is uniform
        if len(exp) > 2 * len(self.dialogs) + 1024:
            exp.rebuild([(d.expires_ns, d.key) for d in self.dialogs.values()])

    def _bye_response(self, dlg: Dialog, msg: SipMessage, out: EventSink[DialogEvent]) -> None:
        status = msg.status
        if dlg.state != BYE_SENT or dlg.bye_ns is None:
            return
        now = msg.ts_ns
        dlg.events.add(now, "sip.bye_response", status)
        if status < 300:
            self._end_dialog(dlg, "completed", now, out, now - dlg.bye_ns, True)
        elif (status == 503 and msg.retry_after is not None) or status in (401, 407):
            dlg.state = DIALOG_TRANSITIONS[BYE_SENT, "bye_retry"][0]
            dlg.wait_ns = now + (msg.retry_after or 0) * 1_000_000_000 + self.wait_ns
            self._waits.push(dlg.wait_ns, dlg)
        else:
            self._end_dialog(dlg, "bye_failed", now, out, now - dlg.bye_ns, False)

    # -- endings ---------------------------------------------------------------------

    @staticmethod
    def _record(att: InviteAttempt, to_tag: str, end_ns: int, outcome: str, status: int,
                srd_ns: int | None, sdt_ns: int | None, events: _Events) -> DialogRecord:
        o = att.origin
        transport = src = dst = ""
        if o is not None:
            transport = "udp" if o[0] == PROTO_UDP else "tcp"
            src = f"{format_ip(o[1])}:{o[2]}"
            dst = f"{format_ip(o[3])}:{o[4]}"
        return DialogRecord(  # positional (in field order): cheaper than keywords
            att.call_id, att.from_uri, att.to_uri, att.from_tag, to_tag, att.start_ns, end_ns,
            outcome, status, transport, src, dst,
            None if srd_ns is None else srd_ns / 1e9,  # srd_s
            None if sdt_ns is None else sdt_ns / 1e9,  # sdt_s
            att.user_agent, events.items, events.dropped,
        )  # fmt: skip

    def _end_attempt(self, att: InviteAttempt, now: int, status: int, outcome: str, timer: str,
                     out: EventSink[DialogEvent]) -> None:  # fmt: skip
        if att.state == PROCEEDING:
            self.early_count -= len(att.early)
        att.state = ENDED
        self._forget(att)
        if self.pending.get((att.call_id, att.from_tag)) is att:
            del self.pending[(att.call_id, att.from_tag)]
        final_ns = now if status else None
        srd = () if outcome in ("open", "evicted") else self._srd_samples(att, final_ns)
        to_tag = next(iter(att.early), "")
        record = self._record(att, to_tag, now, outcome, status, srd[0] if srd else None, None,
                              att.events)  # fmt: skip
        out.append(attempt_ended(outcome, status, timer, srd, record))

    def _end_dialog(self, dlg: Dialog, outcome: str, now: int, out: EventSink[DialogEvent],
                    sdd_ns: int | None = None, sdd_ok: bool = False) -> None:  # fmt: skip
        dlg.state = ENDED
        dlg.bye_txn = None
        if self.dialogs.get(dlg.key) is dlg:
            del self.dialogs[dlg.key]
        att = dlg.attempt
        sdt = None
        if dlg.bye_ns is not None:
            if outcome == "completed":  # RFC 6076 §4.5.1: 2xx -> BYE
                sdt = dlg.bye_ns - dlg.confirmed_ns
            elif outcome == "bye_failed":  # §4.5.2: 2xx -> the BYE's timeout (or failure)
                sdt = now - dlg.confirmed_ns
        completes = outcome == "completed" and not att.completed
        if completes:
            att.completed = True
        record = self._record(att, dlg.to_tag, now, outcome, dlg.final_status, dlg.srd_ns, sdt,
                              dlg.events)  # fmt: skip
        out.append(session_ended(outcome, sdt, sdd_ns, sdd_ok, completes, record))

    # -- timers ----------------------------------------------------------------------

    def on_timeout(self, ev: TransactionTimeout, out: EventSink[DialogEvent]) -> None:
        ctx = ev.txn.ctx
        if isinstance(ctx, InviteAttempt):
            if ctx.state == PROCEEDING and ctx.txn is ev.txn:
                self._end_attempt(ctx, ev.ts_ns, 0, "timed_out", ev.timer, out)
        elif isinstance(ctx, Dialog) and ctx.state == BYE_SENT and ctx.bye_txn is ev.txn:
            assert ctx.bye_ns is not None
            ctx.events.add(ev.ts_ns, "sip.bye_timeout")
            self._end_dialog(ctx, "bye_failed", ev.ts_ns, out, ev.ts_ns - ctx.bye_ns, False)

    @property
    def deadlines(self) -> Deadlines:
        return self._waits

    def handle_timer(self, now_ns: int, sweep: bool, out: EventSink[DialogEvent]) -> None:
        """Retry windows always; Session-Expires only when ``sweep`` (the 1 s expiry check)."""
        for deadline, item in self._waits.pop_due(now_ns):
            if isinstance(item, InviteAttempt):
                if item.state == CHALLENGED and item.deadline_ns == deadline:
                    item.state = ATTEMPT_TRANSITIONS[CHALLENGED, "abandon"][0]
                    self._end_attempt(item, deadline, item.final_status, "failed_4xx", "", out)
            elif isinstance(item, Dialog):
                if item.state == BYE_RETRY and item.wait_ns == deadline:
                    self._end_dialog(item, "bye_failed", deadline, out)
            elif isinstance(item, tuple):
                carry = self.pending.get(item)
                if isinstance(carry, _Carry) and carry.deadline_ns <= deadline:
                    del self.pending[item]
        if sweep:
            dialogs = self.dialogs
            for deadline, key in self._expiry.pop_due(now_ns):
                dlg = dialogs.get(key)  # type: ignore[call-overload]
                if dlg is not None and dlg.state == CONFIRMED and dlg.expires_ns == deadline:
                    self._end_dialog(dlg, "expired", deadline, out)

    def finish(self, now_ns: int, out: EventSink[DialogEvent]) -> None:
        """End of input: whatever is still open ends with outcome "open"."""
        for att in list(self.attempts.values()):
            self._end_attempt(att, now_ns, 0, "open", "", out)
        for pend in list(self.pending.values()):
            if isinstance(pend, InviteAttempt):
                self._end_attempt(pend, now_ns, 0, "open", "", out)
        self.pending.clear()
        for dlg in list(self.dialogs.values()):
            self._end_dialog(dlg, "open", now_ns, out)
