"""Finished dialogs and registration attempts: what telemetry turns into spans.

Emitted by the dialog/registration layer when an attempt ends (never while it is open). Times are
packet times in ns. ``events`` is bounded (:data:`MAX_RECORD_EVENTS`); overflow is counted in
``events_dropped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_RECORD_EVENTS",
    "DialogRecord",
    "MediaStream",
    "RecordEvent",
    "RegistrationRecord",
]

# A long call with many re-INVITEs/UPDATEs must not grow one record without bound.
MAX_RECORD_EVENTS = 64


@dataclass(frozen=True, slots=True)
class RecordEvent:
    ts_ns: int
    # e.g. sip.provisional, sip.2xx, sip.ack, sip.reinvite, sip.update, sip.bye, sip.bye_response,
    # sip.cancel, sip.challenge, sip.invite_retry, sip.final, sip.bye_timeout
    name: str
    status: int = 0
    method: str = ""


@dataclass(frozen=True, slots=True)
class MediaStream:
    """One RTP stream (5-tuple + SSRC) of a call, as the media layer reports it (docs/media.md).

    Reported every media interval while the call lasts (``final`` False: the period figures
    cover the interval since the previous report) and once when the call's media ends
    (``final`` True: the period since the last interval report, and the ``total_*`` figures the
    whole stream). ``packets`` counts every packet seen (as tshark does); RFC 3550 A.3 loss is
    expected - ``received`` (A.1: not the first, probation packet; duplicates included), never
    below 0.
    """

    call_id: str  # the Call-ID as the dialog record holds it (spans hash it unless raw)
    direction: str  # bounded: "to_callee", "to_caller", "unknown" (who receives the stream)
    codec: str  # SDP encoding name of its first payload type, lower case ("" unknown)
    clock_rate: int  # Hz, 0 unknown
    ssrc: int
    src: str  # "ip:port" of the sender
    dst: str  # "ip:port" of the learned endpoint
    start_ns: int  # first packet of the stream
    end_ns: int  # last packet so far
    final: bool
    # the period this report covers (since the previous report of this stream)
    packets: int  # every packet seen in the period
    expected: int
    lost: int
    jitter_mean_s: float  # mean of the A.8 estimate over the period's updates (0: no sample)
    # whole stream so far
    total_packets: int  # every packet seen
    total_expected: int
    total_lost: int
    total_bytes: int
    duplicates: int
    reordered: int
    jitter_s: float  # the A.8 estimate now
    jitter_max_s: float  # its largest value so far
    total_jitter_mean_s: float
    max_gap_s: float
    pt_changes: int
    # what the receiver said over RTCP about this stream (None: no report seen)
    rtcp_fraction_lost: float | None = None  # last RR/SR block, 0..1
    rtcp_cum_lost: int | None = None
    rtcp_jitter_s: float | None = None
    rtt_s: float | None = None  # LSR/DLSR round trip on the monitor's clock
    # RTCP XR VoIP metrics (RFC 3611 4.7), last block about this SSRC (None: none seen/n.a.)
    xr_r_factor: int | None = None
    xr_mos_lq: float | None = None
    xr_mos_cq: float | None = None
    xr_loss_rate: float | None = None  # 0..1
    xr_discard_rate: float | None = None  # 0..1
    xr_round_trip_s: float | None = None
    xr_end_system_delay_s: float | None = None
    # RFC 3550 A.1 received (the period's, the stream's): what loss is computed from
    received: int = 0
    total_received: int = 0


@dataclass(slots=True)
class DialogRecord:
    call_id: str
    from_uri: str
    to_uri: str
    from_tag: str
    to_tag: str
    start_ns: int  # first INVITE on the wire
    end_ns: int  # BYE final response / failure final / CANCEL's 487 / timeout / expiry
    # Bounded set: completed, failed_4xx, failed_5xx, failed_6xx, redirected, cancelled,
    # timed_out, bye_failed, expired, evicted, open (still open when a replay ended)
    outcome: str
    final_status: int  # final status of the INVITE (0 when none)
    transport: str  # "udp" / "tcp"
    src: str  # "ip:port" of the INVITE's sender
    dst: str
    srd_s: float | None = None
    sdt_s: float | None = None
    user_agent: str = ""
    events: list[RecordEvent] = field(default_factory=list)
    events_dropped: int = 0
    session_id: str = ""  # RFC 7989 Session-ID of the initial INVITE, as sent ("" if none)
    correlation: str = ""  # the configured correlation header's value (e.g. X-CID), if any
    # media on: the final report of every RTP stream of the call (docs/media.md); the record is
    # then held until the call's media ended (its linger after end_ns), so these are complete
    # a shared empty tuple unless the call had media: no list object per record
    media: Sequence[MediaStream] = ()


@dataclass(slots=True)
class RegistrationRecord:
    aor: str
    call_id: str
    start_ns: int
    end_ns: int
    outcome: str  # registered, unregistered, failed, timed_out, evicted, open
    final_status: int
    transport: str
    src: str
    dst: str
    rrd_s: float | None = None
    challenged: bool = False
