"""The telemetry facade: one MeterProvider (Prometheus + optional OTLP) and optional spans.

The pipeline hands in its plain-Python aggregates once; nothing here is called per packet.
``on_record`` is called once per finished dialog/registration attempt, ``on_media`` once per
media report (per RTP stream every media interval, and at the end of its call's media).
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from .. import __version__
from ..errors import Reasons
from ..records import DialogRecord, MediaStream, RegistrationRecord
from ..stats import PipelineStats
from . import otlp
from .instruments import register_instruments
from .mediastats import MediaAggregates
from .readers import SCOPE_NAME, SnapshotPeriodicReader, SnapshotPrometheusReader, SnapshotScope
from .server import MetricsServer
from .snapshot import SnapshotSource
from .spans import BoundedSpanProcessor, emit_record
from .tracectx import CallTraceIds, DerivedIdGenerator
from .webconfig import load_web_config

__all__ = ["Telemetry", "TelemetryOptions", "make_resource"]

log = logging.getLogger("sip_otel.telemetry")


@dataclass(frozen=True)
class TelemetryOptions:
    prometheus: bool = True  # serve /metrics (render_prometheus works either way)
    http_host: str = "0.0.0.0"
    http_port: int = 2112
    scope_labels: bool = False  # otel_scope_* labels on every series
    target_info: bool = False  # the target_info series (resource attributes)
    otlp_endpoint: str | None = None  # else OTEL_EXPORTER_OTLP_ENDPOINT / per-signal variables
    otlp_protocol: str | None = None  # "grpc" | "http/protobuf"; else env, default grpc
    otlp_metrics: bool = True
    otlp_traces: bool = True
    hash_call_id: bool = True  # privacy: export sha256(Call-ID)[:16] only
    include_uris: bool = False  # privacy: From/To/AOR URIs on spans
    include_addresses: bool = True  # privacy: source.*/destination.* address and port on spans
    max_span_queue: int = 2048  # spans waiting for the exporter; more are dropped and counted
    export_interval_ms: int | None = None  # else OTEL_METRIC_EXPORT_INTERVAL, default 60 s
    service_name: str = "sip-otel"  # unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say
    process_metrics: bool = False  # process_* series (CPU, RSS, fds, start time) on /metrics
    trace_ids: str = "derived"  # "derived" (Session-ID / correlation header / Call-ID) | "random"
    web_config_file: str | None = None  # TLS / basic auth for /metrics (webconfig.py)


INSTANCE_NAMESPACE = uuid.UUID("5d0b8f3e-7c1a-4e4b-9a57-3f0c2b6d9e11")  # sip-otel's own


def instance_id(machine_id_path: str = "/etc/machine-id") -> str:
    """A stable ``service.instance.id`` for this host: a UUIDv5 of its machine id (else its
    host name), so a restarted agent keeps its identity and two hosts never share one."""
    try:
        with open(machine_id_path, encoding="ascii") as fh:
            seed = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        seed = ""
    return str(uuid.uuid5(INSTANCE_NAMESPACE, seed or socket.gethostname()))


def make_resource(service_name: str) -> Resource:
    """Our defaults, overridden by ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME``."""
    env = Resource.create()
    ours = Resource(
        {
            "service.version": __version__,
            "service.instance.id": instance_id(),
            "host.name": socket.gethostname(),
            "network.protocol.name": "sip",
        }
    )
    res = ours.merge(env)
    name = res.attributes.get("service.name")
    if not isinstance(name, str) or name.startswith("unknown_service"):
        res = res.merge(Resource({"service.name": service_name}))
    return res


class Telemetry:
    def __init__(
        self,
        stats: PipelineStats,
        reasons: Reasons,
        gauges: Callable[[], dict[str, int]],
        options: TelemetryOptions = TelemetryOptions(),
        capture_path: str = "",
        *,
        evictions: Callable[[], dict[str, int]] | None = None,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self.stats = stats
        self._drop_lock = threading.Lock()
        # The exporter's collector hands collected data over through a shared queue: two
        # concurrent scrapes could take each other's batch. One render at a time.
        self._render_lock = threading.Lock()
        self._ready = False
        self._server: MetricsServer | None = None
        self.http_security = ""  # "TLS, basic auth" as the web config file sets them
        self._closed = False
        if evictions is None:
            # Pipeline.gauges is a bound method whose pipeline merges the decoder's and the
            # tracker's evictions (stats.evictions alone lacks the decoder's).
            owner_evictions = getattr(getattr(gauges, "__self__", None), "evictions", None)
            if callable(owner_evictions):
                evictions = owner_evictions
        self._link_evictions = 0  # span_links.full: telemetry's own table (tracectx.py)
        base = evictions if evictions is not None else (lambda: dict(stats.evictions))

        def all_evictions() -> dict[str, int]:
            out = dict(base())
            if self._link_evictions:
                out["span_links.full"] = self._link_evictions
            return out

        self._source = source = SnapshotSource(
            stats, reasons, gauges, all_evictions, __version__, capture_path, refresh
        )
        # media reports (on_media), read by the sip_otel_rtp_* instruments
        self.media = source.media = MediaAggregates()
        self._scope = SnapshotScope(source)
        self.resource = make_resource(options.service_name)

        metrics_target = (
            otlp.resolve("metrics", options.otlp_endpoint, options.otlp_protocol)
            if options.otlp_metrics
            else None
        )
        traces_target = (
            otlp.resolve("traces", options.otlp_endpoint, options.otlp_protocol)
            if options.otlp_traces
            else None
        )

        self.registry = CollectorRegistry(auto_describe=False)
        if options.process_metrics:
            ProcessCollector(registry=self.registry)
        readers: list[MetricReader] = [
            SnapshotPrometheusReader(
                self._scope,
                registry=self.registry,
                disable_target_info=not options.target_info,
                scope_info_enabled=options.scope_labels,
            )
        ]
        self._otlp_reader: SnapshotPeriodicReader | None = None
        if metrics_target is not None:
            self._otlp_reader = SnapshotPeriodicReader(
                self._scope, otlp.metric_exporter(metrics_target), options.export_interval_ms
            )
            readers.append(self._otlp_reader)
        self.metrics_target = metrics_target
        self._meter_provider = MeterProvider(
            metric_readers=readers, resource=self.resource, shutdown_on_exit=False
        )
        meter = self._meter_provider.get_meter(SCOPE_NAME, __version__)
        register_instruments(meter, self._scope.current)

        self.traces_target = traces_target
        self._tracer_provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        self.span_processor: BoundedSpanProcessor | None = None
        self.trace_ids: CallTraceIds | None = None
        if traces_target is not None:
            ids = DerivedIdGenerator()
            self.trace_ids = CallTraceIds(ids, options.trace_ids, self._count_link_evictions)
            self._tracer_provider = TracerProvider(
                resource=self.resource, shutdown_on_exit=False, id_generator=ids
            )
            self.span_processor = BoundedSpanProcessor(
                otlp.span_exporter(traces_target), options.max_span_queue, self._count_dropped
            )
            self._tracer_provider.add_span_processor(self.span_processor)
            self._tracer = self._tracer_provider.get_tracer(SCOPE_NAME, __version__)
        self._record_error_logged = False
        self._media_error_logged = False

    # -- spans ---------------------------------------------------------------------------------

    @property
    def wants_records(self) -> bool:
        """Whether finished dialogs/registrations become spans (a trace exporter is set): the
        pipeline keeps the strings a record needs only then."""
        return self._tracer is not None

    def _count_link_evictions(self, n: int) -> None:
        self._link_evictions += n  # only the thread that emits spans writes it

    def _count_dropped(self, n: int) -> None:
        with self._drop_lock:
            self.stats.spans_dropped += n

    def on_record(self, record: DialogRecord | RegistrationRecord) -> None:
        """Turn one finished attempt into a span (no-op without a trace exporter). Never raises."""
        tracer = self._tracer
        if tracer is None:
            return
        try:
            emit_record(
                tracer,
                record,
                self.options.hash_call_id,
                self.options.include_uris,
                self.trace_ids,
                self.options.include_addresses,
            )
        except Exception:
            self._count_dropped(1)
            if not self._record_error_logged:
                self._record_error_logged = True
                log.exception("bug: could not turn a %s into a span", type(record).__name__)

    def on_media(self, report: MediaStream) -> None:
        """Count one media report (``Pipeline.set_media_sink``): the ``sip_otel_rtp_*``
        metrics. Spans take the call's final reports from its dialog record. Never raises."""
        try:
            self.media.observe(report)
        except Exception:
            if not self._media_error_logged:
                self._media_error_logged = True
                log.exception("bug: could not count a media report")

    # -- Prometheus ----------------------------------------------------------------------------

    def render_prometheus(self, accept: str = "") -> str:
        """The exposition text exactly as ``/metrics`` would serve it now (``accept``: the
        request's Accept header; OpenMetrics when it asks for it)."""
        return self._render(accept)[0].decode("utf-8")

    def _render(self, accept: str) -> tuple[bytes, str]:
        """(body, content type) for a request's Accept header (prometheus_client's
        negotiation: OpenMetrics 1.0 when asked for, else the classic text format 0.0.4)."""
        encoder, content_type = choose_encoder(accept)
        with self._render_lock:
            return encoder(self.registry), content_type

    def start_http(self) -> None:
        """Serve ``/metrics`` (if ``prometheus``) and ``/health`` (503 until :meth:`set_ready`)."""
        if self._server is not None:
            return
        render = self._render if self.options.prometheus else None
        tls, auth = None, None
        if self.options.web_config_file:
            web = load_web_config(self.options.web_config_file)
            tls, auth = web.ssl_context, web.authenticator()
            self.http_security = ", ".join(
                name for name, on in (("TLS", tls), ("basic auth", auth)) if on is not None
            )
        self._server = MetricsServer(
            self.options.http_host,
            self.options.http_port,
            render,
            lambda: self._ready,
            tls=tls,
            auth=auth,
        )
        self._source.http_client_errors = self._server.client_errors

    def set_capture_path(self, path: str) -> None:
        """The ``capture`` label of ``sip_otel_build_info`` (known once the capture is open)."""
        self._source.capture_path = path

    def set_ready(self, ready: bool = True) -> None:
        self._ready = ready

    @property
    def http_port(self) -> int:
        return self._server.port if self._server is not None else self.options.http_port

    # -- lifecycle -----------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 5000) -> None:
        """Export queued spans, then one last OTLP metric export (Prometheus is pull: nothing)."""
        if self._tracer_provider is not None:
            self._tracer_provider.force_flush(timeout_millis)
        if self._otlp_reader is not None:
            self._otlp_reader.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        self._meter_provider.shutdown(timeout_millis=5000)
