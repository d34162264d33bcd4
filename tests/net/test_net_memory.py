"""The memory budget in the decoder (docs/reliability.md, "Memory budget"): TCP flows and
fragment sets charge what they hold; past the limit the least recently used flow / the oldest
set is evicted (``tcp_flows.memory`` / ``fragments.memory``).

Expected bytes follow the charging rules written in so_common.h, computed here by hand from the
struct sizes the build reports (``entry_sizes``): an entry of ``s`` bytes costs
``s + s // 2 + 48``, a malloc'd block of ``n`` bytes ``(n + 23) & ~15``, a stream buffer grows
from 256 bytes by doubling, and the tables get 15/16 of the limit (records the rest).
"""

from __future__ import annotations

from netbuild import ACK, DST4, INVITE, PSH, SRC4, SYN, eth_tcp4, ethernet, ipv4, udp
from sip_otel.errors import Reasons
from sip_otel.net.decoder import FrameDecoder, NetLimits


def entry(size: int) -> int:
    return size + size // 2 + 48


def block(n: int) -> int:
    return (n + 8 + 15) & ~15 if n else 0


def tables_limit(limit: int) -> int:
    return limit - limit // 16


# A request line and one long header, no empty line: the framer keeps waiting for the rest.
HEADER = b"INVITE sip:bob@example.com SIP/2.0\r\nX-Pad: " + b"p" * 2950 + b"\r\n"
assert len(HEADER) == 36 + 7 + 2950 + 2  # buffered whole: a 4096-byte buffer (256 doubled 4 times)


def decoder(limit: int) -> tuple[FrameDecoder, Reasons]:
    reasons = Reasons()
    return FrameDecoder(reasons, limits=NetLimits(memory_limit=limit)), reasons


def flow_charge(dec: FrameDecoder) -> int:
    return entry(dec.entry_sizes()["flow"]) + block(4096)


def open_partial(dec: FrameDecoder, ts: int, sport: int) -> None:
    dec.feed(ts, 1, eth_tcp4(b"", 1000, SYN, sport))
    assert dec.feed(ts + 1, 1, eth_tcp4(HEADER, 1001, ACK | PSH, sport)) == []


def test_tcp_flows_evict_the_least_recently_used_with_the_memory_reason() -> None:
    probe, _ = decoder(0)
    c = flow_charge(probe)
    limit = 16 * (3 * c + c // 2) // 15 + 16  # the tables' share holds 3 flows, not 4
    assert 3 * c <= tables_limit(limit) < 4 * c
    dec, reasons = decoder(limit)
    for i in range(6):
        open_partial(dec, 10 * i, 40000 + i)
    assert dec.table_sizes()["tcp_flows"] == 3
    assert dec.evictions == {"tcp_flows.memory": 3}
    mem = dec.memory()
    assert mem["tcp_flows"] == 3 * c
    assert mem["limit"] == limit
    assert sum(v for k, v in mem.items() if k != "limit") == 3 * c
    # the newest flow was kept: its message completes
    out = dec.feed(100, 1, eth_tcp4(b"\r\n", 1001 + len(HEADER), ACK | PSH, 40005))
    assert [p.data for p in out] == [HEADER + b"\r\n"]
    assert reasons.counts.get("sip_framing.missing_content_length") == 1


def test_a_flow_larger_than_the_budget_is_dropped_and_counted() -> None:
    probe, _ = decoder(0)
    c = flow_charge(probe)
    dec, _ = decoder(c)  # 15/16 of c: the flow alone does not fit
    open_partial(dec, 0, 40000)
    assert dec.table_sizes()["tcp_flows"] == 0
    assert dec.evictions == {"tcp_flows.memory": 1}
    assert dec.memory()["tcp_flows"] == 0


def test_completed_messages_give_their_buffer_back() -> None:
    dec, _ = decoder(1 << 20)
    dec.feed(0, 1, eth_tcp4(b"", 1000, SYN))
    assert dec.feed(1, 1, eth_tcp4(INVITE, 1001)) != []  # framed in place: nothing buffered
    assert dec.memory()["tcp_flows"] == entry(dec.entry_sizes()["flow"])


def frag(ident: int, data: bytes, offset: int, more: bool) -> bytes:
    return ethernet(ipv4(data, 17, SRC4, DST4, ident=ident, frag_offset=offset, more=more))


SIP = INVITE.replace(b"\r\nVia", b"\r\nX-Pad: " + b"p" * 1200 + b"\r\nVia", 1)
DATAGRAM = udp(SIP)
FIRST = 1000  # bytes of the first fragment (a multiple of 8)


def test_fragment_sets_evict_the_oldest_with_the_memory_reason() -> None:
    probe, _ = decoder(0)
    sizes = probe.entry_sizes()
    # one set: its entry, the 1,000 bytes held, a piece array of 4 slots (16 + 24 bytes each)
    s = entry(sizes["fragment_set"]) + FIRST + 4 * (sizes["piece"] + 24)
    limit = 16 * (2 * s + s // 2) // 15 + 16
    assert 2 * s <= tables_limit(limit) < 3 * s
    dec, _ = decoder(limit)
    for ident in range(5):
        assert dec.feed(ident, 1, frag(ident, DATAGRAM[:FIRST], 0, True)) == []
    assert dec.table_sizes()["fragments"] == 2
    assert dec.evictions == {"fragments.memory": 3}
    assert dec.memory()["fragments"] == 2 * s
    # the newest set was kept: its last fragment completes the datagram
    out = dec.feed(10, 1, frag(4, DATAGRAM[FIRST:], FIRST, False))
    assert [p.data for p in out] == [SIP]
    assert dec.memory()["fragments"] == s
    # the oldest was evicted: its last fragment starts a new set that stays incomplete
    assert dec.feed(11, 1, frag(0, DATAGRAM[FIRST:], FIRST, False)) == []
