/* SPDX-License-Identifier: Apache-2.0
 * Dialogs (RFC 3261 §12-§15, RFC 4028, RFC 6076 §4.4/§4.5) and the routing of first copies to
 * attempts and dialogs. No I/O, no clock.
 *
 * Theory of operation
 * -------------------
 * This layer consumes the transaction layer's first copies (retransmissions never reach it).
 * Dialogs, keyed (Call-ID, min(tags), max(tags)) -- the sip-exporter dialog id -- are
 * confirmed dialogs. A 2xx to a re-INVITE or UPDATE refreshes the Session-Expires deadline
 * (RFC 4028 §10); a dialog not refreshed in time ends "expired" at the next 1 s sweep. BYE
 * stops SDT; its 2xx ends the dialog "completed" (SDD success); 503 with Retry-After or a
 * 401/407 wait for the retried BYE (RFC 6076 §4.4); another final, or Timer F, ends it
 * "bye_failed" (SDD failure). Requests and responses for unknown dialogs (monitor started
 * mid-call) are counted as reasons and otherwise ignored. The table is bounded; the oldest
 * dialog is evicted first (dialogs.full) and ends with outcome "evicted". The same request
 * seen on two hops (same From tag, CSeq and method) counts once per dialog.
 * Records (want_records): so_dialog_record builds one for a dialog that ended, and for an
 * attempt that ended without a dialog (so_attempt.c), from the attempt's strings and origin.
 */
#include "so_dialog.h"

static inline so_dialog *dlg_at(const so_track *t, uint32_t slot) {
    return (so_dialog *)so_tab_at(&t->dialogs, slot);
}

/* Python's str ordering on the UTF-8 bytes: bytewise, a prefix first. */
static int tag_cmp(so_slice a, so_slice b) {
    size_t n = SO_MIN(a.n, b.n);
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c)
        return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

static so_h128 dkey(const so_track *t, so_slice call_id, so_slice a, so_slice b) {
    so_slice parts[3] = {call_id, a, b};
    if (tag_cmp(a, b) > 0) {
        parts[1] = b;
        parts[2] = a;
    }
    return so_key(t, SO_DOMAIN_DIALOG, parts, 3, NULL, 0);
}

static uint32_t find_dialog(const so_track *t, const so_msg *m) {
    return so_tab_get(&t->dialogs, dkey(t, m->call_id, m->from_tag, m->to_tag));
}

/* A live dialog behind a (slot, gen) reference, or SO_NIL (gone = ended). */
static uint32_t live_dialog(const so_track *t, uint32_t slot, uint32_t gen) {
    if (slot == SO_NIL || slot >= t->dialogs.pool.cap)
        return SO_NIL;
    so_entry *e = so_pool_entry(&t->dialogs.pool, slot);
    return (e->live && e->gen == gen) ? slot : SO_NIL;
}

/* The same request on another hop? (bounded: only recent requests matter) */
static bool first_copy(so_track *t, so_dialog *d, const so_msg *m) {
    so_slice parts[2] = {m->from_tag, m->method_tok};
    int64_t cseq = m->cseq;
    uint64_t tok = so_key(t, SO_DOMAIN_DLG_SEEN, parts, 2, &cseq, 1).a;
    if (so_set_has(&d->seen, tok))
        return false;
    if (d->seen.n >= SO_MAX_DIALOG_SEEN)
        so_set_clear(&d->seen);
    if (!so_set_add(&d->seen, tok))
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    return true;
}

