/* SPDX-License-Identifier: Apache-2.0
 * The one pipeline, for live capture and replay alike: frames -> payloads -> SIP messages ->
 * tracker events -> counters (and records for spans). Sans-IO.
 *
 * so_pipeline_frame() takes one frame with its packet time; so_pipeline_pcap() a region of a
 * capture file; the ring reader (so_ring.h) a batch drained from the eBPF ring. Time is
 * always packet time: timers run whenever packet time has advanced by SO_TIMER_TICK_NS, and
 * from so_pipeline_timer() (the live agent calls it when traffic is idle). Every outcome is
 * counted in ``reasons`` / ``evictions`` / ``stats``; nothing is returned per packet.
 */
#ifndef SO_PIPELINE_H
#define SO_PIPELINE_H

#include "so_media.h"
#include "so_net.h"
#include "so_sip.h"
#include "so_stats.h"
#include "so_track.h"

/* Timer granularity in packet time. Timer B/F are 32 s and the expiry sweep 1 s, so 100 ms
 * keeps every expiry within 0.1 s of its due time while costing nothing per packet. */
#define SO_TIMER_TICK_NS 100000000LL

typedef struct so_pipeline_config {
    so_net_limits limits;
    uint8_t sip_ports[8192]; /* bitmap */
    bool all_ports;
    so_track_config track;
    bool media; /* learn media endpoints from SDP and keep RTP stream statistics (so_media.h) */
    so_media_limits media_limits;
    uint64_t memory_limit; /* one budget over every table (so_mem, so_common.h); 0: none */
} so_pipeline_config;

typedef struct so_pipeline {
    uint64_t reasons[SO_N_REASONS];
    uint64_t evictions[SO_N_EVICTIONS];
    so_stats stats;
    so_net *net;
    so_parser *parser;
    so_track *track;
    so_media *media; /* NULL unless cfg.media */
    int64_t last_ts, next_timer;
    so_mem mem; /* shared by net and track */
} so_pipeline;

so_pipeline *so_pipeline_new(const so_pipeline_config *cfg); /* NULL: no memory */
void so_pipeline_free(so_pipeline *p);
void so_pipeline_frame(so_pipeline *p, int64_t ts_ns, uint32_t linktype, const uint8_t *data,
                       size_t len);
/* Up to ``max_frames`` frames of a capture file. */
so_pcap_status so_pipeline_pcap(so_pipeline *p, so_pcap *pc, size_t max_frames);
/* Drive expiries when no packet arrives for a while. */
void so_pipeline_timer(so_pipeline *p, int64_t now_ns);
/* End of input: timers up to ``now_ns``, then close what is still open. */
void so_pipeline_finish(so_pipeline *p, int64_t now_ns);

#endif
