/* SPDX-License-Identifier: Apache-2.0
 * The SIP message parser (so_sip.h): transport payload bytes -> so_msg views.
 *
 * Two entry points. so_parse_payload never fails: it turns one UDP datagram (0..n messages back
 * to back) or one TCP-framed message into messages handed to a callback, and counts every
 * problem as a reason. so_parse_message parses one message at an offset and returns the fatal
 * reason when no usable message starts there. Problems that still leave a message on the wire
 * (a missing Call-ID, an unreadable CSeq, ...) are its ``defects``, in the order found
 * (duplicates kept), counted by so_parse_payload: tshark counts such messages too.
 *
 * Decisions (RFC 3261 sections in brackets), those of the pure-Python parser this replaced:
 *  - Line ends: CRLF or bare LF, mixed freely; a lone CR also ends the start line (as in
 *    Wireshark). The header block ends at the first empty line: the first "\n\r\n", or the
 *    first "\n\n" when there is no "\n\r\n"; a bare-LF empty line earlier than the "\n\r\n" is
 *    found by the line scan (an empty header line) and the block is parsed again up to it.
 *    Folded lines (starting with SP/HT) are joined with one SP [§7.3.1]: the block is rebuilt
 *    in the scratch area, each run ``[ \t]*\r?\n[ \t]+`` replaced by one SP (start line
 *    included), and scanned again; a continuation of the start line is not a header: it is
 *    lost in the start line and counted as ``sip.bad_header_line``.
 *  - CRLFs before a start line are skipped [§7.5]. A payload made only of CR, LF, SP, HT and
 *    NUL bytes (or empty) is a keep-alive (RFC 5626 §4.4.1 CRLFCRLF ping, NAT pings of NULs),
 *    counted as ``skipped.sip_keepalive``; the same bytes after the last message are padding.
 *  - Junk before a start line is not searched past: the payload gives ``sip.bad_start_line``
 *    (or ``sip.bad_method`` when the junk sticks to the method; junk made of token characters
 *    reads as an unknown method). tshark does the same.
 *  - Headers without their empty line (a datagram cut by the snap length): the start line and
 *    the complete header lines make a message, with ``sip.truncated_headers`` and body length 0.
 *    Without a complete start line nothing is usable.
 *  - Body: Content-Length when present and valid, else (missing or unreadable) the rest of the
 *    payload [§18.3]. A Content-Length beyond the data keeps the message
 *    (``sip.truncated_body``, body_length = bytes present). Bytes after a body are the next
 *    message if they start like one; otherwise ``skipped.sip_trailing_bytes`` [§18.3].
 *  - Methods are case-sensitive [§7.1]: ``invite`` is an unknown method, kept as spelt; a
 *    response's method is its CSeq method. Header names are case-insensitive, compact forms
 *    included [§7.3.3]; a name spelt as in the exact-case table (canonical, lower-case, compact
 *    letter) is a header even without a colon (its value is then empty).
 *  - Kept values: the first occurrence of each header, every Via value (the top Via is the
 *    first value of the first Via header; the count is of all values) and every Reason value
 *    (joined with ", ").
 *  - Limits (fatal): header block 32 KiB (bytes, start line to the empty line), 256 lines,
 *    8 KiB per line in characters (what Python's len(str) counted: so_utf8_len, trailing CRs
 *    not counted). Checked in that order after the start line; the start line is parsed first.
 *
 * Theory of operation. Per message: one memmem for the end of headers; one pass over the lines
 * of the block (memchr for LF and ':') that checks the limits and sorts the ~15 headers the
 * monitor needs into slots by code (so_header_lookup: length, then first byte); then the kept
 * values are parsed. Values the wire does not hold as-is (the unfolded block, a joined Reason
 * or sent-by, case-mapped copies) go in the parser's scratch area, allocated once and sized for
 * the header limit: at most the block (unfolded text) plus twice the block (values: disjoint
 * substrings of the block, the sent-by possibly twice, plus ", " separators). Every scratch
 * take is checked; an overflow (a bug) drops the message as ``internal.no_memory``. Slices in
 * an so_msg point into the payload or the scratch area, valid until the next message.
 */
#include "so_sip.h"

#define UNFOLD_BYTES SO_SIP_MAX_HEADER_BYTES
#define VALUE_BYTES (2 * SO_SIP_MAX_HEADER_BYTES + 4096)

