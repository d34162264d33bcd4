"""RTCP SR/RR parsing and the LSR/DLSR round trip (src/sip_otel/_c/so_rtcp.h).

Packets are built by hand from the RFC 3550 section 6.4 layouts (XR: RFC 3611 sections 2 and
4.7); expected values are the fields written into them, and tshark's RTCP dissector reads the XR
packets too (test_xr_agrees_with_tshark).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sip_otel import _core


def block(ssrc: int, fraction: int, cum_lost: int, ext_max: int, jitter: int, lsr: int,
          dlsr: int) -> bytes:  # fmt: skip
    return struct.pack(
        "!IB3sIIII", ssrc, fraction, (cum_lost & 0xFFFFFF).to_bytes(3, "big"), ext_max, jitter,
        lsr, dlsr,
    )  # fmt: skip


def header(rc: int, pt: int, body_len: int) -> bytes:
    return struct.pack("!BBH", 0x80 | rc, pt, (4 + body_len) // 4 - 1)


def sr(blocks: list[bytes]) -> bytes:
    body = struct.pack("!IIIIII", 0x11111111, 0xE8F6A2C0, 0x80000000, 160000, 1000, 172000)
    body += b"".join(blocks)
    return header(len(blocks), 200, len(body)) + body


def rr(blocks: list[bytes]) -> bytes:
    body = struct.pack("!I", 0x22222222) + b"".join(blocks)
    return header(len(blocks), 201, len(body)) + body


SDES = header(1, 202, 12) + struct.pack("!I", 0x22222222) + b"\x01\x03abc\x00\x00\x00"


def test_sender_report_with_a_block() -> None:
    pkt = sr([block(0xAAAA0001, 25, 12, 0x0001_0203, 77, 0x6F80_8000, 0x0001_0000)]) + SDES
    result, rep = _core.rtcp_parse(pkt)
    assert result == "ok"
    assert rep is not None
    assert rep["type"] == "SR"
    assert rep["sender_ssrc"] == 0x11111111
    assert (rep["ntp_msw"], rep["ntp_lsw"], rep["rtp_ts"]) == (0xE8F6A2C0, 0x80000000, 160000)
    assert (rep["packet_count"], rep["octet_count"]) == (1000, 172000)
    assert rep["blocks"] == [
        {
            "ssrc": 0xAAAA0001,
            "fraction_lost": 25,
            "cum_lost": 12,
            "ext_max": 0x00010203,
            "jitter": 77,
            "lsr": 0x6F808000,
            "dlsr": 0x00010000,
        }
    ]


def test_receiver_report_negative_cumulative_loss() -> None:
    # Cumulative lost is 24-bit signed: duplicates can make it negative (RFC 3550 6.4.1).
    result, rep = _core.rtcp_parse(rr([block(5, 0, -3, 100, 0, 0, 0)]) + SDES)
    assert result == "ok" and rep is not None
    assert rep["type"] == "RR"
    assert rep["blocks"][0]["cum_lost"] == -3


def test_report_found_after_another_packet_and_blocks_bounded() -> None:
    blocks = [block(i, i, i, i, i, i, i) for i in range(1, 7)]  # 6 blocks, 4 kept
    result, rep = _core.rtcp_parse(SDES + rr(blocks))
    assert result == "ok" and rep is not None
    assert rep["rc"] == 6
    assert [b["ssrc"] for b in rep["blocks"]] == [1, 2, 3, 4]
    assert rep["packets"] == 2


def test_malformed() -> None:
    assert _core.rtcp_parse(b"") == ("truncated", None)
    assert _core.rtcp_parse(b"\x80\xc9") == ("truncated", None)
    assert _core.rtcp_parse(b"\x40\xc9\x00\x01" + b"\x00" * 4) == ("bad_version", None)
    # length says 2 words after the header, 8 bytes present: fine; 3 words: past the end
    assert _core.rtcp_parse(b"\x80\xc9\x00\x03" + b"\x00" * 8)[0] == "truncated"
    # RR with rc 1 but no room for the block
    assert _core.rtcp_parse(b"\x81\xc9\x00\x01" + b"\x00" * 4)[0] == "bad_length"
    assert _core.rtcp_parse(SDES) == ("no_report", None)


def test_ntp_mid32() -> None:
    # 1,700,000,000.5 s Unix = 3,908,988,800.5 s NTP; 3,908,988,800 mod 65536 = 28544 (0x6f80),
    # 0.5 s = 0x8000 in 1/65536 s.
    assert _core.rtcp_ntp_mid32(1_700_000_000_500_000_000) == 0x6F80_8000
    assert _core.rtcp_ntp_mid32(0) == (2_208_988_800 % 65536) << 16


def test_round_trip() -> None:
    a = 0x6F80_8000
    # SR sent 1.5 s before A, held 1 s by the receiver: round trip 0.5 s = 0x8000
    assert _core.rtcp_rtt(a, a - 0x0001_8000, 0x0001_0000) == 0x8000
    assert _core.rtcp_rtt(a, 0, 0) is None  # no SR received yet
    assert _core.rtcp_rtt(a, a - 0x0001_0000, 0x0002_0000) is None  # negative
    # across the 16-bit seconds wrap of the middle 32 bits
    assert _core.rtcp_rtt(0x0000_4000, 0xFFFF_C000, 0) == 0x8000


# --- RTCP XR (RFC 3611) ----------------------------------------------------------------------
# A VoIP Metrics block (section 4.7, block type 7) written row by row from the RFC's figure;
# the expected dict is the same numbers read off the rows.
VOIP_ROWS = (
    bytes([7, 0, 0, 8]),  # BT=7 | reserved | block length = 8
    bytes.fromhex("aaaa0001"),  # SSRC of source
    bytes([12, 3, 40, 2]),  # loss rate | discard rate | burst density | gap density
    bytes.fromhex("0078 0bb8"),  # burst duration 120 ms | gap duration 3000 ms
    bytes.fromhex("0096 003c"),  # round trip delay 150 ms | end system delay 60 ms
    bytes([0xEC, 0xB5, 30, 16]),  # signal -20 dBm | noise -75 dBm | RERL 30 dB | Gmin 16
    bytes([88, 127, 41, 43]),  # R 88 | ext. R 127 (unavailable) | MOS-LQ 4.1 | MOS-CQ 4.3
    bytes.fromhex("5a00 0028"),  # RX config PLC 1, JBA 1, rate 10 | reserved | JB nominal 40
    bytes.fromhex("0050 00c8"),  # JB maximum 80 | JB abs max 200
)
VOIP = b"".join(VOIP_ROWS)
VOIP_EXPECTED = {
    "ssrc": 0xAAAA0001,
    "loss_rate": 12,
    "discard_rate": 3,
    "burst_density": 40,
    "gap_density": 2,
    "burst_duration": 120,
    "gap_duration": 3000,
    "round_trip_delay": 150,
    "end_system_delay": 60,
    "signal_level": -20,
    "noise_level": -75,
    "rerl": 30,
    "gmin": 16,
    "r_factor": 88,
    "ext_r_factor": 127,
    "mos_lq": 41,
    "mos_cq": 43,
    "rx_config": 0x5A,
    "jb_nominal": 40,
    "jb_maximum": 80,
    "jb_abs_max": 200,
}
# Receiver Reference Time block (4.4, type 4): two words of NTP timestamp.
RRT = bytes([4, 0, 0, 2]) + struct.pack("!II", 0xE8F6A2C0, 0x80000000)
# A block type nobody defined, three words of content: skipped.
UNKNOWN = bytes([99, 0x5A, 0, 3]) + b"\xff" * 12


def voip(ssrc: int) -> bytes:
    return VOIP_ROWS[0] + struct.pack("!I", ssrc) + b"".join(VOIP_ROWS[2:])


def xr(blocks: list[bytes], padding: int = 0) -> bytes:
    """An XR packet (section 2): V=2, P, PT=207, length, SSRC, the blocks, then `padding`
    octets of padding whose last one counts them."""
    body = struct.pack("!I", 0x33333333) + b"".join(blocks)
    if padding:
        body += b"\x00" * (padding - 1) + bytes([padding])
    return struct.pack("!BBH", 0xA0 if padding else 0x80, 207, len(body) // 4) + body


def test_xr_alone() -> None:
    # XR without SR/RR: "no_report" for SR/RR callers, the VoIP block still given
    assert len(VOIP) == 36
    assert _core.rtcp_parse(xr([VOIP])) == (
        "no_report", {"type": None, "packets": 1, "xr": [VOIP_EXPECTED]}
    )  # fmt: skip


def test_xr_after_rr_in_a_compound_packet() -> None:
    rr_pkt = rr([block(0xAAAA0001, 25, 12, 0x0001_0203, 77, 0, 0)])
    alone = _core.rtcp_parse(rr_pkt + SDES)
    result, rep = _core.rtcp_parse(rr_pkt + SDES + xr([RRT, UNKNOWN, VOIP]))
    assert result == "ok" and rep is not None and alone[1] is not None
    assert rep["xr"] == [VOIP_EXPECTED]
    assert rep["packets"] == 3
    # what SR/RR callers read is what they read without the XR
    assert {k: v for k, v in rep.items() if k not in ("xr", "packets")} == {
        k: v for k, v in alone[1].items() if k not in ("xr", "packets")
    }
    assert alone[1]["xr"] == []


def test_xr_unknown_blocks_skipped_and_several_packets() -> None:
    zero_len = bytes([42, 0, 0, 0])  # a block of header only
    pkt = xr([UNKNOWN, voip(1), zero_len, RRT, voip(2)]) + rr([]) + xr([voip(3)])
    result, rep = _core.rtcp_parse(pkt)
    assert result == "ok" and rep is not None
    assert [v["ssrc"] for v in rep["xr"]] == [1, 2, 3]
    assert rep["xr"][2] == {**VOIP_EXPECTED, "ssrc": 3}


def test_xr_blocks_bounded() -> None:
    # SO_RTCP_MAX_XR = 4 VoIP blocks are kept, the rest of the packet still walked
    result, rep = _core.rtcp_parse(xr([voip(i) for i in range(1, 7)]) + SDES)
    assert result == "no_report" and rep is not None
    assert [v["ssrc"] for v in rep["xr"]] == [1, 2, 3, 4]
    assert rep["packets"] == 2


def test_xr_padding() -> None:
    result, rep = _core.rtcp_parse(rr([]) + xr([VOIP], padding=4))
    assert result == "ok" and rep is not None and rep["xr"] == [VOIP_EXPECTED]
    # padding count 0, or more than the blocks: malformed
    bad = bytearray(rr([]) + xr([VOIP], padding=4))
    bad[-1] = 0
    assert _core.rtcp_parse(bytes(bad)) == ("bad_length", None)
    bad[-1] = 44  # the XR packet is 48 octets, 40 after its header and SSRC
    assert _core.rtcp_parse(bytes(bad)) == ("bad_length", None)


def test_xr_malformed() -> None:
    rr_pkt = rr([block(5, 0, 0, 0, 0, 0, 0)])
    # XR with no room for its SSRC
    assert _core.rtcp_parse(rr_pkt + b"\x80\xcf\x00\x00") == ("bad_length", None)
    # a VoIP block whose length is not 8 (7: 32 octets)
    short = bytes([7, 0, 0, 7]) + VOIP[4:32]
    assert _core.rtcp_parse(rr_pkt + xr([short])) == ("bad_length", None)
    # a block length past the end of its XR packet
    assert _core.rtcp_parse(rr_pkt + xr([bytes([99, 0, 0, 5]) + b"\x00" * 4])) == (
        "bad_length", None
    )  # fmt: skip
    # XR length past the end of the compound packet
    assert _core.rtcp_parse(rr_pkt + xr([VOIP])[:-4]) == ("truncated", None)
    # a valid XR, then a malformed packet: nothing is given
    assert _core.rtcp_parse(xr([VOIP]) + b"\x40\xc9\x00\x01" + b"\x00" * 4) == (
        "bad_version", None
    )  # fmt: skip


def write_pcap(path: Path, payloads: list[bytes], port: int) -> None:
    """Each payload in one IPv4/UDP datagram 127.0.0.1 -> 127.0.0.2:port (raw IP link type)."""
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for i, payload in enumerate(payloads):
            udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2]))  # fmt: skip
            f.write(struct.pack("<IIII", i + 1, 0, len(ip) + len(udp), len(ip) + len(udp)))
            f.write(ip + udp)


def tshark_voip_blocks(node: Any) -> list[dict[str, str]]:
    """The "Contents" of every XR block of type 7 in tshark's JSON, in order."""
    found: list[dict[str, str]] = []
    if isinstance(node, list):
        for x in node:
            found += tshark_voip_blocks(x)
    elif isinstance(node, dict):
        if node.get("rtcp.xr.bt") == "7":
            found.append(node["Contents"])
        else:
            for x in node.values():
                found += tshark_voip_blocks(x)
    return found


