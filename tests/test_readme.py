"""The README's five-minute tour, run as written (the shell block between the ``tour:begin`` and
``tour:end`` markers) inside a private network namespace: its loopback stands for the host's.
The expected figures are the tour's own: ten calls, all answered 200, ten spans."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "capture"))

from livenet import NetNs, live_skip_reason  # noqa: E402


def tour_block() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- tour:begin[^>]*-->\n```sh\n(.*?)```\n<!-- tour:end -->", text, re.S)
    assert match, "README has no tour block"
    return match.group(1)


def _skip_reason() -> str | None:
    reason = live_skip_reason(need_bcc=False)
    if reason:
        return reason
    for tool in ("sipp", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    try:
        import rotel  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "rotel not installed (test extra)"
    return None


def test_tour_block_is_self_contained() -> None:
    block = tour_block()
    assert "pkill" not in block and "killall" not in block  # stops only what it started
    for started in ("receiver=$!", "agent=$!", "uas=$!"):
        assert started in block


@pytest.mark.live
@pytest.mark.slow
def test_tour_runs_as_written(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    script = tmp_path / "tour.sh"
    script.write_text("set -eu\n" + tour_block())
    ns = NetNs("t")
    try:
        proc = subprocess.run(
            [*ns.exec_prefix(), "env", f"TMPDIR={tmp_path}", "bash", str(script)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=180,
        )
    finally:
        ns.close()
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr + (tmp_path / "tour-agent.log").read_text()
    lines = out.splitlines()
    for want in (
        "sip_exporter_invite_total 10.0",
        "sip_exporter_bye_total 10.0",
        "sip_exporter_ser 100.0",
        'sip_rfc6076_srd_seconds_count{result="success"} 10.0',
        "10",  # spans with an outcome
    ):
        assert want in lines, (want, out)
    assert re.search(r"Name\s*: SIP INVITE", out), out
    assert "sip.outcome: Str(completed)" in out, out
