"""Transaction matching, retransmissions and Timer B/F/C (RFC 3261 §17), hand-built messages."""

from __future__ import annotations

from sipflow import ns, request, response

from sip_otel.sip.transactions import (
    NewRequest,
    NewResponse,
    OrphanResponse,
    Retransmission,
    TransactionLayer,
    TransactionTimeout,
    request_key,
)


def test_request_retransmission_and_response_retransmission() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    ev = tl.handle(inv)
    assert isinstance(ev, NewRequest) and ev.txn.method == "INVITE"
    assert tl.handle(request("INVITE", 0.5)) == Retransmission("INVITE", True)
    r = tl.handle(response(inv, 180, 0.6, to_tag="b"))
    assert isinstance(r, NewResponse) and not r.first_final
    assert tl.handle(response(inv, 180, 0.7, to_tag="b")) == Retransmission("INVITE", False, 180)
    ok = tl.handle(response(inv, 200, 1.0, to_tag="b"))
    assert isinstance(ok, NewResponse) and ok.first_final
    assert tl.handle(response(inv, 200, 1.5, to_tag="b")) == Retransmission("INVITE", False, 200)
    assert tl.open == 0


def test_key_is_branch_sent_by_and_method() -> None:
    tl = TransactionLayer()
    a = tl.handle(request("INVITE", 0.0, sent_by="10.0.0.1:5060"))
    b = tl.handle(request("INVITE", 0.0, sent_by="10.0.0.9:5060"))  # same branch, other hop
    c = tl.handle(request("OPTIONS", 0.0))  # same branch, other method
    assert all(isinstance(e, NewRequest) for e in (a, b, c))
    assert len(tl.table) == 3


def test_ack_for_non_2xx_belongs_to_the_invite_transaction() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    tl.handle(response(inv, 486, 1.0, to_tag="b"))
    ack = tl.handle(request("ACK", 1.01, to_tag="b"))  # same branch as the INVITE (§17.1.1.3)
    assert isinstance(ack, NewRequest) and ack.related is ack.txn and ack.txn.method == "INVITE"
    assert tl.handle(request("ACK", 1.5, to_tag="b")) == Retransmission("ACK", True)


def test_ack_for_2xx_is_its_own_request() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    tl.handle(response(inv, 200, 1.0, to_tag="b"))
    ack = tl.handle(request("ACK", 1.01, to_tag="b", branch="z9hG4bK-ack"))
    assert isinstance(ack, NewRequest) and ack.related is None and ack.txn.method == "ACK"
    assert tl.handle(request("ACK", 1.6, to_tag="b", branch="z9hG4bK-ack")) == Retransmission(
        "ACK", True
    )


def test_cancel_is_linked_to_the_invite_and_answered_separately() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    inv_ev = tl.handle(inv)
    cancel = request("CANCEL", 2.0)
    ev = tl.handle(cancel)
    assert isinstance(ev, NewRequest) and isinstance(inv_ev, NewRequest)
    assert ev.related is inv_ev.txn and ev.txn is not inv_ev.txn
    ok = tl.handle(response(cancel, 200, 2.01))
    assert isinstance(ok, NewResponse) and ok.txn is ev.txn
    t487 = tl.handle(response(inv, 487, 2.02, to_tag="b"))
    assert isinstance(t487, NewResponse) and t487.txn is inv_ev.txn and t487.first_final


def test_rfc2543_fallback_key_without_magic_cookie() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0, branch="", cseq=7)
    # The fallback key: sent-by, method, client IP, Call-ID, From tag, CSeq number (not the
    # branch, not the To tag, not the ports).
    key = request_key(inv, "INVITE")
    assert request_key(request("INVITE", 9.0, branch="", cseq=7, to_tag="x"), "INVITE") == key
    for changed in (
        request("INVITE", 0.0, branch="", cseq=8),
        request("INVITE", 0.0, branch="", cseq=7, call_id="call-2"),
        request("INVITE", 0.0, branch="", cseq=7, from_tag="a2"),
        request("INVITE", 0.0, branch="", cseq=7, sent_by="10.0.0.9:5060"),
    ):
        assert request_key(changed, "INVITE") != key
    assert request_key(inv, "ACK") != key
    assert isinstance(tl.handle(inv), NewRequest)
    assert tl.handle(request("INVITE", 0.5, branch="", cseq=7)) == Retransmission("INVITE", True)
    assert isinstance(tl.handle(request("INVITE", 0.6, branch="", cseq=8)), NewRequest)
    r = tl.handle(response(inv, 486, 1.0, to_tag="b"))
    assert isinstance(r, NewResponse) and r.first_final
    ack = tl.handle(request("ACK", 1.01, branch="", cseq=7, to_tag="b"))
    assert isinstance(ack, NewRequest) and ack.related is not None


