"""Compile and load the eBPF filter in a short-lived child process; hand its descriptors back.

bcc links clang/LLVM: once it has compiled a program, ~150 MiB of code and heap stay resident in
whatever process imported it. So the agent never imports bcc. :func:`load_filter` starts
``python -m sip_otel.capture.bpfload --fd N`` with one end of an ``AF_UNIX``/``SOCK_SEQPACKET``
socketpair, and the exchange is two messages:

1. agent -> child: a :class:`LoadRequest` as JSON (interfaces, ports, ring size, source file);
2. child -> agent: a :class:`Loaded` as JSON with the descriptors attached (``SCM_RIGHTS``), in
   the order of :data:`FD_ORDER`, then one ring buffer per ring (one per possible CPU), then
   with media the maps of :data:`MEDIA_FD_ORDER`, then one attached ``AF_PACKET`` socket per
   interface -- or ``{"error": ..., "permission": ...}`` and no descriptors.

Rings: the filter writes to its CPU's own ring buffer (an array of ring maps indexed by CPU), so
producers on different CPUs never share a ring's lock (docs/capture.md, "Loss-free ring").
The ring budget (``ring_bytes``) is split between them: :func:`ring_layout`. bcc creates the
first ring (the inner-map template); the child creates the others with ``bpf(2)``.

The child compiles ``bpf/sip_filter.c`` with bcc, fills the port map, opens and attaches the
sockets (so compile, load and attach errors all come from one place), sends, and exits without
bcc's teardown. A descriptor in flight holds its kernel object, so the program, maps and sockets
live on in the agent alone. The child's stderr (bcc prints compile warnings) goes to a file the
agent logs at debug level, or copies to its own stderr when ``SIP_OTEL_BPF_DEBUG`` is set.
The wait is bounded by :data:`LOAD_TIMEOUT_S` (``SIP_OTEL_BPF_LOAD_TIMEOUT`` overrides it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import mmap
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from sip_otel.capture.base import (
    SO_ATTACH_BPF,
    CaptureError,
    Interface,
    loopback_ifindex,
    missing_bpf_caps,
    open_packet_socket,
    permission_error,
)
from sip_otel.capture.bpfsys import create_ringbuf

__all__ = [
    "COUNTERS",
    "FD_ORDER",
    "LOAD_TIMEOUT_S",
    "MEDIA_FD_ORDER",
    "MIN_RING_BYTES",
    "Handover",
    "LoadRequest",
    "Loaded",
    "load_filter",
    "ring_layout",
]

log = logging.getLogger(__name__)

# Index -> name of the per-CPU counters in sip_filter.c (C_* defines).
COUNTERS = (
    "passed",
    "ring_full",
    "load_fail",
    "truncated",
    "lo_outgoing",
    "ring_retry",
    "ring_fail_attempts",
    "ring_fail_ns",
    "rtp_counted",  # media: RTP packets counted into rtp_streams in the kernel (not copied)
    "rtcp_passed",  # media: RTCP packets to learned endpoints copied to the ring
    "rtp_streams_full",  # media: RTP packets whose stream found no room: statistics lost
    "not_rtp",  # media: packets to a learned RTP endpoint that are not RTP (dropped)
    "rtp_copies",  # media: RTP copies seen on another interface than the stream's (skipped)
)
# Descriptors in the reply, in this order, then the rings, then (media) the media maps, then one
# socket per interface.
FD_ORDER = ("prog", "counters", "ports")
MEDIA_FD_ORDER = ("media_eps", "rtp_streams")
# Smallest ring: two records of the largest packet.
MIN_RING_BYTES = 1 << 17
# Compiling takes 1-3 s on an idle machine and several times that on a busy one; anything past
# this is a hung child (or a wedged compiler), not a slow one.
LOAD_TIMEOUT_S = 60.0
# Receive queue of the (never read) capture sockets: the kernel's minimum is enough.
RCVBUF = 256
_MAX_MESSAGE = 1 << 16


@dataclass(frozen=True)
class LoadRequest:
    """What the agent asks the child to load (its settings, resolved)."""

    interfaces: list[tuple[str, int]]  # (name, ifindex); ("", 0) = all interfaces
    ports: list[int]
    ring_bytes: int
    all_ports: bool
    source: str
    media: bool = False  # -DMEDIA: RTP statistics in the kernel (docs/media.md, "Live path")
    media_max_endpoints: int = 4096  # entries of media_eps
    media_max_streams: int = 8192  # entries of rtp_streams


@dataclass(frozen=True)
class Loaded:
    """The child's description of the descriptors it sends (see :data:`FD_ORDER`)."""

    ncpu: int  # possible CPUs: a per-CPU map value holds this many slots
    ring_bytes: int  # of each ring
    rings: int
    page_size: int
    counters: list[str]  # counter map index -> name
    interfaces: list[tuple[str, int]]  # the sockets after the maps, in this order
    media: bool = False  # the media maps (MEDIA_FD_ORDER) follow the rings