def from_tshark(c: dict[str, str]) -> dict[str, int]:
    """tshark's VoIP Metrics fields in the parser's terms (MOS x10, RX config reassembled)."""
    v = {k.rsplit(".", 1)[1]: x for k, x in c.items()}
    return {
        "ssrc": int(v["identifier"], 16),
        "loss_rate": int(v["fraction"]),
        "discard_rate": int(v["discarded"]),
        "burst_density": int(v["burstdensity"]),
        "gap_density": int(v["gapdensity"]),
        "burst_duration": int(v["burstduration"]),
        "gap_duration": int(v["gapduration"]),
        "round_trip_delay": int(v["rtdelay"]),
        "end_system_delay": int(v["esdelay"]),
        "signal_level": int(v["signallevel"]),
        "noise_level": int(v["noiselevel"]),
        "rerl": int(v["rerl"]),
        "gmin": int(v["gmin"]),
        "r_factor": int(v["rfactor"]),
        "ext_r_factor": int(v["extrfactor"]),
        "mos_lq": round(float(v["moslq"]) * 10),
        "mos_cq": round(float(v["moscq"]) * 10),
        "rx_config": int(v["plc"]) << 6 | int(v["jba"]) << 4 | int(v["jbrate"]),
        "jb_nominal": int(v["jbnominal"]),
        "jb_maximum": int(v["jbmax"]),
        "jb_abs_max": int(v["jbabsmax"]),
    }


