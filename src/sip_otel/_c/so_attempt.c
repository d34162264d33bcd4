/* SPDX-License-Identifier: Apache-2.0
 * INVITE attempts (RFC 3261 §13, RFC 6076 "INVITE"): what an attempt is and how it ends.
 *
 * Theory of operation
 * -------------------
 * Attempts (keyed by Call-ID + From tag + CSeq) are initial INVITEs. The same INVITE forwarded
 * over a second hop (same key, new branch) joins the attempt instead of starting one. An
 * attempt is Proceeding until its first final:
 *   - 1xx (not 100) records the first provisional and one early dialog per To tag (forking);
 *   - the first 2xx answers it and confirms a dialog (so_dialog.c); later 2xx with other To
 *     tags (forking) confirm further dialogs of the same attempt, which still counts once;
 *   - 401/407 park it (Challenged) until the credentialed INVITE (same Call-ID and From tag,
 *     higher CSeq) resumes it, or 64*T1 passes; ``challenge_retry_is_new_attempt`` ends it
 *     there instead so that the retry counts as a second attempt;
 *   - 3xx ends it as "redirected" and leaves a carry so that the next INVITE of the same
 *     Call-ID and From tag measures SRD from the first INVITE (RFC 6076 §4.3: t1 not reset);
 *   - 487 ends it as "cancelled", other finals as failed_<class>, a transaction timer as
 *     "timed_out".
 * SRD (RFC 6076 §4.3, §5.4): one sample per dialog created (each To tag's first provisional,
 * or its 2xx when it had none), or the single delay to the first non-100 provisional / the
 * final when none was created. Both tables (attempts, pending) are bounded; the oldest entry
 * is evicted first (attempts.full) and ends with outcome "evicted".
 */
#include "so_dialog.h"

/* The call an attempt/dialog event is about (so_event.call_hash), and when. */
void so_att_event_call(const so_track *t, so_event *ev, const so_attempt *a, int64_t now) {
    so_slice cid = so_att_call_id(a);
    ev->call_hash = so_call_hash(t->cfg.seed, cid.p, cid.n);
    ev->end_ns = now;
}

/* ---- tables ------------------------------------------------------------------------------------ */

so_h128 so_pkey(const so_track *t, so_slice call_id, so_slice from_tag) {
    so_slice parts[2] = {call_id, from_tag};
    return so_key(t, SO_DOMAIN_PENDING, parts, 2, NULL, 0);
}

static so_h128 akey(const so_track *t, so_h128 pkey, int64_t cseq) {
    so_hasher h;
    so_hasher_init(&h, t->cfg.seed);
    so_hasher_u64(&h, SO_DOMAIN_ATTEMPT);
    so_hasher_u64(&h, pkey.a);
    so_hasher_u64(&h, pkey.b);
    so_hasher_u64(&h, (uint64_t)cseq);
    return so_hasher_final(&h);
}

/* Remove ``att`` from the attempts table if it is there under its current key. */
void so_att_forget(so_track *t, uint32_t att) {
    so_attempt *a = so_att_at(t, att);
    uint32_t slot = so_tab_get(&t->attempts, akey(t, a->pkey, a->cseq));
    if (slot != SO_NIL && ((so_att_entry *)so_tab_at(&t->attempts, slot))->att == att) {
        so_tab_del(&t->attempts, slot);
        so_att_decref(t, att);
    }
}

static void pending_remove(so_track *t, uint32_t slot) {
    so_pending *p = (so_pending *)so_tab_at(&t->pending, slot);
    bool carry = p->is_carry;
    uint32_t att = p->att;
    so_tab_del(&t->pending, slot);
    if (!carry)
        so_att_decref(t, att);
}

uint32_t so_att_early_count(const so_attempt *a) { return a->n_early; }

const so_early *so_att_early(const so_attempt *a, uint32_t i) {
    return i < 2 ? &a->early_inl[i] : &a->early_heap[i - 2];
}

