/* SPDX-License-Identifier: Apache-2.0
 * IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5) fragment reassembly, sans-IO.
 *
 * A fragment set is keyed by ``(src, dst, id, protocol)`` for IPv4 and ``(src, dst, id)`` for
 * IPv6 (addresses are 4 or 16 raw bytes, so the two never collide). Each set keeps its pieces
 * as non-overlapping ``[start, end)`` runs sorted by offset (each a copy of its bytes), the
 * number of bytes held, and the total length once the last fragment (MF=0) has been seen. The
 * set is complete when the bytes held equal that total; the pieces are then joined and the set
 * removed.
 *
 * Overlaps are first-wins: bytes already held are kept and only the uncovered parts of a new
 * fragment are stored (Wireshark's choice, so we agree with tshark on odd captures; RFC 5722
 * would drop the whole IPv6 datagram, which a passive monitor has no reason to do). A fragment
 * that adds nothing is a duplicate when it repeats a held piece exactly, else an overlap.
 * Inconsistent ends (two different last fragments, data past the last fragment) and datagrams
 * beyond the size bound drop the whole set, counted.
 *
 * Time is packet time. Sets live in an so_pool in creation order (never moved), so expiry pops
 * expired sets from the front and stops at the first live one. The table is bounded by set
 * count, by held bytes in total and by fragments per set; evictions are counted as
 * ``fragments.<reason>``.
 */
#include "so_net_int.h"

typedef struct so_piece {
    uint32_t start, end;
    uint8_t *data;
} so_piece;

typedef struct so_fset {
    so_entry e;
    so_h128 key;
    int64_t first_ts;
    uint64_t held;  /* bytes stored */
    int64_t total;  /* datagram payload length once the last fragment arrived, else -1 */
    int32_t proto;  /* protocol / next header from the offset-0 fragment, -1 */
    uint32_t n_pieces, cap_pieces;
    so_piece *pieces;
} so_fset;

#define FSET(t, slot) SO_POOL_AT(&(t)->sets, so_fset, slot)

/* The budget: set entries, piece arrays and the bytes held (SO_MEM_FRAGMENTS). */
static void charge(so_frag_table *t) {
    t->mem->used[SO_MEM_FRAGMENTS] =
        (int64_t)((uint64_t)t->sets.count * SO_MEM_ENTRY(sizeof(so_fset)) + t->memory +
                  t->pieces_cap * (sizeof(so_piece) + 24));
}

static bool mem_evict(void *ctx, int table);

void so_frag_init(so_frag_table *t, const so_net_limits *limits, so_h128 seed, uint64_t *reasons,
                  uint64_t *evictions, so_mem *mem) {
    so_map_init(&t->index);
    so_pool_init(&t->sets, sizeof(so_fset));
    t->seed = seed;
    t->max_sets = limits->max_fragment_sets;
    t->timeout_ns = limits->fragment_timeout_ns;
    t->max_bytes = limits->max_fragment_bytes;
    t->max_pieces = limits->max_fragments_per_set;
    t->max_memory = limits->max_fragment_memory_bytes;
    t->memory = 0;
    t->pieces_cap = 0;
    t->reasons = reasons;
    t->evictions = evictions;
    t->mem = mem;
    mem->evict[SO_MEM_FRAGMENTS] = mem_evict;
    mem->ctx[SO_MEM_FRAGMENTS] = t;
}

static void fset_clear(so_frag_table *t, so_fset *fs) {
    for (uint32_t i = 0; i < fs->n_pieces; i++)
        free(fs->pieces[i].data);
    free(fs->pieces);
    t->pieces_cap -= fs->cap_pieces;
    fs->pieces = NULL;
    fs->n_pieces = fs->cap_pieces = 0;
}

void so_frag_free(so_frag_table *t) {
    for (uint32_t s = t->sets.head; s != SO_NIL; s = so_pool_entry(&t->sets, s)->next)
        fset_clear(t, FSET(t, s));
    so_pool_free(&t->sets);
    so_map_free(&t->index);
    t->memory = 0;
    t->mem->used[SO_MEM_FRAGMENTS] = 0;
}

static so_h128 key_hash(const so_frag_table *t, const so_frag_key *k) {
    so_hasher h;
    so_hasher_init(&h, t->seed);
    so_hasher_bytes(&h, k->src, k->ip_len);
    so_hasher_bytes(&h, k->dst, k->ip_len);
    so_hasher_u64(&h, ((uint64_t)k->ident << 32) | (uint32_t)(k->proto + 1));
    return so_hasher_final(&h);
}

