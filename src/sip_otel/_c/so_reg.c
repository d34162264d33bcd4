/* SPDX-License-Identifier: Apache-2.0
 * REGISTER attempts and active registrations (RFC 3261 §10, RFC 6076 §4.1-§4.2). Sans-IO.
 *
 * Theory of operation
 * -------------------
 * A registration attempt starts with the first REGISTER of a Call-ID for an AOR (the To URI,
 * §10.2) and ends with its final response or its Timer F. The same REGISTER forwarded over a
 * second hop (same Call-ID, AOR and CSeq) joins the attempt. A 401/407 parks the attempt
 * (Challenged); the credentialed REGISTER (same Call-ID and AOR, higher CSeq, §10.2.4/§22.2)
 * resumes it, so RRD runs from the first REGISTER to the 2xx (RFC 6076 §4.1) and IRA counts
 * one REGISTER. With ``challenge_retry_is_new_attempt`` the challenged REGISTER ends there
 * ("failed") and the retry is a new attempt. No retry within 64*T1 ends a challenged attempt
 * "failed".
 *
 * A REGISTER whose effective expiry is 0 (``Contact: *``, ``;expires=0`` on the Contact, or
 * ``Expires: 0`` without a Contact parameter, §10.2.2) is an unregister: its 2xx removes the
 * AOR from the active table and never counts as a successful registration. A 2xx to any other
 * REGISTER makes the AOR active until now + expiry (Contact parameter of the 2xx, else its
 * Expires, else the request's, else 3600 s, §10.2.1.1); the 1 s sweep drops lapsed AORs.
 * Both tables are bounded (register_attempts.full, registrations.full).
 */
#include "so_track_int.h"

enum { DOMAIN_REG_ATTEMPT = 30, DOMAIN_AOR };

static inline so_reg_entry *entry_at(const so_track *t, uint32_t slot) {
    return (so_reg_entry *)so_tab_at(&t->reg_attempts, slot);
}

static bool is_unregister(const so_msg *m) {
    if (m->contact_star)
        return true;
    int64_t exp = m->contact_expires >= 0 ? m->contact_expires : m->expires;
    return exp == 0;
}

/* End an attempt; it leaves the attempts table if it is still there under its key. */
static void reg_end(so_track *t, uint32_t att, int64_t now, uint8_t outcome, uint16_t status) {
    so_regatt *r = so_regatt_at(t, att);
    r->state = SO_RS_ENDED;
    so_regatt_incref(t, att);
    uint32_t slot = so_tab_get(&t->reg_attempts, r->key);
    if (slot != SO_NIL && entry_at(t, slot)->att == att) {
        so_tab_del(&t->reg_attempts, slot);
        so_regatt_decref(t, att);
    }
    r = so_regatt_at(t, att);
    bool registered = outcome == SO_OUT_REGISTERED;
    so_event *ev = so_track_emit(t, SO_EV_REGISTRATION_ENDED);
    if (ev) {
        ev->outcome = outcome;
        ev->status = status;
        ev->has_rrd = registered;
        ev->rrd_ns = registered ? so_sat_sub(now, r->start_ns) : 0;
    }
    int32_t index;
    so_record *rec = so_track_new_record(t, &index);
    if (rec) {
        size_t n = r->str.call_id.n + r->str.to_uri.n;
        rec->blob = (uint8_t *)malloc(n ? n : 1);
        if (rec->blob) {
            uint8_t *w = rec->blob;
            rec->to_uri = so_slice_of(w, r->str.to_uri.n);
            if (r->str.to_uri.n)
                memcpy(w, r->str.to_uri.p, r->str.to_uri.n);
            w += r->str.to_uri.n;
            rec->call_id = so_slice_of(w, r->str.call_id.n);
            if (r->str.call_id.n)
                memcpy(w, r->str.call_id.p, r->str.call_id.n);
        }
        rec->registration = true;
        rec->outcome = outcome;
        rec->final_status = status;
        rec->start_ns = r->start_ns;
        rec->end_ns = now;
        rec->has_delay = registered;
        rec->delay_ns = registered ? so_sat_sub(now, r->start_ns) : 0;
        rec->challenged = r->challenged;
        rec->transport = r->origin.transport;
        rec->ip_len = r->origin.ip_len;
        rec->sport = r->origin.sport;
        rec->dport = r->origin.dport;
        memcpy(rec->src, r->origin.src, 16);
        memcpy(rec->dst, r->origin.dst, 16);
        bool kept = so_track_charge_record(t, rec);
        if (ev && kept)
            ev->record = index;
    }
    so_regatt_decref(t, att);
}

static bool reg_step(so_track *t, uint32_t att, so_reg_input in) {
    so_regatt *r = so_regatt_at(t, att);
    return so_sm_step(&so_reg_table[r->state][in], &r->state, t,
                      SO_R_INTERNAL_REGISTRATION_TRANSITION) > 0;
}

