"""The replay summary's media part (src/sip_otel/media/report.py, ``replay --media``): figures
by hand from RFC 3550 and the G.107 formulas; packet counts from tshark (docs/media.md table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sip_otel.cli import main
from sip_otel.media.report import stream_report

PCAP = Path(__file__).resolve().parents[2] / ".." / "shared" / "pcaps" / "ws_sip-rtp-g711.pcap"


def stream(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "src": "192.0.2.1",
        "sport": 4000,
        "dst": "192.0.2.2",
        "dport": 5000,
        "ssrc": 0xABC,
        "codec": "G729",
        "clock_rate": 8000,
        "packets": 95,
        "expected": 100,
        "lost": 5,
        "duplicates": 0,
        "reordered": 0,
        "jitter256": 2048,
        "jitter256_sum": 2048 * 3,
        "jitter_samples": 4,
        "max_jitter256": 4096,
        "max_gap_ns": 60_000_000,
        "pt_changes": 0,
    }
    base.update(kw)
    return base


def test_stream_report_by_hand() -> None:
    r = stream_report(stream())
    assert r["src"] == "192.0.2.1:4000" and r["dst"] == "192.0.2.2:5000"
    assert r["ssrc"] == "0x00000abc"
    assert r["loss_ratio"] == 0.05
    # J256 2048 = 8 timestamp units at 8 kHz = 1 ms; mean 6144/4 = 1536 -> 0.75 ms; max 2 ms
    assert (r["jitter_ms"], r["mean_jitter_ms"], r["max_jitter_ms"]) == (1.0, 0.75, 2.0)
    assert r["max_gap_ms"] == 60.0
    # G.729, 5 %: Ie,eff = 11 + 84 * 5 / (5 + 19) = 28.5, R = 64.7;
    # MOS = 1 + 0.035 * 64.7 + 64.7 * 4.7 * 35.3 * 7e-6 = 3.3396...
    assert r["r_factor"] == 64.7
    assert r["mos"] == 3.34


def test_rtcp_figures() -> None:
    r = stream_report(
        stream(rtcp_reports=3, rr_fraction_lost=64, rr_cum_lost=7, rr_jitter=80, rtt_ns=500_000_000)
    )
    # 64/256 = 0.25; 80 units at 8 kHz = 10 ms
    assert r["rtcp"] == {
        "reports": 3,
        "fraction_lost": 0.25,
        "cumulative_lost": 7,
        "jitter_ms": 10.0,
        "rtt_ms": 500.0,
    }
    assert "rtcp" not in stream_report(stream())


def test_no_clock_rate_no_jitter_and_negative_loss() -> None:
    r = stream_report(stream(clock_rate=0, lost=-2, jitter_samples=0))
    assert r["jitter_ms"] is None and r["mean_jitter_ms"] is None
    assert r["loss_ratio"] == 0.0  # duplicates made A.3's lost negative: no loss


def replay_json(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    assert main(["replay", "--format", "json", *flags, str(PCAP)]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_replay_media_flag(capsys: pytest.CaptureFixture[str]) -> None:
    if not PCAP.exists():
        pytest.skip("needs ../shared/pcaps")
    assert "media" not in replay_json(capsys)  # off by default: the summary is unchanged
    media = replay_json(capsys, "--media")["media"]
    streams = {s["ssrc"]: s for s in media["streams"]}
    # tshark -z rtp,streams: 0x343DA99B g711U 425 packets, 0x343FFA34 g711A 414, none lost
    assert streams["0x343da99b"]["packets"] == 425 and streams["0x343da99b"]["codec"] == "PCMU"
    assert streams["0x343ffa34"]["packets"] == 414 and streams["0x343ffa34"]["codec"] == "PCMA"
    for s in streams.values():
        assert s["lost"] == 0
        assert s["r_factor"] == 93.2 and s["mos"] == 4.41  # G.711, no loss: G.107's default


def test_replay_media_text(capsys: pytest.CaptureFixture[str]) -> None:
    if not PCAP.exists():
        pytest.skip("needs ../shared/pcaps")
    assert main(["replay", "--media", str(PCAP)]) == 0
    out = capsys.readouterr().out
    assert "RTP streams (839 RTP packets to learned endpoints)" in out
    assert "ssrc 0x343da99b PCMU: 425 packets, lost 0 (0.00 %)" in out


def test_replay_media_direction(capsys: pytest.CaptureFixture[str]) -> None:
    """Who receives each stream, against tshark's SIP/SDP dissector: in this capture the INVITE
    (From tag GR52RWG346-34, no To tag) offers 200.57.7.196:40376 -- the caller's endpoint --
    and its 200 OK answers 200.57.7.204:8000, the callee's."""
    path = PCAP.parent / "heplify_rtp_rtcp_sip_ipv4_udp.pcap"
    if not path.exists():
        pytest.skip("needs ../shared/pcaps")
    assert main(["replay", "--format", "json", "--media", str(path)]) == 0
    streams = json.loads(capsys.readouterr().out)["media"]["streams"]
    got = {s["dst"]: s["direction"] for s in streams}
    assert got == {"200.57.7.196:40376": "to_caller", "200.57.7.204:8000": "to_callee"}
    assert all(s["call_id"] for s in streams)
    assert main(["replay", "--media", str(path)]) == 0
    assert "-> 200.57.7.196:40376 (to_caller) ssrc" in capsys.readouterr().out
