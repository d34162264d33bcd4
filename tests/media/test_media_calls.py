"""Per-call media (so_media_call.c, docs/media.md "Live path and per-call quality"): a call built
by hand, its streams' direction, interval and final reports, the dialog record held until the
call's media ended, table limits and finish(). Expected figures are worked out by hand from
RFC 3550 (A.1 probation and A.3 loss, A.8 jitter in 1/256 timestamp units at 8 kHz)."""

from __future__ import annotations

from typing import Any

import pytest
from callbuild import MS, T0, A, B, S, bye, call_setup, call_setups, frame, rtp, sdp, sip

from sip_otel.pipeline import Pipeline, PipelineConfig
from sip_otel.records import DialogRecord, MediaStream, RegistrationRecord

SSRC_A = 0xA0A0A0A0  # A's stream, to B (the callee)
SSRC_B = 0xB0B0B0B0  # B's stream, to A (the caller)


def j(j256: float) -> float:
    """An A.8 estimate in 1/256 timestamp units at 8 kHz, in seconds."""
    return j256 / 256 / 8000


class Sinks:
    def __init__(self, config: PipelineConfig) -> None:
        self.reports: list[MediaStream] = []
        self.records: list[DialogRecord | RegistrationRecord] = []
        self.p = Pipeline(config, on_record=self.records.append)
        self.p.set_media_sink(self.reports.append)

    def by_ssrc(self, final: bool) -> dict[int, MediaStream]:
        return {r.ssrc: r for r in self.reports if r.final is final}


def rtp_first_second() -> list[Any]:
    """A -> B: sequence 1, 2, 3, 5 (4 lost), 20 ms apart, the last 5 ms late; B -> A: 100-102
    on time."""
    out = []
    for seq, at_ms, ts in ((1, 1000, 0), (2, 1020, 160), (3, 1040, 320), (5, 1085, 640)):
        out.append(frame(T0 + at_ms * MS, A, B, 4000, 5000, rtp(seq, ts, SSRC_A)))
        if seq < 5:
            out.append(frame(T0 + at_ms * MS, B, A, 5000, 4000, rtp(99 + seq, ts, SSRC_B)))
    return out


