"""RTCP SR/RR parsing and the LSR/DLSR round trip (src/sip_otel/_c/so_rtcp.h).

Packets are built by hand from the RFC 3550 section 6.4 layouts; expected values are the
fields written into them.
"""

from __future__ import annotations

import struct

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
