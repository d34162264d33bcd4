/* SPDX-License-Identifier: Apache-2.0
 * Message counters and the RFC 6076 aggregation (so_stats.h). Every rule the RFC leaves open
 * is written down in docs/rfc6076.md and cited here by section.
 */
#include "so_stats.h"

#include "so_hash.h"

const double so_delay_bounds[SO_N_DELAY_BOUNDS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0,
    20.0, 30.0,
};
const double so_duration_bounds[SO_N_DURATION_BOUNDS] = {
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
    7200.0, 14400.0,
};

void so_hist_init(so_hist *h, const double *bounds, uint32_t n) {
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n_bounds = n;
    h->min = __builtin_inf();
    h->max = -__builtin_inf();
}

void so_hist_observe(so_hist *h, double value) {
    uint32_t i = 0;
    while (i < h->n_bounds && h->bounds[i] < value) /* bisect_left */
        i++;
    h->counts[i]++;
    h->total += value;
    h->count++;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

static inline double seconds(int64_t ns) { return (double)ns / 1e9; }

/* ---- unknown method spellings ----------------------------------------------------------------- */

static so_h128 name_key(const so_names *n, so_slice s) {
    so_hasher h;
    so_hasher_init(&h, n->seed);
    so_hasher_slice(&h, s);
    return so_hasher_final(&h);
}

uint32_t so_names_id(so_names *n, so_slice name) {
    so_h128 k = name_key(n, name);
    uint32_t id = so_map_get(&n->index, k);
    if (id != SO_NIL)
        return id;
    if (n->n >= SO_MAX_METHOD_NAMES)
        return UINT32_MAX;
    if (n->n == n->cap) {
        uint32_t cap = n->cap ? n->cap * 2 : 16;
        uint8_t **names = (uint8_t **)realloc(n->names, cap * sizeof(uint8_t *));
        if (names)
            n->names = names;
        uint32_t *lens = (uint32_t *)realloc(n->lens, cap * sizeof(uint32_t));
        if (lens)
            n->lens = lens;
        uint64_t *req = (uint64_t *)realloc(n->requests, cap * sizeof(uint64_t));
        if (req)
            n->requests = req;
        uint64_t *ret = (uint64_t *)realloc(n->retransmissions, cap * sizeof(uint64_t));
        if (ret)
            n->retransmissions = ret;
        if (!names || !lens || !req || !ret)
            return UINT32_MAX;
        n->cap = cap;
    }
    uint8_t *copy = (uint8_t *)malloc(name.n ? name.n : 1);
    if (!copy || !so_map_put(&n->index, k, n->n)) {
        free(copy);
        return UINT32_MAX;
    }
    if (name.n)
        memcpy(copy, name.p, name.n);
    id = n->n++;
    n->names[id] = copy;
    n->lens[id] = name.n;
    n->requests[id] = 0;
    n->retransmissions[id] = 0;
    return id;
}

/* (status, unknown method) response counter */
static void names_code(so_names *n, uint32_t id, uint16_t status) {
    if (id == UINT32_MAX)
        id = 0xFFFF;
    uint32_t code_key = ((uint32_t)status << 16) | (id & 0xFFFF);
    so_h128 k = {code_key * 0x9E3779B97F4A7C15ULL, code_key};
    uint32_t slot = so_map_get(&n->by_code, k);
    if (slot == SO_NIL) {
        if (n->n_codes == n->cap_codes) {
            uint32_t cap = n->cap_codes ? n->cap_codes * 2 : 16;
            uint64_t *c = (uint64_t *)realloc(n->code_counts, cap * sizeof(uint64_t));
            if (c)
                n->code_counts = c;
            uint32_t *ks = (uint32_t *)realloc(n->code_keys, cap * sizeof(uint32_t));
            if (ks)
                n->code_keys = ks;
            if (!c || !ks)
                return;
            n->cap_codes = cap;
        }
        slot = n->n_codes;
        if (!so_map_put(&n->by_code, k, slot))
            return;
        n->n_codes++;
        n->code_counts[slot] = 0;
        n->code_keys[slot] = code_key;
    }
    n->code_counts[slot]++;
}

/* ---- the stats -------------------------------------------------------------------------------------- */

void so_stats_init(so_stats *s, so_h128 seed) {
    memset(s, 0, sizeof(*s));
    so_rfc6076 *c = &s->rfc;
    so_hist_init(&c->srd_success, so_delay_bounds, SO_N_DELAY_BOUNDS);
    so_hist_init(&c->srd_failure, so_delay_bounds, SO_N_DELAY_BOUNDS);
    so_hist_init(&c->sdd_success, so_delay_bounds, SO_N_DELAY_BOUNDS);
    so_hist_init(&c->sdd_failure, so_delay_bounds, SO_N_DELAY_BOUNDS);
    so_hist_init(&c->sdt, so_duration_bounds, SO_N_DURATION_BOUNDS);
    so_hist_init(&c->sdt_failure, so_duration_bounds, SO_N_DURATION_BOUNDS);
    so_hist_init(&c->rrd, so_delay_bounds, SO_N_DELAY_BOUNDS);
    so_map_init(&s->other.index);
    so_map_init(&s->other.by_code);
    s->other.seed = seed;
}

void so_stats_free(so_stats *s) {
    so_names *n = &s->other;
    for (uint32_t i = 0; i < n->n; i++)
        free(n->names[i]);
    free(n->names);
    free(n->lens);
    free(n->requests);
    free(n->retransmissions);
    free(n->code_counts);
    free(n->code_keys);
    so_map_free(&n->index);
    so_map_free(&n->by_code);
    memset(n, 0, sizeof(*n));
}

void so_stats_message(so_stats *s, const so_msg *m) {
    s->messages++;
    if (m->is_request) {
        if (m->method == SO_M_OTHER) {
            uint32_t id = so_names_id(&s->other, m->method_tok);
            if (id == UINT32_MAX)
                s->requests[SO_M_OTHER]++; /* "(other)" */
            else
                s->other.requests[id]++;
        } else {
            s->requests[m->method]++;
        }
        return;
    }
    uint16_t code = m->status < 700 ? m->status : 0;
    s->responses[code]++;
    if (m->method == SO_M_OTHER)
        names_code(&s->other, so_names_id(&s->other, m->method_tok), code);
    else
        s->responses_by_method[code][m->method]++;
}

static void count_attempt(so_rfc6076 *c, const so_event *ev) {
    if (ev->outcome == SO_OUT_OPEN || ev->outcome == SO_OUT_EVICTED)
        return;
    c->invite_attempts++; /* §4.6-§4.9 denominators: one per initial INVITE attempt */
    int status = ev->status;
    if (status >= 200 && status < 300) {
        c->invite_success++;   /* §4.6 */
        c->invite_effective++; /* §4.7 */
        for (uint8_t i = 0; i < ev->n_srd; i++)
            so_hist_observe(&c->srd_success, seconds(ev->srd_ns[i])); /* §4.3.1 */
        return;
    }
    if (status >= 300 && status < 400) {
        c->invite_3xx++; /* §4.6/§4.7 leave the denominator; SRD carried to the retry */
        return;
    }
    /* §4.7: answers that show the network did its job (200 read as any 2xx) */
    if (status == 480 || status == 486 || status == 600 || status == 603)
        c->invite_effective++;
    /* §4.8: the RFC's guideline list of ineffective answers, plus Timer B */
    if (status == 408 || status == 500 || status == 503 || status == 504 || ev->timer == 'B')
        c->invite_ineffective++;
    if (so_is_failure_final(status) || ev->timer)
        for (uint8_t i = 0; i < ev->n_srd; i++)
            so_hist_observe(&c->srd_failure, seconds(ev->srd_ns[i])); /* §4.3.2 */
}

static void count_session(so_rfc6076 *c, const so_event *ev) {
    if (ev->has_sdt) /* §4.5, confirmed dialogs only (never early-media-only) */
        so_hist_observe(ev->sdd_ok ? &c->sdt : &c->sdt_failure, seconds(ev->sdt_ns));
    if (ev->has_sdd) /* §4.4 */
        so_hist_observe(ev->sdd_ok ? &c->sdd_success : &c->sdd_failure, seconds(ev->sdd_ns));
    if (ev->completes)
        c->sessions_completed++; /* §4.9 */
}

static void count_registration(so_rfc6076 *c, const so_event *ev) {
    if (ev->outcome == SO_OUT_OPEN || ev->outcome == SO_OUT_EVICTED)
        return;
    c->register_attempts++; /* §4.2 denominator: one per attempt (challenge + retry = one) */
    if (ev->outcome == SO_OUT_REGISTERED) {
        c->register_success++;
        if (ev->has_rrd)
            so_hist_observe(&c->rrd, seconds(ev->rrd_ns)); /* §4.1 */
    } else if (ev->outcome == SO_OUT_TIMED_OUT || so_is_failure_final(ev->status)) {
        c->register_ineffective++; /* §4.2 */
    }
}

void so_stats_event(so_stats *s, const so_event *ev) {
    switch ((so_event_kind)ev->kind) {
    case SO_EV_RETRANSMISSION:
        if (ev->method == SO_M_OTHER) {
            uint32_t id = so_names_id(&s->other, ev->method_tok);
            if (id == UINT32_MAX)
                s->retransmissions[SO_M_OTHER]++;
            else
                s->other.retransmissions[id]++;
        } else {
            s->retransmissions[ev->method]++;
        }
        break;
    case SO_EV_ATTEMPT_ENDED:
        count_attempt(&s->rfc, ev);
        if (ev->outcome != SO_OUT_ANSWERED && ev->outcome < SO_N_DIALOG_OUTCOMES)
            s->dialog_outcomes[ev->outcome]++;
        break;
    case SO_EV_FORKED:
        so_hist_observe(&s->rfc.srd_success, seconds(ev->srd_ns[0])); /* §5.4 per dialog */
        break;
    case SO_EV_SESSION_ENDED:
        count_session(&s->rfc, ev);
        if (ev->outcome < SO_N_DIALOG_OUTCOMES)
            s->dialog_outcomes[ev->outcome]++;
        break;
    case SO_EV_REINVITE:
        s->reinvites++;
        break;
    case SO_EV_REGISTRATION_ENDED:
        count_registration(&s->rfc, ev);
        if (ev->outcome == SO_OUT_FAILED && ev->status && ev->status < 700)
            s->register_failures[ev->status]++;
        break;
    default: /* transaction-layer events: counted where they arise */
        break;
    }
}
