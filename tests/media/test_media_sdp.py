"""The SDP parser (src/sip_otel/_c/so_sdp.c): hand-written edge cases (expected values from
RFC 8866/4566, RFC 3551's static payload types, RFC 3605 a=rtcp, RFC 5761 a=rtcp-mux, RFC 2046
multipart), and real SDP bodies from ../shared/pcaps against tshark's SDP dissector.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sip_otel import _core
from sip_otel.capture.pcapfile import read_frames

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "pcaps"

OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844527 IN IP4 192.0.2.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"m=video 51372 RTP/AVP 99\r\n"
    b"c=IN IP6 2001:db8::2\r\n"
    b"a=rtpmap:99 H264/90000\r\n"
    b"a=rtcp:53020 IN IP4 198.51.100.7\r\n"
    b"a=sendonly\r\n"
)


def parse(body: bytes, ctype: bytes = b"application/sdp") -> tuple[dict[str, Any], dict[str, int]]:
    sdp, reasons = _core.sdp_parse(body, ctype)
    assert sdp is not None, reasons
    return sdp, reasons


def test_offer_session_and_media_level() -> None:
    sdp, reasons = parse(OFFER)
    assert reasons == {}
    assert sdp["addr"] == "192.0.2.1"
    assert sdp["origin_version"] == 2890844527
    audio, video = sdp["media"]
    assert audio["kind"] == "audio" and audio["port"] == 49170 and audio["proto"] == "RTP/AVP"
    assert audio["addr"] == "192.0.2.1"  # session c= inherited
    assert audio["rtcp_port"] == 49171 and audio["rtcp_addr"] == "192.0.2.1"  # port + 1
    assert audio["direction"] == "sendrecv"  # the default
    assert audio["ptime"] == 20
    assert audio["payload_types"] == [
        (0, "PCMU", 8000, 1),  # RFC 3551 static
        (8, "PCMA", 8000, 1),
        (101, "telephone-event", 8000, 1),  # a=rtpmap
    ]
    assert video["addr"] == "2001:db8::2"  # media c= overrides
    assert video["rtcp_port"] == 53020 and video["rtcp_addr"] == "198.51.100.7"
    assert video["direction"] == "sendonly"
    assert video["payload_types"] == [(99, "H264", 90000, 1)]


def test_hold_rtcp_mux_and_session_direction() -> None:
    body = (
        b"v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=inactive\n"
        b"m=audio 4000 RTP/SAVPF 111\na=rtpmap:111 opus/48000/2\na=rtcp-mux\n"
        b"m=audio 4002 RTP/AVP 0\na=recvonly\n"
    )  # LF line ends are accepted
    sdp, reasons = parse(body)
    assert reasons == {}
    a, b = sdp["media"]
    assert a["direction"] == "inactive"  # session-level attribute inherited
    assert a["rtcp_mux"] is True and a["rtcp_port"] == 4000
    assert a["payload_types"] == [(111, "opus", 48000, 2)]
    assert b["direction"] == "recvonly"


def test_rejected_stream_port_zero_and_non_rtp_media() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 0 RTP/AVP 0\r\nm=image 6012 udptl t38\r\nm=audio 7078/2 RTP/AVP 18\r\n"
    )
    sdp, reasons = parse(body)
    assert reasons == {}
    rejected, image, pair = sdp["media"]
    assert rejected["port"] == 0 and rejected["rtcp_port"] == 0
    assert image["kind"] == "other" and image["rtp"] is False and image["payload_types"] == []
    assert pair["n_ports"] == 2 and pair["payload_types"] == [(18, "G729", 8000, 1)]


def test_dynamic_type_without_rtpmap_has_no_rate() -> None:
    sdp, _ = parse(b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 96\r\n")
    assert sdp["media"][0]["payload_types"] == [(96, "", 0, 1)]


@pytest.mark.parametrize(
    ("line", "slug"),
    [
        (b"c=IN IP4 300.1.1.1", "sdp.bad_connection"),
        (b"c=IN IP5 10.0.0.1", "sdp.bad_connection"),
        (b"c=IN IP4", "sdp.bad_connection"),
        (b"c=IN IP4 media.example.com", "sdp.hostname_address"),
        (b"this is not sdp", "sdp.bad_line"),
        (b"a=rtpmap:0 PCMU", "sdp.bad_rtpmap"),
        (b"a=rtpmap:0 PCMU/x", "sdp.bad_rtpmap"),
        (b"a=rtpmap:200 X/8000", "sdp.bad_rtpmap"),
        (b"a=rtcp:notaport", "sdp.bad_rtcp"),
        (b"m=audio", "sdp.bad_media"),
        (b"m=audio 70000 RTP/AVP 0", "sdp.bad_media"),
        (b"m=audio 5000 RTP/AVP 0 x", "sdp.bad_media"),
    ],
)
def test_defects_are_counted(line: bytes, slug: str) -> None:
    body = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\n" + line + b"\r\n"
    sdp, reasons = _core.sdp_parse(body)
    assert sdp is not None
    assert reasons == {slug: 1}


def test_bracketed_ipv6_is_accepted() -> None:
    sdp, reasons = parse(b"v=0\r\nc=IN IP6 [::16.0.0.1]\r\nm=audio 41669 RTP/AVP 18\r\n")
    assert reasons == {}
    assert sdp["media"][0]["addr"] == "::1000:1"  # ::16.0.0.1, as Python prints it


def test_missing_connection() -> None:
    sdp, reasons = _core.sdp_parse(b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n")
    assert sdp is not None and sdp["media"][0]["addr"] is None
    assert reasons == {"sdp.missing_connection": 1}


def test_bounds() -> None:
    many_media = b"v=0\r\nc=IN IP4 10.0.0.1\r\n" + b"m=audio 5000 RTP/AVP 0\r\n" * 10
    sdp, reasons = _core.sdp_parse(many_media)
    assert sdp is not None
    assert len(sdp["media"]) == 8 and sdp["media_lines"] == 10
    assert reasons == {"sdp.too_many_media": 2}
    pts = b" ".join(str(i).encode() for i in range(96, 116))  # 20 payload types, 16 kept
    sdp, reasons = _core.sdp_parse(b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP " + pts)
    assert sdp is not None and len(sdp["media"][0]["payload_types"]) == 16
    assert reasons == {"sdp.too_many_payload_types": 4}


def test_not_sdp() -> None:
    assert _core.sdp_parse(b"hello world\r\n") == (None, {"sdp.not_sdp": 1, "sdp.bad_line": 1})
    assert _core.sdp_parse(b"") == (None, {"sdp.not_sdp": 1})
    # another content type: no SDP, nothing counted
    assert _core.sdp_parse(b"<xml/>", b"application/pidf+xml") == (None, {})


MULTIPART = (
    b"--unique-boundary-1\r\n"
    b"Content-Type: application/isup;version=itu-t92+\r\n"
    b"\r\n"
    b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x00\x03\r\n"
    b"--unique-boundary-1\r\n"
    b"Content-Type: application/SDP; charset=utf-8\r\n"
    b"\r\n"
    b"v=0\r\nc=IN IP4 203.0.113.5\r\nm=audio 30000 RTP/AVP 8\r\n"
    b"\r\n--unique-boundary-1--\r\n"
)


def test_multipart_finds_the_sdp_part() -> None:
    sdp, reasons = parse(MULTIPART, b'multipart/mixed; boundary="unique-boundary-1"')
    assert reasons == {}
    assert [(m["addr"], m["port"]) for m in sdp["media"]] == [("203.0.113.5", 30000)]


def test_multipart_defects() -> None:
    assert _core.sdp_parse(MULTIPART, b"multipart/mixed") == (None, {"sdp.bad_multipart": 1})
    no_sdp = b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"
    assert _core.sdp_parse(no_sdp, b"multipart/mixed;boundary=b") == (None, {})
    unterminated = b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    assert _core.sdp_parse(unterminated, b"multipart/mixed;boundary=b") == (
        None,
        {"sdp.bad_multipart": 1},
    )


# --- real bodies, tshark as the oracle --------------------------------------------------------

ORACLE_PCAPS = [
    "ws_sip-rtp-g711.pcap",
    "ws_sip-rtp-opus.pcap",
    "sipnab_sip-sdp-example.pcap",
    "sipnab_sip-488-codec-reject.pcapng",
    "heplify_sip_ipv6_udp.pcap",
    "heplify_sip_sctp.pcap",  # multipart/mixed (ISUP + SDP) over SCTP
    "heplify_rtp_rtcp_sip_ipv4_udp.pcap",
    "pkts_sip_rtp.pcap",
    "sipnab_rtp-protocol.pcap",
]
FIELDS = [
    "frame.number",
    "sip.Content-Type",
    "sdp.connection_info.address",
    "sdp.media.media",
    "sdp.media.port",
    "sdp.media.proto",
    "sdp.mime.type",
]
START = re.compile(rb"(?:[A-Z]+ sips?:|SIP/2\.0 \d{3} )")


HEX_LINE = re.compile(r"^[0-9a-f]{4,}  ((?:[0-9a-f]{2} ?){1,16})")


def reassembled(path: Path, num: str) -> bytes:
    """tshark's reassembled message of a frame (a SIP message in several SCTP chunks)."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", f"frame.number=={num}", "-x"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    block = out.split("Reassembled", 1)[1].split("\n", 1)[1]
    data = bytearray()
    for line in block.splitlines():
        m = HEX_LINE.match(line)
        if not m:
            break
        data += bytes.fromhex(m.group(1).replace(" ", ""))
    return bytes(data)


