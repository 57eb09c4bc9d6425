"""How a front end follows the core's pushes (``ocs.frontend.follow_notifications``):
it takes the subscription again after a failure, and stops when its task is
cancelled even where the subscription turns the cancellation into its own error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from ocs.frontend import follow_notifications
from ocs.vocabulary.types import Notification, NotificationKind

NOTE = Notification(NotificationKind.BLOCKED, "acct", "radius:nas:s1", "radius:nas")


class Subscriptions:
    """The charging API's ``notifications()`` as a script: each call takes the next
    plan (notifications to yield, then what ends it) and counts itself; with no plan
    left it waits, and the first such wait turns its cancellation into TimeoutError."""

    def __init__(self, *plans: tuple[list[Notification], BaseException | None]) -> None:
        self.plans = list(plans)
        self.taken = 0

    async def notifications(self) -> AsyncIterator[Notification]:
        self.taken += 1
        notes, end = self.plans.pop(0) if self.plans else ([], None)
        for note in notes:
            yield note
        if end is not None:
            raise end
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.taken > 1:
                raise
            raise TimeoutError from None  # what a cancelled Redis read ends with


async def test_a_handler_that_raises_once_does_not_end_the_following() -> None:
    """``handle`` raising on one notification is reported, and the next notification
    of the same subscription is handled: nothing read behind it is lost."""
    subs = Subscriptions(([NOTE, NOTE], None))
    handled: list[Notification] = []
    failed: list[tuple[Notification, Exception]] = []
    lost: list[Exception] = []
    second = asyncio.Event()

    def handle(note: Notification) -> None:
        handled.append(note)
        if len(handled) == 1:
            raise ValueError("bad notification")
        second.set()

    task = asyncio.create_task(
        follow_notifications(
            cast(Any, subs), handle, lost.append, 0.01, lambda n, e: failed.append((n, e))
        )
    )
    await asyncio.wait_for(second.wait(), 5)
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert subs.taken == 1 and lost == []
    assert [(n, type(e)) for n, e in failed] == [(NOTE, ValueError)]


async def test_a_subscription_that_ends_in_error_is_taken_again() -> None:
    """The subscription itself failing (not Redis) is reported and taken again."""
    subs = Subscriptions(([NOTE], RuntimeError("reader broke")), ([NOTE], None))
    handled: list[Notification] = []
    lost: list[Exception] = []
    second = asyncio.Event()

    def handle(note: Notification) -> None:
        handled.append(note)
        if len(handled) == 2:
            second.set()

    task = asyncio.create_task(follow_notifications(cast(Any, subs), handle, lost.append, 0.01))
    await asyncio.wait_for(second.wait(), 5)
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert subs.taken == 2
    assert [type(e) for e in lost] == [RuntimeError]


async def test_a_cancellation_turned_into_an_error_still_stops_it() -> None:
    """Cancelled while the subscription waits (it ends with TimeoutError, not
    CancelledError): the follower ends instead of subscribing again."""
    subs = Subscriptions()
    lost: list[Exception] = []
    task = asyncio.create_task(
        follow_notifications(cast(Any, subs), lambda note: None, lost.append, 0.01)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    task.cancel()  # a follower that went on (the bug) is stopped by a second one
    assert done == {task}
    assert (subs.taken, lost) == (1, [])
