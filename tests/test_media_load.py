"""benchmarks/media_load.py ``gen``: checked with tshark (the oracle) and by hand.

10 calls, 0.2 s of RTP: 20 streams (one per direction) of 0.2 s / 20 ms = 10 packets each, no
loss, PCMA; SIP: 10 INVITE, 10 ACK, 10 BYE, 20 200 OK; only 127.0.0.0/8 addresses. With
``split=2`` the calls alternate between two files. Skipped without tshark.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "benchmarks" / "media_load.py"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


def _gen(tmp: Path, split: int) -> tuple[list[Path], dict[str, int]]:
    out = tmp / "m.pcap"
    proc = subprocess.run(
        [
            sys.executable,
            str(GEN),
            "gen",
            str(out),
            "--calls",
            "10",
            "--duration",
            "0.2",
            "--split",
            str(split),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    files = [out] if split == 1 else [tmp / f"m.{k}.pcap" for k in range(split)]
    return files, counts


def _tshark(pcap: Path, *args: str) -> str:
    return subprocess.run(
        [str(TSHARK), "-n", "-r", str(pcap), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_gen_streams_and_calls(tmp_path: Path) -> None:
    [pcap], counts = _gen(tmp_path, 1)
    assert counts["rtp_streams"] == 20 and counts["rtp_packets"] == 200
    assert counts["sip_messages"] == 50
    rows = [
        ln.split()
        for ln in _tshark(pcap, "-q", "-z", "rtp,streams").splitlines()
        if re.search(r"0x100000[0-9A-F]{2}", ln)
    ]
    assert len(rows) == 20
    for r in rows:
        # start end src sport dst dport ssrc payload pkts lost (pct) ...
        assert r[7] == "g711A" and r[8] == "10" and r[9] == "0"
        assert r[2].startswith("127.") and r[4].startswith("127.")
    sip = _tshark(pcap, "-q", "-z", "sip,stat")
    for method, n in (("INVITE", 10), ("ACK", 10), ("BYE", 10)):
        assert re.search(rf"{method}\s+:\s+{n} Packets", sip), sip
    assert re.search(r"SIP 200 OK\s+:\s+20 Packets", sip), sip
    addrs = _tshark(pcap, "-T", "fields", "-e", "ip.src", "-e", "ip.dst").split()
    assert addrs and all(a.startswith("127.") for a in addrs)
    # every SDP answer's address is the callee's, every offer's the caller's
    sdp = _tshark(pcap, "-Y", "sdp", "-T", "fields", "-e", "ip.src", "-e", "sdp.connection_info")
    for line in sdp.splitlines():
        src, conn = line.split("\t")
        assert conn == f"IN IP4 {src}"


def test_gen_split_deals_calls_out(tmp_path: Path) -> None:
    files, counts = _gen(tmp_path, 2)
    assert counts["split"] == 2
    for pcap in files:
        rows = [ln for ln in _tshark(pcap, "-q", "-z", "rtp,streams").splitlines() if "0x1" in ln]
        assert len(rows) == 10
        assert len(_tshark(pcap, "-T", "fields", "-e", "frame.number").split()) == 25 + 100
