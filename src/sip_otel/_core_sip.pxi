# The sip part of the binding: the message parser (_c/so_parser.c) and the header grammar
# (_c/so_grammar.c) behind the facades sip/parser.py and sip/headers.py.
#
# Messages cross into Python as sip.message.SipMessage (one conversion: _sip_message). The C
# parser maps the case of a few values in ASCII (what the compiled tracker compares); the
# facade applies Python's str.lower()/str.upper() on top for the non-ASCII rest, so that a
# SipMessage equals what the pure-Python parser made. Grammar helpers take and return str:
# UTF-8 in, slices back (surrogatepass both ways, so any str round-trips).

from libc.stdbool cimport bool as c_bool


cdef extern from "so_sip.h":
    enum:
        SO_SIP_MAX_HEADER_BYTES
        SO_SIP_MAX_HEADER_LINES
        SO_SIP_MAX_LINE_BYTES
        SO_R_INTERNAL_NO_MEMORY
        SO_H_IGNORED
        SO_H_VIA
        SO_H_REASON
        SO_H_FROM
        SO_H_TO
        SO_H_CALL_ID
        SO_H_CSEQ
        SO_H_CONTACT
        SO_H_CONTENT_LENGTH
        SO_H_CONTENT_TYPE
        SO_H_SESSION_EXPIRES
        SO_H_MIN_SE
        SO_H_EXPIRES
        SO_H_RETRY_AFTER
        SO_H_USER_AGENT
        SO_H_SERVER
        SO_H_SESSION_ID
        SO_H_CORRELATION
        SO_N_HCODES

    ctypedef struct so_scratch:
        uint8_t *p
        size_t n
        size_t cap

    ctypedef struct so_header_name:
        const char *name
        const char *alt
        uint8_t len
        uint8_t code
    const so_header_name so_header_names[]
    const size_t so_n_header_names
    const char *const so_compact_forms[26]
    int so_header_lookup(const uint8_t *p, size_t n, c_bool *exact)
    unsigned so_header_code(const uint8_t *p, size_t n)

    c_bool so_is_token(const uint8_t *p, size_t n)
    c_bool so_uint(so_slice s, int64_t *out)
    size_t so_value_end(so_slice v, size_t i)
    uint32_t so_count_values(so_slice v)
    so_slice so_first_value(so_slice v)
    c_bool so_param(so_slice params, const char *name, size_t name_len, so_slice *out)
    void so_name_addr(so_slice v, so_slice *uri, so_slice *params)
    void so_uri_tag(so_slice v, so_slice *uri, so_slice *tag)
    ctypedef struct so_via:
        so_slice transport, sent_by, branch
    int so_parse_via(so_slice v, so_via *via, so_scratch *sc)

    ctypedef struct so_parser:
        pass
    so_parser *so_parser_new()
    void so_parser_free(so_parser *parser)
    bint so_parser_set_correlation(so_parser *parser, const uint8_t *name, size_t n)
    ctypedef void (*so_msg_fn)(void *ctx, so_msg *msg) noexcept
    void so_parse_payload(so_parser *parser, const so_payload *payload, uint64_t *reasons,
                          so_msg_fn on_msg, void *ctx)
    int so_parse_message(so_parser *parser, const uint8_t *data, size_t len, size_t start,
                         int64_t ts_ns, const so_payload *origin, so_msg *msg, size_t *end)


