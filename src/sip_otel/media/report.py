"""Per-stream media figures for the replay summary (``sip-otel replay --media``).

From the compiled core's stream statistics (``Pipeline.media_streams()``, so_rtp.h) to what
people read: loss ratio (RFC 3550 A.3), jitter in ms (A.8; the final, mean and max value), the
largest gap between packets, and the E-model R-factor and MOS (:mod:`sip_otel.media.emodel`)
for the stream's codec and loss. Delay is not measured passively: R assumes none (docs/media.md).
When RTCP reports about the stream were seen, the last one's figures too.
"""

from __future__ import annotations

from typing import Any

from .emodel import codec_for, mos, r_factor

__all__ = ["stream_report", "streams_report"]


def _ms(j256: float, rate: int) -> float | None:
    """J (1/256 timestamp units) in ms; None without a clock rate."""
    return round(j256 / 256 / rate * 1000, 3) if rate else None


def stream_report(s: dict[str, Any]) -> dict[str, Any]:
    """One stream: addresses, SSRC, direction, call, codec, counts, loss, jitter, R, MOS."""
    rate = int(s["clock_rate"])
    expected = int(s["expected"])
    lost = int(s["lost"])
    loss = max(lost, 0) / expected if expected else 0.0
    samples = int(s["jitter_samples"])
    r = r_factor(codec_for(s["codec"]), loss)
    out: dict[str, Any] = {
        "src": f"{s['src']}:{s['sport']}",
        "dst": f"{s['dst']}:{s['dport']}",
        "ssrc": f"0x{s['ssrc']:08x}",
        # who receives it (the call's caller or callee, from the SDP that announced the
        # endpoint) and its call
        "direction": s.get("direction", "unknown"),
        "call_id": s.get("call_id", ""),
        "codec": s["codec"],
        "clock_rate": rate,
        "packets": s["packets"],
        "expected": expected,
        "lost": lost,
        "loss_ratio": round(loss, 6),
        "duplicates": s["duplicates"],
        "reordered": s["reordered"],
        "jitter_ms": _ms(s["jitter256"], rate),
        "mean_jitter_ms": _ms(s["jitter256_sum"] / samples, rate) if samples else None,
        "max_jitter_ms": _ms(s["max_jitter256"], rate),
        "max_gap_ms": round(s["max_gap_ns"] / 1e6, 3),
        "pt_changes": s["pt_changes"],
        "r_factor": round(r, 2),
        "mos": round(mos(r), 2),
    }
    if s.get("rtcp_reports"):
        # what the stream's receiver reported last (RTCP RR/SR block, RFC 3550 6.4.1)
        rtt = s.get("rtt_ns")
        out["rtcp"] = {
            "reports": s["rtcp_reports"],
            "fraction_lost": round(s["rr_fraction_lost"] / 256, 4),
            "cumulative_lost": s["rr_cum_lost"],
            "jitter_ms": round(s["rr_jitter"] / rate * 1000, 3) if rate else None,
            "rtt_ms": None if rtt is None else round(rtt / 1e6, 3),
        }
    return out


def streams_report(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [stream_report(s) for s in streams]
