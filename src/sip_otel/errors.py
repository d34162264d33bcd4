"""One error taxonomy: reason slugs counted per layer.

Every drop or failure anywhere in the sans-IO core is a slug ``<layer>.<reason>`` (for example
``net.truncated_ipv4``, ``sip.bad_start_line``). Components count slugs in a shared
:class:`Reasons`; inside a layer a :class:`DecodeError` may be raised and is converted to a count
at exactly one boundary (the pipeline). Any other exception escaping a layer is a bug and is
counted as ``internal.<ExceptionType>`` by the pipeline boundary.
"""

from __future__ import annotations

__all__ = ["DecodeError", "Reasons"]


class DecodeError(Exception):
    """A protocol error with a reason slug (``layer.reason``)."""

    def __init__(self, slug: str, detail: str = "") -> None:
        super().__init__(f"{slug}: {detail}" if detail else slug)
        self.slug = slug
        self.detail = detail


class Reasons:
    """Counts of reason slugs. Plain dict underneath: cheap on the hot path."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, slug: str, n: int = 1) -> None:
        counts = self.counts
        counts[slug] = counts.get(slug, 0) + n

    def get(self, slug: str) -> int:
        return self.counts.get(slug, 0)

    def total(self, prefix: str = "") -> int:
        return sum(v for k, v in self.counts.items() if k.startswith(prefix))

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
