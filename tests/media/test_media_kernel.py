"""The core's side of the live media path (docs/media.md, the contract): the queue of kernel
endpoint-map changes (struct so_mep_key / so_mep_val, bpf/so_media_map.h) and the kernel stream
sync (struct so_mstream_key + struct so_rtp_stats). Expected bytes are packed here with struct
from the headers' layouts, independently of the core."""

from __future__ import annotations

import struct

import pytest
from callbuild import MS, T0, S, bye, call_setup, call_setups, frame, rtp, sip

from sip_otel import _core
from sip_otel.pipeline import Pipeline, PipelineConfig
from sip_otel.records import MediaStream

A4 = bytes([10, 0, 0, 1])
B4 = bytes([10, 0, 0, 2])


def mep_key(addr: bytes, port: int) -> bytes:
    # family u8, pad u8, port u16 (host order), addr[16]
    return struct.pack("=BBH16s", 4, 0, port, addr)


def mep_val(flags: int, pts: list[tuple[int, int]]) -> bytes:
    # flags u8, n_pts u8, pad[2], pts[16] u8, rates[16] u32
    pt_bytes = bytes(pt for pt, _ in pts)
    rates = [rate for _, rate in pts] + [0] * (16 - len(pts))
    return struct.pack("=BB2x16s16I", flags, len(pts), pt_bytes, *rates)


def stream_key(src: bytes, sport: int, dst: bytes, dport: int, ssrc: int) -> bytes:
    # family, pad0, sport, dport, pad1[2], ssrc, src[16], dst[16]
    return struct.pack("=BBHH2xI16s16s", 4, 0, sport, dport, ssrc, src, dst)


def rtp_stats(**f: int) -> bytes:
    """struct so_rtp_stats (so_rtp.h), every field named, natural alignment spelled out."""
    return struct.pack(
        "=IIIIHBBB3xI4xQQIIIIIIQQQQQQQQQ",
        f.get("base_seq", 0),
        f.get("cycles", 0),
        f.get("bad_seq", 65537),
        f.get("received", 0),
        f.get("max_seq", 0),
        f.get("probation", 0),
        f.get("flags", 0),
        f.get("pt", 0),
        f.get("clock_rate", 0),
        f.get("packets", 0),
        f.get("bytes", 0),
        f.get("duplicates", 0),
        f.get("reordered", 0),
        f.get("bad_seq_packets", 0),
        f.get("resyncs", 0),
        f.get("pt_changes", 0),
        f.get("transit", 0),
        f.get("first_ns", 0),
        f.get("last_ns", 0),
        f.get("max_gap_ns", 0),
        f.get("jitter", 0),
        f.get("max_jitter", 0),
        f.get("jitter_sum", 0),
        f.get("jitter_samples", 0),
        0,
        0,
    )


def test_layouts_match_the_headers() -> None:
    assert _core.MEP_KEY_SIZE == len(mep_key(A4, 1)) == 20
    assert _core.MEP_VAL_SIZE == len(mep_val(0, [])) == 84
    assert _core.MSTREAM_KEY_SIZE == len(stream_key(A4, 1, B4, 2, 3)) == 44
    assert _core.RTP_STATS_SIZE == len(rtp_stats()) == 144


def test_endpoint_changes_add_then_delete() -> None:
    p = Pipeline(PipelineConfig(media=True))
    assert p.media_endpoint_changes() == []  # turns the queue on
    p.feed(call_setup(T0))
    pcmu = [(0, 8000)]
    # learn order: the INVITE's RTP and RTCP (port + 1) endpoints, then the 200 OK's
    assert p.media_endpoint_changes() == [
        (mep_key(A4, 4000), mep_val(0, pcmu)),
        (mep_key(A4, 4001), mep_val(1, pcmu)),  # SO_MEP_F_RTCP
        (mep_key(B4, 5000), mep_val(0, pcmu)),
        (mep_key(B4, 5001), mep_val(1, pcmu)),
    ]
    assert p.media_endpoint_changes() == []  # drained
    p.feed(bye(T0 + 5 * S))
    p.handle_timer(T0 + 9 * S)  # the call's media ended (record + 3 s)
    got = p.media_endpoint_changes()
    assert sorted(got) == sorted(
        (mep_key(a, port), b"") for a, port in ((A4, 4000), (A4, 4001), (B4, 5000), (B4, 5001))
    )


