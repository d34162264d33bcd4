/* SPDX-License-Identifier: Apache-2.0
 * Media in the pipeline (replay side of docs/media.md): endpoints learned from the SDP of SIP
 * messages, and per-stream RTP statistics for the UDP packets sent to them -- computed by the
 * same so_rtp_update the eBPF filter runs. Sans-IO. Off unless the pipeline enables it.
 *
 * Tables: learned endpoints (address, port; RTP or RTCP; the payload-type -> clock-rate map of
 * the SDP that announced them) and streams (5-tuple + SSRC). Both are bounded hash tables with
 * a short probe window (SO_MEDIA_PROBE slots): an insert into a full window replaces the entry
 * idle longest, counted as ``<table>.timeout`` when it had been idle longer than the idle
 * timeout, else ``<table>.full``. An SDP refresh (re-INVITE, UPDATE) overwrites an endpoint.
 */
#ifndef SO_MEDIA_H
#define SO_MEDIA_H

#include "so_common.h"
#include "so_hash.h"
#include "so_reasons.h"
#include "so_rtcp.h"
#include "so_rtp.h"
#include "so_sdp.h"
#include "so_types.h"

#define SO_MEDIA_PROBE 8

/* First member of both tables' entries (the slot allocator reads it). */
typedef struct so_media_head {
    int64_t last_ns; /* last packet or SDP refresh */
    uint8_t used;
} so_media_head;

typedef struct so_media_limits {
    uint32_t max_endpoints;  /* 4096 (rounded up to a power of two) */
    uint32_t max_streams;    /* 4096 (rounded up to a power of two) */
    int64_t idle_timeout_ns; /* 300 s without a packet or an SDP refresh */
} so_media_limits;

void so_media_limits_default(so_media_limits *l);

typedef struct so_media_endpoint {
    so_media_head hd;
    uint8_t ip_len; /* 4 or 16 */
    uint8_t rtcp;   /* the RTCP port of a stream (a=rtcp / port + 1), not its RTP port */
    uint8_t n_pts;
    uint16_t port;
    uint8_t addr[16];
    uint8_t pts[SO_SDP_MAX_PT];
    uint32_t rates[SO_SDP_MAX_PT];
    char names[SO_SDP_MAX_PT][SO_SDP_CODEC_NAME];
} so_media_endpoint;

typedef struct so_media_stream {
    so_media_head hd;
    uint8_t ip_len;
    uint16_t sport, dport;
    uint32_t ssrc;
    uint8_t src[16], dst[16];
    char codec[SO_SDP_CODEC_NAME]; /* encoding name of the first payload type seen */
    struct so_rtp_stats st;
    /* the last RTCP report block about this SSRC (what its receiver says) */
    uint32_t rtcp_reports; /* report blocks seen */
    uint32_t rr_jitter;    /* timestamp units */
    int32_t rr_cum_lost;
    uint8_t rr_fraction_lost; /* /256 */
    /* round trip on the monitor's clock: this SSRC's last SR (NTP middle 32 bits, when seen),
     * and the last block whose LSR names it: rtt = RR seen - SR seen - DLSR */
    uint32_t sr_mid32;
    int64_t sr_seen_ns;  /* 0: no SR seen */
    int64_t rtt_ns;      /* -1: none yet */
} so_media_stream;

typedef struct so_media {
    so_media_limits lim;
    so_h128 seed;
    uint32_t ep_mask, st_mask;
    so_media_endpoint *eps;
    so_media_stream *streams;
    uint64_t *reasons;
    uint64_t *evictions;
    uint64_t rtp_packets, rtcp_packets, endpoints_learned;
    so_sdp sdp; /* scratch */
    struct so_rtcp_report rtcp; /* scratch */
} so_media;

so_media *so_media_new(const so_media_limits *lim, so_h128 seed, uint64_t *reasons,
                       uint64_t *evictions); /* NULL: no memory */
void so_media_free(so_media *m);
/* Learn the endpoints of a message's SDP (INVITE, ACK, UPDATE, PRACK and their 1xx/2xx). */
void so_media_learn(so_media *m, const so_msg *msg);
/* A UDP payload on no SIP port: true when it went to a learned endpoint (and was counted). */
bool so_media_udp(so_media *m, const so_payload *pl);

#endif
