# Media: RTP stream statistics (so_rtp.h), RTCP reports (so_rtcp.h). The C is header-only and
# shared with the eBPF program; this binding feeds it for replay and for tests.

cdef extern from "so_rtp.h":
    enum:
        SO_RTP_F_VALID
    struct so_rtp_stats:
        uint32_t base_seq
        uint32_t cycles
        uint32_t bad_seq
        uint32_t received
        uint16_t max_seq
        uint8_t probation
        uint8_t flags
        uint8_t pt
        uint32_t clock_rate
        uint64_t packets
        uint64_t bytes
        uint32_t duplicates
        uint32_t reordered
        uint32_t bad_seq_packets
        uint32_t resyncs
        uint32_t pt_changes
        uint32_t transit
        uint64_t first_ns
        uint64_t last_ns
        uint64_t max_gap_ns
        uint64_t jitter
        uint64_t max_jitter
        uint64_t jitter_sum
        uint64_t jitter_samples
        uint64_t seen[2]
    struct so_rtp_hdr:
        uint32_t ts
        uint32_t ssrc
        uint16_t seq
        uint8_t pt
        uint8_t marker
    int so_rtp_parse_fixed(const uint8_t *b, so_rtp_hdr *h)
    int so_rtp_update(so_rtp_stats *s, uint16_t seq, uint32_t ts, uint8_t pt, uint32_t nbytes,
                      uint64_t now_ns, uint32_t clock_rate)
    uint32_t so_rtp_expected(const so_rtp_stats *s)
    int64_t so_rtp_lost(const so_rtp_stats *s)
    uint32_t so_rtp_units16(uint64_t ns, uint32_t rate)

cdef extern from "so_rtcp.h":
    enum:
        SO_RTCP_MAX_BLOCKS
        SO_RTCP_NO_RTT
        SO_RTCP_SR
    struct so_rtcp_block:
        uint32_t ssrc
        uint32_t ext_max
        uint32_t jitter
        uint32_t lsr
        uint32_t dlsr
        int32_t cum_lost
        uint8_t fraction_lost
    struct so_rtcp_xr_voip:
        uint32_t ssrc
        uint8_t loss_rate, discard_rate, burst_density, gap_density
        uint16_t burst_duration, gap_duration, round_trip_delay, end_system_delay
        uint8_t signal_level, noise_level, rerl, gmin
        uint8_t r_factor, ext_r_factor, mos_lq, mos_cq, rx_config
        uint16_t jb_nominal, jb_maximum, jb_abs_max
    struct so_rtcp_report:
        uint32_t sender_ssrc
        uint8_t type
        uint8_t rc
        uint8_t n_blocks
        uint8_t n_packets
        uint32_t ntp_msw, ntp_lsw, rtp_ts, packet_count, octet_count
        so_rtcp_block blocks[4]
        uint8_t n_xr
        so_rtcp_xr_voip xr[4]
    int so_rtcp_parse(const uint8_t *p, uint32_t len, so_rtcp_report *r)
    uint32_t so_rtcp_ntp_mid32(uint64_t unix_ns)
    uint32_t so_rtcp_rtt(uint32_t arrival_mid32, uint32_t lsr, uint32_t dlsr)

RTP_OUTCOMES = ("in_order", "probation", "bad_seq", "resync", "duplicate", "reordered")
RTCP_RESULTS = ("ok", "truncated", "bad_version", "bad_length", "no_report")


def rtp_parse_fixed(data):
    """The fixed RTP header of ``data``: ``(seq, ts, ssrc, pt, marker)``; ``"rtcp"`` for an RTCP
    packet type (RFC 5761 demultiplexing); None when not RTP version 2 or shorter than 12."""
    cdef const uint8_t[::1] view = _as_view(data)
    cdef so_rtp_hdr h
    if view.shape[0] < 12:
        return None
    cdef int rc = so_rtp_parse_fixed(&view[0], &h)
    if rc < 0:
        return None
    if rc == 1:
        return "rtcp"
    return (h.seq, h.ts, h.ssrc, h.pt, h.marker)


cdef const uint8_t[::1] _as_view(data):
    if isinstance(data, memoryview):
        return data.cast("B") if data.format != "B" else data
    return memoryview(data)


