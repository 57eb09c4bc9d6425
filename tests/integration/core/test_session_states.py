"""Every row of the session state machine (ocs.store.session_states.TABLE) on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.store.layout import ANSWER_WINDOW
from ocs.store.session_states import CLOSED_KEPT, TABLE, Event, Outcome, Row, State, read_state
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    ChargingAnswer,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TerminationCause,
    Usage,
    UsedUnits,
)
from tests import core_fixtures
from tests.core_fixtures import NewAccount, unique_session

DATA = ServiceKey(10)
OWNER, OTHER_OWNER = "test:peer-a", "test:peer-b"
FAR = 4_000_000_000  # a time past every deadline


def ask(used: int = 0) -> list[ServiceRequest]:
    reports = (UsedUnits(Usage(total_octets=used)),) if used else ()
    return [ServiceRequest(DATA, Usage(), reports)]


class Case:
    """One session of one account, driven into a state and given one event."""

    def __init__(
        self, charging: ChargingService, accounts: Accounts, acct: core_fixtures.TestAccount
    ) -> None:
        self.charging, self.accounts, self.acct = charging, accounts, acct
        self.session = SessionRef(unique_session(), owner=OWNER)
        self.last: tuple[str, str] = ("", "")  # (op, request key) last answered
        self.first: ChargingAnswer | None = None

    async def into(self, state: State, past_window: bool = False) -> None:
        """Drive the session into ``state``; ``past_window``: with request 0's
        answer slot taken by a newer number (ANSWER_WINDOW) on the way."""
        c, s, ident = self.charging, self.session, self.acct.identity
        if state is State.IDLE:
            return
        self.first = await c.initiate(s, ident, ask(), request_key="0")
        self.last = ("initiate", "0")
        n = 1
        if past_window:
            await c.update(s, str(ANSWER_WINDOW), ask(used=100))
            n = ANSWER_WINDOW + 1
        if state is State.CLOSED:
            self.first = await c.terminate(s, str(n), ask(used=100))
            self.last = ("terminate", str(n))

    async def view(self) -> dict[str, Any]:
        shown = await self.accounts.show(self.acct.account_id)
        return {"buckets": shown["buckets"], "reserved": shown["reserved"]}

    async def records(self) -> int:
        c = self.charging
        entries = await c.redis.xrange(c.store.keys(self.acct.account_id).records)
        recs = [decode_record(f[b"r"]) for _, f in entries]
        return sum(1 for r in recs if r.session == self.session.session_id)

    async def state(self) -> State:
        keys = self.charging.store.keys(self.acct.account_id)
        return await read_state(self.charging.redis, keys, self.session.session_id)

    def driver(self, event: Event) -> Callable[[], Awaitable[object]]:
        c, s, ident, acct = self.charging, self.session, self.acct.identity, self.acct.account_id
        drivers: dict[Event, Callable[[], Awaitable[object]]] = {
            Event.INITIATE: lambda: c.initiate(s, ident, ask(), request_key="5"),
            Event.UPDATE: lambda: c.update(s, "5", ask(used=100)),
            Event.UPDATE_WITH_SUBSCRIBER: lambda: c.update(s, "5", ask(used=100), ident),
            Event.TERMINATE: lambda: c.terminate(s, "5", ask(used=100)),
            Event.TERMINATE_WITH_SUBSCRIBER: lambda: c.terminate(
                s, "5", ask(used=100), subscriber=ident
            ),
            Event.REPEAT: self._repeat,
            Event.TOO_OLD: lambda: c.update(s, "0", ask(used=100)),
            Event.ABANDON: lambda: c.abandon(acct, s.session_id, TerminationCause.ABANDONED, FAR),
            Event.ABANDON_EARLY: lambda: c.abandon(acct, s.session_id, TerminationCause.ABANDONED),
            Event.CLOSE_FOR_OWNER: lambda: c.terminate_owner_sessions(
                OWNER, TerminationCause.PEER_RESTART
            ),
            Event.CLOSE_FOR_OTHER_OWNER: self._close_after_move,
            Event.DAY_PASSES: self._day_passes,
        }
        return drivers[event]

    async def _repeat(self) -> ChargingAnswer:
        c, s, ident = self.charging, self.session, self.acct.identity
        op, key = self.last
        if op == "initiate":
            return await c.initiate(s, ident, ask(), request_key=key)
        return await c.terminate(s, key, ask(used=100))

    async def _close_after_move(self) -> int:
        # The session moves to another peer (its update names the new owner),
        # then its old peer restarts: the session is not that peer's any more.
        moved = SessionRef(self.session.session_id, owner=OTHER_OWNER)
        await self.charging.update(moved, "2", ask())
        return await self.charging.terminate_owner_sessions(OWNER, TerminationCause.PEER_RESTART)

    async def _day_passes(self) -> list[int]:
        keys = self.charging.store.keys(self.acct.account_id)
        stored = [keys.session(self.session.session_id)]
        ttls = [await self.charging.redis.ttl(k) for k in stored]
        for k in stored:  # the day, shortened: each key expires as it was told to
            await self.charging.redis.pexpire(k, 1)
        await asyncio.sleep(0.05)
        return ttls


def _row_id(row: Row) -> str:
    blocked = ", blocked" if row.blocked else ""
    return f"{row.state.value} + {row.event.value}{blocked}"


@pytest.mark.parametrize("row", TABLE, ids=[_row_id(r) for r in TABLE])
async def test_state_machine_row(
    row: Row, charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """The row's event in the row's state has the row's outcome and leaves the row's next state."""
    case = Case(charging, accounts, await new_account(money=1_000_000))
    await case.into(row.state, past_window=row.event is Event.TOO_OLD)
    assert await case.state() is row.state
    if row.blocked:
        await accounts.set_status(case.acct.account_id, "blocked")
    before, records_before = await case.view(), await case.records()
    result: object = None
    error: Exception | None = None
    try:
        result = await case.driver(row.event)()
    except errors.ChargingError as exc:
        error = exc
    after, records_after = await case.view(), await case.records()
    unchanged = before == after and records_before == records_after
    outcome = row.outcome
    if outcome is Outcome.BLOCKED:
        assert isinstance(error, errors.AccountBlocked) and unchanged
    elif outcome is Outcome.UNKNOWN_SESSION:
        assert isinstance(error, errors.UnknownSession) and unchanged
    elif outcome is Outcome.REFUSED_TOO_OLD:
        assert isinstance(error, errors.RequestTooOld) and unchanged
    else:
        assert error is None, error
    if outcome in (Outcome.RESERVED, Outcome.RESERVED_NEW):
        assert isinstance(result, ChargingAnswer) and not result.replayed
        (svc,) = result.services
        assert svc.status is ServiceStatus.GRANTED and svc.granted is not None
        assert after["reserved"]["money"] > 0
    elif outcome is Outcome.DENIED:
        assert isinstance(result, ChargingAnswer)
        assert result.services[0].status is ServiceStatus.SERVICE_DENIED
        assert after["reserved"]["money"] == 0
    elif outcome is Outcome.RECORDED:
        assert records_after == records_before + 1
        assert after["reserved"]["money"] == 0
    elif outcome is Outcome.REPLAYED:
        assert isinstance(result, ChargingAnswer) and result.replayed and unchanged
        assert case.first is not None and result.services == case.first.services
    elif outcome is Outcome.ALIVE:
        assert getattr(result, "alive", None) is not None and unchanged
    elif outcome is Outcome.MOVED:
        assert result == 0 and records_after == records_before
    elif outcome is Outcome.GONE:
        assert getattr(result, "gone", False) and unchanged
    elif outcome is Outcome.FORGOTTEN:
        assert isinstance(result, list) and all(0 < ttl <= CLOSED_KEPT for ttl in result)
    assert await case.state() is row.next


def test_every_state_has_a_row_for_every_request() -> None:
    """No (state, request) pair is left to chance: each has a row (unblocked)."""
    requests = {
        Event.INITIATE,
        Event.UPDATE,
        Event.UPDATE_WITH_SUBSCRIBER,
        Event.TERMINATE,
        Event.TERMINATE_WITH_SUBSCRIBER,
        Event.ABANDON,
    }
    covered = {(r.state, r.event) for r in TABLE if not r.blocked}
    missing = {(s, e) for s in State for e in requests} - covered
    assert not missing
