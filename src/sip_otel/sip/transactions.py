"""SIP transactions as seen by a passive observer (RFC 3261 §17). No I/O, no clock.

Theory of operation
-------------------
A monitor sees both sides of every transaction, so one table serves as client and server
transaction matcher at once. Every message is classified against the table:

* A request opens a transaction unless its key is already present, in which case it is a
  **retransmission** (counted by method, never passed upward). Key (§17.2.3): top Via branch
  with the magic cookie ``z9hG4bK`` + top Via sent-by + method, where ACK looks up "INVITE".
  Peers without the cookie (RFC 2543) get the fallback key: Call-ID, From tag, CSeq number,
  sent-by, method. The Request-URI and To tag of the §17.2.3 fallback are left out because
  responses carry no Request-URI and the INVITE carries no To tag while its ACK does; sent-by
  already tells two hops of one request apart.
* ACK (§17.1.1.3): when its key finds an INVITE transaction whose final response was not 2xx,
  it belongs to that transaction (the first copy is reported, later ones are retransmissions).
  Otherwise it is the transaction-less ACK for a 2xx; a pseudo entry keyed by its own branch
  absorbs its retransmissions.
* CANCEL (§9.1) opens its own transaction and is linked to the INVITE with the same branch.
* A response is matched by the same key with its CSeq method (§17.1.3). Within a transaction a
  response whose (status, To tag) was already seen is a retransmission; forked responses differ
  by To tag and pass. A response matching no transaction is an orphan (monitor started late,
  or one-sided capture).

Timers (packet time, ``T1`` configurable): a transaction that saw no final response 64*T1
after its request fires Timer B (INVITE with no response at all, §17.1.1.2) or Timer F
(non-INVITE, §17.1.2.2). An INVITE that got a provisional is in Proceeding where Timer B no
longer runs; it is given up after ``proceeding_timeout_ns`` (a stand-in for a proxy's Timer C,
§16.6 step 11) and reported as timer "C". After its final response an entry lingers 64*T1 so
that retransmissions of the request, the final response and the ACK are still recognised.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

from .message import SipMessage

__all__ = [
    "DEFAULT_MAX_TRANSACTIONS",
    "MAGIC_COOKIE",
    "Deadlines",
    "NewRequest",
    "NewResponse",
    "OrphanResponse",
    "Retransmission",
    "Transaction",
    "TransactionLayer",
    "TransactionTimeout",
    "TxnEvent",
]

MAGIC_COOKIE: Final = "z9hG4bK"
# Open + lingering transactions. At 1,000 calls/s with ~3 transactions per call each kept
# 64*T1 = 32 s after its final response, ~100k entries are live; beyond that the oldest goes.
DEFAULT_MAX_TRANSACTIONS: Final = 200_000

# Distinct (status, To tag) remembered per transaction for retransmission detection: a call
# sees a few (100, 180, 183, 200 and forks); a peer spraying tags must not grow it.
MAX_RESPONSES_SEEN: Final = 16
# Distinct shared Retransmission events (method x request/response x status) kept for reuse:
# methods and codes come off the wire, so the cache is bounded; beyond it events are built.
MAX_SHARED_EVENTS: Final = 256

# Transaction states (a passive view of §17.1.1/§17.1.2; "calling" covers Trying).
CALLING: Final = 0  # request seen, no response yet
PROCEEDING: Final = 1  # provisional seen
COMPLETED: Final = 2  # final response seen (lingers for retransmissions)

# Passive transition table: (state, response class) -> next state, with the RFC 3261 rule.
# Class 1 = provisional, 2 = any final. Requests never move the state (a repeated request is a
# retransmission, §17.2.1/§17.2.2); timers are in handle_timer.
TRANSITIONS: Final[dict[tuple[int, int], tuple[int, str]]] = {
    (CALLING, 1): (PROCEEDING, "§17.1.1.2 Calling -1xx-> Proceeding; §17.1.2.2 Trying -1xx->"),
    (CALLING, 2): (COMPLETED, "§17.1.1.2 / §17.1.2.2 final response ends the request phase"),
    (PROCEEDING, 1): (PROCEEDING, "§17.1.1.2 further provisionals stay in Proceeding"),
    (PROCEEDING, 2): (COMPLETED, "§17.1.1.2 Proceeding -final-> Completed/Terminated"),
    (COMPLETED, 1): (COMPLETED, "late provisional after a final: ignored for state"),
    (COMPLETED, 2): (COMPLETED, "§13.2.2.4 / RFC 6026: further 2xx (forking) in Accepted"),
}
# The same table indexed by state, one per response class (what the hot path looks up).
_AFTER_PROVISIONAL: Final = tuple(TRANSITIONS[state, 1][0] for state in range(3))
_AFTER_FINAL: Final = tuple(TRANSITIONS[state, 2][0] for state in range(3))

TxnKey = tuple[str | bytes, ...]


class Deadlines:
    """Min-queue of (deadline_ns, seq, item) with lazy deletion: items re-check on pop.

    Most deadlines are "now + a fixed delay" (Timer B/F, lingering, retry windows), so they
    arrive in time order: :meth:`push_in_order` appends those to a FIFO in O(1) and pops them
    in O(1), where a heap pays O(log n) on a table of ~100k entries. Anything else (or a packet
    older than the FIFO's tail) goes to a heap. Pops merge the two by (deadline, seq), so the
    order is exactly that of a single heap.
    """

    __slots__ = ("_fifo", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, object]] = []
        self._fifo: deque[tuple[int, int, object]] = deque()
        self._seq = 0

    def push(self, deadline_ns: int, item: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline_ns, self._seq, item))

    def push_in_order(self, deadline_ns: int, item: object) -> None:
        """Like :meth:`push`, for deadlines usually at or after every earlier one."""
        self._seq += 1
        fifo = self._fifo
        if not fifo or fifo[-1][0] <= deadline_ns:
            fifo.append((deadline_ns, self._seq, item))
        else:  # packet time went backwards (reordered capture)
            heapq.heappush(self._heap, (deadline_ns, self._seq, item))

    def next_due(self) -> int | None:
        heap, fifo = self._heap, self._fifo
        if fifo:
            return heap[0][0] if heap and heap[0][0] < fifo[0][0] else fifo[0][0]
        return heap[0][0] if heap else None

    def due(self, now_ns: int) -> bool:
        """Whether anything is due at ``now_ns`` (cheaper than :meth:`next_due`)."""
        fifo, heap = self._fifo, self._heap
        return bool((fifo and fifo[0][0] <= now_ns) or (heap and heap[0][0] <= now_ns))

    def pop_due(self, now_ns: int) -> list[tuple[int, object]]:
        """All (deadline, item) with deadline <= now, earliest first."""
        heap, fifo = self._heap, self._fifo
        heappop = heapq.heappop
        out: list[tuple[int, object]] = []
        while True:
            if fifo and fifo[0][0] <= now_ns:
                # seq is unique: the comparison never reaches the items
                entry = heappop(heap) if heap and heap[0] < fifo[0] else fifo.popleft()
            elif heap and heap[0][0] <= now_ns:
                entry = heappop(heap)
            else:
                return out
            out.append((entry[0], entry[2]))

    def __len__(self) -> int:
        return len(self._heap) + len(self._fifo)

    def rebuild(self, entries: list[tuple[int, object]]) -> None:
        """Replace the queue by live entries only (bounds it by the live table, not by time)."""
        heap: list[tuple[int, int, object]] = []
        for deadline, item in entries:
            self._seq += 1
            heap.append((deadline, self._seq, item))
        heapq.heapify(heap)
        self._heap = heap
        self._fifo.clear()


class Transaction:
    """One transaction on one hop. ``ctx`` belongs to the layer above (attempt, dialog, ...)."""

    __slots__ = (
        "ctx",
        "deadline_ns",
        "final_ns",
        "final_status",
        "key",
        "method",
        "request_se",
        "seen",
        "start_ns",
        "state",
    )

    def __init__(self, key: TxnKey, method: str, start_ns: int, request_se: int | None) -> None:
        self.key = key
        self.method = method
        self.start_ns = start_ns
        self.state = CALLING
        self.final_status = 0
        self.final_ns = 0
        self.deadline_ns = 0
        self.request_se = request_se  # Session-Expires of the request (RFC 4028 refresh)
        self.seen: set[tuple[int, str]] | None = None  # (status, To tag) of responses seen
        self.ctx: object = None


# --- events (what this layer reports upward) -------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRequest:
    """First copy of a request. ``related``: the INVITE transaction of a CANCEL or non-2xx ACK."""

    msg: SipMessage
    txn: Transaction
    related: Transaction | None = None


@dataclass(frozen=True, slots=True)
class NewResponse:
    msg: SipMessage
    txn: Transaction
    first_final: bool  # the transaction's first final response


@dataclass(frozen=True, slots=True)
class Retransmission:
    method: str
    is_request: bool
    status: int = 0


@dataclass(frozen=True, slots=True)
class OrphanResponse:
    msg: SipMessage


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    txn: Transaction
    timer: str  # "B" (INVITE, no response), "F" (non-INVITE), "C" (INVITE stuck in Proceeding)
    ts_ns: int  # when the timer fired (the deadline, not the time we noticed)


TxnEvent = NewRequest | NewResponse | Retransmission | OrphanResponse | TransactionTimeout


def request_key(msg: SipMessage, method: str) -> TxnKey:
    """Matching key of a request (or response) under ``method`` (§17.1.3, §17.2.3).

    The client's IP (source of a request, destination of a response: §18.2.2 sends responses
    to the request's source address) is part of the key, so the same message captured on two
    links (different IP headers, same Via) is two copies, not a retransmission, as tshark
    counts it. Ports are left out: a response may go to the Via port, not the source port.
    """
    o = msg.origin
    client = b"" if o is None else (o.src_ip if msg.is_request else o.dst_ip)
    branch = msg.via_branch
    if branch.startswith(MAGIC_COOKIE):
        return (branch, msg.via_sent_by, method, client)
    return ("", msg.via_sent_by, method, client, msg.call_id, msg.from_tag, str(msg.cseq))


class TransactionLayer:
    """Classifies every message against the transaction table (see module docstring).

    :meth:`handle` returns one event per message. The tracker uses :meth:`classify_request` and
    :meth:`classify_response`, which return the same verdicts without building an event for
    first copies (the hot path).
    """

    def __init__(
        self,
        t1_ns: int = 500_000_000,
        proceeding_timeout_ns: int = 300_000_000_000,
        max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
        evictions: dict[str, int] | None = None,
    ) -> None:
        self.timeout_ns = 64 * t1_ns  # Timer B = Timer F = 64*T1 (§17.1.1.2, §17.1.2.2)
        self.linger_ns = 64 * t1_ns  # keep completed entries to absorb retransmissions
        self.proceeding_timeout_ns = proceeding_timeout_ns
        self.max_transactions = max_transactions
        # OrderedDict: popitem(last=False) evicts the oldest in O(1) (a plain dict degrades to
        # O(n) when its front is popped repeatedly)
        self.table: OrderedDict[TxnKey, Transaction] = OrderedDict()
        self.evictions = evictions if evictions is not None else {}  # "<table>.<reason>" -> n
        self.open = 0  # transactions waiting for their final response
        self._deadlines = Deadlines()
        # Timer B/F and the linger are now + 64*T1: pushed in time order (O(1) queue)
        self._push = self._deadlines.push_in_order
        # Retransmission events are frozen: share one per (method, request?, status)
        self._retrans: dict[tuple[str, bool, int], Retransmission] = {}

    # -- messages --------------------------------------------------------------------

    def handle(self, msg: SipMessage) -> TxnEvent:
        if msg.is_request:
            r = self.classify_request(msg)
            return NewRequest(msg, *r) if isinstance(r, tuple) else r
        v = self.classify_response(msg)
        return NewResponse(msg, *v) if isinstance(v, tuple) else v

    def _retransmission(self, method: str, is_request: bool, status: int = 0) -> Retransmission:
        key = (method, is_request, status)
        ev = self._retrans.get(key)
        if ev is None:
            ev = Retransmission(method, is_request, status)
            if len(self._retrans) < MAX_SHARED_EVENTS:  # methods come off the wire: bounded
                self._retrans[key] = ev
        return ev

    def classify_request(
        self, msg: SipMessage
    ) -> tuple[Transaction, Transaction | None] | Retransmission:
        """(transaction, related) for a first copy (as :class:`NewRequest`), or the event."""
        method = msg.method
        table = self.table
        o = msg.origin
        client = b"" if o is None else o.src_ip
        branch = msg.via_branch
        cookie = branch.startswith(MAGIC_COOKIE)
        if cookie:
            key: TxnKey = (branch, msg.via_sent_by, method, client)
        else:
            key = ("", msg.via_sent_by, method, client, msg.call_id, msg.from_tag, str(msg.cseq))
        if method == "ACK":
            inv = table.get((branch, msg.via_sent_by, "INVITE", client) if cookie else
                            (*key[:2], "INVITE", *key[3:]))  # fmt: skip
            if inv is not None and inv.state == COMPLETED and inv.final_status >= 300:
                seen = inv.seen
                if seen is not None and (0, "ACK") in seen:
                    return self._retransmission("ACK", True)
                self._mark(inv, 0, "ACK")
                return (inv, inv)
            # ACK for a 2xx: its own "transaction" only to catch its retransmissions.
            if key in table:
                return self._retransmission("ACK", True)
            txn = self._open(key, "ACK", msg.ts_ns, None)
            txn.state = COMPLETED
            self.open -= 1
            txn.deadline_ns = deadline = msg.ts_ns + self.linger_ns
            self._push(deadline, txn)
            return (txn, None)
        if key in table:
            return self._retransmission(method, True)
        # inline _open (the common case: table not full)
        if len(table) >= self.max_transactions:
            self._evict_oldest()
        now = msg.ts_ns
        txn = Transaction(key, method, now, msg.session_expires)
        table[key] = txn
        self.open += 1
        txn.deadline_ns = deadline = now + self.timeout_ns
        self._push(deadline, txn)
        if method == "CANCEL":  # linked to the INVITE with the same branch (§9.1)
            return (txn, table.get((branch, msg.via_sent_by, "INVITE", client) if cookie else
                                   (*key[:2], "INVITE", *key[3:])))  # fmt: skip
        return (txn, None)

    def classify_response(
        self, msg: SipMessage
    ) -> tuple[Transaction, bool] | Retransmission | OrphanResponse:
        """(transaction, first final) for a new response (as :class:`NewResponse`), or the event."""
        o = msg.origin
        branch = msg.via_branch
        if branch.startswith(MAGIC_COOKIE):
            key: TxnKey = (branch, msg.via_sent_by, msg.method, b"" if o is None else o.dst_ip)
        else:
            key = ("", msg.via_sent_by, msg.method, b"" if o is None else o.dst_ip,
                   msg.call_id, msg.from_tag, str(msg.cseq))  # fmt: skip
        table = self.table
        txn = table.get(key)
        if txn is None:
            if o is not None and o.src_ip != o.dst_ip:
                # Captures that do not swap the IPs of a response (synthetic, some mirrors):
                # try the response's source as the client before calling it an orphan.
                txn = table.get((*key[:3], o.src_ip, *key[4:]))
            if txn is None:
                return OrphanResponse(msg)
        status = msg.status
        tag = msg.to_tag
        seen = txn.seen
        if seen is None:
            txn.seen = {(status, tag)}
        elif (status, tag) in seen:
            return self._retransmission(msg.method, False, status)
        elif len(seen) < MAX_RESPONSES_SEEN:
            seen.add((status, tag))
        old = txn.state
        if status < 200:
            txn.state = _AFTER_PROVISIONAL[old]
            return (txn, False)
        txn.state = _AFTER_FINAL[old]
        if old == COMPLETED:
            return (txn, False)
        self.open -= 1
        txn.final_status = status
        txn.final_ns = now = msg.ts_ns
        txn.deadline_ns = deadline = now + self.linger_ns
        self._push(deadline, txn)
        return (txn, True)

    @staticmethod
    def _mark(txn: Transaction, status: int, tag: str) -> None:
        seen = txn.seen
        if seen is None:
            txn.seen = {(status, tag)}
        elif len(seen) < MAX_RESPONSES_SEEN:
            seen.add((status, tag))

    def _open(self, key: TxnKey, method: str, now: int, se: int | None) -> Transaction:
        table = self.table
        if len(table) >= self.max_transactions:
            self._evict_oldest()
        txn = Transaction(key, method, now, se)
        table[key] = txn
        self.open += 1
        return txn

    def _evict_oldest(self) -> None:
        old = self.table.popitem(last=False)[1]  # oldest first
        old.ctx = None  # break txn <-> attempt/dialog cycles: freed by refcount, not GC
        if old.state != COMPLETED:
            self.open -= 1
        self.evictions["transactions.full"] = self.evictions.get("transactions.full", 0) + 1

    # -- timers ----------------------------------------------------------------------

    @property
    def deadlines(self) -> Deadlines:
        return self._deadlines

    def handle_timer(self, now_ns: int) -> list[TransactionTimeout]:
        out: list[TransactionTimeout] = []
        table = self.table
        for deadline, item in self._deadlines.pop_due(now_ns):
            txn = item
            assert isinstance(txn, Transaction)
            if txn.deadline_ns != deadline or table.get(txn.key) is not txn:
                continue  # superseded deadline or already gone
            if txn.state == COMPLETED:
                del table[txn.key]  # linger over
                txn.ctx = None
            elif txn.method == "INVITE" and txn.state == PROCEEDING:
                give_up = txn.start_ns + self.proceeding_timeout_ns
                if deadline < give_up:
                    txn.deadline_ns = give_up
                    self._deadlines.push(give_up, txn)  # not "now + 64*T1": the heap
                else:
                    del table[txn.key]
                    self.open -= 1
                    out.append(TransactionTimeout(txn, "C", deadline))
            else:
                del table[txn.key]
                self.open -= 1
                timer = "B" if txn.method == "INVITE" else "F"
                out.append(TransactionTimeout(txn, timer, deadline))
        return out