def test_orphan_response() -> None:
    tl = TransactionLayer()
    assert isinstance(tl.handle(response(request("INVITE", 0.0), 200, 1.0)), OrphanResponse)


def test_timer_b_fires_at_64_t1_without_any_response() -> None:
    tl = TransactionLayer()
    tl.handle(request("INVITE", 0.0))
    assert tl.handle_timer(ns(31.999)) == []
    (ev,) = tl.handle_timer(ns(32.0))
    assert isinstance(ev, TransactionTimeout) and ev.timer == "B" and ev.ts_ns == ns(32.0)
    assert tl.table == {} and tl.open == 0


def test_timer_b_follows_t1() -> None:
    tl = TransactionLayer(t1_ns=ns(0.1))
    tl.handle(request("INVITE", 1.0))
    assert tl.handle_timer(ns(7.39)) == []
    (ev,) = tl.handle_timer(ns(7.4))  # 1.0 + 64 * 0.1
    assert ev.timer == "B"


def test_timer_f_fires_even_after_a_provisional() -> None:
    tl = TransactionLayer()
    bye = request("BYE", 10.0, to_tag="b")
    tl.handle(bye)
    tl.handle(response(bye, 100, 10.01))
    (ev,) = tl.handle_timer(ns(42.0))
    assert ev.timer == "F" and ev.txn.method == "BYE"


def test_proceeding_invite_has_no_timer_b_but_gives_up_later() -> None:
    tl = TransactionLayer(proceeding_timeout_ns=ns(180.0))
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    tl.handle(response(inv, 180, 0.2, to_tag="b"))
    assert tl.handle_timer(ns(100.0)) == []
    (ev,) = tl.handle_timer(ns(180.0))
    assert ev.timer == "C" and ev.ts_ns == ns(180.0)


def test_completed_entry_lingers_64_t1_for_retransmissions() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    tl.handle(response(inv, 200, 1.0, to_tag="b"))
    assert tl.handle_timer(ns(32.9)) == []
    assert tl.handle(request("INVITE", 20.0)) == Retransmission("INVITE", True)
    assert tl.handle_timer(ns(33.0)) == [] and tl.table == {}  # removed silently


def test_linger_counts_from_a_late_final_response() -> None:
    # The request's deadline (0 + 32 s) pops first and re-arms the linger (10 + 32 = 42 s).
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    tl.handle(response(inv, 180, 0.2, to_tag="b"))
    tl.handle(response(inv, 200, 10.0, to_tag="b"))
    assert tl.handle_timer(ns(32.0)) == [] and len(tl.table) == 1
    assert tl.handle(response(inv, 200, 41.0, to_tag="b")) == Retransmission("INVITE", False, 200)
    assert tl.handle_timer(ns(41.9)) == [] and len(tl.table) == 1
    assert tl.handle_timer(ns(42.0)) == [] and tl.table == {}


def test_linger_and_request_deadline_due_in_one_timer_call() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    tl.handle(response(inv, 200, 10.0, to_tag="b"))
    assert tl.handle_timer(ns(50.0)) == [] and tl.table == {}  # 32 s and 42 s both passed


def test_final_response_stamped_before_its_request_lingers_from_its_own_time() -> None:
    # Packet time can step back a little across capture rings: the final's linger (4 + 32 =
    # 36 s) is earlier than the request's deadline (5 + 32 = 37 s) and ends the entry first.
    tl = TransactionLayer()
    inv = request("INVITE", 5.0)
    tl.handle(inv)
    tl.handle(response(inv, 200, 4.0, to_tag="b"))
    assert tl.handle_timer(ns(35.9)) == [] and len(tl.table) == 1
    assert tl.handle_timer(ns(36.0)) == [] and tl.table == {}


def test_forked_2xx_are_new_responses() -> None:
    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    tl.handle(inv)
    first = tl.handle(response(inv, 200, 1.0, to_tag="b1"))
    second = tl.handle(response(inv, 200, 1.1, to_tag="b2"))
    assert isinstance(first, NewResponse) and first.first_final
    assert isinstance(second, NewResponse) and not second.first_final


def test_table_limit_evicts_oldest_and_counts() -> None:
    ev: dict[str, int] = {}
    tl = TransactionLayer(max_transactions=2, evictions=ev)
    for i in range(3):
        tl.handle(request("OPTIONS", float(i), branch=f"z9hG4bK-{i}"))
    assert ev == {"transactions.full": 1}
    assert list(tl.table) == [
        request_key(request("OPTIONS", 0.0, branch=f"z9hG4bK-{i}"), "OPTIONS") for i in (1, 2)
    ]
    assert tl.open == 2


