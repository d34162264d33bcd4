"""``sip-otel run``: live capture -> pipeline -> telemetry, until SIGTERM/SIGINT.

Main loop (one thread; OTel's exporters and the HTTP server run their own):
  poll(capture fd, signal pipe, timeout = :data:`MAX_WAIT_MS` at most, the latency cap: the eBPF
  filter wakes the reader only every few hundred packets)
  -> the capture hands what waits to the compiled pipeline in one call per
     :data:`MAX_FRAMES_PER_CALL` frames (packet time drives the timers there)
  -> every tick: copy the kernel drop count into ``stats.capture_drops`` (and, with media, the
     kernel media maps' evictions into ``stats.evictions``) and, when no packet has moved packet
     time forward, advance it with the idle clock.
  -> when the link watcher's netlink socket is readable (an interface was deleted, re-created or
     renamed: capture/links.py), re-attach the capture on the named interfaces that changed.
  -> media (``--media``, docs/media.md "Live path"): after every feed call (a wake-up makes up
     to MAX_CALLS_PER_WAKE; the core's change queue is bounded) and after the timers, the
     endpoint changes the core queued are written into the kernel's ``media_eps``; every
     :data:`MEDIA_SYNC_NS` the kernel's ``rtp_streams`` are read into the core
     (``media_kernel_sync``) and the streams it is done with are deleted from the kernel. A
     last sync runs at shutdown, after the last feed, then ``media_flush`` ends every call's
     media (final reports, held dialog records) before telemetry flushes. Media needs the eBPF
     filter: on AF_PACKET the agent logs so once and drops the endpoint changes.
Idle clock: ``time.monotonic_ns() + offset`` -- the same mapping the capture applies to kernel
timestamps (see capture/base.py) -- minus :data:`IDLE_GRACE_NS`, so a packet still in the ring is
never older than the timer that just ran.
SIGHUP: the main loop re-reads the config file between two reads of the capture and applies the
log level (reload.py); nothing stops, so no packet, counter or pending span is lost. It is
ignored (SIG_IGN, which survives the exec) from the very start until the main loop's handler
is installed, and the eBPF loader child ignores it too.
Shutdown: stop polling, close the capture (sockets, ring, BPF program), flush spans and a last
metric export (bounded by :data:`SHUTDOWN_BUDGET_S`), exit 0.
Startup failures (bad config, unknown interface, missing privileges, port in use) print one line
and exit 2. Order: settings, interface names, then the HTTP port is bound, then the capture
opens (an eBPF compile takes seconds): a busy port fails at once; ``/health`` answers 503 until
the main loop runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from sip_otel.capture.base import (
    GRANT_HINT,
    Capture,
    CaptureError,
    MediaCapture,
    media_capture,
    realtime_offset_ns,
    resolve_interfaces,
)
from sip_otel.capture.links import LinkWatcher
from sip_otel.reload import Reloader
from sip_otel.runconfig import CONFIG_ENV, MEDIA_SYNC_NS, AgentConfig
from sip_otel.runflags import _FLAGS, _OFF_SWITCHES, _ON_SWITCHES, _SWITCHES, add_run_arguments
from sip_otel.sizes import pin_mmap_threshold
from sip_otel.telemetry.webconfig import WebConfigError

if TYPE_CHECKING:
    from sip_otel.config import Settings

__all__ = [
    "MEDIA_SYNC_NS",
    "add_run_arguments",
    "open_capture",
    "run",
]  # add_run_arguments: runflags.py

log = logging.getLogger("sip_otel.agent")

# A timer may expire a transaction whose answer is already in the ring but not yet read; running
# the idle clock this far behind wall time makes that impossible at any sane load.
IDLE_GRACE_NS = 200_000_000
# Frames handed to the pipeline per call (a call holds the GIL, so a scrape waits for it: 4096
# frames are a few milliseconds of compiled work), and calls per wake-up before timers get a
# turn.
MAX_FRAMES_PER_CALL = 4096
MAX_CALLS_PER_WAKE = 16
# Longest sleep in poll(): the latency cap of a packet waiting in the ring (the filter wakes the
# reader early only every WAKEUP_PACKETS packets per CPU, bpf/sip_record.h).
MAX_WAIT_MS = 20
# SIGTERM to exit: the issue allows 5 s; keep a margin for interpreter teardown.
SHUTDOWN_BUDGET_S = 3.5


def _config_from_args(args: argparse.Namespace) -> AgentConfig:
    """The validated settings (raises config.ConfigError; logs environment warnings)."""
    from sip_otel.config import check_environment, level_pinned, load_settings

    names = [n for n, _ in (*_FLAGS, *_SWITCHES, *_ON_SWITCHES, *_OFF_SWITCHES)]
    overrides = {n: getattr(args, n, None) for n in names}
    settings = load_settings(**overrides)
    _setup_logging(settings.log_level())
    for warning in check_environment():
        log.warning("%s", warning)
    if settings.object_file_path:
        log.info("SIP_EXPORTER_OBJECT_FILE_PATH ignored: sip-otel compiles its filter with bcc")
    return dataclasses.replace(settings.agent_config(), level_pinned=level_pinned(overrides))


def open_capture(settings: AgentConfig | Settings) -> tuple[Capture, str]:
    """The capture the settings ask for, and why it was chosen. Raises CaptureError."""
    interfaces = resolve_interfaces(settings.interface)
    ports = settings.ports()
    mode = settings.capture_mode
    ebpf_error: CaptureError | None = None
    if mode in ("auto", "ebpf"):
        try:
            from sip_otel.capture.ebpf import EbpfCapture

            cap: Capture = EbpfCapture(
                interfaces,
                ports,
                settings.ring_size,
                settings.all_ports,
                media=settings.media,
                media_max_endpoints=settings.media_max_endpoints,
                media_max_streams=settings.media_max_streams,
            )
            return cap, "bcc compiled and loaded the socket filter (in a child process)"
        except CaptureError as exc:
            if mode == "ebpf":
                raise
            ebpf_error = exc
    from sip_otel.capture.afpacket import AfPacketCapture

    try:
        cap = AfPacketCapture(interfaces, ports, settings.ring_size, settings.all_ports)
    except CaptureError as exc:
        if ebpf_error is not None and exc.permission and ebpf_error.permission:
            raise CaptureError(f"missing privileges for live capture; {GRANT_HINT}", True) from None
        if ebpf_error is not None:
            raise CaptureError(f"{exc} (eBPF unavailable too: {ebpf_error})") from None
        raise
    if ebpf_error is not None:
        return cap, f"eBPF unavailable: {ebpf_error}"
    return cap, "SIP_EXPORTER_CAPTURE_MODE=afpacket"


def _make_telemetry(settings: AgentConfig, pipeline: Any) -> Any:
    try:
        from sip_otel.telemetry import Telemetry, TelemetryOptions
    except ImportError as exc:
        log.warning("telemetry unavailable (%s): no /metrics, no OTLP", exc)
        return None
    options = TelemetryOptions(
        prometheus=True,
        http_host=settings.http_host,
        http_port=settings.http_port,
        web_config_file=settings.web_config_file,
        otlp_endpoint=settings.otlp_endpoint,
        otlp_protocol=settings.otlp_protocol,
        service_name=settings.service_name,
        scope_labels=settings.scope_labels,
        target_info=settings.target_info,
        hash_call_id=not settings.raw_call_id,
        include_uris=settings.span_uris,
        include_addresses=settings.span_addresses,
        max_span_queue=settings.span_queue,
        process_metrics=True,
        trace_ids=settings.trace_ids,
    )
    return Telemetry(
        pipeline.stats,
        pipeline.reasons,
        pipeline.gauges,
        options,
        evictions=pipeline.evictions,
        refresh=pipeline.sync,
    )


class _Stop:
    """SIGTERM/SIGINT -> stop flag, SIGHUP -> reload flag; either one also puts a byte on a
    pipe that wakes poll()."""

    def __init__(self) -> None:
        self.requested = False
        self.reload = False
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_fd = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        self._old = {
            sig: signal.signal(sig, self._handle)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload = True
        else:
            self.requested = True

    def close(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self.rfd)
        os.close(self.wfd)


def _fail(message: str) -> int:
    print(f"sip-otel: {message}", file=sys.stderr)
    return 2


def _setup_logging(level: int) -> None:
    logging.getLogger().setLevel(level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(args: argparse.Namespace) -> int:
    """Run the agent; returns the process exit code (0 after a signal, 2 on startup errors).

    Two stages in one process: the settings are validated (pydantic-settings, one line per
    problem), then the process replaces itself with a fresh interpreter that receives the
    validated values (runconfig.py) and runs the capture without the validation libraries
    loaded (~25 MiB less resident memory)."""
    with contextlib.suppress(ValueError):  # ValueError: not the main thread (tests)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until _Stop handles it
    text = os.environ.pop(CONFIG_ENV, None)
    if text is not None:
        try:
            config = AgentConfig.from_json(text)
        except ValueError as exc:
            return _fail(str(exc))
        _setup_logging(config.log_level())
    else:
        from sip_otel.config import ConfigError

        try:
            config = _config_from_args(args)
        except ConfigError as exc:
            return _fail(str(exc))
        _reexec(config)  # returns only if the exec failed: go on with what is loaded
    stop = _Stop()  # from here on, SIGTERM/SIGINT mean "stop cleanly", even during startup
    try:
        return _run(config, stop)
    finally:
        stop.close()


def _reexec(config: AgentConfig) -> None:
    """Replace this process (same PID) by ``python -m sip_otel run`` with ``config``."""
    if not sys.executable:
        return
    env = dict(os.environ)
    env[CONFIG_ENV] = config.to_json()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "sip_otel", "run"], env)
    except OSError as exc:
        log.warning("cannot restart lean (%s): running with the validation libraries loaded", exc)


def _run(settings: AgentConfig, stop: _Stop) -> int:
    from sip_otel.pipeline import Pipeline, PipelineConfig

    pin_mmap_threshold()
    # the config file as it is now, just after the validating stage read it (reload.py)
    reloader = Reloader(settings, logging.getLogger().setLevel)
    # AF_PACKET chosen outright: no media (the eBPF filter keeps the RTP statistics)
    media_on = settings.media and settings.capture_mode != "afpacket"
    if settings.media and not media_on:
        log.warning("media off: per-call RTP quality (--media) needs the eBPF capture path")

    try:
        pipeline = Pipeline(
            PipelineConfig(
                sip_ports=settings.ports(),
                all_ports=settings.all_ports,
                correlation_header=settings.correlation_header,
                memory_limit=settings.memory_limit,
                media=media_on,
                media_max_endpoints=settings.media_max_endpoints,
                media_max_streams=settings.media_max_streams,
                media_interval_ns=settings.media_interval_ns,
                media_linger_ns=settings.media_linger_ns,
            )
        )
    except ValueError as exc:  # a correlation header SIP itself defines
        return _fail(f"{exc}; set SIP_EXPORTER_CORRELATION_HEADER or --correlation-header")
    try:  # an unknown interface is reported before anything is bound or compiled
        resolve_interfaces(settings.interface)
    except CaptureError as exc:
        return _fail(str(exc))
    telemetry: Any = None
    try:
        telemetry = _make_telemetry(settings, pipeline)
        if telemetry is not None:
            if telemetry.wants_records:
                pipeline.set_record_sink(telemetry.on_record)
            if pipeline.config.media:  # the sip_otel_rtp_* metrics (issue 12)
                pipeline.set_media_sink(telemetry.on_media)
            telemetry.start_http()
    except OSError as exc:
        if telemetry is not None:
            telemetry.shutdown()
        return _fail(
            f"cannot serve /metrics on {settings.http_host}:{settings.http_port} "
            f"({exc.strerror or exc}); set SIP_EXPORTER_HTTP_PORT or --http-port to a free port"
        )
    except WebConfigError as exc:  # the file changed since the settings were checked
        if telemetry is not None:
            telemetry.shutdown()
        return _fail(f"{exc}; fix SIP_EXPORTER_WEB_CONFIG_FILE or --web-config-file")
    except Exception as exc:  # e.g. an OTLP endpoint the exporter rejects
        return _fail(f"telemetry setup failed: {exc}; check the OTLP settings")
    try:
        capture, why = open_capture(settings)
    except CaptureError as exc:
        if telemetry is not None:
            telemetry.shutdown()
        return _fail(str(exc))
    if media_on and media_capture(capture) is None:
        log.warning(
            "media off: per-call RTP quality (--media) needs the eBPF capture path, and the "
            "capture path is %s",
            capture.path,
        )
    ifaces = ",".join(settings.interface) or "all interfaces"
    ports = ",".join(str(p) for p in sorted(settings.ports())) if not settings.all_ports else "all"
    log.info("capture path %s on %s, SIP ports %s: %s", capture.path, ifaces, ports, why)
    if telemetry is not None:
        telemetry.set_capture_path(capture.path)
        log.info(
            "serving /metrics and /health on %s:%d%s",
            settings.http_host,
            telemetry.http_port,
            f" ({telemetry.http_security})" if telemetry.http_security else "",
        )
    links = _watch_links(capture)
    if links is not None:
        pipeline.stats.capture_detached = 0
    try:
        if telemetry is not None:
            telemetry.set_ready()
        _loop(
            capture,
            pipeline,
            stop,
            settings.tick_ms * 1_000_000,
            links,
            reloader.reload,
            media=media_on,
        )
    finally:
        if links is not None:
            links.close()
        _shutdown(capture, pipeline, telemetry, media=media_on)
    return 0


def _watch_links(capture: Capture) -> LinkWatcher | None:
    """A netlink watcher over the capture's named interfaces (None: capturing on all
    interfaces, which needs none, or no netlink -- then an interface that is re-created is
    not followed, and the log says so)."""
    named = capture.interfaces()
    if not named:
        return None
    try:
        return LinkWatcher(named)
    except OSError as exc:
        log.warning(
            "cannot watch interface changes (%s): a re-created interface will not be "
            "captured again until restart",
            exc,
        )
        return None


def _relink(capture: Capture, pipeline: Any, links: LinkWatcher) -> None:
    stats = pipeline.stats
    for change in links.changes():
        if not change.ifindex:
            capture.relink(change.name, 0)
            log.warning(
                "interface %s went away; capture on it resumes when it comes back", change.name
            )
            continue
        try:
            capture.relink(change.name, change.ifindex)
        except CaptureError as exc:
            links.current[change.name] = 0  # the next event for it tries again
            log.warning(
                "interface %s is back (ifindex %d) but re-attaching failed: %s",
                change.name,
                change.ifindex,
                exc,
            )
            continue
        stats.capture_reattach[change.reason] = stats.capture_reattach.get(change.reason, 0) + 1
        log.info(
            "interface %s is back (ifindex %d): capture re-attached (%s)",
            change.name,
            change.ifindex,
            change.reason,
        )
    stats.capture_detached = sum(1 for i in capture.interfaces().values() if not i)


def _loop(
    capture: Capture,
    pipeline: Any,
    stop: _Stop,
    tick_ns: int,
    links: LinkWatcher | None = None,
    reload: Callable[[], None] | None = None,
    media: bool = False,
) -> None:
    offset = realtime_offset_ns()
    kernel_media = media_capture(capture) if media else None
    poller = select.poll()
    capture_fd = capture.fileno()
    poller.register(capture_fd, select.POLLIN)
    poller.register(stop.rfd, select.POLLIN)
    links_fd = -1
    if links is not None:
        links_fd = links.fileno()
        poller.register(links_fd, select.POLLIN)
    feed = capture.feed
    next_tick = time.monotonic_ns() + tick_ns
    next_media_sync = time.monotonic_ns() + MEDIA_SYNC_NS
    last_seen_ts = 0
    while not stop.requested:
        timeout_ms = max(0, min(MAX_WAIT_MS, (next_tick - time.monotonic_ns()) // 1_000_000))
        ready = poller.poll(timeout_ms)
        fed = 0
        for _ in range(MAX_CALLS_PER_WAKE):
            n = feed(pipeline, MAX_FRAMES_PER_CALL)
            fed += n
            if media and n:  # drain the core's bounded change queue after every feed call
                _media_changes(kernel_media, pipeline)
            if n < MAX_FRAMES_PER_CALL:
                break
        if not fed and any(fd == capture_fd for fd, _ev in ready):
            capture.clear_errors()  # woken with nothing to read: a socket error (link down)
        if links is not None and any(fd == links_fd for fd, _ev in ready):
            _relink(capture, pipeline, links)
        now = time.monotonic_ns()
        if now >= next_tick:
            _capture_stats(capture, pipeline, kernel_media)
            idle_now = now + offset - IDLE_GRACE_NS
            if pipeline.last_ts_ns == last_seen_ts and idle_now > pipeline.last_ts_ns:
                pipeline.handle_timer(idle_now)
            last_seen_ts = pipeline.last_ts_ns
            next_tick = max(next_tick + tick_ns, now + tick_ns // 2)
        if media:
            _media_changes(kernel_media, pipeline)  # the timers' and relinks' changes
            if kernel_media is not None and now >= next_media_sync:
                _media_sync(kernel_media, pipeline)
                next_media_sync = max(next_media_sync + MEDIA_SYNC_NS, now + MEDIA_SYNC_NS // 2)
        if stop.reload:
            stop.reload = False
            if reload is not None:
                try:
                    reload()
                except Exception as exc:  # a reload must never stop the capture
                    log.warning("SIGHUP: reload failed (%s); keeping the running settings", exc)
        with contextlib.suppress(BlockingIOError):
            os.read(stop.rfd, 64)


def _capture_stats(capture: Capture, pipeline: Any, media: MediaCapture | None) -> None:
    """The capture's drop counts, and the kernel media maps' evictions (totals, by slug: not
    capture drops, docs/metrics.md), into the pipeline's stats."""
    stats = pipeline.stats
    stats.capture_drops = capture.drops()
    stats.capture_drops_by = capture.drop_reasons()
    if media is not None:
        stats.evictions.update(media.media_drops())


