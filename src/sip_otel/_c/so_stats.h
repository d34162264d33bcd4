/* SPDX-License-Identifier: Apache-2.0
 * What the pipeline counts: message counters, and the RFC 6076 aggregation of the tracker's
 * events (the numerators, denominators and delay histograms of the nine metrics). Plain
 * counters and fixed-bucket histograms that telemetry copies at collection time; nothing here
 * knows OpenTelemetry. Semantics are written down in docs/rfc6076.md.
 */
#ifndef SO_STATS_H
#define SO_STATS_H

#include "so_map.h"
#include "so_track.h"

#define SO_N_DELAY_BOUNDS 18    /* SRD, SDD, RRD: 5 ms ... 30 s (Timer B/F is 32 s) */
#define SO_N_DURATION_BOUNDS 15 /* SDT: 1 s ... 4 h */
#define SO_MAX_BOUNDS 18
extern const double so_delay_bounds[SO_N_DELAY_BOUNDS];
extern const double so_duration_bounds[SO_N_DURATION_BOUNDS];

/* Prometheus ``le`` buckets: a value equal to a bound falls in that bucket; the last count is
 * the +Inf bucket (not cumulative). */
typedef struct so_hist {
    const double *bounds;
    uint32_t n_bounds;
    uint64_t counts[SO_MAX_BOUNDS + 1];
    double total;
    uint64_t count;
    double min, max;
} so_hist;

void so_hist_init(so_hist *h, const double *bounds, uint32_t n);
void so_hist_observe(so_hist *h, double value);

typedef struct so_rfc6076 {
    uint64_t invite_attempts;    /* SER/SEER base, ISA and SCR denominator */
    uint64_t invite_3xx;         /* attempts answered 3xx (leave SER/SEER denominators) */
    uint64_t invite_success;     /* answered 2xx (SER numerator) */
    uint64_t invite_effective;   /* 2xx/480/486/600/603 (SEER numerator) */
    uint64_t invite_ineffective; /* 408/500/503/504 or Timer B (ISA numerator) */
    uint64_t sessions_completed; /* SCR numerator */
    uint64_t register_attempts;  /* IRA denominator */
    uint64_t register_ineffective;
    uint64_t register_success;
    so_hist srd_success, srd_failure, sdd_success, sdd_failure, sdt, sdt_failure, rrd;
} so_rfc6076;

/* Method spellings outside the known set (from the wire, so bounded): beyond
 * SO_MAX_METHOD_NAMES distinct spellings, requests count under "(other)" (not a token, so no
 * real method can take that name). */
#define SO_MAX_METHOD_NAMES 1024
#define SO_OTHER_METHOD_NAME "(other)"

typedef struct so_names {
    so_map index;       /* hash of the spelling -> name id */
    uint8_t **names;    /* owned copies */
    uint32_t *lens;
    uint64_t *requests, *retransmissions;
    uint32_t n, cap;
    so_map by_code;     /* (status, name id) -> slot in code_counts */
    uint64_t *code_counts;
    uint32_t *code_keys; /* status << 16 | name id */
    uint32_t n_codes, cap_codes;
    so_h128 seed;
} so_names;

typedef struct so_stats {
    uint64_t frames, bytes, messages;
    uint64_t requests[SO_N_METHODS];        /* SO_M_OTHER: per spelling in ``other`` */
    uint64_t responses[700];                /* by status code (100..699) */
    uint64_t responses_by_method[700][SO_N_METHODS]; /* (code, CSeq method); OTHER in ``other`` */
    uint64_t retransmissions[SO_N_METHODS]; /* requests and responses, by (CSeq) method */
    uint64_t reinvites;
    uint64_t dialog_outcomes[SO_N_DIALOG_OUTCOMES];
    uint64_t register_failures[700]; /* final code of attempts that failed */
    so_rfc6076 rfc;
    so_names other;
} so_stats;

void so_stats_init(so_stats *s, so_h128 seed);
void so_stats_free(so_stats *s);
/* A message on the wire (retransmissions included, as tshark counts). */
void so_stats_message(so_stats *s, const so_msg *m);
/* Fold one tracker event (RFC 6076 counters, outcomes, retransmissions, re-INVITEs). */
void so_stats_event(so_stats *s, const so_event *ev);
/* The name id of an unknown spelling (registering it), or UINT32_MAX for "(other)". */
uint32_t so_names_id(so_names *n, so_slice name);

/* RFC 6076 §4.2/§4.3.2: a final 4xx other than 401/402/407, or a 5xx/6xx. */
static inline bool so_is_failure_final(int status) {
    return status >= 400 && status < 700 && status != 401 && status != 402 && status != 407;
}

#endif
