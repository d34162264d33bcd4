"""Synthetic SIP conversations for seeds: whole dialogs, challenges, cancels, failures,
registrations and fragmented datagrams, written out as raw SIP text (RFC 3261 section 7) on
UDP, so that the fuzzer starts from states deep in the tracker that few corpus captures reach
(re-INVITE with Session-Expires, BYE answered 500 with Retry-After, 401/407 retries, CANCEL/487,
REGISTER refresh and removal, IPv4/IPv6 fragments out of order and overlapping).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness import FLAG_RECORDS, encode_frames

from sip_otel.net.types import Frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netbuild import (
    DST4,
    DST6,
    SRC4,
    SRC6,
    ethernet,
    ext,
    frag6,
    ipv4,
    ipv6,
    udp,
)

A, B = "192.0.2.1:5060", "192.0.2.2:5060"


def sip(first: str, call: str, cseq: str, ftag: str, ttag: str = "", branch: str = "b1",
        extra: str = "", body: str = "") -> bytes:  # fmt: skip
    to = f"<sip:bob@example.com>{';tag=' + ttag if ttag else ''}"
    lines = [
        first, f"Via: SIP/2.0/UDP {A};branch=z9hG4bK{branch}",
        f"From: <sip:alice@example.com>;tag={ftag}", f"To: {to}", f"Call-ID: {call}",
        f"CSeq: {cseq}", "Contact: <sip:alice@192.0.2.1>",
    ]  # fmt: skip
    if extra:
        lines += extra.split("|")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def req(method: str, call: str, n: int, ftag: str = "a", ttag: str = "", branch: str = "b1",
        extra: str = "") -> bytes:  # fmt: skip
    return sip(f"{method} sip:bob@example.com SIP/2.0", call, f"{n} {method}", ftag, ttag,
               branch, extra, "v=0\r\n" if method == "INVITE" else "")  # fmt: skip


def resp(status: int, method: str, call: str, n: int, ftag: str = "a", ttag: str = "",
         branch: str = "b1", extra: str = "") -> bytes:  # fmt: skip
    return sip(f"SIP/2.0 {status} X", call, f"{n} {method}", ftag, ttag, branch, extra)


def a2b(payload: bytes) -> bytes:
    return ethernet(ipv4(udp(payload)))


def b2a(payload: bytes) -> bytes:
    return ethernet(ipv4(udp(payload), src=DST4, dst=SRC4))


def invite_dialog(c: str) -> list[bytes]:
    se = "Session-Expires: 90;refresher=uac|Supported: timer"
    return [
        a2b(req("INVITE", c, 1, extra=se)), b2a(resp(100, "INVITE", c, 1)),
        b2a(resp(180, "INVITE", c, 1, ttag="t")), b2a(resp(183, "INVITE", c, 1, ttag="u")),
        b2a(resp(200, "INVITE", c, 1, ttag="t", extra=se)), a2b(req("ACK", c, 1, ttag="t")),
        a2b(req("INVITE", c, 2, ttag="t", branch="b2", extra=se)),
        b2a(resp(200, "INVITE", c, 2, ttag="t", branch="b2", extra=se)),
        a2b(req("UPDATE", c, 3, ttag="t", branch="b3", extra=se)),
        b2a(resp(200, "UPDATE", c, 3, ttag="t", branch="b3")),
        a2b(req("BYE", c, 4, ttag="t", branch="b4")),
        b2a(resp(500, "BYE", c, 4, ttag="t", branch="b4", extra="Retry-After: 1")),
        a2b(req("BYE", c, 5, ttag="t", branch="b5")),
        b2a(resp(200, "BYE", c, 5, ttag="t", branch="b5")),
    ]  # fmt: skip


def challenged(c: str) -> list[bytes]:
    auth = 'Proxy-Authorization: Digest username="a"'
    return [
        a2b(req("INVITE", c, 1)), b2a(resp(407, "INVITE", c, 1, ttag="x")),
        a2b(req("ACK", c, 1, ttag="x")), a2b(req("INVITE", c, 2, branch="b2", extra=auth)),
        b2a(resp(180, "INVITE", c, 2, ttag="t", branch="b2")),
        a2b(req("CANCEL", c, 2, branch="b2")), b2a(resp(200, "CANCEL", c, 2, branch="b2")),
        b2a(resp(487, "INVITE", c, 2, ttag="t", branch="b2")),
        a2b(req("ACK", c, 2, ttag="t", branch="b2")),
    ]  # fmt: skip


def failures(c: str) -> list[bytes]:
    out = []
    for i, status in enumerate((302, 486, 503, 603, 408)):
        call = f"{c}-{status}"
        out += [a2b(req("INVITE", call, 1, branch=f"f{i}")),
                b2a(resp(status, "INVITE", call, 1, ttag="t", branch=f"f{i}",
                         extra="Retry-After: 30" if status == 503 else ""))]  # fmt: skip
    out += [a2b(req("INVITE", c + "-timeout", 1, branch="to")),
            a2b(req("OPTIONS", c + "-o", 1, branch="o1")),
            b2a(resp(200, "OPTIONS", c + "-o", 1, ttag="t", branch="o1")),
            a2b(req("MESSAGE", c + "-m", 1, branch="m1")),
            a2b(req("SUBSCRIBE", c + "-s", 1, branch="s1")),
            b2a(req("NOTIFY", c + "-s", 2, branch="n1"))]  # fmt: skip
    return out


def registration(c: str) -> list[bytes]:
    return [
        a2b(req("REGISTER", c, 1, extra="Expires: 60")),
        b2a(resp(401, "REGISTER", c, 1, ttag="r")),
        a2b(req("REGISTER", c, 2, branch="b2", extra="Expires: 60|Authorization: Digest x")),
        b2a(resp(200, "REGISTER", c, 2, ttag="r", branch="b2",
                 extra="Contact: <sip:a@h>;expires=60")),
        a2b(req("REGISTER", c, 3, branch="b3", extra="Expires: 0")),
        b2a(resp(200, "REGISTER", c, 3, ttag="r", branch="b3")),
        a2b(req("REGISTER", c, 4, branch="b4", extra="Contact: *|Expires: 0")),
        b2a(resp(423, "REGISTER", c, 4, ttag="r", branch="b4", extra="Min-Expires: 3600")),
    ]  # fmt: skip


def fragments(c: str) -> list[bytes]:
    dgram = udp(req("INVITE", c, 1, extra="X-Pad: " + "p" * 300))
    v4 = [ethernet(ipv4(dgram[o : o + 96], frag_offset=o, more=o + 96 < len(dgram), ident=9))
          for o in range(0, len(dgram), 96)]  # fmt: skip
    overlap = ethernet(ipv4(dgram[48:160], frag_offset=48, more=True, ident=9))
    v6 = [ethernet(ipv6(ext(44) + frag6(17, o, o + 96 < len(dgram), 7) + dgram[o : o + 96], nh=0),
                   0x86DD) for o in range(0, len(dgram), 96)]  # fmt: skip
    v6_plain = ethernet(ipv6(udp(req("OPTIONS", c + "6", 1)), src=SRC6, dst=DST6), 0x86DD)
    return [v4[2], overlap, v4[0], v4[1], *v4[3:], *reversed(v6), v6_plain]


FLOWS = (invite_dialog, challenged, failures, registration, fragments)


def flow_seeds() -> list[bytes]:
    """Each flow, 20 ms between messages, under every limit profile, records on for half."""
    out = []
    for k, flow in enumerate(FLOWS):
        frames = flow(f"call-{k}@fuzz")
        for profile in range(4):
            flags = (profile << 2) | (FLAG_RECORDS if (k + profile) & 1 else 0)
            out.append(
                encode_frames([Frame(i * 20_000_000, 1, f) for i, f in enumerate(frames)], flags)
            )
    return out
