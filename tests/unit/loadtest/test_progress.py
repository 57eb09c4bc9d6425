"""The live view: offered vs achieved, live p50/p99 of one common second, failures, time left."""

from __future__ import annotations

import io

from rich.console import Console

from loadtest.histogram import Histogram
from loadtest.progress import ProgressView, latest_second
from loadtest.spec import LoadSpec, Model


def hist(*micros: int) -> dict[str, object]:
    h = Histogram()
    for m in micros:
        h.record(m)
    return h.to_dict()


def snapshot(recent: dict[str, dict[str, object]], **counts: int) -> dict[str, object]:
    return {"recent": recent, **counts}


def test_latest_second_is_the_newest_every_process_completed() -> None:
    """Process 0 is a second ahead: the view shows second 4, merged over both processes."""
    snaps = {
        0: snapshot({"4": hist(1000, 1000), "5": hist(9000)}),
        1: snapshot({"3": hist(5000), "4": hist(3000, 3000)}),
    }
    found = latest_second(snaps)
    assert found is not None
    second, merged = found
    assert second == 4 and merged.count == 4
    # Bucket upper bounds: within 1% of the recorded values.
    assert 1000 <= merged.percentile(50) <= 1010 and 3000 <= merged.percentile(99) <= 3030
    assert latest_second({0: snapshot({}), 1: snapshot({"4": hist(1)})}) is None


def render(view: ProgressView) -> str:
    out = io.StringIO()
    Console(file=out, width=160, force_terminal=False).print(view.render())
    return out.getvalue()


def test_headline_shows_offered_achieved_latency_failures_and_time_left() -> None:
    """Open model: offered rate, achieved rate, live p50/p99, failures, seconds left."""
    spec = LoadSpec(model=Model.OPEN, rate=2000.0, duration=30.0)
    view = ProgressView(2, "gy open", Console(file=io.StringIO()), spec)
    view.update(0, snapshot({"7": hist(1500, 2500)}, answered=100, failed=3, timeouts=1))
    view.update(1, snapshot({"7": hist(1500, 40_000)}, answered=90, failed=0, timeouts=0))
    view.rate = 1985.0
    text = render(view)
    assert "offered 2,000/s" in text and "achieved 1,985 answers/s" in text
    assert "p50 1.50 ms" in text and "p99 40.00 ms (second 7)" in text
    assert "failures 3 (timeouts 1)" in text
    assert "s of 30 s" in text and "s left" in text
    assert "all" in text  # the per-process table has the total row


def test_closed_model_and_drain_are_said_plainly() -> None:
    """Closed model: no offered rate, the session count; past the duration: draining."""
    spec = LoadSpec(model=Model.CLOSED, concurrency=64, duration=0.0, drain=5.0)
    view = ProgressView(1, "gy closed", Console(file=io.StringIO()), spec)
    view.update(0, snapshot({}, answered=0))
    text = render(view)
    assert "closed loop, 64 sessions" in text
    assert "draining open sessions (at most 5 s)" in text
    assert "p50 -, p99 -" in text
