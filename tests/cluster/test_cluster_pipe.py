"""The hot path on a cluster (ocs/store/cluster_pipe.py): one write per primary per pass,
MOVED / ASK / TRYAGAIN followed, WAIT for a replica (durability replica).

A small cluster of its own (2 primaries + 2 replicas): these tests move slots and stop
replicas, which the suite's shared cluster must not see.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from redis.crc import key_slot

from ocs.metrics import REDIS_CLUSTER_EVENTS
from ocs.store.batch import Batcher
from ocs.store.client import Store, connect, parse_url
from ocs.store.cluster_pipe import WaitFailed
from ocs.store.local_cluster import LocalCluster, ServerNode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    setup = LocalCluster(tmp_path_factory.mktemp("pipe-cluster"), primaries=2, replicas=1)
    setup.start()
    try:
        yield setup
    finally:
        setup.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client(cluster: LocalCluster) -> AsyncIterator[Store]:
    c = connect(cluster.url, timeout=2.0)
    yield c
    await c.aclose()


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


def keys_on_each_primary(cluster: LocalCluster, count: int = 10) -> dict[int, list[str]]:
    """``count`` fresh keys served by each primary (by its port)."""
    out: dict[int, list[str]] = {n.port: [] for n in cluster.nodes[: cluster.primaries]}
    while any(len(v) < count for v in out.values()):
        key = f"ocs:test:{{{uuid.uuid4().hex[:8]}}}:k"
        port = cluster.owner_of(slot_of(key)).port
        if len(out[port]) < count:
            out[port].append(key)
    return out


def event(name: str) -> int:
    return REDIS_CLUSTER_EVENTS.values.get((name,), 0)


async def test_one_write_per_primary_per_pass(cluster: LocalCluster, client: Store) -> None:
    """60 callers in one pass, keys on both primaries: each primary's pipe is written once,
    and every caller gets its own replies in order."""
    batcher = Batcher(client)
    assert batcher.cluster is not None
    by_node = keys_on_each_primary(cluster, 30)
    keys = [k for ks in by_node.values() for k in ks]
    await asyncio.gather(*(batcher.submit([("SET", k, "0")]) for k in keys))  # every pipe up
    sends: dict[str, int] = {}
    for name, pipe in batcher.cluster.pipes.items():
        original = pipe.send

        def counting(
            commands: Sequence[tuple[Any, ...]], _o: Any = original, _n: str = name
        ) -> Any:
            sends[_n] = sends.get(_n, 0) + 1
            return _o(commands)

        pipe.send = counting  # type: ignore[method-assign]
    replies = await asyncio.gather(
        *(batcher.submit([("INCRBY", k, n), ("GET", k)]) for n, k in enumerate(keys))
    )
    assert sends == {f"127.0.0.1:{port}": 1 for port in by_node}
    assert [r for r in replies] == [[n, str(n).encode()] for n in range(len(keys))]
    batcher.close()


async def test_moved_after_a_slot_moved_is_followed(cluster: LocalCluster, client: Store) -> None:
    """The slot of a key moves to the other primary: the next pass meets MOVED, follows it
    once and answers; the map then routes there directly."""
    batcher = Batcher(client)
    key = keys_on_each_primary(cluster, 1)[cluster.nodes[0].port][0]
    assert await batcher.submit([("SET", key, "before")]) == [b"OK"]
    moved = event("moved")
    await asyncio.to_thread(cluster.move_slot, slot_of(key), cluster.nodes[1])
    assert await batcher.submit([("GET", key)]) == [b"before"]
    assert event("moved") == moved + 1
    assert await batcher.submit([("SET", key, "after")]) == [b"OK"]
    assert event("moved") == moved + 1
    batcher.close()


def _migrating(cluster: LocalCluster, slot: int) -> tuple[ServerNode, ServerNode]:
    source = cluster.owner_of(slot)
    target = next(n for n in cluster.nodes[: cluster.primaries] if n is not source)
    target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.node_id(source))
    source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.node_id(target))
    return source, target


def _finish(cluster: LocalCluster, slot: int, target: ServerNode) -> None:
    for node in cluster.nodes[: cluster.primaries]:
        node.call("CLUSTER", "SETSLOT", slot, "NODE", cluster.node_id(target))


async def test_ask_during_a_migration_is_followed(cluster: LocalCluster, client: Store) -> None:
    """A key already migrated while its slot is still migrating: ASK, then ASKING + the
    command at the target answers it."""
    batcher = Batcher(client)
    tag = uuid.uuid4().hex[:8]
    key = f"ocs:test:{{{tag}}}:k"
    assert await batcher.submit([("SET", key, "here")]) == [b"OK"]
    source, target = _migrating(cluster, slot_of(key))
    try:
        source.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", key)
        asks = event("ask")
        assert await batcher.submit([("GET", key)]) == [b"here"]
        assert event("ask") == asks + 1
    finally:
        _finish(cluster, slot_of(key), target)
    batcher.close()


async def test_tryagain_waits_for_the_migration_to_finish(
    cluster: LocalCluster, client: Store
) -> None:
    """A script whose two keys are split between the nodes during a migration gets
    TRYAGAIN; it is sent again until the slot has moved, then answers."""
    batcher = Batcher(client)
    tag = uuid.uuid4().hex[:8]
    a, b = f"ocs:test:{{{tag}}}:a", f"ocs:test:{{{tag}}}:b"
    await batcher.submit([("SET", a, "1"), ("SET", b, "2")])
    source, target = _migrating(cluster, slot_of(a))
    source.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", a)
    script = "return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])"
    again = event("tryagain")
    later = threading.Timer(
        0.3,
        lambda: (
            source.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", b),
            _finish(cluster, slot_of(a), target),
        ),
    )
    later.start()
    try:
        assert await batcher.submit([("EVAL", script, 2, a, b)]) == [b"12"]
    finally:
        later.join()
    assert event("tryagain") > again
    batcher.close()


async def test_durability_replica_waits_for_one_and_fails_without(
    cluster: LocalCluster,
) -> None:
    """WAIT 1 after each primary's share: answered while the replica follows; with the
    replica stopped, that primary's callers get WaitFailed (the other primary's do not),
    and the next passes there are refused unsent until the gate reopens."""
    target = replace(parse_url(cluster.url), wait_replica=True, replica_timeout=0.3)
    client = connect(target, timeout=2.0)
    batcher = Batcher(client)
    assert batcher.cluster is not None and batcher.cluster.gate is not None
    by_node = keys_on_each_primary(cluster, 1)
    stopped_port, other_port = list(by_node)
    k_stopped, k_other = by_node[stopped_port][0], by_node[other_port][0]
    assert await batcher.submit([("SET", k_stopped, "1")]) == [b"OK"]
    replica = replica_of(cluster, stopped_port)
    assert replica.pid is not None
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        failed, fine = await asyncio.gather(
            batcher.submit([("SET", k_stopped, "2")]), batcher.submit([("SET", k_other, "2")])
        )
        assert isinstance(failed[0], WaitFailed) and fine == [b"OK"]
        refused = await batcher.submit([("SET", k_stopped, "3")])  # within the gate's window
        assert isinstance(refused[0], WaitFailed) and "lately" in str(refused[0])
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    await asyncio.sleep(0.4)  # the gate reopens; the replica caught up meanwhile
    assert await batcher.submit([("SET", k_stopped, "4")]) == [b"OK"]
    batcher.close()
    await client.aclose()


def replica_of(cluster: LocalCluster, primary_port: int) -> ServerNode:
    primary = next(n for n in cluster.nodes if n.port == primary_port)
    pid = cluster.node_id(primary)
    for node in cluster.nodes:
        if node is not primary and node.role() == "slave":
            info = node.info("replication")
            if int(info.get("master_port", 0)) == primary_port:
                return node
    raise AssertionError(f"no replica of {pid}")


async def test_durability_replica_on_a_server_without_replicas_answers_nothing(
    redis_url: str,
) -> None:
    """One server with no replica and durability replica: every call fails (never a
    silent success), and the pass after is refused unsent."""
    target = replace(parse_url(redis_url), wait_replica=True, replica_timeout=0.2)
    client = connect(target)
    batcher = Batcher(client)
    assert batcher.pipe is not None
    key = f"ocs:test:wait:{uuid.uuid4().hex}"
    first = await batcher.submit([("SET", key, "1")])
    assert isinstance(first[0], WaitFailed)
    second = await batcher.submit([("SET", key, "2")])
    assert isinstance(second[0], WaitFailed) and "lately" in str(second[0])
    batcher.close()
    await client.aclose()
