"""One generator process: its gateways, its share of the load, its measurements.

The parent (:mod:`loadtest.runner`) starts ``processes`` of these with the
``spawn`` method. Each builds its templates, connects (Gy: CER on every
connection), reports ``ready``, waits for the common start signal, runs its
:class:`~loadtest.driver.Driver` on uvloop, and sends back its
:class:`~loadtest.stats.Stats` (with the CPU it used while generating) and
its session counts. Progress snapshots go to the parent twice a second.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from loadtest.diameter_templates import SESSION_DIGITS, GyTemplates
from loadtest.driver import Driver
from loadtest.gy_gateway import GyGateway
from loadtest.nchf_gateway import NchfGateway
from loadtest.radius_gateway import RadiusGateway
from loadtest.radius_templates import AcctTemplates
from loadtest.session import Gateway
from loadtest.spec import LoadSpec, Protocol
from loadtest.stats import Stats, cpu_seconds

START_WAIT = 60.0


def origin_host(spec: LoadSpec, process: int, connection: int) -> str:
    return f"lt{spec.run_id}-p{process:02d}-c{connection:02d}.{spec.target.origin_realm}"


async def open_gateway(
    spec: LoadSpec, index: int, stats: Stats, epoch: float, rng: random.Random
) -> Gateway:
    t = spec.target
    width = len(spec.subscribers[0])
    if spec.protocol is Protocol.GY:
        templates = []
        for c in range(spec.connections):
            host = origin_host(spec, index, c)
            templates.append(
                GyTemplates(
                    host,
                    t.origin_realm,
                    t.destination_realm,
                    f"{host};{spec.run_id};",
                    width,
                    t.service_context,
                )
            )
        return await GyGateway.open(
            t.host, t.port, spec.connections, templates, stats, epoch, spec.timeout, rng
        )
    if spec.protocol is Protocol.NCHF:
        consumer = f"lt{spec.run_id}-p{index:02d}"
        return await NchfGateway.open(
            t.host, t.port, spec.connections, stats, epoch, spec.timeout, rng, consumer
        )
    nas = AcctTemplates(f"lt{spec.run_id}p{index:02d}", f"lt{spec.run_id}-", width)
    gateway = RadiusGateway(
        nas,
        t.secret,
        stats,
        epoch,
        spec.timeout,
        spec.retries,
        rng,
        spec.shape.radius_mean_octets,
        spec.shape.interval,
    )
    await gateway.open(t.host, t.port, spec.connections)
    return gateway


RECENT_SECONDS = 2  # complete seconds whose latency each progress snapshot carries
SESSION_COUNTS = (
    "started",
    "completed",
    "refused",
    "broken",
    "active",
    "in_flight",
    "answered",
    "timeouts",
    "disconnected",
)


def _recent(stats: Stats) -> dict[str, Any]:
    """The last complete seconds' latency histograms (the live view's p50/p99)."""
    if not stats.seconds:
        return {}
    current = max(stats.seconds)
    return {
        str(i): stats.seconds[i].latency.to_dict()
        for i in range(current - RECENT_SECONDS, current)
        if i in stats.seconds
    }


def _snapshot(driver: Driver, stats: Stats) -> dict[str, Any]:
    return {
        "failed": sum(s.failed for s in stats.seconds.values()),
        "recent": _recent(stats),
        "started": driver.started,
        "completed": driver.completed,
        "refused": driver.refused,
        "broken": driver.broken,
        "active": driver.active,
        "in_flight": driver.gateway.in_flight(),
        "answered": stats.answered,
        "timeouts": stats.counters.get("timeout", 0),
        "disconnected": stats.counters.get("disconnected", 0),
    }


async def run_process(
    spec: LoadSpec, index: int, queue: Queue[Any], go: Event, start_at: Any
) -> None:
    rng = random.Random(spec.seed)
    stats = Stats()
    # A placeholder epoch until the common start time is known.
    gateway = await open_gateway(spec, index, stats, time.perf_counter(), rng)
    queue.put(("ready", index, None))
    if not await asyncio.to_thread(go.wait, START_WAIT):
        gateway.close()
        raise TimeoutError("no start signal from the parent")
    epoch = time.perf_counter() - (time.time() - float(start_at.value))
    _set_epoch(gateway, epoch)

    def progress(d: Driver) -> None:
        queue.put(("progress", index, _snapshot(d, stats)))

    driver = Driver(spec, gateway, index, rng, progress)
    user0, sys0 = cpu_seconds()
    began = time.perf_counter()
    await driver.run()
    stats.wall = time.perf_counter() - began
    user1, sys1 = cpu_seconds()
    stats.cpu_user, stats.cpu_system = user1 - user0, sys1 - sys0
    gateway.close()
    await asyncio.sleep(0.05)  # let the transports close
    sessions = {k: v for k, v in _snapshot(driver, stats).items() if k in SESSION_COUNTS}
    queue.put(("result", index, {"stats": stats.to_dict(), "sessions": sessions}))


def _set_epoch(gateway: Gateway, epoch: float) -> None:
    if isinstance(gateway, GyGateway):
        for conn in gateway.connections:
            conn.epoch = epoch
    elif isinstance(gateway, RadiusGateway | NchfGateway):
        gateway.epoch = epoch


def process_main(spec: LoadSpec, index: int, queue: Queue[Any], go: Event, start_at: Any) -> None:
    """Entry point of a generator process (multiprocessing target)."""
    try:
        import uvloop

        uvloop.run(run_process(spec, index, queue, go, start_at))
    except BaseException as exc:  # report every failure to the parent, then exit
        queue.put(("error", index, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


__all__ = ["SESSION_DIGITS", "process_main"]