def test_interval_and_final_reports_and_the_held_record() -> None:
    c = Sinks(PipelineConfig(media=True, media_interval_ns=3 * S))
    c.p.feed(call_setup(T0) + rtp_first_second())
    assert c.reports == []
    # 3 s after the streams started: an interval report each
    c.p.handle_timer(T0 + 4 * S)
    iv = c.by_ssrc(final=False)
    assert set(iv) == {SSRC_A, SSRC_B}
    a = iv[SSRC_A]
    assert (a.call_id, a.direction, a.codec, a.clock_rate) == ("call-1", "to_callee", "pcmu", 8000)
    assert (a.src, a.dst, a.start_ns, a.end_ns) == (
        "10.0.0.1:4000",
        "10.0.0.2:5000",
        T0 + 1000 * MS,
        T0 + 1085 * MS,
    )
    # A.1: sequence 1 only starts probation, 2 makes the source valid (base_seq 2): received
    # 2, 3, 5 = 3, expected 5 - 2 + 1 = 4, lost 1; packets: all 4 seen
    assert (a.packets, a.received, a.expected, a.lost) == (4, 3, 4, 1)
    assert (a.total_packets, a.total_received, a.total_expected, a.total_lost) == (4, 3, 4, 1)
    assert a.total_bytes == 4 * 172 and (a.duplicates, a.reordered, a.pt_changes) == (0, 0, 0)
    # A.8: transit constant for 1, 2, 3 (D 0, J 0); 5 is 5 ms late = 40 units = 640/16: J256
    # = 0 + 640 = 640; three updates, mean 640 / 3
    assert a.jitter_s == pytest.approx(j(640)) and a.jitter_max_s == pytest.approx(j(640))
    assert a.jitter_mean_s == pytest.approx(j(640 / 3))
    assert a.total_jitter_mean_s == pytest.approx(j(640 / 3))
    assert a.max_gap_s == pytest.approx(0.045)
    assert a.final is False and a.rtcp_fraction_lost is None and a.xr_r_factor is None
    b = iv[SSRC_B]
    assert (b.direction, b.dst) == ("to_caller", "10.0.0.1:4000")
    assert (b.packets, b.received, b.expected, b.lost, b.jitter_mean_s) == (3, 2, 2, 0, 0.0)
    # two more packets of A's, on the sender's clock: 6 at 4.100 s (timestamp 3.1 s * 8000 =
    # 24800), 7 at 4.120 s (24960)
    c.p.feed(
        [
            frame(T0 + 4100 * MS, A, B, 4000, 5000, rtp(6, 24800, SSRC_A)),
            frame(T0 + 4120 * MS, A, B, 4000, 5000, rtp(7, 24960, SSRC_A)),
            *bye(T0 + 5500 * MS),
        ]
    )
    # the BYE's 200 (5.6 s) ended the dialog: its record waits for the call's media
    assert c.records == []
    assert len(c.reports) == 2
    # its media ends 3 s (the linger) after the record's end: the next timer after 8.6 s
    c.p.handle_timer(T0 + 9 * S)
    fin = c.by_ssrc(final=True)
    assert set(fin) == {SSRC_A, SSRC_B}
    a = fin[SSRC_A]
    assert (a.direction, a.start_ns, a.end_ns) == ("to_callee", T0 + 1000 * MS, T0 + 4120 * MS)
    # since the interval report: 6 and 7 received (total 5), expected 7 - 2 + 1 = 6 (period 2)
    assert (a.packets, a.received, a.expected, a.lost) == (2, 2, 2, 0)
    assert (a.total_packets, a.total_expected, a.total_lost, a.total_bytes) == (6, 6, 1, 6 * 172)
    assert a.total_received == 5
    # 6: transit back to the baseline, |D| = 640: J256 = 640 - ((640 + 8) >> 4) + 640 = 1240;
    # 7: D 0, J256 = 1240 - ((1240 + 8) >> 4) = 1162. Period mean (1240 + 1162) / 2, total
    # mean (640 + 1240 + 1162) / 5
    assert a.jitter_s == pytest.approx(j(1162)) and a.jitter_max_s == pytest.approx(j(1240))
    assert a.jitter_mean_s == pytest.approx(j(1201))
    assert a.total_jitter_mean_s == pytest.approx(j(3042 / 5))
    assert a.max_gap_s == pytest.approx(3.015) and a.final is True
    b = fin[SSRC_B]
    assert (b.packets, b.expected, b.lost, b.jitter_mean_s) == (0, 0, 0, 0.0)
    assert (b.total_packets, b.total_received, b.total_expected, b.total_lost) == (3, 2, 2, 0)
    (rec,) = c.records
    assert isinstance(rec, DialogRecord)
    assert (rec.call_id, rec.outcome, rec.end_ns) == ("call-1", "completed", T0 + 5600 * MS)
    assert sorted(rec.media, key=lambda m: m.ssrc) == [fin[SSRC_A], fin[SSRC_B]]
    # the call's media is over: its streams and endpoints left the tables
    assert c.p.media_streams() == []
    c.p.feed([frame(T0 + 10 * S, A, B, 4000, 5000, rtp(8, 25120, SSRC_A))])
    assert c.p.reasons.get("skipped.port") == 1


