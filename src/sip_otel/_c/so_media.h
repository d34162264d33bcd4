/* SPDX-License-Identifier: Apache-2.0
 * Media in the pipeline (docs/media.md): endpoints learned from the SDP of SIP messages, per
 * stream RTP statistics for the UDP packets sent to them -- computed by the same so_rtp_update
 * the eBPF filter runs, here (replay) or in the kernel (live, copied in by so_media_kernel_sync)
 * -- and calls: each endpoint and stream belongs to the call (Call-ID) whose SDP announced it,
 * and a call's media ends ``linger_ns`` after its dialog record's end, with a final report per
 * stream. Sans-IO. Off unless the pipeline enables it.
 *
 * Tables: calls (Call-ID hash), learned endpoints (address, port; RTP or RTCP; the payload-type
 * -> clock-rate map of the SDP that announced them; the call and its owner's role) and streams
 * (5-tuple + SSRC). All are bounded hash tables of twice their limit's slots (a power of two)
 * with a probe window of SO_MEDIA_PROBE slots, so that the limit's entries fit (load <= 1/2):
 * an insert into a full window replaces an entry (the call ending soonest, else the one idle
 * longest), counted ``<table>.timeout`` when it had been idle longer than the idle timeout,
 * else ``<table>.full``. Evicting a call ends its media (final reports, endpoints retired).
 * The kernel stream sync never evicts a live stream (its kernel entry would come back with its
 * whole history): an entry that finds no room is counted ``rtp_streams.full`` and left in the
 * kernel map until room is made (it has never been reported: its history is all new then).
 *
 * so_media_call.c holds calls, reports, the kernel change queue and the kernel sync;
 * so_media.c endpoints, streams and the per-packet path.
 */
#ifndef SO_MEDIA_H
#define SO_MEDIA_H

#include "so_common.h"
#include "so_hash.h"
#include "so_media_map.h"
#include "so_reasons.h"
#include "so_rtcp.h"
#include "so_rtp.h"
#include "so_sdp.h"
#include "so_types.h"

#define SO_MEDIA_PROBE 32
/* Call-ID bytes kept per call (a longer one is kept truncated, flagged; its hash is whole). */
#define SO_MEDIA_CALL_ID_MAX 256

/* First member of every table's entries (the slot allocator reads it). */
typedef struct so_media_head {
    int64_t last_ns; /* last packet or SDP refresh */
    uint8_t used;
} so_media_head;

typedef struct so_media_limits {
    uint32_t max_endpoints;  /* 4096 (slots: 2x, rounded up to a power of two) */
    uint32_t max_streams;    /* 4096 (likewise) */
    uint32_t max_calls;      /* 4096 (likewise) */
    uint32_t max_changes;    /* kernel endpoint-change queue; 0: 2 * max_endpoints + 64 */
    int64_t idle_timeout_ns; /* 300 s without a packet or an SDP refresh */
    int64_t linger_ns;       /* a call's media ends this long after its dialog record: 3 s */
    int64_t interval_ns;     /* interval reports per stream (0: final reports only): 60 s */
} so_media_limits;

void so_media_limits_default(so_media_limits *l);

typedef enum so_media_role {
    SO_MROLE_UNKNOWN = 0,
    SO_MROLE_CALLER = 1,
    SO_MROLE_CALLEE = 2,
} so_media_role;

/* Who receives a stream (records.MediaStream.direction). */
typedef enum so_media_dir {
    SO_MDIR_UNKNOWN = 0,
    SO_MDIR_TO_CALLER = 1,
    SO_MDIR_TO_CALLEE = 2,
} so_media_dir;

typedef struct so_media_call {
    so_media_head hd; /* last_ns: last SDP of the call */
    uint64_t hash;    /* so_call_hash(seed, Call-ID) */
    uint64_t caller_tag; /* so_call_hash(seed, From tag of the initial INVITE) */
    uint8_t has_caller;
    uint8_t id_truncated;
    uint16_t id_len;
    uint32_t n_endpoints; /* endpoints of the table that belong to it */
    int64_t end_at;       /* its media ends then (0: not scheduled) */
    uint64_t attempt;     /* hash of the CSeq and branch of its latest initial INVITE */
    uint8_t id[SO_MEDIA_CALL_ID_MAX];
} so_media_call;

