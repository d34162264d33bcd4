"""Replay-side media (src/sip_otel/_c/so_media.c): endpoints learned from the SDP of SIP
messages, RTP to them fed through so_rtp_update, compared stream by stream with
``tshark -q -z rtp,streams`` on the real captures of ../shared/pcaps that carry RTP.

Tolerances (docs/media.md, "Replay against tshark"):
- packets: exact;
- lost: exact (RFC 3550 A.3 on both sides), except where A.1 rejects a sequence jump that
  tshark counts as loss (ws_sip-rtp-opus-hybrid.pcap: 5 packets, sequence numbers far apart);
- max jitter: within 0.02 ms + 1 %: our J is integer (arrivals in 1/16 timestamp units, J in
  1/256 units, the RFC's rounding), tshark's a double; the largest difference seen is 0.051 ms
  on an 8.7 ms L16/11025 stream;
- mean jitter (audio only): within 0.1 ms. tshark averages the running J over its packets, we
  over jitter updates (not the first packet, nor one whose clock rate changed); video streams
  with several packets per frame (one timestamp) differ by more and are not compared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sip_otel.capture.pcapfile import PcapReader
from sip_otel.pipeline import Pipeline, PipelineConfig

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "pcaps"

CAPTURES = [
    "heplify_rtp_rtcp_sip_ipv4_udp.pcap",
    "pkts_sip_rtp.pcap",
    "sipnab_rtp-protocol.pcap",
    "ws_h223-over-rtp.pcap",
    "ws_h263-over-rtp.pcap",
    "ws_sip-rtp-dvi4.pcap",
    "ws_sip-rtp-g711.pcap",
    "ws_sip-rtp-g722.pcap",
    "ws_sip-rtp-g726.pcap",
    "ws_sip-rtp-g729a.pcap",
    "ws_sip-rtp-gsm.pcap",
    "ws_sip-rtp-ilbc.pcap",
    "ws_sip-rtp-l16.pcap",
    "ws_sip-rtp-lpc.pcap",
    "ws_sip-rtp-opus-hybrid.pcap",
    "ws_sip-rtp-opus.pcap",
    "ws_sip-rtp-speex.pcap",
]
# Streams tshark finds that we do not learn: their SDP came in MGCP, not SIP.
NOT_SIP_SDP = {("heplify_rtp_rtcp_sip_ipv4_udp.pcap", "200.57.7.196", 40362)}
LOSS_EXEMPT = {"ws_sip-rtp-opus-hybrid.pcap"}
VIDEO = {"ws_h263-over-rtp.pcap"}

ROW = re.compile(
    r"\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-Fa-f]+)\s+(.+?)\s+(\d+)\s+"
    r"(-?\d+) \([-\d.]+%\)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)"
)


def tshark_streams(path: Path) -> dict[tuple[str, int, str, int, int], dict[str, Any]]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-q", "-z", "rtp,streams"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    rows = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            src, sport, dst, dport, ssrc, _payload, pkts, lost, mean_j, max_j = m.groups()
            key = (src, int(sport), dst, int(dport), int(ssrc, 16))
            rows[key] = {
                "packets": int(pkts),
                "lost": int(lost),
                "mean_jitter_ms": float(mean_j),
                "max_jitter_ms": float(max_j),
            }
    return rows


def replay(path: Path) -> Pipeline:
    p = Pipeline(PipelineConfig(media=True))
    with PcapReader(str(path)) as reader:
        while p.feed_capture(reader, 10_000):
            pass
    p.finish()
    return p


def ms(j256: float, rate: int) -> float:
    return j256 / 256 / rate * 1000


@pytest.mark.parametrize("name", CAPTURES)
def test_streams_agree_with_tshark(name: str) -> None:
    path = PCAPS / name
    if shutil.which("tshark") is None or not path.exists():
        pytest.skip("needs tshark and ../shared/pcaps")
    theirs = tshark_streams(path)
    assert theirs, "tshark found no RTP stream"
    p = replay(path)
    ours = {(s["src"], s["sport"], s["dst"], s["dport"], s["ssrc"]): s for s in p.media_streams()}
    for key, t in theirs.items():
        if (name, key[2], key[3]) in NOT_SIP_SDP:
            assert key not in ours
            continue
        s = ours.pop(key)
        assert s["packets"] == t["packets"], key
        if name not in LOSS_EXEMPT:
            assert s["lost"] == t["lost"], key
        rate = s["clock_rate"]
        assert rate > 0, key
        max_j = ms(s["max_jitter256"], rate)
        assert abs(max_j - t["max_jitter_ms"]) <= 0.02 + 0.01 * t["max_jitter_ms"], (key, max_j)
        if name not in VIDEO:
            mean_j = ms(s["jitter256_sum"] / s["jitter_samples"], rate)
            assert abs(mean_j - t["mean_jitter_ms"]) <= 0.1, (key, mean_j)
    assert ours == {}, "streams tshark does not report"


def test_media_off_by_default() -> None:
    path = PCAPS / "ws_sip-rtp-g711.pcap"
    if not path.exists():
        pytest.skip("needs ../shared/pcaps")
    p = Pipeline(PipelineConfig())
    with PcapReader(str(path)) as reader:
        while p.feed_capture(reader, 10_000):
            pass
    p.finish()
    assert p.media_streams() == [] and p.media_counts() == {}
    # without media every RTP packet is what it always was: a UDP packet on no SIP port
    assert p.reasons.get("skipped.port") == 842


def test_learned_endpoint_table_is_bounded() -> None:
    path = PCAPS / "ws_sip-rtp-g726.pcap"
    if not path.exists():
        pytest.skip("needs ../shared/pcaps")
    p = replay(path)
    # 8 calls: 18 endpoints learned (RTP and RTCP ports of offers and answers; an SDP repeated
    # for the same endpoint refreshes it) in a 4096-entry table: no eviction
    assert p.media_counts()["endpoints_learned"] == 18
    assert p.evictions() == {}
    # (the smallest table -- a limit of 8, 32 slots, one probe window -- holds these 18; its
    # evictions are tested with more calls in test_media_kernel.test_change_queue_is_bounded)


def test_rtcp_reports_agree_with_tshark() -> None:
    """The last RTCP report block about each stream's SSRC, against tshark's RTCP dissector."""
    path = PCAPS / "heplify_rtp_rtcp_sip_ipv4_udp.pcap"
    if shutil.which("tshark") is None or not path.exists():
        pytest.skip("needs tshark and ../shared/pcaps")
    fields = ["rtcp.ssrc.identifier", "rtcp.ssrc.fraction", "rtcp.ssrc.cum_nr", "rtcp.ssrc.jitter"]
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "rtcp", "-T", "fields", "-E", "occurrence=a",
         "-E", "aggregator=,", *[a for f in fields for a in ("-e", f)]],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    last: dict[int, tuple[int, int, int]] = {}
    for line in out.splitlines():
        ids, fraction, cum, jitter = ([*line.split("\t"), "", "", "", ""])[:4]
        if not fraction:
            continue
        # block SSRCs come first in the identifier list (SDES chunks after them)
        for ident, f, c, j in zip(
            ids.split(","), fraction.split(","), cum.split(","), jitter.split(","), strict=False
        ):
            last[int(ident, 16)] = (int(f), int(c), int(j))
    p = replay(path)
    ours = {s["ssrc"]: s for s in p.media_streams()}
    compared = 0
    for ssrc, (f, c, j) in last.items():
        if ssrc in ours:
            s = ours[ssrc]
            assert s["rtcp_reports"] > 0
            assert (s["rr_fraction_lost"], s["rr_cum_lost"], s["rr_jitter"]) == (f, c, j), ssrc
            compared += 1
    assert compared == 2  # both streams of the call have reports about them