static void drop(so_frag_table *t, uint32_t slot) {
    so_fset *fs = FSET(t, slot);
    t->memory -= fs->held;
    so_map_del(&t->index, fs->key);
    fset_clear(t, fs);
    so_pool_release(&t->sets, slot);
    charge(t);
}

/* Evict the oldest set other than ``keep``; false if there is none. */
static bool evict_oldest(so_frag_table *t, so_eviction why, uint32_t keep) {
    uint32_t s = t->sets.head;
    if (s != SO_NIL && s == keep)
        s = so_pool_entry(&t->sets, s)->next;
    if (s == SO_NIL)
        return false;
    drop(t, s);
    t->evictions[why]++;
    return true;
}

/* The memory budget's hook: the oldest set goes (``fragments.memory``). */
static bool mem_evict(void *ctx, int table) {
    return evict_oldest((so_frag_table *)ctx, SO_E_FRAGMENTS_MEMORY, SO_NIL);
}

void so_frag_expire(so_frag_table *t, int64_t now_ns) {
    while (t->sets.head != SO_NIL) {
        if (!so_expired(FSET(t, t->sets.head)->first_ts, now_ns, t->timeout_ns))
            break;
        evict_oldest(t, SO_E_FRAGMENTS_TIMEOUT, SO_NIL);
    }
}

/* Insert a copy of p[0:n] as piece [start, start+n) at index i. */
static bool insert_piece(so_frag_table *t, so_fset *fs, uint32_t i, uint32_t start,
                         const uint8_t *p, uint32_t n) {
    if (fs->n_pieces == fs->cap_pieces) {
        uint32_t cap = fs->cap_pieces ? fs->cap_pieces * 2 : 4;
        so_piece *np = (so_piece *)realloc(fs->pieces, (size_t)cap * sizeof(so_piece));
        if (!np)
            return false;
        fs->pieces = np;
        t->pieces_cap += cap - fs->cap_pieces;
        fs->cap_pieces = cap;
    }
    uint8_t *copy = (uint8_t *)malloc(n);
    if (!copy)
        return false;
    memcpy(copy, p, n);
    memmove(&fs->pieces[i + 1], &fs->pieces[i], (size_t)(fs->n_pieces - i) * sizeof(so_piece));
    fs->pieces[i].start = start;
    fs->pieces[i].end = start + n;
    fs->pieces[i].data = copy;
    fs->n_pieces++;
    return true;
}

/* First-wins insert of the parts of [offset, end) not held yet; bytes stored (0: nothing new,
 * counted). *oom is set when memory ran out (what was stored so far stays). */
static uint32_t insert_uncovered(so_frag_table *t, so_fset *fs, uint32_t offset, uint32_t end,
                                 const uint8_t *payload, bool *oom) {
    /* The gaps lie between consecutive pieces: walk once, inserting as we go. Collect the gaps
     * first so the "nothing new" and "partly new" cases are told apart before storing. */
    uint32_t cur = offset;
    uint32_t n_gaps = 0, first_start = 0, first_stop = 0;
    for (uint32_t i = 0; i < fs->n_pieces; i++) {
        so_piece *pc = &fs->pieces[i];
        if (pc->end <= cur)
            continue;
        if (pc->start >= end)
            break;
        if (pc->start > cur) {
            if (n_gaps++ == 0)
                first_start = cur, first_stop = pc->start;
        }
        cur = pc->end;
        if (cur >= end)
            break;
    }
    if (cur < end) {
        if (n_gaps++ == 0)
            first_start = cur, first_stop = end;
    }
    if (n_gaps == 0) {
        bool exact = false;
        for (uint32_t i = 0; i < fs->n_pieces; i++)
            if (fs->pieces[i].start == offset && fs->pieces[i].end == end)
                exact = true;
        t->reasons[exact ? SO_R_NET_FRAGMENT_DUPLICATE : SO_R_NET_FRAGMENT_OVERLAP]++;
        return 0;
    }
    if (first_start != offset || first_stop != end)
        t->reasons[SO_R_NET_FRAGMENT_OVERLAP]++;
    /* Store each gap, in order; pieces are sorted by start and never overlap. */
    uint32_t stored = 0;
    cur = offset;
    uint32_t i = 0;
    while (cur < end) {
        while (i < fs->n_pieces && fs->pieces[i].end <= cur)
            i++;
        uint32_t stop = end;
        if (i < fs->n_pieces && fs->pieces[i].start < end) {
            if (fs->pieces[i].start <= cur) { /* covered: skip past this piece */
                cur = fs->pieces[i].end;
                continue;
            }
            stop = fs->pieces[i].start;
        }
        if (!insert_piece(t, fs, i, cur, payload + (cur - offset), stop - cur)) {
            *oom = true;
            return stored;
        }
        stored += stop - cur;
        i++;
        cur = stop;
    }
    return stored;
}

