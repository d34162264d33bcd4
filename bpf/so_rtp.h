/* SPDX-License-Identifier: Apache-2.0
 * Per-packet RTP stream statistics: ONE update function shared by the eBPF socket filter
 * (bpf/, compiled by bcc) and the replay path (compiled into sip_otel._core), so live capture
 * and ``sip-otel replay`` compute the same numbers from the same code (docs/media.md).
 *
 * Written for both compilers at once:
 *   - no floating point, no libc, no helper calls, no loops in the per-packet update (the RTCP
 *     parser's loops have constant bounds: kernel >= 5.3), fixed-size structs: the verifier
 *     accepts it inlined into a socket filter (tests/media/test_media_rtp_bpf.py runs it there).
 *     Socket filters cannot take a bpf_spin_lock (the verifier refuses it, kernel 6.18), so the
 *     kernel caller updates a stream's state unlocked: one UDP flow is steered to one CPU by
 *     RSS/RPS flow hashing, so two CPUs updating the same stream at once is rare (docs/media.md);
 *   - types through the shim below: bcc sees the kernel's u8..u64 (define SO_RTP_BPF before
 *     including), everyone else <stdint.h>.
 *
 * Algorithms (RFC 3550):
 *   - Appendix A.1 sequence validation and extended highest sequence number: init_seq and
 *     update_seq with MAX_DROPOUT 3000, MAX_MISORDER 100, MIN_SEQUENTIAL 2 (a new source is on
 *     probation until two packets arrive in sequence; a jump is accepted after two sequential
 *     packets at the new place, which resets the loss statistics as the RFC says);
 *   - Appendix A.3 expected = extended max - base + 1, lost = expected - received (received
 *     counts duplicates, as the RFC's does; duplicates are also counted on their own);
 *   - Appendix A.8 interarrival jitter, kept as an integer. The RFC's integer variant keeps J
 *     scaled by 16 and transit in whole timestamp units; here arrivals are converted from
 *     nanoseconds to 1/16 timestamp units and J is scaled by 256 (J256 = 256 J), the same
 *     recurrence J += (|D| - J)/16 with four more fractional bits: whole-unit arrivals would
 *     add up to one unit (125 us at 8 kHz) of quantisation noise to every |D|.
 *     Update: J256 += |D16| - ((J256 + 8) >> 4), where D16 is the transit difference in
 *     1/16 units: 256 (J + (|D| - J)/16) = J256 + 16 |D| - J256/16, and 16 |D| = |D16| (the
 *     RFC's own integer form, J16 += |D| - ((J16 + 8) >> 4), with four more bits on both).
 * Duplicates and reordering: a 128-bit window of the sequence numbers at and below the
 * highest one (MAX_MISORDER 100 < 128, so every packet A.1 classes as "duplicate or
 * reordered" falls inside it).
 */
#ifndef SO_RTP_H
#define SO_RTP_H

#ifdef SO_RTP_BPF /* bcc: the kernel's types */
typedef u8 so_u8;
typedef u16 so_u16;
typedef u32 so_u32;
typedef u64 so_u64;
typedef s32 so_s32;
typedef s64 so_s64;
#else
#include <stdint.h>
typedef uint8_t so_u8;
typedef uint16_t so_u16;
typedef uint32_t so_u32;
typedef uint64_t so_u64;
typedef int32_t so_s32;
typedef int64_t so_s64;
#endif

#define SO_RTP_INLINE static inline __attribute__((always_inline))

#define SO_RTP_SEQ_MOD (1u << 16)
#define SO_RTP_MAX_DROPOUT 3000u
#define SO_RTP_MAX_MISORDER 100u
#define SO_RTP_MIN_SEQUENTIAL 2u
/* Clock rates above this are treated as unknown (no jitter): it bounds the u64 products in
 * so_rtp_units16 (1e9 * rate * 16 < 2^64 needs rate < 1.15e9; real rates are <= 192 kHz). */
#define SO_RTP_MAX_CLOCK_RATE 1000000u
#define SO_RTP_NS_PER_S 1000000000ull
#define SO_RTP_HDR_LEN 12u

/* flags */
#define SO_RTP_F_STARTED 1u  /* at least one packet seen */
#define SO_RTP_F_VALID 2u    /* A.1 probation passed: sequence statistics are meaningful */
#define SO_RTP_F_TRANSIT 4u  /* `transit` holds the previous packet's relative transit time */

