/* SPDX-License-Identifier: Apache-2.0
 * SDP parser (so_sdp.h): one pass over the lines, no allocation, every read bounded by the
 * line it belongs to. */
#include "so_sdp.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "so_reasons.h"

/* RFC 3551 table 4 and 5 (audio and video static payload types). */
static const struct {
    uint8_t pt;
    uint32_t rate;
    const char *name;
} so_sdp_static[] = {
    {0, 8000, "PCMU"},   {3, 8000, "GSM"},    {4, 8000, "G723"},   {5, 8000, "DVI4"},
    {6, 16000, "DVI4"},  {7, 8000, "LPC"},    {8, 8000, "PCMA"},   {9, 8000, "G722"},
    {10, 44100, "L16"},  {11, 44100, "L16"},  {12, 8000, "QCELP"}, {13, 8000, "CN"},
    {14, 90000, "MPA"},  {15, 8000, "G728"},  {16, 11025, "DVI4"}, {17, 22050, "DVI4"},
    {18, 8000, "G729"},  {25, 90000, "CelB"}, {26, 90000, "JPEG"}, {28, 90000, "nv"},
    {31, 90000, "H261"}, {32, 90000, "MPV"},  {33, 90000, "MP2T"}, {34, 90000, "H263"},
};

uint32_t so_sdp_static_rate(uint8_t pt, const char **name) {
    for (size_t i = 0; i < sizeof(so_sdp_static) / sizeof(so_sdp_static[0]); i++) {
        if (so_sdp_static[i].pt == pt) {
            if (name)
                *name = so_sdp_static[i].name;
            return so_sdp_static[i].rate;
        }
    }
    if (name)
        *name = "";
    return 0;
}

/* ---- small tokenising helpers over [p, end) ---------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} so_cur;

static inline bool so_sdp_ws(uint8_t c) { return c == ' ' || c == '\t'; }

static void cur_skip_ws(so_cur *c) {
    while (c->p < c->end && so_sdp_ws(*c->p))
        c->p++;
}

/* Next whitespace-delimited token; false at the end of the line. */
static bool cur_token(so_cur *c, so_slice *tok) {
    cur_skip_ws(c);
    const uint8_t *s = c->p;
    while (c->p < c->end && !so_sdp_ws(*c->p))
        c->p++;
    *tok = so_slice_of(s, (size_t)(c->p - s));
    return tok->n > 0;
}

/* Decimal number in [0, max] filling the whole slice (prefix when `prefix`), else -1. */
static long slice_uint(so_slice s, long max, uint32_t *used) {
    long v = 0;
    uint32_t i = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        v = v * 10 + (s.p[i] - '0');
        if (v > max)
            return -1;
        i++;
    }
    if (i == 0)
        return -1;
    if (used)
        *used = i;
    else if (i != s.n)
        return -1;
    return v;
}

/* Case-insensitive prefix; ``lit`` in lower case. */
static bool slice_iprefix(so_slice s, const char *lit) {
    size_t n = strlen(lit);
    return s.n >= n && so_slice_ieq(so_slice_of(s.p, n), lit);
}

static void copy_name(char *dst, size_t cap, so_slice s) {
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(dst, s.p, n);
    dst[n] = 0;
}

/* "IN IP4 <addr>[/ttl[/n]]" or "IN IP6 <addr>[/n]" from the current position. 1 parsed,
 * 0 malformed, -1 a host name (legal SDP, but no address to learn). */
