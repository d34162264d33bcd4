/* SPDX-License-Identifier: Apache-2.0
 * track: SIP transactions, INVITE attempts and dialogs, registrations (RFC 3261 §10, §12-§17,
 * RFC 4028, RFC 6076) on packet time. Sans-IO: parsed messages in, events out.
 *
 * so_track_handle() classifies one message against the transaction table and passes first
 * copies to the attempt/dialog or registration layer; so_track_timer() fires Timer B/F/C,
 * retry windows and (every ``expiry_check_ns``) Session-Expires and registration expiries;
 * so_track_finish() ends whatever is still open. Each call appends its events to the
 * tracker's event list (so_track_events) in the order the layers produce them; the pipeline
 * folds them into the RFC 6076 counters (so_rfc6076.h) -- the tracker never counts metrics.
 * With ``want_records`` the events that end an attempt or dialog carry a record (strings
 * copied from the messages) for spans; without it no string is kept at all.
 *
 * The rules (what an attempt is, forking, challenges, redirects, expiry, Timer C) are those
 * of docs/rfc6076.md; the state machines run from the transition tables in so_track_sm.c.
 */
#ifndef SO_TRACK_H
#define SO_TRACK_H

#include "so_hash.h"
#include "so_reasons.h"
#include "so_types.h"

typedef struct so_track_config {
    int64_t t1_ns;                     /* RFC 3261 T1; Timer B/F = 64*T1 */
    int64_t session_expires_default_s; /* RFC 4028 default when absent (as sip-exporter) */
    int64_t expiry_check_ns;           /* expiry sweep every 1 s of packet time */
    bool challenge_retry_is_new_attempt;
    uint32_t max_transactions;      /* 200,000 open + lingering */
    uint32_t max_dialogs;           /* 200,000 confirmed */
    uint32_t max_registrations;     /* 500,000 active AORs */
    uint32_t max_invite_attempts;   /* 100,000 ringing/challenged (+ redirect carries) */
    uint32_t max_register_attempts; /* 100,000 */
    int64_t invite_proceeding_timeout_ns; /* Timer C stand-in: 300 s */
    int64_t register_expires_default_s;   /* RFC 3261 §10.2.1.1: 3600 */
    bool want_records;
    so_h128 seed; /* key hashing seed */
    uint64_t memory_limit; /* bytes, when the tracker owns its budget (mem NULL); 0: none */
    so_mem *mem;           /* the shared budget (the pipeline's), or NULL */
} so_track_config;

void so_track_config_default(so_track_config *cfg);

/* Outcomes (a bounded set; docs/rfc6076.md explains each). */
#define SO_OUTCOME_LIST(X)                                                                     \
    X(COMPLETED, "completed") X(FAILED_4XX, "failed_4xx") X(FAILED_5XX, "failed_5xx")         \
    X(FAILED_6XX, "failed_6xx") X(REDIRECTED, "redirected") X(CANCELLED, "cancelled")         \
    X(TIMED_OUT, "timed_out") X(BYE_FAILED, "bye_failed") X(EXPIRED, "expired")               \
    X(EVICTED, "evicted") X(OPEN, "open") X(ANSWERED, "answered")                             \
    X(REGISTERED, "registered") X(UNREGISTERED, "unregistered") X(FAILED, "failed")
#define SO_X_ENUM(id, name) SO_OUT_##id,
typedef enum so_outcome { SO_OUTCOME_LIST(SO_X_ENUM) SO_N_OUTCOMES } so_outcome;
#undef SO_X_ENUM
extern const char *const so_outcome_names[SO_N_OUTCOMES];
#define SO_N_DIALOG_OUTCOMES (SO_OUT_OPEN + 1) /* completed .. open */

/* Record events (span events of a dialog) */
#define SO_REVENT_LIST(X)                                                                      \
    X(PROVISIONAL, "sip.provisional") X(OK_2XX, "sip.2xx") X(ACK, "sip.ack")                  \
    X(REINVITE, "sip.reinvite") X(UPDATE, "sip.update") X(BYE, "sip.bye")                     \
    X(BYE_RESPONSE, "sip.bye_response") X(CANCEL, "sip.cancel") X(CHALLENGE, "sip.challenge") \
    X(INVITE_RETRY, "sip.invite_retry") X(FINAL, "sip.final") X(BYE_TIMEOUT, "sip.bye_timeout")
#define SO_X_ENUM(id, name) SO_RE_##id,
typedef enum so_revent_name { SO_REVENT_LIST(SO_X_ENUM) SO_N_REVENTS } so_revent_name;
#undef SO_X_ENUM
extern const char *const so_revent_names[SO_N_REVENTS];

