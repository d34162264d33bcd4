"""Media telemetry (telemetry/media.py, mediastats.py): the sip_otel_rtp_* series after hand-built
media reports, read from a real exposition; the rtp.* span attributes and stream events; the
replay wiring. Expected MOS values come from the G.107 formulas written out by hand
(tests/media/test_media_quality.py explains them)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telhelpers import SampleKey, expect_hist, export_batches, filled, parse, write_capture

from mediastreams import media_stream
from sip_otel.cli import main
from sip_otel.media.quality import CODEC_LABELS, DIRECTIONS
from sip_otel.pipeline import Pipeline
from sip_otel.records import DialogRecord, MediaStream
from sip_otel.stats import HistogramSnapshot
from sip_otel.telemetry import Telemetry, TelemetryOptions
from sip_otel.telemetry.instruments import prometheus_name
from sip_otel.telemetry.media import MEDIA_INSTRUMENTS
from sip_otel.telemetry.mediastats import MediaAggregates
from sip_otel.telemetry.readers import (
    histogram_metrics,
)
from sip_otel.telemetry.snapshot import SnapshotSource
from sip_otel.telemetry.spans import emit_record

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
MOS_BUCKETS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.5)
JITTER_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def g107_mos(r: float) -> float:
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


MOS_G711 = 4.409285824  # R 93.2
MOS_G729 = 4.104375064  # R 82.2
MOS_G711_5PCT = g107_mos(93.2 - 95 * 5 / (5 + 25.1))


def report(**kw: object) -> MediaStream:
    """An interval report of a PCMU stream to the callee (tests/mediastreams.py), 60 s long."""
    fields: dict[str, object] = dict(
        ssrc=0xA1, start_ns=T0 + 2 * S, end_ns=T0 + 62 * S, final=False
    )
    return media_stream(**{**fields, **kw})


REPORTS = [
    # a PCMU stream to the callee: an interval report, then its final one (5 % lost in it)
    report(),
    report(final=True, packets=950, expected=1000, lost=50, jitter_mean_s=0.004),
    # G.729 to the caller, final, no loss
    report(
        direction="to_caller",
        codec="G729",
        ssrc=0xB2,
        final=True,
        packets=500,
        expected=500,
        jitter_mean_s=0.002,
    ),
    # video with an unknown role: loss and jitter, never a MOS; codec and direction bounded
    report(
        direction="sideways",
        codec="H264",
        clock_rate=90000,
        ssrc=0xC3,
        final=True,
        packets=90,
        expected=100,
        lost=10,
        jitter_mean_s=0.03,
    ),
    # PCMA to the caller that ended on hold: a stream, but nothing expected in its last period
    report(direction="to_caller", codec="pcma", ssrc=0xD4, final=True, packets=0, expected=0),
]


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    stats, reasons, gauges = filled()
    t = Telemetry(stats, reasons, lambda: gauges, TelemetryOptions(http_port=0), "ebpf")
    yield t
    t.shutdown()


def L(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def media_samples() -> dict[SampleKey, float]:
    """Every sip_otel_rtp_* series for REPORTS, derived by hand."""
    callee = {"codec": "pcmu", "direction": "to_callee"}
    caller = {"codec": "g729", "direction": "to_caller"}
    video = {"codec": "other", "direction": "unknown"}
    hold = {"codec": "pcma", "direction": "to_caller"}
    exp: dict[SampleKey, float] = {}
    for labels, streams, packets, lost in (
        (callee, 1, 1000 + 950, 50),
        (caller, 1, 500, 0),
        (video, 1, 90, 10),
        (hold, 1, 0, 0),
    ):
        exp[("sip_otel_rtp_streams_total", L(**labels))] = streams
        exp[("sip_otel_rtp_packets_total", L(**labels))] = packets
        exp[("sip_otel_rtp_packets_lost_total", L(**labels))] = lost
    expect_hist(exp, "sip_otel_rtp_mos", MOS_BUCKETS, [MOS_G711, MOS_G711_5PCT], **callee)
    expect_hist(exp, "sip_otel_rtp_mos", MOS_BUCKETS, [MOS_G729], **caller)
    expect_hist(exp, "sip_otel_rtp_jitter_seconds", JITTER_BUCKETS, [0.001, 0.004], **callee)
    expect_hist(exp, "sip_otel_rtp_jitter_seconds", JITTER_BUCKETS, [0.002], **caller)
    expect_hist(exp, "sip_otel_rtp_jitter_seconds", JITTER_BUCKETS, [0.03], **video)
    expect_hist(exp, "sip_otel_rtp_loss_ratio", LOSS_BUCKETS, [0.0, 0.05], **callee)
    expect_hist(exp, "sip_otel_rtp_loss_ratio", LOSS_BUCKETS, [0.0], **caller)
    expect_hist(exp, "sip_otel_rtp_loss_ratio", LOSS_BUCKETS, [0.1], **video)
    return exp


def test_no_media_no_rtp_series(tel: Telemetry) -> None:
    text = tel.render_prometheus()
    assert "sip_otel_rtp" not in text
    snap = tel._scope.source.take()
    names = [m.name for m in histogram_metrics(snap, 0, 1)]
    assert not [n for n in names if n.startswith("sip_otel_rtp")]


def test_exposition_after_reports(tel: Telemetry) -> None:
    before = parse(tel.render_prometheus())[1]
    for rep in REPORTS:
        tel.on_media(rep)
    text = tel.render_prometheus()
    types, samples = parse(text)
    media = {k: v for k, v in samples.items() if k[0].startswith("sip_otel_rtp_")}
    assert media == pytest.approx(media_samples())
    # everything else, the seed-compatible sip_exporter_* series included, is unchanged
    rest = {k: v for k, v in samples.items() if not k[0].startswith("sip_otel_rtp_")}
    assert rest == pytest.approx(before)
    assert types["sip_otel_rtp_mos"] == "histogram"
    assert types["sip_otel_rtp_jitter_seconds"] == "histogram"
    assert types["sip_otel_rtp_loss_ratio"] == "histogram"
    for family in ("sip_otel_rtp_streams", "sip_otel_rtp_packets", "sip_otel_rtp_packets_lost"):
        assert types[family] == "counter"
    # the exact exposed names (the exporter's renaming: _total, _seconds, no _ratio added)
    for line in (
        "# TYPE sip_otel_rtp_packets_total counter",
        "# TYPE sip_otel_rtp_packets_lost_total counter",
        "# TYPE sip_otel_rtp_streams_total counter",
        "# TYPE sip_otel_rtp_mos histogram",
        "# TYPE sip_otel_rtp_jitter_seconds histogram",
        "# TYPE sip_otel_rtp_loss_ratio histogram",
    ):
        assert line in text, line


def test_unlabelled_sums_are_the_totals(tel: Telemetry) -> None:
    for rep in REPORTS:
        tel.on_media(rep)
    samples = parse(tel.render_prometheus())[1]

    def total(name: str) -> float:
        return sum(v for (n, _), v in samples.items() if n == name)

    # sum(sip_otel_rtp_packets_total) etc.: every report's period figures, added by hand
    assert total("sip_otel_rtp_packets_total") == 1000 + 950 + 500 + 90 + 0
    assert total("sip_otel_rtp_packets_lost_total") == 50 + 10
    assert total("sip_otel_rtp_streams_total") == 4
    for (name, labels), _ in samples.items():
        if name.startswith("sip_otel_rtp_"):
            assert {k for k, _ in labels} - {"le"} == {"codec", "direction"}, name


def test_media_rows_read_bounded_labels_directly(tel: Telemetry) -> None:
    # the readers run on the scrape thread, where exceptions are only logged: call them here
    for rep in REPORTS:
        tel.on_media(rep)
    snap = tel._scope.source.take()
    for spec in MEDIA_INSTRUMENTS:
        points = list(spec.read(snap))
        assert points, spec.name
        for value, attrs in points:
            assert isinstance(value, HistogramSnapshot) == (spec.kind == "histogram")
            assert tuple(attrs) == spec.labels == ("codec", "direction")
            assert attrs["codec"] in CODEC_LABELS and attrs["direction"] in DIRECTIONS
    assert [prometheus_name(s) for s in MEDIA_INSTRUMENTS] == [
        "sip_otel_rtp_mos",
        "sip_otel_rtp_jitter_seconds",
        "sip_otel_rtp_loss_ratio",
        "sip_otel_rtp_streams_total",
        "sip_otel_rtp_packets_total",
        "sip_otel_rtp_packets_lost_total",
    ]


def test_counters_follow_the_reports_between_scrapes(tel: Telemetry) -> None:
    tel.on_media(REPORTS[0])
    s1 = parse(tel.render_prometheus())[1]
    key = ("sip_otel_rtp_packets_total", L(codec="pcmu", direction="to_callee"))
    assert s1[key] == 1000
    assert ("sip_otel_rtp_streams_total", L(codec="pcmu", direction="to_callee")) not in s1
    tel.on_media(REPORTS[1])
    s2 = parse(tel.render_prometheus())[1]
    assert s2[key] == 1950
    assert s2[("sip_otel_rtp_streams_total", L(codec="pcmu", direction="to_callee"))] == 1


def test_otlp_histograms_carry_the_media_points(tel: Telemetry) -> None:
    for rep in REPORTS:
        tel.on_media(rep)
    snap = tel._scope.source.take()
    by_name = {m.name: m for m in histogram_metrics(snap, 0, 1)}
    mos = by_name["sip_otel_rtp_mos"]
    assert mos.unit == "{mos}"
    points = {tuple(sorted(p.attributes.items())): p for p in mos.data.data_points}  # type: ignore[union-attr]
    p = points[(("codec", "pcmu"), ("direction", "to_callee"))]
    assert p.count == 2
    assert p.sum == pytest.approx(MOS_G711 + MOS_G711_5PCT)
    assert p.min == pytest.approx(MOS_G711_5PCT) and p.max == pytest.approx(MOS_G711)
    assert by_name["sip_otel_rtp_jitter"].unit == "s"
    assert by_name["sip_otel_rtp_loss_ratio"].unit == "1"


def test_a_broken_report_is_not_raised(tel: Telemetry) -> None:
    tel.on_media(None)  # type: ignore[arg-type]  # a bug upstream: logged once, never raised
    assert "sip_otel_rtp" not in tel.render_prometheus()


# -- spans ------------------------------------------------------------------------------------


def dialog(media: list[MediaStream]) -> DialogRecord:
    return DialogRecord(
        call_id="c1",
        from_uri="sip:alice@example.com",
        to_uri="sip:bob@example.com",
        from_tag="a",
        to_tag="b",
        start_ns=T0,
        end_ns=T0 + 60 * S,
        outcome="completed",
        final_status=200,
        transport="udp",
        src="192.0.2.10:5060",
        dst="192.0.2.20:5060",
        media=media,
    )


def spans_of(rec: DialogRecord) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    emit_record(provider.get_tracer("test"), rec, True, False)
    provider.shutdown()
    return list(exporter.get_finished_spans())


FINAL_CALLEE = report(
    final=True,
    packets=950,
    expected=1000,
    lost=50,
    total_packets=1950,
    total_expected=2000,
    total_lost=50,
    total_jitter_mean_s=0.0025,
    jitter_max_s=0.010,
)
FINAL_CALLER = report(
    direction="to_caller",
    codec="g729",
    ssrc=0xB2,
    start_ns=T0 + 1 * S,
    end_ns=T0 + 61 * S,
    final=True,
    total_packets=500,
    total_expected=500,
    total_jitter_mean_s=0.002,
    jitter_max_s=0.005,
    rtt_s=0.05,
    xr_mos_lq=4.1,
)


def test_span_attributes_per_direction_and_call() -> None:
    (span,) = spans_of(dialog([FINAL_CALLEE, FINAL_CALLER]))
    a = dict(span.attributes or {})
    # to the callee: 50 of 2000 lost (2.5 %), PCMU; R = 93.2 - 95 * 2.5 / (2.5 + 25.1)
    mos_callee = g107_mos(93.2 - 95 * 2.5 / (2.5 + 25.1))  # 4.185...
    assert a["rtp.to_callee.codec"] == "pcmu"
    assert a["rtp.to_callee.streams"] == 1
    assert a["rtp.to_callee.packets"] == 1950
    assert a["rtp.to_callee.lost"] == 50
    assert a["rtp.to_callee.loss_pct"] == 2.5
    assert a["rtp.to_callee.jitter_ms"] == 2.5
    assert a["rtp.to_callee.jitter_max_ms"] == 10.0
    assert a["rtp.to_callee.mos"] == round(mos_callee, 2)
    assert a["rtp.to_callee.r_factor"] == round(93.2 - 95 * 2.5 / 27.6, 2)
    assert "rtp.to_callee.rtcp_rtt_ms" not in a
    assert a["rtp.to_caller.codec"] == "g729"
    assert a["rtp.to_caller.mos"] == round(MOS_G729, 2)
    assert a["rtp.to_caller.loss_pct"] == 0.0
    assert a["rtp.to_caller.rtcp_rtt_ms"] == 50.0
    assert a["rtp.to_caller.xr_mos_lq"] == 4.1
    # the call: the worse direction of each figure; the codec of the busier direction
    assert a["rtp.mos"] == round(min(mos_callee, MOS_G729), 2) == 4.1
    assert a["rtp.loss_pct"] == 2.5
    assert a["rtp.jitter_ms"] == 2.5
    assert a["rtp.codec"] == "pcmu"
    assert a["rtp.streams"] == 2
    assert not any(k.startswith("rtp.unknown.") for k in a)


def test_stream_start_and_stop_events() -> None:
    (span,) = spans_of(dialog([FINAL_CALLEE, FINAL_CALLER]))
    rtp = [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events]
    rtp = [e for e in rtp if e[0].startswith("rtp.")]
    assert [(n, t) for n, t, _ in rtp] == [
        ("rtp.stream.start", T0 + 1 * S),  # the caller's stream started first
        ("rtp.stream.start", T0 + 2 * S),
        ("rtp.stream.stop", T0 + 61 * S),
        ("rtp.stream.stop", T0 + 62 * S),
    ]
    assert rtp[0][2] == {
        "rtp.direction": "to_caller",
        "rtp.codec": "g729",
        "rtp.ssrc": "0x000000b2",
    }
    assert rtp[3][2] == {
        "rtp.direction": "to_callee",
        "rtp.codec": "pcmu",
        "rtp.ssrc": "0x000000a1",
        "rtp.packets": 1950,
        "rtp.lost": 50,
        "rtp.loss_pct": 2.5,
        "rtp.mos": round(g107_mos(93.2 - 95 * 2.5 / 27.6), 2),
    }


def test_events_are_bounded_and_no_media_adds_nothing() -> None:
    many = [dataclasses.replace(FINAL_CALLEE, ssrc=i, start_ns=T0 + i) for i in range(20)]
    (span,) = spans_of(dialog(many))
    assert sum(1 for e in span.events if e.name.startswith("rtp.")) == 2 * 16
    assert (span.attributes or {})["rtp.streams"] == 20
    (span,) = spans_of(dialog([]))
    assert not [k for k in (span.attributes or {}) if k.startswith("rtp.")]
    assert not span.events


# -- wiring -----------------------------------------------------------------------------------


def test_replay_media_wires_the_media_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = tmp_path / "call.pcap"
    write_capture(cap)
    sinks: list[object] = []

    def set_media_sink(self: Pipeline, sink: object) -> None:
        sinks.append(sink)
        assert callable(sink)
        sink(REPORTS[2])  # what the core will call per report

    monkeypatch.setattr(Pipeline, "set_media_sink", set_media_sink)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(cap), "--format", "prometheus"]) == 0
    assert sinks == []  # media off: not wired, no rtp series
    assert "sip_otel_rtp" not in out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(cap), "--media", "--format", "prometheus"]) == 0
    assert len(sinks) == 1
    samples = parse(out.getvalue())[1]
    assert samples[("sip_otel_rtp_packets_total", L(codec="g729", direction="to_caller"))] == 500


# -- OTLP -------------------------------------------------------------------------------------


def test_otlp_export_carries_media_series_and_encodes() -> None:
    stats, reasons, gauges = filled()
    source = SnapshotSource(stats, reasons, lambda: gauges, None, "0.1.0", "ebpf")
    source.media = MediaAggregates()
    for rep in REPORTS:
        source.media.observe(rep)
    request = encode_metrics(export_batches(source)[0])
    pb = {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}
    assert pb["sip_otel_rtp_mos"].unit == "{mos}"
    assert pb["sip_otel_rtp_jitter"].unit == "s"
    packets = {
        tuple((a.key, a.value.string_value) for a in dp.attributes): dp.as_int
        for dp in pb["sip_otel_rtp_packets"].sum.data_points
    }
    assert packets[(("codec", "pcmu"), ("direction", "to_callee"))] == 1950
    assert sum(packets.values()) == 2540
    assert pb["sip_otel_rtp_packets"].sum.is_monotonic
    mos = pb["sip_otel_rtp_mos"].histogram.data_points
    assert sum(dp.count for dp in mos) == 3