static int parse_conn(so_cur *c, so_sdp_addr *out) {
    so_slice nettype, addrtype, addr;
    if (!cur_token(c, &nettype) || !cur_token(c, &addrtype) || !cur_token(c, &addr))
        return 0;
    if (!so_slice_ieq(nettype, "in"))
        return 0;
    int family;
    if (so_slice_ieq(addrtype, "ip4"))
        family = 4;
    else if (so_slice_ieq(addrtype, "ip6"))
        family = 6;
    else
        return 0;
    uint32_t n = 0;
    while (n < addr.n && addr.p[n] != '/')
        n++;
    if (family == 6 && n >= 2 && addr.p[0] == '[' && addr.p[n - 1] == ']') {
        addr.p++; /* "[::1]": not RFC 8866 syntax, but seen in the wild (TRex) */
        n -= 2;
    }
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, addr.p, n);
    buf[n] = 0;
    uint8_t bin[16];
    if (inet_pton(family == 4 ? AF_INET : AF_INET6, buf, bin) != 1) {
        /* a host name (RFC 8866 allows an FQDN) is not an error; anything else is */
        bool name = false;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t ch = addr.p[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
                name = true;
            else if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':'))
                return 0;
        }
        return name ? -1 : 0;
    }
    memset(out, 0, sizeof(*out));
    out->family = (uint8_t)family;
    memcpy(out->addr, bin, family == 4 ? 4 : 16);
    return 1;
}

static void set_conn(so_cur *c, so_sdp_addr *dst, uint64_t *reasons) {
    int r = parse_conn(c, dst);
    if (r == 0)
        reasons[SO_R_SDP_BAD_CONNECTION]++;
    else if (r < 0)
        reasons[SO_R_SDP_HOSTNAME_ADDRESS]++;
}

/* m=<media> <port>[/<number of ports>] <proto> <fmt> ... */
static void parse_m(so_cur *c, so_sdp_media *m, uint64_t *reasons) {
    so_slice kind, port, proto, fmt;
    if (!cur_token(c, &kind) || !cur_token(c, &port) || !cur_token(c, &proto)) {
        reasons[SO_R_SDP_BAD_MEDIA]++;
        m->port = 0;
        return;
    }
    m->kind = so_slice_ieq(kind, "audio") ? SO_SDP_AUDIO
              : so_slice_ieq(kind, "video") ? SO_SDP_VIDEO
                                          : SO_SDP_OTHER;
    uint32_t used = 0;
    long v = slice_uint(port, 65535, &used);
    long count = 1;
    if (v >= 0 && used < port.n) {
        if (port.p[used] == '/')
            count = slice_uint(so_slice_of(port.p + used + 1, port.n - used - 1), 65535, NULL);
        else
            count = -1;
    }
    if (v < 0 || count < 1) {
        reasons[SO_R_SDP_BAD_MEDIA]++;
        v = 0;
        count = 1;
    }
    m->port = (uint16_t)v;
    m->n_ports = (uint16_t)count;
    m->rtcp_port = v ? (uint16_t)(v + 1) : 0;
    copy_name(m->proto, sizeof(m->proto), proto);
    /* RTP profiles: "RTP/AVP", "RTP/SAVP", "RTP/AVPF", "UDP/TLS/RTP/SAVPF", "TCP/RTP/AVP"... */
    m->rtp = so_find(proto.p, proto.n, "RTP/", 4) >= 0 ? 1 : 0;
    if (!m->rtp)
        return; /* formats are not payload types (udptl t38, TCP/MSRP, ...) */
    while (cur_token(c, &fmt)) {
        long pt = slice_uint(fmt, 127, NULL);
        if (pt < 0) {
            reasons[SO_R_SDP_BAD_MEDIA]++;
            continue;
        }
        if (m->n_pts >= SO_SDP_MAX_PT) {
            reasons[SO_R_SDP_TOO_MANY_PAYLOAD_TYPES]++;
            continue;
        }
        so_sdp_pt *t = &m->pts[m->n_pts++];
        const char *name;
        t->pt = (uint8_t)pt;
        t->channels = 1;
        t->clock_rate = so_sdp_static_rate(t->pt, &name);
        copy_name(t->name, sizeof(t->name), so_slice_of((const uint8_t *)name, strlen(name)));
    }
}

