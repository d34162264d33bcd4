"""GRE decapsulation through the frame decoder: every inner protocol, flag and error slug."""

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
    erspan2,
    erspan3,
    ethernet,
    gre,
    ipv4,
    ipv6,
    ppp,
    pptp_gre,
    tcp,
    udp,
)
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits
from sip_otel.net.types import PROTO_TCP, PROTO_UDP, SipPayload

OUTER_SRC = bytes([10, 0, 0, 1])
OUTER_DST = bytes([10, 0, 0, 2])


def run(frames: list[bytes], **kwargs: object) -> tuple[list[SipPayload], dict[str, int]]:
    reasons = Reasons()
    dec = FrameDecoder(reasons, **kwargs)  # type: ignore[arg-type]
    out: list[SipPayload] = []
    for i, frame in enumerate(frames):
        out += dec.feed(1000 + i, 1, frame)
    return out, reasons.counts


def over_gre4(gre_packet: bytes) -> bytes:
    """Ethernet / outer IPv4 (protocol 47) / the given GRE packet."""
    return ethernet(ipv4(gre_packet, proto=47, src=OUTER_SRC, dst=OUTER_DST))


SIP4 = ipv4(udp(INVITE))
SIP6 = ipv6(udp(INVITE))
WANT4 = SipPayload(1000, PROTO_UDP, SRC4, 5060, DST4, 5060, INVITE)
WANT6 = SipPayload(1000, PROTO_UDP, SRC6, 5060, DST6, 5060, INVITE)


# -- GRE version 0 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "want"),
    [
        (gre(SIP4), WANT4),
        (gre(SIP6, protocol=0x86DD), WANT6),
        (gre(SIP4, checksum=True), WANT4),
        (gre(SIP4, key=0xABCD), WANT4),
        (gre(SIP4, seq=9), WANT4),
        (gre(SIP4, checksum=True, key=1, seq=2), WANT4),
    ],
)
def test_gre_ip_with_optional_fields(packet: bytes, want: SipPayload) -> None:
    out, counts = run([over_gre4(packet)])
    assert out == [want]
    assert counts == {}


def test_gre_over_ipv6() -> None:
    frame = ethernet(ipv6(gre(SIP4, key=5), nh=47), 0x86DD)
    out, counts = run([frame])
    assert out == [WANT4]
    assert counts == {}


def test_gre_tcp_inner() -> None:
    out, counts = run([over_gre4(gre(ipv4(tcp(INVITE, 1), proto=6)))])
    assert out == [SipPayload(1000, PROTO_TCP, SRC4, 40000, DST4, 5060, INVITE)]
    assert counts == {}


@pytest.mark.parametrize(
    "tags", [(), ((0x8100, 100),), ((0x88A8, 10), (0x8100, 20))], ids=["plain", "vlan", "qinq"]
)
def test_gre_transparent_ethernet_bridging(tags: tuple[tuple[int, int], ...]) -> None:
    out, counts = run([over_gre4(gre(ethernet(SIP4, tags=tags), protocol=0x6558, key=3))])
    assert out == [WANT4]
    assert counts == {}


def test_gre_bridged_ipv6() -> None:
    out, counts = run([over_gre4(gre(ethernet(SIP6, 0x86DD), protocol=0x6558))])
    assert out == [WANT6]
    assert counts == {}


# -- ERSPAN ---------------------------------------------------------------------------------


def test_erspan_type_ii() -> None:
    out, counts = run([over_gre4(gre(erspan2(ethernet(SIP4)), protocol=0x88BE, seq=1))])
    assert out == [WANT4]
    assert counts == {}


def test_erspan_type_ii_vlan_tagged_mirror() -> None:
    frame = erspan2(ethernet(SIP4, tags=((0x8100, 7),)))
    out, counts = run([over_gre4(gre(frame, protocol=0x88BE, seq=1))])
    assert out == [WANT4]
    assert counts == {}


def test_erspan_type_i_has_no_header() -> None:
    out, counts = run([over_gre4(gre(ethernet(SIP4), protocol=0x88BE))])
    assert out == [WANT4]
    assert counts == {}


def test_erspan_type_iii() -> None:
    out, counts = run([over_gre4(gre(erspan3(ethernet(SIP4)), protocol=0x22EB, seq=1))])
    assert out == [WANT4]
    assert counts == {}


def test_erspan_type_iii_platform_subheader() -> None:
    frame = erspan3(ethernet(SIP6, 0x86DD), subheader=b"\x08" + b"\x55" * 7)
    out, counts = run([over_gre4(gre(frame, protocol=0x22EB, seq=1))])
    assert out == [WANT6]
    assert counts == {}


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (gre(erspan2(ethernet(SIP4))[:7], protocol=0x88BE, seq=1), "net.truncated_gre"),
        (gre(erspan2(ethernet(SIP4), version=2), protocol=0x88BE, seq=1), "net.bad_gre"),
        (gre(erspan2(ethernet(SIP4)[:13]), protocol=0x88BE, seq=1), "net.truncated_ethernet"),
        (gre(erspan3(ethernet(SIP4))[:11], protocol=0x22EB), "net.truncated_gre"),
        (gre(erspan3(ethernet(SIP4), version=1), protocol=0x22EB), "net.bad_gre"),
        (gre(erspan3(b"", subheader=b"\0" * 8)[:19], protocol=0x22EB), "net.truncated_gre"),
        (gre(erspan3(SIP4, frame_type=2), protocol=0x22EB), "skipped.gre_protocol"),
        (gre(ethernet(b"\0" * 28, 0x0806), protocol=0x6558), "skipped.ethertype"),  # ARP
    ],
)
def test_erspan_and_bridging_errors(packet: bytes, slug: str) -> None:
    out, counts = run([over_gre4(packet)])
    assert out == []
    assert counts == {slug: 1}


