/* SPDX-License-Identifier: Apache-2.0
 * RTCP sender and receiver reports (RFC 3550 sections 6.4.1, 6.4.2): what a peer says about
 * the stream it receives -- fraction lost, cumulative lost, interarrival jitter -- and the
 * LSR/DLSR pair from which the round-trip time follows. Same constraints as so_rtp.h (its type
 * shim, no libc, no floats, loops with constant bounds): bcc compiles it, but the verifier
 * cannot follow its variable offsets into a packet buffer, so RTCP (one compound packet per
 * stream every few seconds) is parsed in userspace, from this same header.
 *
 * A compound packet (RFC 3550 6.1) is a sequence of RTCP packets, the first an SR or RR. The
 * parser walks at most SO_RTCP_MAX_PACKETS of them, keeps the first SR or RR, and from it at
 * most SO_RTCP_MAX_BLOCKS report blocks (the header's count says how many there were).
 */
#ifndef SO_RTCP_H
#define SO_RTCP_H

#include "so_rtp.h"

#define SO_RTCP_MAX_PACKETS 8
#define SO_RTCP_MAX_BLOCKS 4
#define SO_RTCP_SR 200
#define SO_RTCP_RR 201
/* so_rtcp_rtt when no round trip can be computed (LSR 0: no SR received yet; or negative). */
#define SO_RTCP_NO_RTT 0xffffffffu
/* Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
#define SO_RTCP_NTP_UNIX_OFFSET 2208988800ull

enum so_rtcp_result {
    SO_RTCP_OK = 0,
    SO_RTCP_E_TRUNCATED = 1, /* shorter than a header, or a length field past the end */
    SO_RTCP_E_VERSION = 2,   /* version != 2 */
    SO_RTCP_E_BAD_LENGTH = 3, /* an SR/RR whose length cannot hold its report count */
    SO_RTCP_E_NO_REPORT = 4, /* well-formed, but no SR or RR in the first packets */
};

struct so_rtcp_block { /* one report block (RFC 3550 6.4.1) */
    so_u32 ssrc;       /* the source this block reports on */
    so_u32 ext_max;    /* extended highest sequence number received */
    so_u32 jitter;     /* interarrival jitter, timestamp units */
    so_u32 lsr;        /* middle 32 bits of the last SR's NTP timestamp (0: none) */
    so_u32 dlsr;       /* delay since that SR, 1/65536 s */
    so_s32 cum_lost;   /* cumulative number of packets lost (24-bit signed) */
    so_u8 fraction_lost; /* fraction lost since the previous report, /256 */
    so_u8 pad0[3];
};

/* RTCP XR VoIP Metrics report block (RFC 3611 section 4.7, block type 7): what an end system
 * says about the stream with `ssrc`. Values as on the wire (127 / 0 for "unavailable" as the
 * RFC defines per field); the parser fills them, the media code keeps the last one per stream. */
#define SO_RTCP_XR 207
#define SO_RTCP_MAX_XR 4
struct so_rtcp_xr_voip {
    so_u32 ssrc;
    so_u8 loss_rate, discard_rate, burst_density, gap_density; /* /256 */
    so_u16 burst_duration, gap_duration;                     /* ms */
    so_u16 round_trip_delay, end_system_delay;                /* ms */
    so_u8 signal_level, noise_level, rerl, gmin;              /* dBm/dB as signed, raw */
    so_u8 r_factor, ext_r_factor, mos_lq, mos_cq;             /* R 0-100 (127 n/a); MOS x10 */
    so_u8 rx_config, pad0;
    so_u16 jb_nominal, jb_maximum, jb_abs_max;                /* ms */
    so_u8 pad1[2];
};

struct so_rtcp_report {
    so_u32 sender_ssrc;
    so_u8 type;      /* SO_RTCP_SR or SO_RTCP_RR */
    so_u8 rc;        /* report blocks in all SR/RR packets (saturating at 255) */
    so_u8 n_blocks;  /* blocks stored: min(rc, SO_RTCP_MAX_BLOCKS) */
    so_u8 n_packets; /* RTCP packets walked in the compound packet */
    /* sender info (SR only) */
    so_u32 ntp_msw, ntp_lsw, rtp_ts, packet_count, octet_count;
    struct so_rtcp_block blocks[SO_RTCP_MAX_BLOCKS];
    so_u8 n_xr; /* VoIP Metrics blocks stored (XR packets anywhere in the compound packet) */
    so_u8 pad0[3];
    struct so_rtcp_xr_voip xr[SO_RTCP_MAX_XR];
};

SO_RTP_INLINE so_u32 so_rtcp_be32(const so_u8 *p) {
    return ((so_u32)p[0] << 24) | ((so_u32)p[1] << 16) | ((so_u32)p[2] << 8) | p[3];
}

