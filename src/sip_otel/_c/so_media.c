/* SPDX-License-Identifier: Apache-2.0
 * Learned media endpoints and RTP stream statistics (so_media.h): tables, SDP learning, the
 * per-packet path (RTP and RTCP). Calls, reports and the kernel side: so_media_call.c. */
#include "so_media.h"

void so_media_limits_default(so_media_limits *l) {
    l->max_endpoints = 4096;
    l->max_streams = 4096;
    l->max_calls = 4096;
    l->max_changes = 0;
    l->idle_timeout_ns = 300 * SO_NS_PER_S;
    l->linger_ns = 3 * SO_NS_PER_S;
    l->interval_ns = 60 * SO_NS_PER_S;
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
    /* twice the limit's slots: the limit's entries fit in the probe windows (so_media.h) */
    uint32_t ne = pow2_at_least(2 * (lim->max_endpoints < (1u << 23) ? lim->max_endpoints : (1u << 23)));
    uint32_t ns = pow2_at_least(2 * (lim->max_streams < (1u << 23) ? lim->max_streams : (1u << 23)));
    uint32_t nc = pow2_at_least(2 * (lim->max_calls < (1u << 23) ? lim->max_calls : (1u << 23)));
    m->ep_mask = ne - 1;
    m->st_mask = ns - 1;
    m->call_mask = nc - 1;
    m->next_end_ns = INT64_MAX;
    m->changes_cap = lim->max_changes ? lim->max_changes : 2 * ne + 64;
    m->eps = (so_media_endpoint *)calloc(ne, sizeof(so_media_endpoint));
    m->streams = (so_media_stream *)calloc(ns, sizeof(so_media_stream));
    m->calls = (so_media_call *)calloc(nc, sizeof(so_media_call));
    if (!m->eps || !m->streams || !m->calls) {
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
    free(m->calls);
    free(m->changes);
    free(m);
}

void so_media_set_sink(so_media *m, so_media_report_fn on_report, so_media_call_end_fn on_end,
                       void *ctx) {
    m->on_report = on_report;
    m->on_call_end = on_end;
    m->sink_ctx = ctx;
}

static uint32_t ep_hash(const so_media *m, const uint8_t *addr, uint8_t ip_len, uint16_t port) {
    so_hasher h;
    so_hasher_init(&h, m->seed);
    so_hasher_bytes(&h, addr, ip_len);
    so_hasher_u64(&h, port);
    return (uint32_t)so_hasher_final(&h).a;
}

so_media_endpoint *so_media_ep_find(so_media *m, const uint8_t *addr, uint8_t ip_len,
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
 * longest (its eviction counted; the caller lets go of what it held) -- with keep_live, only
 * when that one was idle past the timeout (NULL otherwise, nothing counted). Entries are
 * `stride` bytes apart, each starting with its so_media_head. */
void *so_media_slot_for(so_media *m, uint8_t *base, size_t stride, uint32_t mask, uint32_t h,
                        int64_t now, so_eviction full, so_eviction timeout, bool keep_live) {
    so_media_head *oldest = NULL;
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_head *e = (so_media_head *)(base + (size_t)((h + i) & mask) * stride);
        if (!e->used)
            return e;
        if (!oldest || e->last_ns < oldest->last_ns)
            oldest = e;
    }
    bool idle = so_expired(oldest->last_ns, now, m->lim.idle_timeout_ns);
    if (keep_live && !idle)
        return NULL;
    m->evictions[idle ? timeout : full]++;
    return oldest;
}

void so_media_ep_retire(so_media *m, so_media_endpoint *e) {
    so_media_queue_del(m, e);
    so_media_call *c = so_media_call_find(m, e->call);
    if (c && c->n_endpoints)
        c->n_endpoints--;
    e->hd.used = 0;
}

static uint8_t role_of(const so_media *m, const so_media_call *c, const so_msg *msg) {
    so_slice tag = msg->is_request ? msg->from_tag : msg->to_tag;
    if (!c->has_caller || tag.n == 0)
        return SO_MROLE_UNKNOWN;
    return so_call_hash(m->seed, tag.p, tag.n) == c->caller_tag ? SO_MROLE_CALLER
                                                                 : SO_MROLE_CALLEE;
}

static bool same_value(const so_media_endpoint *e, const so_sdp_media *sm, bool rtcp) {
    if (e->rtcp != rtcp || e->mux != (!rtcp && sm->rtcp_mux) || e->n_pts != sm->n_pts)
        return false;
    for (uint8_t i = 0; i < sm->n_pts; i++)
        if (e->pts[i] != sm->pts[i].pt || e->rates[i] != sm->pts[i].clock_rate)
            return false;
    return true;
}

static void learn_one(so_media *m, so_media_call *c, uint8_t role, const so_sdp_media *sm,
                      const so_sdp_addr *a, uint16_t port, bool rtcp, int64_t now) {
    uint8_t ip_len = a->family == 4 ? 4 : 16;
    so_media_endpoint *e = so_media_ep_find(m, a->addr, ip_len, port);
    bool changed = true;
    int64_t learned = now;
    if (e) {
        changed = !same_value(e, sm, rtcp);
        if (e->call == c->hash)
            learned = e->learned_ns; /* a refresh of the same call's endpoint */
        else {
            so_media_call *old = so_media_call_find(m, e->call);
            if (old && old->n_endpoints)
                old->n_endpoints--;
            c->n_endpoints++;
        }
    } else {
        uint32_t h = ep_hash(m, a->addr, ip_len, port);
        e = (so_media_endpoint *)so_media_slot_for(m, (uint8_t *)m->eps, sizeof(*e), m->ep_mask,
                                                   h, now, SO_E_MEDIA_ENDPOINTS_FULL,
                                                   SO_E_MEDIA_ENDPOINTS_TIMEOUT, false);
        if (e->hd.used)
            so_media_ep_retire(m, e);
        m->endpoints_learned++;
        c->n_endpoints++;
    }
    memset(e, 0, sizeof(*e));
    e->hd.used = 1;
    e->hd.last_ns = now;
    e->ip_len = ip_len;
    e->port = port;
    e->rtcp = rtcp;
    e->mux = !rtcp && sm->rtcp_mux;
    e->role = role;
    e->call = c->hash;
    e->learned_ns = learned;
    memcpy(e->addr, a->addr, ip_len);
    e->n_pts = sm->n_pts;
    for (uint8_t i = 0; i < sm->n_pts; i++) {
        e->pts[i] = sm->pts[i].pt;
        e->rates[i] = sm->pts[i].clock_rate;
        memcpy(e->names[i], sm->pts[i].name, SO_SDP_CODEC_NAME);
    }
    if (changed)
        so_media_queue_add(m, e);
}

/* The call of a message with media: found, or made (an evicted call's media ends first). */
static so_media_call *call_for(so_media *m, const so_msg *msg, uint64_t hash) {
    so_media_call *c = so_media_call_find(m, hash);
    if (c)
        return c;
    so_media_call *slot = NULL;
    /* a free slot, else the call whose media ends soonest, else the one idle longest */
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_call *x = &m->calls[(hash + i) & m->call_mask];
        if (!x->hd.used) {
            slot = x;
            break;
        }
        if (!slot || (x->end_at && (!slot->end_at || x->end_at < slot->end_at)) ||
            (!x->end_at && !slot->end_at && x->hd.last_ns < slot->hd.last_ns))
            slot = x;
    }
    if (slot->hd.used) {
        bool idle = so_expired(slot->hd.last_ns, msg->ts_ns, m->lim.idle_timeout_ns);
        m->evictions[idle ? SO_E_MEDIA_CALLS_TIMEOUT : SO_E_MEDIA_CALLS_FULL]++;
        so_media_call_end(m, slot, msg->ts_ns);
    }
    memset(slot, 0, offsetof(so_media_call, id));
    slot->hd.used = 1;
    slot->hd.last_ns = msg->ts_ns;
    slot->hash = hash;
    size_t n = msg->call_id.n;
    slot->id_truncated = n > SO_MEDIA_CALL_ID_MAX;
    slot->id_len = (uint16_t)(n > SO_MEDIA_CALL_ID_MAX ? SO_MEDIA_CALL_ID_MAX : n);
    if (slot->id_len)
        memcpy(slot->id, msg->call_id.p, slot->id_len);
    /* a response to an INVITE of a call not seen before: its From is the caller (the first
     * SDP of a late-offer call is in the 2xx of the initial INVITE) */
    if (!msg->is_request && msg->cseq_method == SO_M_INVITE && msg->from_tag.n) {
        slot->caller_tag = so_call_hash(m->seed, msg->from_tag.p, msg->from_tag.n);
        slot->has_caller = 1;
    }
    return slot;
}

