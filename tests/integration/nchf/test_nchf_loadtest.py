"""The load tester's Nchf mode end to end: `ocs serve` in a subprocess on the suite's Redis,
simulated SMFs over HTTP/2 from real generator processes (closed and open models), the
report written and the conservation check passing. Speed is not asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.runner import Provisioning, RunOptions, run
from loadtest.serverproc import OcsServer, start_ocs
from loadtest.spec import LoadSpec, Model, Protocol, Shape, Target
from ocs.policy.loader import load_policies

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def ocs_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcsServer]:
    server = start_ocs(tmp_path_factory.mktemp("ocs"), redis_url, POLICIES)
    yield server
    server.stop()


def _options(redis_url: str, spec: LoadSpec, out: Path) -> RunOptions:
    return RunOptions(
        spec, redis_url, load_policies(POLICIES), Provisioning(accounts=10), out_dir=out, quiet=True
    )


@pytest.mark.timeout(60)
def test_nchf_closed_run_reports_and_conserves(
    ocs_server: OcsServer, redis_url: str, tmp_path: Path
) -> None:
    """Closed-model Nchf run (1-2 rating groups, 2 processes): every session released, report written, conservation exact."""
    spec = LoadSpec(
        protocol=Protocol.NCHF,
        target=Target(port=ocs_server.nchf_port),
        model=Model.CLOSED,
        concurrency=8,
        duration=1.5,
        processes=2,
        connections=2,
        shape=Shape(updates=2, min_mscc=1, max_mscc=2),
    )
    summary = run(_options(redis_url, spec, tmp_path))
    assert summary["answered"] > 0
    assert summary["failed_answers"] == 0, summary
    assert set(summary["by_command"]) == {"create", "update", "release"}
    assert summary["by_command"]["release"]["count"] == summary["sessions"]["completed"]
    cons = summary["conservation"]
    assert cons["ok"], cons
    assert cons["records"] == summary["sessions"]["completed"]
    assert cons["money_decrease"] > 0 and cons["money_decrease"] == cons["money_recorded"]
    assert "<svg" in (tmp_path / "report.html").read_text()


@pytest.mark.timeout(60)
def test_nchf_open_model_run_conserves(
    ocs_server: OcsServer, redis_url: str, tmp_path: Path
) -> None:
    """Open-model Nchf run bounded by a session count: all 30 sessions complete, conservation exact."""
    spec = LoadSpec(
        protocol=Protocol.NCHF,
        target=Target(port=ocs_server.nchf_port),
        model=Model.OPEN,
        rate=200,
        duration=5.0,
        sessions=30,
        connections=2,
        shape=Shape(updates=2),
    )
    summary = run(_options(redis_url, spec, tmp_path))
    assert summary["sessions"]["started"] == 30
    assert summary["sessions"]["completed"] == 30
    assert summary["conservation"]["ok"], summary["conservation"]
