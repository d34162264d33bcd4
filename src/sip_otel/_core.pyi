"""Typed face of the compiled core ``sip_otel._core`` (Cython binding of the C in ``_c/``)."""

REASON_SLUGS: tuple[str, ...]
EVICTION_SLUGS: tuple[str, ...]

# --- net (frames, capture files, TCP/WebSocket/SIP stream framing) ---------------------------

# --- sip (parser, header grammar) ------------------------------------------------------------

# --- track (transactions, dialogs, registrations, RFC 6076) -----------------------------------

# --- pipeline ---------------------------------------------------------------------------------
