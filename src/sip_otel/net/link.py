"""Link layers: pcap link types, VLAN tag stacks and PPPoE, down to the IP header.

The decoders are compiled (``sip_otel/_c/so_net_link.c``, theory of operation there); the
functions here run that C on one frame. Each takes the frame bytes and returns ``(ethertype,
offset, end)`` for the IP packet inside, where ethertype is :data:`ETHERTYPE_IPV4` or
:data:`ETHERTYPE_IPV6`. Malformed frames raise ``DecodeError("net.<reason>")``; frames that are
fine but carry no IP (ARP, LLDP, PPP control, other address families) raise
``DecodeError("skipped.<reason>")``.
"""

from __future__ import annotations

from sip_otel._core import link_decode
from sip_otel.net.types import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_NULL

__all__ = [
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "decode_ethernet",
    "decode_linux_sll",
    "decode_null",
]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD


def decode_ethernet(data: bytes) -> tuple[int, int, int]:
    """Ethernet II: 6-byte dst, 6-byte src, ethertype (VLAN tags, PPPoE)."""
    return link_decode(LINKTYPE_ETHERNET, data)


def decode_linux_sll(data: bytes) -> tuple[int, int, int]:
    """Linux cooked v1: packet type, ARPHRD, address length, 8-byte address, protocol."""
    return link_decode(LINKTYPE_LINUX_SLL, data)


def decode_null(data: bytes) -> tuple[int, int, int]:
    """BSD loopback: address family in the *capturing* host's byte order (guessed)."""
    return link_decode(LINKTYPE_NULL, data)