static void push_expiry(so_track *t, uint32_t slot) {
    so_dialog *d = dlg_at(t, slot);
    if (!so_dq_push_in_order(&t->expiry, d->expires_ns, 0, d->h.key.a, d->h.key.b))
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    /* Bounded by the live table, not by time: rebuilt when dead entries dominate. */
    if (so_dq_len(&t->expiry) > 2 * (size_t)so_tab_len(&t->dialogs) + 1024) {
        size_t n = so_tab_len(&t->dialogs), k = 0;
        so_dq_item *items = (so_dq_item *)malloc((n ? n : 1) * sizeof(so_dq_item));
        if (!items) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            return;
        }
        for (uint32_t s = t->dialogs.pool.head; s != SO_NIL;
             s = so_pool_entry(&t->dialogs.pool, s)->next) {
            so_dialog *x = dlg_at(t, s);
            so_dq_item it = {.deadline = x->expires_ns, .a = x->h.key.a, .b = x->h.key.b};
            items[k++] = it;
        }
        if (!so_dq_rebuild(&t->expiry, items, k))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        free(items);
    }
}

static int64_t expires_at(int64_t now, int64_t se, int64_t se_default_ns) {
    return so_sat_add(now, se > 0 ? so_sat_mul(se, SO_NS_PER_S) : se_default_ns);
}

/* End a dialog (it leaves the table and its slot is freed). */
static void end_dialog(so_track *t, uint32_t slot, uint8_t outcome, int64_t now, bool has_sdd,
                       int64_t sdd_ns, bool sdd_ok) {
    so_dialog *d = dlg_at(t, slot);
    d->state = SO_DS_ENDED;
    uint32_t att = d->att;
    so_attempt *a = so_att_at(t, att);
    bool has_sdt = false;
    int64_t sdt = 0;
    if (d->has_bye) {
        if (outcome == SO_OUT_COMPLETED) { /* RFC 6076 §4.5.1: 2xx -> BYE */
            has_sdt = true;
            sdt = so_sat_sub(d->bye_ns, d->confirmed_ns);
        } else if (outcome == SO_OUT_BYE_FAILED) { /* §4.5.2: 2xx -> the BYE's timeout/failure */
            has_sdt = true;
            sdt = so_sat_sub(now, d->confirmed_ns);
        }
    }
    bool completes = outcome == SO_OUT_COMPLETED && !a->completed;
    if (completes)
        a->completed = true;
    if (a->open_dialogs)
        a->open_dialogs--;
    so_event *ev = so_track_emit(t, SO_EV_SESSION_ENDED);
    if (ev) {
        so_att_event_call(t, ev, a, now);
        ev->last_dialog = a->open_dialogs == 0;
        ev->outcome = outcome;
        ev->has_sdt = has_sdt;
        ev->sdt_ns = sdt;
        ev->has_sdd = has_sdd;
        ev->sdd_ns = sdd_ns;
        ev->sdd_ok = sdd_ok;
        ev->completes = completes;
    }
    if (t->cfg.want_records) {
        d = dlg_at(t, slot);
        int32_t rec = so_dialog_record(t, a, so_slice_of(d->to_tag_blob, d->to_tag_len), now,
                                       outcome, d->final_status, true, d->srd_ns, has_sdt, sdt,
                                       &d->events);
        if (ev)
            ev->record = rec;
    }
    d = dlg_at(t, slot);
    so_set_free(&d->seen);
    so_revents_free(&d->events);
    free(d->to_tag_blob);
    d->to_tag_blob = NULL;
    so_mem_charge(t->mem, SO_MEM_DIALOGS, -(int64_t)d->extra);
    d->extra = 0;
    so_tab_del(&t->dialogs, slot);
    so_att_decref(t, att);
}

static bool dlg_step(so_track *t, uint32_t slot, so_dlg_input in) {
    so_dialog *d = dlg_at(t, slot);
    return so_sm_step(&so_dlg_table[d->state][in], &d->state, t,
                      SO_R_INTERNAL_DIALOG_TRANSITION) > 0;
}

bool so_dlg_evict_oldest(so_track *t, so_eviction why, int64_t now) {
    uint32_t old = t->dialogs.pool.head;
    if (old == SO_NIL)
        return false;
    so_count_eviction(t, why);
    if (!dlg_step(t, old, SO_DI_EVICT))
        return false;
    end_dialog(t, old, SO_OUT_EVICTED, now, false, 0, false);
    return true;
}

