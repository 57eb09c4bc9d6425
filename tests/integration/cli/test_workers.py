"""`ocs serve --workers 2`: workers share the ports, a killed worker is restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from ocs.store.embedded import free_port
from tests.serve_harness import health, serving, write_config


def _workers(pid: int) -> list[int]:
    """Child processes of ``pid`` that are ocs workers."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    found = []
    for child in (int(p) for p in out.stdout.split()):
        try:
            if b"--worker-index" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue  # exited meanwhile
    return found


def _listeners(port: int) -> int:
    ss = subprocess.run(
        ["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    return ss.stdout.count("LISTEN")


def _until(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.2)


def test_two_workers_share_ports_and_a_crashed_worker_is_restarted(tmp_path: Path) -> None:
    """Both workers bind the Diameter port (SO_REUSEPORT); kill -9 one -> restarted; SIGTERM -> 0."""
    dia, acct, auth = free_port(), free_port(), free_port()
    cfg, metrics = write_config(
        tmp_path,
        extra=(
            "workers: 2\n"
            f"diameter: {{listen: ['127.0.0.1'], port: {dia}}}\n"
            f"radius: {{listen: ['127.0.0.1'], acct_port: {acct}, auth_port: {auth}, clients: "
            "[{name: t, address: 127.0.0.1/32, secret: s}]}\n"
        ),
    )
    with serving(cfg) as sup:
        _until(lambda: len(_workers(sup.pid)) == 2 and _listeners(dia) == 2, 40)
        workers = _workers(sup.pid)
        assert len(workers) == 2 and _listeners(dia) == 2
        assert health(metrics)["ok"]
        os.kill(workers[1], signal.SIGKILL)
        _until(lambda: len(_workers(sup.pid)) == 2 and workers[1] not in _workers(sup.pid), 20)
        replaced = _workers(sup.pid)
        assert len(replaced) == 2 and workers[1] not in replaced
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=40) == 0
