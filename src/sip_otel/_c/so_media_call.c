/* SPDX-License-Identifier: Apache-2.0
 * Calls of the media layer (so_media.h): when a call's media ends, the reports of its streams,
 * the kernel endpoint-change queue and the kernel stream sync.
 *
 * A call's media ends ``linger_ns`` after a dialog record of it ended -- the record of a failed
 * attempt, or of the last confirmed dialog of its attempt still open (forked dialogs: the call
 * goes on while one is open) -- unless a dialog of the call is confirmed meanwhile (a retried
 * INVITE of the same Call-ID). Then each of its streams gets a final report, its endpoints
 * are retired (kernel deletes queued) and the call leaves the table. Ends are evaluated on
 * every timer tick of packet time (so_pipeline.c) and at finish, which ends every call.
 * Tables are scanned per call end and once a second (interval reports, idle entries): O(table)
 * then, nothing per packet. */
#include "so_media.h"

so_media_call *so_media_call_find(const so_media *m, uint64_t hash) {
    for (uint32_t i = 0; i < SO_MEDIA_PROBE; i++) {
        so_media_call *c = &m->calls[(hash + i) & m->call_mask];
        if (c->hd.used && c->hash == hash)
            return c;
    }
    return NULL;
}

bool so_media_call_open(const so_media *m, uint64_t call_hash) {
    return so_media_call_find(m, call_hash) != NULL;
}

void so_media_call_ended(so_media *m, uint64_t call_hash, int64_t end_ns) {
    so_media_call *c = so_media_call_find(m, call_hash);
    if (!c)
        return;
    int64_t at = so_sat_add(end_ns, m->lim.linger_ns);
    if (at > c->end_at)
        c->end_at = at;
    if (c->end_at < m->next_end_ns)
        m->next_end_ns = c->end_at;
}

void so_media_call_confirmed(so_media *m, uint64_t call_hash) {
    so_media_call *c = so_media_call_find(m, call_hash);
    if (c)
        c->end_at = 0;
}

void so_media_report_stream(so_media *m, so_media_stream *s, bool final, int64_t now) {
    uint32_t expected = so_rtp_expected(&s->st), received = s->st.received;
    so_media_report r;
    r.s = s;
    r.call = so_media_call_find(m, s->call);
    r.final = final;
    /* since the previous report; a restart of the statistics (A.1 resync, a new kernel
     * entry: resyncs or first_ns changed, or any counter went down) starts the period afresh:
     * decided once, every period figure from the same branch */
    bool restarted = s->st.resyncs != s->rep_resyncs || s->st.first_ns != s->rep_first_ns ||
                     received < s->rep_received || expected < s->rep_expected ||
                     s->st.packets < s->rep_packets ||
                     s->st.jitter_samples < s->rep_jitter_samples ||
                     s->st.jitter_sum < s->rep_jitter_sum;
    /* every packet seen: only a new kernel entry restarts it (not an A.1 resync) */
    bool new_entry = s->st.first_ns != s->rep_first_ns || s->st.packets < s->rep_packets;
    r.packets = new_entry ? s->st.packets : s->st.packets - s->rep_packets;
    r.received = restarted ? received : received - s->rep_received;
    r.expected = restarted ? expected : expected - s->rep_expected;
    r.jitter_sum = restarted ? s->st.jitter_sum : s->st.jitter_sum - s->rep_jitter_sum;
    r.jitter_samples =
        restarted ? s->st.jitter_samples : s->st.jitter_samples - s->rep_jitter_samples;
    if (m->on_report)
        m->on_report(m->sink_ctx, &r);
    s->rep_received = received;
    s->rep_expected = expected;
    s->rep_jitter_sum = s->st.jitter_sum;
    s->rep_jitter_samples = s->st.jitter_samples;
    s->rep_resyncs = s->st.resyncs;
    s->rep_packets = s->st.packets;
    s->rep_first_ns = s->st.first_ns;
    s->reported_ns = now;
}

void so_media_stream_end(so_media *m, so_media_stream *s, int64_t now) {
    so_media_report_stream(m, s, true, now);
    s->hd.used = 0;
}

void so_media_call_end(so_media *m, so_media_call *c, int64_t now) {
    uint64_t h = c->hash;
    for (uint32_t i = 0; i <= m->st_mask; i++) {
        so_media_stream *s = &m->streams[i];
        if (s->hd.used && s->call == h)
            so_media_stream_end(m, s, now);
    }
    for (uint32_t i = 0; i <= m->ep_mask; i++) {
        so_media_endpoint *e = &m->eps[i];
        if (e->hd.used && e->call == h)
            so_media_ep_retire(m, e);
    }
    c->hd.used = 0;
    if (m->on_call_end)
        m->on_call_end(m->sink_ctx, h);
}

static void sweep(so_media *m, int64_t now) {
    int64_t idle = m->lim.idle_timeout_ns, every = m->lim.interval_ns;
    for (uint32_t i = 0; i <= m->st_mask; i++) {
        so_media_stream *s = &m->streams[i];
        if (!s->hd.used)
            continue;
        if (so_expired(s->hd.last_ns, now, idle)) {
            m->evictions[SO_E_RTP_STREAMS_TIMEOUT]++;
            so_media_stream_end(m, s, now);
        } else if (every > 0 && now - s->reported_ns >= every) {
            so_media_report_stream(m, s, false, now);
        }
    }
    for (uint32_t i = 0; i <= m->ep_mask; i++) {
        so_media_endpoint *e = &m->eps[i];
        if (e->hd.used && so_expired(e->hd.last_ns, now, idle)) {
            m->evictions[SO_E_MEDIA_ENDPOINTS_TIMEOUT]++;
            so_media_ep_retire(m, e);
        }
    }
    /* a call none of whose endpoints is left (idle, or evicted: counted there): its media has
     * ended; counted as a timeout when the call itself had no SDP for the idle timeout */
    for (uint32_t i = 0; i <= m->call_mask; i++) {
        so_media_call *c = &m->calls[i];
        if (c->hd.used && c->n_endpoints == 0) {
            if (so_expired(c->hd.last_ns, now, idle))
                m->evictions[SO_E_MEDIA_CALLS_TIMEOUT]++;
            so_media_call_end(m, c, now);
        }
    }
}

void so_media_timer(so_media *m, int64_t now) {
    if (now > m->now_ns)
        m->now_ns = now;
    if (now >= m->next_end_ns) { /* a call's end is due: end those, find the next one */
        m->next_end_ns = INT64_MAX;
        for (uint32_t i = 0; i <= m->call_mask; i++) {
            so_media_call *c = &m->calls[i];
            if (!c->hd.used || !c->end_at)
                continue;
            if (now >= c->end_at)
                so_media_call_end(m, c, now);
            else if (c->end_at < m->next_end_ns)
                m->next_end_ns = c->end_at;
        }
    }
    if (now < m->next_sweep_ns)
        return;
    m->next_sweep_ns = so_sat_add(now, SO_NS_PER_S);
    sweep(m, now);
}

void so_media_finish(so_media *m, int64_t now) {
    for (uint32_t i = 0; i <= m->call_mask; i++) {
        so_media_call *c = &m->calls[i];
        if (c->hd.used)
            so_media_call_end(m, c, now);
    }
    for (uint32_t i = 0; i <= m->st_mask; i++) { /* none left: every stream has its call */
        so_media_stream *s = &m->streams[i];
        if (s->hd.used)
            so_media_stream_end(m, s, now);
    }
}

/* ---- the kernel's endpoint map: queued changes ------------------------------------------- */

static void mep_key(const so_media_endpoint *e, struct so_mep_key *k) {
    memset(k, 0, sizeof(*k));
    k->family = e->ip_len == 4 ? 4 : 6;
    k->port = e->port;
    memcpy(k->addr, e->addr, e->ip_len);
}

static so_media_change *queue_slot(so_media *m) {
    if (!m->changes_on)
        return NULL;
    if (m->changes_len == m->changes_cap) {
        m->evictions[SO_E_MEDIA_CHANGES_FULL]++;
        m->changes_resync = true;
        return NULL;
    }
    so_media_change *c = &m->changes[(m->changes_head + m->changes_len) % m->changes_cap];
    m->changes_len++;
    memset(c, 0, sizeof(*c));
    return c;
}

