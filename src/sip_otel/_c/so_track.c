/* SPDX-License-Identifier: Apache-2.0
 * The tracker facade (so_track.h): transactions -> attempts/dialogs/registrations, timers,
 * events and records; plus the small containers the layers share (so_track_int.h).
 *
 * so_track_handle() also fires any timer that fell due before the message it handles, so a
 * late caller of so_track_timer() cannot reorder a timeout and a response. Timer events come
 * out in the order the pure-Python tracker produced them: all transaction timeouts, then the
 * attempt/dialog events, then the registration events.
 */
#include "so_track_int.h"

#define SO_X_NAME(id, name) name,
const char *const so_outcome_names[SO_N_OUTCOMES] = {SO_OUTCOME_LIST(SO_X_NAME)};
const char *const so_revent_names[SO_N_REVENTS] = {SO_REVENT_LIST(SO_X_NAME)};
#undef SO_X_NAME

void so_track_config_default(so_track_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->t1_ns = 500000000LL;
    cfg->session_expires_default_s = 1800;
    cfg->expiry_check_ns = SO_NS_PER_S;
    cfg->challenge_retry_is_new_attempt = false;
    cfg->max_transactions = 200000;
    cfg->max_dialogs = 200000;
    cfg->max_registrations = 500000;
    cfg->max_invite_attempts = 100000;
    cfg->max_register_attempts = 100000;
    cfg->invite_proceeding_timeout_ns = 300LL * SO_NS_PER_S;
    cfg->register_expires_default_s = 3600;
    cfg->want_records = false;
    cfg->seed.a = 0x243F6A8885A308D3ULL;
    cfg->seed.b = 0x13198A2E03707344ULL;
}

/* ---- keys ----------------------------------------------------------------------------------- */

so_h128 so_key(const so_track *t, uint64_t domain, const so_slice *parts, size_t n,
               const int64_t *nums, size_t m) {
    so_hasher h;
    so_hasher_init(&h, t->cfg.seed);
    so_hasher_u64(&h, domain);
    for (size_t i = 0; i < n; i++)
        so_hasher_slice(&h, parts[i]);
    for (size_t i = 0; i < m; i++)
        so_hasher_u64(&h, (uint64_t)nums[i]);
    return so_hasher_final(&h);
}

uint64_t so_key64(const so_track *t, uint64_t domain, so_slice s, int64_t num) {
    so_hasher h;
    so_hasher_init(&h, t->cfg.seed);
    so_hasher_u64(&h, domain);
    so_hasher_slice(&h, s);
    so_hasher_u64(&h, (uint64_t)num);
    return so_hasher_final(&h).a;
}

/* ---- so_set ---------------------------------------------------------------------------------- */

bool so_set_has(const so_set *s, uint64_t v) {
    const uint64_t *p = s->cap ? s->heap : s->inl;
    for (uint32_t i = 0; i < s->n; i++)
        if (p[i] == v)
            return true;
    return false;
}

bool so_set_add(so_set *s, uint64_t v) {
    if (!s->cap) {
        if (s->n < SO_SET_INLINE) {
            s->inl[s->n++] = v;
            return true;
        }
        /* spill: the inline values move to the heap, whose pointer takes their room */
        uint32_t cap = 2 * SO_SET_INLINE;
        uint64_t *p = (uint64_t *)malloc(cap * sizeof(uint64_t));
        if (!p)
            return false;
        memcpy(p, s->inl, s->n * sizeof(uint64_t));
        s->heap = p;
        s->cap = cap;
    } else if (s->n >= s->cap) {
        uint32_t cap = s->cap * 2;
        uint64_t *p = (uint64_t *)realloc(s->heap, cap * sizeof(uint64_t));
        if (!p)
            return false;
        s->heap = p;
        s->cap = cap;
    }
    s->heap[s->n++] = v;
    return true;
}

void so_set_clear(so_set *s) { s->n = 0; }

void so_set_free(so_set *s) {
    if (s->cap)
        free(s->heap);
    memset(s, 0, sizeof(*s));
}

/* ---- so_tab ---------------------------------------------------------------------------------- */

void so_tab_init(so_tab *t, size_t entry_size, so_mem *mem, int table, bool queued) {
    so_pool_init(&t->pool, entry_size);
    so_map_init(&t->index);
    t->mem = mem;
    t->table = table;
    t->charge = SO_MEM_ENTRY(entry_size) + (queued ? SO_MEM_QUEUE_ITEM : 0);
}

