"""Resharding under Gy load: partitions' slots move between primaries while charging runs.

Each move is the standard one (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE of
the slot's keys in batches, SETSLOT NODE), as ``valkey-cli --cluster reshard``
does, but aimed at the slots that hold data (a partition's hash tag): a
contiguous range of 16,384 slots would mostly move empty ones. During a move
the hot path meets ASK (key already at the target), TRYAGAIN (a script whose
keys are split between the nodes, or that creates a key) and, once it is done,
MOVED; afterwards every request must have been answered 2001 or 3004 (none
left without an answer), none charged twice, none acknowledged and lost, and
balances must equal the records.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from ocs.store.local_cluster import LocalCluster, partition_slot
from tests.faults.crash_harness import Node, Run


@pytest.mark.timeout(300)
def test_moving_partitions_between_primaries_under_gy_load(tmp_path: Path) -> None:
    """Eight partition slots move (each to the next primary) during a Gy run: every answer
    2001 or 3004, lost 0, doubled 0, conservation exact."""
    with (
        LocalCluster(tmp_path / "cluster", replicas=0) as cluster,
        Node(tmp_path / "node", external_store=cluster.url) as node,
    ):
        run = Run(node, subscribers=200, concurrency=32)
        load = run.begin()
        run.wait_answers(500)
        moved = 0
        for partition in range(8):
            slot = partition_slot(partition)
            primaries = cluster.nodes[: cluster.primaries]
            source = cluster.owner_of(slot)
            target = primaries[(primaries.index(source) + 1) % len(primaries)]
            moved += cluster.move_slot(slot, target, batch=5)
            assert cluster.owner_of(slot) is target
            run.wait_answers(100)
        run.wait_answers(300)
        followed = redirections(node.metrics_port)
        result = run.end(f"resharding: 8 partition slots, {moved} keys moved, {followed}")
    answers = dict(load.counts.answers)
    assert set(answers) <= {"2001", "3004"}, answers
    assert moved > 0
    assert followed.get("moved", 0) > 0  # the hot path met the moves and followed them
    assert result.lost == 0 and result.doubled == 0
    assert result.conservation_mismatches == 0 and result.reserved_left == 0


def redirections(port: int) -> dict[str, int]:
    """The node's ocs_redis_cluster_events_total by event (moved, ask, tryagain)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.findall(r'^ocs_redis_cluster_events_total\{event="(\w+)"\} (\d+)', text, re.M)
    return {event: int(float(n)) for event, n in found}