/* An initial INVITE (no To tag): its CSeq and top Via branch (a retransmission repeats both;
 * a retry of the Call-ID -- after a 3xx, a 4xx/5xx failover, a 491 -- changes them). */
static uint64_t attempt_key(const so_media *m, const so_msg *msg) {
    so_hasher h;
    so_hasher_init(&h, m->seed);
    so_hasher_u64(&h, (uint64_t)msg->cseq);
    so_hasher_bytes(&h, msg->via_branch.p, msg->via_branch.n);
    return so_hasher_final(&h).a;
}

void so_media_learn(so_media *m, const so_msg *msg) {
    bool initial = msg->is_request && msg->method == SO_M_INVITE && msg->to_tag.n == 0;
    if (initial) {
        /* a new attempt of a call whose media is due to end (a failed attempt's record): the
         * call goes on, with or without SDP in the retry */
        so_media_call *c = so_media_call_find(m, so_call_hash(m->seed, msg->call_id.p,
                                                              msg->call_id.n));
        uint64_t key = attempt_key(m, msg);
        if (c && c->attempt != key) {
            c->attempt = key;
            c->end_at = 0;
        }
    }
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
    if (msg->ts_ns > m->now_ns)
        m->now_ns = msg->ts_ns;
    so_media_call *c = NULL;
    uint8_t role = SO_MROLE_UNKNOWN;
    for (uint8_t i = 0; i < m->sdp.n_media; i++) {
        const so_sdp_media *sm = &m->sdp.media[i];
        if (!sm->rtp || sm->port == 0 || sm->conn.family == 0)
            continue;
        if (!c) {
            c = call_for(m, msg, so_call_hash(m->seed, msg->call_id.p, msg->call_id.n));
            c->hd.last_ns = msg->ts_ns;
            if (initial && !c->attempt)
                c->attempt = attempt_key(m, msg);
            if (initial && msg->from_tag.n && !c->has_caller) {
                /* the first initial INVITE: its From is the caller (an INVITE of the callee
                 * without To tag -- a crossed new dialog -- does not change it) */
                c->caller_tag = so_call_hash(m->seed, msg->from_tag.p, msg->from_tag.n);
                c->has_caller = 1;
            }
            role = role_of(m, c, msg);
        }
        learn_one(m, c, role, sm, &sm->conn, sm->port, false, msg->ts_ns);
        if (!sm->rtcp_mux && sm->rtcp_port && sm->rtcp_addr.family)
            learn_one(m, c, role, sm, &sm->rtcp_addr, sm->rtcp_port, true, msg->ts_ns);
    }
}

