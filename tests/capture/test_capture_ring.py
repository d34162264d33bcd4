"""The eBPF ring reader (so_ring.c via _core.RingCursor) over hand-built ring memory.

The layout is the kernel's BPF ring buffer (kernel/bpf/ringbuf.c), written here with struct:
a consumer page (the reader's position), a producer page (the kernel's position) followed by
the data area, and records of an 8-byte header (u32 length | BUSY | DISCARD, u32 page offset),
then ``struct rec_hdr`` (bpf/sip_record.h) and the packet, padded to 8 bytes.
"""

from __future__ import annotations

import struct

import pytest

from sip_otel._core import RingCursor

PAGE = 4096
SIZE = 4096  # data area: a power of two
BUSY = 1 << 31
DISCARD = 1 << 30
UINT64_MAX = (1 << 64) - 1
INT64_MAX = (1 << 63) - 1


def rec_hdr(ts_ns: int, caplen: int, ifindex: int = 3, pkt_type: int = 0) -> bytes:
    # u64 ts_ns, u32 ifindex, u32 len, u32 caplen, u16 pkt_type, u16 vlan_tci,
    # u16 vlan_proto, u16 reserved0, u32 reserved1: 32 bytes.
    return struct.pack("<QIIIHHHHI", ts_ns, ifindex, caplen, caplen, pkt_type, 0, 0, 0, 0)


def record(ts_ns: int, packet: bytes, flags: int = 0) -> bytes:
    body = rec_hdr(ts_ns, len(packet)) + packet
    rec = struct.pack("<II", len(body) | flags, 0) + body
    return rec + b"\0" * (-len(rec) % 8)


class Ring:
    """Consumer page + (producer page, data area) as the two mappings RingCursor takes."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self.cons = bytearray(8)
        self.data = bytearray(PAGE + size)

    def put(self, pos: int, rec: bytes) -> int:
        """Write ``rec`` at ring position ``pos`` (wrapping); returns the position after it."""
        for i, b in enumerate(rec):
            self.data[PAGE + (pos + i) % self.size] = b
        return pos + len(rec)

    def set_positions(self, cons: int, prod: int) -> None:
        struct.pack_into("<Q", self.cons, 0, cons)
        struct.pack_into("<Q", self.data, 0, prod)

    @property
    def consumer(self) -> int:
        return int(struct.unpack_from("<Q", self.cons)[0])

    def cursor(self, offset_ns: int = 0) -> RingCursor:
        return RingCursor([(self.cons, self.data)], self.size, offset_ns, PAGE)


PKT_A = bytes(range(60))
PKT_B = b"\xaa" * 100


def test_records_in_order_with_the_realtime_offset() -> None:
    r = Ring()
    end = r.put(r.put(0, record(1_000, PKT_A)), record(2_000, PKT_B))
    r.set_positions(0, end)
    cur = r.cursor(offset_ns=5)
    frames = cur.read(16)
    assert [(f.ts_ns, f.data, f.ifindex) for f in frames] == [(1_005, PKT_A, 3), (2_005, PKT_B, 3)]
    # 8 + 32 + 60 = 100 -> 104 padded; 8 + 32 + 100 = 140 -> 144.
    assert r.consumer == end == 248
    assert cur.read(16) == []


def test_busy_record_stops_and_discarded_is_skipped() -> None:
    r = Ring()
    pos = r.put(0, record(1, PKT_A, DISCARD))
    busy_at = pos
    end = r.put(pos, record(2, PKT_B, BUSY))
    r.set_positions(0, end)
    cur = r.cursor()
    assert cur.read(16) == []
    assert r.consumer == busy_at  # the discarded record is consumed, the busy one waits


def test_record_wrapping_past_the_end_is_read_whole() -> None:
    r = Ring()
    start = SIZE - 64  # header and part of the body at the end, the rest at the start
    end = r.put(start, record(7, PKT_B))
    r.set_positions(start, end)
    cur = r.cursor()
    frames = cur.read(16)
    assert [f.data for f in frames] == [PKT_B]
    assert cur.wrapped == 1


def test_time_beyond_int64_saturates() -> None:
    # A monotonic time near the top of int64 plus the realtime offset: INT64_MAX, not a
    # wrapped negative time.
    r = Ring()
    end = r.put(0, record(INT64_MAX - 5, PKT_A))
    r.set_positions(0, end)
    assert [f.ts_ns for f in r.cursor(offset_ns=10).read(16)] == [INT64_MAX]


def test_consumer_position_at_the_end_of_uint64_does_not_wrap() -> None:
    # A record at position 2**64 - 104 takes 104 bytes: the next position would wrap to 0,
    # which is < prod again and would re-read stale memory forever; it stays at UINT64_MAX.
    r = Ring()
    start = UINT64_MAX + 1 - 104
    end = r.put(start, record(1, PKT_A))
    assert end == UINT64_MAX + 1
    r.set_positions(start, UINT64_MAX)
    cur = r.cursor()
    assert [f.data for f in cur.read(16)] == [PKT_A]
    assert r.consumer == UINT64_MAX
    assert cur.read(16) == []


@pytest.mark.parametrize("cons", [4, SIZE - 4])
def test_consumer_position_the_kernel_never_writes_is_skipped(cons: int) -> None:
    # Records are 8-aligned: an unaligned position (or one whose header would run past the
    # area) comes from a consumer page someone else wrote. Counted, and the reader resyncs at
    # the producer without reading past the area.
    r = Ring()
    r.set_positions(cons, cons + 512)
    cur = r.cursor()
    assert cur.read(16) == []
    assert cur.bad_records == 1
    assert r.consumer == cons + 512


@pytest.mark.parametrize("size", [0, 3000, SIZE + 8])
def test_ring_size_must_be_a_power_of_two(size: int) -> None:
    r = Ring(size=max(size, 8))
    with pytest.raises(ValueError, match="power of two"):
        RingCursor([(r.cons, r.data)], size, 0, PAGE)
