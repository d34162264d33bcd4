"""SIGHUP: re-read the config file and apply what can change while the agent runs.

What reloads: the **log level** (``SIP_EXPORTER_LOGGER_LEVEL`` in the file named by
``SIP_EXPORTER_CONFIG_FILE`` / ``--config-file``), unless the environment or a flag set it
(those win over the file, at start and on reload alike: a process's environment cannot change
from outside). Everything else -- interfaces, ports, the capture, the HTTP listener, OTLP, the
span switches -- is built once at start; a changed value in the file is logged as needing a
restart and not applied. Either way the agent logs its effective settings again. Nothing is
interrupted: no packet, counter, dialog or pending span is touched, the capture keeps running.

The file holds ``SIP_EXPORTER_NAME=value`` lines (``#`` comments, blank lines, an optional
``export`` prefix, optional matching quotes around the value): the same names as the
environment variables, read at start below the environment and the flags. This module reads it
without pydantic (the running agent does not load it: runconfig.py), so the only value it
interprets is the log level, checked against :data:`LOG_LEVELS`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import asdict
from urllib.parse import urlsplit, urlunsplit

from .runconfig import LOG_LEVELS, AgentConfig

__all__ = ["MAX_CONFIG_FILE_BYTES", "ConfigFileError", "Reloader", "read_config_file"]

log = logging.getLogger("sip_otel.reload")

MAX_CONFIG_FILE_BYTES = 64 * 1024  # a settings file is a few hundred bytes
LEVEL_KEY = "SIP_EXPORTER_LOGGER_LEVEL"
KEY = re.compile(r"SIP_EXPORTER_[A-Z0-9_]+")


class ConfigFileError(ValueError):
    """An unreadable or malformed config file; ``str()`` is one line."""


def read_config_file(path: str) -> dict[str, str]:
    """``SIP_EXPORTER_NAME=value`` lines -> {upper-case name: value}. Raises ConfigFileError."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigFileError(f"config file {path} is larger than {MAX_CONFIG_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"config file {path} is not UTF-8 text") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip().upper()
        if not sep or not KEY.fullmatch(key):
            raise ConfigFileError(
                f"config file {path} line {number}: expected SIP_EXPORTER_NAME=value"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def _redacted(endpoint: str | None) -> str | None:
    """An OTLP endpoint without user name or password (they may be in the URL)."""
    if not endpoint or "@" not in endpoint:
        return endpoint
    parts = urlsplit(endpoint)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def effective(config: AgentConfig, level: int) -> str:
    """The running settings as one log line (``name=value``, the log level as now applied)."""
    values = asdict(config)
    del values["level_pinned"]  # where the level came from, not a setting
    values["level"] = logging.getLevelName(level).lower()
    values["otlp_endpoint"] = _redacted(config.otlp_endpoint)
    return " ".join(
        f"{k}={','.join(str(x) for x in v) if isinstance(v, tuple) else v}"
        for k, v in values.items()
        if v not in (None, (), "")
    )


class Reloader:
    """What SIGHUP does (see the module doc). ``set_level`` applies a logging level."""

    def __init__(self, config: AgentConfig, set_level: Callable[[int], None]) -> None:
        self.config = config
        self.set_level = set_level
        self.level = config.level
        self.baseline: dict[str, str] = {}
        if config.config_file:  # what the file said at start (the validating stage read it)
            with contextlib.suppress(ConfigFileError):
                self.baseline = read_config_file(config.config_file)

    def reload(self) -> None:
        """Re-read the file, apply the log level, log what needs a restart and the settings."""
        path = self.config.config_file
        if not path:
            log.info(
                "SIGHUP: no config file (SIP_EXPORTER_CONFIG_FILE / --config-file), nothing to "
                "reload; settings: %s",
                effective(self.config, self.level),
            )
            return
        try:
            values = read_config_file(path)
        except ConfigFileError as exc:
            log.warning("SIGHUP: %s; keeping the running settings", exc)
            return
        self._apply_level(values.get(LEVEL_KEY))
        changed = sorted(
            k
            for k in set(values) | set(self.baseline)
            if k != LEVEL_KEY and values.get(k) != self.baseline.get(k)
        )
        if changed:
            log.warning(
                "SIGHUP: %s changed in %s; only the log level reloads: restart the agent to "
                "apply the rest",
                ", ".join(changed),
                path,
            )
        log.info("SIGHUP: reloaded %s; settings: %s", path, effective(self.config, self.level))

    def _apply_level(self, text: str | None) -> None:
        if self.config.level_pinned:
            if text is not None:
                log.info(
                    "SIGHUP: %s in %s ignored: the environment or a flag sets the log level",
                    LEVEL_KEY,
                    self.config.config_file,
                )
            return
        name = (text if text is not None else "info").strip().lower()  # absent: the default
        level = LOG_LEVELS.get(name)
        if level is None:
            log.warning(
                "SIGHUP: %s=%r is not a level (use one of %s); keeping %s",
                LEVEL_KEY,
                text,
                ", ".join(LOG_LEVELS),
                logging.getLevelName(self.level).lower(),
            )
            return
        if level == self.level:
            return
        line = (
            f"SIGHUP: log level {logging.getLevelName(self.level).lower()} -> "
            f"{logging.getLevelName(level).lower()}"
        )
        if self.level <= logging.INFO:  # said at the level that still shows it
            log.info("%s", line)
        self.set_level(level)
        if self.level > logging.INFO and level <= logging.INFO:
            log.info("%s", line)
        self.level = level