static int frag_add(so_frag_table *t, const so_frag_key *key, int64_t ts_ns, uint32_t offset,
                    bool more, const uint8_t *p, size_t n, int proto, uint8_t **out,
                    size_t *out_len, int *out_proto) {
    uint64_t end = (uint64_t)offset + n;
    if (n == 0 || (more && (n & 7))) {
        /* RFC 791/8200: every fragment but the last carries a multiple of 8 bytes. */
        t->reasons[SO_R_NET_BAD_FRAGMENT_LENGTH]++;
        return 0;
    }
    so_h128 k = key_hash(t, key);
    uint32_t slot = so_map_get(&t->index, k);
    if (end > t->max_bytes) {
        t->reasons[SO_R_NET_FRAGMENT_TOO_LARGE]++;
        if (slot != SO_NIL)
            drop(t, slot);
        return 0;
    }
    while (t->memory + n > t->max_memory && evict_oldest(t, SO_E_FRAGMENTS_MEMORY, slot))
        ;
    if (slot == SO_NIL) {
        if (t->sets.count >= t->max_sets)
            evict_oldest(t, SO_E_FRAGMENTS_FULL, SO_NIL);
        slot = so_pool_alloc(&t->sets);
        if (slot == SO_NIL) {
            t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
            return 0;
        }
        if (!so_map_put(&t->index, k, slot)) {
            so_pool_release(&t->sets, slot);
            t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
            return 0;
        }
        so_fset *fs = FSET(t, slot);
        fs->key = k;
        fs->first_ts = ts_ns;
        fs->total = -1;
        fs->proto = -1;
    }
    so_fset *fs = FSET(t, slot);
    if (!more) {
        if ((fs->total >= 0 && (uint64_t)fs->total != end) ||
            (fs->n_pieces && fs->pieces[fs->n_pieces - 1].end > end)) {
            t->reasons[SO_R_NET_FRAGMENT_INCONSISTENT]++;
            drop(t, slot);
            return 0;
        }
        fs->total = (int64_t)end;
    } else if (fs->total >= 0 && end > (uint64_t)fs->total) {
        t->reasons[SO_R_NET_FRAGMENT_INCONSISTENT]++;
        drop(t, slot);
        return 0;
    }
    if (offset == 0)
        fs->proto = proto;
    uint32_t stored;
    bool oom = false;
    if (!fs->n_pieces || fs->pieces[fs->n_pieces - 1].end <= offset) {
        /* common case: in order, nothing overlaps */
        if (insert_piece(t, fs, fs->n_pieces, offset, p, (uint32_t)n))
            stored = (uint32_t)n;
        else
            stored = 0, oom = true;
    } else {
        stored = insert_uncovered(t, fs, offset, (uint32_t)end, p, &oom);
    }
    fs->held += stored;
    t->memory += stored;
    if (oom) {
        t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
        drop(t, slot);
        return 0;
    }
    if (stored == 0)
        return 0;
    if (fs->n_pieces > t->max_pieces) {
        t->reasons[SO_R_NET_FRAGMENT_TOO_MANY]++;
        drop(t, slot);
        return 0;
    }
    if ((int64_t)fs->held != fs->total)
        return 0;
    /* Complete: hand the datagram over and remove the set. */
    uint8_t *dgram;
    if (fs->n_pieces == 1) {
        dgram = fs->pieces[0].data;
        fs->pieces[0].data = NULL;
    } else {
        dgram = (uint8_t *)malloc(fs->held);
        if (!dgram) {
            t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
            drop(t, slot);
            return 0;
        }
        size_t at = 0;
        for (uint32_t i = 0; i < fs->n_pieces; i++) {
            size_t len = fs->pieces[i].end - fs->pieces[i].start;
            memcpy(dgram + at, fs->pieces[i].data, len);
            at += len;
        }
    }
    *out = dgram;
    *out_len = fs->held;
    *out_proto = fs->proto;
    drop(t, slot);
    return 1;
}

int so_frag_add(so_frag_table *t, const so_frag_key *key, int64_t ts_ns, uint32_t offset, bool more,
                const uint8_t *p, size_t n, int proto, uint8_t **out, size_t *out_len,
                int *out_proto) {
    int r = frag_add(t, key, ts_ns, offset, more, p, n, proto, out, out_len, out_proto);
    charge(t);
    return r;
}

size_t so_frag_entry_size(int which) { return which ? sizeof(so_piece) : sizeof(so_fset); }
