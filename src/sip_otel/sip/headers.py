"""SIP header names and the few header-value grammars the monitor needs (RFC 3261 §7.3, §20, §25).

Pure functions over ``str`` (the parser decodes a header block once). Nothing here builds a dict
of all headers: the parser maps each header name through :data:`HEADER_CODES` to a small integer
and keeps only the values whose code is non-zero.

Leniency: values are parsed the way a passive monitor needs them (find the URI, the tag, the
branch), not validated against the full ABNF; whatever cannot be read is left empty and the
parser counts a reason.
"""

from __future__ import annotations

import re

__all__ = [
    "COMPACT_FORMS",
    "HEADER_CODES",
    "HEADER_CODES_LOWER",
    "canonical_name",
    "count_values",
    "first_value",
    "is_token",
    "name_addr",
    "param",
    "parse_via",
    "split_values",
    "uint",
    "uri_tag",
]

# RFC 3261 §7.3.3 and the registered compact forms (IANA "Header Fields" registry).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",  # RFC 3841
    "b": "Referred-By",  # RFC 3892
    "c": "Content-Type",
    "d": "Request-Disposition",  # RFC 3841
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",  # RFC 3841
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",  # RFC 4474
    "o": "Event",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",  # RFC 6665
    "v": "Via",
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 8224
}

# Codes of the headers whose values the parser keeps (0 = known but not needed).
# The two headers whose every value is kept come first (the parser tests ``code > H_REASON``).
H_IGNORED = 0
H_VIA = 1
H_REASON = 2
H_FROM = 3
H_TO = 4
H_CALL_ID = 5
H_CSEQ = 6
H_CONTACT = 7
H_CONTENT_LENGTH = 8
H_CONTENT_TYPE = 9
H_SESSION_EXPIRES = 10
H_MIN_SE = 11
H_EXPIRES = 12
H_RETRY_AFTER = 13
H_USER_AGENT = 14
H_SERVER = 15
N_CODES = 16

_WANTED: dict[str, int] = {
    "Via": H_VIA,
    "From": H_FROM,
    "To": H_TO,
    "Call-ID": H_CALL_ID,
    "CSeq": H_CSEQ,
    "Contact": H_CONTACT,
    "Content-Length": H_CONTENT_LENGTH,
    "Content-Type": H_CONTENT_TYPE,
    "Session-Expires": H_SESSION_EXPIRES,
    "Min-SE": H_MIN_SE,
    "Expires": H_EXPIRES,
    "Reason": H_REASON,
    "Retry-After": H_RETRY_AFTER,
    "User-Agent": H_USER_AGENT,
    "Server": H_SERVER,
}

# Frequent headers we skip: listed so that their lookup hits the exact-case table and never pays
# for ``str.lower()`` (an unknown name costs one extra lower-case lookup, nothing more).
_COMMON_IGNORED = (
    "Max-Forwards", "Allow", "Supported", "Record-Route", "Route", "Accept", "Accept-Encoding",
    "Accept-Language", "Content-Disposition", "Require", "Proxy-Require", "Unsupported",
    "Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
    "Authentication-Info", "Allow-Events", "Event", "Subscription-State", "Refer-To",
    "Referred-By", "RSeq", "RAck", "P-Asserted-Identity", "P-Preferred-Identity", "Privacy",
    "Remote-Party-ID", "Diversion", "History-Info", "Date", "Timestamp", "Organization",
    "Subject", "Priority", "Warning", "Alert-Info", "Call-Info", "Error-Info", "Min-Expires",
    "Path", "Service-Route", "Content-Encoding", "Content-Language", "MIME-Version",
    "Identity", "Identity-Info", "In-Reply-To", "Reply-To", "P-Charging-Vector",
    "P-Access-Network-Info", "P-Called-Party-ID", "P-Visited-Network-ID", "Accept-Contact",
    "Reject-Contact", "Request-Disposition", "Replaces", "Join", "SIP-ETag", "SIP-If-Match",
)


