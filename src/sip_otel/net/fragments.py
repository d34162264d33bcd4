"""IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5) fragment reassembly, sans-IO.

Theory of operation
-------------------
A fragment set is keyed by ``(src, dst, id, protocol)`` for IPv4 and ``(src, dst, id)`` for
IPv6 (addresses are 4 or 16 raw bytes, so the two never collide). Each set keeps its pieces as
non-overlapping ``(start, end, bytes)`` runs sorted by offset, the number of bytes held, and the
total length once the last fragment (MF=0) has been seen. The set is complete when the bytes
held equal that total; the pieces are then joined and the set removed.

Overlaps are **first-wins**: bytes already held are kept and only the uncovered parts of a new
fragment are stored (the same choice Wireshark makes, so we agree with tshark on odd captures;
RFC 5722 would drop the whole IPv6 datagram, which a passive monitor has no reason to do). A
fragment that adds nothing is a duplicate when it repeats a held piece exactly, else an overlap.
Inconsistent ends (two different last fragments, data past the last fragment) and datagrams
beyond the size bound drop the whole set, counted.

Time is packet time. Sets live in a dict in creation order, so :meth:`FragmentTable.expire`
pops expired sets from the front and stops at the first live one. The table is bounded by set
count, by held bytes in total and by fragments per set; evictions are counted in the shared
``evictions`` dict as ``fragments.<reason>``.
"""

from __future__ import annotations

from bisect import insort

from sip_otel.errors import Reasons

__all__ = ["FragmentKey", "FragmentTable"]

FragmentKey = tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]


class _FragmentSet:
    __slots__ = ("first_ts", "held", "pieces", "proto", "total")

    def __init__(self, ts_ns: int) -> None:
        self.first_ts = ts_ns
        self.pieces: list[tuple[int, int, bytes]] = []
        self.held = 0  # bytes stored
        self.total = -1  # datagram payload length, known once the last fragment arrived
        self.proto = -1  # protocol / next header from the offset-0 fragment


class FragmentTable:
    """Bounded table of fragment sets being reassembled."""

    __slots__ = (
        "_evictions",
        "_max_bytes",
        "_max_memory",
        "_max_pieces",
        "_max_sets",
        "_reasons",
        "_sets",
        "_timeout",
        "memory",
    )

    def __init__(
        self,
        reasons: Reasons,
        evictions: dict[str, int],
        *,
        max_sets: int,
        timeout_ns: int,
        max_datagram_bytes: int,
        max_fragments_per_set: int,
        max_memory_bytes: int,
    ) -> None:
        self._reasons = reasons
        self._evictions = evictions
        self._max_sets = max_sets
        self._timeout = timeout_ns
        self._max_bytes = max_datagram_bytes
        self._max_pieces = max_fragments_per_set
        self._max_memory = max_memory_bytes
        self._sets: dict[FragmentKey, _FragmentSet] = {}
        self.memory = 0  # payload bytes held over all sets

    def __len__(self) -> int:
        return len(self._sets)

    def add(
        self, key: FragmentKey, ts_ns: int, offset: int, more: bool, payload: bytes, proto: int
    ) -> tuple[int, bytes] | None:
        """Store one fragment; return ``(proto, datagram payload)`` when the set completes."""
        size = len(payload)
        end = offset + size
        reasons = self._reasons
        if size == 0 or (more and size & 7):
            # RFC 791/8200: every fragment but the last carries a multiple of 8 bytes.
            reasons.add("net.bad_fragment_length")
            return None
        sets = self._sets
        if end > self._max_bytes:
            reasons.add("net.fragment_too_large")
            fs = sets.get(key)
            if fs is not None:
                self._drop(key, fs)
            return None
        while self.memory + size > self._max_memory and self._evict_oldest("memory", key):
            pass
        fs = sets.get(key)
        if fs is None:
            if len(sets) >= self._max_sets:
                self._evict_oldest("capacity")
            fs = sets[key] = _FragmentSet(ts_ns)
        if not more:
            if (fs.total >= 0 and fs.total != end) or (fs.pieces and fs.pieces[-1][1] > end):
                reasons.add("net.fragment_inconsistent")
                self._drop(key, fs)
                return None
            fs.total = end
        elif fs.total >= 0 and end > fs.total:
            reasons.add("net.fragment_inconsistent")
            self._drop(key, fs)
            return None
        if offset == 0:
            fs.proto = proto
        pieces = fs.pieces
        if not pieces or pieces[-1][1] <= offset:  # common case: in order, nothing overlaps
            pieces.append((offset, end, payload))
            stored = size
        else:
            stored = self._insert_uncovered(fs, offset, end, payload)
            if stored == 0:
                return None
        fs.held += stored
        self.memory += stored
        if len(pieces) > self._max_pieces:
            reasons.add("net.fragment_too_many")
            self._drop(key, fs)
            return None
        if fs.held != fs.total:
            return None
        del sets[key]
        self.memory -= fs.held
        if len(pieces) == 1:
            return fs.proto, pieces[0][2]
        return fs.proto, b"".join([p[2] for p in pieces])

    def _insert_uncovered(self, fs: _FragmentSet, offset: int, end: int, payload: bytes) -> int:
        """First-wins insert of the parts of [offset, end) not held yet; bytes stored."""
        gaps: list[tuple[int, int]] = []
        cur = offset
        for start, stop, _ in fs.pieces:
            if stop <= cur:
                continue
            if start >= end:
                break
            if start > cur:
                gaps.append((cur, start))
            cur = stop
            if cur >= end:
                break
        if cur < end:
            gaps.append((cur, end))
        if not gaps:
            exact = any(s == offset and e == end for s, e, _ in fs.pieces)
            self._reasons.add("net.fragment_duplicate" if exact else "net.fragment_overlap")
            return 0
        if gaps[0] != (offset, end):
            self._reasons.add("net.fragment_overlap")
        stored = 0
        for start, stop in gaps:
            piece = (
                payload
                if (start == offset and stop == end)
                else payload[start - offset : stop - offset]
            )
            insort(fs.pieces, (start, stop, piece))
            stored += stop - start
        return stored

    def _drop(self, key: FragmentKey, fs: _FragmentSet) -> None:
        del self._sets[key]
        self.memory -= fs.held

    def _evict_oldest(self, reason: str, keep: FragmentKey | None = None) -> bool:
        """Evict the oldest set other than ``keep``; False if there is none."""
        for key in self._sets:
            if key != keep:
                break
        else:
            return False
        self._drop(key, self._sets[key])
        slug = "fragments." + reason
        self._evictions[slug] = self._evictions.get(slug, 0) + 1
        return True

    def expire(self, now_ns: int) -> None:
        """Drop sets older than the timeout (packet time)."""
        sets = self._sets
        deadline = now_ns - self._timeout
        while sets:
            key = next(iter(sets))
            if sets[key].first_ts > deadline:
                break
            self._evict_oldest("timeout")
