"""``sip-otel run``: live capture -> pipeline -> telemetry (minimal first version)."""

from __future__ import annotations

import argparse
import logging
import sys

from sip_otel.config import ConfigError, Settings, load_settings

__all__ = ["add_run_arguments", "run"]

log = logging.getLogger("sip_otel.agent")

_FLAGS: tuple[tuple[str, str], ...] = (
    ("interface", "interface(s) to capture on, comma list; unset = all [SIP_EXPORTER_INTERFACE]"),
    ("http_port", "Prometheus /metrics port [SIP_EXPORTER_HTTP_PORT, 2112]"),
    ("http_host", "address /metrics listens on [SIP_EXPORTER_HTTP_HOST, 0.0.0.0]"),
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
)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags matching the ``SIP_EXPORTER_*`` variables (flags win over the environment)."""
    for name, help_text in _FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=help_text)
    parser.add_argument(
        "--all-ports", dest="all_ports", action="store_const", const=True, default=None,
        help="decode every captured UDP/TCP port as possible SIP [SIP_EXPORTER_ALL_PORTS]",
    )


def _settings_from_args(args: argparse.Namespace) -> Settings:
    names = [n for n, _ in _FLAGS] + ["all_ports"]
    return load_settings(**{n: getattr(args, n, None) for n in names})


def _capture_probe() -> tuple[str, str]:
    try:
        import bcc  # noqa: F401
    except Exception as exc:  # ImportError, or bcc failing to load libbcc
        return "afpacket", f"bcc not importable ({exc})"
    return "ebpf", "bcc importable"


def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings_from_args(args)
    except ConfigError as exc:
        print(f"sip-otel: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.object_file_path:
        log.info("SIP_EXPORTER_OBJECT_FILE_PATH ignored: sip-otel compiles its filter with bcc")
    path, why = _capture_probe()
    ifaces = ",".join(settings.interface) or "all interfaces"
    ports = ",".join(str(p) for p in sorted(settings.ports()))
    log.info("would capture on %s, SIP ports %s, capture path %s (%s)", ifaces, ports, path, why)
    return 0
