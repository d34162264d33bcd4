"""eBPF capture: bcc compiles ``bpf/sip_filter.c`` in a child; the compiled core reads its ring.

The filter is compiled, loaded and attached by a short-lived child process (:mod:`.bpfload`),
which hands the program, the maps and the attached sockets over as descriptors and exits: bcc
and its LLVM never enter this process. Counters are read with ``bpf(2)`` (:mod:`.bpfsys`).

The socket filter (see the C file's theory of operation) keeps SIP ports and IP fragments and
writes whole packets to a ``BPF_RINGBUF_OUTPUT`` ring (record layout: ``bpf/sip_record.h``).
bcc's own reader calls a Python callback per record; instead, like libbpf's
``ring_buffer__consume``, this module maps the ring itself -- the consumer-position page
read-write, then the producer-position page and the data area read-only, once (a record that
wraps is copied; libbpf's double mapping would count the ring twice in the agent's RSS) -- and
the compiled core (``_c/so_ring.c``) walks the records
and feeds the pipeline without a Python object per packet, with acquire/release ordering on
the positions (correct on any CPU). The filter wakes the reader only every
``WAKEUP_PACKETS`` records per CPU; the agent's poll timeout bounds the latency. There is one
ring per CPU (no lock shared between CPUs); the agent polls one epoll set of all of them, and
the compiled reader merges their records in timestamp order.
"""

from __future__ import annotations

import logging
import mmap
import os
import select
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sip_otel import _core
from sip_otel.capture.base import (
    DEFAULT_BATCH,
    SO_ATTACH_BPF,
    CaptureError,
    Interface,
    open_packet_socket,
    realtime_offset_ns,
)
from sip_otel.capture.bpfload import COUNTERS, RCVBUF, Handover, LoadRequest, load_filter
from sip_otel.capture.bpfsys import PerCpuCounters
from sip_otel.net.types import Frame

__all__ = ["COUNTERS", "EbpfCapture", "RingMap", "filter_source"]

log = logging.getLogger(__name__)

_DROP_COUNTERS = {"ring_full": 1, "load_fail": 2}  # counter indexes

# Fault the ring pages in at start, not on the hot path (Linux; 0 elsewhere).
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


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
    """The ring buffers' mappings (one ring per CPU, each mapped once) and the compiled
    consumer over all of them (one consumer only; records merged in timestamp order)."""

    def __init__(self, map_fds: Sequence[int], size: int, offset_ns: int) -> None:
        page = mmap.PAGESIZE
        self._maps: list[tuple[mmap.mmap, mmap.mmap]] = []
        try:
            for fd in map_fds:
                cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                try:
                    data = mmap.mmap(
                        fd, page + size, mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ, offset=page
                    )
                except OSError:
                    cons.close()
                    raise
                self._maps.append((cons, data))
            self.cursor = _core.RingCursor(self._maps, size, offset_ns, page)
        except BaseException:
            self._unmap()
            raise

    def _unmap(self) -> None:
        for cons, data in self._maps:
            cons.close()
            data.close()
        self._maps.clear()

    @property
    def max_backlog(self) -> int:
        """Most bytes ever waiting in the ring at a read (diagnostics)."""
        return int(self.cursor.max_backlog)

    def close(self) -> None:
        self.cursor.release()
        self._unmap()


