"""Answer only after the charge is stored (standards §3.4): with Redis down the NAS gets
no Accounting-Response; after Redis is back its retry is charged exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.policy.loader import PolicySet
from ocs.store.client import connect
from ocs.store.embedded import EmbeddedRedis, start_for_tests
from ocs.vocabulary.types import Identity, IdentityType, UnitType
from protocols.radius import metrics as m
from protocols.radius.frontend import RadiusFrontend
from tests.integration.radius.conftest import Server, acct_session, radius_config
from tests.integration.radius.radius_harness import Nas
from tests.integration.radius.test_radius_accounting import acct, money


@pytest_asyncio.fixture(loop_scope="session")
async def private_redis(tmp_path: Path) -> AsyncIterator[list[EmbeddedRedis]]:
    """A Redis of our own, so this test can stop it without touching the suite's; the
    test appends the restarted server so that it is stopped too."""
    servers = [start_for_tests(tmp_path / "redis")]
    yield servers
    for server in servers:
        server.stop()
        server.kill()


async def test_redis_down_means_no_answer_then_one_charge(
    private_redis: list[EmbeddedRedis],
    test_policies: PolicySet,
    nas: Nas,
    tmp_path: Path,
) -> None:
    """Redis stopped -> Interim unanswered; Redis restarted -> the NAS's retries charge once."""
    redis = private_redis[0]
    client = connect(redis.url, timeout=0.5)
    charging = await ChargingService.connect(client, test_policies)
    accounts = await Accounts.connect(client)
    ident = Identity(IdentityType.E164, "4412345")
    acct_id = await accounts.create([ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, 10_000)])
    fe = RadiusFrontend(radius_config(dae_port=9, dae={"enabled": False}))
    await fe.start(charging)
    try:
        server = Server(fe)
        sid = acct_session()
        start = acct(ident.value, sid, "Start", 1)
        assert await nas.send(bytes(start.RequestPacket()), server.acct) is not None
        interim = bytes(
            acct(ident.value, sid, "Interim-Update", 2, Acct_Input_Octets=3000).RequestPacket()
        )

        redis.stop()
        drops = m.DROPS.labels("nas1", "storage_unavailable")._value.get()
        assert await nas.send(interim, server.acct, within=3.0) is None
        assert m.DROPS.labels("nas1", "storage_unavailable")._value.get() == drops + 1

        restarted = EmbeddedRedis(redis.data_dir, port=redis.port)
        private_redis.append(restarted)
        restarted.start()
        # The NAS retransmits (same Identifier and Authenticator) until it is answered;
        # the first attempt may meet a pooled connection to the old server.
        answers = [await nas.send(interim, server.acct, within=3.0) for _ in range(3)]
        assert any(a is not None for a in answers)
        resent = acct(
            ident.value, sid, "Interim-Update", 3, Acct_Input_Octets=3000, Acct_Delay_Time=4
        )  # the NAS's later retry, new Identifier
        assert await nas.send(bytes(resent.RequestPacket()), server.acct) is not None
        # Read the balance on a new client: the old pool still holds connections to
        # the stopped server (charging itself reconnected on its own pipe).
        fresh = connect(restarted.url)
        try:
            assert (await money(await Accounts.connect(fresh), acct_id))[0] == 10_000 - 30
        finally:
            await fresh.aclose()
    finally:
        await fe.stop(1.0)
        await client.aclose()
