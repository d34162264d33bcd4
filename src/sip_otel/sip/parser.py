"""Sans-IO SIP message parser: transport payload bytes -> :class:`SipMessage` objects.

No I/O, no clock: the caller passes the payload (with its packet time). Two entry points:

* :func:`parse_payload` never raises. It turns one UDP datagram (0..n messages back to back) or
  one TCP-framed message into messages, and counts every problem as a ``sip.<reason>`` slug.
* :func:`parse_message` parses one message at an offset and raises :class:`DecodeError` when the
  message cannot be used at all (start line or framing broken). Problems that still leave a
  message on the wire (a missing Call-ID, an unreadable CSeq, ...) do not raise: they are
  listed in ``SipMessage.defects`` and counted by :func:`parse_payload`. tshark counts such
  messages too, so a monitor should.

Decisions (RFC 3261 references in brackets):

* Line ends: CRLF or bare LF, mixed freely; the header block ends at the first empty line.
  Folded lines (starting with SP/HT) are joined with one SP [§7.3.1].
* CRLFs (and SP/HT/NUL) before a start line are skipped [§7.5]; a payload made only of them is
  a keep-alive (RFC 5626 §4.4.1 "CRLFCRLF" ping, NAT pings of NULs) counted as
  ``skipped.sip_keepalive``, not an error.
* Any other byte before the start line (e.g. junk in front of a request line in a datagram) is
  not searched past: the payload gives ``sip.bad_start_line``. tshark behaves the same way (its
  SIP heuristic looks at the first line only); in the zeek "junk-before-request" capture the junk
  is a separate 4-byte datagram of NULs, i.e. a keep-alive here, and the REGISTER after it
  parses (with its missing headers counted).
* Body length: Content-Length when present and valid; otherwise (missing or unreadable) the body
  is the rest of the payload [§18.3]. A Content-Length beyond the data keeps the message
  (``sip.truncated_body``; typical of a capture snap length or a lost fragment) with
  ``body_length`` = the bytes present. After a message, further bytes in a datagram are parsed
  as the next message (whitespace between messages is skipped).
* Header values are decoded as UTF-8 with U+FFFD replacement: strings are always safe to export.
"""

from __future__ import annotations

import re

from ..errors import DecodeError, Reasons
from ..net.types import SipPayload
from . import headers as _h
from .message import SipMessage

__all__ = [
    "KEEPALIVE_SLUG",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_LINES",
    "MAX_LINE_BYTES",
    "parse_message",
    "parse_payload",
]

# Limits against abuse. A typical header block is 0.5-1.5 KB in 10-30 lines (RFC 3261 §18.1.1
# wants UDP requests within ~1300 bytes); proxies with long Record-Route/Via sets and STIR
# Identity headers reach a few KB. Work per message is linear in these sizes and the strings
# kept per message are bounded by them.
MAX_HEADER_BYTES = 32 * 1024  # start line + header fields, without the blank line
MAX_HEADER_LINES = 256  # header fields after unfolding (~10x a heavy real message)
MAX_LINE_BYTES = 8 * 1024  # one line; PROTOS c07 start lines of 4.5 KB still parse, as in tshark

KEEPALIVE_SLUG = "skipped.sip_keepalive"

_VERSION = "SIP/2.0"
_WS = b"\r\n \t\x00"  # bytes skipped before a start line / between messages
_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]+")

# Methods of RFC 3261 and the common extensions, interned: a hit skips the token check.
_KNOWN_METHODS = {
    m: m
    for m in (
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE",
        "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "INFO", "PUBLISH",
    )
}


def _method(token: str) -> str | None:
    """Upper-cased method token, or None if it is not an RFC 3261 token."""
    known = _KNOWN_METHODS.get(token)
    if known is not None:
        return known
    if not _h.is_token(token):
        return None
    up = token.upper()
    return _KNOWN_METHODS.get(up, up)


