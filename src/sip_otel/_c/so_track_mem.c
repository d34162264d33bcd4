/* SPDX-License-Identifier: Apache-2.0
 * The tracker's side of the memory budget (so_mem, so_common.h): its eviction hook, what a
 * record costs, and the entry sizes tests compute expected use from. What each table charges
 * is charged where its entries are made and freed (so_tab_put/so_tab_del, att_new,
 * so_att_decref, so_dlg_confirm, ...). docs/reliability.md, "Memory budget".
 */
#include "so_track_int.h"

/* The memory budget's hook (so_mem): the oldest entry of ``table`` goes, counted
 * ``<table>.memory``. INVITE attempts: the attempts table, then challenged attempts and carries
 * (an answered attempt's bytes go with its dialogs). Registrations: REGISTER attempts while
 * they hold more bytes than the active AORs, else the oldest active AOR. */
bool so_track_mem_evict(void *ctx, int table) {
    so_track *t = (so_track *)ctx;
    switch (table) {
    case SO_MEM_TRANSACTIONS:
        return so_txn_evict_oldest(t, SO_E_TRANSACTIONS_MEMORY);
    case SO_MEM_ATTEMPTS:
        return so_att_evict_oldest(t, SO_E_ATTEMPTS_MEMORY, t->now, true) ||
               so_pending_evict_oldest(t, SO_E_ATTEMPTS_MEMORY, t->now);
    case SO_MEM_DIALOGS:
        return so_dlg_evict_oldest(t, SO_E_DIALOGS_MEMORY, t->now);
    case SO_MEM_REGISTRATIONS: {
        int64_t active = (int64_t)so_tab_len(&t->active) * (int64_t)t->active.charge;
        int64_t regatt = t->mem->used[SO_MEM_REGISTRATIONS] - active;
        /* the larger part first, then the other: each tried once */
        if (regatt > active)
            return so_regatt_evict_oldest(t, SO_E_REGISTER_ATTEMPTS_MEMORY, t->now, true) ||
                   so_active_evict_oldest(t, SO_E_REGISTRATIONS_MEMORY);
        return so_active_evict_oldest(t, SO_E_REGISTRATIONS_MEMORY) ||
               so_regatt_evict_oldest(t, SO_E_REGISTER_ATTEMPTS_MEMORY, t->now, true);
    }
    default:
        return false;
    }
}

/* A record's bytes: the C record and, as an estimate, the Python record the binding makes of it
 * (SO_RECORD_PY_BYTES for the object, its event objects and string headers, plus its strings
 * again). */
static int64_t record_bytes(const so_record *r) {
    size_t strings = (size_t)r->call_id.n + r->from_uri.n + r->to_uri.n + r->from_tag.n +
                     r->to_tag.n + r->user_agent.n + r->session_id.n + r->correlation.n;
    return (int64_t)(sizeof(so_record) + so_mem_block(strings) + strings +
                     so_mem_block((size_t)r->n_events * sizeof(so_revent)) +
                     (size_t)r->n_events * SO_REVENT_PY_BYTES + SO_RECORD_PY_BYTES);
}

bool so_track_charge_record(so_track *t, so_record *r) {
    int64_t n = record_bytes(r);
    so_mem *m = t->mem;
    if (m->limit && (uint64_t)(m->used[SO_MEM_RECORDS] + n) > so_mem_records_limit(m)) {
        /* the binding has not taken the records yet: this one is dropped, not an older one */
        so_count_eviction(t, SO_E_RECORDS_MEMORY);
        free(r->blob);
        free(r->events);
        t->n_records--; /* it is the newest */
        return false;
    }
    so_mem_charge(m, SO_MEM_RECORDS, n);
    return true;
}

const so_mem *so_track_mem(const so_track *t) { return t->mem; }

size_t so_track_entry_size(int which) {
    static const size_t sizes[] = {
        sizeof(so_txn),       sizeof(so_attempt), sizeof(so_att_entry), sizeof(so_pending),
        sizeof(so_dialog),    sizeof(so_regatt),  sizeof(so_reg_entry), sizeof(so_active),
        sizeof(so_att_rec),   sizeof(so_record),  sizeof(so_revent),    SO_RECORD_PY_BYTES,
        SO_REVENT_PY_BYTES,
    };
    return which >= 0 && which < (int)(sizeof(sizes) / sizeof(sizes[0])) ? sizes[which] : 0;
}

void so_track_set_want_records(so_track *t, bool want) { t->cfg.want_records = want; }

void so_track_gauges_get(const so_track *t, so_track_gauges *g) {
    g->sessions = so_tab_len(&t->dialogs);
    g->early_dialogs = t->early_count;
    g->registrations = so_tab_len(&t->active);
    g->transactions = t->txn_open;
    g->transactions_tracked = so_tab_len(&t->txns);
    g->invite_attempts = so_tab_len(&t->attempts) + so_tab_len(&t->pending);
    g->register_attempts = so_tab_len(&t->reg_attempts);
}
