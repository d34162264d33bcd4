"""Media (issue 12) e2e helpers: a SIPp call with RTP both ways between two namespaces, 1 in N
of the caller's RTP packets dropped by a tc program (tests/media/tc_drop.py), captured in the
callee's namespace; tshark's and ``sip-otel replay --media``'s per-stream figures; a copy of a
pcap with every packet delayed by a deterministic pseudo-random amount (jitter injection)."""

from __future__ import annotations

import json
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))

from e2ehelpers import uac, uas
from livenet import PYTHON, REPO, NetNs, veth_pair
from tc_drop import TcDropper

TSHARK = shutil.which("tshark")
DUMPCAP = shutil.which("dumpcap")
# Debian's sip-tester ships it: 236 RTP packets, PCMA, 30 ms apart, 7.05 s (capinfos, tshark).
G711A = Path("/usr/share/sip-tester/g711a.pcap")
A_IP, B_IP = "10.92.0.1", "10.92.0.2"  # caller (uac) in A, callee (uas) in B
MEDIA_PORTS = "6000-6099"  # SIPp's media port is 6000 on both sides
# 1 in 20 = 5 %: the dropper drops the caller's RTP packets number 10, 30, 50, ... (offset 10);
# 236 packets -> 12 dropped, 12 / 235 expected = 5.11 % (RFC 3550 A.1: the first packet is
# probation, not expected). With offset 0 (20, 40, ...) it would be 11 (4.68 %): 236 is not a
# multiple of 20.
EVERY, OFFSET = 20, 10

ROW = re.compile(
    r"\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-Fa-f]+)\s+(.+?)\s+(\d+)\s+"
    r"(-?\d+) \([-\d.]+%\)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)"
)


@dataclass
class Stream:
    """One RTP stream's figures from one tool."""

    src: str
    dst: str
    ssrc: int
    packets: int
    lost: int
    loss_pct: float
    mean_jitter_ms: float
    max_jitter_ms: float
    mos: float | None = None


