"""StreamFramer and looks_like_sip: whole, one byte at a time, trailing data, every slug."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip_otel.errors import Reasons
from sip_otel.sip.framing import StreamFramer, looks_like_sip

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 14\r\n"
    b"\r\n"
    b"v=0\r\no=- 1 1\r\n"
)
OK = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
BYE_COMPACT = b"BYE sip:b@h SIP/2.0\r\ni: y\r\nL : 2\r\n\r\nhi"
BARE_LF = b"OPTIONS sip:h SIP/2.0\nCall-ID: z\ncontent-length:3\n\nabc"


def framer(max_bytes: int = 65536) -> tuple[StreamFramer, Reasons]:
    reasons = Reasons()
    return StreamFramer(reasons, max_bytes), reasons


def feed_whole(data: bytes, max_bytes: int = 65536) -> tuple[list[bytes], Reasons, StreamFramer]:
    f, reasons = framer(max_bytes)
    return f.feed(data), reasons, f


def feed_bytewise(data: bytes, max_bytes: int = 65536) -> tuple[list[bytes], Reasons, StreamFramer]:
    f, reasons = framer(max_bytes)
    out: list[bytes] = []
    for i in range(len(data)):
        out += f.feed(data[i : i + 1])
    return out, reasons, f


Feeder = Callable[..., tuple[list[bytes], Reasons, StreamFramer]]
FEEDERS = [feed_whole, feed_bytewise]


@pytest.mark.parametrize("feed", FEEDERS)
@pytest.mark.parametrize("msg", [INVITE, OK, BYE_COMPACT, BARE_LF])
def test_single_message(feed: Feeder, msg: bytes) -> None:
    out, reasons, f = feed(msg)
    assert out == [msg]
    assert reasons.counts == {}
    assert f.pending == 0


def test_whole_segment_is_returned_without_copy() -> None:
    out, _, _ = feed_whole(INVITE)
    assert out[0] is INVITE


@pytest.mark.parametrize("feed", FEEDERS)
def test_trailing_partial_message_is_kept(feed: Feeder) -> None:
    out, reasons, f = feed(INVITE + OK[:20])
    assert out == [INVITE]
    assert f.pending == 20
    assert f.feed(OK[20:]) == [OK]
    assert reasons.counts == {}


@pytest.mark.parametrize("feed", FEEDERS)
def test_several_messages_and_keepalives(feed: Feeder) -> None:
    stream = b"\r\n\r\n" + INVITE + b"\r\n" + OK + b"\r\n\r\n" + BYE_COMPACT + BARE_LF + b"\r\n"
    out, reasons, f = feed(stream)
    assert out == [INVITE, OK, BYE_COMPACT, BARE_LF]
    assert reasons.counts == {}
    f.close()
    assert reasons.counts == {}  # trailing keep-alive is not an unfinished message


@pytest.mark.parametrize("feed", FEEDERS)
def test_missing_content_length_is_zero(feed: Feeder) -> None:
    msg = b"ACK sip:b@h SIP/2.0\r\nCall-ID: q\r\n\r\n"
    out, reasons, _ = feed(msg + OK)
    assert out == [msg, OK]
    assert reasons.counts == {"sip_framing.missing_content_length": 1}


def test_content_length_name_not_at_line_start_is_ignored() -> None:
    msg = b"ACK sip:b@h SIP/2.0\r\nX-Content-Length: 5\r\n\r\n"
    out, reasons, _ = feed_whole(msg)
    assert out == [msg]
    assert reasons.counts == {"sip_framing.missing_content_length": 1}


@pytest.mark.parametrize("feed", FEEDERS)
def test_bad_content_length_resyncs_to_next_start_line(feed: Feeder) -> None:
    bad = b"INVITE sip:b@h SIP/2.0\r\nContent-Length: abc\r\n\r\nbody-of-unknown-size\r\n"
    out, reasons, _ = feed(bad + OK)
    assert out == [OK]
    assert reasons.counts == {"sip_framing.bad_content_length": 1}


@pytest.mark.parametrize("feed", FEEDERS)
def test_junk_before_message_resyncs(feed: Feeder) -> None:
    out, reasons, _ = feed(b"tail of a body we joined in\r\nmore junk\r\n" + INVITE + OK)
    assert out == [INVITE, OK]
    assert reasons.counts == {"sip_framing.resync": 1}


@pytest.mark.parametrize("feed", FEEDERS)
def test_mid_stream_join_inside_a_start_line(feed: Feeder) -> None:
    out, reasons, _ = feed(INVITE[10:] + OK)
    assert out == [OK]
    assert reasons.counts == {"sip_framing.resync": 1}


def test_status_line_with_body_containing_start_like_text() -> None:
    body = b"INVITE sip:x SIP/2.0\r\n"
    msg = b"SIP/2.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    out, reasons, _ = feed_bytewise(msg + OK)
    assert out == [msg, OK]
    assert reasons.counts == {}


@pytest.mark.parametrize("feed", FEEDERS)
def test_too_large_by_content_length_is_skipped_exactly(feed: Feeder) -> None:
    big = b"MESSAGE sip:b@h SIP/2.0\r\nContent-Length: 300\r\n\r\n" + b"x" * 300
    out, reasons, f = feed(big + OK, 200)
    assert out == [OK]
    assert reasons.counts == {"sip_framing.too_large": 1}
    assert f.pending == 0


@pytest.mark.parametrize("feed", FEEDERS)
def test_too_large_header_block_is_dropped(feed: Feeder) -> None:
    huge = b"INVITE sip:b@h SIP/2.0\r\n" + b"X-Pad: " + b"y" * 300 + b"\r\n"
    out, reasons, f = feed(huge, 200)
    assert out == []
    assert reasons.counts == {"sip_framing.too_large": 1}
    assert f.pending < 200
    assert f.feed(b"\r\n" + OK) == [OK]


def test_too_large_first_line_is_dropped() -> None:
    out, reasons, f = feed_whole(b"INVITE sip:" + b"a" * 300, 200)
    assert out == []
    assert reasons.counts == {"sip_framing.too_large": 1}
    assert f.pending == 0


def test_endless_junk_line_in_resync_is_bounded() -> None:
    f, reasons = framer(100)
    f.feed(b"junk\r\n")
    for _ in range(50):
        f.feed(b"z" * 10)
    assert f.pending <= 110
    assert f.feed(b"\r\n" + OK) == [OK]
    assert reasons.counts == {"sip_framing.resync": 1}


def test_close_counts_unfinished_message() -> None:
    f, reasons = framer()
    f.feed(INVITE[:-3])
    f.close()
    assert reasons.counts == {"sip_framing.incomplete": 1}
    assert f.pending == 0


def test_reset_forgets_partial_message() -> None:
    f, reasons = framer()
    f.feed(INVITE[:50])
    f.reset()
    assert f.feed(OK) == [OK]
    assert reasons.counts == {}


def test_bytewise_is_not_quadratic_in_searches() -> None:
    # A 60 KiB header block one byte at a time: every search resumes where it stopped, so this
    # finishes quickly; a quadratic framer would rescan ~1.8e9 bytes.
    msg = b"INVITE sip:b@h SIP/2.0\r\n" + b"X-A: b\r\n" * 7500 + b"Content-Length: 0\r\n\r\n"
    out, reasons, _ = feed_bytewise(msg, 70000)
    assert out == [msg]
    assert reasons.counts == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"INVITE sip:bob@example.com SIP/2.0\r\n", True),
        (b"REGISTER sip:example.com SIP/2.0\n", True),
        (b"X-CUSTOM.method sip:a SIP/2.0\r\nVia: x\r\n", True),
        (b"invite sip:a sip/2.0\r\n", True),
        (b"SIP/2.0 200 OK\r\n", True),
        (b"SIP/2.0 100", True),
        (b"SIP/2.0 180\r\n", True),
        (b"SIP/2.0 099 x\r\n", False),
        (b"SIP/2.0 20 OK\r\n", False),
        (b"GET / HTTP/1.1\r\n", False),
        (b"INVITE sip:a SIP/2.0", False),  # no line end: not yet a request line
        (b"INVITE  sip:a SIP/2.0\r\n", False),
        (b"\r\n\r\n", False),
        (b"", False),
        (b"\x80\x00\x01\x02", False),
    ],
)
def test_looks_like_sip(data: bytes, expected: bool) -> None:
    assert looks_like_sip(data) is expected


def test_looks_like_sip_with_bounds() -> None:
    data = b"xxxxSIP/2.0 404 Not Found\r\n"
    assert looks_like_sip(data, 4)
    assert not looks_like_sip(data, 0)
    assert not looks_like_sip(b"INVITE sip:a SIP/2.0\r\n", 0, 10)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_bytes_never_raise_and_stay_bounded(chunks: list[bytes]) -> None:
    f, _ = framer(256)
    for chunk in chunks:
        for msg in f.feed(chunk):
            assert isinstance(msg, bytes)
        assert f.pending <= 256 + 64
    f.close()


@given(
    st.lists(st.sampled_from([INVITE, OK, BYE_COMPACT, BARE_LF, b"\r\n"]), max_size=8),
    st.integers(min_value=1, max_value=40),
)
def test_any_split_gives_the_same_messages(msgs: list[bytes], step: int) -> None:
    stream = b"".join(msgs)
    f, reasons = framer()
    out: list[bytes] = []
    for i in range(0, len(stream), step):
        out += f.feed(stream[i : i + step])
    assert out == [m for m in msgs if m != b"\r\n"]
    assert reasons.counts == {}


@pytest.mark.parametrize("feed", FEEDERS)
@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: 5",
        b"Content-Length:5",
        b"Content-Length:   5   ",
        b"content-length: 5",
        b"CONTENT-LENGTH: 5",
        b"Content-Length : 5",
        b"Content-Length\t:\t5",
        b"l: 5",
        b"L:5",
    ],
)
def test_content_length_spellings(feed: Feeder, header: bytes) -> None:
    msg = b"MESSAGE sip:b@h SIP/2.0\r\nCall-ID: c\r\n" + header + b"\r\n\r\nhello"
    out, reasons, _ = feed(msg + OK)
    assert out == [msg, OK]
    assert reasons.counts == {}


@pytest.mark.parametrize("value", [b"-1", b"+5", b"5x", b"", b"0x10", b"99999999999", b"1 2"])
def test_bad_content_length_values(value: bytes) -> None:
    msg = b"MESSAGE sip:b@h SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n"
    out, reasons, _ = feed_whole(msg + OK)
    assert out == [OK]
    assert reasons.counts == {"sip_framing.bad_content_length": 1}