static int64_t early_ns_of(const so_attempt *a, uint64_t tag, bool *found) {
    for (uint32_t i = 0; i < a->n_early; i++) {
        const so_early *e = so_att_early(a, i);
        if (e->tag == tag) {
            *found = true;
            return e->ns;
        }
    }
    *found = false;
    return 0;
}

static bool early_add(so_track *t, so_attempt *a, uint64_t tag, int64_t ns) {
    if (a->n_early < 2) {
        a->early_inl[a->n_early].tag = tag;
        a->early_inl[a->n_early++].ns = ns;
        return true;
    }
    if (!a->early_heap) {
        a->early_heap = (so_early *)malloc((SO_MAX_EARLY_PER_ATTEMPT - 2) * sizeof(so_early));
        if (!a->early_heap)
            return false;
        so_att_charge(t, a, so_mem_block((SO_MAX_EARLY_PER_ATTEMPT - 2) * sizeof(so_early)));
    }
    a->early_heap[a->n_early - 2].tag = tag;
    a->early_heap[a->n_early - 2].ns = ns;
    a->n_early++;
    return true;
}

/* RFC 6076 §4.3/§5.4: one SRD per dialog created, else one to the first indication. */
uint8_t so_att_srd_samples(const so_attempt *a, bool has_final, int64_t final_ns, bool tag_given,
                           bool tag_in_early, int64_t *out) {
    uint8_t n = 0;
    int64_t t1 = a->srd_start_ns;
    for (uint32_t i = 0; i < a->n_early; i++)
        out[n++] = so_sat_sub(so_att_early(a, i)->ns, t1);
    if (tag_given && has_final && !tag_in_early && n)
        out[n++] = so_sat_sub(final_ns, t1); /* a fork answered without a provisional */
    if (!n) {
        if (a->has_first_prov)
            out[n++] = so_sat_sub(a->first_prov_ns, t1);
        else if (has_final)
            out[n++] = so_sat_sub(final_ns, t1);
    }
    return n;
}

/* End an attempt with an outcome; ``prev`` is its state before the ending input. */
void so_att_end(so_track *t, uint32_t att, uint8_t prev, int64_t now, uint16_t status,
                uint8_t outcome, uint8_t timer) {
    so_attempt *a = so_att_at(t, att);
    if (prev == SO_AS_PROCEEDING)
        t->early_count -= a->n_early;
    a->state = SO_AS_ENDED;
    so_att_incref(t, att); /* keep it while tables let go */
    so_att_forget(t, att);
    uint32_t ps = so_tab_get(&t->pending, a->pkey);
    if (ps != SO_NIL) {
        so_pending *p = (so_pending *)so_tab_at(&t->pending, ps);
        if (!p->is_carry && p->att == att)
            pending_remove(t, ps);
    }
    a = so_att_at(t, att);
    so_event *ev = so_track_emit(t, SO_EV_ATTEMPT_ENDED);
    if (ev) {
        so_att_event_call(t, ev, a, now);
        ev->outcome = outcome;
        ev->status = status;
        ev->timer = timer;
        ev->n_srd = (outcome == SO_OUT_OPEN || outcome == SO_OUT_EVICTED)
                        ? 0
                        : so_att_srd_samples(a, status != 0, now, false, false, ev->srd_ns);
    }
    if (t->cfg.want_records) {
        static const so_revents no_events;
        so_slice to_tag = a->rec ? so_slice_of(a->rec->first_early_tag, a->rec->first_early_len)
                                 : so_slice_of(NULL, 0);
        bool has_srd = ev && ev->n_srd;
        int32_t rec = so_dialog_record(t, a, to_tag, now, outcome, status, has_srd,
                                       has_srd ? ev->srd_ns[0] : 0, false, 0,
                                       a->rec ? &a->rec->events : &no_events);
        if (ev)
            ev->record = rec;
    }
    so_att_decref(t, att);
}

