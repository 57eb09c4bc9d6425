"""The idempotency window of a session (ocs/charging/api.py "Idempotency"):
a repeat of a request well older than the newest few is never charged again.

Realistic cases: a Gy client fails a CCR-U over to another peer (T flag), goes
on with N+1..N+6, then the delayed copy of N arrives; an SMF retries an old
Nchf update. Numbered keys (Gy CC-Request-Number, Nchf invocation sequence
number) keep their answers in a window of the last WINDOW numbers; older than
that, the request is refused (RequestTooOld, Gy 5012) and nothing changes.
"""

from __future__ import annotations

import pytest

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.store.layout import ANSWER_WINDOW
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    ChargingAnswer,
    Identity,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    Usage,
    UsedUnits,
)
from tests.core_fixtures import NewAccount, unique_session

DATA = ServiceKey(10)


def ask(used: int, want: int = 1_000) -> list[ServiceRequest]:
    return [
        ServiceRequest(
            DATA, Usage(total_octets=want), (UsedUnits(Usage(total_octets=used)),) if used else ()
        )
    ]


async def balance(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    money = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in money), sum(b["reserved"] for b in money)


async def _session(
    charging: ChargingService, new_account: NewAccount, updates: int
) -> tuple[SessionRef, Identity, str, dict[int, ChargingAnswer]]:
    """A session opened with request 0 and updated with 1..updates."""
    acct = await new_account(money=10_000_000)
    s = SessionRef(unique_session())
    answers: dict[int, ChargingAnswer] = {0: await charging.initiate(s, acct.identity, ask(0), "0")}
    for n in range(1, updates + 1):
        answers[n] = await charging.update(s, str(n), ask(10_000))
    return s, acct.identity, acct.account_id, answers


async def test_update_repeated_after_nine_newer_is_replayed_not_charged(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-U 1 re-sent after 2..10 (T-flag failover): its own answer, nothing charged."""
    s, _, account, first = await _session(charging, new_account, 10)
    before = await balance(accounts, account)
    again = await charging.update(s, "1", ask(10_000))
    assert await balance(accounts, account) == before
    assert again.replayed and again.services == first[1].services


async def test_initiate_repeated_after_newer_updates_is_replayed(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-I 0 re-sent after CCR-U 1..6: replayed, the reservation untouched."""
    s, who, account, first = await _session(charging, new_account, 6)
    before = await balance(accounts, account)
    view = await charging.initiate(s, who, ask(0), "0")
    assert await balance(accounts, account) == before
    assert view.replayed and view.services == first[0].services


async def test_update_older_than_the_window_is_refused_and_changes_nothing(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-U 1 re-sent after WINDOW + 4 newer ones: RequestTooOld (Gy 5012), nothing charged."""
    s, _, account, _ = await _session(charging, new_account, ANSWER_WINDOW + 5)
    before = await balance(accounts, account)
    for n in (1, 2, 5):
        with pytest.raises(errors.RequestTooOld):
            await charging.update(s, str(n), ask(10_000))
    assert await balance(accounts, account) == before
    # The window itself still replays.
    newest = ANSWER_WINDOW + 5
    again = await charging.update(s, str(newest - ANSWER_WINDOW + 1), ask(0))
    assert again.replayed
    assert await balance(accounts, account) == before


async def test_terminate_and_older_updates_repeated_after_close_charge_nothing(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-T re-sent after the close, and CCR-U 1 after it: replayed, nothing charged or recorded."""
    s, _, account, first = await _session(charging, new_account, 10)
    closed = await charging.terminate(s, "11", ask(10_000, want=0))
    before = await balance(accounts, account)
    records = await charging.redis.xlen(charging.store.keys(account).records)
    again = await charging.terminate(s, "11", ask(10_000, want=0))
    assert again.replayed and again.services == closed.services
    old = await charging.update(s, "1", ask(10_000))
    assert await balance(accounts, account) == before
    assert old.replayed and old.services == first[1].services
    assert await charging.redis.xlen(charging.store.keys(account).records) == records


async def test_terminate_repeated_long_after_is_refused_without_a_second_record(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A CCR-U older than the window arriving after CCR-T: refused, nothing charged or recorded."""
    s, _, account, _ = await _session(charging, new_account, ANSWER_WINDOW + 2)
    await charging.terminate(s, str(ANSWER_WINDOW + 3), ask(10_000, want=0))
    before = await balance(accounts, account)
    records = await charging.redis.xlen(charging.store.keys(account).records)
    with pytest.raises(errors.RequestTooOld):
        await charging.terminate(s, "1", ask(100, want=0))
    assert await balance(accounts, account) == before
    assert await charging.redis.xlen(charging.store.keys(account).records) == records
