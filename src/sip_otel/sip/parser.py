"""Sans-IO SIP message parser: transport payload bytes -> :class:`SipMessage` objects.

No I/O, no clock: the caller passes the payload (with its packet time). Two entry points:

* :func:`parse_payload` never raises. It turns one UDP datagram (0..n messages back to back) or
  one TCP-framed message into messages, and counts every problem as a slug (:data:`SLUGS`).
* :func:`parse_message` parses one message at an offset and raises :class:`DecodeError` when no
  usable message starts there (start line or framing broken). Problems that still leave a
  message on the wire (a missing Call-ID, an unreadable CSeq, ...) do not raise: they are
  listed in ``SipMessage.defects`` and counted by :func:`parse_payload`. tshark counts such
  messages too, and so must a monitor.

Decisions (RFC 3261 sections in brackets):

* Line ends: CRLF or bare LF, mixed freely; a lone CR also ends the start line (as in
  Wireshark). The header block ends at the first empty line. Folded lines (starting with SP/HT)
  are joined with one SP [§7.3.1].
* CRLFs before a start line are skipped [§7.5]. A payload made only of CR, LF, SP, HT and NUL
  bytes (or empty) is a keep-alive (RFC 5626 §4.4.1 CRLFCRLF ping, NAT pings of NULs), counted
  as ``skipped.sip_keepalive``; the same bytes after the last message are padding, ignored.
* Junk before a start line is not searched past: the payload gives ``sip.bad_start_line`` (or
  ``sip.bad_method`` when the junk sticks to the method; junk made of token characters reads
  as an unknown method). tshark does the same (its heuristic reads the first line only). In the
  zeek "junk-before-request" capture the junk is a separate 4-byte datagram of NULs (a
  keep-alive here) and the REGISTER after it parses, its five missing headers counted.
* Headers without their empty line (a datagram cut by the snap length): the start line and the
  complete header lines make a message, with ``sip.truncated_headers`` and ``body_length`` 0
  (tshark counts those too). Without a complete start line nothing is usable.
* Body: Content-Length when present and valid, else (missing or unreadable) the rest of the
  payload [§18.3]. A Content-Length beyond the data keeps the message (``sip.truncated_body``,
  ``body_length`` = bytes present). Bytes after a body are the next message if they start
  like one; otherwise ``skipped.sip_trailing_bytes`` (§18.3: discard them).
* Header values are decoded as UTF-8 with U+FFFD replacement: strings are always exportable.
* Methods are case-sensitive (§7.1): ``invite`` is an unknown method, not INVITE, and is kept
  as spelt (as tshark counts it); a response's ``method`` is its CSeq method. Header names
  are case-insensitive, compact forms included (headers.py).

Speed: one ``bytes.find`` for the end of headers, one decode and one split of the header block,
then per line one ``str.partition`` and one dict lookup mapping the name to a small code; only
the ~15 headers the monitor needs are kept (first occurrence, in a list indexed by the code; all
Via and Reason values), and parsed after the loop: fast paths for the common shapes, and small
memos for values that repeat across messages (``MEMO_ENTRIES``). Rare syntax (folding, a bare-LF
empty line) is detected inside the loop at no cost to the common case and handled by a second
pass.
"""

from __future__ import annotations

import re
from typing import TypeVar

from ..errors import DecodeError, Reasons
from ..net.types import SipPayload
from .headers import (
    H_CALL_ID,
    H_CONTACT,
    H_CONTENT_LENGTH,
    H_CONTENT_TYPE,
    H_CSEQ,
    H_EXPIRES,
    H_FROM,
    H_MIN_SE,
    H_REASON,
    H_RETRY_AFTER,
    H_SERVER,
    H_SESSION_EXPIRES,
    H_TO,
    H_USER_AGENT,
    H_VIA,
    HEADER_CODES,
    HEADER_CODES_LOWER,
    N_CODES,
    count_values,
    first_value,
    is_token,
    name_addr,
    param,
    parse_via,
    uint,
    uri_tag,
)
from .message import SipMessage

__all__ = [
    "DEFECT_SLUGS",
    "FATAL_SLUGS",
    "KEEPALIVE_SLUG",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_LINES",
    "MAX_LINE_BYTES",
    "MEMO_ENTRIES",
    "MEMO_KEY_CHARS",
    "MEMO_TABLES",
    "SLUGS",
    "TRAILING_SLUG",
    "clear_memos",
    "parse_message",
    "parse_payload",
]