static uint8_t outcome_of(uint16_t status) {
    if (status == 487)
        return SO_OUT_CANCELLED;
    switch (status / 100) {
    case 3:
        return SO_OUT_REDIRECTED;
    case 4:
        return SO_OUT_FAILED_4XX;
    case 5:
        return SO_OUT_FAILED_5XX;
    default:
        return SO_OUT_FAILED_6XX;
    }
}

bool so_pending_evict_oldest(so_track *t, so_eviction why, int64_t now) {
    uint32_t old = t->pending.pool.head;
    if (old == SO_NIL)
        return false;
    so_pending *p = (so_pending *)so_tab_at(&t->pending, old);
    so_count_eviction(t, why);
    bool old_carry = p->is_carry;
    uint32_t old_att = p->att;
    so_tab_del(&t->pending, old);
    if (!old_carry) {
        so_attempt *oa = so_att_at(t, old_att);
        if (oa->state == SO_AS_CHALLENGED &&
            so_sm_step(&so_att_table[oa->state][SO_AI_EVICT], &oa->state, t,
                       SO_R_INTERNAL_ATTEMPT_TRANSITION) > 0)
            so_att_end(t, old_att, SO_AS_CHALLENGED, now, 0, SO_OUT_EVICTED, 0);
        so_att_decref(t, old_att); /* the pending entry's reference */
    }
    return true;
}

bool so_att_evict_oldest(so_track *t, so_eviction why, int64_t now, bool with_txn) {
    uint32_t old_slot = t->attempts.pool.head;
    if (old_slot == SO_NIL)
        return false;
    uint32_t old = ((so_att_entry *)so_tab_at(&t->attempts, old_slot))->att;
    so_count_eviction(t, why);
    so_att_incref(t, old);
    so_tab_del(&t->attempts, old_slot);
    so_att_decref(t, old); /* the table's reference */
    uint8_t st = so_att_at(t, old)->state, prev = st;
    if (so_sm_step(&so_att_table[st][SO_AI_EVICT], &st, t, SO_R_INTERNAL_ATTEMPT_TRANSITION) > 0)
        so_att_end(t, old, prev, now, 0, SO_OUT_EVICTED, 0);
    if (with_txn)
        so_txn_drop(t, so_att_at(t, old)->txn);
    so_att_decref(t, old);
    return true;
}

/* Keep a challenged attempt or a redirect carry for its retry (bounded table). */
static void park(so_track *t, so_h128 pkey, int64_t now, bool carry, uint32_t att,
                 int64_t srd_start, int64_t cseq, int64_t deadline) {
    if (so_tab_len(&t->pending) >= t->cfg.max_invite_attempts)
        so_pending_evict_oldest(t, SO_E_ATTEMPTS_FULL, now);
    bool created;
    uint32_t slot = so_tab_put(&t->pending, pkey, &created);
    if (slot == SO_NIL) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return;
    }
    so_pending *p = (so_pending *)so_tab_at(&t->pending, slot);
    bool had_att = !created && !p->is_carry;
    uint32_t prev_att = p->att;
    p->is_carry = carry;
    p->att = carry ? SO_NIL : att;
    p->srd_start_ns = srd_start;
    p->cseq = cseq;
    p->deadline_ns = deadline;
    if (!carry)
        so_att_incref(t, att);
    if (had_att)
        so_att_decref(t, prev_att);
}

static void push_wait_attempt(so_track *t, uint32_t att, int64_t deadline) {
    so_att_incref(t, att); /* the queue holds it until the window closes */
    if (!so_dq_push_in_order(&t->waits, deadline, SO_W_ATTEMPT, att, so_att_at(t, att)->e.gen)) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        so_att_decref(t, att);
    }
}