# -- PPP in enhanced GRE (PPTP) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "want"),
    [
        (pptp_gre(ppp(SIP4)), WANT4),
        (pptp_gre(ppp(SIP6, protocol=0x0057)), WANT6),
        (pptp_gre(ppp(SIP4), ack=3), WANT4),
        (pptp_gre(ppp(SIP4, acfc=True, pfc=True)), WANT4),
        (pptp_gre(ppp(SIP4, pfc=True)), WANT4),
        (gre(ppp(SIP4), protocol=0x880B), WANT4),  # version 0 PPP in GRE
    ],
)
def test_ppp_in_gre(packet: bytes, want: SipPayload) -> None:
    out, counts = run([over_gre4(packet)])
    assert out == [want]
    assert counts == {}


def test_pptp_payload_length_trims() -> None:
    body = ppp(SIP4)
    out, counts = run([over_gre4(pptp_gre(body + b"\0" * 6, length=len(body)))])
    assert out == [WANT4]
    assert counts == {}


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (pptp_gre(b"", seq=None, ack=5), "skipped.empty_payload"),  # acknowledgement only
        (pptp_gre(ppp(b"\x01\x01\0\x04", protocol=0xC021)), "skipped.ppp_protocol"),  # LCP
        (pptp_gre(b"\xff\x03"), "net.truncated_gre"),
        (pptp_gre(b"\xff\x03\x00"), "net.truncated_gre"),
        (pptp_gre(ppp(SIP4))[:10], "net.truncated_gre"),  # ack/sequence cut
        (gre(ppp(SIP4), protocol=0x880B, version=1), "net.bad_gre"),  # version 1 without key
        (gre(ppp(SIP4), protocol=0x880B, key=1, version=1, checksum=True), "net.bad_gre"),
        (gre(SIP4, key=1, version=1), "net.bad_gre"),  # version 1 is for PPP only
    ],
)
def test_ppp_in_gre_errors(packet: bytes, slug: str) -> None:
    out, counts = run([over_gre4(packet)])
    assert out == []
    assert counts == {slug: 1}


# -- GRE errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "slug"),
    [
        (b"\0\0\x08", "net.truncated_gre"),
        (gre(b"", checksum=True, key=1)[:8], "net.truncated_gre"),  # key field cut
        (gre(SIP4, version=2), "net.bad_gre"),
        (gre(SIP4, version=7), "net.bad_gre"),
        (gre(SIP4, extra_flags=0x4000), "net.bad_gre"),  # RFC 1701 routing present
        (gre(SIP4, extra_flags=0x0800), "net.bad_gre"),  # strict source route
        (gre(b"\0" * 20, protocol=0x0806), "skipped.gre_protocol"),  # ARP
        (gre(b"\0" * 20, protocol=0x8847), "skipped.gre_protocol"),  # MPLS
        (gre(SIP4[:10]), "net.truncated_ipv4"),
    ],
)
def test_gre_errors(packet: bytes, slug: str) -> None:
    out, counts = run([over_gre4(packet)])
    assert out == []
    assert counts == {slug: 1}


def test_gre_counts_against_the_tunnel_depth() -> None:
    packet = gre(SIP4)
    for _ in range(2):
        packet = gre(ipv4(packet, proto=47))
    out, counts = run([over_gre4(packet)], limits=NetLimits(max_tunnel_depth=3))
    assert out == [WANT4]
    deeper = over_gre4(gre(ipv4(packet, proto=47)))
    out, counts = run([deeper], limits=NetLimits(max_tunnel_depth=3))
    assert out == []
    assert counts == {"net.tunnel_too_deep": 1}


def test_fragmented_gre_is_reassembled() -> None:
    packet = gre(ethernet(SIP4), protocol=0x6558)
    first, second = packet[:48], packet[48:]
    frames = [
        ethernet(ipv4(first, proto=47, src=OUTER_SRC, dst=OUTER_DST, ident=9, more=True)),
        ethernet(ipv4(second, proto=47, src=OUTER_SRC, dst=OUTER_DST, ident=9, frag_offset=48)),
    ]
    out, counts = run(frames)
    assert [(p.src_ip, p.data) for p in out] == [(SRC4, INVITE)]
    assert counts == {}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([0x0800, 0x86DD, 0x6558, 0x88BE, 0x22EB, 0x880B, 0x1234]),
    st.integers(0, 0xFFFF),
    st.binary(max_size=80),
)
def test_random_gre_never_raises(protocol: int, flags: int, tail: bytes) -> None:
    packet = flags.to_bytes(2, "big") + protocol.to_bytes(2, "big") + tail
    reasons = Reasons()
    dec = FrameDecoder(reasons, all_ports=True)
    assert isinstance(dec.feed(0, 1, over_gre4(packet)), list)
