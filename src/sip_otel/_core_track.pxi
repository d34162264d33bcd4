# The tracker part of the binding: transactions, dialogs, registrations and the RFC 6076
# aggregation (so_track.h, so_stats.h), as used by the pipeline and, message by message, by the
# Python views in sip/ (tests and tools hand-build SipMessage objects).

from cpython.bytes cimport PyBytes_AS_STRING

cdef extern from "so_hash.h":
    ctypedef struct so_h128:
        uint64_t a
        uint64_t b

cdef extern from "so_track.h":
    ctypedef struct so_track_config:
        int64_t t1_ns
        int64_t session_expires_default_s
        int64_t expiry_check_ns
        bint challenge_retry_is_new_attempt
        uint32_t max_transactions
        uint32_t max_dialogs
        uint32_t max_registrations
        uint32_t max_invite_attempts
        uint32_t max_register_attempts
        int64_t invite_proceeding_timeout_ns
        int64_t register_expires_default_s
        bint want_records
        so_h128 seed
        uint64_t memory_limit
    void so_track_config_default(so_track_config *cfg)

    enum:
        SO_N_OUTCOMES
        SO_N_DIALOG_OUTCOMES
        SO_N_REVENTS
        SO_MAX_SRD_SAMPLES
    const char *so_outcome_names[]
    const char *so_revent_names[]

    ctypedef struct so_revent:
        int64_t ts_ns
        uint8_t name
        uint8_t method
        uint16_t status

    ctypedef struct so_record:
        bint registration
        uint8_t outcome
        uint16_t final_status
        int64_t start_ns, end_ns
        bint has_delay
        int64_t delay_ns
        bint has_sdt
        int64_t sdt_ns
        bint challenged
        uint8_t transport
        uint8_t ip_len
        uint16_t sport, dport
        uint8_t src[16]
        uint8_t dst[16]
        so_slice call_id, from_uri, to_uri, from_tag, to_tag, user_agent, session_id, correlation
        so_revent *events
        uint32_t n_events, events_dropped

    ctypedef enum so_event_kind:
        SO_EV_RETRANSMISSION
        SO_EV_ORPHAN_RESPONSE
        SO_EV_TXN_TIMEOUT
        SO_EV_ATTEMPT_ENDED
        SO_EV_FORKED
        SO_EV_SESSION_ENDED
        SO_EV_REINVITE
        SO_EV_REGISTRATION_ENDED

    ctypedef struct so_event:
        uint8_t kind
        uint8_t outcome
        uint8_t timer
        uint8_t method
        bint is_request
        bint sdd_ok, completes, has_sdt, has_sdd, has_rrd
        uint16_t status
        uint8_t n_srd
        int64_t ts_ns
        int64_t srd_ns[17]
        int64_t sdt_ns, sdd_ns, rrd_ns
        int32_t record
        so_slice method_tok
        uint32_t txn_slot, txn_gen

    ctypedef struct so_track:
        pass
    so_track *so_track_new(const so_track_config *cfg, uint64_t *reasons, uint64_t *evictions)
    void so_track_free(so_track *t)
    void so_track_handle(so_track *t, const so_msg *msg)
    void so_track_timer(so_track *t, int64_t now_ns)
    void so_track_finish(so_track *t, int64_t now_ns)
    const so_event *so_track_events(const so_track *t, size_t *n)
    so_record *so_track_records(so_track *t, size_t *n)
    void so_track_clear_events(so_track *t)
    void so_track_clear_records(so_track *t)
    ctypedef struct so_track_gauges:
        uint64_t sessions, early_dialogs, registrations, transactions, transactions_tracked
        uint64_t invite_attempts, register_attempts
    void so_track_gauges_get(const so_track *t, so_track_gauges *g)
    const so_mem *so_track_mem(const so_track *t)
    size_t so_track_entry_size(int which)

