"""`python -m loadtest.bench --quick` (what `make bench-quick` runs): its own Redis, `ocs
serve`, the no-op responders; the table is printed, the results JSON written, and every
OCS step passes the conservation check. Speed is not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(120)
def test_quick_bench_produces_results_and_conserves(tmp_path: Path) -> None:
    """Quick bench without FreeRADIUS: exit 0, one JSON with every step, conservation passes."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench",
            "--quick",
            "--no-freeradius",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ocs bench" in done.stdout
    [path] = tmp_path.glob("bench-*-quick.json")
    steps = json.loads(path.read_text())["steps"]
    ocs_steps = [s for s in steps if s["target"] == "ocs"]
    assert {s["protocol"] for s in ocs_steps} == {"gy", "radius", "nchf"}
    for step in ocs_steps:
        assert step["summary"]["answered"] > 0
        assert step["summary"]["conservation"]["ok"], step["summary"]["conservation"]
        assert step["server_cpu_s"] > 0
        redis = step["redis"]  # what the step made Redis do (loadtest/redis_probe.py)
        assert redis["redis_cpu_us_per_request"] > 0 and redis["aof_bytes_per_request"] > 0
        assert redis["script_calls_per_request"] > 0 and redis["commandstats"]
    fr = next(s for s in steps if s["target"] == "freeradius")
    assert fr["skipped"] == "--no-freeradius" and fr["summary"] is None
