"""Coalescing the Redis commands of one event-loop pass into one write.

Many requests are in flight at once (many Gy peers, many CCRs per peer). Each
charging call needs a few commands (index hints and one script call); sending
each call's commands on its own costs a write, a read and a Python round of
parsing per call. The batcher collects every call submitted during one pass
of the event loop and sends them all at once: one write and one read for the
pass, each caller getting back the replies of its own commands. The write
goes through :class:`~ocs.store.pipe.RedisPipe` (one pipelined connection,
hiredis both ways) or, where that cannot serve the connection (TLS), through
redis-py's pipeline. Scripts are called by SHA or as functions and loaded
once; a NOSCRIPT reply (Redis restarted or flushed its scripts) makes the
caller load them again and resubmit, which is safe because the script did
not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rexc
from redis.asyncio import Redis

from ocs.store.pipe import RedisPipe

Command = tuple[Any, ...]
_Job = tuple[Sequence[Command], "asyncio.Future[list[Any]]"]


class Batcher:
    """Submit a list of commands; get their replies once the pass is flushed."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.pipe = RedisPipe.for_client(client)
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

    def _flush_pass(self) -> None:
        self._scheduled = False
        jobs, self._jobs = self._jobs, []
        pipe = self.pipe
        if pipe is not None and pipe.ready:
            # The common case: written now, replies handed out as they arrive.
            try:
                replies = pipe.send([c for commands, _ in jobs for c in commands])
            except (rexc.RedisError, OSError) as exc:
                _fail(jobs, exc)
                return
            replies.add_done_callback(lambda done: _distribute(jobs, done))
            return
        task = asyncio.ensure_future(self._send(jobs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, jobs: list[_Job]) -> None:
        try:
            if self.pipe is not None:  # not connected yet: connect, then send
                replies = await self.pipe.execute([c for commands, _ in jobs for c in commands])
            else:
                pipe = self.client.pipeline(transaction=False)
                for commands, _ in jobs:
                    for command in commands:
                        pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except (rexc.RedisError, OSError) as exc:
            _fail(jobs, exc)
            return
        _hand_out(jobs, replies)


def _fail(jobs: list[_Job], exc: BaseException) -> None:
    for _, fut in jobs:
        if not fut.done():
            fut.set_exception(exc)


def _distribute(jobs: list[_Job], done: asyncio.Future[list[Any]]) -> None:
    if done.cancelled():
        _fail(jobs, rexc.ConnectionError("redis batch cancelled"))
        return
    exc = done.exception()
    if exc is not None:
        _fail(jobs, exc)
        return
    _hand_out(jobs, done.result())


def _hand_out(jobs: list[_Job], replies: list[Any]) -> None:
    at = 0
    for commands, fut in jobs:
        if not fut.done():
            fut.set_result(replies[at : at + len(commands)])
        at += len(commands)
