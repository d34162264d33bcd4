# Views of the tracker's pieces for tests and tools (sip/transactions.py, rfc6076.aggregate):
# the transaction table's keys, the RFC 6076 fold of one event, the deadline queue, the rows of
# the state machines. Nothing here runs per packet.

cdef extern from "so_track_int.h":
    ctypedef struct so_txn_brief:
        uint8_t method
        uint8_t state
        uint16_t final_status
        uint32_t gen
        bint live
        uint64_t key_a, key_b
    void so_txn_brief_get(const so_track *t, uint32_t slot, so_txn_brief *out)
    so_h128 so_txn_request_key(const so_track *t, const so_msg *m, so_slice method)
    const char *so_txn_state_names[]
    enum:
        SO_TXN_N_STATES
    uint32_t so_txn_first(const so_track *t)
    uint32_t so_txn_next(const so_track *t, uint32_t slot)


cdef list so_txn_keys_list(so_track *t):
    cdef so_txn_brief b
    out = []
    slot = so_txn_first(t)
    while slot != 0xFFFFFFFF:
        so_txn_brief_get(t, slot, &b)
        out.append((b.key_a, b.key_b))
        slot = so_txn_next(t, slot)
    return out


def fold_rfc6076(counters, uint8_t kind, str outcome, int status, str timer, tuple samples,
                 object sdt_ns, object sdd_ns, bint sdd_ok, bint completes, object rrd_ns):
    """Fold one event into an Rfc6076Counters with the C rules (rfc6076.aggregate)."""
    cdef so_stats s
    cdef so_event ev
    cdef int j
    so_stats_init(&s, random_seed())
    try:
        rfc_in(&s.rfc, counters)
        memset(&ev, 0, sizeof(so_event))
        ev.kind = kind
        ev.outcome = _OUTCOME_CODES.get(outcome, 255)
        ev.status = status
        ev.timer = ord(timer[0]) if timer else 0
        ev.n_srd = min(len(samples), SO_MAX_SRD_SAMPLES)
        for j in range(ev.n_srd):
            ev.srd_ns[j] = samples[j]
        ev.has_sdt = sdt_ns is not None
        ev.sdt_ns = sdt_ns if sdt_ns is not None else 0
        ev.has_sdd = sdd_ns is not None
        ev.sdd_ns = sdd_ns if sdd_ns is not None else 0
        ev.sdd_ok = sdd_ok
        ev.completes = completes
        ev.has_rrd = rrd_ns is not None
        ev.rrd_ns = rrd_ns if rrd_ns is not None else 0
        ev.record = -1
        so_stats_event(&s, &ev)
        rfc_out(&s.rfc, counters)
    finally:
        so_stats_free(&s)


EV_ATTEMPT_ENDED = SO_EV_ATTEMPT_ENDED
EV_FORKED = SO_EV_FORKED
EV_SESSION_ENDED = SO_EV_SESSION_ENDED
EV_REGISTRATION_ENDED = SO_EV_REGISTRATION_ENDED


TXN_STATE_NAMES = _slugs(so_txn_state_names, SO_TXN_N_STATES)
_KEY_TRACKER = None


def txn_key(msg, str method):
    """The transaction key of ``msg`` under ``method`` (the default seed: as the views' tables)."""
    global _KEY_TRACKER
    if _KEY_TRACKER is None:
        from sip_otel.sip.tracker import TrackerConfig, event_factory
        _KEY_TRACKER = TrackerCore(TrackerConfig(), event_factory, fixed_seed=True)
    return _KEY_TRACKER.request_key(msg, method)


def is_failure_final(int status):
    """RFC 6076 §4.2/§4.3.2: a final 4xx other than 401/402/407, or a 5xx/6xx."""
    return so_is_failure_final(status)


cdef extern from "so_stats.h":
    bint so_is_failure_final(int status)

