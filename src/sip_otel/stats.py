"""Plain-Python aggregates: the contract between the sans-IO core and telemetry.

The pipeline and the RFC 6076 aggregator only ever increment these (no OTel calls on the hot
path). Telemetry reads them at collection time through :meth:`Histogram.snapshot` and plain
attribute reads; a read of an ``int`` attribute is atomic under the GIL, and each histogram
snapshot copies its bucket list in one step, so a scrape sees consistent values per instrument.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

__all__ = [
    "DELAY_BUCKETS_S",
    "DURATION_BUCKETS_S",
    "Histogram",
    "HistogramSnapshot",
    "PipelineStats",
    "Rfc6076Counters",
    "ratio",
]

# Upper bounds (seconds) for SRD, SDD, RRD: 5 ms ... 30 s (Timer B/F is 32 s by default).
DELAY_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    8.0,
    10.0,
    15.0,
    20.0,
    30.0,
)
# Upper bounds (seconds) for SDT: 1 s ... 4 h.
DURATION_BUCKETS_S: tuple[float, ...] = (
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    180.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # len(bounds) + 1, last is the +Inf bucket (not cumulative)
    total: float
    count: int


class Histogram:
    """Fixed-bucket histogram (Prometheus ``le``: a value equal to a bound falls in that bucket)."""

    __slots__ = ("bounds", "count", "counts", "max", "min", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0
        self.min = float("inf")
        self.max = float("-inf")

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def snapshot(self) -> HistogramSnapshot:
        counts = tuple(self.counts)
        return HistogramSnapshot(self.bounds, counts, self.total, sum(counts))

    def quantile(self, q: float) -> float | None:
        """Estimate a quantile by linear interpolation inside its bucket (None when empty).

        Bucket edges are narrowed to the observed minimum and maximum, so the estimate never
        leaves the range of real samples (one sample: every quantile is that sample).
        """
        n = sum(self.counts)
        if n == 0:
            return None
        rank = q * n
        seen = 0
        lower = self.min
        for i, c in enumerate(self.counts):
            if c and seen + c >= rank:
                upper = self.bounds[i] if i < len(self.bounds) else self.max
                lo, hi = max(lower, self.min), min(upper, self.max)
                return lo + (hi - lo) * ((rank - seen) / c)
            seen += c
            if i < len(self.bounds):
                lower = self.bounds[i]
        return self.max

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def ratio(numerator: int, denominator: int) -> float | None:
    """Percentage, or None when undefined (RFC 6076: denominator 0 -> no value, never 0)."""
    if denominator <= 0:
        return None
    return 100.0 * numerator / denominator


@dataclass(slots=True)
class Rfc6076Counters:
    """Numerators, denominators and delay histograms of the nine RFC 6076 metrics.

    Semantics (written down in docs/rfc6076.md): counts are of de-duplicated transactions/attempts,
    never of messages on the wire.
    """

    # Session attempts (INVITE). One attempt = one initial INVITE (re-INVITEs excluded); how a
    # 401/407-challenged retry counts is configurable (docs/rfc6076.md).
    invite_attempts: int = 0  # SER/SEER base, ISA and SCR denominator
    invite_3xx: int = 0  # attempts whose final answer was 3xx (leave SER/SEER denominators)
    invite_success: int = 0  # attempts answered 200 (SER numerator)
    invite_effective: int = 0  # answered 200/480/486/600/603 (SEER numerator)
    invite_ineffective: int = 0  # answered 408/500/503/504 or Timer B (ISA numerator)
    sessions_completed: int = 0  # SCR numerator (rule in docs/rfc6076.md)
    # Registrations
    register_attempts: int = 0  # IRA denominator (challenge + credentialed retry = one)
    register_ineffective: int = 0  # IRA numerator
    register_success: int = 0
    # Delays, seconds
    srd_success: Histogram = field(default_factory=lambda: Histogram(DELAY_BUCKETS_S))
    srd_failure: Histogram = field(default_factory=lambda: Histogram(DELAY_BUCKETS_S))
    sdd_success: Histogram = field(default_factory=lambda: Histogram(DELAY_BUCKETS_S))
    sdd_failure: Histogram = field(default_factory=lambda: Histogram(DELAY_BUCKETS_S))
    sdt: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS_S))
    # §4.5 failed session completion: 2xx -> the BYE's Timer F (or its failure final)
    sdt_failure: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS_S))
    rrd: Histogram = field(default_factory=lambda: Histogram(DELAY_BUCKETS_S))

    def ser(self) -> float | None:
        return ratio(self.invite_success, self.invite_attempts - self.invite_3xx)

    def seer(self) -> float | None:
        return ratio(self.invite_effective, self.invite_attempts - self.invite_3xx)

    def isa(self) -> float | None:
        return ratio(self.invite_ineffective, self.invite_attempts)

    def scr(self) -> float | None:
        return ratio(self.sessions_completed, self.invite_attempts)

    def ira(self) -> float | None:
        return ratio(self.register_ineffective, self.register_attempts)


@dataclass(slots=True)
class PipelineStats:
    """Everything the pipeline counts, in plain Python.

    Message counters count every message on the wire (retransmissions included, as tshark does).
    """

    frames: int = 0
    bytes: int = 0
    messages: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # method -> n
    responses: dict[int, int] = field(default_factory=dict)  # status code -> n
    # (code, CSeq method) -> n
    responses_by_method: dict[tuple[int, str], int] = field(default_factory=dict)
    # method -> n, requests and responses (a response counts under its CSeq method)
    retransmissions: dict[str, int] = field(default_factory=dict)
    reinvites: int = 0
    dialog_outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> n
    register_failures: dict[int, int] = field(default_factory=dict)  # final code -> n
    evictions: dict[str, int] = field(default_factory=dict)  # "<table>.<reason>" -> n
    capture_drops: int = 0
    capture_drops_by: dict[str, int] = field(default_factory=dict)  # reason -> n (sum: above)
    # reason -> sockets re-attached to a named interface that came back (see capture/links.py)
    capture_reattach: dict[str, int] = field(default_factory=dict)
    capture_detached: int | None = None  # named interfaces gone now (None: none are watched)
    spans_dropped: int = 0
    rfc6076: Rfc6076Counters = field(default_factory=Rfc6076Counters)
