"""Agent configuration: ``SIP_EXPORTER_*`` environment variables and matching CLI flags.

The first six variables are the ``sip-exporter`` compatibility surface
(docs: /work/shared/reference/seed-metrics.md); the rest are ours. CLI flags override the
environment. Every problem is a :class:`ConfigError` with one line naming the variable/flag and
the fix; the agent prints it and exits 2.

``SIP_EXPORTER_SIP_PORTS`` (comma list) replaces ``SIP_PORT`` + ``SIPS_PORT`` when set.
``SIP_EXPORTER_INTERFACE`` unset or empty means every interface; a comma list means those.

A ``SIP_EXPORTER_*`` variable that looks like a misspelt setting (``SIP_EXPORTER_INTERFACES``) is
a start-up error naming the closest valid one: silently ignoring it would, for that example,
capture on every interface. So is a setting spelt with our own prefix (``SIP_OTEL_HTTP_PORT``).
One that is not close to any setting -- e.g. a sip-exporter 1.x feature sip-otel does not
implement (``SIP_EXPORTER_CARRIERS_CONFIG``, ``SIP_EXPORTER_FRAUD_*``), so that an environment
written for 1.x still starts -- gets a warning saying it is ignored. Any other unknown
``SIP_OTEL_*`` variable gets a warning (that prefix also holds the eBPF loader's variables,
:data:`OTHER_VARIABLES`, and test-harness ones).
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .reload import ConfigFileError, read_config_file
from .runconfig import CONFIG_ENV, LOG_LEVELS, MEDIA_SYNC_NS, AgentConfig
from .sizes import DEFAULT_MEMORY_LIMIT, parse_memory_limit
from .telemetry.otlp import check_otlp_endpoint
from .telemetry.webconfig import WebConfigError, load_web_config

__all__ = [
    "LOG_LEVELS",
    "OTHER_VARIABLES",
    "ConfigError",
    "Settings",
    "check_environment",
    "level_pinned",
    "load_settings",
]

ENV_PREFIX = "SIP_EXPORTER_"
# Variables read outside the settings class (capture/ebpf.py, capture/bpfload.py).
OTHER_VARIABLES = frozenset(
    {
        "SIP_OTEL_BPF_SOURCE",
        "SIP_OTEL_BPF_DIR",
        "SIP_OTEL_BPF_DEBUG",
        "SIP_OTEL_BPF_LOAD_TIMEOUT",
        "SIP_OTEL_BPF_RINGS",
        CONFIG_ENV,
    }
)

# sip-exporter 1.x settings sip-otel does not implement (its docs: carrier and user-agent label
# maps, the outgoing-traffic switch, fraud detection, GeoIP): ignored with a warning.
SIP_EXPORTER_1X_VARIABLES = frozenset(
    {
        "SIP_EXPORTER_CARRIERS_CONFIG",
        "SIP_EXPORTER_USER_AGENTS_CONFIG",
        "SIP_EXPORTER_IGNORE_OUTGOING",
    }
)
SIP_EXPORTER_1X_PREFIXES = ("SIP_EXPORTER_FRAUD_", "SIP_EXPORTER_GEOIP")
# A name at least this similar to a setting's (difflib ratio) is taken for a misspelling of it.
MISSPELT_RATIO = 0.8

# Ports the kernel filter matches (BPF hash map / cBPF comparisons). A cBPF program holds at most
# 4096 instructions and every port costs 4 of them (src+dst, UDP and TCP share), so 64 keeps the
# fallback program far below that bound while covering any sane deployment.
MAX_SIP_PORTS = 64
# Ring buffer: power of two, 1 MiB ... 1 GiB. 1 MiB holds ~700 1.5 KB packets; the default 16 MiB
# absorbs a ~100 ms userspace stall at 100k packets/s.
MIN_RING_BYTES = 1 << 20
MAX_RING_BYTES = 1 << 30
DEFAULT_RING_BYTES = 16 << 20


def _split(value: Any) -> Any:
    """Comma (or whitespace) separated string -> list of non-empty items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [p for p in value.replace(",", " ").split() if p]
    if isinstance(value, int):
        return [value]
    return value


