"""`ocs serve --workers 2`: /metrics counts every worker's answers, across a worker's restart.

Regression (issue 15 item 2): with two workers /metrics showed one worker's
series (`credit_control 4915` while the generator received 9,825 answers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ocs.node_ops import fetch, worker_socket
from ocs.store.embedded import free_port
from tests.serve_harness import ROOT


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_ready(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while get(port, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, f"node not ready: {get(port, '/health')}"
        time.sleep(0.3)


def credit_control(text: str) -> float:
    """ocs_diameter_answers_total of credit_control, every result code."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('ocs_diameter_answers_total{command="credit_control"')
    )


def worker_pids(port: int) -> dict[str, int]:
    report: dict[str, Any] = json.loads(get(port, "/health")[1])
    return {
        name: int(part["pid"])
        for name, part in report["components"].items()
        if name.startswith("worker ") and "pid" in part
    }


def test_two_workers_are_counted_and_a_restart_loses_no_count(tmp_path: Path) -> None:
    """Public /metrics == the generator's answers == the workers' sum; kill -9 one: unchanged."""
    metrics, diameter = free_port(), free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n"
        f"policies: {{dir: '{ROOT / 'policies'}'}}\n"
        f"metrics: {{port: {metrics}, health_details: true}}\n"
        "logging: {format: json}\n"
        f"diameter: {{listen: ['127.0.0.1'], port: {diameter}, one_connection_per_peer: false}}\n"
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve", "--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(metrics)
        load = subprocess.run(
            [sys.executable, "-m", "ocs", "--config", str(cfg), "loadtest", "--duration", "2",
             "--accounts", "20", "--connections", "16", "--quiet", "--out", str(tmp_path / "lt")],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr[-2000:]
        answered = json.loads((tmp_path / "lt" / "results.json").read_text())["answered"]
        per_worker = []
        for slot in (0, 1):
            got = fetch(worker_socket(node.pid, slot), "/metrics")
            assert got is not None and got[0] == 200
            per_worker.append(credit_control(got[1]))
        print(f"answered {answered}, per worker {per_worker}")
        assert all(n > 0 for n in per_worker), "SO_REUSEPORT gave one worker everything"
        status, text = get(metrics, "/metrics")
        assert status == 200
        assert credit_control(text) == sum(per_worker) == answered > 0
        assert "ocs_workers_running 2.0" in text
        assert 'process_resident_memory_bytes{worker="1"}' in text

        before = worker_pids(metrics)
        os.kill(before["worker 1"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while worker_pids(metrics).get("worker 1") in (None, before["worker 1"]):
            assert time.monotonic() < deadline, "worker 1 was not restarted"
            time.sleep(0.3)
        wait_ready(metrics)
        _, after = get(metrics, "/metrics")
        assert credit_control(after) == answered  # the dead worker's answers still counted
        assert "ocs_worker_restarts_total 1.0" in after
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=60) == 0