/* A non-100 response routed to an attempt through its INVITE transaction. */
void so_att_response(so_track *t, uint32_t att, const so_msg *m) {
    so_attempt *a = so_att_at(t, att);
    uint16_t status = m->status;
    int64_t now = m->ts_ns;
    uint64_t tag = so_key64(t, SO_DOMAIN_TAG, m->to_tag, 0);
    so_att_rec *rec = t->cfg.want_records ? a->rec : NULL; /* record-only bookkeeping */
    if (status < 200) {
        if (so_sm_step(&so_att_table[a->state][SO_AI_1XX], &a->state, t,
                       SO_R_INTERNAL_ATTEMPT_TRANSITION) <= 0)
            return;
        uint64_t st = so_key64(t, SO_DOMAIN_SEEN, m->to_tag, status);
        if (so_set_has(&a->seen, st))
            return;
        if (a->seen.n < 4 * SO_MAX_EARLY_PER_ATTEMPT && !so_set_add(&a->seen, st))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        if (!a->has_first_prov) {
            a->has_first_prov = true;
            a->first_prov_ns = now;
        }
        bool found;
        early_ns_of(a, tag, &found);
        if (m->to_tag.n && !found && a->n_early < SO_MAX_EARLY_PER_ATTEMPT) {
            if (early_add(t, a, tag, now)) {
                t->early_count++;
                if (rec && a->n_early == 1) {
                    free(rec->first_early_tag);
                    so_att_charge(t, a, -(int64_t)so_mem_block(rec->first_early_len));
                    rec->first_early_len = 0;
                    rec->first_early_tag = (uint8_t *)malloc(m->to_tag.n);
                    if (rec->first_early_tag) {
                        memcpy(rec->first_early_tag, m->to_tag.p, m->to_tag.n);
                        rec->first_early_len = m->to_tag.n;
                        so_att_charge(t, a, so_mem_block(m->to_tag.n));
                    }
                }
            } else {
                so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            }
        }
        if (rec)
            so_revents_add(&rec->events, now, SO_RE_PROVISIONAL, status, SO_M_NONE);
        return;
    }
    if (status < 300) {
        if (so_set_has(&a->confirmed, tag))
            return; /* the same 2xx on another hop */
        uint8_t prev = a->state;
        if (so_sm_step(&so_att_table[a->state][SO_AI_2XX], &a->state, t,
                       SO_R_INTERNAL_ATTEMPT_TRANSITION) <= 0)
            return;
        bool in_early;
        int64_t early_ns = early_ns_of(a, tag, &in_early);
        if (prev == SO_AS_PROCEEDING) {
            a->final_status = status;
            so_att_forget(t, att);
            a = so_att_at(t, att);
            int64_t srd[SO_MAX_SRD_SAMPLES];
            uint8_t n = so_att_srd_samples(a, true, now, m->to_tag.n != 0, in_early, srd);
            if (rec)
                so_revents_add(&rec->events, now, SO_RE_OK_2XX, status, SO_M_NONE);
            int64_t dialog_srd = in_early ? so_sat_sub(early_ns, a->srd_start_ns) : srd[n - 1];
            so_dlg_confirm(t, att, m, dialog_srd);
            so_event *ev = so_track_emit(t, SO_EV_ATTEMPT_ENDED);
            if (ev) {
                so_att_event_call(t, ev, so_att_at(t, att), now);
                ev->outcome = SO_OUT_ANSWERED;
                ev->status = status;
                ev->n_srd = n;
                memcpy(ev->srd_ns, srd, n * sizeof(int64_t));
            }
        } else { /* answered: a forked 2xx */
            if (in_early) {
                /* Its early dialog got its SRD at the 18x (booked with the first 2xx): one
                 * SRD per dialog (RFC 6076 §4.3.1, §5.4), and the record carries it. */
                so_dlg_confirm(t, att, m, so_sat_sub(early_ns, a->srd_start_ns));
            } else {
                int64_t srd_ns = so_sat_sub(now, a->srd_start_ns);
                so_dlg_confirm(t, att, m, srd_ns);
                so_event *ev = so_track_emit(t, SO_EV_FORKED);
                if (ev) {
                    ev->n_srd = 1;
                    ev->srd_ns[0] = srd_ns;
                }
            }
        }
        return;
    }
    bool challenge = (status == 401 || status == 407) && !t->cfg.challenge_retry_is_new_attempt;
    uint8_t prev = a->state;
    if (so_sm_step(&so_att_table[a->state][challenge ? SO_AI_CHALLENGE : SO_AI_FINAL], &a->state,
                   t, SO_R_INTERNAL_ATTEMPT_TRANSITION) <= 0)
        return;
    if (challenge) {
        a->final_status = status;
        so_att_forget(t, att);
        a = so_att_at(t, att);
        t->early_count -= a->n_early;
        a->n_early = 0;
        if (a->rec) {
            free(a->rec->first_early_tag);
            so_att_charge(t, a, -(int64_t)so_mem_block(a->rec->first_early_len));
            a->rec->first_early_tag = NULL;
            a->rec->first_early_len = 0;
        }
        a->has_first_prov = false;
        if (rec)
            so_revents_add(&rec->events, now, SO_RE_CHALLENGE, status, SO_M_NONE);
        a->deadline_ns = so_sat_add(now, t->wait_ns);
        int64_t deadline = a->deadline_ns;
        park(t, a->pkey, now, false, att, 0, 0, 0);
        push_wait_attempt(t, att, deadline);
        return;
    }
    if (rec)
        so_revents_add(&rec->events, now, SO_RE_FINAL, status, SO_M_NONE);
    so_att_end(t, att, prev, now, status, outcome_of(status), 0);
    if (status < 400) {
        a = so_att_at(t, att);
        int64_t deadline = so_sat_add(now, t->wait_ns);
        so_h128 pkey = a->pkey;
        park(t, pkey, now, true, SO_NIL, a->srd_start_ns, a->cseq, deadline);
        if (!so_dq_push_in_order(&t->waits, deadline, SO_W_CARRY, pkey.a, pkey.b))
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    }
}

