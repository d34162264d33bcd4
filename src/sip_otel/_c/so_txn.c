/* SPDX-License-Identifier: Apache-2.0
 * SIP transactions as seen by a passive observer (RFC 3261 §17). No I/O, no clock.
 *
 * Theory of operation
 * -------------------
 * A monitor sees both sides of every transaction, so one table serves as client and server
 * transaction matcher at once. Every message is classified against the table:
 *
 * - A request opens a transaction unless its key is already present, in which case it is a
 *   retransmission (counted by method, never passed upward). Key (§17.2.3): top Via branch
 *   with the magic cookie "z9hG4bK" + top Via sent-by + method (ACK looks up "INVITE") + the
 *   client's IP. Peers without the cookie (RFC 2543) get the fallback key: sent-by, method,
 *   client, Call-ID, From tag, CSeq number. The Request-URI and To tag of the §17.2.3 fallback
 *   are left out because responses carry no Request-URI and the INVITE carries no To tag while
 *   its ACK does; sent-by already tells two hops of one request apart. The client's IP (a
 *   request's source, a response's destination: §18.2.2) makes the same message captured on
 *   two links two copies, as tshark counts them; ports are left out (a response may go to the
 *   Via port).
 * - ACK (§17.1.1.3): when its key finds an INVITE transaction whose final response was not
 *   2xx, it belongs to that transaction (the first copy is reported, later ones are
 *   retransmissions). Otherwise it is the transaction-less ACK for a 2xx; a pseudo entry keyed
 *   by its own branch absorbs its retransmissions.
 * - CANCEL (§9.1) opens its own transaction and is linked to the INVITE with the same branch.
 * - A response is matched by the same key with its CSeq method (§17.1.3), then (captures that
 *   do not swap the IPs of a response) with its source IP as the client. Within a transaction
 *   a response whose (status, To tag) was already seen is a retransmission; forked responses
 *   differ by To tag and pass. A response matching nothing is an orphan.
 *
 * Timers (packet time): a transaction without a final response 64*T1 after its request fires
 * Timer B (INVITE with no response at all, §17.1.1.2) or Timer F (non-INVITE, §17.1.2.2). An
 * INVITE that got a provisional is in Proceeding where Timer B no longer runs; it is given up
 * after ``invite_proceeding_timeout_ns`` (a stand-in for a proxy's Timer C, §16.6 step 11,
 * reported as timer 'C'). After its final response an entry lingers 64*T1 so that
 * retransmissions of the request, the final response and the ACK are still recognised. The
 * table is bounded: the oldest entry goes first (transactions.full).
 */
#include "so_track_int.h"

#define MAGIC_COOKIE "z9hG4bK"
#define DOMAIN_TXN 1
#define DOMAIN_TXN_FALLBACK 2
#define DOMAIN_SEEN 3

static inline bool has_cookie(so_slice branch) {
    return branch.n >= 7 && memcmp(branch.p, MAGIC_COOKIE, 7) == 0;
}

/* The matching key of a message under ``method`` with ``client`` as the client's address. */
static so_h128 txn_key(const so_track *t, const so_msg *m, so_slice method, so_slice client) {
    if (has_cookie(m->via_branch)) {
        so_slice parts[4] = {m->via_branch, m->via_sent_by, method, client};
        return so_key(t, DOMAIN_TXN, parts, 4, NULL, 0);
    }
    so_slice parts[5] = {m->via_sent_by, method, client, m->call_id, m->from_tag};
    int64_t cseq = m->cseq;
    return so_key(t, DOMAIN_TXN_FALLBACK, parts, 5, &cseq, 1);
}

static inline so_slice src_ip(const so_msg *m) {
    return m->origin ? so_slice_of(m->origin->src, m->origin->ip_len) : so_slice_of(NULL, 0);
}
static inline so_slice dst_ip(const so_msg *m) {
    return m->origin ? so_slice_of(m->origin->dst, m->origin->ip_len) : so_slice_of(NULL, 0);
}

static const so_slice INVITE_TOK = {(const uint8_t *)"INVITE", 6};
static const so_slice ACK_TOK = {(const uint8_t *)"ACK", 3};

so_ref so_txn_ref(const so_track *t, uint32_t slot) {
    so_ref r = {slot, slot == SO_NIL ? 0 : so_txn_at(t, slot)->h.e.gen};
    return r;
}

