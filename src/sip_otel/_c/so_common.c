/* SPDX-License-Identifier: Apache-2.0
 * Shared tables and small utilities: reason slugs, method names, growable buffers, the hash
 * index and the ordered pool (so_map.h).
 */
#include "so_map.h"
#include "so_reasons.h"
#include "so_types.h"

#define SO_X_SLUG(id, slug) slug,
const char *const so_reason_slugs[SO_N_REASONS] = {SO_REASON_LIST(SO_X_SLUG)};
const char *const so_eviction_slugs[SO_N_EVICTIONS] = {SO_EVICTION_LIST(SO_X_SLUG)};
#undef SO_X_SLUG

#define SO_X_NAME(m) #m,
const char *const so_method_names[SO_N_METHODS] = {"", SO_METHOD_LIST(SO_X_NAME) NULL};
#undef SO_X_NAME

so_method so_method_of(const uint8_t *p, size_t n) {
    /* Dispatch on length and first byte: at most one memcmp. */
    switch (n) {
    case 3:
        if (p[0] == 'A' && memcmp(p, "ACK", 3) == 0)
            return SO_M_ACK;
        if (p[0] == 'B' && memcmp(p, "BYE", 3) == 0)
            return SO_M_BYE;
        break;
    case 4:
        if (p[0] == 'I' && memcmp(p, "INFO", 4) == 0)
            return SO_M_INFO;
        break;
    case 5:
        if (p[0] == 'P' && memcmp(p, "PRACK", 5) == 0)
            return SO_M_PRACK;
        if (p[0] == 'R' && memcmp(p, "REFER", 5) == 0)
            return SO_M_REFER;
        break;
    case 6:
        switch (p[0]) {
        case 'I':
            if (memcmp(p, "INVITE", 6) == 0)
                return SO_M_INVITE;
            break;
        case 'C':
            if (memcmp(p, "CANCEL", 6) == 0)
                return SO_M_CANCEL;
            break;
        case 'U':
            if (memcmp(p, "UPDATE", 6) == 0)
                return SO_M_UPDATE;
            break;
        case 'N':
            if (memcmp(p, "NOTIFY", 6) == 0)
                return SO_M_NOTIFY;
            break;
        }
        break;
    case 7:
        if (p[0] == 'O' && memcmp(p, "OPTIONS", 7) == 0)
            return SO_M_OPTIONS;
        if (p[0] == 'M' && memcmp(p, "MESSAGE", 7) == 0)
            return SO_M_MESSAGE;
        if (p[0] == 'P' && memcmp(p, "PUBLISH", 7) == 0)
            return SO_M_PUBLISH;
        break;
    case 8:
        if (p[0] == 'R' && memcmp(p, "REGISTER", 8) == 0)
            return SO_M_REGISTER;
        break;
    case 9:
        if (p[0] == 'S' && memcmp(p, "SUBSCRIBE", 9) == 0)
            return SO_M_SUBSCRIBE;
        break;
    }
    return SO_M_OTHER;
}

/* ---- so_buf -------------------------------------------------------------------------------- */

