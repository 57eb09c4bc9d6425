"""The hot path on a Redis / Valkey Cluster: one pipelined connection per primary.

The commands of one event-loop pass (:mod:`ocs.store.batch`) are routed by
slot (CRC16 of the key's hash tag: every script call's keys share its
partition's tag ``{pNN}``, an index write has its own) and split per
primary; each primary's share is written at once on its own
:class:`~ocs.store.pipe.RedisPipe`, and the replies are put back in the
order of the commands. So a request still costs one round trip on the
normal path (a CCR-U is one FCALL on one node; a CCR-I's index writes go to
their nodes in the same pass, in parallel).

The slot map is redis-py's (:class:`redis.asyncio.cluster.NodesManager` of
the cold-path client: CLUSTER SLOTS, node discovery), so the hot and cold
paths agree on it. Redirections (Redis Cluster specification, "Redirection
and resharding"):

- ``MOVED slot host:port``: the slot has a new owner (resharding done, or a
  failover): the map is updated for that slot and the command sent there,
  once more;
- ``ASK slot host:port``: the slot is being migrated and this key is at
  the target already: ``ASKING`` then the command, at the target, once;
- ``TRYAGAIN``: a multi-key command (a script) during a migration whose
  keys are split between the two nodes: sent again after a short pause,
  until the request's time-out;
- a lost connection (a primary died): the commands sent to it fail (the
  caller answers storage unavailable; every script is idempotent, so the
  gateway's retry is safe), and the whole map is read again in the
  background, then every few seconds while traffic flows, so the promoted
  replica is found.

With ``redis.durability: replica`` each primary's share ends with ``WAIT 1
<ms>`` on the same connection: its reply is the number of replicas that
have every write before it; when none does in time, the replies of that
share are replaced by a time-out (storage unavailable: Gy 3004), so no
request is answered before a replica holds its debit. WAIT holds the
connection: what is pipelined behind it waits too, so a primary without a
replica (one just promoted, its old primary not back yet) would make every
pass wait the whole time-out, one after the other. After a failed WAIT
(:class:`ReplicaGate`) the passes of the next ``replica_timeout`` seconds
are answered unavailable at once, unsent; then one pass tries again.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import Any

import structlog
from redis import exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from ocs.metrics import REDIS_CLUSTER_EVENTS
from ocs.store.pipe import RedisPipe

log = structlog.get_logger("ocs.store.cluster")

Command = tuple[Any, ...]

_SCRIPTS = frozenset({"FCALL", "FCALL_RO", "EVALSHA", "EVALSHA_RO", "EVAL", "EVAL_RO"})
_KEYLESS = frozenset({"WAIT", "PING", "ASKING", "TIME"})
_STREAM_READS = frozenset({"XREAD", "XREADGROUP"})
_PLAIN = _SCRIPTS | _KEYLESS | {"SET", "GET", "ZADD", "ZREM", "SADD", "SREM", "HGET", "DEL"}
REFRESH_EVERY = 5.0  # seconds between background reads of the slot map under traffic
REFRESH_MIN_GAP = 0.2  # never more often than this, however many connections fail
# MOVED / ASK followed per command and request. While a slot's new owner is
# being announced (CLUSTER SETSLOT NODE reaches the nodes one by one) two
# nodes may send a command back and forth: after the second redirection the
# next round waits a little for them to agree, within the request's time-out.
REDIRECTS = 6
SETTLE_PAUSE = 0.01
_ROUTES_KEPT = 100_000  # keys whose primary is kept (cleared when the map changes)


def command_key(command: Command) -> bytes | str | None:
    """The key a command is routed by (a script's first key), None when keyless."""
    name = command[0]
    if name not in _PLAIN:  # the hot path's names come as these str; others: normalise
        name = (name.decode() if isinstance(name, bytes) else str(name)).upper()
    if name in _SCRIPTS:
        return command[3] if int(command[2]) > 0 else None
    if name in _STREAM_READS:  # XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...
        for at, word in enumerate(command):
            if str(word).upper() == "STREAMS" and at + 1 < len(command):
                key = command[at + 1]
                return key if isinstance(key, bytes | str) else str(key)
        return None
    if name in _KEYLESS or len(command) < 2:
        return None
    key = command[1]
    return key if isinstance(key, bytes | str) else str(key)


def command_slot(command: Command) -> int | None:
    key = command_key(command)
    if key is None:
        return None
    return int(key_slot(key.encode() if isinstance(key, str) else key))


class WaitFailed(rexc.TimeoutError):
    """No replica acknowledged the writes of a batch within the time-out."""


def wait_command(timeout: float) -> Command:
    return ("WAIT", 1, max(1, int(timeout * 1000)))


def _acknowledged(reply: Any) -> bool:
    return isinstance(reply, int) and reply >= 1


def apply_wait(replies: list[Any], acknowledged: Any, timeout: float) -> list[Any]:
    """The replies of a batch, each success replaced by :class:`WaitFailed`
    unless a replica acknowledged (``acknowledged`` is WAIT's reply)."""
    if _acknowledged(acknowledged):
        return replies
    why = WaitFailed(f"no replica acknowledged within {timeout} s ({acknowledged!r})")
    return [r if isinstance(r, Exception) else why for r in replies]


class ReplicaGate:
    """Per node: no replica acknowledged lately, so do not send for a while."""

    __slots__ = ("_closed_until", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._closed_until: dict[str, float] = {}

    def closed(self, node: str) -> bool:
        return time.monotonic() < self._closed_until.get(node, 0.0)

    def failed(self, node: str) -> None:
        REDIS_CLUSTER_EVENTS.inc("replica_wait_failed")
        self._closed_until[node] = time.monotonic() + self.timeout

    def refusal(self) -> WaitFailed:
        return WaitFailed(f"no replica acknowledged within {self.timeout} s lately")


def _name(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _needs_redirect(reply: Any) -> bool:
    return isinstance(reply, rexc.AskError | rexc.TryAgainError)  # MovedError is an AskError


def _refresh_on(replies: list[Any], pipes: ClusterPipes) -> None:
    """A lost connection or a demoted node: read the slot map again (background)."""
    if any(isinstance(r, rexc.ConnectionError | rexc.ReadOnlyError) for r in replies):
        pipes.refresh_soon()


def _chain(
    task: asyncio.Task[list[Any]],
    result: asyncio.Future[list[Any]],
    tasks: set[asyncio.Task[Any]],
) -> None:
    tasks.discard(task)
    if result.done():
        return
    if task.cancelled():
        result.set_exception(rexc.ConnectionError("redis batch cancelled"))
    elif (exc := task.exception()) is not None:
        result.set_exception(exc)
    else:
        result.set_result(task.result())


class ClusterPipes:
    """Route and send batches of commands over one pipe per primary."""

    def __init__(
        self,
        client: RedisCluster,
        timeout: float,
        wait_replica: float | None = None,
        tls: Any = None,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.wait_replica = wait_replica  # WAIT's time-out in seconds, None: no WAIT
        self.gate = ReplicaGate(wait_replica) if wait_replica is not None else None
        self.tls = tls  # ocs.store.client.Tls for the pipes, or None
        self.pipes: dict[str, RedisPipe] = {}
        self._ready = False
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._route: dict[bytes | str, tuple[str, int]] = {}  # key -> its primary, kept made

    # -- routing -----------------------------------------------------------------

    async def _ensure_map(self) -> None:
        if not self._ready:
            await self.client.initialize()
            self._ready = True
            self._refreshed_at = time.monotonic()

    def node_for(self, command: Command) -> ClusterNode:
        slot = command_slot(command)
        manager = self.client.nodes_manager
        if slot is None:
            return manager.get_nodes_by_server_type("primary")[0]
        return manager.get_node_from_slot(slot)

    def pipe(self, host: str, port: int) -> RedisPipe:
        name = f"{host}:{port}"
        found = self.pipes.get(name)
        if found is None:
            kwargs = self.client.nodes_manager.connection_kwargs
            address: dict[str, Any] = {
                "host": host,
                "port": port,
                "username": kwargs.get("username"),
                "password": kwargs.get("password"),
                "socket_connect_timeout": self.timeout,
            }
            if self.tls is not None:
                address["ssl_context"] = self.tls.context()
            wait = wait_command(self.wait_replica) if self.wait_replica is not None else None
            found = self.pipes[name] = RedisPipe(address, self.timeout, wait=wait)
        return found

    # -- the batch ----------------------------------------------------------------

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Replies to ``commands`` in their order; a failed one is its exception."""
        await self._ensure_map()
        self._refresh_if_due()
        todo = [(i, *self._address(commands[i]), False) for i in range(len(commands))]
        done = await self._send_round(commands, todo)
        return await self._settle(commands, done)

    def send_now(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]] | None:
        """The common case without a coroutine: every share written now on its
        connected pipe; the future gets the replies (after any redirection is
        followed). None when a pipe is not connected yet or a gate is closed:
        the caller then awaits :meth:`execute`."""
        if not self._ready:
            return None
        self._refresh_if_due()
        shares: dict[tuple[str, int], list[int]] = {}
        route = self._route
        for i, command in enumerate(commands):
            key = command_key(command)
            address = route.get(key) if key is not None else None
            if address is None:
                address = self._address(command)
                if key is not None:
                    if len(route) > _ROUTES_KEPT:
                        route.clear()
                    route[key] = address
            found = shares.get(address)
            if found is None:
                shares[address] = [i]
            else:
                found.append(i)
        pipes = []
        for address, idx in shares.items():
            pipe = self.pipe(*address)
            if not pipe.ready or (self.gate is not None and self.gate.closed(_name(address))):
                return None
            pipes.append((address, pipe, idx))
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[Any]] = loop.create_future()
        replies: list[Any] = [None] * len(commands)
        left = [len(pipes)]

        def share_done(address: tuple[str, int], idx: list[int], fut: asyncio.Future[Any]) -> None:
            for i, reply in zip(idx, self._share_result(address, len(idx), fut), strict=True):
                replies[i] = reply
            left[0] -= 1
            if left[0] or result.done():
                return
            if not any(_needs_redirect(reply) for reply in replies):
                _refresh_on(replies, self)
                result.set_result(replies)
                return
            done = [((i, a[0], a[1], False), replies[i]) for a, _, idx_ in pipes for i in idx_]
            task = loop.create_task(self._settle(commands, done))
            self._tasks.add(task)
            task.add_done_callback(lambda t: _chain(t, result, self._tasks))

        for address, pipe, idx in pipes:
            wire: list[Command] = [commands[i] for i in idx]  # the pipe adds WAIT
            try:
                sent = pipe.send(wire)
            except (rexc.RedisError, OSError) as exc:
                sent = loop.create_future()
                sent.set_exception(exc)
            sent.add_done_callback(functools.partial(share_done, address, idx))
        return result

    async def _settle(
        self,
        commands: Sequence[Command],
        done: list[tuple[tuple[int, str, int, bool], Any]],
    ) -> list[Any]:
        """Follow MOVED / ASK / TRYAGAIN for the replies that ask for it; the replies."""
        replies: list[Any] = [None] * len(commands)
        redirects = 0
        deadline = time.monotonic() + self.timeout
        while True:
            todo, redirected, again = [], False, False
            for (i, host, port, asking), reply in done:
                retry = self._redirect(reply, redirects)
                if retry is None or time.monotonic() > deadline:
                    replies[i] = reply
                    continue
                if isinstance(reply, rexc.MovedError):
                    REDIS_CLUSTER_EVENTS.inc("moved")
                    redirected = True
                    await self.client.nodes_manager.move_slot(reply)
                    self._route.clear()
                    host, port = self._address(commands[i])
                    asking = False
                elif isinstance(reply, rexc.AskError):
                    REDIS_CLUSTER_EVENTS.inc("ask")
                    redirected = True
                    host, port, asking = reply.host, reply.port, True
                else:  # TRYAGAIN: the same node, after a pause
                    REDIS_CLUSTER_EVENTS.inc("tryagain")
                    again = True
                todo.append((i, host, port, asking))
            if not todo:
                _refresh_on(replies, self)
                return replies
            if redirected:
                redirects += 1
            pause = 0.05 if again else SETTLE_PAUSE if redirects > 2 else 0.0
            if pause:
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            done = await self._send_round(commands, todo)

    def _address(self, command: Command) -> tuple[str, int]:
        node = self.node_for(command)
        return node.host, int(node.port)

    @staticmethod
    def _redirect(reply: Any, redirects: int) -> str | None:
        if isinstance(reply, rexc.AskError):  # MovedError is an AskError too
            return "moved" if redirects < REDIRECTS else None
        if isinstance(reply, rexc.TryAgainError):
            return "again"
        return None

    async def _send_round(
        self, commands: Sequence[Command], todo: list[tuple[int, str, int, bool]]
    ) -> list[tuple[tuple[int, str, int, bool], Any]]:
        """Send each node's share at once; (item, reply) for every item."""
        shares: dict[tuple[str, int], list[tuple[int, str, int, bool]]] = {}
        for item in todo:
            shares.setdefault((item[1], item[2]), []).append(item)
        results = await asyncio.gather(
            *(self._send_share(commands, addr, items) for addr, items in shares.items())
        )
        return [pair for share in results for pair in share]

    async def _send_share(
        self,
        commands: Sequence[Command],
        address: tuple[str, int],
        items: list[tuple[int, str, int, bool]],
    ) -> list[tuple[tuple[int, str, int, bool], Any]]:
        name = _name(address)
        if self.gate is not None and self.gate.closed(name):
            refused = self.gate.refusal()
            return [(item, refused) for item in items]
        wire: list[Command] = []
        at: list[int] = []  # where each item's reply is among the share's replies
        for i, _, _, asking in items:
            if asking:
                wire.append(("ASKING",))
            at.append(len(wire))
            wire.append(commands[i])
        pipe = self.pipe(*address)  # it adds WAIT after the share (durability replica)
        sent: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        try:
            sent.set_result(await (pipe.send(wire) if pipe.ready else pipe.execute(wire)))
        except (rexc.RedisError, OSError) as exc:
            sent.set_exception(exc)
        return self._share_replies(address, items, at, sent)

    def _share_replies(
        self,
        address: tuple[str, int],
        items: list[tuple[int, str, int, bool]],
        at: list[int],
        sent: asyncio.Future[list[Any]],
    ) -> list[tuple[tuple[int, str, int, bool], Any]]:
        """(item, reply) of one share sent with ASKING where asked (``at``: where
        each item's reply is)."""
        if sent.cancelled() or sent.exception() is not None:
            return list(zip(items, self._share_result(address, len(items), sent), strict=True))
        got = sent.result()
        picked: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        picked.set_result([got[k] for k in at] + ([got[-1]] if self.wait_replica else []))
        return list(zip(items, self._share_result(address, len(items), picked), strict=True))

    def _share_result(
        self, address: tuple[str, int], count: int, sent: asyncio.Future[Any]
    ) -> list[Any]:
        """The ``count`` replies of one share (its failure for each, if it failed),
        WAIT's verdict applied."""
        if sent.cancelled():
            return [rexc.ConnectionError("redis batch cancelled")] * count
        failure = sent.exception()
        if failure is not None:
            return [failure] * count
        got: list[Any] = sent.result()
        if self.wait_replica is None:
            return got
        if self.gate is not None and not _acknowledged(got[-1]):
            self.gate.failed(_name(address))
        return apply_wait(got[:-1], got[-1], self.wait_replica)

    # -- topology -------------------------------------------------------------------

    def refresh_soon(self) -> None:
        """Read the slot map again in the background (coalesced, rate-limited)."""
        if self._refresh is not None and not self._refresh.done():
            return
        if time.monotonic() - self._refreshed_at < REFRESH_MIN_GAP:
            return
        self._refreshed_at = time.monotonic()
        self._refresh = asyncio.ensure_future(self._do_refresh())

    def _refresh_if_due(self) -> None:
        if time.monotonic() - self._refreshed_at > REFRESH_EVERY:
            self.refresh_soon()

    async def _do_refresh(self) -> None:
        try:
            await self.client.nodes_manager.initialize()
        except (rexc.RedisError, rexc.RedisClusterException, OSError) as exc:
            log.warning("cluster_map_refresh_failed", error=repr(exc))
            return
        self._route.clear()
        live = {n.name for n in self.client.get_primaries()}
        for name in [n for n in self.pipes if n not in live]:
            self.pipes.pop(name).close()  # a node that is no longer a primary

    def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        for pipe in self.pipes.values():
            pipe.close()
        self.pipes.clear()
