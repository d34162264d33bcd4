"""SIGHUP reload (reload.py): the config file's format, the log level it applies, what it refuses,
and the config file's place below the environment and the flags at start (config.py)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from sip_otel.config import ConfigError, level_pinned, load_settings
from sip_otel.reload import ConfigFileError, Reloader, effective, read_config_file
from sip_otel.runconfig import AgentConfig


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith(("SIP_EXPORTER_", "SIP_OTEL_")):
            monkeypatch.delenv(key)


def agent_config(path: Path | None, **kw: object) -> AgentConfig:
    base = AgentConfig(
        interface=("lo",),
        sip_ports=(5060,),
        level=logging.INFO,
        http_port=2112,
        http_host="0.0.0.0",
        web_config_file=None,
        capture_mode="auto",
        ring_size=1 << 24,
        otlp_endpoint="http://user:secret@collector:4317",
        otlp_protocol=None,
        service_name="sip-otel",
        all_ports=False,
        tick_ms=100,
        scope_labels=False,
        target_info=False,
        raw_call_id=False,
        span_uris=False,
        span_addresses=True,
        span_queue=2048,
        memory_limit=256 << 20,
        trace_ids="derived",
        correlation_header=None,
        object_file_path=None,
        config_file=str(path) if path else None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_file_format(tmp_path: Path) -> None:
    f = tmp_path / "sip-otel.env"
    f.write_text(
        "# comment\n\n"
        "SIP_EXPORTER_LOGGER_LEVEL=debug\n"
        "export SIP_EXPORTER_HTTP_PORT = 9000\n"
        "sip_exporter_service_name='edge 1'\n"
        'SIP_EXPORTER_INTERFACE="eth0,eth1"\n'
    )
    assert read_config_file(str(f)) == {
        "SIP_EXPORTER_LOGGER_LEVEL": "debug",
        "SIP_EXPORTER_HTTP_PORT": "9000",
        "SIP_EXPORTER_SERVICE_NAME": "edge 1",
        "SIP_EXPORTER_INTERFACE": "eth0,eth1",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("LOGGER_LEVEL=debug\n", "line 1: expected SIP_EXPORTER_NAME=value"),
        ("# x\nSIP_EXPORTER_LOGGER_LEVEL\n", "line 2: expected SIP_EXPORTER_NAME=value"),
        ("SIP_EXPORTER_A B=1\n", "line 1: expected SIP_EXPORTER_NAME=value"),
    ],
)
def test_bad_lines(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.env"
    f.write_text(text)
    with pytest.raises(ConfigFileError) as info:
        read_config_file(str(f))
    assert str(info.value) == f"config file {f} {message}"


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"cannot read config file .*: No such file"):
        read_config_file(str(tmp_path / "missing"))
    f = tmp_path / "bin"
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigFileError, match="is not UTF-8 text"):
        read_config_file(str(f))
    f.write_bytes(b"#" * (64 * 1024 + 1))
    with pytest.raises(ConfigFileError, match="larger than 65536 bytes"):
        read_config_file(str(f))


def test_file_is_below_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "sip-otel.env"
    f.write_text(
        "SIP_EXPORTER_HTTP_PORT=9000\nSIP_EXPORTER_SIP_PORT=5070\n"
        "SIP_EXPORTER_LOGGER_LEVEL=debug\nSIP_EXPORTER_SPAN_ADDRESSES=false\n"
    )
    monkeypatch.setenv("SIP_EXPORTER_CONFIG_FILE", str(f))
    s = load_settings()
    assert (s.http_port, s.sip_port, s.logger_level, s.span_addresses) == (
        9000,
        5070,
        "debug",
        False,
    )
    monkeypatch.setenv("SIP_EXPORTER_HTTP_PORT", "9001")
    s = load_settings(sip_port="5080")
    assert (s.http_port, s.sip_port, s.logger_level) == (9001, 5080, "debug")
    assert s.agent_config().config_file == str(f)
    assert not level_pinned({})
    assert level_pinned({"logger_level": "warn"})
    monkeypatch.setenv("SIP_EXPORTER_LOGGER_LEVEL", "error")
    assert level_pinned({})


def test_file_errors_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "sip-otel.env"
    f.write_text("SIP_EXPORTER_HTTP_PORT=70000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=str(f))
    assert str(info.value) == (
        "bad configuration: SIP_EXPORTER_HTTP_PORT (--http-port): "
        f"Input should be less than or equal to 65535 (in config file {f})"
    )
    monkeypatch.setenv("SIP_EXPORTER_SIP_PORT", "0")  # an error of the environment's own
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=str(f), http_port="80")
    assert "SIP_EXPORTER_SIP_PORT" in str(info.value) and "config file" not in str(info.value)
    monkeypatch.delenv("SIP_EXPORTER_SIP_PORT")
    f.write_text("SIP_EXPORTER_INTERFACES=eth0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=str(f))
    assert "did you mean SIP_EXPORTER_INTERFACE?" in str(info.value)
    assert str(info.value).endswith(f"(in config file {f})")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=str(tmp_path / "nope"))
    assert str(info.value).startswith(
        "bad configuration: SIP_EXPORTER_CONFIG_FILE (--config-file): cannot read config file"
    )


def test_reload_applies_the_level_and_names_what_needs_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "sip-otel.env"
    f.write_text("SIP_EXPORTER_HTTP_PORT=9000\n")
    levels: list[int] = []
    r = Reloader(agent_config(f), levels.append)
    caplog.set_level(logging.DEBUG, "sip_otel.reload")
    f.write_text("SIP_EXPORTER_HTTP_PORT=9001\nSIP_EXPORTER_LOGGER_LEVEL=debug\n")
    r.reload()
    assert levels == [logging.DEBUG]
    text = caplog.text
    assert "SIGHUP: log level info -> debug" in text
    assert "SIP_EXPORTER_HTTP_PORT changed in" in text and "restart the agent" in text
    assert "level=debug" in text
    assert "secret" not in text and "otlp_endpoint=http://***@collector:4317" in text
    f.write_text("SIP_EXPORTER_HTTP_PORT=9000\n")  # level gone: back to the default
    caplog.clear()
    r.reload()
    assert levels == [logging.DEBUG, logging.INFO]
    assert "changed" not in caplog.text


def test_reload_keeps_running_settings_on_bad_input(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "sip-otel.env"
    f.write_text("SIP_EXPORTER_LOGGER_LEVEL=info\n")
    levels: list[int] = []
    r = Reloader(agent_config(f), levels.append)
    f.write_text("SIP_EXPORTER_LOGGER_LEVEL=loud\n")
    r.reload()
    assert "is not a level" in caplog.text
    f.unlink()
    r.reload()
    assert (
        "cannot read config file" in caplog.text and "keeping the running settings" in caplog.text
    )
    assert levels == []


def test_level_set_by_environment_or_flag_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "sip-otel.env"
    f.write_text("SIP_EXPORTER_LOGGER_LEVEL=debug\n")
    levels: list[int] = []
    caplog.set_level(logging.INFO, "sip_otel.reload")
    Reloader(agent_config(f, level_pinned=True), levels.append).reload()
    assert levels == []
    assert "ignored: the environment or a flag sets the log level" in caplog.text


def test_reload_without_a_file_logs_the_settings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sip_otel.reload")
    levels: list[int] = []
    Reloader(agent_config(None), levels.append).reload()
    assert levels == []
    assert (
        "no config file" in caplog.text and "interface=lo sip_ports=5060 level=info" in caplog.text
    )
    line = effective(agent_config(None, sip_ports=(5060, 5070)), logging.WARNING)
    assert line.startswith("interface=lo sip_ports=5060,5070 level=warning http_port=2112")
    assert "level_pinned" not in line
