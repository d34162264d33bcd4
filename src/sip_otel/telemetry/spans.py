"""Finished dialogs and registrations as spans, and a span queue that never grows unbounded.

One span per INVITE dialog attempt (``SIP INVITE``) and per registration attempt
(``SIP REGISTER``), started and ended at **packet** times, with the record's events as span
events. SIP attributes live under ``sip.``; network endpoints use the general OTel attributes
(``network.transport``, ``source.*``, ``destination.*``). The full list is in docs/metrics.md.

Privacy (RFC 6076 §7): the Call-ID is exported as a truncated SHA-256 (``sip.call_id_hash``,
always, so spans of several agents can be matched); the raw Call-ID and tags only with
``hash_call_id=False``; URIs only with ``include_uris=True``; the endpoints' addresses and ports
(``source.*``, ``destination.*``: a phone's IP address is personal data) unless
``include_addresses=False``.

Bounded export: :class:`BoundedSpanProcessor` admits a span only while fewer than ``max_queue``
spans are waiting for the exporter, and counts every span it refuses, and every span of a failed
export, through ``on_drop``. The SDK ``BatchSpanProcessor`` underneath therefore never reaches
its own queue limit (where it drops without telling us), and a collector outage holds at most
``max_queue`` waiting spans plus one batch (<= ``MAX_BATCH``) inside the blocked exporter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from ..records import DialogRecord, RegistrationRecord
from .media import media_attributes, media_events
from .tracectx import CallTraceIds, session_uuid

__all__ = [
    "DIALOG_ERROR_OUTCOMES",
    "INEFFECTIVE_FINALS",
    "REGISTRATION_ERROR_OUTCOMES",
    "BoundedSpanProcessor",
    "call_id_hash",
    "dialog_is_error",
    "emit_record",
]

# An INVITE span is an error when RFC 6076 counts its attempt as ineffective (§4.8: answered
# 408, 500, 503 or 504, or no answer at all) or when something timed out: the attempt (Timer B,
# the Timer C stand-in) or its BYE. A call answered 486/480/600/603 was handled effectively by
# the network (§4.7); cancelled, redirected, expired and evicted attempts are not errors either.
DIALOG_ERROR_OUTCOMES = frozenset({"timed_out"})
INEFFECTIVE_FINALS = frozenset({408, 500, 503, 504})
# A registration failure final or timeout is ineffective (§4.2).
REGISTRATION_ERROR_OUTCOMES = frozenset({"failed", "timed_out"})


def dialog_is_error(rec: DialogRecord) -> bool:
    """ERROR status for this INVITE span? (see DIALOG_ERROR_OUTCOMES)."""
    if rec.outcome in DIALOG_ERROR_OUTCOMES:
        return True
    if rec.outcome == "bye_failed":
        return any(ev.name == "sip.bye_timeout" for ev in rec.events)
    return rec.outcome.startswith("failed_") and rec.final_status in INEFFECTIVE_FINALS


CALL_ID_HASH_HEX = 16  # 64 bits of SHA-256: collision-free at any realistic call volume
MAX_BATCH = 512  # spans per OTLP request (SDK default)

Attributes = dict[str, AttributeValue]


def call_id_hash(call_id: str) -> str:
    return hashlib.sha256(call_id.encode("utf-8", "surrogateescape")).hexdigest()[:CALL_ID_HASH_HEX]


def _split_addr(addr: str) -> tuple[str, int | None]:
    """``"ip:port"`` / ``"[v6]:port"`` -> (ip, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return addr, None
    return host.strip("[]"), int(port)


def _network(attrs: Attributes, transport: str, src: str, dst: str, addresses: bool) -> None:
    if transport:
        attrs["network.transport"] = transport.lower()
    if not addresses:
        return
    for prefix, addr in (("source", src), ("destination", dst)):
        if not addr:
            continue
        host, port = _split_addr(addr)
        attrs[f"{prefix}.address"] = host
        if port is not None:
            attrs[f"{prefix}.port"] = port


def dialog_attributes(
    rec: DialogRecord, hash_call_id: bool, include_uris: bool, include_addresses: bool = True
) -> Attributes:
    attrs: Attributes = {
        "sip.method": "INVITE",
        "sip.call_id_hash": call_id_hash(rec.call_id),
        "sip.outcome": rec.outcome,
    }
    if not hash_call_id:
        attrs["sip.call_id"] = rec.call_id
        if rec.from_tag:
            attrs["sip.from_tag"] = rec.from_tag
        if rec.to_tag:
            attrs["sip.to_tag"] = rec.to_tag
    if include_uris:
        attrs["sip.from_uri"] = rec.from_uri
        attrs["sip.to_uri"] = rec.to_uri
    if rec.final_status:
        attrs["sip.status_code"] = rec.final_status
    if rec.srd_s is not None:
        attrs["sip.rfc6076.srd"] = rec.srd_s
    if rec.sdt_s is not None:
        attrs["sip.rfc6076.sdt"] = rec.sdt_s
    if rec.user_agent:
        attrs["user_agent.original"] = rec.user_agent
    sid = session_uuid(rec.session_id)
    if sid:
        attrs["sip.session_id"] = sid
    if rec.events_dropped:
        attrs["sip.events_dropped"] = rec.events_dropped
    _network(attrs, rec.transport, rec.src, rec.dst, include_addresses)
    if rec.media:
        attrs.update(media_attributes(rec.media))
    return attrs


def registration_attributes(
    rec: RegistrationRecord, hash_call_id: bool, include_uris: bool, include_addresses: bool = True
) -> Attributes:
    attrs: Attributes = {
        "sip.method": "REGISTER",
        "sip.call_id_hash": call_id_hash(rec.call_id),
        "sip.outcome": rec.outcome,
        "sip.challenged": rec.challenged,
    }
    if not hash_call_id:
        attrs["sip.call_id"] = rec.call_id
    if include_uris:
        attrs["sip.aor"] = rec.aor
    if rec.final_status:
        attrs["sip.status_code"] = rec.final_status
    if rec.rrd_s is not None:
        attrs["sip.rfc6076.rrd"] = rec.rrd_s
    _network(attrs, rec.transport, rec.src, rec.dst, include_addresses)
    return attrs


def emit_record(
    tracer: Tracer,
    rec: DialogRecord | RegistrationRecord,
    hash_call_id: bool,
    include_uris: bool,
    trace_ids: CallTraceIds | None = None,
    include_addresses: bool = True,
) -> None:
    """Create and end the span of one finished attempt (packet times); with ``trace_ids``, its
    trace ID is derived and it links to the legs it bridges (telemetry/tracectx.py)."""
    links = trace_ids.before(rec) if trace_ids is not None else []
    try:
        ctx = _emit(tracer, rec, hash_call_id, include_uris, links, include_addresses)
    finally:
        if trace_ids is not None:
            trace_ids.ids.set_next_trace_id(None)
    if trace_ids is not None:
        trace_ids.after(rec, ctx)


def _emit(
    tracer: Tracer,
    rec: DialogRecord | RegistrationRecord,
    hash_call_id: bool,
    include_uris: bool,
    links: list[Link],
    include_addresses: bool,
) -> SpanContext:
    if isinstance(rec, DialogRecord):
        name = "SIP INVITE"
        attrs = dialog_attributes(rec, hash_call_id, include_uris, include_addresses)
        error = dialog_is_error(rec)
    else:
        name = "SIP REGISTER"
        attrs = registration_attributes(rec, hash_call_id, include_uris, include_addresses)
        error = rec.outcome in REGISTRATION_ERROR_OUTCOMES
    span = tracer.start_span(
        name, kind=SpanKind.INTERNAL, attributes=attrs, start_time=rec.start_ns, links=links
    )
    if isinstance(rec, DialogRecord):
        for ev in rec.events:
            ev_attrs: Attributes = {}
            if ev.status:
                ev_attrs["sip.status_code"] = ev.status
            if ev.method:
                ev_attrs["sip.method"] = ev.method
            span.add_event(ev.name, ev_attrs, timestamp=ev.ts_ns)
        for name, media_attrs, ts_ns in media_events(rec.media):
            span.add_event(name, media_attrs, timestamp=ts_ns)
    if error:
        detail = f"{rec.outcome} {rec.final_status}" if rec.final_status else rec.outcome
        span.set_status(Status(StatusCode.ERROR, detail))
    span.end(end_time=max(rec.end_ns, rec.start_ns))
    return span.get_span_context()


class _CountingExporter(SpanExporter):
    """Counts spans handed to the exporter, and reports those of failed exports as dropped."""

    def __init__(self, inner: SpanExporter, on_drop: Callable[[int], None]) -> None:
        self.inner = inner
        self.on_drop = on_drop
        self.taken = 0  # only the processor's export path writes this (under its export lock)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.taken += len(spans)
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not kill the worker; the spans are lost
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.on_drop(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class BoundedSpanProcessor(SpanProcessor):
    """``BatchSpanProcessor`` behind a gate that counts what it refuses (see module doc)."""

    def __init__(
        self,
        exporter: SpanExporter,
        max_queue: int,
        on_drop: Callable[[int], None],
        schedule_delay_millis: float | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.max_queue = max_queue
        self.on_drop = on_drop
        self._exporter = _CountingExporter(exporter, on_drop)
        self._inner = BatchSpanProcessor(
            self._exporter,
            max_queue_size=max_queue,
            max_export_batch_size=min(MAX_BATCH, max_queue),
            schedule_delay_millis=schedule_delay_millis,
        )
        self.submitted = 0  # only on_end (the pipeline thread) writes this

    @property
    def pending(self) -> int:
        """Spans admitted but not yet handed to the exporter (bounded by ``max_queue``)."""
        return self.submitted - self._exporter.taken

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled:
            return
        if self.pending >= self.max_queue:
            self.on_drop(1)
            return
        self.submitted += 1
        self._inner.on_end(span)

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