/* a=rtpmap:<pt> <name>/<rate>[/<channels>] */
static void parse_rtpmap(so_cur *c, so_sdp_media *m, uint64_t *reasons) {
    so_slice pts, enc;
    if (!cur_token(c, &pts) || !cur_token(c, &enc)) {
        reasons[SO_R_SDP_BAD_RTPMAP]++;
        return;
    }
    long pt = slice_uint(pts, 127, NULL);
    uint32_t slash = 0;
    while (slash < enc.n && enc.p[slash] != '/')
        slash++;
    if (pt < 0 || slash == 0 || slash + 1 >= enc.n) {
        reasons[SO_R_SDP_BAD_RTPMAP]++;
        return;
    }
    so_slice rest = so_slice_of(enc.p + slash + 1, enc.n - slash - 1);
    uint32_t used = 0;
    long rate = slice_uint(rest, 10000000, &used);
    long channels = 1;
    if (rate > 0 && used < rest.n) {
        if (rest.p[used] == '/')
            channels = slice_uint(so_slice_of(rest.p + used + 1, rest.n - used - 1), 255, NULL);
        else
            channels = -1;
    }
    if (rate <= 0 || channels < 0) {
        reasons[SO_R_SDP_BAD_RTPMAP]++;
        return;
    }
    for (uint8_t i = 0; i < m->n_pts; i++) {
        if (m->pts[i].pt == (uint8_t)pt) {
            m->pts[i].clock_rate = (uint32_t)rate;
            m->pts[i].channels = (uint8_t)(channels ? channels : 1);
            copy_name(m->pts[i].name, sizeof(m->pts[i].name), so_slice_of(enc.p, slash));
            return;
        }
    }
    /* an rtpmap for a format the m= line does not list: ignored (RFC 8866 6.6) */
}

/* a=rtcp:<port> [IN IP4|IP6 <addr>] (RFC 3605) */
static void parse_rtcp(so_cur *c, so_sdp_media *m, uint64_t *reasons) {
    so_slice port;
    long v = cur_token(c, &port) ? slice_uint(port, 65535, NULL) : -1;
    if (v < 0) {
        reasons[SO_R_SDP_BAD_RTCP]++;
        return;
    }
    m->rtcp_port = (uint16_t)v;
    cur_skip_ws(c);
    if (c->p < c->end) {
        so_sdp_addr a;
        int r = parse_conn(c, &a);
        if (r > 0)
            m->rtcp_addr = a;
        else
            reasons[r == 0 ? SO_R_SDP_BAD_RTCP : SO_R_SDP_HOSTNAME_ADDRESS]++;
    }
}

static int direction_of(so_slice a) {
    if (so_slice_ieq(a, "sendrecv"))
        return SO_SDP_SENDRECV;
    if (so_slice_ieq(a, "sendonly"))
        return SO_SDP_SENDONLY;
    if (so_slice_ieq(a, "recvonly"))
        return SO_SDP_RECVONLY;
    if (so_slice_ieq(a, "inactive"))
        return SO_SDP_INACTIVE;
    return -1;
}

