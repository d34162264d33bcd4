"""INVITE attempts and dialogs (RFC 3261 §12-§15, RFC 4028, RFC 6076): limits, names, events.

The layer runs in C (``_c/so_attempt.c``, ``_c/so_dialog.c``; theory of operation there and
in docs/rfc6076.md); :class:`~sip_otel.sip.tracker.SipTracker` drives it message by message.
"""

from __future__ import annotations

from typing import Final

from .events import (
    REINVITE,
    AttemptEnded,
    DialogEvent,
    ForkedDialogConfirmed,
    Reinvite,
    SessionEnded,
)

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DIALOGS",
    "MAX_EARLY_PER_ATTEMPT",
    "REINVITE",
    "AttemptEnded",
    "DialogEvent",
    "ForkedDialogConfirmed",
    "Reinvite",
    "SessionEnded",
    "dialog_id",
]

# Confirmed dialogs: a large SBC carries ~100k concurrent calls; beyond 200k the oldest goes.
DEFAULT_MAX_DIALOGS: Final = 200_000
# Attempts still ringing/challenged (plus carries): ~1,000 cps * up to a few minutes ringing.
DEFAULT_MAX_ATTEMPTS: Final = 100_000
# Early dialogs (To tags) tracked per attempt: real forking fans out to a handful of phones.
MAX_EARLY_PER_ATTEMPT: Final = 16


def dialog_id(call_id: str, tag_a: str, tag_b: str) -> str:
    """The dialog id users of sip-exporter know: ``{Call-ID}:{min tag}:{max tag}``."""
    lo, hi = (tag_a, tag_b) if tag_a <= tag_b else (tag_b, tag_a)
    return f"{call_id}:{lo}:{hi}"
