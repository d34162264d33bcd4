"""Frame builders for the net tests: plain struct code, independent of sip_otel.net.

Checksums are left zero (the decoder does not verify them).
"""

from __future__ import annotations

import struct

SRC4 = bytes([192, 0, 2, 1])
DST4 = bytes([192, 0, 2, 2])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")

MAC_DST = bytes.fromhex("020000000002")
MAC_SRC = bytes.fromhex("020000000001")

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"From: <sip:alice@example.com>;tag=1928301774\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def ethernet(
    payload: bytes, ethertype: int = 0x0800, tags: tuple[tuple[int, int], ...] = ()
) -> bytes:
    """Ethernet II; ``tags`` = ((tpid, vid), ...) outermost first."""
    out = MAC_DST + MAC_SRC
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked v1: packet type 0, ARPHRD_ETHER, 6-byte address."""
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_SRC + b"\0\0", protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked v2: protocol, reserved, ifindex 2, ARPHRD_ETHER, outgoing, 6-byte address."""
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, 4, 6, MAC_SRC + b"\0\0") + payload


def null(payload: bytes, family: int, order: str = "<") -> bytes:
    """BSD loopback header: address family in the capturing host's byte order."""
    return struct.pack(order + "I", family) + payload


def pppoe(payload: bytes, ppp_protocol: int = 0x0021, length: int | None = None) -> bytes:
    """PPPoE session header (ver/type 0x11, code 0, session 1) + PPP protocol."""
    if length is None:
        length = len(payload) + 2
    return struct.pack("!BBHHH", 0x11, 0, 1, length, ppp_protocol) + payload


