"""Byte sizes as settings take them: ``268435456``, ``256MiB``, ``1GiB``, ``512 KiB``.

Binary units (KiB, MiB, GiB, TiB; also K/M/G/T and KB/MB/GB/TB, read as powers of 1024 as
``ulimit`` and container runtimes do); no unit is bytes. No pydantic here: ``sip-otel replay``
parses its ``--memory-limit`` with this alone.
"""

from __future__ import annotations

import re

__all__ = ["MAX_MEMORY_LIMIT", "MIN_MEMORY_LIMIT", "parse_memory_limit", "parse_size"]

_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)

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
