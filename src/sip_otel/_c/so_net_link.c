/* SPDX-License-Identifier: Apache-2.0
 * Link layers (pcap link types, VLAN tag stacks, PPPoE), GRE and GTP-U, down to the IP header.
 *
 * Each decoder takes the frame bytes and fills an so_l3 ``(ethertype, offset, end)`` for the
 * IP packet inside, where ethertype is IPv4 or IPv6. Malformed frames return
 * ``net.<reason>``; frames that are fine but carry no IP (ARP, LLDP, PPP control, other address
 * families) return ``skipped.<reason>``. Dispatch is a switch on the pcap LINKTYPE.
 *
 * GRE (IP protocol 47), often how mirrored traffic reaches a monitor:
 * - GRE (RFC 2784, key and sequence number from RFC 2890): version 0; the C, K and S flags each
 *   add 4 bytes. The RFC 1701 routing and strict-source-route bits are refused.
 * - Enhanced GRE (RFC 2637, PPTP): version 1, only for PPP; the key field carries the payload
 *   length, the A flag adds a 4-byte acknowledgement number.
 * - Inner protocols: IPv4, IPv6, transparent Ethernet bridging (an Ethernet frame, VLAN tags
 *   allowed), ERSPAN type I (0x88BE without sequence number: Ethernet directly), type II
 *   (0x88BE with sequence number: 8-byte header then Ethernet), type III (0x22EB: 12-byte
 *   header, plus an 8-byte platform subheader when the O bit is set), PPP (0x880B) carrying
 *   IPv4 or IPv6 (address/control and protocol field possibly compressed: ACFC, PFC).
 *
 * GTP-U (3GPP TS 29.281), UDP port 2152: flags (version 1, PT 1, E, S, PN), message type,
 * length of everything after the first 8 bytes, TEID. When any of E/S/PN is set, 4 more bytes
 * follow (sequence number, N-PDU number, next extension header type). With E set, extension
 * headers chain: each starts with its length in 4-byte units (at least 1) and ends with the
 * type of the next one, 0 meaning none. Only G-PDUs (type 255) carry IP.
 */
#include "so_net_int.h"

#define ETH_PPPOE_SESSION 0x8864
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057

static inline bool is_vlan(uint32_t etype) {
    /* 802.1Q customer tag, 802.1ad service tag, the pre-standard QinQ outer tag */
    return etype == 0x8100 || etype == 0x88A8 || etype == 0x9100;
}

static inline int l3(so_l3 *out, uint32_t etype, size_t off, size_t end) {
    out->etype = etype;
    out->off = off;
    out->end = end;
    return SO_NET_OK;
}

/* PPPoE session stage (RFC 2516 section 4) carrying PPP (RFC 1661) IPv4/IPv6. */
static int pppoe(const uint8_t *d, size_t off, size_t end, so_l3 *out) {
    if (off + 8 > end)
        return SO_R_NET_TRUNCATED_PPPOE;
    uint32_t length = so_be16(d + off + 4);
    uint32_t proto = so_be16(d + off + 6);
    if (d[off] != 0x11 || d[off + 1] != 0 || length < 2)
        return SO_R_NET_BAD_PPPOE_HEADER;
    if (off + 6 + length > end)
        return SO_R_NET_TRUNCATED_PPPOE;
    end = off + 6 + length; /* drops Ethernet padding */
    if (proto == PPP_IPV4)
        return l3(out, SO_ETH_IPV4, off + 8, end);
    if (proto == PPP_IPV6)
        return l3(out, SO_ETH_IPV6, off + 8, end);
    return SO_R_SKIPPED_PPP_PROTOCOL;
}

/* Unwrap VLAN tags and PPPoE after an ethertype field. */
static int ethertype(const uint8_t *d, uint32_t etype, size_t off, size_t end, so_l3 *out) {
    int tags = 0;
    while (is_vlan(etype)) {
        if (off + 4 > end)
            return SO_R_NET_TRUNCATED_VLAN;
        if (++tags > SO_MAX_VLAN_TAGS)
            return SO_R_NET_TOO_MANY_VLAN_TAGS;
        etype = so_be16(d + off + 2);
        off += 4;
    }
    if (etype == SO_ETH_IPV4 || etype == SO_ETH_IPV6)
        return l3(out, etype, off, end);
    if (etype == ETH_PPPOE_SESSION)
        return pppoe(d, off, end, out);
    return SO_R_SKIPPED_ETHERTYPE;
}

/* An Ethernet II frame inside another packet (bridged or mirrored in a tunnel). */
int so_link_ethernet_at(const uint8_t *d, size_t off, size_t end, so_l3 *out) {
    if (end < off || end - off < 14)
        return SO_R_NET_TRUNCATED_ETHERNET;
    return ethertype(d, so_be16(d + off + 12), off + 14, end, out);
}

/* BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD),
 * 28 (FreeBSD/DragonFly), 30 (macOS). */
static int address_family(uint32_t af, size_t n, so_l3 *out) {
    if (af == 2)
        return l3(out, SO_ETH_IPV4, 4, n);
    if (af == 24 || af == 28 || af == 30)
        return l3(out, SO_ETH_IPV6, 4, n);
    return SO_R_SKIPPED_ADDRESS_FAMILY;
}

int so_link_decode(uint32_t linktype, const uint8_t *d, size_t n, so_l3 *out) {
    switch (linktype) {
    case SO_LINKTYPE_ETHERNET: { /* 6-byte dst, 6-byte src, ethertype */
        if (n < 14)
            return SO_R_NET_TRUNCATED_ETHERNET;
        uint32_t etype = so_be16(d + 12);
        if (etype == SO_ETH_IPV4 || etype == SO_ETH_IPV6)
            return l3(out, etype, 14, n);
        return ethertype(d, etype, 14, n, out);
    }
    case SO_LINKTYPE_LINUX_SLL: /* packet type, ARPHRD, address length, 8-byte address, protocol */
        if (n < 16)
            return SO_R_NET_TRUNCATED_SLL;
        return ethertype(d, so_be16(d + 14), 16, n, out);
    case SO_LINKTYPE_LINUX_SLL2: /* protocol, reserved, ifindex, ARPHRD, type, addr len, addr */
        if (n < 20)
            return SO_R_NET_TRUNCATED_SLL2;
        return ethertype(d, so_be16(d), 20, n, out);
    case SO_LINKTYPE_NULL: { /* the capturing host's byte order: guess it */
        if (n < 4)
            return SO_R_NET_TRUNCATED_LOOPBACK;
        uint32_t af = so_le32(d);
        if (af > 0xFFFF) /* written big-endian */
            af = so_be32(d);
        return address_family(af, n, out);
    }
    case SO_LINKTYPE_LOOP: /* network byte order */
        if (n < 4)
            return SO_R_NET_TRUNCATED_LOOPBACK;
        return address_family(so_be32(d), n, out);
    case SO_LINKTYPE_RAW: /* the version nibble tells IPv4 from IPv6 */
        if (n == 0)
            return SO_R_NET_TRUNCATED_IP;
        if (d[0] >> 4 == 4)
            return l3(out, SO_ETH_IPV4, 0, n);
        if (d[0] >> 4 == 6)
            return l3(out, SO_ETH_IPV6, 0, n);
        return SO_R_NET_BAD_IP_VERSION;
    case SO_LINKTYPE_IPV4: /* the IPv4 decoder checks the version */
        return l3(out, SO_ETH_IPV4, 0, n);
    case SO_LINKTYPE_IPV6:
        return l3(out, SO_ETH_IPV6, 0, n);
    default:
        return SO_R_NET_UNSUPPORTED_LINKTYPE;
    }
}

/* ---- GRE ----------------------------------------------------------------------------------- */

#define GRE_TEB 0x6558
#define GRE_ERSPAN_2 0x88BE
#define GRE_ERSPAN_3 0x22EB
#define GRE_PPP 0x880B
#define GF_C 0x8000
#define GF_R 0x4000
#define GF_K 0x2000
#define GF_S 0x1000
#define GF_SSR 0x0800
#define GF_A 0x0080

/* PPP frame as PPTP sends it. */
static int gre_ppp(const uint8_t *d, size_t p, size_t end, so_l3 *out) {
    if (p == end) /* acknowledgement-only packet */
        return SO_R_SKIPPED_EMPTY_PAYLOAD;
    if (d[p] == 0xFF && p + 1 < end && d[p + 1] == 0x03)
        p += 2;
    if (p >= end)
        return SO_R_NET_TRUNCATED_GRE;
    uint32_t proto;
    if (d[p] & 1) { /* compressed one-byte protocol */
        proto = d[p];
        p += 1;
    } else {
        if (p + 2 > end)
            return SO_R_NET_TRUNCATED_GRE;
        proto = so_be16(d + p);
        p += 2;
    }
    if (proto == PPP_IPV4)
        return l3(out, SO_ETH_IPV4, p, end);
    if (proto == PPP_IPV6)
        return l3(out, SO_ETH_IPV6, p, end);
    return SO_R_SKIPPED_PPP_PROTOCOL;
}

