/* SPDX-License-Identifier: Apache-2.0
 * The stream framer interface: what a TCP flow direction feeds its in-order bytes to.
 *
 * net/ owns TCP reassembly and knows nothing of SIP: the pipeline passes it the SIP stream
 * framer (sip layer, so_sip.h) and the SIP sniff as values of these types. A framer keeps its
 * state in ``state_size`` bytes that its flow allocates; every complete message is handed to
 * ``env->emit`` at once (the bytes are valid only during that call).
 */
#ifndef SO_FRAMER_H
#define SO_FRAMER_H

#include "so_common.h"

typedef void (*so_emit_fn)(void *ctx, const uint8_t *msg, uint32_t len);

typedef struct so_framer_env {
    uint64_t *reasons;     /* [SO_N_REASONS] */
    uint32_t max_message;  /* largest message framed (NetLimits.max_sip_message_bytes) */
    so_emit_fn emit;
    void *emit_ctx;
} so_framer_env;

typedef struct so_framer_ops {
    size_t state_size;
    void (*init)(void *st);
    /* Append in-order stream bytes; emit the messages they complete. */
    void (*feed)(void *st, const uint8_t *data, size_t n, const so_framer_env *env);
    /* Bytes were lost (a TCP gap): forget what is buffered. */
    void (*reset)(void *st);
    /* End of stream: count an unfinished message (sip_framing.incomplete), then reset. */
    void (*close)(void *st, const so_framer_env *env);
    /* Free owned memory without counting anything (eviction, teardown). */
    void (*destroy)(void *st);
    /* Bytes buffered and not yet emitted. */
    size_t (*pending)(const void *st);
    /* Bytes allocated (buffer capacity): what the flow charges to the memory budget. */
    size_t (*footprint)(const void *st);
} so_framer_ops;

/* The SIP sniff: whether bytes start with a SIP request line or status line. */
typedef bool (*so_sniff_fn)(const uint8_t *p, size_t n);

#endif
