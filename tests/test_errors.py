"""The error taxonomy's names (errors.py, so_reasons.h): one naming rule for every eviction.

Issue 11, row 7: evictions were ``*.full`` in sip/ but ``*.capacity`` in net/. Every eviction
slug is now ``<table>.<why>`` with ``why`` one of three words, and each is documented.
"""

from __future__ import annotations

import re
from pathlib import Path

from sip_otel import _core
from sip_otel.capture.ebpf import KERNEL_EVICTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"
WHY = ("full", "timeout", "memory")  # count limit, idle/timer expiry, the byte budget


# Evictions counted outside the core: the eBPF filter's media maps (capture/ebpf.py).
SLUGS = (*_core.EVICTION_SLUGS, *KERNEL_EVICTIONS)


def test_every_eviction_is_table_dot_one_of_three_reasons() -> None:
    assert _core.EVICTION_SLUGS
    for slug in SLUGS:
        assert re.fullmatch(r"[a-z][a-z_]*\.(full|timeout|memory)", slug), slug
    assert len(set(SLUGS)) == len(SLUGS)


def test_every_eviction_is_documented_in_metrics_md() -> None:
    text = (DOCS / "metrics.md").read_text()
    missing = [s for s in SLUGS if f"`{s}`" not in text]
    assert not missing, f"docs/metrics.md does not list {missing}"