def test_xr_agrees_with_tshark(tmp_path: Path) -> None:
    """The XR packets above, decoded by tshark as RTCP: its rtcp.xr.voipmetrics.* fields are
    the parser's, block for block."""
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    other = bytes([1, 0x80, 0, 30]) + b"".join(VOIP_ROWS[1:]) + b"\x00" * 92  # BT 1, 31 words
    low = voip(7)[:8] + bytes([0, 0, 0, 0]) + b"\xff" * 4 + voip(7)[16:20]
    low += bytes([0x81, 0x7F, 127, 0]) + bytes([0, 0, 10, 50]) + b"\xc0\x00\xff\xff" * 2
    packets = [
        xr([VOIP]),
        rr([block(0xAAAA0001, 25, 12, 0x0001_0203, 77, 0, 0)]) + SDES + xr([RRT, UNKNOWN, VOIP]),
        xr([UNKNOWN, voip(1), RRT, voip(2)]) + rr([]) + xr([other, voip(3)]),
        rr([]) + xr([low], padding=4),
    ]
    pcap = tmp_path / "xr.pcap"
    write_pcap(pcap, packets, 40001)
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", "udp.port==40001,rtcp", "-T", "json",
         "--no-duplicate-keys"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    frames = json.loads(out)
    assert len(frames) == len(packets)
    compared = 0
    for frame, pkt in zip(frames, packets, strict=True):
        theirs = [from_tshark(c) for c in tshark_voip_blocks(frame["_source"]["layers"]["rtcp"])]
        _, rep = _core.rtcp_parse(pkt)
        assert rep is not None
        assert rep["xr"] == theirs
        compared += len(theirs)
    assert compared == 6
