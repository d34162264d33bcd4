/* SPDX-License-Identifier: Apache-2.0
 * The frame decoder: captured link-layer frames in, SIP transport payloads out. Sans-IO.
 *
 * so_net_feed(ts, linktype, data) walks one frame down the layers with offsets into the
 * original bytes (nothing is copied until reassembly needs it):
 *
 *   link (switch by LINKTYPE; VLAN stacks, PPPoE)                    -> so_net_link.c
 *   IPv4 (options, padding trimmed by total length) | IPv6 (extension headers, AH)
 *     fragments -> so_net_frag.c (a completed datagram continues from here, from its own
 *       buffer; addresses still come from the header of the completing fragment)
 *     IP-in-IP / 6in4 / 4in6 -> back to IPv4/IPv6, at most max_tunnel_depth times
 *     GRE (ERSPAN, bridged Ethernet, PPTP's PPP) -> so_net_link.c -> IPv4/IPv6 (same bound)
 *   UDP to port 2152 -> GTP-U G-PDU -> IPv4/IPv6 (same bound), before the SIP port filter
 *   UDP -> one payload with the whole datagram payload (pointing into the frame)
 *   TCP -> so_net_tcp.c stream reassembly -> the SIP stream framer -> one payload per SIP
 *     message (a flow opening with a SIP WebSocket handshake: so_net_ws.c, one payload per
 *     WebSocket data message, transport still TCP)
 *
 * Outcomes that produce no payload are counted in ``reasons``: ``net.<reason>`` for malformed
 * input, ``skipped.<reason>`` for traffic that is fine but not SIP, ``tcp.<reason>`` and
 * ``sip_framing.<reason>`` for stream events. Table evictions go to ``evictions``. A layer that
 * finds the frame unusable returns the reason code and the walk stops there (the Python
 * decoder raised DecodeError). Checksums are not verified: with checksum offload, captured
 * outgoing packets carry wrong ones. Only packet time is used.
 *
 * Port filter: a UDP datagram or TCP flow is SIP when its source or destination port is a SIP
 * port; with ``all_ports`` also when the payload (TCP: the first data segment seen) starts with
 * a SIP request or status line (the injected sniff), or (TCP) with a SIP WebSocket upgrade
 * request. GTP-U is unwrapped before this filter.
 */
#include "so_net_int.h"

#define IPPROTO_IPIP 4
#define IPPROTO_IPV6 41
#define IPPROTO_GRE 47
#define IPPROTO_AH 51
#define IPPROTO_FRAGMENT 44
#define IPPROTO_NONE 59
#define TUNNEL_GTPU 0x100 /* not an IP protocol number: a GTP-U payload for tunnel() */

struct so_net {
    so_net_config cfg;
    so_frag_table frags;
    so_tcp_table tcp;
    so_payload cur; /* the flow of the TCP segment being fed: framer emissions use it */
    so_mem own;     /* the budget when the caller passes none (cfg.mem NULL) */
    so_mem *mem;
};

void so_net_limits_default(so_net_limits *l) {
    l->max_fragment_sets = 4096;
    l->fragment_timeout_ns = 30 * SO_NS_PER_S;
    l->max_fragment_bytes = 65535;
    l->max_fragments_per_set = 256;
    l->max_fragment_memory_bytes = 16 * 1024 * 1024;
    l->max_tcp_flows = 65536;
    l->tcp_idle_timeout_ns = 600 * SO_NS_PER_S;
    l->max_tcp_ooo_bytes_per_flow = 256 * 1024;
    l->max_tcp_ooo_segments_per_flow = 1024;
    l->max_tcp_ooo_bytes_total = 64 * 1024 * 1024;
    l->max_sip_message_bytes = 128 * 1024;
    l->max_tunnel_depth = 4;
    l->memory_limit = 256ULL * 1024 * 1024;
}

static void tcp_emit(void *ctx, const uint8_t *msg, uint32_t len) {
    so_net *net = (so_net *)ctx;
    net->cur.data = msg;
    net->cur.len = len;
    net->cfg.on_payload(net->cfg.ctx, &net->cur);
}

so_net *so_net_new(const so_net_config *cfg) {
    so_net *net = (so_net *)calloc(1, sizeof(so_net));
    if (!net)
        return NULL;
    net->cfg = *cfg;
    so_mem_init(&net->own, cfg->limits.memory_limit);
    net->mem = cfg->mem ? cfg->mem : &net->own;
    so_h128 seed = cfg->seed;
    so_frag_init(&net->frags, &net->cfg.limits, seed, cfg->reasons, cfg->evictions, net->mem);
    seed.a ^= 0x5851F42D4C957F2DULL;
    so_tcp_init(&net->tcp, &net->cfg.limits, cfg->sip_framer, seed, cfg->reasons, cfg->evictions,
                tcp_emit, net, net->mem);
    return net;
}

