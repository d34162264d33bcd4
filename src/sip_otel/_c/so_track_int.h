/* SPDX-License-Identifier: Apache-2.0
 * Inside the tracker: the tables, their entries and the state machines' tables.
 *
 * Lifetimes. Transactions and dialogs live exactly as long as their table entry; whatever
 * refers to them (an attempt's first-hop transaction, a dialog's BYE transaction, a
 * transaction's dialog, a timer) holds a (slot, generation) reference and finds it stale once
 * the entry is gone -- a gone dialog behaves as an ended one. INVITE and REGISTER attempts
 * outlive their tables (a transaction's context still routes a forked 2xx to an answered
 * attempt; a dialog keeps its attempt for its record; a challenged attempt waits in a retry
 * queue), so they are reference counted: table entries, transaction contexts, dialogs and
 * retry-queue items each hold one reference.
 */
#ifndef SO_TRACK_INT_H
#define SO_TRACK_INT_H

#include "so_dq.h"
#include "so_map.h"
#include "so_track.h"

/* ---- small building blocks -------------------------------------------------------------- */

/* A bounded set of 64-bit values (hashes of (status, tag) pairs, tags, ...), insertion
 * ordered: up to SO_SET_INLINE inline; past that all of them on the heap (cap > 0), whose
 * pointer shares the inline room. */
#define SO_SET_INLINE 3
typedef struct so_set {
    uint32_t n, cap; /* cap 0: inline */
    union {
        uint64_t inl[SO_SET_INLINE];
        uint64_t *heap;
    };
} so_set;

bool so_set_has(const so_set *s, uint64_t v);
/* Add (no duplicate check); false when memory runs out. */
bool so_set_add(so_set *s, uint64_t v);
void so_set_clear(so_set *s);
void so_set_free(so_set *s);
static inline uint64_t so_set_at(const so_set *s, uint32_t i) {
    return s->cap ? s->heap[i] : s->inl[i];
}

/* Record events of an attempt or dialog (only with want_records). */
typedef struct so_revents {
    so_revent *items;
    uint32_t n, cap, dropped;
} so_revents;

void so_revents_add(so_revents *e, int64_t ts, uint8_t name, uint16_t status, uint8_t method);
bool so_revents_copy(so_revents *dst, const so_revents *src);
void so_revents_free(so_revents *e);

/* An attempt's strings, one blob with slices into it: a REGISTER attempt's (Call-ID, AOR), an
 * INVITE attempt's record strings (only with records). */
typedef struct so_strings {
    uint8_t *blob;
    so_slice call_id, from_uri, to_uri, from_tag, user_agent;
    so_slice session_id, correlation; /* kept only for records (trace IDs, links) */
} so_strings;

typedef struct so_origin {
    uint8_t transport; /* 0: none */
    uint8_t ip_len;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
} so_origin;

typedef struct so_ref {
    uint32_t slot, gen;
} so_ref;

#define SO_NO_REF ((so_ref){SO_NIL, 0})

/* An insertion-ordered table (OrderedDict): entries in a pool (order list), indexed by key.
 * Assigning to an existing key keeps its position. Entry layout: so_tab_head first. */
typedef struct so_tab_head {
    so_entry e;
    so_h128 key;
} so_tab_head;

typedef struct so_tab {
    so_pool pool;
    so_map index;
    so_mem *mem; /* each entry charges ``charge`` bytes to mem->used[table] (NULL: none) */
    int table;
    size_t charge;
} so_tab;

/* ``queued``: each entry also has an item in a timer queue (charged with it). */
void so_tab_init(so_tab *t, size_t entry_size, so_mem *mem, int table, bool queued);
void so_tab_free(so_tab *t);
uint32_t so_tab_get(const so_tab *t, so_h128 key); /* slot or SO_NIL */
/* The slot of ``key``, appended at the end if new (*created set); SO_NIL on no memory. */
uint32_t so_tab_put(so_tab *t, so_h128 key, bool *created);
void so_tab_del(so_tab *t, uint32_t slot);
static inline uint32_t so_tab_len(const so_tab *t) { return t->pool.count; }
static inline void *so_tab_at(const so_tab *t, uint32_t slot) {
    return so_pool_entry(&t->pool, slot);
}

