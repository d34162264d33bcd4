/* SPDX-License-Identifier: Apache-2.0
 * sip: the SIP grammar (RFC 3261 §7, §20, §25), the message parser and stream framing.
 * Sans-IO: transport payload bytes in, so_msg views out.
 *
 * The grammar lives here once: the token alphabet, header names and compact forms, the
 * value grammars the monitor needs (name-addr, parameters, Via, CSeq, numbers), the start
 * line. The parser (so_parse_*) and the stream framer (so_sip_framer_ops) use it; nothing
 * else parses SIP. Semantics (every reason, limit and leniency) are those of the pure-Python
 * parser this replaced; see docs/architecture.md and the module docstring of sip/parser.py.
 */
#ifndef SO_SIP_H
#define SO_SIP_H

#include "so_framer.h"
#include "so_reasons.h"
#include "so_types.h"

/* Limits against abuse (RFC 3261 §18.1.1 wants UDP requests within ~1300 bytes). */
#define SO_SIP_MAX_HEADER_BYTES (32 * 1024) /* start line + header fields */
#define SO_SIP_MAX_HEADER_LINES 256
#define SO_SIP_MAX_LINE_BYTES (8 * 1024)
#define SO_SIP_DEFAULT_MAX_MESSAGE_BYTES (128 * 1024)

/* RFC 3261 §25.1 token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
extern const uint8_t so_token_chars[256];
static inline bool so_is_token_char(uint8_t c) { return so_token_chars[c] != 0; }
static inline bool so_is_token(const uint8_t *p, size_t n) {
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!so_token_chars[p[i]])
            return false;
    return true;
}

typedef struct so_parser so_parser; /* scratch space for values the wire does not hold as-is */

so_parser *so_parser_new(void);
void so_parser_free(so_parser *parser);

typedef void (*so_msg_fn)(void *ctx, so_msg *msg);

/* All messages in one transport payload, in order, each handed to ``on_msg`` (valid during the
 * call only); problems are counted in ``reasons`` (defects of kept messages included), never
 * returned. */
void so_parse_payload(so_parser *parser, const so_payload *payload, uint64_t *reasons,
                      so_msg_fn on_msg, void *ctx);

/* The message at data[start:]: 0 with *msg and *end (offset just past its body) set, or the
 * fatal so_reason code (no usable message starts there). */
int so_parse_message(so_parser *parser, const uint8_t *data, size_t len, size_t start,
                     int64_t ts_ns, const so_payload *origin, so_msg *msg, size_t *end);

/* Whether p[0:n] starts with a SIP request line or status line (the stream framer's and the
 * decoder's sniff). */
bool so_looks_like_sip(const uint8_t *p, size_t n);

/* SIP framing on a reassembled stream (RFC 3261 §18.3): Content-Length. */
extern const so_framer_ops so_sip_framer_ops;

#endif