def test_direction_follows_the_sdp_owner_and_a_reinvite_from_the_callee() -> None:
    p = Pipeline(PipelineConfig(media=True))
    frames = call_setup(T0)
    # B (the callee) re-INVITEs: its From tag is b1; A answers (To tag b1 on A's response)
    reinvite = sip(
        "INVITE sip:a@x SIP/2.0",
        from_tag="b1",
        to_tag="a1",
        cseq="7 INVITE",
        branch="z9hG4bK7",
        body=sdp("10.0.0.2", 5002),
    )
    ok = sip(
        "SIP/2.0 200 OK",
        from_tag="b1",
        to_tag="a1",
        cseq="7 INVITE",
        branch="z9hG4bK7",
        body=sdp("10.0.0.1", 4002),
    )
    frames += [
        frame(T0 + S, B, A, 5060, 5060, reinvite),
        frame(T0 + S + 50 * MS, A, B, 5060, 5060, ok),
    ]
    frames += [
        frame(T0 + 2 * S, A, B, 4002, 5002, rtp(1, 0, SSRC_A)),
        frame(T0 + 2 * S, B, A, 5002, 4002, rtp(1, 0, SSRC_B)),
        frame(T0 + 2 * S, A, B, 4000, 5000, rtp(1, 0, 1)),
        frame(T0 + 2 * S, B, A, 5000, 4000, rtp(1, 0, 2)),
    ]
    p.feed(frames)
    got = {(s["dst"], s["dport"]): (s["direction"], s["call_id"]) for s in p.media_streams()}
    assert got == {
        ("10.0.0.2", 5002): ("to_callee", "call-1"),  # B's SDP, in its own re-INVITE
        ("10.0.0.1", 4002): ("to_caller", "call-1"),  # A's, in its response to it
        ("10.0.0.2", 5000): ("to_callee", "call-1"),
        ("10.0.0.1", 4000): ("to_caller", "call-1"),
    }


def test_late_offer_the_2xx_from_is_the_caller() -> None:
    """No SDP in the INVITE: the 200 OK's offer (the callee's) and the ACK's answer (the
    caller's); the response's From tag is the caller's."""
    invite = sip("INVITE sip:b@x SIP/2.0")
    ok = sip("SIP/2.0 200 OK", to_tag="b1", body=sdp("10.0.0.2", 5000))
    ack = sip(
        "ACK sip:b@x SIP/2.0",
        to_tag="b1",
        cseq="1 ACK",
        branch="z9hG4bK2",
        body=sdp("10.0.0.1", 4000),
    )
    p = Pipeline(PipelineConfig(media=True))
    p.feed(
        [
            frame(T0, A, B, 5060, 5060, invite),
            frame(T0 + 100 * MS, B, A, 5060, 5060, ok),
            frame(T0 + 200 * MS, A, B, 5060, 5060, ack),
            frame(T0 + S, A, B, 4000, 5000, rtp(1, 0, SSRC_A)),
            frame(T0 + S, B, A, 5000, 4000, rtp(1, 0, SSRC_B)),
        ]
    )
    got = {s["ssrc"]: s["direction"] for s in p.media_streams()}
    assert got == {SSRC_A: "to_callee", SSRC_B: "to_caller"}


def test_finish_ends_every_call_and_releases_its_record() -> None:
    c = Sinks(PipelineConfig(media=True))
    c.p.feed(call_setup(T0) + rtp_first_second())
    c.p.finish()
    assert sorted(r.ssrc for r in c.reports) == [SSRC_A, SSRC_B]
    assert all(r.final for r in c.reports)
    (rec,) = c.records
    assert isinstance(rec, DialogRecord) and rec.outcome == "open"
    assert sorted(m.ssrc for m in rec.media) == [SSRC_A, SSRC_B]


def test_media_off_records_are_as_before() -> None:
    records: list[DialogRecord | RegistrationRecord] = []
    p = Pipeline(PipelineConfig(), on_record=records.append)
    p.feed(call_setup(T0) + rtp_first_second() + bye(T0 + 5 * S))
    (rec,) = records  # at once, not held
    assert isinstance(rec, DialogRecord) and not rec.media


def test_a_call_without_a_record_sink_still_ends() -> None:
    reports: list[MediaStream] = []
    p = Pipeline(PipelineConfig(media=True))
    p.set_media_sink(reports.append)
    p.feed(call_setup(T0) + rtp_first_second() + bye(T0 + 5 * S))
    p.handle_timer(T0 + 9 * S)
    assert sorted(r.ssrc for r in reports) == [SSRC_A, SSRC_B] and all(r.final for r in reports)


