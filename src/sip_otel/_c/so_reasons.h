/* SPDX-License-Identifier: Apache-2.0
 * One error taxonomy: every reason slug ``<layer>.<reason>`` the core counts, and every table
 * eviction ``<table>.<reason>``. X-macro lists, so the enum, the slug strings and the Python
 * binding come from one place. Counting is ``reasons[SO_R_...]++`` into the pipeline's array.
 *
 * ``internal.*`` slugs are bugs by definition: a state machine input with no row in its
 * transition table, or an allocation failure. The fuzz run asserts they stay 0.
 */
#ifndef SO_REASONS_H
#define SO_REASONS_H

#define SO_REASON_LIST(X)                                                                      \
    /* link layers */                                                                          \
    X(NET_UNSUPPORTED_LINKTYPE, "net.unsupported_linktype")                                    \
    X(NET_TRUNCATED_ETHERNET, "net.truncated_ethernet")                                        \
    X(NET_TRUNCATED_VLAN, "net.truncated_vlan")                                                \
    X(NET_TOO_MANY_VLAN_TAGS, "net.too_many_vlan_tags")                                        \
    X(NET_TRUNCATED_PPPOE, "net.truncated_pppoe")                                              \
    X(NET_BAD_PPPOE_HEADER, "net.bad_pppoe_header")                                            \
    X(NET_TRUNCATED_SLL, "net.truncated_sll")                                                  \
    X(NET_TRUNCATED_SLL2, "net.truncated_sll2")                                                \
    X(NET_TRUNCATED_LOOPBACK, "net.truncated_loopback")                                        \
    X(NET_TRUNCATED_IP, "net.truncated_ip")                                                    \
    X(NET_BAD_IP_VERSION, "net.bad_ip_version")                                                \
    X(SKIPPED_ETHERTYPE, "skipped.ethertype")                                                  \
    X(SKIPPED_PPP_PROTOCOL, "skipped.ppp_protocol")                                            \
    X(SKIPPED_ADDRESS_FAMILY, "skipped.address_family")                                        \
    /* IP */                                                                                   \
    X(NET_TRUNCATED_IPV4, "net.truncated_ipv4")                                                \
    X(NET_BAD_IPV4_HEADER, "net.bad_ipv4_header")                                              \
    X(NET_TRUNCATED_IPV6, "net.truncated_ipv6")                                                \
    X(NET_BAD_IPV6_HEADER, "net.bad_ipv6_header")                                              \
    X(NET_BAD_IPV6_FRAGMENT, "net.bad_ipv6_fragment")                                          \
    X(NET_TUNNEL_TOO_DEEP, "net.tunnel_too_deep")                                              \
    X(SKIPPED_IP_PROTOCOL, "skipped.ip_protocol")                                              \
    X(SKIPPED_NO_NEXT_HEADER, "skipped.no_next_header")                                        \
    /* GRE, GTP-U */                                                                           \
    X(NET_TRUNCATED_GRE, "net.truncated_gre")                                                  \
    X(NET_BAD_GRE, "net.bad_gre")                                                              \
    X(SKIPPED_GRE_PROTOCOL, "skipped.gre_protocol")                                            \
    X(SKIPPED_EMPTY_PAYLOAD, "skipped.empty_payload")                                          \
    X(NET_TRUNCATED_GTP, "net.truncated_gtp")                                                  \
    X(NET_BAD_GTP_HEADER, "net.bad_gtp_header")                                                \
    X(SKIPPED_GTP_MESSAGE, "skipped.gtp_message")                                              \
    /* fragments */                                                                            \
    X(NET_BAD_FRAGMENT_LENGTH, "net.bad_fragment_length")                                      \
    X(NET_FRAGMENT_TOO_LARGE, "net.fragment_too_large")                                        \
    X(NET_FRAGMENT_INCONSISTENT, "net.fragment_inconsistent")                                  \
    X(NET_FRAGMENT_OVERLAP, "net.fragment_overlap")                                            \
    X(NET_FRAGMENT_DUPLICATE, "net.fragment_duplicate")                                        \
    X(NET_FRAGMENT_TOO_MANY, "net.fragment_too_many")                                          \
    /* UDP, TCP */                                                                             \
    X(NET_TRUNCATED_UDP, "net.truncated_udp")                                                  \
    X(NET_BAD_UDP_LENGTH, "net.bad_udp_length")                                                \
    X(NET_TRUNCATED_TCP, "net.truncated_tcp")                                                  \
    X(NET_BAD_TCP_HEADER, "net.bad_tcp_header")                                                \
    X(SKIPPED_PORT, "skipped.port")                                                            \
    X(SKIPPED_NOT_SIP, "skipped.not_sip")                                                      \
    X(TCP_OUT_OF_ORDER, "tcp.out_of_order")                                                    \
    X(TCP_RETRANSMISSION, "tcp.retransmission")                                                \
    X(TCP_GAP, "tcp.gap")                                                                      \
    /* WebSocket */                                                                            \
    X(NET_BAD_WEBSOCKET_FRAME, "net.bad_websocket_frame")                                      \
    X(NET_BAD_WEBSOCKET_HANDSHAKE, "net.bad_websocket_handshake")                              \
    X(SKIPPED_WEBSOCKET_REFUSED, "skipped.websocket_refused")                                  \
    X(SKIPPED_WEBSOCKET_COMPRESSED, "skipped.websocket_compressed")                            \
    /* SIP stream framing */                                                                   \
    X(SIP_FRAMING_MISSING_CONTENT_LENGTH, "sip_framing.missing_content_length")                \
    X(SIP_FRAMING_BAD_CONTENT_LENGTH, "sip_framing.bad_content_length")                        \
    X(SIP_FRAMING_RESYNC, "sip_framing.resync")                                                \
    X(SIP_FRAMING_TOO_LARGE, "sip_framing.too_large")                                          \
    X(SIP_FRAMING_INCOMPLETE, "sip_framing.incomplete")                                        \
    /* SIP parser: fatal (no message) */                                                       \
    X(SIP_BAD_START_LINE, "sip.bad_start_line")                                                \
    X(SIP_BAD_VERSION, "sip.bad_version")                                                      \
    X(SIP_BAD_STATUS_CODE, "sip.bad_status_code")                                              \
    X(SIP_BAD_METHOD, "sip.bad_method")                                                        \
    X(SIP_TRUNCATED_HEADERS, "sip.truncated_headers")                                          \
    X(SIP_HEADERS_TOO_LONG, "sip.headers_too_long")                                            \
    X(SIP_TOO_MANY_HEADERS, "sip.too_many_headers")                                            \
    X(SIP_LINE_TOO_LONG, "sip.line_too_long")                                                  \
    /* SIP parser: defects (message kept) */                                                   \
    X(SIP_MISSING_VIA, "sip.missing_via")                                                      \
    X(SIP_BAD_VIA, "sip.bad_via")                                                              \
    X(SIP_MISSING_CALL_ID, "sip.missing_call_id")                                              \
    X(SIP_MISSING_FROM, "sip.missing_from")                                                    \
    X(SIP_MISSING_TO, "sip.missing_to")                                                        \
    X(SIP_MISSING_CSEQ, "sip.missing_cseq")                                                    \
    X(SIP_BAD_CSEQ, "sip.bad_cseq")                                                            \
    X(SIP_BAD_HEADER_LINE, "sip.bad_header_line")                                              \
    X(SIP_BAD_CONTENT_LENGTH, "sip.bad_content_length")                                        \
    X(SIP_TRUNCATED_BODY, "sip.truncated_body")                                                \
    X(SIP_BAD_HEADER_VALUE, "sip.bad_header_value")                                            \
    X(SKIPPED_SIP_KEEPALIVE, "skipped.sip_keepalive")                                          \
    X(SKIPPED_SIP_TRAILING_BYTES, "skipped.sip_trailing_bytes")                                \
    /* tracker */                                                                              \
    X(TRACKER_ORPHAN_RESPONSE, "tracker.orphan_response")                                      \
    X(DIALOGS_ORPHAN_BYE, "dialogs.orphan_bye")                                                \
    X(DIALOGS_ORPHAN_CANCEL, "dialogs.orphan_cancel")                                          \
    X(DIALOGS_ORPHAN_REINVITE, "dialogs.orphan_reinvite")                                      \
    /* SDP (so_sdp.c) */                                                                       \
    X(SDP_NOT_SDP, "sdp.not_sdp")                                                              \
    X(SDP_BAD_LINE, "sdp.bad_line")                                                            \
    X(SDP_BAD_CONNECTION, "sdp.bad_connection")                                                \
    X(SDP_HOSTNAME_ADDRESS, "sdp.hostname_address")                                            \
    X(SDP_MISSING_CONNECTION, "sdp.missing_connection")                                        \
    X(SDP_BAD_MEDIA, "sdp.bad_media")                                                          \
    X(SDP_BAD_RTPMAP, "sdp.bad_rtpmap")                                                        \
    X(SDP_BAD_RTCP, "sdp.bad_rtcp")                                                            \
    X(SDP_TOO_MANY_MEDIA, "sdp.too_many_media")                                                \
    X(SDP_TOO_MANY_PAYLOAD_TYPES, "sdp.too_many_payload_types")                                \
    X(SDP_BAD_MULTIPART, "sdp.bad_multipart")                                                  \
    /* RTP (so_media.c) */                                                                     \
    X(RTP_NOT_RTP, "rtp.not_rtp")                                                              \
    X(RTCP_TRUNCATED, "rtcp.truncated")                                                        \
    X(RTCP_BAD_VERSION, "rtcp.bad_version")                                                    \
    X(RTCP_BAD_LENGTH, "rtcp.bad_length")                                                      \
    /* capture files */                                                                        \
    X(PCAP_TIMESTAMP_RANGE, "pcap.timestamp_range")                                            \
    /* bugs: must stay 0 */                                                                    \
    X(INTERNAL_TRANSACTION_TRANSITION, "internal.transaction_transition")                      \
    X(INTERNAL_ATTEMPT_TRANSITION, "internal.attempt_transition")                              \
    X(INTERNAL_DIALOG_TRANSITION, "internal.dialog_transition")                                \
    X(INTERNAL_REGISTRATION_TRANSITION, "internal.registration_transition")                    \
    X(INTERNAL_NO_MEMORY, "internal.no_memory")

