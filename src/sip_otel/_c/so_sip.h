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

/* ---- Scratch -----------------------------------------------------------------------------
 * A bounded bump area for values the wire does not hold as-is (unfolded lines, joined values,
 * case-mapped copies). so_scratch_take returns NULL rather than overflow. */
typedef struct so_scratch {
    uint8_t *p;
    size_t n, cap;
} so_scratch;

static inline uint8_t *so_scratch_take(so_scratch *s, size_t k) {
    if (k > s->cap - s->n)
        return NULL;
    uint8_t *r = s->p + s->n;
    s->n += k;
    return r;
}

/* ---- Python str rules and short scans over header bytes -----------------------------------
 * (so_common.h has the white space set; these add what the grammar needs on top, inline.) */

/* Bytes of the character at p[0:n] as Python's UTF-8 decoder with errors="replace" reads it:
 * a well-formed sequence, or one maximal subpart of an ill-formed one (one U+FFFD). 0 if n == 0.
 * Character counts and character slices (len(s), s[:k]) of decoded header text use it. */
size_t so_py_char_bytes(const uint8_t *p, size_t n);

/* Bytes that may start Python white space: 1 ASCII white space, 2 the lead byte of a non-ASCII
 * white space code point (so_py_space_at decides). */
extern const uint8_t so_py_space_start[256];

/* a[0:n] == b[0:n], inline (names and keys are short: no call, 8 bytes at a time). */
static inline bool so_bytes_eq(const uint8_t *a, const char *b, size_t n) {
    uint64_t x, y;
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return false;
    }
    for (; n; a++, b++, n--)
        if (*a != (uint8_t)*b)
            return false;
    return true;
}

/* Index of the first byte in p[i:n] that is not in 0x21..0x7E (so may be, or start, Python
 * white space), or n: 8 bytes at a time (a byte b fails when b - 0x21 borrows or b >= 0x80,
 * or is DEL: harmless, it is checked one by one after). */
static inline size_t so_skip_printable(const uint8_t *p, size_t i, size_t n) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (((x - 0x21 * ones) | x) & highs)
            break;
        i += 8;
    }
    while (i < n && p[i] >= 0x21 && p[i] < 0x7F)
        i++;
    return i;
}

/* memchr for the short spans of a header (a name, a parameter, a line): 8 bytes at a time
 * inline, no call. Returns the index of the first c in p[i:n], or n. */
static inline size_t so_find_byte(const uint8_t *p, size_t i, size_t n, uint8_t c) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const uint64_t pat = ones * c;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        x ^= pat; /* a zero byte where c is */
        uint64_t hit = (x - ones) & ~x & highs; /* lowest set bit: the first zero byte */
        if (hit)
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
        i += 8;
    }
#endif
    while (i < n && p[i] != c)
        i++;
    return i;
}

/* so_py_strip (str.strip()): ASCII white space inline, non-ASCII ends by so_py_strip. */
static inline __attribute__((always_inline)) so_slice so_strip(so_slice s) {
    while (s.n && so_py_space_start[s.p[0]] == 1)
        s.p++, s.n--;
    while (s.n && s.p[s.n - 1] < 0x80 && so_py_ascii_space(s.p[s.n - 1]))
        s.n--;
    if (s.n && (so_py_space_start[s.p[0]] == 2 || s.p[s.n - 1] >= 0x80))
        return so_py_strip(s);
    return s;
}

/* ---- Header names (RFC 3261 §7.3.3, §20; compact forms from the IANA registry) -------------
 * Codes of the headers whose values the parser keeps (0: known but not needed). The two
 * headers whose every value is kept come first (code > SO_H_REASON: first occurrence wins). */
typedef enum so_hcode {
    SO_H_IGNORED = 0,
    SO_H_VIA,
    SO_H_REASON,
    SO_H_FROM,
    SO_H_TO,
    SO_H_CALL_ID,
    SO_H_CSEQ,
    SO_H_CONTACT,
    SO_H_CONTENT_LENGTH,
    SO_H_CONTENT_TYPE,
    SO_H_SESSION_EXPIRES,
    SO_H_MIN_SE,
    SO_H_EXPIRES,
    SO_H_RETRY_AFTER,
    SO_H_USER_AGENT,
    SO_H_SERVER,
    SO_H_SESSION_ID,  /* RFC 7989 */
    SO_H_CORRELATION, /* the configured correlation header (so_parser_set_correlation) */
    SO_N_HCODES
} so_hcode;

/* A known header name: canonical spelling, one more exact-case spelling (or NULL), length,
 * code. The table is sorted by name length. */
typedef struct so_header_name {
    const char *name;
    const char *alt;
    uint8_t len;
    uint8_t code;
} so_header_name;

extern const so_header_name so_header_names[];
extern const size_t so_n_header_names;
/* Compact form letter - 'a' -> canonical name (NULL: not a compact form). */
extern const char *const so_compact_forms[26];

/* Index in so_header_names of a header name (ASCII case-insensitive, compact letters
 * included), or -1. ``*exact`` (may be NULL) tells whether the bytes are one of the spellings
 * of the exact-case table: canonical, lower-case, ``alt``, or a compact letter in either case
 * (such a name is recognised even without a colon after it). */
