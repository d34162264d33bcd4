"""Every instrument sip-otel exports, defined once as data, and their registration on a Meter.

Theory of operation: the pipeline never calls OTel. It counts in plain Python
(:class:`~sip_otel.stats.PipelineStats`, :class:`~sip_otel.errors.Reasons`); at collection time
(a scrape of ``/metrics`` or a periodic OTLP export) the SDK runs the observable callbacks
registered here, each of which reads one shared :class:`~.snapshot.Snapshot` of those aggregates.

* ``counter`` rows become ``ObservableCounter`` s reporting cumulative totals;
* ``gauge`` rows become ``ObservableGauge`` s; a gauge whose value is undefined (SER before any
  INVITE) yields no observation, so the series is absent, never 0;
* ``histogram`` rows have no observable instrument in OTel: :mod:`.readers` builds their exact
  cumulative data points from the :class:`~sip_otel.stats.Histogram` snapshots and adds them to
  every collection (same bucket bounds as the pipeline's, no re-binning, exact sum).

OTel names carry neither ``_total`` nor a unit suffix; the Prometheus exporter adds ``_total`` to
counters and ``_seconds``/``_bytes`` from the unit (``{x}`` annotations add nothing), which gives
exactly the sip-exporter names. :func:`prometheus_name` applies the same rule for docs and tests.
Labels only ever take values from bounded sets (methods, status codes 100-699, outcome and reason
slugs defined in code, table names, codecs and media directions): never Call-ID, URI, number or
address. The row type and the readers are in :mod:`.points`, the media rows in :mod:`.media`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ..stats import DELAY_BUCKETS_S, DURATION_BUCKETS_S, HistogramSnapshot
from .media import MEDIA_INSTRUMENTS
from .points import (
    LATER_CODES,
    METHODS,
    SEED_CODES,
    InstrumentSpec,
    method_label,
    prometheus_name,
    read_build,
    read_by_code,
    read_by_method,
    read_capture_drops_by,
    read_errors,
    read_evictions,
    read_gauge,
    read_hist,
    read_http_errors,
    read_memory,
    read_one,
    read_optional,
    read_outcomes,
    read_reattach,
    read_request,
    read_requests,
    read_response,
    read_responses,
    read_skipped,
    read_system_errors,
    read_tables,
)
from .snapshot import Snapshot

__all__ = [
    "INSTRUMENTS",
    "METHODS",
    "InstrumentSpec",
    "markdown_table",
    "method_label",
    "prometheus_name",
    "register_instruments",
]


# -- the table ------------------------------------------------------------------------------

_SE = "sip-exporter"
_WIRE = "every message on the wire, retransmissions included"


def _table() -> tuple[InstrumentSpec, ...]:
    rows: list[InstrumentSpec] = [
        InstrumentSpec(
            "sip_exporter_invite",
            "counter",
            "{attempt}",
            "New INVITE session attempts, as sip-exporter 1.x counts them: no retransmissions "
            "(sip_exporter_sip_retransmission_total), no re-INVITEs (sip_exporter_reinvite_total), "
            "a credentialed retry after 401/407 not again (unless "
            "--challenge-retry-new-attempt); the SER base. Every INVITE on the "
            'wire: sip_requests_total{method="INVITE"}.',
            read_one(lambda s: s.rfc.invite_attempts),
            ref=_SE,
        )
    ]
    for m in METHODS:
        if m == "INVITE":
            continue
        rows.append(
            InstrumentSpec(
                f"sip_exporter_{m.lower()}",
                "counter",
                "{request}",
                f"SIP {m} requests seen ({_WIRE}).",
                read_request(m),
                ref=_SE,
            )
        )
    for code in sorted((*SEED_CODES, 407, *LATER_CODES)):
        name = (
            "sip_exporter_proxy_authentication_required" if code == 407 else f"sip_exporter_{code}"
        )
        rows.append(
            InstrumentSpec(
                name,
                "counter",
                "{response}",
                f"SIP {code} responses seen, any method ({_WIRE}).",
                read_response(code),
                ref=_SE,
            )
        )
    rows += [
        InstrumentSpec(
            "sip_exporter_packets",
            "counter",
            "{message}",
            "SIP messages parsed, requests + responses (every message on the wire).",
            read_one(lambda s: s.messages),
            ref=_SE,
        ),
        InstrumentSpec(
            "sip_exporter_system_error",
            "counter",
            "{error}",
            "Internal errors: bugs caught at the pipeline boundary (internal.*).",
            read_one(read_system_errors),
            ref=_SE,
        ),
        InstrumentSpec(
            "sip_exporter_sessions",
            "gauge",
            "{dialog}",
            "Active confirmed INVITE dialogs (2xx seen, no BYE final yet).",
            read_gauge("sessions"),
            ref="RFC 3261 §12",
        ),
        InstrumentSpec(
            "sip_exporter_ser",
            "gauge",
            "{percent}",
            "Session Establishment Ratio, percent; absent while undefined "
            "(no attempt, or every attempt answered 3xx).",
            read_optional(lambda s: s.rfc.ser()),
            ref="RFC 6076 §4.6",
        ),
        InstrumentSpec(
            "sip_exporter_seer",
            "gauge",
            "{percent}",
            "Session Establishment Effectiveness Ratio, percent; absent if undefined.",
            read_optional(lambda s: s.rfc.seer()),
            ref="RFC 6076 §4.7",
        ),
        InstrumentSpec(
            "sip_exporter_isa",
            "gauge",
            "{percent}",
            "Ineffective Session Attempts, percent; absent while undefined.",
            read_optional(lambda s: s.rfc.isa()),
            ref="RFC 6076 §4.8",
        ),
        InstrumentSpec(
            "sip_exporter_scr",
            "gauge",
            "{percent}",
            "Session Completion Ratio, percent; absent while undefined.",
            read_optional(lambda s: s.rfc.scr()),
            ref="RFC 6076 §4.9",
        ),
        InstrumentSpec(
            "sip_exporter_invite_200",
            "counter",
            "{attempt}",
            "INVITE session attempts answered 200 (SER numerator; de-duplicated).",
            read_one(lambda s: s.rfc.invite_success),
            ref="RFC 6076 §4.6",
        ),
        InstrumentSpec(
            "sip_exporter_invite_3xx",
            "counter",
            "{attempt}",
            "INVITE session attempts answered 3xx (leave the SER/SEER base).",
            read_one(lambda s: s.rfc.invite_3xx),
            ref="RFC 6076 §4.6",
        ),
        InstrumentSpec(
            "sip_exporter_reinvite",
            "counter",
            "{request}",
            "re-INVITEs inside confirmed dialogs (new transactions).",
            read_one(lambda s: s.reinvites),
            ref="RFC 3261 §14",
        ),
        InstrumentSpec(
            "sip_exporter_register_success",
            "counter",
            "{attempt}",
            "Registration attempts answered 2xx.",
            read_one(lambda s: s.rfc.register_success),
            ref="RFC 6076 §4.1",
        ),
        InstrumentSpec(
            "sip_exporter_register_failure",
            "counter",
            "{attempt}",
            "Registration attempts ending in a failure final response, by code.",
            read_by_code,
            labels=("code",),
            ref="RFC 6076 §4.2",
        ),
        InstrumentSpec(
            "sip_exporter_active_registrations",
            "gauge",
            "{registration}",
            "Bindings currently registered (2xx to REGISTER, not yet expired).",
            read_gauge("registrations"),
            ref="RFC 3261 §10",
        ),
        InstrumentSpec(
            "sip_exporter_sip_retransmission",
            "counter",
            "{message}",
            "Retransmitted requests and responses, by (CSeq) method.",
            read_by_method(lambda s: s.retransmissions),
            labels=("method",),
            ref="RFC 3261 §17",
        ),
        # generic families: no status code or method is lost
        InstrumentSpec(
            "sip_requests",
            "counter",
            "{request}",
            f"SIP requests by method ({_WIRE}).",
            read_requests,
            labels=("method",),
        ),
        InstrumentSpec(
            "sip_responses",
            "counter",
            "{response}",
            f"SIP responses by status code and CSeq method ({_WIRE}).",
            read_responses,
            labels=("code", "method"),
        ),
        InstrumentSpec(
            "sip_dialogs",
            "counter",
            "{dialog}",
            "Finished INVITE dialog attempts by outcome (one per span).",
            read_outcomes,
            labels=("outcome",),
            ref="RFC 3261 §12",
        ),
        InstrumentSpec(
            "sip_early_dialogs",
            "gauge",
            "{dialog}",
            "INVITE attempts not yet answered finally.",
            read_gauge("early_dialogs"),
            ref="RFC 3261 §12",
        ),
        InstrumentSpec(
            "sip_transactions",
            "gauge",
            "{transaction}",
            "Open SIP transactions being tracked.",
            read_gauge("transactions"),
            ref="RFC 3261 §17",
        ),
        # RFC 6076 numerators and denominators (de-duplicated attempts, never messages)
        InstrumentSpec(
            "sip_rfc6076_session_attempts",
            "counter",
            "{attempt}",
            "INVITE session attempts (SER/SEER base, ISA and SCR denominator).",
            read_one(lambda s: s.rfc.invite_attempts),
            ref="RFC 6076 §4.6-4.9",
        ),
        InstrumentSpec(
            "sip_rfc6076_session_effective",
            "counter",
            "{attempt}",
            "Attempts answered 200/480/486/600/603 (SEER numerator).",
            read_one(lambda s: s.rfc.invite_effective),
            ref="RFC 6076 §4.7",
        ),
        InstrumentSpec(
            "sip_rfc6076_session_ineffective",
            "counter",
            "{attempt}",
            "Attempts answered 408/500/503/504 or timed out (ISA numerator).",
            read_one(lambda s: s.rfc.invite_ineffective),
            ref="RFC 6076 §4.8",
        ),
        InstrumentSpec(
            "sip_rfc6076_sessions_completed",
            "counter",
            "{session}",
            "Completed sessions (SCR numerator).",
            read_one(lambda s: s.rfc.sessions_completed),
            ref="RFC 6076 §4.9",
        ),
        InstrumentSpec(
            "sip_rfc6076_registration_attempts",
            "counter",
            "{attempt}",
            "Registration attempts, a challenge and its retry being one (IRA base).",
            read_one(lambda s: s.rfc.register_attempts),
            ref="RFC 6076 §4.2",
        ),
        InstrumentSpec(
            "sip_rfc6076_registration_ineffective",
            "counter",
            "{attempt}",
            "Ineffective registration attempts (IRA numerator).",
            read_one(lambda s: s.rfc.register_ineffective),
            ref="RFC 6076 §4.2",
        ),
        InstrumentSpec(
            "sip_rfc6076_ira",
            "gauge",
            "{percent}",
            "Ineffective Registration Attempts, percent; absent while undefined.",
            read_optional(lambda s: s.rfc.ira()),
            ref="RFC 6076 §4.2",
        ),
        InstrumentSpec(
            "sip_rfc6076_srd",
            "histogram",
            "s",
            "Session Request Delay: first INVITE to its status-indicative response, by "
            "result (success: first non-100 provisional or 200; failure: failure final)",
            read_hist(
                ("srd_success", {"result": "success"}), ("srd_failure", {"result": "failure"})
            ),
            labels=("result",),
            buckets=DELAY_BUCKETS_S,
            ref="RFC 6076 §4.3",
        ),
        InstrumentSpec(
            "sip_rfc6076_sdd",
            "histogram",
            "s",
            "Session Disconnect Delay: BYE to its final response (success) or "
            "its timeout (failure).",
            read_hist(
                ("sdd_success", {"result": "success"}), ("sdd_failure", {"result": "failure"})
            ),
            labels=("result",),
            buckets=DELAY_BUCKETS_S,
            ref="RFC 6076 §4.4",
        ),
        InstrumentSpec(
            "sip_rfc6076_sdt",
            "histogram",
            "s",
            "Session Duration Time: 2xx to the BYE (success), or to the BYE's "
            "timeout (failure); early-media-only sessions excluded.",
            read_hist(("sdt", {"result": "success"}), ("sdt_failure", {"result": "failure"})),
            labels=("result",),
            buckets=DURATION_BUCKETS_S,
            ref="RFC 6076 §4.5",
        ),
        InstrumentSpec(
            "sip_rfc6076_rrd",
            "histogram",
            "s",
            "Registration Request Delay: first REGISTER to the final 2xx (challenge included).",
            read_hist(("rrd", {})),
            buckets=DELAY_BUCKETS_S,
            ref="RFC 6076 §4.1",
        ),
        # self-monitoring
        InstrumentSpec(
            "sip_otel_frames",
            "counter",
            "{frame}",
            "Frames received from the capture (or read from the file).",
            read_one(lambda s: s.frames),
        ),
        InstrumentSpec(
            "sip_otel_received",
            "counter",
            "By",
            "Bytes of the frames received.",
            read_one(lambda s: s.bytes),
        ),
        InstrumentSpec(
            "sip_otel_errors",
            "counter",
            "{error}",
            "Decode/parse errors and drops by layer and reason slug (internal.* are bugs).",
            read_errors,
            labels=("layer", "reason"),
        ),
        InstrumentSpec(
            "sip_otel_skipped",
            "counter",
            "{packet}",
            "Non-SIP traffic skipped, by reason (not errors).",
            read_skipped,
            labels=("reason",),
        ),
        InstrumentSpec(
            "sip_otel_table_entries",
            "gauge",
            "{entry}",
            "Entries in each bounded table (decoder and tracker).",
            read_tables,
            labels=("table",),
        ),
        InstrumentSpec(
            "sip_otel_memory",
            "gauge",
            "By",
            "Bytes each table keeps, charged to the one memory budget (docs/reliability.md).",
            read_memory,
            labels=("table",),
        ),
        InstrumentSpec(
            "sip_otel_memory_limit",
            "gauge",
            "By",
            "The memory budget (--memory-limit): past it the oldest entries of the largest "
            'table are evicted (sip_otel_evictions_total{reason="memory"}).',
            read_gauge("memory_limit", None),
        ),
        InstrumentSpec(
            "sip_otel_evictions",
            "counter",
            "{entry}",
            "Entries evicted from a bounded table, by table and reason.",
            read_evictions,
            labels=("table", "reason"),
        ),
        InstrumentSpec(
            "sip_otel_capture_drops",
            "counter",
            "{packet}",
            "Packets the kernel/capture ring dropped before we saw them.",
            read_one(lambda s: s.capture_drops),
        ),
        InstrumentSpec(
            "sip_otel_capture_drops_by_reason",
            "counter",
            "{packet}",
            "sip_otel_capture_drops_total by reason: ring_full (no room in a capture ring) or "
            "load_fail (eBPF: the packet could not be copied); live capture only.",
            read_capture_drops_by,
            labels=("reason",),
        ),
        InstrumentSpec(
            "sip_otel_capture_reattach",
            "counter",
            "{socket}",
            "Capture sockets re-attached to a named interface that came back with a "
            "new ifindex (deleted and re-created, or renamed into place), by how it "
            "was noticed: netlink (a link event) or resync (after lost events).",
            read_reattach,
            labels=("reason",),
        ),
        InstrumentSpec(
            "sip_otel_capture_interfaces_gone",
            "gauge",
            "{interface}",
            "Named capture interfaces that do not exist right now (capture on them "
            "resumes when they come back); absent when capturing on all interfaces.",
            read_optional(lambda s: s.capture_detached),
        ),
        InstrumentSpec(
            "sip_otel_spans_dropped",
            "counter",
            "{span}",
            "Spans dropped: span queue full, or their OTLP export failed.",
            read_one(lambda s: s.spans_dropped),
        ),
        InstrumentSpec(
            "sip_otel_http_client_errors",
            "counter",
            "{error}",
            "Scrape-endpoint client errors by kind: bad_request, request_too_large, "
            "method_not_allowed, unauthorized, header_timeout, write_timeout, disconnect, "
            "tls_error, over_capacity, fd_exhausted (docs/deployment.md); absent without "
            "/metrics.",
            read_http_errors,
            labels=("kind",),
        ),
        InstrumentSpec(
            "sip_otel_build_info",
            "gauge",
            "1",
            "Always 1; labels give the sip-otel version and the capture path.",
            read_build,
            labels=("version", "capture"),
        ),
    ]
    return tuple(rows)


# the media rows (issue 12) come last: their families appear with the first media report
INSTRUMENTS: tuple[InstrumentSpec, ...] = (*_table(), *MEDIA_INSTRUMENTS)


def register_instruments(meter: Meter, current: Callable[[], Snapshot]) -> None:
    """Create the observable instruments of :data:`INSTRUMENTS` (histograms excepted) on ``meter``.

    ``current`` returns the snapshot of the collection in progress (see :mod:`.readers`).
    """
    for spec in INSTRUMENTS:
        if spec.kind == "histogram":
            continue
        cb = _callback(spec, current)
        if spec.kind == "counter":
            meter.create_observable_counter(spec.name, [cb], spec.unit, spec.description)
        else:
            meter.create_observable_gauge(spec.name, [cb], spec.unit, spec.description)


def _callback(
    spec: InstrumentSpec, current: Callable[[], Snapshot]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    read = spec.read

    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        points = read(current())
        return [Observation(v, a) for v, a in points if not isinstance(v, HistogramSnapshot)]

    return callback


def markdown_table() -> str:
    """The instrument table of docs/metrics.md (Prometheus name, type, unit, labels, ...)."""
    lines = [
        "| Prometheus name | type | unit | labels | meaning / when it changes | reference |",
        "|---|---|---|---|---|---|",
    ]
    for spec in INSTRUMENTS:
        labels = ", ".join(spec.labels) or "-"
        lines.append(
            f"| `{prometheus_name(spec)}` | {spec.kind} | `{spec.unit}` | {labels} | "
            f"{spec.description} | {spec.ref or '-'} |"
        )
    return "\n".join(lines) + "\n"
