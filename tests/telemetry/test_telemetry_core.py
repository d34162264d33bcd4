"""Golden exposition of hand-filled aggregates, switches, /metrics and /health."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from telhelpers import (
    LATER_COUNTERS,
    LATER_GAUGES,
    SEED_COUNTERS,
    SEED_GAUGES,
    expect_hist,
    filled,
    parse,
)

from sip_otel.errors import Reasons
from sip_otel.stats import DELAY_BUCKETS_S, DURATION_BUCKETS_S, PipelineStats
from sip_otel.telemetry import Telemetry, TelemetryOptions

E: frozenset[tuple[str, str]] = frozenset()


def L(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def expected_samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every series for :func:`telhelpers.filled`, derived by hand."""
    exp: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for name in SEED_COUNTERS + LATER_COUNTERS:
        exp[(name, E)] = 0.0
    exp.update(
        {
            ("sip_exporter_invite_total", E): 3,
            ("sip_exporter_ack_total", E): 1,
            ("sip_exporter_bye_total", E): 1,
            ("sip_exporter_register_total", E): 2,
            ("sip_exporter_100_total", E): 1,
            ("sip_exporter_180_total", E): 1,
            ("sip_exporter_200_total", E): 3,
            ("sip_exporter_proxy_authentication_required_total", E): 1,
            ("sip_exporter_486_total", E): 1,
            ("sip_exporter_packets_total", E): 8,
            (
                "sip_exporter_system_error_total",
                E,
            ): 3,  # internal.KeyError 1 + internal.ValueError 2
            ("sip_exporter_invite_200_total", E): 2,
            ("sip_exporter_invite_3xx_total", E): 1,
            ("sip_exporter_reinvite_total", E): 1,
            ("sip_exporter_register_success_total", E): 1,
            ("sip_exporter_sessions", E): 1,
            ("sip_exporter_active_registrations", E): 2,
            ("sip_exporter_ser", E): 100.0 * 2 / 3,  # 2 / (4 - 1)
            ("sip_exporter_seer", E): 100.0,  # 3 / (4 - 1)
            ("sip_exporter_isa", E): 25.0,  # 1 / 4
            ("sip_exporter_scr", E): 25.0,  # 1 / 4
            ("sip_exporter_register_failure_total", L(code="403")): 1,
            ("sip_exporter_sip_retransmission_total", L(method="INVITE")): 1,
            ("sip_exporter_sip_retransmission_total", L(method="other")): 1,
            ("sip_requests_total", L(method="INVITE")): 3,
            ("sip_requests_total", L(method="ACK")): 1,
            ("sip_requests_total", L(method="BYE")): 1,
            ("sip_requests_total", L(method="REGISTER")): 2,
            ("sip_requests_total", L(method="other")): 2,
            ("sip_responses_total", L(code="100", method="INVITE")): 1,
            ("sip_responses_total", L(code="180", method="INVITE")): 1,
            ("sip_responses_total", L(code="200", method="INVITE")): 2,
            ("sip_responses_total", L(code="200", method="BYE")): 1,
            ("sip_responses_total", L(code="407", method="INVITE")): 1,
            ("sip_responses_total", L(code="486", method="INVITE")): 1,
            ("sip_responses_total", L(code="200", method="other")): 2,  # FOO + XYZ
            ("sip_responses_total", L(code="other", method="INVITE")): 1,  # 999
            ("sip_dialogs_total", L(outcome="completed")): 1,
            ("sip_dialogs_total", L(outcome="failed_4xx")): 1,
            ("sip_early_dialogs", E): 3,
            ("sip_transactions", E): 4,
            ("sip_rfc6076_session_attempts_total", E): 4,
            ("sip_rfc6076_session_effective_total", E): 3,
            ("sip_rfc6076_session_ineffective_total", E): 1,
            ("sip_rfc6076_sessions_completed_total", E): 1,
            ("sip_rfc6076_registration_attempts_total", E): 2,
            ("sip_rfc6076_registration_ineffective_total", E): 1,
            ("sip_rfc6076_ira", E): 50.0,
            ("sip_otel_frames_total", E): 10,
            ("sip_otel_received_bytes_total", E): 5000,
            ("sip_otel_errors_total", L(layer="sip", reason="bad_start_line")): 2,
            ("sip_otel_errors_total", L(layer="internal", reason="KeyError")): 1,
            ("sip_otel_errors_total", L(layer="internal", reason="ValueError")): 2,
            ("sip_otel_skipped_total", L(reason="not_sip")): 5,
            ("sip_otel_table_entries", L(table="dialogs")): 5,
            ("sip_otel_table_entries", L(table="ip_fragments")): 6,
            ("sip_otel_evictions_total", L(table="dialogs", reason="capacity")): 2,
            ("sip_otel_capture_drops_total", E): 4,
            ("sip_otel_spans_dropped_total", E): 0,
            ("sip_otel_build_info", L(version="0.1.0", capture="ebpf")): 1,
        }
    )

    expect_hist(exp, "sip_rfc6076_srd_seconds", DELAY_BUCKETS_S, [0.005, 0.3], result="success")
    expect_hist(exp, "sip_rfc6076_srd_seconds", DELAY_BUCKETS_S, [40.0], result="failure")
    expect_hist(exp, "sip_rfc6076_sdd_seconds", DELAY_BUCKETS_S, [], result="success")
    expect_hist(exp, "sip_rfc6076_sdd_seconds", DELAY_BUCKETS_S, [], result="failure")
    expect_hist(exp, "sip_rfc6076_sdt_seconds", DURATION_BUCKETS_S, [9.0], result="success")
    expect_hist(exp, "sip_rfc6076_sdt_seconds", DURATION_BUCKETS_S, [], result="failure")
    expect_hist(exp, "sip_rfc6076_rrd_seconds", DELAY_BUCKETS_S, [])
    return exp


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    stats, reasons, gauges = filled()
    t = Telemetry(stats, reasons, lambda: gauges, TelemetryOptions(http_port=0), "ebpf")
    yield t
    t.shutdown()


