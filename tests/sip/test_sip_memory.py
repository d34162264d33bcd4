"""The memory budget in the tracker (docs/reliability.md, "Memory budget"): transactions,
INVITE attempts, dialogs and registrations charge what they keep; past the limit the oldest
entries of the largest table are evicted with the ``<table>.memory`` reason.

Expected bytes follow the charging rules of so_common.h, computed by hand from the struct sizes
the build reports (``_core.track_entry_sizes()``): a pooled entry of ``s`` bytes costs
``s + s // 2 + 48`` (plus 48 when a timer queue holds an item for it), a malloc'd block of
``n`` bytes ``(n + 23) & ~15``; the tables get 15/16 of the limit, records 1/16.
"""

from __future__ import annotations

from sipflow import Flow, request, response

from sip_otel import _core
from sip_otel.sip.tracker import TrackerConfig

SIZES = _core.track_entry_sizes()


def entry(size: int, queued: bool = False) -> int:
    return size + size // 2 + 48 + (48 if queued else 0)


def block(n: int) -> int:
    return (n + 8 + 15) & ~15 if n else 0


def limit_for(tables: int) -> int:
    """The smallest limit whose tables' share (15/16) is at least ``tables`` bytes."""
    limit = tables * 16 // 15
    while limit - limit // 16 < tables:
        limit += 1
    return limit


# An unanswered INVITE of request(): Call-ID "c00000" (6), From tag "a1" (2), From URI
# sip:alice@example.com (21), To URI sip:bob@example.com (19), no User-Agent/Session-ID.
TXN = entry(SIZES["transaction"], queued=True)
ATTEMPT = (
    entry(SIZES["attempt"])
    + block(6 + 2)  # keys: Call-ID and From tag
    + block(SIZES["attempt_record"])
    + block(6 + 21 + 19 + 2)  # record strings
    + block(8 * SIZES["record_event"])  # the first record events array
    + entry(SIZES["attempt_entry"])  # its row in the attempts table
)


def invite(flow: Flow, i: int) -> None:
    flow.send(request("INVITE", 0.001 * i, call_id=f"c{i:05d}", branch=f"z9hG4bK-{i}"))


def test_invite_flood_evicts_the_oldest_attempts_with_their_transactions() -> None:
    flow = Flow(config=TrackerConfig(memory_limit=limit_for(10 * (ATTEMPT + TXN))))
    for i in range(14):
        invite(flow, i)
        tables = sum(v for k, v in flow.tracker.memory().items() if k not in ("limit", "records"))
        assert tables <= 10 * (ATTEMPT + TXN)
    mem = flow.tracker.memory()
    assert mem["attempts"] == 10 * ATTEMPT
    assert mem["transactions"] == 10 * TXN
    assert mem["dialogs"] == mem["registrations"] == mem["tcp_flows"] == mem["fragments"] == 0
    assert flow.tracker.gauges()["invite_attempts"] == 10
    # each evicted attempt ends (outcome "evicted"); its record does not fit the records' share
    assert flow.stats.evictions == {"attempts.memory": 4, "records.memory": 4}
    # the oldest went, transaction included: its answer is an orphan; the newest is kept
    before = flow.reasons.counts.get("tracker.orphan_response", 0)
    flow.send(response(request("INVITE", 0.0, call_id="c00000", branch="z9hG4bK-0"), 180, 1.0))
    assert flow.reasons.counts.get("tracker.orphan_response", 0) == before + 1
    flow.send(response(request("INVITE", 0.0, call_id="c00013", branch="z9hG4bK-13"), 180, 1.0))
    assert flow.reasons.counts.get("tracker.orphan_response", 0) == before + 1


def test_options_flood_evicts_the_oldest_transactions() -> None:
    flow = Flow(config=TrackerConfig(memory_limit=limit_for(10 * TXN)))
    for i in range(14):
        flow.send(request("OPTIONS", 0.001 * i, call_id=f"o{i}", branch=f"z9hG4bK-o{i}"))
    assert flow.tracker.memory()["transactions"] == 10 * TXN
    assert flow.tracker.gauges()["transactions_tracked"] == 10
    assert flow.stats.evictions == {"transactions.memory": 4}
    # the oldest is gone (its 200 is an orphan), the newest is there (its 200 is not)
    before = flow.reasons.counts.get("tracker.orphan_response", 0)
    flow.send(response(request("OPTIONS", 0.0, call_id="o0", branch="z9hG4bK-o0"), 200, 1.0))
    flow.send(response(request("OPTIONS", 0.0, call_id="o13", branch="z9hG4bK-o13"), 200, 1.0))
    assert flow.reasons.counts.get("tracker.orphan_response", 0) == before + 1


def test_no_limit_keeps_everything() -> None:
    flow = Flow(config=TrackerConfig(memory_limit=0))
    for i in range(14):
        invite(flow, i)
    assert flow.tracker.memory()["attempts"] == 14 * ATTEMPT
    assert flow.stats.evictions == {}


def test_dialogs_evict_the_oldest_and_the_newest_stay_usable() -> None:
    flow = Flow(config=TrackerConfig(memory_limit=64 * 1024))
    n = 200
    for i in range(n):
        flow.call(float(i), call_id=f"d{i:04d}")
        mem = flow.tracker.memory()
        tables = sum(v for k, v in mem.items() if k not in ("limit", "records"))
        assert tables <= mem["limit"] - mem["limit"] // 16
    ev = flow.stats.evictions
    assert ev.get("dialogs.memory", 0) > 0
    assert not any(k.endswith(".full") for k in ev)
    kept = flow.tracker.gauges()["sessions"]
    assert 0 < kept < n
    # the newest dialog is still there: its BYE completes it
    bye = flow.req("BYE", n + 1.0, call_id=f"d{n - 1:04d}", to_tag="b1", cseq=2)
    flow.resp(bye, 200, n + 1.05)
    assert flow.tracker.gauges()["sessions"] == kept - 1
    # the oldest is gone: its BYE is an orphan
    flow.req("BYE", n + 2.0, call_id="d0000", to_tag="b1", cseq=2)
    assert flow.reasons.counts.get("dialogs.orphan_bye") == 1


def test_registrations_evict_with_the_memory_reason() -> None:
    flow = Flow(config=TrackerConfig(memory_limit=32 * 1024))
    for i in range(300):
        req = flow.req("REGISTER", 0.01 * i, call_id=f"r{i}", to_uri=f"sip:u{i}@example.com")
        flow.resp(req, 200, 0.01 * i + 0.005, to_tag=f"s{i}", expires=3600)
        mem = flow.tracker.memory()
        tables = sum(v for k, v in mem.items() if k not in ("limit", "records"))
        assert tables <= mem["limit"] - mem["limit"] // 16
    ev = flow.stats.evictions
    assert set(ev) <= {"registrations.memory", "register_attempts.memory", "transactions.memory",
                       "records.memory"}  # fmt: skip
    assert ev.get("registrations.memory", 0) + ev.get("register_attempts.memory", 0) > 0
    assert 0 < flow.tracker.gauges()["registrations"] < 300
