# cython: language_level=3
"""The compiled core of sip-otel (C sources in ``_c/``; this file is the binding).

Everything per packet runs in C: capture-file records, frame decoding, TCP/WebSocket/SIP
framing, the SIP parser, transactions, dialogs, registrations and the RFC 6076 counters.
Python objects are made only for what leaves the core: finished dialog/registration records
(spans), snapshots of the counters (telemetry), and the per-layer views the Python modules
``net``, ``sip`` and ``pipeline`` expose for tests and tools. Typed face: ``_core.pyi``.
"""

include "_core_common.pxi"
include "_core_net.pxi"
include "_core_sip.pxi"
include "_core_track.pxi"
include "_core_views.pxi"
include "_core_media.pxi"
include "_core_pipeline.pxi"
