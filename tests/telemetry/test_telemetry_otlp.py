"""OTLP endpoint/protocol resolution and the resource: options first, then standard env vars."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from sip_otel.telemetry.core import instance_id, make_resource
from sip_otel.telemetry.otlp import OtlpSignal, resolve


def test_off_without_endpoint_anywhere() -> None:
    assert resolve("traces", None, None, {}) is None
    assert resolve("metrics", None, "grpc", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) is None


def test_env_endpoint_left_to_the_exporter() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert resolve("traces", None, None, env) == OtlpSignal("traces", "grpc", None)
    env = {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    assert resolve("metrics", None, None, env) == OtlpSignal("metrics", "http/protobuf", None)
    assert resolve("traces", None, None, env) is None  # only the metrics endpoint is set


def test_per_signal_protocol_beats_generic() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    assert resolve("traces", None, None, env).protocol == "http/protobuf"  # type: ignore[union-attr]
    assert resolve("metrics", None, None, env).protocol == "grpc"  # type: ignore[union-attr]


def test_explicit_endpoint_is_a_base_url() -> None:
    assert resolve("traces", "127.0.0.1:4317", None, {}) == OtlpSignal(
        "traces", "grpc", "http://127.0.0.1:4317"
    )
    assert resolve("metrics", "http://c:4318/", "http/protobuf", {}) == OtlpSignal(
        "metrics", "http/protobuf", "http://c:4318/v1/metrics"
    )
    # the option wins over the environment
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert resolve("traces", "https://c:4317", "grpc", env) == OtlpSignal(
        "traces", "grpc", "https://c:4317"
    )


def test_unsupported_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="http/json"):
        resolve("traces", "c:4318", "http/json", {})


def test_resource_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attrs = make_resource("sip-otel").attributes
    assert attrs["service.name"] == "sip-otel"
    assert attrs["service.version"] == "0.1.0"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=edge,deployment.environment=lab")
    attrs = make_resource("sip-otel").attributes
    assert (attrs["service.name"], attrs["deployment.environment"]) == ("edge", "lab")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sbc-tap")
    assert make_resource("sip-otel").attributes["service.name"] == "sbc-tap"


def test_resource_identifies_the_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attrs = make_resource("sip-otel").attributes
    assert attrs["host.name"] == socket.gethostname()
    assert attrs["network.protocol.name"] == "sip"
    # stable: the same host gives the same id on every start; another machine id another one
    again = make_resource("sip-otel").attributes
    assert attrs["service.instance.id"] == again["service.instance.id"]
    mid = tmp_path / "machine-id"
    mid.write_text("0123456789abcdef0123456789abcdef\n")
    other = tmp_path / "other-id"
    other.write_text("fedcba9876543210fedcba9876543210\n")
    a, b = instance_id(str(mid)), instance_id(str(other))
    assert a != b and a == instance_id(str(mid))
    assert str(uuid.UUID(a)) == a  # a UUID string, as the semantic conventions recommend
    # no machine id: derived from the host name, still stable
    assert instance_id(str(tmp_path / "absent")) == instance_id(str(tmp_path / "absent"))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=tap-7,host.name=edge-1")
    attrs = make_resource("sip-otel").attributes
    assert (attrs["service.instance.id"], attrs["host.name"]) == ("tap-7", "edge-1")
