"""What the compiled parser and grammar (_c/so_parser*.c, so_grammar.c, so_headers.c) add to the
parser tests: Python's ``str`` rules reproduced over UTF-8 bytes, the header-name table seen
from both sides, values rebuilt in the scratch area, and the order reasons are counted in.

Expected values by hand, from what Python's ``str`` methods give (``"\\u017fip/2.0".upper()``
is ``"SIP/2.0"``, ``"\\u00a0x".strip()`` is ``"x"``, ``len("\\u00e9")`` is 1...) and RFC 3261.
"""

from __future__ import annotations

import pytest

from sip_otel import _core
from sip_otel.errors import DecodeError, Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.headers import (
    COMPACT_FORMS,
    HEADER_CODES,
    HEADER_CODES_LOWER,
    canonical_name,
    is_token,
    param,
    parse_via,
    split_values,
)
from sip_otel.sip.message import SipMessage
from sip_otel.sip.parser import MAX_HEADER_BYTES, MAX_LINE_BYTES, parse_message, parse_payload


def udp(data: bytes) -> SipPayload:
    return SipPayload(9, PROTO_UDP, b"\xc0\x00\x02\x01", 5060, b"\xc0\x00\x02\x02", 5060, data)


def parse(data: bytes) -> tuple[list[SipMessage], dict[str, int]]:
    reasons = Reasons()
    msgs = parse_payload(udp(data), reasons)
    return msgs, reasons.snapshot()


def one(data: bytes) -> SipMessage:
    msgs, reasons = parse(data)
    assert len(msgs) == 1, reasons
    return msgs[0]


def request(extra: bytes = b"", start: bytes = b"OPTIONS sip:x@example.com SIP/2.0") -> bytes:
    """All mandatory headers; ``extra`` lines go before Content-Length."""
    return (
        start + b"\r\n"
        b"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=f\r\n"
        b"To: <sip:x@example.com>\r\n"
        b"Call-ID: c1\r\n"
        b"CSeq: 1 OPTIONS\r\n" + extra + b"Content-Length: 0\r\n\r\n"
    )


# --- the header-name table, from C and from Python ----------------------------------------------


def test_header_table_is_sorted_by_length_and_every_spelling_is_found() -> None:
    table = _core.sip_header_table()
    lengths = [len(name) for name, _, _ in table]
    assert lengths == sorted(lengths)  # the C lookup index relies on nothing else
    for name, alt, code in table:
        assert _core.sip_header_lookup(name) == (name, code, True)
        assert _core.sip_header_lookup(name.lower()) == (name, code, True)
        assert _core.sip_header_lookup(" " + name) is None  # names are stripped by the parser
        for odd in (name.upper(), name.swapcase()):
            assert _core.sip_header_lookup(odd) == (name, code, odd in HEADER_CODES)
        if alt is not None:
            assert _core.sip_header_lookup(alt) == (name, code, True)


def test_header_code_of_every_name_in_any_case() -> None:
    # The parser's fast path for "name: value" lines must agree with the full lookup.
    for lower, code in HEADER_CODES_LOWER.items():
        for spelling in (lower, lower.upper(), lower.title(), lower.swapcase()):
            assert _core.sip_header_code(spelling) == code, spelling
    for other in ("", "g", "Q", "Vi", "Viaa", "Via-", "Call_ID", "Call\rID", "Contact\x00", "Tos"):
        assert _core.sip_header_code(other) == 0, other


def test_python_tables_agree_with_the_c_lookup() -> None:
    for spelling, code in HEADER_CODES.items():
        found = _core.sip_header_lookup(spelling)
        assert found is not None and found[1:] == (code, True), spelling
    for lower, code in HEADER_CODES_LOWER.items():
        found = _core.sip_header_lookup(lower.upper())
        assert found is not None and found[1] == code, lower
    for letter, full in COMPACT_FORMS.items():
        assert _core.sip_header_lookup(letter) == (full, HEADER_CODES_LOWER[full.lower()], True)
        assert _core.sip_header_lookup(letter.upper()) == (full, HEADER_CODES_LOWER[letter], True)
    assert _core.sip_header_lookup("g") is None and _core.sip_header_lookup("X-Foo") is None


KEPT = [  # (header, value, attribute, expected) for every header whose value the parser keeps
    ("Via", "SIP/2.0/UDP top.example;branch=z9hG4bKtop", "via_branch", "z9hG4bKtop"),
    ("Reason", "SIP;cause=200", "reason", "SIP;cause=200"),
    ("From", "<sip:a@example.com>;tag=ff", "from_tag", "ff"),
    ("To", "<sip:x@example.com>;tag=tt", "to_tag", "tt"),
    ("Call-ID", "kept-id", "call_id", "kept-id"),
    ("CSeq", "7 OPTIONS", "cseq", 7),
    ("Contact", "<sip:a@192.0.2.1>;expires=33", "contact_expires", 33),
    ("Content-Length", "0", "content_length", 0),
    ("Content-Type", "text/plain", "content_type", "text/plain"),
    ("Session-Expires", "90", "session_expires", 90),
    ("Min-SE", "91", "min_se", 91),
    ("Expires", "92", "expires", 92),
    ("Retry-After", "93", "retry_after", 93),
    ("User-Agent", "UA/1", "user_agent", "UA/1"),
    (
        "Session-ID",
        "ab30317f1a784dc48ff824d0d3715d86;remote=0",
        "session_id",
        "ab30317f1a784dc48ff824d0d3715d86;remote=0",
    ),
]


