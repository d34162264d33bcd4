/* SPDX-License-Identifier: Apache-2.0
 * The SIP grammar (so_sip.h): token alphabet, value grammars, start lines (header names:
 * so_headers.c).
 *
 * Theory of operation. Every function reads a byte slice with an explicit bound and returns
 * slices into it (or into a caller's scratch area): no allocation, no copy unless a value must
 * be rebuilt (a Via sent-by split by LWS). The semantics are those of the pure-Python grammar
 * this replaced, which ran over the UTF-8-decoded header block with ``str`` methods:
 *   - ``str.strip()``/``str.split()`` whitespace is Python's (so_py_strip, so_py_space_at:
 *     ASCII \t-\r, \x1c-\x1f, SP, and the non-ASCII white space code points);
 *   - ``isdigit() and isascii()``: ASCII digits only, at most 10 of them (so_uint);
 *   - case-insensitive comparisons are ASCII, plus the few non-ASCII code points whose Python
 *     case mapping is ASCII where it can matter (``"ſip/2.0".upper() == "SIP/2.0"``; KELVIN
 *     SIGN lower-cases to "k" in parameter names);
 *   - delimiters are ASCII, and ASCII bytes never occur inside a multi-byte UTF-8 sequence, so
 *     finding them in bytes finds them where Python found them in characters.
 * Invalid UTF-8 is the one input where the two may differ (Python compared the decoded
 * replacement characters).
 */
#include "so_sip.h"

/* RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
#define T1(c) [c] = 1
const uint8_t so_token_chars[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
    T1('-'), T1('.'), T1('!'), T1('%'), T1('*'), T1('_'), T1('+'), T1('`'), T1('\''), T1('~'),
};
#undef T1

/* ---- small helpers ----------------------------------------------------------------------- */

static inline so_slice sub(so_slice s, size_t a, size_t b) { /* s[a:b], a <= b <= s.n */
    return so_slice_of(s.p + a, b - a);
}

static inline long find_byte(so_slice s, size_t from, uint8_t c) { /* s.find(c, from) */
    if (from >= s.n)
        return -1;
    size_t i = so_find_byte(s.p, from, s.n, c);
    return i < s.n ? (long)i : -1;
}

/* Whether Python's ``s.upper()`` equals ``lit`` (upper-case ASCII). Besides ASCII, only these
 * code points upper-case to ASCII only: U+00DF "SS", U+0131 "I", U+017F "S", U+FB00-U+FB06
 * ("FF", "FI", "FL", "FFI", "FFL", "ST", "ST"); every other one keeps a non-ASCII character. */
static bool py_upper_is(so_slice s, const char *lit) {
    size_t m = strlen(lit), j = 0, i = 0;
    while (i < s.n) {
        uint8_t c = s.p[i];
        const char *up;
        size_t k;
        if (c < 0x80) {
            if (j >= m || so_ascii_upper(c) != (uint8_t)lit[j])
                return false;
            i++, j++;
            continue;
        }
        if (c == 0xC3 && i + 1 < s.n && s.p[i + 1] == 0x9F)
            up = "SS", k = 2;
        else if (c == 0xC4 && i + 1 < s.n && s.p[i + 1] == 0xB1)
            up = "I", k = 2;
        else if (c == 0xC5 && i + 1 < s.n && s.p[i + 1] == 0xBF)
            up = "S", k = 2;
        else if (c == 0xEF && i + 2 < s.n && s.p[i + 1] == 0xAC && s.p[i + 2] <= 0x86) {
            static const char *const lig[7] = {"FF", "FI", "FL", "FFI", "FFL", "ST", "ST"};
            if (s.p[i + 2] < 0x80)
                return false;
            up = lig[s.p[i + 2] - 0x80], k = 3;
        } else
            return false;
        size_t u = strlen(up);
        if (m - j < u || memcmp(lit + j, up, u) != 0)
            return false;
        i += k, j += u;
    }
    return j == m;
}

size_t so_py_char_bytes(const uint8_t *p, size_t n) {
    if (n == 0)
        return 0;
    uint8_t c = p[0];
    if (c < 0xC2 || c > 0xF4) /* ASCII, or a byte that starts nothing: one character */
        return 1;
    size_t more = c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3, i = 1;
    uint8_t lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    for (size_t k = 0; k < more && i < n; k++, i++) {
        uint8_t d = p[i];
        if (k == 0 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF))
            break; /* the subpart so far is one U+FFFD; d starts the next character */
    }
    return i;
}

