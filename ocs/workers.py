"""``ocs serve --workers N``: worker processes sharing the listening ports.

The supervisor starts the store (the embedded server, once, if no URL is
configured), then N worker processes, each a full ``ocs serve`` runtime
with its own event loop. They share the Diameter and RADIUS ports through
SO_REUSEPORT, the kernel spreading connections and datagrams over them, and
share nothing else but Redis and the node's start (DESIGN.md "Scale").

The supervisor:

- watches the embedded server it started and restarts it on the same data
  directory when it dies, as one ``ocs serve`` process does (the workers
  reach it by URL and reconnect);
- restarts a worker that dies (with a back-off if it keeps dying);
- stamps the node's start once and hands it to every worker (``--node-start``),
  restarted ones included, so all advertise one Origin-State-Id (RFC 6733
  §8.16), a new one only when the node restarts;
- passes SIGTERM/SIGINT on and waits for the workers to drain; passes SIGHUP
  on so every worker reloads its policies.

A worker exits when its supervisor dies, however it dies (``kill -9``):
Linux delivers SIGTERM to it (``PR_SET_PDEATHSIG``, set between fork and
exec, then the parent checked to close the race with a parent dying before
that), and it drains and stops. Until the last worker is gone, the node lock
it inherited (:class:`ocs.preflight.NodeLock`) and its ports keep a new
``ocs serve`` from starting beside it. Worker 0 also sweeps abandoned
sessions and renews allowances. The supervisor serves the node's /metrics,
/livez, /readyz and /health, merged from every worker's private endpoint
(:mod:`ocs.node_ops`).
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
from ocs.metrics import WORKER_RESTARTS
from ocs.node_ops import NodeEndpoint, workers_not_ready
from ocs.pdeathsig import die_with_parent
from ocs.preflight import NodeLock
from ocs.service_manager import notify
from ocs.store.embedded import EmbeddedRedis

log = structlog.get_logger("ocs.workers")

RESTART_WINDOW = 60.0
MAX_QUICK_RESTARTS = 5
TICK = 0.2  # seconds between checks of the workers
STORE_INTERVAL = 0.5  # seconds between checks of the embedded store while it is up


class Supervisor:
    """Start, watch and stop N worker processes and the embedded store."""

    def __init__(
        self, config: Config, workers: int, node_start: int = 0, lock: NodeLock | None = None
    ) -> None:
        self.config = config
        self.count = workers
        self.node_start = node_start or time.time_ns()
        self.lock = lock
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.starts: dict[int, list[float]] = {}
        self.stopping = False
        self.embedded: EmbeddedRedis | None = None
        self._store_due = 0.0

    def _spawn(self, index: int, redis_url: str | None) -> None:
        env = dict(os.environ)
        if redis_url is not None:  # the embedded server: every worker attaches to ours
            env["OCS_REDIS__URL"] = redis_url
        env.pop("NOTIFY_SOCKET", None)  # systemd hears from the supervisor alone
        if self.count > 1:
            env["OCS_DIAMETER__REUSE_PORT"] = "true"
        args = [sys.executable, "-m", "ocs"]
        if self.config.file is not None:
            args += ["--config", str(self.config.file)]
        args += ["serve", "--worker-index", str(index), "--node-start", str(self.node_start)]
        self.procs[index] = subprocess.Popen(
            args,
            env=env,
            pass_fds=(self.lock.fd,) if self.lock is not None and self.lock.fd is not None else (),
            preexec_fn=die_with_parent(signal.SIGTERM),  # they drain and stop
        )
        self.starts.setdefault(index, []).append(time.monotonic())
        log.info("worker_started", worker=index, pid=self.procs[index].pid)

    def _signal(self, signum: int, _: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for proc in self.procs.values():
                proc.send_signal(signal.SIGHUP)
            return
        self.stopping = True

    def run(self) -> int:
        url = None  # an external store: each worker reads it from the configuration
        if self.config.redis.embedded:
            self.embedded = EmbeddedRedis.from_config(self.config)
            self.embedded.start()  # from the main thread: the server lives as long as we do
            url = self.embedded.url
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        endpoint = None
        try:
            for index in range(self.count):
                self._spawn(index, url)
            endpoint = self._endpoint()  # after the spawns: /health never sees 0 of N
            ready = False
            while not self.stopping:
                time.sleep(TICK)
                ready = ready or self._notify_ready()
                self._watch_store()
                self._restart_dead(url)
        finally:
            notify("STOPPING=1")
            if endpoint is not None:
                endpoint.stop()
            self._stop_all()
            if self.embedded is not None and not self.embedded.attached:
                self.embedded.stop()
        return 0

    def _endpoint(self) -> NodeEndpoint | None:
        """The node's /metrics and probes over every worker (ocs/node_ops.py)."""
        m = self.config.metrics
        if not m.enabled:
            return None
        endpoint = NodeEndpoint(m.host, m.port, self.count, self.running, m.health_details)
        endpoint.start()
        return endpoint

    def _notify_ready(self) -> bool:
        """READY=1 to systemd once every worker is ready (Type=notify); True once said."""
        if workers_not_ready(os.getpid(), self.count, self.running()) is not None:
            return False
        notify("READY=1", f"STATUS=serving with {self.count} workers")
        return True

    def running(self) -> dict[int, int]:
        """Slot -> pid of the workers running now (read from the endpoint's thread)."""
        return {i: p.pid for i, p in list(self.procs.items()) if p.returncode is None}

    def _watch_store(self) -> None:
        """Restart the embedded server if it died (issue 13 item 6: it was left a zombie)."""
        if self.embedded is None or self.stopping or time.monotonic() < self._store_due:
            return
        wait = self.embedded.watch(STORE_INTERVAL)
        self._store_due = time.monotonic() + wait

    def _restart_dead(self, url: str | None) -> None:
        for index, proc in list(self.procs.items()):
            if proc.poll() is None or self.stopping:
                continue
            recent = [t for t in self.starts[index] if time.monotonic() - t < RESTART_WINDOW]
            self.starts[index] = recent
            log.error("worker_died", worker=index, returncode=proc.returncode, recent=len(recent))
            if len(recent) >= MAX_QUICK_RESTARTS:
                time.sleep(1.0)  # crashing in a loop: slow down, keep trying
            WORKER_RESTARTS.inc()
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


def run_workers(
    config: Config, workers: int, node_start: int = 0, lock: NodeLock | None = None
) -> int:
    return Supervisor(config, workers, node_start, lock).run()