@pytest.mark.parametrize(("name", "value", "attr", "expected"), KEPT)
@pytest.mark.parametrize("spell", [str, str.lower, str.upper, str.swapcase, lambda n: n + " \t"])
def test_every_kept_header_in_any_case(
    name: str, value: str, attr: str, expected: object, spell: object
) -> None:
    assert callable(spell)
    line = f"{spell(name)}: {value}\r\n".encode()
    data = line + request()[request().index(b"\r\n") + 2 :]  # first occurrence wins
    m = one(b"OPTIONS sip:x@example.com SIP/2.0\r\n" + data)
    assert getattr(m, attr) == expected


def test_server_is_kept_for_responses() -> None:
    data = request(b"sErVeR: S/2\r\n", start=b"SIP/2.0 200 OK")
    assert one(data).user_agent == "S/2"


def test_header_name_without_colon() -> None:
    # A name spelt as in HEADER_CODES is a header even without a colon (empty value); other
    # spellings are bad lines. With bare LF line ends, so that no CR sticks to the name.
    data = request(b"Max-Forwards\r\nmax-forwards\r\nMAX-FORWARDS\r\nFoo\r\n")
    data = data.replace(b"\r\n", b"\n")
    data = data.replace(b"\nVia:", b"\nVia\nVia:", 1)
    m = one(data)
    assert m.via_count == 2 and m.via_branch == ""  # the top Via is the empty one
    assert m.defects == ("sip.bad_header_line", "sip.bad_via")


# --- Python's str rules over UTF-8 bytes ----------------------------------------------------------


@pytest.mark.parametrize(
    "space", ["\u00a0", "\u3000", "\u2000", "\u0085", "\x0b", "\x1c", "\u205f"]
)
def test_non_ascii_and_odd_white_space_is_stripped(space: str) -> None:
    data = request().replace(b"Call-ID: c1", f"Call-ID:{space}c1{space}".encode())
    data = data.replace(b"CSeq: 1 OPTIONS", f"CSeq:{space}1{space}OPTIONS{space}".encode())
    m = one(data)
    assert (m.call_id, m.cseq, m.cseq_method) == ("c1", 1, "OPTIONS")


def test_non_white_space_non_ascii_is_kept() -> None:
    data = request().replace(b"Call-ID: c1", "Call-ID: \u00e9c1\u00c2".encode())
    assert one(data).call_id == "\u00e9c1\u00c2"


def test_version_compares_as_python_upper_case() -> None:
    # U+017F (long s) and U+0131 (dotless i) upper-case to "S" and "I": Python accepted these.
    m = one(request(start="\u017fip/2.0 180 Ringing".encode()))
    assert (m.status, m.reason_phrase) == (180, "Ringing")
    m = one(request(start="OPTIONS sip:x@example.com S\u0131P/2.0".encode()))
    assert (m.method, m.request_uri) == ("OPTIONS", "sip:x@example.com")
    msgs, reasons = parse(request(start="OPTIONS sip:x \u017fIP/3.0".encode()))
    assert msgs == [] and reasons == {"sip.bad_version": 1}
    msgs, reasons = parse(request(start="\u00dfIP/2.0 200 OK".encode()))  # "ß" -> "SS"
    assert msgs == [] and reasons == {"sip.bad_start_line": 1}


def test_case_mapping_beyond_ascii_matches_python() -> None:
    via = "Via: SIP/2.0/\u00fadp H\u00d6ST.example;branch=z9hG4bKx\r\n"
    data = request("Content-Type: TEXT/\u00c9\r\n".encode()).replace(
        b"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n", via.encode()
    )
    m = one(data)
    assert (m.via_transport, m.via_sent_by) == ("\u00daDP", "h\u00f6st.example")
    assert m.content_type == "text/\u00e9"


def test_line_limit_counts_characters() -> None:
    fits = request(b"X: " + "\u00e9".encode() * (MAX_LINE_BYTES - 3) + b"\r\n")
    assert one(fits).call_id == "c1"  # 8192 characters, 16381 bytes
    msgs, reasons = parse(fits.replace(b"X: ", "X: \u00e9".encode()))
    assert msgs == [] and reasons == {"sip.line_too_long": 1}