typedef struct so_media_endpoint {
    so_media_head hd;
    uint8_t ip_len; /* 4 or 16 */
    uint8_t rtcp;   /* the RTCP port of a stream (a=rtcp / port + 1), not its RTP port */
    uint8_t mux;    /* a=rtcp-mux */
    uint8_t role;   /* so_media_role of the side whose SDP announced it */
    uint8_t n_pts;
    uint16_t port;
    uint64_t call; /* call hash */
    int64_t learned_ns; /* learned for its call (kernel entries started before are stale) */
    uint8_t addr[16];
    uint8_t pts[SO_SDP_MAX_PT];
    uint32_t rates[SO_SDP_MAX_PT];
    char names[SO_SDP_MAX_PT][SO_SDP_CODEC_NAME]; /* as the SDP spells them */
} so_media_endpoint;

typedef struct so_media_stream {
    so_media_head hd;
    uint8_t ip_len;
    uint8_t dir; /* so_media_dir */
    uint16_t sport, dport;
    uint32_t ssrc;
    uint32_t clock_rate; /* of its payload type in the endpoint's SDP (0 unknown) */
    uint64_t call;       /* call hash (its endpoint's call when it started) */
    uint8_t src[16], dst[16];
    char codec[SO_SDP_CODEC_NAME]; /* encoding name of the first payload type seen (reports:
                                    * lower case) */
    struct so_rtp_stats st;
    /* the previous report's figures: the next report's period starts there */
    int64_t reported_ns; /* when (stream start before the first) */
    uint32_t rep_received, rep_expected, rep_resyncs;
    uint64_t rep_jitter_sum, rep_jitter_samples, rep_first_ns, rep_packets;
    /* the last RTCP report block about this SSRC (what its receiver says) */
    uint32_t rtcp_reports; /* report blocks seen */
    uint32_t rr_jitter;    /* timestamp units */
    int32_t rr_cum_lost;
    uint8_t rr_fraction_lost; /* /256 */
    uint8_t has_xr;           /* an RTCP XR VoIP metrics block about this SSRC was seen */
    struct so_rtcp_xr_voip xr; /* the last one */
    /* round trip on the monitor's clock: this SSRC's last SR (NTP middle 32 bits, when seen),
     * and the last block whose LSR names it: rtt = RR seen - SR seen - DLSR */
    uint32_t sr_mid32;
    int64_t sr_seen_ns;  /* 0: no SR seen */
    int64_t rtt_ns;      /* -1: none yet */
} so_media_stream;

/* One report of a stream, handed to the sink before anything is removed. The period figures
 * are since the stream's previous report (RFC 3550 A.3 received/expected; the A.8 estimate's
 * sum and sample count over the period's updates). */
typedef struct so_media_report {
    const so_media_stream *s;
    const so_media_call *call; /* NULL: the call is no longer known */
    bool final;
    uint64_t packets; /* every packet seen (so_rtp_stats.packets) */
    uint32_t received, expected;
    uint64_t jitter_sum, jitter_samples;
} so_media_report;

typedef void (*so_media_report_fn)(void *ctx, const so_media_report *r);
typedef void (*so_media_call_end_fn)(void *ctx, uint64_t call_hash);

/* A queued change of the kernel's media_eps map. */
typedef struct so_media_change {
    struct so_mep_key key;
    struct so_mep_val val;
    uint8_t del; /* 1: delete key; 0: add or replace key -> val */
} so_media_change;

typedef struct so_media {
    so_media_limits lim;
    so_h128 seed;
    uint32_t ep_mask, st_mask, call_mask;
    so_media_endpoint *eps;
    so_media_stream *streams;
    so_media_call *calls;
    uint64_t *reasons;
    uint64_t *evictions;
    uint64_t rtp_packets, rtcp_packets, endpoints_learned, kernel_streams;
    int64_t next_sweep_ns; /* streams and endpoints: interval reports, idle ends */
    int64_t next_end_ns;   /* no call's media ends before (INT64_MAX: none scheduled) */
    int64_t now_ns;        /* latest packet time seen (timers, SIP, packets) */
    /* report sink (the binding) */
    so_media_report_fn on_report;
    so_media_call_end_fn on_call_end;
    void *sink_ctx;
    /* kernel endpoint changes: off until so_media_changes_enable (a kernel drains them) */
    bool changes_on;
    so_media_change *changes; /* ring of cap entries */
    uint32_t changes_cap, changes_head, changes_len;
    bool changes_resync; /* the queue overflowed: the kernel map must be rebuilt */
    so_sdp sdp; /* scratch */
    struct so_rtcp_report rtcp; /* scratch */
} so_media;

so_media *so_media_new(const so_media_limits *lim, so_h128 seed, uint64_t *reasons,
                       uint64_t *evictions); /* NULL: no memory */
void so_media_free(so_media *m);
void so_media_set_sink(so_media *m, so_media_report_fn on_report, so_media_call_end_fn on_end,
                       void *ctx);
