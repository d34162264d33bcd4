"""The agent's media glue (agent.py, docs/media.md "Live path"), with fakes: endpoint changes
are written after each wake-up's feeds, the kernel's streams are synced into the pipeline every
MEDIA_SYNC_NS on the agent's clock (a fake one here) and once more at shutdown, and the keys the
pipeline returns are deleted. No kernel, no core."""

from __future__ import annotations

import itertools
import os
import time
import types
from typing import Any

import pytest
from test_agent import FakeCapture, FakeStop

from sip_otel import agent
from sip_otel.capture.base import media_capture
from sip_otel.net.types import Frame

OFFSET = 1_700_000_000_000_000_000  # the capture's realtime - monotonic


class Stop(FakeStop):
    def close(self) -> None:
        os.close(self.rfd)
        os.close(self.wfd)


class MediaCap(FakeCapture):
    """A capture with media (test_agent's fake with media on): frames to feed, and a log of
    every media call."""

    media = True
    offset_ns = OFFSET

    def __init__(self, stop: Stop, ticks: int, frames: list[Frame]) -> None:
        super().__init__(stop, ticks, frames)
        self.log: list[tuple[str, Any]] = []
        self.streams = (b"K1K2", b"V1V2")

    def feed(self, pipeline: Pipe, max_frames: int) -> int:  # type: ignore[override]
        frames, self.frames = self.frames, []
        if frames:
            pipeline.fed += len(frames)
            self.log.append(("feed", len(frames)))
        return len(frames)

    def drops(self) -> int:  # once per tick
        super().drops()
        return 0

    def drop_reasons(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self.log.append(("close", None))
        super().close()

    def media_apply(self, changes: list[tuple[bytes, bytes]]) -> None:
        self.log.append(("apply", changes))

    def media_read(self) -> tuple[bytes, bytes]:
        self.log.append(("read", None))
        return self.streams

    def media_delete(self, keys: bytes) -> None:
        self.log.append(("delete", keys))

    def media_drops(self) -> dict[str, int]:
        return {"kernel_media_endpoints.full": 2, "kernel_rtp_streams.full": 5}


class Stats:
    def __init__(self) -> None:
        self.capture_drops = 0
        self.capture_drops_by: dict[str, int] = {}
        self.evictions: dict[str, int] = {"dialogs.full": 1}  # the core's


class Pipe:
    """The pipeline's media methods as the contract has them (docs/media.md)."""

    def __init__(self, clock: Clock) -> None:
        self.stats = Stats()
        self.last_ts_ns = 0
        self.fed = 0
        self.clock = clock
        self.pending: list[tuple[bytes, bytes]] = []
        self.syncs: list[tuple[int, bytes, bytes, int]] = []
        self.flushes: list[tuple[int, int]] = []  # (syncs so far, now_ns)

    def handle_timer(self, now_ns: int) -> None:
        self.last_ts_ns = max(self.last_ts_ns, now_ns)

    def media_endpoint_changes(self) -> list[tuple[bytes, bytes]]:
        out, self.pending = self.pending, []
        return out

    def media_kernel_sync(self, keys: bytes, values: bytes, offset_ns: int) -> bytes:
        self.syncs.append((self.clock.now, keys, values, offset_ns))
        return keys[:2]  # "K1": the core is done with the first stream

    def media_flush(self, now_ns: int) -> None:
        self.flushes.append((len(self.syncs), now_ns))


class Clock:
    """monotonic_ns advancing STEP per call (the loop reads it a fixed number of times)."""

    STEP = 50_000_000

    def __init__(self) -> None:
        self.now = 10**12

    def monotonic_ns(self) -> int:
        self.now += self.STEP
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    fake = types.SimpleNamespace(
        monotonic_ns=c.monotonic_ns,
        monotonic=time.monotonic,
        time_ns=time.time_ns,
    )
    monkeypatch.setattr(agent, "time", fake)
    return c


def test_changes_applied_after_the_feed_streams_synced_every_second(clock: Clock) -> None:
    stop = Stop()
    cap = MediaCap(stop, ticks=200, frames=[Frame(1, 1, b"", 1, 0)])
    pipe = Pipe(clock)
    pipe.pending = [(b"E1", b"V"), (b"E2", b"")]
    agent._loop(cap, pipe, stop, 100_000_000, media=True)  # type: ignore[arg-type]
    stop.close()
    kinds = [k for k, _ in cap.log]
    # the endpoint changes queued before the wake-up go to the kernel after its feed, once
    assert kinds.index("feed") < kinds.index("apply")
    assert [v for k, v in cap.log if k == "apply"] == [[(b"E1", b"V"), (b"E2", b"")]]
    # every sync reads the kernel, hands it over with the capture's offset, deletes the answer
    assert pipe.syncs and all(s[1:] == (b"K1K2", b"V1V2", OFFSET) for s in pipe.syncs)
    reads = [i for i, k in enumerate(kinds) if k == "read"]
    assert len(reads) == len(pipe.syncs)
    assert all(cap.log[i + 1] == ("delete", b"K1") for i in reads)
    # once per MEDIA_SYNC_NS of the agent's clock (within one loop turn of clock steps)
    times = [s[0] for s in pipe.syncs]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3
    assert all(agent.MEDIA_SYNC_NS <= g <= agent.MEDIA_SYNC_NS + 4 * Clock.STEP for g in gaps)


def test_kernel_media_evictions_join_the_pipeline_evictions(clock: Clock) -> None:
    """The kernel maps' full counts are evictions (totals, set each tick and at shutdown), next
    to the core's own; they are not capture drops."""
    stop = Stop()
    cap = MediaCap(stop, ticks=3, frames=[])
    pipe = Pipe(clock)
    agent._loop(cap, pipe, stop, 100_000_000, media=True)  # type: ignore[arg-type]
    want = {"dialogs.full": 1, "kernel_media_endpoints.full": 2, "kernel_rtp_streams.full": 5}
    assert pipe.stats.evictions == want
    assert pipe.stats.capture_drops == 0 and pipe.stats.capture_drops_by == {}
    pipe2 = Pipe(clock)
    agent._shutdown(cap, pipe2, None, media=True)  # type: ignore[arg-type]
    stop.close()
    assert pipe2.stats.evictions == want


def test_no_media_no_media_calls(clock: Clock) -> None:
    stop = Stop()
    cap = MediaCap(stop, ticks=50, frames=[])
    pipe = Pipe(clock)
    pipe.pending = [(b"E1", b"V")]
    agent._loop(cap, pipe, stop, 100_000_000)  # type: ignore[arg-type]
    stop.close()
    assert not [k for k, _ in cap.log if k != "feed"] and not pipe.syncs
    assert pipe.pending == [(b"E1", b"V")]


def test_shutdown_syncs_last_after_the_last_feed_before_the_close(clock: Clock) -> None:
    stop = Stop()
    cap = MediaCap(stop, ticks=1, frames=[Frame(1, 1, b"", 1, 0)])
    pipe = Pipe(clock)
    pipe.pending = [(b"E3", b"V")]
    agent._shutdown(cap, pipe, None, media=True)  # type: ignore[arg-type]
    stop.close()
    assert [k for k, _ in cap.log] == ["feed", "apply", "read", "delete", "close"]
    assert len(pipe.syncs) == 1


def test_shutdown_flushes_media_after_the_last_sync_on_packet_time(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent, "realtime_offset_ns", lambda: OFFSET)
    stop = Stop()
    cap = MediaCap(stop, ticks=1, frames=[Frame(1, 1, b"", 1, 0)])
    pipe = Pipe(clock)
    agent._shutdown(cap, pipe, None, media=True)  # type: ignore[arg-type]
    stop.close()
    # once, after the one sync, at the packet-time clock: the monotonic clock's last reading
    # (the fake clock advances STEP per reading) plus the realtime offset
    assert pipe.flushes == [(1, clock.now + OFFSET)]


def test_shutdown_without_media_flushes_nothing(clock: Clock) -> None:
    stop = Stop()
    cap = MediaCap(stop, ticks=1, frames=[])
    pipe = Pipe(clock)
    agent._shutdown(cap, pipe, None)  # type: ignore[arg-type]
    stop.close()
    assert pipe.flushes == []


def test_changes_drained_after_every_feed_call(clock: Clock) -> None:
    """A wake-up that feeds several full batches writes each batch's changes before the next
    feed (the core's change queue is bounded)."""
    stop = Stop()
    cap = MediaCap(stop, ticks=1, frames=[])
    pipe = Pipe(clock)
    batches = [agent.MAX_FRAMES_PER_CALL, agent.MAX_FRAMES_PER_CALL, 3]

    def feed(pipeline: Pipe, max_frames: int) -> int:
        n = batches.pop(0) if batches else 0
        if n:
            cap.log.append(("feed", n))
            pipeline.pending.append((f"E{len(cap.log)}".encode(), b"V"))
        return n

    cap.feed = feed  # type: ignore[method-assign]
    agent._loop(cap, pipe, stop, 100_000_000, media=True)  # type: ignore[arg-type]
    stop.close()
    head = [(k, v) for k, v in cap.log if k in ("feed", "apply")][:6]
    assert head == [
        ("feed", agent.MAX_FRAMES_PER_CALL),
        ("apply", [(b"E1", b"V")]),
        ("feed", agent.MAX_FRAMES_PER_CALL),
        ("apply", [(b"E3", b"V")]),
        ("feed", 3),
        ("apply", [(b"E5", b"V")]),
    ]


def test_afpacket_is_no_media_capture() -> None:
    class NoMedia:
        path = "afpacket"

    assert media_capture(NoMedia()) is None
    assert media_capture(types.SimpleNamespace(media=False)) is None
    s = types.SimpleNamespace(media=True)
    assert media_capture(s) is s


def test_a_failing_sync_is_logged_and_the_loop_goes_on(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    stop = Stop()
    cap = MediaCap(stop, ticks=30, frames=[])
    pipe = Pipe(clock)

    def broken() -> tuple[bytes, bytes]:
        raise OSError(9, "Bad file descriptor")

    cap.media_read = broken  # type: ignore[method-assign]
    agent._loop(cap, pipe, stop, 100_000_000, media=True)  # type: ignore[arg-type]
    stop.close()
    assert cap.ticks <= 0  # ran to the end
    assert "media: kernel statistics sync failed" in caplog.text


@pytest.mark.live
def test_media_with_afpacket_says_media_needs_ebpf_and_runs_on() -> None:
    from livenet import PYTHON, live_skip_reason
    from test_agent import first_log_line

    reason = live_skip_reason(need_bcc=False)
    if reason:
        pytest.skip(reason)
    cmd = [str(PYTHON), "-m", "sip_otel", "run", "--interface=lo", "--http-port=0"]
    first, out, rc = first_log_line([*cmd, "--media", "--capture-mode=afpacket"])
    assert "media off: per-call RTP quality (--media) needs the eBPF capture path" in first, out
    assert "capture path afpacket on lo" in out
    assert rc == 0, first + out
