# The net part of the binding: frames -> payloads (so_net.h), stream framers (so_framer.h, the SIP
# framer of so_sip.h, the WebSocket framer), fragment reassembly, capture files (so_pcap_*).
#
# The classes here back the Python facades of sip_otel.net, sip_otel.sip.framing and
# sip_otel.capture.pcapfile. Each counts into C arrays and merges them into the facade's
# {slug: count} dicts after every call (merge_counts), so per-layer tests see the same dicts.

from cpython.bytes cimport PyBytes_FromStringAndSize
from os import urandom as _os_urandom

from sip_otel.errors import DecodeError as _NetDecodeError
from sip_otel.net.types import Frame as _Frame
from sip_otel.net.types import SipPayload as _SipPayload


cdef extern from "so_hash.h":
    ctypedef struct net_h128 "so_h128":
        uint64_t a
        uint64_t b

cdef extern from "so_framer.h":
    ctypedef void (*so_emit_fn)(void *ctx, const uint8_t *msg, uint32_t len) noexcept
    ctypedef struct so_framer_env:
        uint64_t *reasons
        uint32_t max_message
        so_emit_fn emit
        void *emit_ctx
    ctypedef struct so_framer_ops:
        size_t state_size
        void (*init)(void *st) noexcept
        void (*feed)(void *st, const uint8_t *data, size_t n, const so_framer_env *env) noexcept
        void (*reset)(void *st) noexcept
        void (*close)(void *st, const so_framer_env *env) noexcept
        void (*destroy)(void *st) noexcept
        size_t (*pending)(const void *st) noexcept
    ctypedef bint (*so_sniff_fn)(const uint8_t *p, size_t n) noexcept

cdef extern from "so_sip.h":
    # aliases: the sip part of the binding may declare these under their own names
    bint net_looks_like_sip "so_looks_like_sip"(const uint8_t *p, size_t n) noexcept
    const so_framer_ops net_sip_framer_ops "so_sip_framer_ops"

cdef extern from "so_net.h":
    ctypedef struct so_net_limits:
        uint32_t max_fragment_sets
        int64_t fragment_timeout_ns
        uint32_t max_fragment_bytes
        uint32_t max_fragments_per_set
        uint64_t max_fragment_memory_bytes
        uint32_t max_tcp_flows
        int64_t tcp_idle_timeout_ns
        uint32_t max_tcp_ooo_bytes_per_flow
        uint32_t max_tcp_ooo_segments_per_flow
        uint64_t max_tcp_ooo_bytes_total
        uint32_t max_sip_message_bytes
        uint32_t max_tunnel_depth
        uint64_t memory_limit
    void so_net_limits_default(so_net_limits *limits)

    ctypedef void (*so_payload_fn)(void *ctx, const so_payload *payload) noexcept
    ctypedef struct so_net_config:
        so_net_limits limits
        net_h128 seed
        uint8_t sip_ports[8192]
        bint all_ports
        so_sniff_fn looks_like_sip
        const so_framer_ops *sip_framer
        so_payload_fn on_payload
        void *ctx
        uint64_t *reasons
        uint64_t *evictions
    ctypedef struct so_net:
        pass
    so_net *so_net_new(const so_net_config *cfg)
    void so_net_free(so_net *net)
    void so_net_feed(so_net *net, int64_t ts_ns, uint32_t linktype, const uint8_t *data, size_t len)
    void so_net_handle_timer(so_net *net, int64_t now_ns)
    size_t so_net_fragment_sets(const so_net *net)
    size_t so_net_tcp_flows(const so_net *net)
    uint64_t so_net_tcp_held_bytes(const so_net *net)
    uint64_t so_net_fragment_memory(const so_net *net)
    const so_mem *so_net_mem(const so_net *net)
    size_t so_net_entry_size(const so_net *net, int which)

    ctypedef enum so_pcap_status:
        SO_PCAP_MORE
        SO_PCAP_END
        SO_PCAP_ERROR
        SO_PCAP_NEED
    enum:
        SO_PCAP_E_NONE
        SO_PCAP_E_MAGIC
        SO_PCAP_E_FILE_HEADER
        SO_PCAP_E_RECORD_HEADER
        SO_PCAP_E_RECORD_LENGTH
        SO_PCAP_E_RECORD_DATA
        SO_PCAP_E_BLOCK_HEADER
        SO_PCAP_E_BYTE_ORDER
        SO_PCAP_E_BLOCK_CUT
        SO_PCAP_E_BLOCK_CORRUPT
        SO_PCAP_E_EPB
        SO_PCAP_E_SPB
        SO_PCAP_E_PB
        SO_PCAP_E_NO_MEMORY
        SO_PCAP_E_SHORT_PACKET
    ctypedef struct so_pcap:
        const uint8_t *buf
        size_t size
        size_t off
        uint64_t base
        int final
        size_t need
        uint64_t ts_range
        int pcapng
        int err_kind
        size_t err_off
        uint64_t err_a, err_b
    ctypedef void (*so_frame_fn)(void *ctx, int64_t ts_ns, uint32_t linktype, const uint8_t *data,
                                 size_t len, uint32_t ifindex) noexcept
    int so_pcap_open(so_pcap *pc, const uint8_t *buf, size_t size)
    void so_pcap_refill(so_pcap *pc, const uint8_t *buf, size_t size, uint64_t base, int final)
    so_pcap_status so_pcap_next(so_pcap *pc, size_t max_frames, so_frame_fn on_frame, void *ctx)
    void so_pcap_close(so_pcap *pc)