# Limits against abuse. A typical header block is 0.5-1.5 KB in 10-30 lines (RFC 3261 §18.1.1
# wants UDP requests within ~1300 bytes); proxies with long Record-Route/Via sets and STIR
# Identity headers reach a few KB. Work per message is linear in these sizes and the strings
# kept per message are bounded by them.
MAX_HEADER_BYTES = 32 * 1024  # start line + header fields, without the blank line
MAX_HEADER_LINES = 256  # lines, start line included (~10x a heavy real message)
MAX_LINE_BYTES = 8 * 1024  # one line; PROTOS c07 start lines of 4.5 KB still parse, as in tshark

KEEPALIVE_SLUG = "skipped.sip_keepalive"
TRAILING_SLUG = "skipped.sip_trailing_bytes"
_NOT_A_START = frozenset({"sip.bad_start_line", "sip.bad_method", "sip.truncated_headers"})

# Every slug this module counts (a bounded label set for telemetry).
FATAL_SLUGS = frozenset({  # DecodeError from parse_message: no message
    "sip.bad_start_line", "sip.bad_version", "sip.bad_status_code", "sip.bad_method",
    "sip.truncated_headers", "sip.headers_too_long", "sip.too_many_headers", "sip.line_too_long",
})
DEFECT_SLUGS = frozenset({  # SipMessage.defects: the message is kept
    "sip.missing_via", "sip.bad_via", "sip.missing_call_id", "sip.missing_from",
    "sip.missing_to", "sip.missing_cseq", "sip.bad_cseq", "sip.bad_header_line",
    "sip.bad_content_length", "sip.truncated_body", "sip.truncated_headers",
    "sip.bad_header_value",
})
SLUGS = FATAL_SLUGS | DEFECT_SLUGS | {KEEPALIVE_SLUG, TRAILING_SLUG}

_VERSION = "SIP/2.0"
_WS = b"\r\n \t\x00"  # keep-alive and padding bytes
_NOT_WS = re.compile(rb"[^\r\n \t\x00]")  # regex searches: no copy, no Python-level loop
_NOT_CRLF = re.compile(rb"[^\r\n]")
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
    """The method token as on the wire (RFC 3261 §7.1: case-sensitive), or None if it is not
    an RFC 3261 token."""
    known = _KNOWN_METHODS.get(token)
    if known is not None:
        return known
    if not is_token(token):
        return None
    return token


def _start_line(line: str) -> tuple[bool, str, int, str, str]:
    """(is_request, method, status, reason_phrase, request_uri) or DecodeError."""
    if line.startswith("SIP/2.0 "):  # fast path: "SIP/2.0 NNN phrase"
        code = line[8:11]
        if code.isdigit() and code.isascii() and line[11:12] in ("", " "):
            status = int(code)
            if 100 <= status <= 699:
                return False, "", status, line[12:].strip(), ""
    parts = line.split(" ")
    if len(parts) == 3 and parts[2] == _VERSION:  # fast path: "METHOD URI SIP/2.0"
        method = _KNOWN_METHODS.get(parts[0]) or _method(parts[0])
        if method is not None and parts[1]:
            return True, method, 0, "", parts[1]
    line = line.rstrip(" \t")  # lenient: trailing blanks after the version / phrase
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 1)
        version = parts[0]
        if version != _VERSION and version.upper() != _VERSION:
            raise DecodeError("sip.bad_version", version[:32])
        rest = line[len(version) + 1 :].lstrip(" ")
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


def _scan(
    lines: list[str],
    vals: list[str | None],
    vias: list[str],
    reasons: list[str],
    defects: list[str],
) -> str:
    """Sort header lines (``lines[0]`` is the start line) into ``vals``/``vias``/``reasons``.

    Returns "" or, at the first line that needs the slow path, "fold" (a continuation line) or
    "blank" (an empty line: a bare-LF end of headers earlier than the CRLF one).
    """
    codes = HEADER_CODES
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        code = codes.get(name)
        if code is None:
            if not line:
                return "blank"
            if line[0] in " \t":
                return "fold"
            name = name.strip()
            if not colon or not name:
                if "sip.bad_header_line" not in defects:
                    defects.append("sip.bad_header_line")
                continue
            code = HEADER_CODES_LOWER.get(name.lower(), 0)
        if code > H_REASON:  # headers kept at their first occurrence (codes sorted for this)
            if vals[code] is None:
                vals[code] = value
        elif code == H_VIA:
            vias.append(value)
        elif code:
            reasons.append(value.strip())
    return ""


