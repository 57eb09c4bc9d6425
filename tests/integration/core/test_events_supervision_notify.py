"""One-shot events, supervision and notifications against a real Redis (standards §2.7, §2.6)."""

from __future__ import annotations

import asyncio

import pytest

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.charging.supervision import sweep
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    EventAction,
    NotificationKind,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    UnitType,
    Usage,
    UsedUnits,
)
from tests.core_fixtures import NewAccount, unique_session

SMS = ServiceKey(40)
DATA = ServiceKey(10)


async def balance(accounts: Accounts, account_id: str) -> int:
    view = await accounts.show(account_id)
    return sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")


async def records_of(charging: ChargingService, account_id: str) -> list:
    entries = await charging.redis.xrange(charging.store.keys(account_id).records)
    return [r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == account_id]


async def test_direct_debit_is_idempotent_and_recorded(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """DIRECT_DEBITING retried with the same event id charges once (standards §2.7)."""
    acct = await new_account(money=10_000)
    first = await charging.event(
        "ev-" + unique_session(), acct.identity, SMS, EventAction.DIRECT_DEBIT, Usage(events=3)
    )
    assert first.status is ServiceStatus.GRANTED and first.cost == 1_500
    again = await charging.event(
        first.event_id, acct.identity, SMS, EventAction.DIRECT_DEBIT, Usage(events=3)
    )
    assert again.replayed and again.cost == 1_500
    assert await balance(accounts, acct.account_id) == 8_500
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.kind == "event" and rec.charged == 1_500 and rec.services[0].used == {"events": 3}


async def test_direct_debit_without_enough_credit_takes_nothing(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """An event the balance cannot fully pay is refused whole (4012) and debits nothing."""
    acct = await new_account(money=900)
    ans = await charging.event(
        unique_session(), acct.identity, SMS, EventAction.DIRECT_DEBIT, Usage(events=2)
    )
    assert ans.status is ServiceStatus.CREDIT_LIMIT_REACHED
    assert await balance(accounts, acct.account_id) == 900
    assert await records_of(charging, acct.account_id) == []


async def test_refund_is_idempotent(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """REFUND_ACCOUNT credits once per event id, with a negative record (standards §2.7 [T])."""
    acct = await new_account(money=1_000)
    eid = unique_session()
    for _ in range(2):
        ans = await charging.event(eid, acct.identity, SMS, EventAction.REFUND, Usage(events=2))
        assert ans.cost == 1_000
    assert await balance(accounts, acct.account_id) == 2_000
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.kind == "refund" and rec.charged == -1_000


async def test_check_balance_and_price_enquiry_change_nothing(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """CHECK_BALANCE answers enough/not enough; PRICE_ENQUIRY prices; neither reserves (§2.7)."""
    acct = await new_account(money=1_000)
    ok = await charging.event(
        unique_session(), acct.identity, SMS, EventAction.CHECK_BALANCE, Usage(events=2)
    )
    no = await charging.event(
        unique_session(), acct.identity, SMS, EventAction.CHECK_BALANCE, Usage(events=3)
    )
    price = await charging.event(
        unique_session(), acct.identity, SMS, EventAction.PRICE_ENQUIRY, Usage(events=7)
    )
    assert ok.enough_credit is True and no.enough_credit is False
    assert price.cost == 3_500 and price.currency == "EUR"
    assert await balance(accounts, acct.account_id) == 1_000


async def test_event_for_unknown_service_is_rating_failed(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """An event naming an unknown service answers rating failed (5031)."""
    acct = await new_account()
    ans = await charging.event(
        unique_session(), acct.identity, ServiceKey(4242), EventAction.DIRECT_DEBIT, Usage(events=1)
    )
    assert ans.status is ServiceStatus.RATING_FAILED


async def test_abandoned_session_is_released_recorded_and_then_unknown(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """No CCR-T before Tcc: reservation released, record `abandoned`, later CCR-U -> 5002 (§2.6 [T])."""
    acct = await new_account(money=10_000)
    s = SessionRef(unique_session())
    t0 = 1_000_000_000  # long past: sweeping at t0 + 1211 touches no other test's session
    await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())], now=t0)
    await charging.update(
        s,
        "1",
        [ServiceRequest(DATA, Usage(), (UsedUnits(Usage(total_octets=1_000)),))],
        now=t0 + 10,
    )
    assert (await accounts.show(acct.account_id))["reserved"]["money"] == 100
    assert await sweep(charging, now=t0 + 600) == 0  # deadline is 2 x validity = 1200 s
    assert await sweep(charging, now=t0 + 10 + 1_201) >= 1
    view = await accounts.show(acct.account_id)
    assert view["reserved"]["money"] == 0 and view["sessions"] == []
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.cause == "abandoned" and rec.charged == 10
    with pytest.raises(errors.UnknownSession):
        await charging.update(s, "2", [ServiceRequest(DATA, Usage())], now=t0 + 2_000)


async def test_topup_and_block_publish_notifications_for_live_sessions(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A top-up publishes TOPUP and a block BLOCKED for each live session, with its owner."""
    acct = await new_account(money=100)
    s = SessionRef(unique_session(), owner="diameter:pgw.test", attributes=(("peer", "x"),))
    await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())])
    stream = charging.notifications()
    got: list = []

    async def collect() -> None:
        async for n in stream:
            if n.account_id == acct.account_id:
                got.append(n)
                if len(got) == 2:
                    return

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # the subscription is live before the changes
    await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), 5_000)
    await accounts.set_status(acct.account_id, "blocked")
    await asyncio.wait_for(task, timeout=5)
    assert [n.kind for n in got] == [NotificationKind.TOPUP, NotificationKind.BLOCKED]
    assert got[0].session_id == s.session_id and got[0].owner == "diameter:pgw.test"
    assert got[0].attributes == (("peer", "x"),)
    assert got[0].rating_groups == ()  # money: every rating group


async def test_bundle_topup_notification_names_its_rating_groups(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A top-up of a bundle for rating group 10 asks for a RAR scoped to rating group 10."""
    acct = await new_account(money=100)
    s = SessionRef(unique_session(), owner="diameter:pgw.test")
    await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())])
    stream = charging.notifications()
    await accounts.credit(
        acct.account_id,
        BucketSpec(UnitType.TOTAL_OCTETS, 0, bucket_id="d10", rating_groups=(10,)),
        1_000_000,
    )
    note = await asyncio.wait_for(
        anext(n async for n in stream if n.account_id == acct.account_id), 5
    )
    assert note.rating_groups == (10,)


async def test_topup_with_reference_is_applied_once(
    accounts: Accounts, new_account: NewAccount
) -> None:
    """A top-up repeated with the same payment reference credits once."""
    acct = await new_account(money=0)
    for _ in range(3):
        await accounts.credit(
            acct.account_id, BucketSpec(UnitType.MONEY, 0), 700, ref="pay-" + acct.account_id
        )
    assert await balance(accounts, acct.account_id) == 700


async def test_adjust_down_never_below_floor(accounts: Accounts, new_account: NewAccount) -> None:
    """A negative adjustment larger than what is available is refused."""
    from ocs.accounts import AccountError

    acct = await new_account(money=500)
    with pytest.raises(AccountError):
        await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), -501)
    await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), -500)
    assert await balance(accounts, acct.account_id) == 0


