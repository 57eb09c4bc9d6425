"""Timing for the protocol micro-benchmarks (``loadtest.gy_fastpath_bench``,
``loadtest.radius_bench``): a measurement, never a test."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_us(fn: Callable[[], object], n: int) -> float:
    """CPU µs per call of ``fn``: the best of three runs of ``n`` calls each."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6
