"""Per-report and per-call quality (src/sip_otel/media/quality.py). Expected R and MOS are worked
out from the G.107 formulas written out in emodel.py's docstring:

    R = 93.2 - Ie,eff          (no delay: Id = 0)
    Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl + Bpl)     (random loss, BurstR 1)
    MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6

with G.113 Appendix I values: G.711 + PLC Ie 0, Bpl 25.1; G.729A Ie 11, Bpl 19.0."""

from __future__ import annotations

import dataclasses

import pytest

from mediastreams import media_stream
from sip_otel.media.quality import (
    CODEC_LABELS,
    DIRECTIONS,
    call_quality,
    codec_label,
    direction_label,
    is_audio,
    period_quality,
    stream_quality,
)
from sip_otel.records import MediaStream


def g107_mos(r: float) -> float:
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def stream(**kw: object) -> MediaStream:
    """A PCMU stream to the callee: 1000 packets, none lost, over the whole stream."""
    return media_stream(**kw)


def test_labels_are_bounded() -> None:
    assert CODEC_LABELS == ("pcmu", "pcma", "g729", "g722", "opus", "other")
    assert codec_label("PCMA") == "pcma"
    assert codec_label("opus") == "opus"
    assert codec_label("telephone-event") == "other"
    assert codec_label("") == "other"
    assert codec_label("x" * 500) == "other"
    assert DIRECTIONS == ("to_caller", "to_callee", "unknown")
    assert direction_label("to_caller") == "to_caller"
    assert direction_label("sideways") == "unknown"


def test_audio_is_a_known_clock_below_the_video_clock() -> None:
    assert is_audio(stream(clock_rate=8000))
    assert is_audio(stream(clock_rate=48000, codec="opus"))
    assert not is_audio(stream(clock_rate=90000, codec="h264"))
    assert not is_audio(stream(clock_rate=0, codec="pcmu"))


def test_period_without_loss() -> None:
    q = period_quality(stream())
    assert q.loss_ratio == 0.0
    assert q.jitter_s == 0.001
    assert q.r == pytest.approx(93.2)
    assert q.mos == pytest.approx(4.409285824)  # G.107's reference point, 4.41


def test_period_loss_is_the_period_figures() -> None:
    # 50 of 1000 lost in the period (5 %), whatever the whole stream says
    q = period_quality(stream(packets=950, expected=1000, lost=50, total_lost=0))
    assert q.loss_ratio == pytest.approx(0.05)
    r = 93.2 - 95 * 5 / (5 + 25.1)  # 93.2 - 15.780730897 = 77.419269103
    assert q.r == pytest.approx(r)
    assert q.mos == pytest.approx(g107_mos(r))
    # 1 + 2.709674 + 77.419269 * 17.419269 * 22.580731 * 7e-6 (= 0.213165) = 3.922839
    assert g107_mos(r) == pytest.approx(3.922839, abs=1e-6)


def test_period_g729() -> None:
    q = period_quality(stream(codec="G729"))
    assert q.r == pytest.approx(82.2)
    assert q.mos == pytest.approx(4.104375064)
    # 5 %: 11 + 84 * 5 / (5 + 19) = 28.5
    assert period_quality(stream(codec="g729", packets=95, expected=100, lost=5)).r == (
        pytest.approx(64.7)
    )


def test_nothing_expected_is_no_loss_and_video_has_no_mos() -> None:
    q = period_quality(stream(packets=0, expected=0, lost=0))
    assert q.loss_ratio == 0.0
    q = period_quality(stream(codec="h264", clock_rate=90000, packets=90, expected=100, lost=10))
    assert q.loss_ratio == pytest.approx(0.1)
    assert q.r is None and q.mos is None


def test_whole_stream_figures() -> None:
    q = stream_quality(stream(packets=10, expected=10, total_expected=1000, total_lost=20))
    assert q.loss_ratio == pytest.approx(0.02)
    r = 93.2 - 95 * 2 / (2 + 25.1)
    assert q.mos == pytest.approx(g107_mos(r))


def test_call_quality_per_direction() -> None:
    reports = [
        # to the callee: two PCMA streams (an SSRC change) and a video stream that is ignored
        stream(
            codec="pcma",
            ssrc=1,
            total_packets=900,
            total_expected=1000,
            total_lost=100,
            total_jitter_mean_s=0.002,
            jitter_max_s=0.010,
            rtt_s=0.040,
        ),
        stream(
            codec="pcma",
            ssrc=2,
            total_packets=100,
            total_expected=100,
            total_lost=0,
            total_jitter_mean_s=0.012,
            jitter_max_s=0.030,
            rtt_s=0.060,
            xr_mos_lq=3.9,
        ),
        stream(
            codec="h264",
            clock_rate=90000,
            ssrc=3,
            total_packets=5000,
            total_expected=6000,
            total_lost=1000,
            jitter_max_s=0.5,
        ),
        # to the caller: G.729 without loss
        stream(direction="to_caller", codec="g729", ssrc=4, total_packets=500, total_expected=500),
        # an unknown role
        stream(direction="?", ssrc=5, total_packets=10, total_expected=10),
    ]
    dirs = call_quality(reports)
    assert [q.direction for q in dirs] == ["to_caller", "to_callee", "unknown"]
    caller, callee, unknown = dirs

    assert callee.codec == "pcma"
    assert callee.streams == 2
    assert (callee.packets, callee.expected, callee.lost) == (1000, 1100, 100)
    assert callee.loss_ratio == pytest.approx(100 / 1100)
    # packet-weighted: (0.002 * 900 + 0.012 * 100) / 1000 = 0.003
    assert callee.jitter_mean_s == pytest.approx(0.003)
    assert callee.jitter_max_s == pytest.approx(0.030)
    ppl = 100 * 100 / 1100  # 9.0909 %
    r = 93.2 - 95 * ppl / (ppl + 25.1)
    assert callee.r == pytest.approx(r)
    assert callee.mos == pytest.approx(g107_mos(r))
    assert callee.rtt_s == pytest.approx(0.060)
    assert callee.xr_mos_lq == pytest.approx(3.9)

    assert caller.codec == "g729"
    assert caller.r == pytest.approx(82.2)
    assert caller.rtt_s is None and caller.xr_mos_lq is None
    assert unknown.packets == 10


def test_codec_is_the_stream_with_most_packets_and_video_only_has_no_mos() -> None:
    dirs = call_quality(
        [
            stream(codec="pcmu", total_packets=10),
            stream(codec="g722", ssrc=2, total_packets=20, total_expected=20),
        ]
    )
    assert dirs[0].codec == "g722"
    video = call_quality(
        [stream(codec="vp8", clock_rate=90000, total_packets=10, total_expected=12, total_lost=2)]
    )
    assert video[0].mos is None and video[0].r is None
    assert video[0].loss_ratio == pytest.approx(2 / 12)
    assert call_quality([]) == []


def test_negative_loss_is_no_loss() -> None:
    # duplicates make RFC 3550 A.3's lost negative; the core clamps, and so do we
    rep = dataclasses.replace(stream(), lost=-3, total_lost=-3)
    assert period_quality(rep).loss_ratio == 0.0
    assert call_quality([rep])[0].lost == 0