class EbpfCapture:
    """Socket filter on one AF_PACKET socket per interface, ring buffer read via mmap.

    bcc runs only in the loader child (:mod:`.bpfload`); this object holds what it handed over:
    the program (kept to attach new sockets when an interface comes back), the ring, the
    counter and port maps, and the attached sockets.
    """

    path = "ebpf"

    def __init__(
        self,
        interfaces: Sequence[Interface],
        ports: frozenset[int],
        ring_bytes: int,
        all_ports: bool = False,
        source: Path | None = None,
    ) -> None:
        self._ring: RingMap | None = None
        self._epoll: select.epoll | None = None
        request = LoadRequest(
            interfaces=[(i.name, i.ifindex) for i in interfaces],
            ports=sorted(ports),
            ring_bytes=ring_bytes,
            all_ports=all_ports,
            source=str(source or filter_source()),
        )
        self._handover: Handover | None = load_filter(request)
        handed = self._handover
        self._sockets: dict[str, tuple[int, socket.socket | None]] = {
            name: (ifindex, sock)
            for (name, ifindex), sock in zip(handed.info.interfaces, handed.sockets, strict=True)
        }
        try:
            self._counters = PerCpuCounters(handed.counters_fd, handed.info.ncpu)
            self._ring = RingMap(handed.ring_fds, handed.info.ring_bytes, realtime_offset_ns())
            self._epoll = select.epoll()
            for fd in handed.ring_fds:
                self._epoll.register(fd, select.EPOLLIN)
        except OSError as exc:
            self.close()
            raise CaptureError(f"eBPF capture setup failed: {exc}") from None

    def fileno(self) -> int:
        """One descriptor for the agent's poll: an epoll set readable when any ring is."""
        return self._epoll.fileno() if self._epoll is not None else -1

    def read(self, max_frames: int = DEFAULT_BATCH) -> list[Frame]:
        """Waiting packets as Frame tuples (tests, tools; the agent uses :meth:`feed`)."""
        return self._ring.cursor.read(max_frames) if self._ring else []

    def feed(self, pipeline: Any, max_frames: int) -> int:
        """Hand up to ``max_frames`` waiting packets to the pipeline; returns how many."""
        return int(pipeline.feed_ring(self._ring.cursor, max_frames)) if self._ring else 0

    def pending(self) -> bool:
        return bool(self._ring.cursor.pending()) if self._ring else False

    def interfaces(self) -> dict[str, int]:
        """Named interfaces -> the ifindex captured now (0: gone); {} for "all interfaces"."""
        return {name: ifindex for name, (ifindex, _s) in self._sockets.items() if name}

    def relink(self, name: str, ifindex: int) -> None:
        """Interface ``name`` now has ``ifindex`` (0: it is gone): close its old socket and
        attach the loaded program to a new one. Raises CaptureError (the agent logs it)."""
        if self._handover is None or name not in self._sockets:
            return
        old_index, old = self._sockets[name]
        if old is not None and old_index == ifindex:
            return
        if old is not None:
            old.close()
        self._sockets[name] = (0, None)
        if not ifindex:
            return
        sock = open_packet_socket(Interface(name, ifindex), rcvbuf=RCVBUF)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, self._handover.prog_fd)
        except OSError as exc:
            sock.close()
            raise CaptureError(f"attaching the eBPF filter to {name!r}: {exc}") from None
        self._sockets[name] = (ifindex, sock)

    def clear_errors(self) -> None:
        """Nothing to do: the sockets are never polled (the ring is)."""

    def counters(self) -> dict[str, int]:
        if self._handover is None:
            return {}
        out = {name: self._counters.sum(i) for i, name in enumerate(COUNTERS)}
        if self._ring is not None:
            out["max_backlog_bytes"] = self._ring.max_backlog
            out["ring_wrapped"] = int(self._ring.cursor.wrapped)
            out["rings"] = int(self._ring.cursor.rings_count)
            out["ring_bytes_each"] = self._handover.info.ring_bytes
        return out

    def drops(self) -> int:
        return sum(self.drop_reasons().values())

    def drop_reasons(self) -> dict[str, int]:
        if self._handover is None:
            return {}
        return {reason: self._counters.sum(i) for reason, i in _DROP_COUNTERS.items()}

    def close(self) -> None:
        for _ifindex, sock in self._sockets.values():
            if sock is not None:
                sock.close()
        self._sockets.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._handover is not None:
            self._handover.sockets.clear()  # closed above
            self._handover.close()
            self._handover = None
