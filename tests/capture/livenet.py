"""Helpers for live tests: skip reasons, private network namespaces, veth/VLAN plumbing.

Every live test runs in network namespaces it creates (``sot-<pid>-<n>``), never on the host's
interfaces: other processes on the host use ``lo`` too, and exact counts need a quiet network.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sip_otel.capture.base import Capture
    from sip_otel.net.types import Frame

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests: .venv's in ./scripts/test.sh, .venv-floors' in
# ./scripts/test-floors.sh (so agent subprocesses run on the floors too).
PYTHON = Path(sys.executable)
CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def live_skip_reason(need_bcc: bool = True) -> str | None:
    """Why live tests cannot run here (None = they can)."""
    if os.geteuid() != 0:
        return "live capture tests need root (network namespaces, AF_PACKET, eBPF)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not found"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespace support"
    if need_bcc:
        try:
            import bcc  # noqa: F401
        except Exception as exc:
            return f"bcc not importable: {exc}"
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NetNs:
    """A named network namespace with ``lo`` up; deleted by :meth:`close`."""

    def __init__(self, tag: str = "") -> None:
        self.name = f"sot-{os.getpid()}-{tag}{next(_counter)}"
        sh("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", self.name, *args)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(*self.exec_prefix(), *args, check=check)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into this namespace for the block (sockets keep it)."""
        with (
            open("/proc/thread-self/ns/net", "rb") as orig,
            open(f"/run/netns/{self.name}", "rb") as target,
        ):
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(orig.fileno())

    def close(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)


def veth_pair(a: NetNs, b: NetNs, name_a: str = "va", name_b: str = "vb") -> None:
    """A veth pair between two namespaces, both ends up."""
    sh(
        "ip",
        "link",
        "add",
        name_a,
        "netns",
        a.name,
        "type",
        "veth",
        "peer",
        "name",
        name_b,
        "netns",
        b.name,
    )
    a.ip("link", "set", name_a, "up")
    b.ip("link", "set", name_b, "up")


def tagged_link(a: NetNs, b: NetNs, tags: list[tuple[int, int]], net: str = "10.80.0") -> None:
    """veth va (in a, {net}.1) <-> vb (in b, {net}.2) whose frames carry ``tags`` on the wire.

    ``tags`` = [(tpid, vid), ...], outer first. Done with tc programs (vlan_tc.py): this kernel
    has no 802.1Q driver.
    """
    veth_pair(a, b)
    a.ip("addr", "add", f"{net}.1/24", "dev", "va")
    b.ip("addr", "add", f"{net}.2/24", "dev", "vb")
    spec = ",".join(f"{tpid:x}:{vid}" for tpid, vid in tags)
    helper = Path(__file__).resolve().parent / "vlan_tc.py"
    for ns, dev in ((a, "va"), (b, "vb")):
        sh("unshare", "-m", str(PYTHON), str(helper), ns.name, dev, spec)


def collect(cap: Capture, settle: float = 0.25, limit: float = 3.0) -> list[Frame]:
    """Everything the capture delivers until it has been quiet for ``settle`` seconds."""
    frames: list[Frame] = []
    poller = select.poll()
    poller.register(cap.fileno(), select.POLLIN)
    deadline = time.monotonic() + limit
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        poller.poll(20)
        got = cap.read()
        if got:
            frames.extend(got)
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            break
    return frames
