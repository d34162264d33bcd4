"""What every live capture shares: the protocol, errors, clocks, interfaces.

Packet time: the eBPF filter stamps packets with ``bpf_ktime_get_ns`` (``CLOCK_MONOTONIC``;
a socket filter may not read ``skb->tstamp``); the TPACKET_V3 ring carries the skb receive time,
already ``CLOCK_REALTIME``. Monotonic stamps become epoch ns by adding
:func:`realtime_offset_ns`, computed once at start:
packet times stay monotonic across NTP steps, at the price of drifting from the wall clock by
whatever NTP slews during a long run (ms per day). The agent's idle clock uses the same mapping
(``time.monotonic_ns() + offset``), so timers and packets share one time base.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from sip_otel.net.types import Frame

__all__ = [
    "ETH_P_ALL",
    "GRANT_HINT",
    "PACKET_OUTGOING",
    "SO_ATTACH_BPF",
    "Capture",
    "CaptureError",
    "Interface",
    "MediaCapture",
    "media_capture",
    "open_packet_socket",
    "permission_error",
    "realtime_offset_ns",
    "resolve_interfaces",
]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_ATTACH_BPF = 50
# Link types whose frames start with a 14-byte Ethernet header on an AF_PACKET SOCK_RAW socket.
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ETHER_ARPHRDS = frozenset((ARPHRD_ETHER, ARPHRD_LOOPBACK))

# Frames handed to the pipeline per read: large enough to amortise the per-batch cost, small
# enough that one batch (<= 1 MiB at 1.5 KB) stays in cache and a timer tick is never far.
DEFAULT_BATCH = 512


class CaptureError(Exception):
    """Capture cannot start or run; ``str()`` is one line with the cause and the fix.

    ``permission`` is True when the cause is a missing capability (the agent then names every
    capability the capture paths need).
    """

    def __init__(self, message: str, permission: bool = False) -> None:
        super().__init__(message)
        self.permission = permission


class Capture(Protocol):
    """A live packet source (eBPF ring or TPACKET_V3 ring)."""

    path: str  # "ebpf" or "afpacket"

    def fileno(self) -> int:
        """A descriptor that polls readable when frames wait."""
        ...

    def read(self, max_frames: int = DEFAULT_BATCH) -> list[Frame]:
        """Frames waiting now (possibly none) as Python objects; never blocks (tests, tools)."""
        ...

    def feed(self, pipeline: Any, max_frames: int) -> int:
        """Hand up to ``max_frames`` waiting frames straight to the pipeline (compiled, no
        Python object per frame); returns how many. Never blocks."""
        ...

    def drops(self) -> int:
        """Packets the kernel matched but could not hand over (ring full, copy failure)."""
        ...

    def drop_reasons(self) -> dict[str, int]:
        """:meth:`drops` by reason slug (``ring_full``; eBPF also ``load_fail``)."""
        ...

    def counters(self) -> dict[str, int]:
        """Kernel-side counters by name (passed, drops, ...), for logs and tests."""
        ...

    def interfaces(self) -> dict[str, int]:
        """Named interfaces -> the ifindex captured now (0: gone); {} for "all interfaces"
        (an unbound socket sees every interface, new ones included)."""
        ...

    def relink(self, name: str, ifindex: int) -> None:
        """Interface ``name`` now has ``ifindex`` (0: gone): drop the old socket, attach a new
        one. Raises :class:`CaptureError` when the new one cannot be opened."""
        ...

    def clear_errors(self) -> None:
        """Read and forget pending socket errors (the kernel sets ENETDOWN on a packet socket
        whose interface goes down; a polled socket would then stay readable)."""
        ...

    def close(self) -> None:
        """Detach and close everything (idempotent)."""
        ...


class MediaCapture(Protocol):
    """A capture whose kernel filter keeps RTP statistics (eBPF with media; docs/media.md,
    "Live path"). AF_PACKET has none: RTP statistics need the eBPF filter."""

    offset_ns: int  # realtime - monotonic: kernel (bpf_ktime_get_ns) times -> packet time

    def media_apply(self, changes: list[tuple[bytes, bytes]]) -> None:
        """Write endpoint changes ((packed key, packed value); value b"" deletes)."""
        ...

    def media_read(self) -> tuple[bytes, bytes]:
        """Every RTP stream: (packed keys, packed statistics)."""
        ...

    def media_delete(self, keys: bytes) -> None:
        """Delete these streams (packed keys)."""
        ...

    def media_drops(self) -> dict[str, int]:
        """Media lost for want of room in the kernel maps, by eviction slug."""
        ...


def media_capture(capture: object) -> MediaCapture | None:
    """``capture`` as a :class:`MediaCapture` when it was opened with media, else None."""
    if getattr(capture, "media", False) is True:
        return capture  # type: ignore[return-value]
    return None


class Interface(NamedTuple):
    """An interface to capture on; ``("", 0)`` means all interfaces."""

    name: str
    ifindex: int


def resolve_interfaces(names: Sequence[str]) -> list[Interface]:
    """Interface names -> (name, ifindex); an empty list means all interfaces."""
    if not names:
        return [Interface("", 0)]
    out = []
    for name in names:
        try:
            out.append(Interface(name, socket.if_nametoindex(name)))
        except OSError:
            have = ", ".join(n for _, n in socket.if_nameindex())
            raise CaptureError(
                f"interface {name!r} does not exist (have: {have}); fix SIP_EXPORTER_INTERFACE "
                "or --interface"
            ) from None
    return out


def loopback_ifindex() -> int:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return 1


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few samples."""
    best = None
    for _ in range(5):
        m0 = time.monotonic_ns()
        r = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, r - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def arphrd(ifindex: int) -> int | None:
    """Link type (ARPHRD_*) of an interface, None if it is gone."""
    try:
        name = socket.if_indextoname(ifindex)
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