cdef extern from "so_net_int.h":
    enum:
        SO_NET_OK
    ctypedef struct so_l3:
        uint32_t etype
        size_t off
        size_t end
    int so_link_decode(uint32_t linktype, const uint8_t *d, size_t n, so_l3 *out)

    ctypedef struct so_frag_key:
        uint8_t src[16]
        uint8_t dst[16]
        uint8_t ip_len
        uint32_t ident
        int32_t proto
    ctypedef struct so_frag_table:
        uint64_t memory
        uint64_t *reasons
        uint64_t *evictions
    void so_frag_init(so_frag_table *t, const so_net_limits *limits, net_h128 seed,
                      uint64_t *reasons, uint64_t *evictions, so_mem *mem)
    void so_frag_free(so_frag_table *t)
    int so_frag_add(so_frag_table *t, const so_frag_key *key, int64_t ts_ns, uint32_t offset,
                    bint more, const uint8_t *p, size_t n, int proto, uint8_t **out,
                    size_t *out_len, int *out_proto)
    void so_frag_expire(so_frag_table *t, int64_t now_ns)
    size_t so_frag_count(const so_frag_table *t)

    ctypedef struct so_ws:
        pass
    void so_ws_init(so_ws *ws, bint response)
    void so_ws_feed(so_ws *ws, const uint8_t *data, size_t n, const so_framer_env *env)
    void so_ws_reset(so_ws *ws)
    void so_ws_close(so_ws *ws, const so_framer_env *env)
    void so_ws_destroy(so_ws *ws)
    size_t so_ws_pending(const so_ws *ws)
    bint so_ws_is_sip_upgrade(const uint8_t *d, size_t off, size_t end)


cdef const uint8_t _EMPTY[1]


cdef inline const uint8_t *_buf_ptr(const uint8_t[::1] data):
    return &data[0] if data.shape[0] else _EMPTY


cdef net_h128 _random_seed():
    cdef net_h128 seed
    raw = _os_urandom(16)
    seed.a = int.from_bytes(raw[:8], "little")
    seed.b = int.from_bytes(raw[8:], "little")
    return seed


cdef uint64_t _clamp(object v, uint64_t top):
    """A limit as C sees it: Python ints are unbounded, the C fields are not (a negative bound
    behaves as 0 in every comparison the tables make, a huge one as the type's maximum)."""
    if v < 0:
        return 0
    if v > top:
        return top
    return <uint64_t>v


