"""``ocs store init`` / ``info``: the partition count chosen at install, and where it lives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocs.store.keys import AccountKeys, partition_of

ROOT = Path(__file__).parents[2]


def ocs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def fresh_store(tmp_path: Path) -> Path:
    """A configuration on an embedded store of its own (each command starts and stops it)."""
    config = tmp_path / "ocs.yaml"
    config.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n"
        f"policies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
    )
    return config


def test_init_records_the_count_and_accounts_are_spread_over_it(fresh_store: Path) -> None:
    """init --partitions 64 on a new store: recorded, and new accounts land in 64 partitions."""
    done = ocs("-c", str(fresh_store), "store", "init", "--partitions", "64")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "partitions: 64 (recorded)"
    again = ocs("-c", str(fresh_store), "store", "init", "--partitions", "64")
    assert again.stdout.strip() == "partitions: 64 (already recorded)"
    # An id whose partition is >= 16: placed by the recorded count, not the default.
    acct = next(f"acct{i}" for i in range(1000) if partition_of(f"acct{i}", 64) >= 16)
    made = ocs(
        "-c", str(fresh_store), "account", "create", "--id", acct, "-i", "e164:4470123",
        "--plan", "basic", "--money", "1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    shown = ocs("-c", str(fresh_store), "store", "info", "--json")
    assert json.loads(shown.stdout)["partitions"] == 64
    assert AccountKeys(acct, 64).partition >= 16


def test_another_count_later_is_refused_in_one_line(fresh_store: Path) -> None:
    """A store first used with the default 16 refuses init --partitions 32: one line, exit 2."""
    first = ocs("-c", str(fresh_store), "account", "list")
    assert first.returncode == 0, first.stderr
    refused = ocs("-c", str(fresh_store), "store", "init", "--partitions", "32")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "store init: this store already has 16 partitions" in refused.stderr
    assert "it cannot change to 32" in refused.stderr


@pytest.mark.parametrize("count", ["0", "12", "2048", "-4"])
def test_partition_count_must_be_a_power_of_two_up_to_1024(fresh_store: Path, count: str) -> None:
    """Bad --partitions values are refused before the store is touched."""
    refused = ocs("-c", str(fresh_store), "store", "init", "--partitions", count)
    assert refused.returncode == 2
    assert f"expected a power of two from 1 to 1024, got {count}" in refused.stderr
    assert not (fresh_store.parent / "redis").exists()


def test_info_names_the_primary_of_every_partition(store_url: str, store_kind: str) -> None:
    """On a cluster, store info lists each primary, its replica and its partitions;
    together they hold every partition exactly once."""
    shown = ocs("store", "info", "--json", env={"OCS_REDIS__URL": store_url})
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    if store_kind == "single":
        assert "primaries" not in info
        return
    assert info["store"].startswith("cluster 127.0.0.1:")
    held = sorted(p for node in info["primaries"] for p in node["partitions"])
    assert held == list(range(info["partitions"]))
    assert len(info["primaries"]) == 3
    assert all(len(node["replicas"]) == 1 for node in info["primaries"])