int so_header_lookup(const uint8_t *p, size_t n, bool *exact);
/* so_header_names[so_header_lookup(p, n)].code, SO_H_IGNORED for unknown names: the question a
 * "name: value" line asks, answered by comparing with the few kept names of that length (two
 * masked words each), without a lookup. */
unsigned so_header_code(const uint8_t *p, size_t n);

/* ---- Value grammars ---------------------------------------------------------------------
 * Leniency: values are read the way a passive monitor needs them (find the URI, the tag, the
 * branch), not validated against the full ABNF. Inputs are raw values (leading SP, trailing
 * CR); output slices point into the input or into ``sc``. */

/* Non-negative decimal: 1 to 10 ASCII digits, nothing else. */
bool so_uint(so_slice s, int64_t *out);

/* Offset just past the quoted-string starting at p[i] == '"' (n if unterminated; a
 * backslash escapes the byte after it). */
size_t so_skip_quoted(const uint8_t *p, size_t n, size_t i);

/* Offset of the comma that ends the value starting at ``i`` (v.n if none): commas inside
 * quoted strings and <...> (unterminated ones run to the end) do not separate values. */
size_t so_value_end(so_slice v, size_t i);
uint32_t so_count_values(so_slice v);
so_slice so_first_value(so_slice v);
uint32_t so_count_values_first(so_slice v, so_slice *first); /* both in one pass */

/* Value of ``;name=value`` in a parameter string (``name``: lower-case ASCII): true with
 * ``*out`` (stripped; empty for ``;name``) or false if absent. The first exact ``;name=`` wins;
 * else the first item whose stripped name matches case-insensitively (SWS around ';' '='). */
bool so_param(so_slice params, const char *name, size_t name_len, so_slice *out);

/* From/To/Contact value -> URI (stripped) and header parameters (from the ';' after '>', or
 * after the URI of an addr-spec, RFC 3261 §20.10). */
void so_name_addr(so_slice v, so_slice *uri, so_slice *params);
/* so_name_addr, then the tag parameter ("" when absent). */
void so_uri_tag(so_slice v, so_slice *uri, so_slice *tag);

/* One via-parm: ``SIP / 2.0 / transport sent-by *(;param)`` (RFC 3261 §20.42, LWS allowed
 * around the slashes; sent-by parts split by LWS are joined in ``sc``). No case mapping here. */
typedef struct so_via {
    so_slice transport, sent_by, branch;
} so_via;
/* 1: read; 0: unreadable; -1: ``sc`` too small (needs at most v.n bytes). */
int so_parse_via(so_slice v, so_via *via, so_scratch *sc);

/* CSeq: ``number method`` with number < 2**31 and method a token (RFC 3261 §8.1.1.5, §20.16). */
bool so_parse_cseq(so_slice v, int64_t *num, so_slice *method);

/* Request-Line or Status-Line (without its line end): 0 or the fatal so_reason code. */
typedef struct so_start_line {
    bool is_request;
    uint16_t status;
    so_slice method, reason_phrase, request_uri;
} so_start_line;
int so_parse_start_line(so_slice line, so_start_line *out);

/* ---- The message parser ------------------------------------------------------------------ */

typedef struct so_parser so_parser; /* scratch space for values the wire does not hold as-is */

so_parser *so_parser_new(void);
void so_parser_free(so_parser *parser);
/* Keep the first value of the header called ``name`` (ASCII case-insensitive; e.g. "X-CID") as
 * so_msg.correlation. ``n`` 0 turns it off (the default). Names of headers the parser knows are
 * refused (false), as are names longer than SO_SIP_MAX_CORRELATION_NAME or not tokens. */
#define SO_SIP_MAX_CORRELATION_NAME 64
bool so_parser_set_correlation(so_parser *parser, const uint8_t *name, size_t n);

typedef void (*so_msg_fn)(void *ctx, so_msg *msg);

/* All messages in one transport payload, in order, each handed to ``on_msg`` (valid during the
 * call only); problems are counted in ``reasons`` (defects of kept messages included), never
 * returned. A scratch overflow (a bug) counts internal.no_memory and drops the rest. */
void so_parse_payload(so_parser *parser, const so_payload *payload, uint64_t *reasons,
                      so_msg_fn on_msg, void *ctx);

/* The message at data[start:]: 0 with *msg and *end (offset just past its body) set, or the
 * fatal so_reason code (no usable message starts there; never 0, which is a net.* reason).
 * SO_R_INTERNAL_NO_MEMORY if the scratch area would overflow (a bug: it is sized for the
 * header limit). Slices in *msg stay valid until the parser parses its next message. */
int so_parse_message(so_parser *parser, const uint8_t *data, size_t len, size_t start,
                     int64_t ts_ns, const so_payload *origin, so_msg *msg, size_t *end);

/* Whether p[0:n] starts with a SIP request line or status line (the stream framer's and the
 * decoder's sniff). */
bool so_looks_like_sip(const uint8_t *p, size_t n);

/* SIP framing on a reassembled stream (RFC 3261 §18.3): Content-Length. */
extern const so_framer_ops so_sip_framer_ops;

#endif
