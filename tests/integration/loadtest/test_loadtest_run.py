"""The load tester end to end: `ocs serve` in a subprocess on the suite's Redis, a short
Gy run and a short RADIUS run from real generator processes, the report files written,
and the conservation check passing (balances fall by exactly what the records say).
Speed is not asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.runner import Provisioning, RunOptions, run
from loadtest.serverproc import SECRET, OcsServer, start_ocs
from loadtest.spec import LoadSpec, Model, Protocol, Shape, Target
from ocs.policy.loader import load_policies

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def ocs_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcsServer]:
    server = start_ocs(tmp_path_factory.mktemp("ocs"), redis_url, POLICIES)
    yield server
    server.stop()


def _options(redis_url: str, spec: LoadSpec, out: Path) -> RunOptions:
    return RunOptions(
        spec, redis_url, load_policies(POLICIES), Provisioning(accounts=10), out_dir=out, quiet=True
    )


@pytest.mark.timeout(60)
def test_gy_run_reports_and_conserves(
    ocs_server: OcsServer, redis_url: str, tmp_path: Path
) -> None:
    """Closed-model Gy run (2 MSCC, events, 2 processes): every session terminated, report written, conservation exact."""
    spec = LoadSpec(
        protocol=Protocol.GY,
        target=Target(port=ocs_server.diameter_port, destination_realm="bench.example"),
        model=Model.CLOSED,
        concurrency=8,
        duration=1.5,
        processes=2,
        connections=2,
        shape=Shape(updates=2, min_mscc=1, max_mscc=2, event_share=0.2),
    )
    summary = run(_options(redis_url, spec, tmp_path))
    assert summary["answered"] > 0
    assert summary["failed_answers"] == 0
    assert set(summary["by_command"]) >= {"CCR-I", "CCR-U", "CCR-T", "CCR-E"}
    cons = summary["conservation"]
    assert cons["ok"], cons
    assert cons["records"] > 0 and cons["money_decrease"] > 0
    assert cons["money_decrease"] == cons["money_recorded"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["answered"] == summary["answered"]
    assert "<svg" in (tmp_path / "report.html").read_text()


@pytest.mark.timeout(60)
def test_radius_open_model_run_conserves(
    ocs_server: OcsServer, redis_url: str, tmp_path: Path
) -> None:
    """Open-model RADIUS Start/Interim/Stop run with a session-count bound: conservation exact."""
    spec = LoadSpec(
        protocol=Protocol.RADIUS,
        target=Target(port=ocs_server.radius_port, secret=SECRET.encode()),
        model=Model.OPEN,
        rate=200,
        duration=5.0,
        sessions=30,
        connections=2,
        shape=Shape(updates=2),
    )
    summary = run(_options(redis_url, spec, tmp_path))
    assert summary["sessions"]["started"] == 30
    assert summary["by_command"]["Acct-Stop"]["count"] == summary["sessions"]["completed"]
    assert summary["conservation"]["ok"], summary["conservation"]
    assert (tmp_path / "report.html").exists()


@pytest.mark.timeout(60)
def test_conservation_detects_a_debit_without_record(redis_url: str) -> None:
    """A balance changed outside the charging scripts (no record) makes the check fail."""
    import asyncio

    from loadtest import conservation, provision
    from ocs.accounts import Accounts
    from ocs.store.client import connect

    async def go() -> conservation.Conservation:
        client = connect(redis_url)
        try:
            accounts = await Accounts.connect(client)
            subs = await provision.create_subscribers(accounts, 2, "prepaid", "EUR", 1_000_000)
            ids = [s.account_id for s in subs]
            before = await provision.balances(accounts, ids)
            from ocs.accounts import BucketSpec
            from ocs.vocabulary.types import UnitType

            # An administrative adjustment writes no charged record: not conserved.
            await accounts.credit(ids[0], BucketSpec(UnitType.MONEY, 0), -1)
            after = await provision.balances(accounts, ids)
            return conservation.compare(before, after, [])
        finally:
            await client.aclose()

    result = asyncio.run(go())
    assert not result.ok
    assert result.mismatches[0]["decrease"] == 1 and result.mismatches[0]["recorded"] == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delete_after", [True, False])
def test_load_test_accounts_are_flagged_and_deleted_unless_kept(
    ocs_server: OcsServer, redis_url: str, tmp_path: Path, delete_after: bool
) -> None:
    """Accounts a run creates carry the test flag (the exporter leaves them out); deleted at
    the end (ocs loadtest's default), active with --keep-accounts (delete_after False)."""
    import secrets

    import redis as sync_redis

    from ocs.store.keys import AccountKeys, identity_index

    digits = f"{secrets.randbelow(100_000):05d}"
    spec = LoadSpec(
        protocol=Protocol.GY,
        target=Target(port=ocs_server.diameter_port, destination_realm="bench.example"),
        model=Model.CLOSED,
        concurrency=2,
        duration=0.5,
        processes=1,
        connections=1,
        shape=Shape(updates=1),
    )
    prov = Provisioning(accounts=3, run_digits=digits, delete_after=delete_after)
    run(RunOptions(spec, redis_url, load_policies(POLICIES), prov, out_dir=tmp_path, quiet=True))
    client = sync_redis.Redis.from_url(redis_url)
    partitions = int(client.get("ocs:meta:partitions") or 16)
    for i in range(3):
        keys = AccountKeys(f"lt{digits}x{i:08d}", partitions)
        assert client.hget(keys.account, "test") == b"1"
        status = client.hget(keys.account, "status")
        index = client.get(identity_index(f"e164:99{digits}{i:08d}"))
        if delete_after:
            assert status == b"deleted" and index is None
        else:
            assert status == b"active" and index is not None
    client.close()