def _media_changes(media: MediaCapture | None, pipeline: Any) -> None:
    """Drain the core's endpoint changes into the kernel (dropped without kernel media)."""
    changes = pipeline.media_endpoint_changes()
    if media is not None:
        _media_apply(media, changes)


def _media_apply(media: MediaCapture, changes: list[tuple[bytes, bytes]]) -> None:
    if changes:
        try:
            media.media_apply(changes)
        except (OSError, ValueError) as exc:  # a bad record from the core, a vanished map
            log.warning("media: writing %d endpoint changes failed: %s", len(changes), exc)


def _media_sync(media: MediaCapture, pipeline: Any) -> None:
    """The kernel's RTP streams into the core; delete the ones the core is done with."""
    try:
        keys, values = media.media_read()
        media.media_delete(pipeline.media_kernel_sync(keys, values, media.offset_ns))
    except (OSError, ValueError) as exc:
        log.warning("media: kernel statistics sync failed: %s", exc)


def _shutdown(capture: Capture, pipeline: Any, telemetry: Any, media: bool = False) -> None:
    started = time.monotonic()
    try:
        for _ in range(MAX_CALLS_PER_WAKE):
            if capture.feed(pipeline, MAX_FRAMES_PER_CALL) < MAX_FRAMES_PER_CALL:
                break
        kernel_media = media_capture(capture) if media else None
        if kernel_media is not None:  # the last second of RTP statistics, before the close
            _media_apply(kernel_media, pipeline.media_endpoint_changes())
            _media_sync(kernel_media, pipeline)
        if media:  # end every call's media now: final reports and the held dialog records
            pipeline.media_flush(time.monotonic_ns() + realtime_offset_ns())
        _capture_stats(capture, pipeline, kernel_media)
        counters = capture.counters()
        log.info("capture counters: %s", ", ".join(f"{k}={v}" for k, v in counters.items()))
    finally:
        capture.close()
    log.info("capture closed; flushing telemetry")
    if telemetry is None:
        return

    def flush() -> None:
        try:
            telemetry.force_flush(timeout_millis=int(SHUTDOWN_BUDGET_S * 1000) - 500)
            telemetry.shutdown()
        except Exception as exc:  # exporter trouble must not turn a clean stop into a crash
            log.warning("telemetry flush failed: %s", exc)

    worker = threading.Thread(target=flush, name="sip-otel-flush", daemon=True)
    worker.start()
    worker.join(max(0.1, SHUTDOWN_BUDGET_S - (time.monotonic() - started)))
    if worker.is_alive():
        log.warning("telemetry flush did not finish within %.1f s; exiting", SHUTDOWN_BUDGET_S)
