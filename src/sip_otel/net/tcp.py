"""TCP stream reassembly per flow direction, feeding a SIP :class:`StreamFramer` (or another
:class:`Framer`: WebSocket for RFC 7118 flows). Sans-IO.

Theory of operation
-------------------
A flow is one direction ``(src ip, src port, dst ip, dst port)``; each has a
:class:`TcpStream`. Sequence numbers wrap at 2**32, so a stream also counts an unwrapped byte
position ``next_pos`` (a Python int) that matches ``next_seq``; a segment's position is
``next_pos`` plus its signed 32-bit distance from ``next_seq``.

- SYN fixes the ISN: data starts at ISN+1. A SYN with another ISN on a live flow means the
  ports were reused: the old stream is dropped. Without a SYN (capture started mid-stream) the
  first segment seen starts the stream; the framer then resyncs on the next SIP start line.
- In order (distance 0): the payload goes straight to the framer (no copy), then held
  segments that have become contiguous are drained.
- Behind: bytes already delivered are trimmed (``tcp.retransmission``).
- Ahead: the segment is held in a heap by position (``tcp.out_of_order``) while the window
  (bytes ahead of ``next_pos``), the held bytes and segments of the flow, and the held bytes of
  all flows stay under their limits. Past a limit the missing bytes are given up for lost
  (passive capture drops packets, a retransmission may never be seen): ``tcp.gap``, the framer
  is reset and the stream jumps to the first held segment.
- FIN marks the end position; the flow closes when the stream reaches it. RST closes both
  directions at once. Closing counts unfinished messages (``sip_framing.incomplete``) and held
  bytes never delivered (``tcp.gap``).
- Flows live in an LRU ``OrderedDict`` touched on every segment: idle flows are expired from
  the front in packet time (``tcp_flows.timeout``), and a full table evicts the least recently
  used flow (``tcp_flows.capacity``).
"""

from __future__ import annotations

from collections import OrderedDict
from heapq import heappop, heappush
from typing import Protocol

from sip_otel.errors import Reasons
from sip_otel.sip.framing import StreamFramer

__all__ = ["TCP_FIN", "TCP_RST", "TCP_SYN", "FlowKey", "Framer", "TcpStream", "TcpTable"]

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04

_MASK = 0xFFFFFFFF
_HALF = 0x80000000

FlowKey = tuple[bytes, int, bytes, int]


