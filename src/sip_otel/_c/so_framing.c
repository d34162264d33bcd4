/* SPDX-License-Identifier: Apache-2.0
 * SIP message framing on a reassembled TCP byte stream (RFC 3261 section 18.3), and the SIP
 * sniff (so_looks_like_sip). Part of the sip layer; net/ receives both through so_net_config.
 *
 * On a stream transport a SIP message ends after its header block (terminated by an empty
 * line, CRLF CRLF, with bare LF LF tolerated) plus ``Content-Length`` body bytes. The framer is
 * a small state machine over one buffer:
 *
 * LINE     at a (supposed) message start. CR/LF keep-alives (RFC 5626 section 3.5.1) are
 *          skipped silently. When the first line is complete it must look like a SIP start
 *          line, else we go to RESYNC.
 * HEADERS  waiting for the empty line that ends the header block; then Content-Length is read
 *          (full or compact ``l`` name, any case). Missing: counted, taken as 0. Not a number:
 *          counted, the header block is dropped and we go to RESYNC. Too large: counted and the
 *          whole message is skipped without buffering (SKIP), keeping the framing.
 * BODY     waiting until header + body bytes are buffered; then one message is emitted.
 * RESYNC   after junk or a mid-stream join: complete lines are dropped until one looks like a
 *          SIP start line (counted once per episode as ``sip_framing.resync``).
 * SKIP     discarding the rest of an over-sized message.
 *
 * Every search remembers where it stopped (``scan``), so a message arriving one byte at a time
 * costs linear, not quadratic, time. When nothing is buffered the incoming segment is framed in
 * place: messages it holds whole are emitted from the segment itself, and only an unfinished
 * tail is copied into the buffer.
 *
 * Start line (the sniff): ``token SP 1*(not SP/CR/LF) SP SIP/2.0 [CR] LF`` (the version is
 * case-insensitive, RFC 3261 section 7.1) or ``SIP/2.0 SP [1-9]DIGIT DIGIT`` followed by SP, CR,
 * LF or the end of the bytes.
 */
#include "so_sip.h"

enum { F_LINE = 0, F_HEADERS, F_BODY, F_RESYNC, F_SKIP };

typedef struct sip_framer {
    so_buf buf;
    uint32_t state;
    size_t scan;   /* offset in buf where the current search resumes */
    uint64_t need; /* BODY: whole message length; SKIP: bytes still to drop */
} sip_framer;

#define CL_MISSING (-1)
#define CL_BAD (-2)

static inline bool is_version(const uint8_t *p) { /* [Ss][Ii][Pp]/2\.0, 7 bytes available */
    return (p[0] | 0x20) == 's' && (p[1] | 0x20) == 'i' && (p[2] | 0x20) == 'p' && p[3] == '/' &&
           p[4] == '2' && p[5] == '.' && p[6] == '0';
}

/* Whether b[pos:endpos] starts with a SIP request or status line. */
static bool start_line_at(const uint8_t *b, size_t pos, size_t endpos) {
    size_t i = pos;
    /* status line */
    if (endpos - pos >= 11 && is_version(b + i) && b[i + 7] == ' ' && b[i + 8] >= '1' &&
        b[i + 8] <= '9' && b[i + 9] >= '0' && b[i + 9] <= '9' && b[i + 10] >= '0' &&
        b[i + 10] <= '9') {
        if (i + 11 == endpos)
            return true;
        uint8_t c = b[i + 11];
        if (c == ' ' || c == '\r' || c == '\n')
            return true;
    }
    /* request line: token SP uri SP version [CR] LF */
    while (i < endpos && so_is_token_char(b[i]))
        i++;
    if (i == pos || i >= endpos || b[i] != ' ')
        return false;
    size_t u = ++i;
    while (i < endpos && b[i] != ' ' && b[i] != '\r' && b[i] != '\n')
        i++;
    if (i == u || i >= endpos || b[i] != ' ')
        return false;
    i++;
    if (endpos - i < 8 || !is_version(b + i))
        return false;
    i += 7;
    if (b[i] == '\n')
        return true;
    return b[i] == '\r' && i + 1 < endpos && b[i + 1] == '\n';
}

bool so_looks_like_sip(const uint8_t *p, size_t n) { return start_line_at(p, 0, n); }

static inline bool py_space(uint8_t c) { /* bytes.strip() */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c;
}

static long find_byte(const uint8_t *b, size_t from, size_t to, uint8_t c) {
    if (from >= to)
        return -1;
    const uint8_t *hit = (const uint8_t *)memchr(b + from, c, to - from);
    return hit ? (long)(hit - b) : -1;
}

/* First occurrence of s[0:k] wholly inside b[from:to], or -1. The needles are short and start
 * with LF: memchr to each candidate beats a general memmem here. */
