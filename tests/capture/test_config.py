"""Settings from SIP_EXPORTER_* variables and CLI overrides; one-line errors."""

from __future__ import annotations

import pytest

from sip_otel.config import DEFAULT_RING_BYTES, ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith(("SIP_EXPORTER_", "SIP_OTEL_")):
            monkeypatch.delenv(key)


def test_defaults_match_sip_exporter() -> None:
    s = load_settings()
    assert s.interface == []  # all interfaces
    assert s.http_port == 2112
    assert s.logger_level == "info"
    assert s.sip_port == 5060 and s.sips_port == 5061
    assert s.ports() == frozenset({5060, 5061})
    assert s.capture_mode == "auto"
    assert s.ring_size == DEFAULT_RING_BYTES


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_INTERFACE", "eth0, lo,eth0")
    monkeypatch.setenv("SIP_EXPORTER_HTTP_PORT", "9100")
    monkeypatch.setenv("SIP_EXPORTER_LOGGER_LEVEL", "WARN")
    monkeypatch.setenv("SIP_EXPORTER_SIP_PORT", "5080")
    monkeypatch.setenv("SIP_EXPORTER_SIPS_PORT", "5081")
    monkeypatch.setenv("SIP_EXPORTER_OBJECT_FILE_PATH", "/usr/local/bin/sip.o")
    s = load_settings()
    assert s.interface == ["eth0", "lo"]
    assert s.http_port == 9100
    assert s.logger_level == "warn"
    assert s.ports() == frozenset({5080, 5081})
    assert s.object_file_path == "/usr/local/bin/sip.o"


def test_port_list_replaces_the_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_SIP_PORTS", "5060 5070,5080")
    assert load_settings().ports() == frozenset({5060, 5070, 5080})


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_HTTP_PORT", "9100")
    monkeypatch.setenv("SIP_EXPORTER_INTERFACE", "eth0")
    s = load_settings(http_port="9200", interface="lo", capture_mode=None)
    assert s.http_port == 9200
    assert s.interface == ["lo"]
    assert s.capture_mode == "auto"


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("SIP_EXPORTER_HTTP_PORT", "abc", "SIP_EXPORTER_HTTP_PORT (--http-port)"),
        ("SIP_EXPORTER_HTTP_PORT", "70000", "SIP_EXPORTER_HTTP_PORT (--http-port)"),
        ("SIP_EXPORTER_LOGGER_LEVEL", "loud", "SIP_EXPORTER_LOGGER_LEVEL (--logger-level)"),
        ("SIP_EXPORTER_SIP_PORTS", "5060,x", "port 'x' is not a number"),
        ("SIP_EXPORTER_SIP_PORTS", "0", "port 0 out of range"),
        ("SIP_EXPORTER_RING_SIZE", "3000000", "not a power of two"),
        ("SIP_EXPORTER_CAPTURE_MODE", "pcap", "SIP_EXPORTER_CAPTURE_MODE (--capture-mode)"),
        ("SIP_EXPORTER_INTERFACE", "a/b", "invalid interface name"),
        ("SIP_EXPORTER_CORRELATION_HEADER", "X CID", "is not a header name"),
        ("SIP_EXPORTER_TRACE_IDS", "session", "SIP_EXPORTER_TRACE_IDS (--trace-ids)"),
    ],
)
def test_bad_values_are_one_line(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("bad configuration: ")
    assert needle in text


def test_too_many_ports() -> None:
    with pytest.raises(ConfigError, match="at most 64 ports"):
        load_settings(sip_ports=",".join(str(p) for p in range(6000, 6065)))


def test_telemetry_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.scope_labels, s.target_info, s.raw_call_id, s.span_uris) == (False,) * 4
    assert s.span_queue == 2048
    monkeypatch.setenv("SIP_EXPORTER_SCOPE_LABELS", "true")
    monkeypatch.setenv("SIP_EXPORTER_SPAN_QUEUE", "64")
    s = load_settings(raw_call_id=True, span_uris=None)
    assert s.scope_labels and s.raw_call_id and not s.span_uris
    assert s.span_queue == 64


