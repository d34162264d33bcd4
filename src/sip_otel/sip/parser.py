"""Sans-IO SIP message parser: transport payload bytes -> :class:`SipMessage` objects.

The parser is compiled C (``_c/so_parser.c``, grammar in ``_c/so_grammar.c``, binding in
``_core_sip.pxi``); this module is its Python face. No I/O, no clock: the caller passes the
payload (with its packet time). Two entry points:

* :func:`parse_payload` never raises. It turns one UDP datagram (0..n messages back to back) or
  one TCP-framed message into messages, and counts every problem as a slug (:data:`SLUGS`).
* :func:`parse_message` parses one message at an offset and raises :class:`DecodeError` when no
  usable message starts there (start line or framing broken). Problems that still leave a
  message on the wire (a missing Call-ID, an unreadable CSeq, ...) do not raise: they are
  listed in ``SipMessage.defects`` and counted by :func:`parse_payload`. tshark counts such
  messages too, and so must a monitor.

Decisions (RFC 3261 sections in brackets; the C file's header comment has the details):

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
"""

from __future__ import annotations

from .. import _core

__all__ = [
    "DEFECT_SLUGS",
    "FATAL_SLUGS",
    "KEEPALIVE_SLUG",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_LINES",
    "MAX_LINE_BYTES",
    "SLUGS",
    "TRAILING_SLUG",
    "parse_message",
    "parse_payload",
]

# Limits against abuse. A typical header block is 0.5-1.5 KB in 10-30 lines (RFC 3261 §18.1.1
# wants UDP requests within ~1300 bytes); proxies with long Record-Route/Via sets and STIR
# Identity headers reach a few KB. Work per message is linear in these sizes and the strings
# kept per message are bounded by them.
MAX_HEADER_BYTES = _core.SIP_MAX_HEADER_BYTES  # start line + header fields, without the blank line
MAX_HEADER_LINES = _core.SIP_MAX_HEADER_LINES  # lines, start line included (~10x a heavy message)
MAX_LINE_BYTES = _core.SIP_MAX_LINE_BYTES  # one line, in characters (PROTOS c07: 4.5 KB lines)

KEEPALIVE_SLUG = "skipped.sip_keepalive"
TRAILING_SLUG = "skipped.sip_trailing_bytes"

# Every slug this module counts (a bounded label set for telemetry).
FATAL_SLUGS = frozenset(
    {  # DecodeError from parse_message: no message
        "sip.bad_start_line",
        "sip.bad_version",
        "sip.bad_status_code",
        "sip.bad_method",
        "sip.truncated_headers",
        "sip.headers_too_long",
        "sip.too_many_headers",
        "sip.line_too_long",
    }
)
DEFECT_SLUGS = frozenset(
    {  # SipMessage.defects: the message is kept
        "sip.missing_via",
        "sip.bad_via",
        "sip.missing_call_id",
        "sip.missing_from",
        "sip.missing_to",
        "sip.missing_cseq",
        "sip.bad_cseq",
        "sip.bad_header_line",
        "sip.bad_content_length",
        "sip.truncated_body",
        "sip.truncated_headers",
        "sip.bad_header_value",
    }
)
SLUGS = FATAL_SLUGS | DEFECT_SLUGS | {KEEPALIVE_SLUG, TRAILING_SLUG}

# parse_payload(payload, reasons) -> list[SipMessage]: all messages in one transport payload;
# problems are counted in ``reasons``, never raised.
parse_payload = _core.sip_parse_payload

# parse_message(data, start, ts_ns, origin) -> (SipMessage, end): the message at data[start:]
# and the offset just past its body; DecodeError (``sip.<reason>``) if no usable message
# starts there.
parse_message = _core.sip_parse_message
