"""``/metrics`` and ``/health`` over HTTP: content negotiation (OpenMetrics), gzip, HEAD, and
the ``process_*`` series of the live agent."""

from __future__ import annotations

import gzip
import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sip_otel.errors import Reasons
from sip_otel.stats import PipelineStats
from sip_otel.telemetry import Telemetry, TelemetryOptions

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def make(process_metrics: bool) -> Telemetry:
    stats = PipelineStats()
    stats.requests["BYE"] = 5
    tel = Telemetry(
        stats,
        Reasons(),
        lambda: {"sessions": 2},
        TelemetryOptions(http_host="127.0.0.1", http_port=0, process_metrics=process_metrics),
    )
    tel.start_http()
    tel.set_ready()
    return tel


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    t = make(process_metrics=False)
    yield t
    t.shutdown()


def request(
    tel: Telemetry, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", tel.http_port, timeout=5)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_classic_text_by_default(tel: Telemetry) -> None:
    status, headers, body = request(tel, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "content-encoding" not in headers
    assert b"\nsip_exporter_bye_total 5.0\n" in body
    assert not body.endswith(b"# EOF\n")


def test_openmetrics_when_asked(tel: Telemetry) -> None:
    # what Prometheus 2.x sends
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    status, headers, body = request(tel, "/metrics", Accept=accept)
    assert status == 200
    assert headers["content-type"].startswith(OPENMETRICS)
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE sip_exporter_bye counter\nsip_exporter_bye_total 5.0\n" in text


def test_gzip_when_accepted(tel: Telemetry) -> None:
    _, _, plain = request(tel, "/metrics")
    status, headers, body = request(tel, "/metrics", Accept_Encoding="gzip, deflate")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == len(body) < len(plain)
    assert gzip.decompress(body) == plain
    _, headers, _ = request(tel, "/metrics", Accept_Encoding="gzip;q=0")
    assert "content-encoding" not in headers


def test_head_answers_headers_only(tel: Telemetry) -> None:
    _, get_headers, body = request(tel, "/metrics")
    status, headers, head_body = request(tel, "/metrics", "HEAD")
    assert status == 200 and head_body == b""
    assert headers["content-length"] == get_headers["content-length"] == str(len(body))
    assert headers["content-type"] == get_headers["content-type"]
    status, headers, head_body = request(tel, "/health", "HEAD")
    assert (status, headers["content-length"], head_body) == (200, "3", b"")
    assert request(tel, "/health")[2] == b"ok\n"
    assert request(tel, "/nope", "HEAD")[0] == 404


def test_process_metrics_of_the_agent() -> None:
    tel = make(process_metrics=True)
    try:
        _, _, body = request(tel, "/metrics")
    finally:
        tel.shutdown()
    values = {}
    for line in body.decode().splitlines():
        if line.startswith("process_"):
            name, _, value = line.partition(" ")
            values[name] = float(value)
    assert set(values) >= {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    }
    # independent readings from /proc of this very process
    status = Path("/proc/self/status").read_text()
    (rss_kib,) = (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    assert 0.5 < values["process_resident_memory_bytes"] / (rss_kib * 1024) < 2
    assert values["process_open_fds"] >= 3
    assert time.time() - 3600 < values["process_start_time_seconds"] <= time.time()


def test_no_process_metrics_unless_asked(tel: Telemetry) -> None:
    assert b"process_" not in request(tel, "/metrics")[2]
