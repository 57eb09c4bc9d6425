"""The report's numbers: log-scale bins that keep areas, percentiles, the page without plots."""

from __future__ import annotations

import itertools
import math

import pytest

from loadtest import html_report
from loadtest.histogram import Histogram
from loadtest.report import summarise
from loadtest.stats import Stats


def test_log_bins_are_true_widths_and_shares_add_up_to_one() -> None:
    """Equal-width bars for unequal buckets invented a second peak: now each bin is its width."""
    h = Histogram()
    for micros in [*range(900, 1100)] * 5 + [*range(20_000, 20_050)]:
        h.record(micros)
    edges, density = html_report.log_bins(h)
    decades = [math.log10(b) - math.log10(a) for a, b in itertools.pairwise(edges)]
    assert all(abs(d - 1 / html_report.BINS_PER_DECADE) < 1e-9 for d in decades)
    assert sum(d * w for d, w in zip(density, decades, strict=True)) == pytest.approx(1.0)
    # The slow group is 50 of 1050 answers: its bins hold that share, not more.
    slow = sum(d * w for d, w, a in zip(density, decades, edges, strict=False) if a >= 10)
    assert slow == pytest.approx(50 / 1050, rel=1e-6)


def test_by_percentile_is_monotonic_and_ends_at_the_max() -> None:
    """The percentile line never goes down and reaches the slowest answer."""
    h = Histogram()
    for micros in (100, 200, 300, 5000):
        h.record(micros)
    xs, ys = html_report.by_percentile(h)
    assert xs == sorted(xs) and ys == sorted(ys)
    assert ys[-1] == pytest.approx(h.max / 1000, rel=0.01)


def test_page_without_matplotlib_keeps_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No plotting library: the tables are all there and the page says how to get plots."""
    monkeypatch.setattr(html_report, "_plotting", lambda: None)
    stats = Stats()
    stats.answer("CCR-I", "2001", 1500, 0, True)
    page = html_report.render_html(summarise(stats, {}), stats)
    assert 'id="summary"' in page and 'id="by-command"' in page and 'id="by-result"' in page
    assert "pip install &#x27;ocs[report]&#x27;" in page or "ocs[report]" in page
    assert "<svg" not in page