int so_gre_decap(const uint8_t *d, size_t off, size_t end, so_l3 *out) {
    if (off + 4 > end)
        return SO_R_NET_TRUNCATED_GRE;
    uint32_t flags = so_be16(d + off);
    uint32_t proto = so_be16(d + off + 2);
    uint32_t version = flags & 7;
    size_t p = off + 4;
    if (version == 0) {
        if (flags & (GF_R | GF_SSR))
            return SO_R_NET_BAD_GRE;
        if (flags & GF_C)
            p += 4;
        if (flags & GF_K)
            p += 4;
        if (flags & GF_S)
            p += 4;
    } else if (version == 1 && proto == GRE_PPP) {
        /* RFC 2637 section 4.1: C and R clear, K set; key = payload length, call id. */
        if ((flags & (GF_C | GF_R | GF_SSR)) || !(flags & GF_K))
            return SO_R_NET_BAD_GRE;
        if (p + 4 > end)
            return SO_R_NET_TRUNCATED_GRE;
        size_t plen = so_be16(d + p);
        p += 4;
        if (flags & GF_S)
            p += 4;
        if (flags & GF_A)
            p += 4;
        if (p > end)
            return SO_R_NET_TRUNCATED_GRE;
        if (p + plen < end)
            end = p + plen;
    } else {
        return SO_R_NET_BAD_GRE;
    }
    if (p > end)
        return SO_R_NET_TRUNCATED_GRE;
    switch (proto) {
    case SO_ETH_IPV4:
    case SO_ETH_IPV6:
        return l3(out, proto, p, end);
    case GRE_TEB:
        return so_link_ethernet_at(d, p, end, out);
    case GRE_ERSPAN_2:
        if (flags & GF_S) { /* type II: version 1 in the first nibble of the 8-byte header */
            if (p + 8 > end)
                return SO_R_NET_TRUNCATED_GRE;
            if (d[p] >> 4 != 1)
                return SO_R_NET_BAD_GRE;
            p += 8;
        }
        return so_link_ethernet_at(d, p, end, out);
    case GRE_ERSPAN_3: {
        if (p + 12 > end)
            return SO_R_NET_TRUNCATED_GRE;
        if (d[p] >> 4 != 2)
            return SO_R_NET_BAD_GRE;
        uint32_t ft = (d[p + 10] >> 2) & 0x1F; /* frame type: 0 Ethernet, 2 IP */
        bool sub = d[p + 11] & 1;              /* O bit: platform-specific subheader follows */
        p += sub ? 20 : 12;
        if (p > end)
            return SO_R_NET_TRUNCATED_GRE;
        if (ft != 0)
            return SO_R_SKIPPED_GRE_PROTOCOL;
        return so_link_ethernet_at(d, p, end, out);
    }
    case GRE_PPP:
        return gre_ppp(d, p, end, out);
    default:
        return SO_R_SKIPPED_GRE_PROTOCOL;
    }
}

/* ---- GTP-U --------------------------------------------------------------------------------- */

int so_gtpu_decap(const uint8_t *d, size_t off, size_t end, so_l3 *out) {
    if (end - off < 8)
        return SO_R_NET_TRUNCATED_GTP;
    uint32_t flags = d[off];
    uint32_t mtype = d[off + 1];
    size_t length = so_be16(d + off + 2);
    if ((flags & 0xF0) != 0x30) /* version 1, protocol type GTP (not GTP') */
        return SO_R_NET_BAD_GTP_HEADER;
    if (mtype != 255) /* G-PDU */
        return SO_R_SKIPPED_GTP_MESSAGE;
    size_t p = off + 8;
    if (p + length > end)
        return SO_R_NET_TRUNCATED_GTP;
    end = p + length;
    if (flags & 0x07) { /* E, S or PN: sequence number, N-PDU number, next extension type */
        if (p + 4 > end)
            return SO_R_NET_TRUNCATED_GTP;
        uint32_t nxt = (flags & 0x04) ? d[p + 3] : 0;
        p += 4;
        int count = 0;
        while (nxt) {
            count++;
            if (count > SO_MAX_GTP_EXTENSIONS || p >= end)
                return p < end ? SO_R_NET_BAD_GTP_HEADER : SO_R_NET_TRUNCATED_GTP;
            size_t size = (size_t)d[p] << 2;
            if (size == 0)
                return SO_R_NET_BAD_GTP_HEADER;
            if (p + size > end)
                return SO_R_NET_TRUNCATED_GTP;
            nxt = d[p + size - 1];
            p += size;
        }
    }
    if (p >= end)
        return SO_R_NET_TRUNCATED_GTP;
    if (d[p] >> 4 == 4)
        return l3(out, SO_ETH_IPV4, p, end);
    if (d[p] >> 4 == 6)
        return l3(out, SO_ETH_IPV6, p, end);
    return SO_R_NET_BAD_IP_VERSION;
}
