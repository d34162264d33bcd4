"""The ``bpf(2)`` commands needed without bcc: read an element of a per-CPU array (the agent),
create a ring buffer map (the loader child, for the per-CPU rings beyond bcc's template).

The eBPF filter's counters live in a ``BPF_MAP_TYPE_PERCPU_ARRAY``; a lookup returns one value
slot per *possible* CPU (each slot rounded up to 8 bytes), which we sum. It runs a few times per
tick (a syscall of about a microsecond each), far from any per-packet path.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["PerCpuCounters", "bpf_syscall_number", "create_ringbuf"]

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
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
