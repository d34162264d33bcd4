"""The kernel filters (bpf/sip_filter.c and the classic-BPF fallback) fed real packets.

Each test builds private network namespaces, opens a capture there, sends packets with plain
sockets and checks exactly which frames come out of the ring, decoding them by hand here.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from livenet import NetNs, collect, live_skip_reason, veth_pair

from sip_otel.capture.base import Capture, resolve_interfaces
from sip_otel.net.types import LINKTYPE_ETHERNET, Frame

pytestmark = pytest.mark.live

_reason = live_skip_reason(need_bcc=False)
if _reason:
    pytest.skip(_reason, allow_module_level=True)

PORTS = frozenset({5060, 5061, 5080})
RING = 1 << 20


def _make_ebpf(ifaces: list[str], all_ports: bool = False) -> Capture:
    reason = live_skip_reason(need_bcc=True)
    if reason:
        pytest.skip(reason)
    from sip_otel.capture.ebpf import EbpfCapture

    return EbpfCapture(resolve_interfaces(ifaces), PORTS, RING, all_ports)


def _make_afpacket(ifaces: list[str], all_ports: bool = False) -> Capture:
    from sip_otel.capture.afpacket import AfPacketCapture

    return AfPacketCapture(resolve_interfaces(ifaces), PORTS, RING, all_ports)


Maker = Callable[..., Capture]


@pytest.fixture(params=[_make_ebpf, _make_afpacket], ids=["ebpf", "afpacket"])
def make(request: pytest.FixtureRequest) -> Maker:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def ns() -> Iterator[NetNs]:
    n = NetNs("c")
    try:
        yield n
    finally:
        n.close()


def l3(frame: Frame) -> tuple[list[tuple[int, int]], int, bytes]:
    """(VLAN tags as (tpid, vid), ethertype, L3 bytes) of an Ethernet frame."""
    assert frame.linktype == LINKTYPE_ETHERNET
    data = frame.data
    off = 12
    tags = []
    (etype,) = struct.unpack_from("!H", data, off)
    while etype in (0x8100, 0x88A8):
        (tci,) = struct.unpack_from("!H", data, off + 2)
        tags.append((etype, tci & 0x0FFF))
        off += 4
        (etype,) = struct.unpack_from("!H", data, off)
    return tags, etype, data[off + 2 :]


def udp4_dport(ip: bytes) -> int:
    ihl = (ip[0] & 0x0F) * 4
    return int(struct.unpack_from("!H", ip, ihl + 2)[0])


def send_udp(
    dst: str, port: int, payload: bytes, sport: int = 0, family: int = socket.AF_INET, src: str = ""
) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        if sport or src:
            s.bind((src or ("::" if family == socket.AF_INET6 else "0.0.0.0"), sport))
        s.sendto(payload, (dst, port))


def test_udp_ports_ipv4_ipv6_once_on_loopback(make: Maker, ns: NetNs) -> None:
    with ns.entered():
        cap = make(["lo"])
        try:
            send_udp("127.0.0.1", 5060, b"A" * 10)  # dst port in set
            send_udp("127.0.0.1", 5070, b"B" * 10)  # not SIP
            send_udp("127.0.0.1", 5090, b"C" * 10, sport=5080)  # src port in set
            send_udp("::1", 5061, b"D" * 10, family=socket.AF_INET6)
            send_udp("::1", 5071, b"E" * 10, family=socket.AF_INET6)
            frames = collect(cap)
            drops = cap.drops()
        finally:
            cap.close()
    # lo shows each packet twice (outgoing + host): exactly one copy each of A, C, D.
    assert [f.data[-10:] for f in frames] == [b"A" * 10, b"C" * 10, b"D" * 10]
    assert all(f.pkt_type == 0 and f.ifindex == 1 for f in frames)
    assert [l3(f)[1] for f in frames] == [0x0800, 0x0800, 0x86DD]
    assert drops == 0
    now = time.time_ns()
    assert all(now - 10**10 < f.ts_ns <= now for f in frames)


def test_whole_large_packet(make: Maker, ns: NetNs) -> None:
    payload = bytes(range(256)) * 200  # 51200 bytes: one datagram on lo (MTU 65536)
    with ns.entered():
        cap = make(["lo"])
        try:
            send_udp("127.0.0.1", 5060, payload)
            frames = collect(cap)
        finally:
            cap.close()
    assert len(frames) == 1
    assert len(frames[0].data) == 14 + 20 + 8 + len(payload)
    assert frames[0].data.endswith(payload)


def test_fragments_pass_whatever_the_port(make: Maker, ns: NetNs) -> None:
    ns.ip("link", "set", "lo", "mtu", "1500")
    with ns.entered():
        cap = make(["lo"])
        try:
            send_udp("127.0.0.1", 9999, b"F" * 4000)  # 3 IPv4 fragments, port not SIP
            send_udp("::1", 9999, b"G" * 4000, family=socket.AF_INET6)  # 3 IPv6 fragments
            send_udp("127.0.0.1", 9999, b"H" * 100)  # unfragmented, not SIP: dropped
            frames = collect(cap)
        finally:
            cap.close()
    v4 = [f for f in frames if l3(f)[1] == 0x0800]
    v6 = [f for f in frames if l3(f)[1] == 0x86DD]
    assert len(frames) == 6
    # IPv4: MF set on the first two, offsets 0, 1480, 2960 (8-byte units 0, 185, 370).
    flags = [struct.unpack_from("!H", l3(f)[2], 6)[0] for f in v4]
    assert flags == [0x2000 | 0, 0x2000 | 185, 370]
    assert all(l3(f)[2][6] == 44 for f in v6)  # next header = fragment


def test_tcp_both_directions(make: Maker, ns: NetNs) -> None:
    with ns.entered():
        cap = make(["lo"])
        try:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.bind(("127.0.0.1", 5060))
            srv.listen()
            cli = socket.create_connection(("127.0.0.1", 5060))
            conn, _ = srv.accept()
            cli.sendall(b"INVITE sip:x SIP/2.0\r\n\r\n")
            conn.recv(100)
            conn.sendall(b"SIP/2.0 100 Trying\r\n\r\n")
            cli.recv(100)
            for s in (cli, conn, srv):
                s.close()
            frames = collect(cap)
        finally:
            cap.close()
    assert frames
    ports = set()
    for f in frames:
        _tags, etype, ip = l3(f)
        assert etype == 0x0800 and ip[9] == 6
        ihl = (ip[0] & 0x0F) * 4
        ports.add(struct.unpack_from("!HH", ip, ihl))
    assert all(5060 in p for p in ports)
    joined = b"".join(f.data for f in frames)
    assert b"INVITE sip:x" in joined and b"SIP/2.0 100 Trying" in joined


def test_non_ip_and_other_ports_dropped_all_ports_mode(make: Maker, ns: NetNs) -> None:
    with ns.entered():
        cap = make(["lo"], all_ports=True)
        try:
            send_udp("127.0.0.1", 7777, b"X" * 10)
            frames = collect(cap)
        finally:
            cap.close()
    assert [udp4_dport(l3(f)[2]) for f in frames] == [7777]


def tagged_frame(
    dst_mac: bytes, src_mac: bytes, tags: list[tuple[int, int]], dport: int, payload: bytes
) -> bytes:
    """Ethernet + inline tags + IPv4 + UDP, built by hand (checksums zero: taps do not care)."""
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        1,
        0,
        64,
        17,
        0,
        bytes([10, 77, 0, 2]),
        bytes([10, 77, 0, 1]),
    )
    tag_bytes = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
    return dst_mac + src_mac + tag_bytes + b"\x08\x00" + ip + udp


def mac_of(ns: NetNs, dev: str) -> bytes:
    return bytes.fromhex(
        ns.run("cat", f"/sys/class/net/{dev}/address").stdout.strip().replace(":", "")
    )


def raw_send(dev: str, frame: bytes) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((dev, 0))
        s.send(frame)


# This kernel has no 802.1Q driver (CONFIG_VLAN_8021Q unset), so tagged frames are injected raw.
# Received: the stack moves the outer tag into skb metadata before taps run (skb_vlan_untag),
# so the capture must put it back. Sent: the tags stay inline in the bytes.
@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([(0x8100, 100)], id="vlan"),
        pytest.param([(0x88A8, 100), (0x8100, 200)], id="qinq"),
    ],
)
def test_vlan_tags_reach_the_frame(make: Maker, tags: list[tuple[int, int]]) -> None:
    a, b = NetNs("a"), NetNs("b")
    try:
        veth_pair(a, b)
        mac_a, mac_b = mac_of(a, "va"), mac_of(b, "vb")
        with a.entered():
            cap = make(["va"])
        try:
            with b.entered():
                raw_send("vb", tagged_frame(mac_a, mac_b, tags, 5060, b"IN" * 8))
                raw_send("vb", tagged_frame(mac_a, mac_b, tags, 5999, b"no" * 8))
            with a.entered():
                raw_send("va", tagged_frame(mac_b, mac_a, tags, 5061, b"OUT" * 8))
            frames = collect(cap)
        finally:
            cap.close()
    finally:
        a.close()
        b.close()
    assert len(frames) == 2
    by_type = {f.pkt_type: f for f in frames}
    assert sorted(by_type) == [0, 4]  # host, outgoing (kept: not loopback)
    for pkt_type, dport, payload in ((0, 5060, b"IN" * 8), (4, 5061, b"OUT" * 8)):
        got_tags, etype, ip = l3(by_type[pkt_type])
        assert got_tags == tags
        assert etype == 0x0800 and udp4_dport(ip) == dport
        assert ip.endswith(payload)


def test_comma_list_of_interfaces(make: Maker) -> None:
    a, b = NetNs("a"), NetNs("b")
    try:
        veth_pair(a, b)
        a.ip("addr", "add", "10.78.0.1/24", "dev", "va")
        b.ip("addr", "add", "10.78.0.2/24", "dev", "vb")
        with a.entered():
            cap = make(["lo", "va"])
            try:
                send_udp("127.0.0.1", 5060, b"L" * 10)
                send_udp("10.78.0.2", 5060, b"V" * 10)  # ARP first (dropped), then UDP out va
                frames = collect(cap, settle=0.5)
            finally:
                cap.close()
    finally:
        a.close()
        b.close()
    assert sorted(f.data[-10:] for f in frames) == [b"L" * 10, b"V" * 10]


def test_interface_deleted_and_recreated_is_reattached(make: Maker) -> None:
    from sip_otel.capture.links import LinkWatcher

    a, b = NetNs("a"), NetNs("b")

    def link() -> None:
        veth_pair(a, b)
        a.ip("addr", "add", "10.79.0.1/24", "dev", "va")
        b.ip("addr", "add", "10.79.0.2/24", "dev", "vb")

    try:
        link()
        with a.entered():
            cap = make(["va"])
            watcher = LinkWatcher(cap.interfaces())
            try:
                first_index = cap.interfaces()["va"]
                send_udp("10.79.0.2", 5060, b"1" * 10)
                before = collect(cap, settle=0.5)
                a.ip("link", "del", "va")
                gone = watcher.changes()
                for change in gone:
                    cap.relink(change.name, change.ifindex)
                assert cap.interfaces() == {"va": 0}
                link()
                back = watcher.changes()
                for change in back:
                    cap.relink(change.name, change.ifindex)
                send_udp("10.79.0.2", 5060, b"2" * 10)
                after = collect(cap, settle=0.5)
            finally:
                watcher.close()
                cap.close()
    finally:
        a.close()
        b.close()
    assert [f.data[-10:] for f in before] == [b"1" * 10]
    assert [(c.name, c.ifindex, c.reason) for c in gone] == [("va", 0, "netlink")]
    assert len(back) == 1 and back[0].name == "va" and back[0].ifindex not in (0, first_index)
    assert [f.data[-10:] for f in after] == [b"2" * 10]
    assert after[0].ifindex == back[0].ifindex


def test_ring_wraps_many_times_every_packet_intact(ns: NetNs) -> None:
    """The eBPF ring's data area is mapped once: records that run past its end are copied.
    3 MB through the 1 MiB test ring, sizes chosen so records land across the end."""
    with ns.entered():
        cap = _make_ebpf(["lo"])
        try:
            got: list[bytes] = []
            sent: list[bytes] = []
            for i in range(600):
                size = (1000, 4093, 30011, 7)[i % 4]
                payload = f"{i:06d}".encode() * (size // 6 + 1)
                payload = payload[:size]
                send_udp("127.0.0.1", 5060, payload)
                sent.append(payload)
                if i % 16 == 15:
                    got.extend(l3(f)[2][28:] for f in cap.read(4096))
            got.extend(l3(f)[2][28:] for f in collect(cap))
            counters = cap.counters()
        finally:
            cap.close()
    assert counters["ring_full"] == 0
    assert counters["ring_wrapped"] >= 2
    assert got == sent