cdef class RtpStats:
    """One RTP stream's statistics (struct so_rtp_stats), fed packet by packet."""

    cdef so_rtp_stats s

    def __cinit__(self):
        memset(&self.s, 0, sizeof(so_rtp_stats))

    def update(self, int seq, uint32_t ts, int pt, uint32_t nbytes, uint64_t now_ns,
               uint32_t clock_rate):
        """Feed one packet; returns its outcome (a RTP_OUTCOMES name)."""
        return RTP_OUTCOMES[so_rtp_update(&self.s, <uint16_t>seq, ts, <uint8_t>pt, nbytes, now_ns,
                                          clock_rate)]

    def snapshot(self):
        """The counters, and the derived RFC 3550 A.3 figures."""
        return _rtp_snapshot(&self.s)


cdef dict _rtp_snapshot(const so_rtp_stats *s):
    return {
        "packets": s.packets,
        "bytes": s.bytes,
        "valid": bool(s.flags & SO_RTP_F_VALID),
        "base_seq": s.base_seq,
        "extended_max": s.cycles + s.max_seq,
        "cycles": s.cycles,
        "received": s.received,
        "expected": so_rtp_expected(s),
        "lost": so_rtp_lost(s),
        "duplicates": s.duplicates,
        "reordered": s.reordered,
        "bad_seq_packets": s.bad_seq_packets,
        "resyncs": s.resyncs,
        "pt": s.pt,
        "pt_changes": s.pt_changes,
        "clock_rate": s.clock_rate,
        "first_ns": s.first_ns,
        "last_ns": s.last_ns,
        "max_gap_ns": s.max_gap_ns,
        "jitter256": s.jitter,
        "max_jitter256": s.max_jitter,
        "jitter256_sum": s.jitter_sum,
        "jitter_samples": s.jitter_samples,
    }


def rtp_units16(uint64_t ns, uint32_t rate):
    """so_rtp_units16: arrival time in 1/16 RTP timestamp units, modulo 2^32."""
    return so_rtp_units16(ns, rate)


def rtcp_parse(data):
    """Parse a compound RTCP packet: ``(result, report)`` with result a RTCP_RESULTS name and
    report a dict (None unless result is "ok", or "no_report" with XR VoIP Metrics blocks: then
    ``{"type": None, "packets": n, "xr": [...]}``). ``report["xr"]``: the VoIP Metrics blocks
    (RFC 3611 4.7) as on the wire, signal and noise level sign-extended."""
    cdef const uint8_t[::1] view = _as_view(data)
    cdef so_rtcp_report r
    cdef uint32_t n = view.shape[0]
    cdef int i
    memset(&r, 0, sizeof(so_rtcp_report))
    cdef int rc = so_rtcp_parse(&view[0] if n else NULL, n, &r)
    xr = [_rtcp_xr_voip(&r.xr[i]) for i in range(r.n_xr)]
    if rc == 4 and xr:  # SO_RTCP_E_NO_REPORT: XR alone
        return RTCP_RESULTS[rc], {"type": None, "packets": r.n_packets, "xr": xr}
    if rc != 0:
        return RTCP_RESULTS[rc], None
    blocks = []
    for i in range(r.n_blocks):
        b = &r.blocks[i]
        blocks.append({
            "ssrc": b.ssrc,
            "fraction_lost": b.fraction_lost,
            "cum_lost": b.cum_lost,
            "ext_max": b.ext_max,
            "jitter": b.jitter,
            "lsr": b.lsr,
            "dlsr": b.dlsr,
        })
    report = {
        "type": "SR" if r.type == SO_RTCP_SR else "RR",
        "sender_ssrc": r.sender_ssrc,
        "rc": r.rc,
        "packets": r.n_packets,
        "blocks": blocks,
        "xr": xr,
    }
    if r.type == SO_RTCP_SR:
        report.update(ntp_msw=r.ntp_msw, ntp_lsw=r.ntp_lsw, rtp_ts=r.rtp_ts,
                      packet_count=r.packet_count, octet_count=r.octet_count)
    return "ok", report


cdef dict _rtcp_xr_voip(const so_rtcp_xr_voip *v):
    return {
        "ssrc": v.ssrc,
        "loss_rate": v.loss_rate,
        "discard_rate": v.discard_rate,
        "burst_density": v.burst_density,
        "gap_density": v.gap_density,
        "burst_duration": v.burst_duration,
        "gap_duration": v.gap_duration,
        "round_trip_delay": v.round_trip_delay,
        "end_system_delay": v.end_system_delay,
        "signal_level": <signed char>v.signal_level,
        "noise_level": <signed char>v.noise_level,
        "rerl": v.rerl,
        "gmin": v.gmin,
        "r_factor": v.r_factor,
        "ext_r_factor": v.ext_r_factor,
        "mos_lq": v.mos_lq,
        "mos_cq": v.mos_cq,
        "rx_config": v.rx_config,
        "jb_nominal": v.jb_nominal,
        "jb_maximum": v.jb_maximum,
        "jb_abs_max": v.jb_abs_max,
    }