/* Parse one compound RTCP packet (the UDP payload). The first SR or RR gives the type and
 * sender; the report blocks of every SR/RR in it are kept in order (a sender with more sources
 * than one packet holds, or an SR followed by an RR, RFC 3550 6.1), at most SO_RTCP_MAX_BLOCKS;
 * `rc` counts all of them. Returns an so_rtcp_result. */
SO_RTP_INLINE int so_rtcp_parse(const so_u8 *p, so_u32 len, struct so_rtcp_report *r) {
    so_u32 off = 0;
    so_u32 total = 0;
    r->n_packets = 0;
    r->n_blocks = 0;
    r->n_xr = 0;
    r->type = 0;
    r->rc = 0;
    if (len < 4)
        return SO_RTCP_E_TRUNCATED;
    for (int i = 0; i < SO_RTCP_MAX_PACKETS; i++) {
        if (off + 4 > len)
            break;
        const so_u8 *h = p + off;
        if ((h[0] >> 6) != 2)
            return SO_RTCP_E_VERSION;
        so_u32 rc = h[0] & 0x1f;
        so_u8 pt = h[1];
        so_u32 size = ((((so_u32)h[2] << 8) | h[3]) + 1) * 4;
        if (size > len - off)
            return SO_RTCP_E_TRUNCATED;
        r->n_packets++;
        if (pt == SO_RTCP_SR || pt == SO_RTCP_RR) {
            so_u32 fixed = pt == SO_RTCP_SR ? 28 : 8; /* header + SSRC (+ sender info) */
            if (size < fixed + rc * 24)
                return SO_RTCP_E_BAD_LENGTH;
            if (!r->type) {
                r->type = pt;
                r->sender_ssrc = so_rtcp_be32(h + 4);
                if (pt == SO_RTCP_SR) {
                    r->ntp_msw = so_rtcp_be32(h + 8);
                    r->ntp_lsw = so_rtcp_be32(h + 12);
                    r->rtp_ts = so_rtcp_be32(h + 16);
                    r->packet_count = so_rtcp_be32(h + 20);
                    r->octet_count = so_rtcp_be32(h + 24);
                }
            }
            total += rc;
            for (int j = 0; j < SO_RTCP_MAX_BLOCKS; j++) {
                if ((so_u32)j >= rc || r->n_blocks >= SO_RTCP_MAX_BLOCKS)
                    break;
                const so_u8 *b = h + fixed + j * 24;
                struct so_rtcp_block *blk = &r->blocks[r->n_blocks];
                so_u32 lost = ((so_u32)b[5] << 16) | ((so_u32)b[6] << 8) | b[7];
                blk->ssrc = so_rtcp_be32(b);
                blk->fraction_lost = b[4];
                blk->cum_lost = (so_s32)(lost ^ 0x800000u) - 0x800000; /* sign-extend 24 bits */
                blk->ext_max = so_rtcp_be32(b + 8);
                blk->jitter = so_rtcp_be32(b + 12);
                blk->lsr = so_rtcp_be32(b + 16);
                blk->dlsr = so_rtcp_be32(b + 20);
                r->n_blocks++;
            }
        }
        off += size;
    }
    r->rc = (so_u8)(total > 255 ? 255 : total);
    return r->type ? SO_RTCP_OK : SO_RTCP_E_NO_REPORT;
}

/* Middle 32 bits of the NTP timestamp (16.16 fixed point seconds) of a Unix time in ns: the
 * unit of LSR, DLSR and round trips. */
SO_RTP_INLINE so_u32 so_rtcp_ntp_mid32(so_u64 unix_ns) {
    so_u64 sec = unix_ns / 1000000000ull;
    so_u64 rem = unix_ns - sec * 1000000000ull;
    so_u32 frac16 = (so_u32)((rem << 16) / 1000000000ull);
    return (so_u32)(((sec + SO_RTCP_NTP_UNIX_OFFSET) & 0xffff) << 16) | frac16;
}

/* Round-trip time (RFC 3550 6.4.1): A - LSR - DLSR, all in 1/65536 s, A the arrival of the
 * report block as the middle 32 bits of an NTP time. SO_RTCP_NO_RTT when LSR is 0 or the result
 * is negative. The RFC's A is the SR sender's own clock; a passive monitor has no such clock:
 * given its capture time (so_rtcp_ntp_mid32), the result is only right when the monitor's and
 * the SR sender's clocks agree (both NTP-synchronised). Clock-free alternative for a monitor:
 * A = the monitor's time when the RR arrived, LSR replaced by the monitor's time when it saw
 * the SR whose NTP middle bits equal LSR -- round trip monitor -> reporter -> monitor. */
SO_RTP_INLINE so_u32 so_rtcp_rtt(so_u32 arrival_mid32, so_u32 lsr, so_u32 dlsr) {
    if (lsr == 0)
        return SO_RTCP_NO_RTT;
    so_u32 rtt = arrival_mid32 - lsr - dlsr;
    if (rtt & 0x80000000u)
        return SO_RTCP_NO_RTT;
    return rtt;
}

#endif