bool so_ref_is(const so_track *t, so_ref r, uint32_t slot) {
    return r.slot == slot && slot != SO_NIL && so_txn_at(t, slot)->h.e.gen == r.gen;
}

static void release_ctx(so_track *t, uint8_t kind, uint32_t slot) {
    if (kind == SO_CTX_ATTEMPT)
        so_att_decref(t, slot);
    else if (kind == SO_CTX_REGISTER)
        so_regatt_decref(t, slot);
}

void so_txn_set_ctx(so_track *t, uint32_t txn, uint8_t kind, uint32_t slot) {
    so_txn *x = so_txn_at(t, txn);
    uint8_t old_kind = x->ctx_kind;
    uint32_t old_slot = x->ctx_slot;
    if (kind == SO_CTX_ATTEMPT)
        so_att_incref(t, slot);
    else if (kind == SO_CTX_REGISTER)
        so_regatt_incref(t, slot);
    x = so_txn_at(t, txn);
    x->ctx_kind = kind;
    x->ctx_slot = slot;
    x->ctx_gen = 0;
    if (kind == SO_CTX_DIALOG)
        x->ctx_gen = so_pool_entry(&t->dialogs.pool, slot)->gen;
    release_ctx(t, old_kind, old_slot);
}

/* Remove a transaction; its context reference is released unless ``keep_ctx`` (a timeout
 * event carries it to the layer above). */
static void txn_remove(so_track *t, uint32_t slot, bool keep_ctx) {
    so_txn *x = so_txn_at(t, slot);
    uint8_t kind = x->ctx_kind;
    uint32_t ctx = x->ctx_slot;
    so_set_free(&x->seen);
    x->ctx_kind = SO_CTX_NONE;
    so_tab_del(&t->txns, slot);
    if (!keep_ctx)
        release_ctx(t, kind, ctx);
}

void so_txn_drop(so_track *t, so_ref r) {
    if (r.slot == SO_NIL || r.slot >= t->txns.pool.cap)
        return;
    so_txn *x = so_txn_at(t, r.slot);
    if (!x->h.e.live || x->h.e.gen != r.gen)
        return;
    if (x->state != SO_TXN_COMPLETED)
        t->txn_open--;
    txn_remove(t, r.slot, false);
}

bool so_txn_evict_oldest(so_track *t, so_eviction why) {
    uint32_t slot = t->txns.pool.head;
    if (slot == SO_NIL)
        return false;
    so_txn_drop(t, so_txn_ref(t, slot));
    so_count_eviction(t, why);
    return true;
}

/* Open a transaction under ``key`` (one table probe); *existed when the key is taken (a
 * retransmission: nothing changes). A full table loses its oldest entry. */
static uint32_t txn_open(so_track *t, so_h128 key, uint8_t method, int64_t now, int64_t se,
                         bool *existed) {
    bool created;
    uint32_t slot = so_tab_put(&t->txns, key, &created);
    *existed = slot != SO_NIL && !created;
    if (*existed)
        return slot;
    if (slot == SO_NIL) {
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
        return SO_NIL;
    }
    /* (the new entry is the newest: the oldest other one goes) */
    while (so_tab_len(&t->txns) > t->cfg.max_transactions && t->txns.pool.head != slot)
        so_txn_evict_oldest(t, SO_E_TRANSACTIONS_FULL);
    so_txn *x = so_txn_at(t, slot);
    x->method = method;
    x->start_ns = now;
    x->state = SO_TXN_CALLING;
    x->request_se = se;
    x->ctx_slot = SO_NIL;
    t->txn_open++;
    return slot;
}

/* Set the transaction's deadline. A queue item is pushed only when no item with an earlier
 * or equal deadline is already queued for it: the final response's linger deadline is later
 * than the request's timer, so instead of a second item (which would sit in the queue for
 * 64*T1 next to the first, one per transaction), the request's item re-arms it when it pops
 * (so_txn_timer). Same deadlines, half the queue. */
static void push_deadline(so_track *t, uint32_t slot, int64_t deadline, bool in_order) {
    so_txn *x = so_txn_at(t, slot);
    x->deadline_ns = deadline;
    if (x->queued_ns && x->queued_ns <= deadline)
        return;
    x->queued_ns = deadline;
    bool ok = in_order ? so_dq_push_in_order(&t->txn_deadlines, deadline, 0, slot, x->h.e.gen)
                       : so_dq_push(&t->txn_deadlines, deadline, 0, slot, x->h.e.gen);
    if (!ok)
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
}