void so_dlg_confirm(so_track *t, uint32_t att, const so_msg *m, int64_t srd_ns) {
    int64_t now = m->ts_ns;
    so_attempt *a = so_att_at(t, att);
    if (a->confirmed.n == 0)
        t->early_count -= so_att_early_count(a); /* early dialogs end with the first 2xx */
    if (a->confirmed.n < SO_MAX_CONFIRMED_PER_ATTEMPT &&
        !so_set_add(&a->confirmed, so_key64(t, SO_DOMAIN_TAG, m->to_tag, 0)))
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    if (so_tab_len(&t->dialogs) >= t->cfg.max_dialogs)
        so_dlg_evict_oldest(t, SO_E_DIALOGS_FULL, now);
    /* The dialog of the attempt's INVITE: its Call-ID and From tag, not the 2xx's (the
     * transaction routed the 2xx here; a 2xx that spells them differently still confirms it). */
    a = so_att_at(t, att);
    so_h128 key = dkey(t, so_att_call_id(a), so_att_from_tag(a), m->to_tag);
    uint32_t old = so_tab_get(&t->dialogs, key);
    if (old != SO_NIL && dlg_step(t, old, SO_DI_EVICT)) /* same tags reused */
        end_dialog(t, old, SO_OUT_EVICTED, now, false, 0, false);
    bool created;
    uint32_t slot = so_tab_put(&t->dialogs, key, &created);
    if (slot == SO_NIL) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return;
    }
    so_dialog *d = dlg_at(t, slot);
    a = so_att_at(t, att);
    d->att = att;
    a->open_dialogs++;
    so_att_incref(t, att);
    so_att_charge_to_dialogs(t, a);
    d->state = SO_DS_CONFIRMED;
    d->confirmed_ns = now; /* SDT start: the first 2xx (RFC 6076 §4.5) */
    d->final_status = m->status;
    d->srd_ns = srd_ns;
    d->bye_txn = SO_NO_REF;
    int64_t se = m->session_expires > 0 ? m->session_expires : a->se;
    d->expires_ns = expires_at(now, se, t->se_default_ns);
    if (t->cfg.want_records) {
        if (a->rec && !so_revents_copy(&d->events, &a->rec->events))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        if (m->to_tag.n) {
            d->to_tag_blob = (uint8_t *)malloc(m->to_tag.n);
            if (d->to_tag_blob) {
                memcpy(d->to_tag_blob, m->to_tag.p, m->to_tag.n);
                d->to_tag_len = m->to_tag.n;
            }
        }
    }
    uint32_t extra = (uint32_t)(so_mem_block(d->to_tag_len) +
                                so_mem_block((size_t)d->events.cap * sizeof(so_revent)));
    so_mem_charge(t->mem, SO_MEM_DIALOGS, (int64_t)extra - (int64_t)d->extra);
    d->extra = extra;
    push_expiry(t, slot);
}

/* re-INVITE or UPDATE inside a dialog */
static void in_dialog(so_track *t, const so_msg *m, uint32_t txn, uint8_t name) {
    uint32_t slot = find_dialog(t, m);
    bool invite = m->method == SO_M_INVITE;
    if (slot == SO_NIL) {
        if (invite) {
            so_count_reason(t, SO_R_DIALOGS_ORPHAN_REINVITE);
            so_track_emit(t, SO_EV_REINVITE);
        }
        return;
    }
    so_txn_set_ctx(t, txn, SO_CTX_DIALOG, slot);
    so_dialog *d = dlg_at(t, slot);
    if (first_copy(t, d, m)) {
        if (t->cfg.want_records)
            so_revents_add(&d->events, m->ts_ns, name, 0, m->method);
        if (invite)
            so_track_emit(t, SO_EV_REINVITE);
    }
}

