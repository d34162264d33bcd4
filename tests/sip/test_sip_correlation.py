"""Session-ID (RFC 7989) and a configured correlation header: parsed, kept on records."""

from __future__ import annotations

import pytest

from netbuild import ethernet, ipv4, udp
from sip_otel import _core
from sip_otel.errors import Reasons
from sip_otel.net.types import LINKTYPE_ETHERNET, PROTO_UDP, Frame, SipPayload
from sip_otel.pipeline import Pipeline, PipelineConfig
from sip_otel.records import DialogRecord
from sip_otel.sip.parser import parse_payload

LOOP_A, LOOP_B = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2])
SID = "ab30317f1a784dc48ff824d0d3715d86"


def message(
    start: str, cseq: str, branch: str, call_id: str, to_tag: str = "", extra: str = ""
) -> bytes:
    to = "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
        f"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def parsed(data: bytes) -> list[object]:
    payload = SipPayload(0, PROTO_UDP, LOOP_A, 5060, LOOP_B, 5060, data)
    return list(parse_payload(payload, Reasons()))


@pytest.fixture
def x_cid() -> object:
    _core.sip_set_correlation_header("X-CID")
    yield
    _core.sip_set_correlation_header(None)


def test_correlation_header_any_case_first_value(x_cid: object) -> None:
    extra = "x-cid:  leg-a@127.0.0.1 , other\r\nX-CID: second\r\nSession-Id: " + SID + "\r\n"
    (m,) = parsed(
        message("OPTIONS sip:b@127.0.0.1 SIP/2.0", "1 OPTIONS", "z9hG4bK1", "c", extra=extra)
    )
    assert m.correlation == "leg-a@127.0.0.1"  # type: ignore[attr-defined]
    assert m.session_id == SID  # type: ignore[attr-defined]


def test_correlation_header_off_by_default() -> None:
    extra = "X-CID: leg-a\r\n"
    (m,) = parsed(
        message("OPTIONS sip:b@127.0.0.1 SIP/2.0", "1 OPTIONS", "z9hG4bK1", "c", extra=extra)
    )
    assert m.correlation == "" and m.session_id == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["Via", "call-id", "Session-ID", "i", "X CID", "X:CID", "x" * 65, "é"]
)
def test_header_names_sip_defines_or_non_tokens_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="correlation header"):
        _core.sip_set_correlation_header(name)
    with pytest.raises(ValueError, match="correlation header"):
        Pipeline(PipelineConfig(correlation_header=name))


def _call(t0: int, call_id: str, branch: str, extra: str) -> list[Frame]:
    invite = "INVITE sip:bob@127.0.0.1 SIP/2.0"
    msgs = [
        (0, message(invite, "1 INVITE", branch, call_id, extra=extra)),
        (500, message("SIP/2.0 200 OK", "1 INVITE", branch, call_id, "b1")),
        (510, message("ACK sip:bob@127.0.0.1 SIP/2.0", "1 ACK", branch + "a", call_id, "b1")),
        (9000, message("BYE sip:bob@127.0.0.1 SIP/2.0", "2 BYE", branch + "b", call_id, "b1")),
        (9050, message("SIP/2.0 200 OK", "2 BYE", branch + "b", call_id, "b1")),
    ]
    return [
        Frame(
            t0 + ms * 1_000_000, LINKTYPE_ETHERNET, ethernet(ipv4(udp(d), src=LOOP_A, dst=LOOP_B))
        )
        for ms, d in msgs
    ]


def test_records_carry_the_initial_invites_session_id_and_correlation() -> None:
    records: list[object] = []
    p = Pipeline(PipelineConfig(correlation_header="X-CID"), on_record=records.append)
    # leg A: Session-ID from the caller (remote not yet known); leg B: the B2BUA's other leg
    p.feed(
        _call(
            10**18,
            "leg-a",
            "z9hG4bK-a",
            f"Session-ID: {SID};remote=00000000000000000000000000000000\r\n",
        )
    )
    p.feed(_call(10**18 + 10**8, "leg-b", "z9hG4bK-b", f"Session-ID: {SID}\r\nX-CID: leg-a\r\n"))
    p.finish()
    dialogs = [r for r in records if isinstance(r, DialogRecord)]
    assert [(r.call_id, r.outcome, r.session_id, r.correlation) for r in dialogs] == [
        ("leg-a", "completed", f"{SID};remote=00000000000000000000000000000000", ""),
        ("leg-b", "completed", SID, "leg-a"),
    ]


def test_no_correlation_header_configured_keeps_none() -> None:
    records: list[object] = []
    p = Pipeline(on_record=records.append)
    p.feed(_call(10**18, "leg-b", "z9hG4bK-b", "X-CID: leg-a\r\n"))
    p.finish()
    (r,) = [r for r in records if isinstance(r, DialogRecord)]
    assert (r.session_id, r.correlation) == ("", "")
