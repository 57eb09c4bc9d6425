"""Merging workers' expositions: sums, per-process labels, restarts that keep totals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.metrics_core import Metric

from ocs.metrics_merge import Retired, merge, parse


def worker(answers: int, in_flight: int, latencies: list[float]) -> list[Metric]:
    reg = CollectorRegistry()
    Counter("ocs_answers", "answers", ["code"], registry=reg).labels("2001").inc(answers)
    Gauge("ocs_in_flight", "in flight", registry=reg).set(in_flight)
    h = Histogram("ocs_seconds", "latency", buckets=(0.01, 0.1), registry=reg)
    for v in latencies:
        h.observe(v)
    Info("ocs_build", "build", registry=reg).info({"version": "1"})
    Gauge("process_open_fds", "fds", registry=reg).set(10)
    return parse(generate_latest(reg).decode())


def value(families: list[Metric], sample: str, **labels: str) -> float | None:
    for family in families:
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


def test_counters_histograms_and_gauges_add_up() -> None:
    """Two workers: counters, histogram buckets and gauges are the node's sums."""
    out = merge([("0", worker(3, 1, [0.005])), ("1", worker(4, 2, [0.05, 0.5]))])
    assert value(out, "ocs_answers_total", code="2001") == 7
    assert value(out, "ocs_in_flight") == 3
    assert value(out, "ocs_seconds_bucket", le="0.01") == 1
    assert value(out, "ocs_seconds_bucket", le="+Inf") == 3
    assert value(out, "ocs_seconds_count") == 3
    assert value(out, "ocs_build_info", version="1") == 1  # not 2: the same in every worker


def test_per_process_series_are_labelled_not_summed() -> None:
    """process_open_fds per worker: a sum of two processes' descriptors means nothing."""
    out = merge([("0", worker(1, 0, [])), ("1", worker(1, 0, []))])
    assert value(out, "process_open_fds", worker="0") == 10
    assert value(out, "process_open_fds", worker="1") == 10
    assert value(out, "process_open_fds") is None


def test_the_merge_is_valid_exposition() -> None:
    """What the supervisor serves parses back as Prometheus text."""
    out = merge([("0", worker(1, 0, [0.001])), ("1", worker(2, 0, [0.2]))])

    class Fixed:
        def collect(self) -> list[Metric]:
            return out

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Fixed())  # type: ignore[arg-type]
    again = parse(generate_latest(reg).decode())
    assert value(again, "ocs_answers_total", code="2001") == 3


def test_a_restarted_worker_keeps_the_node_total_monotonic() -> None:
    """Worker 1 dies at 40 answers and comes back at 0: the node shows 40 + what follows."""
    retired = Retired()
    w0 = worker(100, 0, [])
    retired.seen(0, 1000, w0)
    retired.seen(1, 1001, worker(40, 0, []))
    # The next scrape: worker 1 is dead (did not answer).
    down = merge([("0", w0), *retired.sources({0})])
    assert value(down, "ocs_answers_total", code="2001") == 140
    # Restarted with a new pid and 5 answers so far.
    fresh = worker(5, 0, [])
    retired.seen(1, 2002, fresh)
    up = merge([("0", w0), ("1", fresh), *retired.sources({0, 1})])
    assert value(up, "ocs_answers_total", code="2001") == 145
    # Gauges are not retired: a dead worker's in-flight requests are gone.
    assert value(up, "ocs_in_flight") == 0