void so_media_queue_add(so_media *m, const so_media_endpoint *e) {
    so_media_change *c = queue_slot(m);
    if (!c)
        return;
    mep_key(e, &c->key);
    c->val.flags = (uint8_t)((e->rtcp ? SO_MEP_F_RTCP : 0) | (e->mux ? SO_MEP_F_MUX : 0));
    c->val.n_pts = e->n_pts;
    for (uint8_t i = 0; i < e->n_pts && i < SO_MEP_MAX_PT; i++) {
        c->val.pts[i] = e->pts[i];
        c->val.rates[i] = e->rates[i];
    }
}

void so_media_queue_del(so_media *m, const so_media_endpoint *e) {
    so_media_change *c = queue_slot(m);
    if (!c)
        return;
    mep_key(e, &c->key);
    c->del = 1;
}

void so_media_changes_enable(so_media *m) {
    if (m->changes_on)
        return;
    m->changes = (so_media_change *)calloc(m->changes_cap, sizeof(so_media_change));
    if (!m->changes) {
        m->reasons[SO_R_INTERNAL_NO_MEMORY]++;
        return;
    }
    m->changes_on = true;
    for (uint32_t i = 0; i <= m->ep_mask; i++)
        if (m->eps[i].hd.used)
            so_media_queue_add(m, &m->eps[i]);
}

bool so_media_changes_resync(so_media *m) {
    if (!m->changes_resync)
        return false;
    m->changes_resync = false;
    m->changes_len = 0; /* cap >= table slots: every add fits */
    for (uint32_t i = 0; i <= m->ep_mask; i++)
        if (m->eps[i].hd.used)
            so_media_queue_add(m, &m->eps[i]);
    return true;
}

uint32_t so_media_changes_take(so_media *m, so_media_change *out, uint32_t max) {
    uint32_t n = 0;
    while (n < max && m->changes_len) {
        out[n++] = m->changes[m->changes_head];
        m->changes_head = (m->changes_head + 1) % m->changes_cap;
        m->changes_len--;
    }
    return n;
}

/* ---- the kernel's stream map ------------------------------------------------------------- */

static uint64_t shifted(uint64_t t, int64_t offset) {
    return t ? (uint64_t)so_sat_add((int64_t)t, offset) : 0;
}

void so_media_kernel_sync(so_media *m, const struct so_mstream_key *keys,
                          const struct so_rtp_stats *vals, uint32_t n, int64_t offset_ns,
                          struct so_mstream_key *stale, uint32_t *n_stale) {
    *n_stale = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct so_mstream_key *k = &keys[i];
        uint8_t ip_len = k->family == 4 ? 4 : 16;
        so_media_endpoint *ep =
            k->family == 4 || k->family == 6 ? so_media_ep_find(m, k->dst, ip_len, k->dport)
                                             : NULL;
        int64_t last = (int64_t)shifted(vals[i].last_ns, offset_ns);
        int64_t first = (int64_t)shifted(vals[i].first_ns, offset_ns);
        if (ep && !ep->rtcp && vals[i].last_ns == 0)
            continue; /* just inserted, not started: the filter is writing it */
        so_media_stream *s =
            ep ? so_media_stream_find(m, k->src, k->dst, ip_len, k->sport, k->dport, k->ssrc)
               : NULL;
        /* retired, never ours, idle past the timeout (its final report was or will be made
         * from the core's copy; syncing it again would start it anew), or new to the core but
         * started before its endpoint was learned for the current call (a previous call's on
         * a reused port): delete it */
        if (!ep || ep->rtcp ||
            (m->now_ns && so_expired(last, m->now_ns, m->lim.idle_timeout_ns)) ||
            (!s && first < ep->learned_ns)) {
            stale[(*n_stale)++] = *k;
            continue;
        }
        if (!s)
            s = so_media_stream_for(m, k->src, k->dst, ip_len, k->sport, k->dport, k->ssrc, ep,
                                    vals[i].pt, last, true);
        if (!s) { /* no room but live streams: left in the kernel map for a later sync */
            m->evictions[SO_E_RTP_STREAMS_FULL]++;
            continue;
        }
        so_media_name_codec(s, ep, vals[i].pt); /* a stream that started with CN / DTMF */
        s->st = vals[i]; /* the kernel's figures replace ours */
        s->st.first_ns = shifted(vals[i].first_ns, offset_ns);
        s->st.last_ns = (uint64_t)last;
        if (last > s->hd.last_ns)
            s->hd.last_ns = last;
        if (last > ep->hd.last_ns)
            ep->hd.last_ns = last;
        m->kernel_streams++;
    }
}
