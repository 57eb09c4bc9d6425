"""`ocs loadtest` as a command: a short Gy run against `ocs serve` with its own accounts
(and an octet bucket each), report files, exit status 0 when conservation passes; bad
options are one line on stderr and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.serverproc import OcsServer, start_ocs

POLICIES = Path(__file__).resolve().parents[3] / "policies"
# `ocs` as installed: the load tester registers `loadtest` by entry point.
OCS = "from ocs.cli.main import main; main()"


@pytest.fixture(scope="module")
def ocs_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcsServer]:
    server = start_ocs(tmp_path_factory.mktemp("ocs-cli"), redis_url, POLICIES)
    yield server
    server.stop()


def ocs(server: OcsServer, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OCS, "--config", str(server.config_file), "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=cwd,
    )


@pytest.mark.timeout(100)
def test_loadtest_command_runs_and_conserves(ocs_server: OcsServer, tmp_path: Path) -> None:
    """Port, realm and Redis from the server's config; money and octet buckets both conserved."""
    out = tmp_path / "report"
    done = ocs(
        ocs_server,
        "--duration", "1.5", "--accounts", "5", "--octets", "2MB",
        "--event-share", "0.1", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())
    cons = result["conservation"]
    assert cons["ok"] and cons["records"] > 0
    assert cons["unit_decrease"]["total_octets"] == cons["unit_recorded"]["total_octets"] > 0
    assert (out / "report.html").exists()


@pytest.mark.timeout(100)
def test_report_goes_under_loadtest_results_and_its_path_is_printed(
    ocs_server: OcsServer, tmp_path: Path
) -> None:
    """Without --out: loadtest-results/<time>-gy-closed/report.html, named on the last line."""
    done = ocs(ocs_server, "--duration", "1", "--accounts", "3", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("report: loadtest-results/") and last.endswith("-gy-closed/report.html")
    report = tmp_path / last.removeprefix("report: ")
    assert report.is_file() and (report.parent / "results.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--mscc", "0"), "--mscc"),
        (("--plan", "no-such-plan"), "unknown plan"),
        (("--rating-groups", "ten"), "--rating-groups"),
    ],
)
def test_loadtest_command_rejects_bad_options(
    ocs_server: OcsServer, args: tuple[str, ...], message: str
) -> None:
    """A bad option: exit status 2, the option named on stderr, nothing run."""
    done = ocs(ocs_server, *args)
    assert done.returncode == 2
    assert message in done.stderr
