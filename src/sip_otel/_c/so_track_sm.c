/* SPDX-License-Identifier: Apache-2.0
 * The tracker's state machines as data: (state, input) -> (next state, action, rule).
 *
 * Each layer computes its input from what it saw (a response class, a timer, an eviction...)
 * and calls so_sm_step() with its table; the action in the row says what to do next. An
 * input that a state ignores has an explicit row (next = same state, action IGNORE), so a
 * missing row is a bug: it is counted as internal.<machine>_transition and changes nothing.
 * tests/sip/test_sip_machines.py walks every row.
 */
#include "so_track_int.h"

#define ROW(next, action, rule) {(int8_t)(next), (uint8_t)(action), rule}
#define NO_ROW {-1, 0, NULL}

/* Actions shared by the attempt/dialog/registration tables (the transaction table has its own,
 * so_txn_action). */
enum { A_IGNORE = 0, A_DO = 1 };

const char *const so_txn_state_names[SO_TXN_N_STATES] = {"calling", "proceeding", "completed"};
const char *const so_txn_input_names[SO_TXN_N_INPUTS] = {"provisional", "final", "deadline"};

/* Passive view of §17.1.1 / §17.1.2 ("calling" covers Trying). Requests never move the state:
 * a repeated request is a retransmission (§17.2.1/§17.2.2). */
const so_sm_row so_txn_table[SO_TXN_N_STATES][SO_TXN_N_INPUTS] = {
    [SO_TXN_CALLING] = {
        [SO_TI_PROVISIONAL] = ROW(SO_TXN_PROCEEDING, SO_TA_NONE,
                                  "§17.1.1.2 Calling -1xx-> Proceeding; §17.1.2.2 Trying -1xx->"),
        [SO_TI_FINAL] = ROW(SO_TXN_COMPLETED, SO_TA_FIRST_FINAL,
                            "§17.1.1.2 / §17.1.2.2 final response ends the request phase"),
        [SO_TI_DEADLINE] = ROW(SO_TXN_CALLING, SO_TA_TIMEOUT,
                               "§17.1.1.2 Timer B (INVITE) / §17.1.2.2 Timer F: 64*T1"),
    },
    [SO_TXN_PROCEEDING] = {
        [SO_TI_PROVISIONAL] = ROW(SO_TXN_PROCEEDING, SO_TA_NONE,
                                  "§17.1.1.2 further provisionals stay in Proceeding"),
        [SO_TI_FINAL] = ROW(SO_TXN_COMPLETED, SO_TA_FIRST_FINAL,
                            "§17.1.1.2 Proceeding -final-> Completed/Terminated"),
        [SO_TI_DEADLINE] = ROW(SO_TXN_PROCEEDING, SO_TA_PROCEEDING,
                               "§17.1.1.2 no Timer B in Proceeding: Timer C stand-in (§16.6 "
                               "step 11); §17.1.2.2 Timer F still runs for non-INVITE"),
    },
    [SO_TXN_COMPLETED] = {
        [SO_TI_PROVISIONAL] = ROW(SO_TXN_COMPLETED, SO_TA_NONE,
                                  "late provisional after a final: ignored for state"),
        [SO_TI_FINAL] = ROW(SO_TXN_COMPLETED, SO_TA_NONE,
                            "§13.2.2.4 / RFC 6026: further 2xx (forking) in Accepted"),
        [SO_TI_DEADLINE] = ROW(SO_TXN_COMPLETED, SO_TA_LINGER_END,
                               "lingered 64*T1 for retransmissions: removed"),
    },
};

const char *const so_att_state_names[SO_ATT_N_STATES] = {"proceeding", "challenged", "answered",
                                                         "ended"};
const char *const so_att_input_names[SO_ATT_N_INPUTS] = {
    "1xx", "2xx", "challenge", "retry", "abandon", "final", "timeout", "evict", "open", "cancel"};

#define IGNORED(state, why) ROW(state, A_IGNORE, why)

