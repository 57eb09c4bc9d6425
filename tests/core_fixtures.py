"""Fixtures for the charging core, shared by every suite (a pytest plugin).

``charging`` is a ChargingService on the suite's real Redis with the test
policies in tests/policies; ``new_account`` creates an account with unique
identities, so no test depends on another's data or order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.policy.loader import PolicySet, load_policies
from ocs.store.client import Store, connect
from ocs.vocabulary.types import Identity, IdentityType, UnitType

TEST_POLICIES = Path(__file__).parent / "policies"


@dataclass(frozen=True)
class TestAccount:
    account_id: str
    identity: Identity


@pytest.fixture(scope="session")
def test_policies() -> PolicySet:
    return load_policies(TEST_POLICIES)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def core_redis(store_url: str) -> AsyncIterator[Store]:
    client = connect(store_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def charging(core_redis: Store, test_policies: PolicySet) -> ChargingService:
    return await ChargingService.connect(core_redis, test_policies)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def accounts(core_redis: Store) -> Accounts:
    return await Accounts.connect(core_redis)


NewAccount = Callable[..., Awaitable[TestAccount]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def new_account(accounts: Accounts) -> NewAccount:
    async def make(
        money: int = 1_000_000, plan: str = "basic", buckets: Sequence[BucketSpec] = ()
    ) -> TestAccount:
        ident = Identity(IdentityType.E164, "99" + str(uuid.uuid4().int)[:13])
        specs = list(buckets)
        if money:
            specs.append(BucketSpec(UnitType.MONEY, money))
        acct = await accounts.create([ident], plan, "EUR", specs)
        return TestAccount(acct, ident)

    return make


def unique_session() -> str:
    return "test;" + uuid.uuid4().hex