cdef int64_t _clamp_time(object v):
    if v < -0x7FFFFFFFFFFFFFFF:
        return -0x7FFFFFFFFFFFFFFF
    if v > 0x7FFFFFFFFFFFFFFF:
        return 0x7FFFFFFFFFFFFFFF
    return <int64_t>v


cdef void _limits_from(so_net_limits *l, dict limits) except *:
    so_net_limits_default(l)
    for name, v in limits.items():
        if name == "max_fragment_sets":
            l.max_fragment_sets = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "fragment_timeout_ns":
            l.fragment_timeout_ns = _clamp_time(v)
        elif name == "max_fragment_bytes":
            l.max_fragment_bytes = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "max_fragments_per_set":
            l.max_fragments_per_set = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "max_fragment_memory_bytes":
            l.max_fragment_memory_bytes = _clamp(v, 0xFFFFFFFFFFFFFFFF)
        elif name == "max_tcp_flows":
            l.max_tcp_flows = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "tcp_idle_timeout_ns":
            l.tcp_idle_timeout_ns = _clamp_time(v)
        elif name == "max_tcp_ooo_bytes_per_flow":
            l.max_tcp_ooo_bytes_per_flow = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "max_tcp_ooo_segments_per_flow":
            l.max_tcp_ooo_segments_per_flow = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "max_tcp_ooo_bytes_total":
            l.max_tcp_ooo_bytes_total = _clamp(v, 0xFFFFFFFFFFFFFFFF)
        elif name == "max_sip_message_bytes":
            l.max_sip_message_bytes = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "max_tunnel_depth":
            l.max_tunnel_depth = <uint32_t>_clamp(v, 0xFFFFFFFF)
        elif name == "memory_limit":
            l.memory_limit = _clamp(v, 0xFFFFFFFFFFFFFFFF)
        else:
            raise TypeError(f"unknown net limit {name!r}")


# ---- the frame decoder ---------------------------------------------------------------------------

cdef void _net_on_payload(void *ctx, const so_payload *p) noexcept:
    cdef NetDecoder self = <NetDecoder>ctx
    if self._exc is not None:
        return
    try:
        self._out.append(_SipPayload(
            p.ts_ns,
            p.transport,
            PyBytes_FromStringAndSize(<const char *>p.src, p.ip_len),
            p.sport,
            PyBytes_FromStringAndSize(<const char *>p.dst, p.ip_len),
            p.dport,
            PyBytes_FromStringAndSize(<const char *>p.data, p.len),
        ))
    except BaseException as e:
        self._exc = e


cdef class NetDecoder:
    """so_net: frames in, SipPayload lists out; counts merged into the given dicts per call."""

    cdef so_net *net
    cdef uint64_t *reasons
    cdef uint64_t *evictions
    cdef list _out
    cdef object _exc
    cdef dict _reasons_into
    cdef dict _evictions_into

    def __cinit__(self, sip_ports, bint all_ports, dict limits, dict reasons, dict evictions):
        cdef so_net_config *cfg = <so_net_config *>calloc(1, sizeof(so_net_config))
        if cfg is NULL:
            raise MemoryError()
        try:
            _limits_from(&cfg.limits, limits)
            for port in sip_ports:
                if 0 <= port <= 0xFFFF:
                    cfg.sip_ports[port >> 3] |= <uint8_t>(1 << (port & 7))
            cfg.seed = _random_seed()
            cfg.all_ports = all_ports
            cfg.looks_like_sip = net_looks_like_sip
            cfg.sip_framer = &net_sip_framer_ops
            cfg.on_payload = _net_on_payload
            cfg.ctx = <void *>self
            self.reasons = <uint64_t *>calloc(SO_N_REASONS, sizeof(uint64_t))
            self.evictions = <uint64_t *>calloc(SO_N_EVICTIONS, sizeof(uint64_t))
            if self.reasons is NULL or self.evictions is NULL:
                raise MemoryError()
            cfg.reasons = self.reasons
            cfg.evictions = self.evictions
            self.net = so_net_new(cfg)
            if self.net is NULL:
                raise MemoryError()
        finally:
            free(cfg)
        self._reasons_into = reasons
        self._evictions_into = evictions
        self._out = []

    def __dealloc__(self):
        so_net_free(self.net)
        free(self.reasons)
        free(self.evictions)

    cdef list _finish(self):
        merge_counts(self.reasons, SO_N_REASONS, REASON_SLUGS, self._reasons_into)
        merge_counts(self.evictions, SO_N_EVICTIONS, EVICTION_SLUGS, self._evictions_into)
        out = self._out
        self._out = []
        if self._exc is not None:
            exc = self._exc
            self._exc = None
            raise exc
        return out

    def feed(self, int64_t ts_ns, uint32_t linktype, const uint8_t[::1] data):
        so_net_feed(self.net, ts_ns, linktype, _buf_ptr(data), data.shape[0])
        return self._finish()

    def handle_timer(self, int64_t now_ns):
        so_net_handle_timer(self.net, now_ns)
        self._finish()

    def table_sizes(self):
        return {"fragments": so_net_fragment_sets(self.net), "tcp_flows": so_net_tcp_flows(self.net)}

    @property
    def tcp_held_bytes(self):
        return so_net_tcp_held_bytes(self.net)

    @property
    def fragment_memory(self):
        return so_net_fragment_memory(self.net)

    def memory(self):
        """The memory budget: bytes charged per table, and ``limit``."""
        return mem_dict(so_net_mem(self.net))

    def entry_sizes(self):
        """Bytes the budget charges per flow entry, fragment set and piece slot (tests)."""
        return {"flow": so_net_entry_size(self.net, 0), "fragment_set": so_net_entry_size(self.net, 1),
                "piece": so_net_entry_size(self.net, 2)}


