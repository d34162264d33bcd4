"""Live capture cost: SIPp calls on ``lo`` in a network namespace, the agent's CPU and memory.

    sudo .venv/bin/python benchmarks/bench_live.py --rate 1000 --calls 10000 [--mode ebpf]

Runs the agent (``sip-otel run --interface lo``) and a SIPp UAS/UAC pair in a namespace of its
own, and reports: calls counted by the agent (``sip_exporter_invite_total``) against calls
sent, kernel/ring drops, the agent's CPU during the traffic (% of one core, from
/proc/PID/stat over the wall time of the SIPp run), its CPU per SIP message, idle CPU over the
same length of time before the traffic, its RSS when idle (after that idle time) and its peak
RSS. Needs root, bcc and sipp (as the
e2e tests).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [
    str(HERE.parent / "tests" / "e2e"),
    str(HERE.parent / "tests" / "capture"),
    str(HERE.parent / "tests"),
]

from e2ehelpers import Agent, capture_drops, e2e_skip_reason, uac, uas  # noqa: E402
from livenet import NetNs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1000, help="calls per second")
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--mode", choices=("ebpf", "afpacket"), default="ebpf")
    args = ap.parse_args()
    reason = e2e_skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    ns = NetNs("b")
    try:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = Path(tmp_s)
            agent = Agent(ns, tmp, "--interface", "lo", "--capture-mode", args.mode)
            try:
                agent.wait_ready()
                server = uas(ns, tmp, "uas_call.xml", 5060)
                try:
                    traffic_s = args.calls / args.rate + 1.0  # + the 1 s hold of the last call
                    cpu0, t0 = agent.cpu_seconds(), time.monotonic()
                    time.sleep(min(traffic_s, 10.0))
                    idle_cpu = (agent.cpu_seconds() - cpu0) / (time.monotonic() - t0)
                    idle_rss = agent.rss_kib()
                    cpu0, t0 = agent.cpu_seconds(), time.monotonic()
                    uac(
                        ns,
                        tmp,
                        "uac_call.xml",
                        args.calls,
                        5060,
                        "-key",
                        "padding",
                        "x",
                        "-l",
                        str(max(100, args.rate * 2)),
                        rate=args.rate,
                        timeout_s=traffic_s + 60,
                    )
                    cpu1, t1 = agent.cpu_seconds(), time.monotonic()
                finally:
                    server.stop()
                m = agent.settled(limit_s=60)
                rss = agent.rss_peak_kib()
            finally:
                rc, _ = agent.stop()
    finally:
        ns.close()
    msgs = m.get("sip_exporter_packets_total", 0)
    busy = (cpu1 - cpu0) / (t1 - t0)
    print(f"mode {args.mode}, {args.rate} calls/s x {args.calls} calls, agent exit {rc}")
    print(
        f"  counted INVITE {m.get('sip_exporter_invite_total', 0):.0f} of {args.calls}, "
        f"SIP messages {msgs:.0f} (7 per call: {7 * args.calls}), capture drops "
        f"{capture_drops(m):.0f}"
    )
    print(
        f"  agent CPU during traffic {100 * busy:.1f} % of one core over {t1 - t0:.1f} s "
        f"({1e6 * (cpu1 - cpu0) / max(msgs, 1):.1f} us CPU per message); idle "
        f"{100 * idle_cpu:.1f} %; RSS idle {idle_rss / 1024:.0f} MiB, peak {rss / 1024:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
