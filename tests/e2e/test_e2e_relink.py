"""End to end: the agent captures on a veth that is deleted and re-created while it runs.

The agent runs in namespace ``a`` on ``va`` (one end of a veth to namespace ``b``). SIP OPTIONS
requests go out of ``va``; the veth is deleted and re-created (new ifindex); the agent must log
the loss and the return, count one re-attach, and count the OPTIONS sent after it. Both capture
paths, plus "all interfaces" (an unbound socket follows new interfaces by itself: no re-attach).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from e2ehelpers import Agent, e2e_skip_reason
from livenet import NetNs, veth_pair

pytestmark = [pytest.mark.live]

_reason = e2e_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

OPTIONS = (
    "OPTIONS sip:probe@10.77.0.2:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.77.0.1:5060;branch=z9hG4bK-relink-{n}\r\n"
    "From: <sip:agent@10.77.0.1>;tag={n}\r\nTo: <sip:probe@10.77.0.2>\r\n"
    "Call-ID: relink-{n}@10.77.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _link(a: NetNs, b: NetNs) -> None:
    veth_pair(a, b)
    a.ip("addr", "add", "10.77.0.1/24", "dev", "va")
    b.ip("addr", "add", "10.77.0.2/24", "dev", "vb")
    b.ip("neigh", "add", "10.77.0.1", "lladdr", "02:00:00:00:77:01", "dev", "vb")


def _send(a: NetNs, n: int) -> None:
    with a.entered(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("10.77.0.1", 5060))
        s.sendto(OPTIONS.format(n=n).encode(), ("10.77.0.2", 5060))


def _until(agent: Agent, name: str, value: float, limit_s: float = 30.0) -> dict[str, float]:
    """Metrics once ``name`` reached ``value`` (a loaded machine may take seconds), else the
    last scrape (the assertions then show what was counted)."""
    end = time.monotonic() + limit_s
    m = agent.settled()
    while m.get(name) != value and time.monotonic() < end:
        time.sleep(0.2)
        m = agent.settled()
    return m


def _wait_for(agent: Agent, needle: str, limit_s: float = 30.0) -> None:
    end = time.monotonic() + limit_s
    while needle not in agent.log():
        assert time.monotonic() < end, f"{needle!r} not logged:\n{agent.log()}"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["ebpf", "afpacket"])
@pytest.mark.parametrize("interface", ["va", ""])
def test_veth_deleted_and_recreated(tmp_path: Path, mode: str, interface: str) -> None:
    a, b = NetNs("a"), NetNs("b")
    try:
        _link(a, b)
        a.ip("neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:77:02", "dev", "va")
        iface = ("--interface", interface) if interface else ()
        agent = Agent(a, tmp_path, *iface, "--capture-mode", mode)
        try:
            agent.wait_ready()
            _send(a, 1)
            assert (
                _until(agent, "sip_exporter_options_total", 1).get("sip_exporter_options_total")
                == 1
            ), agent.log()
            a.ip("link", "del", "va")
            if interface:
                _wait_for(agent, "interface va went away")
                # polled: a scrape may show the exposition of up to 100 ms ago (its cache)
                gone = _until(agent, "sip_otel_capture_interfaces_gone", 1)
                assert gone.get("sip_otel_capture_interfaces_gone") == 1
            _link(a, b)
            a.ip("neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:77:02", "dev", "va")
            if interface:
                _wait_for(agent, "interface va is back")
            _send(a, 2)
            _send(a, 3)
            m = _until(agent, "sip_exporter_options_total", 3)
        finally:
            rc, _took = agent.stop()
    finally:
        a.close()
        b.close()
    log = agent.log()
    assert rc == 0 and "Traceback" not in log, log
    assert m.get("sip_exporter_options_total") == 3, log
    if interface:
        assert m.get('sip_otel_capture_reattach_total{reason="netlink"}') == 1, log
        assert m.get("sip_otel_capture_interfaces_gone") == 0, log
    else:
        assert not any(k.startswith("sip_otel_capture_reattach") for k in m), log
        assert "sip_otel_capture_interfaces_gone" not in m


@pytest.mark.parametrize("mode", ["ebpf", "afpacket"])
def test_link_down_and_up_no_busy_loop(tmp_path: Path, mode: str) -> None:
    """Down sets ENETDOWN on a bound packet socket; a polled socket would stay readable (the
    AF_PACKET path spun at ~70 % of a core until the error was read)."""
    a, b = NetNs("a"), NetNs("b")
    try:
        _link(a, b)
        a.ip("neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:77:02", "dev", "va")
        agent = Agent(a, tmp_path, "--interface", "va", "--capture-mode", mode)
        try:
            agent.wait_ready()
            a.ip("link", "set", "va", "down")
            time.sleep(0.3)
            cpu0, t0 = agent.cpu_seconds(), time.monotonic()
            time.sleep(2.0)
            down_share = (agent.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            a.ip("link", "set", "va", "up")
            a.ip("neigh", "replace", "10.77.0.2", "lladdr", "02:00:00:00:77:02", "dev", "va")
            time.sleep(0.3)
            _send(a, 4)
            m = agent.settled()
        finally:
            rc, _took = agent.stop()
    finally:
        a.close()
        b.close()
    assert rc == 0, agent.log()
    assert down_share < 0.25, f"agent used {100 * down_share:.0f} % of a core with the link down"
    assert m.get("sip_exporter_options_total") == 1, agent.log()
    assert not any(k.startswith("sip_otel_capture_reattach") for k in m)
