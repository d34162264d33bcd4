"""rtnetlink link messages and the watcher's bookkeeping (no sockets needed for most)."""

from __future__ import annotations

import struct

import pytest

from sip_otel.capture import links
from sip_otel.capture.links import RTM_DELLINK, RTM_NEWLINK, LinkChange, parse_link_messages


def link_msg(kind: int, index: int, name: str, extra_attrs: bytes = b"") -> bytes:
    raw = name.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(raw), links.IFLA_IFNAME) + raw
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + extra_attrs + attr
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def watcher(current: dict[str, int]) -> links.LinkWatcher:
    w = links.LinkWatcher.__new__(links.LinkWatcher)
    w.current = dict(current)
    return w


def test_parse_several_messages_skipping_other_attributes() -> None:
    mtu = struct.pack("=HHI", 8, 4, 1500)  # IFLA_MTU before the name
    data = link_msg(RTM_NEWLINK, 7, "va", mtu) + link_msg(RTM_DELLINK, 8, "vb")
    assert parse_link_messages(data) == [(RTM_NEWLINK, 7, "va"), (RTM_DELLINK, 8, "vb")]


@pytest.mark.parametrize("cut", range(1, 40))
def test_truncated_datagrams_never_raise(cut: int) -> None:
    data = link_msg(RTM_NEWLINK, 7, "va") + link_msg(RTM_NEWLINK, 9, "vc")
    parse_link_messages(data[:-cut])


def test_other_message_types_ignored() -> None:
    done = struct.pack("=IHHII", 20, links.NLMSG_DONE, 0, 0, 0) + b"\0" * 4
    assert parse_link_messages(done + link_msg(RTM_NEWLINK, 3, "x")) == [(RTM_NEWLINK, 3, "x")]


def test_deleted_then_recreated() -> None:
    w = watcher({"va": 7, "lo": 1})
    assert w.apply([(RTM_DELLINK, 7, "va")]) == [LinkChange("va", 0, "netlink")]
    assert w.apply([(RTM_NEWLINK, 7, "va")]) == [LinkChange("va", 7, "netlink")]  # same index
    assert w.apply([(RTM_NEWLINK, 7, "va")]) == []  # flags change: nothing to do
    assert w.apply([(RTM_DELLINK, 7, "va"), (RTM_NEWLINK, 12, "va")]) == [
        LinkChange("va", 0, "netlink"),
        LinkChange("va", 12, "netlink"),
    ]
    assert w.current == {"va": 12, "lo": 1}


def test_renamed_away_and_renamed_into_place() -> None:
    w = watcher({"va": 7})
    assert w.apply([(RTM_NEWLINK, 7, "old-va")]) == [LinkChange("va", 0, "netlink")]
    assert w.apply([(RTM_NEWLINK, 9, "va")]) == [LinkChange("va", 9, "netlink")]


def test_unwatched_interfaces_ignored() -> None:
    w = watcher({"va": 7})
    assert w.apply([(RTM_NEWLINK, 20, "eth5"), (RTM_DELLINK, 21, "eth6")]) == []


def test_resync_looks_names_up(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"va": 30}

    def nametoindex(name: str) -> int:
        if name not in table:
            raise OSError("no such device")
        return table[name]

    monkeypatch.setattr(links.socket, "if_nametoindex", nametoindex)
    w = watcher({"va": 7, "vb": 8})
    assert sorted(w._resync()) == [LinkChange("va", 30, "resync"), LinkChange("vb", 0, "resync")]
