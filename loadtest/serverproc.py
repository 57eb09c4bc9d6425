"""Processes the benchmark starts: `ocs serve` with a generated config, and CPU readings.

The config puts Diameter, RADIUS and Nchf on free loopback ports, points at a
given Redis URL, turns metrics off and logging to warnings (so the server
measures charging, not logging), with one RADIUS client 127.0.0.1/32.
CPU time of a process is utime + stime from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ocs.store.embedded import free_port

SECRET = "loadtest-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process from /proc ((0, 0) if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of a process from /proc (0.0 if it is gone)."""
    return sum(cpu_split(pid))


def children_of(pid: int) -> list[int]:
    """Direct children of a process (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_of_tree(pid: int) -> float:
    """CPU seconds of a process and its live descendants (``ocs serve --workers N``)."""
    return cpu_of(pid) + sum(cpu_of_tree(child) for child in children_of(pid))


@dataclass
class OcsServer:
    process: subprocess.Popen[bytes]
    diameter_port: int
    radius_port: int
    config_file: Path
    log_file: Path
    nchf_port: int = 0

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(
    directory: Path,
    redis_url: str,
    policies: Path,
    identity_type: str = "e164",
    durability: str = "local",
) -> tuple[Path, int, int, int]:
    dport, rport, nport = free_port(), free_udp_port(), free_port()
    config = {
        "node": {"origin_host": "ocs.bench.example", "origin_realm": "bench.example"},
        "redis": {"url": redis_url, "max_connections": 64, "durability": durability},
        "policies": {"dir": str(policies.resolve()), "watch_interval": 0},
        "logging": {"level": "warning", "format": "json"},
        "metrics": {"enabled": False},
        "diameter": {"listen": ["127.0.0.1"], "port": dport},
        "radius": {
            "listen": ["127.0.0.1"],
            "auth_port": None,
            "acct_port": rport,
            "clients": [{"name": "loadtest", "address": "127.0.0.1/32", "secret": SECRET}],
            "identity": "user_name",
            "identity_type": identity_type,
            "dae": {"enabled": False},
        },
        "nchf": {"listen": ["127.0.0.1"], "port": nport, "notify": {"enabled": False}},
    }
    path = directory / "ocs.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, dport, rport, nport


def start_ocs(
    directory: Path,
    redis_url: str,
    policies: Path,
    wait: float = 30.0,
    workers: int = 1,
    durability: str = "local",
) -> OcsServer:
    """`ocs serve` on free ports; returns once the Diameter port accepts connections."""
    directory.mkdir(parents=True, exist_ok=True)
    config, dport, rport, nport = write_config(
        directory, redis_url, policies, durability=durability
    )
    log = directory / "ocs.log"
    extra = ["--workers", str(workers)] if workers > 1 else []
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocs", "--config", str(config), "serve", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = OcsServer(proc, dport, rport, config, log, nport)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ocs serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", dport), timeout=0.5):
                time.sleep(0.2 if workers == 1 else 1.5)  # RADIUS, the other workers
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"ocs serve did not listen within {wait}s: {log.read_text()[-2000:]}")