class Framer(Protocol):
    """What a stream feeds its in-order bytes to: SIP framing, or WebSocket then SIP."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class TcpStream:
    """One direction of a TCP connection."""

    __slots__ = (
        "fin_pos",
        "framer",
        "held",
        "held_bytes",
        "isn",
        "last_ts",
        "next_pos",
        "next_seq",
    )

    def __init__(self, framer: Framer, ts_ns: int) -> None:
        self.framer: Framer = framer
        self.last_ts = ts_ns
        self.isn = -1  # initial sequence number, if the SYN was seen
        self.next_seq = -1  # unknown until the SYN or the first segment
        self.next_pos = 0
        self.held: list[tuple[int, bytes]] = []  # heap of (position, payload)
        self.held_bytes = 0
        self.fin_pos = -1


class TcpTable:
    """Bounded table of TCP streams that carry SIP."""

    __slots__ = (
        "_evictions",
        "_idle",
        "_max_flows",
        "_max_held_bytes",
        "_max_held_segments",
        "_max_message",
        "_max_total_held",
        "_reasons",
        "flows",
        "held_total",
    )

    def __init__(
        self,
        reasons: Reasons,
        evictions: dict[str, int],
        *,
        max_flows: int,
        idle_timeout_ns: int,
        max_held_bytes: int,
        max_held_segments: int,
        max_total_held_bytes: int,
        max_message_bytes: int,
    ) -> None:
        self._reasons = reasons
        self._evictions = evictions
        self._max_flows = max_flows
        self._idle = idle_timeout_ns
        self._max_held_bytes = max_held_bytes
        self._max_held_segments = max_held_segments
        self._max_total_held = max_total_held_bytes
        self._max_message = max_message_bytes
        self.flows: OrderedDict[FlowKey, TcpStream] = OrderedDict()
        self.held_total = 0

    def __len__(self) -> int:
        return len(self.flows)

    def open(self, key: FlowKey, ts_ns: int, framer: Framer | None = None) -> TcpStream:
        """Start tracking a flow direction (evicting the least recently used if full); SIP
        framing unless another framer is given."""
        flows = self.flows
        if len(flows) >= self._max_flows:
            old_key = next(iter(flows))
            self._close(old_key, flows[old_key], count=False)
            self._evict("capacity")
        if framer is None:
            framer = StreamFramer(self._reasons, self._max_message)
        stream = flows[key] = TcpStream(framer, ts_ns)
        return stream

    def segment(
        self, key: FlowKey, stream: TcpStream, ts_ns: int, seq: int, flags: int, payload: bytes
    ) -> list[bytes]:
        """Feed one segment of a tracked flow; return the SIP messages it completes."""
        stream.last_ts = ts_ns
        self.flows.move_to_end(key)
        if flags & TCP_RST:
            self.close(key)
            return []
        if flags & TCP_SYN:
            if stream.isn != seq:  # else a retransmitted SYN
                if stream.next_seq >= 0:  # port reuse: a new connection
                    self._release(stream, count=True)
                    stream.framer.reset()
                    stream.next_pos = 0
                    stream.fin_pos = -1
                stream.isn = seq
                stream.next_seq = (seq + 1) & _MASK
            seq = (seq + 1) & _MASK
        elif stream.next_seq < 0:
            stream.next_seq = seq
        n = len(payload)
        delta = (seq - stream.next_seq) & _MASK
        msgs: list[bytes]
        if delta == 0:
            msgs = stream.framer.feed(payload) if n else []
            stream.next_seq = (seq + n) & _MASK
            stream.next_pos += n
            seg_pos = stream.next_pos - n
            if stream.held:
                self._drain(stream, msgs)
        elif delta & _HALF:  # behind: a retransmission, maybe with new bytes at its end
            back = 0x100000000 - delta
            seg_pos = stream.next_pos - back
            if n:
                self._reasons.add("tcp.retransmission")
            if back < n:
                msgs = stream.framer.feed(payload[back:])
                stream.next_seq = (seq + n) & _MASK
                stream.next_pos += n - back
                if stream.held:
                    self._drain(stream, msgs)
            else:
                msgs = []
        else:
            seg_pos = stream.next_pos + delta
            msgs = []
            if n:
                self._hold(stream, seg_pos, payload, msgs)
        if flags & TCP_FIN:
            stream.fin_pos = seg_pos + n
        if stream.fin_pos >= 0 and stream.next_pos >= stream.fin_pos:
            self._close(key, stream, count=True)
        return msgs

    def _hold(self, stream: TcpStream, pos: int, payload: bytes, msgs: list[bytes]) -> None:
        n = len(payload)
        self._reasons.add("tcp.out_of_order")
        heappush(stream.held, (pos, payload))
        stream.held_bytes += n
        self.held_total += n
        while stream.held and (
            pos + n - stream.next_pos > self._max_held_bytes
            or stream.held_bytes > self._max_held_bytes
            or len(stream.held) > self._max_held_segments
            or self.held_total > self._max_total_held
        ):
            # Give the missing bytes up: jump to the first held segment.
            self._reasons.add("tcp.gap")
            first = stream.held[0][0]
            stream.next_seq = (stream.next_seq + first - stream.next_pos) & _MASK
            stream.next_pos = first
            stream.framer.reset()
            self._drain(stream, msgs)

    def _drain(self, stream: TcpStream, msgs: list[bytes]) -> None:
        """Deliver held segments that have become contiguous."""
        held = stream.held
        framer = stream.framer
        while held and held[0][0] <= stream.next_pos:
            pos, seg = heappop(held)
            n = len(seg)
            stream.held_bytes -= n
            self.held_total -= n
            skip = stream.next_pos - pos
            if skip >= n:
                continue
            if skip:
                seg = seg[skip:]
                n -= skip
            msgs += framer.feed(seg)
            stream.next_pos += n
            stream.next_seq = (stream.next_seq + n) & _MASK

    def close(self, key: FlowKey) -> None:
        """Close a flow direction if tracked (FIN reached, RST)."""
        stream = self.flows.get(key)
        if stream is not None:
            self._close(key, stream, count=True)

    def _close(self, key: FlowKey, stream: TcpStream, count: bool) -> None:
        del self.flows[key]
        self._release(stream, count)
        if count:
            stream.framer.close()

    def _release(self, stream: TcpStream, count: bool) -> None:
        if stream.held:
            if count:
                self._reasons.add("tcp.gap")
            self.held_total -= stream.held_bytes
            stream.held = []
            stream.held_bytes = 0

    def _evict(self, reason: str) -> None:
        slug = "tcp_flows." + reason
        self._evictions[slug] = self._evictions.get(slug, 0) + 1

    def expire(self, now_ns: int) -> None:
        """Drop flows idle for longer than the timeout (packet time)."""
        flows = self.flows
        deadline = now_ns - self._idle
        while flows:
            key = next(iter(flows))
            stream = flows[key]
            if stream.last_ts > deadline:
                break
            self._close(key, stream, count=False)
            self._evict("timeout")