static uint32_t stream_hash(const so_media *m, const uint8_t *src, const uint8_t *dst,
                            uint8_t ip_len, uint16_t sport, uint16_t dport, uint32_t ssrc) {
    so_hasher h;
    so_hasher_init(&h, m->seed);
    so_hasher_bytes(&h, src, ip_len);
    so_hasher_bytes(&h, dst, ip_len);
    so_hasher_u64(&h, ((uint64_t)sport << 48) | ((uint64_t)dport << 32) | ssrc);
    return (uint32_t)so_hasher_final(&h).a;
}

so_media_stream *so_media_stream_find(so_media *m, const uint8_t *src, const uint8_t *dst,
                                      uint8_t ip_len, uint16_t sport, uint16_t dport,
                                      uint32_t ssrc) {
    uint32_t hv = stream_hash(m, src, dst, ip_len, sport, dport, ssrc);
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_stream *s = &m->streams[(hv + i) & m->st_mask];
        if (s->hd.used && s->ssrc == ssrc && s->sport == sport && s->dport == dport &&
            s->ip_len == ip_len && !memcmp(s->src, src, ip_len) && !memcmp(s->dst, dst, ip_len))
            return s;
    }
    return NULL;
}

so_media_stream *so_media_stream_for(so_media *m, const uint8_t *src, const uint8_t *dst,
                                     uint8_t ip_len, uint16_t sport, uint16_t dport,
                                     uint32_t ssrc, const so_media_endpoint *ep, uint8_t pt,
                                     int64_t now, bool keep_live) {
    so_media_stream *s = so_media_stream_find(m, src, dst, ip_len, sport, dport, ssrc);
    if (s)
        return s;
    uint32_t hv = stream_hash(m, src, dst, ip_len, sport, dport, ssrc);
    s = (so_media_stream *)so_media_slot_for(m, (uint8_t *)m->streams, sizeof(*s), m->st_mask,
                                             hv, now, SO_E_RTP_STREAMS_FULL,
                                             SO_E_RTP_STREAMS_TIMEOUT, keep_live);
    if (!s)
        return NULL;
    if (s->hd.used)
        so_media_stream_end(m, s, now); /* evicted */
    memset(s, 0, sizeof(*s));
    s->hd.used = 1;
    s->hd.last_ns = now;
    s->reported_ns = now;
    s->rtt_ns = -1;
    s->ip_len = ip_len;
    s->sport = sport;
    s->dport = dport;
    s->ssrc = ssrc;
    s->call = ep->call;
    s->dir = ep->role == SO_MROLE_CALLER   ? SO_MDIR_TO_CALLER
             : ep->role == SO_MROLE_CALLEE ? SO_MDIR_TO_CALLEE
                                           : SO_MDIR_UNKNOWN;
    memcpy(s->src, src, ip_len);
    memcpy(s->dst, dst, ip_len);
    so_media_name_codec(s, ep, pt);
    return s;
}