def test_same_message_on_two_links_is_not_a_retransmission() -> None:
    from dataclasses import replace

    from sip_otel.net.types import PROTO_UDP, SipPayload

    tl = TransactionLayer()
    inv = request("INVITE", 0.0)
    assert inv.origin is not None
    copy = request("INVITE", 0.001)  # same Via, captured again between two other hosts
    copy.origin = SipPayload(ns(0.001), PROTO_UDP, bytes([10, 1, 0, 1]), 5060,
                             bytes([10, 1, 0, 2]), 5060, b"")  # fmt: skip
    a, b = tl.handle(inv), tl.handle(copy)
    assert isinstance(a, NewRequest) and isinstance(b, NewRequest) and a.txn is not b.txn
    again = request("INVITE", 0.5)  # the same sender again: a retransmission
    assert tl.handle(again) == Retransmission("INVITE", True)
    r = response(copy, 180, 0.1, to_tag="t")
    r.origin = SipPayload(
        ns(0.1), PROTO_UDP, bytes([10, 1, 0, 2]), 5060, bytes([10, 1, 0, 1]), 5090, b""
    )  # to the Via port: still matched
    ev = tl.handle(r)
    assert isinstance(ev, NewResponse) and ev.txn is b.txn
    assert replace(ev.msg, ts_ns=0).status == 180


def test_response_without_swapped_ips_still_matches() -> None:
    from sip_otel.net.types import PROTO_UDP, SipPayload

    tl = TransactionLayer()
    inv = request("INVITE", 0.0)  # 10.0.0.1 -> 10.0.0.2
    tl.handle(inv)
    r = response(inv, 486, 1.0, to_tag="b")
    r.origin = SipPayload(ns(1.0), PROTO_UDP, bytes([10, 0, 0, 1]), 5060,
                          bytes([10, 0, 0, 2]), 40000, b"")  # IPs not swapped  # fmt: skip
    ev = tl.handle(r)
    assert isinstance(ev, NewResponse) and ev.first_final


def test_deadlines_pop_in_deadline_then_push_order_across_fifo_and_heap() -> None:
    from sip_otel.sip.transactions import Deadlines

    d = Deadlines()
    d.push_in_order(10, "a")  # FIFO
    d.push_in_order(20, "b")
    d.push_in_order(15, "c")  # behind the FIFO's tail: goes to the heap
    d.push(10, "d")  # heap, same deadline as "a" but pushed later
    d.push(5, "e")
    d.push_in_order(20, "f")  # FIFO again (not before its tail)
    assert len(d) == 6 and d.next_due() == 5
    assert not d.due(4) and d.due(5)
    assert d.pop_due(4) == []
    assert d.pop_due(15) == [(5, "e"), (10, "a"), (10, "d"), (15, "c")]
    assert d.next_due() == 20 and len(d) == 2
    assert d.pop_due(100) == [(20, "b"), (20, "f")]
    assert d.next_due() is None and not d.due(10**18)


def test_deadlines_rebuild_keeps_only_the_given_entries() -> None:
    from sip_otel.sip.transactions import Deadlines

    d = Deadlines()
    for t in (3, 1, 2):
        d.push_in_order(t, f"x{t}")
    d.rebuild([(7, "live"), (4, "other")])
    assert len(d) == 2 and d.pop_due(10) == [(4, "other"), (7, "live")]


def test_classify_gives_the_same_verdicts_as_handle() -> None:
    a, b = TransactionLayer(), TransactionLayer()
    inv = request("INVITE", 0.0)
    cancel = request("CANCEL", 0.5)
    orphan = response(request("BYE", 0.0, branch="z9hG4bK-o"), 200, 1.0)
    flow = [
        inv, request("INVITE", 0.2), response(inv, 180, 0.3, to_tag="t"), cancel,
        response(cancel, 200, 0.6), response(inv, 487, 0.7, to_tag="t"),
        request("ACK", 0.8, to_tag="t"), request("ACK", 0.9, to_tag="t"),
        response(inv, 487, 1.0, to_tag="t"), orphan,
    ]  # fmt: skip
    for msg in flow:
        ev = a.handle(msg)
        got = b.classify_request(msg) if msg.is_request else b.classify_response(msg)
        if isinstance(ev, NewRequest):
            assert isinstance(got, tuple) and got[0].key == ev.txn.key
            assert (got[1] is None) == (ev.related is None)
        elif isinstance(ev, NewResponse):
            assert isinstance(got, tuple) and got[0].key == ev.txn.key and got[1] == ev.first_final
        else:
            assert got == ev
    assert a.open == b.open and list(a.table) == list(b.table)
