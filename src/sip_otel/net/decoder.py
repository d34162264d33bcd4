"""Frame decoder: captured link-layer frames in, SIP transport payloads out. Sans-IO.

The decoder is compiled: :class:`FrameDecoder` is the Python face of ``so_net`` (C in
``sip_otel/_c/so_net*.c``, bound by ``sip_otel._core.NetDecoder``); this module keeps its
configuration (:class:`NetLimits`) and the theory of operation.

Theory of operation
-------------------
``feed(ts_ns, linktype, data)`` walks one frame down the layers with offsets into the
original bytes (no slicing until a payload is handed out):

    link (switch by LINKTYPE; VLAN stacks, PPPoE)  -> so_net_link.c
    IPv4 (options, padding trimmed by total length) | IPv6 (extension headers)
      fragments -> so_net_frag.c (a completed datagram continues from here)
      IP-in-IP / 6in4 / 4in6 -> back to IPv4/IPv6, at most ``max_tunnel_depth`` times
      GRE (ERSPAN, bridged Ethernet, PPTP's PPP) -> so_net_link.c -> back to IPv4/IPv6
    UDP to port 2152 -> GTP-U G-PDU -> so_net_link.c -> back to IPv4/IPv6 (same bound),
      before the SIP port filter
    UDP -> one SipPayload with the whole datagram payload
    TCP -> so_net_tcp.c stream reassembly -> the SIP stream framer (so_framing.c) -> one
      SipPayload per SIP message (a flow opening with a SIP WebSocket handshake: the
      WebSocket framer, so_net_ws.c, one SipPayload per WebSocket data message, transport
      still TCP)

Outcomes that produce no payload are counted in the shared :class:`Reasons`:
``net.<reason>`` for malformed input, ``skipped.<reason>`` for traffic that is fine but not
SIP, ``tcp.<reason>`` and ``sip_framing.<reason>`` for stream events. Table evictions are
counted in :attr:`FrameDecoder.evictions` as ``<table>.<reason>``. A layer that finds the
frame unusable stops the walk with its reason; ``feed`` counts it and never raises. Checksums
are not verified: with checksum offload, captured outgoing packets carry wrong ones.

Only packet time is used: ``handle_timer(now_ns)`` expires fragment sets and idle TCP flows.

Port filter: a UDP datagram or TCP flow is SIP when its source or destination port is in
``sip_ports``; with ``all_ports`` also when the payload (for TCP: the first data segment seen)
starts with a SIP request or status line (``looks_like_sip``), or (TCP) with a SIP
WebSocket upgrade request (``is_sip_upgrade``). GTP-U is unwrapped before this filter.

Reason slugs (all of them):

- link: net.unsupported_linktype, net.truncated_ethernet, net.truncated_vlan,
  net.too_many_vlan_tags, net.truncated_pppoe, net.bad_pppoe_header, net.truncated_sll,
  net.truncated_sll2, net.truncated_loopback, net.truncated_ip, net.bad_ip_version;
  skipped.ethertype, skipped.ppp_protocol, skipped.address_family
- IP: net.truncated_ipv4, net.bad_ipv4_header, net.truncated_ipv6, net.bad_ipv6_header,
  net.bad_ipv6_fragment, net.tunnel_too_deep; skipped.ip_protocol, skipped.no_next_header
- GRE: net.truncated_gre, net.bad_gre; skipped.gre_protocol, skipped.ppp_protocol,
  skipped.empty_payload (PPTP acknowledgements), inner Ethernet: the link slugs
- GTP-U: net.truncated_gtp, net.bad_gtp_header, net.bad_ip_version; skipped.gtp_message
- fragments: net.bad_fragment_length, net.fragment_too_large, net.fragment_inconsistent,
  net.fragment_overlap, net.fragment_duplicate, net.fragment_too_many
- UDP/TCP: net.truncated_udp, net.bad_udp_length, net.truncated_tcp, net.bad_tcp_header;
  skipped.port, skipped.not_sip, skipped.empty_payload
- TCP streams: tcp.out_of_order, tcp.retransmission, tcp.gap
- WebSocket: net.bad_websocket_frame, net.bad_websocket_handshake;
  skipped.websocket_refused, skipped.websocket_compressed
- framing: sip_framing.missing_content_length, sip_framing.bad_content_length,
  sip_framing.resync, sip_framing.too_large, sip_framing.incomplete
- evictions: fragments.full, fragments.memory, fragments.timeout, tcp_flows.full,
  tcp_flows.timeout, tcp_flows.memory (the memory budget, docs/reliability.md)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sip_otel._core import NetDecoder
from sip_otel.errors import Reasons
from sip_otel.net.types import SipPayload
from sip_otel.sizes import DEFAULT_MEMORY_LIMIT

__all__ = ["FrameDecoder", "NetLimits"]

_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class NetLimits:
    """Bounds on every table and buffer of the decoder."""

    # Concurrent datagrams being reassembled. Linux keeps at most 4 MiB of fragments per
    # namespace (ipfrag_high_thresh); 4096 sets of a typical 2-3 fragment SIP message is more.
    max_fragment_sets: int = 4096
    # RFC 791 suggests 15 s, RFC 8200 says 60 s; Linux ipfrag_time is 30 s.
    fragment_timeout_ns: int = 30 * _SECOND
    # The 16-bit IP length fields cannot describe a bigger datagram payload.
    max_fragment_bytes: int = 65535
    # A 64 KiB datagram over the smallest IPv4 MTU (576) is ~119 fragments; twice that.
    max_fragments_per_set: int = 256
    # Held fragment bytes over all sets (Linux ipfrag_high_thresh is 4 MiB; a monitor sees
    # many hosts).
    max_fragment_memory_bytes: int = 16 * 1024 * 1024
    # TCP flow directions tracked: a busy SBC has tens of thousands of TCP/TLS registrations.
    max_tcp_flows: int = 65536
    # SIP over TCP keeps connections up between requests; registrations refresh within an
    # hour but keep-alives (RFC 5626: 2 min default for TCP CRLF pings) arrive well within this.
    tcp_idle_timeout_ns: int = 600 * _SECOND
    # Out-of-order bytes held ahead of the in-order point of one flow (a few default receive
    # windows of SIP-sized segments).
    max_tcp_ooo_bytes_per_flow: int = 256 * 1024
    # Held segments per flow: keeps heap operations cheap when segments are tiny.
    max_tcp_ooo_segments_per_flow: int = 1024
    # Held out-of-order bytes over all flows.
    max_tcp_ooo_bytes_total: int = 64 * 1024 * 1024
    # Largest SIP message framed on a stream: real INVITEs with SDP are 1-4 KiB, but a 64 KiB
    # body plus headers is legal and seen in tests (suricata sip-body-large); twice 64 KiB.
    max_sip_message_bytes: int = 128 * 1024
    # Tunnel nesting (IP-in-IP, GRE, GTP-U); real tunnels nest once or twice.
    max_tunnel_depth: int = 4
    # The byte budget of the decoder's tables when it runs alone (a Pipeline has one budget for
    # all its layers: PipelineConfig.memory_limit); 0: none. docs/reliability.md.
    memory_limit: int = DEFAULT_MEMORY_LIMIT


class FrameDecoder:
    """Turn link-layer frames into :class:`SipPayload` objects; see the module docstring."""

    __slots__ = ("_c", "evictions", "limits")

    def __init__(
        self,
        reasons: Reasons,
        sip_ports: frozenset[int] = frozenset({5060, 5061}),
        all_ports: bool = False,
        limits: NetLimits = NetLimits(),  # frozen: safe to share
    ) -> None:
        self.limits = limits
        self.evictions: dict[str, int] = {}
        self._c = NetDecoder(sip_ports, all_ports, asdict(limits), reasons.counts, self.evictions)

    def feed(self, ts_ns: int, linktype: int, data: bytes) -> list[SipPayload]:
        """Decode one frame; return the SIP payloads it completes. Never raises DecodeError."""
        return self._c.feed(ts_ns, linktype, data)

    def handle_timer(self, now_ns: int) -> None:
        """Expire fragment sets and idle TCP flows (packet time); evictions are counted."""
        self._c.handle_timer(now_ns)

    def table_sizes(self) -> dict[str, int]:
        """Current entries per bounded table."""
        return self._c.table_sizes()

    @property
    def tcp_held_bytes(self) -> int:
        """Out-of-order TCP bytes held over all flows."""
        return self._c.tcp_held_bytes

    def memory(self) -> dict[str, int]:
        """Bytes charged to the memory budget per table, and ``limit``."""
        return dict(self._c.memory())

    def entry_sizes(self) -> dict[str, int]:
        """Bytes the budget charges per flow entry, fragment set and piece slot."""
        return dict(self._c.entry_sizes())
