"""Coalescing the Redis commands of one event-loop pass into one pipeline.

Many requests are in flight at once (many Gy peers, many CCRs per peer). Each
charging call needs a few commands (index hints and one EVALSHA); sending
each call's commands as its own pipeline costs a write, a read and a Python
round of parsing per call. The batcher collects every call submitted during
one pass of the event loop and sends them all as one pipeline: one write and
one read for the pass, each caller getting back the replies of its own
commands. Scripts are called by SHA (EVALSHA) and loaded once; a NOSCRIPT
reply (Redis restarted or flushed its script cache) makes the caller load
them again and resubmit, which is safe because the script did not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rexc
from redis.asyncio import Redis

Command = tuple[Any, ...]


class Batcher:
    """Submit a list of commands; get their replies once the pass is flushed."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._jobs: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
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

    def _flush_pass(self) -> None:
        self._scheduled = False
        jobs, self._jobs = self._jobs, []
        task = asyncio.ensure_future(self._send(jobs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, jobs: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for commands, _ in jobs:
            for command in commands:
                pipe.execute_command(*command)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except (rexc.RedisError, OSError) as exc:
            for _, fut in jobs:
                if not fut.done():
                    fut.set_exception(exc)
            return
        at = 0
        for commands, fut in jobs:
            if not fut.done():
                fut.set_result(list(replies[at : at + len(commands)]))
            at += len(commands)
