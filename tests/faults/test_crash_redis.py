"""kill -9 of Redis under Gy load: acknowledged vs present vs doubled (issue 13 item 2).

``ocs serve`` restarts its embedded Redis on the same AOF; the gateway keeps going
(3004 while Redis is down). With ``appendfsync always`` (the default) every report the
node acknowledged must be in the store afterwards and none twice; with ``everysec`` Redis
may postpone its AOF write behind a slow fsync and still answer, so a crash can lose
acknowledged reports: the long case reports how many, and asserts only that nothing was
charged twice and that balances and records agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.crash_harness import Node, Run


def test_kill9_redis_under_load_loses_no_acknowledged_report(tmp_path: Path) -> None:
    """appendfsync always, one kill -9 of Redis mid-load: lost 0, doubled 0, conserved."""
    with Node(tmp_path / "node", appendfsync="always") as node:
        run = Run(node)
        run.begin()
        run.wait_answers(500)
        node.kill_redis()
        run.wait_answers(500)
        result = run.end("kill -9 Redis x1, always")
    assert result.lost == 0 and result.doubled == 0
    assert result.conservation_mismatches == 0 and result.reserved_left == 0
    assert node.events("embedded_redis_restarted") == 1


@pytest.mark.faults
@pytest.mark.timeout(900)
@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
def test_kill9_redis_repeatedly_under_load(tmp_path: Path, appendfsync: str) -> None:
    """Ten kill -9 of Redis under load: always loses nothing; everysec prints what it lost.
    Neither mode charges twice, and balances always match the records."""
    with Node(tmp_path / "node", appendfsync=appendfsync) as node:
        run = Run(node, subscribers=500, concurrency=64)
        run.begin()
        for _ in range(10):
            run.wait_answers(2_000, within=120)
            node.kill_redis()
        run.wait_answers(2_000, within=120)
        result = run.end(f"kill -9 Redis x10, {appendfsync}")
    if appendfsync == "always":
        assert result.lost == 0
    assert result.doubled == 0
    assert result.conservation_mismatches == 0 and result.reserved_left == 0
