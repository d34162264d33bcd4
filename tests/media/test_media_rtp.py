"""The per-packet RTP statistics update (bpf/so_rtp.h) through its binding.

Expected values are worked out by hand from RFC 3550: Appendix A.1 (init_seq/update_seq with
MAX_DROPOUT 3000, MAX_MISORDER 100, MIN_SEQUENTIAL 2: the first packet of a new source only
starts probation, the second in-sequence one becomes ``base_seq``), A.3 (expected = extended
max - base + 1, lost = expected - received) and A.8 (J += (|D| - J) / 16, kept as an integer
scaled by 256: J256 += |D16| - ((J256 + 8) >> 4) with D16 in 1/16 timestamp units).
"""

from __future__ import annotations

from typing import Any

import pytest

from sip_otel import _core

T0 = 1_000_000_000_000  # ns; a whole number of seconds, so 1/16-unit arrivals are exact
MS = 1_000_000


def feed(seqs: list[int], clock_rate: int = 0) -> tuple[list[str], dict[str, Any]]:
    s = _core.RtpStats()
    out = [s.update(q, 160 * i, 0, 172, T0 + 20 * MS * i, clock_rate) for i, q in enumerate(seqs)]
    return out, s.snapshot()


def test_in_order_stream_after_probation() -> None:
    outcomes, snap = feed(list(range(100, 110)))
    # 100 starts probation (max_seq = 99, 100 = 99 + 1: probation 2 -> 1); 101 ends it.
    assert outcomes[:2] == ["probation", "in_order"]
    assert outcomes[2:] == ["in_order"] * 8
    assert snap["valid"] is True
    assert snap["base_seq"] == 101
    assert snap["extended_max"] == 109
    assert snap["packets"] == 10
    assert snap["bytes"] == 1720
    assert snap["received"] == 9
    assert snap["expected"] == 9
    assert snap["lost"] == 0


def test_probation_restarts_on_a_gap() -> None:
    # 5 starts probation, 7 is not 5 + 1: probation back to MIN_SEQUENTIAL - 1 at max 7; 8 ends it.
    outcomes, snap = feed([5, 7, 8, 9])
    assert outcomes == ["probation", "probation", "in_order", "in_order"]
    assert (snap["base_seq"], snap["received"], snap["expected"]) == (8, 2, 2)


def test_loss() -> None:
    _outcomes, snap = feed([1, 2, 3, 5, 6, 9, 10])
    # base 2, max 10: expected 9 (2..10); received 2,3,5,6,9,10 = 6; lost 4, 7, 8.
    assert snap["expected"] == 9
    assert snap["received"] == 6
    assert snap["lost"] == 3
    assert snap["reordered"] == 0 and snap["duplicates"] == 0


def test_sequence_wrap() -> None:
    _outcomes, snap = feed([65533, 65534, 65535, 0, 1, 2])
    # base 65534; at 0 the number wrapped: cycles = 65536, extended max 65536 + 2.
    assert snap["base_seq"] == 65534
    assert snap["cycles"] == 65536
    assert snap["extended_max"] == 65538
    assert snap["expected"] == 5
    assert snap["received"] == 5
    assert snap["lost"] == 0


def test_reordered_across_the_wrap() -> None:
    outcomes, snap = feed([65534, 65535, 1, 0])
    # base 65535; 1 advances by 2 (wrap, cycles 65536); 0 is one behind and unseen.
    assert outcomes == ["probation", "in_order", "in_order", "reordered"]
    assert snap["extended_max"] == 65537
    assert snap["expected"] == 3  # 65535, 65536 (0), 65537 (1)
    assert snap["received"] == 3
    assert snap["lost"] == 0


def test_duplicates_and_reordering() -> None:
    outcomes, snap = feed([10, 11, 12, 14, 13, 13, 15, 15])
    assert outcomes == [
        "probation",
        "in_order",
        "in_order",
        "in_order",
        "reordered",  # one behind 14, not seen
        "duplicate",  # seen now
        "in_order",
        "duplicate",  # the highest number again (A.1's first branch, udelta 0)
    ]
    assert snap["duplicates"] == 2
    assert snap["reordered"] == 1
    # received counts duplicates as A.1 does: 11,12,14,13,13,15,15 = 7; expected 11..15 = 5
    assert snap["received"] == 7
    assert snap["expected"] == 5
    assert snap["lost"] == -2


@pytest.mark.parametrize(
    ("jump", "old", "expect"),
    [
        # window slides by 68 (>= 64): 2 moves to offset 68 (second word, bit 4)
        (70, 3, "reordered"),
        (70, 2, "duplicate"),
        # slides by exactly 64: 2 lands on bit 0 of the second word
        (66, 2, "duplicate"),
        (66, 3, "reordered"),
        # slides by 63: 2 moves to offset 63 (last bit of the first word)
        (65, 2, "duplicate"),
        (65, 3, "reordered"),
    ],
)
def test_receive_window_slides(jump: int, old: int, expect: str) -> None:
    outcomes, _snap = feed([1, 2, jump, old])
    assert outcomes[2] == "in_order"
    assert outcomes[3] == expect


def test_window_cleared_by_a_long_advance() -> None:
    # 2 -> 200 slides by 198 >= 128: the window restarts; 150 is 50 behind and unseen.
    outcomes, _snap = feed([1, 2, 200, 150, 150])
    assert outcomes[3:] == ["reordered", "duplicate"]


