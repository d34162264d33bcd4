"""GTP-U decapsulation through the frame decoder: G-PDUs, optional fields, extension headers,
error slugs, and the port filter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbuild import (
    DST4,
    DST6,
    INVITE,
    SRC4,
    SRC6,
    ethernet,
    gtpu,
    ipv4,
    ipv6,
    tcp,
    udp,
)
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits
from sip_otel.net.types import PROTO_TCP, PROTO_UDP, SipPayload

SIP4 = ipv4(udp(INVITE))
SIP6 = ipv6(udp(INVITE))
WANT4 = SipPayload(1000, PROTO_UDP, SRC4, 5060, DST4, 5060, INVITE)
WANT6 = SipPayload(1000, PROTO_UDP, SRC6, 5060, DST6, 5060, INVITE)


def run(frames: list[bytes], **kwargs: object) -> tuple[list[SipPayload], dict[str, int]]:
    reasons = Reasons()
    dec = FrameDecoder(reasons, **kwargs)  # type: ignore[arg-type]
    out: list[SipPayload] = []
    for i, frame in enumerate(frames):
        out += dec.feed(1000 + i, 1, frame)
    return out, reasons.counts


def over_gtp(gtp: bytes, sport: int = 2152, dport: int = 2152) -> bytes:
    """Ethernet / outer IPv4 / UDP 2152 / the given GTP-U packet."""
    return ethernet(ipv4(udp(gtp, sport, dport), src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02"))


PDU_SESSION = (0x85, b"\x00\x09")  # PDU session container: 1 unit, QFI 9
LONG_EXT = (0x40, b"\x01\x02\x03\x04\x05\x06")  # 2 units


@pytest.mark.parametrize(
    ("packet", "want"),
    [
        (gtpu(SIP4), WANT4),
        (gtpu(SIP6), WANT6),
        (gtpu(SIP4, seq=77), WANT4),
        (gtpu(SIP4, flags=0x31), WANT4),  # PN set: the 4 optional bytes are present
        (gtpu(SIP4, extensions=(PDU_SESSION,)), WANT4),
        (gtpu(SIP6, seq=1, extensions=(PDU_SESSION, LONG_EXT)), WANT6),
    ],
)
def test_gpdu_carries_ip(packet: bytes, want: SipPayload) -> None:
    out, counts = run([over_gtp(packet)])
    assert out == [want]
    assert counts == {}


def test_gtp_is_recognised_by_destination_port() -> None:
    out, counts = run([over_gtp(gtpu(SIP4), sport=40000)])
    assert out == [WANT4]
    assert counts == {}
    out, counts = run([over_gtp(gtpu(SIP4), dport=40000)])  # from 2152: not a G-PDU
    assert out == []
    assert counts == {"skipped.port": 1}


def test_gtp_inner_tcp() -> None:
    out, counts = run([over_gtp(gtpu(ipv4(tcp(INVITE, 1), proto=6)))])
    assert out == [SipPayload(1000, PROTO_TCP, SRC4, 40000, DST4, 5060, INVITE)]
    assert counts == {}


def test_gtp_inner_port_filter_applies() -> None:
    rtp = gtpu(ipv4(udp(b"\x80" * 40, 20000, 20002)))
    out, counts = run([over_gtp(rtp)])
    assert out == []
    assert counts == {"skipped.port": 1}
    out, counts = run([over_gtp(rtp)], all_ports=True)
    assert counts == {"skipped.not_sip": 1}


def test_gtp_length_trims_padding() -> None:
    packet = gtpu(SIP4) + b"\0" * 4
    out, counts = run([over_gtp(packet)])
    assert out == [WANT4]
    assert counts == {}


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (gtpu(SIP4)[:7], "net.truncated_gtp"),
        (gtpu(SIP4, length=len(SIP4) + 1), "net.truncated_gtp"),
        (gtpu(SIP4, flags=0x50), "net.bad_gtp_header"),  # version 2 (GTPv2-C)
        (gtpu(SIP4, flags=0x20), "net.bad_gtp_header"),  # PT 0: GTP'
        (gtpu(b"", mtype=1), "skipped.gtp_message"),  # echo request
        (gtpu(b"\0" * 8, mtype=26), "skipped.gtp_message"),  # error indication
        (gtpu(b"", seq=1), "net.truncated_gtp"),  # nothing after the optional part
        (gtpu(b"", length=0, flags=0x32), "net.truncated_gtp"),  # optional part missing
        (gtpu(b""), "net.truncated_gtp"),  # empty G-PDU
        (gtpu(b"\x55" + SIP4[1:]), "net.bad_ip_version"),
    ],
)
def test_gtp_errors(packet: bytes, slug: str) -> None:
    out, counts = run([over_gtp(packet)])
    assert out == []
    assert counts == {slug: 1}


def _with_raw_extension(ext: bytes, payload: bytes = SIP4) -> bytes:
    """G-PDU with E set, next type 0x85, then the given raw extension bytes."""
    body = b"\0\0\0\x85" + ext + payload
    return bytes([0x34, 255]) + len(body).to_bytes(2, "big") + b"\0\0\0\x01" + body


@pytest.mark.parametrize(
    ("ext", "slug"),
    [
        (b"\x00\x00\x00\x00", "net.bad_gtp_header"),  # zero length
        (b"\x03\x00\x00\x00", "net.truncated_gtp"),  # 12 bytes claimed, 4 + payload left
        (b"\x01\x00\x00\x85" * 17, "net.bad_gtp_header"),  # endless chain
    ],
)
def test_gtp_extension_errors(ext: bytes, slug: str) -> None:
    payload = b"" if slug == "net.truncated_gtp" else SIP4
    out, counts = run([over_gtp(_with_raw_extension(ext, payload))])
    assert out == []
    assert counts == {slug: 1}


def test_gtp_extension_chain_running_off_the_end() -> None:
    out, counts = run([over_gtp(_with_raw_extension(b"\x01\x00\x00\x85", b""))])
    assert out == []
    assert counts == {"net.truncated_gtp": 1}


def test_gtp_counts_against_the_tunnel_depth() -> None:
    inner = gtpu(ipv4(udp(gtpu(SIP4), 2152, 2152)))
    out, counts = run([over_gtp(inner)], limits=NetLimits(max_tunnel_depth=2))
    assert out == [WANT4]
    out, counts = run([over_gtp(inner)], limits=NetLimits(max_tunnel_depth=1))
    assert out == []
    assert counts == {"net.tunnel_too_deep": 1}


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.sampled_from([1, 26, 254, 255]), st.binary(max_size=80))
def test_random_gtp_never_raises(flags: int, mtype: int, tail: bytes) -> None:
    packet = bytes([flags, mtype]) + len(tail).to_bytes(2, "big") + b"\0\0\0\1" + tail
    reasons = Reasons()
    dec = FrameDecoder(reasons, all_ports=True)
    assert isinstance(dec.feed(0, 1, over_gtp(packet)), list)