static long find_str(const uint8_t *b, size_t from, size_t to, const char *s, size_t k) {
    while (from < to && to - from >= k) {
        const uint8_t *hit = (const uint8_t *)memchr(b + from, (uint8_t)s[0], to - from - k + 1);
        if (!hit)
            return -1;
        size_t j = 1;
        while (j < k && hit[j] == (uint8_t)s[j])
            j++;
        if (j == k)
            return (long)(hit - b);
        from = (size_t)(hit - b) + 1;
    }
    return -1;
}

static bool ieq(const uint8_t *p, const char *lower, size_t k) {
    for (size_t i = 0; i < k; i++)
        if (so_ascii_lower(p[i]) != (uint8_t)lower[i])
            return false;
    return true;
}

/* Content-Length of the header block b[start:hend] (len: the whole buffer); CL_MISSING or
 * CL_BAD. The canonical spelling is looked up first, then any case, the compact form and
 * blanks before the colon. */
static int64_t content_length(const uint8_t *b, size_t len, size_t start, size_t hend) {
    size_t vs = 0, ve = 0;
    long k = find_str(b, start, hend, "\nContent-Length:", 16);
    if (k >= 0) {
        vs = (size_t)k + 16;
        long e = find_byte(b, vs, hend, '\n');
        ve = e >= 0 ? (size_t)e : len - 1; /* (unreachable: the block ends with LF) */
    } else {
        bool found = false;
        for (long q = find_byte(b, start, hend, '\n'); q >= 0; q = find_byte(b, (size_t)q + 1, hend, '\n')) {
            size_t p = (size_t)q + 1;
            if (hend - p >= 14 && ieq(b + p, "content-length", 14))
                p += 14;
            else if (hend - p >= 1 && (b[p] | 0x20) == 'l')
                p += 1;
            else
                continue;
            while (p < hend && (b[p] == ' ' || b[p] == '\t'))
                p++;
            if (p >= hend || b[p] != ':')
                continue;
            p++;
            while (p < hend && (b[p] == ' ' || b[p] == '\t'))
                p++;
            vs = ve = p;
            while (ve < hend && b[ve] != '\r' && b[ve] != '\n')
                ve++;
            found = true;
            break;
        }
        if (!found)
            return CL_MISSING;
    }
    if (ve < vs)
        ve = vs;
    while (vs < ve && py_space(b[vs]))
        vs++;
    while (ve > vs && py_space(b[ve - 1]))
        ve--;
    if (vs == ve || ve - vs > 10)
        return CL_BAD;
    int64_t v = 0;
    for (size_t i = vs; i < ve; i++) {
        if (b[i] < '0' || b[i] > '9')
            return CL_BAD;
        v = v * 10 + (b[i] - '0');
    }
    return v;
}

