"""The fast constructors of frozen events build the same objects as the dataclass __init__."""

from __future__ import annotations

import dataclasses

import pytest

from sip_otel.records import DialogRecord, RecordEvent
from sip_otel.sip.events import (
    AttemptEnded,
    SessionEnded,
    attempt_ended,
    record_event,
    session_ended,
)


def _record() -> DialogRecord:
    return DialogRecord("c", "sip:a@x", "sip:b@x", "fa", "tb", 1, 2, "completed", 200, "udp",
                        "10.0.0.1:5060", "10.0.0.2:5060")  # fmt: skip


def test_record_event_is_a_real_frozen_record_event() -> None:
    ev = record_event(5, "sip.bye", 0, "BYE")
    assert type(ev) is RecordEvent and ev == RecordEvent(5, "sip.bye", 0, "BYE")
    assert hash(ev) == hash(RecordEvent(5, "sip.bye", 0, "BYE"))
    assert repr(ev) == "RecordEvent(ts_ns=5, name='sip.bye', status=0, method='BYE')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.name = "x"  # type: ignore[misc]


def test_attempt_and_session_ended_match_their_dataclass() -> None:
    rec = _record()
    assert attempt_ended("failed_4xx", 486, "", (120,), rec) == AttemptEnded(
        "failed_4xx", 486, "", (120,), rec
    )
    answered = AttemptEnded("answered", 200, "", (), None)
    assert attempt_ended("answered", 200, "", (), None) == answered
    s = session_ended("completed", 3, 4, True, True, rec)
    assert type(s) is SessionEnded and s == SessionEnded("completed", 3, 4, True, True, rec)
    assert dataclasses.asdict(s)["sdd_ns"] == 4
