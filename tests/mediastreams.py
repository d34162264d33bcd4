"""A MediaStream (records.py) built by hand for the media quality and telemetry tests: one PCMU
stream to the callee, 1000 packets over 20 s, none lost; tests override what they check."""

from __future__ import annotations

from sip_otel.records import MediaStream

DEFAULTS: dict[str, object] = dict(
    call_id="c1",
    direction="to_callee",
    codec="pcmu",
    clock_rate=8000,
    ssrc=0x1234,
    src="192.0.2.10:4000",
    dst="192.0.2.20:5000",
    start_ns=1_000,
    end_ns=20_000_001_000,
    final=True,
    packets=1000,
    expected=1000,
    lost=0,
    jitter_mean_s=0.001,
    total_packets=1000,
    total_expected=1000,
    total_lost=0,
    total_bytes=172_000,
    duplicates=0,
    reordered=0,
    jitter_s=0.001,
    jitter_max_s=0.004,
    total_jitter_mean_s=0.001,
    max_gap_s=0.04,
    pt_changes=0,
)


def media_stream(**kw: object) -> MediaStream:
    """The stream of DEFAULTS with the fields of ``kw`` instead."""
    return MediaStream(**{**DEFAULTS, **kw})  # type: ignore[arg-type]
