"""End to end: SIPp calls on loopback, the live agent capturing, exact values on /metrics.

Each test gets its own network namespace (a quiet ``lo``), starts ``sip-otel run`` there on the
default port 2112, runs SIPp UAS/UAC scenarios from tests/e2e/scenarios/, waits until the agent's
frame counter stops moving, and checks the metrics. Expected values come from the scenario
definitions and RFC 6076 by hand:
  SER  = 200-answered attempts / (attempts - 3xx-answered) (§4.6)
  SEER = attempts answered 200/480/486/600/603 / (attempts - 3xx) (§4.7)
  ISA  = attempts answered 408/500/503/504 / attempts (§4.8)
  SCR  = completed sessions (BYE answered 200) / attempts (§4.9)
A 401-challenged INVITE and its credentialed retry are one attempt (docs/rfc6076.md).
Every test also checks that the kernel/ring dropped nothing and that SIGTERM ends the agent
with exit code 0 within 5 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2ehelpers import Agent, Metrics, capture_drops, e2e_skip_reason, uac, uas
from livenet import NetNs, live_skip_reason, tagged_link

pytestmark = [pytest.mark.live, pytest.mark.slow]

_reason = e2e_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)


@pytest.fixture
def ns() -> Iterator[NetNs]:
    n = NetNs("e")
    try:
        yield n
    finally:
        n.close()


def check_stop(agent: Agent) -> None:
    rc, took = agent.stop()
    assert rc == 0, agent.log()
    assert took < 5.0, f"agent took {took:.1f} s to stop"
    assert "Traceback" not in agent.log(), agent.log()


def run_traffic(
    ns: NetNs,
    tmp: Path,
    traffic: Callable[[], None],
    *agent_args: str,
    env: dict[str, str] | None = None,
    interface: str | None = "lo",
) -> Metrics:
    iface = ("--interface", interface) if interface else ()
    agent = Agent(ns, tmp, *iface, *agent_args, env=env)
    try:
        agent.wait_ready()
        traffic()
        m = agent.settled()
    finally:
        check_stop(agent)
    assert capture_drops(m) == 0
    assert m["sip_exporter_system_error_total"] == 0  # no internal.* (bug) reasons
    errors = {k: v for k, v in m.items() if k.startswith("sip_otel_errors_total") and v}
    assert not errors, errors  # clean SIPp traffic: nothing fails to decode or parse
    return m


def calls(
    ns: NetNs,
    tmp: Path,
    n: int,
    *uac_args: str,
    uac_scn: str = "uac_call.xml",
    uas_scn: str = "uas_call.xml",
    uas_args: tuple[str, ...] = (),
    port: int = 5060,
    ip: str = "127.0.0.1",
) -> Callable[[], None]:
    def traffic() -> None:
        server = uas(ns, tmp, uas_scn, port, *uas_args, ip=ip)
        try:
            uac(ns, tmp, uac_scn, n, port, *uac_args, ip=ip)
        finally:
            server.stop()

    return traffic


def pairs(
    ns: NetNs, tmp: Path, runs: list[tuple[str, str, int, int, tuple[str, ...]]]
) -> Callable[[], None]:
    """Traffic: every (uas scenario, uac scenario, calls, port, uac args) server up, then each
    client run in order, then the servers stopped."""

    def traffic() -> None:
        servers = [uas(ns, tmp, uas_scn, port) for uas_scn, _, _, port, _ in runs]
        try:
            for _, uac_scn, n, port, args in runs:
                uac(ns, tmp, uac_scn, n, port, *args)
        finally:
            for server in servers:
                server.stop()

    return traffic


def assert_full_calls(m: Metrics, n: int) -> None:
    assert m["sip_exporter_invite_total"] == n
    assert m["sip_exporter_ack_total"] == n
    assert m["sip_exporter_bye_total"] == n
    assert m["sip_exporter_100_total"] == n
    assert m["sip_exporter_180_total"] == n
    assert m["sip_exporter_200_total"] == 2 * n
    assert m["sip_exporter_packets_total"] == 7 * n
    assert m["sip_exporter_ser"] == 100
    assert m["sip_exporter_scr"] == 100
    assert m["sip_exporter_sessions"] == 0


def test_full_calls_udp(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(ns, tmp_path, calls(ns, tmp_path, 20, "-key", "padding", "x"))
    assert_full_calls(m, 20)
    path = "afpacket" if live_skip_reason(need_bcc=True) else "ebpf"  # auto: eBPF when bcc works
    assert any(k.startswith("sip_otel_build_info{") and f'capture="{path}"' in k for k in m), m


def test_full_calls_all_interfaces(ns: NetNs, tmp_path: Path) -> None:
    # SIP_EXPORTER_INTERFACE unset: one unbound socket; lo's outgoing copies still dropped.
    m = run_traffic(ns, tmp_path, calls(ns, tmp_path, 10, "-key", "padding", "x"), interface=None)
    assert_full_calls(m, 10)


def test_full_calls_afpacket_fallback(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(
        ns, tmp_path, calls(ns, tmp_path, 20, "-key", "padding", "x"), "--capture-mode", "afpacket"
    )
    assert_full_calls(m, 20)
    assert any(k.startswith("sip_otel_build_info{") and 'capture="afpacket"' in k for k in m), m


def test_full_calls_tcp(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(
        ns,
        tmp_path,
        calls(ns, tmp_path, 10, "-t", "t1", "-key", "padding", "x", uas_args=("-t", "t1")),
    )
    assert_full_calls(m, 10)


def test_full_calls_ipv6(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(ns, tmp_path, calls(ns, tmp_path, 10, "-key", "padding", "x", ip="::1"))
    assert_full_calls(m, 10)


def test_invite_larger_than_mtu_is_reassembled(ns: NetNs, tmp_path: Path) -> None:
    ns.ip("link", "set", "lo", "mtu", "1500")
    # ~3.4 KB INVITE over UDP: three IPv4 fragments each, reassembled by the agent.
    m = run_traffic(ns, tmp_path, calls(ns, tmp_path, 5, "-key", "padding", "p" * 3000))
    assert_full_calls(m, 5)


@pytest.mark.parametrize("status", ["486", "302"])
def test_all_rejected(ns: NetNs, tmp_path: Path, status: str) -> None:
    m = run_traffic(
        ns,
        tmp_path,
        calls(ns, tmp_path, 10, uac_scn="uac_fail.xml", uas_scn=f"uas_reject_{status}.xml"),
    )
    assert m["sip_exporter_invite_total"] == 10
    assert m[f"sip_exporter_{status}_total"] == 10
    assert m["sip_exporter_ack_total"] == 10
    assert m["sip_exporter_sessions"] == 0
    if status == "486":
        assert m["sip_exporter_ser"] == 0
        assert m["sip_exporter_seer"] == 100
    else:  # every attempt redirected: SER/SEER undefined, so absent
        assert "sip_exporter_ser" not in m
        assert "sip_exporter_seer" not in m


def test_options_only(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(
        ns, tmp_path, calls(ns, tmp_path, 10, uac_scn="uac_options.xml", uas_scn="uas_options.xml")
    )
    assert m["sip_exporter_options_total"] == 10
    assert m["sip_exporter_200_total"] == 10
    assert m["sip_exporter_invite_total"] == 0
    assert "sip_exporter_ser" not in m


def test_mixed_outcomes(ns: NetNs, tmp_path: Path) -> None:
    # 20 x 200 (port 5060), 10 x 486 (5062), 10 x 500 (5064): the 100/50/50 mix scaled.
    traffic = pairs(
        ns,
        tmp_path,
        [
            ("uas_call.xml", "uac_call.xml", 20, 5060, ("-key", "padding", "x")),
            ("uas_reject_486.xml", "uac_fail.xml", 10, 5062, ()),
            ("uas_reject_500.xml", "uac_fail.xml", 10, 5064, ()),
        ],
    )
    m = run_traffic(ns, tmp_path, traffic, "--sip-ports", "5060,5062,5064")
    assert m["sip_exporter_invite_total"] == 40
    assert m["sip_exporter_486_total"] == 10
    assert m["sip_exporter_500_total"] == 10
    assert m["sip_exporter_ser"] == 50
    assert m["sip_exporter_seer"] == 75
    assert m["sip_exporter_isa"] == 25
    assert m["sip_exporter_scr"] == 50
    assert m["sip_exporter_sessions"] == 0


def test_challenged_calls(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(
        ns,
        tmp_path,
        calls(ns, tmp_path, 10, uac_scn="uac_auth_call.xml", uas_scn="uas_auth_call.xml"),
    )
    assert m["sip_exporter_invite_total"] == 10  # attempts: a credentialed retry is the same one
    assert m['sip_requests_total{method="INVITE"}'] == 20  # on the wire: challenged + credentialed
    assert m["sip_exporter_401_total"] == 10
    assert m["sip_exporter_ack_total"] == 20
    assert m["sip_exporter_ser"] == 100  # one attempt per call
    assert m["sip_exporter_scr"] == 100
    assert m["sip_exporter_sessions"] == 0


def test_cancelled_calls(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(
        ns, tmp_path, calls(ns, tmp_path, 10, uac_scn="uac_cancel.xml", uas_scn="uas_cancel.xml")
    )
    assert m["sip_exporter_invite_total"] == 10
    assert m["sip_exporter_cancel_total"] == 10
    assert m["sip_exporter_487_total"] == 10
    assert m["sip_exporter_200_total"] == 10  # to the CANCELs
    assert m["sip_exporter_ser"] == 0  # 487 is neither success nor "effective" (§4.6, §4.7)
    assert m["sip_exporter_seer"] == 0
    assert m["sip_exporter_sessions"] == 0


def test_reinvite(ns: NetNs, tmp_path: Path) -> None:
    m = run_traffic(
        ns,
        tmp_path,
        calls(ns, tmp_path, 10, uac_scn="uac_reinvite.xml", uas_scn="uas_reinvite.xml"),
    )
    assert m["sip_exporter_invite_total"] == 10  # attempts: re-INVITEs are counted apart
    assert m['sip_requests_total{method="INVITE"}'] == 20  # on the wire
    assert m["sip_exporter_reinvite_total"] == 10
    assert m["sip_exporter_ser"] == 100  # re-INVITEs are not attempts
    assert m["sip_exporter_scr"] == 100
    assert m["sip_exporter_sessions"] == 0


def test_register(ns: NetNs, tmp_path: Path) -> None:
    traffic = pairs(
        ns,
        tmp_path,
        [
            ("uas_register.xml", "uac_register.xml", 1, 5060, ()),
            ("uas_register_auth.xml", "uac_register_auth.xml", 1, 5062, ()),
            ("uas_register_forbidden.xml", "uac_register_forbidden.xml", 1, 5064, ()),
        ],
    )
    m = run_traffic(ns, tmp_path, traffic, "--sip-ports", "5060,5062,5064")
    assert m["sip_exporter_register_total"] == 4
    assert m["sip_exporter_200_total"] == 2
    assert m["sip_exporter_401_total"] == 1
    assert m["sip_exporter_403_total"] == 1
    assert m["sip_exporter_register_success_total"] == 2
    assert m['sip_exporter_register_failure_total{code="403"}'] == 1


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([(0x8100, 100)], id="vlan"),
        pytest.param([(0x88A8, 100), (0x8100, 200)], id="qinq"),
    ],
)
def test_full_calls_tagged(tmp_path: Path, tags: list[tuple[int, int]]) -> None:
    # UAS and agent in namespace a, UAC in b; the veth between them carries the tags on the
    # wire (the agent captures on that veth, so it sees tagged frames both ways).
    reason = live_skip_reason(need_bcc=True)
    if reason:
        pytest.skip(f"the tc VLAN helper loads eBPF: {reason}")
    a, b = NetNs("a"), NetNs("b")
    try:
        tagged_link(a, b, tags)

        def traffic() -> None:
            server = uas(a, tmp_path, "uas_call.xml", 5060, ip="10.80.0.1")
            try:
                uac(
                    b,
                    tmp_path,
                    "uac_call.xml",
                    10,
                    5060,
                    "-key",
                    "padding",
                    "x",
                    ip="10.80.0.1",
                    local_ip="10.80.0.2",
                )
            finally:
                server.stop()

        agent = Agent(a, tmp_path, "--interface", "va")
        try:
            agent.wait_ready()
            traffic()
            m = agent.settled()
        finally:
            check_stop(agent)
    finally:
        a.close()
        b.close()
    assert capture_drops(m) == 0
    assert_full_calls(m, 10)


def _rotel() -> Path | None:
    try:
        import rotel
    except ImportError:
        return None
    for base in (Path(rotel.__file__).parent, Path(sys.prefix) / "bin"):
        for name in ("rotel-agent", "rotel"):
            if (base / name).is_file():
                return base / name
    return None


def test_spans_reach_rotel(ns: NetNs, tmp_path: Path) -> None:
    binary = _rotel()
    if binary is None:
        pytest.skip("rotel (PyPI rotel) agent binary not found")
    out = (tmp_path / "rotel.out").open("wb")
    rotel = subprocess.Popen(
        [
            *ns.exec_prefix(),
            str(binary),
            "start",
            "--otlp-grpc-endpoint",
            "127.0.0.1:4317",
            "--otlp-http-endpoint",
            "127.0.0.1:4318",
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log-verbosity",
            "detailed",
            "--pid-file",
            str(tmp_path / "rotel.pid"),
            "--log-file",
            str(tmp_path / "rotel.log"),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.0)
        assert rotel.poll() is None, (tmp_path / "rotel.out").read_text()
        m = run_traffic(
            ns,
            tmp_path,
            calls(ns, tmp_path, 10, "-key", "padding", "x"),
            "--otlp-endpoint",
            "http://127.0.0.1:4317",
            "--otlp-protocol",
            "grpc",
        )
        assert_full_calls(m, 10)
        # The agent flushed spans on SIGTERM; give rotel a moment to print them.
        text = ""
        for _ in range(50):
            text = re.sub(
                r"\x1b\[[0-9;]*m", "", (tmp_path / "rotel.out").read_text(errors="replace")
            )
            if text.count("Name           : SIP INVITE") >= 10:
                break
            time.sleep(0.1)
        assert text.count("Name           : SIP INVITE") == 10, text[-3000:]
    finally:
        rotel.terminate()
        rotel.wait(timeout=10)
        out.close()
