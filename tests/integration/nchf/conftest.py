"""Fixtures for Nchf over real HTTP/2: `ocs serve` (a subprocess) on the suite's Redis, an
httpx client speaking HTTP/2 with prior knowledge, and a local notification receiver.

The server's policies are the test policies plus one short-lived service (rating group
60, supervision time 2 s) so that abandonment by supervision happens within a test.
Accounts are made with ``new_account`` on the same Redis (identities ``e164:99...``,
sent as ``msisdn-99...``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from ocs.store.embedded import free_port
from protocols.nchf.transport import HttpServer, Request, Response
from tests.serve_harness import ROOT, health, serving, wait_for_health

BASE = "/nchf-convergedcharging/v3/chargingdata"
SHORT = 60  # rating group whose sessions are abandoned after 2 s of silence
CONSUMER = {"nodeFunctionality": "SMF", "nFName": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}


@dataclass
class NchfServer:
    port: int
    metrics_port: int
    config: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _policies(directory: Path) -> Path:
    data = yaml.safe_load((ROOT / "tests/policies/test.yaml").read_text())
    data["services"]["short"] = {"rating_group": SHORT, "unit": "total_octets"}
    data["tariffs"]["basic"]["prices"]["short"] = {"per": {"units": 1000, "price": 10}}
    data["quotas"]["short"] = {"default_grant": 1000, "validity_time": 1, "supervision_time": 2}
    directory.mkdir()
    (directory / "test.yaml").write_text(yaml.safe_dump(data))
    return directory


# Package scope: its supervision sweeper (every 0.2 s, on the suite's Redis) must not
# outlive these tests, or it would abandon other suites' sessions opened at a test clock.
@pytest.fixture(scope="package")
def nchf_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NchfServer]:
    tmp = tmp_path_factory.mktemp("nchf")
    port, metrics = free_port(), free_port()
    cfg = tmp / "ocs.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": redis_url},
                "policies": {"dir": str(_policies(tmp / "policies")), "watch_interval": 0},
                "metrics": {"port": metrics, "health_details": True},
                "logging": {"format": "json", "level": "info"},
                "supervision": {"sweep_interval": 0.2},
                "nchf": {
                    "listen": ["127.0.0.1"],
                    "port": port,
                    "limits": {"max_body": 8192, "max_units": 8},
                    "notify": {"retries": 2, "initial_backoff": 0.2, "timeout": 2.0},
                },
            }
        )
    )
    with serving(cfg):
        report = wait_for_health(metrics, 60.0)
        for _ in range(300):  # front ends report once started, after /health is up
            if "nchf" in report["components"]:
                break
            time.sleep(0.1)
            report = health(metrics)
        assert report["components"]["nchf"]["listening"], report
        yield NchfServer(port, metrics, cfg)


@pytest_asyncio.fixture(loop_scope="session")
async def h2(nchf_server: NchfServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP/2-only client (prior knowledge on http://)."""
    async with httpx.AsyncClient(
        base_url=nchf_server.url, http1=False, http2=True, timeout=10.0
    ) as client:
        yield client


def request_body(
    seq: int,
    units: list[dict[str, Any]] | None = None,
    subscriber: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "nfConsumerIdentification": CONSUMER,
        "invocationTimeStamp": "2026-11-25T10:00:00.000Z",
        "invocationSequenceNumber": seq,
        **extra,
    }
    if subscriber is not None:
        body["subscriberIdentifier"] = subscriber
    if units is not None:
        body["multipleUnitUsage"] = units
    return body


def unit(rg: int, requested: dict[str, int] | None = None, **used: int) -> dict[str, Any]:
    """One multipleUnitUsage item; ``used`` (e.g. totalVolume=5000) makes one container."""
    out: dict[str, Any] = {"ratingGroup": rg}
    if requested is not None:
        out["requestedUnit"] = requested
    if used:
        out["usedUnitContainer"] = [{"localSequenceNumber": 1, **used}]
    return out


async def post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(path, content=data, headers={"content-type": "application/json"})


def ref_of(resp: httpx.Response) -> str:
    """The resource path from a create's Location."""
    location = resp.headers["location"]
    return location[location.index(BASE) :]


@dataclass
class Receiver:
    """A consumer's notification endpoint (HTTP/2 and HTTP/1.1), answering ``statuses`` in turn."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: HttpServer | None = None

    async def handle(self, req: Request) -> Response:
        self.received.append((req.path, json.loads(req.body), req.http2))
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else 204
        return Response(status, b"" if status == 204 else b"{}")

    def uri(self, path: str) -> str:
        assert self.server is not None
        host, port = self.server.addresses[0]
        return f"http://{host}:{port}{path}"

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), within)


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    rec.server = HttpServer(rec.handle)
    await rec.server.listen(["127.0.0.1"], 0, reuse_port=False)
    yield rec
    await rec.server.stop(0.5)
