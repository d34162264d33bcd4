"""Replay throughput: generate (once) a capture of SIPp-style calls and time `sip-otel replay`.

    python benchmarks/bench_replay.py --messages 1000000

Prints messages/s as reported by the replay itself (pipeline time, file reading included,
interpreter start excluded) and the wall time of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--out-dir", default=str(HERE / "out"))
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    cap = Path(args.out_dir) / f"calls-{args.messages}.pcap"
    if not cap.exists():
        subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "--messages",
                        str(args.messages), "-o", str(cap)], check=True)
    for _ in range(args.runs):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "sip_otel", "replay", str(cap),
                              "--format", "json", "--progress", "never"],
                             check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t
        s = json.loads(out.stdout)
        print(f"{cap.name}: {s['frames']} frames, {s['messages']} messages in "
              f"{s['elapsed_s']:.2f} s -> {s['messages_per_s']:,.0f} messages/s "
              f"(wall {wall:.2f} s incl. start-up); SER {s['rfc6076'].get('ser')} "
              f"dialogs {s['dialogs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
