"""Live capture under replayed load: tcpreplay at fixed packet rates onto a veth the agent captures.

    sudo .venv/bin/python benchmarks/live_load.py --rates 5000,10000 --mode both

Builds a capture with ``benchmarks/gen_capture.py`` (mixed outcomes: 200 / 486 / 503 / CANCEL;
``--tcp-percent`` of the calls over TCP; 127.0.0.0/8 addresses only) and its own message counts,
then for each capture path and each rate (ascending): creates two network namespaces joined by
a veth (``llr`` in the replay namespace, ``lla`` in the agent's), starts ``sip-otel run
--interface lla`` in the agent's namespace, replays the capture with ``tcpreplay --pps RATE``
out of ``llr``, and reports:

  packets sent (tcpreplay) and captured (``sip_otel_frames_total``), kernel/ring drops
  (``sip_otel_capture_drops_total``), INVITE / BYE / 200 counted against the capture's own
  counts, the agent's CPU during the replay (% of one core, /proc/PID/stat), its peak RSS
  (VmHWM), and the /metrics scrape latency p50/p99 (scraped every 100 ms during the replay).

It stops at the first rate that loses anything (``--keep-going`` runs every rate). Both ends of
the veth live in namespaces of their own: nothing touches the host's interfaces. The frames carry
127.0.0.0/8 addresses, which the receiving stack drops as martians -- after the packet taps, so
the capture sees every frame. Needs root, bcc (eBPF path) and tcpreplay.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "e2e"), str(HERE.parent / "tests" / "capture")]

from e2ehelpers import Agent  # noqa: E402
from livenet import PYTHON, NetNs, live_skip_reason, sh  # noqa: E402

CHECKED = (
    ("INVITE", "sip_exporter_invite_total", "requests"),
    ("BYE", "sip_exporter_bye_total", "requests"),
    ("200", "sip_exporter_200_total", "responses"),
)


@dataclass
class Result:
    mode: str
    rate: int
    sent: int
    achieved_pps: float
    captured: int
    drops: int
    counts: dict[str, tuple[int, int]]  # name -> (counted, expected)
    cpu_pct: float
    rss_peak_mib: float
    scrape_ms: tuple[float, float]  # p50, p99

    @property
    def lossless(self) -> bool:
        return (
            self.drops == 0
            and self.captured == self.sent
            and all(got == want for got, want in self.counts.values())
        )

    def line(self) -> str:
        counts = ", ".join(f"{k} {got}/{want}" for k, (got, want) in self.counts.items())
        return (
            f"{self.mode:8} {self.rate:>7} pkt/s (achieved {self.achieved_pps:,.0f}): sent "
            f"{self.sent}, captured {self.captured}, drops {self.drops}; {counts}; CPU "
            f"{self.cpu_pct:.1f} % of a core, peak RSS {self.rss_peak_mib:.0f} MiB, scrape "
            f"p50 {self.scrape_ms[0]:.1f} ms p99 {self.scrape_ms[1]:.1f} ms"
            f"{'' if self.lossless else '  <-- LOSS'}"
        )


class Scraper(threading.Thread):
    """GET /metrics every ``period`` seconds; keeps each request's wall time."""

    def __init__(self, agent: Agent, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.agent, self.period = agent, period
        self.times: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            t0 = time.perf_counter()
            try:
                self.agent.get("/metrics")
                self.times.append(time.perf_counter() - t0)
            except OSError:
                pass
            self.done.wait(self.period)

    def percentiles(self) -> tuple[float, float]:
        if not self.times:
            return (float("nan"), float("nan"))
        ts = sorted(self.times)
        p99 = ts[min(len(ts) - 1, int(0.99 * len(ts)))]
        return (1000 * statistics.median(ts), 1000 * p99)


def one_run(mode: str, rate: int, pcap: Path, counts: dict[str, object], tmp: Path) -> Result:
    agent_ns, replay_ns = NetNs("la"), NetNs("lr")
    try:
        sh(
            "ip",
            "link",
            "add",
            "lla",
            "netns",
            agent_ns.name,
            "type",
            "veth",
            "peer",
            "name",
            "llr",
            "netns",
            replay_ns.name,
        )
        agent_ns.ip("link", "set", "lla", "up")
        replay_ns.ip("link", "set", "llr", "up")
        agent = Agent(agent_ns, tmp, "--interface", "lla", "--capture-mode", mode)
        try:
            agent.wait_ready(deadline_s=120)
            scraper = Scraper(agent)
            cpu0, t0 = agent.cpu_seconds(), time.monotonic()
            scraper.start()
            replay = subprocess.run(
                [*replay_ns.exec_prefix(), "tcpreplay", "-i", "llr", f"--pps={rate}", str(pcap)],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            cpu1, t1 = agent.cpu_seconds(), time.monotonic()
            scraper.done.set()
            scraper.join()
            if replay.returncode != 0:
                raise SystemExit(f"tcpreplay failed: {replay.stderr or replay.stdout}")
            m = agent.settled(limit_s=60)
            rss = agent.rss_peak_kib()
        finally:
            agent.stop()
    finally:
        agent_ns.close()
        replay_ns.close()
    sent = re.search(r"Actual: (\d+) packets", replay.stdout)
    pps = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", replay.stdout)
    got = {}
    for name, metric, table in CHECKED:
        want = counts[table]
        assert isinstance(want, dict)
        got[name] = (int(m.get(metric, 0)), int(want.get(name, 0)))
    return Result(
        mode=mode,
        rate=rate,
        sent=int(sent.group(1)) if sent else -1,
        achieved_pps=float(pps.group(1)) if pps else float("nan"),
        captured=int(m.get("sip_otel_frames_total", 0)),
        drops=int(m.get("sip_otel_capture_drops_total", 0)),
        counts=got,
        cpu_pct=100 * (cpu1 - cpu0) / (t1 - t0),
        rss_peak_mib=rss / 1024,
        scrape_ms=scraper.percentiles(),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rates",
        default="5000,10000",
        help="packets/s, comma list, run in ascending order (default 5000,10000)",
    )
    ap.add_argument("--mode", choices=("ebpf", "afpacket", "both"), default="both")
    ap.add_argument("--messages", type=int, default=50_000, help="SIP messages in the capture")
    ap.add_argument("--tcp-percent", type=int, default=20)
    ap.add_argument("--keep-going", action="store_true", help="do not stop at the first loss")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    reason = live_skip_reason(need_bcc=args.mode != "afpacket")
    if reason or shutil.which("tcpreplay") is None:
        print(f"cannot run: {reason or 'tcpreplay not installed'}", file=sys.stderr)
        return 2
    rates = sorted(int(r) for r in args.rates.split(","))
    modes = ("ebpf", "afpacket") if args.mode == "both" else (args.mode,)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pcap, counts_path = tmp / "load.pcap", tmp / "load.json"
        subprocess.run(
            [
                str(PYTHON),
                str(HERE / "gen_capture.py"),
                "--messages",
                str(args.messages),
                "--mix",
                "--tcp-percent",
                str(args.tcp_percent),
                "--interval-ms",
                "0.5",
                "--counts",
                str(counts_path),
                "-o",
                str(pcap),
            ],
            check=True,
        )
        counts = json.loads(counts_path.read_text())
        print(
            f"capture: {counts['frames']} frames, {counts['messages']} SIP messages, "
            f"{args.tcp_percent} % of calls over TCP",
            flush=True,
        )
        for mode in modes:
            for rate in rates:
                res = one_run(mode, rate, pcap, counts, tmp)
                results.append(res)
                print(res.line(), flush=True)
                if not res.lossless and not args.keep_going:
                    break
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