const so_sm_row so_att_table[SO_ATT_N_STATES][SO_ATT_N_INPUTS] = {
    [SO_AS_PROCEEDING] = {
        [SO_AI_1XX] = ROW(SO_AS_PROCEEDING, A_DO, "RFC 3261 §13.2.2.1; early dialog per To tag §12.1"),
        [SO_AI_2XX] = ROW(SO_AS_ANSWERED, A_DO, "RFC 3261 §13.2.2.4 dialog confirmed"),
        [SO_AI_CHALLENGE] = ROW(SO_AS_CHALLENGED, A_DO, "RFC 3261 §22.2; RFC 6076 §4.1/§4.3 t1 kept"),
        [SO_AI_RETRY] = IGNORED(SO_AS_PROCEEDING, "only a challenged attempt is resumed"),
        [SO_AI_ABANDON] = IGNORED(SO_AS_PROCEEDING, "a stale challenge window"),
        [SO_AI_FINAL] = ROW(SO_AS_ENDED, A_DO, "RFC 3261 §13.2.2.2/§13.2.2.3 3xx-6xx final"),
        [SO_AI_TIMEOUT] = ROW(SO_AS_ENDED, A_DO, "RFC 3261 §17.1.1.2 Timer B (or Timer C stand-in)"),
        [SO_AI_EVICT] = ROW(SO_AS_ENDED, A_DO, "table limit: evicted"),
        [SO_AI_OPEN] = ROW(SO_AS_ENDED, A_DO, "end of input: open"),
        [SO_AI_CANCEL] = ROW(SO_AS_PROCEEDING, A_DO, "RFC 3261 §9.1 CANCEL noted; 487 ends it"),
    },
    [SO_AS_CHALLENGED] = {
        [SO_AI_1XX] = IGNORED(SO_AS_CHALLENGED, "provisional after the challenge"),
        [SO_AI_2XX] = IGNORED(SO_AS_CHALLENGED, "2xx to the challenged INVITE"),
        [SO_AI_CHALLENGE] = IGNORED(SO_AS_CHALLENGED, "second final to the challenged INVITE"),
        [SO_AI_RETRY] = ROW(SO_AS_PROCEEDING, A_DO, "RFC 3261 §22.2 credentialed INVITE, CSeq+1"),
        [SO_AI_ABANDON] = ROW(SO_AS_ENDED, A_DO, "no credentialed retry within 64*T1: failed_4xx"),
        [SO_AI_FINAL] = IGNORED(SO_AS_CHALLENGED, "second final to the challenged INVITE"),
        [SO_AI_TIMEOUT] = IGNORED(SO_AS_CHALLENGED, "the challenge already ended the request"),
        [SO_AI_EVICT] = ROW(SO_AS_ENDED, A_DO, "table limit: evicted"),
        [SO_AI_OPEN] = ROW(SO_AS_ENDED, A_DO, "end of input: open"),
        [SO_AI_CANCEL] = IGNORED(SO_AS_CHALLENGED, "CANCEL after the final"),
    },
    [SO_AS_ANSWERED] = {
        [SO_AI_1XX] = IGNORED(SO_AS_ANSWERED, "provisional after the 2xx"),
        [SO_AI_2XX] = ROW(SO_AS_ANSWERED, A_DO, "RFC 3261 §13.2.2.4 forked 2xx: another dialog"),
        [SO_AI_CHALLENGE] = IGNORED(SO_AS_ANSWERED, "final after the 2xx"),
        [SO_AI_RETRY] = IGNORED(SO_AS_ANSWERED, "not challenged"),
        [SO_AI_ABANDON] = IGNORED(SO_AS_ANSWERED, "not challenged"),
        [SO_AI_FINAL] = IGNORED(SO_AS_ANSWERED, "final after the 2xx"),
        [SO_AI_TIMEOUT] = IGNORED(SO_AS_ANSWERED, "answered"),
        [SO_AI_EVICT] = IGNORED(SO_AS_ANSWERED, "answered: its dialogs carry on"),
        [SO_AI_OPEN] = IGNORED(SO_AS_ANSWERED, "answered: its dialogs end as open"),
        [SO_AI_CANCEL] = IGNORED(SO_AS_ANSWERED, "CANCEL after the 2xx"),
    },
    [SO_AS_ENDED] = {
        [SO_AI_1XX] = IGNORED(SO_AS_ENDED, "late provisional"),
        [SO_AI_2XX] = IGNORED(SO_AS_ENDED, "late 2xx"),
        [SO_AI_CHALLENGE] = IGNORED(SO_AS_ENDED, "late final"),
        [SO_AI_RETRY] = IGNORED(SO_AS_ENDED, "ended"),
        [SO_AI_ABANDON] = IGNORED(SO_AS_ENDED, "ended"),
        [SO_AI_FINAL] = IGNORED(SO_AS_ENDED, "late final"),
        [SO_AI_TIMEOUT] = IGNORED(SO_AS_ENDED, "ended"),
        [SO_AI_EVICT] = IGNORED(SO_AS_ENDED, "ended"),
        [SO_AI_OPEN] = IGNORED(SO_AS_ENDED, "ended"),
        [SO_AI_CANCEL] = IGNORED(SO_AS_ENDED, "late CANCEL"),
    },
};