SIP_MAX_HEADER_BYTES = SO_SIP_MAX_HEADER_BYTES
SIP_MAX_HEADER_LINES = SO_SIP_MAX_HEADER_LINES
SIP_MAX_LINE_BYTES = SO_SIP_MAX_LINE_BYTES
SIP_H_IGNORED = SO_H_IGNORED
SIP_H_VIA = SO_H_VIA
SIP_H_REASON = SO_H_REASON
SIP_H_FROM = SO_H_FROM
SIP_H_TO = SO_H_TO
SIP_H_CALL_ID = SO_H_CALL_ID
SIP_H_CSEQ = SO_H_CSEQ
SIP_H_CONTACT = SO_H_CONTACT
SIP_H_CONTENT_LENGTH = SO_H_CONTENT_LENGTH
SIP_H_CONTENT_TYPE = SO_H_CONTENT_TYPE
SIP_H_SESSION_EXPIRES = SO_H_SESSION_EXPIRES
SIP_H_MIN_SE = SO_H_MIN_SE
SIP_H_EXPIRES = SO_H_EXPIRES
SIP_H_RETRY_AFTER = SO_H_RETRY_AFTER
SIP_H_USER_AGENT = SO_H_USER_AGENT
SIP_H_SERVER = SO_H_SERVER
SIP_H_SESSION_ID = SO_H_SESSION_ID
SIP_H_CORRELATION = SO_H_CORRELATION
SIP_N_CODES = SO_N_HCODES

# The facades' parser: its scratch area is reused by every call (the GIL serialises them; a
# message is turned into a SipMessage before the next one is parsed).
cdef so_parser *_sip_parser = so_parser_new()
if _sip_parser is NULL:
    raise MemoryError()

cdef tuple _METHOD_STRS = tuple(
    [so_method_names[i].decode() if so_method_names[i] is not NULL else None
     for i in range(SO_N_METHODS)])

# Imported on first use: these modules are pure Python, but importing them from here while
# sip_otel._core is being initialised could close an import cycle.
cdef object _SipMessage = None
cdef object _DecodeError = None


cdef _sip_types():
    global _SipMessage, _DecodeError
    from sip_otel.errors import DecodeError
    from sip_otel.sip.message import SipMessage
    _SipMessage = SipMessage
    _DecodeError = DecodeError


cdef inline bint _ascii(so_slice s) noexcept:
    cdef uint32_t i
    for i in range(s.n):
        if s.p[i] >= 0x80:
            return False
    return True


cdef inline str _lower_str(so_slice s):
    """ASCII-lowered by C; Python's lower() for what remains (non-ASCII)."""
    return slice_str(s) if _ascii(s) else slice_str(s).lower()


cdef inline str _upper_str(so_slice s):
    return slice_str(s) if _ascii(s) else slice_str(s).upper()


cdef inline str _method_str(uint8_t code, so_slice tok):
    if code == SO_M_OTHER:
        return slice_str(tok)
    return <str>_METHOD_STRS[code]


cdef object _sip_message(const so_msg *m, object origin):
    """An so_msg as the facade's SipMessage (fields in the dataclass's order)."""
    if _SipMessage is None:
        _sip_types()
    cdef tuple defects = ()
    cdef int i
    if m.n_defects:
        defects = tuple([REASON_SLUGS[m.defects[i]] for i in range(m.n_defects)])
    return _SipMessage(
        m.is_request,
        _method_str(m.method, m.method_tok),
        m.status,
        slice_str(m.reason_phrase),
        slice_str(m.request_uri),
        m.ts_ns,
        slice_str(m.call_id),
        slice_str(m.from_uri),
        slice_str(m.from_tag),
        slice_str(m.to_uri),
        slice_str(m.to_tag),
        m.cseq,
        _method_str(m.cseq_method, m.cseq_method_tok),
        slice_str(m.via_branch),
        _lower_str(m.via_sent_by),
        _upper_str(m.via_transport),
        m.via_count,
        opt_int(m.content_length),
        _lower_str(m.content_type),
        opt_int(m.session_expires),
        _lower_str(m.se_refresher),
        opt_int(m.min_se),
        opt_int(m.expires),
        opt_int(m.contact_expires),
        m.contact_star,
        slice_str(m.reason),
        opt_int(m.retry_after),
        slice_str(m.user_agent),
        m.body_length,
        origin,
        defects,
        slice_str(m.session_id),
        slice_str(m.correlation),
    )


cdef class _Collected:
    cdef list out
    cdef object origin
    cdef object error
    cdef uint64_t n_defects


cdef void _collect_msg(void *ctx, so_msg *m) noexcept:
    cdef _Collected c = <_Collected>ctx
    if c.error is not None:
        return
    try:
        c.out.append(_sip_message(m, c.origin))
        c.n_defects += m.n_defects
    except BaseException as exc:
        c.error = exc


