/* SPDX-License-Identifier: Apache-2.0
 * SIP over WebSocket (RFC 7118) on a reassembled TCP stream. Sans-IO.
 *
 * The decoder recognises the opening handshake (RFC 6455 section 4) from the first client
 * data of a flow: an HTTP ``GET`` whose header block, in that first segment, has ``Upgrade:
 * websocket`` and ``sip`` among the ``Sec-WebSocket-Protocol`` values (so_ws_is_sip_upgrade).
 * Both directions of the connection then get a WebSocket framer instead of the SIP stream
 * framer, with the same feed/reset/close interface:
 *
 * HANDSHAKE  the HTTP header block is buffered up to its empty line (at most
 *            SO_WS_MAX_HANDSHAKE_BYTES). The server side must answer ``101``; any other status
 *            means the upgrade was refused (``skipped.websocket_refused``).
 * FRAMES     RFC 6455 section 5.2 frames: FIN, RSV, opcode; MASK bit, 7/16/64-bit payload
 *            length, 4-byte masking key. Text and binary frames start a message, continuation
 *            frames extend it, the frame with FIN ends it: each complete non-empty data message
 *            is one SIP message, handed to env->emit. Control frames (close, ping, pong) are
 *            skipped. A message growing past the message limit is skipped frame by frame
 *            without buffering (``sip_framing.too_large``), keeping the framing.
 * DEAD       after a malformed frame (``net.bad_websocket_frame``), a compressed frame
 *            (``skipped.websocket_compressed``: permessage-deflate is not decoded), a refused
 *            upgrade, an over-long handshake, or a TCP gap (frame boundaries are lost): the
 *            rest of the flow is ignored.
 *
 * Closing with a partial message or handshake buffered counts ``sip_framing.incomplete``.
 */
#include "so_net_int.h"

enum { WS_HANDSHAKE = 0, WS_FRAMES = 1, WS_DEAD = 2 };
enum { OP_CONTINUATION = 0, OP_BINARY = 2, OP_CLOSE = 8, OP_PONG = 10 };

void so_ws_init(so_ws *ws, bool response) {
    memset(ws, 0, sizeof(*ws));
    ws->response = response;
    ws->state = WS_HANDSHAKE;
}

static void ws_clear(so_ws *ws) {
    so_buf_free(&ws->buf);
    so_buf_free(&ws->parts);
    ws->scan = 0;
}

static void ws_fail(so_ws *ws, so_reason why, const so_framer_env *env) {
    env->reasons[why]++;
    ws->state = WS_DEAD;
    ws_clear(ws);
}

void so_ws_reset(so_ws *ws) { /* frame boundaries cannot be found again */
    ws->state = WS_DEAD;
    ws_clear(ws);
}

void so_ws_close(so_ws *ws, const so_framer_env *env) {
    if (ws->state != WS_DEAD && (ws->buf.n || ws->in_msg))
        env->reasons[SO_R_SIP_FRAMING_INCOMPLETE]++;
    ws->state = WS_DEAD;
    ws_clear(ws);
}

void so_ws_destroy(so_ws *ws) { ws_clear(ws); }

size_t so_ws_pending(const so_ws *ws) { return ws->buf.n + ws->parts.n; }

size_t so_ws_footprint(const so_ws *ws) { return ws->buf.cap + ws->parts.cap; }

