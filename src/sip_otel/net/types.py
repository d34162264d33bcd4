"""Types that cross the capture -> net -> sip boundaries.

Addresses stay raw bytes (4 bytes IPv4, 16 bytes IPv6) on the hot path; format them with
:func:`format_ip` only when a human or a span needs them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "PROTO_TCP",
    "PROTO_UDP",
    "Frame",
    "SipPayload",
    "format_ip",
]

# pcap LINKTYPE_* values (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0  # BSD loopback: 4-byte host-order address family
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version from the first nibble
LINKTYPE_LOOP = 108  # OpenBSD loopback: 4-byte network-order address family
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

PROTO_TCP = 6
PROTO_UDP = 17


class Frame(NamedTuple):
    """One captured link-layer frame. ``ts_ns`` is packet time (ns since the epoch)."""

    ts_ns: int
    linktype: int
    data: bytes
    ifindex: int = 0
    pkt_type: int = 0  # PACKET_HOST=0, PACKET_OUTGOING=4 ... (live capture only)


@dataclass(slots=True)
class SipPayload:
    """Transport payload that should hold SIP.

    UDP: the whole datagram payload (it may hold several SIP messages, or a keep-alive).
    TCP: exactly one SIP message, framed by Content-Length on the reassembled stream.
    ``ts_ns`` is the time of the frame that completed the payload.
    """

    ts_ns: int
    transport: int  # PROTO_UDP or PROTO_TCP
    src_ip: bytes
    src_port: int
    dst_ip: bytes
    dst_port: int
    data: bytes


def format_ip(raw: bytes) -> str:
    """Printable form of a 4- or 16-byte address."""
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.IPv6Address(raw))
