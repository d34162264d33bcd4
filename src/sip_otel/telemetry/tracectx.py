"""Trace identity across hops: derived trace IDs and links between the legs of one call.

An agent sees one hop of a call; a call through proxies and B2BUAs crosses several hosts, each
with its agent. So that their spans land in one trace without any agent talking to another,
the trace ID is a function of what every hop carries:

* the **RFC 7989 Session-ID** of the initial INVITE, when present and not the null UUID: its
  local UUID (the caller's, which intermediaries and B2BUAs pass on unchanged) *is* the trace ID,
  so an operator can paste a Session-ID from an SBC log into the tracing backend;
* else the value of the **correlation header** (``--correlation-header``, e.g. ``X-CID``), which
  B2BUAs set to the originating leg's Call-ID: the trace ID derived from it equals the
  originating leg's;
* else the **Call-ID** (proxies keep it): ``SHA-256("sip-otel trace\\0" + value)[:16]``.

With ``--trace-ids random`` every span gets a random trace ID (the SDK default) instead.

Within one agent, legs that a B2BUA bridges are also **linked**: a span whose correlation value
names another leg's Call-ID, or that shares a Session-ID with another leg, gets a span link to
the span of that leg if it was emitted before (whichever leg ends second links to the first).
The table of recent spans is bounded (:data:`MAX_LINK_ENTRIES`, least recently used evicted and
counted as ``span_links.full``). Links hold no Call-ID: only span contexts.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, SpanContext

from ..records import DialogRecord, RegistrationRecord

__all__ = [
    "MAX_LINK_ENTRIES",
    "TRACE_ID_MODES",
    "CallTraceIds",
    "DerivedIdGenerator",
    "session_uuid",
    "trace_id_for",
]

TRACE_ID_MODES = ("derived", "random")
MAX_LINK_ENTRIES = 8192  # recent spans remembered for links (~1 s of calls at 8,000 calls/s)
_HEX = frozenset("0123456789abcdefABCDEF")
_NULL_UUID = "0" * 32


def session_uuid(value: str) -> str:
    """The local UUID of a Session-ID header value, lower-case, or "" when it is absent, the null
    UUID or not 32 hex digits (RFC 7989 §5; a dashed UUID is accepted, as some stacks send it)."""
    local = value.split(";", 1)[0].strip().replace("-", "")
    if len(local) != 32 or not set(local) <= _HEX:
        return ""
    local = local.lower()
    return "" if local == _NULL_UUID else local


def _digest(value: str) -> int:
    d = hashlib.sha256(b"sip-otel trace\0" + value.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(d[:16], "big") or 1  # 0 is the invalid trace ID


def trace_id_for(rec: DialogRecord | RegistrationRecord) -> int:
    """The derived trace ID of one record (see the module docstring)."""
    if isinstance(rec, DialogRecord):
        sid = session_uuid(rec.session_id)
        if sid:
            return int(sid, 16)
        if rec.correlation:
            return _digest(rec.correlation)
    return _digest(rec.call_id)


class DerivedIdGenerator(RandomIdGenerator):
    """The SDK's random IDs, except that the next root span's trace ID can be set beforehand
    (per thread: the pipeline thread emits spans)."""

    def __init__(self) -> None:
        self._next = threading.local()

    def set_next_trace_id(self, trace_id: int | None) -> None:
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        if trace_id is None:
            return super().generate_trace_id()
        self._next.trace_id = None
        return trace_id


class CallTraceIds:
    """Chooses each span's trace ID and links, and remembers emitted spans for later legs."""

    def __init__(
        self,
        ids: DerivedIdGenerator,
        mode: str = "derived",
        on_evict: Callable[[int], None] | None = None,
        max_entries: int = MAX_LINK_ENTRIES,
    ) -> None:
        if mode not in TRACE_ID_MODES:
            raise ValueError(f"trace id mode {mode!r}: expected one of {', '.join(TRACE_ID_MODES)}")
        self.ids = ids
        self.mode = mode
        self.max_entries = max_entries
        self._recent: OrderedDict[str, SpanContext] = OrderedDict()
        self._on_evict = on_evict

    def before(self, rec: DialogRecord | RegistrationRecord) -> list[Link]:
        """Set up the trace ID of the span about to start for ``rec``; its links."""
        self.ids.set_next_trace_id(trace_id_for(rec) if self.mode == "derived" else None)
        if not isinstance(rec, DialogRecord):
            return []
        links: list[Link] = []
        seen: set[int] = set()
        for key in self._lookups(rec):
            ctx = self._recent.get(key)
            if ctx is not None and ctx.span_id not in seen:
                seen.add(ctx.span_id)
                self._recent.move_to_end(key)
                links.append(Link(ctx, {"sip.link": key.split(":", 1)[0]}))
        return links

    def after(self, rec: DialogRecord | RegistrationRecord, ctx: SpanContext) -> None:
        """Remember the span of a finished dialog for the legs that end after it."""
        if not isinstance(rec, DialogRecord):
            return
        for key in self._keys(rec):
            if key in self._recent:
                continue  # the first leg stays the one later legs link to
            self._recent[key] = ctx
            if len(self._recent) > self.max_entries:
                self._recent.popitem(last=False)
                if self._on_evict is not None:
                    self._on_evict(1)

    @staticmethod
    def _keys(rec: DialogRecord) -> list[str]:
        keys = [f"call:{rec.call_id}"]
        sid = session_uuid(rec.session_id)
        if sid:
            keys.append(f"session:{sid}")
        return keys

    @staticmethod
    def _lookups(rec: DialogRecord) -> list[str]:
        out = []
        if rec.correlation and rec.correlation != rec.call_id:
            out.append(f"call:{rec.correlation}")
        sid = session_uuid(rec.session_id)
        if sid:
            out.append(f"session:{sid}")
        return out