cdef bytes _as_bytes(object data):
    return data if type(data) is bytes else bytes(data)


cdef void set_correlation(so_parser *parser, object name) except *:
    """Configure the correlation header of ``parser`` (None or "": off); ValueError if refused."""
    cdef bytes b = (name or "").encode("ascii", "replace")
    if not so_parser_set_correlation(parser, <const uint8_t *><const char *>b, len(b)):
        raise ValueError(
            f"correlation header {name!r}: expected a header name (a token of at most 64 "
            "characters) that SIP itself does not define"
        )


def sip_set_correlation_header(object name):
    """The correlation header sip_parse_payload/sip_parse_message keep (None: off)."""
    set_correlation(_sip_parser, name)


def sip_parse_payload(object payload, object reasons):
    """All messages in one transport payload (SipPayload); problems are counted in ``reasons``
    (errors.Reasons), never raised."""
    cdef bytes data = _as_bytes(payload.data)
    cdef Py_ssize_t n = len(data)
    if n > 0xFFFFFFFF:
        raise OverflowError("payload larger than 4 GiB")
    cdef so_payload p
    memset(&p, 0, sizeof(p))
    p.ts_ns = payload.ts_ns
    p.data = <const uint8_t *><const char *>data
    p.len = <uint32_t>n
    cdef uint64_t counts[SO_N_REASONS]
    memset(counts, 0, sizeof(counts))
    cdef _Collected c = _Collected.__new__(_Collected)
    c.out = []
    c.origin = payload
    so_parse_payload(_sip_parser, &p, counts, _collect_msg, <void *>c)
    if c.error is not None:
        raise c.error
    # Count as the Python parser did: each message's defects in order, then the last slug.
    cdef int i
    if c.n_defects:
        for msg in c.out:
            for slug in msg.defects:
                reasons.add(slug)
                counts[REASON_SLUGS.index(slug)] -= 1
    for i in range(SO_N_REASONS):
        if counts[i]:
            reasons.add(REASON_SLUGS[i], counts[i])
    return c.out


def sip_parse_message(object data, Py_ssize_t start, int64_t ts_ns, object origin):
    """(SipMessage, offset just past its body) of the message at ``data[start:]``; raises
    errors.DecodeError(slug) if no usable message starts there."""
    if _SipMessage is None:
        _sip_types()
    if start < 0:
        raise ValueError("start must be >= 0")
    cdef bytes b = _as_bytes(data)
    cdef so_msg m
    cdef size_t end = 0
    cdef int rc = so_parse_message(_sip_parser, <const uint8_t *><const char *>b, len(b),
                                   <size_t>start, ts_ns, NULL, &m, &end)
    if rc == SO_R_INTERNAL_NO_MEMORY:
        raise MemoryError("sip parser scratch area")
    if rc:
        raise _DecodeError(REASON_SLUGS[rc])
    return _sip_message(&m, origin), end


# --- grammar helpers (sip/headers.py) -------------------------------------------------------

cdef inline bytes _enc(str s):
    return s.encode("utf-8", "surrogatepass")


cdef inline so_slice _sl(bytes b):
    cdef so_slice s
    s.p = <const uint8_t *><const char *>b
    s.n = <uint32_t>len(b)
    return s


cdef inline str _dec(so_slice s):
    if s.n == 0:
        return ""
    return (<const char *>s.p)[:s.n].decode("utf-8", "surrogatepass")


cdef inline so_slice _off(so_slice s, size_t a, size_t b) noexcept:
    cdef so_slice r
    r.p = s.p + a
    r.n = <uint32_t>(b - a)
    return r


cdef bytes _enc_checked(str s):
    cdef bytes b = _enc(s)
    if len(b) > 0xFFFFFFFF:
        raise OverflowError("value larger than 4 GiB")
    return b


def sip_is_token(str s):
    """RFC 3261 §25.1 token: 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")."""
    cdef bytes b = _enc_checked(s)
    return so_is_token(<const uint8_t *><const char *>b, len(b))


