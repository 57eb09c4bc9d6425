"""State written by layout 1 is refused with a message naming `ocs store migrate`, and after
the migration the same accounts and sessions go on: repeats answered, money conserved.

The layout-1 state is written by the layout-1 scripts themselves (a frozen copy of
ocs/store/lua as shipped before layout 2, in tests/integration/core/layout1/), on a
Redis of this test's own (the suite's is already marked layout 2).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.policy.loader import PolicySet
from ocs.store.client import connect
from ocs.store.embedded import EmbeddedRedis, start_for_tests
from ocs.store.keys import ACCOUNTS_INDEX, AccountKeys, identity_index, session_index
from ocs.store.layout import LAYOUT_KEY, StoreMigrationNeeded
from ocs.store.migrate import migrate
from ocs.vocabulary.types import (
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    Usage,
    UsedUnits,
)

LAYOUT1 = Path(__file__).parent / "layout1"
ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 16
ACCOUNT = "legacy-account-1"
IDENT = Identity(IdentityType.E164, "3360000000001")
OPEN, CLOSED = "legacy;open;1", "legacy;closed;1"
NOW = 1_800_000_000
DATA = ServiceKey(10)


def layout1(*parts: str) -> str:
    return "\n".join((LAYOUT1 / f"{p}.lua").read_text() for p in ("lib", *parts))


class Layout1:
    """The charging calls of the version before layout 2, as its api.py made them."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.keys = AccountKeys(ACCOUNT, PARTITIONS)

    async def create(self, money: int) -> None:
        await self.client.set(identity_index(IDENT.key()), ACCOUNT)
        await self.client.sadd(ACCOUNTS_INDEX, ACCOUNT)
        request = {
            "acct": ACCOUNT,
            "now": NOW,
            "currency": "EUR",
            "plan": "basic",
            "ids": [IDENT.key()],
            "buckets": [
                {
                    "id": "main",
                    "unit": "money",
                    "amt": money,
                    "res": 0,
                    "exp": 0,
                    "pri": 1_000_000,
                    "svc": [],
                    "floor": 0,
                }
            ],
        }
        k = self.keys
        keys = [k.account, f"{k.base}:bal", k.ids, k.ref("create"), k.audit]
        await self.client.eval(layout1("audit", "create"), len(keys), *keys, msgpack.packb(request))

    async def call(self, op: str, sid: str, rk: str, used: int, now: int) -> dict[str, Any]:
        k = self.keys
        if op == "initiate":  # the index writes the pipeline made beside the script
            await self.client.set(session_index(sid), ACCOUNT)
        base = k.session(sid)
        keys = [
            k.account,
            f"{k.base}:bal",
            k.ids,
            k.sessions,
            base,
            k.records,
            k.notifications,
            f"{base}:a",
            f"{base}:o",
        ]
        tariff = {"fu": 0, "fp": 0, "bu": 1000, "bp": 10_000, "r": 0, "free": 0}
        request = {
            "sid": sid,
            "rk": rk,
            "now": now,
            "acct": ACCOUNT,
            "ik": IDENT.key() if op == "initiate" else "",
            "plan": "basic",
            "ids": [IDENT.key()] if op != "update" else [],
            "owner": "legacy:peer",
            "attrs": [["nas", "10.0.0.1"]],
            "pv": "v-old",
            "sup": 3600,
            "svcs": [
                {
                    "k": DATA.key(),
                    "nm": "internet",
                    "rg": 10,
                    "sid": None,
                    "ru": "total_octets",
                    "want": -1 if op == "terminate" else 10_000,
                    "t": tariff,
                    "rep": [{"u": {"total_octets": used}, "cum": 0}] if used else [],
                }
            ],
            "cause": "normal",
            "create": 0,
            "tax": 0,
            "lowb": [],
        }
        raw = await self.client.eval(layout1("session_common", op), len(keys), *keys,
                                     msgpack.packb(request))  # fmt: skip
        body = raw[1:] if raw[:1] == b"R" else raw
        return msgpack.unpackb(body, raw=False)  # type: ignore[no-any-return]


