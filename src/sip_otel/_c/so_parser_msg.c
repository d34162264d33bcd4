/* SPDX-License-Identifier: Apache-2.0
 * The message's fields from the header values the line scan kept (so_parser.c), with the
 * defects found on the way, in the pure-Python parser's order: Content-Length and the body
 * (bad_content_length, truncated_headers/truncated_body), Via (missing_via/bad_via), Call-ID,
 * From, To, CSeq (missing/bad; a response's method is its CSeq method, RFC 3261 §8.2.6.2 and
 * §20.16), Content-Type, Contact (``*``, first value's ``;expires=``), User-Agent for requests
 * and Server for responses (the other one if absent), Expires, Session-Expires and its
 * refresher (RFC 4028), Min-SE, Retry-After (RFC 3261 §20.33: delta-seconds, then a comment or
 * parameters), Reason values joined with ", " (RFC 3326). Numbers are 1-10 ASCII digits; one
 * unreadable one counts one sip.bad_header_value per message.
 *
 * Case mapping is ASCII (the tracker compares bytes): sent-by and media type lower-cased,
 * transport upper-cased; copies go in the scratch area only when a byte changes.
 */
#include "so_parser_int.h"

/* A copy of s in ASCII lower (or upper) case; s itself if nothing changes. NULL p: no room. */
static so_slice ascii_case(so_parser *P, so_slice s, bool upper) {
    uint8_t from = upper ? 'a' : 'A';
    size_t i = 0;
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (s.n - i >= 8) { /* 8 bytes at a time: any byte in from..from+25? */
        uint64_t x, y;
        memcpy(&x, s.p + i, 8);
        y = x & ~highs; /* 7 bits: the sums below cannot carry into the next byte */
        if ((y + (0x80 - from) * ones) & ~(y + (0x80 - from - 26) * ones) & ~x & highs)
            break;
        i += 8;
    }
    while (i < s.n && (uint8_t)(s.p[i] - from) > 25)
        i++;
    if (i == s.n)
        return s;
    uint8_t *out = so_scratch_take(&P->sc, s.n);
    if (!out)
        return so_slice_of(NULL, 0);
    for (i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        out[i] = (uint8_t)(c - from) <= 25 ? (uint8_t)(c ^ 0x20) : c;
    }
    return so_slice_of(out, s.n);
}

/* _number: uint of the stripped value, else -1 and one sip.bad_header_value per message. */
static int64_t number(so_slice s, so_msg *m) {
    int64_t v;
    if (so_uint(so_strip(s), &v))
        return v;
    add_defect_once(m, SO_R_SIP_BAD_HEADER_VALUE);
    return -1;
}

static so_slice before_byte(so_slice s, uint8_t c) { /* s.split(c, 1)[0] */
    size_t i = 0;
    while (i < s.n && s.p[i] != c)
        i++;
    return so_slice_of(s.p, i);
}

int so_parser_build(so_parser *P, const so_start_line *sl, bool truncated, size_t avail, so_msg *m) {
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
    if (HAVE(P, SO_H_CONTENT_LENGTH) && !so_uint(so_strip(P->vals[SO_H_CONTENT_LENGTH]), &cl)) {
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
        so_slice top;
        uint32_t count = so_count_values_first(P->vias[0], &top);
        for (uint32_t i = 1; i < P->n_vias; i++)
            count += so_count_values(P->vias[i]);
        m->via_count = (int32_t)count;
        so_via via;
        int r = so_parse_via(top, &via, &P->sc);
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

    v = HAVE(P, SO_H_CALL_ID) ? so_strip(P->vals[SO_H_CALL_ID]) : so_slice_of(NULL, 0);
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
        so_slice t = so_strip(before_byte(v, ';'));
        m->content_type = ascii_case(P, t, false);
        if (t.n && !m->content_type.p)
            return SO_R_INTERNAL_NO_MEMORY;
    }

    v = P->vals[SO_H_CONTACT];
    if (HAVE(P, SO_H_CONTACT) && v.n) {
        so_slice first = so_strip(so_first_value(v)), uri, params, exp;
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
        m->user_agent = so_strip(P->vals[ua]);
    if (HAVE(P, SO_H_SESSION_ID))
        m->session_id = so_strip(P->vals[SO_H_SESSION_ID]);
    if (HAVE(P, SO_H_CORRELATION))
        m->correlation = so_strip(so_first_value(P->vals[SO_H_CORRELATION]));

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