/* ---- transactions (so_txn.c) -------------------------------------------------------------- */

typedef enum so_txn_state { SO_TXN_CALLING, SO_TXN_PROCEEDING, SO_TXN_COMPLETED, SO_TXN_N_STATES } so_txn_state;
typedef enum so_txn_input { SO_TI_PROVISIONAL, SO_TI_FINAL, SO_TI_DEADLINE, SO_TXN_N_INPUTS } so_txn_input;
typedef enum so_txn_action {
    SO_TA_NONE,        /* state change only */
    SO_TA_FIRST_FINAL, /* the request phase ends: linger for retransmissions */
    SO_TA_TIMEOUT,     /* Timer B (INVITE) / F (non-INVITE) */
    SO_TA_PROCEEDING,  /* INVITE in Proceeding: Timer C stand-in; non-INVITE: Timer F */
    SO_TA_LINGER_END,  /* remove silently */
} so_txn_action;

enum so_ctx_kind { SO_CTX_NONE, SO_CTX_ATTEMPT, SO_CTX_DIALOG, SO_CTX_REGISTER };

#define SO_MAX_RESPONSES_SEEN 16 /* (status, To tag) per transaction */

typedef struct so_txn {
    so_tab_head h;
    int64_t start_ns, deadline_ns;
    int64_t queued_ns;  /* deadline of this entry's item in txn_deadlines (0: none) */
    int64_t request_se; /* Session-Expires of the request (-1: none) */
    uint8_t method;
    uint8_t state;
    uint16_t final_status;
    uint8_t ctx_kind;
    uint32_t ctx_slot, ctx_gen; /* attempt slot (counted reference) / dialog or register ref */
    so_set seen; /* hashes of (status, To tag); n == 0: none seen yet */
} so_txn;

/* ---- INVITE attempts and dialogs (so_dialog.c, so_attempt.c) ------------------------------ */

typedef enum so_att_state { SO_AS_PROCEEDING, SO_AS_CHALLENGED, SO_AS_ANSWERED, SO_AS_ENDED, SO_ATT_N_STATES } so_att_state;
typedef enum so_att_input {
    SO_AI_1XX, SO_AI_2XX, SO_AI_CHALLENGE, SO_AI_RETRY, SO_AI_ABANDON, SO_AI_FINAL,
    SO_AI_TIMEOUT, SO_AI_EVICT, SO_AI_OPEN, SO_AI_CANCEL, SO_ATT_N_INPUTS
} so_att_input;
typedef enum so_dlg_state { SO_DS_CONFIRMED, SO_DS_BYE_SENT, SO_DS_BYE_RETRY, SO_DS_ENDED, SO_DLG_N_STATES } so_dlg_state;
typedef enum so_dlg_input {
    SO_DI_REFRESH, SO_DI_EXPIRE, SO_DI_BYE, SO_DI_BYE_2XX, SO_DI_BYE_RETRY, SO_DI_BYE_FAIL,
    SO_DI_BYE_TIMEOUT, SO_DI_RETRY_OVER, SO_DI_EVICT, SO_DI_OPEN, SO_DLG_N_INPUTS
} so_dlg_input;
typedef enum so_reg_state { SO_RS_PENDING, SO_RS_CHALLENGED, SO_RS_ENDED, SO_REG_N_STATES } so_reg_state;
typedef enum so_reg_input {
    SO_RI_2XX, SO_RI_CHALLENGE, SO_RI_RETRY, SO_RI_ABANDON, SO_RI_FINAL, SO_RI_TIMEOUT,
    SO_RI_EVICT, SO_RI_OPEN, SO_REG_N_INPUTS
} so_reg_input;

