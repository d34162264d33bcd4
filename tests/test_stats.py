"""Plain-Python aggregates: histogram buckets (Prometheus le semantics), quantiles, ratios."""

from __future__ import annotations

import pytest

from sip_otel.stats import Histogram, Rfc6076Counters, ratio


def test_bucket_le_semantics() -> None:
    h = Histogram((1.0, 2.0))
    for v in (0.5, 1.0, 1.5, 2.0, 3.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap.counts == (2, 2, 1)  # <=1: 0.5, 1.0; <=2: 1.5, 2.0; +Inf: 3.0
    assert snap.count == 5 and snap.total == pytest.approx(8.0)


def test_quantile_one_sample_is_that_sample() -> None:
    h = Histogram((1.0, 2.0, 3.0))
    h.observe(2.1)
    assert h.quantile(0.5) == pytest.approx(2.1)
    assert h.quantile(0.95) == pytest.approx(2.1)
    assert h.mean() == pytest.approx(2.1)


def test_quantile_interpolates_within_bucket() -> None:
    h = Histogram((1.0, 2.0))
    for v in (1.2, 1.4, 1.6, 1.8):  # all in (1, 2]; min 1.2, max 1.8
        h.observe(v)
    # rank 2 of 4 in the bucket narrowed to [1.2, 1.8] -> halfway
    assert h.quantile(0.5) == pytest.approx(1.5)


def test_empty_histogram() -> None:
    h = Histogram((1.0,))
    assert h.quantile(0.5) is None and h.mean() is None


def test_ratio_undefined_is_none_never_zero() -> None:
    assert ratio(0, 0) is None
    assert ratio(0, 4) == 0.0
    c = Rfc6076Counters()
    assert (c.ser(), c.seer(), c.isa(), c.scr(), c.ira()) == (None,) * 5
    c.invite_attempts, c.invite_3xx = 2, 2  # every INVITE redirected: SER undefined
    assert c.ser() is None and c.isa() == 0.0