void so_net_free(so_net *net) {
    if (!net)
        return;
    so_frag_free(&net->frags);
    so_tcp_free(&net->tcp);
    free(net);
}

void so_net_handle_timer(so_net *net, int64_t now_ns) {
    so_mem_enter(net->mem);
    so_frag_expire(&net->frags, now_ns);
    so_tcp_expire(&net->tcp, now_ns);
    so_mem_leave(net->mem);
}

const so_mem *so_net_mem(const so_net *net) { return net->mem; }

size_t so_net_entry_size(const so_net *net, int which) {
    return which == 0 ? net->tcp.flows.item_size : so_frag_entry_size(which - 1);
}

size_t so_net_fragment_sets(const so_net *net) { return so_frag_count(&net->frags); }
size_t so_net_tcp_flows(const so_net *net) { return so_tcp_count(&net->tcp); }
uint64_t so_net_tcp_held_bytes(const so_net *net) { return net->tcp.held_total; }
uint64_t so_net_fragment_memory(const so_net *net) { return net->frags.memory; }

static inline bool sip_port(const so_net *net, uint32_t port) {
    return (net->cfg.sip_ports[port >> 3] >> (port & 7)) & 1;
}

/* Fragmented datagrams worth reassembling (others are counted as skipped protocols at once):
 * UDP, TCP, tunnels and the IPv6 extension headers. */
static inline bool reassemble(uint32_t proto) {
    switch (proto) {
    case SO_PROTO_UDP: case SO_PROTO_TCP: case IPPROTO_IPIP: case IPPROTO_IPV6: case IPPROTO_GRE:
    case 0: case 43: case 60: case 135: case 139: case 140: case IPPROTO_AH:
        return true;
    default:
        return false;
    }
}

/* IPv6 extension headers with the common (next header, length in 8-octet units - 1) layout:
 * hop-by-hop, routing, destination options, mobility, HIP, shim6. */
static inline bool ipv6_ext(uint32_t nh) {
    return nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140;
}

static int ipv4(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, uint32_t depth);
static int ipv6(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, uint32_t depth);

static int tunnel(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, uint32_t depth,
                  uint32_t proto) {
    if (depth >= net->cfg.limits.max_tunnel_depth)
        return SO_R_NET_TUNNEL_TOO_DEEP;
    if (proto == IPPROTO_IPIP)
        return ipv4(net, ts, d, off, end, depth + 1);
    if (proto == IPPROTO_IPV6)
        return ipv6(net, ts, d, off, end, depth + 1);
    so_l3 l;
    int r = proto == IPPROTO_GRE ? so_gre_decap(d, off, end, &l) : so_gtpu_decap(d, off, end, &l);
    if (r != SO_NET_OK)
        return r;
    if (l.etype == SO_ETH_IPV4)
        return ipv4(net, ts, d, l.off, l.end, depth + 1);
    return ipv6(net, ts, d, l.off, l.end, depth + 1);
}

/* One UDP datagram's payload as the layers above take it (hdr + aoff: the addresses). */
static inline void udp_payload(so_payload *pl, int64_t ts, const uint8_t *hdr, size_t aoff,
                               uint32_t alen, uint32_t sport, uint32_t dport, const uint8_t *data,
                               size_t len) {
    pl->ts_ns = ts;
    pl->transport = SO_PROTO_UDP;
    pl->ip_len = (uint8_t)alen;
    pl->sport = (uint16_t)sport;
    pl->dport = (uint16_t)dport;
    memcpy(pl->src, hdr + aoff, alen);
    memcpy(pl->dst, hdr + aoff + alen, alen);
    pl->data = data;
    pl->len = (uint32_t)len;
}

