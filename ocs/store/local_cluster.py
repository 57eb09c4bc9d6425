"""Local Valkey Cluster and Sentinel setups, for tests and for trying ocs on them.

The same binary as the embedded server (:func:`ocs.store.embedded.find_binary`)
runs every node, each with its own data directory, loopback port and AOF:

- :class:`LocalCluster`: ``primaries`` primaries with ``replicas`` replicas
  each (default 3 + 3), ``cluster-enabled yes``, created with the CLUSTER
  commands (ADDSLOTSRANGE, SET-CONFIG-EPOCH, MEET, REPLICATE), as
  ``valkey-cli --cluster create`` does, so no matching ``valkey-cli`` is
  needed. Slots are assigned so the partitions spread evenly: the slot of
  partition ``i`` (its hash tag ``{pNN}``, :mod:`ocs.store.keys`) goes to
  primary ``i mod primaries`` and the other slots in contiguous ranges, so
  every power-of-two partition count up to 1,024 puts the same number of
  partitions on each primary (contiguous ranges alone would put 4 of 16 on
  one primary and 7 on another). ``cluster-require-full-coverage no``: when
  a primary dies, the others keep serving their slots while its replica is
  promoted (``cluster-node-timeout`` later).
- :class:`LocalSentinel`: one primary, one replica and three sentinels
  (quorum 2), the setup of operators who run a primary/replica pair without
  Cluster.

Every process is tied to the thread that started it (``PR_SET_PDEATHSIG``,
:mod:`ocs.pdeathsig`) and runs in its own session: nothing outlives its
owner, and a Ctrl-C reaches the owner, which stops the nodes in order.
``url`` is what the rest of ocs is configured with
(``redis+cluster://...`` / ``redis+sentinel://.../master``, see
:mod:`ocs.store.client`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

from ocs.pdeathsig import die_with_parent
from ocs.store.embedded import EmbeddedError, find_binary
from ocs.store.keys import tag

SLOTS = 16384
MAX_PARTITIONS = 1024
SENTINEL_MASTER = "ocs"


def partition_slot(partition: int) -> int:
    """The Cluster slot of partition ``partition`` (CRC16 of its hash tag, mod 16384)."""
    return int(key_slot(f"ocs:{tag(partition)}:x".encode()))


def slot_plan(primaries: int) -> list[list[int]]:
    """The slots of each primary: partitions' slots round robin, the rest in ranges."""
    owner: dict[int, int] = {}
    for p in range(MAX_PARTITIONS):
        owner.setdefault(partition_slot(p), p % primaries)
    plan: list[list[int]] = [[] for _ in range(primaries)]
    for slot in range(SLOTS):
        plan[owner.get(slot, slot * primaries // SLOTS)].append(slot)
    return plan


def ranges(slots: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted slots as inclusive (first, last) ranges."""
    out: list[tuple[int, int]] = []
    for s in sorted(slots):
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback TCP ports: every socket is held until all are
    chosen (closing each at once lets the kernel hand the same port out again)."""
    held = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def _quote(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def until(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise EmbeddedError(f"{what}: not reached within {timeout} s")
        time.sleep(0.05)


@dataclass
class ServerNode:
    """One server process (a cluster node, a primary, a replica or a sentinel)."""

    name: str
    directory: Path
    port: int
    lines: list[str]
    sentinel: bool = False
    bus_port: int = 0  # cluster nodes: the cluster bus port
    username: str | None = None
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            "127.0.0.1",
            self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            username=None if self.sentinel else self.username,
            password=None if self.sentinel else self.password,
        )

    def call(self, *args: Any) -> Any:
        with contextlib.closing(self.client()) as c:
            return c.execute_command(*args)  # type: ignore[no-untyped-call]

    def info(self, section: str) -> dict[str, Any]:
        with contextlib.closing(self.client()) as c:
            return dict(c.info(section))

    def role(self) -> str:
        """master or slave (as INFO says)."""
        return str(self.info("replication").get("role"))

    def spawn(self, binary: str, tie_to_thread: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / ("sentinel.conf" if self.sentinel else "node.conf")
        if not (self.sentinel and conf.exists()):  # a sentinel rewrites its own file
            base = [
                f"port {self.port}",
                "bind 127.0.0.1",
                "protected-mode yes",
                f"dir {_quote(self.directory)}",
                "daemonize no",
                f"pidfile {_quote(self.directory / 'server.pid')}",
                f"logfile {_quote(self.directory / 'server.log')}",
            ]
            conf.write_text("\n".join(base + self.lines) + "\n")
        argv = [binary, str(conf), *(["--sentinel"] if self.sentinel else [])]
        preexec = die_with_parent(signal.SIGKILL) if tie_to_thread else None
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answers(self) -> bool:
        try:
            return bool(self.call("PING"))
        except (redis.RedisError, OSError):
            return False

    def wait_up(self, timeout: float) -> None:
        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise EmbeddedError(f"{self.name} exited: {self.log_tail()}")
            return self.answers()

        until(f"{self.name} on port {self.port}", up, timeout)

    def log_tail(self) -> str:
        path = self.directory / "server.log"
        if not path.exists():
            return "(no log)"
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])

    def kill(self) -> None:
        """SIGKILL (the failover tests' crash)."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def terminate(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait_gone(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def _auth_lines(username: str | None, password: str | None) -> list[str]:
    """ACL user (or requirepass) on every node, and what replicas log in with."""
    if password is None:
        return []
    if username is None:
        return [f"requirepass {_quote(password)}", f"masterauth {_quote(password)}"]
    return [
        f"user {username} on >{password} ~* &* +@all",
        "user default off",
        f"masteruser {username}",
        f"masterauth {_quote(password)}",
    ]


def _userinfo(username: str | None, password: str | None) -> str:
    if password is None:
        return ""
    return f"{username or ''}:{password}@"


@dataclass
class LocalCluster:
    """A Valkey Cluster on loopback: primaries, their replicas, one directory each."""

    directory: Path
    primaries: int = 3
    replicas: int = 1
    appendfsync: str = "everysec"
    node_timeout_ms: int = 2000
    binary: str | None = None
    username: str | None = None
    password: str | None = None
    nodes: list[ServerNode] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.directory / "cluster.json"

    @property
    def seeds(self) -> list[str]:
        return [n.address for n in self.nodes[: self.primaries]]

    @property
    def url(self) -> str:
        return f"redis+cluster://{_userinfo(self.username, self.password)}{','.join(self.seeds)}"

    def _plan_nodes(self) -> None:
        """Ports and directories: those recorded by an earlier run, else fresh ones."""
        recorded: dict[str, Any] = {}
        if self.state_file.exists():
            recorded = json.loads(self.state_file.read_text())
            self.primaries, self.replicas = recorded["primaries"], recorded["replicas"]
        total = self.primaries * (1 + self.replicas)
        fresh = free_ports(2 * total)
        ports = recorded.get("ports") or fresh[:total]
        buses = recorded.get("bus_ports") or fresh[total:]
        self.nodes = []
        for i in range(total):
            lines = [
                f"cluster-port {buses[i]}",
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-node-timeout {self.node_timeout_ms}",
                "cluster-require-full-coverage no",
                "appendonly yes",
                f"appendfsync {self.appendfsync}",
                'save ""',
                *_auth_lines(self.username, self.password),
            ]
            self.nodes.append(
                ServerNode(
                    f"node {i}",
                    self.directory / f"node-{i}",
                    ports[i],
                    lines,
                    bus_port=buses[i],
                    username=self.username,
                    password=self.password,
                )
            )
        if not recorded:
            self.directory.mkdir(parents=True, exist_ok=True)
            state = {
                "primaries": self.primaries,
                "replicas": self.replicas,
                "ports": ports,
                "bus_ports": buses,
            }
            self.state_file.write_text(json.dumps(state) + "\n")

    def start(self, timeout: float = 60.0, tie_to_thread: bool = True) -> LocalCluster:
        """Start every node; create the cluster unless an earlier run did.

        A new cluster whose free port was taken by another program between
        choosing it and binding it starts again once, on other ports.
        """
        for attempt in (1, 2):
            created = self.state_file.exists() and (self.directory / "node-0/nodes.conf").exists()
            try:
                self._start(created, timeout, tie_to_thread)
                return self
            except EmbeddedError as exc:
                if created or attempt == 2 or "Address already in use" not in str(exc):
                    raise
                shutil.rmtree(self.directory, ignore_errors=True)
        return self

    def _start(self, created: bool, timeout: float, tie_to_thread: bool) -> None:
        self._plan_nodes()
        binary = find_binary(self.binary)
        try:
            for node in self.nodes:
                node.spawn(binary, tie_to_thread)
            for node in self.nodes:
                node.wait_up(timeout)
            if not created:
                self._create(timeout)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _create(self, timeout: float) -> None:
        primaries = self.nodes[: self.primaries]
        for epoch, (node, slots) in enumerate(
            zip(primaries, slot_plan(self.primaries), strict=True), 1
        ):
            flat = [str(x) for r in ranges(slots) for x in r]
            node.call("CLUSTER", "ADDSLOTSRANGE", *flat)
            node.call("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        first = self.nodes[0]
        for node in self.nodes[1:]:  # its bus port: it is not port + 10000 here
            node.call("CLUSTER", "MEET", "127.0.0.1", first.port, first.bus_port)
        total = len(self.nodes)
        until(
            "every node knows every other",
            lambda: all(len(self._cluster_nodes(n)) == total for n in self.nodes),
            timeout,
        )
        ids = [self.node_id(n) for n in primaries]
        for i, node in enumerate(self.nodes[self.primaries :]):
            node.call("CLUSTER", "REPLICATE", ids[i % self.primaries])

    @staticmethod
    def _cluster_nodes(node: ServerNode) -> list[list[str]]:
        return [line.split() for line in str(node.call("CLUSTER", "NODES")).splitlines() if line]

    def node_id(self, node: ServerNode) -> str:
        return str(node.call("CLUSTER", "MYID"))

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every live node says ``cluster_state:ok``, agrees on the slots, replicas in sync."""
        until("cluster state ok on every node", self._healthy, timeout)

    def _healthy(self) -> bool:
        try:
            live = [n for n in self.nodes if n.alive()]
            views = set()
            for node in live:
                info = str(node.call("CLUSTER", "INFO"))
                if "cluster_state:ok" not in info:
                    return False
                views.add(self._slot_view(node))
                repl = node.info("replication")
                if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                    return False
            return len(views) == 1
        except (redis.RedisError, OSError):
            return False

    def _slot_view(self, node: ServerNode) -> tuple[tuple[int, int, int], ...]:
        """(first, last, port of its primary) of every assigned slot range, as ``node`` sees it."""
        out = []
        for fields in self._cluster_nodes(node):
            if "master" not in fields[2].split(","):
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for item in fields[8:]:
                if item.startswith("["):
                    continue  # a migration in progress, not an assignment
                first, _, last = item.partition("-")
                out.append((int(first), int(last or first), port))
        return tuple(sorted(out))

    def primary_nodes(self) -> list[ServerNode]:
        """The live nodes that are primaries now (after a failover: promoted replicas)."""
        out = []
        for node in self.nodes:
            if node.alive():
                with contextlib.suppress(redis.RedisError, OSError):
                    if node.role() == "master":
                        out.append(node)
        return out

    def owner_of(self, slot: int) -> ServerNode:
        """The primary serving ``slot`` now (as that primary itself says)."""
        for node in self.primary_nodes():
            for first, last, port in self._slot_view(node):
                if first <= slot <= last and port == node.port:
                    return node
        raise EmbeddedError(f"no primary serves slot {slot}")

    def move_slot(self, slot: int, target: ServerNode, batch: int = 20) -> int:
        """Reshard one slot to ``target`` while clients use it (the standard steps:
        SETSLOT IMPORTING/MIGRATING, MIGRATE its keys in batches, SETSLOT NODE
        everywhere). Returns how many keys moved."""
        source = self.owner_of(slot)
        if source is target:
            return 0
        src_id, dst_id = self.node_id(source), self.node_id(target)
        target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        moved = 0
        while keys := source.call("CLUSTER", "GETKEYSINSLOT", slot, batch):
            auth: list[Any] = []
            if self.password is not None:
                auth = (
                    ["AUTH2", self.username, self.password]
                    if self.username
                    else ["AUTH", self.password]
                )
            source.call(
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", *auth, "KEYS", *keys
            )
            moved += len(keys)
        for node in (target, source, *self.primary_nodes()):
            with contextlib.suppress(redis.RedisError):
                node.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        return moved

    def restart(self, node: ServerNode, timeout: float = 60.0) -> None:
        """Start a stopped (killed) node again on its data: it rejoins the cluster,
        as a replica of its replacement when it was a primary that failed over."""
        node.spawn(find_binary(self.binary))
        node.wait_up(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every node (replicas first: a primary then waits for none)."""
        for group in (self.nodes[self.primaries :], self.nodes[: self.primaries]):
            for node in group:
                node.terminate()
            for node in group:
                node.wait_gone(timeout)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class LocalSentinel:
    """One primary, one replica and three sentinels watching them (quorum 2)."""

    directory: Path
    appendfsync: str = "everysec"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 10000
    binary: str | None = None
    sentinels: int = 3
    master: str = SENTINEL_MASTER
    nodes: list[ServerNode] = field(default_factory=list)
    watchers: list[ServerNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(w.address for w in self.watchers)
        return f"redis+sentinel://{hosts}/{self.master}"

    def start(self, timeout: float = 60.0) -> LocalSentinel:
        binary = find_binary(self.binary)
        data = ["appendonly yes", f"appendfsync {self.appendfsync}", 'save ""']
        primary_port, replica_port, *sentinel_ports = free_ports(2 + self.sentinels)
        self.nodes = [
            ServerNode("primary", self.directory / "primary", primary_port, data),
            ServerNode(
                "replica",
                self.directory / "replica",
                replica_port,
                [*data, f"replicaof 127.0.0.1 {primary_port}"],
            ),
        ]
        self.watchers = [
            ServerNode(
                f"sentinel {i}",
                self.directory / f"sentinel-{i}",
                sentinel_ports[i],
                [
                    f"sentinel monitor {self.master} 127.0.0.1 {primary_port} 2",
                    f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
                    f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {self.master} 1",
                ],
                sentinel=True,
            )
            for i in range(self.sentinels)
        ]
        try:
            for node in (*self.nodes, *self.watchers):
                node.spawn(binary)
            for node in (*self.nodes, *self.watchers):
                node.wait_up(timeout)
            until("replica in sync and sentinels in agreement", self._ready, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        try:
            if self.nodes[1].info("replication").get("master_link_status") != "up":
                return False
            for w in self.watchers:
                state = self.master_state(w)
                if int(state["num-other-sentinels"]) < self.sentinels - 1:
                    return False
                if int(state["num-slaves"]) < 1:
                    return False
            return True
        except (redis.RedisError, OSError, KeyError):
            return False

    def master_state(self, watcher: ServerNode) -> dict[str, str]:
        flat = watcher.call("SENTINEL", "MASTER", self.master)
        if isinstance(flat, dict):
            return {str(k): str(v) for k, v in flat.items()}
        return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}

    def current_primary(self) -> ServerNode:
        """The node the sentinels name as primary now."""
        host, port = self.watchers[0].call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master)
        for node in self.nodes:
            if node.port == int(port):
                return node
        raise EmbeddedError(f"sentinels name {host}:{port}, not one of ours")

    def restart(self, node: ServerNode, timeout: float = 60.0) -> None:
        """Start a killed data node again: the sentinels make it a replica of the
        primary of the moment."""
        node.spawn(find_binary(self.binary))
        node.wait_up(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        for group in (self.watchers, self.nodes[1:], self.nodes[:1]):
            for node in group:
                node.terminate()
            for node in group:
                node.wait_gone(timeout)

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(setup: LocalCluster | LocalSentinel) -> Iterator[str]:
    """Start ``setup``, yield its URL, stop it afterwards."""
    setup.start()
    try:
        yield setup.url
    finally:
        setup.stop()


def partition_table(partitions: int, primaries: int) -> dict[int, list[int]]:
    """Which partitions :func:`slot_plan` puts on each primary (for the docs and tests)."""
    plan = slot_plan(primaries)
    where = {slot: i for i, slots in enumerate(plan) for slot in slots}
    out: dict[int, list[int]] = {i: [] for i in range(primaries)}
    for p in range(partitions):
        out[where[partition_slot(p)]].append(p)
    return out