#define SO_MAX_RECORD_EVENTS 64 /* a long call with many re-INVITEs must not grow a record */

typedef struct so_revent {
    int64_t ts_ns;
    uint8_t name;   /* so_revent_name */
    uint8_t method; /* so_method (SO_M_NONE: none) */
    uint16_t status;
} so_revent;

/* A finished dialog / attempt / registration, for a span. Strings are owned by the record. */
typedef struct so_record {
    bool registration;
    uint8_t outcome;
    uint16_t final_status;
    int64_t start_ns, end_ns;
    bool has_delay; /* srd (dialog) or rrd (registration) */
    int64_t delay_ns;
    bool has_sdt;
    int64_t sdt_ns;
    bool challenged; /* registrations */
    uint8_t transport; /* 0: unknown origin */
    uint8_t ip_len;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
    /* strings: call_id, from_uri, to_uri (AOR for registrations), from_tag, to_tag, user_agent */
    so_slice call_id, from_uri, to_uri, from_tag, to_tag, user_agent, session_id, correlation;
    so_revent *events;
    uint32_t n_events, events_dropped;
    uint8_t *blob; /* owns the strings */
} so_record;

#define SO_MAX_SRD_SAMPLES 17 /* one per early dialog (16) and one for a 2xx without one */

typedef enum so_event_kind {
    SO_EV_RETRANSMISSION,
    SO_EV_ORPHAN_RESPONSE,
    SO_EV_TXN_TIMEOUT,
    SO_EV_ATTEMPT_ENDED,
    SO_EV_FORKED,
    SO_EV_SESSION_ENDED,
    SO_EV_REINVITE,
    SO_EV_REGISTRATION_ENDED,
} so_event_kind;

typedef struct so_event {
    uint8_t kind;
    uint8_t outcome;     /* so_outcome */
    uint8_t timer;       /* 0, 'B', 'C', 'F' */
    uint8_t method;      /* retransmission / timeout: so_method */
    bool is_request;     /* retransmission */
    bool sdd_ok, completes, has_sdt, has_sdd, has_rrd;
    uint16_t status;     /* retransmission status / final status */
    uint8_t n_srd;
    /* attempt ended / forked / session ended: the call (so_call_hash of its Call-ID with the
     * tracker's seed), when it ended, and (session ended) whether it was the last confirmed
     * dialog of its attempt still open -- the media layer ends a call's media after it */
    bool last_dialog;
    uint64_t call_hash;
    int64_t end_ns;
    int64_t ts_ns;       /* timeout: when the timer fired */
    int64_t srd_ns[SO_MAX_SRD_SAMPLES]; /* attempt ended; forked: srd_ns[0] */
    int64_t sdt_ns, sdd_ns, rrd_ns;
    int32_t record;      /* index into so_track_records(), -1: none */
    so_slice method_tok; /* retransmission of an unknown method: its spelling (valid until the
                            next so_track_* call) */
    uint32_t txn_slot, txn_gen; /* timeout: the transaction (for the Python facade) */
} so_event;

typedef struct so_track so_track;

so_track *so_track_new(const so_track_config *cfg, uint64_t *reasons, uint64_t *evictions);
void so_track_free(so_track *t);

/* Track one message (timers due before it fire first). */
void so_track_handle(so_track *t, const so_msg *msg);
void so_track_timer(so_track *t, int64_t now_ns);
void so_track_finish(so_track *t, int64_t now_ns);
/* Keep strings for records from now on (attempts already open have none). */
void so_track_set_want_records(so_track *t, bool want);

/* Events appended since the last so_track_clear(); records they refer to. */
const so_event *so_track_events(const so_track *t, size_t *n);
so_record *so_track_records(so_track *t, size_t *n);
/* Forget the events (after the pipeline folded them); free the records (after the binding
 * turned them into Python objects). Events refer to records by index: clear events first. */
void so_track_clear_events(so_track *t);
void so_track_clear_records(so_track *t);

typedef struct so_track_gauges {
    uint64_t sessions, early_dialogs, registrations, transactions, transactions_tracked,
        invite_attempts, register_attempts;
} so_track_gauges;

void so_track_gauges_get(const so_track *t, so_track_gauges *g);
const so_mem *so_track_mem(const so_track *t); /* the budget the tracker charges */
/* Sizes the budget charges (for tests): 0 transaction, 1 INVITE attempt, 2 attempts-table
 * entry, 3 pending entry, 4 dialog, 5 REGISTER attempt, 6 REGISTER-table entry, 7 active AOR,
 * 8 attempt record part, 9 record, 10 record event, 11 record estimate, 12 event estimate. */
size_t so_track_entry_size(int which);

#endif
