# Declarations every part of the binding shares (so_common.h, so_types.h, so_reasons.h).

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, free, calloc

cdef extern from "so_common.h":
    ctypedef struct so_slice:
        const uint8_t *p
        uint32_t n
    enum:
        SO_MEM_N
    ctypedef struct so_mem:
        uint64_t limit
        int64_t used[1]  # [SO_MEM_N]
    const char * const so_mem_table_names[]
    void so_mem_init(so_mem *m, uint64_t limit)


cdef dict mem_dict(const so_mem *m):
    """The budget's use per table (bytes) and its limit, under the table names of so_mem."""
    cdef int i
    out = {so_mem_table_names[i].decode(): m.used[i] for i in range(SO_MEM_N)}
    out["limit"] = m.limit
    return out

cdef extern from "so_reasons.h":
    enum:
        SO_N_REASONS
        SO_N_EVICTIONS
        SO_E_MEDIA_RECORDS_FULL
    const char * const so_reason_slugs[]
    const char * const so_eviction_slugs[]

cdef extern from "so_types.h":
    enum:
        SO_PROTO_TCP
        SO_PROTO_UDP
        SO_MAX_DEFECTS
    ctypedef enum so_method:
        SO_M_NONE
        SO_M_INVITE
        SO_M_ACK
        SO_M_BYE
        SO_M_CANCEL
        SO_M_OPTIONS
        SO_M_REGISTER
        SO_M_PRACK
        SO_M_UPDATE
        SO_M_SUBSCRIBE
        SO_M_NOTIFY
        SO_M_REFER
        SO_M_MESSAGE
        SO_M_INFO
        SO_M_PUBLISH
        SO_M_OTHER
        SO_N_METHODS
    const char *so_method_names[]
    so_method so_method_of(const uint8_t *p, size_t n)

    ctypedef struct so_payload:
        int64_t ts_ns
        uint8_t transport
        uint8_t ip_len
        uint16_t sport, dport
        uint8_t src[16]
        uint8_t dst[16]
        const uint8_t *data
        uint32_t len

    ctypedef struct so_msg:
        int64_t ts_ns
        bint is_request
        uint8_t method
        uint16_t status
        so_slice method_tok
        so_slice reason_phrase
        so_slice request_uri
        so_slice call_id
        so_slice from_uri, from_tag, to_uri, to_tag
        int64_t cseq
        uint8_t cseq_method
        so_slice cseq_method_tok
        so_slice via_branch, via_sent_by, via_transport
        int32_t via_count
        int64_t content_length
        so_slice content_type
        int64_t session_expires, min_se, expires, contact_expires, retry_after
        so_slice se_refresher
        bint contact_star
        so_slice reason
        so_slice user_agent
        so_slice session_id
        so_slice correlation
        int64_t body_length
        const so_payload *origin
        uint8_t n_defects
        uint8_t defects[24]

# Reason and eviction slugs, in enum order (index = C code).
cdef tuple _slugs(const char * const *table, int n):
    cdef int i
    return tuple([table[i].decode() for i in range(n)])


REASON_SLUGS = _slugs(so_reason_slugs, SO_N_REASONS)
EVICTION_SLUGS = _slugs(so_eviction_slugs, SO_N_EVICTIONS)


cdef inline str slice_str(so_slice s):
    """A slice as Python str (UTF-8, invalid bytes replaced, as the Python parser decoded)."""
    if s.n == 0:
        return ""
    return (<const char *>s.p)[:s.n].decode("utf-8", "replace")


cdef inline bytes slice_bytes(so_slice s):
    if s.n == 0:
        return b""
    return (<const char *>s.p)[:s.n]


cdef inline object opt_int(int64_t v):
    return None if v < 0 else v


cdef dict counts_dict(const uint64_t *counts, int n, tuple slugs):
    """Non-zero counters as {slug: count}."""
    cdef dict out = {}
    cdef int i
    for i in range(n):
        if counts[i]:
            out[slugs[i]] = counts[i]
    return out


cdef void merge_counts(uint64_t *counts, int n, tuple slugs, dict into):
    """Add counters into a {slug: count} dict and zero them (per-layer views)."""
    cdef int i
    for i in range(n):
        if counts[i]:
            slug = slugs[i]
            into[slug] = into.get(slug, 0) + counts[i]
            counts[i] = 0
