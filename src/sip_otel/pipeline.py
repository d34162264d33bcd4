"""The one pipeline, for live capture and replay alike: frames -> payloads -> SIP -> tracker.

The pipeline runs in the compiled core (``_c/so_pipeline.c``): frame decoding, TCP/WebSocket/SIP
framing, the SIP parser, transactions, dialogs, registrations and the RFC 6076 counters, all in
C, fed whole batches at a time -- a region of a capture file (:meth:`Pipeline.feed_capture`),
a batch drained from a live capture ring (:meth:`Pipeline.feed_ring`,
:meth:`Pipeline.feed_tpacket`), or a list of :class:`Frame` (:meth:`Pipeline.feed`). No Python
object is made per packet: :attr:`stats` and :attr:`reasons` are brought up to date from the
core's counters when read (:meth:`sync`), and finished dialogs/registrations become
:class:`~sip_otel.records.DialogRecord` / :class:`~sip_otel.records.RegistrationRecord` only
when a record sink wants them (spans).

With ``config.media`` the pipeline also measures RTP per stream and per call
(docs/media.md): each report leaves as a :class:`~sip_otel.records.MediaStream` through
:meth:`Pipeline.set_media_sink`, dialog records of calls with media are held until their media
ended and then carry the final reports, and the live path's kernel maps are kept in step
through :meth:`Pipeline.media_endpoint_changes` and :meth:`Pipeline.media_kernel_sync`. All
calls on one Pipeline must come from one thread.

Time is always packet time: timers run whenever packet time has advanced by
:data:`TIMER_TICK_NS`, and from :meth:`handle_timer` (the live agent calls it when traffic is
idle). This is the one error boundary: an exception out of the core (only a bug or memory
exhaustion can raise one) is counted as ``internal.<ExceptionType>`` and logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sip_otel.sizes import DEFAULT_MEMORY_LIMIT

from . import _core
from .capture.pcapfile import PcapReader
from .errors import Reasons
from .net.decoder import NetLimits
from .net.types import Frame
from .records import DialogRecord, MediaStream, RegistrationRecord
from .sip.tracker import TrackerConfig
from .stats import PipelineStats

__all__ = ["DEFAULT_SIP_PORTS", "TIMER_TICK_NS", "Pipeline", "PipelineConfig"]

log = logging.getLogger(__name__)

DEFAULT_SIP_PORTS = frozenset({5060, 5061})
# Timer granularity in packet time (so_pipeline.h): Timer B/F are 32 s and the expiry sweep 1 s,
# so 100 ms keeps every expiry within 0.1 s of its due time while costing nothing per packet.
TIMER_TICK_NS = 100_000_000

RecordSink = Callable[[DialogRecord | RegistrationRecord], None]
MediaSink = Callable[[MediaStream], None]


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    sip_ports: frozenset[int] = DEFAULT_SIP_PORTS
    all_ports: bool = False
    net_limits: NetLimits = field(default_factory=NetLimits)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # A header whose first value spans carry as their correlation (e.g. "X-CID": the Call-ID of
    # the leg a B2BUA bridged), for trace IDs and links (telemetry/tracectx.py); None: none.
    correlation_header: str | None = None
    # One byte budget over every table that keeps bytes from the wire (TCP buffers, fragments,
    # transactions, attempts, dialogs, registrations, records): past it the oldest entries of
    # the largest table are evicted (``<table>.memory``). 0: none. docs/reliability.md.
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    # Media (docs/media.md): learn RTP endpoints from SDP and keep per-stream RTP statistics
    # (off: nothing of it is computed or reported).
    media: bool = False
    media_max_endpoints: int = 4096  # learned endpoints (rounded up to a power of two, >= 8)
    media_max_streams: int = 4096  # RTP streams (5-tuple + SSRC), likewise
    # calls with media (Call-ID), likewise; also the most dialog records held for their media
    media_max_calls: int = 4096
    # a call's media ends this long after its dialog record's end (trailing packets; > the live
    # path's 1 s kernel sync); then each stream gets its final report
    media_linger_ns: int = 3_000_000_000
    # long calls: a report per stream every interval (0: final reports only)
    media_interval_ns: int = 60_000_000_000


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None, on_record: RecordSink | None = None):
        self.config = config or PipelineConfig()
        self._stats = PipelineStats()
        self._reasons = Reasons()
        self._on_record = on_record
        self._on_media: MediaSink | None = None
        self._core = _core.PipelineCore(self.config, on_record is not None)
        self._logged: set[str] = set()

    # -- input ------------------------------------------------------------------------------------

    def feed(self, frames: Iterable[Frame]) -> None:
        """A batch of frames (live AF_PACKET tools, tests)."""
        try:
            self._core.feed_frames(frames)
        except Exception as exc:  # the one boundary: anything else is a bug
            self._internal(exc)
        self._deliver()

    def feed_capture(self, reader: PcapReader, max_frames: int) -> bool:
        """Up to ``max_frames`` frames of an open capture file; False once it is all read.

        A corrupt or truncated file raises CaptureFileError after the frames before it.
        """
        try:
            return reader.feed(self._core, max_frames)
        finally:
            self._deliver()

    def feed_ring(self, cursor: Any, max_frames: int) -> int:
        """Up to ``max_frames`` packets waiting in the eBPF ring (capture/ebpf.py)."""
        n = int(self._core.feed_ring(cursor, max_frames))
        self._deliver()
        return n

    def feed_tpacket(self, cursor: Any, max_frames: int) -> int:
        """Up to ``max_frames`` packets of the AF_PACKET ring (capture/afpacket.py)."""
        n = int(self._core.feed_tpacket(cursor, max_frames))
        self._deliver()
        return n

    def handle_timer(self, now_ns: int) -> None:
        """Drive expiries (the live agent calls this when no packet arrives for a while)."""
        self._core.handle_timer(now_ns)
        self._deliver()

    def finish(self, now_ns: int | None = None) -> None:
        """End of input: run timers up to ``now_ns`` and close what is still open."""
        self._core.finish(self.last_ts_ns if now_ns is None else now_ns)
        self._deliver()

    def media_flush(self, now_ns: int) -> None:
        """Shutdown of a live capture: every call's media ends at ``now_ns`` -- a final report
        per stream, the dialog records held for their media delivered with it -- without
        finishing the tracker (no-op without media)."""
        self._core.media_flush(now_ns)
        self._deliver()

    # -- records ----------------------------------------------------------------------------------

    def set_record_sink(self, sink: RecordSink | None) -> None:
        """Where finished dialogs/registrations go; the core keeps what records need (events,
        addresses, a REGISTER's strings) only while a sink is set (attach it before feeding:
        attempts already open would give records without them)."""
        self._on_record = sink
        self._core.set_want_records(sink is not None)

    def _deliver(self) -> None:
        media_sink = self._on_media
        if media_sink is not None:
            for report in self._core.take_media_reports():
                media_sink(report)
        sink = self._on_record
        if sink is None:
            return
        for record in self._core.take_records():
            sink(record)

    def _internal(self, exc: Exception) -> None:
        slug = f"internal.{type(exc).__name__}"
        self._reasons.add(slug)
        if slug not in self._logged:
            self._logged.add(slug)
            log.error("bug: %s while processing frames (counted as %s)", exc, slug, exc_info=exc)

    # -- counters ---------------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring :attr:`stats` and :attr:`reasons` up to date from the core's counters."""
        self._core.sync(self._stats, self._reasons)

    @property
    def stats(self) -> PipelineStats:
        self.sync()
        return self._stats

    @property
    def reasons(self) -> Reasons:
        self.sync()
        return self._reasons

    @property
    def last_ts_ns(self) -> int:
        return int(self._core.last_ts_ns)

    def gauges(self) -> dict[str, int]:
        g = dict(self._core.gauges())
        for table, n in self._core.memory().items():
            g["memory_limit" if table == "limit" else f"memory.{table}"] = n
        return g

    def memory(self) -> dict[str, int]:
        """Bytes charged to the memory budget per table, and ``limit``."""
        return dict(self._core.memory())

    def media_streams(self) -> list[dict[str, Any]]:
        """Per RTP stream (5-tuple + SSRC) statistics ([] unless ``config.media``)."""
        return list(self._core.media_streams())

    def set_media_sink(self, sink: MediaSink | None) -> None:
        """Where every media report (interval and final, :class:`MediaStream`) goes; reports
        made while none is set are not kept (attach it before feeding)."""
        self._on_media = sink
        self._core.set_want_media(sink is not None)

    def media_endpoint_changes(self) -> list[tuple[bytes, bytes]]:
        """Queued kernel endpoint-map changes: (so_mep_key, so_mep_val) add, (key, b"") delete.

        The queue is off until the first call (replay never calls it); that call queues an add
        for every endpoint already learned. Bounded: ``media_changes.full`` counts overflows;
        after one, the next call returns ``(b"", b"")`` first (clear the whole kernel map) and
        an add for every endpoint the core holds.
        """
        return list(self._core.media_endpoint_changes())

    def media_kernel_sync(self, keys: bytes, values: bytes, offset_ns: int) -> bytes:
        """The kernel's rtp_streams entries (n packed so_mstream_key, n packed so_rtp_stats)
        into the core, their times + ``offset_ns``; returns the packed keys whose endpoint is
        gone (userspace deletes them from the kernel map). ValueError: lengths do not match."""
        out = bytes(self._core.media_kernel_sync(keys, values, offset_ns))
        self._deliver()
        return out

    def media_counts(self) -> dict[str, int]:
        """RTP/RTCP packets to learned endpoints, endpoints learned ({} unless media)."""
        return dict(self._core.media_counts())

    def evictions(self) -> dict[str, int]:
        self.sync()
        return dict(self._stats.evictions)