/* Frames in ws->buf; consumed bytes are dropped from its front. */
static void ws_frames(so_ws *ws, const so_framer_env *env) {
    const uint8_t *b = ws->buf.p;
    size_t n = ws->buf.n, pos = 0;
    for (;;) {
        if (ws->skip) {
            uint64_t k = SO_MIN(ws->skip, (uint64_t)(n - pos));
            pos += (size_t)k;
            ws->skip -= k;
            if (ws->skip)
                break;
        }
        if (n - pos < 2)
            break;
        uint8_t b0 = b[pos], b1 = b[pos + 1];
        uint64_t length = b1 & 0x7F;
        size_t h = pos + 2;
        if (length == 126) {
            if (n - pos < 4)
                break;
            length = so_be16(b + h);
            h += 2;
        } else if (length == 127) {
            if (n - pos < 10)
                break;
            length = so_be64(b + h);
            h += 8;
            if (length >> 63) { /* the most significant bit must be 0 */
                ws_fail(ws, SO_R_NET_BAD_WEBSOCKET_FRAME, env);
                return;
            }
        }
        const uint8_t *key = NULL;
        if (b1 & 0x80) {
            if (n - h < 4)
                break;
            key = b + h;
            h += 4;
        }
        bool fin = b0 & 0x80;
        uint32_t opcode = b0 & 0x0F;
        if (b0 & 0x70) {
            /* RSV1 is permessage-deflate's "compressed" bit (RFC 7692); others: no extension. */
            ws_fail(ws, (b0 & 0x70) == 0x40 ? SO_R_SKIPPED_WEBSOCKET_COMPRESSED
                                             : SO_R_NET_BAD_WEBSOCKET_FRAME, env);
            return;
        }
        if (opcode >= OP_CLOSE) {
            if (opcode > OP_PONG || !fin || length > 125) {
                ws_fail(ws, SO_R_NET_BAD_WEBSOCKET_FRAME, env);
                return;
            }
            if (n - h < length)
                break;
            pos = h + (size_t)length;
            continue;
        }
        /* A continuation needs a message in progress, a text/binary frame needs none. */
        if (opcode > OP_BINARY || (opcode == OP_CONTINUATION) != (bool)ws->in_msg) {
            ws_fail(ws, SO_R_NET_BAD_WEBSOCKET_FRAME, env);
            return;
        }
        if (ws->discard || ws->parts.n + length > env->max_message) {
            if (!ws->discard) {
                env->reasons[SO_R_SIP_FRAMING_TOO_LARGE]++;
                ws->discard = 1;
                so_buf_free(&ws->parts);
            }
            pos = h;
            ws->skip = length;
            ws->in_msg = !fin;
            ws->discard = ws->in_msg;
            continue;
        }
        if (n - h < length)
            break;
        size_t len = (size_t)length;
        if (!so_buf_reserve(&ws->parts, len)) {
            env->reasons[SO_R_INTERNAL_NO_MEMORY]++;
            ws->state = WS_DEAD;
            ws_clear(ws);
            return;
        }
        /* An empty frame reserves nothing: ``parts.p`` may still be NULL, and NULL + 0 is
         * undefined behaviour, so no pointer is formed for it. */
        if (len) {
            uint8_t *dst = ws->parts.p + ws->parts.n;
            if (key) {
                for (size_t i = 0; i < len; i++)
                    dst[i] = b[h + i] ^ key[i & 3];
            } else {
                memcpy(dst, b + h, len);
            }
            ws->parts.n += len;
        }
        pos = h + len;
        if (fin) {
            ws->in_msg = 0;
            if (ws->parts.n)
                env->emit(env->emit_ctx, ws->parts.p, (uint32_t)ws->parts.n);
            ws->parts.n = 0;
        } else {
            ws->in_msg = 1;
        }
    }
    so_buf_consume(&ws->buf, pos);
}

void so_ws_feed(so_ws *ws, const uint8_t *data, size_t n, const so_framer_env *env) {
    if (ws->state == WS_DEAD)
        return;
    if (!so_buf_append(&ws->buf, data, n)) {
        env->reasons[SO_R_INTERNAL_NO_MEMORY]++;
        ws->state = WS_DEAD;
        ws_clear(ws);
        return;
    }
    if (ws->state == WS_HANDSHAKE) {
        const uint8_t *b = ws->buf.p;
        size_t len = ws->buf.n;
        long i = so_find(b + ws->scan, len - ws->scan, "\r\n\r\n", 4);
        if (i < 0) {
            if (len > SO_WS_MAX_HANDSHAKE_BYTES)
                ws_fail(ws, SO_R_NET_BAD_WEBSOCKET_HANDSHAKE, env);
            else
                ws->scan = len > 3 ? len - 3 : 0;
            return;
        }
        size_t at = ws->scan + (size_t)i;
        if (ws->response &&
            !(len >= 13 && memcmp(b, "HTTP/1.1 101", 12) == 0 && (b[12] == 0x20 || b[12] == 0x0D))) {
            ws_fail(ws, SO_R_SKIPPED_WEBSOCKET_REFUSED, env);
            return;
        }
        so_buf_consume(&ws->buf, at + 4);
        ws->scan = 0;
        ws->state = WS_FRAMES;
    }
    ws_frames(ws, env);
}

