"""The eBPF loader child and its descriptor handover: every failure is one CaptureError line.

These tests run the real child (``python -m sip_otel.capture.bpfload``) with a fake ``bcc``
package first on its path, so they need neither root nor bcc: the child fails (or hangs, or
dies) before anything privileged happens.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import asdict
from pathlib import Path

import pytest

from sip_otel.capture import bpfload
from sip_otel.capture.base import CaptureError
from sip_otel.capture.bpfload import LoadRequest, load_filter
from sip_otel.capture.ebpf import filter_source


def _request() -> LoadRequest:
    return LoadRequest(
        interfaces=[("lo", 1)],
        ports=[5060],
        ring_bytes=1 << 20,
        all_ports=False,
        source=str(filter_source()),
    )


def _fake_bcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    pkg = tmp_path / "bcc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(body)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


def test_no_bcc_in_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bcc(tmp_path, monkeypatch, "raise ImportError('no module named bcc (fake)')\n")
    with pytest.raises(CaptureError) as info:
        load_filter(_request())
    assert str(info.value).startswith("bcc not importable (no module named bcc (fake));")
    assert "install python3-bpfcc" in str(info.value)
    assert not info.value.permission


def test_child_that_hangs_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bcc(tmp_path, monkeypatch, "import time\ntime.sleep(60)\n")
    with pytest.raises(CaptureError) as info:
        load_filter(_request(), timeout=0.5)
    assert str(info.value).startswith("eBPF loader did not answer within 0.5 s (killed)")
    assert "SIP_OTEL_BPF_LOAD_TIMEOUT" in str(info.value)


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIP_OTEL_BPF_LOAD_TIMEOUT", "2.5")
    assert bpfload.load_timeout() == 2.5
    monkeypatch.setenv("SIP_OTEL_BPF_LOAD_TIMEOUT", "soon")
    assert bpfload.load_timeout() == bpfload.LOAD_TIMEOUT_S


def test_child_that_dies_without_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bcc(
        tmp_path,
        monkeypatch,
        "import os, sys\nsys.stderr.write('warning: one\\nfatal: gone\\n')\n"
        "sys.stderr.flush()\nos._exit(3)\n",
    )
    with pytest.raises(CaptureError) as info:
        load_filter(_request())
    assert str(info.value) == "eBPF loader exited with status 3 without an answer: fatal: gone"


def test_missing_source_file(tmp_path: Path) -> None:
    req = LoadRequest(
        interfaces=[("lo", 1)],
        ports=[5060],
        ring_bytes=1 << 20,
        all_ports=False,
        source=str(tmp_path / "nope.c"),
    )
    with pytest.raises(CaptureError, match=r"eBPF filter source .*nope.c not found; set "):
        load_filter(req)


def _reply(payload: dict[str, object], nfds: int) -> tuple[bytes, list[int]]:
    fds = []
    for _ in range(nfds):
        r, w = os.pipe()
        os.close(w)
        fds.append(r)
    return json.dumps(payload).encode(), fds


def _info(**kw: object) -> dict[str, object]:
    """A loader's info reply: 2 CPUs, 2 rings of 512 KiB, on ``lo``; ``kw`` changes fields."""
    info: dict[str, object] = {
        "ncpu": 2,
        "ring_bytes": 1 << 19,
        "rings": 2,
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "counters": list(bpfload.COUNTERS),
        "interfaces": [["lo", 1]],
    }
    return info | kw


def _open_fds(fds: list[int]) -> int:
    n = 0
    for fd in fds:
        try:
            os.fstat(fd)
            n += 1
        except OSError:
            pass
    return n


def test_error_reply_keeps_the_permission_flag() -> None:
    msg, fds = _reply({"error": "loading the eBPF filter: not permitted", "permission": True}, 0)
    with pytest.raises(CaptureError) as info:
        bpfload._handover(msg, fds, "")
    assert info.value.permission
    assert str(info.value) == "loading the eBPF filter: not permitted"


