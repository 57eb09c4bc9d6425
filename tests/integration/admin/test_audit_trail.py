"""Audit entries of operator changes, written by the account scripts (issue 14 item 4).

Against the suite's real Redis: every change (create, top-up, adjustment,
bucket expiry, block, unblock, plan change, renewal, identity added and
removed, session terminated, delete) appends exactly one entry to its
partition's audit stream, in the same script call, naming who, how, why and
the amounts before and after; a repeat under the same reference, and a
refused change, append none.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ocs.accounts import AccountError, Accounts, BucketSpec, Conflict
from ocs.audit import Actor, AuditEntry, read_history
from ocs.charging.api import ChargingService
from ocs.vocabulary.types import (
    Identity,
    IdentityType,
    NotificationKind,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
)
from tests.core_fixtures import NewAccount, unique_session

DATA = ServiceKey(10)
OPERATOR = Actor("token:crm", "api", "req-1", "customer called")


async def history(accounts: Accounts, account_id: str) -> list[AuditEntry]:
    return await read_history(accounts.redis, accounts.partitions, account_id)


async def test_every_change_appends_one_entry(
    accounts: Accounts, new_account: NewAccount, test_policies: object
) -> None:
    """create, topup, adjust, expire, block, unblock, plan, identity +/-, delete: one entry each,
    with who/via/request id/reason and the money before and after."""
    ident = Identity(IdentityType.E164, "9911" + str(time.time_ns())[-11:])
    acct = await accounts.create(
        [ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, 2_000_000)], actor=OPERATOR
    )
    await accounts.credit(acct, BucketSpec(UnitType.MONEY, 0), 500_000, actor=OPERATOR)
    await accounts.credit(
        acct,
        BucketSpec(UnitType.MONEY, 0),
        -250_000,
        NotificationKind.ADJUST,
        actor=OPERATOR.because("goodwill reversal"),
    )
    await accounts.credit(
        acct, BucketSpec(UnitType.MONEY, 0, bucket_id="promo", expires=2**31), 100_000
    )
    await accounts.expire_bucket(acct, "promo", 0, actor=OPERATOR)
    await accounts.set_status(acct, "blocked", actor=OPERATOR)
    await accounts.set_status(acct, "active", actor=OPERATOR)
    await accounts.assign_plan(acct, "night", "EUR", actor=OPERATOR)
    extra = Identity(IdentityType.IMSI, "20801" + str(time.time_ns())[-10:])
    await accounts.add_identity(acct, extra, actor=OPERATOR)
    await accounts.remove_identity(acct, extra, actor=OPERATOR)
    await accounts.set_status(acct, "deleted", actor=OPERATOR)

    entries = await history(accounts, acct)
    assert [e.op for e in entries] == [
        "create",
        "topup",
        "adjust",
        "topup",
        "expire",
        "block",
        "unblock",
        "plan",
        "identity_add",
        "identity_remove",
        "delete",
    ]
    money = [(e.money_before, e.money_after) for e in entries]
    assert money == [
        (0, 2_000_000),
        (2_000_000, 2_500_000),
        (2_500_000, 2_250_000),
        (2_250_000, 2_350_000),
        (2_350_000, 2_250_000),
        *[(2_250_000, 2_250_000)] * 2,
        (2_250_000, 2_250_000),
        (2_250_000, 2_250_000),
        (2_250_000, 2_250_000),
        (2_250_000, 2_250_000),
    ]
    create, topup, adjust, promo, expire = entries[:5]
    assert (create.who, create.via, create.request_id) == ("token:crm", "api", "req-1")
    assert create.details["identities"] == [ident.key()] and create.details["plan"] == "basic"
    assert (topup.bucket, topup.delta, topup.before, topup.after) == (
        "main",
        500_000,
        2_000_000,
        2_500_000,
    )
    assert adjust.reason == "goodwill reversal" and adjust.delta == -250_000
    assert promo.who == "system" and promo.bucket == "promo"
    assert (expire.bucket, expire.before, expire.after) == ("promo", 100_000, 0)
    assert entries[5].details["from"] == "active" and entries[5].details["to"] == "blocked"
    assert entries[7].details["from"] == "basic" and entries[7].details["to"] == "night"
    assert entries[8].details["identity"] == extra.key()
    assert all(e.currency == "EUR" and e.account == acct for e in entries)
    assert [e.at_ms for e in entries] == sorted(e.at_ms for e in entries)


async def test_a_repeated_reference_appends_nothing(
    accounts: Accounts, new_account: NewAccount
) -> None:
    """The same reference twice: one credit, one entry, the repeat answers dup."""
    acct = await new_account(money=0)
    first = await accounts.credit(
        acct.account_id, BucketSpec(UnitType.MONEY, 0), 5_000, ref="pay-1", actor=OPERATOR
    )
    again = await accounts.credit(
        acct.account_id, BucketSpec(UnitType.MONEY, 0), 5_000, ref="pay-1", actor=OPERATOR
    )
    assert not first.get("dup") and again.get("dup") == 1 and again["amt"] == 5_000
    blocked = await accounts.change_status(acct.account_id, "blocked", ref="blk-1")
    again_blocked = await accounts.change_status(acct.account_id, "blocked", ref="blk-1")
    assert not blocked.get("dup") and again_blocked.get("dup") == 1
    ops = [e.op for e in await history(accounts, acct.account_id)]
    assert ops == ["create", "topup", "block"]
    assert (await accounts.show(acct.account_id))["buckets"][0]["amount"] == 5_000


async def test_a_referenced_create_is_one_account(accounts: Accounts) -> None:
    """create twice under one reference (no id given): the same account, one create entry."""
    ident = Identity(IdentityType.E164, "9912" + str(time.time_ns())[-11:])
    ref = f"crm-{time.time_ns()}"
    one = await accounts.create_account([ident], "basic", "EUR", ref=ref)
    two = await accounts.create_account([ident], "basic", "EUR", ref=ref)
    assert one.account_id == two.account_id and not one.replayed and two.replayed
    assert [e.op for e in await history(accounts, one.account_id)] == ["create"]


async def test_refused_changes_append_nothing(accounts: Accounts, new_account: NewAccount) -> None:
    """An adjustment below the floor, one without a reason, an identity taken, a plan in
    another currency, the last identity removed: refused, no entry."""
    acct = await new_account(money=1_000)
    other = await new_account(money=0)
    with pytest.raises(AccountError, match="only"):
        await accounts.credit(
            acct.account_id,
            BucketSpec(UnitType.MONEY, 0),
            -5_000,
            NotificationKind.ADJUST,
            actor=OPERATOR,
        )
    with pytest.raises(AccountError, match="reason"):
        await accounts.credit(
            acct.account_id, BucketSpec(UnitType.MONEY, 0), -5, NotificationKind.ADJUST
        )
    with pytest.raises(Conflict, match="already belongs"):
        await accounts.add_identity(acct.account_id, other.identity)
    with pytest.raises(Conflict, match="last identity"):
        await accounts.remove_identity(acct.account_id, acct.identity)
    assert [e.op for e in await history(accounts, acct.account_id)] == ["create"]
    assert await accounts.resolve(other.identity.key()) == other.account_id


async def test_terminate_session_pushes_and_audits(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """An operator's terminate: a `terminate` notification for that session on the
    partition's stream, one audit entry; a session not live is refused."""
    acct = await new_account(money=1_000_000)
    sid = unique_session()
    await charging.initiate(
        SessionRef(sid, "test-owner"), acct.identity, [ServiceRequest(DATA, Usage())]
    )
    stream = charging.notifications()
    got = asyncio.create_task(
        asyncio.wait_for(anext(n async for n in stream if n.account_id == acct.account_id), 5)
    )
    await asyncio.sleep(0.2)
    await accounts.terminate_session(acct.account_id, sid, actor=OPERATOR)
    note = await got
    assert note.kind is NotificationKind.TERMINATE and note.session_id == sid
    with pytest.raises(Exception, match="no live session"):
        await accounts.terminate_session(acct.account_id, "nosuch", actor=OPERATOR)
    (*_, last) = await history(accounts, acct.account_id)
    assert last.op == "terminate" and last.details["session"] == sid


async def test_renewal_is_audited_once_per_period(
    accounts: Accounts, test_policies: object
) -> None:
    """A plan's allowance renewed: one `renew` entry; renewing again in the period: none."""
    from ocs.plans import Renewals

    ident = Identity(IdentityType.E164, "9913" + str(time.time_ns())[-11:])
    acct = await accounts.create([ident], "bundle", "EUR")
    renewals = Renewals(accounts.redis, accounts.partitions, test_policies)  # type: ignore[arg-type]
    assert await renewals.renew_account(acct) == 1
    assert await renewals.renew_account(acct) == 0
    entries = await history(accounts, acct)
    assert [e.op for e in entries] == ["create", "renew"]
    assert entries[1].details["allowances"] == ["monthly_data"] and entries[1].who == "system"
