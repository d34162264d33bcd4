"""SIP transactions as seen by a passive observer (RFC 3261 §17): a view of the compiled layer.

The transaction layer runs in C (``_c/so_txn.c``, theory of operation there and in
docs/rfc6076.md): one table serves as client and server transaction matcher, a repeated
request or (status, To tag) is a retransmission, ACK for a non-2xx final belongs to the
INVITE transaction, CANCEL is linked to its INVITE, Timer B/F/C run on packet time, completed
entries linger 64*T1. This module gives tests and tools the layer on its own, message by
message: :class:`TransactionLayer` returns the verdicts as the event objects below.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from .. import _core
from .message import SipMessage

__all__ = [
    "DEFAULT_MAX_TRANSACTIONS",
    "MAGIC_COOKIE",
    "MAX_RESPONSES_SEEN",
    "Deadlines",
    "NewRequest",
    "NewResponse",
    "OrphanResponse",
    "Retransmission",
    "Transaction",
    "TransactionLayer",
    "TransactionTimeout",
    "TxnEvent",
    "request_key",
]

MAGIC_COOKIE: Final = "z9hG4bK"
# Open + lingering transactions. At 1,000 calls/s with ~3 transactions per call each kept
# 64*T1 = 32 s after its final response, ~100k entries are live; beyond that the oldest goes.
DEFAULT_MAX_TRANSACTIONS: Final = 200_000
# Distinct (status, To tag) remembered per transaction for retransmission detection.
MAX_RESPONSES_SEEN: Final = 16

TxnKey = tuple[int, int]  # the 128-bit key hash, as two 64-bit halves

Deadlines = _core.DeadlineQueue


class Transaction:
    """A transaction of the compiled table: its key and method, and its state read live."""

    __slots__ = ("_core", "_ref", "key", "method")

    def __init__(self, core: _core.TrackerCore, ref: tuple[int, int], key: TxnKey,
                 method: str) -> None:  # fmt: skip
        self._core = core
        self._ref = ref
        self.key = key
        self.method = method

    @property
    def state(self) -> str:
        return _core.TXN_STATE_NAMES[self._core.txn_state(self._ref)[0]]

    @property
    def final_status(self) -> int:
        return int(self._core.txn_state(self._ref)[1])

    def __repr__(self) -> str:
        return f"Transaction({self.method}, {self.state}, key={self.key[0]:016x}...)"


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
    """Matching key of a request (or response) under ``method`` (§17.1.3, §17.2.3), as the
    table of a :class:`TransactionLayer` holds it (a hash of branch, sent-by, method and the
    client's IP; without the magic cookie: sent-by, method, client, Call-ID, From tag, CSeq)."""
    return _core.txn_key(msg, method)


class TransactionLayer:
    """Classifies every message against the transaction table (see the module docstring)."""

    def __init__(
        self,
        t1_ns: int = 500_000_000,
        proceeding_timeout_ns: int = 300_000_000_000,
        max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
        evictions: dict[str, int] | None = None,
    ) -> None:
        from .tracker import TrackerConfig, event_factory

        config = TrackerConfig(t1_ns=t1_ns, invite_proceeding_timeout_ns=proceeding_timeout_ns,
                               max_transactions=max_transactions)  # fmt: skip
        self._core = _core.TrackerCore(config, event_factory, fixed_seed=True)
        self.evictions = evictions if evictions is not None else {}

    def _sync(self) -> None:
        for slug, n in self._core.take_evictions().items():
            self.evictions[slug] = self.evictions.get(slug, 0) + n

    def handle(self, msg: SipMessage) -> TxnEvent:
        if msg.is_request:
            r = self.classify_request(msg)
            return NewRequest(msg, *r) if isinstance(r, tuple) else r
        v = self.classify_response(msg)
        return NewResponse(msg, *v) if isinstance(v, tuple) else v

    def classify_request(
        self, msg: SipMessage
    ) -> tuple[Transaction, Transaction | None] | Retransmission:
        """(transaction, related) for a first copy (as :class:`NewRequest`), or the event."""
        verdict, txn, related = self._core.txn_request(msg)
        self._sync()
        if verdict == 0 and txn is not None:
            return txn, related
        return Retransmission(msg.method, True)

    def classify_response(
        self, msg: SipMessage
    ) -> tuple[Transaction, bool] | Retransmission | OrphanResponse:
        """(transaction, first final) for a new response (as :class:`NewResponse`), or the
        event."""
        verdict, txn, first_final = self._core.txn_response(msg)
        if verdict == 0 and txn is not None:
            return txn, bool(first_final)
        if verdict == 1:
            return Retransmission(msg.method, False, msg.status)
        return OrphanResponse(msg)

    def handle_timer(self, now_ns: int) -> list[TransactionTimeout]:
        out = [ev for ev in self._core.handle_timer(now_ns) if isinstance(ev, TransactionTimeout)]
        self._sync()
        return out

    @property
    def open(self) -> int:
        """Transactions waiting for their final response."""
        return int(self._core.gauges()["transactions"])

    @property
    def table(self) -> dict[TxnKey, int]:
        """Keys of the tracked transactions (open and lingering), oldest first."""
        return dict.fromkeys(self._core.txn_keys(), 1)

    def __iter__(self) -> Iterator[TxnKey]:
        return iter(self._core.txn_keys())