def link_decode(uint32_t linktype, const uint8_t[::1] data):
    """The link layer alone: (ethertype, offset, end) of the IP packet inside, or DecodeError."""
    cdef so_l3 l
    r = so_link_decode(linktype, _buf_ptr(data), data.shape[0], &l)
    if r != SO_NET_OK:
        raise _NetDecodeError(REASON_SLUGS[r])
    return (l.etype, l.off, l.end)


# ---- fragment reassembly on its own (tests of the table) -----------------------------------------

cdef class FragmentReassembler:
    """so_frag_table: one fragment at a time, the completed datagram returned."""

    cdef so_frag_table table
    cdef so_net_limits limits
    cdef so_mem mem  # charged, never enforced (the table alone has no outer call)
    cdef uint64_t *reasons
    cdef uint64_t *evictions
    cdef dict _reasons_into
    cdef dict _evictions_into

    def __cinit__(self, dict reasons, dict evictions, dict limits):
        so_net_limits_default(&self.limits)
        so_mem_init(&self.mem, 0)
        so_frag_init(&self.table, &self.limits, _random_seed(), NULL, NULL, &self.mem)
        _limits_from(&self.limits, limits)
        so_frag_init(&self.table, &self.limits, _random_seed(), NULL, NULL, &self.mem)
        self.reasons = <uint64_t *>calloc(SO_N_REASONS, sizeof(uint64_t))
        self.evictions = <uint64_t *>calloc(SO_N_EVICTIONS, sizeof(uint64_t))
        if self.reasons is NULL or self.evictions is NULL:
            raise MemoryError()
        self.table.reasons = self.reasons
        self.table.evictions = self.evictions
        self._reasons_into = reasons
        self._evictions_into = evictions

    def __dealloc__(self):
        so_frag_free(&self.table)
        free(self.reasons)
        free(self.evictions)

    def add(self, tuple key, int64_t ts_ns, uint32_t offset, bint more,
            const uint8_t[::1] payload, int proto):
        cdef so_frag_key k
        cdef bytes src = key[0]
        cdef bytes dst = key[1]
        if len(src) not in (4, 16) or len(dst) != len(src):
            raise ValueError("addresses are 4 or 16 bytes")
        memset(&k, 0, sizeof(k))
        memcpy(k.src, <const char *>src, len(src))
        memcpy(k.dst, <const char *>dst, len(dst))
        k.ip_len = len(src)
        k.ident = key[2]
        k.proto = key[3] if len(key) > 3 else -1
        cdef uint8_t *out = NULL
        cdef size_t out_len = 0
        cdef int out_proto = 0
        done = so_frag_add(&self.table, &k, ts_ns, offset, more, _buf_ptr(payload),
                           payload.shape[0], proto, &out, &out_len, &out_proto)
        merge_counts(self.reasons, SO_N_REASONS, REASON_SLUGS, self._reasons_into)
        merge_counts(self.evictions, SO_N_EVICTIONS, EVICTION_SLUGS, self._evictions_into)
        if not done:
            return None
        try:
            return (out_proto, PyBytes_FromStringAndSize(<const char *>out, out_len))
        finally:
            free(out)

    def expire(self, int64_t now_ns):
        so_frag_expire(&self.table, now_ns)
        merge_counts(self.evictions, SO_N_EVICTIONS, EVICTION_SLUGS, self._evictions_into)

    def __len__(self):
        return so_frag_count(&self.table)

    @property
    def memory(self):
        return self.table.memory


