"""Repeated parses (sip_otel.sip.parser): what the removed memo tables were tested for still
holds for the compiled parser, whose scratch area is reused by every message.

Reduced from the memo tests: the bounds and contents of the memo tables (MEMO_ENTRIES,
MEMO_KEY_CHARS, MEMO_TABLES, clear_memos) no longer exist; every other assertion is kept.
Expected values are read off the message text by hand.
"""

from __future__ import annotations

from sip_otel.errors import Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.message import SipMessage
from sip_otel.sip.parser import parse_payload

MANY = 4096 + 50  # as many distinct messages as the largest memo table held, and more


def parse(data: bytes) -> tuple[SipMessage, dict[str, int]]:
    reasons = Reasons()
    payload = SipPayload(1, PROTO_UDP, b"\xc0\x00\x02\x01", 5060, b"\xc0\x00\x02\x02", 5060, data)
    (msg,) = parse_payload(payload, reasons)
    return msg, reasons.snapshot()


def request(i: int, from_value: str = "", extra: str = "") -> bytes:
    return (
        f"INVITE sip:u{i}@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP h{i}.example.com:5060;branch=z9hG4bK{i}\r\n"
        f"From: {from_value or f'<sip:a{i}@example.com>;tag=f{i}'}\r\n"
        f"To: <sip:u{i}@example.com>\r\n"
        f"Call-ID: c{i}\r\n"
        f"CSeq: {i} INVITE\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def test_many_distinct_messages_stay_right() -> None:
    for i in range(MANY):  # new start line, CSeq, Via, tags each time
        msg, reasons = parse(request(i))
        assert reasons == {}
        assert (msg.method, msg.request_uri) == ("INVITE", f"sip:u{i}@example.com")
        assert (msg.from_uri, msg.from_tag) == (f"sip:a{i}@example.com", f"f{i}")
        assert (msg.to_uri, msg.to_tag) == (f"sip:u{i}@example.com", "")
        assert (msg.via_sent_by, msg.via_branch) == (f"h{i}.example.com:5060", f"z9hG4bK{i}")
        assert (msg.call_id, msg.cseq, msg.cseq_method) == (f"c{i}", i, "INVITE")


def test_repeat_parse_gives_the_same_fields_and_defects() -> None:
    data = (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKx, SIP/2.0/TCP b.example.com\r\n"
        b"v: SIP/2.0/UDP c.example.com\r\n"
        b'From: "A, B" <sip:a@example.com>;tag=1\r\n'
        b"To: <sip:b@example.com>;tag=2\r\n"
        b"Call-ID: x\r\n"
        b"CSeq: 7 BYE\r\n"
        b"Contact: <sip:b@192.0.2.2>;expires=soon\r\n"
        b"Content-Type: Application/SDP; charset=x\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    first, first_reasons = parse(data)
    second, second_reasons = parse(data)  # the scratch area reused
    for msg, reasons in ((first, first_reasons), (second, second_reasons)):
        assert (msg.is_request, msg.status, msg.method) == (False, 200, "BYE")
        assert msg.via_count == 3
        assert (msg.via_transport, msg.via_sent_by, msg.via_branch) == (
            "UDP",
            "a.example.com",
            "z9hG4bKx",
        )
        assert (msg.from_uri, msg.from_tag) == ("sip:a@example.com", "1")
        assert (msg.to_uri, msg.to_tag) == ("sip:b@example.com", "2")
        assert (msg.cseq, msg.cseq_method) == (7, "BYE")
        assert msg.content_type == "application/sdp"
        assert msg.contact_expires is None
        assert msg.defects == ("sip.bad_header_value",)  # ";expires=soon", on every parse
        assert reasons == {"sip.bad_header_value": 1}


def test_unreadable_values_stay_unreadable_when_repeated() -> None:
    data = (
        request(1)
        .replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")
        .replace(b"Content-Length: 0", b"Content-Length: -3")
    )
    for _ in range(2):
        msg, reasons = parse(data)
        assert (msg.cseq, msg.cseq_method, msg.content_length) == (-1, "", None)
        assert msg.defects == ("sip.bad_content_length", "sip.bad_cseq")
        assert reasons == {"sip.bad_content_length": 1, "sip.bad_cseq": 1}


def test_same_value_under_different_headers() -> None:
    # One value string as From, Contact and Call-ID: each header keeps its own meaning.
    value = "<sip:a@example.com>;expires=60"
    extra = f"Contact: {value}\r\nExpires: 30\r\n"
    data = request(2, from_value=value, extra=extra).replace(b"Call-ID: c2", f"i: {value}".encode())
    for _ in range(2):
        msg, reasons = parse(data)
        assert reasons == {}
        assert (msg.from_uri, msg.from_tag) == ("sip:a@example.com", "")
        assert msg.contact_expires == 60 and msg.expires == 30
        assert msg.call_id == value


def test_request_and_response_sharing_lines() -> None:
    # Same CSeq and start of headers: the request keeps its request-line method, the response
    # takes its method from CSeq.
    req, _ = parse(request(3).replace(b"CSeq: 3 INVITE", b"CSeq: 3 CANCEL"))
    resp, _ = parse(
        request(3)
        .replace(b"INVITE sip:u3@example.com SIP/2.0", b"SIP/2.0 487 Gone")
        .replace(b"CSeq: 3 INVITE", b"CSeq: 3 CANCEL")
    )
    assert (req.method, req.cseq_method) == ("INVITE", "CANCEL")
    assert (resp.method, resp.status, resp.reason_phrase) == ("CANCEL", 487, "Gone")


def test_long_values_parse_right() -> None:
    user = "u" * 256  # longer than the memo tables' keys were
    data = request(4, extra=f"Content-Type: application/{user}\r\n").replace(
        b"sip:u4@example.com SIP", f"sip:{user}@example.com SIP".encode()
    )
    for _ in range(2):
        msg, reasons = parse(data)
        assert reasons == {}
        assert (msg.method, msg.request_uri) == ("INVITE", f"sip:{user}@example.com")
        assert msg.content_type == f"application/{user}"
        assert (msg.cseq, msg.content_length) == (4, 0)