static void bye(so_track *t, const so_msg *m, uint32_t txn) {
    uint32_t slot = find_dialog(t, m);
    if (slot == SO_NIL) {
        so_count_reason(t, SO_R_DIALOGS_ORPHAN_BYE);
        return;
    }
    so_txn_set_ctx(t, txn, SO_CTX_DIALOG, slot);
    so_dialog *d = dlg_at(t, slot);
    if (!first_copy(t, d, m))
        return;
    if (!dlg_step(t, slot, SO_DI_BYE))
        return; /* a second BYE (other party) while the first is pending: the first counts */
    if (!d->has_bye) {
        d->has_bye = true;
        d->bye_ns = m->ts_ns;
    }
    d->bye_txn = so_txn_ref(t, txn);
    if (t->cfg.want_records)
        so_revents_add(&d->events, m->ts_ns, SO_RE_BYE, 0, SO_M_NONE);
}

void so_dlg_request(so_track *t, const so_msg *m, uint32_t txn, uint32_t related) {
    switch (m->method) {
    case SO_M_INVITE:
        if (m->to_tag.n)
            in_dialog(t, m, txn, SO_RE_REINVITE);
        else
            so_att_initial_invite(t, m, txn);
        break;
    case SO_M_ACK:
        if (related != SO_NIL) { /* ACK for a non-2xx final, same transaction */
            so_txn *x = so_txn_at(t, related);
            if (x->ctx_kind == SO_CTX_ATTEMPT)
                so_att_note(t, x->ctx_slot, m, SO_ATT_N_INPUTS, SO_RE_ACK);
        } else {
            uint32_t slot = find_dialog(t, m);
            if (slot != SO_NIL && first_copy(t, dlg_at(t, slot), m) && t->cfg.want_records)
                so_revents_add(&dlg_at(t, slot)->events, m->ts_ns, SO_RE_ACK, 0, SO_M_NONE);
        }
        break;
    case SO_M_BYE:
        bye(t, m, txn);
        break;
    case SO_M_UPDATE:
        in_dialog(t, m, txn, SO_RE_UPDATE);
        break;
    case SO_M_CANCEL:
        if (related != SO_NIL) {
            so_txn *x = so_txn_at(t, related);
            if (x->ctx_kind == SO_CTX_ATTEMPT)
                so_att_note(t, x->ctx_slot, m, SO_AI_CANCEL, SO_RE_CANCEL);
        } else {
            so_count_reason(t, SO_R_DIALOGS_ORPHAN_CANCEL);
        }
        break;
    default:
        break;
    }
}

static void bye_response(so_track *t, uint32_t slot, const so_msg *m) {
    so_dialog *d = dlg_at(t, slot);
    uint16_t status = m->status;
    if (!d->has_bye)
        return;
    so_dlg_input in;
    if (status < 300)
        in = SO_DI_BYE_2XX;
    else if ((status == 503 && m->retry_after >= 0) || status == 401 || status == 407)
        in = SO_DI_BYE_RETRY;
    else
        in = SO_DI_BYE_FAIL;
    uint8_t prev = d->state;
    if (so_dlg_table[prev][in].action == 0 && so_dlg_table[prev][in].rule)
        return; /* no BYE pending */
    int64_t now = m->ts_ns;
    if (t->cfg.want_records)
        so_revents_add(&d->events, now, SO_RE_BYE_RESPONSE, status, SO_M_NONE);
    if (!dlg_step(t, slot, in))
        return;
    d = dlg_at(t, slot);
    if (in == SO_DI_BYE_2XX) {
        end_dialog(t, slot, SO_OUT_COMPLETED, now, true, so_sat_sub(now, d->bye_ns), true);
    } else if (in == SO_DI_BYE_RETRY) {
        int64_t ra = m->retry_after > 0 ? m->retry_after : 0;
        d->wait_ns = so_sat_add(so_sat_add(now, so_sat_mul(ra, SO_NS_PER_S)), t->wait_ns);
        if (!so_dq_push(&t->waits, d->wait_ns, SO_W_DIALOG, slot, d->h.e.gen))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    } else {
        end_dialog(t, slot, SO_OUT_BYE_FAILED, now, true, so_sat_sub(now, d->bye_ns), false);
    }
}

