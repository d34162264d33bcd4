"""GTP-U decapsulation (3GPP TS 29.281): user-plane tunnels of the mobile core, UDP port 2152.

:func:`decap_gtpu` takes the GTP-U header at ``off`` (the UDP payload) and returns
``(ethertype, offset, end)`` of the IP packet a G-PDU carries, or raises ``DecodeError``.

Header (section 5.1): flags (version 3 bits = 1, PT = 1, spare, E, S, PN), message type, length
of everything after the first 8 bytes, TEID. When any of E/S/PN is set, 4 more bytes follow
(sequence number, N-PDU number, next extension header type). With E set, extension headers
chain: each starts with its length in 4-byte units (at least 1) and ends with the type of the
next one, 0 meaning none.

Slugs: net.truncated_gtp, net.bad_gtp_header, net.bad_ip_version; skipped.gtp_message.
"""

from __future__ import annotations

import struct

from sip_otel.errors import DecodeError
from sip_otel.net.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6

__all__ = ["GTPU_PORT", "MAX_GTP_EXTENSIONS", "decap_gtpu"]

GTPU_PORT = 2152
GTP_GPDU = 255
# Real G-PDUs carry one or two extension headers (PDU session container, UDP port); a bound
# keeps a chain of minimal headers from walking a whole jumbo datagram.
MAX_GTP_EXTENSIONS = 16

_GTP = struct.Struct("!BBH")  # flags, message type, length


def decap_gtpu(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """Unwrap one GTP-U G-PDU down to the IPv4/IPv6 packet it carries."""
    if end - off < 8:
        raise DecodeError("net.truncated_gtp")
    flags, mtype, length = _GTP.unpack_from(data, off)
    if flags & 0xF0 != 0x30:  # version 1, protocol type GTP (not GTP')
        raise DecodeError("net.bad_gtp_header")
    if mtype != GTP_GPDU:
        raise DecodeError("skipped.gtp_message")
    p = off + 8
    if p + length > end:
        raise DecodeError("net.truncated_gtp")
    end = p + length
    if flags & 0x07:  # E, S or PN: sequence number, N-PDU number, next extension type
        if p + 4 > end:
            raise DecodeError("net.truncated_gtp")
        nxt = data[p + 3] if flags & 0x04 else 0
        p += 4
        count = 0
        while nxt:
            count += 1
            if count > MAX_GTP_EXTENSIONS or p >= end:
                raise DecodeError("net.bad_gtp_header" if p < end else "net.truncated_gtp")
            size = data[p] << 2
            if size == 0:
                raise DecodeError("net.bad_gtp_header")
            if p + size > end:
                raise DecodeError("net.truncated_gtp")
            nxt = data[p + size - 1]
            p += size
    if p >= end:
        raise DecodeError("net.truncated_gtp")
    version = data[p] >> 4
    if version == 4:
        return ETHERTYPE_IPV4, p, end
    if version == 6:
        return ETHERTYPE_IPV6, p, end
    raise DecodeError("net.bad_ip_version")
