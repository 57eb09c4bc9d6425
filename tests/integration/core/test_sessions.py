"""Session paths of the charging API against a real Redis (standards §2.5-§2.6)."""

from __future__ import annotations

import asyncio

import pytest

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.store.keys import session_index, supervision_shard
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    FinalUnitAction,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TerminationCause,
    UnitType,
    Usage,
    UsedUnits,
)
from tests.core_fixtures import NewAccount, unique_session

DATA = ServiceKey(10)
VOICE = ServiceKey(30)


def ask(
    key: ServiceKey,
    want: Usage | None = None,
    used: int | None = None,
    unit: str = "total_octets",
    cumulative: bool = False,
) -> ServiceRequest:
    reports = () if used is None else (UsedUnits(Usage(**{unit: used}), cumulative=cumulative),)
    return ServiceRequest(key, want, reports)


async def money(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


async def records_of(charging: ChargingService, account_id: str) -> list:
    stream = charging.store.keys(account_id).records
    entries = await charging.redis.xrange(stream)
    recs = [decode_record(fields[b"r"]) for _, fields in entries]
    return [r for r in recs if r.account == account_id]


async def test_full_session_debits_exact_usage_and_writes_one_record(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-I reserves, CCR-U debits the USU and re-reserves, CCR-T debits and records."""
    acct = await new_account(money=1_000_000)
    s = SessionRef(unique_session(), owner="test:peer")
    a = await charging.initiate(s, acct.identity, [ask(DATA, Usage()), ask(VOICE, Usage())])
    assert [o.status for o in a.services] == [ServiceStatus.GRANTED] * 2
    assert a.services[0].granted == Usage(total_octets=10_000)
    assert a.services[0].validity_time == 600
    assert a.services[0].volume_threshold == 2_000
    assert a.services[1].granted == Usage(seconds=300)
    # reserved: data 10 blocks * 10 = 100; voice 600 + 240 * 10 = 3000
    assert await money(accounts, acct.account_id) == (1_000_000, 3_100)

    u = await charging.update(s, "1", [ask(DATA, Usage(), used=2_500)])
    assert u.services[0].charged == 30  # 3 started blocks of 1000 octets
    assert await money(accounts, acct.account_id) == (999_970, 3_100)

    t = await charging.terminate(
        s, "2", [ask(DATA, used=1_000), ask(VOICE, used=61, unit="seconds")]
    )
    assert [o.granted for o in t.services] == [None, None]
    # data cumulative 3500 -> 4 blocks = 40 (10 more); voice 600 + 10
    assert await money(accounts, acct.account_id) == (1_000_000 - 40 - 610, 0)
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.charged == 650 and rec.cause == "normal" and rec.kind == "session"
    assert rec.net + rec.tax == 650 and rec.tax_rate_ppm == 200_000
    by = {s.service: s for s in rec.services}
    assert by["10/"].used == {"total_octets": 3_500} and by["10/"].charged == 40
    assert by["30/"].used == {"seconds": 61} and by["30/"].charged == 610


async def test_replayed_requests_change_nothing(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """Same (session, request number) again: same answer, no second debit (standards §2.5 [T])."""
    acct = await new_account()
    s = SessionRef(unique_session())
    first_i = await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    again_i = await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    assert again_i.replayed and again_i.services == first_i.services
    first_u = await charging.update(s, "1", [ask(DATA, Usage(), used=5_000)])
    before = await money(accounts, acct.account_id)
    again_u = await charging.update(s, "1", [ask(DATA, Usage(), used=5_000)])
    assert again_u.replayed and again_u.services == first_u.services
    assert await money(accounts, acct.account_id) == before
    first_t = await charging.terminate(s, "2", [ask(DATA, used=10)])
    after = await money(accounts, acct.account_id)
    again_t = await charging.terminate(s, "2", [ask(DATA, used=10)])
    assert again_t.replayed and again_t.services == first_t.services
    assert await money(accounts, acct.account_id) == after
    assert len(await records_of(charging, acct.account_id)) == 1


async def test_out_of_order_updates_are_each_answered_and_charged_once(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """Pipelined CCR-Us arriving 2 before 1 are both answered (standards §2.5 [T])."""
    acct = await new_account()
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    u2 = await charging.update(s, "2", [ask(DATA, Usage(), used=1_000)])
    u1 = await charging.update(s, "1", [ask(DATA, Usage(), used=1_000)])
    assert u1.services[0].charged == 10 and u2.services[0].charged == 10
    assert (await money(accounts, acct.account_id))[0] == 1_000_000 - 20


async def test_concurrent_reserves_never_grant_more_than_the_balance(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """250 sessions at once on a balance worth 37 blocks: grants sum to at most 37 blocks."""
    acct = await new_account(money=375)  # 37 blocks of 1000 octets at 10 each
    sessions = [SessionRef(unique_session()) for _ in range(250)]
    answers = await asyncio.gather(
        *(
            charging.initiate(s, acct.identity, [ask(DATA, Usage(total_octets=1_000))])
            for s in sessions
        )
    )
    granted = sum(a.services[0].granted.total_octets or 0 for a in answers if a.services[0].granted)
    assert granted == 37_000
    limited = [a for a in answers if a.services[0].status is ServiceStatus.CREDIT_LIMIT_REACHED]
    assert len(limited) == 250 - 37
    amount, reserved = await money(accounts, acct.account_id)
    assert amount == 375 and reserved == 370


async def test_grant_limited_by_balance_carries_final_unit_indication(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """A grant the balance cuts short is the final one: FUI with the policy's action (RFC 4006 §5.6)."""
    acct = await new_account(money=55)
    s = SessionRef(unique_session())
    a = await charging.initiate(s, acct.identity, [ask(DATA, Usage()), ask(VOICE, Usage())])
    data, voice = a.services
    assert data.granted == Usage(total_octets=5_000)
    assert data.final_unit is not None and data.final_unit.action is FinalUnitAction.REDIRECT
    assert data.final_unit.redirect_url == "http://topup.test/"
    # the first voice minute costs 600: nothing is affordable after data took 50
    assert voice.status is ServiceStatus.CREDIT_LIMIT_REACHED and voice.granted is None


async def test_one_request_mixes_granted_and_credit_limit(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """Data paid by a data bundle is granted while voice hits the credit limit (4012 per MSCC)."""
    acct = await new_account(money=0, buckets=[BucketSpec(UnitType.TOTAL_OCTETS, 50_000)])
    a = await charging.initiate(
        SessionRef(unique_session()), acct.identity, [ask(DATA, Usage()), ask(VOICE, Usage())]
    )
    assert a.services[0].status is ServiceStatus.GRANTED
    assert a.services[0].granted == Usage(total_octets=10_000)
    assert a.services[1].status is ServiceStatus.CREDIT_LIMIT_REACHED


async def test_unknown_and_uncontrolled_services(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """Unknown RG -> rating failed (5031), portal -> not applicable (4011), others still granted."""
    acct = await new_account()
    a = await charging.initiate(
        SessionRef(unique_session()),
        acct.identity,
        [
            ask(ServiceKey(12345), Usage()),
            ask(ServiceKey(99), Usage()),
            ask(ServiceKey(50), Usage()),
            ask(DATA, Usage()),
        ],
    )
    assert [o.status for o in a.services] == [
        ServiceStatus.RATING_FAILED,
        ServiceStatus.NOT_APPLICABLE,
        ServiceStatus.RATING_FAILED,
        ServiceStatus.GRANTED,
    ]


async def test_command_level_request_uses_the_default_service(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """No rating group (Open5GS-shaped CCR) is charged as the policy's default service."""
    acct = await new_account()
    s = SessionRef(unique_session())
    a = await charging.initiate(s, acct.identity, [ask(ServiceKey(), Usage())])
    assert a.services[0].granted == Usage(total_octets=10_000)
    await charging.terminate(s, "1", [ask(ServiceKey(), used=1_000)])
    assert (await money(accounts, acct.account_id))[0] == 1_000_000 - 10


async def test_usage_above_the_grant_is_charged_and_shortfall_recorded(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A USU above its GSU is charged in full; what money cannot cover is a shortfall (standards §2.6)."""
    acct = await new_account(money=100)
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    t = await charging.terminate(s, "1", [ask(DATA, used=25_000)])  # costs 250
    assert t.services[0].charged == 100 and t.services[0].shortfall == 150
    assert await money(accounts, acct.account_id) == (0, 0)
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.charged == 100 and rec.shortfall == 150


async def test_overdraft_floor_allows_negative_balance_down_to_the_limit(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A money bucket with a negative floor is debited below zero, never below the floor."""
    acct = await new_account(
        money=0, buckets=[BucketSpec(UnitType.MONEY, 0, bucket_id="credit", floor=-200)]
    )
    s = SessionRef(unique_session())
    a = await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    assert a.services[0].granted == Usage(total_octets=10_000)
    t = await charging.terminate(s, "1", [ask(DATA, used=30_000)])
    assert t.services[0].charged == 200 and t.services[0].shortfall == 100
    view = await accounts.show(acct.account_id)
    assert [b["amount"] for b in view["buckets"] if b["id"] == "credit"] == [-200]


async def test_unit_buckets_consumed_by_priority_then_expiry_and_expired_never(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """Order: priority, then earliest expiry; an expired bucket is never used; then money."""
    now = 2_000_000_000
    acct = await new_account(
        money=1_000,
        buckets=[
            BucketSpec(
                UnitType.TOTAL_OCTETS, 1_000, bucket_id="late", expires=now + 900, priority=1
            ),
            BucketSpec(
                UnitType.TOTAL_OCTETS, 1_000, bucket_id="soon", expires=now + 100, priority=1
            ),
            BucketSpec(UnitType.TOTAL_OCTETS, 1_000, bucket_id="low", priority=5),
            BucketSpec(UnitType.TOTAL_OCTETS, 9_000, bucket_id="dead", expires=now - 1, priority=0),
            BucketSpec(UnitType.TOTAL_OCTETS, 9_000, bucket_id="video-only", rating_groups=(20,)),
        ],
    )
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ask(DATA, Usage())], now=now)
    await charging.terminate(s, "1", [ask(DATA, used=3_500)], now=now + 10)
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.services[0].from_buckets == {"soon": 1_000, "late": 1_000, "low": 1_000}
    assert rec.charged == 10  # the last 500 octets: one started block of money
    view = await accounts.show(acct.account_id)
    left = {b["id"]: b["amount"] for b in view["buckets"]}
    assert left.get("video-only") == 9_000 and "dead" not in left


async def test_update_for_unknown_session_fails(charging: ChargingService) -> None:
    """CCR-U before CCR-I -> UNKNOWN_SESSION (standards §2.9)."""
    with pytest.raises(errors.UnknownSession):
        await charging.update(SessionRef(unique_session()), "1", [ask(DATA, Usage(), used=1)])
    with pytest.raises(errors.UnknownSession):
        await charging.terminate(SessionRef(unique_session()), "1", [ask(DATA, used=1)])


async def test_stop_without_start_is_charged_and_recorded(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A terminate naming its subscriber for an unknown session charges and records (standards §3.4)."""
    acct = await new_account()
    s = SessionRef(unique_session(), owner="radius:127.0.0.1")
    await charging.terminate(
        s, "stop", [ask(DATA, used=2_000, cumulative=True)], subscriber=acct.identity
    )
    assert (await money(accounts, acct.account_id))[0] == 1_000_000 - 20
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.services[0].used == {"total_octets": 2_000}


def totals(octets: int, seconds: int) -> ServiceRequest:
    """A RADIUS-style report: cumulative octets and session time."""
    return ServiceRequest(
        DATA, Usage(), (UsedUnits(Usage(total_octets=octets, seconds=seconds), cumulative=True),)
    )


async def test_cumulative_counters_charge_deltas_and_a_lower_total_starts_an_epoch(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """RADIUS-style totals: charge the difference; a counter going down while time goes
    on (a wrap without Gigawords) starts an epoch, never a credit (standards §3.4)."""
    acct = await new_account()
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    u1 = await charging.update(s, "a", [totals(3_000, 60)])
    u2 = await charging.update(s, "b", [totals(5_000, 120)])
    u3 = await charging.update(s, "c", [totals(1_000, 180)])
    assert [u.services[0].charged for u in (u1, u2, u3)] == [30, 20, 10]
    await charging.terminate(s, "d", [totals(1_000, 200)])
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.services[0].used == {"total_octets": 6_000, "seconds": 200}
    assert rec.charged == 60


async def test_an_older_record_with_lower_totals_charges_nothing(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """An Interim delayed past a newer one (every total at or below the counted ones):
    charged nothing, counters kept, so the next report charges only its difference."""
    acct = await new_account()
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    await charging.update(s, "a", [totals(5_000, 120)])
    late = await charging.update(s, "b", [totals(3_000, 60)])
    assert late.services[0].charged == 0 and not late.replayed
    assert (await money(accounts, acct.account_id))[0] == 1_000_000 - 50
    nxt = await charging.update(s, "c", [totals(6_000, 180)])
    assert nxt.services[0].charged == 10
    await charging.terminate(s, "d", [totals(6_000, 200)])
    (rec,) = await records_of(charging, acct.account_id)
    assert rec.services[0].used == {"total_octets": 6_000, "seconds": 200}
    assert rec.charged == 60


async def test_blocked_account_cannot_start_and_live_session_is_denied_but_debited(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """Blocked: CCR-I fails with nothing reserved; a CCR-U still pays its USU (standards §2.8 4010)."""
    acct = await new_account()
    s = SessionRef(unique_session())
    await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    await accounts.set_status(acct.account_id, "blocked")
    with pytest.raises(errors.AccountBlocked):
        await charging.initiate(SessionRef(unique_session()), acct.identity, [ask(DATA, Usage())])
    u = await charging.update(s, "1", [ask(DATA, Usage(), used=1_000)])
    assert u.services[0].status is ServiceStatus.SERVICE_DENIED and u.services[0].granted is None
    assert await money(accounts, acct.account_id) == (1_000_000 - 10, 0)


async def test_unknown_subscriber(charging: ChargingService) -> None:
    """An identity no account has -> USER_UNKNOWN (Gy 5030)."""
    from ocs.vocabulary.types import Identity, IdentityType

    with pytest.raises(errors.UserUnknown):
        await charging.initiate(
            SessionRef(unique_session()), Identity(IdentityType.IMSI, "0000"), [ask(DATA, Usage())]
        )


async def test_free_plan_grants_without_charge(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A free tariff grants the default quota on a zero balance and charges nothing."""
    acct = await new_account(money=0, plan="free")
    s = SessionRef(unique_session())
    a = await charging.initiate(s, acct.identity, [ask(DATA, Usage())])
    assert a.services[0].granted == Usage(total_octets=10_000)
    t = await charging.terminate(s, "1", [ask(DATA, used=50_000)])
    assert t.services[0].charged == 0 and t.services[0].shortfall == 0


async def test_peer_restart_closes_its_sessions(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """terminate_owner_sessions releases reservations and records cause peer_restart."""
    acct = await new_account()
    owner = "diameter:" + unique_session()
    for _ in range(3):
        await charging.initiate(
            SessionRef(unique_session(), owner=owner), acct.identity, [ask(DATA, Usage())]
        )
    assert (await money(accounts, acct.account_id))[1] == 300
    assert await charging.terminate_owner_sessions(owner, TerminationCause.PEER_RESTART) == 3
    assert await money(accounts, acct.account_id) == (1_000_000, 0)
    recs = await records_of(charging, acct.account_id)
    assert sorted(r.cause for r in recs) == ["peer_restart"] * 3
    assert await charging.terminate_owner_sessions(owner, TerminationCause.PEER_RESTART) == 0


async def test_session_that_moved_to_another_peer_survives_the_old_peers_restart(
    charging: ChargingService, accounts: Accounts, new_account: NewAccount
) -> None:
    """A session continued through peer B is not closed when peer A (its first owner) restarts."""
    acct = await new_account()
    sid = unique_session()
    a_owner, b_owner = "diameter:a-" + sid, "diameter:b-" + sid
    await charging.initiate(SessionRef(sid, owner=a_owner), acct.identity, [ask(DATA, Usage())])
    await charging.update(
        SessionRef(sid, owner=b_owner, attributes=(("ip", "10.0.0.9"),)),
        "1",
        [ask(DATA, Usage(), used=1_000)],
    )
    assert await charging.terminate_owner_sessions(a_owner, TerminationCause.PEER_RESTART) == 0
    (live,) = (await accounts.show(acct.account_id))["sessions"]
    assert live["owner"] == b_owner
    assert await charging.terminate_owner_sessions(b_owner, TerminationCause.PEER_RESTART) == 1


async def test_interims_of_a_known_session_send_only_the_script_call(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """An update naming its subscriber (RADIUS Interim) of a session this process
    opened is one command; the opening wrote the session's index entries."""
    acct = await new_account()
    s = SessionRef(unique_session(), owner="radius:10.0.0.1")
    await charging.update(s, "i1", [ask(DATA, Usage(), used=1, cumulative=True)], acct.identity)
    member = f"{acct.account_id}\0{s.session_id}"
    assert await charging.redis.get(session_index(s.session_id)) == acct.account_id.encode()
    assert await charging.redis.zscore(supervision_shard(acct.account_id), member) is not None
    sent: list[list[tuple[object, ...]]] = []
    submit = charging.store.submit

    async def recording(commands: list[tuple[object, ...]]) -> list[object]:
        sent.append(list(commands))
        return await submit(commands)

    charging.store.submit = recording  # type: ignore[method-assign]
    try:
        await charging.update(s, "i2", [ask(DATA, Usage(), used=2, cumulative=True)], acct.identity)
    finally:
        charging.store.submit = submit  # type: ignore[method-assign]
    assert [[c[0] for c in batch] for batch in sent] == [["FCALL"]]


async def test_reopened_session_gets_its_index_entries(
    charging: ChargingService, new_account: NewAccount
) -> None:
    """A session this process knew whose state is gone (expired) is opened again
    by a RADIUS-style update: its session index and supervision entry are written
    (else a silent NAS would hold the reservation for ever)."""
    acct = await new_account()
    s = SessionRef(unique_session(), owner="radius:10.0.0.2")
    await charging.update(s, "i1", [ask(DATA, Usage(), used=1, cumulative=True)], acct.identity)
    keys = charging.store.keys(acct.account_id)
    member = f"{acct.account_id}\0{s.session_id}"
    await charging.redis.delete(keys.session(s.session_id), session_index(s.session_id))
    await charging.redis.zrem(supervision_shard(acct.account_id), member)
    again = await charging.update(
        s, "i2", [ask(DATA, Usage(), used=5, cumulative=True)], acct.identity
    )
    assert again.services[0].status is ServiceStatus.GRANTED
    assert await charging.redis.get(session_index(s.session_id)) == acct.account_id.encode()
    assert await charging.redis.zscore(supervision_shard(acct.account_id), member) is not None
