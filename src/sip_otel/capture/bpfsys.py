"""The ``bpf(2)`` commands needed without bcc: read an element of a per-CPU array (the agent),
create a ring buffer map (the loader child, for the per-CPU rings beyond bcc's template), and
update, delete and read all of a hash map (the agent's media maps, :class:`HashMap`).

The eBPF filter's counters live in a ``BPF_MAP_TYPE_PERCPU_ARRAY``; a lookup returns one value
slot per *possible* CPU (each slot rounded up to 8 bytes), which we sum. It runs a few times per
tick (a syscall of about a microsecond each), far from any per-packet path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

__all__ = ["HashMap", "PerCpuCounters", "bpf_syscall_number", "create_ringbuf"]

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_LOOKUP_BATCH = 24
BPF_ANY = 0
BPF_MAP_TYPE_RINGBUF = 27
# __NR_bpf per architecture (the generic table is used by arm64, riscv64, loongarch64).
_NR_BPF = {
    "x86_64": 321,
    "i386": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "armv7l": 386,
}


def bpf_syscall_number() -> int:
    machine = platform.machine()
    try:
        return _NR_BPF[machine]
    except KeyError:
        raise OSError(f"bpf(2) syscall number unknown on {machine}") from None


class _MapElemAttr(ctypes.Structure):
    # union bpf_attr, the BPF_MAP_*_ELEM member: map_fd, key, value, flags (u64-aligned).
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _MapCreateAttr(ctypes.Structure):
    # union bpf_attr, the BPF_MAP_CREATE member up to map_name (the kernel zero-fills the rest).
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
    ]


class _BatchAttr(ctypes.Structure):
    # union bpf_attr, the BPF_MAP_*_BATCH member.
    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _InfoAttr(ctypes.Structure):
    # union bpf_attr, the BPF_OBJ_GET_INFO_BY_FD member.
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _MapInfo(ctypes.Structure):
    # struct bpf_map_info, its first fields (the kernel fills at most info_len bytes).
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


def _syscall(cmd: int, attr: ctypes.Structure) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    rc = int(libc.syscall(bpf_syscall_number(), cmd, ctypes.byref(attr), ctypes.sizeof(attr)))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return rc


def create_ringbuf(size: int, name: str) -> int:
    """A new ``BPF_MAP_TYPE_RINGBUF`` of ``size`` bytes (a power-of-two multiple of the page
    size); returns its descriptor (close-on-exec)."""
    attr = _MapCreateAttr(
        map_type=BPF_MAP_TYPE_RINGBUF, max_entries=size, map_name=name.encode()[:15]
    )
    return _syscall(BPF_MAP_CREATE, attr)


class PerCpuCounters:
    """Sums of the u64 slots of a per-CPU array map (by index), read through bpf(2)."""

    def __init__(self, map_fd: int, ncpu: int) -> None:
        self.map_fd = map_fd
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._nr = bpf_syscall_number()
        self._key = ctypes.c_uint32(0)
        self._values = (ctypes.c_uint64 * ncpu)()
        self._attr = _MapElemAttr(
            map_fd=map_fd, key=ctypes.addressof(self._key), value=ctypes.addressof(self._values)
        )

    def sum(self, index: int) -> int:
        self._key.value = index
        rc = self._libc.syscall(
            self._nr, BPF_MAP_LOOKUP_ELEM, ctypes.byref(self._attr), ctypes.sizeof(self._attr)
        )
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"bpf(BPF_MAP_LOOKUP_ELEM): {os.strerror(err)}")
        return sum(self._values)


class HashMap:
    """A ``BPF_MAP_TYPE_HASH`` of fixed-size byte keys and values, through bpf(2) (the media
    maps: a few syscalls per second and per endpoint change, never per packet).

    :meth:`read_all` uses ``BPF_MAP_LOOKUP_BATCH`` (kernel >= 5.6) and falls back for good to
    ``BPF_MAP_GET_NEXT_KEY`` + ``BPF_MAP_LOOKUP_ELEM`` when the kernel refuses it (EINVAL,
    ENOTSUPP, EPERM...). Entries the kernel adds or deletes during a read may be missed or seen
    once; none is seen twice by a batch read.
    """

    # Entries asked for per batch call (a hash bucket larger than this: ENOSPC, then doubled).
    BATCH = 1024

    def __init__(self, map_fd: int) -> None:
        self.map_fd = map_fd
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._nr = bpf_syscall_number()
        info = _MapInfo()
        _syscall(
            BPF_OBJ_GET_INFO_BY_FD,
            _InfoAttr(bpf_fd=map_fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)),
        )
        self.key_size = int(info.key_size)
        self.value_size = int(info.value_size)
        self.max_entries = int(info.max_entries)
        self.batch = True  # False once the kernel refused a batch lookup
        self._key = ctypes.create_string_buffer(self.key_size)
        self._next = ctypes.create_string_buffer(self.key_size)
        self._value = ctypes.create_string_buffer(self.value_size)

    def _call(self, cmd: int, attr: ctypes.Structure) -> int:
        """0, or the errno of a failed call."""
        rc = self._libc.syscall(self._nr, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
        return int(ctypes.get_errno()) if rc < 0 else 0

    def _check(self, data: bytes, size: int, what: str) -> None:
        if len(data) != size:
            raise ValueError(f"{what} of {len(data)} bytes for a map of {size}-byte {what}s")

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """Write one element; 0, or the errno (E2BIG: the map is full)."""
        self._check(key, self.key_size, "key")
        self._check(value, self.value_size, "value")
        self._key.raw = key
        self._value.raw = value
        return self._call(
            BPF_MAP_UPDATE_ELEM,
            _MapElemAttr(
                map_fd=self.map_fd,
                key=ctypes.addressof(self._key),
                value=ctypes.addressof(self._value),
                flags=flags,
            ),
        )

    def delete(self, key: bytes) -> int:
        """Delete one element; 0, or the errno (ENOENT: it was not there)."""
        self._check(key, self.key_size, "key")
        self._key.raw = key
        return self._call(
            BPF_MAP_DELETE_ELEM, _MapElemAttr(map_fd=self.map_fd, key=ctypes.addressof(self._key))
        )

    def lookup(self, key: bytes) -> bytes | None:
        self._check(key, self.key_size, "key")
        self._key.raw = key
        attr = _MapElemAttr(
            map_fd=self.map_fd,
            key=ctypes.addressof(self._key),
            value=ctypes.addressof(self._value),
        )
        return None if self._call(BPF_MAP_LOOKUP_ELEM, attr) else self._value.raw

    def read_all(self) -> tuple[bytes, bytes]:
        """Every element: (the keys packed, the values packed, in the same order)."""
        if self.batch:
            got = self._read_batch()
            if got is not None:
                return got
            self.batch = False
        return self._read_iter()

    def _read_batch(self) -> tuple[bytes, bytes] | None:
        keys: list[bytes] = []
        values: list[bytes] = []
        count = self.BATCH
        kbuf = ctypes.create_string_buffer(self.key_size * count)
        vbuf = ctypes.create_string_buffer(self.value_size * count)
        # The batch cursor (a bucket index for hash maps) is opaque: room for a key or a u64.
        cur_in = ctypes.create_string_buffer(max(self.key_size, 8))
        cur_out = ctypes.create_string_buffer(max(self.key_size, 8))
        first = True
        while True:
            attr = _BatchAttr(
                in_batch=0 if first else ctypes.addressof(cur_in),
                out_batch=ctypes.addressof(cur_out),
                keys=ctypes.addressof(kbuf),
                values=ctypes.addressof(vbuf),
                count=count,
                map_fd=self.map_fd,
            )
            err = self._call(BPF_MAP_LOOKUP_BATCH, attr)
            if err == errno.ENOSPC and attr.count == 0 and count < (1 << 20):
                count *= 2  # a bucket holds more than `count` entries
                kbuf = ctypes.create_string_buffer(self.key_size * count)
                vbuf = ctypes.create_string_buffer(self.value_size * count)
                continue
            if err not in (0, errno.ENOENT):
                if first and not keys:
                    return None  # refused: the caller falls back
                raise OSError(err, f"bpf(BPF_MAP_LOOKUP_BATCH): {os.strerror(err)}")
            n = int(attr.count)
            keys.append(kbuf.raw[: n * self.key_size])
            values.append(vbuf.raw[: n * self.value_size])
            if err == errno.ENOENT:
                return b"".join(keys), b"".join(values)
            first = False
            ctypes.memmove(cur_in, cur_out, len(cur_out))

    def _read_iter(self) -> tuple[bytes, bytes]:
        keys: list[bytes] = []
        values: list[bytes] = []
        attr = _MapElemAttr(
            map_fd=self.map_fd, key=0, value=ctypes.addressof(self._next)
        )  # key 0 (NULL): the first key
        look = _MapElemAttr(
            map_fd=self.map_fd,
            key=ctypes.addressof(self._next),
            value=ctypes.addressof(self._value),
        )
        for _ in range(self.max_entries * 2 + 1):  # bounded even if the map churns
            err = self._call(BPF_MAP_GET_NEXT_KEY, attr)
            if err == errno.ENOENT:
                break
            if err:
                raise OSError(err, f"bpf(BPF_MAP_GET_NEXT_KEY): {os.strerror(err)}")
            if self._call(BPF_MAP_LOOKUP_ELEM, look) == 0:  # deleted meanwhile: skip it
                keys.append(self._next.raw)
                values.append(self._value.raw)
            self._key.raw = self._next.raw
            attr.key = ctypes.addressof(self._key)
        return b"".join(keys), b"".join(values)