/* Learn the endpoints of a message's SDP (INVITE, ACK, UPDATE, PRACK and their 1xx/2xx). */
void so_media_learn(so_media *m, const so_msg *msg);
/* A UDP payload on no SIP port: true when it went to a learned endpoint (and was counted). */
bool so_media_udp(so_media *m, const so_payload *pl);

/* ---- calls (so_media_call.c) ---- */
/* The tracker's signals: a dialog record of the call ended at end_ns (its media ends at
 * end_ns + linger unless a dialog of the call is confirmed before); a dialog was confirmed. */
void so_media_call_ended(so_media *m, uint64_t call_hash, int64_t end_ns);
void so_media_call_confirmed(so_media *m, uint64_t call_hash);
/* The call is in the table (it has media whose end has not come). */
bool so_media_call_open(const so_media *m, uint64_t call_hash);
/* Packet time advanced: due call ends, interval reports, idle endpoints and streams. */
void so_media_timer(so_media *m, int64_t now);
/* End of input: every call's media ends now (final reports). */
void so_media_finish(so_media *m, int64_t now);
/* Kernel endpoint changes: from now on (every endpoint already learned is queued as an add). */
void so_media_changes_enable(so_media *m);
/* After an overflow of the change queue: true once (the kernel map must be cleared), the queue
 * then holding an add for every endpoint in the table. */
bool so_media_changes_resync(so_media *m);
/* Take up to `max` queued changes (oldest first); returns how many were copied. */
uint32_t so_media_changes_take(so_media *m, so_media_change *out, uint32_t max);
/* The kernel's rtp_streams (n keys, n values) into the stream table; the keys whose endpoint is
 * gone are copied to stale (room for n) and counted in *n_stale. */
void so_media_kernel_sync(so_media *m, const struct so_mstream_key *keys,
                          const struct so_rtp_stats *vals, uint32_t n, int64_t offset_ns,
                          struct so_mstream_key *stale, uint32_t *n_stale);

/* ---- shared between so_media.c and so_media_call.c ---- */
so_media_call *so_media_call_find(const so_media *m, uint64_t hash);
so_media_endpoint *so_media_ep_find(so_media *m, const uint8_t *addr, uint8_t ip_len,
                                    uint16_t port);
/* The stream (5-tuple + SSRC) in the table, or NULL. */
so_media_stream *so_media_stream_find(so_media *m, const uint8_t *src, const uint8_t *dst,
                                      uint8_t ip_len, uint16_t sport, uint16_t dport,
                                      uint32_t ssrc);
/* The stream, created from its endpoint when new; keep_live: only in a free slot or one idle
 * past the timeout (NULL when there is none), else the window's idlest is evicted. */
so_media_stream *so_media_stream_for(so_media *m, const uint8_t *src, const uint8_t *dst,
                                     uint8_t ip_len, uint16_t sport, uint16_t dport,
                                     uint32_t ssrc, const so_media_endpoint *ep, uint8_t pt,
                                     int64_t now, bool keep_live);
void so_media_report_stream(so_media *m, so_media_stream *s, bool final, int64_t now);
/* A stream ends: its final report, then its slot is free. */
void so_media_stream_end(so_media *m, so_media_stream *s, int64_t now);
/* The endpoint's index of payload type pt (-1: not in its SDP). */
int so_media_pt_index(const so_media_endpoint *ep, uint8_t pt);
/* Name the stream's codec from payload type pt while it has none: never from comfort noise
 * (RFC 3389 "CN") or "telephone-event" (RFC 4733), which are not the call's codec. */
void so_media_name_codec(so_media_stream *s, const so_media_endpoint *ep, uint8_t pt);
/* End a call's media now: final reports, endpoints retired, streams and the call removed. */
void so_media_call_end(so_media *m, so_media_call *c, int64_t now);
/* What a parsed RTCP compound packet says, onto the streams it names (also the test hook for
 * XR blocks: a report filled by hand goes the same way). */
void so_media_rtcp_apply(so_media *m, const struct so_rtcp_report *rep, int64_t now);
void so_media_queue_add(so_media *m, const so_media_endpoint *e);
void so_media_queue_del(so_media *m, const so_media_endpoint *e);
/* Remove an endpoint (queues its kernel delete; the call's count drops). */
void so_media_ep_retire(so_media *m, so_media_endpoint *e);
void *so_media_slot_for(so_media *m, uint8_t *base, size_t stride, uint32_t mask, uint32_t h,
                        int64_t now, so_eviction full, so_eviction timeout, bool keep_live);

#endif