/* What so_rtp_update made of a packet (the caller may count these). */
enum so_rtp_outcome {
    SO_RTP_IN_ORDER = 0,  /* valid, advanced the highest sequence number */
    SO_RTP_PROBATION = 1, /* source not yet valid (A.1 probation) */
    SO_RTP_BAD_SEQ = 2,   /* very large jump, not (yet) believed: A.1 returned 0 */
    SO_RTP_RESYNC = 3,    /* second packet after a jump: statistics restarted there */
    SO_RTP_DUPLICATE = 4, /* this sequence number was already received */
    SO_RTP_REORDERED = 5, /* older than the highest, not received before */
};

/* Per stream (5-tuple + SSRC) state. Zero-initialise; the first packet starts it. */
struct so_rtp_stats {
    /* RFC 3550 A.1 (names as in the RFC) */
    so_u32 base_seq;  /* first sequence number of the valid run */
    so_u32 cycles;    /* shifted count of sequence number cycles */
    so_u32 bad_seq;   /* last "bad" sequence number + 1 (SEQ_MOD + 1: none) */
    so_u32 received;  /* packets A.1 accepted since base_seq (duplicates included) */
    so_u16 max_seq;   /* highest sequence number seen */
    so_u8 probation;  /* sequential packets still needed before the source is valid */
    so_u8 flags;      /* SO_RTP_F_* */
    so_u8 pt;         /* payload type of the last packet */
    so_u8 pad0[3];
    so_u32 clock_rate; /* clock rate used for the last jitter update (0: unknown) */
    so_u32 ifindex;    /* kernel: the interface the stream is counted on (its first packet's;
                        * copies of its packets seen on other interfaces are not counted);
                        * replay: 0. Not touched by so_rtp_update */
    /* counts over the whole stream */
    so_u64 packets; /* every packet given to so_rtp_update */
    so_u64 bytes;   /* their byte counts as the caller gave them (UDP payload) */
    so_u32 duplicates;
    so_u32 reordered;
    so_u32 bad_seq_packets; /* A.1 rejections (large jumps) */
    so_u32 resyncs;         /* restarts after a jump */
    so_u32 pt_changes;      /* packets whose payload type differs from the previous one */
    so_u32 transit;         /* relative transit time of the previous packet, 1/16 units */
    /* timing */
    so_u64 first_ns;   /* arrival of the first packet */
    so_u64 last_ns;    /* arrival of the latest packet */
    so_u64 max_gap_ns; /* largest interval between consecutive arrivals */
    so_u64 jitter;     /* A.8 J, scaled by 256 (1/256 timestamp units) */
    so_u64 max_jitter; /* largest `jitter` reached */
    so_u64 jitter_sum; /* sum of `jitter` after each update: mean = jitter_sum / jitter_samples */
    so_u64 jitter_samples;
    so_u64 seen[2];    /* bit i of seen[i / 64]: extended max - i was received */
};

/* The layout is shared by the kernel map and the core (and tests that unpack it by hand):
 * every field at its natural alignment, no unnamed padding. */
#ifdef SO_RTP_BPF
typedef char so_rtp_stats_size_check[sizeof(struct so_rtp_stats) == 144 ? 1 : -1];
#else
_Static_assert(sizeof(struct so_rtp_stats) == 144, "struct so_rtp_stats is 144 bytes");
#endif

/* Fixed RTP header fields (RFC 3550 section 5.1). */
struct so_rtp_hdr {
    so_u32 ts;
    so_u32 ssrc;
    so_u16 seq;
    so_u8 pt;
    so_u8 marker;
};

/* Parse the 12-byte fixed header. 0 = RTP version 2 data packet; 1 = RTCP (an RTCP packet type
 * 192..223 in the second byte: the RFC 5761 rule for demultiplexing RTP and RTCP on one port);
 * -1 = not RTP (version != 2). */
SO_RTP_INLINE int so_rtp_parse_fixed(const so_u8 *b, struct so_rtp_hdr *h) {
    if ((b[0] >> 6) != 2)
        return -1;
    if (b[1] >= 192 && b[1] <= 223)
        return 1;
    h->marker = b[1] >> 7;
    h->pt = b[1] & 0x7f;
    h->seq = (so_u16)(((so_u32)b[2] << 8) | b[3]);
    h->ts = ((so_u32)b[4] << 24) | ((so_u32)b[5] << 16) | ((so_u32)b[6] << 8) | b[7];
    h->ssrc = ((so_u32)b[8] << 24) | ((so_u32)b[9] << 16) | ((so_u32)b[10] << 8) | b[11];
    return 0;
}

/* Arrival time in 1/16 timestamp units, modulo 2^32: floor(ns * rate * 16 / 1e9), computed as
 * whole seconds and the remainder so no product overflows (ns < 2^64, rate <= MAX_CLOCK_RATE:
 * (ns / 1e9) * rate * 16 < 1.9e10 * 1.6e7, (ns % 1e9) * rate * 16 < 1.6e16). Both parts are
 * exact, so the sum is exactly the floor of the whole product. */
SO_RTP_INLINE so_u32 so_rtp_units16(so_u64 ns, so_u32 rate) {
    so_u64 sec = ns / SO_RTP_NS_PER_S;
    so_u64 rem = ns - sec * SO_RTP_NS_PER_S;
    so_u64 r16 = (so_u64)rate * 16;
    return (so_u32)(sec * r16 + (rem * r16) / SO_RTP_NS_PER_S);
}

/* RFC 3550 A.1 init_seq, plus the receive window. */
SO_RTP_INLINE void so_rtp_init_seq(struct so_rtp_stats *s, so_u16 seq) {
    s->base_seq = seq;
    s->max_seq = seq;
    s->bad_seq = SO_RTP_SEQ_MOD + 1;
    s->cycles = 0;
    s->received = 0;
    s->seen[0] = 1; /* bit 0: max_seq itself */
    s->seen[1] = 0;
}

/* Slide the window up by d (1 <= d < MAX_DROPOUT) and mark the new highest number. */
SO_RTP_INLINE void so_rtp_window_advance(struct so_rtp_stats *s, so_u32 d) {
    if (d >= 128) {
        s->seen[1] = 0;
        s->seen[0] = 1;
        return;
    }
    if (d >= 64) {
        s->seen[1] = s->seen[0] << (d - 64);
        s->seen[0] = 0;
    } else {
        s->seen[1] = (s->seen[1] << d) | (s->seen[0] >> (64 - d));
        s->seen[0] <<= d;
    }
    s->seen[0] |= 1;
}

/* RFC 3550 A.1 update_seq. Returns an so_rtp_outcome; `received` is counted as the RFC counts
 * it (every packet for which update_seq returns 1). */
SO_RTP_INLINE int so_rtp_update_seq(struct so_rtp_stats *s, so_u16 seq) {
    so_u16 udelta = (so_u16)(seq - s->max_seq);
    if (s->probation) {
        if (seq == (so_u16)(s->max_seq + 1)) {
            s->probation--;
            s->max_seq = seq;
            if (s->probation == 0) {
                so_rtp_init_seq(s, seq);
                s->received++;
                s->flags |= SO_RTP_F_VALID;
                return SO_RTP_IN_ORDER;
            }
        } else {
            s->probation = SO_RTP_MIN_SEQUENTIAL - 1;
            s->max_seq = seq;
        }
        return SO_RTP_PROBATION;
    }
    int outcome = SO_RTP_IN_ORDER;
    if (udelta == 0) {
        s->duplicates++; /* the highest number again: A.1's first branch, no change */
        outcome = SO_RTP_DUPLICATE;
    } else if (udelta < SO_RTP_MAX_DROPOUT) {
        if (seq < s->max_seq)
            s->cycles += SO_RTP_SEQ_MOD; /* wrapped: another 64K cycle */
        s->max_seq = seq;
        so_rtp_window_advance(s, udelta);
    } else if (udelta <= SO_RTP_SEQ_MOD - SO_RTP_MAX_MISORDER) {
        if (seq == s->bad_seq) {
            /* two sequential packets after a jump: the source restarted; re-sync */
            so_rtp_init_seq(s, seq);
            s->resyncs++;
            outcome = SO_RTP_RESYNC;
        } else {
            s->bad_seq = (seq + 1u) & (SO_RTP_SEQ_MOD - 1);
            s->bad_seq_packets++;
            return SO_RTP_BAD_SEQ;
        }
    } else {
        /* duplicate or reordered: 1 <= behind <= MAX_MISORDER - 1 < 128 */
        so_u32 behind = (so_u16)(s->max_seq - seq);
        so_u64 bit = 1ull << (behind & 63);
        so_u64 *word = behind < 64 ? &s->seen[0] : &s->seen[1];
        if (*word & bit) {
            s->duplicates++;
            outcome = SO_RTP_DUPLICATE;
        } else {
            *word |= bit;
            s->reordered++;
            outcome = SO_RTP_REORDERED;
        }
    }
    s->received++;
    return outcome;
}

/* The per-packet update: one call per RTP data packet of the stream, in arrival order.
 *   seq, ts, pt  from the RTP header (so_rtp_parse_fixed)
 *   nbytes       the packet's size as the caller counts bytes (UDP payload length)
 *   now_ns       arrival time in ns (kernel: bpf_ktime_get_ns; replay: the capture's time)
 *   clock_rate   the payload type's RTP clock rate in Hz (SDP a=rtpmap), 0 if unknown
 * Jitter and gaps are updated for every packet A.1 does not reject (probation, duplicates and
 * reordered packets included, as a receiver timing its arrivals would). A change of clock rate
 * restarts the transit baseline (no jitter sample for that packet). */
SO_RTP_INLINE int so_rtp_update(struct so_rtp_stats *s, so_u16 seq, so_u32 ts, so_u8 pt,
                                so_u32 nbytes, so_u64 now_ns, so_u32 clock_rate) {
    int outcome;
    s->packets++;
    s->bytes += nbytes;
    if (!(s->flags & SO_RTP_F_STARTED)) {
        s->flags = SO_RTP_F_STARTED;
        s->probation = SO_RTP_MIN_SEQUENTIAL;
        s->max_seq = (so_u16)(seq - 1); /* A.1: a new source starts with max_seq = seq - 1 */
        s->bad_seq = SO_RTP_SEQ_MOD + 1;
        s->pt = pt;
        s->first_ns = now_ns;
        s->last_ns = now_ns;
    } else {
        if (pt != s->pt) {
            s->pt_changes++;
            s->pt = pt;
        }
    }
    outcome = so_rtp_update_seq(s, seq);
    if (outcome == SO_RTP_BAD_SEQ)
        return outcome;
    if (now_ns > s->last_ns && s->packets > 1) {
        so_u64 gap = now_ns - s->last_ns;
        if (gap > s->max_gap_ns)
            s->max_gap_ns = gap;
    }
    if (now_ns > s->last_ns)
        s->last_ns = now_ns;
    if (clock_rate == 0 || clock_rate > SO_RTP_MAX_CLOCK_RATE) {
        s->flags &= ~SO_RTP_F_TRANSIT;
        s->clock_rate = 0;
        return outcome;
    }
    so_u32 transit = so_rtp_units16(now_ns, clock_rate) - ts * 16u;
    if ((s->flags & SO_RTP_F_TRANSIT) && clock_rate == s->clock_rate) {
        so_u32 diff = transit - s->transit;
        so_u32 d = (so_s32)diff < 0 ? 0u - diff : diff; /* |D| in 1/16 units */
        s->jitter = s->jitter - ((s->jitter + 8) >> 4) + d;
        if (s->jitter > s->max_jitter)
            s->max_jitter = s->jitter;
        s->jitter_sum += s->jitter;
        s->jitter_samples++;
    }
    s->transit = transit;
    s->clock_rate = clock_rate;
    s->flags |= SO_RTP_F_TRANSIT;
    return outcome;
}

/* RFC 3550 A.3: packets expected since base_seq (0 while on probation). */
SO_RTP_INLINE so_u32 so_rtp_expected(const struct so_rtp_stats *s) {
    if (!(s->flags & SO_RTP_F_VALID))
        return 0;
    return s->cycles + s->max_seq - s->base_seq + 1;
}

/* RFC 3550 A.3: cumulative lost = expected - received (negative with duplicates). */
SO_RTP_INLINE so_s64 so_rtp_lost(const struct so_rtp_stats *s) {
    return (so_s64)so_rtp_expected(s) - (so_s64)s->received;
}

#endif
