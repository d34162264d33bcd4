"""Soak: SIPp calls for minutes on the eBPF path; the agent's memory must stay flat, counts exact.

    sudo .venv/bin/python benchmarks/soak.py                       # 500 calls/s for 600 s
    sudo .venv/bin/python benchmarks/soak.py --rate 100 --duration 20 --warmup 5

Runs ``sip-otel run --interface lo --capture-mode ebpf`` and a SIPp UAS/UAC pair in a network
namespace of its own (as benchmarks/bench_live.py; a socket filter on ``lo`` sees each packet
twice and the capture keeps one copy). The UAC places ``--rate`` calls/s for ``--duration`` s
(INVITE / 100 / 180 / 200 / ACK, a hold of ``--hold-ms``, BYE / 200:
tests/e2e/scenarios/uac_call_hold.xml). Every ``--sample-s`` seconds it reads the agent's
resident memory (VmRSS, /proc/PID/status); once the calls are done and the agent's counters
have settled it scrapes /metrics and reports:

  RSS at the end of ``--warmup`` seconds, at the end of the traffic and after it settled, the
  growth after warm-up (end of traffic - warm-up), the largest sample; SIPp's own counts (calls
  created, successful, failed, retransmissions: its -trace_stat file) against the agent's
  ``sip_exporter_invite_total``, ``sip_exporter_200_total``, ``sip_exporter_bye_total`` and
  ``sip_exporter_packets_total`` (7 messages per call), and ``sip_otel_capture_drops_total``.

Acceptance (exit 0; else 1): counts exact, zero drops, and -- when ``--max-growth-mib`` is given
(default 5) -- RSS growth after warm-up at most that. ``--json`` also writes the result. Needs
root, bcc and sipp (Debian sip-tester), as the e2e tests.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [
    str(HERE.parent / "tests" / "e2e"),
    str(HERE.parent / "tests" / "capture"),
    str(HERE.parent / "tests"),
]

from e2ehelpers import SCENARIOS, SIPP, Agent, capture_drops, e2e_skip_reason, uas  # noqa: E402
from livenet import NetNs  # noqa: E402

MESSAGES_PER_CALL = 7  # INVITE 100 180 200 ACK BYE 200
MIB = 1024.0


@dataclass
class SoakResult:
    rate: int
    duration_s: float
    hold_ms: int
    mode: str
    load_before: str
    load_after: str = ""
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, VmRSS KiB)
    warmup_s: float = 60.0
    rss_settled_kib: int = 0
    rss_peak_kib: int = 0  # VmHWM
    sipp: dict[str, int] = field(default_factory=dict)
    agent: dict[str, float] = field(default_factory=dict)
    traffic_s: float = 0.0
    agent_rc: int | None = None

    def rss_at(self, t: float) -> int:
        """The first sample at or after ``t`` seconds (the last one if none is)."""
        for ts, kib in self.samples:
            if ts >= t:
                return kib
        return self.samples[-1][1] if self.samples else 0

    @property
    def rss_warm_kib(self) -> int:
        return self.rss_at(self.warmup_s)

    @property
    def rss_end_kib(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    @property
    def growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_warm_kib

    @property
    def rss_max_kib(self) -> int:
        return max((kib for _t, kib in self.samples), default=0)

    def expected(self) -> dict[str, int]:
        """The agent's counters as SIPp's counts predict them (retransmissions are on the wire
        and counted by the per-message counters, never by the attempt counter)."""
        calls = self.sipp.get("successful", 0)
        retrans = self.sipp.get("retransmissions", 0)
        return {
            "sip_exporter_invite_total": self.sipp.get("created", 0),
            "sip_exporter_bye_total": calls,
            "sip_exporter_200_total": 2 * calls,
            "sip_exporter_packets_total": MESSAGES_PER_CALL * calls,
            "retransmissions": retrans,
        }

    def mismatches(self) -> list[str]:
        want = self.expected()
        out = []
        if want.pop("retransmissions"):
            out.append(f"SIPp reports {self.sipp['retransmissions']} retransmissions")
        if self.sipp.get("failed", 0):
            out.append(f"SIPp reports {self.sipp['failed']} failed calls")
        for name, value in want.items():
            got = self.agent.get(name, -1)
            if got != value:
                out.append(f"{name} {got:.0f}, expected {value}")
        if self.agent.get("capture_drops", -1) != 0:
            out.append(f"capture drops {self.agent.get('capture_drops', -1):.0f}")
        if self.agent_rc != 0:
            out.append(f"agent exit status {self.agent_rc}")
        return out

    def report(self) -> str:
        lines = [
            f"soak: {self.rate} calls/s for {self.duration_s:g} s (hold {self.hold_ms} ms), "
            f"{self.mode}; traffic took {self.traffic_s:.1f} s; load average before "
            f"{self.load_before}, after {self.load_after}",
            f"  RSS at {self.warmup_s:g} s {self.rss_warm_kib / MIB:.1f} MiB, end of traffic "
            f"{self.rss_end_kib / MIB:.1f} MiB, growth after warm-up "
            f"{self.growth_kib / MIB:+.2f} MiB; largest sample {self.rss_max_kib / MIB:.1f} MiB, "
            f"VmHWM {self.rss_peak_kib / MIB:.1f} MiB, settled {self.rss_settled_kib / MIB:.1f} "
            f"MiB ({len(self.samples)} samples)",
            "  SIPp: "
            + ", ".join(f"{k} {v}" for k, v in self.sipp.items())
            + "; agent: "
            + ", ".join(
                f"{k.removeprefix('sip_exporter_')} {v:.0f}" for k, v in self.agent.items()
            ),
        ]
        bad = self.mismatches()
        lines.append("  counts exact, zero drops" if not bad else "  MISMATCH: " + "; ".join(bad))
        return "\n".join(lines)


def _sipp_stats(path: Path) -> dict[str, int]:
    """The last row of SIPp's -trace_stat file (``;`` separated, cumulative columns ``(C)``)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    if not rows:
        raise RuntimeError(f"SIPp wrote no statistics to {path}")
    last = rows[-1]

    def col(name: str) -> int:
        return int(str(last.get(name, "0")).strip() or 0)

    return {
        "created": col("TotalCallCreated"),
        "successful": col("SuccessfulCall(C)"),
        "failed": col("FailedCall(C)"),
        "retransmissions": col("Retransmissions(C)"),
    }