/* A first copy of a REGISTER. */
void so_reg_request(so_track *t, const so_msg *m, uint32_t txn) {
    so_slice parts[2] = {m->call_id, m->to_uri};
    so_h128 key = so_key(t, DOMAIN_REG_ATTEMPT, parts, 2, NULL, 0);
    uint32_t slot = so_tab_get(&t->reg_attempts, key);
    if (slot != SO_NIL) {
        uint32_t att = entry_at(t, slot)->att;
        so_regatt *r = so_regatt_at(t, att);
        if (r->state == SO_RS_PENDING && m->cseq == r->cseq) { /* same REGISTER, another hop */
            so_txn_set_ctx(t, txn, SO_CTX_REGISTER, att);
            return;
        }
        if (r->state == SO_RS_CHALLENGED && m->cseq > r->cseq && reg_step(t, att, SO_RI_RETRY)) {
            r = so_regatt_at(t, att);
            r->cseq = m->cseq;
            r->txn = so_txn_ref(t, txn);
            r->challenged = true;
            r->unregister = is_unregister(m);
            so_txn_set_ctx(t, txn, SO_CTX_REGISTER, att);
            return;
        }
    }
    if (so_tab_len(&t->reg_attempts) >= t->cfg.max_register_attempts)
        so_regatt_evict_oldest(t, SO_E_REGISTER_ATTEMPTS_FULL, m->ts_ns, false);
    uint32_t att = so_pool_alloc(&t->regatt_pool);
    if (att == SO_NIL) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return;
    }
    so_regatt *r = so_regatt_at(t, att);
    r->state = SO_RS_PENDING;
    r->key = key;
    r->aor = so_key(t, DOMAIN_AOR, &m->to_uri, 1, NULL, 0);
    r->cseq = m->cseq;
    r->start_ns = m->ts_ns; /* RFC 6076 §4.1 t1: the first REGISTER */
    r->txn = so_txn_ref(t, txn);
    r->unregister = is_unregister(m);
    r->req_expires = m->contact_expires >= 0 ? m->contact_expires : m->expires;
    if (t->cfg.want_records) {
        if (!so_strings_set(&r->str, m, true, false))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        so_origin_set(&r->origin, m->origin);
    }
    r->charged = (int64_t)(SO_MEM_ENTRY(t->regatt_pool.item_size) +
                           so_mem_block(so_strings_len(&r->str)));
    so_mem_charge(t->mem, SO_MEM_REGISTRATIONS, r->charged);
    so_regatt_incref(t, att);
    bool created;
    slot = so_tab_put(&t->reg_attempts, key, &created);
    if (slot != SO_NIL) {
        so_reg_entry *e = entry_at(t, slot);
        uint32_t prev = created ? SO_NIL : e->att;
        e->att = att; /* an existing key keeps its place */
        so_regatt_incref(t, att);
        if (prev != SO_NIL)
            so_regatt_decref(t, prev);
    } else {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    }
    so_txn_set_ctx(t, txn, SO_CTX_REGISTER, att);
    so_regatt_decref(t, att);
}

bool so_regatt_evict_oldest(so_track *t, so_eviction why, int64_t now, bool with_txn) {
    uint32_t head = t->reg_attempts.pool.head;
    if (head == SO_NIL)
        return false;
    uint32_t old = entry_at(t, head)->att;
    so_count_eviction(t, why);
    so_regatt_incref(t, old);
    so_tab_del(&t->reg_attempts, head);
    so_regatt_decref(t, old);
    if (reg_step(t, old, SO_RI_EVICT))
        reg_end(t, old, now, SO_OUT_EVICTED, 0);
    if (with_txn)
        so_txn_drop(t, so_regatt_at(t, old)->txn);
    so_regatt_decref(t, old);
    return true;
}

bool so_active_evict_oldest(so_track *t, so_eviction why) {
    if (t->active.pool.head == SO_NIL)
        return false;
    so_tab_del(&t->active, t->active.pool.head);
    so_count_eviction(t, why);
    return true;
}

static void activate(so_track *t, so_h128 aor, int64_t expiry) {
    uint32_t slot = so_tab_get(&t->active, aor);
    if (slot != SO_NIL) {
        so_pool_move_to_end(&t->active.pool, slot); /* refreshed: evicted last */
    } else {
        if (so_tab_len(&t->active) >= t->cfg.max_registrations)
            so_active_evict_oldest(t, SO_E_REGISTRATIONS_FULL);
        bool created;
        slot = so_tab_put(&t->active, aor, &created);
        if (slot == SO_NIL) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            return;
        }
    }
    ((so_active *)so_tab_at(&t->active, slot))->expiry_ns = expiry;
    if (!so_dq_push_in_order(&t->reg_expiry, expiry, 0, aor.a, aor.b))
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    if (so_dq_len(&t->reg_expiry) > 2 * (size_t)so_tab_len(&t->active) + 1024) {
        size_t n = so_tab_len(&t->active), k = 0;
        so_dq_item *items = (so_dq_item *)malloc((n ? n : 1) * sizeof(so_dq_item));
        if (!items) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            return;
        }
        for (uint32_t s = t->active.pool.head; s != SO_NIL;
             s = so_pool_entry(&t->active.pool, s)->next) {
            so_active *a = (so_active *)so_tab_at(&t->active, s);
            so_dq_item it = {.deadline = a->expiry_ns, .a = a->h.key.a, .b = a->h.key.b};
            items[k++] = it;
        }
        if (!so_dq_rebuild(&t->reg_expiry, items, k))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        free(items);
    }
}

