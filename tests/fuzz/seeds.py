"""Seed inputs for the fuzzer, made from the real captures in ../shared/pcaps.

For every capture (the 89 files at the top of the folder):

- whole-capture seeds: the file's bytes behind a flags byte with bit 0 set (harness.py), fed
  through the replay path (PcapCursor), cut to ``max_len``;
- per-packet seeds: its frames, each as its own record, in consecutive runs of at most
  ``max_len`` bytes (up to ``per_capture`` runs per file), with the flags byte cycling through
  the limit profiles and the records switch so that each profile meets real traffic;
- live-path seeds: its first Ethernet frames as an eBPF ring and as TPACKET_V3 blocks.

Plus synthetic SIP-over-WebSocket connections (no capture in the corpus has one), built with
the tests' own frame builders (tests/netbuild.py), and the synthetic SIP conversations of
flows.py (dialogs with re-INVITE/UPDATE and BYE retry, challenges, CANCEL, failures,
registrations, fragments) under every limit profile.

The seeds are derived from files in ../shared (never committed): ``python seeds.py OUTDIR``
writes them, fuzz_run.py does it when its seed folder is empty.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from flows import flow_seeds
from harness import (
    FLAG_ALL_PORTS,
    FLAG_CAPTURE,
    FLAG_MEDIA,
    FLAG_RECORDS,
    encode_frames,
    encode_ring,
    encode_tpacket,
)

from sip_otel.capture.pcapfile import CaptureFileError, PcapReader
from sip_otel.net.types import Frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netbuild import (
    ACK,
    DST4,
    INVITE,
    OK,
    PSH,
    SRC4,
    SYN,
    WS_ACCEPT,
    WS_UPGRADE,
    eth_tcp4,
    ws_frame,
)

PCAPS = Path(__file__).resolve().parents[3] / "shared" / "pcaps"
SUFFIXES = (".pcap", ".pcapng", ".cap")


def captures(folder: Path = PCAPS) -> list[Path]:
    """The corpus captures; none when ../shared is absent (the synthetic seeds still are)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def _frames(path: Path) -> list[Frame]:
    frames: list[Frame] = []
    try:
        with PcapReader(str(path)) as reader:
            for batch in reader.batches():
                frames.extend(batch)
    except CaptureFileError:
        pass  # the frames before the damage are still good seeds
    return frames


def seeds_for(path: Path, max_len: int, per_capture: int, index: int) -> list[bytes]:
    # every other capture: read in small regions with media on, its frame runs with media on
    media = FLAG_MEDIA if index & 1 else 0
    out = [bytes([FLAG_CAPTURE | media]) + path.read_bytes()[: max_len - 1]]
    run: list[Frame] = []
    size = 0
    k = 0

    def flush() -> None:
        nonlocal run, size, k
        if run:
            flags = (((index + k) & 3) << 2) | (FLAG_RECORDS if k & 1 else 0) | media
            out.append(encode_frames(run, flags))
            k += 1
        run, size = [], 0

    for f in _frames(path):
        if k >= per_capture:
            break
        need = 13 + min(len(f.data), 0xFFFF)
        if need > max_len - 1:
            continue
        if size + need > max_len - 1:
            flush()
        run.append(f)
        size += need
    if k < per_capture:
        flush()
    first = [f for f in _frames(path)[:24] if f.linktype == 1 and len(f.data) < 1500]
    if first:
        out.append(encode_ring(first[:8], (index & 3) << 2))
        out.append(encode_tpacket(first, (index & 3) << 2)[:max_len])
    return out


def websocket_seeds() -> list[bytes]:
    """SIP over WebSocket on port 5060 and (all ports) 80: handshake, masked INVITE split over
    segments, empty and control frames, an unmasked 200 back, a close."""
    key = b"\x37\xfa\x21\x3d"
    out = []
    for port, flags in ((5060, 0), (80, FLAG_ALL_PORTS), (5060, FLAG_RECORDS | 4)):
        c, s = 1001, 5001

        def cl(payload: bytes, seq: int, fl: int = ACK | PSH, port: int = port) -> bytes:
            return eth_tcp4(payload, seq, fl, 40000, port, SRC4, DST4)

        def sv(payload: bytes, seq: int, fl: int = ACK | PSH, port: int = port) -> bytes:
            return eth_tcp4(payload, seq, fl, port, 40000, DST4, SRC4)

        invite = ws_frame(b"", key=key) + ws_frame(INVITE, key=key, fin=False)
        invite += ws_frame(b"", opcode=9, key=key) + ws_frame(b"", opcode=0, key=key)
        ok = ws_frame(OK) + ws_frame(b"\x03\xe8", opcode=8)
        c1 = c + len(WS_UPGRADE)
        frames = [
            cl(b"", c - 1, SYN), sv(b"", s - 1, SYN | ACK), cl(WS_UPGRADE, c), sv(WS_ACCEPT, s),
            cl(invite[:50], c1), cl(invite[50:], c1 + 50), sv(ok, s + len(WS_ACCEPT)),
        ]  # fmt: skip
        out.append(encode_frames([Frame(i * 1_000_000, 1, f) for i, f in enumerate(frames)], flags))
    return out


def build(outdir: Path, max_len: int = 4096, per_capture: int = 16) -> int:
    """Write the seeds into ``outdir`` (named by content hash); returns how many captures."""
    outdir.mkdir(parents=True, exist_ok=True)
    files = captures()
    made = [seeds_for(path, max_len, per_capture, i) for i, path in enumerate(files)]
    for seeds in [*made, websocket_seeds(), flow_seeds()]:
        for seed in seeds:
            name = hashlib.sha1(seed).hexdigest()
            (outdir / name).write_bytes(seed)
    return len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--per-capture", type=int, default=16)
    args = ap.parse_args()
    n = build(args.outdir, args.max_len, args.per_capture)
    print(f"{n} captures -> {len(os.listdir(args.outdir))} seeds in {args.outdir}")


if __name__ == "__main__":
    main()
