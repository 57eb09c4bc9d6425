"""Peer state machine, watchdog, capabilities, Origin-State-Id (standards §1.3-§1.7)."""

from __future__ import annotations

import random
from pathlib import Path

from diameter.message import Message

from protocols.diameter.capabilities import AllowedPeer
from protocols.diameter.codec import decode
from protocols.diameter.ids import IdGenerator
from protocols.diameter.local import LocalNode
from protocols.diameter.origin_state import PeerRestarts, next_origin_state_id
from protocols.diameter.peer import (
    Close,
    Dispatch,
    Opened,
    PeerMachine,
    PeerPolicy,
    PeerState,
    Send,
    StateIdSeen,
)
from protocols.diameter.watchdog import Expiry, Watchdog
from tests.unit.diameter.diam_wire import ccr, cer, grouped, message, u32, utf8

LOCAL = LocalNode("ocs.example", "example")


def _machine(**policy: object) -> PeerMachine:
    return PeerMachine(LOCAL, PeerPolicy(**policy), "127.0.0.1", 0.0, random.Random(1))  # type: ignore[arg-type]


def _result(action: object) -> int:
    assert isinstance(action, Send)
    msg = Message.from_bytes(action.data, plain_msg=True)
    return next(a.value for a in msg.avps if a.code == 268)  # type: ignore[no-any-return]


def _open(m: PeerMachine, *extra: bytes) -> None:
    acts = m.receive(decode(cer(*extra)), 0.0)
    assert _result(acts[0]) == 2001
    assert isinstance(acts[1], Opened)


def test_cer_opens_and_ccr_dispatches() -> None:
    """Closed -> R-Open on CER (standards §1.5); then a CCR goes to the application."""
    m = _machine()
    _open(m)
    assert m.state is PeerState.OPEN
    acts = m.receive(decode(ccr()), 1.0)
    assert len(acts) == 1
    assert isinstance(acts[0], Dispatch)


def test_first_message_not_cer_closes_without_answer() -> None:
    """standards §1.3: the first message is not a CER -> close without answering."""
    acts = _machine().receive(decode(ccr()), 0.0)
    assert acts == [Close("request before CER")]


def test_cer_timeout_closes() -> None:
    """standards §1.3: no CER before the timeout -> close."""
    m = _machine(cer_timeout=3.0)
    assert m.deadline() == 3.0
    assert m.timer(2.0) == []
    assert isinstance(m.timer(3.0)[0], Close)


def test_no_common_application_5010_then_close() -> None:
    """standards §1.3: no common application -> CEA 5010 without E, then close."""
    acts = _machine().receive(decode(cer(apps=(16777238,))), 0.0)
    assert _result(acts[0]) == 5010
    assert isinstance(acts[1], Close)
    assert not Message.from_bytes(acts[0].data, plain_msg=True).header.is_error  # type: ignore[union-attr]


def test_vsai_with_vendor_matches_and_relay_counts() -> None:
    """standards §1.3: VSAI{10415, 4} matches app 4 (vendor ignored); relay 0xffffffff is common."""
    _open(_machine(), grouped(260, u32(266, 10415), u32(258, 4)))
    m = _machine()
    acts = m.receive(decode(cer(apps=(0xFFFFFFFF,))), 0.0)
    assert _result(acts[0]) == 2001


def test_unknown_peer_3010_with_e_bit_then_close() -> None:
    """standards §1.3: a peer not on the allow-list gets 3010 with E = 1, then close."""
    m = _machine(allowed=(AllowedPeer("other.example"),))
    acts = m.receive(decode(cer()), 0.0)
    assert _result(acts[0]) == 3010
    assert isinstance(acts[1], Close)
    assert Message.from_bytes(acts[0].data, plain_msg=True).header.is_error  # type: ignore[union-attr]


def test_allow_list_by_address() -> None:
    """Allow-list entries can bind an Origin-Host to a source network."""
    assert AllowedPeer("gw.example", "127.0.0.0/8").admits("gw.example", "127.0.0.1")
    assert not AllowedPeer("gw.example", "10.0.0.0/8").admits("gw.example", "127.0.0.1")
    _open(_machine(allowed=(AllowedPeer("gw.example", "127.0.0.1/32"),)))


def test_malformed_cer_answered_then_closed() -> None:
    """A CER missing Product-Name gets CEA 5005, then close."""
    bad = message(257, utf8(264, "gw"), utf8(296, "r"), u32(266, 0))
    acts = _machine().receive(decode(bad), 0.0)
    assert _result(acts[0]) == 5005
    assert isinstance(acts[-1], Close)


def test_dwr_answered_and_state_id_reported() -> None:
    """standards §1.4: every DWR gets a DWA 2001; its Origin-State-Id is reported."""
    m = _machine()
    _open(m, u32(278, 5))
    acts = m.receive(
        decode(message(280, utf8(264, "gw.example"), utf8(296, "e"), u32(278, 6))), 1.0
    )
    assert _result(acts[0]) == 2001
    assert acts[1] == StateIdSeen("gw.example", 6)


def test_watchdog_sends_dwr_then_closes_after_two_expiries() -> None:
    """standards §1.4: first expiry sends DWR, second unanswered expiry closes."""
    m = _machine(tw=6.0)
    _open(m)
    first = m.deadline()
    assert first is not None
    assert 2.0 <= first <= 8.0
    acts = m.timer(first)
    assert isinstance(acts[0], Send)
    assert Message.from_bytes(acts[0].data, plain_msg=True).header.command_code == 280
    second = m.deadline()
    assert second is not None
    assert second > first
    assert isinstance(m.timer(second)[0], Close)


