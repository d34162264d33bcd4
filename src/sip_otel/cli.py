"""``sip-otel``: the agent (default, ``run``) and offline ``replay`` of capture files."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import __version__
from .sizes import DEFAULT_MEMORY_LIMIT

__all__ = ["REPLAY_CHUNK", "main"]

# Frames per call into the compiled core during a replay: ~30 ms of work, so progress lines and
# Ctrl-C stay responsive.
REPLAY_CHUNK = 32768


def _ports(text: str) -> frozenset[int]:
    try:
        ports = frozenset(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of ports: {text!r}") from None
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be 1-65535: {text!r}")
    return ports


def _memory_limit(text: str) -> int:
    from .sizes import parse_memory_limit

    try:
        return parse_memory_limit(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sip-otel",
        description="OpenTelemetry-native passive SIP monitor. Without a command: run the agent.",
    )
    parser.add_argument("--version", action="version", version=f"sip-otel {__version__}")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="capture live SIP and export metrics/spans (default)")
    from .runflags import add_run_arguments

    add_run_arguments(run)

    rp = sub.add_parser("replay", help="run the pipeline offline over a pcap/pcapng file")
    rp.add_argument(
        "file", help="capture file (pcap or pcapng, gzip-compressed or not; - reads stdin)"
    )
    rp.add_argument(
        "--sip-ports",
        type=_ports,
        default=frozenset({5060, 5061}),
        help="comma list of SIP ports (default 5060,5061)",
    )
    rp.add_argument(
        "--all-ports",
        action="store_true",
        help="treat any UDP/TCP payload that starts like a SIP message as SIP",
    )
    rp.add_argument(
        "--format",
        choices=("text", "json", "prometheus"),
        default="text",
        help="summary format (prometheus: the /metrics text after this traffic)",
    )
    rp.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress lines on stderr (auto: when stderr is a terminal)",
    )
    rp.add_argument(
        "--media",
        action="store_true",
        help="learn RTP endpoints from SDP; report per-stream RTP loss, jitter and MOS",
    )
    rp.add_argument(
        "--memory-limit",
        type=_memory_limit,
        default=DEFAULT_MEMORY_LIMIT,
        help="byte budget of all tables, e.g. 256MiB, 1GiB (default 256MiB; docs/reliability.md)",
    )
    rp.add_argument(
        "--challenge-retry-new-attempt",
        action="store_true",
        help="count a 401/407-challenged INVITE and its retry as two attempts",
    )
    try:
        from .telemetry.replay import add_replay_arguments
    except ImportError:  # telemetry not installed in this build
        pass
    else:
        add_replay_arguments(rp)
    return parser


def _replay(args: argparse.Namespace) -> int:
    from .capture.pcapfile import CaptureFileError, PcapReader
    from .pipeline import Pipeline, PipelineConfig
    from .report import build_summary, format_text
    from .sip.tracker import TrackerConfig
    from .sizes import pin_mmap_threshold

    pin_mmap_threshold()

    if getattr(args, "include_uris_deprecated", False):
        print("sip-otel: --include-uris is deprecated; use --span-uris", file=sys.stderr)
    config = PipelineConfig(
        sip_ports=args.sip_ports,
        all_ports=args.all_ports,
        tracker=TrackerConfig(challenge_retry_is_new_attempt=args.challenge_retry_new_attempt),
        correlation_header=getattr(args, "correlation_header", None),
        media=args.media,
        memory_limit=args.memory_limit,
    )
    try:
        pipeline = Pipeline(config)
    except ValueError as e:  # a correlation header SIP itself defines
        print(f"sip-otel: {e}", file=sys.stderr)
        return 2
    telemetry: Any = None
    if args.format == "prometheus" or getattr(args, "otlp", False):
        from .telemetry.replay import make_replay_telemetry

        telemetry = make_replay_telemetry(
            args, pipeline.stats, pipeline.reasons, pipeline.gauges, refresh=pipeline.sync
        )
        if telemetry is not None and telemetry.wants_records:
            pipeline.set_record_sink(telemetry.on_record)
        if telemetry is not None and config.media:  # the sip_otel_rtp_* metrics
            pipeline.set_media_sink(telemetry.on_media)

    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    error: str | None = None
    started = time.perf_counter()
    try:
        reader = PcapReader(args.file)
    except CaptureFileError as e:
        print(f"sip-otel: {e}", file=sys.stderr)
        return 1
    with reader:
        next_progress = started + 1.0
        try:
            # The compiled core reads the file region by region (no Python object per frame).
            # One call stops at the end of the reader's region (capture/pcapfile.py CHUNK, 1 MiB),
            # which bounds the bytes a call holds whatever the frame size.
            while pipeline.feed_capture(reader, REPLAY_CHUNK):
                if show:
                    now = time.perf_counter()
                    if now >= next_progress:
                        next_progress = now + 1.0
                        if reader.size:
                            where = f"{100.0 * reader.progress / reader.size:5.1f}%"
                        else:  # a stream or compressed: bytes of capture read
                            where = f"{reader.progress / 1e6:,.1f} MB"
                        stats = pipeline.stats
                        rate = stats.messages / (now - started)
                        print(
                            f"\rreplay: {where}  {stats.frames:,} frames  "
                            f"{stats.messages:,} SIP messages  {rate:,.0f} msg/s",
                            end="",
                            file=sys.stderr,
                            flush=True,
                        )
        except CaptureFileError as e:
            error = str(e)
        pipeline.finish()
        dropped = reader.timestamp_range
        if dropped and not error:  # counted as pcap.timestamp_range in the summary too
            error = (
                f"{reader.path}: {dropped:,} packets dropped: their timestamps fall outside "
                f"the 64-bit nanosecond range (pcap.timestamp_range)"
            )
    elapsed = time.perf_counter() - started
    if show:
        print("", file=sys.stderr)
    stats = pipeline.stats
    summary = build_summary(
        pipeline,
        {
            "file": args.file,
            "elapsed_s": round(elapsed, 3),
            "messages_per_s": round(stats.messages / elapsed, 1) if elapsed > 0 else 0.0,
            "frames_per_s": round(stats.frames / elapsed, 1) if elapsed > 0 else 0.0,
        },
    )
    if args.format == "json":
        print(json.dumps(summary, indent=None, sort_keys=False))
    elif args.format == "text":
        print(format_text(summary))
    if telemetry is not None:
        telemetry.force_flush()
        if args.format == "prometheus":
            sys.stdout.write(telemetry.render_prometheus())
        telemetry.shutdown()
    hint = _port_hint(args, summary)
    if hint:
        print(f"sip-otel: {hint}", file=sys.stderr)
    if error:
        print(f"sip-otel: {error}", file=sys.stderr)
        return 1
    return 0


def _port_hint(args: argparse.Namespace, summary: dict[str, Any]) -> str | None:
    """Why a replay found no SIP, when the likely cause is the port set."""
    if summary["messages"] or args.all_ports:
        return None
    other = summary.get("skipped", {}).get("port", 0)
    if not other:
        return None
    ports = ",".join(str(p) for p in sorted(args.sip_ports))
    return (
        f"no SIP messages on ports {ports}, but {other} UDP/TCP packets on other ports: "
        f"try --all-ports, or --sip-ports with the capture's SIP ports"
    )


_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "fatal": "CRITICAL",
    "critical": "CRITICAL",
}


def _log_level(name: str) -> str:
    """sip-exporter's level names (debug, info, warn, error, fatal); unknown -> info."""
    return _LEVELS.get(name.strip().lower(), "INFO")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "run")
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=_log_level(os.environ.get("SIP_EXPORTER_LOGGER_LEVEL", "info")),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "replay":
            return _replay(args)
        from .agent import run

        return run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
