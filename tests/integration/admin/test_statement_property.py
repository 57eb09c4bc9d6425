"""Property: an account statement balances exactly, whatever the operations (issue 14 item 5).

Random sequences of session charging (some sessions left open), direct debits,
refunds, top-ups, adjustments, expiry of a money bucket, plan changes, blocks, against
the suite's real Redis. Then, for the statement from before the account existed:

* opening = 0 (every money change since creation is a line: nothing unexplained);
* opening + the lines' changes = closing, exactly, in micro-units;
* closing = the money in the buckets + what the open sessions have been charged so far
  (read independently, from the account's view);
* split at a random instant: the first part's closing is the second part's opening;
* once every session is closed, closing = the money in the buckets.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocs import statement
from ocs.accounts import AccountError, Accounts, BucketSpec
from ocs.audit import Actor
from ocs.charging.api import ChargingService
from ocs.vocabulary.errors import ChargingError
from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    NotificationKind,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
    UsedUnits,
)

DATA, VOICE, SMS = ServiceKey(10), ServiceKey(30), ServiceKey(40)
UNIT = {10: "total_octets", 30: "seconds", 40: "events"}
WHO = Actor("token:prop", "api", reason="property test")

session = st.tuples(
    st.sampled_from([DATA, VOICE]),
    st.lists(st.integers(0, 400_000), min_size=0, max_size=3),  # interim reports
    st.one_of(st.none(), st.integers(0, 400_000)),  # the final report, or left open
)
op = st.one_of(
    st.tuples(st.just("session"), st.integers(0, 2), session),
    st.tuples(st.just("update"), st.integers(0, 2), st.integers(0, 400_000)),
    st.tuples(st.just("terminate"), st.integers(0, 2), st.integers(0, 400_000)),
    st.tuples(st.just("debit"), st.integers(0, 50), st.integers(1, 5)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 5_000)),
    st.tuples(st.just("topup"), st.just(0), st.integers(1, 50_000)),
    st.tuples(st.just("adjust"), st.just(0), st.integers(-20_000, 20_000)),
    st.tuples(st.just("promo"), st.just(0), st.integers(1, 9_000)),
    st.tuples(st.just("expire"), st.just(0), st.just(0)),
    st.tuples(st.just("plan"), st.just(0), st.sampled_from(["basic", "night", "bundle"])),
    st.tuples(st.just("block"), st.just(0), st.sampled_from(["blocked", "active"])),
    st.tuples(st.just("mark"), st.just(0), st.just(0)),
)


async def now_ms(charging: ChargingService) -> int:
    sec, usec = await charging.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


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
    kind, slot, arg = action
    ref = SessionRef(f"{tag}-s{slot}", "prop-owner")
    svc = state["svc"].get(slot, DATA)

    def report(n: int) -> tuple[UsedUnits, ...]:
        return (UsedUnits(Usage(**{UNIT[svc.rating_group or 10]: n})),) if n else ()

    used = report(arg) if isinstance(arg, int) and not isinstance(arg, bool) else ()
    try:
        if kind == "session":
            svc, interim, final = arg
            state["svc"][slot] = svc
            await charging.initiate(ref, ident, [ServiceRequest(svc, Usage())])
            for n, u in enumerate(interim):
                rk = f"{step}.{n}"
                await charging.update(ref, rk, [ServiceRequest(svc, Usage(), report(u))])
            if final is not None:
                await charging.terminate(
                    ref, f"{step}.t", [ServiceRequest(svc, None, report(final))]
                )
        elif kind == "update":
            await charging.update(ref, str(step), [ServiceRequest(svc, Usage(), used)])
        elif kind == "terminate":
            await charging.terminate(ref, str(step), [ServiceRequest(svc, None, used)])
        elif kind == "debit":
            await charging.event(
                f"{tag}-e{slot}", ident, SMS, EventAction.DIRECT_DEBIT, Usage(events=arg)
            )
        elif kind == "refund":
            await charging.event(f"{tag}-r{slot}", ident, SMS, EventAction.REFUND, Usage(money=arg))
        elif kind == "topup":
            await accounts.credit(acct, BucketSpec(UnitType.MONEY, 0), arg, actor=WHO)
        elif kind == "adjust" and arg:
            await accounts.credit(
                acct, BucketSpec(UnitType.MONEY, 0), arg, NotificationKind.ADJUST, actor=WHO
            )
        elif kind == "promo":
            spec = BucketSpec(UnitType.MONEY, 0, bucket_id="promo", expires=2**31, priority=1)
            await accounts.credit(acct, spec, arg, actor=WHO)
        elif kind == "expire":
            await accounts.expire_bucket(acct, "promo", 0, actor=WHO)
        elif kind == "plan":
            await accounts.assign_plan(acct, arg, "EUR", actor=WHO)
        elif kind == "block":
            await accounts.set_status(acct, arg, actor=WHO)
        elif kind == "mark":
            state["marks"].append(await now_ms(charging))
    except (ChargingError, AccountError):
        pass  # refusals (no session, below the floor, no promo bucket, blocked) change nothing


def booked(view: dict[str, Any]) -> tuple[int, int]:
    """(money in the buckets, charged so far by the open sessions), from the account view."""
    money = sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")
    pending = sum(svc["charged"] for s in view["sessions"] for svc in s["services"].values())
    return money, pending


def balances(st_: statement.Statement) -> None:
    assert st_.opening + sum(ln.change for ln in st_.lines) == st_.closing


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    money=st.integers(0, 100_000),
    ops=st.lists(op, min_size=1, max_size=14),
)
async def test_statement_balances_exactly(
    charging: ChargingService, accounts: Accounts, money: int, ops: list[tuple[Any, ...]]
) -> None:
    """opening 0 + changes = closing = booked money, split or whole, sessions open or closed."""
    tag = uuid.uuid4().hex
    ident = Identity(IdentityType.IMSI, tag)
    start = await now_ms(charging)
    acct = await accounts.create(
        [ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, money, floor=-2_000)], actor=WHO
    )
    state: dict[str, Any] = {"svc": {}, "marks": []}
    for step, action in enumerate(ops):
        await run_op(charging, accounts, acct, ident, tag, step + 1, action, state)
    end = await now_ms(charging)
    parts = accounts.redis, accounts.partitions, acct
    whole = await statement.build(*parts, start, end)
    balances(whole)
    assert whole.opening == 0
    money_now, pending = booked(await accounts.show(acct))
    assert whole.closing == money_now + pending and whole.pending == pending
    for mark in state["marks"]:
        first = await statement.build(*parts, start, mark)
        second = await statement.build(*parts, mark + 1, max(end, mark + 1))
        balances(first)
        balances(second)
        assert first.closing == second.opening and first.opening == 0
        assert len(first.lines) + len(second.lines) == len(whole.lines)
    for slot in range(3):  # every session closed: nothing pending any more
        with contextlib.suppress(ChargingError):
            await charging.terminate(SessionRef(f"{tag}-s{slot}", "prop-owner"), "final", [])
    closed = await statement.build(*parts, start, await now_ms(charging))
    balances(closed)
    money_now, pending = booked(await accounts.show(acct))
    assert pending == 0 and closed.pending == 0
    assert closed.opening == 0 and closed.closing == money_now
