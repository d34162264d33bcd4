"""The media settings (config.py, runconfig.py, runflags.py): defaults, the environment, the
flags (--media / --no-media), the linger check against the 1 s kernel sync, and the hand-over
to the running agent in nanoseconds."""

from __future__ import annotations

import argparse

import pytest

from sip_otel.config import ConfigError, load_settings
from sip_otel.runconfig import MEDIA_SYNC_NS, AgentConfig
from sip_otel.runflags import add_run_arguments


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith(("SIP_EXPORTER_", "SIP_OTEL_")):
            monkeypatch.delenv(key)


def test_defaults_media_off() -> None:
    cfg = load_settings().agent_config()
    assert cfg.media is False
    assert (cfg.media_max_endpoints, cfg.media_max_streams) == (4096, 8192)
    assert cfg.media_interval_ns == 60 * 10**9 and cfg.media_linger_ns == 3 * 10**9


def test_environment_and_nanoseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_MEDIA", "true")
    monkeypatch.setenv("SIP_EXPORTER_MEDIA_MAX_STREAMS", "100")
    monkeypatch.setenv("SIP_EXPORTER_MEDIA_INTERVAL", "2.5")
    monkeypatch.setenv("SIP_EXPORTER_MEDIA_LINGER", "1.5")
    cfg = load_settings().agent_config()
    assert cfg.media and cfg.media_max_streams == 100
    assert cfg.media_interval_ns == 2_500_000_000 and cfg.media_linger_ns == 1_500_000_000
    assert AgentConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("linger", ["1", "0.5", "0"])
def test_linger_must_outlast_the_kernel_sync(monkeypatch: pytest.MonkeyPatch, linger: str) -> None:
    assert MEDIA_SYNC_NS == 10**9
    monkeypatch.setenv("SIP_EXPORTER_MEDIA_LINGER", linger)
    with pytest.raises(ConfigError, match=r"SIP_EXPORTER_MEDIA_LINGER \(--media-linger\): .*"):
        load_settings()


def test_flags_on_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    assert parser.parse_args([]).media is None  # not given: the environment decides
    on = parser.parse_args(["--media", "--media-max-endpoints", "64", "--media-linger", "5"])
    assert on.media is True
    monkeypatch.setenv("SIP_EXPORTER_MEDIA", "true")
    off = parser.parse_args(["--no-media"])
    assert off.media is False
    assert load_settings(media=off.media).media is False  # the flag wins
    s = load_settings(
        media=on.media, media_max_endpoints=on.media_max_endpoints, media_linger=on.media_linger
    )
    assert s.media and s.media_max_endpoints == 64 and s.media_linger == 5
