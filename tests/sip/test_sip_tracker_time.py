"""Tracker time arithmetic at the int64 edges: deadlines and delays saturate (so_sat_add /
so_sat_sub in so_common.h), they never wrap.

Packet times are whatever the capture says: a pcapng timestamp is 64 bits in the file's own
resolution, and a forged one lands anywhere in int64. Python's ints never overflowed; the C core
must not either (signed overflow is undefined behaviour, and a wrapped deadline fires at once or
never). The expected values are worked out by hand from the saturation rule.
"""

from __future__ import annotations

from netbuild import INVITE, OK, eth_udp4
from sip_otel.net.types import Frame
from sip_otel.pipeline import Pipeline, PipelineConfig
from sip_otel.records import DialogRecord, RegistrationRecord
from sip_otel.sip.tracker import TrackerConfig

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
S = 1_000_000_000


def test_deadline_past_int64_max_is_far_future_not_now() -> None:
    # INVITE 1 s before the end of time: Timer B (32 s) would wrap to a time long past; the
    # saturated deadline is INT64_MAX, so 1 ms later nothing has timed out.
    p = Pipeline()
    p.feed([Frame(INT64_MAX - S, 1, eth_udp4(INVITE))])
    p.handle_timer(INT64_MAX - S + 1_000_000)
    p.finish(INT64_MAX - S + 1_000_000)
    assert p.stats.dialog_outcomes == {"open": 1}


def test_deadline_reaches_int64_max() -> None:
    # ... and at INT64_MAX itself the saturated deadline is due.
    p = Pipeline()
    p.feed([Frame(INT64_MAX - S, 1, eth_udp4(INVITE))])
    p.handle_timer(INT64_MAX)
    p.finish(INT64_MAX)
    assert p.stats.dialog_outcomes == {"timed_out": 1}


def test_delay_across_all_of_int64_saturates() -> None:
    # Packet time going backwards by nearly 2**64 ns (an INVITE at INT64_MAX - 1, its 200 at
    # INT64_MIN + 1: no timer runs on time that goes back): the SRD is the saturated INT64_MIN
    # ns, not the wrapped +3 ns.
    records: list[DialogRecord | RegistrationRecord] = []
    p = Pipeline(on_record=records.append)
    p.feed([Frame(INT64_MAX - 1, 1, eth_udp4(INVITE))])
    p.feed([Frame(INT64_MIN + 1, 1, eth_udp4(OK))])
    p.finish(INT64_MAX - 1)
    srd = p.stats.rfc6076.srd_success
    assert srd.count == 1
    assert srd.max == INT64_MIN / 1e9
    assert len(records) == 1 and records[0].srd_s == INT64_MIN / 1e9


def test_configured_times_at_int64_max_saturate() -> None:
    # T1, the sweep interval and the Session-Expires default at their largest: 64*T1 and
    # s -> ns saturate to INT64_MAX, so the dialog set up at 1-2 s is still open at the end.
    cfg = PipelineConfig(
        tracker=TrackerConfig(
            t1_ns=INT64_MAX // 2,
            expiry_check_ns=INT64_MAX,
            session_expires_default_s=INT64_MAX,
            register_expires_default_s=INT64_MAX,
        )
    )
    p = Pipeline(cfg)
    p.feed([Frame(1 * S, 1, eth_udp4(INVITE)), Frame(2 * S, 1, eth_udp4(OK))])
    p.handle_timer(INT64_MAX - 1)
    p.finish(INT64_MAX - 1)
    # Wrapped, 1800 s * INT64_MAX would be -1e9 ns: the dialog would have "expired" at 1 s.
    assert p.stats.dialog_outcomes == {"open": 1}
