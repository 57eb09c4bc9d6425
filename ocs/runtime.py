"""The server runtime: ``ocs serve``.

Starts (or attaches to) the store, loads the policies, builds the charging
API, starts the configured protocol front ends (entry points, see
:mod:`ocs.frontend`), the supervision sweeper and the ``/metrics`` +
``/health`` endpoint; reloads policies on SIGHUP (a bad set keeps the old
one in force and says why); on SIGTERM/SIGINT drains the front ends and
stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from ocs import __version__
from ocs.admin.config import load_admin_config
from ocs.charging.api import ChargingService
from ocs.charging.supervision import run_supervisor
from ocs.config import Config, ConfigError
from ocs.frontend import (
    Frontend,
    FrontendContext,
    Listener,
    listeners_of,
    load_frontend_factories,
)
from ocs.http import register_health, serve_http, serve_unix, set_listeners_up
from ocs.metrics import BUILD, POLICY_RELOADS, WORKERS_RUNNING
from ocs.plan_usage import check_dropped_plans
from ocs.plans import Renewals
from ocs.policy.loader import PolicyError, PolicySet, load_policies
from ocs.preflight import NodeConflict, NodeLock, check_listeners
from ocs.service_manager import notify
from ocs.store.client import Store, StoreConfigError, connect, target_of
from ocs.store.embedded import EmbeddedRedis
from ocs.vocabulary.errors import StorageUnavailable

log = structlog.get_logger("ocs.runtime")

GC_GEN0_THRESHOLD = 20_000  # allocations between young collections (CPython: 700)


@contextlib.asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[tuple[Store, EmbeddedRedis | None]]:
    """A client for the configured store (one server, a cluster or Sentinel's
    primary), starting the embedded server if none is configured."""
    embedded = None
    url = None
    if config.redis.embedded:
        embedded = EmbeddedRedis.from_config(config)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    try:
        target = target_of(config.redis, url)
    except StoreConfigError as exc:
        raise ConfigError(f"{config.file or 'configuration'}: redis: {exc}") from None
    client = connect(
        target, timeout=config.redis.timeout, max_connections=config.redis.max_connections
    )
    try:
        yield client, embedded
    finally:
        await client.aclose()
        if embedded is not None and not embedded.attached:
            await asyncio.to_thread(embedded.stop)


def load_policy_set(config: Config) -> PolicySet:
    return load_policies(config.path(config.policies.dir))


@dataclass
class RedisPing:
    """Health of an external store: a PING every few seconds (none on /health's path).

    A cluster is pinged on every primary: ok while one answers (the slots of
    the others keep being served), with a warning naming those that do not
    (a failover in progress, or a node down). Not ready on one node's loss
    would take every ocs node out of a load balancer at once.
    """

    client: Store
    ok: bool = True
    error: str | None = None
    warning: str | None = None

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        while not stop.is_set():
            try:
                await self._check()
            except (RedisError, RedisClusterException, OSError) as exc:
                self.ok, self.error, self.warning = False, repr(exc), None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _check(self) -> None:
        client = self.client
        if not isinstance(client, RedisCluster):
            await client.ping()
            self.ok, self.error, self.warning = True, None, None
            return
        nodes = client.get_primaries()
        replies = await asyncio.gather(
            *(client.execute_command("PING", target_nodes=node) for node in nodes),
            return_exceptions=True,
        )
        down = [n.name for n, r in zip(nodes, replies, strict=True) if isinstance(r, BaseException)]
        self.ok = len(down) < len(nodes)
        self.error = None if self.ok else f"no primary answers ({', '.join(down)})"
        self.warning = f"primaries not answering: {', '.join(down)}" if down and self.ok else None

    def health(self) -> dict[str, Any]:
        return {"ok": self.ok, "embedded": False, "error": self.error, "warning": self.warning}


@dataclass
class PolicyHolder:
    """The policy set in force, and the last reload error (shown on /health)."""

    charging: ChargingService
    config: Config
    last_error: str | None = None
    reloads: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _pending: set[asyncio.Task[bool]] = field(default_factory=set, init=False, repr=False)

    def reload_soon(self) -> None:
        """SIGHUP: reload in a task (the set is checked against the store)."""
        task = asyncio.ensure_future(self.reload())
        self._pending.add(task)  # referenced until done: the loop keeps only weak ones
        task.add_done_callback(self._pending.discard)

    async def reload(self) -> bool:
        async with self._lock:  # two SIGHUPs: one reload after the other
            return await self._reload()

    async def _reload(self) -> bool:
        try:
            fresh = load_policy_set(self.config)
            # A plan an account uses must not vanish (ocs/plan_usage.py).
            await check_dropped_plans(
                self.charging.policies, fresh, self.charging.redis, self.charging.partitions
            )
        except (PolicyError, OSError) as exc:
            self.last_error = str(exc)
            POLICY_RELOADS.labels("rejected").inc()
            log.error("policy_reload_failed", error=str(exc), kept=self.charging.policies.version)
            return False
        self.charging.policies = fresh  # one reference swap: requests in flight keep theirs
        self.last_error = None
        self.reloads += 1
        POLICY_RELOADS.labels("applied").inc()
        BUILD.info({"version": __version__, "policy_version": fresh.version})
        log.info("policy_reloaded", version=fresh.version)
        return True

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Names, sizes and mtimes of the policy files: a change means reload."""
        directory = self.config.path(self.config.policies.dir)
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            return ()
        out = []
        for p in entries:
            if p.suffix in (".yaml", ".yml"):
                st = p.stat()
                out.append((p.name, st.st_size, st.st_mtime_ns))
        return tuple(out)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload when a policy file changes (every worker watches on its own)."""
        interval = self.config.policies.watch_interval
        if interval <= 0:
            return
        seen = self.fingerprint()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            current = self.fingerprint()
            if current != seen:
                seen = current
                await self.reload()

    def health(self) -> dict[str, Any]:
        """A set is in force, so ok; a refused reload is a warning (the old set serves)."""
        warning = None
        if self.last_error is not None:
            warning = f"reload refused; version {self.charging.policies.version} still serves"
        return {
            "ok": True,
            "warning": warning,
            "version": self.charging.policies.version,
            "reloads": self.reloads,
            "last_error": self.last_error,
        }


@dataclass
class Runtime:
    config: Config
    worker_index: int = 0
    node_start: int = 0  # FrontendContext.node_start (0: this process's own start)
    # One of `--workers N`: the supervisor serves the node's /metrics and probes,
    # merged from each worker's private endpoint (ocs/node_ops.py).
    supervised: bool = False
    frontends: list[Frontend] = field(default_factory=list)

    def build_frontends(self) -> list[Frontend]:
        """The configured front ends, validated and built (nothing bound yet)."""
        factories = load_frontend_factories()
        out: list[Frontend] = []
        for section in sorted(factories.keys() | {"diameter", "radius"}):
            raw = getattr(self.config, section, None)
            if raw is None or raw.get("enabled", True) is False:
                continue
            if section not in factories:
                raise ConfigError(f"{self.config.file}: {section}: no such front end installed")
            ctx = FrontendContext(
                self.config.file,
                section,
                self.config.node.origin_host,
                self.config.node.origin_realm,
                self.config.node.product_name,
                self.worker_index,
                self.node_start or time.time_ns(),
            )
            out.append(factories[section]({k: v for k, v in raw.items() if k != "enabled"}, ctx))
        return out

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        policies = load_policy_set(self.config)
        frontends = self.build_frontends()
        admin_cfg = load_admin_config(self.config.admin, self.config.file)  # refused early
        admin: Any = None
        async with open_store(self.config) as (client, embedded):
            charging = await ChargingService.connect(client, policies)
            BUILD.info({"version": __version__, "policy_version": policies.version})
            holder = PolicyHolder(charging, self.config)
            register_health("policies", holder.health)
            pinger = RedisPing(client)
            register_health("redis", embedded.health if embedded is not None else pinger.health)
            self._install_signals(stop, holder)
            tasks = [asyncio.create_task(holder.watch(stop))]
            http: asyncio.Server | None = None
            try:
                if self.worker_index == 0:  # one sweeper is enough; the scripts are idempotent
                    sweep_every = self.config.supervision.sweep_interval
                    tasks.append(asyncio.create_task(run_supervisor(charging, sweep_every, stop)))
                    tasks.append(asyncio.create_task(self._renewals(charging, stop)))
                if embedded is not None:
                    # Attached too: if the owner (say a CLI run) stops it, we take over.
                    tasks.append(asyncio.create_task(embedded.supervise(stop)))
                else:
                    tasks.append(asyncio.create_task(pinger.run(stop)))
                http = await self._ops_endpoint()
                for fe in frontends:
                    with _bind_conflict(fe.name):
                        await fe.start(charging)
                    self.frontends.append(fe)
                    register_health(fe.name, fe.health)
                if self.worker_index == 0 and (admin_cfg.enabled or admin_cfg.webhooks):
                    # Once per node: worker 0 (ocs/admin/README.md).
                    from ocs.admin.server import AdminServer

                    admin = AdminServer(admin_cfg, client, charging)
                    with _bind_conflict(f"admin ({admin_cfg.host}:{admin_cfg.port})"):
                        await admin.start()
                set_listeners_up(True)  # /readyz
                if not self.supervised:  # under --workers N the supervisor says it
                    notify("READY=1", f"STATUS=serving {len(self.frontends)} front ends")
                _tune_gc()
                log.info(
                    "ocs_started",
                    frontends=[fe.name for fe in self.frontends],
                    policy_version=policies.version,
                    worker=self.worker_index,
                )
                await stop.wait()
                log.info("ocs_stopping")
            finally:
                if not self.supervised:
                    notify("STOPPING=1")
                set_listeners_up(False)  # not ready while draining
                # Also when starting failed half-way: nothing left running (a task
                # left behind kept a failed start alive, silently, issue 13 item 9).
                stop.set()
                for fe in self.frontends:
                    await fe.stop(drain_timeout=5.0)
                if admin is not None:
                    await admin.stop()
                if http is not None:
                    http.close()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                charging.close()
        log.info("ocs_stopped")

    async def _ops_endpoint(self) -> asyncio.Server | None:
        """/metrics and the probes: public when alone, private under a supervisor."""
        if self.supervised:
            from ocs.node_ops import worker_socket

            return await serve_unix(worker_socket(os.getppid(), self.worker_index))
        m = self.config.metrics
        if not m.enabled:
            return None
        WORKERS_RUNNING.set(1)
        with _bind_conflict(f"metrics ({m.host}:{m.port})"):
            return await serve_http(m.host, m.port, details=m.health_details)

    async def _renewals(self, charging: ChargingService, stop: asyncio.Event) -> None:
        """Renew plans' allowances at start and then on schedule (idempotent)."""
        while not stop.is_set():
            try:
                await Renewals(charging.redis, charging.partitions, charging.policies).renew_all()
            except StorageUnavailable as exc:
                log.warning("allowance_renewal_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.supervision.renew_interval)

    @staticmethod
    def _install_signals(stop: asyncio.Event, holder: PolicyHolder) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, holder.reload_soon)


@contextlib.contextmanager
def _bind_conflict(what: str) -> Iterator[None]:
    """A listener whose address is taken: one line naming it (``ocs serve`` exits 2)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise NodeConflict(
            f"{what}: {exc.strerror or exc} (another ocs serve on this configuration, "
            "its orphaned workers, or another program)"
        ) from exc


def planned_listeners(config: Config) -> list[Listener]:
    """Every socket a node of ``config`` binds: /metrics and the front ends' listeners."""
    out: list[Listener] = []
    if config.metrics.enabled:
        out.append(Listener("metrics", "tcp", config.metrics.host, config.metrics.port))
    for fe in Runtime(config).build_frontends():
        out.extend(listeners_of(fe))
    admin = load_admin_config(config.admin, config.file)
    if admin.enabled and admin.port:
        out.append(Listener("admin", "tcp", admin.host, admin.port))
    return out


def claim_node(config: Config) -> NodeLock | None:
    """Check this node's place is free (ports, the embedded store) and take it.

    Raises NodeConflict (one line) when another node, its orphaned workers or
    another program holds it; the returned lock is held until released.
    """
    check_listeners(planned_listeners(config))
    if not config.redis.embedded:
        return None  # a shared store: the ports say whether this node runs
    lock = NodeLock(config.path(config.redis.data_dir))
    lock.acquire()
    return lock


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running server.

    Everything built at start (policies, modules, listeners) lives as long
    as the process: ``gc.freeze`` takes it out of every future collection.
    The hot path allocates many short-lived acyclic objects, which reference
    counting frees; a larger first-generation threshold runs the cycle
    collector less often for the same garbage (about 5 µs per request at
    CPython's default of 700, measured on the Gy benchmark).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def run_server(
    config: Config, worker_index: int = 0, node_start: int = 0, supervised: bool = False
) -> None:
    """Run one server process on uvloop until SIGTERM/SIGINT."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    runner(Runtime(config, worker_index, node_start or time.time_ns(), supervised=supervised).run())
