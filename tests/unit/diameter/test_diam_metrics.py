"""The Diameter metrics' plain counts are exported as the Prometheus counters and histogram
they stand for (plain ints on the hot path, exported at scrape time)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from protocols.diameter.metrics import Counts, CountsCollector


def _registry(counts: Counts) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CountsCollector(counts))
    return registry


def test_requests_answers_and_latency_samples() -> None:
    """Counts per command / Result-Code; histogram buckets are cumulative, a value equal to
    a bound counts in that bound's bucket, above the last bound only in +Inf."""
    counts = Counts()
    for _ in range(3):
        counts.request(272)
    counts.answer(272, 2001)
    counts.answer(272, 2001)
    counts.answer(272, None)
    counts.answer(999, 3001)
    for seconds in (0.0001, 0.001, 0.0011, 9.0):
        counts.seconds(272).observe(seconds)
    reg = _registry(counts)

    def sample(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    assert sample("ocs_diameter_requests_total", command="credit_control") == 3
    assert sample("ocs_diameter_answers_total", command="credit_control", result_code="2001") == 2
    assert sample("ocs_diameter_answers_total", command="credit_control", result_code="None") == 1
    # a command code we do not know counts as "other" (bounded labels: a peer picks codes freely)
    assert sample("ocs_diameter_answers_total", command="other", result_code="3001") == 1
    hist = "ocs_diameter_request_seconds"
    assert sample(hist + "_bucket", command="credit_control", le="0.0005") == 1
    assert sample(hist + "_bucket", command="credit_control", le="0.001") == 2
    assert sample(hist + "_bucket", command="credit_control", le="0.002") == 3
    assert sample(hist + "_bucket", command="credit_control", le="2.5") == 3
    assert sample(hist + "_bucket", command="credit_control", le="+Inf") == 4
    assert sample(hist + "_count", command="credit_control") == 4
    assert abs((sample(hist + "_sum", command="credit_control") or 0) - 9.0022) < 1e-9


def test_nothing_counted_exports_nothing() -> None:
    """Before any request: no samples, and a scrape does not fail."""
    reg = _registry(Counts())
    assert (
        reg.get_sample_value("ocs_diameter_requests_total", {"command": "credit_control"}) is None
    )
