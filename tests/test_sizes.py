"""Byte sizes for --memory-limit / SIP_EXPORTER_MEMORY_LIMIT (sizes.py), in the agent's
settings and on the replay command line."""

from __future__ import annotations

import pytest

from sip_otel.cli import main
from sip_otel.config import ConfigError, load_settings
from sip_otel.sizes import parse_memory_limit, parse_size


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("268435456", 268435456),
        ("256MiB", 256 * 1024 * 1024),
        ("256 MiB", 256 * 1024 * 1024),
        ("256mib", 256 * 1024 * 1024),
        ("1GiB", 1024**3),
        ("1G", 1024**3),
        ("512KiB", 512 * 1024),
        ("1.5GiB", 3 * 512 * 1024**2),
        ("2TB", 2 * 1024**4),
        (1234, 1234),
    ],
)
def test_parse_size(text: str | int, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "lots", "-1", "1 PiB", "MiB", "1e9"])
def test_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_memory_limit_range() -> None:
    assert parse_memory_limit("1MiB") == 1 << 20
    assert parse_memory_limit("1TiB") == 1 << 40
    for text in ("1048575", "2TiB", "0"):
        with pytest.raises(ValueError, match="outside 1MiB-1TiB"):
            parse_memory_limit(text)


def test_settings_default_env_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIP_EXPORTER_MEMORY_LIMIT", raising=False)
    assert load_settings().memory_limit == 256 * 1024 * 1024
    assert load_settings().agent_config().memory_limit == 256 * 1024 * 1024
    monkeypatch.setenv("SIP_EXPORTER_MEMORY_LIMIT", "1GiB")
    assert load_settings().memory_limit == 1 << 30
    assert load_settings(memory_limit="64MiB").memory_limit == 64 << 20  # the flag wins


def test_settings_refuse_a_bad_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_MEMORY_LIMIT", "lots")
    with pytest.raises(ConfigError, match=r"SIP_EXPORTER_MEMORY_LIMIT .*not a size"):
        load_settings()


def test_replay_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "x.pcap", "--memory-limit", "lots"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--memory-limit: 'lots' is not a size" in err
    assert "Traceback" not in err
