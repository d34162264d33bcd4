"""Header-name table and header-value grammars (sip_otel.sip.headers). Expected values by hand."""

from __future__ import annotations

import pytest

from sip_otel.sip.headers import (
    COMPACT_FORMS,
    H_CALL_ID,
    H_CONTACT,
    H_CONTENT_LENGTH,
    H_CONTENT_TYPE,
    H_FROM,
    H_IGNORED,
    H_SESSION_EXPIRES,
    H_TO,
    H_VIA,
    HEADER_CODES,
    HEADER_CODES_LOWER,
    canonical_name,
    first_value,
    is_token,
    name_addr,
    param,
    parse_via,
    split_values,
    uint,
    uri_tag,
)

# RFC 3261 §7.3.3 plus the IANA registry: every compact form and its full name.
ALL_COMPACT = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "m": "Contact",
    "v": "Via",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "b": "Referred-By",
    "y": "Identity",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "n": "Identity-Info",
    "x": "Session-Expires",
}


def test_compact_table_is_complete() -> None:
    assert COMPACT_FORMS == ALL_COMPACT


@pytest.mark.parametrize(("letter", "full"), sorted(ALL_COMPACT.items()))
def test_canonical_name_expands_compact_form(letter: str, full: str) -> None:
    assert canonical_name(letter) == full
    assert canonical_name(letter.upper()) == full
    assert canonical_name(f" {letter} ") == full


@pytest.mark.parametrize(("letter", "full"), sorted(ALL_COMPACT.items()))
def test_compact_form_maps_to_same_code_as_full_name(letter: str, full: str) -> None:
    code = HEADER_CODES_LOWER[full.lower()]
    assert HEADER_CODES_LOWER[letter] == code
    assert HEADER_CODES[letter] == code
    assert HEADER_CODES[letter.upper()] == code


def test_codes_of_kept_headers() -> None:
    assert HEADER_CODES["v"] == H_VIA
    assert HEADER_CODES["i"] == H_CALL_ID
    assert HEADER_CODES["f"] == H_FROM
    assert HEADER_CODES["t"] == H_TO
    assert HEADER_CODES["m"] == H_CONTACT
    assert HEADER_CODES["l"] == H_CONTENT_LENGTH
    assert HEADER_CODES["c"] == H_CONTENT_TYPE
    assert HEADER_CODES["x"] == H_SESSION_EXPIRES
    assert HEADER_CODES["k"] == H_IGNORED
    assert HEADER_CODES_LOWER["call-id"] == H_CALL_ID
    assert HEADER_CODES["Call-Id"] == H_CALL_ID


def test_canonical_name_recases_known_and_keeps_unknown() -> None:
    assert canonical_name("call-id") == "Call-ID"
    assert canonical_name("CSEQ") == "CSeq"
    assert canonical_name("X-Custom") == "X-Custom"


def test_is_token() -> None:
    assert is_token("INVITE")
    assert is_token("x-Foo.bar!%*_+`'~9")
    assert not is_token("")
    assert not is_token("IN VITE")
    assert not is_token("INV/TE")
    assert not is_token("INVITÉ")


def test_uint() -> None:
    assert uint("0") == 0
    assert uint("4294967295") == 4294967295
    assert uint("12345678901") is None  # 11 digits
    assert uint("") is None
    assert uint("-1") is None
    assert uint("1_000") is None
    assert uint(" 1") is None
    assert uint("\u0661") is None  # ARABIC-INDIC DIGIT ONE is not an ASCII digit


def test_split_values_plain_and_quoted() -> None:
    assert split_values("a, b,c") == ["a", " b", "c"]
    assert split_values('"Doe, J" <sip:j@x>, <sip:k@y>') == ['"Doe, J" <sip:j@x>', " <sip:k@y>"]
    assert split_values("<sip:a@x;p=1,2>, <sip:b@y>") == ["<sip:a@x;p=1,2>", " <sip:b@y>"]
    assert split_values('"a \\" , b" <sip:x>') == ['"a \\" , b" <sip:x>']
    assert split_values('"unterminated, x') == ['"unterminated, x']