/* hdr + aoff: source address (alen bytes), destination address right after it. */
static int udp(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, const uint8_t *hdr,
               size_t aoff, uint32_t alen, uint32_t depth) {
    if (end - off < 8)
        return SO_R_NET_TRUNCATED_UDP;
    uint32_t sport = so_be16(d + off), dport = so_be16(d + off + 2);
    size_t ulen = so_be16(d + off + 4);
    if (ulen != end - off) {
        if (ulen == 0 && end - off > 0xFFFF) {
            /* jumbogram (RFC 2675 section 4) */
        } else if (ulen < 8 || off + ulen > end) {
            return SO_R_NET_BAD_UDP_LENGTH;
        } else {
            end = off + ulen;
        }
    }
    off += 8;
    if (off == end) {
        net->cfg.reasons[SO_R_SKIPPED_EMPTY_PAYLOAD]++;
        return SO_NET_OK;
    }
    so_payload pl;
    if (!sip_port(net, sport) && !sip_port(net, dport)) {
        /* G-PDUs go to 2152 from any source port (TS 29.281 section 4.4.2). */
        if (dport == SO_GTPU_PORT)
            return tunnel(net, ts, d, off, end, depth, TUNNEL_GTPU);
        /* media to a learned endpoint (so_media.c) takes the datagram */
        if (net->cfg.on_other_udp) {
            udp_payload(&pl, ts, hdr, aoff, alen, sport, dport, d + off, end - off);
            if (net->cfg.on_other_udp(net->cfg.ctx, &pl))
                return SO_NET_OK;
        }
        if (!net->cfg.all_ports) {
            net->cfg.reasons[SO_R_SKIPPED_PORT]++;
            return SO_NET_OK;
        }
        if (!net->cfg.looks_like_sip(d + off, end - off)) {
            net->cfg.reasons[SO_R_SKIPPED_NOT_SIP]++;
            return SO_NET_OK;
        }
    }
    udp_payload(&pl, ts, hdr, aoff, alen, sport, dport, d + off, end - off);
    net->cfg.on_payload(net->cfg.ctx, &pl);
    return SO_NET_OK;
}

static inline bool starts_get(const uint8_t *d, size_t off, size_t end) {
    return end - off >= 4 && memcmp(d + off, "GET ", 4) == 0;
}

/* Both directions of a connection starting a SIP WebSocket handshake (RFC 7118): WebSocket
 * framers, the reverse one expecting the server's 101. */
static uint32_t websocket(so_net *net, int64_t ts, const so_flow_key *key, uint32_t slot) {
    so_tcp_table *t = &net->tcp;
    if (slot == SO_NIL)
        slot = so_tcp_open(t, key, ts, SO_FK_WS_CLIENT);
    else
        so_tcp_set_framer(t, slot, SO_FK_WS_CLIENT);
    if (slot == SO_NIL)
        return SO_NIL;
    uint32_t gen = so_tcp_gen(t, slot);
    so_flow_key rkey = *key;
    memcpy(rkey.src, key->dst, 16);
    memcpy(rkey.dst, key->src, 16);
    rkey.sport = key->dport;
    rkey.dport = key->sport;
    uint32_t back = so_tcp_get(t, &rkey);
    if (back == SO_NIL)
        so_tcp_open(t, &rkey, ts, SO_FK_WS_SERVER);
    else if (so_tcp_next_pos(t, back) == 0)
        so_tcp_set_framer(t, back, SO_FK_WS_SERVER);
    /* Opening the reverse direction in a full table may have evicted this one (the Python
     * decoder raised KeyError there): the segment is then dropped. */
    return so_tcp_live(t, slot, gen) ? slot : SO_NIL;
}