def _uac(
    ns: NetNs, tmp: Path, rate: int, calls: int, hold_ms: int, timeout_s: float
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the UAC (output in ``tmp/uac.out``); returns it and its statistics file."""
    assert SIPP is not None
    stats = tmp / "uac_stats.csv"
    cmd = [
        *ns.exec_prefix(),
        SIPP,
        "-sf",
        str(SCENARIOS / "uac_call_hold.xml"),
        "-nostdin",
        "127.0.0.1:5060",
        "-i",
        "127.0.0.1",
        "-p",
        "5070",
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-rp",
        "1000",
        "-d",
        str(hold_ms),
        "-l",
        str(max(100, rate * (2 + hold_ms // 1000) * 2)),
        "-key",
        "padding",
        "x",
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "10",
        "-timeout",
        str(int(timeout_s)),
        "-timeout_error",
    ]
    with (tmp / "uac.out").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    return proc, stats


def soak(
    rate: int,
    duration_s: float,
    hold_ms: int = 100,
    warmup_s: float = 60.0,
    sample_s: float = 5.0,
    mode: str = "ebpf",
    progress: bool = False,
) -> SoakResult:
    """Run one soak (see the module doc) and return what it measured."""
    calls = int(rate * duration_s)
    res = SoakResult(
        rate=rate,
        duration_s=duration_s,
        hold_ms=hold_ms,
        mode=mode,
        warmup_s=warmup_s,
        load_before=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
    )
    ns = NetNs("s")
    try:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = Path(tmp_s)
            agent = Agent(ns, tmp, "--interface", "lo", "--capture-mode", mode)
            try:
                agent.wait_ready(deadline_s=120)
                server = uas(ns, tmp, "uas_call.xml", 5060)
                try:
                    timeout_s = duration_s * 2 + 120
                    proc, stats = _uac(ns, tmp, rate, calls, hold_ms, timeout_s)
                    t0 = time.monotonic()
                    next_sample = t0
                    while proc.poll() is None:
                        now = time.monotonic()
                        if now >= next_sample:
                            res.samples.append((round(now - t0, 1), agent.rss_kib()))
                            next_sample += sample_s
                            if progress and len(res.samples) % 12 == 1:
                                t, kib = res.samples[-1]
                                print(f"  {t:6.0f} s  RSS {kib / MIB:.1f} MiB", flush=True)
                        if now - t0 > timeout_s + 30:
                            proc.kill()
                        time.sleep(min(0.5, max(0.0, next_sample - time.monotonic())))
                    res.traffic_s = time.monotonic() - t0
                    res.samples.append((round(res.traffic_s, 1), agent.rss_kib()))
                    if proc.returncode != 0:
                        out = (tmp / "uac.out").read_text(errors="replace")[-2000:]
                        print(f"SIPp UAC exit status {proc.returncode}:\n{out}", file=sys.stderr)
                    res.sipp = _sipp_stats(stats)
                finally:
                    server.stop()
                m = agent.settled(limit_s=60)
                res.rss_settled_kib = agent.rss_kib()
                res.rss_peak_kib = agent.rss_peak_kib()
                for name in (
                    "sip_exporter_invite_total",
                    "sip_exporter_200_total",
                    "sip_exporter_bye_total",
                    "sip_exporter_packets_total",
                ):
                    res.agent[name] = m.get(name, -1)
                res.agent["capture_drops"] = capture_drops(m)
            finally:
                res.agent_rc, _ = agent.stop()
    finally:
        ns.close()
    res.load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=500, help="calls per second (default 500)")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of calls (600)")
    ap.add_argument("--hold-ms", type=int, default=100, help="call hold after ACK (100 ms)")
    ap.add_argument("--warmup", type=float, default=60.0, help="RSS baseline after (60 s)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sample period (5 s)")
    ap.add_argument("--mode", choices=("ebpf", "afpacket"), default="ebpf")
    ap.add_argument(
        "--max-growth-mib", type=float, default=5.0, help="RSS growth limit (5; < 0: none)"
    )
    ap.add_argument("--json", help="also write the result (with every RSS sample) here")
    args = ap.parse_args()
    reason = e2e_skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    res = soak(
        args.rate,
        args.duration,
        args.hold_ms,
        args.warmup,
        args.sample_s,
        args.mode,
        progress=True,
    )
    print(res.report(), flush=True)
    if args.json:
        data = asdict(res) | {
            "rss_warm_kib": res.rss_warm_kib,
            "rss_end_kib": res.rss_end_kib,
            "growth_kib": res.growth_kib,
            "rss_max_kib": res.rss_max_kib,
        }
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    ok = not res.mismatches()
    if args.max_growth_mib >= 0 and res.growth_kib > args.max_growth_mib * MIB:
        print(f"RSS grew {res.growth_kib / MIB:.2f} MiB > {args.max_growth_mib:g} MiB")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
