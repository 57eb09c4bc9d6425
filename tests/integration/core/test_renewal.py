"""Recurring allowances: renewal is atomic and idempotent, with rollover."""

from __future__ import annotations

from datetime import UTC, datetime

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.plans import Renewals
from ocs.policy.loader import PolicySet
from ocs.vocabulary.types import ServiceKey, ServiceRequest, SessionRef, Usage, UsedUnits
from tests.core_fixtures import NewAccount, unique_session


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def bundles(view: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {b["id"]: b["amount"] for b in view["buckets"] if b["id"].startswith("plan:")}


async def test_renew_twice_renews_once_and_rolls_over(
    charging: ChargingService, accounts: Accounts, test_policies: PolicySet, new_account: NewAccount
) -> None:
    """Renewal twice in a period renews once; the next period carries 50% (capped) of what was left."""
    acct = await new_account(money=0, plan="bundle")
    renewals = Renewals(charging.redis, charging.partitions, test_policies)
    nov = utc("2026-11-10T12:00:00")  # period 2026-11-05 .. 2026-12-05 (cycle day 5, UTC)
    assert await renewals.renew_account(acct.account_id, now=nov) == 1
    assert await renewals.renew_account(acct.account_id, now=nov + 3600) == 0
    view = await accounts.show(acct.account_id)
    assert bundles(view) == {"plan:monthly_data:m2026-11-05": 50_000}
    assert view["buckets"][-1]["expires"] == utc("2026-12-05T00:00:00")

    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ServiceRequest(ServiceKey(10), Usage())], now=nov)
    await charging.terminate(
        s,
        "1",
        [ServiceRequest(ServiceKey(10), None, (UsedUnits(Usage(total_octets=36_000)),))],
        now=nov + 60,
    )
    # 14_000 left; 50% = 7_000 carried (under the 10_000 cap)
    dec = utc("2026-12-06T00:00:00")
    assert await renewals.renew_account(acct.account_id, now=dec) == 1
    assert await renewals.renew_account(acct.account_id, now=dec) == 0
    view = await accounts.show(acct.account_id)
    assert bundles(view) == {"plan:monthly_data:m2026-12-05": 57_000}


async def test_rollover_is_capped(
    charging: ChargingService, accounts: Accounts, test_policies: PolicySet, new_account: NewAccount
) -> None:
    """An unused bundle rolls over at most rollover_max."""
    acct = await new_account(money=0, plan="bundle")
    renewals = Renewals(charging.redis, charging.partitions, test_policies)
    await renewals.renew_account(acct.account_id, now=utc("2026-11-10T00:00:00"))
    await renewals.renew_account(acct.account_id, now=utc("2026-12-10T00:00:00"))
    assert bundles(await accounts.show(acct.account_id)) == {
        "plan:monthly_data:m2026-12-05": 60_000
    }


async def test_renew_all_covers_every_account(
    charging: ChargingService, accounts: Accounts, test_policies: PolicySet, new_account: NewAccount
) -> None:
    """renew_all walks every account; accounts without allowances are left alone."""
    with_bundle = await new_account(money=0, plan="bundle")
    plain = await new_account(money=5)
    seen, renewed = await Renewals(charging.redis, charging.partitions, test_policies).renew_all(
        now=utc("2027-01-20T00:00:00")
    )
    assert seen >= 2 and renewed >= 1
    assert bundles(await accounts.show(with_bundle.account_id))
    assert not bundles(await accounts.show(plain.account_id))