#define SO_EVICTION_LIST(X)                                                                    \
    X(FRAGMENTS_FULL, "fragments.full")                                                        \
    X(FRAGMENTS_MEMORY, "fragments.memory")                                                    \
    X(FRAGMENTS_TIMEOUT, "fragments.timeout")                                                  \
    X(TCP_FLOWS_FULL, "tcp_flows.full")                                                        \
    X(TCP_FLOWS_TIMEOUT, "tcp_flows.timeout")                                                  \
    X(TCP_FLOWS_MEMORY, "tcp_flows.memory")                                                    \
    X(TRANSACTIONS_FULL, "transactions.full")                                                  \
    X(TRANSACTIONS_MEMORY, "transactions.memory")                                              \
    X(DIALOGS_FULL, "dialogs.full")                                                            \
    X(DIALOGS_MEMORY, "dialogs.memory")                                                        \
    X(ATTEMPTS_FULL, "attempts.full")                                                          \
    X(ATTEMPTS_MEMORY, "attempts.memory")                                                      \
    X(REGISTRATIONS_FULL, "registrations.full")                                                \
    X(REGISTRATIONS_MEMORY, "registrations.memory")                                            \
    X(REGISTER_ATTEMPTS_FULL, "register_attempts.full")                                        \
    X(REGISTER_ATTEMPTS_MEMORY, "register_attempts.memory")                                    \
    X(RECORDS_MEMORY, "records.memory")                                                        \
    X(MEDIA_ENDPOINTS_FULL, "media_endpoints.full")                                            \
    X(MEDIA_ENDPOINTS_TIMEOUT, "media_endpoints.timeout")                                      \
    X(RTP_STREAMS_FULL, "rtp_streams.full")                                                    \
    X(RTP_STREAMS_TIMEOUT, "rtp_streams.timeout")                                            \
    X(MEDIA_CALLS_FULL, "media_calls.full")                                                    \
    X(MEDIA_CALLS_TIMEOUT, "media_calls.timeout")                                              \
    X(MEDIA_CHANGES_FULL, "media_changes.full")                                                \
    X(MEDIA_RECORDS_FULL, "media_records.full")

#define SO_X_ENUM(id, slug) SO_R_##id,
typedef enum so_reason { SO_REASON_LIST(SO_X_ENUM) SO_N_REASONS } so_reason;
#undef SO_X_ENUM
#define SO_X_ENUM(id, slug) SO_E_##id,
typedef enum so_eviction { SO_EVICTION_LIST(SO_X_ENUM) SO_N_EVICTIONS } so_eviction;
#undef SO_X_ENUM

extern const char *const so_reason_slugs[SO_N_REASONS];
extern const char *const so_eviction_slugs[SO_N_EVICTIONS];

#endif