/* ---- handshake detection ------------------------------------------------------------------- */

static inline bool word_char(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ieq_at(const uint8_t *p, size_t avail, const char *lower, size_t k) {
    if (avail < k)
        return false;
    for (size_t i = 0; i < k; i++)
        if (so_ascii_lower(p[i]) != (uint8_t)lower[i])
            return false;
    return true;
}

/* After "\n<name>" at q: blanks, a colon, then the value up to CR, LF or ``end``. */
static bool header_value(const uint8_t *d, size_t q, size_t end, size_t *vs, size_t *ve) {
    while (q < end && (d[q] == ' ' || d[q] == '\t'))
        q++;
    if (q >= end || d[q] != ':')
        return false;
    q++;
    size_t e = q;
    while (e < end && d[e] != '\r' && d[e] != '\n')
        e++;
    *vs = q;
    *ve = e;
    return true;
}

static bool has_websocket_word(const uint8_t *d, size_t vs, size_t ve, size_t end) {
    for (size_t w = vs; w + 9 <= ve; w++) {
        if (!ieq_at(d + w, ve - w, "websocket", 9))
            continue;
        if (word_char(d[w - 1])) /* d[w-1] exists: the colon precedes vs */
            continue;
        if (w + 9 < end && word_char(d[w + 9]))
            continue;
        return true;
    }
    return false;
}

static bool is_ws_space(uint8_t c) { /* bytes.strip(): ASCII whitespace */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c;
}

static bool has_sip_value(const uint8_t *d, size_t vs, size_t ve) {
    size_t a = vs;
    while (a <= ve) {
        size_t b = a;
        while (b < ve && d[b] != ',')
            b++;
        size_t s = a, e = b;
        while (s < e && is_ws_space(d[s]))
            s++;
        while (e > s && is_ws_space(d[e - 1]))
            e--;
        if (e - s == 3 && ieq_at(d + s, 3, "sip", 3))
            return true;
        a = b + 1;
    }
    return false;
}

bool so_ws_is_sip_upgrade(const uint8_t *d, size_t off, size_t end) {
    if (end < off || end - off < 4 || memcmp(d + off, "GET ", 4) != 0)
        return false;
    size_t limit = SO_MIN(end, off + SO_WS_MAX_HANDSHAKE_BYTES);
    long k = so_find(d + off, limit - off, "\r\n\r\n", 4);
    size_t head_end = k < 0 ? limit : off + (size_t)k;
    bool upgrade = false;
    for (size_t q = off; q < head_end && !upgrade; q++) {
        if (d[q] != '\n' || !ieq_at(d + q + 1, head_end - q - 1, "upgrade", 7))
            continue;
        size_t vs, ve;
        if (header_value(d, q + 8, head_end, &vs, &ve))
            upgrade = has_websocket_word(d, vs, ve, head_end);
    }
    if (!upgrade)
        return false;
    for (size_t q = off; q < head_end; q++) {
        if (d[q] != '\n' || !ieq_at(d + q + 1, head_end - q - 1, "sec-websocket-protocol", 22))
            continue;
        size_t vs, ve;
        if (header_value(d, q + 23, head_end, &vs, &ve) && has_sip_value(d, vs, ve))
            return true;
    }
    return false;
}
