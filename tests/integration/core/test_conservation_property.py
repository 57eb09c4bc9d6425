"""Property: money is conserved exactly, in integers, whatever the request sequence.

initial + top-ups = balance (reservations included) + everything charged
(session records, direct debits; refunds are records of negative charge),
no bucket ever below its floor, and unit buckets lose exactly what the
records say they gave.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.vocabulary.errors import UnknownSession
from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
    UsedUnits,
)

SERVICES = [
    ServiceKey(10),
    ServiceKey(20),
    ServiceKey(30),
    ServiceKey(40),
    ServiceKey(99),
    ServiceKey(777),
]
UNITS = {
    10: "total_octets",
    20: "total_octets",
    30: "seconds",
    40: "events",
    99: "total_octets",
    777: "total_octets",
}

op = st.one_of(
    st.tuples(
        st.just("initiate"),
        st.integers(0, 3),
        st.sampled_from(SERVICES),
        st.one_of(st.none(), st.integers(0, 200_000)),
    ),
    st.tuples(
        st.just("update"), st.integers(0, 3), st.sampled_from(SERVICES), st.integers(0, 300_000)
    ),
    st.tuples(
        st.just("terminate"), st.integers(0, 3), st.sampled_from(SERVICES), st.integers(0, 300_000)
    ),
    st.tuples(st.just("debit"), st.integers(0, 99), st.sampled_from(SERVICES), st.integers(1, 5)),
    st.tuples(st.just("refund"), st.integers(0, 99), st.sampled_from(SERVICES), st.integers(1, 5)),
    st.tuples(
        st.just("topup"), st.integers(0, 0), st.sampled_from(SERVICES), st.integers(0, 5_000)
    ),
    st.tuples(
        st.just("replay"), st.integers(0, 3), st.sampled_from(SERVICES), st.integers(0, 1_000)
    ),
)


def used(key: ServiceKey, n: int) -> tuple[UsedUnits, ...]:
    return (UsedUnits(Usage(**{UNITS[key.rating_group or 10]: n})),)


async def run_op(
    charging: ChargingService,
    accounts: Accounts,
    acct: str,
    ident: Identity,
    tag: str,
    step: int,
    action: tuple[Any, ...],
    state: dict[str, Any],
) -> None:
    kind, slot, key, n = action
    sid = f"{tag}-s{slot}"
    ref = SessionRef(sid)
    try:
        if kind == "initiate":
            await charging.initiate(
                ref, ident, [ServiceRequest(key, None if n is None else Usage(total_octets=n))]
            )
        elif kind == "update":
            await charging.update(ref, str(step), [ServiceRequest(key, Usage(), used(key, n))])
            state["last"] = (ref, str(step), key, n)
        elif kind == "replay" and state.get("last"):
            r, rk, k, m = state["last"]
            await charging.update(r, rk, [ServiceRequest(k, Usage(), used(k, m))])
        elif kind == "terminate":
            await charging.terminate(ref, str(step), [ServiceRequest(key, None, used(key, n))])
        elif kind == "debit":
            await charging.event(
                f"{tag}-e{slot}",
                ident,
                key,
                EventAction.DIRECT_DEBIT,
                Usage(**{UNITS[key.rating_group or 10]: n}),
            )
        elif kind == "refund":
            await charging.event(
                f"{tag}-r{slot}", ident, key, EventAction.REFUND, Usage(money=n * 7)
            )
        elif kind == "topup":
            await accounts.credit(acct, BucketSpec(UnitType.MONEY, 0), n)
            state["topups"] += n
    except UnknownSession:
        pass  # the only refusal expected: a slot's session not open (never, or closed)


def check_floors(view: dict[str, Any]) -> None:
    for b in view["buckets"]:
        assert b["reserved"] >= 0
        assert b["amount"] - b["reserved"] >= b["floor"], b


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    money=st.integers(0, 20_000),
    data_bundle=st.integers(0, 30_000),
    floor=st.sampled_from([0, 0, -500]),
    ops=st.lists(op, min_size=1, max_size=12),
)
async def test_money_is_conserved(
    charging: ChargingService,
    accounts: Accounts,
    money: int,
    data_bundle: int,
    floor: int,
    ops: list[tuple[Any, ...]],
) -> None:
    """Random initiate/update/terminate/event/top-up sequences conserve money exactly."""
    tag = uuid.uuid4().hex
    ident = Identity(IdentityType.IMSI, tag)
    buckets = [BucketSpec(UnitType.MONEY, money, bucket_id="m", floor=floor)]
    if data_bundle:
        buckets.append(
            BucketSpec(UnitType.TOTAL_OCTETS, data_bundle, bucket_id="d", rating_groups=(10,))
        )
    acct = await accounts.create([ident], "basic", "EUR", buckets)
    state: dict[str, Any] = {"topups": 0}
    for step, action in enumerate(ops):
        await run_op(charging, accounts, acct, ident, tag, step + 1, action, state)
        check_floors(await accounts.show(acct))
    for slot in range(4):  # close whatever is still open so every charge is on record
        with contextlib.suppress(Exception):
            await charging.terminate(SessionRef(f"{tag}-s{slot}"), "final", [])
    view = await accounts.show(acct)
    check_floors(view)
    entries = await charging.redis.xrange(charging.store.keys(acct).records)
    records = [r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == acct]
    balance = sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")
    charged = sum(r.charged for r in records)
    assert money + state["topups"] == balance + charged
    assert all(b["reserved"] == 0 for b in view["buckets"])
    taken = sum(s.from_buckets.get("d", 0) for r in records for s in r.services)
    left = sum(b["amount"] for b in view["buckets"] if b["id"] == "d")
    assert taken + left == data_bundle