const char *const so_dlg_state_names[SO_DLG_N_STATES] = {"confirmed", "bye_sent", "bye_retry",
                                                         "ended"};
const char *const so_dlg_input_names[SO_DLG_N_INPUTS] = {
    "refresh", "expire", "bye", "bye_2xx", "bye_retry", "bye_fail", "bye_timeout", "retry_over",
    "evict", "open"};

const so_sm_row so_dlg_table[SO_DLG_N_STATES][SO_DLG_N_INPUTS] = {
    [SO_DS_CONFIRMED] = {
        [SO_DI_REFRESH] = ROW(SO_DS_CONFIRMED, A_DO, "RFC 4028 §10 2xx to re-INVITE/UPDATE"),
        [SO_DI_EXPIRE] = ROW(SO_DS_ENDED, A_DO, "RFC 4028 §10 Session-Expires passed: expired"),
        [SO_DI_BYE] = ROW(SO_DS_BYE_SENT, A_DO, "RFC 3261 §15.1.1; RFC 6076 §4.5 SDT stops"),
        [SO_DI_BYE_2XX] = IGNORED(SO_DS_CONFIRMED, "no BYE pending"),
        [SO_DI_BYE_RETRY] = IGNORED(SO_DS_CONFIRMED, "no BYE pending"),
        [SO_DI_BYE_FAIL] = IGNORED(SO_DS_CONFIRMED, "no BYE pending"),
        [SO_DI_BYE_TIMEOUT] = IGNORED(SO_DS_CONFIRMED, "no BYE pending"),
        [SO_DI_RETRY_OVER] = IGNORED(SO_DS_CONFIRMED, "no BYE retry awaited"),
        [SO_DI_EVICT] = ROW(SO_DS_ENDED, A_DO, "table limit or tags reused: evicted"),
        [SO_DI_OPEN] = ROW(SO_DS_ENDED, A_DO, "end of input: open"),
    },
    [SO_DS_BYE_SENT] = {
        [SO_DI_REFRESH] = IGNORED(SO_DS_BYE_SENT, "the session is ending"),
        [SO_DI_EXPIRE] = IGNORED(SO_DS_BYE_SENT, "the BYE decides"),
        [SO_DI_BYE] = IGNORED(SO_DS_BYE_SENT, "a second BYE while the first is pending"),
        [SO_DI_BYE_2XX] = ROW(SO_DS_ENDED, A_DO, "RFC 3261 §15.1.2: completed; RFC 6076 §4.4 SDD"),
        [SO_DI_BYE_RETRY] = ROW(SO_DS_BYE_RETRY, A_DO, "RFC 6076 §4.4 503+Retry-After; §22.2 401/407"),
        [SO_DI_BYE_FAIL] = ROW(SO_DS_ENDED, A_DO, "RFC 3261 §12.2.1.2 481/408/other final: bye_failed"),
        [SO_DI_BYE_TIMEOUT] = ROW(SO_DS_ENDED, A_DO, "RFC 3261 §17.1.2.2 Timer F: bye_failed"),
        [SO_DI_RETRY_OVER] = IGNORED(SO_DS_BYE_SENT, "the retried BYE came"),
        [SO_DI_EVICT] = ROW(SO_DS_ENDED, A_DO, "table limit or tags reused: evicted"),
        [SO_DI_OPEN] = ROW(SO_DS_ENDED, A_DO, "end of input: open"),
    },
    [SO_DS_BYE_RETRY] = {
        [SO_DI_REFRESH] = IGNORED(SO_DS_BYE_RETRY, "the session is ending"),
        [SO_DI_EXPIRE] = IGNORED(SO_DS_BYE_RETRY, "the retry window decides"),
        [SO_DI_BYE] = ROW(SO_DS_BYE_SENT, A_DO, "RFC 6076 §4.4 retried BYE; SDD start kept"),
        [SO_DI_BYE_2XX] = IGNORED(SO_DS_BYE_RETRY, "no BYE pending"),
        [SO_DI_BYE_RETRY] = IGNORED(SO_DS_BYE_RETRY, "no BYE pending"),
        [SO_DI_BYE_FAIL] = IGNORED(SO_DS_BYE_RETRY, "no BYE pending"),
        [SO_DI_BYE_TIMEOUT] = IGNORED(SO_DS_BYE_RETRY, "no BYE pending"),
        [SO_DI_RETRY_OVER] = ROW(SO_DS_ENDED, A_DO, "no retried BYE within Retry-After + 64*T1: bye_failed"),
        [SO_DI_EVICT] = ROW(SO_DS_ENDED, A_DO, "table limit or tags reused: evicted"),
        [SO_DI_OPEN] = ROW(SO_DS_ENDED, A_DO, "end of input: open"),
    },
    [SO_DS_ENDED] = {
        [SO_DI_REFRESH] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_EXPIRE] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_BYE] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_BYE_2XX] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_BYE_RETRY] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_BYE_FAIL] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_BYE_TIMEOUT] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_RETRY_OVER] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_EVICT] = IGNORED(SO_DS_ENDED, "ended"),
        [SO_DI_OPEN] = IGNORED(SO_DS_ENDED, "ended"),
    },
};

