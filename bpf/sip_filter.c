// SPDX-License-Identifier: Apache-2.0
// sip-otel kernel filter: a socket filter on AF_PACKET sockets that keeps SIP and IP fragments
// and copies each kept packet, whole, into a BPF ring buffer. Compiled by bcc at agent start
// (src/sip_otel/capture/ebpf.py); options come as -D cflags:
//   NCPU        number of possible CPUs (size of the scratch array)
//   NRINGS      ring buffers (one per possible CPU; the loader fills the `rings` array of maps)
//   RING_PAGES  size of each ring buffer in pages (power of two)
//   LO_IFINDEX  ifindex of "lo" in the agent's network namespace (outgoing copies dropped there)
//   ALL_PORTS   if defined, any UDP/TCP port passes (the port map is not consulted)
//   WAKEUP_PACKETS  records per CPU between wakeups of the reader (sip_record.h)
//   MEDIA       if defined, per-call media (docs/media.md, "Live path"): RTP statistics in
//               the kernel, RTCP to the ring; MEDIA_MAX_ENDPOINTS and MEDIA_MAX_STREAMS size
//               the two maps (so_media_map.h)
//
// Theory of operation
//   The program parses from the start of the frame (the MAC header on Ethernet-like devices and
//   on loopback, whose header is 14 zero-ish bytes): Ethernet, up to two inline 802.1Q/802.1ad
//   tags, IPv4 (options skipped by IHL) or IPv6 (hop-by-hop, routing and destination options
//   headers skipped), then the UDP/TCP ports. A packet passes when its source or destination
//   port is in `sip_ports`, or when it is an IP fragment (IPv4 MF/offset, IPv6 fragment header):
//   non-first fragments carry no ports, so every fragment goes to userspace for reassembly.
//   The receive path strips the outer VLAN tag into skb metadata before packet taps see the
//   frame, so the record header carries vlan_tci/vlan_proto and userspace re-inserts the tag.
//   On loopback every packet is seen twice (PACKET_OUTGOING then PACKET_HOST): the outgoing
//   copy is dropped so each packet counts once.
//   A kept packet is copied (up to MAX_CAPLEN bytes) into this CPU's slot of a plain array (a
//   per-CPU value is capped at 32 KiB, a ring reservation needs a constant size), then written
//   with bpf_ringbuf_output, whose size may vary, to this CPU's own ring buffer (`rings`, an
//   array of ring-buffer maps indexed by CPU): no two CPUs ever take the same ring's lock.
//   The reader drains every ring and merges them by ts_ns. Failures are counted per CPU.
//   The program always returns 0: nothing is queued on the socket, the ring is the data path.
//
// Media (-DMEDIA)
//   A UDP packet (not a fragment) that fails the port test is looked up by its destination
//   (family, address, port) in `media_eps`, the endpoints userspace learned from SDP; none: it
//   is dropped as without media. To an endpoint flagged SO_MEP_F_RTCP it is copied to the ring
//   (the core parses RTCP). Otherwise its first 12 UDP payload bytes are the RTP header: a
//   version other than 2 is counted (not_rtp) and dropped; an RTCP packet type (192..223 in the
//   second byte) on an SO_MEP_F_MUX endpoint goes to the ring; anything else is RTP: the
//   stream (5-tuple + SSRC) is looked up in `rtp_streams` or inserted zeroed (a full map is
//   counted: rtp_streams_full, the packet's statistics are lost) and so_rtp_update() (so_rtp.h,
//   the same code replay runs) updates it with the payload type's clock rate from the
//   endpoint. A stream is counted on the interface of its first packet: a copy of its packet
//   seen on another interface (capturing on a bridge and its port, both ends of a veth) is
//   counted (rtp_copies) and skipped, unless the stream's own interface has been silent for
//   MEDIA_IF_MOVE_NS (it moved). The UDP length field (not the frame length: Ethernet padding) must cover the
//   12-byte RTP header. RTP is never copied to the ring. A socket filter cannot take a bpf_spin_lock,
//   so the update is unlocked: one UDP flow is steered to one CPU (docs/media.md).
//   Fast path: each bpf_skb_load_bytes costs 0.1-0.2 us, so an untagged IPv4 packet without
//   options that is not a fragment is classified from one load of its first FAST_LEN bytes
//   (ports, addresses, UDP and RTP headers at fixed offsets); anything else takes the general
//   path (classify()'s loads).

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/if_packet.h>
#include <uapi/linux/in.h>
#include <uapi/linux/in6.h>

