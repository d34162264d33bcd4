"""The instrument row type, the bounded label sets and the readers (Snapshot -> points).

Split from :mod:`.instruments` (the table itself). A reader turns one
:class:`~.snapshot.Snapshot` into ``(value, attributes)`` points; attributes only ever take
values from bounded sets (:func:`method_label`, :func:`code_label`, slugs defined in code).
No OTel import here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ..stats import HistogramSnapshot
from .snapshot import Snapshot

__all__ = [
    "LATER_CODES",
    "METHODS",
    "SEED_CODES",
    "Attrs",
    "InstrumentSpec",
    "Point",
    "code_label",
    "method_label",
    "prometheus_name",
]

Kind = Literal["counter", "gauge", "histogram"]
Attrs = dict[str, str]
Value = int | float | HistogramSnapshot
Point = tuple[Value, Attrs]

# Methods with their own counter in sip-exporter; also the bounded label set of every
# ``method`` label (anything else is "other": a method token comes from the wire).
METHODS: tuple[str, ...] = (
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "UPDATE",
    "INFO",
    "REFER",
    "SUBSCRIBE",
    "NOTIFY",
    "PRACK",
    "PUBLISH",
    "MESSAGE",
)
_METHOD_SET = frozenset(METHODS)
# Status codes with their own counter: sip-exporter 0.5, then its later versions.
SEED_CODES: tuple[int, ...] = (
    100,
    180,
    183,
    200,
    202,
    300,
    302,
    400,
    401,
    403,
    404,
    408,
    480,
    486,
    500,
    503,
    600,
    603,
)
LATER_CODES: tuple[int, ...] = (181, 182, 405, 481, 487, 488, 501, 502, 504, 604, 606)
_UNIT_SUFFIX = {"s": "seconds", "By": "bytes"}


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    name: str  # OTel name (Prometheus name: see prometheus_name)
    kind: Kind
    unit: str
    description: str  # also says when it changes
    read: Callable[[Snapshot], Iterable[Point]]
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histogram upper bounds, seconds
    ref: str = ""  # RFC section, or "sip-exporter" for compatibility names


def method_label(method: str) -> str:
    return method if method in _METHOD_SET else "other"


def code_label(code: int) -> str:
    return str(code) if 100 <= code <= 699 else "other"


def prometheus_name(spec: InstrumentSpec) -> str:
    """The family name the OTel Prometheus exporter gives ``spec`` (without scope/unit options)."""
    name = spec.name
    suffix = _UNIT_SUFFIX.get(spec.unit, "")
    if suffix and not name.endswith("_" + suffix):
        name += "_" + suffix
    if spec.kind == "counter":
        name = name.removesuffix("_total") + "_total"
    return name


# -- readers: Snapshot -> points ---------------------------------------------------------------


def read_one(get: Callable[[Snapshot], int | float]) -> Callable[[Snapshot], Iterable[Point]]:
    return lambda s: ((get(s), {}),)


def read_optional(get: Callable[[Snapshot], float | None]) -> Callable[[Snapshot], Iterable[Point]]:
    def read(s: Snapshot) -> Iterable[Point]:
        v = get(s)
        return () if v is None else ((v, {}),)

    return read


def read_request(method: str) -> Callable[[Snapshot], Iterable[Point]]:
    return read_one(lambda s: s.requests.get(method, 0))


def read_response(code: int) -> Callable[[Snapshot], Iterable[Point]]:
    return read_one(lambda s: s.responses.get(code, 0))


def read_requests(s: Snapshot) -> Iterable[Point]:
    out: dict[str, int] = {}
    for m, n in s.requests.items():
        key = method_label(m)
        out[key] = out.get(key, 0) + n
    return [(n, {"method": m}) for m, n in sorted(out.items())]


def read_responses(s: Snapshot) -> Iterable[Point]:
    out: dict[tuple[str, str], int] = {}
    for (code, m), n in s.responses_by_method.items():
        key = (code_label(code), method_label(m))
        out[key] = out.get(key, 0) + n
    return [(n, {"code": c, "method": m}) for (c, m), n in sorted(out.items())]


def read_by_method(
    get: Callable[[Snapshot], dict[str, int]],
) -> Callable[[Snapshot], Iterable[Point]]:
    def read(s: Snapshot) -> Iterable[Point]:
        out: dict[str, int] = {}
        for m, n in get(s).items():
            key = method_label(m)
            out[key] = out.get(key, 0) + n
        return [(n, {"method": m}) for m, n in sorted(out.items())]

    return read


def read_by_code(s: Snapshot) -> Iterable[Point]:
    out: dict[str, int] = {}
    for code, n in s.register_failures.items():
        key = code_label(code)
        out[key] = out.get(key, 0) + n
    return [(n, {"code": c}) for c, n in sorted(out.items())]


def read_outcomes(s: Snapshot) -> Iterable[Point]:
    return [(n, {"outcome": o}) for o, n in sorted(s.dialog_outcomes.items())]


def read_system_errors(s: Snapshot) -> int:
    return sum(n for k, n in s.reasons.items() if k.startswith("internal."))


def read_errors(s: Snapshot) -> Iterable[Point]:
    out = []
    for slug, n in sorted(s.reasons.items()):
        if slug.startswith("skipped."):
            continue
        layer, _, reason = slug.partition(".")
        out.append((n, {"layer": layer, "reason": reason or "unknown"}))
    return out


def read_skipped(s: Snapshot) -> Iterable[Point]:
    items = sorted(s.reasons.items())
    return [(n, {"reason": k[8:]}) for k, n in items if k.startswith("skipped.")]


def read_evictions(s: Snapshot) -> Iterable[Point]:
    out = []
    for key, n in sorted(s.evictions.items()):
        table, _, reason = key.partition(".")
        out.append((n, {"table": table, "reason": reason or "unknown"}))
    return out


# gauges() keys with an instrument of their own; every other key is a table/queue size.
_OWN_GAUGES = frozenset({"sessions", "registrations", "early_dialogs", "transactions"})


def read_tables(s: Snapshot) -> Iterable[Point]:
    out = []
    for key, n in sorted(s.gauges.items()):
        if key not in _OWN_GAUGES and not key.startswith("memory"):
            out.append((n, {"table": key.removeprefix("table.")}))
    return out


def read_memory(s: Snapshot) -> Iterable[Point]:
    """Bytes charged to the memory budget per table (Pipeline.gauges() ``memory.<table>``)."""
    return [
        (n, {"table": key.removeprefix("memory.")})
        for key, n in sorted(s.gauges.items())
        if key.startswith("memory.")
    ]


def read_gauge(key: str, default: int | None = 0) -> Callable[[Snapshot], Iterable[Point]]:
    def read(s: Snapshot) -> Iterable[Point]:
        v = s.gauges.get(key, default)
        return () if v is None else ((v, {}),)

    return read


def read_hist(*keys: tuple[str, Attrs]) -> Callable[[Snapshot], Iterable[Point]]:
    return lambda s: [(s.hist[k], attrs) for k, attrs in keys]


def read_capture_drops_by(s: Snapshot) -> Iterable[Point]:
    # Live capture only (a replay has no capture: the series is absent).
    return [(n, {"reason": reason}) for reason, n in sorted(s.capture_drops_by.items())]


def read_reattach(s: Snapshot) -> Iterable[Point]:
    return [(n, {"reason": reason}) for reason, n in sorted(s.capture_reattach.items())]


def read_http_errors(s: Snapshot) -> Iterable[Point]:
    return [(n, {"kind": kind}) for kind, n in s.http_client_errors.items()]


def read_build(s: Snapshot) -> Iterable[Point]:
    return ((1, {"version": s.version, "capture": s.capture_path}),)