#define SO_SM_ROWS (SO_TXN_N_STATES * SO_TXN_N_INPUTS + SO_ATT_N_STATES * SO_ATT_N_INPUTS + \
                    SO_DLG_N_STATES * SO_DLG_N_INPUTS + SO_REG_N_STATES * SO_REG_N_INPUTS)

#define SO_MAX_EARLY_PER_ATTEMPT 16
#define SO_MAX_CONFIRMED_PER_ATTEMPT 256 /* forked 2xx confirming dialogs of one attempt */
#define SO_MAX_DIALOG_SEEN 32            /* recent requests remembered for hop de-duplication */

typedef struct so_early {
    uint64_t tag;
    int64_t ns;
} so_early;

/* What only records need: allocated with the attempt when records are wanted (an attempt
 * opened before set_want_records(true) has none: its records carry the dialog keys only). */
typedef struct so_att_rec {
    so_revents events;
    so_strings str;           /* all of the INVITE's record strings */
    uint8_t *first_early_tag; /* record's To tag when no dialog was confirmed */
    uint32_t first_early_len;
    so_origin origin;
} so_att_rec;

typedef struct so_attempt {
    so_entry e;
    uint32_t refs;
    uint8_t state;
    bool completed; /* SCR counted once per attempt */
    bool has_first_prov;
    uint16_t final_status;
    uint32_t call_id_len; /* of ``keys`` */
    so_h128 pkey; /* (Call-ID, From tag): the pending key; the table key adds the CSeq */
    int64_t cseq;
    int64_t start_ns, srd_start_ns, first_prov_ns, deadline_ns;
    int64_t se; /* Session-Expires of the INVITE (-1: none) */
    so_ref txn; /* first hop's transaction: only its timer ends the attempt */
    uint32_t n_early;
    uint32_t open_dialogs; /* confirmed dialogs of it still in the table (media end) */
    uint32_t from_tag_len; /* of ``keys`` */
    so_early early_inl[2];
    so_early *early_heap; /* n_early > 2 */
    so_set confirmed; /* To tags confirmed */
    so_set seen;      /* (status, To tag) across hops */
    /* Call-ID then From tag, always kept: they key the dialogs its 2xx confirm */
    uint8_t *keys;
    so_att_rec *rec; /* NULL unless records were wanted when it opened */
    int64_t charged;    /* bytes charged to the budget, to ``mem_table``: */
    uint8_t mem_table; /* SO_MEM_ATTEMPTS, SO_MEM_DIALOGS once a dialog holds it */
} so_attempt;

static inline so_slice so_att_call_id(const so_attempt *a) {
    return so_slice_of(a->keys, a->call_id_len);
}
static inline so_slice so_att_from_tag(const so_attempt *a) {
    return so_slice_of(a->keys ? a->keys + a->call_id_len : NULL, a->from_tag_len);
}

typedef struct so_dialog {
    so_tab_head h;
    uint32_t att; /* counted reference */
    uint8_t state;
    bool has_bye;
    uint16_t final_status;
    int64_t confirmed_ns, srd_ns, expires_ns, wait_ns, bye_ns;
    so_ref bye_txn;
    so_set seen; /* recent (From tag, CSeq, method) */
    so_revents events;
    uint8_t *to_tag_blob;
    uint32_t to_tag_len;
    uint32_t extra; /* variable bytes charged to the budget beyond the entry (SO_MEM_DIALOGS) */
} so_dialog;

/* pending: challenged attempts (waiting for the credentialed retry) and 3xx carries */
typedef struct so_pending {
    so_tab_head h;
    bool is_carry;
    uint32_t att; /* counted reference (not a carry) */
    int64_t srd_start_ns, cseq, deadline_ns; /* carry */
} so_pending;