def ipv4(
    payload: bytes,
    proto: int = 17,
    src: bytes = SRC4,
    dst: bytes = DST4,
    ident: int = 1,
    frag_offset: int = 0,
    more: bool = False,
    options: bytes = b"",
    total: int | None = None,
    version: int = 4,
    ihl: int | None = None,
) -> bytes:
    """IPv4 header (+options, padded to 4 bytes by the caller) + payload."""
    if ihl is None:
        ihl = (20 + len(options)) // 4
    if total is None:
        total = 20 + len(options) + len(payload)
    flags = (0x2000 if more else 0) | (frag_offset // 8)
    header = struct.pack(
        "!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, ident, flags, 64, proto, 0, src, dst
    )
    return header + options + payload


def ipv6(
    payload: bytes,
    nh: int = 17,
    src: bytes = SRC6,
    dst: bytes = DST6,
    plen: int | None = None,
    version: int = 6,
) -> bytes:
    """IPv6 fixed header + payload (extension headers belong to ``payload``)."""
    if plen is None:
        plen = len(payload)
    return struct.pack("!IHBB16s16s", version << 28, plen, nh, 64, src, dst) + payload


def ext(nh: int, body: bytes = b"\0" * 6) -> bytes:
    """Generic IPv6 extension header (hop-by-hop, routing, destination options):
    next header, length in 8-octet units not counting the first, body."""
    assert (len(body) + 2) % 8 == 0
    return struct.pack("!BB", nh, (len(body) + 2) // 8 - 1) + body


def ah(nh: int, icv: bytes = b"\0" * 12) -> bytes:
    """IPv6 Authentication Header: length in 4-octet units minus 2."""
    body = struct.pack("!HII", 0, 0x100, 1) + icv  # reserved, SPI, sequence, ICV
    return struct.pack("!BB", nh, (len(body) + 2) // 4 - 2) + body


def frag6(nh: int, offset: int, more: bool, ident: int) -> bytes:
    """IPv6 Fragment header."""
    return struct.pack("!BBHI", nh, 0, offset | (1 if more else 0), ident)


def udp(payload: bytes, sport: int = 5060, dport: int = 5060, length: int | None = None) -> bytes:
    if length is None:
        length = 8 + len(payload)
    return struct.pack("!HHHH", sport, dport, length, 0) + payload


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(
    payload: bytes,
    seq: int,
    flags: int = ACK | PSH,
    sport: int = 40000,
    dport: int = 5060,
    options: bytes = b"",
    data_offset: int | None = None,
) -> bytes:
    if data_offset is None:
        data_offset = (20 + len(options)) // 4
    return (
        struct.pack(
            "!HHIIHHHH", sport, dport, seq & 0xFFFFFFFF, 0, (data_offset << 12) | flags, 65535, 0, 0
        )
        + options
        + payload
    )


def eth_udp4(payload: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
    return ethernet(ipv4(udp(payload, sport, dport)))


def eth_tcp4(
    payload: bytes,
    seq: int,
    flags: int = ACK | PSH,
    sport: int = 40000,
    dport: int = 5060,
    src: bytes = SRC4,
    dst: bytes = DST4,
) -> bytes:
    return ethernet(ipv4(tcp(payload, seq, flags, sport, dport), proto=6, src=src, dst=dst))


# -- tunnels ------------------------------------------------------------------------------------


def gre(
    payload: bytes,
    protocol: int = 0x0800,
    checksum: bool = False,
    key: int | None = None,
    seq: int | None = None,
    version: int = 0,
    extra_flags: int = 0,
) -> bytes:
    """GRE header (RFC 2784/2890): C, K, S flags each add a 4-byte field, in that order."""
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0)
    flags |= (0x1000 if seq is not None else 0) | extra_flags | version
    out = struct.pack("!HH", flags, protocol)
    if checksum:
        out += b"\0\0\0\0"  # checksum + reserved1
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


def pptp_gre(
    ppp: bytes,
    call_id: int = 7,
    seq: int | None = 1,
    ack: int | None = None,
    length: int | None = None,
) -> bytes:
    """Enhanced GRE (RFC 2637 section 4.1): version 1, protocol 0x880B, K set, key = payload
    length + call id, optional sequence (S) and acknowledgement (A, flag 0x0080) numbers."""
    flags = 0x2000 | 0x0001 | (0x1000 if seq is not None else 0)
    flags |= 0x0080 if ack is not None else 0
    if length is None:
        length = len(ppp)
    out = struct.pack("!HHHH", flags, 0x880B, length, call_id)
    if seq is not None:
        out += struct.pack("!I", seq)
    if ack is not None:
        out += struct.pack("!I", ack)
    return out + ppp


def ppp(payload: bytes, protocol: int = 0x0021, acfc: bool = False, pfc: bool = False) -> bytes:
    """PPP frame in HDLC-like framing (address 0xFF, control 0x03) unless ACFC; a one-byte
    protocol field when PFC."""
    head = b"" if acfc else b"\xff\x03"
    head += bytes([protocol]) if pfc else struct.pack("!H", protocol)
    return head + payload


def erspan2(frame: bytes, session: int = 1, version: int = 1) -> bytes:
    """ERSPAN type II header (8 bytes): ver, VLAN, COS/En/T, session id, reserved, index."""
    return struct.pack("!HHI", (version << 12) | 10, session & 0x3FF, 5) + frame


def erspan3(
    frame: bytes,
    session: int = 1,
    frame_type: int = 0,
    subheader: bytes | None = None,
    version: int = 2,
) -> bytes:
    """ERSPAN type III header (12 bytes): ver/VLAN, COS/BSO/T/session, timestamp, SGT,
    P/FT/HW ID/D/Gra/O; the 8-byte platform subheader follows when given (O bit)."""
    word1 = (version << 28) | (10 << 16) | (session & 0x3FF)
    word3 = 0x1234 << 16 | (frame_type & 0x1F) << 10 | (3 << 4) | (1 if subheader else 0)
    out = struct.pack("!III", word1, 0xDEADBEEF, word3)
    if subheader is not None:
        assert len(subheader) == 8
        out += subheader
    return out + frame


def gtpu(
    payload: bytes,
    mtype: int = 255,
    teid: int = 0x1234,
    seq: int | None = None,
    extensions: tuple[tuple[int, bytes], ...] = (),
    flags: int = 0x30,
    length: int | None = None,
) -> bytes:
    """GTP-U header (TS 29.281 section 5.1): flags (version 1, PT 1), type, length, TEID;
    the optional 4-byte part when a sequence number, extensions or any of E/S/PN are given.
    ``extensions`` = ((type, content), ...), 2 + len(content) a multiple of 4."""
    opt = b""
    if seq is not None or extensions or flags & 0x07:
        flags |= (0x02 if seq is not None else 0) | (0x04 if extensions else 0)
        first = extensions[0][0] if extensions else 0
        opt = struct.pack("!HBB", seq or 0, 0, first)
        for i, (_type, content) in enumerate(extensions):
            assert (len(content) + 2) % 4 == 0
            nxt = extensions[i + 1][0] if i + 1 < len(extensions) else 0
            opt += bytes([(len(content) + 2) // 4]) + content + bytes([nxt])
    body = opt + payload
    if length is None:
        length = len(body)
    return struct.pack("!BBHI", flags, mtype, length, teid) + body


# -- WebSocket (RFC 6455) -----------------------------------------------------------------------

WS_UPGRADE = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: sip.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
WS_ACCEPT = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n"
    b"\r\n"
)


def ws_frame(
    payload: bytes,
    opcode: int = 1,
    fin: bool = True,
    key: bytes | None = None,
    rsv: int = 0,
    length_bytes: int | None = None,
) -> bytes:
    """One WebSocket frame (RFC 6455 section 5.2). ``key``: 4-byte masking key (client frames);
    ``length_bytes``: force the 16-bit (2) or 64-bit (8) extended length encoding."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask = 0x80 if key is not None else 0
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    if length_bytes == 0:
        head = struct.pack("!BB", b0, mask | n)
    elif length_bytes == 2:
        head = struct.pack("!BBH", b0, mask | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask | 127, n)
    if key is None:
        return head + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked
