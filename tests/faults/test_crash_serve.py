"""kill -9 of `ocs serve`, of one of its workers, and of the worker supervisor, under Gy
load: acknowledged vs present vs doubled, balances against records.

A killed node takes its embedded Redis along (the kernel kills it with its owner) and is
started again on the same data; a killed worker is restarted by its supervisor; a killed
supervisor takes its workers along (issue 13 item 7) and the node is started again. The
gateway reconnects and keeps starting sessions; whatever was in flight may or may not
have been applied, never twice, and nothing acknowledged may be missing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faults.crash_harness import Audit, Node, Run, running, until


def _check(result: Audit) -> None:
    assert result.lost == 0 and result.doubled == 0
    assert result.conservation_mismatches == 0 and result.reserved_left == 0


def _kill_nodes(tmp_path: Path, workers: int, kills: int, label: str) -> Audit:
    with Node(tmp_path / "node", workers=workers) as node:
        run = Run(node)
        run.begin()
        for _ in range(kills):
            run.wait_answers(400, within=120)
            node.kill_node()
            node.start()
        run.wait_answers(400, within=120)
        return run.end(label)


def _kill_workers(tmp_path: Path, kills: int, label: str) -> Audit:
    with Node(tmp_path / "node", workers=2) as node:
        run = Run(node)
        run.begin()
        for _ in range(kills):
            run.wait_answers(400, within=120)
            victim = node.busiest_worker()
            os.kill(victim, signal.SIGKILL)
            until(lambda v=victim: not running(v) and len(node.worker_pids()) == 2, 30)
        run.wait_answers(400, within=120)
        result = run.end(label)
        assert node.proc is not None and node.proc.poll() is None  # the supervisor ran on
    return result


def test_kill9_serve_under_load(tmp_path: Path) -> None:
    """kill -9 of a one-process `ocs serve` (its Redis goes with it), started again."""
    _check(_kill_nodes(tmp_path, workers=1, kills=1, label="kill -9 ocs serve x1"))


def test_kill9_one_worker_under_load(tmp_path: Path) -> None:
    """kill -9 of one of two workers: the supervisor restarts it, the gateway reconnects."""
    _check(_kill_workers(tmp_path, kills=1, label="kill -9 worker x1"))


@pytest.mark.faults
@pytest.mark.timeout(900)
def test_kill9_serve_repeatedly(tmp_path: Path) -> None:
    """Ten kill -9 of `ocs serve` under load, each followed by a restart."""
    _check(_kill_nodes(tmp_path, workers=1, kills=10, label="kill -9 ocs serve x10"))


@pytest.mark.faults
@pytest.mark.timeout(900)
def test_kill9_workers_repeatedly(tmp_path: Path) -> None:
    """Ten kill -9 of a worker (the one holding most connections) under load."""
    _check(_kill_workers(tmp_path, kills=10, label="kill -9 worker x10"))


@pytest.mark.faults
@pytest.mark.timeout(900)
def test_kill9_supervisor_repeatedly(tmp_path: Path) -> None:
    """Five kill -9 of the worker supervisor under load: its workers and Redis exit with
    it (none left running), and the node starts again each time."""
    _check(_kill_nodes(tmp_path, workers=2, kills=5, label="kill -9 supervisor x5"))
