/* SPDX-License-Identifier: Apache-2.0
 * SIP header names (so_sip.h): the table of known names with their codes, the compact forms,
 * and the lookups the parser uses (RFC 3261 §7.3.1: names are case-insensitive; §7.3.3:
 * compact forms; the IANA "Header Fields" registry for the compact forms of extensions).
 *
 * Theory of operation. One table (so_header_names, sorted by length) is the source of every
 * view of it: the Python facade's dicts (sip/headers.py) are built from it through the binding.
 * At load time a constructor derives two indexes from it (no lazy initialisation, no race):
 *  - for so_header_code, the only question a "name: value" line asks (which kept header, if
 *    any): per length, the few kept names as two overlapping words of their lower-case
 *    spelling and letter masks, so that a name is compared with two loads and no hashing;
 *    ignored and unknown names give the same answer (SO_H_IGNORED) and need no lookup;
 *  - for so_header_lookup (every known name, and whether it is spelt as in the exact-case
 *    table; the parser asks for lines without a colon): an open-addressing hash table.
 * Case-insensitive means ASCII case-insensitive: the one non-ASCII code point whose Python
 * lower case is ASCII (U+212A KELVIN SIGN -> "k") only lower-cases to ignored names.
 */
#include "so_sip.h"

/* ---- header names ------------------------------------------------------------------------ */

/* Sorted by name length (so_header_lookup relies on it; a test checks it). */
#define HN(name, alt, code) {name, alt, (uint8_t)(sizeof(name) - 1), code}
const so_header_name so_header_names[] = {
    HN("To", NULL, SO_H_TO),
    HN("Via", NULL, SO_H_VIA),
    HN("CSeq", "Cseq", SO_H_CSEQ),
    HN("Date", NULL, SO_H_IGNORED),
    HN("From", NULL, SO_H_FROM),
    HN("Join", NULL, SO_H_IGNORED),
    HN("Path", NULL, SO_H_IGNORED),
    HN("RAck", NULL, SO_H_IGNORED),
    HN("RSeq", NULL, SO_H_IGNORED),
    HN("Allow", NULL, SO_H_IGNORED),
    HN("Event", NULL, SO_H_IGNORED),
    HN("Route", NULL, SO_H_IGNORED),
    HN("Accept", NULL, SO_H_IGNORED),
    HN("Min-SE", NULL, SO_H_MIN_SE),
    HN("Reason", NULL, SO_H_REASON),
    HN("Server", NULL, SO_H_SERVER),
    HN("Call-ID", "Call-Id", SO_H_CALL_ID),
    HN("Contact", NULL, SO_H_CONTACT),
    HN("Expires", NULL, SO_H_EXPIRES),
    HN("Privacy", NULL, SO_H_IGNORED),
    HN("Require", NULL, SO_H_IGNORED),
    HN("Subject", NULL, SO_H_IGNORED),
    HN("Warning", NULL, SO_H_IGNORED),
    HN("Identity", NULL, SO_H_IGNORED),
    HN("Priority", NULL, SO_H_IGNORED),
    HN("Refer-To", NULL, SO_H_IGNORED),
    HN("Replaces", NULL, SO_H_IGNORED),
    HN("Reply-To", NULL, SO_H_IGNORED),
    HN("SIP-ETag", NULL, SO_H_IGNORED),
    HN("Call-Info", NULL, SO_H_IGNORED),
    HN("Diversion", NULL, SO_H_IGNORED),
    HN("Supported", NULL, SO_H_IGNORED),
    HN("Timestamp", NULL, SO_H_IGNORED),
    HN("Alert-Info", NULL, SO_H_IGNORED),
    HN("Error-Info", NULL, SO_H_IGNORED),
    HN("Session-ID", "Session-Id", SO_H_SESSION_ID),
    HN("User-Agent", "User-agent", SO_H_USER_AGENT),
    HN("In-Reply-To", NULL, SO_H_IGNORED),
    HN("Min-Expires", NULL, SO_H_IGNORED),
    HN("Referred-By", NULL, SO_H_IGNORED),
    HN("Retry-After", NULL, SO_H_RETRY_AFTER),
    HN("Unsupported", NULL, SO_H_IGNORED),
    HN("Allow-Events", NULL, SO_H_IGNORED),
    HN("Content-Type", "Content-type", SO_H_CONTENT_TYPE),
    HN("History-Info", NULL, SO_H_IGNORED),
    HN("Max-Forwards", "Max-forwards", SO_H_IGNORED),
    HN("MIME-Version", NULL, SO_H_IGNORED),
    HN("Organization", NULL, SO_H_IGNORED),
    HN("Record-Route", "Record-route", SO_H_IGNORED),
    HN("SIP-If-Match", NULL, SO_H_IGNORED),
    HN("Authorization", NULL, SO_H_IGNORED),
    HN("Identity-Info", NULL, SO_H_IGNORED),
    HN("Proxy-Require", NULL, SO_H_IGNORED),
    HN("Service-Route", NULL, SO_H_IGNORED),
    HN("Accept-Contact", NULL, SO_H_IGNORED),
    HN("Content-Length", "Content-length", SO_H_CONTENT_LENGTH),
    HN("Reject-Contact", NULL, SO_H_IGNORED),
    HN("Accept-Encoding", NULL, SO_H_IGNORED),
    HN("Accept-Language", NULL, SO_H_IGNORED),
    HN("Remote-Party-ID", NULL, SO_H_IGNORED),
    HN("Session-Expires", NULL, SO_H_SESSION_EXPIRES),
    HN("Content-Encoding", NULL, SO_H_IGNORED),
    HN("Content-Language", NULL, SO_H_IGNORED),
    HN("WWW-Authenticate", NULL, SO_H_IGNORED),
    HN("P-Called-Party-ID", NULL, SO_H_IGNORED),
    HN("P-Charging-Vector", NULL, SO_H_IGNORED),
    HN("Proxy-Authenticate", NULL, SO_H_IGNORED),
    HN("Subscription-State", NULL, SO_H_IGNORED),
    HN("Authentication-Info", NULL, SO_H_IGNORED),
    HN("Content-Disposition", NULL, SO_H_IGNORED),
    HN("P-Asserted-Identity", NULL, SO_H_IGNORED),
    HN("Proxy-Authorization", NULL, SO_H_IGNORED),
    HN("Request-Disposition", NULL, SO_H_IGNORED),
    HN("P-Preferred-Identity", NULL, SO_H_IGNORED),
    HN("P-Visited-Network-ID", NULL, SO_H_IGNORED),
    HN("P-Access-Network-Info", NULL, SO_H_IGNORED),
};
#undef HN
const size_t so_n_header_names = sizeof(so_header_names) / sizeof(so_header_names[0]);
_Static_assert(sizeof(so_header_names) / sizeof(so_header_names[0]) <= 128, "index is uint8_t");

