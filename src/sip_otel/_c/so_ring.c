/* SPDX-License-Identifier: Apache-2.0
 * Capture adapters: BPF ring buffer consumer and TPACKET_V3 block walker (so_ring.h).
 */
#include "so_ring.h"

#include "sip_record.h"

#define RB_BUSY (1U << 31)
#define RB_DISCARD (1U << 30)
#define RB_LEN_MASK (RB_DISCARD - 1)
#define RB_HDR 8

void so_ring_init(so_ring *r, uint64_t *cons_pos, const uint64_t *prod_pos, const uint8_t *data,
                  uint64_t size, int64_t offset_ns) {
    r->cons_pos = cons_pos;
    r->prod_pos = prod_pos;
    r->data = data;
    r->size = size;
    r->offset_ns = offset_ns;
    r->cons = __atomic_load_n(cons_pos, __ATOMIC_ACQUIRE);
    r->max_backlog = 0;
    r->bad_records = 0;
    r->wrapped = 0;
}

bool so_ring_pending(const so_ring *r) {
    return __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE) > r->cons;
}

/* Put back a tag the kernel moved into skb metadata (after the two MAC addresses). */
static size_t insert_vlan(uint8_t *out, const uint8_t *frame, size_t len, uint16_t tci,
                          uint16_t proto) {
    if (len < 12) {
        memcpy(out, frame, len);
        return len;
    }
    memcpy(out, frame, 12);
    out[12] = (uint8_t)(proto >> 8);
    out[13] = (uint8_t)proto;
    out[14] = (uint8_t)(tci >> 8);
    out[15] = (uint8_t)tci;
    memcpy(out + 16, frame + 12, len - 12);
    return len + 4;
}

/* Positions only grow; at the end of uint64 they stay there (no wrap to 0). */
static inline void advance(so_ring *r, uint64_t step) {
    if (__builtin_add_overflow(r->cons, step, &r->cons))
        r->cons = UINT64_MAX;
}

/* The next committed record of ``r`` at or after r->cons (discarded ones skipped and consumed):
 * fills *h and *pkt (the packet after the header, copied into wrap_buf if it wraps) and returns
 * the ring bytes it takes, or 0 when none is ready. r->cons is not moved past it. */
static uint64_t ring_peek(so_ring *r, uint64_t prod, struct rec_hdr *h, const uint8_t **pkt,
                          size_t *caplen) {
    uint64_t mask = r->size - 1;
    while (r->cons < prod) {
        uint64_t at = r->cons & mask;
        if ((at & 7) || at + RB_HDR > r->size) {
            /* Positions the kernel never writes (records are 8-aligned): a consumer page
             * someone else wrote. Nothing here can be trusted: skip to the producer. */
            r->bad_records++;
            r->cons = prod;
            return 0;
        }
        const uint8_t *rec = r->data + at;
        uint32_t hlen = __atomic_load_n((const uint32_t *)rec, __ATOMIC_ACQUIRE);
        if (hlen & RB_BUSY)
            return 0; /* still being written */
        uint32_t len = hlen & RB_LEN_MASK;
        uint64_t step = (len + RB_HDR + 7) & ~7ULL;
        if (hlen & RB_DISCARD) {
            advance(r, step);
            continue;
        }
        /* The 8-byte kernel header never wraps (records are 8-aligned, the area is pages);
         * a body that runs past the end of the area continues at its start: copy it. */
        uint64_t start = (at + RB_HDR) & mask;
        const uint8_t *body = r->data + start;
        bool ok = len >= sizeof(*h) && len <= r->size;
        if (ok && start + len > r->size) {
            ok = len <= sizeof(r->wrap_buf);
            if (ok) {
                size_t first = (size_t)(r->size - start);
                memcpy(r->wrap_buf, body, first);
                memcpy(r->wrap_buf + first, r->data, len - first);
                body = r->wrap_buf;
                r->wrapped++;
            }
        }
        if (!ok) {
            r->bad_records++;
            advance(r, step);
            continue;
        }
        memcpy(h, body, sizeof(*h));
        *pkt = body + sizeof(*h);
        *caplen = SO_MIN((size_t)h->caplen, (size_t)(len - sizeof(*h)));
        return step;
    }
    return 0;
}

static void deliver(so_ring *r, const struct rec_hdr *h, const uint8_t *pkt, size_t caplen,
                    so_live_frame_fn fn, void *ctx) {
    int64_t ts = so_sat_add((int64_t)h->ts_ns, r->offset_ns);
    if (h->vlan_proto && caplen <= 65535) {
        size_t m = insert_vlan(r->vlan_buf, pkt, caplen, h->vlan_tci, h->vlan_proto);
        fn(ctx, ts, r->vlan_buf, m, h->ifindex, h->pkt_type);
    } else {
        fn(ctx, ts, pkt, caplen, h->ifindex, h->pkt_type);
    }
}