void so_dlg_response(so_track *t, const so_msg *m, uint32_t txn, bool first_final) {
    so_txn *x = so_txn_at(t, txn);
    if (x->ctx_kind == SO_CTX_ATTEMPT) {
        if (m->status != 100) /* 100 Trying says nothing about the attempt */
            so_att_response(t, x->ctx_slot, m);
        return;
    }
    if (x->ctx_kind != SO_CTX_DIALOG || !first_final)
        return;
    uint32_t slot = live_dialog(t, x->ctx_slot, x->ctx_gen);
    if (slot == SO_NIL)
        return; /* the dialog has ended */
    if (m->method == SO_M_BYE) {
        bye_response(t, slot, m);
    } else if (m->status < 300) { /* 2xx to re-INVITE / UPDATE */
        int64_t request_se = x->request_se;
        if (!dlg_step(t, slot, SO_DI_REFRESH))
            return;
        so_dialog *d = dlg_at(t, slot);
        int64_t se = m->session_expires > 0 ? m->session_expires : request_se;
        d->expires_ns = expires_at(m->ts_ns, se, t->se_default_ns);
        push_expiry(t, slot);
    }
}

void so_dlg_on_timeout(so_track *t, const so_timeout_ev *ev) {
    if (ev->ctx_kind == SO_CTX_ATTEMPT) {
        so_att_timeout(t, ev->ctx_slot, ev);
        return;
    }
    if (ev->ctx_kind != SO_CTX_DIALOG)
        return;
    uint32_t slot = live_dialog(t, ev->ctx_slot, ev->ctx_gen);
    if (slot == SO_NIL)
        return;
    so_dialog *d = dlg_at(t, slot);
    if (d->bye_txn.slot != ev->txn.slot || d->bye_txn.gen != ev->txn.gen)
        return;
    if (so_dlg_table[d->state][SO_DI_BYE_TIMEOUT].action == 0)
        return; /* not waiting for this BYE */
    if (t->cfg.want_records)
        so_revents_add(&d->events, ev->ts_ns, SO_RE_BYE_TIMEOUT, 0, SO_M_NONE);
    if (dlg_step(t, slot, SO_DI_BYE_TIMEOUT)) {
        d = dlg_at(t, slot);
        int64_t delay = so_sat_sub(ev->ts_ns, d->bye_ns);
        end_dialog(t, slot, SO_OUT_BYE_FAILED, ev->ts_ns, true, delay, false);
    }
}

/* Retry windows always; Session-Expires only when ``sweep`` (the 1 s expiry check). */
void so_dlg_timer(so_track *t, int64_t now, bool sweep) {
    size_t n = 0, cap = 0;
    so_dq_item *due = NULL, it;
    while (so_dq_pop_due(&t->waits, now, &it)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            so_dq_item *p = (so_dq_item *)realloc(due, cap * sizeof(so_dq_item));
            if (!p) {
                so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
                if (it.kind == SO_W_ATTEMPT)
                    so_att_decref(t, (uint32_t)it.a);
                break;
            }
            due = p;
        }
        due[n++] = it;
    }
    for (size_t i = 0; i < n; i++) {
        if (due[i].kind == SO_W_DIALOG) {
            uint32_t slot = live_dialog(t, (uint32_t)due[i].a, (uint32_t)due[i].b);
            if (slot != SO_NIL && dlg_at(t, slot)->state == SO_DS_BYE_RETRY &&
                dlg_at(t, slot)->wait_ns == due[i].deadline && dlg_step(t, slot, SO_DI_RETRY_OVER))
                end_dialog(t, slot, SO_OUT_BYE_FAILED, due[i].deadline, false, 0, false);
        } else {
            so_att_wait_over(t, &due[i]);
        }
    }
    free(due);
    if (!sweep)
        return;
    while (so_dq_pop_due(&t->expiry, now, &it)) {
        so_h128 key = {it.a, it.b};
        uint32_t slot = so_tab_get(&t->dialogs, key);
        if (slot != SO_NIL && dlg_at(t, slot)->state == SO_DS_CONFIRMED &&
            dlg_at(t, slot)->expires_ns == it.deadline && dlg_step(t, slot, SO_DI_EXPIRE))
            end_dialog(t, slot, SO_OUT_EXPIRED, it.deadline, false, 0, false);
    }
}

