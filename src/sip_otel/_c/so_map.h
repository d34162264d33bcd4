/* SPDX-License-Identifier: Apache-2.0
 * Tables: a hash index (128-bit key -> 32-bit slot) and an ordered pool of fixed-size entries.
 *
 * so_map: open addressing, linear probing, deletion by backward shift (no tombstones), grows
 * by doubling at three-quarter load. Keys are so_h128 (see so_hash.h), stored as a 96-bit
 * fingerprint (so_map_slot); values are pool slots.
 *
 * so_pool: entries of one type in one array, addressed by slot number (stable across growth),
 * recycled through a free list, and kept on a doubly linked list in insertion order with
 * move-to-end: the OrderedDict of the tables (oldest first for eviction, LRU for flows). Every
 * entry starts with an so_entry header whose ``gen`` changes when the slot is freed, so a
 * timer that still refers to (slot, gen) can tell that its entry is gone.
 */
#ifndef SO_MAP_H
#define SO_MAP_H

#include "so_hash.h"

#define SO_NIL UINT32_MAX

/* 16 bytes: the key's first word and the low 32 bits of its second (a 96-bit fingerprint;
 * the entries keep the whole key) -- two keys agreeing on 96 bits of a keyed 128-bit hash are
 * as likely as a 96-bit hash collision, 2^-96 per pair. */
typedef struct so_map_slot {
    uint64_t ka;
    uint32_t kb;  /* low half of the key's second word */
    uint32_t val; /* SO_NIL: empty */
} so_map_slot;

typedef struct so_map {
    so_map_slot *slots;
    uint32_t mask; /* capacity - 1 (capacity is a power of two), 0 when unallocated */
    uint32_t count;
} so_map;

void so_map_init(so_map *m);
void so_map_free(so_map *m);
void so_map_clear(so_map *m);
/* The slot stored under ``k``, or SO_NIL. */
uint32_t so_map_get(const so_map *m, so_h128 k);
/* Insert or replace; false only when memory runs out. */
bool so_map_put(so_map *m, so_h128 k, uint32_t val);
/* The value stored under ``k`` if present (nothing inserted); else inserts ``val`` and returns
 * SO_NIL -- one probe for "look up, insert if new". SO_NIL with *failed when memory runs out. */
uint32_t so_map_get_or_put(so_map *m, so_h128 k, uint32_t val, bool *failed);
/* Remove ``k`` if present; returns its value or SO_NIL. */
uint32_t so_map_del(so_map *m, so_h128 k);

typedef struct so_entry {
    uint32_t prev, next; /* insertion-order list (SO_NIL ends) */
    uint32_t gen;        /* bumped on free */
    uint32_t live;       /* 1 while allocated */
} so_entry;

typedef struct so_pool {
    uint8_t *items;
    size_t item_size;
    uint32_t cap, count;
    uint32_t fresh;     /* slots from here to cap were never handed out (not initialised) */
    uint32_t free_head; /* released slots, singly linked through entry.next */
    uint32_t head, tail; /* oldest, newest */
} so_pool;

void so_pool_init(so_pool *p, size_t item_size);
void so_pool_free(so_pool *p);
/* A zeroed entry appended at the newest end; SO_NIL when memory runs out. */
uint32_t so_pool_alloc(so_pool *p);
/* Unlink and recycle (its gen changes). */
void so_pool_release(so_pool *p, uint32_t slot);
void so_pool_move_to_end(so_pool *p, uint32_t slot);

static inline so_entry *so_pool_entry(const so_pool *p, uint32_t slot) {
    return (so_entry *)(p->items + (size_t)slot * p->item_size);
}
#define SO_POOL_AT(pool, type, slot) ((type *)so_pool_entry((pool), (slot)))

#endif