cdef extern from "so_stats.h":
    enum:
        SO_N_DELAY_BOUNDS
        SO_N_DURATION_BOUNDS
        SO_MAX_METHOD_NAMES
    const char *SO_OTHER_METHOD_NAME
    const double so_delay_bounds[]
    const double so_duration_bounds[]
    ctypedef struct so_hist:
        const double *bounds
        uint32_t n_bounds
        uint64_t counts[19]
        double total
        uint64_t count
        double min, max
    ctypedef struct so_rfc6076:
        uint64_t invite_attempts, invite_3xx, invite_success, invite_effective
        uint64_t invite_ineffective, sessions_completed
        uint64_t register_attempts, register_ineffective, register_success
        so_hist srd_success, srd_failure, sdd_success, sdd_failure, sdt, sdt_failure, rrd
    ctypedef struct so_names:
        uint8_t **names
        uint32_t *lens
        uint64_t *requests
        uint64_t *retransmissions
        uint32_t n
        uint64_t *code_counts
        uint32_t *code_keys
        uint32_t n_codes
    ctypedef struct so_stats:
        uint64_t frames, bytes, messages
        uint64_t requests[16]
        uint64_t responses[700]
        uint64_t responses_by_method[700][16]
        uint64_t retransmissions[16]
        uint64_t reinvites
        uint64_t dialog_outcomes[11]
        uint64_t register_failures[700]
        so_rfc6076 rfc
        so_names other
    void so_stats_init(so_stats *s, so_h128 seed)
    void so_stats_free(so_stats *s)
    void so_stats_message(so_stats *s, const so_msg *m)
    void so_stats_event(so_stats *s, const so_event *ev)

cdef extern from "so_track_int.h":
    # transaction-layer view for sip/transactions.py
    ctypedef enum so_verdict:
        SO_V_NEW
        SO_V_RETRANSMISSION
        SO_V_ORPHAN
    so_verdict so_txn_request(so_track *t, const so_msg *m, uint32_t *txn, uint32_t *related)
    so_verdict so_txn_response(so_track *t, const so_msg *m, uint32_t *txn, c_bool *first_final)

import os as _os

from sip_otel.records import DialogRecord, MediaStream, RecordEvent, RegistrationRecord
from sip_otel.net.types import format_ip

OUTCOME_NAMES = _slugs(so_outcome_names, SO_N_OUTCOMES)
REVENT_NAMES = _slugs(so_revent_names, SO_N_REVENTS)
DIALOG_OUTCOME_NAMES = OUTCOME_NAMES[:SO_N_DIALOG_OUTCOMES]
METHOD_NAMES = tuple([so_method_names[i].decode() for i in range(SO_N_METHODS - 1)])
DELAY_BOUNDS = tuple([so_delay_bounds[i] for i in range(SO_N_DELAY_BOUNDS)])
DURATION_BOUNDS = tuple([so_duration_bounds[i] for i in range(SO_N_DURATION_BOUNDS)])
_OUTCOME_CODES = {name: i for i, name in enumerate(OUTCOME_NAMES)}


cdef so_h128 random_seed():
    cdef so_h128 seed
    raw = _os.urandom(16)
    seed.a = int.from_bytes(raw[:8], "little")
    seed.b = int.from_bytes(raw[8:], "little")
    return seed


cdef void track_config(so_track_config *cfg, object config, bint want_records,
                       bint fixed_seed=False):
    """A TrackerConfig (sip/tracker.py) as the C configuration. ``fixed_seed``: the default
    key seed (views for tests compare keys across tables), else a random one."""
    so_track_config_default(cfg)
    cfg.t1_ns = config.t1_ns
    cfg.session_expires_default_s = config.session_expires_default_s
    cfg.expiry_check_ns = config.expiry_check_ns
    cfg.challenge_retry_is_new_attempt = config.challenge_retry_is_new_attempt
    cfg.max_transactions = config.max_transactions
    cfg.max_dialogs = config.max_dialogs
    cfg.max_registrations = config.max_registrations
    cfg.max_invite_attempts = config.max_invite_attempts
    cfg.max_register_attempts = config.max_register_attempts
    cfg.invite_proceeding_timeout_ns = config.invite_proceeding_timeout_ns
    cfg.register_expires_default_s = config.register_expires_default_s
    cfg.want_records = want_records
    cfg.memory_limit = config.memory_limit
    if not fixed_seed:
        cfg.seed = random_seed()


cdef str method_name(uint8_t method, so_slice tok):
    if method == SO_M_OTHER:
        return slice_str(tok)
    return so_method_names[method].decode()


cdef str endpoint(const uint8_t *ip, uint8_t ip_len, uint16_t port):
    return f"{format_ip((<const char *>ip)[:ip_len])}:{port}"