# Memo tables of parsed values that take few distinct values: start lines ("SIP/2.0 180
# Ringing", "ACK sip:...": a dialog's requests share their Request-URI), CSeq (shared by a
# transaction's request and responses), Content-Length, Content-Type, Contact (one per UA). A
# dict lookup on the raw string replaces a parse and a few function calls. Each parse is a pure
# function of the string: the memos change nothing but speed, and the parser stays a
# deterministic function of its input (module state, never observable in results).
# Bounded: a table holds at most MEMO_ENTRIES keys of at most MEMO_KEY_CHARS characters (longer
# strings are parsed every time) and is simply cleared when full: no LRU bookkeeping on the hot
# path, and a clear costs one miss per live key. Nothing is counted: a clear loses no data.
# 4096 keys hold the CSeq values of ~1.4 s of calls at 1000 calls/s when every call has its
# own CSeq numbers (SIPp's are the same in every call); < 1 MB per table typically, < 3 MB at
# worst. Not memoized, on purpose: From/To, Via and whole header lines. They are new in every
# dialog or transaction, and such tables measured slower than parsing (cache misses on a cold
# table cost more than the parse saves), though faster on a hot one.
MEMO_ENTRIES = 4096
MEMO_KEY_CHARS = 256

_T = TypeVar("_T")
_StartLine = tuple[bool, str, int, str, str]
_START_MEMO: dict[str, _StartLine] = {}  # raw first line -> _start_line result (no errors)
_CSEQ_MEMO: dict[str, tuple[int, str]] = {}  # -> (number, method); (-1, "") if unreadable
_CL_MEMO: dict[str, int] = {}  # Content-Length value -> number; -1 if unreadable
_CTYPE_MEMO: dict[str, str] = {}  # Content-Type value -> media type, lower-case
_CONTACT_MEMO: dict[str, tuple[bool, str | None]] = {}  # -> ("*", raw ;expires= value)
MEMO_TABLES = (_START_MEMO, _CSEQ_MEMO, _CL_MEMO, _CTYPE_MEMO, _CONTACT_MEMO)


def clear_memos() -> None:
    """Empty the memo tables (memory back; results never depend on them)."""
    for memo in MEMO_TABLES:
        memo.clear()


def _remember(memo: dict[str, _T], key: str, value: _T) -> _T:
    """Store ``value`` under ``key`` within the bounds above; return ``value``."""
    if len(key) <= MEMO_KEY_CHARS:
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()
        memo[key] = value
    return value


def _first_line(line: str) -> _StartLine:
    """The start line (``lines[0]`` of the header block) parsed, or DecodeError."""
    first = line
    cr = first.find("\r")
    if cr >= 0:  # CR ends the start line even without LF (as in Wireshark)
        first = first[:cr]
    if len(first) > MAX_LINE_BYTES:
        raise DecodeError("sip.line_too_long")
    return _remember(_START_MEMO, line, _start_line(first))


def _cseq(v: str) -> tuple[int, str]:
    """(number, method) of a CSeq value; (-1, "") if unreadable."""
    parts = v.split()
    num = uint(parts[0]) if len(parts) == 2 else None
    cmethod = _method(parts[1]) if num is not None else None
    if num is None or cmethod is None or num >= 2**31:  # RFC 3261 §8.1.1.5
        return _remember(_CSEQ_MEMO, v, (-1, ""))
    return _remember(_CSEQ_MEMO, v, (num, cmethod))


def _contact(v: str) -> tuple[bool, str | None]:
    """("Contact: *", raw ``;expires=`` of the first value or None)."""
    first = first_value(v).strip()
    if first == "*":
        return _remember(_CONTACT_MEMO, v, (True, None))
    expires = None
    if "expires" in first.lower():  # cheap pre-check before splitting the value
        params = name_addr(first)[1]
        if params:
            expires = param(params, "expires")
    return _remember(_CONTACT_MEMO, v, (False, expires))


