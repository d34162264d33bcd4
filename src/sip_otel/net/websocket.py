"""SIP over WebSocket (RFC 7118) on a reassembled TCP stream. Sans-IO.

Theory of operation
-------------------
The decoder recognises the opening handshake (RFC 6455 section 4) from the first client data
of a flow: an HTTP ``GET`` whose header block, in that first segment, has ``Upgrade:
websocket`` and ``sip`` among the ``Sec-WebSocket-Protocol`` values (:func:`is_sip_upgrade`).
Both directions of the connection then get a :class:`WebSocketFramer` instead of the SIP
stream framer; it has the same ``feed``/``reset``/``close`` interface.

``HANDSHAKE``  the HTTP header block is buffered up to its empty line (at most
               :data:`MAX_HANDSHAKE_BYTES`). The server side must answer ``101``; any other
               status means the upgrade was refused (``skipped.websocket_refused``).
``FRAMES``     RFC 6455 section 5.2 frames: FIN, RSV, opcode; MASK bit, 7/16/64-bit payload
               length, 4-byte masking key. Text and binary frames start a message, continuation
               frames extend it, the frame with FIN ends it: each complete data message is one
               SIP message. Control frames (close, ping, pong) are skipped. A message growing
               past the message limit is skipped frame by frame without buffering
               (``sip_framing.too_large``), keeping the framing.
``DEAD``       after a malformed frame (``net.bad_websocket_frame``), a compressed frame
               (``skipped.websocket_compressed``: permessage-deflate is not decoded), a refused
               upgrade, an over-long handshake, or a TCP gap (frame boundaries are lost): the
               rest of the flow is ignored.

Closing with a partial message or handshake buffered counts ``sip_framing.incomplete``.
"""

from __future__ import annotations

import re
import struct

from sip_otel.errors import Reasons

__all__ = ["MAX_HANDSHAKE_BYTES", "WebSocketFramer", "is_sip_upgrade"]

# Browsers send 0.5-2 KiB of handshake headers; cookies can add several KiB (4 KiB each).
MAX_HANDSHAKE_BYTES = 16 * 1024

_UPGRADE = re.compile(rb"\nupgrade[ \t]*:[^\r\n]*\bwebsocket\b", re.I)
_PROTOCOL = re.compile(rb"\nsec-websocket-protocol[ \t]*:([^\r\n]*)", re.I)
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")

_HANDSHAKE, _FRAMES, _DEAD = range(3)
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10


def is_sip_upgrade(data: bytes, off: int, end: int) -> bool:
    """Whether ``data[off:end]`` starts an HTTP GET upgrading to WebSocket with protocol sip."""
    if not data.startswith(b"GET ", off):
        return False
    limit = min(end, off + MAX_HANDSHAKE_BYTES)
    head_end = data.find(b"\r\n\r\n", off, limit)
    if head_end < 0:
        head_end = limit
    if _UPGRADE.search(data, off, head_end) is None:
        return False
    for m in _PROTOCOL.finditer(data, off, head_end):
        if any(v.strip().lower() == b"sip" for v in m.group(1).split(b",")):
            return True
    return False


def _unmask(payload: bytes | bytearray, key: bytes | bytearray) -> bytes:
    """XOR with the 4-byte masking key repeated (RFC 6455 section 5.3), as one big integer."""
    n = len(payload)
    keys = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(
        n, "little"
    )