cdef object make_record(so_record *r):
    """A finished attempt/dialog/registration as the Python record telemetry turns into a span."""
    transport = src = dst = ""
    if r.transport:
        transport = "udp" if r.transport == SO_PROTO_UDP else "tcp"
        src = endpoint(r.src, r.ip_len, r.sport)
        dst = endpoint(r.dst, r.ip_len, r.dport)
    outcome = OUTCOME_NAMES[r.outcome]
    delay = (<double>r.delay_ns) / 1e9 if r.has_delay else None
    if r.registration:
        return RegistrationRecord(
            slice_str(r.to_uri), slice_str(r.call_id), r.start_ns, r.end_ns, outcome,
            r.final_status, transport, src, dst, delay, r.challenged,
        )
    cdef uint32_t i
    events = []
    for i in range(r.n_events):
        ev = r.events[i]
        events.append(RecordEvent(ev.ts_ns, REVENT_NAMES[ev.name], ev.status,
                                  so_method_names[ev.method].decode() if ev.method else ""))
    return DialogRecord(
        slice_str(r.call_id), slice_str(r.from_uri), slice_str(r.to_uri), slice_str(r.from_tag),
        slice_str(r.to_tag), r.start_ns, r.end_ns, outcome, r.final_status, transport, src, dst,
        delay, (<double>r.sdt_ns) / 1e9 if r.has_sdt else None, slice_str(r.user_agent), events,
        r.events_dropped, slice_str(r.session_id), slice_str(r.correlation),
    )


cdef class MsgIn:
    """A SipMessage (Python) laid out as an so_msg, with the bytes it points to kept alive."""
    cdef so_msg m
    cdef so_payload origin
    cdef list keep

    cdef so_slice _s(self, str text):
        cdef so_slice s
        cdef bytes b = text.encode("utf-8", "surrogateescape")
        self.keep.append(b)
        s.p = <const uint8_t *>PyBytes_AS_STRING(b)
        s.n = len(b)
        return s

    def __init__(self, msg):
        self.keep = []
        memset(&self.m, 0, sizeof(so_msg))
        m = &self.m
        m.ts_ns = msg.ts_ns
        m.is_request = msg.is_request
        m.method_tok = self._s(msg.method)
        m.method = so_method_of(m.method_tok.p, m.method_tok.n) if m.method_tok.n else SO_M_NONE
        m.status = msg.status
        m.call_id = self._s(msg.call_id)
        m.from_uri = self._s(msg.from_uri)
        m.from_tag = self._s(msg.from_tag)
        m.to_uri = self._s(msg.to_uri)
        m.to_tag = self._s(msg.to_tag)
        m.cseq = msg.cseq
        m.cseq_method_tok = self._s(msg.cseq_method)
        m.via_branch = self._s(msg.via_branch)
        m.via_sent_by = self._s(msg.via_sent_by)
        m.via_transport = self._s(msg.via_transport)
        m.session_expires = -1 if msg.session_expires is None else msg.session_expires
        m.expires = -1 if msg.expires is None else msg.expires
        m.contact_expires = -1 if msg.contact_expires is None else msg.contact_expires
        m.retry_after = -1 if msg.retry_after is None else msg.retry_after
        m.min_se = -1 if msg.min_se is None else msg.min_se
        m.contact_star = msg.contact_star
        m.user_agent = self._s(msg.user_agent)
        m.session_id = self._s(msg.session_id)
        m.correlation = self._s(msg.correlation)
        m.origin = NULL
        o = msg.origin
        if o is not None:
            memset(&self.origin, 0, sizeof(so_payload))
            self.origin.ts_ns = o.ts_ns
            self.origin.transport = o.transport
            self.origin.ip_len = len(o.src_ip)
            self.origin.sport = o.src_port
            self.origin.dport = o.dst_port
            memcpy(self.origin.src, PyBytes_AS_STRING(o.src_ip), min(len(o.src_ip), 16))
            memcpy(self.origin.dst, PyBytes_AS_STRING(o.dst_ip), min(len(o.dst_ip), 16))
            m.origin = &self.origin


cdef void hist_out(so_hist *h, object py):
    """Copy a C histogram into a stats.Histogram."""
    cdef uint32_t i
    py.counts = [h.counts[i] for i in range(h.n_bounds + 1)]
    py.total = h.total
    py.count = h.count
    py.min = h.min
    py.max = h.max


