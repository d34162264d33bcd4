"""IPv4/IPv6 fragment reassembly: orders, duplicates, overlaps, timeouts, bounds."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbuild import DST4, DST6, INVITE, SRC4, SRC6, ethernet, ext, frag6, ipv4, ipv6, udp
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits
from sip_otel.net.fragments import FragmentTable
from sip_otel.net.types import PROTO_UDP, SipPayload

SECOND = 1_000_000_000
DATAGRAM = udp(INVITE)  # 8 + 278 bytes: fragments of 96 bytes -> 3 fragments


def v4_fragments(datagram: bytes = DATAGRAM, size: int = 96, ident: int = 77) -> list[bytes]:
    frames = []
    for off in range(0, len(datagram), size):
        chunk = datagram[off : off + size]
        more = off + size < len(datagram)
        frames.append(ethernet(ipv4(chunk, frag_offset=off, more=more, ident=ident)))
    return frames


def v6_fragments(fragmentable: bytes, first_nh: int, size: int = 96, ident: int = 5) -> list[bytes]:
    frames = []
    for off in range(0, len(fragmentable), size):
        chunk = fragmentable[off : off + size]
        more = off + size < len(fragmentable)
        # Hop-by-hop (unfragmentable part) before the Fragment header.
        packet = ipv6(ext(44) + frag6(first_nh, off, more, ident) + chunk, nh=0)
        frames.append(ethernet(packet, 0x86DD))
    return frames


def feed(
    frames: list[bytes], ts: list[int] | None = None, limits: NetLimits | None = None
) -> tuple[list[SipPayload], dict[str, int], FrameDecoder]:
    reasons = Reasons()
    dec = FrameDecoder(reasons, limits=limits or NetLimits())
    out: list[SipPayload] = []
    for i, frame in enumerate(frames):
        out += dec.feed(ts[i] if ts else i, 1, frame)
    return out, reasons.counts, dec


def want4(ts: int) -> list[SipPayload]:
    return [SipPayload(ts, PROTO_UDP, SRC4, 5060, DST4, 5060, INVITE)]


def test_v4_in_order() -> None:
    frames = v4_fragments()
    assert len(frames) == 3
    out, counts, dec = feed(frames)
    assert out == want4(2)
    assert counts == {}
    assert dec.table_sizes()["fragments"] == 0


def test_v4_reversed() -> None:
    out, counts, dec = feed(v4_fragments()[::-1])
    assert out == want4(2)
    assert counts == {}
    assert dec.table_sizes()["fragments"] == 0


def test_v4_duplicate_fragment_is_counted_and_harmless() -> None:
    f = v4_fragments()
    out, counts, _ = feed([f[0], f[1], f[1], f[2]])
    assert out == want4(3)
    assert counts == {"net.fragment_duplicate": 1}


def test_v4_duplicate_after_completion_starts_a_new_set_that_times_out() -> None:
    f = v4_fragments()
    out, counts, dec = feed([*f, f[2]], ts=[0, 1, 2, 3])
    assert out == want4(2)
    assert counts == {}
    assert dec.table_sizes()["fragments"] == 1
    dec.handle_timer(3 + 30 * SECOND)
    assert dec.table_sizes()["fragments"] == 0
    assert dec.evictions == {"fragments.timeout": 1}


def test_v4_overlap_first_wins() -> None:
    # Fragment A covers [0, 96) with the real bytes; B covers [88, 286) starting with 8 bytes
    # of "X" that overlap A: A's bytes are kept.
    a = ethernet(ipv4(DATAGRAM[:96], frag_offset=0, more=True, ident=9))
    b_payload = b"X" * 8 + DATAGRAM[96:]
    b = ethernet(ipv4(b_payload, frag_offset=88, more=False, ident=9))
    out, counts, _ = feed([a, b])
    assert out == want4(1)
    assert counts == {"net.fragment_overlap": 1}


def test_v4_overlap_filling_a_hole_between_pieces() -> None:
    f = v4_fragments(size=48)  # 6 fragments: 0,48,96,144,192,240
    middle = ethernet(
        ipv4(b"Y" * 8 + DATAGRAM[48:96] + b"Z" * 8, frag_offset=40, more=True, ident=77)
    )
    out, counts, _ = feed([f[0], f[2], middle, f[3], f[4], f[5]])
    assert out == want4(5)
    assert counts == {"net.fragment_overlap": 1}


def test_v4_fully_covered_but_not_identical_is_an_overlap() -> None:
    f = v4_fragments()
    inner = ethernet(ipv4(b"Q" * 16, frag_offset=16, more=True, ident=77))
    out, counts, _ = feed([f[0], inner, f[1], f[2]])
    assert out == want4(3)
    assert counts == {"net.fragment_overlap": 1}


def test_v4_timeout_in_packet_time() -> None:
    f = v4_fragments()
    reasons = Reasons()
    dec = FrameDecoder(reasons)
    assert dec.feed(0, 1, f[0]) == []
    dec.handle_timer(30 * SECOND - 1)
    assert dec.table_sizes()["fragments"] == 1
    dec.handle_timer(30 * SECOND)
    assert dec.table_sizes()["fragments"] == 0
    assert dec.evictions == {"fragments.timeout": 1}
    # The rest arrives too late: a new set that never completes.
    assert dec.feed(30 * SECOND, 1, f[1]) == []
    assert dec.feed(30 * SECOND, 1, f[2]) == []
    assert dec.table_sizes()["fragments"] == 1


def test_table_full_evicts_the_oldest_set() -> None:
    sets = [v4_fragments(ident=i) for i in range(3)]
    limits = NetLimits(max_fragment_sets=2)
    out, counts, dec = feed(
        [sets[0][0], sets[1][0], sets[2][0], *sets[0][1:], *sets[2][1:]], limits=limits
    )
    assert counts == {}
    # Set 0 was evicted by set 2; its later fragments start a new set (evicting set 1).
    assert out == want4(6)
    assert dec.evictions == {"fragments.full": 2}
    assert dec.table_sizes()["fragments"] == 1


def test_memory_bound_evicts_oldest() -> None:
    first = v4_fragments(ident=1)
    second = v4_fragments(ident=2)
    limits = NetLimits(max_fragment_memory_bytes=200)
    out, _, dec = feed([first[0], first[1], second[0], *second[1:]], limits=limits)
    assert out == want4(4)
    assert dec.evictions == {"fragments.memory": 1}
    assert dec.table_sizes()["fragments"] == 0


@pytest.mark.parametrize(
    ("frames", "slug"),
    [
        # a non-last fragment whose length is not a multiple of 8
        ([ethernet(ipv4(DATAGRAM[:90], more=True))], "net.bad_fragment_length"),
        ([ethernet(ipv4(b"", frag_offset=8, more=True))], "net.bad_fragment_length"),
        # offset + length beyond what an IP length field can describe ("ping of death")
        ([ethernet(ipv4(b"x" * 16, frag_offset=65528, more=False))], "net.fragment_too_large"),
        # two different last fragments
        (
            [
                ethernet(ipv4(b"x" * 8, frag_offset=96, more=False)),
                ethernet(ipv4(b"x" * 16, frag_offset=96, more=False)),
            ],
            "net.fragment_inconsistent",
        ),
        # data beyond the end set by the last fragment
        (
            [
                ethernet(ipv4(b"x" * 8, frag_offset=96, more=False)),
                ethernet(ipv4(b"x" * 16, frag_offset=96, more=True)),
            ],
            "net.fragment_inconsistent",
        ),
        # a last fragment ending before data already held
        (
            [
                ethernet(ipv4(b"x" * 16, frag_offset=96, more=True)),
                ethernet(ipv4(b"x" * 8, frag_offset=48, more=False)),
            ],
            "net.fragment_inconsistent",
        ),
    ],
)
def test_bad_fragments(frames: list[bytes], slug: str) -> None:
    out, counts, dec = feed(frames)
    assert out == []
    assert counts == {slug: 1}
    assert dec.table_sizes()["fragments"] == 0


def test_too_many_fragments_per_set() -> None:
    f = v4_fragments(size=48)
    out, counts, dec = feed(f[:4], limits=NetLimits(max_fragments_per_set=3))
    assert out == []
    assert counts == {"net.fragment_too_many": 1}
    assert dec.table_sizes()["fragments"] == 0


def test_fragments_of_other_protocols_are_skipped_without_buffering() -> None:
    frame = ethernet(ipv4(b"\x08\0" + b"\0" * 94, proto=1, more=True))  # ICMP
    out, counts, dec = feed([frame])
    assert out == []
    assert counts == {"skipped.ip_protocol": 1}
    assert dec.table_sizes()["fragments"] == 0


def test_same_id_different_protocol_are_different_sets() -> None:
    f = v4_fragments()
    tcp_like = ethernet(ipv4(b"\0" * 96, proto=6, more=True, ident=77))
    out, counts, dec = feed([f[0], tcp_like, f[1], f[2]])
    assert out == want4(3)
    assert counts == {}
    assert dec.table_sizes()["fragments"] == 1


def test_v4_fragmented_non_sip_port_counts_once_reassembled() -> None:
    frames = v4_fragments(udp(INVITE, 20000, 20002))
    out, counts, _ = feed(frames)
    assert out == []
    assert counts == {"skipped.port": 1}


# -- IPv6 ---------------------------------------------------------------------------------------


def want6(ts: int) -> list[SipPayload]:
    return [SipPayload(ts, PROTO_UDP, SRC6, 5060, DST6, 5060, INVITE)]


def test_v6_in_order_and_reversed() -> None:
    frames = v6_fragments(DATAGRAM, 17)
    assert len(frames) == 3
    assert feed(frames)[:2] == (want6(2), {})
    assert feed(frames[::-1])[:2] == (want6(2), {})


def test_v6_extension_header_inside_fragmentable_part() -> None:
    frames = v6_fragments(ext(17) + DATAGRAM, 60)  # destination options, then UDP
    assert len(frames) == 4
    out, counts, _ = feed(frames[::-1])
    assert out == want6(3)
    assert counts == {}


def test_v6_next_header_comes_from_the_first_fragment() -> None:
    frames = v6_fragments(DATAGRAM, 17)
    # RFC 8200 4.5: only the offset-0 fragment's next header is used.
    last = ethernet(ipv6(frag6(60, 192, False, 5) + DATAGRAM[192:], nh=44), 0x86DD)
    out, counts, _ = feed([frames[0], frames[1], last])
    assert out == want6(2)
    assert counts == {}


def test_v6_overlap_and_duplicate() -> None:
    f = v6_fragments(DATAGRAM, 17)
    chunk = b"X" * 8 + DATAGRAM[96:104]  # [88, 104): the X bytes overlap f[0] and lose
    overlap = ethernet(ipv6(ext(44) + frag6(17, 88, True, 5) + chunk, nh=0), 0x86DD)
    out, counts, _ = feed([f[0], overlap, f[0], f[1], f[2]])
    assert out == want6(4)
    assert counts == {"net.fragment_overlap": 2, "net.fragment_duplicate": 1}


def test_v6_fragment_header_after_reassembly_is_rejected() -> None:
    frames = v6_fragments(ext(44) + frag6(17, 0, False, 1) + DATAGRAM, 60)
    out, counts, _ = feed(frames)
    assert out == []
    assert counts == {"net.bad_ipv6_fragment": 1}


def test_v6_icmp_fragments_are_skipped() -> None:
    out, counts, dec = feed(v6_fragments(b"\0" * 200, 58)[:1])
    assert out == []
    assert counts == {"skipped.ip_protocol": 1}
    assert dec.table_sizes()["fragments"] == 0


def test_v6_bad_fragment_length() -> None:
    f = ethernet(ipv6(frag6(17, 0, True, 5) + DATAGRAM[:90], nh=44), 0x86DD)
    out, counts, _ = feed([f])
    assert out == []
    assert counts == {"net.bad_fragment_length": 1}


# -- the table on its own -----------------------------------------------------------------------


def make_table(**kw: int) -> tuple[FragmentTable, Reasons, dict[str, int]]:
    reasons = Reasons()
    evictions: dict[str, int] = {}
    args = {
        "max_sets": 8,
        "timeout_ns": 100,
        "max_datagram_bytes": 65535,
        "max_fragments_per_set": 16,
        "max_memory_bytes": 1 << 20,
    }
    args.update(kw)
    return FragmentTable(reasons, evictions, **args), reasons, evictions


def test_table_first_wins_bytes() -> None:
    table, reasons, _ = make_table()
    key = (SRC4, DST4, 1, 17)
    assert table.add(key, 0, 8, True, b"B" * 16, 17) is None  # [8, 24)
    assert table.add(key, 0, 0, True, b"A" * 16, 17) is None  # [0, 16): keeps B in [8, 16)
    assert table.add(key, 0, 16, False, b"C" * 16, 17) == (17, b"A" * 8 + b"B" * 16 + b"C" * 8)
    assert reasons.counts == {"net.fragment_overlap": 2}
    assert table.memory == 0


def test_table_expiry_stops_at_first_live_set() -> None:
    table, _, evictions = make_table()
    table.add((SRC4, DST4, 1, 17), 0, 0, True, b"a" * 8, 17)
    table.add((SRC4, DST4, 2, 17), 50, 0, True, b"a" * 8, 17)
    table.expire(120)
    assert len(table) == 1
    assert evictions == {"fragments.timeout": 1}
    table.expire(150)
    assert len(table) == 0
    assert table.memory == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_any_fragmentation_and_order_reassembles(
    cuts: list[int], rnd: random.Random, v6: bool
) -> None:
    points = sorted({0, 64, len(DATAGRAM), *(8 * c for c in cuts if 8 * c < len(DATAGRAM))})
    frames = []
    for a, b in itertools.pairwise(points):
        more = b < len(DATAGRAM)
        if v6:
            frames.append(ethernet(ipv6(frag6(17, a, more, 3) + DATAGRAM[a:b], nh=44), 0x86DD))
        else:
            frames.append(ethernet(ipv4(DATAGRAM[a:b], frag_offset=a, more=more, ident=3)))
    frames += rnd.sample(frames, k=len(frames) // 3)  # duplicates
    rnd.shuffle(frames)
    out, counts, _ = feed(frames)
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    assert [(p.src_ip, p.dst_ip, p.data) for p in out] == [(src, dst, INVITE)]
    assert set(counts) <= {"net.fragment_duplicate"}


INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


def test_timeout_near_int64_min_does_not_wrap() -> None:
    # A set started at INT64_MIN + 1: 1 ns later ``now - 30 s`` would wrap to a huge positive
    # deadline and expire it at once; so_expired compares without overflow.
    f = v4_fragments()
    dec = FrameDecoder(Reasons())
    assert dec.feed(INT64_MIN + 1, 1, f[0]) == []
    dec.handle_timer(INT64_MIN + 2)
    assert dec.table_sizes()["fragments"] == 1
    # A difference beyond int64 is longer than any timeout.
    dec.handle_timer(INT64_MAX)
    assert dec.table_sizes()["fragments"] == 0
    assert dec.evictions == {"fragments.timeout": 1}


def test_timeout_of_int64_max_never_wraps() -> None:
    f = v4_fragments()
    dec = FrameDecoder(Reasons(), limits=NetLimits(fragment_timeout_ns=INT64_MAX))
    assert dec.feed(-5, 1, f[0]) == []
    dec.handle_timer(-2)  # -2 - INT64_MAX wraps to INT64_MAX: the set looked expired
    assert dec.table_sizes()["fragments"] == 1
    dec.handle_timer(INT64_MAX - 6)  # INT64_MAX - 1 ns after -5: not yet
    assert dec.table_sizes()["fragments"] == 1
    dec.handle_timer(INT64_MAX - 5)
    assert dec.evictions == {"fragments.timeout": 1}
