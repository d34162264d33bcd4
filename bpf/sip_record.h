// SPDX-License-Identifier: Apache-2.0
// The record the eBPF socket filter (bpf/sip_filter.c) writes into its ring buffer for each kept
// packet, and the compiled ring reader (src/sip_otel/_c/so_ring.c) reads: one definition for
// both sides. Each ring record is the kernel's 8-byte header (length | BUSY | DISCARD, page
// offset), then this header, then ``caplen`` bytes of the packet from its MAC header.
#ifndef SIP_RECORD_H
#define SIP_RECORD_H

#ifdef SIP_RECORD_BPF  // the eBPF program (kernel types)
typedef u16 sip_rec_u16;
typedef u32 sip_rec_u32;
typedef u64 sip_rec_u64;
#else
#include <stdint.h>
typedef uint16_t sip_rec_u16;
typedef uint32_t sip_rec_u32;
typedef uint64_t sip_rec_u64;
#endif

struct rec_hdr {
    sip_rec_u64 ts_ns;       // bpf_ktime_get_ns(): CLOCK_MONOTONIC; userspace adds a realtime offset
    sip_rec_u32 ifindex;
    sip_rec_u32 len;         // skb->len (bytes on the wire from the MAC header, minus stripped tags)
    sip_rec_u32 caplen;      // bytes that follow this header
    sip_rec_u16 pkt_type;    // PACKET_HOST, PACKET_OUTGOING, ...
    sip_rec_u16 vlan_tci;    // valid when vlan_proto != 0 (tag stripped into metadata)
    sip_rec_u16 vlan_proto;  // host order; 0 = no stripped tag
    sip_rec_u16 reserved0;
    sip_rec_u32 reserved1;
};

// Records one CPU writes before it wakes the reader (which also reads at every poll timeout,
// its latency cap): one wakeup per batch instead of one per packet at low rates.
#ifndef WAKEUP_PACKETS
#define WAKEUP_PACKETS 128
#endif

#endif