# ---- stream framers -------------------------------------------------------------------------------

cdef void _framer_emit(void *ctx, const uint8_t *msg, uint32_t len) noexcept:
    cdef _StreamFramerBase self = <_StreamFramerBase>ctx
    if self._exc is not None:
        return
    try:
        if msg == self._in_ptr and len == self._in_len and self._in_bytes is not None:
            self._out.append(self._in_bytes)  # the whole segment: the same object, no copy
        else:
            self._out.append(PyBytes_FromStringAndSize(<const char *>msg, len))
    except BaseException as e:
        self._exc = e


cdef class _StreamFramerBase:
    cdef so_framer_env env
    cdef void *st
    cdef list _out
    cdef object _exc
    cdef dict _reasons_into
    cdef object _in_bytes  # the bytes object being fed, if it is one
    cdef const uint8_t *_in_ptr
    cdef size_t _in_len

    cdef _setup(self, dict reasons, object max_message_bytes, size_t state_size):
        self.env.reasons = <uint64_t *>calloc(SO_N_REASONS, sizeof(uint64_t))
        self.st = calloc(1, state_size)
        if self.env.reasons is NULL or self.st is NULL:
            raise MemoryError()
        self.env.max_message = <uint32_t>_clamp(max_message_bytes, 0xFFFFFFFF)
        self.env.emit = _framer_emit
        self.env.emit_ctx = <void *>self
        self._reasons_into = reasons
        self._out = []

    cdef list _finish(self):
        merge_counts(self.env.reasons, SO_N_REASONS, REASON_SLUGS, self._reasons_into)
        self._in_bytes = None
        self._in_ptr = NULL
        out = self._out
        self._out = []
        if self._exc is not None:
            exc = self._exc
            self._exc = None
            raise exc
        return out


cdef class SipStreamFramer(_StreamFramerBase):
    """The SIP stream framer (so_sip_framer_ops): in-order bytes in, SIP messages out."""

    def __cinit__(self, dict reasons, max_message_bytes):
        self._setup(reasons, max_message_bytes, net_sip_framer_ops.state_size)
        net_sip_framer_ops.init(self.st)

    def __dealloc__(self):
        if self.st is not NULL:
            net_sip_framer_ops.destroy(self.st)
        free(self.st)
        free(self.env.reasons)

    def feed(self, data):
        cdef const uint8_t[::1] view = data
        self._in_ptr = _buf_ptr(view)
        self._in_len = view.shape[0]
        self._in_bytes = data if type(data) is bytes else None
        net_sip_framer_ops.feed(self.st, self._in_ptr, self._in_len, &self.env)
        return self._finish()

    def reset(self):
        net_sip_framer_ops.reset(self.st)

    def close(self):
        net_sip_framer_ops.close(self.st, &self.env)
        self._finish()

    def pending(self):
        return net_sip_framer_ops.pending(self.st)


