"""The pcap-file mutator (pcap_mutator.py, docs/fuzzing.md): its contract check, and a short run
of mutated files through ``sip-otel replay`` (exit 0 or 1, at most one line, nothing else)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pcap_mutator import check, run, synthetic_seeds  # noqa: E402

SHORT_RUN = 50


def _proc(code: int, stderr: str = "", stdout: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["sip-otel"], code, stdout, stderr)


def test_contract() -> None:
    assert check(_proc(0, stdout='{"frames": 1}')) is None
    assert check(_proc(1, "sip-otel: x: corrupt block at offset 28\n", '{"frames": 0}')) is None
    hint = "sip-otel: no SIP messages on ports 5060, but 3 UDP/TCP packets on other ports\n"
    assert check(_proc(0, hint)) is None
    assert check(_proc(1, "sip-otel: x: empty file, not a capture\n" + hint)) is None
    assert check(_proc(-7)) == "killed by signal 7"
    assert check(_proc(2, "usage: ...\n")) == "exit status 2"
    assert check(_proc(1, "Traceback (most recent call last):\n")) == "traceback on stderr"
    assert check(_proc(1, "sip-otel: a\nsip-otel: b\n")) == "2 error lines"
    assert check(_proc(1)) == "exit 1 without an error line"
    assert check(_proc(0, "sip-otel: x: corrupt\n")) == "exit 0 with an error line"
    assert check(_proc(1, "oops\n")) == "a stderr line not from sip-otel"
    assert check(_proc(0, stdout="{")) == "stdout is not one JSON summary"


def test_synthetic_seeds_replay_clean(tmp_path: Path) -> None:
    from sip_otel.capture.pcapfile import PcapReader

    for i, data in enumerate(synthetic_seeds()):
        path = tmp_path / f"s{i}.pcap"
        path.write_bytes(data)
        with PcapReader(str(path)) as reader:
            assert sum(len(b) for b in reader.batches()) > 0
            assert reader.timestamp_range == 0


@pytest.mark.slow
def test_short_mutator_run(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    result = run(SHORT_RUN, 7, 2, 60.0, 16 * 1024, tmp_path / "failures", work)
    assert result.files == SHORT_RUN
    assert not result.failures, result.failures
    assert result.exits[0] + result.exits[1] == SHORT_RUN