#define SIP_RECORD_BPF 1
#include "sip_record.h"
#ifdef MEDIA
#define SO_RTP_BPF 1
#include "so_media_map.h"
#ifndef MEDIA_MAX_ENDPOINTS
#define MEDIA_MAX_ENDPOINTS 4096
#endif
#ifndef MEDIA_MAX_STREAMS
#define MEDIA_MAX_STREAMS 8192
#endif
// A stream's packets seen on another interface than its own are copies (not counted) unless
// its own interface has been silent this long (then the stream moved: counted there on).
#ifndef MEDIA_IF_MOVE_NS
#define MEDIA_IF_MOVE_NS 500000000ull
#endif
#endif

#ifndef NCPU
#define NCPU 128
#endif
#ifndef NRINGS
#define NRINGS 1
#endif
#ifndef RING_PAGES
#define RING_PAGES 2048
#endif
#ifndef LO_IFINDEX
#define LO_IFINDEX 1
#endif

// Largest packet copied: an IPv4/IPv6 datagram is at most 64 KiB; GSO super-packets above that
// are truncated (counted) -- userspace sees caplen < len.
#define MAX_CAPLEN 65535
// IPv6 extension headers walked before giving up on finding the transport header.
#define MAX_IPV6_EXT 4

// Counter indexes (keep in sync with capture/bpfload.py COUNTERS).
#ifndef RING_ATTEMPTS
#define RING_ATTEMPTS 2  // bpf_ringbuf_output attempts per packet (see the retry comment below)
#endif
#define C_PASSED 0       // packets written to the ring
#define C_RING_FULL 1    // every bpf_ringbuf_output attempt failed: a drop
#define C_LOAD_FAIL 2    // bpf_skb_load_bytes failed, no scratch slot or no ring: a drop
#define C_TRUNCATED 3    // packet longer than MAX_CAPLEN, copied truncated
#define C_LO_OUTGOING 4  // loopback outgoing copies skipped (not drops)
#define C_RING_RETRY 5   // first bpf_ringbuf_output failed, a retry succeeded (not a drop)
#define C_RING_FAIL_ATTEMPTS 6  // bpf_ringbuf_output calls that failed (diagnostics)
#define C_RING_FAIL_NS 7        // ns spent in those failed calls (diagnostics: lock timeouts?)
#define C_RTP 8            // media: RTP packets counted into rtp_streams (not copied)
#define C_RTCP 9           // media: RTCP packets to learned endpoints copied to the ring
#define C_STREAMS_FULL 10  // media: RTP packets of a stream rtp_streams had no room for
#define C_NOT_RTP 11       // media: packets to an RTP endpoint that are not RTP (dropped)
#define C_RTP_COPIES 12    // media: RTP copies seen on another interface than the stream's
#define C_SINCE_WAKEUP 13  // records since this CPU last woke the reader (not exported)
#define N_COUNTERS 14

struct slot {
    struct rec_hdr hdr;
    u8 data[MAX_CAPLEN + 1];
};

BPF_ARRAY(scratch, struct slot, NCPU);
BPF_ARRAY(sip_ports, u8, 65536);
BPF_PERCPU_ARRAY(counters, u64, N_COUNTERS);
// `events` is the template of the inner maps and CPU 0's ring; the loader creates the other
// rings (same size) and puts every ring into `rings` at its CPU's index.
BPF_RINGBUF_OUTPUT(events, RING_PAGES);
BPF_ARRAY_OF_MAPS(rings, "events", NRINGS);
#ifdef MEDIA
BPF_HASH(media_eps, struct so_mep_key, struct so_mep_val, MEDIA_MAX_ENDPOINTS);
BPF_HASH(rtp_streams, struct so_mstream_key, struct so_rtp_stats, MEDIA_MAX_STREAMS);
#endif

static __always_inline void add(int idx, u64 n) {
    u64 *v = counters.lookup(&idx);
    if (v)
        *v += n;
}

static __always_inline void count(int idx) {
    u64 *v = counters.lookup(&idx);
    if (v)
        *v += 1;
}

static __always_inline int port_match(u16 sport, u16 dport) {
#ifdef ALL_PORTS
    return 1;
#else
    u32 s = sport, d = dport;
    u8 *hit = sip_ports.lookup(&s);
    if (hit && *hit)
        return 1;
    hit = sip_ports.lookup(&d);
    return hit && *hit;
#endif
}

