"""Golden outputs: ``sip-otel replay`` prints exactly what it printed before the compiled core.

``tests/golden/*.json.gz`` hold the json, text and prometheus outputs of every corpus capture in
three modes (default ports, ``--all-ports``, ``--all-ports --challenge-retry-new-attempt``),
recorded by ``tests/golden/record.py`` from main at c3d3720 (the pure-Python pipeline) with
only issue 8's two corrections applied: methods are case-sensitive (RFC 3261 §7.1) and a forked
2xx whose early dialog already has its SRD adds no second one (RFC 6076 §4.3.1, §5.4). Timing
fields are removed before comparing (``record.normalise``).
"""

from __future__ import annotations

import difflib
import gzip
import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import record  # noqa: E402  (tests/golden/record.py)

CAPTURES = record.captures()
pytestmark = pytest.mark.skipif(
    not CAPTURES, reason=f"capture corpus {record.SHARED_PCAPS} is absent"
)


def _golden(fmt: str) -> dict[str, str]:
    with gzip.open(GOLDEN / f"{fmt}.json.gz") as fh:
        data: dict[str, str] = json.loads(fh.read())
    return data


@pytest.mark.parametrize("fmt", record.FORMATS)
@pytest.mark.parametrize("mode", list(record.MODES))
def test_replay_outputs_unchanged(fmt: str, mode: str) -> None:
    golden = _golden(fmt)
    mismatched: list[str] = []
    first_diff = ""
    for path in CAPTURES:
        key = f"{mode}/{path.name}"
        got = record.replay(path, fmt, record.MODES[mode])
        want = golden.get(key)
        if fmt == "text" and want is not None:
            want = record.mask_delays(want)
        if got != want:
            mismatched.append(path.name)
            if not first_diff:
                first_diff = "\n".join(
                    difflib.unified_diff(
                        (want or "").splitlines(),
                        got.splitlines(),
                        key,
                        "now",
                        lineterm="",
                        n=1,
                    )
                )[:4000]
    assert not mismatched, f"{len(mismatched)} outputs differ: {mismatched}\n{first_diff}"


def test_every_capture_has_a_golden_output() -> None:
    keys = set(_golden("json"))
    want = {f"{mode}/{p.name}" for mode in record.MODES for p in CAPTURES}
    assert want == keys