cdef extern from "so_dq.h":
    ctypedef struct so_dq_item:
        int64_t deadline
        uint64_t seq
        uint64_t a, b
        uint32_t kind
    ctypedef struct so_dq:
        pass
    void so_dq_init(so_dq *q)
    void so_dq_free(so_dq *q)
    bint so_dq_push(so_dq *q, int64_t deadline, uint32_t kind, uint64_t a, uint64_t b)
    bint so_dq_push_in_order(so_dq *q, int64_t deadline, uint32_t kind, uint64_t a, uint64_t b)
    bint so_dq_next_due(const so_dq *q, int64_t *deadline)
    bint so_dq_due(const so_dq *q, int64_t now)
    bint so_dq_pop_due(so_dq *q, int64_t now, so_dq_item *out)
    size_t so_dq_len(const so_dq *q)
    bint so_dq_rebuild(so_dq *q, const so_dq_item *items, size_t n)


cdef class DeadlineQueue:
    """The tracker's deadline queue (FIFO for in-order deadlines + heap), holding Python
    items: pops come in (deadline, push order) order across both."""
    cdef so_dq q
    cdef dict items
    cdef uint64_t next_id

    def __cinit__(self):
        so_dq_init(&self.q)
        self.items = {}
        self.next_id = 0

    def __dealloc__(self):
        so_dq_free(&self.q)

    cdef uint64_t _keep(self, object item):
        self.next_id += 1
        self.items[self.next_id] = item
        return self.next_id

    def push(self, int64_t deadline_ns, item):
        if not so_dq_push(&self.q, deadline_ns, 0, self._keep(item), 0):
            raise MemoryError()

    def push_in_order(self, int64_t deadline_ns, item):
        """Like push, for deadlines usually at or after every earlier one (O(1))."""
        if not so_dq_push_in_order(&self.q, deadline_ns, 0, self._keep(item), 0):
            raise MemoryError()

    def next_due(self):
        cdef int64_t d
        return d if so_dq_next_due(&self.q, &d) else None

    def due(self, int64_t now_ns):
        return so_dq_due(&self.q, now_ns)

    def pop_due(self, int64_t now_ns):
        """All (deadline, item) with deadline <= now, earliest first."""
        cdef so_dq_item it
        out = []
        while so_dq_pop_due(&self.q, now_ns, &it):
            out.append((it.deadline, self.items.pop(it.a)))
        return out

    def __len__(self):
        return so_dq_len(&self.q)

    def rebuild(self, entries):
        """Replace the queue by the given (deadline, item) entries only."""
        cdef size_t n = len(entries), i = 0
        cdef so_dq_item *buf = <so_dq_item *>malloc((n if n else 1) * sizeof(so_dq_item))
        if buf == NULL:
            raise MemoryError()
        self.items = {}
        try:
            for deadline, item in entries:
                memset(&buf[i], 0, sizeof(so_dq_item))
                buf[i].deadline = deadline
                buf[i].a = self._keep(item)
                i += 1
            if not so_dq_rebuild(&self.q, buf, n):
                raise MemoryError()
        finally:
            free(buf)


cdef extern from "so_track_int.h":
    ctypedef struct so_sm_row:
        signed char next
        uint8_t action
        const char *rule
    const so_sm_row *so_sm_rows_flat(int i, int *machine, int *state, int *input)
    int so_sm_n_rows()
    const char *so_sm_name(int machine, int kind, int i)
    ctypedef struct so_track_hits:
        uint64_t hits[256]
    void so_track_hits_get(const so_track *t, so_track_hits *out)


def machine_rows():
    """Every row of the four state machines: (machine, state, input, next state or None,
    action, rule); action 0 = the input is ignored in that state."""
    cdef int i, m, st, inp
    cdef const so_sm_row *row
    names = ("transaction", "attempt", "dialog", "registration")
    out = []
    for i in range(so_sm_n_rows()):
        row = so_sm_rows_flat(i, &m, &st, &inp)
        nxt = so_sm_name(m, 0, row.next).decode() if row.next >= 0 else None
        out.append((names[m], so_sm_name(m, 0, st).decode(), so_sm_name(m, 1, inp).decode(),
                    nxt, row.action, row.rule.decode() if row.rule != NULL else None))
    return out
