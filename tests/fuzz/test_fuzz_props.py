"""Property tests (hypothesis) over decode -> parse -> track, and the capture reader.

Inputs are frames of the synthetic conversations of ``flows.py`` and, when ``../shared/pcaps``
is there, the first frames of a few corpus captures, mutated (bit flips, cuts, splices, random
bytes, any link type, time jumps to the int64 edges). The properties need no oracle beyond the
code's own contract:

- the pipeline counts every frame, raises nothing and counts no ``internal.*``, and the result
  does not depend on how the frames are batched (the core is sans-IO: batching is transport);
- a capture file written from the same frames and replayed the way ``sip-otel replay`` reads it
  (regions of any size) gives exactly what feeding the frames directly gives;
- any bytes, read as a capture file in regions of any size, give the same frames and the same
  error as when read whole, and nothing but CaptureFileError.

Examples per property: 40 in the suite; ``SIP_OTEL_PROPS_EXAMPLES=N`` for a longer run
(docs/fuzzing.md).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flows import FLOWS  # noqa: E402
from harness import LINKTYPES, PROFILES  # noqa: E402
from seeds import captures  # noqa: E402

import sip_otel.capture.pcapfile as pcapfile  # noqa: E402
from sip_otel.capture.pcapfile import CaptureFileError, PcapReader, PcapWriter  # noqa: E402
from sip_otel.net.types import Frame  # noqa: E402
from sip_otel.pipeline import Pipeline, PipelineConfig  # noqa: E402

EXAMPLES = int(os.environ.get("SIP_OTEL_PROPS_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INT64_MAX = (1 << 63) - 1
S = 1_000_000_000
PCAP_MAX_NS = (1 << 32) * S - 1  # a classic pcap's seconds field is 32 bits


def _base_frames() -> list[bytes]:
    out = [f for k, flow in enumerate(FLOWS) for f in flow(f"call-{k}@props")]
    for path in captures()[:12]:
        try:
            with PcapReader(str(path)) as reader:
                for batch in reader.batches(40):
                    out.extend(bytes(f.data) for f in batch if f.linktype == 1)
                    break
        except CaptureFileError:
            continue
    return out


BASE = _base_frames()


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(BASE)))
    kind = draw(st.sampled_from(("keep", "keep", "flip", "cut", "splice", "random")))
    if kind == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif kind == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "splice":
        other = draw(st.sampled_from(BASE))
        data = data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))) :]
    elif kind == "random":
        data = bytearray(draw(st.binary(max_size=300)))
    return bytes(data)


@st.composite
def frame_lists(draw: st.DrawFn, max_ns: int = INT64_MAX) -> list[Frame]:
    now = draw(st.integers(0, min(max_ns, 1 << 61)))
    frames = []
    for _ in range(draw(st.integers(1, 30))):
        step = draw(st.sampled_from(("ms", "ms", "s", "back", "edge")))
        if step == "ms":
            now += draw(st.integers(0, 2_000)) * 1_000_000
        elif step == "s":
            now += draw(st.integers(0, 100_000)) * S
        elif step == "back":
            now -= draw(st.integers(0, 10 * S))
        else:
            now = draw(st.sampled_from((0, max_ns, max_ns // 2)))
        now = min(max(now, 0), max_ns)
        linktype = draw(st.sampled_from((1, 1, 1, *LINKTYPES)))
        frames.append(Frame(now, linktype, draw(_payload())))
    return frames


def _config(profile: int, all_ports: bool) -> PipelineConfig:
    net, track = PROFILES[profile]
    return PipelineConfig(all_ports=all_ports, net_limits=net, tracker=track)


def _plain(value: Any) -> Any:
    """Stats as comparable values (histograms have slots and no equality)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    slots = getattr(type(value), "__slots__", None)
    if slots:
        return {name: _plain(getattr(value, name)) for name in slots}
    return value


def _outcome(pipe: Pipeline, records: list[Any]) -> tuple[dict[str, Any], dict[str, int], int]:
    stats = _plain(asdict(pipe.stats))
    reasons = {k: v for k, v in pipe.reasons.counts.items() if v}
    return stats, reasons, len(records)


def _run_frames(cfg: PipelineConfig, frames: list[Frame], cuts: list[int]) -> Any:
    records: list[Any] = []
    pipe = Pipeline(cfg, records.append)
    start = 0
    for cut in [*sorted(cuts), len(frames)]:
        if cut > start:
            pipe.feed(frames[start:cut])
            start = cut
    pipe.finish()
    return _outcome(pipe, records)