/* RFC 3261 §7.3.3 and the registered compact forms (IANA "Header Fields" registry). */
const char *const so_compact_forms[26] = {
    ['a' - 'a'] = "Accept-Contact",      /* RFC 3841 */
    ['b' - 'a'] = "Referred-By",         /* RFC 3892 */
    ['c' - 'a'] = "Content-Type",
    ['d' - 'a'] = "Request-Disposition", /* RFC 3841 */
    ['e' - 'a'] = "Content-Encoding",
    ['f' - 'a'] = "From",
    ['i' - 'a'] = "Call-ID",
    ['j' - 'a'] = "Reject-Contact",      /* RFC 3841 */
    ['k' - 'a'] = "Supported",
    ['l' - 'a'] = "Content-Length",
    ['m' - 'a'] = "Contact",
    ['n' - 'a'] = "Identity-Info",       /* RFC 4474 */
    ['o' - 'a'] = "Event",               /* RFC 6665 */
    ['r' - 'a'] = "Refer-To",            /* RFC 3515 */
    ['s' - 'a'] = "Subject",
    ['t' - 'a'] = "To",
    ['u' - 'a'] = "Allow-Events",        /* RFC 6665 */
    ['v' - 'a'] = "Via",
    ['x' - 'a'] = "Session-Expires",     /* RFC 4028 */
    ['y' - 'a'] = "Identity",            /* RFC 8224 */
};

/* Lookup index, built once when the library is loaded (a constructor: no lazy init, no race):
 * an open-addressing table (linear probing, at most half full) keyed by a hash of the length
 * and the first, middle and last bytes ASCII-folded by | 0x20 (it merges more bytes than case
 * folding does: still a hash). Each slot holds its spellings inline: one load per probe. */
#define MAX_NAME 21 /* longest: P-Access-Network-Info */
#define HASH_SLOTS 256
typedef struct name_slot {
    uint8_t entry; /* index in so_header_names + 1; 0: empty */
    uint8_t len;
    uint8_t name[MAX_NAME + 1];  /* canonical spelling */
    uint8_t lower[MAX_NAME + 1]; /* in lower case */
} name_slot;
static name_slot slots[HASH_SLOTS];
static int8_t compact_entry[26];            /* so_compact_forms -> entry, -1 */

/* The kept headers (code != 0) by length, as two overlapping little-endian words of their lower
 * case spelling (the first and the last 8, 4 or 2 bytes) and the masks that fold the letters:
 * (word | mask) == key compares a name case-insensitively with two loads, no hashing. */
#define KEPT_MAX_LEN 16
#define KEPT_PER_LEN 4
typedef struct kept_key {
    uint64_t lo, hi, mlo, mhi;
    uint8_t code;
} kept_key;
static kept_key kept[KEPT_MAX_LEN + 1][KEPT_PER_LEN];
static uint8_t n_kept[KEPT_MAX_LEN + 1];

