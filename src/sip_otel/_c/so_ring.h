/* SPDX-License-Identifier: Apache-2.0
 * Capture adapters in C: the consumer side of the eBPF filter's BPF ring buffer, and the
 * TPACKET_V3 blocks of the AF_PACKET fallback. The Python capture modules own the sockets and
 * the mappings (I/O); these walk the mapped memory and hand frames on without Python objects.
 *
 * BPF ring buffer (like libbpf's ring_buffer__consume): the consumer-position page is mapped
 * read-write; the producer-position page and the data area read-only. The data area is mapped
 * once (libbpf maps it twice so that a record that wraps is contiguous, but every page mapped
 * twice counts twice in the reader's RSS: 32 MiB for a 16 MiB ring); the rare record that wraps
 * is copied whole into ``wrap_buf``. Each record is the kernel's 8-byte header (length | BUSY |
 * DISCARD, page offset), then ``struct rec_hdr`` (bpf/sip_record.h) and the packet, padded to 8
 * bytes. The kernel writes a record, then clears BUSY with release semantics; we load the
 * producer position and each header with acquire semantics and publish the consumer position
 * with release semantics (correct on weakly ordered CPUs too).
 */
#ifndef SO_RING_H
#define SO_RING_H

#include "so_common.h"

typedef void (*so_live_frame_fn)(void *ctx, int64_t ts_ns, const uint8_t *data, size_t len,
                                 uint32_t ifindex, uint16_t pkt_type);

typedef struct so_ring {
    uint64_t *cons_pos;       /* consumer position (read-write page) */
    const uint64_t *prod_pos; /* producer position (read-only page) */
    const uint8_t *data;      /* size bytes: the data area */
    uint64_t size;            /* data area bytes, a power of two */
    int64_t offset_ns;        /* CLOCK_REALTIME - CLOCK_MONOTONIC */
    uint64_t cons;
    uint64_t max_backlog; /* most bytes ever waiting at a read (diagnostics) */
    uint64_t bad_records; /* records whose header does not fit (never seen; counted) */
    uint64_t wrapped;     /* records copied because they wrapped (diagnostics) */
    uint8_t vlan_buf[65535 + 4 + 64];
    uint8_t wrap_buf[65535 + 64]; /* one record: struct rec_hdr + MAX_CAPLEN, 8-padded */
} so_ring;

void so_ring_init(so_ring *r, uint64_t *cons_pos, const uint64_t *prod_pos, const uint8_t *data,
                  uint64_t size, int64_t offset_ns);
bool so_ring_pending(const so_ring *r);
/* Hand up to ``max_frames`` waiting packets to ``fn`` (Ethernet frames, VLAN tag re-inserted);
 * returns how many. */
size_t so_ring_drain(so_ring *r, size_t max_frames, so_live_frame_fn fn, void *ctx);

/* The same over the filter's per-CPU rings (at most SO_RINGS_MAX): every ring is drained and
 * the records are handed on merged in kernel timestamp order (the smallest waiting ts first;
 * each CPU's own records are already in order), so packet time stays monotonic for the
 * pipeline across CPUs. A record still being written stops its ring for this call. */
#define SO_RINGS_MAX 256
size_t so_rings_drain(so_ring *const *rings, size_t n, size_t max_frames, so_live_frame_fn fn,
                      void *ctx);

/* TPACKET_V3 receive ring of ``nblocks`` blocks of ``block_size`` bytes at ``base``: every
 * block the kernel has handed over (TP_STATUS_USER), from ``*block`` on, until one is not or
 * ``max_frames`` were delivered; each block is given back (TP_STATUS_KERNEL) once read.
 * Packets carry the skb receive time (CLOCK_REALTIME). Returns the packets delivered. */
typedef struct so_tpacket {
    uint8_t *base;
    size_t block_size;
    uint32_t nblocks;
    uint32_t block;
    uint64_t bad_packets;
    uint8_t vlan_buf[65535 + 4 + 64];
} so_tpacket;

size_t so_tpacket_read(so_tpacket *r, size_t max_frames, so_live_frame_fn fn, void *ctx);

#endif
