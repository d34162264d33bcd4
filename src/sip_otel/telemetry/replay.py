"""``sip-otel replay`` glue: OTLP flags, and the Telemetry a replay needs (if any).

``--otlp`` pushes every finished dialog/registration of the capture as a span with its original
packet times, and the capture's metrics (one export at the end, plus periodic ones during a long
replay). ``--format prometheus`` needs no network: the CLI prints
:meth:`Telemetry.render_prometheus`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import Reasons
from ..stats import PipelineStats
from .otlp import DEFAULT_ENDPOINTS, PROTOCOLS, check_otlp_endpoint

if TYPE_CHECKING:
    from .core import Telemetry

__all__ = ["add_replay_arguments", "make_replay_telemetry"]

TRACE_ID_MODES = ("derived", "random")  # telemetry/tracectx.py (not imported: no OTel here)

CAPTURE_PATH = "file"  # the build_info "capture" label of a replay


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("OpenTelemetry export")
    g.add_argument(
        "--otlp",
        action="store_true",
        help="push the capture's dialogs as spans (original packet times) and its "
        "metrics over OTLP",
    )
    g.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        type=_endpoint,
        default=None,
        help="OTLP base URL (default: OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT, "
        "else http://localhost:4317 for grpc, :4318 for http/protobuf)",
    )
    g.add_argument(
        "--otlp-protocol",
        choices=PROTOCOLS,
        default=None,
        help="default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc",
    )
    g.add_argument(
        "--trace-ids",
        choices=TRACE_ID_MODES,
        default="derived",
        help="span trace IDs: derived from the Session-ID, the correlation header or the "
        "Call-ID, so agents on several hops share one trace (default), or random",
    )
    g.add_argument(
        "--correlation-header",
        metavar="NAME",
        default=None,
        help="a header naming the Call-ID of the leg a B2BUA bridged (e.g. X-CID): that leg's "
        "trace, and a span link to it",
    )
    g.add_argument(
        "--raw-call-id",
        action="store_true",
        help="put the raw Call-ID and tags on spans (default: a SHA-256 prefix only)",
    )
    g.add_argument(
        "--span-uris",
        action="store_true",
        help="put From/To/AOR URIs on spans (personal data: off by default; same flag as run)",
    )
    g.add_argument(
        "--span-addresses",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put the endpoints' IP addresses and ports on spans (personal data where phones "
        "are endpoints: --no-span-addresses leaves them out; same flag as run)",
    )
    g.add_argument(
        "--include-uris",
        dest="include_uris_deprecated",
        action="store_true",
        help="deprecated spelling of --span-uris",
    )


def _endpoint(text: str) -> str:
    try:
        return check_otlp_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _env_endpoint_set() -> bool:
    return any(
        os.environ.get(v)
        for v in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        )
    )


def make_replay_telemetry(
    args: argparse.Namespace,
    stats: PipelineStats,
    reasons: Reasons,
    gauges: Callable[[], dict[str, int]],
    *,
    evictions: Callable[[], dict[str, int]] | None = None,
    refresh: Callable[[], None] | None = None,
) -> Telemetry | None:
    """None when neither ``--otlp`` nor ``--format prometheus`` was asked for."""
    from .core import Telemetry, TelemetryOptions

    want_otlp = bool(getattr(args, "otlp", False))
    if not want_otlp and getattr(args, "format", None) != "prometheus":
        return None
    endpoint: str | None = getattr(args, "otlp_endpoint", None)
    protocol: str | None = getattr(args, "otlp_protocol", None)
    if want_otlp and endpoint is None and not _env_endpoint_set():
        proto = protocol or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
        endpoint = DEFAULT_ENDPOINTS.get(proto, DEFAULT_ENDPOINTS["grpc"])
    options = TelemetryOptions(
        prometheus=False,  # no HTTP server in a replay
        otlp_endpoint=endpoint if want_otlp else None,
        otlp_protocol=protocol,
        otlp_metrics=want_otlp,
        otlp_traces=want_otlp,
        hash_call_id=not getattr(args, "raw_call_id", False),
        include_uris=bool(getattr(args, "span_uris", False))
        or bool(getattr(args, "include_uris_deprecated", False)),
        include_addresses=bool(getattr(args, "span_addresses", True)),
        trace_ids=getattr(args, "trace_ids", "derived"),
    )
    return Telemetry(
        stats, reasons, gauges, options, CAPTURE_PATH, evictions=evictions, refresh=refresh
    )