def test_refresh_queues_only_a_changed_value_and_rtcp_mux() -> None:
    p = Pipeline(PipelineConfig(media=True))
    p.feed(call_setup(T0))
    # turned on late: every endpoint already learned is queued as an add
    assert len(p.media_endpoint_changes()) == 4
    same = sip(
        "UPDATE sip:b@x SIP/2.0",
        to_tag="b1",
        cseq="3 UPDATE",
        branch="z9hG4bK9",
        body="v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\n",
    )
    p.feed([frame(T0 + S, A4, B4, 5060, 5060, same)])
    assert p.media_endpoint_changes() == []  # same value: nothing for the kernel
    mux = sip(
        "UPDATE sip:b@x SIP/2.0",
        to_tag="b1",
        cseq="4 UPDATE",
        branch="z9hG4bKa",
        body="v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0 8\na=rtcp-mux\n",
    )
    p.feed([frame(T0 + 2 * S, A4, B4, 5060, 5060, mux)])
    assert p.media_endpoint_changes() == [
        (mep_key(A4, 4000), mep_val(2, [(0, 8000), (8, 8000)]))  # SO_MEP_F_MUX
    ]


def test_change_queue_is_bounded() -> None:
    # 32 endpoint slots (twice the limit of 1, rounded up to a probe window): a queue of
    # 2 * 32 + 64 = 128 changes. 21 calls learn 84 endpoints (RTP and RTCP of offer and answer)
    # while nobody drains: 84 adds, and each of the 52 past the 32nd evicts one (a delete
    # first): 136 changes, 8 dropped. The kernel map is out of step: the next drain is a
    # resync -- (b"", b"") (clear it) and an add for each of the 32 endpoints held.
    p = Pipeline(PipelineConfig(media=True, media_max_endpoints=1))
    p.media_endpoint_changes()
    p.feed(call_setups(21, "q"))
    changes = p.media_endpoint_changes()
    assert changes[0] == (b"", b"") and len(changes) == 33
    assert all(len(k) == 20 and len(v) == 84 for k, v in changes[1:])
    assert p.evictions() == {"media_endpoints.full": 52, "media_changes.full": 8}
    assert p.media_endpoint_changes() == []  # in step again


def test_kernel_sync_replaces_the_stream_and_returns_stale_keys() -> None:
    reports: list[MediaStream] = []
    p = Pipeline(PipelineConfig(media=True))
    p.set_media_sink(reports.append)
    p.feed(call_setup(T0))
    offset = T0  # the capture's realtime offset of the kernel's monotonic clock
    mine = stream_key(A4, 4000, B4, 5000, 0xA0A0A0A0)
    gone = stream_key(A4, 4000, bytes([10, 0, 0, 9]), 7000, 5)  # no such endpoint
    stats = rtp_stats(
        base_seq=10,
        received=95,
        max_seq=109,
        flags=7,
        pt=0,
        clock_rate=8000,
        packets=96,
        bytes=96 * 172,
        first_ns=1_000_000_000,
        last_ns=3_000_000_000,
        max_gap_ns=40 * MS,
        jitter=2560,
        max_jitter=5120,
        jitter_sum=2560 * 90,
        jitter_samples=90,
    )
    stale = p.media_kernel_sync(mine + gone, stats + rtp_stats(), offset)
    assert stale == gone
    (s,) = p.media_streams()
    assert (s["dst"], s["dport"], s["direction"], s["codec"]) == (
        "10.0.0.2",
        5000,
        "to_callee",
        "PCMU",
    )
    assert (s["first_ns"], s["last_ns"]) == (T0 + S, T0 + 3 * S)
    # replaced, not added: the same entry again changes nothing
    assert p.media_kernel_sync(mine, stats, offset) == b""
    assert p.media_streams()[0]["packets"] == 96
    p.finish()
    (r,) = reports
    # A.3: expected 109 - 10 + 1 = 100, received 95: lost 5
    # packets: every packet the kernel saw (96); A.1 received 95 (not the first)
    assert (r.final, r.total_packets, r.total_expected, r.total_lost) == (True, 96, 100, 5)
    assert (r.total_received, r.received) == (95, 95)
    assert (r.packets, r.expected, r.lost) == (96, 100, 5)
    assert r.total_bytes == 96 * 172 and r.max_gap_s == 0.04
    assert r.jitter_s == 2560 / 256 / 8000 and r.jitter_max_s == 5120 / 256 / 8000
    assert r.jitter_mean_s == 2560 / 256 / 8000
    assert (r.start_ns, r.end_ns) == (T0 + S, T0 + 3 * S)
    # the call's media ended: its keys are stale now
    assert p.media_kernel_sync(mine, stats, offset) == mine


