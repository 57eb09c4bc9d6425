"""Concurrent creates claiming the same identities (ocs/accounts.py ``create``):
exactly one wins, and the losers leave nothing behind (no account, no identity
index of theirs, no index of the winner's taken away)."""

from __future__ import annotations

import asyncio
import uuid

from ocs.accounts import Accounts, Conflict
from ocs.store.keys import identity_index
from ocs.vocabulary.types import Identity, IdentityType


def e164() -> Identity:
    return Identity(IdentityType.E164, "98" + str(uuid.uuid4().int)[:13])


def new_id() -> str:
    return uuid.uuid4().hex[:16]


async def owner_of(accounts: Accounts, ident: Identity) -> str | None:
    raw = await accounts.redis.get(identity_index(ident.key()))
    return None if raw is None else raw.decode()


async def test_many_creates_of_one_identity_one_wins_and_losers_leave_nothing(
    accounts: Accounts,
) -> None:
    """20 creates (distinct ids) for one identity at once: one account, the rest Conflict."""
    ident = e164()
    ids = [new_id() for _ in range(20)]
    results = await asyncio.gather(
        *(accounts.create([ident], "basic", "EUR", account_id=a) for a in ids),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, str)]
    assert len(won) == 1 and all(isinstance(r, Conflict) for r in results if r not in won)
    assert await owner_of(accounts, ident) == won[0]
    for a in ids:
        assert bool(await accounts.redis.exists(accounts.keys(a).account)) == (a == won[0])


async def test_losing_create_of_the_same_account_keeps_the_winners_identity(
    accounts: Accounts,
) -> None:
    """Two creates of one account id: the one that claimed the shared identity first but
    lost the account leaves it to the winner, and lets go of its other identities."""
    shared, extra = e164(), [e164() for _ in range(3)]
    acct = new_id()
    slow = accounts.create([shared, *extra], "basic", "EUR", account_id=acct)
    fast = accounts.create([shared], "basic", "EUR", account_id=acct)
    results = await asyncio.gather(slow, fast, return_exceptions=True)
    assert sum(r == acct for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 1
    view = await accounts.show(acct)
    assert await owner_of(accounts, shared) == acct  # the account's identity still resolves
    for ident in extra:
        held = ident.key() in view["identities"]
        assert (await owner_of(accounts, ident) == acct) == held


async def test_creates_claiming_in_opposite_orders_leave_one_or_nothing(
    accounts: Accounts,
) -> None:
    """Creates of [X, Y] and [Y, X] at once: one wins, no index points at a loser."""
    x, y = e164(), e164()
    ids = [new_id() for _ in range(10)]
    results = await asyncio.gather(
        *(
            accounts.create([x, y] if i % 2 else [y, x], "basic", "EUR", account_id=a)
            for i, a in enumerate(ids)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, str)]
    assert len(won) == 1
    assert await owner_of(accounts, x) == won[0] and await owner_of(accounts, y) == won[0]
    for a in ids:
        assert bool(await accounts.redis.exists(accounts.keys(a).account)) == (a == won[0])
