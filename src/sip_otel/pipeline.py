"""The one pipeline, for live capture and replay alike: frames -> payloads -> SIP -> tracker.

Sans-IO: :meth:`Pipeline.feed` takes frames with packet timestamps and updates plain-Python
aggregates (:class:`~sip_otel.stats.PipelineStats`, :class:`~sip_otel.errors.Reasons`). Time is
always packet time: timers run from :meth:`handle_timer`, called here whenever packet time has
advanced by :data:`TIMER_TICK_NS`, and by the live agent when traffic is idle.

This is the one error boundary: any exception escaping a layer is a bug; it is counted as
``internal.<ExceptionType>`` (and logged once per type) and the frame is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import Reasons
from .net.decoder import FrameDecoder, NetLimits
from .net.types import Frame
from .records import DialogRecord, RegistrationRecord
from .sip.parser import parse_payload
from .sip.tracker import SipTracker, TrackerConfig
from .stats import PipelineStats

__all__ = ["DEFAULT_SIP_PORTS", "TIMER_TICK_NS", "Pipeline", "PipelineConfig"]

log = logging.getLogger(__name__)

DEFAULT_SIP_PORTS = frozenset({5060, 5061})
# Timer granularity in packet time. Timer B/F are 32 s and the expiry sweep 1 s, so 100 ms keeps
# every expiry within 0.1 s of its due time while costing nothing per packet.
TIMER_TICK_NS = 100_000_000

RecordSink = Callable[[DialogRecord | RegistrationRecord], None]


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    sip_ports: frozenset[int] = DEFAULT_SIP_PORTS
    all_ports: bool = False
    net_limits: NetLimits = field(default_factory=NetLimits)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None, on_record: RecordSink | None = None):
        self.config = config or PipelineConfig()
        self.stats = PipelineStats()
        self.reasons = Reasons()
        self.decoder = FrameDecoder(
            self.reasons, self.config.sip_ports, self.config.all_ports, self.config.net_limits
        )
        self._on_record = on_record
        self.tracker = SipTracker(self.stats, self.reasons, self.config.tracker, self._record)
        self.last_ts_ns = 0
        self._next_timer_ns = 0
        self._logged: set[str] = set()

    # Records go through an indirection so a sink can be attached after construction.
    def _record(self, record: DialogRecord | RegistrationRecord) -> None:
        if self._on_record is not None:
            self._on_record(record)

    def set_record_sink(self, sink: RecordSink | None) -> None:
        self._on_record = sink

    def feed(self, frames: Iterable[Frame]) -> None:
        stats = self.stats
        reasons = self.reasons
        decode = self.decoder.feed
        handle = self.tracker.handle
        requests = stats.requests
        responses = stats.responses
        by_method = stats.responses_by_method
        nframes = nbytes = nmsgs = 0
        next_timer = self._next_timer_ns
        last_ts = self.last_ts_ns
        try:
            for ts, linktype, data, _ifindex, _pkt_type in frames:
                nframes += 1
                nbytes += len(data)
                if ts > last_ts:
                    last_ts = ts
                    if ts >= next_timer:
                        if next_timer:
                            self._timer(ts)
                        next_timer = ts + TIMER_TICK_NS
                try:
                    payloads = decode(ts, linktype, data)
                    for payload in payloads:
                        for msg in parse_payload(payload, reasons):
                            nmsgs += 1
                            if msg.is_request:
                                m = msg.method
                                requests[m] = requests.get(m, 0) + 1
                            else:
                                code = msg.status
                                responses[code] = responses.get(code, 0) + 1
                                key = (code, msg.method)
                                by_method[key] = by_method.get(key, 0) + 1
                            handle(msg)
                except Exception as exc:  # the one boundary: anything else is a bug
                    self._internal(exc)
        finally:
            stats.frames += nframes
            stats.bytes += nbytes
            stats.messages += nmsgs
            self._next_timer_ns = next_timer
            self.last_ts_ns = last_ts

    def _internal(self, exc: Exception) -> None:
        slug = f"internal.{type(exc).__name__}"
        self.reasons.add(slug)
        if slug not in self._logged:
            self._logged.add(slug)
            log.error("bug: %s while processing a frame (counted as %s)", exc, slug, exc_info=exc)

    def _timer(self, now_ns: int) -> None:
        try:
            self.decoder.handle_timer(now_ns)
            self.tracker.handle_timer(now_ns)
        except Exception as exc:
            self._internal(exc)

    def handle_timer(self, now_ns: int) -> None:
        """Drive expiries (the live agent calls this when no packet arrives for a while)."""
        if now_ns > self.last_ts_ns:
            self.last_ts_ns = now_ns
        self._timer(now_ns)
        self._next_timer_ns = now_ns + TIMER_TICK_NS

    def finish(self, now_ns: int | None = None) -> None:
        """End of input: run timers up to ``now_ns`` and close what is still open."""
        end = self.last_ts_ns if now_ns is None else now_ns
        self._timer(end)
        try:
            self.tracker.finish(end)
        except Exception as exc:
            self._internal(exc)

    def gauges(self) -> dict[str, int]:
        out = dict(self.tracker.gauges())
        for name, size in self.decoder.table_sizes().items():
            out[f"table.{name}"] = size
        return out

    def evictions(self) -> dict[str, int]:
        merged = dict(self.stats.evictions)
        for k, v in self.decoder.evictions.items():
            merged[k] = merged.get(k, 0) + v
        return merged