def test_kernel_sync_refreshes_the_endpoint() -> None:
    p = Pipeline(PipelineConfig(media=True))
    p.feed(call_setup(T0))
    key = stream_key(A4, 4000, B4, 5000, 1)
    # a packet 299 s after the SDP: at 302 s the RTP endpoint is not idle, the others are
    p.media_kernel_sync(key, rtp_stats(packets=1, first_ns=299 * S, last_ns=299 * S), T0)
    p.handle_timer(T0 + 302 * S)
    assert p.evictions() == {"media_endpoints.timeout": 3}
    assert len(p.media_streams()) == 1


def test_kernel_sync_rejects_bad_lengths() -> None:
    p = Pipeline(PipelineConfig(media=True))
    with pytest.raises(ValueError):
        p.media_kernel_sync(b"\0" * 44, b"\0" * 143, 0)
    with pytest.raises(ValueError):
        p.media_kernel_sync(b"\0" * 88, b"\0" * 144, 0)


def test_kernel_sync_returns_an_idle_stream() -> None:
    """A kernel entry whose last packet is older than the idle timeout (300 s) at the core's
    packet time is not taken, though its endpoint lives on: its key comes back for deletion."""
    p = Pipeline(PipelineConfig(media=True))
    p.feed(call_setup(T0))
    old_key, live_key = stream_key(A4, 4000, B4, 5000, 1), stream_key(A4, 4000, B4, 5000, 2)
    old = rtp_stats(packets=1, first_ns=S, last_ns=S)  # T0 + 1 s
    assert p.media_kernel_sync(old_key, old, T0) == b""
    p.handle_timer(T0 + 299 * S)
    live = rtp_stats(packets=1, first_ns=299 * S, last_ns=299 * S)  # keeps B:5000 fresh
    assert p.media_kernel_sync(old_key + live_key, old + live, T0) == b""  # 298 s: not idle
    p.handle_timer(T0 + 301_500 * MS)  # 300.5 s after the old one's last packet
    assert p.media_kernel_sync(old_key + live_key, old + live, T0) == old_key


def test_kernel_sync_never_evicts_a_live_stream() -> None:
    """A limit of 8 streams: 32 slots (one probe window). 33 live kernel entries: 32 are
    taken, the 33rd finds no room -- counted ``rtp_streams.full`` at each sync, left in the
    kernel map (not returned), and no live stream is evicted: no report until the end, then
    one final report per stream with the kernel's figures once (not counted twice)."""
    reports: list[MediaStream] = []
    p = Pipeline(PipelineConfig(media=True, media_max_streams=8))
    p.set_media_sink(reports.append)
    p.feed(call_setup(T0))
    keys = b"".join(stream_key(A4, 4000, B4, 5000, ssrc) for ssrc in range(1, 34))
    stats = rtp_stats(
        base_seq=1, received=9, max_seq=10, flags=7, packets=10, first_ns=S, last_ns=2 * S
    )
    for _ in range(2):
        assert p.media_kernel_sync(keys, stats * 33, T0) == b""
        assert reports == [] and len(p.media_streams()) == 32
    assert p.evictions() == {"rtp_streams.full": 2}
    p.media_flush(T0 + 3 * S)
    assert sorted(r.ssrc for r in reports) == list(range(1, 33))
    assert {(r.final, r.total_expected, r.expected) for r in reports} == {(True, 10, 10)}


def test_kernel_sync_leaves_a_just_inserted_entry() -> None:
    """An entry the filter just inserted (all zero, last_ns 0) is neither idle nor taken."""
    p = Pipeline(PipelineConfig(media=True))
    p.feed(call_setup(T0))
    assert p.media_kernel_sync(stream_key(A4, 4000, B4, 5000, 1), rtp_stats(), T0) == b""
    assert p.media_streams() == []


def test_kernel_sync_a_reused_port_does_not_adopt_the_old_calls_entry() -> None:
    """call-1's stream to B:5000 (1 s .. 5 s) ends with the call (BYE 10 s, linger 3 s); before
    the next sync call-2 learns the same endpoints at 20 s: the old entry (started before
    that) is stale, call-2's own (from 21 s) is taken."""
    p = Pipeline(PipelineConfig(media=True))
    p.feed(call_setup(T0))
    old_key, new_key = stream_key(A4, 4000, B4, 5000, 1), stream_key(A4, 4000, B4, 5000, 2)
    old = rtp_stats(packets=5, first_ns=S, last_ns=5 * S)
    assert p.media_kernel_sync(old_key, old, T0) == b""
    p.feed(bye(T0 + 10 * S))
    p.handle_timer(T0 + 14 * S)
    p.feed(call_setup(T0 + 20 * S, call_id="call-2"))
    new = rtp_stats(packets=1, first_ns=21 * S, last_ns=21 * S)
    assert p.media_kernel_sync(old_key + new_key, old + new, T0) == old_key
    # (no media sink: media_streams() lists call-1's ended stream first)
    got = [(s["ssrc"], s["call_id"]) for s in p.media_streams()]
    assert got == [(1, "call-1"), (2, "call-2")]


