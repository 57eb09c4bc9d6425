"""Prometheus metrics of the Diameter front end (one set per process).

Requests and answers per command and Result-Code, request latency, peers
connected and requests in flight. Created once on the default registry, which
the server's metrics endpoint exposes.

The hot path (issue 6) never looks a label set up per request: the children
of each command / Result-Code are resolved once and kept (``Counters``), and
the in-flight gauge reads a plain counter when scraped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from protocols.diameter.constants import Command

_NAMES = {int(c): c.name.lower() for c in Command}


def command_name(code: int) -> str:
    return _NAMES.get(code, str(code))


@dataclass(slots=True)
class InFlight:
    """Requests being served in this process; the gauge reads it at scrape time."""

    value: int = 0

    def get(self) -> float:
        return float(self.value)


@dataclass(slots=True)
class Children:
    """Label children resolved once per command / (command, Result-Code)."""

    metrics: DiameterMetrics
    requests: dict[int, Any] = field(default_factory=dict)
    answers: dict[tuple[int, int | None], Any] = field(default_factory=dict)
    latency: dict[int, Any] = field(default_factory=dict)

    def request(self, command: int) -> Any:
        child = self.requests.get(command)
        if child is None:
            child = self.requests[command] = self.metrics.requests.labels(command_name(command))
        return child

    def answer(self, command: int, result_code: int | None) -> Any:
        key = (command, result_code)
        child = self.answers.get(key)
        if child is None:
            name = command_name(command)
            child = self.answers[key] = self.metrics.answers.labels(name, str(result_code))
        return child

    def seconds(self, command: int) -> Any:
        child = self.latency.get(command)
        if child is None:
            child = self.latency[command] = self.metrics.latency.labels(command_name(command))
        return child


@dataclass(frozen=True, slots=True)
class DiameterMetrics:
    requests: Counter
    answers: Counter
    latency: Histogram
    peers: Gauge
    in_flight: Gauge
    discarded: Counter
    requests_in_flight: InFlight
    children: Children = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", Children(self))


@cache
def metrics() -> DiameterMetrics:
    in_flight = Gauge("ocs_diameter_in_flight", "Diameter requests being served")
    counter = InFlight()
    in_flight.set_function(counter.get)
    return DiameterMetrics(
        requests=Counter("ocs_diameter_requests", "Diameter requests received", ["command"]),
        answers=Counter(
            "ocs_diameter_answers", "Diameter answers sent", ["command", "result_code"]
        ),
        latency=Histogram(
            "ocs_diameter_request_seconds",
            "Time from a request's arrival to its answer being queued",
            ["command"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
        peers=Gauge("ocs_diameter_peers_connected", "Diameter peers in Open state"),
        in_flight=in_flight,
        discarded=Counter(
            "ocs_diameter_discarded", "Messages dropped without an answer", ["reason"]
        ),
        requests_in_flight=counter,
    )
