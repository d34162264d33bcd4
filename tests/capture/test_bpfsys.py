"""bpf(2) through ctypes (capture/bpfsys.py): the hash map operations the media maps use, on
maps created here with BPF_MAP_CREATE (no bcc). Needs root (or CAP_BPF); skipped elsewhere."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable, Iterator

import pytest

from sip_otel.capture import bpfsys
from sip_otel.capture.bpfsys import HashMap

BPF_MAP_TYPE_HASH = 1


def _hash_map(key_size: int, value_size: int, max_entries: int) -> int:
    attr = bpfsys._MapCreateAttr(
        map_type=BPF_MAP_TYPE_HASH,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_name=b"sot_test",
    )
    return bpfsys._syscall(bpfsys.BPF_MAP_CREATE, attr)


@pytest.fixture
def new_map() -> Iterator[Callable[[int, int, int], HashMap]]:
    fds: list[int] = []

    def make(key_size: int, value_size: int, max_entries: int) -> HashMap:
        try:
            fd = _hash_map(key_size, value_size, max_entries)
        except OSError as exc:
            pytest.skip(f"cannot create a BPF map here ({exc})")
        fds.append(fd)
        return HashMap(fd)

    yield make
    for fd in fds:
        os.close(fd)


def test_sizes_update_delete_full(new_map: Callable[[int, int, int], HashMap]) -> None:
    m = new_map(20, 84, 4)
    assert (m.key_size, m.value_size, m.max_entries) == (20, 84, 4)
    keys = [struct.pack("=BxH16s", 4, 40000 + i, b"\x7f\0\0\x01") for i in range(5)]
    assert [m.update(k, bytes([i]) * 84) for i, k in enumerate(keys[:4])] == [0, 0, 0, 0]
    assert m.update(keys[4], bytes(84)) == errno.E2BIG  # full
    assert m.update(keys[0], b"\xff" * 84) == 0  # a replace needs no room
    assert m.lookup(keys[0]) == b"\xff" * 84
    assert m.delete(keys[1]) == 0
    assert m.delete(keys[1]) == errno.ENOENT
    assert m.lookup(keys[1]) is None
    assert m.update(keys[4], bytes(84)) == 0  # room again
    with pytest.raises(ValueError, match="key of 3 bytes for a map of 20-byte keys"):
        m.update(b"abc", bytes(84))


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "iterate"])
def test_read_all_every_element_once(
    new_map: Callable[[int, int, int], HashMap], batch: bool
) -> None:
    m = new_map(44, 144, 3000)
    m.BATCH = 64  # several batch calls
    m.batch = batch
    want = {struct.pack("=I40x", i): struct.pack("=Q136x", i * 7) for i in range(2500)}
    for k, v in want.items():
        assert m.update(k, v) == 0
    keys, values = m.read_all()
    assert len(keys) == 2500 * 44 and len(values) == 2500 * 144
    got = {keys[i * 44 : (i + 1) * 44]: values[i * 144 : (i + 1) * 144] for i in range(2500)}
    assert got == want
    assert m.batch is batch  # this kernel takes batch lookups (6.18)


def test_read_all_empty(new_map: Callable[[int, int, int], HashMap]) -> None:
    m = new_map(8, 8, 8)
    assert m.read_all() == (b"", b"")
    m.batch = False
    assert m.read_all() == (b"", b"")