/* s[:k] of the decoded string, in bytes. */
static so_slice py_prefix_chars(so_slice s, size_t k) {
    size_t i = 0;
    for (size_t chars = 0; chars < k && i < s.n; chars++)
        i += so_py_char_bytes(s.p + i, s.n - i);
    return sub(s, 0, i);
}

const uint8_t so_py_space_start[256] = {
    ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [0x1c] = 1, [0x1d] = 1,
    [0x1e] = 1, [0x1f] = 1, [' '] = 1, [0xC2] = 2, [0xE1] = 2, [0xE2] = 2, [0xE3] = 2,
};

/* str.split() iteration: the next word of s at or after *i; false at the end. */
static bool py_next_word(so_slice s, size_t *i, so_slice *w) {
    size_t j = *i, k;
    while (j < s.n && so_py_space_start[s.p[j]]) {
        if (so_py_space_start[s.p[j]] == 1)
            k = 1;
        else if ((k = so_py_space_at(s.p + j, s.n - j)) == 0)
            break;
        j += k;
    }
    if (j >= s.n) {
        *i = j;
        return false;
    }
    size_t b = j;
    while ((j = so_skip_printable(s.p, j, s.n)) < s.n) {
        uint8_t c = so_py_space_start[s.p[j]];
        if (c && (c == 1 || so_py_space_at(s.p + j, s.n - j) != 0))
            break;
        j++;
    }
    *w = sub(s, b, j);
    *i = j;
    return true;
}

/* Python ``key.lower() == name`` for an ASCII lower-case ``name``: ASCII case folding, and
 * U+212A KELVIN SIGN, whose lower case is "k". */
static bool py_lower_is(so_slice key, const char *name, size_t n) {
    size_t i = 0, j = 0;
    while (i < key.n && j < n) {
        uint8_t c = key.p[i];
        if (c == 0xE2 && i + 2 < key.n && key.p[i + 1] == 0x84 && key.p[i + 2] == 0xAA) {
            if (name[j] != 'k')
                return false;
            i += 3, j++;
            continue;
        }
        if (so_ascii_lower(c) != (uint8_t)name[j])
            return false;
        i++, j++;
    }
    return i == key.n && j == n;
}

/* ---- numbers, quoting, value lists ------------------------------------------------------- */

