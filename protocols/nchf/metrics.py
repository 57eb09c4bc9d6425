"""Prometheus metrics of the Nchf front end (one set per process, on the default registry).

``ocs_nchf_requests_total{operation, status}``: requests answered by operation
(create, update, release, other) and HTTP status; ``ocs_nchf_notifications_total
{outcome}``: notifications delivered, failed (retries spent or refused), dropped
(too many pending) and retried attempts. Plain ints on the request path, read by a
collector when scraped (a prometheus_client child costs a lock and a labels lookup
per increment; see protocols/diameter/metrics.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector


class NchfMetrics(Collector):
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.notifications: Counter[str] = Counter()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "ocs_nchf_requests",
            "Nchf requests answered, by operation and HTTP status",
            labels=["operation", "status"],
        )
        for (op, status), count in sorted(self.requests.items()):
            requests.add_metric([op, str(status)], count)
        yield requests
        notes = CounterMetricFamily(
            "ocs_nchf_notifications", "Nchf notifications by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(self.notifications.items()):
            notes.add_metric([outcome], count)
        yield notes


METRICS = NchfMetrics()
REGISTRY.register(METRICS)
