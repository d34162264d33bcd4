"""Property tests: any bytes -> messages or counted reasons, never an exception (h11 fuzz rule)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip_otel.errors import DecodeError, Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.headers import count_values, first_value, split_values
from sip_otel.sip.message import SipMessage
from sip_otel.sip.parser import (
    DEFECT_SLUGS,
    FATAL_SLUGS,
    KEEPALIVE_SLUG,
    SLUGS,
    parse_message,
    parse_payload,
)

VALID = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8, SIP/2.0/TCP b;branch=x\r\n"
    b"v: SIP/2.0/UDP c;branch=y\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob, B" <sip:bob@biloxi.com>\r\n'
    b"f: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>;expires=60\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Subject: folded\r\n line\r\n"
    b"Retry-After: 5 (x)\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

# Bytes that matter to the grammar, so that mutations hit interesting paths often.
SPECIAL = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\t",
        b":",
        b";",
        b",",
        b"<",
        b">",
        b'"',
        b"\\",
        b"=",
        b"/",
        b"\x00",
        b"\xff",
        b"\xc3",
        b"SIP/2.0",
        b"\r\n\r\n",
        b"\n\n",
        b"Content-Length: 99",
        b"l: x",
        b"9",
        b"INVITE ",
    ]
)


def _check(data: bytes) -> list[SipMessage]:
    reasons = Reasons()
    msgs = parse_payload(
        SipPayload(0, PROTO_UDP, b"\x01\x02\x03\x04", 1, b"\x01\x02\x03\x05", 2, data), reasons
    )
    # Every slug is declared; a payload gives messages, or at least one counted reason.
    assert set(reasons.counts) <= SLUGS
    assert msgs or reasons.counts
    if reasons.get(KEEPALIVE_SLUG):
        assert not msgs and not data.strip(b"\r\n \t\x00")
    for m in msgs:
        assert m.body_length >= 0
        assert m.is_request == (m.status == 0)
        assert m.is_request or 100 <= m.status <= 699
        assert m.via_count >= (1 if m.via_branch else 0)
        for slug in m.defects:
            assert slug in DEFECT_SLUGS and reasons.get(slug) >= 1
    # parse_message at offset 0 either raises the protocol error or returns a message.
    try:
        _, end = parse_message(data, 0, 0, None)
    except DecodeError as exc:
        assert exc.slug in FATAL_SLUGS
    else:
        assert 0 < end <= len(data)
    return msgs


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_of_a_valid_message(data: st.DataObject) -> None:
    buf = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        pos = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.one_of(SPECIAL, st.binary(max_size=8)))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 12))]
        else:
            del buf[pos:]
    _check(bytes(buf))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([VALID, b"\r\n", b"\r\n\r\n", b"junk\r\n\r\n"]), max_size=5))
def test_concatenations(parts: list[bytes]) -> None:
    msgs = _check(b"".join(parts))
    # Messages before the first junk part all parse, in order.
    expected = 0
    for p in parts:
        if p == b"junk\r\n\r\n":
            break
        expected += p == VALID
    assert len(msgs) == expected


def _split_reference(value: str) -> list[str]:
    """Character-by-character reading of the same rule, as an independent check."""
    out, cur, i, quoted, angle = [], "", 0, False, False
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\" and i + 1 < len(value):
                cur += value[i : i + 2]
                i += 2
                continue
            quoted = ch != '"'
        elif angle:
            angle = ch != ">"
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ",":
            out.append(cur)
            cur = ""
            i += 1
            continue
        cur += ch
        i += 1
    out.append(cur)
    return out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab ,;"<>\\=', max_size=40))
def test_split_values_matches_reference(value: str) -> None:
    parts = split_values(value)
    assert ",".join(parts) == value
    assert parts == _split_reference(value)
    assert count_values(value) == len(parts)
    assert first_value(value) == parts[0]
