"""The answers of a session are kept (a window of 64 numbers, ocs/store/layout.py "Answers"):
a repeat of any of them, in any order, gets its own answer again and changes nothing."""

from __future__ import annotations

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.vocabulary.types import ServiceKey, ServiceRequest, SessionRef, Usage, UsedUnits
from tests.core_fixtures import NewAccount, unique_session

DATA = ServiceKey(10)


def ask(used: int) -> list[ServiceRequest]:
    return [
        ServiceRequest(
            DATA, Usage(total_octets=1_000 + used), (UsedUnits(Usage(total_octets=used)),)
        )
    ]


async def balance(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    money = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in money), sum(b["reserved"] for b in money)


async def test_each_of_the_newest_four_answers_is_replayed_in_any_order(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """Requests 1..6 answered; repeats of 6, 3, 5, 4 (shuffled) replay their own answers."""
    acct = await new_account(money=1_000_000)
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, ask(0), request_key="0")
    first = {}
    for n in range(1, 7):
        first[n] = await charging.update(s, str(n), ask(n * 100))
    before = await balance(accounts, acct.account_id)
    for n in (6, 3, 5, 4, 6):
        again = await charging.update(s, str(n), ask(n * 100))
        assert again.replayed and again.services == first[n].services
    assert await balance(accounts, acct.account_id) == before
