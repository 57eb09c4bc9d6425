"""Redis unreachable: the configured Result-Code (3004), the connection stays; Redis back: the
client's retry is served and charged once (standards §1.6: 3004 is transient)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.policy.loader import PolicySet
from ocs.store.client import connect
from ocs.store.embedded import EmbeddedRedis, start_for_tests
from ocs.vocabulary.types import Identity, IdentityType, UnitType
from tests.integration.diameter.conftest import NewClient, StartServer
from tests.integration.diameter.gy_client import mscc, plain, rsu, usu


@pytest_asyncio.fixture(loop_scope="session")
async def private_redis(tmp_path: Path) -> AsyncIterator[list[EmbeddedRedis]]:
    """A Redis of our own that this test may stop (the restarted one is appended)."""
    servers = [start_for_tests(tmp_path / "redis")]
    yield servers
    for server in servers:
        server.stop()
        server.kill()


async def test_redis_down_3004_then_recovers_and_charges_once(
    private_redis: list[EmbeddedRedis],
    test_policies: PolicySet,
    start_server: StartServer,
    new_client: NewClient,
) -> None:
    """Redis stopped -> CCR-U answered 3004 (E bit), peer still open; Redis back -> the
    retry (a new End-to-End id, same CC-Request-Number) is served and debited once."""
    redis = private_redis[0]
    client = connect(redis.url, timeout=0.5)
    try:
        charging = await ChargingService.connect(client, test_policies)
        accounts = await Accounts.connect(client)
        ident = Identity(IdentityType.E164, "44" + str(uuid.uuid4().int)[:10])
        acct_id = await accounts.create(
            [ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, 10_000)]
        )
        server = await start_server(charging)
        gy = await new_client(server)
        s = f"gw;storage;{uuid.uuid4().hex}"
        assert (await gy.call(gy.ccr(s, 1, 0, ident.value, [mscc(10, rsu())]))).result_code == 2001
        update = gy.ccr(s, 2, 1, None, [mscc(10, rsu(), [usu(cc_total_octets=3_000)])])

        redis.stop()
        down = await gy.call(update)
        assert down.result_code == 3004 and plain(down.raw).header.is_error
        assert (await gy.dwr()).result_code == 2001  # the peer connection is kept

        restarted = EmbeddedRedis(redis.data_dir, port=redis.port)
        private_redis.append(restarted)
        restarted.start()
        codes = []
        for _ in range(3):  # the client's retries; the first may meet a stale pooled connection
            update.header.hop_by_hop_identifier = update.header.end_to_end_identifier = 0
            codes.append((await gy.call(update)).result_code)
            if codes[-1] == 2001:
                break
        assert codes[-1] == 2001, codes
        update.header.hop_by_hop_identifier = update.header.end_to_end_identifier = 0
        assert (await gy.call(update)).result_code == 2001  # one more retry: a replay
        view = await accounts.show(acct_id)
        assert sum(b["amount"] for b in view["buckets"] if b["unit"] == "money") == 10_000 - 30
    finally:
        await client.aclose()
