"""The Accounting-On/Off queue (protocols/radius/restarts.py): one close per NAS at a
time, later requests answered together by the next one, a bound on closes at once and on
requests waiting, failures reaching every request of a close."""

from __future__ import annotations

import asyncio

import pytest

from ocs.vocabulary.errors import StorageUnavailable
from protocols.radius.drops import DropReason, RadiusDrop
from protocols.radius.restarts import NasRestarts


class Closer:
    """Records each close; each one waits until the test releases it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, owner: str, opened_before: int) -> int:
        self.calls.append((owner, opened_before))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
            if self.fail is not None:
                raise self.fail
            return 7
        finally:
            self.running -= 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_during_a_close_share_the_next_one_with_the_latest_time() -> None:
    """50 On/Off of one NAS: two closes, the second up to the latest event time."""
    closer = Closer()
    queue = NasRestarts(closer, concurrency=4, max_waiting=100)
    first = asyncio.create_task(queue.close("radius:nas", 100))
    await settle()
    rest = [asyncio.create_task(queue.close("radius:nas", 100 + i)) for i in range(49)]
    await settle()
    assert queue.waiting == 50
    closer.release.set()
    assert await asyncio.gather(first, *rest) == [7] * 50
    assert closer.calls == [("radius:nas", 100), ("radius:nas", 148)]
    assert queue.waiting == 0


async def test_closes_of_different_nas_are_bounded() -> None:
    """20 NASes at once, concurrency 3: never more than 3 closes side by side."""
    closer = Closer()
    queue = NasRestarts(closer, concurrency=3, max_waiting=100)
    tasks = [asyncio.create_task(queue.close(f"radius:nas{i}", 1)) for i in range(20)]
    await settle()
    assert closer.running == 3
    closer.release.set()
    await asyncio.gather(*tasks)
    assert (len(closer.calls), closer.most_at_once) == (20, 3)


async def test_a_full_queue_refuses_with_its_own_reason() -> None:
    """max_waiting requests wait; one more is dropped as nas_restart_queue_full."""
    closer = Closer()
    queue = NasRestarts(closer, concurrency=1, max_waiting=3)
    tasks = [asyncio.create_task(queue.close("radius:nas", 1)) for _ in range(3)]
    await settle()
    with pytest.raises(RadiusDrop) as refused:
        await queue.close("radius:nas", 2)
    assert refused.value.reason is DropReason.NAS_RESTART_QUEUE_FULL
    closer.release.set()
    assert await asyncio.gather(*tasks) == [7, 7, 7]


async def test_a_failed_close_fails_its_requests_and_the_next_one_runs() -> None:
    """Redis down during a close: each of its requests sees StorageUnavailable (no answer,
    the NAS retries); a request after it gets a close of its own."""
    closer = Closer()
    closer.fail = StorageUnavailable("redis unavailable")
    queue = NasRestarts(closer, concurrency=1, max_waiting=10)
    tasks = [asyncio.create_task(queue.close("radius:nas", 1)) for _ in range(3)]
    await settle()
    closer.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, StorageUnavailable) for r in results)
    closer.fail = None
    assert await queue.close("radius:nas", 2) == 7


async def test_a_request_that_gives_up_leaves_the_close_to_the_others() -> None:
    """One waiting request cancelled (its task stopped): the close goes on for the rest."""
    closer = Closer()
    queue = NasRestarts(closer, concurrency=1, max_waiting=10)
    quitter = asyncio.create_task(queue.close("radius:nas", 1))
    stayer = asyncio.create_task(queue.close("radius:nas", 1))
    await settle()
    quitter.cancel()
    await settle()
    closer.release.set()
    assert await stayer == 7
    assert queue.waiting == 0
