"""The validated settings the agent hands to itself across exec (runconfig.py)."""

from __future__ import annotations

import logging

import pytest

from sip_otel.config import load_settings
from sip_otel.runconfig import AgentConfig


def test_round_trip_keeps_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_EXPORTER_INTERFACE", "eth0,eth1")
    monkeypatch.setenv("SIP_EXPORTER_SIP_PORTS", "5080,5060")
    monkeypatch.setenv("SIP_EXPORTER_LOGGER_LEVEL", "warn")
    monkeypatch.setenv("SIP_EXPORTER_CORRELATION_HEADER", "X-CID")
    s = load_settings(http_port="9100", span_uris=True)
    c = s.agent_config()
    assert c.interface == ("eth0", "eth1")
    assert c.ports() == s.ports() == frozenset({5060, 5080})
    assert c.log_level() == s.log_level() == logging.WARNING
    assert (c.http_port, c.span_uris, c.correlation_header) == (9100, True, "X-CID")
    assert AgentConfig.from_json(c.to_json()) == c
    # every setting the agent reads has the same value on both objects
    names = "http_host capture_mode ring_size otlp_endpoint tick_ms span_queue trace_ids all_ports"
    for name in (*names.split(), "raw_call_id", "object_file_path"):
        assert getattr(c, name) == getattr(s, name), name


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"interface": []}', "not json"])
def test_anything_else_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="is not a configuration sip-otel wrote"):
        AgentConfig.from_json(text)