def tshark_streams(pcap: Path) -> dict[tuple[str, str, int], Stream]:
    out = subprocess.run(
        [str(TSHARK), "-n", "-r", str(pcap), "-q", "-z", "rtp,streams"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    streams = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            src, dst = f"{m[1]}:{m[2]}", f"{m[3]}:{m[4]}"
            packets, lost = int(m[7]), int(m[8])
            # tshark prints the loss % with one decimal; its expected is packets + lost
            loss_pct = 100 * lost / (packets + lost) if packets + lost > 0 else 0.0
            s = Stream(src, dst, int(m[5], 16), packets, lost, loss_pct, float(m[9]), float(m[10]))
            streams[(src, dst, s.ssrc)] = s
    return streams


def our_streams(pcap: Path) -> tuple[dict[tuple[str, str, int], Stream], list[dict[str, Any]]]:
    """``sip-otel replay --media --format json``: (streams, the raw per-stream reports)."""
    out = subprocess.run(
        [str(PYTHON), "-m", "sip_otel", "replay", "--media", "--format", "json", str(pcap)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=REPO,
    ).stdout
    raw = json.loads(out)["media"]["streams"]
    streams = {}
    for r in raw:
        s = Stream(
            r["src"],
            r["dst"],
            int(r["ssrc"], 16),
            r["packets"],
            r["lost"],
            100 * r["loss_ratio"],
            r["mean_jitter_ms"],
            r["max_jitter_ms"],
            r["mos"],
        )
        streams[(s.src, s.dst, s.ssrc)] = s
    return streams, raw


def table(
    ours: dict[tuple[str, str, int], Stream], theirs: dict[tuple[str, str, int], Stream], title: str
) -> str:
    """The comparison table (markdown): ours / tshark per column."""
    lines = [
        f"{title}",
        "",
        "| Stream | Packets | Lost | Loss % | Mean jitter ms | Max jitter ms | MOS |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(set(ours) | set(theirs)):
        o, t = ours.get(key), theirs.get(key)
        src, dst, ssrc = key

        def pair(attr: str, fmt: str, o: Stream | None = o, t: Stream | None = t) -> str:
            a = format(getattr(o, attr), fmt) if o else "-"
            b = format(getattr(t, attr), fmt) if t else "-"
            return f"{a} / {b}"

        mos = f"{o.mos:.2f}" if o and o.mos is not None else "-"
        lines.append(
            f"| {src} -> {dst} 0x{ssrc:08X} | {pair('packets', 'd')} | {pair('lost', 'd')} | "
            f"{pair('loss_pct', '.2f')} | {pair('mean_jitter_ms', '.3f')} | "
            f"{pair('max_jitter_ms', '.3f')} | {mos} |"
        )
    return "\n".join(lines)


class MediaLink:
    """Namespaces A (caller) and B (callee), a veth va (A) <-> vb (B), the dropper on va's
    egress. Close it to delete everything."""

    def __init__(self, every: int = EVERY, offset: int = OFFSET) -> None:
        self.a, self.b = NetNs("ma"), NetNs("mb")
        self.dropper: TcDropper | None = None
        try:
            veth_pair(self.a, self.b)
            self.a.ip("addr", "add", f"{A_IP}/24", "dev", "va")
            self.b.ip("addr", "add", f"{B_IP}/24", "dev", "vb")
            self.dropper = TcDropper(str(PYTHON), self.a.name, "va", every, offset, MEDIA_PORTS)
        except BaseException:
            self.close()
            raise

    def call(self, tmp: Path, rtp_pcap: Path = G711A) -> None:
        """One call: the UAS in B, the UAC in A, each playing ``rtp_pcap`` to the other."""
        key = ("-key", "rtp_pcap", str(rtp_pcap))
        server = uas(self.b, tmp, "uas_media.xml", 5060, *key, ip=B_IP)
        try:
            uac(self.a, tmp, "uac_media.xml", 1, 5060, *key, ip=B_IP, local_ip=A_IP, timeout_s=30)
        finally:
            server.stop()

    def close(self) -> None:
        if self.dropper is not None:
            self.dropper.close()
        self.a.close()
        self.b.close()


class Dumpcap:
    """dumpcap on ``dev`` in ``ns`` writing a classic pcap (``-P``)."""

    def __init__(self, ns: NetNs, dev: str, path: Path) -> None:
        assert DUMPCAP is not None
        self.path = path
        self.log = path.with_suffix(".log")
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*ns.exec_prefix(), DUMPCAP, "-q", "-P", "-i", dev, "-w", str(path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        end = time.monotonic() + 10
        while not (path.exists() and path.stat().st_size >= 24):  # the file header is written
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < end, "dumpcap did not start"
            time.sleep(0.05)

    def stop(self) -> Path:
        time.sleep(0.3)  # the last frames reach the file
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._log.close()
        return self.path


def perturb(src: Path, dst: Path, max_delay_us: int = 20_000, seed: int = 12) -> int:
    """Copy a classic pcap, every packet delayed by ``random.Random(seed)`` 0..max_delay_us
    (uniform) -- jitter injected after the fact -- then, where that would put a packet before
    the previous one, at the previous one's time (the file stays in time order and no RTP
    packet is reordered). Returns the number of packets."""
    rng = random.Random(seed)
    data = src.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    if magic != 0xA1B2C3D4:
        raise ValueError(f"{src}: not a little-endian microsecond pcap")
    out = bytearray(data[:24])
    off, n, last = 24, 0, 0
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        t = max(sec * 1_000_000 + usec + rng.randint(0, max_delay_us), last)
        last = t
        out += struct.pack("<IIII", t // 1_000_000, t % 1_000_000, incl, orig)
        out += data[off + 16 : off + 16 + incl]
        off += 16 + incl
        n += 1
    dst.write_bytes(bytes(out))
    return n
