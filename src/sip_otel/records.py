"""Finished dialogs and registration attempts: what telemetry turns into spans.

Emitted by the dialog/registration layer when an attempt ends (never while it is open). Times are
packet times in ns. ``events`` is bounded (:data:`MAX_RECORD_EVENTS`); overflow is counted in
``events_dropped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_RECORD_EVENTS", "DialogRecord", "RecordEvent", "RegistrationRecord"]

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