def _start_line(line: str) -> tuple[bool, str, int, str, str]:
    """(is_request, method, status, reason_phrase, request_uri) or DecodeError."""
    if line[:4].upper() == "SIP/":
        sp = line.find(" ")
        version = line if sp < 0 else line[:sp]
        if version != _VERSION and version.upper() != _VERSION:
            raise DecodeError("sip.bad_version", version[:32])
        if sp < 0:
            raise DecodeError("sip.bad_status_code", "no status code")
        rest = line[sp + 1 :].lstrip(" ")
        code = rest[:3]
        if (
            not (code.isdigit() and code.isascii())
            or not 100 <= int(code) <= 699
            or rest[3:4] not in ("", " ")
        ):
            raise DecodeError("sip.bad_status_code", rest[:16])
        return False, "", int(code), rest[4:].strip(), ""
    sp1 = line.find(" ")
    sp2 = line.rfind(" ")
    if sp1 < 0 or sp2 == sp1:
        raise DecodeError("sip.bad_start_line", line[:32])
    version = line[sp2 + 1 :]
    if version != _VERSION and version.upper() != _VERSION:
        if version[:4].upper() == "SIP/":
            raise DecodeError("sip.bad_version", version[:32])
        raise DecodeError("sip.bad_start_line", line[:32])
    method = _method(line[:sp1])
    if method is None:
        raise DecodeError("sip.bad_method", line[:32])
    uri = line[sp1 + 1 : sp2].strip()
    if not uri:
        raise DecodeError("sip.bad_start_line", "empty Request-URI")
    return True, method, 0, "", uri


def _header_end(data: bytes, start: int) -> tuple[int, int]:
    """(end of the last header line, start of the body) or (-1, -1) if no empty line yet."""
    crlf = data.find(b"\n\r\n", start)
    lf = data.find(b"\n\n", start, crlf if crlf >= 0 else len(data))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def parse_message(
    data: bytes, start: int, ts_ns: int, origin: SipPayload | None
) -> tuple[SipMessage, int]:
    """Parse the message at ``data[start:]``; return it and the offset just past its body.

    Raises :class:`DecodeError` (``sip.<reason>``) if no usable message starts there.
    """
    hdr_end, body_start = _header_end(data, start)
    if hdr_end < 0:
        if len(data) - start > MAX_HEADER_BYTES:
            raise DecodeError("sip.headers_too_long")
        nl = data.find(b"\n", start)
        if nl >= 0:  # judge the start line if it is complete
            _start_line(data[start:nl].decode("utf-8", "replace").rstrip("\r"))
        raise DecodeError("sip.truncated_headers")
    if hdr_end - start > MAX_HEADER_BYTES:
        raise DecodeError("sip.headers_too_long")
    text = data[start:hdr_end].decode("utf-8", "replace")

    nl = text.find("\n")
    first = (text if nl < 0 else text[:nl]).rstrip("\r")
    if len(first) > MAX_LINE_BYTES:
        raise DecodeError("sip.line_too_long")
    is_request, method, status, phrase, uri = _start_line(first)
    msg = SipMessage(is_request, method, status, phrase, uri, ts_ns)
    msg.origin = origin
    defects: list[str] = []

    vals: list[str | None] = [None] * _h.N_CODES
    vias: list[str] = []
    reasons: list[str] = []
    content_length: str | None = None
    if nl >= 0:
        hdrs = text[nl + 1 :]
        if "\n " in hdrs or "\n\t" in hdrs:
            hdrs = _FOLD_RE.sub(" ", hdrs)
        lines = hdrs.split("\n")
        if len(lines) > MAX_HEADER_LINES:
            raise DecodeError("sip.too_many_headers")
        if len(hdrs) > MAX_LINE_BYTES and max(map(len, lines)) > MAX_LINE_BYTES:
            raise DecodeError("sip.line_too_long")
        codes = _h.HEADER_CODES
        for line in lines:
            colon = line.find(":")
            if colon <= 0:
                if "sip.bad_header_line" not in defects:
                    defects.append("sip.bad_header_line")
                continue
            code = codes.get(line[:colon])
            if code is None:
                code = _h.HEADER_CODES_LOWER.get(line[:colon].strip().lower(), 0)
            if not code:
                continue
            value = line[colon + 1 :].strip()
            if code == _h.H_VIA:
                vias.append(value)
            elif code == _h.H_CONTENT_LENGTH:
                if content_length is None:
                    content_length = value
                elif value != content_length:
                    content_length = ""  # conflicting values: unreadable
            elif code == _h.H_REASON:
                reasons.append(value)
            elif vals[code] is None:
                vals[code] = value

    # Content-Length decides where the message ends.
    cl: int | None = None
    if content_length is not None:
        cl = _h.uint(content_length)
        if cl is None:
            defects.append("sip.bad_content_length")
    avail = len(data) - body_start
    if cl is None:
        body_len = avail
    elif cl > avail:
        defects.append("sip.truncated_body")
        body_len = avail
    else:
        body_len = cl
    msg.content_length = cl
    msg.body_length = body_len

    _fill(msg, vals, vias, reasons, defects)
    if defects:
        msg.defects = tuple(defects)
    return msg, body_start + body_len


