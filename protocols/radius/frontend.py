"""The RADIUS front end as ``ocs serve`` loads it (entry point ``ocs.frontends:radius``).

``create`` validates the ``radius:`` config section; ``start`` binds the auth
and accounting listeners on every configured address, and (in the configured
worker only, so a push is sent once) consumes the core's notifications for
Disconnect/CoA; ``stop`` stops receiving, lets in-flight requests finish within
the drain timeout, then closes the DAE client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ocs.charging.port import ChargingApi
from ocs.frontend import FrontendContext, Listener
from protocols.radius.accounting import service_key, unrated_service
from protocols.radius.clients import ClientTable
from protocols.radius.codec import PortKind
from protocols.radius.dynauth import DynAuth
from protocols.radius.pipeline import Pipeline
from protocols.radius.server import RadiusListener, listen
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import RadiusConfig

CONSUMER_STOP_TIMEOUT = 2.0


class RadiusFrontend:
    name = "radius"

    def __init__(
        self, cfg: RadiusConfig, worker_index: int = 0, where: str = "configuration: radius"
    ) -> None:
        self.config = cfg
        self._worker = worker_index
        self._where = where  # "<file>: <section>", for errors naming the key
        self._listeners: dict[PortKind, list[RadiusListener]] = _no_listeners()
        self._dynauth: DynAuth | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.pipeline: Pipeline | None = None

    async def start(self, charging: ChargingApi) -> None:
        """Bind the listeners; ConfigError (nothing bound) when ``radius.service`` names a
        service the policy rates in a unit RADIUS never reports."""
        unrated = unrated_service(self.config, charging.service_unit(service_key(self.config)))
        if unrated is not None:
            from ocs.config import ConfigError  # the server's error type; imported when used

            raise ConfigError(f"{self._where}.{unrated}")
        bound = self.config.live_sessions
        live = LiveSessions(bound.max_entries, bound.max_bytes)
        dynauth = DynAuth(self.config, ClientTable(self.config.clients), live, charging)
        pipeline = Pipeline(self.config, charging, live, dynauth.cut_off)
        self.pipeline, self._dynauth = pipeline, dynauth
        ports = {PortKind.AUTH: self.config.auth_port, PortKind.ACCT: self.config.acct_port}
        try:
            for kind, port in ports.items():
                if port is None:
                    continue
                for host in self.config.listen:
                    self._listeners[kind].append(
                        await listen(pipeline, kind, host, port, self.config.max_inflight)
                    )
        except OSError:
            await self.stop(0)
            raise
        if self.config.dae.enabled and self._worker == self.config.dae.worker:
            self._consumer = asyncio.get_running_loop().create_task(dynauth.consume())

    def listeners(self) -> list[Listener]:
        """What :meth:`start` binds (checked free by ``ocs serve`` before it starts)."""
        ports = (("radius auth", self.config.auth_port), ("radius acct", self.config.acct_port))
        return [
            Listener(name, "udp", str(host), port)
            for name, port in ports
            if port is not None
            for host in self.config.listen
        ]

    def addresses(self, kind: PortKind) -> list[tuple[str, int]]:
        """Where each listener of ``kind`` is bound (port 0 resolved)."""
        return [lst.address for lst in self._listeners[kind]]

    @property
    def dynauth(self) -> DynAuth:
        assert self._dynauth is not None, "not started"
        return self._dynauth

    async def stop(self, drain_timeout: float) -> None:
        listeners = [lst for group in self._listeners.values() for lst in group]
        for lst in listeners:
            lst.close()
        pending = {task for lst in listeners for task in lst.tasks}
        if pending and drain_timeout > 0:
            await asyncio.wait(pending, timeout=drain_timeout)
        for task in pending:
            task.cancel()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._consumer is not None:
            self._consumer.cancel()
            # Bounded: a subscription cancelled while it connects may not unwind promptly
            # (seen with redis-py pubsub); stopping must not hang on it.
            # Cancelled inside a Redis read, it ends with that read's TimeoutError, maybe
            # after the wait below: expected here, not an error "never retrieved".
            self._consumer.add_done_callback(lambda t: t.cancelled() or t.exception())
            await asyncio.wait({self._consumer}, timeout=CONSUMER_STOP_TIMEOUT)
        if self._dynauth is not None:
            await self._dynauth.drain(drain_timeout)
            self._dynauth.close()
        self._listeners = _no_listeners()

    def health(self) -> dict[str, Any]:
        return {
            "auth": [f"{h}:{p}" for h, p in self.addresses(PortKind.AUTH)],
            "acct": [f"{h}:{p}" for h, p in self.addresses(PortKind.ACCT)],
            "in_flight": sum(len(lst.tasks) for g in self._listeners.values() for lst in g),
            "nas_restarts_waiting": self.pipeline.nas_restarts_waiting if self.pipeline else 0,
            "dae_consumer": self._consumer is not None and not self._consumer.done(),
        }


def _no_listeners() -> dict[PortKind, list[RadiusListener]]:
    return {PortKind.AUTH: [], PortKind.ACCT: []}


def create(raw_section: Mapping[str, Any], ctx: FrontendContext) -> RadiusFrontend:
    """Validate the ``radius:`` section (errors name file and key path) and build."""
    from ocs.config import validate_section  # the helper's module; imported when used

    cfg = validate_section(RadiusConfig, raw_section, ctx.config_file, ctx.section)
    where = f"{ctx.config_file or 'configuration'}: {ctx.section}"
    return RadiusFrontend(cfg, ctx.worker_index, where)
