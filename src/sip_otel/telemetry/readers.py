"""Metric readers that see one snapshot per collection and carry exact histograms.

Theory of operation. A reader's ``collect()`` runs, on one thread, first every observable
callback (SDK ``_collect``) and then the reader's ``_receive_metrics`` hook. :class:`SnapshotScope`
keeps a per-thread snapshot: the first callback of a collection takes it, every later callback
of the same collection reuses it, and ``_receive_metrics`` consumes it. So the Prometheus scrape
thread and the OTLP export thread each see one consistent copy, never each other's.

OTel has no observable histogram, and replaying observations into a ``Histogram`` instrument
would re-bin them and cost SDK calls per observation. Instead ``_receive_metrics`` appends, to
the sip-otel scope of the collected data, one cumulative ``Histogram`` metric per histogram row
of :data:`~.instruments.INSTRUMENTS`, with the pipeline's own bucket counts, sum and count. Both
the Prometheus exporter and the OTLP exporters then translate them like SDK-made histograms.
``min``/``max`` are the pipeline's observed extremes, unset while a histogram is empty.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ..stats import HistogramSnapshot
from .instruments import INSTRUMENTS
from .snapshot import Snapshot, SnapshotSource

__all__ = [
    "SCOPE_NAME",
    "SnapshotPeriodicReader",
    "SnapshotPrometheusReader",
    "SnapshotScope",
    "add_histograms",
]

SCOPE_NAME = "sip_otel"
# A snapshot left behind by a collection that failed half-way is not reused after this long.
STALE_AFTER_S = 1.0
_HISTOGRAMS = tuple(spec for spec in INSTRUMENTS if spec.kind == "histogram")


class SnapshotScope:
    """The snapshot of the collection in progress, one per collecting thread."""

    def __init__(self, source: SnapshotSource) -> None:
        self.source = source
        self.start_ns = time.time_ns()  # start of every cumulative series
        self._local = threading.local()

    def current(self) -> Snapshot:
        local = self._local
        snap: Snapshot | None = getattr(local, "snap", None)
        now = time.monotonic()
        if snap is None or now - local.taken > STALE_AFTER_S:
            snap = self.source.take()
            local.snap = snap
            local.taken = now
        return snap

    def finish(self) -> Snapshot:
        snap = self.current()
        self._local.snap = None
        return snap

    def complete(self, data: MetricsData) -> MetricsData:
        """End of a collection: ``data`` plus the histograms of the same snapshot."""
        return add_histograms(data, self.finish(), self.start_ns, time.time_ns())


def _point(
    h: HistogramSnapshot, attrs: dict[str, str], start_ns: int, now_ns: int
) -> HistogramDataPoint:
    return HistogramDataPoint(
        attributes=attrs,
        start_time_unix_nano=start_ns,
        time_unix_nano=now_ns,
        count=h.count,
        sum=h.total,
        bucket_counts=list(h.counts),
        explicit_bounds=list(h.bounds),
        # None leaves the optional OTLP fields unset (empty histogram, or no extremes known)
        min=cast(float, getattr(h, "min", None)),
        max=cast(float, getattr(h, "max", None)),
    )


def histogram_metrics(snap: Snapshot, start_ns: int, now_ns: int) -> list[Metric]:
    out = []
    for spec in _HISTOGRAMS:
        points = [
            _point(v, attrs, start_ns, now_ns)
            for v, attrs in spec.read(snap)
            if isinstance(v, HistogramSnapshot)
        ]
        if not points:  # a labelled family appears with its first series (the media ones)
            continue
        out.append(
            Metric(
                name=spec.name,
                description=spec.description,
                unit=spec.unit,
                data=Histogram(
                    data_points=points,
                    aggregation_temporality=AggregationTemporality.CUMULATIVE,
                ),
            )
        )
    return out


def add_histograms(data: MetricsData, snap: Snapshot, start_ns: int, now_ns: int) -> MetricsData:
    """``data`` with the histogram metrics appended to the sip-otel scope."""
    extra = histogram_metrics(snap, start_ns, now_ns)
    resource_metrics = []
    done = False
    for rm in data.resource_metrics:
        scopes = []
        for sm in rm.scope_metrics:
            if not done and sm.scope.name == SCOPE_NAME:
                sm = ScopeMetrics(
                    scope=sm.scope, metrics=[*sm.metrics, *extra], schema_url=sm.schema_url
                )
                done = True
            scopes.append(sm)
        resource_metrics.append(
            ResourceMetrics(resource=rm.resource, scope_metrics=scopes, schema_url=rm.schema_url)
        )
    if not done and resource_metrics:
        from .. import __version__

        first = resource_metrics[0]
        scope = ScopeMetrics(
            scope=InstrumentationScope(SCOPE_NAME, __version__), metrics=extra, schema_url=""
        )
        resource_metrics[0] = ResourceMetrics(
            resource=first.resource,
            scope_metrics=[*first.scope_metrics, scope],
            schema_url=first.schema_url,
        )
    return MetricsData(resource_metrics=resource_metrics)


class SnapshotPrometheusReader(PrometheusMetricReader):
    """Prometheus reader (private registry) whose collections include exact histograms."""

    def __init__(self, scope: SnapshotScope, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scope = scope

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(self._scope.complete(metrics_data), timeout_millis, **kwargs)


class SnapshotPeriodicReader(PeriodicExportingMetricReader):
    """Periodic OTLP reader whose exports include exact histograms."""

    def __init__(
        self,
        scope: SnapshotScope,
        exporter: MetricExporter,
        export_interval_millis: float | None = None,
    ) -> None:
        # set before super().__init__: its ticker thread may collect at once
        self._scope = scope
        super().__init__(exporter, export_interval_millis=export_interval_millis)

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(self._scope.complete(metrics_data), timeout_millis, **kwargs)
