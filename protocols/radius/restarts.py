"""Accounting-On/Off (RFC 2866 §5.1: the NAS restarted, every session it had is gone)
through a bounded, measured queue (standards §3.4).

One Accounting-On/Off closes every open session of its NAS: a few Redis calls
per session, thousands of sessions. Served as one task per request, a NAS
repeating them (~150/s seen, mixed with its accounting) had hundreds of closes
walking the same sessions at once on the shared Redis connection pool: the pool
ran dry ("No connection available") and the requests were dropped as
``storage_unavailable`` while Redis answered. Here:

- per NAS (owner) one close runs at a time; requests that arrive meanwhile join
  the next close, which runs once for all of them with the latest event time
  (``opened_before`` only grows, so it closes everything each of them asked);
- at most ``concurrency`` closes run at once, whatever the number of NASes;
- at most ``max_waiting`` requests wait in all; one more is refused with
  ``nas_restart_queue_full`` (a drop counted under that reason, never a storage
  failure).

Each request is answered only when a close that covers it has finished (its
sessions are closed and recorded, standards §3.4). A storage failure of a close
fails every request of it (no answer: the NAS retries).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from protocols.radius import metrics as m
from protocols.radius.drops import DropReason, RadiusDrop

Close = Callable[[str, int], Awaitable[int]]  # (owner, opened_before) -> sessions closed


class _Batch:
    """The requests one close will answer."""

    __slots__ = ("future", "opened_before", "requests")

    def __init__(self, opened_before: int) -> None:
        self.opened_before = opened_before
        self.requests = 0
        self.future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # Read the outcome even if every waiter went away (no "never retrieved" noise).
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())


class NasRestarts:
    def __init__(self, close: Close, concurrency: int, max_waiting: int) -> None:
        self._close = close
        self._concurrency = concurrency
        self._max_waiting = max_waiting
        self._slots: asyncio.Semaphore | None = None  # made on the serving loop
        self._next: dict[str, _Batch] = {}  # owner -> the batch its next close answers
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    async def close(self, owner: str, opened_before: int) -> int:
        """Close the owner's sessions opened before ``opened_before``; how many closed
        (by the close that answered this request). RadiusDrop when the queue is full."""
        if self._waiting >= self._max_waiting:
            raise RadiusDrop(DropReason.NAS_RESTART_QUEUE_FULL, f"{self._waiting} waiting")
        batch = self._next.get(owner)
        if batch is None:
            batch = self._next[owner] = _Batch(opened_before)
        else:
            batch.opened_before = max(batch.opened_before, opened_before)
        batch.requests += 1
        if owner not in self._runners:
            task = asyncio.get_running_loop().create_task(self._run(owner))
            self._runners[owner] = task
        self._waiting += 1
        m.NAS_RESTART_WAITING.inc()
        try:
            # Shielded: a request that gives up does not cancel the others' close.
            return await asyncio.shield(batch.future)
        finally:
            self._waiting -= 1
            m.NAS_RESTART_WAITING.dec()

    async def _run(self, owner: str) -> None:
        try:
            while (batch := self._next.pop(owner, None)) is not None:
                await self._close_batch(owner, batch)
        finally:
            del self._runners[owner]

    async def _close_batch(self, owner: str, batch: _Batch) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        try:
            async with self._slots:
                started = time.perf_counter()
                closed = await self._close(owner, batch.opened_before)
                m.NAS_RESTART_SECONDS.observe(time.perf_counter() - started)
        except asyncio.CancelledError:
            batch.future.cancel()
            raise
        except Exception as exc:  # the requests answer it (StorageUnavailable: silence)
            batch.future.set_exception(exc)
            return
        m.NAS_RESTART_CLOSES.inc()
        m.NAS_RESTART_SESSIONS.inc(closed)
        m.NAS_RESTART_REQUESTS.inc(batch.requests)
        batch.future.set_result(closed)

    def stop(self) -> None:
        """Cancel the closes in progress (their requests get no answer)."""
        for task in list(self._runners.values()):
            task.cancel()
