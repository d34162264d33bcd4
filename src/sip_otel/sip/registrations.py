"""REGISTER attempts and active registrations (RFC 3261 §10, RFC 6076 §4.1-§4.2). Sans-IO.

Theory of operation
-------------------
A registration attempt starts with the first REGISTER of a Call-ID for an AOR (the To URI,
§10.2) and ends with its final response or its Timer F. The same REGISTER forwarded over a
second hop (same Call-ID, AOR and CSeq) joins the attempt. A 401/407 parks the attempt
(Challenged); the credentialed REGISTER (same Call-ID and AOR, higher CSeq, §10.2.4/§22.2)
resumes it, so RRD runs from the first REGISTER to the 2xx (RFC 6076 §4.1) and IRA counts one
REGISTER. With ``challenge_retry_is_new_attempt`` the challenged REGISTER ends there ("failed")
and the retry is a new attempt. No retry within 64*T1 ends a challenged attempt "failed".

A REGISTER whose effective expiry is 0 (``Contact: *``, ``;expires=0`` on the Contact, or
``Expires: 0`` without a Contact parameter, §10.2.2) is an unregister: its 2xx removes the AOR
from the active table and never counts as a successful registration. A 2xx to any other
REGISTER makes the AOR active until now + expiry (Contact parameter of the 2xx, else its
Expires, else the request's, else 3600 s, §10.2.1.1); the 1 s sweep drops lapsed AORs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from ..net.types import PROTO_UDP, format_ip
from ..records import RegistrationRecord
from .events import EventSink, RegistrationEnded
from .message import SipMessage
from .transactions import Deadlines, NewRequest, NewResponse, Transaction, TransactionTimeout

__all__ = [
    "DEFAULT_MAX_REGISTER_ATTEMPTS",
    "DEFAULT_MAX_REGISTRATIONS",
    "REGISTER_TRANSITIONS",
    "RegisterAttempt",
    "RegistrationEnded",
    "RegistrationLayer",
]

# Active AORs: a large registrar serves a few hundred thousand; beyond 500k the oldest goes.
DEFAULT_MAX_REGISTRATIONS: Final = 500_000
# REGISTERs waiting for a final or a credentialed retry (a 64*T1 window each).
DEFAULT_MAX_REGISTER_ATTEMPTS: Final = 100_000
DEFAULT_REGISTER_EXPIRES_S: Final = 3600  # RFC 3261 §10.2.1.1

PENDING: Final = "pending"
CHALLENGED: Final = "challenged"
ENDED: Final = "ended"

REGISTER_TRANSITIONS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    (PENDING, "2xx"): (ENDED, "RFC 3261 §10.3 step 8: registered (or unregistered)"),
    (PENDING, "challenge"): (CHALLENGED, "RFC 3261 §22.2; RFC 6076 §4.1 one attempt"),
    (CHALLENGED, "retry"): (PENDING, "RFC 3261 §10.2.4 same Call-ID, CSeq+1"),
    (CHALLENGED, "abandon"): (ENDED, "no credentialed retry within 64*T1: failed"),
    (PENDING, "final"): (ENDED, "RFC 6076 §4.2 3xx-6xx final: failed"),
    (PENDING, "timeout"): (ENDED, "RFC 3261 §17.1.2.2 Timer F: timed_out (IRA)"),
}

Origin = tuple[int, bytes, int, bytes, int]


def _unregister(msg: SipMessage) -> bool:
    if msg.contact_star:
        return True
    exp = msg.contact_expires if msg.contact_expires is not None else msg.expires
    return exp == 0


class RegisterAttempt:
    __slots__ = (
        "aor", "call_id", "challenged", "cseq", "deadline_ns", "final_status", "origin",
        "req_expires", "start_ns", "state", "txn", "unregister",
    )  # fmt: skip

    def __init__(self, msg: SipMessage, txn: Transaction) -> None:
        self.aor = msg.to_uri
        self.call_id = msg.call_id
        self.cseq = msg.cseq
        self.start_ns = msg.ts_ns  # RFC 6076 §4.1 t1: the first REGISTER
        self.state = PENDING
        self.txn = txn
        self.challenged = False
        self.final_status = 0
        self.deadline_ns = 0
        self.unregister = _unregister(msg)
        self.req_expires = msg.contact_expires if msg.contact_expires is not None else msg.expires
        o = msg.origin
        self.origin: Origin | None = (
            None if o is None else (o.transport, o.src_ip, o.src_port, o.dst_ip, o.dst_port)
        )


class RegistrationLayer:
    def __init__(
        self,
        t1_ns: int = 500_000_000,
        challenge_retry_is_new_attempt: bool = False,
        max_registrations: int = DEFAULT_MAX_REGISTRATIONS,
        max_attempts: int = DEFAULT_MAX_REGISTER_ATTEMPTS,
        default_expires_s: int = DEFAULT_REGISTER_EXPIRES_S,
        evictions: dict[str, int] | None = None,
    ) -> None:
        self.wait_ns = 64 * t1_ns
        self.challenge_new = challenge_retry_is_new_attempt
        self.max_registrations = max_registrations
        self.max_attempts = max_attempts
        self.default_expires_s = default_expires_s
        # OrderedDicts: the oldest entry is evicted in O(1) when a table is full
        self.attempts: OrderedDict[tuple[str, str], RegisterAttempt] = OrderedDict()
        self.active: OrderedDict[str, int] = OrderedDict()  # AOR -> expiry (ns), LRU order
        self.evictions = evictions if evictions is not None else {}
        self._waits = Deadlines()  # challenge windows
        self._expiry = Deadlines()  # active AOR expiries (checked by the sweep)

    def on_request(self, ev: NewRequest, out: EventSink[RegistrationEnded]) -> None:
        self.request(ev.msg, ev.txn, out)

    def request(self, msg: SipMessage, txn: Transaction,
                out: EventSink[RegistrationEnded]) -> None:  # fmt: skip
        """A first copy of a REGISTER (the fields of :class:`NewRequest`)."""
        key = (msg.call_id, msg.to_uri)
        att = self.attempts.get(key)
        if att is not None:
            if att.state == PENDING and msg.cseq == att.cseq:  # same REGISTER, another hop
                txn.ctx = att
                return
            if att.state == CHALLENGED and msg.cseq > att.cseq:
                att.state = REGISTER_TRANSITIONS[CHALLENGED, "retry"][0]
                att.cseq, att.txn, att.challenged = msg.cseq, txn, True
                att.unregister = _unregister(msg)
                txn.ctx = att
                return
        if len(self.attempts) >= self.max_attempts:
            old = self.attempts.popitem(last=False)[1]
            evs = self.evictions
            evs["register_attempts.full"] = evs.get("register_attempts.full", 0) + 1
            self._end(old, msg.ts_ns, "evicted", 0, out)
        att = RegisterAttempt(msg, txn)
        self.attempts[key] = att
        txn.ctx = att

    def on_response(self, ev: NewResponse, out: EventSink[RegistrationEnded]) -> None:
        self.response(ev.msg, ev.txn, out)

    def response(self, msg: SipMessage, txn: Transaction,
                 out: EventSink[RegistrationEnded]) -> None:  # fmt: skip
        """A new response to a REGISTER (the fields of :class:`NewResponse`)."""
        att = txn.ctx
        status = msg.status
        if not isinstance(att, RegisterAttempt) or status < 200 or att.state != PENDING:
            return
        now = msg.ts_ns
        if status < 300:
            if att.unregister:
                self.active.pop(att.aor, None)
                self._end(att, now, "unregistered", status, out)
                return
            exp = msg.contact_expires if msg.contact_expires is not None else msg.expires
            if exp is None:
                exp = att.req_expires if att.req_expires is not None else self.default_expires_s
            if att.aor in self.active:
                self.active.move_to_end(att.aor)  # refreshed: evicted last
            elif len(self.active) >= self.max_registrations:
                self.active.popitem(last=False)
                evs = self.evictions
                evs["registrations.full"] = evs.get("registrations.full", 0) + 1
            expiry = now + exp * 1_000_000_000
            self.active[att.aor] = expiry
            self._expiry.push_in_order(expiry, att.aor)
            if len(self._expiry) > 2 * len(self.active) + 1024:  # bound by the live table
                self._expiry.rebuild([(e, aor) for aor, e in self.active.items()])
            self._end(att, now, "registered", status, out)
        elif status in (401, 407) and not self.challenge_new:
            att.state = REGISTER_TRANSITIONS[PENDING, "challenge"][0]
            att.final_status = status
            att.deadline_ns = now + self.wait_ns
            self._waits.push_in_order(att.deadline_ns, att)
        else:
            self._end(att, now, "failed", status, out)

    def on_timeout(self, ev: TransactionTimeout, out: EventSink[RegistrationEnded]) -> None:
        att = ev.txn.ctx
        if isinstance(att, RegisterAttempt) and att.state == PENDING and att.txn is ev.txn:
            self._end(att, ev.ts_ns, "timed_out", 0, out)

    def _end(self, att: RegisterAttempt, now: int, outcome: str, status: int,
             out: EventSink[RegistrationEnded]) -> None:  # fmt: skip
        att.state = ENDED
        key = (att.call_id, att.aor)
        if self.attempts.get(key) is att:
            del self.attempts[key]
        rrd = now - att.start_ns if outcome == "registered" else None
        o = att.origin
        transport = src = dst = ""
        if o is not None:
            transport = "udp" if o[0] == PROTO_UDP else "tcp"
            src = f"{format_ip(o[1])}:{o[2]}"
            dst = f"{format_ip(o[3])}:{o[4]}"
        record = RegistrationRecord(
            aor=att.aor, call_id=att.call_id, start_ns=att.start_ns, end_ns=now, outcome=outcome,
            final_status=status, transport=transport, src=src, dst=dst,
            rrd_s=None if rrd is None else rrd / 1e9, challenged=att.challenged,
        )  # fmt: skip
        out.append(RegistrationEnded(outcome, status, rrd, record))

    @property
    def deadlines(self) -> Deadlines:
        return self._waits

    def handle_timer(self, now_ns: int, sweep: bool, out: EventSink[RegistrationEnded]) -> None:
        for deadline, item in self._waits.pop_due(now_ns):
            assert isinstance(item, RegisterAttempt)
            if item.state == CHALLENGED and item.deadline_ns == deadline:
                self._end(item, deadline, "failed", item.final_status, out)
        if sweep:
            active = self.active
            for deadline, aor in self._expiry.pop_due(now_ns):
                assert isinstance(aor, str)
                if active.get(aor) == deadline:
                    del active[aor]

    def finish(self, now_ns: int, out: EventSink[RegistrationEnded]) -> None:
        for att in list(self.attempts.values()):
            self._end(att, now_ns, "open", 0, out)
