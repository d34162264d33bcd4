/* SPDX-License-Identifier: Apache-2.0
 * Between the attempt half (so_attempt.c) and the dialog half (so_dialog.c) of one layer.
 */
#ifndef SO_DIALOG_H
#define SO_DIALOG_H

#include "so_track_int.h"

/* Key domains (every composite key hashes its domain first). */
enum {
    SO_DOMAIN_PENDING = 10, /* (Call-ID, From tag) */
    SO_DOMAIN_ATTEMPT,      /* (pending key, CSeq) */
    SO_DOMAIN_DIALOG,       /* (Call-ID, min tag, max tag) */
    SO_DOMAIN_DLG_SEEN,     /* (From tag, CSeq, method) */
    SO_DOMAIN_TAG,          /* a To tag */
    SO_DOMAIN_SEEN,         /* (status, To tag) */
};

so_h128 so_pkey(const so_track *t, so_slice call_id, so_slice from_tag);
void so_att_forget(so_track *t, uint32_t att);
uint32_t so_att_early_count(const so_attempt *a);
const so_early *so_att_early(const so_attempt *a, uint32_t i);
uint8_t so_att_srd_samples(const so_attempt *a, bool has_final, int64_t final_ns, bool tag_given,
                           bool tag_in_early, int64_t *out);
void so_att_end(so_track *t, uint32_t att, uint8_t prev, int64_t now, uint16_t status,
                uint8_t outcome, uint8_t timer);
void so_att_response(so_track *t, uint32_t att, const so_msg *m);
void so_att_initial_invite(so_track *t, const so_msg *m, uint32_t txn);
void so_att_note(so_track *t, uint32_t att, const so_msg *m, so_att_input in, uint8_t name);
void so_att_timeout(so_track *t, uint32_t att, const so_timeout_ev *ev);
void so_att_wait_over(so_track *t, const so_dq_item *it);
void so_att_finish(so_track *t, int64_t now);

/* dialogs */
int32_t so_dialog_record(so_track *t, const so_attempt *a, so_slice to_tag, int64_t end_ns,
                         uint8_t outcome, uint16_t status, bool has_srd, int64_t srd_ns,
                         bool has_sdt, int64_t sdt_ns, const so_revents *events);
void so_record_origin(so_record *r, const so_origin *o);
void so_dlg_confirm(so_track *t, uint32_t att, const so_msg *m, int64_t srd_ns);

#endif
