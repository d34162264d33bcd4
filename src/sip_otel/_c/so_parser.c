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
 *    8 KiB per line in characters (what Python's len(str) counted: py_len, trailing CRs not
 *    counted). Checked in that order after the start line; the start line is parsed first.
 *
 * Theory of operation. Per message, one pass in the common case (parse_fast): the lines are
 * walked from the start line (memchr for LF), each LF checked for a following CRLF (the end of
 * headers), each line checked against the limits and sorted into slots by header code
 * (so_header_code: the ~15 kept headers, compared by length and two words, no hashing). Any
 * other shape (no "\n\r\n", a limit or start line error, whose precedence matters) starts over
 * on the general path (parse_block), which finds the end of headers first as the Python parser
 * did. Then the kept values are parsed (so_parser_msg.c). Values the wire does not hold as-is
 * (the unfolded block, a joined Reason or sent-by, case-mapped copies) go in the parser's
 * scratch area, allocated once and sized for the header limit: at most the block (unfolded
 * text) plus twice the block (values: disjoint substrings of the block, the sent-by possibly
 * twice, plus ", " separators). Every scratch take is checked; an overflow (a bug) drops the
 * message as ``internal.no_memory``. Slices in an so_msg point into the payload or the scratch
 * area, valid until the next message. No allocation per message.
 */
#include "so_parser_int.h"

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

static void reset_values(so_parser *P, so_msg *m) {
    P->have = 0; /* vals[code] is read only when its bit is set */
    P->n_vias = P->n_reasons = 0;
    P->sc.n = 0;
    m->n_defects = 0;
}

static inline bool is_sp_ht(uint8_t c) { return c == ' ' || c == '\t'; }

static bool is_corr_name(const so_parser *P, so_slice name) {
    for (size_t i = 0; i < name.n; i++)
        if (so_ascii_lower(name.p[i]) != P->corr_name[i])
            return false;
    return true;
}

/* RFC 3261 token characters (a header name) */
static bool is_token_char(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("-.!%*_+`'~", c) != NULL;
}

bool so_parser_set_correlation(so_parser *P, const uint8_t *name, size_t n) {
    if (n == 0) {
        P->corr_n = 0;
        return true;
    }
    if (n > SO_SIP_MAX_CORRELATION_NAME || so_header_lookup(name, n, NULL) >= 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_token_char(name[i]))
            return false;
    for (size_t i = 0; i < n; i++)
        P->corr_name[i] = so_ascii_lower(name[i]);
    P->corr_n = n;
    return true;
}

/* One header line (no LF; a CR before it is part of the line and of its value). With a colon,
 * only the code of the stripped name matters: a line starting with SP/HT continues the previous
 * one, an empty name is a bad line. Without one, the line is a header (with an empty value)
 * only if spelt as in the exact-case table; else it is empty (the end of headers), a
 * continuation, or a bad line. */
static int scan_line(so_parser *P, const uint8_t *p, size_t n, so_msg *m) {
    size_t nn = so_find_byte(p, 0, n, ':'); /* the name is short: no memchr call */
    unsigned code;
    so_slice value;
    if (nn < n) {
        if (is_sp_ht(p[0]))
            return SCAN_FOLD;
        so_slice name = so_strip(so_slice_of(p, nn));
        if (name.n == 0) {
            add_defect_once(m, SO_R_SIP_BAD_HEADER_LINE);
            return SCAN_ON;
        }
        code = so_header_code(name.p, name.n);
        if (SO_UNLIKELY(P->corr_n) && code == SO_H_IGNORED && name.n == P->corr_n &&
            is_corr_name(P, name))
            code = SO_H_CORRELATION;
        value = so_slice_of(p + nn + 1, n - nn - 1);
    } else {
        if (n == 0)
            return SCAN_BLANK;
        bool exact = false;
        int idx = so_header_lookup(p, n, &exact);
        if (idx < 0 || !exact) {
            if (is_sp_ht(p[0]))
                return SCAN_FOLD;
            add_defect_once(m, SO_R_SIP_BAD_HEADER_LINE);
            return SCAN_ON;
        }
        code = so_header_names[idx].code;
        value = so_slice_of(p + n, 0);
    }
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
            P->reasons[P->n_reasons++] = so_strip(value);
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

/* len(bytes.decode("utf-8", "replace")) */
static size_t py_len(const uint8_t *p, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; chars++)
        i += so_py_char_bytes(p + i, n - i);
    return chars;
}

