"""SIP message framing on a reassembled TCP byte stream (RFC 3261 section 18.3).

No I/O here: :class:`StreamFramer` takes stream bytes in order and returns complete messages.
Compiled: the framer and the start-line sniff are ``sip_otel/_c/so_framing.c``
(``so_sip_framer_ops``, ``so_looks_like_sip``); this module is their Python face.

Theory of operation
-------------------
On a stream transport a SIP message ends after its header block (terminated by an empty line,
CRLF CRLF, with bare LF LF tolerated) plus ``Content-Length`` body bytes. The framer is a small
state machine over one buffer:

``LINE``     at a (supposed) message start. CR/LF keep-alives (RFC 5626 section 3.5.1) are
             skipped silently. When the first line is complete it must look like a SIP start
             line, else we go to ``RESYNC``.
``HEADERS``  waiting for the empty line that ends the header block; then Content-Length is read
             (full or compact ``l`` name, any case). Missing: counted, taken as 0. Not a number:
             counted, the header block is dropped and we go to ``RESYNC``. Too large: counted
             and the whole message is skipped without buffering (``SKIP``), keeping the framing.
``BODY``     waiting until header + body bytes are buffered; then one message is emitted.
``RESYNC``   after junk or a mid-stream join: complete lines are dropped until one looks like a
             SIP start line (counted once per episode as ``sip_framing.resync``).
``SKIP``     discarding the rest of an over-sized message.

Every search remembers where it stopped (``_scan``), so a message arriving one byte at a time
costs linear, not quadratic, time. When nothing is buffered the incoming segment is framed in
place: only an unfinished tail is copied into the buffer.
"""

from __future__ import annotations

import sys

from sip_otel._core import SipStreamFramer
from sip_otel._core import looks_like_sip as _looks_like_sip
from sip_otel.errors import Reasons

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "StreamFramer", "looks_like_sip"]

# Real INVITEs with SDP are 1-4 KiB; a 64 KiB body (the most a UDP peer could ever send) plus
# headers still fits in twice 64 KiB. Bigger "messages" are junk or attacks.
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024  # SO_SIP_DEFAULT_MAX_MESSAGE_BYTES


def looks_like_sip(data: bytes | bytearray, pos: int = 0, endpos: int = sys.maxsize) -> bool:
    """True if ``data[pos:endpos]`` starts with a SIP request line or status line.

    Request line: ``TOKEN SP Request-URI SP SIP/2.0`` and a line end; status line:
    ``SIP/2.0 SP 3DIGIT`` then SP, a line end or the end of the data.
    """
    return _looks_like_sip(data, pos, endpos)


class StreamFramer:
    """Split one direction of a TCP stream into SIP messages by Content-Length."""

    __slots__ = ("_c",)

    def __init__(
        self, reasons: Reasons, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self._c = SipStreamFramer(reasons.counts, max_message_bytes)

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet emitted."""
        return self._c.pending()

    def feed(self, data: bytes) -> list[bytes]:
        """Append in-order stream bytes; return the messages they complete (maybe none)."""
        return self._c.feed(data)

    def reset(self) -> None:
        """Forget buffered bytes (after a stream gap); the next bytes are checked for a start."""
        self._c.reset()

    def close(self) -> None:
        """End of stream: an unfinished message is counted as ``sip_framing.incomplete``."""
        self._c.close()