cdef void hist_in(so_hist *h, object py):
    cdef uint32_t i
    for i in range(h.n_bounds + 1):
        h.counts[i] = py.counts[i]
    h.total = py.total
    h.count = py.count
    h.min = py.min
    h.max = py.max


cdef void rfc_out(so_rfc6076 *c, object py):
    py.invite_attempts = c.invite_attempts
    py.invite_3xx = c.invite_3xx
    py.invite_success = c.invite_success
    py.invite_effective = c.invite_effective
    py.invite_ineffective = c.invite_ineffective
    py.sessions_completed = c.sessions_completed
    py.register_attempts = c.register_attempts
    py.register_ineffective = c.register_ineffective
    py.register_success = c.register_success
    hist_out(&c.srd_success, py.srd_success)
    hist_out(&c.srd_failure, py.srd_failure)
    hist_out(&c.sdd_success, py.sdd_success)
    hist_out(&c.sdd_failure, py.sdd_failure)
    hist_out(&c.sdt, py.sdt)
    hist_out(&c.sdt_failure, py.sdt_failure)
    hist_out(&c.rrd, py.rrd)


cdef void rfc_in(so_rfc6076 *c, object py):
    c.invite_attempts = py.invite_attempts
    c.invite_3xx = py.invite_3xx
    c.invite_success = py.invite_success
    c.invite_effective = py.invite_effective
    c.invite_ineffective = py.invite_ineffective
    c.sessions_completed = py.sessions_completed
    c.register_attempts = py.register_attempts
    c.register_ineffective = py.register_ineffective
    c.register_success = py.register_success
    hist_in(&c.srd_success, py.srd_success)
    hist_in(&c.srd_failure, py.srd_failure)
    hist_in(&c.sdd_success, py.sdd_success)
    hist_in(&c.sdd_failure, py.sdd_failure)
    hist_in(&c.sdt, py.sdt)
    hist_in(&c.sdt_failure, py.sdt_failure)
    hist_in(&c.rrd, py.rrd)


cdef void stats_out(so_stats *s, object py, bint messages):
    """Write the C counters into a stats.PipelineStats (what telemetry and reports read)."""
    cdef int i, code
    cdef uint32_t k
    cdef so_names *o = &s.other
    if messages:
        py.frames = s.frames
        py.bytes = s.bytes
        py.messages = s.messages
        req = {}
        for i in range(1, SO_N_METHODS - 1):
            if s.requests[i]:
                req[METHOD_NAMES[i]] = s.requests[i]
        for k in range(o.n):
            if o.requests[k]:
                req[(<const char *>o.names[k])[:o.lens[k]].decode("utf-8", "replace")] = o.requests[k]
        if s.requests[<int>SO_M_OTHER]:
            req[SO_OTHER_METHOD_NAME.decode()] = s.requests[<int>SO_M_OTHER]
        py.requests = req
        resp = {}
        by_method = {}
        for code in range(700):
            if s.responses[code]:
                resp[code] = s.responses[code]
                for i in range(SO_N_METHODS - 1):
                    if s.responses_by_method[code][i]:
                        by_method[(code, METHOD_NAMES[i])] = s.responses_by_method[code][i]
        for k in range(o.n_codes):
            key = o.code_keys[k]
            name_id = key & 0xFFFF
            if name_id == 0xFFFF or name_id >= o.n:
                name = SO_OTHER_METHOD_NAME.decode()
            else:
                name = (<const char *>o.names[name_id])[:o.lens[name_id]].decode("utf-8", "replace")
            by_method[(key >> 16, name)] = by_method.get((key >> 16, name), 0) + o.code_counts[k]
        py.responses = resp
        py.responses_by_method = by_method
    ret = {}
    for i in range(SO_N_METHODS - 1):
        if s.retransmissions[i]:
            ret[METHOD_NAMES[i]] = s.retransmissions[i]
    for k in range(o.n):
        if o.retransmissions[k]:
            ret[(<const char *>o.names[k])[:o.lens[k]].decode("utf-8", "replace")] = o.retransmissions[k]
    if s.retransmissions[<int>SO_M_OTHER]:
        ret[SO_OTHER_METHOD_NAME.decode()] = s.retransmissions[<int>SO_M_OTHER]
    py.retransmissions = ret
    py.reinvites = s.reinvites
    py.dialog_outcomes = {DIALOG_OUTCOME_NAMES[i]: s.dialog_outcomes[i]
                          for i in range(SO_N_DIALOG_OUTCOMES) if s.dialog_outcomes[i]}
    py.register_failures = {code: s.register_failures[code]
                            for code in range(700) if s.register_failures[code]}
    rfc_out(&s.rfc, py.rfc6076)