class WebSocketFramer:
    """One direction of a SIP-over-WebSocket connection; see the module docstring."""

    __slots__ = (
        "_buf",
        "_discard",
        "_in_msg",
        "_max",
        "_parts",
        "_reasons",
        "_response",
        "_size",
        "_skip",
        "_state",
    )

    def __init__(self, reasons: Reasons, max_message_bytes: int, response: bool) -> None:
        self._reasons = reasons
        self._max = max_message_bytes
        self._response = response  # server side: the handshake must be a 101
        self._state = _HANDSHAKE
        self._buf = bytearray()
        self._parts: list[bytes] = []  # unmasked payloads of the message being assembled
        self._size = 0  # bytes in _parts
        self._in_msg = False
        self._discard = False  # the message being assembled went over the limit
        self._skip = 0  # payload bytes of an over-limit frame still to discard

    def pending(self) -> int:
        """Bytes buffered and not yet framed."""
        return len(self._buf) + self._size

    def feed(self, data: bytes) -> list[bytes]:
        """Append in-order stream bytes; return the complete SIP messages."""
        out: list[bytes] = []
        if self._state == _DEAD:
            return out
        buf = self._buf
        buf += data
        if self._state == _HANDSHAKE:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                if len(buf) > MAX_HANDSHAKE_BYTES:
                    self._fail("net.bad_websocket_handshake")
                return out
            if self._response and not (buf.startswith(b"HTTP/1.1 101") and buf[12] in (0x20, 0x0D)):
                self._fail("skipped.websocket_refused")
                return out
            del buf[: i + 4]
            self._state = _FRAMES
        self._frames(buf, out)
        return out

    def _frames(self, buf: bytearray, out: list[bytes]) -> None:
        pos = 0
        n = len(buf)
        while True:
            if self._skip:
                k = min(self._skip, n - pos)
                pos += k
                self._skip -= k
                if self._skip:
                    break
            if n - pos < 2:
                break
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            h = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = _U16.unpack_from(buf, h)[0]
                h += 2
            elif length == 127:
                if n - pos < 10:
                    break
                length = _U64.unpack_from(buf, h)[0]
                h += 8
                if length >> 63:  # the most significant bit must be 0
                    self._fail("net.bad_websocket_frame")
                    return
            key = b""
            if b1 & 0x80:
                if n - h < 4:
                    break
                key = bytes(buf[h : h + 4])
                h += 4
            fin = b0 & 0x80
            opcode = b0 & 0x0F
            if b0 & 0x70:
                # RSV1 is permessage-deflate's "compressed" bit (RFC 7692); others: no extension.
                compressed = b0 & 0x70 == 0x40
                self._fail(
                    "skipped.websocket_compressed" if compressed else "net.bad_websocket_frame"
                )
                return
            if opcode >= _CLOSE:
                if opcode > _PONG or not fin or length > 125:
                    self._fail("net.bad_websocket_frame")
                    return
                if n - h < length:
                    break
                pos = h + length
                continue
            # A continuation needs a message in progress, a text/binary frame needs none.
            if opcode > _BINARY or (opcode == _CONTINUATION) != self._in_msg:
                self._fail("net.bad_websocket_frame")
                return
            if self._discard or self._size + length > self._max:
                if not self._discard:
                    self._reasons.add("sip_framing.too_large")
                    self._discard = True
                    self._parts = []
                    self._size = 0
                pos = h
                self._skip = length
                self._in_msg = not fin
                self._discard = self._in_msg
                continue
            if n - h < length:
                break
            payload = buf[h : h + length]
            pos = h + length
            self._parts.append(_unmask(payload, key) if key else bytes(payload))
            self._size += length
            if fin:
                parts = self._parts
                msg = parts[0] if len(parts) == 1 else b"".join(parts)
                self._parts = []
                self._size = 0
                self._in_msg = False
                if msg:
                    out.append(msg)
            else:
                self._in_msg = True
        if pos:
            del buf[:pos]

    def _fail(self, slug: str) -> None:
        self._reasons.add(slug)
        self._state = _DEAD
        self._buf = bytearray()
        self._parts = []
        self._size = 0

    def reset(self) -> None:
        """Bytes were lost (TCP gap): frame boundaries cannot be found again."""
        self._state = _DEAD
        self._buf = bytearray()
        self._parts = []
        self._size = 0

    def close(self) -> None:
        """End of stream: count a partial handshake, frame or message."""
        if self._state != _DEAD and (self._buf or self._in_msg):
            self._reasons.add("sip_framing.incomplete")
        self._state = _DEAD
        self._buf = bytearray()
        self._parts = []
        self._size = 0
