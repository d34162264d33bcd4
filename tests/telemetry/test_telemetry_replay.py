"""``sip-otel replay`` with telemetry: flags, and a golden exposition of a hand-built capture."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import pytest
from telhelpers import LATER_COUNTERS, SEED_COUNTERS, expect_hist, parse, write_capture

from sip_otel.cli import main
from sip_otel.errors import Reasons
from sip_otel.stats import DELAY_BUCKETS_S, DURATION_BUCKETS_S, PipelineStats
from sip_otel.telemetry.replay import add_replay_arguments, make_replay_telemetry


def test_flags_and_none_without_export() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", default="text")
    add_replay_arguments(parser)
    args = parser.parse_args([])
    assert make_replay_telemetry(args, PipelineStats(), Reasons(), dict) is None
    args = parser.parse_args(
        [
            "--otlp",
            "--otlp-endpoint",
            "http://c:4318",
            "--otlp-protocol",
            "http/protobuf",
            "--raw-call-id",
        ]
    )
    assert (args.otlp, args.otlp_endpoint, args.otlp_protocol, args.raw_call_id) == (
        True,
        "http://c:4318",
        "http/protobuf",
        True,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--otlp-protocol", "http/json"])
    args = parser.parse_args(["--format", "prometheus"])
    tel = make_replay_telemetry(args, PipelineStats(), Reasons(), dict)
    assert tel is not None
    try:
        assert tel.traces_target is None and tel.metrics_target is None
        assert "sip_exporter_invite_total 0.0" in tel.render_prometheus()
    finally:
        tel.shutdown()
    for flags, want in (([], True), (["--no-span-addresses"], False), (["--span-addresses"], True)):
        args = parser.parse_args(["--format", "prometheus", *flags])
        tel = make_replay_telemetry(args, PipelineStats(), Reasons(), dict)
        assert tel is not None
        try:
            assert tel.options.include_addresses is want
        finally:
            tel.shutdown()


def test_replay_prometheus_golden(tmp_path: Path) -> None:
    cap = tmp_path / "call.pcap"
    write_capture(cap)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(cap), "--format", "prometheus"]) == 0
    types, samples = parse(out.getvalue())
    E: frozenset[tuple[str, str]] = frozenset()

    def lab(**kw: str) -> frozenset[tuple[str, str]]:
        return frozenset(kw.items())

    exp: dict[tuple[str, frozenset[tuple[str, str]]], float] = {
        (name, E): 0
        for name in [
            *SEED_COUNTERS,
            *LATER_COUNTERS,
            "sip_rfc6076_session_ineffective_total",
            "sip_rfc6076_registration_ineffective_total",
            "sip_otel_capture_drops_total",
            "sip_otel_spans_dropped_total",
        ]
    }
    exp.update(
        {
            ("sip_exporter_invite_total", E): 1,
            ("sip_exporter_ack_total", E): 1,
            ("sip_exporter_bye_total", E): 1,
            ("sip_exporter_register_total", E): 1,
            ("sip_exporter_100_total", E): 1,
            ("sip_exporter_180_total", E): 1,
            ("sip_exporter_200_total", E): 3,
            ("sip_exporter_packets_total", E): 9,
            ("sip_exporter_sessions", E): 0,
            ("sip_exporter_ser", E): 100,
            ("sip_exporter_seer", E): 100,
            ("sip_exporter_isa", E): 0,
            ("sip_exporter_scr", E): 100,
            ("sip_exporter_invite_200_total", E): 1,
            ("sip_exporter_register_success_total", E): 1,
            ("sip_requests_total", lab(method="INVITE")): 1,
            ("sip_requests_total", lab(method="ACK")): 1,
            ("sip_requests_total", lab(method="BYE")): 1,
            ("sip_requests_total", lab(method="REGISTER")): 1,
            ("sip_responses_total", lab(code="100", method="INVITE")): 1,
            ("sip_responses_total", lab(code="180", method="INVITE")): 1,
            ("sip_responses_total", lab(code="200", method="INVITE")): 1,
            ("sip_responses_total", lab(code="200", method="BYE")): 1,
            ("sip_responses_total", lab(code="200", method="REGISTER")): 1,
            ("sip_dialogs_total", lab(outcome="completed")): 1,
            ("sip_rfc6076_session_attempts_total", E): 1,
            ("sip_rfc6076_session_effective_total", E): 1,
            ("sip_rfc6076_sessions_completed_total", E): 1,
            ("sip_rfc6076_registration_attempts_total", E): 1,
            ("sip_rfc6076_ira", E): 0,
            ("sip_otel_frames_total", E): 9,
            ("sip_otel_build_info", lab(version="0.1.0", capture="file")): 1,
            ("sip_otel_memory_limit_bytes", E): 256 * 1024 * 1024,  # the default budget
        }
    )
    expect_hist(exp, "sip_rfc6076_srd_seconds", DELAY_BUCKETS_S, [0.3], result="success")
    expect_hist(exp, "sip_rfc6076_srd_seconds", DELAY_BUCKETS_S, [], result="failure")
    expect_hist(exp, "sip_rfc6076_sdd_seconds", DELAY_BUCKETS_S, [0.05], result="success")
    expect_hist(exp, "sip_rfc6076_sdd_seconds", DELAY_BUCKETS_S, [], result="failure")
    expect_hist(exp, "sip_rfc6076_sdt_seconds", DURATION_BUCKETS_S, [30.0], result="success")
    expect_hist(exp, "sip_rfc6076_sdt_seconds", DURATION_BUCKETS_S, [], result="failure")
    expect_hist(exp, "sip_rfc6076_rrd_seconds", DELAY_BUCKETS_S, [0.08])
    # frame bytes: 14 Ethernet + 20 IPv4 + 8 UDP per frame, plus the SIP payloads
    payload_bytes = cap.stat().st_size - 24 - 9 * 16 - 9 * 42
    exp[("sip_otel_received_bytes_total", E)] = 9 * 42 + payload_bytes
    # table sizes and the registration gauge depend on end-of-capture bookkeeping: present,
    # bounded, not pinned here
    variable = {
        k
        for k in samples
        if k[0]
        in (
            "sip_otel_table_entries",
            "sip_otel_memory_bytes",
            "sip_exporter_active_registrations",
            "sip_early_dialogs",
            "sip_transactions",
        )
    }
    got = {k: v for k, v in samples.items() if k not in variable}
    assert set(got) == set(exp), set(got) ^ set(exp)
    assert got == pytest.approx(exp)
    assert ("sip_exporter_active_registrations", E) in samples
    assert set(types) >= {
        "sip_exporter_invite",
        "sip_exporter_ser",
        "sip_rfc6076_srd_seconds",
        "sip_otel_build_info",
        "sip_exporter_proxy_authentication_required",
    }
