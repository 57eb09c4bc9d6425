"""The push reader (ocs/notify.py) ends when cancelled, even when a layer under its read
swallows the cancel (Python 3.11: async-timeout turns a cancel that races the read's own
timeout into a timeout or a plain return; Task.cancelling() still counts it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ocs import notify
from ocs.store.client import Store


async def test_a_cancel_swallowed_under_the_read_still_ends_the_reader(
    core_redis: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read returns normally although the task was cancelled: the reader stops anyway."""
    real_read = notify._read
    reading = asyncio.Event()
    swallow = [True]

    async def read_swallowing_cancel(*args: Any) -> Any:
        reading.set()
        try:
            return await real_read(*args)
        except asyncio.CancelledError:
            if not swallow[0]:
                raise
            return []  # what a layer that loses the cancel hands back

    monkeypatch.setattr(notify, "_read", read_swallowing_cancel)

    async def follow() -> None:
        async for _ in notify.subscribe(core_redis, 1):
            pass

    task = asyncio.create_task(follow())
    await asyncio.wait_for(reading.wait(), 5)
    await asyncio.sleep(0.05)  # inside the blocking read (or the cluster's poll)
    task.cancel()
    try:
        done, _ = await asyncio.wait({task}, timeout=3)
        assert task in done, "the reader went on reading after its cancel"
        assert task.cancelled()
    finally:
        swallow[0] = False  # a reader still going: let its next cancel through
        task.cancel()
        await asyncio.wait({task}, timeout=3)
