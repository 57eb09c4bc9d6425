"""Policy features against real Redis: tariff switches, dynamic grants, balance events."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.vocabulary.types import (
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TariffChange,
    UnitType,
    Usage,
    UsedUnits,
)
from tests.core_fixtures import NewAccount, unique_session

DATA, VIDEO = ServiceKey(10), ServiceKey(20)


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


async def records_of(charging: ChargingService, account_id: str) -> list:  # type: ignore[type-arg]
    entries = await charging.redis.xrange(charging.store.keys(account_id).records)
    return [r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == account_id]


async def test_gy_session_across_switch_charges_before_and_after_prices(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """Grant announces Tariff-Time-Change; BEFORE/AFTER usage is rated at the two prices (§2.6 [T])."""
    acct = await new_account(plan="night")
    s = SessionRef(unique_session())
    t0 = utc("2026-11-25T19:55:00")  # day price 10, night price 5 from 20:00
    a = await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())], now=t0)
    assert a.services[0].tariff_time_change == utc("2026-11-25T20:00:00")
    used = (
        UsedUnits(Usage(total_octets=3_000), TariffChange.BEFORE),
        UsedUnits(Usage(total_octets=4_000), TariffChange.AFTER),
    )
    u = await charging.update(s, "1", [ServiceRequest(DATA, Usage(), used)], now=t0 + 400)
    assert u.services[0].charged == 3 * 10 + 4 * 5
    assert u.services[0].tariff_time_change is None  # the next switch is tomorrow 08:00
    await charging.terminate(s, "2", [ServiceRequest(DATA, None, ())], now=t0 + 500)
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.charged == 50 and rec.tax_rate_ppm == 100_000


async def test_radius_style_usage_across_switch_is_split_by_time(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """No Tariff-Change-Usage: usage spanning the switch is split in proportion to time."""
    acct = await new_account(plan="night")
    s = SessionRef(unique_session())
    t0 = utc("2026-11-25T19:50:00")
    await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())], now=t0)
    # 20 minutes, 10 before 20:00 and 10 after: 10_000 octets -> 5_000 at 10, 5_000 at 5
    rep = (UsedUnits(Usage(total_octets=10_000), cumulative=True),)
    u = await charging.update(s, "i1", [ServiceRequest(DATA, Usage(), rep)], now=t0 + 1_200)
    assert u.services[0].charged == 50 + 25


async def test_low_balance_and_exhaustion_events_on_the_stream(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """Crossing a low-balance threshold and running out write events for integrations."""
    acct = await new_account(money=600)
    s = SessionRef(unique_session(), owner="radius:10.0.0.1")
    await charging.initiate(s, acct.identity, [ServiceRequest(DATA, Usage())])  # reserves 100
    stream = charging.store.keys(acct.account_id).notifications
    await charging.update(
        s, "1", [ServiceRequest(DATA, Usage(), (UsedUnits(Usage(total_octets=60_000)),))]
    )
    events = [msgpack.unpackb(f[b"n"]) for _, f in await charging.redis.xrange(stream)]
    mine = [e for e in events if e["a"] == acct.account_id]
    kinds = [(e["k"], e.get("thr")) for e in mine]
    assert ("low_balance", 500) in kinds and ("low_balance", 100) in kinds
    assert ("exhausted", None) in kinds


@settings(max_examples=150, deadline=None)
@given(money=st.integers(0, 50_000), bundle=st.integers(0, 30_000), ask=st.integers(0, 200_000))
async def test_dynamic_grant_never_exceeds_what_the_balance_pays(
    charging: ChargingService, accounts: Accounts, money: int, bundle: int, ask: int
) -> None:
    """Dynamic sizing: the grant is about half of what the balance pays, never more than it pays."""
    from ocs.vocabulary.types import Identity, IdentityType

    ident = Identity(IdentityType.NAI, unique_session())
    specs = [BucketSpec(UnitType.MONEY, money, bucket_id="m")]
    if bundle:
        specs.append(BucketSpec(UnitType.TOTAL_OCTETS, bundle, bucket_id="b", rating_groups=(20,)))
    acct = await accounts.create([ident], "basic", "EUR", specs)
    affordable = bundle + (money // 5) * 1000  # video: 5 micro per started 1000 octets
    a = await charging.initiate(
        SessionRef(unique_session()), ident, [ServiceRequest(VIDEO, Usage(total_octets=ask))]
    )
    out = a.services[0]
    granted = out.granted.total_octets if out.granted else 0
    assert granted is not None
    assert granted <= affordable
    want = ask or 20_000
    expected = min(want, max(affordable // 2, 2_000), affordable)
    assert granted == expected
    if granted == 0 and want > 0:
        assert out.status is ServiceStatus.CREDIT_LIMIT_REACHED
    view = await accounts.show(acct)
    assert all(b["amount"] - b["reserved"] >= b["floor"] for b in view["buckets"])


async def test_grant_search_above_two_to_the_52_units_returns(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """A balance paying for more than 2^52 octets and an ask at the 2^53 cap: the
    affordability search ends (its midpoint once rounded above 2^52 and looped for
    ever, a busy server) and grants half of what the balance pays (dynamic sizing)."""
    acct = await new_account(money=30_000_000_000_000)  # pays 6e15 octets of video
    a = await charging.initiate(
        SessionRef(unique_session()),
        acct.identity,
        [ServiceRequest(VIDEO, Usage(total_octets=2**60))],  # saturated to 2^53 - 1
    )
    assert a.services[0].granted == Usage(total_octets=3_000_000_000_000_000)
