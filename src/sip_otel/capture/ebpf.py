"""eBPF capture: bcc compiles ``bpf/sip_filter.c``; the compiled core reads its ring buffer.

The socket filter (see the C file's theory of operation) keeps SIP ports and IP fragments and
writes whole packets to a ``BPF_RINGBUF_OUTPUT`` ring (record layout: ``bpf/sip_record.h``).
bcc's own reader calls a Python callback per record; instead, like libbpf's
``ring_buffer__consume``, this module maps the ring itself -- the consumer-position page
read-write, then the producer-position page and the data area mapped twice read-only, so a
record that wraps is contiguous -- and the compiled core (``_c/so_ring.c``) walks the records
and feeds the pipeline without a Python object per packet, with acquire/release ordering on
the positions (correct on any CPU). The filter wakes the reader only every
``WAKEUP_PACKETS`` records per CPU; the agent's poll timeout bounds the latency.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from sip_otel import _core
from sip_otel.capture.base import (
    DEFAULT_BATCH,
    SO_ATTACH_BPF,
    CaptureError,
    Interface,
    loopback_ifindex,
    missing_bpf_caps,
    open_packet_socket,
    permission_error,
    realtime_offset_ns,
)
from sip_otel.net.types import Frame

__all__ = ["COUNTERS", "EbpfCapture", "RingMap", "filter_source"]

log = logging.getLogger(__name__)

# Index -> name of the per-CPU counters in sip_filter.c (C_* defines).
COUNTERS = ("passed", "ring_full", "load_fail", "truncated", "lo_outgoing", "ring_retry")
_DROP_COUNTERS = (1, 2)

# Fault the ring pages in at start, not on the hot path (Linux; 0 elsewhere).
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
# Receive queue of the (never read) capture sockets: the kernel's minimum is enough.
_RCVBUF = 256


def filter_source() -> Path:
    """Where ``sip_filter.c`` lives: $SIP_OTEL_BPF_SOURCE (the file), $SIP_OTEL_BPF_DIR (its
    directory, as the Dockerfile sets), ``bpf/`` of the source tree (editable installs), else
    ``<prefix>/share/sip-otel/bpf/`` where a wheel install puts it (pyproject data-files)."""
    env = os.environ.get("SIP_OTEL_BPF_SOURCE")
    if env:
        return Path(env)
    env_dir = os.environ.get("SIP_OTEL_BPF_DIR")
    if env_dir:
        return Path(env_dir) / "sip_filter.c"
    tree = Path(__file__).resolve().parents[3] / "bpf" / "sip_filter.c"
    if tree.is_file():
        return tree
    return Path(sys.prefix) / "share" / "sip-otel" / "bpf" / "sip_filter.c"


class RingMap:
    """The ring buffer's mappings and the compiled consumer over them (one consumer only)."""

    def __init__(self, map_fd: int, size: int, offset_ns: int) -> None:
        page = mmap.PAGESIZE
        self._cons_map = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._data_map = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ, offset=page
        )
        self.cursor = _core.RingCursor(self._cons_map, self._data_map, size, offset_ns, page)

    @property
    def max_backlog(self) -> int:
        """Most bytes ever waiting in the ring at a read (diagnostics)."""
        return int(self.cursor.max_backlog)

    def close(self) -> None:
        self.cursor.release()
        self._cons_map.close()
        self._data_map.close()