def test_switches_reach_telemetry_options() -> None:
    import argparse

    from sip_otel.agent import _config_from_args, add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--scope-labels", "--target-info", "--span-uris"])
    s = _config_from_args(args)
    assert (s.scope_labels, s.target_info, s.raw_call_id, s.span_uris) == (True, True, False, True)
    assert (s.span_addresses, s.level_pinned) == (True, False)
    s = _config_from_args(parser.parse_args(["--no-span-addresses", "--logger-level", "warn"]))
    assert (s.span_addresses, s.level_pinned) == (False, True)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ("SIP_EXPORTER_INTERFACES", "did you mean SIP_EXPORTER_INTERFACE?"),
        ("SIP_EXPORTER_HTTPPORT", "did you mean SIP_EXPORTER_HTTP_PORT?"),
        ("SIP_EXPORTER_LOG_LEVEL", "did you mean SIP_EXPORTER_LOGGER_LEVEL?"),
        ("SIP_OTEL_HTTP_PORT", "settings use the SIP_EXPORTER_ prefix: set SIP_EXPORTER_HTTP_PORT"),
    ],
)
def test_misspelt_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, env: str, needle: str
) -> None:
    monkeypatch.setenv(env, "1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"bad configuration: {env} ")
    assert needle in text


def test_sip_exporter_1x_and_unrelated_variables_are_warnings() -> None:
    from sip_otel.config import check_environment

    env = {
        "SIP_EXPORTER_CARRIERS_CONFIG": "/etc/carriers.yaml",
        "SIP_EXPORTER_FRAUD_INVITE_BURST_THRESHOLD": "100",
        "SIP_EXPORTER_GEOIP_DB": "/x.mmdb",
        "SIP_EXPORTER_COLOUR": "blue",
    }
    got = check_environment(env)
    assert got[1].startswith("SIP_EXPORTER_COLOUR is not a sip-otel setting (ignored); closest: ")
    assert got[:1] + got[2:] == [
        "SIP_EXPORTER_CARRIERS_CONFIG is a sip-exporter 1.x setting that sip-otel does not "
        "implement (ignored)",
        "SIP_EXPORTER_FRAUD_INVITE_BURST_THRESHOLD is a sip-exporter 1.x setting that sip-otel "
        "does not implement (ignored)",
        "SIP_EXPORTER_GEOIP_DB is a sip-exporter 1.x setting that sip-otel does not implement "
        "(ignored)",
    ]


def test_unknown_sip_otel_variable_is_a_warning() -> None:
    from sip_otel.config import check_environment

    env = {"SIP_OTEL_BPF_SOURCE": "/x.c", "SIP_OTEL_BPF_SOURSE": "/x.c", "PATH": "/bin"}
    assert check_environment(env) == [
        "SIP_OTEL_BPF_SOURSE is not a sip-otel variable (ignored); closest: SIP_OTEL_BPF_SOURCE"
    ]
    assert check_environment({"SIP_EXPORTER_HTTP_PORT": "1", "SIP_OTEL_BPF_DIR": "/b"}) == []


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("http//collector:4317", "malformed"),
        ("ftp://collector:4317", "scheme must be http or https"),
        ("http://:4317", "no host"),
        ("collector:43x7", "Port could not be cast"),
        ("http://collector:70000", "Port out of range"),
    ],
)
def test_bad_otlp_endpoint(monkeypatch: pytest.MonkeyPatch, value: str, needle: str) -> None:
    monkeypatch.setenv("SIP_EXPORTER_OTLP_ENDPOINT", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("bad configuration: SIP_EXPORTER_OTLP_ENDPOINT (--otlp-endpoint): ")
    assert f"invalid OTLP endpoint {value!r}" in text and needle in text


@pytest.mark.parametrize(
    "value", ["collector:4317", "http://127.0.0.1:4318", "https://otel.example/otlp/", "otel"]
)
def test_good_otlp_endpoint(value: str) -> None:
    assert load_settings(otlp_endpoint=value).otlp_endpoint == value


def test_bad_otlp_endpoint_variable_of_the_sdk() -> None:
    from sip_otel.telemetry.otlp import resolve

    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_ENDPOINT: invalid OTLP endpoint"):
        resolve("traces", None, None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://x:4317"})
