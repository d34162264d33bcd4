/* SPDX-License-Identifier: Apache-2.0
 * TCP stream reassembly per flow direction, feeding the SIP stream framer (so_framer_ops from
 * the sip layer) or the WebSocket framer (RFC 7118 flows). Sans-IO.
 *
 * A flow is one direction ``(src ip, src port, dst ip, dst port)``. Sequence numbers wrap at
 * 2^32, so a flow also counts an unwrapped 64-bit byte position ``next_pos`` that matches
 * ``next_seq``; a segment's position is ``next_pos`` plus its signed 32-bit distance from
 * ``next_seq``.
 *
 * - SYN fixes the ISN: data starts at ISN+1. A SYN with another ISN on a live flow means the
 *   ports were reused: the old stream is dropped. Without a SYN (capture started mid-stream)
 *   the first segment seen starts the stream; the framer then resyncs on the next start line.
 * - In order (distance 0): the payload goes straight to the framer (no copy), then held
 *   segments that have become contiguous are drained.
 * - Behind: bytes already delivered are trimmed (``tcp.retransmission``).
 * - Ahead: the segment is copied into a min-heap ordered by (position, bytes) - the order of
 *   the Python heap of ``(position, payload)`` tuples - (``tcp.out_of_order``) while the window
 *   (bytes ahead of ``next_pos``), the held bytes and segments of the flow, and the held bytes
 *   of all flows stay under their limits. Past a limit the missing bytes are given up for lost
 *   (``tcp.gap``), the framer is reset and the stream jumps to the first held segment.
 * - FIN marks the end position; the flow closes when the stream reaches it. RST closes both
 *   directions at once (the reverse one by the decoder). Closing counts unfinished messages
 *   (``sip_framing.incomplete``) and held bytes never delivered (``tcp.gap``).
 * - Flows live in an so_pool kept in LRU order, moved to the end on every segment, found by a
 *   hash of the 4-tuple: idle flows are expired from the front in packet time
 *   (``tcp_flows.timeout``), a full table evicts the least recently used (``tcp_flows.full``).
 * - Memory budget (so_mem, SO_MEM_TCP_FLOWS): each flow charges its entry, its framer's buffer
 *   capacity and its held segments (bytes + heap array), re-charged after every segment; when
 *   the budget is over, the least recently used flow is evicted (``tcp_flows.memory``).
 */
#include "so_net_int.h"

#define SEQ_MASK 0xFFFFFFFFu
#define SEQ_HALF 0x80000000u

typedef struct so_seg {
    int64_t pos;
    uint32_t len;
    uint8_t *data;
} so_seg;

typedef struct so_flow {
    so_entry e;
    so_h128 key;
    int64_t last_ts;
    int64_t isn;      /* initial sequence number if the SYN was seen, else -1 */
    int64_t next_seq; /* -1 until the SYN or the first segment */
    int64_t next_pos;
    int64_t fin_pos;  /* -1: no FIN seen */
    uint64_t held_bytes;
    so_seg *held; /* min-heap by (pos, bytes) */
    uint32_t n_held, cap_held;
    uint32_t kind; /* so_framer_kind */
    int64_t charged; /* bytes charged to the budget */
    uint64_t st[]; /* framer state */
} so_flow;

#define FLOW(t, slot) SO_POOL_AT(&(t)->flows, so_flow, slot)

static bool mem_evict(void *ctx, int table);

bool so_tcp_init(so_tcp_table *t, const so_net_limits *limits, const so_framer_ops *sip,
                 so_h128 seed, uint64_t *reasons, uint64_t *evictions, so_emit_fn emit, void *ctx,
                 so_mem *mem) {
    size_t st = SO_MAX(sip->state_size, sizeof(so_ws));
    so_map_init(&t->index);
    so_pool_init(&t->flows, sizeof(so_flow) + st);
    t->seed = seed;
    t->limits = limits;
    t->sip = sip;
    t->env.reasons = reasons;
    t->env.max_message = limits->max_sip_message_bytes;
    t->env.emit = emit;
    t->env.emit_ctx = ctx;
    t->held_total = 0;
    t->reasons = reasons;
    t->evictions = evictions;
    t->mem = mem;
    mem->evict[SO_MEM_TCP_FLOWS] = mem_evict;
    mem->ctx[SO_MEM_TCP_FLOWS] = t;
    return true;
}

