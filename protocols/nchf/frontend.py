"""The Nchf front end as ``ocs serve`` loads it (entry point ``ocs.frontends: nchf``).

``create`` validates the ``nchf:`` section; ``start`` binds the HTTP/2 +
HTTP/1.1 listener on every configured address (TLS with ALPN when
configured) and, in the configured worker only (so a notification is sent
once), consumes the core's notifications; ``stop`` stops accepting, lets
requests in progress finish within the drain time, then sends GOAWAY.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from ocs.charging.port import ChargingApi
from ocs.frontend import FrontendContext
from protocols.nchf.config import NchfConfig
from protocols.nchf.notify import NotifySender
from protocols.nchf.resources import NchfApplication
from protocols.nchf.transport import HttpServer, Limits, tls_context

log = structlog.get_logger("ocs.nchf")


class NchfFrontend:
    name = "nchf"

    def __init__(self, cfg: NchfConfig, worker_index: int = 0) -> None:
        self.config = cfg
        self._worker = worker_index
        self.app: NchfApplication | None = None
        self.server: HttpServer | None = None
        self.notifier: NotifySender | None = None

    async def start(self, charging: ChargingApi) -> None:
        cfg = self.config
        self.app = NchfApplication(charging, cfg)
        tls = None
        if cfg.tls is not None:
            ca = str(cfg.tls.client_ca) if cfg.tls.client_ca else None
            tls = tls_context(str(cfg.tls.cert_file), str(cfg.tls.key_file), ca)
        limits = Limits(cfg.limits.max_body, cfg.limits.max_streams, cfg.limits.max_header_bytes)
        self.server = HttpServer(self.app.handle, limits, tls)
        await self.server.listen(cfg.listen, cfg.port, cfg.reuse_port)
        if cfg.notify.enabled and self._worker == cfg.notify.worker:
            self.notifier = NotifySender(charging, cfg.notify)
            self.notifier.start()
        log.info("nchf_listening", addresses=self.addresses, tls=tls is not None)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self.server.addresses if self.server is not None else []

    async def stop(self, drain_timeout: float) -> None:
        if self.server is not None:
            await self.server.stop(drain_timeout)
        if self.notifier is not None:
            await self.notifier.stop(drain_timeout)

    def health(self) -> dict[str, Any]:
        server = self.server
        return {
            "listening": [f"{h}:{p}" for h, p in self.addresses],
            "connections": len(server.connections) if server else 0,
            "in_flight": len(server.tasks) if server else 0,
            "notify": self.notifier.health() if self.notifier else None,
        }


def create(raw_section: Mapping[str, Any], ctx: FrontendContext) -> NchfFrontend:
    """Validate the ``nchf:`` section (errors name file and key path) and build."""
    from ocs.config import validate_section  # the server's shared validator

    cfg = validate_section(NchfConfig, raw_section, ctx.config_file, ctx.section)
    return NchfFrontend(cfg, ctx.worker_index)
