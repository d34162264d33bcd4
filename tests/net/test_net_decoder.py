"""FrameDecoder: IPv4/IPv6 branches, tunnels, UDP, port filters, tables, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbuild import (
    DST4,
    DST6,
    INVITE,
    OK,
    SRC4,
    SRC6,
    ah,
    eth_tcp4,
    ethernet,
    ext,
    frag6,
    ipv4,
    ipv6,
    tcp,
    udp,
)
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits
from sip_otel.net.types import PROTO_UDP, SipPayload


def run(
    frames: list[bytes], linktype: int = 1, **kwargs: object
) -> tuple[list[SipPayload], dict[str, int], FrameDecoder]:
    reasons = Reasons()
    dec = FrameDecoder(reasons, **kwargs)  # type: ignore[arg-type]
    out: list[SipPayload] = []
    for i, frame in enumerate(frames):
        out += dec.feed(1000 + i, linktype, frame)
    return out, reasons.counts, dec


def udp4(payload: bytes = INVITE, sport: int = 5060, dport: int = 5060) -> SipPayload:
    return SipPayload(1000, PROTO_UDP, SRC4, sport, DST4, dport, payload)


def udp6(payload: bytes = INVITE, sport: int = 5060, dport: int = 5060) -> SipPayload:
    return SipPayload(1000, PROTO_UDP, SRC6, sport, DST6, dport, payload)


# -- IPv4 ---------------------------------------------------------------------------------------


def test_ipv4_udp_sip() -> None:
    out, counts, _ = run([ethernet(ipv4(udp(INVITE)))])
    assert out == [udp4()]
    assert counts == {}


def test_ipv4_options_are_skipped_by_ihl() -> None:
    options = b"\x07\x07\x04" + b"\0" * 4 + b"\x00"  # record route (7 bytes) + end of list
    out, counts, _ = run([ethernet(ipv4(udp(INVITE), options=options))])
    assert out == [udp4()]
    assert counts == {}


def test_ethernet_padding_trimmed_by_total_length() -> None:
    frame = ethernet(ipv4(udp(b"\r\n\r\n"))) + b"\0" * 14  # padded to the 60-byte minimum
    out, counts, _ = run([frame])
    assert out == [udp4(b"\r\n\r\n")]  # keep-alive on a SIP port goes to the parser
    assert counts == {}


def test_ipv4_total_length_zero_uses_captured_length() -> None:
    out, counts, _ = run([ethernet(ipv4(udp(INVITE), total=0))])
    assert out == [udp4()]
    assert counts == {}


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (ipv4(udp(INVITE))[:19], "net.truncated_ipv4"),
        (ipv4(udp(INVITE), total=20 + 8 + len(INVITE) + 1), "net.truncated_ipv4"),
        (ipv4(udp(INVITE), version=5), "net.bad_ipv4_header"),
        (ipv4(udp(INVITE), ihl=4), "net.bad_ipv4_header"),
        (ipv4(udp(INVITE), total=19), "net.bad_ipv4_header"),
        (ipv4(b"", ihl=6), "net.bad_ipv4_header"),  # total length 20 < header length 24
        (ipv4(udp(b"")[:4], options=b"\x01" * 4), "net.truncated_udp"),
        (ipv4(udp(INVITE)[:7]), "net.truncated_udp"),
        (ipv4(udp(INVITE, length=7)), "net.bad_udp_length"),
        (ipv4(udp(INVITE, length=9 + len(INVITE))), "net.bad_udp_length"),
        (ipv4(tcp(INVITE, 1)[:19], proto=6), "net.truncated_tcp"),
        (ipv4(tcp(b"", 1, data_offset=4), proto=6), "net.bad_tcp_header"),
        (ipv4(tcp(b"", 1, data_offset=6), proto=6), "net.truncated_tcp"),
    ],
)
def test_ipv4_errors(packet: bytes, slug: str) -> None:
    out, counts, _ = run([ethernet(packet)])
    assert out == []
    assert counts == {slug: 1}


def test_udp_length_shorter_than_ip_payload_trims() -> None:
    packet = ipv4(udp(INVITE + b"junk", length=8 + len(INVITE)))
    out, counts, _ = run([ethernet(packet)])
    assert out == [udp4()]
    assert counts == {}


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (ipv4(b"\x08\x00" + b"\0" * 30, proto=1), "skipped.ip_protocol"),  # ICMP
        (ipv4(b"\0" * 40, proto=50), "skipped.ip_protocol"),  # ESP
        (ipv4(udp(b"\x80" * 172, 20000, 20002)), "skipped.port"),  # RTP
        (ipv4(udp(b"", 5060, 5060)), "skipped.empty_payload"),
        (ipv4(tcp(b"GET / HTTP/1.1\r\n", 1, dport=80), proto=6), "skipped.port"),
    ],
)
def test_not_sip_is_skipped(packet: bytes, slug: str) -> None:
    out, counts, _ = run([ethernet(packet)])
    assert out == []
    assert counts == {slug: 1}


def test_custom_sip_ports() -> None:
    out, counts, _ = run(
        [ethernet(ipv4(udp(INVITE, 40000, 6060))), ethernet(ipv4(udp(INVITE)))],
        sip_ports=frozenset({6060}),
    )
    assert out == [udp4(INVITE, 40000, 6060)]
    assert counts == {"skipped.port": 1}


def test_all_ports_takes_sip_anywhere_and_skips_the_rest() -> None:
    frames = [
        ethernet(ipv4(udp(OK, 7000, 7001))),
        ethernet(ipv4(udp(b"\x80" * 50, 7000, 7001))),
        ethernet(ipv4(udp(b"\r\n\r\n", 7000, 7001))),  # keep-alive off SIP ports: not SIP
        ethernet(ipv4(udp(b"\r\n\r\n", 5060, 7001))),  # on a SIP port: passed on
    ]
    out, counts, _ = run(frames, all_ports=True)
    keepalive = udp4(b"\r\n\r\n", 5060, 7001)
    keepalive.ts_ns = 1003
    assert out == [udp4(OK, 7000, 7001), keepalive]
    assert counts == {"skipped.not_sip": 2}


# -- IPv6 ---------------------------------------------------------------------------------------


def test_ipv6_udp_sip() -> None:
    out, counts, _ = run([ethernet(ipv6(udp(INVITE)), 0x86DD)])
    assert out == [udp6()]
    assert counts == {}


@pytest.mark.parametrize(
    ("chain", "first"),
    [
        (ext(17), 0),  # hop-by-hop
        (ext(17, b"\0" * 22), 43),  # routing, 24 bytes
        (ext(17), 60),  # destination options
        (ah(17), 51),
        (ext(43, b"\0" * 14) + ext(51) + ah(60) + ext(17), 0),
        (frag6(17, 0, False, 9), 44),  # atomic fragment (RFC 6946)
    ],
)
def test_ipv6_extension_headers(chain: bytes, first: int) -> None:
    out, counts, dec = run([ethernet(ipv6(chain + udp(INVITE), nh=first), 0x86DD)])
    assert out == [udp6()]
    assert counts == {}
    assert dec.table_sizes() == {"fragments": 0, "tcp_flows": 0}


def test_ipv6_padding_trimmed_by_payload_length() -> None:
    out, counts, _ = run([ethernet(ipv6(udp(INVITE)) + b"\0" * 8, 0x86DD)])
    assert out == [udp6()]
    assert counts == {}


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (ipv6(udp(INVITE))[:39], "net.truncated_ipv6"),
        (ipv6(udp(INVITE), plen=len(INVITE) + 9), "net.truncated_ipv6"),
        (ipv6(udp(INVITE), version=4), "net.bad_ipv6_header"),
        (ipv6(ext(17)[:6], nh=0), "net.truncated_ipv6"),
        (ipv6(ext(17, b"\0" * 14)[:12], nh=60), "net.truncated_ipv6"),
        (ipv6(frag6(17, 8, False, 1)[:7], nh=44), "net.truncated_ipv6"),
        (ipv6(udp(INVITE)[:5]), "net.truncated_udp"),
        (ipv6(udp(INVITE, length=3)), "net.bad_udp_length"),
        (ipv6(ext(59), nh=60), "skipped.no_next_header"),
        (ipv6(b"\x80\0" + b"\0" * 30, nh=58), "skipped.ip_protocol"),  # ICMPv6
        (ipv6(b"\0" * 16, nh=50), "skipped.ip_protocol"),  # ESP
    ],
)
def test_ipv6_errors_and_skips(packet: bytes, slug: str) -> None:
    out, counts, _ = run([ethernet(packet, 0x86DD)])
    assert out == []
    assert counts == {slug: 1}


# -- tunnels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "want"),
    [
        (ipv4(ipv4(udp(INVITE)), proto=4, src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02"), udp4()),
        (ipv4(ipv6(udp(INVITE)), proto=41), udp6()),  # 6in4
        (ipv6(ipv4(udp(INVITE)), nh=4), udp4()),  # 4in6
        (ipv6(ipv6(udp(INVITE)), nh=41), udp6()),
    ],
)
def test_ip_in_ip(packet: bytes, want: SipPayload) -> None:
    etype = 0x0800 if packet[0] >> 4 == 4 else 0x86DD
    out, counts, _ = run([ethernet(packet, etype)])
    assert out == [want]
    assert counts == {}


def test_tunnel_depth_is_bounded() -> None:
    packet = ipv4(udp(INVITE))
    for _ in range(3):
        packet = ipv4(packet, proto=4)
    out, counts, _ = run([ethernet(packet)], limits=NetLimits(max_tunnel_depth=3))
    assert out == [udp4()]
    out, counts, _ = run([ethernet(ipv4(packet, proto=4))], limits=NetLimits(max_tunnel_depth=3))
    assert out == []
    assert counts == {"net.tunnel_too_deep": 1}


# -- tables and timers --------------------------------------------------------------------------


def test_handle_timer_on_empty_tables() -> None:
    _, _, dec = run([])
    dec.handle_timer(10**18)
    assert dec.table_sizes() == {"fragments": 0, "tcp_flows": 0}
    assert dec.evictions == {}


def test_table_sizes_counts_fragments_and_flows() -> None:
    frames = [
        ethernet(ipv4(udp(INVITE)[:16], more=True)),
        eth_tcp4(INVITE[:10], 1),
    ]
    _, counts, dec = run(frames)
    assert dec.table_sizes() == {"fragments": 1, "tcp_flows": 1}
    assert counts == {}


# -- robustness ---------------------------------------------------------------------------------

LINKTYPES = [0, 1, 101, 108, 113, 228, 229, 276]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LINKTYPES), st.lists(st.binary(max_size=120), max_size=6))
def test_arbitrary_bytes_never_raise(linktype: int, frames: list[bytes]) -> None:
    reasons = Reasons()
    dec = FrameDecoder(reasons, all_ports=True)
    for i, frame in enumerate(frames):
        out = dec.feed(i, linktype, frame)
        assert isinstance(out, list)
    dec.handle_timer(10**15)


_HEADERS = {
    1: ethernet(b""),
    113: ethernet(b"")[:0] + b"\0\0\0\x01\0\x06" + b"\0" * 8 + b"\x08\x00",
    101: b"",
}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(_HEADERS)),
    st.sampled_from([4, 6]),
    st.integers(0, 255),
    st.binary(max_size=80),
)
def test_mutated_ip_headers_never_raise(
    linktype: int, version: int, proto: int, tail: bytes
) -> None:
    """Plausible link + IP headers with random protocol and transport bytes."""
    prefix = _HEADERS[linktype]
    if version == 4:
        packet = ipv4(tail, proto=proto, more=proto % 2 == 0, frag_offset=(proto % 3) * 8)
        if linktype != 101:
            prefix = prefix[:-2] + b"\x08\x00"
    else:
        packet = ipv6(tail, nh=proto)
        if linktype != 101:
            prefix = prefix[:-2] + b"\x86\xdd"
    reasons = Reasons()
    dec = FrameDecoder(reasons, all_ports=proto % 2 == 1)
    assert isinstance(dec.feed(0, linktype, prefix + packet), list)
    assert isinstance(dec.feed(1, linktype, prefix + packet), list)


def test_any_buffer_and_the_empty_frame() -> None:
    reasons = Reasons()
    dec = FrameDecoder(reasons)
    frame = ethernet(ipv4(udp(INVITE, 5060, 5062)))
    want = [SipPayload(3, PROTO_UDP, SRC4, 5060, DST4, 5062, INVITE)]
    assert dec.feed(3, 1, bytearray(frame)) == want
    assert dec.feed(3, 1, memoryview(frame)) == want
    assert dec.feed(3, 1, b"") == []
    assert reasons.counts == {"net.truncated_ethernet": 1}
