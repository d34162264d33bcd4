"""sip-otel: an OpenTelemetry-native passive SIP monitor.

Layers (see README.md): ``capture`` (I/O) -> ``net`` (sans-IO L2-L4) -> ``sip`` (sans-IO SIP:
parser, framing, transactions, dialogs) -> ``rfc6076`` (pure aggregation) -> ``telemetry``
(the only OTel importer). ``pipeline`` wires the sans-IO layers for live capture and replay alike.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
