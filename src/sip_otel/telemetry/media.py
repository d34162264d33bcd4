"""Media quality telemetry (issue 12): the ``sip_otel_rtp_*`` instruments and the ``rtp.*``
attributes and events of a dialog span.

Metrics read :class:`~.snapshot.MediaSnapshot` (a copy of :class:`~.mediastats.MediaAggregates`,
which ``Telemetry.on_media`` feeds once per media report); every family has exactly the labels
``codec`` and ``direction``, from bounded sets, and appears with its first report. Spans read
``DialogRecord.media`` (the final reports of the call's streams) through
:func:`~sip_otel.media.quality.call_quality`. docs/metrics.md lists both; docs/media.md gives
the quality formula and its choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from opentelemetry.util.types import AttributeValue

from ..media.quality import DirectionQuality, call_quality, direction_label, stream_quality
from ..records import MediaStream
from .mediastats import JITTER_BUCKETS_S, LOSS_BUCKETS, MOS_BUCKETS, MediaKey
from .points import InstrumentSpec, Point
from .snapshot import RangedHistogram, Snapshot

__all__ = [
    "MAX_SPAN_STREAMS",
    "MEDIA_INSTRUMENTS",
    "media_attributes",
    "media_events",
]

Attributes = dict[str, AttributeValue]
LABELS = ("codec", "direction")
_V = TypeVar("_V", int, RangedHistogram)
# Span events per call: a start and a stop per stream, for this many streams (the earliest);
# with the record's own events (records.MAX_RECORD_EVENTS, 64) a span stays under the SDK's
# default limit of 128 events. ``rtp.streams`` always gives the real number.
MAX_SPAN_STREAMS = 16


def _by_key(get: Callable[[Snapshot], dict[MediaKey, _V]]) -> Callable[[Snapshot], Iterable[Point]]:
    def read(s: Snapshot) -> Iterable[Point]:
        return [(v, {"codec": c, "direction": d}) for (c, d), v in sorted(get(s).items())]

    return read


def _histogram(
    name: str,
    unit: str,
    description: str,
    get: Callable[[Snapshot], dict[MediaKey, RangedHistogram]],
    buckets: tuple[float, ...],
    ref: str,
) -> InstrumentSpec:
    return InstrumentSpec(
        name, "histogram", unit, description, _by_key(get), labels=LABELS, buckets=buckets, ref=ref
    )


def _counter(
    name: str,
    unit: str,
    description: str,
    get: Callable[[Snapshot], dict[MediaKey, int]],
    ref: str = "",
) -> InstrumentSpec:
    return InstrumentSpec(name, "counter", unit, description, _by_key(get), labels=LABELS, ref=ref)


_PER_REPORT = (
    "one sample per RTP stream per report period (every media interval while a call lasts, "
    "and the rest at its end) that expected packets"
)

MEDIA_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _histogram(
        "sip_otel_rtp_mos",
        "{mos}",
        "E-model MOS (G.107: codec and the period's loss, no delay) of audio streams; "
        f"{_PER_REPORT}.",
        lambda s: s.media.mos,
        MOS_BUCKETS,
        "ITU-T G.107",
    ),
    _histogram(
        "sip_otel_rtp_jitter",
        "s",
        "Mean RFC 3550 interarrival jitter over the period, of streams with a known clock "
        f"rate; {_PER_REPORT}.",
        lambda s: s.media.jitter,
        JITTER_BUCKETS_S,
        "RFC 3550 §6.4.1, A.8",
    ),
    _histogram(
        "sip_otel_rtp_loss_ratio",
        "1",
        f"Packet loss of the period, lost / expected (0..1); {_PER_REPORT}.",
        lambda s: s.media.loss,
        LOSS_BUCKETS,
        "RFC 3550 A.3",
    ),
    _counter(
        "sip_otel_rtp_streams",
        "{stream}",
        "RTP streams (5-tuple + SSRC) whose media ended (their final report).",
        lambda s: s.media.streams,
    ),
    _counter(
        "sip_otel_rtp_packets",
        "{packet}",
        "Every RTP packet seen on learned media endpoints (the first and duplicates "
        "included), added per report.",
        lambda s: s.media.packets,
        "RFC 3550 A.1",
    ),
    _counter(
        "sip_otel_rtp_packets_lost",
        "{packet}",
        "RTP packets lost: expected - received per report period, never below 0.",
        lambda s: s.media.lost,
        "RFC 3550 A.3",
    ),
)


# -- spans --------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _direction_attributes(attrs: Attributes, q: DirectionQuality) -> None:
    p = f"rtp.{q.direction}."
    attrs[p + "codec"] = q.codec
    attrs[p + "streams"] = q.streams
    attrs[p + "packets"] = q.packets
    attrs[p + "lost"] = q.lost
    attrs[p + "loss_pct"] = round(q.loss_ratio * 100.0, 3)
    attrs[p + "jitter_ms"] = _ms(q.jitter_mean_s)
    attrs[p + "jitter_max_ms"] = _ms(q.jitter_max_s)
    if q.r is not None and q.mos is not None:
        attrs[p + "r_factor"] = round(q.r, 2)
        attrs[p + "mos"] = round(q.mos, 2)
    if q.rtt_s is not None:
        attrs[p + "rtcp_rtt_ms"] = _ms(q.rtt_s)
    if q.xr_mos_lq is not None:
        attrs[p + "xr_mos_lq"] = q.xr_mos_lq


def media_attributes(media: Sequence[MediaStream]) -> Attributes:
    """The ``rtp.*`` attributes of a dialog span ({} without media). Call-level figures are
    those of the worse direction: lowest MOS, highest loss, highest mean jitter; the codec is
    that of the direction with most packets."""
    if not media:
        return {}
    dirs = call_quality(media)
    attrs: Attributes = {"rtp.streams": len(media)}
    scores = [q.mos for q in dirs if q.mos is not None]
    if scores:
        attrs["rtp.mos"] = round(min(scores), 2)
    attrs["rtp.loss_pct"] = round(max(q.loss_ratio for q in dirs) * 100.0, 3)
    attrs["rtp.jitter_ms"] = _ms(max(q.jitter_mean_s for q in dirs))
    attrs["rtp.codec"] = max(dirs, key=lambda q: q.packets).codec
    for q in dirs:
        _direction_attributes(attrs, q)
    return attrs


def media_events(media: Sequence[MediaStream]) -> list[tuple[str, Attributes, int]]:
    """(name, attributes, time ns) of the span events ``rtp.stream.start`` / ``rtp.stream.stop``
    of the first :data:`MAX_SPAN_STREAMS` streams (by start), in time order."""
    out: list[tuple[str, Attributes, int]] = []
    for rep in sorted(media, key=lambda r: r.start_ns)[:MAX_SPAN_STREAMS]:
        base: Attributes = {
            "rtp.direction": direction_label(rep.direction),
            "rtp.codec": rep.codec,
            "rtp.ssrc": f"0x{rep.ssrc:08x}",
        }
        out.append(("rtp.stream.start", base, rep.start_ns))
        stop = dict(base)
        stop["rtp.packets"] = rep.total_packets
        stop["rtp.lost"] = max(rep.total_lost, 0)
        q = stream_quality(rep)
        stop["rtp.loss_pct"] = round(q.loss_ratio * 100.0, 3)
        if q.mos is not None:
            stop["rtp.mos"] = round(q.mos, 2)
        out.append(("rtp.stream.stop", stop, max(rep.end_ns, rep.start_ns)))
    out.sort(key=lambda e: e[2])
    return out