static int tcp(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, const uint8_t *hdr,
               size_t aoff, uint32_t alen) {
    if (end - off < 20)
        return SO_R_NET_TRUNCATED_TCP;
    uint32_t sport = so_be16(d + off), dport = so_be16(d + off + 2);
    uint32_t seq = so_be32(d + off + 4);
    uint32_t hlf = so_be16(d + off + 12);
    size_t hlen = (hlf >> 10) & 0x3C;
    if (hlen < 20)
        return SO_R_NET_BAD_TCP_HEADER;
    off += hlen;
    if (off > end)
        return SO_R_NET_TRUNCATED_TCP;
    bool port_ok = sip_port(net, sport) || sip_port(net, dport);
    if (!port_ok && !net->cfg.all_ports) { /* flows exist only on SIP ports then */
        net->cfg.reasons[SO_R_SKIPPED_PORT]++;
        return SO_NET_OK;
    }
    so_flow_key key;
    memset(&key, 0, sizeof(key));
    memcpy(key.src, hdr + aoff, alen);
    memcpy(key.dst, hdr + aoff + alen, alen);
    key.sport = (uint16_t)sport;
    key.dport = (uint16_t)dport;
    key.ip_len = (uint8_t)alen;
    so_flow_key rkey = key;
    memcpy(rkey.src, key.dst, 16);
    memcpy(rkey.dst, key.src, 16);
    rkey.sport = key.dport;
    rkey.dport = key.sport;
    so_tcp_table *t = &net->tcp;
    uint32_t slot = so_tcp_get(t, &key);
    if (slot == SO_NIL) {
        if (hlf & SO_TCP_RST) {
            so_tcp_close_key(t, &rkey);
            return SO_NET_OK;
        }
        if (off < end && starts_get(d, off, end) && so_ws_is_sip_upgrade(d, off, end)) {
            slot = websocket(net, ts, &key, SO_NIL);
        } else if (port_ok) {
            if (off == end && !(hlf & SO_TCP_SYN))
                return SO_NET_OK; /* a bare ACK/FIN of a flow we do not follow */
            slot = so_tcp_open(t, &key, ts, SO_FK_SIP);
        } else if (off == end || !net->cfg.looks_like_sip(d + off, end - off)) {
            net->cfg.reasons[SO_R_SKIPPED_NOT_SIP]++;
            return SO_NET_OK;
        } else {
            slot = so_tcp_open(t, &key, ts, SO_FK_SIP);
        }
    } else if (so_tcp_next_pos(t, slot) == 0 && off < end && starts_get(d, off, end) &&
               so_ws_is_sip_upgrade(d, off, end)) {
        /* a flow opened by its SYN on a SIP port turns out to be WebSocket */
        slot = websocket(net, ts, &key, slot);
    }
    if (slot != SO_NIL) {
        so_payload *cur = &net->cur;
        cur->ts_ns = ts;
        cur->transport = SO_PROTO_TCP;
        cur->ip_len = (uint8_t)alen;
        cur->sport = (uint16_t)sport;
        cur->dport = (uint16_t)dport;
        memcpy(cur->src, key.src, 16);
        memcpy(cur->dst, key.dst, 16);
        so_tcp_segment(t, slot, ts, seq, hlf, d + off, end - off);
    }
    if (hlf & SO_TCP_RST)
        so_tcp_close_key(t, &rkey);
    return SO_NET_OK;
}

static int ipv4(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, uint32_t depth) {
    if (end - off < 20)
        return SO_R_NET_TRUNCATED_IPV4;
    uint32_t vihl = d[off];
    size_t total = so_be16(d + off + 2);
    uint32_t frag = so_be16(d + off + 6);
    uint32_t proto = d[off + 9];
    size_t ihl = (vihl & 0x0F) << 2;
    if (vihl >> 4 != 4 || ihl < 20)
        return SO_R_NET_BAD_IPV4_HEADER;
    if (total == 0) /* TSO / BIG TCP: length left for the capture to tell */
        total = end - off;
    if (total < ihl)
        return SO_R_NET_BAD_IPV4_HEADER;
    if (off + total > end)
        return SO_R_NET_TRUNCATED_IPV4;
    end = off + total; /* trims Ethernet padding */
    const uint8_t *hdr = d; /* addresses stay in the header */
    size_t aoff = off + 12;
    size_t p = off + ihl;
    uint8_t *dgram = NULL;
    if (frag & 0x3FFF) { /* more fragments, or an offset */
        if (!reassemble(proto)) {
            net->cfg.reasons[SO_R_SKIPPED_IP_PROTOCOL]++;
            return SO_NET_OK;
        }
        so_frag_key key;
        memset(&key, 0, sizeof(key));
        memcpy(key.src, d + off + 12, 4);
        memcpy(key.dst, d + off + 16, 4);
        key.ip_len = 4;
        key.ident = so_be16(d + off + 4);
        key.proto = (int32_t)proto;
        size_t dlen;
        int dproto;
        if (!so_frag_add(&net->frags, &key, ts, (frag & 0x1FFF) << 3, (frag & 0x2000) != 0, d + p,
                         end - p, (int)proto, &dgram, &dlen, &dproto))
            return SO_NET_OK;
        d = dgram;
        p = 0;
        end = dlen;
    }
    int r;
    if (proto == SO_PROTO_UDP)
        r = udp(net, ts, d, p, end, hdr, aoff, 4, depth);
    else if (proto == SO_PROTO_TCP)
        r = tcp(net, ts, d, p, end, hdr, aoff, 4);
    else if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6 || proto == IPPROTO_GRE)
        r = tunnel(net, ts, d, p, end, depth, proto);
    else {
        net->cfg.reasons[SO_R_SKIPPED_IP_PROTOCOL]++;
        r = SO_NET_OK;
    }
    free(dgram);
    return r;
}

