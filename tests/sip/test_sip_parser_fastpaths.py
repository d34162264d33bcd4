"""Fast paths of the parser and header grammars, and where they hand over to the general path.

Raw values as the parser sees them (leading SP, trailing CR). Expected values by hand from
RFC 3261 §20.10/§20.20/§20.42 (tag and branch parameters, case-insensitive parameter names).
"""

from __future__ import annotations

import pytest

from sip_otel.errors import Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.headers import parse_via, uri_tag
from sip_otel.sip.parser import parse_payload


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            " sipp <sip:sipp@10.0.0.1:5060>;tag=1SIPpTag00\r",
            ("sip:sipp@10.0.0.1:5060", "1SIPpTag00"),
        ),
        (" <sip:b@h>\r", ("sip:b@h", "")),
        (" <sip:b@h>", ("sip:b@h", "")),
        (" <sip:b@h>;TAG=Up\r", ("sip:b@h", "Up")),
        (" <sip:b@h>;x=1;tag= t2 ;y\r", ("sip:b@h", "t2")),
        (" <sip:b@h>;lr\r", ("sip:b@h", "")),
        (" <sip:b@h>;tagx=1\r", ("sip:b@h", "")),
        (" <sip:b@h;tag=in-uri>\r", ("sip:b@h;tag=in-uri", "")),
        (' "Bob <x>" <sip:b@h>;tag=1\r', ("sip:b@h", "1")),  # '<' inside the display name
        (" <sip:b@h", ("sip:b@h", "")),  # unclosed
        (" sip:b@h;tag=3\r", ("sip:b@h", "3")),  # addr-spec: parameters are header params
    ],
)
def test_uri_tag_shapes(value: str, expected: tuple[str, str]) -> None:
    assert uri_tag(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            " SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-4242-1-0\r",
            ("UDP", "10.0.0.1:5060", "z9hG4bK-4242-1-0"),
        ),
        (
            " SIP/2.0/UDP h:5060;rport;branch=z9hG4bK1;received=192.0.2.1\r",
            ("UDP", "h:5060", "z9hG4bK1"),
        ),
        (" SIP/2.0/UDP H;rport\r", ("UDP", "h", "")),
        (" SIP/2.0/UDP h;BRANCH=Z\r", ("UDP", "h", "Z")),
        (" SIP/2.0/SCTP h;branch=a", ("SCTP", "h", "a")),
        (" SIP/2.0/XYZ h;branch=b", ("XYZ", "h", "b")),  # unknown transport: kept
        (" SIP/2.0/udp h;branch=c", ("UDP", "h", "c")),
        (" SIP/2.0/UDP h ;branch=d", ("UDP", "h", "d")),
        (" SIP/2.0/UDP h;branch=", ("UDP", "h", "")),
        (" SIP/2.0/TLS h\r", ("TLS", "h", "")),
    ],
)
def test_parse_via_shapes(value: str, expected: tuple[str, str, str]) -> None:
    assert parse_via(value) == expected


def parse(vias: bytes) -> tuple[int, str, str, dict[str, int]]:
    data = (
        b"OPTIONS sip:x@example.com SIP/2.0\r\n" + vias + b"From: <sip:a@example.com>;tag=f\r\n"
        b"To: <sip:x@example.com>\r\n"
        b"Call-ID: c1\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    reasons = Reasons()
    payload = SipPayload(1, PROTO_UDP, b"\xc0\x00\x02\x01", 5060, b"\xc0\x00\x02\x02", 5060, data)
    (msg,) = parse_payload(payload, reasons)
    return msg.via_count, msg.via_sent_by, msg.via_branch, reasons.snapshot()


def test_via_count_single_value_with_quoted_comma() -> None:
    assert parse(b'Via: SIP/2.0/UDP a;branch=z9hG4bK1;x="p,q"\r\n') == (1, "a", "z9hG4bK1", {})


def test_via_count_values_and_headers() -> None:
    assert parse(b"Via: SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;branch=2\r\n") == (2, "a", "1", {})
    assert parse(b"Via: SIP/2.0/UDP a;branch=1\r\nv: SIP/2.0/UDP b, SIP/2.0/UDP c\r\n") == (
        3,
        "a",
        "1",
        {},
    )


def test_bad_top_via_counted() -> None:
    assert parse(b"Via: garbage\r\n") == (1, "", "", {"sip.bad_via": 1})