def test_call_table_limit_evicts_the_oldest_call() -> None:
    changes: list[tuple[bytes, bytes]] = []
    p = Pipeline(PipelineConfig(media=True, media_max_calls=8))
    p.media_endpoint_changes()  # a kernel: deletes are queued
    # a limit of 8: 32 slots (twice the limit, at least one probe window), all in one probe
    # window: the 33rd call evicts the first
    p.feed(call_setups(33, "c"))
    changes = p.media_endpoint_changes()
    assert p.evictions() == {"media_calls.full": 1}
    deleted = {key for key, val in changes if val == b""}
    # c0's four endpoints (A 4000/4001, B 5000/5001) were retired
    assert len(deleted) == 4
    p.feed([frame(T0 + 10 * S, A, B, 4000, 5000, rtp(1, 0, SSRC_A))])
    assert p.reasons.get("skipped.port") == 1 and p.media_counts()["rtp_packets"] == 0


def test_idle_streams_endpoints_and_calls_time_out() -> None:
    c = Sinks(PipelineConfig(media=True))
    c.p.feed(call_setup(T0) + rtp_first_second())
    c.p.handle_timer(T0 + 302 * S)  # > 300 s after the last packet and the last SDP
    assert sorted(r.ssrc for r in c.reports if r.final) == [SSRC_A, SSRC_B]
    assert c.p.evictions() == {
        "rtp_streams.timeout": 2,
        "media_endpoints.timeout": 4,
        "media_calls.timeout": 1,
    }
    assert c.p.media_streams() == []


def test_rtcp_xr_voip_metrics_reach_the_report() -> None:
    """The media side of RTCP XR (RFC 3611 4.7) through the test hook: a report as the parser
    fills it. R 127 and MOS 127 mean "unavailable"."""
    c = Sinks(PipelineConfig(media=True))
    c.p.feed(call_setup(T0) + rtp_first_second())
    xr = {
        "ssrc": SSRC_A,
        "loss_rate": 13,
        "discard_rate": 64,
        "round_trip_delay": 120,
        "end_system_delay": 40,
        "r_factor": 80,
        "mos_lq": 41,
        "mos_cq": 127,
    }
    c.p._core._media_rtcp_xr(T0 + 2 * S, [xr])
    c.p.finish()
    a = c.by_ssrc(final=True)[SSRC_A]
    assert (a.xr_r_factor, a.xr_mos_lq, a.xr_mos_cq) == (80, 4.1, None)
    assert a.xr_loss_rate == 13 / 256 and a.xr_discard_rate == 0.25
    assert (a.xr_round_trip_s, a.xr_end_system_delay_s) == (0.12, 0.04)
    assert c.by_ssrc(final=True)[SSRC_B].xr_r_factor is None


