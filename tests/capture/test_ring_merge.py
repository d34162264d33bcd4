"""The compiled reader over several BPF ring buffers (so_rings_drain via RingCursor).

The rings are built by hand in ordinary memory in the kernel's layout: the consumer position
(first 8 bytes of its page), the producer position (first 8 bytes of the page before the data
area), then records of an 8-byte kernel header (length | BUSY | DISCARD, page offset), the
``struct rec_hdr`` of bpf/sip_record.h and the packet, padded to 8 bytes. Expected orders are
worked out from the timestamps written.
"""

from __future__ import annotations

import struct

from sip_otel import _core

PAGE = 4096
SIZE = 4096  # data area of each test ring
BUSY, DISCARD = 1 << 31, 1 << 30
REC_HDR = struct.Struct("<QIIIHHHHI")  # ts_ns, ifindex, len, caplen, pkt_type, tci, proto, r0, r1


class FakeRing:
    def __init__(self) -> None:
        self.cons = bytearray(PAGE)
        self.data = bytearray(PAGE + SIZE)
        self.prod = 0

    def add(self, ts: int, payload: bytes, ifindex: int = 1, flags: int = 0) -> int:
        """Append a record; returns its position (for flag changes)."""
        body = REC_HDR.pack(ts, ifindex, len(payload), len(payload), 0, 0, 0, 0, 0) + payload
        pos = self.prod
        hdr = struct.pack("<II", len(body) | flags, 0)
        self._put(pos, hdr + body)
        self.prod += (8 + len(body) + 7) & ~7
        struct.pack_into("<Q", self.data, 0, self.prod)
        return pos

    def set_flags(self, pos: int, flags: int) -> None:
        at = PAGE + (pos % SIZE)
        (word,) = struct.unpack_from("<I", self.data, at)
        struct.pack_into("<I", self.data, at, (word & (DISCARD - 1)) | flags)

    def _put(self, pos: int, raw: bytes) -> None:
        for i, b in enumerate(raw):
            self.data[PAGE + (pos + i) % SIZE] = b

    @property
    def consumer(self) -> int:
        return int(struct.unpack_from("<Q", self.cons, 0)[0])


def _cursor(*rings: FakeRing) -> _core.RingCursor:
    return _core.RingCursor([(r.cons, r.data) for r in rings], SIZE, 0, PAGE)


def _ts(frames: list[tuple[object, ...]]) -> list[int]:
    return [int(f[0]) for f in frames]  # type: ignore[call-overload]


def test_two_rings_merged_in_timestamp_order() -> None:
    a, b = FakeRing(), FakeRing()
    for ts in (10, 30, 50):
        a.add(ts, b"a%d" % ts, ifindex=2)
    for ts in (20, 40):
        b.add(ts, b"b%d" % ts, ifindex=3)
    cur = _cursor(a, b)
    assert cur.rings_count == 2 and cur.pending()
    frames = cur.read(100)
    assert _ts(frames) == [10, 20, 30, 40, 50]
    assert [f[2] for f in frames] == [b"a10", b"b20", b"a30", b"b40", b"a50"]
    assert [f[3] for f in frames] == [2, 3, 2, 3, 2]
    assert a.consumer == a.prod and b.consumer == b.prod
    assert not cur.pending()
    assert cur.read(100) == []
    cur.release()


def test_batch_limit_keeps_the_rest_in_order() -> None:
    a, b = FakeRing(), FakeRing()
    for ts in (1, 4, 5):
        a.add(ts, b"x")
    for ts in (2, 3, 6):
        b.add(ts, b"y")
    cur = _cursor(a, b)
    assert _ts(cur.read(3)) == [1, 2, 3]
    # Consumed: a's first record (40 bytes with padding), b's first two.
    assert (a.consumer, b.consumer) == (48, 96)
    assert _ts(cur.read(100)) == [4, 5, 6]
    cur.release()


def test_equal_timestamps_lower_ring_first() -> None:
    a, b, c = FakeRing(), FakeRing(), FakeRing()
    c.add(7, b"c")
    b.add(7, b"b")
    a.add(7, b"a")
    frames = _cursor(a, b, c).read(10)
    assert [f[2] for f in frames] == [b"a", b"b", b"c"]


def test_record_being_written_stops_only_its_ring() -> None:
    a, b = FakeRing(), FakeRing()
    a.add(10, b"a1")
    a.add(30, b"a2")
    busy = b.add(20, b"b1", flags=BUSY)
    b.add(40, b"b2")
    cur = _cursor(a, b)
    assert _ts(cur.read(10)) == [10, 30]
    assert b.consumer == 0
    b.set_flags(busy, 0)  # committed now
    assert _ts(cur.read(10)) == [20, 40]
    assert b.consumer == b.prod


def test_discarded_records_are_skipped_and_consumed() -> None:
    a, b = FakeRing(), FakeRing()
    a.add(5, b"gone", flags=DISCARD)
    a.add(15, b"kept")
    b.add(10, b"b")
    frames = _cursor(a, b).read(10)
    assert [f[2] for f in frames] == [b"b", b"kept"]
    assert a.consumer == a.prod


def test_record_wrapping_the_end_of_one_ring() -> None:
    a, b = FakeRing(), FakeRing()
    filler = b"f" * (SIZE - 8 - REC_HDR.size - 40)  # the next record starts 40 bytes before the end
    a.add(1, filler)
    cur = _cursor(a, b)
    assert _ts(cur.read(10)) == [1]
    payload = bytes(range(100))
    a.add(3, payload)  # runs past the end of the data area and continues at its start
    b.add(2, b"b")
    frames = cur.read(10)
    assert [f[2] for f in frames] == [b"b", payload]
    assert cur.wrapped == 1


def test_one_ring_is_read_as_before() -> None:
    a = FakeRing()
    for ts in (3, 1, 2):  # one ring is read in ring order, whatever the timestamps
        a.add(ts, b"p")
    assert _ts(_cursor(a).read(10)) == [3, 1, 2]
