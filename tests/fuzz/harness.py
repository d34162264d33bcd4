"""The fuzz target: one input drives the whole compiled pipeline, as replay and live capture do.

An input is a small program (all integers little-endian)::

    flags       1 byte   bit 0: the rest is a capture file (pcap/pcapng) fed through the
                                same PcapCursor path replay uses, instead of records
                         bit 1: all ports are SIP ports
                         bits 2-3: limits profile (PROFILES: tiny tables, small tables,
                                   extreme times, tiny net tables with a 401/407 retry
                                   counted as a new attempt; MEMORY_LIMITS: 6 KiB, 48 KiB,
                                   none, the default)
                         bit 4: records wanted (the span path: records become Python objects)
                         bit 5: the rest is an eBPF ring (live path, so_ring.c): i64 realtime
                                offset, then the data area (records as the kernel writes
                                them), read from position 0 to its end
                         bit 6: the rest is TPACKET_V3 blocks (AF_PACKET path) of BLOCK bytes,
                                each handed to the reader as TP_STATUS_USER
                         bit 7: media on (so_media.c: SDP learning, RTP statistics), with
                                8-entry tables so a few calls exercise their evictions; with
                                bit 0 also: the capture is handed to the reader in regions of
                                1 + len % 97 bytes (the first at least 24), as replay reads a
                                file, a pipe or a gzip stream: every record boundary case
    records, until the input ends:
      tag       1 byte   op = tag & 3, linktype = LINKTYPES[(tag >> 2) & 7]
      op 0: frame   u16 delta (ms after the previous time), u16 length, the frame's bytes
      op 1: frame   i64 absolute time (ns; any value, extremes included), u16 length, bytes
      op 2: timer   i64 absolute time (ns): Pipeline.handle_timer
      op 3: timer   u16 delta (s after the previous time): Pipeline.handle_timer

A record cut short by the end of the input uses what is there. After the last record the
pipeline is finished at the last time seen. Every frame is its own ``bytes`` object of its exact
length, so (with PYTHONMALLOC=malloc, as fuzz_run.py sets it) a read past a frame's end lands in
an ASan redzone.

This module imports ``sip_otel._core`` whatever variant is first on the package path:
fuzz_target.py puts the sanitizer build first; the regression test uses the normal one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sip_otel._core import RingCursor, TpacketCursor
from sip_otel.capture.pcapfile import PcapCursor
from sip_otel.net.decoder import NetLimits
from sip_otel.net.types import Frame
from sip_otel.pipeline import Pipeline, PipelineConfig
from sip_otel.records import DialogRecord, RegistrationRecord
from sip_otel.sip.tracker import TrackerConfig

__all__ = [
    "LINKTYPES",
    "PROFILES",
    "Totals",
    "encode_frames",
    "encode_ring",
    "encode_tpacket",
    "run_one",
]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
MS = 1_000_000
S = 1_000_000_000

# ETHERNET, LINUX_SLL, LINUX_SLL2, NULL, LOOP, RAW, IPV4, IPV6: every link type net/ decodes.
LINKTYPES = (1, 113, 276, 0, 108, 101, 228, 229)

FLAG_CAPTURE = 1
FLAG_ALL_PORTS = 2
FLAG_RECORDS = 16
FLAG_RING = 32
FLAG_TPACKET = 64
FLAG_MEDIA = 128  # media on; with FLAG_CAPTURE also the region reader (one bit left for both)
FLAG_REGIONS = FLAG_MEDIA
RING_PAGE = 4096
TPACKET_BLOCK = 1024  # small blocks: a few packets each, many block boundaries

# Small tables so that a few packets fill them and every eviction path runs.
_TINY_NET = NetLimits(
    max_fragment_sets=4,
    max_fragment_bytes=4096,
    max_fragments_per_set=4,
    max_fragment_memory_bytes=8192,
    max_tcp_flows=4,
    max_tcp_ooo_bytes_per_flow=2048,
    max_tcp_ooo_segments_per_flow=4,
    max_tcp_ooo_bytes_total=4096,
    max_sip_message_bytes=4096,
    max_tunnel_depth=2,
)
_TINY_TRACK = TrackerConfig(
    max_transactions=8,
    max_dialogs=4,
    max_registrations=4,
    max_invite_attempts=4,
    max_register_attempts=4,
)
_SMALL_NET = NetLimits(
    max_fragment_sets=64,
    max_tcp_flows=64,
    max_tcp_ooo_segments_per_flow=64,
    max_sip_message_bytes=32768,
)
_SMALL_TRACK = TrackerConfig(
    max_transactions=256,
    max_dialogs=64,
    max_registrations=64,
    max_invite_attempts=64,
    max_register_attempts=64,
    t1_ns=1 * MS,
    expiry_check_ns=1,
)
# Timeouts and defaults at the int64 edge: every deadline computation must saturate.
_EXTREME_NET = NetLimits(
    max_fragment_sets=8,
    max_tcp_flows=8,
    fragment_timeout_ns=INT64_MAX,
    tcp_idle_timeout_ns=INT64_MAX,
)
_EXTREME_TRACK = TrackerConfig(
    max_transactions=16,
    max_dialogs=8,
    max_registrations=8,
    max_invite_attempts=8,
    max_register_attempts=8,
    t1_ns=INT64_MAX // 64,
    session_expires_default_s=INT64_MAX // S,
    expiry_check_ns=INT64_MAX,
    invite_proceeding_timeout_ns=INT64_MAX,
    register_expires_default_s=INT64_MAX // S,
)
# The memory budget of each profile: tiny ones so that a few messages pass them and every
# ``.memory`` eviction path runs (docs/reliability.md); none; the default.
MEMORY_LIMITS = (6 * 1024, 48 * 1024, 0, 256 * 1024 * 1024)
PROFILES = (
    (_TINY_NET, _TINY_TRACK),
    (_SMALL_NET, _SMALL_TRACK),
    (_EXTREME_NET, _EXTREME_TRACK),
    (
        _TINY_NET,
        TrackerConfig(
            max_transactions=32,
            max_dialogs=16,
            max_registrations=16,
            challenge_retry_is_new_attempt=True,
        ),
    ),
)


@dataclass
class Totals:
    """What the inputs run so far did, summed (the runner prints it)."""

    inputs: int = 0
    frames: int = 0
    sip_messages: int = 0
    records: int = 0
    timers: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def internal(self) -> dict[str, int]:
        return {k: v for k, v in self.reasons.items() if k.startswith("internal")}


def _config(flags: int) -> PipelineConfig:
    profile = (flags >> 2) & 3
    net, track = PROFILES[profile]
    return PipelineConfig(
        all_ports=bool(flags & FLAG_ALL_PORTS),
        net_limits=net,
        tracker=track,
        media=bool(flags & FLAG_MEDIA),
        media_max_endpoints=8,
        media_max_streams=8,
        memory_limit=MEMORY_LIMITS[profile],
    )


def _run_records(pipe: Pipeline, data: bytes, totals: Totals) -> None:
    pos, n, now = 1, len(data), 0
    batch: list[Frame] = []
    while pos < n:
        tag = data[pos]
        pos += 1
        op = tag & 3
        if op == 0 or op == 3:
            delta = int.from_bytes(data[pos : pos + 2], "little")
            pos += 2
            now = min(now + delta * (MS if op == 0 else S), INT64_MAX)
        else:
            raw = data[pos : pos + 8]
            pos += 8
            now = struct.unpack("<q", raw.ljust(8, b"\0"))[0]
        if op >= 2:
            if batch:
                pipe.feed(batch)
                batch = []
            pipe.handle_timer(now)
            totals.timers += 1
            continue
        length = int.from_bytes(data[pos : pos + 2], "little")
        pos += 2
        batch.append(Frame(now, LINKTYPES[(tag >> 2) & 7], data[pos : pos + length]))
        pos += length
        if len(batch) >= 64:
            pipe.feed(batch)
            batch = []
    if batch:
        pipe.feed(batch)


def _run_capture(pipe: Pipeline, data: bytes) -> None:
    # The replay path (PcapReader.feed): a capture file walked by the C reader, whole or in
    # regions (each its own bytes object: a read past a region's end hits a redzone).
    body = data[1:]
    step = 1 + len(body) % 97 if data[0] & FLAG_REGIONS else len(body)
    end = min(len(body), max(step, 24))
    cursor = PcapCursor(body[:end], end == len(body))
    try:
        while True:
            state = pipe._core.feed_pcap(cursor, 64)
            if state == 3:  # the next region, from the record that did not fit
                start = cursor.offset
                end = min(len(body), max(start + cursor.need, end + step))
                cursor.refill(body[start:end], start, end == len(body))
            elif state != 0:
                break
    finally:
        cursor.release()


def _run_ring(pipe: Pipeline, data: bytes) -> None:
    # One ring, or (odd offset byte) the body split between two rings merged by timestamp.
    offset = struct.unpack("<q", data[1:9].ljust(8, b"\0"))[0]
    body = data[9:]
    parts = [body]
    if len(data) > 1 and data[1] & 1:
        cut = (len(body) // 2) & ~7
        parts = [body[:cut], body[cut:]]
    size = 64
    while size < max(len(p) for p in parts):
        size *= 2
    maps = []
    for part in parts:
        cons = bytearray(8)
        ring = bytearray(RING_PAGE + size)
        struct.pack_into("<Q", ring, 0, (len(part) + 7) & ~7)  # producer position
        ring[RING_PAGE : RING_PAGE + len(part)] = part
        maps.append((cons, ring))
    cursor = RingCursor(maps, size, offset, RING_PAGE)
    try:
        while pipe._core.feed_ring(cursor, 64):
            pass
    finally:
        cursor.release()


def _run_tpacket(pipe: Pipeline, data: bytes) -> None:
    body = data[1:]
    nblocks = max(1, -(-len(body) // TPACKET_BLOCK))
    ring = bytearray(nblocks * TPACKET_BLOCK)
    ring[: len(body)] = body
    for b in range(nblocks):
        struct.pack_into("<I", ring, b * TPACKET_BLOCK + 8, 1)  # TP_STATUS_USER
    cursor = TpacketCursor(ring, TPACKET_BLOCK, nblocks)
    try:
        while pipe._core.feed_tpacket(cursor, 64):
            pass
    finally:
        cursor.release()


def run_one(data: bytes, totals: Totals) -> None:
    """Run one input through a fresh pipeline and add what it did to ``totals``."""
    if not data:
        return
    flags = data[0]
    records: list[DialogRecord | RegistrationRecord] = []
    pipe = Pipeline(_config(flags), records.append if flags & FLAG_RECORDS else None)
    if flags & FLAG_CAPTURE:
        _run_capture(pipe, data)
    elif flags & FLAG_RING:
        _run_ring(pipe, data)
    elif flags & FLAG_TPACKET:
        _run_tpacket(pipe, data)
    else:
        _run_records(pipe, data, totals)
    pipe.finish()
    stats = pipe.stats  # one sync brings the reasons up to date too
    totals.inputs += 1
    totals.frames += stats.frames
    totals.sip_messages += stats.messages
    totals.records += len(records)
    for slug, count in pipe._reasons.counts.items():
        if count:
            totals.reasons[slug] = totals.reasons.get(slug, 0) + count


def encode_frames(frames: list[Frame], flags: int = 0, absolute_first: bool = True) -> bytes:
    """Frames as a record-mode input (the seed builder's format): the first frame at its
    absolute time, the rest as millisecond deltas (or absolute when time goes backwards or
    jumps by more than 65 s)."""
    out = bytearray([flags & ~FLAG_CAPTURE])
    prev: int | None = None
    for f in frames:
        if f.linktype not in LINKTYPES:
            continue
        lt = LINKTYPES.index(f.linktype) << 2
        body = f.data[:0xFFFF]
        delta = None if prev is None else f.ts_ns - prev
        if (
            delta is not None
            and 0 <= delta < 0x10000 * MS
            and not (absolute_first and prev is None)
        ):
            out += bytes([lt | 0]) + struct.pack("<HH", delta // MS, len(body))
            prev += (delta // MS) * MS
        else:
            out += bytes([lt | 1]) + struct.pack("<qH", f.ts_ns, len(body))
            prev = f.ts_ns
        out += body
    return bytes(out)


def encode_ring(frames: list[Frame], flags: int = 0, offset_ns: int = 0) -> bytes:
    """Ethernet frames as an eBPF ring input: kernel header (length, page offset), struct
    rec_hdr (bpf/sip_record.h: ts, ifindex, len, caplen, pkt_type, vlan tci/proto), packet,
    padded to 8 bytes."""
    out = bytearray([FLAG_RING | (flags & 0x1E)]) + struct.pack("<q", offset_ns)
    for f in frames:
        if f.linktype != 1:
            continue
        body = struct.pack("<QIIIHHHHI", f.ts_ns & (2**64 - 1), 2, len(f.data), len(f.data),
                           0, 0, 0, 0, 0) + f.data  # fmt: skip
        rec = struct.pack("<II", len(body), 0) + body
        out += rec + b"\0" * (-len(rec) % 8)
    return bytes(out)


def encode_tpacket(frames: list[Frame], flags: int = 0) -> bytes:
    """Ethernet frames as TPACKET_V3 blocks of TPACKET_BLOCK bytes: block header (status at
    8, packet count at 12, first packet at 16), then per packet a tpacket3_hdr (next offset,
    sec, nsec, snaplen, len, status, mac offset) and sockaddr_ll (ifindex at +52, pkttype at
    +58), the frame at the mac offset."""
    blocks: list[bytearray] = []
    cur: list[bytes] = []

    def close() -> None:
        blk = bytearray(TPACKET_BLOCK)
        struct.pack_into("<III", blk, 8, 1, len(cur), 48)
        pos = 48
        for i, pkt in enumerate(cur):
            blk[pos : pos + len(pkt)] = pkt
            if i + 1 < len(cur):
                struct.pack_into("<I", blk, pos, len(pkt))
            pos += len(pkt)
        blocks.append(blk)

    used = 48
    for f in frames:
        if f.linktype != 1 or len(f.data) + 80 > TPACKET_BLOCK - 48:
            continue
        sec, nsec = divmod(max(f.ts_ns, 0), 1_000_000_000)
        hdr = bytearray(80)
        struct.pack_into("<IIIIIIHH", hdr, 0, 0, sec & 0xFFFFFFFF, nsec, len(f.data),
                         len(f.data), 0, 80, 80)  # fmt: skip
        struct.pack_into("<I", hdr, 52, 2)
        pkt = bytes(hdr) + f.data
        pkt += b"\0" * (-len(pkt) % 16)
        if used + len(pkt) > TPACKET_BLOCK and cur:
            close()
            cur, used = [], 48
        cur.append(pkt)
        used += len(pkt)
    if cur:
        close()
    return bytes([FLAG_TPACKET | (flags & 0x1E)]) + b"".join(blocks)