struct so_parser {
    uint8_t *unfold; /* UNFOLD_BYTES: the header block with folded lines joined */
    so_scratch sc;   /* VALUE_BYTES: rebuilt values of the current message */
    uint32_t have;   /* bit per so_hcode: vals[code] holds its first occurrence */
    uint32_t n_vias, n_reasons;
    so_slice vals[SO_N_HCODES];
    so_slice vias[SO_SIP_MAX_HEADER_LINES];    /* raw values */
    so_slice reasons[SO_SIP_MAX_HEADER_LINES]; /* stripped values */
};

so_parser *so_parser_new(void) {
    so_parser *P = (so_parser *)calloc(1, sizeof(*P));
    if (!P)
        return NULL;
    P->unfold = (uint8_t *)malloc(UNFOLD_BYTES);
    P->sc.p = (uint8_t *)malloc(VALUE_BYTES);
    P->sc.cap = VALUE_BYTES;
    if (!P->unfold || !P->sc.p) {
        so_parser_free(P);
        return NULL;
    }
    return P;
}

void so_parser_free(so_parser *P) {
    if (!P)
        return;
    free(P->unfold);
    free(P->sc.p);
    free(P);
}

/* ---- header lines ------------------------------------------------------------------------ */

enum { SCAN_ON = 0, SCAN_FOLD, SCAN_BLANK };

static void add_defect(so_msg *m, so_reason r) {
    if (m->n_defects < SO_MAX_DEFECTS)
        m->defects[m->n_defects++] = (uint8_t)r;
}

static void add_defect_once(so_msg *m, so_reason r) {
    for (unsigned i = 0; i < m->n_defects; i++)
        if (m->defects[i] == r)
            return;
    add_defect(m, r);
}

static void reset_values(so_parser *P, so_msg *m) {
    P->have = 0; /* vals[code] is read only when its bit is set */
    P->n_vias = P->n_reasons = 0;
    P->sc.n = 0;
    m->n_defects = 0;
}

static inline bool is_sp_ht(uint8_t c) { return c == ' ' || c == '\t'; }

/* One header line (no LF; a CR before it is part of the line and of its value). */
static int scan_line(so_parser *P, const uint8_t *p, size_t n, so_msg *m) {
    const uint8_t *colon = n ? (const uint8_t *)memchr(p, ':', n) : NULL;
    size_t nn = colon ? (size_t)(colon - p) : n;
    bool exact = false;
    int idx = nn ? so_header_lookup(p, nn, &exact) : -1;
    if (idx < 0 || !exact) {
        if (n == 0)
            return SCAN_BLANK;
        if (is_sp_ht(p[0]))
            return SCAN_FOLD;
        so_slice name = so_py_strip(so_slice_of(p, nn));
        if (!colon || name.n == 0) {
            add_defect_once(m, SO_R_SIP_BAD_HEADER_LINE);
            return SCAN_ON;
        }
        if (name.n != nn) /* else idx is the case-insensitive match already */
            idx = so_header_lookup(name.p, name.n, NULL);
        if (idx < 0)
            return SCAN_ON;
    }
    so_slice value = colon ? so_slice_of(colon + 1, n - nn - 1) : so_slice_of(p + n, 0);
    unsigned code = so_header_names[idx].code;
    if (code > SO_H_REASON) {
        if (!(P->have & (1u << code))) {
            P->have |= 1u << code;
            P->vals[code] = value;
        }
    } else if (code == SO_H_VIA) {
        if (P->n_vias < SO_SIP_MAX_HEADER_LINES)
            P->vias[P->n_vias++] = value;
    } else if (code == SO_H_REASON) {
        if (P->n_reasons < SO_SIP_MAX_HEADER_LINES)
            P->reasons[P->n_reasons++] = so_py_strip(value);
    }
    return SCAN_ON;
}

/* Scan the lines after the first of t[0:n] until one needs the slow path (no limit checks:
 * the unfolded block has fewer and no longer lines than the block already checked). */
static int scan_lines(so_parser *P, const uint8_t *t, size_t n, so_msg *m) {
    const uint8_t *end = t + n;
    const uint8_t *lf = (const uint8_t *)memchr(t, '\n', n);
    while (lf) {
        const uint8_t *ls = lf + 1;
        lf = (const uint8_t *)memchr(ls, '\n', (size_t)(end - ls));
        int slow = scan_line(P, ls, (size_t)((lf ? lf : end) - ls), m);
        if (slow)
            return slow;
    }
    return SCAN_ON;
}

