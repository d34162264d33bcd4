"""SIP parser (sip_otel.sip.parser), h11 manner: whole input, trailing data, every truncation.

Expected values are read off the message text by hand (RFC 3261 §24 examples style).
"""

from __future__ import annotations

import pytest

from sip_otel.errors import DecodeError, Reasons
from sip_otel.net.types import PROTO_TCP, PROTO_UDP, SipPayload
from sip_otel.sip.message import SipMessage
from sip_otel.sip.parser import (
    DEFECT_SLUGS,
    FATAL_SLUGS,
    KEEPALIVE_SLUG,
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    MAX_LINE_BYTES,
    SLUGS,
    TRAILING_SLUG,
    parse_message,
    parse_payload,
)

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
assert len(SDP) == 141  # 5 + 55 + 5 + 22 + 7 + 25 + 22

# RFC 3261 §24.2 F1-like INVITE, with a few extra headers.
INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Min-SE: 90\r\n"
    b"User-Agent: SoftPhone/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 141\r\n"
    b"\r\n" + SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bKnashds8;received=192.0.2.3\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1\r\n"
    b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Server: Biloxi-PBX 2.1\r\n"
    b"User-Agent: not-this-one\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

BYE = (
    b"BYE sip:alice@pc33.atlanta.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10\r\n"
    b"From: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"To: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 231 BYE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def udp(data: bytes, ts_ns: int = 7) -> SipPayload:
    return SipPayload(ts_ns, PROTO_UDP, b"\xc0\x00\x02\x01", 5060, b"\xc0\x00\x02\x02", 5060, data)


def parse(data: bytes) -> tuple[list[SipMessage], dict[str, int]]:
    reasons = Reasons()
    msgs = parse_payload(udp(data), reasons)
    return msgs, reasons.snapshot()


def one(data: bytes) -> SipMessage:
    msgs, reasons = parse(data)
    assert len(msgs) == 1, reasons
    return msgs[0]


def minimal(method: bytes = b"OPTIONS", extra: bytes = b"", body: bytes = b"") -> bytes:
    """A request with all mandatory headers; ``extra`` lines go before Content-Length."""
    return (
        method + b" sip:x@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=f\r\n"
        b"To: <sip:x@example.com>\r\n"
        b"Call-ID: c1\r\n"
        b"CSeq: 1 "
        + method
        + b"\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


# --- whole messages ---------------------------------------------------------------------------


def test_invite_fields() -> None:
    msgs, reasons = parse(INVITE)
    assert reasons == {}
    (m,) = msgs
    assert m.is_request and m.method == "INVITE" and m.status == 0
    assert m.request_uri == "sip:bob@biloxi.com"
    assert m.reason_phrase == ""
    assert m.call_id == "a84b4c76e66710"
    assert (m.from_uri, m.from_tag) == ("sip:alice@atlanta.com", "1928301774")
    assert (m.to_uri, m.to_tag) == ("sip:bob@biloxi.com", "")
    assert (m.cseq, m.cseq_method) == (314159, "INVITE")
    assert m.via_branch == "z9hG4bKnashds8"
    assert m.via_sent_by == "pc33.atlanta.com"
    assert m.via_transport == "UDP"
    assert m.via_count == 1
    assert m.content_length == 141 and m.body_length == 141
    assert m.content_type == "application/sdp"
    assert (m.session_expires, m.se_refresher, m.min_se) == (1800, "uac", 90)
    assert m.expires is None and m.contact_expires is None and not m.contact_star
    assert m.user_agent == "SoftPhone/1.0"
    assert m.retry_after is None and m.reason == ""
    assert m.ts_ns == 7 and m.origin is not None and m.origin.data is INVITE
    assert m.defects == ()


def test_response_fields_method_is_cseq_method() -> None:
    m = one(OK_200)
    assert not m.is_request
    assert (m.status, m.reason_phrase, m.status_class) == (200, "OK", 2)
    assert m.method == "INVITE" and m.cseq_method == "INVITE" and m.cseq == 314159
    assert m.request_uri == ""
    assert m.to_tag == "a6c85cf" and m.from_tag == "1928301774"
    assert m.via_count == 2
    assert m.via_branch == "z9hG4bKnashds8"  # top Via only
    assert m.via_sent_by == "server10.biloxi.com"
    assert m.user_agent == "Biloxi-PBX 2.1"  # Server for responses
    assert m.content_length == 0 and m.body_length == 0


def test_parse_message_returns_end_offset() -> None:
    data = INVITE + BYE
    m, end = parse_message(data, 0, 5, None)
    assert end == len(INVITE) and m.method == "INVITE" and m.origin is None
    m2, end2 = parse_message(data, end, 5, None)
    assert end2 == len(data) and m2.method == "BYE" and m2.cseq == 231


def test_request_user_agent_falls_back_to_server() -> None:
    assert one(minimal(extra=b"Server: S/1\r\n")).user_agent == "S/1"
    assert one(minimal(extra=b"Server: S/1\r\nUser-Agent: U/2\r\n")).user_agent == "U/2"


@pytest.mark.parametrize(
    "method",
    [
        b"INVITE",
        b"ACK",
        b"BYE",
        b"CANCEL",
        b"OPTIONS",
        b"REGISTER",
        b"PRACK",
        b"UPDATE",
        b"SUBSCRIBE",
        b"NOTIFY",
        b"REFER",
        b"MESSAGE",
        b"INFO",
        b"PUBLISH",
    ],
)
def test_known_methods(method: bytes) -> None:
    m = one(minimal(method))
    assert m.method == method.decode() and m.cseq_method == method.decode()


def test_methods_are_case_sensitive() -> None:
    """RFC 3261 §7.1: method tokens are case-sensitive; unknown ones are kept as spelt."""
    m = one(minimal(b"x-Foo.Bar!"))
    assert m.method == "x-Foo.Bar!"
    assert m.cseq_method == "x-Foo.Bar!"
    assert one(minimal(b"invite")).method == "invite"  # an unknown method, not INVITE


def test_status_lines() -> None:
    resp = OK_200.replace(b"SIP/2.0 200 OK", b"SIP/2.0 183 Session Progress")
    assert (one(resp).status, one(resp).reason_phrase) == (183, "Session Progress")
    resp = OK_200.replace(b"SIP/2.0 200 OK", b"SIP/2.0 699")
    assert (one(resp).status, one(resp).reason_phrase) == (699, "")
    resp = OK_200.replace(b"SIP/2.0 200 OK", b"sip/2.0 100 Trying")
    assert one(resp).status == 100


def test_start_line_trailing_blanks_are_tolerated() -> None:
    m = one(minimal().replace(b"SIP/2.0\r\n", b"SIP/2.0 \t\r\n", 1))
    assert (m.method, m.request_uri) == ("OPTIONS", "sip:x@example.com")
    resp = OK_200.replace(b"SIP/2.0 200 OK", b"SIP/2.0 200 ")
    assert (one(resp).status, one(resp).reason_phrase) == (200, "")


# --- header syntax ----------------------------------------------------------------------------

COMPACT = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKc\r\n"
    b"t: <sip:bob@biloxi.com>\r\n"
    b"f: <sip:alice@atlanta.com>;tag=ft\r\n"
    b"i: compact-call\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.com>;expires=60\r\n"
    b"x: 600;refresher=uas\r\n"
    b"k: timer\r\ns: hello\r\ne: gzip\r\no: presence\r\nr: <sip:c@x>\r\nu: talk\r\n"
    b"b: <sip:d@x>\r\ny: abc\r\na: *;audio\r\nj: *;video\r\nd: proxy\r\nn: <https://x/c>\r\n"
    b"c: Application/SDP; charset=x\r\n"
    b"l: 4\r\n"
    b"\r\nbody"
)


def test_every_compact_form() -> None:
    msgs, reasons = parse(COMPACT)
    assert reasons == {}
    (m,) = msgs
    assert m.via_branch == "z9hG4bKc" and m.via_count == 1
    assert m.to_uri == "sip:bob@biloxi.com"
    assert (m.from_uri, m.from_tag) == ("sip:alice@atlanta.com", "ft")
    assert m.call_id == "compact-call"
    assert m.contact_expires == 60
    assert (m.session_expires, m.se_refresher) == (600, "uas")
    assert m.content_type == "application/sdp"
    assert m.content_length == 4 and m.body_length == 4


def test_upper_case_compact_and_odd_case_names() -> None:
    data = COMPACT.replace(b"i: compact-call", b"I: upper").replace(b"CSeq:", b"cSEQ :")
    m = one(data)
    assert m.call_id == "upper" and m.cseq == 1


def test_folded_header() -> None:
    data = minimal(extra=b"Subject: long\r\n  subject\r\nUser-Agent: Soft\r\n\tPhone  2\r\n")
    data = data.replace(b"Call-ID: c1\r\n", b"Call-ID:\r\n c1-folded\r\n")
    data = data.replace(b"To: <sip:x@example.com>\r\n", b"To: <sip:x@example.com>\r\n ;tag=tt\r\n")
    msgs, reasons = parse(data)
    assert reasons == {}
    (m,) = msgs
    assert m.call_id == "c1-folded"
    assert m.user_agent == "Soft Phone  2"
    assert m.to_tag == "tt"


def test_folded_first_header_line_is_a_bad_line() -> None:
    data = minimal().replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n  orphan\r\n", 1)
    m = one(data)
    assert m.request_uri == "sip:x@example.com" and m.call_id == "c1"
    assert m.defects == ("sip.bad_header_line",)


def test_fold_then_bare_lf_end_before_crlf_in_body() -> None:
    body = b"a\r\n\r\nb"
    data = minimal(extra=b"Subject: a\n b\n", body=body).replace(b"\r\n\r\n", b"\n\n", 1)
    m, end = parse_message(data, 0, 0, None)
    assert m.call_id == "c1" and m.body_length == len(body) and end == len(data)
    assert m.defects == ()


def test_bare_lf_line_ends() -> None:
    data = INVITE.replace(b"\r\n", b"\n")
    m = one(data)
    assert m.call_id == "a84b4c76e66710" and m.cseq == 314159
    assert m.body_length == 141 - 7  # the SDP lost one CR per line (7 lines), says 141
    assert m.defects == ("sip.truncated_body",)


def test_bare_lf_headers_crlf_body() -> None:
    head, body = BYE.split(b"\r\n\r\n")
    data = head.replace(b"\r\n", b"\n") + b"\n\n" + body
    m, end = parse_message(data, 0, 0, None)
    assert m.call_id == "a84b4c76e66710" and m.defects == () and end == len(data)


def test_bare_lf_end_before_crlf_in_body() -> None:
    body = b"x\r\n\r\ny"
    data = minimal(body=body).replace(b"\r\n\r\n", b"\n\n", 1)
    m, end = parse_message(data, 0, 0, None)
    assert m.body_length == len(body) and end == len(data) and m.defects == ()


def test_mixed_line_ends() -> None:
    data = INVITE.replace(b"Call-ID: a84b4c76e66710\r\n", b"Call-ID: a84b4c76e66710\n")
    assert one(data).call_id == "a84b4c76e66710"


def test_bare_lf_line_then_crlf_blank_line() -> None:
    data = b"BYE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\nCall-ID: q\n\r\nBODY"
    m = one(data)
    assert m.call_id == "q" and m.body_length == 4


def test_repeated_and_comma_separated_via() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"v: SIP/2.0/TCP First.Example.com:5070;branch=z9hG4bKtop, SIP/2.0/UDP second;branch=b2\r\n"
        b'Via: SIP/2.0/UDP third;branch=b3,SIP/2.0/UDP fourth;branch=b4;x="a,b"\r\n'
        b"Via: SIP/2.0/UDP fifth;branch=b5\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: v\r\nCSeq: 9 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    m = one(data)
    assert m.via_count == 5
    assert (m.via_transport, m.via_sent_by, m.via_branch) == (
        "TCP",
        "first.example.com:5070",
        "z9hG4bKtop",
    )


def test_ipv6_via_sent_by() -> None:
    data = minimal().replace(b"h.example.com;", b"[2001:DB8::9]:5062;")
    assert one(data).via_sent_by == "[2001:db8::9]:5062"


def test_repeated_and_comma_separated_contact_first_wins() -> None:
    data = minimal(
        b"REGISTER",
        extra=(
            b'Contact: "Doe, John" <sip:j@192.0.2.9>;expires=3600, <sip:k@192.0.2.9>;expires=10\r\n'
            b"Contact: <sip:l@192.0.2.9>;expires=20\r\n"
            b"Expires: 7200\r\n"
        ),
    )
    m = one(data)
    assert m.contact_expires == 3600
    assert m.expires == 7200
    assert not m.contact_star


def test_contact_star_and_addr_spec_params() -> None:
    m = one(minimal(b"REGISTER", extra=b"Contact: *\r\nExpires: 0\r\n"))
    assert m.contact_star and m.expires == 0 and m.contact_expires is None
    m = one(minimal(b"REGISTER", extra=b"Contact: sip:j@192.0.2.9;expires=30\r\n"))
    assert m.contact_expires == 30 and not m.contact_star


def test_addr_spec_from_and_quoted_display_name() -> None:
    data = (
        minimal()
        .replace(
            b"From: <sip:a@example.com>;tag=f",
            b'From: "A; <b>, c" <sip:a@example.com;user=1>;tag=q',
        )
        .replace(b"To: <sip:x@example.com>", b"To: sip:x@example.com;tag=z")
    )
    m = one(data)
    assert (m.from_uri, m.from_tag) == ("sip:a@example.com;user=1", "q")
    assert (m.to_uri, m.to_tag) == ("sip:x@example.com", "z")


def test_reason_retry_after_expires() -> None:
    data = (
        b"SIP/2.0 486 Busy Here\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK3\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n"
        b"Call-ID: r\r\nCSeq: 2 INVITE\r\n"
        b"Retry-After: 120 (I'm in a meeting);duration=3600\r\n"
        b'Reason: Q.850;cause=17;text="User busy"\r\n'
        b'Reason: SIP;cause=486;text="Busy Here"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    m = one(data)
    assert m.status == 486 and m.method == "INVITE"
    assert m.retry_after == 120
    assert m.reason == 'Q.850;cause=17;text="User busy", SIP;cause=486;text="Busy Here"'
    data = data.replace(b"120 (I'm in a meeting);duration=3600", b"5;duration=1")
    assert one(data).retry_after == 5


def test_content_length_missing_udp_body_is_rest_of_datagram() -> None:
    data = minimal(body=b"").replace(b"Content-Length: 0\r\n", b"") + b"abc"
    m = one(data)
    assert m.content_length is None and m.body_length == 3 and m.defects == ()


def test_whitespace_around_colon_and_values() -> None:
    data = minimal().replace(b"Call-ID: c1", b"Call-ID  :   c1   ")
    assert one(data).call_id == "c1"


def test_utf8_and_invalid_bytes_decode_safely() -> None:
    data = minimal(extra="User-Agent: Téléphone\r\n".encode() + b"Subject: \xff\xfe\r\n")
    m = one(data)
    assert m.user_agent == "Téléphone"


# --- several messages, keep-alives, trailing data --------------------------------------------


def test_several_messages_in_one_datagram() -> None:
    msgs, reasons = parse(INVITE + BYE + OK_200)
    assert [m.method for m in msgs] == ["INVITE", "BYE", "INVITE"]
    assert [m.status for m in msgs] == [0, 0, 200]
    assert reasons == {}
    assert all(m.ts_ns == 7 for m in msgs)


def test_crlf_between_messages_is_skipped() -> None:
    msgs, reasons = parse(b"\r\n" + INVITE + b"\r\n\r\n" + BYE + b"\r\n")
    assert [m.method for m in msgs] == ["INVITE", "BYE"] and reasons == {}
    msgs, reasons = parse(BYE + b"\x00" * 8)  # padding after the last message
    assert [m.method for m in msgs] == ["BYE"] and reasons == {}
    msgs, reasons = parse(BYE + b" " + BYE)  # only CRLF may precede a start line (§7.5)
    assert [m.method for m in msgs] == ["BYE"] and reasons == {TRAILING_SLUG: 1}


@pytest.mark.parametrize(
    "data", [b"\r\n", b"\r\n\r\n", b"\n", b"", b"\x00\x00\x00\x00", b" \r\n", b"\r\n\t\x00"]
)
def test_keepalives_are_not_errors(data: bytes) -> None:
    msgs, reasons = parse(data)
    assert msgs == [] and reasons == {KEEPALIVE_SLUG: 1}


def test_trailing_junk_after_message_is_skipped_not_an_error() -> None:
    # RFC 3261 §18.3: bytes beyond the body are discarded (e.g. a Content-Length that is short).
    msgs, reasons = parse(BYE + b"junk")
    assert [m.method for m in msgs] == ["BYE"]
    assert reasons == {TRAILING_SLUG: 1}
    msgs, reasons = parse(BYE + b"junk that is a line\r\n\r\n")
    assert [m.method for m in msgs] == ["BYE"]
    assert reasons == {TRAILING_SLUG: 1}
    short = minimal(body=b"v=0\r\no=x").replace(b"Content-Length: 8", b"Content-Length: 3")
    msgs, reasons = parse(short)
    assert [m.body_length for m in msgs] == [3] and reasons == {TRAILING_SLUG: 1}


def test_broken_second_message_is_an_error() -> None:
    # A start line that looks like SIP but is wrong is counted as such, not as trailing bytes.
    msgs, reasons = parse(BYE + b"SIP/2.0 999 Nope\r\n\r\n")
    assert [m.method for m in msgs] == ["BYE"] and reasons == {"sip.bad_status_code": 1}


def test_junk_before_request_line_is_not_searched_past() -> None:
    msgs, reasons = parse(b"\x00\x01" + BYE)
    assert msgs == [] and reasons == {"sip.bad_method": 1}
    msgs, reasons = parse(b"xx" + BYE)  # still a token: an unknown method "xxBYE"
    assert [m.method for m in msgs] == ["xxBYE"] and reasons == {}
    msgs, reasons = parse(b"\x16\x03\x01\x00\xa5junk\r\n" + BYE)
    assert msgs == [] and reasons == {"sip.bad_start_line": 1}


def test_zeek_junk_before_request_shape() -> None:
    # Hand copy of the zeek "sip-junk-before-request" REGISTER: a valid request line, one header.
    data = b"REGISTER sip:1.1.1.1:5060 SIP/2.0\r\nExpires: 3600\r\n\r\n"
    msgs, reasons = parse(data)
    (m,) = msgs
    assert m.method == "REGISTER" and m.expires == 3600
    assert reasons == {
        "sip.missing_via": 1,
        "sip.missing_call_id": 1,
        "sip.missing_from": 1,
        "sip.missing_to": 1,
        "sip.missing_cseq": 1,
    }


def test_tcp_payload_holds_one_message() -> None:
    reasons = Reasons()
    p = SipPayload(1, PROTO_TCP, b"\x7f\x00\x00\x01", 5060, b"\x7f\x00\x00\x01", 40000, INVITE)
    (m,) = parse_payload(p, reasons)
    assert m.origin is p and m.body_length == 141 and reasons.counts == {}


# --- h11 manner: whole, trailing data, every truncation --------------------------------------


@pytest.mark.parametrize("data", [INVITE, OK_200, BYE, COMPACT])
def test_whole_and_with_trailing_data(data: bytes) -> None:
    m, end = parse_message(data, 0, 0, None)
    assert end == len(data) and m.defects == ()
    m2, end2 = parse_message(data + INVITE, 0, 0, None)
    assert end2 == len(data) and m2.call_id == m.call_id
    m3, end3 = parse_message(b"\xff" * 5 + data + b"\x00junk", 5, 0, None)
    assert end3 == len(data) + 5 and m3.cseq == m.cseq


@pytest.mark.parametrize("data", [INVITE, OK_200, BYE])
def test_truncated_at_every_offset(data: bytes) -> None:
    header_end = data.index(b"\r\n\r\n") + 4
    first_line_end = data.index(b"\r\n") + 2
    for k in range(len(data)):
        msgs, reasons = parse(data[:k])
        if k == 0:
            assert msgs == [] and reasons == {KEEPALIVE_SLUG: 1}
        elif k < first_line_end:  # start line incomplete: nothing usable
            assert msgs == [] and reasons == {"sip.truncated_headers": 1}, k
        elif k < header_end:  # start line whole, headers cut: kept, flagged
            assert len(msgs) == 1 and reasons.get("sip.truncated_headers") == 1, k
            assert msgs[0].body_length == 0
        else:  # body cut
            assert len(msgs) == 1 and reasons == {"sip.truncated_body": 1}, k
            assert msgs[0].body_length == k - header_end


def test_truncated_headers_keep_complete_lines_only() -> None:
    cut = BYE.index(b"Call-ID: a84b") + len(b"Call-ID: a84b")
    msgs, reasons = parse(BYE[:cut])
    (m,) = msgs
    assert m.method == "BYE" and m.cseq == -1 and m.call_id == ""  # partial line dropped
    assert m.from_tag == "a6c85cf"
    assert reasons == {
        "sip.truncated_headers": 1,
        "sip.missing_call_id": 1,
        "sip.missing_cseq": 1,
    }


# --- every reason slug ------------------------------------------------------------------------


FATAL_CASES = [
    (b"HELLO WORLD\r\n\r\n", "sip.bad_start_line"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "sip.bad_start_line"),
    (b"INVITE\r\n\r\n", "sip.bad_start_line"),
    (b"INVITE  SIP/2.0\r\n\r\n", "sip.bad_start_line"),
    (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "sip.bad_version"),
    (b"SIP/1.0 200 OK\r\n\r\n", "sip.bad_version"),
    (b"SIP/2.0 99 Low\r\n\r\n", "sip.bad_status_code"),
    (b"SIP/2.0 700 High\r\n\r\n", "sip.bad_status_code"),
    (b"SIP/2.0 2000 Long\r\n\r\n", "sip.bad_status_code"),
    (b"SIP/2.0 abc Bad\r\n\r\n", "sip.bad_status_code"),
    (b"SIP/2.0\r\n\r\n", "sip.bad_status_code"),
    (b"IN(VITE sip:a@b SIP/2.0\r\n\r\n", "sip.bad_method"),
    (b" sip:a@b SIP/2.0\r\n\r\n", "sip.bad_method"),
    (b"INVITE sip:a@b SIP/2.0", "sip.truncated_headers"),
    (
        b"INVITE sip:a@b SIP/2.0\r\n" + b"X: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n",
        "sip.headers_too_long",
    ),
    (
        b"INVITE sip:a@b SIP/2.0\r\n" + b"X: 1\r\n" * MAX_HEADER_LINES + b"\r\n",
        "sip.too_many_headers",
    ),
    (b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * MAX_LINE_BYTES + b"\r\n\r\n", "sip.line_too_long"),
    (b"INVITE sip:" + b"a" * MAX_LINE_BYTES + b" SIP/2.0\r\n\r\n", "sip.line_too_long"),
]


@pytest.mark.parametrize(("data", "slug"), FATAL_CASES)
def test_fatal_slugs(data: bytes, slug: str) -> None:
    msgs, reasons = parse(data)
    assert msgs == [] and reasons == {slug: 1}
    with pytest.raises(DecodeError) as exc:
        parse_message(data, 0, 0, None)
    assert exc.value.slug == slug


def test_limits_are_inclusive() -> None:
    data = minimal(extra=b"X: 1\r\n" * (MAX_HEADER_LINES - 7))  # start line + 6 + X + CL = max
    assert one(data).call_id == "c1"
    data = minimal(extra=b"X: " + b"a" * (MAX_LINE_BYTES - 3) + b"\r\n")
    assert one(data).call_id == "c1"


DEFECT_CASES = [
    (b"Call-ID: c1\r\n", b"", ["sip.missing_call_id"]),
    (b"Call-ID: c1\r\n", b"Call-ID:   \r\n", ["sip.missing_call_id"]),
    (b"CSeq: 1 OPTIONS\r\n", b"", ["sip.missing_cseq"]),
    (b"CSeq: 1 OPTIONS\r\n", b"CSeq: x OPTIONS\r\n", ["sip.bad_cseq"]),
    (b"CSeq: 1 OPTIONS\r\n", b"CSeq: 1\r\n", ["sip.bad_cseq"]),
    (b"CSeq: 1 OPTIONS\r\n", b"CSeq: 2147483648 OPTIONS\r\n", ["sip.bad_cseq"]),
    (b"CSeq: 1 OPTIONS\r\n", b"CSeq: 1 OPT/IONS\r\n", ["sip.bad_cseq"]),
    (b"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n", b"", ["sip.missing_via"]),
    (b"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n", b"Via: junk\r\n", ["sip.bad_via"]),
    (b"From: <sip:a@example.com>;tag=f\r\n", b"", ["sip.missing_from"]),
    (b"To: <sip:x@example.com>\r\n", b"", ["sip.missing_to"]),
    (b"Call-ID: c1\r\n", b"Call-ID: c1\r\nno colon here\r\n", ["sip.bad_header_line"]),
    (b"Call-ID: c1\r\n", b"Call-ID: c1\r\n: empty name\r\n", ["sip.bad_header_line"]),
    (b"Content-Length: 0\r\n", b"Content-Length: zero\r\n", ["sip.bad_content_length"]),
    (b"Content-Length: 0\r\n", b"Content-Length: -1\r\n", ["sip.bad_content_length"]),
    (b"Content-Length: 0\r\n", b"Content-Length: 1\r\n", ["sip.truncated_body"]),
    (b"Content-Length: 0\r\n", b"Expires: soon\r\nContent-Length: 0\r\n", ["sip.bad_header_value"]),
]


@pytest.mark.parametrize(("old", "new", "slugs"), DEFECT_CASES)
def test_defect_slugs_keep_the_message(old: bytes, new: bytes, slugs: list[str]) -> None:
    data = minimal()
    assert old in data
    msgs, reasons = parse(data.replace(old, new))
    (m,) = msgs
    assert m.method == "OPTIONS"
    assert list(m.defects) == slugs
    assert reasons == dict.fromkeys(slugs, 1)


def test_bad_content_length_body_is_rest() -> None:
    data = minimal().replace(b"Content-Length: 0", b"Content-Length: bad") + b"xyz"
    m = one(data)
    assert m.content_length is None and m.body_length == 3


def test_bad_values_leave_fields_empty() -> None:
    data = minimal(extra=b"Session-Expires: abc\r\nMin-SE: -5\r\nRetry-After: never\r\n")
    m = one(data)
    assert (m.session_expires, m.min_se, m.retry_after) == (None, None, None)
    assert m.defects == ("sip.bad_header_value",)  # counted once per message


def test_every_slug_is_tested_and_declared() -> None:
    fatal = {slug for _, slug in FATAL_CASES}
    defects = {slug for _, _, slugs in DEFECT_CASES for slug in slugs} | {"sip.truncated_headers"}
    assert fatal == FATAL_SLUGS
    assert defects == DEFECT_SLUGS
    assert fatal | defects | {KEEPALIVE_SLUG, TRAILING_SLUG} == SLUGS
    assert all(s.startswith(("sip.", "skipped.")) for s in SLUGS)
