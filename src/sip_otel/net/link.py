"""Link layers: pcap link types, VLAN tag stacks and PPPoE, down to the IP header.

Each decoder takes the frame bytes and returns ``(ethertype, offset, end)`` for the IP packet
inside, where ethertype is :data:`ETHERTYPE_IPV4` or :data:`ETHERTYPE_IPV6`. Malformed frames
raise ``DecodeError("net.<reason>")``; frames that are fine but carry no IP (ARP, LLDP, PPP
control, other address families) raise ``DecodeError("skipped.<reason>")``. Dispatch is a table
(:data:`LINK_DECODERS`), keyed by pcap LINKTYPE.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from sip_otel.errors import DecodeError
from sip_otel.net.types import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

__all__ = [
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_PPPOE_SESSION",
    "LINK_DECODERS",
    "MAX_VLAN_TAGS",
    "PPP_IPV4",
    "PPP_IPV6",
    "VLAN_ETHERTYPES",
    "LinkDecoder",
    "decode_ethernet_at",
]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_PPPOE_SESSION = 0x8864
# 802.1Q customer tag, 802.1ad service tag, and the pre-standard QinQ outer tag.
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
# QinQ uses two tags; real networks never stack more than three. Eight leaves room and stops a
# frame made of nothing but tags from looping long.
MAX_VLAN_TAGS = 8

PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057

# BSD loopback address families (host byte order in LINKTYPE_NULL): AF_INET is 2 everywhere;
# AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD/DragonFly), 30 (macOS).
_AF_TO_ETHERTYPE = {2: ETHERTYPE_IPV4, 24: ETHERTYPE_IPV6, 28: ETHERTYPE_IPV6, 30: ETHERTYPE_IPV6}

_U16 = struct.Struct("!H")
_U32_BE = struct.Struct("!I")
_U32_LE = struct.Struct("<I")
_PPPOE = struct.Struct("!BBHHH")  # ver/type, code, session id, length, PPP protocol

LinkDecoder = Callable[[bytes], tuple[int, int, int]]


def _ethertype(data: bytes, etype: int, off: int, end: int) -> tuple[int, int, int]:
    """Unwrap VLAN tags and PPPoE after an ethertype field; IP or a raised reason."""
    tags = 0
    while etype in VLAN_ETHERTYPES:
        if off + 4 > end:
            raise DecodeError("net.truncated_vlan")
        tags += 1
        if tags > MAX_VLAN_TAGS:
            raise DecodeError("net.too_many_vlan_tags")
        etype = _U16.unpack_from(data, off + 2)[0]
        off += 4
    if etype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return etype, off, end
    if etype == ETHERTYPE_PPPOE_SESSION:
        return _pppoe(data, off, end)
    raise DecodeError("skipped.ethertype")


def _pppoe(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """PPPoE session stage (RFC 2516 section 4) carrying PPP (RFC 1661) IPv4/IPv6."""
    if off + 8 > end:
        raise DecodeError("net.truncated_pppoe")
    vertype, code, _session, length, proto = _PPPOE.unpack_from(data, off)
    if vertype != 0x11 or code != 0 or length < 2:
        raise DecodeError("net.bad_pppoe_header")
    if off + 6 + length > end:
        raise DecodeError("net.truncated_pppoe")
    end = off + 6 + length  # drops Ethernet padding
    if proto == PPP_IPV4:
        return ETHERTYPE_IPV4, off + 8, end
    if proto == PPP_IPV6:
        return ETHERTYPE_IPV6, off + 8, end
    raise DecodeError("skipped.ppp_protocol")


def decode_ethernet(data: bytes) -> tuple[int, int, int]:
    """Ethernet II: 6-byte dst, 6-byte src, ethertype."""
    n = len(data)
    if n < 14:
        raise DecodeError("net.truncated_ethernet")
    etype = _U16.unpack_from(data, 12)[0]
    if etype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return etype, 14, n
    return _ethertype(data, etype, 14, n)


def decode_ethernet_at(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """An Ethernet II frame inside another packet (bridged or mirrored in a tunnel)."""
    if end - off < 14:
        raise DecodeError("net.truncated_ethernet")
    return _ethertype(data, _U16.unpack_from(data, off + 12)[0], off + 14, end)


def decode_linux_sll(data: bytes) -> tuple[int, int, int]:
    """Linux cooked v1: packet type, ARPHRD, address length, 8-byte address, protocol."""
    n = len(data)
    if n < 16:
        raise DecodeError("net.truncated_sll")
    return _ethertype(data, _U16.unpack_from(data, 14)[0], 16, n)


def decode_linux_sll2(data: bytes) -> tuple[int, int, int]:
    """Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, addr len, address."""
    n = len(data)
    if n < 20:
        raise DecodeError("net.truncated_sll2")
    return _ethertype(data, _U16.unpack_from(data, 0)[0], 20, n)


def _address_family(af: int, n: int) -> tuple[int, int, int]:
    etype = _AF_TO_ETHERTYPE.get(af)
    if etype is None:
        raise DecodeError("skipped.address_family")
    return etype, 4, n


def decode_null(data: bytes) -> tuple[int, int, int]:
    """BSD loopback: address family in the *capturing* host's byte order (guess it)."""
    n = len(data)
    if n < 4:
        raise DecodeError("net.truncated_loopback")
    af = _U32_LE.unpack_from(data, 0)[0]
    if af > 0xFFFF:  # written big-endian
        af = _U32_BE.unpack_from(data, 0)[0]
    return _address_family(af, n)


def decode_loop(data: bytes) -> tuple[int, int, int]:
    """OpenBSD loopback: address family in network byte order."""
    n = len(data)
    if n < 4:
        raise DecodeError("net.truncated_loopback")
    return _address_family(_U32_BE.unpack_from(data, 0)[0], n)


def decode_raw(data: bytes) -> tuple[int, int, int]:
    """Raw IP: the version nibble tells IPv4 from IPv6."""
    if not data:
        raise DecodeError("net.truncated_ip")
    version = data[0] >> 4
    if version == 4:
        return ETHERTYPE_IPV4, 0, len(data)
    if version == 6:
        return ETHERTYPE_IPV6, 0, len(data)
    raise DecodeError("net.bad_ip_version")


def decode_ipv4(data: bytes) -> tuple[int, int, int]:
    """LINKTYPE_IPV4: the IPv4 decoder checks the version."""
    return ETHERTYPE_IPV4, 0, len(data)


def decode_ipv6(data: bytes) -> tuple[int, int, int]:
    """LINKTYPE_IPV6: the IPv6 decoder checks the version."""
    return ETHERTYPE_IPV6, 0, len(data)


LINK_DECODERS: dict[int, LinkDecoder] = {
    LINKTYPE_NULL: decode_null,
    LINKTYPE_ETHERNET: decode_ethernet,
    LINKTYPE_RAW: decode_raw,
    LINKTYPE_LOOP: decode_loop,
    LINKTYPE_LINUX_SLL: decode_linux_sll,
    LINKTYPE_IPV4: decode_ipv4,
    LINKTYPE_IPV6: decode_ipv6,
    LINKTYPE_LINUX_SLL2: decode_linux_sll2,
}
