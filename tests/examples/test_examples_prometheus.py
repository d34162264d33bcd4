"""examples/prometheus (recording rules, alerts) and examples/grafana (dashboard).

* ``promtool check rules`` accepts both rule files;
* ``promtool test rules`` passes tests/examples/prometheus_rules_test.yml: hand-written series,
  hand-computed ratios, quantiles and alerts;
* live: a real Prometheus scrapes the agent (both in a private network namespace) while SIPp
  places calls with known outcomes; **every** PromQL expression of the rules and the dashboard
  is evaluated through Prometheus' query API. Recording-rule and dashboard expressions must
  return data; alert expressions must parse and evaluate (most are rightly empty on healthy
  traffic). The windowed SER equals the value computed by hand from the scenario's calls.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "prometheus" / "sip-otel-rules.yml"
ALERTS = REPO / "examples" / "prometheus" / "sip-otel-alerts.yml"
DASHBOARD = REPO / "examples" / "grafana" / "sip-otel.json"
UNIT_TESTS = Path(__file__).resolve().parent / "prometheus_rules_test.yml"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "tests" / "capture"))


def rule_exprs(path: Path) -> list[tuple[str, str]]:
    """(rule name, expr) of every rule in a rule file."""
    doc = yaml.safe_load(path.read_text())
    return [
        (rule.get("record") or rule["alert"], rule["expr"])
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dash["panels"]
        for target in panel.get("targets", [])
    ]


def is_media(expr: str) -> bool:
    """Reads the media series (``--media``), which the live test's agent does not produce."""
    return "sip_otel_rtp_" in expr or "sip:rtp_" in expr


def grafana_to_promql(expr: str, rate_interval: str = "1m") -> str:
    """The expression as Grafana would send it with every agent selected."""
    return expr.replace("$__rate_interval", rate_interval).replace("$instance", ".*")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt: prometheus)")
def test_promtool_check_rules() -> None:
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES), str(ALERTS)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 15 rules found" in proc.stdout and "SUCCESS: 11 rules found" in proc.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt: prometheus)")
def test_promtool_unit_tests_of_the_rules() -> None:
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", UNIT_TESTS.name],
        capture_output=True,
        text=True,
        cwd=UNIT_TESTS.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_dashboard_structure() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "sip-otel" and dash["title"] == "sip-otel"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
    # the recorded series the dashboard reads all exist in the rules
    recorded = {name for name, _ in rule_exprs(RULES)}
    used = {
        word.split("{")[0]
        for _, expr in dashboard_exprs()
        for word in expr.split()
        if word.startswith("sip:")
    }
    assert used and used <= recorded, used - recorded


# --- live: a real Prometheus, the agent, SIPp -----------------------------------------------


def _live_reason() -> str | None:
    if PROMETHEUS is None:
        return "prometheus server not installed (apt: prometheus)"
    from e2ehelpers import e2e_skip_reason

    return e2e_skip_reason()


class Prom:
    def __init__(self, ns: Any, tmp: Path, target: str) -> None:
        assert PROMETHEUS is not None
        config = tmp / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES), str(ALERTS)],
                    "scrape_configs": [
                        {"job_name": "sip-otel", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.ns = ns
        self.base = "http://127.0.0.1:9090"
        self._log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *ns.exec_prefix(),
                PROMETHEUS,
                f"--config.file={config}",
                "--web.listen-address=127.0.0.1:9090",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with self.ns.entered(), urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait(self, expr: str, want: float, deadline_s: float = 30.0) -> None:
        end = time.monotonic() + deadline_s
        last: object = None
        while time.monotonic() < end:
            try:
                result = self.query(expr)
            except OSError:  # still starting
                result = []
            if result:
                last = result
                if math.isclose(float(result[0]["value"][1]), want, rel_tol=1e-12, abs_tol=1e-12):
                    return
            time.sleep(0.3)
        raise AssertionError(f"{expr} never became {want}; last {last}")

    def has_data(self, expr: str, deadline_s: float = 10.0) -> bool:
        """Whether ``expr`` returns data within ``deadline_s`` (recorded series appear at the
        next rule evaluation, every second here)."""
        end = time.monotonic() + deadline_s
        while True:
            if self.query(expr):
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Any, Any, Prom]]:
    reason = _live_reason()
    if reason:
        pytest.skip(reason)
    from e2ehelpers import Agent
    from livenet import NetNs

    ns = NetNs("x")
    agent = prom = None
    try:
        agent = Agent(ns, tmp_path, "--interface", "lo", "--sip-ports", "5060,5062,5064,5066,5068")
        agent.wait_ready()
        prom = Prom(ns, tmp_path, "127.0.0.1:2112")
        yield ns, agent, prom
    finally:
        if prom is not None:
            prom.stop()
        if agent is not None:
            agent.stop()
        ns.close()