/* Python's len(line.rstrip("\r")) > SO_SIP_MAX_LINE_BYTES, in characters. */
static bool line_too_long(const uint8_t *p, size_t n) {
    while (n && p[n - 1] == '\r')
        n--;
    return n > SO_SIP_MAX_LINE_BYTES && so_utf8_len(p, n) > SO_SIP_MAX_LINE_BYTES;
}

/* re.sub(r"[ \t]*\r?\n[ \t]+", " ", t) into out (at most n bytes: every match is >= 2 bytes). */
static size_t unfold(const uint8_t *t, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t c = t[i];
        if (!is_sp_ht(c) && c != '\r' && c != '\n') {
            out[o++] = c;
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && is_sp_ht(t[j]))
            j++;
        size_t k = j;
        if (k < n && t[k] == '\r')
            k++;
        if (k + 1 < n && t[k] == '\n' && is_sp_ht(t[k + 1])) {
            for (k += 2; k < n && is_sp_ht(t[k]);)
                k++;
            out[o++] = ' ';
            i = k;
        } else if (j > i) { /* no match starts anywhere in this SP/HT run */
            memcpy(out + o, t + i, j - i);
            o += j - i;
            i = j;
        } else {
            out[o++] = c;
            i++;
        }
    }
    return o;
}

/* ---- values ------------------------------------------------------------------------------ */

#define HAVE(P, code) (((P)->have >> (code)) & 1u)

/* A copy of s in ASCII lower (or upper) case; s itself if nothing changes. NULL p: no room. */
static so_slice ascii_case(so_parser *P, so_slice s, bool upper) {
    size_t i = 0;
    for (; i < s.n; i++)
        if (upper ? (s.p[i] >= 'a' && s.p[i] <= 'z') : (s.p[i] >= 'A' && s.p[i] <= 'Z'))
            break;
    if (i == s.n)
        return s;
    uint8_t *out = so_scratch_take(&P->sc, s.n);
    if (!out)
        return so_slice_of(NULL, 0);
    for (i = 0; i < s.n; i++)
        out[i] = upper ? so_ascii_upper(s.p[i]) : so_ascii_lower(s.p[i]);
    return so_slice_of(out, s.n);
}

/* _number: uint of the stripped value, else -1 and one sip.bad_header_value per message. */
static int64_t number(so_slice s, so_msg *m) {
    int64_t v;
    if (so_uint(so_py_strip(s), &v))
        return v;
    add_defect_once(m, SO_R_SIP_BAD_HEADER_VALUE);
    return -1;
}

static so_slice before_byte(so_slice s, uint8_t c) { /* s.split(c, 1)[0] */
    const uint8_t *hit = s.n ? (const uint8_t *)memchr(s.p, c, s.n) : NULL;
    return hit ? so_slice_of(s.p, (size_t)(hit - s.p)) : s;
}