def test_wrong_descriptor_count_is_refused() -> None:
    info = _info(page_size=4096, interfaces=[["lo", 1], ["va", 7]])
    msg, fds = _reply(info, 6)  # program, counters, ports + 2 rings + 2 sockets expected
    with pytest.raises(CaptureError, match="sent 6 descriptors for 2 rings and 2 interfaces"):
        bpfload._handover(msg, fds, "")
    for fd in fds:
        os.close(fd)


def test_bad_reply_is_one_line() -> None:
    with pytest.raises(CaptureError, match="eBPF loader sent a bad reply"):
        bpfload._handover(b"\x00garbage", [], "")


def test_handover_builds_sockets_in_order() -> None:
    a, b = socket.socketpair()
    info = _info()
    msg, fds = _reply(info, 5)
    handed = bpfload._handover(msg, [*fds, os.dup(a.fileno())], "warn\n")
    try:
        assert handed.info.interfaces == [("lo", 1)]
        assert handed.info.rings == 2 and handed.info.ring_bytes == 1 << 19
        assert (handed.prog_fd, handed.counters_fd, handed.ports_fd) == tuple(fds[:3])
        assert handed.ring_fds == fds[3:]
        assert len(handed.sockets) == 1 and handed.stderr == "warn\n"
    finally:
        handed.close()
        a.close()
        b.close()
    assert _open_fds(fds) == 0


def test_handover_with_media_maps_after_the_rings() -> None:
    a, b = socket.socketpair()
    info = _info(media=True)
    msg, fds = _reply(info, 7)  # program, counters, ports, 2 rings, media_eps, rtp_streams
    handed = bpfload._handover(msg, [*fds, os.dup(a.fileno())], "")
    try:
        assert handed.info.media
        assert handed.ring_fds == fds[3:5]
        assert (handed.media_eps_fd, handed.rtp_streams_fd) == tuple(fds[5:7])
        assert len(handed.sockets) == 1
    finally:
        handed.close()
        a.close()
        b.close()
    assert _open_fds(fds) == 0
    info["interfaces"] = []
    msg, fds = _reply(info, 5)  # the media maps missing
    with pytest.raises(CaptureError, match="sent 5 descriptors for 2 rings, the media maps and 0"):
        bpfload._handover(msg, fds, "")
    for fd in fds:
        os.close(fd)


def test_media_request_and_counters() -> None:
    req = LoadRequest([("lo", 1)], [5060], 1 << 20, False, "x.c", True, 16, 32)
    assert json.loads(json.dumps(asdict(req)))["media_max_streams"] == 32
    assert bpfload.COUNTERS[8:] == (
        "rtp_counted",
        "rtcp_passed",
        "rtp_streams_full",
        "not_rtp",
        "rtp_copies",
    )
    # the filter's exported counter indexes are 0 .. len(COUNTERS) - 1, then the private one
    text = filter_source().read_text()
    defines = {m[0]: int(m[1]) for m in re.findall(r"#define (C_[A-Z_]+) +(\d+)", text)}
    assert defines["C_RTP"] == 8 and defines["C_NOT_RTP"] == 11
    assert defines["C_RTP_COPIES"] == len(bpfload.COUNTERS) - 1
    assert defines["C_SINCE_WAKEUP"] == len(bpfload.COUNTERS)


@pytest.mark.parametrize(
    ("budget", "ncpu", "env", "want"),
    [
        (16 << 20, 2, "", (2, 8 << 20)),  # one ring per CPU, the budget split
        (16 << 20, 1, "", (1, 16 << 20)),
        (16 << 20, 3, "", (3, 4 << 20)),  # 3 rounds up to 4: each ring a power of two
        (16 << 20, 4, "", (4, 4 << 20)),
        (1 << 20, 16, "", (16, 1 << 17)),  # 64 KiB would be too small: the floor
        (16 << 20, 2, "1", (1, 16 << 20)),  # SIP_OTEL_BPF_RINGS=1: one shared ring
        (16 << 20, 2, "x", (2, 8 << 20)),  # not a number: ignored
    ],
)
def test_ring_layout(
    monkeypatch: pytest.MonkeyPatch, budget: int, ncpu: int, env: str, want: tuple[int, int]
) -> None:
    monkeypatch.setenv("SIP_OTEL_BPF_RINGS", env)
    assert bpfload.ring_layout(budget, ncpu, 4096) == want
