"""Spans from records (packet times, events, attributes, privacy) and the bounded span queue."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sip_otel.records import DialogRecord, RecordEvent, RegistrationRecord
from sip_otel.telemetry.spans import BoundedSpanProcessor, call_id_hash, emit_record

T0 = 1_700_000_000_123_456_789  # packet time, ns


def dialog(**kw: object) -> DialogRecord:
    fields: dict[str, object] = dict(
        call_id="a84b4c76e66710@pc33.atlanta.example.com",
        from_uri="sip:alice@atlanta.example.com",
        to_uri="sip:bob@biloxi.example.com",
        from_tag="1928301774",
        to_tag="a6c85cf",
        start_ns=T0,
        end_ns=T0 + 30_000_000_000,
        outcome="completed",
        final_status=200,
        transport="udp",
        src="192.0.2.10:5060",
        dst="[2001:db8::1]:5070",
        srd_s=0.25,
        sdt_s=29.5,
        user_agent="softphone/1.0",
        events=[
            RecordEvent(T0 + 250_000_000, "sip.provisional", 180, "INVITE"),
            RecordEvent(T0 + 500_000_000, "sip.2xx", 200, "INVITE"),
            RecordEvent(T0 + 510_000_000, "sip.ack", 0, "ACK"),
            RecordEvent(T0 + 30_000_000_000, "sip.bye", 0, "BYE"),
        ],
    )
    fields.update(kw)
    return DialogRecord(**fields)  # type: ignore[arg-type]


def spans_of(
    *records: DialogRecord | RegistrationRecord,
    hash_call_id: bool = True,
    include_uris: bool = False,
    include_addresses: bool = True,
) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for rec in records:
        emit_record(tracer, rec, hash_call_id, include_uris, include_addresses=include_addresses)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_dialog_span_packet_times_events_attributes() -> None:
    (span,) = spans_of(dialog())
    assert span.name == "SIP INVITE"
    assert span.start_time == T0
    assert span.end_time == T0 + 30_000_000_000
    assert [(e.name, e.timestamp) for e in span.events] == [
        ("sip.provisional", T0 + 250_000_000),
        ("sip.2xx", T0 + 500_000_000),
        ("sip.ack", T0 + 510_000_000),
        ("sip.bye", T0 + 30_000_000_000),
    ]
    assert dict(span.events[0].attributes or {}) == {"sip.status_code": 180, "sip.method": "INVITE"}
    assert dict(span.events[2].attributes or {}) == {"sip.method": "ACK"}
    digest = hashlib.sha256(b"a84b4c76e66710@pc33.atlanta.example.com").hexdigest()[:16]
    assert dict(span.attributes or {}) == {
        "sip.method": "INVITE",
        "sip.call_id_hash": digest,
        "sip.outcome": "completed",
        "sip.status_code": 200,
        "sip.rfc6076.srd": 0.25,
        "sip.rfc6076.sdt": 29.5,
        "user_agent.original": "softphone/1.0",
        "network.transport": "udp",
        "source.address": "192.0.2.10",
        "source.port": 5060,
        "destination.address": "2001:db8::1",
        "destination.port": 5070,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_privacy_opt_ins() -> None:
    (span,) = spans_of(dialog(), hash_call_id=False, include_uris=True)
    attrs = dict(span.attributes or {})
    assert attrs["sip.call_id"] == "a84b4c76e66710@pc33.atlanta.example.com"
    assert attrs["sip.from_tag"] == "1928301774"
    assert attrs["sip.to_tag"] == "a6c85cf"
    assert attrs["sip.from_uri"] == "sip:alice@atlanta.example.com"
    assert attrs["sip.to_uri"] == "sip:bob@biloxi.example.com"
    (span,) = spans_of(dialog())
    values = [str(v) for v in (span.attributes or {}).values()]
    assert not any("atlanta" in v or "biloxi" in v or "1928301774" in v for v in values)


ADDRESS_KEYS = {"source.address", "source.port", "destination.address", "destination.port"}


def test_span_addresses_switch() -> None:
    """On (the default): both endpoints' address and port; off: none of them anywhere on the
    span or its events, on INVITE and REGISTER spans alike; the transport stays."""
    reg = RegistrationRecord(
        call_id="reg-1@atlanta.example.com",
        aor="sip:alice@atlanta.example.com",
        start_ns=T0,
        end_ns=T0 + 1_000_000,
        outcome="registered",
        final_status=200,
        challenged=False,
        transport="tcp",
        src="192.0.2.10:49152",
        dst="198.51.100.7:5060",
        rrd_s=0.001,
    )
    on = spans_of(dialog(), reg)
    assert [{k: v for k, v in (s.attributes or {}).items() if k in ADDRESS_KEYS} for s in on] == [
        {
            "source.address": "192.0.2.10",
            "source.port": 5060,
            "destination.address": "2001:db8::1",
            "destination.port": 5070,
        },
        {
            "source.address": "192.0.2.10",
            "source.port": 49152,
            "destination.address": "198.51.100.7",
            "destination.port": 5060,
        },
    ]
    off = spans_of(dialog(), reg, include_addresses=False)
    assert [(s.attributes or {}).get("network.transport") for s in off] == ["udp", "tcp"]
    for span in off:
        attrs = dict(span.attributes or {})
        assert not ADDRESS_KEYS & set(attrs)
        texts = [str(v) for v in attrs.values()]
        texts += [str(v) for ev in span.events for v in (ev.attributes or {}).values()]
        assert not any(
            ip in t for t in texts for ip in ("192.0.2.10", "2001:db8::1", "198.51.100.7")
        ), texts


def test_only_ineffective_attempts_and_timeouts_are_errors() -> None:
    """RFC 6076 §4.7/§4.8: 486/480/600/603 are effective answers; 408/500/503/504 and no answer
    are ineffective; a BYE that timed out is an error, one answered 481 is not."""
    bye_timeout = RecordEvent(T0 + 62_000_000_000, "sip.bye_timeout", 0, "BYE")
    spans = spans_of(
        dialog(outcome="failed_4xx", final_status=486, sdt_s=None),
        dialog(outcome="failed_6xx", final_status=603, sdt_s=None),
        dialog(outcome="failed_4xx", final_status=404, sdt_s=None),
        dialog(outcome="failed_4xx", final_status=408, sdt_s=None),
        dialog(outcome="failed_5xx", final_status=503, sdt_s=None),
        dialog(outcome="timed_out", final_status=0, srd_s=None, sdt_s=None),
        dialog(outcome="cancelled", final_status=487, sdt_s=None),
        dialog(outcome="redirected", final_status=302, sdt_s=None),
        dialog(outcome="bye_failed", events=[*dialog().events, bye_timeout]),
        dialog(outcome="bye_failed"),
    )
    assert [(s.status.status_code, s.status.description) for s in spans] == [
        (StatusCode.UNSET, None),
        (StatusCode.UNSET, None),
        (StatusCode.UNSET, None),
        (StatusCode.ERROR, "failed_4xx 408"),
        (StatusCode.ERROR, "failed_5xx 503"),
        (StatusCode.ERROR, "timed_out"),
        (StatusCode.UNSET, None),
        (StatusCode.UNSET, None),
        (StatusCode.ERROR, "bye_failed 200"),
        (StatusCode.UNSET, None),
    ]
    assert "sip.status_code" not in (spans[5].attributes or {})


def test_registration_span() -> None:
    rec = RegistrationRecord(
        aor="sip:bob@biloxi.example.com",
        call_id="843817637684230@998sdasdh09",
        start_ns=T0,
        end_ns=T0 + 80_000_000,
        outcome="registered",
        final_status=200,
        transport="tcp",
        src="192.0.2.4:5060",
        dst="192.0.2.5:5060",
        rrd_s=0.08,
        challenged=True,
    )
    (span,) = spans_of(rec)
    assert span.name == "SIP REGISTER"
    assert (span.start_time, span.end_time) == (T0, T0 + 80_000_000)
    attrs = dict(span.attributes or {})
    assert attrs["sip.method"] == "REGISTER"
    assert attrs["sip.call_id_hash"] == call_id_hash("843817637684230@998sdasdh09")
    assert attrs["sip.challenged"] is True
    assert attrs["sip.rfc6076.rrd"] == 0.08
    assert attrs["network.transport"] == "tcp"
    assert "sip.aor" not in attrs
    (span,) = spans_of(
        dataclasses.replace(rec, outcome="failed", final_status=403), include_uris=True
    )
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["sip.aor"] == "sip:bob@biloxi.example.com"


class BlockingExporter(SpanExporter):
    """Blocks every export until released: a collector that does not answer."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.release = threading.Event()
        self.exported = 0
        self.result = result

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return self.result

    def shutdown(self) -> None:
        self.release.set()


