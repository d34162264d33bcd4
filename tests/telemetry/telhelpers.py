"""Helpers for the telemetry tests: hand-filled aggregates, exposition parsing, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from prometheus_client.parser import text_string_to_metric_families

from netbuild import ethernet, ipv4, udp
from sip_otel.capture.pcapfile import PcapWriter
from sip_otel.errors import Reasons
from sip_otel.stats import PipelineStats
from sip_otel.telemetry.instruments import register_instruments
from sip_otel.telemetry.readers import SCOPE_NAME, SnapshotPeriodicReader, SnapshotScope
from sip_otel.telemetry.snapshot import SnapshotSource

SampleKey = tuple[str, frozenset[tuple[str, str]]]

# The sip-exporter 0.5 surface (../shared/reference/seed-metrics.md), written out by hand.
SEED_COUNTERS = [
    "sip_exporter_invite_total",
    "sip_exporter_ack_total",
    "sip_exporter_bye_total",
    "sip_exporter_cancel_total",
    "sip_exporter_options_total",
    "sip_exporter_register_total",
    "sip_exporter_update_total",
    "sip_exporter_info_total",
    "sip_exporter_refer_total",
    "sip_exporter_subscribe_total",
    "sip_exporter_notify_total",
    "sip_exporter_prack_total",
    "sip_exporter_publish_total",
    "sip_exporter_message_total",
    "sip_exporter_100_total",
    "sip_exporter_180_total",
    "sip_exporter_183_total",
    "sip_exporter_200_total",
    "sip_exporter_202_total",
    "sip_exporter_300_total",
    "sip_exporter_302_total",
    "sip_exporter_400_total",
    "sip_exporter_401_total",
    "sip_exporter_403_total",
    "sip_exporter_404_total",
    "sip_exporter_408_total",
    "sip_exporter_480_total",
    "sip_exporter_486_total",
    "sip_exporter_500_total",
    "sip_exporter_503_total",
    "sip_exporter_600_total",
    "sip_exporter_603_total",
    "sip_exporter_proxy_authentication_required_total",
    "sip_exporter_packets_total",
    "sip_exporter_system_error_total",
]
SEED_GAUGES = ["sip_exporter_sessions", "sip_exporter_ser"]
LATER_COUNTERS = [
    *(f"sip_exporter_{c}_total" for c in (181, 182, 405, 481, 487, 488, 501, 502, 504, 604, 606)),
    "sip_exporter_invite_200_total",
    "sip_exporter_invite_3xx_total",
    "sip_exporter_reinvite_total",
    "sip_exporter_register_success_total",
]
LATER_GAUGES = [
    "sip_exporter_seer",
    "sip_exporter_isa",
    "sip_exporter_scr",
    "sip_exporter_active_registrations",
]


def filled() -> tuple[PipelineStats, Reasons, dict[str, int]]:
    """Hand-filled aggregates; the golden test derives every expected value from these by hand."""
    s = PipelineStats()
    s.frames, s.bytes, s.messages = 10, 5000, 8
    s.requests.update({"INVITE": 3, "ACK": 1, "BYE": 1, "REGISTER": 2, "FOO": 2})
    s.responses.update({100: 1, 180: 1, 200: 3, 407: 1, 486: 1, 999: 1})
    s.responses_by_method.update(
        {
            (100, "INVITE"): 1,
            (180, "INVITE"): 1,
            (200, "INVITE"): 2,
            (200, "BYE"): 1,
            (407, "INVITE"): 1,
            (486, "INVITE"): 1,
            (200, "FOO"): 1,
            (200, "XYZ"): 1,
            (999, "INVITE"): 1,
        }
    )
    s.retransmissions.update({"INVITE": 1, "FOO": 1})
    s.reinvites = 1
    s.dialog_outcomes.update({"completed": 1, "failed_4xx": 1})
    s.register_failures.update({403: 1})
    s.evictions.update({"dialogs.full": 2})
    s.capture_drops = 4
    r = s.rfc6076
    r.invite_attempts, r.invite_3xx, r.invite_success = 4, 1, 2
    r.invite_effective, r.invite_ineffective, r.sessions_completed = 3, 1, 1
    r.register_attempts, r.register_ineffective, r.register_success = 2, 1, 1
    r.srd_success.observe(0.005)
    r.srd_success.observe(0.3)
    r.srd_failure.observe(40.0)
    r.sdt.observe(9.0)
    reasons = Reasons()
    reasons.add("skipped.not_sip", 5)
    reasons.add("sip.bad_start_line", 2)
    reasons.add("internal.KeyError")
    reasons.add("internal.ValueError", 2)
    gauges = {
        "sessions": 1,
        "registrations": 2,
        "early_dialogs": 3,
        "transactions": 4,
        "table.dialogs": 5,
        "table.ip_fragments": 6,
    }
    return s, reasons, gauges


def expect_hist(
    exp: dict[SampleKey, float],
    name: str,
    bounds: tuple[float, ...],
    values: list[float],
    **labels: str,
) -> None:
    """Add the exposition samples (_bucket per bound and +Inf, _count, _sum) that a histogram
    holding exactly ``values`` must show; the counts are computed from the values by hand."""
    for le in bounds:
        exp[(name + "_bucket", frozenset({"le": str(le), **labels}.items()))] = sum(
            1 for v in values if v <= le
        )
    exp[(name + "_bucket", frozenset({"le": "+Inf", **labels}.items()))] = len(values)
    exp[(name + "_count", frozenset(labels.items()))] = len(values)
    exp[(name + "_sum", frozenset(labels.items()))] = sum(values)


def parse(text: str) -> tuple[dict[str, str], dict[SampleKey, float]]:
    """(family name -> type, (sample name, labels) -> value) of an exposition text."""
    types: dict[str, str] = {}
    samples: dict[SampleKey, float] = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for smp in fam.samples:
            key = (smp.name, frozenset(smp.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = smp.value
    return types, samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a hand-built capture: one completed call and one registration --------------------------

CAPTURE_T0 = 1_700_000_000_000_000_000
A = ("192.0.2.10", 5060)  # alice's UA
B = ("192.0.2.20", 5060)  # bob's UA / registrar
MS = 1_000_000


def _ip(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    return ethernet(ipv4(udp(payload, src[1], dst[1]), src=_ip(src[0]), dst=_ip(dst[0])))


def sip(
    start: str,
    via_branch: str,
    cseq: str,
    call_id: str,
    from_tag: str,
    to_tag: str = "",
    extra: str = "",
) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{start}\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={via_branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\n"
        "Contact: <sip:alice@192.0.2.10:5060>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


CALL = "call-1@192.0.2.10"
REG = "reg-1@192.0.2.10"
INV = "z9hG4bK-inv-1"


def write_capture(path: Path) -> None:
    """One completed call and one registration, with times chosen for hand-checkable delays."""
    msgs = [
        (0, A, B, sip("INVITE sip:bob@example.com SIP/2.0", INV, "1 INVITE", CALL, "a1")),
        (10 * MS, B, A, sip("SIP/2.0 100 Trying", INV, "1 INVITE", CALL, "a1")),
        (300 * MS, B, A, sip("SIP/2.0 180 Ringing", INV, "1 INVITE", CALL, "a1", "b1")),
        (2000 * MS, B, A, sip("SIP/2.0 200 OK", INV, "1 INVITE", CALL, "a1", "b1")),
        (
            2010 * MS,
            A,
            B,
            sip("ACK sip:bob@192.0.2.20 SIP/2.0", "z9hG4bK-ack-1", "1 ACK", CALL, "a1", "b1"),
        ),
        (
            32_000 * MS,
            A,
            B,
            sip("BYE sip:bob@192.0.2.20 SIP/2.0", "z9hG4bK-bye-1", "2 BYE", CALL, "a1", "b1"),
        ),
        (32_050 * MS, B, A, sip("SIP/2.0 200 OK", "z9hG4bK-bye-1", "2 BYE", CALL, "a1", "b1")),
        (
            40_000 * MS,
            A,
            B,
            sip(
                "REGISTER sip:example.com SIP/2.0",
                "z9hG4bK-reg-1",
                "1 REGISTER",
                REG,
                "r1",
                extra="Expires: 3600\r\n",
            ),
        ),
        (
            40_080 * MS,
            B,
            A,
            sip(
                "SIP/2.0 200 OK",
                "z9hG4bK-reg-1",
                "1 REGISTER",
                REG,
                "r1",
                "s1",
                extra="Expires: 3600\r\n",
            ),
        ),
    ]
    with path.open("wb") as fh:
        writer = PcapWriter(fh, 1)  # LINKTYPE_ETHERNET
        for dt, src, dst, payload in msgs:
            writer.write(CAPTURE_T0 + dt, udp_frame(src, dst, payload))


class ListExporter(MetricExporter):
    """An OTLP-style exporter that keeps every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass


def export_batches(source: SnapshotSource) -> list[MetricsData]:
    """The batches a periodic reader exports of ``source``: a forced flush, then the final
    collection at shutdown."""
    scope = SnapshotScope(source)
    exporter = ListExporter()
    reader = SnapshotPeriodicReader(scope, exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    register_instruments(provider.get_meter(SCOPE_NAME, "0.1.0"), scope.current)
    reader.force_flush()
    provider.shutdown()  # one more, final, collection
    return exporter.batches