const char *const so_reg_state_names[SO_REG_N_STATES] = {"pending", "challenged", "ended"};
const char *const so_reg_input_names[SO_REG_N_INPUTS] = {
    "2xx", "challenge", "retry", "abandon", "final", "timeout", "evict", "open"};

const so_sm_row so_reg_table[SO_REG_N_STATES][SO_REG_N_INPUTS] = {
    [SO_RS_PENDING] = {
        [SO_RI_2XX] = ROW(SO_RS_ENDED, A_DO, "RFC 3261 §10.3 step 8: registered (or unregistered)"),
        [SO_RI_CHALLENGE] = ROW(SO_RS_CHALLENGED, A_DO, "RFC 3261 §22.2; RFC 6076 §4.1 one attempt"),
        [SO_RI_RETRY] = IGNORED(SO_RS_PENDING, "only a challenged attempt is resumed"),
        [SO_RI_ABANDON] = IGNORED(SO_RS_PENDING, "a stale challenge window"),
        [SO_RI_FINAL] = ROW(SO_RS_ENDED, A_DO, "RFC 6076 §4.2 3xx-6xx final: failed"),
        [SO_RI_TIMEOUT] = ROW(SO_RS_ENDED, A_DO, "RFC 3261 §17.1.2.2 Timer F: timed_out (IRA)"),
        [SO_RI_EVICT] = ROW(SO_RS_ENDED, A_DO, "table limit: evicted"),
        [SO_RI_OPEN] = ROW(SO_RS_ENDED, A_DO, "end of input: open"),
    },
    [SO_RS_CHALLENGED] = {
        [SO_RI_2XX] = IGNORED(SO_RS_CHALLENGED, "a response after the challenge"),
        [SO_RI_CHALLENGE] = IGNORED(SO_RS_CHALLENGED, "a response after the challenge"),
        [SO_RI_RETRY] = ROW(SO_RS_PENDING, A_DO, "RFC 3261 §10.2.4 same Call-ID, CSeq+1"),
        [SO_RI_ABANDON] = ROW(SO_RS_ENDED, A_DO, "no credentialed retry within 64*T1: failed"),
        [SO_RI_FINAL] = IGNORED(SO_RS_CHALLENGED, "a response after the challenge"),
        [SO_RI_TIMEOUT] = IGNORED(SO_RS_CHALLENGED, "the challenge already ended the request"),
        [SO_RI_EVICT] = ROW(SO_RS_ENDED, A_DO, "table limit: evicted"),
        [SO_RI_OPEN] = ROW(SO_RS_ENDED, A_DO, "end of input: open"),
    },
    [SO_RS_ENDED] = {
        [SO_RI_2XX] = IGNORED(SO_RS_ENDED, "late response"),
        [SO_RI_CHALLENGE] = IGNORED(SO_RS_ENDED, "late response"),
        [SO_RI_RETRY] = IGNORED(SO_RS_ENDED, "ended"),
        [SO_RI_ABANDON] = IGNORED(SO_RS_ENDED, "ended"),
        [SO_RI_FINAL] = IGNORED(SO_RS_ENDED, "late response"),
        [SO_RI_TIMEOUT] = IGNORED(SO_RS_ENDED, "ended"),
        [SO_RI_EVICT] = IGNORED(SO_RS_ENDED, "ended"),
        [SO_RI_OPEN] = IGNORED(SO_RS_ENDED, "ended"),
    },
};

