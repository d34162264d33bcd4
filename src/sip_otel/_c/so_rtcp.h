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
 *
 * RTCP XR (RFC 3611, packet type 207) may be anywhere in the compound packet, and a compound
 * packet may hold XR and no SR/RR (some senders do; RFC 5506 reduced-size RTCP allows it): the
 * VoIP Metrics blocks (block type 7, section 4.7) of every XR packet are kept, at most
 * SO_RTCP_MAX_XR, whatever the result about SR/RR -- see so_rtcp_parse.
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
    SO_RTCP_E_BAD_LENGTH = 3, /* an SR/RR whose length cannot hold its report count; an XR
                                * packet without its SSRC, with bad padding, a report block
                                * past its end, or a VoIP Metrics block whose length is not 8 */
    SO_RTCP_E_NO_REPORT = 4, /* well-formed, but no SR or RR in the first packets (n_xr and
                                xr[] are still filled from the XR packets there) */
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
 * RFC defines per field); the parser fills them, the media code keeps the last one per stream.
 *
 *   0               1               2               3
 *  |     BT=7      |   reserved    |       block length = 8        |
 *  |                        SSRC of source                         |
 *  |   loss rate   | discard rate  | burst density |  gap density  |
 *  |       burst duration          |         gap duration          |
 *  |     round trip delay          |       end system delay        |
 *  | signal level  |  noise level  |     RERL      |     Gmin      |
 *  |   R factor    | ext. R factor |    MOS-LQ     |    MOS-CQ     |
 *  |   RX config   |   reserved    |          JB nominal           |
 *  |          JB maximum           |          JB abs max           | */
#define SO_RTCP_XR 207
#define SO_RTCP_MAX_XR 4
#define SO_RTCP_XR_VOIP 7          /* block type */
#define SO_RTCP_XR_VOIP_WORDS 8    /* its block length field: 9 words with the block header */
#define SO_RTCP_MAX_XR_BLOCKS 16   /* report blocks walked per XR packet (the rest unread) */
struct so_rtcp_xr_voip {
    so_u32 ssrc;
    so_u8 loss_rate, discard_rate, burst_density, gap_density; /* /256 */
    so_u16 burst_duration, gap_duration;                     /* ms */
    so_u16 round_trip_delay, end_system_delay;                /* ms */
    so_u8 signal_level, noise_level, rerl, gmin; /* signal, noise: dBm signed (127 n/a); raw */
    so_u8 r_factor, ext_r_factor, mos_lq, mos_cq; /* R 0-100 (127 n/a); MOS x10 (127 n/a) */
    so_u8 rx_config, pad0;                       /* PLC (2 bits), JBA (2), JB rate (4) */
    so_u16 jb_nominal, jb_maximum, jb_abs_max;   /* ms */
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

SO_RTP_INLINE so_u16 so_rtcp_be16(const so_u8 *p) {
    return (so_u16)(((so_u16)p[0] << 8) | p[1]);
}

/* One XR packet (RFC 3611 section 2) of `size` bytes at `h`: walk its report blocks (BT,
 * type-specific byte, block length in 32-bit words minus one), skip the types not kept and
 * store VoIP Metrics blocks while there is room. Returns an so_rtcp_result. */
SO_RTP_INLINE int so_rtcp_xr(const so_u8 *h, so_u32 size, struct so_rtcp_report *r) {
    so_u32 end = size;
    if (size < 8) /* header + SSRC of the packet's sender */
        return SO_RTCP_E_BAD_LENGTH;
    if (h[0] & 0x20) { /* padding: its last octet counts the padding octets, itself included */
        so_u32 pad = h[size - 1];
        if (pad == 0 || pad > size - 8)
            return SO_RTCP_E_BAD_LENGTH;
        end = size - pad;
    }
    so_u32 off = 8;
    for (int k = 0; k < SO_RTCP_MAX_XR_BLOCKS; k++) {
        if (off + 4 > end)
            break;
        const so_u8 *b = h + off;
        so_u32 words = so_rtcp_be16(b + 2);
        so_u32 bsize = (words + 1) * 4;
        if (bsize > end - off)
            return SO_RTCP_E_BAD_LENGTH;
        if (b[0] == SO_RTCP_XR_VOIP) {
            if (words != SO_RTCP_XR_VOIP_WORDS)
                return SO_RTCP_E_BAD_LENGTH;
            if (r->n_xr < SO_RTCP_MAX_XR) {
                struct so_rtcp_xr_voip *v = &r->xr[r->n_xr];
                v->ssrc = so_rtcp_be32(b + 4);
                v->loss_rate = b[8];
                v->discard_rate = b[9];
                v->burst_density = b[10];
                v->gap_density = b[11];
                v->burst_duration = so_rtcp_be16(b + 12);
                v->gap_duration = so_rtcp_be16(b + 14);
                v->round_trip_delay = so_rtcp_be16(b + 16);
                v->end_system_delay = so_rtcp_be16(b + 18);
                v->signal_level = b[20];
                v->noise_level = b[21];
                v->rerl = b[22];
                v->gmin = b[23];
                v->r_factor = b[24];
                v->ext_r_factor = b[25];
                v->mos_lq = b[26];
                v->mos_cq = b[27];
                v->rx_config = b[28];
                v->pad0 = 0;
                v->jb_nominal = so_rtcp_be16(b + 30);
                v->jb_maximum = so_rtcp_be16(b + 32);
                v->jb_abs_max = so_rtcp_be16(b + 34);
                v->pad1[0] = v->pad1[1] = 0;
                r->n_xr++;
            }
        }
        off += bsize;
    }
    return SO_RTCP_OK;
}

/* so_rtcp_parse without clearing n_xr on an error. */
SO_RTP_INLINE int so_rtcp_walk(const so_u8 *p, so_u32 len, struct so_rtcp_report *r) {
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
        } else if (pt == SO_RTCP_XR) {
            int e = so_rtcp_xr(h, size, r);
            if (e != SO_RTCP_OK)
                return e;
        }
        off += size;
    }
    r->rc = (so_u8)(total > 255 ? 255 : total);
    return r->type ? SO_RTCP_OK : SO_RTCP_E_NO_REPORT;
}

/* Parse one compound RTCP packet (the UDP payload). The first SR or RR gives the type and
 * sender; the report blocks of every SR/RR in it are kept in order (a sender with more sources
 * than one packet holds, or an SR followed by an RR, RFC 3550 6.1), at most SO_RTCP_MAX_BLOCKS;
 * `rc` counts all of them. Returns an so_rtcp_result.
 * XR: the VoIP Metrics blocks of every XR packet walked are in xr[0..n_xr), in order. The
 * result is about SR/RR, so callers that only want those test for SO_RTCP_OK as before: a
 * compound packet with XR and no SR/RR returns SO_RTCP_E_NO_REPORT (type 0) with n_xr set.
 * Callers that want XR read n_xr when the result is SO_RTCP_OK or SO_RTCP_E_NO_REPORT (on the
 * other results it is 0: a malformed compound packet gives nothing). */
SO_RTP_INLINE int so_rtcp_parse(const so_u8 *p, so_u32 len, struct so_rtcp_report *r) {
    int res = so_rtcp_walk(p, len, r);
    if (res != SO_RTCP_OK && res != SO_RTCP_E_NO_REPORT)
        r->n_xr = 0;
    return res;
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
