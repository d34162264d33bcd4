"""The flags of ``sip-otel run`` (matching the ``SIP_EXPORTER_*`` variables).

Apart from agent.py so that building the command line costs no pydantic or OpenTelemetry import
(a replay never needs them).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_run_arguments"]

_FLAGS: tuple[tuple[str, str], ...] = (
    ("interface", "interface(s) to capture on, comma list; unset = all [SIP_EXPORTER_INTERFACE]"),
    ("http_port", "Prometheus /metrics port [SIP_EXPORTER_HTTP_PORT, 2112]"),
    ("http_host", "address /metrics listens on [SIP_EXPORTER_HTTP_HOST, 0.0.0.0]"),
    (
        "web_config_file",
        "TLS and basic auth for /metrics: a Prometheus exporter web config file "
        "(alias --web.config.file) [SIP_EXPORTER_WEB_CONFIG_FILE]",
    ),
    ("logger_level", "debug|info|warn|error [SIP_EXPORTER_LOGGER_LEVEL, info]"),
    ("sip_port", "SIP port [SIP_EXPORTER_SIP_PORT, 5060]"),
    ("sips_port", "SIPS port [SIP_EXPORTER_SIPS_PORT, 5061]"),
    ("sip_ports", "SIP port list, replaces the two above [SIP_EXPORTER_SIP_PORTS]"),
    ("object_file_path", "accepted for sip-exporter compatibility and ignored"),
    ("capture_mode", "auto|ebpf|afpacket [SIP_EXPORTER_CAPTURE_MODE, auto]"),
    ("ring_size", "capture ring bytes, power of two [SIP_EXPORTER_RING_SIZE, 16 MiB]"),
    ("otlp_endpoint", "OTLP endpoint for metrics and spans [SIP_EXPORTER_OTLP_ENDPOINT]"),
    ("otlp_protocol", "grpc|http/protobuf [SIP_EXPORTER_OTLP_PROTOCOL]"),
    ("service_name", "OTel service.name [SIP_EXPORTER_SERVICE_NAME, sip-otel]"),
    ("tick_ms", "timer tick period in ms [SIP_EXPORTER_TICK_MS, 100]"),
    (
        "media_max_endpoints",
        "learned RTP endpoints, kernel and core [SIP_EXPORTER_MEDIA_MAX_ENDPOINTS, 4096]",
    ),
    ("media_max_streams", "RTP streams, kernel and core [SIP_EXPORTER_MEDIA_MAX_STREAMS, 8192]"),
    (
        "media_interval",
        "seconds between a long call's media reports [SIP_EXPORTER_MEDIA_INTERVAL, 60]",
    ),
    ("media_linger", "seconds a call's media outlives its end [SIP_EXPORTER_MEDIA_LINGER, 3]"),
    ("span_queue", "finished spans waiting for export, bounded [SIP_EXPORTER_SPAN_QUEUE, 2048]"),
    (
        "memory_limit",
        "byte budget of all tables, e.g. 256MiB, 1GiB [SIP_EXPORTER_MEMORY_LIMIT, 256MiB]",
    ),
    (
        "trace_ids",
        "derived (Session-ID, correlation header, Call-ID) | random "
        "[SIP_EXPORTER_TRACE_IDS, derived]",
    ),
    (
        "config_file",
        "file of SIP_EXPORTER_NAME=value lines, below the environment; SIGHUP re-reads its log "
        "level [SIP_EXPORTER_CONFIG_FILE]",
    ),
    (
        "correlation_header",
        "header naming the leg a B2BUA bridged, e.g. X-CID: same trace and a "
        "span link [SIP_EXPORTER_CORRELATION_HEADER]",
    ),
)


# On/off flags (the environment variable takes true/false).
_SWITCHES = (
    ("all_ports", "capture and decode every UDP/TCP port as possible SIP"),
    ("scope_labels", "add otel_scope_* labels to every Prometheus series"),
    ("target_info", "serve the target_info series"),
    ("raw_call_id", "put the raw Call-ID on spans (default: a hash of it)"),
    ("span_uris", "put From/To URIs on spans (privacy: off by default)"),
)
# Switches on by default: --x / --no-x (the environment variable takes true/false).
_ON_SWITCHES = (
    (
        "span_addresses",
        "endpoint IP addresses and ports on spans (personal data where phones are endpoints)",
    ),
)
# Switches off by default with a --no- form too.
_OFF_SWITCHES = (
    ("media", "per-call RTP quality: RTP statistics in the kernel (eBPF capture only)"),
)


# More spellings of a flag.
_ALIASES = {"web_config_file": ("--web.config.file",)}  # the Prometheus exporters' spelling


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags matching the ``SIP_EXPORTER_*`` variables (flags win over the environment)."""
    for name, help_text in _FLAGS:
        parser.add_argument(
            _option(name), *_ALIASES.get(name, ()), dest=name, default=None, help=help_text
        )
    # (name, help, default shown): plain switches have no --no- form; the others have one
    switches = (
        [(n, h, "") for n, h in _SWITCHES]
        + [(n, h, "true") for n, h in _ON_SWITCHES]
        + [(n, h, "false") for n, h in _OFF_SWITCHES]
    )
    for name, help_text, default in switches:
        action: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction}
            if default
            else {"action": "store_const", "const": True}
        )
        env = f"SIP_EXPORTER_{name.upper()}" + (f", {default}" if default else "")
        parser.add_argument(
            _option(name), dest=name, default=None, help=f"{help_text} [{env}]", **action
        )


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")
