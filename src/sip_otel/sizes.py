"""Byte sizes as settings take them: ``268435456``, ``256MiB``, ``1GiB``, ``512 KiB``.

Binary units (KiB, MiB, GiB, TiB; also K/M/G/T and KB/MB/GB/TB, read as powers of 1024 as
``ulimit`` and container runtimes do); no unit is bytes. No pydantic here: ``sip-otel replay``
parses its ``--memory-limit`` with this alone.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "MAX_MEMORY_LIMIT",
    "MIN_MEMORY_LIMIT",
    "parse_memory_limit",
    "parse_size",
    "pin_mmap_threshold",
]

_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)

DEFAULT_MEMORY_LIMIT = 256 << 20  # --memory-limit's default (docs/reliability.md)
MIN_MEMORY_LIMIT = 1 << 20  # 1 MiB: below that no SIP table is usable
MAX_MEMORY_LIMIT = 1 << 40  # 1 TiB


def parse_size(text: str | int) -> int:
    """Bytes of ``text``; ValueError with a one-line message when it is not a size."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size")
    if isinstance(text, int):
        return text
    m = _SIZE.fullmatch(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a size (bytes, or a number with KiB, MiB, GiB)")
    number, unit = m.group(1), m.group(2).lower()
    if "." in number:
        return int(float(number) * (1 << _UNITS[unit]))
    return int(number) << _UNITS[unit]


def parse_memory_limit(text: str | int) -> int:
    """A ``--memory-limit``: a size between 1 MiB and 1 TiB."""
    n = parse_size(text)
    if not MIN_MEMORY_LIMIT <= n <= MAX_MEMORY_LIMIT:
        raise ValueError(f"{text!r} is outside 1MiB-1TiB")
    return n


# glibc serves a request this large or larger with its own mmap, given back on free. Its
# default threshold (128 KiB) rises to the size of every such block freed (up to 32 MiB), after
# which the tables' arrays -- which grow by doubling and free the old copy -- come from the brk
# heap, where a freed block stays resident: ~8 MiB more peak RSS at 1,000 calls/s. Replay reads
# its file in 1 MiB regions: each one freed would raise the threshold to 1 MiB.
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)


def pin_mmap_threshold() -> None:
    """Pin glibc's mmap threshold (no dynamic raise); nothing on other C libraries."""
    import ctypes  # here: the settings code imports this module too

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