/* Fill *m from the kept values (P) and the start line: 0, or SO_R_INTERNAL_NO_MEMORY. */
static int build(so_parser *P, const so_start_line *sl, bool truncated, size_t avail, so_msg *m) {
    so_slice v;
    m->is_request = sl->is_request;
    m->status = sl->status;
    m->reason_phrase = sl->reason_phrase;
    m->request_uri = sl->request_uri;
    if (sl->is_request) {
        m->method = (uint8_t)so_method_of(sl->method.p, sl->method.n);
        m->method_tok = sl->method;
    }

    int64_t cl = -1; /* Content-Length decides where the message ends */
    if (HAVE(P, SO_H_CONTENT_LENGTH) && !so_uint(so_py_strip(P->vals[SO_H_CONTENT_LENGTH]), &cl)) {
        cl = -1;
        add_defect(m, SO_R_SIP_BAD_CONTENT_LENGTH);
    }
    m->content_length = cl;
    if (truncated) {
        add_defect(m, SO_R_SIP_TRUNCATED_HEADERS);
        m->body_length = 0;
    } else if (cl < 0) {
        m->body_length = (int64_t)avail;
    } else if ((uint64_t)cl > avail) {
        add_defect(m, SO_R_SIP_TRUNCATED_BODY);
        m->body_length = (int64_t)avail;
    } else {
        m->body_length = cl;
    }

    if (P->n_vias) { /* the top Via is the first value of the first Via header */
        uint32_t count = 0;
        for (uint32_t i = 0; i < P->n_vias; i++)
            count += so_count_values(P->vias[i]);
        m->via_count = (int32_t)count;
        so_via via;
        int r = so_parse_via(so_first_value(P->vias[0]), &via, &P->sc);
        if (r < 0)
            return SO_R_INTERNAL_NO_MEMORY;
        if (r == 0) {
            add_defect(m, SO_R_SIP_BAD_VIA);
        } else {
            m->via_transport = ascii_case(P, via.transport, true);
            m->via_sent_by = ascii_case(P, via.sent_by, false);
            m->via_branch = via.branch;
            if ((via.transport.n && !m->via_transport.p) || (via.sent_by.n && !m->via_sent_by.p))
                return SO_R_INTERNAL_NO_MEMORY;
        }
    } else {
        add_defect(m, SO_R_SIP_MISSING_VIA);
    }

    v = HAVE(P, SO_H_CALL_ID) ? so_py_strip(P->vals[SO_H_CALL_ID]) : so_slice_of(NULL, 0);
    if (v.n)
        m->call_id = v;
    else
        add_defect(m, SO_R_SIP_MISSING_CALL_ID);

    if (HAVE(P, SO_H_FROM))
        so_uri_tag(P->vals[SO_H_FROM], &m->from_uri, &m->from_tag);
    else
        add_defect(m, SO_R_SIP_MISSING_FROM);
    if (HAVE(P, SO_H_TO))
        so_uri_tag(P->vals[SO_H_TO], &m->to_uri, &m->to_tag);
    else
        add_defect(m, SO_R_SIP_MISSING_TO);

    if (!HAVE(P, SO_H_CSEQ)) {
        add_defect(m, SO_R_SIP_MISSING_CSEQ);
    } else if (!so_parse_cseq(P->vals[SO_H_CSEQ], &m->cseq, &m->cseq_method_tok)) {
        m->cseq = -1;
        add_defect(m, SO_R_SIP_BAD_CSEQ);
    } else {
        m->cseq_method = (uint8_t)so_method_of(m->cseq_method_tok.p, m->cseq_method_tok.n);
        if (!sl->is_request) {
            m->method = m->cseq_method;
            m->method_tok = m->cseq_method_tok;
        }
    }

    v = P->vals[SO_H_CONTENT_TYPE];
    if (HAVE(P, SO_H_CONTENT_TYPE) && v.n) {
        so_slice t = so_py_strip(before_byte(v, ';'));
        m->content_type = ascii_case(P, t, false);
        if (t.n && !m->content_type.p)
            return SO_R_INTERNAL_NO_MEMORY;
    }

    v = P->vals[SO_H_CONTACT];
    if (HAVE(P, SO_H_CONTACT) && v.n) {
        so_slice first = so_py_strip(so_first_value(v)), uri, params, exp;
        if (so_slice_eq(first, "*")) {
            m->contact_star = true;
        } else {
            so_name_addr(first, &uri, &params);
            if (params.n && so_param(params, "expires", 7, &exp))
                m->contact_expires = number(exp, m);
        }
    }

    unsigned ua = sl->is_request ? SO_H_USER_AGENT : SO_H_SERVER;
    unsigned other = sl->is_request ? SO_H_SERVER : SO_H_USER_AGENT;
    if (!HAVE(P, ua))
        ua = other;
    if (HAVE(P, ua) && P->vals[ua].n)
        m->user_agent = so_py_strip(P->vals[ua]);

    if (HAVE(P, SO_H_EXPIRES))
        m->expires = number(P->vals[SO_H_EXPIRES], m);
    if (HAVE(P, SO_H_SESSION_EXPIRES)) { /* delta-seconds *( ";" se-params ) */
        v = P->vals[SO_H_SESSION_EXPIRES];
        so_slice r;
        m->session_expires = number(before_byte(v, ';'), m);
        if (so_param(v, "refresher", 9, &r) && r.n) {
            m->se_refresher = ascii_case(P, r, false);
            if (!m->se_refresher.p)
                return SO_R_INTERNAL_NO_MEMORY;
        }
    }
    if (HAVE(P, SO_H_MIN_SE))
        m->min_se = number(before_byte(P->vals[SO_H_MIN_SE], ';'), m);
    if (HAVE(P, SO_H_RETRY_AFTER)) /* delta-seconds [ comment ] *( ";" retry-param ) */
        m->retry_after = number(before_byte(before_byte(P->vals[SO_H_RETRY_AFTER], ';'), '('), m);

    if (P->n_reasons == 1) {
        m->reason = P->reasons[0];
    } else if (P->n_reasons > 1) { /* ", ".join(values) */
        size_t total = 2 * (P->n_reasons - 1), o = 0;
        for (uint32_t i = 0; i < P->n_reasons; i++)
            total += P->reasons[i].n;
        uint8_t *out = so_scratch_take(&P->sc, total);
        if (!out)
            return SO_R_INTERNAL_NO_MEMORY;
        for (uint32_t i = 0; i < P->n_reasons; i++) {
            if (i) {
                out[o++] = ',';
                out[o++] = ' ';
            }
            if (P->reasons[i].n)
                memcpy(out + o, P->reasons[i].p, P->reasons[i].n);
            o += P->reasons[i].n;
        }
        m->reason = so_slice_of(out, o);
    }
    return 0;
}

