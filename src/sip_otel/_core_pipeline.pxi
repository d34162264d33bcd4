# The pipeline part of the binding (so_pipeline.h) and the live capture adapters that feed it
# (so_ring.h): whole batches of frames per call, no Python object per packet.

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc

cdef extern from "so_pipeline.h":
    ctypedef struct so_pipeline_config:
        so_net_limits limits
        uint8_t sip_ports[8192]
        bint all_ports
        so_track_config track
        bint media
        so_media_limits media_limits
        uint64_t memory_limit
    ctypedef struct so_pipeline:
        uint64_t reasons[SO_N_REASONS]
        uint64_t evictions[SO_N_EVICTIONS]
        so_stats stats
        so_net *net
        so_parser *parser
        so_track *track
        so_media *media
        int64_t last_ts, next_timer
        so_mem mem
    so_pipeline *so_pipeline_new(const so_pipeline_config *cfg)
    void so_pipeline_free(so_pipeline *p)
    void so_pipeline_frame(so_pipeline *p, int64_t ts_ns, uint32_t linktype, const uint8_t *data,
                           size_t len)
    so_pcap_status so_pipeline_pcap(so_pipeline *p, so_pcap *pc, size_t max_frames)
    void so_pipeline_timer(so_pipeline *p, int64_t now_ns)
    void so_pipeline_finish(so_pipeline *p, int64_t now_ns)

cdef extern from "so_track.h":
    void so_track_set_want_records(so_track *t, bint want)

cdef extern from "so_ring.h":
    ctypedef void (*so_live_frame_fn)(void *ctx, int64_t ts_ns, const uint8_t *data, size_t len,
                                      uint32_t ifindex, uint16_t pkt_type)
    ctypedef struct so_ring:
        uint64_t max_backlog
        uint64_t bad_records
        uint64_t wrapped
    void so_ring_init(so_ring *r, uint64_t *cons_pos, const uint64_t *prod_pos,
                      const uint8_t *data, uint64_t size, int64_t offset_ns)
    bint so_ring_pending(const so_ring *r)
    size_t so_ring_drain(so_ring *r, size_t max_frames, so_live_frame_fn fn, void *ctx)
    size_t so_rings_drain(so_ring **rings, size_t n, size_t max_frames, so_live_frame_fn fn,
                          void *ctx)
    enum: SO_RINGS_MAX
    ctypedef struct so_tpacket:
        uint8_t *base
        size_t block_size
        uint32_t nblocks
        uint32_t block
        uint64_t bad_packets
    size_t so_tpacket_read(so_tpacket *r, size_t max_frames, so_live_frame_fn fn, void *ctx)

from dataclasses import asdict as _asdict

from sip_otel.net.types import Frame as _Frame


