"""Coalescing the Redis commands of one event-loop pass into one write.

Many requests are in flight at once (many Gy peers, many CCRs per peer). Each
charging call needs a few commands (index hints and one script call); sending
each call's commands on its own costs a write, a read and a Python round of
parsing per call. The batcher collects every call submitted during one pass
of the event loop and sends them all at once: one write and one read for the
pass, each caller getting back the replies of its own commands. The write
goes through :class:`~ocs.store.pipe.RedisPipe` (one pipelined connection,
hiredis both ways), on a cluster through
:class:`~ocs.store.cluster_pipe.ClusterPipes` (one such pipe per primary,
commands routed by slot), or, where no pipe can serve the connection,
through redis-py's pipeline. With ``redis.durability: replica`` the pass
ends with ``WAIT 1 <ms>`` (on a cluster, each primary's share does), and
no call of the pass is answered before a replica has its writes: if none
has them in time, each call gets a time-out (storage unavailable). A
``READONLY`` reply means the server was demoted (a failover): the pipe is
dropped so the next pass connects to the primary of the moment.
Scripts are called by SHA or as functions and loaded
once; a NOSCRIPT reply (Redis restarted or flushed its scripts) makes the
caller load them again and resubmit, which is safe because the script did
not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from ocs.store.client import Store, target_for
from ocs.store.cluster_pipe import ClusterPipes, ReplicaGate, apply_wait, wait_command
from ocs.store.pipe import RedisPipe

Command = tuple[Any, ...]
_Job = tuple[Sequence[Command], "asyncio.Future[list[Any]]"]


class Batcher:
    """Submit a list of commands; get their replies once the pass is flushed."""

    def __init__(self, client: Store, timeout: float | None = None) -> None:
        self.client = client
        target = target_for(client)
        # WAIT's time-out (seconds) when every pass must reach a replica.
        self.wait = target.replica_timeout if target is not None and target.wait_replica else None
        self.gate = ReplicaGate(self.wait) if self.wait is not None else None
        self.cluster: ClusterPipes | None = None
        self.pipe: RedisPipe | None = None
        if isinstance(client, RedisCluster):
            limit = timeout or float(client.connection_kwargs.get("socket_timeout") or 5.0)
            tls = target.tls if target is not None else None
            self.cluster = ClusterPipes(client, limit, self.wait, tls)
        else:
            wait = wait_command(self.wait) if self.wait is not None else None
            self.pipe = RedisPipe.for_client(client, wait)
        self._jobs: list[_Job] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, commands: Sequence[Command]) -> list[Any]:
        """Replies in order; a failing command's reply is its exception object."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        self._jobs.append((commands, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_pass)
        return await fut

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        if self.cluster is not None:
            self.cluster.close()

    def _flush_pass(self) -> None:
        self._scheduled = False
        jobs, self._jobs = self._jobs, []
        if self.gate is not None and self.cluster is None and self.gate.closed(""):
            refused = self.gate.refusal()  # no replica lately: see ClusterPipes
            _hand_out(jobs, [refused for commands, _ in jobs for _c in commands])
            return
        if self.cluster is not None:
            flat = [c for commands, _ in jobs for c in commands]
            sent = self.cluster.send_now(flat)  # routed and written now when connected
            if sent is not None:
                sent.add_done_callback(lambda done: _settled(jobs, done))
                return
        pipe = self.pipe
        if pipe is not None and pipe.ready:
            # The common case: written now, replies handed out as they arrive.
            try:
                replies = pipe.send(self._wire(jobs))
            except (rexc.RedisError, OSError) as exc:
                _fail(jobs, exc)
                return
            replies.add_done_callback(lambda done: self._distribute(jobs, done))
            return
        task = asyncio.ensure_future(self._send(jobs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wire(self, jobs: list[_Job]) -> list[Command]:
        """The pass's commands, then WAIT when the durability asks for a replica
        (the pipe adds it itself, see RedisPipe.send)."""
        flat = [c for commands, _ in jobs for c in commands]
        if self.wait is not None and self.pipe is None:
            flat.append(wait_command(self.wait))
        return flat

    def _checked(self, replies: list[Any]) -> list[Any]:
        """The pass's replies without WAIT's, failed when no replica acknowledged;
        a demoted server (READONLY) drops the pipe."""
        if self.wait is not None:
            if self.gate is not None and not (isinstance(replies[-1], int) and replies[-1] >= 1):
                self.gate.failed("")
            replies = apply_wait(replies[:-1], replies[-1], self.wait)
        if self.pipe is not None and any(isinstance(r, rexc.ReadOnlyError) for r in replies):
            self.pipe.close()
        return replies

    def _distribute(self, jobs: list[_Job], done: asyncio.Future[list[Any]]) -> None:
        if done.cancelled():
            _fail(jobs, rexc.ConnectionError("redis batch cancelled"))
            return
        exc = done.exception()
        if exc is not None:
            _fail(jobs, exc)
            return
        _hand_out(jobs, self._checked(done.result()))

    async def _send(self, jobs: list[_Job]) -> None:
        try:
            if self.cluster is not None:  # routed per primary (WAIT per share there)
                flat = [c for commands, _ in jobs for c in commands]
                _hand_out(jobs, await self.cluster.execute(flat))
                return
            if self.pipe is not None:  # not connected yet: connect, then send
                replies = await self.pipe.execute(self._wire(jobs))
            else:
                pipe = self.client.pipeline(transaction=False)
                for command in self._wire(jobs):
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except (rexc.RedisError, rexc.RedisClusterException, OSError) as exc:
            _fail(jobs, exc)
            return
        _hand_out(jobs, self._checked(replies))


def _fail(jobs: list[_Job], exc: BaseException) -> None:
    for _, fut in jobs:
        if not fut.done():
            fut.set_exception(exc)


def _settled(jobs: list[_Job], done: asyncio.Future[list[Any]]) -> None:
    if done.cancelled():
        _fail(jobs, rexc.ConnectionError("redis batch cancelled"))
    elif (exc := done.exception()) is not None:
        _fail(jobs, exc)
    else:
        _hand_out(jobs, done.result())


def _hand_out(jobs: list[_Job], replies: list[Any]) -> None:
    at = 0
    for commands, fut in jobs:
        if not fut.done():
            fut.set_result(replies[at : at + len(commands)])
        at += len(commands)
