"""A simulated charging session and the interface a simulated gateway offers the driver.

A session is a short list of steps: step 0 opens it (CCR-I / Start), steps
1..k report usage (CCR-U / Interim-Update), step k+1 closes it (CCR-T /
Stop); an event session is one step (CCR-EVENT). The driver
(:mod:`loadtest.driver`) walks the steps; a gateway
(:mod:`loadtest.gy_gateway`, :mod:`loadtest.radius_gateway`) turns one
step into bytes on the wire and calls back with whether it succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from loadtest.spec import Service


class SimSession:
    """One simulated session's identity and progress."""

    __slots__ = (
        "cumulative",
        "digits",
        "event",
        "last_step",
        "route",
        "services",
        "step",
        "subscriber",
    )

    def __init__(
        self,
        digits: bytes,
        subscriber: bytes,
        services: tuple[Service, ...],
        updates: int,
        event: bool = False,
    ) -> None:
        self.digits = digits  # the variable, fixed-width part of the session id
        self.subscriber = subscriber
        self.services = services
        self.event = event
        self.step = 0
        self.last_step = 0 if event else updates + 1
        self.cumulative = [0, 0, 0]  # RADIUS counters: input octets, output octets, seconds
        self.route: object = None  # the connection a gateway pinned the session to

    @property
    def opening(self) -> bool:
        return self.step == 0

    @property
    def closing(self) -> bool:
        return self.step == self.last_step


Done = Callable[[SimSession, bool], None]


class Gateway(Protocol):
    """A simulated gateway: sends a session's current step, reports the outcome."""

    def send(self, session: SimSession, done: Done) -> None:
        """Send ``session``'s current step; later call ``done(session, ok)`` exactly once."""

    def in_flight(self) -> int:
        """Requests sent and not yet answered or timed out."""

    def close(self) -> None:
        """Stop: no more sends; pending requests may be dropped."""
