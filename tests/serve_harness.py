"""Running `ocs serve` as a real subprocess for tests: config, start, /health, stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ocs.store.embedded import free_port

ROOT = Path(__file__).parents[1]


def health(port: int) -> dict[str, Any]:
    """The /health report (a 503 carries it too); OSError while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]


def wait_for_health(port: int, within: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        try:
            return health(port)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no /health on port {port} within {within} s") from None
            time.sleep(0.2)


def write_config(
    tmp_path: Path, policies: Path | None = None, watch_interval: float = 2.0, extra: str = ""
) -> tuple[Path, int]:
    """A config on the embedded store in ``tmp_path``; returns (file, metrics port)."""
    port = free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n"
        f"policies: {{dir: '{policies or ROOT / 'tests/policies'}', "
        f"watch_interval: {watch_interval}}}\n"
        f"metrics: {{port: {port}, health_details: true}}\nlogging: {{format: json}}\n" + extra
    )
    return cfg, port


@contextmanager
def serving(cfg: Path, capture: bool = False) -> Iterator[subprocess.Popen[str]]:
    """`ocs serve` with ``cfg``; SIGTERM (then kill) on the way out."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
        cwd=ROOT,
        stdout=out,
        stderr=out,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocs", "--config", str(cfg), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