@pytest.fixture
def legacy_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = start_for_tests(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
        server.kill()


@pytest_asyncio.fixture
async def legacy(legacy_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = connect(legacy_server.url)
    v1 = Layout1(client)
    await v1.create(1_000_000)
    await v1.call("initiate", OPEN, "0", 0, NOW)
    await v1.call("update", OPEN, "1", 3_000, NOW + 60)
    await v1.call("update", OPEN, "2", 2_500, NOW + 120)
    await v1.call("initiate", CLOSED, "0", 0, NOW)
    await v1.call("terminate", CLOSED, "1", 1_200, NOW + 30)
    yield client
    await client.aclose()


async def money(client: Redis) -> tuple[int, int]:
    view = await Accounts(client, PARTITIONS).show(ACCOUNT)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


def ask(used: int) -> list[ServiceRequest]:
    return [ServiceRequest(DATA, Usage(), (UsedUnits(Usage(total_octets=used)),))]


async def test_layout1_is_refused_naming_the_migration(
    legacy: Redis, test_policies: PolicySet
) -> None:
    """ocs serve (ChargingService.connect) and the CLI (Accounts.connect) refuse a layout-1 store."""
    for connect_to in (
        lambda: ChargingService.connect(legacy, test_policies),
        lambda: Accounts.connect(legacy),
    ):
        with pytest.raises(StoreMigrationNeeded, match="ocs store migrate"):
            await connect_to()
    # A request meeting layout-1 state (the store marked by a newer node too early)
    # is refused the same way, and changes nothing.
    await legacy.set(LAYOUT_KEY, 2)
    charging = await ChargingService.connect(legacy, test_policies)
    before = await legacy.get(f"{AccountKeys(ACCOUNT, PARTITIONS).base}:bal")
    with pytest.raises(StoreMigrationNeeded, match="ocs store migrate"):
        await charging.update(SessionRef(OPEN, owner="legacy:peer"), "3", ask(100))
    assert await legacy.get(f"{AccountKeys(ACCOUNT, PARTITIONS).base}:bal") == before
    charging.close()


async def test_after_migration_sessions_go_on_and_money_is_conserved(
    legacy: Redis, test_policies: PolicySet
) -> None:
    """Migrated: the last answer of each session is replayed, the open session is
    updated and terminated, and the money that left the balance is what the records say."""
    report = await migrate(legacy)
    assert (report.accounts, report.sessions, report.already) == (1, 2, 0)
    assert (await migrate(legacy)).already == 1  # a second run converts nothing
    charging = await ChargingService.connect(legacy, test_policies)
    start = NOW + 180
    charging.clock = lambda: start
    s = SessionRef(OPEN, owner="legacy:peer")
    again = await charging.update(s, "2", ask(2_500))
    assert again.replayed and again.services[0].granted == Usage(total_octets=10_000)
    closed_again = await charging.terminate(SessionRef(CLOSED), "1", ask(1_200))
    assert closed_again.replayed
    _, reserved = await money(legacy)
    assert reserved == 100_000  # the open session's grant: 10 blocks of 1,000 octets at 0.01
    a = await charging.update(s, "3", ask(4_000))
    assert not a.replayed and a.services[0].granted is not None
    await charging.terminate(s, "4", ask(500))
    final, left = await money(legacy)
    assert left == 0
    entries = await legacy.xrange(AccountKeys(ACCOUNT, PARTITIONS).records)
    records = [decode_record(f[b"r"]) for _, f in entries]
    assert sorted(r.session for r in records) == [CLOSED, OPEN]
    assert 1_000_000 - final == sum(r.charged for r in records)
    (open_record,) = [r for r in records if r.session == OPEN]
    assert open_record.services[0].used == {"total_octets": 3_000 + 2_500 + 4_000 + 500}
    assert open_record.identities == (IDENT.key(),) and open_record.policy_version == "v-old"
    charging.close()


def test_ocs_store_migrate_command(legacy_server: EmbeddedRedis, tmp_path: Path) -> None:
    """`ocs store migrate` converts the store and says how much; then the store is accepted."""
    import asyncio

    async def write() -> None:
        client = connect(legacy_server.url)
        v1 = Layout1(client)
        await v1.create(5_000)
        await v1.call("initiate", OPEN, "0", 0, int(time.time()))
        await client.aclose()

    asyncio.run(write())
    cfg = tmp_path / "ocs.yaml"
    policies = ROOT / "tests" / "policies"
    cfg.write_text(f"redis: {{url: '{legacy_server.url}'}}\npolicies: {{dir: '{policies}'}}\n")
    run = subprocess.run(
        [sys.executable, "-m", "ocs", "-c", str(cfg), "store", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "1 accounts and 1 sessions converted" in run.stdout
    show = subprocess.run(
        [sys.executable, "-m", "ocs", "-c", str(cfg), "account", "show", ACCOUNT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert show.returncode == 0, show.stderr