static uint32_t att_new(so_track *t, const so_msg *m, uint32_t txn, int64_t srd_start, so_h128 pkey) {
    uint32_t att = so_pool_alloc(&t->attempts_pool);
    if (att == SO_NIL) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return SO_NIL;
    }
    so_attempt *a = so_att_at(t, att);
    a->refs = 0;
    a->state = SO_AS_PROCEEDING;
    a->pkey = pkey;
    a->cseq = m->cseq;
    a->start_ns = m->ts_ns; /* first INVITE of this attempt on the wire */
    a->srd_start_ns = srd_start; /* RFC 6076 t1 (earlier after a 3xx redirect) */
    a->se = m->session_expires;
    a->txn = so_txn_ref(t, txn);
    /* Always: Call-ID and From tag key the dialogs its 2xx confirm (so_dlg_confirm). */
    size_t n = m->call_id.n + m->from_tag.n;
    a->keys = (uint8_t *)malloc(n ? n : 1);
    if (a->keys) {
        if (m->call_id.n)
            memcpy(a->keys, m->call_id.p, m->call_id.n);
        if (m->from_tag.n)
            memcpy(a->keys + m->call_id.n, m->from_tag.p, m->from_tag.n);
        a->call_id_len = m->call_id.n;
        a->from_tag_len = m->from_tag.n;
    } else {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    }
    if (t->cfg.want_records) {
        a->rec = (so_att_rec *)calloc(1, sizeof(so_att_rec));
        if (!a->rec || !so_strings_set(&a->rec->str, m, false, true)) {
            free(a->rec);
            a->rec = NULL;
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        } else {
            so_origin_set(&a->rec->origin, m->origin);
        }
    }
    /* the budget: the entry, its keys, its record part, strings and first events array (the
     * array may grow to SO_MAX_RECORD_EVENTS: up to 1 KiB more, not charged) */
    a->charged = 0;
    a->mem_table = SO_MEM_ATTEMPTS;
    size_t rec_bytes = 0;
    if (a->rec)
        rec_bytes = so_mem_block(sizeof(so_att_rec)) +
                    so_mem_block(so_strings_len(&a->rec->str)) + so_mem_block(8 * sizeof(so_revent));
    so_att_charge(t, a, (int64_t)(SO_MEM_ENTRY(t->attempts_pool.item_size) +
                                  so_mem_block(a->keys ? n : 0) + rec_bytes));
    return att;
}