/* Frame b[0:n] from offset 0; returns how many bytes were consumed. */
static size_t run(sip_framer *f, const uint8_t *b, size_t n, const so_framer_env *env) {
    size_t pos = 0, scan = f->scan;
    uint32_t state = f->state;
    uint64_t need = f->need;
    uint64_t limit = env->max_message;
    uint64_t *reasons = env->reasons;
    for (;;) {
        if (state == F_BODY) {
            if (pos + need > n)
                break;
            env->emit(env->emit_ctx, b + pos, (uint32_t)need);
            pos = scan = pos + (size_t)need;
            state = F_LINE;
        } else if (state == F_LINE) {
            while (pos < n && (b[pos] == '\r' || b[pos] == '\n'))
                pos++;
            if (pos >= n) {
                scan = pos;
                break;
            }
            long nl = find_byte(b, SO_MAX(scan, pos), n, '\n');
            if (nl < 0) {
                if (n - pos > limit) {
                    reasons[SO_R_SIP_FRAMING_TOO_LARGE]++;
                    pos = scan = n;
                    state = F_RESYNC;
                } else {
                    scan = n;
                }
                break;
            }
            if (!start_line_at(b, pos, (size_t)nl + 1)) {
                reasons[SO_R_SIP_FRAMING_RESYNC]++;
                state = F_RESYNC;
                scan = pos;
            } else {
                state = F_HEADERS;
                scan = (size_t)nl;
            }
        } else if (state == F_HEADERS) {
            size_t hend;
            long i = find_str(b, scan, n, "\n\r\n", 3);
            if (i >= 0) {
                long j = find_str(b, scan, (size_t)i + 2, "\n\n", 2);
                hend = j >= 0 ? (size_t)j + 2 : (size_t)i + 3;
            } else {
                long j = find_str(b, scan, n, "\n\n", 2);
                if (j < 0) {
                    if (n - pos > limit) {
                        reasons[SO_R_SIP_FRAMING_TOO_LARGE]++;
                        pos = scan = n;
                        state = F_RESYNC;
                    } else if (n >= 2) {
                        scan = SO_MAX(scan, n - 2);
                    }
                    break;
                }
                hend = (size_t)j + 2;
            }
            int64_t clen = content_length(b, n, pos, hend);
            if (clen == CL_MISSING) {
                reasons[SO_R_SIP_FRAMING_MISSING_CONTENT_LENGTH]++;
                clen = 0;
            } else if (clen == CL_BAD) {
                reasons[SO_R_SIP_FRAMING_BAD_CONTENT_LENGTH]++;
                pos = scan = hend;
                state = F_RESYNC;
                continue;
            }
            need = (uint64_t)(hend - pos) + (uint64_t)clen;
            if (need > limit) {
                reasons[SO_R_SIP_FRAMING_TOO_LARGE]++;
                state = F_SKIP;
            } else {
                state = F_BODY;
            }
        } else if (state == F_RESYNC) {
            size_t from = SO_MAX(scan, pos);
            long last = -1;
            for (size_t q = n; q > from; q--)
                if (b[q - 1] == '\n') {
                    last = (long)q - 1;
                    break;
                }
            if (last < 0) {
                if (n - pos > limit) /* one endless line: drop it */
                    pos = n;
                scan = n;
                break;
            }
            size_t lend = (size_t)last + 1;
            long m = -1;
            for (size_t q = pos; q < lend; q++) {
                if ((q == 0 || b[q - 1] == '\n') && start_line_at(b, q, lend)) {
                    m = (long)q;
                    break;
                }
                /* jump to the next line start */
                long nl = find_byte(b, q, lend, '\n');
                if (nl < 0)
                    break;
                q = (size_t)nl; /* loop increment moves past the LF */
            }
            if (m < 0) {
                pos = scan = lend;
                continue;
            }
            pos = scan = (size_t)m;
            state = F_LINE;
        } else { /* F_SKIP */
            uint64_t take = SO_MIN(need, (uint64_t)(n - pos));
            pos += (size_t)take;
            need -= take;
            scan = pos;
            if (need)
                break;
            state = F_LINE;
        }
    }
    f->state = state;
    f->scan = scan;
    f->need = need;
    return pos;
}

static void fr_init(void *st) { memset(st, 0, sizeof(sip_framer)); }

static void fr_reset(void *st) {
    sip_framer *f = (sip_framer *)st;
    so_buf_free(&f->buf);
    f->state = F_LINE;
    f->scan = 0;
    f->need = 0;
}

static void fr_feed(void *st, const uint8_t *data, size_t n, const so_framer_env *env) {
    sip_framer *f = (sip_framer *)st;
    if (n == 0)
        return;
    size_t pos;
    if (f->buf.n) {
        if (!so_buf_append(&f->buf, data, n)) {
            env->reasons[SO_R_INTERNAL_NO_MEMORY]++;
            fr_reset(f);
            return;
        }
        pos = run(f, f->buf.p, f->buf.n, env);
        so_buf_consume(&f->buf, pos);
        if (!f->buf.n && f->buf.cap > 4096)
            so_buf_free(&f->buf); /* an idle flow keeps no large buffer (memory budget) */
    } else {
        pos = run(f, data, n, env);
        if (pos < n && !so_buf_append(&f->buf, data + pos, n - pos)) {
            env->reasons[SO_R_INTERNAL_NO_MEMORY]++;
            fr_reset(f);
            return;
        }
    }
    f->scan = f->scan > pos ? f->scan - pos : 0;
}

static void fr_close(void *st, const so_framer_env *env) {
    sip_framer *f = (sip_framer *)st;
    bool unfinished = f->state == F_BODY || f->state == F_HEADERS || f->state == F_SKIP;
    if (!unfinished && f->state == F_LINE)
        for (size_t i = 0; i < f->buf.n && !unfinished; i++)
            unfinished = f->buf.p[i] != '\r' && f->buf.p[i] != '\n';
    if (unfinished)
        env->reasons[SO_R_SIP_FRAMING_INCOMPLETE]++;
    fr_reset(f);
}

static void fr_destroy(void *st) { so_buf_free(&((sip_framer *)st)->buf); }

static size_t fr_pending(const void *st) { return ((const sip_framer *)st)->buf.n; }

static size_t fr_footprint(const void *st) { return ((const sip_framer *)st)->buf.cap; }

const so_framer_ops so_sip_framer_ops = {
    .state_size = sizeof(sip_framer),
    .init = fr_init,
    .feed = fr_feed,
    .reset = fr_reset,
    .close = fr_close,
    .destroy = fr_destroy,
    .pending = fr_pending,
    .footprint = fr_footprint,
};