#ifdef MEDIA
// A UDP packet that is not SIP: 1 = copy to the ring (RTCP), 0 = drop (RTP counted, or not
// media). skp: the stream key with the addresses filled in, the rest zero. u: the UDP header and
// the RTP fixed header (8 + 12 bytes), already loaded when `have` (the fast path), else loaded
// here (one load; a shorter packet: the first 10 bytes).
static __always_inline int media_ep(struct __sk_buff *skb, struct so_mstream_key *skp, u8 family,
                                    u32 l4off, u16 sport, u16 dport, u8 *u, int have) {
    struct so_mep_key ek;
    __builtin_memset(&ek, 0, sizeof(ek));
    ek.family = family;
    ek.port = dport;
    __builtin_memcpy(ek.addr, skp->dst, 16);
    struct so_mep_val *ep = media_eps.lookup(&ek);
    if (!ep)
        return 0;
    if (ep->flags & SO_MEP_F_RTCP) {
        count(C_RTCP);
        return 1;
    }
    // The UDP length field, not the frame, says how long the payload is: Ethernet pads short
    // frames to 60 bytes, so a load can succeed on padding after a shorter payload.
    int got = have ? 0 : bpf_skb_load_bytes(skb, l4off, u, 8 + SO_RTP_HDR_LEN);
    if (got < 0)
        got = bpf_skb_load_bytes(skb, l4off, u, 10);
    u32 udp_len = got < 0 ? 0 : ((u32)u[4] << 8) | u[5];
    if (udp_len < 8 + SO_RTP_HDR_LEN) {
        // Shorter than an RTP header: an RTCP packet can be (an empty RR is 8 bytes).
        if ((ep->flags & SO_MEP_F_MUX) && udp_len >= 10 && (u[8] >> 6) == 2 && u[9] >= 192 &&
            u[9] <= 223) {
            count(C_RTCP);
            return 1;
        }
        count(C_NOT_RTP);
        return 0;
    }
    const u8 *b = u + 8;
    struct so_rtp_hdr h = {};
    int kind = so_rtp_parse_fixed(b, &h);
    if (kind < 0) {
        count(C_NOT_RTP);
        return 0;
    }
    if (kind == 1) {
        if (ep->flags & SO_MEP_F_MUX) {
            count(C_RTCP);
            return 1;
        }
        // Not multiplexed: RTP whose marker bit and payload type 64..95 read like RTCP.
        h.pt = b[1] & 0x7f;
        h.seq = ((u16)b[2] << 8) | b[3];
        h.ts = ((u32)b[4] << 24) | ((u32)b[5] << 16) | ((u32)b[6] << 8) | b[7];
        h.ssrc = ((u32)b[8] << 24) | ((u32)b[9] << 16) | ((u32)b[10] << 8) | b[11];
    }
    u32 rate = 0;
    u32 n_pts = ep->n_pts;
    for (int i = 0; i < SO_MEP_MAX_PT; i++) {
        if (i >= n_pts)
            break;
        if (ep->pts[i] == h.pt) {
            rate = ep->rates[i];
            break;
        }
    }
    skp->family = family;
    skp->sport = sport;
    skp->dport = dport;
    skp->ssrc = h.ssrc;
    u32 ifindex = skb->ifindex;
    u64 now = bpf_ktime_get_ns();
    struct so_rtp_stats *st = rtp_streams.lookup(skp);
    if (!st) {
        struct so_rtp_stats zero;
        __builtin_memset(&zero, 0, sizeof(zero));
        zero.ifindex = ifindex;
        // BPF_NOEXIST: another CPU may have created it meanwhile (-EEXIST): look it up again.
        rtp_streams.insert(skp, &zero);
        st = rtp_streams.lookup(skp);
        if (!st) {
            count(C_STREAMS_FULL);
            return 0;
        }
    }
    // Capturing on several interfaces, one packet can be seen more than once (a bridge and its
    // port, both ends of a veth): only the stream's own interface counts, or every copy would
    // read as a duplicate (no loss, halved jitter). A stream silent on its interface for
    // MEDIA_IF_MOVE_NS that shows up on another one has moved there (a failover).
    if (st->ifindex != ifindex) {
        if (st->ifindex && (s64)(now - st->last_ns) < (s64)MEDIA_IF_MOVE_NS) {
            count(C_RTP_COPIES);
            return 0;
        }
        st->ifindex = ifindex;
    }
    so_rtp_update(st, h.seq, h.ts, h.pt, udp_len - 8, now, rate);
    count(C_RTP);
    return 0;
}

