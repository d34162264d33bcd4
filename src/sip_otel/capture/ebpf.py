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

Media (``media=True``, docs/media.md "Live path"): the filter also keeps per-stream RTP
statistics in the ``rtp_streams`` map for the endpoints userspace writes into ``media_eps``.
:meth:`EbpfCapture.media_apply` writes the core's endpoint changes, :meth:`~EbpfCapture.media_read`
reads every stream (one batch lookup), :meth:`~EbpfCapture.media_delete` deletes the streams the
core is done with. A write refused because ``media_eps`` is full (E2BIG/ENOMEM) is counted
(``kernel_media_endpoints.full``); RTP packets whose stream found no room in ``rtp_streams`` are
counted by the filter (``rtp_streams_full``). Both are evictions (:data:`KERNEL_EVICTIONS`, from
:meth:`EbpfCapture.media_drops`, exported by the agent as ``sip_otel_evictions_total``), not
capture drops: no packet meant for userspace was lost, and a bigger ring would not help.
"""

from __future__ import annotations

import errno
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
from sip_otel.capture.bpfsys import HashMap, PerCpuCounters
from sip_otel.net.types import Frame

__all__ = [
    "COUNTERS",
    "KERNEL_EVICTIONS",
    "EbpfCapture",
    "RingMap",
    "filter_source",
    "media_map_entries",
]

log = logging.getLogger(__name__)

_DROP_COUNTERS = {"ring_full": 1, "load_fail": 2}  # counter indexes
# With media, eviction slugs (docs/metrics.md) of the kernel maps: endpoint writes the full
# media_eps refused, RTP packets whose stream found no room in rtp_streams (statistics lost).
# Not the core's media_endpoints.full / rtp_streams.full (its own tables, added to the same dict).
KERNEL_EVICTIONS = ("kernel_media_endpoints.full", "kernel_rtp_streams.full")
_RTP_STREAMS_FULL = COUNTERS.index("rtp_streams_full")
# errnos of a map update refused for want of room (hash map full / no memory for an element)
_MAP_FULL = (errno.E2BIG, errno.ENOMEM)

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


def media_map_entries(limit: int) -> int:
    """Entries of a kernel media map for a core limit: the core rounds its tables up to a power
    of two, at least 8 (PipelineConfig.media_max_*), so the kernel map holds as many."""
    return max(8, 1 << (max(1, limit) - 1).bit_length())


def _delete_keys(m: HashMap, keys: bytes, what: str) -> None:
    """Delete every key of ``keys`` (packed, ``m.key_size`` each) from ``m``; one already gone
    is fine, other errors are logged."""
    size = m.key_size
    for i in range(0, len(keys) - size + 1, size):
        err = m.delete(keys[i : i + size])
        if err and err != errno.ENOENT:
            log.warning("%s delete failed: %s", what, os.strerror(err))


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
        media: bool = False,
        media_max_endpoints: int = 4096,
        media_max_streams: int = 8192,
    ) -> None:
        self._ring: RingMap | None = None
        self._epoll: select.epoll | None = None
        self._media_eps: HashMap | None = None
        self._rtp_streams: HashMap | None = None
        self.media_endpoints_full = 0  # media_eps writes refused: the map was full
        self.offset_ns = realtime_offset_ns()  # kernel times -> packet time (ring and media)
        request = LoadRequest(
            interfaces=[(i.name, i.ifindex) for i in interfaces],
            ports=sorted(ports),
            ring_bytes=ring_bytes,
            all_ports=all_ports,
            source=str(source or filter_source()),
            media=media,
            media_max_endpoints=media_map_entries(media_max_endpoints),
            media_max_streams=media_map_entries(media_max_streams),
        )
        self._handover: Handover | None = load_filter(request)
        handed = self._handover
        self._sockets: dict[str, tuple[int, socket.socket | None]] = {
            name: (ifindex, sock)
            for (name, ifindex), sock in zip(handed.info.interfaces, handed.sockets, strict=True)
        }
        try:
            self._counters = PerCpuCounters(handed.counters_fd, handed.info.ncpu)
            self._ring = RingMap(handed.ring_fds, handed.info.ring_bytes, self.offset_ns)
            self._epoll = select.epoll()
            for fd in handed.ring_fds:
                self._epoll.register(fd, select.EPOLLIN)
            if handed.info.media:
                self._media_eps = HashMap(handed.media_eps_fd)
                self._rtp_streams = HashMap(handed.rtp_streams_fd)
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

    @property
    def prog_fd(self) -> int:
        """The loaded filter program (-1 once closed): diagnostics, benchmarks."""
        return self._handover.prog_fd if self._handover is not None else -1

    @property
    def media(self) -> bool:
        """The filter keeps RTP statistics (loaded with media)."""
        return self._rtp_streams is not None

    def media_apply(self, changes: list[tuple[bytes, bytes]]) -> None:
        """Write the core's endpoint changes into ``media_eps``: (packed so_mep_key, packed
        so_mep_val) adds or replaces, (key, b"") deletes (one already gone is fine), (b"", b"")
        deletes every endpoint (the core's change queue overflowed: adds for every endpoint it
        holds follow). A write the full map refuses is counted (``media_endpoints.full``), never
        raised."""
        eps = self._media_eps
        if eps is None:
            return
        for key, value in changes:
            if not key:
                self._media_eps_clear(eps)
                continue
            if not value:
                err = eps.delete(key)
                if err and err != errno.ENOENT:
                    log.warning("media endpoint delete failed: %s", os.strerror(err))
                continue
            err = eps.update(key, value)
            if err in _MAP_FULL:
                self.media_endpoints_full += 1
            elif err:
                log.warning("media endpoint write failed: %s", os.strerror(err))

    @staticmethod
    def _media_eps_clear(eps: HashMap) -> None:
        keys, _values = eps.read_all()
        _delete_keys(eps, keys, "media endpoint")

    def media_read(self) -> tuple[bytes, bytes]:
        """Every stream of ``rtp_streams``: (packed so_mstream_key, packed so_rtp_stats)."""
        if self._rtp_streams is None:
            return b"", b""
        return self._rtp_streams.read_all()

    def media_delete(self, keys: bytes) -> None:
        """Delete these streams (packed so_mstream_key; one already gone is fine)."""
        streams = self._rtp_streams
        if streams is None or not keys:
            return
        _delete_keys(streams, keys, "RTP stream")

    def media_drops(self) -> dict[str, int]:
        """Media lost for want of room in the kernel maps, by eviction slug
        (:data:`KERNEL_EVICTIONS`): endpoint writes ``media_eps`` refused, RTP packets
        ``rtp_streams`` had no stream for. Totals since start; {} without media."""
        if self._rtp_streams is None:
            return {}
        eps, streams = KERNEL_EVICTIONS
        return {eps: self.media_endpoints_full, streams: self._counters.sum(_RTP_STREAMS_FULL)}

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
        if self._rtp_streams is not None:
            out["media_endpoints_full"] = self.media_endpoints_full
            out["media_batch_lookup"] = int(self._rtp_streams.batch)
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
        self._media_eps = self._rtp_streams = None
        if self._handover is not None:
            self._handover.sockets.clear()  # closed above
            self._handover.close()
            self._handover = None
