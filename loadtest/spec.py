"""What one load run does: target, traffic model, session shape, bounds.

Two traffic models (Schroeder et al., "Open versus closed: a cautionary tale"):

- **open**: sessions arrive as a Poisson process whose rate is chosen so that
  requests are sent at ``rate`` per second whatever the server's latency;
  a slow server sees a growing queue, as it would in the field.
- **closed**: ``concurrency`` sessions run at once, each sending its next
  request as soon as the previous one is answered (after ``interval``
  seconds when set); the achieved rate is what the server sustains.

A run stops starting sessions at ``duration`` seconds or after ``sessions``
sessions, whichever comes first, then lets the open ones finish (each is
terminated, so every charge is on record) within ``drain`` seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class Protocol(enum.Enum):
    GY = "gy"
    RADIUS = "radius"
    NCHF = "nchf"  # 5G converged charging over HTTP/2 (loadtest.nchf_gateway)


class Model(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Service:
    """One rating group a simulated session reports usage on, and its unit."""

    rating_group: int
    unit: str = "total_octets"  # total_octets | seconds | events
    mean_usage: int = 500_000  # per report; drawn uniformly in [mean/2, 3*mean/2]


@dataclass(frozen=True, slots=True)
class Shape:
    """What one simulated session sends."""

    updates: int = 3  # CCR-U / Interim-Update per session
    interval: float = 0.0  # seconds between a session's requests (0: back to back)
    services: tuple[Service, ...] = (Service(10), Service(20))
    min_mscc: int = 1
    max_mscc: int = 2
    event_share: float = 0.0  # Gy: share of sessions that are one EVENT CCR instead
    event_rating_group: int = 40
    # RADIUS: octets per interval (cumulative counters grow by about this much).
    radius_mean_octets: int = 500_000

    def requests_per_session(self) -> float:
        """Mean requests of one session (for the open model's arrival rate)."""
        return self.event_share * 1 + (1 - self.event_share) * (self.updates + 2)


@dataclass(frozen=True, slots=True)
class Target:
    host: str = "127.0.0.1"
    port: int = 3868
    secret: bytes = b"testing123"  # RADIUS shared secret
    origin_realm: str = "loadtest.example"
    destination_realm: str = "example.net"
    service_context: str = "32251@3gpp.org"


@dataclass(frozen=True, slots=True)
class LoadSpec:
    protocol: Protocol = Protocol.GY
    target: Target = field(default_factory=Target)
    model: Model = Model.CLOSED
    rate: float = 1000.0  # open model: requests per second, all processes together
    concurrency: int = 64  # closed model: sessions in flight, all processes together
    duration: float = 10.0  # seconds of starting sessions
    sessions: int | None = None  # None: bounded by duration only
    drain: float = 10.0  # seconds to let open sessions finish after the bounds
    timeout: float = 5.0  # seconds before a request counts as timed out
    connections: int = 2  # Gy connections (RADIUS: sockets) per process
    processes: int = 1
    shape: Shape = field(default_factory=Shape)
    subscribers: tuple[str, ...] = ()  # MSISDN / User-Name values, all the same width
    run_id: str = "00000000"  # 8 characters, unique per run: in every session id
    retries: int = 2  # RADIUS retransmissions of an unanswered request
    seed: int = 1

    def for_process(self, index: int) -> LoadSpec:
        """The share of process ``index``: rate, concurrency, count and subscribers."""
        n = self.processes
        total = self.sessions or 0
        share_count = total // n + (1 if index < total % n else 0)
        subs = self.subscribers[index::n] or self.subscribers
        return replace(
            self,
            rate=self.rate / n,
            concurrency=max(1, self.concurrency // n + (1 if index < self.concurrency % n else 0)),
            sessions=share_count if self.sessions is not None else None,
            subscribers=subs,
            seed=self.seed * 1000 + index,
        )