// The general path: addr_off is the source address; the destination follows it (IPv4 +4,
// IPv6 +16). Two more packet loads: both addresses at once, then the UDP and RTP headers.
static __always_inline int media(struct __sk_buff *skb, u8 family, u32 addr_off, u32 l4off,
                                 u16 sport, u16 dport) {
    struct so_mstream_key sk;
    __builtin_memset(&sk, 0, sizeof(sk));
    if (family == 4) {
        u32 a[2];
        if (bpf_skb_load_bytes(skb, addr_off, a, 8) < 0)
            return 0;
        __builtin_memcpy(sk.src, &a[0], 4);
        __builtin_memcpy(sk.dst, &a[1], 4);
    } else if (bpf_skb_load_bytes(skb, addr_off, sk.src, 32) < 0) {  // src[16], dst[16]
        return 0;
    }
    u8 u[8 + SO_RTP_HDR_LEN];
    return media_ep(skb, &sk, family, l4off, sport, dport, u, 0);
}

// The fast path, one packet load instead of about seven (each costs 100-200 ns): an untagged
// IPv4 packet without options that is not a fragment has its ports, addresses, UDP header and
// RTP fixed header at fixed offsets of its first FAST_LEN bytes. -1: not such a packet (the
// general path decides), else classify's answer.
#define FAST_LEN (14 + 20 + 8 + SO_RTP_HDR_LEN)
static __always_inline int classify_fast(struct __sk_buff *skb) {
    u8 b[FAST_LEN];
    if (skb->len < FAST_LEN || bpf_skb_load_bytes(skb, 0, b, FAST_LEN) < 0)
        return -1;
    if (b[12] != 0x08 || b[13] != 0x00 || b[14] != 0x45 || (b[20] & 0x3f) || b[21] ||
        (b[23] != IPPROTO_UDP && b[23] != IPPROTO_TCP))
        return -1;
    u16 sport = ((u16)b[34] << 8) | b[35], dport = ((u16)b[36] << 8) | b[37];
    if (port_match(sport, dport))
        return 1;
    if (b[23] != IPPROTO_UDP)
        return 0;
    struct so_mstream_key sk;
    __builtin_memset(&sk, 0, sizeof(sk));
    __builtin_memcpy(sk.src, b + 26, 4);
    __builtin_memcpy(sk.dst, b + 30, 4);
    return media_ep(skb, &sk, 4, 34, sport, dport, b + 34, 1);
}
#endif

// 0 = drop, 1 = keep
static __always_inline int classify(struct __sk_buff *skb) {
#ifdef MEDIA
    int fast = classify_fast(skb);
    if (fast >= 0)
        return fast;
#endif
    u32 off = 12;
    u16 proto;
    if (bpf_skb_load_bytes(skb, off, &proto, 2) < 0)
        return 0;
    proto = ntohs(proto);
    off = 14;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
            if (bpf_skb_load_bytes(skb, off + 2, &proto, 2) < 0)
                return 0;
            proto = ntohs(proto);
            off += 4;
        }
    }
    u8 l4proto;
    u32 l4off;
#ifdef MEDIA
    u8 family;
    u32 addr_off;
#endif
    if (proto == ETH_P_IP) {
        u8 vihl;
        u16 frag;
        if (bpf_skb_load_bytes(skb, off, &vihl, 1) < 0 || (vihl >> 4) != 4 || (vihl & 0xf) < 5)
            return 0;
        if (bpf_skb_load_bytes(skb, off + 6, &frag, 2) < 0)
            return 0;
        if (ntohs(frag) & 0x3fff)  // MF set or offset != 0
            return 1;
        if (bpf_skb_load_bytes(skb, off + 9, &l4proto, 1) < 0)
            return 0;
        l4off = off + (vihl & 0xf) * 4;
#ifdef MEDIA
        family = 4;
        addr_off = off + 12;
#endif
    } else if (proto == ETH_P_IPV6) {
        if (bpf_skb_load_bytes(skb, off + 6, &l4proto, 1) < 0)
            return 0;
        l4off = off + 40;
#ifdef MEDIA
        family = 6;
        addr_off = off + 8;
#endif
#pragma unroll
        for (int i = 0; i < MAX_IPV6_EXT; i++) {
            if (l4proto == IPPROTO_FRAGMENT)
                return 1;
            if (l4proto != IPPROTO_HOPOPTS && l4proto != IPPROTO_ROUTING &&
                l4proto != IPPROTO_DSTOPTS)
                break;
            u8 ext[2];
            if (bpf_skb_load_bytes(skb, l4off, ext, 2) < 0)
                return 0;
            l4proto = ext[0];
            l4off += ((u32)ext[1] + 1) * 8;
        }
        if (l4proto == IPPROTO_FRAGMENT)
            return 1;
    } else {
        return 0;
    }
    if (l4proto != IPPROTO_UDP && l4proto != IPPROTO_TCP)
        return 0;
    u16 ports[2];
    if (bpf_skb_load_bytes(skb, l4off, ports, 4) < 0)
        return 0;