def rtcp_ntp_mid32(uint64_t unix_ns):
    """Middle 32 bits of the NTP timestamp of a Unix time in ns (16.16 seconds)."""
    return so_rtcp_ntp_mid32(unix_ns)


def rtcp_rtt(uint32_t arrival_mid32, uint32_t lsr, uint32_t dlsr):
    """Round trip A - LSR - DLSR in 1/65536 s; None when not computable."""
    cdef uint32_t v = so_rtcp_rtt(arrival_mid32, lsr, dlsr)
    return None if v == SO_RTCP_NO_RTT else v


# --- SDP (so_sdp.h) ---------------------------------------------------------------------------

cdef extern from "so_sdp.h":
    enum:
        SO_SDP_MAX_MEDIA
        SO_SDP_MAX_PT
    ctypedef struct so_sdp_addr:
        uint8_t family
        uint8_t addr[16]
    ctypedef struct so_sdp_pt:
        uint8_t pt
        uint8_t channels
        uint32_t clock_rate
        char name[16]
    ctypedef struct so_sdp_media:
        uint8_t kind
        uint8_t rtp
        uint8_t direction
        uint8_t rtcp_mux
        uint16_t port
        uint16_t n_ports
        uint16_t rtcp_port
        uint16_t ptime
        so_sdp_addr conn
        so_sdp_addr rtcp_addr
        char proto[24]
        uint8_t n_pts
        so_sdp_pt pts[16]
    ctypedef struct so_sdp:
        so_sdp_addr conn
        uint8_t direction
        uint8_t n_media
        uint16_t n_media_seen
        uint64_t origin_version
        so_sdp_media media[8]
    int so_sdp_from_body(const uint8_t *ctype, size_t ctype_n, const uint8_t *body, size_t n,
                         so_sdp *out, uint64_t *reasons)

SDP_KINDS = ("other", "audio", "video")
SDP_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


cdef object _sdp_addr(const so_sdp_addr *a):
    import ipaddress
    if a.family == 4:
        return str(ipaddress.IPv4Address(bytes(a.addr[:4])))
    if a.family == 6:
        return str(ipaddress.IPv6Address(bytes(a.addr[:16])))
    return None


def sdp_parse(body, content_type=b"application/sdp"):
    """so_sdp_from_body: ``(sdp, reasons)``. ``sdp`` is None when the body holds no SDP, else a
    dict (session fields and a ``media`` list); ``reasons`` the sdp.* slugs counted."""
    cdef const uint8_t[::1] b = _as_view(body)
    cdef const uint8_t[::1] ct = _as_view(content_type)
    cdef so_sdp *sdp = <so_sdp *>calloc(1, sizeof(so_sdp))
    cdef uint64_t *reasons = <uint64_t *>calloc(SO_N_REASONS, sizeof(uint64_t))
    cdef int rc, i, j
    cdef so_sdp_media *m
    if sdp is NULL or reasons is NULL:
        free(sdp)
        free(reasons)
        raise MemoryError()
    try:
        rc = so_sdp_from_body(&ct[0] if ct.shape[0] else NULL, ct.shape[0],
                              &b[0] if b.shape[0] else NULL, b.shape[0], sdp, reasons)
        counted = counts_dict(reasons, SO_N_REASONS, REASON_SLUGS)
        if rc != 1:
            return None, counted
        media = []
        for i in range(sdp.n_media):
            m = &sdp.media[i]
            media.append({
                "kind": SDP_KINDS[m.kind],
                "port": m.port,
                "n_ports": m.n_ports,
                "proto": m.proto.decode("latin-1"),
                "rtp": bool(m.rtp),
                "addr": _sdp_addr(&m.conn),
                "rtcp_port": m.rtcp_port,
                "rtcp_addr": _sdp_addr(&m.rtcp_addr),
                "rtcp_mux": bool(m.rtcp_mux),
                "direction": SDP_DIRECTIONS[m.direction],
                "ptime": m.ptime,
                "payload_types": [
                    (m.pts[j].pt, m.pts[j].name.decode("latin-1"), m.pts[j].clock_rate,
                     m.pts[j].channels)
                    for j in range(m.n_pts)
                ],
            })
        return {
            "addr": _sdp_addr(&sdp.conn),
            "direction": SDP_DIRECTIONS[sdp.direction],
            "origin_version": sdp.origin_version,
            "media_lines": sdp.n_media_seen,
            "media": media,
        }, counted
    finally:
        free(sdp)
        free(reasons)


