/* SPDX-License-Identifier: Apache-2.0
 * 128-bit keyed hashing of table keys.
 *
 * Tables keep no copy of the strings they are keyed by (a Call-ID, tags, a branch...): a key
 * is the 128-bit hash of its fields, and two keys are equal when their hashes are. An
 * accidental collision between two live keys has probability ~n^2/2^129 (1e-28 for 200k
 * entries); the seed is random per pipeline, so a sender cannot aim for one either. The
 * mixing step is a 64x64->128 multiply folded by xor ("mum"), two lanes with different
 * constants; every field is absorbed with its length, so ("ab","c") != ("a","bc").
 */
#ifndef SO_HASH_H
#define SO_HASH_H

#include "so_common.h"

typedef struct so_h128 {
    uint64_t a, b;
} so_h128;

static inline bool so_h128_eq(so_h128 x, so_h128 y) { return x.a == y.a && x.b == y.b; }

static inline uint64_t so_mum(uint64_t x, uint64_t y) {
    __uint128_t r = (__uint128_t)x * y;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

#define SO_HK1 0x9E3779B97F4A7C15ULL
#define SO_HK2 0xC2B2AE3D27D4EB4FULL
#define SO_HK3 0x165667B19E3779F9ULL
#define SO_HK4 0xD6E8FEB86659FD93ULL

typedef struct so_hasher {
    uint64_t a, b;
} so_hasher;

static inline void so_hasher_init(so_hasher *h, so_h128 seed) {
    h->a = seed.a ^ SO_HK1;
    h->b = seed.b ^ SO_HK2;
}

static inline void so_hasher_word(so_hasher *h, uint64_t w) {
    h->a = so_mum(h->a ^ w, SO_HK3);
    h->b = so_mum(h->b ^ w ^ SO_HK1, SO_HK4);
}

static inline void so_hasher_u64(so_hasher *h, uint64_t v) { so_hasher_word(h, v ^ 0x5bd1e995ULL); }

static inline void so_hasher_bytes(so_hasher *h, const uint8_t *p, size_t n) {
    so_hasher_word(h, (uint64_t)n);
    while (n >= 16) { /* 16 bytes per step: one multiply per lane */
        uint64_t w0 = so_le64(p), w1 = so_le64(p + 8);
        h->a = so_mum(h->a ^ w0, w1 ^ SO_HK3);
        h->b = so_mum(h->b ^ w1, w0 ^ SO_HK4);
        p += 16;
        n -= 16;
    }
    while (n >= 8) {
        so_hasher_word(h, so_le64(p));
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        so_hasher_word(h, w);
    }
}

static inline void so_hasher_slice(so_hasher *h, so_slice s) { so_hasher_bytes(h, s.p, s.n); }

static inline so_h128 so_hasher_final(const so_hasher *h) {
    so_h128 r;
    r.a = so_mum(h->a ^ SO_HK2, h->b ^ SO_HK3);
    r.b = so_mum(h->b ^ SO_HK4, h->a ^ SO_HK1) ^ h->a;
    return r;
}

/* A Call-ID's 64-bit hash: the key the tracker's events and the media layer share. */
static inline uint64_t so_call_hash(so_h128 seed, const uint8_t *p, size_t n) {
    so_hasher h;
    so_hasher_init(&h, seed);
    so_hasher_u64(&h, 0x63616c6c2d6964ULL); /* "call-id": its own domain */
    so_hasher_bytes(&h, p, n);
    return so_hasher_final(&h).a;
}

#endif
