"""Frame decoder: captured link-layer frames in, SIP transport payloads out. Sans-IO.

Theory of operation
-------------------
``feed(ts_ns, linktype, data)`` walks one frame down the layers with offsets into the
original bytes (no slicing until a payload is handed out):

    link (table by LINKTYPE; VLAN stacks, PPPoE)  -> link.py
    IPv4 (options, padding trimmed by total length) | IPv6 (extension headers)
      fragments -> fragments.py (a completed datagram continues from here)
      IP-in-IP / 6in4 / 4in6 -> back to IPv4/IPv6, at most ``max_tunnel_depth`` times
      GRE (ERSPAN, bridged Ethernet, PPTP's PPP) -> gre.py -> back to IPv4/IPv6 (same bound)
    UDP to port 2152 -> GTP-U G-PDU -> gtp.py -> back to IPv4/IPv6 (same bound), before
      the SIP port filter
    UDP -> one SipPayload with the whole datagram payload
    TCP -> tcp.py stream reassembly -> StreamFramer -> one SipPayload per SIP message
      (a flow opening with a SIP WebSocket handshake: WebSocketFramer, websocket.py, one
      SipPayload per WebSocket data message, transport still TCP)

Outcomes that produce no payload are counted in the shared :class:`Reasons`:
``net.<reason>`` for malformed input, ``skipped.<reason>`` for traffic that is fine but not
SIP, ``tcp.<reason>`` and ``sip_framing.<reason>`` for stream events. Table evictions are
counted in :attr:`FrameDecoder.evictions` as ``<table>.<reason>``. Inside, layers raise
:class:`DecodeError`; ``feed`` converts it to a count and never raises it. Any other exception is
a bug and propagates. Checksums are not verified: with checksum offload, captured outgoing
packets carry wrong ones.

Only packet time is used: ``handle_timer(now_ns)`` expires fragment sets and idle TCP flows.

Port filter: a UDP datagram or TCP flow is SIP when its source or destination port is in
``sip_ports``; with ``all_ports`` also when the payload (for TCP: the first data segment seen)
starts with a SIP request or status line (:func:`looks_like_sip`), or (TCP) with a SIP
WebSocket upgrade request (:func:`is_sip_upgrade`). GTP-U is unwrapped before this filter.

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
- evictions: fragments.capacity, fragments.memory, fragments.timeout, tcp_flows.capacity,
  tcp_flows.timeout
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sip_otel.errors import DecodeError, Reasons
from sip_otel.net.fragments import FragmentTable
from sip_otel.net.gre import IPPROTO_GRE, decap_gre
from sip_otel.net.gtp import GTPU_PORT, decap_gtpu
from sip_otel.net.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINK_DECODERS
from sip_otel.net.tcp import TCP_RST, TCP_SYN, FlowKey, TcpStream, TcpTable
from sip_otel.net.types import LINKTYPE_ETHERNET, PROTO_TCP, PROTO_UDP, SipPayload
from sip_otel.net.websocket import WebSocketFramer, is_sip_upgrade
from sip_otel.sip.framing import looks_like_sip

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


_IPV4 = struct.Struct("!BxHxxHxB")  # version/IHL, total length, flags/fragment offset, protocol
_IPV6 = struct.Struct("!IHB")  # version/class/flow, payload length, next header
_IPV6_FRAG = struct.Struct("!HI")  # offset/M, identification
_U16 = struct.Struct("!H")
_UDP = struct.Struct("!HHH")  # ports, length
_TCP = struct.Struct("!HHIxxxxH")  # ports, seq, data offset/flags

# IPv6 extension headers with the common (next header, length in 8-octet units - 1) layout:
# hop-by-hop, routing, destination options, mobility, HIP, shim6.
_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140})
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_IPV6_NO_NEXT = 59
_IPIP = 4
_IPV6_IN_IP = 41
_GTPU = 0x100  # not an IP protocol number: marks a GTP-U payload for _tunnel
# Fragmented datagrams worth reassembling (others are counted as skipped protocols at once).
_REASSEMBLE = frozenset(
    {PROTO_UDP, PROTO_TCP, _IPIP, _IPV6_IN_IP, IPPROTO_GRE, *_IPV6_EXT, _IPV6_AH}
)
_TUNNELS = frozenset({_IPIP, _IPV6_IN_IP, IPPROTO_GRE})


class FrameDecoder:
    """Turn link-layer frames into :class:`SipPayload` objects; see the module docstring."""

    __slots__ = ("_all_ports", "_frags", "_ports", "_reasons", "_tcp", "evictions", "limits")

    def __init__(
        self,
        reasons: Reasons,
        sip_ports: frozenset[int] = frozenset({5060, 5061}),
        all_ports: bool = False,
        limits: NetLimits = NetLimits(),  # frozen: safe to share
    ) -> None:
        self._reasons = reasons
        self._ports = sip_ports
        self._all_ports = all_ports
        self.limits = limits
        self.evictions: dict[str, int] = {}
        self._frags = FragmentTable(
            reasons,
            self.evictions,
            max_sets=limits.max_fragment_sets,
            timeout_ns=limits.fragment_timeout_ns,
            max_datagram_bytes=limits.max_fragment_bytes,
            max_fragments_per_set=limits.max_fragments_per_set,
            max_memory_bytes=limits.max_fragment_memory_bytes,
        )
        self._tcp = TcpTable(
            reasons,
            self.evictions,
            max_flows=limits.max_tcp_flows,
            idle_timeout_ns=limits.tcp_idle_timeout_ns,
            max_held_bytes=limits.max_tcp_ooo_bytes_per_flow,
            max_held_segments=limits.max_tcp_ooo_segments_per_flow,
            max_total_held_bytes=limits.max_tcp_ooo_bytes_total,
            max_message_bytes=limits.max_sip_message_bytes,
        )

    def feed(self, ts_ns: int, linktype: int, data: bytes) -> list[SipPayload]:
        """Decode one frame; return the SIP payloads it completes. Never raises DecodeError."""
        out: list[SipPayload] = []
        try:
            if linktype == LINKTYPE_ETHERNET and data[12:14] == b"\x08\x00":  # fast path
                self._ipv4(ts_ns, data, 14, len(data), 0, out)
                return out
            decode = LINK_DECODERS.get(linktype)
            if decode is None:
                raise DecodeError("net.unsupported_linktype")
            etype, off, end = decode(data)
            if etype == ETHERTYPE_IPV4:
                self._ipv4(ts_ns, data, off, end, 0, out)
            elif etype == ETHERTYPE_IPV6:
                self._ipv6(ts_ns, data, off, end, 0, out)
        except DecodeError as exc:
            self._reasons.add(exc.slug)
        return out

    def handle_timer(self, now_ns: int) -> None:
        """Expire fragment sets and idle TCP flows (packet time); evictions are counted."""
        self._frags.expire(now_ns)
        self._tcp.expire(now_ns)

    def table_sizes(self) -> dict[str, int]:
        """Current entries per bounded table."""
        return {"fragments": len(self._frags), "tcp_flows": len(self._tcp)}

    # -- IP -----------------------------------------------------------------------------------

    def _ipv4(
        self, ts: int, data: bytes, off: int, end: int, depth: int, out: list[SipPayload]
    ) -> None:
        if end - off < 20:
            raise DecodeError("net.truncated_ipv4")
        vihl, total, frag, proto = _IPV4.unpack_from(data, off)
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20:
            raise DecodeError("net.bad_ipv4_header")
        if total == 0:  # TSO / BIG TCP: length left for the capture to tell
            total = end - off
        if total < ihl:
            raise DecodeError("net.bad_ipv4_header" if total else "net.truncated_ipv4")
        if off + total > end:
            raise DecodeError("net.truncated_ipv4")
        end = off + total  # trims Ethernet padding
        hdr = data  # addresses stay in the header, sliced only for output
        p = off + ihl
        if frag & 0x3FFF:  # more fragments, or an offset
            if proto not in _REASSEMBLE:
                self._reasons.add("skipped.ip_protocol")
                return
            ident = _U16.unpack_from(data, off + 4)[0]
            done = self._frags.add(
                (data[off + 12 : off + 16], data[off + 16 : off + 20], ident, proto),
                ts,
                (frag & 0x1FFF) << 3,
                bool(frag & 0x2000),
                data[p:end],
                proto,
            )
            if done is None:
                return
            data = done[1]
            p = 0
            end = len(data)
        if proto == PROTO_UDP:
            self._udp(ts, data, p, end, hdr, off + 12, 4, depth, out)
        elif proto == PROTO_TCP:
            self._tcp_segment(ts, data, p, end, hdr, off + 12, 4, out)
        elif proto in _TUNNELS:
            self._tunnel(ts, data, p, end, depth, proto, out)
        else:
            self._reasons.add("skipped.ip_protocol")

    def _tunnel(
        self,
        ts: int,
        data: bytes,
        off: int,
        end: int,
        depth: int,
        proto: int,
        out: list[SipPayload],
    ) -> None:
        if depth >= self.limits.max_tunnel_depth:
            raise DecodeError("net.tunnel_too_deep")
        if proto == _IPIP:
            self._ipv4(ts, data, off, end, depth + 1, out)
        elif proto == _IPV6_IN_IP:
            self._ipv6(ts, data, off, end, depth + 1, out)
        else:
            etype, off, end = (
                decap_gre(data, off, end) if proto == IPPROTO_GRE else decap_gtpu(data, off, end)
            )
            if etype == ETHERTYPE_IPV4:
                self._ipv4(ts, data, off, end, depth + 1, out)
            else:
                self._ipv6(ts, data, off, end, depth + 1, out)

    def _ipv6(
        self, ts: int, data: bytes, off: int, end: int, depth: int, out: list[SipPayload]
    ) -> None:
        if end - off < 40:
            raise DecodeError("net.truncated_ipv6")
        vcf, plen, nh = _IPV6.unpack_from(data, off)
        if vcf >> 28 != 6:
            raise DecodeError("net.bad_ipv6_header")
        p = off + 40
        if plen:  # 0: jumbogram (RFC 2675) or BIG TCP, the capture tells the length
            if p + plen > end:
                raise DecodeError("net.truncated_ipv6")
            end = p + plen
        hdr = data
        reassembled = False
        while True:
            if nh == PROTO_UDP:
                self._udp(ts, data, p, end, hdr, off + 8, 16, depth, out)
                return
            if nh == PROTO_TCP:
                self._tcp_segment(ts, data, p, end, hdr, off + 8, 16, out)
                return
            if nh in _IPV6_EXT or nh == _IPV6_AH:
                if p + 8 > end:
                    raise DecodeError("net.truncated_ipv6")
                # AH counts 4-octet units minus 2 (RFC 4302); the others 8-octet units minus 1.
                size = (data[p + 1] + 2) << 2 if nh == _IPV6_AH else (data[p + 1] + 1) << 3
                nh = data[p]
                p += size
                if p > end:
                    raise DecodeError("net.truncated_ipv6")
                continue
            if nh == _IPV6_FRAGMENT:
                if reassembled:  # a fragment header inside a reassembled datagram
                    raise DecodeError("net.bad_ipv6_fragment")
                if p + 8 > end:
                    raise DecodeError("net.truncated_ipv6")
                next_nh = data[p]
                offm, ident = _IPV6_FRAG.unpack_from(data, p + 2)
                p += 8
                if offm & 0xFFF9 == 0:  # atomic fragment (RFC 6946): not fragmented at all
                    nh = next_nh
                    continue
                if next_nh not in _REASSEMBLE:
                    self._reasons.add("skipped.ip_protocol")
                    return
                done = self._frags.add(
                    (hdr[off + 8 : off + 24], hdr[off + 24 : off + 40], ident),
                    ts,
                    offm & 0xFFF8,
                    bool(offm & 1),
                    data[p:end],
                    next_nh,
                )
                if done is None:
                    return
                nh, data = done
                p = 0
                end = len(data)
                reassembled = True
                continue
            if nh in _TUNNELS:
                self._tunnel(ts, data, p, end, depth, nh, out)
                return
            self._reasons.add(
                "skipped.no_next_header" if nh == _IPV6_NO_NEXT else "skipped.ip_protocol"
            )
            return

    # -- transport ----------------------------------------------------------------------------

    def _udp(
        self,
        ts: int,
        data: bytes,
        off: int,
        end: int,
        hdr: bytes,
        aoff: int,
        alen: int,
        depth: int,
        out: list[SipPayload],
    ) -> None:
        if end - off < 8:
            raise DecodeError("net.truncated_udp")
        sport, dport, ulen = _UDP.unpack_from(data, off)
        if ulen != end - off:
            if ulen == 0 and end - off > 0xFFFF:  # jumbogram (RFC 2675 section 4)
                pass
            elif ulen < 8 or off + ulen > end:
                raise DecodeError("net.bad_udp_length")
            else:
                end = off + ulen
        off += 8
        if off == end:
            self._reasons.add("skipped.empty_payload")
            return
        ports = self._ports
        if sport not in ports and dport not in ports:
            # G-PDUs go to 2152 from any source port (TS 29.281 section 4.4.2).
            if dport == GTPU_PORT:
                self._tunnel(ts, data, off, end, depth, _GTPU, out)
                return
            if not self._all_ports:
                self._reasons.add("skipped.port")
                return
            if not looks_like_sip(data, off, end):
                self._reasons.add("skipped.not_sip")
                return
        dst = aoff + alen
        out.append(
            SipPayload(
                ts, PROTO_UDP, hdr[aoff:dst], sport, hdr[dst : dst + alen], dport, data[off:end]
            )
        )

    def _tcp_segment(
        self,
        ts: int,
        data: bytes,
        off: int,
        end: int,
        hdr: bytes,
        aoff: int,
        alen: int,
        out: list[SipPayload],
    ) -> None:
        if end - off < 20:
            raise DecodeError("net.truncated_tcp")
        sport, dport, seq, hlf = _TCP.unpack_from(data, off)
        hlen = (hlf >> 10) & 0x3C
        if hlen < 20:
            raise DecodeError("net.bad_tcp_header")
        off += hlen
        if off > end:
            raise DecodeError("net.truncated_tcp")
        ports = self._ports
        port_ok = sport in ports or dport in ports
        if not port_ok and not self._all_ports:  # flows exist only on SIP ports then
            self._reasons.add("skipped.port")
            return
        src = hdr[aoff : aoff + alen]
        dst = hdr[aoff + alen : aoff + 2 * alen]
        key = (src, sport, dst, dport)
        table = self._tcp
        stream = table.flows.get(key)
        if stream is None:
            if hlf & TCP_RST:
                table.close((dst, dport, src, sport))
                return
            if off < end and data.startswith(b"GET ", off) and is_sip_upgrade(data, off, end):
                stream = self._websocket(ts, key, None)
            elif port_ok:
                if off == end and not hlf & TCP_SYN:
                    return  # a bare ACK/FIN of a flow we do not follow
                stream = table.open(key, ts)
            elif off == end or not looks_like_sip(data, off, end):
                self._reasons.add("skipped.not_sip")
                return
            else:
                stream = table.open(key, ts)
        elif (
            not stream.next_pos
            and off < end
            and data.startswith(b"GET ", off)
            and is_sip_upgrade(data, off, end)
        ):  # a flow opened by its SYN on a SIP port turns out to be WebSocket
            self._websocket(ts, key, stream)
        msgs = table.segment(key, stream, ts, seq, hlf, data[off:end] if off < end else b"")
        if hlf & TCP_RST:
            table.close((dst, dport, src, sport))
        for msg in msgs:
            out.append(SipPayload(ts, PROTO_TCP, src, sport, dst, dport, msg))

    def _websocket(self, ts: int, key: FlowKey, stream: TcpStream | None) -> TcpStream:
        """Both directions of a connection starting a SIP WebSocket handshake (RFC 7118):
        WebSocket framers, the reverse one expecting the server's 101."""
        reasons = self._reasons
        limit = self.limits.max_sip_message_bytes
        table = self._tcp
        client = WebSocketFramer(reasons, limit, response=False)
        if stream is None:
            stream = table.open(key, ts, client)
        else:
            stream.framer = client
        rkey = (key[2], key[3], key[0], key[1])
        server = WebSocketFramer(reasons, limit, response=True)
        back = table.flows.get(rkey)
        if back is None:
            table.open(rkey, ts, server)
        elif not back.next_pos:
            back.framer = server
        return stream