def test_period_after_a_resync_takes_every_figure_from_the_restart() -> None:
    """Interval report after the first sync (expected 109 - 10 + 1 = 100, received 95, jitter
    10 samples of 2560); then the kernel entry resynced (resyncs 1, base 500, max 504: expected
    5, received 5) while the jitter sum and samples went on (+2 samples of 5120). The period
    is the restart's: 5 of 5, and the jitter mean over all 12 samples (35840 / 12), not a mix
    of a restarted count with a 2-sample jitter delta (5120)."""
    reports: list[MediaStream] = []
    p = Pipeline(PipelineConfig(media=True, media_interval_ns=S))
    p.set_media_sink(reports.append)
    p.feed(call_setup(T0))
    key = stream_key(A4, 4000, B4, 5000, 1)
    one = dict(flags=7, clock_rate=8000, first_ns=S, packets=96)
    s1 = rtp_stats(
        base_seq=10,
        max_seq=109,
        received=95,
        last_ns=2 * S,
        jitter_sum=25600,
        jitter_samples=10,
        **one,
    )
    p.media_kernel_sync(key, s1, T0)
    p.handle_timer(T0 + 3 * S)
    (r1,) = reports
    assert (r1.packets, r1.received, r1.expected, r1.final) == (96, 95, 100, False)
    s2 = rtp_stats(
        base_seq=500,
        max_seq=504,
        received=5,
        resyncs=1,
        last_ns=4 * S,
        jitter_sum=35840,
        jitter_samples=12,
        **(one | {"packets": 102}),
    )
    p.media_kernel_sync(key, s2, T0)
    p.media_flush(T0 + 5 * S)
    r2 = reports[-1]
    # packets: every packet seen, 102 - 96 (an A.1 resync does not restart it)
    assert (r2.received, r2.expected, r2.lost, r2.packets, r2.final) == (5, 5, 0, 6, True)
    assert r2.jitter_mean_s == pytest.approx(35840 / 12 / 256 / 8000)


def test_kernel_sync_never_names_the_codec_from_cn_or_telephone_event() -> None:
    """B's answer offers PCMU (0), CN (13) and telephone-event (101). The first sync sees the
    stream's last packet as CN, then as telephone-event: no codec yet (media_streams() spells
    it as the SDP does); a later sync with PCMU names it."""
    p = Pipeline(PipelineConfig(media=True))
    p.feed(call_setup(T0))
    answer = (
        "v=0\nc=IN IP4 10.0.0.2\nm=audio 5000 RTP/AVP 0 13 101\na=rtpmap:101 telephone-event/8000\n"
    )
    reinvite = sip(
        "SIP/2.0 200 OK", to_tag="b1", cseq="1 INVITE", branch="z9hG4bK-call-1-1", body=answer
    )
    p.feed([frame(T0 + 150 * MS, B4, A4, 5060, 5060, reinvite)])
    key = stream_key(A4, 4000, B4, 5000, 1)
    for pt, codec in ((13, ""), (101, ""), (0, "PCMU"), (13, "PCMU")):
        p.media_kernel_sync(key, rtp_stats(packets=1, pt=pt, first_ns=S, last_ns=S), T0)
        assert p.media_streams()[0]["codec"] == codec


def test_live_packet_path_never_evicts_a_kernel_stream() -> None:
    """Live (the change queue is on): 32 kernel streams fill the 32 slots; an RTP packet that
    reached userspace for a 33rd SSRC finds no room -- counted ``rtp_streams.full``, no stream
    evicted (no report)."""
    reports: list[MediaStream] = []
    p = Pipeline(PipelineConfig(media=True, media_max_streams=8))
    p.set_media_sink(reports.append)
    p.media_endpoint_changes()
    p.feed(call_setup(T0))
    keys = b"".join(stream_key(A4, 4000, B4, 5000, ssrc) for ssrc in range(1, 33))
    stats = rtp_stats(packets=1, first_ns=S, last_ns=S)
    assert p.media_kernel_sync(keys, stats * 32, T0) == b""
    p.feed([frame(T0 + 2 * S, A4, B4, 4000, 5000, rtp(1, 0, 33))])
    assert reports == [] and len(p.media_streams()) == 32
    assert p.evictions() == {"rtp_streams.full": 1}
