/* SPDX-License-Identifier: Apache-2.0
 * Deadline queues: a min-queue of (deadline, seq, item) with lazy deletion.
 *
 * Most deadlines are "now + a fixed delay" (Timer B/F, lingering, retry windows), so they
 * arrive in time order: so_dq_push_in_order() appends those to a FIFO in O(1) and pops them in
 * O(1); anything else (or a packet older than the FIFO's tail) goes to a binary heap. Pops
 * merge the two by (deadline, seq), so the order is exactly that of a single heap and, for
 * equal deadlines, that of the pushes. Items are two 64-bit words whose meaning belongs to the
 * queue's owner (a (slot, generation) reference or a 128-bit key); the owner re-checks each
 * popped item against its table, which is what makes deletion lazy.
 */
#ifndef SO_DQ_H
#define SO_DQ_H

#include "so_common.h"

typedef struct so_dq_item {
    int64_t deadline;
    uint64_t seq : 56; /* push order (2^56 pushes: never wraps in practice) */
    uint64_t kind : 8; /* which of the owner's item types */
    uint64_t a, b;     /* the item: a (slot, generation) reference or a 128-bit key */
} so_dq_item;

typedef struct so_dq {
    so_dq_item *heap;
    size_t heap_n, heap_cap;
    so_dq_item *fifo; /* ring buffer */
    size_t fifo_head, fifo_n, fifo_cap;
    uint64_t seq;
} so_dq;

void so_dq_init(so_dq *q);
void so_dq_free(so_dq *q);
bool so_dq_push(so_dq *q, int64_t deadline, uint32_t kind, uint64_t a, uint64_t b);
bool so_dq_push_in_order(so_dq *q, int64_t deadline, uint32_t kind, uint64_t a, uint64_t b);
/* Earliest deadline; false when empty. */
bool so_dq_next_due(const so_dq *q, int64_t *deadline);
bool so_dq_due(const so_dq *q, int64_t now);
/* Pop the earliest item if its deadline is <= now. */
bool so_dq_pop_due(so_dq *q, int64_t now, so_dq_item *out);
size_t so_dq_len(const so_dq *q);
/* Replace the content by ``items`` (new seqs in the given order), FIFO emptied. */
bool so_dq_rebuild(so_dq *q, const so_dq_item *items, size_t n);
/* Visit every queued item (order unspecified); for releasing references at teardown. */
void so_dq_each(const so_dq *q, void (*fn)(void *ctx, const so_dq_item *item), void *ctx);

#endif
