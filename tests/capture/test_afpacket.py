"""The classic BPF program generator (behaviour is tested live in test_capture_live.py)."""

from __future__ import annotations

import pytest

from sip_otel.capture.afpacket import SNAPLEN, build_filter

RET_K = 0x06
JMP_CLASS = 0x05
JA = 0x05


def jump_targets(prog: list[tuple[int, int, int, int]]) -> list[int]:
    out = []
    for pc, (code, jt, jf, k) in enumerate(prog):
        if code & 0x07 != JMP_CLASS:
            continue
        if code == JA:
            out.append(pc + 1 + k)
        else:
            out += [pc + 1 + jt, pc + 1 + jf]
    return out


@pytest.mark.parametrize("nports", [1, 2, 64])
def test_program_shape(nports: int) -> None:
    ports = frozenset(range(5060, 5060 + nports))
    prog = build_filter(ports, lo_ifindex=1)
    assert prog[-2] == (RET_K, 0, 0, 0)  # drop
    assert prog[-1] == (RET_K, 0, 0, SNAPLEN)  # keep the whole packet
    assert all(0 <= t < len(prog) for t in jump_targets(prog))
    # Each port is compared twice (source and destination port).
    compares = [k for code, _jt, _jf, k in prog if code == 0x15 and k in ports]
    assert sorted(compares) == sorted(list(ports) * 2)
    assert len(prog) <= 4096  # BPF_MAXINSNS


def test_all_ports_compares_no_port() -> None:
    prog = build_filter(frozenset({5060}), lo_ifindex=1, all_ports=True)
    assert not [k for code, _jt, _jf, k in prog if code == 0x15 and k == 5060]
