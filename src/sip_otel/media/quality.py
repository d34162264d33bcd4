"""Per-stream and per-call voice quality from the media layer's reports (pure, no I/O, no clock).

The media layer reports every RTP stream of a call as :class:`~sip_otel.records.MediaStream`
s: an interval report every media interval while the call lasts and a final one when its media
ends (docs/media.md). Two views come out of them:

* **per report** (:func:`period_quality`): the figures of the period the report covers -- loss
  ratio (RFC 3550 A.3: lost / expected, 0 when nothing was expected), the mean of the A.8
  jitter estimate over the period, and the E-model R and MOS (:mod:`.emodel`) for the
  stream's codec and that loss. Telemetry observes one histogram sample per stream per report;
* **per call and direction** (:func:`call_quality`): the final reports of a call's streams,
  grouped by who receives them (``to_caller``, ``to_callee``, ``unknown``), with whole-stream
  figures summed: packets, expected and lost added up, loss = lost / expected, mean jitter
  weighted by packets, max jitter the largest, codec that of the stream with most packets, R
  and MOS for that codec and the direction's loss.

Choices (docs/media.md, "Per-call quality"):

* **No delay.** A passive monitor does not know the mouth-to-ear delay; R assumes none (Id = 0),
  so MOS rates the codec and the loss only. The RTCP round trip, when known, is the path
  monitor -> reporter -> monitor, not a one-way delay: it is exported beside MOS, not in it.
* **Audio only.** MOS is rated for audio streams: a known clock rate below 90 kHz (RFC 3551
  gives every video payload format a 90 kHz clock; an unknown rate cannot be told apart). A
  direction that has audio streams is aggregated over them alone; video streams still count in
  the metrics (packets, loss, jitter) but never in a MOS.
* **Random loss** (BurstR 1): loss runs are not measured yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..records import MediaStream
from .emodel import codec_for, mos, r_factor

__all__ = [
    "CODEC_LABELS",
    "DIRECTIONS",
    "VIDEO_CLOCK_RATE",
    "DirectionQuality",
    "PeriodQuality",
    "call_quality",
    "codec_label",
    "direction_label",
    "is_audio",
    "period_quality",
    "stream_quality",
]

# The bounded ``codec`` label: the codecs the E-model table rates (emodel.CODECS), else "other".
CODEC_LABELS: tuple[str, ...] = ("pcmu", "pcma", "g729", "g722", "opus", "other")
_CODEC_SET = frozenset(CODEC_LABELS)
# Who receives the stream (records.MediaStream.direction); anything else is "unknown".
DIRECTIONS: tuple[str, ...] = ("to_caller", "to_callee", "unknown")
_DIRECTION_SET = frozenset(DIRECTIONS)
VIDEO_CLOCK_RATE = 90_000  # RFC 3551 section 5: every video payload format's RTP clock


def codec_label(codec: str) -> str:
    c = codec.lower()
    return c if c in _CODEC_SET else "other"


def direction_label(direction: str) -> str:
    return direction if direction in _DIRECTION_SET else "unknown"


def is_audio(rep: MediaStream) -> bool:
    """Rated as voice: a known clock rate below the video clock."""
    return 0 < rep.clock_rate < VIDEO_CLOCK_RATE


def _loss(lost: int, expected: int) -> float:
    return max(lost, 0) / expected if expected > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PeriodQuality:
    """The period one report covers (interval or the rest of the stream at its end)."""

    loss_ratio: float  # lost / expected; 0 when nothing was expected
    jitter_s: float  # mean A.8 jitter over the period (0: no sample)
    r: float | None  # E-model R (None: not audio)
    mos: float | None


def _quality(rep: MediaStream, lost: int, expected: int, jitter_s: float) -> PeriodQuality:
    loss = _loss(lost, expected)
    if not is_audio(rep):
        return PeriodQuality(loss, jitter_s, None, None)
    r = r_factor(codec_for(rep.codec), loss)
    return PeriodQuality(loss, jitter_s, r, mos(r))


def period_quality(rep: MediaStream) -> PeriodQuality:
    return _quality(rep, rep.lost, rep.expected, rep.jitter_mean_s)


def stream_quality(rep: MediaStream) -> PeriodQuality:
    """The same over the whole stream (its ``total_*`` figures, as a final report has them)."""
    return _quality(rep, rep.total_lost, rep.total_expected, rep.total_jitter_mean_s)


@dataclass(frozen=True, slots=True)
class DirectionQuality:
    """The streams one side of a call received, over their whole life."""

    direction: str  # one of DIRECTIONS
    codec: str  # SDP encoding name of the stream with most packets
    streams: int  # streams aggregated (its audio streams when it has any)
    packets: int
    expected: int
    lost: int
    loss_ratio: float
    jitter_mean_s: float  # mean of the streams' mean jitter, weighted by their packets
    jitter_max_s: float
    r: float | None  # None: no audio stream
    mos: float | None
    rtt_s: float | None  # largest RTCP round trip of its streams (None: none known)
    xr_mos_lq: float | None  # lowest RTCP XR MOS-LQ its receivers reported (None: none)


def _direction(direction: str, streams: list[MediaStream]) -> DirectionQuality:
    audio = [s for s in streams if is_audio(s)]
    chosen = audio or streams
    packets = sum(s.total_packets for s in chosen)
    expected = sum(s.total_expected for s in chosen)
    lost = sum(max(s.total_lost, 0) for s in chosen)
    loss = _loss(lost, expected)
    main = max(chosen, key=lambda s: s.total_packets)  # first of the largest on a tie
    if packets:
        jitter = sum(s.total_jitter_mean_s * s.total_packets for s in chosen) / packets
    else:
        jitter = 0.0
    r: float | None = None
    score: float | None = None
    if audio:
        r = r_factor(codec_for(main.codec), loss)
        score = mos(r)
    rtts = [s.rtt_s for s in chosen if s.rtt_s is not None]
    xr = [s.xr_mos_lq for s in chosen if s.xr_mos_lq is not None]
    return DirectionQuality(
        direction=direction,
        codec=main.codec,
        streams=len(chosen),
        packets=packets,
        expected=expected,
        lost=lost,
        loss_ratio=loss,
        jitter_mean_s=jitter,
        jitter_max_s=max(s.jitter_max_s for s in chosen),
        r=r,
        mos=score,
        rtt_s=max(rtts) if rtts else None,
        xr_mos_lq=min(xr) if xr else None,
    )


def call_quality(reports: Iterable[MediaStream]) -> list[DirectionQuality]:
    """Per direction (in :data:`DIRECTIONS` order, only those with streams), from the final
    reports of one call's streams (``DialogRecord.media``)."""
    by_dir: dict[str, list[MediaStream]] = {}
    for rep in reports:
        by_dir.setdefault(direction_label(rep.direction), []).append(rep)
    return [_direction(d, by_dir[d]) for d in DIRECTIONS if d in by_dir]