typedef struct so_att_entry {
    so_tab_head h;
    uint32_t att; /* counted reference */
} so_att_entry;

/* ---- registrations (so_reg.c) -------------------------------------------------------------- */

typedef struct so_regatt {
    so_entry e;
    uint32_t refs;
    uint8_t state;
    bool challenged, unregister;
    uint16_t final_status;
    so_h128 key;   /* (Call-ID, AOR) */
    so_h128 aor;   /* AOR */
    int64_t cseq, start_ns, deadline_ns, req_expires;
    so_ref txn;
    so_strings str; /* call_id, to_uri (AOR) */
    so_origin origin;
    int64_t charged; /* bytes charged to the budget (SO_MEM_REGISTRATIONS) */
} so_regatt;

typedef struct so_reg_entry {
    so_tab_head h;
    uint32_t att; /* counted reference */
} so_reg_entry;

typedef struct so_active {
    so_tab_head h;
    int64_t expiry_ns;
} so_active;

/* ---- the tracker ---------------------------------------------------------------------------- */

enum so_wait_kind { SO_W_ATTEMPT = 1, SO_W_DIALOG, SO_W_CARRY, SO_W_REGISTER };

typedef struct so_timeout_ev {
    so_ref txn;
    uint8_t method, timer, ctx_kind;
    uint32_t ctx_slot, ctx_gen;
    int64_t ts_ns;
} so_timeout_ev;

struct so_track {
    so_track_config cfg;
    so_mem own; /* the budget when the config passes none */
    so_mem *mem;
    int64_t now; /* packet time of the latest call (evictions by the budget end entries then) */
    uint64_t *reasons, *evictions;
    int64_t timeout_ns, linger_ns, wait_ns, se_default_ns;
    /* transactions */
    so_tab txns;
    uint32_t txn_open;
    so_dq txn_deadlines;
    /* attempts and dialogs */
    so_pool attempts_pool; /* so_attempt, reference counted */
    so_tab attempts;       /* (Call-ID, From tag, CSeq) -> attempt */
    so_tab pending;        /* (Call-ID, From tag) -> challenged attempt or carry */
    so_tab dialogs;        /* (Call-ID, min tag, max tag) -> dialog */
    uint32_t early_count;
    so_dq waits;  /* challenge/redirect windows, BYE retry windows */
    so_dq expiry; /* Session-Expires, by dialog key */
    /* registrations */
    so_pool regatt_pool;
    so_tab reg_attempts; /* (Call-ID, AOR) -> attempt */
    so_tab active;       /* AOR -> expiry */
    so_dq reg_waits;
    so_dq reg_expiry;
    /* timers */
    int64_t next_sweep, next_check;
    /* output */
    so_event *events;
    size_t n_events, cap_events;
    so_record *records;
    size_t n_records, cap_records;
    uint64_t sm_hits[SO_SM_ROWS]; /* rows of the state machines taken (so_sm_row_index) */
    so_event *side; /* registration events held back while timers run */
    size_t n_side, cap_side;
    bool divert_reg;
    /* scratch */
    so_timeout_ev *timeouts;
    size_t cap_timeouts;
};

/* state machines (so_track_sm.c): the next state and action for (state, input), or -1 with
 * internal.<machine>_transition counted when the table has no row */
typedef struct so_sm_row {
    int8_t next;   /* -1: no row */
    uint8_t action;
    const char *rule;
} so_sm_row;

