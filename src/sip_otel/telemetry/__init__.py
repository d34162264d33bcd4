"""Telemetry: the only package that imports OpenTelemetry.

Prometheus endpoint with the sip-exporter names, OTLP metrics and spans, all read from the
pipeline's plain-Python aggregates at collection time. See docs/metrics.md.
"""

from .core import Telemetry, TelemetryOptions

__all__ = ["Telemetry", "TelemetryOptions"]
