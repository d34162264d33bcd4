"""The eBPF filter with media (bpf/sip_filter.c -DMEDIA) fed real RTP/RTCP over loopback.

Each test loads the filter through the real loader child into a private network namespace,
writes media endpoints into ``media_eps`` with keys and values packed here by hand (the layout of
bpf/so_media_map.h, independent of the core), sends packets with plain sockets and reads the
kernel's ``rtp_streams`` back. Expected statistics are computed by hand from RFC 3550
(Appendix A.1 and A.3) in the comments; jitter depends on the scheduler and is not compared.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from livenet import NetNs, collect, live_skip_reason, veth_pair

from sip_otel.capture.base import resolve_interfaces
from sip_otel.net.types import Frame

pytestmark = pytest.mark.live

_reason = live_skip_reason(need_bcc=True)
if _reason:
    pytest.skip(_reason, allow_module_level=True)

from sip_otel.capture.ebpf import EbpfCapture  # noqa: E402

SIP = frozenset({5060})
RING = 1 << 20
F_RTCP, F_MUX = 1, 2  # SO_MEP_F_*

# struct so_mep_key / so_mep_val / so_mstream_key, native byte order and alignment
MEP_KEY = struct.Struct("=BxH16s")
MEP_VAL = struct.Struct("=BB2x16s16I")
STREAM_KEY = struct.Struct("=BxHH2xI16s16s")
# struct so_rtp_stats (so_rtp.h): base_seq, cycles, bad_seq, received, max_seq, probation, flags,
# pt, pad0[3], clock_rate, ifindex, packets, bytes, duplicates, reordered, bad_seq_packets, resyncs,
# pt_changes, transit, first_ns, last_ns, max_gap_ns, jitter, max_jitter, jitter_sum,
# jitter_samples, seen[2]
STATS = struct.Struct("=IIIIHBBB3xIIQQIIIIIIQQQQQQQQQ")
STATS_FIELDS = [
    "base_seq",
    "cycles",
    "bad_seq",
    "received",
    "max_seq",
    "probation",
    "flags",
    "pt",
    "clock_rate",
    "ifindex",
    "packets",
    "bytes",
    "duplicates",
    "reordered",
    "bad_seq_packets",
    "resyncs",
    "pt_changes",
    "transit",
    "first_ns",
    "last_ns",
    "max_gap_ns",
    "jitter",
    "max_jitter",
    "jitter_sum",
    "jitter_samples",
    "seen0",
    "seen1",
]


def test_stats_layout_by_hand_is_the_kernel_value_size() -> None:
    # 4 u32 + u16 + 3 u8 + pad0[3] + clock_rate + ifindex = 32, 2 u64 = 48, 6 u32 = 72,
    # 7 u64 = 128, seen[2] = 144 (so_rtp.h asserts 144 at compile time)
    assert STATS.size == 144 and STATS_FIELDS.index("ifindex") == 9


def mep_key(addr: str, port: int, family: int = socket.AF_INET) -> bytes:
    raw = socket.inet_pton(family, addr)
    return MEP_KEY.pack(4 if family == socket.AF_INET else 6, port, raw.ljust(16, b"\0"))


def mep_val(flags: int, pts: dict[int, int]) -> bytes:
    n = len(pts)
    return MEP_VAL.pack(
        flags,
        n,
        bytes(pts).ljust(16, b"\0"),
        *(list(pts.values()) + [0] * (16 - n)),
    )


def rtp(seq: int, ts: int, ssrc: int, pt: int = 0, size: int = 160, version: int = 2) -> bytes:
    return struct.pack("!BBHII", version << 6, pt, seq & 0xFFFF, ts, ssrc) + b"\xd5" * size


def rtcp_rr(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)  # RR with no report block


def streams(cap: EbpfCapture) -> dict[tuple[int, int, int, int, bytes, bytes], dict[str, int]]:
    keys, values = cap.media_read()
    ks, vs = STREAM_KEY.size, STATS.size
    assert len(keys) % ks == 0 and len(values) % vs == 0 and len(keys) // ks == len(values) // vs
    out = {}
    for i in range(len(keys) // ks):
        key = STREAM_KEY.unpack_from(keys, i * ks)
        out[key] = dict(zip(STATS_FIELDS, STATS.unpack_from(values, i * vs), strict=True))
    return out


def udp_dport(frame: Frame) -> int:
    data = frame.data
    (etype,) = struct.unpack_from("!H", data, 12)
    ihl = (data[14] & 0x0F) * 4 if etype == 0x0800 else 40
    return int(struct.unpack_from("!H", data, 14 + ihl + 2)[0])


@pytest.fixture
def ns() -> Iterator[NetNs]:
    n = NetNs("m")
    try:
        yield n
    finally:
        n.close()


def open_media(streams_max: int = 64, endpoints_max: int = 64) -> EbpfCapture:
    return EbpfCapture(
        resolve_interfaces(["lo"]),
        SIP,
        RING,
        media=True,
        media_max_endpoints=endpoints_max,
        media_max_streams=streams_max,
    )


# The schedule: sequence numbers 65530 + i (mod 2^16) for i in 0..103, 20 ms apart, except
# i in MISSING (never sent), i = 50 sent twice in a row, i = 71 sent before i = 70.
MISSING = {6, 20, 40, 41, 80}  # 6 is sequence number 0: a loss right at the wrap
SSRC = 0x11223344
PAYLOAD = 160


def schedule() -> list[int]:
    order = [i for i in range(104) if i not in MISSING]
    order.insert(order.index(50) + 1, 50)
    a, b = order.index(70), order.index(71)
    order[a], order[b] = order[b], order[a]
    return order


def test_rtp_counted_in_the_kernel_rtcp_to_the_ring(ns: NetNs) -> None:
    # By hand, RFC 3550 A.1: the first packet (65530) puts the source on probation (max_seq =
    # 65529, then 65530, probation 1); the second (65531) in sequence makes it valid: init_seq
    # there, base_seq = 65531, received = 1. Seq 65535 -> 1 (0 lost) wraps: cycles = 65536.
    # The last is i = 103: seq (65530 + 103) mod 65536 = 97, extended max 65536 + 97 = 65633.
    # A.3: expected = 65633 - 65531 + 1 = 103. Sent: 104 - 5 missing + 1 duplicate = 100
    # packets; every one but the first is counted as received (the duplicate too, as the RFC
    # counts it; the late 70 is "reordered", inside MAX_MISORDER): received = 99, lost = 4.
    order = schedule()
    assert len(order) == 100
    with ns.entered():
        cap = open_media()
        try:
            assert cap.media
            cap.media_apply(
                [
                    (mep_key("127.0.0.1", 40000), mep_val(0, {0: 8000, 101: 8000})),
                    (mep_key("127.0.0.1", 40001), mep_val(F_RTCP, {})),
                    (mep_key("127.0.0.1", 40002), mep_val(F_MUX, {8: 8000})),
                    (mep_key("::1", 40004, socket.AF_INET6), mep_val(0, {96: 48000})),
                    (mep_key("127.0.0.1", 49999), b""),  # delete of what is not there: fine
                ]
            )
            t0 = time.monotonic_ns()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 30000))
                for i in order:
                    s.sendto(rtp(65530 + i, 1000 + 160 * i, SSRC), ("127.0.0.1", 40000))
                    time.sleep(0.02)
                s.sendto(rtcp_rr(SSRC), ("127.0.0.1", 40001))  # RTCP endpoint: to the ring
                s.sendto(rtcp_rr(SSRC), ("127.0.0.1", 40002))  # RTCP on a mux port: ring
                for i in range(3):  # RTP on the mux port: counted
                    s.sendto(rtp(7 + i, 160 * i, 0xABC, pt=8), ("127.0.0.1", 40002))
                s.sendto(rtp(1, 1, 1, version=0), ("127.0.0.1", 40000))  # not RTP: dropped
                s.sendto(b"x" * 4, ("127.0.0.1", 40000))  # too short for RTP: dropped
                s.sendto(rtp(1, 1, 2), ("127.0.0.1", 40003))  # no endpoint: dropped
                s.sendto(b"INVITE", ("127.0.0.1", 5060))  # SIP as ever
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s6:
                s6.bind(("::1", 30002))
                for i in range(4):
                    s6.sendto(rtp(100 + i, 960 * i, 0x66, pt=96), ("::1", 40004))
            frames = collect(cap)
            t1 = time.monotonic_ns()
            got = streams(cap)
            counters = cap.counters()
            drops = cap.drop_reasons()
        finally:
            cap.close()
    assert sorted(udp_dport(f) for f in frames) == [5060, 40001, 40002], (counters, got)
    v4 = lambda a: socket.inet_aton(a).ljust(16, b"\0")  # noqa: E731
    lo4 = v4("127.0.0.1")
    lo6 = socket.inet_pton(socket.AF_INET6, "::1")
    assert set(got) == {
        (4, 30000, 40000, SSRC, lo4, lo4),
        (4, 30000, 40002, 0xABC, lo4, lo4),
        (6, 30002, 40004, 0x66, lo6, lo6),
    }
    st = got[(4, 30000, 40000, SSRC, lo4, lo4)]
    assert st["packets"] == 100
    assert st["bytes"] == 100 * (12 + PAYLOAD)
    assert st["base_seq"] == 65531 and st["cycles"] == 65536 and st["max_seq"] == 97
    expected = st["cycles"] + st["max_seq"] - st["base_seq"] + 1
    assert expected == 103
    assert st["received"] == 99
    assert expected - st["received"] == 4  # lost
    assert st["duplicates"] == 1 and st["reordered"] == 1
    assert st["bad_seq_packets"] == 0 and st["resyncs"] == 0 and st["pt_changes"] == 0
    assert st["pt"] == 0 and st["clock_rate"] == 8000  # PT 0's rate from the endpoint
    assert t0 <= st["first_ns"] < st["last_ns"] <= t1  # bpf_ktime_get_ns: CLOCK_MONOTONIC
    assert st["jitter_samples"] == 99  # every packet after the first has a transit difference
    mux = got[(4, 30000, 40002, 0xABC, lo4, lo4)]
    assert (mux["packets"], mux["received"], mux["clock_rate"]) == (3, 2, 8000)
    six = got[(6, 30002, 40004, 0x66, lo6, lo6)]
    assert (six["packets"], six["max_seq"], six["clock_rate"]) == (4, 103, 48000)
    assert counters["rtp_counted"] == 100 + 3 + 4
    assert counters["rtcp_passed"] == 2
    assert counters["not_rtp"] == 2
    assert counters["rtp_streams_full"] == 0 and counters["media_endpoints_full"] == 0
    assert counters["passed"] == 3
    assert drops == {"ring_full": 0, "load_fail": 0}  # media map evictions are no capture drops


def test_full_maps_are_counted_and_delete_frees(ns: NetNs) -> None:
    with ns.entered():
        cap = open_media(streams_max=8, endpoints_max=8)  # 8: the smallest map
        try:
            endpoints = [(mep_key("127.0.0.1", 41000 + i), mep_val(0, {0: 8000})) for i in range(9)]
            cap.media_apply(endpoints)  # the ninth does not fit
            assert cap.media_endpoints_full == 1
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 31000))
                for ssrc in range(1, 11):  # ten streams, room for eight
                    s.sendto(rtp(5, 0, ssrc), ("127.0.0.1", 41000))
                time.sleep(0.1)
                first = streams(cap)
                full = cap.media_drops()
                assert cap.drop_reasons() == {"ring_full": 0, "load_fail": 0}
                gone = sorted(first)[:3]
                cap.media_delete(b"".join(STREAM_KEY.pack(*k) for k in gone))
                cap.media_delete(STREAM_KEY.pack(*gone[0]))  # already gone: fine
                s.sendto(rtp(6, 160, 99), ("127.0.0.1", 41000))  # a new stream fits again
                cap.media_apply([(endpoints[0][0], b"")])  # endpoint deleted: no more counting
                s.sendto(rtp(7, 320, 99), ("127.0.0.1", 41000))
                time.sleep(0.1)
                after = streams(cap)
                counters = cap.counters()
        finally:
            cap.close()
    assert len(first) == 8
    assert {k[3] for k in first} <= set(range(1, 11))
    assert full == {"kernel_media_endpoints.full": 1, "kernel_rtp_streams.full": 2}
    assert counters["rtp_streams_full"] == 2
    assert len(after) == 6 and not set(gone) & set(after)
    new = [v for k, v in after.items() if k[3] == 99]
    assert len(new) == 1 and new[0]["packets"] == 1  # the packet after the delete not counted
    assert counters["rtp_counted"] == 8 + 1


def test_clear_all_then_adds_leaves_only_the_adds(ns: NetNs) -> None:
    """(b"", b"") from the core (its change queue overflowed) clears media_eps; the adds that
    follow are all that is left: RTP to the cleared endpoints is no longer counted."""
    with ns.entered():
        cap = open_media()
        try:
            old = [(mep_key("127.0.0.1", 42000 + i), mep_val(0, {0: 8000})) for i in range(3)]
            cap.media_apply(old)
            kept = (mep_key("127.0.0.1", 42001), mep_val(0, {8: 8000}))
            new = (mep_key("127.0.0.1", 42010), mep_val(0, {0: 8000}))
            cap.media_apply([(b"", b""), kept, new])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 32000))
                for port in (42000, 42001, 42002, 42010):
                    s.sendto(rtp(1, 0, port), ("127.0.0.1", port))
                time.sleep(0.1)
            got = streams(cap)
            counters = cap.counters()
        finally:
            cap.close()
    # one stream per endpoint still in the map (SSRC = its port): 42001 (re-added) and 42010
    assert sorted(k[3] for k in got) == [42001, 42010]
    assert counters["rtp_counted"] == 2


def test_without_media_no_media_maps_and_no_media_counting(ns: NetNs) -> None:
    with ns.entered():
        cap = EbpfCapture(resolve_interfaces(["lo"]), SIP, RING)
        try:
            assert not cap.media
            cap.media_apply([(mep_key("127.0.0.1", 40000), mep_val(0, {0: 8000}))])  # no-op
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(rtp(1, 0, 1), ("127.0.0.1", 40000))
                s.sendto(b"INVITE", ("127.0.0.1", 5060))
            frames = collect(cap)
            got = cap.media_read()
            counters = cap.counters()
            drops = cap.drop_reasons()
            media_drops = cap.media_drops()
        finally:
            cap.close()
    assert [udp_dport(f) for f in frames] == [5060]
    assert got == (b"", b"")
    assert counters["rtp_counted"] == 0 and "media_endpoints_full" not in counters
    assert drops == {"ring_full": 0, "load_fail": 0} and media_drops == {}


@contextlib.contextmanager
def veth_media() -> Iterator[tuple[EbpfCapture, NetNs, bytes, bytes]]:
    """Media capture on ``va`` in namespace a, 10.77.0.1:40000 a learned PCMU endpoint; yields
    (capture, namespace b with ``vb``, a's MAC, b's MAC) for raw frames sent from b."""
    from test_capture_live import mac_of

    a, b = NetNs("a"), NetNs("b")
    try:
        veth_pair(a, b)
        mac_a, mac_b = mac_of(a, "va"), mac_of(b, "vb")
        with a.entered():
            cap = EbpfCapture(resolve_interfaces(["va"]), SIP, RING, media=True)
        try:
            cap.media_apply([(mep_key("10.77.0.1", 40000), mep_val(0, {0: 8000}))])
            yield cap, b, mac_a, mac_b
        finally:
            cap.close()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "tags", [[(0x8100, 100)], [(0x88A8, 10), (0x8100, 20)]], ids=["802.1q", "qinq"]
)
def test_rtp_behind_vlan_tags_is_counted(tags: list[tuple[int, int]]) -> None:
    from test_capture_live import raw_send, tagged_frame

    with veth_media() as (cap, b, mac_a, mac_b):
        with b.entered():  # 10.77.0.2:40000 -> 10.77.0.1:40000, tagged on the wire
            for seq in (1, 2, 3):
                raw_send("vb", tagged_frame(mac_a, mac_b, tags, 40000, rtp(seq, 0, 7)))
        frames = collect(cap)
        got = streams(cap)
    assert frames == []
    key = (4, 40000, 40000, 7, socket.inet_aton("10.77.0.2") + bytes(12))
    assert [(k[:5], v["packets"], v["received"]) for k, v in got.items()] == [(key, 3, 2)]
    assert next(iter(got))[5] == socket.inet_aton("10.77.0.1") + bytes(12)


def test_short_udp_payload_on_ethernet_padding_is_not_rtp() -> None:
    """A 4-byte UDP payload in a frame padded to 60 bytes (Ethernet's minimum, the padding
    looking like an RTP header): the 20 bytes after the UDP header's start are loadable, but the
    UDP length (12) says there is no 12-byte RTP header: not_rtp, no stream. A full RTP packet
    after it is counted (its UDP length is 8 + 12 + 4)."""
    from test_capture_live import raw_send, tagged_frame

    with veth_media() as (cap, b, mac_a, mac_b):
        short = tagged_frame(mac_a, mac_b, [], 40000, b"\x80\x00\x00\x01")  # 46 bytes
        padding = rtp(2, 0, 9, size=2)  # 14 more: a plausible RTP header and 2 bytes
        with b.entered():
            raw_send("vb", short + padding)
            raw_send("vb", tagged_frame(mac_a, mac_b, [], 40000, rtp(3, 0, 9, size=4)))
        collect(cap)
        got = streams(cap)
        counters = cap.counters()
    assert len(short + padding) == 60
    assert counters["not_rtp"] == 1 and counters["rtp_counted"] == 1
    assert [(k[3], v["packets"], v["bytes"]) for k, v in got.items()] == [(9, 1, 16)]


def test_copies_on_other_interfaces_are_not_counted_twice(ns: NetNs) -> None:
    """Capturing on every interface of a namespace where both ends of a veth pair live: each
    frame sent on v0 is seen leaving v0 and arriving on v1. The stream is counted on v0 (its
    first packet's interface) and the v1 copies only as rtp_copies.

    By hand (RFC 3550 A.1, A.3): sequence numbers 1..10 without 4 and 7, 8 packets. 1 starts
    probation, 2 is in sequence: valid, base_seq 2, received 1; then 3 5 6 8 9 10: received 7,
    max_seq 10, expected 10 - 2 + 1 = 9, lost 2, no duplicates. After 0.6 s of silence the
    stream shows up on a second veth pair (v2 -> v3): it moved (MEDIA_IF_MOVE_NS 0.5 s), 11 and
    12 are counted on v2 (received 9, max_seq 12, lost 2) and their v3 copies skipped."""
    from test_capture_live import mac_of, raw_send, tagged_frame

    for a, b in (("v0", "v1"), ("v2", "v3")):
        ns.ip("link", "add", a, "type", "veth", "peer", "name", b)
        ns.ip("link", "set", a, "up")
        ns.ip("link", "set", b, "up")
    mac1, mac3 = mac_of(ns, "v1"), mac_of(ns, "v3")
    with ns.entered():
        ifindex = {n: socket.if_nametoindex(n) for n in ("v0", "v2")}
        cap = EbpfCapture(resolve_interfaces([]), SIP, RING, media=True)  # all interfaces
        try:
            cap.media_apply([(mep_key("10.77.0.1", 40000), mep_val(0, {0: 8000}))])
            for seq in (1, 2, 3, 5, 6, 8, 9, 10):
                raw_send("v0", tagged_frame(mac1, mac1, [], 40000, rtp(seq, seq * 160, 5)))
            time.sleep(0.1)
            first = streams(cap)
            copies = cap.counters()["rtp_copies"]
            time.sleep(0.6)
            for seq in (11, 12):
                raw_send("v2", tagged_frame(mac3, mac3, [], 40000, rtp(seq, seq * 160, 5)))
            time.sleep(0.1)
            moved = streams(cap)
            counters = cap.counters()
        finally:
            cap.close()
    fields = ("packets", "received", "duplicates", "max_seq", "base_seq", "ifindex")
    got = [(k[3], *(v[f] for f in fields)) for k, v in first.items()]
    assert got == [(5, 8, 7, 0, 10, 2, ifindex["v0"])]
    assert copies == 8
    v = next(iter(moved.values()))
    assert (v["packets"], v["received"], v["duplicates"], v["max_seq"]) == (10, 9, 0, 12)
    assert v["ifindex"] == ifindex["v2"]
    assert counters["rtp_copies"] == 8 + 2 and counters["rtp_counted"] == 10