void so_dlg_finish(so_track *t, int64_t now) {
    so_att_finish(t, now);
    while (t->dialogs.pool.head != SO_NIL) {
        uint32_t slot = t->dialogs.pool.head;
        dlg_step(t, slot, SO_DI_OPEN); /* every live state has the row */
        end_dialog(t, slot, SO_OUT_OPEN, now, false, 0, false);
    }
}

/* ---- records ------------------------------------------------------------------------------- */

void so_record_origin(so_record *r, const so_origin *o) {
    r->transport = o->transport;
    r->ip_len = o->ip_len;
    r->sport = o->sport;
    r->dport = o->dport;
    memcpy(r->src, o->src, 16);
    memcpy(r->dst, o->dst, 16);
}

/* A dialog record: the attempt's strings and origin, the given To tag and events. */
int32_t so_dialog_record(so_track *t, const so_attempt *a, so_slice to_tag, int64_t end_ns,
                         uint8_t outcome, uint16_t status, bool has_srd, int64_t srd_ns,
                         bool has_sdt, int64_t sdt_ns, const so_revents *events) {
    int32_t index;
    so_record *r = so_track_new_record(t, &index);
    if (!r)
        return -1;
    /* without a record part (records switched on after it opened): the dialog keys only */
    static const so_strings none;
    const so_strings *s = a->rec ? &a->rec->str : &none;
    so_slice call_id = so_att_call_id(a), from_tag = so_att_from_tag(a);
    size_t n = call_id.n + s->from_uri.n + s->to_uri.n + from_tag.n + to_tag.n +
               s->user_agent.n + s->session_id.n + s->correlation.n;
    r->blob = (uint8_t *)malloc(n ? n : 1);
    if (!r->blob) {
        t->n_records--;
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return -1;
    }
    uint8_t *w = r->blob;
#define PUT(field, src)                                                                         \
    do {                                                                                        \
        r->field.p = w;                                                                         \
        r->field.n = (src).n;                                                                   \
        if ((src).n)                                                                            \
            memcpy(w, (src).p, (src).n);                                                        \
        w += (src).n;                                                                           \
    } while (0)
    PUT(call_id, call_id);
    PUT(from_uri, s->from_uri);
    PUT(to_uri, s->to_uri);
    PUT(from_tag, from_tag);
    PUT(to_tag, to_tag);
    PUT(user_agent, s->user_agent);
    PUT(session_id, s->session_id);
    PUT(correlation, s->correlation);
#undef PUT
    r->registration = false;
    r->outcome = outcome;
    r->final_status = status;
    r->start_ns = a->start_ns;
    r->end_ns = end_ns;
    r->has_delay = has_srd;
    r->delay_ns = srd_ns;
    r->has_sdt = has_sdt;
    r->sdt_ns = sdt_ns;
    if (a->rec)
        so_record_origin(r, &a->rec->origin);
    if (events->n) {
        r->events = (so_revent *)malloc(events->n * sizeof(so_revent));
        if (r->events) {
            memcpy(r->events, events->items, events->n * sizeof(so_revent));
            r->n_events = events->n;
        }
    }
    r->events_dropped = events->dropped;
    if (!so_track_charge_record(t, r))
        return -1;
    return index;
}
