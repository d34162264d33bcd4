"""A real Prometheus server scrapes the agent's /metrics; its query API returns our values."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from telhelpers import free_port

from sip_otel.errors import Reasons
from sip_otel.stats import PipelineStats
from sip_otel.telemetry import Telemetry, TelemetryOptions

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason="prometheus server binary not installed (apt: prometheus)"
)


@pytest.fixture
def agent() -> Iterator[tuple[Telemetry, PipelineStats]]:
    stats = PipelineStats()
    r = stats.rfc6076
    r.invite_attempts, r.invite_3xx, r.invite_success = 4, 0, 3  # SER = 3/4 = 75 %
    tel = Telemetry(
        stats,
        Reasons(),
        lambda: {"sessions": 2},
        TelemetryOptions(http_host="127.0.0.1", http_port=0),
    )
    tel.start_http()
    tel.set_ready()
    yield tel, stats
    tel.shutdown()


@pytest.fixture
def prometheus(tmp_path: Path, agent: tuple[Telemetry, PipelineStats]) -> Iterator[str]:
    tel, _ = agent
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: sip-otel\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{tel.http_port}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(base: str, expr: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success"
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def wait_value(base: str, expr: str, want: float, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        try:
            result = query(base, expr)
        except OSError:  # server still starting
            result = []
        if result:
            last = result
            value = result[0]["value"]
            assert isinstance(value, list)
            if float(value[1]) == want:
                return
        time.sleep(0.3)
    raise AssertionError(f"{expr} never became {want}; last result {last}")


def test_prometheus_scrapes_seed_metrics(
    prometheus: str, agent: tuple[Telemetry, PipelineStats]
) -> None:
    _, stats = agent
    wait_value(prometheus, "sip_exporter_invite_total", 4)
    wait_value(prometheus, "sip_exporter_ser", 75)
    wait_value(prometheus, "sip_exporter_sessions", 2)
    (series,) = query(prometheus, "sip_exporter_invite_total")
    labels = series["metric"]
    assert isinstance(labels, dict)
    assert labels == {
        "__name__": "sip_exporter_invite_total",
        "instance": labels["instance"],
        "job": "sip-otel",
    }  # unlabelled: only the target labels Prometheus adds
    # the agent keeps counting: the next scrapes see it
    stats.rfc6076.invite_attempts = 9
    stats.rfc6076.invite_success = 9
    wait_value(prometheus, "sip_exporter_invite_total", 9)
    wait_value(prometheus, "sip_exporter_ser", 100)
    wait_value(prometheus, 'up{job="sip-otel"}', 1)
