/* SPDX-License-Identifier: Apache-2.0
 * The one pipeline (so_pipeline.h): the layers wired together, counting as messages pass.
 */
#include "so_pipeline.h"

/* A call's media ends after its dialog record (so_media_call.c): a failed attempt's, or the
 * last open dialog's of its attempt; a confirmed dialog keeps it going. */
static void media_event(so_media *m, const so_event *ev) {
    if (ev->kind == SO_EV_ATTEMPT_ENDED) {
        if (ev->outcome == SO_OUT_ANSWERED)
            so_media_call_confirmed(m, ev->call_hash);
        else
            so_media_call_ended(m, ev->call_hash, ev->end_ns);
    } else if (ev->kind == SO_EV_SESSION_ENDED && ev->last_dialog) {
        so_media_call_ended(m, ev->call_hash, ev->end_ns);
    }
}

/* The tracker's events are folded into the counters as soon as a call returns; records stay
 * for the binding (spans). */
static void fold(so_pipeline *p) {
    size_t n;
    const so_event *ev = so_track_events(p->track, &n);
    for (size_t i = 0; i < n; i++) {
        so_stats_event(&p->stats, &ev[i]);
        if (p->media)
            media_event(p->media, &ev[i]);
    }
    so_track_clear_events(p->track);
}

static void on_msg(void *ctx, so_msg *m) {
    so_pipeline *p = (so_pipeline *)ctx;
    so_stats_message(&p->stats, m);
    if (p->media)
        so_media_learn(p->media, m);
    so_track_handle(p->track, m);
    fold(p);
}

static bool on_other_udp(void *ctx, const so_payload *payload) {
    return so_media_udp(((so_pipeline *)ctx)->media, payload);
}

static void on_payload(void *ctx, const so_payload *payload) {
    so_pipeline *p = (so_pipeline *)ctx;
    so_parse_payload(p->parser, payload, p->reasons, on_msg, p);
}

so_pipeline *so_pipeline_new(const so_pipeline_config *cfg) {
    so_pipeline *p = (so_pipeline *)calloc(1, sizeof(so_pipeline));
    if (!p)
        return NULL;
    so_stats_init(&p->stats, cfg->track.seed);
    so_mem_init(&p->mem, cfg->memory_limit);
    so_net_config nc;
    memset(&nc, 0, sizeof(nc));
    nc.limits = cfg->limits;
    memcpy(nc.sip_ports, cfg->sip_ports, sizeof(nc.sip_ports));
    nc.all_ports = cfg->all_ports;
    nc.seed = cfg->track.seed;
    nc.looks_like_sip = so_looks_like_sip; /* net/ knows no SIP: sniff and framer passed in */
    nc.sip_framer = &so_sip_framer_ops;
    nc.on_payload = on_payload;
    nc.on_other_udp = cfg->media ? on_other_udp : NULL;
    nc.ctx = p;
    nc.reasons = p->reasons;
    nc.evictions = p->evictions;
    nc.mem = &p->mem;
    so_track_config tc = cfg->track;
    tc.mem = &p->mem;
    if (cfg->media) {
        p->media = so_media_new(&cfg->media_limits, cfg->track.seed, p->reasons, p->evictions);
        if (!p->media) {
            so_pipeline_free(p);
            return NULL;
        }
    }
    p->net = so_net_new(&nc);
    p->parser = so_parser_new();
    p->track = so_track_new(&tc, p->reasons, p->evictions);
    if (!p->net || !p->parser || !p->track) {
        so_pipeline_free(p);
        return NULL;
    }
    return p;
}

void so_pipeline_free(so_pipeline *p) {
    if (!p)
        return;
    so_net_free(p->net);
    so_parser_free(p->parser);
    so_track_free(p->track);
    so_media_free(p->media);
    so_stats_free(&p->stats);
    free(p);
}

static void run_timers(so_pipeline *p, int64_t now) {
    so_net_handle_timer(p->net, now);
    so_track_timer(p->track, now);
    fold(p);
    if (p->media)
        so_media_timer(p->media, now);
}

/* The budget is enforced when the outermost call returns (so_mem_leave): no table entry is in
 * use then. Evictions may end attempts and dialogs: their events are folded at once. */
static void leave(so_pipeline *p) {
    so_mem_leave(&p->mem);
    fold(p);
}

void so_pipeline_frame(so_pipeline *p, int64_t ts, uint32_t linktype, const uint8_t *data,
                       size_t len) {
    so_mem_enter(&p->mem);
    p->stats.frames++;
    p->stats.bytes += len;
    if (ts > p->last_ts) {
        p->last_ts = ts;
        if (ts >= p->next_timer) {
            if (p->next_timer)
                run_timers(p, ts);
            p->next_timer = so_sat_add(ts, SO_TIMER_TICK_NS);
        }
    }
    so_net_feed(p->net, ts, linktype, data, len);
    leave(p);
}

static void on_frame(void *ctx, int64_t ts, uint32_t linktype, const uint8_t *data, size_t len,
                     uint32_t ifindex) {
    so_pipeline_frame((so_pipeline *)ctx, ts, linktype, data, len);
}

so_pcap_status so_pipeline_pcap(so_pipeline *p, so_pcap *pc, size_t max_frames) {
    uint64_t dropped = pc->ts_range;
    so_pcap_status st = so_pcap_next(pc, max_frames, on_frame, p);
    p->reasons[SO_R_PCAP_TIMESTAMP_RANGE] += pc->ts_range - dropped;
    return st;
}

void so_pipeline_timer(so_pipeline *p, int64_t now) {
    so_mem_enter(&p->mem);
    if (now > p->last_ts)
        p->last_ts = now;
    run_timers(p, now);
    p->next_timer = so_sat_add(now, SO_TIMER_TICK_NS);
    leave(p);
}

void so_pipeline_finish(so_pipeline *p, int64_t now) {
    so_mem_enter(&p->mem);
    run_timers(p, now);
    so_track_finish(p->track, now);
    leave(p); /* folds */
    if (p->media)
        so_media_finish(p->media, now); /* after the records' ends were folded */
}
