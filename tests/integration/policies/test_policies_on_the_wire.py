"""Policies seen from a gateway: Tariff-Time-Change over Gy, and a reload under load.

Uses the Diameter test server and python-diameter client of
tests/integration/diameter with a charging core whose clock the test sets
(the ``clock`` seam of ChargingService), so a session sits on either side
of a tariff switch without waiting for one.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from dataclasses import replace

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.policy.loader import PolicySet
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import (  # fixtures, used by name
    NewClient,
    StartServer,
    gy_server,
    new_client,
    start_server,
)
from tests.integration.diameter.gy_client import mscc, plain, rsu, usu

DATA = 10
_FIXTURES = (gy_server, new_client, start_server)
SWITCH = int(datetime.datetime(2026, 11, 25, 20, 0, tzinfo=datetime.UTC).timestamp())


def tariff_time_changes(data: bytes) -> list[int]:
    """Tariff-Time-Change (451) values inside every GSU (431) of every MSCC (456)."""
    out = []
    for avp in plain(data).avps:
        if avp.code != 456:
            continue
        for member in avp.value:
            if member.code == 431:
                out += [int(t.value.timestamp()) for t in member.value if t.code == 451]
    return out


def sid() -> str:
    return f"gw.test.example;{uuid.uuid4().hex}"


async def test_gy_session_across_a_tariff_switch(
    core_redis: object,
    test_policies: PolicySet,
    start_server: StartServer,
    new_client: NewClient,
    new_account: NewAccount,
    charging: ChargingService,
) -> None:
    """GSU carries Tariff-Time-Change; USUs tagged BEFORE/AFTER are charged at the two prices (§2.6 [T])."""
    clocked = ChargingService(charging.redis, test_policies, charging.partitions)
    server = await start_server(service=clocked)
    gy = await new_client(server=server)
    acct = await new_account(plan="night")
    s = sid()
    clocked.clock = lambda: SWITCH - 300  # 19:55 UTC, day price 10 per 1000 octets
    a = await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    (m,) = a.multiple_services_credit_control
    assert m.result_code == 2001
    assert tariff_time_changes(a.raw) == [SWITCH]
    clocked.clock = lambda: SWITCH + 300  # 20:05 UTC, night price 5
    used = [
        usu(cc_total_octets=3_000, tariff_change_usage=0),
        usu(cc_total_octets=4_000, tariff_change_usage=1),
    ]
    u = await gy.call(gy.ccr(s, 2, 1, None, [mscc(DATA, rsu(), used)]))
    assert u.result_code == 2001
    await gy.call(gy.ccr(s, 3, 2, None, [mscc(DATA, None, [])]))
    entries = await clocked.redis.xrange(clocked.store.keys(acct.account_id).records)
    (rec,) = [
        r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == acct.account_id
    ]
    assert rec.charged == 3 * 10 + 4 * 5


async def test_reload_under_load_loses_nothing_and_new_requests_use_the_new_tariff(
    test_policies: PolicySet,
    start_server: StartServer,
    new_client: NewClient,
    new_account: NewAccount,
    accounts: Accounts,
    charging: ChargingService,
) -> None:
    """Policies swapped while 40 Gy sessions run: every request answered, later ones at the new price."""
    live = ChargingService(charging.redis, test_policies, charging.partitions)
    server = await start_server(service=live)
    gy = await new_client(server=server)
    acct = await new_account(money=10_000_000)
    cheaper = (
        test_policies.tariffs["basic"]
        .prices["data"]
        .model_copy(
            update={
                "per": test_policies.tariffs["basic"]
                .prices["data"]
                .per.model_copy(update={"price": 1})
            }
        )
    )
    basic = test_policies.tariffs["basic"].model_copy(
        update={"prices": {**test_policies.tariffs["basic"].prices, "data": cheaper}}
    )
    new_set = replace(
        test_policies, tariffs={**test_policies.tariffs, "basic": basic}, version="reloaded"
    )

    async def session(n: int) -> list[int]:
        s = sid()
        codes = [
            (await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))).result_code
        ]
        for k in range(1, 4):
            if n == 20 and k == 1:
                live.policies = new_set  # the swap happens mid-traffic
            u = await gy.call(
                gy.ccr(s, 2, k, None, [mscc(DATA, rsu(), [usu(cc_total_octets=1_000)])])
            )
            codes.append(u.result_code)
        codes.append((await gy.call(gy.ccr(s, 3, 4, None, [mscc(DATA, None, [])]))).result_code)
        return codes

    results = await asyncio.gather(*(session(n) for n in range(40)))
    assert all(code == 2001 for codes in results for code in codes)
    entries = await live.redis.xrange(live.store.keys(acct.account_id).records)
    recs = [r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == acct.account_id]
    assert len(recs) == 40
    assert {r.policy_version for r in recs} <= {test_policies.version, "reloaded"}
    # after the swap, new sessions are rated at 1 per 1000 octets
    late = await session(99)
    assert all(c == 2001 for c in late)
    entries = await live.redis.xrange(live.store.keys(acct.account_id).records)
    last = [
        r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == acct.account_id
    ][-1]
    assert last.policy_version == "reloaded" and last.charged == 3