/* A first copy of an INVITE without To tag. */
void so_att_initial_invite(so_track *t, const so_msg *m, uint32_t txn) {
    so_h128 pkey = so_pkey(t, m->call_id, m->from_tag);
    so_h128 key = akey(t, pkey, m->cseq);
    uint32_t slot = so_tab_get(&t->attempts, key);
    if (slot != SO_NIL) { /* same INVITE on another hop */
        so_txn_set_ctx(t, txn, SO_CTX_ATTEMPT, ((so_att_entry *)so_tab_at(&t->attempts, slot))->att);
        return;
    }
    int64_t srd_start = m->ts_ns;
    uint32_t ps = so_tab_get(&t->pending, pkey);
    if (ps != SO_NIL) {
        so_pending *p = (so_pending *)so_tab_at(&t->pending, ps);
        int64_t pend_cseq = p->is_carry ? p->cseq : so_att_at(t, p->att)->cseq;
        if (m->cseq > pend_cseq) {
            bool carry = p->is_carry;
            uint32_t pend = p->att;
            int64_t carry_start = p->srd_start_ns;
            if (!carry)
                so_att_incref(t, pend);
            pending_remove(t, ps);
            if (!carry) {
                so_attempt *a = so_att_at(t, pend);
                if (so_sm_step(&so_att_table[a->state][SO_AI_RETRY], &a->state, t,
                               SO_R_INTERNAL_ATTEMPT_TRANSITION) > 0) {
                    /* the credentialed retry resumes the attempt */
                    a->cseq = m->cseq;
                    a->txn = so_txn_ref(t, txn);
                    if (t->cfg.want_records && a->rec)
                        so_revents_add(&a->rec->events, m->ts_ns, SO_RE_INVITE_RETRY, 0, SO_M_NONE);
                    bool created;
                    uint32_t e = so_tab_put(&t->attempts, key, &created);
                    if (e != SO_NIL) {
                        ((so_att_entry *)so_tab_at(&t->attempts, e))->att = pend;
                        so_att_incref(t, pend);
                    } else {
                        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
                    }
                    so_txn_set_ctx(t, txn, SO_CTX_ATTEMPT, pend);
                    so_att_decref(t, pend);
                    return;
                }
                so_att_decref(t, pend);
            } else {
                srd_start = carry_start; /* after a 3xx: t1 of the first INVITE */
            }
        }
    }
    if (so_tab_len(&t->attempts) >= t->cfg.max_invite_attempts)
        so_att_evict_oldest(t, SO_E_ATTEMPTS_FULL, m->ts_ns, false);
    uint32_t att = att_new(t, m, txn, srd_start, pkey);
    if (att == SO_NIL)
        return;
    so_att_incref(t, att); /* held while being inserted */
    bool created;
    uint32_t e = so_tab_put(&t->attempts, key, &created);
    if (e != SO_NIL) {
        ((so_att_entry *)so_tab_at(&t->attempts, e))->att = att;
        so_att_incref(t, att);
    } else {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
    }
    so_txn_set_ctx(t, txn, SO_CTX_ATTEMPT, att);
    so_att_decref(t, att);
}

