"""``sip-otel run``: startup errors (one line, exit 2), privileges, and the idle timer loop."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from livenet import PYTHON, REPO, NetNs, live_skip_reason

from sip_otel import agent
from sip_otel.net.types import Frame


def run_agent(
    *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIP_EXPORTER_")}
    full.update(env or {})
    return subprocess.run(
        [*prefix, str(PYTHON), "-m", "sip_otel", "run", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sip-otel: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_bad_config_env() -> None:
    proc = run_agent(env={"SIP_EXPORTER_HTTP_PORT": "abc"})
    assert_one_line_exit_2(proc, "SIP_EXPORTER_HTTP_PORT", "--http-port")


def test_config_handed_over_exec_must_be_ours() -> None:
    proc = run_agent(env={"SIP_OTEL_AGENT_CONFIG": '{"interface": []}'})
    assert_one_line_exit_2(proc, "SIP_OTEL_AGENT_CONFIG is not a configuration sip-otel wrote")


def test_bad_config_flag() -> None:
    proc = run_agent("--capture-mode", "pcap")
    assert_one_line_exit_2(proc, "SIP_EXPORTER_CAPTURE_MODE")


def test_misspelt_variable_exits_2() -> None:
    proc = run_agent(env={"SIP_EXPORTER_INTERFACES": "lo"})
    assert_one_line_exit_2(
        proc, "SIP_EXPORTER_INTERFACES is not a setting", "did you mean SIP_EXPORTER_INTERFACE?"
    )


def test_unknown_sip_otel_variable_is_logged() -> None:
    proc = run_agent("--interface", "nosuchif0", env={"SIP_OTEL_BPF_SOURSE": "/x.c"})
    assert proc.returncode == 2, proc.stderr
    warning, error = proc.stderr.strip().splitlines()
    assert warning.endswith(
        "WARNING sip_otel.agent: SIP_OTEL_BPF_SOURSE is not a sip-otel variable (ignored); "
        "closest: SIP_OTEL_BPF_SOURCE"
    )
    assert "'nosuchif0' does not exist" in error


def test_bad_otlp_endpoint_exits_2() -> None:
    proc = run_agent("--otlp-endpoint", "http//collector:4317")
    assert_one_line_exit_2(proc, "SIP_EXPORTER_OTLP_ENDPOINT", "invalid OTLP endpoint")
    proc = run_agent(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"})
    assert_one_line_exit_2(proc, "OTEL_EXPORTER_OTLP_ENDPOINT: invalid OTLP endpoint")


def test_unknown_interface() -> None:
    proc = run_agent("--interface", "nosuchif0")
    assert_one_line_exit_2(proc, "'nosuchif0' does not exist", "SIP_EXPORTER_INTERFACE")


def _caps_reason() -> str | None:
    reason = live_skip_reason(need_bcc=True)
    if reason:
        return reason
    if shutil.which("capsh") is None:
        return "capsh not installed (libcap2-bin)"
    return None


@pytest.mark.live
def test_no_capabilities_one_line_naming_them(tmp_path: Path) -> None:
    reason = _caps_reason()
    if reason:
        pytest.skip(reason)
    ns = NetNs("p")
    try:
        proc = subprocess.run(
            [
                *ns.exec_prefix(),
                "capsh",
                "--drop=cap_bpf,cap_perfmon,cap_sys_admin,cap_net_raw",
                "--",
                "-c",
                f"exec {PYTHON} -m sip_otel run --interface lo",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    finally:
        ns.close()
    assert_one_line_exit_2(
        proc, "missing privileges", "CAP_BPF", "CAP_PERFMON", "CAP_NET_RAW", "docs/capture.md"
    )


def first_log_line(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[str, str, int | None]:
    """Start the agent command in a fresh netns, read its first log line, then SIGTERM it.
    Returns (first line, the rest of its output, exit code)."""
    ns = NetNs("p")
    try:
        proc = subprocess.Popen(
            [*ns.exec_prefix(), *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
    finally:
        ns.close()
    return first, out, proc.returncode


@pytest.mark.live
def test_without_bpf_capabilities_falls_back_to_afpacket(tmp_path: Path) -> None:
    reason = _caps_reason()
    if reason:
        pytest.skip(reason)
    first, out, rc = first_log_line(
        [
            "capsh",
            "--drop=cap_bpf,cap_perfmon,cap_sys_admin",
            "--",
            "-c",
            f"exec {PYTHON} -m sip_otel run --interface lo",
        ]
    )
    assert "capture path afpacket on lo" in first, first + out
    assert "eBPF unavailable" in first and "CAP_BPF" in first
    assert rc == 0, first + out


# --- the main loop, with fakes (no I/O beyond a pipe) ---------------------------------------


class FakeCapture:
    path = "fake"

    def __init__(self, stop: FakeStop, ticks: int, frames: list[Frame]) -> None:
        self.r, self.w = os.pipe()
        self.stop = stop
        self.ticks = ticks
        self.frames = frames

    def fileno(self) -> int:
        return self.r

    def read(self, max_frames: int = 512) -> list[Frame]:
        out, self.frames = self.frames, []
        return out

    def feed(self, pipeline: FakePipeline, max_frames: int) -> int:
        frames = self.read(max_frames)
        if frames:
            pipeline.feed(frames)
        return len(frames)

    def drops(self) -> int:  # called once per tick
        self.ticks -= 1
        if self.ticks <= 0:
            self.stop.requested = True
        return 7

    def drop_reasons(self) -> dict[str, int]:
        return {"ring_full": 5, "load_fail": 2}

    def counters(self) -> dict[str, int]:
        return {}

    def interfaces(self) -> dict[str, int]:
        return {}

    def relink(self, name: str, ifindex: int) -> None:
        pass

    def clear_errors(self) -> None:
        pass

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class FakeStop:
    def __init__(self) -> None:
        self.requested = False
        self.reload = False
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK)


class FakeStats:
    capture_drops = 0
    capture_drops_by: dict[str, int] = {}


class FakePipeline:
    def __init__(self) -> None:
        self.stats = FakeStats()
        self.last_ts_ns = 0
        self.fed: list[Frame] = []
        self.timers: list[int] = []

    def feed(self, frames: list[Frame]) -> None:
        self.fed.extend(frames)
        self.last_ts_ns = max(self.last_ts_ns, *(f.ts_ns for f in frames))

    def handle_timer(self, now_ns: int) -> None:
        self.timers.append(now_ns)
        self.last_ts_ns = max(self.last_ts_ns, now_ns)


def test_idle_clock_advances_packet_time() -> None:
    stop = FakeStop()
    t0 = time.time_ns()
    frame = Frame(t0 - 10**9, 1, b"", 1, 0)  # a packet from one second ago
    cap = FakeCapture(stop, ticks=4, frames=[frame])
    pipe = FakePipeline()
    agent._loop(cap, pipe, stop, 10_000_000)  # type: ignore[arg-type]
    cap.close()
    assert pipe.fed == [frame]
    assert pipe.stats.capture_drops == 7
    assert pipe.stats.capture_drops_by == {"ring_full": 5, "load_fail": 2}
    # Idle ticks move packet time forward on the wall clock, held back by the grace period.
    assert pipe.timers, "no idle timer ran"
    assert pipe.timers == sorted(pipe.timers)
    assert all(t > frame.ts_ns for t in pipe.timers)
    assert pipe.timers[-1] <= time.time_ns() - agent.IDLE_GRACE_NS


def test_reload_request_runs_between_reads_and_the_loop_goes_on() -> None:
    """A SIGHUP (the reload flag) calls the reload once, at the next turn, and the loop keeps
    reading; a reload that raises is logged, never fatal."""
    stop = FakeStop()
    stop.reload = True
    t0 = time.time_ns()
    frame = Frame(t0 - 10**9, 1, b"", 1, 0)
    cap = FakeCapture(stop, ticks=3, frames=[frame])
    pipe = FakePipeline()
    calls: list[int] = []

    def reload() -> None:
        calls.append(len(pipe.fed))
        raise RuntimeError("broken reload")

    agent._loop(cap, pipe, stop, 10_000_000, None, reload)  # type: ignore[arg-type]
    cap.close()
    assert calls == [1]  # once, after the frame that was waiting had been fed
    assert stop.reload is False and stop.requested is True  # stopped by the ticks, not the reload
    assert pipe.fed == [frame] and pipe.timers


def test_sighup_sets_the_reload_flag_only() -> None:
    import signal

    stop = agent._Stop()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        assert (stop.reload, stop.requested) == (True, False)
        assert os.read(stop.rfd, 64)  # poll() wakes up
    finally:
        stop.close()


@pytest.mark.live
def test_metrics_port_in_use() -> None:
    reason = live_skip_reason(need_bcc=False)
    if reason:
        pytest.skip(reason)
    import socket

    ns = NetNs("p")
    try:
        with ns.entered():
            busy = socket.socket()
            busy.bind(("0.0.0.0", 2112))
            busy.listen()
        try:
            proc = run_agent("--interface", "lo", prefix=tuple(ns.exec_prefix()))
        finally:
            busy.close()
    finally:
        ns.close()
    assert proc.returncode == 2, proc.stderr
    # reported before the capture is opened (no eBPF compile first): one line, nothing else
    assert "capture path" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sip-otel: cannot serve /metrics on 0.0.0.0:2112")
    assert "SIP_EXPORTER_HTTP_PORT" in last
    assert "Traceback" not in proc.stderr


@pytest.mark.live
def test_filter_that_does_not_compile_falls_back(tmp_path: Path) -> None:
    reason = live_skip_reason(need_bcc=True)
    if reason:
        pytest.skip(reason)
    broken = tmp_path / "broken.c"
    broken.write_text("int sip_filter(struct __sk_buff *skb) { return nonsense; }\n")
    first, out, rc = first_log_line(
        [str(PYTHON), "-m", "sip_otel", "run", "--interface", "lo"],
        env={**os.environ, "SIP_OTEL_BPF_SOURCE": str(broken)},
    )
    assert "capture path afpacket on lo" in first, first + out
    assert "eBPF filter failed to compile or load" in first and "nonsense" in first, first
    assert rc == 0, first + out


@pytest.mark.live
def test_agent_never_maps_bcc_or_llvm() -> None:
    """bcc compiles in a child that exits; the agent holds only the descriptors."""
    reason = live_skip_reason(need_bcc=True)
    if reason:
        pytest.skip(reason)
    ns = NetNs("p")
    try:
        proc = subprocess.Popen(
            [*ns.exec_prefix(), str(PYTHON), "-m", "sip_otel", "run", "--interface", "lo"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
    finally:
        ns.close()
    assert "capture path ebpf on lo" in first, first + out
    assert "(in a child process)" in first
    libs = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    assert not [lib for lib in libs if "bcc" in lib or "LLVM" in lib or "clang" in lib], libs
    # the settings were validated before the exec: the running agent has no pydantic either
    assert not [lib for lib in libs if "pydantic" in lib], libs
    assert children == [], "the loader child is still running"
    assert proc.returncode == 0, first + out
