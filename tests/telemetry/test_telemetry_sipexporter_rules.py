"""sip-exporter 1.x users' SER rule gives ``sip_exporter_ser`` on every traffic mix.

The rule its users run: ``100 * rate(invite_200) / (rate(invite) - rate(invite_3xx))``. Over a
whole capture the rates are the counters themselves, so the rule is evaluated on the replay's
``/metrics`` text. Every expected value below is counted by hand from the messages written;
"old" is what the rule gave when ``sip_exporter_invite_total`` counted INVITEs on the wire.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from telhelpers import MS, A, B, parse, sip, udp_frame

from sip_otel.capture.pcapfile import PcapWriter
from sip_otel.cli import main

T0 = 1_700_000_000_000_000_000
S = 1000 * MS
P = ("192.0.2.30", 5060)  # a stateful proxy between A and B
Msg = tuple[int, tuple[str, int], tuple[str, int], bytes]


def _invite(t: int, call: str, branch: str, cseq: int = 1, to_tag: str = "") -> Msg:
    return (
        t,
        A,
        B,
        sip("INVITE sip:bob@example.com SIP/2.0", branch, f"{cseq} INVITE", call, "a", to_tag),
    )


def _resp(t: int, code: str, call: str, branch: str, cseq: int = 1, to_tag: str = "b") -> Msg:
    return (t, B, A, sip(f"SIP/2.0 {code}", branch, f"{cseq} INVITE", call, "a", to_tag))


def _ack(t: int, call: str, branch: str, cseq: int = 1, to_tag: str = "b") -> Msg:
    return (
        t,
        A,
        B,
        sip("ACK sip:bob@192.0.2.20 SIP/2.0", branch, f"{cseq} ACK", call, "a", to_tag),
    )


def _answered(t: int, call: str, retransmit: bool = False, reinvite: bool = False) -> list[Msg]:
    br = f"z9hG4bK-{call}"
    out = [_invite(t, call, br)]
    if retransmit:  # Timer A: the same INVITE again after 500 ms
        out.append(_invite(t + 500 * MS, call, br))
    out += [_resp(t + 600 * MS, "200 OK", call, br), _ack(t + 610 * MS, call, br + "-ack")]
    if reinvite:
        rb = br + "-re"
        out += [
            _invite(t + 5 * S, call, rb, 2, to_tag="b"),
            _resp(t + 5 * S + 50 * MS, "200 OK", call, rb, 2),
            _ack(t + 5 * S + 60 * MS, call, rb + "-ack", 2),
        ]
    return out


def _final(t: int, call: str, code: str) -> list[Msg]:
    br = f"z9hG4bK-{call}"
    return [_invite(t, call, br), _resp(t + 300 * MS, code, call, br), _ack(t + 310 * MS, call, br)]


def _challenged(t: int, call: str) -> list[Msg]:
    br = f"z9hG4bK-{call}"
    return [
        *_final(t, call, "407 Proxy Authentication Required"),
        _invite(t + 400 * MS, call, br + "-2", 2),
        _resp(t + 900 * MS, "200 OK", call, br + "-2", 2),
        _ack(t + 910 * MS, call, br + "-ack", 2),
    ]


def _timed_out(t: int, call: str) -> list[Msg]:
    br = f"z9hG4bK-{call}"  # Timer A doubles from T1 = 500 ms: 7 transmissions in 64*T1
    return [_invite(t + ms * MS, call, br) for ms in (0, 500, 1500, 3500, 7500, 15500, 31500)]


def _proxied(t: int, call: str, code: str) -> list[Msg]:
    """One call seen on both hops of a stateful proxy: two INVITE transactions, one attempt."""
    out: list[Msg] = []
    for hop, (src, dst) in enumerate(((A, P), (P, B))):
        br = f"z9hG4bK-{call}-hop{hop}"
        inv = sip("INVITE sip:bob@example.com SIP/2.0", br, "1 INVITE", call, "a")
        resp = sip(f"SIP/2.0 {code}", br, "1 INVITE", call, "a", "b")
        out += [(t + hop * MS, src, dst, inv), (t + (300 - hop) * MS, dst, src, resp)]
    return out


def _late(t: int) -> Msg:
    """A later message, so packet time passes every timer (Timer B fires 32 s after an INVITE)."""
    return (
        t,
        A,
        B,
        sip("OPTIONS sip:bob@example.com SIP/2.0", "z9hG4bK-late", "1 OPTIONS", "late", "l"),
    )


def _samples(tmp_path: Path, msgs: list[Msg], *flags: str) -> dict[str, float]:
    cap = tmp_path / "mix.pcap"
    with cap.open("wb") as fh:
        writer = PcapWriter(fh, 1)
        for t, src, dst, payload in sorted(msgs, key=lambda m: m[0]):
            writer.write(T0 + t, udp_frame(src, dst, payload))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(cap), "--format", "prometheus", *flags]) == 0
    _, samples = parse(out.getvalue())
    flat: dict[str, float] = {}
    for (name, labels), v in samples.items():
        key = name + "".join(f",{k}={val}" for k, val in sorted(labels))
        flat[key] = v
    return flat


def _rule(m: dict[str, float]) -> float:
    inv, ok, r3 = (
        m["sip_exporter_invite_total"],
        m["sip_exporter_invite_200_total"],
        m["sip_exporter_invite_3xx_total"],
    )
    return 100.0 * ok / (inv - r3)


def _calls(n: int, make: object, t0: int = 0, **kw: object) -> Iterator[Msg]:
    for i in range(n):
        yield from make(t0 + i * 50 * S, f"c{t0}-{i}", **kw)  # type: ignore[operator]


CASES: dict[str, tuple[list[Msg], tuple[str, ...], dict[str, float], float]] = {
    # name: (messages, flags, hand-counted series, SER %, ...)
    "retransmitted": (
        [*_calls(2, _answered, retransmit=True)],
        (),
        {
            "sip_exporter_invite_total": 2,
            "sip_requests_total,method=INVITE": 4,
            "sip_exporter_sip_retransmission_total,method=INVITE": 2,
            "sip_exporter_invite_200_total": 2,
        },
        100.0,  # old: 2 / 4 = 50 %
    ),
    "reinvited": (
        [*_calls(2, _answered, reinvite=True)],
        (),
        {
            "sip_exporter_invite_total": 2,
            "sip_requests_total,method=INVITE": 4,
            "sip_exporter_reinvite_total": 2,
            "sip_exporter_invite_200_total": 2,
        },
        100.0,  # old: 2 / 4 = 50 %
    ),
    "challenged": (
        [*_calls(2, _challenged)],
        (),
        {
            "sip_exporter_invite_total": 2,  # a credentialed retry is the same attempt
            "sip_requests_total,method=INVITE": 4,
            "sip_exporter_proxy_authentication_required_total": 2,
            "sip_exporter_invite_200_total": 2,
        },
        100.0,  # old: 2 / 4 = 50 %
    ),
    "challenged, retry a new attempt": (
        [*_calls(2, _challenged)],
        ("--challenge-retry-new-attempt",),
        {
            "sip_exporter_invite_total": 4,  # as sip-exporter 1.x counts them
            "sip_requests_total,method=INVITE": 4,
            "sip_exporter_invite_200_total": 2,
        },
        50.0,  # 2 / 4: the challenged INVITEs are failed attempts under this reading
    ),
    "redirected": (
        # c0-0: 302 then a 200 (two attempts, one 3xx); c0-1: 486
        [
            *_final(0, "c0-0", "302 Moved Temporarily"),
            *_answered(400 * MS, "c0-0x"),
            *_final(50 * S, "c0-1", "486 Busy Here"),
        ],
        (),
        {
            "sip_exporter_invite_total": 3,
            "sip_exporter_invite_3xx_total": 1,
            "sip_exporter_invite_200_total": 1,
        },
        50.0,  # 1 / (3 - 1)
    ),
    "half timed out": (
        [*_calls(1, _answered), *_timed_out(50 * S, "lost"), _late(200 * S)],
        (),
        {
            "sip_exporter_invite_total": 2,
            "sip_requests_total,method=INVITE": 8,  # 1 + 7 transmissions
            "sip_exporter_sip_retransmission_total,method=INVITE": 6,
            "sip_exporter_invite_200_total": 1,
        },
        50.0,  # old: 1 / 8 = 12.5 %
    ),
    "stateful proxy, both hops": (
        [
            *_proxied(0, "p0", "200 OK"),
            *_proxied(50 * S, "p1", "200 OK"),
            *_proxied(100 * S, "p2", "486 Busy Here"),
        ],
        (),
        {
            "sip_exporter_invite_total": 3,
            "sip_requests_total,method=INVITE": 6,
            "sip_exporter_invite_200_total": 2,
        },
        100.0 * 2 / 3,  # old: 2 / 6 = 33 %
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sip_exporter_ser_rule_equals_the_gauge(tmp_path: Path, case: str) -> None:
    msgs, flags, series, ser = CASES[case]
    m = _samples(tmp_path, msgs, *flags)
    for name, value in series.items():
        assert m.get(name, 0.0) == value, name
    assert m["sip_exporter_ser"] == pytest.approx(ser)
    assert _rule(m) == pytest.approx(m["sip_exporter_ser"])


def test_rule_equals_the_gauge_on_everything_at_once(tmp_path: Path) -> None:
    msgs: list[Msg] = []
    for i, (case_msgs, flags, _, _) in enumerate(CASES.values()):
        if flags:
            continue
        msgs += [(t + i * 1000 * S, s, d, p) for t, s, d, p in case_msgs]
    m = _samples(tmp_path, msgs)
    # attempts 2+2+2+3+2+3 = 14; 3xx 1; answered 200: 2+2+2+1+1+2 = 10 -> 10 / 13
    assert m["sip_exporter_invite_total"] == 14
    assert m["sip_exporter_ser"] == pytest.approx(100.0 * 10 / 13)
    assert _rule(m) == pytest.approx(m["sip_exporter_ser"])