@dataclass
class Handover:
    """What the agent holds after a load: the description and the descriptors (it owns them)."""

    info: Loaded
    prog_fd: int
    counters_fd: int
    ports_fd: int
    ring_fds: list[int]
    sockets: list[socket.socket]
    stderr: str  # what the child printed (bcc warnings)
    media_eps_fd: int = -1  # media only (else -1)
    rtp_streams_fd: int = -1

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        for fd in self.ring_fds:
            os.close(fd)
        self.ring_fds.clear()
        for name in ("prog_fd", "counters_fd", "ports_fd", "media_eps_fd", "rtp_streams_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


def ring_layout(ring_bytes: int, ncpu: int, page: int = mmap.PAGESIZE) -> tuple[int, int]:
    """(rings, bytes per ring) for a budget of ``ring_bytes``: one ring per possible CPU
    (``SIP_OTEL_BPF_RINGS`` overrides the count, e.g. 1 for one shared ring), each the budget
    divided by the count rounded up to a power of two (a ring is a power of two), at least
    :data:`MIN_RING_BYTES` and one page."""
    try:
        rings = int(os.environ.get("SIP_OTEL_BPF_RINGS", "") or ncpu)
    except ValueError:
        rings = ncpu
    rings = max(1, min(rings, 256))
    per = ring_bytes >> (rings - 1).bit_length()
    return rings, max(per, MIN_RING_BYTES, page)


def load_timeout() -> float:
    try:
        return float(os.environ.get("SIP_OTEL_BPF_LOAD_TIMEOUT", "") or LOAD_TIMEOUT_S)
    except ValueError:
        return LOAD_TIMEOUT_S


# --- the agent's side --------------------------------------------------------------------------


def load_filter(request: LoadRequest, timeout: float | None = None) -> Handover:
    """Run the loader child and return what it handed over. Raises :class:`CaptureError` with
    one line (the child's error, a timeout, or a child that died without answering)."""
    timeout = load_timeout() if timeout is None else timeout
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with ours, tempfile.TemporaryFile(mode="w+b") as err:
        # SIGHUP (the agent's reload) blocked across the fork and exec: the child starts with it
        # blocked and then ignores it (main); the agent gets a SIGHUP of this moment at unblock.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "sip_otel.capture.bpfload", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                close_fds=True,
            )
        except OSError as exc:
            theirs.close()
            raise CaptureError(f"cannot start the eBPF loader ({exc})") from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        theirs.close()  # the child holds it now: EOF on ours when the child dies
        try:
            ours.sendall(json.dumps(asdict(request)).encode())
            maxfds = len(FD_ORDER) + len(MEDIA_FD_ORDER) + 256 + len(request.interfaces)
            reply = _receive(ours, child, timeout, maxfds)
        finally:
            _reap(child)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    _log_child_stderr(stderr)
    if reply is None:
        last = _last_line(stderr)
        raise CaptureError(
            f"eBPF loader exited with status {child.returncode} without an answer"
            + (f": {last}" if last else "")
        )
    msg, fds = reply
    try:
        return _handover(msg, fds, stderr)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _receive(
    sock: socket.socket, child: subprocess.Popen[bytes], timeout: float, maxfds: int
) -> tuple[bytes, list[int]] | None:
    """The child's reply (bytes and descriptors), or None when it closed the socket first."""
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    while not poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        if time.monotonic() >= deadline:
            child.kill()
            raise CaptureError(
                f"eBPF loader did not answer within {timeout:g} s (killed); "
                "set SIP_OTEL_BPF_LOAD_TIMEOUT on a slow machine"
            )
    msg, fds, flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, maxfds, socket.MSG_CMSG_CLOEXEC)
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        for fd in fds:
            os.close(fd)
        raise CaptureError("eBPF loader reply truncated (too many descriptors?)")
    if not msg and not fds:
        return None
    return msg, list(fds)