int so_media_pt_index(const so_media_endpoint *ep, uint8_t pt) {
    for (uint8_t i = 0; i < ep->n_pts; i++)
        if (ep->pts[i] == pt)
            return i;
    return -1;
}

static bool same_name(const char *a, const char *lower) {
    size_t i = 0;
    for (; lower[i]; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lower[i])
            return false;
    }
    return a[i] == 0;
}

void so_media_name_codec(so_media_stream *s, const so_media_endpoint *ep, uint8_t pt) {
    if (s->codec[0] || pt == 13) /* named, or static CN */
        return;
    int i = so_media_pt_index(ep, pt);
    if (i < 0 || !ep->names[i][0] || same_name(ep->names[i], "cn") ||
        same_name(ep->names[i], "telephone-event"))
        return;
    memcpy(s->codec, ep->names[i], SO_SDP_CODEC_NAME);
    s->codec[SO_SDP_CODEC_NAME - 1] = 0;
    s->clock_rate = ep->rates[i];
}

/* An RTCP compound packet: each report block (and XR VoIP metrics block) goes to the stream
 * with its SSRC (a scan of the stream table: RTCP is one compound packet per stream every few
 * seconds). */
static void rtcp(so_media *m, const so_payload *pl) {
    m->rtcp_packets++;
    struct so_rtcp_report *rep = &m->rtcp;
    int r = so_rtcp_parse(pl->data, pl->len, rep);
    if (r == SO_RTCP_E_TRUNCATED || r == SO_RTCP_E_VERSION || r == SO_RTCP_E_BAD_LENGTH) {
        m->reasons[r == SO_RTCP_E_TRUNCATED ? SO_R_RTCP_TRUNCATED
                   : r == SO_RTCP_E_VERSION ? SO_R_RTCP_BAD_VERSION
                                            : SO_R_RTCP_BAD_LENGTH]++;
        return;
    }
    if (r != SO_RTCP_OK) {
        rep->n_blocks = 0; /* no SR/RR (an SDES, BYE or XR alone): XR blocks only */
        rep->type = 0;
    }
    so_media_rtcp_apply(m, rep, pl->ts_ns);
}

