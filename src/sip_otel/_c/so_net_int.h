/* SPDX-License-Identifier: Apache-2.0
 * net internals shared by the so_net_*.c files (not part of the net interface, so_net.h).
 *
 * Layers return an ``int``: SO_NET_OK to go on, or the so_reason code that ends the frame
 * (the pure-Python decoder raised DecodeError(slug) there; feed() counted it). Reasons that do
 * not end the frame are counted where they happen.
 */
#ifndef SO_NET_INT_H
#define SO_NET_INT_H

#include "so_map.h"
#include "so_net.h"

#define SO_NET_OK (-1)

#define SO_ETH_IPV4 0x0800
#define SO_ETH_IPV6 0x86DD

/* Where the IP packet inside a link layer or tunnel header is: data[off:end]. */
typedef struct so_l3 {
    uint32_t etype; /* SO_ETH_IPV4 or SO_ETH_IPV6 */
    size_t off, end;
} so_l3;

/* ---- link layers, GRE, GTP-U (so_net_link.c) ----------------------------------------------- */

#define SO_MAX_VLAN_TAGS 8
#define SO_GTPU_PORT 2152
#define SO_MAX_GTP_EXTENSIONS 16

int so_link_decode(uint32_t linktype, const uint8_t *d, size_t n, so_l3 *out);
int so_link_ethernet_at(const uint8_t *d, size_t off, size_t end, so_l3 *out);
int so_gre_decap(const uint8_t *d, size_t off, size_t end, so_l3 *out);
int so_gtpu_decap(const uint8_t *d, size_t off, size_t end, so_l3 *out);

/* ---- fragment reassembly (so_net_frag.c) --------------------------------------------------- */

typedef struct so_frag_key {
    uint8_t src[16], dst[16];
    uint8_t ip_len; /* 4 or 16 */
    uint32_t ident;
    int32_t proto; /* IPv4: the IP protocol (part of the key); IPv6: -1 */
} so_frag_key;

typedef struct so_frag_table {
    so_map index;
    so_pool sets;
    so_h128 seed;
    uint32_t max_sets;
    int64_t timeout_ns;
    uint32_t max_bytes;
    uint32_t max_pieces;
    uint64_t max_memory;
    uint64_t memory; /* payload bytes held over all sets */
    uint64_t pieces_cap; /* piece-array entries allocated over all sets */
    uint64_t *reasons;
    uint64_t *evictions;
    so_mem *mem;
} so_frag_table;

void so_frag_init(so_frag_table *t, const so_net_limits *limits, so_h128 seed, uint64_t *reasons,
                  uint64_t *evictions, so_mem *mem);
void so_frag_free(so_frag_table *t);
/* Store one fragment. Returns 1 when the set completes: *out is the datagram payload (malloc'd,
 * the caller frees it; NULL only for an empty one, which cannot happen), *out_len its length,
 * *out_proto the protocol of the offset-0 fragment. 0 otherwise (counted as needed). */
int so_frag_add(so_frag_table *t, const so_frag_key *key, int64_t ts_ns, uint32_t offset, bool more,
                const uint8_t *p, size_t n, int proto, uint8_t **out, size_t *out_len,
                int *out_proto);
void so_frag_expire(so_frag_table *t, int64_t now_ns);
size_t so_frag_entry_size(int which); /* 0: a set, 1: a piece slot */
static inline size_t so_frag_count(const so_frag_table *t) { return t->sets.count; }

/* ---- TCP flows (so_net_tcp.c) -------------------------------------------------------------- */

#define SO_TCP_FIN 0x01
#define SO_TCP_SYN 0x02
#define SO_TCP_RST 0x04

typedef struct so_flow_key {
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint8_t ip_len;
} so_flow_key;

typedef enum so_framer_kind { SO_FK_SIP = 0, SO_FK_WS_CLIENT = 1, SO_FK_WS_SERVER = 2 } so_framer_kind;

typedef struct so_tcp_table {
    so_map index;
    so_pool flows; /* so_flow entries, least recently used first */
    so_h128 seed;
    const so_net_limits *limits;
    const so_framer_ops *sip; /* the SIP stream framer */
    so_framer_env env;        /* reasons, message limit, emit */
    uint64_t held_total;
    uint64_t *reasons;
    uint64_t *evictions;
    so_mem *mem; /* charged: flow entries + framer buffers + held segments (SO_MEM_TCP_FLOWS) */
} so_tcp_table;

bool so_tcp_init(so_tcp_table *t, const so_net_limits *limits, const so_framer_ops *sip,
                 so_h128 seed, uint64_t *reasons, uint64_t *evictions, so_emit_fn emit, void *ctx,
                 so_mem *mem);
void so_tcp_free(so_tcp_table *t);
uint32_t so_tcp_get(const so_tcp_table *t, const so_flow_key *key);
/* Start tracking a flow direction (evicting the least recently used when full); SO_NIL when
 * memory runs out (counted). */
uint32_t so_tcp_open(so_tcp_table *t, const so_flow_key *key, int64_t ts_ns, so_framer_kind kind);
/* Replace the framer of a flow (a fresh one of ``kind``; the old one is dropped uncounted). */
void so_tcp_set_framer(so_tcp_table *t, uint32_t slot, so_framer_kind kind);
/* The unwrapped stream position of a flow (bytes delivered so far). */
int64_t so_tcp_next_pos(const so_tcp_table *t, uint32_t slot);
bool so_tcp_live(const so_tcp_table *t, uint32_t slot, uint32_t gen);
uint32_t so_tcp_gen(const so_tcp_table *t, uint32_t slot);
/* Feed one segment of a tracked flow; complete messages go to env.emit at once. */
void so_tcp_segment(so_tcp_table *t, uint32_t slot, int64_t ts_ns, uint32_t seq, uint32_t flags,
                    const uint8_t *payload, size_t n);
/* Close a flow direction if tracked (FIN reached, RST), counting what was unfinished. */
void so_tcp_close_key(so_tcp_table *t, const so_flow_key *key);
void so_tcp_expire(so_tcp_table *t, int64_t now_ns);
static inline size_t so_tcp_count(const so_tcp_table *t) { return t->flows.count; }

/* ---- WebSocket (so_net_ws.c) --------------------------------------------------------------- */

#define SO_WS_MAX_HANDSHAKE_BYTES (16 * 1024)

typedef struct so_ws {
    uint8_t response; /* server side: the handshake must be a 101 */
    uint8_t state;    /* handshake, frames, dead */
    uint8_t in_msg, discard;
    so_buf buf;   /* stream bytes not framed yet */
    so_buf parts; /* unmasked payload of the message being assembled */
    size_t scan;  /* handshake: where the search for the empty line resumes */
    uint64_t skip; /* payload bytes of an over-limit frame still to discard */
} so_ws;

void so_ws_init(so_ws *ws, bool response);
void so_ws_feed(so_ws *ws, const uint8_t *data, size_t n, const so_framer_env *env);
void so_ws_reset(so_ws *ws);
void so_ws_close(so_ws *ws, const so_framer_env *env);
void so_ws_destroy(so_ws *ws);
size_t so_ws_pending(const so_ws *ws);
size_t so_ws_footprint(const so_ws *ws);
bool so_ws_is_sip_upgrade(const uint8_t *d, size_t off, size_t end);

#endif
