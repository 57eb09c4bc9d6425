"""Process-wide metrics of the core (the front ends define their own).

Registries: the server's processes use prometheus-client's default registry
(this module, the front ends' metrics modules, the process collector); the
exporter has its own (:mod:`ocs.export.metrics`), so each process's
``/metrics`` shows only what that process does. With ``--workers N`` the
supervisor merges its workers' (:mod:`ocs.node_ops`) and adds the families
named in :data:`OWN_FAMILIES`, which only it counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

CollectorT = TypeVar("CollectorT", bound=Collector)

BUILD = Info("ocs_build", "ocs version and policy set in force")  # ocs_build_info
POLICY_RELOADS = Counter("ocs_policy_reloads", "Policy reloads", ["outcome"])
SESSIONS_ABANDONED = Counter("ocs_sessions_abandoned", "Sessions closed by supervision")
EMBEDDED_REDIS_RESTARTS = Counter(
    "ocs_embedded_redis_restarts", "Embedded Redis server restarts after it died"
)
WORKER_RESTARTS = Counter(
    "ocs_worker_restarts", "Worker processes restarted by the supervisor after they died"
)
WORKERS_RUNNING = Gauge("ocs_workers_running", "Worker processes running (--workers N)")

# What the supervisor of N workers contributes from its own process.
OWN_FAMILIES = frozenset(
    {"ocs_embedded_redis_restarts", "ocs_worker_restarts", "ocs_workers_running"}
)


# --- cheap metrics for hot paths -------------------------------------------------
#
# A prometheus-client child costs a lock and several calls per increment, and a
# labels() lookup more; on a path taken for every request (or every Redis
# batch) these are plain ints and floats, turned into metric families only when
# scraped (the Diameter front end's way, issue 6).


class FastHistogram:
    """Observations per bucket (the last is +Inf) and their sum; not thread-safe (one loop)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: the first bound >= value
        self.sum += value


class FastHistograms(Collector):
    """A labelled family of :class:`FastHistogram`, exported at scrape time."""

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], bounds: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labels, self.bounds = (
            name,
            documentation,
            labels,
            bounds,
        )
        self.children: dict[tuple[str, ...], FastHistogram] = {}
        self._le = [str(b) for b in bounds] + ["+Inf"]

    def child(self, *values: str) -> FastHistogram:
        """The histogram of one label set (keep it: the lookup is the cost)."""
        found = self.children.get(values)
        if found is None:
            found = self.children[values] = FastHistogram(self.bounds)
        return found

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for values, hist in list(self.children.items()):  # a copy: the loop may add some
            cumulative = list(zip(self._le, accumulate(hist.counts), strict=True))
            family.add_metric(list(values), cumulative, hist.sum)
        yield family


class FastCounters(Collector):
    """A labelled family of counters kept as plain ints, exported at scrape time."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *values: str, amount: int = 1) -> None:
        self.values[values] = self.values.get(values, 0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for values, n in list(self.values.items()):
            family.add_metric(list(values), n)
        yield family


def registered(collector: CollectorT) -> CollectorT:
    """``collector`` registered in the server's (default) registry."""
    REGISTRY.register(collector)
    return collector


LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# Charging outcomes per operation and result (ocs/charging/api.py): one per
# service of each answer (granted, credit_limit_reached, ...) or the error a
# request ended in (unknown_session, ...).
CHARGING_OUTCOMES = registered(
    FastCounters(
        "ocs_charging_outcomes",
        "Charging outcomes: one per service of each answer, or the request's error",
        ("operation", "result"),
    )
)
# The store's pipelined connection (ocs/store/pipe.py): per batch of commands.
REDIS_ROUND_TRIP = registered(
    FastHistograms(
        "ocs_redis_round_trip_seconds",
        "Time from writing a batch of commands to Redis to its last reply",
        (),
        LATENCY_BUCKETS,
    )
).child()
REDIS_BATCH_COMMANDS = registered(
    FastHistograms(
        "ocs_redis_pipeline_commands",
        "Commands written to Redis together in one batch (one event-loop pass)",
        (),
        BATCH_BUCKETS,
    )
).child()
# The cluster's hot path (ocs/store/cluster_pipe.py): redirections followed
# (moved, ask, tryagain) and passes refused because no replica acknowledged
# lately (durability replica: replica_wait_failed).
REDIS_CLUSTER_EVENTS = registered(
    FastCounters(
        "ocs_redis_cluster_events",
        "Hot-path events on a cluster or replicated store: redirections followed, "
        "replica waits that failed",
        ("event",),
    )
)