void so_tab_free(so_tab *t) {
    so_pool_free(&t->pool);
    so_map_free(&t->index);
}

uint32_t so_tab_get(const so_tab *t, so_h128 key) { return so_map_get(&t->index, key); }

uint32_t so_tab_put(so_tab *t, so_h128 key, bool *created) {
    *created = false;
    uint32_t slot = so_pool_alloc(&t->pool);
    if (slot == SO_NIL)
        return so_map_get(&t->index, key); /* no memory for a new one: an existing one only */
    bool failed;
    uint32_t old = so_map_get_or_put(&t->index, key, slot, &failed);
    if (old != SO_NIL || failed) {
        so_pool_release(&t->pool, slot);
        return old;
    }
    ((so_tab_head *)so_pool_entry(&t->pool, slot))->key = key;
    *created = true;
    if (t->mem)
        so_mem_charge(t->mem, (so_mem_table)t->table, (int64_t)t->charge);
    return slot;
}

void so_tab_del(so_tab *t, uint32_t slot) {
    so_tab_head *h = (so_tab_head *)so_pool_entry(&t->pool, slot);
    so_map_del(&t->index, h->key);
    so_pool_release(&t->pool, slot);
    if (t->mem)
        so_mem_charge(t->mem, (so_mem_table)t->table, -(int64_t)t->charge);
}

/* ---- record material ------------------------------------------------------------------------ */

void so_revents_add(so_revents *e, int64_t ts, uint8_t name, uint16_t status, uint8_t method) {
    if (e->n >= SO_MAX_RECORD_EVENTS) {
        e->dropped++;
        return;
    }
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 8;
        so_revent *p = (so_revent *)realloc(e->items, cap * sizeof(so_revent));
        if (!p) {
            e->dropped++;
            return;
        }
        e->items = p;
        e->cap = cap;
    }
    so_revent *ev = &e->items[e->n++];
    ev->ts_ns = ts;
    ev->name = name;
    ev->status = status;
    ev->method = method;
}

bool so_revents_copy(so_revents *dst, const so_revents *src) {
    memset(dst, 0, sizeof(*dst));
    dst->dropped = src->dropped;
    if (src->n == 0)
        return true;
    dst->items = (so_revent *)malloc(src->n * sizeof(so_revent));
    if (!dst->items)
        return false;
    memcpy(dst->items, src->items, src->n * sizeof(so_revent));
    dst->n = dst->cap = src->n;
    return true;
}

void so_revents_free(so_revents *e) {
    free(e->items);
    memset(e, 0, sizeof(*e));
}

static so_slice put_str(uint8_t **w, so_slice s) {
    so_slice out = {*w, s.n};
    if (s.n)
        memcpy(*w, s.p, s.n);
    *w += s.n;
    return out;
}

bool so_strings_set(so_strings *s, const so_msg *m, bool aor_only, bool for_records) {
    size_t n = m->call_id.n + m->to_uri.n;
    if (!aor_only)
        n += m->from_uri.n + m->from_tag.n + m->user_agent.n;
    if (!aor_only && for_records)
        n += m->session_id.n + m->correlation.n;
    uint8_t *blob = (uint8_t *)malloc(n ? n : 1);
    if (!blob)
        return false;
    uint8_t *w = blob;
    memset(s, 0, sizeof(*s));
    s->blob = blob;
    s->call_id = put_str(&w, m->call_id);
    s->to_uri = put_str(&w, m->to_uri);
    if (!aor_only) {
        s->from_uri = put_str(&w, m->from_uri);
        s->from_tag = put_str(&w, m->from_tag);
        s->user_agent = put_str(&w, m->user_agent);
        if (for_records) {
            s->session_id = put_str(&w, m->session_id);
            s->correlation = put_str(&w, m->correlation);
        }
    }
    return true;
}

size_t so_strings_len(const so_strings *s) {
    return (size_t)s->call_id.n + s->from_uri.n + s->to_uri.n + s->from_tag.n + s->user_agent.n +
           s->session_id.n + s->correlation.n;
}

void so_strings_free(so_strings *s) {
    free(s->blob);
    memset(s, 0, sizeof(*s));
}

void so_origin_set(so_origin *o, const so_payload *p) {
    memset(o, 0, sizeof(*o));
    if (!p)
        return;
    o->transport = p->transport;
    o->ip_len = p->ip_len;
    o->sport = p->sport;
    o->dport = p->dport;
    memcpy(o->src, p->src, 16);
    memcpy(o->dst, p->dst, 16);
}

