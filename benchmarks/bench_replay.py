"""Replay throughput, whole process, against tshark; and the compiled pipeline's stage costs.

    .venv/bin/python benchmarks/bench_replay.py [--runs 5] [--messages 1000000]

1. Generates (once, into benchmarks/out/) a capture of ~1,000,000 SIPp-style messages and one
   of ~68,000 (benchmarks/gen_capture.py).
2. ``sip-otel replay BIG --format json`` as a whole process, ``--runs`` times: median wall time,
   CPU time and peak RSS (os.wait4), microseconds per message and messages per second (file
   reading and interpreter start-up included).
3. On the small file, in turn: ``tshark -q -z sip,stat`` and ``sip-otel replay``, ``--runs``
   times each: medians, the whole-process ratio on the same file, and the per-message ratio
   (tshark's µs/message on the small file over ours on the big one).
4. benchmarks/bench_stages.c, built with gcc from src/sip_otel/_c: per-stage ns/message
   (record iteration, frame decoding, SIP parsing, tracking) on the big file.
Figures are medians; the machine is shared, so compare ratios rather than absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall s, cpu s, peak RSS MiB, stdout) of one whole-process run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed (status {status})")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out.decode(errors="replace")


def medians(rows: list[tuple[float, float, float, str]]) -> tuple[float, float, float]:
    return (
        statistics.median(r[0] for r in rows),
        statistics.median(r[1] for r in rows),
        statistics.median(r[2] for r in rows),
    )


def capture(out_dir: Path, messages: int) -> Path:
    path = out_dir / f"calls-{messages}.pcap"
    if not path.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "gen_capture.py"),
                "--messages",
                str(messages),
                "-o",
                str(path),
            ],
            check=True,
        )
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=68_000)
    ap.add_argument("--out-dir", type=Path, default=HERE / "out")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    big = capture(args.out_dir, args.messages)
    small = capture(args.out_dir, args.small)
    replay = [sys.executable, "-m", "sip_otel", "replay", "--format", "json", "--progress", "never"]

    timed([*replay, str(big)])  # warm-up (page cache)
    rows = [timed([*replay, str(big)]) for _ in range(args.runs)]
    n_big = json.loads(rows[0][3])["messages"]
    wall, cpu, rss = medians(rows)
    print(f"replay {big.name}: {n_big:,} SIP messages, median of {args.runs} runs")
    print(f"  wall {wall:.3f} s  cpu {cpu:.3f} s  peak RSS {rss:.0f} MiB")
    print(
        f"  {1e6 * wall / n_big:.2f} us/message  {n_big / wall:,.0f} messages/s "
        f"(whole process: start-up and file reading included)"
    )

    tshark = shutil.which("tshark")
    if tshark:
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(timed([*replay, str(small)]))
            theirs.append(timed([tshark, "-q", "-z", "sip,stat", "-r", str(small)]))
        n_small = json.loads(ours[0][3])["messages"]
        ow, _oc, orss = medians(ours)
        tw, _tc, trss = medians(theirs)
        print(f"{small.name}: {n_small:,} SIP messages, median of {args.runs} runs each")
        print(f"  sip-otel replay      wall {ow:.3f} s  peak RSS {orss:.0f} MiB")
        print(
            f"  tshark -z sip,stat   wall {tw:.3f} s  peak RSS {trss:.0f} MiB  "
            f"({1e6 * tw / n_small:.1f} us/message)"
        )
        print(f"  same file, whole process: sip-otel {tw / ow:.1f}x faster")
        print(
            f"  per message (tshark here, sip-otel on {big.name}): "
            f"{(tw / n_small) / (wall / n_big):.1f}x faster"
        )
    else:
        print("tshark not installed: no comparison")

    gcc = shutil.which("gcc")
    if gcc:
        exe = args.out_dir / "bench_stages"
        csrc = sorted(str(p) for p in (REPO / "src" / "sip_otel" / "_c").glob("*.c"))
        subprocess.run(
            [
                gcc,
                "-O2",
                "-std=gnu11",
                "-D_GNU_SOURCE",
                f"-I{REPO / 'src' / 'sip_otel' / '_c'}",
                f"-I{REPO / 'bpf'}",
                "-o",
                str(exe),
                str(HERE / "bench_stages.c"),
                *csrc,
            ],
            check=True,
        )
        print(
            subprocess.run(
                [str(exe), str(big), str(args.runs)], check=True, capture_output=True, text=True
            ).stdout,
            end="",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
