"""Load: SIPp at a high call rate, the agent must count every call with zero kernel drops.

Rate and call count come from SIP_OTEL_E2E_RATE (calls/s, default 500) and
SIP_OTEL_E2E_CALLS (default 1000), so the same test measures the highest sustainable rate:
    SIP_OTEL_E2E_RATE=2000 SIP_OTEL_E2E_CALLS=10000 pytest tests/e2e/test_e2e_load.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ehelpers import Agent, capture_drops, e2e_skip_reason, uac, uas
from livenet import NetNs

pytestmark = [pytest.mark.live, pytest.mark.slow]

_reason = e2e_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

RATE = int(os.environ.get("SIP_OTEL_E2E_RATE", "500"))
CALLS = int(os.environ.get("SIP_OTEL_E2E_CALLS", "1000"))


@pytest.fixture
def ns() -> Iterator[NetNs]:
    n = NetNs("l")
    try:
        yield n
    finally:
        n.close()


@pytest.mark.parametrize("mode", ["ebpf", "afpacket"])
def test_calls_at_rate_without_drops(ns: NetNs, tmp_path: Path, mode: str) -> None:
    agent = Agent(ns, tmp_path, "--interface", "lo", "--capture-mode", mode)
    try:
        agent.wait_ready()
        server = uas(ns, tmp_path, "uas_call.xml", 5060)
        try:
            uac(
                ns,
                tmp_path,
                "uac_call.xml",
                CALLS,
                5060,
                "-key",
                "padding",
                "x",
                "-l",
                str(max(100, RATE * 2)),
                rate=RATE,
            )
        finally:
            server.stop()
        m = agent.settled(limit_s=60)
    finally:
        rc, _took = agent.stop()
    assert rc == 0, agent.log()
    assert capture_drops(m) == 0
    assert m["sip_exporter_invite_total"] == CALLS
    assert m["sip_exporter_packets_total"] == 7 * CALLS
    assert m["sip_exporter_ser"] == 100
    assert m["sip_exporter_scr"] == 100
    assert m["sip_exporter_sessions"] == 0
