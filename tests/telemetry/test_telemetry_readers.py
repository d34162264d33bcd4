"""One snapshot per collection; exact histograms added to every collection (Prometheus, OTLP)."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Histogram,
    InMemoryMetricReader,
)
from telhelpers import export_batches, filled

from sip_otel.stats import DELAY_BUCKETS_S
from sip_otel.telemetry.instruments import register_instruments
from sip_otel.telemetry.readers import SCOPE_NAME, SnapshotScope
from sip_otel.telemetry.snapshot import Snapshot, SnapshotSource


class CountingSource(SnapshotSource):
    def __init__(self) -> None:
        stats, reasons, gauges = filled()
        super().__init__(stats, reasons, lambda: gauges, None, "0.1.0", "ebpf")
        self.takes = 0

    def take(self) -> Snapshot:
        self.takes += 1
        return super().take()


def test_one_snapshot_per_collection() -> None:
    source = CountingSource()
    assert len(export_batches(source)) == 2
    assert source.takes == 2
    # a second collection takes a fresh one
    scope = SnapshotScope(source)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    register_instruments(provider.get_meter(SCOPE_NAME), scope.current)
    reader.get_metrics_data()
    scope.finish()
    reader.get_metrics_data()
    scope.finish()
    assert source.takes == 2 + 2
    provider.shutdown()


def test_histograms_exact_and_encodable() -> None:
    data = export_batches(CountingSource())[0]
    (rm,) = data.resource_metrics
    (sm,) = rm.scope_metrics
    assert sm.scope.name == SCOPE_NAME
    metrics = {m.name: m for m in sm.metrics}
    srd = metrics["sip_rfc6076_srd"]
    assert srd.unit == "s"
    assert isinstance(srd.data, Histogram)
    points = {dict(p.attributes or {})["result"]: p for p in srd.data.data_points}
    ok = points["success"]
    assert list(ok.explicit_bounds) == list(DELAY_BUCKETS_S)
    # 0.005 falls in the first bucket (le semantics), 0.3 in (0.25, 0.5]
    assert list(ok.bucket_counts) == [1, 0, 0, 0, 0, 0, 1] + [0] * 12
    assert (ok.count, ok.sum) == (2, 0.305)
    assert list(points["failure"].bucket_counts) == [0] * 18 + [1]
    request = encode_metrics(data)
    pb = next(
        m
        for m in request.resource_metrics[0].scope_metrics[0].metrics
        if m.name == "sip_rfc6076_srd"
    )
    dp = pb.histogram.data_points[0]
    assert (dp.min, dp.max) == (0.005, 0.3)
    empty = next(
        m
        for m in request.resource_metrics[0].scope_metrics[0].metrics
        if m.name == "sip_rfc6076_rrd"
    ).histogram.data_points[0]
    assert empty.count == 0
    assert not empty.HasField("min") and not empty.HasField("max")
    assert list(dp.bucket_counts) == [1, 0, 0, 0, 0, 0, 1] + [0] * 12
    assert pb.histogram.aggregation_temporality == 2  # cumulative
    for name in ("sip_rfc6076_sdd", "sip_rfc6076_sdt", "sip_rfc6076_rrd"):
        assert name in metrics
