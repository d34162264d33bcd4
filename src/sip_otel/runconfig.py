"""The agent's validated settings as plain data, handed from ``sip-otel run`` to itself.

``sip-otel run`` validates its configuration with pydantic-settings (config.py), then replaces
itself (``execve``, same PID) with a fresh interpreter that gets the validated values as JSON in
:data:`CONFIG_ENV` and never imports pydantic: the validation libraries cost ~25 MiB of resident
memory that the capture loop has no use for (docs/capture.md, "Memory").
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

__all__ = ["CONFIG_ENV", "LOG_LEVELS", "MEDIA_SYNC_NS", "AgentConfig"]

CONFIG_ENV = "SIP_OTEL_AGENT_CONFIG"
# The agent reads the kernel's RTP statistics this often (media); a call's media must linger
# longer than this after its end, or its last second of packets would miss the final report.
MEDIA_SYNC_NS = 1_000_000_000

# SIP_EXPORTER_LOGGER_LEVEL values (sip-exporter's names) -> logging levels.
LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "critical": logging.CRITICAL,
}


@dataclass(frozen=True)
class AgentConfig:
    """What the running agent reads of its settings (the names of config.Settings)."""

    interface: tuple[str, ...]
    sip_ports: tuple[int, ...]  # the resolved port set (Settings.ports())
    level: int  # logging level (Settings.log_level())
    http_port: int
    http_host: str
    web_config_file: str | None
    capture_mode: str
    ring_size: int
    otlp_endpoint: str | None
    otlp_protocol: str | None
    service_name: str
    all_ports: bool
    tick_ms: int
    scope_labels: bool
    target_info: bool
    raw_call_id: bool
    span_uris: bool
    span_addresses: bool
    span_queue: int
    memory_limit: int  # bytes (Settings.memory_limit)
    trace_ids: str
    correlation_header: str | None
    object_file_path: str | None
    media: bool = False  # per-call RTP quality (docs/media.md, "Live path")
    media_max_endpoints: int = 4096
    media_max_streams: int = 8192
    media_interval_ns: int = 60_000_000_000
    media_linger_ns: int = 3_000_000_000
    config_file: str | None = None  # re-read on SIGHUP (reload.py)
    level_pinned: bool = False  # the environment or a flag set the log level, not the file

    def ports(self) -> frozenset[int]:
        return frozenset(self.sip_ports)

    def log_level(self) -> int:
        return self.level

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        """The inverse of :meth:`to_json`; ValueError (one line) on anything else."""
        try:
            data = json.loads(text)
            data["interface"] = tuple(data["interface"])
            data["sip_ports"] = tuple(data["sip_ports"])
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{CONFIG_ENV} is not a configuration sip-otel wrote: {exc}") from None
