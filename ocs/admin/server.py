"""Serving the admin API inside ``ocs serve`` (uvicorn on the worker's event loop).

Once per node: worker 0 runs it (as it runs the supervision sweeper and the
renewals), so ``--workers N`` never puts N servers on one port; the
supervisor restarts worker 0 with it if it dies. It shares worker 0's event
loop and store client, but not its ports or request path: a bulk import
yields between chunks of rows.

The listening socket is bound here (so a port taken answers ``ocs serve``'s
one-line refusal, like every other listener) and handed to uvicorn, whose
signal handling is left out: the runtime owns SIGTERM and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator

import structlog
import uvicorn

from ocs.accounts import Accounts
from ocs.admin.app import create_app
from ocs.admin.config import AdminConfig
from ocs.admin.context import AdminContext
from ocs.admin.idempotency import Idempotency
from ocs.admin.tokens import TokenStore
from ocs.admin.webhooks import WebhookSender
from ocs.charging.api import ChargingService
from ocs.http import register_health
from ocs.store.client import Store

log = structlog.get_logger("ocs.admin")
# uvicorn logs its start and stop at info under the name "uvicorn.error": ours say it.
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the runtime's stop event stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """The API's listening socket (IPv6 when the host is one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class AdminServer:
    """The running API and webhook sender: start() binds and serves (the API when
    ``admin.enabled``, the webhooks when any is configured), stop() drains and closes."""

    def __init__(self, config: AdminConfig, client: Store, charging: ChargingService) -> None:
        self.config = config
        tokens = TokenStore(config.tokens, config.tokens_file)
        accounts = Accounts(client, charging.partitions)
        self.ctx = AdminContext(
            config,
            client,
            accounts,
            charging,
            tokens,
            Idempotency(client, config.idempotency_ttl),
            lambda: charging.policies,  # a reload swaps it: always read the current one
        )
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = config.port
        self.webhooks: WebhookSender | None = None
        if config.webhooks:
            self.webhooks = WebhookSender(config, client, charging.partitions)

    async def start(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.start()
            register_health("webhooks", self.webhooks.health)
            log.info("webhooks_started", webhooks=[w.name for w in self.config.webhooks])
        if self.config.enabled:
            await self._start_http()

    async def _start_http(self) -> None:
        sock = bind(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        tls = self.config.tls
        kwargs: dict[str, object] = {}
        if tls is not None:
            kwargs = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
            if tls.client_ca is not None:  # mutual TLS: no certificate, no connection
                kwargs |= {"ssl_ca_certs": str(tls.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        uv = uvicorn.Config(
            create_app(self.ctx),
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
            **kwargs,  # type: ignore[arg-type]
        )
        self._server = _Server(uv)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the admin API stopped while starting")
            await asyncio.sleep(0.01)
        log.info(
            "admin_api_listening",
            host=self.config.host,
            port=self.port,
            tls=tls is not None,
            mutual_tls=tls is not None and tls.client_ca is not None,
            tokens=len(self.ctx.tokens),
        )
        if not len(self.ctx.tokens):
            log.warning("admin_api_without_tokens", hint="ocs admin token add NAME --role admin")

    async def stop(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.stop()
            self.webhooks = None
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=10)
        self._server = None
