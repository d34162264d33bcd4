"""SIP header names and the few header-value grammars the monitor needs (RFC 3261 §7.3, §20, §25).

The grammar is compiled C (``_c/so_grammar.c``), the one the parser uses; this module is its
Python face for tests and tools: functions over ``str`` (UTF-8 in, slices back), and the
header-name tables built from the C table. Nothing here builds a dict of all headers: the
parser maps each header name to a small code and keeps only the values whose code is non-zero.

Leniency: values are parsed the way a passive monitor needs them (find the URI, the tag, the
branch), not validated against the full ABNF; whatever cannot be read is left empty and the
parser counts a reason.
"""

from __future__ import annotations

from .. import _core

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
COMPACT_FORMS: dict[str, str] = _core.sip_compact_forms()

# Codes of the headers whose values the parser keeps (0 = known but not needed).
# The two headers whose every value is kept come first (the parser tests ``code > H_REASON``).
H_IGNORED = _core.SIP_H_IGNORED
H_VIA = _core.SIP_H_VIA
H_REASON = _core.SIP_H_REASON
H_FROM = _core.SIP_H_FROM
H_TO = _core.SIP_H_TO
H_CALL_ID = _core.SIP_H_CALL_ID
H_CSEQ = _core.SIP_H_CSEQ
H_CONTACT = _core.SIP_H_CONTACT
H_CONTENT_LENGTH = _core.SIP_H_CONTENT_LENGTH
H_CONTENT_TYPE = _core.SIP_H_CONTENT_TYPE
H_SESSION_EXPIRES = _core.SIP_H_SESSION_EXPIRES
H_MIN_SE = _core.SIP_H_MIN_SE
H_EXPIRES = _core.SIP_H_EXPIRES
H_RETRY_AFTER = _core.SIP_H_RETRY_AFTER
H_USER_AGENT = _core.SIP_H_USER_AGENT
H_SERVER = _core.SIP_H_SERVER
H_SESSION_ID = _core.SIP_H_SESSION_ID  # RFC 7989
H_CORRELATION = _core.SIP_H_CORRELATION  # the configured correlation header (no fixed name)
N_CODES = _core.SIP_N_CODES


def _build_tables() -> tuple[dict[str, int], dict[str, int]]:
    """The C table as dicts. HEADER_CODES: the spellings the parser takes as written (a name so
    spelt is a header even without a colon): canonical, lower-case, the one other spelling of
    the C table, compact letters in either case. HEADER_CODES_LOWER: every known name
    lower-cased (the parser's case-insensitive match)."""
    lower: dict[str, int] = {}
    exact: dict[str, int] = {}
    for name, alt, code in _core.sip_header_table():
        lower[name.lower()] = exact[name.lower()] = exact[name] = code
        if alt is not None:
            exact[alt] = code
    for letter, full in COMPACT_FORMS.items():
        lower[letter] = exact[letter] = exact[letter.upper()] = lower[full.lower()]
    return exact, lower


HEADER_CODES, HEADER_CODES_LOWER = _build_tables()


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name: compact forms expanded, known names re-cased."""
    found = _core.sip_header_lookup(name.strip().lower())
    return name.strip() if found is None else found[0]


is_token = _core.sip_is_token
uint = _core.sip_uint
split_values = _core.sip_split_values
count_values = _core.sip_count_values
first_value = _core.sip_first_value
param = _core.sip_param
name_addr = _core.sip_name_addr
uri_tag = _core.sip_uri_tag
parse_via = _core.sip_parse_via