def test_golden_names_types_and_values(tel: Telemetry) -> None:
    types, samples = parse(tel.render_prometheus())
    assert samples == pytest.approx(expected_samples())
    for name in SEED_COUNTERS + LATER_COUNTERS:
        assert types[name.removesuffix("_total")] == "counter", name
    for name in SEED_GAUGES + LATER_GAUGES:
        assert types[name] == "gauge", name
    for name in (
        "sip_rfc6076_srd_seconds",
        "sip_rfc6076_sdd_seconds",
        "sip_rfc6076_sdt_seconds",
        "sip_rfc6076_rrd_seconds",
    ):
        assert types[name] == "histogram"


def test_seed_names_are_unlabelled_and_no_scope_or_target_info(tel: Telemetry) -> None:
    text = tel.render_prometheus()
    for name in SEED_COUNTERS + SEED_GAUGES:
        assert f"\n{name} " in text, name
    assert "otel_scope" not in text
    assert "target_info" not in text


def test_scope_labels_and_target_info_switch_on() -> None:
    stats, reasons, gauges = filled()
    t = Telemetry(
        stats, reasons, lambda: gauges, TelemetryOptions(scope_labels=True, target_info=True)
    )
    try:
        types, samples = parse(t.render_prometheus())
    finally:
        t.shutdown()
    assert types["target_info"] == "gauge"  # the text format renders the info family as a gauge
    assert samples[("target_info", next(k for n, k in samples if n == "target_info"))] == 1.0
    scoped = [k for k in samples if k[0] == "sip_exporter_invite_total"]
    assert len(scoped) == 1
    assert ("otel_scope_name", "sip_otel") in scoped[0][1]


def test_ratios_absent_while_undefined() -> None:
    stats = PipelineStats()
    t = Telemetry(stats, Reasons(), dict)
    try:
        text = t.render_prometheus()
        for name in (
            "sip_exporter_ser",
            "sip_exporter_seer",
            "sip_exporter_isa",
            "sip_exporter_scr",
            "sip_rfc6076_ira",
        ):
            assert name not in text
        assert "\nsip_exporter_sessions 0.0\n" in text  # seed gauge present from the start
        stats.rfc6076.invite_attempts = 1
        stats.rfc6076.invite_3xx = 1  # every attempt redirected: SER undefined, ISA 0
        _, samples = parse(t.render_prometheus())
        assert ("sip_exporter_ser", E) not in samples
        assert samples[("sip_exporter_isa", E)] == 0.0
        stats.rfc6076.invite_attempts = 2
        stats.rfc6076.invite_success = 1
        _, samples = parse(t.render_prometheus())
        assert samples[("sip_exporter_ser", E)] == 100.0  # 1 / (2 - 1)
        stats.rfc6076.invite_3xx = 2  # undefined again: the series disappears
        assert "sip_exporter_ser " not in t.render_prometheus()
    finally:
        t.shutdown()