bool so_sdp_parse(const uint8_t *p, size_t n, so_sdp *out, uint64_t *reasons) {
    memset(out, 0, sizeof(*out));
    if (!p || n == 0) {
        reasons[SO_R_SDP_NOT_SDP]++;
        return false;
    }
    const uint8_t *end = p + n;
    so_sdp_media *m = NULL;     /* current kept media section; NULL at session level */
    bool in_media = false;      /* past the first m= (even when that one was not kept) */
    bool media_dir[SO_SDP_MAX_MEDIA] = {false};
    bool media_conn[SO_SDP_MAX_MEDIA] = {false};
    bool media_rtcp_addr[SO_SDP_MAX_MEDIA] = {false};
    bool looks_sdp = false;
    while (p < end) {
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *next = eol ? eol + 1 : end;
        const uint8_t *le = eol ? eol : end;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p) { /* empty line (a trailing CRLF) */
            p = next;
            continue;
        }
        if (le - p < 2 || p[1] != '=' || p[0] < 'a' || p[0] > 'z') {
            reasons[SO_R_SDP_BAD_LINE]++;
            p = next;
            continue;
        }
        uint8_t type = p[0];
        so_cur c = {p + 2, le};
        p = next;
        if (type == 'v') {
            looks_sdp = true;
        } else if (type == 'o' && !in_media) {
            so_slice tok;
            cur_token(&c, &tok); /* username */
            cur_token(&c, &tok); /* sess-id */
            if (cur_token(&c, &tok)) {
                long v = slice_uint(tok, 0x7fffffffffffffffL / 10 - 1, NULL);
                out->origin_version = v < 0 ? 0 : (uint64_t)v;
            }
        } else if (type == 'm') {
            looks_sdp = true;
            in_media = true;
            out->n_media_seen++;
            if (out->n_media >= SO_SDP_MAX_MEDIA) {
                reasons[SO_R_SDP_TOO_MANY_MEDIA]++;
                m = NULL;
                continue;
            }
            m = &out->media[out->n_media++];
            parse_m(&c, m, reasons);
        } else if (type == 'c') {
            if (!in_media) {
                set_conn(&c, &out->conn, reasons);
            } else if (m) {
                set_conn(&c, &m->conn, reasons);
                media_conn[m - out->media] = m->conn.family != 0;
            }
        } else if (type == 'a') {
            const uint8_t *colon = memchr(c.p, ':', (size_t)(c.end - c.p));
            so_slice name = so_slice_of(c.p, (size_t)((colon ? colon : c.end) - c.p));
            so_cur val = {colon ? colon + 1 : c.end, c.end};
            int dir = colon ? -1 : direction_of(name);
            if (dir >= 0) {
                if (!in_media)
                    out->direction = (uint8_t)dir;
                else if (m) {
                    m->direction = (uint8_t)dir;
                    media_dir[m - out->media] = true;
                }
            } else if (m && so_slice_ieq(name, "rtpmap")) {
                parse_rtpmap(&val, m, reasons);
            } else if (m && so_slice_ieq(name, "rtcp")) {
                parse_rtcp(&val, m, reasons);
                media_rtcp_addr[m - out->media] = m->rtcp_addr.family != 0;
            } else if (m && so_slice_ieq(name, "rtcp-mux")) {
                m->rtcp_mux = 1;
            } else if (m && so_slice_ieq(name, "ptime")) {
                so_slice tok;
                long v = cur_token(&val, &tok) ? slice_uint(tok, 65535, NULL) : -1;
                if (v >= 0)
                    m->ptime = (uint16_t)v;
            }
        }
    }
    if (!looks_sdp) {
        reasons[SO_R_SDP_NOT_SDP]++;
        return false;
    }
    /* session-level defaults into each media section */
    for (uint8_t i = 0; i < out->n_media; i++) {
        so_sdp_media *mm = &out->media[i];
        if (!media_dir[i])
            mm->direction = out->direction;
        if (!media_conn[i])
            mm->conn = out->conn;
        if (!media_rtcp_addr[i])
            mm->rtcp_addr = mm->conn;
        if (mm->rtcp_mux && mm->port)
            mm->rtcp_port = mm->port;
        if (mm->conn.family == 0 && mm->port != 0)
            reasons[SO_R_SDP_MISSING_CONNECTION]++;
    }
    return true;
}

/* Value of a Content-Type parameter (boundary=...), quotes removed. */
static bool ctype_param(so_slice ct, const char *key, so_slice *val) {
    size_t k = strlen(key);
    const uint8_t *q = ct.p, *end = ct.p + ct.n;
    while (q < end) {
        const uint8_t *semi = memchr(q, ';', (size_t)(end - q));
        if (!semi)
            return false;
        q = semi + 1;
        while (q < end && so_sdp_ws(*q))
            q++;
        if ((size_t)(end - q) > k && so_slice_ieq(so_slice_of(q, k), key) && q[k] == '=') {
            const uint8_t *v = q + k + 1, *ve = v;
            if (v < end && *v == '"') {
                v++;
                ve = v;
                while (ve < end && *ve != '"')
                    ve++;
            } else {
                while (ve < end && *ve != ';' && !so_sdp_ws(*ve))
                    ve++;
            }
            *val = so_slice_of(v, (size_t)(ve - v));
            return val->n > 0;
        }
    }
    return false;
}