cdef class WebSocketStreamFramer(_StreamFramerBase):
    """The WebSocket framer of RFC 7118 flows: in-order bytes in, SIP messages out."""

    def __cinit__(self, dict reasons, max_message_bytes, bint response):
        self._setup(reasons, max_message_bytes, sizeof(so_ws))
        so_ws_init(<so_ws *>self.st, response)

    def __dealloc__(self):
        if self.st is not NULL:
            so_ws_destroy(<so_ws *>self.st)
        free(self.st)
        free(self.env.reasons)

    def feed(self, const uint8_t[::1] data):
        so_ws_feed(<so_ws *>self.st, _buf_ptr(data), data.shape[0], &self.env)
        return self._finish()

    def reset(self):
        so_ws_reset(<so_ws *>self.st)

    def close(self):
        so_ws_close(<so_ws *>self.st, &self.env)
        self._finish()

    def pending(self):
        return so_ws_pending(<so_ws *>self.st)


def looks_like_sip(const uint8_t[::1] data, Py_ssize_t pos=0, Py_ssize_t endpos=0x7FFFFFFFFFFFFFFF):
    """Whether data[pos:endpos] starts with a SIP request line or status line."""
    cdef Py_ssize_t n = data.shape[0]
    if pos < 0:
        pos = 0
    if endpos > n:
        endpos = n
    if endpos < pos:
        return False
    return net_looks_like_sip(_buf_ptr(data) + pos, <size_t>(endpos - pos))


def is_sip_upgrade(const uint8_t[::1] data, Py_ssize_t off, Py_ssize_t end):
    """Whether data[off:end] starts an HTTP GET upgrading to WebSocket with protocol sip."""
    cdef Py_ssize_t n = data.shape[0]
    if end > n:
        end = n
    if off < 0 or end < off:
        return False
    return so_ws_is_sip_upgrade(_buf_ptr(data), <size_t>off, <size_t>end)


# ---- capture files --------------------------------------------------------------------------------

cdef void _cursor_frame(void *ctx, int64_t ts_ns, uint32_t linktype, const uint8_t *data,
                        size_t len, uint32_t ifindex) noexcept:
    cdef PcapCursor self = <PcapCursor>ctx
    if self._exc is not None:
        return
    try:
        self._out.append(_Frame(ts_ns, linktype,
                                PyBytes_FromStringAndSize(<const char *>data, len), ifindex))
    except BaseException as e:
        self._exc = e