cdef class TrackerCore:
    """One tracker with its counters; events come back as the Python event objects of sip/."""
    cdef so_track *t
    cdef so_stats stats
    cdef uint64_t reasons[SO_N_REASONS]
    cdef uint64_t evictions[SO_N_EVICTIONS]
    cdef dict txn_views
    cdef object factory

    def __cinit__(self):
        self.t = NULL

    def __init__(self, config, factory, bint fixed_seed=False):
        """``factory``: how sip/ builds its event objects (sip/tracker.py)."""
        cdef so_track_config cfg
        track_config(&cfg, config, True, fixed_seed)
        memset(self.reasons, 0, sizeof(self.reasons))
        memset(self.evictions, 0, sizeof(self.evictions))
        so_stats_init(&self.stats, cfg.seed)
        self.t = so_track_new(&cfg, self.reasons, self.evictions)
        if self.t == NULL:
            raise MemoryError()
        self.txn_views = {}
        self.factory = factory

    def __dealloc__(self):
        if self.t != NULL:
            so_track_free(self.t)
        so_stats_free(&self.stats)

    cdef list _drain(self, object msg):
        """Fold the events into the counters and turn them (and records) into Python objects."""
        cdef size_t n, nrec, i
        cdef const so_event *evs = so_track_events(self.t, &n)
        cdef so_record *recs = so_track_records(self.t, &nrec)
        records = [make_record(&recs[i]) for i in range(nrec)]
        out = []
        f = self.factory
        for i in range(n):
            ev = &evs[i]
            so_stats_event(&self.stats, ev)
            rec = records[ev.record] if ev.record >= 0 else None
            kind = ev.kind
            if kind == SO_EV_RETRANSMISSION:
                out.append(f.retransmission(method_name(ev.method, ev.method_tok), ev.is_request,
                                            ev.status))
            elif kind == SO_EV_ORPHAN_RESPONSE:
                out.append(f.orphan(msg))
            elif kind == SO_EV_TXN_TIMEOUT:
                out.append(f.timeout(self._txn_view(ev.txn_slot, ev.txn_gen, ev.method),
                                     chr(ev.timer), ev.ts_ns))
            elif kind == SO_EV_ATTEMPT_ENDED:
                srd = tuple([ev.srd_ns[j] for j in range(ev.n_srd)])
                out.append(f.attempt_ended(OUTCOME_NAMES[ev.outcome], ev.status,
                                           chr(ev.timer) if ev.timer else "", srd, rec))
            elif kind == SO_EV_FORKED:
                out.append(f.forked(ev.srd_ns[0]))
            elif kind == SO_EV_SESSION_ENDED:
                out.append(f.session_ended(OUTCOME_NAMES[ev.outcome],
                                           ev.sdt_ns if ev.has_sdt else None,
                                           ev.sdd_ns if ev.has_sdd else None, ev.sdd_ok,
                                           ev.completes, rec))
            elif kind == SO_EV_REINVITE:
                out.append(f.reinvite())
            elif kind == SO_EV_REGISTRATION_ENDED:
                out.append(f.registration_ended(OUTCOME_NAMES[ev.outcome], ev.status,
                                                ev.rrd_ns if ev.has_rrd else None, rec))
        so_track_clear_events(self.t)
        so_track_clear_records(self.t)
        return out

    cdef object _txn_view(self, uint32_t slot, uint32_t gen, uint8_t method):
        key = (slot, gen)
        cdef so_txn_brief b
        view = self.txn_views.get(key)
        if view is None:
            so_txn_brief_get(self.t, slot, &b)
            view = self.factory.transaction(self, key, (b.key_a, b.key_b),
                                            so_method_names[method].decode()
                                            if method != SO_M_OTHER else "")
            self.txn_views[key] = view
        return view

    def handle(self, msg):
        cdef MsgIn m = MsgIn(msg)
        so_track_handle(self.t, &m.m)
        return self._drain(msg)

    def handle_timer(self, int64_t now_ns):
        so_track_timer(self.t, now_ns)
        return self._drain(None)

    def finish(self, int64_t now_ns):
        so_track_finish(self.t, now_ns)
        return self._drain(None)

    def gauges(self):
        cdef so_track_gauges g
        so_track_gauges_get(self.t, &g)
        return {
            "sessions": g.sessions, "early_dialogs": g.early_dialogs,
            "registrations": g.registrations, "transactions": g.transactions,
            "transactions_tracked": g.transactions_tracked,
            "invite_attempts": g.invite_attempts, "register_attempts": g.register_attempts,
        }

    def memory(self):
        """The memory budget: bytes charged per table, and ``limit``."""
        return mem_dict(so_track_mem(self.t))

    def machine_hits(self):
        """How often each state-machine row was taken: {(machine, state, input): count}."""
        cdef so_track_hits h
        cdef int i
        so_track_hits_get(self.t, &h)
        rows = machine_rows()
        return {(r[0], r[1], r[2]): h.hits[i] for i, r in enumerate(rows)}

    def take_evictions(self):
        """Eviction counts since the last call."""
        out = {}
        merge_counts(self.evictions, SO_N_EVICTIONS, EVICTION_SLUGS, out)
        return out

    def request_key(self, msg, str method):
        cdef MsgIn m = MsgIn(msg)
        cdef bytes tok = method.encode("utf-8", "surrogateescape")
        cdef so_slice s
        s.p = <const uint8_t *>PyBytes_AS_STRING(tok)
        s.n = len(tok)
        k = so_txn_request_key(self.t, &m.m, s)
        return (k.a, k.b)

    def sync(self, stats, reasons):
        """Counters into a PipelineStats (tracker parts) and reason counts into a Reasons."""
        stats_out(&self.stats, stats, False)
        stats.evictions = counts_dict(self.evictions, SO_N_EVICTIONS, EVICTION_SLUGS)
        merge_counts(self.reasons, SO_N_REASONS, REASON_SLUGS, reasons.counts)

    # -- the transaction layer alone (sip/transactions.py) -----------------------------------

    def txn_request(self, msg):
        """(verdict, txn view, related view) of a request: 0 new, 1 retransmission."""
        cdef MsgIn m = MsgIn(msg)
        cdef uint32_t txn = 0xFFFFFFFF, related = 0xFFFFFFFF
        v = so_txn_request(self.t, &m.m, &txn, &related)
        return v, self._view(txn), self._view(related)

    def txn_response(self, msg):
        """(verdict, txn view, first final) of a response: 0 new, 1 retransmission, 2 orphan."""
        cdef MsgIn m = MsgIn(msg)
        cdef uint32_t txn = 0xFFFFFFFF
        cdef c_bool first_final = False
        v = so_txn_response(self.t, &m.m, &txn, &first_final)
        return v, self._view(txn), first_final

    cdef object _view(self, uint32_t slot):
        if slot == 0xFFFFFFFF:
            return None
        info = self.txn_info(slot)
        return self._txn_view(slot, info[1], info[0])

    cdef tuple txn_info(self, uint32_t slot):
        # (method, gen) of a live transaction slot; defined in C below
        cdef so_txn_brief b
        so_txn_brief_get(self.t, slot, &b)
        return (b.method, b.gen)

    def txn_state(self, view_key):
        """(state, final status, live) of a transaction view."""
        cdef so_txn_brief b
        cdef uint32_t slot = view_key[0]
        so_txn_brief_get(self.t, slot, &b)
        live = b.live and b.gen == view_key[1]
        return (b.state, b.final_status, live)

    def txn_keys(self):
        """Keys of the transactions in table order (hashes: tests compare them)."""
        return so_txn_keys_list(self.t)


_TRACK_SIZE_NAMES = ("transaction", "attempt", "attempt_entry", "pending", "dialog",
                     "register_attempt", "register_entry", "active", "attempt_record", "record",
                     "record_event", "record_estimate", "event_estimate")


def track_entry_sizes():
    """Bytes the memory budget charges per tracker entry (tests compute expected use from
    these and the entries they know are kept)."""
    return {name: so_track_entry_size(i) for i, name in enumerate(_TRACK_SIZE_NAMES)}