def parse_message(
    data: bytes, start: int, ts_ns: int, origin: SipPayload | None
) -> tuple[SipMessage, int]:
    """Parse the message at ``data[start:]``; return it and the offset just past its body.

    Raises :class:`DecodeError` (``sip.<reason>``) if no usable message starts there.
    """
    # End of headers: the first "\n\r\n" (CRLF or LF line, then CRLF); an earlier bare-LF
    # empty line is rare and found by _scan ("blank"), which costs nothing when absent.
    hdr_end = data.find(b"\n\r\n", start)
    body_start = hdr_end + 3
    if hdr_end < 0:
        hdr_end = data.find(b"\n\n", start)
        body_start = hdr_end + 2
    return _parse(data, start, hdr_end, body_start, ts_ns, origin)


def _parse(
    data: bytes,
    start: int,
    hdr_end: int,
    body_start: int,
    ts_ns: int,
    origin: SipPayload | None,
) -> tuple[SipMessage, int]:
    truncated = hdr_end < 0
    if truncated:  # no empty line: keep the complete lines (a snap-length cut keeps a message)
        hdr_end = data.rfind(b"\n", start)
        body_start = len(data)
        if hdr_end < 0:
            if body_start - start > MAX_HEADER_BYTES:
                raise DecodeError("sip.headers_too_long")
            raise DecodeError("sip.truncated_headers", "no complete start line")
    if hdr_end - start > MAX_HEADER_BYTES:
        raise DecodeError("sip.headers_too_long")
    text = data[start:hdr_end].decode("utf-8", "replace")
    lines = text.split("\n")

    first = lines[0]
    sl = _START_MEMO.get(first)
    if sl is None:
        sl = _first_line(first)
    if len(lines) > MAX_HEADER_LINES:
        raise DecodeError("sip.too_many_headers")
    if len(text) > MAX_LINE_BYTES and max(len(x.rstrip("\r")) for x in lines) > MAX_LINE_BYTES:
        raise DecodeError("sip.line_too_long")

    vals: list[str | None] = [None] * N_CODES  # code -> raw value of its first occurrence
    vias: list[str] = []
    reasons: list[str] = []
    defects: list[str] = []
    slow = _scan(lines, vals, vias, reasons, defects)
    if slow:
        if slow == "fold":  # RFC 3261 §7.3.1: a continuation line joins the previous one
            orphan = lines[1][:1] in (" ", "\t")  # continues the start line: not a header
            lines = _FOLD_RE.sub(" ", text).split("\n")
            vals = [None] * N_CODES
            del vias[:], reasons[:], defects[:]
            slow = _scan(lines, vals, vias, reasons, defects)
            if orphan:
                defects.append("sip.bad_header_line")
        if slow == "blank":  # headers end at an earlier bare-LF empty line
            lf = data.find(b"\n\n", start, hdr_end + 1)
            return _parse(data, start, lf, lf + 2, ts_ns, origin)
    is_request = sl[0]
    msg = SipMessage(is_request, sl[1], sl[2], sl[3], sl[4], ts_ns)
    msg.origin = origin

    # Content-Length decides where the message ends.
    cl: int | None = None
    v = vals[H_CONTENT_LENGTH]
    if v is not None:
        n = _CL_MEMO.get(v)
        if n is None:
            n = uint(v.strip())
            n = _remember(_CL_MEMO, v, -1 if n is None else n)
        if n < 0:
            defects.append("sip.bad_content_length")
        else:
            cl = n
    avail = len(data) - body_start
    if truncated:
        defects.append("sip.truncated_headers")
        body_len = 0
    elif cl is None:
        body_len = avail
    elif cl > avail:
        defects.append("sip.truncated_body")
        body_len = avail
    else:
        body_len = cl
    msg.content_length = cl
    msg.body_length = body_len

    # Via: the top value is the first value of the first Via header.
    if vias:
        v = vias[0]
        if len(vias) == 1 and "," not in v:  # one value (no comma, quoted or not)
            msg.via_count = 1
        else:
            count = 0
            for via in vias:
                count += count_values(via)
            msg.via_count = count
            v = first_value(v)
        top = parse_via(v)
        if top is None:
            defects.append("sip.bad_via")
        else:
            msg.via_transport, msg.via_sent_by, msg.via_branch = top
    else:
        defects.append("sip.missing_via")

    v = vals[H_CALL_ID]
    if v and (v := v.strip()):
        msg.call_id = v
    else:
        defects.append("sip.missing_call_id")

    v = vals[H_FROM]
    if v is None:
        defects.append("sip.missing_from")
    else:
        msg.from_uri, msg.from_tag = uri_tag(v)
    v = vals[H_TO]
    if v is None:
        defects.append("sip.missing_to")
    else:
        msg.to_uri, msg.to_tag = uri_tag(v)

    v = vals[H_CSEQ]
    if v is None:
        defects.append("sip.missing_cseq")
    else:
        cseq = _CSEQ_MEMO.get(v)
        if cseq is None:
            cseq = _cseq(v)
        if cseq[0] < 0:
            defects.append("sip.bad_cseq")
        else:
            msg.cseq, msg.cseq_method = cseq
            if not is_request:
                msg.method = cseq[1]

    v = vals[H_CONTENT_TYPE]
    if v:
        ctype = _CTYPE_MEMO.get(v)
        if ctype is None:
            ctype = _remember(_CTYPE_MEMO, v, v.split(";", 1)[0].strip().lower())
        msg.content_type = ctype

    v = vals[H_CONTACT]
    if v:
        contact = _CONTACT_MEMO.get(v)
        if contact is None:
            contact = _contact(v)
        if contact[0]:
            msg.contact_star = True
        elif contact[1] is not None:
            msg.contact_expires = _number(contact[1], defects)

    v = vals[H_USER_AGENT if is_request else H_SERVER]
    if v is None:
        v = vals[H_SERVER if is_request else H_USER_AGENT]
    if v:
        msg.user_agent = v.strip()

    if (
        vals[H_EXPIRES] is not None
        or vals[H_SESSION_EXPIRES] is not None
        or vals[H_MIN_SE] is not None
        or vals[H_RETRY_AFTER] is not None
    ):
        _rare(msg, vals, defects)
    if reasons:
        msg.reason = ", ".join(reasons)
    if defects:
        msg.defects = tuple(defects)
    return msg, body_start + body_len


