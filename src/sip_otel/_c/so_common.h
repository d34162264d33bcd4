/* SPDX-License-Identifier: Apache-2.0
 * sip-otel compiled core: what every layer shares (slices, byte loads, Python string rules).
 *
 * The core is sans-IO C: it takes bytes and packet times and returns counts, events and
 * records. No file, socket or clock, and no Python.h: the Cython binding (_core.pyx) is the
 * only place that knows Python. Layers include downward only:
 *   so_common.h, so_reasons.h, so_hash.h, so_map.h, so_types.h
 *   <- net (so_net.h: frames -> payloads)   <- sip (so_sip.h: payloads -> messages, framing)
 *   <- track (so_track.h: messages -> events) <- pipeline (so_pipeline.h: the one pipeline)
 *
 * Memory safety: every read of input bytes is preceded by an explicit length check against
 * the end of the buffer it belongs to (the code is fuzzed under ASan/UBSan, tests/fuzz/).
 */
#ifndef SO_COMMON_H
#define SO_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SO_LIKELY(x) __builtin_expect(!!(x), 1)
#define SO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SO_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SO_MAX(a, b) ((a) > (b) ? (a) : (b))

#define SO_NS_PER_S 1000000000LL

/* A view of bytes owned by someone else (a frame, a stream buffer, a parser scratch area). */
typedef struct so_slice {
    const uint8_t *p;
    uint32_t n;
} so_slice;

static inline so_slice so_slice_of(const uint8_t *p, size_t n) {
    so_slice s = {p, (uint32_t)n};
    return s;
}

static inline bool so_slice_eq(so_slice a, const char *lit) {
    size_t n = strlen(lit);
    return a.n == n && (n == 0 || memcmp(a.p, lit, n) == 0);
}

/* Saturating int64 arithmetic for deadlines: Python's ints never overflowed, so a huge
 * Session-Expires or Retry-After (10 digits, ~3e10 s) must give a far-future deadline, not a
 * wrapped one. */
static inline int64_t so_sat_add(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}
static inline int64_t so_sat_sub(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}
static inline int64_t so_sat_mul(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return ((a < 0) != (b < 0)) ? INT64_MIN : INT64_MAX;
    return r;
}
/* ``now - since >= timeout`` without overflow: packet times are whatever the capture says
 * (a forged pcapng timestamp can be anywhere in int64), and a difference beyond int64 is more
 * than any timeout. */
static inline bool so_expired(int64_t since, int64_t now, int64_t timeout) {
    int64_t d;
    if (__builtin_sub_overflow(now, since, &d))
        return now > since;
    return d >= timeout;
}

/* Big-endian / little-endian loads; callers have checked that the bytes exist. */
static inline uint16_t so_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t so_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t so_be64(const uint8_t *p) {
    return ((uint64_t)so_be32(p) << 32) | so_be32(p + 4);
}
static inline uint16_t so_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t so_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t so_le64(const uint8_t *p) {
    return (uint64_t)so_le32(p) | ((uint64_t)so_le32(p + 4) << 32);
}

/* Find a byte string in [p, p+n); returns its offset or -1 (memmem, bounded by n). */
static inline long so_find(const uint8_t *p, size_t n, const char *needle, size_t k) {
    if (k == 0)
        return 0;
    if (n < k)
        return -1;
    const uint8_t *hit = (const uint8_t *)memmem(p, n, needle, k);
    return hit ? (long)(hit - p) : -1;
}

/* ---- Python ``str`` rules over UTF-8 bytes ---------------------------------------------
 * The pure-Python pipeline this core replaced decoded header blocks as UTF-8 and used
 * str.strip()/str.split(): their whitespace set is ASCII \t \n \v \f \r \x1c-\x1f and space,
 * plus the non-ASCII whitespace code points (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000). These helpers give the same answers on the UTF-8 bytes, so
 * values and keys are cut exactly where Python cut them. */