/* A new response to a REGISTER. */
void so_reg_response(so_track *t, const so_msg *m, uint32_t txn) {
    so_txn *x = so_txn_at(t, txn);
    if (x->ctx_kind != SO_CTX_REGISTER || m->status < 200)
        return;
    uint32_t att = x->ctx_slot;
    so_regatt *r = so_regatt_at(t, att);
    uint16_t status = m->status;
    int64_t now = m->ts_ns;
    if (status < 300) {
        if (!reg_step(t, att, SO_RI_2XX))
            return;
        r = so_regatt_at(t, att);
        if (r->unregister) {
            uint32_t slot = so_tab_get(&t->active, r->aor);
            if (slot != SO_NIL)
                so_tab_del(&t->active, slot);
            reg_end(t, att, now, SO_OUT_UNREGISTERED, status);
            return;
        }
        int64_t exp = m->contact_expires >= 0 ? m->contact_expires : m->expires;
        if (exp < 0)
            exp = r->req_expires >= 0 ? r->req_expires : t->cfg.register_expires_default_s;
        activate(t, r->aor, so_sat_add(now, so_sat_mul(exp, SO_NS_PER_S)));
        reg_end(t, att, now, SO_OUT_REGISTERED, status);
        return;
    }
    if ((status == 401 || status == 407) && !t->cfg.challenge_retry_is_new_attempt) {
        if (!reg_step(t, att, SO_RI_CHALLENGE))
            return;
        r = so_regatt_at(t, att);
        r->final_status = status;
        r->deadline_ns = so_sat_add(now, t->wait_ns);
        so_regatt_incref(t, att); /* the queue holds it until the window closes */
        if (!so_dq_push_in_order(&t->reg_waits, r->deadline_ns, 0, att, r->e.gen)) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            so_regatt_decref(t, att);
        }
        return;
    }
    if (reg_step(t, att, SO_RI_FINAL))
        reg_end(t, att, now, SO_OUT_FAILED, status);
}

void so_reg_on_timeout(so_track *t, const so_timeout_ev *ev) {
    if (ev->ctx_kind != SO_CTX_REGISTER)
        return;
    so_regatt *r = so_regatt_at(t, ev->ctx_slot);
    if (r->txn.slot != ev->txn.slot || r->txn.gen != ev->txn.gen)
        return;
    if (reg_step(t, ev->ctx_slot, SO_RI_TIMEOUT))
        reg_end(t, ev->ctx_slot, ev->ts_ns, SO_OUT_TIMED_OUT, 0);
}

void so_reg_timer(so_track *t, int64_t now, bool sweep) {
    size_t n = 0, cap = 0;
    so_dq_item *due = NULL, it;
    while (so_dq_pop_due(&t->reg_waits, now, &it)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            so_dq_item *p = (so_dq_item *)realloc(due, cap * sizeof(so_dq_item));
            if (!p) {
                so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
                so_regatt_decref(t, (uint32_t)it.a);
                break;
            }
            due = p;
        }
        due[n++] = it;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t att = (uint32_t)due[i].a;
        so_regatt *r = so_regatt_at(t, att);
        if (r->state == SO_RS_CHALLENGED && r->deadline_ns == due[i].deadline &&
            reg_step(t, att, SO_RI_ABANDON))
            reg_end(t, att, due[i].deadline, SO_OUT_FAILED, so_regatt_at(t, att)->final_status);
        so_regatt_decref(t, att); /* the queue's reference */
    }
    free(due);
    if (!sweep)
        return;
    while (so_dq_pop_due(&t->reg_expiry, now, &it)) {
        so_h128 aor = {it.a, it.b};
        uint32_t slot = so_tab_get(&t->active, aor);
        if (slot != SO_NIL && ((so_active *)so_tab_at(&t->active, slot))->expiry_ns == it.deadline)
            so_tab_del(&t->active, slot);
    }
}

void so_reg_finish(so_track *t, int64_t now) {
    uint32_t n = so_tab_len(&t->reg_attempts), k = 0;
    uint32_t *snap = (uint32_t *)malloc((n ? n : 1) * sizeof(uint32_t));
    if (!snap) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return;
    }
    for (uint32_t s = t->reg_attempts.pool.head; s != SO_NIL;
         s = so_pool_entry(&t->reg_attempts.pool, s)->next) {
        snap[k] = entry_at(t, s)->att;
        so_regatt_incref(t, snap[k++]);
    }
    for (uint32_t i = 0; i < k; i++)
        if (reg_step(t, snap[i], SO_RI_OPEN))
            reg_end(t, snap[i], now, SO_OUT_OPEN, 0);
    for (uint32_t i = 0; i < k; i++)
        so_regatt_decref(t, snap[i]);
    free(snap);
}