/* ---- one message ------------------------------------------------------------------------- */

static long find2(const uint8_t *data, size_t from, size_t to, const char *needle, size_t k) {
    if (from >= to)
        return -1;
    long at = so_find(data + from, to - from, needle, k);
    return at < 0 ? -1 : (long)from + at;
}

static void init_msg(so_msg *m, int64_t ts_ns, const so_payload *origin) {
    memset(m, 0, sizeof(*m));
    m->ts_ns = ts_ns;
    m->origin = origin;
    m->cseq = m->content_length = -1;
    m->session_expires = m->min_se = m->expires = m->contact_expires = m->retry_after = -1;
}

/* _parse: the header block is data[start:hdr_end] (hdr_end < 0: no empty line was found). */
static int parse_block(so_parser *P, const uint8_t *data, size_t len, size_t start, long hdr_end,
                       size_t body_start, int64_t ts_ns, const so_payload *origin, so_msg *m,
                       size_t *end) {
    for (;;) {
        bool truncated = hdr_end < 0;
        if (truncated) { /* keep the complete lines (a snap-length cut keeps a message) */
            const uint8_t *lf =
                start < len ? (const uint8_t *)memrchr(data + start, '\n', len - start) : NULL;
            body_start = len;
            if (!lf)
                return start < len && len - start > SO_SIP_MAX_HEADER_BYTES
                           ? SO_R_SIP_HEADERS_TOO_LONG
                           : SO_R_SIP_TRUNCATED_HEADERS;
            hdr_end = lf - data;
        }
        if ((size_t)hdr_end - start > SO_SIP_MAX_HEADER_BYTES)
            return SO_R_SIP_HEADERS_TOO_LONG;
        const uint8_t *text = data + start;
        size_t tn = (size_t)hdr_end - start;

        /* The start line: up to the first LF, cut at a CR. */
        const uint8_t *lf0 = tn ? (const uint8_t *)memchr(text, '\n', tn) : NULL;
        size_t l0 = lf0 ? (size_t)(lf0 - text) : tn;
        const uint8_t *cr = l0 ? (const uint8_t *)memchr(text, '\r', l0) : NULL;
        so_slice first = so_slice_of(text, cr ? (size_t)(cr - text) : l0);
        if (first.n > SO_SIP_MAX_LINE_BYTES && so_utf8_len(first.p, first.n) > SO_SIP_MAX_LINE_BYTES)
            return SO_R_SIP_LINE_TOO_LONG;
        so_start_line sl;
        int rc = so_parse_start_line(first, &sl);
        if (rc)
            return rc;

        /* Every line: limits; header lines sorted into P until one needs the slow path. */
        init_msg(m, ts_ns, origin);
        reset_values(P, m);
        bool too_long = line_too_long(text, l0);
        int slow = SCAN_ON;
        unsigned lines = 1;
        const uint8_t *tend = text + tn;
        for (const uint8_t *lf = lf0; lf;) {
            const uint8_t *ls = lf + 1;
            lf = (const uint8_t *)memchr(ls, '\n', (size_t)(tend - ls));
            size_t n = (size_t)((lf ? lf : tend) - ls);
            if (++lines > SO_SIP_MAX_HEADER_LINES)
                return SO_R_SIP_TOO_MANY_HEADERS;
            too_long = too_long || line_too_long(ls, n);
            if (slow == SCAN_ON)
                slow = scan_line(P, ls, n, m);
        }
        if (too_long)
            return SO_R_SIP_LINE_TOO_LONG;

        if (slow == SCAN_FOLD) { /* RFC 3261 §7.3.1: a continuation line joins the previous one */
            bool orphan = l0 + 1 < tn && is_sp_ht(text[l0 + 1]); /* continues the start line */
            size_t un = unfold(text, tn, P->unfold);
            reset_values(P, m);
            slow = scan_lines(P, P->unfold, un, m);
            if (orphan)
                add_defect(m, SO_R_SIP_BAD_HEADER_LINE);
        }
        if (slow == SCAN_BLANK) { /* headers end at an earlier bare-LF empty line */
            long lf = find2(data, start, (size_t)hdr_end + 1, "\n\n", 2);
            if (lf < 0) /* cannot happen: an empty line after the first is a "\n\n" */
                return SO_R_INTERNAL_NO_MEMORY;
            hdr_end = lf;
            body_start = (size_t)lf + 2;
            continue;
        }
        rc = build(P, &sl, truncated, len - body_start, m);
        if (rc)
            return rc;
        *end = body_start + (size_t)m->body_length;
        return 0;
    }
}

