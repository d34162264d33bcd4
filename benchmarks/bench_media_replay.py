"""Replay cost of media (``sip-otel replay --media``): one call's SDP, then N RTP packets to its
learned endpoints (50 SSRCs, both directions), replayed with and without ``--media``.

    .venv/bin/python benchmarks/bench_media_replay.py [--packets 1000000] [--runs 3]

Prints the replay's own elapsed time (the summary's ``elapsed_s``, file reading and the
pipeline, not interpreter start) per run. Without media the RTP packets are decoded and
counted as ``skipped.port``; with it each is also looked up in the endpoint table, its stream
found and updated by so_rtp_update. Figures: docs/media.md.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from sip_otel.capture.pcapfile import PcapWriter

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
T0 = 1_700_000_000 * 10**9


def frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0, src, dst)
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + u


def sip(start: str, sdp: str) -> bytes:
    body = sdp.encode()
    return (
        f"{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
        f"To: <sip:b@x>\r\nCall-ID: bench-1\r\nCSeq: 1 INVITE\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def write(path: Path, packets: int) -> None:
    with path.open("wb") as fh:
        w = PcapWriter(fh, 1)
        offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"
        answer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 5000 RTP/AVP 0\r\n"
        w.write(T0, frame(A, B, 5060, 5060, sip("INVITE sip:b@x SIP/2.0", offer)))
        w.write(T0 + 10**8, frame(B, A, 5060, 5060, sip("SIP/2.0 200 OK", answer)))
        for i in range(packets):
            ssrc, n = i % 50, i // 50
            fwd = ssrc % 2 == 0
            rtp = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, (160 * n) & 0xFFFFFFFF, ssrc)
            f = frame(A if fwd else B, B if fwd else A, 4000 if fwd else 5000,
                      5000 if fwd else 4000, rtp + b"\xd5" * 160)  # fmt: skip
            w.write(T0 + 10**9 + n * 20_000_000 + ssrc * 1000, f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "media.pcap"
        write(path, args.packets)
        for _ in range(args.runs):
            for flags in ([], ["--media"]):
                cmd = [sys.executable, "-m", "sip_otel", "replay", "--format", "json", *flags]
                out = subprocess.run([*cmd, str(path)], capture_output=True, text=True, check=True)
                d = json.loads(out.stdout)
                rtp = d.get("media", {}).get("rtp_packets", "-")
                print(f"{'media' if flags else 'off  '}  {d['elapsed_s']:.3f} s  "
                      f"frames {d['frames']}  rtp {rtp}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
