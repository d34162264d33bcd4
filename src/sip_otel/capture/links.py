"""Interfaces that go away and come back: rtnetlink link events for the interfaces we capture on.

A packet socket bound to an interface follows it down and up (same ifindex: the kernel re-hooks
the socket), but when the interface is deleted the socket is left bound to nothing, and a
re-created interface of the same name has a new ifindex. :class:`LinkWatcher` listens on an
``AF_NETLINK``/``NETLINK_ROUTE`` socket joined to ``RTMGRP_LINK``: the kernel sends
``RTM_NEWLINK``/``RTM_DELLINK`` only when a link changes, so an idle watcher costs nothing (no
periodic check). Its descriptor sits in the agent's poll set; :meth:`LinkWatcher.changes` says
which watched names now have another ifindex (0 = gone). When the kernel had to drop events
(``ENOBUFS``: the socket's queue overflowed during a burst of link changes) the watcher asks
``if_nametoindex`` for every watched name instead (a *resync*).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["LinkChange", "LinkWatcher", "parse_link_messages"]

NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
NLMSG_ERROR = 2
NLMSG_DONE = 3
IFLA_IFNAME = 3
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # len, type
# Enough for the events of a burst of link changes between two polls (each is ~1-2 KB).
_RCVBUF = 1 << 20


class LinkChange(NamedTuple):
    """Interface ``name`` now has ``ifindex`` (0: it is gone); ``reason`` says how we learnt it:
    ``netlink`` (an event) or ``resync`` (a look-up after lost events)."""

    name: str
    ifindex: int
    reason: str


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse_link_messages(data: bytes) -> list[tuple[int, int, str]]:
    """rtnetlink datagram -> [(RTM_NEWLINK | RTM_DELLINK, ifindex, name)] (other messages and
    malformed tails are skipped)."""
    out = []
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            body = off + _NLMSGHDR.size
            _family, _type, index, _iflags, _change = _IFINFOMSG.unpack_from(data, body)
            name = ""
            a = body + _IFINFOMSG.size
            end = off + length
            while a + _RTATTR.size <= end:
                alen, atype = _RTATTR.unpack_from(data, a)
                if alen < _RTATTR.size or a + alen > end:
                    break
                if atype == IFLA_IFNAME:
                    raw = data[a + _RTATTR.size : a + alen]
                    name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                    break
                a += _align4(alen)
            out.append((kind, index, name))
        off += _align4(length)
    return out


class LinkWatcher:
    """Which of ``names`` changed ifindex since the last call (see the module docstring)."""

    def __init__(self, current: dict[str, int]) -> None:
        self.current = dict(current)  # watched name -> ifindex we capture on (0: gone)
        self.sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            NETLINK_ROUTE,
        )
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self.sock.bind((0, RTMGRP_LINK))
        except OSError:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def changes(self) -> list[LinkChange]:
        """Drain the socket; the watched names whose ifindex differs from :attr:`current`
        (which is updated)."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # events lost: look every name up
                    self._drain()
                    return self._resync()
                raise
            events.extend(parse_link_messages(data))
        return self.apply(events)

    def apply(self, events: Iterable[tuple[int, int, str]]) -> list[LinkChange]:
        out: list[LinkChange] = []
        for kind, index, name in events:
            # A watched name that moved elsewhere (renamed away, or deleted) is gone ...
            for watched, have in self.current.items():
                if have == index and (kind == RTM_DELLINK or name != watched):
                    out.append(self._set(watched, 0, "netlink"))
            # ... and a watched name that (re)appears with another ifindex is back.
            if kind == RTM_NEWLINK and name in self.current and self.current[name] != index:
                out.append(self._set(name, index, "netlink"))
        return out

    def _set(self, name: str, ifindex: int, reason: str) -> LinkChange:
        self.current[name] = ifindex
        return LinkChange(name, ifindex, reason)

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv(1 << 16)
            except OSError:
                return

    def _resync(self) -> list[LinkChange]:
        out = []
        for name, have in list(self.current.items()):
            try:
                now = socket.if_nametoindex(name)
            except OSError:
                now = 0
            if now != have:
                out.append(self._set(name, now, "resync"))
        return out

    def close(self) -> None:
        self.sock.close()
