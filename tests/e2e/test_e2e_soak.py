"""A short soak (benchmarks/soak.py): SIPp calls for 20 s on the eBPF path; SIPp's own counts and
the agent's counters agree exactly and nothing is dropped. No memory threshold here (that is the
10-minute run's, docs/reliability.md); the RSS samples are only checked to exist."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from e2ehelpers import e2e_skip_reason
from livenet import live_skip_reason

pytestmark = [pytest.mark.live, pytest.mark.slow]

_reason = e2e_skip_reason() or live_skip_reason(need_bcc=True)
if _reason:
    pytest.skip(_reason, allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from soak import soak  # noqa: E402

RATE, DURATION_S = 100, 20


def test_short_soak_counts_exact_and_no_drops() -> None:
    res = soak(RATE, DURATION_S, hold_ms=100, warmup_s=5, sample_s=1)
    assert res.sipp["created"] == RATE * DURATION_S, res.report()
    assert res.sipp["successful"] == RATE * DURATION_S, res.report()
    assert res.mismatches() == [], res.report()
    assert res.agent["sip_exporter_invite_total"] == RATE * DURATION_S
    assert res.agent["sip_exporter_bye_total"] == RATE * DURATION_S
    assert res.agent["sip_exporter_200_total"] == 2 * RATE * DURATION_S
    assert res.agent["capture_drops"] == 0
    assert len(res.samples) >= DURATION_S // 2 and res.rss_warm_kib > 0
