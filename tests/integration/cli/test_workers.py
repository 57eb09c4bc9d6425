"""`ocs serve --workers 2`: workers share the ports, a killed worker is restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ocs.store.embedded import free_port

ROOT = Path(__file__).parents[3]


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return bool(json.loads(resp.read())["ok"])
    except OSError:
        return False


def test_two_workers_share_ports_and_a_crashed_worker_is_restarted(tmp_path: Path) -> None:
    """Both workers bind the Diameter and RADIUS ports (SO_REUSEPORT); kill -9 one -> restarted."""
    metrics, dia, acct, auth = free_port(), free_port(), free_port(), free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n"
        f"policies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\nlogging: {{format: json}}\nworkers: 2\n"
        f"diameter: {{listen: ['127.0.0.1'], port: {dia}}}\n"
        f"radius: {{listen: ['127.0.0.1'], acct_port: {acct}, auth_port: {auth}, clients: "
        f"[{{name: t, address: 127.0.0.1/32, secret: s}}]}}\n"
    )
    sup = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 40
        while (
            not (_serving(metrics) and len(_children(sup.pid)) >= 2) and time.monotonic() < deadline
        ):
            time.sleep(0.3)
        workers = [
            p
            for p in _children(sup.pid)
            if b"--worker-index" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
        ss = subprocess.run(
            ["ss", "-Htlnp", f"sport = :{dia}"], capture_output=True, text=True, check=False
        )
        assert ss.stdout.count("LISTEN") == 2  # both workers listen on the Diameter port
        os.kill(workers[1], signal.SIGKILL)
        deadline = time.monotonic() + 20
        replaced: list[int] = []
        while time.monotonic() < deadline and len(replaced) < 2:
            time.sleep(0.3)
            replaced = [
                p
                for p in _children(sup.pid)
                if p != workers[1]
                and Path(f"/proc/{p}/cmdline").exists()
                and b"--worker-index" in Path(f"/proc/{p}/cmdline").read_bytes()
            ]
        assert len(replaced) == 2 and workers[1] not in replaced
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=40) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