extern const so_sm_row so_txn_table[SO_TXN_N_STATES][SO_TXN_N_INPUTS];
extern const so_sm_row so_att_table[SO_ATT_N_STATES][SO_ATT_N_INPUTS];
extern const so_sm_row so_dlg_table[SO_DLG_N_STATES][SO_DLG_N_INPUTS];
extern const so_sm_row so_reg_table[SO_REG_N_STATES][SO_REG_N_INPUTS];
extern const char *const so_txn_state_names[SO_TXN_N_STATES];
extern const char *const so_txn_input_names[SO_TXN_N_INPUTS];
extern const char *const so_att_state_names[SO_ATT_N_STATES];
extern const char *const so_att_input_names[SO_ATT_N_INPUTS];
extern const char *const so_dlg_state_names[SO_DLG_N_STATES];
extern const char *const so_dlg_input_names[SO_DLG_N_INPUTS];
extern const char *const so_reg_state_names[SO_REG_N_STATES];
extern const char *const so_reg_input_names[SO_REG_N_INPUTS];

/* Apply (state, input): returns the row's action and updates *state, or -1 (counted). Each
 * row taken is counted in the tracker's ``sm_hits`` (tests check that scenarios walk them). */
int so_sm_step(const so_sm_row *row, uint8_t *state, so_track *t, so_reason missing);
/* Row index of a table row in the concatenation txn | attempt | dialog | registration. */
int so_sm_row_index(const so_sm_row *row);
/* For tests: row i of the concatenation with its machine (0-3), state and input; names. */
int so_sm_n_rows(void);
const so_sm_row *so_sm_rows_flat(int i, int *machine, int *state, int *input);
const char *so_sm_name(int machine, int kind /* 0 state, 1 input */, int i);
typedef struct so_track_hits {
    uint64_t hits[256];
} so_track_hits;
void so_track_hits_get(const so_track *t, so_track_hits *out);

/* ---- shared helpers ------------------------------------------------------------------------ */

so_event *so_track_emit(so_track *t, so_event_kind kind);
void so_att_event_call(const so_track *t, so_event *ev, const so_attempt *a, int64_t now);
so_record *so_track_new_record(so_track *t, int32_t *index);
so_h128 so_key(const so_track *t, uint64_t domain, const so_slice *parts, size_t n, const int64_t *nums,
               size_t m);
uint64_t so_key64(const so_track *t, uint64_t domain, so_slice s, int64_t num);
/* ``to_uri_only``: Call-ID and To URI only (a REGISTER's AOR); ``for_records``: also what only
 * spans use (Session-ID, correlation value). */
bool so_strings_set(so_strings *s, const so_msg *m, bool to_uri_only, bool for_records);
void so_strings_free(so_strings *s);
/* Bytes of the blob (the sum of its slices). */
size_t so_strings_len(const so_strings *s);
static inline void so_att_charge(so_track *t, so_attempt *a, int64_t delta) {
    a->charged += delta;
    so_mem_charge(t->mem, (so_mem_table)a->mem_table, delta);
}
/* An answered attempt lives as long as its dialogs: its bytes are theirs (evicting dialogs
 * frees them; evicting attempts could not). */
static inline void so_att_charge_to_dialogs(so_track *t, so_attempt *a) {
    if (a->mem_table == SO_MEM_DIALOGS)
        return;
    so_mem_charge(t->mem, (so_mem_table)a->mem_table, -a->charged);
    a->mem_table = SO_MEM_DIALOGS;
    so_mem_charge(t->mem, SO_MEM_DIALOGS, a->charged);
}
/* A finished record's bytes go to SO_MEM_RECORDS until so_track_clear_records. Records waiting
 * for the binding may take a sixteenth of the budget: past that the new record (the newest,
 * ``r``) is freed and dropped, counted ``records.memory``, and false returned (no record). */
#define SO_RECORD_PY_BYTES 1024
#define SO_REVENT_PY_BYTES 256
bool so_track_charge_record(so_track *t, so_record *r);
/* The memory budget's eviction hook for the tracker's tables (so_track_mem.c). */
bool so_track_mem_evict(void *ctx, int table);
void so_origin_set(so_origin *o, const so_payload *p);

