/* SPDX-License-Identifier: Apache-2.0
 * Capture files: classic pcap and pcapng records over a memory region (an mmap), with
 * nanosecond timestamps. Sans-IO: the binding opens and maps the file and formats errors.
 *
 * Classic pcap: a 24-byte header (magic a1b2c3d4 for microseconds or a1b23c4d for nanoseconds,
 * in either byte order; snaplen; link type in the low 28 bits of the network field), then
 * records of a 16-byte header (seconds, fraction, captured length, original length) and the
 * captured bytes. A captured length over 256 MiB, or over the snapshot length when that is set
 * (262144 at least), is corruption.
 *
 * pcapng: blocks of (type, total length, body, total length). A Section Header Block fixes the
 * byte order by its byte-order magic and starts a new list of interfaces; an Interface
 * Description Block adds one (link type, if_tsresol: 10^-n s, or 2^-n s with the high bit;
 * microseconds by default); Enhanced, Simple and obsolete Packet Blocks carry frames; other
 * blocks are skipped. Timestamps become ns = ts * num // div (+ if_tsoffset seconds), computed
 * in 128 bits; a frame whose time falls outside 0..INT64_MAX ns (only absurd resolutions or
 * offsets) is dropped and counted in ``ts_range`` (pcap.timestamp_range), never clamped: one
 * clamped time for many frames would make their calls last 0 s and fire no timer.
 *
 * so_pcap_next() delivers frames to a callback in file order and stops after max_frames; at a
 * corruption it returns SO_PCAP_ERROR with the frames before it delivered, and an error kind
 * plus offsets for the binding to put into words. The file may come in regions (a pipe, a
 * decompressed stream, a file read in blocks): at a record that runs past a region which is not
 * the last, so_pcap_next() returns SO_PCAP_NEED and so_pcap_refill() hands it the next one.
 */
#include "so_net.h"

#define PCAPNG_SHB 0x0A0D0D0Au
#define PCAPNG_BOM 0x1A2B3C4Du

static int fail(so_pcap *pc, int kind, size_t off, uint64_t a, uint64_t b) {
    pc->err_kind = kind;
    pc->err_off = (size_t)(pc->base + off);
    pc->err_a = a;
    pc->err_b = b;
    return kind;
}

static inline uint32_t ld32(int be, const uint8_t *p) { return be ? so_be32(p) : so_le32(p); }
static inline uint16_t ld16(int be, const uint8_t *p) { return be ? so_be16(p) : so_le16(p); }
static inline uint32_t rd32(const so_pcap *pc, size_t off) { return ld32(pc->big_endian, pc->buf + off); }
static inline uint16_t rd16(const so_pcap *pc, size_t off) { return ld16(pc->big_endian, pc->buf + off); }

int so_pcap_open(so_pcap *pc, const uint8_t *buf, size_t size) {
    memset(pc, 0, sizeof(*pc));
    pc->buf = buf;
    pc->size = size;
    pc->final = 1;
    if (size < 4)
        return fail(pc, SO_PCAP_E_MAGIC, 0, size, 0);
    uint32_t magic = so_le32(buf);
    if (magic == PCAPNG_SHB) {
        pc->pcapng = 1;
        return 0;
    }
    switch (magic) {
    case 0xA1B2C3D4u: pc->big_endian = 0; pc->frac_mult = 1000; break;
    case 0xD4C3B2A1u: pc->big_endian = 1; pc->frac_mult = 1000; break;
    case 0xA1B23C4Du: pc->big_endian = 0; pc->frac_mult = 1; break;
    case 0x4D3CB2A1u: pc->big_endian = 1; pc->frac_mult = 1; break;
    default:
        return fail(pc, SO_PCAP_E_MAGIC, 0, size, 0);
    }
    if (size < 24)
        return fail(pc, SO_PCAP_E_FILE_HEADER, 0, size, 0);
    pc->snaplen = rd32(pc, 16);
    pc->linktype = rd32(pc, 20) & 0x0FFFFFFF; /* upper bits: FCS length flags */
    pc->off = 24;
    return 0;
}

void so_pcap_refill(so_pcap *pc, const uint8_t *buf, size_t size, uint64_t base, int final) {
    pc->buf = buf;
    pc->size = size;
    pc->off = 0;
    pc->base = base;
    pc->final = final;
    pc->need = 0;
}

/* The record at ``off`` needs ``n`` bytes and the region is not the last: ask for more. */
static so_pcap_status need(so_pcap *pc, size_t off, size_t n) {
    pc->off = off;
    pc->need = n;
    return SO_PCAP_NEED;
}

void so_pcap_close(so_pcap *pc) {
    free(pc->ifaces);
    pc->ifaces = NULL;
    pc->n_ifaces = pc->cap_ifaces = 0;
}

