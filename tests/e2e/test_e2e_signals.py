"""Signals on the live agent: SIGHUP reloads (the log level from the config file) and loses
nothing -- no exit, counters exact, every span that was waiting for export reaches a real OTLP
collector (rotel) at the end -- on both capture paths; the eBPF loader child ignores SIGHUP.

Before SIGHUP was handled it killed the agent (exit status 129) and every pending span was lost.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ehelpers import Agent, capture_drops, e2e_skip_reason, uac, uas
from livenet import NetNs, live_skip_reason

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))
from test_telemetry_rotel import ROTEL, Rotel

pytestmark = [pytest.mark.live, pytest.mark.slow]

_reason = e2e_skip_reason() or (None if ROTEL else "rotel (PyPI rotel) agent binary not found")
if _reason:
    pytest.skip(_reason, allow_module_level=True)

CALLS = 300  # < one export batch (512): with a 60 s batch delay, all wait for the final flush
GRPC = 4317


@pytest.fixture
def ns() -> Iterator[NetNs]:
    n = NetNs("h")
    try:
        yield n
    finally:
        n.close()


class NsRotel(Rotel):
    """rotel inside ``ns`` (gRPC on 4317), printing every span it receives."""

    def __init__(self, ns: NetNs, tmp: Path) -> None:
        super().__init__(tmp, ns.exec_prefix(), (GRPC, GRPC + 1), ns.entered)

    def invite_spans(self) -> int:
        return len(re.findall(r"Name\s+: SIP INVITE", self.text()))


def _loader_children(pid: int) -> list[int]:
    """The eBPF loader child(ren) of ``pid`` (python -m sip_otel.capture.bpfload)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"sip_otel.capture.bpfload" in cmdline:
            out.append(int(entry.name))
    return out


class HupLoader(threading.Thread):
    """Sends SIGHUP to every eBPF loader child of the agent while it starts."""

    def __init__(self, agent_pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.hit = agent_pid, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for child in _loader_children(self.pid):
                try:
                    os.kill(child, signal.SIGHUP)
                    self.hit += 1
                except ProcessLookupError:
                    pass
            self.done.wait(0.02)


@pytest.mark.parametrize("mode", ["ebpf", "afpacket"])
def test_sighup_reloads_and_loses_nothing(ns: NetNs, tmp_path: Path, mode: str) -> None:
    if mode == "ebpf" and live_skip_reason(need_bcc=True):
        pytest.skip(str(live_skip_reason(need_bcc=True)))
    rotel = NsRotel(ns, tmp_path)
    conf = tmp_path / "sip-otel.env"
    conf.write_text("SIP_EXPORTER_LOGGER_LEVEL=info\n")
    try:
        agent = Agent(
            ns,
            tmp_path,
            "--interface",
            "lo",
            "--capture-mode",
            mode,
            "--otlp-endpoint",
            f"http://127.0.0.1:{GRPC}",
            "--config-file",
            str(conf),
            env={"OTEL_BSP_SCHEDULE_DELAY": "60000", "OTEL_METRIC_EXPORT_INTERVAL": "60000"},
        )
        hup_loader = HupLoader(agent.proc.pid)
        hup_loader.start()
        try:
            agent.wait_ready(deadline_s=120)
        finally:
            hup_loader.done.set()
            hup_loader.join()
        server = uas(ns, tmp_path, "uas_call.xml", 5060)
        stop_hups = threading.Event()

        def hup_agent() -> None:  # a reload every 0.2 s while the calls run
            while not stop_hups.wait(0.2):
                agent.proc.send_signal(signal.SIGHUP)

        hupper = threading.Thread(target=hup_agent, daemon=True)
        try:
            hupper.start()
            conf.write_text("SIP_EXPORTER_LOGGER_LEVEL=debug\n")
            uac(ns, tmp_path, "uac_call.xml", CALLS, 5060, "-key", "padding", "x", rate=100)
        finally:
            stop_hups.set()
            hupper.join()
            server.stop()
        conf.write_text("SIP_EXPORTER_LOGGER_LEVEL=warn\nSIP_EXPORTER_HTTP_PORT=9999\n")
        agent.proc.send_signal(signal.SIGHUP)
        m = agent.settled(limit_s=30)
        assert agent.proc.poll() is None, agent.log()  # still running after every SIGHUP
        assert rotel.invite_spans() == 0  # the spans are all still waiting for export
        rc, _took = agent.stop()
        log = agent.log()
        assert rc == 0, log
        assert m["sip_exporter_invite_total"] == CALLS
        assert m["sip_exporter_packets_total"] == 7 * CALLS
        assert m["sip_exporter_sessions"] == 0
        assert capture_drops(m) == 0
        assert "SIGHUP: log level info -> debug" in log
        assert "SIGHUP: log level debug -> warn" in log
        assert "SIP_EXPORTER_HTTP_PORT changed in" in log
        assert "Traceback" not in log
        if mode == "ebpf":
            assert hup_loader.hit > 0, "the loader child was never seen"
        end = time.monotonic() + 15
        while rotel.invite_spans() < CALLS and time.monotonic() < end:
            time.sleep(0.2)
        assert rotel.invite_spans() == CALLS
    finally:
        rotel.close()