class ConfigError(Exception):
    """Bad configuration; ``str()`` is one line naming the cause and the fix."""


class Settings(BaseSettings):
    """All agent settings. Field ``x_y`` is env ``SIP_EXPORTER_X_Y`` and flag ``--x-y``."""

    model_config = SettingsConfigDict(
        env_prefix="SIP_EXPORTER_", extra="ignore", case_sensitive=False
    )

    # --- sip-exporter compatible ---
    interface: Annotated[list[str], NoDecode] = Field(default_factory=list)
    http_port: int = Field(default=2112, ge=0, le=65535)
    logger_level: str = "info"
    sip_port: int = Field(default=5060, ge=1, le=65535)
    sips_port: int = Field(default=5061, ge=1, le=65535)
    object_file_path: str | None = None  # compiled eBPF object there; bcc compiles: ignored
    # --- ours ---
    sip_ports: Annotated[list[int], NoDecode] = Field(default_factory=list)
    http_host: str = "0.0.0.0"
    # TLS / basic auth for /metrics (Prometheus exporter-toolkit format; telemetry/webconfig.py)
    web_config_file: str | None = None
    capture_mode: Literal["auto", "ebpf", "afpacket"] = "auto"
    ring_size: int = DEFAULT_RING_BYTES
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["grpc", "http/protobuf"] | None = None
    service_name: str = "sip-otel"
    all_ports: bool = False  # capture and decode every UDP/TCP port as possible SIP
    tick_ms: int = Field(default=100, ge=10, le=10_000)  # timer tick / idle-advance period
    # --- telemetry surface (docs/metrics.md) ---
    scope_labels: bool = False  # otel_scope_* labels on every series
    target_info: bool = False  # the target_info series
    raw_call_id: bool = False  # span attribute sip.call_id unhashed (privacy: off by default)
    span_uris: bool = False  # From/To URIs on spans (RFC 6076 §7 privacy: off by default)
    span_addresses: bool = True  # endpoint IP addresses/ports on spans (personal data)
    span_queue: int = Field(default=2048, ge=1, le=1_000_000)  # spans waiting for export
    # one byte budget over every table of the pipeline (docs/reliability.md, "Memory budget")
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    # trace IDs from Session-ID / correlation header / Call-ID (telemetry/tracectx.py) or random
    trace_ids: Literal["derived", "random"] = "derived"
    correlation_header: str | None = None  # e.g. X-CID: links the legs a B2BUA bridges
    # --- media (docs/media.md, "Live path"): RTP statistics per call, eBPF capture only ---
    media: bool = False
    media_max_endpoints: int = Field(default=4096, ge=8, le=1 << 20)  # learned RTP endpoints
    media_max_streams: int = Field(default=8192, ge=8, le=1 << 22)  # RTP streams (+ SSRC)
    media_interval: float = Field(default=60, ge=1, le=86_400)  # s between reports of a call
    media_linger: float = Field(default=3, le=3600)  # s after a call's end: its last packets
    # SIP_EXPORTER_* lines read below the environment; its log level reloads on SIGHUP
    config_file: str | None = None

    @field_validator("correlation_header", mode="before")
    @classmethod
    def _correlation(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if not v:
                return None
            if len(v) > 64 or not all(
                c.isascii() and (c.isalnum() or c in "-.!%*_+`'~") for c in v
            ):
                raise ValueError(f"{v!r} is not a header name (a token of at most 64 characters)")
        return v

    @field_validator("interface", mode="before")
    @classmethod
    def _interfaces(cls, v: Any) -> Any:
        items = _split(v)
        if isinstance(items, list):
            seen: list[str] = []
            for name in items:
                if not isinstance(name, str):
                    raise ValueError(f"interface name must be a string, not {name!r}")
                if len(name) >= 16 or "/" in name or name in (".", ".."):
                    raise ValueError(f"invalid interface name {name!r}")
                if name not in seen:
                    seen.append(name)
            return seen
        return items

    @field_validator("sip_ports", mode="before")
    @classmethod
    def _ports(cls, v: Any) -> Any:
        items = _split(v)
        if isinstance(items, list):
            out: list[int] = []
            for p in items:
                try:
                    port = int(p)
                except (TypeError, ValueError):
                    raise ValueError(f"port {p!r} is not a number") from None
                if not 1 <= port <= 65535:
                    raise ValueError(f"port {port} out of range 1-65535")
                if port not in out:
                    out.append(port)
            if len(out) > MAX_SIP_PORTS:
                raise ValueError(f"at most {MAX_SIP_PORTS} ports, got {len(out)}")
            return out
        return items

    @field_validator("logger_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        if isinstance(v, str):
            level = v.strip().lower()
            if level not in LOG_LEVELS:
                raise ValueError(f"unknown level {v!r}; use one of {', '.join(LOG_LEVELS)}")
            return level
        return v

    @field_validator("web_config_file")
    @classmethod
    def _web_config(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        try:
            load_web_config(v)  # read and checked now: a bad file stops the start
        except WebConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _memory_limit(cls, v: Any) -> Any:
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            return parse_memory_limit(v)
        return v

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return None if v is None or not v.strip() else check_otlp_endpoint(v)

    @field_validator("media_linger")
    @classmethod
    def _linger(cls, v: float) -> float:
        sync_s = MEDIA_SYNC_NS / 1e9
        if v <= sync_s:
            raise ValueError(
                f"{v:g} s is too short: it must be more than the {sync_s:g} s between two reads "
                "of the kernel's RTP statistics"
            )
        return v

    @field_validator("ring_size")
    @classmethod
    def _ring(cls, v: int) -> int:
        if v < MIN_RING_BYTES or v > MAX_RING_BYTES or v & (v - 1):
            raise ValueError(
                f"{v} is not a power of two between {MIN_RING_BYTES} and {MAX_RING_BYTES} bytes"
            )
        return v

    # --- derived ---
    def ports(self) -> frozenset[int]:
        """The SIP port set: ``sip_ports`` when given, else ``{sip_port, sips_port}``."""
        if self.sip_ports:
            return frozenset(self.sip_ports)
        return frozenset((self.sip_port, self.sips_port))

    def log_level(self) -> int:
        return LOG_LEVELS[self.logger_level]

    def agent_config(self) -> AgentConfig:
        """The validated values as plain data for the running agent (runconfig.py)."""
        return AgentConfig(
            interface=tuple(self.interface),
            sip_ports=tuple(sorted(self.ports())),
            level=self.log_level(),
            http_port=self.http_port,
            http_host=self.http_host,
            web_config_file=self.web_config_file,
            capture_mode=self.capture_mode,
            ring_size=self.ring_size,
            otlp_endpoint=self.otlp_endpoint,
            otlp_protocol=self.otlp_protocol,
            service_name=self.service_name,
            all_ports=self.all_ports,
            tick_ms=self.tick_ms,
            scope_labels=self.scope_labels,
            target_info=self.target_info,
            raw_call_id=self.raw_call_id,
            span_uris=self.span_uris,
            span_addresses=self.span_addresses,
            span_queue=self.span_queue,
            memory_limit=self.memory_limit,
            trace_ids=self.trace_ids,
            correlation_header=self.correlation_header,
            object_file_path=self.object_file_path,
            media=self.media,
            media_max_endpoints=self.media_max_endpoints,
            media_max_streams=self.media_max_streams,
            media_interval_ns=round(self.media_interval * 1e9),
            media_linger_ns=round(self.media_linger * 1e9),
            config_file=self.config_file,
        )


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"SIP_EXPORTER_{field.upper()} (--{field.replace('_', '-')}): {msg}")
    return "bad configuration: " + "; ".join(parts)


def _closest(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
    return match[0] if match else known[0]


def check_environment(env: Mapping[str, str] | None = None) -> list[str]:
    """Refuse ``SIP_EXPORTER_*`` variables that name no setting (ConfigError naming the closest
    one); return warnings for unknown ``SIP_OTEL_*`` ones."""
    env = os.environ if env is None else env
    fields = [name.upper() for name in Settings.model_fields]
    settings_vars = [ENV_PREFIX + f for f in fields]
    warnings = []
    for key in sorted(env):
        upper = key.upper()
        if upper.startswith(ENV_PREFIX):
            if upper in settings_vars:
                continue
            if upper in SIP_EXPORTER_1X_VARIABLES or upper.startswith(SIP_EXPORTER_1X_PREFIXES):
                warnings.append(
                    f"{key} is a sip-exporter 1.x setting that sip-otel does not implement "
                    "(ignored)"
                )
                continue
            misspelt = difflib.get_close_matches(upper, settings_vars, n=1, cutoff=MISSPELT_RATIO)
            if misspelt:
                raise ConfigError(
                    f"bad configuration: {key} is not a setting; did you mean "
                    f"{misspelt[0]}? (docs/configuration.md lists them all)"
                )
            warnings.append(
                f"{key} is not a sip-otel setting (ignored); closest: "
                f"{_closest(upper, settings_vars)} "
                "(docs/configuration.md lists them all)"
            )
        elif upper.startswith("SIP_OTEL_") and upper not in OTHER_VARIABLES:
            rest = upper.removeprefix("SIP_OTEL_")
            if rest in fields:
                raise ConfigError(
                    f"bad configuration: {key} is not read; settings use the "
                    f"{ENV_PREFIX} prefix: set {ENV_PREFIX}{rest}"
                )
            known = sorted(OTHER_VARIABLES) + settings_vars
            warnings.append(
                f"{key} is not a sip-otel variable (ignored); closest: {_closest(upper, known)}"
            )
    return warnings


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` (CLI flags; None = not given) on top,
    and below both the config file's values (``SIP_EXPORTER_CONFIG_FILE`` / ``--config-file``).
    Unknown ``SIP_EXPORTER_*`` variables are a ConfigError (:func:`check_environment`), in the
    environment and in the file alike."""
    check_environment()
    given = {k: v for k, v in overrides.items() if v is not None}
    env_names = {k.upper() for k in os.environ}
    path = given.get("config_file") or _env_value("SIP_EXPORTER_CONFIG_FILE")
    file_fields: set[str] = set()
    if path:
        try:
            from_file = read_config_file(path)
        except ConfigFileError as exc:
            raise ConfigError(
                f"bad configuration: SIP_EXPORTER_CONFIG_FILE (--config-file): {exc}"
            ) from None
        from_file.pop("SIP_EXPORTER_CONFIG_FILE", None)  # no chains of files
        try:
            warnings = check_environment(from_file)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in config file {path})") from None
        for warning in warnings:
            logging.getLogger("sip_otel.config").warning("%s (in config file %s)", warning, path)
        for key, value in from_file.items():
            name = key.removeprefix(ENV_PREFIX).lower()
            if name in Settings.model_fields and key not in env_names and name not in given:
                given[name] = value
                file_fields.add(name)
    try:
        return Settings(**given)
    except ValidationError as exc:
        where = {str(err["loc"][0]) for err in exc.errors() if err["loc"]} & file_fields
        suffix = f" (in config file {path})" if where else ""
        raise ConfigError(_one_line(exc) + suffix) from None


def _env_value(name: str) -> str | None:
    """A variable's value, its name matched case-insensitively (as the settings read it)."""
    for key, value in os.environ.items():
        if key.upper() == name:
            return value or None
    return None


def level_pinned(overrides: Mapping[str, Any]) -> bool:
    """Did a flag or the environment set the log level (so the config file does not)?"""
    return (
        overrides.get("logger_level") is not None
        or _env_value("SIP_EXPORTER_LOGGER_LEVEL") is not None
    )
