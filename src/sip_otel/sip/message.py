"""The parsed SIP message: what later layers (transactions, dialogs, RFC 6076, spans) need.

One object per message, filled by :mod:`sip_otel.sip.parser`. Parsed data is trusted and not
re-validated downstream (the h11 rule). Header values that are absent are ``None`` (numbers) or
``""`` (strings). Methods are kept as on the wire (RFC 3261 §7.1: method tokens are
case-sensitive, so ``invite`` is an unknown method, not INVITE).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..net.types import SipPayload

__all__ = ["SipMessage"]


@dataclass(slots=True, eq=False)
class SipMessage:
    is_request: bool
    # Request: the request-line method. Response: the CSeq method (what the response answers).
    method: str
    status: int  # 0 for requests
    reason_phrase: str  # responses only
    request_uri: str  # requests only
    ts_ns: int  # packet time of the frame that completed this message
    call_id: str = ""
    from_uri: str = ""
    from_tag: str = ""
    to_uri: str = ""
    to_tag: str = ""
    cseq: int = -1  # -1 when missing or malformed
    cseq_method: str = ""
    via_branch: str = ""  # top Via branch parameter
    via_sent_by: str = ""  # top Via sent-by (host[:port]), lower-cased
    via_transport: str = ""  # top Via transport (UDP, TCP, TLS, SCTP, WS, WSS), upper-case
    via_count: int = 0  # number of Via header field values
    content_length: int | None = None
    content_type: str = ""
    session_expires: int | None = None  # RFC 4028, seconds
    se_refresher: str = ""  # "uac" / "uas" / ""
    min_se: int | None = None
    expires: int | None = None  # Expires header, seconds
    contact_expires: int | None = None  # ;expires= on the first Contact
    contact_star: bool = False  # "Contact: *" (REGISTER remove-all)
    reason: str = ""  # Reason header (RFC 3326), raw value
    retry_after: int | None = None  # seconds
    user_agent: str = ""  # User-Agent (requests) or Server (responses)
    body_length: int = 0  # bytes of body actually present
    origin: SipPayload | None = None  # transport context (addresses, ports, transport)
    # Reason slugs ("sip.missing_call_id", ...) of problems that still left a usable message;
    # parse_payload counts them. Empty (shared tuple) for a clean message.
    defects: tuple[str, ...] = ()
    session_id: str = ""  # Session-ID (RFC 7989) value as sent
    correlation: str = ""  # the configured correlation header's first value

    @property
    def status_class(self) -> int:
        return self.status // 100
