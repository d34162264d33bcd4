/* SPDX-License-Identifier: Apache-2.0
 * Deadline queues (so_dq.h): FIFO for in-order deadlines, binary heap for the rest.
 */
#include "so_dq.h"

static inline bool dq_less(const so_dq_item *x, const so_dq_item *y) {
    return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}

void so_dq_init(so_dq *q) { memset(q, 0, sizeof(*q)); }

void so_dq_free(so_dq *q) {
    free(q->heap);
    free(q->fifo);
    so_dq_init(q);
}

static bool heap_push(so_dq *q, so_dq_item it) {
    if (q->heap_n == q->heap_cap) {
        size_t cap = q->heap_cap ? q->heap_cap * 2 : 64;
        so_dq_item *h = (so_dq_item *)realloc(q->heap, cap * sizeof(so_dq_item));
        if (!h)
            return false;
        q->heap = h;
        q->heap_cap = cap;
    }
    size_t i = q->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!dq_less(&it, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = it;
    return true;
}

static void heap_sift_down(so_dq *q, size_t i) {
    size_t n = q->heap_n;
    so_dq_item it = q->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && dq_less(&q->heap[child + 1], &q->heap[child]))
            child++;
        if (!dq_less(&q->heap[child], &it))
            break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    q->heap[i] = it;
}

static so_dq_item heap_pop(so_dq *q) {
    so_dq_item top = q->heap[0];
    q->heap_n--;
    if (q->heap_n) {
        q->heap[0] = q->heap[q->heap_n];
        heap_sift_down(q, 0);
    }
    return top;
}

static bool fifo_push(so_dq *q, so_dq_item it) {
    if (q->fifo_n == q->fifo_cap) {
        /* Grow in place with realloc (a large block moves by mremap: no transient second
         * copy), then move the wrapped front part, [0, head), to just past the old end: the
         * ring is full, so its items are [head, old) then [0, head), and 2 * old holds both. */
        size_t old = q->fifo_cap;
        size_t cap = old ? old * 2 : 64;
        so_dq_item *f = (so_dq_item *)realloc(q->fifo, cap * sizeof(so_dq_item));
        if (!f)
            return false;
        if (q->fifo_head)
            memcpy(f + old, f, q->fifo_head * sizeof(so_dq_item));
        q->fifo = f;
        q->fifo_cap = cap;
    }
    q->fifo[(q->fifo_head + q->fifo_n) % q->fifo_cap] = it;
    q->fifo_n++;
    return true;
}

static inline so_dq_item *fifo_front(const so_dq *q) { return &q->fifo[q->fifo_head]; }
static inline so_dq_item *fifo_back(const so_dq *q) {
    return &q->fifo[(q->fifo_head + q->fifo_n - 1) % q->fifo_cap];
}

bool so_dq_push(so_dq *q, int64_t deadline, uint32_t kind, uint64_t a, uint64_t b) {
    so_dq_item it = {.deadline = deadline, .seq = ++q->seq, .kind = kind, .a = a, .b = b};
    return heap_push(q, it);
}

bool so_dq_push_in_order(so_dq *q, int64_t deadline, uint32_t kind, uint64_t a, uint64_t b) {
    so_dq_item it = {.deadline = deadline, .seq = ++q->seq, .kind = kind, .a = a, .b = b};
    if (q->fifo_n == 0 || fifo_back(q)->deadline <= deadline)
        return fifo_push(q, it);
    return heap_push(q, it); /* packet time went backwards (reordered capture) */
}

bool so_dq_next_due(const so_dq *q, int64_t *deadline) {
    if (q->fifo_n) {
        int64_t f = fifo_front(q)->deadline;
        *deadline = (q->heap_n && q->heap[0].deadline < f) ? q->heap[0].deadline : f;
        return true;
    }
    if (q->heap_n) {
        *deadline = q->heap[0].deadline;
        return true;
    }
    return false;
}

bool so_dq_due(const so_dq *q, int64_t now) {
    return (q->fifo_n && fifo_front(q)->deadline <= now) ||
           (q->heap_n && q->heap[0].deadline <= now);
}

bool so_dq_pop_due(so_dq *q, int64_t now, so_dq_item *out) {
    if (q->fifo_n && fifo_front(q)->deadline <= now) {
        if (q->heap_n && dq_less(&q->heap[0], fifo_front(q))) {
            *out = heap_pop(q);
        } else {
            *out = *fifo_front(q);
            q->fifo_head = (q->fifo_head + 1) % q->fifo_cap;
            q->fifo_n--;
        }
        return true;
    }
    if (q->heap_n && q->heap[0].deadline <= now) {
        *out = heap_pop(q);
        return true;
    }
    return false;
}

size_t so_dq_len(const so_dq *q) { return q->heap_n + q->fifo_n; }

bool so_dq_rebuild(so_dq *q, const so_dq_item *items, size_t n) {
    so_dq_item *h = NULL;
    size_t cap = n ? n : 1;
    h = (so_dq_item *)malloc(cap * sizeof(so_dq_item));
    if (!h)
        return false;
    for (size_t i = 0; i < n; i++) {
        h[i] = items[i];
        h[i].seq = ++q->seq;
    }
    free(q->heap);
    q->heap = h;
    q->heap_n = n;
    q->heap_cap = cap;
    for (size_t i = n / 2; i-- > 0;)
        heap_sift_down(q, i);
    q->fifo_n = 0;
    q->fifo_head = 0;
    return true;
}

void so_dq_each(const so_dq *q, void (*fn)(void *ctx, const so_dq_item *item), void *ctx) {
    for (size_t i = 0; i < q->heap_n; i++)
        fn(ctx, &q->heap[i]);
    for (size_t i = 0; i < q->fifo_n; i++)
        fn(ctx, &q->fifo[(q->fifo_head + i) % q->fifo_cap]);
}