/* ---- events and records ------------------------------------------------------------------------ */

static so_event *side_emit(so_track *t) {
    if (t->n_side == t->cap_side) {
        size_t cap = t->cap_side ? t->cap_side * 2 : 16;
        so_event *p = (so_event *)realloc(t->side, cap * sizeof(so_event));
        if (!p) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            return NULL;
        }
        t->side = p;
        t->cap_side = cap;
    }
    return &t->side[t->n_side++];
}

so_event *so_track_emit(so_track *t, so_event_kind kind) {
    if (t->divert_reg && kind == SO_EV_REGISTRATION_ENDED) {
        so_event *ev = side_emit(t);
        if (ev) {
            memset(ev, 0, offsetof(so_event, srd_ns));
            ev->kind = (uint8_t)kind;
            ev->record = -1;
            ev->sdt_ns = ev->sdd_ns = ev->rrd_ns = 0;
            ev->method_tok.p = NULL;
            ev->method_tok.n = 0;
        }
        return ev;
    }
    if (t->n_events == t->cap_events) {
        size_t cap = t->cap_events ? t->cap_events * 2 : 64;
        so_event *p = (so_event *)realloc(t->events, cap * sizeof(so_event));
        if (!p) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            return NULL;
        }
        t->events = p;
        t->cap_events = cap;
    }
    so_event *ev = &t->events[t->n_events++];
    memset(ev, 0, offsetof(so_event, srd_ns));
    ev->kind = (uint8_t)kind;
    ev->record = -1;
    ev->sdt_ns = ev->sdd_ns = ev->rrd_ns = 0;
    ev->method_tok.p = NULL;
    ev->method_tok.n = 0;
    return ev;
}

so_record *so_track_new_record(so_track *t, int32_t *index) {
    *index = -1;
    if (!t->cfg.want_records)
        return NULL;
    if (t->n_records == t->cap_records) {
        size_t cap = t->cap_records ? t->cap_records * 2 : 16;
        so_record *p = (so_record *)realloc(t->records, cap * sizeof(so_record));
        if (!p) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            return NULL;
        }
        t->records = p;
        t->cap_records = cap;
    }
    so_record *r = &t->records[t->n_records];
    memset(r, 0, sizeof(*r));
    *index = (int32_t)t->n_records++;
    return r;
}

const so_event *so_track_events(const so_track *t, size_t *n) {
    *n = t->n_events;
    return t->events;
}

so_record *so_track_records(so_track *t, size_t *n) {
    *n = t->n_records;
    return t->records;
}

void so_track_clear_events(so_track *t) { t->n_events = 0; }

void so_track_clear_records(so_track *t) {
    for (size_t i = 0; i < t->n_records; i++) {
        free(t->records[i].blob);
        free(t->records[i].events);
    }
    t->n_records = 0;
    t->mem->used[SO_MEM_RECORDS] = 0;
}

/* ---- lifecycle ----------------------------------------------------------------------------------- */

so_track *so_track_new(const so_track_config *cfg, uint64_t *reasons, uint64_t *evictions) {
    so_track *t = (so_track *)calloc(1, sizeof(so_track));
    if (!t)
        return NULL;
    t->cfg = *cfg;
    so_mem_init(&t->own, cfg->memory_limit);
    so_mem *mem = t->mem = cfg->mem ? cfg->mem : &t->own;
    static const int tables[] = {SO_MEM_TRANSACTIONS, SO_MEM_ATTEMPTS, SO_MEM_DIALOGS,
                                 SO_MEM_REGISTRATIONS};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        mem->evict[tables[i]] = so_track_mem_evict;
        mem->ctx[tables[i]] = t;
    }
    t->reasons = reasons;
    t->evictions = evictions;
    /* Configured times saturate like packet times (every deadline below is so_sat_add). */
    int64_t t64 = so_sat_mul(64, cfg->t1_ns);
    t->timeout_ns = t64; /* Timer B = Timer F = 64*T1 (§17.1.1.2, §17.1.2.2) */
    t->linger_ns = t64;
    t->wait_ns = t64; /* window for a credentialed/redirected retry */
    t->se_default_ns = so_sat_mul(cfg->session_expires_default_s, SO_NS_PER_S);
    so_tab_init(&t->txns, sizeof(so_txn), mem, SO_MEM_TRANSACTIONS, true);
    so_dq_init(&t->txn_deadlines);
    so_pool_init(&t->attempts_pool, sizeof(so_attempt));
    so_tab_init(&t->attempts, sizeof(so_att_entry), mem, SO_MEM_ATTEMPTS, false);
    so_tab_init(&t->pending, sizeof(so_pending), mem, SO_MEM_ATTEMPTS, true);
    so_tab_init(&t->dialogs, sizeof(so_dialog), mem, SO_MEM_DIALOGS, true);
    so_dq_init(&t->waits);
    so_dq_init(&t->expiry);
    so_pool_init(&t->regatt_pool, sizeof(so_regatt));
    so_tab_init(&t->reg_attempts, sizeof(so_reg_entry), mem, SO_MEM_REGISTRATIONS, false);
    so_tab_init(&t->active, sizeof(so_active), mem, SO_MEM_REGISTRATIONS, true);
    so_dq_init(&t->reg_waits);
    so_dq_init(&t->reg_expiry);
    return t;
}

