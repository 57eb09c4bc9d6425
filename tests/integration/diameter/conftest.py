"""Fixtures for Gy over real TCP: our server on 127.0.0.1 port 0, the real charging core
on the suite's real Redis (``charging`` / ``new_account`` from tests/core_fixtures.py),
and a python-diameter client that has done its CER."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from ocs.charging.api import ChargingService
from protocols.diameter.config import DiameterConfig
from protocols.diameter.local import LocalNode
from protocols.diameter.server import DiameterServer
from tests.integration.diameter.gy_client import GyClient

StartServer = Callable[..., Awaitable[DiameterServer]]
NewClient = Callable[..., Awaitable[GyClient]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_server(charging: ChargingService) -> AsyncIterator[StartServer]:
    started: list[DiameterServer] = []

    async def start(service: ChargingService | None = None, **overrides: Any) -> DiameterServer:
        cfg = DiameterConfig(**{"listen": ["127.0.0.1"], "port": 0, **overrides})
        server = DiameterServer(cfg, LocalNode("ocs.test.example", "test.example"))
        await server.start(service or charging)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def gy_server(start_server: StartServer) -> DiameterServer:
    return await start_server()


@pytest_asyncio.fixture(loop_scope="session")
async def new_client(gy_server: DiameterServer) -> AsyncIterator[NewClient]:
    clients: list[GyClient] = []

    async def make(server: DiameterServer | None = None, cer: bool = True, **kw: Any) -> GyClient:
        host, port = (server or gy_server).addresses[0]
        client = GyClient(host, port, **kw)
        await client.connect()
        clients.append(client)
        if cer:
            cea = await client.cer()
            assert cea.result_code == 2001
        return client

    yield make
    for client in clients:
        await client.close()


@pytest_asyncio.fixture(loop_scope="session")
async def gy(new_client: NewClient) -> GyClient:
    return await new_client()