def _build_tables() -> tuple[dict[str, int], dict[str, int]]:
    lower: dict[str, int] = {}
    for name in _COMMON_IGNORED:
        lower[name.lower()] = H_IGNORED
    for name, code in _WANTED.items():
        lower[name.lower()] = code
    for letter, full in COMPACT_FORMS.items():
        lower[letter] = lower.get(full.lower(), H_IGNORED)
    exact = dict(lower)
    for name in (*_COMMON_IGNORED, *_WANTED, "Call-Id", "Cseq", "Content-length",
                 "Content-type", "User-agent", "Max-forwards", "Record-route"):
        exact[name] = lower[name.lower()]
    for letter in COMPACT_FORMS:
        exact[letter.upper()] = lower[letter]
    return exact, lower


# HEADER_CODES: exact-case names as usually written (fast path, no lower-casing);
# HEADER_CODES_LOWER: every known name lower-cased (fallback after ``.strip().lower()``).
HEADER_CODES, HEADER_CODES_LOWER = _build_tables()
_CANONICAL = {n.lower(): n for n in (*_COMMON_IGNORED, *_WANTED)}


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name: compact forms expanded, known names re-cased."""
    key = name.strip().lower()
    full = COMPACT_FORMS.get(key)
    if full is not None:
        return full
    return _CANONICAL.get(key, name.strip())


# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


def is_token(s: str) -> bool:
    return bool(s) and _TOKEN_CHARS.issuperset(s)


# Longest decimal we accept: CSeq and Content-Length are < 2**32 (RFC 3261 §8.1.1.5, §20.14),
# and bounding the digit count keeps int() linear-time and clear of its 4300-digit limit.
_MAX_DIGITS = 10


def uint(s: str) -> int | None:
    """Non-negative decimal (ASCII digits only, at most 10 of them), else None."""
    if s.isdigit() and s.isascii() and len(s) <= _MAX_DIGITS:
        return int(s)
    return None


def _skip_quoted(s: str, i: int) -> int:
    """Index just past the quoted-string starting at s[i] == '"' (len(s) if unterminated)."""
    i += 1
    while True:
        q = s.find('"', i)
        if q < 0:
            return len(s)
        bs = s.find("\\", i, q)
        if bs < 0:
            return q + 1
        i = bs + 2  # quoted-pair: skip the escaped character


# A quoted string (escapes honoured, may be unterminated) or a <...> span: commas inside do not
# separate values. The alternatives start with different characters and the quoted-string
# loop is unrolled (Friedl), so matching is linear and mostly runs in tight C loops.
_SPAN = r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|<[^>]*(?:>|\Z)'
_VALUE_TOKENS = re.compile(_SPAN + "|,", re.S)
_SPANS = re.compile(_SPAN, re.S)
_FIRST_VALUE = re.compile(f'(?:{_SPAN}|[^,"<])*', re.S)


def split_values(value: str) -> list[str]:
    """Comma-separated header values; commas inside quoted strings and <...> do not split."""
    if '"' not in value and "<" not in value:
        return value.split(",")
    out: list[str] = []
    start = 0
    for m in _VALUE_TOKENS.finditer(value):
        if m.group() == ",":
            out.append(value[start : m.start()])
            start = m.end()
    out.append(value[start:])
    return out


def count_values(value: str) -> int:
    """``len(split_values(value))`` without building the list (the scan stays in C)."""
    if '"' in value or "<" in value:
        value = _SPANS.sub("", value)
    return value.count(",") + 1


def first_value(value: str) -> str:
    """The first of the comma-separated values (same quoting rules as :func:`split_values`)."""
    if "," not in value:
        return value
    if '"' not in value and "<" not in value:
        return value[: value.find(",")]
    m = _FIRST_VALUE.match(value)
    return m.group() if m else value


def param(params: str, name: str) -> str | None:
    """Value of ``;name=value`` in a parameter string (``name`` lower-case); "" if no value.

    ``params`` starts at (or before) the first ';' and ends with the header value. Names are
    case-insensitive and SWS may surround ';' and '=' (§25.1). Quoted values keep their quotes.
    """
    key = ";" + name + "="
    i = params.find(key)
    if i < 0:
        if name not in params.lower():
            return None
        return _param_slow(params, name)
    i += len(key)
    j = params.find(";", i)
    return (params[i:] if j < 0 else params[i:j]).strip()


def _param_slow(params: str, name: str) -> str | None:
    for item in params.split(";")[1:]:
        key, eq, val = item.partition("=")
        if key.strip().lower() == name:
            return val.strip() if eq else ""
    return None


def name_addr(value: str) -> tuple[str, str]:
    """Split a From/To/Contact value into (URI, header parameters starting at ';').

    name-addr: ``["display name"] <URI> *(;param)``; addr-spec without ``<>``: the URI ends at
    the first ';' (RFC 3261 §20.10: such parameters are header parameters).
    """
    lt = value.find("<")
    if lt >= 0:
        q = value.find('"', 0, lt)
        if q >= 0:  # a '<' may sit inside the quoted display name (if it is terminated)
            after = value.find("<", _skip_quoted(value, q))
            if after >= 0:
                lt = after
        gt = value.find(">", lt)
        if gt < 0:
            return value[lt + 1 :].strip(), ""
        return value[lt + 1 : gt].strip(), value[gt + 1 :]
    semi = value.find(";")
    if semi < 0:
        return value.strip(), ""
    return value[:semi].strip(), value[semi:]


def uri_tag(value: str) -> tuple[str, str]:
    """(URI, tag parameter or "") of a From/To value: :func:`name_addr` then :func:`param`."""
    lt = value.find("<")
    if lt >= 0 and value.find('"', 0, lt) < 0:  # fast path: [display-name] <URI> *(;param)
        gt = value.find(">", lt)
        if gt >= 0:  # (name_addr inlined, offsets into value instead of a params string)
            uri = value[lt + 1 : gt].strip()
            i = value.find(";tag=", gt)
            if i < 0:
                if value.find(";", gt) < 0:  # no parameter at all
                    return uri, ""
                return uri, param(value[gt + 1 :], "tag") or ""
            j = value.find(";", i + 5)
            return uri, (value[i + 5 :] if j < 0 else value[i + 5 : j]).strip()
    uri, params = name_addr(value)
    if ";" not in params:  # param() finds nothing without a ';'
        return uri, ""
    i = params.find(";tag=")
    if i < 0:
        return uri, param(params, "tag") or ""
    j = params.find(";", i + 5)
    return uri, (params[i + 5 :] if j < 0 else params[i + 5 : j]).strip()


# sent-protocol as usually written -> transport (RFC 3261 §20.42, RFC 7118 for WS/WSS)
_VIA_PROTOCOLS = {"SIP/2.0/" + t: t for t in ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS")}


def parse_via(value: str) -> tuple[str, str, str] | None:
    """(transport upper-case, sent-by lower-case, branch) of one via-parm, or None if unreadable.

    ``SIP / 2.0 / UDP host[:port] *(;param)``; LWS is allowed around the slashes (§25.1).
    """
    semi = value.find(";")
    head = value if semi < 0 else value[:semi]
    rest = head.split()
    if len(rest) == 2:  # fast path: "SIP/2.0/UDP host:port;...;branch=..." as usually written
        transport = _VIA_PROTOCOLS.get(rest[0])
        if transport is not None:
            if semi < 0:
                return transport, rest[1].lower(), ""
            i = value.find(";branch=", semi)
            if i >= 0:
                j = value.find(";", i + 8)
                branch = value[i + 8 :] if j < 0 else value[i + 8 : j]
                return transport, rest[1].lower(), branch.strip()
    if len(rest) != 2 or not rest[0].startswith("SIP/2.0/"):  # odd case or LWS: normalise
        s1 = head.find("/")
        s2 = head.find("/", s1 + 1) if s1 >= 0 else -1
        if s2 < 0:
            return None
        rest = head[s2 + 1 :].split()
        if len(rest) < 2:
            return None
        rest = ["SIP/2.0/" + rest[0], "".join(rest[1:])]  # "host : port" -> "host:port"
    if semi < 0:
        branch = ""
    else:
        i = value.find(";branch=", semi)
        if i < 0:
            branch = param(value[semi:], "branch") or ""
        else:
            j = value.find(";", i + 8)
            branch = (value[i + 8 :] if j < 0 else value[i + 8 : j]).strip()
    return rest[0][8:].upper(), rest[1].lower(), branch
