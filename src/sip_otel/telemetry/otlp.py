"""OTLP exporter selection: explicit options first, then the standard ``OTEL_EXPORTER_OTLP_*``.

Only the endpoint and the protocol are decided here. Headers, timeout, compression, TLS
certificates and the per-signal endpoint variables are read by the exporters themselves when we
pass no value, exactly as the OpenTelemetry specification lays out (we never pass them).

* OTLP is on for a signal when an endpoint was given (flag) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` is set.
* Protocol: option, else ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else
  ``OTEL_EXPORTER_OTLP_PROTOCOL``, else ``grpc``. ``http/json`` is not supported by the Python
  exporters and is refused.
* An explicit endpoint is a base URL, as the generic variable is: for http/protobuf we append
  ``/v1/traces`` / ``/v1/metrics``; ``host:port`` without a scheme means plain-text ``http://``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the exporters are imported when one is made (``replay --format json``
    # never loads OpenTelemetry)
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "PROTOCOLS",
    "OtlpSignal",
    "check_otlp_endpoint",
    "metric_exporter",
    "resolve",
    "span_exporter",
]

Signal = Literal["traces", "metrics"]
PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


@dataclass(frozen=True, slots=True)
class OtlpSignal:
    signal: Signal
    protocol: str
    endpoint: str | None  # None: the exporter reads the environment


def check_otlp_endpoint(value: str) -> str:
    """An OTLP endpoint as the exporters take it: ``http[s]://host[:port][/path]``, or
    ``host:port`` (plain-text http). Raises ValueError with the reason; returns it stripped."""
    text = value.strip()
    url = text if "://" in text else "http://" + text
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid OTLP endpoint {value!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"invalid OTLP endpoint {value!r}: scheme must be http or https, "
            f"e.g. http://collector:4317"
        )
    if not parts.hostname or any(c.isspace() for c in text):
        raise ValueError(
            f"invalid OTLP endpoint {value!r}: no host; use http://host:port or host:port"
        )
    if port == 0:
        raise ValueError(f"invalid OTLP endpoint {value!r}: port 0")
    if "//" in parts.path or ":" in parts.path:
        raise ValueError(f"invalid OTLP endpoint {value!r}: malformed; use http://host:port")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid OTLP endpoint {value!r}: no query or fragment allowed")
    return text


def resolve(
    signal: Signal,
    endpoint: str | None,
    protocol: str | None,
    env: Mapping[str, str] | None = None,
) -> OtlpSignal | None:
    """Where and how to export ``signal``, or None when OTLP is not configured for it."""
    env = os.environ if env is None else env
    sig = signal.upper()
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{sig}_ENDPOINT"):
        if env.get(var, "").strip():
            try:
                check_otlp_endpoint(env[var])
            except ValueError as exc:
                raise ValueError(f"{var}: {exc}") from None
    if not (
        endpoint
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get(f"OTEL_EXPORTER_OTLP_{sig}_ENDPOINT")
    ):
        return None
    proto = (
        protocol
        or env.get(f"OTEL_EXPORTER_OTLP_{sig}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if proto not in PROTOCOLS:
        raise ValueError(
            f"OTLP protocol {proto!r} not supported (use one of {', '.join(PROTOCOLS)})"
        )
    if endpoint:
        if "://" not in endpoint:
            endpoint = "http://" + endpoint
        if proto == "http/protobuf":
            endpoint = endpoint.rstrip("/") + f"/v1/{signal}"
    return OtlpSignal(signal, proto, endpoint or None)


def metric_exporter(target: OtlpSignal) -> MetricExporter:
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(endpoint=target.endpoint)


def span_exporter(target: OtlpSignal) -> SpanExporter:
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=target.endpoint)
