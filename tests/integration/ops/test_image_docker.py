"""The real image, where a Docker daemon answers: build it, run it, probe /livez and /readyz.

This machine (and CI on it) has the docker client but no daemon, so here
the test says so and skips; test_image_layout.py checks the same layout
without Docker on every run.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from ocs.store.embedded import free_port
from tests.integration.ops.dockerfile import ROOT


def _daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.skipif(not _daemon(), reason="no Docker daemon here: test_image_layout covers it")
def test_the_image_builds_starts_and_is_ready() -> None:
    """docker build, docker run (loopback-published port), /livez and /readyz 200, clean stop."""
    tag = f"ocs-test:{uuid.uuid4().hex[:8]}"
    port = free_port()
    name = f"ocs-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=900)
    try:
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9464", tag],
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while _status(port, "/readyz") != 200:
            assert time.monotonic() < deadline, "the container never became ready"
            time.sleep(1)
        assert _status(port, "/livez") == 200
        stopped = subprocess.run(["docker", "stop", "-t", "20", name], timeout=60, check=False)
        assert stopped.returncode == 0
        code = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        assert code == "0"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=60, check=False)