bool so_uint(so_slice s, int64_t *out) {
    if (s.n == 0 || s.n > 10) /* bounds CSeq/Content-Length-sized numbers: < 2**34 */
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

size_t so_skip_quoted(const uint8_t *p, size_t n, size_t i) {
    for (i++; i < n; i++) {
        if (p[i] == '"')
            return i + 1;
        if (p[i] == '\\') {
            if (i + 1 >= n)
                return n;
            i++; /* quoted-pair: the next byte is taken as is */
        }
    }
    return n;
}

size_t so_value_end(so_slice v, size_t i) {
    while (i < v.n) {
        uint8_t c = v.p[i];
        if (c == ',')
            return i;
        if (c == '"') {
            i = so_skip_quoted(v.p, v.n, i);
        } else if (c == '<') {
            long gt = find_byte(v, i + 1, '>');
            i = gt < 0 ? v.n : (size_t)gt + 1;
        } else {
            i++;
        }
    }
    return v.n;
}

static inline bool has_spans(so_slice v) { /* a quoted string or <...> may hide commas */
    return v.n && (memchr(v.p, '"', v.n) || memchr(v.p, '<', v.n));
}

uint32_t so_count_values_first(so_slice v, so_slice *first) {
    uint32_t count = 1;
    if (!has_spans(v)) {
        long i = find_byte(v, 0, ',');
        *first = i < 0 ? v : sub(v, 0, (size_t)i);
        for (; i >= 0; i = find_byte(v, (size_t)i + 1, ','))
            count++;
        return count;
    }
    size_t i = so_value_end(v, 0);
    *first = sub(v, 0, i);
    while (i < v.n) {
        count++;
        i = so_value_end(v, i + 1);
    }
    return count;
}

uint32_t so_count_values(so_slice v) {
    so_slice first;
    return so_count_values_first(v, &first);
}

so_slice so_first_value(so_slice v) {
    if (!has_spans(v)) {
        long i = find_byte(v, 0, ',');
        return i < 0 ? v : sub(v, 0, (size_t)i);
    }
    return sub(v, 0, so_value_end(v, 0));
}

/* ---- parameters, name-addr --------------------------------------------------------------- */

bool so_param(so_slice params, const char *name, size_t k, so_slice *out) {
    /* Fast: the first ";name=" as written (lower-case). */
    long semi = find_byte(params, 0, ';');
    for (long s = semi; s >= 0; s = find_byte(params, (size_t)s + 1, ';')) {
        size_t a = (size_t)s + 1;
        if (params.n - a > k && so_bytes_eq(params.p + a, name, k) && params.p[a + k] == '=') {
            a += k + 1;
            long end = find_byte(params, a, ';');
            *out = so_strip(sub(params, a, end < 0 ? params.n : (size_t)end));
            return true;
        }
    }
    /* Slow: items after each ';', "name = value" in any case. */
    for (long s = semi; s >= 0;) {
        long next = find_byte(params, (size_t)s + 1, ';');
        so_slice item = sub(params, (size_t)s + 1, next < 0 ? params.n : (size_t)next);
        long eq = find_byte(item, 0, '=');
        so_slice key = so_strip(eq < 0 ? item : sub(item, 0, (size_t)eq));
        if (py_lower_is(key, name, k)) {
            *out = eq < 0 ? sub(item, item.n, item.n) : so_strip(sub(item, (size_t)eq + 1, item.n));
            return true;
        }
        s = next;
    }
    return false;
}

void so_name_addr(so_slice v, so_slice *uri, so_slice *params) {
    long lt = find_byte(v, 0, '<');
    if (lt >= 0) {
        long q = find_byte(sub(v, 0, (size_t)lt), 0, '"');
        if (q >= 0) { /* a '<' may sit inside the quoted display name (if it is terminated) */
            long after = find_byte(v, so_skip_quoted(v.p, v.n, (size_t)q), '<');
            if (after >= 0)
                lt = after;
        }
        long gt = find_byte(v, (size_t)lt, '>');
        if (gt < 0) {
            *uri = so_strip(sub(v, (size_t)lt + 1, v.n));
            *params = sub(v, v.n, v.n);
        } else {
            *uri = so_strip(sub(v, (size_t)lt + 1, (size_t)gt));
            *params = sub(v, (size_t)gt + 1, v.n);
        }
        return;
    }
    long semi = find_byte(v, 0, ';');
    if (semi < 0) {
        *uri = so_strip(v);
        *params = sub(v, v.n, v.n);
    } else {
        *uri = so_strip(sub(v, 0, (size_t)semi));
        *params = sub(v, (size_t)semi, v.n);
    }
}

void so_uri_tag(so_slice v, so_slice *uri, so_slice *tag) {
    so_slice params;
    so_name_addr(v, uri, &params);
    if (!so_param(params, "tag", 3, tag))
        *tag = sub(params, params.n, params.n);
}

/* ---- Via, CSeq --------------------------------------------------------------------------- */

int so_parse_via(so_slice v, so_via *via, so_scratch *sc) {
    long semi = find_byte(v, 0, ';');
    so_slice head = semi < 0 ? v : sub(v, 0, (size_t)semi);
    so_slice w0, w1, w;
    size_t i = 0;
    int words = 0;
    if (py_next_word(head, &i, &w0)) {
        words = 1;
        if (py_next_word(head, &i, &w1))
            words = py_next_word(head, &i, &w) ? 3 : 2;
    }
    if (words == 2 && w0.n >= 8 && memcmp(w0.p, "SIP/2.0/", 8) == 0) {
        /* as usually written: "SIP/2.0/UDP host:port" */
        via->transport = sub(w0, 8, w0.n);
        via->sent_by = w1;
    } else { /* odd case or LWS: the word after the second '/', then every other word joined */
        long s1 = find_byte(head, 0, '/');
        long s2 = s1 >= 0 ? find_byte(head, (size_t)s1 + 1, '/') : -1;
        if (s2 < 0)
            return 0;
        so_slice rest = sub(head, (size_t)s2 + 1, head.n);
        i = 0;
        if (!py_next_word(rest, &i, &via->transport) || !py_next_word(rest, &i, &w1))
            return 0;
        size_t total = 0;
        if (!py_next_word(rest, &i, &w)) {
            via->sent_by = w1; /* one part: no copy */
        } else {               /* "host : port" -> "host:port" */
            for (i = (size_t)(w1.p - rest.p); py_next_word(rest, &i, &w);)
                total += w.n;
            uint8_t *out = so_scratch_take(sc, total);
            if (!out)
                return -1;
            size_t n = 0;
            for (i = (size_t)(w1.p - rest.p); py_next_word(rest, &i, &w); n += w.n)
                memcpy(out + n, w.p, w.n);
            via->sent_by = so_slice_of(out, n);
        }
    }
    if (semi < 0 || !so_param(sub(v, (size_t)semi, v.n), "branch", 6, &via->branch))
        via->branch = sub(v, v.n, v.n);
    return 1;
}

bool so_parse_cseq(so_slice v, int64_t *num, so_slice *method) {
    so_slice w0, w1, w2;
    size_t i = 0;
    int64_t n;
    if (!py_next_word(v, &i, &w0) || !py_next_word(v, &i, &w1) || py_next_word(v, &i, &w2))
        return false;
    if (!so_uint(w0, &n) || !so_is_token(w1.p, w1.n) || n >= ((int64_t)1 << 31))
        return false; /* RFC 3261 §8.1.1.5: less than 2**31 */
    *num = n;
    *method = w1;
    return true;
}

/* ---- start line (RFC 3261 §7.1, §7.2) ---------------------------------------------------- */

static bool is_digits3(so_slice s, size_t at) {
    return s.n >= at + 3 && s.p[at] >= '0' && s.p[at] <= '9' && s.p[at + 1] >= '0' &&
           s.p[at + 1] <= '9' && s.p[at + 2] >= '0' && s.p[at + 2] <= '9';
}

static uint16_t digits3(const uint8_t *p) {
    return (uint16_t)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
}

static bool is_version(so_slice s) { /* == "SIP/2.0", or so in upper case */
    return so_slice_eq(s, "SIP/2.0") || py_upper_is(s, "SIP/2.0");
}

static int response(so_slice line, size_t at, so_start_line *out) {
    /* status code at line[at:at+3], then "" or " " and the phrase */
    if (!is_digits3(line, at))
        return SO_R_SIP_BAD_STATUS_CODE;
    uint16_t status = digits3(line.p + at);
    if (status < 100 || status > 699 || (line.n > at + 3 && line.p[at + 3] != ' '))
        return SO_R_SIP_BAD_STATUS_CODE;
    out->is_request = false;
    out->status = status;
    out->reason_phrase = so_strip(sub(line, SO_MIN(line.n, at + 4), line.n));
    return 0;
}

int so_parse_start_line(so_slice line, so_start_line *out) {
    memset(out, 0, sizeof(*out));
    /* Fast path: "SIP/2.0 NNN phrase". */
    if (line.n >= 8 && memcmp(line.p, "SIP/2.0 ", 8) == 0 && response(line, 8, out) == 0)
        return 0;
    /* Fast path: "METHOD URI SIP/2.0" (exactly two spaces). */
    long sp1 = find_byte(line, 0, ' ');
    if (sp1 >= 0) {
        long sp2 = find_byte(line, (size_t)sp1 + 1, ' ');
        if (sp2 > sp1 + 1 && find_byte(line, (size_t)sp2 + 1, ' ') < 0 &&
            so_slice_eq(sub(line, (size_t)sp2 + 1, line.n), "SIP/2.0") &&
            so_is_token(line.p, (size_t)sp1)) {
            out->is_request = true;
            out->method = sub(line, 0, (size_t)sp1);
            out->request_uri = sub(line, (size_t)sp1 + 1, (size_t)sp2);
            return 0;
        }
    }
    line = so_rstrip_chars(line, " \t"); /* lenient: trailing blanks after version / phrase */
    if (py_upper_is(py_prefix_chars(line, 4), "SIP/")) {
        long sp = find_byte(line, 0, ' ');
        so_slice version = sp < 0 ? line : sub(line, 0, (size_t)sp);
        if (!is_version(version))
            return SO_R_SIP_BAD_VERSION;
        so_slice rest = sp < 0 ? sub(line, line.n, line.n) : sub(line, (size_t)sp + 1, line.n);
        while (rest.n && rest.p[0] == ' ')
            rest.p++, rest.n--;
        return response(rest, 0, out);
    }
    long first = find_byte(line, 0, ' ');
    long last = -1;
    for (size_t i = line.n; i-- > 0;)
        if (line.p[i] == ' ') {
            last = (long)i;
            break;
        }
    if (first < 0 || last == first)
        return SO_R_SIP_BAD_START_LINE;
    so_slice version = sub(line, (size_t)last + 1, line.n);
    if (!is_version(version))
        return py_upper_is(py_prefix_chars(version, 4), "SIP/") ? SO_R_SIP_BAD_VERSION
                                                                 : SO_R_SIP_BAD_START_LINE;
    if (!so_is_token(line.p, (size_t)first))
        return SO_R_SIP_BAD_METHOD;
    so_slice uri = so_strip(sub(line, (size_t)first + 1, (size_t)last));
    if (uri.n == 0)
        return SO_R_SIP_BAD_START_LINE;
    out->is_request = true;
    out->method = sub(line, 0, (size_t)first);
    out->request_uri = uri;
    return 0;
}
