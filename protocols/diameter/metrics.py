"""Prometheus metrics of the Diameter front end (one set per process).

Requests and answers per command and Result-Code, request latency, peers
connected and requests in flight, on the default registry, which the server's
metrics endpoint exposes. Command codes we do not know share the label
``other``: a peer picks them freely, and a label per value would grow without
bound.

The per-request ones are plain ints on the hot path, read by a
collector when scraped: a ``prometheus_client`` child costs a lock and
several calls per increment, a labels lookup more, and a CCR makes four.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from protocols.diameter.constants import Command

OTHER = -1  # every command code we do not know, as one label: peers choose them freely
_NAMES = {int(c): c.name.lower() for c in Command} | {OTHER: "other"}
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LE = [str(b) for b in BUCKETS] + ["+Inf"]


def command_name(code: int) -> str:
    return _NAMES.get(code, str(code))


class Latency:
    """One command's latency histogram: observations per bucket (the last is +Inf)."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1  # le: the first bound >= seconds
        self.sum += seconds


class Counts:
    """Requests, answers and latency as plain ints and floats (the hot path's side)."""

    __slots__ = ("answers", "in_flight", "latency", "requests")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.answers: dict[tuple[int, int | None], int] = {}
        self.latency: dict[int, Latency] = {}
        self.in_flight = 0

    def request(self, command: int) -> None:
        if command not in _NAMES:
            command = OTHER  # bounded labels whatever command codes a peer sends
        self.requests[command] = self.requests.get(command, 0) + 1

    def answer(self, command: int, result_code: int | None) -> None:
        if command not in _NAMES:
            command = OTHER
        key = (command, result_code)
        self.answers[key] = self.answers.get(key, 0) + 1

    def seconds(self, command: int) -> Latency:
        latency = self.latency.get(command)
        if latency is None:
            latency = self.latency[command] = Latency()
        return latency

    def in_flight_now(self) -> float:
        return float(self.in_flight)


class CountsCollector(Collector):
    """Exposes :class:`Counts` as the counters and histogram they stand for."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        requests = CounterMetricFamily(
            "ocs_diameter_requests", "Diameter requests received", labels=["command"]
        )
        for code, n in list(counts.requests.items()):  # a copy: the loop may add keys
            requests.add_metric([command_name(code)], n)
        yield requests
        answers = CounterMetricFamily(
            "ocs_diameter_answers", "Diameter answers sent", labels=["command", "result_code"]
        )
        for (code, result), n in list(counts.answers.items()):
            answers.add_metric([command_name(code), str(result)], n)
        yield answers
        latency = HistogramMetricFamily(
            "ocs_diameter_request_seconds",
            "Time from a request's arrival to its answer being queued",
            labels=["command"],
        )
        for code, hist in list(counts.latency.items()):
            cumulative = list(zip(_LE, accumulate(hist.counts), strict=True))
            latency.add_metric([command_name(code)], cumulative, hist.sum)
        yield latency


@dataclass(frozen=True, slots=True)
class DiameterMetrics:
    counts: Counts  # requests, answers, latency, in flight
    peers: Gauge
    in_flight: Gauge
    discarded: Counter
    collisions: Counter
    refused_connections: Counter


@cache
def metrics() -> DiameterMetrics:
    counts = Counts()
    REGISTRY.register(CountsCollector(counts))
    in_flight = Gauge("ocs_diameter_in_flight", "Diameter requests being served")
    in_flight.set_function(counts.in_flight_now)
    return DiameterMetrics(
        counts=counts,
        peers=Gauge("ocs_diameter_peers_connected", "Diameter peers in Open state"),
        in_flight=in_flight,
        discarded=Counter(
            "ocs_diameter_discarded", "Messages dropped without an answer", ["reason"]
        ),
        collisions=Counter(
            "ocs_diameter_end_to_end_collisions",
            "Requests whose (Origin-Host, End-to-End id) another request used within the "
            "duplicate window: served as new requests, not as duplicates",
        ),
        refused_connections=Counter(
            "ocs_diameter_connections_refused",
            "Connections closed at once: the process held limits.max_connections already",
        ),
    )