@SETTINGS
@given(
    frames=frame_lists(),
    profile=st.integers(0, 3),
    all_ports=st.booleans(),
    cuts=st.lists(st.integers(0, 30), max_size=5),
)
def test_pipeline_counts_every_frame_whatever_the_batching(
    frames: list[Frame], profile: int, all_ports: bool, cuts: list[int]
) -> None:
    cfg = _config(profile, all_ports)
    whole = _run_frames(cfg, frames, [])
    stats, reasons, _ = whole
    assert stats["frames"] == len(frames)
    assert not [k for k in reasons if k.startswith("internal")], reasons
    assert _run_frames(cfg, frames, [c for c in cuts if c < len(frames)]) == whole


@contextmanager
def _chunk(size: int) -> Iterator[None]:
    saved = pcapfile.CHUNK
    pcapfile.CHUNK = size
    try:
        yield
    finally:
        pcapfile.CHUNK = saved


@contextmanager
def _file(data: bytes) -> Iterator[str]:
    fd, name = tempfile.mkstemp(prefix="sip-otel-props-", suffix=".pcap")
    try:
        os.write(fd, data)
        os.close(fd)
        yield name
    finally:
        os.unlink(name)


@SETTINGS
@given(
    frames=frame_lists(max_ns=PCAP_MAX_NS), chunk=st.integers(1, 5000), profile=st.integers(0, 3)
)
def test_replayed_capture_equals_the_frames(frames: list[Frame], chunk: int, profile: int) -> None:
    cfg = _config(profile, True)
    buf = io.BytesIO()
    writer = PcapWriter(buf, 1)
    for f in frames:
        writer.write(f.ts_ns, f.data)
    # a classic pcap has one link type: the frames as the file holds them
    want = _run_frames(cfg, [Frame(f.ts_ns, 1, f.data) for f in frames], [])
    records: list[Any] = []
    pipe = Pipeline(cfg, records.append)
    with _file(buf.getvalue()) as name, _chunk(chunk), PcapReader(name) as reader:
        while pipe.feed_capture(reader, 7):
            pass
    pipe.finish()
    assert _outcome(pipe, records) == want


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


@st.composite
def capture_bytes(draw: st.DrawFn) -> bytes:
    frames = draw(frame_lists(max_ns=PCAP_MAX_NS))
    if draw(st.booleans()):
        buf = io.BytesIO()
        writer = PcapWriter(buf, draw(st.sampled_from(LINKTYPES)))
        for f in frames:
            writer.write(f.ts_ns, f.data)
        data = bytearray(buf.getvalue())
    else:
        data = bytearray(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        resol = draw(st.sampled_from((6, 9, 0, 0x80 | 20, 30)))
        opts = struct.pack("<HHB3x", 9, 1, resol)
        if draw(st.booleans()):
            opts += struct.pack("<HHq", 14, 8, draw(st.sampled_from((0, -100, 1 << 40))))
        data += _block(1, struct.pack("<HHI", 1, 0, 0) + opts + b"\0\0\0\0")
        for f in frames:
            ts = f.ts_ns // 1000
            data += _block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f.data),
                                          len(f.data)) + f.data)  # fmt: skip
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(("flip", "cut", "field", "splice")))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[pos:]
        elif kind == "field":  # a length or header field set to an edge value
            value = draw(st.sampled_from((0, 1, 12, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)))
            data[pos : pos + 4] = struct.pack("<I", value)
        else:
            other = draw(st.integers(0, len(data)))
            data = data[:pos] + data[other:]
    return bytes(data)


def _read(name: str) -> tuple[list[tuple[int, int, bytes]], str | None, int]:
    frames: list[tuple[int, int, bytes]] = []
    reader = None
    try:
        with PcapReader(name) as reader:
            for batch in reader.batches(5):
                frames.extend((f.ts_ns, f.linktype, bytes(f.data)) for f in batch)
    except CaptureFileError as e:
        assert "\n" not in str(e)
        return frames, str(e), reader.timestamp_range if reader else 0
    return frames, None, reader.timestamp_range


@SETTINGS
@given(data=st.one_of(capture_bytes(), st.binary(max_size=200)), chunk=st.integers(1, 300))
def test_reading_in_regions_equals_reading_whole(data: bytes, chunk: int) -> None:
    with _file(data) as name:
        whole = _read(name)
        with _chunk(chunk):
            assert _read(name) == whole