def test_line_limit_counts_invalid_utf8_as_python_decodes_it() -> None:
    # Each lone continuation byte decodes to one U+FFFD; a cut 3-byte sequence to one.
    msgs, reasons = parse(request(b"X: " + b"\x80" * (MAX_LINE_BYTES - 2) + b"\r\n"))
    assert msgs == [] and reasons == {"sip.line_too_long": 1}
    assert one(request(b"X: " + b"\xe2\x82" * (MAX_LINE_BYTES // 2) + b"\r\n")).call_id == "c1"


def test_header_bytes_limit_is_inclusive() -> None:
    head = request()[: request().index(b"\r\n\r\n")] + b"\r\nY: " + b"y" * 7000  # lines < 8 KiB
    head += b"\r\nY: " + b"y" * 7000 + b"\r\nY: " + b"y" * 7000 + b"\r\nY: " + b"y" * 7000
    pad = MAX_HEADER_BYTES - len(head) - len(b"\r\nY: ") - 1  # the block ends with its CR
    data = head + b"\r\nY: " + b"y" * pad + b"\r\n\r\n"
    assert data.index(b"\n\r\n") == MAX_HEADER_BYTES
    assert one(data).call_id == "c1"
    msgs, reasons = parse(data.replace(b"Y: ", b"Y: y"))
    assert msgs == [] and reasons == {"sip.headers_too_long": 1}


# --- values rebuilt in the scratch area -----------------------------------------------------------


def test_scratch_values_of_every_message_in_a_datagram() -> None:
    def msg(i: int) -> bytes:
        return request(
            f"Reason: Q.850;cause={i}\r\nReason: SIP;cause={i}00\r\n".encode()
            + b"Subject: a\r\n  folded\r\n"
        ).replace(
            b"Via: SIP/2.0/UDP h.example.com;", f"Via: SIP / 2.0 / tcp  H{i} : 50{i} ;".encode()
        )

    msgs, reasons = parse(msg(1) + msg(2) + msg(3))
    assert reasons == {}
    for i, m in enumerate(msgs, 1):
        assert (m.via_transport, m.via_sent_by, m.via_branch) == ("TCP", f"h{i}:50{i}", "z9hG4bK1")
        assert m.reason == f"Q.850;cause={i}, SIP;cause={i}00"


def test_orphan_continuation_and_a_bad_line_count_twice() -> None:
    data = request(b"no colon here\r\n").replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n  orphan\r\n", 1)
    msgs, reasons = parse(data)
    (m,) = msgs
    assert m.request_uri == "sip:x@example.com" and m.call_id == "c1"
    assert m.defects == ("sip.bad_header_line", "sip.bad_header_line")
    assert reasons == {"sip.bad_header_line": 2}


def test_reasons_are_counted_in_message_order() -> None:
    first = request().replace(b"Call-ID: c1\r\n", b"")
    second = request().replace(b"CSeq: 1 OPTIONS\r\n", b"CSeq: x\r\n").replace(b"To: ", b"t:")
    third = request(b"Expires: soon\r\n")
    reasons = Reasons()
    msgs = parse_payload(udp(first + second + third + b"junk"), reasons)
    assert len(msgs) == 3
    assert list(reasons.counts.items()) == [
        ("sip.missing_call_id", 1),
        ("sip.bad_cseq", 1),
        ("sip.bad_header_value", 1),
        ("skipped.sip_trailing_bytes", 1),
    ]


# --- the facades' edges ---------------------------------------------------------------------------


def test_parse_message_raises_decode_error_and_rejects_negative_start() -> None:
    with pytest.raises(DecodeError) as exc:
        parse_message(b"HELLO\r\n\r\n", 0, 0, None)
    assert exc.value.slug == "sip.bad_start_line"
    with pytest.raises(DecodeError) as exc:
        parse_message(request(), len(request()) + 5, 0, None)  # past the end: nothing there
    assert exc.value.slug == "sip.truncated_headers"
    with pytest.raises(ValueError):
        parse_message(request(), -1, 0, None)


def test_message_carries_payload_and_time() -> None:
    payload = udp(request())
    (m,) = parse_payload(payload, Reasons())
    assert m.origin is payload and m.ts_ns == 9
    m2, end = parse_message(bytearray(request()), 0, 11, payload)  # any bytes-like data
    assert m2.origin is payload and m2.ts_ns == 11 and end == len(request())


def test_grammar_helpers_round_trip_any_str() -> None:
    value = 'a\udc80, "\u00e9,\ud800" <x,\U0001f600>, b'  # lone surrogates included
    parts = split_values(value)
    assert parts == ["a\udc80", ' "\u00e9,\ud800" <x,\U0001f600>', " b"]
    assert not is_token("INVITE\udc80")
    via = parse_via("SIP/2.0/UDP \u00c9:1 \udc80;branch=\u00e9")
    assert via == ("UDP", "\u00e9:1\udc80", "\u00e9")


def test_kelvin_sign_lower_cases_to_k() -> None:
    # "\u212a".lower() == "k": a parameter or header name written with it matches "k".
    assert param(";\u212a=1", "k") == "1"
    assert canonical_name("\u212a") == "Supported"
