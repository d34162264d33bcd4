"""One consistent copy of the pipeline's plain-Python aggregates, taken once per collection.

Observable callbacks run on the scrape/export thread while the pipeline thread keeps counting.
Every instrument of one collection reads the same :class:`Snapshot`, so for example
``sip_exporter_ser`` is computed from exactly the counters exported next to it. Copies are
``dict(d)`` (one C call under the GIL, safe against concurrent inserts) and plain ``int`` reads.
No OTel import here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Reasons
from ..stats import Histogram, HistogramSnapshot, PipelineStats, Rfc6076Counters
from .mediastats import MediaAggregates, MediaKey

__all__ = ["MediaSnapshot", "RangedHistogram", "Snapshot", "SnapshotSource"]


@dataclass(frozen=True, slots=True)
class RangedHistogram(HistogramSnapshot):
    """A histogram snapshot with the observed extremes (None while empty)."""

    min: float | None = None
    max: float | None = None


def _ranged(h: Histogram) -> RangedHistogram:
    snap = h.snapshot()
    lo: float = getattr(h, "min", float("inf"))
    hi: float = getattr(h, "max", float("-inf"))
    if snap.count == 0 or not lo <= hi:
        return RangedHistogram(snap.bounds, snap.counts, snap.total, snap.count)
    return RangedHistogram(snap.bounds, snap.counts, snap.total, snap.count, lo, hi)


@dataclass(frozen=True, slots=True)
class MediaSnapshot:
    """A copy of :class:`~.mediastats.MediaAggregates` (empty while no media was reported)."""

    streams: dict[MediaKey, int] = dataclasses.field(default_factory=dict)
    packets: dict[MediaKey, int] = dataclasses.field(default_factory=dict)
    lost: dict[MediaKey, int] = dataclasses.field(default_factory=dict)
    mos: dict[MediaKey, RangedHistogram] = dataclasses.field(default_factory=dict)
    jitter: dict[MediaKey, RangedHistogram] = dataclasses.field(default_factory=dict)
    loss: dict[MediaKey, RangedHistogram] = dataclasses.field(default_factory=dict)


def _media(m: MediaAggregates | None) -> MediaSnapshot:
    if m is None or not m.reports:
        return MediaSnapshot()
    return MediaSnapshot(
        streams=dict(m.streams),
        packets=dict(m.packets),
        lost=dict(m.lost),
        mos={k: _ranged(h) for k, h in dict(m.mos).items()},
        jitter={k: _ranged(h) for k, h in dict(m.jitter).items()},
        loss={k: _ranged(h) for k, h in dict(m.loss).items()},
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    frames: int
    bytes: int
    messages: int
    requests: dict[str, int]
    responses: dict[int, int]
    responses_by_method: dict[tuple[int, str], int]
    retransmissions: dict[str, int]
    reinvites: int
    dialog_outcomes: dict[str, int]
    register_failures: dict[int, int]
    evictions: dict[str, int]
    capture_drops: int
    capture_drops_by: dict[str, int]
    capture_reattach: dict[str, int]
    capture_detached: int | None
    spans_dropped: int
    rfc: Rfc6076Counters  # shallow copy: the ints are frozen here, histograms are in ``hist``
    hist: dict[str, HistogramSnapshot]
    reasons: dict[str, int]
    gauges: dict[str, int]
    version: str
    capture_path: str
    # by kind (httpproto.CLIENT_ERROR_KINDS); empty without an HTTP server
    http_client_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    media: MediaSnapshot = dataclasses.field(default_factory=MediaSnapshot)


class SnapshotSource:
    """Takes :class:`Snapshot` s of one pipeline's aggregates."""

    def __init__(
        self,
        stats: PipelineStats,
        reasons: Reasons,
        gauges: Callable[[], dict[str, int]],
        evictions: Callable[[], dict[str, int]] | None,
        version: str,
        capture_path: str,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.refresh = refresh  # brings ``stats``/``reasons`` up to date (the compiled core)
        self.stats = stats
        self.reasons = reasons
        self.gauges = gauges
        self.evictions = evictions
        self.version = version
        self.capture_path = capture_path
        self.http_client_errors: Callable[[], dict[str, int]] | None = None  # the HTTP server's
        self.media: MediaAggregates | None = None  # Telemetry's, fed by on_media

    def take(self) -> Snapshot:
        if self.refresh is not None:
            self.refresh()
        s = self.stats
        r = s.rfc6076
        rfc = dataclasses.replace(r)
        hist: dict[str, HistogramSnapshot] = {
            "srd_success": _ranged(r.srd_success),
            "srd_failure": _ranged(r.srd_failure),
            "sdd_success": _ranged(r.sdd_success),
            "sdd_failure": _ranged(r.sdd_failure),
            "sdt": _ranged(r.sdt),
            "sdt_failure": _ranged(r.sdt_failure),
            "rrd": _ranged(r.rrd),
        }
        try:
            gauges = dict(self.gauges())
        except Exception:  # a broken gauge source must not take the whole scrape down
            gauges = {}
        evictions = dict(self.evictions()) if self.evictions is not None else dict(s.evictions)
        return Snapshot(
            frames=s.frames,
            bytes=s.bytes,
            messages=s.messages,
            requests=dict(s.requests),
            responses=dict(s.responses),
            responses_by_method=dict(s.responses_by_method),
            retransmissions=dict(s.retransmissions),
            reinvites=s.reinvites,
            dialog_outcomes=dict(s.dialog_outcomes),
            register_failures=dict(s.register_failures),
            evictions=evictions,
            capture_drops=s.capture_drops,
            capture_drops_by=dict(s.capture_drops_by),
            capture_reattach=dict(s.capture_reattach),
            capture_detached=s.capture_detached,
            spans_dropped=s.spans_dropped,
            rfc=rfc,
            hist=hist,
            reasons=self.reasons.snapshot(),
            gauges=gauges,
            version=self.version,
            capture_path=self.capture_path,
            http_client_errors=(
                self.http_client_errors() if self.http_client_errors is not None else {}
            ),
            media=_media(self.media),
        )
