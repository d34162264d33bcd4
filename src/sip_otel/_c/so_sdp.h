/* SPDX-License-Identifier: Apache-2.0
 * SDP (RFC 4566/8866) as far as media monitoring needs it: where each media stream flows and
 * how to read its RTP. From a SIP body -- application/sdp, or the application/sdp part of a
 * multipart body (RFC 2046) -- it extracts per m= line: kind, port, transport protocol,
 * payload types with their clock rates (a=rtpmap, else the RFC 3551 static table), the
 * connection address (c= at media level, else session level; IPv4 or IPv6), a=rtcp,
 * a=rtcp-mux, a=ptime and the direction (a=sendrecv/sendonly/recvonly/inactive, media level
 * over session level, default sendrecv).
 *
 * Bounded: at most SO_SDP_MAX_MEDIA media lines and SO_SDP_MAX_PT payload types per line are
 * kept (more are counted, sdp.too_many_media / sdp.too_many_payload_types), multipart bodies
 * are searched through at most SO_SDP_MAX_PARTS parts. Malformed lines are counted reasons
 * (sdp.*) and skipped; nothing is fatal except a body with no SDP in it.
 */
#ifndef SO_SDP_H
#define SO_SDP_H

#include "so_common.h"

#define SO_SDP_MAX_MEDIA 8
#define SO_SDP_MAX_PT 16
#define SO_SDP_MAX_PARTS 8
#define SO_SDP_CODEC_NAME 16

typedef enum so_sdp_kind {
    SO_SDP_OTHER = 0,
    SO_SDP_AUDIO = 1,
    SO_SDP_VIDEO = 2,
} so_sdp_kind;

typedef enum so_sdp_dir {
    SO_SDP_SENDRECV = 0,
    SO_SDP_SENDONLY = 1,
    SO_SDP_RECVONLY = 2,
    SO_SDP_INACTIVE = 3,
} so_sdp_dir;

typedef struct so_sdp_addr {
    uint8_t family; /* 0 none, 4 IPv4, 6 IPv6 */
    uint8_t addr[16];
} so_sdp_addr;

typedef struct so_sdp_pt {
    uint8_t pt;
    uint8_t channels;  /* from a=rtpmap (1 when absent) */
    uint32_t clock_rate; /* Hz; 0 unknown (dynamic type without a=rtpmap) */
    char name[SO_SDP_CODEC_NAME]; /* encoding name as written, NUL-terminated, truncated */
} so_sdp_pt;

typedef struct so_sdp_media {
    uint8_t kind;      /* so_sdp_kind */
    uint8_t rtp;       /* the protocol is RTP-based (RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, ...) */
    uint8_t direction; /* so_sdp_dir, after session-level inheritance */
    uint8_t rtcp_mux;  /* a=rtcp-mux */
    uint16_t port;     /* 0: stream disabled or rejected */
    uint16_t n_ports;  /* m=<media> <port>/<n>: 1 when absent */
    uint16_t rtcp_port; /* a=rtcp, else port + 1 (0 when port is 0) */
    uint16_t ptime;    /* a=ptime in ms, 0 when absent */
    so_sdp_addr conn;  /* media c=, else the session's */
    so_sdp_addr rtcp_addr; /* a=rtcp's address, else conn */
    char proto[24];    /* transport protocol as written, NUL-terminated, truncated */
    uint8_t n_pts;
    so_sdp_pt pts[SO_SDP_MAX_PT];
} so_sdp_media;

typedef struct so_sdp {
    so_sdp_addr conn; /* session-level c= */
    uint8_t direction; /* session-level direction attribute */
    uint8_t n_media;   /* media lines kept */
    uint16_t n_media_seen; /* media lines in the body (kept or not) */
    uint64_t origin_version; /* o= <sess-version> (offer/answer changes bump it) */
    so_sdp_media media[SO_SDP_MAX_MEDIA];
} so_sdp;

/* Parse an SDP body. Defects are counted into reasons[] (SO_R_SDP_*); returns true when the
 * body looked like SDP at all (a v= or m= line), false otherwise (sdp.not_sdp counted). */
bool so_sdp_parse(const uint8_t *p, size_t n, so_sdp *out, uint64_t *reasons);

/* The SDP in a SIP body, given its Content-Type value: application/sdp is parsed directly,
 * multipart/<any> is searched for its first application/sdp part. Returns 1 when SDP was found
 * and parsed, 0 when the body holds no SDP (another content type: not an error, nothing
 * counted), -1 when it should have and did not (counted: sdp.bad_multipart, sdp.not_sdp). */
int so_sdp_from_body(const uint8_t *ctype, size_t ctype_n, const uint8_t *body, size_t n,
                     so_sdp *out, uint64_t *reasons);

/* RFC 3551 static payload types: clock rate (0 if not static/unknown) and encoding name. */
uint32_t so_sdp_static_rate(uint8_t pt, const char **name);

#endif