cdef class PcapCursor:
    """Record iteration of a classic pcap or pcapng file held in memory (so_pcap). ``pc`` is
    public at C level for the pipeline part of the binding (so_pcap_next with its own frame
    callback); ``buffer`` owns the bytes and must stay open until release() or refill().

    ``buffer`` is the whole file, or with ``final`` false its first region: state 3 (need)
    then asks for the next one (:meth:`refill`) with the bytes from ``region_offset`` on and
    at least ``need`` bytes in all."""

    cdef so_pcap pc
    cdef const uint8_t[::1] view
    cdef int open_error
    cdef so_pcap_status status
    cdef list _out
    cdef object _exc

    def __cinit__(self, buffer, bint final=True):
        self.view = buffer
        self.open_error = so_pcap_open(&self.pc, _buf_ptr(self.view), self.view.shape[0])
        self.pc.final = final
        self.status = SO_PCAP_ERROR if self.open_error else SO_PCAP_MORE
        self._out = []

    def refill(self, buffer, uint64_t base, bint final):
        """The next region of the file, starting at file offset ``base``."""
        self.view = buffer
        so_pcap_refill(&self.pc, _buf_ptr(self.view), self.view.shape[0], base, final)
        if self.status == SO_PCAP_NEED:
            self.status = SO_PCAP_MORE

    def __dealloc__(self):
        so_pcap_close(&self.pc)

    def release(self):
        """Drop the reference to the buffer (an mmap cannot close while it is exported)."""
        so_pcap_close(&self.pc)
        self.pc.buf = NULL
        self.pc.size = 0
        self.pc.off = 0
        self.view = None
        self.status = SO_PCAP_END

    def next_batch(self, size_t max_frames):
        """Up to max_frames frames (list[Frame]); then ``status`` tells MORE, END, ERROR or
        NEED."""
        if self.status != SO_PCAP_MORE:
            return []
        self.status = so_pcap_next(&self.pc, max_frames, _cursor_frame, <void *>self)
        out = self._out
        self._out = []
        if self._exc is not None:
            exc = self._exc
            self._exc = None
            raise exc
        return out

    @property
    def state(self):
        """0: more frames may follow, 1: end of file, 2: error (error_message tells), 3: the
        next region is needed (refill)."""
        return <int>self.status

    @property
    def offset(self):
        """File offset of the next record."""
        return self.pc.base + self.pc.off

    @property
    def region_offset(self):
        """Offset of the next record in the current region."""
        return self.pc.off

    @property
    def need(self):
        """State 3: the bytes from region_offset the next record needs at least."""
        return self.pc.need

    @property
    def timestamp_range(self):
        """Frames dropped so far: time outside 0..INT64_MAX ns (pcap.timestamp_range)."""
        return self.pc.ts_range

    @property
    def pcapng(self):
        return bool(self.pc.pcapng)

    @property
    def error_progress(self):
        """The byte offset the pure-Python reader reported as progress at this error, or None
        where it left progress where it was."""
        kind = self.pc.err_kind
        if kind == SO_PCAP_E_RECORD_HEADER or kind == SO_PCAP_E_RECORD_LENGTH:
            return self.pc.err_off
        if kind == SO_PCAP_E_RECORD_DATA:
            return self.pc.base + self.pc.size
        return None

    cdef str error_message(self, str path):
        """CaptureFileError's sentence for the error so_pcap stopped at."""
        cdef size_t off = self.pc.err_off
        cdef uint64_t a = self.pc.err_a
        cdef uint64_t b = self.pc.err_b
        kind = self.pc.err_kind
        if kind == SO_PCAP_E_MAGIC:
            head = bytes(self.view[:4]) if self.view is not None else b""
            return f"{path}: not a pcap or pcapng file (magic {head.hex() or 'missing'})"
        if kind == SO_PCAP_E_FILE_HEADER:
            return f"{path}: truncated pcap file header ({a} of 24 bytes)"
        if kind == SO_PCAP_E_RECORD_HEADER:
            return (f"{path}: truncated record header at offset {off} ({a} of 16 bytes); "
                    "the file was cut short")
        if kind == SO_PCAP_E_RECORD_LENGTH:
            return (f"{path}: corrupt record at offset {off}: captured length {a} exceeds the "
                    f"snapshot length {b}")
        if kind == SO_PCAP_E_RECORD_DATA:
            return (f"{path}: truncated packet at offset {off} ({a} of {b} bytes); "
                    "the file was cut short")
        if kind == SO_PCAP_E_BLOCK_HEADER:
            return f"{path}: truncated block header at offset {off}; the file was cut short"
        if kind == SO_PCAP_E_BYTE_ORDER:
            return f"{path}: bad byte-order magic at offset {off}"
        if kind == SO_PCAP_E_BLOCK_CUT or kind == SO_PCAP_E_BLOCK_CORRUPT:
            what = "cut short" if kind == SO_PCAP_E_BLOCK_CUT else "corrupt"
            return f"{path}: {what} block at offset {off} (type {a:#x}, length {b})"
        if kind == SO_PCAP_E_EPB:
            return (f"{path}: corrupt packet block at offset {off} (interface {a}, "
                    f"captured length {b})")
        if kind == SO_PCAP_E_SPB:
            return f"{path}: packet block before any interface at {off}"
        if kind == SO_PCAP_E_PB:
            return f"{path}: corrupt packet block at offset {off}"
        if kind == SO_PCAP_E_SHORT_PACKET:
            return (f"{path}: corrupt packet block at offset {off}: block length {b} is shorter "
                    f"than the 32 bytes of its fixed fields (type {a:#x})")
        if kind == SO_PCAP_E_NO_MEMORY:
            return f"{path}: out of memory reading the interfaces at offset {off}"
        return f"{path}: unreadable capture file"

    def error_text(self, str path):
        """Python access to error_message."""
        return self.error_message(path)