/* Python's len(line.rstrip("\r")) > SO_SIP_MAX_LINE_BYTES, in characters. */
static inline bool line_too_long(const uint8_t *p, size_t n) {
    if (SO_LIKELY(n <= SO_SIP_MAX_LINE_BYTES))
        return false;
    while (n && p[n - 1] == '\r')
        n--;
    return n > SO_SIP_MAX_LINE_BYTES && py_len(p, n) > SO_SIP_MAX_LINE_BYTES;
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

/* The start line of text[0:tn]: up to the first LF (*l0 bytes), cut at a CR; 0 or fatal. */
static int start_line(const uint8_t *text, size_t tn, so_start_line *sl, size_t *l0) {
    const uint8_t *lf = tn ? (const uint8_t *)memchr(text, '\n', tn) : NULL;
    *l0 = lf ? (size_t)(lf - text) : tn;
    const uint8_t *cr = *l0 ? (const uint8_t *)memchr(text, '\r', *l0) : NULL;
    so_slice first = so_slice_of(text, cr ? (size_t)(cr - text) : *l0);
    if (first.n > SO_SIP_MAX_LINE_BYTES && py_len(first.p, first.n) > SO_SIP_MAX_LINE_BYTES)
        return SO_R_SIP_LINE_TOO_LONG;
    return so_parse_start_line(first, sl);
}

/* After the line walk of the block data[start:hdr_end] (``slow``: what stopped its scan):
 * folded lines, then the message. 0, a fatal code, or -1 with *restart: the headers end at an
 * earlier bare-LF empty line, parse again up to it. */
static int finish(so_parser *P, const uint8_t *data, size_t len, size_t start, size_t hdr_end,
                  size_t body_start, bool truncated, const so_start_line *sl, size_t l0, int slow,
                  so_msg *m, size_t *end, long *restart) {
    const uint8_t *text = data + start;
    size_t tn = hdr_end - start;
    if (slow == SCAN_FOLD) { /* RFC 3261 §7.3.1: a continuation line joins the previous one */
        bool orphan = l0 + 1 < tn && is_sp_ht(text[l0 + 1]); /* continues the start line */
        size_t un = unfold(text, tn, P->unfold);
        reset_values(P, m);
        slow = scan_lines(P, P->unfold, un, m);
        if (orphan)
            add_defect(m, SO_R_SIP_BAD_HEADER_LINE);
    }
    if (slow == SCAN_BLANK) { /* headers end at an earlier bare-LF empty line */
        *restart = find2(data, start, hdr_end + 1, "\n\n", 2);
        /* always found: an empty line after the first is a "\n\n" in data[start:hdr_end+1] */
        return *restart < 0 ? SO_R_INTERNAL_NO_MEMORY : -1;
    }
    int rc = so_parser_build(P, sl, truncated, len - body_start, m);
    if (rc)
        return rc;
    *end = body_start + (size_t)m->body_length;
    m->body = so_slice_of(data + body_start, (size_t)m->body_length);
    if (HAVE(P, SO_H_CONTENT_TYPE))
        m->content_type_value = P->vals[SO_H_CONTENT_TYPE];
    return 0;
}

/* The general path: the header block is data[start:hdr_end] (hdr_end < 0: no empty line). */
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
        size_t tn = (size_t)hdr_end - start, l0;
        so_start_line sl;
        int rc = start_line(text, tn, &sl, &l0);
        if (rc)
            return rc;

        /* Every line: limits; header lines sorted into P until one needs the slow path. */
        init_msg(m, ts_ns, origin);
        reset_values(P, m);
        bool too_long = line_too_long(text, l0);
        int slow = SCAN_ON;
        unsigned lines = 1;
        const uint8_t *tend = text + tn;
        for (const uint8_t *lf = l0 < tn ? text + l0 : NULL; lf;) {
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
        long restart;
        rc = finish(P, data, len, start, (size_t)hdr_end, body_start, truncated, &sl, l0, slow, m,
                    end, &restart);
        if (rc >= 0)
            return rc;
        hdr_end = restart;
        body_start = (size_t)restart + 2;
    }
}

/* The common case in one pass: walk the lines from the start line, scanning each, until an LF
 * followed by CRLF (the first "\n\r\n": the end of headers). Anything else (no such end, a
 * limit or start line error, whose order of precedence the general path knows) returns -1: the
 * caller takes the general path, which starts over. */
static int parse_fast(so_parser *P, const uint8_t *data, size_t len, size_t start, int64_t ts_ns,
                      const so_payload *origin, so_msg *m, size_t *end) {
    const uint8_t *text = data + start, *dend = data + len;
    const uint8_t *lf = (const uint8_t *)memchr(text, '\n', len - start);
    if (!lf || (size_t)(lf - text) > SO_SIP_MAX_HEADER_BYTES)
        return -1;
    size_t l0;
    so_start_line sl;
    if (start_line(text, (size_t)(lf - text), &sl, &l0))
        return -1;
    init_msg(m, ts_ns, origin);
    reset_values(P, m);
    bool too_long = line_too_long(text, l0);
    int slow = SCAN_ON;
    unsigned lines = 1;
    while (dend - lf < 3 || lf[1] != '\r' || lf[2] != '\n') {
        const uint8_t *ls = lf + 1;
        lf = (const uint8_t *)memchr(ls, '\n', (size_t)(dend - ls));
        if (!lf || (size_t)(lf - text) > SO_SIP_MAX_HEADER_BYTES ||
            ++lines > SO_SIP_MAX_HEADER_LINES)
            return -1;
        size_t n = (size_t)(lf - ls);
        too_long = too_long || line_too_long(ls, n);
        if (slow == SCAN_ON)
            slow = scan_line(P, ls, n, m);
    }
    if (too_long)
        return SO_R_SIP_LINE_TOO_LONG; /* block, start line and line count are fine */
    size_t hdr_end = (size_t)(lf - data);
    long restart;
    int rc = finish(P, data, len, start, hdr_end, hdr_end + 3, false, &sl, l0, slow, m, end,
                    &restart);
    if (rc >= 0)
        return rc;
    return parse_block(P, data, len, start, restart, (size_t)restart + 2, ts_ns, origin, m, end);
}

int so_parse_message(so_parser *P, const uint8_t *data, size_t len, size_t start, int64_t ts_ns,
                     const so_payload *origin, so_msg *msg, size_t *end) {
    if (start < len) {
        int rc = parse_fast(P, data, len, start, ts_ns, origin, msg, end);
        if (rc >= 0)
            return rc;
    }
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
