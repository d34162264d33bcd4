"""MediaAggregates (telemetry/mediastats.py): what one media report adds, by hand."""

from __future__ import annotations

import dataclasses

import pytest

from mediastreams import media_stream
from sip_otel.telemetry.mediastats import (
    JITTER_BUCKETS_S,
    LOSS_BUCKETS,
    MOS_BUCKETS,
    MediaAggregates,
)

BASE = media_stream(
    direction="to_caller",
    codec="PCMA",
    ssrc=7,
    src="192.0.2.20:5000",
    dst="192.0.2.10:4000",
    start_ns=0,
    end_ns=60_000_000_000,
    final=False,
    packets=3000,
    expected=3000,
    jitter_mean_s=0.0005,
    total_packets=3000,
    total_expected=3000,
    total_bytes=516_000,
    jitter_s=0.0005,
    jitter_max_s=0.001,
    total_jitter_mean_s=0.0005,
    max_gap_s=0.02,
)
KEY = ("pcma", "to_caller")


def test_bounds_are_sorted() -> None:
    for bounds in (MOS_BUCKETS, JITTER_BUCKETS_S, LOSS_BUCKETS):
        assert list(bounds) == sorted(set(bounds))


def test_an_interval_report_without_loss() -> None:
    m = MediaAggregates()
    m.observe(BASE)
    assert m.reports == 1
    assert m.streams == {}  # not final: the stream goes on
    assert m.packets == {KEY: 3000} and m.lost == {KEY: 0}
    # loss 0 -> the le=0 bucket; jitter 0.5 ms -> le=0.001; MOS 4.41 (R 93.2) -> (4.4, 4.5]
    assert m.loss[KEY].counts[0] == 1
    assert m.jitter[KEY].counts[0] == 1
    assert m.mos[KEY].counts[MOS_BUCKETS.index(4.5)] == 1
    assert m.mos[KEY].total == pytest.approx(4.409285824)


def test_a_final_report_counts_the_stream_and_its_period() -> None:
    m = MediaAggregates()
    m.observe(dataclasses.replace(BASE, final=True, packets=900, expected=1000, lost=100))
    assert m.streams == {KEY: 1}
    assert m.packets == {KEY: 900} and m.lost == {KEY: 100}
    assert m.loss[KEY].total == pytest.approx(0.1)
    assert m.loss[KEY].counts[LOSS_BUCKETS.index(0.1)] == 1  # le semantics: 0.1 in (0.05, 0.1]


def test_on_hold_unknown_clock_and_video() -> None:
    m = MediaAggregates()
    # nothing expected in the period: counted as a stream, no histogram sample
    m.observe(dataclasses.replace(BASE, final=True, packets=0, expected=0))
    assert m.streams == {KEY: 1} and not m.loss and not m.jitter and not m.mos
    # unknown clock rate: loss only (no jitter, not rated as audio)
    m.observe(dataclasses.replace(BASE, codec="x-new", clock_rate=0))
    assert ("other", "to_caller") in m.loss
    assert ("other", "to_caller") not in m.jitter and ("other", "to_caller") not in m.mos
    # video: loss and jitter, no MOS
    m.observe(dataclasses.replace(BASE, codec="VP8", clock_rate=90000, direction="x"))
    assert ("other", "unknown") in m.jitter and ("other", "unknown") not in m.mos
    assert len(m.packets) == 3 and m.reports == 3
