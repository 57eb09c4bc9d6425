"""Property: for any one-shot event, what is charged is what is recorded (issue 13 item 3).

Any action, any service (known, free, unpriced, unknown) and any units (every
unit type, zero, negative money, several at once, none): either the event is
refused (RATING_FAILED, CREDIT_LIMIT_REACHED) and nothing changes, or exactly
one record is written whose usage, priced by the tariff, is its charge, and
the balance moved by exactly that charge.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.rating import cost, tariff_params
from ocs.charging.records import ChargedRecord, decode_record
from ocs.vocabulary.types import (
    EventAction,
    EventAnswer,
    Identity,
    IdentityType,
    ServiceKey,
    ServiceStatus,
    UnitType,
    Usage,
)

NOW = 1_800_000_000
SERVICES = [ServiceKey(10), ServiceKey(30), ServiceKey(40), ServiceKey(99), ServiceKey(777)]
quantity = st.one_of(st.none(), st.integers(0, 3), st.integers(0, 500_000))
usage = st.builds(
    Usage,
    total_octets=quantity,
    input_octets=quantity,
    output_octets=quantity,
    seconds=quantity,
    events=quantity,
    money=st.one_of(st.none(), st.integers(-10_000, 10_000)),
)


async def records_of(charging: ChargingService, account: str) -> list[ChargedRecord]:
    entries = await charging.redis.xrange(charging.store.keys(account).records)
    found = (decode_record(fields[b"r"]) for _, fields in entries)
    return [r for r in found if r.account == account]


async def money_of(accounts: Accounts, account: str) -> int:
    view = await accounts.show(account)
    return sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")


def check_record(charging: ChargingService, ans: EventAnswer, rec: ChargedRecord) -> None:
    """The record's usage, priced by the plan's tariff, is its charge, and is the answer's."""
    (svc,) = rec.services
    assert rec.charged == svc.charged
    name = charging.policies.service_name(ans.service)
    assert name is not None
    unit = charging.policies.services[name].unit
    price = tariff_params(charging.policies.price("basic", name, NOW))
    if ans.action is EventAction.REFUND and "money" in svc.used:
        assert svc.used == {"money": -rec.charged}
        return
    amount = ans.units.get(unit) if ans.units is not None else 0
    assert svc.used == {unit.value: amount}
    sign = -1 if ans.action is EventAction.REFUND else 1
    assert rec.charged == sign * cost(price, amount or 0) == sign * ans.cost


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    action=st.sampled_from(list(EventAction)),
    service=st.sampled_from(SERVICES),
    units=st.one_of(st.none(), usage),
    balance=st.sampled_from([0, 700, 1_000_000]),
)
async def test_what_an_event_charges_is_what_it_records(
    charging: ChargingService,
    accounts: Accounts,
    action: EventAction,
    service: ServiceKey,
    units: Usage | None,
    balance: int,
) -> None:
    """Random events: refused with nothing changed, or one record that prices to its charge."""
    ident = Identity(IdentityType.IMSI, uuid.uuid4().hex)
    acct = await accounts.create([ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, balance)])
    ans = await charging.event(uuid.uuid4().hex, ident, service, action, units, now=NOW)
    after = await money_of(accounts, acct)
    recs = await records_of(charging, acct)
    writes = action in (EventAction.DIRECT_DEBIT, EventAction.REFUND)
    if ans.status is not ServiceStatus.GRANTED or not writes:
        assert after == balance
        assert recs == []
        return
    (rec,) = recs
    assert balance - after == rec.charged
    check_record(charging, ans, rec)
