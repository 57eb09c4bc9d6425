"""Redis stopped (SIGSTOP) under Gy load, then continued: 3004 while it is stalled, 2001
again once it answers, and afterwards nothing lost, nothing twice, balances matching
records.

A stalled Redis accepts connections and reads nothing: every charging call waits for its
time-out (``redis.timeout``, 2 s) and the node answers 3004 TOO_BUSY (the default
``storage_failure_result_code``), which tells the gateway to retry elsewhere; the
supervision of the embedded server sees a live process and starts no second one on its
AOF. Requests written to Redis before the stall may run when it continues, after their
3004: a gateway that retries them is answered from the session's record (idempotent).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.crash_harness import Node, Run


def _stall(tmp_path: Path, workers: int, seconds: float) -> None:
    with Node(tmp_path / "node", workers=workers) as node:
        run = Run(node)
        load = run.begin()
        run.wait_answers(300)
        pid = node.redis_pid
        stopped = time.monotonic() - load.epoch
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic() - load.epoch
        run.wait_answers(500)
        result = run.end(f"SIGSTOP Redis {seconds:g} s, {workers} worker(s)")
        assert node.redis_pid == pid  # the same server, never a second one on its AOF
    # From half a second in (answers already on their way) to the moment it continued.
    during = load.counts.between(stopped + 0.5, resumed)
    after = load.counts.between(resumed, float("inf"))
    print(f"  while stalled: {dict(during)}; after: {dict(after)}")
    assert during["3004"] > 0 and during["2001"] == 0
    assert after["2001"] > 0
    assert result.lost == 0 and result.doubled == 0
    assert result.conservation_mismatches == 0 and result.reserved_left == 0


def test_redis_stalled_4s_under_load_one_worker(tmp_path: Path) -> None:
    """SIGSTOP 4 s, one worker: 3004 during, 2001 after, nothing lost or doubled."""
    _stall(tmp_path, workers=1, seconds=4)


@pytest.mark.faults
@pytest.mark.timeout(600)
@pytest.mark.parametrize("workers", [1, 2])
def test_redis_stalled_10s_under_load(tmp_path: Path, workers: int) -> None:
    """SIGSTOP 10 s with 1 and 2 workers: 3004 during, 2001 after, nothing lost or doubled."""
    _stall(tmp_path, workers=workers, seconds=10)
