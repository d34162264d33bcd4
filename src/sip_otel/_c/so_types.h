/* SPDX-License-Identifier: Apache-2.0
 * What crosses the layers: a transport payload (net -> sip) and a parsed SIP message
 * (sip -> track). Both are views: their byte slices point into the frame, a stream buffer or
 * the parser's scratch area and are valid only during the call that hands them over.
 */
#ifndef SO_TYPES_H
#define SO_TYPES_H

#include "so_common.h"

#define SO_PROTO_TCP 6
#define SO_PROTO_UDP 17

/* pcap LINKTYPE_* values (https://www.tcpdump.org/linktypes.html) */
#define SO_LINKTYPE_NULL 0
#define SO_LINKTYPE_ETHERNET 1
#define SO_LINKTYPE_RAW 101
#define SO_LINKTYPE_LOOP 108
#define SO_LINKTYPE_LINUX_SLL 113
#define SO_LINKTYPE_IPV4 228
#define SO_LINKTYPE_IPV6 229
#define SO_LINKTYPE_LINUX_SLL2 276

/* Transport payload that should hold SIP. UDP: the whole datagram payload (0..n messages or a
 * keep-alive). TCP: exactly one SIP message framed on the reassembled stream. ``ts_ns`` is the
 * time of the frame that completed the payload. Addresses are raw (4 or 16 bytes). */
typedef struct so_payload {
    int64_t ts_ns;
    uint8_t transport; /* SO_PROTO_UDP or SO_PROTO_TCP */
    uint8_t ip_len;    /* 4 or 16 */
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
    const uint8_t *data;
    uint32_t len;
} so_payload;

/* Methods with a code of their own; any other RFC 3261 token is SO_M_OTHER with its spelling
 * in ``method_tok`` (methods are case-sensitive, RFC 3261 §7.1: "invite" is SO_M_OTHER).
 * SO_M_NONE is the empty method of a response whose CSeq is missing or unreadable. */
#define SO_METHOD_LIST(X)                                                                      \
    X(INVITE) X(ACK) X(BYE) X(CANCEL) X(OPTIONS) X(REGISTER) X(PRACK) X(UPDATE) X(SUBSCRIBE) \
    X(NOTIFY) X(REFER) X(MESSAGE) X(INFO) X(PUBLISH)
#define SO_X_ENUM(m) SO_M_##m,
typedef enum so_method { SO_M_NONE = 0, SO_METHOD_LIST(SO_X_ENUM) SO_M_OTHER, SO_N_METHODS } so_method;
#undef SO_X_ENUM
extern const char *const so_method_names[SO_N_METHODS]; /* "" , "INVITE", ..., NULL for OTHER */

/* Known method code of a token (exact, case-sensitive), SO_M_OTHER otherwise. */
so_method so_method_of(const uint8_t *p, size_t n);

#define SO_MAX_DEFECTS 24

/* A parsed SIP message: what transactions, dialogs, RFC 6076 and spans need. Absent numbers
 * are -1 (Python's None), absent strings are empty slices. */
typedef struct so_msg {
    int64_t ts_ns;
    bool is_request;
    uint8_t method;       /* so_method: request method; response: its CSeq method */
    uint16_t status;      /* 0 for requests */
    so_slice method_tok;  /* spelling of ``method`` ("" for SO_M_NONE) */
    so_slice reason_phrase; /* responses only, stripped */
    so_slice request_uri;   /* requests only */
    so_slice call_id;       /* stripped */
    so_slice from_uri, from_tag, to_uri, to_tag;
    int64_t cseq; /* -1 when missing or malformed */
    uint8_t cseq_method;
    so_slice cseq_method_tok;
    so_slice via_branch;    /* top Via branch parameter */
    so_slice via_sent_by;   /* top Via sent-by, ASCII lower-cased */
    so_slice via_transport; /* UDP, TCP, TLS, SCTP, WS, WSS, ... ASCII upper-cased */
    int32_t via_count;      /* Via header field values */
    int64_t content_length; /* -1: absent or invalid */
    so_slice content_type;  /* media type, ASCII lower-cased */
    int64_t session_expires, min_se, expires, contact_expires, retry_after; /* -1: None */
    so_slice se_refresher;  /* "uac" / "uas" / "" (ASCII lower-cased) */
    bool contact_star;      /* "Contact: *" */
    so_slice reason;        /* Reason header values joined with ", " */
    so_slice user_agent;    /* User-Agent (requests) or Server (responses), stripped */
    so_slice session_id;    /* Session-ID (RFC 7989) value, stripped, as sent */
    so_slice correlation;   /* the configured correlation header's first value, stripped */
    int64_t body_length;    /* body bytes actually present */
    so_slice body;          /* those bytes (valid during the message callback) */
    so_slice content_type_value; /* the whole Content-Type value (parameters: a boundary) */
    const so_payload *origin;
    uint8_t n_defects;      /* problems that still left a usable message, in order found */
    uint8_t defects[SO_MAX_DEFECTS]; /* so_reason codes */
} so_msg;

#endif
