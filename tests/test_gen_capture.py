"""benchmarks/gen_capture.py: client addresses per block of calls, TCP calls closed with FIN.

Expected values are worked out by hand from the generator's documented layout (7 messages for an
answered or cancelled call, 5 for a 486/503, 3 handshake and 3 closing segments per TCP call).
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "benchmarks" / "gen_capture.py"

FIN, SYN, ACK, PSH = 0x01, 0x02, 0x10, 0x08


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_capture", GEN)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frames(path: Path) -> list[bytes]:
    """Frames of a classic pcap (the generator writes nanosecond pcap, little-endian)."""
    data = path.read_bytes()
    out, pos = [], 24
    while pos < len(data):
        _s, _f, caplen, _len = struct.unpack_from("<IIII", data, pos)
        out.append(data[pos + 16 : pos + 16 + caplen])
        pos += 16 + caplen
    return out


def _generate(tmp: Path, *args: str) -> tuple[list[bytes], dict[str, object]]:
    pcap, counts = tmp / "g.pcap", tmp / "g.json"
    pcap.touch()
    subprocess.run(
        [sys.executable, str(GEN), *args, "--counts", str(counts), "-o", str(pcap)],
        check=True,
        capture_output=True,
    )
    return _frames(pcap), json.loads(counts.read_text())


def test_client_address_changes_every_40000_calls() -> None:
    gen = _module()
    assert gen.client_addr(0) == (127, 0, 0, 1)
    assert gen.client_addr(39_999) == (127, 0, 0, 1)
    assert gen.client_addr(40_000) == (127, 1, 0, 1)
    assert gen.client_addr(79_999) == (127, 1, 0, 1)
    assert gen.client_addr(80_000) == (127, 1, 0, 2)
    assert gen.client_addr(40_000 * 256) == (127, 1, 1, 0)
    assert gen.client_addr(40_000 * 65_536) == (127, 2, 0, 0)


def test_tcp_calls_end_with_fin_both_ways(tmp_path: Path) -> None:
    # 10 calls, all over TCP, mixed: 7 answered (7 messages), 486 and 503 (5), CANCEL (7).
    frames, counts = _generate(tmp_path, "--messages", "70", "--mix", "--tcp-percent", "100")
    messages = 7 * 7 + 5 + 5 + 7
    assert counts["messages"] == messages
    assert counts["frames"] == messages + 10 * 6
    assert len(frames) == messages + 10 * 6
    by_port: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for f in frames:
        ip = f[14:]
        assert ip[9] == 6
        src = tuple(ip[12:16])
        assert src in ((127, 0, 0, 1), (127, 0, 0, 2))
        sport, dport, seq, ack, _off, flags = struct.unpack_from("!HHIIBB", ip, 20)
        payload = len(ip) - 40
        cport = sport if dport == 5060 else dport
        by_port.setdefault(cport, []).append((sport == cport, seq, ack, flags, payload))
    assert sorted(by_port) == list(range(20000, 20010))
    for segs in by_port.values():
        assert [s[3] for s in segs[:3]] == [SYN, SYN | ACK, ACK]
        assert [(s[0], s[3]) for s in segs[-3:]] == [
            (True, FIN | ACK),
            (False, FIN | ACK),
            (True, ACK),
        ]
        client_bytes = sum(s[4] for s in segs if s[0])
        server_bytes = sum(s[4] for s in segs if not s[0])
        cfin, sfin, last = segs[-3:]
        # Data starts at ISN + 1 (client ISN 1000, server 5000); each FIN takes one number.
        assert cfin[1:3] == (1001 + client_bytes, 5001 + server_bytes)
        assert sfin[1:3] == (5001 + server_bytes, 1001 + client_bytes + 1)
        assert last[1:3] == (1001 + client_bytes + 1, 5001 + server_bytes + 1)
        assert all(s[4] == 0 for s in segs[-3:])


def test_udp_only_capture_unchanged_by_the_tcp_close(tmp_path: Path) -> None:
    # No TCP: one frame per message, 10 calls as above.
    frames, counts = _generate(tmp_path, "--messages", "70", "--mix")
    assert counts["frames"] == counts["messages"] == 66
    assert Counter(f[14 + 9] for f in frames) == {17: 66}


def test_split_deals_calls_out_round_robin(tmp_path: Path) -> None:
    # 10 UDP calls into 3 captures: calls 0,3,6,9 / 1,4,7 / 2,5,8. Outcome by call number
    # (7 answered of 10: calls 7, 8, 9 are 486, 503, CANCEL): 7, 7, 7, 7 messages in the first
    # (call 9 is a CANCEL: 7), 7 + 7 + 5 in the second, 7 + 7 + 5 in the third.
    gen = _module()
    assert [p.name for p in gen.split_paths(tmp_path / "g.pcap", 3)] == [
        "g.0.pcap",
        "g.1.pcap",
        "g.2.pcap",
    ]
    assert gen.split_paths(tmp_path / "g.pcap", 1) == [tmp_path / "g.pcap"]
    _frames_all, counts = _generate(tmp_path, "--messages", "70", "--mix", "--split", "3")
    assert counts["frames"] == 66
    parts = [_frames(tmp_path / f"g.{k}.pcap") for k in range(3)]
    assert [len(p) for p in parts] == [28, 19, 19]
    for k, part in enumerate(parts):
        call_ids = {f[42:].split(b"Call-ID: ", 1)[1].split(b"-", 1)[0].decode() for f in part}
        assert {int(c) % 3 for c in call_ids} == {k}
