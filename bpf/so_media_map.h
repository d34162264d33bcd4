// SPDX-License-Identifier: Apache-2.0
// The media maps shared by the eBPF socket filter (bpf/sip_filter.c) and the core
// (src/sip_otel/_c/so_media.c): one definition of their keys and values for both sides
// (docs/media.md, "Live path").
//
//   media_eps    BPF_HASH(struct so_mep_key, struct so_mep_val): learned media endpoints,
//                written and deleted by userspace only (the core queues the changes, the
//                capture adapter applies them with bpf(2)).
//   rtp_streams  BPF_HASH(struct so_mstream_key, struct so_rtp_stats): per RTP stream
//                statistics, created and updated by the filter (so_rtp_update, so_rtp.h),
//                read by userspace once per sync interval and deleted by userspace when the
//                core says the stream's endpoint is gone.
//
// Every field is naturally aligned and every padding byte is named (the kernel compares hash
// keys as bytes: userspace zeroes the pads, the filter zeroes its key before filling it).
#ifndef SO_MEDIA_MAP_H
#define SO_MEDIA_MAP_H

#include "so_rtp.h" /* so_u8..so_u64, struct so_rtp_stats */

#define SO_MEP_MAX_PT 16 /* payload types per endpoint (= SO_SDP_MAX_PT) */

/* A learned endpoint: where media is sent (destination address and port). */
struct so_mep_key {
    so_u8 family; /* 4 or 6 */
    so_u8 pad0;
    so_u16 port;  /* host order */
    so_u8 addr[16]; /* IPv4: the first 4 bytes, the rest zero */
};

#define SO_MEP_F_RTCP 1u /* the RTCP port of a stream (a=rtcp / RTP port + 1): copy to the ring */
#define SO_MEP_F_MUX 2u  /* a=rtcp-mux: RTCP arrives on this RTP port (second byte 192..223) */

struct so_mep_val {
    so_u8 flags;  /* SO_MEP_F_* */
    so_u8 n_pts;  /* entries used in pts/rates */
    so_u8 pad0[2];
    so_u8 pts[SO_MEP_MAX_PT];    /* payload type numbers */
    so_u32 rates[SO_MEP_MAX_PT]; /* their RTP clock rates in Hz (0: unknown -> no jitter) */
};

/* One RTP stream: 5-tuple (UDP) + SSRC. */
struct so_mstream_key {
    so_u8 family; /* 4 or 6 */
    so_u8 pad0;
    so_u16 sport, dport; /* host order */
    so_u8 pad1[2];
    so_u32 ssrc;
    so_u8 src[16], dst[16]; /* IPv4: the first 4 bytes, the rest zero */
};

#endif