def sip_uint(str s):
    """Non-negative decimal (ASCII digits only, at most 10 of them), else None."""
    cdef bytes b = _enc_checked(s)
    cdef int64_t v
    if so_uint(_sl(b), &v):
        return v
    return None


def sip_split_values(str value):
    """Comma-separated header values; commas inside quoted strings and <...> do not split."""
    cdef bytes b = _enc_checked(value)
    cdef so_slice s = _sl(b)
    cdef list out = []
    cdef size_t i = 0, e
    while True:
        e = so_value_end(s, i)
        out.append(_dec(_off(s, i, e)))
        if e >= s.n:
            return out
        i = e + 1


def sip_count_values(str value):
    """``len(split_values(value))`` without building the list."""
    cdef bytes b = _enc_checked(value)
    return so_count_values(_sl(b))


def sip_first_value(str value):
    """The first of the comma-separated values (same quoting rules as split_values)."""
    cdef bytes b = _enc_checked(value)
    return _dec(so_first_value(_sl(b)))


def sip_param(str params, str name):
    """Value of ``;name=value`` in a parameter string (``name`` lower-case); "" if no value,
    None if absent. Names are case-insensitive and SWS may surround ';' and '=' (§25.1)."""
    cdef bytes b = _enc_checked(params)
    cdef bytes k = _enc_checked(name)
    cdef so_slice out
    if so_param(_sl(b), <const char *>k, len(k), &out):
        return _dec(out)
    return None


def sip_name_addr(str value):
    """(URI, header parameters starting at ';') of a From/To/Contact value (RFC 3261 §20.10)."""
    cdef bytes b = _enc_checked(value)
    cdef so_slice uri, params
    so_name_addr(_sl(b), &uri, &params)
    return _dec(uri), _dec(params)


def sip_uri_tag(str value):
    """(URI, tag parameter or "") of a From/To value."""
    cdef bytes b = _enc_checked(value)
    cdef so_slice uri, tag
    so_uri_tag(_sl(b), &uri, &tag)
    return _dec(uri), _dec(tag)


def sip_parse_via(str value):
    """(transport upper-case, sent-by lower-case, branch) of one via-parm, or None."""
    cdef bytes b = _enc_checked(value)
    cdef so_scratch sc
    cdef so_via via
    sc.n = 0
    sc.cap = len(b) + 1
    sc.p = <uint8_t *>malloc(sc.cap)
    if sc.p is NULL:
        raise MemoryError()
    try:
        r = so_parse_via(_sl(b), &via, &sc)
        if r < 0:
            raise MemoryError("via scratch")
        if r == 0:
            return None
        return _dec(via.transport).upper(), _dec(via.sent_by).lower(), _dec(via.branch)
    finally:
        free(sc.p)


def sip_header_table():
    """Known header names as (canonical, other exact-case spelling or None, code), by length."""
    cdef size_t i
    return tuple([
        (so_header_names[i].name.decode(),
         so_header_names[i].alt.decode() if so_header_names[i].alt is not NULL else None,
         so_header_names[i].code)
        for i in range(so_n_header_names)])


def sip_compact_forms():
    """Compact form letter -> canonical name (RFC 3261 §7.3.3, IANA registry)."""
    cdef int i
    return {chr(ord("a") + i): so_compact_forms[i].decode()
            for i in range(26) if so_compact_forms[i] is not NULL}


def sip_header_lookup(str name):
    """(canonical name, code, spelt as in the exact-case table) of a header name as the parser
    matches it (ASCII case-insensitive, compact forms included), or None if unknown."""
    cdef bytes b = _enc_checked(name)
    cdef c_bool exact = False
    cdef int idx = so_header_lookup(<const uint8_t *><const char *>b, len(b), &exact)
    if idx < 0:
        return None
    return so_header_names[idx].name.decode(), so_header_names[idx].code, bool(exact)


def sip_header_code(str name):
    """The code the parser gives a header name followed by a colon (SIP_H_IGNORED: a header it
    does not keep, or an unknown name)."""
    cdef bytes b = _enc_checked(name)
    return so_header_code(<const uint8_t *><const char *>b, len(b))
