"""The scaling benchmark's core plan: Redis, workers and generator on disjoint cores."""

from __future__ import annotations

from loadtest.scale import generator_cores, layouts


def test_sixteen_cores_fit_every_count_apart() -> None:
    """1, 2, 4, 8 workers on 16 cores: Redis alone, one core per worker, no core shared."""
    plan, skipped = layouts([1, 2, 4, 8], list(range(16)))
    assert not skipped and [p.workers for p in plan] == [1, 2, 4, 8]
    for p in plan:
        assert p.pinned and len(p.server) == p.workers
        assert len(p.generator) == generator_cores(p.workers)
        sets = [p.redis, set(p.server), p.generator]
        assert sum(len(s) for s in sets) == len(set().union(*sets))  # disjoint


def test_two_cores_run_one_unpinned_step_and_say_what_is_needed() -> None:
    """On 2 cores nothing fits apart: each count says what it needs, one shared step remains."""
    plan, skipped = layouts([1, 2, 4, 8], [0, 1])
    assert skipped == [
        "1 workers: needs 3 cores, this machine has 2",
        "2 workers: needs 4 cores, this machine has 2",
        "4 workers: needs 7 cores, this machine has 2",
        "8 workers: needs 13 cores, this machine has 2",
    ]
    assert len(plan) == 1 and not plan[0].pinned and plan[0].workers == 1
