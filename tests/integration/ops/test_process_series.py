"""Each process's /metrics carries its own series only (`ocs serve` vs `ocs export`).

Regression: the server showed `ocs_export_healthy 0.0` (an alert on it fired
for every server) and the exporter showed the server's series, because both
served the default registry that every imported metrics module filled.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ocs.store.embedded import free_port
from tests.serve_harness import ROOT, serving, write_config


def scrape(port: int, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_ready(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_server_and_exporter_show_only_their_own_series(tmp_path: Path) -> None:
    """The server has no ocs_export_*; the exporter has ocs_export_* and no server series."""
    export_port = free_port()
    extra = (
        "diameter: {listen: ['127.0.0.1'], port: 0}\n"
        f"export: {{output_dir: '{tmp_path / 'export'}', metrics_port: {export_port}}}\n"
    )
    cfg, port = write_config(tmp_path, extra=extra)
    with serving(cfg):
        wait_ready(port)
        exporter = subprocess.Popen(
            [sys.executable, "-m", "ocs", "--config", str(cfg), "export"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            server_families = families(scrape(port))
            export_families = families(scrape(export_port))
        finally:
            exporter.send_signal(signal.SIGTERM)
            exporter.wait(timeout=30)
    assert "ocs_build_info" in server_families
    assert "ocs_policy_reloads_total" in server_families
    assert not [f for f in server_families if f.startswith("ocs_export_")]
    assert {"ocs_export_healthy", "ocs_export_lag_seconds"} <= export_families
    leaked = [
        f
        for f in export_families
        if f.startswith(("ocs_build", "ocs_policy", "ocs_diameter", "ocs_radius", "ocs_embedded"))
    ]
    assert leaked == []
    assert "process_resident_memory_bytes" in export_families  # its own process's, still
