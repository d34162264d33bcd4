"""The instrument table: unique names, bounded labels, callbacks read directly, docs complete."""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry.metrics import CallbackOptions
from telhelpers import filled

from sip_otel.stats import HistogramSnapshot
from sip_otel.telemetry.instruments import (
    INSTRUMENTS,
    _callback,
    markdown_table,
    method_label,
    prometheus_name,
)
from sip_otel.telemetry.snapshot import SnapshotSource

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def snapshot_source() -> SnapshotSource:
    stats, reasons, gauges = filled()
    return SnapshotSource(stats, reasons, lambda: gauges, None, "0.1.0", "ebpf")


def test_prometheus_names_unique_and_valid() -> None:
    names = [prometheus_name(s) for s in INSTRUMENTS]
    assert len(names) == len(set(names))
    otel = [s.name for s in INSTRUMENTS]
    assert len(otel) == len(set(otel))
    for spec in INSTRUMENTS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert not spec.name.endswith("_total"), "the exporter adds _total"
        assert spec.description
        if spec.kind == "histogram":
            # seconds, or a dimensionless figure (MOS, loss ratio): no unit suffix to add
            assert spec.unit == "s" or spec.unit == "1" or spec.unit.startswith("{")
            assert spec.buckets
            assert list(spec.buckets) == sorted(spec.buckets)


def test_label_keys_match_the_points_and_are_bounded() -> None:
    snap = snapshot_source().take()
    for spec in INSTRUMENTS:
        for value, attrs in spec.read(snap):
            assert set(attrs) == set(spec.labels), spec.name
            assert isinstance(value, HistogramSnapshot) == (spec.kind == "histogram")
            if "method" in attrs:
                assert attrs["method"] == method_label(attrs["method"])
            if "code" in attrs:
                assert attrs["code"] == "other" or 100 <= int(attrs["code"]) <= 699


def test_method_label_bounded() -> None:
    assert method_label("INVITE") == "INVITE"
    assert method_label("invite") == "other"  # methods are case-sensitive (RFC 3261 §7.1)
    assert method_label("X" * 1000) == "other"


def test_callbacks_directly() -> None:
    # Callbacks run on the export thread and their exceptions are only logged: call them here.
    snap = snapshot_source().take()
    by_name = {s.name: s for s in INSTRUMENTS}
    obs = list(_callback(by_name["sip_exporter_ser"], lambda: snap)(CallbackOptions()))
    assert [(o.value, dict(o.attributes or {})) for o in obs] == [(100.0 * 2 / 3, {})]
    obs = list(_callback(by_name["sip_requests"], lambda: snap)(CallbackOptions()))
    assert sorted((o.value, tuple((o.attributes or {}).items())) for o in obs) == [
        (1, (("method", "ACK"),)),
        (1, (("method", "BYE"),)),
        (2, (("method", "REGISTER"),)),
        (2, (("method", "other"),)),
        (3, (("method", "INVITE"),)),
    ]
    for spec in INSTRUMENTS:
        if spec.kind != "histogram":
            list(_callback(spec, lambda: snap)(CallbackOptions()))


def test_docs_list_every_instrument_and_span_attribute() -> None:
    text = DOCS.read_text()
    assert markdown_table() in text, "docs/metrics.md table is stale: paste markdown_table()"
    for spec in INSTRUMENTS:
        assert f"`{prometheus_name(spec)}`" in text, prometheus_name(spec)
    for attr in (
        "sip.method",
        "sip.call_id_hash",
        "sip.call_id",
        "sip.from_tag",
        "sip.to_tag",
        "sip.from_uri",
        "sip.to_uri",
        "sip.aor",
        "sip.outcome",
        "sip.status_code",
        "sip.rfc6076.srd",
        "sip.rfc6076.sdt",
        "sip.rfc6076.rrd",
        "sip.challenged",
        "sip.events_dropped",
        "user_agent.original",
        "network.transport",
        "source.address",
        "source.port",
        "destination.address",
        "destination.port",
        "rtp.streams",
        "rtp.mos",
        "rtp.loss_pct",
        "rtp.jitter_ms",
        "rtp.codec",
        "rtp.<dir>.mos",
        "rtp.<dir>.jitter_max_ms",
        "rtp.<dir>.rtcp_rtt_ms",
        "rtp.stream.start",
        "rtp.stream.stop",
    ):
        assert f"`{attr}`" in text, attr