static inline void name_words(const uint8_t *p, size_t n, uint64_t *lo, uint64_t *hi) {
    /* fixed-size loads (a variable-size copy would stall store-to-load forwarding) */
    if (n >= 8) { /* n <= 16: the two cover p[0:n] */
        memcpy(lo, p, 8);
        memcpy(hi, p + n - 8, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        *lo = a, *hi = b;
    } else if (n >= 2) {
        uint16_t a, b;
        memcpy(&a, p, 2);
        memcpy(&b, p + n - 2, 2);
        *lo = a, *hi = b;
    } else {
        *lo = *hi = n ? p[0] : 0;
    }
}

static inline unsigned name_hash(const uint8_t *p, size_t n) {
    return ((unsigned)n * 37u + (p[0] | 0x20u) * 7u + (p[n / 2] | 0x20u) * 3u + (p[n - 1] | 0x20u)) &
           (HASH_SLOTS - 1);
}

static int full_name_lookup(const uint8_t *p, size_t n, bool *exact) {
    for (unsigned i = name_hash(p, n);; i = (i + 1) & (HASH_SLOTS - 1)) {
        const name_slot *k = &slots[i];
        if (!k->entry)
            return -1;
        if (k->len != n)
            continue;
        if (so_bytes_eq(p, (const char *)k->name, n)) { /* as usually written */
            if (exact)
                *exact = true;
            return k->entry - 1;
        }
        size_t j = 0, same = 0;
        for (; j < n && so_ascii_lower(p[j]) == k->lower[j]; j++)
            same += p[j] == k->lower[j];
        if (j < n)
            continue;
        if (exact) { /* the lower-case spelling, or the entry's other one */
            const char *alt = so_header_names[k->entry - 1].alt;
            *exact = same == n || (alt && so_bytes_eq(p, alt, n));
        }
        return k->entry - 1;
    }
}

__attribute__((constructor)) static void so_header_index_init(void) {
    for (size_t e = 0; e < so_n_header_names; e++) {
        const so_header_name *h = &so_header_names[e];
        size_t len = SO_MIN(h->len, MAX_NAME); /* longer names are never found: a test fails */
        unsigned i = name_hash((const uint8_t *)h->name, len);
        while (slots[i].entry)
            i = (i + 1) & (HASH_SLOTS - 1);
        name_slot *k = &slots[i];
        k->entry = (uint8_t)(e + 1);
        k->len = (uint8_t)len;
        for (size_t j = 0; j < len; j++) {
            k->name[j] = (uint8_t)h->name[j];
            k->lower[j] = so_ascii_lower((uint8_t)h->name[j]);
        }
    }
    for (int c = 0; c < 26; c++) {
        const char *full = so_compact_forms[c];
        compact_entry[c] = (int8_t)(full ? full_name_lookup((const uint8_t *)full, strlen(full), NULL)
                                         : -1);
    }
    for (size_t e = 0; e < so_n_header_names; e++) {
        const so_header_name *h = &so_header_names[e];
        if (!h->code || h->len > KEPT_MAX_LEN || n_kept[h->len] >= KEPT_PER_LEN)
            continue; /* a test checks that every kept name is found */
        uint8_t low[KEPT_MAX_LEN], mask[KEPT_MAX_LEN];
        for (size_t j = 0; j < h->len; j++) {
            low[j] = so_ascii_lower((uint8_t)h->name[j]);
            mask[j] = (low[j] >= 'a' && low[j] <= 'z') ? 0x20 : 0;
        }
        kept_key *k = &kept[h->len][n_kept[h->len]++];
        name_words(low, h->len, &k->lo, &k->hi);
        name_words(mask, h->len, &k->mlo, &k->mhi);
        k->code = h->code;
    }
}

unsigned so_header_code(const uint8_t *p, size_t n) {
    if (n == 1) {
        int idx = so_header_lookup(p, n, NULL);
        return idx < 0 ? SO_H_IGNORED : so_header_names[idx].code;
    }
    if (n > KEPT_MAX_LEN)
        return SO_H_IGNORED;
    uint64_t lo, hi;
    name_words(p, n, &lo, &hi);
    for (unsigned i = 0; i < n_kept[n]; i++) {
        const kept_key *k = &kept[n][i];
        if ((lo | k->mlo) == k->lo && (hi | k->mhi) == k->hi)
            return k->code;
    }
    return SO_H_IGNORED;
}

int so_header_lookup(const uint8_t *p, size_t n, bool *exact) {
    if (exact)
        *exact = false;
    if (n == 1) { /* a compact form, in either case (both are in the exact table) */
        uint8_t c = so_ascii_lower(p[0]);
        int idx = (c >= 'a' && c <= 'z') ? compact_entry[c - 'a'] : -1;
        if (idx >= 0 && exact)
            *exact = true;
        return idx;
    }
    if (n < 2 || n > MAX_NAME)
        return -1;
    return full_name_lookup(p, n, exact);
}
