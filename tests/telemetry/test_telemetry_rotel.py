"""A real OTLP collector (rotel) receives our metrics and spans over gRPC and HTTP.

rotel runs with ``--exporter blackhole --debug-log metrics --debug-log traces
--debug-log-verbosity detailed`` and prints what it received; the assertions read that print-out.
Also: with the collector down, /metrics keeps serving and the span queue stays bounded.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from telhelpers import free_port

from sip_otel.errors import Reasons
from sip_otel.records import DialogRecord, RecordEvent, RegistrationRecord
from sip_otel.stats import PipelineStats
from sip_otel.telemetry import Telemetry, TelemetryOptions
from sip_otel.telemetry.spans import call_id_hash


def _rotel_binary() -> Path | None:
    try:
        import rotel  # type: ignore[import-untyped]
    except ImportError:
        return None
    for base in [Path(rotel.__file__).parent, Path(sys.prefix) / "bin"]:
        for name in ("rotel-agent", "rotel"):
            if (base / name).is_file():
                return base / name
    return None


ROTEL = _rotel_binary()
needs_rotel = pytest.mark.skipif(ROTEL is None, reason="rotel (PyPI rotel) agent binary not found")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z, packet time


class Rotel:
    """rotel printing what it receives; ``prefix`` runs it elsewhere (e.g. in a network
    namespace: ``ns.exec_prefix()``, with ``entered=ns.entered`` to reach its ports)."""

    def __init__(
        self,
        tmp: Path,
        prefix: Sequence[str] = (),
        ports: tuple[int, int] | None = None,
        entered: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        assert ROTEL is not None
        self.grpc, self.http = ports or (free_port(), free_port())
        self._entered = entered
        self.out_path = tmp / "rotel.out"
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            [
                *prefix,
                str(ROTEL),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{self.grpc}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{self.http}",
                "--exporter",
                "blackhole",
                "--debug-log",
                "metrics",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
                "--pid-file",
                str(tmp / "rotel.pid"),
                "--log-file",
                str(tmp / "rotel.log"),
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        for port in (self.grpc, self.http):
            self._wait_port(port)

    def _wait_port(self, port: int) -> None:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.text()
            try:
                with self._entered():
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"rotel did not listen on {port}: {self.text()}")

    def text(self) -> str:
        return ANSI.sub("", self.out_path.read_text(errors="replace"))

    def wait_for(self, *needles: str, deadline_s: float = 15.0) -> str:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.1)
        missing = [n for n in needles if n not in self.text()]
        raise AssertionError(f"rotel never printed {missing}:\n{self.text()[-3000:]}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


@pytest.fixture
def rotel(tmp_path: Path) -> Iterator[Rotel]:
    r = Rotel(tmp_path)
    yield r
    r.close()


def _dialog() -> DialogRecord:
    return DialogRecord(
        call_id="3848276298220188511@atlanta.example.com",
        from_uri="sip:alice@atlanta.example.com",
        to_uri="sip:bob@biloxi.example.com",
        from_tag="9fxced76sl",
        to_tag="314159",
        start_ns=T0,
        end_ns=T0 + 12_500_000_000,
        outcome="completed",
        final_status=200,
        transport="udp",
        src="192.0.2.101:5060",
        dst="192.0.2.201:5060",
        srd_s=0.4,
        sdt_s=11.9,
        events=[
            RecordEvent(T0 + 400_000_000, "sip.provisional", 180, "INVITE"),
            RecordEvent(T0 + 600_000_000, "sip.2xx", 200, "INVITE"),
            RecordEvent(T0 + 12_500_000_000, "sip.bye", 0, "BYE"),
        ],
    )


def _failed_registration() -> RegistrationRecord:
    return RegistrationRecord(
        aor="sip:carol@chicago.example.com",
        call_id="reg-1@chicago",
        start_ns=T0 + 1_000_000_000,
        end_ns=T0 + 1_050_000_000,
        outcome="failed",
        final_status=403,
        transport="tcp",
        src="192.0.2.50:40000",
        dst="192.0.2.201:5060",
    )


def metric_blocks(text: str) -> dict[str, list[str]]:
    """Metric name -> the lines of each data point block printed for it (all exports)."""
    out: dict[str, list[str]] = {}
    for block in text.split("Metric #")[1:]:
        m = re.search(r"-> Name: (\S+)", block)
        if m:
            out.setdefault(m.group(1), []).append(block.split("ResourceMetrics #")[0])
    return out


@needs_rotel
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_rotel_receives_spans_and_metrics(rotel: Rotel, protocol: str) -> None:
    port = rotel.grpc if protocol == "grpc" else rotel.http
    stats = PipelineStats()
    stats.responses[200] = 2
    r = stats.rfc6076
    r.invite_attempts, r.invite_success = 2, 1
    r.srd_success.observe(0.4)
    r.sdt.observe(11.9)
    tel = Telemetry(
        stats,
        Reasons(),
        lambda: {"sessions": 1},
        TelemetryOptions(
            prometheus=False,
            otlp_endpoint=f"127.0.0.1:{port}",
            otlp_protocol=protocol,
            service_name="sip-otel-test",
        ),
    )
    try:
        tel.on_record(_dialog())
        tel.on_record(_failed_registration())
        tel.force_flush()
    finally:
        tel.shutdown()
    text = rotel.wait_for(
        "Name           : SIP INVITE",
        "Name           : SIP REGISTER",
        "-> Name: sip_exporter_invite",
        "-> Name: sip_rfc6076_srd",
    )
    assert "service.name: Str(sip-otel-test)" in text

    invite = text.split("Name           : SIP INVITE")[1].split("Span #")[0]
    assert f"Start time: {T0}\n" in invite
    assert f"End time: {T0 + 12_500_000_000}\n" in invite
    assert "Kind           : SPAN_KIND_INTERNAL" in invite
    assert "Status code    : STATUS_CODE_UNSET" in invite
    digest = call_id_hash("3848276298220188511@atlanta.example.com")
    for attr in (
        f"sip.call_id_hash: Str({digest})",
        "sip.outcome: Str(completed)",
        "sip.status_code: Int(200)",
        "sip.rfc6076.srd: Double(0.4)",
        "sip.rfc6076.sdt: Double(11.9)",
        "network.transport: Str(udp)",
        "source.address: Str(192.0.2.101)",
        "destination.port: Int(5060)",
    ):
        assert f"-> {attr}" in invite, attr
    assert "atlanta.example.com" not in invite  # Call-ID hashed, no URIs
    events = re.findall(r"-> Name: (sip\.\w+)\n\s+-> Timestamp: (\d+)", invite)
    assert events == [
        ("sip.provisional", str(T0 + 400_000_000)),
        ("sip.2xx", str(T0 + 600_000_000)),
        ("sip.bye", str(T0 + 12_500_000_000)),
    ]

    register = text.split("Name           : SIP REGISTER")[1].split("Span #")[0]
    assert f"Start time: {T0 + 1_000_000_000}\n" in register
    assert "Status code    : STATUS_CODE_ERROR" in register
    assert "-> sip.status_code: Int(403)" in register

    metrics = metric_blocks(text)
    invite_m = metrics["sip_exporter_invite"][0]
    assert "DataType: Sum" in invite_m and "IsMonotonic: true" in invite_m
    assert "AGGREGATION_TEMPORALITY_CUMULATIVE" in invite_m
    assert re.search(r"\nValue: 2\n", invite_m)  # attempts
    assert re.search(r"\nValue: 2\n", metrics["sip_exporter_200"][0])
    ser = metrics["sip_exporter_ser"][0]
    assert "DataType: Gauge" in ser and re.search(r"\nValue: 50\n", ser)
    assert re.search(r"\nValue: 1\n", metrics["sip_exporter_sessions"][0])
    srd = metrics["sip_rfc6076_srd"][0]
    assert "DataType: Histogram" in srd and "Unit: s" in srd
    success = srd.split("result: Str(success)")[1].split("HistogramDataPoints")[0]
    assert "Count: 1\n" in success and "Sum: 0.4\n" in success
    assert "Buckets #6, Count: 1\n" in success  # (0.25, 0.5]
    assert "Min: 0.4\n" in success and "Max: 0.4\n" in success
    assert "sip_exporter_seer" in metrics and "sip_rfc6076_sdt" in metrics


@needs_rotel
def test_replay_options_reach_rotel(rotel: Rotel, monkeypatch: pytest.MonkeyPatch) -> None:
    """``make_replay_telemetry`` with --otlp from the environment (per-signal endpoints)."""
    import argparse

    from sip_otel.telemetry.replay import add_replay_arguments, make_replay_telemetry

    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{rotel.http}/v1/traces"
    )
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{rotel.http}/v1/metrics"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "replay-test")
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", default="text")
    add_replay_arguments(parser)
    args = parser.parse_args(["--otlp", "--span-uris"])
    stats = PipelineStats()
    stats.requests["BYE"] = 4
    tel = make_replay_telemetry(args, stats, Reasons(), dict)
    assert tel is not None
    tel.on_record(_dialog())
    tel.force_flush()
    tel.shutdown()
    text = rotel.wait_for("Name           : SIP INVITE", "-> Name: sip_exporter_bye")
    assert "service.name: Str(replay-test)" in text
    assert "-> sip.from_uri: Str(sip:alice@atlanta.example.com)" in text
    assert re.search(r"\nValue: 4\n", metric_blocks(text)["sip_exporter_bye"][0])


def test_collector_down_metrics_keep_serving_and_spans_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # seconds, per export attempt
    dead = free_port()  # nothing listens here
    stats = PipelineStats()
    tel = Telemetry(
        stats,
        Reasons(),
        dict,
        TelemetryOptions(
            http_host="127.0.0.1",
            http_port=0,
            max_span_queue=16,
            otlp_endpoint=f"127.0.0.1:{dead}",
            export_interval_ms=200,
        ),
    )
    try:
        tel.start_http()
        tel.set_ready()
        proc = tel.span_processor
        assert proc is not None
        for i in range(300):
            stats.rfc6076.invite_attempts = i + 1
            tel.on_record(_dialog())
            assert proc.pending <= 16
        # every span is either waiting (<= 16), in the one stuck export batch (<= 16), or
        # dropped and counted
        assert stats.spans_dropped >= 300 - 32
        before = stats.spans_dropped
        with urllib.request.urlopen(f"http://127.0.0.1:{tel.http_port}/metrics", timeout=5) as r:
            body = r.read().decode()
        after = stats.spans_dropped  # a failing export may count more meanwhile
        assert "\nsip_exporter_invite_total 300.0\n" in body
        scraped = re.search(r"\nsip_otel_spans_dropped_total (\S+)\n", body)
        assert scraped and before <= float(scraped.group(1)) <= after
        tel.force_flush(timeout_millis=3000)
    finally:
        tel.shutdown()
    # after shutdown the queue is gone: each of the 300 spans was exported or counted dropped
    assert stats.spans_dropped == 300


@needs_rotel
def test_cli_replay_otlp_pushes_capture_with_packet_times(rotel: Rotel, tmp_path: Path) -> None:
    import contextlib
    import io

    from telhelpers import CAPTURE_T0, write_capture

    from sip_otel.cli import main

    cap = tmp_path / "call.pcap"
    write_capture(cap)
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                ["replay", str(cap), "--otlp", "--otlp-endpoint", f"http://127.0.0.1:{rotel.grpc}"]
            )
            == 0
        )
    text = rotel.wait_for(
        "Name           : SIP INVITE",
        "Name           : SIP REGISTER",
        "-> Name: sip_exporter_invite",
    )
    invite = text.split("Name           : SIP INVITE")[1].split("Span #")[0]
    assert f"Start time: {CAPTURE_T0}\n" in invite  # the INVITE's packet time
    assert f"End time: {CAPTURE_T0 + 32_050_000_000}\n" in invite  # the BYE's 200 OK
    assert "-> sip.outcome: Str(completed)" in invite
    assert "-> sip.rfc6076.sdt: Double(30)" in invite
    register = text.split("Name           : SIP REGISTER")[1].split("Span #")[0]
    assert f"Start time: {CAPTURE_T0 + 40_000_000_000}\n" in register
    assert f"End time: {CAPTURE_T0 + 40_080_000_000}\n" in register
    metrics = metric_blocks(text)
    assert re.search(r"\nValue: 1\n", metrics["sip_exporter_invite"][0])
    assert re.search(r"\nValue: 100\n", metrics["sip_exporter_ser"][0])


@needs_rotel
def test_periodic_export_honours_env_interval(
    rotel: Rotel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")  # ms
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{rotel.grpc}")
    stats = PipelineStats()
    stats.requests["OPTIONS"] = 42
    tel = Telemetry(stats, Reasons(), dict, TelemetryOptions(prometheus=False))
    try:
        assert tel.metrics_target is not None and tel.metrics_target.endpoint is None
        # no flush: the periodic reader pushes on its own
        text = rotel.wait_for("-> Name: sip_exporter_options", deadline_s=10)
        assert re.search(r"\nValue: 42\n", metric_blocks(text)["sip_exporter_options"][0])
    finally:
        tel.shutdown()


@needs_rotel
def test_b2bua_legs_share_a_trace_from_session_id_and_link(rotel: Rotel, tmp_path: Path) -> None:
    """Two legs of one call through a B2BUA: the caller's Session-ID is the trace ID of both
    spans as rotel receives them, and the leg ending second links to the first."""
    import contextlib
    import io

    from telhelpers import MS, A, B, sip, udp_frame

    from sip_otel.capture.pcapfile import PcapWriter
    from sip_otel.cli import main

    sid = "ab30317f1a784dc48ff824d0d3715d86"
    t0 = 1_700_000_000_000_000_000
    frames = []
    for i, (call, extra) in enumerate(
        (("leg-a", f"Session-ID: {sid}\r\n"), ("leg-b", f"Session-ID: {sid}\r\nX-CID: leg-a\r\n"))
    ):
        br, t = f"z9hG4bK-{call}", t0 + i * 100 * MS
        frames += [
            (
                t,
                A,
                B,
                sip("INVITE sip:bob@example.com SIP/2.0", br, "1 INVITE", call, "a", "", extra),
            ),
            (t + 500 * MS, B, A, sip("SIP/2.0 200 OK", br, "1 INVITE", call, "a", "b")),
            (t + 9000 * MS, A, B, sip("BYE sip:bob@x SIP/2.0", br + "b", "2 BYE", call, "a", "b")),
            (t + 9050 * MS, B, A, sip("SIP/2.0 200 OK", br + "b", "2 BYE", call, "a", "b")),
        ]
    cap = tmp_path / "b2bua.pcap"
    with cap.open("wb") as fh:
        writer = PcapWriter(fh, 1)
        for t, src, dst, payload in sorted(frames, key=lambda f: f[0]):
            writer.write(t, udp_frame(src, dst, payload))
    args = ["replay", str(cap), "--otlp", "--otlp-endpoint", f"http://127.0.0.1:{rotel.grpc}"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--correlation-header", "X-CID"]) == 0
    text = rotel.wait_for("Name           : SIP INVITE")
    deadline = time.monotonic() + 10
    while text.count("Name           : SIP INVITE") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        text = rotel.text()
    blocks = [b.split("ResourceMetrics #")[0] for b in text.split("Span #")[1:]]
    invites = {
        re.search(r"sip.call_id_hash: Str\((\w+)\)", b).group(1): b  # type: ignore[union-attr]
        for b in blocks
        if "Name           : SIP INVITE" in b
    }
    a, b = invites[call_id_hash("leg-a")], invites[call_id_hash("leg-b")]
    for span in (a, b):
        assert f"Trace ID       : {sid}\n" in span
        assert f"sip.session_id: Str({sid})" in span
    a_id = re.search(r"\n +ID +: (\w+)\n", a).group(1)  # type: ignore[union-attr]
    assert "SpanLink #" not in a
    assert b.count("SpanLink #") == 1
    assert f"-> Trace ID: {sid}\n     -> ID: {a_id}\n" in b
    assert "-> sip.link: Str(call)" in b