def _reap(child: subprocess.Popen[bytes]) -> None:
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _handover(msg: bytes, fds: list[int], stderr: str) -> Handover:
    try:
        data: dict[str, Any] = json.loads(msg)
    except ValueError:
        raise CaptureError(f"eBPF loader sent a bad reply: {msg[:80]!r}") from None
    if "error" in data:
        if fds:
            for fd in fds:
                os.close(fd)
            fds.clear()
        raise CaptureError(str(data["error"]), bool(data.get("permission")))
    info = Loaded(
        ncpu=int(data["ncpu"]),
        ring_bytes=int(data["ring_bytes"]),
        rings=int(data.get("rings", 1)),
        page_size=int(data["page_size"]),
        counters=[str(c) for c in data["counters"]],
        interfaces=[(str(n), int(i)) for n, i in data["interfaces"]],
        media=bool(data.get("media", False)),
    )
    rings_end = len(FD_ORDER) + info.rings
    maps = rings_end + (len(MEDIA_FD_ORDER) if info.media else 0)
    if len(fds) != maps + len(info.interfaces):
        raise CaptureError(
            f"eBPF loader sent {len(fds)} descriptors for {info.rings} rings"
            + (", the media maps" if info.media else "")
            + f" and {len(info.interfaces)} interfaces"
        )
    if info.page_size != mmap.PAGESIZE:
        raise CaptureError(f"eBPF loader page size {info.page_size} != {mmap.PAGESIZE}")
    prog, counters, ports = fds[: len(FD_ORDER)]
    media_eps, rtp_streams = fds[rings_end:maps] if info.media else (-1, -1)
    sockets = [socket.socket(fileno=fd) for fd in fds[maps:]]
    return Handover(
        info,
        prog,
        counters,
        ports,
        fds[len(FD_ORDER) : rings_end],
        sockets,
        stderr,
        media_eps,
        rtp_streams,
    )


def _log_child_stderr(stderr: str) -> None:
    if os.environ.get("SIP_OTEL_BPF_DEBUG"):
        sys.stderr.write(stderr)
        return
    for line in stderr.splitlines():
        if line.strip():
            log.debug("eBPF loader: %s", line)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


# --- the child's side --------------------------------------------------------------------------


@contextlib.contextmanager
def _captured_stderr() -> Iterator[IO[bytes]]:
    """Collect what bcc/clang print on fd 2 during a compile so a failure becomes one line."""
    with tempfile.TemporaryFile(mode="w+b") as buf:
        saved = os.dup(2)
        try:
            os.dup2(buf.fileno(), 2)
            yield buf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            os.write(2, buf.read())  # the agent logs the whole output too
            buf.seek(0)


