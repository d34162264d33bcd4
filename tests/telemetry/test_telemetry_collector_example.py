"""examples/otel-collector.yaml: OTLP in, metrics to Prometheus, traces to a tracing backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "otel-collector.yaml"


def test_example_pipelines() -> None:
    yaml: Any = pytest.importorskip("yaml", reason="PyYAML not installed in this environment")
    cfg = yaml.safe_load(EXAMPLE.read_text())
    protocols = cfg["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    pipes = cfg["service"]["pipelines"]
    assert pipes["metrics"]["receivers"] == ["otlp"]
    assert pipes["metrics"]["exporters"] == ["prometheus"]
    assert pipes["traces"]["receivers"] == ["otlp"]
    assert pipes["traces"]["exporters"] == ["otlp/tempo"]
    for pipe in pipes.values():  # every referenced component is defined
        for kind in ("receivers", "processors", "exporters"):
            for name in pipe.get(kind, []):
                assert name in cfg[kind], name
    assert cfg["exporters"]["otlp/tempo"]["endpoint"] == "tempo:4317"


def test_example_mentions_what_the_agent_needs() -> None:
    text = EXAMPLE.read_text()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in text
    assert "without_scope_info: true" in text