async def test_deleted_account_is_unknown(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """After delete, the identity no longer resolves (USER_UNKNOWN)."""
    acct = await new_account()
    await accounts.set_status(acct.account_id, "deleted")
    fresh = ChargingService(charging.redis, charging.policies, charging.partitions)
    with pytest.raises(errors.UserUnknown):
        await fresh.initiate(
            SessionRef(unique_session()), acct.identity, [ServiceRequest(DATA, Usage())]
        )
    # a process that still caches the identity is corrected by the script
    with pytest.raises(errors.UserUnknown):
        await charging.initiate(
            SessionRef(unique_session()), acct.identity, [ServiceRequest(DATA, Usage())]
        )


async def test_early_supervision_entry_is_rearmed_not_closed(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """Updates do not rewrite the deadline index: the sweeper finds the session alive and re-arms it."""
    acct = await new_account(money=10_000)
    s = SessionRef(unique_session())
    t0 = 1_000_100_000  # long past, like the test above: touches no other test's session
    await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())], now=t0)
    await charging.update(
        s, "1", [ServiceRequest(DATA, Usage())], now=t0 + 1_000
    )  # real deadline t0+2200
    await sweep(charging, now=t0 + 1_300)  # the index said t0+1200: due, but the session is alive
    u = await charging.update(s, "2", [ServiceRequest(DATA, Usage())], now=t0 + 1_400)
    assert u.services[0].status is ServiceStatus.GRANTED
    await sweep(charging, now=t0 + 1_400 + 1_201)
    with pytest.raises(errors.UnknownSession):
        await charging.update(s, "3", [ServiceRequest(DATA, Usage())], now=t0 + 2_700)
