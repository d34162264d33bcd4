"""tests/media/tc_drop.py on its own: a veth between two namespaces, the dropper on A's egress,
hand-built packets sent from A and received in B. Expected counts by hand: with N=5, K=0 the
5th, 10th, ... RTP packet of each stream is dropped; RTCP, non-RTP UDP and ports outside the
range pass and are counted apart. Skipped without root or bcc."""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from livenet import PYTHON, NetNs, live_skip_reason, veth_pair
from tc_drop import TcDropper

pytestmark = [pytest.mark.live]

_reason = live_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)


def rtp(seq: int, ssrc: int, pt: int = 8) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + bytes(160)


@pytest.fixture
def link() -> Iterator[tuple[NetNs, NetNs]]:
    a, b = NetNs("da"), NetNs("db")
    try:
        veth_pair(a, b)
        a.ip("addr", "add", "10.91.0.1/24", "dev", "va")
        b.ip("addr", "add", "10.91.0.2/24", "dev", "vb")
        yield a, b
    finally:
        a.close()
        b.close()


def test_drops_every_nth_rtp_packet_per_stream(link: tuple[NetNs, NetNs]) -> None:
    a, b = link
    with b.entered():
        rx1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a.entered():
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx1.bind(("10.91.0.2", 6000))
        rx2.bind(("10.91.0.2", 6002))
        rx3.bind(("10.91.0.2", 7000))  # outside the port range
        for s in (rx1, rx2, rx3):
            s.settimeout(2.0)
        tx.bind(("10.91.0.1", 5000))
        with TcDropper(str(PYTHON), a.name, "va", every=5, ports="6000-6999") as drop:
            # Stream 1: 23 packets to 6000 (drops #5 #10 #15 #20), interleaved with 3 RTCP
            # packets (SR, PT 200) and 2 non-RTP datagrams, none counted as RTP.
            # Stream 2: another SSRC to the same port, 7 packets (drop #5), numbered apart.
            # Stream 3: 6 RTP packets to 7000: outside the range, all pass.
            for seq in range(1, 24):
                tx.sendto(rtp(seq, 0x1111), ("10.91.0.2", 6000))
                if seq % 8 == 0:
                    tx.sendto(struct.pack("!BBH", 0x80, 200, 6) + bytes(24), ("10.91.0.2", 6000))
                if seq in (3, 17):
                    tx.sendto(b"INVITE is not RTP", ("10.91.0.2", 6000))
            for seq in range(1, 8):
                tx.sendto(rtp(seq, 0x2222), ("10.91.0.2", 6002))
            for seq in range(1, 7):
                tx.sendto(rtp(seq, 0x3333), ("10.91.0.2", 7000))
            got1 = [rx1.recv(2048) for _ in range(23 - 4 + 2 + 2)]
            got2 = [rx2.recv(2048) for _ in range(6)]
            got3 = [rx3.recv(2048) for _ in range(6)]
            c = drop.counts()
        rx1.settimeout(0.2)
        with pytest.raises(TimeoutError):
            rx1.recv(2048)
    finally:
        for s in (rx1, rx2, rx3, tx):
            s.close()

    seqs1 = [struct.unpack("!H", p[2:4])[0] for p in got1 if p[0] == 0x80 and p[1] == 8]
    assert seqs1 == [s for s in range(1, 24) if s % 5]
    assert sum(1 for p in got1 if p[1] == 200) == 2
    assert sum(1 for p in got1 if p.startswith(b"INVITE")) == 2
    assert [struct.unpack("!H", p[2:4])[0] for p in got2] == [1, 2, 3, 4, 6, 7]
    assert [struct.unpack("!H", p[2:4])[0] for p in got3] == list(range(1, 7))

    assert c["totals"] == {
        "udp": 23 + 2 + 2 + 7 + 6,
        "rtp_seen": 23 + 7,
        "rtp_dropped": 4 + 1,
        "rtcp_passed": 2,
        "other_passed": 2 + 6,
    }
    streams = {(s["dst"], s["ssrc"]): (s["src"], s["seen"], s["dropped"]) for s in c["streams"]}
    assert streams == {
        ("10.91.0.2:6000", 0x1111): ("10.91.0.1:5000", 23, 4),
        ("10.91.0.2:6002", 0x2222): ("10.91.0.1:5000", 7, 1),
    }


def test_offset_moves_the_dropped_packets(link: tuple[NetNs, NetNs]) -> None:
    a, b = link
    with b.entered():
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a.entered():
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("10.91.0.2", 6000))
        rx.settimeout(2.0)
        with TcDropper(str(PYTHON), a.name, "va", every=20, offset=10) as drop:
            for seq in range(1, 61):
                tx.sendto(rtp(seq, 0x4444), ("10.91.0.2", 6000))
            got = [struct.unpack("!H", rx.recv(2048)[2:4])[0] for _ in range(57)]
            c = drop.counts()
    finally:
        rx.close()
        tx.close()
    # (i + 10) % 20 == 0: the 10th, 30th and 50th
    assert got == [s for s in range(1, 61) if s not in (10, 30, 50)]
    assert c["totals"]["rtp_dropped"] == 3
