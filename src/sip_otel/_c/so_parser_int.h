/* SPDX-License-Identifier: Apache-2.0
 * Inside the SIP message parser (so_parser.c: lines and framing; so_parser_msg.c: the message's
 * fields from the kept header values). Not an interface: so_sip.h is.
 */
#ifndef SO_PARSER_INT_H
#define SO_PARSER_INT_H

#include "so_sip.h"

#define UNFOLD_BYTES SO_SIP_MAX_HEADER_BYTES
#define VALUE_BYTES (2 * SO_SIP_MAX_HEADER_BYTES + 4096)

struct so_parser {
    uint8_t *unfold; /* UNFOLD_BYTES: the header block with folded lines joined */
    so_scratch sc;   /* VALUE_BYTES: rebuilt values of the current message */
    uint32_t have;   /* bit per so_hcode: vals[code] holds its first occurrence */
    uint32_t n_vias, n_reasons;
    so_slice vals[SO_N_HCODES];
    so_slice vias[SO_SIP_MAX_HEADER_LINES];    /* raw values */
    so_slice reasons[SO_SIP_MAX_HEADER_LINES]; /* stripped values */
    uint8_t corr_name[SO_SIP_MAX_CORRELATION_NAME]; /* lower-case; corr_n 0: none */
    size_t corr_n;
};

#define HAVE(P, code) (((P)->have >> (code)) & 1u)

/* Defects: problems that left a usable message, in the order found, duplicates kept. */
static inline void add_defect(so_msg *m, so_reason r) {
    if (m->n_defects < SO_MAX_DEFECTS)
        m->defects[m->n_defects++] = (uint8_t)r;
}

static inline void add_defect_once(so_msg *m, so_reason r) {
    for (unsigned i = 0; i < m->n_defects; i++)
        if (m->defects[i] == r)
            return;
    add_defect(m, r);
}

/* Fill *m (already initialised: start line aside) from the kept values in P and the start line:
 * 0, or SO_R_INTERNAL_NO_MEMORY if the scratch area is full (a bug: it is sized for the limit). */
int so_parser_build(so_parser *P, const so_start_line *sl, bool truncated, size_t avail,
                    so_msg *m);

#endif
