/* SPDX-License-Identifier: Apache-2.0
 * net: captured link-layer frames in, SIP transport payloads out. Sans-IO.
 *
 * ``so_net_feed(ts, linktype, data)`` walks one frame down the layers with offsets into the
 * original bytes: link (table by LINKTYPE; VLAN stacks, PPPoE) -> IPv4 | IPv6 (fragments
 * reassembled; IP-in-IP, GRE/ERSPAN, GTP-U unwrapped up to ``max_tunnel_depth``) -> UDP (one
 * payload per datagram) | TCP (per-flow reassembly -> the injected SIP stream framer, or the
 * WebSocket framer for RFC 7118 flows -> one payload per SIP message). Every payload goes to
 * ``on_payload`` at once. Outcomes without a payload are counted in ``reasons``; table
 * evictions in ``evictions``. Only packet time is used: so_net_handle_timer() expires
 * fragment sets and idle TCP flows. Semantics (every reason, limit and order) are those of
 * the pure-Python decoder this replaced; see docs/architecture.md.
 *
 * Capture files: so_pcap_* iterate classic pcap and pcapng records over a memory region
 * (an mmap), with nanosecond timestamps.
 */
#ifndef SO_NET_H
#define SO_NET_H

#include "so_framer.h"
#include "so_hash.h"
#include "so_reasons.h"
#include "so_types.h"

typedef struct so_net_limits {
    /* Concurrent datagrams being reassembled (Linux keeps <= 4 MiB of fragments). */
    uint32_t max_fragment_sets;         /* 4096 */
    int64_t fragment_timeout_ns;        /* 30 s (Linux ipfrag_time) */
    uint32_t max_fragment_bytes;        /* 65535: the 16-bit IP length fields */
    uint32_t max_fragments_per_set;     /* 256 */
    uint64_t max_fragment_memory_bytes; /* 16 MiB over all sets */
    uint32_t max_tcp_flows;             /* 65536 flow directions */
    int64_t tcp_idle_timeout_ns;        /* 600 s */
    uint32_t max_tcp_ooo_bytes_per_flow;    /* 256 KiB ahead of the in-order point */
    uint32_t max_tcp_ooo_segments_per_flow; /* 1024 */
    uint64_t max_tcp_ooo_bytes_total;       /* 64 MiB */
    uint32_t max_sip_message_bytes;         /* 128 KiB on a stream */
    uint32_t max_tunnel_depth;              /* 4 */
    uint64_t memory_limit; /* bytes over all tables (so_mem) when net owns its budget; 0: none */
} so_net_limits;

void so_net_limits_default(so_net_limits *limits);

typedef void (*so_payload_fn)(void *ctx, const so_payload *payload);

typedef struct so_net_config {
    so_net_limits limits;
    so_h128 seed;            /* keys the flow and fragment-set hashes (random per pipeline) */
    uint8_t sip_ports[8192]; /* bitmap: bit (p & 7) of byte p >> 3 set = SIP port */
    bool all_ports;
    so_sniff_fn looks_like_sip;      /* the SIP sniff (sip layer) */
    const so_framer_ops *sip_framer; /* SIP stream framing (sip layer) */
    so_payload_fn on_payload;
    /* Optional (media): offered each UDP payload on no SIP port first; true = it was taken. */
    bool (*on_other_udp)(void *ctx, const so_payload *payload);
    void *ctx;
    uint64_t *reasons;   /* [SO_N_REASONS], owned by the caller */
    uint64_t *evictions; /* [SO_N_EVICTIONS], owned by the caller */
    so_mem *mem;         /* the shared memory budget (NULL: net keeps its own, limits.memory_limit) */
} so_net_config;

typedef struct so_net so_net;

so_net *so_net_new(const so_net_config *cfg); /* NULL when memory runs out */
void so_net_free(so_net *net);
void so_net_feed(so_net *net, int64_t ts_ns, uint32_t linktype, const uint8_t *data, size_t len);
void so_net_handle_timer(so_net *net, int64_t now_ns);
size_t so_net_fragment_sets(const so_net *net);
size_t so_net_tcp_flows(const so_net *net);
uint64_t so_net_tcp_held_bytes(const so_net *net);  /* out-of-order bytes held, all flows */
uint64_t so_net_fragment_memory(const so_net *net); /* fragment bytes held, all sets */
const so_mem *so_net_mem(const so_net *net);        /* the budget net charges */
/* Sizes the budget charges per entry (for tests): 0 a flow entry (with its framer state),
 * 1 a fragment set, 2 one slot of a set's piece array. */
size_t so_net_entry_size(const so_net *net, int which);

/* ---- capture files -------------------------------------------------------------------------- */