@pytest.mark.live
@pytest.mark.slow
def test_every_expression_against_prometheus(live: tuple[Any, Any, Prom], tmp_path: Path) -> None:
    from e2ehelpers import uac, uas

    ns, agent, prom = live
    # Prometheus has scraped the agent before any call: every counter's first sample is 0, so
    # increase() extrapolates all of them alike and the windowed ratios are exact.
    prom.wait('up{job="sip-otel"}', 1)
    prom.wait("sip_rfc6076_session_attempts_total", 0)

    # The calls, by hand: 20 answered 200 (then BYE), 10 answered 486, 10 answered 500, 5
    # redirected with 302; one REGISTER answered 200.
    #   attempts 45, 3xx 5: SER = 100 * 20 / (45 - 5) = 50
    runs: list[tuple[str, str, int, int, tuple[str, ...]]] = [
        ("uas_call.xml", "uac_call.xml", 20, 5060, ("-key", "padding", "x")),
        ("uas_reject_486.xml", "uac_fail.xml", 10, 5062, ()),
        ("uas_reject_500.xml", "uac_fail.xml", 10, 5064, ()),
        ("uas_reject_302.xml", "uac_fail.xml", 5, 5066, ()),
        ("uas_register.xml", "uac_register.xml", 1, 5068, ()),
    ]
    servers = [uas(ns, tmp_path, scn, port) for scn, _, _, port, _ in runs]
    try:
        for _, scn, n, port, args in runs:
            uac(ns, tmp_path, scn, n, port, *args)
    finally:
        for server in servers:
            server.stop()
    agent.settled()
    prom.wait("sip_rfc6076_session_attempts_total", 45)
    prom.wait("sip_exporter_invite_3xx_total", 5)
    prom.wait("sip_exporter_invite_200_total", 20)
    prom.wait("sip_rfc6076_registration_attempts_total", 1)

    empty = []
    for name, expr in rule_exprs(RULES):
        if is_media(expr):  # this agent runs without --media: evaluated, rightly empty
            prom.query(expr)
        elif not prom.has_data(expr):
            empty.append(name)
    for title, expr in dashboard_exprs():
        if is_media(expr):
            prom.query(grafana_to_promql(expr))
        elif not prom.has_data(grafana_to_promql(expr)):
            empty.append(f"{title}: {expr}")
    assert not empty, "\n".join(empty)
    for _name, expr in rule_exprs(ALERTS):
        prom.query(expr)  # parses and evaluates (success asserted in query)

    exprs = dict(rule_exprs(RULES))
    ((ser,),) = [[float(s["value"][1])] for s in prom.query(exprs["sip:ser:percent5m"])]
    assert abs(ser - 50.0) < 1e-9, ser
    # the recorded series Prometheus evaluated itself agrees once it has seen the final counts
    prom.wait("sip:ser:percent5m", 50.0)
    # the SER alert's condition holds (50 % < 80 % with 45 attempts); no capture drops
    (degraded,) = prom.query(dict(rule_exprs(ALERTS))["SipSessionEstablishmentDegraded"])
    # a ratio of extrapolated increases: equal to 50 up to floating-point rounding
    assert math.isclose(float(degraded["value"][1]), 50.0, rel_tol=1e-12), degraded
    assert prom.query(dict(rule_exprs(ALERTS))["SipOtelCaptureDrops"]) == []
