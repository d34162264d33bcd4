"""Per-event cost of reading the eBPF ring: bcc's ctypes callback vs our mmap reader.

    sudo .venv/bin/python benchmarks/bench_ring.py --events 100000

Runs in a private network namespace (so only our packets hit the filter): compiles
bpf/sip_filter.c, fills the ring with N small UDP packets to port 5060 on ``lo`` while nobody
reads, then times draining it. Repeated for:
  bcc-bare   ring_buffer_consume() with a callback that does nothing (floor of the bcc path)
  bcc-frame  the callback copies the record (ctypes.string_at) and builds a Frame
  mmap       capture.ebpf.RingReader.read(): unpack header, slice-copy the packet, build a Frame
Prints CPU microseconds (process time: waiting for a shared CPU is not counted) per event,
median and min of --runs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sip_otel.capture.base import resolve_interfaces  # noqa: E402
from sip_otel.capture.ebpf import EbpfCapture  # noqa: E402
from sip_otel.net.types import LINKTYPE_ETHERNET, Frame  # noqa: E402

NS = f"sot-bench-{os.getpid()}"
REC = struct.Struct("<QIIIHHHHI")


def enter_netns() -> None:
    subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{NS}", "rb") as f:
        if libc.setns(f.fileno(), 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")


def fill(n: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(payload, ("127.0.0.1", 5060))


class BccReader:
    """bcc's ring reader; opened once (a map can be added to bcc's manager only once)."""

    def __init__(self, cap: EbpfCapture) -> None:
        self.bpf = cap._bpf
        self.build = False
        self.got: list[Frame] = []
        self.bpf[b"events"].open_ring_buffer(self._cb)

    def _cb(self, _ctx: Any, data: Any, size: int) -> int:
        if self.build:
            raw = ctypes.string_at(data, size)
            _ts, ifindex, _l, _c, pkt_type, _t, _p, _r0, _r1 = REC.unpack_from(raw, 0)
            self.got.append(Frame(_ts, LINKTYPE_ETHERNET, raw[32:], ifindex, pkt_type))
        return 0

    def run(self, n: int, payload: bytes, build: bool) -> float:
        self.build = build
        self.got = []
        fill(n, payload)
        t0 = time.process_time()
        self.bpf.ring_buffer_consume()
        dt = time.process_time() - t0
        if build:
            assert len(self.got) == n, (len(self.got), n)
        return dt / n * 1e6


def run_mmap(cap: EbpfCapture, n: int, payload: bytes) -> float:
    fill(n, payload)
    t0 = time.process_time()
    total = 0
    while True:
        frames = cap.read(4096)
        if not frames:
            break
        total += len(frames)
    dt = time.process_time() - t0
    assert total == n, (total, n)
    return dt / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--payload", type=int, default=400, help="UDP payload bytes")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespace, eBPF)", file=sys.stderr)
        return 2
    enter_netns()
    try:
        payload = b"x" * args.payload
        cap = EbpfCapture(resolve_interfaces(["lo"]), frozenset({5060}), 64 << 20)
        results: dict[str, list[float]] = {"bcc-bare": [], "bcc-frame": [], "mmap": []}
        try:
            for _ in range(args.runs):
                results["mmap"].append(run_mmap(cap, args.events, payload))
            # bcc's reader shares the kernel consumer position with ours: run it last.
            bcc = BccReader(cap)
            for _ in range(args.runs):
                results["bcc-bare"].append(bcc.run(args.events, payload, build=False))
            for _ in range(args.runs):
                results["bcc-frame"].append(bcc.run(args.events, payload, build=True))
            drops = cap.drops()
        finally:
            cap.close()
        for name, vals in results.items():
            print(f"{name:10s} median {statistics.median(vals):6.3f} min {min(vals):6.3f} us/event "
                  f"(runs: {', '.join(f'{v:.3f}' for v in vals)})")
        print(f"events per run {args.events}, payload {args.payload} B, kernel drops {drops}")
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
