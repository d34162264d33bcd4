"""Media metrics in plain Python: counters and histograms per (codec, direction), fed once per
media report (never per packet) and read by the media instruments at collection time.

The pipeline thread writes (:meth:`MediaAggregates.observe`, through ``Telemetry.on_media``);
the scrape/export thread copies (``SnapshotSource.take``). Keys come from two bounded sets
(:data:`~sip_otel.media.quality.CODEC_LABELS` x :data:`~sip_otel.media.quality.DIRECTIONS`),
so at most 18 of each. No OTel import here.
"""

from __future__ import annotations

from ..media.quality import codec_label, direction_label, period_quality
from ..records import MediaStream
from ..stats import Histogram

__all__ = [
    "JITTER_BUCKETS_S",
    "LOSS_BUCKETS",
    "MOS_BUCKETS",
    "MediaAggregates",
    "MediaKey",
]

MediaKey = tuple[str, str]  # (codec label, direction)

# MOS 1..4.5 (G.107 Annex B); G.711 without loss rates 4.41, G.729 4.10: the top buckets are
# narrow because that is where healthy calls sit.
MOS_BUCKETS: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.5)
# Mean jitter of a period, seconds: 1 ms (a LAN) .. 500 ms (a broken path).
JITTER_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.1,
    0.2,
    0.5,
)
# Loss ratio of a period; the 0 bucket counts the periods without any loss.
LOSS_BUCKETS: tuple[float, ...] = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class MediaAggregates:
    """What the media instruments export (docs/metrics.md, "Media quality").

    Per report: ``packets``/``lost`` grow by the report's period figures (interval reports and
    the final one of a stream add up to the stream's totals); ``streams`` grows on a final
    report. A report whose period expected packets (``loss``; ``jitter`` too when the clock rate
    is known; ``mos`` too for audio, :func:`~sip_otel.media.quality.is_audio`) adds one sample to
    each histogram; a period without packets (a call on hold) adds none.
    """

    __slots__ = ("jitter", "loss", "lost", "mos", "packets", "reports", "streams")

    def __init__(self) -> None:
        self.reports = 0
        self.streams: dict[MediaKey, int] = {}
        self.packets: dict[MediaKey, int] = {}
        self.lost: dict[MediaKey, int] = {}
        self.mos: dict[MediaKey, Histogram] = {}
        self.jitter: dict[MediaKey, Histogram] = {}
        self.loss: dict[MediaKey, Histogram] = {}

    def observe(self, rep: MediaStream) -> None:
        key = (codec_label(rep.codec), direction_label(rep.direction))
        self.reports += 1
        if rep.final:
            self.streams[key] = self.streams.get(key, 0) + 1
        self.packets[key] = self.packets.get(key, 0) + max(rep.packets, 0)
        self.lost[key] = self.lost.get(key, 0) + max(rep.lost, 0)
        if rep.expected <= 0:
            return
        q = period_quality(rep)
        _hist(self.loss, key, LOSS_BUCKETS).observe(q.loss_ratio)
        if rep.clock_rate > 0:
            _hist(self.jitter, key, JITTER_BUCKETS_S).observe(q.jitter_s)
        if q.mos is not None:
            _hist(self.mos, key, MOS_BUCKETS).observe(q.mos)


def _hist(table: dict[MediaKey, Histogram], key: MediaKey, bounds: tuple[float, ...]) -> Histogram:
    h = table.get(key)
    if h is None:
        # complete before it is visible to the scrape thread (dict insert is atomic)
        h = table[key] = Histogram(bounds)
    return h
