"""Every row of the peer state machine's table and of the watchdog's RFC 3539 table, walked
one by one: the actions it gives and the state it leaves (STYLE.md 15; RFC 6733 §5.6,
RFC 3539 §3.4.1; standards §1.3-§1.5)."""

from __future__ import annotations

import random

import pytest

from protocols.diameter.codec import decode
from protocols.diameter.local import LocalNode
from protocols.diameter.peer import (
    _TABLE,
    AnswerIn,
    Close,
    Dispatch,
    Event,
    Opened,
    PeerMachine,
    PeerPolicy,
    PeerState,
    Send,
)
from protocols.diameter.watchdog import _TABLE as WATCHDOG_TABLE
from protocols.diameter.watchdog import Expiry, Tick, Watchdog, WatchdogState
from tests.unit.diameter.diam_wire import ccr, cer, dwr, message, u32, utf8

S, E = PeerState, Event
LOCAL = LocalNode("ocs.example", "example")
POLICY = PeerPolicy(tw=30.0, cer_timeout=10.0, closing_timeout=5.0)
_IDENTITY = (utf8(264, "gw.example"), utf8(296, "example"))

# What each event is on the wire (TIMER, SHUTDOWN and LOST are not messages).
MESSAGES = {
    E.CER: cer(),
    E.DWR: dwr(),
    E.DWA: message(280, u32(268, 2001), *_IDENTITY, flags=0),
    E.DPR: message(282, *_IDENTITY, u32(273, 0)),
    E.DPA: message(282, u32(268, 2001), *_IDENTITY, flags=0),
    E.REQUEST: ccr(),
    E.ANSWER: message(258, u32(268, 2001), *_IDENTITY, app=4, flags=0),
}

# (state, event) -> (the kinds of the actions, in order; the state after).
EXPECTED: dict[tuple[PeerState, Event], tuple[list[type], PeerState]] = {
    (S.WAIT_CER, E.CER): ([Send, Opened], S.OPEN),
    **{(S.WAIT_CER, e): ([Close], S.CLOSED) for e in MESSAGES if e is not E.CER},
    (S.WAIT_CER, E.TIMER): ([Close], S.CLOSED),
    (S.WAIT_CER, E.SHUTDOWN): ([Close], S.CLOSED),
    (S.WAIT_CER, E.LOST): ([], S.CLOSED),
    (S.OPEN, E.CER): ([Send], S.OPEN),
    (S.OPEN, E.DWR): ([Send], S.OPEN),
    (S.OPEN, E.DWA): ([], S.OPEN),
    (S.OPEN, E.DPR): ([Send], S.CLOSING),
    (S.OPEN, E.DPA): ([], S.OPEN),
    (S.OPEN, E.REQUEST): ([Dispatch], S.OPEN),
    (S.OPEN, E.ANSWER): ([AnswerIn], S.OPEN),
    (S.OPEN, E.TIMER): ([Send], S.OPEN),  # the first quiet Tw: a DWR
    (S.OPEN, E.SHUTDOWN): ([Send], S.CLOSING),
    (S.OPEN, E.LOST): ([], S.CLOSED),
    (S.CLOSING, E.CER): ([], S.CLOSING),
    (S.CLOSING, E.DWR): ([Send], S.CLOSING),
    (S.CLOSING, E.DWA): ([], S.CLOSING),
    (S.CLOSING, E.DPR): ([Send], S.CLOSING),
    (S.CLOSING, E.DPA): ([Close], S.CLOSED),
    (S.CLOSING, E.REQUEST): ([Dispatch], S.CLOSING),
    (S.CLOSING, E.ANSWER): ([AnswerIn], S.CLOSING),
    (S.CLOSING, E.TIMER): ([Close], S.CLOSED),
    (S.CLOSING, E.SHUTDOWN): ([], S.CLOSING),
    (S.CLOSING, E.LOST): ([], S.CLOSED),
    **{(S.CLOSED, e): ([], S.CLOSED) for e in Event},
}


def machine_in(state: PeerState) -> PeerMachine:
    m = PeerMachine(LOCAL, POLICY, "127.0.0.1", 0.0, random.Random(1))
    if state is S.WAIT_CER:
        return m
    m.receive(decode(cer()), 0.0)
    if state is S.CLOSING:
        m.shutdown(0.5)
    elif state is S.CLOSED:
        m.connection_lost()
    assert m.state is state
    return m


