"""Parser fields against tshark on a few corpus captures (independent oracle; skipped if absent).

tshark extracts each SIP frame's UDP payload (after its own IP reassembly) and its dissection of
the same fields; our parser runs on the payload bytes alone. This does not use the project's
pcap reader or frame decoder.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import SHARED_PCAPS
from sip_otel.errors import Reasons
from sip_otel.net.types import PROTO_UDP, SipPayload
from sip_otel.sip.message import SipMessage
from sip_otel.sip.parser import parse_payload

FILES = [
    "pkts_sipp.pcap",  # SIPp call flows
    "sngrep_ipv6frag.pcap",  # IPv6, PRACK/UPDATE, one INVITE rebuilt from fragments
    "pcap2sipp_example.pcap",  # varied methods and responses
    "suricata_sip-compact-form.pcap",  # compact header names, odd display name
    "sipnab_sip-register.pcap",  # REGISTER / 200
    "zeek_sip_sip-junk-before-request.pcap",  # REGISTER with one header after a NUL datagram
]

FIELDS: list[tuple[str, str]] = [  # (tshark field, SipMessage attribute)
    ("sip.Method", "method"),
    ("sip.Status-Code", "status"),
    ("sip.r-uri", "request_uri"),
    ("sip.Call-ID", "call_id"),
    ("sip.CSeq.seq", "cseq"),
    ("sip.CSeq.method", "cseq_method"),
    ("sip.from.addr", "from_uri"),
    ("sip.from.tag", "from_tag"),
    ("sip.to.addr", "to_uri"),
    ("sip.to.tag", "to_tag"),
    ("sip.Via.branch", "via_branch"),
    ("sip.Via.transport", "via_transport"),
    ("sip.Content-Length", "content_length"),
]

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(
    TSHARK is None or not SHARED_PCAPS.is_dir(), reason="tshark or the capture corpus is absent"
)


def _ours(m: SipMessage, attr: str) -> str:
    if attr == "method":
        return m.method if m.is_request else ""  # tshark's sip.Method is requests only
    value = getattr(m, attr)
    if value is None or (attr == "cseq" and value < 0) or (attr == "status" and value == 0):
        return ""
    return str(value)


@pytest.mark.parametrize("name", FILES)
def test_fields_match_tshark(name: str) -> None:
    path = SHARED_PCAPS / name
    if not path.is_file():
        pytest.skip(f"{name} not in the corpus")
    assert TSHARK is not None
    cmd = [
        TSHARK,
        "-r",
        str(path),
        "-Y",
        "sip && udp",
        "-E",
        "occurrence=f",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "udp.payload",
    ]
    for field, _ in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows, f"tshark saw no SIP in {name}"
    for row in rows:
        frame, payload, want = row[0], row[1], row[2:]
        reasons = Reasons()
        msgs = parse_payload(
            SipPayload(0, PROTO_UDP, b"", 0, b"", 0, bytes.fromhex(payload)), reasons
        )
        assert len(msgs) == 1, (frame, reasons.counts)
        got = [_ours(msgs[0], attr) for _, attr in FIELDS]
        assert got == want, f"{name} frame {frame}"