static void mark_seen(so_track *t, so_txn *x, uint64_t v) {
    if (x->seen.n < SO_MAX_RESPONSES_SEEN && !so_set_add(&x->seen, v))
        so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
}

so_verdict so_txn_request(so_track *t, const so_msg *m, uint32_t *txn, uint32_t *related) {
    so_slice client = src_ip(m);
    so_h128 key = txn_key(t, m, m->method_tok, client);
    *related = SO_NIL;
    if (m->method == SO_M_ACK) {
        uint32_t inv = so_tab_get(&t->txns, txn_key(t, m, INVITE_TOK, client));
        if (inv != SO_NIL) {
            so_txn *x = so_txn_at(t, inv);
            if (x->state == SO_TXN_COMPLETED && x->final_status >= 300) {
                uint64_t ack = so_key64(t, DOMAIN_SEEN, ACK_TOK, 0);
                if (x->seen.n && so_set_has(&x->seen, ack))
                    return SO_V_RETRANSMISSION;
                mark_seen(t, x, ack);
                *txn = *related = inv;
                return SO_V_NEW;
            }
        }
        /* ACK for a 2xx: its own "transaction" only to catch its retransmissions. */
        bool existed;
        uint32_t slot = txn_open(t, key, SO_M_ACK, m->ts_ns, -1, &existed);
        if (existed)
            return SO_V_RETRANSMISSION;
        if (slot == SO_NIL)
            return SO_V_ORPHAN;
        so_txn_at(t, slot)->state = SO_TXN_COMPLETED;
        t->txn_open--;
        push_deadline(t, slot, so_sat_add(m->ts_ns, t->linger_ns), true);
        *txn = slot;
        return SO_V_NEW;
    }
    bool existed;
    uint32_t slot = txn_open(t, key, m->method, m->ts_ns, m->session_expires, &existed);
    if (existed)
        return SO_V_RETRANSMISSION;
    if (slot == SO_NIL)
        return SO_V_ORPHAN;
    push_deadline(t, slot, so_sat_add(m->ts_ns, t->timeout_ns), true);
    *txn = slot;
    if (m->method == SO_M_CANCEL) /* linked to the INVITE with the same branch (§9.1) */
        *related = so_tab_get(&t->txns, txn_key(t, m, INVITE_TOK, client));
    return SO_V_NEW;
}

so_verdict so_txn_response(so_track *t, const so_msg *m, uint32_t *txn, bool *first_final) {
    uint32_t slot = so_tab_get(&t->txns, txn_key(t, m, m->method_tok, dst_ip(m)));
    *first_final = false;
    if (slot == SO_NIL) {
        const so_payload *o = m->origin;
        if (o && memcmp(o->src, o->dst, o->ip_len) != 0)
            slot = so_tab_get(&t->txns, txn_key(t, m, m->method_tok, src_ip(m)));
        if (slot == SO_NIL)
            return SO_V_ORPHAN;
    }
    so_txn *x = so_txn_at(t, slot);
    uint64_t st = so_key64(t, DOMAIN_SEEN, m->to_tag, m->status);
    if (x->seen.n == 0) {
        mark_seen(t, x, st);
    } else if (so_set_has(&x->seen, st)) {
        return SO_V_RETRANSMISSION;
    } else {
        mark_seen(t, x, st);
    }
    *txn = slot;
    uint8_t old = x->state;
    so_txn_input in = m->status < 200 ? SO_TI_PROVISIONAL : SO_TI_FINAL;
    int action = so_sm_step(&so_txn_table[old][in], &x->state, t,
                            SO_R_INTERNAL_TRANSACTION_TRANSITION);
    if (action != SO_TA_FIRST_FINAL)
        return SO_V_NEW;
    t->txn_open--;
    x->final_status = m->status;
    push_deadline(t, slot, so_sat_add(m->ts_ns, t->linger_ns), true);
    *first_final = true;
    return SO_V_NEW;
}

static bool grow_timeouts(so_track *t, size_t need) {
    if (need <= t->cap_timeouts)
        return true;
    size_t cap = t->cap_timeouts ? t->cap_timeouts * 2 : 64;
    while (cap < need)
        cap *= 2;
    so_timeout_ev *p = (so_timeout_ev *)realloc(t->timeouts, cap * sizeof(so_timeout_ev));
    if (!p)
        return false;
    t->timeouts = p;
    t->cap_timeouts = cap;
    return true;
}

