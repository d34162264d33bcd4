"""Shared test helpers: where the read-only capture corpus lives."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_PCAPS = REPO.parent / "shared" / "pcaps"
ORACLE = SHARED_PCAPS / "oracle"