/* ACK for a non-2xx final (routed by its INVITE transaction) and CANCEL: record events. */
void so_att_note(so_track *t, uint32_t att, const so_msg *m, so_att_input in, uint8_t name) {
    so_attempt *a = so_att_at(t, att);
    if (in == SO_AI_CANCEL &&
        so_sm_step(&so_att_table[a->state][SO_AI_CANCEL], &a->state, t,
                   SO_R_INTERNAL_ATTEMPT_TRANSITION) <= 0)
        return;
    if (t->cfg.want_records && a->rec)
        so_revents_add(&a->rec->events, m->ts_ns, name, 0, SO_M_NONE);
}

/* Timer B/C of the attempt's first-hop transaction. */
void so_att_timeout(so_track *t, uint32_t att, const so_timeout_ev *ev) {
    so_attempt *a = so_att_at(t, att);
    if (a->txn.slot != ev->txn.slot || a->txn.gen != ev->txn.gen)
        return; /* another hop's transaction */
    uint8_t prev = a->state;
    if (so_sm_step(&so_att_table[a->state][SO_AI_TIMEOUT], &a->state, t,
                   SO_R_INTERNAL_ATTEMPT_TRANSITION) <= 0)
        return;
    so_att_end(t, att, prev, ev->ts_ns, 0, SO_OUT_TIMED_OUT, ev->timer);
}

/* Challenge and redirect windows. */
void so_att_wait_over(so_track *t, const so_dq_item *it) {
    if (it->kind == SO_W_ATTEMPT) {
        uint32_t att = (uint32_t)it->a;
        so_attempt *a = so_att_at(t, att);
        if (a->state == SO_AS_CHALLENGED && a->deadline_ns == it->deadline) {
            uint8_t prev = a->state;
            if (so_sm_step(&so_att_table[a->state][SO_AI_ABANDON], &a->state, t,
                           SO_R_INTERNAL_ATTEMPT_TRANSITION) > 0)
                so_att_end(t, att, prev, it->deadline, a->final_status, SO_OUT_FAILED_4XX, 0);
        }
        so_att_decref(t, att); /* the queue's reference */
    } else if (it->kind == SO_W_CARRY) {
        so_h128 pkey = {it->a, it->b};
        uint32_t ps = so_tab_get(&t->pending, pkey);
        if (ps != SO_NIL) {
            so_pending *p = (so_pending *)so_tab_at(&t->pending, ps);
            if (p->is_carry && p->deadline_ns <= it->deadline)
                pending_remove(t, ps);
        }
    }
}

void so_att_finish(so_track *t, int64_t now) {
    /* Attempts still ringing, then challenged ones waiting in pending (snapshots: ending one
     * removes it from its table), then the carries. */
    for (int pass = 0; pass < 2; pass++) {
        so_tab *tab = pass == 0 ? &t->attempts : &t->pending;
        uint32_t n = so_tab_len(tab), k = 0;
        uint32_t *snap = (uint32_t *)malloc((n ? n : 1) * sizeof(uint32_t));
        if (!snap) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            continue;
        }
        for (uint32_t s = tab->pool.head; s != SO_NIL; s = so_pool_entry(&tab->pool, s)->next) {
            uint32_t att;
            if (pass == 0) {
                att = ((so_att_entry *)so_tab_at(tab, s))->att;
            } else {
                so_pending *p = (so_pending *)so_tab_at(tab, s);
                if (p->is_carry)
                    continue;
                att = p->att;
            }
            so_att_incref(t, att);
            snap[k++] = att;
        }
        for (uint32_t i = 0; i < k; i++) {
            so_attempt *a = so_att_at(t, snap[i]);
            uint8_t prev = a->state;
            if (so_sm_step(&so_att_table[a->state][SO_AI_OPEN], &a->state, t,
                           SO_R_INTERNAL_ATTEMPT_TRANSITION) > 0)
                so_att_end(t, snap[i], prev, now, 0, SO_OUT_OPEN, 0);
        }
        for (uint32_t i = 0; i < k; i++)
            so_att_decref(t, snap[i]);
        free(snap);
    }
    while (t->pending.pool.head != SO_NIL)
        pending_remove(t, t->pending.pool.head);
}
