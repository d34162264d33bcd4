"""Trace IDs shared across hops (Session-ID, correlation header, Call-ID) and B2BUA leg links."""

from __future__ import annotations

import hashlib

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sip_otel.records import DialogRecord, RegistrationRecord
from sip_otel.telemetry.spans import emit_record
from sip_otel.telemetry.tracectx import (
    CallTraceIds,
    DerivedIdGenerator,
    session_uuid,
    trace_id_for,
)

T0 = 1_700_000_000_000_000_000
SID = "ab30317f1a784dc48ff824d0d3715d86"  # RFC 7989 §10's first example UUID
PEER = "47755a9de7794ba387653f2099600ef2"


def leg(call_id: str, session_id: str = "", correlation: str = "") -> DialogRecord:
    return DialogRecord(
        call_id=call_id,
        from_uri="sip:alice@example.com",
        to_uri="sip:bob@example.com",
        from_tag="a",
        to_tag="b",
        start_ns=T0,
        end_ns=T0 + 10**9,
        outcome="completed",
        final_status=200,
        transport="udp",
        src="127.0.0.1:5060",
        dst="127.0.0.2:5060",
        session_id=session_id,
        correlation=correlation,
    )


def expected_digest(value: str) -> int:
    """The documented derivation, written out: SHA-256("sip-otel trace\\0" + value)[:16]."""
    return int.from_bytes(hashlib.sha256(b"sip-otel trace\0" + value.encode()).digest()[:16])


def emit(
    *records: DialogRecord | RegistrationRecord, mode: str = "derived", max_entries: int = 8192
) -> tuple[list[ReadableSpan], int]:
    exporter = InMemorySpanExporter()
    ids = DerivedIdGenerator()
    evicted = [0]

    def on_evict(n: int) -> None:
        evicted[0] += n

    trace_ids = CallTraceIds(ids, mode, on_evict, max_entries)
    provider = TracerProvider(id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for rec in records:
        emit_record(tracer, rec, True, False, trace_ids)
    provider.shutdown()
    return list(exporter.get_finished_spans()), evicted[0]


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (SID, SID),
        (f"{SID};remote={PEER}", SID),
        (f" {SID.upper()} ;remote=00000000000000000000000000000000", SID),
        ("ab30317f-1a78-4dc4-8ff8-24d0d3715d86", SID),  # dashed, as some stacks send it
        ("00000000000000000000000000000000;remote=" + PEER, ""),  # null: not yet known
        ("", ""),
        ("ab30317f1a784dc48ff824d0d3715d8", ""),  # 31 digits
        ("zz30317f1a784dc48ff824d0d3715d86", ""),
    ],
)
def test_session_uuid(value: str, want: str) -> None:
    assert session_uuid(value) == want


def test_trace_id_sources_in_order() -> None:
    assert trace_id_for(leg("c1", session_id=SID, correlation="c0")) == int(SID, 16)
    assert trace_id_for(leg("c1", correlation="c0")) == expected_digest("c0")
    assert trace_id_for(leg("c1")) == expected_digest("c1")
    # the originating leg's own trace ID is the one its bridged leg derives from X-CID
    assert trace_id_for(leg("c0")) == trace_id_for(leg("c1", correlation="c0"))


def test_two_agents_on_two_proxies_put_one_call_into_one_trace() -> None:
    (a,), _ = emit(leg("call-7@host"))
    (b,), _ = emit(leg("call-7@host"))  # another agent, another process: same Call-ID
    assert a.context is not None and b.context is not None
    assert a.context.trace_id == b.context.trace_id == expected_digest("call-7@host")
    assert a.context.span_id != b.context.span_id


def test_b2bua_legs_by_session_id_share_the_trace_and_link() -> None:
    spans, _ = emit(leg("leg-a", session_id=SID), leg("leg-b", session_id=f"{SID};remote={PEER}"))
    a, b = spans
    assert a.context is not None and b.context is not None
    assert a.context.trace_id == b.context.trace_id == int(SID, 16)
    assert a.links == ()
    (link,) = b.links
    assert link.context.span_id == a.context.span_id
    assert dict(link.attributes or {}) == {"sip.link": "session"}
    assert dict(b.attributes or {})["sip.session_id"] == SID


def test_b2bua_legs_by_correlation_header_link_whichever_ends_second() -> None:
    # the bridged leg (X-CID: the originating leg's Call-ID) ends after the originating leg:
    # it joins that leg's trace and links to its span
    spans, _ = emit(leg("leg-a"), leg("leg-b", correlation="leg-a"))
    a, b = spans
    assert a.context is not None and b.context is not None
    assert a.context.trace_id == b.context.trace_id
    (link,) = b.links
    assert link.context.span_id == a.context.span_id
    assert dict(link.attributes or {}) == {"sip.link": "call"}


def test_random_mode_and_unrelated_calls() -> None:
    spans, _ = emit(leg("x"), leg("y"), mode="random")
    assert all(s.context is not None for s in spans)
    x, y = (s.context.trace_id for s in spans if s.context is not None)
    assert expected_digest("x") != x and x != y
    assert all(s.links == () for s in spans)
    with pytest.raises(ValueError, match="derived, random"):
        CallTraceIds(DerivedIdGenerator(), "session")


def test_recent_spans_are_bounded_and_evictions_counted() -> None:
    spans, evicted = emit(
        leg("a"),
        leg("b"),
        leg("c"),
        leg("d", correlation="a"),
        leg("e", correlation="c"),
        max_entries=2,
    )
    # a evicted by c, b by d; e finds c (and refreshes it), then pushes out d
    assert evicted == 3
    c, d, e = spans[2], spans[3], spans[4]
    assert d.links == ()  # "a" was evicted: no link, nothing else breaks
    assert c.context is not None
    assert [link.context.span_id for link in e.links] == [c.context.span_id]