cdef class PipelineCore:
    """The compiled pipeline: frames in, counters and records out (see pipeline.py)."""
    cdef so_pipeline *p
    cdef bint want_records
    cdef list records
    # media (docs/media.md): reports for the media sink; the final reports per call kept until
    # the call's media ends (a stream may end earlier: idle, evicted; bounded by the stream
    # limit); the calls whose media ended during the current call into the core; records held
    # until their call's media ended; (no media sink) the last ended streams for media_streams()
    cdef bint want_media
    cdef list media_reports
    cdef dict call_finals
    cdef Py_ssize_t n_finals, max_finals
    cdef set calls_ended
    cdef dict media_held
    cdef Py_ssize_t n_held, max_held
    cdef object ended_streams

    def __cinit__(self):
        self.p = NULL

    def __init__(self, config, bint want_records=False):
        """``config``: a pipeline.PipelineConfig."""
        cdef so_pipeline_config cfg
        memset(&cfg, 0, sizeof(cfg))
        _limits_from(&cfg.limits, _asdict(config.net_limits))
        for port in config.sip_ports:
            if 0 <= port <= 0xFFFF:
                cfg.sip_ports[port >> 3] |= <uint8_t>(1 << (port & 7))
        cfg.all_ports = config.all_ports
        track_config(&cfg.track, config.tracker, want_records)
        cfg.media = bool(getattr(config, "media", False))
        so_media_limits_default(&cfg.media_limits)
        cfg.media_limits.max_endpoints = getattr(config, "media_max_endpoints", 4096)
        cfg.media_limits.max_streams = getattr(config, "media_max_streams", 4096)
        cfg.media_limits.max_calls = getattr(config, "media_max_calls", 4096)
        cfg.media_limits.linger_ns = getattr(config, "media_linger_ns", 3_000_000_000)
        cfg.media_limits.interval_ns = getattr(config, "media_interval_ns", 60_000_000_000)
        cfg.memory_limit = config.memory_limit
        self.p = so_pipeline_new(&cfg)
        if self.p == NULL:
            raise MemoryError()
        set_correlation(self.p.parser, getattr(config, "correlation_header", None))
        self.want_records = want_records
        self.records = []
        self.want_media = False
        self.media_reports = []
        self.call_finals = {}
        self.n_finals = 0
        self.calls_ended = set()
        self.media_held = {}
        self.n_held = 0
        self.max_held = max(1, int(getattr(config, "media_max_calls", 4096)))
        from collections import deque
        self.ended_streams = deque(maxlen=max(1, int(getattr(config, "media_max_streams", 4096))))
        self.max_finals = 0
        if self.p.media != NULL:
            self.max_finals = 2 * (self.p.media.st_mask + 1)  # twice the stream slots
            so_media_set_sink(self.p.media, _on_media_report, _on_media_call_end, <void *>self)

    def __dealloc__(self):
        if self.p != NULL:
            so_pipeline_free(self.p)

    cdef void _collect(self):
        """Finished records into Python objects (only when spans want them). With media, a
        dialog record whose call still has media is held until that media ended, then carries
        the final report of each of the call's streams (those that ended before it too)."""
        cdef size_t n, i
        cdef uint64_t h
        cdef so_record *recs = so_track_records(self.p.track, &n)
        cdef so_media *m = self.p.media
        if n:
            for i in range(n):
                rec = make_record(&recs[i])
                if m != NULL and not recs[i].registration:
                    h = so_call_hash(m.seed, recs[i].call_id.p, recs[i].call_id.n)
                    if h in self.calls_ended:
                        rec.media = list(self.call_finals.get(h, ()))
                    elif so_media_call_open(m, h):
                        if self.n_held < self.max_held:
                            self.media_held.setdefault(h, []).append(rec)
                            self.n_held += 1
                            continue
                        self.p.evictions[SO_E_MEDIA_RECORDS_FULL] += 1
                self.records.append(rec)
            so_track_clear_records(self.p.track)
        if self.media_held:
            for h in self.calls_ended:
                held = self.media_held.pop(h, None)
                if held:
                    self.n_held -= len(held)
                    for rec in held:
                        rec.media = list(self.call_finals.get(h, ()))
                        self.records.append(rec)

    cdef void _after(self):
        """After every call into the core: records collected, this call's ended calls let go
        (with their final reports)."""
        if self.want_records:
            self._collect()
        for h in self.calls_ended:
            finals = self.call_finals.pop(h, None)
            if finals:
                self.n_finals -= len(finals)
        self.calls_ended.clear()

    cdef void _media_report(self, const so_media_report *r):
        if r.final and not self.want_media:  # no sink: media_streams() lists what ended
            self.ended_streams.append(_stream_dict(r.s, r.call))
        if not (self.want_media or (r.final and self.want_records)):
            return
        ms = _media_stream(r)
        if self.want_media:
            self.media_reports.append(ms)
        if r.final and self.want_records and r.call != NULL and self.n_finals < self.max_finals:
            self.call_finals.setdefault(r.s.call, []).append(ms)
            self.n_finals += 1

    cdef void _media_call_end(self, uint64_t h):
        self.calls_ended.add(h)

    def set_want_media(self, bint want):
        """Make a records.MediaStream of every report (a media sink is set)."""
        self.want_media = want

    def take_media_reports(self):
        out = self.media_reports
        self.media_reports = []
        return out

    def media_endpoint_changes(self):
        """Queued changes of the kernel's endpoint map: [(so_mep_key, so_mep_val)] to add or
        replace, [(key, b"")] to delete. The first call turns the queue on (with an add for
        every endpoint already learned): replay never calls it and queues nothing. After the
        queue overflowed, the next call starts with (b"", b""): clear the whole kernel map,
        then an add for every endpoint the core holds."""
        cdef so_media_change buf[64]
        cdef uint32_t k, got
        out = []
        if self.p.media == NULL:
            return out
        so_media_changes_enable(self.p.media)
        if so_media_changes_resync(self.p.media):
            out.append((b"", b""))
        while True:
            got = so_media_changes_take(self.p.media, buf, 64)
            for k in range(got):
                key = (<const char *>&buf[k].key)[:sizeof(so_mep_key)]
                if buf[k].dele:
                    out.append((key, b""))
                else:
                    out.append((key, (<const char *>&buf[k].val)[:sizeof(so_mep_val)]))
            if got < 64:
                return out

    def media_kernel_sync(self, keys, values, int64_t offset_ns):
        """The kernel's rtp_streams (n packed so_mstream_key, n packed so_rtp_stats) into the
        stream table, times + offset_ns; returns the packed keys whose endpoint is gone."""
        cdef const uint8_t[::1] kv = _as_view(keys)
        cdef const uint8_t[::1] vv = _as_view(values)
        cdef size_t ks = sizeof(so_mstream_key), vs = sizeof(so_rtp_stats)
        cdef size_t nk = kv.shape[0], nv = vv.shape[0]
        cdef uint32_t n, n_stale = 0
        if nk % ks or nv % vs or nk // ks != nv // vs:
            raise ValueError(
                f"media_kernel_sync: {nk} key bytes and {nv} value bytes are not n * {ks} and "
                f"n * {vs}")
        n = <uint32_t>(nk // ks)
        if self.p.media == NULL or n == 0:
            return b""
        # copies: the caller's buffers need not be aligned
        cdef so_mstream_key *k = <so_mstream_key *>malloc(2 * n * ks)
        cdef so_rtp_stats *v = <so_rtp_stats *>malloc(n * vs)
        try:
            if k == NULL or v == NULL:
                raise MemoryError()
            memcpy(k, &kv[0], nk)
            memcpy(v, &vv[0], nv)
            so_media_kernel_sync(self.p.media, k, v, n, offset_ns, k + n, &n_stale)
            out = (<const char *>(k + n))[:n_stale * ks]
        finally:
            free(k)
            free(v)
        self._after()
        return out

    def _media_rtcp_xr(self, int64_t now_ns, xr_blocks):
        """Test hook: RTCP XR VoIP metrics blocks, as so_rtcp_parse would leave them, through
        the media layer's RTCP path. ``xr_blocks``: dicts of so_rtcp_xr_voip fields."""
        cdef so_rtcp_report rep
        cdef int i
        memset(&rep, 0, sizeof(rep))
        if self.p.media == NULL:
            return
        for i, b in enumerate(xr_blocks[:4]):
            rep.xr[i].ssrc = b["ssrc"]
            rep.xr[i].loss_rate = b.get("loss_rate", 0)
            rep.xr[i].discard_rate = b.get("discard_rate", 0)
            rep.xr[i].round_trip_delay = b.get("round_trip_delay", 0)
            rep.xr[i].end_system_delay = b.get("end_system_delay", 0)
            rep.xr[i].r_factor = b.get("r_factor", 127)
            rep.xr[i].mos_lq = b.get("mos_lq", 127)
            rep.xr[i].mos_cq = b.get("mos_cq", 127)
            rep.n_xr = i + 1
        so_media_rtcp_apply(self.p.media, &rep, now_ns)

    def media_streams(self):
        """RTP streams to learned media endpoints and their statistics ([] without media): those
        in the table, and (while no media sink is set) the last ones whose media ended."""
        out = list(self.ended_streams) + _media_streams(self.p.media)
        out.sort(key=lambda d: d["first_ns"])
        return out

    def media_counts(self):
        """RTP/RTCP packets taken by the media tables, endpoints learned ({} without media)."""
        return _media_counts(self.p.media)

    def take_records(self):
        out = self.records
        self.records = []
        return out

    def feed_frames(self, frames):
        """A batch of Frame tuples (live AF_PACKET path, tools, tests)."""
        cdef const uint8_t[:] view
        cdef bytes data
        for frame in frames:
            data = frame[2]
            so_pipeline_frame(self.p, frame[0], frame[1], <const uint8_t *>PyBytes_AS_STRING(data),
                              len(data))
        self._after()

    def feed_pcap(self, PcapCursor cursor, size_t max_frames):
        """Up to ``max_frames`` frames of a capture file straight into the pipeline; returns the
        cursor's state afterwards (0 more, 1 end, 2 error: PcapReader turns it into
        CaptureFileError)."""
        if cursor.status == SO_PCAP_MORE:
            cursor.status = so_pipeline_pcap(self.p, &cursor.pc, max_frames)
            self._after()
        return <int>cursor.status

    def set_want_records(self, bint want):
        self.want_records = want
        so_track_set_want_records(self.p.track, want)

    def feed_ring(self, RingCursor ring, size_t max_frames):
        """Up to ``max_frames`` packets waiting in the eBPF rings (merged in timestamp order);
        returns how many."""
        n = so_rings_drain(ring.rings, ring.n, max_frames, _to_pipeline, self.p) if ring.have_bufs else 0
        self._after()
        return n

    def feed_tpacket(self, TpacketCursor ring, size_t max_frames):
        """Up to ``max_frames`` packets of handed-over TPACKET_V3 blocks; returns how many."""
        n = so_tpacket_read(&ring.r, max_frames, _to_pipeline, self.p)
        self._after()
        return n

    def handle_timer(self, int64_t now_ns):
        so_pipeline_timer(self.p, now_ns)
        self._after()

    def media_flush(self, int64_t now_ns):
        """Every call's media ends now (final reports, held records released with them); the
        tracker goes on (the live agent's shutdown: dialogs still open are not finished)."""
        if self.p.media != NULL:
            so_media_finish(self.p.media, now_ns)
        self._after()

    def finish(self, int64_t now_ns):
        so_pipeline_finish(self.p, now_ns)
        self._after()

    @property
    def last_ts_ns(self):
        return self.p.last_ts

    def sync(self, stats, reasons):
        """The counters into a PipelineStats and the reason counts into a Reasons (replacing
        what the pipeline counts; fields the pipeline does not own are left alone)."""
        stats_out(&self.p.stats, stats, True)
        stats.evictions = counts_dict(self.p.evictions, SO_N_EVICTIONS, EVICTION_SLUGS)
        core = counts_dict(self.p.reasons, SO_N_REASONS, REASON_SLUGS)
        for slug, n in core.items():
            reasons.counts[slug] = n

    def gauges(self):
        cdef so_track_gauges g
        so_track_gauges_get(self.p.track, &g)
        return {
            "sessions": g.sessions, "early_dialogs": g.early_dialogs,
            "registrations": g.registrations, "transactions": g.transactions,
            "transactions_tracked": g.transactions_tracked,
            "invite_attempts": g.invite_attempts, "register_attempts": g.register_attempts,
            "table.fragments": so_net_fragment_sets(self.p.net),
            "table.tcp_flows": so_net_tcp_flows(self.p.net),
        }

    def memory(self):
        """The memory budget: bytes charged per table (so_mem), and ``limit``."""
        return mem_dict(&self.p.mem)


cdef void _on_media_report(void *ctx, const so_media_report *r) noexcept:
    (<PipelineCore>ctx)._media_report(r)


cdef void _on_media_call_end(void *ctx, uint64_t call_hash) noexcept:
    (<PipelineCore>ctx)._media_call_end(call_hash)


cdef void _to_pipeline(void *ctx, int64_t ts, const uint8_t *data, size_t len, uint32_t ifindex,
                       uint16_t pkt_type) noexcept:
    so_pipeline_frame(<so_pipeline *>ctx, ts, 1, data, len)  # LINKTYPE_ETHERNET


cdef void _to_list(void *ctx, int64_t ts, const uint8_t *data, size_t len, uint32_t ifindex,
                   uint16_t pkt_type) noexcept:
    (<list>ctx).append(_Frame(ts, 1, (<const char *>data)[:len], ifindex, pkt_type))


cdef class RingCursor:
    """Consumer state of the eBPF filter's ring buffers (one per CPU) over mappings owned by
    the caller: for each ring, ``cons`` (the read-write consumer page) and ``data`` (producer
    page + data area). Reads merge the rings in kernel timestamp order (so_rings_drain)."""
    cdef so_ring **rings
    cdef size_t n
    cdef Py_buffer *bufs  # cons, data for each ring
    cdef bint have_bufs

    def __cinit__(self):
        self.have_bufs = False
        self.rings = NULL
        self.bufs = NULL
        self.n = 0

    def __init__(self, maps, uint64_t size, int64_t offset_ns, size_t page):
        cdef size_t i
        cdef size_t got = 0
        maps = list(maps)
        if size == 0 or size & (size - 1):
            raise ValueError(f"ring size {size} is not a power of two")
        if not 1 <= len(maps) <= SO_RINGS_MAX:
            raise ValueError(f"1 to {SO_RINGS_MAX} rings, not {len(maps)}")
        self.rings = <so_ring **>PyMem_Calloc(len(maps), sizeof(so_ring *))
        self.bufs = <Py_buffer *>PyMem_Calloc(2 * len(maps), sizeof(Py_buffer))
        if self.rings == NULL or self.bufs == NULL:
            raise MemoryError()
        try:
            for i in range(len(maps)):
                cons, data = maps[i]
                PyObject_GetBuffer(cons, &self.bufs[got], PyBUF_WRITABLE)
                got += 1
                PyObject_GetBuffer(data, &self.bufs[got], PyBUF_SIMPLE)
                got += 1
                if self.bufs[got - 2].len < 8 or self.bufs[got - 1].len < <Py_ssize_t>(page + size):
                    raise ValueError("ring mappings smaller than the ring")
                self.rings[i] = <so_ring *>PyMem_Malloc(sizeof(so_ring))
                if self.rings[i] == NULL:
                    raise MemoryError()
                self.n = i + 1
                so_ring_init(self.rings[i], <uint64_t *>self.bufs[got - 2].buf,
                             <const uint64_t *>self.bufs[got - 1].buf,
                             (<const uint8_t *>self.bufs[got - 1].buf) + page, size, offset_ns)
        except BaseException:
            for i in range(got):
                PyBuffer_Release(&self.bufs[i])
            raise
        self.have_bufs = True

    def __dealloc__(self):
        cdef size_t i
        self.release()
        if self.rings != NULL:
            for i in range(self.n):
                PyMem_Free(self.rings[i])
            PyMem_Free(self.rings)
        PyMem_Free(self.bufs)

    def release(self):
        """Let go of the mappings (before they are closed)."""
        cdef size_t i
        if self.have_bufs:
            for i in range(2 * self.n):
                PyBuffer_Release(&self.bufs[i])
            self.have_bufs = False

    @property
    def rings_count(self):
        return self.n

    def pending(self):
        cdef size_t i
        if not self.have_bufs:
            return False
        for i in range(self.n):
            if so_ring_pending(self.rings[i]):
                return True
        return False

    def read(self, size_t max_frames):
        """Waiting packets as Frame tuples in timestamp order (tests, tools; the agent feeds
        the pipeline)."""
        out = []
        if self.have_bufs:
            so_rings_drain(self.rings, self.n, max_frames, _to_list, <void *>out)
        return out

    @property
    def max_backlog(self):
        """Most bytes ever waiting in one ring at a read."""
        cdef size_t i
        cdef uint64_t m = 0
        for i in range(self.n):
            m = max(m, self.rings[i].max_backlog)
        return m

    @property
    def wrapped(self):
        """Records that ran past the end of a data area (copied whole)."""
        cdef size_t i
        cdef uint64_t w = 0
        for i in range(self.n):
            w += self.rings[i].wrapped
        return w

    @property
    def bad_records(self):
        """Records or positions that could not be read (counted, skipped)."""
        cdef size_t i
        cdef uint64_t b = 0
        for i in range(self.n):
            b += self.rings[i].bad_records
        return b


cdef class TpacketCursor:
    """Reader state of one TPACKET_V3 ring over a read-write mapping owned by the caller."""
    cdef so_tpacket r
    cdef Py_buffer buf
    cdef bint have_buf

    def __cinit__(self):
        self.have_buf = False

    def __init__(self, ring_map, size_t block_size, uint32_t nblocks):
        PyObject_GetBuffer(ring_map, &self.buf, PyBUF_WRITABLE)
        self.have_buf = True
        if self.buf.len < <Py_ssize_t>(block_size * nblocks) or block_size < 64 or nblocks == 0:
            raise ValueError("TPACKET_V3 mapping smaller than its blocks")
        self.r.base = <uint8_t *>self.buf.buf
        self.r.block_size = block_size
        self.r.nblocks = nblocks
        self.r.block = 0

    def __dealloc__(self):
        if self.have_buf:
            PyBuffer_Release(&self.buf)

    def release(self):
        if self.have_buf:
            PyBuffer_Release(&self.buf)
            self.have_buf = False

    def read(self, size_t max_frames):
        out = []
        if self.have_buf:
            so_tpacket_read(&self.r, max_frames, _to_list, <void *>out)
        return out
