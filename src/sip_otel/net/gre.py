"""GRE decapsulation (IP protocol 47): the traffic mirrored to a monitor often arrives this way.

:func:`decap_gre` takes the GRE header at ``off`` and returns ``(ethertype, offset, end)`` of
the IP packet inside, like the link decoders, or raises ``DecodeError``:

- GRE (RFC 2784, with key and sequence number from RFC 2890): version 0; the C, K and S flags
  each add 4 bytes. The RFC 1701 routing and strict-source-route bits are refused.
- Enhanced GRE (RFC 2637, PPTP): version 1, only for PPP; the key field carries the payload
  length, the A flag adds a 4-byte acknowledgement number.
- Inner protocols: IPv4, IPv6, transparent Ethernet bridging (an Ethernet frame, VLAN tags
  allowed), ERSPAN type I (0x88BE without sequence number: Ethernet directly), type II (0x88BE
  with sequence number: 8-byte header then Ethernet), type III (0x22EB: 12-byte header, plus an
  8-byte platform subheader when the O bit is set), PPP (0x880B) carrying IPv4 or IPv6.

Slugs: net.truncated_gre, net.bad_gre; skipped.gre_protocol, skipped.ppp_protocol,
skipped.empty_payload, plus the link slugs of an inner Ethernet frame.
"""

from __future__ import annotations

import struct

from sip_otel.errors import DecodeError
from sip_otel.net.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    PPP_IPV4,
    PPP_IPV6,
    decode_ethernet_at,
)

__all__ = [
    "GRE_ERSPAN_2",
    "GRE_ERSPAN_3",
    "GRE_PPP",
    "GRE_TEB",
    "IPPROTO_GRE",
    "decap_gre",
]

IPPROTO_GRE = 47
GRE_TEB = 0x6558  # transparent Ethernet bridging
GRE_ERSPAN_2 = 0x88BE  # ERSPAN type II, or type I when the GRE sequence number is absent
GRE_ERSPAN_3 = 0x22EB
GRE_PPP = 0x880B

_C, _R, _K, _S, _SSR, _A = 0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0080
_GRE = struct.Struct("!HH")  # flags/version, protocol type
_U16 = struct.Struct("!H")


def decap_gre(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """Unwrap one GRE header (and what it carries) down to an IPv4/IPv6 packet."""
    if off + 4 > end:
        raise DecodeError("net.truncated_gre")
    flags, proto = _GRE.unpack_from(data, off)
    version = flags & 7
    p = off + 4
    if version == 0:
        if flags & (_R | _SSR):
            raise DecodeError("net.bad_gre")
        if flags & _C:
            p += 4
        if flags & _K:
            p += 4
        if flags & _S:
            p += 4
    elif version == 1 and proto == GRE_PPP:
        # RFC 2637 section 4.1: C and R clear, K set; key = payload length, call id.
        if flags & (_C | _R | _SSR) or not flags & _K:
            raise DecodeError("net.bad_gre")
        if p + 4 > end:
            raise DecodeError("net.truncated_gre")
        plen = _U16.unpack_from(data, p)[0]
        p += 4
        if flags & _S:
            p += 4
        if flags & _A:
            p += 4
        if p > end:
            raise DecodeError("net.truncated_gre")
        if p + plen < end:
            end = p + plen
    else:
        raise DecodeError("net.bad_gre")
    if p > end:
        raise DecodeError("net.truncated_gre")
    if proto in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return proto, p, end
    if proto == GRE_TEB:
        return decode_ethernet_at(data, p, end)
    if proto == GRE_ERSPAN_2:
        if flags & _S:  # type II: version 1 in the first nibble of the 8-byte header
            if p + 8 > end:
                raise DecodeError("net.truncated_gre")
            if data[p] >> 4 != 1:
                raise DecodeError("net.bad_gre")
            p += 8
        return decode_ethernet_at(data, p, end)
    if proto == GRE_ERSPAN_3:
        if p + 12 > end:
            raise DecodeError("net.truncated_gre")
        if data[p] >> 4 != 2:
            raise DecodeError("net.bad_gre")
        ft = (data[p + 10] >> 2) & 0x1F  # frame type: 0 Ethernet, 2 IP
        sub = data[p + 11] & 1  # O bit: platform-specific subheader follows
        p += 20 if sub else 12
        if p > end:
            raise DecodeError("net.truncated_gre")
        if ft != 0:
            raise DecodeError("skipped.gre_protocol")
        return decode_ethernet_at(data, p, end)
    if proto == GRE_PPP:
        return _ppp(data, p, end)
    raise DecodeError("skipped.gre_protocol")


def _ppp(data: bytes, p: int, end: int) -> tuple[int, int, int]:
    """PPP frame (RFC 1661) as PPTP sends it: address/control and the protocol field may be
    compressed (ACFC, PFC)."""
    if p == end:  # acknowledgement-only packet
        raise DecodeError("skipped.empty_payload")
    if data[p] == 0xFF and p + 1 < end and data[p + 1] == 0x03:
        p += 2
    if p >= end:
        raise DecodeError("net.truncated_gre")
    if data[p] & 1:  # compressed one-byte protocol
        proto = data[p]
        p += 1
    else:
        if p + 2 > end:
            raise DecodeError("net.truncated_gre")
        proto = _U16.unpack_from(data, p)[0]
        p += 2
    if proto == PPP_IPV4:
        return ETHERTYPE_IPV4, p, end
    if proto == PPP_IPV6:
        return ETHERTYPE_IPV6, p, end
    raise DecodeError("skipped.ppp_protocol")
