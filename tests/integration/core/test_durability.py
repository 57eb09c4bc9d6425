"""Durability: with appendfsync always, a kill -9 of Redis loses no acknowledged debit.

A private server (the embedded launcher, in a temp dir) takes direct debits
as fast as they come; after N have been acknowledged it is killed with
SIGKILL mid-stream, restarted on the same data directory, and every
acknowledged debit and its record must be there, and the balance must equal
the opening balance minus exactly what the surviving records say.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.policy.loader import PolicySet
from ocs.store.client import connect
from ocs.store.embedded import EmbeddedRedis, start_for_tests
from ocs.vocabulary.errors import StorageUnavailable
from ocs.vocabulary.types import EventAction, Identity, IdentityType, ServiceKey, UnitType, Usage


async def test_acknowledged_debits_survive_kill_9(tmp_path: Path, test_policies: PolicySet) -> None:
    """kill -9 after N acknowledged debits: all N and their records are there after restart."""
    server = start_for_tests(tmp_path, appendfsync="always")
    client = connect(server.url, timeout=1.0)
    ident = Identity(IdentityType.E164, "1555000111")
    try:
        accounts = await Accounts.connect(client)
        acct = await accounts.create(
            [ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, 10_000_000)]
        )
        charging = await ChargingService.connect(client, test_policies)
        acknowledged: list[str] = []

        async def debit_forever(worker: int) -> None:
            n = 0
            while True:
                eid = f"w{worker}-{n}"
                await charging.event(
                    eid, ident, ServiceKey(40), EventAction.DIRECT_DEBIT, Usage(events=1)
                )
                acknowledged.append(eid)
                n += 1

        tasks = [asyncio.create_task(debit_forever(w)) for w in range(4)]
        while len(acknowledged) < 300:  # noqa: ASYNC110 - polls a list the tasks fill
            await asyncio.sleep(0.005)
        server.kill()  # SIGKILL while debits are in flight
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, StorageUnavailable) for r in results), results
    finally:
        await client.aclose()

    restarted = EmbeddedRedis(tmp_path, appendfsync="always", port=server.port)
    restarted.start()
    client = connect(restarted.url)
    try:
        accounts = await Accounts.connect(client)
        charging = await ChargingService.connect(client, test_policies)
        stream = charging.store.keys(acct).records
        records = [decode_record(f[b"r"]) for _, f in await client.xrange(stream)]
        recorded = {r.session for r in records}
        assert set(acknowledged) <= recorded  # nothing acknowledged was lost
        view = await accounts.show(acct)
        balance = view["buckets"][0]["amount"]
        assert balance == 10_000_000 - sum(r.charged for r in records)  # no debit without record
        assert len(records) == len(recorded)  # and no record twice
    finally:
        await client.aclose()
        with contextlib.suppress(Exception):
            restarted.stop()
        restarted.kill()