static so_pcap_status next_pcap(so_pcap *pc, size_t max_frames, so_frame_fn on_frame, void *ctx) {
    const uint8_t *buf = pc->buf;
    size_t size = pc->size, off = pc->off, count = 0;
    uint64_t max_caplen = pc->snaplen ? SO_MAX(pc->snaplen, 262144u) : UINT64_MAX;
    while (off < size) {
        if (size - off < 16) {
            if (!pc->final)
                return need(pc, off, 16);
            pc->off = off;
            fail(pc, SO_PCAP_E_RECORD_HEADER, off, size - off, 0);
            return SO_PCAP_ERROR;
        }
        uint64_t sec = rd32(pc, off), frac = rd32(pc, off + 4), caplen = rd32(pc, off + 8);
        if (caplen > SO_PCAP_MAX_RECORD || caplen > max_caplen) {
            pc->off = off;
            fail(pc, SO_PCAP_E_RECORD_LENGTH, off, caplen, pc->snaplen);
            return SO_PCAP_ERROR;
        }
        size_t start = off + 16;
        if (caplen > size - start) {
            if (!pc->final)
                return need(pc, off, 16 + (size_t)caplen);
            pc->off = off;
            fail(pc, SO_PCAP_E_RECORD_DATA, off, size - start, caplen);
            return SO_PCAP_ERROR;
        }
        off = start + (size_t)caplen;
        pc->off = off;
        on_frame(ctx, (int64_t)(sec * SO_NS_PER_S + frac * pc->frac_mult), pc->linktype,
                 buf + start, (size_t)caplen, 0);
        if (++count >= max_frames)
            return SO_PCAP_MORE;
    }
    if (!pc->final)
        return need(pc, off, 16);
    pc->off = size;
    return SO_PCAP_END;
}

/* if_tsresol and if_tsoffset options -> the interface's conversion to ns (default:
 * microseconds, no offset). */
static void iface_options(const so_pcap *pc, size_t opt, size_t end, so_pcap_iface *ifc) {
    ifc->num = 1000;
    ifc->div = 1;
    ifc->shift = 0;
    ifc->offset_s = 0;
    while (opt + 4 <= end) {
        uint32_t code = rd16(pc, opt), length = rd16(pc, opt + 2);
        if (code == 0)
            break;
        if (code == 9 && length >= 1) {
            uint8_t v = pc->buf[opt + 4]; /* within the file: the block trailer follows end */
            uint32_t exp = v & 0x7F;
            if (v & 0x80) { /* power of two */
                ifc->num = SO_NS_PER_S;
                ifc->shift = exp;
            } else if (exp <= 9) {
                uint64_t num = 1;
                for (uint32_t i = exp; i < 9; i++)
                    num *= 10;
                ifc->num = num;
            } else if (exp - 9 <= 19) {
                uint64_t div = 1;
                for (uint32_t i = 9; i < exp; i++)
                    div *= 10;
                ifc->num = 1;
                ifc->div = div;
            } else { /* 10^(exp-9) > 2^64 > any timestamp: always 0 */
                ifc->num = 0;
            }
        } else if (code == 14 && length == 8 && opt + 12 <= end) { /* if_tsoffset, seconds */
            ifc->offset_s = (int64_t)(((uint64_t)rd32(pc, opt + 4 + 4 * pc->big_endian) |
                                       ((uint64_t)rd32(pc, opt + 8 - 4 * pc->big_endian) << 32)));
        }
        opt += 4 + (((size_t)length + 3) & ~(size_t)3);
    }
}

/* The frame's time in ns; false when it falls outside 0..INT64_MAX. */
static bool to_ns(const so_pcap_iface *ifc, uint64_t ts, int64_t *out) {
    unsigned __int128 v = (unsigned __int128)ts * ifc->num / ifc->div;
    v >>= ifc->shift; /* shift <= 127; v < 2^96 */
    __int128 ns = (__int128)v + (__int128)ifc->offset_s * SO_NS_PER_S; /* |offset| < 2^93 */
    if (ns < 0 || ns > (__int128)INT64_MAX)
        return false;
    *out = (int64_t)ns;
    return true;
}

