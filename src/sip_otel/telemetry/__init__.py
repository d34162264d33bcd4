"""Telemetry: the only package that imports OpenTelemetry.

Prometheus endpoint with the sip-exporter names, OTLP metrics and spans, all read from the
pipeline's plain-Python aggregates at collection time. See docs/metrics.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Telemetry, TelemetryOptions

__all__ = ["Telemetry", "TelemetryOptions"]


def __getattr__(name: str) -> Any:
    # OpenTelemetry is imported on first use, not with the package: a replay that prints JSON
    # starts in a fraction of the time.
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(name)