static void free_attempt_payload(so_attempt *a) {
    free(a->early_heap);
    so_set_free(&a->confirmed);
    so_set_free(&a->seen);
    free(a->keys);
    a->keys = NULL;
    if (a->rec) {
        so_revents_free(&a->rec->events);
        so_strings_free(&a->rec->str);
        free(a->rec->first_early_tag);
        free(a->rec);
        a->rec = NULL;
    }
}

void so_track_free(so_track *t) {
    if (!t)
        return;
    so_track_clear_events(t);
    so_track_clear_records(t);
    for (uint32_t s = t->txns.pool.head; s != SO_NIL; s = so_pool_entry(&t->txns.pool, s)->next)
        so_set_free(&so_txn_at(t, s)->seen);
    for (uint32_t s = t->dialogs.pool.head; s != SO_NIL;
         s = so_pool_entry(&t->dialogs.pool, s)->next) {
        so_dialog *d = (so_dialog *)so_tab_at(&t->dialogs, s);
        so_set_free(&d->seen);
        so_revents_free(&d->events);
        free(d->to_tag_blob);
    }
    for (uint32_t s = 0; s < t->attempts_pool.fresh; s++) {
        so_attempt *a = so_att_at(t, s);
        if (a->e.live)
            free_attempt_payload(a);
    }
    for (uint32_t s = 0; s < t->regatt_pool.fresh; s++) {
        so_regatt *r = so_regatt_at(t, s);
        if (r->e.live)
            so_strings_free(&r->str);
    }
    so_tab_free(&t->txns);
    so_dq_free(&t->txn_deadlines);
    so_pool_free(&t->attempts_pool);
    so_tab_free(&t->attempts);
    so_tab_free(&t->pending);
    so_tab_free(&t->dialogs);
    so_dq_free(&t->waits);
    so_dq_free(&t->expiry);
    so_pool_free(&t->regatt_pool);
    so_tab_free(&t->reg_attempts);
    so_tab_free(&t->active);
    so_dq_free(&t->reg_waits);
    so_dq_free(&t->reg_expiry);
    free(t->events);
    free(t->records);
    free(t->timeouts);
    free(t->side);
    free(t);
}

/* ---- reference counts ---------------------------------------------------------------------------- */

void so_att_incref(so_track *t, uint32_t att) { so_att_at(t, att)->refs++; }

void so_att_decref(so_track *t, uint32_t att) {
    so_attempt *a = so_att_at(t, att);
    if (a->refs && --a->refs == 0) {
        free_attempt_payload(a);
        so_att_charge(t, a, -a->charged);
        so_pool_release(&t->attempts_pool, att);
    }
}

void so_regatt_incref(so_track *t, uint32_t att) { so_regatt_at(t, att)->refs++; }

void so_regatt_decref(so_track *t, uint32_t att) {
    so_regatt *r = so_regatt_at(t, att);
    if (r->refs && --r->refs == 0) {
        so_strings_free(&r->str);
        so_mem_charge(t->mem, SO_MEM_REGISTRATIONS, -r->charged);
        r->charged = 0;
        so_pool_release(&t->regatt_pool, att);
    }
}

/* ---- the facade ------------------------------------------------------------------------------------ */