static so_pcap_status next_pcapng(so_pcap *pc, size_t max_frames, so_frame_fn on_frame, void *ctx) {
    const uint8_t *buf = pc->buf;
    size_t size = pc->size, off = pc->off, count = 0;
    while (off < size) {
        pc->off = off;
        if (size - off < 12) {
            if (!pc->final)
                return need(pc, off, 12);
            fail(pc, SO_PCAP_E_BLOCK_HEADER, off, 0, 0);
            return SO_PCAP_ERROR;
        }
        uint32_t btype = so_le32(buf + off);
        if (btype == PCAPNG_SHB) {
            uint32_t bom = so_le32(buf + off + 8);
            if (bom == PCAPNG_BOM)
                pc->big_endian = 0;
            else if (bom == 0x4D3C2B1Au)
                pc->big_endian = 1;
            else {
                fail(pc, SO_PCAP_E_BYTE_ORDER, off, 0, 0);
                return SO_PCAP_ERROR;
            }
            pc->n_ifaces = 0; /* interface ids restart per section */
        } else {
            btype = rd32(pc, off);
        }
        uint64_t blen = rd32(pc, off + 4);
        /* A length over SO_PCAP_MAX_BLOCK is corruption whatever follows (no region that
         * large is read); a shorter one past this region is judged once it is all there, so
         * that the verdict does not depend on where a region ends. */
        bool huge = blen > SO_PCAP_MAX_BLOCK;
        if (blen > size - off && blen >= 12 && !huge && !pc->final)
            return need(pc, off, (size_t)blen);
        if (blen < 12 || blen % 4 || blen > size - off) {
            bool cut = blen > size - off && blen >= 12 && !huge;
            fail(pc, cut ? SO_PCAP_E_BLOCK_CUT : SO_PCAP_E_BLOCK_CORRUPT, off, btype, blen);
            return SO_PCAP_ERROR;
        }
        size_t body = off + 8;
        size_t end = off + (size_t)blen - 4;
        if (btype == 6 || btype == 2) { /* Enhanced Packet Block, obsolete Packet Block */
            if (blen < 12 + 20) { /* not even the 20 bytes of fixed fields */
                fail(pc, SO_PCAP_E_SHORT_PACKET, off, btype, blen);
                return SO_PCAP_ERROR;
            }
            uint8_t fixed[20];
            memcpy(fixed, buf + body, 20);
            int be = pc->big_endian;
            /* EPB: interface (32 bits); PB: interface (16), drops (16). Then both: timestamp
             * high, low, captured length, original length. */
            uint32_t if_id = btype == 6 ? ld32(be, fixed) : ld16(be, fixed);
            uint64_t ts = ((uint64_t)ld32(be, fixed + 4) << 32) | ld32(be, fixed + 8);
            uint64_t caplen = ld32(be, fixed + 12);
            if (if_id >= pc->n_ifaces || body + 20 + caplen > end) {
                if (btype == 6)
                    fail(pc, SO_PCAP_E_EPB, off, if_id, caplen);
                else
                    fail(pc, SO_PCAP_E_PB, off, if_id, caplen);
                return SO_PCAP_ERROR;
            }
            const so_pcap_iface *ifc = &pc->ifaces[if_id];
            pc->off = off + (size_t)blen;
            int64_t ns;
            if (to_ns(ifc, ts, &ns)) {
                on_frame(ctx, ns, ifc->linktype, buf + body + 20, (size_t)caplen, if_id);
                count++;
            } else {
                pc->ts_range++;
            }
        } else if (btype == 3) { /* Simple Packet Block: no timestamp, interface 0 */
            if (pc->n_ifaces == 0) {
                fail(pc, SO_PCAP_E_SPB, off, 0, 0);
                return SO_PCAP_ERROR;
            }
            uint64_t orig = rd32(pc, body);
            uint64_t room = end >= body + 4 ? end - body - 4 : 0;
            size_t caplen = (size_t)SO_MIN(orig, room);
            pc->off = off + (size_t)blen;
            on_frame(ctx, 0, pc->ifaces[0].linktype, buf + body + 4, caplen, 0);
            count++;
        } else if (btype == 1) { /* Interface Description Block */
            if (pc->n_ifaces == pc->cap_ifaces) {
                uint32_t cap = pc->cap_ifaces ? pc->cap_ifaces * 2 : 8;
                so_pcap_iface *ni = (so_pcap_iface *)realloc(pc->ifaces, cap * sizeof(*ni));
                if (!ni) {
                    fail(pc, SO_PCAP_E_NO_MEMORY, off, 0, 0);
                    return SO_PCAP_ERROR;
                }
                pc->ifaces = ni;
                pc->cap_ifaces = cap;
            }
            so_pcap_iface *ifc = &pc->ifaces[pc->n_ifaces++];
            ifc->linktype = rd16(pc, body);
            iface_options(pc, body + 8, end, ifc);
        }
        off += (size_t)blen;
        pc->off = off;
        if (count && count >= max_frames)
            return SO_PCAP_MORE;
    }
    if (!pc->final)
        return need(pc, off, 12);
    pc->off = size;
    return SO_PCAP_END;
}

so_pcap_status so_pcap_next(so_pcap *pc, size_t max_frames, so_frame_fn on_frame, void *ctx) {
    if (pc->err_kind)
        return SO_PCAP_ERROR;
    return pc->pcapng ? next_pcapng(pc, max_frames, on_frame, ctx)
                      : next_pcap(pc, max_frames, on_frame, ctx);
}