void so_media_rtcp_apply(so_media *m, const struct so_rtcp_report *rep, int64_t now) {
    if (!rep->n_blocks && !rep->n_xr && rep->type != SO_RTCP_SR)
        return;
    uint8_t n_xr = rep->n_xr < SO_RTCP_MAX_XR ? rep->n_xr : SO_RTCP_MAX_XR;
    for (uint32_t i = 0; i <= m->st_mask; i++) {
        so_media_stream *s = &m->streams[i];
        if (!s->hd.used)
            continue;
        if (rep->type == SO_RTCP_SR && s->ssrc == rep->sender_ssrc) {
            /* the SR's NTP middle 32 bits: what the receivers will echo as LSR */
            s->sr_mid32 = ((rep->ntp_msw & 0xffffu) << 16) | (rep->ntp_lsw >> 16);
            s->sr_seen_ns = now;
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
                int64_t rtt = so_sat_sub(so_sat_sub(now, s->sr_seen_ns), dlsr_ns);
                s->rtt_ns = rtt >= 0 ? rtt : -1;
            }
        }
        for (uint8_t x = 0; x < n_xr; x++) {
            if (rep->xr[x].ssrc == s->ssrc) {
                s->xr = rep->xr[x];
                s->has_xr = 1;
            }
        }
    }
}

bool so_media_udp(so_media *m, const so_payload *pl) {
    so_media_endpoint *ep = so_media_ep_find(m, pl->dst, pl->ip_len, pl->dport);
    if (!ep)
        return false;
    ep->hd.last_ns = pl->ts_ns;
    if (ep->rtcp) {
        rtcp(m, pl);
        return true;
    }
    /* as the eBPF filter decides (bpf/sip_filter.c): RTCP on an RTP port only when it is
     * multiplexed (a=rtcp-mux; an empty RR is 8 bytes, shorter than an RTP header); else a
     * marker bit with payload type 64..95 is still RTP */
    const uint8_t *b = pl->data;
    if (pl->len < SO_RTP_HDR_LEN) {
        if (ep->mux && pl->len >= 2 && (b[0] >> 6) == 2 && b[1] >= 192 && b[1] <= 223)
            rtcp(m, pl);
        else
            m->reasons[SO_R_RTP_NOT_RTP]++;
        return true;
    }
    struct so_rtp_hdr h;
    int r = so_rtp_parse_fixed(b, &h);
    if (r < 0) {
        m->reasons[SO_R_RTP_NOT_RTP]++;
        return true;
    }
    if (r == 1 && ep->mux) {
        rtcp(m, pl);
        return true;
    }
    if (r == 1) {
        h.marker = b[1] >> 7;
        h.pt = b[1] & 0x7f;
        h.seq = (uint16_t)(((uint32_t)b[2] << 8) | b[3]);
        h.ts = ((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7];
        h.ssrc = ((uint32_t)b[8] << 24) | ((uint32_t)b[9] << 16) | ((uint32_t)b[10] << 8) | b[11];
    }
    int pti = so_media_pt_index(ep, h.pt);
    uint32_t rate = pti >= 0 ? ep->rates[pti] : 0;
    /* live (a kernel drains the changes): never evict a stream the kernel may still update
     * (its entry would come back with its whole history) -- the packet is counted only */
    so_media_stream *s = so_media_stream_for(m, pl->src, pl->dst, pl->ip_len, pl->sport,
                                             pl->dport, h.ssrc, ep, h.pt, pl->ts_ns,
                                             m->changes_on);
    if (!s) {
        m->evictions[SO_E_RTP_STREAMS_FULL]++;
        return true;
    }
    so_media_name_codec(s, ep, h.pt); /* a stream that started with CN / DTMF */
    s->hd.last_ns = pl->ts_ns;
    m->rtp_packets++;
    so_rtp_update(&s->st, h.seq, h.ts, h.pt, pl->len, (uint64_t)pl->ts_ns, rate);
    return true;
}