def _first_error_line(buf: IO[bytes]) -> str:
    buf.seek(0)
    lines = [ln.strip() for ln in buf.read().decode("utf-8", "replace").splitlines()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    first: str = (errors or [ln for ln in lines if ln] or [""])[0]
    return first[:200]


def _load(req: LoadRequest) -> tuple[Loaded, list[int], Any]:
    """Compile, load, fill the port map, attach: (description, descriptors, the BPF object)."""
    src = Path(req.source)
    if not src.is_file():
        raise CaptureError(
            f"eBPF filter source {src} not found; set SIP_OTEL_BPF_DIR or SIP_OTEL_BPF_SOURCE"
        )
    try:
        import ctypes

        from bcc import BPF
        from bcc.utils import get_possible_cpus
    except Exception as exc:
        raise CaptureError(f"bcc not importable ({exc}); install python3-bpfcc") from None
    ncpu = max(get_possible_cpus()) + 1
    nrings, ring_bytes = ring_layout(req.ring_bytes, ncpu)
    cflags = [
        f"-DNCPU={ncpu}",
        f"-DNRINGS={nrings}",
        f"-DRING_PAGES={ring_bytes // mmap.PAGESIZE}",
        f"-DLO_IFINDEX={loopback_ifindex()}",
        f"-I{src.parent}",  # bpf/sip_record.h, so_media_map.h, so_rtp.h: shared with the core
    ]
    if req.all_ports:
        cflags.append("-DALL_PORTS=1")
    if req.media:
        cflags += [
            "-DMEDIA=1",
            f"-DMEDIA_MAX_ENDPOINTS={req.media_max_endpoints}",
            f"-DMEDIA_MAX_STREAMS={req.media_max_streams}",
        ]
    # SIP_OTEL_BPF_DEBUG=<bcc debug flags> (e.g. 4: print the preprocessed C) for debugging.
    debug = int(os.environ.get("SIP_OTEL_BPF_DEBUG", "0") or 0)
    with _captured_stderr() as err:
        try:
            bpf = BPF(src_file=str(src).encode(), cflags=cflags, debug=debug)
            fn = bpf.load_func(b"sip_filter", BPF.SOCKET_FILTER)
        except Exception as exc:
            detail = _first_error_line(err) or str(exc)
            missing = missing_bpf_caps()
            if missing:
                raise permission_error("loading the eBPF filter", missing) from None
            if "not permitted" in f"{detail} {exc}".lower():
                raise permission_error(
                    "loading the eBPF filter", "CAP_PERFMON or CAP_SYS_ADMIN"
                ) from None
            raise CaptureError(f"eBPF filter failed to compile or load: {detail}") from None
    table = bpf[b"sip_ports"]
    for port in req.ports:
        table[ctypes.c_int(port)] = ctypes.c_uint8(1)
    ring_fds = [bpf[b"events"].map_fd]
    outer = bpf[b"rings"]
    try:
        for i in range(nrings):
            if i:
                ring_fds.append(create_ringbuf(ring_bytes, f"sip_ring{i}"))
            outer[ctypes.c_int(i)] = ctypes.c_int(ring_fds[i])
    except OSError as exc:
        raise CaptureError(f"eBPF ring buffers: {exc}") from None
    sockets: list[socket.socket] = []
    try:
        for name, ifindex in req.interfaces:
            sock = open_packet_socket(Interface(name, ifindex), rcvbuf=RCVBUF)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, fn.fd)
    except PermissionError:
        raise permission_error(
            "attaching the eBPF filter", missing_bpf_caps() or "CAP_BPF"
        ) from None
    except OSError as exc:
        raise CaptureError(f"eBPF capture setup failed: {exc}") from None
    info = Loaded(
        ncpu,
        ring_bytes,
        nrings,
        mmap.PAGESIZE,
        list(COUNTERS),
        [(n, i) for n, i in req.interfaces],
        req.media,
    )
    fds = [fn.fd, bpf[b"counters"].map_fd, table.map_fd, *ring_fds]
    if req.media:
        fds += [bpf[name.encode()].map_fd for name in MEDIA_FD_ORDER]
    return info, fds + [s.fileno() for s in sockets], (bpf, sockets)


def _serve(sock: socket.socket) -> int:
    raw = sock.recv(_MAX_MESSAGE)
    try:
        fields = json.loads(raw)
        fields["interfaces"] = [tuple(x) for x in fields["interfaces"]]
        req = LoadRequest(**fields)
    except (ValueError, TypeError, KeyError) as exc:
        sock.send(json.dumps({"error": f"eBPF loader got a bad request ({exc})"}).encode())
        return 2
    try:
        info, fds, _keep = _load(req)
    except CaptureError as exc:
        sock.send(json.dumps({"error": str(exc), "permission": exc.permission}).encode())
        return 1
    except Exception as exc:  # a bug or a bcc surprise: still one line for the agent
        sock.send(
            json.dumps({"error": f"eBPF loader failed: {type(exc).__name__}: {exc}"}).encode()
        )
        return 1
    socket.send_fds(sock, [json.dumps(asdict(info)).encode()], fds)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sip_otel.capture.bpfload",
        description="eBPF loader child of the sip-otel agent",
    )
    ap.add_argument("--fd", type=int, required=True, help="SOCK_SEQPACKET to the agent")
    args = ap.parse_args(argv)
    # A SIGHUP meant for the agent (sent to its process group) must not kill the load: the
    # agent reloads on it, and this child only lives until it has handed the filter over.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with socket.socket(fileno=args.fd) as sock:
        rc = _serve(sock)
    sys.stderr.flush()
    # Skip bcc's teardown (module destructors, atexit cleanup): the agent owns the objects now.
    os._exit(rc)


if __name__ == "__main__":
    main()