def test_rtcp_xr_packet_on_the_wire() -> None:
    """An XR packet (PT 207) with one VoIP metrics block (BT 7, length 8) about A's stream,
    sent to A's RTCP port by B."""
    import struct

    block = struct.pack(
        "!BBHI4B4H4B4BBBHHH",
        7,
        0,
        8,
        SSRC_A,
        13,
        64,
        0,
        0,  # loss, discard, burst density, gap density
        0,
        0,
        120,
        40,  # burst duration, gap duration, round trip, end system delay
        0,
        0,
        127,
        0,  # signal, noise, RERL, Gmin
        80,
        127,
        41,
        127,  # R, ext R, MOS-LQ, MOS-CQ
        0,
        0,
        0,
        0,
        0,  # RX config, reserved, JB nominal, maximum, abs max
    )
    xr = struct.pack("!BBHI", 0x80, 207, (8 + len(block)) // 4 - 1, SSRC_B) + block
    c = Sinks(PipelineConfig(media=True))
    c.p.feed(call_setup(T0) + rtp_first_second() + [frame(T0 + 2 * S, B, A, 5001, 4001, xr)])
    c.p.finish()
    a = c.by_ssrc(final=True)[SSRC_A]
    assert (a.xr_r_factor, a.xr_mos_lq, a.xr_mos_cq) == (80, 4.1, None)


def test_forked_dialogs_the_call_ends_with_the_last_one() -> None:
    """Two 2xx with different To tags confirm two dialogs of one INVITE; the caller hangs up
    the second at once (the usual answer to a forked 2xx) and talks on the first: the call's
    media ends after the last dialog's record, and both records carry it."""
    c = Sinks(PipelineConfig(media=True))
    frames = call_setup(T0)
    ok2 = sip("SIP/2.0 200 OK", to_tag="b2", branch="z9hG4bK-call-1-1", body=sdp("10.0.0.2", 5100))
    frames.append(frame(T0 + 150 * MS, B, A, 5060, 5060, ok2))
    frames += [
        frame(
            T0 + 300 * MS,
            A,
            B,
            5060,
            5060,
            sip("BYE sip:b@x SIP/2.0", to_tag="b2", cseq="2 BYE", branch="z9hG4bK5"),
        ),
        frame(
            T0 + 400 * MS,
            B,
            A,
            5060,
            5060,
            sip("SIP/2.0 200 OK", to_tag="b2", cseq="2 BYE", branch="z9hG4bK5"),
        ),
    ]
    c.p.feed(frames + rtp_first_second())
    c.p.handle_timer(T0 + 6 * S)  # 5.6 s after the second dialog ended: the call goes on
    assert [r for r in c.reports if r.final] == []
    assert c.records == []  # the b2 dialog's record is held
    c.p.feed(bye(T0 + 10 * S, call_id="call-1"))
    c.p.handle_timer(T0 + 14 * S)
    assert sorted(r.ssrc for r in c.reports if r.final) == [SSRC_A, SSRC_B]
    assert sorted(r.to_tag for r in c.records if isinstance(r, DialogRecord)) == ["b1", "b2"]
    for rec in c.records:
        assert isinstance(rec, DialogRecord)
        assert sorted(m.ssrc for m in rec.media) == [SSRC_A, SSRC_B]


def test_held_records_are_bounded() -> None:
    """At most media_max_calls records wait for their media (here 1; the call table itself
    rounds up to 8): the second leaves at once, without media, counted."""
    c = Sinks(PipelineConfig(media=True, media_max_calls=1))
    frames = call_setup(T0, call_id="c0") + call_setup(T0, call_id="c1", a_port=4100, b_port=5100)
    c.p.feed(frames + bye(T0 + 5 * S, call_id="c0") + bye(T0 + 6 * S, call_id="c1"))
    (rec,) = c.records
    assert isinstance(rec, DialogRecord) and rec.call_id == "c1" and not rec.media
    assert c.p.evictions() == {"media_records.full": 1}
    c.p.handle_timer(T0 + 10 * S)
    assert [r.call_id for r in c.records] == ["c1", "c0"]


def test_media_flush_ends_the_media_and_releases_held_records() -> None:
    """Shutdown (agent): the BYE ended the dialog (record held for its media, linger 3 s); a
    flush 1 s later ends the media now: a final report per stream, the record with them, and
    the tracker is not finished (a second call still open gives no record)."""
    c = Sinks(PipelineConfig(media=True))
    frames = call_setup(T0) + rtp_first_second() + bye(T0 + 5 * S)
    frames += call_setup(T0 + 5 * S, call_id="call-2", a_port=4100, b_port=5100)
    c.p.feed(frames)
    assert c.records == [] and c.reports == []
    c.p.media_flush(T0 + 6 * S)
    fin = c.by_ssrc(final=True)
    assert set(fin) == {SSRC_A, SSRC_B} and len(c.reports) == 2
    (rec,) = c.records
    assert isinstance(rec, DialogRecord) and rec.call_id == "call-1"
    assert sorted(rec.media, key=lambda m: m.ssrc) == [fin[SSRC_A], fin[SSRC_B]]


@pytest.mark.parametrize("retry_sdp", [True, False])
def test_a_retry_of_the_call_id_keeps_its_media(retry_sdp: bool) -> None:
    """INVITE (offer A:4000) -> 503 -> ACK at 0-0.2 s; the retry (same Call-ID, CSeq 2, new
    branch; with the offer again, or late offer: offer in the 200, answer in the ACK) rings
    until the 200 at 10 s. The failed attempt's end must not end the call's media 3 s later:
    B -> A (early media, then the call) one packet a second from 4 s to 12 s is one stream,
    A -> B from 10.5 s; both are in the final reports and the records after the BYE."""
    c = Sinks(PipelineConfig(media=True))
    br = "z9hG4bK-r"
    offer = sdp("10.0.0.1", 4000)
    frames = [
        frame(T0, A, B, 5060, 5060, sip("INVITE sip:b@x SIP/2.0", branch=br + "1", body=offer)),
        frame(
            T0 + 100 * MS, B, A, 5060, 5060, sip("SIP/2.0 503 Busy", to_tag="x9", branch=br + "1")
        ),
        frame(
            T0 + 200 * MS,
            A,
            B,
            5060,
            5060,
            sip("ACK sip:b@x SIP/2.0", to_tag="x9", cseq="1 ACK", branch=br + "1"),
        ),
        frame(
            T0 + 300 * MS,
            A,
            B,
            5060,
            5060,
            sip(
                "INVITE sip:b@x SIP/2.0",
                cseq="2 INVITE",
                branch=br + "2",
                body=offer if retry_sdp else "",
            ),
        ),
        frame(
            T0 + 400 * MS,
            B,
            A,
            5060,
            5060,
            sip("SIP/2.0 180 Ringing", to_tag="b1", cseq="2 INVITE", branch=br + "2"),
        ),
    ]
    ssrc_early = 0xB1B1B1B1
    for i in range(9):  # B -> A at 4 .. 12 s
        frames.append(frame(T0 + (4 + i) * S, B, A, 5000, 4000, rtp(1 + i, 8000 * i, ssrc_early)))
    frames.append(
        frame(
            T0 + 10 * S + 50 * MS,
            B,
            A,
            5060,
            5060,
            sip(
                "SIP/2.0 200 OK",
                to_tag="b1",
                cseq="2 INVITE",
                branch=br + "2",
                body=sdp("10.0.0.2", 5000),
            ),
        )
    )
    frames.append(
        frame(
            T0 + 10 * S + 100 * MS,
            A,
            B,
            5060,
            5060,
            sip(
                "ACK sip:b@x SIP/2.0",
                to_tag="b1",
                cseq="2 ACK",
                branch=br + "3",
                body="" if retry_sdp else offer,
            ),
        )
    )
    for i in range(3):  # A -> B at 10.5 .. 12.5 s
        frames.append(
            frame(T0 + 10500 * MS + i * S, A, B, 4000, 5000, rtp(1 + i, 8000 * i, SSRC_A))
        )
    frames.sort(key=lambda f: f.ts_ns)
    c.p.feed(frames)
    assert [r for r in c.reports if r.final] == []
    c.p.feed(bye(T0 + 20 * S))
    c.p.handle_timer(T0 + 25 * S)
    fin = c.by_ssrc(final=True)
    assert set(fin) == {ssrc_early, SSRC_A}
    assert (fin[ssrc_early].start_ns, fin[ssrc_early].end_ns) == (T0 + 4 * S, T0 + 12 * S)
    assert fin[ssrc_early].direction == "to_caller" and fin[SSRC_A].direction == "to_callee"
    assert len([r for r in c.reports if r.final]) == 2
    recs = [r for r in c.records if isinstance(r, DialogRecord)]
    answered = [r for r in recs if r.outcome == "completed"]
    assert len(answered) == 1
    assert sorted(m.ssrc for m in answered[0].media) == sorted([ssrc_early, SSRC_A])


def test_the_caller_is_the_first_initial_invites_from() -> None:
    """An INVITE without To tag from B (From tag b9) in A's call does not make B the caller:
    B's endpoint it announces receives a stream to the callee."""
    p = Pipeline(PipelineConfig(media=True))
    inv_a = sip("INVITE sip:b@x SIP/2.0", branch="z9hG4bKa", body=sdp("10.0.0.1", 4000))
    inv_b = sip(
        "INVITE sip:a@x SIP/2.0",
        from_tag="b9",
        cseq="7 INVITE",
        branch="z9hG4bKb",
        body=sdp("10.0.0.2", 5000),
    )
    p.feed(
        [
            frame(T0, A, B, 5060, 5060, inv_a),
            frame(T0 + 10 * MS, B, A, 5060, 5060, inv_b),
            frame(T0 + S, A, B, 4000, 5000, rtp(1, 0, SSRC_A)),
        ]
    )
    assert [s["direction"] for s in p.media_streams()] == ["to_callee"]


def test_the_record_waits_for_the_call_and_has_streams_that_ended_before() -> None:
    """A limit of 8 streams: 32 slots, one probe window. A sends 33 SSRCs at 1 s (10 ms apart):
    the 33rd evicts the first (its final report). The BYE at 5 s ends the dialog (record held);
    a 34th SSRC at 6 s evicts the second: a stream ended, not the call -- the record still
    waits. The call's media ends at 8.6 s: the record has all 34 final reports."""
    c = Sinks(PipelineConfig(media=True, media_max_streams=8))
    frames = call_setup(T0)
    for i in range(33):
        frames.append(frame(T0 + S + i * 10 * MS, A, B, 4000, 5000, rtp(1, 0, 1 + i)))
    c.p.feed(frames + bye(T0 + 5 * S))
    c.p.feed([frame(T0 + 6 * S, A, B, 4000, 5000, rtp(1, 0, 34))])
    assert [r.ssrc for r in c.reports if r.final] == [1, 2]
    assert c.records == []
    c.p.handle_timer(T0 + 9 * S)
    (rec,) = c.records
    assert isinstance(rec, DialogRecord)
    assert sorted(m.ssrc for m in rec.media) == list(range(1, 35))


def test_replay_names_the_codec_from_the_first_audio_payload_type() -> None:
    """A's stream starts with comfort noise (PT 13), then PCMU: the codec is pcmu."""
    c = Sinks(PipelineConfig(media=True))
    answer = "v=0\nc=IN IP4 10.0.0.2\nm=audio 5000 RTP/AVP 0 13\n"
    frames = call_setup(T0)
    frames[1] = frame(
        T0 + 100 * MS,
        B,
        A,
        5060,
        5060,
        sip("SIP/2.0 200 OK", to_tag="b1", branch="z9hG4bK-call-1-1", body=answer),
    )
    frames += [
        frame(T0 + S, A, B, 4000, 5000, rtp(1, 0, SSRC_A, pt=13)),
        frame(T0 + S + 20 * MS, A, B, 4000, 5000, rtp(2, 160, SSRC_A)),
    ]
    c.p.feed(frames)
    c.p.finish()
    (r,) = c.reports
    assert (r.codec, r.clock_rate) == ("pcmu", 8000)


def test_rtcp_on_rtp_ports_as_the_kernel_decides() -> None:
    """B's answer multiplexes RTCP (a=rtcp-mux): an empty RR (8 bytes: V=2, PT 201, length 1,
    SSRC) to B:5000 is RTCP. A's offer does not: a packet to A:4000 whose second byte is 200
    (marker + payload type 72) is RTP, as the eBPF filter takes it."""
    import struct

    c = Sinks(PipelineConfig(media=True))
    frames = call_setup(T0)
    answer = sdp("10.0.0.2", 5000, "a=rtcp-mux\n")
    frames[1] = frame(
        T0 + 100 * MS,
        B,
        A,
        5060,
        5060,
        sip("SIP/2.0 200 OK", to_tag="b1", branch="z9hG4bK-call-1-1", body=answer),
    )
    rr = struct.pack("!BBHI", 0x80, 201, 1, SSRC_A)
    frames += [
        frame(T0 + S, A, B, 4000, 5000, rr),
        frame(T0 + S, B, A, 5000, 4000, rtp(1, 0, SSRC_B, pt=200)),
    ]
    c.p.feed(frames)
    assert c.p.media_counts()["rtcp_packets"] == 1 and c.p.media_counts()["rtp_packets"] == 1
    assert c.p.reasons.get("rtp.not_rtp") == 0
    assert [s["ssrc"] for s in c.p.media_streams()] == [SSRC_B]