int so_parse_message(so_parser *P, const uint8_t *data, size_t len, size_t start, int64_t ts_ns,
                     const so_payload *origin, so_msg *msg, size_t *end) {
    /* End of headers: the first "\n\r\n" (CRLF or LF line, then CRLF), else the first "\n\n". */
    long hdr_end = find2(data, start, len, "\n\r\n", 3);
    size_t body_start = (size_t)hdr_end + 3;
    if (hdr_end < 0) {
        hdr_end = find2(data, start, len, "\n\n", 2);
        body_start = (size_t)hdr_end + 2;
    }
    return parse_block(P, data, len, start, hdr_end, body_start, ts_ns, origin, msg, end);
}

/* ---- a payload --------------------------------------------------------------------------- */

static inline bool is_pad(uint8_t c) { /* keep-alive and padding bytes */
    return c == '\r' || c == '\n' || c == ' ' || c == '\t' || c == 0;
}

/* Where the next start line begins: CRLFs skipped (§7.5); -1 if only padding remains. */
static long next_start(const uint8_t *data, size_t len, size_t pos) {
    size_t i = pos;
    while (i < len && is_pad(data[i]))
        i++;
    if (i >= len)
        return -1;
    while (pos < len && (data[pos] == '\r' || data[pos] == '\n'))
        pos++;
    return (long)pos;
}

void so_parse_payload(so_parser *P, const so_payload *payload, uint64_t *reasons,
                      so_msg_fn on_msg, void *ctx) {
    const uint8_t *data = payload->data;
    size_t len = payload->len, pos = 0;
    bool any = false;
    if (len == 0 || is_pad(data[0])) {
        long p = len ? next_start(data, len, 0) : -1;
        if (p < 0) {
            reasons[SO_R_SKIPPED_SIP_KEEPALIVE]++;
            return;
        }
        pos = (size_t)p;
    }
    for (;;) {
        so_msg msg;
        size_t end = 0;
        int rc = so_parse_message(P, data, len, pos, payload->ts_ns, payload, &msg, &end);
        if (rc) {
            /* Bytes after a message that do not start like one: RFC 3261 §18.3 says discard
             * them (a Content-Length shorter than the body leaves its tail here). */
            bool not_a_start = rc == SO_R_SIP_BAD_START_LINE || rc == SO_R_SIP_BAD_METHOD ||
                               rc == SO_R_SIP_TRUNCATED_HEADERS;
            reasons[any && not_a_start ? SO_R_SKIPPED_SIP_TRAILING_BYTES : (so_reason)rc]++;
            return;
        }
        any = true;
        for (unsigned i = 0; i < msg.n_defects; i++)
            reasons[msg.defects[i]]++;
        on_msg(ctx, &msg);
        if (end >= len)
            return;
        if (is_pad(data[end])) {
            long p = next_start(data, len, end);
            if (p < 0)
                return;
            pos = (size_t)p;
        } else {
            pos = end;
        }
    }
}
