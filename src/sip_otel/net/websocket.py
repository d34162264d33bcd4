"""SIP over WebSocket (RFC 7118) on a reassembled TCP stream. Sans-IO.

Compiled: the framer and the handshake check are ``sip_otel/_c/so_net_ws.c``; this module is
their Python face (the decoder uses the C directly).

Theory of operation
-------------------
The decoder recognises the opening handshake (RFC 6455 section 4) from the first client data
of a flow: an HTTP ``GET`` whose header block, in that first segment, has ``Upgrade:
websocket`` and ``sip`` among the ``Sec-WebSocket-Protocol`` values (:func:`is_sip_upgrade`).
Both directions of the connection then get a :class:`WebSocketFramer` instead of the SIP
stream framer; it has the same ``feed``/``reset``/``close`` interface as the SIP stream framer.

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

from sip_otel._core import WebSocketStreamFramer
from sip_otel._core import is_sip_upgrade as _is_sip_upgrade
from sip_otel.errors import Reasons

__all__ = ["MAX_HANDSHAKE_BYTES", "WebSocketFramer", "is_sip_upgrade"]

# Browsers send 0.5-2 KiB of handshake headers; cookies can add several KiB (4 KiB each).
MAX_HANDSHAKE_BYTES = 16 * 1024  # SO_WS_MAX_HANDSHAKE_BYTES


def is_sip_upgrade(data: bytes, off: int, end: int) -> bool:
    """Whether ``data[off:end]`` starts an HTTP GET upgrading to WebSocket with protocol sip."""
    return _is_sip_upgrade(data, off, end)


class WebSocketFramer:
    """One direction of a SIP-over-WebSocket connection; see the module docstring."""

    __slots__ = ("_c",)

    def __init__(self, reasons: Reasons, max_message_bytes: int, response: bool) -> None:
        self._c = WebSocketStreamFramer(reasons.counts, max_message_bytes, response)

    def pending(self) -> int:
        """Bytes buffered and not yet framed."""
        return self._c.pending()

    def feed(self, data: bytes) -> list[bytes]:
        """Append in-order stream bytes; return the complete SIP messages."""
        return self._c.feed(data)

    def reset(self) -> None:
        """Bytes were lost (TCP gap): frame boundaries cannot be found again."""
        self._c.reset()

    def close(self) -> None:
        """End of stream: count a partial handshake, frame or message."""
        self._c.close()