static inline bool so_py_ascii_space(uint8_t c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* Length of a whitespace code point starting at p (0 if none). */
static inline size_t so_py_space_at(const uint8_t *p, size_t n) {
    if (n == 0)
        return 0;
    uint8_t c = p[0];
    if (c < 0x80)
        return so_py_ascii_space(c) ? 1 : 0;
    if (c == 0xC2 && n >= 2 && (p[1] == 0x85 || p[1] == 0xA0))
        return 2;
    if (n < 3)
        return 0;
    if (c == 0xE1) /* U+1680 */
        return (p[1] == 0x9A && p[2] == 0x80) ? 3 : 0;
    if (c == 0xE2 && p[1] == 0x80) { /* U+2000-U+200A, U+2028, U+2029, U+202F */
        uint8_t d = p[2];
        return ((d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF) ? 3 : 0;
    }
    if (c == 0xE2 && p[1] == 0x81) /* U+205F */
        return p[2] == 0x9F ? 3 : 0;
    if (c == 0xE3) /* U+3000 */
        return (p[1] == 0x80 && p[2] == 0x80) ? 3 : 0;
    return 0;
}

/* Length of a whitespace code point ending at p+n (0 if none). */
static inline size_t so_py_space_before(const uint8_t *p, size_t n) {
    if (n == 0)
        return 0;
    uint8_t c = p[n - 1];
    if (c < 0x80)
        return so_py_ascii_space(c) ? 1 : 0;
    if (n >= 2 && p[n - 2] == 0xC2 && (c == 0x85 || c == 0xA0))
        return 2;
    if (n >= 3 && so_py_space_at(p + n - 3, 3) == 3)
        return 3;
    return 0;
}

/* str.strip() */
static inline so_slice so_py_strip(so_slice s) {
    size_t k;
    while (s.n && (k = so_py_space_at(s.p, s.n)) != 0) {
        s.p += k;
        s.n -= (uint32_t)k;
    }
    while (s.n && (k = so_py_space_before(s.p, s.n)) != 0)
        s.n -= (uint32_t)k;
    return s;
}

/* str.rstrip(chars) / str.strip(chars) for a set of ASCII characters. */
static inline so_slice so_strip_chars(so_slice s, const char *chars) {
    while (s.n && strchr(chars, s.p[0]) && s.p[0])
        s.p++, s.n--;
    while (s.n && strchr(chars, s.p[s.n - 1]) && s.p[s.n - 1])
        s.n--;
    return s;
}

static inline so_slice so_rstrip_chars(so_slice s, const char *chars) {
    while (s.n && strchr(chars, s.p[s.n - 1]) && s.p[s.n - 1])
        s.n--;
    return s;
}

/* Number of code points in valid UTF-8 (bytes that do not continue a sequence); for invalid
 * sequences this approximates Python's replacement decoding. */
static inline size_t so_utf8_len(const uint8_t *p, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        chars += (p[i] & 0xC0) != 0x80;
    return chars;
}

static inline uint8_t so_ascii_lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static inline uint8_t so_ascii_upper(uint8_t c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; }

/* Case-insensitive (ASCII) comparison of a slice with a lower-case literal. */
static inline bool so_slice_ieq(so_slice a, const char *lower) {
    size_t n = strlen(lower);
    if (a.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (so_ascii_lower(a.p[i]) != (uint8_t)lower[i])
            return false;
    return true;
}

/* A growable byte buffer (stream reassembly, scratch space). ``cap`` never exceeds the
 * limit its owner checks before appending. */
typedef struct so_buf {
    uint8_t *p;
    size_t n, cap;
} so_buf;

bool so_buf_reserve(so_buf *b, size_t extra);
bool so_buf_append(so_buf *b, const uint8_t *p, size_t n);
void so_buf_consume(so_buf *b, size_t n); /* drop n bytes from the front */
void so_buf_free(so_buf *b);

/* ---- one memory budget ------------------------------------------------------------------------
 * Every table that keeps bytes from the wire charges what it keeps (its entry structs plus
 * their variable bytes, roughly the malloc'd sizes) to one so_mem: ``used[table]`` is kept
 * up to date by the table itself. The budget is enforced at the end of each outermost call
 * (a frame, a message, a timer tick: so_mem_enter/so_mem_leave nest), never in the middle of
 * one, so no entry in use by a caller up the stack can be evicted: while the total is over
 * ``limit`` the oldest entry of the largest consumer is evicted through that table's
 * ``evict`` hook (which counts ``<table>.memory``); a table whose hook can evict nothing more
 * is passed over. The total can therefore exceed the limit by what one call adds (at most a
 * frame's bytes plus one buffer doubling) until that call returns.
 *
 * Records (finished dialogs and registrations waiting for the binding to turn them into spans)
 * are not evictable: they get a fixed sixteenth of the limit (a record past it is dropped,
 * counted ``records.memory``) and the tables the other fifteen, so evicting a dialog,
 * which makes a record, never makes the tables evict more. */
typedef enum so_mem_table {
    SO_MEM_TCP_FLOWS = 0, /* flow entries, in-order (framer) and out-of-order buffers */
    SO_MEM_FRAGMENTS,     /* fragment sets and their pieces */
    SO_MEM_TRANSACTIONS,
    SO_MEM_ATTEMPTS,      /* INVITE attempts: entries, keys, record strings; pending table */
    SO_MEM_DIALOGS,
    SO_MEM_REGISTRATIONS, /* REGISTER attempts (strings) and active AORs */
    SO_MEM_RECORDS,       /* finished records waiting for the binding (not evictable) */
    SO_MEM_N
} so_mem_table;

extern const char *const so_mem_table_names[SO_MEM_N];

/* Evict the oldest entry of ``table`` (counting ``<table>.memory``); false: nothing left that
 * it can evict. */
typedef bool (*so_mem_evict_fn)(void *ctx, int table);

typedef struct so_mem {
    uint64_t limit; /* bytes; 0: no limit */
    int64_t used[SO_MEM_N];
    so_mem_evict_fn evict[SO_MEM_N];
    void *ctx[SO_MEM_N];
    uint32_t depth;
} so_mem;

void so_mem_init(so_mem *m, uint64_t limit);

/* What tables charge, close to what the allocator really holds for them:
 * - a malloc'd block of n bytes: glibc's chunk (8 bytes of header, 16-byte granules);
 * - a pooled entry of ``size`` bytes: itself, half more for the pool's growth slack (pools
 *   double and never shrink: between 0 and 100 % slack), and 48 bytes for its hash-index slot
 *   (16-byte slots, 3/8 to 3/4 full);
 * - a timer-queue item (so_dq_item, 32 bytes) with the queue's growth slack. */
static inline size_t so_mem_block(size_t n) { return n ? (n + 8 + 15) & ~(size_t)15 : 0; }
#define SO_MEM_ENTRY(size) ((size_t)(size) + (size_t)(size) / 2 + 48)
#define SO_MEM_QUEUE_ITEM 48
static inline void so_mem_charge(so_mem *m, so_mem_table table, int64_t delta) {
    m->used[table] += delta;
}
static inline int64_t so_mem_total(const so_mem *m) {
    int64_t s = 0;
    for (int i = 0; i < SO_MEM_N; i++)
        s += m->used[i];
    return s;
}
static inline uint64_t so_mem_records_limit(const so_mem *m) { return m->limit / 16; }
static inline uint64_t so_mem_tables_limit(const so_mem *m) { return m->limit - m->limit / 16; }
/* Bytes of the evictable tables (all but records). */
static inline int64_t so_mem_tables(const so_mem *m) {
    return so_mem_total(m) - m->used[SO_MEM_RECORDS];
}
static inline void so_mem_enter(so_mem *m) { m->depth++; }
/* Evict until the tables fit (see above). */
void so_mem_enforce(so_mem *m);
static inline void so_mem_leave(so_mem *m) {
    if (--m->depth == 0 && m->limit && (uint64_t)so_mem_tables(m) > so_mem_tables_limit(m))
        so_mem_enforce(m);
}

#endif