static void timers(so_track *t, int64_t now) {
    bool sweep = now >= t->next_sweep;
    if (sweep)
        t->next_sweep = so_sat_add(now, t->cfg.expiry_check_ns);
    /* Registration events wait in the side list until the dialog layer's timers ran. */
    t->divert_reg = true;
    t->n_side = 0;
    if (so_dq_due(&t->txn_deadlines, now)) {
        size_t n = so_txn_timer(t, now);
        for (size_t i = 0; i < n; i++) {
            so_event *ev = so_track_emit(t, SO_EV_TXN_TIMEOUT);
            if (ev) {
                ev->timer = t->timeouts[i].timer;
                ev->method = t->timeouts[i].method;
                ev->ts_ns = t->timeouts[i].ts_ns;
                ev->txn_slot = t->timeouts[i].txn.slot;
                ev->txn_gen = t->timeouts[i].txn.gen;
            }
        }
        for (size_t i = 0; i < n; i++) {
            so_timeout_ev tmo = t->timeouts[i];
            if (tmo.method == SO_M_REGISTER)
                so_reg_on_timeout(t, &tmo);
            else
                so_dlg_on_timeout(t, &tmo);
            /* the transaction is gone: release the context it carried */
            if (tmo.ctx_kind == SO_CTX_ATTEMPT)
                so_att_decref(t, tmo.ctx_slot);
            else if (tmo.ctx_kind == SO_CTX_REGISTER)
                so_regatt_decref(t, tmo.ctx_slot);
        }
    }
    if (sweep || so_dq_due(&t->waits, now))
        so_dlg_timer(t, now, sweep);
    t->divert_reg = false;
    for (size_t i = 0; i < t->n_side; i++) {
        so_event *ev = so_track_emit(t, (so_event_kind)t->side[i].kind);
        if (ev)
            *ev = t->side[i];
    }
    t->n_side = 0;
    if (sweep || so_dq_due(&t->reg_waits, now))
        so_reg_timer(t, now, sweep);
    /* Earliest time any timer can be due. Every deadline pushed while handling messages is at
     * least 64*T1 ahead, so capping at now + 64*T1 keeps this exact without looking at the
     * queues on every message. */
    int64_t nxt = SO_MIN(t->next_sweep, so_sat_add(now, t->timeout_ns));
    int64_t due;
    if (so_dq_next_due(&t->txn_deadlines, &due) && due < nxt)
        nxt = due;
    if (so_dq_next_due(&t->waits, &due) && due < nxt)
        nxt = due;
    if (so_dq_next_due(&t->reg_waits, &due) && due < nxt)
        nxt = due;
    t->next_check = nxt;
}

void so_track_timer(so_track *t, int64_t now_ns) {
    so_mem_enter(t->mem);
    t->now = now_ns;
    timers(t, now_ns);
    so_mem_leave(t->mem);
}

static void handle(so_track *t, const so_msg *m);

void so_track_handle(so_track *t, const so_msg *m) {
    so_mem_enter(t->mem);
    t->now = m->ts_ns;
    handle(t, m);
    so_mem_leave(t->mem);
}

static void handle(so_track *t, const so_msg *m) {
    if (m->ts_ns >= t->next_check)
        timers(t, m->ts_ns);
    uint32_t txn = SO_NIL, related = SO_NIL;
    so_verdict v;
    if (m->is_request) {
        v = so_txn_request(t, m, &txn, &related);
        if (v == SO_V_NEW) {
            if (m->method == SO_M_REGISTER)
                so_reg_request(t, m, txn);
            else
                so_dlg_request(t, m, txn, related);
            return;
        }
    } else {
        bool first_final = false;
        v = so_txn_response(t, m, &txn, &first_final);
        if (v == SO_V_NEW) {
            if (m->method == SO_M_REGISTER)
                so_reg_response(t, m, txn);
            else
                so_dlg_response(t, m, txn, first_final);
            return;
        }
    }
    if (v == SO_V_RETRANSMISSION) {
        so_event *ev = so_track_emit(t, SO_EV_RETRANSMISSION);
        if (ev) {
            ev->method = m->method;
            ev->method_tok = m->method_tok;
            ev->is_request = m->is_request;
            ev->status = m->status;
        }
    } else { /* monitor started mid-transaction, one-sided capture */
        so_count_reason(t, SO_R_TRACKER_ORPHAN_RESPONSE);
        so_track_emit(t, SO_EV_ORPHAN_RESPONSE);
    }
}

void so_track_finish(so_track *t, int64_t now_ns) {
    so_mem_enter(t->mem);
    t->now = now_ns;
    timers(t, now_ns);
    so_dlg_finish(t, now_ns);
    so_reg_finish(t, now_ns);
    so_mem_leave(t->mem);
}