# --- the pipeline's media tables (so_media.h) --------------------------------------------------

cdef extern from "so_media_map.h":
    struct so_mep_key:
        uint8_t family
    struct so_mep_val:
        uint8_t flags
    struct so_mstream_key:
        uint8_t family

cdef extern from "so_media.h":
    enum:
        SO_MEDIA_CALL_ID_MAX
    ctypedef struct so_media_limits:
        uint32_t max_endpoints
        uint32_t max_streams
        uint32_t max_calls
        uint32_t max_changes
        int64_t idle_timeout_ns
        int64_t linger_ns
        int64_t interval_ns
    void so_media_limits_default(so_media_limits *l)
    ctypedef struct so_media_head:
        int64_t last_ns
        uint8_t used
    ctypedef struct so_media_call:
        uint64_t hash
        uint8_t id_truncated
        uint16_t id_len
        uint8_t id[256]
    ctypedef struct so_media_stream:
        so_media_head hd
        uint8_t ip_len
        uint8_t dir
        uint16_t sport, dport
        uint32_t ssrc
        uint32_t clock_rate
        uint64_t call
        uint8_t src[16]
        uint8_t dst[16]
        char codec[16]
        so_rtp_stats st
        uint32_t rtcp_reports
        uint32_t rr_jitter
        int32_t rr_cum_lost
        int64_t rtt_ns
        uint8_t rr_fraction_lost
        uint8_t has_xr
        so_rtcp_xr_voip xr
    ctypedef struct so_media_report:
        const so_media_stream *s
        const so_media_call *call
        bint final
        uint64_t packets
        uint32_t received, expected
        uint64_t jitter_sum, jitter_samples
    ctypedef void (*so_media_report_fn)(void *ctx, const so_media_report *r) noexcept
    ctypedef void (*so_media_call_end_fn)(void *ctx, uint64_t call_hash) noexcept
    ctypedef struct so_media_change:
        so_mep_key key
        so_mep_val val
        uint8_t dele "del"
    ctypedef struct so_media:
        uint32_t st_mask
        so_h128 seed
        so_media_stream *streams
        uint64_t rtp_packets, rtcp_packets, endpoints_learned, kernel_streams
    void so_media_set_sink(so_media *m, so_media_report_fn on_report,
                           so_media_call_end_fn on_end, void *ctx)
    bint so_media_call_open(const so_media *m, uint64_t call_hash)
    const so_media_call *so_media_call_find(const so_media *m, uint64_t hash)
    void so_media_changes_enable(so_media *m)
    bint so_media_changes_resync(so_media *m)
    uint32_t so_media_changes_take(so_media *m, so_media_change *out, uint32_t max)
    void so_media_kernel_sync(so_media *m, const so_mstream_key *keys, const so_rtp_stats *vals,
                              uint32_t n, int64_t offset_ns, so_mstream_key *stale,
                              uint32_t *n_stale)
    void so_media_rtcp_apply(so_media *m, const so_rtcp_report *rep, int64_t now)
    void so_media_finish(so_media *m, int64_t now)

cdef extern from "so_hash.h":
    uint64_t so_call_hash(so_h128 seed, const uint8_t *p, size_t n)

MEDIA_DIRECTIONS = ("unknown", "to_caller", "to_callee")
MEP_KEY_SIZE = sizeof(so_mep_key)
MEP_VAL_SIZE = sizeof(so_mep_val)
MSTREAM_KEY_SIZE = sizeof(so_mstream_key)
RTP_STATS_SIZE = sizeof(so_rtp_stats)


cdef object _ip_text(const uint8_t *a, uint8_t ip_len):
    import ipaddress
    if ip_len == 4:
        return str(ipaddress.IPv4Address(bytes(a[:4])))
    return str(ipaddress.IPv6Address(bytes(a[:16])))


