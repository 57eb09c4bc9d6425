"""kill -9 of a store primary under Gy load: a cluster primary, then Sentinel's primary.

The fault suite's gateway (tests/faults/crash_harness.py) drives ``ocs serve``
on the store; a primary is killed (SIGKILL) mid-load, its replica is promoted
(by the cluster, or by the sentinels), the killed node is started again (it
comes back as the new primary's replica), and the load goes on. The audit
then counts, per session, what the node acknowledged (2001) against what the
store holds: ``lost`` (acknowledged, not present), ``doubled`` (present twice,
or more than was sent), and the conservation identity over what survived.

- ``durability: replica``: an answer waits for ``WAIT 1``, so a promoted
  replica holds every acknowledged debit: lost 0. Until the promoted node
  has a replica again, its partitions answer 3004 (no replica to wait for).
- ``durability: local``: the primary answers once the write is its own;
  what it had not yet streamed to its replica when killed is lost. The test
  prints the count and asserts only no double charge and conservation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ocs.store.embedded import EmbeddedError
from ocs.store.local_cluster import LocalCluster, LocalSentinel, ServerNode, partition_slot, until
from tests.faults.crash_harness import Audit, Node, Run

DURABILITIES = ("replica", "local")


def _check(result: Audit, durability: str) -> None:
    if durability == "replica":
        assert result.lost == 0
    assert result.doubled == 0
    assert result.conservation_mismatches == 0 and result.reserved_left == 0


def _owner_or_none(cluster: LocalCluster, slot: int) -> ServerNode | None:
    try:
        return cluster.owner_of(slot)
    except EmbeddedError:
        return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("durability", DURABILITIES)
def test_kill9_cluster_primary_under_gy_load(tmp_path: Path, durability: str) -> None:
    """3 primaries + 3 replicas; kill -9 the primary of partition 0 mid-load: its replica
    takes over; replica durability loses nothing, local reports what it lost; none doubled."""
    slot = partition_slot(0)
    with (
        LocalCluster(tmp_path / "cluster", node_timeout_ms=1000) as cluster,
        Node(tmp_path / "node", external_store=cluster.url, durability=durability) as node,
    ):
        run = Run(node, subscribers=200, concurrency=32)
        run.begin()
        run.wait_answers(600)
        victim = cluster.owner_of(slot)
        victim.kill()
        until("replica promoted", lambda: _owner_or_none(cluster, slot) not in (None, victim), 60)
        run.wait_answers(300)
        cluster.restart(victim)
        cluster.wait_healthy()
        run.wait_answers(600)
        result = run.end(f"cluster: kill -9 of a primary, durability {durability}")
    _check(result, durability)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "durability", ["replica", pytest.param("local", marks=pytest.mark.slow)]
)  # local on Sentinel: make test-slow (the default suite stays under ~10 minutes)
def test_kill9_sentinel_primary_under_gy_load(tmp_path: Path, durability: str) -> None:
    """Primary + replica + 3 sentinels; kill -9 the primary mid-load: the sentinels promote
    the replica; replica durability loses nothing, local reports what it lost; none doubled."""
    with (
        LocalSentinel(tmp_path / "sentinel") as setup,
        Node(tmp_path / "node", external_store=setup.url, durability=durability) as node,
    ):
        run = Run(node, subscribers=200, concurrency=32)
        run.begin()
        run.wait_answers(600)
        victim = setup.current_primary()
        victim.kill()
        until("replica promoted", lambda: setup.current_primary() is not victim, 60)
        if durability == "local":
            run.wait_answers(300)  # served by the promoted replica alone
        setup.restart(victim)
        until("old primary back as a replica", lambda: _replica_in_sync(victim), 60)
        run.wait_answers(600)
        result = run.end(f"sentinel: kill -9 of the primary, durability {durability}")
    _check(result, durability)


def _replica_in_sync(node: ServerNode) -> bool:
    try:
        info = node.info("replication")
    except Exception:
        return False
    return info.get("role") == "slave" and info.get("master_link_status") == "up"