/* Skip leading whitespace; is the media type application/sdp (parameters ignored)? */
static bool is_sdp_type(so_slice ct) {
    while (ct.n && so_sdp_ws(*ct.p)) {
        ct.p++;
        ct.n--;
    }
    if (!slice_iprefix(ct, "application/sdp"))
        return false;
    return ct.n == 15 || ct.p[15] == ';' || so_sdp_ws(ct.p[15]);
}

/* The Content-Type of a MIME part's header block [p, end), if any. */
static so_slice part_ctype(const uint8_t *p, const uint8_t *end) {
    so_slice none = {NULL, 0};
    while (p < end) {
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = eol ? eol : end;
        so_slice line = so_slice_of(p, (size_t)(le - p));
        if (slice_iprefix(line, "content-type:")) {
            line.p += 13;
            line.n -= 13;
            while (line.n && (line.p[line.n - 1] == '\r' || so_sdp_ws(line.p[line.n - 1])))
                line.n--;
            return line;
        }
        p = eol ? eol + 1 : end;
    }
    return none;
}

int so_sdp_from_body(const uint8_t *ctype, size_t ctype_n, const uint8_t *body, size_t n,
                     so_sdp *out, uint64_t *reasons) {
    so_slice ct = so_slice_of(ctype, ctype_n);
    while (ct.n && so_sdp_ws(*ct.p)) {
        ct.p++;
        ct.n--;
    }
    /* a raw header value may end in its line end (or folding whitespace) */
    while (ct.n && (so_sdp_ws(ct.p[ct.n - 1]) || ct.p[ct.n - 1] == '\r' || ct.p[ct.n - 1] == '\n'))
        ct.n--;
    if (is_sdp_type(ct))
        return so_sdp_parse(body, n, out, reasons) ? 1 : -1;
    if (!slice_iprefix(ct, "multipart/"))
        return 0;
    so_slice boundary;
    if (!ctype_param(ct, "boundary", &boundary) || boundary.n > 70) {
        reasons[SO_R_SDP_BAD_MULTIPART]++;
        return -1;
    }
    /* delimiter: CRLF "--" boundary (the first may start the body) */
    char delim[80];
    delim[0] = '-';
    delim[1] = '-';
    memcpy(delim + 2, boundary.p, boundary.n);
    size_t dn = boundary.n + 2;
    long at = so_find(body, n, delim, dn);
    for (int part = 0; at >= 0 && part < SO_SDP_MAX_PARTS; part++) {
        const uint8_t *s = body + at + dn;
        const uint8_t *end = body + n;
        if (end - s >= 2 && s[0] == '-' && s[1] == '-')
            return 0; /* close delimiter: no SDP part */
        long nx = so_find(s, (size_t)(end - s), delim, dn);
        const uint8_t *pe = nx >= 0 ? s + nx : end;
        /* the part: rest of the delimiter line, headers, empty line, content */
        const uint8_t *hdr = memchr(s, '\n', (size_t)(pe - s));
        if (!hdr)
            break;
        hdr++;
        const uint8_t *content = NULL;
        long blank = so_find(hdr, (size_t)(pe - hdr), "\r\n\r\n", 4);
        if (blank >= 0) {
            content = hdr + blank + 4;
        } else if ((blank = so_find(hdr, (size_t)(pe - hdr), "\n\n", 2)) >= 0) {
            content = hdr + blank + 2;
        } else if (hdr + 2 <= pe && hdr[0] == '\r' && hdr[1] == '\n') {
            content = hdr + 2; /* no headers at all */
        }
        if (content) {
            so_slice pct = part_ctype(hdr, content);
            if (pct.n && is_sdp_type(pct)) {
                const uint8_t *ce = pe;
                /* the CRLF before the next delimiter belongs to the delimiter */
                if (ce > content && ce[-1] == '\n')
                    ce--;
                if (ce > content && ce[-1] == '\r')
                    ce--;
                return so_sdp_parse(content, (size_t)(ce - content), out, reasons) ? 1 : -1;
            }
        }
        if (nx < 0)
            break;
        at = (long)(s + nx - body);
    }
    reasons[SO_R_SDP_BAD_MULTIPART]++;
    return -1;
}