def _provider(proc: BoundedSpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(proc)
    return provider


def test_queue_is_bounded_and_drops_are_counted() -> None:
    dropped: list[int] = []
    exporter = BlockingExporter()
    proc = BoundedSpanProcessor(
        exporter, max_queue=8, on_drop=dropped.append, schedule_delay_millis=10
    )
    provider = _provider(proc)
    tracer = provider.get_tracer("t")
    for _ in range(100):
        emit_record(tracer, dialog(), True, False)
        assert proc.pending <= 8
    # at most 8 waiting plus one batch (<= 8) stuck in the blocked export; the rest was
    # refused and counted
    assert proc.submitted + sum(dropped) == 100
    assert proc.submitted <= 8 + 8
    assert sum(dropped) >= 100 - 16
    exporter.release.set()
    provider.force_flush()
    assert exporter.exported == proc.submitted
    provider.shutdown()


def test_failed_exports_count_as_dropped() -> None:
    dropped: list[int] = []
    exporter = BlockingExporter(SpanExportResult.FAILURE)
    exporter.release.set()
    proc = BoundedSpanProcessor(exporter, max_queue=16, on_drop=dropped.append)
    provider = _provider(proc)
    tracer = provider.get_tracer("t")
    for _ in range(5):
        emit_record(tracer, dialog(), True, False)
    provider.force_flush()
    assert sum(dropped) == 5
    provider.shutdown()