bool so_buf_reserve(so_buf *b, size_t extra) {
    if (b->cap - b->n >= extra)
        return true;
    size_t want = b->n + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    uint8_t *p = (uint8_t *)realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool so_buf_append(so_buf *b, const uint8_t *p, size_t n) {
    if (n == 0)
        return true;
    if (!so_buf_reserve(b, n))
        return false;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return true;
}

void so_buf_consume(so_buf *b, size_t n) {
    if (n >= b->n) {
        b->n = 0;
        return;
    }
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
}

void so_buf_free(so_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- so_map -------------------------------------------------------------------------------- */

void so_map_init(so_map *m) {
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

void so_map_free(so_map *m) {
    free(m->slots);
    so_map_init(m);
}

void so_map_clear(so_map *m) {
    if (m->slots)
        for (uint32_t i = 0; i <= m->mask; i++)
            m->slots[i].val = SO_NIL;
    m->count = 0;
}

uint32_t so_map_get(const so_map *m, so_h128 k) {
    if (!m->slots)
        return SO_NIL;
    uint32_t i = (uint32_t)k.a & m->mask;
    for (;;) {
        const so_map_slot *s = &m->slots[i];
        if (s->val == SO_NIL)
            return SO_NIL;
        if (s->ka == k.a && s->kb == (uint32_t)k.b)
            return s->val;
        i = (i + 1) & m->mask;
    }
}

static bool so_map_grow(so_map *m) {
    uint32_t cap = m->slots ? (m->mask + 1) * 2 : 64;
    if (cap == 0) /* 2^32 slots: never reached, tables are bounded far below */
        return false;
    so_map_slot *slots = (so_map_slot *)malloc((size_t)cap * sizeof(so_map_slot));
    if (!slots)
        return false;
    for (uint32_t i = 0; i < cap; i++)
        slots[i].val = SO_NIL;
    uint32_t mask = cap - 1;
    if (m->slots) {
        for (uint32_t j = 0; j <= m->mask; j++) {
            so_map_slot *s = &m->slots[j];
            if (s->val == SO_NIL)
                continue;
            uint32_t i = (uint32_t)s->ka & mask;
            while (slots[i].val != SO_NIL)
                i = (i + 1) & mask;
            slots[i] = *s;
        }
        free(m->slots);
    }
    m->slots = slots;
    m->mask = mask;
    return true;
}

bool so_map_put(so_map *m, so_h128 k, uint32_t val) {
    if (!m->slots || (uint64_t)(m->count + 1) * 4 > (uint64_t)(m->mask + 1) * 3) {
        if (!so_map_grow(m))
            return false;
    }
    uint32_t i = (uint32_t)k.a & m->mask;
    for (;;) {
        so_map_slot *s = &m->slots[i];
        if (s->val == SO_NIL) {
            s->ka = k.a;
            s->kb = (uint32_t)k.b;
            s->val = val;
            m->count++;
            return true;
        }
        if (s->ka == k.a && s->kb == (uint32_t)k.b) {
            s->val = val;
            return true;
        }
        i = (i + 1) & m->mask;
    }
}

uint32_t so_map_get_or_put(so_map *m, so_h128 k, uint32_t val, bool *failed) {
    *failed = false;
    if (!m->slots || (uint64_t)(m->count + 1) * 4 > (uint64_t)(m->mask + 1) * 3) {
        if (!so_map_grow(m)) {
            *failed = true;
            return SO_NIL;
        }
    }
    uint32_t i = (uint32_t)k.a & m->mask;
    for (;;) {
        so_map_slot *s = &m->slots[i];
        if (s->val == SO_NIL) {
            s->ka = k.a;
            s->kb = (uint32_t)k.b;
            s->val = val;
            m->count++;
            return SO_NIL;
        }
        if (s->ka == k.a && s->kb == (uint32_t)k.b)
            return s->val;
        i = (i + 1) & m->mask;
    }
}

uint32_t so_map_del(so_map *m, so_h128 k) {
    if (!m->slots)
        return SO_NIL;
    uint32_t mask = m->mask;
    uint32_t i = (uint32_t)k.a & mask;
    for (;;) {
        so_map_slot *s = &m->slots[i];
        if (s->val == SO_NIL)
            return SO_NIL;
        if (s->ka == k.a && s->kb == (uint32_t)k.b)
            break;
        i = (i + 1) & mask;
    }
    uint32_t val = m->slots[i].val;
    /* Backward shift: move later members of the probe run into the hole when their home
     * slot does not lie cyclically in (hole, j]. */
    uint32_t hole = i;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        so_map_slot *s = &m->slots[j];
        if (s->val == SO_NIL)
            break;
        uint32_t home = (uint32_t)s->ka & mask;
        bool between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!between) {
            m->slots[hole] = *s;
            hole = j;
        }
    }
    m->slots[hole].val = SO_NIL;
    m->count--;
    return val;
}

/* ---- so_pool ------------------------------------------------------------------------------- */

void so_pool_init(so_pool *p, size_t item_size) {
    memset(p, 0, sizeof(*p));
    p->item_size = (item_size + 7) & ~(size_t)7;
    p->free_head = p->head = p->tail = SO_NIL;
}

void so_pool_free(so_pool *p) {
    free(p->items);
    so_pool_init(p, p->item_size);
}

uint32_t so_pool_alloc(so_pool *p) {
    uint32_t slot = p->free_head;
    if (slot == SO_NIL) {
        if (p->fresh >= p->cap) {
            /* Grow by doubling with realloc: a large block is moved by mremap, without a copy
             * and without touching the new half, whose slots stay out of RSS until they are
             * handed out in order from ``fresh`` (never threaded onto the free list, which
             * would touch every one of them now). Slots at or past ``fresh`` are garbage:
             * nothing reads them before so_pool_alloc() initialises them. */
            uint32_t cap = p->cap ? p->cap * 2 : 64;
            uint8_t *items = (uint8_t *)realloc(p->items, (size_t)cap * p->item_size);
            if (!items)
                return SO_NIL;
            p->items = items;
            p->cap = cap;
        }
        slot = p->fresh++;
        so_pool_entry(p, slot)->gen = 0;
    } else {
        p->free_head = so_pool_entry(p, slot)->next;
    }
    so_entry *e = so_pool_entry(p, slot);
    uint32_t gen = e->gen;
    memset(e, 0, p->item_size);
    e->gen = gen;
    e->live = 1;
    e->prev = p->tail;
    e->next = SO_NIL;
    if (p->tail != SO_NIL)
        so_pool_entry(p, p->tail)->next = slot;
    else
        p->head = slot;
    p->tail = slot;
    p->count++;
    return slot;
}

static void so_pool_unlink(so_pool *p, uint32_t slot) {
    so_entry *e = so_pool_entry(p, slot);
    if (e->prev != SO_NIL)
        so_pool_entry(p, e->prev)->next = e->next;
    else
        p->head = e->next;
    if (e->next != SO_NIL)
        so_pool_entry(p, e->next)->prev = e->prev;
    else
        p->tail = e->prev;
}

void so_pool_release(so_pool *p, uint32_t slot) {
    so_entry *e = so_pool_entry(p, slot);
    if (!e->live)
        return;
    so_pool_unlink(p, slot);
    e->live = 0;
    e->gen++;
    e->prev = SO_NIL;
    e->next = p->free_head;
    p->free_head = slot;
    p->count--;
}

void so_pool_move_to_end(so_pool *p, uint32_t slot) {
    if (p->tail == slot)
        return;
    so_pool_unlink(p, slot);
    so_entry *e = so_pool_entry(p, slot);
    e->prev = p->tail;
    e->next = SO_NIL;
    so_pool_entry(p, p->tail)->next = slot;
    p->tail = slot;
}

/* ---- so_mem -------------------------------------------------------------------------------- */

const char *const so_mem_table_names[SO_MEM_N] = {
    "tcp_flows", "fragments", "transactions", "attempts", "dialogs", "registrations", "records",
};

void so_mem_init(so_mem *m, uint64_t limit) {
    memset(m, 0, sizeof(*m));
    m->limit = limit;
}

void so_mem_enforce(so_mem *m) {
    bool done[SO_MEM_N] = {false};
    m->depth++; /* evictions run layer code that enters and leaves: no recursion */
    while (so_mem_tables(m) > 0 && (uint64_t)so_mem_tables(m) > so_mem_tables_limit(m)) {
        int big = -1;
        for (int i = 0; i < SO_MEM_N; i++)
            if (!done[i] && m->evict[i] && m->used[i] > 0 && (big < 0 || m->used[i] > m->used[big]))
                big = i;
        if (big < 0)
            break;
        if (!m->evict[big](m->ctx[big], big))
            done[big] = true;
    }
    m->depth--;
}
