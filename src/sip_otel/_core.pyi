"""Typed face of the compiled core ``sip_otel._core`` (Cython binding of the C in ``_c/``)."""

REASON_SLUGS: tuple[str, ...]
EVICTION_SLUGS: tuple[str, ...]

# --- net (frames, capture files, TCP/WebSocket/SIP stream framing) ---------------------------

# --- sip (parser, header grammar) ------------------------------------------------------------

from sip_otel.errors import Reasons  # noqa: E402
from sip_otel.net.types import SipPayload  # noqa: E402
from sip_otel.sip.message import SipMessage  # noqa: E402

SIP_MAX_HEADER_BYTES: int
SIP_MAX_HEADER_LINES: int
SIP_MAX_LINE_BYTES: int
SIP_H_IGNORED: int
SIP_H_VIA: int
SIP_H_REASON: int
SIP_H_FROM: int
SIP_H_TO: int
SIP_H_CALL_ID: int
SIP_H_CSEQ: int
SIP_H_CONTACT: int
SIP_H_CONTENT_LENGTH: int
SIP_H_CONTENT_TYPE: int
SIP_H_SESSION_EXPIRES: int
SIP_H_MIN_SE: int
SIP_H_EXPIRES: int
SIP_H_RETRY_AFTER: int
SIP_H_USER_AGENT: int
SIP_H_SERVER: int
SIP_N_CODES: int

def sip_parse_payload(payload: SipPayload, reasons: Reasons) -> list[SipMessage]: ...
def sip_parse_message(
    data: bytes, start: int, ts_ns: int, origin: SipPayload | None
) -> tuple[SipMessage, int]: ...
def sip_is_token(s: str) -> bool: ...
def sip_uint(s: str) -> int | None: ...
def sip_split_values(value: str) -> list[str]: ...
def sip_count_values(value: str) -> int: ...
def sip_first_value(value: str) -> str: ...
def sip_param(params: str, name: str) -> str | None: ...
def sip_name_addr(value: str) -> tuple[str, str]: ...
def sip_uri_tag(value: str) -> tuple[str, str]: ...
def sip_parse_via(value: str) -> tuple[str, str, str] | None: ...
def sip_header_table() -> tuple[tuple[str, str | None, int], ...]: ...
def sip_compact_forms() -> dict[str, str]: ...
def sip_header_lookup(name: str) -> tuple[str, int, bool] | None: ...
def sip_header_code(name: str) -> int: ...

# --- track (transactions, dialogs, registrations, RFC 6076) -----------------------------------

# --- pipeline ---------------------------------------------------------------------------------