int so_sm_row_index(const so_sm_row *row) {
    const so_sm_row *bases[4] = {&so_txn_table[0][0], &so_att_table[0][0], &so_dlg_table[0][0],
                                 &so_reg_table[0][0]};
    const int sizes[4] = {SO_TXN_N_STATES * SO_TXN_N_INPUTS, SO_ATT_N_STATES * SO_ATT_N_INPUTS,
                          SO_DLG_N_STATES * SO_DLG_N_INPUTS, SO_REG_N_STATES * SO_REG_N_INPUTS};
    int offset = 0;
    for (int i = 0; i < 4; i++) {
        if (row >= bases[i] && row < bases[i] + sizes[i])
            return offset + (int)(row - bases[i]);
        offset += sizes[i];
    }
    return -1;
}

int so_sm_step(const so_sm_row *row, uint8_t *state, so_track *t, so_reason missing) {
    int i = so_sm_row_index(row);
    if (i >= 0)
        t->sm_hits[i]++;
    if (row->rule == NULL || row->next < 0) {
        t->reasons[missing]++;
        return -1;
    }
    *state = (uint8_t)row->next;
    return row->action;
}

static const int sm_states[4] = {SO_TXN_N_STATES, SO_ATT_N_STATES, SO_DLG_N_STATES, SO_REG_N_STATES};
static const int sm_inputs[4] = {SO_TXN_N_INPUTS, SO_ATT_N_INPUTS, SO_DLG_N_INPUTS, SO_REG_N_INPUTS};

int so_sm_n_rows(void) { return SO_SM_ROWS; }

const so_sm_row *so_sm_rows_flat(int i, int *machine, int *state, int *input) {
    const so_sm_row *bases[4] = {&so_txn_table[0][0], &so_att_table[0][0], &so_dlg_table[0][0],
                                 &so_reg_table[0][0]};
    for (int m = 0; m < 4; m++) {
        int n = sm_states[m] * sm_inputs[m];
        if (i < n) {
            *machine = m;
            *state = i / sm_inputs[m];
            *input = i % sm_inputs[m];
            return bases[m] + i;
        }
        i -= n;
    }
    return NULL;
}

const char *so_sm_name(int machine, int kind, int i) {
    const char *const *states[4] = {so_txn_state_names, so_att_state_names, so_dlg_state_names,
                                    so_reg_state_names};
    const char *const *inputs[4] = {so_txn_input_names, so_att_input_names, so_dlg_input_names,
                                    so_reg_input_names};
    if (machine < 0 || machine > 3 || i < 0)
        return "?";
    if (kind == 0)
        return i < sm_states[machine] ? states[machine][i] : "?";
    return i < sm_inputs[machine] ? inputs[machine][i] : "?";
}

void so_track_hits_get(const so_track *t, so_track_hits *out) {
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < SO_SM_ROWS && i < 256; i++)
        out->hits[i] = t->sm_hits[i];
}
