"""Live capture under replayed load: tcpreplay at fixed packet rates onto a veth the agent captures.

    sudo .venv/bin/python benchmarks/live_load.py --rates 5000,10000 --mode both
    sudo .venv/bin/python benchmarks/live_load.py --rates 7000 --sustain-s 60  # 1,000 calls/s

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

``--streams N`` deals the calls out to N captures (``gen_capture.py --split``) replayed by N
tcpreplay processes in parallel at RATE/N each, so that one sender is not the bottleneck at high
rates. ``--sustain-s S`` sizes the capture for S seconds at the first rate (calls start every
7/RATE s: 7 messages per call). Also printed per run: the agent's RSS when idle (after start,
before the replay) and its shutdown log line of capture counters (eBPF: ring_full, ring_retry,
ring_fail_attempts/ring_fail_ns, the largest ring backlog; AF_PACKET: kernel drops).
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
sys.path[:0] = [
    str(HERE),
    str(HERE.parent / "tests" / "e2e"),
    str(HERE.parent / "tests" / "capture"),
]

from e2ehelpers import Agent, capture_drops  # noqa: E402
from gen_capture import split_paths  # noqa: E402
from livenet import PYTHON, NetNs, live_skip_reason, sh  # noqa: E402

CHECKED = (
    ("INVITE", 'sip_requests_total{method="INVITE"}', "requests"),  # on the wire
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
    rss_idle_mib: float
    rss_peak_mib: float
    scrape_ms: tuple[float, float]  # p50, p99
    shutdown: str  # the agent's "capture counters: ..." log line
    load: str  # /proc/loadavg before the run

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
            f"{self.cpu_pct:.1f} % of a core, RSS idle {self.rss_idle_mib:.0f} MiB peak "
            f"{self.rss_peak_mib:.0f} MiB, scrape p50 {self.scrape_ms[0]:.1f} ms p99 "
            f"{self.scrape_ms[1]:.1f} ms; load {self.load}"
            f"{'' if self.lossless else '  <-- LOSS'}\n    {self.shutdown}"
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


SMAPS = False  # --smaps


def largest_mappings(pid: int, n: int = 6) -> str:
    """The ``n`` mappings of ``pid`` with the most resident memory (from /proc/PID/smaps)."""
    rows: list[list[object]] = []
    for ln in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = ln.split()
        if parts and "-" in parts[0] and not parts[0].endswith(":"):
            rows.append([parts[-1] if len(parts) > 5 else "[anon]", 0, 0])
        elif parts and parts[0] in ("Size:", "Rss:") and rows:
            rows[-1][1 if parts[0] == "Size:" else 2] = int(parts[1])
    rows.sort(key=lambda r: -int(str(r[2])))
    return "\n".join(
        f"    {str(name)[-48:]:48} size {int(str(size)) / 1024:7.1f} MiB, "
        f"resident {int(str(res)) / 1024:7.1f} MiB"
        for name, size, res in rows[:n]
    )


def one_run(
    mode: str, rate: int, pcaps: list[Path], counts: dict[str, object], tmp: Path
) -> Result:
    load = Path("/proc/loadavg").read_text().split()[:3]
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
            time.sleep(1.0)
            rss_idle = agent.rss_kib()
            if SMAPS:
                print("  idle:\n" + largest_mappings(agent.proc.pid), flush=True)
            scraper = Scraper(agent)
            cpu0, t0 = agent.cpu_seconds(), time.monotonic()
            scraper.start()
            share = max(1, rate // len(pcaps))
            replays = [
                subprocess.Popen(
                    [*replay_ns.exec_prefix(), "tcpreplay", "-i", "llr", f"--pps={share}", str(p)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for p in pcaps
            ]
            outputs = [r.communicate(timeout=3600)[0] for r in replays]
            cpu1, t1 = agent.cpu_seconds(), time.monotonic()
            scraper.done.set()
            scraper.join()
            for r, out in zip(replays, outputs, strict=True):
                if r.returncode != 0:
                    raise SystemExit(f"tcpreplay failed: {out}")
            m = agent.settled(limit_s=60)
            rss = agent.rss_peak_kib()
            if SMAPS:
                print("  after the replay:\n" + largest_mappings(agent.proc.pid), flush=True)
        finally:
            agent.stop()
        shutdown = next(
            (
                ln.split("capture counters: ", 1)[1]
                for ln in agent.log().splitlines()
                if "capture counters: " in ln
            ),
            "(no counters logged)",
        )
    finally:
        agent_ns.close()
        replay_ns.close()
    sent_each = [re.search(r"Actual: (\d+) packets", out) for out in outputs]
    secs = [
        re.search(r"Actual: \d+ packets \(\d+ bytes\) sent in ([\d.]+) seconds", out)
        for out in outputs
    ]
    sent = sum(int(x.group(1)) for x in sent_each if x) if all(sent_each) else -1
    longest = max((float(x.group(1)) for x in secs if x), default=0.0)
    got = {}
    for name, metric, table in CHECKED:
        want = counts[table]
        assert isinstance(want, dict)
        got[name] = (int(m.get(metric, 0)), int(want.get(name, 0)))
    return Result(
        mode=mode,
        rate=rate,
        sent=sent,
        achieved_pps=sent / longest if longest > 0 and sent >= 0 else float("nan"),
        captured=int(m.get("sip_otel_frames_total", 0)),
        drops=int(capture_drops(m)),
        counts=got,
        cpu_pct=100 * (cpu1 - cpu0) / (t1 - t0),
        rss_idle_mib=rss_idle / 1024,
        rss_peak_mib=rss / 1024,
        scrape_ms=scraper.percentiles(),
        shutdown=shutdown,
        load=" ".join(load),
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
    ap.add_argument(
        "--streams", type=int, default=1, help="tcpreplay processes in parallel (RATE/N each)"
    )
    ap.add_argument(
        "--sustain-s",
        type=float,
        default=0.0,
        help="size the capture for this many seconds at the first rate (overrides --messages)",
    )
    ap.add_argument("--keep-going", action="store_true", help="do not stop at the first loss")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--smaps", action="store_true", help="print the agent's largest mappings after each replay"
    )
    args = ap.parse_args()
    global SMAPS
    SMAPS = args.smaps
    reason = live_skip_reason(need_bcc=args.mode != "afpacket")
    if reason or shutil.which("tcpreplay") is None:
        print(f"cannot run: {reason or 'tcpreplay not installed'}", file=sys.stderr)
        return 2
    rates = sorted(int(r) for r in args.rates.split(","))
    messages = int(args.sustain_s * rates[0]) if args.sustain_s > 0 else args.messages
    interval_ms = 7000.0 / rates[0] if args.sustain_s > 0 else 0.5
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
                str(messages),
                "--mix",
                "--tcp-percent",
                str(args.tcp_percent),
                "--interval-ms",
                f"{interval_ms:g}",
                "--split",
                str(args.streams),
                "--counts",
                str(counts_path),
                "-o",
                str(pcap),
            ],
            check=True,
        )
        pcaps = split_paths(pcap, args.streams)
        counts = json.loads(counts_path.read_text())
        print(
            f"capture: {counts['frames']} frames, {counts['messages']} SIP messages, "
            f"{args.tcp_percent} % of calls over TCP, {args.streams} stream(s)",
            flush=True,
        )
        for mode in modes:
            for rate in rates:
                res = one_run(mode, rate, pcaps, counts, tmp)
                results.append(res)
                print(res.line(), flush=True)
                if not res.lossless and not args.keep_going:
                    break
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
