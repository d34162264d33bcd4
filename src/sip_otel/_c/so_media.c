/* SPDX-License-Identifier: Apache-2.0
 * Learned media endpoints and RTP stream statistics (so_media.h). */
#include "so_media.h"

void so_media_limits_default(so_media_limits *l) {
    l->max_endpoints = 4096;
    l->max_streams = 4096;
    l->idle_timeout_ns = 300 * SO_NS_PER_S;
}

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t c = SO_MEDIA_PROBE;
    while (c < n && c < (1u << 24))
        c <<= 1;
    return c;
}

so_media *so_media_new(const so_media_limits *lim, so_h128 seed, uint64_t *reasons,
                       uint64_t *evictions) {
    so_media *m = (so_media *)calloc(1, sizeof(so_media));
    if (!m)
        return NULL;
    m->lim = *lim;
    m->seed = seed;
    m->reasons = reasons;
    m->evictions = evictions;
    uint32_t ne = pow2_at_least(lim->max_endpoints), ns = pow2_at_least(lim->max_streams);
    m->ep_mask = ne - 1;
    m->st_mask = ns - 1;
    m->eps = (so_media_endpoint *)calloc(ne, sizeof(so_media_endpoint));
    m->streams = (so_media_stream *)calloc(ns, sizeof(so_media_stream));
    if (!m->eps || !m->streams) {
        so_media_free(m);
        return NULL;
    }
    return m;
}

void so_media_free(so_media *m) {
    if (!m)
        return;
    free(m->eps);
    free(m->streams);
    free(m);
}

static uint32_t ep_hash(const so_media *m, const uint8_t *addr, uint8_t ip_len, uint16_t port) {
    so_hasher h;
    so_hasher_init(&h, m->seed);
    so_hasher_bytes(&h, addr, ip_len);
    so_hasher_u64(&h, port);
    return (uint32_t)so_hasher_final(&h).a;
}

static so_media_endpoint *ep_find(so_media *m, const uint8_t *addr, uint8_t ip_len,
                                  uint16_t port) {
    uint32_t h = ep_hash(m, addr, ip_len, port);
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_endpoint *e = &m->eps[(h + i) & m->ep_mask];
        if (e->hd.used && e->port == port && e->ip_len == ip_len && !memcmp(e->addr, addr, ip_len))
            return e;
    }
    return NULL;
}

/* A slot for a new entry in the probe window starting at h: an unused one, else the entry idle
 * longest (its eviction counted). Entries are `stride` bytes apart, each starting with its
 * so_media_head. */
static void *slot_for(so_media *m, uint8_t *base, size_t stride, uint32_t mask, uint32_t h,
                      int64_t now, so_eviction full, so_eviction timeout) {
    so_media_head *oldest = NULL;
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_head *e = (so_media_head *)(base + (size_t)((h + i) & mask) * stride);
        if (!e->used)
            return e;
        if (!oldest || e->last_ns < oldest->last_ns)
            oldest = e;
    }
    m->evictions[so_expired(oldest->last_ns, now, m->lim.idle_timeout_ns) ? timeout : full]++;
    return oldest;
}

static void learn_one(so_media *m, const so_sdp_media *sm, const so_sdp_addr *a, uint16_t port,
                      bool rtcp, int64_t now) {
    uint8_t ip_len = a->family == 4 ? 4 : 16;
    so_media_endpoint *e = ep_find(m, a->addr, ip_len, port);
    if (!e) {
        uint32_t h = ep_hash(m, a->addr, ip_len, port);
        e = (so_media_endpoint *)slot_for(m, (uint8_t *)m->eps, sizeof(*e), m->ep_mask, h, now,
                                          SO_E_MEDIA_ENDPOINTS_FULL, SO_E_MEDIA_ENDPOINTS_TIMEOUT);
        m->endpoints_learned++;
    }
    memset(e, 0, sizeof(*e));
    e->hd.used = 1;
    e->hd.last_ns = now;
    e->ip_len = ip_len;
    e->port = port;
    e->rtcp = rtcp;
    memcpy(e->addr, a->addr, ip_len);
    e->n_pts = sm->n_pts;
    for (uint8_t i = 0; i < sm->n_pts; i++) {
        e->pts[i] = sm->pts[i].pt;
        e->rates[i] = sm->pts[i].clock_rate;
        memcpy(e->names[i], sm->pts[i].name, SO_SDP_CODEC_NAME);
    }
}

void so_media_learn(so_media *m, const so_msg *msg) {
    if (msg->body_length <= 0)
        return;
    uint8_t method = msg->is_request ? msg->method : msg->cseq_method;
    if (method != SO_M_INVITE && method != SO_M_ACK && method != SO_M_UPDATE &&
        method != SO_M_PRACK)
        return;
    if (!msg->is_request && (msg->status < 100 || msg->status >= 300))
        return;
    const so_slice ct = msg->content_type_value;
    if (so_sdp_from_body(ct.p, ct.n, msg->body.p, msg->body.n, &m->sdp, m->reasons) != 1)
        return;
    for (uint8_t i = 0; i < m->sdp.n_media; i++) {
        const so_sdp_media *sm = &m->sdp.media[i];
        if (!sm->rtp || sm->port == 0 || sm->conn.family == 0)
            continue;
        learn_one(m, sm, &sm->conn, sm->port, false, msg->ts_ns);
        if (!sm->rtcp_mux && sm->rtcp_port && sm->rtcp_addr.family)
            learn_one(m, sm, &sm->rtcp_addr, sm->rtcp_port, true, msg->ts_ns);
    }
}