/* ---- framer dispatch ----------------------------------------------------------------------- */

static void fr_init(so_tcp_table *t, so_flow *f, so_framer_kind kind) {
    f->kind = kind;
    if (kind == SO_FK_SIP)
        t->sip->init(f->st);
    else
        so_ws_init((so_ws *)f->st, kind == SO_FK_WS_SERVER);
}

static void fr_feed(so_tcp_table *t, so_flow *f, const uint8_t *p, size_t n) {
    if (f->kind == SO_FK_SIP)
        t->sip->feed(f->st, p, n, &t->env);
    else
        so_ws_feed((so_ws *)f->st, p, n, &t->env);
}

static void fr_reset(so_tcp_table *t, so_flow *f) {
    if (f->kind == SO_FK_SIP)
        t->sip->reset(f->st);
    else
        so_ws_reset((so_ws *)f->st);
}

static void fr_close(so_tcp_table *t, so_flow *f) {
    if (f->kind == SO_FK_SIP)
        t->sip->close(f->st, &t->env);
    else
        so_ws_close((so_ws *)f->st, &t->env);
}

static size_t fr_footprint(so_tcp_table *t, so_flow *f) {
    return f->kind == SO_FK_SIP ? t->sip->footprint(f->st) : so_ws_footprint((so_ws *)f->st);
}

/* What the flow holds now, charged to the budget (the difference from the last charge). */
static void charge(so_tcp_table *t, so_flow *f) {
    int64_t now = (int64_t)(SO_MEM_ENTRY(t->flows.item_size) + so_mem_block(fr_footprint(t, f)) +
                            f->held_bytes + 32 * (size_t)f->n_held +
                            so_mem_block((size_t)f->cap_held * sizeof(so_seg)));
    so_mem_charge(t->mem, SO_MEM_TCP_FLOWS, now - f->charged);
    f->charged = now;
}

static void fr_destroy(so_tcp_table *t, so_flow *f) {
    if (f->kind == SO_FK_SIP)
        t->sip->destroy(f->st);
    else
        so_ws_destroy((so_ws *)f->st);
}

/* ---- held segments: a binary min-heap ------------------------------------------------------ */

static inline bool seg_less(const so_seg *a, const so_seg *b) {
    if (a->pos != b->pos)
        return a->pos < b->pos;
    uint32_t m = SO_MIN(a->len, b->len);
    int c = m ? memcmp(a->data, b->data, m) : 0;
    return c < 0 || (c == 0 && a->len < b->len);
}

static bool heap_push(so_flow *f, so_seg s) {
    if (f->n_held == f->cap_held) {
        uint32_t cap = f->cap_held ? f->cap_held * 2 : 8;
        so_seg *h = (so_seg *)realloc(f->held, (size_t)cap * sizeof(so_seg));
        if (!h)
            return false;
        f->held = h;
        f->cap_held = cap;
    }
    uint32_t i = f->n_held++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!seg_less(&s, &f->held[parent]))
            break;
        f->held[i] = f->held[parent];
        i = parent;
    }
    f->held[i] = s;
    return true;
}

static so_seg heap_pop(so_flow *f) {
    so_seg top = f->held[0];
    so_seg last = f->held[--f->n_held];
    uint32_t n = f->n_held, i = 0;
    if (n) {
        for (;;) {
            uint32_t c = 2 * i + 1;
            if (c >= n)
                break;
            if (c + 1 < n && seg_less(&f->held[c + 1], &f->held[c]))
                c++;
            if (!seg_less(&f->held[c], &last))
                break;
            f->held[i] = f->held[c];
            i = c;
        }
        f->held[i] = last;
    }
    return top;
}

/* Drop held segments (close, eviction, port reuse); ``count``: the bytes are a gap. */
static void release(so_tcp_table *t, so_flow *f, bool count) {
    if (!f->n_held)
        return;
    if (count)
        t->reasons[SO_R_TCP_GAP]++;
    t->held_total -= f->held_bytes;
    for (uint32_t i = 0; i < f->n_held; i++)
        free(f->held[i].data);
    f->n_held = 0;
    f->held_bytes = 0;
}

static void close_slot(so_tcp_table *t, uint32_t slot, bool count) {
    so_flow *f = FLOW(t, slot);
    so_map_del(&t->index, f->key);
    release(t, f, count);
    if (count)
        fr_close(t, f);
    fr_destroy(t, f);
    free(f->held);
    f->held = NULL;
    f->cap_held = 0;
    so_mem_charge(t->mem, SO_MEM_TCP_FLOWS, -f->charged);
    f->charged = 0;
    so_pool_release(&t->flows, slot);
}