def fire(m: PeerMachine, event: Event) -> list[object]:
    if event is E.TIMER:
        deadline = m.deadline()
        return list(m.timer(100.0 if deadline is None else deadline))
    if event is E.SHUTDOWN:
        return list(m.shutdown(1.0))
    if event is E.LOST:
        return list(m.connection_lost(1.0))
    return list(m.receive(decode(MESSAGES[event]), 1.0))


def test_the_table_has_a_row_for_every_state_and_event() -> None:
    """Nothing falls outside the table: every (state, event) pair is a row."""
    every = {(s, e) for s in PeerState for e in Event}
    assert set(_TABLE) == every == set(EXPECTED)


@pytest.mark.parametrize(
    ("state", "event"), sorted(EXPECTED, key=lambda k: (k[0].value, k[1].value))
)
def test_peer_row(state: PeerState, event: Event) -> None:
    """One row of the peer table: the actions it gives, the state it leaves."""
    kinds, after = EXPECTED[(state, event)]
    m = machine_in(state)
    actions = fire(m, event)
    assert [type(a) for a in actions] == kinds
    assert m.state is after


def test_timer_before_the_deadline_does_nothing() -> None:
    """A timer that fires early (WAIT_CER, CLOSING) leaves the row's state unchanged."""
    for state in (S.WAIT_CER, S.CLOSING):
        m = machine_in(state)
        deadline = m.deadline()
        assert deadline is not None
        assert m.timer(deadline - 0.1) == []
        assert m.state is state


W, T = WatchdogState, Tick

# (state, tick) -> (what expired / received answers, the state after).
WATCHDOG_EXPECTED: dict[tuple[WatchdogState, Tick], tuple[Expiry, WatchdogState]] = {
    (W.OKAY, T.RECEIVED): (Expiry.NOTHING, W.OKAY),
    (W.OKAY, T.EXPIRED_AFTER_TRAFFIC): (Expiry.NOTHING, W.OKAY),
    (W.OKAY, T.EXPIRED_QUIET): (Expiry.SEND_DWR, W.SUSPECT),
    (W.SUSPECT, T.RECEIVED): (Expiry.NOTHING, W.OKAY),
    (W.SUSPECT, T.EXPIRED_AFTER_TRAFFIC): (Expiry.CLOSE, W.DOWN),
    (W.SUSPECT, T.EXPIRED_QUIET): (Expiry.CLOSE, W.DOWN),
    (W.DOWN, T.RECEIVED): (Expiry.NOTHING, W.DOWN),
    (W.DOWN, T.EXPIRED_AFTER_TRAFFIC): (Expiry.CLOSE, W.DOWN),
    (W.DOWN, T.EXPIRED_QUIET): (Expiry.CLOSE, W.DOWN),
}


def test_the_watchdog_table_has_a_row_for_every_state_and_tick() -> None:
    every = {(s, t) for s in WatchdogState for t in Tick}
    assert set(WATCHDOG_TABLE) == every == set(WATCHDOG_EXPECTED)
    assert {after for _, after in WATCHDOG_TABLE.values()} <= set(WatchdogState)
    for key, (_, after) in WATCHDOG_TABLE.items():
        assert after is WATCHDOG_EXPECTED[key][1]


@pytest.mark.parametrize(
    ("state", "tick"), sorted(WATCHDOG_EXPECTED, key=lambda k: (k[0].value, k[1].value))
)
def test_watchdog_row(state: WatchdogState, tick: Tick) -> None:
    """One row of the RFC 3539 table, driven through the watchdog's own inputs."""
    expected, after = WATCHDOG_EXPECTED[(state, tick)]
    dog = Watchdog.start(30.0, 0.0, random.Random(1))
    dog.state = state
    deadline = dog.deadline
    if tick is T.RECEIVED:
        dog.received(1.0)
        outcome = Expiry.NOTHING
    elif tick is T.EXPIRED_AFTER_TRAFFIC:
        dog.received(deadline - 1.0)  # traffic since arming: re-armed from it, not yet due
        dog.state = state
        outcome = dog.expired(deadline)
    else:
        outcome = dog.expired(deadline)
    assert outcome is expected
    assert dog.state is after
    if tick is T.EXPIRED_AFTER_TRAFFIC and after is W.OKAY:
        assert dog.deadline > deadline  # re-armed from the last reception