def _rare(msg: SipMessage, vals: list[str | None], defects: list[str]) -> None:
    """Expires, Session-Expires, Min-SE, Retry-After."""
    v = vals[H_EXPIRES]
    if v is not None:
        msg.expires = _number(v, defects)
    v = vals[H_SESSION_EXPIRES]
    if v is not None:  # delta-seconds *( ";" se-params )
        msg.session_expires = _number(v.split(";", 1)[0], defects)
        r = param(v, "refresher")
        if r:
            msg.se_refresher = r.lower()
    v = vals[H_MIN_SE]
    if v is not None:
        msg.min_se = _number(v.split(";", 1)[0], defects)
    v = vals[H_RETRY_AFTER]
    if v is not None:  # delta-seconds [ comment ] *( ";" retry-param )
        end = len(v)
        for stop in (v.find(";"), v.find("(")):
            if 0 <= stop < end:
                end = stop
        msg.retry_after = _number(v[:end], defects)


def _number(s: str, defects: list[str]) -> int | None:
    n = uint(s.strip())
    if n is None and "sip.bad_header_value" not in defects:
        defects.append("sip.bad_header_value")
    return n


def _next_start(data: bytes, pos: int) -> int:
    """Where the next start line begins: CRLFs skipped (§7.5); -1 if only _WS bytes remain."""
    if _NOT_WS.search(data, pos) is None:
        return -1
    m = _NOT_CRLF.search(data, pos)
    return len(data) if m is None else m.start()


def parse_payload(payload: SipPayload, reasons: Reasons) -> list[SipMessage]:
    """All messages in one transport payload; problems are counted in ``reasons``, never raised."""
    data = payload.data
    ts_ns = payload.ts_ns
    out: list[SipMessage] = []
    pos = 0
    if not data or data[0] in _WS:
        pos = _next_start(data, 0)
        if pos < 0:
            reasons.add(KEEPALIVE_SLUG)
            return out
    n = len(data)
    while True:
        # parse_message, inlined: find the end of headers, then parse.
        hdr_end = data.find(b"\n\r\n", pos)
        body_start = hdr_end + 3
        if hdr_end < 0:
            hdr_end = data.find(b"\n\n", pos)
            body_start = hdr_end + 2
        try:
            msg, end = _parse(data, pos, hdr_end, body_start, ts_ns, payload)
        except DecodeError as exc:
            # Bytes after a message that do not start like one: RFC 3261 §18.3 says discard
            # them (a Content-Length shorter than the body leaves its tail here).
            reasons.add(TRAILING_SLUG if out and exc.slug in _NOT_A_START else exc.slug)
            return out
        out.append(msg)
        for slug in msg.defects:
            reasons.add(slug)
        if end >= n:
            return out
        pos = _next_start(data, end) if data[end] in _WS else end
        if pos < 0:
            return out
