"""SIP message framing on a reassembled TCP byte stream (RFC 3261 section 18.3).

No I/O here: :class:`StreamFramer` takes stream bytes in order and returns complete messages.

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
place: a segment holding exactly one message is returned as the same ``bytes`` object.
"""

from __future__ import annotations

import re
import sys

from sip_otel.errors import Reasons

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "StreamFramer", "looks_like_sip"]

# Real INVITEs with SDP are 1-4 KiB; a 64 KiB body (the most a UDP peer could ever send) plus
# headers still fits in twice 64 KiB. Bigger "messages" are junk or attacks.
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024

# RFC 3261 section 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" /
# "'" / "~"). The version literal is case-insensitive (section 7.1).
_TOKEN = rb"[!%'*+\-.0-9A-Z_`a-z~]+"
_VERSION = rb"[Ss][Ii][Pp]/2\.0"
_START = (
    rb"(?:"
    + _TOKEN
    + rb" [^ \r\n]+ "
    + _VERSION
    + rb"\r?\n|"
    + _VERSION
    + rb" [1-9][0-9][0-9](?:[ \r\n]|\Z))"
)
_START_LINE = re.compile(_START)
_START_LINE_AT_BOL = re.compile(rb"^" + _START, re.M)
# Content-Length or its compact form "l"; HCOLON allows blanks before the colon.
_CONTENT_LENGTH = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)

_LINE, _HEADERS, _BODY, _RESYNC, _SKIP = range(5)
_MISSING = -1
_BAD = -2


def _content_length(buf: bytes | bytearray, start: int, hend: int) -> int:
    """Content-Length of the header block ``buf[start:hend]``; _MISSING or _BAD.

    The canonical spelling is looked up first (a plain find, several times faster than the
    case-insensitive pattern that also covers the compact form and blanks before the colon).
    """
    k = buf.find(b"\nContent-Length:", start, hend)
    if k >= 0:
        k += 16
        value = buf[k : buf.find(b"\n", k, hend)]
    else:
        m = _CONTENT_LENGTH.search(buf, start, hend)
        if m is None:
            return _MISSING
        value = m.group(1)
    value = value.strip()
    if not value.isdigit() or len(value) > 10:
        return _BAD
    return int(value)


def looks_like_sip(data: bytes | bytearray, pos: int = 0, endpos: int = sys.maxsize) -> bool:
    """True if ``data[pos:endpos]`` starts with a SIP request line or status line.

    Request line: ``TOKEN SP Request-URI SP SIP/2.0`` and a line end; status line:
    ``SIP/2.0 SP 3DIGIT`` then SP, a line end or the end of the data.
    """
    return _START_LINE.match(data, pos, endpos) is not None


class StreamFramer:
    """Split one direction of a TCP stream into SIP messages by Content-Length."""

    __slots__ = ("_buf", "_max", "_need", "_reasons", "_scan", "_state")

    def __init__(
        self, reasons: Reasons, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self._reasons = reasons
        self._max = max_message_bytes
        self._buf = bytearray()
        self._state = _LINE
        self._scan = 0  # offset in _buf where the current search resumes
        self._need = 0  # _BODY: whole message length; _SKIP: bytes still to drop

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet emitted."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Append in-order stream bytes; return the messages they complete (maybe none)."""
        out: list[bytes] = []
        if not data:
            return out
        if self._state == _LINE and not self._buf:
            # Fast path: the segment is exactly one message with a CRLF header block.
            i = data.find(b"\n\r\n")
            if i > 0 and data.find(b"\n\n", 0, i + 2) < 0 and _START_LINE.match(data):
                clen = _content_length(data, 0, i + 3)
                if clen >= 0 and i + 3 + clen == len(data) <= self._max:
                    out.append(data)
                    return out
        if self._buf:
            buf: bytes | bytearray = self._buf
            self._buf += data
        else:
            buf = data
        pos = self._run(buf, out)
        if buf is data:
            if pos < len(data):
                self._buf = bytearray(data[pos:]) if pos else bytearray(data)
        elif pos:
            del self._buf[:pos]
        self._scan = max(self._scan - pos, 0)
        return out

    def reset(self) -> None:
        """Forget buffered bytes (after a stream gap); the next bytes are checked for a start."""
        self._buf = bytearray()
        self._state = _LINE
        self._scan = 0
        self._need = 0

    def close(self) -> None:
        """End of stream: an unfinished message is counted as ``sip_framing.incomplete``."""
        state = self._state
        if state in (_BODY, _HEADERS, _SKIP) or (state == _LINE and self._buf.strip(b"\r\n")):
            self._reasons.add("sip_framing.incomplete")
        self.reset()

    def _run(self, buf: bytes | bytearray, out: list[bytes]) -> int:
        """Frame ``buf`` from offset 0; return how many bytes were consumed."""
        n = len(buf)
        pos = 0
        state = self._state
        scan = self._scan
        need = self._need
        limit = self._max
        reasons = self._reasons
        while True:
            if state == _BODY:
                end = pos + need
                if end > n:
                    break
                out.append(
                    buf if (end == n and pos == 0 and type(buf) is bytes) else bytes(buf[pos:end])
                )
                pos = scan = end
                state = _LINE
            elif state == _LINE:
                while pos < n and buf[pos] in b"\r\n":
                    pos += 1
                if pos >= n:
                    scan = pos
                    break
                nl = buf.find(b"\n", max(scan, pos))
                if nl < 0:
                    if n - pos > limit:
                        reasons.add("sip_framing.too_large")
                        pos = scan = n
                        state = _RESYNC
                    else:
                        scan = n
                    break
                if _START_LINE.match(buf, pos, nl + 1) is None:
                    reasons.add("sip_framing.resync")
                    state = _RESYNC
                    scan = pos
                else:
                    state = _HEADERS
                    scan = nl
            elif state == _HEADERS:
                i = buf.find(b"\n\r\n", scan)
                if i >= 0:
                    j = buf.find(b"\n\n", scan, i + 2)
                    hend = j + 2 if j >= 0 else i + 3
                else:
                    j = buf.find(b"\n\n", scan)
                    if j < 0:
                        if n - pos > limit:
                            reasons.add("sip_framing.too_large")
                            pos = scan = n
                            state = _RESYNC
                        else:
                            scan = max(scan, n - 2)
                        break
                    hend = j + 2
                clen = _content_length(buf, pos, hend)
                if clen == _MISSING:
                    reasons.add("sip_framing.missing_content_length")
                    clen = 0
                elif clen == _BAD:
                    reasons.add("sip_framing.bad_content_length")
                    pos = scan = hend
                    state = _RESYNC
                    continue
                need = hend - pos + clen
                if need > limit:
                    reasons.add("sip_framing.too_large")
                    state = _SKIP
                else:
                    state = _BODY
            elif state == _RESYNC:
                last = buf.rfind(b"\n", max(scan, pos))
                if last < 0:
                    if n - pos > limit:  # one endless line: drop it
                        pos = n
                    scan = n
                    break
                m = _START_LINE_AT_BOL.search(buf, pos, last + 1)
                if m is None:
                    pos = scan = last + 1
                    continue
                pos = scan = m.start()
                state = _LINE
            else:  # _SKIP
                take = min(need, n - pos)
                pos += take
                need -= take
                if need:
                    scan = pos
                    break
                scan = pos
                state = _LINE
        self._state = state
        self._scan = scan
        self._need = need
        return pos
