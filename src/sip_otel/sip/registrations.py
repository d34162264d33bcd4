"""REGISTER attempts and active registrations (RFC 3261 §10, RFC 6076 §4.1-§4.2): limits and
events. The layer runs in C (``_c/so_reg.c``; theory of operation there and in
docs/rfc6076.md); :class:`~sip_otel.sip.tracker.SipTracker` drives it message by message.
"""

from __future__ import annotations

from typing import Final

from .events import RegistrationEnded

__all__ = [
    "DEFAULT_MAX_REGISTER_ATTEMPTS",
    "DEFAULT_MAX_REGISTRATIONS",
    "DEFAULT_REGISTER_EXPIRES_S",
    "RegistrationEnded",
]

# Active AORs: a large registrar serves a few hundred thousand; beyond 500k the oldest goes.
DEFAULT_MAX_REGISTRATIONS: Final = 500_000
# REGISTERs waiting for a final or a credentialed retry (a 64*T1 window each).
DEFAULT_MAX_REGISTER_ATTEMPTS: Final = 100_000
DEFAULT_REGISTER_EXPIRES_S: Final = 3600  # RFC 3261 §10.2.1.1