static int ipv6(so_net *net, int64_t ts, const uint8_t *d, size_t off, size_t end, uint32_t depth) {
    if (end - off < 40)
        return SO_R_NET_TRUNCATED_IPV6;
    uint32_t vcf = so_be32(d + off);
    size_t plen = so_be16(d + off + 4);
    uint32_t nh = d[off + 6];
    if (vcf >> 28 != 6)
        return SO_R_NET_BAD_IPV6_HEADER;
    size_t p = off + 40;
    if (plen) { /* 0: jumbogram (RFC 2675) or BIG TCP, the capture tells the length */
        if (p + plen > end)
            return SO_R_NET_TRUNCATED_IPV6;
        end = p + plen;
    }
    const uint8_t *hdr = d;
    uint8_t *dgram = NULL; /* the reassembled datagram, once there is one */
    int r = SO_NET_OK;
    for (;;) {
        if (nh == SO_PROTO_UDP) {
            r = udp(net, ts, d, p, end, hdr, off + 8, 16, depth);
            break;
        }
        if (nh == SO_PROTO_TCP) {
            r = tcp(net, ts, d, p, end, hdr, off + 8, 16);
            break;
        }
        if (ipv6_ext(nh) || nh == IPPROTO_AH) {
            if (p + 8 > end) {
                r = SO_R_NET_TRUNCATED_IPV6;
                break;
            }
            /* AH counts 4-octet units minus 2 (RFC 4302); the others 8-octet units minus 1. */
            size_t size = nh == IPPROTO_AH ? ((size_t)d[p + 1] + 2) << 2 : ((size_t)d[p + 1] + 1) << 3;
            nh = d[p];
            p += size;
            if (p > end) {
                r = SO_R_NET_TRUNCATED_IPV6;
                break;
            }
            continue;
        }
        if (nh == IPPROTO_FRAGMENT) {
            if (dgram) { /* a fragment header inside a reassembled datagram */
                r = SO_R_NET_BAD_IPV6_FRAGMENT;
                break;
            }
            if (p + 8 > end) {
                r = SO_R_NET_TRUNCATED_IPV6;
                break;
            }
            uint32_t next_nh = d[p];
            uint32_t offm = so_be16(d + p + 2);
            uint32_t ident = so_be32(d + p + 4);
            p += 8;
            if ((offm & 0xFFF9) == 0) { /* atomic fragment (RFC 6946): not fragmented at all */
                nh = next_nh;
                continue;
            }
            if (!reassemble(next_nh)) {
                net->cfg.reasons[SO_R_SKIPPED_IP_PROTOCOL]++;
                break;
            }
            so_frag_key key;
            memset(&key, 0, sizeof(key));
            memcpy(key.src, hdr + off + 8, 16);
            memcpy(key.dst, hdr + off + 24, 16);
            key.ip_len = 16;
            key.ident = ident;
            key.proto = -1;
            size_t dlen;
            int dproto;
            if (!so_frag_add(&net->frags, &key, ts, offm & 0xFFF8, (offm & 1) != 0, d + p, end - p,
                             (int)next_nh, &dgram, &dlen, &dproto))
                break;
            nh = (uint32_t)dproto;
            d = dgram;
            p = 0;
            end = dlen;
            continue;
        }
        if (nh == IPPROTO_IPIP || nh == IPPROTO_IPV6 || nh == IPPROTO_GRE) {
            r = tunnel(net, ts, d, p, end, depth, nh);
            break;
        }
        net->cfg.reasons[nh == IPPROTO_NONE ? SO_R_SKIPPED_NO_NEXT_HEADER : SO_R_SKIPPED_IP_PROTOCOL]++;
        break;
    }
    free(dgram);
    return r;
}

void so_net_feed(so_net *net, int64_t ts_ns, uint32_t linktype, const uint8_t *data, size_t len) {
    int r;
    so_mem_enter(net->mem);
    if (linktype == SO_LINKTYPE_ETHERNET && len >= 14 && data[12] == 0x08 && data[13] == 0x00) {
        r = ipv4(net, ts_ns, data, 14, len, 0); /* fast path */
    } else {
        so_l3 l;
        r = so_link_decode(linktype, data, len, &l);
        if (r == SO_NET_OK)
            r = l.etype == SO_ETH_IPV4 ? ipv4(net, ts_ns, data, l.off, l.end, 0)
                                       : ipv6(net, ts_ns, data, l.off, l.end, 0);
    }
    if (r != SO_NET_OK)
        net->cfg.reasons[r]++;
    so_mem_leave(net->mem);
}