#ifdef MEDIA
    u16 sport = ntohs(ports[0]), dport = ntohs(ports[1]);
    if (port_match(sport, dport))
        return 1;
    if (l4proto != IPPROTO_UDP)
        return 0;
    return media(skb, family, addr_off, l4off, sport, dport);
#else
    return port_match(ntohs(ports[0]), ntohs(ports[1]));
#endif
}

int sip_filter(struct __sk_buff *skb) {
    if (skb->pkt_type == PACKET_OUTGOING && skb->ifindex == LO_IFINDEX) {
        count(C_LO_OUTGOING);
        return 0;
    }
    if (!classify(skb))
        return 0;

    u32 cpu = bpf_get_smp_processor_id();
    struct slot *s = scratch.lookup(&cpu);
    if (!s) {
        count(C_LOAD_FAIL);
        return 0;
    }
    u32 len = skb->len;
    u32 caplen = len;
    if (caplen > MAX_CAPLEN) {
        caplen = MAX_CAPLEN;
        count(C_TRUNCATED);
    }
    s->hdr.ts_ns = bpf_ktime_get_ns();
    s->hdr.ifindex = skb->ifindex;
    s->hdr.len = len;
    s->hdr.caplen = caplen;
    s->hdr.pkt_type = skb->pkt_type;
    if (skb->vlan_present) {
        s->hdr.vlan_tci = skb->vlan_tci;
        s->hdr.vlan_proto = ntohs(skb->vlan_proto);
    } else {
        s->hdr.vlan_tci = 0;
        s->hdr.vlan_proto = 0;
    }
    s->hdr.reserved0 = 0;
    s->hdr.reserved1 = 0;
    // Re-bound for the verifier (the compiler may fold the clamp above): 1 <= caplen <= MAX.
    caplen &= 0xffff;
    if (caplen < 1)
        return 0;
    if (bpf_skb_load_bytes(skb, 0, s->data, caplen) < 0) {
        count(C_LOAD_FAIL);
        return 0;
    }
    // Retries: on kernels whose ring lock is an rqspinlock (6.15+), a reservation failed with
    // a single shared ring nearly empty (see docs/capture.md): a few times in 45k packets at
    // 10k packets/s on a 2-core VM, sometimes twice in a row. With one ring per CPU no two
    // CPUs contend for a ring's lock; a failure is still retried once, and every failed call
    // and the time it took are counted (a lock timeout would show as a long failed call).
    // Wakeups: the reader polls with a timeout (its latency cap) and is woken early only every
    // WAKEUP_PACKETS records of this CPU, so a low packet rate costs a few wakeups per second
    // instead of one per packet.
    u32 ring_idx = cpu % NRINGS;
    void *ring = rings.lookup(&ring_idx);
    if (!ring) {
        count(C_LOAD_FAIL);
        return 0;
    }
    u64 flags = BPF_RB_NO_WAKEUP;
    int wake_idx = C_SINCE_WAKEUP;
    u64 *since = counters.lookup(&wake_idx);
    if (since && ++*since >= WAKEUP_PACKETS) {
        *since = 0;
        flags = BPF_RB_FORCE_WAKEUP;
    }
    u32 size = sizeof(struct rec_hdr) + caplen;
    #pragma unroll
    for (int i = 0; i < RING_ATTEMPTS; i++) {
        u64 t0 = bpf_ktime_get_ns();
        if (bpf_ringbuf_output(ring, s, size, flags) == 0) {
            if (i > 0)
                count(C_RING_RETRY);
            count(C_PASSED);
            return 0;
        }
        count(C_RING_FAIL_ATTEMPTS);
        add(C_RING_FAIL_NS, bpf_ktime_get_ns() - t0);
    }
    count(C_RING_FULL);
    return 0;
}
