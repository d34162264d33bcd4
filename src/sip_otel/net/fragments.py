"""IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5) fragment reassembly, sans-IO.

The table is compiled (``sip_otel/_c/so_net_frag.c``, where the theory of operation lives:
keys, first-wins overlaps, the duplicate/overlap/inconsistent/too_large/too_many reasons, the
set, memory and per-set bounds, expiry in creation order). :class:`FragmentTable` runs that C
table on its own, one fragment at a time, as the decoder does.
"""

from __future__ import annotations

from sip_otel._core import FragmentReassembler
from sip_otel.errors import Reasons

__all__ = ["FragmentKey", "FragmentTable"]

FragmentKey = tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]


class FragmentTable:
    """Bounded table of fragment sets being reassembled."""

    __slots__ = ("_c",)

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
        self._c = FragmentReassembler(
            reasons.counts,
            evictions,
            {
                "max_fragment_sets": max_sets,
                "fragment_timeout_ns": timeout_ns,
                "max_fragment_bytes": max_datagram_bytes,
                "max_fragments_per_set": max_fragments_per_set,
                "max_fragment_memory_bytes": max_memory_bytes,
            },
        )

    def __len__(self) -> int:
        return len(self._c)

    @property
    def memory(self) -> int:
        """Payload bytes held over all sets."""
        return self._c.memory

    def add(
        self, key: FragmentKey, ts_ns: int, offset: int, more: bool, payload: bytes, proto: int
    ) -> tuple[int, bytes] | None:
        """Store one fragment; return ``(proto, datagram payload)`` when the set completes."""
        return self._c.add(key, ts_ns, offset, more, payload, proto)

    def expire(self, now_ns: int) -> None:
        """Drop sets older than the timeout (packet time)."""
        self._c.expire(now_ns)