# What to grant, in one place (docs/capture.md explains each capability).
GRANT_HINT = (
    "run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_RAW (AF_PACKET fallback: CAP_NET_RAW "
    "only), e.g. docker run --cap-add BPF --cap-add PERFMON --cap-add NET_RAW; see docs/capture.md"
)


def permission_error(what: str, missing: str) -> CaptureError:
    """A one-line CaptureError for an EPERM, naming the missing capabilities and the fix."""
    return CaptureError(f"{what}: not permitted (missing {missing}); {GRANT_HINT}", True)


def open_packet_socket(iface: Interface, rcvbuf: int = 0) -> socket.socket:
    """Non-blocking AF_PACKET/SOCK_RAW socket bound to ``iface`` (unbound = all interfaces).

    ``rcvbuf`` > 0 shrinks the receive queue first (the eBPF path never reads the socket: only
    what arrives before its filter is attached could queue there).
    Raises :class:`CaptureError` naming CAP_NET_RAW when the kernel says EPERM.
    """
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise permission_error("opening an AF_PACKET socket", "CAP_NET_RAW") from None
    try:
        sock.setblocking(False)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if iface.ifindex:
            sock.bind((iface.name, ETH_P_ALL))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ENODEV:
            raise CaptureError(
                f"interface {iface.name!r} went away; fix SIP_EXPORTER_INTERFACE"
            ) from None
        raise CaptureError(f"binding to {iface.name!r}: {os.strerror(exc.errno or 0)}") from None
    return sock


CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def effective_caps() -> int:
    """The CapEff mask of this process (0 if unreadable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def missing_bpf_caps() -> str | None:
    """Capabilities eBPF capture lacks for sure, or None.

    Measured on Linux 6.18: CAP_BPF (or CAP_SYS_ADMIN) plus CAP_NET_RAW load and attach the
    filter; CAP_PERFMON was not needed there but is asked for by some kernels' verifier paths.
    """
    caps = effective_caps()
    need = []
    if not (caps >> CAP_BPF & 1 or caps >> CAP_SYS_ADMIN & 1):
        need.append("CAP_BPF")
    if not caps >> CAP_NET_RAW & 1:
        need.append("CAP_NET_RAW")
    return ", ".join(need) or None