/* transactions */
typedef enum so_verdict { SO_V_NEW, SO_V_RETRANSMISSION, SO_V_ORPHAN } so_verdict;
so_verdict so_txn_request(so_track *t, const so_msg *m, uint32_t *txn, uint32_t *related);
/* Evictions of the oldest entry, counted as ``why``; false when the table is empty (or the
 * entry could not be ended). Used by the count limits and by the memory budget. */
bool so_txn_evict_oldest(so_track *t, so_eviction why);
/* Remove the transaction ``r`` if it is still there (an evicted attempt's first hop: the
 * reference it holds would keep the attempt's memory). */
void so_txn_drop(so_track *t, so_ref r);
/* ``with_txn``: also drop the attempt's first-hop transaction, whose context reference would
 * keep the attempt (and its bytes) alive until Timer B -- what the memory budget needs. */
bool so_att_evict_oldest(so_track *t, so_eviction why, int64_t now, bool with_txn);
bool so_pending_evict_oldest(so_track *t, so_eviction why, int64_t now);
bool so_dlg_evict_oldest(so_track *t, so_eviction why, int64_t now);
bool so_regatt_evict_oldest(so_track *t, so_eviction why, int64_t now, bool with_txn);
bool so_active_evict_oldest(so_track *t, so_eviction why);
so_verdict so_txn_response(so_track *t, const so_msg *m, uint32_t *txn, bool *first_final);
size_t so_txn_timer(so_track *t, int64_t now);
static inline so_txn *so_txn_at(const so_track *t, uint32_t slot) { return (so_txn *)so_tab_at(&t->txns, slot); }
/* for the Python view of the transaction layer (sip/transactions.py) */
typedef struct so_txn_brief {
    uint8_t method, state;
    uint16_t final_status;
    uint32_t gen;
    bool live;
    uint64_t key_a, key_b;
} so_txn_brief;
void so_txn_brief_get(const so_track *t, uint32_t slot, so_txn_brief *out);
uint32_t so_txn_first(const so_track *t);
so_h128 so_txn_request_key(const so_track *t, const so_msg *m, so_slice method);
uint32_t so_txn_next(const so_track *t, uint32_t slot);
so_ref so_txn_ref(const so_track *t, uint32_t slot);
bool so_ref_is(const so_track *t, so_ref r, uint32_t slot);
void so_txn_set_ctx(so_track *t, uint32_t txn, uint8_t kind, uint32_t slot);

/* attempts, dialogs */
void so_dlg_request(so_track *t, const so_msg *m, uint32_t txn, uint32_t related);
void so_dlg_response(so_track *t, const so_msg *m, uint32_t txn, bool first_final);
void so_dlg_on_timeout(so_track *t, const so_timeout_ev *ev);
void so_dlg_timer(so_track *t, int64_t now, bool sweep);
void so_dlg_finish(so_track *t, int64_t now);
void so_att_incref(so_track *t, uint32_t att);
void so_att_decref(so_track *t, uint32_t att);
static inline so_attempt *so_att_at(const so_track *t, uint32_t slot) {
    return (so_attempt *)so_pool_entry(&t->attempts_pool, slot);
}

/* registrations */
void so_reg_request(so_track *t, const so_msg *m, uint32_t txn);
void so_reg_response(so_track *t, const so_msg *m, uint32_t txn);
void so_reg_on_timeout(so_track *t, const so_timeout_ev *ev);
void so_reg_timer(so_track *t, int64_t now, bool sweep);
void so_reg_finish(so_track *t, int64_t now);
void so_regatt_incref(so_track *t, uint32_t att);
void so_regatt_decref(so_track *t, uint32_t att);
static inline so_regatt *so_regatt_at(const so_track *t, uint32_t slot) {
    return (so_regatt *)so_pool_entry(&t->regatt_pool, slot);
}

static inline void so_count_eviction(so_track *t, so_eviction e) { t->evictions[e]++; }
static inline void so_count_reason(so_track *t, so_reason r) { t->reasons[r]++; }

#endif
