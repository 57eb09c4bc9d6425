"""``ocs serve --workers N``: worker processes sharing the listening ports.

The supervisor starts the store (the embedded server, once, if no URL is
configured), then N worker processes, each a full ``ocs serve`` runtime
with its own event loop. They share the Diameter and RADIUS ports through
SO_REUSEPORT, the kernel spreading connections and datagrams over them, and
share nothing else but Redis (DESIGN.md "Scale"). A worker that dies is
restarted (with a back-off if it keeps dying); SIGTERM/SIGINT are passed on
and the supervisor waits for the workers to drain; SIGHUP is passed on so
every worker reloads its policies. Worker 0 also serves /metrics and
/health, sweeps abandoned sessions and renews allowances.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import structlog

from ocs.config import Config
from ocs.store.embedded import EmbeddedRedis

log = structlog.get_logger("ocs.workers")

RESTART_WINDOW = 60.0
MAX_QUICK_RESTARTS = 5


class Supervisor:
    """Start, watch and stop N worker processes."""

    def __init__(self, config: Config, workers: int) -> None:
        self.config = config
        self.count = workers
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.starts: dict[int, list[float]] = {}
        self.stopping = False
        self.embedded: EmbeddedRedis | None = None

    def _spawn(self, index: int, redis_url: str) -> None:
        env = dict(os.environ, OCS_REDIS__URL=redis_url)
        if self.count > 1:
            env["OCS_DIAMETER__REUSE_PORT"] = "true"
        args = [sys.executable, "-m", "ocs"]
        if self.config.file is not None:
            args += ["--config", str(self.config.file)]
        args += ["serve", "--worker-index", str(index)]
        self.procs[index] = subprocess.Popen(args, env=env)
        self.starts.setdefault(index, []).append(time.monotonic())
        log.info("worker_started", worker=index, pid=self.procs[index].pid)

    def _signal(self, signum: int, _: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for proc in self.procs.values():
                proc.send_signal(signal.SIGHUP)
            return
        self.stopping = True

    def run(self) -> int:
        url = self.config.redis.url
        if url is None:
            self.embedded = EmbeddedRedis.from_config(self.config)
            self.embedded.start()
            url = self.embedded.url
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        try:
            for index in range(self.count):
                self._spawn(index, url)
            while not self.stopping:
                time.sleep(0.2)
                self._restart_dead(url)
        finally:
            self._stop_all()
            if self.embedded is not None and not self.embedded.attached:
                self.embedded.stop()
        return 0

    def _restart_dead(self, url: str) -> None:
        for index, proc in list(self.procs.items()):
            if proc.poll() is None or self.stopping:
                continue
            recent = [t for t in self.starts[index] if time.monotonic() - t < RESTART_WINDOW]
            self.starts[index] = recent
            log.error("worker_died", worker=index, returncode=proc.returncode, recent=len(recent))
            if len(recent) >= MAX_QUICK_RESTARTS:
                time.sleep(1.0)  # crashing in a loop: slow down, keep trying
            if self.embedded is not None and not self.embedded.is_running():
                self.embedded.start()
            self._spawn(index, url)

    def _stop_all(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.info("workers_stopped", workers=len(self.procs))


def run_workers(config: Config, workers: int) -> int:
    return Supervisor(config, workers).run()
