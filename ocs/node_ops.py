"""The operations endpoint of a node of N workers, served by their supervisor.

With ``ocs serve --workers N`` each worker serves its own /metrics, /readyz
and /health on a private socket (:func:`worker_socket`: an abstract unix
socket named after the supervisor's pid and the worker's index, so it needs
no file and no port). The supervisor serves the node's public endpoint on
``metrics.host:port`` and answers from all of them:

- ``/metrics``: every worker's series merged (:mod:`ocs.metrics_merge`:
  counters summed, restarts retired, per-process series labelled by worker),
  plus the supervisor's own (worker restarts, workers running, the embedded
  store's restarts, its process);
- ``/readyz``: ready when every worker runs and is ready;
- ``/livez``: the supervisor's loop answers;
- ``/health``: one component per worker (its own report, details behind the
  same flag), and the supervisor's.

The endpoint runs on its own event loop in a thread: the supervisor's main
thread is a blocking watch loop.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ocs.http import register_health, register_ready, serve_http, set_listeners_up
from ocs.metrics import OWN_FAMILIES, WORKERS_RUNNING
from ocs.metrics_merge import Retired, merge, parse

log = structlog.get_logger("ocs.node_ops")

SCRAPE_TIMEOUT = 2.0  # seconds per worker and page


def worker_socket(supervisor_pid: int, index: int) -> str:
    """The abstract unix socket (leading NUL) of worker ``index``'s private endpoint."""
    return f"\0ocs-{supervisor_pid}-worker-{index}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def workers_not_ready(supervisor: int, count: int, running: dict[int, int]) -> str | None:
    """None when each of ``count`` workers runs and its /readyz is 200, else which are not."""
    waiting = [
        str(slot)
        for slot in range(count)
        if slot not in running
        or (fetch(worker_socket(supervisor, slot), "/readyz") or (0, ""))[0] != 200
    ]
    return f"worker {', '.join(waiting)} not ready" if waiting else None


def fetch(path: str, page: str, timeout: float = SCRAPE_TIMEOUT) -> tuple[int, str] | None:
    """GET ``page`` from the endpoint at unix socket ``path``: (status, body), None if down."""
    conn = _UnixConnection(path, timeout)
    try:
        conn.request("GET", page)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class NodeCollector(Collector):
    """The node's /metrics: the workers' merged, and the supervisor's own families."""

    def __init__(
        self, workers: Callable[[], dict[int, int]], socket_of: Callable[[int], str]
    ) -> None:
        self.workers = workers  # slot -> pid of the running workers
        self.socket_of = socket_of
        self.retired = Retired()
        self._lock = threading.Lock()

    def own(self) -> list[Metric]:
        """The supervisor's families, through the text format like the workers' (same shapes)."""
        return [
            m
            for m in parse(generate_latest(REGISTRY).decode())
            if m.name.removesuffix("_created") in OWN_FAMILIES or _per_process(m)
        ]

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # two scrapes at once: one retirement of each pid
            sources: list[tuple[str, list[Metric]]] = [("supervisor", self.own())]
            answered: set[int] = set()
            for slot, pid in sorted(self.workers().items()):
                got = fetch(self.socket_of(slot), "/metrics")
                if got is None or got[0] != 200:
                    continue
                families = parse(got[1])
                self.retired.seen(slot, pid, families)
                sources.append((str(slot), families))
                answered.add(slot)
            sources += self.retired.sources(answered)
            merged = merge(sources)
        yield from merged


def _per_process(metric: Metric) -> bool:
    return metric.name.startswith(("process_", "python_"))


class NodeEndpoint:
    """The supervisor's public endpoint over its N workers (started once, stopped once)."""

    def __init__(
        self,
        host: str,
        port: int,
        count: int,
        workers: Callable[[], dict[int, int]],
        details: bool = False,
    ) -> None:
        self.host, self.port, self.count = host, port, count
        self.workers = workers
        self.details = details
        self.supervisor = os.getpid()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(workers, self.socket_of))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    def socket_of(self, slot: int) -> str:
        return worker_socket(self.supervisor, slot)

    def _worker_report(self, slot: int) -> dict[str, Any]:
        """The worker's own /health; one that runs but does not answer yet is starting."""
        pid = self.workers().get(slot)
        if pid is None:
            return {"ok": False, "status": "not running"}
        got = fetch(self.socket_of(slot), "/health")
        if got is None:
            return {"ok": True, "status": "starting", "pid": pid}
        report = json.loads(got[1])
        warnings = [c["warning"] for c in report["components"].values() if c.get("warning")]
        return {
            "ok": bool(report["ok"]),
            "status": report["status"],
            "warning": warnings[0] if warnings else None,
            "pid": pid,
            "components": report["components"],
        }

    def _workers_report(self) -> dict[str, Any]:
        running = self.workers()
        WORKERS_RUNNING.set(len(running))
        return {"ok": len(running) == self.count, "running": len(running)}

    def _not_ready(self) -> str | None:
        """For /readyz: every worker running and ready, or which are not."""
        return workers_not_ready(self.supervisor, self.count, self.workers())

    def start(self) -> int:
        """Serve from a thread; returns the bound port."""
        for slot in range(self.count):
            register_health(f"worker {slot}", functools.partial(self._worker_report, slot))
        register_health("workers", self._workers_report)
        register_ready("workers", self._not_ready)
        set_listeners_up(True)  # the workers' own listeners are in their readiness
        loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(
            serve_http(self.host, self.port, self.registry, self.details)
        )
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="node-ops", daemon=True)
        self._thread.start()
        bound = self._server.sockets[0].getsockname()[1] if self._server.sockets else self.port
        log.info("node_endpoint_listening", host=self.host, port=bound, workers=self.count)
        return int(bound)

    def stop(self) -> None:
        set_listeners_up(False)
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        loop.close()
