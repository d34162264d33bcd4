"""Cost of the eBPF filter's media path per RTP packet (docs/media.md, "Live path").

    sudo .venv/bin/python benchmarks/bench_media_filter.py [--rate 50000] [--streams 1000]
        [--seconds 3] [--modes nomedia,media_noeps,media]

In a network namespace of its own, loads the filter through the real loader and sends RTP over
``lo`` from one socket at ``--rate`` packets/s, round-robin to ``--streams`` destinations (one
listening socket each, so no ICMP), for each mode:

  none         no filter attached
  nomedia      the filter without -DMEDIA: RTP dropped at the port test
  media_noeps  with -DMEDIA but no endpoint learned: one load and one lookup more, then dropped
  media        with -DMEDIA and every destination learned: RTP counted into rtp_streams

Reports the filter's run time per packet (``BPF_ENABLE_STATS``; on ``lo`` the filter runs twice
per packet, the outgoing copy returning at once) and the sender's CPU per packet (user +
system; the loopback softirq runs in the sender's context). Needs root and bcc. BPF run-time
statistics are on (for every program on the host) only while this runs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "capture")]

from livenet import NetNs  # noqa: E402

from sip_otel.capture.base import resolve_interfaces  # noqa: E402
from sip_otel.capture.bpfsys import bpf_syscall_number  # noqa: E402
from sip_otel.capture.ebpf import EbpfCapture  # noqa: E402

BPF_ENABLE_STATS = 32
MEP_KEY = struct.Struct("=BxH16s")  # so_mep_key
MEP_VAL = struct.Struct("=BB2x16s16I")  # so_mep_val
STREAM_KEY_SIZE = 44
BASE_PORT = 20000
LO4 = socket.inet_aton("127.0.0.1").ljust(16, b"\0")


def enable_stats() -> int:
    class Attr(ctypes.Structure):
        _fields_ = [("type", ctypes.c_uint32)]  # BPF_STATS_RUN_TIME = 0

    libc = ctypes.CDLL(None, use_errno=True)
    attr = Attr(0)
    fd = int(libc.syscall(bpf_syscall_number(), BPF_ENABLE_STATS, ctypes.byref(attr), 4))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
    return fd


def prog_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a program, from its fdinfo."""
    info = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    return int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0))


def run(mode: str, rate: int, streams: int, seconds: float) -> dict[str, Any]:
    cap = None
    if mode != "none":
        cap = EbpfCapture(
            resolve_interfaces(["lo"]),
            frozenset({5060}),
            1 << 20,
            media=mode.startswith("media"),
            media_max_endpoints=2 * streams,
            media_max_streams=2 * streams,
        )
        if mode == "media":
            val = MEP_VAL.pack(0, 1, bytes(16), 8000, *[0] * 15)  # PT 0 at 8 kHz
            cap.media_apply(
                [(MEP_KEY.pack(4, BASE_PORT + 2 * i, LO4), val) for i in range(streams)]
            )
    packets = [
        (
            struct.pack("!BBHII", 0x80, 0, 0, 0, 0x1000 + i) + b"\xd5" * 160,
            ("127.0.0.1", BASE_PORT + 2 * i),
        )
        for i in range(streams)
    ]
    listeners = []
    for i in range(streams):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        r.bind(("127.0.0.1", BASE_PORT + 2 * i))
        listeners.append(r)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 30000))
    before = prog_stats(cap.prog_fd) if cap is not None else (0, 0)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    sent = 0
    while (now := time.monotonic() - t0) < seconds:
        target = int(now * rate) + rate // 1000
        while sent < target:
            payload, dst = packets[sent % streams]
            sender.sendto(payload, dst)
            sent += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
    out: dict[str, Any] = {
        "mode": mode,
        "packets": sent,
        "pps": round(sent / elapsed),
        "sender_cpu_us_per_packet": round(cpu / sent * 1e6, 2),
    }
    if cap is not None:
        after = prog_stats(cap.prog_fd)
        out["filter_ns_per_packet"] = round((after[0] - before[0]) / sent)
        counters = cap.counters()
        out["rtp_counted"] = counters["rtp_counted"]
        out["streams"] = len(cap.media_read()[0]) // STREAM_KEY_SIZE
        cap.close()
    sender.close()
    for r in listeners:
        r.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rate", type=int, default=50_000, help="RTP packets per second")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--modes", default="nomedia,media_noeps,media")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespace, eBPF)", file=sys.stderr)
        return 2
    ns = NetNs("bench")
    try:
        with ns.entered():
            stats_fd = enable_stats()
            try:
                for mode in args.modes.split(","):
                    print(run(mode, args.rate, args.streams, args.seconds), flush=True)
            finally:
                os.close(stats_fd)
    finally:
        ns.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
