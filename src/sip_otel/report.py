"""The replay summary: one JSON object for scripts, or a text table for people."""

from __future__ import annotations

from typing import Any

from .pipeline import Pipeline

__all__ = ["INFO_SLUGS", "build_summary", "format_text"]

# Counted events that are normal on a healthy network: reported apart from errors.
INFO_SLUGS = frozenset({"tcp.out_of_order", "tcp.retransmission", "skipped.sip_keepalive"})


def _sorted_counts(d: dict[Any, int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(d.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def build_summary(pipeline: Pipeline, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON summary. Keys of issue 2 stay: frames, messages, requests, responses, errors."""
    from .rfc6076 import dialog_outcomes_report, rfc6076_report

    stats = pipeline.stats
    reasons = pipeline.reasons.snapshot()
    errors = {
        k: v for k, v in reasons.items() if not k.startswith("skipped.") and k not in INFO_SLUGS
    }
    skipped = {k[len("skipped.") :]: v for k, v in reasons.items() if k.startswith("skipped.")}
    info = {k: v for k, v in reasons.items() if k in INFO_SLUGS}
    out: dict[str, Any] = {
        "frames": stats.frames,
        "messages": stats.messages,
        "requests": _sorted_counts(stats.requests),
        "responses": {str(k): v for k, v in sorted(stats.responses.items())},
        "retransmissions": _sorted_counts(stats.retransmissions),
        "errors": _sorted_counts(errors),
        "skipped": _sorted_counts(skipped),
        "info": _sorted_counts(info),
        "rfc6076": rfc6076_report(stats),
        "dialogs": dialog_outcomes_report(stats),
        "evictions": _sorted_counts(pipeline.evictions()),
    }
    if pipeline.config.media:  # only when asked for: the default summary stays as it was
        from .media.report import streams_report

        out["media"] = {
            **pipeline.media_counts(),
            "streams": streams_report(pipeline.media_streams()),
        }
    if extra:
        out.update(extra)
    return out


def _fmt(v: object) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _ms(seconds: float | None) -> str:
    """A delay in milliseconds with 0.1 ms resolution (delays on a LAN are a few ms: seconds
    with two decimals printed most of them as 0.00 s)."""
    return "undefined" if seconds is None else f"{seconds * 1000:.1f} ms"


def _jit(ms: float | None) -> str:
    """Jitter in ms, to the microsecond (LAN jitter is a few us)."""
    return "undefined" if ms is None else f"{ms:.3f}"


def format_text(summary: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"file            {summary.get('file', '-')}")
    add(f"frames read     {summary['frames']}")
    add(f"SIP messages    {summary['messages']}")
    if "elapsed_s" in summary:
        add(
            f"elapsed         {summary['elapsed_s']:.2f} s "
            f"({summary.get('messages_per_s', 0):,.0f} messages/s, "
            f"{summary.get('frames_per_s', 0):,.0f} frames/s)"
        )

    def table(title: str, rows: dict[str, Any], empty: str = "none") -> None:
        add("")
        add(title)
        if not rows:
            add(f"  {empty}")
            return
        width = max(len(k) for k in rows)
        for k, v in rows.items():
            add(f"  {k:<{width}}  {_fmt(v)}")

    table("requests by method", summary["requests"])
    table("responses by status code", summary["responses"])
    table("retransmissions (by method)", summary.get("retransmissions", {}))
    table("errors and counted reasons (layer.reason)", summary["errors"])
    table("skipped, not SIP (reason)", summary.get("skipped", {}))
    if summary.get("info"):
        table("normal events (counted, not errors)", summary["info"])
    rfc = summary.get("rfc6076")
    if rfc:
        ratios = {
            k.upper(): f"{_fmt(rfc.get(k))}{'' if rfc.get(k) is None else ' %'}"
            for k in ("ser", "seer", "isa", "scr", "ira")
        }
        table("RFC 6076 ratios", ratios)
        delays: dict[str, str] = {}
        for k, v in rfc.items():
            if isinstance(v, dict):
                if not v.get("count"):
                    delays[k] = "no samples"
                else:
                    delays[k] = (
                        f"n={v['count']} mean={_ms(v.get('mean_s'))} "
                        f"p50={_ms(v.get('p50_s'))} p95={_ms(v.get('p95_s'))}"
                    )
        table("RFC 6076 delays", delays)
    table("dialog outcomes", summary.get("dialogs", {}))
    if summary.get("evictions"):
        table("table evictions", summary["evictions"])
    media = summary.get("media")
    if media is not None:
        add("")
        add(f"RTP streams ({media.get('rtp_packets', 0)} RTP packets to learned endpoints)")
        if not media["streams"]:
            add("  none")
        for st in media["streams"]:
            add(
                f"  {st['src']} -> {st['dst']} ({st.get('direction', 'unknown')}) "
                f"ssrc {st['ssrc']} {st['codec'] or '?'}: "
                f"{st['packets']} packets, lost {st['lost']} ({st['loss_ratio'] * 100:.2f} %), "
                f"jitter mean {_jit(st['mean_jitter_ms'])} max {_jit(st['max_jitter_ms'])} ms, "
                f"MOS {st['mos']:.2f}"
            )
    return "\n".join(lines)
