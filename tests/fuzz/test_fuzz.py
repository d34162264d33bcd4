"""Fuzzing in the suite: every saved finding replayed on the normal build, and a short
sanitizer run (fuzz_run.py, docs/fuzzing.md) that must find nothing.

The short run builds the ASan/UBSan variant into build/fuzz (a few minutes the first time, then
reused while the sources do not change) and runs 20,000 inputs: 0 crashes, 0 sanitizer
reports, 0 Python exceptions and no ``internal.*`` count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Totals, run_one  # noqa: E402

REGRESSIONS = sorted((HERE / "regressions").glob("*"))
SHORT_RUNS = 20_000


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name[:20] for p in REGRESSIONS])
def test_saved_finding_runs_clean(path: Path) -> None:
    totals = Totals()
    run_one(path.read_bytes(), totals)
    assert totals.inputs == 1
    assert totals.internal() == {}


def _fuzz_tools() -> str | None:
    for tool in ("clang", "llvm-profdata", "ar"):
        if shutil.which(tool) is None:
            return tool
    return None


@pytest.mark.slow
@pytest.mark.skipif(_fuzz_tools() is not None, reason=f"{_fuzz_tools()} not installed")
def test_short_sanitizer_run_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(HERE / "fuzz_run.py"), "-n", str(SHORT_RUNS), "--coverage",
           "--no-save", "--work", str(tmp_path / "work"), "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=1800)
    assert out.exists(), proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    report = proc.stdout[-4000:]
    assert r["crashes"] == 0, report
    assert r["sanitizer_reports"] == {"asan": 0, "ubsan": 0, "libfuzzer": 0}, report
    assert r["python_exceptions"] == {}, report
    assert r["internal"] == {}, report
    assert r["exit_status"] == 0, report
    assert r["inputs"] >= SHORT_RUNS // 2, report  # libFuzzer's runs include the seeds' reads
    assert r["sip_messages"] > 0 and r["frames"] > 0, report