static so_media_stream *stream_for(so_media *m, const so_payload *pl, uint32_t ssrc,
                                   const so_media_endpoint *ep, uint8_t pt) {
    so_hasher h;
    so_hasher_init(&h, m->seed);
    so_hasher_bytes(&h, pl->src, pl->ip_len);
    so_hasher_bytes(&h, pl->dst, pl->ip_len);
    so_hasher_u64(&h, ((uint64_t)pl->sport << 48) | ((uint64_t)pl->dport << 32) | ssrc);
    uint32_t hv = (uint32_t)so_hasher_final(&h).a;
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_stream *s = &m->streams[(hv + i) & m->st_mask];
        if (s->hd.used && s->ssrc == ssrc && s->sport == pl->sport && s->dport == pl->dport &&
            s->ip_len == pl->ip_len && !memcmp(s->src, pl->src, pl->ip_len) &&
            !memcmp(s->dst, pl->dst, pl->ip_len))
            return s;
    }
    so_media_stream *s = (so_media_stream *)slot_for(m, (uint8_t *)m->streams, sizeof(*s),
                                                     m->st_mask, hv, pl->ts_ns,
                                                     SO_E_RTP_STREAMS_FULL,
                                                     SO_E_RTP_STREAMS_TIMEOUT);
    memset(s, 0, sizeof(*s));
    s->hd.used = 1;
    s->rtt_ns = -1;
    s->ip_len = pl->ip_len;
    s->sport = pl->sport;
    s->dport = pl->dport;
    s->ssrc = ssrc;
    memcpy(s->src, pl->src, pl->ip_len);
    memcpy(s->dst, pl->dst, pl->ip_len);
    for (uint8_t i = 0; i < ep->n_pts; i++) {
        if (ep->pts[i] == pt) {
            memcpy(s->codec, ep->names[i], SO_SDP_CODEC_NAME);
            break;
        }
    }
    return s;
}

/* An RTCP compound packet: each report block goes to the stream with its SSRC (a scan of the
 * stream table: RTCP is one compound packet per stream every few seconds). */
static void rtcp(so_media *m, const so_payload *pl) {
    m->rtcp_packets++;
    int r = so_rtcp_parse(pl->data, pl->len, &m->rtcp);
    if (r == SO_RTCP_E_TRUNCATED || r == SO_RTCP_E_VERSION || r == SO_RTCP_E_BAD_LENGTH) {
        m->reasons[r == SO_RTCP_E_TRUNCATED ? SO_R_RTCP_TRUNCATED
                   : r == SO_RTCP_E_VERSION ? SO_R_RTCP_BAD_VERSION
                                            : SO_R_RTCP_BAD_LENGTH]++;
        return;
    }
    if (r != SO_RTCP_OK)
        return; /* no SR/RR (an SDES or BYE alone): nothing to take */
    const struct so_rtcp_report *rep = &m->rtcp;
    for (uint32_t i = 0; i <= m->st_mask; i++) {
        so_media_stream *s = &m->streams[i];
        if (!s->hd.used)
            continue;
        if (rep->type == SO_RTCP_SR && s->ssrc == rep->sender_ssrc) {
            /* the SR's NTP middle 32 bits: what the receivers will echo as LSR */
            s->sr_mid32 = ((rep->ntp_msw & 0xffffu) << 16) | (rep->ntp_lsw >> 16);
            s->sr_seen_ns = pl->ts_ns;
        }
        for (uint8_t b = 0; b < rep->n_blocks; b++) {
            const struct so_rtcp_block *blk = &rep->blocks[b];
            if (s->ssrc != blk->ssrc)
                continue;
            s->rtcp_reports++;
            s->rr_fraction_lost = blk->fraction_lost;
            s->rr_cum_lost = blk->cum_lost;
            s->rr_jitter = blk->jitter;
            if (blk->lsr && s->sr_seen_ns && blk->lsr == s->sr_mid32) {
                /* DLSR in 1/65536 s to ns: < 2^32 * 1e9 / 2^16, no overflow */
                int64_t dlsr_ns = (int64_t)(((uint64_t)blk->dlsr * 1000000000ull) >> 16);
                int64_t rtt = so_sat_sub(so_sat_sub(pl->ts_ns, s->sr_seen_ns), dlsr_ns);
                s->rtt_ns = rtt >= 0 ? rtt : -1;
            }
        }
    }
}

bool so_media_udp(so_media *m, const so_payload *pl) {
    so_media_endpoint *ep = ep_find(m, pl->dst, pl->ip_len, pl->dport);
    if (!ep)
        return false;
    ep->hd.last_ns = pl->ts_ns;
    if (ep->rtcp) {
        rtcp(m, pl);
        return true;
    }
    struct so_rtp_hdr h;
    int r = pl->len < SO_RTP_HDR_LEN ? -1 : so_rtp_parse_fixed(pl->data, &h);
    if (r < 0) {
        m->reasons[SO_R_RTP_NOT_RTP]++;
        return true;
    }
    if (r == 1) { /* RTCP multiplexed on the RTP port (a=rtcp-mux) */
        rtcp(m, pl);
        return true;
    }
    uint32_t rate = 0;
    for (uint8_t i = 0; i < ep->n_pts; i++) {
        if (ep->pts[i] == h.pt) {
            rate = ep->rates[i];
            break;
        }
    }
    so_media_stream *s = stream_for(m, pl, h.ssrc, ep, h.pt);
    s->hd.last_ns = pl->ts_ns;
    m->rtp_packets++;
    so_rtp_update(&s->st, h.seq, h.ts, h.pt, pl->len, (uint64_t)pl->ts_ns, rate);
    return true;
}