def _fill(
    msg: SipMessage,
    vals: list[str | None],
    vias: list[str],
    reasons: list[str],
    defects: list[str],
) -> None:
    """Copy the kept header values into ``msg``; append defect slugs."""
    # Via: the top value is the first value of the first Via header.
    if vias:
        count = 0
        for via in vias:
            count += len(_h.split_values(via))
        msg.via_count = count
        top = _h.parse_via(_h.first_value(vias[0]))
        if top is None:
            defects.append("sip.bad_via")
        else:
            msg.via_transport, msg.via_sent_by, msg.via_branch = top
    else:
        defects.append("sip.missing_via")

    v = vals[_h.H_CALL_ID]
    if v:
        msg.call_id = v
    else:
        defects.append("sip.missing_call_id")

    v = vals[_h.H_FROM]
    if v is None:
        defects.append("sip.missing_from")
    else:
        msg.from_uri, params = _h.name_addr(v)
        msg.from_tag = _h.param(params, "tag") or ""
    v = vals[_h.H_TO]
    if v is None:
        defects.append("sip.missing_to")
    else:
        msg.to_uri, params = _h.name_addr(v)
        msg.to_tag = _h.param(params, "tag") or ""

    v = vals[_h.H_CSEQ]
    if v is None:
        defects.append("sip.missing_cseq")
    else:
        parts = v.split()
        num = _h.uint(parts[0]) if len(parts) == 2 else None
        cmethod = _method(parts[1]) if num is not None else None
        if num is None or cmethod is None or num >= 2**31:  # RFC 3261 §8.1.1.5
            defects.append("sip.bad_cseq")
        else:
            msg.cseq = num
            msg.cseq_method = cmethod
            if not msg.is_request:
                msg.method = cmethod

    v = vals[_h.H_CONTENT_TYPE]
    if v:
        msg.content_type = v.split(";", 1)[0].strip().lower()

    v = vals[_h.H_CONTACT]
    if v:
        c = _h.first_value(v).strip()
        if c == "*":
            msg.contact_star = True
        else:
            e = _h.param(_h.name_addr(c)[1], "expires")
            if e is not None:
                msg.contact_expires = _number(e, defects)

    v = vals[_h.H_USER_AGENT] if msg.is_request else vals[_h.H_SERVER]
    if v is None:
        v = vals[_h.H_SERVER] if msg.is_request else vals[_h.H_USER_AGENT]
    if v:
        msg.user_agent = v

    v = vals[_h.H_EXPIRES]
    if v is not None:
        msg.expires = _number(v, defects)
    v = vals[_h.H_SESSION_EXPIRES]
    if v is not None:
        msg.session_expires = _number(v.split(";", 1)[0], defects)
        r = _h.param(v, "refresher")
        if r:
            msg.se_refresher = r.lower()
    v = vals[_h.H_MIN_SE]
    if v is not None:
        msg.min_se = _number(v.split(";", 1)[0], defects)
    v = vals[_h.H_RETRY_AFTER]
    if v is not None:  # delta-seconds [ comment ] *( ";" retry-param )
        end = len(v)
        for stop in (v.find(";"), v.find("(")):
            if 0 <= stop < end:
                end = stop
        msg.retry_after = _number(v[:end], defects)
    if reasons:
        msg.reason = ", ".join(reasons)


def _number(s: str, defects: list[str]) -> int | None:
    n = _h.uint(s.strip())
    if n is None and "sip.bad_header_value" not in defects:
        defects.append("sip.bad_header_value")
    return n


def _skip_ws(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n and data[pos] in _WS:
        pos += 1
    return pos


def parse_payload(payload: SipPayload, reasons: Reasons) -> list[SipMessage]:
    """All messages in one transport payload; problems are counted in ``reasons``, never raised."""
    data = payload.data
    ts_ns = payload.ts_ns
    out: list[SipMessage] = []
    pos = 0
    if not data or data[0] in _WS:
        pos = _skip_ws(data, 0)
        if pos >= len(data):
            reasons.add(KEEPALIVE_SLUG)
            return out
    n = len(data)
    while pos < n:
        try:
            msg, end = parse_message(data, pos, ts_ns, payload)
        except DecodeError as exc:
            reasons.add(exc.slug)
            break
        out.append(msg)
        for slug in msg.defects:
            reasons.add(slug)
        if end >= n:
            break
        pos = _skip_ws(data, end) if data[end] in _WS else end
    return out
