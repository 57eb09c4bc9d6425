"""Plans in use against a real Redis (issue 13 item 4).

A reload may not drop a plan an account uses (``ocs.plan_usage``), and a
request for an account whose plan the set in force lacks gets a defined
answer (PlanUnknown: Gy 5030), never a KeyError (5012).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.plan_usage import accounts_on_plans, check_dropped_plans
from ocs.policy.loader import PolicyError, PolicySet
from ocs.store.embedded import free_port
from ocs.vocabulary.errors import PlanUnknown
from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    Usage,
)
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import (  # fixtures, used by name
    NewClient,
    StartServer,
    gy_server,
    new_client,
    start_server,
)
from tests.integration.diameter.gy_client import mscc, rsu

_FIXTURES = (gy_server, new_client, start_server)
USER_UNKNOWN = 5030


def without(policies: PolicySet, *plans: str) -> PolicySet:
    return replace(policies, plans={k: v for k, v in policies.plans.items() if k not in plans})


async def test_dropping_a_plan_an_account_uses_is_refused_naming_file_and_key(
    charging: ChargingService, test_policies: PolicySet, new_account: NewAccount
) -> None:
    """The new set lacks 'bundle', which an account uses: PolicyError with file and key."""
    await new_account(plan="bundle")  # at least this account uses it
    with pytest.raises(PolicyError) as refused:
        await check_dropped_plans(
            test_policies, without(test_policies, "bundle"), charging.redis, charging.partitions
        )
    message = str(refused.value)
    assert message.startswith(f"{test_policies.origins['plans.bundle']}: plans.bundle: ")
    named = re.search(r"but account (\S+) uses it", message)
    assert named is not None and "\n" not in message
    # this test's account, or another test's: either way one on that plan
    keys = charging.store.keys(named.group(1))
    assert await charging.redis.hget(keys.account, "plan") == b"bundle"


async def test_dropping_unused_plans_is_allowed_after_a_paged_scan(
    charging: ChargingService, accounts: Accounts, test_policies: PolicySet
) -> None:
    """A plan only a deleted account had, and one nobody has: the scan (2 ids a step) finds none."""
    plan = f"gone-{uuid.uuid4().hex[:8]}"
    ident = Identity(IdentityType.IMSI, uuid.uuid4().hex)
    acct = await accounts.create([ident], plan, "EUR")
    assert await accounts_on_plans(charging.redis, charging.partitions, [plan], step=2) == {
        plan: acct
    }
    await accounts.set_status(acct, "deleted")
    assert await accounts_on_plans(charging.redis, charging.partitions, [plan], step=2) == {}
    grown = replace(test_policies, plans={**test_policies.plans, plan: test_policies.plans["free"]})
    await check_dropped_plans(grown, test_policies, charging.redis, charging.partitions)


async def test_a_store_that_cannot_answer_refuses_the_drop(test_policies: PolicySet) -> None:
    """Whether a dropped plan is in use cannot be known: refused, not guessed."""
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        with pytest.raises(
            PolicyError, match=r"plans\.free: dropped by the new set, and the store"
        ):
            await check_dropped_plans(test_policies, without(test_policies, "free"), down, 16)
    finally:
        await down.aclose()


async def test_a_request_for_a_plan_the_set_lacks_is_user_unknown_not_a_crash(
    core_redis: Redis, accounts: Accounts, test_policies: PolicySet, new_account: NewAccount
) -> None:
    """Session and event calls of an account on a missing plan raise PlanUnknown, nothing taken."""
    acct = await new_account(money=10_000)  # plan 'basic'
    charging = await ChargingService.connect(core_redis, without(test_policies, "basic"))
    try:
        service = [ServiceRequest(ServiceKey(10), Usage())]
        with pytest.raises(PlanUnknown, match="plan 'basic' is not in policy set"):
            await charging.initiate(SessionRef(uuid.uuid4().hex), acct.identity, service)
        with pytest.raises(PlanUnknown):
            await charging.event(
                uuid.uuid4().hex, acct.identity, ServiceKey(40), EventAction.DIRECT_DEBIT
            )
        view = await accounts.show(acct.account_id)
        assert [b["amount"] for b in view["buckets"]] == [10_000]
        assert view["sessions"] == []
    finally:
        charging.close()


async def test_gy_ccr_i_for_a_missing_plan_gets_5030(
    core_redis: Redis,
    test_policies: PolicySet,
    new_account: NewAccount,
    start_server: StartServer,
    new_client: NewClient,
) -> None:
    """Over the wire: CCR-I of an account whose plan is missing -> 5030 USER_UNKNOWN, not 5012."""
    acct = await new_account()
    charging = await ChargingService.connect(core_redis, without(test_policies, "basic"))
    try:
        server = await start_server(charging)
        client = await new_client(server)
        cca = await client.call(
            client.ccr(f"gw;{uuid.uuid4().hex}", 1, 0, acct.identity.value, [mscc(10, rsu())])
        )
        assert cca.result_code == USER_UNKNOWN
    finally:
        charging.close()