def test_counters_follow_the_aggregates_between_scrapes() -> None:
    stats = PipelineStats()
    t = Telemetry(stats, Reasons(), dict)
    try:
        assert "\nsip_exporter_invite_total 0.0\n" in t.render_prometheus()
        stats.requests["INVITE"] = 7
        stats.rfc6076.sdt.observe(100.0)
        text = t.render_prometheus()
        assert "\nsip_exporter_invite_total 7.0\n" in text
        assert '\nsip_rfc6076_sdt_seconds_bucket{le="120.0",result="success"} 1.0\n' in text
        assert '\nsip_rfc6076_sdt_seconds_bucket{le="60.0",result="success"} 0.0\n' in text
    finally:
        t.shutdown()


def test_gauge_source_failure_does_not_break_the_scrape() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("boom")

    t = Telemetry(PipelineStats(), Reasons(), broken)
    try:
        assert "\nsip_exporter_sessions 0.0\n" in t.render_prometheus()
    finally:
        t.shutdown()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_http_metrics_and_health(tel: Telemetry) -> None:
    tel.start_http()
    port = tel.http_port
    assert port != 0
    base = f"http://127.0.0.1:{port}"
    assert _get(base + "/health")[0] == 503
    tel.set_ready()
    assert _get(base + "/health")[0] == 200
    code, ctype, body = _get(base + "/metrics")
    assert code == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    assert body == tel.render_prometheus()
    assert _get(base + "/nope")[0] == 404
    tel.set_ready(False)
    assert _get(base + "/health")[0] == 503


def test_http_without_prometheus_serves_health_only() -> None:
    t = Telemetry(
        PipelineStats(),
        Reasons(),
        dict,
        TelemetryOptions(prometheus=False, http_port=0, http_host="127.0.0.1"),
    )
    try:
        t.start_http()
        t.set_ready()
        base = f"http://127.0.0.1:{t.http_port}"
        assert _get(base + "/health")[0] == 200
        assert _get(base + "/metrics")[0] == 404
    finally:
        t.shutdown()


def test_on_record_without_trace_exporter_is_a_no_op(tel: Telemetry) -> None:
    from sip_otel.records import RegistrationRecord

    tel.on_record(RegistrationRecord("sip:a@b", "c", 1, 2, "registered", 200, "udp", "", ""))
    assert tel.stats.spans_dropped == 0


def test_evictions_come_from_the_pipeline_when_gauges_is_its_bound_method() -> None:
    class FakePipeline:
        def gauges(self) -> dict[str, int]:
            return {}

        def evictions(self) -> dict[str, int]:
            return {"ip_fragments.capacity": 3, "dialogs.timeout": 1}

    stats = PipelineStats()
    stats.evictions["dialogs.timeout"] = 1  # the tracker's part only
    t = Telemetry(stats, Reasons(), FakePipeline().gauges)
    try:
        _, samples = parse(t.render_prometheus())
    finally:
        t.shutdown()
    got = {k: v for k, v in samples.items() if k[0] == "sip_otel_evictions_total"}
    assert got == {
        ("sip_otel_evictions_total", L(table="ip_fragments", reason="capacity")): 3,
        ("sip_otel_evictions_total", L(table="dialogs", reason="timeout")): 1,
    }


def test_concurrent_scrapes_each_get_one_complete_exposition(tel: Telemetry) -> None:
    import threading

    want = tel.render_prometheus()
    bodies: list[str] = []

    def scrape() -> None:
        for _ in range(10):
            bodies.append(tel.render_prometheus())

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(bodies) == 40
    assert all(b == want for b in bodies)