typedef enum so_pcap_status {
    SO_PCAP_MORE = 0,  /* stopped at max_frames; call again */
    SO_PCAP_END = 1,   /* the whole file was read */
    SO_PCAP_ERROR = 2, /* corrupt or truncated: see err_* (frames before it were delivered) */
    SO_PCAP_NEED = 3,  /* the next record runs past a region that is not the last (``final`` 0):
                        * hand the bytes from ``off`` on plus at least ``need`` in all to
                        * so_pcap_refill, then call so_pcap_next again */
} so_pcap_status;

/* Error kinds; the binding turns (kind, err_off, err_a, err_b) into CaptureFileError's
 * sentence. Classic pcap: */
typedef enum so_pcap_err {
    SO_PCAP_E_NONE = 0,
    SO_PCAP_E_MAGIC,         /* not a pcap or pcapng file */
    SO_PCAP_E_FILE_HEADER,   /* truncated pcap file header (err_a = size of 24 bytes) */
    SO_PCAP_E_RECORD_HEADER, /* truncated record header at err_off (err_a of 16 bytes) */
    SO_PCAP_E_RECORD_LENGTH, /* corrupt record at err_off: caplen err_a > snaplen err_b */
    SO_PCAP_E_RECORD_DATA,   /* truncated packet at err_off (err_a of err_b bytes) */
    /* pcapng: */
    SO_PCAP_E_BLOCK_HEADER,  /* truncated block header at err_off */
    SO_PCAP_E_BYTE_ORDER,    /* bad byte-order magic at err_off */
    SO_PCAP_E_BLOCK_CUT,     /* block at err_off cut short (type err_a, length err_b) */
    SO_PCAP_E_BLOCK_CORRUPT, /* corrupt block at err_off (type err_a, length err_b) */
    SO_PCAP_E_EPB,           /* corrupt packet block (interface err_a, captured length err_b) */
    SO_PCAP_E_SPB,           /* simple packet block before any interface */
    SO_PCAP_E_PB,            /* corrupt obsolete packet block */
    SO_PCAP_E_NO_MEMORY,     /* interface table could not grow */
    SO_PCAP_E_SHORT_PACKET,  /* packet block shorter than its fixed fields (type err_a, length err_b) */
} so_pcap_err;

/* ns = ((ts * num) / div) >> shift + offset_s * 10^9, in 128 bits (if_tsresol: 10^-n or 2^-n
 * seconds; if_tsoffset: seconds). A result outside 0..INT64_MAX drops the frame, counted in
 * ``ts_range``. */
typedef struct so_pcap_iface {
    uint32_t linktype;
    uint32_t shift;
    uint64_t num, div;
    int64_t offset_s;
} so_pcap_iface;

#define SO_PCAP_MAX_RECORD (256u * 1024 * 1024) /* a larger classic record is corruption */
#define SO_PCAP_MAX_BLOCK (SO_PCAP_MAX_RECORD + 65536u) /* likewise a pcapng block */

/* The file is read as a series of regions (a whole file in memory is one region with ``final``
 * 1); offsets in errors and ``base + off`` are from the start of the file. */
typedef struct so_pcap {
    const uint8_t *buf;
    size_t size;
    size_t off;    /* next record / block, in this region */
    uint64_t base; /* file offset of buf[0] */
    int final;     /* this region ends at the end of the file */
    size_t need;   /* SO_PCAP_NEED: bytes from ``off`` the next record needs at least */
    uint64_t ts_range; /* frames dropped: timestamp outside 0..INT64_MAX ns (pcap.timestamp_range) */
    int pcapng;  /* 0: classic pcap */
    int big_endian;
    uint32_t linktype; /* classic pcap */
    uint32_t snaplen;
    uint64_t frac_mult; /* classic pcap: 1000 (us) or 1 (ns) */
    /* pcapng: interfaces of the current section (malloc'd; so_pcap_close frees them) */
    uint32_t n_ifaces, cap_ifaces;
    so_pcap_iface *ifaces;
    /* the error, formatted by the binding into CaptureFileError's sentence */
    int err_kind; /* so_pcap_err */
    size_t err_off;
    uint64_t err_a, err_b;
} so_pcap;

typedef void (*so_frame_fn)(void *ctx, int64_t ts_ns, uint32_t linktype, const uint8_t *data,
                            size_t len, uint32_t ifindex);

/* Check the file header; 0 or an error kind (err_* set). The region must outlive ``pc``. */
int so_pcap_open(so_pcap *pc, const uint8_t *buf, size_t size);
/* The next region: ``buf`` starts at file offset ``base`` (base + off of the region before when
 * SO_PCAP_NEED asked for it); ``final`` when it ends at the end of the file. */
void so_pcap_refill(so_pcap *pc, const uint8_t *buf, size_t size, uint64_t base, int final);
/* Deliver up to max_frames frames (at least one when there is one) to ``on_frame``. */
so_pcap_status so_pcap_next(so_pcap *pc, size_t max_frames, so_frame_fn on_frame, void *ctx);
/* Free what so_pcap_open/next allocated (safe to call twice, and on a zeroed so_pcap). */
void so_pcap_close(so_pcap *pc);

#endif
