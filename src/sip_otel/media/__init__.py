"""Media quality: RTP/RTCP statistics (compiled, bpf/so_rtp.h, so_rtcp.h), SDP
(so_sdp.c) and the ITU-T G.107 E-model (:mod:`sip_otel.media.emodel`). docs/media.md."""