cdef str _call_id_text(const so_media_call *c):
    """The call's Call-ID as records hold it (truncated past SO_MEDIA_CALL_ID_MAX bytes)."""
    if c is NULL or c.id_len == 0:
        return ""
    return (<const char *>c.id)[:c.id_len].decode("utf-8", "replace")


cdef dict _stream_dict(const so_media_stream *s, const so_media_call *c):
    d = _rtp_snapshot(&s.st)
    d.update(src=_ip_text(s.src, s.ip_len), sport=s.sport, dst=_ip_text(s.dst, s.ip_len),
             dport=s.dport, ssrc=s.ssrc, codec=(<const char *>s.codec).decode("latin-1"),
             direction=MEDIA_DIRECTIONS[s.dir], call_id=_call_id_text(c),
             rtcp_reports=s.rtcp_reports)
    if s.rtcp_reports:
        d.update(rr_fraction_lost=s.rr_fraction_lost, rr_cum_lost=s.rr_cum_lost,
                 rr_jitter=s.rr_jitter,
                 rtt_ns=None if s.rtt_ns < 0 else s.rtt_ns)
    return d


cdef list _media_streams(so_media *m):
    """Every stream in the table: addresses, ports, SSRC, codec, direction, its statistics."""
    cdef list out = []
    cdef uint32_t i
    cdef so_media_stream *s
    if m is NULL:
        return out
    for i in range(m.st_mask + 1):
        s = &m.streams[i]
        if s.hd.used:
            out.append(_stream_dict(s, so_media_call_find(m, s.call)))
    return out


cdef dict _media_counts(const so_media *m):
    if m is NULL:
        return {}
    return {"rtp_packets": m.rtp_packets, "rtcp_packets": m.rtcp_packets,
            "endpoints_learned": m.endpoints_learned}


cdef inline double _j_s(double j256, uint32_t rate):
    return j256 / 256.0 / rate if rate else 0.0


cdef object _media_stream(const so_media_report *r):
    """One report as the records.MediaStream that leaves the core."""
    cdef const so_media_stream *s = r.s
    cdef const so_rtp_stats *st = &s.st
    cdef uint32_t rate = st.clock_rate if st.clock_rate else s.clock_rate
    cdef uint32_t expected = so_rtp_expected(st)
    cdef const so_rtcp_xr_voip *x = &s.xr
    rtcp = s.rtcp_reports != 0
    xr = s.has_xr != 0
    return MediaStream(
        _call_id_text(r.call), MEDIA_DIRECTIONS[s.dir], (<const char *>s.codec).decode("latin-1").lower(),
        s.clock_rate if s.clock_rate else st.clock_rate, s.ssrc,
        endpoint(s.src, s.ip_len, s.sport), endpoint(s.dst, s.ip_len, s.dport),
        st.first_ns, st.last_ns, bool(r.final),
        r.packets, r.expected, max(0, <int64_t>r.expected - <int64_t>r.received),
        _j_s(<double>r.jitter_sum / r.jitter_samples, rate) if r.jitter_samples else 0.0,
        st.packets, expected, max(0, <int64_t>expected - <int64_t>st.received), st.bytes,
        st.duplicates, st.reordered, _j_s(st.jitter, rate), _j_s(st.max_jitter, rate),
        _j_s(<double>st.jitter_sum / st.jitter_samples, rate) if st.jitter_samples else 0.0,
        st.max_gap_ns / 1e9, st.pt_changes,
        rtcp_fraction_lost=s.rr_fraction_lost / 256.0 if rtcp else None,
        rtcp_cum_lost=s.rr_cum_lost if rtcp else None,
        rtcp_jitter_s=(<double>s.rr_jitter / rate if rate else None) if rtcp else None,
        rtt_s=s.rtt_ns / 1e9 if s.rtt_ns >= 0 else None,
        xr_r_factor=x.r_factor if xr and x.r_factor != 127 else None,
        xr_mos_lq=x.mos_lq / 10.0 if xr and x.mos_lq != 127 else None,
        xr_mos_cq=x.mos_cq / 10.0 if xr and x.mos_cq != 127 else None,
        xr_loss_rate=x.loss_rate / 256.0 if xr else None,
        xr_discard_rate=x.discard_rate / 256.0 if xr else None,
        xr_round_trip_s=x.round_trip_delay / 1000.0 if xr else None,
        xr_end_system_delay_s=x.end_system_delay / 1000.0 if xr else None,
        received=r.received,
        total_received=st.received,
    )
