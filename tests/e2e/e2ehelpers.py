"""The live agent and SIPp, run inside a private network namespace, for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))

from livenet import PYTHON, REPO, NetNs, live_skip_reason

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SIPP = shutil.which("sipp")
Metrics = dict[str, float]


def e2e_skip_reason() -> str | None:
    reason = live_skip_reason(need_bcc=False)
    if reason:
        return reason
    if SIPP is None:
        return "sipp not installed (Debian package sip-tester)"
    try:
        import sip_otel.pipeline
        import sip_otel.telemetry  # noqa: F401
    except ImportError as exc:
        return f"pipeline/telemetry not importable yet: {exc}"
    return None


def parse_metrics(text: str) -> Metrics:
    """Exposition text -> {"name{labels}": value} (labels as printed)."""
    out: Metrics = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def capture_drops(m: Metrics) -> float:
    """``sip_otel_capture_drops_total`` summed over its reasons (the series must exist)."""
    keys = [k for k in m if k.split("{", 1)[0] == "sip_otel_capture_drops_total"]
    assert keys, "no sip_otel_capture_drops_total series"
    return sum(m[k] for k in keys)


class Agent:
    """``sip-otel run`` inside ``ns`` (stderr/stdout to a log file)."""

    def __init__(
        self,
        ns: NetNs,
        tmp: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.ns = ns
        self.log_path = tmp / "agent.log"
        self._log = self.log_path.open("wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        cmd = [*ns.exec_prefix(), *prefix, str(PYTHON), "-m", "sip_otel", "run", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, port: int = 2112, deadline_s: float = 30.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/health", port)  # 503 (an OSError) until the pipeline runs
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"agent not ready:\n{self.log()}")

    def get(self, path: str, port: int = 2112) -> str:
        url = f"http://127.0.0.1:{port}{path}"
        with self.ns.entered(), urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())

    def metrics(self, port: int = 2112) -> Metrics:
        return parse_metrics(self.get("/metrics", port))

    def settled(self, port: int = 2112, quiet_s: float = 0.4, limit_s: float = 10.0) -> Metrics:
        """Metrics once ``sip_otel_frames_total`` has stopped moving for ``quiet_s``."""
        end = time.monotonic() + limit_s
        last = self.metrics(port)
        while time.monotonic() < end:
            time.sleep(quiet_s)
            now = self.metrics(port)
            if now.get("sip_otel_frames_total") == last.get("sip_otel_frames_total"):
                return now
            last = now
        return last

    def cpu_seconds(self) -> float:
        """User + system CPU the agent has used so far (/proc/PID/stat; ``ip netns exec``
        execs the agent in place, so the pid is the agent's)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_peak_kib(self) -> int:
        """Peak resident set size so far (VmHWM)."""
        return self._status_kib("VmHWM:")

    def rss_kib(self) -> int:
        """Resident set size now (VmRSS)."""
        return self._status_kib("VmRSS:")

    def _status_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
        return 0

    def stop(self) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds to exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc, time.monotonic() - t0


class Sipp:
    """A SIPp process in ``ns`` (UAS in the background, or a UAC run to completion)."""

    def __init__(self, ns: NetNs, tmp: Path, scenario: str, *args: str) -> None:
        assert SIPP is not None
        self.cmd = [*ns.exec_prefix(), SIPP, "-sf", str(SCENARIOS / scenario), "-nostdin", *args]
        self.tmp = tmp
        self.out = tmp / f"sipp-{scenario}-{time.monotonic_ns()}.out"

    def start(self) -> Sipp:
        self._fh = self.out.open("wb")
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._fh, stderr=subprocess.STDOUT, cwd=self.tmp
        )
        time.sleep(0.3)  # bound its port before the UAC starts
        assert self.proc.poll() is None, self.out.read_text(errors="replace")
        return self

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()

    def run(self, timeout_s: float = 60.0) -> None:
        proc = subprocess.run(
            [*self.cmd, "-timeout", str(int(timeout_s)), "-timeout_error"],
            capture_output=True,
            text=True,
            cwd=self.tmp,
            timeout=timeout_s + 10,
        )
        assert proc.returncode == 0, f"{self.cmd}: rc {proc.returncode}\n{proc.stdout[-3000:]}"


def uas(
    ns: NetNs, tmp: Path, scenario: str, port: int = 5060, *args: str, ip: str = "127.0.0.1"
) -> Sipp:
    return Sipp(ns, tmp, scenario, "-i", ip, "-p", str(port), *args).start()


def uac(
    ns: NetNs,
    tmp: Path,
    scenario: str,
    calls: int,
    port: int = 5060,
    *args: str,
    ip: str = "127.0.0.1",
    rate: int = 200,
    local_ip: str | None = None,
    timeout_s: float = 60.0,
) -> None:
    remote = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    Sipp(
        ns,
        tmp,
        scenario,
        remote,
        "-i",
        local_ip or ip,
        "-p",
        "5070",
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-rp",
        "1000",
        *args,
    ).run(timeout_s)
