"""Prometheus metrics of the Diameter front end (one set per process).

Requests and answers per command and Result-Code, request latency, peers
connected and requests in flight. Created once on the default registry, which
the server's metrics endpoint exposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

from protocols.diameter.constants import Command

_NAMES = {int(c): c.name.lower() for c in Command}


def command_name(code: int) -> str:
    return _NAMES.get(code, str(code))


@dataclass(frozen=True, slots=True)
class DiameterMetrics:
    requests: Counter
    answers: Counter
    latency: Histogram
    peers: Gauge
    in_flight: Gauge
    discarded: Counter


@cache
def metrics() -> DiameterMetrics:
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
        in_flight=Gauge("ocs_diameter_in_flight", "Diameter requests being served"),
        discarded=Counter(
            "ocs_diameter_discarded", "Messages dropped without an answer", ["reason"]
        ),
    )