def sip_body(frame: bytes) -> bytes:
    """The SIP body in a frame (one SIP message per frame in these captures)."""
    m = START.search(frame)
    assert m, "no SIP start line"
    head_end = frame.index(b"\r\n\r\n", m.start())
    head = frame[m.start() : head_end].decode("latin-1")
    cl = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
    body = frame[head_end + 4 :]
    return body[: int(cl.group(1))] if cl else body


def tshark_sdp(path: Path) -> list[list[str]]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "sip && sdp", "-T", "fields", "-E", "occurrence=a",
         "-E", "aggregator=|", *[a for f in FIELDS for a in ("-e", f)]],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def split(v: str) -> list[str]:
    return v.split("|") if v else []


@pytest.mark.parametrize("name", ORACLE_PCAPS)
def test_against_tshark(name: str) -> None:
    path = PCAPS / name
    if shutil.which("tshark") is None or not path.exists():
        pytest.skip("needs tshark and ../shared/pcaps")
    rows = tshark_sdp(path)
    assert rows, "tshark found no SDP"
    frames = {}
    n = 0
    for batch in read_frames(str(path)):
        for fr in batch:
            n += 1
            frames[n] = bytes(fr.data)
    for row in rows:
        num, ctype, addrs, kinds, ports, protos, mimes = row + [""] * (len(FIELDS) - len(row))
        frame = frames[int(num)]
        if not START.search(frame):
            frame = reassembled(path, num)
        sdp, reasons = _core.sdp_parse(sip_body(frame), ctype.encode())
        assert sdp is not None, (num, reasons)
        assert reasons == {}, (num, reasons)
        media = sdp["media"]
        assert [m["kind"] if m["kind"] != "other" else "" for m in media] == [
            k if k in ("audio", "video") else "" for k in split(kinds)
        ], num
        assert [str(m["port"]) for m in media] == split(ports), num
        assert [m["proto"] for m in media] == split(protos), num
        # every c= tshark saw is an address we hold (session level or a media section's)
        ours = {sdp["addr"], *(m["addr"] for m in media)} - {None}
        theirs = {str(ipaddress.ip_address(a)) for a in split(addrs)}
        assert theirs == ours, num
        # every a=rtpmap encoding tshark saw is a payload type name we hold
        names = {pt[1].lower() for m in media for pt in m["payload_types"]}
        assert {t.lower() for t in split(mimes)} <= names, num