def test_first_value() -> None:
    assert first_value("SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b") == "SIP/2.0/UDP a;branch=1"
    assert first_value('"A, B" <sip:a@x>;expires=5, <sip:b@y>') == '"A, B" <sip:a@x>;expires=5'
    assert first_value("single") == "single"


@pytest.mark.parametrize(
    ("value", "uri", "params"),
    [
        ('"Alice" <sip:alice@atlanta.com>;tag=19283', "sip:alice@atlanta.com", ";tag=19283"),
        ("Bob <sip:bob@biloxi.com>", "sip:bob@biloxi.com", ""),
        (
            "<sip:carol@chicago.com;transport=tcp>;tag=x",
            "sip:carol@chicago.com;transport=tcp",
            ";tag=x",
        ),
        # addr-spec: parameters after ';' are header parameters (RFC 3261 §20.10)
        ("sip:dave@example.com;tag=88", "sip:dave@example.com", ";tag=88"),
        ("sip:dave@example.com", "sip:dave@example.com", ""),
        ('"A <weird> name" <sip:e@x>;tag=1', "sip:e@x", ";tag=1"),
        ("<sip:unclosed@x", "sip:unclosed@x", ""),
        # unterminated quote (seen in suricata's compact-form capture): the '<' still counts
        ('\\"arik\\" <sip:8@v.net>;tag=6', "sip:8@v.net", ";tag=6"),
        ("  tel:+15551234  ", "tel:+15551234", ""),
    ],
)
def test_name_addr(value: str, uri: str, params: str) -> None:
    assert name_addr(value) == (uri, params)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bob <sip:bob@biloxi.com>;tag=a6c85cf", ("sip:bob@biloxi.com", "a6c85cf")),
        ("<sip:bob@biloxi.com>;x=1;tag=t2;y", ("sip:bob@biloxi.com", "t2")),
        ("<sip:bob@biloxi.com;tag=inside-uri>", ("sip:bob@biloxi.com;tag=inside-uri", "")),
        ("sip:bob@biloxi.com;Tag=T3", ("sip:bob@biloxi.com", "T3")),
        ("<sip:bob@biloxi.com>", ("sip:bob@biloxi.com", "")),
        ("", ("", "")),
    ],
)
def test_uri_tag(value: str, expected: tuple[str, str]) -> None:
    assert uri_tag(value) == expected


def test_param() -> None:
    assert param(";tag=abc", "tag") == "abc"
    assert param(";lr;tag=abc;x=1", "tag") == "abc"
    assert param(";TAG=abc", "tag") == "abc"
    assert param(" ; tag = abc ", "tag") == "abc"
    assert param(";lr", "tag") is None
    assert param("", "tag") is None
    assert param(";tag", "tag") == ""
    assert param(";xtag=1", "tag") is None
    assert param(";expires=3600", "expires") == "3600"
    assert param(";refresher=uac", "refresher") == "uac"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
            ("UDP", "pc33.atlanta.com", "z9hG4bK776asdhds"),
        ),
        (
            " SIP/2.0/TCP Client.Example.COM:5061;rport;branch=z9hG4bKa ",
            ("TCP", "client.example.com:5061", "z9hG4bKa"),
        ),
        (
            "SIP / 2.0 / udp  192.0.2.1 : 5060 ;branch=z9hG4bKb",
            ("UDP", "192.0.2.1:5060", "z9hG4bKb"),
        ),
        (
            "SIP/2.0/UDP [2001:DB8::1]:5060;branch=z9hG4bKc",
            ("UDP", "[2001:db8::1]:5060", "z9hG4bKc"),
        ),
        (
            "SIP/2.0/WSS df7jal23ls0d.invalid;Branch=z9hG4bKd",
            ("WSS", "df7jal23ls0d.invalid", "z9hG4bKd"),
        ),
        ("SIP/2.0/UDP host.example", ("UDP", "host.example", "")),
        ("SIP/2.0/UDP", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_parse_via(value: str, expected: tuple[str, str, str] | None) -> None:
    assert parse_via(value) == expected