/* Close the least recently used flow, counted as ``why``; false if there is none. */
static bool evict_lru(so_tcp_table *t, so_eviction why) {
    if (t->flows.head == SO_NIL)
        return false;
    close_slot(t, t->flows.head, false);
    t->evictions[why]++;
    return true;
}

/* The memory budget's hook: the least recently used flow goes (``tcp_flows.memory``). */
static bool mem_evict(void *ctx, int table) {
    return evict_lru((so_tcp_table *)ctx, SO_E_TCP_FLOWS_MEMORY);
}

void so_tcp_free(so_tcp_table *t) {
    while (t->flows.head != SO_NIL)
        close_slot(t, t->flows.head, false);
    so_pool_free(&t->flows);
    so_map_free(&t->index);
    t->held_total = 0;
}

/* ---- the table ----------------------------------------------------------------------------- */

static so_h128 key_hash(const so_tcp_table *t, const so_flow_key *k) {
    so_hasher h;
    so_hasher_init(&h, t->seed);
    so_hasher_bytes(&h, k->src, k->ip_len);
    so_hasher_bytes(&h, k->dst, k->ip_len);
    so_hasher_u64(&h, ((uint64_t)k->sport << 16) | k->dport);
    return so_hasher_final(&h);
}

uint32_t so_tcp_get(const so_tcp_table *t, const so_flow_key *key) {
    return so_map_get(&t->index, key_hash(t, key));
}

uint32_t so_tcp_open(so_tcp_table *t, const so_flow_key *key, int64_t ts_ns, so_framer_kind kind) {
    if (t->flows.count >= t->limits->max_tcp_flows)
        evict_lru(t, SO_E_TCP_FLOWS_FULL);
    so_h128 k = key_hash(t, key);
    uint32_t slot = so_pool_alloc(&t->flows);
    if (slot == SO_NIL) {
        t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
        return SO_NIL;
    }
    if (!so_map_put(&t->index, k, slot)) {
        so_pool_release(&t->flows, slot);
        t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
        return SO_NIL;
    }
    so_flow *f = FLOW(t, slot);
    f->key = k;
    f->last_ts = ts_ns;
    f->isn = -1;
    f->next_seq = -1;
    f->next_pos = 0;
    f->fin_pos = -1;
    f->charged = 0;
    fr_init(t, f, kind);
    charge(t, f);
    return slot;
}

void so_tcp_set_framer(so_tcp_table *t, uint32_t slot, so_framer_kind kind) {
    so_flow *f = FLOW(t, slot);
    fr_destroy(t, f);
    fr_init(t, f, kind);
    charge(t, f);
}

int64_t so_tcp_next_pos(const so_tcp_table *t, uint32_t slot) { return FLOW(t, slot)->next_pos; }

uint32_t so_tcp_gen(const so_tcp_table *t, uint32_t slot) { return FLOW(t, slot)->e.gen; }

bool so_tcp_live(const so_tcp_table *t, uint32_t slot, uint32_t gen) {
    const so_flow *f = FLOW(t, slot);
    return f->e.live && f->e.gen == gen;
}

void so_tcp_close_key(so_tcp_table *t, const so_flow_key *key) {
    uint32_t slot = so_tcp_get(t, key);
    if (slot != SO_NIL)
        close_slot(t, slot, true);
}

void so_tcp_expire(so_tcp_table *t, int64_t now_ns) {
    while (t->flows.head != SO_NIL) {
        if (!so_expired(FLOW(t, t->flows.head)->last_ts, now_ns, t->limits->tcp_idle_timeout_ns))
            break;
        evict_lru(t, SO_E_TCP_FLOWS_TIMEOUT);
    }
}

/* Deliver held segments that have become contiguous. */
static void drain(so_tcp_table *t, so_flow *f) {
    while (f->n_held && f->held[0].pos <= f->next_pos) {
        so_seg s = heap_pop(f);
        f->held_bytes -= s.len;
        t->held_total -= s.len;
        int64_t skip = f->next_pos - s.pos;
        if (skip < (int64_t)s.len) {
            uint32_t n = s.len - (uint32_t)skip;
            fr_feed(t, f, s.data + skip, n);
            f->next_pos += n;
            f->next_seq = (int64_t)(((uint64_t)f->next_seq + n) & SEQ_MASK);
        }
        free(s.data);
    }
}