static void publish(so_ring *r) {
    __atomic_store_n(r->cons_pos, r->cons, __ATOMIC_RELEASE);
}

size_t so_ring_drain(so_ring *r, size_t max_frames, so_live_frame_fn fn, void *ctx) {
    return so_rings_drain(&r, 1, max_frames, fn, ctx);
}

/* One record from one of n rings at a time: the waiting record with the smallest timestamp
 * (ties: the lower ring index). Each ring's head is peeked once and kept until it is taken;
 * the producer positions are loaded once per call, so a call ends (and publishes the consumer
 * positions) after the records that were ready when it started. */
size_t so_rings_drain(so_ring *const *rings, size_t n, size_t max_frames, so_live_frame_fn fn,
                      void *ctx) {
    enum { MAX = SO_RINGS_MAX };
    if (n > MAX)
        n = MAX;
    uint64_t prod[MAX], step[MAX], start[MAX];
    struct rec_hdr hdr[MAX];
    const uint8_t *pkt[MAX];
    size_t caplen[MAX];
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        so_ring *r = rings[i];
        prod[i] = __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE);
        start[i] = r->cons;
        if (prod[i] > r->cons && prod[i] - r->cons > r->max_backlog)
            r->max_backlog = prod[i] - r->cons;
        step[i] = max_frames ? ring_peek(r, prod[i], &hdr[i], &pkt[i], &caplen[i]) : 0;
        live += step[i] != 0;
    }
    size_t got = 0;
    while (live && got < max_frames) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (step[i] && (best == n || hdr[i].ts_ns < hdr[best].ts_ns))
                best = i;
        so_ring *r = rings[best];
        deliver(r, &hdr[best], pkt[best], caplen[best], fn, ctx);
        got++;
        advance(r, step[best]);
        step[best] = got < max_frames ? ring_peek(r, prod[best], &hdr[best], &pkt[best],
                                                  &caplen[best]) : 0;
        if (!step[best])
            live--;
    }
    for (size_t i = 0; i < n; i++)
        if (rings[i]->cons != start[i])
            publish(rings[i]);
    return got;
}

/* ---- TPACKET_V3 -------------------------------------------------------------------------------- */

#define TP_STATUS_KERNEL 0
#define TP_STATUS_USER 1
#define TP_STATUS_VLAN_VALID (1 << 4)
#define TP_STATUS_VLAN_TPID_VALID (1 << 6)
#define TPACKET3_HDR_LEN 48 /* TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): sockaddr_ll follows */

size_t so_tpacket_read(so_tpacket *r, size_t max_frames, so_live_frame_fn fn, void *ctx) {
    size_t n = 0;
    while (n < max_frames) {
        uint8_t *blk = r->base + (size_t)r->block * r->block_size;
        uint32_t *status = (uint32_t *)(blk + 8);
        if (!(__atomic_load_n(status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            break;
        uint32_t npkts = so_le32(blk + 12);
        size_t pos = so_le32(blk + 16);
        for (uint32_t i = 0; i < npkts; i++) {
            if (pos + TPACKET3_HDR_LEN + 20 > r->block_size) {
                r->bad_packets++;
                break;
            }
            const uint8_t *p = blk + pos;
            uint32_t next = so_le32(p);
            int64_t ts = (int64_t)so_le32(p + 4) * SO_NS_PER_S + so_le32(p + 8);
            uint32_t snaplen = so_le32(p + 12);
            uint32_t pstatus = so_le32(p + 20);
            uint16_t mac = so_le16(p + 24);
            uint32_t tci = so_le32(p + 32);
            uint16_t tpid = so_le16(p + 36);
            int32_t ifindex = (int32_t)so_le32(p + TPACKET3_HDR_LEN + 4);
            uint8_t pkttype = p[TPACKET3_HDR_LEN + 10];
            if (pos + mac + (size_t)snaplen > r->block_size) {
                r->bad_packets++;
            } else if (pstatus & TP_STATUS_VLAN_VALID && snaplen <= 65535) {
                uint16_t proto = (pstatus & TP_STATUS_VLAN_TPID_VALID) ? tpid : 0x8100;
                size_t m = insert_vlan(r->vlan_buf, p + mac, snaplen, (uint16_t)tci, proto);
                fn(ctx, ts, r->vlan_buf, m, (uint32_t)ifindex, pkttype);
                n++;
            } else {
                fn(ctx, ts, p + mac, snaplen, (uint32_t)ifindex, pkttype);
                n++;
            }
            if (next == 0)
                break;
            pos += next;
        }
        __atomic_store_n(status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        r->block = (r->block + 1) % r->nblocks;
    }
    return n;
}
