"""Starts simulated sessions per the traffic model and walks each through its steps.

Callback-driven rather than one task per session: an answer's callback
sends the session's next request directly (or after ``interval`` with
``call_later``), so the generator's cost per request is a template patch
and a dict lookup, not a coroutine switch. See :mod:`loadtest.spec` for the
open and closed models and the bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from loadtest.session import Gateway, SimSession
from loadtest.spec import LoadSpec, Model, Protocol, Service

DIGITS = 10
PROGRESS_EVERY = 0.5


class Driver:
    """The sessions of one generator process."""

    def __init__(
        self,
        spec: LoadSpec,
        gateway: Gateway,
        process_index: int,
        rng: random.Random,
        progress: Callable[[Driver], None] | None = None,
    ) -> None:
        self.spec = spec
        self.gateway = gateway
        self.index = process_index
        self.rng = rng
        self.progress = progress
        self.subscribers = [s.encode() for s in spec.subscribers]
        if not self.subscribers:
            raise ValueError("no subscribers to simulate")
        self.started = 0
        self.completed = 0
        self.refused = 0  # the opening request failed: nothing to close
        self.broken = 0  # failed after opening: left for the end-of-run clean-up
        self.active = 0
        self.deadline = 0.0
        self.idle = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        # EVENT is a Gy request (RFC 4006 §5.4); RADIUS sessions are always Start..Stop.
        self.events = spec.shape.event_share > 0 and spec.protocol is Protocol.GY
        self._event_service = (Service(spec.shape.event_rating_group, "events", 1),)

    # -- sessions ------------------------------------------------------------

    def may_start(self) -> bool:
        if self.loop.time() >= self.deadline:
            return False
        return self.spec.sessions is None or self.started < self.spec.sessions

    def _new_session(self) -> SimSession:
        shape = self.spec.shape
        digits = f"{self.index:02d}{self.started:08d}".encode()
        subscriber = self.rng.choice(self.subscribers)
        if self.events and self.rng.random() < shape.event_share:
            return SimSession(digits, subscriber, self._event_service, 0, event=True)
        count = min(self.rng.randint(shape.min_mscc, shape.max_mscc), len(shape.services))
        picked = (
            self.rng.sample(shape.services, count)
            if count < len(shape.services)
            else list(shape.services)
        )
        services = tuple(sorted(picked, key=lambda s: s.rating_group))
        return SimSession(digits, subscriber, services, shape.updates)

    def start_session(self) -> None:
        session = self._new_session()
        self.started += 1
        self.active += 1
        self.idle.clear()
        self.gateway.send(session, self._done)

    def _done(self, session: SimSession, ok: bool) -> None:
        if ok and not session.closing:
            session.step += 1
            interval = self.spec.shape.interval
            if interval > 0:
                self.loop.call_later(interval, self.gateway.send, session, self._done)
            else:
                self.gateway.send(session, self._done)
            return
        self.active -= 1
        if ok:
            self.completed += 1
        elif session.opening:
            self.refused += 1
        else:
            self.broken += 1
        if self.spec.model is Model.CLOSED and self.may_start():
            # Next pass, not now: a gateway that fails synchronously (connection
            # lost) must not recurse into this callback.
            self.loop.call_soon(self._replace)
        elif self.active == 0:
            self.idle.set()

    def _replace(self) -> None:
        if self.may_start():
            self.start_session()
        elif self.active == 0:
            self.idle.set()

    # -- the run -------------------------------------------------------------

    async def run(self) -> None:
        """Start sessions until a bound is reached, then let open ones finish."""
        self.deadline = self.loop.time() + self.spec.duration
        ticker = self.loop.create_task(self._report_progress())
        try:
            if self.spec.model is Model.CLOSED:
                await self._closed()
            else:
                await self._open()
            await self._drain()
        finally:
            ticker.cancel()
            if self.progress is not None:
                self.progress(self)

    async def _closed(self) -> None:
        for _ in range(self.spec.concurrency):
            if not self.may_start():
                break
            self.start_session()
        # The count bound has no event of its own: poll.
        while self.may_start():  # noqa: ASYNC110
            await asyncio.sleep(min(0.1, max(0.0, self.deadline - self.loop.time())))

    async def _open(self) -> None:
        """Poisson session arrivals at rate / (requests per session) per second."""
        per_session = self.spec.shape.requests_per_session()
        arrivals = self.spec.rate / per_session if per_session > 0 else 0.0
        if arrivals <= 0:
            return
        next_at = self.loop.time()
        while self.may_start():
            now = self.loop.time()
            while next_at <= now and self.may_start():
                self.start_session()
                next_at += self.rng.expovariate(arrivals)
            await asyncio.sleep(max(0.0, min(next_at, self.deadline) - self.loop.time()))

    async def _drain(self) -> None:
        if self.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), self.spec.drain)

    async def _report_progress(self) -> None:
        while self.progress is not None:
            await asyncio.sleep(PROGRESS_EVERY)
            self.progress(self)