/* Fire due deadlines; the timeouts are left in t->timeouts (returned count) with their
 * context references, for the tracker to hand to the layer above and release. */
size_t so_txn_timer(so_track *t, int64_t now) {
    /* Collect first: a deadline pushed while handling these is looked at next time. */
    size_t n_due = 0, cap = 0;
    so_dq_item *due = NULL, it;
    while (so_dq_pop_due(&t->txn_deadlines, now, &it)) {
        if (n_due == cap) {
            cap = cap ? cap * 2 : 64;
            so_dq_item *p = (so_dq_item *)realloc(due, cap * sizeof(so_dq_item));
            if (!p) {
                so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
                break;
            }
            due = p;
        }
        due[n_due++] = it;
    }
    size_t n_out = 0;
    for (size_t i = 0; i < n_due; i++) {
        uint32_t slot = (uint32_t)due[i].a;
        int64_t deadline = due[i].deadline;
        so_entry *e = so_pool_entry(&t->txns.pool, slot);
        if (!e->live || e->gen != (uint32_t)due[i].b)
            continue; /* already gone */
        so_txn *x = (so_txn *)e;
        if (deadline < x->deadline_ns && deadline == x->queued_ns) {
            /* The deadline moved on meanwhile (push_deadline): re-arm, or if it is due too,
             * take it now (only a completed transaction's linger is ever deferred, and its end
             * is silent, so handling it here rather than at its place in due[] changes
             * nothing). */
            x->queued_ns = 0;
            if (x->deadline_ns > now) {
                push_deadline(t, slot, x->deadline_ns, false);
                continue;
            }
            deadline = x->deadline_ns;
        }
        if (x->deadline_ns != deadline)
            continue; /* superseded */
        x->queued_ns = 0;
        int action = so_sm_step(&so_txn_table[x->state][SO_TI_DEADLINE], &x->state, t,
                                SO_R_INTERNAL_TRANSACTION_TRANSITION);
        uint8_t timer = x->method == SO_M_INVITE ? 'B' : 'F';
        if (action == SO_TA_LINGER_END) {
            txn_remove(t, slot, false);
            continue;
        }
        if (action == SO_TA_PROCEEDING && x->method == SO_M_INVITE) {
            int64_t give_up = so_sat_add(x->start_ns, t->cfg.invite_proceeding_timeout_ns);
            if (deadline < give_up) {
                push_deadline(t, slot, give_up, false); /* not "now + 64*T1": the heap */
                continue;
            }
            timer = 'C';
        } else if (action != SO_TA_TIMEOUT && action != SO_TA_PROCEEDING) {
            continue;
        }
        if (!grow_timeouts(t, n_out + 1)) {
            so_count_reason(t, SO_R_INTERNAL_NO_MEMORY);
            continue;
        }
        so_timeout_ev *ev = &t->timeouts[n_out++];
        ev->txn.slot = slot;
        ev->txn.gen = x->h.e.gen;
        ev->method = x->method;
        ev->timer = timer;
        ev->ctx_kind = x->ctx_kind;
        ev->ctx_slot = x->ctx_slot;
        ev->ctx_gen = x->ctx_gen;
        ev->ts_ns = deadline;
        t->txn_open--;
        txn_remove(t, slot, true);
    }
    free(due);
    return n_out;
}

void so_txn_brief_get(const so_track *t, uint32_t slot, so_txn_brief *out) {
    memset(out, 0, sizeof(*out));
    if (slot >= t->txns.pool.fresh)
        return;
    const so_txn *x = so_txn_at(t, slot);
    out->method = x->method;
    out->state = x->state;
    out->final_status = x->final_status;
    out->gen = x->h.e.gen;
    out->live = x->h.e.live != 0;
    out->key_a = x->h.key.a;
    out->key_b = x->h.key.b;
}

uint32_t so_txn_first(const so_track *t) { return t->txns.pool.head; }

uint32_t so_txn_next(const so_track *t, uint32_t slot) {
    return so_pool_entry(&t->txns.pool, slot)->next;
}

so_h128 so_txn_request_key(const so_track *t, const so_msg *m, so_slice method) {
    return txn_key(t, m, method, m->is_request ? src_ip(m) : dst_ip(m));
}
