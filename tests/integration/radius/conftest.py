"""Fixtures for the RADIUS integration tests: the front end on 127.0.0.1 port 0
against the real charging core (real Redis), a NAS socket, a DAE listener."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from ocs.charging.api import ChargingService
from protocols.radius.codec import PortKind
from protocols.radius.frontend import RadiusFrontend
from protocols.radius.settings import RadiusConfig
from tests.integration.radius.radius_harness import DaeListener, Nas, open_dae_listener

SECRET = b"integration-secret"
DATA_RG = 10  # tests/policies/test.yaml: data, 10 micro per started 1000 octets


def radius_config(dae_port: int, **extra: Any) -> RadiusConfig:
    client = {
        "name": "nas1",
        "address": "127.0.0.1",
        "secret": SECRET.decode(),
        "flavour": "mikrotik",
        "dae_port": dae_port,
    }
    client.update(extra.pop("client", {}))
    raw: dict[str, Any] = {
        "listen": ["127.0.0.1"],
        "auth_port": 0,
        "acct_port": 0,
        "clients": [client],
        "service": {"rating_group": DATA_RG},
        "identity": "user_name",
        "identity_type": "e164",
        "acct_interim_interval": 60,
        "dae": {"initial_timeout": 0.3, "max_timeout": 0.6, "retries": 2},
    }
    raw.update(extra)
    return RadiusConfig.model_validate(raw)


class Server:
    """A started front end and where to reach it."""

    def __init__(self, frontend: RadiusFrontend) -> None:
        self.frontend = frontend
        self.acct = frontend.addresses(PortKind.ACCT)[0]
        self.auth = frontend.addresses(PortKind.AUTH)[0]


StartServer = Callable[..., Awaitable[Server]]


@pytest_asyncio.fixture(loop_scope="session")
async def dae() -> AsyncIterator[DaeListener]:
    listener = await open_dae_listener(SECRET)
    yield listener
    listener.close()


@pytest_asyncio.fixture(loop_scope="session")
async def start_server(charging: ChargingService, dae: DaeListener) -> AsyncIterator[StartServer]:
    started: list[RadiusFrontend] = []

    async def start(**extra: Any) -> Server:
        fe = RadiusFrontend(radius_config(dae.port, **extra))
        await fe.start(charging)
        started.append(fe)
        return Server(fe)

    yield start
    for fe in started:
        await fe.stop(1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def server(start_server: StartServer) -> Server:
    return await start_server()


@pytest_asyncio.fixture(loop_scope="session")
async def nas() -> AsyncIterator[Nas]:
    client = await Nas.open()
    yield client
    client.close()


def acct_session() -> str:
    return "as-" + uuid.uuid4().hex[:12]