def test_watchdog_traffic_defers_dwr() -> None:
    """standards §1.4: any received message resets Tw."""
    dog = Watchdog.start(30.0, 0.0, random.Random(2))
    d = dog.deadline
    dog.received(d - 1)
    assert dog.expired(d) is Expiry.NOTHING
    assert dog.deadline > d
    assert dog.expired(dog.deadline) is Expiry.SEND_DWR
    dog.received(dog.deadline + 0.5)  # the DWA
    assert dog.expired(dog.deadline) in (Expiry.NOTHING, Expiry.SEND_DWR)


def test_watchdog_tw_minimum_and_jitter() -> None:
    """standards §1.4: Tw never below 6 s; jitter within ±2 s."""
    rng = random.Random(3)
    for _ in range(200):
        dog = Watchdog.start(1.0, 0.0, rng)
        assert 4.0 <= dog.deadline <= 8.0


def test_peer_dpr_gets_dpa_and_closing() -> None:
    """standards §1.5: R-Open -> Closing on DPR; DPA sent; closed on timeout."""
    m = _machine(closing_timeout=2.0)
    _open(m)
    acts = m.receive(decode(message(282, utf8(264, "gw"), utf8(296, "r"), u32(273, 0))), 5.0)
    assert _result(acts[0]) == 2001
    assert m.state is PeerState.CLOSING
    assert isinstance(m.timer(7.0)[0], Close)


def test_shutdown_sends_dpr_rebooting_and_closes_on_dpa() -> None:
    """standards §1.5: we send DPR REBOOTING; the DPA receiver closes (after draining)."""
    m = _machine()
    _open(m)
    acts = m.shutdown(1.0)
    dpr = Message.from_bytes(acts[0].data, plain_msg=True)  # type: ignore[union-attr]
    assert dpr.header.command_code == 282
    assert dpr.header.is_request
    assert next(a.value for a in dpr.avps if a.code == 273) == 0
    dpa = message(282, u32(268, 2001), flags=0, hbh=dpr.header.hop_by_hop_identifier)
    assert m.receive(decode(dpa), 2.0) == [Close("DPA received", drain=True)]


def test_stray_answer_is_not_answered() -> None:
    """standards §1.6: never answer an answer (a stray DPA in Open)."""
    m = _machine()
    _open(m)
    assert m.receive(decode(message(282, u32(268, 2001), flags=0)), 1.0) == []


def test_protocol_error_in_open_is_answered() -> None:
    """3001 for an unsupported command in Open (standards §1.6)."""
    m = _machine()
    _open(m)
    assert _result(m.receive(decode(message(271, app=4)), 1.0)[0]) == 3001


def test_accepts_request_agrees_with_receive() -> None:
    """The transport's shortcut for a fast-path CCR dispatches exactly where the table does:
    Open and Closing (drain), not before CER and not once closed."""
    for state in PeerState:
        short, full = _machine(), _machine()
        if state is not PeerState.WAIT_CER:
            _open(short)
            _open(full)
        if state is PeerState.CLOSING:
            short.shutdown(0.5)
            full.shutdown(0.5)
        if state is PeerState.CLOSED:
            short.connection_lost()
            full.connection_lost()
        acts = full.receive(decode(ccr()), 1.0)
        dispatched = len(acts) == 1 and isinstance(acts[0], Dispatch)
        assert short.accepts_request(1.0) is dispatched, state
        if short.watchdog is not None:
            assert full.watchdog is not None
            assert short.watchdog._last_rx == full.watchdog._last_rx == 1.0


def test_our_origin_state_id_grows(tmp_path: Path) -> None:
    """standards §1.7: our Origin-State-Id grows on each restart, even if the clock steps back."""
    f = tmp_path / "origin-state-id"
    a = next_origin_state_id(f, now=1000)
    b = next_origin_state_id(f, now=1000)
    c = next_origin_state_id(f, now=500)
    assert a < b < c
    assert next_origin_state_id(None, now=1234) == 1234


def test_peer_restart_detection(tmp_path: Path) -> None:
    """standards §1.7: a higher peer Origin-State-Id is a restart; 0 allows no inference."""
    f = tmp_path / "peers.json"
    r = PeerRestarts(f)
    assert not r.observe("gw", 5)
    assert not r.observe("gw", 5)
    assert not r.observe("gw", 0)
    assert r.observe("gw", 6)
    assert PeerRestarts(f).observe("gw", 7)  # remembered across our own restart


def test_peer_restarts_shared_between_workers(tmp_path: Path) -> None:
    """Workers share the peers' state ids through the file: a restart seen by another worker."""
    f = tmp_path / "peers.json"
    worker_a, worker_b = PeerRestarts(f), PeerRestarts(f)
    assert not worker_a.observe("gw", 10)
    assert worker_b.observe("gw", 11)  # b never saw 10 itself
    assert not worker_a.observe("other", 1)
    assert PeerRestarts(f).observe("gw", 12) and PeerRestarts(f).observe("other", 2)


def test_tls_only_peer_gets_5017() -> None:
    """standards §1.3: no common security (the peer only offers in-band TLS) -> 5017, close."""
    acts = _machine().receive(decode(cer(u32(299, 1))), 0.0)
    assert _result(acts[0]) == 5017 and isinstance(acts[-1], Close)
    _open(_machine(), u32(299, 0))


def test_end_to_end_ids_time_bits_and_random_low_bits() -> None:
    """standards §1.7: End-to-End = 12 bits of start time + 20 bits from a random start."""
    gen = IdGenerator(now=0x12345, rng=random.Random(4))
    ids = [gen.next() for _ in range(5)]
    assert all(e2e >> 20 == 0x345 for _, e2e in ids)
    assert len({e2e for _, e2e in ids}) == 5 and len({hbh for hbh, _ in ids}) == 5