@contextlib.contextmanager
def _captured_stderr() -> Iterator[IO[bytes]]:
    """Collect what bcc/clang print on fd 2 so a failure becomes one log line."""
    with tempfile.TemporaryFile(mode="w+b") as buf:
        saved = os.dup(2)
        try:
            os.dup2(buf.fileno(), 2)
            yield buf
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _last_error_line(buf: IO[bytes]) -> str:
    buf.seek(0)
    lines = [ln.strip() for ln in buf.read().decode("utf-8", "replace").splitlines()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    first: str = (errors or [ln for ln in lines if ln] or [""])[0]
    return first[:200]


class EbpfCapture:
    """Socket filter on one AF_PACKET socket per interface, ring buffer read via mmap."""

    path = "ebpf"

    def __init__(
        self,
        interfaces: Sequence[Interface],
        ports: frozenset[int],
        ring_bytes: int,
        all_ports: bool = False,
        source: Path | None = None,
    ) -> None:
        self._sockets: list[socket.socket] = []
        self._bpf: Any = None
        self._ring: RingMap | None = None
        src = source or filter_source()
        if not src.is_file():
            raise CaptureError(
                f"eBPF filter source {src} not found; set SIP_OTEL_BPF_DIR or SIP_OTEL_BPF_SOURCE"
            )
        try:
            from bcc import BPF
        except Exception as exc:
            raise CaptureError(f"bcc not importable ({exc}); install python3-bpfcc") from None
        ncpu = _possible_cpus()
        cflags = [
            f"-DNCPU={ncpu}",
            f"-DRING_PAGES={ring_bytes // mmap.PAGESIZE}",
            f"-DLO_IFINDEX={loopback_ifindex()}",
            f"-I{src.parent}",  # bpf/sip_record.h, the record layout shared with the reader
        ]
        if all_ports:
            cflags.append("-DALL_PORTS=1")
        # SIP_OTEL_BPF_DEBUG=<bcc debug flags> (e.g. 4: print the preprocessed C) for debugging;
        # bcc then writes to stderr, which is left alone.
        debug = int(os.environ.get("SIP_OTEL_BPF_DEBUG", "0") or 0)
        with contextlib.nullcontext(None) if debug else _captured_stderr() as err:
            try:
                self._bpf = BPF(src_file=str(src).encode(), cflags=cflags, debug=debug)
                fn = self._bpf.load_func(b"sip_filter", BPF.SOCKET_FILTER)
            except Exception as exc:
                detail = (_last_error_line(err) if err else "") or str(exc)
                self.close()
                missing = missing_bpf_caps()
                if missing:
                    raise permission_error("loading the eBPF filter", missing) from None
                if "not permitted" in f"{detail} {exc}".lower():
                    raise permission_error(
                        "loading the eBPF filter", "CAP_PERFMON or CAP_SYS_ADMIN"
                    ) from None
                raise CaptureError(f"eBPF filter failed to compile or load: {detail}") from None
        try:
            table = self._bpf[b"sip_ports"]
            for port in ports:
                table[ctypes.c_int(port)] = ctypes.c_uint8(1)
            self._counters = self._bpf[b"counters"]
            ring = self._bpf[b"events"]
            self._ring = RingMap(ring.map_fd, ring_bytes, realtime_offset_ns())
            for iface in interfaces:
                sock = open_packet_socket(iface, rcvbuf=_RCVBUF)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, fn.fd)
        except CaptureError:
            self.close()
            raise
        except PermissionError:
            self.close()
            raise permission_error(
                "attaching the eBPF filter", missing_bpf_caps() or "CAP_BPF"
            ) from None
        except OSError as exc:
            self.close()
            raise CaptureError(f"eBPF capture setup failed: {exc}") from None
        self._map_fd = ring.map_fd

    def fileno(self) -> int:
        return int(self._map_fd)

    def read(self, max_frames: int = DEFAULT_BATCH) -> list[Frame]:
        """Waiting packets as Frame tuples (tests, tools; the agent uses :meth:`feed`)."""
        return self._ring.cursor.read(max_frames) if self._ring else []

    def feed(self, pipeline: Any, max_frames: int) -> int:
        """Hand up to ``max_frames`` waiting packets to the pipeline; returns how many."""
        return int(pipeline.feed_ring(self._ring.cursor, max_frames)) if self._ring else 0

    def pending(self) -> bool:
        return bool(self._ring.cursor.pending()) if self._ring else False

    def counters(self) -> dict[str, int]:
        if self._bpf is None:
            return {}
        out = {
            name: int(self._counters.sum(ctypes.c_int(i)).value)
            for i, name in enumerate(COUNTERS)
        }
        if self._ring is not None:
            out["max_backlog_bytes"] = self._ring.max_backlog
        return out

    def drops(self) -> int:
        if self._bpf is None:
            return 0
        return sum(int(self._counters.sum(ctypes.c_int(i)).value) for i in _DROP_COUNTERS)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._bpf.cleanup()
            self._bpf = None


def _possible_cpus() -> int:
    try:
        from bcc.utils import get_possible_cpus

        cpus: list[int] = get_possible_cpus()
        return max(cpus) + 1
    except Exception:
        return os.cpu_count() or 1