def test_large_jump_then_resync() -> None:
    outcomes, snap = feed([1, 2, 3, 5000, 5001, 5002])
    # 5000 - 3 = 4997 >= MAX_DROPOUT and <= 65536 - MAX_MISORDER: rejected, bad_seq = 5001;
    # 5001 == bad_seq: init_seq there (statistics restart), 5002 follows in order.
    assert outcomes == ["probation", "in_order", "in_order", "bad_seq", "resync", "in_order"]
    assert snap["bad_seq_packets"] == 1
    assert snap["resyncs"] == 1
    assert snap["base_seq"] == 5001
    assert snap["received"] == 2
    assert snap["expected"] == 2
    assert snap["packets"] == 6


def test_old_packet_far_behind_is_rejected() -> None:
    # 200 behind the highest number: udelta 65336 <= 65536 - MAX_MISORDER, a "large jump".
    outcomes, _snap = feed([1000, 1001, 1002, 802])
    assert outcomes[3] == "bad_seq"


def test_jitter_by_hand() -> None:
    """8 kHz, 20 ms packets (timestamp +160); arrivals on time except p1 (+1 ms = 8 units) and
    p4 (+0.5 ms = 4 units). |D| per packet: p1 8, p2 8 (back on time), p3 0, p4 4 units.
    Float J (A.8): 0.5, 0.96875, 0.908203125, 1.1014404296875 units.
    Integer J256 (1/256 units): 128; 128 + 128 - 8 = 248; 248 + 0 - 16 = 232;
    232 + 64 - 15 = 281 (|D16| = 16 |D|)."""
    s = _core.RtpStats()
    delay_ns = [0, 1 * MS, 0, 0, MS // 2]
    for i, d in enumerate(delay_ns):
        s.update(7 + i, 1000 + 160 * i, 8, 172, T0 + 20 * MS * i + d, 8000)
    snap = s.snapshot()
    assert snap["jitter256"] == 281
    assert snap["max_jitter256"] == 281
    assert abs(snap["jitter256"] / 256 - 1.1014404296875) < 1 / 64  # integer vs float form
    assert snap["max_gap_ns"] == 21 * MS  # 21, 19, 20, 20.5 ms
    assert snap["jitter256_sum"] == 128 + 248 + 232 + 281
    assert snap["jitter_samples"] == 4
    assert snap["clock_rate"] == 8000


def test_max_jitter_is_the_peak() -> None:
    s = _core.RtpStats()
    delay_ns = [0, 1 * MS, 0, 0]
    for i, d in enumerate(delay_ns):
        s.update(i, 160 * i, 0, 172, T0 + 20 * MS * i + d, 8000)
    snap = s.snapshot()
    assert (snap["jitter256"], snap["max_jitter256"]) == (232, 248)


def test_jitter_timestamp_wrap() -> None:
    # The RTP timestamp wraps through 2^32 with perfectly regular arrivals: no jitter.
    s = _core.RtpStats()
    for i in range(6):
        s.update(i, (2**32 - 480 + 160 * i) % 2**32, 0, 172, T0 + 20 * MS * i, 8000)
    assert s.snapshot()["jitter256"] == 0


def test_no_clock_rate_no_jitter_and_rate_change_restarts_transit() -> None:
    s = _core.RtpStats()
    s.update(1, 0, 96, 100, T0, 0)
    s.update(2, 160, 96, 100, T0 + 25 * MS, 0)  # 5 ms late, but no clock rate
    assert s.snapshot()["jitter256"] == 0
    s.update(3, 320, 96, 100, T0 + 40 * MS, 8000)  # first with a rate: baseline only
    s.update(4, 480, 101, 100, T0 + 60 * MS, 16000)  # rate changed: baseline again
    snap = s.snapshot()
    assert snap["jitter256"] == 0
    assert snap["pt_changes"] == 1
    assert snap["pt"] == 101


def test_pt_changes_counted_per_switch() -> None:
    s = _core.RtpStats()
    for i, pt in enumerate([0, 0, 101, 101, 0]):
        s.update(i, 160 * i, pt, 100, T0 + 20 * MS * i, 8000)
    assert s.snapshot()["pt_changes"] == 2


@pytest.mark.parametrize(
    ("ns", "rate"),
    [
        (0, 8000),
        (999_999_999, 8000),
        (1_764_633_600_123_456_789, 8000),  # an epoch time in ns (pcap timestamps)
        (1_764_633_600_123_456_789, 90000),
        (2**64 - 1, 1_000_000),  # the largest rate kept: the products must not overflow
    ],
)
def test_units16_is_the_exact_floor(ns: int, rate: int) -> None:
    # Oracle: Python's exact integers, floor(ns * rate * 16 / 1e9) mod 2^32.
    assert _core.rtp_units16(ns, rate) == (ns * rate * 16 // 10**9) % 2**32


def test_parse_fixed_header() -> None:
    pkt = bytes.fromhex("80e1 1234 0000ff00 deadbeef".replace(" ", "")) + b"\x00" * 160
    assert _core.rtp_parse_fixed(pkt) == (0x1234, 0xFF00, 0xDEADBEEF, 0x61, 1)
    assert _core.rtp_parse_fixed(bytes.fromhex("80c8000c") + b"\x00" * 8) == "rtcp"  # SR, 200
    assert _core.rtp_parse_fixed(b"\x40" + b"\x00" * 11) is None  # version 1
    assert _core.rtp_parse_fixed(b"\x80\x00") is None  # short
