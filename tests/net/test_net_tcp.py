"""TCP stream reassembly + SIP framing through the decoder: orders, losses, closes, tables."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from netbuild import (
    ACK,
    DST4,
    DST6,
    FIN,
    INVITE,
    OK,
    PSH,
    RST,
    SRC4,
    SRC6,
    SYN,
    eth_tcp4,
    ethernet,
    ipv6,
    tcp,
)
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits
from sip_otel.net.types import PROTO_TCP, SipPayload

SECOND = 1_000_000_000
ISN = 1000
BYE = b"BYE sip:bob@example.com SIP/2.0\r\nCall-ID: a84b4c76e66710@192.0.2.1\r\nl: 0\r\n\r\n"


class Run:
    """A decoder plus its counters; frames are fed with increasing packet time."""

    def __init__(self, **kwargs: object) -> None:
        self.reasons = Reasons()
        self.dec = FrameDecoder(self.reasons, **kwargs)  # type: ignore[arg-type]
        self.ts = 0

    def feed(self, *frames: bytes) -> list[bytes]:
        out: list[bytes] = []
        for frame in frames:
            self.ts += 1
            for p in self.dec.feed(self.ts, 1, frame):
                assert p.transport == PROTO_TCP
                out.append(p.data)
        return out

    def payloads(self, frame: bytes) -> list[SipPayload]:
        self.ts += 1
        return self.dec.feed(self.ts, 1, frame)

    @property
    def counts(self) -> dict[str, int]:
        return self.reasons.counts

    @property
    def flows(self) -> int:
        return self.dec.table_sizes()["tcp_flows"]


def client(payload: bytes, seq: int, flags: int = ACK | PSH) -> bytes:
    """Client 192.0.2.1:40000 -> server 192.0.2.2:5060; ``seq`` relative to ISN+1."""
    return eth_tcp4(payload, ISN + 1 + seq, flags)


def server(payload: bytes, seq: int, flags: int = ACK | PSH) -> bytes:
    return eth_tcp4(payload, 5000 + 1 + seq, flags, 5060, 40000, DST4, SRC4)


SYN_FRAME = eth_tcp4(b"", ISN, SYN)


def test_handshake_then_one_message_per_segment() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, eth_tcp4(b"", 5000, SYN | ACK, 5060, 40000, DST4, SRC4)) == []
    assert r.flows == 2
    assert r.feed(client(INVITE, 0), server(OK, 0)) == [INVITE, OK]
    assert r.counts == {}


def test_payload_fields() -> None:
    r = Run()
    r.feed(SYN_FRAME)
    assert r.payloads(client(INVITE, 0)) == [
        SipPayload(2, PROTO_TCP, SRC4, 40000, DST4, 5060, INVITE)
    ]


def test_mid_stream_start_without_syn() -> None:
    r = Run()
    assert r.feed(client(INVITE, 0), client(OK, len(INVITE))) == [INVITE, OK]
    assert r.counts == {}


def test_mid_stream_join_inside_a_message_resyncs() -> None:
    r = Run()
    assert r.feed(client(INVITE[30:], 30), client(OK, len(INVITE))) == [OK]
    assert r.counts == {"sip_framing.resync": 1}


def test_several_messages_in_one_segment_with_keepalives() -> None:
    r = Run()
    stream = b"\r\n\r\n" + INVITE + OK + b"\r\n" + BYE
    assert r.feed(SYN_FRAME, client(stream, 0)) == [INVITE, OK, BYE]
    assert r.counts == {}


def test_one_message_across_many_segments_one_byte_each() -> None:
    r = Run()
    stream = INVITE + b"\r\n\r\n" + OK
    frames = [client(stream[i : i + 1], i) for i in range(len(stream))]
    assert r.feed(SYN_FRAME, *frames) == [INVITE, OK]
    assert r.counts == {}


def test_message_completed_by_a_later_segment_with_trailing_data() -> None:
    r = Run()
    first, rest = INVITE[:100], INVITE[100:] + OK[:10]
    assert r.feed(SYN_FRAME, client(first, 0)) == []
    assert r.feed(client(rest, 100)) == [INVITE]
    assert r.feed(client(OK[10:], len(INVITE) + 10)) == [OK]


def test_out_of_order_segments_are_held_then_delivered() -> None:
    r = Run()
    a, b, c = INVITE[:100], INVITE[100:200], INVITE[200:]
    assert r.feed(SYN_FRAME, client(c, 200), client(b, 100)) == []
    assert r.feed(client(a, 0)) == [INVITE]
    assert r.counts == {"tcp.out_of_order": 2}
    assert r.dec.tcp_held_bytes == 0


def test_overlapping_out_of_order_segments_are_trimmed() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE[50:150], 50), client(INVITE[100:], 100)) == []
    assert r.feed(client(INVITE[:60], 0)) == [INVITE]
    assert r.counts == {"tcp.out_of_order": 2}


def test_retransmission_is_trimmed() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE, 0), client(INVITE, 0)) == [INVITE]
    assert r.counts == {"tcp.retransmission": 1}


def test_retransmission_with_new_bytes_at_its_end() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE[:100], 0)) == []
    assert r.feed(client(INVITE, 0)) == [INVITE]
    assert r.counts == {"tcp.retransmission": 1}


def test_retransmitted_syn_does_not_reset() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE[:100], 0), SYN_FRAME) == []
    assert r.feed(client(INVITE[100:], 100)) == [INVITE]
    assert r.counts == {}


def test_new_syn_on_same_ports_starts_a_new_stream() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE[:100], 0)) == []
    assert r.feed(eth_tcp4(b"", 90000, SYN), eth_tcp4(OK, 90001)) == [OK]


def test_sequence_numbers_wrap() -> None:
    r = Run()
    isn = 0xFFFFFFF0
    frames = [eth_tcp4(b"", isn, SYN)]
    for i in range(0, len(INVITE), 7):
        frames.append(eth_tcp4(INVITE[i : i + 7], isn + 1 + i))
    assert r.feed(*frames) == [INVITE]
    assert r.counts == {}


def test_fin_closes_after_data() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE, 0, ACK | PSH | FIN)) == [INVITE]
    assert r.flows == 0
    assert r.counts == {}


def test_fin_before_missing_data_waits_for_it() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE[100:], 100, ACK | FIN)) == []
    assert r.flows == 1
    assert r.feed(client(INVITE[:100], 0)) == [INVITE]
    assert r.flows == 0


def test_fin_with_unfinished_message_is_counted() -> None:
    r = Run()
    assert r.feed(SYN_FRAME, client(INVITE[:100], 0), client(b"", 100, ACK | FIN)) == []
    assert r.flows == 0
    assert r.counts == {"sip_framing.incomplete": 1}


def test_rst_closes_both_directions() -> None:
    r = Run()
    r.feed(SYN_FRAME, eth_tcp4(b"", 5000, SYN | ACK, 5060, 40000, DST4, SRC4))
    assert r.flows == 2
    assert r.feed(server(b"", 0, RST)) == []
    assert r.flows == 0


def test_rst_from_untracked_side_closes_the_other() -> None:
    r = Run()
    r.feed(SYN_FRAME)
    assert r.flows == 1
    r.feed(server(b"", 0, RST | ACK))
    assert r.flows == 0


def test_bare_ack_of_unknown_flow_is_ignored() -> None:
    r = Run()
    assert r.feed(client(b"", 0, ACK), client(b"", 0, ACK | FIN)) == []
    assert r.flows == 0
    assert r.counts == {}


def test_idle_flow_expires_in_packet_time() -> None:
    r = Run()
    r.feed(SYN_FRAME, client(INVITE[:10], 0))
    r.dec.handle_timer(2 + 600 * SECOND - 1)
    assert r.flows == 1
    r.dec.handle_timer(2 + 600 * SECOND)
    assert r.flows == 0
    assert r.dec.evictions == {"tcp_flows.timeout": 1}


def test_flows_table_full_evicts_least_recently_used() -> None:
    r = Run(limits=NetLimits(max_tcp_flows=2))
    a = [eth_tcp4(INVITE[:50], 1, sport=40001), eth_tcp4(INVITE[50:], 51, sport=40001)]
    b = [eth_tcp4(INVITE[:50], 1, sport=40002), eth_tcp4(INVITE[50:], 51, sport=40002)]
    c = [eth_tcp4(INVITE[:50], 1, sport=40003), eth_tcp4(INVITE[50:], 51, sport=40003)]
    assert r.feed(a[0], b[0], a[0]) == []  # a retransmitted: a is now more recent than b
    assert r.counts == {"tcp.retransmission": 1}
    assert r.feed(c[0]) == []  # evicts b
    assert r.dec.evictions == {"tcp_flows.full": 1}
    assert r.feed(a[1], c[1]) == [INVITE, INVITE]
    # b's tail now starts a new mid-stream flow inside a message: resync, nothing framed.
    assert r.feed(b[1]) == []
    assert r.counts["sip_framing.resync"] == 1


def test_window_overflow_gives_up_the_gap() -> None:
    r = Run(limits=NetLimits(max_tcp_ooo_bytes_per_flow=300))
    lost = INVITE[:50]
    assert r.feed(SYN_FRAME, client(INVITE[50:], 50)) == []  # held, waiting for 50 bytes
    stream_pos = len(INVITE)
    # OK arrives beyond the window: the lost bytes are given up, the held tail is junk to the
    # framer (resync), and OK is framed.
    assert r.feed(client(OK, stream_pos)) == [OK]
    assert r.counts == {
        "tcp.out_of_order": 2,
        "tcp.gap": 1,
        "sip_framing.resync": 1,
    }
    assert r.feed(client(lost, 0)) == []  # too late: a retransmission of given-up bytes
    assert r.dec.tcp_held_bytes == 0


def test_too_many_held_segments_gives_up_the_gap() -> None:
    r = Run(limits=NetLimits(max_tcp_ooo_segments_per_flow=3))
    frames = [client(INVITE[i : i + 10], i) for i in range(10, 60, 10)]
    r.feed(SYN_FRAME, *frames)
    assert r.counts["tcp.gap"] == 1
    assert r.dec.tcp_held_bytes <= 30


def test_rst_with_held_data_counts_the_gap() -> None:
    r = Run()
    r.feed(SYN_FRAME, client(INVITE[50:], 50), client(b"", 0, RST))
    assert r.flows == 0
    assert r.counts == {"tcp.out_of_order": 1, "tcp.gap": 1}
    assert r.dec.tcp_held_bytes == 0


def test_other_ports_are_not_tracked() -> None:
    r = Run()
    assert r.feed(eth_tcp4(INVITE, 1, sport=40000, dport=8080)) == []
    assert r.flows == 0
    assert r.counts == {"skipped.port": 1}


def test_all_ports_tracks_flows_whose_data_looks_like_sip() -> None:
    r = Run(all_ports=True)
    frames = [
        eth_tcp4(INVITE[:120], 1, dport=7000),
        eth_tcp4(INVITE[120:], 121, dport=7000),
        eth_tcp4(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, dport=8080),
        eth_tcp4(b"", 1, SYN, dport=8081),
    ]
    assert r.feed(*frames) == [INVITE]
    assert r.counts == {"skipped.not_sip": 2}
    assert r.flows == 1


def test_ipv6_tcp() -> None:
    r = Run()
    frame = ethernet(ipv6(tcp(INVITE, 1), nh=6), 0x86DD)
    assert r.dec.feed(5, 1, frame) == [SipPayload(5, PROTO_TCP, SRC6, 40000, DST6, 5060, INVITE)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([INVITE, OK, BYE, b"\r\n\r\n"]), min_size=1, max_size=6),
    st.lists(st.integers(1, 400), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(0, 0xFFFFFFFF),
)
def test_any_segmentation_order_and_duplication_gives_the_same_messages(
    msgs: list[bytes], cuts: list[int], rnd: random.Random, isn: int
) -> None:
    stream = b"".join(msgs)
    points = sorted({0, len(stream), *(c % len(stream) for c in cuts)})
    segments = [(a, stream[a:b]) for a, b in itertools.pairwise(points)]
    shuffled = segments + rnd.sample(segments, k=len(segments) // 3)  # some duplicates
    rnd.shuffle(shuffled)
    r = Run()
    got = r.feed(eth_tcp4(b"", isn, SYN), *(eth_tcp4(d, isn + 1 + a) for a, d in shuffled))
    assert got == [m for m in msgs if m != b"\r\n\r\n"]
    assert set(r.counts) <= {"tcp.out_of_order", "tcp.retransmission"}
    assert r.dec.tcp_held_bytes == 0
    assert r.flows == 1


def test_held_segments_at_one_position_deliver_the_smaller_bytes_first() -> None:
    # The held segments are ordered by (position, bytes), as the pure-Python heap of
    # (position, payload) tuples was: of two different segments at one position the smaller
    # is delivered, whatever the arrival order; the other is then behind and trimmed.
    head, tail = INVITE[:100], INVITE[100:]
    low = bytearray(tail)
    low[5] -= 1
    for first, second in ((tail, bytes(low)), (bytes(low), tail)):
        r = Run()
        assert r.feed(SYN_FRAME, client(first, 100), client(second, 100)) == []
        assert r.feed(client(head, 0)) == [head + bytes(low)]
        assert r.dec.tcp_held_bytes == 0


INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


def test_idle_timeout_near_int64_min_does_not_wrap() -> None:
    # A flow seen at INT64_MIN + 1 is 1 ns idle at INT64_MIN + 2 (``now - 600 s`` would wrap
    # to a huge positive deadline and close it at once).
    dec = FrameDecoder(Reasons())
    dec.feed(INT64_MIN + 1, 1, SYN_FRAME)
    dec.handle_timer(INT64_MIN + 2)
    assert dec.table_sizes()["tcp_flows"] == 1
    dec.handle_timer(INT64_MAX)  # idle for more than int64 can hold: past any timeout
    assert dec.table_sizes()["tcp_flows"] == 0
    assert dec.evictions == {"tcp_flows.timeout": 1}


def test_idle_timeout_of_int64_max_never_wraps() -> None:
    dec = FrameDecoder(Reasons(), limits=NetLimits(tcp_idle_timeout_ns=INT64_MAX))
    dec.feed(-5, 1, SYN_FRAME)
    dec.handle_timer(-2)
    assert dec.table_sizes()["tcp_flows"] == 1
    dec.handle_timer(INT64_MAX - 6)
    assert dec.table_sizes()["tcp_flows"] == 1
    dec.handle_timer(INT64_MAX - 5)
    assert dec.evictions == {"tcp_flows.timeout": 1}
