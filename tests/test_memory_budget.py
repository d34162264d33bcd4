"""Issue 11 row 1: one memory budget over the whole pipeline. Small versions of the floods of
``benchmarks/floods.py`` (fat dialogs, fat TCP flows, INVITE flood, REGISTER flood, fragment
bomb) run through a Pipeline with a small limit: after every batch the tables' bytes stay within
their share of the limit, evictions are counted with ``.memory`` reasons, and the gauges report
the same figures. (The full-size floods and their peak RSS: ``python benchmarks/floods.py``;
no RSS threshold here.)"""

from __future__ import annotations

import importlib.util
import sys
from itertools import islice
from pathlib import Path
from types import ModuleType

import pytest

from sip_otel.net.types import Frame
from sip_otel.pipeline import Pipeline, PipelineConfig

FLOODS = Path(__file__).resolve().parents[1] / "benchmarks" / "floods.py"
LIMIT = 1 << 20  # 1 MiB: the tables get 15/16 of it
TABLES = LIMIT - LIMIT // 16


def _floods() -> ModuleType:
    spec = importlib.util.spec_from_file_location("floods", FLOODS)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["floods"] = mod
    spec.loader.exec_module(mod)
    return mod


floods = _floods()

# flood -> (units, the tables that must have evicted for memory)
CASES = {
    "fat_dialogs": (1500, {"dialogs.memory"}),
    "fat_tcp": (40, {"tcp_flows.memory"}),
    "invite_flood": (3000, {"attempts.memory"}),
    "register_flood": (3000, {"register_attempts.memory"}),
    "frag_bomb": (200, {"fragments.memory"}),
}


def run(name: str, units: int, spans: bool) -> Pipeline:
    records: list[object] = []
    pipeline = Pipeline(
        PipelineConfig(memory_limit=LIMIT), on_record=records.append if spans else None
    )
    fn, _ = floods.FLOODS[name]
    frames = fn(units)
    while batch := [Frame(ts, floods.LINKTYPE_RAW, data) for ts, data in islice(frames, 64)]:
        pipeline.feed(batch)
        mem = pipeline.memory()
        tables = sum(v for k, v in mem.items() if k not in ("limit", "records"))
        assert tables <= TABLES, (name, mem)
        assert mem["records"] <= LIMIT // 16
    return pipeline


@pytest.mark.parametrize("spans", [False, True], ids=["no_spans", "spans"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_flood_stays_within_the_budget(name: str, spans: bool) -> None:
    units, must_evict = CASES[name]
    pipeline = run(name, units, spans)
    evictions = pipeline.evictions()
    assert must_evict <= set(evictions), evictions
    assert pipeline.reasons.counts.get("internal.no_memory", 0) == 0
    gauges = pipeline.gauges()
    mem = pipeline.memory()
    assert gauges["memory_limit"] == LIMIT == mem["limit"]
    for table, n in mem.items():
        if table != "limit":
            assert gauges[f"memory.{table}"] == n
    # Everything ends: idle flows and fragment sets time out, transactions linger out, the
    # records are taken. Every byte charged is given back (no leak in the accounting).
    end = pipeline.last_ts_ns + 3600 * 1_000_000_000
    pipeline.finish()
    pipeline.handle_timer(end)
    assert pipeline.gauges()["sessions"] == 0
    assert {k: v for k, v in pipeline.memory().items() if k != "limit" and v} == {}


def test_default_limit_never_triggers_on_a_normal_capture() -> None:
    pipeline = Pipeline()
    fn, _ = floods.FLOODS["fat_dialogs"]
    pipeline.feed(Frame(ts, floods.LINKTYPE_RAW, data) for ts, data in fn(300))
    assert pipeline.memory()["limit"] == 256 * 1024 * 1024
    assert not any(k.endswith(".memory") for k in pipeline.evictions())
    assert pipeline.gauges()["sessions"] == 300
