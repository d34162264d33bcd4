"""Link layers: every link type, VLAN stacks, PPPoE, and each reason slug."""

from __future__ import annotations

import pytest

from netbuild import (
    DST4,
    DST6,
    INVITE,
    SRC4,
    SRC6,
    ethernet,
    ipv4,
    ipv6,
    null,
    pppoe,
    sll,
    sll2,
    udp,
)
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder
from sip_otel.net.link import decode_ethernet, decode_linux_sll, decode_null
from sip_otel.net.types import PROTO_UDP, SipPayload

UDP4 = ipv4(udp(INVITE, 5060, 5062))
UDP6 = ipv6(udp(INVITE, 5060, 5062))
WANT4 = [SipPayload(7, PROTO_UDP, SRC4, 5060, DST4, 5062, INVITE)]
WANT6 = [SipPayload(7, PROTO_UDP, SRC6, 5060, DST6, 5062, INVITE)]


def decode(linktype: int, frame: bytes) -> tuple[list[SipPayload], dict[str, int]]:
    reasons = Reasons()
    out = FrameDecoder(reasons).feed(7, linktype, frame)
    return out, reasons.counts


@pytest.mark.parametrize(
    ("linktype", "frame", "want"),
    [
        (1, ethernet(UDP4), WANT4),
        (1, ethernet(UDP6, 0x86DD), WANT6),
        (1, ethernet(UDP4, tags=((0x8100, 10),)), WANT4),
        (1, ethernet(UDP4, tags=((0x88A8, 100), (0x8100, 10))), WANT4),  # QinQ
        (1, ethernet(UDP6, 0x86DD, tags=((0x9100, 100), (0x8100, 10))), WANT6),
        (1, ethernet(pppoe(UDP4), 0x8864), WANT4),
        (1, ethernet(pppoe(UDP6, 0x0057), 0x8864, tags=((0x8100, 7),)), WANT6),
        (113, sll(UDP4), WANT4),
        (113, sll(UDP6, 0x86DD), WANT6),
        (113, sll(b"\x00\x0a\x08\x00" + UDP4, 0x8100), WANT4),  # VLAN tag inside cooked capture
        (276, sll2(UDP4), WANT4),
        (276, sll2(UDP6, 0x86DD), WANT6),
        (0, null(UDP4, 2), WANT4),
        (0, null(UDP4, 2, ">"), WANT4),  # captured on a big-endian host
        (0, null(UDP6, 24), WANT6),
        (0, null(UDP6, 28), WANT6),
        (0, null(UDP6, 30, ">"), WANT6),
        (108, null(UDP4, 2, ">"), WANT4),
        (108, null(UDP6, 24, ">"), WANT6),
        (101, UDP4, WANT4),
        (101, UDP6, WANT6),
        (228, UDP4, WANT4),
        (229, UDP6, WANT6),
    ],
)
def test_link_types_reach_udp(linktype: int, frame: bytes, want: list[SipPayload]) -> None:
    out, counts = decode(linktype, frame)
    assert out == want
    assert counts == {}


def test_ethernet_offsets() -> None:
    assert decode_ethernet(ethernet(UDP4)) == (0x0800, 14, 14 + len(UDP4))
    frame = ethernet(UDP4, tags=((0x88A8, 1), (0x8100, 2)))
    assert decode_ethernet(frame) == (0x0800, 22, len(frame))


def test_pppoe_length_trims_padding() -> None:
    frame = ethernet(pppoe(UDP4) + b"\0" * 6, 0x8864)
    assert decode_ethernet(frame) == (0x0800, 22, 22 + len(UDP4))


def test_sll_and_null_offsets() -> None:
    assert decode_linux_sll(sll(UDP4)) == (0x0800, 16, 16 + len(UDP4))
    assert decode_null(null(UDP6, 30)) == (0x86DD, 4, 4 + len(UDP6))


@pytest.mark.parametrize(
    ("linktype", "frame", "slug"),
    [
        (1, ethernet(b"")[:13], "net.truncated_ethernet"),
        (1, ethernet(b"", 0x8100)[:14] + b"\x00", "net.truncated_vlan"),
        (1, ethernet(UDP4, tags=((0x8100, 1),) * 9), "net.too_many_vlan_tags"),
        (1, ethernet(pppoe(UDP4)[:7], 0x8864), "net.truncated_pppoe"),
        (1, ethernet(pppoe(UDP4, length=len(UDP4) + 50), 0x8864), "net.truncated_pppoe"),
        (1, ethernet(b"\x12" + pppoe(UDP4)[1:], 0x8864), "net.bad_pppoe_header"),
        (1, ethernet(pppoe(UDP4, length=1), 0x8864), "net.bad_pppoe_header"),
        (113, sll(UDP4)[:15], "net.truncated_sll"),
        (276, sll2(UDP4)[:19], "net.truncated_sll2"),
        (0, b"\x02\x00\x00", "net.truncated_loopback"),
        (108, b"\x00\x00", "net.truncated_loopback"),
        (101, b"", "net.truncated_ip"),
        (101, b"\x50" + UDP4[1:], "net.bad_ip_version"),
        (12345, UDP4, "net.unsupported_linktype"),
        # fine frames that carry no IP: skipped, not errors
        (1, ethernet(b"\0" * 28, 0x0806), "skipped.ethertype"),  # ARP
        (1, ethernet(b"\0" * 28, 0x0806, tags=((0x8100, 5),)), "skipped.ethertype"),
        (1, ethernet(b"\x42\x42\x03" + b"\0" * 40, 0x0026), "skipped.ethertype"),  # 802.3 LLC
        (1, ethernet(pppoe(b"\xc0\x21" + b"\0" * 8, 0xC021), 0x8864), "skipped.ppp_protocol"),
        (1, ethernet(b"\x11\x09" + b"\0" * 20, 0x8863), "skipped.ethertype"),  # PPPoE discovery
        (113, sll(b"\0" * 28, 0x0806), "skipped.ethertype"),
        (0, null(UDP4, 7), "skipped.address_family"),
        (108, null(UDP4, 2), "skipped.address_family"),  # little-endian is wrong for LOOP
    ],
)
def test_link_errors_and_skips(linktype: int, frame: bytes, slug: str) -> None:
    out, counts = decode(linktype, frame)
    assert out == []
    assert counts == {slug: 1}