static void hold(so_tcp_table *t, so_flow *f, int64_t pos, const uint8_t *payload, uint32_t n) {
    const so_net_limits *lim = t->limits;
    t->reasons[SO_R_TCP_OUT_OF_ORDER]++;
    so_seg s = {pos, n, (uint8_t *)malloc(n)};
    if (s.data) /* the bytes first: the heap orders equal positions by them */
        memcpy(s.data, payload, n);
    if (!s.data || !heap_push(f, s)) {
        free(s.data);
        t->reasons[SO_R_INTERNAL_NO_MEMORY]++;
        return;
    }
    f->held_bytes += n;
    t->held_total += n;
    while (f->n_held && (pos + (int64_t)n - f->next_pos > (int64_t)lim->max_tcp_ooo_bytes_per_flow ||
                         f->held_bytes > lim->max_tcp_ooo_bytes_per_flow ||
                         f->n_held > lim->max_tcp_ooo_segments_per_flow ||
                         t->held_total > lim->max_tcp_ooo_bytes_total)) {
        /* Give the missing bytes up: jump to the first held segment. */
        t->reasons[SO_R_TCP_GAP]++;
        int64_t first = f->held[0].pos;
        f->next_seq = (int64_t)(((uint64_t)f->next_seq + (uint64_t)(first - f->next_pos)) & SEQ_MASK);
        f->next_pos = first;
        fr_reset(t, f);
        drain(t, f);
    }
}

static void segment(so_tcp_table *t, uint32_t slot, int64_t ts_ns, uint32_t seq, uint32_t flags,
                    const uint8_t *payload, size_t n) {
    so_flow *f = FLOW(t, slot);
    f->last_ts = ts_ns;
    so_pool_move_to_end(&t->flows, slot);
    if (flags & SO_TCP_RST) {
        close_slot(t, slot, true);
        return;
    }
    if (flags & SO_TCP_SYN) {
        if (f->isn != (int64_t)seq) { /* else a retransmitted SYN */
            if (f->next_seq >= 0) {   /* port reuse: a new connection */
                release(t, f, true);
                fr_reset(t, f);
                f->next_pos = 0;
                f->fin_pos = -1;
            }
            f->isn = seq;
            f->next_seq = (uint32_t)(seq + 1);
        }
        seq = seq + 1;
    } else if (f->next_seq < 0) {
        f->next_seq = seq;
    }
    uint32_t delta = seq - (uint32_t)f->next_seq;
    int64_t seg_pos;
    if (delta == 0) {
        if (n)
            fr_feed(t, f, payload, n);
        f->next_seq = (uint32_t)(seq + (uint32_t)n);
        f->next_pos += (int64_t)n;
        seg_pos = f->next_pos - (int64_t)n;
        if (f->n_held)
            drain(t, f);
    } else if (delta & SEQ_HALF) { /* behind: a retransmission, maybe with new bytes at its end */
        int64_t back = (int64_t)0x100000000LL - delta;
        seg_pos = f->next_pos - back;
        if (n)
            t->reasons[SO_R_TCP_RETRANSMISSION]++;
        if (back < (int64_t)n) {
            fr_feed(t, f, payload + back, n - (size_t)back);
            f->next_seq = (uint32_t)(seq + (uint32_t)n);
            f->next_pos += (int64_t)n - back;
            if (f->n_held)
                drain(t, f);
        }
    } else {
        seg_pos = f->next_pos + delta;
        if (n)
            hold(t, f, seg_pos, payload, (uint32_t)n);
    }
    if (flags & SO_TCP_FIN)
        f->fin_pos = seg_pos + (int64_t)n;
    if (f->fin_pos >= 0 && f->next_pos >= f->fin_pos)
        close_slot(t, slot, true);
}

void so_tcp_segment(so_tcp_table *t, uint32_t slot, int64_t ts_ns, uint32_t seq, uint32_t flags,
                    const uint8_t *payload, size_t n) {
    uint32_t gen = FLOW(t, slot)->e.gen;
    segment(t, slot, ts_ns, seq, flags, payload, n);
    if (so_tcp_live(t, slot, gen))
        charge(t, FLOW(t, slot));
}
