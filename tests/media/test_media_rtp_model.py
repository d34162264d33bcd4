"""so_rtp_update against an independent model: RFC 3550 Appendix A.1's init_seq/update_seq and
A.8's jitter transcribed into Python from the RFC text (not from the C), with duplicates and
reordering tracked by a set of extended sequence numbers. Random packet schedules (loss,
duplicates, reordering, jumps, wrap-around, arrival noise) must give the same sequence
statistics exactly, and a jitter within the integer form's rounding of the RFC's floating one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from sip_otel import _core

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


@dataclass
class Source:
    """RFC 3550 A.1's ``source`` (the fields the algorithm uses) plus duplicate tracking."""

    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = 0
    probation: int = 0
    received: int = 0
    duplicates: int = 0
    reordered: int = 0
    seen: set[int] = field(default_factory=set)
    # A.8, in floating point, arrival in timestamp units
    transit: float | None = None
    jitter: float = 0.0
    rejected: bool = False  # the last packet was a "very large jump" (A.1 returned 0)

    def init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.seen = {seq}

    def update_seq(self, seq: int) -> bool:
        self.rejected = False
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self.init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            ext = self.cycles + seq
            if udelta == 0 or ext in self.seen:
                self.duplicates += 1
            self.seen.add(ext)
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self.init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
                self.rejected = True
                return False
        else:
            ext = self.cycles + self.max_seq - (self.max_seq - seq) % RTP_SEQ_MOD
            if ext in self.seen:
                self.duplicates += 1
            else:
                self.reordered += 1
                self.seen.add(ext)
        self.received += 1
        return True


# A schedule: per packet, a sequence step (mostly +1; loss, duplicates, reordering, jumps), and
# arrival noise in microseconds.
steps = st.one_of(
    st.just(1),
    st.just(1),
    st.just(1),
    st.integers(2, 5),  # loss
    st.just(0),  # duplicate of the previous
    st.integers(-5, -1),  # reordered / duplicate of an older one
    st.integers(3000, 5000),  # a large jump (A.1 rejects it, or resyncs)
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 65535),
    plan=st.lists(st.tuples(steps, st.integers(0, 3000)), min_size=2, max_size=120),
)
def test_matches_the_rfc_model(start: int, plan: list[tuple[int, int]]) -> None:
    c = _core.RtpStats()
    model = Source(max_seq=(start - 1) % RTP_SEQ_MOD, probation=MIN_SEQUENTIAL)
    seq = start
    t0 = 1_700_000_000 * 10**9
    for i, (step, noise_us) in enumerate(plan):
        if i:
            seq = (seq + step) % RTP_SEQ_MOD
        ts = (160 * i) % 2**32  # the timestamp follows send order, not the sequence number
        now = t0 + i * 20_000_000 + noise_us * 1000
        c.update(seq, ts, 0, 172, now, 8000)
        model.update_seq(seq)
        if model.rejected:
            continue  # so_rtp_update takes no timing from a packet A.1 rejects (documented)
        arrival = now * 8000 / 1e9
        transit = arrival - ts
        if model.transit is not None:
            model.jitter += (abs(transit - model.transit) - model.jitter) / 16
        model.transit = transit
    snap = c.snapshot()
    assert snap["received"] == model.received
    assert snap["extended_max"] == model.cycles + model.max_seq
    if snap["valid"]:
        assert snap["base_seq"] == model.base_seq
        assert snap["expected"] == model.cycles + model.max_seq - model.base_seq + 1
    assert snap["duplicates"] == model.duplicates
    assert snap["reordered"] == model.reordered
    # Integer J: arrivals floored to 1/16 unit (error < 1/16 per transit, so < 1/8 per |D|),
    # and the rounding of (J256 + 8) >> 4 (at most 1/2 of 1/256 unit per step, bounded by 8/256
    # over the geometric sum): |J_int - J_float| < 1/8 + 8/256 units.
    assert abs(snap["jitter256"] / 256 - model.jitter) < 1 / 8 + 8 / 256
