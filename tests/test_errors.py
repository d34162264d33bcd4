"""The error taxonomy's names (errors.py, so_reasons.h): one naming rule for every eviction.

Issue 11, row 7: evictions were ``*.full`` in sip/ but ``*.capacity`` in net/. Every eviction
slug is now ``<table>.<why>`` with ``why`` one of three words, and each is documented.
"""

from __future__ import annotations

import re
from pathlib import Path

from sip_otel import _core

DOCS = Path(__file__).resolve().parent.parent / "docs"
WHY = ("full", "timeout", "memory")  # count limit, idle/timer expiry, the byte budget


def test_every_eviction_is_table_dot_one_of_three_reasons() -> None:
    assert _core.EVICTION_SLUGS
    for slug in _core.EVICTION_SLUGS:
        assert re.fullmatch(r"[a-z][a-z_]*\.(full|timeout|memory)", slug), slug
    assert len(set(_core.EVICTION_SLUGS)) == len(_core.EVICTION_SLUGS)


def test_every_eviction_is_documented_in_metrics_md() -> None:
    text = (DOCS / "metrics.md").read_text()
    missing = [s for s in _core.EVICTION_SLUGS if f"`{s}`" not in text]
    assert not missing, f"docs/metrics.md does not list {missing}"
