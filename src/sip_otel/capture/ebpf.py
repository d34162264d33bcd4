"""eBPF capture: bcc compiles ``bpf/sip_filter.c``; we read its ring buffer memory directly.

The socket filter (see the C file's theory of operation) keeps SIP ports and IP fragments and
writes whole packets to a ``BPF_RINGBUF_OUTPUT`` ring. bcc's own reader calls a Python callback
per record through ctypes: 0.3-0.6 us/event doing nothing, 2.3-3.9 us once the callback copies
the record and builds a Frame (``benchmarks/bench_ring.py``, CPU time on this shared 2-core
VM), most of a 3 us/message budget. So, like libbpf's ``ring_buffer__consume``,
:class:`RingReader` maps the ring itself: the consumer-position page (read-write), then the
producer-position page and the data area mapped twice (read-only), so a record that wraps is
contiguous. Each record is an 8-byte kernel header (``len | BUSY | DISCARD``, page offset)
followed by our ``rec_hdr`` and the packet, padded to 8 bytes. The reader unpacks both headers
in one call, copies the packet out with one slice and publishes the new consumer position once
per batch: 1.1-2.0 us/event on the same machine.
Memory ordering: the kernel writes a record, then clears BUSY with release semantics; we read
the producer position, then each header, then its body. Plain loads keep that order on x86
(TSO); on weakly ordered CPUs (arm64) Python offers no acquire barrier, so there the capture
uses bcc's reader (:class:`BccRingReader`) instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import platform
import socket
import struct
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from sip_otel.capture.base import (
    DEFAULT_BATCH,
    SO_ATTACH_BPF,
    CaptureError,
    Interface,
    insert_vlan,
    loopback_ifindex,
    missing_bpf_caps,
    open_packet_socket,
    permission_error,
    realtime_offset_ns,
)
from sip_otel.net.types import LINKTYPE_ETHERNET, Frame

__all__ = ["COUNTERS", "BccRingReader", "EbpfCapture", "RingReader", "filter_source"]

log = logging.getLogger(__name__)

# Index -> name of the per-CPU counters in sip_filter.c (C_* defines).
COUNTERS = ("passed", "ring_full", "load_fail", "truncated", "lo_outgoing", "ring_retry")
_DROP_COUNTERS = (1, 2)

# Fault the ring pages in at start, not on the hot path (Linux; 0 elsewhere).
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
# Where RingReader's plain loads are ordered enough (x86 TSO); elsewhere bcc's reader is used.
_MMAP_READER_MACHINES = frozenset(("x86_64", "AMD64", "i686"))
# Receive queue of the (never read) capture sockets: the kernel's minimum is enough.
_RCVBUF = 256
_BUSY = 1 << 31
_DISCARD = 1 << 30
_LEN_MASK = _DISCARD - 1
_RINGBUF_HDR = 8
# struct rec_hdr in sip_filter.c: ts_ns, ifindex, len, caplen, pkt_type, vlan_tci, vlan_proto,
# two reserved fields -> 32 bytes.
# The kernel's record header (len | flags, page offset) followed by rec_hdr, in one unpack.
# Pad bytes ("x") skip the fields we do not use: fewer int objects per record.
_RECORD = struct.Struct("<I4xQI4xIHHH6x")
_DATA_OFF = _RECORD.size  # 40 = 8 (kernel header) + 32 (rec_hdr)
_REC_HDR = struct.Struct("<QI4xIHHH6x")  # rec_hdr alone (what bcc's callback receives)
_U64 = struct.Struct("<Q")


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


class RingReader:
    """Consumer of a BPF ring buffer map through ``mmap`` (one consumer only)."""

    def __init__(self, map_fd: int, size: int, offset_ns: int) -> None:
        page = mmap.PAGESIZE
        self._page = page
        self._mask = size - 1
        self._offset_ns = offset_ns
        self._cons_map = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._data_map = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ, offset=page
        )
        self._cons = _U64.unpack_from(self._cons_map, 0)[0]
        self.max_backlog = 0  # most bytes ever waiting in the ring at a read (diagnostics)

    def pending(self) -> bool:
        return bool(_U64.unpack_from(self._data_map, 0)[0] > self._cons)

    def read(self, max_frames: int = DEFAULT_BATCH) -> list[Frame]:
        dm = self._data_map
        prod = _U64.unpack_from(dm, 0)[0]
        cons = self._cons
        if cons >= prod:
            return []
        if prod - cons > self.max_backlog:
            self.max_backlog = prod - cons
        page = self._page
        mask = self._mask
        offset_ns = self._offset_ns
        unpack = _RECORD.unpack_from
        new = tuple.__new__  # Frame(...) without the generated __new__'s Python frame
        frames: list[Frame] = []
        append = frames.append
        n = 0
        while cons < prod and n < max_frames:
            pos = page + (cons & mask)
            hlen, ts, ifindex, caplen, pkt_type, tci, vproto = unpack(dm, pos)
            if hlen & _BUSY:
                break
            if not hlen & _DISCARD:
                start = pos + _DATA_OFF
                data = dm[start : start + caplen]
                if vproto:
                    data = insert_vlan(data, tci, vproto)
                append(new(Frame, (ts + offset_ns, LINKTYPE_ETHERNET, data, ifindex, pkt_type)))
                n += 1
            cons += ((hlen & _LEN_MASK) + _RINGBUF_HDR + 7) & ~7
        if cons != self._cons:
            self._cons = cons
            _U64.pack_into(self._cons_map, 0, cons)
        return frames

    def close(self) -> None:
        self._cons_map.close()
        self._data_map.close()


class BccRingReader:
    """bcc's callback reader, for CPUs where :class:`RingReader`'s ordering is not validated."""

    def __init__(self, bpf: Any, offset_ns: int) -> None:
        self._bpf = bpf
        self._offset_ns = offset_ns
        self._frames: list[Frame] = []
        self.max_backlog = 0
        bpf[b"events"].open_ring_buffer(self._on_event)

    def _on_event(self, _ctx: Any, data: Any, size: int) -> int:
        raw = ctypes.string_at(data, size)
        ts, ifindex, caplen, pkt_type, tci, vproto = _REC_HDR.unpack_from(raw)
        pkt = raw[_REC_HDR.size : _REC_HDR.size + caplen]
        if vproto:
            pkt = insert_vlan(pkt, tci, vproto)
        self._frames.append(
            Frame(ts + self._offset_ns, LINKTYPE_ETHERNET, pkt, ifindex, pkt_type)
        )
        return 0

    def pending(self) -> bool:
        return bool(self._frames)

    def read(self, max_frames: int = DEFAULT_BATCH) -> list[Frame]:
        if not self._frames:
            self._bpf.ring_buffer_consume()
        frames, self._frames = self._frames, []
        return frames

    def close(self) -> None:
        self._frames = []


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
        self._ring: RingReader | BccRingReader | None = None
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
            if platform.machine() in _MMAP_READER_MACHINES:
                self._ring = RingReader(ring.map_fd, ring_bytes, realtime_offset_ns())
            else:
                self._ring = BccRingReader(self._bpf, realtime_offset_ns())
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
        return self._ring.read(max_frames) if self._ring else []

    def pending(self) -> bool:
        return self._ring.pending() if self._ring else False

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
